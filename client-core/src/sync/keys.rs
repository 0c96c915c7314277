//! [`Keeper`]: a device's end-to-end keys as the sync host uses them — the key ring
//! (one MLS group per sealed family), where each family's key log has been read to,
//! and what this device owes the log (its key package, a history entry, a Commit
//! that did not reach the outbox).
//!
//! The host seals the chunks of a sealed family's document as they leave the outbox,
//! opens them as they arrive, and stores the key log's entries here as they arrive;
//! [`Keeper::step`] then takes them in the log's order (see `group.rs`: the log
//! decides) and says what to append. Everything is saved in the local store's meta
//! as one value, so the ring and how far the log was read never disagree.

use std::collections::{BTreeMap, BTreeSet};

use doran_protocol::{ChunkId, DocId, FamilyId, Seq, UserId};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::{
    group::{
        EnvelopeError, GroupError, GroupMember, KeyRing, KnownDevices, LastResort, LogEntry,
        Processed, classify,
    },
    store::{LocalStore, StoreError},
};

/// The meta key the keeper is saved under.
const META_KEY: &str = "keys/keeper";
/// The meta key of the saved keeper's generation, written after it: another process
/// on the device (`doran watch` beside a `doran sync`) may have saved a newer one.
const GENERATION_KEY: &str = "keys/keeper/generation";
/// Saved format. The leaf refreshes follow the rest as a second value, and the
/// published key packages as a third: a keeper saved without them loads with none,
/// and an older build reading one saved with them takes the rest (postcard leaves
/// trailing bytes alone).
const VERSION: u8 = 1;
/// Key log entries kept waiting to be processed (a log this far ahead of what this
/// device can process is not read further until it catches up: its cursor stays
/// before the first entry not kept).
const MAX_WAITING: usize = 10_000;
/// Key packages of devices waiting to be added, kept per family.
const MAX_REQUESTS: usize = 256;
/// A device not added yet appends a new key package after this long.
const ASK_AGAIN_MS: i64 = 24 * 60 * 60 * 1000;
/// A device refreshes its own leaf in each family's group this long after its leaf
/// was last new (post-compromise security: a copy of its keys taken before stops
/// reading what is sealed after).
pub const REFRESH_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How many times the keeper reads or saves again when another process on the device
/// saved its keys in between.
const SAVE_TRIES: usize = 32;
/// A device publishes a new key package on the relay this often (an MLS key package
/// lives 84 days; a device adding one checks that it is still valid).
pub const PUBLISH_EVERY_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// The private halves of this many earlier published packages are kept: an inviter's
/// Commit made with one the relay served before a new one replaced it still opens.
const KEEP_PUBLISHED: usize = 12;

/// One family's key log as this device has read it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FamilyKeys {
    /// Whether the family's documents are sealed (`None`: not known yet). Decided
    /// once, by the family document's first chunk (or first snapshot) — an envelope
    /// or not — or at creation on the creating device; never by the key log, where
    /// any member (or the relay) can append a Commit-looking entry.
    sealed: Option<bool>,
    /// Every entry up to this seq has been processed.
    done: Seq,
    /// Entries that arrived (or came back acked) and wait for their turn.
    waiting: BTreeMap<Seq, Vec<u8>>,
    /// Key packages of devices not in the group, newest last.
    requests: Vec<Vec<u8>>,
    /// When this device last appended its own key package (ms).
    asked_at: Option<i64>,
    /// The history entry this device owes the devices its Commit added, appended
    /// again until it is seen in the log.
    history_due: Option<Vec<u8>>,
    /// This device's pending Commit's entry, until it comes back: appended again if
    /// it never reached the outbox (a crash between saving and appending).
    pending_entry: Option<Vec<u8>>,
    /// The last epoch this device escrowed for its user (holding the user key).
    escrowed: Option<u64>,
    /// The epoch of the last Commit that was the first of its epoch in the log: a
    /// device waiting to be added joins only from the next such Commit (one of a
    /// later epoch than the next cannot be genuine, as in `KeyRing::process`).
    top_epoch: Option<u64>,
}

/// When this device's own leaf in a family's group was last new.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Refresh {
    /// When it joined or first stepped the family in the group, or made its last
    /// refreshing Commit (ms); 0: due now (the last one lost its epoch).
    at: i64,
    /// Its refreshing Commit waits to come back in the log.
    pending: bool,
}

/// The key package this device publishes on the relay (a last-resort one: it serves
/// every family), and the ones it published before.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Published {
    /// The current package, when it was made (ms), and whether the relay has it.
    current: Option<(LastResort, i64, bool)>,
    /// Earlier ones whose private halves are kept, oldest first.
    earlier: Vec<LastResort>,
}

/// What this device holds to join a family's group again by itself, and how far it
/// escrowed GroupInfos (`group/rejoin.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Rejoins {
    /// The newest GroupInfo taken from this user's escrow entries: (epoch, bytes).
    infos: BTreeMap<FamilyId, (u64, Vec<u8>)>,
    /// The last epoch whose GroupInfo this device escrowed (entries made before
    /// GroupInfos were escrowed hold none: the current epoch's is escrowed once more).
    escrowed: BTreeMap<FamilyId, u64>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u8,
    /// Whose keys these are: a keeper saved for another account (signed out, then
    /// another signed in on the same device) is not loaded.
    user: UserId,
    device: doran_protocol::DeviceId,
    generation: u64,
    ring: Vec<u8>,
    families: Vec<(FamilyId, FamilyKeys)>,
}

/// Why the keeper failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key ring refused or failed.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// This host was made without the device's key: it cannot seal.
    #[error("this device's host holds no keys to seal with")]
    NoKeys,
    /// Another process on the device saved its keys at every try: nothing was saved.
    #[error("another process on this device keeps saving the keys: try again")]
    Busy,
}

/// What a [`Keeper::step`] did, for the device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyStep {
    /// Entries appended to the key log's outbox (push them).
    pub appended: usize,
    /// The device got keys it did not have (joined, took history, moved to a new
    /// epoch): documents waiting for keys may open now.
    pub new_keys: bool,
    /// Processing stopped at an entry that needs certificates this device lacks:
    /// fetch them and step again.
    pub waiting_for_certs: bool,
    /// This device is in the family's group.
    pub in_group: bool,
    /// Devices that asked to be added and are not vouched for yet (their
    /// certificates may still come).
    pub unvouched: usize,
}

/// The key group of a personal document: the user's own devices, whose epoch
/// secrets seal the document (and which they publish, in each family document they
/// share, for the family's members to read it). Named like a family by the
/// document's id, so its key log is `personal_group(doc).key_log()` — a log the
/// relay lets only that user read and write — and a personal document is sealed
/// exactly when its id carries the sealed mark ([`FamilyId::says_sealed`]): an
/// account made before personal documents were sealed keeps writing in the clear.
pub fn personal_group(doc: DocId) -> FamilyId {
    FamilyId(doc.0)
}

/// How an incoming chunk of a family document opened.
#[derive(Debug)]
pub enum Unsealed {
    /// Not sealed (a family whose documents are not sealed).
    Clear,
    /// Unsealed: the changes.
    Changes(Vec<u8>),
    /// Sealed under an epoch this device has no key for (yet): wait for it.
    NoKey,
    /// This device is in the group but has no key for that epoch (yet: it is behind
    /// on the key log, or waits for the history of its adder): kept aside and tried
    /// again when keys come, while the document goes on.
    Hold,
    /// Does not open, or a clear chunk in a sealed family: refused.
    Refused(Refusal),
}

/// Why a chunk (or a snapshot) was refused as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Clear, where the family's (or the profile's) documents are sealed.
    #[error("a clear chunk in a family whose documents are sealed")]
    ClearInSealed,
    /// An envelope, where the family's documents are clear.
    #[error("a sealed chunk in a family whose documents are not sealed")]
    SealedInClear,
    /// An envelope that does not open (see [`EnvelopeError`]).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

impl Refusal {
    /// Whether the bytes were changed on their way: an envelope that does not open
    /// with the key of the epoch it names (changed bytes, a chunk of another document
    /// or epoch moved here, a key from outside the group), or cut short. No device
    /// and no honest relay makes one; whoever stores or carries the chunks did. (A
    /// clear chunk where only envelopes are taken is not counted: an honest relay
    /// serving a document again from its start sends the clear chunks from before a
    /// family was sealed, which a device that holds them refuses.)
    pub fn is_tampering(&self) -> bool {
        matches!(
            self,
            Refusal::Envelope(EnvelopeError::Refused | EnvelopeError::Malformed)
        )
    }
}

/// Why a key group's changes wait (see [`Keeper::removing`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Removing {
    /// What this device's user removed (a member: every device of theirs; a revoked
    /// device): held until no such device is in the group — whatever membership a
    /// step was given, which may have been read before the removal.
    targets: BTreeSet<(UserId, Option<doran_protocol::DeviceId>)>,
    /// The last step found a device in the group that must leave it (a removed
    /// member's, a revoked one), by the membership it was given. Not set while the
    /// log waits for certificates: such a device could not take anyone out, and would
    /// hold its changes for good.
    gone: bool,
}

/// A device's end-to-end keys (see the module docs).
pub struct Keeper {
    ring: KeyRing,
    families: BTreeMap<FamilyId, FamilyKeys>,
    /// Saved after the rest, as a second value.
    refreshes: BTreeMap<FamilyId, Refresh>,
    /// Saved as a third value.
    published: Published,
    /// Saved as a fourth value.
    rejoins: Rejoins,
    /// Saved as a fifth value: every device seen in each family's group, after each
    /// Commit processed, since the last [`Keeper::forget_seen`] — a device added and
    /// removed between two looks is among them (who could have read what the family
    /// document held meanwhile: a user's published profile keys).
    seen: BTreeMap<FamilyId, BTreeSet<(UserId, doran_protocol::DeviceId)>>,
    /// Saved as a sixth value: families created clear that their host sealed since,
    /// and the seq of the family document's first envelope (`Seq::MAX` on the host's
    /// device until its first sealed chunk is acked). Clear chunks before it still
    /// open; from it on, only envelopes do.
    sealed_from: BTreeMap<FamilyId, Seq>,
    /// Saved as a seventh value: families of `sealed_from` whose clear chunks this
    /// device has all received (it got a chunk past the first envelope). It takes no
    /// clear chunk of them again — not even one the relay serves again below the first
    /// envelope after starting the document over: it holds them all already.
    clear_closed: BTreeSet<FamilyId>,
    /// Saved as an eighth value: groups (families, this user's profile) that still
    /// hold a device that must leave them — one its user just removed (a member, a
    /// revoked device), or one the last step found gone. Their documents' changes
    /// wait ([`Keeper::removing`]) until the Commit that takes it out is processed:
    /// sealed under the current epoch, the device leaving would hold the key to them.
    removing: BTreeMap<FamilyId, Removing>,
    /// The user key, on a device that holds it: it escrows the families' secrets for
    /// the recovery phrase, and takes them back from the escrow.
    user_key: Option<SigningKey>,
    /// Which save this is (0: never saved).
    generation: u64,
    /// What this keeper last saved, but for the generation: saving the same again
    /// writes nothing (every key step saves, and most change nothing).
    last_saved: Option<blake3::Hash>,
    /// The generation value as this keeper last read or wrote it: its generation and
    /// a tag of what was saved, so two processes that saved the same generation with
    /// different keys notice each other.
    stamp: Option<Vec<u8>>,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

/// Whether `family` is sealed as far as this device knows: its id says so, or its
/// first chunk (or its creation here) decided it.
fn sealed_of(family: FamilyId, keys: Option<&FamilyKeys>) -> Option<bool> {
    if family.says_sealed() {
        return Some(true);
    }
    keys.and_then(|k| k.sealed)
}

/// Notes the devices now in the family's group among those seen (see `Keeper::seen`).
fn note_seen(
    seen: &mut BTreeMap<FamilyId, BTreeSet<(UserId, doran_protocol::DeviceId)>>,
    ring: &KeyRing,
    family: FamilyId,
) {
    let members = ring.members(family).unwrap_or_default();
    seen.entry(family)
        .or_default()
        .extend(members.into_iter().map(|m| (m.user, m.device)));
}

fn now_or(now_ms: i64) -> i64 {
    now_ms.max(0)
}

impl Keeper {
    /// No keys yet: a device that never kept any, or another account's were saved.
    fn empty(user: UserId, device: doran_protocol::DeviceId, key: SigningKey) -> Self {
        Keeper {
            ring: KeyRing::new(user, device, key),
            families: BTreeMap::new(),
            refreshes: BTreeMap::new(),
            published: Published::default(),
            rejoins: Rejoins::default(),
            seen: BTreeMap::new(),
            sealed_from: BTreeMap::new(),
            clear_closed: BTreeSet::new(),
            removing: BTreeMap::new(),
            user_key: None,
            generation: 0,
            last_saved: None,
            stamp: None,
        }
    }

    /// The keeper saved in `store`, or an empty one for this device.
    pub fn load(
        store: &dyn LocalStore,
        user: UserId,
        device: doran_protocol::DeviceId,
        key: SigningKey,
    ) -> Result<Self, KeysError> {
        // The generation, the keys, the generation again: the same both times means
        // the keys are the ones it names (a save writes both in one transaction, and
        // the value names what was saved — a tag of its bytes — not only a number).
        for _ in 0..SAVE_TRIES {
            let before = store.get_meta(GENERATION_KEY)?;
            let bytes = store.get_meta(META_KEY)?;
            let stamp = store.get_meta(GENERATION_KEY)?;
            if before == stamp {
                let (mut keeper, mine) = Keeper::restore(bytes.as_deref(), user, device, key)?;
                // What is saved is this keeper: saving it unchanged writes nothing.
                keeper.last_saved = mine
                    .then(|| keeper.encoded(0).map(|b| blake3::hash(&b)))
                    .transpose()?;
                keeper.stamp = stamp;
                return Ok(keeper);
            }
        }
        Err(KeysError::Busy)
    }

    /// The keeper in `bytes` (the saved value), without its stamp, and whether it is
    /// this device's (not an empty one in place of nothing or of another account's).
    fn restore(
        bytes: Option<&[u8]>,
        user: UserId,
        device: doran_protocol::DeviceId,
        key: SigningKey,
    ) -> Result<(Self, bool), KeysError> {
        let Some(bytes) = bytes else {
            return Ok((Keeper::empty(user, device, key), false));
        };
        let restore = |e: postcard::Error| GroupError::Restore(format!("keeper: {e}"));
        let (saved, rest): (Saved, &[u8]) = postcard::take_from_bytes(bytes).map_err(restore)?;
        if saved.version != VERSION {
            return Err(GroupError::Restore(format!("keeper version {}", saved.version)).into());
        }
        let (refreshes, rest): (Vec<(FamilyId, Refresh)>, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(restore)?
        };
        let (published, rest): (Published, &[u8]) = if rest.is_empty() {
            (Published::default(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(restore)?
        };
        let (rejoins, rest): (Rejoins, &[u8]) = if rest.is_empty() {
            (Rejoins::default(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(restore)?
        };
        type Seen = Vec<(FamilyId, BTreeSet<(UserId, doran_protocol::DeviceId)>)>;
        let (seen, rest): (Seen, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(restore)?
        };
        let (sealed_from, rest): (Vec<(FamilyId, Seq)>, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(restore)?
        };
        let (clear_closed, rest): (Vec<FamilyId>, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(restore)?
        };
        let removing: Vec<(FamilyId, Removing)> = if rest.is_empty() {
            Vec::new()
        } else {
            postcard::from_bytes(rest).map_err(restore)?
        };
        if (saved.user, saved.device) != (user, device) {
            tracing::warn!(%user, %device, "the keys saved on this device are another account's: starting anew");
            // Saved over them (a save compares the generation value, not its number).
            return Ok((Keeper::empty(user, device, key), false));
        }
        let keeper = Keeper {
            ring: KeyRing::restore(user, device, key, &saved.ring)?,
            families: saved.families.into_iter().collect(),
            refreshes: refreshes.into_iter().collect(),
            published,
            rejoins,
            seen: seen.into_iter().collect(),
            sealed_from: sealed_from.into_iter().collect(),
            clear_closed: clear_closed.into_iter().collect(),
            removing: removing.into_iter().collect(),
            user_key: None,
            generation: saved.generation,
            last_saved: None,
            stamp: None,
        };
        Ok((keeper, true))
    }

    /// Gives the keeper the user key (a device that holds it): it escrows each
    /// family's secrets for the recovery phrase and takes them back from the escrow.
    pub fn set_user_key(&mut self, user_key: Option<SigningKey>) {
        self.user_key = user_key;
    }

    /// Loads the keeper again if another process on the device saved a newer one
    /// since this one was loaded or saved (one small read when nothing changed).
    pub fn refresh(&mut self, store: &dyn LocalStore) -> Result<(), KeysError> {
        let stored = store.get_meta(GENERATION_KEY)?;
        if stored == self.stamp {
            return Ok(());
        }
        tracing::debug!(
            mine = self.generation,
            "another process saved the keys: reloading"
        );
        self.reload(store)
    }

    /// Takes what is saved in `store` in place of this keeper (keeping the user key).
    fn reload(&mut self, store: &dyn LocalStore) -> Result<(), KeysError> {
        let loaded = Keeper::load(
            store,
            self.ring.user(),
            self.ring.device(),
            self.ring.signing_key().clone(),
        )?;
        let user_key = self.user_key.take();
        *self = loaded;
        self.user_key = user_key;
        Ok(())
    }

    /// Makes a change with `change` and saves it. When another process on the device
    /// saved keys since this keeper read them, the save is not made: the keeper takes
    /// theirs and makes the change again on them (so neither process's step is lost —
    /// a step that took log entries past the store's cursor, or made a Commit, could
    /// not be done again later). `change` may run more than once; only the last run's
    /// result counts.
    pub fn update<T>(
        &mut self,
        store: &dyn LocalStore,
        mut change: impl FnMut(&mut Keeper) -> Result<T, KeysError>,
    ) -> Result<T, KeysError> {
        for _ in 0..SAVE_TRIES {
            let out = change(self)?;
            if self.try_save(store)? {
                return Ok(out);
            }
            tracing::debug!(
                mine = self.generation,
                "another process saved the keys first: taking them and stepping again"
            );
            self.reload(store)?;
        }
        Err(KeysError::Busy)
    }

    /// The saved value with `generation` (the ring and the logs' progress, then the
    /// leaf refreshes).
    fn encoded(&self, generation: u64) -> Result<Vec<u8>, KeysError> {
        let saved = Saved {
            version: VERSION,
            user: self.ring.user(),
            device: self.ring.device(),
            generation,
            ring: self.ring.save()?,
            families: self.families.iter().map(|(f, k)| (*f, k.clone())).collect(),
        };
        let refreshes: Vec<(FamilyId, Refresh)> =
            self.refreshes.iter().map(|(f, r)| (*f, *r)).collect();
        Ok(postcard::to_allocvec(&saved)
            .and_then(|head| postcard::to_extend(&refreshes, head))
            .and_then(|head| postcard::to_extend(&self.published, head))
            .and_then(|head| postcard::to_extend(&self.rejoins, head))
            .and_then(|head| {
                let seen: Vec<_> = self.seen.iter().collect();
                postcard::to_extend(&seen, head)
            })
            .and_then(|head| {
                let sealed_from: Vec<_> = self.sealed_from.iter().collect();
                postcard::to_extend(&sealed_from, head)
            })
            .and_then(|head| {
                let closed: Vec<_> = self.clear_closed.iter().collect();
                postcard::to_extend(&closed, head)
            })
            .and_then(|head| {
                let removing: Vec<_> = self.removing.iter().collect();
                postcard::to_extend(&removing, head)
            })
            .map_err(|e| GroupError::Restore(e.to_string()))?)
    }

    /// Saves everything (one meta value, the ring and the logs' progress together,
    /// and its generation in one transaction) unless another process saved since
    /// this keeper read or wrote the keys: then nothing is written and the answer is
    /// `false`. Saving what was saved last writes nothing.
    fn try_save(&mut self, store: &dyn LocalStore) -> Result<bool, KeysError> {
        let digest = blake3::hash(&self.encoded(0)?);
        if self.generation > 0 && self.last_saved == Some(digest) {
            // Nothing to write — if what is on disk is still what this keeper read
            // (a step made on keys another process has moved on from is made again).
            return Ok(store.get_meta(GENERATION_KEY)? == self.stamp);
        }
        let generation = self.generation + 1;
        let bytes = self.encoded(generation)?;
        let stamp = [&generation.to_be_bytes()[..], &digest.as_bytes()[..8]].concat();
        let written = store.set_meta_if(
            GENERATION_KEY,
            self.stamp.as_deref(),
            &[(META_KEY, &bytes), (GENERATION_KEY, &stamp)],
        )?;
        if written {
            self.generation = generation;
            self.last_saved = Some(digest);
            self.stamp = Some(stamp);
        }
        Ok(written)
    }

    /// The key package to publish on the relay — if the relay may not have it yet,
    /// or whatever it has with `again` (a sign-in: a relay that lost it gets it back):
    /// a new one is made when none was, or the last is [`PUBLISH_EVERY_MS`] old (the
    /// private halves of the [`KEEP_PUBLISHED`] before it are kept, older ones
    /// forgotten). Save after.
    pub fn package_to_publish(
        &mut self,
        now_ms: i64,
        again: bool,
    ) -> Result<Option<Vec<u8>>, KeysError> {
        let now = now_or(now_ms);
        let due = match &self.published.current {
            None => true,
            // Old, or made by a clock more than a day ahead.
            Some((_, made, _)) => {
                now - made >= PUBLISH_EVERY_MS || *made > now.saturating_add(ASK_AGAIN_MS)
            }
        };
        if due {
            let fresh = self.ring.last_resort_package()?;
            if let Some((old, _, _)) = self.published.current.replace((fresh, now, false)) {
                self.published.earlier.push(old);
            }
            while self.published.earlier.len() > KEEP_PUBLISHED {
                let gone = self.published.earlier.remove(0);
                if let Err(e) = self.ring.forget_package(&gone.hash) {
                    tracing::warn!(error = %e, "an old key package was not forgotten");
                }
            }
        }
        Ok(match &self.published.current {
            Some((package, _, published)) if again || !published => Some(package.package.clone()),
            _ => None,
        })
    }

    /// The relay has `package` (from [`Keeper::package_to_publish`]). Save after.
    pub fn package_published(&mut self, package: &[u8]) {
        if let Some((current, _, published)) = &mut self.published.current
            && current.package == package
        {
            *published = true;
        }
    }

    /// The key ring, for what reads with it and changes nothing (invite cards).
    pub(crate) fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// Whether this keeper was never saved (a device that kept no keys before).
    pub fn is_new(&self) -> bool {
        self.generation == 0
    }

    /// Whether the family's documents are sealed, as far as this device knows.
    pub fn is_sealed(&self, family: FamilyId) -> bool {
        self.sealed(family) == Some(true)
    }

    /// Whether the family's documents are sealed, `None` if not known yet. A family
    /// whose id says it is sealed ([`FamilyId::says_sealed`]) is, whatever arrives.
    pub fn sealed(&self, family: FamilyId) -> Option<bool> {
        sealed_of(family, self.families.get(&family))
    }

    /// Whether the family's sealing was decided on this device (by its first chunk,
    /// or its creation here), whatever its id says.
    pub fn decided(&self, family: FamilyId) -> Option<bool> {
        self.families.get(&family).and_then(|k| k.sealed)
    }

    /// Decides, once, whether the family's documents are sealed; returns whether it
    /// was not decided before (save then).
    pub fn decide(&mut self, family: FamilyId, sealed: bool) -> bool {
        let keys = self.families.entry(family).or_default();
        if keys.sealed.is_some() {
            return false;
        }
        if family.says_sealed() && !sealed {
            // Its id says sealed: a clear first chunk is the relay's lie (refused as
            // it arrives), never a reason to write in the clear.
            tracing::warn!(%family, "a clear first chunk of a family whose id says it is sealed");
            return false;
        }
        keys.sealed = Some(sealed);
        if !sealed {
            // Whatever its key log brought before is nothing to this device.
            keys.waiting.clear();
        }
        true
    }

    /// Seals a family created clear, on its host's device: starts the family's key
    /// group (this device alone; the key task adds the others) and seals everything
    /// this device pushes from now on. Returns the group's first Commit to append,
    /// `None` if the family is not one this device knows as clear (sealed already,
    /// or its sealing not known yet).
    pub fn seal_clear_family(&mut self, family: FamilyId) -> Result<Option<Vec<u8>>, KeysError> {
        if family.says_sealed() || self.decided(family) != Some(false) || self.in_group(family) {
            return Ok(None);
        }
        let entry = self.create(family)?;
        self.sealed_from.insert(family, Seq::MAX);
        Ok(Some(entry))
    }

    /// A family this device knew as clear got its first envelope at `seq` (its host
    /// sealed it): sealed from there on. Also lowers the host's own `Seq::MAX` to the
    /// seq its first sealed chunk got. Returns whether anything changed (save then);
    /// the family's key log, which this device stopped reading while the family was
    /// clear, is read again.
    pub fn sealed_since(&mut self, family: FamilyId, seq: Seq) -> bool {
        if family.says_sealed() {
            return false;
        }
        if let Some(from) = self.sealed_from.get_mut(&family) {
            if seq < *from {
                *from = seq;
                return true;
            }
            return false;
        }
        if self.decided(family) != Some(false) {
            return false;
        }
        tracing::info!(%family, seq, "the family's host sealed its documents");
        self.families.entry(family).or_default().sealed = Some(true);
        self.sealed_from.insert(family, seq);
        true
    }

    /// A chunk of a family sealed since its creation arrived at `seq`: past its first
    /// envelope, every clear chunk is here, and none is taken again. Returns whether
    /// that is new (save then).
    pub fn close_clear(&mut self, family: FamilyId, seq: Seq) -> bool {
        self.closes_clear(family, seq) && self.clear_closed.insert(family)
    }

    /// Whether [`Keeper::close_clear`] would change anything (no save needed if not).
    pub fn closes_clear(&self, family: FamilyId, seq: Seq) -> bool {
        self.sealed_from
            .get(&family)
            .is_some_and(|&from| from != Seq::MAX && seq >= from)
            && !self.clear_closed.contains(&family)
    }

    /// Whether the family keeps per-year volumes (issue 17): a volume is sealed from
    /// its first change, and the relay opens one only in a family sealed from its
    /// creation, or once the host's first envelope sealed the family's document. This
    /// device knows that by the family's first chunk or snapshot arriving sealed, or
    /// by the seq of that first envelope (from the relay, or the ack of the host's own
    /// device; not the host's `Seq::MAX` before it).
    pub fn keeps_volumes(&self, family: FamilyId) -> bool {
        if family.says_sealed() {
            return true;
        }
        match self.sealed_from(family) {
            Some(from) => from != Seq::MAX,
            None => self.decided(family) == Some(true),
        }
    }

    /// The seq from which a family sealed by its host takes envelopes only (`None`:
    /// sealed from its creation, or clear; `Seq::MAX`: this device sealed it and its
    /// first sealed chunk has no seq yet).
    pub fn sealed_from(&self, family: FamilyId) -> Option<Seq> {
        self.sealed_from.get(&family).copied()
    }

    /// Whether this device has heard of the family's key log (a document id is the
    /// key log of a family it knows).
    pub fn knows(&self, family: FamilyId) -> bool {
        self.families.contains_key(&family)
    }

    /// Whether the group still holds a device that must leave it (a removed member's,
    /// a revoked one): its documents' changes wait for the Commit that takes it out,
    /// not to be sealed under a key it holds (and no snapshot of them is made).
    pub fn removing(&self, family: FamilyId) -> bool {
        self.removing.contains_key(&family)
    }

    /// Its user is removing `user` from the family — every device of theirs, or only
    /// `device` (revoked): the group's changes wait from now on, until a step finds
    /// none of those devices in the group. Returns whether that is new (save then).
    /// Nothing for a group this device is not in (it seals nothing there).
    pub fn hold_for_removal(
        &mut self,
        family: FamilyId,
        user: UserId,
        device: Option<doran_protocol::DeviceId>,
    ) -> bool {
        self.in_group(family)
            && self
                .removing
                .entry(family)
                .or_default()
                .targets
                .insert((user, device))
    }

    /// The removal held with [`hold_for_removal`](Self::hold_for_removal) did not
    /// happen (the relay refused it): the changes it held go on, unless something
    /// else holds them. Returns whether anything changed.
    pub fn release_removal(
        &mut self,
        family: FamilyId,
        user: UserId,
        device: Option<doran_protocol::DeviceId>,
    ) -> bool {
        let Some(removing) = self.removing.get_mut(&family) else {
            return false;
        };
        let released = removing.targets.remove(&(user, device));
        if removing.targets.is_empty() && !removing.gone {
            self.removing.remove(&family);
        }
        released
    }

    /// Whether this device is in the family's group (it can seal and open).
    pub fn in_group(&self, family: FamilyId) -> bool {
        self.ring.epoch(family).is_some()
    }

    /// The family's current epoch on this device.
    pub fn epoch(&self, family: FamilyId) -> Option<u64> {
        self.ring.epoch(family)
    }

    /// The devices of the family's group.
    pub fn members(&self, family: FamilyId) -> Vec<GroupMember> {
        self.ring.members(family).unwrap_or_default()
    }

    /// Starts a sealed family: its group with this device alone, and a first Commit
    /// (a refresh of this device's leaf) whose entry tells every other device the
    /// family is sealed. Returns the entry to append.
    pub fn create(&mut self, family: FamilyId) -> Result<Vec<u8>, KeysError> {
        self.ring.create(family)?;
        let commit = self.ring.update(family)?;
        let keys = self.families.entry(family).or_default();
        keys.sealed = Some(true);
        keys.pending_entry = Some(commit.entry.clone());
        Ok(commit.entry)
    }

    /// Every device seen in the family's group since the last
    /// [`Keeper::forget_seen`], after each Commit this device processed.
    pub fn seen(&self, family: FamilyId) -> Vec<GroupMember> {
        self.seen
            .get(&family)
            .into_iter()
            .flatten()
            .map(|(user, device)| GroupMember {
                user: *user,
                device: *device,
            })
            .collect()
    }

    /// Forgets the devices seen in the family's group (they were looked at).
    pub fn forget_seen(&mut self, family: FamilyId) {
        self.seen.remove(&family);
    }

    /// The secrets of every epoch of `group` this device holds, oldest first: what a
    /// device publishes of its user's profile key group in each family document.
    pub fn secrets(&self, group: FamilyId) -> Vec<(u64, [u8; 32])> {
        self.ring.secrets(group)
    }

    /// Takes secrets of `group` published in a family document (see
    /// [`KeyRing::learn`]); returns whether any was new (save then).
    pub fn learn(&mut self, group: FamilyId, secrets: &[(u64, [u8; 32])]) -> bool {
        self.ring.learn(group, secrets) > 0
    }

    /// Whether every one of `secrets` is held already (nothing to learn).
    pub fn holds(&self, group: FamilyId, secrets: &[(u64, [u8; 32])]) -> bool {
        let held = self.ring.secrets(group);
        secrets
            .iter()
            .all(|(e, _)| held.iter().any(|(h, _)| h == e))
    }

    /// Has this device move `group` to a new epoch at its next step (a Commit that
    /// refreshes its own leaf): a profile key group's readers changed, and what is
    /// written from now on must be sealed under a key the departed cannot derive.
    pub fn rotate(&mut self, group: FamilyId) {
        let refresh = self.refreshes.entry(group).or_insert(Refresh {
            at: 0,
            pending: false,
        });
        if !refresh.pending {
            refresh.at = 0;
        }
    }

    /// Seals an outgoing chunk of `doc` (the family's document). `None` if the
    /// family is not sealed (the chunk goes as it is); `Err` if it is and this device
    /// cannot seal yet (not in the group), or if it is not known yet whether it is:
    /// the chunk must wait.
    pub fn seal_chunk(
        &self,
        family: FamilyId,
        doc: DocId,
        changes: &[u8],
    ) -> Result<Option<Vec<u8>>, GroupError> {
        match self.sealed(family) {
            Some(false) => Ok(None),
            Some(true) => self.ring.seal_chunk(family, doc, changes).map(Some),
            None => Err(GroupError::UnknownFamily(family)),
        }
    }

    /// Seals a snapshot (a whole saved document) of a sealed family's document.
    pub fn seal_snapshot(
        &self,
        family: FamilyId,
        doc: DocId,
        saved: &[u8],
    ) -> Result<Option<Vec<u8>>, GroupError> {
        if !self.is_sealed(family) {
            return Ok(None);
        }
        self.ring.seal(family, doc, saved).map(Some)
    }

    /// Opens an incoming chunk (or snapshot) of `doc`, the family's document.
    /// A family whose sealing is not decided yet takes the answer from `bytes`
    /// (call [`Keeper::decide`] first with the family document's first chunk).
    pub fn open(&self, family: FamilyId, doc: DocId, bytes: &[u8]) -> Unsealed {
        self.open_at(family, doc, Seq::MAX, bytes)
    }

    /// [`Keeper::open`] for what arrived at `seq` (a chunk's seq, a snapshot's last
    /// covered one): in a family its host sealed after it was created, a clear chunk
    /// of the family's document from before the first envelope still opens as it is.
    /// The seqs are that document's: another document of the family (a volume, issue
    /// 17) takes no clear chunk once the family is sealed.
    pub fn open_at(&self, family: FamilyId, doc: DocId, seq: Seq, bytes: &[u8]) -> Unsealed {
        let envelope = doran_protocol::looks_sealed(bytes);
        let before_sealing = doc == DocId::from(family)
            && self
                .sealed_from
                .get(&family)
                .is_some_and(|&from| seq < from)
            && !self.clear_closed.contains(&family);
        match (self.sealed(family), envelope) {
            (Some(true), false) if before_sealing => return Unsealed::Clear,
            (Some(true), false) => return Unsealed::Refused(Refusal::ClearInSealed),
            (Some(false), true) => return Unsealed::Refused(Refusal::SealedInClear),
            (_, false) => return Unsealed::Clear,
            (_, true) => {}
        }
        match self.ring.open(family, doc, bytes) {
            Ok(changes) => Unsealed::Changes(changes),
            // Not let in yet: the document waits for the keys.
            Err(EnvelopeError::UnknownEpoch(_)) if !self.in_group(family) => Unsealed::NoKey,
            // In the group: an epoch it is behind on, or history still to come — or
            // a made-up epoch, which must not stop the document: kept aside.
            Err(EnvelopeError::UnknownEpoch(_)) => Unsealed::Hold,
            Err(e) => Unsealed::Refused(e.into()),
        }
    }

    /// Key log entries of `family` that arrived at these seqs (or this device's own,
    /// acked there). Returns whether any is new, and the seq before the first one
    /// not kept (too many waiting), if any: the log must not be read past it.
    pub fn arrived(&mut self, family: FamilyId, entries: &[(Seq, Vec<u8>)]) -> (bool, Option<Seq>) {
        let keys = self.families.entry(family).or_default();
        if sealed_of(family, Some(keys)) == Some(false) {
            // A clear family's key log has nothing for this device: nothing is kept
            // (a member filling it costs nobody's store), and it is not read past its
            // first entry — if the host seals the family, the device reads it from
            // there (`Keeper::sealed_since`).
            return (false, entries.first().map(|(seq, _)| seq.saturating_sub(1)));
        }
        let mut new = false;
        for (seq, bytes) in entries {
            if *seq <= keys.done {
                continue;
            }
            if keys.waiting.len() >= MAX_WAITING && !keys.waiting.contains_key(seq) {
                return (new, Some(seq - 1));
            }
            new |= keys.waiting.insert(*seq, bytes.clone()).is_none();
        }
        (new, None)
    }

    /// This device's pending entry, if the family has one not yet seen in the log.
    pub fn pending_entry(&self, family: FamilyId) -> Option<&[u8]> {
        self.families
            .get(&family)
            .and_then(|k| k.pending_entry.as_deref())
    }

    /// The families with a key log this device has heard of.
    pub fn families(&self) -> Vec<FamilyId> {
        self.families.keys().copied().collect()
    }

    /// Takes the family's waiting key log entries in order, as far as `known` lets it,
    /// then says what this device should append: its key package (it is not in the
    /// group of a sealed family), a history entry (its Commit added devices), a
    /// Commit adding the devices that asked and `known` vouches for, or removing the
    /// devices `known` says are gone. `append` is called with each entry to append
    /// (after the keeper's state that goes with it is settled; the caller saves).
    pub fn step(
        &mut self,
        family: FamilyId,
        known: &KnownDevices,
        now_ms: i64,
        append: &mut dyn FnMut(&[u8]) -> Result<(), KeysError>,
    ) -> Result<KeyStep, KeysError> {
        let mut out = KeyStep::default();
        self.process(family, known, now_or(now_ms), &mut out);
        let me = GroupMember {
            user: self.ring_user(),
            device: self.ring_device(),
        };
        let keys = self.families.entry(family).or_default();
        if sealed_of(family, Some(keys)) != Some(true) {
            return Ok(out);
        }
        if self.ring.epoch(family).is_none() {
            if self.ring.is_joining(family) {
                // This device's external commit waits: appended again unless it came
                // back already (a crash between saving and appending).
                if let Some(entry) = keys.pending_entry.clone()
                    && !keys.waiting.values().any(|w| *w == entry)
                {
                    append(&entry)?;
                    out.appended += 1;
                }
                return Ok(out);
            }
            // A GroupInfo of the epoch the log is at, from this user's escrow: join
            // by itself (a device restored from the phrase whose family nobody else
            // can let it into).
            let at = keys.top_epoch.map_or(0, |t| t + 1);
            let mut rejoin_waits = false;
            if self.user_key.is_some()
                && !out.waiting_for_certs
                && let Some((epoch, info)) = self.rejoins.infos.get(&family)
                && *epoch >= at
            {
                match self.ring.rejoin(family, info, known) {
                    Ok(commit) => {
                        keys.pending_entry = Some(commit.entry.clone());
                        append(&commit.entry)?;
                        out.appended += 1;
                        return Ok(out);
                    }
                    Err(e) if e.is_wait() => {
                        // A certificate has not come (this device's own, just sent,
                        // or a member's): tried again at the next step; meanwhile it
                        // asks to be added, as any new device does.
                        tracing::debug!(%family, error = %e, "joining from the escrow waits for certificates");
                        rejoin_waits = true;
                    }
                    Err(e) => {
                        tracing::warn!(%family, error = %e, "cannot join the family's group from the escrowed GroupInfo");
                        self.rejoins.infos.remove(&family);
                    }
                }
            }
            // Not in the group: ask to be added (again after a day without an answer).
            let due = keys
                .asked_at
                .is_none_or(|at| now_or(now_ms) - at >= ASK_AGAIN_MS);
            if due && !out.waiting_for_certs {
                let package = self.ring.key_packages(1)?.pop().unwrap_or_default();
                keys.asked_at = Some(now_or(now_ms));
                append(&package)?;
                out.appended += 1;
            }
            // Stepped again soon (the certificates are asked for).
            out.waiting_for_certs |= rejoin_waits;
            return Ok(out);
        }
        out.in_group = true;
        // Whether a device that must leave is still in the group (its Commit not made,
        // or not back yet): the group's documents' changes wait until it is out.
        let members = self.ring.members(family)?;
        let held = self.removing.contains_key(&family);
        let removing = self.removing.entry(family).or_default();
        removing.targets.retain(|(user, device)| {
            members
                .iter()
                .any(|m| m.user == *user && device.is_none_or(|d| m.device == d))
        });
        removing.gone =
            !out.waiting_for_certs && members.iter().any(|m| *m != me && known.is_gone(m));
        if removing.targets.is_empty() && !removing.gone {
            self.removing.remove(&family);
            if held {
                tracing::info!(%family, "the devices that had to leave the group are out: its changes go on");
                // Listed again from the oldest: what waited is sealed under this epoch.
                out.new_keys = true;
            }
        }
        if let Some(entry) = keys.pending_entry.clone() {
            // Appended again unless it came back already (the host skips an entry its
            // outbox holds): a crash may have come between saving and appending.
            if !keys.waiting.values().any(|w| *w == entry) {
                append(&entry)?;
            }
            return Ok(out);
        }
        if let Some(entry) = &keys.history_due {
            // Appended again until it comes back (a crash, a refused push).
            append(entry)?;
            out.appended += 1;
        }
        if let Some(user_key) = &self.user_key {
            let epoch = self.ring.epoch(family);
            let info_escrowed = self.rejoins.escrowed.get(&family).copied();
            if epoch.is_some() && (keys.escrowed < epoch || info_escrowed < epoch) {
                // Only the epochs not escrowed yet (the key log is never compacted),
                // and the current epoch's GroupInfo.
                let (epoch, entry) = self.ring.escrow(family, user_key, keys.escrowed)?;
                append(&entry)?;
                out.appended += 1;
                keys.escrowed = Some(epoch);
                self.rejoins.escrowed.insert(family, epoch);
            }
        }
        if self.ring.has_pending(family) || out.waiting_for_certs {
            return Ok(out);
        }
        // Devices to add: asked, vouched for, not in the group yet (one package each).
        let in_group = self.ring.members(family)?;
        let mut adds: BTreeMap<GroupMember, Vec<u8>> = BTreeMap::new();
        keys.requests
            .retain(|p| match self.ring.package_member(p, known) {
                Ok(m) if in_group.contains(&m) => false,
                Ok(m) => {
                    adds.insert(m, p.clone());
                    true
                }
                // Not vouched for (yet): kept, the certificates may come.
                Err(e) if e.is_wait() => {
                    out.unvouched += 1;
                    true
                }
                Err(_) => false,
            });
        // And the devices whose packages the relay's directory offered (an invitee's,
        // a member's device that never asked in the log): the same checks.
        let now_s = u64::try_from(now_or(now_ms) / 1000).unwrap_or(0);
        for package in known.offered() {
            if let Ok(m) = self.ring.offered_member(package, known, now_s)
                && !in_group.contains(&m)
            {
                adds.entry(m).or_insert_with(|| package.clone());
            }
        }
        let gone: Vec<GroupMember> = in_group
            .iter()
            .filter(|m| **m != me && known.is_gone(m))
            .copied()
            .collect();
        // First seen in the group: its leaf is new now (no refresh all at once when
        // devices first keep this).
        let refresh = self.refreshes.entry(family).or_insert(Refresh {
            at: now_or(now_ms),
            pending: false,
        });
        let commit = if !gone.is_empty() {
            Some(self.ring.remove(family, &gone, known)?)
        } else if !adds.is_empty() {
            let packages: Vec<Vec<u8>> = adds.into_values().collect();
            match self.ring.add(family, &packages, known) {
                Ok(commit) => Some(commit),
                Err(e) if e.is_wait() => return Err(e.into()),
                Err(e) => {
                    // A package the group refuses (signed, but not one it can take)
                    // must not stop the others, nor the family's other key work: the
                    // first that goes in alone is added now, the others at the next
                    // step; the refused ones leave the requests.
                    tracing::warn!(%family, error = %e, "a key package was refused; adding the others one by one");
                    let mut made = None;
                    for package in &packages {
                        match self.ring.add(family, std::slice::from_ref(package), known) {
                            Ok(commit) => {
                                made = Some(commit);
                                break;
                            }
                            Err(e) if e.is_wait() => return Err(e.into()),
                            Err(_) => keys.requests.retain(|r| r != package),
                        }
                    }
                    made
                }
            }
        } else if now_or(now_ms) - refresh.at >= REFRESH_MS
            || refresh.at > now_or(now_ms).saturating_add(ASK_AGAIN_MS)
        {
            // Due, or stamped by a clock that was more than a day ahead.
            let commit = self.ring.update(family)?;
            *refresh = Refresh {
                at: now_or(now_ms),
                pending: true,
            };
            Some(commit)
        } else {
            None
        };
        if let Some(commit) = commit {
            keys.pending_entry = Some(commit.entry.clone());
            append(&commit.entry)?;
            out.appended += 1;
        }
        Ok(out)
    }

    fn ring_user(&self) -> UserId {
        self.ring.user()
    }

    fn ring_device(&self) -> doran_protocol::DeviceId {
        self.ring.device()
    }

    /// Processes the family's waiting entries in seq order from `done + 1`.
    fn process(&mut self, family: FamilyId, known: &KnownDevices, now_ms: i64, out: &mut KeyStep) {
        let Some(keys) = self.families.get_mut(&family) else {
            return;
        };
        while let Some(entry) = keys.waiting.get(&(keys.done + 1)).cloned() {
            let seq = keys.done + 1;
            let mut bump = None;
            let verdict = match classify(&entry) {
                Ok(LogEntry::KeyPackage) => {
                    if keys.requests.len() >= MAX_REQUESTS {
                        keys.requests.remove(0);
                    }
                    keys.requests.push(entry.clone());
                    Ok(())
                }
                Ok(LogEntry::History { .. }) if keys.history_due.as_ref() == Some(&entry) => {
                    // This device's own history entry is in the log.
                    keys.history_due = None;
                    Ok(())
                }
                Ok(LogEntry::Escrow { user, .. }) => match &self.user_key {
                    Some(user_key) if user == self.ring.user() => {
                        match self.ring.take_escrow(family, &entry, user_key) {
                            Ok(escrowed) => {
                                out.new_keys |= escrowed.taken > 0;
                                if let Some((epoch, info)) = escrowed.group_info
                                    && self
                                        .rejoins
                                        .infos
                                        .get(&family)
                                        .is_none_or(|(kept, _)| *kept <= epoch)
                                {
                                    self.rejoins.infos.insert(family, (epoch, info));
                                }
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                    // Another user's, or this device cannot open it.
                    _ => Ok(()),
                },
                Ok(LogEntry::History { .. }) => match self.ring.take_history(family, &entry) {
                    Ok(taken) => {
                        out.new_keys |= taken > 0;
                        Ok(())
                    }
                    // Another device's history for the devices it added, or one this
                    // device (not in the group yet, or in it from before) has no use
                    // for: the normal case, nothing to say.
                    Err(GroupError::NotForThisDevice | GroupError::UnknownFamily(_)) => Ok(()),
                    Err(e) => Err(e),
                },
                Ok(LogEntry::Commit { welcome, epoch, .. }) => {
                    // A device outside the group cannot check a Commit (it is
                    // encrypted to the group): it goes by the entries a device it
                    // knows signed — one the relay made counts for nothing, as the
                    // devices in the group refuse it — and the first such entry of a
                    // later epoch than any before it is that epoch's.
                    let in_group = self.ring.epoch(family).is_some();
                    let counts =
                        in_group || crate::group::entry_signed_by_known(family, &entry, known);
                    let first = counts && keys.top_epoch.is_none_or(|t| epoch > t);
                    bump = first.then_some(epoch);
                    if !counts {
                        tracing::debug!(%family, seq, "a commit entry no known device signed: not counted");
                        Ok(())
                    } else if in_group {
                        let mine = keys.pending_entry.as_deref() == Some(entry.as_slice());
                        match self.ring.process(family, &entry, known) {
                            Ok(Processed::Accepted { .. }) => {
                                keys.pending_entry = None;
                                if let Some(r) = self.refreshes.get_mut(&family) {
                                    r.pending = false;
                                }
                                note_seen(&mut self.seen, &self.ring, family);
                                // A Commit adding devices owes them the history.
                                if welcome {
                                    match self.ring.history(family) {
                                        Ok(entry) => keys.history_due = Some(entry),
                                        Err(e) => {
                                            tracing::warn!(%family, error = %e, "no history for the devices just added");
                                        }
                                    }
                                }
                                out.new_keys = true;
                                Ok(())
                            }
                            Ok(Processed::Superseded { .. } | Processed::Advanced { .. }) => {
                                note_seen(&mut self.seen, &self.ring, family);
                                if !mine {
                                    // Ours lost its epoch: made again on the next step.
                                    keys.pending_entry = keys
                                        .pending_entry
                                        .take()
                                        .filter(|_| self.ring.has_pending(family));
                                    if let Some(r) = self.refreshes.get_mut(&family)
                                        && r.pending
                                        && !self.ring.has_pending(family)
                                    {
                                        *r = Refresh::default();
                                    }
                                }
                                out.new_keys = true;
                                Ok(())
                            }
                            // (`JoinLost` comes only while an external commit waits, out
                            // of the group.)
                            Ok(Processed::Stale | Processed::JoinLost) => Ok(()),
                            Ok(Processed::Removed) => {
                                keys.pending_entry = None;
                                keys.asked_at = None;
                                self.refreshes.remove(&family);
                                Ok(())
                            }
                            Err(GroupError::OwnCommitLost) => {
                                keys.pending_entry = None;
                                if let Some(r) = self.refreshes.get_mut(&family) {
                                    r.pending = false;
                                }
                                Err(GroupError::OwnCommitLost)
                            }
                            Err(e) => Err(e),
                        }
                    } else {
                        // This device's external commit, if one waits: in with it, or
                        // lost to this Commit (which may then let the device in).
                        let joined = if self.ring.is_joining(family) {
                            match self.ring.process(family, &entry, known) {
                                Ok(Processed::Accepted { .. }) => {
                                    keys.pending_entry = None;
                                    Some(Ok(()))
                                }
                                Ok(Processed::JoinLost) => {
                                    keys.pending_entry = None;
                                    self.rejoins.infos.remove(&family);
                                    None
                                }
                                Ok(_) => Some(Ok(())),
                                Err(e) => Some(Err(e)),
                            }
                        } else {
                            None
                        };
                        let verdict = match joined {
                            Some(verdict) => verdict,
                            // Added, removed and added again before it read any of it
                            // (an invite withdrawn, then sent again): joined from the
                            // latest Welcome for it, never from one whose group then
                            // removes it — it would judge that Remove by today's
                            // membership, refuse it, and stay behind for good.
                            None if welcome
                                && first
                                && later_welcome(
                                    &keys.waiting,
                                    &self.ring,
                                    (family, seq, epoch),
                                    known,
                                ) =>
                            {
                                tracing::debug!(%family, seq, "a later welcome for this device: this one is passed");
                                Ok(())
                            }
                            None if welcome && first => {
                                self.ring.join(family, &entry, known).map(|_| ())
                            }
                            None => Ok(()),
                        };
                        match verdict {
                            Ok(()) if self.ring.epoch(family).is_some() => {
                                // In, with a new leaf.
                                self.refreshes.insert(
                                    family,
                                    Refresh {
                                        at: now_ms,
                                        pending: false,
                                    },
                                );
                                out.new_keys = true;
                                Ok(())
                            }
                            Err(GroupError::NotForThisDevice) => Ok(()),
                            other => other,
                        }
                    }
                }
                Err(e) => Err(e),
            };
            match verdict {
                Err(e) if e.is_wait() => {
                    tracing::debug!(%family, seq, error = %e, "a key log entry waits for certificates");
                    out.waiting_for_certs = true;
                    return;
                }
                Err(e) => {
                    // Refused alike by every honest device: skipped.
                    tracing::warn!(%family, seq, error = %e, "skipping a key log entry");
                }
                Ok(()) => {}
            }
            if bump.is_some() {
                keys.top_epoch = bump;
            }
            keys.waiting.remove(&seq);
            keys.done = seq;
        }
    }
}

/// Whether the family's key log (`waiting`), past `seq` (a Commit entry of `epoch`
/// with a Welcome for this device), holds a Commit entry of a later epoch, signed by
/// the same device — vouched for by `known` — whose Welcome names one of this
/// device's key packages: that device added this one again. (Only the same device:
/// another member could otherwise draw a newcomer into a group of its own making by
/// appending a later "Welcome" for it.)
fn later_welcome(
    waiting: &BTreeMap<Seq, Vec<u8>>,
    ring: &KeyRing,
    (family, seq, epoch): (FamilyId, Seq, u64),
    known: &KnownDevices,
) -> bool {
    let Some(adder) = waiting
        .get(&seq)
        .and_then(|e| crate::group::entry_signer(e))
    else {
        return false;
    };
    waiting.range(seq + 1..).any(|(_, entry)| {
        matches!(classify(entry), Ok(LogEntry::Commit { welcome: true, epoch: later, .. }) if later > epoch)
            && crate::group::entry_signer(entry) == Some(adder)
            && crate::group::entry_signed_by_known(family, entry, known)
            && ring.welcome_names_me(entry)
    })
}

/// The outgoing id a sealed chunk's plaintext id maps to, for acks.
pub(crate) type SealedIds = std::collections::HashMap<(DocId, ChunkId), ChunkId>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use doran_protocol::DeviceId;

    use super::*;
    use crate::{keys::random_key, store::MemoryStore};

    /// A keeper saved before leaf refreshes were kept (nothing after the rest) loads
    /// as it was, with no refresh known; one saved now keeps them, and a build that
    /// knows nothing of them reads the rest.
    #[test]
    fn a_keeper_saved_without_refreshes_still_loads() {
        let store = MemoryStore::new();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let key = random_key().unwrap();
        let family = FamilyId([2; 16]);
        let mut keeper = Keeper::load(&store, user, device, key.clone()).unwrap();
        keeper.decide(family, true);
        keeper.refreshes.insert(
            family,
            Refresh {
                at: 5,
                pending: true,
            },
        );
        keeper.update(&store, |_| Ok(())).unwrap();
        let loaded = Keeper::load(&store, user, device, key.clone()).unwrap();
        assert!(
            loaded
                .refreshes
                .get(&family)
                .is_some_and(|r| r.at == 5 && r.pending)
        );

        let bytes = store.get_meta(META_KEY).unwrap().unwrap();
        let (saved, rest): (Saved, &[u8]) = postcard::take_from_bytes(&bytes).unwrap();
        assert!(!rest.is_empty(), "the refreshes follow");
        let older: Saved = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(older.families.len(), 1, "an older build reads the rest");
        store
            .set_meta(META_KEY, &postcard::to_allocvec(&saved).unwrap())
            .unwrap();
        let old = Keeper::load(&store, user, device, key).unwrap();
        assert!(old.is_sealed(family));
        assert!(old.refreshes.is_empty());
    }

    /// A removal held (its user just removed a member, or revoked a device) holds
    /// only a group this device is in, survives a reload, and a keeper saved before
    /// this value loads with nothing held.
    #[test]
    fn a_removal_held_is_kept_for_groups_this_device_is_in() {
        let store = MemoryStore::new();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let key = random_key().unwrap();
        let (family, other) = (FamilyId([2; 16]), FamilyId([4; 16]));
        let mut keeper = Keeper::load(&store, user, device, key.clone()).unwrap();
        keeper.decide(family, false);
        assert!(keeper.seal_clear_family(family).unwrap().is_some());
        let (son, laptop) = (UserId([5; 16]), DeviceId([6; 16]));
        assert!(!keeper.removing(family));
        assert!(keeper.hold_for_removal(family, son, None));
        assert!(!keeper.hold_for_removal(family, son, None), "once");
        assert!(keeper.hold_for_removal(family, user, Some(laptop)));
        assert!(
            !keeper.hold_for_removal(other, son, None),
            "not in its group: nothing to hold"
        );
        keeper.update(&store, |_| Ok(())).unwrap();
        let mut loaded = Keeper::load(&store, user, device, key.clone()).unwrap();
        assert!(loaded.removing(family) && !loaded.removing(other));
        // A removal the relay refused lets the changes go, once nothing else holds them.
        assert!(loaded.release_removal(family, son, None));
        assert!(
            loaded.removing(family),
            "the laptop's revocation still holds"
        );
        assert!(loaded.release_removal(family, user, Some(laptop)));
        assert!(!loaded.removing(family));
        assert!(!loaded.release_removal(family, user, Some(laptop)));

        let bytes = store.get_meta(META_KEY).unwrap().unwrap();
        let saved: Vec<(FamilyId, Removing)> = keeper.removing.clone().into_iter().collect();
        let tail = postcard::to_allocvec(&saved).unwrap().len();
        store
            .set_meta(META_KEY, &bytes[..bytes.len() - tail])
            .unwrap();
        let older = Keeper::load(&store, user, device, key).unwrap();
        assert!(older.in_group(family) && !older.removing(family));
    }

    /// A family known as clear, sealed by its host: on the host's device its group
    /// starts and everything seals from there; on another member's, the first
    /// envelope (at seq 5) turns it: clear chunks before it still open, none after,
    /// and its key log (stopped at its first entry while clear) is read from there.
    /// Both survive a reload, and a keeper saved before this value still loads.
    #[test]
    fn a_clear_family_sealed_by_its_host_opens_clear_only_before_its_first_envelope() {
        let store = MemoryStore::new();
        let family = FamilyId([2; 16]);
        let doc = DocId::from(family);
        let key = random_key().unwrap();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let mut host = Keeper::load(&store, user, device, key.clone()).unwrap();
        assert_eq!(
            host.seal_clear_family(family).unwrap(),
            None,
            "not known as clear"
        );
        host.decide(family, false);
        assert_eq!(
            host.arrived(family, &[(3, b"a member's entry".to_vec())]),
            (false, Some(2)),
            "a clear family's key log stops before its first entry"
        );
        assert!(host.seal_clear_family(family).unwrap().is_some());
        assert!(host.in_group(family) && host.is_sealed(family));
        assert_eq!(host.sealed_from(family), Some(Seq::MAX));
        assert!(host.seal_clear_family(family).unwrap().is_none(), "once");
        assert!(matches!(
            host.open_at(family, doc, 4, b"clear"),
            Unsealed::Clear
        ));
        assert!(host.sealed_since(family, 5), "its first sealed chunk's seq");
        assert!(!host.sealed_since(family, 9), "never later");
        assert!(matches!(
            host.open_at(family, doc, 5, b"clear"),
            Unsealed::Refused(_)
        ));
        assert!(host.seal_chunk(family, doc, b"changes").unwrap().is_some());
        host.update(&store, |_| Ok(())).unwrap();
        let again = Keeper::load(&store, user, device, key).unwrap();
        assert_eq!(again.sealed_from(family), Some(5));

        let other = MemoryStore::new();
        let (user, device) = (UserId([3; 16]), DeviceId([3; 16]));
        let key = random_key().unwrap();
        let mut son = Keeper::load(&other, user, device, key.clone()).unwrap();
        assert!(
            !son.sealed_since(family, 5),
            "sealing not known yet: nothing turns"
        );
        son.decide(family, false);
        assert!(son.sealed_since(family, 5));
        assert!(son.is_sealed(family) && !son.in_group(family));
        assert!(matches!(
            son.open_at(family, doc, 4, b"clear"),
            Unsealed::Clear
        ));
        // Those seqs are the family document's: a volume's clear chunk at seq 4 is
        // not from before the sealing.
        assert!(matches!(
            son.open_at(family, family.volume(2026), 4, b"clear"),
            Unsealed::Refused(Refusal::ClearInSealed)
        ));
        assert!(matches!(
            son.open_at(family, doc, 6, b"clear"),
            Unsealed::Refused(_)
        ));
        assert!(matches!(
            son.open(family, doc, b"clear snapshot"),
            Unsealed::Refused(_)
        ));
        // A real envelope of the host's group: the son waits to be let in.
        let envelope = host.seal_chunk(family, doc, b"changes").unwrap().unwrap();
        assert!(matches!(
            son.open_at(family, doc, 6, &envelope),
            Unsealed::NoKey
        ));
        assert!(
            son.seal_chunk(family, doc, b"changes").is_err(),
            "waits for the group"
        );
        assert_eq!(
            son.arrived(family, &[(3, b"the host's Commit".to_vec())]),
            (true, None),
            "its key log is kept now"
        );
        // A family sealed from its creation never turns, and never takes clear.
        let marked = FamilyId::new_family(true);
        assert!(!son.sealed_since(marked, 1));
        assert!(son.sealed_from(marked).is_none());
        // Past the first envelope, every clear chunk is here: none is taken again,
        // not even one served again below it after the document starts over.
        assert!(!son.closes_clear(family, 4));
        assert!(son.close_clear(family, 6));
        assert!(!son.close_clear(family, 7), "once");
        assert!(matches!(
            son.open_at(family, doc, 4, b"clear"),
            Unsealed::Refused(_)
        ));
        son.update(&other, |_| Ok(())).unwrap();
        let loaded = Keeper::load(&other, user, device, key.clone()).unwrap();
        assert_eq!(loaded.sealed_from(family), Some(5));
        assert!(matches!(
            loaded.open_at(family, doc, 4, b"clear"),
            Unsealed::Refused(_)
        ));
        // Saved by a build without these values: loads with no family sealed later.
        let bytes = other.get_meta(META_KEY).unwrap().unwrap();
        let tail = postcard::to_allocvec(&vec![(family, 5u64)]).unwrap().len()
            + postcard::to_allocvec(&vec![family]).unwrap().len()
            + postcard::to_allocvec(&Vec::<FamilyId>::new())
                .unwrap()
                .len();
        other
            .set_meta(META_KEY, &bytes[..bytes.len() - tail])
            .unwrap();
        assert!(
            Keeper::load(&other, user, device, key)
                .unwrap()
                .sealed_from(family)
                .is_none()
        );
    }

    /// Saving what was saved last writes nothing (every key step saves); a change is
    /// written with the next generation.
    #[test]
    fn saving_the_same_again_writes_nothing() {
        let store = MemoryStore::new();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let mut keeper = Keeper::load(&store, user, device, random_key().unwrap()).unwrap();
        keeper.update(&store, |_| Ok(())).unwrap();
        assert_eq!(keeper.generation, 1);
        keeper.update(&store, |_| Ok(())).unwrap();
        assert_eq!(keeper.generation, 1, "nothing changed");
        keeper.decide(FamilyId([2; 16]), true);
        keeper.update(&store, |_| Ok(())).unwrap();
        assert_eq!(keeper.generation, 2);
        let saved = store.get_meta(GENERATION_KEY).unwrap().unwrap();
        assert_eq!(saved[..8], 2u64.to_be_bytes());
    }

    /// Two processes on one device change their keys from the same saved ones: the
    /// second save does not overwrite the first — it takes the first's keys and makes
    /// its change again on them, so both changes are kept.
    #[test]
    fn two_processes_saving_at_once_both_keep_their_change() {
        let store = MemoryStore::new();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let key = random_key().unwrap();
        let mut first = Keeper::load(&store, user, device, key.clone()).unwrap();
        first.update(&store, |_| Ok(())).unwrap();
        let mut a = Keeper::load(&store, user, device, key.clone()).unwrap();
        let mut b = Keeper::load(&store, user, device, key.clone()).unwrap();
        a.update(&store, |k| Ok(k.decide(FamilyId([2; 16]), true)))
            .unwrap();
        let mut runs = 0;
        b.update(&store, |k| {
            runs += 1;
            Ok(k.decide(FamilyId([3; 16]), false))
        })
        .unwrap();
        assert_eq!(
            runs, 2,
            "b's first save lost to a's: made again on a's keys"
        );
        assert_eq!(b.sealed(FamilyId([2; 16])), Some(true), "a's change, taken");
        assert_eq!(b.sealed(FamilyId([3; 16])), Some(false), "its own, kept");
        a.refresh(&store).unwrap();
        assert_eq!(a.sealed(FamilyId([2; 16])), Some(true));
        assert_eq!(
            a.sealed(FamilyId([3; 16])),
            Some(false),
            "b's change, taken"
        );
        let loaded = Keeper::load(&store, user, device, key).unwrap();
        assert_eq!(loaded.sealed(FamilyId([2; 16])), Some(true));
        assert_eq!(loaded.sealed(FamilyId([3; 16])), Some(false));
        assert_eq!(loaded.generation, 3);
    }

    /// A step that changes nothing, made on keys another process has moved on from,
    /// is made again on theirs (it may owe the log what their keys settled).
    #[test]
    fn a_step_on_keys_another_process_moved_on_from_is_made_again() {
        let store = MemoryStore::new();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let key = random_key().unwrap();
        let mut a = Keeper::load(&store, user, device, key.clone()).unwrap();
        a.update(&store, |_| Ok(())).unwrap();
        let mut b = Keeper::load(&store, user, device, key).unwrap();
        b.update(&store, |k| Ok(k.decide(FamilyId([2; 16]), true)))
            .unwrap();
        let mut seen = Vec::new();
        a.update(&store, |k| {
            seen.push(k.sealed(FamilyId([2; 16])));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [None, Some(true)], "made again on b's keys");
    }

    /// A reload that fails keeps the user key (escrow goes on once keys load again).
    #[test]
    fn a_failed_reload_keeps_the_user_key() {
        let store = MemoryStore::new();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let mut keeper = Keeper::load(&store, user, device, random_key().unwrap()).unwrap();
        keeper.set_user_key(Some(random_key().unwrap()));
        keeper.update(&store, |_| Ok(())).unwrap();
        store.set_meta(META_KEY, b"not a keeper").unwrap();
        store.set_meta(GENERATION_KEY, b"other").unwrap();
        assert!(keeper.refresh(&store).is_err());
        assert!(keeper.user_key.is_some());
    }

    /// Two processes stepping at once on one SQLite file (two connections, each its
    /// own keeper, as `doran watch` beside a `doran sync`): every change of both is
    /// on disk at the end.
    #[test]
    fn two_connections_saving_at_once_lose_nothing() {
        const STEPS: u8 = 150;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.sqlite");
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let key = random_key().unwrap();
        drop(crate::store::SqliteStore::open(&path).unwrap());
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let workers: Vec<_> = [1u8, 2]
            .into_iter()
            .map(|process| {
                let (path, key, start) = (path.clone(), key.clone(), start.clone());
                std::thread::spawn(move || {
                    let store = crate::store::SqliteStore::open(&path).unwrap();
                    let mut keeper = Keeper::load(&store, user, device, key).unwrap();
                    start.wait();
                    for step in 0..STEPS {
                        let family =
                            FamilyId([process, step, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                        keeper
                            .update(&store, |k| Ok(k.decide(family, process == 1)))
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let store = crate::store::SqliteStore::open(&path).unwrap();
        let keeper = Keeper::load(&store, user, device, key).unwrap();
        for process in [1u8, 2] {
            for step in 0..STEPS {
                let family = FamilyId([process, step, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                assert_eq!(
                    keeper.sealed(family),
                    Some(process == 1),
                    "{process}/{step}"
                );
            }
        }
    }

    /// A keeper that read the keys another process saved last writes nothing when
    /// nothing changed (every key step saves).
    #[test]
    fn a_loaded_keeper_saving_unchanged_keys_writes_nothing() {
        let store = MemoryStore::new();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let key = random_key().unwrap();
        let mut first = Keeper::load(&store, user, device, key.clone()).unwrap();
        first
            .update(&store, |k| Ok(k.decide(FamilyId([2; 16]), true)))
            .unwrap();
        let mut again = Keeper::load(&store, user, device, key).unwrap();
        again.update(&store, |_| Ok(())).unwrap();
        assert_eq!(again.generation, 1);
        first.refresh(&store).unwrap();
        assert_eq!(first.generation, 1, "nothing was saved in between");
    }

    const WEEK: i64 = PUBLISH_EVERY_MS;

    /// The package to publish: made once, offered until the relay has it, again on
    /// a sign-in; a new one a week later, the private halves of the twelve before it
    /// kept and older ones forgotten; kept across a save and a load (a third saved
    /// value), and a keeper saved without it loads with none.
    #[test]
    fn the_published_package_is_kept_offered_until_published_and_made_weekly() {
        let store = MemoryStore::new();
        let (user, device) = (UserId([1; 16]), DeviceId([1; 16]));
        let key = random_key().unwrap();
        let mut keeper = Keeper::load(&store, user, device, key.clone()).unwrap();
        let t0 = 1_800_000_000_000;
        let first = keeper
            .package_to_publish(t0, false)
            .unwrap()
            .expect("a package");
        assert_eq!(
            keeper.package_to_publish(t0 + 1, false).unwrap(),
            Some(first.clone())
        );
        keeper.package_published(&first);
        assert_eq!(
            keeper.package_to_publish(t0 + 2, false).unwrap(),
            None,
            "the relay has it"
        );
        assert_eq!(
            keeper.package_to_publish(t0 + 3, true).unwrap(),
            Some(first.clone()),
            "again on a sign-in"
        );
        keeper.update(&store, |_| Ok(())).unwrap();
        let mut loaded = Keeper::load(&store, user, device, key.clone()).unwrap();
        assert_eq!(loaded.package_to_publish(t0 + 4, false).unwrap(), None);
        let next = loaded
            .package_to_publish(t0 + WEEK, false)
            .unwrap()
            .expect("a new one a week on");
        assert_ne!(next, first);
        assert_eq!(loaded.published.earlier.len(), 1);
        for week in 2..20 {
            loaded.package_to_publish(t0 + week * WEEK, false).unwrap();
        }
        assert_eq!(loaded.published.earlier.len(), KEEP_PUBLISHED);

        // Saved without the third value: none, and one is made.
        let bytes = store.get_meta(META_KEY).unwrap().unwrap();
        let (saved, rest): (Saved, &[u8]) = postcard::take_from_bytes(&bytes).unwrap();
        let (refreshes, rest): (Vec<(FamilyId, Refresh)>, &[u8]) =
            postcard::take_from_bytes(rest).unwrap();
        assert!(!rest.is_empty(), "the published package follows");
        let older = postcard::to_allocvec(&saved)
            .and_then(|head| postcard::to_extend(&refreshes, head))
            .unwrap();
        store.set_meta(META_KEY, &older).unwrap();
        let mut old = Keeper::load(&store, user, device, key).unwrap();
        assert!(old.published.current.is_none());
        assert!(old.package_to_publish(t0, false).unwrap().is_some());
    }

    /// A package the relay's directory offers is added like one asked for in the log
    /// — once it is vouched for.
    /// Mom's only phone is lost; a device restored from the phrase joins the family's
    /// group by itself from the GroupInfo the phone escrowed — and a Commit entry of
    /// that epoch no known device signed (the relay's), arriving after the escrow,
    /// neither keeps it from trying nor makes it give up.
    #[test]
    fn a_restored_device_rejoins_whatever_unsigned_entries_the_relay_adds() {
        let family = FamilyId::new_family(true);
        let mom = UserId([1; 16]);
        let user_key = random_key().unwrap();
        let (phone_key, restored_key) = (random_key().unwrap(), random_key().unwrap());
        let (phone_id, restored_id) = (DeviceId([1; 16]), DeviceId([9; 16]));
        let mut known = KnownDevices::new();
        known.insert(mom, phone_id, crate::keys::public_key(&phone_key));
        known.insert(mom, restored_id, crate::keys::public_key(&restored_key));

        // The phone starts the family and escrows its first epoch.
        let phone_store = MemoryStore::new();
        let mut phone = Keeper::load(&phone_store, mom, phone_id, phone_key).unwrap();
        phone.set_user_key(Some(user_key.clone()));
        let mut log = vec![phone.create(family).unwrap()];
        phone.arrived(family, &[(1, log[0].clone())]);
        phone
            .step(family, &known, 1, &mut |e| {
                log.push(e.to_vec());
                Ok(())
            })
            .unwrap();
        assert!(matches!(
            classify(&log[1]).unwrap(),
            LogEntry::Escrow { epoch: 1, .. }
        ));

        // The relay's entry for epoch 1: a genuine-looking Commit of a group with the
        // family's id, signed by a device nobody knows.
        let mut stranger = KeyRing::new(UserId([7; 16]), DeviceId([7; 16]), random_key().unwrap());
        stranger.create(family).unwrap();
        let first = stranger.update(family).unwrap();
        stranger
            .process(family, &first.entry, &KnownDevices::new())
            .unwrap();
        let junk = stranger.update(family).unwrap().entry;
        assert!(matches!(
            classify(&junk).unwrap(),
            LogEntry::Commit { epoch: 1, .. }
        ));
        log.push(junk);

        let store = MemoryStore::new();
        let mut restored = Keeper::load(&store, mom, restored_id, restored_key).unwrap();
        restored.set_user_key(Some(user_key));
        let entries: Vec<(Seq, Vec<u8>)> = (1..).zip(log.iter().cloned()).collect();
        restored.arrived(family, &entries);
        let mut appended = Vec::new();
        restored
            .step(family, &known, 2, &mut |e| {
                appended.push(e.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(appended.len(), 1, "its external commit");
        assert!(matches!(
            classify(&appended[0]).unwrap(),
            LogEntry::Commit {
                epoch: 1,
                welcome: false,
                ..
            }
        ));
        assert!(!restored.in_group(family));
        // The relay's entry again, then its own: in.
        let next = Seq::try_from(log.len()).unwrap() + 1;
        restored.arrived(
            family,
            &[(next, log[2].clone()), (next + 1, appended[0].clone())],
        );
        restored.step(family, &known, 3, &mut |_| Ok(())).unwrap();
        assert!(restored.in_group(family));
    }

    #[test]
    fn an_offered_package_is_added_when_vouched_for_and_fresh() {
        let store = MemoryStore::new();
        let family = FamilyId([2; 16]);
        let (mom, son) = (UserId([1; 16]), UserId([3; 16]));
        let mom_key = random_key().unwrap();
        let mut keeper = Keeper::load(&store, mom, DeviceId([1; 16]), mom_key.clone()).unwrap();
        let first = keeper.create(family).unwrap();
        let mut known = KnownDevices::new();
        known.insert(mom, DeviceId([1; 16]), crate::keys::public_key(&mom_key));
        keeper.arrived(family, &[(1, first)]);
        // The packages' lifetimes are the clock's: so is the step's time.
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        keeper.step(family, &known, now, &mut |_| Ok(())).unwrap();
        assert!(keeper.in_group(family));

        let son_key = random_key().unwrap();
        let mut son_ring = KeyRing::new(son, DeviceId([3; 16]), son_key.clone());
        let package = son_ring.last_resort_package().unwrap().package;
        known.offer(package);
        // Not vouched for: nothing.
        let step = keeper.step(family, &known, now, &mut |_| Ok(())).unwrap();
        assert_eq!(step.appended, 0);
        known.insert(son, DeviceId([3; 16]), crate::keys::public_key(&son_key));
        known.set_invited([son]);
        let mut appended = Vec::new();
        let step = keeper
            .step(family, &known, now, &mut |e| {
                appended.push(e.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(step.appended, 1, "the Commit adding him");
        assert!(matches!(
            classify(&appended[0]).unwrap(),
            LogEntry::Commit { welcome: true, .. }
        ));
    }

    /// An invite withdrawn and sent again: the son's device, outside the group, passes
    /// mom's first Welcome for the later one her device made — never for a "Welcome"
    /// another device appended under its own name.
    #[test]
    fn a_later_welcome_counts_only_from_the_device_that_added_this_one() {
        use ed25519_dalek::Signer as _;

        use crate::group::{Commit, GroupMember};

        let family = FamilyId([2; 16]);
        let (mom, son, dad) = (UserId([1; 16]), UserId([3; 16]), UserId([4; 16]));
        let (mom_dev, son_dev, dad_dev) = (DeviceId([1; 16]), DeviceId([3; 16]), DeviceId([4; 16]));
        let (mom_key, son_key, dad_key) = (
            random_key().unwrap(),
            random_key().unwrap(),
            random_key().unwrap(),
        );
        let mut mom_ring = KeyRing::new(mom, mom_dev, mom_key.clone());
        let mut son_ring = KeyRing::new(son, son_dev, son_key.clone());
        let mut known = KnownDevices::new();
        for (user, device, key) in [
            (mom, mom_dev, &mom_key),
            (son, son_dev, &son_key),
            (dad, dad_dev, &dad_key),
        ] {
            known.insert(user, device, crate::keys::public_key(key));
        }
        // The son is invited, not a member: his device may be removed.
        known.set_members([mom, dad]);
        mom_ring.create(family).unwrap();
        let package = son_ring.last_resort_package().unwrap().package;
        let commit = |ring: &mut KeyRing, made: Commit| {
            ring.process(family, &made.entry, &known).unwrap();
            made.entry
        };
        let added = mom_ring
            .add(family, std::slice::from_ref(&package), &known)
            .unwrap();
        let first = commit(&mut mom_ring, added);
        let son_member = GroupMember {
            user: son,
            device: son_dev,
        };
        let removed = mom_ring.remove(family, &[son_member], &known).unwrap();
        let gone = commit(&mut mom_ring, removed);
        let added = mom_ring
            .add(family, std::slice::from_ref(&package), &known)
            .unwrap();
        let again = commit(&mut mom_ring, added);
        let epoch = |entry: &[u8]| match classify(entry).unwrap() {
            LogEntry::Commit { epoch, .. } => epoch,
            other => panic!("a commit entry: {other:?}"),
        };
        assert!(son_ring.welcome_names_me(&first) && son_ring.welcome_names_me(&again));
        assert!(!son_ring.welcome_names_me(&gone));

        let log = |entries: &[&Vec<u8>]| -> BTreeMap<Seq, Vec<u8>> {
            entries
                .iter()
                .zip(1..)
                .map(|(e, seq)| (seq, (*e).clone()))
                .collect()
        };
        // Mom's device added him again: the first Welcome is passed.
        let waiting = log(&[&first, &gone, &again]);
        assert!(later_welcome(
            &waiting,
            &son_ring,
            (family, 1, epoch(&first)),
            &known
        ));
        // No later Welcome: the first is taken.
        let waiting = log(&[&first, &gone]);
        assert!(!later_welcome(
            &waiting,
            &son_ring,
            (family, 1, epoch(&first)),
            &known
        ));
        // The same later Welcome, appended under dad's device: not taken over mom's.
        let body = &again[4 + 16 + 64..];
        let message = doran_protocol::signing::key_log_commit_message(&family.0, &dad_dev, body);
        let mut by_dad = again[..4].to_vec();
        by_dad.extend_from_slice(dad_dev.as_bytes());
        by_dad.extend_from_slice(&dad_key.sign(&message).to_bytes());
        by_dad.extend_from_slice(body);
        assert!(crate::group::entry_signed_by_known(family, &by_dad, &known));
        let waiting = log(&[&first, &gone, &by_dad]);
        assert!(!later_welcome(
            &waiting,
            &son_ring,
            (family, 1, epoch(&first)),
            &known
        ));
    }
}
