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
//! 3. decodes — a JPEG at the smallest multiple of 1/8 of its size that is still at
//!    least as big as the copy being made (the scaling happens inside the inverse DCT,
//!    so a 12 MP photo is never held at full size: libjpeg-turbo through `turbojpeg`,
//!    SIMD Huffman decoding, IDCT and colour conversion); CMYK, lossless and 12-bit
//!    JPEGs, JPEGs libjpeg-turbo refuses, and the other formats go through the
//!    `image` crate at full size — and composites transparency onto white (JPEG has
//!    no alpha);
//! 4. resizes with a Lanczos-3 filter (SIMD, `fast_image_resize`) so the long side is
//!    at most [`DISPLAY_MAX_SIDE`] (never upscaling), applies the EXIF orientation (all
//!    8 values) to the resized pixels, and encodes the display copy as a baseline JPEG
//!    (libjpeg-turbo, 4:4:4),
//!    stepping the quality down through [`QUALITY_STEPS`] until it fits
//!    [`DISPLAY_MAX_BYTES`]; an image that does not fit even at the last step (pure
//!    noise) is shrunk by a fifth and tried again at that last quality, until it fits;
//! 5. makes a thumbnail with a long side of at most [`THUMB_MAX_SIDE`] from the
//!    display copy's pixels, at [`THUMB_QUALITY`].
//!
//! Both copies are encoded from pixels only, so no EXIF (location, camera serial
//! numbers), XMP or ICC data of the original survives into what the family sees. The
//! capture time is read from EXIF `DateTimeOriginal` and returned separately.
//!
//! [`prepare_avatar`] makes a profile photo the same way (steps 1–3, turned upright),
//! then crops the centre to a square and encodes one JPEG of at most [`AVATAR_SIDE`] px
//! a side and [`AVATAR_MAX_BYTES`]; no metadata survives, and no capture time is kept.

use std::{borrow::Cow, io::Cursor};

use fast_image_resize as fir;
use image::{
    DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage,
    metadata::Orientation,
};
use turbojpeg::{Colorspace, Compressor, Decompressor, Image, PixelFormat, ScalingFactor, Subsamp};

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
/// The most scans a progressive JPEG may have: a camera writes about ten, and a
/// crafted file with thousands would make each one a pass over the whole picture.
const MAX_SCANS: u32 = 500;
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
    // `fit_size` treats width and height alike, so the size needed is the same in the
    // stored orientation as upright.
    let decoded = decode(bytes, |w, h| fit_size(w, h, DISPLAY_MAX_SIDE))?;
    // Resized as stored, then turned upright: the same picture as turning the decoded
    // pixels first, with a fraction of them to move.
    let display_px = upright(fit(decoded.rgb, DISPLAY_MAX_SIDE)?, decoded.orientation);
    let (display, display_px) = encode_within(display_px, DISPLAY_MAX_BYTES)?;
    let thumb = encode(
        fit_ref(&display_px, THUMB_MAX_SIDE)?.as_ref(),
        THUMB_QUALITY,
    )?;
    Ok(PreparedPhoto {
        display,
        thumb,
        width: display_px.width(),
        height: display_px.height(),
        taken_at: decoded.taken_at,
        mime: "image/jpeg",
    })
}

/// Prepares a profile photo: decoded and turned upright like [`prepare`], the centre
/// cropped to a square, resized to at most [`AVATAR_SIDE`] px and encoded as a JPEG of
/// at most [`AVATAR_MAX_BYTES`], with no metadata.
pub fn prepare_avatar(bytes: &[u8]) -> Result<PreparedAvatar, PhotoError> {
    // The short side becomes the square's side: it must stay ≥ AVATAR_SIDE.
    let need = |w: u32, h: u32| {
        let short = w.min(h);
        if short <= AVATAR_SIDE {
            return (w, h);
        }
        let at_least = |side: u32| {
            let s = (u64::from(side) * u64::from(AVATAR_SIDE)).div_ceil(u64::from(short));
            u32::try_from(s).unwrap_or(side)
        };
        (at_least(w), at_least(h))
    };
    let decoded = decode(bytes, need)?;
    let rgb = upright(decoded.rgb, decoded.orientation);
    let side = rgb.width().min(rgb.height());
    let x = (rgb.width() - side) / 2;
    let y = (rgb.height() - side) / 2;
    let square = image::imageops::crop_imm(&rgb, x, y, side, side).to_image();
    drop(rgb);
    let (jpeg, px) = encode_within(fit(square, AVATAR_SIDE)?, AVATAR_MAX_BYTES)?;
    Ok(PreparedAvatar {
        jpeg,
        side: px.width(),
        mime: "image/jpeg",
    })
}

/// Decoded pixels as stored in the file (not yet turned upright), with what turns them
/// upright and the EXIF capture time.
struct Decoded {
    rgb: RgbImage,
    orientation: Option<Orientation>,
    taken_at: Option<i64>,
}

/// Checks the limits, detects the format and decodes to 8-bit RGB with no alpha. `need`
/// maps the stored size to the smallest size the caller will use: a JPEG may be decoded
/// scaled down, never below it.
fn decode(bytes: &[u8], need: impl Fn(u32, u32) -> (u32, u32)) -> Result<Decoded, PhotoError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(PhotoError::TooLarge);
    }
    let format = detect(bytes)?;
    if format == ImageFormat::Jpeg
        && let Some(decoded) = decode_jpeg_scaled(bytes, &need)?
    {
        return Ok(decoded);
    }
    decode_full(bytes, format)
}

/// A JPEG through libjpeg-turbo, scaled down in the IDCT as far as `need` allows.
/// `Ok(None)` for a JPEG this path does not take — CMYK or YCCK (libjpeg-turbo gives
/// those only as CMYK), lossless or 12-bit, or one it cannot read (damaged or
/// truncated: the image crate makes what it can of those).
fn decode_jpeg_scaled(
    bytes: &[u8],
    need: &impl Fn(u32, u32) -> (u32, u32),
) -> Result<Option<Decoded>, PhotoError> {
    let Ok(mut decompressor) = Decompressor::new() else {
        return Ok(None);
    };
    // Only the headers up to the first scan: the size is checked before any decoding.
    let Ok(header) = decompressor.read_header(bytes) else {
        return Ok(None);
    };
    let (Ok(w), Ok(h)) = (u32::try_from(header.width), u32::try_from(header.height)) else {
        return Err(PhotoError::TooLarge);
    };
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(PhotoError::TooLarge);
    }
    if w == 0
        || h == 0
        || header.is_lossless
        || matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK)
    {
        return Ok(None);
    }
    let scale = idct_scale(w, h, need(w, h));
    let (sw, sh) = (scale.scale(header.width), scale.scale(header.height));
    if decompressor.set_scaling_factor(scale).is_err()
        || decompressor.set_scan_limit(MAX_SCANS).is_err()
    {
        return Ok(None);
    }
    let mut image = Image {
        pixels: vec![0; sw * sh * 3],
        width: sw,
        pitch: sw * 3,
        height: sh,
        format: PixelFormat::RGB,
    };
    if decompressor
        .decompress(bytes, image.as_deref_mut())
        .is_err()
    {
        return Ok(None);
    }
    let (Ok(ow), Ok(oh)) = (u32::try_from(sw), u32::try_from(sh)) else {
        return Ok(None);
    };
    let Some(rgb) = RgbImage::from_raw(ow, oh, image.pixels) else {
        return Ok(None);
    };
    // Metadata problems never refuse a photo: it is then shown as stored, undated.
    let exif = exif::Reader::new()
        .read_from_container(&mut Cursor::new(bytes))
        .ok();
    Ok(Some(Decoded {
        rgb,
        orientation: exif.as_ref().and_then(orientation),
        taken_at: exif.as_ref().and_then(taken_at),
    }))
}

/// The smallest IDCT scale (a multiple of 1/8, up to 1) at which a `w`×`h` JPEG still
/// decodes to at least `need` on both sides. libjpeg-turbo's scaled size is
/// `⌈side × n / 8⌉`, as [`ScalingFactor::scale`] computes it.
fn idct_scale(w: u32, h: u32, need: (u32, u32)) -> ScalingFactor {
    (1..8)
        .map(|eighths| ScalingFactor::new(eighths, 8))
        .find(|s| s.scale(w as usize) >= need.0 as usize && s.scale(h as usize) >= need.1 as usize)
        .unwrap_or(ScalingFactor::ONE)
}

/// Any supported format through the image crate, at full size.
fn decode_full(bytes: &[u8], format: ImageFormat) -> Result<Decoded, PhotoError> {
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
    let img = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    let rgb = flatten(img);
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(PhotoError::Corrupt("the image has no pixels".into()));
    }
    Ok(Decoded {
        rgb,
        orientation: exif.as_ref().and_then(orientation),
        taken_at: exif.as_ref().and_then(taken_at),
    })
}

/// `rgb` turned upright by `orientation` (flips in place, quarter turns into a new
/// buffer of the same size).
fn upright(rgb: RgbImage, orientation: Option<Orientation>) -> RgbImage {
    let Some(o) = orientation else {
        return rgb;
    };
    let mut img = DynamicImage::ImageRgb8(rgb);
    img.apply_orientation(o);
    img.into_rgb8()
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

/// `img` resized so its long side is at most `max`; returned as it is if it fits.
fn fit(img: RgbImage, max: u32) -> Result<RgbImage, PhotoError> {
    Ok(match fit_ref(&img, max)? {
        Cow::Borrowed(_) => img,
        Cow::Owned(smaller) => smaller,
    })
}

/// `img` resized so its long side is at most `max` (borrowed if it fits): Lanczos-3
/// straight from the source, which the SIMD convolution does at a cost that grows
/// with the source's pixels, not the ratio (no averaging pre-pass needed).
fn fit_ref(img: &RgbImage, max: u32) -> Result<Cow<'_, RgbImage>, PhotoError> {
    let (w, h) = fit_size(img.width(), img.height(), max);
    if (w, h) == img.dimensions() {
        return Ok(Cow::Borrowed(img));
    }
    let resize_error = |e: &dyn std::fmt::Display| PhotoError::Corrupt(format!("resizing: {e}"));
    let src = fir::images::ImageRef::new(
        img.width(),
        img.height(),
        img.as_raw(),
        fir::PixelType::U8x3,
    )
    .map_err(|e| resize_error(&e))?;
    let mut dst = fir::images::Image::new(w, h, fir::PixelType::U8x3);
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3));
    fir::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| resize_error(&e))?;
    RgbImage::from_raw(w, h, dst.into_vec())
        .map(Cow::Owned)
        .ok_or_else(|| resize_error(&"the resized buffer has the wrong size"))
}

/// Baseline JPEG of `img` at `quality`, with no metadata segments (only JFIF's APP0),
/// chroma at full resolution (4:4:4) as the family has always seen it.
fn encode(img: &RgbImage, quality: u8) -> Result<Vec<u8>, PhotoError> {
    let encode_error = |e: &dyn std::fmt::Display| PhotoError::Corrupt(format!("encoding: {e}"));
    let (Ok(w), Ok(h)) = (u16::try_from(img.width()), u16::try_from(img.height())) else {
        return Err(encode_error(&"larger than a JPEG can be"));
    };
    let (w, h) = (usize::from(w), usize::from(h));
    let mut compressor = Compressor::new().map_err(|e| encode_error(&e))?;
    compressor
        .set_quality(i32::from(quality))
        .map_err(|e| encode_error(&e))?;
    compressor
        .set_subsamp(Subsamp::None)
        .map_err(|e| encode_error(&e))?;
    let image = Image {
        pixels: img.as_raw().as_slice(),
        width: w,
        pitch: w * 3,
        height: h,
        format: PixelFormat::RGB,
    };
    compressor
        .compress_to_vec(image)
        .map_err(|e| encode_error(&e))
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
        img = fit(img, smaller)?;
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
    use image::{Rgb, RgbImage, Rgba, RgbaImage, imageops::FilterType};
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

    /// Each EXIF orientation, the corner the stored top-left (red) quadrant ends up in,
    /// and whether the sides swap.
    const ORIENTATIONS: [(u16, &str, bool); 8] = [
        (1, "TL", false),
        (2, "TR", false),
        (3, "BR", false),
        (4, "BL", false),
        (5, "TL", true),
        (6, "TR", true),
        (7, "BR", true),
        (8, "BL", true),
    ];

    /// The pixel `inset` px inside `corner` of `img` is red.
    fn assert_red_at(img: &RgbImage, corner: &str, inset: u32, o: u16) {
        let (w, h) = img.dimensions();
        let (x, y) = match corner {
            "TL" => (inset, inset),
            "TR" => (w - inset - 1, inset),
            "BL" => (inset, h - inset - 1),
            _ => (w - inset - 1, h - inset - 1),
        };
        assert!(
            is_red(img.get_pixel(x, y)),
            "orientation {o}: red at {corner}"
        );
    }

    #[test]
    fn every_exif_orientation_is_applied() {
        let plain = jpeg_of(&quadrants(), 95);
        for (o, corner, swapped) in ORIENTATIONS {
            let p = prepare(&with_metadata(&plain, o, "2024:05:05 14:30:00")).expect("prepared");
            let (w, h) = if swapped { (32, 64) } else { (64, 32) };
            assert_eq!((p.width, p.height), (w, h), "orientation {o}");
            let img = decode(&p.display);
            assert_eq!(img.dimensions(), (w, h));
            assert_red_at(&img, corner, 4, o);
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

    /// A smooth picture (soft colour ramps and waves, like sky and skin): resampling
    /// differences show as small errors on it, not as aliasing.
    fn smooth(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let wave = ((fx * 9.0).sin() * (fy * 7.0).cos() * 40.0) as i32;
            let c = |v: f32| (v as i32 + wave).clamp(0, 255) as u8;
            Rgb([
                c(60.0 + 150.0 * fx),
                c(40.0 + 170.0 * fy),
                c(200.0 - 120.0 * fx * fy),
            ])
        })
    }

    /// Mean absolute difference per channel of two same-size images.
    fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    /// `img` as a JPEG from jpeg-encoder with the given colour type and scan mode.
    fn jpeg_with(
        data: &[u8],
        w: u16,
        h: u16,
        color: jpeg_encoder::ColorType,
        progressive: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 92);
        enc.set_progressive(progressive);
        enc.encode(data, w, h, color).expect("encode");
        out
    }

    #[test]
    fn a_big_jpeg_is_decoded_scaled_and_looks_the_same_as_a_full_decode() {
        let original = jpeg_of(&smooth(4000, 3000), 95);
        // Decoded at half size in the IDCT: 2000×1500 is the smallest scale ≥ 1920×1440.
        let d = super::decode(&original, |w, h| fit_size(w, h, DISPLAY_MAX_SIDE)).expect("decoded");
        assert_eq!(d.rgb.dimensions(), (2000, 1500));
        let p = prepare(&original).expect("prepared");
        assert_eq!((p.width, p.height), (1920, 1440));
        // The same picture as decoding every pixel and resizing with Lanczos-3.
        let exact = DynamicImage::ImageRgb8(decode(&original))
            .resize_exact(1920, 1440, FilterType::Lanczos3)
            .into_rgb8();
        let diff = mean_abs_diff(&decode(&p.display), &exact);
        assert!(diff < 2.0, "mean absolute difference {diff}");
        // Between the halves, the nearest eighth above: 2400×1600 at 7/8.
        let d = super::decode(&jpeg_of(&smooth(2400, 1600), 90), |w, h| {
            fit_size(w, h, DISPLAY_MAX_SIDE)
        })
        .expect("decoded");
        assert_eq!(d.rgb.dimensions(), (2100, 1400));
        // Originals no bigger than the copy are decoded at full size.
        let d = super::decode(&jpeg_of(&smooth(1600, 1200), 90), |w, h| {
            fit_size(w, h, DISPLAY_MAX_SIDE)
        })
        .expect("decoded");
        assert_eq!(d.rgb.dimensions(), (1600, 1200));
    }

    #[test]
    fn every_exif_orientation_is_applied_after_a_scaled_decode() {
        // The quadrants at 3840×1920: decoded at half size, 1920×960.
        let big = image::imageops::resize(&quadrants(), 3840, 1920, FilterType::Nearest);
        let plain = jpeg_of(&big, 90);
        let d = super::decode(&plain, |w, h| fit_size(w, h, DISPLAY_MAX_SIDE)).expect("decoded");
        assert_eq!(d.rgb.dimensions(), (1920, 960));
        for (o, corner, swapped) in ORIENTATIONS {
            let original = with_metadata(&plain, o, "2024:05:05 14:30:00");
            let p = prepare(&original).expect("prepared");
            let (w, h) = if swapped { (960, 1920) } else { (1920, 960) };
            assert_eq!((p.width, p.height), (w, h), "orientation {o}");
            assert_eq!(p.taken_at, Some(1_714_919_400_000), "orientation {o}");
            let img = decode(&p.display);
            assert_eq!(img.dimensions(), (w, h));
            assert_red_at(&img, corner, 40, o);
            let thumb = decode(&p.thumb);
            let (tw, th) = if swapped { (160, 320) } else { (320, 160) };
            assert_eq!(thumb.dimensions(), (tw, th));
            let m = markers(&p.display);
            assert!(
                m.iter().all(|&m| m != 0xE1 && m != 0xE2 && m != 0xED),
                "{m:x?}"
            );
            let has = |needle: &[u8]| p.display.windows(needle.len()).any(|w| w == needle);
            assert!(!has(b"Exif\0\0") && !has(b"GPS") && !has(b"xmpmeta"));
        }
    }

    #[test]
    fn progressive_grayscale_and_cmyk_jpegs_are_prepared() {
        // Progressive, colour: scaled like a baseline one, same picture.
        let img = smooth(2400, 1600);
        let progressive = jpeg_with(img.as_raw(), 2400, 1600, jpeg_encoder::ColorType::Rgb, true);
        let baseline = jpeg_with(
            img.as_raw(),
            2400,
            1600,
            jpeg_encoder::ColorType::Rgb,
            false,
        );
        let p = prepare(&progressive).expect("progressive prepared");
        assert_eq!((p.width, p.height), (1920, 1280));
        let b = prepare(&baseline).expect("baseline prepared");
        let diff = mean_abs_diff(&decode(&p.display), &decode(&b.display));
        assert!(diff < 1.5, "progressive vs baseline: {diff}");

        // Grayscale: grey out, each pixel's channels equal, brightness kept.
        let grey: Vec<u8> = (0..1600u32)
            .flat_map(|y| (0..2400u32).map(move |x| ((x / 10 + y / 10) % 256) as u8))
            .collect();
        let gray_jpeg = jpeg_with(&grey, 2400, 1600, jpeg_encoder::ColorType::Luma, false);
        let p = prepare(&gray_jpeg).expect("grayscale prepared");
        assert_eq!((p.width, p.height), (1920, 1280));
        let out = decode(&p.display);
        let px = out.get_pixel(960, 640);
        assert!(
            px[0].abs_diff(px[1]) <= 2 && px[1].abs_diff(px[2]) <= 2,
            "{px:?}"
        );
        let expected = image::load_from_memory(&gray_jpeg)
            .expect("reference decode")
            .resize_exact(1920, 1280, FilterType::Lanczos3)
            .into_rgb8();
        let diff = mean_abs_diff(&out, &expected);
        assert!(diff < 3.0, "grayscale: {diff}");

        // CMYK (Adobe): the colours the image crate reads from it.
        let cmyk: Vec<u8> = (0..800u32 * 600)
            .flat_map(|i| {
                if i % 800 < 400 {
                    [0, 255, 255, 0]
                } else {
                    [255, 0, 255, 0]
                }
            })
            .collect();
        let cmyk_jpeg = jpeg_with(&cmyk, 800, 600, jpeg_encoder::ColorType::Cmyk, false);
        let p = prepare(&cmyk_jpeg).expect("CMYK prepared");
        assert_eq!((p.width, p.height), (800, 600));
        let expected = image::load_from_memory(&cmyk_jpeg)
            .expect("reference decode")
            .into_rgb8();
        let diff = mean_abs_diff(&decode(&p.display), &expected);
        assert!(diff < 3.0, "CMYK: {diff}");
    }

    #[test]
    fn a_jpeg_declaring_too_many_pixels_is_refused_before_decoding() {
        // A small JPEG whose frame header (SOF0) is rewritten to 20000×20000.
        let mut jpeg = jpeg_of(&quadrants(), 90);
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline frame header");
        jpeg[sof + 5..sof + 7].copy_from_slice(&20_000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&20_000u16.to_be_bytes());
        assert!(matches!(prepare(&jpeg), Err(PhotoError::TooLarge)));
        assert!(matches!(prepare_avatar(&jpeg), Err(PhotoError::TooLarge)));
    }

    #[test]
    fn an_avatar_from_a_big_jpeg_is_decoded_scaled_and_stays_sharp_enough() {
        // 4000×3000: the short side only needs to stay ≥ 512, so 1/4 (1000×750).
        let original = jpeg_of(&smooth(4000, 3000), 92);
        let d = super::decode(&original, |w, h| {
            let short = w.min(h);
            (
                (w * AVATAR_SIDE).div_ceil(short),
                (h * AVATAR_SIDE).div_ceil(short),
            )
        })
        .expect("decoded");
        assert_eq!(d.rgb.dimensions(), (1000, 750));
        let a = prepare_avatar(&original).expect("prepared");
        assert_eq!(a.side, AVATAR_SIDE);
        let full = decode(&original);
        let square = image::imageops::crop_imm(&full, 500, 0, 3000, 3000).to_image();
        let exact = DynamicImage::ImageRgb8(square)
            .resize_exact(AVATAR_SIDE, AVATAR_SIDE, FilterType::Lanczos3)
            .into_rgb8();
        let diff = mean_abs_diff(&decode(&a.jpeg), &exact);
        assert!(diff < 2.5, "mean absolute difference {diff}");
    }

    #[test]
    fn the_idct_scale_never_goes_below_what_is_needed() {
        let size = |w: u32, h: u32, need| {
            let s = idct_scale(w, h, need);
            (s.scale(w as usize), s.scale(h as usize))
        };
        assert_eq!(size(4000, 3000, (1920, 1440)), (2000, 1500));
        assert_eq!(size(4000, 3000, (320, 240)), (500, 375));
        assert_eq!(size(4000, 3000, (2000, 1500)), (2000, 1500));
        // Between the halves: 5/8, not the full size.
        assert_eq!(size(4000, 3000, (2001, 1500)), (2500, 1875));
        assert_eq!(size(3001, 2000, (1920, 1279)), (2251, 1500));
        assert_eq!(size(4, 8000, (1, 2000)), (1, 2000));
        assert_eq!(size(2000, 1000, (2000, 1000)), (2000, 1000));
    }

    fn small_jpeg() -> Vec<u8> {
        with_metadata(&jpeg_of(&noise(48, 40, 11), 80), 6, "2024:05:05 14:30:00")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn the_idct_scale_keeps_the_size_needed(w in 1u32..=65_535, h in 1u32..=65_535, max in 1u32..4000) {
            let need = fit_size(w, h, max);
            let s = idct_scale(w, h, need);
            let (sw, sh) = (s.scale(w as usize), s.scale(h as usize));
            prop_assert!(sw >= need.0 as usize && sh >= need.1 as usize);
            prop_assert!(sw <= w as usize && sh <= h as usize);
        }

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
