//! The family document's rules, applied by every device to every incoming change.
//!
//! The relay checks membership only: any member's client can write anything into the
//! family document. So every device checks each change it receives against the same
//! rules before applying it, and sets aside a change that breaks one — and, since
//! Automerge never applies a change whose dependencies it lacks, everything built on
//! it. The honest client's operations (`family_doc/`) check the same rules for local
//! edits, which are not decoded again.
//!
//! **Determinism.** A device must reach the same verdict on a change whatever else it
//! has received, or honest devices would diverge. So a verdict depends only on the
//! change and on its causal past, never on changes concurrent with it:
//!
//! - the **author** is the user in the change's actor id ([`Actor::user_of`]), never a
//!   field the author writes; and that user must be the one whose device pushed the
//!   chunk that brought it, as the relay recorded it ([`check_pushed`], checked on
//!   arrival: a member cannot write under another member's actor id);
//! - the **host** is the author of the family's first change (the change with no
//!   dependencies, which creates the collections); there is no host transfer, and root
//!   fields other than the name can only be written by that first change;
//! - the **creator** of an entity (a mission, a photo, a comment…) is the actor in its
//!   object id, which is the id of the operation that created it; the value a delete
//!   or an overwrite removes is named exactly by the operation's `pred`, so who made
//!   it is known from the id alone;
//! - **where** an operation writes is its object's path, which never changes (objects
//!   do not move), read at the change's dependencies: the object must be visible there
//!   (so a change cannot name an object from outside its causal past), and the values
//!   an operation replaces must be exactly those visible there at that key (so it
//!   cannot pretend to be concurrent with what it overwrites, or name a value it has
//!   never seen);
//! - anything else read (a photo's album) is read at the change's dependencies too.
//!
//! Everything is a map: lists, text and marks are refused outright, which also makes a
//! text-insert bomb impossible whatever its size. The one kind of counter is the
//! "ever done" tally at the root (`n/{kind}/{actor}`, for badges that never go
//! backwards): each device writes only its own, it starts at 1 and goes up by 1, and
//! only in a change that does what it counts (a mission made, a photo added…). What
//! can be undone and done again — a tick — is recorded as a **mark** instead
//! (`e/{kind}/{user}/{mission}`, see [`MARKED`]): one key per thing done, written only
//! in a change that does it, never removed, so ticking, unticking and ticking again
//! counts once. (Ticks were once counted on counters too; those counters are still
//! accepted, as history must be, but no view reads them.)

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::{
    ActorId, AutoCommit, Change, ChangeHash, ObjId, ObjType, Prop, ROOT, ReadDoc, ScalarValue,
    Value,
    legacy::{Key, ObjectId, OpType},
};
use doran_protocol::UserId;

use crate::replica::Actor;

/// Why a change was refused. Every device reaches the same verdict on the same change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The change's actor id does not name a user (it must start with a user id).
    #[error("the change's actor does not name a user")]
    NotAUser,
    /// A change with no dependencies arrived for a family that already exists: only
    /// the family's first change starts from nothing.
    #[error("a second first change for an existing family")]
    SecondRoot,
    /// A change arrived for a document that has no first change yet.
    #[error("a change for a family that has not been created")]
    NoFamily,
    /// Lists, text, counters and marks: the family document has none.
    #[error("unsupported operation: {0}")]
    Unsupported(&'static str),
    /// A write outside the schema (an unknown collection, field or nesting).
    #[error("no such place in the family document: {0}")]
    UnknownPath(String),
    /// A write into an object that the change's dependencies do not show (deleted
    /// there, or from outside its causal past).
    #[error("writes into an object its dependencies do not show: {0}")]
    NotVisible(String),
    /// The values an operation replaces are not exactly those its dependencies show.
    #[error("replaces values its dependencies do not show: {0}")]
    StaleReplace(String),
    /// The author may not do this here.
    #[error("not allowed ({rule}): {path}")]
    NotAllowed {
        /// The rule, in words.
        rule: &'static str,
        /// Where, e.g. `missions/<id>`.
        path: String,
    },
    /// An authorship field (`by`, `created_by`, `owner`) that is not the author, or
    /// written by someone other than the entity's creator.
    #[error("an authorship field that is not the author's: {0}")]
    ForgedAuthor(String),
    /// Automerge could not read what the check needed.
    #[error("unreadable: {0}")]
    Unreadable(String),
    /// A change written under the actor id of another user than the one whose device
    /// pushed it (the chunk's author, as the relay recorded it): someone writing as
    /// someone else.
    #[error("written as {actor} but pushed by {pusher}")]
    ForgedActor {
        /// The user the change's actor id names (`-` if none).
        actor: String,
        /// The user who pushed the chunk.
        pusher: UserId,
    },
    /// A change of a family's volume written under an actor id that is not a user's
    /// device's (only the volume's first change, the same bytes on every device, is
    /// written as the volume itself).
    #[error("a volume's change written as no user's device")]
    VolumeActor,
    /// A chunk of a personal document pushed by someone other than its owner.
    #[error("a personal document written by {pusher}, not by its owner")]
    NotTheOwner {
        /// The user who pushed the chunk.
        pusher: UserId,
    },
}

/// The collections under the root, created by the family's first change.
const COLLECTIONS: [&str; 7] = [
    "members",
    "calendar",
    "missions",
    "albums",
    "photos",
    "voice_albums",
    "voices",
];

use crate::family_doc::{PROFILE_DOC, PROFILE_KEYS};

/// Root keys of the "ever done" counters start with this (`n/{kind}/{actor}`).
const COUNTS_PREFIX: &str = "n/";

/// Root keys of the "ever done" marks start with this (`e/{kind}/{user}/{entity}`).
pub(crate) use crate::model::MARKS_PREFIX;

/// Root keys of the invites members recorded start with this
/// (`i/{invitee}/{inviter}` = when).
use crate::model::INVITES_PREFIX;

/// Root keys of the volumes a family keeps (`v/{year}`) and of the hide records
/// (`h/albums/{album}`, `h/voice_albums/{album}`): see
/// [`crate::model::Family::volumes`] and [`crate::model::Family::hidden`].
use crate::model::{HIDDEN_PREFIX, VOLUMES_PREFIX, hidden_key};

/// What the marks record, one key per (member, mission): `ticks`, a mission the member
/// ticked (in a change that ticks it); `completed`, a mission the member's tick
/// completed (every other participant who is a member had ticked it, as the change's
/// dependencies show — [`others_all_ticked`]).
pub(crate) const MARKED: [&str; 2] = crate::model::MARKED_KINDS;

/// What the counters count, and the change each one needs: an entity made in a
/// collection (`missions`, `photos`, `voices`, `calendar`), a comment made, or one's
/// own tick.
const COUNTED: [&str; 7] = [
    "missions",
    "photos",
    "voices",
    "events",
    "comments",
    "ticks",
    "completed",
];

/// The collections whose entities hold others (an album its photos, a voice album its
/// messages): what a hide record names.
const CONTAINERS: [&str; 2] = ["albums", "voice_albums"];

/// Root fields written by the first change only (besides the collections).
const ROOT_FIELDS: [&str; 5] = ["schema", "id", "name", "created_at", "created_by"];

type Verdict = Result<(), Violation>;

/// Checks that `change` came from the user it is written as: its actor id must name
/// `pusher`, the user whose device pushed the chunk holding it (the chunk's author, as
/// the relay recorded it). Checked for every incoming change of every document, on
/// arrival; a chunk with no recorded author (stored before relays recorded authors)
/// is not checked. Unlike [`check_change`], the verdict depends on the chunk that
/// brought the change, which is why it is checked when a chunk arrives and its
/// refusal is final: a refused change is never stored, so never replayed.
pub fn check_pushed(change: &Change, pusher: UserId) -> Verdict {
    match Actor::user_of(change.actor_id()) {
        Some(actor) if actor == pusher => Ok(()),
        actor => Err(Violation::ForgedActor {
            actor: actor.map_or_else(|| "-".to_owned(), |a| a.to_hex()),
            pusher,
        }),
    }
}

/// Checks that a chunk of the personal document of `owner` was pushed by its owner
/// (`pusher`: the chunk's author as the relay recorded it, `None` if it recorded
/// none). Only the owner writes a personal document.
pub fn check_personal_pusher(owner: UserId, pusher: Option<UserId>) -> Verdict {
    match pusher {
        Some(pusher) if pusher != owner => Err(Violation::NotTheOwner { pusher }),
        _ => Ok(()),
    }
}

/// The rules a document's incoming changes must pass: the family's document's, or one
/// of its per-year volumes' (issue 17, [`crate::volume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocRules {
    /// The family's document: [`check_change`].
    Family,
    /// A volume of the family: [`check_volume_change`].
    Volume {
        /// The family's host, the author of the family document's first change
        /// ([`host_of`]), which never changes. A volume has no member list: the rules
        /// never read one across documents, since nothing orders a volume's changes
        /// against the family document's, and a verdict must not depend on which
        /// arrived first.
        host: UserId,
        /// The hash of the volume's first change ([`crate::volume::genesis`]).
        genesis: ChangeHash,
    },
}

impl DocRules {
    /// Checks one change, about to be applied to `doc` (its dependencies are all in
    /// it), by these rules.
    pub fn check(&self, doc: &AutoCommit, change: &Change) -> Verdict {
        match *self {
            DocRules::Family => check_change(doc, change),
            DocRules::Volume { host, genesis } => check_volume_change(doc, change, host, genesis),
        }
    }
}

/// Checks one change, about to be applied to `doc` (its dependencies are all in it).
pub fn check_change(doc: &AutoCommit, change: &Change) -> Verdict {
    let author = Actor::user_of(change.actor_id()).ok_or(Violation::NotAUser)?;
    let deps = change.deps().to_vec();
    let genesis = deps.is_empty();
    let host = if genesis {
        if doc.stats().num_changes > 0 {
            return Err(Violation::SecondRoot);
        }
        author
    } else {
        host_of(doc).ok_or(Violation::NoFamily)?
    };
    Check::new(doc, change, Scope::Family, (author, host), genesis).run(change)
}

/// Checks one change of a family's volume, about to be applied to `doc`: the rules of
/// the family's document for its calendar, missions, photos and voice messages and
/// for the counters and marks at its root, with the family's `host`, except that:
///
/// - its first change is the one every device makes alike (`genesis`, its hash), and
///   no other change starts from nothing;
/// - every other change is written by a user's device (an actor id of a user and a
///   device, as [`Actor::actor_id`] writes it), never as the volume;
/// - nothing else is written there: no member, album, invite, title or root field (the
///   family's document holds them);
/// - an entity is removed by its creator or the host only (in the family's document, a
///   photo also goes with its album: an album deleted in the family's document hides
///   a volume's photos, it does not remove them);
/// - a tick completes a mission when every other participant ticked it (a volume has
///   no member list to leave a participant who left out: [`Among::AllParticipants`]).
pub fn check_volume_change(
    doc: &AutoCommit,
    change: &Change,
    host: UserId,
    genesis: ChangeHash,
) -> Verdict {
    if change.deps().is_empty() {
        return if change.hash() == genesis && doc.stats().num_changes == 0 {
            Ok(())
        } else {
            Err(Violation::SecondRoot)
        };
    }
    if change.actor_id().to_bytes().len() != 32 {
        return Err(Violation::VolumeActor);
    }
    let author = Actor::user_of(change.actor_id()).ok_or(Violation::NotAUser)?;
    Check::new(doc, change, Scope::Volume, (author, host), false).run(change)
}

/// Which document a change is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The family's document: everything.
    Family,
    /// A volume: the entities made in a year, and their counters and marks.
    Volume,
}

impl<'a> Check<'a> {
    fn new(
        doc: &'a AutoCommit,
        change: &Change,
        scope: Scope,
        (author, host): (UserId, UserId),
        genesis: bool,
    ) -> Self {
        Check {
            doc,
            deps: change.deps().to_vec(),
            scope,
            author,
            host,
            genesis,
            actor: change.actor_id().clone(),
            start_op: change.start_op().get(),
            created: HashMap::new(),
            resolved: HashMap::new(),
            overlay: HashMap::new(),
            deleted: HashSet::new(),
            needs_container_deleted: Vec::new(),
            counted: BTreeMap::new(),
            done: BTreeMap::new(),
            marks: Vec::new(),
            hides: Vec::new(),
            containers: HashSet::new(),
            ticked: HashMap::new(),
        }
    }

    fn run(mut self, change: &Change) -> Verdict {
        let expanded = change.decode();
        for (i, op) in expanded.operations.iter().enumerate() {
            self.op(i as u64, op)?;
        }
        self.finish()
    }
}

/// The family's host: the creator of the `members` map, which only the family's first
/// change writes.
pub fn host_of(doc: &AutoCommit) -> Option<UserId> {
    match doc.get(ROOT, "members") {
        Ok(Some((_, ObjId::Id(_, actor, _)))) => Actor::user_of(&actor),
        _ => None,
    }
}

/// An object on the way from the root: the key it sits at, and its id.
#[derive(Debug, Clone)]
struct Node {
    key: String,
    id: ObjId,
}

/// What an operation does.
enum Action<'a> {
    Make,
    Put(&'a ScalarValue),
    Delete,
    Increment(i64),
}

/// An object id as (counter, actor), comparable with `pred` entries.
type OpRef = (u64, ActorId);

struct Check<'a> {
    doc: &'a AutoCommit,
    deps: Vec<ChangeHash>,
    scope: Scope,
    author: UserId,
    host: UserId,
    genesis: bool,
    actor: ActorId,
    start_op: u64,
    /// Objects made earlier in this change: counter → path.
    created: HashMap<u64, Vec<Node>>,
    /// Paths of existing objects, resolved once per change.
    resolved: HashMap<OpRef, Vec<Node>>,
    /// The values visible at (object, key) after this change's earlier operations.
    overlay: HashMap<(Option<OpRef>, String), Vec<OpRef>>,
    /// Entities this change removes with permission: (collection, id).
    deleted: HashSet<(String, String)>,
    /// Removals allowed only if the change also removes the container (an album's
    /// photos, a voice album's messages): (what, container collection, container id).
    needs_container_deleted: Vec<(String, &'static str, String)>,
    /// Counter steps this change makes, per kind.
    counted: BTreeMap<&'static str, u64>,
    /// What this change does that a counter may count, per kind.
    done: BTreeMap<&'static str, u64>,
    /// Marks this change writes: (kind, entity).
    marks: Vec<(&'static str, String)>,
    /// Hide records this change writes: (container collection, album id).
    hides: Vec<(&'static str, String)>,
    /// Albums and voice albums this change makes or deletes outright (a `Delete` of a
    /// standing one): ((collection, id), deleted). Making one over another is no
    /// deletion a hide record may come with.
    containers: HashSet<((&'static str, String), bool)>,
    /// The missions this change ticks (the author's own completion): id → object.
    ticked: HashMap<String, ObjId>,
}

impl Check<'_> {
    fn op(&mut self, index: u64, op: &automerge::legacy::Op) -> Verdict {
        let action = match &op.action {
            OpType::Make(ObjType::Map) => Action::Make,
            OpType::Make(_) => return Err(Violation::Unsupported("lists and text")),
            OpType::Put(v) => Action::Put(v),
            OpType::Delete => Action::Delete,
            OpType::Increment(by) => Action::Increment(*by),
            OpType::MarkBegin(_) | OpType::MarkEnd(_) => {
                return Err(Violation::Unsupported("marks"));
            }
        };
        let key = match &op.key {
            Key::Map(k) if !op.insert => k.to_string(),
            _ => return Err(Violation::Unsupported("lists and text")),
        };
        let (obj_ref, mut path) = self.path_of(&op.obj)?;
        // The values this operation replaces must be exactly those visible to it.
        let slot = (obj_ref.clone(), key.clone());
        let expected = match self.overlay.get(&slot) {
            Some(v) => v.clone(),
            None => self.visible_at_deps(obj_ref.as_ref(), &path, &key)?,
        };
        let pred: Vec<OpRef> = op
            .pred
            .iter()
            .map(|p| (p.counter(), p.actor().clone()))
            .collect();
        if !same_set(&pred, &expected) {
            return Err(Violation::StaleReplace(join(&path, &key)));
        }
        let this: OpRef = (self.start_op + index, self.actor.clone());
        match action {
            // An increment changes the counter's value, not which value is there.
            Action::Increment(_) => {}
            Action::Delete => {
                self.overlay.insert(slot, Vec::new());
            }
            _ => {
                self.overlay.insert(slot, vec![this.clone()]);
            }
        }
        path.push(Node {
            key,
            id: ObjId::Id(this.0, this.1.clone(), usize::MAX),
        });
        let removed: Vec<OpRef> = pred;
        self.permit(&path, &action, &removed)?;
        self.tally(&path, &action);
        if let Action::Make = action {
            self.created.insert(this.0, path);
        }
        Ok(())
    }

    /// The path of the object an operation writes into, and its id (`None`: the root).
    fn path_of(&mut self, obj: &ObjectId) -> Result<(Option<OpRef>, Vec<Node>), Violation> {
        let id = match obj {
            ObjectId::Root => return Ok((None, Vec::new())),
            ObjectId::Id(id) => (id.counter(), id.actor().clone()),
        };
        if id.1 == self.actor
            && let Some(path) = self.created.get(&id.0)
        {
            return Ok((Some(id), path.clone()));
        }
        if let Some(path) = self.resolved.get(&id) {
            return Ok((Some(id), path.clone()));
        }
        let ex = ObjId::Id(id.0, id.1.clone(), usize::MAX);
        let shown = format!("{}@{}", id.0, id.1);
        let parents = self
            .doc
            .parents_at(&ex, &self.deps)
            .map_err(|_| Violation::NotVisible(shown.clone()))?;
        let mut nodes = Vec::new();
        let mut child = ex;
        for parent in parents {
            if !parent.visible {
                return Err(Violation::NotVisible(shown));
            }
            let Prop::Map(key) = parent.prop else {
                return Err(Violation::Unsupported("lists and text"));
            };
            nodes.push(Node { key, id: child });
            child = parent.obj;
        }
        nodes.reverse();
        self.resolved.insert(id.clone(), nodes.clone());
        Ok((Some(id), nodes))
    }

    /// The ids of the values visible at `key` in an object, at the change's
    /// dependencies (none for an object made by this change).
    fn visible_at_deps(
        &self,
        obj: Option<&OpRef>,
        path: &[Node],
        key: &str,
    ) -> Result<Vec<OpRef>, Violation> {
        if let Some((ctr, actor)) = obj
            && *actor == self.actor
            && self.created.contains_key(ctr)
        {
            return Ok(Vec::new());
        }
        let ex = match obj {
            None => ROOT,
            Some((ctr, actor)) => ObjId::Id(*ctr, actor.clone(), usize::MAX),
        };
        let values = self
            .doc
            .get_all_at(&ex, key, &self.deps)
            .map_err(|e| Violation::Unreadable(format!("{}: {e}", join(path, key))))?;
        Ok(values
            .into_iter()
            .filter_map(|(_, id)| match id {
                ObjId::Id(ctr, actor, _) => Some((ctr, actor)),
                ObjId::Root => None,
            })
            .collect())
    }

    /// Whether the author may do `action` at `path` (the written key last), removing
    /// the values `removed`.
    fn permit(&mut self, path: &[Node], action: &Action<'_>, removed: &[OpRef]) -> Verdict {
        let keys: Vec<&str> = path.iter().map(|n| n.key.as_str()).collect();
        let shown = keys.join("/");
        let unknown = || Violation::UnknownPath(shown.clone());
        let deny = |rule: &'static str| Violation::NotAllowed {
            rule,
            path: shown.clone(),
        };
        let is_host = self.author == self.host;
        let me = self.author.to_hex();
        let creator = |depth: usize| -> Option<UserId> {
            match &path.get(depth)?.id {
                ObjId::Id(_, actor, _) => Actor::user_of(actor),
                ObjId::Root => None,
            }
        };
        // Every removed value was made by the author (or the author is the host).
        let removes_own = || {
            removed
                .iter()
                .all(|(_, actor)| Actor::user_of(actor) == Some(self.author))
        };
        if self.scope == Scope::Volume {
            // A volume holds a year's entities and their counters and marks, in the
            // collections its first change made; the family's document the rest.
            match keys.as_slice() {
                [k] if k.starts_with(COUNTS_PREFIX) || k.starts_with(MARKS_PREFIX) => {}
                [coll, _, ..] if crate::volume::COLLECTIONS.contains(coll) => {}
                _ => return Err(unknown()),
            }
        }
        match (keys.as_slice(), action) {
            // ----- the "ever done" counters: each device its own.
            ([k], _) if k.starts_with(COUNTS_PREFIX) => self.count(k, action, removed),
            ([k], _) if k.starts_with(MARKS_PREFIX) => self.mark(k, action),
            ([k], _) if k.starts_with(INVITES_PREFIX) => self.invite(k, action),
            ([k], _) if k.starts_with(VOLUMES_PREFIX) => volume_listed(k, action),
            ([k], _) if k.starts_with(HIDDEN_PREFIX) => self.hide(k, action),
            (_, Action::Increment(_)) => Err(Violation::Unsupported("counters")),

            // ----- the root: written whole by the first change, then only renamed.
            ([k], _) if self.genesis => match action {
                Action::Make if COLLECTIONS.contains(k) => Ok(()),
                Action::Put(v) if *k == "created_by" => self.own_name(v, &shown),
                Action::Put(v) if *k == "name" => title(v),
                Action::Put(_) if ROOT_FIELDS.contains(k) => Ok(()),
                _ => Err(unknown()),
            },
            (["name"], Action::Put(v)) if is_host => title(v),
            // When the host sealed a family created clear (`FamilyDoc::mark_sealed`).
            (["sealed_at"], Action::Put(ScalarValue::Int(_))) if is_host => Ok(()),
            ([_], _) => Err(deny(
                "only the host renames (or seals) the family; nothing else at the root changes",
            )),

            // ----- an entity in a collection: created by anyone, removed by its
            // creator or the host (members: themselves, or the host; never the host).
            ([coll, _], _) if !COLLECTIONS.contains(coll) => Err(unknown()),
            ([_, _], Action::Put(_)) => Err(unknown()),
            (["members", user], _) => {
                let user_is_me = *user == me;
                if !removed.is_empty() && (*user == self.host.to_hex() || !(user_is_me || is_host))
                {
                    return Err(deny(
                        "a member leaves or the host removes them; the host stays",
                    ));
                }
                if let Action::Make = action
                    && !(user_is_me || is_host)
                {
                    return Err(deny("a member adds only their own entry"));
                }
                Ok(())
            }
            ([coll, id], _) => {
                if !removed.is_empty() && !is_host && !removes_own() {
                    match *coll {
                        // A volume's photo is hidden with its album, not removed (the
                        // rule below would refuse it too, at the end: a volume holds
                        // no album to delete; this says why).
                        _ if self.scope == Scope::Volume => {
                            return Err(deny("only its creator or the host deletes it"));
                        }
                        // Deleting an album deletes its photos (a voice album, its
                        // messages): allowed if this change deletes the album too.
                        "photos" | "voices" => {
                            let container = if *coll == "photos" {
                                "albums"
                            } else {
                                "voice_albums"
                            };
                            let album = self
                                .container_of(removed)
                                .ok_or_else(|| deny("only its creator or the host deletes it"))?;
                            self.needs_container_deleted
                                .push((shown.clone(), container, album));
                        }
                        _ => return Err(deny("only its creator or the host deletes it")),
                    }
                } else if !removed.is_empty() {
                    self.deleted.insert((coll.to_string(), id.to_string()));
                }
                if let Some(container) = CONTAINERS.into_iter().find(|c| c == coll) {
                    self.container(container, id, action, removed)?;
                }
                Ok(())
            }

            // ----- a member's profile keys (the secrets their personal document is
            // sealed with): the member alone publishes them, never the host — a
            // wrong key would make that member's profile unreadable to the family.
            (["members", user, PROFILE_KEYS], Action::Make) if *user == me => Ok(()),
            (["members", user, PROFILE_KEYS, PROFILE_DOC], Action::Put(ScalarValue::Bytes(b)))
                if *user == me && b.len() == 16 =>
            {
                Ok(())
            }
            (["members", user, PROFILE_KEYS, epoch], Action::Put(ScalarValue::Bytes(b)))
                if *user == me && b.len() == 32 && epoch.parse::<u64>().is_ok() =>
            {
                Ok(())
            }
            (["members", _, PROFILE_KEYS, ..], _) => Err(deny(
                "a member publishes only their own profile keys: their document's id, 32 bytes under an epoch",
            )),

            // ----- inside a member entry: the member or the host; roles are fixed.
            (["members", user, field], _) => {
                if !(*user == me || is_host) {
                    return Err(deny("a member edits only their own entry"));
                }
                match (*field, action) {
                    ("role", Action::Put(ScalarValue::Str(role))) => {
                        let want = if *user == self.host.to_hex() {
                            "Host"
                        } else {
                            "Member"
                        };
                        if role.as_str() == want {
                            Ok(())
                        } else {
                            Err(deny("the host is the family's creator; nobody else is"))
                        }
                    }
                    ("name", Action::Put(ScalarValue::Str(name))) => self.free_name(user, name),
                    ("name" | "color" | "joined_at", Action::Put(_)) => Ok(()),
                    _ => Err(unknown()),
                }
            }

            // ----- authorship fields: the creator writes their own id, once.
            ([coll, _, field], Action::Put(v)) if authorship_field(coll, field) => {
                if creator(1) != Some(self.author) {
                    return Err(Violation::ForgedAuthor(shown.clone()));
                }
                self.own_name(v, &shown)
            }
            ([coll, _, field], _) if authorship_field(coll, field) => {
                Err(Violation::ForgedAuthor(shown.clone()))
            }

            // ----- missions: edited by the creator or the host; ticks are one's own.
            (["missions", _, "completions", user], Action::Put(_)) => {
                if *user == me {
                    Ok(())
                } else {
                    Err(deny("only the member ticks their own completion"))
                }
            }
            (["missions", _, "completions", user], Action::Delete) => {
                if *user == me || is_host || creator(1) == Some(self.author) {
                    Ok(())
                } else {
                    Err(deny(
                        "only the member, the mission's creator or the host unticks",
                    ))
                }
            }
            (["missions", _, "participants", _], Action::Put(_) | Action::Delete)
            | (["missions", _, "participants" | "completions"], Action::Make)
            | (["missions", _, "title" | "due" | "created_at"], Action::Put(_) | Action::Delete) => {
                if is_host || creator(1) == Some(self.author) {
                    Ok(())
                } else {
                    Err(deny("only its creator or the host edits a mission"))
                }
            }

            // ----- photos: fields by the uploader (or host); likes are one's own;
            // comments by their author, tombstoned by the author or the host.
            (["photos", _, "likes", user], Action::Put(_) | Action::Delete) => {
                if *user == me {
                    Ok(())
                } else {
                    Err(deny("only the member likes or unlikes for themselves"))
                }
            }
            (["photos", _, "comments", _], Action::Make | Action::Delete) => {
                if removed.is_empty() || is_host || removes_own() {
                    Ok(())
                } else {
                    Err(deny("only its author or the host removes a comment"))
                }
            }
            (["photos", _, "comments", _, "by"], Action::Put(v)) => {
                if creator(3) != Some(self.author) {
                    return Err(Violation::ForgedAuthor(shown.clone()));
                }
                self.own_name(v, &shown)
            }
            (["photos", _, "comments", _, field], Action::Put(v)) => {
                let tombstone = matches!((*field, v), ("deleted", ScalarValue::Boolean(true)))
                    || matches!((*field, v), ("text", ScalarValue::Str(s)) if s.is_empty());
                let own =
                    creator(3) == Some(self.author) && matches!(*field, "at" | "text" | "deleted");
                if own || (is_host && tombstone) {
                    Ok(())
                } else {
                    Err(deny(
                        "only its author writes a comment; the host may only delete it",
                    ))
                }
            }
            (["photos", _, "likes" | "comments"], Action::Make)
            | (
                [
                    "photos",
                    _,
                    "album_id" | "blob" | "thumb" | "blob_key" | "thumb_key" | "mime" | "size"
                    | "width" | "height" | "taken_at" | "at" | "caption",
                ],
                Action::Put(_),
            )
            | (
                [
                    "voices",
                    _,
                    "album_id" | "title" | "blob" | "blob_key" | "size" | "duration_ms" | "peaks"
                    | "at",
                ],
                Action::Put(_),
            ) => {
                if is_host || creator(1) == Some(self.author) {
                    Ok(())
                } else {
                    Err(deny("only its creator or the host edits it"))
                }
            }

            // ----- albums, voice albums, events: named and edited by any member (the
            // family's); the creation time by the creator.
            (["albums" | "voice_albums" | "calendar", _, "created_at"], Action::Put(_)) => {
                if creator(1) == Some(self.author) {
                    Ok(())
                } else {
                    Err(deny("only its creator sets when it was made"))
                }
            }
            (["albums", _, "name" | "cover"], Action::Put(_))
            | (["voice_albums", _, "name" | "cover"], Action::Put(_))
            | (
                [
                    "calendar",
                    _,
                    "title" | "notes" | "start" | "end" | "start_time" | "end_time" | "color"
                    | "updated_at",
                ],
                Action::Put(_),
            ) => Ok(()),

            _ => Err(unknown()),
        }
    }

    /// A step of an "ever done" counter: `n/{kind}/{actor}` of this change's own
    /// device, made at 1, then +1 at a time (checked against what the change does in
    /// [`finish`](Self::finish)).
    fn count(&mut self, key: &str, action: &Action<'_>, removed: &[OpRef]) -> Verdict {
        let unknown = || Violation::UnknownPath(key.to_owned());
        let deny = |rule: &'static str| Violation::NotAllowed {
            rule,
            path: key.to_owned(),
        };
        let (kind, actor) = key
            .strip_prefix(COUNTS_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(unknown)?;
        let kind = COUNTED.iter().find(|k| **k == kind).ok_or_else(unknown)?;
        if actor != self.actor.to_hex_string() {
            return Err(deny("a device counts only on its own counter"));
        }
        match action {
            Action::Put(ScalarValue::Counter(c)) if removed.is_empty() && i64::from(c) == 1 => {}
            Action::Increment(1) if !removed.is_empty() => {}
            _ => return Err(deny("a counter starts at 1 and goes up by 1")),
        }
        *self.counted.entry(kind).or_default() += 1;
        Ok(())
    }

    /// An invite a member recorded (`i/{invitee}/{inviter}` = when it went out, both
    /// ids in lowercase hex as devices write them, so the host's removal and the
    /// invitee's leaving find every key): the inviter writes it, a time; the inviter,
    /// the invitee (leaving) or the host (removing the member) removes it. Every
    /// device lets the devices of a user invited here into the family's key group,
    /// so nobody records an invite in another member's name.
    fn invite(&self, key: &str, action: &Action<'_>) -> Verdict {
        let unknown = || Violation::UnknownPath(key.to_owned());
        let deny = |rule: &'static str| Violation::NotAllowed {
            rule,
            path: key.to_owned(),
        };
        let (invitee, inviter) = key
            .strip_prefix(INVITES_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(unknown)?;
        let canonical = |hex: &str| hex.parse::<UserId>().is_ok_and(|u| u.to_hex() == hex);
        if !canonical(invitee) || !canonical(inviter) {
            return Err(unknown());
        }
        let me = self.author.to_hex();
        let by_inviter = inviter == me;
        match action {
            Action::Put(ScalarValue::Int(_)) if by_inviter => Ok(()),
            Action::Delete if by_inviter || invitee == me || self.author == self.host => Ok(()),
            _ => Err(deny(
                "a member records only their own invites, a time; they, the invitee or the host remove them",
            )),
        }
    }

    /// A hide record, `h/albums/{album}` (or `h/voice_albums/{album}`) = when:
    /// written by the change that deletes the album outright — checked in
    /// [`finish`](Self::finish) — and never removed. (It may replace one a fork wrote
    /// for an album that stood, which hid nothing: refusing that would let a fork make
    /// an album impossible to delete; and a fork needs no record to bring photos
    /// back, see [`container`](Self::container).) While no album
    /// stands at that id, it hides the album's photos (or messages) kept in volumes
    /// and added no later than that time, which a change of the family's document
    /// cannot remove (`crate::volume::merged`); so whoever may delete an album gains
    /// nothing more with it, and a record hides nothing of an album that stands.
    fn hide(&mut self, key: &str, action: &Action<'_>) -> Verdict {
        let unknown = || Violation::UnknownPath(key.to_owned());
        let (coll, album) = hidden_key(key).ok_or_else(unknown)?;
        if !canonical_id(album) {
            return Err(unknown());
        }
        if !matches!(action, Action::Put(ScalarValue::Int(_))) {
            return Err(Violation::NotAllowed {
                rule: "a hide record is a time, written with its album's deletion and never removed",
                path: key.to_owned(),
            });
        }
        self.hides.push((coll, album.to_owned()));
        Ok(())
    }

    /// An album (or voice album) made or deleted: noted for the hide records, and
    /// never made again at an id a hide record names — the deleted album's photos
    /// kept in volumes would show again in it. (A change written from dependencies
    /// older than the record can still make one there, as any change can make an
    /// entity at an id from an old fork: it brings back photos its author had seen
    /// and could upload again; it never hides anything.)
    fn container(
        &mut self,
        coll: &'static str,
        id: &str,
        action: &Action<'_>,
        removed: &[OpRef],
    ) -> Verdict {
        let deleted = match action {
            Action::Make => false,
            Action::Delete if !removed.is_empty() => true,
            _ => return Ok(()),
        };
        if !deleted {
            let record = format!("{HIDDEN_PREFIX}{coll}/{id}");
            if !self.visible_at_deps(None, &[], &record)?.is_empty() {
                return Err(Violation::NotAllowed {
                    rule: "a deleted album's id is never used again",
                    path: format!("{coll}/{id}"),
                });
            }
        }
        self.containers.insert(((coll, id.to_owned()), deleted));
        Ok(())
    }

    /// A mark, `e/{kind}/{user}/{entity}`: the author's own, written as a time (an
    /// integer), never removed (checked against what the change does in
    /// [`finish`](Self::finish)). Writing it again is harmless: a mark is counted
    /// once whatever its value.
    fn mark(&mut self, key: &str, action: &Action<'_>) -> Verdict {
        let unknown = || Violation::UnknownPath(key.to_owned());
        let deny = |rule: &'static str| Violation::NotAllowed {
            rule,
            path: key.to_owned(),
        };
        let mut parts = key
            .strip_prefix(MARKS_PREFIX)
            .ok_or_else(unknown)?
            .splitn(3, '/');
        let (Some(kind), Some(user), Some(entity)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(unknown());
        };
        let kind = MARKED
            .iter()
            .copied()
            .find(|k| *k == kind)
            .ok_or_else(unknown)?;
        if entity.is_empty() || entity.contains('/') {
            return Err(unknown());
        }
        if user != self.author.to_hex() {
            return Err(deny("a member marks only what they did themselves"));
        }
        if !matches!(action, Action::Put(ScalarValue::Int(_))) {
            return Err(deny("a mark is a time, written and never removed"));
        }
        self.marks.push((kind, entity.to_owned()));
        Ok(())
    }

    /// A 호칭 written for `user`: in the form the honest client writes (trimmed, NFC,
    /// no invisible or direction characters, within the length), and not another
    /// member's, as the change's dependencies show — so nobody can take the name
    /// "엄마" the family knows, and make every screen and notification say 엄마 did
    /// what they did. (Two renames at once can still meet on one name; neither saw the
    /// other.)
    fn free_name(&self, user: &str, name: &str) -> Verdict {
        let deny = |rule: &'static str| Violation::NotAllowed {
            rule,
            path: format!("members/{user}/name"),
        };
        if !doran_protocol::text::is_normal(name, crate::validate::MEMBER_NAME) {
            return Err(deny("a 호칭 is written as the app writes it"));
        }
        let deps = Some(self.deps.as_slice());
        let Some(members) = map_at(self.doc, &ROOT, "members", deps) else {
            return Ok(());
        };
        let taken = self
            .doc
            .keys_at(&members, &self.deps)
            .filter(|other| other != user)
            .any(|other| {
                map_at(self.doc, &members, &other, deps)
                    .and_then(|entry| text_at(self.doc, &entry, "name", &self.deps))
                    .is_some_and(|theirs| theirs == name)
            });
        if taken {
            return Err(deny("two members cannot share a 호칭"));
        }
        Ok(())
    }

    /// Notes what an allowed operation does that a counter may count.
    fn tally(&mut self, path: &[Node], action: &Action<'_>) {
        let keys: Vec<&str> = path.iter().map(|n| n.key.as_str()).collect();
        let me = self.author.to_hex();
        let kinds: &[&'static str] = match (keys.as_slice(), action) {
            (["missions", _], Action::Make) => &["missions"],
            (["photos", _], Action::Make) => &["photos"],
            (["voices", _], Action::Make) => &["voices"],
            (["calendar", _], Action::Make) => &["events"],
            (["photos", _, "comments", _], Action::Make) => &["comments"],
            (["missions", mission, "completions", user], Action::Put(_)) if *user == me => {
                if let Some(node) = path.get(1) {
                    self.ticked.insert((*mission).to_owned(), node.id.clone());
                }
                // The counters ticks were once counted on (no view reads them now).
                &["ticks", "completed"]
            }
            _ => &[],
        };
        for kind in kinds {
            *self.done.entry(kind).or_default() += 1;
        }
    }

    /// An authorship value must be the author's own user id.
    fn own_name(&self, v: &ScalarValue, shown: &str) -> Verdict {
        match v {
            ScalarValue::Str(s) if s.as_str() == self.author.to_hex() => Ok(()),
            _ => Err(Violation::ForgedAuthor(shown.to_owned())),
        }
    }

    /// The album (or voice album) a removed photo (or message) belonged to, read at
    /// the change's dependencies.
    fn container_of(&self, removed: &[OpRef]) -> Option<String> {
        let [(ctr, actor)] = removed else {
            return None;
        };
        let entity = ObjId::Id(*ctr, actor.clone(), usize::MAX);
        text_at(self.doc, &entity, "album_id", &self.deps)
    }

    fn finish(self) -> Verdict {
        for (kind, entity) in &self.marks {
            // Whether the tick completes the mission is read only for a change that
            // says so (reading at the dependencies costs what the maps' history costs).
            let among = match self.scope {
                Scope::Family => Among::Members,
                Scope::Volume => Among::AllParticipants,
            };
            let recorded = self.ticked.get(entity).is_some_and(|mission| match *kind {
                "completed" => others_all_ticked(
                    self.doc,
                    mission,
                    (&self.author.to_hex(), among),
                    Some(&self.deps),
                ),
                _ => true,
            });
            if !recorded {
                return Err(Violation::NotAllowed {
                    rule: "a mark is written only with what it records",
                    path: format!("{MARKS_PREFIX}{kind}/{}/{entity}", self.author.to_hex()),
                });
            }
        }
        for (kind, n) in &self.counted {
            if *n > self.done.get(kind).copied().unwrap_or(0) {
                return Err(Violation::NotAllowed {
                    rule: "a counter goes up only with what it counts",
                    path: format!("{COUNTS_PREFIX}{kind}"),
                });
            }
        }
        for (coll, album) in self.hides {
            let key = (coll, album);
            if !self.containers.contains(&(key.clone(), true))
                || self.containers.contains(&(key.clone(), false))
            {
                return Err(Violation::NotAllowed {
                    rule: "a hide record is written only by the change that deletes its album",
                    path: format!("{HIDDEN_PREFIX}{}/{}", key.0, key.1),
                });
            }
        }
        for (what, coll, id) in self.needs_container_deleted {
            if !self.deleted.contains(&(coll.to_owned(), id)) {
                return Err(Violation::NotAllowed {
                    rule: "only its creator or the host deletes it (or its album's, with the album)",
                    path: what,
                });
            }
        }
        Ok(())
    }
}

/// A volume the family keeps, `v/{year}`: any member lists one (its first entity's
/// device does, before writing it there), as a time, for a year within
/// [`doran_protocol::VOLUME_YEARS`] written as devices write it; never removed.
fn volume_listed(key: &str, action: &Action<'_>) -> Verdict {
    let year = key
        .strip_prefix(VOLUMES_PREFIX)
        .and_then(|y| y.parse::<u16>().ok().filter(|n| n.to_string() == y))
        .filter(|y| doran_protocol::VOLUME_YEARS.contains(y));
    if year.is_none() {
        return Err(Violation::UnknownPath(key.to_owned()));
    }
    match action {
        Action::Put(ScalarValue::Int(_)) => Ok(()),
        _ => Err(Violation::NotAllowed {
            rule: "a volume is listed as a time, and never unlisted",
            path: key.to_owned(),
        }),
    }
}

/// An entity's or album's id as devices make it (32 lowercase hex digits).
fn canonical_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whose ticks a mission's completion waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Among {
    /// Every participant who is a member, by the `members` map of the mission's
    /// document (the family's document: a participant who left is not waited for).
    Members,
    /// Every participant (a volume, which has no member list; reading the family's
    /// document's would make the verdict depend on which document arrived first).
    AllParticipants,
}

/// Whether every other participant of `mission` (`among` those who count) has ticked
/// it — so a tick by `me` completes it — as the document reads at `heads` (`None`: as
/// it is now). Read from the document, never from a view, so that the device writing
/// a tick and every device checking it reach the same answer whatever a view made of
/// odd values.
pub(crate) fn others_all_ticked(
    doc: &AutoCommit,
    mission: &ObjId,
    (me, among): (&str, Among),
    heads: Option<&[ChangeHash]>,
) -> bool {
    let keys_of = |obj: &ObjId, key: &str| -> Option<HashSet<String>> {
        let map = map_at(doc, obj, key, heads)?;
        Some(match heads {
            Some(h) => doc.keys_at(&map, h).collect(),
            None => doc.keys(&map).collect(),
        })
    };
    let Some(participants) = keys_of(mission, "participants") else {
        return false;
    };
    let members = match among {
        Among::Members => Some(keys_of(&ROOT, "members").unwrap_or_default()),
        Among::AllParticipants => None,
    };
    let ticked = keys_of(mission, "completions").unwrap_or_default();
    participants
        .iter()
        .filter(|u| u.as_str() != me && members.as_ref().is_none_or(|m| m.contains(*u)))
        .all(|u| ticked.contains(u))
}

/// The map at `obj[key]`, as the document reads at `heads` (`None`: as it is now).
fn map_at(doc: &AutoCommit, obj: &ObjId, key: &str, heads: Option<&[ChangeHash]>) -> Option<ObjId> {
    let found = match heads {
        Some(h) => doc.get_at(obj, key, h),
        None => doc.get(obj, key),
    };
    match found {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// The text at `obj[key]`, as the document reads at `heads`.
fn text_at(doc: &AutoCommit, obj: &ObjId, key: &str, heads: &[ChangeHash]) -> Option<String> {
    match doc.get_at(obj, key, heads) {
        Ok(Some((Value::Scalar(v), _))) => match v.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// Fields that say who made an entity.
fn authorship_field(coll: &str, field: &str) -> bool {
    matches!(
        (coll, field),
        ("missions" | "albums" | "voice_albums", "created_by")
            | ("photos" | "voices", "by")
            | ("calendar", "owner")
    )
}

fn same_set(a: &[OpRef], b: &[OpRef]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

fn join(path: &[Node], key: &str) -> String {
    let mut s: Vec<&str> = path.iter().map(|n| n.key.as_str()).collect();
    s.push(key);
    s.join("/")
}

/// A family's title as the app writes it (trimmed, NFC, 1–10 characters, no invisible
/// or direction characters): since protocol 7 no relay checks it, and every screen
/// and invite card shows it.
fn title(value: &ScalarValue) -> Verdict {
    match value {
        ScalarValue::Str(t)
            if doran_protocol::text::is_normal(t, crate::validate::FAMILY_TITLE) =>
        {
            Ok(())
        }
        _ => Err(Violation::NotAllowed {
            rule: "a family's title is written as the app writes it",
            path: "name".into(),
        }),
    }
}
