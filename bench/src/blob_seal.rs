//! `doran-bench blob-seal`: what sealing a blob costs a device (issue 18), in one
//! process on one core: `client-core`'s sealed-blob format (XChaCha20-Poly1305 STREAM,
//! 64 KiB segments; `client-core/src/seal.rs`) as devices seal and open it, beside the
//! same format through RustCrypto's portable `XChaCha20Poly1305` STREAM (the
//! reference: how blobs were sealed before) and blake3 of the same bytes (what every
//! upload computes anyway). Both produce the very same bytes, checked in the run.

use std::time::Duration;

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305,
    aead::stream::{NewStream, Nonce, StreamBE32, StreamPrimitive},
};
use clap::Args;
use doran_client_core::seal::{self, BlobKey, HEADER, SEGMENT, TAG};

use crate::stats::{Percentiles, peak_rss_bytes, timed};

/// Options of `doran-bench blob-seal`.
#[derive(Debug, Args)]
pub struct Options {
    /// Blobs sealed and opened per size.
    #[arg(long, default_value_t = 64)]
    pub blobs: usize,
}

type BoxError = Box<dyn std::error::Error>;

/// The sizes measured: a thumbnail, a voice message, a display copy of a photo.
const SIZES: [usize; 3] = [48 * 1024, 600 * 1024, 4 * 1024 * 1024];

/// The reference: the format through RustCrypto's STREAM, segment by segment.
fn reference_stream(key: &BlobKey) -> StreamBE32<XChaCha20Poly1305> {
    let aead = XChaCha20Poly1305::new(key.as_bytes().into());
    StreamBE32::from_aead(aead, &Nonce::<XChaCha20Poly1305, StreamBE32<_>>::default())
}

fn reference_seal(key: &BlobKey, plain: &[u8]) -> Result<Vec<u8>, BoxError> {
    let stream = reference_stream(key);
    let count = seal::segments(plain.len() as u64);
    let mut out = HEADER.to_vec();
    let mut buf = Vec::with_capacity(SEGMENT + TAG);
    let mut pieces = plain.chunks(SEGMENT);
    for i in 0..count {
        buf.clear();
        buf.extend_from_slice(pieces.next().unwrap_or_default());
        let i = u32::try_from(i)?;
        stream
            .encrypt_in_place(i, u64::from(i) + 1 == count, &HEADER, &mut buf)
            .map_err(|_| "reference seal")?;
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

fn reference_open(key: &BlobKey, sealed: &[u8]) -> Result<Vec<u8>, BoxError> {
    let stream = reference_stream(key);
    let body = &sealed[HEADER.len()..];
    let count = body.len().div_ceil(SEGMENT + TAG).max(1);
    let mut out = Vec::with_capacity(body.len());
    let mut buf = Vec::with_capacity(SEGMENT + TAG);
    for (i, piece) in body.chunks(SEGMENT + TAG).enumerate() {
        buf.clear();
        buf.extend_from_slice(piece);
        stream
            .decrypt_in_place(u32::try_from(i)?, i + 1 == count, &HEADER, &mut buf)
            .map_err(|_| "reference open")?;
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

pub fn run(opts: &Options, json: bool) -> Result<(), BoxError> {
    let count = opts.blobs.max(1);
    let mut rows = Vec::new();
    for size in SIZES {
        let plain: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
        let mut times: [Vec<Duration>; 5] = Default::default();
        for _ in 0..count {
            let key = BlobKey::random()?;
            let (ours, t) = timed(|| seal::seal(&key, &plain));
            let ours = ours?;
            times[0].push(t);
            // As a device opens a download: in the downloaded buffer.
            let fetched = ours.clone();
            let (opened, t) = timed(|| seal::open_owned(&key, fetched));
            times[1].push(t);
            let (reference, t) = timed(|| reference_seal(&key, &plain));
            times[2].push(t);
            let reference = reference?;
            let (ref_opened, t) = timed(|| reference_open(&key, &reference));
            times[3].push(t);
            let (_, t) = timed(|| blake3::hash(&ours));
            times[4].push(t);
            if ours != reference || opened? != plain || ref_opened? != plain {
                return Err("the two ciphers disagree".into());
            }
        }
        let mbps = |v: &[Duration]| {
            (size * count) as f64 / v.iter().sum::<Duration>().as_secs_f64().max(1e-9) / 1e6
        };
        let p50 = |v: &mut Vec<Duration>| Percentiles::of(v).p50.as_secs_f64() * 1e3;
        let [seal_t, open_t, ref_seal_t, ref_open_t, hash_t] = &mut times;
        rows.push(serde_json::json!({
            "bytes": size,
            "blobs": count,
            "seal_ms_p50": p50(seal_t),
            "open_ms_p50": p50(open_t),
            "seal_mb_s": mbps(seal_t),
            "open_mb_s": mbps(open_t),
            "reference_seal_mb_s": mbps(ref_seal_t),
            "reference_open_mb_s": mbps(ref_open_t),
            "blake3_mb_s": mbps(hash_t),
        }));
    }
    let report = serde_json::json!({
        "benchmark": "blob-seal",
        "sizes": rows,
        "peak_rss_mib": peak_rss_bytes() as f64 / (1024.0 * 1024.0),
    });
    if json {
        println!("{report}");
        return Ok(());
    }
    println!("sealed blobs, one core: ours (ring) against RustCrypto's XChaCha20Poly1305 STREAM");
    println!(
        "  {:>9} {:>11} {:>11} {:>13} {:>13} {:>10}",
        "bytes", "seal MB/s", "open MB/s", "ref seal MB/s", "ref open MB/s", "b3 MB/s"
    );
    for r in report["sizes"].as_array().into_iter().flatten() {
        let f = |k: &str| r[k].as_f64().unwrap_or_default();
        println!(
            "  {:>9} {:>11.0} {:>11.0} {:>13.0} {:>13.0} {:>10.0}",
            r["bytes"],
            f("seal_mb_s"),
            f("open_mb_s"),
            f("reference_seal_mb_s"),
            f("reference_open_mb_s"),
            f("blake3_mb_s")
        );
    }
    Ok(())
}
