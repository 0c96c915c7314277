//! The audio track's edit list (`moov/trak/edts/elst`) of an MP4, which says how many
//! priming samples to skip and how long the audio really is.

use std::io::{Read, Seek, SeekFrom};

use crate::{AudioError, Result};

/// Largest `moov` we read into memory (a 1-hour AAC file's is about 1 MB).
const MAX_MOOV: u64 = 32 << 20;

/// The first non-empty edit of the audio track.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edit {
    movie_timescale: u32,
    media_timescale: u32,
    segment_duration: u64,
    media_time: u64,
}

impl Edit {
    /// `(frames to skip, frames to keep)` at `rate`.
    pub(crate) fn frames_at(&self, rate: u32) -> (u64, Option<u64>) {
        let skip = scale(self.media_time, rate, self.media_timescale);
        let keep = (self.segment_duration > 0)
            .then(|| scale(self.segment_duration, rate, self.movie_timescale));
        (skip, keep)
    }
}

fn scale(v: u64, num: u32, den: u32) -> u64 {
    if den == 0 {
        return v;
    }
    ((u128::from(v) * u128::from(num) + u128::from(den) / 2) / u128::from(den)) as u64
}

/// Finds the edit list, `None` if there is none (or it is not understood: then nothing is
/// trimmed, which is what players do too).
pub(crate) fn read<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<Edit>> {
    let mut pos = 0u64;
    while pos + 8 <= len {
        r.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 16];
        r.read_exact(&mut h[..8])?;
        let mut size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let mut header = 8;
        if size == 1 {
            r.read_exact(&mut h[8..16])?;
            size = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
            header = 16;
        } else if size == 0 {
            size = len - pos;
        }
        if size < header {
            return Err(AudioError::Corrupt(
                "MP4: box smaller than its header".into(),
            ));
        }
        if &h[4..8] == b"moov" {
            let body = size - header;
            if body > MAX_MOOV {
                return Err(AudioError::Corrupt("MP4: moov too large".into()));
            }
            let mut moov = Vec::with_capacity(body as usize);
            r.take(body).read_to_end(&mut moov)?;
            if (moov.len() as u64) < body {
                return Err(AudioError::Truncated);
            }
            return Ok(parse_moov(&moov));
        }
        pos = pos.saturating_add(size);
    }
    Ok(None)
}

fn boxes(b: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let h = b.get(at..at + 8)?;
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let (start, end) = match size {
            0 => (at + 8, b.len()),
            1 => {
                let l = b.get(at + 8..at + 16)?;
                let s = u64::from_be_bytes(l.try_into().ok()?);
                (at + 16, at.checked_add(usize::try_from(s).ok()?)?)
            }
            s => (at + 8, at.checked_add(s)?),
        };
        if end > b.len() || start > end {
            return None;
        }
        let item = (&h[4..8], &b[start..end]);
        at = end;
        Some(item)
    })
}

fn child<'a>(b: &'a [u8], kind: &[u8]) -> Option<&'a [u8]> {
    boxes(b).find(|(k, _)| *k == kind).map(|(_, d)| d)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Timescale of an `mvhd` or `mdhd` (version 0 or 1).
fn timescale(hd: &[u8]) -> Option<u32> {
    if hd.first()? == &1 {
        u32_at(hd, 20)
    } else {
        u32_at(hd, 12)
    }
}

fn parse_moov(moov: &[u8]) -> Option<Edit> {
    let movie_timescale = timescale(child(moov, b"mvhd")?)?;
    for (kind, trak) in boxes(moov) {
        if kind != b"trak" {
            continue;
        }
        let mdia = child(trak, b"mdia")?;
        let hdlr = child(mdia, b"hdlr")?;
        if hdlr.get(8..12)? != b"soun" {
            continue;
        }
        let media_timescale = timescale(child(mdia, b"mdhd")?)?;
        let elst = child(child(trak, b"edts")?, b"elst")?;
        let version = *elst.first()?;
        let count = u32_at(elst, 4)? as usize;
        let entry = if version == 1 { 20 } else { 12 };
        for i in 0..count.min(16) {
            let at = 8 + i * entry;
            let (dur, time) = if version == 1 {
                (u64_at(elst, at)?, u64_at(elst, at + 8)? as i64)
            } else {
                (
                    u64::from(u32_at(elst, at)?),
                    i64::from(u32_at(elst, at + 4)? as i32),
                )
            };
            if time < 0 {
                continue; // an empty edit (a gap): not ours to render
            }
            return Some(Edit {
                movie_timescale,
                media_timescale,
                segment_duration: dur,
                media_time: time as u64,
            });
        }
        return None;
    }
    None
}
