//! A relay in the middle: a server the user was talked into setting as theirs, which
//! passes every byte on to the real relay. Every sign-in signs the relay's id, so the
//! middle cannot use a signature made for itself at the real relay; but if the device
//! signs the real relay's id, the middle gets a session there in the user's name. A
//! deployment whose id is its public URL is protected: a device that connected to
//! another address refuses that id before it signs anything (`bad_relay`), and nothing
//! is made at the real relay. A relay whose id is not a URL (the default) binds nothing:
//! the same middle then goes unnoticed, which is why `docs/operations.md` asks for the
//! URL.
//!
//! The middle is a plain TCP forwarder on another loopback port, so the device really
//! talks to the real relay through it.

use std::{net::TcpListener, sync::Arc};

use doran_device::{
    account::{Account, StoreSecrets},
    blobs::BlobClient,
    core::store::{LocalStore, SqliteStore},
    relay::{Relay as RelayAddress, Trust},
    sync_error::SyncError,
};
use doran_e2e::{Relay, create_account, json, json_error};
use doran_protocol::{BlobHash, ErrorCode};

/// The server in the middle: listens on a loopback port of its own and passes every
/// byte, both ways, to and from `relay`. Returns its URL.
async fn forwarder(relay: std::net::SocketAddr) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut device, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(relay).await {
                    let _ = tokio::io::copy_bidirectional(&mut device, &mut upstream).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

/// A loopback port free a moment ago, so the relay's id can name it before it starts.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the forwarder")
}

fn create_args<'a>(server: &'a str, email: &'a str, name: &'a str) -> Vec<&'a str> {
    vec![
        "account", "create", "--server", server, "--email", email, "--name", name,
    ]
}

#[test]
fn a_device_signs_nothing_for_a_relay_it_reaches_through_another_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let relay = Relay::start_with(
        &dir.path().join("relay"),
        &format!("127.0.0.1:{port}"),
        &["--server-id", &public],
    );
    assert_eq!(relay.url(), public);
    let rt = runtime();
    let middle = rt.block_on(forwarder(relay.addr()));
    let (mom, dad, dad_again) = (
        dir.path().join("mom"),
        dir.path().join("dad"),
        dir.path().join("dad-again"),
    );

    // At the address the relay's id names, everything works.
    create_account(&mom, &public, "mom@example.com", "엄마곰");
    let families = json(&mom, &["family", "list"]);
    assert!(families.is_array(), "{families}");

    // Through the middle: refused before anything is signed, with a clear error.
    let refused = json_error(&dad, &create_args(&middle, "dad@example.com", "아빠곰"));
    assert_eq!(refused["code"], "bad_relay", "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("다른 서버"), "{refused}");
    assert!(
        message.contains(&format!("127.0.0.1:{port}")),
        "names what it was told: {refused}"
    );
    // No account is kept on the refused device.
    assert_eq!(json_error(&dad, &["family", "list"])["code"], "no_account");

    // Nothing was registered at the relay: the same email is still free there.
    create_account(&dad_again, &public, "dad@example.com", "아빠곰");

    // Her device's signed HTTP requests (blobs) too: the id the middle hands out at
    // `GET /server-id` is checked the same way before anything is signed.
    let store: Arc<dyn LocalStore> =
        Arc::new(SqliteStore::open(mom.join("device.sqlite")).expect("the store"));
    let account = Account::load(&*store, &StoreSecrets(Arc::clone(&store)))
        .expect("load")
        .expect("mom's account");
    let client_at = |url: &str| {
        BlobClient::new(
            RelayAddress::new(url, &Trust::default()).expect("an address"),
            account.device,
            account.device_key.clone(),
        )
    };
    let nothing = BlobHash([7; 32]);
    let through_middle = rt
        .block_on(client_at(&middle).get(nothing))
        .expect_err("refused");
    assert!(
        matches!(
            through_middle,
            SyncError::Auth {
                code: ErrorCode::WrongRelay,
                ..
            }
        ),
        "{through_middle:?}"
    );
    // At the relay's own address the same request is signed and answered (no such
    // blob).
    let direct = rt
        .block_on(client_at(&public).get(nothing))
        .expect_err("no such blob");
    assert!(
        matches!(
            direct,
            SyncError::Refused {
                code: ErrorCode::NotFound | ErrorCode::Forbidden,
                ..
            }
        ),
        "{direct:?}"
    );
}

/// A device that signed up through the middle while the relay's id bound nothing
/// (the default), after the operator sets the id to the relay's URL: its next sync
/// says `bad_relay` at once (it used to wait out its time and say `offline`), and it
/// signs nothing.
#[test]
fn a_device_already_behind_the_middle_hears_why_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let data = dir.path().join("relay");
    let relay = Relay::start(&data, &listen);
    let rt = runtime();
    let middle = rt.block_on(forwarder(relay.addr()));
    let dad = dir.path().join("dad");
    create_account(&dad, &middle, "dad@example.com", "아빠곰");
    drop(relay);

    let public = format!("http://{listen}");
    let _relay = Relay::start_with(&data, &listen, &["--server-id", &public]);
    let refused = json_error(&dad, &["sync"]);
    assert_eq!(refused["code"], "bad_relay", "{refused}");
    // Asked again, the same answer (not "offline"); `doran watch` ends with it
    // rather than stay connected to nothing.
    assert_eq!(json_error(&dad, &["sync"])["code"], "bad_relay");
    assert_eq!(json_error(&dad, &["watch"])["code"], "bad_relay");
}

/// The limit, shown: a relay whose id is not a URL cannot be told from a middle that
/// forwards to it, so the middle's device signs in (this is also what makes the test
/// above mean something: the forwarder really passes a sign-in through).
#[test]
fn a_relay_whose_id_is_no_url_binds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let rt = runtime();
    let middle = rt.block_on(forwarder(relay.addr()));
    let dad = dir.path().join("dad");
    create_account(&dad, &middle, "dad@example.com", "아빠곰");
    let refused = json_error(
        &dir.path().join("dad-again"),
        &create_args(&relay.url(), "dad@example.com", "아빠곰"),
    );
    assert_eq!(
        refused["code"], "email_taken",
        "made at the relay: {refused}"
    );
}
