//! What an incoming Automerge chunk may cost, decided before Automerge sees it.
//!
//! A chunk from the relay is the bytes of one or more Automerge chunks: each is the
//! magic bytes, a 4-byte checksum, a type byte (0 a saved document, 1 a change, 2 a
//! DEFLATE-compressed change, 3 a bundle) and a LEB128 length, then that many bytes.
//! Automerge inflates a compressed change with no limit and applies every operation
//! it holds: one valid change of 2 000 000 text inserts compresses to ~2 KB and costs
//! every member's device ~22 s and ~1 GB to apply. So [`inspect`] walks the headers
//! itself, inflates with a hard cap ([`Limits::max_change_bytes`]), and counts the
//! operations from the run-length encoded columns — work proportional to the bytes,
//! never to the operations they describe — and refuses anything over [`Limits`].
//! Only then is a change handed to Automerge, decompressed (so Automerge never
//! inflates it again).
//!
//! The checker never panics and never allocates more than the limits allow; it is
//! fuzzed (`fuzz/`, target `chunk`).

use std::{borrow::Cow, io::Read};

/// The magic bytes that start every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Column types (the low 3 bits of a column spec), as Automerge encodes them.
const COL_GROUP: u32 = 0;
const COL_ACTOR: u32 = 1;
const COL_INTEGER: u32 = 2;
const COL_DELTA: u32 = 3;
const COL_BOOLEAN: u32 = 4;
const COL_STRING: u32 = 5;
const COL_VALUE_META: u32 = 6;
/// The bit of a column spec that says its data is DEFLATE-compressed (documents only).
const COL_DEFLATE: u32 = 0b1000;

/// How much an incoming chunk may cost. The defaults are far above what the product
/// writes (see each field) and far below what hurts a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one change once inflated. The largest legitimate change is deleting an
    /// album with every photo a family's blob quota can hold (~11 500 photos, ~0.4 MB).
    pub max_change_bytes: usize,
    /// Operations in one change. A user action writes a handful (creating a family,
    /// the largest ordinary one, writes 17); deleting an album writes one per photo.
    pub max_change_ops: u64,
    /// Operations in one chunk, over all the changes it holds (documents aside).
    pub max_chunk_ops: u64,
    /// Bytes of one saved document once its compressed columns are inflated.
    pub max_document_bytes: usize,
    /// Operations (and changes) in one saved document: a snapshot of the whole family.
    pub max_document_ops: u64,
}

impl Limits {
    /// The limits every device applies to family and personal documents.
    pub const DEFAULT: Limits = Limits {
        max_change_bytes: 2 << 20,
        max_change_ops: 20_000,
        max_chunk_ops: 20_000,
        max_document_bytes: 256 << 20,
        max_document_ops: 20_000_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which limit a chunk went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// [`Limits::max_change_bytes`].
    ChangeBytes,
    /// [`Limits::max_change_ops`].
    ChangeOps,
    /// [`Limits::max_chunk_ops`].
    ChunkOps,
    /// [`Limits::max_document_bytes`].
    DocumentBytes,
    /// [`Limits::max_document_ops`].
    DocumentOps,
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Bound::ChangeBytes => "bytes in a change",
            Bound::ChangeOps => "operations in a change",
            Bound::ChunkOps => "operations in a chunk",
            Bound::DocumentBytes => "bytes in a document",
            Bound::DocumentOps => "operations in a document",
        })
    }
}

/// Why a chunk was refused before Automerge saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// No bytes at all.
    #[error("an empty chunk")]
    Empty,
    /// The bytes end inside a header, a length or a column.
    #[error("the chunk is truncated")]
    Truncated,
    /// A part does not start with Automerge's magic bytes.
    #[error("not an Automerge chunk (bad magic bytes)")]
    BadMagic,
    /// A chunk type this version does not read (bundles, future types).
    #[error("unsupported Automerge chunk type {0}")]
    UnsupportedType(u8),
    /// The compressed data does not inflate.
    #[error("the compressed data is corrupt")]
    Inflate,
    /// A header or column layout that cannot be right.
    #[error("malformed chunk: {0}")]
    Malformed(&'static str),
    /// The chunk would cost more than the device accepts.
    #[error("too many {what}: more than {limit}")]
    TooLarge {
        /// Which limit.
        what: Bound,
        /// The limit.
        limit: u64,
    },
}

/// One Automerge chunk inside an incoming chunk, checked against the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A change, uncompressed (a type-1 chunk with its header): hand these bytes to
    /// `automerge::Change::from_bytes`.
    Change {
        /// The change chunk.
        bytes: Cow<'a, [u8]>,
        /// How many operations it holds.
        ops: u64,
    },
    /// A saved document (`save()`), as it came.
    Document {
        /// The document chunk.
        bytes: &'a [u8],
        /// How many operations it holds.
        ops: u64,
    },
}

type Result<T> = std::result::Result<T, ChunkError>;

/// Splits `chunk` into its Automerge chunks and checks each against `limits`, without
/// ever inflating or counting past them. Every byte must belong to a chunk.
pub fn inspect<'a>(chunk: &'a [u8], limits: &Limits) -> Result<Vec<Piece<'a>>> {
    if chunk.is_empty() {
        return Err(ChunkError::Empty);
    }
    let mut pieces = Vec::new();
    let mut chunk_ops = 0u64;
    let mut rest = chunk;
    while !rest.is_empty() {
        let mut r = Reader::new(rest);
        if r.take(4)? != MAGIC {
            return Err(ChunkError::BadMagic);
        }
        let checksum = r.take(4)?;
        let kind = r.byte()?;
        let len = usize::try_from(r.uleb()?).map_err(|_| ChunkError::Truncated)?;
        let header_len = r.pos;
        let body = r.take(len)?;
        let whole = &rest[..header_len + len];
        rest = &rest[header_len + len..];
        match kind {
            0 => {
                let ops = document_ops(body, limits)?;
                pieces.push(Piece::Document { bytes: whole, ops });
            }
            1 => {
                if body.len() > limits.max_change_bytes {
                    return Err(too_large(Bound::ChangeBytes, limits.max_change_bytes));
                }
                let ops = change_ops(body, limits)?;
                chunk_ops = add_ops(chunk_ops, ops, limits)?;
                pieces.push(Piece::Change {
                    bytes: Cow::Borrowed(whole),
                    ops,
                });
            }
            2 => {
                let body = inflate(body, limits.max_change_bytes, Bound::ChangeBytes)?;
                let ops = change_ops(&body, limits)?;
                chunk_ops = add_ops(chunk_ops, ops, limits)?;
                // The same change, uncompressed: the checksum (and so the change hash)
                // is the uncompressed change's, which the compressed chunk carries.
                let mut bytes = Vec::with_capacity(body.len() + 16);
                bytes.extend_from_slice(&MAGIC);
                bytes.extend_from_slice(checksum);
                bytes.push(1);
                write_uleb(&mut bytes, body.len() as u64);
                bytes.extend_from_slice(&body);
                pieces.push(Piece::Change {
                    bytes: Cow::Owned(bytes),
                    ops,
                });
            }
            other => return Err(ChunkError::UnsupportedType(other)),
        }
    }
    Ok(pieces)
}

fn too_large(what: Bound, limit: impl TryInto<u64>) -> ChunkError {
    ChunkError::TooLarge {
        what,
        limit: limit.try_into().unwrap_or(u64::MAX),
    }
}

fn add_ops(total: u64, ops: u64, limits: &Limits) -> Result<u64> {
    let total = total.saturating_add(ops);
    if total > limits.max_chunk_ops {
        return Err(too_large(Bound::ChunkOps, limits.max_chunk_ops));
    }
    Ok(total)
}

/// Inflates raw DEFLATE data, refusing (without holding more) past `cap` bytes.
fn inflate(data: &[u8], cap: usize, what: Bound) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::DeflateDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| ChunkError::Inflate)?;
    if out.len() > cap {
        return Err(too_large(what, cap));
    }
    Ok(out)
}

/// The operations in a change body (after the header): the most rows of any of its
/// operation columns.
fn change_ops(body: &[u8], limits: &Limits) -> Result<u64> {
    let mut r = Reader::new(body);
    let deps = r.uleb()?;
    r.skip_n(deps, 32)?;
    let actor_len = r.uleb_usize()?;
    r.take(actor_len)?;
    r.uleb()?; // seq
    r.uleb()?; // start op
    r.sleb()?; // time
    let message_len = r.uleb_usize()?;
    r.take(message_len)?;
    let others = r.uleb()?;
    for _ in 0..others {
        let len = r.uleb_usize()?;
        r.take(len)?;
    }
    let columns = column_specs(&mut r)?;
    let mut ops = 0;
    for (spec, len) in columns {
        let data = r.take(len)?;
        if spec & COL_DEFLATE != 0 {
            return Err(ChunkError::Malformed("a compressed column inside a change"));
        }
        ops = ops.max(rows(spec, data, limits.max_change_ops, Bound::ChangeOps)?);
    }
    Ok(ops)
}

/// The operations in a document body: the most rows of any column, changes and
/// operations alike, with compressed columns inflated under one shared cap.
fn document_ops(body: &[u8], limits: &Limits) -> Result<u64> {
    let mut r = Reader::new(body);
    let actors = r.uleb()?;
    for _ in 0..actors {
        let len = r.uleb_usize()?;
        r.take(len)?;
    }
    let heads = r.uleb()?;
    r.skip_n(heads, 32)?;
    let change_cols = column_specs(&mut r)?;
    let op_cols = column_specs(&mut r)?;
    let mut budget = limits.max_document_bytes;
    let mut most = 0;
    for (spec, len) in change_cols.into_iter().chain(op_cols) {
        let data = r.take(len)?;
        let inflated;
        let data = if spec & COL_DEFLATE != 0 {
            inflated = inflate(data, budget, Bound::DocumentBytes)?;
            &inflated[..]
        } else {
            if data.len() > budget {
                return Err(too_large(Bound::DocumentBytes, limits.max_document_bytes));
            }
            data
        };
        budget -= data.len();
        most = most.max(rows(
            spec & !COL_DEFLATE,
            data,
            limits.max_document_ops,
            Bound::DocumentOps,
        )?);
    }
    // What follows the columns (the heads' indices) is Automerge's to check.
    Ok(most)
}

/// A column table: a count, then (spec, length) pairs. At most a few dozen columns
/// exist; a count past that is refused before anything is allocated for it.
fn column_specs(r: &mut Reader<'_>) -> Result<Vec<(u32, usize)>> {
    let count = r.uleb()?;
    if count > 64 {
        return Err(ChunkError::Malformed("too many columns"));
    }
    let mut specs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let spec = u32::try_from(r.uleb()?).map_err(|_| ChunkError::Malformed("column spec"))?;
        let len = r.uleb_usize()?;
        specs.push((spec, len));
    }
    Ok(specs)
}

/// How many rows (values) a column holds, from its run-length encoding; refused as
/// soon as the count passes `limit`. Raw value columns hold no rows of their own.
fn rows(spec: u32, data: &[u8], limit: u64, what: Bound) -> Result<u64> {
    let mut r = Reader::new(data);
    let mut n = 0u64;
    let over = |n: u64| {
        if n > limit {
            Err(too_large(what, limit))
        } else {
            Ok(n)
        }
    };
    match spec & 0b111 {
        COL_BOOLEAN => {
            // Alternating run lengths, false first.
            while !r.is_empty() {
                n = over(n.saturating_add(r.uleb()?))?;
            }
        }
        kind @ (COL_GROUP | COL_ACTOR | COL_INTEGER | COL_DELTA | COL_STRING | COL_VALUE_META) => {
            let skip_value = |r: &mut Reader<'_>| -> Result<()> {
                match kind {
                    COL_DELTA => r.sleb().map(drop),
                    COL_STRING => {
                        let len = r.uleb_usize()?;
                        r.take(len).map(drop)
                    }
                    _ => r.uleb().map(drop),
                }
            };
            while !r.is_empty() {
                let count = r.sleb()?;
                if count > 0 {
                    skip_value(&mut r)?;
                    n = over(n.saturating_add(count.unsigned_abs()))?;
                } else if count < 0 {
                    let literals = count.unsigned_abs();
                    n = over(n.saturating_add(literals))?;
                    for _ in 0..literals {
                        skip_value(&mut r)?;
                    }
                } else {
                    n = over(n.saturating_add(r.uleb()?))?;
                }
            }
        }
        _ => {}
    }
    Ok(n)
}

fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A cursor over bytes that never reads past the end.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(ChunkError::Truncated)?;
        let out = self.data.get(self.pos..end).ok_or(ChunkError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// Skips `count` items of `size` bytes.
    fn skip_n(&mut self, count: u64, size: usize) -> Result<()> {
        let n = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size))
            .ok_or(ChunkError::Truncated)?;
        self.take(n).map(drop)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(ChunkError::Malformed("LEB128 overflow"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ChunkError::Malformed("LEB128 overflow"))
    }

    fn uleb_usize(&mut self) -> Result<usize> {
        usize::try_from(self.uleb()?).map_err(|_| ChunkError::Truncated)
    }

    fn sleb(&mut self) -> Result<i64> {
        let mut v = 0i64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return Err(ChunkError::Malformed("LEB128 overflow"));
            }
            v |= i64::from(b & 0x7f).wrapping_shl(shift);
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Ok(v);
            }
        }
    }
}

/// The fuzzer's entry point (`fuzz/`, target `chunk`) and its regression tests': the
/// checker on arbitrary bytes, then, when it lets them through, the whole apply path of
/// a family document (Automerge's parser, the family's rules). Fixed ids, so an input
/// replays the same way.
#[doc(hidden)]
pub fn fuzz_apply(data: &[u8]) {
    use doran_protocol::{DeviceId, FamilyId, UserId};
    if inspect(data, &Limits::DEFAULT).is_err() {
        return;
    }
    let host = crate::Actor {
        user: UserId([1; 16]),
        device: DeviceId([2; 16]),
    };
    if let Ok((mut doc, _)) = crate::FamilyDoc::create(FamilyId([3; 16]), "가족", "엄마", &host, 0)
    {
        let _ = doc.apply_remote([data]);
    }
}
