//! What the desktop app added to the facade, through the facade against the real
//! relay: a recording added with its conversion progress reported, a profile photo
//! from bytes (a picker that hands over bytes, not a path), the forms' catalog and
//! relative times in the user's language.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use doran_device::{Device, DeviceOptions, ErrorCode};
use doran_e2e::Relay;

async fn open(home: &std::path::Path) -> Device {
    Device::open(home, DeviceOptions::default())
        .await
        .expect("the device opens")
}

/// Three seconds of a 440 Hz tone as 16-bit mono WAV at 48 kHz (what the app's
/// recorder falls back to when the web view has no MediaRecorder).
fn wav_tone(seconds: u32) -> Vec<u8> {
    let rate = 48_000u32;
    let frames = rate * seconds;
    let mut out = Vec::with_capacity(44 + frames as usize * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + frames * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(frames * 2).to_le_bytes());
    for i in 0..frames {
        let t = f64::from(i) / f64::from(rate);
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 0.4 * f64::from(i16::MAX);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_reports_its_conversion_and_a_profile_photo_comes_as_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let mom = open(&dir.path().join("mom")).await;
    mom.create_account(&relay.url(), "mom@example.com", "엄마곰")
        .await
        .expect("account");
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family");
    let album = mom
        .create_voice_album(&family, "인사", 3)
        .await
        .expect("voice album");

    // Step 1: a recording with its progress: rising, and 1.0 only once saved.
    let seen = Arc::new(Mutex::new(Vec::<f32>::new()));
    let record = Arc::clone(&seen);
    let added = mom
        .add_voice_bytes_with_progress(
            &family,
            &album,
            wav_tone(3),
            "안녕",
            Arc::new(move |p| record.lock().expect("lock").push(p)),
        )
        .await
        .expect("converted and added");
    assert!((2_900..=3_100).contains(&added.duration_ms), "{added:?}");
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.len() >= 10, "progress along the way: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "rising: {seen:?}");
    assert_eq!(seen.last(), Some(&1.0), "done last");
    assert!(seen[..seen.len() - 1].iter().all(|p| *p < 1.0));
    let cards = mom.voices(&family, Some(&album)).await.expect("voices");
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].title, "안녕");

    // Step 2: a refused title changes nothing and reports no progress to 1.0.
    let never = Arc::new(Mutex::new(Vec::<f32>::new()));
    let record = Arc::clone(&never);
    let refused = mom
        .add_voice_bytes_with_progress(
            &family,
            &album,
            wav_tone(1),
            "열 글자를 훌쩍 넘는 제목이에요",
            Arc::new(move |p| record.lock().expect("lock").push(p)),
        )
        .await
        .expect_err("too long a title");
    assert_eq!(refused.code, ErrorCode::InvalidInput);
    assert!(never.lock().expect("lock").is_empty());
    assert_eq!(mom.voices(&family, None).await.expect("voices").len(), 1);

    // Step 3: a profile photo handed over as bytes; not a photo is refused.
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(300, 200, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("a png");
    assert!(mom.profile(None).await.expect("profile").avatar.is_none());
    mom.set_avatar_bytes(png.into_inner())
        .await
        .expect("avatar set");
    let avatar = mom.profile(None).await.expect("profile").avatar;
    assert!(avatar.is_some(), "the profile points at the new photo");
    let path = mom
        .avatar_file(None)
        .await
        .expect("the avatar")
        .expect("a file");
    // A blob file is named by its hash: the format comes from its bytes.
    let jpeg = image::load_from_memory(&std::fs::read(&path).expect("the avatar's bytes"))
        .expect("a picture");
    assert_eq!(jpeg.width(), jpeg.height(), "square");
    let bad = mom
        .set_avatar_bytes(b"not a picture".to_vec())
        .await
        .expect_err("not a photo");
    assert_eq!(bad.code, ErrorCode::BadPhoto);
    assert_eq!(mom.profile(None).await.expect("profile").avatar, avatar);

    // Step 4: everything reaches the relay.
    let report = mom.sync_now(Duration::from_secs(20)).await.expect("sync");
    assert!(report.up_to_date, "{report:?}");
}
