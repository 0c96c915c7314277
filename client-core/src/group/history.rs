//! History entries: how a device added to a family's group reads what was sealed
//! before it joined.
//!
//! MLS gives a joining device the secret of the epoch it joins at, nothing earlier —
//! but a new member, or a newly linked device, is meant to see the family's photos,
//! missions and calendar from before. So a device whose Commit added devices appends,
//! right after it comes back, a *history entry* to the key log:
//!
//! ```text
//! history = "DRH" ‖ version (1) ‖ envelope(epoch E, key log doc id, postcard [(epoch, secret)])
//! ```
//!
//! sealed under the new epoch `E` (so exactly the devices in the group at `E` open
//! it) and holding the secrets of the epochs before `E` this device has. The devices
//! just added take the secrets they lack. A removed device is in no later epoch, so
//! it opens no later history entry: removal still locks it out of what comes after.

use doran_protocol::FamilyId;

use super::{GroupError, KeyRing, envelope};

/// What a history entry starts with.
pub(super) const HISTORY_MAGIC: [u8; 4] = *b"DRH\x01";

/// At most this many past epochs' secrets in one history entry (a family rotating
/// weekly for twenty years stays far below).
const MAX_EPOCHS: usize = 4096;

/// The epoch a history entry is sealed under, read from its clear header.
pub(super) fn epoch_of_history(entry: &[u8]) -> Result<u64, GroupError> {
    let envelope = entry
        .strip_prefix(&HISTORY_MAGIC)
        .ok_or(GroupError::Malformed("history entry"))?;
    envelope::epoch_of(envelope).map_err(|_| GroupError::Malformed("history entry"))
}

impl KeyRing {
    /// A history entry for the family's key log: the secrets of every epoch before
    /// the current one this device holds, sealed under the current epoch.
    pub fn history(&self, family: FamilyId) -> Result<Vec<u8>, GroupError> {
        let group = self.group(family)?;
        let epoch = group.mls.epoch().as_u64();
        let secret = group
            .secrets
            .get(&epoch)
            .ok_or(GroupError::UnknownFamily(family))?;
        let past: Vec<(u64, [u8; 32])> = group
            .secrets
            .range(..epoch)
            .rev()
            .take(MAX_EPOCHS)
            .map(|(e, s)| (*e, *s))
            .collect();
        let plain = postcard::to_allocvec(&past).map_err(|_| GroupError::Malformed("history"))?;
        let sealed = envelope::seal(secret, epoch, family.key_log(), &plain)?;
        let mut entry = HISTORY_MAGIC.to_vec();
        entry.extend_from_slice(&sealed);
        Ok(entry)
    }

    /// Takes the secrets of a history entry of the family's key log this device
    /// lacks; returns how many it took. An entry sealed under an epoch this device was
    /// not in says [`GroupError::NotForThisDevice`]; one that does not open (changed,
    /// or from outside the group) is [`GroupError::Refused`].
    pub fn take_history(&mut self, family: FamilyId, entry: &[u8]) -> Result<usize, GroupError> {
        let epoch = epoch_of_history(entry)?;
        let sealed = &entry[HISTORY_MAGIC.len()..];
        let group = self.group_mut(family)?;
        let secret = *group
            .secrets
            .get(&epoch)
            .ok_or(GroupError::NotForThisDevice)?;
        let plain = envelope::open(&secret, epoch, family.key_log(), sealed)
            .map_err(|e| GroupError::Refused(e.to_string()))?;
        let past: Vec<(u64, [u8; 32])> =
            postcard::from_bytes(&plain).map_err(|_| GroupError::Malformed("history"))?;
        let mut taken = 0;
        for (e, s) in past.into_iter().take(MAX_EPOCHS) {
            // Only epochs before the one it is sealed under: it cannot rewrite a key
            // this device got from MLS itself.
            if e < epoch && !group.secrets.contains_key(&e) {
                group.secrets.insert(e, s);
                taken += 1;
            }
        }
        Ok(taken)
    }
}
