//! The family's key group: which devices can read the family's documents, and the
//! keys they seal them with (issue 18, *End-to-end encryption* in `docs/security.md`).
//!
//! Each family is an MLS group (RFC 9420, `openmls`, ciphersuite
//! `MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519`) whose members are devices:
//! one leaf per device, signed by the device key the relay knows it by. Every epoch's
//! exporter secret derives the key of each document of the family
//! ([`envelope`]); an epoch ends with every Commit (a device added, a device removed,
//! a device refreshing its own leaf), so a removed member or a revoked device cannot
//! derive the keys of what is written after it left, and a device whose state was
//! copied stops reading once its leaf is refreshed.
//!
//! Sans-IO, like the sync machine: the [`KeyRing`] takes the entries of the family's
//! key log in the order the relay's log gives them (Commits, Welcomes, key packages;
//! [`classify`] tells them apart) and returns the messages to append; it never talks
//! to the network. **The log's order decides**: the first Commit in the log for an
//! epoch is that epoch's Commit on every device, and any later one for the same epoch
//! is stale and ignored by all ([`Processed::Stale`]). A Commit this device makes is
//! *pending* until it comes back in the log: first for its epoch, the group moves on
//! ([`Processed::Accepted`]); beaten by another device's, it is dropped
//! ([`Processed::Superseded`]) and the change is made again on top. The relay needs no
//! MLS and no epoch numbers for this — only the total order its logs already give.
//!
//! **Who may be in the group is the device's decision, not the relay's.** Every leaf a
//! Commit or a Welcome brings — an added device, a refreshed leaf — must be vouched for
//! by the [`KnownDevices`] the caller passes (the family's members and their devices
//! as this device knows them). A relay that slips in a device of its own, or changes a
//! device's key, is refused with [`GroupError::NotVouched`] and nothing changes.
//!
//! Where the [`KnownDevices`] come from: certificate chains from each member's user
//! key to their devices ([`certified_devices`]; `certs.rs`).
//!
//! The key ring keeps the secret of every epoch it has been in, so chunks sealed in
//! earlier epochs keep opening (a document's log spans epochs until it is compacted);
//! [`KeyRing::forget_before`] drops them once a snapshot of a later epoch covers them
//! (forward secrecy).

mod card;
mod certs;
mod envelope;
mod escrow;
mod history;
mod provider;
mod rejoin;
pub mod safety;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use doran_protocol::{DeviceId, DocId, FamilyId, PublicKey, UserId};
use ed25519_dalek::SigningKey;
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, GroupId, KeyPackage, LeafNodeIndex,
    LeafNodeParameters, MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn,
    MlsMessageIn, MlsMessageOut, ProcessedMessageContent, Proposal, ProtocolMessage,
    ProtocolVersion, StagedWelcome,
    tls_codec::{Deserialize as _, Serialize as _},
};
use openmls_traits::OpenMlsProvider as _;
use serde::{Deserialize, Serialize};

pub use card::{CardContext, CardError, CardReaders, InviteCard};
pub use certs::{certified_devices, certify};
pub use envelope::{EnvelopeError, MAGIC, OVERHEAD, epoch_of};
pub use escrow::Escrowed;
use provider::{DeviceSigner, Provider};

use crate::keys::RandomnessError;

/// The ciphersuite of every family group: X25519, ChaCha20-Poly1305, SHA-256, Ed25519
/// (the device keys are ed25519 already).
pub const CIPHERSUITE: Ciphersuite =
    Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;

/// What a leaf's credential says: `doran/1 ‖ user id ‖ device id`.
const IDENTITY_PREFIX: &[u8] = b"doran/1";
/// The exporter label of an epoch's secret.
const EPOCH_LABEL: &str = "doran epoch secret";
/// The saved key ring's format.
const SAVE_VERSION: u8 = 1;
/// How long an offered key package must stay valid to be added (seconds): four
/// weeks, so a device reading the adding Commit weeks later still takes it.
pub const OFFERED_LIFETIME_LEFT_S: u64 = 28 * 24 * 60 * 60;

/// Why the key ring did not do what it was asked. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// This device holds no group for the family (never joined, or removed).
    #[error("no key group for family {0}")]
    UnknownFamily(FamilyId),
    /// The family already has a group on this device.
    #[error("the family {0} already has a key group")]
    AlreadyExists(FamilyId),
    /// Bytes that are not the MLS message they were handed in as.
    #[error("not a {0}")]
    Malformed(&'static str),
    /// A message of another family's group.
    #[error("a message of another group")]
    WrongGroup,
    /// A leaf for a device the caller's [`KnownDevices`] does not vouch for (unknown
    /// device, another key, another user): what a relay slipping in a device of its
    /// own looks like.
    #[error("device {device} of user {user} is not one this device knows with that key")]
    NotVouched {
        /// The user the leaf claims.
        user: String,
        /// The device the leaf claims.
        device: String,
    },
    /// A leaf whose credential is not a Dorandoran device's.
    #[error("a leaf that is not a Dorandoran device")]
    NotADevice,
    /// A Commit this device does not accept although it is authentic: it removes a
    /// device of another member that is still vouched for, or carries a proposal the
    /// family's groups never use (pre-shared keys, re-initialisation, external
    /// senders, extensions; an external join is only ever a device joining by itself,
    /// `rejoin.rs`). Every honest device refuses it alike.
    #[error("a commit that is not allowed: {0}")]
    NotAllowed(&'static str),
    /// A Commit of this device waits to come back in the log; one at a time.
    #[error("a commit of this device is still waiting for the log")]
    CommitPending,
    /// This device's own Commit came back from the log, but the key ring no longer
    /// holds it as pending (it was restored from a save made before the Commit): the
    /// group moves on without this device, which must be added anew. Save the key
    /// ring before appending a Commit to the log.
    #[error("this device's own commit came back, but the key ring no longer holds it")]
    OwnCommitLost,
    /// A Commit for an epoch the group has not reached: the log skipped one.
    #[error("a commit for epoch {got} while the group is at {at}")]
    FromTheFuture {
        /// The group's epoch.
        at: u64,
        /// The Commit's.
        got: u64,
    },
    /// Asked to remove a device that is not in the group.
    #[error("device {} is not in the group", .0.device)]
    NotInGroup(GroupMember),
    /// A Welcome for none of this device's key packages.
    #[error("a welcome that is not for this device")]
    NotForThisDevice,
    /// openmls refused the operation or the message (a bad signature, a Commit for
    /// another epoch, a message this device cannot decrypt…).
    #[error("refused by the group: {0}")]
    Refused(String),
    /// The operating system gave no randomness.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
    /// Saved key ring bytes that do not restore.
    #[error("the saved key ring does not restore: {0}")]
    Restore(String),
}

impl GroupError {
    /// Whether the entry may be taken later (retry it, and process nothing after it
    /// meanwhile): this device lacks a certificate that others may already have.
    /// Every other refusal of an entry is reached alike by every honest device — it
    /// is skipped, and the next Commit of that epoch in the log comes first.
    pub fn is_wait(&self) -> bool {
        matches!(self, GroupError::NotVouched { .. })
    }
}

fn refused(e: impl std::fmt::Debug) -> GroupError {
    GroupError::Refused(format!("{e:?}"))
}

/// The family's members' devices as this device knows them: the only devices it lets
/// into a family's group, each with the key it must sign its leaf with.
///
/// A device's standing does not end its past: a device certified once and revoked
/// since (`insert_revoked`) is still taken as the author of a Commit and as a leaf
/// already in the group — a Commit it made before its revocation means the same to a
/// device that reads it a week later — but is never added, and may be removed by
/// anyone. Removing another member's device needs it revoked, or its user gone from
/// the family ([`KnownDevices::set_members`]).
#[derive(Debug, Clone, Default)]
pub struct KnownDevices {
    /// Keyed by user and device: a device id claimed under two users (a hostile
    /// member's user key certifying another member's device id) is two entries, and
    /// never replaces the real one.
    devices: BTreeMap<(UserId, DeviceId), Standing>,
    /// The family's members now, if told; otherwise every user with a device here.
    members: Option<std::collections::BTreeSet<UserId>>,
    /// Users a pending invite of the family names: their devices are added (the
    /// inviter's device adds them as it invites, from the packages they published)
    /// and not removed while the invite is open.
    invited: std::collections::BTreeSet<UserId>,
    /// Each user's key and certificates as vouched above: a Commit adding a user's
    /// devices carries them, so a device reading it later — when that user is no
    /// longer a member or invited — reaches the same verdict.
    chains: BTreeMap<UserId, certs::Chain>,
    /// Key packages published on the relay by devices this device may add.
    offered: Vec<Vec<u8>>,
    /// Each user's devices the relay lists as revoked (whether a chain reached them
    /// or not): a Commit's carried certificates never vouch for them.
    revoked_ids: BTreeMap<UserId, std::collections::BTreeSet<DeviceId>>,
    /// The users whose devices *this* device may add (`None`: any vouched for): see
    /// [`KnownDevices::set_addable`]. Never consulted for another device's Commit.
    addable: Option<std::collections::BTreeSet<UserId>>,
}

#[derive(Debug, Clone, Copy)]
struct Standing {
    key: PublicKey,
    revoked: bool,
}

/// How far a leaf must be vouched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Certified and not revoked: a device being added.
    Active,
    /// Certified, revoked since or not: the author of a Commit, a leaf already there.
    Ever,
}

impl KnownDevices {
    /// Nobody yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Vouches for `device` of `user`, signing with `key`.
    pub fn insert(&mut self, user: UserId, device: DeviceId, key: PublicKey) {
        self.devices.insert(
            (user, device),
            Standing {
                key,
                revoked: false,
            },
        );
    }

    /// Knows `device` of `user` (with `key`) as certified once and revoked since.
    pub fn insert_revoked(&mut self, user: UserId, device: DeviceId, key: PublicKey) {
        self.devices
            .insert((user, device), Standing { key, revoked: true });
    }

    /// The family's members now: devices of anyone else may be removed by anyone.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = UserId>) {
        self.members = Some(members.into_iter().collect());
    }

    /// Users the family's pending invites name: this device adds their devices and
    /// does not remove them (another device may: they are not members, and every
    /// device must reach the same verdict on a Remove whenever it reads it).
    pub fn set_invited(&mut self, invited: impl IntoIterator<Item = UserId>) {
        self.invited = invited.into_iter().collect();
    }

    /// The only users whose devices this device adds to the group (its own Commits):
    /// those the family itself names — in the family's sealed document, which the
    /// relay cannot write — or whom this device invited. A relay listing a member of
    /// its own invention then gets no device of that "member" added, and so reads
    /// nothing. Another device's Commit is judged without it (every device must reach
    /// the same verdict on a Commit whatever it has read of the document).
    pub fn set_addable(&mut self, users: impl IntoIterator<Item = UserId>) {
        self.addable = Some(users.into_iter().collect());
    }

    /// Whether this device may add `user`'s devices (see [`KnownDevices::set_addable`]).
    fn may_add(&self, user: &UserId) -> bool {
        self.addable.as_ref().is_none_or(|a| a.contains(user))
    }

    /// A key package a device published on the relay: added with the devices that
    /// asked in the key log, if it is vouched for and not in the group yet.
    pub fn offer(&mut self, package: Vec<u8>) {
        self.offered.push(package);
    }

    /// The key packages offered.
    pub fn offered(&self) -> &[Vec<u8>] {
        &self.offered
    }

    /// The devices of `user` this device knows as revoked.
    fn revoked_of(&self, user: UserId) -> impl Iterator<Item = DeviceId> + '_ {
        self.devices
            .iter()
            .filter(move |((u, _), s)| *u == user && s.revoked)
            .map(|((_, d), _)| *d)
            .chain(self.revoked_ids.get(&user).into_iter().flatten().copied())
    }

    /// Whether `user` is neither a member nor invited: any device may remove their
    /// devices, and a device joining a group where one still is takes it as it is.
    fn is_outsider(&self, user: &UserId) -> bool {
        !self.is_member(user) && !self.invited.contains(user)
    }

    fn is_member(&self, user: &UserId) -> bool {
        match &self.members {
            Some(members) => members.contains(user),
            None => self.devices.keys().any(|(u, _)| u == user),
        }
    }

    /// Whether a leaf claiming `user`'s `device` with `key` is vouched for as `need`.
    fn vouches(&self, user: &UserId, device: &DeviceId, key: &[u8], need: Need) -> bool {
        self.devices.get(&(*user, *device)).is_some_and(|s| {
            s.key.as_bytes().as_slice() == key && (need == Need::Ever || !s.revoked)
        })
    }

    /// Whether `member`'s device should leave the family's group: it is revoked, or
    /// its user is no longer in the family (what every device lets anyone remove).
    pub fn is_gone(&self, member: &GroupMember) -> bool {
        if self.invited.contains(&member.user) {
            // An invitee's device stays while the invite is open — unless revoked.
            return self.revoked_of(member.user).any(|d| d == member.device);
        }
        self.may_remove(member).is_ok()
    }

    /// Whether another member's device may be removed: it is revoked, or its user is
    /// no longer in the family. `NotVouched` when this device knows nothing of it yet
    /// (it waits for the certificates rather than judge), `NotAllowed` for a device
    /// still in good standing.
    fn may_remove(&self, gone: &GroupMember) -> Result<(), GroupError> {
        if !self.is_member(&gone.user) {
            return Ok(());
        }
        match self.devices.get(&(gone.user, gone.device)) {
            Some(s) if s.revoked => Ok(()),
            Some(_) => Err(GroupError::NotAllowed(
                "removing another member's device that is still vouched for",
            )),
            None => Err(GroupError::NotVouched {
                user: gone.user.to_string(),
                device: gone.device.to_string(),
            }),
        }
    }

    /// The leaf's claim checked: its credential names a device this device knows,
    /// with the key the leaf is signed with, as `need` asks.
    fn check_leaf(
        &self,
        credential: &openmls::prelude::Credential,
        key: &[u8],
        need: Need,
    ) -> Result<(UserId, DeviceId), GroupError> {
        let (user, device) = identity_of(credential)?;
        if self.vouches(&user, &device, key, need) {
            Ok((user, device))
        } else {
            Err(GroupError::NotVouched {
                user: user.to_string(),
                device: device.to_string(),
            })
        }
    }
}

impl KnownDevices {
    /// A new leaf checked — a device a Commit adds, or an external commit's joiner
    /// (`rejoin.rs`): a device this device knows as certified, revoked since or not,
    /// like the author of any Commit; or, for a user it knows nothing of, one the
    /// certificates the Commit carries in its authenticated data (`carried`) certified.
    /// A Commit read long after — the added user left or turned the invite down, the
    /// device was lost and revoked — gets the verdict it got when new (a device
    /// offline meanwhile used to wait for ever at such an Add, and never read the
    /// family again). A revoked device let in is then removed like any revoked device.
    fn check_new_leaf(
        &self,
        credential: &openmls::prelude::Credential,
        key: &[u8],
        carried: &[certs::Chain],
    ) -> Result<(UserId, DeviceId), GroupError> {
        match self.check_leaf(credential, key, Need::Ever) {
            Err(e) if e.is_wait() => {
                let (user, device) = identity_of(credential)?;
                if self.carried_chain_certifies(carried, user, device, key) {
                    Ok((user, device))
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }
}

/// A last-resort key package of this device ([`KeyRing::last_resort_package`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastResort {
    /// The package, as published.
    pub package: Vec<u8>,
    /// Its hash reference, to forget its private half by.
    pub hash: Vec<u8>,
}

/// A device in a family's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupMember {
    /// Its user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
}

/// A Commit this device made, to append to the family's key log.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The epoch the group moves to when it comes back first for its epoch.
    pub epoch: u64,
    /// The key log entry: the Commit, and with it the Welcome for the devices it adds
    /// — one entry, so a Welcome is only ever taken from the Commit that won its
    /// epoch, and a device joining from it misses no Commit in between.
    pub entry: Vec<u8>,
}

/// What a Commit entry starts with: `DRK` and the format's version (2); then the
/// committing device's id (16 bytes) and its signature (64) over
/// `key_log_commit_message(family, device, body)`, and the body: the Commit's length
/// (u32 BE), the Commit, and the Welcome (empty when it adds nobody). A device
/// outside the group cannot check the Commit (it is encrypted to the group), but it
/// can check who signed the entry: the relay cannot make one that counts.
const COMMIT_MAGIC: [u8; 4] = *b"DRK\x02";
/// Commit entries made before they were signed: the body alone.
const COMMIT_MAGIC_V1: [u8; 4] = *b"DRK\x01";
/// The signer's id and signature in a version 2 entry.
const ENTRY_SIGNER_LEN: usize = 16 + 64;

/// The device that signs the Commit entries it makes (see [`COMMIT_MAGIC`]).
pub(crate) struct EntrySigner<'a> {
    family: FamilyId,
    device: DeviceId,
    key: &'a SigningKey,
}

fn commit_entry(
    signer: &EntrySigner<'_>,
    commit: &[u8],
    welcome: Option<&[u8]>,
) -> Result<Vec<u8>, GroupError> {
    use ed25519_dalek::Signer as _;
    let len = u32::try_from(commit.len()).map_err(|_| GroupError::Malformed("commit"))?;
    let welcome = welcome.unwrap_or_default();
    let mut body = Vec::with_capacity(4 + commit.len() + welcome.len());
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(commit);
    body.extend_from_slice(welcome);
    let signature = signer
        .key
        .sign(&doran_protocol::signing::key_log_commit_message(
            &signer.family.0,
            &signer.device,
            &body,
        ));
    let mut entry = Vec::with_capacity(4 + ENTRY_SIGNER_LEN + body.len());
    entry.extend_from_slice(&COMMIT_MAGIC);
    entry.extend_from_slice(&signer.device.0);
    entry.extend_from_slice(&signature.to_bytes());
    entry.extend_from_slice(&body);
    Ok(entry)
}

/// Who signed a version 2 Commit entry: the device and its signature.
type EntrySignature = (DeviceId, [u8; 64]);

/// The body of a Commit entry (after the signer, in version 2), and the signer.
fn entry_body(entry: &[u8]) -> Result<(&[u8], Option<EntrySignature>), GroupError> {
    let bad = || GroupError::Malformed("commit entry");
    if let Some(rest) = entry.strip_prefix(&COMMIT_MAGIC) {
        let (device, rest) = rest.split_first_chunk::<16>().ok_or_else(bad)?;
        let (signature, body) = rest.split_first_chunk::<64>().ok_or_else(bad)?;
        return Ok((body, Some((DeviceId(*device), *signature))));
    }
    let body = entry.strip_prefix(&COMMIT_MAGIC_V1).ok_or_else(bad)?;
    Ok((body, None))
}

/// The Commit and the Welcome (if any) of a Commit entry.
fn split_commit_entry(entry: &[u8]) -> Result<(&[u8], Option<&[u8]>), GroupError> {
    let bad = GroupError::Malformed("commit entry");
    let (rest, _) = entry_body(entry)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or(bad)?;
    let len = usize::try_from(u32::from_be_bytes(*len))
        .map_err(|_| GroupError::Malformed("commit entry"))?;
    if rest.len() < len {
        return Err(GroupError::Malformed("commit entry"));
    }
    let (commit, welcome) = rest.split_at(len);
    Ok((commit, (!welcome.is_empty()).then_some(welcome)))
}

/// The device a Commit entry names as its signer (unchecked: see
/// [`entry_signed_by_known`]).
pub fn entry_signer(entry: &[u8]) -> Option<DeviceId> {
    entry_body(entry).ok()?.1.map(|(device, _)| device)
}

/// Whether a Commit entry of `family`'s key log is signed by a device `known` knows
/// (revoked since or not): what a device outside the group — which cannot check the
/// Commit itself — goes by. An entry made before entries were signed, or signed by a
/// device nobody vouches for (the relay's), does not count for it.
pub fn entry_signed_by_known(family: FamilyId, entry: &[u8], known: &KnownDevices) -> bool {
    let Ok((body, Some((device, signature)))) = entry_body(entry) else {
        return false;
    };
    let message = doran_protocol::signing::key_log_commit_message(&family.0, &device, body);
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    known
        .devices
        .iter()
        .filter(|((_, d), _)| *d == device)
        .any(|(_, standing)| {
            ed25519_dalek::VerifyingKey::from_bytes(standing.key.as_bytes())
                .is_ok_and(|key| key.verify_strict(&message, &signature).is_ok())
        })
}

/// What a Commit from the key log did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Another device's Commit: the group moved to this epoch.
    Advanced {
        /// The new epoch.
        epoch: u64,
    },
    /// This device's pending Commit came back first for its epoch: the group moved
    /// to this epoch.
    Accepted {
        /// The new epoch.
        epoch: u64,
    },
    /// Another device's Commit came first for the epoch this device's pending Commit
    /// wanted: the pending one is dropped, the other applied (the group is at
    /// `epoch`). Make the change again.
    Superseded {
        /// The new epoch.
        epoch: u64,
    },
    /// A Commit for an epoch already past (it lost to an earlier one in the log):
    /// every device ignores it.
    Stale,
    /// The Commit removed this device: it reads nothing sealed from now on. The group
    /// is forgotten; the secrets of the epochs it was in are kept, so what it already
    /// had keeps opening.
    Removed,
    /// Another device's Commit came first for the epoch this device's external commit
    /// wanted ([`KeyRing::rejoin`]): the attempt is dropped and the device is still
    /// not in the group (it may join from this Commit's Welcome, or be added later).
    JoinLost,
}

/// One family's group on this device.
struct Group {
    mls: MlsGroup,
    /// The exporter secret of every epoch this device has been in and not forgotten.
    secrets: BTreeMap<u64, [u8; 32]>,
    /// A Commit of this device waiting to come back in the log.
    pending: Option<Vec<u8>>,
    /// The signature key of the device whose Commit added this one (the Welcome's
    /// sender): the only device whose history entry this one takes.
    welcomed_by: Option<[u8; 32]>,
}

impl Group {
    /// Keeps `commit` as this device's pending Commit, and makes its key log entry.
    fn pend(
        &mut self,
        signer: &EntrySigner<'_>,
        commit: Vec<u8>,
        welcome: Option<Vec<u8>>,
    ) -> Result<Commit, GroupError> {
        let entry = commit_entry(signer, &commit, welcome.as_deref())?;
        self.pending = Some(commit);
        Ok(Commit {
            epoch: self.mls.epoch().as_u64() + 1,
            entry,
        })
    }
}

/// At most this many secrets taken at once by [`KeyRing::learn`].
const MAX_LEARNED: usize = 4096;

/// This device's key groups: one per family it is in.
pub struct KeyRing {
    user: UserId,
    device: DeviceId,
    key: SigningKey,
    provider: Provider,
    groups: BTreeMap<FamilyId, Group>,
    /// Secrets of families whose group this device left or was removed from, so the
    /// chunks it already had keep opening.
    former: BTreeMap<FamilyId, BTreeMap<u64, [u8; 32]>>,
    /// This device's external commits waiting for the log (`rejoin.rs`).
    joining: BTreeMap<FamilyId, rejoin::Joining>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("KeyRing")
            .field("device", &self.device)
            .field("families", &self.groups.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Epoch secrets as saved: (epoch, secret).
type SavedSecrets = Vec<(u64, [u8; 32])>;

/// What [`KeyRing::save`] writes.
#[derive(Serialize, Deserialize)]
struct Saved {
    version: u8,
    storage: Vec<(Vec<u8>, Vec<u8>)>,
    groups: Vec<SavedGroup>,
    former: Vec<(FamilyId, SavedSecrets)>,
}

#[derive(Serialize, Deserialize)]
struct SavedGroup {
    family: FamilyId,
    secrets: SavedSecrets,
    pending: Option<Vec<u8>>,
    welcomed_by: Option<[u8; 32]>,
}

fn identity(user: UserId, device: DeviceId) -> Vec<u8> {
    let mut id = IDENTITY_PREFIX.to_vec();
    id.extend_from_slice(&user.0);
    id.extend_from_slice(&device.0);
    id
}

fn identity_of(
    credential: &openmls::prelude::Credential,
) -> Result<(UserId, DeviceId), GroupError> {
    let basic =
        BasicCredential::try_from(credential.clone()).map_err(|_| GroupError::NotADevice)?;
    let id = basic.identity();
    let rest = id
        .strip_prefix(IDENTITY_PREFIX)
        .ok_or(GroupError::NotADevice)?;
    if rest.len() != 32 {
        return Err(GroupError::NotADevice);
    }
    let mut user = [0u8; 16];
    let mut device = [0u8; 16];
    user.copy_from_slice(&rest[..16]);
    device.copy_from_slice(&rest[16..]);
    Ok((UserId(user), DeviceId(device)))
}

fn family_of(group: &GroupId) -> Result<FamilyId, GroupError> {
    <[u8; 16]>::try_from(group.as_slice())
        .map(FamilyId)
        .map_err(|_| GroupError::WrongGroup)
}

fn to_bytes(message: &MlsMessageOut) -> Result<Vec<u8>, GroupError> {
    message.tls_serialize_detached().map_err(refused)
}

fn message_in(bytes: &[u8], what: &'static str) -> Result<MlsMessageBodyIn, GroupError> {
    MlsMessageIn::tls_deserialize_exact(bytes)
        .map(MlsMessageIn::extract)
        .map_err(|_| GroupError::Malformed(what))
}

/// What an entry of a family's key log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEntry {
    /// A device's key package: it asks to be added (a new member's device, or a newly
    /// linked device of a member).
    KeyPackage,
    /// The secrets of earlier epochs, sealed under `epoch` by the device whose Commit
    /// made it, for the devices that Commit added (see [`KeyRing::history`]).
    History {
        /// The epoch it is sealed under.
        epoch: u64,
    },
    /// A user's escrow of the family's secrets up to `epoch`, opened only with that
    /// user's key (the recovery phrase; see [`KeyRing::escrow`]).
    Escrow {
        /// Whose.
        user: UserId,
        /// The last epoch it holds.
        epoch: u64,
    },
    /// A Commit of the family's group, made in `epoch`, with the Welcome for the
    /// devices it adds if it adds any.
    Commit {
        /// The group the Commit is for.
        family: FamilyId,
        /// The epoch it was made in (the group moves to the next).
        epoch: u64,
        /// Whether it carries a Welcome. A device waiting to be added joins only from
        /// the first Commit entry of an epoch in the log (the one every member
        /// applies), then processes every Commit after it.
        welcome: bool,
    },
}

/// Tells the entries of a key log apart, without any key (the group and epoch of a
/// Commit are in its clear header).
pub fn classify(bytes: &[u8]) -> Result<LogEntry, GroupError> {
    if bytes.starts_with(&escrow::ESCROW_MAGIC[..3]) {
        let (user, epoch) = escrow::escrow_of(bytes)?;
        return Ok(LogEntry::Escrow { user, epoch });
    }
    if bytes.starts_with(&history::HISTORY_MAGIC[..3]) {
        return Ok(LogEntry::History {
            epoch: history::epoch_of_history(bytes)?,
        });
    }
    if bytes.starts_with(&COMMIT_MAGIC[..3]) {
        let (commit, welcome) = split_commit_entry(bytes)?;
        let m = protocol_message(commit)?;
        return Ok(LogEntry::Commit {
            family: family_of(m.group_id())?,
            epoch: m.epoch().as_u64(),
            welcome: welcome.is_some(),
        });
    }
    match message_in(bytes, "key log entry")? {
        MlsMessageBodyIn::KeyPackage(_) => Ok(LogEntry::KeyPackage),
        _ => Err(GroupError::Malformed("key log entry")),
    }
}

/// A Commit's MLS message.
fn protocol_message(commit: &[u8]) -> Result<ProtocolMessage, GroupError> {
    match message_in(commit, "commit")? {
        MlsMessageBodyIn::PrivateMessage(m) => Ok(m.into()),
        MlsMessageBodyIn::PublicMessage(m) => Ok(m.into()),
        _ => Err(GroupError::Malformed("commit")),
    }
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .build()
}

impl KeyRing {
    /// An empty key ring for `device` of `user`, signing with the device key.
    pub fn new(user: UserId, device: DeviceId, key: SigningKey) -> Self {
        KeyRing {
            user,
            device,
            key,
            provider: Provider::default(),
            groups: BTreeMap::new(),
            former: BTreeMap::new(),
            joining: BTreeMap::new(),
        }
    }

    fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(identity(self.user, self.device)).into(),
            signature_key: DeviceSigner(&self.key).public(),
        }
    }

    fn group(&self, family: FamilyId) -> Result<&Group, GroupError> {
        self.groups
            .get(&family)
            .ok_or(GroupError::UnknownFamily(family))
    }

    fn group_mut(&mut self, family: FamilyId) -> Result<&mut Group, GroupError> {
        self.groups
            .get_mut(&family)
            .ok_or(GroupError::UnknownFamily(family))
    }

    /// `n` fresh key packages of this device. A device appends one to the key log of
    /// each family it should be in (its user just joined, or it was just linked); any
    /// member device online then adds it, while this device may be offline. Each is
    /// used once: its private half is deleted when the device joins with it.
    pub fn key_packages(&mut self, n: usize) -> Result<Vec<Vec<u8>>, GroupError> {
        let signer = DeviceSigner(&self.key);
        (0..n)
            .map(|_| {
                let bundle = KeyPackage::builder()
                    .build(CIPHERSUITE, &self.provider, &signer, self.credential())
                    .map_err(refused)?;
                to_bytes(&MlsMessageOut::from(bundle.key_package().clone()))
            })
            .collect()
    }

    /// A last-resort key package of this device, to publish on the relay: a member's
    /// device adds this device to a family's group with it while this device is
    /// offline (the inviter's, as it invites). Unlike [`KeyRing::key_packages`], its
    /// private half stays after a join, so one package serves every family; a new one
    /// is made weekly ([`KeyRing::forget_package`] drops an old one).
    pub fn last_resort_package(&mut self) -> Result<LastResort, GroupError> {
        // The leaf says it understands the extension that marks the package, or a
        // group refuses it (`UnsupportedExtension`).
        let capabilities = openmls::prelude::Capabilities::builder()
            .extensions(vec![openmls::prelude::ExtensionType::LastResort])
            .build();
        let bundle = KeyPackage::builder()
            .leaf_node_capabilities(capabilities)
            .mark_as_last_resort()
            .build(
                CIPHERSUITE,
                &self.provider,
                &DeviceSigner(&self.key),
                self.credential(),
            )
            .map_err(refused)?;
        let hash = bundle
            .key_package()
            .hash_ref(self.provider.crypto())
            .map_err(refused)?;
        Ok(LastResort {
            package: to_bytes(&MlsMessageOut::from(bundle.key_package().clone()))?,
            hash: hash.tls_serialize_detached().map_err(refused)?,
        })
    }

    /// Drops the private half of one of this device's key packages (by its
    /// [`LastResort::hash`]): a Welcome made with it no longer opens here.
    pub fn forget_package(&mut self, hash: &[u8]) -> Result<(), GroupError> {
        use openmls_traits::storage::StorageProvider as _;
        let hash = openmls::prelude::KeyPackageRef::tls_deserialize_exact(hash)
            .map_err(|_| GroupError::Malformed("key package reference"))?;
        self.provider
            .storage()
            .delete_key_package(&hash)
            .map_err(refused)
    }

    /// Starts the family's group with this device alone in it (epoch 0).
    pub fn create(&mut self, family: FamilyId) -> Result<u64, GroupError> {
        if self.groups.contains_key(&family) {
            return Err(GroupError::AlreadyExists(family));
        }
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .use_ratchet_tree_extension(true)
            .build();
        let mls = MlsGroup::new_with_group_id(
            &self.provider,
            &DeviceSigner(&self.key),
            &config,
            GroupId::from_slice(&family.0),
            self.credential(),
        )
        .map_err(refused)?;
        self.install(family, mls, None)
    }

    /// Keeps a group this device is now in, with its current epoch's secret.
    fn install(
        &mut self,
        family: FamilyId,
        mls: MlsGroup,
        welcomed_by: Option<[u8; 32]>,
    ) -> Result<u64, GroupError> {
        let mut secrets = self.former.remove(&family).unwrap_or_default();
        let epoch = mls.epoch().as_u64();
        secrets.insert(epoch, self.export(&mls)?);
        self.groups.insert(
            family,
            Group {
                mls,
                secrets,
                pending: None,
                welcomed_by,
            },
        );
        Ok(epoch)
    }

    fn export(&self, mls: &MlsGroup) -> Result<[u8; 32], GroupError> {
        let secret = mls
            .export_secret(
                self.provider.crypto(),
                EPOCH_LABEL,
                mls.group_id().as_slice(),
                32,
            )
            .map_err(refused)?;
        <[u8; 32]>::try_from(secret.as_slice()).map_err(refused)
    }

    fn ensure_no_pending(&self, family: FamilyId) -> Result<(), GroupError> {
        match self.group(family)?.pending {
            Some(_) => Err(GroupError::CommitPending),
            None => Ok(()),
        }
    }

    /// Makes a Commit of the family's group with `make` (given the group, the
    /// provider and this device's signer, it returns the Commit and its Welcome, if
    /// any) and keeps it pending until it comes back in the log. One at a time.
    fn commit_with(
        &mut self,
        family: FamilyId,
        make: impl FnOnce(
            &mut MlsGroup,
            &Provider,
            &DeviceSigner<'_>,
        ) -> Result<(MlsMessageOut, Option<MlsMessageOut>), GroupError>,
    ) -> Result<Commit, GroupError> {
        self.ensure_no_pending(family)?;
        let group = self
            .groups
            .get_mut(&family)
            .ok_or(GroupError::UnknownFamily(family))?;
        let (commit, welcome) = make(&mut group.mls, &self.provider, &DeviceSigner(&self.key))?;
        let signer = EntrySigner {
            family,
            device: self.device,
            key: &self.key,
        };
        group.pend(
            &signer,
            to_bytes(&commit)?,
            welcome.as_ref().map(to_bytes).transpose()?,
        )
    }

    /// A key package (a key log entry, or one the relay's directory offered) parsed
    /// and validated — of this project's ciphersuite, signed by its leaf — with the
    /// device it is from, which `known` must vouch for as a device to add (certified,
    /// not revoked).
    fn checked_package(
        &self,
        bytes: &[u8],
        known: &KnownDevices,
    ) -> Result<(KeyPackage, GroupMember), GroupError> {
        let MlsMessageBodyIn::KeyPackage(package) = message_in(bytes, "key package")? else {
            return Err(GroupError::Malformed("key package"));
        };
        let package = package
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(refused)?;
        if package.ciphersuite() != CIPHERSUITE {
            return Err(GroupError::Malformed(
                "a key package of another ciphersuite",
            ));
        }
        let leaf = package.leaf_node();
        let (user, device) = known.check_leaf(
            leaf.credential(),
            leaf.signature_key().as_slice(),
            Need::Active,
        )?;
        if !known.may_add(&user) {
            // Not named by the family (yet): kept, like a device not vouched for.
            return Err(GroupError::NotVouched {
                user: user.to_string(),
                device: device.to_string(),
            });
        }
        Ok((package, GroupMember { user, device }))
    }

    /// The device a key package (a key log entry) is from, if the package is valid and
    /// `known` vouches for it as a device to add (certified, not revoked).
    pub fn package_member(
        &self,
        bytes: &[u8],
        known: &KnownDevices,
    ) -> Result<GroupMember, GroupError> {
        Ok(self.checked_package(bytes, known)?.1)
    }

    /// [`KeyRing::package_member`] for a package the relay's directory offered, which
    /// must also stay valid [`OFFERED_LIFETIME_LEFT_S`] past `now_s` (seconds): every
    /// device checks an added package's lifetime when it reads the Commit, so one
    /// added near its end would be refused by those reading after it.
    pub fn offered_member(
        &self,
        bytes: &[u8],
        known: &KnownDevices,
        now_s: u64,
    ) -> Result<GroupMember, GroupError> {
        let (package, member) = self.checked_package(bytes, known)?;
        if package.life_time().not_after() < now_s.saturating_add(OFFERED_LIFETIME_LEFT_S) {
            return Err(GroupError::Malformed("a key package too close to its end"));
        }
        Ok(member)
    }

    /// Adds the devices whose key packages these are; each must be vouched for by
    /// `known`. The Commit carries their users' keys and certificates (authenticated
    /// data, signed with it), so a device reading it later reaches the same verdict
    /// whatever it knows of those users then. Pending until it comes back in the log.
    pub fn add(
        &mut self,
        family: FamilyId,
        packages: &[Vec<u8>],
        known: &KnownDevices,
    ) -> Result<Commit, GroupError> {
        self.ensure_no_pending(family)?;
        let mut checked = Vec::with_capacity(packages.len());
        let mut users = std::collections::BTreeSet::new();
        for bytes in packages {
            let (package, member) = self.checked_package(bytes, known)?;
            users.insert(member.user);
            checked.push(package);
        }
        let aad = known.carried_chains(&users)?;
        self.commit_with(family, |mls, provider, signer| {
            mls.set_aad(aad);
            let (commit, welcome, _info) = mls
                .add_members(provider, signer, &checked)
                .map_err(refused)?;
            Ok((commit, Some(welcome)))
        })
    }

    /// Removes these devices from the family's group: this device's user's own, or
    /// devices `known` no longer vouches for (a member who left or was removed, a
    /// revoked device) — what every other device accepts (see [`KeyRing::process`]).
    /// Pending until it comes back in the log.
    pub fn remove(
        &mut self,
        family: FamilyId,
        devices: &[GroupMember],
        known: &KnownDevices,
    ) -> Result<Commit, GroupError> {
        self.ensure_no_pending(family)?;
        let members = self.leaves(family)?;
        let mut leaves = Vec::with_capacity(devices.len());
        for device in devices {
            let index = members
                .iter()
                .find(|(_, m)| m == device)
                .map(|(i, _)| *i)
                .ok_or(GroupError::NotInGroup(*device))?;
            if device.user != self.user {
                known.may_remove(device)?;
            }
            leaves.push(index);
        }
        self.commit_with(family, |mls, provider, signer| {
            let (commit, welcome, _info) = mls
                .remove_members(provider, signer, &leaves)
                .map_err(refused)?;
            Ok((commit, welcome))
        })
    }

    /// Refreshes this device's own leaf (new HPKE keys, new epoch): a copy of this
    /// device's earlier state stops reading what is sealed after it. Pending until
    /// it comes back in the log.
    pub fn update(&mut self, family: FamilyId) -> Result<Commit, GroupError> {
        self.commit_with(family, |mls, provider, signer| {
            let bundle = mls
                .self_update(provider, signer, LeafNodeParameters::default())
                .map_err(refused)?;
            Ok((bundle.commit().clone(), None))
        })
    }

    /// Joins `family`'s group from the Welcome of a Commit entry of its key log — the
    /// first Commit entry of its epoch in the log ([`classify`] tells, without a key):
    /// a Welcome of a Commit that lost its epoch leads to a group nobody else is in.
    /// The Welcome must be for that family's group, and every device already in it
    /// must be vouched for by `known` (the family as this device learnt it when its
    /// user accepted the invite). Returns the epoch it joined at; chunks of earlier epochs never open
    /// on this device. Refused, nothing changes — the key package is kept, so the same
    /// Welcome can be tried again once `known` has caught up.
    pub fn join(
        &mut self,
        family: FamilyId,
        entry: &[u8],
        known: &KnownDevices,
    ) -> Result<u64, GroupError> {
        if self.groups.contains_key(&family) {
            return Err(GroupError::AlreadyExists(family));
        }
        if self.joining.contains_key(&family) {
            // Its external commit waits: settled by the log first (`process`).
            return Err(GroupError::CommitPending);
        }
        let (commit, welcome) = split_commit_entry(entry)?;
        let welcome = welcome.ok_or(GroupError::NotForThisDevice)?;
        let MlsMessageBodyIn::Welcome(welcome) = message_in(welcome, "welcome")? else {
            return Err(GroupError::Malformed("welcome"));
        };
        // The Welcome must lead into the epoch its Commit makes.
        let epoch = protocol_message(commit)?.epoch().as_u64() + 1;
        let before = self.provider.save();
        let joined = self.stage_welcome(family, epoch, welcome, known);
        let (mls, sender) = match joined {
            Ok(joined) => joined,
            Err(e) => {
                // openmls deletes the key package a Welcome is for as it reads it.
                self.provider.reset(before);
                return Err(e);
            }
        };
        self.install(family, mls, Some(sender))
    }

    /// Whether a Commit entry's Welcome names one of this device's key packages it
    /// still holds (read from the Welcome's clear part: nothing is joined or spent).
    pub fn welcome_names_me(&self, entry: &[u8]) -> bool {
        use openmls_traits::storage::StorageProvider as _;
        let Ok((_, Some(welcome))) = split_commit_entry(entry) else {
            return false;
        };
        let Ok(MlsMessageBodyIn::Welcome(welcome)) = message_in(welcome, "welcome") else {
            return false;
        };
        welcome.secrets().iter().any(|secrets| {
            let package: Result<Option<openmls::prelude::KeyPackageBundle>, _> =
                self.provider.storage().key_package(&secrets.new_member());
            matches!(package, Ok(Some(_)))
        })
    }

    fn stage_welcome(
        &self,
        family: FamilyId,
        epoch: u64,
        welcome: openmls::prelude::Welcome,
        known: &KnownDevices,
    ) -> Result<(MlsGroup, [u8; 32]), GroupError> {
        let welcome_error = |e: openmls::prelude::WelcomeError<_>| match e {
            openmls::prelude::WelcomeError::NoMatchingKeyPackage
            | openmls::prelude::WelcomeError::JoinerSecretNotFound => GroupError::NotForThisDevice,
            other => refused(other),
        };
        // Lifetimes of leaves that never refreshed are not checked: a family whose
        // quietest device has not committed for months still takes new devices.
        // A group this device left or was removed from is replaced.
        let staged = StagedWelcome::build_from_welcome(&self.provider, &join_config(), welcome)
            .map_err(welcome_error)?
            .skip_lifetime_validation()
            .replace_old_group()
            .build()
            .map_err(welcome_error)?;
        if family_of(staged.group_context().group_id())? != family {
            return Err(GroupError::WrongGroup);
        }
        if staged.group_context().epoch().as_u64() != epoch {
            return Err(GroupError::Malformed("a welcome of another commit"));
        }
        for member in staged.members() {
            match known.check_leaf(&member.credential, &member.signature_key, Need::Ever) {
                // A leaf of someone who is neither a member nor invited (an invitee
                // who turned the invite down after this Welcome was made, a member
                // who left): due to be removed by anyone, this device included — it
                // does not stop the join (which would then never happen: the others
                // see this device in the group and add it no more).
                Err(e) if e.is_wait() && known.is_outsider(&identity_of(&member.credential)?.0) => {
                }
                other => {
                    other?;
                }
            }
        }
        // Who added this device: its history entry is the one to take.
        let sender = <[u8; 32]>::try_from(
            staged
                .welcome_sender()
                .map_err(refused)?
                .signature_key()
                .as_slice(),
        )
        .map_err(|_| GroupError::NotADevice)?;
        Ok((staged.into_group(&self.provider).map_err(refused)?, sender))
    }

    /// Processes the next Commit of the family's key log, in the log's order — this
    /// device's own included. Another device's Commit must come from a device `known`
    /// vouches for (or, an external commit, from a device joining by itself that
    /// `known` or the commit's carried chain certifies), bring only leaves it vouches
    /// for, remove only devices of the committer's own user or devices it no longer
    /// vouches for, and carry no proposal but Add, Update and Remove (and the external
    /// commit's ExternalInit). While this device's own external commit waits, see
    /// `process_joining`. Refused, nothing changes — not even openmls'
    /// decryption state — so the same Commit can be processed again once `known` has
    /// caught up (the caller must then not skip to a later Commit of that epoch:
    /// every device reaches the same verdict only on the same Commit).
    ///
    /// [`Processed::Stale`] and [`GroupError::FromTheFuture`] are read from the
    /// message's clear header, before anything is authenticated: a stale entry is
    /// ignored, and one from a later epoch than the group's is not applied (in the
    /// log's order it cannot be genuine: it is garbage, or the relay withheld one).
    pub fn process(
        &mut self,
        family: FamilyId,
        entry: &[u8],
        known: &KnownDevices,
    ) -> Result<Processed, GroupError> {
        if !self.groups.contains_key(&family) && self.joining.contains_key(&family) {
            return self.process_joining(family, entry, known);
        }
        let (bytes, _) = split_commit_entry(entry)?;
        let message = protocol_message(bytes)?;
        if family_of(message.group_id())? != family {
            return Err(GroupError::WrongGroup);
        }
        let group = self.group(family)?;
        let (at, got) = (group.mls.epoch().as_u64(), message.epoch().as_u64());
        if got < at {
            return Ok(Processed::Stale);
        }
        if got > at {
            return Err(GroupError::FromTheFuture { at, got });
        }
        if group.pending.as_deref() == Some(bytes) {
            let group = self
                .groups
                .get_mut(&family)
                .ok_or(GroupError::UnknownFamily(family))?;
            group
                .mls
                .merge_pending_commit(&self.provider)
                .map_err(refused)?;
            group.pending = None;
            let epoch = self.record_epoch(family)?;
            return Ok(Processed::Accepted { epoch });
        }
        let before = self.provider.save();
        match self.apply_commit(family, message, known) {
            Ok(processed) => Ok(processed),
            Err(e) => {
                // Put openmls' storage back as it was (its decryption state moved), and
                // the group object with it; this device's own pending Commit is intact.
                self.provider.reset(before);
                let mls = MlsGroup::load(self.provider.storage(), &GroupId::from_slice(&family.0))
                    .map_err(|e| GroupError::Restore(format!("{e:?}")))?
                    .ok_or_else(|| GroupError::Restore(format!("group of {family} missing")))?;
                self.group_mut(family)?.mls = mls;
                Err(e)
            }
        }
    }

    /// Another device's Commit, checked and merged (see [`KeyRing::process`]).
    fn apply_commit(
        &mut self,
        family: FamilyId,
        message: ProtocolMessage,
        known: &KnownDevices,
    ) -> Result<Processed, GroupError> {
        let group = self
            .groups
            .get_mut(&family)
            .ok_or(GroupError::UnknownFamily(family))?;
        let processed = group
            .mls
            .process_message(&self.provider, message)
            .map_err(refused)?;
        // Who committed: a member device that is still vouched for — or a device
        // joining by itself (an external commit, `rejoin.rs`), checked below as a
        // device to add, from its new leaf.
        let member_committer = match processed.sender() {
            openmls::prelude::Sender::Member(index) => {
                let member = group
                    .mls
                    .member_at(*index)
                    .ok_or(GroupError::Malformed("commit"))?;
                Some(known.check_leaf(&member.credential, &member.signature_key, Need::Ever)?)
            }
            openmls::prelude::Sender::NewMemberCommit => None,
            _ => return Err(GroupError::NotAllowed("a commit from outside the group")),
        };
        let external = member_committer.is_none();
        let aad = processed.aad().to_vec();
        let staged = match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => staged,
            ProcessedMessageContent::OwnPrivateMessage => return Err(GroupError::OwnCommitLost),
            _ => return Err(GroupError::Malformed("commit")),
        };
        // Parsed once, bounded by the number of devices added: refused alike by every
        // device when it is malformed or too large (a pure function of the Commit).
        let adds = staged
            .queued_proposals()
            .filter(|p| matches!(p.proposal(), Proposal::Add(_)))
            .count()
            + usize::from(external);
        let carried = certs::carried(&aad, adds)?;
        let committer = match member_committer {
            Some(committer) => committer,
            None => {
                let leaf = staged
                    .update_path_leaf_node()
                    .ok_or(GroupError::Malformed("an external commit without its leaf"))?;
                known.check_new_leaf(
                    leaf.credential(),
                    leaf.signature_key().as_slice(),
                    &carried,
                )?
            }
        };
        for proposal in staged.queued_proposals() {
            match proposal.proposal() {
                Proposal::Add(add) => {
                    let leaf = add.key_package().leaf_node();
                    known.check_new_leaf(
                        leaf.credential(),
                        leaf.signature_key().as_slice(),
                        &carried,
                    )?;
                }
                Proposal::Update(update) => {
                    let leaf = update.leaf_node();
                    known.check_leaf(
                        leaf.credential(),
                        leaf.signature_key().as_slice(),
                        Need::Ever,
                    )?;
                }
                Proposal::Remove(remove) => {
                    let gone = group
                        .mls
                        .member_at(remove.removed())
                        .ok_or(GroupError::Malformed("commit"))?;
                    let (user, device) = identity_of(&gone.credential)?;
                    if user != committer.0 {
                        known.may_remove(&GroupMember { user, device })?;
                    }
                }
                // What makes an external commit one: it carries the joiner's key.
                Proposal::ExternalInit(_) if external => {}
                _ => {
                    return Err(GroupError::NotAllowed(
                        "a proposal other than add, update or remove",
                    ));
                }
            }
        }
        if let Some(leaf) = staged.update_path_leaf_node()
            && !external
        {
            known.check_leaf(
                leaf.credential(),
                leaf.signature_key().as_slice(),
                Need::Ever,
            )?;
        }
        let removed = staged.self_removed();
        let lost_own = group.pending.is_some();
        // Merging drops this device's own pending Commit, if it had one: the log
        // gave the epoch to this one.
        group
            .mls
            .merge_staged_commit(&self.provider, *staged)
            .map_err(refused)?;
        group.pending = None;
        if removed {
            if let Some(mut group) = self.groups.remove(&family) {
                // Its state goes (a later Welcome replaces it anyway); its secrets
                // stay, so what it already had keeps opening.
                if let Err(e) = group.mls.delete(self.provider.storage()) {
                    tracing::warn!(%family, error = ?e, "a removed group's state was not deleted");
                }
                self.former.insert(family, group.secrets);
            }
            return Ok(Processed::Removed);
        }
        let epoch = self.record_epoch(family)?;
        Ok(match lost_own {
            true => Processed::Superseded { epoch },
            false => Processed::Advanced { epoch },
        })
    }

    /// Keeps the secret of the epoch the family's group is now in.
    fn record_epoch(&mut self, family: FamilyId) -> Result<u64, GroupError> {
        let group = self.group(family)?;
        let epoch = group.mls.epoch().as_u64();
        let secret = self.export(&group.mls)?;
        self.group_mut(family)?.secrets.insert(epoch, secret);
        Ok(epoch)
    }

    /// The user this ring's device belongs to.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// This ring's device.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The key this ring signs with (the device key), to restore a saved ring with.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The family group's current epoch, if this device is in it.
    pub fn epoch(&self, family: FamilyId) -> Option<u64> {
        self.groups.get(&family).map(|g| g.mls.epoch().as_u64())
    }

    /// The families whose groups this device is in.
    pub fn families(&self) -> impl Iterator<Item = FamilyId> + '_ {
        self.groups.keys().copied()
    }

    fn leaves(&self, family: FamilyId) -> Result<Vec<(LeafNodeIndex, GroupMember)>, GroupError> {
        self.group(family)?
            .mls
            .members()
            .map(|m| {
                let (user, device) = identity_of(&m.credential)?;
                Ok((m.index, GroupMember { user, device }))
            })
            .collect()
    }

    /// The devices in the family's group, in leaf order.
    pub fn members(&self, family: FamilyId) -> Result<Vec<GroupMember>, GroupError> {
        Ok(self.leaves(family)?.into_iter().map(|(_, m)| m).collect())
    }

    /// Seals `changes` of `doc` (a document of `family`) under the group's current
    /// epoch.
    pub fn seal(
        &self,
        family: FamilyId,
        doc: DocId,
        changes: &[u8],
    ) -> Result<Vec<u8>, GroupError> {
        let (epoch, secret) = self.current_secret(family)?;
        Ok(envelope::seal(secret, epoch, doc, changes)?)
    }

    /// The group's current epoch and its secret.
    pub(super) fn current_secret(&self, family: FamilyId) -> Result<(u64, &[u8; 32]), GroupError> {
        let group = self.group(family)?;
        let epoch = group.mls.epoch().as_u64();
        let secret = group
            .secrets
            .get(&epoch)
            .ok_or(GroupError::UnknownFamily(family))?;
        Ok((epoch, secret))
    }

    /// Seals a chunk of `doc` like [`KeyRing::seal`], with a synthetic nonce: the same
    /// changes sealed again in the same epoch give the same bytes, so a chunk pushed
    /// again after a reconnection keeps its chunk id.
    pub fn seal_chunk(
        &self,
        family: FamilyId,
        doc: DocId,
        changes: &[u8],
    ) -> Result<Vec<u8>, GroupError> {
        let (epoch, secret) = self.current_secret(family)?;
        Ok(envelope::seal_synthetic(secret, epoch, doc, changes)?)
    }

    /// Whether this device has a Commit of the family's group waiting to come back.
    pub fn has_pending(&self, family: FamilyId) -> bool {
        self.groups
            .get(&family)
            .is_some_and(|g| g.pending.is_some())
    }

    /// Opens a sealed chunk of `doc` (a document of `family`) with the secret of the
    /// epoch it names, if this device was in the group then.
    pub fn open(
        &self,
        family: FamilyId,
        doc: DocId,
        sealed: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let epoch = epoch_of(sealed)?;
        let secrets = match self.groups.get(&family) {
            Some(g) => &g.secrets,
            None => self
                .former
                .get(&family)
                .ok_or(EnvelopeError::UnknownEpoch(epoch))?,
        };
        let secret = secrets
            .get(&epoch)
            .ok_or(EnvelopeError::UnknownEpoch(epoch))?;
        envelope::open(secret, epoch, doc, sealed)
    }

    /// The secrets of every epoch of the group this device holds (in it or not),
    /// oldest first.
    pub fn secrets(&self, family: FamilyId) -> Vec<(u64, [u8; 32])> {
        let held = match self.groups.get(&family) {
            Some(g) => &g.secrets,
            None => match self.former.get(&family) {
                Some(s) => s,
                None => return Vec::new(),
            },
        };
        held.iter().map(|(e, s)| (*e, *s)).collect()
    }

    /// Takes the secrets of epochs of a group this device is not in — a co-member's
    /// profile key group, whose secrets that member publishes in a family document
    /// they share (`docs/security.md`, personal documents) — or of epochs before the
    /// current one of a group it is in; never one it holds already, nor its current
    /// or a later epoch of a group it is in (MLS gave it those). Returns how many it
    /// took.
    pub fn learn(&mut self, family: FamilyId, secrets: &[(u64, [u8; 32])]) -> usize {
        let (held, below) = match self.groups.get_mut(&family) {
            Some(g) => {
                let current = g.mls.epoch().as_u64();
                (&mut g.secrets, current)
            }
            None => (self.former.entry(family).or_default(), u64::MAX),
        };
        let mut taken = 0;
        for (e, s) in secrets.iter().take(MAX_LEARNED) {
            if *e < below && !held.contains_key(e) {
                held.insert(*e, *s);
                taken += 1;
            }
        }
        taken
    }

    /// Forgets the secrets of the family's epochs before `epoch` (once a snapshot
    /// sealed in a later epoch covers every chunk of them): a device stolen afterwards
    /// cannot open those chunks even from an old copy of the relay's log.
    pub fn forget_before(&mut self, family: FamilyId, epoch: u64) {
        let secrets = match self.groups.get_mut(&family) {
            // Never the current epoch's: everything sealed from now on uses it.
            Some(g) => {
                let epoch = epoch.min(g.mls.epoch().as_u64());
                g.secrets.retain(|e, _| *e >= epoch);
                return;
            }
            None => match self.former.get_mut(&family) {
                Some(s) => s,
                None => return,
            },
        };
        secrets.retain(|e, _| *e >= epoch);
    }

    /// Everything the key ring holds (group states, unused key packages, epoch
    /// secrets), for the device's local store. Secret: kept where the device keeps
    /// its keys.
    pub fn save(&self) -> Result<Vec<u8>, GroupError> {
        let saved = Saved {
            version: SAVE_VERSION,
            storage: self.provider.save(),
            groups: self
                .groups
                .iter()
                .map(|(family, g)| SavedGroup {
                    family: *family,
                    secrets: g.secrets.iter().map(|(e, s)| (*e, *s)).collect(),
                    pending: g.pending.clone(),
                    welcomed_by: g.welcomed_by,
                })
                .collect(),
            former: self
                .former
                .iter()
                .map(|(f, s)| (*f, s.iter().map(|(e, s)| (*e, *s)).collect()))
                .collect(),
        };
        // This device's external commits follow as a second value: a ring saved
        // without it loads with none, and an older build reads the rest.
        let joining: Vec<(FamilyId, Vec<u8>, u64)> = self
            .joining
            .iter()
            .map(|(f, j)| (*f, j.commit.clone(), j.epoch))
            .collect();
        postcard::to_allocvec(&saved)
            .and_then(|head| postcard::to_extend(&joining, head))
            .map_err(|e| GroupError::Restore(e.to_string()))
    }

    /// The key ring saved by [`KeyRing::save`], for `device` of `user` with its key.
    pub fn restore(
        user: UserId,
        device: DeviceId,
        key: SigningKey,
        bytes: &[u8],
    ) -> Result<Self, GroupError> {
        let (saved, rest): (Saved, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| GroupError::Restore(e.to_string()))?;
        let joining: Vec<(FamilyId, Vec<u8>, u64)> = if rest.is_empty() {
            Vec::new()
        } else {
            postcard::from_bytes(rest).map_err(|e| GroupError::Restore(e.to_string()))?
        };
        if saved.version != SAVE_VERSION {
            return Err(GroupError::Restore(format!("version {}", saved.version)));
        }
        let provider = Provider::restore(saved.storage);
        let mut groups = BTreeMap::new();
        for g in saved.groups {
            let mls = MlsGroup::load(provider.storage(), &GroupId::from_slice(&g.family.0))
                .map_err(|e| GroupError::Restore(format!("{e:?}")))?
                .ok_or_else(|| GroupError::Restore(format!("group of {} missing", g.family)))?;
            groups.insert(
                g.family,
                Group {
                    mls,
                    secrets: g.secrets.into_iter().collect(),
                    pending: g.pending,
                    welcomed_by: g.welcomed_by,
                },
            );
        }
        let mut waiting = BTreeMap::new();
        for (family, commit, epoch) in joining {
            let mls = MlsGroup::load(provider.storage(), &GroupId::from_slice(&family.0))
                .map_err(|e| GroupError::Restore(format!("{e:?}")))?
                .ok_or_else(|| GroupError::Restore(format!("joining group of {family} missing")))?;
            waiting.insert(family, rejoin::Joining { mls, commit, epoch });
        }
        Ok(KeyRing {
            user,
            device,
            key,
            provider,
            groups,
            joining: waiting,
            former: saved
                .former
                .into_iter()
                .map(|(f, s)| (f, s.into_iter().collect()))
                .collect(),
        })
    }
}
