//! Profile photos over the real relay: an avatar set before any family is seen by a
//! family member who joins later, through `doran profile avatar`; a stranger gets
//! neither the profile nor, knowing the hash, the bytes.

use doran_device::sync_error::SyncError;
use doran_e2e::{Relay, blob_client, create_account, doran, json, ok};
use doran_protocol::{BlobHash, ErrorCode};

/// A 1200×800 PNG with some texture.
fn picture() -> Vec<u8> {
    let img = image::RgbImage::from_fn(1200, 800, |x, y| {
        image::Rgb([(x / 5) as u8, (y / 3) as u8, ((x ^ y) % 256) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode the picture");
    bytes.into_inner()
}

#[test]
fn a_family_member_downloads_an_avatar_and_a_stranger_cannot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, son, stranger) = (
        dir.path().join("mom"),
        dir.path().join("son"),
        dir.path().join("stranger"),
    );
    let mom_id = create_account(&mom, &relay.url(), "mom@example.com", "엄마곰");
    create_account(&son, &relay.url(), "son@example.com", "아들곰");
    create_account(&stranger, &relay.url(), "who@example.com", "낯선이");

    // Step 1: mom, in no family yet, sets her profile photo (saved and queued), and
    // syncs: the personal blob goes up with her personal document.
    let file = dir.path().join("me.png");
    std::fs::write(&file, picture()).expect("write the picture");
    let set = json(
        &mom,
        &["profile", "set", "--avatar", file.to_str().expect("utf-8")],
    );
    assert_eq!(set["saved"], true);
    let hash = set["avatar"]
        .as_str()
        .expect("the avatar's hash")
        .to_owned();
    ok(&mom, &["sync"]);
    let mine = json(&mom, &["profile", "show"]);
    assert_eq!(mine["avatar"], hash.as_str());

    // Step 2: a family made afterwards, which the son joins.
    let family = ok(&mom, &["family", "create", "우리 가족", "--as", "엄마"]);
    let invite = ok(
        &mom,
        &["invite", "send", &family, "son@example.com", "--as", "아들"],
    );
    assert_eq!(ok(&son, &["invite", "accept", &invite]), family);
    ok(&son, &["sync"]);

    // Step 3: the son sees mom's profile and downloads her photo: the relay's bytes
    // (sealed, blake3 = the hash in her profile) open to a 512×512 JPEG.
    let hers = json(&son, &["profile", "show", &mom_id]);
    assert_eq!(hers["nickname"], "엄마곰");
    assert_eq!(hers["avatar"], hash.as_str());
    let out = dir.path().join("mom.jpg");
    let got = json(
        &son,
        &["profile", "avatar", &mom_id, out.to_str().expect("utf-8")],
    );
    let bytes = std::fs::read(&out).expect("the avatar was written");
    assert_eq!(got["bytes"], bytes.len());
    let stored = std::fs::read(relay.data().join("blobs").join(&hash[..2]).join(&hash))
        .expect("the relay keeps the avatar under its hash");
    assert_eq!(blake3::hash(&stored).to_hex().as_str(), hash);
    assert!(
        stored.starts_with(&doran_device::core::seal::HEADER),
        "sealed"
    );
    let img =
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("a JPEG");
    assert_eq!((img.width(), img.height()), (512, 512));
    // Mom's own device reads it too (from its cache).
    let own = dir.path().join("own.jpg");
    ok(
        &mom,
        &["profile", "avatar", "me", own.to_str().expect("utf-8")],
    );
    assert_eq!(std::fs::read(&own).expect("written"), bytes);

    // Step 4: the stranger shares no family with mom: no profile of hers on that
    // device, and the relay refuses the bytes even to someone who knows the hash.
    ok(&stranger, &["sync"]);
    let refused = doran(
        &stranger,
        &["profile", "avatar", &mom_id, out.to_str().expect("utf-8")],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("프로필이 아직 없어요"), "{stderr}");
    // The stranger's own device keys, asking the relay for the bytes by hash.
    let (_, client) = blob_client(&stranger, &relay.url());
    let blob: BlobHash = hash.parse().expect("a hash");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    match runtime.block_on(client.get(blob)) {
        Err(SyncError::Refused { code, .. }) => {
            assert_eq!(code, ErrorCode::NotFound);
        }
        other => panic!("the relay must refuse a stranger: {other:?}"),
    }

    // Step 5: going back to the default avatar.
    ok(&mom, &["profile", "set", "--no-avatar"]);
    assert_eq!(
        json(&mom, &["profile", "show"])["avatar"],
        serde_json::Value::Null
    );
    let none = doran(
        &mom,
        &["profile", "avatar", "me", own.to_str().expect("utf-8")],
    );
    assert!(!none.status.success(), "the default avatar has no file");
}
