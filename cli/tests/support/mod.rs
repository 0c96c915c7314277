//! Shared by the CLI's end-to-end tests: the real relay binary on loopback and the
//! real `doran` binary, run for its output.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

/// The relay binary, built beside `doran` by `cargo test` on the workspace.
pub fn relay_binary() -> PathBuf {
    let doran = PathBuf::from(env!("CARGO_BIN_EXE_doran"));
    let relay = doran.with_file_name(format!("doran-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        relay.exists(),
        "{} is missing: run the tests for the whole workspace (scripts/test does)",
        relay.display()
    );
    relay
}

/// A relay process on loopback; killed (SIGKILL) on drop.
pub struct Relay {
    child: Option<Child>,
    data: PathBuf,
    addr: String,
}

impl Relay {
    /// Starts the relay on `listen` (`127.0.0.1:0` for a free port) and waits for its
    /// `listening on` line.
    pub fn start(data: &Path, listen: &str) -> Relay {
        let (child, addr) = doran_testkit::spawn(
            Command::new(relay_binary())
                .arg("--data-dir")
                .arg(data)
                .args(["--listen", listen])
                .stderr(Stdio::null()),
        )
        .expect("the relay starts");
        Relay {
            child: Some(child),
            data: data.to_owned(),
            addr: addr.to_string(),
        }
    }

    /// The relay's base URL, `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// SIGKILL: no graceful shutdown, whatever it was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the relay (if running) and starts it again on the same data and address.
    pub fn restart(&mut self) {
        self.kill();
        *self = Relay::start(&self.data, &self.addr);
    }

    /// Kills the relay and starts it on the same data at `addr` instead.
    pub fn move_to(&mut self, addr: &str) {
        self.kill();
        *self = Relay::start(&self.data, addr);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `doran --home HOME ARGS…` command, to spawn or run.
pub fn doran_cmd(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_doran"));
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

pub fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, &all)).expect("JSON output")
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
