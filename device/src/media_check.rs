//! What a blob must be before a screen gets it.
//!
//! A family entry names its blobs by hash, and a download is checked against the
//! hash — but any member may point an entry at any bytes they uploaded: a 30 MB
//! "thumbnail" every phone prefetches, a 60 000 × 60 000 image the web view or the
//! phone's decoder is asked to show, a file crafted against a system image or media
//! decoder. An honest device only ever makes small JPEGs and MP3s (`photo`, the audio
//! converter), so that is all a screen is given: a download is cut at the largest
//! honest size of its kind, and the file's header must be a JPEG no larger than the
//! kind allows, or an MP3 — else the screen gets `BadPhoto` / `BadAudio` (shown as a
//! placeholder) instead of the file.

use std::{io::Read, path::Path};

use crate::photo::{
    AVATAR_MAX_BYTES, AVATAR_SIDE, DISPLAY_MAX_BYTES, DISPLAY_MAX_SIDE, THUMB_MAX_SIDE,
};

/// What a blob is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A photo's display copy: a JPEG ≤ 1920 px, ≤ 0.9 MB.
    Photo,
    /// A photo's thumbnail: a JPEG ≤ 320 px.
    Thumbnail,
    /// A profile photo: a JPEG ≤ 512 px, ≤ 150 KB.
    Avatar,
    /// A voice message: an MP3 of at most 3 minutes.
    Voice,
}

/// The largest thumbnail an honest device makes is far below this (a 320 px JPEG at
/// quality 80 is tens of kilobytes).
const THUMB_MAX_BYTES: u64 = 256 * 1024;
/// A 3-minute MP3 kept as it is (up to 128 kbps, `doran_audio`) is about 2.9 MB, tags
/// included; the converter's own 64 kbps is half that.
const VOICE_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// How much of a file is read to check its header.
const HEADER_BYTES: u64 = 64 * 1024;

impl Expect {
    /// The MIME type of a blob of this kind.
    pub fn mime(self) -> &'static str {
        match self {
            Expect::Voice => "audio/mpeg",
            _ => "image/jpeg",
        }
    }

    /// The largest blob of this kind an honest device makes (downloads are cut there).
    pub fn max_bytes(self) -> u64 {
        match self {
            Expect::Photo => DISPLAY_MAX_BYTES as u64,
            Expect::Thumbnail => THUMB_MAX_BYTES,
            Expect::Avatar => AVATAR_MAX_BYTES as u64,
            Expect::Voice => VOICE_MAX_BYTES,
        }
    }

    /// What a screen is told when a blob of this kind is not what its entry says.
    pub fn refusal(self) -> crate::error::ErrorCode {
        match self {
            Expect::Voice => crate::error::ErrorCode::BadAudio,
            _ => crate::error::ErrorCode::BadPhoto,
        }
    }

    fn max_side(self) -> Option<u32> {
        match self {
            Expect::Photo => Some(DISPLAY_MAX_SIDE),
            Expect::Thumbnail => Some(THUMB_MAX_SIDE),
            Expect::Avatar => Some(AVATAR_SIDE),
            Expect::Voice => None,
        }
    }
}

/// Why a file is not what its entry says.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotWhatItSays {
    /// Larger than any honest blob of its kind.
    #[error("{size} bytes, more than {max}")]
    TooLarge { size: u64, max: u64 },
    /// Not a JPEG (or not an MP3 for a voice message).
    #[error("not a {0}")]
    WrongFormat(&'static str),
    /// A JPEG whose header says it is larger than its kind allows (or no readable size).
    #[error("{width} × {height} px, more than {max} px a side")]
    TooManyPixels { width: u32, height: u32, max: u32 },
    /// The file cannot be read.
    #[error("unreadable: {0}")]
    Unreadable(String),
}

/// Checks the file at `path` (a cached or downloaded blob) against `expect`, reading
/// its header only.
pub fn check_file(path: &Path, expect: Expect) -> Result<(), NotWhatItSays> {
    let unreadable = |e: std::io::Error| NotWhatItSays::Unreadable(e.to_string());
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let mut head = Vec::new();
    file.take(HEADER_BYTES)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    check(&head, size, expect)
}

/// Checks a blob from its first bytes (`head`, at most the whole file) and its size.
pub fn check(head: &[u8], size: u64, expect: Expect) -> Result<(), NotWhatItSays> {
    let max = expect.max_bytes();
    if size > max {
        return Err(NotWhatItSays::TooLarge { size, max });
    }
    match expect.max_side() {
        None => {
            if is_mp3(head) {
                Ok(())
            } else {
                Err(NotWhatItSays::WrongFormat("MP3"))
            }
        }
        Some(side) => {
            if !head.starts_with(&[0xFF, 0xD8, 0xFF]) {
                return Err(NotWhatItSays::WrongFormat("JPEG"));
            }
            let (width, height) = jpeg_size(head).ok_or(NotWhatItSays::TooManyPixels {
                width: 0,
                height: 0,
                max: side,
            })?;
            if width == 0 || height == 0 || width > side || height > side {
                return Err(NotWhatItSays::TooManyPixels {
                    width,
                    height,
                    max: side,
                });
            }
            Ok(())
        }
    }
}

/// An MP3 starts with an ID3v2 tag or an MPEG audio frame header (11 sync bits,
/// MPEG-1/2/2.5, layer III).
fn is_mp3(head: &[u8]) -> bool {
    match head {
        [b'I', b'D', b'3', ..] => true,
        [0xFF, b, ..] => b & 0xE0 == 0xE0 && b & 0x06 == 0x02 && b & 0x18 != 0x08,
        _ => false,
    }
}

/// The width and height in a JPEG's first frame header (SOF0–SOF15 but DHT, JPG and
/// DAC), walking the markers of `head`.
fn jpeg_size(head: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        // Markers may be padded with fill bytes.
        while *head.get(at)? == 0xFF && *head.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *head.get(at)? != 0xFF {
            return None;
        }
        let marker = *head.get(at + 1)?;
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            at += 2;
            continue;
        }
        if marker == 0xD9 || marker == 0xDA {
            return None; // end of image or start of scan before any frame header
        }
        let len = usize::from(u16::from_be_bytes([*head.get(at + 2)?, *head.get(at + 3)?]));
        if len < 2 {
            return None;
        }
        let is_frame = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame {
            let height = u16::from_be_bytes([*head.get(at + 5)?, *head.get(at + 6)?]);
            let width = u16::from_be_bytes([*head.get(at + 7)?, *head.get(at + 8)?]);
            return Some((u32::from(width), u32::from(height)));
        }
        at += 2 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::{Expect, NotWhatItSays, check, is_mp3};

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(width, height, image::Rgb([200, 120, 40]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
            .encode_image(&img)
            .expect("encodes");
        out
    }

    #[test]
    fn honest_copies_pass() {
        let thumb = jpeg(320, 240);
        assert_eq!(check(&thumb, thumb.len() as u64, Expect::Thumbnail), Ok(()));
        let photo = jpeg(1920, 1080);
        assert_eq!(check(&photo, photo.len() as u64, Expect::Photo), Ok(()));
        let avatar = jpeg(512, 512);
        assert_eq!(check(&avatar, avatar.len() as u64, Expect::Avatar), Ok(()));
    }

    #[test]
    fn larger_pictures_than_the_kind_allows_are_refused() {
        let big = jpeg(1921, 10);
        assert!(matches!(
            check(&big, big.len() as u64, Expect::Photo),
            Err(NotWhatItSays::TooManyPixels { width: 1921, .. })
        ));
        let photo = jpeg(640, 480);
        assert!(matches!(
            check(&photo, photo.len() as u64, Expect::Thumbnail),
            Err(NotWhatItSays::TooManyPixels { .. })
        ));
        // A header that claims 60 000 × 60 000 (a decompression bomb) is refused
        // from the header alone.
        let mut bomb = jpeg(8, 8);
        let sof = bomb
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline frame header");
        bomb[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
        assert!(matches!(
            check(&bomb, bomb.len() as u64, Expect::Photo),
            Err(NotWhatItSays::TooManyPixels {
                width: 60_000,
                height: 60_000,
                ..
            })
        ));
    }

    #[test]
    fn other_formats_and_sizes_are_refused() {
        let mut png = Vec::new();
        image::RgbImage::new(4, 4)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encodes");
        assert_eq!(
            check(&png, png.len() as u64, Expect::Thumbnail),
            Err(NotWhatItSays::WrongFormat("JPEG"))
        );
        assert_eq!(
            check(b"<html><script>", 14, Expect::Photo),
            Err(NotWhatItSays::WrongFormat("JPEG"))
        );
        let thumb = jpeg(32, 32);
        assert!(matches!(
            check(&thumb, 30 * 1024 * 1024, Expect::Thumbnail),
            Err(NotWhatItSays::TooLarge { .. })
        ));
        assert_eq!(
            check(&thumb, thumb.len() as u64, Expect::Voice),
            Err(NotWhatItSays::WrongFormat("MP3"))
        );
        // A JPEG cut before its frame header.
        assert!(check(&thumb[..4], 4, Expect::Thumbnail).is_err());
    }

    #[test]
    fn mp3_headers_are_recognised() {
        assert!(is_mp3(b"ID3\x04\x00"));
        assert!(is_mp3(&[0xFF, 0xFB, 0x90, 0x64])); // MPEG-1 layer III
        assert!(is_mp3(&[0xFF, 0xF3, 0x48, 0xC4])); // MPEG-2 layer III
        assert!(!is_mp3(&[0xFF, 0xFD, 0x90, 0x64])); // layer II
        assert!(!is_mp3(&[0xFF, 0xD8, 0xFF, 0xE0])); // a JPEG
        assert!(!is_mp3(b"OggS"));
        assert!(!is_mp3(b""));
    }
}
