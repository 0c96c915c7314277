//! Sealed blobs: a photo, a thumbnail, a profile photo or a voice message leaves the
//! device encrypted under a key of its own, and that key travels only inside the
//! family's (or the user's) document entry that refers to the blob. The relay, its
//! blob folder or S3 bucket, and anyone who copies them hold ciphertext addressed by
//! its blake3 hash; they never see a JPEG or an MP3 (issue 18, `docs/security.md`).
//!
//! The format is XChaCha20-Poly1305 in the STREAM construction (Hoang, Reyhanitabar,
//! Rogaway, Vizár; RustCrypto's `aead::stream`, big-endian 32-bit counter and a
//! last-segment flag in the nonce):
//!
//! ```text
//! "DRB" ‖ version (1) ‖ segment 0 ‖ segment 1 ‖ … ‖ last segment
//! segment i = AEAD(key, nonce = 0¹⁹ ‖ i (u32 BE) ‖ last?, aad = header, 64 KiB of plaintext) ‖ tag (16)
//! ```
//!
//! - Every plaintext segment is [`SEGMENT`] bytes but the last (which may be empty), so
//!   segment `i` sits at a computable offset: a ranged download fetches and opens only
//!   the segments it needs ([`span`], [`open_span`]) — a voice message can start
//!   playing before it is all there.
//! - Reordering, dropping or repeating segments, cutting the blob at a segment
//!   boundary and appending to it all fail: the position and the last flag are part of
//!   each segment's nonce.
//! - The nonce prefix is zero: every key is random and seals one blob only
//!   ([`BlobKey::random`]), so a (key, nonce) pair never repeats — as in `age`.
//!   Sealing is therefore a function of the key and the bytes: the device keeps the
//!   opened bytes and seals them again, to the same ciphertext, when it uploads.

use std::fmt;

use doran_protocol::BlobHash;
use rand::TryRngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag};

use crate::keys::RandomnessError;

/// Plaintext bytes per segment (each sealed segment adds a 16-byte tag).
pub const SEGMENT: usize = 64 * 1024;
/// The Poly1305 tag after each segment.
pub const TAG: usize = 16;
/// What a sealed blob starts with: `DRB` and the format's version.
pub const HEADER: [u8; 4] = *b"DRB\x01";

/// The key of one sealed blob: 32 random bytes, written into the document entry that
/// refers to the blob. Never printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlobKey([u8; 32]);

impl BlobKey {
    /// A new key from the operating system's random number generator.
    pub fn random() -> Result<Self, RandomnessError> {
        let mut key = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut key)
            .map_err(|e| RandomnessError(e.to_string()))?;
        Ok(BlobKey(key))
    }

    /// The key made of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BlobKey(bytes)
    }

    /// The key in `bytes`, if there are exactly 32 of them.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(BlobKey)
    }

    /// The key's bytes (for the document entry and the local store).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The blob's segment cipher: every segment nonce's first 16 bytes are the zero
    /// prefix, so one key HChaCha20 derives serves the whole blob
    /// ([`crate::xchacha`]).
    fn cipher(&self) -> LessSafeKey {
        crate::xchacha::cipher(&self.0, &[0; 16])
    }
}

/// The ChaCha20-Poly1305 nonce of segment `i`: the last 8 bytes of its STREAM nonce
/// (`0¹⁹ ‖ i (u32 BE) ‖ last?`) after 4 zero bytes, as XChaCha20 builds it.
fn segment_nonce(i: u64, last: bool) -> Nonce {
    let mut tail = [0u8; 8];
    tail[3..7].copy_from_slice(&position(i).to_be_bytes());
    tail[7] = u8::from(last);
    crate::xchacha::nonce(tail)
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlobKey(…)")
    }
}

impl serde::Serialize for BlobKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for BlobKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde::Deserialize::deserialize(d)?;
        BlobKey::from_slice(&bytes)
            .ok_or_else(|| serde::de::Error::invalid_length(bytes.len(), &"32 bytes"))
    }
}

impl autosurgeon::Reconcile for BlobKey {
    type Key<'a> = autosurgeon::reconcile::NoKey;

    fn reconcile<R: autosurgeon::Reconciler>(&self, mut r: R) -> Result<(), R::Error> {
        r.bytes(self.0)
    }
}

impl autosurgeon::Hydrate for BlobKey {
    fn hydrate_bytes(bytes: &[u8]) -> Result<Self, autosurgeon::HydrateError> {
        BlobKey::from_slice(bytes).ok_or_else(|| {
            autosurgeon::HydrateError::unexpected("32 bytes", format!("{} bytes", bytes.len()))
        })
    }
}

/// A blob as a document entry names it: its address on the relay (blake3 of the
/// sealed bytes) and the key it is sealed with — `None` for a blob added before blobs
/// were sealed, which is stored as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    /// blake3 of the bytes the relay stores.
    pub hash: BlobHash,
    /// The key that opens them.
    pub key: Option<BlobKey>,
}

impl BlobRef {
    /// The reference an entry makes with `hash` (hex) and `key`, if the hash reads.
    pub fn parse(hash: &str, key: Option<BlobKey>) -> Option<Self> {
        Some(BlobRef {
            hash: hash.parse().ok()?,
            key,
        })
    }
}

/// A blob stored as it is (not sealed).
impl From<BlobHash> for BlobRef {
    fn from(hash: BlobHash) -> Self {
        BlobRef { hash, key: None }
    }
}

/// Why sealed bytes do not open. Each means the bytes are not what the key sealed:
/// another blob, a wrong key, or bytes changed on the way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The bytes do not start with a sealed blob's header (a plaintext blob, or a
    /// format this build does not know).
    #[error("not a sealed blob of a known version")]
    NotSealed,
    /// A segment did not open: a wrong key, or bytes changed, moved, cut or added.
    #[error("segment {0} does not open with this key")]
    Segment(u64),
    /// A range outside the blob, or sealed bytes of the wrong length for it.
    #[error("the range does not fit the blob")]
    BadRange,
    /// More than 2³² segments (256 TiB): no blob is that large.
    #[error("too large to seal")]
    TooLarge,
}

/// How many segments `plain_len` bytes are sealed in (at least one: an empty blob is
/// one empty last segment).
pub fn segments(plain_len: u64) -> u64 {
    plain_len.div_ceil(SEGMENT as u64).max(1)
}

/// The sealed size of `plain_len` bytes.
pub fn sealed_len(plain_len: u64) -> u64 {
    HEADER.len() as u64 + plain_len + segments(plain_len) * TAG as u64
}

/// The plaintext size of a sealed blob of `sealed_len` bytes, if a blob can have it.
pub fn plain_len(sealed_len: u64) -> Option<u64> {
    let body = sealed_len.checked_sub(HEADER.len() as u64)?;
    let whole = (SEGMENT + TAG) as u64;
    let (full, rest) = (body / whole, body % whole);
    match rest {
        0 if full > 0 => Some(full * SEGMENT as u64),
        r if r >= TAG as u64 => Some(full * SEGMENT as u64 + r - TAG as u64),
        _ => None,
    }
}

/// Seals `plain` under `key`.
pub fn seal(key: &BlobKey, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let cipher = key.cipher();
    let count = segments(plain.len() as u64);
    if count > u64::from(u32::MAX) {
        return Err(SealError::TooLarge);
    }
    let sealed =
        usize::try_from(sealed_len(plain.len() as u64)).map_err(|_| SealError::TooLarge)?;
    let mut out = Vec::with_capacity(sealed);
    out.extend_from_slice(&HEADER);
    let mut pieces = plain.chunks(SEGMENT);
    for i in 0..count {
        // Sealed in place where it lands: no copy but the one into the output.
        let at = out.len();
        out.extend_from_slice(pieces.next().unwrap_or_default());
        let tag: Tag = cipher
            .seal_in_place_separate_tag(
                segment_nonce(i, i + 1 == count),
                Aad::from(HEADER),
                &mut out[at..],
            )
            .map_err(|_| SealError::TooLarge)?;
        out.extend_from_slice(tag.as_ref());
    }
    Ok(out)
}

/// Opens a whole sealed blob.
pub fn open(key: &BlobKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let plain = plain_len(sealed.len() as u64).ok_or(SealError::NotSealed)?;
    if sealed[..HEADER.len()] != HEADER {
        return Err(SealError::NotSealed);
    }
    let total = segments(plain);
    open_segments(key, 0, total, total, &sealed[HEADER.len()..])
}

/// Opens a whole sealed blob in its own buffer: each segment is opened where it lies
/// and moved down over the tags before it, so no second buffer is made. A download is
/// opened this way: a fresh buffer of a few MiB costs the kernel more (a page fault and
/// zeroing per 4 KiB) than the cipher does.
pub fn open_owned(key: &BlobKey, mut sealed: Vec<u8>) -> Result<Vec<u8>, SealError> {
    let plain = plain_len(sealed.len() as u64).ok_or(SealError::NotSealed)?;
    if sealed[..HEADER.len()] != HEADER {
        return Err(SealError::NotSealed);
    }
    let cipher = key.cipher();
    let total = segments(plain);
    let (mut read, mut write) = (HEADER.len(), 0);
    for i in 0..total {
        let end = (read + SEGMENT + TAG).min(sealed.len());
        let opened = cipher
            .open_in_place(
                segment_nonce(i, i + 1 == total),
                Aad::from(HEADER),
                &mut sealed[read..end],
            )
            .map_err(|_| SealError::Segment(i))?
            .len();
        sealed.copy_within(read..read + opened, write);
        write += opened;
        read = end;
    }
    // A tag's worth of bytes after a blob of whole segments reads as one more empty
    // segment's length, but was never opened: refused, as `open` refuses it.
    if read != sealed.len() {
        return Err(SealError::BadRange);
    }
    sealed.truncate(write);
    Ok(sealed)
}

/// The part of a sealed blob that holds the plaintext bytes `start..end` of a blob of
/// `plain_len` bytes: fetch `sealed` (a byte range of the sealed blob, end exclusive)
/// and open it with [`open_span`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The sealed bytes to fetch, `start..end`.
    pub sealed: (u64, u64),
    /// The first segment in them.
    pub first: u64,
    /// How many segments they hold.
    pub count: u64,
    /// Where `start` is in the opened bytes.
    pub skip: u64,
    /// The plaintext bytes asked for (`end - start`, cut at the blob's end).
    pub len: u64,
    /// The blob's segment count.
    pub total: u64,
}

/// Where the plaintext bytes `start..end` of a `plain_len`-byte blob sit once sealed.
pub fn span(plain_len: u64, start: u64, end: u64) -> Result<Span, SealError> {
    let end = end.min(plain_len);
    if start >= end {
        return Err(SealError::BadRange);
    }
    let seg = SEGMENT as u64;
    let (first, last) = (start / seg, (end - 1) / seg);
    let whole = seg + TAG as u64;
    let total = segments(plain_len);
    let sealed_start = HEADER.len() as u64 + first * whole;
    let sealed_end = (HEADER.len() as u64 + (last + 1) * whole).min(sealed_len(plain_len));
    Ok(Span {
        sealed: (sealed_start, sealed_end),
        first,
        count: last - first + 1,
        skip: start - first * seg,
        len: end - start,
        total,
    })
}

/// Opens the sealed bytes of `span` (as fetched) and returns the plaintext bytes it
/// was asked for. Each segment is authenticated on its own, so the bytes are the
/// sealer's even though the rest of the blob was never fetched.
pub fn open_span(key: &BlobKey, span: &Span, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() as u64 != span.sealed.1 - span.sealed.0 {
        return Err(SealError::BadRange);
    }
    let opened = open_segments(key, span.first, span.count, span.total, sealed)?;
    let skip = usize::try_from(span.skip).map_err(|_| SealError::BadRange)?;
    let len = usize::try_from(span.len).map_err(|_| SealError::BadRange)?;
    opened
        .get(skip..skip + len)
        .map(<[u8]>::to_vec)
        .ok_or(SealError::BadRange)
}

/// Opens `count` consecutive segments starting at `first` of a blob of `total`.
fn open_segments(
    key: &BlobKey,
    first: u64,
    count: u64,
    total: u64,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let cipher = key.cipher();
    let mut out = Vec::with_capacity(sealed.len());
    let mut pieces = sealed.chunks(SEGMENT + TAG);
    for i in first..first + count {
        let piece = pieces.next().ok_or(SealError::BadRange)?;
        // Opened in place where it lands, then its tag cut off.
        let at = out.len();
        out.extend_from_slice(piece);
        let opened = cipher
            .open_in_place(
                segment_nonce(i, i + 1 == total),
                Aad::from(HEADER),
                &mut out[at..],
            )
            .map_err(|_| SealError::Segment(i))?
            .len();
        out.truncate(at + opened);
    }
    if pieces.next().is_some() {
        return Err(SealError::BadRange);
    }
    Ok(out)
}

/// The STREAM position of segment `i`. A blob has far fewer than 2³² segments (the
/// relay's blob limit is a few hundred MiB); a larger index maps to a position no
/// segment was sealed at, so it fails to open rather than wrap around.
fn position(i: u64) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> BlobKey {
        BlobKey([n; 32])
    }

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn every_size_round_trips_and_has_its_announced_length() {
        for len in [
            0,
            1,
            15,
            16,
            17,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 5,
        ] {
            let plain = bytes(len);
            let sealed = seal(&key(1), &plain).unwrap();
            assert_eq!(sealed.len() as u64, sealed_len(len as u64), "{len}");
            assert_eq!(plain_len(sealed.len() as u64), Some(len as u64), "{len}");
            assert_eq!(open(&key(1), &sealed).unwrap(), plain, "{len}");
            assert_eq!(open_owned(&key(1), sealed.clone()).unwrap(), plain, "{len}");
            assert_eq!(&sealed[..4], b"DRB\x01");
        }
    }

    /// The format as RustCrypto's XChaCha20-Poly1305 STREAM writes it (how blobs were
    /// sealed before the ring cipher): the bytes must not change, in either direction.
    fn reference_seal(key: &BlobKey, plain: &[u8]) -> Vec<u8> {
        use chacha20poly1305::{
            KeyInit, XChaCha20Poly1305,
            aead::stream::{NewStream, Nonce, StreamBE32, StreamPrimitive},
        };
        let aead = XChaCha20Poly1305::new((&key.0).into());
        let stream =
            StreamBE32::from_aead(aead, &Nonce::<XChaCha20Poly1305, StreamBE32<_>>::default());
        let count = segments(plain.len() as u64);
        let mut out = HEADER.to_vec();
        let mut pieces = plain.chunks(SEGMENT);
        for i in 0..count {
            let mut buf = pieces.next().unwrap_or_default().to_vec();
            stream
                .encrypt_in_place(position(i), i + 1 == count, &HEADER, &mut buf)
                .unwrap();
            out.extend_from_slice(&buf);
        }
        out
    }

    #[test]
    fn the_bytes_are_those_of_xchacha20_poly1305_stream() {
        for (n, len) in [
            (1, 0),
            (2, 1),
            (3, 4096),
            (4, SEGMENT),
            (5, SEGMENT + 1),
            (6, 3 * SEGMENT + 17),
        ] {
            let plain = bytes(len);
            let reference = reference_seal(&key(n), &plain);
            assert_eq!(seal(&key(n), &plain).unwrap(), reference, "{len}");
            assert_eq!(open(&key(n), &reference).unwrap(), plain, "{len}");
            assert_eq!(open_owned(&key(n), reference).unwrap(), plain, "{len}");
        }
    }

    #[test]
    fn sealing_is_a_function_of_key_and_bytes() {
        let plain = bytes(100_000);
        assert_eq!(
            seal(&key(1), &plain).unwrap(),
            seal(&key(1), &plain).unwrap()
        );
        assert_ne!(
            seal(&key(1), &plain).unwrap(),
            seal(&key(2), &plain).unwrap()
        );
    }

    #[test]
    fn the_plaintext_does_not_show() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        jpeg.extend_from_slice(&bytes(200_000));
        let sealed = seal(&key(3), &jpeg).unwrap();
        assert!(!sealed.windows(4).any(|w| w == [0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(
            !sealed
                .windows(64)
                .any(|w| jpeg.windows(64).take(1000).any(|p| p == w))
        );
    }

    /// Opens `sealed` both ways (borrowed, and in its own buffer): same verdict.
    fn opens(key: &BlobKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let borrowed = open(key, sealed);
        assert_eq!(open_owned(key, sealed.to_vec()), borrowed);
        borrowed
    }

    #[test]
    fn a_wrong_key_or_a_changed_byte_does_not_open() {
        let plain = bytes(2 * SEGMENT + 100);
        let sealed = seal(&key(1), &plain).unwrap();
        assert_eq!(opens(&key(2), &sealed), Err(SealError::Segment(0)));
        for at in [4, 100, SEGMENT + TAG + 4, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(
                matches!(opens(&key(1), &bad), Err(SealError::Segment(_))),
                "{at}"
            );
        }
        let mut header = sealed;
        header[3] = 2;
        assert_eq!(opens(&key(1), &header), Err(SealError::NotSealed));
    }

    #[test]
    fn cutting_reordering_or_extending_is_refused() {
        let plain = bytes(3 * SEGMENT);
        let sealed = seal(&key(1), &plain).unwrap();
        let whole = SEGMENT + TAG;
        // Cut at a segment boundary: the new last segment was not sealed as last.
        let cut = &sealed[..4 + 2 * whole];
        assert!(opens(&key(1), cut).is_err());
        // Two segments swapped.
        let mut swapped = sealed[..4].to_vec();
        swapped.extend_from_slice(&sealed[4 + whole..4 + 2 * whole]);
        swapped.extend_from_slice(&sealed[4..4 + whole]);
        swapped.extend_from_slice(&sealed[4 + 2 * whole..]);
        assert!(opens(&key(1), &swapped).is_err());
        // A tag's worth of bytes appended to a blob of whole segments.
        let mut tail = sealed.clone();
        tail.extend_from_slice(&[0; TAG]);
        assert_eq!(opens(&key(1), &tail), Err(SealError::BadRange));
        // A segment repeated at the end.
        let mut longer = sealed.clone();
        longer.extend_from_slice(&sealed[4..4 + whole]);
        assert!(opens(&key(1), &longer).is_err());
        // Too short to be anything.
        assert_eq!(opens(&key(1), b"DRB\x01short"), Err(SealError::NotSealed));
        assert_eq!(opens(&key(1), b""), Err(SealError::NotSealed));
    }

    #[test]
    fn a_range_opens_from_its_segments_alone() {
        let plain = bytes(5 * SEGMENT + 1234);
        let sealed = seal(&key(9), &plain).unwrap();
        let len = plain.len() as u64;
        for (start, end) in [
            (0, 10),
            (SEGMENT as u64 - 3, SEGMENT as u64 + 3),
            (2 * SEGMENT as u64, 4 * SEGMENT as u64),
            (len - 5, len),
            (len - 5, len + 1000),
            (0, len),
        ] {
            let s = span(len, start, end).unwrap();
            let piece = &sealed[s.sealed.0 as usize..s.sealed.1 as usize];
            let got = open_span(&key(9), &s, piece).unwrap();
            assert_eq!(
                got,
                plain[start as usize..end.min(len) as usize],
                "{start}..{end}"
            );
        }
        // A piece from elsewhere in the blob, or of another length, is refused.
        let s = span(len, 0, 10).unwrap();
        let other =
            &sealed[s.sealed.0 as usize + SEGMENT + TAG..s.sealed.1 as usize + SEGMENT + TAG];
        assert!(open_span(&key(9), &s, other).is_err());
        assert_eq!(
            open_span(&key(9), &s, &sealed[..10]),
            Err(SealError::BadRange)
        );
        assert_eq!(span(len, len, len + 1), Err(SealError::BadRange));
    }

    #[test]
    fn a_key_is_never_printed() {
        assert_eq!(format!("{:?}", key(7)), "BlobKey(…)");
        assert_ne!(BlobKey::random().unwrap(), BlobKey::random().unwrap());
    }
}
