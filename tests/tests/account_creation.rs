//! Creating an account when the relay's answer is lost, against the real relay: the
//! relay registers the email, the connection drops before the device hears so, and
//! trying again gets the account back instead of "this email is taken" for good —
//! while someone else's email stays someone else's.

use std::net::SocketAddr;

use doran_device::ErrorCode;
use doran_e2e::{
    Relay,
    devices::{WAIT, open},
    proxy::frame_head,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// How many of the relay's first `bytes` may reach the device: its HTTP answer to the
/// websocket upgrade and its first frame (the challenge); `None` while they have not
/// all arrived.
fn upgrade_and_first_frame(bytes: &[u8]) -> Option<usize> {
    let head = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let (_, len) = frame_head(bytes.get(head..)?)?;
    let end = head + len;
    (bytes.len() >= end).then_some(end)
}

/// A TCP proxy to `relay` that lets the device say what it wants and hear the
/// challenge, then cuts the connection the moment the relay answers: the relay has
/// done what it was asked, and the device never hears it.
async fn answer_losing_proxy(relay: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((device, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(upstream) = TcpStream::connect(relay).await else {
                    return;
                };
                let (mut from_device, mut to_device) = device.into_split();
                let (mut from_relay, mut to_relay) = upstream.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_device, &mut to_relay).await;
                });
                let (mut seen, mut sent) = (Vec::new(), 0);
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = from_relay.read(&mut buf).await {
                    seen.extend_from_slice(&buf[..n]);
                    let allowed = upgrade_and_first_frame(&seen).unwrap_or(seen.len());
                    if to_device.write_all(&seen[sent..allowed]).await.is_err() {
                        break;
                    }
                    sent = allowed;
                    if seen.len() > allowed {
                        break; // the relay's answer: lost
                    }
                }
                up.abort();
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_whose_answer_was_lost_is_finished_by_trying_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let proxy = format!("http://{}", answer_losing_proxy(relay.addr()).await);

    // Mom signs up on a train: the relay registers her, the answer never arrives.
    let mom = open(&dir.path().join("mom")).await;
    let lost = mom
        .create_account(&proxy, "mom@example.com", "엄마곰")
        .await
        .expect_err("no answer");
    assert_ne!(lost.code, ErrorCode::EmailTaken, "{}", lost.message);
    // She tries again with a good connection: the account is hers.
    let account = mom
        .create_account(&relay.url(), "mom@example.com", "엄마곰")
        .await
        .expect("the account she registered");
    assert_eq!(account.email, "mom@example.com");
    assert!(account.has_recovery_phrase, "her phone holds the user key");
    mom.create_family("기차 가족", "엄마")
        .await
        .expect("family");
    let report = mom.sync_now(WAIT).await.expect("synced");
    assert!(report.up_to_date, "{report:?}");
    assert_eq!(mom.profile(None).await.expect("profile").nickname, "엄마곰");

    // Someone else trying her email, answer lost or not, is still refused.
    let other = open(&dir.path().join("other")).await;
    other
        .create_account(&proxy, "mom@example.com", "가짜엄마")
        .await
        .expect_err("no answer");
    let taken = other
        .create_account(&relay.url(), "mom@example.com", "가짜엄마")
        .await
        .expect_err("taken");
    assert_eq!(taken.code, ErrorCode::EmailTaken, "{}", taken.message);
}

/// A keychain in memory, which can lose what it holds.
#[derive(Debug, Default)]
struct Keychain(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>);

impl doran_device::account::SecretStore for Keychain {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, doran_device::account::SecretError> {
        Ok(self.0.lock().expect("keychain").get(name).cloned())
    }

    fn set(&self, name: &str, value: &[u8]) -> Result<(), doran_device::account::SecretError> {
        self.0
            .lock()
            .expect("keychain")
            .insert(name.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), doran_device::account::SecretError> {
        self.0.lock().expect("keychain").remove(name);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_whose_keychain_lost_its_key_opens_signed_out_and_the_phrase_brings_all_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let keychain = std::sync::Arc::new(Keychain::default());
    let options = || doran_device::DeviceOptions {
        secrets: Some(keychain.clone()),
        ..doran_device::DeviceOptions::default()
    };
    let home = dir.path().join("mom");
    let mom = doran_device::Device::open(&home, options())
        .await
        .expect("opens");
    mom.create_account(&relay.url(), "mom@example.com", "엄마곰")
        .await
        .expect("account");
    // In the clear: a sealed family whose only member restores her account reads
    // everything back from the escrow but has nobody to let the restored device into
    // its key group (docs/security.md, recovery); this is about the keychain.
    let family = mom
        .create_family_with("우리 가족", "엄마", false)
        .await
        .expect("family");
    let album = mom.create_album(&family, "여름").await.expect("album");
    assert!(mom.sync_now(WAIT).await.expect("synced").up_to_date);
    let phrase = mom.recovery_phrase().expect("the phrase");
    mom.close().await;
    drop(mom);

    // The phone is restored from a backup without its keychain.
    keychain.0.lock().expect("keychain").clear();
    let mom = doran_device::Device::open(&home, options())
        .await
        .expect("opens, not broken");
    assert!(
        mom.account().await.expect("readable").is_none(),
        "signed out"
    );

    // The phrase brings the account back, with what this phone held.
    let account = mom
        .restore_account(&relay.url(), &phrase)
        .await
        .expect("restored");
    assert_eq!(account.email, "mom@example.com");
    assert!(mom.sync_now(WAIT).await.expect("synced").up_to_date);
    let albums = mom.albums(&family).await.expect("the family is here");
    assert!(albums.iter().any(|a| a.id == album), "{albums:?}");
    mom.create_album(&family, "겨울")
        .await
        .expect("and writable");
    assert!(mom.sync_now(WAIT).await.expect("synced").up_to_date);
}
