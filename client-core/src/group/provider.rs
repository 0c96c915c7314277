//! What openmls needs from a device: its crypto (RustCrypto, pure Rust), a storage it
//! can write group state and key packages into, and a signer. The storage is openmls'
//! own in-memory map, which the key ring saves and restores as a whole
//! ([`Provider::save`], [`Provider::restore`]): the device keeps it in its local store
//! beside the documents, so there is one place that holds a device's secrets.

use std::collections::HashMap;
use std::sync::RwLock;

use ed25519_dalek::{Signer as _, SigningKey};
use openmls::prelude::{SignaturePublicKey, SignatureScheme};
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;
use openmls_traits::signatures::{Signer, SignerError};

/// The device's crypto and its openmls storage.
#[derive(Default)]
pub(super) struct Provider {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &MemoryStorage {
        &self.storage
    }

    fn crypto(&self) -> &RustCrypto {
        &self.crypto
    }

    fn rand(&self) -> &RustCrypto {
        &self.crypto
    }
}

impl Provider {
    /// Every entry openmls stored (group states, key packages and their private
    /// keys), sorted so the same state saves to the same bytes.
    pub(super) fn save(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let values = match self.storage.values.read() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out: Vec<_> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort();
        out
    }

    /// Puts back `entries` (from [`Provider::save`]) in place of what openmls holds
    /// now: undoes whatever a refused operation wrote.
    pub(super) fn reset(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) {
        let mut values = match self.storage.values.write() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        };
        *values = entries.into_iter().collect();
    }

    /// A provider holding `entries` (from [`Provider::save`]).
    pub(super) fn restore(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        let values: HashMap<Vec<u8>, Vec<u8>> = entries.into_iter().collect();
        Provider {
            crypto: RustCrypto::default(),
            storage: MemoryStorage {
                values: RwLock::new(values),
            },
        }
    }
}

/// The device key as the group's signer: a device is one leaf in each of its groups,
/// and its leaf is signed by the same ed25519 key the relay knows it by, so the other
/// members can check a leaf against the device list they know.
pub(super) struct DeviceSigner<'a>(pub(super) &'a SigningKey);

impl Signer for DeviceSigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.0.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

impl DeviceSigner<'_> {
    /// The public half, as a leaf carries it.
    pub(super) fn public(&self) -> SignaturePublicKey {
        SignaturePublicKey::from(self.0.verifying_key().to_bytes().to_vec())
    }
}
