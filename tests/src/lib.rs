//! Shared by the end-to-end tests in `tests/`: the real `doran` binary run for its
//! output, and a recording to add. The relay is [`doran_testkit::Relay`].

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

pub use doran_testkit::Relay;

pub mod devices;
pub mod proxy;

/// `doran account create` at `home` against `server`; prints (returns) the user id.
pub fn create_account(home: &Path, server: &str, email: &str, name: &str) -> String {
    ok(
        home,
        &[
            "account", "create", "--server", server, "--email", email, "--name", name,
        ],
    )
}

/// A `doran --home HOME ARGS…` command, to spawn or run.
pub fn doran_cmd(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(doran_testkit::binary("doran"));
    cmd.arg("--home").arg(home).args(args);
    cmd
}

/// Runs `doran --home HOME ARGS…`.
pub fn doran(home: &Path, args: &[&str]) -> Output {
    doran_cmd(home, args).output().expect("doran runs")
}

/// Runs `doran` and returns its stdout, trimmed; fails the test with stderr otherwise.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = doran(home, args);
    assert!(
        out.status.success(),
        "doran {args:?} on {} failed: {}",
        home.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `doran --json ARGS…` and parses its one JSON value.
pub fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, &all)).expect("JSON output")
}

/// Links the device at `new` to the account signed in at `first` as a person does
/// on the command line: `doran device link` on the new device waits (and says so)
/// while `doran device links` on the first one shows the request, and `doran device
/// confirm` accepts it. `server` is the relay's URL.
pub fn link_and_confirm(first: &Path, new: &Path, server: &str) {
    let code = json(first, &["device", "link-code"])["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let waiting = doran_cmd(
        new,
        &["device", "link", "--server", server, "--code", &code],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("doran runs");
    // Each `device links` is one short command; the request shows once the new
    // device has presented the code.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let link = loop {
        let list = json(first, &["device", "links"]);
        if let Some(id) = list[0]["link"].as_str() {
            break id.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the link request never showed: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    ok(first, &["device", "confirm", &link]);
    let out = waiting.wait_with_output().expect("doran ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "device link failed: {stderr}");
    assert!(
        stderr.contains("waiting for confirmation on your other device"),
        "{stderr}"
    );
}

/// Runs `doran --json ARGS…` that must fail, and returns its JSON error
/// (`{"code", "message", "field"?}`).
pub fn json_error(home: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = doran(home, &all);
    assert!(
        !out.status.success(),
        "doran {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    err["error"].clone()
}

/// A mono 16-bit 48 kHz WAV of a 440 Hz tone.
pub fn tone_wav(seconds: f64) -> Vec<u8> {
    let rate = 48_000u32;
    let samples = (f64::from(rate) * seconds) as u32;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = f64::from(i) / f64::from(rate);
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 0.5 * f64::from(i16::MAX);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

/// The relay's name for `opened` sealed under the key an exported entry gives
/// (`blob_key` or `thumb_key`, a JSON array of 32 bytes): blake3 of the sealed bytes,
/// in hex. `None` when the entry has no key that reads.
pub fn sealed_hash(opened: &[u8], key: &serde_json::Value) -> Option<String> {
    use doran_device::core::seal;
    let bytes: Vec<u8> = key
        .as_array()?
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect::<Option<_>>()?;
    let key = seal::BlobKey::from_slice(&bytes)?;
    let sealed = seal::seal(&key, opened).ok()?;
    Some(doran_protocol::BlobHash::of(&sealed).to_hex())
}

/// Every file under `dir` (a relay's data folder: its SQLite file, its WAL, its
/// blobs), with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

/// Pieces of `plain` no ciphertext holds by chance: 24 bytes at several places.
pub fn pieces(plain: &[u8]) -> Vec<&[u8]> {
    let len = plain.len();
    [0, 3, 600, len / 3, len / 2, len.saturating_sub(24)]
        .into_iter()
        .filter(|&at| at + 24 <= len)
        .map(|at| &plain[at..at + 24])
        .collect()
}

/// The chunks of `doc` in the relay's SQLite file, oldest first.
pub fn relay_chunks(relay: &Relay, doc: doran_protocol::DocId) -> Vec<Vec<u8>> {
    let db = rusqlite::Connection::open(relay.data().join("relay.sqlite")).expect("relay db");
    let mut q = db
        .prepare("SELECT bytes FROM chunks WHERE doc = ?1 ORDER BY seq")
        .expect("query");
    q.query_map([doc.0.to_vec()], |r| r.get::<_, Vec<u8>>(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect()
}

/// The family's volume of the year it is now (issue 17): a device files what it
/// makes this year there, in a sealed family.
pub fn this_years_volume(family: doran_protocol::FamilyId) -> doran_protocol::DocId {
    family.volume(this_year())
}

/// The year it is now (UTC), as devices file what they make (`volume_year`).
pub fn this_year() -> u16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    doran_protocol::volume_year(now)
}

/// A small PNG with a look of its own per `seed` (96×64; a device makes its display
/// copy and thumbnail from it).
pub fn png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        image::Rgb([seed.wrapping_mul(40), x as u8, y as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode");
    bytes.into_inner()
}

/// The relay's counters from `/metrics` at `relay`, each read by its name (0 if
/// absent).
pub fn relay_metrics(relay: std::net::SocketAddr) -> impl Fn(&str) -> u64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(relay).expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: relay\r\n\r\n")
        .expect("ask");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    move |name| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The device store at `home` (made by `doran`) and a blob client signing as its
/// device, to ask `relay_url` for blobs directly, as a modified client could.
pub fn blob_client(
    home: &Path,
    relay_url: &str,
) -> (
    std::sync::Arc<dyn doran_device::core::store::LocalStore>,
    doran_device::blobs::BlobClient,
) {
    use doran_device::account::{Account, StoreSecrets};
    let store: std::sync::Arc<dyn doran_device::core::store::LocalStore> = std::sync::Arc::new(
        doran_device::core::store::SqliteStore::open(home.join("device.sqlite"))
            .expect("the store"),
    );
    let account = Account::load(&*store, &StoreSecrets(std::sync::Arc::clone(&store)))
        .expect("load")
        .expect("the account");
    let relay = doran_device::relay::Relay::new(relay_url, &doran_device::relay::Trust::default())
        .expect("the relay");
    let client = doran_device::blobs::BlobClient::new(relay, account.device, account.device_key);
    (store, client)
}
