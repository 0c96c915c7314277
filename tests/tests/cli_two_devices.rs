//! The `doran` command line against the real relay binary: two people on two devices,
//! an invite, a mission ticked on one device seen on the other, and edits made with no
//! relay reachable that `doran sync` sends later.

use std::process::Command;

use doran_e2e::{Relay, doran, json, link_and_confirm, ok, tone_wav};

#[test]
fn a_mission_ticked_on_one_device_appears_on_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, son) = (dir.path().join("mom"), dir.path().join("son"));

    // Step 1: two accounts, a family, an invite the son accepts.
    ok(
        &mom,
        &[
            "account",
            "create",
            "--server",
            &relay.url(),
            "--email",
            "mom@example.com",
            "--name",
            "엄마곰",
        ],
    );
    ok(
        &son,
        &[
            "account",
            "create",
            "--server",
            &relay.url(),
            "--email",
            "son@example.com",
            "--name",
            "아들곰",
        ],
    );
    let family = ok(&mom, &["family", "create", "우리 가족", "--as", "엄마"]);
    let invite = ok(
        &mom,
        &["invite", "send", &family, "SON@example.com", "--as", "아들"],
    );
    let invites = json(&son, &["invite", "list"]);
    assert_eq!(invites[0]["invite"], invite.as_str());
    assert_eq!(invites[0]["proposed_name"], "아들");
    assert_eq!(
        invites[0]["text"],
        "엄마 님이 '우리 가족' 가족에 아들로 초대했어요."
    );
    assert_eq!(ok(&son, &["invite", "accept", &invite]), family);

    // Step 2: mom sees her son in the family and gives everyone a mission.
    ok(&mom, &["sync"]);
    let members = json(&mom, &["family", "show", &family]);
    assert_eq!(members["members"].as_array().map(Vec::len), Some(2));
    let mission = ok(&mom, &["mission", "add", &family, "가족 사진 찍기"]);
    ok(&mom, &["sync"]);

    // Step 3: the son ticks it; mom sees the tick and gets a notification.
    ok(&son, &["sync"]);
    ok(&son, &["mission", "done", &family, &mission]);
    ok(&son, &["sync"]);
    ok(&mom, &["sync"]);
    let list = json(&mom, &["mission", "list", &family]);
    let card = &list["missions"][0];
    assert_eq!(card["id"], mission.as_str());
    let son_tick = card["ticks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "아들"))
        .expect("the son takes part");
    assert!(son_tick["done_at"].is_i64(), "{son_tick}");
    let notes = json(&mom, &["notifications", "list"]);
    assert!(
        notes["items"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["text"] == "아들 님이 가족이 되었어요.")),
        "{notes}"
    );

    // Step 4: the son records a voice message (converted to MP3 on his device); mom
    // gets the entry and downloads the verified MP3.
    let wav = dir.path().join("hello.wav");
    std::fs::write(&wav, tone_wav(2.0)).expect("write the recording");
    let album = ok(&son, &["voice", "album", &family, "안부"]);
    let added = json(
        &son,
        &[
            "voice",
            "add",
            &family,
            &album,
            wav.to_str().expect("utf-8 path"),
            "--title",
            "잘 자요",
        ],
    );
    let voice = added["id"].as_str().expect("an id").to_owned();
    let ms = added["duration_ms"].as_u64().expect("a duration");
    assert!((1970..=2030).contains(&ms), "duration {ms} ms");
    ok(&son, &["sync"]);
    ok(&mom, &["sync"]);
    let mp3 = dir.path().join("got.mp3");
    ok(
        &mom,
        &[
            "voice",
            "get",
            &family,
            &voice,
            mp3.to_str().expect("utf-8 path"),
        ],
    );
    let bytes = std::fs::read(&mp3).expect("the MP3");
    assert!(bytes.starts_with(b"ID3"), "an ID3-tagged MP3");
    // It plays: ffprobe (installed by scripts/test) reads it as a 2-second MP3.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "default=nw=1",
        ])
        .arg(&mp3)
        .output()
        .expect("ffprobe is installed (scripts/test installs ffmpeg)");
    let probed = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && probed.contains("codec_name=mp3"),
        "{probed}"
    );
    let secs: f64 = probed
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .and_then(|d| d.parse().ok())
        .expect("a duration");
    assert!((secs - 2.0).abs() < 0.03, "ffprobe says {secs} s");
    let home = json(&mom, &["home", &family]);
    assert_eq!(
        home["latest_voice"]["headline"],
        "아들님이 음성메시지를 보냈어요!"
    );

    // Step 5: both devices export the same family.
    assert_eq!(
        ok(&mom, &["export", &family]),
        ok(&son, &["export", &family])
    );
}

#[test]
fn edits_with_no_relay_are_saved_and_sent_by_the_next_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("relay");
    let relay = Relay::start(&data, "127.0.0.1:0");
    let addr = relay.addr().to_string();
    let home = dir.path().join("dad");
    ok(
        &home,
        &[
            "account",
            "create",
            "--server",
            &relay.url(),
            "--email",
            "dad@example.com",
            "--name",
            "아빠곰",
        ],
    );
    let family = ok(&home, &["family", "create", "캠핑 가족", "--as", "아빠"]);
    ok(&home, &["sync"]);

    // Step 1: the relay goes away; edits still work and say they are queued.
    drop(relay);
    let saved = json(
        &home,
        &[
            "event",
            "add",
            &family,
            "--title",
            "캠핑",
            "--start",
            "2026-12-24",
            "--end",
            "2026-12-26",
        ],
    );
    assert!(saved["id"].is_string());
    let queued = json(&home, &["mission", "add", &family, "텐트 치기"]);
    assert!(queued["id"].is_string());
    // Two edits, and the listing of this year's volume the first one made.
    assert_eq!(json(&home, &["account", "show"])["pending"], 3);
    let failed = doran(&home, &["sync", "--timeout", "1"]);
    assert!(!failed.status.success(), "sync must fail with no relay");
    assert!(!String::from_utf8_lossy(&failed.stderr).is_empty());

    // Step 2: a bad input is refused, nothing queued.
    let refused = doran(
        &home,
        &[
            "mission",
            "add",
            &family,
            "이 미션 제목은 열일곱 글자를 훌쩍 넘어요",
        ],
    );
    assert!(!refused.status.success());
    // Two edits, and the listing of this year's volume the first one made.
    assert_eq!(json(&home, &["account", "show"])["pending"], 3);

    // Step 3: the relay is back on the same data and address; sync sends everything.
    let _relay = Relay::start(&data, &addr);
    assert_eq!(json(&home, &["sync"])["pending"], 0);
    assert_eq!(json(&home, &["account", "show"])["pending"], 0);

    // Step 4: a second device of the same person (linked with a code, confirmed on
    // the first) gets both edits.
    let laptop = dir.path().join("laptop");
    link_and_confirm(&home, &laptop, &format!("http://{addr}"));
    ok(&laptop, &["sync"]);
    let events = json(&laptop, &["event", "list", &family, "--month", "2026-12"]);
    assert_eq!(events["events"][0]["event"]["title"], "캠핑");
    let missions = json(&laptop, &["mission", "list", &family]);
    assert_eq!(missions["missions"][0]["title"], "텐트 치기");
}

/// A 2400×1600 JPEG: gradients with a little texture, like a photo of a sky.
fn test_photo_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(2400, 1600, |x, y| {
        let grain = ((x * 7 + y * 13) % 17) as u8;
        image::Rgb([(x / 10) as u8 ^ grain, (y / 7) as u8, ((x + y) / 16) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Jpeg)
        .expect("encode the test photo");
    bytes.into_inner()
}

#[test]
fn a_photo_added_offline_arrives_with_its_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("relay");
    let relay = Relay::start(&data, "127.0.0.1:0");
    let addr = relay.addr().to_string();
    let (phone, laptop) = (dir.path().join("phone"), dir.path().join("laptop"));

    // Step 1: an account on a phone, a family with an album, and a linked laptop.
    ok(
        &phone,
        &[
            "account",
            "create",
            "--server",
            &relay.url(),
            "--email",
            "grandma@example.com",
            "--name",
            "할머니곰",
        ],
    );
    let family = ok(&phone, &["family", "create", "사진 가족", "--as", "할머니"]);
    let album = ok(&phone, &["album", "create", &family, "여름 바다"]);
    ok(&phone, &["sync"]);
    link_and_confirm(&phone, &laptop, &relay.url());
    ok(&laptop, &["sync"]);

    // Step 2: the relay goes away; the phone adds a photo anyway.
    drop(relay);
    let original = dir.path().join("beach.jpg");
    std::fs::write(&original, test_photo_jpeg()).expect("write the photo");
    let added = json(
        &phone,
        &[
            "photo",
            "add",
            &family,
            &album,
            original.to_str().expect("utf-8 path"),
            "--caption",
            "바다에서",
        ],
    );
    let photo = added["id"].as_str().expect("an id").to_owned();
    assert_eq!(added["saved"], true);
    // The photo, and the listing of this year's volume it is the first entity of.
    assert_eq!(added["pending"], 2);
    assert_eq!(
        (added["width"].as_u64(), added["height"].as_u64()),
        (Some(1920), Some(1280))
    );
    assert!(!doran(&phone, &["sync", "--timeout", "1"]).status.success());
    // Not an image: refused, nothing queued.
    let refused = doran(
        &phone,
        &[
            "photo",
            "add",
            &family,
            &album,
            data.to_str().expect("utf-8"),
        ],
    );
    assert!(!refused.status.success());
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a picture").expect("write");
    let refused = doran(
        &phone,
        &[
            "photo",
            "add",
            &family,
            &album,
            notes.to_str().expect("utf-8"),
        ],
    );
    assert!(!refused.status.success());
    let refused = doran_e2e::json_error(
        &phone,
        &[
            "photo",
            "add",
            &family,
            &album,
            notes.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(refused["code"], "bad_photo");
    assert_eq!(refused["message"], "사진 파일을 읽을 수 없어요.");
    assert_eq!(json(&phone, &["account", "show"])["pending"], 2);

    // Step 3: the relay is back; the phone sends the entry and both blobs; the laptop
    // gets the entry and downloads the verified display copy and thumbnail.
    let _relay = Relay::start(&data, &addr);
    assert_eq!(json(&phone, &["sync"])["pending"], 0);
    ok(&laptop, &["sync"]);
    let export: serde_json::Value =
        serde_json::from_str(&ok(&laptop, &["export", &family])).expect("export JSON");
    let entry = &export["photos"][photo.as_str()];
    assert_eq!(entry["caption"], "바다에서");
    assert_eq!(entry["mime"], "image/jpeg");
    for (args, hash_field) in [(&[][..], "blob"), (&["--thumb"][..], "thumb")] {
        let out = dir.path().join(format!("got-{hash_field}.jpg"));
        let mut get = vec![
            "photo",
            "get",
            &family,
            &photo,
            out.to_str().expect("utf-8"),
        ];
        get.extend_from_slice(args);
        ok(&laptop, &get);
        let bytes = std::fs::read(&out).expect("the photo");
        // The relay holds them sealed under the entry's key: that is what the
        // document's hash names.
        assert_eq!(
            entry[hash_field].as_str(),
            doran_e2e::sealed_hash(&bytes, &entry[format!("{hash_field}_key")]).as_deref(),
            "{hash_field} bytes, sealed with the entry's key, match the hash in the document"
        );
        let img =
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("a JPEG");
        let long = img.width().max(img.height());
        if hash_field == "blob" {
            assert_eq!((img.width(), img.height()), (1920, 1280));
            assert_eq!(entry["size"].as_u64(), Some(bytes.len() as u64));
            assert!(bytes.len() <= 900_000);
        } else {
            assert!(long <= 320, "thumbnail {}×{}", img.width(), img.height());
        }
    }
    assert_eq!(
        ok(&phone, &["export", &family]),
        ok(&laptop, &["export", &family])
    );
}
