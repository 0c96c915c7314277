//! [`FsBlobStore`]: blobs as files in a folder, published atomically under their hash.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use doran_protocol::BlobHash;

use super::{BlobSink, BlobStore, StoreError, StoreResult, StoredBlob, memory_blobs::clamp};

/// Where uploads in progress live, inside the store's folder.
const TMP_DIR: &str = "tmp";

/// How much an upload buffers before writing to its file.
const WRITE_BUFFER: usize = 64 * 1024;

/// A [`BlobStore`] in a folder: the blob with hash `ab12…` is the file `ab/ab12…`.
///
/// An upload writes to `tmp/<random>` and hashes the bytes as they come; `finish`
/// checks the hash, fsyncs the file, renames it to its place (atomic: a reader sees
/// the whole blob or none) and fsyncs the directory, so a published blob survives a
/// crash. A blob that already exists is not written again. Uploads abandoned by a
/// crash are removed when the store is opened again.
///
/// Methods do blocking file I/O: async code calls them through `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    dir: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) the blob folder `dir`, and removes uploads left
    /// unfinished by a previous process. Only one store may use a folder at a time.
    pub fn open(dir: impl AsRef<Path>) -> StoreResult<Self> {
        let dir = dir.as_ref().to_path_buf();
        let tmp = dir.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(io_at("create", &tmp))?;
        let mut removed = 0_usize;
        for entry in fs::read_dir(&tmp).map_err(io_at("list", &tmp))? {
            let path = entry.map_err(io_at("list", &tmp))?.path();
            fs::remove_file(&path).map_err(io_at("remove", &path))?;
            removed += 1;
        }
        if removed > 0 {
            tracing::info!(removed, dir = %dir.display(), "removed unfinished blob uploads");
        }
        sync_dir(&dir)?;
        Ok(Self { dir })
    }

    /// The folder the store keeps its blobs in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `hash` lives once published.
    fn path_of(&self, hash: BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        // One buffer for the whole path (a download looks it up three times).
        let mut path = PathBuf::with_capacity(self.dir.as_os_str().len() + 2 + 1 + 64 + 1);
        path.push(&self.dir);
        path.push(&hex[..2]);
        path.push(hex);
        path
    }

    /// Opens a published blob at its `path`; `None` if it does not exist.
    fn open_blob(path: &Path) -> StoreResult<Option<File>> {
        match File::open(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at("open", path)(e)),
        }
    }
}

impl BlobStore for FsBlobStore {
    fn reads_at_once(&self) -> bool {
        true
    }

    fn free_bytes(&self) -> StoreResult<Option<u64>> {
        let fs = rustix::fs::statvfs(&self.dir)
            .map_err(|e| io_at("measure", &self.dir)(io::Error::from(e)))?;
        Ok(Some(fs.f_bavail.saturating_mul(fs.f_frsize)))
    }

    fn begin(&self) -> StoreResult<Box<dyn BlobSink>> {
        let name: [u8; 16] = rand::random();
        let tmp = self.dir.join(TMP_DIR).join(hex::encode(name));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_at("create", &tmp))?;
        Ok(Box::new(FsSink {
            store: self.clone(),
            tmp,
            published: false,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            hasher: blake3::Hasher::new(),
            size: 0,
        }))
    }

    fn size(&self, hash: BlobHash) -> StoreResult<Option<u64>> {
        let path = self.path_of(hash);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at("stat", &path)(e)),
        }
    }

    fn read(&self, hash: BlobHash, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let path = self.path_of(hash);
        let file = Self::open_blob(&path)?.ok_or(StoreError::NotFound("blob"))?;
        let size = file.metadata().map_err(io_at("stat", &path))?.len();
        let (start, end) = clamp(size, offset, len);
        let want = usize::try_from(end - start)
            .map_err(|_| StoreError::Invalid("a read larger than memory".into()))?;
        read_range(&file, start, want).map_err(io_at("read", &path))
    }

    fn list(&self, after: Option<BlobHash>, limit: usize) -> StoreResult<Vec<StoredBlob>> {
        // Shard folders are the first two hex digits, so hash order is shard order,
        // then name order within a shard.
        let first_shard = after.map(|h| h.to_hex()[..2].to_owned());
        let mut shards = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_at("list", &self.dir))? {
            let name = entry
                .map_err(io_at("list", &self.dir))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            let is_shard = name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if is_shard && first_shard.as_ref().is_none_or(|f| name >= *f) {
                shards.push(name);
            }
        }
        shards.sort();
        let mut out = Vec::new();
        for shard in shards {
            let dir = self.dir.join(&shard);
            let mut found = Vec::new();
            for entry in fs::read_dir(&dir).map_err(io_at("list", &dir))? {
                let entry = entry.map_err(io_at("list", &dir))?;
                // Anything that is not a blob's name (a stray file) is not ours.
                let Ok(hash) = entry.file_name().to_string_lossy().parse::<BlobHash>() else {
                    continue;
                };
                if after.is_some_and(|a| hash <= a) {
                    continue;
                }
                let meta = entry.metadata().map_err(io_at("stat", &entry.path()))?;
                found.push(StoredBlob {
                    hash,
                    size: meta.len(),
                    stored_at: meta.modified().map_or(0, unix_ms),
                });
            }
            found.sort_by_key(|b| b.hash);
            for blob in found {
                if out.len() == limit {
                    return Ok(out);
                }
                out.push(blob);
            }
        }
        Ok(out)
    }

    fn delete(&self, hash: BlobHash) -> StoreResult<bool> {
        let path = self.path_of(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_at("remove", &path)(e)),
        }
    }
}

/// A file time as unix milliseconds (0 before the epoch).
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An upload into an [`FsBlobStore`]: a temporary file, removed on drop unless
/// `finish` published it.
#[derive(Debug)]
struct FsSink {
    store: FsBlobStore,
    /// The temporary file.
    tmp: PathBuf,
    /// Whether `tmp` was renamed into place (so there is nothing to remove).
    published: bool,
    /// `None` once `finish` closed it.
    file: Option<BufWriter<File>>,
    hasher: blake3::Hasher,
    size: u64,
}

impl FsSink {
    /// Verifies, syncs and publishes the file; on any error the temporary file is left
    /// for `Drop` to remove.
    fn publish(&mut self, expected: BlobHash) -> StoreResult<u64> {
        let tmp = &self.tmp;
        let file = self
            .file
            .take()
            .ok_or_else(|| StoreError::Invalid("upload already finished".into()))?;
        let file = file
            .into_inner()
            .map_err(|e| io_at("write", tmp)(e.into_error()))?;
        if BlobHash::from(self.hasher.finalize()) != expected {
            return Err(StoreError::HashMismatch);
        }
        let target = self.store.path_of(expected);
        if target.exists() {
            // Deduplicated: the same bytes are already published; Drop removes ours.
            // They count as stored now: the blob sweep keeps a blob stored within its
            // grace, and this one is about to be granted again.
            OpenOptions::new()
                .write(true)
                .open(&target)
                .and_then(|f| f.set_modified(SystemTime::now()))
                .map_err(io_at("touch", &target))?;
            return Ok(self.size);
        }
        file.sync_all().map_err(io_at("sync", tmp))?;
        drop(file);
        let shard = target
            .parent()
            .ok_or_else(|| StoreError::Invalid("blob path has no folder".into()))?;
        if !shard.exists() {
            fs::create_dir_all(shard).map_err(io_at("create", shard))?;
            sync_dir(&self.store.dir)?;
        }
        fs::rename(tmp, &target).map_err(io_at("publish", &target))?;
        self.published = true;
        sync_dir(shard)?;
        Ok(self.size)
    }
}

impl BlobSink for FsSink {
    fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::Invalid("upload already finished".into()))?;
        file.write_all(bytes).map_err(io_at("write", &self.tmp))?;
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>, expected: BlobHash) -> StoreResult<u64> {
        self.publish(expected)
    }
}

impl Drop for FsSink {
    fn drop(&mut self) {
        drop(self.file.take());
        if self.published {
            return;
        }
        if let Err(e) = fs::remove_file(&self.tmp)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(
                path = %self.tmp.display(),
                error = %e,
                "could not remove an unfinished upload"
            );
        }
    }
}

/// `want` bytes from `start`, fewer if the file ends first. Positioned reads into the
/// vector's spare room, not a seek and `read_to_end`: a small blob is one `pread`,
/// where that took an `lseek` and a second `read` to see the end (two of a download's
/// seven calls to the kernel), and nothing is zeroed first.
#[cfg(unix)]
fn read_range(file: &File, start: u64, want: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let at = start + out.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut out), at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.truncate(want);
    Ok(out)
}

#[cfg(not(unix))]
fn read_range(file: &File, start: u64, want: usize) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    let mut out = Vec::with_capacity(want);
    file.seek(SeekFrom::Start(start))?;
    file.take(want as u64).read_to_end(&mut out)?;
    Ok(out)
}

/// Makes a directory's entries (a rename, a new file) durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at("sync", dir))
}

/// Directories cannot be opened for syncing on this platform; renames are durable
/// once the file system says so.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> StoreResult<()> {
    Ok(())
}

/// Wraps an I/O error with what was done to which path.
fn io_at<'a>(action: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| {
        StoreError::backend(io::Error::new(
            e.kind(),
            format!("blob store: {action} {}: {e}", path.display()),
        ))
    }
}

#[cfg(test)]
mod tests {
    //! What only the folder has: file layout, temporary files, reopening. The shared
    //! behaviour is in the conformance suite.

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn tmp_entries(store: &FsBlobStore) -> Result<usize, io::Error> {
        Ok(fs::read_dir(store.dir().join(TMP_DIR))?.count())
    }

    #[test]
    fn a_blob_lives_under_its_hash_and_survives_a_reopen() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = FsBlobStore::open(dir.path())?;
        let hash = BlobHash::of(b"photo bytes");
        let mut sink = store.begin()?;
        sink.write(b"photo ")?;
        sink.write(b"bytes")?;
        assert_eq!(tmp_entries(&store)?, 1, "the upload is a temporary file");
        assert_eq!(sink.finish(hash)?, 11);
        let hex = hash.to_hex();
        assert_eq!(
            fs::read(dir.path().join(&hex[..2]).join(&hex))?,
            b"photo bytes"
        );
        assert_eq!(tmp_entries(&store)?, 0);
        drop(store);
        let store = FsBlobStore::open(dir.path())?;
        assert_eq!(store.read(hash, 6, 100)?, b"bytes");
        Ok(())
    }

    #[test]
    fn failed_dropped_and_duplicate_uploads_leave_no_temporary_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = FsBlobStore::open(dir.path())?;
        let mut sink = store.begin()?;
        sink.write(b"abc")?;
        assert!(matches!(
            sink.finish(BlobHash::of(b"xyz")),
            Err(StoreError::HashMismatch)
        ));
        assert_eq!(tmp_entries(&store)?, 0, "after a mismatch");
        let mut sink = store.begin()?;
        sink.write(b"abc")?;
        drop(sink);
        assert_eq!(tmp_entries(&store)?, 0, "after a drop");
        for _ in 0..2 {
            let mut sink = store.begin()?;
            sink.write(b"abc")?;
            sink.finish(BlobHash::of(b"abc"))?;
        }
        assert_eq!(tmp_entries(&store)?, 0, "after a deduplicated upload");
        // Only the tmp folder and one shard folder with one file.
        let mut names = fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        let hex = BlobHash::of(b"abc").to_hex();
        assert_eq!(names, vec![hex[..2].to_owned(), TMP_DIR.to_owned()]);
        assert_eq!(fs::read_dir(dir.path().join(&hex[..2]))?.count(), 1);
        Ok(())
    }

    #[test]
    fn opening_removes_uploads_a_crash_left_behind() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = FsBlobStore::open(dir.path())?;
        fs::write(dir.path().join(TMP_DIR).join("0123abcd"), b"half an upload")?;
        assert_eq!(tmp_entries(&store)?, 1);
        let store = FsBlobStore::open(dir.path())?;
        assert_eq!(tmp_entries(&store)?, 0);
        Ok(())
    }
}
