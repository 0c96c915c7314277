//! Sealed document chunks: what a device pushes instead of its Automerge changes once
//! the family's documents are end-to-end encrypted (issue 18, `docs/security.md`).
//!
//! ```text
//! envelope = "DRD" ‖ version (1) ‖ epoch (u64 BE) ‖ nonce (24) ‖ XChaCha20-Poly1305(K, nonce, changes, aad)
//! aad      = "DRD" ‖ version ‖ epoch ‖ doc id (16)
//! K        = blake3::derive_key("dorandoran 2026-12 document key", epoch secret ‖ doc id)
//! ```
//!
//! - The epoch secret is the family group's MLS exporter secret of that epoch
//!   ([`super::KeyRing`]); only the devices in the group at that epoch can derive it.
//! - The document id and the epoch are authenticated: an envelope moved to another
//!   document, or relabelled with another epoch, does not open.
//! - The nonce is random (the OS's RNG) for snapshots and history, or *synthetic*
//!   for chunks ([`seal_synthetic`]: a keyed hash of the changes, as in SIV): a chunk
//!   waiting in the outbox is sealed again on every push and must keep its chunk id
//!   (the relay takes a chunk once by its id). Only equal changes of one document in
//!   one epoch give equal envelopes — and they are the same chunk anyway.
//! - The relay still names the chunk by blake3 of the envelope, checks and
//!   deduplicates it; it holds no key.
//! - The cipher is computed with ring's ChaCha20-Poly1305 under the key HChaCha20
//!   derives ([`crate::xchacha`]): the same bytes as RustCrypto's `XChaCha20Poly1305`,
//!   which sealed every envelope before.

use doran_protocol::DocId;
use rand::TryRngCore;

use crate::keys::RandomnessError;

/// What a sealed chunk starts with: `DRD` (the prefix the relay tells an envelope by,
/// `doran_protocol::looks_sealed`) and the format's version.
pub const MAGIC: [u8; 4] = {
    let [d, r, d2] = doran_protocol::SEALED_PREFIX;
    [d, r, d2, 1]
};
/// Bytes before the ciphertext: magic, epoch, nonce.
pub const HEADER_LEN: usize = 4 + 8 + 24;
/// Bytes an envelope adds to the changes it seals (header and tag).
pub const OVERHEAD: usize = HEADER_LEN + 16;

const KEY_CONTEXT: &str = "dorandoran 2026-12 document key";
const NONCE_CONTEXT: &str = "dorandoran 2026-12 chunk nonce";

/// Why an envelope was not opened. Nothing is returned from a refused envelope.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Shorter than a header and a tag, or not a sealed chunk at all.
    #[error("not a sealed chunk")]
    Malformed,
    /// A sealed chunk of a format this build does not know.
    #[error("sealed chunk of unknown version {0}")]
    UnknownVersion(u8),
    /// Sealed under an epoch whose key this device does not hold: one before it
    /// joined, one after it was removed, or one it has not caught up to yet.
    #[error("no key for epoch {0}")]
    UnknownEpoch(u64),
    /// The key does not open it: changed bytes, another document's or another
    /// epoch's chunk, or a key from someone outside the group.
    #[error("the sealed chunk does not open: changed, moved, or not sealed for this document")]
    Refused,
}

/// The epoch an envelope says it was sealed under (before opening it).
pub fn epoch_of(envelope: &[u8]) -> Result<u64, EnvelopeError> {
    if envelope.len() < OVERHEAD || envelope[..3] != MAGIC[..3] {
        return Err(EnvelopeError::Malformed);
    }
    if envelope[3] != MAGIC[3] {
        return Err(EnvelopeError::UnknownVersion(envelope[3]));
    }
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&envelope[4..12]);
    Ok(u64::from_be_bytes(epoch))
}

/// The key of `doc` in the epoch whose exporter secret is `epoch_secret`.
fn doc_key(epoch_secret: &[u8; 32], doc: DocId) -> [u8; 32] {
    let mut material = [0u8; 48];
    material[..32].copy_from_slice(epoch_secret);
    material[32..].copy_from_slice(&doc.0);
    blake3::derive_key(KEY_CONTEXT, &material)
}

fn aad(epoch: u64, doc: DocId) -> [u8; 28] {
    let mut aad = [0u8; 28];
    aad[..4].copy_from_slice(&MAGIC);
    aad[4..12].copy_from_slice(&epoch.to_be_bytes());
    aad[12..].copy_from_slice(&doc.0);
    aad
}

/// Seals `changes` of `doc` under the epoch `epoch` whose secret is `epoch_secret`,
/// with a random nonce.
pub(super) fn seal(
    epoch_secret: &[u8; 32],
    epoch: u64,
    doc: DocId,
    changes: &[u8],
) -> Result<Vec<u8>, RandomnessError> {
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| RandomnessError(e.to_string()))?;
    seal_with(&doc_key(epoch_secret, doc), epoch, doc, nonce, changes)
}

/// Seals `changes` of `doc` like [`seal`], with the nonce a keyed hash of the
/// changes (its key derived from the document key): the same changes sealed twice in
/// one epoch give the same envelope, so a chunk keeps its id across pushes.
pub(super) fn seal_synthetic(
    epoch_secret: &[u8; 32],
    epoch: u64,
    doc: DocId,
    changes: &[u8],
) -> Result<Vec<u8>, RandomnessError> {
    let key = doc_key(epoch_secret, doc);
    let nonce_key = blake3::derive_key(NONCE_CONTEXT, &key);
    let hash = blake3::keyed_hash(&nonce_key, changes);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&hash.as_bytes()[..24]);
    seal_with(&key, epoch, doc, nonce, changes)
}

fn seal_with(
    key: &[u8; 32],
    epoch: u64,
    doc: DocId,
    nonce: [u8; 24],
    changes: &[u8],
) -> Result<Vec<u8>, RandomnessError> {
    let aad = aad(epoch, doc);
    // Sealed in place after the header: one buffer.
    let mut out = Vec::with_capacity(OVERHEAD + changes.len());
    out.extend_from_slice(&aad[..12]);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(changes);
    crate::xchacha::seal_in_place(key, &nonce, &aad, &mut out, HEADER_LEN)
        // XChaCha20-Poly1305 fails only on a plaintext over 256 GiB.
        .map_err(|_| RandomnessError("chunk too large to seal".into()))?;
    Ok(out)
}

/// Opens an envelope of `doc` sealed under `epoch` (read with [`epoch_of`]) with that
/// epoch's secret.
pub(super) fn open(
    epoch_secret: &[u8; 32],
    epoch: u64,
    doc: DocId,
    envelope: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if epoch_of(envelope)? != epoch {
        return Err(EnvelopeError::Refused);
    }
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&envelope[12..HEADER_LEN]);
    crate::xchacha::open(
        &doc_key(epoch_secret, doc),
        &nonce,
        &aad(epoch, doc),
        &envelope[HEADER_LEN..],
    )
    .map_err(|_| EnvelopeError::Refused)
}
