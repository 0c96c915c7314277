//! [`SecretStore`]: the platform keychain (iOS Keychain, Android Keystore-backed
//! storage), implemented by the app and handed to [`Device::open`](crate::Device::open).
//! Without one, the keys stay in the device's local store (see
//! `doran_device::account`'s threat model for what each protects against).

use std::sync::Arc;

use doran_device::account::SecretError;

use crate::error::KeychainError;

/// Where the device and user keys are kept, by short ASCII names (`device-key`,
/// `user-key`). Called from a background thread, rarely (opening, signing in and out).
#[uniffi::export(with_foreign)]
pub trait SecretStore: Send + Sync {
    /// The secret called `name`, if kept.
    fn get(&self, name: String) -> Result<Option<Vec<u8>>, KeychainError>;
    /// Keeps `value` as `name`, replacing any earlier one.
    fn set(&self, name: String, value: Vec<u8>) -> Result<(), KeychainError>;
    /// Forgets `name` (forgetting twice is fine).
    fn delete(&self, name: String) -> Result<(), KeychainError>;
}

/// The app's keychain as the facade's `SecretStore`.
pub(crate) struct Keychain(pub(crate) Arc<dyn SecretStore>);

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keychain(app)")
    }
}

fn failed(e: KeychainError) -> SecretError {
    SecretError(e.to_string())
}

impl doran_device::account::SecretStore for Keychain {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SecretError> {
        self.0.get(name.to_owned()).map_err(failed)
    }

    fn set(&self, name: &str, value: &[u8]) -> Result<(), SecretError> {
        self.0.set(name.to_owned(), value.to_vec()).map_err(failed)
    }

    fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.0.delete(name.to_owned()).map_err(failed)
    }
}
