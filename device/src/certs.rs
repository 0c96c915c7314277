//! This device's part in its user's certificate chains (issue 18): the chains a
//! co-member's device walks, from the user key it pinned, before it lets one of the
//! user's devices into a family's key group (`client-core/src/group/certs.rs`).
//!
//! - A device holding the user key (the first one, any restored with the recovery
//!   phrase) certifies **itself** with it, once.
//! - A device that confirms a link certifies **the new device** with its own key — the
//!   device and key it showed the user (the fingerprint compared on both screens).
//!
//! It never certifies a device it only heard of from the relay: a relay that listed a
//! device of its own would otherwise get it certified. Certificates wait in an outbox
//! in the store's meta table and are kept by the relay after each sign-in (and right
//! away when a link is confirmed), so one made offline, or whose answer was lost, is
//! sent again; keeping one twice is fine.

use std::sync::{Arc, Mutex};

use doran_client_core::{group::certify, keys::public_key, store::LocalStore};
use doran_protocol::{
    DeviceId, ErrorCode, PublicKey, Request, Response, UserId,
    limits::MAX_CERTS_PER_FRAME,
    model::{Certifier, DeviceCert},
};

use crate::{account::Account, device::Session, sync_error::SyncError};

/// Serialises the outbox's read-modify-write.
static OUTBOX: Mutex<()> = Mutex::new(());

fn outbox_key(user: UserId) -> String {
    format!("certs/outbox/{}", user.to_hex())
}

fn self_done_key(device: DeviceId) -> String {
    format!("certs/self/{}", device.to_hex())
}

fn read(store: &dyn LocalStore, user: UserId) -> Vec<DeviceCert> {
    match store.get_meta(&outbox_key(user)) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "an unreadable certificate outbox is dropped");
            Vec::new()
        }),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "the certificate outbox cannot be read");
            Vec::new()
        }
    }
}

fn write(store: &dyn LocalStore, user: UserId, certs: &[DeviceCert]) {
    let result = serde_json::to_vec(certs)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            store
                .set_meta(&outbox_key(user), &bytes)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(error = %e, "the certificate outbox cannot be written");
    }
}

/// Queues a certificate of `device` (with `key`) by this device, for a link it just
/// confirmed.
pub(crate) fn vouch_for_linked(
    store: &dyn LocalStore,
    account: &Account,
    device: DeviceId,
    key: PublicKey,
) {
    let cert = certify(
        &account.device_key,
        Certifier::Device(account.device),
        account.user,
        device,
        key,
    );
    let _guard = OUTBOX
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut queued = read(store, account.user);
    if !queued.contains(&cert) {
        queued.push(cert);
        write(store, account.user, &queued);
    }
}

/// What to send now: the outbox, and this device's own certificate by the user key
/// if it holds it and the relay has not kept it yet.
fn pending(store: &dyn LocalStore, account: &Account) -> Vec<DeviceCert> {
    let mut certs = read(store, account.user);
    let done = store
        .get_meta(&self_done_key(account.device))
        .ok()
        .flatten()
        .is_some();
    if let (Some(user_key), false) = (&account.user_key, done) {
        certs.push(certify(
            user_key,
            Certifier::User,
            account.user,
            account.device,
            public_key(&account.device_key),
        ));
    }
    certs
}

/// Sends what is pending to the relay; what it keeps (or refuses for good) leaves the
/// outbox, what failed on the way stays for the next sign-in (and is the error).
pub(crate) async fn publish(
    store: &Arc<dyn LocalStore>,
    session: &Arc<Session>,
) -> Result<(), SyncError> {
    let account = &session.account;
    let certs = {
        let store = Arc::clone(store);
        let account = account.clone();
        match tokio::task::spawn_blocking(move || pending(&*store, &account)).await {
            Ok(certs) => certs,
            Err(e) => return Err(SyncError::Protocol(format!("a blocking task failed: {e}"))),
        }
    };
    if certs.is_empty() {
        return Ok(());
    }
    let mut settled = Vec::new();
    for batch in certs.chunks(MAX_CERTS_PER_FRAME) {
        let answer = session
            .driver
            .request(Request::PublishDeviceCerts {
                certs: batch.to_vec(),
            })
            .await;
        match answer {
            Ok(Response::Done) => settled.extend_from_slice(batch),
            // A device revoked since, a certifier revoked: never kept, never sent again.
            Err(SyncError::Refused {
                code:
                    ErrorCode::Forbidden
                    | ErrorCode::InvalidInput
                    | ErrorCode::BadSignature
                    | ErrorCode::QuotaExceeded,
                message,
            }) => {
                tracing::warn!(%message, "device certificates refused by the relay");
                settled.extend_from_slice(batch);
            }
            Ok(other) => {
                return Err(SyncError::Protocol(format!(
                    "an unexpected answer to device certificates: {other:?}"
                )));
            }
            Err(e) => {
                tracing::info!(error = %e, "device certificates wait for the next sign-in");
                return Err(e);
            }
        }
    }
    let store = Arc::clone(store);
    let account = account.clone();
    let done = tokio::task::spawn_blocking(move || {
        let _guard = OUTBOX
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let left: Vec<DeviceCert> = read(&*store, account.user)
            .into_iter()
            .filter(|c| !settled.contains(c))
            .collect();
        write(&*store, account.user, &left);
        if account.user_key.is_some() {
            let own = settled
                .iter()
                .any(|c| c.device == account.device && c.by == Certifier::User);
            if own && let Err(e) = store.set_meta(&self_done_key(account.device), b"1") {
                tracing::warn!(error = %e, "the certificate record cannot be written");
            }
        }
    })
    .await;
    done.map_err(|e| SyncError::Protocol(format!("a blocking task failed: {e}")))
}

fn pinned_key(user: UserId) -> String {
    format!("certs/pinned/{}", user.to_hex())
}

/// Whether `key` is `user`'s key as this device first saw it: pinned the first time
/// (trust on first use), compared every time after. A relay answering with another
/// key later — to vouch for devices of its own — is found out here.
pub(crate) fn pin(
    store: &dyn LocalStore,
    user: UserId,
    key: PublicKey,
) -> Result<bool, doran_client_core::store::StoreError> {
    let _guard = OUTBOX
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match store.get_meta(&pinned_key(user))? {
        Some(pinned) => Ok(pinned.as_slice() == key.as_bytes().as_slice()),
        None => {
            store.set_meta(&pinned_key(user), key.as_bytes())?;
            Ok(true)
        }
    }
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
}
