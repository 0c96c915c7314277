//! History entries: how a device added to a family's group reads what was sealed
//! before it joined.
//!
//! MLS gives a joining device the secret of the epoch it joins at, nothing earlier —
//! but a new member, or a newly linked device, is meant to see the family's photos,
//! missions and calendar from before. So a device whose Commit added devices appends,
//! right after it comes back, a *history entry* to the key log:
//!
//! ```text
//! history = "DRH" ‖ version (1) ‖ signature (64) ‖ envelope(epoch E, key log doc id, postcard [(epoch, secret)])
//! ```
//!
//! sealed under the new epoch `E` (so exactly the devices in the group at `E` open
//! it), holding the secrets of the epochs before `E` this device has, and signed
//! with this device's key (its leaf's signature key) over `"dorandoran history v1" ‖
//! envelope`. A device just added takes the secrets it lacks **only from the device
//! whose Commit added it** (the Welcome's sender): another member's device in the
//! group at `E` could otherwise hand it wrong secrets first, and the old chunks would
//! never open. A removed device is in no later epoch, so it opens no later history
//! entry: removal still locks it out of what comes after.

use doran_protocol::FamilyId;
use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};

use super::{GroupError, KeyRing, envelope};

/// What the signature of a history entry covers, before the envelope.
const SIGNED_CONTEXT: &[u8] = b"dorandoran history v1";

/// What a history entry starts with.
pub(super) const HISTORY_MAGIC: [u8; 4] = *b"DRH\x01";

/// At most this many past epochs' secrets in one history entry (a family rotating
/// weekly for twenty years stays far below).
const MAX_EPOCHS: usize = 4096;

/// The epoch a history entry is sealed under, read from its clear header.
pub(super) fn epoch_of_history(entry: &[u8]) -> Result<u64, GroupError> {
    let (_, envelope) = split(entry)?;
    envelope::epoch_of(envelope).map_err(|_| GroupError::Malformed("history entry"))
}

/// The signature and the envelope of a history entry.
fn split(entry: &[u8]) -> Result<(Signature, &[u8]), GroupError> {
    let rest = entry
        .strip_prefix(&HISTORY_MAGIC)
        .ok_or(GroupError::Malformed("history entry"))?;
    let (signature, envelope) = rest
        .split_first_chunk::<64>()
        .ok_or(GroupError::Malformed("history entry"))?;
    Ok((Signature::from_bytes(signature), envelope))
}

fn signed(envelope: &[u8]) -> Vec<u8> {
    [SIGNED_CONTEXT, envelope].concat()
}

impl KeyRing {
    /// A history entry for the family's key log: the secrets of every epoch before
    /// the current one this device holds, sealed under the current epoch.
    pub fn history(&self, family: FamilyId) -> Result<Vec<u8>, GroupError> {
        let (epoch, secret) = self.current_secret(family)?;
        let past: Vec<(u64, [u8; 32])> = self
            .group(family)?
            .secrets
            .range(..epoch)
            .rev()
            .take(MAX_EPOCHS)
            .map(|(e, s)| (*e, *s))
            .collect();
        let plain = postcard::to_allocvec(&past).map_err(|_| GroupError::Malformed("history"))?;
        let sealed = envelope::seal(secret, epoch, family.key_log(), &plain)?;
        let signature = self.signing_key().sign(&signed(&sealed));
        let mut entry = HISTORY_MAGIC.to_vec();
        entry.extend_from_slice(&signature.to_bytes());
        entry.extend_from_slice(&sealed);
        Ok(entry)
    }

    /// Takes the secrets of a history entry of the family's key log this device
    /// lacks; returns how many it took. Only an entry signed by the device whose
    /// Commit added this one counts (any other: [`GroupError::NotForThisDevice`], as
    /// one sealed under an epoch this device was not in); one that does not open
    /// (changed, or from outside the group) is [`GroupError::Refused`].
    pub fn take_history(&mut self, family: FamilyId, entry: &[u8]) -> Result<usize, GroupError> {
        let epoch = epoch_of_history(entry)?;
        let (signature, sealed) = split(entry)?;
        let group = self.group_mut(family)?;
        let Some(adder) = group.welcomed_by else {
            // In the group from its start: it has every secret history could bring.
            return Err(GroupError::NotForThisDevice);
        };
        let by_adder = VerifyingKey::from_bytes(&adder)
            .is_ok_and(|key| key.verify(&signed(sealed), &signature).is_ok());
        if !by_adder {
            return Err(GroupError::NotForThisDevice);
        }
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
