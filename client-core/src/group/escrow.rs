//! Escrow entries: how the recovery phrase alone brings a family's keys back.
//!
//! A device holding the user key (the user's first device, or one restored with the
//! phrase) appends, each time its family's group moves to a new epoch, an *escrow
//! entry* to the key log:
//!
//! ```text
//! escrow = "DRE" ‖ version (2) ‖ user id (16) ‖ envelope(epoch E, key log doc id,
//!          postcard ([(epoch, secret)], Option<GroupInfo of epoch E>))
//! K      = blake3::derive_key("dorandoran 2026-12 escrow key", user secret key ‖ family id)
//! ```
//!
//! the secrets of every epoch up to `E` it holds, sealed under a key only the user
//! key gives — that is, only the recovery phrase. A device restored from the phrase
//! with every other device lost reads the user's latest escrow entry of each family
//! and opens the family's history up to `E` with nobody else online. To write, it must
//! be in the group: a member's device adds it like any new device, or — when no other
//! Commit came after `E` — it joins by itself with an MLS *external commit* made from
//! the entry's GroupInfo (signed by the device that escrowed it, with the ratchet tree
//! and the epoch's external public key; see [`KeyRing::rejoin`]), so a family whose
//! only member lost every device writes again. Version 1 entries (secrets only) still
//! open. The relay, other members and the user's linked devices (which never hold the
//! user key) cannot open it.

use doran_protocol::{FamilyId, UserId};
use ed25519_dalek::SigningKey;

use super::{GroupError, KeyRing, envelope};

/// What an escrow entry starts with (version 2: with the epoch's GroupInfo).
pub(super) const ESCROW_MAGIC: [u8; 4] = *b"DRE\x02";
/// What an escrow entry made before GroupInfos were escrowed starts with.
const ESCROW_MAGIC_V1: [u8; 4] = *b"DRE\x01";

const KEY_CONTEXT: &str = "dorandoran 2026-12 escrow key";

/// Epochs' secrets as an entry holds them: (epoch, secret).
type Secrets = Vec<(u64, [u8; 32])>;

/// At most this many epochs' secrets in one escrow entry.
const MAX_EPOCHS: usize = 4096;

fn escrow_key(user_key: &SigningKey, family: FamilyId) -> [u8; 32] {
    let mut material = [0u8; 48];
    material[..32].copy_from_slice(&user_key.to_bytes());
    material[32..].copy_from_slice(&family.0);
    blake3::derive_key(KEY_CONTEXT, &material)
}

/// Whose escrow entry this is, and the epoch it goes up to (from its clear header).
pub(super) fn escrow_of(entry: &[u8]) -> Result<(UserId, u64), GroupError> {
    let bad = GroupError::Malformed("escrow entry");
    let rest = entry
        .strip_prefix(&ESCROW_MAGIC)
        .or_else(|| entry.strip_prefix(&ESCROW_MAGIC_V1))
        .ok_or(bad)?;
    let (user, sealed) = rest
        .split_first_chunk::<16>()
        .ok_or(GroupError::Malformed("escrow entry"))?;
    let epoch = envelope::epoch_of(sealed).map_err(|_| GroupError::Malformed("escrow entry"))?;
    Ok((UserId(*user), epoch))
}

impl KeyRing {
    /// An escrow entry of the family for this ring's user, sealed with `user_key`:
    /// the secrets of the epochs after `after` (all, with `None`) this device holds,
    /// up to the current one — a device escrows each epoch once, and a restored
    /// device takes the union of the user's entries — and the current epoch's
    /// GroupInfo, to join again from ([`KeyRing::rejoin`]). Returns the epoch it goes
    /// up to and the entry.
    pub fn escrow(
        &self,
        family: FamilyId,
        user_key: &SigningKey,
        after: Option<u64>,
    ) -> Result<(u64, Vec<u8>), GroupError> {
        let group = self.group(family)?;
        let epoch = group.mls.epoch().as_u64();
        let from = after.map_or(0, |a| a.saturating_add(1));
        let secrets: Secrets = group
            .secrets
            .range(from..=epoch)
            .rev()
            .take(MAX_EPOCHS)
            .map(|(e, s)| (*e, *s))
            .collect();
        let info = self.group_info(family)?;
        let plain = postcard::to_allocvec(&(secrets, Some(info)))
            .map_err(|_| GroupError::Malformed("escrow"))?;
        let sealed = envelope::seal(
            &escrow_key(user_key, family),
            epoch,
            family.key_log(),
            &plain,
        )?;
        let mut entry = ESCROW_MAGIC.to_vec();
        entry.extend_from_slice(&self.user().0);
        entry.extend_from_slice(&sealed);
        Ok((epoch, entry))
    }

    /// Takes the secrets of an escrow entry of this ring's user that this device
    /// lacks (into its group, or — not in the group yet — kept to open what they
    /// open). Another user's entry is [`GroupError::NotForThisDevice`]; one that does
    /// not open with `user_key` is [`GroupError::Refused`].
    pub fn take_escrow(
        &mut self,
        family: FamilyId,
        entry: &[u8],
        user_key: &SigningKey,
    ) -> Result<Escrowed, GroupError> {
        let (user, epoch) = escrow_of(entry)?;
        if user != self.user() {
            return Err(GroupError::NotForThisDevice);
        }
        let sealed = &entry[ESCROW_MAGIC.len() + 16..];
        let plain = envelope::open(
            &escrow_key(user_key, family),
            epoch,
            family.key_log(),
            sealed,
        )
        .map_err(|e| GroupError::Refused(e.to_string()))?;
        let malformed = |_| GroupError::Malformed("escrow");
        let (secrets, group_info): (Secrets, Option<Vec<u8>>) =
            if entry.starts_with(&ESCROW_MAGIC_V1) {
                // All of it: a version 2 entry relabelled 1 (the label is not sealed)
                // is refused rather than read without its GroupInfo.
                match postcard::take_from_bytes(&plain).map_err(malformed)? {
                    (secrets, []) => (secrets, None),
                    _ => return Err(GroupError::Malformed("escrow")),
                }
            } else {
                postcard::from_bytes(&plain).map_err(malformed)?
            };
        let held = match self.groups.get_mut(&family) {
            Some(g) => &mut g.secrets,
            None => self.former.entry(family).or_default(),
        };
        let mut taken = 0;
        for (e, s) in secrets.into_iter().take(MAX_EPOCHS) {
            if e <= epoch && !held.contains_key(&e) {
                held.insert(e, s);
                taken += 1;
            }
        }
        Ok(Escrowed {
            taken,
            group_info: group_info.map(|info| (epoch, info)),
        })
    }
}

/// What [`KeyRing::take_escrow`] took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escrowed {
    /// How many epochs' secrets this device lacked.
    pub taken: usize,
    /// The GroupInfo of the entry's epoch, to join again from ([`KeyRing::rejoin`]).
    pub group_info: Option<(u64, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use doran_protocol::DeviceId;

    use super::*;

    /// An entry written before GroupInfos were escrowed (version 1: secrets only)
    /// still gives its secrets back, with no GroupInfo to join from.
    #[test]
    fn a_version_1_entry_still_opens() {
        let user = UserId::random();
        let user_key = SigningKey::from_bytes(&rand::random());
        let family = FamilyId::random();
        let secrets: Secrets = vec![(0, [7; 32]), (1, [8; 32])];
        let plain = postcard::to_allocvec(&secrets).expect("encode");
        let sealed = envelope::seal(&escrow_key(&user_key, family), 1, family.key_log(), &plain)
            .expect("seal");
        let mut entry = ESCROW_MAGIC_V1.to_vec();
        entry.extend_from_slice(&user.0);
        entry.extend_from_slice(&sealed);
        assert_eq!(escrow_of(&entry).expect("header"), (user, 1));

        let mut ring = KeyRing::new(
            user,
            DeviceId::random(),
            SigningKey::from_bytes(&rand::random()),
        );
        let taken = ring.take_escrow(family, &entry, &user_key).expect("opens");
        assert_eq!(
            taken,
            Escrowed {
                taken: 2,
                group_info: None
            }
        );
    }

    /// The version byte is not sealed: an entry with a GroupInfo relabelled as
    /// version 1 is refused, not read without it.
    #[test]
    fn a_version_2_entry_relabelled_1_is_refused() {
        let user = UserId::random();
        let user_key = SigningKey::from_bytes(&rand::random());
        let family = FamilyId::random();
        let mut phone = KeyRing::new(
            user,
            DeviceId::random(),
            SigningKey::from_bytes(&rand::random()),
        );
        phone.create(family).expect("create");
        let (_, mut entry) = phone.escrow(family, &user_key, None).expect("escrow");
        let mut restored = KeyRing::new(
            user,
            DeviceId::random(),
            SigningKey::from_bytes(&rand::random()),
        );
        assert!(
            restored
                .take_escrow(family, &entry, &user_key)
                .expect("opens")
                .group_info
                .is_some()
        );
        entry[3] = 1;
        assert!(matches!(
            restored.take_escrow(family, &entry, &user_key),
            Err(GroupError::Malformed(_))
        ));
    }
}
