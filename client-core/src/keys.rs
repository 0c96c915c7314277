//! The keys of an account on one device, as the sync machine signs with them.
//!
//! - The **user key** (ed25519) is the person. It is made on their first device, proves
//!   the registration, and is needed again only to add a device from the recovery
//!   phrase (a device added with the phrase keeps it, a device added with a link code
//!   never has it).
//! - The **device key** (ed25519) is this device. It signs every sign-in, every invite
//!   and every blob request. Each device has its own, so one can be revoked alone.
//!
//! Both are made from the operating system's random number generator. Where they are
//! kept, and what that protects against, is the device shell's business
//! (`doran-device`'s account module and its secret store).

use doran_protocol::{DeviceId, PublicKey, Signature};
use ed25519_dalek::{Signer, SigningKey};
use rand::TryRngCore;

/// The operating system's random number generator failed, so no key was made.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct RandomnessError(pub String);

/// The two ed25519 keys of an account on one device, and its ids.
#[derive(Clone)]
pub struct DeviceKeys {
    /// This device.
    pub device: DeviceId,
    /// This device's key.
    pub device_key: SigningKey,
    /// The user's key; `None` on a device added with a link code.
    pub user_key: Option<SigningKey>,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret keys.
        f.debug_struct("DeviceKeys")
            .field("device", &self.device)
            .field("device_key", &public_key(&self.device_key))
            .field("user_key", &self.user_key.as_ref().map(public_key))
            .finish()
    }
}

impl DeviceKeys {
    /// Fresh keys for a new account's first device: a user key and a device key.
    pub fn generate() -> Result<Self, RandomnessError> {
        Ok(DeviceKeys {
            device: DeviceId::random(),
            device_key: random_key()?,
            user_key: Some(random_key()?),
        })
    }

    /// Keys for a device being added to an existing account: a new device key, and the
    /// user key when it was restored from the recovery phrase.
    pub fn for_new_device(user_key: Option<SigningKey>) -> Result<Self, RandomnessError> {
        Ok(DeviceKeys {
            device: DeviceId::random(),
            device_key: random_key()?,
            user_key,
        })
    }

    /// The device's public key.
    pub fn device_public(&self) -> PublicKey {
        public_key(&self.device_key)
    }

    /// The user's public key, if this device holds the user key.
    pub fn user_public(&self) -> Option<PublicKey> {
        self.user_key.as_ref().map(public_key)
    }

    /// Signs `msg` with the device key.
    pub fn sign_device(&self, msg: &[u8]) -> Signature {
        Signature(self.device_key.sign(msg).to_bytes())
    }

    /// Signs `msg` with the user key, if this device holds it.
    pub fn sign_user(&self, msg: &[u8]) -> Option<Signature> {
        self.user_key
            .as_ref()
            .map(|k| Signature(k.sign(msg).to_bytes()))
    }
}

/// The public half of a key, as the protocol carries it.
pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

/// A new key from the operating system's random number generator.
pub fn random_key() -> Result<SigningKey, RandomnessError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| RandomnessError(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}
