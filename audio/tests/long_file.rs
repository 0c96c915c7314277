//! Memory stays bounded for a 1-hour file: a 1-hour WAV is generated on the fly by a
//! custom reader (never held in memory) and the MP3 goes to a counting writer; the
//! process's peak resident memory may grow by at most 48 MiB (the file's PCM alone would
//! be 55 MiB as 16-bit, 110 MiB as f32). 8 kHz keeps the test to a few seconds.

use std::io::{self, Read, Seek, SeekFrom, Write};

use doran_audio::{AudioError, ConvertOptions, InputFormat, convert};

const RATE: u32 = 8_000;
const SECS: u64 = 3600;

/// A mono 16-bit WAV of a 440 Hz tone, produced as it is read.
struct GeneratedWav {
    pos: u64,
    len: u64,
    header: Vec<u8>,
}

impl GeneratedWav {
    fn new() -> Self {
        let data = SECS * u64::from(RATE) * 2;
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&((36 + data) as u32).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&RATE.to_le_bytes());
        h.extend_from_slice(&(RATE * 2).to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&(data as u32).to_le_bytes());
        GeneratedWav {
            pos: 0,
            len: 44 + data,
            header: h,
        }
    }

    fn byte_at(&self, at: u64) -> u8 {
        if at < 44 {
            return self.header[at as usize];
        }
        let i = (at - 44) / 2;
        let t = i as f64 / f64::from(RATE);
        let s = (0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() * 32767.0) as i16;
        s.to_le_bytes()[((at - 44) % 2) as usize]
    }
}

impl Read for GeneratedWav {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = self.byte_at(self.pos + k as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for GeneratedWav {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => self.len.saturating_add_signed(d),
            SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

/// Counts what is written; keeps nothing.
#[derive(Default)]
struct CountingOut {
    pos: u64,
    len: u64,
}

impl Write for CountingOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pos += buf.len() as u64;
        self.len = self.len.max(self.pos);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for CountingOut {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => self.len.saturating_add_signed(d),
            SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn one_hour_wav_streams_in_bounded_memory() {
    let before = peak_rss_kib();
    let opts = ConvertOptions {
        max_duration_ms: 2 * 3600 * 1000,
        ..ConvertOptions::default()
    };
    let mut out = CountingOut::default();
    let c = convert(GeneratedWav::new(), &mut out, &opts).expect("converts");
    let grew_mib = (peak_rss_kib() - before) / 1024;
    eprintln!(
        "1 h at 8 kHz: {} bytes of MP3, peak RSS grew by {grew_mib} MiB",
        out.len
    );
    assert_eq!(c.input_format, InputFormat::Wav);
    assert_eq!(c.duration_ms, SECS * 1000);
    assert_eq!(c.bytes_written, out.len);
    assert!(grew_mib < 48, "peak memory grew by {grew_mib} MiB");
}

#[test]
fn one_hour_is_too_long_by_default() {
    let mut out = CountingOut::default();
    match convert(GeneratedWav::new(), &mut out, &ConvertOptions::default()) {
        Err(AudioError::TooLong {
            duration_ms,
            max_ms,
        }) => {
            assert_eq!((duration_ms, max_ms), (SECS * 1000, 180_000));
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
}
