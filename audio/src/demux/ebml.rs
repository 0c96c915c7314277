//! A minimal streaming EBML reader for WebM/Matroska audio.
//!
//! It reads front to back and never seeks, so it handles MediaRecorder's live style:
//! a Segment and Clusters of unknown size (all-ones size field, e.g.
//! `01 FF FF FF FF FF FF FF`), no Cues, no Duration. Segment and Cluster are entered
//! whatever their size says; Tracks and BlockGroups (always sized) are read whole;
//! everything else is skipped by its size. An unknown size on any other element is
//! corrupt. Frames come out of SimpleBlocks and BlockGroups (with their DiscardPadding),
//! unlaced or Xiph-, EBML- or fixed-laced.

use std::{
    collections::VecDeque,
    io::{self, Read},
};

use crate::{AudioError, Result};

/// The EBML header's ID, the first four bytes of every WebM/Matroska file.
pub(crate) const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

const ID_EBML: u64 = 0x1A45_DFA3;
const ID_DOCTYPE: u64 = 0x4282;
const ID_SEGMENT: u64 = 0x1853_8067;
const ID_CLUSTER: u64 = 0x1F43_B675;
const ID_TRACKS: u64 = 0x1654_AE6B;
const ID_TRACK_ENTRY: u64 = 0xAE;
const ID_TRACK_NUMBER: u64 = 0xD7;
const ID_TRACK_TYPE: u64 = 0x83;
const ID_CODEC_ID: u64 = 0x86;
const ID_CODEC_PRIVATE: u64 = 0x63A2;
const ID_CODEC_DELAY: u64 = 0x56AA;
const ID_AUDIO: u64 = 0xE1;
const ID_CHANNELS: u64 = 0x9F;
const ID_SIMPLE_BLOCK: u64 = 0xA3;
const ID_BLOCK_GROUP: u64 = 0xA0;
const ID_BLOCK: u64 = 0xA1;
const ID_DISCARD_PADDING: u64 = 0x75A2;

/// Largest element we read into memory (Tracks, a block): far above any audio block.
const MAX_BODY: u64 = 8 << 20;

/// The audio track's description from the Tracks element.
#[derive(Debug, Clone, Default)]
pub(crate) struct AudioTrack {
    pub number: u64,
    pub codec_id: String,
    pub codec_private: Vec<u8>,
    /// CodecDelay in nanoseconds (ffmpeg writes the Opus pre-skip here too).
    pub codec_delay_ns: Option<u64>,
    pub channels: Option<u64>,
}

/// One coded frame of the audio track.
#[derive(Debug)]
pub(crate) struct Frame {
    pub data: Vec<u8>,
    /// DiscardPadding of the block (ns of audio to drop at its end), on its last frame.
    pub discard_padding_ns: i64,
}

/// Reads frames of the first audio track of a WebM/Matroska stream.
#[derive(Debug)]
pub(crate) struct WebmReader<R> {
    r: R,
    track: AudioTrack,
    pending: VecDeque<Frame>,
}

impl<R: Read> WebmReader<R> {
    /// Reads the EBML header and everything up to and including Tracks.
    pub(crate) fn open(mut r: R) -> Result<Self> {
        let (id, size) = read_header(&mut r)?.ok_or(AudioError::Empty)?;
        if id != ID_EBML {
            return Err(AudioError::NotAudio);
        }
        let size = size.ok_or_else(|| corrupt("EBML header of unknown size"))?;
        read_body(&mut r, size)?;
        loop {
            let (id, size) = read_header(&mut r)?.ok_or(AudioError::Truncated)?;
            match id {
                ID_SEGMENT => continue,
                ID_TRACKS => {
                    let size = size.ok_or_else(|| corrupt("Tracks of unknown size"))?;
                    let body = read_body(&mut r, size)?;
                    let track = parse_tracks(&body)?;
                    return Ok(WebmReader {
                        r,
                        track,
                        pending: VecDeque::new(),
                    });
                }
                ID_CLUSTER | ID_SIMPLE_BLOCK | ID_BLOCK_GROUP => {
                    return Err(corrupt("blocks before Tracks"));
                }
                _ => skip(
                    &mut r,
                    size.ok_or_else(|| corrupt("element of unknown size"))?,
                )?,
            }
        }
    }

    /// The audio track found in Tracks.
    pub(crate) fn track(&self) -> &AudioTrack {
        &self.track
    }

    /// The next frame of the audio track, `None` at a clean end of the stream.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Ok(Some(f));
            }
            let Some((id, size)) = read_header(&mut self.r)? else {
                return Ok(None);
            };
            match (id, size) {
                (ID_SEGMENT | ID_CLUSTER, _) => continue,
                (_, None) => return Err(corrupt("element of unknown size")),
                (ID_SIMPLE_BLOCK, Some(size)) => {
                    let body = read_body(&mut self.r, size)?;
                    self.parse_block(&body, 0)?;
                }
                (ID_BLOCK_GROUP, Some(size)) => {
                    let body = read_body(&mut self.r, size)?;
                    let mut block = None;
                    let mut padding = 0i64;
                    for child in Children::new(&body) {
                        let (cid, data) = child?;
                        match cid {
                            ID_BLOCK => block = Some(data),
                            ID_DISCARD_PADDING => padding = read_int(data)?,
                            _ => {}
                        }
                    }
                    if let Some(b) = block {
                        self.parse_block(b, padding)?;
                    }
                }
                (ID_TRACKS, Some(size)) => skip(&mut self.r, size)?, // a second Tracks: keep ours
                (_, Some(size)) => skip(&mut self.r, size)?,
            }
        }
    }

    fn parse_block(&mut self, b: &[u8], discard_padding_ns: i64) -> Result<()> {
        let (track, n) = vint(b, false)?.ok_or_else(|| corrupt("short block"))?;
        if track != Some(self.track.number) {
            return Ok(());
        }
        let rest = b.get(n + 2..).ok_or_else(|| corrupt("short block"))?;
        let (&flags, rest) = rest.split_first().ok_or_else(|| corrupt("short block"))?;
        let frames = split_lacing(flags, rest)?;
        let last = frames.len().saturating_sub(1);
        for (i, data) in frames.into_iter().enumerate() {
            let pad = if i == last { discard_padding_ns } else { 0 };
            self.pending.push_back(Frame {
                data: data.to_vec(),
                discard_padding_ns: pad,
            });
        }
        Ok(())
    }
}

/// The DocType in an EBML header at the start of `b`, `None` if `b` stops before it.
pub(crate) fn doc_type(b: &[u8]) -> Result<Option<String>> {
    let Ok(Some((ID_EBML, n))) = vint(b, true).map(|v| v.map(|(id, n)| (id.unwrap_or(0), n)))
    else {
        return Err(AudioError::NotAudio);
    };
    let Some((size, m)) = vint(&b[n..], false)? else {
        return Ok(None);
    };
    let body = &b[n + m..];
    let body = match size {
        Some(s) if (s as usize) <= body.len() => &body[..s as usize],
        _ => body,
    };
    let mut at = 0;
    while at < body.len() {
        let Some((id, a)) = vint(&body[at..], true)? else {
            return Ok(None);
        };
        let Some((size, c)) = vint(&body[at + a..], false)? else {
            return Ok(None);
        };
        let size = size.ok_or_else(|| corrupt("EBML header child of unknown size"))? as usize;
        let start = at + a + c;
        let Some(data) = body.get(start..start.saturating_add(size)) else {
            return Ok(None);
        };
        if id == Some(ID_DOCTYPE) {
            let s = String::from_utf8_lossy(data);
            return Ok(Some(s.trim_end_matches('\0').to_owned()));
        }
        at = start + size;
    }
    Ok(None)
}

fn parse_tracks(body: &[u8]) -> Result<AudioTrack> {
    let mut first_other: Option<String> = None;
    for entry in Children::new(body) {
        let (id, data) = entry?;
        if id != ID_TRACK_ENTRY {
            continue;
        }
        let mut t = AudioTrack::default();
        let mut kind = 0;
        for child in Children::new(data) {
            let (cid, d) = child?;
            match cid {
                ID_TRACK_NUMBER => t.number = read_uint(d)?,
                ID_TRACK_TYPE => kind = read_uint(d)?,
                ID_CODEC_ID => {
                    t.codec_id = String::from_utf8_lossy(d).trim_end_matches('\0').into()
                }
                ID_CODEC_PRIVATE => t.codec_private = d.to_vec(),
                ID_CODEC_DELAY => t.codec_delay_ns = Some(read_uint(d)?),
                ID_AUDIO => {
                    for a in Children::new(d) {
                        let (aid, ad) = a?;
                        if aid == ID_CHANNELS {
                            t.channels = Some(read_uint(ad)?);
                        }
                    }
                }
                _ => {}
            }
        }
        if kind == 2 || t.codec_id.starts_with("A_") {
            if t.codec_id == "A_OPUS" {
                return Ok(t);
            }
            first_other.get_or_insert(t.codec_id);
        }
    }
    match first_other {
        Some(codec) => Err(AudioError::UnsupportedCodec(format!(
            "{codec} in WebM/Matroska"
        ))),
        None => Err(AudioError::UnsupportedCodec(
            "WebM/Matroska without an audio track".into(),
        )),
    }
}

fn split_lacing(flags: u8, data: &[u8]) -> Result<Vec<&[u8]>> {
    let lacing = (flags >> 1) & 3;
    if lacing == 0 {
        return Ok(vec![data]);
    }
    let (&count, mut rest) = data
        .split_first()
        .ok_or_else(|| corrupt("short laced block"))?;
    let n = usize::from(count) + 1;
    let mut sizes = Vec::with_capacity(n);
    match lacing {
        1 => {
            for _ in 0..n - 1 {
                let mut size = 0usize;
                loop {
                    let (&b, r) = rest
                        .split_first()
                        .ok_or_else(|| corrupt("bad Xiph lacing"))?;
                    rest = r;
                    size += usize::from(b);
                    if b != 255 {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
        2 => {
            if rest.len() % n != 0 {
                return Err(corrupt("bad fixed lacing"));
            }
            sizes.resize(n - 1, rest.len() / n);
        }
        _ => {
            let mut prev: i64 = 0;
            for i in 0..n - 1 {
                let (v, used) = vint(rest, false)?.ok_or_else(|| corrupt("bad EBML lacing"))?;
                let v = v.ok_or_else(|| corrupt("bad EBML lacing"))? as i64;
                let size = if i == 0 {
                    v
                } else {
                    let bias = (1i64 << (7 * used - 1)) - 1;
                    prev + (v - bias)
                };
                if size < 0 {
                    return Err(corrupt("bad EBML lacing"));
                }
                sizes.push(size as usize);
                prev = size;
                rest = &rest[used..];
            }
        }
    }
    let mut frames = Vec::with_capacity(n);
    for size in sizes {
        if size > rest.len() {
            return Err(corrupt("lace larger than its block"));
        }
        let (f, r) = rest.split_at(size);
        frames.push(f);
        rest = r;
    }
    frames.push(rest);
    Ok(frames)
}

/// Children of a master element held in memory; sizes must be known and fit.
struct Children<'a> {
    b: &'a [u8],
}

impl<'a> Children<'a> {
    fn new(b: &'a [u8]) -> Self {
        Children { b }
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<(u64, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.b.is_empty() {
            return None;
        }
        let item = (|| {
            let (id, a) = vint(self.b, true)?.ok_or_else(|| corrupt("short element"))?;
            let (size, c) = vint(&self.b[a..], false)?.ok_or_else(|| corrupt("short element"))?;
            let size = size.ok_or_else(|| corrupt("child of unknown size"))?;
            let start = a + c;
            let end = usize::try_from(size)
                .ok()
                .and_then(|s| start.checked_add(s))
                .filter(|&e| e <= self.b.len())
                .ok_or_else(|| corrupt("child larger than its parent"))?;
            let data = &self.b[start..end];
            self.b = &self.b[end..];
            Ok((id.unwrap_or(0), data))
        })();
        if item.is_err() {
            self.b = &[];
        }
        Some(item)
    }
}

/// Decodes a variable-size integer at the start of `b`: `(value, length)`; for a size,
/// `value` is `None` when all its bits are set (unknown size); for an ID, the marker bit
/// is kept. `Ok(None)` if `b` is too short.
fn vint(b: &[u8], is_id: bool) -> Result<Option<(Option<u64>, usize)>> {
    let Some(&first) = b.first() else {
        return Ok(None);
    };
    if first == 0 {
        return Err(corrupt("invalid variable-size integer"));
    }
    let len = first.leading_zeros() as usize + 1;
    if is_id && len > 4 {
        return Err(corrupt("invalid element ID"));
    }
    if b.len() < len {
        return Ok(None);
    }
    let mut v = if is_id {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    for &x in &b[1..len] {
        v = (v << 8) | u64::from(x);
    }
    if !is_id && v == (1u64 << (7 * len)) - 1 {
        return Ok(Some((None, len)));
    }
    Ok(Some((Some(v), len)))
}

/// Reads one element header from the stream: `(id, size)`, size `None` when unknown;
/// `Ok(None)` at a clean end of stream.
fn read_header(r: &mut impl Read) -> Result<Option<(u64, Option<u64>)>> {
    let Some(id) = read_vint(r, true)? else {
        return Ok(None);
    };
    let size = read_vint(r, false)?.ok_or(AudioError::Truncated)?;
    Ok(Some((id.unwrap_or(0), size)))
}

fn read_vint(r: &mut impl Read, is_id: bool) -> Result<Option<Option<u64>>> {
    let mut buf = [0u8; 8];
    if r.read(&mut buf[..1]).map_err(AudioError::from)? == 0 {
        // `read` may legally return 0 only at the end; retry once on Interrupted is
        // handled by read_exact below for the rest.
        return Ok(None);
    }
    if buf[0] == 0 {
        return Err(corrupt("invalid variable-size integer"));
    }
    let len = buf[0].leading_zeros() as usize + 1;
    if is_id && len > 4 {
        return Err(corrupt("invalid element ID"));
    }
    r.read_exact(&mut buf[1..len])?;
    Ok(vint(&buf[..len], is_id)?.map(|(v, _)| v))
}

fn read_body(r: &mut impl Read, size: u64) -> Result<Vec<u8>> {
    if size > MAX_BODY {
        return Err(corrupt("element too large"));
    }
    let mut body = Vec::with_capacity(size as usize);
    r.take(size).read_to_end(&mut body)?;
    if (body.len() as u64) < size {
        return Err(AudioError::Truncated);
    }
    Ok(body)
}

fn skip(r: &mut impl Read, size: u64) -> Result<()> {
    let skipped = io::copy(&mut r.take(size), &mut io::sink())?;
    if skipped < size {
        return Err(AudioError::Truncated);
    }
    Ok(())
}

fn read_uint(d: &[u8]) -> Result<u64> {
    if d.len() > 8 {
        return Err(corrupt("integer longer than 8 bytes"));
    }
    Ok(d.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
}

fn read_int(d: &[u8]) -> Result<i64> {
    if d.is_empty() {
        return Ok(0);
    }
    let u = read_uint(d)?;
    let shift = 64 - 8 * d.len() as u32;
    Ok(((u << shift) as i64) >> shift)
}

fn corrupt(what: &str) -> AudioError {
    AudioError::Corrupt(format!("WebM/Matroska: {what}"))
}
