//! A sealed family through `doran`, against the real relay (issue 18, item 7): mom
//! creates the family (sealed: the command line's default); her device keeps a
//! `doran watch` running while her son joins (the watcher and the commands share one
//! device's keys); they share a mission, a photo with a caption and a voice message,
//! each reads the other's — and the relay's data folder (its SQLite file, its WAL,
//! its blob folder) holds none of the Korean text — the family's title and 호칭
//! included — and no piece of the photo or the MP3.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
};

use doran_e2e::{
    Relay, contains, create_account, doran_cmd, files_under, json, json_error, ok, pieces, tone_wav,
};

/// A 1200×900 JPEG with texture.
fn photo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(1200, 900, |x, y| {
        let grain = ((x * 7 + y * 13) % 17) as u8;
        image::Rgb([(x / 5) as u8 ^ grain, (y / 4) as u8, ((x + y) / 9) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Jpeg)
        .expect("encode the photo");
    bytes.into_inner()
}

fn sync(home: &Path) {
    assert_eq!(json(home, &["sync", "--timeout", "20"])["pending"], 0);
}

/// A relay, mom's and her son's accounts on the command line (homes under `dir`), and
/// mom's family "우리 가족" — sealed, the command line's default — where she is "엄마".
fn mom_and_son(dir: &Path) -> (Relay, PathBuf, PathBuf, String) {
    let relay = Relay::start(&dir.join("relay"), "127.0.0.1:0");
    let (mom, son) = (dir.join("mom"), dir.join("son"));
    // Nicknames are the directory's (the relay knows them); the family's title and
    // 호칭 are not, and nothing else spells them.
    create_account(&mom, &relay.url(), "mom@example.com", "곰돌이맘");
    create_account(&son, &relay.url(), "son@example.com", "곰돌이");
    let family = ok(&mom, &["family", "create", "우리 가족", "--as", "엄마"]);
    (relay, mom, son, family)
}

#[test]
fn a_sealed_family_shares_text_a_photo_and_a_voice_and_the_relay_reads_none_of_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mom, son, family) = mom_and_son(dir.path());
    let mission = ok(
        &mom,
        &["mission", "add", &family, "할머니께 안부 전화 드리기"],
    );
    sync(&mom);

    // Mom's device stays online, watching, while her son joins.
    let mut watch = doran_cmd(&mom, &["--json", "watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("doran watch starts");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let invite = ok(
        &mom,
        &["invite", "send", &family, "son@example.com", "--as", "아들"],
    );
    assert_eq!(ok(&son, &["invite", "accept", &invite]), family);
    sync(&son);
    let seen = ok(&son, &["export", &family]);
    assert!(seen.contains("할머니께 안부 전화 드리기"), "{seen}");
    assert!(seen.contains(&mission));

    // Mom's mood, in her sealed personal document: her son's device reads it with
    // the key her device published in the family's document; the relay does not.
    ok(&mom, &["profile", "set", "--mood", "sleepy"]);
    sync(&mom);
    let mom_user = json(&mom, &["profile", "show"])["user"]
        .as_str()
        .expect("her user id")
        .to_owned();
    let mut shown = serde_json::Value::Null;
    for _ in 0..20 {
        sync(&son);
        shown = json(&son, &["profile", "show", &mom_user]);
        if shown["mood"]["key"] == "sleepy" {
            break;
        }
    }
    assert_eq!(shown["mood"]["key"], "sleepy", "{shown}");

    // A photo with a caption from mom, a voice message from her son.
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
            "바닷가에서 찰칵",
        ],
    );
    let photo_id = added["id"].as_str().expect("an id").to_owned();
    sync(&mom);
    let wav = dir.path().join("hello.wav");
    std::fs::write(&wav, tone_wav(4.0)).expect("write the recording");
    let voices = ok(&son, &["voice", "album", &family, "안부 인사"]);
    let voice = json(
        &son,
        &[
            "voice",
            "add",
            &family,
            &voices,
            wav.to_str().expect("utf-8"),
            "--title",
            "엄마 잘 자요",
        ],
    );
    let voice_id = voice["id"].as_str().expect("an id").to_owned();
    sync(&son);
    sync(&mom);

    // Each opens the other's.
    let got = |home: &Path, args: &[&str], name: &str| {
        let out = dir.path().join(name);
        let mut all = args.to_vec();
        all.push(out.to_str().expect("utf-8"));
        ok(home, &all);
        std::fs::read(&out).expect("written")
    };
    let display = got(&son, &["photo", "get", &family, &photo_id], "display.jpg");
    assert!(display.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    let mp3 = got(&mom, &["voice", "get", &family, &voice_id], "voice.mp3");
    assert!(mp3.starts_with(b"ID3"), "an MP3");
    let _ = watch.kill();
    let _ = watch.wait();
    // The watcher said something all along (it was alive).
    assert!(lines.next().is_some());

    // The relay's folder holds none of it.
    let stored = files_under(relay.data());
    assert!(stored.iter().any(|(p, _)| p.ends_with("relay.sqlite")));
    let original_bytes = std::fs::read(&original).expect("the original");
    for text in [
        // The family's title and both 호칭 (protocol 7: the relay never gets them,
        // the invite's card included).
        "우리 가족",
        "엄마",
        "아들",
        "할머니께 안부 전화 드리기",
        "여름 바다",
        "바닷가에서 찰칵",
        "안부 인사",
        "엄마 잘 자요",
        "Sleepy",
    ] {
        for (path, bytes) in &stored {
            assert!(
                !contains(bytes, text.as_bytes()),
                "{path:?} holds {text:?} in the clear"
            );
        }
    }
    for (what, plain) in [
        ("display", &display),
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
    for (path, bytes) in &stored {
        assert!(
            !bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            "{path:?} is a JPEG"
        );
        assert!(!bytes.starts_with(b"ID3"), "{path:?} is an MP3");
    }
}

/// Mom invites her son and goes offline; he accepts and reads the family's past at
/// once, with nobody else's device online: her `invite send` added his device to the
/// family's key group from the key package it published when his account was made,
/// and sent the history. He writes; mom's next sync reads it. The family is sealed by
/// default on the command line too.
#[test]
fn an_invitee_reads_a_sealed_family_at_once_with_the_inviter_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mom, son, family) = mom_and_son(dir.path());
    ok(&mom, &["mission", "add", &family, "화분에 물 주기"]);
    let invite = ok(
        &mom,
        &["invite", "send", &family, "son@example.com", "--as", "아들"],
    );
    sync(&mom);

    // Mom's device is offline now: her son accepts, and reads.
    assert_eq!(ok(&son, &["invite", "accept", &invite]), family);
    sync(&son);
    let seen = ok(&son, &["export", &family]);
    assert!(seen.contains("화분에 물 주기"), "{seen}");
    ok(&son, &["mission", "add", &family, "설거지 하기"]);
    sync(&son);
    sync(&mom);
    let seen = ok(&mom, &["export", &family]);
    assert!(seen.contains("설거지 하기"), "{seen}");

    // Neither mission is in the relay's files in the clear.
    for (path, bytes) in files_under(relay.data()) {
        for text in ["화분에 물 주기", "설거지 하기"] {
            assert!(
                !contains(&bytes, text.as_bytes()),
                "{path:?} holds {text:?} in the clear"
            );
        }
    }
}

/// `--clear` keeps a family's document readable by the relay (for those who choose
/// it): its chunks are plain Automerge changes — until its host runs `family seal`:
/// her son's device turns, is let in, reads and writes sealed, and once his device
/// confirms her sealed snapshot no file of the relay holds the family's text.
#[test]
fn a_family_created_clear_stays_clear_until_its_host_seals_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let mom = dir.path().join("mom");
    create_account(&mom, &relay.url(), "mom@example.com", "엄마곰");
    let family = ok(
        &mom,
        &["family", "create", "우리 가족", "--as", "엄마", "--clear"],
    );
    ok(&mom, &["mission", "add", &family, "화분에 물 주기"]);
    sync(&mom);
    let shown = json(&mom, &["family", "list"]);
    assert_eq!(shown[0]["sealed"], false, "{shown}");
    assert!(
        files_under(relay.data())
            .iter()
            .any(|(_, bytes)| contains(bytes, "화분에 물 주기".as_bytes())),
        "the relay reads a clear family"
    );

    let son = dir.path().join("son");
    create_account(&son, &relay.url(), "son@example.com", "아들곰");
    let invite = ok(
        &mom,
        &["invite", "send", &family, "son@example.com", "--as", "아들"],
    );
    assert_eq!(ok(&son, &["invite", "accept", &invite]), family);
    ok(&son, &["mission", "add", &family, "설거지 하기"]);
    sync(&son);

    // Only the host seals it; once sealed, asking again changes nothing.
    assert_eq!(
        json_error(&son, &["family", "seal", &family])["code"],
        "forbidden"
    );
    assert_eq!(json(&mom, &["family", "seal", &family])["done"], "sealed");
    assert_eq!(
        json(&mom, &["family", "seal", &family])["done"],
        "already sealed"
    );
    ok(&mom, &["mission", "add", &family, "봉인 뒤 장보기"]);
    sync(&mom);
    sync(&son);
    ok(&son, &["mission", "add", &family, "봉인 뒤 빨래"]);
    sync(&son);
    for home in [&mom, &son] {
        let seen = ok(home, &["export", &family]);
        for title in ["화분에 물 주기", "설거지 하기", "봉인 뒤 장보기"] {
            assert!(seen.contains(title), "{title} missing: {seen}");
        }
        let shown = json(home, &["family", "list"]);
        assert_eq!(shown[0]["sealed"], true, "{shown}");
    }
    // Mom's sealed snapshot, confirmed by her son's device, replaces the clear
    // history on the relay.
    let readable = || {
        files_under(relay.data()).into_iter().any(|(_, bytes)| {
            ["화분에 물 주기", "설거지 하기", "봉인 뒤"]
                .iter()
                .any(|t| contains(&bytes, t.as_bytes()))
        })
    };
    for _ in 0..10 {
        if !readable() {
            break;
        }
        sync(&mom);
        sync(&son);
    }
    assert!(
        !readable(),
        "the relay still reads the family after it was sealed"
    );
    sync(&mom);
    assert!(ok(&mom, &["export", &family]).contains("봉인 뒤 빨래"));
}

/// Mom and her son compare safety codes on the command line: both devices print the
/// same digits; typing the ones mom's device shows marks her verified on his, and
/// `family show` says so; a code with one digit changed is refused as a mismatch.
#[test]
fn members_compare_safety_codes_and_the_one_read_out_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_relay, mom, son, family) = mom_and_son(dir.path());
    let invite = ok(
        &mom,
        &["invite", "send", &family, "son@example.com", "--as", "아들"],
    );
    assert_eq!(ok(&son, &["invite", "accept", &invite]), family);
    sync(&son);
    sync(&mom);

    let on_moms = json(&mom, &["family", "safety-code", &family, "아들"]);
    let on_sons = json(&son, &["family", "safety-code", &family, "엄마"]);
    assert_eq!(on_moms["code"], on_sons["code"], "{on_moms} {on_sons}");
    assert_eq!(on_sons["verified"], false);
    let code = on_moms["code"].as_str().expect("the code").to_owned();
    // As a person prints it: three rows of four groups.
    let shown = ok(&son, &["family", "safety-code", &family, "엄마"]);
    assert_eq!(shown.lines().count(), 4, "{shown}");

    let mut wrong: Vec<char> = code.chars().collect();
    wrong[1] = if wrong[1] == '9' { '0' } else { '9' };
    let wrong: String = wrong.into_iter().collect();
    let mut args = vec!["family", "verify", &family, "엄마"];
    args.extend(wrong.split(' '));
    assert_eq!(json_error(&son, &args)["code"], "safety_code_mismatch");

    let mut args = vec!["family", "verify", &family, "엄마"];
    args.extend(code.split(' '));
    assert_eq!(json(&son, &args)["verified"], true);
    let members = json(&son, &["family", "show", &family])["members"].clone();
    let verified: Vec<(String, bool)> = members
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_owned(),
                m["verified"] == true,
            )
        })
        .collect();
    assert_eq!(
        verified,
        vec![("엄마".to_owned(), true), ("아들".to_owned(), false)]
    );
    assert!(ok(&son, &["family", "show", &family]).contains("verified"));
}

/// Mom, alone in her sealed family, loses the computer her command line ran on; on a
/// new one she restores the account from the phrase and writes again at once (the new
/// device joins the family's key group by itself from what the lost one escrowed):
/// the mission from before and the one after are both there, and the relay's files
/// hold neither.
#[test]
fn a_family_of_one_restored_from_the_phrase_writes_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (lost, new) = (dir.path().join("lost"), dir.path().join("new"));
    create_account(&lost, &relay.url(), "mom@example.com", "엄마곰");
    let family = ok(&lost, &["family", "create", "우리 가족", "--as", "엄마"]);
    ok(&lost, &["mission", "add", &family, "화분에 물 주기"]);
    sync(&lost);
    let phrase = ok(&lost, &["account", "recovery-phrase"]);
    std::fs::remove_dir_all(&lost).expect("the computer is lost");

    ok(
        &new,
        &[
            "account",
            "restore",
            "--server",
            &relay.url(),
            "--phrase",
            &phrase,
        ],
    );
    ok(&new, &["mission", "add", &family, "설거지 하기"]);
    sync(&new);
    let seen = ok(&new, &["export", &family]);
    assert!(
        seen.contains("화분에 물 주기") && seen.contains("설거지 하기"),
        "{seen}"
    );
    for (path, bytes) in files_under(relay.data()) {
        for text in ["화분에 물 주기", "설거지 하기"] {
            assert!(
                !contains(&bytes, text.as_bytes()),
                "{path:?} holds {text:?} in the clear"
            );
        }
    }
}
