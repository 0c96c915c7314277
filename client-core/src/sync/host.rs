//! [`SyncHost`]: what the driver needs from the device, and [`StoreHost`], a complete
//! host over a [`LocalStore`] with its own open documents.

use std::{
    borrow::Cow,
    collections::{HashMap, hash_map::Entry},
    sync::{Arc, Mutex, MutexGuard},
};

use std::collections::{BTreeMap, HashSet};

use automerge::ChangeHash;
use doran_protocol::{ChunkId, DocId, FamilyId, Seq, UserId};

use super::{
    DocCursor, DocKind, HostError, HostResult as Result, IncomingChunk, SignedIn, SnapshotCheck,
    keys::{Keeper, SealedIds, Unsealed, personal_group},
};

mod cards;
mod compaction;
mod sealing;
mod volumes;
use crate::{
    error::DocError,
    family_doc::{Edit, FamilyDoc},
    family_store::{self, OpenError},
    model::{Family, Personal},
    personal_doc::PersonalDoc,
    replica::{self, Actor, Incoming, Touched},
    rules,
    store::{Committed, LocalStore, LogPos, Membership, OutboxEntry, Step, ViewRow},
    views::Activity,
};
pub use compaction::COMPACT_STORED_AFTER;

/// The meta entry (the epoch rotated away from) set while this user's profile key
/// group owes a rotation: the personal document's changes wait for the new epoch,
/// whose secret the departed reader never gets.
pub const ROTATING_PROFILE_KEYS: &str = "keys/personal/rotating";

/// The meta entry a sign-up leaves (the new personal document's id) for this
/// device to start the user's profile key group once it opens with its keys.
pub const START_PROFILE_KEYS: &str = "keys/personal/start";

/// What applying incoming data changed, for the UI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocChange {
    /// The entities touched (empty for personal documents, which are re-read whole).
    pub touched: Vec<Touched>,
    /// Feed items that are new (family documents only).
    pub new_activity: Vec<Activity>,
    /// How many chunks were refused (not stored) or trimmed of refused changes: over a
    /// cost limit, unreadable, or breaking the family document's rules — or, in a
    /// family whose documents are sealed, not opening or sent in the clear.
    pub refused: usize,
    /// Of those, the seqs of chunks (or the seq a snapshot covers) that arrived
    /// changed on their way — envelopes that do not open with the key of the epoch
    /// they name, or cut short ([`Refusal::is_tampering`](super::Refusal::is_tampering)):
    /// whoever stores or carries the family's chunks altered them. The device tells
    /// its user (`tampered`).
    pub tampered: Vec<Seq>,
    /// The family's key log brought entries this device has not processed yet (see
    /// [`StoreHost::keys_step`]).
    pub keys: bool,
    /// A chunk (or snapshot) is sealed under an epoch this device has no key for:
    /// the document stops at this seq until the keys come (see
    /// [`Event::DocLocked`](super::Event::DocLocked)).
    pub locked_at: Option<Seq>,
    /// Personal documents whose keys a family document just brought (members'
    /// published profile keys): a document stopped for a key goes on
    /// ([`Event::Unlocked`](super::Event::Unlocked)).
    pub unlocked: Vec<DocId>,
}

/// The device side of syncing: its store and its open documents. The driver calls
/// these from a blocking thread (`spawn_blocking`), one at a time.
///
/// The implementation must be the **only writer** of the documents it applies to (the
/// engine, which also applies local edits), so the view cache stays right.
pub trait SyncHost: Send + Sync + 'static {
    /// Every document's resume point: its stored cursor and the snapshot seq last
    /// accepted (see [`snapshot_accepted`](Self::snapshot_accepted)).
    fn doc_cursors(&self) -> Result<Vec<DocCursor>>;

    /// Up to `limit` outbox entries with an id above `after` (from the oldest if
    /// `None`), oldest first.
    fn outbox(&self, after: Option<u64>, limit: usize) -> Result<Vec<OutboxEntry>>;

    /// How many local changes wait for the relay.
    fn pending_count(&self) -> Result<u64>;

    /// Merges incoming data into `doc` — `snapshot` (verified `save()` bytes) first,
    /// then `chunks` in order — and stores the readable ones with `cursor` and the
    /// view rows in one transaction. Unreadable chunks are not stored, and neither
    /// are changes refused by the rules: a change written under another user's actor
    /// id than its chunk's author, a chunk of a personal document not pushed by its
    /// owner, and (family documents) [`rules::check_change`].
    fn apply(
        &self,
        doc: DocId,
        kind: DocKind,
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
        cursor: Seq,
    ) -> Result<DocChange>;

    /// The relay acked (or refused for good) the local chunk: remove it from the
    /// outbox.
    fn acked(&self, doc: DocId, chunk: ChunkId) -> Result<()>;

    /// The relay acked the local chunk at `seq`: remove it from the outbox (as
    /// [`acked`](Self::acked)); a host that checks pending snapshots also notes which
    /// changes came at `seq`.
    fn acked_at(&self, doc: DocId, chunk: ChunkId, _seq: Seq) -> Result<()> {
        self.acked(doc, chunk)
    }

    /// Checks a pending snapshot of `doc` that `by` pushed (`snapshot`: its verified
    /// `save()` bytes): loaded with the cost limits and the document's rules, does it
    /// hold every change this device got from chunks with seq ≤ `covers_seq`, and no
    /// change this device lacks but `by`'s own? A host that cannot tell says
    /// [`SnapshotCheck::CannotTell`] (the default), and the device neither confirms
    /// nor reports it.
    fn check_snapshot(
        &self,
        _doc: DocId,
        _kind: DocKind,
        (_covers_seq, _by): (Seq, UserId),
        _snapshot: &[u8],
    ) -> Result<SnapshotCheck> {
        Ok(SnapshotCheck::CannotTell)
    }

    /// The whole document saved (`Automerge::save`), for a snapshot; `None` if the
    /// document is not on this device.
    fn save(&self, doc: DocId, kind: DocKind) -> Result<Option<Vec<u8>>>;

    /// The relay accepted a snapshot of `doc` covering `covers_seq` (this device's, or
    /// another member's this device confirmed): remember it.
    fn snapshot_accepted(&self, doc: DocId, covers_seq: Seq) -> Result<()>;

    /// Whether a snapshot of `doc` (of `kind`) covering `covers_seq` may be pushed
    /// (a family sealed after its creation: only one covering every clear chunk).
    fn snapshot_allowed(&self, _kind: DocKind, _covers_seq: Seq) -> Result<bool> {
        Ok(true)
    }

    /// Documents this device owes a snapshot now, however little they grew (a family
    /// it sealed after its creation: the relay keeps the clear chunks until then).
    fn snapshots_owed(&self) -> Result<Vec<DocId>> {
        Ok(Vec::new())
    }

    /// The relay's log of `doc` ends before this device's cursor: forget the cursor
    /// (see [`Effects::reset_cursors`](super::Effects::reset_cursors)).
    fn reset_cursor(&self, doc: DocId) -> Result<()>;

    /// Rewrites the device's stored copy of each document whose tail grew long (the
    /// change rows after its snapshot) as one snapshot, so opening it stays one load,
    /// not a replay of every change since; returns how many. The driver calls it when
    /// idle, off the async threads. Default: nothing to compact.
    fn compact_stored(&self) -> Result<usize> {
        Ok(0)
    }

    /// The years each family's document lists volumes of (issue 17), for the sync to
    /// open them: the families open here, or (`all`, after a sign-in) every family
    /// that keeps volumes this device keeps, opened first. Default: none.
    fn listed_volumes(&self, _all: bool) -> Result<Vec<(FamilyId, Vec<u16>)>> {
        Ok(Vec::new())
    }

    /// Whether a family took up volumes since this was last asked — one this device
    /// sealed after its creation, whose first sealed chunk the relay just acked — so
    /// the volumes its document lists are to be opened now ([`listed_volumes`]
    /// left it out until then). Default: never.
    ///
    /// [`listed_volumes`]: SyncHost::listed_volumes
    fn took_up_volumes(&self) -> bool {
        false
    }

    /// The device signed in (the user id is known from here on). The relay's list of
    /// the user's families is authoritative: returns the families whose membership
    /// changed on this device because of it (joined elsewhere, or removed meanwhile).
    fn signed_in(&self, info: &SignedIn, now_ms: i64) -> Result<Vec<(FamilyId, Membership)>>;
}

/// An open document of a [`StoreHost`].
#[derive(Debug)]
enum OpenDoc {
    // Boxed: each is several KiB, and the host's map holds one per document.
    Family(Box<FamilyDoc>),
    Personal(Box<PersonalDoc>),
}

impl OpenDoc {
    /// Whether this is a document of `kind`.
    fn is(&self, kind: DocKind) -> bool {
        matches!(
            (self, kind),
            (OpenDoc::Family(_), DocKind::Family(_)) | (OpenDoc::Personal(_), DocKind::Personal(_))
        )
    }
}

/// How many times a local edit is made again when another process on this device
/// keeps writing the same document between this host's read and its write.
pub const EDIT_ATTEMPTS: usize = 8;

/// An open document and the store's log end it is known to reflect.
///
/// The host keeps documents open between calls, but it may not be the only writer of
/// the store: on a device, `doran watch` can run while `doran mission add` edits from
/// another process. Before a document is used, the store's log end is compared with
/// `at`, and every write hands `at` to the store, which checks it inside the write's
/// own transaction (`LocalStore::commit_local_in_step`): when another writer appended,
/// the write's view rows are not applied and the document is reopened next time. So
/// rows computed from a document that missed that change are never stored as a valid
/// view cache, and `at` never covers a row the document lacks.
///
/// A family with per-year volumes (issue 17) is several logs: `volumes` keeps the
/// log end of each listed volume this host loaded or parked, compared likewise, and
/// an edit of a volume hands that volume's log end to the store.
#[derive(Debug)]
struct Opened {
    doc: OpenDoc,
    /// The log end when opened or last written by this host (`None`: not stored yet).
    at: Option<LogPos>,
    /// A family's volumes this device keeps, by year: the log end of each as loaded,
    /// parked or last written by this host. Empty without volumes.
    volumes: BTreeMap<u16, LogPos>,
    /// The year the family was opened in (`volume_year`): new entities are filed in
    /// that year's volume, so a family open across New Year is opened again.
    year: u16,
}

impl Opened {
    /// A document opened without volumes, in `year`.
    fn plain(doc: OpenDoc, at: Option<LogPos>, year: u16) -> Self {
        Opened {
            doc,
            at,
            volumes: BTreeMap::new(),
            year,
        }
    }
}

/// A [`SyncHost`] over a [`LocalStore`], keeping the documents it syncs open in memory
/// (family documents opened with [`family_store::open_family`], so the view cache is
/// used and kept right). Local edits go through [`StoreHost::edit_family`] so this
/// host stays the only writer; writes by another host on the same store (another
/// process on the device) are noticed from the log end and the document reopened.
#[derive(Debug)]
pub struct StoreHost {
    store: Arc<dyn LocalStore>,
    actor: Actor,
    docs: Mutex<HashMap<DocId, Opened>>,
    /// Which changes came at which seq, per document, since this host started (the
    /// store keeps no seq per change): what a pending snapshot need not contain.
    received: Mutex<HashMap<DocId, Received>>,
    /// The changes of the local chunks handed out for pushing, until acked.
    own: Mutex<HashMap<(DocId, ChunkId), Vec<ChangeHash>>>,
    /// The end-to-end keys, if this host was given the device key.
    keeper: Mutex<Option<Keeper>>,
    /// Outbox chunk ids of sealed chunks handed out, by the id they were pushed with.
    sealed_ids: Mutex<SealedIds>,
    /// This device's key log entries handed out for pushing, until acked.
    own_entries: Mutex<HashMap<(DocId, ChunkId), Vec<u8>>>,
    /// Serialises the read-modify-write of chunks kept aside for a key (the driver
    /// adds, the key task takes).
    held_lock: Mutex<()>,
    /// Whether this host files what is made in a year in that year's volume, listing
    /// the volume with its first entity (issue 17; [`StoreHost::filing_by_year`]).
    files_by_year: bool,
    /// The clock that says which year it is (milliseconds since the epoch).
    clock: fn() -> i64,
    /// Which family and year a volume's id is (an id does not tell: see
    /// [`DocId::says_volume`]), for the families looked up so far.
    volume_ids: Mutex<volumes::VolumeIds>,
    /// A family took up volumes ([`SyncHost::took_up_volumes`]).
    took_up_volumes: std::sync::atomic::AtomicBool,
}

/// Outbox entries read to find this device's changes not yet acked (a device holds
/// far fewer: it pushes as soon as it is online).
const OUTBOX_SCAN: usize = 100_000;

/// Seqs most recorded per document in [`Received`]; past it the oldest go (and
/// snapshots covering less than what is left can no longer be told complete).
const MAX_RECORDED_SEQS: usize = 200_000;

/// The changes this host saw arrive at each seq of one document, for every seq after
/// `from` (seqs without an entry brought nothing readable).
#[derive(Debug, Default)]
struct Received {
    from: Seq,
    by_seq: BTreeMap<Seq, Vec<ChangeHash>>,
}

impl Received {
    fn record(&mut self, seq: Seq, hashes: Vec<ChangeHash>) {
        if seq <= self.from {
            return;
        }
        self.by_seq.insert(seq, hashes);
        while self.by_seq.len() > MAX_RECORDED_SEQS {
            if let Some((oldest, _)) = self.by_seq.pop_first() {
                self.from = oldest;
            }
        }
    }
}

impl StoreHost {
    /// A host for `actor` (this account's user and device) over `store`.
    pub fn new(store: Arc<dyn LocalStore>, actor: Actor) -> Self {
        StoreHost {
            store,
            actor,
            docs: Mutex::new(HashMap::new()),
            received: Mutex::new(HashMap::new()),
            own: Mutex::new(HashMap::new()),
            keeper: Mutex::new(None),
            sealed_ids: Mutex::new(SealedIds::new()),
            own_entries: Mutex::new(HashMap::new()),
            held_lock: Mutex::new(()),
            files_by_year: false,
            clock: crate::store::now_ms,
            volume_ids: Mutex::new(volumes::VolumeIds::default()),
            took_up_volumes: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// This host with another clock for the year: what is made is filed in the volume
    /// of the year `clock` says, and a family open when its year turns is opened
    /// again (tests turn the year with it).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// This host files the calendar entries, missions, photos and voice messages made
    /// in a year in that year's volume of their family (issue 17), the first of them
    /// listing the volume — in the families that keep volumes (sealed from their
    /// creation, or sealed by their host since and that taken by the relay: a volume
    /// is sealed from its first change). Off by default. Edits of what a volume keeps
    /// go to it either way.
    #[must_use]
    pub fn filing_by_year(mut self) -> Self {
        self.files_by_year = true;
        self
    }

    /// A host that also keeps this device's end-to-end keys (signing its key group
    /// leaves with `device_key`, the key the relay knows the device by; escrowing the
    /// families' secrets for the recovery phrase with `user_key`, on a device that
    /// holds it): it seals and opens the documents of sealed families. Fails if the
    /// saved keys do not restore.
    pub fn with_keys(
        store: Arc<dyn LocalStore>,
        actor: Actor,
        (device_key, user_key): (ed25519_dalek::SigningKey, Option<ed25519_dalek::SigningKey>),
    ) -> Result<Self> {
        let mut keeper = Keeper::load(&*store, actor.user, actor.device, device_key)?;
        keeper.set_user_key(user_key);
        if keeper.is_new() {
            // The families this device holds a document of from before it kept keys
            // were all in the clear (a family with nothing stored yet is decided by
            // its first chunk). Saved at once, so this is done once.
            let mut clear = Vec::new();
            for record in store.families()? {
                let doc = DocId::from(record.family);
                if store.cursor(doc)? > 0 || store.log_end(doc)?.is_some() {
                    clear.push(record.family);
                }
            }
            keeper.update(&*store, |keeper| {
                if keeper.is_new() {
                    for family in &clear {
                        keeper.decide(*family, false);
                    }
                }
                Ok(())
            })?;
        }
        let host = StoreHost::new(store, actor);
        *host.keeper() = Some(keeper);
        host.start_profile_keys()?;
        Ok(host)
    }

    /// Starts this user's profile key group if the sign-up on this device asked for
    /// it ([`START_PROFILE_KEYS`]): only the device that made the account does —
    /// every other device of the user is added to the group, never starts one.
    fn start_profile_keys(&self) -> Result<()> {
        let Some(bytes) = self.store.get_meta(START_PROFILE_KEYS)? else {
            return Ok(());
        };
        if let Ok(id) = <[u8; 16]>::try_from(bytes.as_slice()) {
            let doc = DocId(id);
            self.remember_personal_doc(self.actor.user, doc)?;
            // Idempotent: a start tried again after a crash makes nothing twice.
            self.start_sealing(personal_group(doc), personal_group(doc).says_sealed())?;
        }
        self.store.delete_meta(START_PROFILE_KEYS)?;
        Ok(())
    }

    fn sealed_ids(&self) -> MutexGuard<'_, SealedIds> {
        self.sealed_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn own_entries(&self) -> MutexGuard<'_, HashMap<(DocId, ChunkId), Vec<u8>>> {
        self.own_entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn received(&self) -> MutexGuard<'_, HashMap<DocId, Received>> {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn own(&self) -> MutexGuard<'_, HashMap<(DocId, ChunkId), Vec<ChangeHash>>> {
        self.own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes the changes of chunks arriving for `doc` with their seqs, before they
    /// are stored. The first time in this host's life, the record starts at the
    /// stored cursor; after a snapshot (whose changes came at no known seq), at the
    /// new cursor.
    fn record_arrivals(
        &self,
        doc: DocId,
        snapshot: bool,
        chunks: &[&IncomingChunk],
        cursor: Seq,
    ) -> Result<()> {
        let stored_cursor = self.store.cursor(doc)?;
        let mut received = self.received();
        let r = received.entry(doc).or_insert_with(|| Received {
            from: stored_cursor,
            by_seq: BTreeMap::new(),
        });
        if snapshot {
            r.from = r.from.max(cursor);
            r.by_seq.retain(|&s, _| s > cursor);
            return Ok(());
        }
        for c in chunks {
            // An unreadable chunk is refused by the apply: it brings no change.
            let hashes = replica::change_hashes(&c.bytes).unwrap_or_default();
            r.record(c.seq, hashes);
        }
        Ok(())
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn LocalStore> {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<DocId, Opened>> {
        // A panic while holding the lock leaves documents that are still consistent
        // with the store (each write is one transaction): keep going.
        self.docs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The open document `doc`, opened from the store if needed, or reopened if
    /// another writer appended to its log since (see [`Opened`]).
    fn ensure<'a>(
        &self,
        docs: &'a mut HashMap<DocId, Opened>,
        doc: DocId,
        kind: DocKind,
    ) -> Result<&'a mut Opened> {
        let at = self.store.log_end(doc)?;
        match docs.entry(doc) {
            Entry::Occupied(e) if e.get().at == at && !self.volumes_moved(doc, e.get())? => {
                Ok(e.into_mut())
            }
            // Never reopened as another kind than it is open as (a personal document
            // read as a family's would take incoming chunks under the family rules).
            Entry::Occupied(e) if !e.get().doc.is(kind) => Err(HostError::WrongKind(
                doc,
                match kind {
                    DocKind::Family(_) => "family",
                    DocKind::Personal(_) => "personal",
                    DocKind::KeyLog(_) => "key log",
                    DocKind::Volume(..) => "volume",
                },
            )),
            Entry::Occupied(mut e) => {
                tracing::debug!(%doc, "another writer changed the document: reopening");
                e.insert(self.open(doc, kind)?);
                Ok(e.into_mut())
            }
            Entry::Vacant(v) => Ok(v.insert(self.open(doc, kind)?)),
        }
    }

    /// After this host appended to `doc`: remember the log end the store's write
    /// reported when the document was in step with the log (read inside the write, so
    /// another process's row cannot slip in unseen); otherwise reopen it next time.
    fn wrote(docs: &mut HashMap<DocId, Opened>, doc: DocId, step: Step) {
        match step {
            Step::InStep(end) => {
                if let Some(open) = docs.get_mut(&doc) {
                    open.at = Some(end);
                }
            }
            Step::Behind => {
                tracing::debug!(%doc, "another writer appended first: reopening");
                docs.remove(&doc);
            }
        }
    }

    /// Opens `doc` from the store, with the log end of the very load it was made from
    /// (so a row another process appends meanwhile is never counted in).
    fn open(&self, doc: DocId, kind: DocKind) -> Result<Opened> {
        match kind {
            DocKind::Family(_) => {
                let year = self.year();
                match family_store::open_family_in(&*self.store, doc, &self.actor, year) {
                    Ok(opened) => Ok(Opened {
                        doc: OpenDoc::Family(Box::new(opened.family)),
                        at: Some(opened.at),
                        volumes: opened.volumes,
                        year,
                    }),
                    Err(OpenError::NotFound(_)) => Ok(Opened::plain(
                        OpenDoc::Family(Box::new(FamilyDoc::load(
                            None,
                            std::iter::empty(),
                            &self.actor,
                        )?)),
                        None,
                        year,
                    )),
                    Err(e) => Err(e.into()),
                }
            }
            // A volume is opened within its family (`volume_ready`).
            DocKind::KeyLog(_) | DocKind::Volume(..) => {
                Err(HostError::WrongKind(doc, "family or personal"))
            }
            DocKind::Personal(_) => {
                let stored = self.store.load(doc)?;
                let pd = match &stored {
                    Some(s) => PersonalDoc::load(
                        s.snapshot.as_deref(),
                        s.changes.iter().map(Vec::as_slice),
                        &self.actor,
                    )?,
                    None => PersonalDoc::load(None, std::iter::empty(), &self.actor)?,
                };
                Ok(Opened::plain(
                    OpenDoc::Personal(Box::new(pd)),
                    stored.map(|s| s.log_end),
                    self.year(),
                ))
            }
        }
    }

    /// Creates a family document locally (after the relay's `CreateFamily`) and
    /// commits its first change — unless the document already has one: a second first
    /// change would be refused by every device, so creating twice (a retry, or the
    /// mending of a creation cut short racing the creation itself) writes nothing.
    pub fn create_family(
        &self,
        family: FamilyId,
        title: &str,
        my_name: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.create_family_as(family, (title, my_name), false, now_ms)
    }

    /// Creates a family document like [`StoreHost::create_family`]; `sealed` starts
    /// the family's key group first, so every chunk of it the relay ever holds is
    /// sealed (needs a host made [`with_keys`](Self::with_keys)).
    pub fn create_family_as(
        &self,
        family: FamilyId,
        (title, my_name): (&str, &str),
        sealed: bool,
        now_ms: i64,
    ) -> Result<()> {
        self.start_sealing(family, sealed)?;
        let doc = DocId::from(family);
        let writer = self.store.writer_lock()?;
        let mut docs = self.lock();
        for _ in 0..EDIT_ATTEMPTS {
            let opened = self.ensure(&mut docs, doc, DocKind::Family(family))?;
            if let OpenDoc::Family(existing) = &mut opened.doc
                && rules::host_of(existing.replica_mut().doc()).is_some()
            {
                drop((docs, writer));
                self.store
                    .set_membership(family, Membership::Member, now_ms)?;
                return Ok(());
            }
            let at = opened.at;
            let (fd, change) = FamilyDoc::create(family, title, my_name, &self.actor, now_ms)?;
            let year = self.year();
            docs.insert(doc, Opened::plain(OpenDoc::Family(Box::new(fd)), at, year));
            if self.commit_edit(&mut docs, (doc, None), at, &change, None)? {
                // Opened again from the store when next used: rows the log held
                // before (changes waiting for a host) are not in this fresh document.
                docs.remove(&doc);
                drop((docs, writer));
                self.store
                    .set_membership(family, Membership::Member, now_ms)?;
                return Ok(());
            }
        }
        Err(HostError::Overtaken(doc))
    }

    /// Runs an edit on a family document and commits its change with its view rows
    /// (the edit is durable and queued for the relay when this returns `Ok`).
    ///
    /// If another process on this device wrote the document between this host's read
    /// and its write, nothing is written and `edit` runs again on the document as the
    /// store now holds it (up to [`EDIT_ATTEMPTS`] times; then
    /// [`HostError::Overtaken`]).
    pub fn edit_family<T>(
        &self,
        family: FamilyId,
        mut edit: impl FnMut(&mut FamilyDoc) -> Result<Edit<T>, DocError>,
    ) -> Result<T> {
        let doc = DocId::from(family);
        let _writer = self.store.writer_lock()?;
        let mut docs = self.lock();
        let mut attempts = 0;
        while attempts < EDIT_ATTEMPTS {
            let Opened {
                doc: OpenDoc::Family(fd),
                at,
                volumes,
                year,
            } = self.ensure(&mut docs, doc, DocKind::Family(family))?
            else {
                return Err(HostError::WrongKind(doc, "family"));
            };
            // A sealed family's document this device cannot read yet is empty here: a
            // change made on it would start the document over beside the real one.
            if rules::host_of(fd.replica_mut().doc()).is_none()
                && (self.is_sealed(family) || !self.sealing_known(family))
            {
                return Err(HostError::WaitingForKeys(family));
            }
            if self.files_by_year && fd.filed_in() != Some(*year) {
                // Once per open, and again when the sync brings the listing of the
                // year another device made.
                let stored = volumes.contains_key(year);
                self.file_by_year(doc, fd, (*year, stored));
            }
            let before = fd.all_heads();
            let e = edit(fd);
            let handed_back = matches!(&e, Ok(e) if e.change.is_some());
            let moved = !handed_back && fd.all_heads() != before;
            // What a year keeps is written with that year's volume's log end.
            let core_at = *at;
            let at = match e.as_ref().map(|e| e.volume) {
                Ok(Some(year)) => volumes.get(&year).copied(),
                _ => core_at,
            };
            Self::drop_if_moved(&mut docs, doc, moved);
            let e = match e {
                // An edit of what a parked year keeps: that year loaded, the edit made
                // again (nothing was written: a volume is checked before writing).
                Err(DocError::VolumeNotLoaded(year)) => {
                    self.load_parked(&mut docs, family, year)?;
                    // (Counted: a reopen between two tries parks the year again.)
                    attempts += 1;
                    continue;
                }
                e => e?,
            };
            // The listing of a new year's volume first, then its first entity.
            if let Some(listed) = &e.listed
                && let Some(change) = &listed.change
                && !self.commit_edit(
                    &mut docs,
                    (doc, None),
                    core_at,
                    change,
                    listed.view.as_deref(),
                )?
            {
                attempts += 1;
                continue;
            }
            let Some(change) = &e.change else {
                return Ok(e.value);
            };
            let view = e.view.as_deref();
            if self.commit_edit(&mut docs, (doc, e.volume), at, change, view)? {
                return Ok(e.value);
            }
            attempts += 1;
        }
        Err(HostError::Overtaken(doc))
    }

    /// Drops the open `doc` when a closure moved it (its heads changed) without handing
    /// back a change to store (an edit that failed halfway, a read that wrote): that
    /// change is in memory only, and a compaction would write it into the snapshot.
    /// It is reopened from the store when next used.
    fn drop_if_moved(docs: &mut HashMap<DocId, Opened>, doc: DocId, moved: bool) {
        if moved {
            tracing::warn!(%doc, "the open document changed without a change to store: reopening");
            docs.remove(&doc);
        }
    }

    /// Writes a local edit made on the open `doc` — on its document, or on its volume
    /// of the year given — as of that document's log end `at`, with its view rows.
    /// `Ok(true)`: written, and the document is in step with the log's new end.
    /// `Ok(false)`: another process on this device wrote first, so nothing was written
    /// and the document is dropped, to be reopened and the edit made again (it writes
    /// as the same Automerge actor: an edit made without its change could reuse a
    /// sequence number, and every load would refuse the edit).
    fn commit_edit(
        &self,
        docs: &mut HashMap<DocId, Opened>,
        (doc, volume): (DocId, Option<u16>),
        at: Option<LogPos>,
        change: &[u8],
        view: Option<&[ViewRow]>,
    ) -> Result<bool> {
        let written = volume.map_or(doc, |year| FamilyId(doc.0).volume(year));
        match self.store.commit_local_in_step(written, change, view, at) {
            Ok(Committed::InStep { end, .. }) => {
                let Some(open) = docs.get_mut(&doc) else {
                    return Ok(true);
                };
                let Some(year) = volume else {
                    open.at = Some(end);
                    return Ok(true);
                };
                open.volumes.insert(year, end);
                // A volume's first write finds no cache to keep: this one is made
                // whole (a new year's volume is small), so the first screen stays
                // the caches'.
                if at.is_none()
                    && let OpenDoc::Family(fd) = &open.doc
                {
                    family_store::cache_again(
                        &*self.store,
                        written,
                        end,
                        fd.cache_rows_of(Some(year)),
                    );
                }
                Ok(true)
            }
            Ok(Committed::Behind) => {
                tracing::debug!(%doc, "another writer came first: making the edit again");
                docs.remove(&doc);
                Ok(false)
            }
            Err(err) => {
                // The in-memory document is ahead of the store: reload it next time.
                docs.remove(&doc);
                Err(err.into())
            }
        }
    }

    /// The families the user belongs to, as the relay last said (or as this device
    /// created or joined them since).
    pub fn families(&self) -> Result<Vec<FamilyId>> {
        Ok(self
            .store
            .families()?
            .into_iter()
            .filter(|r| r.membership == Membership::Member)
            .map(|r| r.family)
            .collect())
    }

    /// Runs an edit on the user's personal document and commits its change (durable
    /// and queued when this returns `Ok`); made again like
    /// [`edit_family`](Self::edit_family)'s when another process wrote first.
    pub fn edit_personal<T>(
        &self,
        doc: DocId,
        mut edit: impl FnMut(&mut PersonalDoc) -> Result<Edit<T>, DocError>,
    ) -> Result<T> {
        let _writer = self.store.writer_lock()?;
        let mut docs = self.lock();
        for _ in 0..EDIT_ATTEMPTS {
            let Opened {
                doc: OpenDoc::Personal(pd),
                at,
                ..
            } = self.ensure(&mut docs, doc, DocKind::Personal(self.actor.user))?
            else {
                return Err(HostError::WrongKind(doc, "personal"));
            };
            let at = *at;
            let before = pd.replica_mut().heads();
            let e = edit(pd);
            let handed_back = matches!(&e, Ok(e) if e.change.is_some());
            let moved = !handed_back && pd.replica_mut().heads() != before;
            Self::drop_if_moved(&mut docs, doc, moved);
            let e = e?;
            let Some(change) = &e.change else {
                return Ok(e.value);
            };
            if self.commit_edit(&mut docs, (doc, None), at, change, None)? {
                return Ok(e.value);
            }
        }
        Err(HostError::Overtaken(doc))
    }

    /// The personal document of `user` (this user's own, or a co-member's once it has
    /// synced to this device), if this device has it.
    pub fn personal_doc_of(&self, user: UserId) -> Result<Option<DocId>> {
        Ok(self.store.personal_doc(user)?)
    }

    /// The profile of `user` (this user's own, or a co-member's, read-only) as this
    /// device has it; `None` if it has not synced here.
    pub fn profile(&self, user: UserId) -> Result<Option<Personal>> {
        let Some(doc) = self.personal_doc_of(user)? else {
            return Ok(None);
        };
        let mut docs = self.lock();
        match &self.ensure(&mut docs, doc, DocKind::Personal(user))?.doc {
            OpenDoc::Personal(pd) => Ok(Some(pd.view().clone())),
            OpenDoc::Family(_) => Err(HostError::WrongKind(doc, "personal")),
        }
    }

    /// Remembers which document is `user`'s personal document.
    pub fn remember_personal_doc(&self, user: UserId, doc: DocId) -> Result<()> {
        if self.personal_doc_of(user)? != Some(doc) {
            self.store.set_personal_doc(user, doc)?;
        }
        Ok(())
    }

    /// The family's view if its document is open here and nobody else wrote it since
    /// (cheap: never loads anything).
    pub fn open_view(&self, family: FamilyId) -> Result<Option<Family>> {
        let doc = DocId::from(family);
        let docs = self.lock();
        let Some(
            opened @ Opened {
                doc: OpenDoc::Family(fd),
                at,
                ..
            },
        ) = docs.get(&doc)
        else {
            return Ok(None);
        };
        let in_step = self.store.log_end(doc)? == *at && !self.volumes_moved(doc, opened)?;
        Ok(in_step.then(|| fd.view().clone()))
    }

    /// Reads a family document (opening it if needed).
    pub fn read_family<T>(
        &self,
        family: FamilyId,
        read: impl FnOnce(&mut FamilyDoc) -> T,
    ) -> Result<T> {
        let doc = DocId::from(family);
        let mut docs = self.lock();
        let OpenDoc::Family(fd) = &mut self.ensure(&mut docs, doc, DocKind::Family(family))?.doc
        else {
            return Err(HostError::WrongKind(doc, "family"));
        };
        let before = fd.all_heads();
        let value = read(fd);
        // A read that changed the document (it may not) would leave a change the store
        // never got: reopen rather than let a compaction write it into the snapshot.
        let moved = fd.all_heads() != before;
        Self::drop_if_moved(&mut docs, doc, moved);
        Ok(value)
    }
}

/// The hashes of every change `replica` holds.
fn change_hashes(replica: &mut replica::Replica) -> HashSet<ChangeHash> {
    replica
        .doc_mut()
        .get_changes(&[])
        .iter()
        .map(|c| c.hash())
        .collect()
}

/// What of `incoming` to store once applied: refused chunks are not stored; a
/// trimmed one is stored without its refused changes, so they are never loaded again.
fn accepted_of<'a>(
    incoming: &[Incoming<'a>],
    update: &mut crate::family_doc::RemoteUpdate,
) -> Vec<Cow<'a, [u8]>> {
    incoming
        .iter()
        .enumerate()
        .filter(|(i, _)| !update.rejected.contains(i))
        .map(
            |(i, b)| match update.trimmed.iter_mut().find(|(t, _)| *t == i) {
                Some((_, bytes)) => Cow::Owned(std::mem::take(bytes)),
                None => Cow::Borrowed(b.bytes),
            },
        )
        .collect()
}

impl StoreHost {
    /// Merges clear data into `doc` (see [`SyncHost::apply`]): what arrived, opened
    /// if it was sealed, or chunks kept aside and opened since. `sealing` carries how
    /// many chunks the opening refused and where the document stopped for a key.
    fn apply_plain(
        &self,
        doc: DocId,
        kind: DocKind,
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
        cursor: Seq,
        (sealing_refused, locked_at): (usize, Option<Seq>),
    ) -> Result<DocChange> {
        // A personal document is written by its owner only: a chunk someone else
        // pushed is set aside whole (the relay would not have taken it).
        let mut not_owners = 0;
        let chunks: Vec<&IncomingChunk> = chunks
            .iter()
            .filter(|c| match (kind, c.author) {
                (DocKind::Personal(owner), author) => {
                    match rules::check_personal_pusher(owner, author) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(%doc, seq = c.seq, error = %e, "refusing a chunk");
                            not_owners += 1;
                            false
                        }
                    }
                }
                (DocKind::Family(_) | DocKind::KeyLog(_) | DocKind::Volume(..), _) => true,
            })
            .collect();
        self.record_arrivals(doc, snapshot.is_some(), &chunks, cursor)?;
        let mut published = BTreeMap::new();
        let writer = self.store.writer_lock()?;
        let mut docs = self.lock();
        let opened = self.ensure(&mut docs, doc, kind)?;
        let at = opened.at;
        let open = &mut opened.doc;
        // A saved document loads like a chunk, so the snapshot is stored as one: the
        // local log keeps everything it had (a snapshot never replaces local history).
        // A snapshot has no author: who wrote its changes was checked as they came
        // in chunks, and by the device that confirmed it.
        let incoming: Vec<Incoming<'_>> = snapshot
            .map(Incoming::from)
            .into_iter()
            .chain(chunks.iter().map(|c| Incoming::new(&c.bytes, c.author)))
            .collect();
        let (accepted, change, view) = match open {
            OpenDoc::Family(fd) => {
                let mut update = fd.apply_remote(incoming.iter().copied());
                // Members' published profile keys, when a member entry moved.
                if update
                    .touched
                    .iter()
                    .any(|t| matches!(t, Touched::Entity(c, _) if c == "members"))
                {
                    published = fd.profile_keys();
                }
                let accepted = accepted_of(&incoming, &mut update);
                let change = DocChange {
                    touched: update.touched,
                    new_activity: update.new_activity,
                    refused: update.refusals.len() + not_owners + sealing_refused,
                    locked_at,
                    ..DocChange::default()
                };
                (accepted, change, update.view)
            }
            OpenDoc::Personal(pd) => {
                let mut accepted = Vec::new();
                let mut refused = not_owners + sealing_refused;
                for chunk in &incoming {
                    match pd.apply_remote(*chunk) {
                        Ok(None) => accepted.push(Cow::Borrowed(chunk.bytes)),
                        Ok(Some(trimmed)) => {
                            refused += 1;
                            accepted.push(Cow::Owned(trimmed));
                        }
                        Err(e) => {
                            tracing::warn!(%doc, error = %e, "refusing an unreadable chunk");
                            refused += 1;
                        }
                    }
                }
                let change = DocChange {
                    refused,
                    locked_at,
                    ..DocChange::default()
                };
                (accepted, change, None)
            }
        };
        // Rows only from a document in step with the log (see `Opened`).
        let accepted: Vec<&[u8]> = accepted.iter().map(|c| c.as_ref()).collect();
        match self
            .store
            .apply_remote_in_step(doc, &accepted, Some(cursor), view.as_deref(), at)
        {
            Ok((_, step)) => Self::wrote(&mut docs, doc, step),
            Err(e) => {
                // The in-memory document is ahead of the store: reload it next time.
                docs.remove(&doc);
                return Err(e.into());
            }
        }
        drop((docs, writer));
        let mut change = change;
        change.unlocked = self.learn_profile_keys(published)?;
        Ok(change)
    }
}

impl SyncHost for StoreHost {
    fn doc_cursors(&self) -> Result<Vec<DocCursor>> {
        let mut out = Vec::new();
        for doc in self.store.documents()? {
            let snapshot_covers = self.store.snapshot_covers(doc)?;
            out.push(DocCursor {
                doc,
                cursor: self.store.cursor(doc)?,
                snapshot_covers,
            });
        }
        Ok(out)
    }

    fn outbox(&self, after: Option<u64>, limit: usize) -> Result<Vec<OutboxEntry>> {
        // Changes that cannot be sealed yet are left out; the pages behind them are
        // read too, so a full page of waiting changes never hides the others (the
        // machine stops asking after a page shorter than `limit`).
        let mut out = Vec::new();
        let mut after = after;
        loop {
            let page = self.store.outbox_after(after, limit)?;
            let full = page.len() >= limit;
            after = page.last().map(|e| e.id).or(after);
            {
                let mut own = self.own();
                for e in &page {
                    own.entry((e.doc, e.chunk))
                        .or_insert_with(|| replica::change_hashes(&e.bytes).unwrap_or_default());
                }
            }
            out.extend(self.seal_outgoing(page));
            if out.len() >= limit || !full {
                return Ok(out);
            }
        }
    }

    fn pending_count(&self) -> Result<u64> {
        Ok(self.store.pending_count()?)
    }

    fn apply(
        &self,
        doc: DocId,
        kind: DocKind,
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
        cursor: Seq,
    ) -> Result<DocChange> {
        if let DocKind::Personal(user) = kind {
            self.remember_personal_doc(user, doc)?;
        }
        let opened;
        let mut sealed_now = None;
        let mut tampered = Vec::new();
        let (snapshot, chunks, sealing_refused, locked_at) = match kind {
            DocKind::KeyLog(family) => return self.apply_key_log(family, chunks, cursor),
            DocKind::Volume(family, year) => {
                return self.apply_volume((family, year), doc, snapshot, chunks, cursor);
            }
            DocKind::Family(family) => {
                opened = self.open_incoming(family, doc, snapshot, chunks)?;
                sealed_now = opened.sealed_now.then_some(family);
                tampered.clone_from(&opened.tampered);
                if snapshot.is_some_and(doran_protocol::looks_sealed) {
                    // The relay's snapshot (another member's device confirmed it) is
                    // sealed: a sealed snapshot this device owes is owed no more once
                    // it covers every clear chunk, whether or not this device can
                    // open it yet.
                    self.sealed_snapshot_taken(doc, cursor)?;
                }
                (
                    opened.snapshot.as_deref(),
                    opened.chunks.as_slice(),
                    opened.refused,
                    opened.locked_at,
                )
            }
            DocKind::Personal(owner) if personal_group(doc).says_sealed() => {
                let group = personal_group(doc);
                let first = self.open_incoming(group, doc, snapshot, chunks)?;
                // Sealed under a key not learned yet: the family documents this
                // device holds may have it (they may have come first).
                opened = if first.locked_at.is_some() && self.learn_profile_keys_of(owner)? {
                    self.open_incoming(group, doc, snapshot, chunks)?
                } else {
                    first
                };
                tampered.clone_from(&opened.tampered);
                (
                    opened.snapshot.as_deref(),
                    opened.chunks.as_slice(),
                    opened.refused,
                    opened.locked_at,
                )
            }
            DocKind::Personal(_) => (snapshot, chunks, 0, None),
        };
        let mut change = if locked_at.is_some() && snapshot.is_none() && chunks.is_empty() {
            DocChange {
                refused: sealing_refused,
                locked_at,
                ..DocChange::default()
            }
        } else {
            let cursor = locked_at.unwrap_or(cursor);
            self.apply_plain(
                doc,
                kind,
                snapshot,
                chunks,
                cursor,
                (sealing_refused, locked_at),
            )?
        };
        change.tampered = tampered;
        if let Some(family) = sealed_now {
            // Its key log stopped at its first entry while the family was clear.
            change.unlocked.push(family.key_log());
            change.keys = true;
        }
        if let DocKind::Family(family) = kind
            && let Some(last) = chunks.last()
        {
            let stored = locked_at.map_or(last.seq, |at| at.min(last.seq));
            self.stored_up_to(family, stored)?;
        }
        Ok(change)
    }

    fn acked(&self, doc: DocId, chunk: ChunkId) -> Result<()> {
        let chunk = self.outbox_id(doc, chunk);
        self.store.outbox_acked_chunk(doc, chunk)?;
        self.own().remove(&(doc, chunk));
        self.own_entries().remove(&(doc, chunk));
        Ok(())
    }

    fn acked_at(&self, doc: DocId, chunk: ChunkId, seq: Seq) -> Result<()> {
        // A key log entry takes its place in the log before it leaves the outbox
        // (every one this host pushes was handed out by `outbox`, which noted it: no
        // look at the keeper on an ack of any other chunk).
        if self.own_entries().contains_key(&(doc, chunk)) {
            self.key_log_acked(doc, chunk, seq)?;
        }
        self.sealed_chunk_acked(doc, chunk, seq)?;
        let chunk = self.outbox_id(doc, chunk);
        let hashes = self.own().remove(&(doc, chunk));
        if let Some(r) = self.received().get_mut(&doc) {
            match hashes {
                Some(hashes) => r.record(seq, hashes),
                // Changes of unknown seq: snapshots covering less than `seq` can no
                // longer be told complete.
                None => {
                    r.from = r.from.max(seq);
                    r.by_seq.retain(|&s, _| s > seq);
                }
            }
        }
        self.acked(doc, chunk)
    }

    fn check_snapshot(
        &self,
        doc: DocId,
        kind: DocKind,
        (covers_seq, by): (Seq, UserId),
        snapshot: &[u8],
    ) -> Result<SnapshotCheck> {
        if self.holds_aside(doc)? {
            // Changes this device has not opened are not in its copy: it cannot say.
            return Ok(SnapshotCheck::CannotTell);
        }
        let opened;
        let snapshot = match kind {
            // A family sealed after its creation: a snapshot that would leave clear
            // chunks after it is never vouched for (a device starting from it takes
            // no clear chunk after a sealed snapshot, and would lose them).
            DocKind::Family(_) if !self.may_snapshot(kind, covers_seq) => {
                return Ok(SnapshotCheck::Unreadable(
                    "a snapshot of a family sealed since that stops before its sealing".into(),
                ));
            }
            // A clear one pushed just before the family was sealed: confirmed, it
            // would keep the clear history on the relay as a snapshot, and end the
            // sealed one this device owes. Left to expire (a sealed one replaces it).
            DocKind::Family(family)
                if !doran_protocol::looks_sealed(snapshot)
                    && self.sealed_since_creation(family) =>
            {
                return Ok(SnapshotCheck::CannotTell);
            }
            DocKind::Family(family) | DocKind::Volume(family, _) => match self
                .keeper()
                .as_ref()
                .map(|k| k.open_at(family, doc, covers_seq, snapshot))
            {
                None | Some(Unsealed::Clear) => snapshot,
                Some(Unsealed::Changes(saved)) => {
                    opened = saved;
                    opened.as_slice()
                }
                Some(Unsealed::NoKey | Unsealed::Hold) => return Ok(SnapshotCheck::CannotTell),
                Some(Unsealed::Refused(why)) => {
                    return Ok(SnapshotCheck::Unreadable(why.to_string()));
                }
            },
            DocKind::Personal(_) if personal_group(doc).says_sealed() => match self
                .keeper()
                .as_ref()
                .map(|k| k.open(personal_group(doc), doc, snapshot))
            {
                // A host without keys reads everything in the clear.
                None => snapshot,
                Some(Unsealed::NoKey | Unsealed::Hold) => return Ok(SnapshotCheck::CannotTell),
                Some(Unsealed::Changes(saved)) => {
                    opened = saved;
                    opened.as_slice()
                }
                Some(Unsealed::Clear) => {
                    return Ok(SnapshotCheck::Unreadable(
                        "a clear snapshot of a sealed personal document".into(),
                    ));
                }
                Some(Unsealed::Refused(why)) => {
                    return Ok(SnapshotCheck::Unreadable(why.to_string()));
                }
            },
            DocKind::Personal(_) => snapshot,
            DocKind::KeyLog(_) => return Ok(SnapshotCheck::CannotTell),
        };
        // The changes that came after `covers_seq` (and not also before it) need not
        // be in the snapshot; this host must know every one of them.
        let after: HashSet<ChangeHash> = {
            let received = self.received();
            let Some(r) = received.get(&doc).filter(|r| r.from <= covers_seq) else {
                return Ok(SnapshotCheck::CannotTell);
            };
            let before: HashSet<&ChangeHash> =
                r.by_seq.range(..=covers_seq).flat_map(|(_, h)| h).collect();
            r.by_seq
                .range(covers_seq + 1..)
                .flat_map(|(_, h)| h)
                .filter(|h| !before.contains(h))
                .copied()
                .collect()
        };
        // Local changes not acked yet are in no chunk the relay holds.
        let mut unpushed = HashSet::new();
        for e in self.store.outbox(OUTBOX_SCAN)? {
            if e.doc == doc {
                unpushed.extend(replica::change_hashes(&e.bytes).unwrap_or_default());
            }
        }
        let (held, check, pusher): (HashSet<ChangeHash>, _, _) = match kind {
            DocKind::Volume(family, year) => match self.volume_changes(family, year)? {
                Some((held, host)) => (
                    held,
                    Some(crate::volume::rules(family, year, host)),
                    Some(by),
                ),
                None => return Ok(SnapshotCheck::CannotTell),
            },
            DocKind::KeyLog(_) => return Ok(SnapshotCheck::CannotTell),
            DocKind::Family(_) | DocKind::Personal(_) => {
                let mut docs = self.lock();
                if !docs.contains_key(&doc) && self.store.load(doc)?.is_none() {
                    return Ok(SnapshotCheck::CannotTell);
                }
                let replica = match &mut self.ensure(&mut docs, doc, kind)?.doc {
                    OpenDoc::Family(fd) => fd.replica_mut(),
                    OpenDoc::Personal(pd) => pd.replica_mut(),
                };
                let held = change_hashes(replica);
                match kind {
                    // Only the owner writes it: nobody else's changes are expected.
                    DocKind::Personal(owner) => (held, None, Some(owner).filter(|o| *o == by)),
                    _ => (held, Some(rules::DocRules::Family), Some(by)),
                }
            }
        };
        let required = held
            .iter()
            .filter(|h| !after.contains(h) && !unpushed.contains(h))
            .copied();
        Ok(
            match replica::compare_snapshot(snapshot, required, &held, pusher, check) {
                Ok(diff) if !diff.missing.is_empty() => {
                    tracing::warn!(%doc, covers_seq, missing = diff.missing.len(), "a pending snapshot lacks changes this device holds");
                    SnapshotCheck::Missing(diff.missing.len())
                }
                Ok(diff) if !diff.foreign.is_empty() => {
                    tracing::warn!(%doc, covers_seq, foreign = diff.foreign.len(), "a pending snapshot holds changes this device does not have, not its pusher's");
                    SnapshotCheck::Foreign(diff.foreign.len())
                }
                Ok(_) => SnapshotCheck::Contains,
                Err(e) => SnapshotCheck::Unreadable(e.to_string()),
            },
        )
    }

    fn save(&self, doc: DocId, kind: DocKind) -> Result<Option<Vec<u8>>> {
        // With chunks kept aside for a key, this copy lacks changes the log has: a
        // snapshot of it would replace them.
        if self.holds_aside(doc)? {
            return Ok(None);
        }
        let saved = if let DocKind::Volume(family, year) = kind {
            match self.save_volume(family, year)? {
                Some(saved) => saved,
                None => return Ok(None),
            }
        } else {
            let mut docs = self.lock();
            if !docs.contains_key(&doc) && self.store.load(doc)?.is_none() {
                return Ok(None);
            }
            match &mut self.ensure(&mut docs, doc, kind)?.doc {
                OpenDoc::Family(fd) => fd.save(),
                OpenDoc::Personal(pd) => pd.replica_mut().save(),
            }
        };
        // A sealed family's (or personal document's) snapshot is sealed like its
        // chunks (random nonce: a new snapshot every time).
        let group = match kind {
            DocKind::Family(family) | DocKind::Volume(family, _) => Some(family),
            DocKind::Personal(_) if personal_group(doc).says_sealed() => {
                // While its keys owe a rotation, the local copy holds changes that
                // wait for the new epoch: no snapshot of them under the old one.
                if self.store.get_meta(ROTATING_PROFILE_KEYS)?.is_some() {
                    return Ok(None);
                }
                Some(personal_group(doc))
            }
            DocKind::Personal(_) | DocKind::KeyLog(_) => None,
        };
        if let Some(group) = group {
            let keeper = self.keeper();
            // A volume is never pushed in the clear (only a sealed family keeps one).
            let volume = matches!(kind, DocKind::Volume(..));
            let Some(keeper) = keeper.as_ref() else {
                // A host without keys writes and reads everything in the clear.
                return Ok(Some(saved).filter(|_| !volume));
            };
            if keeper.removing(group) {
                // The local copy holds changes that wait for a device to leave the
                // group: no snapshot of them under an epoch it holds.
                return Ok(None);
            }
            return match keeper.seal_snapshot(group, doc, &saved) {
                Ok(Some(sealed)) => Ok(Some(sealed)),
                Ok(None) => Ok(Some(saved).filter(|_| !volume)),
                // Not in the group: no snapshot from this device.
                Err(_) => Ok(None),
            };
        }
        Ok(Some(saved))
    }

    fn snapshot_allowed(&self, kind: DocKind, covers_seq: Seq) -> Result<bool> {
        Ok(self.may_snapshot(kind, covers_seq))
    }

    fn snapshots_owed(&self) -> Result<Vec<DocId>> {
        self.sealed_snapshots_owed()
    }

    fn snapshot_accepted(&self, doc: DocId, covers_seq: Seq) -> Result<()> {
        self.store.set_snapshot_covers(doc, covers_seq)?;
        self.sealed_snapshot_taken(doc, covers_seq)?;
        Ok(())
    }

    fn reset_cursor(&self, doc: DocId) -> Result<()> {
        self.store.reset_cursor(doc)?;
        Ok(())
    }

    fn compact_stored(&self) -> Result<usize> {
        self.compact_long_tails()
    }

    fn listed_volumes(&self, all: bool) -> Result<Vec<(FamilyId, Vec<u16>)>> {
        self.volumes_listed(all)
    }

    fn took_up_volumes(&self) -> bool {
        self.took_up_volumes
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn signed_in(&self, info: &SignedIn, now_ms: i64) -> Result<Vec<(FamilyId, Membership)>> {
        if info.user != self.actor.user {
            return Err(HostError::OtherUser {
                signed_in: info.user,
                account: self.actor.user,
            });
        }
        if let Some(known) = self.personal_doc_of(info.user)?
            && known != info.personal_doc
        {
            return Err(HostError::OtherPersonalDoc {
                served: info.personal_doc,
                known,
            });
        }
        self.remember_personal_doc(info.user, info.personal_doc)?;
        // The relay's membership is authoritative: remember it for offline use.
        Ok(self.store.sync_memberships(&info.families, now_ms)?)
    }
}
