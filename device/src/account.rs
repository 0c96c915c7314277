//! The account on this device: who the device signs in as, with which keys, on which
//! relay — and creating one, restoring one from its recovery phrase, or linking this
//! device to one.
//!
//! # Keys, and where they are kept
//!
//! An account holds two ed25519 keys ([`doran_client_core::keys`]): the **user key**
//! (the person; made on the first device; shown as the recovery phrase) and the
//! **device key** (this device; signs every sign-in, invite and blob request). Both
//! are made from the operating system's random number generator.
//!
//! The keys are kept behind a [`SecretStore`]. The default, [`StoreSecrets`], keeps
//! them in the local store's `meta` table, in the device's SQLite file next to the
//! family documents, readable by the operating-system user who owns that file (the
//! store lives in the app's data directory, whose permissions the OS sets to that user).
//! An app plugs in the platform keychain (Keychain, Keystore, Secret Service) instead.
//! The public part of the account (user, device, email, relay) is a row of the store's
//! `account` table.
//!
//! That protects against **other users of the machine** and **other apps** (on mobile,
//! the app sandbox), and against **the network and the relay**: keys never leave the
//! device, the relay only ever sees public keys and signatures, so a stolen relay
//! database cannot impersonate anyone.
//!
//! It does **not** protect against someone (or malware) running as the same OS user,
//! or holding the unlocked device or a copy of its disk or backups (unless the
//! keychain is used): they can read the keys and act as this device. The remedies are
//! the relay's: revoke the device from another one; if the user key itself leaked,
//! there is none yet (a key rotation is future work).
//!
//! [`Account::sign_out`] deletes the account row and the keys. The documents stay on
//! the device (a later sign-in to the same account picks them up again).

use std::{fmt, sync::Arc, time::Duration};

use doran_client_core::{
    Actor, PersonalDoc,
    keys::{DeviceKeys, RandomnessError},
    store::{AccountRecord, LocalStore, StoreError},
    sync::SignInAs,
};
use doran_protocol::{DeviceId, DocId, ErrorCode, UserId};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::{
    driver::enroll,
    relay::Relay,
    sync_error::{Result, SyncError},
};

/// Why a secret could not be read or written (the platform keychain's message).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the secret store failed: {0}")]
pub struct SecretError(pub String);

/// Where the device and user keys are kept. The default is [`StoreSecrets`]; an app
/// passes the platform keychain instead (see the module docs for what each protects
/// against). Names are short ASCII words (`device-key`, `user-key`).
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// The secret called `name`, if kept.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SecretError>;
    /// Keeps `value` as `name`, replacing any earlier one.
    fn set(&self, name: &str, value: &[u8]) -> Result<(), SecretError>;
    /// Forgets `name` (forgetting twice is fine).
    fn delete(&self, name: &str) -> Result<(), SecretError>;
}

/// The default [`SecretStore`]: the local store's `meta` table (see the module docs).
#[derive(Debug, Clone)]
pub struct StoreSecrets(pub Arc<dyn LocalStore>);

fn secret_key(name: &str) -> String {
    format!("secret/{name}")
}

impl SecretStore for StoreSecrets {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SecretError> {
        self.0
            .get_meta(&secret_key(name))
            .map_err(|e| SecretError(e.to_string()))
    }

    fn set(&self, name: &str, value: &[u8]) -> Result<(), SecretError> {
        self.0
            .set_meta(&secret_key(name), value)
            .map_err(|e| SecretError(e.to_string()))
    }

    fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.0
            .delete_meta(&secret_key(name))
            .map_err(|e| SecretError(e.to_string()))
    }
}

const DEVICE_KEY: &str = "device-key";
const USER_KEY: &str = "user-key";
/// The user key of a registration not known to be done yet, and the email it is
/// for (see [`create_account`]).
const SIGNUP_USER_KEY: &str = "signup-user-key";
const SIGNUP_EMAIL: &str = "signup/email";
/// The profile a new account starts with, kept until its personal document's first
/// change is written (see [`finish_signup`]).
const SIGNUP_PROFILE: &str = "signup/profile";

/// What a new account's personal document starts with.
#[derive(Serialize, Deserialize)]
struct SignupProfile {
    user: UserId,
    nickname: String,
    avatar: u8,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secret store (keychain) failed.
    #[error(transparent)]
    Secrets(#[from] SecretError),
    /// The stored account cannot be read (corrupt, or written by a newer app). A
    /// device key missing from the secret store is not this: the device is then
    /// signed out ([`Account::load`] finds no account).
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
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

/// A signed-up account on this device.
#[derive(Clone)]
pub struct Account {
    /// The user, as the relay assigned it at registration.
    pub user: UserId,
    /// This device.
    pub device: DeviceId,
    /// The email label the user registered with (empty on a device added with the
    /// phrase or a link code until the personal document says otherwise).
    pub email: String,
    /// The nickname at registration (the personal document holds the current one).
    pub nickname: String,
    /// The relay's base URL, `http(s)://host:port`.
    pub server: String,
    /// The user's personal document.
    pub personal_doc: DocId,
    /// This device's key.
    pub device_key: SigningKey,
    /// The user's key; `None` on a device added with a link code.
    pub user_key: Option<SigningKey>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

fn signing_key(bytes: &[u8], what: &str) -> Result<SigningKey, AccountError> {
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| AccountError::Corrupt(format!("{what} of {} bytes", bytes.len())))?;
    Ok(SigningKey::from_bytes(&seed))
}

impl Account {
    /// The account stored on this device, if any (importing the single `meta` row of
    /// older builds first).
    pub fn load(
        store: &dyn LocalStore,
        secrets: &dyn SecretStore,
    ) -> Result<Option<Account>, AccountError> {
        import_legacy(store, secrets)?;
        let Some(record) = store.account()? else {
            return Ok(None);
        };
        let Some(device_key) = secrets.get(DEVICE_KEY)? else {
            // The keychain lost it (restored from a backup without its secrets, reset
            // by the system): this device can no longer sign in as itself. Signed out,
            // not broken: the documents stay, and restoring the account (phrase, or a
            // link from another device) replaces the row and reuses them.
            tracing::warn!(user = %record.user, device = %record.device,
                "the device key is missing from the secret store: signed out");
            return Ok(None);
        };
        let user_key = secrets.get(USER_KEY)?;
        Ok(Some(Account {
            user: record.user,
            device: record.device,
            email: record.email,
            nickname: record.nickname,
            server: record.server,
            personal_doc: record.personal_doc,
            device_key: signing_key(&device_key, "device key")?,
            user_key: user_key.map(|k| signing_key(&k, "user key")).transpose()?,
        }))
    }

    /// Stores this account, replacing any other: the keys first, then the row, so a
    /// row never exists without its keys.
    pub fn save(
        &self,
        store: &dyn LocalStore,
        secrets: &dyn SecretStore,
    ) -> Result<(), AccountError> {
        secrets.set(DEVICE_KEY, &self.device_key.to_bytes())?;
        match &self.user_key {
            Some(k) => secrets.set(USER_KEY, &k.to_bytes())?,
            None => secrets.delete(USER_KEY)?,
        }
        store.set_account(&AccountRecord {
            user: self.user,
            device: self.device,
            email: self.email.clone(),
            nickname: self.nickname.clone(),
            server: self.server.clone(),
            personal_doc: self.personal_doc,
        })?;
        Ok(())
    }

    /// Signs out: deletes the account and its keys from this device. The documents
    /// stay. Signing out twice is not an error.
    pub fn sign_out(store: &dyn LocalStore, secrets: &dyn SecretStore) -> Result<(), AccountError> {
        store.delete_account()?;
        secrets.delete(DEVICE_KEY)?;
        secrets.delete(USER_KEY)?;
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

/// The single `meta` row (postcard) older builds kept the account in, keys included.
/// Fields may only be appended.
#[derive(Serialize, Deserialize)]
struct Legacy {
    user: UserId,
    device: DeviceId,
    email: String,
    nickname: String,
    server: String,
    personal_doc: DocId,
    device_key: [u8; 32],
    user_key: Option<[u8; 32]>,
}

const LEGACY_KEY: &str = "account/v1";

/// Moves an account kept by an older build (one `meta` row) into the account table
/// and the secret store, then deletes the row.
fn import_legacy(store: &dyn LocalStore, secrets: &dyn SecretStore) -> Result<(), AccountError> {
    let Some(bytes) = store.get_meta(LEGACY_KEY)? else {
        return Ok(());
    };
    let s: Legacy =
        postcard::from_bytes(&bytes).map_err(|e| AccountError::Corrupt(e.to_string()))?;
    Account {
        user: s.user,
        device: s.device,
        email: s.email,
        nickname: s.nickname,
        server: s.server,
        personal_doc: s.personal_doc,
        device_key: SigningKey::from_bytes(&s.device_key),
        user_key: s.user_key.as_ref().map(SigningKey::from_bytes),
    }
    .save(store, secrets)?;
    store.delete_meta(LEGACY_KEY)?;
    Ok(())
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where and how a new device enrols: the relay, the name it signs in under (its
/// `Hello.client`, which the relay keeps as its name in the device list), and how long
/// to wait for the relay's answer.
#[derive(Debug, Clone, Copy)]
pub struct Enrolment<'a> {
    /// The relay.
    pub relay: &'a Relay,
    /// This device's name.
    pub client: &'a str,
    /// How long one sign-in may take.
    pub timeout: Duration,
}

/// Creates an account: makes the keys, registers at `at.relay`, stores the account
/// (keys in `secrets`) and commits the user's personal document with a random default
/// avatar; the next sync pushes it.
///
/// The user key is kept before the relay is asked: if the answer is lost (the
/// network drops, the app is killed) after the relay registered the email, the key
/// is the only way back to that account. Trying again with the same email then gets
/// `already_exists`, and the kept key signs in as a recovery would (adding this
/// device afresh), instead of leaving the email registered to a key nobody holds.
pub async fn create_account(
    store: &Arc<dyn LocalStore>,
    secrets: &dyn SecretStore,
    at: Enrolment<'_>,
    email: &str,
    nickname: &str,
) -> Result<Account> {
    let nickname = doran_client_core::validate::nickname(nickname)?;
    let email = doran_protocol::text::email(email).map_err(|e| {
        SyncError::Doc(doran_client_core::DocError::text(
            doran_client_core::validate::Field::Email,
            e,
        ))
    })?;
    let (user_key, retry) = signup_key(&**store, secrets, &email)?;
    let keys = DeviceKeys::for_new_device(Some(user_key)).map_err(AccountError::from)?;
    let sign_in = SignInAs::Register {
        email: email.clone(),
        nickname: nickname.clone(),
        // An id with the sealed mark: the personal document is sealed under its
        // user's profile key group from its first change, and no relay can make a
        // device believe otherwise (`personal_group`).
        personal_doc: DocId(doran_protocol::FamilyId::new_family(true).0),
    };
    let info = match enroll(at, keys.clone(), sign_in).await {
        Ok((info, _)) => info,
        Err(taken @ SyncError::EmailTaken { .. }) if retry => {
            // Maybe our own earlier registration, whose answer never came back.
            match enroll(at, keys.clone(), SignInAs::Recover).await {
                Ok((info, _)) => {
                    tracing::info!("an earlier registration had reached the relay");
                    info
                }
                // Someone else's email after all.
                Err(SyncError::Auth {
                    code: ErrorCode::UnknownUser,
                    ..
                }) => return Err(taken),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if !doran_client_core::sync::personal_group(info.personal_doc).says_sealed() {
        // The relay gave back another personal document than the sealed one asked
        // for: this account's profile would be written in the clear for ever.
        return Err(SyncError::Protocol(format!(
            "the relay registered personal document {} without the sealed mark",
            info.personal_doc
        )));
    }
    let account = Account {
        user: info.user,
        device: keys.device,
        email,
        nickname: nickname.clone(),
        server: at.relay.base().to_owned(),
        personal_doc: info.personal_doc,
        device_key: keys.device_key,
        user_key: keys.user_key,
    };
    // The profile is kept before the account: an app stopped between the two writes
    // finishes the personal document when it opens again (`finish_signup`).
    let profile = SignupProfile {
        user: account.user,
        nickname,
        // FEATURES.md: a random default avatar at sign-up.
        avatar: rand::random_range(1..=doran_client_core::model::DEFAULT_AVATARS),
    };
    let bytes =
        postcard::to_allocvec(&profile).map_err(|e| AccountError::Corrupt(e.to_string()))?;
    store.set_meta(SIGNUP_PROFILE, &bytes)?;
    account.save(&**store, secrets)?;
    finish_signup(&**store, secrets, &account)?;
    Ok(account)
}

/// Finishes a sign-up on this device: writes the first change of the new account's
/// personal document (unless it has one) from the kept profile, then forgets the
/// sign-up's keys. Does nothing when no sign-up is unfinished; called after every
/// load of the account, so an app killed in the middle of a sign-up finishes it.
pub fn finish_signup(
    store: &dyn LocalStore,
    secrets: &dyn SecretStore,
    account: &Account,
) -> Result<(), AccountError> {
    let Some(bytes) = store.get_meta(SIGNUP_PROFILE)? else {
        return Ok(());
    };
    match postcard::from_bytes::<SignupProfile>(&bytes) {
        Ok(profile) if profile.user == account.user => {
            if store.log_end(account.personal_doc)?.is_none() {
                // The email goes into the profile too, so a device added later knows it.
                let (_, change) = PersonalDoc::create(
                    &account.actor(),
                    &profile.nickname,
                    Some(&account.email),
                    profile.avatar,
                    now_ms(),
                )
                .map_err(|e| AccountError::Corrupt(e.to_string()))?;
                // This device starts the profile key group the change is sealed
                // under (as it opens with its keys: `StoreHost::with_keys`); asked
                // before the change is kept, so it never goes out unsealed.
                store.set_meta(
                    doran_client_core::sync::START_PROFILE_KEYS,
                    &account.personal_doc.0,
                )?;
                store.commit_local(account.personal_doc, &change)?;
            }
        }
        // Another account's, or unreadable: nothing of this one to finish.
        _ => tracing::warn!("an unfinished sign-up of another account is dropped"),
    }
    store.delete_meta(SIGNUP_PROFILE)?;
    secrets.delete(SIGNUP_USER_KEY)?;
    store.delete_meta(SIGNUP_EMAIL)?;
    Ok(())
}

/// The user key for signing up with `email`: the one kept from an earlier attempt
/// with the same email (`true`: a retry), or a new one, kept before it is used.
fn signup_key(
    store: &dyn LocalStore,
    secrets: &dyn SecretStore,
    email: &str,
) -> Result<(SigningKey, bool), AccountError> {
    let same_email = store.get_meta(SIGNUP_EMAIL)?.as_deref() == Some(email.as_bytes());
    if same_email && let Some(bytes) = secrets.get(SIGNUP_USER_KEY)? {
        return Ok((signing_key(&bytes, "sign-up key")?, true));
    }
    let key = DeviceKeys::generate()?
        .user_key
        .ok_or_else(|| AccountError::Corrupt("new keys without a user key".into()))?;
    secrets.set(SIGNUP_USER_KEY, &key.to_bytes())?;
    store.set_meta(SIGNUP_EMAIL, email.as_bytes())?;
    Ok((key, false))
}

/// Adds this device to an existing account with the recovery phrase, and stores the
/// account. The email and nickname are not in the relay's answer: they stay empty
/// until read from the personal document.
pub async fn recover_account(
    store: &Arc<dyn LocalStore>,
    secrets: &dyn SecretStore,
    at: Enrolment<'_>,
    phrase: &str,
) -> Result<Account> {
    let user_key = from_phrase(phrase)?;
    let keys = DeviceKeys::for_new_device(Some(user_key)).map_err(AccountError::from)?;
    let (info, _) = enroll(at, keys.clone(), SignInAs::Recover).await?;
    store_added(store, secrets, at.relay, keys, info)
}

/// How often a new device asks whether its link was confirmed (the relay's hint).
pub const LINK_POLL: Duration = Duration::from_secs(1);
/// How long a new device waits for its link to be confirmed at most; the relay ends
/// the wait sooner, when the code expires (`LinkExpired`).
pub const LINK_WAIT: Duration = Duration::from_secs(15 * 60);

/// Adds this device to an existing account with a link code issued by one of its
/// signed-in devices, and stores the account. The code alone adds nothing: the relay
/// asks the account's devices to confirm, and this waits (asking again every
/// [`LINK_POLL`], at most `wait`) until one of them confirms (the account is stored)
/// or rejects it (`LinkRejected`), or the request expires (`LinkExpired`).
/// `waiting` is called once, with this device's key fingerprint, when the relay has
/// taken the request. Like [`recover_account`], email and nickname stay empty until
/// read from the personal document; this device holds no user key (it cannot show a
/// recovery phrase).
pub async fn link_device(
    store: &Arc<dyn LocalStore>,
    secrets: &dyn SecretStore,
    at: Enrolment<'_>,
    code: &str,
    wait: Duration,
    waiting: &(dyn Fn(&str) + Send + Sync),
) -> Result<Account> {
    let keys = DeviceKeys::for_new_device(None).map_err(AccountError::from)?;
    let sign_in = SignInAs::Link {
        code: code.trim().to_owned(),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut told = false;
    loop {
        match enroll(at, keys.clone(), sign_in.clone()).await {
            Err(SyncError::Auth {
                code: ErrorCode::LinkPending,
                ..
            }) => {
                if !told {
                    told = true;
                    waiting(&keys.device_public().fingerprint());
                }
                if tokio::time::Instant::now() + LINK_POLL > deadline {
                    return Err(SyncError::Auth {
                        code: ErrorCode::LinkExpired,
                        message: "the link was not confirmed in time".into(),
                    });
                }
                tokio::time::sleep(LINK_POLL).await;
            }
            Err(e) => return Err(e),
            Ok((info, _)) => return store_added(store, secrets, at.relay, keys, info),
        }
    }
}

/// Stores the account of a device just added to an existing user.
fn store_added(
    store: &Arc<dyn LocalStore>,
    secrets: &dyn SecretStore,
    relay: &Relay,
    keys: DeviceKeys,
    info: doran_client_core::sync::SignedIn,
) -> Result<Account> {
    let account = Account {
        user: info.user,
        device: keys.device,
        email: String::new(),
        nickname: String::new(),
        server: relay.base().to_owned(),
        personal_doc: info.personal_doc,
        device_key: keys.device_key,
        user_key: keys.user_key,
    };
    account.save(&**store, secrets)?;
    Ok(account)
}

#[cfg(test)]
mod tests {
    use doran_client_core::store::MemoryStore;

    use super::*;

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
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let secrets = StoreSecrets(Arc::clone(&store));
        assert!(Account::load(&*store, &secrets).expect("load").is_none());
        let a = account();
        a.save(&*store, &secrets).expect("save");
        let b = Account::load(&*store, &secrets)
            .expect("load")
            .expect("present");
        assert_eq!(b.user, a.user);
        assert_eq!(b.device_key.to_bytes(), a.device_key.to_bytes());
        assert!(!format!("{b:?}").contains(&hex::encode(a.device_key.to_bytes())));
        Account::sign_out(&*store, &secrets).expect("sign out");
        Account::sign_out(&*store, &secrets).expect("twice");
        assert!(Account::load(&*store, &secrets).expect("load").is_none());
        assert!(secrets.get(DEVICE_KEY).expect("get").is_none());
    }

    #[test]
    fn a_device_key_lost_by_the_keychain_signs_out_and_a_restore_replaces_the_row() {
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let secrets = StoreSecrets(Arc::clone(&store));
        let a = account();
        a.save(&*store, &secrets).expect("save");
        secrets.delete(DEVICE_KEY).expect("the keychain loses it");
        assert!(
            Account::load(&*store, &secrets)
                .expect("not an error")
                .is_none(),
            "signed out, not broken"
        );
        // Restored (a new device key for the same user): the account is back.
        let restored = Account {
            device: DeviceId::random(),
            ..account()
        };
        restored.save(&*store, &secrets).expect("save");
        let back = Account::load(&*store, &secrets)
            .expect("load")
            .expect("present");
        assert_eq!(back.device, restored.device);
        assert_eq!(back.device_key.to_bytes(), restored.device_key.to_bytes());
    }

    fn keep_profile(store: &dyn LocalStore, user: UserId) {
        let profile = SignupProfile {
            user,
            nickname: "엄마곰".into(),
            avatar: 3,
        };
        store
            .set_meta(
                SIGNUP_PROFILE,
                &postcard::to_allocvec(&profile).expect("encodes"),
            )
            .expect("kept");
    }

    #[test]
    fn a_sign_up_stopped_before_the_profile_is_finished_when_the_account_loads() {
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let secrets = StoreSecrets(Arc::clone(&store));
        let a = account();
        // Killed after the account was saved, before its personal document was written.
        keep_profile(&*store, a.user);
        a.save(&*store, &secrets).expect("save");
        assert!(store.log_end(a.personal_doc).expect("log").is_none());

        let loaded = Account::load(&*store, &secrets)
            .expect("load")
            .expect("present");
        finish_signup(&*store, &secrets, &loaded).expect("finished");
        let stored = store
            .load(a.personal_doc)
            .expect("load")
            .expect("the personal document is written");
        assert_eq!(stored.changes.len(), 1);
        let doc = PersonalDoc::load(None, stored.changes.iter().map(Vec::as_slice), &a.actor())
            .expect("opens");
        assert_eq!(doc.view().nickname, "엄마곰");
        assert_eq!(doc.view().default_avatar, 3);
        assert_eq!(store.get_meta(SIGNUP_PROFILE).expect("meta"), None);

        // Once is enough: loading again writes nothing more.
        finish_signup(&*store, &secrets, &loaded).expect("again");
        let again = store.load(a.personal_doc).expect("load").expect("there");
        assert_eq!(again.changes.len(), 1);
    }

    #[test]
    fn another_accounts_unfinished_sign_up_writes_nothing() {
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let secrets = StoreSecrets(Arc::clone(&store));
        let a = account();
        keep_profile(&*store, UserId([9; 16]));
        a.save(&*store, &secrets).expect("save");
        finish_signup(&*store, &secrets, &a).expect("finished");
        assert!(store.log_end(a.personal_doc).expect("log").is_none());
        assert_eq!(store.get_meta(SIGNUP_PROFILE).expect("meta"), None);
    }

    #[test]
    fn an_account_kept_by_an_older_build_is_imported() {
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let secrets = StoreSecrets(Arc::clone(&store));
        let a = account();
        let legacy = Legacy {
            user: a.user,
            device: a.device,
            email: a.email.clone(),
            nickname: a.nickname.clone(),
            server: a.server.clone(),
            personal_doc: a.personal_doc,
            device_key: a.device_key.to_bytes(),
            user_key: a.user_key.as_ref().map(SigningKey::to_bytes),
        };
        store
            .set_meta(LEGACY_KEY, &postcard::to_allocvec(&legacy).expect("encode"))
            .expect("meta");
        let b = Account::load(&*store, &secrets)
            .expect("load")
            .expect("imported");
        assert_eq!(b.user, a.user);
        assert_eq!(b.email, a.email);
        assert_eq!(b.device_key.to_bytes(), a.device_key.to_bytes());
        assert!(store.get_meta(LEGACY_KEY).expect("meta").is_none());
        assert!(Account::load(&*store, &secrets).expect("again").is_some());
    }
}
