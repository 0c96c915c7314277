//! A hostile member's blobs against the real relay: a modified client points a
//! photo's thumbnail at a picture far larger than any thumbnail (what a decompression
//! bomb or a file crafted against an image decoder would ride on). The other members'
//! devices refuse to hand it to their screens (`BadPhoto`, shown as a placeholder),
//! while the photo's real display copy still shows — until the client gives it a key
//! that does not open it, and nothing shows (nor is it downloaded again on every look).

use automerge::{ObjType, ROOT, ReadDoc, transaction::Transactable};
use doran_device::ErrorCode;
use doran_e2e::{
    Relay,
    devices::{MomAndSon, WAIT, mom_and_son, stored_family, up_to_date},
};
use doran_protocol::FamilyId;

/// A flat 2400 × 1600 PNG: small to send, its display copy 1920 px wide.
fn wide_photo() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(2400, 1600, image::Rgb([90, 160, 220]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode");
    bytes.into_inner()
}

/// What a modified client at `home` (its sync stopped) does to the photo `photo`
/// added this year: `write` on its entry in this year's volume, raw, committed to the
/// store as one change (`message`, `time`) that the device's next sync pushes.
fn rogue_photo_edit(
    (home, family, user): (&std::path::Path, &str, &str),
    photo: &str,
    (message, time): (&str, i64),
    write: impl FnOnce(&mut automerge::AutoCommit, &automerge::ObjId),
) {
    // (A photo added this year is kept in this year's volume.)
    let year = doran_e2e::this_year();
    let (store, doc, mut fd) = stored_family(home, family, user);
    let volume = fd.volume_mut(year).expect("this year's volume");
    let entry = photo_entry(volume.doc_mut(), photo);
    write(volume.doc_mut(), &entry);
    let change = volume.commit(message, time).expect("a change");
    store
        .commit_local(FamilyId(doc.0).volume(year), &change)
        .expect("queued");
}

/// The map of the photo `photo` in a raw family document (or volume).
fn photo_entry(raw: &automerge::AutoCommit, photo: &str) -> automerge::ObjId {
    let photos = match raw.get(ROOT, "photos").expect("photos") {
        Some((automerge::Value::Object(ObjType::Map), id)) => id,
        other => panic!("no photos map: {other:?}"),
    };
    match raw.get(&photos, photo).expect("the photo") {
        Some((automerge::Value::Object(ObjType::Map), id)) => id,
        other => panic!("no photo entry: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_that_is_not_a_thumbnail_never_reaches_the_screen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let MomAndSon {
        family,
        mom,
        mut mom_events,
        son,
        mut son_events,
        son_home,
        son_account,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;
    let album = son.create_album(&family, "여행").await.expect("album");
    let photo = son
        .add_photo_bytes(&family, &album, wide_photo(), "바다")
        .await
        .expect("photo");
    up_to_date(&son, &mut son_events).await;
    // Its blobs are up too (the change can reach mom before them, and then she is
    // told "not found", not what the bytes are).
    let sent = son.sync_now(WAIT).await.expect("synced");
    assert_eq!(sent.pending_blobs, 0, "{sent:?}");

    // The son's modified client points the photo's thumbnail at its 1920 px display
    // copy (any bytes he uploaded would do).
    son.stop_sync();
    let (_, _, fd) = stored_family(&son_home, &family, &son_account.user);
    let display = fd.view().photos[&photo].blob.clone();
    let display_key = fd.view().photos[&photo]
        .blob_key
        .expect("the display copy is sealed");
    // The key goes with it (a member reads every key in the entries): the bytes
    // open, and are then checked for what they are.
    rogue_photo_edit(
        (&son_home, &family, &son_account.user),
        &photo,
        ("rogue", 1),
        |raw, entry| {
            raw.put(entry, "thumb", display.as_str())
                .expect("raw write");
            raw.put(entry, "thumb_key", display_key.as_bytes().to_vec())
                .expect("raw write");
        },
    );
    son.start_sync();
    up_to_date(&son, &mut son_events).await;

    // Mom's phone has the photo with the rogue thumbnail…
    let arrived = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(detail) = mom.photo(&family, &photo).await
                && detail.photo.thumb == display
            {
                return;
            }
            let _ = mom_events.next().await;
        }
    })
    .await;
    assert!(arrived.is_ok(), "the rogue thumbnail arrived");
    // …and will not show it as a thumbnail: a placeholder, not a 1920 px picture in
    // a grid cell.
    let refused = mom
        .fetch_photo(&family, &photo, true)
        .await
        .expect_err("not a thumbnail");
    assert_eq!(refused.code, ErrorCode::BadPhoto, "{}", refused.message);
    let refused = mom
        .photo_file(&family, &photo, true)
        .await
        .expect_err("not from the cache either");
    assert_eq!(refused.code, ErrorCode::BadPhoto, "{}", refused.message);
    // The same bytes as what they are, a display copy, do show.
    let path = mom
        .fetch_photo(&family, &photo, false)
        .await
        .expect("the display copy");
    assert!(path.exists());

    // Then the modified client gives the display copy a key that does not open it:
    // mom's phone, which holds the bytes opened with the right key, shows nothing
    // under the wrong one (a placeholder).
    son.stop_sync();
    rogue_photo_edit(
        (&son_home, &family, &son_account.user),
        &photo,
        ("rogue key", 2),
        |raw, entry| {
            raw.put(entry, "blob_key", vec![7u8; 32])
                .expect("raw write");
        },
    );
    son.start_sync();
    up_to_date(&son, &mut son_events).await;
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            match mom.fetch_photo(&family, &photo, false).await {
                Err(e) => return e,
                Ok(_) => {
                    let _ = mom_events.next().await;
                }
            }
        }
    })
    .await
    .expect("the wrong key arrived");
    assert_eq!(refused.code, ErrorCode::BadPhoto, "{}", refused.message);
    // The cached bytes were opened with the other key: not handed out for this one.
    // And the refusal is remembered: asked again, mom's phone answers with the
    // placeholder at once instead of downloading the blob on every look — with the
    // relay gone, asking would otherwise wait for it and fail as offline.
    relay.kill();
    let refused = mom
        .photo_file(&family, &photo, false)
        .await
        .expect_err("remembered as refused");
    assert_eq!(refused.code, ErrorCode::BadPhoto, "{}", refused.message);
    let refused = mom
        .fetch_photo(&family, &photo, false)
        .await
        .expect_err("remembered as refused");
    assert_eq!(refused.code, ErrorCode::BadPhoto, "{}", refused.message);
}
