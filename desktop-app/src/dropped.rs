//! Files the user dropped on the window. A photo or a recording added by path
//! (`add_photo`, `add_voice`) must be one of them: the page names the path, and a page
//! that was made to name another (`~/.ssh/id_ed25519`, a document next to the photos)
//! would otherwise have the app read it and upload what it could make of it to the
//! family. Files chosen with the picker travel as bytes and need no path.

use doran_device::{Error, ErrorCode, core::time_util::Lang};
use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a dropped file may be added: long enough for a slow batch of photos.
const KEPT_FOR: Duration = Duration::from_secs(30 * 60);
/// The most dropped files remembered; the oldest go first.
const MAX_KEPT: usize = 4096;

/// The files dropped on the window lately, kept in the app's state.
#[derive(Debug, Default)]
pub struct Dropped {
    files: Mutex<VecDeque<(PathBuf, Instant)>>,
}

impl Dropped {
    /// Remembers the files of one drop.
    pub fn record(&self, paths: &[PathBuf]) {
        self.record_at(paths, Instant::now());
    }

    /// Whether `path` was dropped on the window in the last half hour.
    pub fn was_dropped(&self, path: &Path) -> bool {
        self.was_dropped_at(path, Instant::now())
    }

    fn record_at(&self, paths: &[PathBuf], now: Instant) {
        let mut files = self.lock();
        for path in paths {
            files.push_back((path.clone(), now));
        }
        while files.len() > MAX_KEPT {
            files.pop_front();
        }
    }

    fn was_dropped_at(&self, path: &Path, now: Instant) -> bool {
        let mut files = self.lock();
        while files
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) > KEPT_FOR)
        {
            files.pop_front();
        }
        files.iter().any(|(p, _)| p == path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(PathBuf, Instant)>> {
        // A panic while holding it leaves a list that is still whole.
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Refuses (`Forbidden`) a path the user did not drop on the window.
pub fn require(dropped: &Dropped, path: &Path, lang: Lang) -> Result<(), Error> {
    if dropped.was_dropped(path) {
        return Ok(());
    }
    tracing::warn!(path = %path.display(), "refusing to add a file that was not dropped on the window");
    Err(Error::new(
        ErrorCode::Forbidden,
        lang,
        "창에 끌어다 놓은 파일만 추가할 수 있어요.",
        "Only files dropped on the window can be added this way.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_dropped_lately_may_be_added() {
        let dropped = Dropped::default();
        let t0 = Instant::now();
        let photo = PathBuf::from("/home/mom/Pictures/바다.jpg");
        dropped.record_at(std::slice::from_ref(&photo), t0);
        assert!(dropped.was_dropped_at(&photo, t0 + Duration::from_secs(5)));
        assert!(!dropped.was_dropped_at(Path::new("/home/mom/.ssh/id_ed25519"), t0));
        assert!(!dropped.was_dropped_at(Path::new("/home/mom/Pictures/../.ssh/id_ed25519"), t0));
        assert!(!dropped.was_dropped_at(&photo, t0 + KEPT_FOR + Duration::from_secs(1)));
    }

    #[test]
    fn the_list_is_bounded() {
        let dropped = Dropped::default();
        let t0 = Instant::now();
        let first = PathBuf::from("/photos/0.jpg");
        dropped.record_at(std::slice::from_ref(&first), t0);
        let many: Vec<PathBuf> = (1..=MAX_KEPT)
            .map(|i| PathBuf::from(format!("/photos/{i}.jpg")))
            .collect();
        dropped.record_at(&many, t0);
        assert!(!dropped.was_dropped_at(&first, t0), "the oldest went first");
        assert!(dropped.was_dropped_at(&many[MAX_KEPT - 1], t0));
    }
}
