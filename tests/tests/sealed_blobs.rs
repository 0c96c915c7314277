//! Sealed blobs against the real relay: after a family shares a photo, a voice message
//! and a profile photo through `doran`, the relay's data folder — its SQLite file and
//! its blob folder — holds none of their bytes; the other member's device opens them
//! with the keys from the entries; and a ranged download opens on its own. (A key
//! that does not open its blob: `hostile_member_blobs`.)

use std::path::Path;

use doran_device::core::seal;
use doran_e2e::{
    Relay, blob_client, contains, create_account, files_under, json, ok, pieces, tone_wav,
};
use doran_protocol::BlobHash;

/// A 2000×1500 JPEG with texture, and a recognisable comment in its header.
fn photo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(2000, 1500, |x, y| {
        let grain = ((x * 7 + y * 13) % 17) as u8;
        image::Rgb([(x / 8) as u8 ^ grain, (y / 6) as u8, ((x + y) / 16) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Jpeg)
        .expect("encode the photo");
    bytes.into_inner()
}

#[test]
fn the_relay_keeps_no_photo_voice_or_avatar_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, son) = (dir.path().join("mom"), dir.path().join("son"));
    let mom_id = create_account(&mom, &relay.url(), "mom@example.com", "엄마곰");
    create_account(&son, &relay.url(), "son@example.com", "아들곰");
    let family = ok(&mom, &["family", "create", "우리 가족", "--as", "엄마"]);
    let invite = ok(
        &mom,
        &["invite", "send", &family, "son@example.com", "--as", "아들"],
    );
    assert_eq!(ok(&son, &["invite", "accept", &invite]), family);
    ok(&mom, &["sync"]);

    // Step 1: mom adds a photo and a profile photo; the son records a voice message.
    let original = dir.path().join("beach.jpg");
    std::fs::write(&original, photo()).expect("write the photo");
    let album = ok(&mom, &["album", "create", &family, "여름 바다"]);
    let added = json(
        &mom,
        &[
            "photo",
            "add",
            &family,
            &album,
            original.to_str().expect("utf-8"),
            "--caption",
            "바다에서",
        ],
    );
    let photo_id = added["id"].as_str().expect("an id").to_owned();
    let set = json(
        &mom,
        &[
            "profile",
            "set",
            "--avatar",
            original.to_str().expect("utf-8"),
        ],
    );
    let avatar_hash = set["avatar"].as_str().expect("a hash").to_owned();
    ok(&mom, &["sync"]);
    ok(&son, &["sync"]);
    let wav = dir.path().join("hello.wav");
    std::fs::write(&wav, tone_wav(12.0)).expect("write the recording");
    let voices = ok(&son, &["voice", "album", &family, "안부"]);
    let voice = json(
        &son,
        &[
            "voice",
            "add",
            &family,
            &voices,
            wav.to_str().expect("utf-8"),
            "--title",
            "잘 자요",
        ],
    );
    let voice_id = voice["id"].as_str().expect("an id").to_owned();
    ok(&son, &["sync"]);
    ok(&mom, &["sync"]);

    // Step 2: each side opens what the other made: a JPEG, an MP3, a 512 px avatar.
    let got = |home: &Path, args: &[&str], name: &str| {
        let out = dir.path().join(name);
        let mut all = args.to_vec();
        all.push(out.to_str().expect("utf-8"));
        ok(home, &all);
        std::fs::read(&out).expect("written")
    };
    let display = got(&son, &["photo", "get", &family, &photo_id], "display.jpg");
    let thumb = got(
        &son,
        &["photo", "get", &family, &photo_id, "--thumb"],
        "thumb.jpg",
    );
    let avatar = got(&son, &["profile", "avatar", &mom_id], "avatar.jpg");
    let mp3 = got(&mom, &["voice", "get", &family, &voice_id], "voice.mp3");
    for (what, bytes) in [
        ("display", &display),
        ("thumbnail", &thumb),
        ("avatar", &avatar),
    ] {
        assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]), "{what}: a JPEG");
    }
    let img = image::load_from_memory(&avatar).expect("the avatar decodes");
    assert_eq!((img.width(), img.height()), (512, 512));
    assert!(mp3.starts_with(b"ID3"), "an MP3");
    // The sender's own copies are the same bytes.
    let mine = got(&mom, &["photo", "get", &family, &photo_id], "mine.jpg");
    assert_eq!(mine, display);

    // Step 3: the relay's folder. Every blob it holds is sealed (the header, no JPEG
    // or MP3 start) and addressed by the hash of the sealed bytes; no file of the
    // relay — SQLite, its WAL, the blobs — holds any piece of the photo, the
    // thumbnail, the avatar, the MP3 or the original.
    let stored = files_under(relay.data());
    let blobs: Vec<_> = stored
        .iter()
        .filter(|(p, _)| p.components().any(|c| c.as_os_str() == "blobs"))
        .collect();
    assert!(
        blobs.len() >= 4,
        "display, thumbnail, avatar and MP3 are stored"
    );
    let mut sealed_count = 0;
    for (path, bytes) in &blobs {
        // Family and personal document snapshots are stored there too, not sealed yet.
        if bytes.starts_with(&seal::HEADER) {
            sealed_count += 1;
        }
        assert!(
            !bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            "{path:?} is a JPEG"
        );
        assert!(!bytes.starts_with(b"ID3"), "{path:?} is an MP3");
    }
    assert!(sealed_count >= 4, "{sealed_count} sealed blobs");
    let avatar_file = blobs
        .iter()
        .find(|(p, _)| p.to_string_lossy().contains(&avatar_hash))
        .expect("the avatar's blob is where its hash says");
    assert_eq!(
        blake3::hash(&avatar_file.1).to_hex().as_str(),
        avatar_hash,
        "the relay addresses the sealed bytes"
    );
    let original_bytes = std::fs::read(&original).expect("the original");
    for (what, plain) in [
        ("display", &display),
        ("thumbnail", &thumb),
        ("avatar", &avatar),
        ("mp3", &mp3),
        ("original", &original_bytes),
    ] {
        for piece in pieces(plain) {
            for (path, bytes) in &stored {
                assert!(
                    !contains(bytes, piece),
                    "{path:?} holds a piece of the {what}"
                );
            }
        }
    }

    // Step 4: a ranged download of the MP3's sealed bytes opens on its own — the
    // second segment alone, without the rest of the blob.
    let (store, client) = blob_client(&mom, &relay.url());
    let list = json(&mom, &["voice", "list", &family]);
    let hash: BlobHash = list[0]["blob"]
        .as_str()
        .expect("the voice's blob")
        .parse()
        .expect("a hash");
    let record = store
        .blob(hash)
        .expect("the store")
        .expect("mom's device has the MP3");
    let key = record.key.expect("the MP3 is sealed");
    assert_eq!(record.size, mp3.len() as u64);
    let want = (seal::SEGMENT as u64 + 10, seal::SEGMENT as u64 + 5000);
    assert!(want.1 <= record.size, "a 12 s MP3 spans two segments");
    let span = seal::span(record.size, want.0, want.1).expect("a span");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let sealed = runtime
        .block_on(client.get_range(hash, span.sealed.0, span.sealed.1))
        .expect("the relay answers a range");
    let opened = seal::open_span(&key, &span, &sealed).expect("it opens");
    assert_eq!(opened, mp3[want.0 as usize..want.1 as usize]);
    // The same bytes do not open with another blob's key.
    let other = store
        .blob(avatar_hash.parse().expect("a hash"))
        .expect("the store")
        .and_then(|r| r.key)
        .expect("the avatar is sealed");
    assert!(seal::open_span(&other, &span, &sealed).is_err());

    // Step 5: a device that lost its copies fetches the sealed bytes again and opens
    // them with the entry's key.
    std::fs::remove_dir_all(son.join("blobs")).expect("drop the son's cache");
    std::fs::create_dir_all(son.join("blobs")).expect("an empty cache");
    let again = got(&son, &["photo", "get", &family, &photo_id], "again.jpg");
    assert_eq!(again, display);
}
