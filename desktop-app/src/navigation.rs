//! The window shows the app's own screens and nothing else. Nothing in the screens
//! links anywhere today, but the window holds every command (the family's content,
//! invites, the recovery phrase) and the microphone: a page from elsewhere — a link a
//! future screen renders from a comment, a blob opened as a page — must never load in
//! it. Navigation away from the app is refused, and the microphone answers the app's
//! pages only.

use tauri::{Runtime, Url, plugin::TauriPlugin};

/// Whether `url` is one of the app's bundled pages (`tauri://localhost` on Linux and
/// macOS, `http(s)://tauri.localhost` on Windows).
pub fn is_app_page(url: &Url) -> bool {
    match (url.scheme(), url.host_str()) {
        ("tauri", Some("localhost")) => true,
        ("http" | "https", Some("tauri.localhost")) => url.port().is_none(),
        _ => false,
    }
}

/// Refuses every navigation of a window to a page that is not the app's.
pub fn guard<R: Runtime>() -> TauriPlugin<R> {
    tauri::plugin::Builder::new("navigation-guard")
        .on_navigation(|_, url| {
            let ours = is_app_page(url);
            if !ours {
                tracing::warn!(%url, "navigation away from the app refused");
            }
            ours
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::is_app_page;

    fn page(s: &str) -> bool {
        is_app_page(&s.parse().expect("a url"))
    }

    #[test]
    fn only_the_apps_own_pages_are_the_app() {
        assert!(page("tauri://localhost/"));
        assert!(page("tauri://localhost/index.html#/gallery"));
        assert!(page("http://tauri.localhost/"));
        assert!(page("https://tauri.localhost/index.html"));
        assert!(!page("https://evil.example/login"));
        assert!(!page("http://tauri.localhost.evil.example/"));
        assert!(!page("http://tauri.localhost:8080/"));
        assert!(!page("asset://localhost/home/me/.local/share/blobs/ab"));
        assert!(!page("http://asset.localhost/blobs/ab"));
        assert!(!page("file:///etc/passwd"));
        assert!(!page("data:text/html,<script>1</script>"));
        assert!(!page("javascript:alert(1)"));
    }
}
