//! [`FamilyDoc`]: the family document on this device, with an operation for everything
//! a family member can do. Each operation validates its input (typed [`DocError`],
//! nothing changed on error), writes the smallest Automerge change that expresses it,
//! and returns that change's bytes for the store's outbox.

mod calendar;
mod gallery;
mod members;
mod merged_view;
mod missions;
mod voice;
mod volume_cache;
mod volumes;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::{
    ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value, transaction::Transactable,
};
use autosurgeon::Reconcile;
use doran_protocol::{FamilyId, UserId};

pub use calendar::{EventInput, EventPatch};
pub use gallery::PhotoInput;
pub use members::{PROFILE_DOC, PROFILE_KEYS, ProfileKeys, PublishedKeys};
pub use missions::MissionPatch;
pub use voice::{MAX_PEAKS, VoiceInput};
pub use volume_cache::StoredVolume;

use crate::{
    chunk_bounds::Limits,
    error::{DocError, Result},
    model::{Family, HIDDEN_PREFIX, Member, Role, SCHEMA_VERSION, VOLUMES_PREFIX, hidden_key},
    read::{self, Entity},
    replica::{Actor, ChunkFate, Refusal, Replica, Touched},
    rules,
    store::ViewRow,
    validate::{self, Field},
    view_cache,
    views::{Activity, activity::activity_of},
};

/// The collections under the document root, created with the family.
const COLLECTIONS: [&str; 7] = [
    "members",
    "calendar",
    "missions",
    "albums",
    "photos",
    "voice_albums",
    "voices",
];

/// The result of an edit: what it made (an id, usually), the change to store and send,
/// and the view-cache rows to store with it. `change` is `None` when the edit changed
/// nothing (e.g. liking twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit<T = ()> {
    /// What the edit made, e.g. the new mission's id.
    pub value: T,
    /// The Automerge change bytes, for the outbox.
    pub change: Option<Vec<u8>>,
    /// The cached-view rows this edit rewrites, to commit in the same transaction
    /// (`LocalStore::commit_local_with_view`). `None` if they could not be encoded:
    /// the store then drops the cache and it is rebuilt on the next open. Personal
    /// documents are small and not cached: their edits always carry `None`.
    pub view: Option<Vec<ViewRow>>,
    /// The year of the family's volume the change belongs to (issue 17); `None`: the
    /// document itself (the family's document, or a personal document).
    pub volume: Option<u16>,
    /// A change of the family's document to store *before* this one: the listing of
    /// the year's volume this edit's new entity is the first of
    /// ([`FamilyDoc::file_new_in_listing`]; the one action that makes two changes).
    pub listed: Option<Box<Edit>>,
}

impl<T> Edit<T> {
    /// An edit that changed nothing.
    pub(crate) fn unchanged(value: T) -> Self {
        Edit {
            value,
            change: None,
            view: Some(Vec::new()),
            volume: None,
            listed: None,
        }
    }
}

/// What applying remote chunks changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteUpdate {
    /// The entities the chunks touched.
    pub touched: Vec<Touched>,
    /// Feed items that exist now and did not before (new likes, comments, photos…).
    pub new_activity: Vec<Activity>,
    /// Positions (in the input) of chunks refused whole: over a cost limit,
    /// unreadable, or every change in them breaking the rules. Store nothing of them.
    pub rejected: Vec<usize>,
    /// Chunks some of whose changes were refused: store these bytes instead of the
    /// chunk at that position (the changes that were not refused).
    pub trimmed: Vec<(usize, Vec<u8>)>,
    /// Why each refused or trimmed chunk was (first reason), by position.
    pub refusals: Vec<(usize, Refusal)>,
    /// The cached-view rows the chunks rewrote, to store with them
    /// (`LocalStore::apply_remote_with_view`); `None` if they could not be encoded.
    pub view: Option<Vec<ViewRow>>,
}

/// A family's shared document on this device, and an up-to-date hydrated view of it.
///
/// With per-year volumes loaded ([`FamilyDoc::attach_volume`], issue 17) the view is
/// the merged view of the family's document (the core) and those volumes
/// ([`crate::volume::merged`], kept up to date entity by entity), and each edit goes to
/// the document that holds what it changes (`Edit::volume`).
#[derive(Debug)]
pub struct FamilyDoc {
    replica: Replica,
    view: Family,
    me: UserId,
    /// The volumes loaded, by year.
    volumes: BTreeMap<u16, Replica>,
    /// The year of each calendar entry, mission, photo and voice message kept in a
    /// loaded volume; one not here is in the core.
    places: HashMap<(&'static str, String), u16>,
    /// The volume new calendar entries, missions, photos and voice messages go to
    /// ([`FamilyDoc::file_new_in`]); `None`: the core.
    new_in: Option<u16>,
    /// The year whose volume the next new entity lists and starts, as this device
    /// writes it ([`FamilyDoc::file_new_in_listing`]).
    lists_first: Option<(u16, Actor)>,
    /// The volumes known from their view cache only, not loaded ([`FamilyDoc::
    /// open_volumes`]): their entities are in the view, their CRDT is not in memory.
    parked: BTreeMap<u16, volume_cache::Parked>,
    /// Each loaded document's own counters and marks (`None`: the core), for its own
    /// view cache: the view sums them. Kept while volumes are attached.
    own_counts: BTreeMap<Option<u16>, BTreeMap<String, i64>>,
}

impl FamilyDoc {
    /// Creates a new family with its creator as host. Returns the document and the first
    /// change (which holds the whole initial state).
    pub fn create(
        family: FamilyId,
        title: &str,
        creator_name: &str,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<(Self, Vec<u8>)> {
        let title = validate::text(Field::FamilyTitle, title, validate::FAMILY_TITLE)?;
        let name = validate::text(Field::MemberName, creator_name, validate::MEMBER_NAME)?;
        let mut replica = Replica::with_check(actor, rules::DocRules::Family);
        let doc = replica.doc_mut();
        doc.put(ROOT, "schema", SCHEMA_VERSION)?;
        doc.put(ROOT, "id", family.to_hex())?;
        doc.put(ROOT, "name", title)?;
        doc.put(ROOT, "created_at", now_ms)?;
        doc.put(ROOT, "created_by", actor.user.to_hex())?;
        for c in COLLECTIONS {
            doc.put_object(ROOT, c, ObjType::Map)?;
        }
        let members = map_at(doc, &["members"])?;
        let host = Member {
            name,
            role: Role::Host,
            color: validate::PALETTE[0].to_owned(),
            joined_at: now_ms,
        };
        autosurgeon::reconcile_prop(doc, &members, actor.user.to_hex().as_str(), &host)?;
        let change = replica
            .commit("family.create", now_ms)
            .ok_or_else(|| DocError::Schema("creating a family wrote nothing".into()))?;
        let mut fd = FamilyDoc::around(replica, Family::default(), actor.user);
        fd.rehydrate_all();
        Ok((fd, change))
    }

    fn around(replica: Replica, view: Family, me: UserId) -> Self {
        FamilyDoc {
            replica,
            view,
            me,
            volumes: BTreeMap::new(),
            places: HashMap::new(),
            new_in: None,
            lists_first: None,
            parked: BTreeMap::new(),
            own_counts: BTreeMap::new(),
        }
    }

    /// Whether volumes are attached (loaded or parked): the view is then the merged
    /// view, and each document has a view cache of its own.
    fn has_volumes(&self) -> bool {
        !self.volumes.is_empty() || !self.parked.is_empty()
    }

    /// Opens a family document from its stored snapshot and later chunks.
    pub fn load<'a>(
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
    ) -> Result<Self> {
        let replica =
            Replica::load_checked(snapshot, chunks, actor, Some(rules::DocRules::Family))?;
        let mut fd = FamilyDoc::around(replica, Family::default(), actor.user);
        fd.rehydrate_all();
        Ok(fd)
    }

    /// Opens a family document whose view was read from the store's view cache
    /// ([`crate::view_cache::cached_family`]): the document is loaded for editing and
    /// sync, but not read entity by entity again.
    pub fn load_with_view<'a>(
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
        view: Family,
    ) -> Result<Self> {
        let replica =
            Replica::load_checked(snapshot, chunks, actor, Some(rules::DocRules::Family))?;
        Ok(FamilyDoc::around(replica, view, actor.user))
    }

    /// Every view-cache row of the family's document, to rebuild its cache
    /// (`LocalStore::replace_view`): the view, or with volumes attached what the
    /// family's document itself holds ([`FamilyDoc::cache_rows_of`]).
    pub fn cache_rows(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.cache_rows_of(None)
    }

    /// The current state, hydrated. Pass it to the functions in [`crate::views`].
    pub fn view(&self) -> &Family {
        &self.view
    }

    /// What an edit that counts a `kind` touches: this device's counter of it (the
    /// root row holds the counters).
    fn counted(&self, kind: &str) -> Touched {
        Touched::Root(count_key(self.replica.doc().get_actor(), kind))
    }

    /// The user this device acts for.
    pub fn me(&self) -> UserId {
        self.me
    }

    /// The underlying replica (heads, save, raw Automerge access for sync).
    pub fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// Applies chunks from other devices (in any order, duplicates harmless) and
    /// refreshes the view. Returns what they touched, the feed items they made new (from
    /// which the caller derives notifications), and which chunks were refused — over a
    /// cost limit, unreadable, or breaking the family's rules ([`crate::rules`]) — or
    /// trimmed of refused changes; the others still apply.
    ///
    /// A chunk given with its author ([`Incoming`](crate::replica::Incoming)) also has
    /// every new change in it checked to be written under that author's actor id
    /// ([`rules::check_pushed`]).
    pub fn apply_remote<'a, C: Into<crate::replica::Incoming<'a>>>(
        &mut self,
        chunks: impl IntoIterator<Item = C>,
    ) -> RemoteUpdate {
        self.apply_remote_in(None, chunks)
    }

    /// [`apply_remote`](Self::apply_remote) for the family's document (`year` `None`)
    /// or one of its loaded volumes.
    pub(crate) fn apply_remote_in<'a, C: Into<crate::replica::Incoming<'a>>>(
        &mut self,
        year: Option<u16>,
        chunks: impl IntoIterator<Item = C>,
    ) -> RemoteUpdate {
        let replica = match year {
            None => &mut self.replica,
            Some(year) => match self.volumes.get_mut(&year) {
                Some(replica) => replica,
                // `apply_remote_volume` answers `VolumeNotLoaded` before this.
                None => return RemoteUpdate::default(),
            },
        };
        let (touched, fates) = replica.apply_remote(chunks);
        let mut rejected = Vec::new();
        let mut trimmed = Vec::new();
        let mut refusals = Vec::new();
        for (i, fate) in fates.into_iter().enumerate() {
            match fate {
                ChunkFate::Keep => {}
                ChunkFate::Trim(bytes, why) => {
                    trimmed.push((i, bytes));
                    refusals.push((i, why));
                }
                ChunkFate::Refuse(why) => {
                    rejected.push(i);
                    refusals.push((i, why));
                }
            }
        }
        let before: HashSet<String> = activity_of(&self.view, &touched)
            .into_iter()
            .map(|a| a.id)
            .collect();
        self.refresh(year, &touched);
        let new_activity = activity_of(&self.view, &touched)
            .into_iter()
            .filter(|a| !before.contains(&a.id))
            .collect();
        let view = self.doc_rows(year, &touched);
        RemoteUpdate {
            touched,
            new_activity,
            rejected,
            trimmed,
            refusals,
            view,
        }
    }

    /// Compacts the document into one snapshot (for the store and the relay).
    pub fn save(&mut self) -> Vec<u8> {
        self.replica.save()
    }

    // ----- shared machinery for the operation modules -----

    /// Runs `write` on the document and commits it as one change labelled `what`, then
    /// re-reads the entities it `touches` into the view. On error the pending
    /// operations are rolled back, so nothing half-done remains.
    ///
    /// The first new entity of a year whose volume the family does not list yet
    /// lists it first ([`FamilyDoc::file_new_in_listing`]): that change is handed back
    /// in `Edit::listed`, or, if the edit then fails, stays in memory only (a writer
    /// drops the document: its heads moved without a change to store).
    fn edit<T>(
        &mut self,
        what: &str,
        now_ms: i64,
        touches: &[Touched],
        write: impl FnOnce(&mut AutoCommit) -> Result<T>,
    ) -> Result<Edit<T>> {
        let mut year = self.target_of(touches);
        let mut listed = None;
        if year.is_none()
            && let Some((new_year, actor)) = self.lists_first
            && self.makes_new(touches)
        {
            listed = Some(Box::new(self.start_year(new_year, &actor, now_ms)?));
            year = self.target_of(touches);
        }
        let replica = match year {
            None => &mut self.replica,
            Some(year) => self
                .volumes
                .get_mut(&year)
                .ok_or(DocError::VolumeNotLoaded(year))?,
        };
        match write(replica.doc_mut()).and_then(|value| {
            // Every device refuses a change past this: never write one.
            let ops = replica.doc().pending_ops();
            let limit = Limits::DEFAULT.max_change_ops;
            if ops as u64 > limit {
                return Err(DocError::EditTooLarge { ops, limit });
            }
            Ok(value)
        }) {
            Ok(value) => {
                let change = replica.commit(what, now_ms);
                self.refresh(year, touches);
                let view = self.doc_rows(year, touches);
                Ok(Edit {
                    value,
                    change,
                    view,
                    volume: year,
                    listed,
                })
            }
            Err(e) => {
                replica.rollback();
                Err(e)
            }
        }
    }

    /// Re-reads what a change of the document `year` (`None`: the core) touched into
    /// the view.
    fn refresh(&mut self, year: Option<u16>, touched: &[Touched]) {
        let mut albums = BTreeSet::new();
        for t in touched {
            if !self.has_volumes() {
                self.refresh_one(t);
            } else {
                albums.extend(self.refresh_merged(year, t));
            }
        }
        if !albums.is_empty() {
            self.refresh_volumes_entities(&albums);
        }
    }

    /// The cache rows for what was touched; `None` (drop the cache) if encoding failed.
    fn view_rows(&self, touched: &[Touched]) -> Option<Vec<ViewRow>> {
        match view_cache::rows_for(&self.view, touched) {
            Ok(rows) => Some(rows),
            Err(e) => {
                tracing::warn!(error = %e, "could not encode view rows; the cache will be rebuilt");
                None
            }
        }
    }

    /// The member record of `me`, or `NotMember`.
    fn my_membership(&self) -> Result<&Member> {
        self.view
            .members
            .get(&self.me.to_hex())
            .ok_or_else(|| DocError::NotMember(self.me.to_hex()))
    }

    fn require_member(&self) -> Result<()> {
        self.my_membership().map(|_| ())
    }

    fn require_host(&self) -> Result<()> {
        match self.my_membership()?.role {
            Role::Host => Ok(()),
            Role::Member => Err(DocError::Forbidden("only the host may do this")),
        }
    }

    /// Whether `me` is the host (hosts may moderate others' content).
    fn is_host(&self) -> bool {
        matches!(self.my_membership().map(|m| m.role), Ok(Role::Host))
    }

    fn refresh_one(&mut self, t: &Touched) {
        let doc = self.replica.doc();
        match t {
            // A whole collection replaced at the root (only a misbehaving client does
            // this): its old entries get no delete patches, so read everything again.
            Touched::Root(key) if COLLECTIONS.contains(&key.as_str()) => self.rehydrate_all(),
            Touched::Root(key) if is_counted(key) => {
                refresh_count(doc, key, &mut self.view.counts);
            }
            Touched::Root(key)
                if key.starts_with(VOLUMES_PREFIX) || key.starts_with(HIDDEN_PREFIX) =>
            {
                hydrate_listings(doc, &mut self.view);
            }
            Touched::Root(_) => hydrate_root_fields(doc, &mut self.view),
            Touched::Entity(collection, key) => {
                let Ok(Some((Value::Object(ObjType::Map), coll))) =
                    doc.get(ROOT, collection.as_str())
                else {
                    // The whole collection was replaced or removed: read everything again.
                    self.rehydrate_all();
                    return;
                };
                let v = &mut self.view;
                match collection.as_str() {
                    "members" => refresh_entry(doc, &coll, key, &mut v.members),
                    "calendar" => refresh_entry(doc, &coll, key, &mut v.calendar),
                    "missions" => refresh_entry(doc, &coll, key, &mut v.missions),
                    "albums" => refresh_entry(doc, &coll, key, &mut v.albums),
                    "photos" => refresh_entry(doc, &coll, key, &mut v.photos),
                    "voice_albums" => refresh_entry(doc, &coll, key, &mut v.voice_albums),
                    "voices" => refresh_entry(doc, &coll, key, &mut v.voices),
                    _ => {}
                }
            }
        }
    }

    fn rehydrate_all(&mut self) {
        let core = self.core_part();
        if self.has_volumes() {
            self.merge_volumes(core, BTreeMap::new());
        } else {
            self.view = core;
        }
    }

    /// The family's document read whole: what a volume holds too, and what only the
    /// family's document holds.
    fn core_part(&self) -> Family {
        let doc = self.replica.doc();
        let mut v = volumes::hydrate_part(doc);
        v.members = hydrate_collection(doc, "members");
        v.albums = hydrate_collection(doc, "albums");
        v.voice_albums = hydrate_collection(doc, "voice_albums");
        v
    }
}

/// Whether a root key is a counter (`n/…`) or a mark (`e/…`).
fn is_counted(key: &str) -> bool {
    key.starts_with(COUNTS_PREFIX) || key.starts_with(rules::MARKS_PREFIX)
}

/// Reads the root's scalar fields and counters; missing or mistyped ones keep their
/// defaults.
fn hydrate_root(doc: &AutoCommit, v: &mut Family) {
    let counters = doc.map_range(ROOT, COUNTS_PREFIX.to_owned()..COUNTS_END.to_owned());
    let marks = doc.map_range(ROOT, rules::MARKS_PREFIX.to_owned()..MARKS_END.to_owned());
    v.counts = counters
        .chain(marks)
        .filter_map(|item| Some((item.key.to_string(), counter_value(&item.value)?)))
        .collect();
    hydrate_listings(doc, v);
    hydrate_root_fields(doc, v);
}

/// Reads the volumes listed (`v/{year}`) and the hide records (`h/albums/{album}`,
/// `h/voice_albums/{album}`) at the root again; a key that does not read as one is left out.
fn hydrate_listings(doc: &AutoCommit, v: &mut Family) {
    v.volumes = doc
        .map_range(ROOT, VOLUMES_PREFIX.to_owned()..VOLUMES_END.to_owned())
        .filter_map(|item| item.key.strip_prefix(VOLUMES_PREFIX)?.parse().ok())
        .filter(|year| doran_protocol::VOLUME_YEARS.contains(year))
        .collect();
    v.hidden = Default::default();
    let records = doc.map_range(ROOT, HIDDEN_PREFIX.to_owned()..HIDDEN_END.to_owned());
    for item in records {
        let into = match hidden_key(&item.key) {
            Some(("albums", album)) => (&mut v.hidden.albums, album),
            Some((_, album)) => (&mut v.hidden.voice_albums, album),
            None => continue,
        };
        // Two devices deleting an album at once write two values: the earliest time
        // counts, whichever value Automerge shows (a record never hides more than
        // the earliest deletion did).
        let earliest = doc
            .get_all(ROOT, &*item.key)
            .into_iter()
            .flatten()
            .filter_map(|(value, _)| match value {
                Value::Scalar(s) => match s.as_ref() {
                    automerge::ScalarValue::Int(when) => Some(*when),
                    _ => None,
                },
                _ => None,
            })
            .min();
        if let Some(when) = earliest {
            into.0.insert(into.1.to_owned(), when);
        }
    }
}

/// Reads one counter (`n/{kind}/{actor}`) or mark (`e/{kind}/{user}/{mission}`) again.
/// Reading a counter costs what its increments cost, so an edit re-reads only the
/// counter it moved, never all of them (every counter of a ten-year family: 1.8 ms per
/// edit, `docs/benchmarks.md`).
fn refresh_count(doc: &AutoCommit, key: &str, counts: &mut BTreeMap<String, i64>) {
    match counter_at(doc, key) {
        Some(n) => counts.insert(key.to_owned(), n),
        None => counts.remove(key),
    };
}

/// The counter or mark at the root key `key`, if it reads as one.
fn counter_at(doc: &AutoCommit, key: &str) -> Option<i64> {
    doc.map_range(ROOT, key.to_owned()..=key.to_owned())
        .next()
        .and_then(|item| counter_value(&item.value))
}

/// The value of a counter or mark key at the root (a counter, or a plain integer).
fn counter_value(value: &automerge::ValueRef<'_>) -> Option<i64> {
    match value {
        automerge::ValueRef::Scalar(
            automerge::ScalarValueRef::Counter(n) | automerge::ScalarValueRef::Int(n),
        ) => Some(*n),
        _ => None,
    }
}

/// Reads the root's scalar fields (not the counters).
fn hydrate_root_fields(doc: &AutoCommit, v: &mut Family) {
    v.schema = autosurgeon::hydrate_prop(doc, ROOT, "schema").unwrap_or_default();
    v.id = autosurgeon::hydrate_prop(doc, ROOT, "id").unwrap_or_default();
    let name: String = autosurgeon::hydrate_prop(doc, ROOT, "name").unwrap_or_default();
    v.name = read::cut(name, validate::FAMILY_TITLE.max);
    let created_at: i64 = autosurgeon::hydrate_prop(doc, ROOT, "created_at").unwrap_or_default();
    v.created_at = read::instant(created_at);
    v.created_by = autosurgeon::hydrate_prop(doc, ROOT, "created_by").unwrap_or_default();
}

/// Reads a collection entity by entity, each leniently ([`crate::read`]): an entry
/// that is not an entity at all (written by a newer or a misbehaving client) is
/// skipped and logged, so one bad entry never hides the others.
fn hydrate_collection<T: Entity>(doc: &AutoCommit, name: &str) -> BTreeMap<String, T> {
    let Ok(Some((Value::Object(ObjType::Map), coll))) = doc.get(ROOT, name) else {
        return BTreeMap::new();
    };
    let Ok(automerge::hydrate::Value::Map(entries)) = doc.hydrate(&coll, None) else {
        return BTreeMap::new();
    };
    entries
        .iter()
        .filter_map(|(key, v)| match T::from_hydrated(&v.value) {
            Some(entity) => Some((key.clone(), entity)),
            None => {
                tracing::warn!(
                    collection = name,
                    key,
                    "skipping an entry that is not an entity"
                );
                None
            }
        })
        .collect()
}

fn refresh_entry<T: Entity>(
    doc: &AutoCommit,
    coll: &ObjId,
    key: &str,
    into: &mut BTreeMap<String, T>,
) {
    let entity = match doc.get(coll, key) {
        Ok(Some((Value::Object(_), obj))) => doc
            .hydrate(&obj, None)
            .ok()
            .and_then(|v| T::from_hydrated(&v)),
        _ => None,
    };
    match entity {
        Some(entity) => {
            into.insert(key.to_owned(), entity);
        }
        None => {
            into.remove(key);
        }
    }
}

/// The map object at `path` from the root (e.g. `["photos", id, "likes"]`).
fn map_at(doc: &AutoCommit, path: &[&str]) -> Result<ObjId> {
    let mut obj = ROOT;
    for (i, key) in path.iter().enumerate() {
        match doc.get(&obj, *key)? {
            Some((Value::Object(ObjType::Map), id)) => obj = id,
            _ => {
                return Err(if i == 0 {
                    DocError::Schema(format!("the document has no {key} map"))
                } else {
                    DocError::NotFound {
                        kind: "entry",
                        id: path[..=i].join("/"),
                    }
                });
            }
        }
    }
    Ok(obj)
}

/// Writes a whole entity at `collection/key` (autosurgeon writes only what differs).
fn put_entity<R: Reconcile>(
    doc: &mut AutoCommit,
    collection: &str,
    key: &str,
    entity: &R,
) -> Result<()> {
    let coll = map_at(doc, &[collection])?;
    autosurgeon::reconcile_prop(doc, &coll, key, entity)?;
    Ok(())
}

/// Writes one field of the entity `collection/key` (autosurgeon writes only what
/// differs). An edit of an existing entity writes the fields it changes, never the
/// whole entity from the view: the view is read leniently ([`crate::read`]: a default
/// for a field that did not read, a clamped time), and writing it back would overwrite
/// what others wrote — their authorship or creation time, which every device refuses
/// from anyone else.
fn put_field<R: Reconcile + ?Sized>(
    doc: &mut AutoCommit,
    collection: &str,
    key: &str,
    field: &str,
    value: &R,
) -> Result<()> {
    let obj = map_at(doc, &[collection, key])?;
    autosurgeon::reconcile_prop(doc, &obj, field, value)?;
    Ok(())
}

/// Removes `collection/key`.
fn delete_entity(doc: &mut AutoCommit, collection: &str, key: &str) -> Result<()> {
    let coll = map_at(doc, &[collection])?;
    doc.delete(&coll, key)?;
    Ok(())
}

/// Root keys of the "ever done" counters start with this (`n/{kind}/{actor}`).
const COUNTS_PREFIX: &str = "n/";
/// The first key after every counter key ('/' + 1 = '0').
const COUNTS_END: &str = "n0";
/// The first key after every mark key.
const MARKS_END: &str = "e0";
/// The first key after every volume listed.
const VOLUMES_END: &str = "v0";
/// The first key after every hide record.
const HIDDEN_END: &str = "h0";

/// The root key of `user`'s mark of `kind` for `mission` ([`rules::MARKED`]).
fn mark_key(kind: &str, user: &str, mission: &str) -> String {
    format!("{}{kind}/{user}/{mission}", rules::MARKS_PREFIX)
}

/// The root key of `actor`'s counter of `kind`.
fn count_key(actor: &ActorId, kind: &str) -> String {
    format!("{COUNTS_PREFIX}{kind}/{}", actor.to_hex_string())
}

/// Counts one more `kind` (see [`Family::counts`]) on this device's own counter, in the
/// edit being made (the edit lists [`FamilyDoc::counted`] among what it touches).
fn count(doc: &mut AutoCommit, kind: &str) -> Result<()> {
    let key = count_key(doc.get_actor(), kind);
    match doc.get(ROOT, key.as_str())? {
        Some((Value::Scalar(s), _)) if matches!(s.as_ref(), automerge::ScalarValue::Counter(_)) => {
            doc.increment(ROOT, key.as_str(), 1)?
        }
        _ => doc.put(ROOT, key.as_str(), automerge::ScalarValue::counter(1))?,
    }
    Ok(())
}

/// What an edit of `collection/key` touches.
fn entity(collection: &str, key: &str) -> Touched {
    Touched::Entity(collection.to_owned(), key.to_owned())
}

/// A new random entity id (hex).
fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn not_found(kind: &'static str, id: &str) -> DocError {
    DocError::NotFound {
        kind,
        id: id.to_owned(),
    }
}
