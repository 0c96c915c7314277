//! A device's blob requests over the real relay: uploads and the first download are
//! signed by the device key, the next downloads are proved by the session key the
//! relay gave with a signed request's answer (a keyed hash instead of an ed25519
//! signature each); a relay that restarted turns the old key away, and the device
//! signs that download again without its caller seeing anything but the bytes.
//! A device signed in over the websocket is given a key there too: its first download
//! after connecting is MAC'd.

use std::net::SocketAddr;

use doran_device::core::store::BlobOwner;
use doran_e2e::{
    Relay, blob_client, create_account,
    devices::{WAIT, mom_and_son, open},
    png, relay_metrics,
};
use doran_protocol::BlobHash;

/// The relay's counts of accepted HTTP requests: (signed, MAC'd).
fn proofs(relay: SocketAddr) -> (u64, u64) {
    let count = relay_metrics(relay);
    (
        count("doran_http_signed_total"),
        count("doran_http_maced_total"),
    )
}

#[test]
fn a_device_proves_its_blob_requests_with_the_relay_s_session_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let mom = dir.path().join("mom");
    create_account(&mom, &relay.url(), "mom@example.com", "엄마곰");
    let (_, client) = blob_client(&mom, &relay.url());
    let bytes = b"a thumbnail's worth of bytes ".repeat(100);
    let hash = BlobHash::of(&bytes);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let download = |hash| runtime.block_on(client.get(hash)).expect("downloaded");

    let before = proofs(relay.addr());
    runtime
        .block_on(client.put(hash, BlobOwner::Me, bytes.clone()))
        .expect("uploaded");
    for _ in 0..3 {
        assert_eq!(download(hash), bytes);
    }
    // An upload is signed whatever key the device holds: a signature is nothing
    // beside its body, and a refused MAC would have the body sent twice.
    let more = b"a voice message's worth of bytes ".repeat(300);
    runtime
        .block_on(client.put(BlobHash::of(&more), BlobOwner::Me, more.clone()))
        .expect("uploaded");
    assert_eq!(
        proofs(relay.addr()),
        (before.0 + 2, before.1 + 3),
        "the uploads signed, the three downloads MAC'd"
    );

    // The relay restarts on the same address with a new secret: the device's key is
    // refused, and the same download goes again, signed, bringing a new key.
    relay.restart();
    assert_eq!(download(hash), bytes);
    assert_eq!(
        proofs(relay.addr()),
        (1, 0),
        "the refused MAC is not counted; the signed retry is"
    );
    assert_eq!(download(hash), bytes);
    assert_eq!(
        proofs(relay.addr()),
        (1, 1),
        "and the new key proves the next"
    );

    // A large upload as the first request after a restart goes through at once
    // (signed), and its answer brings the key the next download uses.
    relay.restart();
    let photo: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let photo_hash = BlobHash::of(&photo);
    runtime
        .block_on(client.put(photo_hash, BlobOwner::Me, photo.clone()))
        .expect("uploaded after the restart");
    assert_eq!(proofs(relay.addr()), (1, 0));
    assert_eq!(download(photo_hash), photo);
    assert_eq!(proofs(relay.addr()), (1, 1));

    // Downloads sent together under a key the relay refuses (it restarted) are one
    // refusal, not one each: the next download is MAC'd again.
    relay.restart();
    let together = runtime.block_on(async {
        let mut all = Vec::new();
        for _ in 0..4 {
            let client = client.clone();
            all.push(tokio::spawn(async move { client.get(photo_hash).await }));
        }
        let mut got = Vec::new();
        for one in all {
            got.push(one.await.expect("joined").expect("downloaded"));
        }
        got
    });
    assert!(together.iter().all(|bytes| *bytes == photo));
    let (signed, maced) = proofs(relay.addr());
    assert_eq!(download(photo_hash), photo);
    assert_eq!(
        proofs(relay.addr()),
        (signed, maced + 1),
        "the device still uses keys after one restart, whatever was in flight"
    );

    // A relay that keeps refusing the keys it gave (here: restarted before each
    // download; relays behind one address not sharing their secret do the same) has
    // each download sent twice. After three refusals with no MAC accepted between,
    // the device signs every request for an hour: one request each again.
    for _ in 0..2 {
        relay.restart();
        assert_eq!(download(photo_hash), photo);
        assert_eq!(proofs(relay.addr()), (1, 0), "a refused MAC, then signed");
    }
    relay.restart();
    for _ in 0..3 {
        assert_eq!(download(photo_hash), photo);
    }
    assert_eq!(
        proofs(relay.addr()),
        (3, 0),
        "the device holds a key from the first, but signs every request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_s_first_download_after_signing_in_is_proved_by_the_sign_in_s_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let family = mom_and_son(dir.path(), &relay.url()).await;
    let (mom, son) = (family.mom, family.son);
    // The son's phone is off while mom shares a photo.
    son.close().await;
    drop(son);
    let album = mom
        .create_album(&family.family, "바다")
        .await
        .expect("album");
    let photo = mom
        .add_photo_bytes(&family.family, &album, png(4), "")
        .await
        .expect("photo");
    mom.sync_now(WAIT).await.expect("uploaded");
    mom.close().await;

    // A fresh start of the relay's counts (and of its secret). The son's phone opens
    // with a new blob client, which knows neither the relay's id nor a key: the
    // sign-in brings both, so the grid's thumbnail and the photo opened after it come
    // down with a MAC each: no signature.
    relay.restart();
    let son = open(&family.son_home).await;
    son.sync_now(WAIT).await.expect("synced");
    let got = son
        .fetch_photo(&family.family, &photo, false)
        .await
        .expect("the photo arrives");
    assert!(std::fs::metadata(&got).expect("a file").len() > 0);
    son.fetch_photo(&family.family, &photo, true)
        .await
        .expect("the thumbnail arrives");
    let (signed, maced) = proofs(relay.addr());
    assert_eq!(signed, 0, "nothing signed since the sign-in");
    assert!(maced >= 2, "the downloads MAC'd: {maced}");
}
