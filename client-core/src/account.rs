//! The account on this device: who the device signs in as, with which keys, on which
//! relay.
//!
//! # Keys
//!
//! - The **user key** (ed25519) is the person. It is made on their first device, proves
//!   the registration, and is needed again only to add a device from the recovery
//!   phrase ([`Account::recovery_phrase`] shows it as 24 BIP-39 words; a device added
//!   with the phrase keeps it, a device added with a link code never has it).
//! - The **device key** (ed25519) is this device. It signs every sign-in, every invite
//!   and every blob request. Each device has its own, so one can be revoked alone.
//!
//! Both are made from the operating system's random number generator.
//!
//! # Where they are kept, and what that protects against
//!
//! The account, keys included, is one row of the local store's `meta` table (key
//! [`META_KEY`]): in the device's SQLite file, next to the family documents, readable by
//! the operating-system user who owns that file (the store lives in the app's data
//! directory, whose permissions the OS sets to that user).
//!
//! That protects against **other users of the machine** and **other apps** (on mobile,
//! the app sandbox), and against **the network and the relay**: keys never leave the
//! device, the relay only ever sees public keys and signatures, so a stolen relay
//! database cannot impersonate anyone.
//!
//! It does **not** protect against someone (or malware) running as the same OS user,
//! or holding the unlocked device or a copy of its disk or backups: they can read the
//! file and act as this device. The remedies are the relay's: revoke the device from
//! another one (`RevokeDevice`), or, if the user key itself leaked, there is none yet
//! (a key rotation is future work). Moving the keys to the platform keychain (Keychain,
//! Keystore, Secret Service) would narrow that, and is the intended next step for the
//! apps; the store stays the fallback for the command line.
//!
//! [`Account::sign_out`] deletes the account row, keys included. The documents stay
//! on the device (a later sign-in to the same account picks them up again).

use doran_protocol::{DeviceId, DocId, PublicKey, Signature, UserId};
use ed25519_dalek::{Signer, SigningKey};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};

use crate::{
    replica::Actor,
    store::{LocalStore, StoreError},
};

/// The `meta` key the account is stored under.
pub const META_KEY: &str = "account/v1";

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored account row cannot be read (corrupt, or written by a newer app).
    #[error("the stored account is unreadable: {0}")]
    Corrupt(String),
    /// The recovery phrase is not 24 valid BIP-39 words with a good checksum.
    #[error("not a valid recovery phrase: {0}")]
    BadPhrase(String),
    /// This device has no user key (it was added with a link code), so it has no
    /// recovery phrase to show.
    #[error("this device has no user key; show the phrase on the first device")]
    NoUserKey,
    /// The operating system's random number generator failed.
    #[error("no randomness from the operating system: {0}")]
    Randomness(String),
}

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
    pub fn generate() -> Result<Self, AccountError> {
        Ok(DeviceKeys {
            device: DeviceId::random(),
            device_key: random_key()?,
            user_key: Some(random_key()?),
        })
    }

    /// Keys for a device being added to an existing account: a new device key, and the
    /// user key when it was restored from the recovery phrase.
    pub fn for_new_device(user_key: Option<SigningKey>) -> Result<Self, AccountError> {
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

/// A signed-up account on this device.
#[derive(Clone)]
pub struct Account {
    /// The user, as the relay assigned it at registration.
    pub user: UserId,
    /// This device.
    pub device: DeviceId,
    /// The email label the user registered with.
    pub email: String,
    /// The nickname at registration (the personal document holds the current one).
    pub nickname: String,
    /// The relay's base URL, `http://host:port` (the websocket is `ws://host:port/ws`).
    pub server: String,
    /// The user's personal document.
    pub personal_doc: DocId,
    /// This device's key.
    pub device_key: SigningKey,
    /// The user's key; `None` on a device added with a link code.
    pub user_key: Option<SigningKey>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret keys.
        f.debug_struct("Account")
            .field("user", &self.user)
            .field("device", &self.device)
            .field("email", &self.email)
            .field("nickname", &self.nickname)
            .field("server", &self.server)
            .field("personal_doc", &self.personal_doc)
            .field("has_user_key", &self.user_key.is_some())
            .finish()
    }
}

/// The stored form (postcard). Fields may only be appended.
#[derive(Serialize, Deserialize)]
struct Stored {
    user: UserId,
    device: DeviceId,
    email: String,
    nickname: String,
    server: String,
    personal_doc: DocId,
    device_key: [u8; 32],
    user_key: Option<[u8; 32]>,
}

impl Account {
    /// The account stored on this device, if any.
    pub fn load(store: &dyn LocalStore) -> Result<Option<Account>, AccountError> {
        let Some(bytes) = store.get_meta(META_KEY)? else {
            return Ok(None);
        };
        let s: Stored =
            postcard::from_bytes(&bytes).map_err(|e| AccountError::Corrupt(e.to_string()))?;
        Ok(Some(Account {
            user: s.user,
            device: s.device,
            email: s.email,
            nickname: s.nickname,
            server: s.server,
            personal_doc: s.personal_doc,
            device_key: SigningKey::from_bytes(&s.device_key),
            user_key: s.user_key.as_ref().map(SigningKey::from_bytes),
        }))
    }

    /// Stores this account (replacing any other) in the store's `meta` table.
    pub fn save(&self, store: &dyn LocalStore) -> Result<(), AccountError> {
        let s = Stored {
            user: self.user,
            device: self.device,
            email: self.email.clone(),
            nickname: self.nickname.clone(),
            server: self.server.clone(),
            personal_doc: self.personal_doc,
            device_key: self.device_key.to_bytes(),
            user_key: self.user_key.as_ref().map(SigningKey::to_bytes),
        };
        let bytes = postcard::to_allocvec(&s).map_err(|e| AccountError::Corrupt(e.to_string()))?;
        store.set_meta(META_KEY, &bytes)?;
        Ok(())
    }

    /// Signs out: deletes the account and its keys from this device. The documents
    /// stay. Signing out twice is not an error.
    pub fn sign_out(store: &dyn LocalStore) -> Result<(), AccountError> {
        store.delete_meta(META_KEY)?;
        Ok(())
    }

    /// The keys, as the sync machine uses them.
    pub fn keys(&self) -> DeviceKeys {
        DeviceKeys {
            device: self.device,
            device_key: self.device_key.clone(),
            user_key: self.user_key.clone(),
        }
    }

    /// Who writes this device's document changes.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.user,
            device: self.device,
        }
    }

    /// The recovery phrase: the user key's 32-byte seed as 24 BIP-39 English words.
    /// Anyone holding it can add a device to this account: show it only on request.
    pub fn recovery_phrase(&self) -> Result<String, AccountError> {
        let key = self.user_key.as_ref().ok_or(AccountError::NoUserKey)?;
        recovery_phrase(key)
    }
}

/// The 24 BIP-39 English words of a user key's seed.
pub fn recovery_phrase(user_key: &SigningKey) -> Result<String, AccountError> {
    let m = bip39::Mnemonic::from_entropy(&user_key.to_bytes())
        .map_err(|e| AccountError::BadPhrase(e.to_string()))?;
    Ok(m.to_string())
}

/// The user key back from its recovery phrase (words separated by whitespace; case
/// and extra spaces are forgiven). Only a 24-word phrase with a valid checksum is
/// accepted.
pub fn from_phrase(phrase: &str) -> Result<SigningKey, AccountError> {
    let normalized = phrase
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    let m = bip39::Mnemonic::parse_in(bip39::Language::English, &normalized)
        .map_err(|e| AccountError::BadPhrase(e.to_string()))?;
    let entropy = m.to_entropy();
    let seed: [u8; 32] = entropy.as_slice().try_into().map_err(|_| {
        AccountError::BadPhrase(format!(
            "{} words; a recovery phrase has 24",
            m.word_count()
        ))
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public half of a key, as the protocol carries it.
pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

/// A new key from the operating system's random number generator.
fn random_key() -> Result<SigningKey, AccountError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| AccountError::Randomness(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn account() -> Account {
        let keys = DeviceKeys::generate().expect("keys");
        Account {
            user: UserId([1; 16]),
            device: keys.device,
            email: "a@example.com".into(),
            nickname: "엄마".into(),
            server: "http://127.0.0.1:1".into(),
            personal_doc: DocId([2; 16]),
            device_key: keys.device_key,
            user_key: keys.user_key,
        }
    }

    #[test]
    fn the_phrase_round_trips_to_the_same_user_key() {
        let a = account();
        let phrase = a.recovery_phrase().expect("phrase");
        assert_eq!(phrase.split(' ').count(), 24);
        let back = from_phrase(&format!("  {}  ", phrase.to_uppercase())).expect("parses");
        assert_eq!(Some(back.to_bytes()), a.user_key.map(|k| k.to_bytes()));
    }

    #[test]
    fn bad_phrases_are_refused() {
        assert!(matches!(
            from_phrase("abandon abandon"),
            Err(AccountError::BadPhrase(_))
        ));
        let phrase = account().recovery_phrase().expect("phrase");
        let mut words: Vec<&str> = phrase.split(' ').collect();
        words.swap(0, 1);
        words[0] = if words[0] == "zoo" { "abandon" } else { "zoo" };
        assert!(from_phrase(&words.join(" ")).is_err());
        // 12 words are a valid BIP-39 phrase but not a user key.
        let twelve = bip39::Mnemonic::from_entropy(&[7u8; 16])
            .expect("12 words")
            .to_string();
        assert!(matches!(
            from_phrase(&twelve),
            Err(AccountError::BadPhrase(_))
        ));
    }

    #[test]
    fn saved_loaded_and_signed_out() {
        let store = MemoryStore::new();
        assert!(Account::load(&store).expect("load").is_none());
        let a = account();
        a.save(&store).expect("save");
        let b = Account::load(&store).expect("load").expect("present");
        assert_eq!(b.user, a.user);
        assert_eq!(b.device_key.to_bytes(), a.device_key.to_bytes());
        assert!(!format!("{b:?}").contains(&hex::encode(a.device_key.to_bytes())));
        Account::sign_out(&store).expect("sign out");
        Account::sign_out(&store).expect("twice");
        assert!(Account::load(&store).expect("load").is_none());
    }
}
