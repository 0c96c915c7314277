//! Joining a family's group again by oneself: an MLS external commit (RFC 9420,
//! §12.4.3.2) made from a GroupInfo the user's own device escrowed.
//!
//! A device restored from the recovery phrase reads the family's history from the
//! escrow, but to write it must be in the group, and only a device already in it can
//! add it. When every device of every member is gone — a family of one whose phone
//! was lost, the common case — nobody ever will. The escrow entry therefore also holds
//! the epoch's GroupInfo (signed by the escrowing device, with the ratchet tree and
//! the epoch's external public key), and the restored device, holding the user key
//! that opens it, joins with an external commit **if no other Commit came after that
//! epoch** (the log decides, as for every Commit: if another device's Commit for the
//! epoch came first, this one is stale for everyone and the device is added the usual
//! way).
//!
//! What the other devices accept (see `apply_commit`): an external commit whose new
//! leaf is a device vouched for as a device to add — by what they know, or by the
//! certificate chain the commit carries, as for an Add — and whose only other proposal
//! may remove devices of the joiner's own user. The relay, which holds neither the
//! GroupInfo (sealed to the user key) nor a certified device key, cannot make one.

use doran_protocol::FamilyId;
use openmls::{
    messages::group_info::VerifiableGroupInfo,
    prelude::{MlsGroup, MlsMessageBodyIn},
};
use openmls_traits::OpenMlsProvider as _;

use super::{
    Commit, GroupError, KeyRing, KnownDevices, Need, Processed, family_of, identity_of,
    join_config, message_in, protocol_message, refused, split_commit_entry, to_bytes,
};
use super::{EntrySigner, commit_entry, provider::DeviceSigner};

/// This device's external commit, waiting to come back in the log.
pub(super) struct Joining {
    /// The group as it will be once the commit is merged.
    pub(super) mls: MlsGroup,
    /// The commit as appended.
    pub(super) commit: Vec<u8>,
    /// The epoch the commit was made in.
    pub(super) epoch: u64,
}

impl KeyRing {
    /// The GroupInfo of the family's current epoch (signed by this device, with the
    /// ratchet tree): what a device of this user restored from the phrase joins again
    /// from. Goes into the escrow entry, sealed to the user key.
    pub fn group_info(&self, family: FamilyId) -> Result<Vec<u8>, GroupError> {
        let group = self.group(family)?;
        let info = group
            .mls
            .export_group_info(self.provider.crypto(), &DeviceSigner(&self.key), true)
            .map_err(refused)?;
        to_bytes(&info)
    }

    /// Whether this device's external commit for the family waits for the log.
    pub fn is_joining(&self, family: FamilyId) -> bool {
        self.joining.contains_key(&family)
    }

    /// Joins the family's group by itself from `group_info` (of the epoch the log is
    /// at: see the module docs), with an external commit carrying this device's
    /// user's certificates (`known` must vouch for this device). Every device already
    /// in the group must be vouched for by `known`, as for a Welcome. Pending until it
    /// comes back in the log ([`KeyRing::process`]): first for its epoch, the device
    /// is in; beaten by another Commit, the attempt is dropped.
    pub fn rejoin(
        &mut self,
        family: FamilyId,
        group_info: &[u8],
        known: &KnownDevices,
    ) -> Result<Commit, GroupError> {
        if self.groups.contains_key(&family) {
            return Err(GroupError::AlreadyExists(family));
        }
        if self.joining.contains_key(&family) {
            return Err(GroupError::CommitPending);
        }
        let me = self.credential();
        known.check_leaf(&me.credential, me.signature_key.as_slice(), Need::Active)?;
        let MlsMessageBodyIn::GroupInfo(info) = message_in(group_info, "group info")? else {
            return Err(GroupError::Malformed("group info"));
        };
        if family_of(info.group_id())? != family {
            return Err(GroupError::WrongGroup);
        }
        let epoch = info.epoch().as_u64();
        let aad = known.carried_chains(&std::iter::once(self.user).collect())?;
        let before = self.provider.save();
        let made = self.external_commit(info, aad, known);
        match made {
            Ok((mls, commit)) => {
                let signer = EntrySigner {
                    family,
                    device: self.device,
                    key: &self.key,
                };
                let entry = commit_entry(&signer, &commit, None)?;
                self.joining.insert(family, Joining { mls, commit, epoch });
                Ok(Commit {
                    epoch: epoch + 1,
                    entry,
                })
            }
            Err(e) => {
                // The group openmls wrote for the attempt goes with it.
                self.provider.reset(before);
                Err(e)
            }
        }
    }

    fn external_commit(
        &self,
        info: VerifiableGroupInfo,
        aad: Vec<u8>,
        known: &KnownDevices,
    ) -> Result<(MlsGroup, Vec<u8>), GroupError> {
        let signer = DeviceSigner(&self.key);
        let (mls, bundle) = MlsGroup::external_commit_builder()
            .with_config(join_config())
            .with_aad(aad)
            // As for a Welcome: a family whose quietest device has not committed for
            // months still takes this one.
            .skip_lifetime_validation()
            .build_group(&self.provider, info, self.credential())
            .map_err(refused)?
            .load_psks(self.provider.storage())
            .map_err(refused)?
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &signer,
                |_| true,
            )
            .map_err(refused)?
            .finalize(&self.provider)
            .map_err(refused)?;
        for member in mls.members() {
            match known.check_leaf(&member.credential, &member.signature_key, Need::Ever) {
                // Someone neither a member nor invited, due to be removed by anyone:
                // taken as it is (see `stage_welcome`).
                Err(e) if e.is_wait() && known.is_outsider(&identity_of(&member.credential)?.0) => {
                }
                other => {
                    other?;
                }
            }
        }
        Ok((mls, to_bytes(&bundle.into_commit())?))
    }

    /// A Commit of the family's log while this device's external commit waits: its
    /// own → it is in the group ([`Processed::Accepted`]); one of an earlier epoch,
    /// or one no device `known` knows signed (the relay's: the devices in the group
    /// refuse it too) → [`Processed::Stale`], the attempt still waits; one a known
    /// device signed for this epoch or a later one → the attempt is dropped
    /// ([`Processed::JoinLost`]: the device is not in the group, and may join from
    /// this Commit's Welcome).
    pub(super) fn process_joining(
        &mut self,
        family: FamilyId,
        entry: &[u8],
        known: &KnownDevices,
    ) -> Result<Processed, GroupError> {
        let (bytes, _) = split_commit_entry(entry)?;
        let message = protocol_message(bytes)?;
        if family_of(message.group_id())? != family {
            return Err(GroupError::WrongGroup);
        }
        let joining = self
            .joining
            .get(&family)
            .ok_or(GroupError::UnknownFamily(family))?;
        if message.epoch().as_u64() < joining.epoch {
            return Ok(Processed::Stale);
        }
        let mine = joining.commit == bytes;
        if !mine && !super::entry_signed_by_known(family, entry, known) {
            return Ok(Processed::Stale);
        }
        let Some(mut joining) = self.joining.remove(&family) else {
            return Err(GroupError::UnknownFamily(family));
        };
        if !mine {
            if let Err(e) = joining.mls.delete(self.provider.storage()) {
                tracing::warn!(%family, error = ?e, "a lost external join's state was not deleted");
            }
            return Ok(Processed::JoinLost);
        }
        if let Err(e) = joining.mls.merge_pending_commit(&self.provider) {
            // Kept as it was: the same entry is tried again.
            self.joining.insert(family, joining);
            return Err(refused(e));
        }
        let epoch = self.install(family, joining.mls, None)?;
        Ok(Processed::Accepted { epoch })
    }
}
