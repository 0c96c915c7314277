//! XChaCha20-Poly1305, computed with ring's ChaCha20-Poly1305.
//!
//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) under a 24-byte nonce *is*
//! ChaCha20-Poly1305 (RFC 8439) under the key HChaCha20 derives from the nonce's first
//! 16 bytes, with the nonce `0⁴ ‖ its last 8 bytes`. So the bytes sealed chunks and
//! blobs have always had (RustCrypto's `XChaCha20Poly1305`, tested against it below)
//! come from HChaCha20 (RustCrypto's `chacha20`) and ring's assembly ChaCha20-Poly1305
//! (in the tree already for rustls): two to three times as fast on this CPU
//! (`docs/benchmarks.md`). A blob's segment nonces share their first 16 bytes, so one
//! derived key serves the whole blob.

use chacha20::cipher::{consts::U10, generic_array::GenericArray};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

/// The ChaCha20-Poly1305 key for nonces that start with `prefix`.
pub fn cipher(key: &[u8; 32], prefix: &[u8; 16]) -> LessSafeKey {
    let derived = chacha20::hchacha::<U10>(
        GenericArray::from_slice(key),
        GenericArray::from_slice(prefix),
    );
    // Infallible: a 32-byte key is what ChaCha20-Poly1305 takes.
    #[allow(clippy::expect_used)]
    let key = UnboundKey::new(&CHACHA20_POLY1305, derived.as_slice())
        .expect("ChaCha20-Poly1305 takes 32-byte keys");
    LessSafeKey::new(key)
}

/// The ChaCha20-Poly1305 nonce of a nonce whose last 8 bytes are `tail`.
pub fn nonce(tail: [u8; 8]) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&tail);
    Nonce::assume_unique_for_key(n)
}

/// Seals `in_out[from..]` in place under `key` and the 24-byte `nonce`, with `aad`,
/// and appends the tag. Fails only for a plaintext ring will not take (over 256 GiB).
pub fn seal_in_place(
    key: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    in_out: &mut Vec<u8>,
    from: usize,
) -> Result<(), ring::error::Unspecified> {
    let (prefix, tail) = split(nonce);
    let tag = cipher(key, &prefix).seal_in_place_separate_tag(
        self::nonce(tail),
        Aad::from(aad),
        &mut in_out[from..],
    )?;
    in_out.extend_from_slice(tag.as_ref());
    Ok(())
}

/// Opens `sealed` (ciphertext and tag) under `key` and the 24-byte `nonce`, with
/// `aad`.
pub fn open(
    key: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, ring::error::Unspecified> {
    let (prefix, tail) = split(nonce);
    let mut buf = sealed.to_vec();
    let len = cipher(key, &prefix)
        .open_in_place(self::nonce(tail), Aad::from(aad), &mut buf)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn split(nonce: &[u8; 24]) -> ([u8; 16], [u8; 8]) {
    let mut prefix = [0u8; 16];
    let mut tail = [0u8; 8];
    prefix.copy_from_slice(&nonce[..16]);
    tail.copy_from_slice(&nonce[16..]);
    (prefix, tail)
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce, aead::Aead, aead::Payload};

    use super::*;

    #[test]
    fn the_bytes_are_rustcrypto_s_xchacha20_poly1305() {
        for len in [0usize, 1, 63, 64, 65, 400, 4096, 70_000] {
            let key: [u8; 32] = rand::random();
            let nonce: [u8; 24] = rand::random();
            let aad: Vec<u8> = (0..len % 40).map(|i| i as u8).collect();
            let plain: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
            let reference = XChaCha20Poly1305::new((&key).into())
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &plain,
                        aad: &aad,
                    },
                )
                .expect("reference");
            let mut ours = b"head".to_vec();
            ours.extend_from_slice(&plain);
            seal_in_place(&key, &nonce, &aad, &mut ours, 4).expect("sealed");
            assert_eq!(&ours[4..], &reference[..], "{len}");
            assert_eq!(open(&key, &nonce, &aad, &reference).expect("opens"), plain);
        }
    }

    #[test]
    fn another_key_nonce_or_aad_does_not_open() {
        let (key, nonce) = ([1u8; 32], [2u8; 24]);
        let mut sealed = Vec::from(&b"a like"[..]);
        seal_in_place(&key, &nonce, b"doc", &mut sealed, 0).expect("sealed");
        assert!(open(&key, &nonce, b"doc", &sealed).is_ok());
        assert!(open(&[9; 32], &nonce, b"doc", &sealed).is_err());
        let mut moved = nonce;
        moved[3] ^= 1; // in the part HChaCha20 takes
        assert!(open(&key, &moved, b"doc", &sealed).is_err());
        let mut moved = nonce;
        moved[20] ^= 1; // in the part ChaCha20 takes
        assert!(open(&key, &moved, b"doc", &sealed).is_err());
        assert!(open(&key, &nonce, b"other doc", &sealed).is_err());
        assert!(open(&key, &nonce, b"doc", &sealed[..sealed.len() - 1]).is_err());
    }
}
