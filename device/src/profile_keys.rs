//! This user's profile keys (issue 18, `docs/security.md`, "Personal documents
//! sealed"): the personal document is sealed under the epochs of the user's profile
//! key group — an MLS group of the user's own devices on the personal document's key
//! log — and its members read it with the secrets the user's device publishes in its
//! own member entry of each family document they share (sealed to exactly that
//! family's devices).
//!
//! After every pass of the key task a device in the group:
//! - **rotates** when someone who could read the current epoch's secret no longer
//!   can: the users whose devices were in the key groups of the families it was
//!   published in, and are in none of them now (a member left or was removed, or this
//!   user left a family). The new epoch's secret goes only where they are not, so
//!   what this user writes after it is closed to them; what they read stays read;
//! - **publishes** the secrets it holds in each sealed family it is a member of, once
//!   per epoch and family (remembered in the store).

use std::{collections::BTreeSet, sync::Arc};

use doran_client_core::sync::{HostError, StoreHost, personal_group};
use doran_protocol::{FamilyId, UserId};
use serde::{Deserialize, Serialize};

use crate::device::{Session, now_ms};

/// What the store remembers of the current epoch's readers.
const READERS_KEY: &str = "profile/readers";

fn published_key(family: FamilyId) -> String {
    format!("profile/published/{}", family.to_hex())
}

/// Everyone who could read the secret of `epoch`: the users whose devices were in the
/// key group of a family it was published in, since it was made.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Readers {
    epoch: u64,
    users: BTreeSet<UserId>,
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
    match tokio::task::spawn_blocking(move || pass_blocking(&host, me, personal_group(doc))).await {
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

fn pass_blocking(host: &StoreHost, me: UserId, group: FamilyId) -> Result<Pass, HostError> {
    let mut out = Pass::default();
    if !group.says_sealed() {
        return Ok(out);
    }
    let Some(epoch) = host.key_epoch(group) else {
        return Ok(out);
    };
    let store = host.store();
    // The sealed families this device can write to, and who reads each.
    let mut families = Vec::new();
    let mut readers = BTreeSet::new();
    for family in host.families()? {
        if family == group || !host.is_sealed(family) || host.key_epoch(family).is_none() {
            continue;
        }
        readers.extend(host.key_members(family).into_iter().map(|m| m.user));
        families.push(family);
    }
    readers.remove(&me);
    let before: Readers = store
        .get_meta(READERS_KEY)?
        .and_then(|b| postcard::from_bytes(&b).ok())
        .unwrap_or_default();
    if before.epoch == epoch && !before.users.is_subset(&readers) {
        let gone: Vec<String> = before
            .users
            .difference(&readers)
            .map(UserId::to_hex)
            .collect();
        tracing::info!(
            ?gone,
            "a reader of the profile left: the profile keys rotate"
        );
        host.rotate_keys(group)?;
        out.rotating = true;
        return Ok(out);
    }
    let secrets = host.key_secrets(group);
    let now = now_ms();
    for family in families {
        let done: Option<u64> = store
            .get_meta(&published_key(family))?
            .and_then(|b| postcard::from_bytes(&b).ok());
        if done.is_some_and(|d| d >= epoch) {
            continue;
        }
        match host.edit_family(family, |fd| fd.publish_profile_keys(&secrets, now)) {
            Ok(written) => {
                out.published += usize::from(written > 0);
                // An epoch always serialises.
                let bytes = postcard::to_allocvec(&epoch).unwrap_or_default();
                store.set_meta(&published_key(family), &bytes)?;
            }
            // A family whose document this device cannot open yet: next pass.
            Err(HostError::WaitingForKeys(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut users = readers;
    if before.epoch == epoch {
        users.extend(before.users);
    }
    let bytes = postcard::to_allocvec(&Readers { epoch, users }).unwrap_or_default();
    store.set_meta(READERS_KEY, &bytes)?;
    Ok(out)
}
