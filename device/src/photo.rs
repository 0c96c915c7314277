//! Photos prepared on the device before they are shared: a display copy and a
//! thumbnail, both re-encoded JPEGs.
//!
//! [`prepare`] takes the original file as the user picked it and:
//!
//! 1. refuses files over [`MAX_FILE_BYTES`] and images whose header declares more than
//!    [`MAX_PIXELS`] before decoding anything ([`PhotoError::TooLarge`]);
//! 2. detects the format by content (JPEG, PNG, WebP, GIF — the first frame of an
//!    animation); HEIC/HEIF and AVIF are recognised and refused with
//!    [`PhotoError::Unsupported`] (there is no pure-Rust HEVC decoder worth taking; the
//!    phone apps hand over a JPEG from the OS photo picker instead), as is any other
//!    known image format;
//! 3. decodes, applies the EXIF orientation (all 8 values), composites transparency
//!    onto white (JPEG has no alpha);
//! 4. resizes with a Lanczos-3 filter so the long side is at most [`DISPLAY_MAX_SIDE`]
//!    (never upscaling) and encodes the display copy as JPEG, stepping the quality down
//!    through [`QUALITY_STEPS`] until it fits [`DISPLAY_MAX_BYTES`]; an image that
//!    does not fit even at the last step (pure noise) is shrunk by a fifth and tried
//!    again at that last quality, until it fits;
//! 5. makes a thumbnail with a long side of at most [`THUMB_MAX_SIDE`] from the
//!    display copy's pixels, at [`THUMB_QUALITY`].
//!
//! Both copies are encoded from pixels only, so no EXIF (location, camera serial
//! numbers), XMP or ICC data of the original survives into what the family sees. The
//! capture time is read from EXIF `DateTimeOriginal` and returned separately.
//!
//! [`prepare_avatar`] makes a profile photo the same way (steps 1–3), then crops the
//! centre to a square and encodes one JPEG of at most [`AVATAR_SIDE`] px a side and
//! [`AVATAR_MAX_BYTES`]; no metadata survives, and no capture time is kept.

use std::io::Cursor;

use image::{
    DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage,
    codecs::jpeg::JpegEncoder, imageops::FilterType, metadata::Orientation,
};

/// Longest side of the display copy, in pixels.
pub const DISPLAY_MAX_SIDE: u32 = 1920;
/// Largest display copy, in bytes (≈ 0.9 MB).
pub const DISPLAY_MAX_BYTES: usize = 900_000;
/// JPEG qualities tried for the display copy, best first; the first that fits
/// [`DISPLAY_MAX_BYTES`] is kept. A typical 12 MP phone photo fits at the first.
pub const QUALITY_STEPS: [u8; 6] = [85, 80, 74, 66, 58, 50];
/// Longest side of the thumbnail, in pixels.
pub const THUMB_MAX_SIDE: u32 = 320;
/// JPEG quality of the thumbnail.
pub const THUMB_QUALITY: u8 = 80;
/// Largest original file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 50 * 1024 * 1024;
/// Largest image accepted, in pixels as its header declares them (100 megapixels).
pub const MAX_PIXELS: u64 = 100_000_000;
/// The decoder's allocation limit: a 100 MP image with 16-bit RGB channels.
const MAX_DECODE_ALLOC: u64 = MAX_PIXELS * 6;
/// How many times an image that does not fit at the lowest quality is shrunk.
const MAX_SHRINKS: usize = 12;
/// Side of a profile photo, in pixels (smaller originals are not upscaled).
pub const AVATAR_SIDE: u32 = 512;
/// Largest profile photo, in bytes.
pub const AVATAR_MAX_BYTES: usize = 150_000;

/// A profile photo ready to share: a square JPEG without metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedAvatar {
    /// The JPEG: square, side ≤ [`AVATAR_SIDE`], ≤ [`AVATAR_MAX_BYTES`].
    pub jpeg: Vec<u8>,
    /// Its side in pixels.
    pub side: u32,
    /// Always `image/jpeg`.
    pub mime: &'static str,
}

/// A photo ready to share: both copies are JPEGs without metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPhoto {
    /// The display copy: long side ≤ [`DISPLAY_MAX_SIDE`], ≤ [`DISPLAY_MAX_BYTES`].
    pub display: Vec<u8>,
    /// The thumbnail: long side ≤ [`THUMB_MAX_SIDE`].
    pub thumb: Vec<u8>,
    /// Pixel width of the display copy (after orientation).
    pub width: u32,
    /// Pixel height of the display copy (after orientation).
    pub height: u32,
    /// When it was taken (unix ms), from EXIF `DateTimeOriginal`. Cameras write local
    /// time; when `OffsetTimeOriginal` is also present it is applied, otherwise the
    /// local time is taken as if it were UTC (so it can be off by the time zone).
    pub taken_at: Option<i64>,
    /// MIME type of both copies: always `image/jpeg`.
    pub mime: &'static str,
}

/// Why a photo could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// The bytes are not an image we recognise.
    #[error("this file is not an image")]
    NotAnImage,
    /// An image in a format we do not decode (e.g. HEIC).
    #[error("unsupported image format: {0}")]
    Unsupported(String),
    /// The file or the image it declares is too large to prepare.
    #[error("the image is too large (at most 50 MB and 100 megapixels)")]
    TooLarge,
    /// The image is damaged or could not be decoded or encoded.
    #[error("the image could not be read: {0}")]
    Corrupt(String),
}

/// Prepares a photo for sharing: see the [module documentation](self).
pub fn prepare(bytes: &[u8]) -> Result<PreparedPhoto, PhotoError> {
    let (rgb, taken_at) = decode_upright(bytes)?;
    let display_px = fit(&rgb, DISPLAY_MAX_SIDE);
    drop(rgb);
    let (display, display_px) = encode_within(display_px, DISPLAY_MAX_BYTES)?;
    let thumb = encode(&fit(&display_px, THUMB_MAX_SIDE), THUMB_QUALITY)?;
    Ok(PreparedPhoto {
        display,
        thumb,
        width: display_px.width(),
        height: display_px.height(),
        taken_at,
        mime: "image/jpeg",
    })
}

/// Prepares a profile photo: decoded and turned upright like [`prepare`], the centre
/// cropped to a square, resized to at most [`AVATAR_SIDE`] px and encoded as a JPEG of
/// at most [`AVATAR_MAX_BYTES`], with no metadata.
pub fn prepare_avatar(bytes: &[u8]) -> Result<PreparedAvatar, PhotoError> {
    let (rgb, _) = decode_upright(bytes)?;
    let side = rgb.width().min(rgb.height());
    let x = (rgb.width() - side) / 2;
    let y = (rgb.height() - side) / 2;
    let square = image::imageops::crop_imm(&rgb, x, y, side, side).to_image();
    drop(rgb);
    let (jpeg, px) = encode_within(fit(&square, AVATAR_SIDE), AVATAR_MAX_BYTES)?;
    Ok(PreparedAvatar {
        jpeg,
        side: px.width(),
        mime: "image/jpeg",
    })
}

/// Checks the limits, detects the format, decodes, applies the EXIF orientation and
/// drops alpha; returns the pixels and the EXIF capture time.
fn decode_upright(bytes: &[u8]) -> Result<(RgbImage, Option<i64>), PhotoError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(PhotoError::TooLarge);
    }
    let format = detect(bytes)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(PhotoError::TooLarge);
    }
    // Metadata problems never refuse a photo: it is then shown as stored, undated.
    let exif = decoder
        .exif_metadata()
        .ok()
        .flatten()
        .and_then(|raw| exif::Reader::new().read_raw(raw).ok());
    let mut img = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    if let Some(o) = exif.as_ref().and_then(orientation) {
        img.apply_orientation(o);
    }
    let taken_at = exif.as_ref().and_then(taken_at);
    let rgb = flatten(img);
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(PhotoError::Corrupt("the image has no pixels".into()));
    }
    Ok((rgb, taken_at))
}

/// The format of `bytes`, by content.
fn detect(bytes: &[u8]) -> Result<ImageFormat, PhotoError> {
    if let Some(brand) = iso_bmff_image_brand(bytes) {
        return Err(PhotoError::Unsupported(brand));
    }
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif)) => {
            Ok(f)
        }
        Ok(other) => Err(PhotoError::Unsupported(format!("{other:?}"))),
        Err(_) => Err(PhotoError::NotAnImage),
    }
}

/// HEIC/HEIF/AVIF files are ISO-BMFF with an `ftyp` box first: names the image kind
/// when the major brand says it is one.
fn iso_bmff_image_brand(bytes: &[u8]) -> Option<String> {
    let brand = bytes.get(4..12)?;
    if &brand[..4] != b"ftyp" {
        return None;
    }
    let name = match &brand[4..] {
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => "HEIC",
        b"mif1" | b"msf1" | b"heif" => "HEIF",
        b"avif" | b"avis" => "AVIF",
        _ => return None,
    };
    Some(name.to_owned())
}

fn image_error(e: ImageError) -> PhotoError {
    match e {
        ImageError::Limits(_) => PhotoError::TooLarge,
        ImageError::Unsupported(u) => PhotoError::Unsupported(u.to_string()),
        other => PhotoError::Corrupt(other.to_string()),
    }
}

/// The EXIF orientation, when present and valid.
fn orientation(exif: &exif::Exif) -> Option<Orientation> {
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
    let value = field.value.get_uint(0)?;
    Orientation::from_exif(u8::try_from(value).ok()?)
}

/// EXIF `DateTimeOriginal` (with `OffsetTimeOriginal` when present) as unix ms.
fn taken_at(exif: &exif::Exif) -> Option<i64> {
    let ascii = |tag| match &exif.get_field(tag, exif::In::PRIMARY)?.value {
        exif::Value::Ascii(parts) => parts.first().cloned(),
        _ => None,
    };
    let mut dt = exif::DateTime::from_ascii(&ascii(exif::Tag::DateTimeOriginal)?).ok()?;
    if let Some(offset) = ascii(exif::Tag::OffsetTimeOriginal) {
        // A malformed offset leaves the time as local-as-UTC.
        let _ = dt.parse_offset(&offset);
    }
    let month = time::Month::try_from(dt.month).ok()?;
    let date = time::Date::from_calendar_date(i32::from(dt.year), month, dt.day).ok()?;
    let clock = time::Time::from_hms(dt.hour, dt.minute, dt.second).ok()?;
    let local = time::PrimitiveDateTime::new(date, clock).assume_utc();
    let offset_s = i64::from(dt.offset.unwrap_or(0)) * 60;
    let secs = local.unix_timestamp().checked_sub(offset_s)?;
    secs.checked_mul(1000)
}

/// Drops alpha by compositing onto white, and any extra precision: 8-bit RGB.
fn flatten(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(src[3]);
        for c in 0..3 {
            let v = (u16::from(src[c]) * a + 255 * (255 - a) + 127) / 255;
            dst[c] = u8::try_from(v).unwrap_or(u8::MAX);
        }
    }
    out
}

/// `(w, h)` scaled so the long side is at most `max` (never up), each side ≥ 1.
fn fit_size(w: u32, h: u32, max: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= max {
        return (w, h);
    }
    let scale = |side: u32| {
        let s = (u64::from(side) * u64::from(max) + u64::from(long) / 2) / u64::from(long);
        u32::try_from(s).unwrap_or(max).clamp(1, max)
    };
    (scale(w), scale(h))
}

/// `img` resized so its long side is at most `max` (unchanged if it fits): Lanczos-3;
/// when shrinking by 3× or more, first averaged down to twice the target (fast, and
/// as sharp, as Pillow's `reducing_gap` does).
fn fit(img: &RgbImage, max: u32) -> RgbImage {
    let (w, h) = fit_size(img.width(), img.height(), max);
    if (w, h) == img.dimensions() {
        return img.clone();
    }
    // `DynamicImage`'s methods are compiled (optimised) in the image crate.
    let mut src = DynamicImage::ImageRgb8(img.clone());
    if img.width().max(img.height()) >= max.saturating_mul(3) {
        src = src.thumbnail_exact(w.saturating_mul(2), h.saturating_mul(2));
    }
    src.resize_exact(w, h, FilterType::Lanczos3).into_rgb8()
}

/// Baseline JPEG of `img` at `quality`, with no metadata segments.
fn encode(img: &RgbImage, quality: u8) -> Result<Vec<u8>, PhotoError> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .map_err(|e| PhotoError::Corrupt(format!("encoding: {e}")))?;
    Ok(out)
}

/// Encodes `img` at the best of [`QUALITY_STEPS`] that fits `budget` bytes; if even the
/// last does not, shrinks the pixels by a fifth and retries at the last quality.
/// Returns the JPEG and the pixels it was made from.
fn encode_within(mut img: RgbImage, budget: usize) -> Result<(Vec<u8>, RgbImage), PhotoError> {
    for q in QUALITY_STEPS {
        let jpeg = encode(&img, q)?;
        if jpeg.len() <= budget {
            return Ok((jpeg, img));
        }
    }
    let last = QUALITY_STEPS[QUALITY_STEPS.len() - 1];
    for _ in 0..MAX_SHRINKS {
        let long = img.width().max(img.height());
        let smaller = (long * 4 / 5).max(1);
        if smaller == long {
            break;
        }
        img = fit(&img, smaller);
        let jpeg = encode(&img, last)?;
        if jpeg.len() <= budget {
            return Ok((jpeg, img));
        }
    }
    Err(PhotoError::Corrupt(
        "could not make a small enough display copy".into(),
    ))
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage, Rgba, RgbaImage};
    use proptest::prelude::*;

    use super::*;

    fn jpeg_of(img: &RgbImage, quality: u8) -> Vec<u8> {
        encode(img, quality).expect("encode")
    }

    fn png_of(img: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).expect("png");
        out.into_inner()
    }

    fn decode(bytes: &[u8]) -> RgbImage {
        image::load_from_memory_with_format(bytes, ImageFormat::Jpeg)
            .expect("a JPEG")
            .into_rgb8()
    }

    /// A big-endian TIFF block with IFD0 {Orientation, ExifIFD, GPSInfo}, the Exif IFD
    /// {DateTimeOriginal} and the GPS IFD {GPSLatitudeRef, GPSLatitude}.
    fn exif_tiff(orientation: u16, taken: &str) -> Vec<u8> {
        let mut t = Vec::new();
        let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
            t.extend_from_slice(&tag.to_be_bytes());
            t.extend_from_slice(&kind.to_be_bytes());
            t.extend_from_slice(&count.to_be_bytes());
            t.extend_from_slice(&value);
        };
        t.extend_from_slice(b"MM\0\x2a");
        t.extend_from_slice(&8u32.to_be_bytes());
        // IFD0 at 8: 3 entries → ends at 8 + 2 + 36 + 4 = 50.
        t.extend_from_slice(&3u16.to_be_bytes());
        let o = orientation.to_be_bytes();
        entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
        entry(&mut t, 0x8769, 4, 1, 50u32.to_be_bytes());
        entry(&mut t, 0x8825, 4, 1, 88u32.to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        // Exif IFD at 50: 1 entry → data at 68, 20 bytes → 88.
        t.extend_from_slice(&1u16.to_be_bytes());
        entry(&mut t, 0x9003, 2, 20, 68u32.to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        let mut date = taken.as_bytes().to_vec();
        date.resize(20, 0);
        t.extend_from_slice(&date);
        // GPS IFD at 88: 2 entries → data at 118, 3 rationals.
        t.extend_from_slice(&2u16.to_be_bytes());
        entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
        entry(&mut t, 0x0002, 5, 3, 118u32.to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        for (num, den) in [(37u32, 1u32), (33, 1), (4512, 100)] {
            t.extend_from_slice(&num.to_be_bytes());
            t.extend_from_slice(&den.to_be_bytes());
        }
        assert_eq!(t.len(), 142);
        t
    }

    /// `jpeg` with an EXIF APP1 segment (and an XMP one) inserted after SOI.
    fn with_metadata(jpeg: &[u8], orientation: u16, taken: &str) -> Vec<u8> {
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&exif_tiff(orientation, taken));
        let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><exif:GPSLatitude>37,33.75N</exif:GPSLatitude></x:xmpmeta>";
        let mut out = jpeg[..2].to_vec();
        for body in [&app1[..], &xmp[..]] {
            out.extend_from_slice(&[0xFF, 0xE1]);
            out.extend_from_slice(&u16::try_from(body.len() + 2).expect("small").to_be_bytes());
            out.extend_from_slice(body);
        }
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// The markers of a JPEG's header segments, up to and including SOS.
    fn markers(jpeg: &[u8]) -> Vec<u8> {
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let mut at = 2;
        let mut found = Vec::new();
        while at + 4 <= jpeg.len() {
            assert_eq!(jpeg[at], 0xFF, "a marker at {at}");
            let marker = jpeg[at + 1];
            found.push(marker);
            if marker == 0xDA {
                break;
            }
            let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
            at += 2 + len;
        }
        found
    }

    /// 64×32: red top-left, green top-right, blue bottom-left, white bottom-right.
    fn quadrants() -> RgbImage {
        RgbImage::from_fn(64, 32, |x, y| match (x < 32, y < 16) {
            (true, true) => Rgb([255, 0, 0]),
            (false, true) => Rgb([0, 255, 0]),
            (true, false) => Rgb([0, 0, 255]),
            (false, false) => Rgb([255, 255, 255]),
        })
    }

    fn is_red(p: &Rgb<u8>) -> bool {
        p[0] > 200 && p[1] < 60 && p[2] < 60
    }

    fn noise(w: u32, h: u32, seed: u64) -> RgbImage {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        RgbImage::from_fn(w, h, |_, _| {
            let v = next().to_le_bytes();
            Rgb([v[0], v[1], v[2]])
        })
    }

    #[test]
    fn every_exif_orientation_is_applied() {
        let plain = jpeg_of(&quadrants(), 95);
        // Where the stored top-left (red) quadrant ends up, and whether sides swap.
        let expect = [
            (1, "TL", false),
            (2, "TR", false),
            (3, "BR", false),
            (4, "BL", false),
            (5, "TL", true),
            (6, "TR", true),
            (7, "BR", true),
            (8, "BL", true),
        ];
        for (o, corner, swapped) in expect {
            let p = prepare(&with_metadata(&plain, o, "2024:05:05 14:30:00")).expect("prepared");
            let (w, h) = if swapped { (32, 64) } else { (64, 32) };
            assert_eq!((p.width, p.height), (w, h), "orientation {o}");
            let img = decode(&p.display);
            assert_eq!(img.dimensions(), (w, h));
            let (x, y) = match corner {
                "TL" => (4, 4),
                "TR" => (w - 5, 4),
                "BL" => (4, h - 5),
                _ => (w - 5, h - 5),
            };
            assert!(
                is_red(img.get_pixel(x, y)),
                "orientation {o}: red at {corner}"
            );
        }
    }

    #[test]
    fn orientation_6_turns_a_landscape_shot_upright() {
        let jpeg = with_metadata(&jpeg_of(&quadrants(), 95), 6, "2024:05:05 14:30:00");
        let p = prepare(&jpeg).expect("prepared");
        assert_eq!((p.width, p.height), (32, 64));
        let img = decode(&p.display);
        // Rotated 90° clockwise: red (was top-left) is top-right, blue top-left.
        assert!(is_red(img.get_pixel(27, 4)));
        let blue = img.get_pixel(4, 4);
        assert!(blue[2] > 200 && blue[0] < 60, "{blue:?}");
        let thumb = decode(&p.thumb);
        assert_eq!(thumb.dimensions(), (32, 64));
    }

    #[test]
    fn location_and_other_metadata_do_not_survive() {
        let original = with_metadata(&jpeg_of(&quadrants(), 90), 1, "2024:05:05 14:30:00");
        // The input really carries GPS data.
        let exif = exif::Reader::new()
            .read_from_container(&mut Cursor::new(&original))
            .expect("EXIF in the input");
        assert!(
            exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
                .is_some()
        );
        let p = prepare(&original).expect("prepared");
        for out in [&p.display, &p.thumb] {
            let m = markers(out);
            assert!(
                m.iter().all(|&m| m != 0xE1 && m != 0xE2 && m != 0xED),
                "no APP1 (EXIF/XMP), APP2 (ICC) or APP13 (IPTC): {m:x?}"
            );
            let has = |needle: &[u8]| out.windows(needle.len()).any(|w| w == needle);
            assert!(!has(b"Exif\0\0") && !has(b"GPS") && !has(b"xmpmeta"));
            assert!(
                exif::Reader::new()
                    .read_from_container(&mut Cursor::new(out))
                    .is_err()
            );
        }
    }

    #[test]
    fn the_capture_time_comes_from_exif() {
        let jpeg = jpeg_of(&quadrants(), 90);
        let p = prepare(&with_metadata(&jpeg, 1, "2024:05:05 14:30:00")).expect("prepared");
        // 2024-05-05T14:30:00 read as UTC.
        assert_eq!(p.taken_at, Some(1_714_919_400_000));
        assert_eq!(prepare(&jpeg).expect("prepared").taken_at, None);
        let bad = prepare(&with_metadata(&jpeg, 1, "0000:00:00 00:00:00")).expect("prepared");
        assert_eq!(bad.taken_at, None, "an unset date is no date");
    }

    #[test]
    fn big_images_shrink_to_1920_and_small_ones_stay() {
        let wide = RgbImage::from_fn(3000, 1000, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        let p = prepare(&png_of(&DynamicImage::ImageRgb8(wide))).expect("prepared");
        assert_eq!((p.width, p.height), (1920, 640));
        assert_eq!(decode(&p.display).dimensions(), (1920, 640));
        assert_eq!(decode(&p.thumb).dimensions(), (320, 107));
        assert_eq!(p.mime, "image/jpeg");

        let small = RgbImage::from_pixel(300, 200, Rgb([10, 120, 200]));
        let p = prepare(&jpeg_of(&small, 90)).expect("prepared");
        assert_eq!((p.width, p.height), (300, 200), "never upscaled");
        assert_eq!(decode(&p.thumb).dimensions(), (300, 200));

        let tall = RgbImage::from_pixel(1000, 4000, Rgb([1, 2, 3]));
        let p = prepare(&jpeg_of(&tall, 80)).expect("prepared");
        assert_eq!((p.width, p.height), (480, 1920));
        assert_eq!(decode(&p.thumb).dimensions(), (80, 320));
    }

    #[test]
    fn an_avatar_is_a_small_upright_square_without_metadata() {
        // A 3000×2000 landscape with orientation 6 (turned upright: 2000×3000), GPS
        // and XMP in the file.
        let big = RgbImage::from_fn(3000, 2000, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 256) as u8])
        });
        let original = with_metadata(&jpeg_of(&big, 90), 6, "2024:05:05 14:30:00");
        let a = prepare_avatar(&original).expect("prepared");
        assert_eq!(a.side, AVATAR_SIDE);
        assert_eq!(a.mime, "image/jpeg");
        assert!(a.jpeg.len() <= AVATAR_MAX_BYTES, "{} bytes", a.jpeg.len());
        assert_eq!(decode(&a.jpeg).dimensions(), (AVATAR_SIDE, AVATAR_SIDE));
        let m = markers(&a.jpeg);
        assert!(
            m.iter().all(|&m| m != 0xE1 && m != 0xE2 && m != 0xED),
            "{m:x?}"
        );
        let has = |needle: &[u8]| a.jpeg.windows(needle.len()).any(|w| w == needle);
        assert!(!has(b"Exif\0\0") && !has(b"GPS") && !has(b"xmpmeta"));

        // The centre is kept: a 64×32 picture of quadrants crops to its middle 32×32,
        // red (top-left quadrant) at the top-left, white at the bottom-right.
        let a = prepare_avatar(&jpeg_of(&quadrants(), 95)).expect("prepared");
        assert_eq!(a.side, 32, "never upscaled");
        let img = decode(&a.jpeg);
        assert!(is_red(img.get_pixel(3, 3)));
        let white = img.get_pixel(28, 28);
        assert!(white.0.iter().all(|&c| c > 200), "{white:?}");

        // Noise still fits the byte budget; bad input is a typed error.
        let noisy = jpeg_of(&noise(1200, 1200, 5), 95);
        let a = prepare_avatar(&noisy).expect("prepared");
        assert!(a.jpeg.len() <= AVATAR_MAX_BYTES);
        assert!(matches!(
            prepare_avatar(b"not an image"),
            Err(PhotoError::NotAnImage)
        ));
    }

    #[test]
    fn fit_size_keeps_the_aspect_and_never_upscales() {
        assert_eq!(fit_size(4000, 3000, 1920), (1920, 1440));
        assert_eq!(fit_size(1920, 1080, 1920), (1920, 1080));
        assert_eq!(fit_size(100, 50, 1920), (100, 50));
        assert_eq!(fit_size(20_000, 1, 1920), (1920, 1));
        assert_eq!(fit_size(1, 20_000, 320), (1, 320));
    }

    #[test]
    fn a_noisy_4000x3000_photo_still_fits_in_0_9_mb() {
        let original = jpeg_of(&noise(4000, 3000, 7), 90);
        assert!(original.len() > DISPLAY_MAX_BYTES);
        let p = prepare(&original).expect("prepared");
        assert!(p.display.len() <= DISPLAY_MAX_BYTES, "{}", p.display.len());
        assert!(p.width <= DISPLAY_MAX_SIDE && p.height <= DISPLAY_MAX_SIDE);
        assert_eq!(decode(&p.display).dimensions(), (p.width, p.height));
        assert!(p.thumb.len() < 100_000);
    }

    #[test]
    fn quality_steps_down_before_the_picture_shrinks() {
        let img = noise(400, 300, 3);
        let best = jpeg_of(&img, QUALITY_STEPS[0]);
        let worst = jpeg_of(&img, QUALITY_STEPS[QUALITY_STEPS.len() - 1]);
        // A budget between the two: a lower quality, same pixels.
        let budget = (best.len() + worst.len()) / 2;
        let (jpeg, px) = encode_within(img.clone(), budget).expect("fits");
        assert!(jpeg.len() <= budget && jpeg.len() >= worst.len());
        assert_eq!(px.dimensions(), (400, 300));
        // A budget below the lowest quality: fewer pixels.
        let (jpeg, px) = encode_within(img, worst.len() / 2).expect("fits");
        assert!(jpeg.len() <= worst.len() / 2);
        assert!(px.width() < 400 && px.height() < 300);
    }

    #[test]
    fn transparency_becomes_white() {
        let img = RgbaImage::from_fn(40, 40, |x, _| {
            if x < 20 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([0, 0, 255, 255])
            }
        });
        let p = prepare(&png_of(&DynamicImage::ImageRgba8(img))).expect("prepared");
        let out = decode(&p.display);
        let left = out.get_pixel(5, 20);
        assert!(left.0.iter().all(|&c| c > 240), "{left:?}");
        let right = out.get_pixel(35, 20);
        assert!(right[2] > 200 && right[0] < 60, "{right:?}");
    }

    #[test]
    fn webp_and_gif_are_read() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(50, 30, Rgba([9, 200, 9, 255])));
        for format in [ImageFormat::WebP, ImageFormat::Gif] {
            let mut bytes = Cursor::new(Vec::new());
            img.write_to(&mut bytes, format).expect("encode");
            let p = prepare(bytes.get_ref()).expect("prepared");
            assert_eq!((p.width, p.height), (50, 30), "{format:?}");
        }
    }

    /// CRC-32 (IEEE), for hand-made PNG chunks.
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn bad_input_gets_a_typed_error() {
        assert!(matches!(prepare(b""), Err(PhotoError::NotAnImage)));
        assert!(matches!(
            prepare(b"hello, world"),
            Err(PhotoError::NotAnImage)
        ));
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert!(matches!(prepare(heic), Err(PhotoError::Unsupported(f)) if f == "HEIC"));
        let bmp = b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0";
        assert!(matches!(prepare(bmp), Err(PhotoError::Unsupported(_))));
        let jpeg = jpeg_of(&quadrants(), 90);
        assert!(matches!(
            prepare(&jpeg[..jpeg.len() / 3]),
            Ok(_) | Err(PhotoError::Corrupt(_))
        ));
        assert!(matches!(prepare(&jpeg[..20]), Err(PhotoError::Corrupt(_))));
        let huge = vec![0u8; MAX_FILE_BYTES + 1];
        assert!(matches!(prepare(&huge), Err(PhotoError::TooLarge)));

        // A PNG whose header declares 20000×20000 (400 MP): refused before decoding.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&20_000u32.to_be_bytes());
        ihdr.extend_from_slice(&20_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        for empty in [&b"IDAT"[..], &b"IEND"[..]] {
            png.extend_from_slice(&0u32.to_be_bytes());
            png.extend_from_slice(empty);
            png.extend_from_slice(&crc32(empty).to_be_bytes());
        }
        let r = prepare(&png);
        assert!(matches!(r, Err(PhotoError::TooLarge)), "{r:?}");
    }

    fn small_jpeg() -> Vec<u8> {
        with_metadata(&jpeg_of(&noise(48, 40, 11), 80), 6, "2024:05:05 14:30:00")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = prepare(&bytes);
        }

        #[test]
        fn arbitrary_bytes_behind_an_image_signature_never_panic(
            sig in 0usize..4,
            tail in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let head: &[u8] = match sig {
                0 => b"\xFF\xD8\xFF",
                1 => b"\x89PNG\r\n\x1a\n",
                2 => b"RIFF\0\0\0\0WEBPVP8 ",
                _ => b"GIF89a",
            };
            let mut bytes = head.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = prepare(&bytes);
        }

        #[test]
        fn truncated_or_damaged_jpegs_never_panic(cut in 0usize..4000, flip in any::<(usize, u8)>()) {
            let jpeg = small_jpeg();
            let _ = prepare(&jpeg[..cut.min(jpeg.len())]);
            let mut damaged = jpeg;
            let at = flip.0 % damaged.len();
            damaged[at] ^= flip.1;
            let _ = prepare(&damaged);
        }
    }
}
