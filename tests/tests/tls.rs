//! The `doran` command line against the relay's TLS mode: a self-hosted relay with a
//! certificate from its own CA (made at test time), trusted with `--ca` (or
//! `DORAN_CA_FILE`) — the websocket over `wss://` and the blobs over HTTPS — and a
//! clear refusal when the CA is not trusted.

use std::path::{Path, PathBuf};

use doran_e2e::{Relay, doran, doran_cmd, json, json_error, ok};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA, and a certificate for `localhost` signed by it, written into `dir`: returns
/// (CA certificate, server certificate, server key) paths.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "우리 가족 relay CA");
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let server_params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    let ca = dir.join("ca.pem");
    let cert = dir.join("relay.pem");
    let key = dir.join("relay.key");
    std::fs::write(&ca, ca_cert.pem()).expect("write the CA");
    std::fs::write(&cert, server_cert.pem()).expect("write the certificate");
    std::fs::write(&key, server_key.serialize_pem()).expect("write the key");
    (ca, cert, key)
}

/// A 64×48 PNG.
fn picture() -> Vec<u8> {
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, ((x + y) / 5) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode");
    bytes.into_inner()
}

#[test]
fn the_cli_syncs_over_tls_with_a_self_hosted_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = certificates(dir.path());
    let relay = Relay::start_with(
        &dir.path().join("relay"),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    let server = relay.url();
    assert!(server.starts_with("https://localhost:"), "{server}");
    let ca_arg = ca.to_str().expect("utf-8");
    let (mom, son) = (dir.path().join("mom"), dir.path().join("son"));

    // Not trusting the relay's CA: refused with a clear error, nothing kept.
    let refused = json_error(
        &mom,
        &[
            "account",
            "create",
            "--server",
            &server,
            "--email",
            "mom@example.com",
            "--name",
            "엄마곰",
        ],
    );
    assert_eq!(refused["code"], "bad_relay", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("인증서")),
        "{refused}"
    );

    // Trusting it with --ca (mom) and with DORAN_CA_FILE (son).
    let account = json(
        &mom,
        &[
            "--ca",
            ca_arg,
            "account",
            "create",
            "--server",
            &server,
            "--email",
            "mom@example.com",
            "--name",
            "엄마곰",
        ],
    );
    assert_eq!(account["server"], server.as_str());
    let out = doran_cmd(
        &son,
        &[
            "account",
            "create",
            "--server",
            &server,
            "--email",
            "son@example.com",
            "--name",
            "아들곰",
        ],
    )
    .env("DORAN_CA_FILE", &ca)
    .output()
    .expect("doran runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let family = ok(
        &mom,
        &[
            "--ca",
            ca_arg,
            "family",
            "create",
            "우리 가족",
            "--as",
            "엄마",
        ],
    );
    let invite = ok(
        &mom,
        &[
            "--ca",
            ca_arg,
            "invite",
            "send",
            &family,
            "son@example.com",
            "--as",
            "아들",
        ],
    );
    ok(&son, &["--ca", ca_arg, "invite", "accept", &invite]);

    // A photo goes up over HTTPS and comes down on the other device, verified.
    let album = ok(&mom, &["album", "create", &family, "여름"]);
    let file = dir.path().join("p.png");
    std::fs::write(&file, picture()).expect("write");
    let photo = json(
        &mom,
        &[
            "photo",
            "add",
            &family,
            &album,
            file.to_str().expect("utf-8"),
        ],
    )["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let synced = json(&mom, &["--ca", ca_arg, "sync"]);
    assert_eq!(synced["up_to_date"], true, "{synced}");
    assert_eq!(json(&son, &["--ca", ca_arg, "sync"])["up_to_date"], true);
    let got = dir.path().join("got.jpg");
    ok(
        &son,
        &[
            "--ca",
            ca_arg,
            "photo",
            "get",
            &family,
            &photo,
            got.to_str().expect("utf-8"),
        ],
    );
    let bytes = std::fs::read(&got).expect("the photo");
    let export: serde_json::Value =
        serde_json::from_str(&ok(&son, &["export", &family])).expect("JSON");
    let entry = &export["photos"][&photo];
    assert_eq!(
        entry["blob"].as_str(),
        doran_e2e::sealed_hash(&bytes, &entry["blob_key"]).as_deref()
    );

    // Without the CA, a sync says why it cannot connect.
    let out = doran(&son, &["--json", "sync", "--timeout", "5"]);
    assert!(!out.status.success());
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(err["error"]["code"], "bad_relay", "{err}");
}
