//! This device's part in its user's certificate chains (issue 18): the chains a
//! co-member's device walks, from the user key it pinned, before it lets one of the
//! user's devices into a family's key group (`client-core/src/group/certs.rs`).
//!
//! - A device holding the user key (the first one, any restored with the recovery
//!   phrase) certifies **itself** with it, once.
//! - A device that confirms a link certifies **the new device it showed the user** —
//!   the device and key whose fingerprint was on both screens, remembered when it was
//!   shown ([`remember_shown`]); if the relay names another key at confirmation, the
//!   confirmation is refused ([`shown`]).
//!
//! It never certifies a device it only heard of from the relay at the moment of
//! signing: a relay swapping the key between showing and confirming would otherwise
//! get a device of its own certified. Certificates wait in this device's outbox in the
//! store's meta table — queued before the link is confirmed, so a crash in between
//! loses none — and are sent one by one after each sign-in (and right after a
//! confirmation); keeping one twice is fine, one the relay refuses for good leaves the
//! outbox.

use std::sync::{Arc, Mutex};

use doran_client_core::{
    group::certify,
    keys::public_key,
    store::{LocalStore, StoreError},
};
use doran_protocol::{
    DeviceId, ErrorCode, LinkId, PendingLinkInfo, PublicKey, Request, Response, UserId,
    model::{Certifier, DeviceCert, UserCerts},
};

use crate::{account::Account, driver::SyncDriver, sync_error::SyncError};

/// Serialises the read-modify-writes of this module's meta entries (outbox, pins).
static OUTBOX: Mutex<()> = Mutex::new(());

fn outbox_key(device: DeviceId) -> String {
    format!("certs/outbox/{}", device.to_hex())
}

fn self_done_key(device: DeviceId) -> String {
    format!("certs/self/{}", device.to_hex())
}

fn shown_key(link: LinkId) -> String {
    format!("links/shown/{}", link.to_hex())
}

fn pinned_key(user: UserId) -> String {
    format!("certs/pinned/{}", user.to_hex())
}

fn verified_key(user: UserId) -> String {
    format!("certs/verified/{}", user.to_hex())
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    OUTBOX
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read(store: &dyn LocalStore, device: DeviceId) -> Result<Vec<DeviceCert>, StoreError> {
    Ok(match store.get_meta(&outbox_key(device))? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "an unreadable certificate outbox is dropped");
            Vec::new()
        }),
        None => Vec::new(),
    })
}

fn write(store: &dyn LocalStore, device: DeviceId, certs: &[DeviceCert]) -> Result<(), StoreError> {
    // A list of certificates always serialises.
    let bytes = serde_json::to_vec(certs).unwrap_or_default();
    store.set_meta(&outbox_key(device), &bytes)
}

/// Remembers the device and key a link request showed the user (its fingerprint on
/// this screen), to certify exactly that one if the user confirms.
pub(crate) fn remember_shown(store: &dyn LocalStore, link: &PendingLinkInfo) {
    let mut bytes = link.device.0.to_vec();
    bytes.extend_from_slice(link.device_key.as_bytes());
    if let Err(e) = store.set_meta(&shown_key(link.link), &bytes) {
        tracing::warn!(error = %e, "a shown link request was not remembered");
    }
}

/// The device and key `link` showed the user, if this device showed it.
pub(crate) fn shown(
    store: &dyn LocalStore,
    link: LinkId,
) -> Result<Option<(DeviceId, PublicKey)>, StoreError> {
    Ok(store.get_meta(&shown_key(link))?.and_then(|bytes| {
        let device = <[u8; 16]>::try_from(bytes.get(..16)?).ok()?;
        let key = <[u8; 32]>::try_from(bytes.get(16..)?).ok()?;
        Some((DeviceId(device), PublicKey(key)))
    }))
}

/// Queues a certificate of `device` (with `key`, as shown to the user) by this device,
/// before the link is confirmed.
pub(crate) fn vouch_for_linked(
    store: &dyn LocalStore,
    account: &Account,
    device: DeviceId,
    key: PublicKey,
) -> Result<(), StoreError> {
    let cert = certify(
        &account.device_key,
        Certifier::Device(account.device),
        account.user,
        device,
        key,
    );
    let _guard = lock();
    let mut queued = read(store, account.device)?;
    if !queued.contains(&cert) {
        queued.push(cert);
        write(store, account.device, &queued)?;
    }
    Ok(())
}

/// What to send now: this device's own certificate by the user key if it holds it
/// and the relay has not kept it yet, then the outbox.
fn pending(store: &dyn LocalStore, account: &Account) -> Result<Vec<DeviceCert>, StoreError> {
    let mut certs = Vec::new();
    let done = store.get_meta(&self_done_key(account.device))?.is_some();
    if let (Some(user_key), false) = (&account.user_key, done) {
        certs.push(certify(
            user_key,
            Certifier::User,
            account.user,
            account.device,
            public_key(&account.device_key),
        ));
    }
    certs.extend(read(store, account.device)?);
    Ok(certs)
}

/// `cert` is settled: kept by the relay, or refused by it for good.
fn settle(store: &dyn LocalStore, account: &Account, cert: &DeviceCert, kept: bool) {
    let _guard = lock();
    let result = read(store, account.device).and_then(|queued| {
        let left: Vec<DeviceCert> = queued.into_iter().filter(|c| c != cert).collect();
        write(store, account.device, &left)
    });
    let own = cert.device == account.device && cert.by == Certifier::User;
    let result = result.and_then(|()| match own && kept {
        true => store.set_meta(&self_done_key(account.device), b"1"),
        false => Ok(()),
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "the certificate outbox cannot be updated");
    }
}

pub(crate) fn blocking_failed(e: tokio::task::JoinError) -> SyncError {
    SyncError::Protocol(format!("a blocking task failed: {e}"))
}

/// Sends what is pending to the relay, one certificate at a time (the relay keeps
/// nothing of a batch with one it refuses). What it keeps, or refuses for good, leaves
/// the outbox; what failed on the way stays for the next sign-in (and is the error).
pub(crate) async fn publish(
    store: &Arc<dyn LocalStore>,
    driver: &SyncDriver,
    account: &Account,
) -> Result<(), SyncError> {
    let certs = {
        let (store, account) = (Arc::clone(store), account.clone());
        crate::task::spawn_blocking(move || pending(&*store, &account))
            .await
            .map_err(blocking_failed)??
    };
    for cert in certs {
        let answer = driver
            .request(Request::PublishDeviceCerts {
                certs: vec![cert.clone()],
            })
            .await;
        let kept = match answer {
            Ok(Response::Done) => true,
            // A device revoked since, a certifier revoked, the user's certificates
            // full: never kept, never sent again.
            Err(SyncError::Refused {
                code:
                    ErrorCode::Forbidden
                    | ErrorCode::InvalidInput
                    | ErrorCode::BadSignature
                    | ErrorCode::QuotaExceeded,
                message,
                ..
            }) => {
                tracing::warn!(%message, device = %cert.device, "a device certificate was refused");
                false
            }
            Ok(other) => {
                return Err(SyncError::Protocol(format!(
                    "an unexpected answer to a device certificate: {other:?}"
                )));
            }
            Err(e) => {
                tracing::info!(error = %e, "device certificates wait for the next sign-in");
                return Err(e);
            }
        };
        let (store, account) = (Arc::clone(store), account.clone());
        crate::task::spawn_blocking(move || settle(&*store, &account, &cert, kept))
            .await
            .map_err(blocking_failed)?;
    }
    Ok(())
}

/// `user`'s certificates as the relay serves them, their user key checked against the
/// one pinned (pinned now the first time). A relay answering with another key than the
/// pinned one is refused ([`SyncError::Protocol`]): it would be vouching for devices
/// of its own.
pub(crate) async fn served(
    store: &Arc<dyn LocalStore>,
    driver: &SyncDriver,
    user: UserId,
) -> Result<UserCerts, SyncError> {
    let served = match driver.request(Request::DeviceCerts { user }).await? {
        Response::DeviceCerts(served) if served.user == user => served,
        other => {
            return Err(SyncError::Protocol(format!(
                "an unexpected answer to DeviceCerts: {other:?}"
            )));
        }
    };
    let key = served.user_key;
    let pinned = {
        let store = Arc::clone(store);
        crate::task::spawn_blocking(move || pin(&*store, user, key))
            .await
            .map_err(blocking_failed)??
    };
    if !pinned {
        tracing::warn!(%user, "the relay answered with another user key than the one pinned");
        return Err(SyncError::Protocol(format!(
            "the relay changed the user key of {user}"
        )));
    }
    Ok(served)
}

/// Whether `key` is `user`'s key as this device first saw it: pinned the first time
/// (trust on first use), compared every time after. A relay answering with another
/// key later — to vouch for devices of its own — is found out here.
pub(crate) fn pin(
    store: &dyn LocalStore,
    user: UserId,
    key: PublicKey,
) -> Result<bool, StoreError> {
    let _guard = lock();
    match store.get_meta(&pinned_key(user))? {
        Some(pinned) => Ok(pinned.as_slice() == key.as_bytes().as_slice()),
        None => {
            store.set_meta(&pinned_key(user), key.as_bytes())?;
            Ok(true)
        }
    }
}

/// Pins this device's own user's key from the user key it holds (the first device,
/// one restored with the phrase): the truth, whatever the relay answered before — a
/// pin taken from the relay's word is replaced. The relay can then not vouch, to this
/// device, for devices of its own as this user's (the safety code's own half is made
/// from the same key).
pub(crate) fn pin_own(
    store: &dyn LocalStore,
    user: UserId,
    key: PublicKey,
) -> Result<(), StoreError> {
    let _guard = lock();
    match store.get_meta(&pinned_key(user))? {
        Some(pinned) if pinned.as_slice() == key.as_bytes().as_slice() => Ok(()),
        other => {
            if other.is_some() {
                tracing::warn!(%user, "the key pinned for this user is not the user key this device holds: replaced");
            }
            store.set_meta(&pinned_key(user), key.as_bytes())
        }
    }
}

/// The user key this device pinned for `user`, if it has seen one.
pub(crate) fn pinned(
    store: &dyn LocalStore,
    user: UserId,
) -> Result<Option<PublicKey>, StoreError> {
    Ok(store
        .get_meta(&pinned_key(user))?
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .map(PublicKey))
}

/// Remembers that the safety code made with `key` for `user` was compared in person
/// and matched (`verified` then holds while the pin is that key, which is for ever:
/// a pin never changes).
pub(crate) fn mark_verified(
    store: &dyn LocalStore,
    user: UserId,
    key: PublicKey,
) -> Result<(), StoreError> {
    store.set_meta(&verified_key(user), key.as_bytes())
}

/// Whether `user`'s pinned key is the one a safety code was compared with.
pub(crate) fn verified(store: &dyn LocalStore, user: UserId) -> Result<bool, StoreError> {
    let Some(pinned) = pinned(store, user)? else {
        return Ok(false);
    };
    Ok(store
        .get_meta(&verified_key(user))?
        .is_some_and(|v| v.as_slice() == pinned.as_bytes().as_slice()))
}

#[cfg(test)]
mod tests {
    use doran_client_core::store::MemoryStore;

    use super::*;

    #[test]
    fn a_user_key_is_pinned_the_first_time_and_compared_after() {
        let store = MemoryStore::new();
        let user = UserId::random();
        let key = PublicKey([7; 32]);
        assert!(pin(&store, user, key).expect("store"));
        assert!(pin(&store, user, key).expect("store"));
        // Another key for the same user later: refused, and the pin stays.
        assert!(!pin(&store, user, PublicKey([8; 32])).expect("store"));
        assert!(pin(&store, user, key).expect("store"));
        // Each user has their own.
        assert!(pin(&store, UserId::random(), PublicKey([8; 32])).expect("store"));
    }

    #[test]
    fn the_user_key_held_replaces_a_pin_from_the_relay() {
        let store = MemoryStore::new();
        let user = UserId::random();
        // Pinned from a relay's answer, then the device holding the real key starts.
        assert!(pin(&store, user, PublicKey([6; 32])).expect("store"));
        pin_own(&store, user, PublicKey([7; 32])).expect("store");
        assert_eq!(
            pinned(&store, user).expect("store"),
            Some(PublicKey([7; 32]))
        );
        assert!(!pin(&store, user, PublicKey([6; 32])).expect("store"));
        pin_own(&store, user, PublicKey([7; 32])).expect("store");
        assert!(pin(&store, user, PublicKey([7; 32])).expect("store"));
    }

    #[test]
    fn a_member_is_verified_only_for_the_key_pinned() {
        let store = MemoryStore::new();
        let user = UserId::random();
        assert!(!verified(&store, user).expect("store"), "nothing pinned");
        // A mark without a pin (or for another key) verifies nothing.
        mark_verified(&store, user, PublicKey([7; 32])).expect("store");
        assert!(!verified(&store, user).expect("store"));
        assert!(pin(&store, user, PublicKey([8; 32])).expect("store"));
        assert_eq!(
            pinned(&store, user).expect("store"),
            Some(PublicKey([8; 32]))
        );
        assert!(!verified(&store, user).expect("store"));
        mark_verified(&store, user, PublicKey([8; 32])).expect("store");
        assert!(verified(&store, user).expect("store"));
        assert!(!verified(&store, UserId::random()).expect("store"));
    }

    #[test]
    fn a_shown_link_request_is_remembered_with_its_key() {
        let store = MemoryStore::new();
        let info = PendingLinkInfo {
            link: LinkId::random(),
            device: DeviceId::random(),
            device_key: PublicKey([3; 32]),
            client: "laptop".into(),
            requested_at: 1,
            expires_at: 2,
        };
        assert_eq!(shown(&store, info.link).expect("store"), None);
        remember_shown(&store, &info);
        assert_eq!(
            shown(&store, info.link).expect("store"),
            Some((info.device, info.device_key))
        );
    }
}
