//! Ogg/Opus (RFC 7845) with the `ogg` crate's packet reader.
//!
//! The first packet is the `OpusHead`, the second `OpusTags`; audio packets of the same
//! logical stream follow. The last page's granule position says how many samples the
//! stream really holds (pre-skip included): the surplus of the final packet is trimmed.
//! A stream without an end-of-stream page is truncated.

use std::io::{Read, Seek};

use ogg::{OggReadError, reading::PacketReader};

use crate::{
    AudioError, Result,
    opus_stream::{OpusDecode, OpusHead},
    sink::PcmSink,
};

/// An Ogg/Opus stream whose headers have been read.
pub(crate) struct OggOpus<R: Read + Seek> {
    reader: PacketReader<R>,
    serial: u32,
    head: OpusHead,
}

impl<R: Read + Seek> std::fmt::Debug for OggOpus<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpus")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Seek> OggOpus<R> {
    /// Reads the `OpusHead` and `OpusTags` packets.
    pub(crate) fn open(r: R) -> Result<Self> {
        let mut reader = PacketReader::new(r);
        let first = reader
            .read_packet()
            .map_err(ogg_err)?
            .ok_or(AudioError::Empty)?;
        let head = OpusHead::parse(&first.data)?;
        let serial = first.stream_serial();
        loop {
            let p = reader
                .read_packet()
                .map_err(ogg_err)?
                .ok_or(AudioError::Truncated)?;
            if p.stream_serial() != serial {
                continue;
            }
            if !p.data.starts_with(b"OpusTags") {
                return Err(AudioError::Corrupt("Ogg/Opus: OpusTags missing".into()));
            }
            break;
        }
        Ok(OggOpus {
            reader,
            serial,
            head,
        })
    }

    /// The stream's header.
    pub(crate) fn head(&self) -> &OpusHead {
        &self.head
    }

    /// Decodes every audio packet into `sink`.
    pub(crate) fn run(mut self, dec: &mut OpusDecode, sink: &mut dyn PcmSink) -> Result<()> {
        // Samples of all packets so far, pre-skip included, as the granule counts them.
        let mut total: u64 = 0;
        loop {
            let Some(p) = self.reader.read_packet().map_err(ogg_err)? else {
                return Err(AudioError::Truncated);
            };
            if p.stream_serial() != self.serial || p.data.is_empty() {
                if p.last_in_stream() && p.stream_serial() == self.serial {
                    return Ok(());
                }
                continue;
            }
            let n = dec.samples_in(&p.data)? as u64;
            total += n;
            let mut trim = 0;
            if p.last_in_stream() {
                let granule = p.absgp_page();
                if granule != u64::MAX && granule < total {
                    trim = (total - granule).min(n) as usize;
                }
            }
            dec.decode(&p.data, trim, sink)?;
            if p.last_in_stream() {
                return Ok(());
            }
        }
    }
}

fn ogg_err(e: OggReadError) -> AudioError {
    match e {
        OggReadError::ReadError(io) => AudioError::from(io),
        other => AudioError::Corrupt(format!("Ogg: {other}")),
    }
}
