//! The `doran` command line on its own (no relay): output formats, errors a person
//! can read (and a script can parse), and what needs no account.

use std::{path::Path, process::Output};

fn doran(home: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_doran"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("doran runs")
}

/// A mono 16-bit 48 kHz WAV of a 440 Hz tone.
fn tone_wav(seconds: f64) -> Vec<u8> {
    let rate = 48_000u32;
    let samples = (f64::from(rate) * seconds) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples * 2).to_le_bytes());
    for i in 0..samples {
        let t = f64::from(i) / f64::from(rate);
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 0.5 * f64::from(i16::MAX);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

#[test]
fn audio_convert_needs_no_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    std::fs::write(&wav, tone_wav(1.5)).expect("write");
    let out = dir.path().join("tone.mp3");
    let home = dir.path().join("nobody");
    let done = doran(
        &home,
        &[
            "--json",
            "audio",
            "convert",
            wav.to_str().expect("utf-8"),
            out.to_str().expect("utf-8"),
        ],
    );
    assert!(done.status.success());
    let v: serde_json::Value = serde_json::from_slice(&done.stdout).expect("JSON");
    let ms = v["duration_ms"].as_u64().expect("duration");
    assert!((1470..=1530).contains(&ms), "{ms}");
    assert!(v["peaks"].as_array().is_some_and(|p| !p.is_empty()));
    assert_eq!(
        v["bytes"].as_u64(),
        std::fs::metadata(&out).ok().map(|m| m.len())
    );
    assert!(!home.exists(), "converting touches no device store");
    let bad = doran(
        &home,
        &[
            "audio",
            "convert",
            out.with_extension("nope").to_str().expect("utf-8"),
            out.to_str().expect("utf-8"),
        ],
    );
    assert!(!bad.status.success());
}

#[test]
fn errors_are_for_people_and_typed_for_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("device");

    // No account yet: a sentence in Korean by default…
    let out = doran(&home, &["account", "show"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("계정이 없어요"), "{said}");

    // …in English when asked, and one JSON error with --json.
    let out = doran(&home, &["--json", "--lang", "en", "account", "show"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(err["error"]["code"], "no_account");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("There is no account")),
        "{err}"
    );

    // A server address that is not one, and an input the product refuses: no Rust
    // field names, nothing created.
    let out = doran(
        &home,
        &[
            "--json",
            "account",
            "create",
            "--server",
            "ftp://relay",
            "--email",
            "a@example.com",
            "--name",
            "도란이",
        ],
    );
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(err["error"]["code"], "bad_relay");
    let out = doran(
        &home,
        &[
            "--json",
            "account",
            "create",
            "--server",
            "http://127.0.0.1:9",
            "--email",
            "a@example.com",
            "--name",
            "x",
        ],
    );
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(err["error"]["code"], "invalid_input", "{err}");
    assert_eq!(err["error"]["field"], "nickname");
    assert!(
        !err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Nickname")
    );
    let out = doran(&home, &["--json", "account", "show"]);
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(err["error"]["code"], "no_account", "nothing was created");
}

#[test]
fn an_unreachable_relay_is_offline_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("device");
    // Nothing listens on port 9 (discard) on loopback here.
    let started = std::time::Instant::now();
    let out = doran(
        &home,
        &[
            "--json",
            "account",
            "create",
            "--server",
            "http://127.0.0.1:9",
            "--email",
            "a@example.com",
            "--name",
            "도란이",
        ],
    );
    assert!(!out.status.success());
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(err["error"]["code"], "offline", "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "not a long wait ending in a timeout"
    );
}
