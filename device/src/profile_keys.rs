//! This user's profile keys (issue 18, `docs/security.md`, "Personal documents
//! sealed"): the personal document is sealed under the epochs of the user's profile
//! key group — an MLS group of the user's own devices on the personal document's key
//! log — and its members read it with the secrets the user's device publishes in its
//! own member entry of each family document they share (sealed to exactly that
//! family's devices).
//!
//! After every pass of the key task a device in the group:
//! - **rotates** when a device that could read the current epoch's secret no longer
//!   can: another user's device that was in the key group of a family it was
//!   published in, and is in none of them now (a member left or was removed, one of
//!   their devices was revoked, this user left a family). Until the new epoch is
//!   here, this user's personal changes wait ([`ROTATING_PROFILE_KEYS`]); its secret
//!   goes only where that device is not, so what this user writes after is closed to
//!   it; what it read stays read;
//! - **publishes** the secrets it holds in each sealed family it is a member of, once
//!   per epoch and family (remembered in the store).

use std::{collections::BTreeSet, sync::Arc};

use doran_client_core::sync::{HostError, ROTATING_PROFILE_KEYS, StoreHost, personal_group};
use doran_protocol::{DeviceId, DocId, FamilyId, UserId};
use serde::{Deserialize, Serialize};

use crate::device::{Session, now_ms};

/// What the store remembers of the current epoch's readers.
const READERS_KEY: &str = "profile/readers";

fn published_key(family: FamilyId) -> String {
    format!("profile/published/{}", family.to_hex())
}

/// Every device that could read the secret of `epoch`: those of other users in the
/// key group of a family it was published in, since it was made (devices, not users:
/// a co-member's revoked device is gone while its user stays).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Readers {
    epoch: u64,
    devices: BTreeSet<(UserId, DeviceId)>,
}

/// What a pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pass {
    /// Family documents a change was written to (to push).
    pub published: usize,
    /// A new epoch was asked for (the key task steps the group again).
    pub rotating: bool,
}

/// Runs one pass (see the module docs); nothing for an account whose personal
/// document is not sealed, or a device not in its group yet.
pub(crate) async fn pass(session: &Arc<Session>) -> Pass {
    let host = Arc::clone(&session.host);
    let (me, doc) = (session.account.user, session.account.personal_doc);
    match crate::task::spawn_blocking(move || pass_blocking(&host, me, doc)).await {
        Ok(Ok(pass)) => pass,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the profile keys wait for the next pass");
            Pass::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "the profile key pass did not finish");
            Pass::default()
        }
    }
}

fn pass_blocking(host: &StoreHost, me: UserId, doc: DocId) -> Result<Pass, HostError> {
    let mut out = Pass::default();
    let group = personal_group(doc);
    if !group.says_sealed() {
        return Ok(out);
    }
    let Some(epoch) = host.key_epoch(group) else {
        return Ok(out);
    };
    let store = host.store();
    let rotating: Option<u64> = store
        .get_meta(ROTATING_PROFILE_KEYS)?
        .and_then(|b| postcard::from_bytes(&b).ok());
    match rotating {
        // Still at the epoch it rotates away from: nothing is published until the
        // new one is here (the personal document's changes wait for it too).
        Some(from) if epoch <= from => return Ok(out),
        Some(_) => store.delete_meta(ROTATING_PROFILE_KEYS)?,
        None => {}
    }
    // The sealed families this device can write to, whose devices read each now,
    // and which were in their groups since the last pass (one added and removed in
    // between read the family document meanwhile).
    let mut families = Vec::new();
    let mut readers = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    for family in host.families()? {
        if family == group {
            continue;
        }
        all.push(family);
        seen.extend(
            host.key_members_seen(family)
                .into_iter()
                .filter(|m| m.user != me)
                .map(|m| (m.user, m.device)),
        );
        if !host.is_sealed(family) || host.key_epoch(family).is_none() {
            continue;
        }
        readers.extend(
            host.key_members(family)
                .into_iter()
                .filter(|m| m.user != me)
                .map(|m| (m.user, m.device)),
        );
        families.push(family);
    }
    let before: Readers = store
        .get_meta(READERS_KEY)?
        .and_then(|b| postcard::from_bytes(&b).ok())
        .unwrap_or_default();
    let mut could_read = seen;
    if before.epoch == epoch {
        could_read.extend(before.devices);
    }
    tracing::debug!(
        epoch,
        could_read = could_read.len(),
        readers = readers.len(),
        "profile key readers"
    );
    if !could_read.is_subset(&readers) {
        let gone: Vec<String> = could_read
            .difference(&readers)
            .map(|(u, d)| format!("{u}/{d}"))
            .collect();
        tracing::info!(
            ?gone,
            "a reader of the profile left: the profile keys rotate"
        );
        // Kept first: from now on this user's personal changes wait for the new epoch.
        let bytes = postcard::to_allocvec(&epoch).unwrap_or_default();
        store.set_meta(ROTATING_PROFILE_KEYS, &bytes)?;
        host.rotate_keys(group)?;
        // What was seen made this rotation; what is seen from now on is new.
        host.forget_seen(&all)?;
        out.rotating = true;
        return Ok(out);
    }
    // Who can read this epoch's secret is kept before it goes anywhere new, so a
    // crash in between never forgets a reader.
    let mut devices = readers;
    devices.extend(could_read);
    let bytes = postcard::to_allocvec(&Readers { epoch, devices }).unwrap_or_default();
    store.set_meta(READERS_KEY, &bytes)?;
    // Looked at: what is seen from now on is new.
    host.forget_seen(&all)?;
    let secrets = host.key_secrets(group);
    let now = now_ms();
    for family in families {
        let done: Option<u64> = store
            .get_meta(&published_key(family))?
            .and_then(|b| postcard::from_bytes(&b).ok());
        if done.is_some_and(|d| d >= epoch) {
            continue;
        }
        match host.edit_family(family, |fd| fd.publish_profile_keys(doc, &secrets, now)) {
            Ok(written) => {
                out.published += usize::from(written > 0);
                // An epoch always serialises.
                let bytes = postcard::to_allocvec(&epoch).unwrap_or_default();
                store.set_meta(&published_key(family), &bytes)?;
            }
            // A family whose document this device cannot open yet, or that another
            // process on this device kept writing: next pass.
            Err(HostError::WaitingForKeys(_) | HostError::Overtaken(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
