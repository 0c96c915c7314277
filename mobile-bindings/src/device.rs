//! [`Device`]: one per device home, opened once when the app starts and kept for its
//! lifetime. The feature methods are in the files named after them (`account.rs`,
//! `families.rs`, `missions.rs`…), each an `impl Device` block of the facade's methods.

use std::{path::PathBuf, sync::Arc};

use doran_device::{core::time_util::Lang, relay::Trust};

use crate::{
    error::{DoranError, Result},
    secrets::{Keychain, SecretStore},
};

/// How a [`Device`] is opened. Every field has a default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DeviceOptions {
    /// The system locale (`ko-KR`, `en-US`…): the language of messages and views until
    /// the user's own setting is known, and a new account's language. Korean for
    /// `ko…`, English for anything else.
    #[uniffi(default = "ko")]
    pub locale: String,
    /// Start syncing in the background as soon as an account is there.
    #[uniffi(default = true)]
    pub sync_on_open: bool,
    /// The viewer's offset from UTC in minutes (dates in views); `None`: the system's.
    #[uniffi(default = None)]
    pub utc_offset_minutes: Option<i32>,
    /// An extra CA certificate file (PEM) for a self-hosted `https://` relay.
    #[uniffi(default = None)]
    pub extra_ca_file: Option<String>,
    /// The blob cache's size limit in bytes (photos and voice messages kept on the
    /// device; pending uploads are never evicted); `None`: 512 MiB.
    #[uniffi(default = None)]
    pub blob_cache_bytes: Option<u64>,
    /// How this device names itself in the user's device list and in the prompt that
    /// confirms a new device ("엄마의 iPhone 15"): cut to 128 bytes, control
    /// characters dropped; `None`: "Dorandoran · {machine name} ({platform})".
    #[uniffi(default = None)]
    pub client_name: Option<String>,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            locale: "ko".to_owned(),
            sync_on_open: true,
            utc_offset_minutes: None,
            extra_ca_file: None,
            blob_cache_bytes: None,
            client_name: None,
        }
    }
}

/// One device: its local store, account, families and background sync. Every method is
/// safe to call from any thread; the `async` ones run their work off the caller's
/// thread. Events arrive through [`listen`](Device::listen).
#[derive(Debug, uniffi::Object)]
pub struct Device {
    /// The facade keeps the runtime it was opened on: its calls that start background
    /// work (listening, starting the sync) work from any app thread.
    pub(crate) inner: doran_device::Device,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// Opens (creating if needed) the device whose files live in the folder `home` (the
    /// app's private data folder, not its cache: it holds the local store and the
    /// photos and recordings waiting for upload). `secrets`: the platform keychain
    /// for the keys; `None` keeps them in the local store. If an account is there and
    /// `options.sync_on_open`, syncing starts in the background.
    #[uniffi::constructor]
    pub async fn open(
        home: String,
        options: DeviceOptions,
        secrets: Option<Arc<dyn SecretStore>>,
    ) -> Result<Arc<Self>> {
        let lang = Lang::from_code(&options.locale);
        let mut opts = doran_device::DeviceOptions {
            secrets: secrets.map(|s| Arc::new(Keychain(s)) as _),
            sync_on_open: options.sync_on_open,
            lang,
            ..Default::default()
        };
        if let Some(minutes) = options.utc_offset_minutes {
            opts.utc_offset = Some(utc_offset(minutes, lang)?);
        }
        if let Some(ca) = options.extra_ca_file {
            opts.trust = Trust {
                extra_ca: Some(PathBuf::from(ca)),
            };
        }
        if let Some(bytes) = options.blob_cache_bytes {
            opts.blob_cache_bytes = bytes;
        }
        if let Some(name) = options.client_name {
            opts.sync.client = name;
        }
        let inner = doran_device::Device::open(home, opts).await?;
        Ok(Arc::new(Device { inner }))
    }

    /// The folder this device lives in.
    pub fn home_dir(&self) -> String {
        self.inner.home_dir().display().to_string()
    }

    /// The language messages and views are in (`ko` or `en`): the user's setting once
    /// known, else the locale given at opening.
    pub fn language(&self) -> String {
        self.inner.language().code().to_owned()
    }

    /// Sets the viewer's offset from UTC in minutes (after travelling, or a daylight
    /// saving change); dates in views follow it.
    pub fn set_utc_offset(&self, minutes: i32) -> Result<()> {
        self.inner
            .set_utc_offset(utc_offset(minutes, self.inner.language())?);
        Ok(())
    }

    /// Starts syncing in the background, if signed in and not already syncing (e.g.
    /// when the app comes back to the foreground after [`stop_sync`](Self::stop_sync)).
    pub fn start_sync(&self) {
        self.inner.start_sync();
    }

    /// Stops syncing and closes the connection (e.g. when the app goes to the
    /// background). Edits still work and are queued.
    pub fn stop_sync(&self) {
        self.inner.stop_sync();
    }

    /// Stops syncing and waits (a few seconds at most) until what already arrived has
    /// been announced and kept: call it before the process ends (iOS
    /// `applicationWillTerminate`, a background task finishing), so no notification
    /// is lost. Syncing can be started again with [`start_sync`](Self::start_sync).
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

/// A UTC offset from minutes, or the facade's "invalid input" in `lang`.
fn utc_offset(minutes: i32, lang: Lang) -> Result<time::UtcOffset> {
    minutes
        .checked_mul(60)
        .and_then(|s| time::UtcOffset::from_whole_seconds(s).ok())
        .ok_or_else(|| {
            DoranError::from(doran_device::Error::new(
                doran_device::ErrorCode::InvalidInput,
                lang,
                "시간대가 올바르지 않아요.",
                "That time zone offset is not valid.",
            ))
        })
}

#[cfg(test)]
mod tests {
    //! The adapter's own seams, without a relay (the end-to-end behaviour is tested
    //! through the generated Python bindings, `mobile-bindings/tests`).

    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };

    use super::*;
    use crate::error::KeychainError;

    /// A keychain in memory, as an app's `SecretStore` would be.
    #[derive(Default)]
    struct MemoryKeychain(Mutex<HashMap<String, Vec<u8>>>);

    impl SecretStore for MemoryKeychain {
        fn get(&self, name: String) -> Result<Option<Vec<u8>>, KeychainError> {
            Ok(self.0.lock().unwrap().get(&name).cloned())
        }
        fn set(&self, name: String, value: Vec<u8>) -> Result<(), KeychainError> {
            self.0.lock().unwrap().insert(name, value);
            Ok(())
        }
        fn delete(&self, name: String) -> Result<(), KeychainError> {
            self.0.lock().unwrap().remove(&name);
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn opens_without_an_account_and_maps_errors_in_the_locale_language() {
        let home = tempfile::tempdir().unwrap();
        let options = DeviceOptions {
            locale: "en-US".to_owned(),
            ..Default::default()
        };
        let keychain: Arc<dyn SecretStore> = Arc::new(MemoryKeychain::default());
        let device = Device::open(home.path().display().to_string(), options, Some(keychain))
            .await
            .unwrap();
        assert_eq!(device.language(), "en");
        assert_eq!(device.account().await.unwrap(), None);

        // The facade's error, mapped to its variant, its message as the facade wrote it.
        let Err(DoranError::NoAccount(message)) = device.families().await else {
            panic!("expected NoAccount");
        };
        assert!(message.starts_with("There is no account"), "{message}");
        assert!(matches!(
            device.recovery_phrase(),
            Err(DoranError::NoAccount(_))
        ));
        // An offset past ±26 h is the facade's invalid input, in the same language.
        let Err(DoranError::InvalidInput(message)) = device.set_utc_offset(27 * 60) else {
            panic!("expected InvalidInput");
        };
        assert_eq!(message, "That time zone offset is not valid.");
        device.set_utc_offset(9 * 60).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_korean_locale_gives_korean_messages() {
        let home = tempfile::tempdir().unwrap();
        let device = Device::open(
            home.path().display().to_string(),
            DeviceOptions::default(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(device.language(), "ko");
        let Err(DoranError::InvalidInput(message)) = device.set_utc_offset(i32::MAX) else {
            panic!("expected InvalidInput");
        };
        assert_eq!(message, "시간대가 올바르지 않아요.");
    }
}
