//! A sealed family between two device hosts, the relay played by hand (issue 18): the
//! host seals its family document's chunks as they leave the outbox (the same id on
//! every listing), a device not in the key group stops at a chunk it cannot open and
//! stores nothing of it, the key log lets it in (key package → add → history), and
//! then it reads everything; a clear or altered chunk in a sealed family is refused.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use std::sync::Arc;

use doran_client_core::{
    Actor,
    group::KnownDevices,
    keys::{public_key, random_key},
    store::{LocalStore, MemoryStore, OutboxEntry},
    sync::{DocKind, HostError, IncomingChunk, Keeper, SnapshotCheck, StoreHost, SyncHost},
};
use doran_protocol::{ChunkId, DeviceId, DocId, FamilyId, Seq, UserId};
use ed25519_dalek::SigningKey;

const T0: i64 = 1_700_000_000_000;

struct Dev {
    actor: Actor,
    key: SigningKey,
    store: Arc<dyn LocalStore>,
    host: StoreHost,
}

fn device(n: u8) -> Dev {
    let actor = Actor {
        user: UserId([n; 16]),
        device: DeviceId([n; 16]),
    };
    let key = random_key().unwrap();
    let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
    let host = StoreHost::with_keys(Arc::clone(&store), actor, (key.clone(), None)).unwrap();
    Dev {
        actor,
        key,
        store,
        host,
    }
}

/// A device holding a copy of `d`'s keys (a cloned disk, a backup) and nothing else.
fn copy_of_keys(d: &Dev) -> Dev {
    let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
    store
        .set_meta(
            "keys/keeper",
            &d.store.get_meta("keys/keeper").unwrap().unwrap(),
        )
        .unwrap();
    Dev {
        actor: d.actor,
        key: d.key.clone(),
        host: StoreHost::with_keys(Arc::clone(&store), d.actor, (d.key.clone(), None)).unwrap(),
        store,
    }
}

/// Both devices, vouched for; both users members.
fn known(devs: &[&Dev]) -> KnownDevices {
    let mut k = KnownDevices::new();
    for d in devs {
        k.insert(d.actor.user, d.actor.device, public_key(&d.key));
    }
    k.set_members(devs.iter().map(|d| d.actor.user));
    k
}

/// The relay's log of one document, played by hand: what each device pushes gets
/// the next seq; the pusher hears an ack, the other device gets the chunk.
#[derive(Default)]
struct Log {
    chunks: Vec<(Vec<u8>, UserId)>,
}

impl Log {
    /// Pushes every outbox entry of `doc` `from` has, acks them; returns the new seqs.
    fn push(&mut self, from: &Dev, doc: DocId) -> Vec<Seq> {
        self.push_from(&from.host, from.actor.user, doc)
    }

    /// [`Log::push`] from one of `user`'s hosts.
    fn push_from(&mut self, host: &StoreHost, user: UserId, doc: DocId) -> Vec<Seq> {
        let entries: Vec<OutboxEntry> = host
            .outbox(None, 100)
            .unwrap()
            .into_iter()
            .filter(|e| e.doc == doc)
            .collect();
        let mut seqs = Vec::new();
        for e in entries {
            assert_eq!(e.chunk, ChunkId::of(&e.bytes), "the id the relay checks");
            self.chunks.push((e.bytes, user));
            let seq = self.chunks.len() as Seq;
            host.acked_at(doc, e.chunk, seq).unwrap();
            seqs.push(seq);
        }
        seqs
    }

    /// Delivers the chunks after `since` to `to` as `kind`.
    fn deliver(
        &self,
        to: &Dev,
        doc: DocId,
        kind: DocKind,
        since: Seq,
    ) -> doran_client_core::sync::DocChange {
        let chunks: Vec<IncomingChunk> = self
            .chunks
            .iter()
            .enumerate()
            .skip(since as usize)
            .map(|(i, (bytes, author))| IncomingChunk {
                seq: i as Seq + 1,
                author: Some(*author),
                bytes: bytes.clone(),
            })
            .collect();
        to.host
            .apply(doc, kind, None, &chunks, self.chunks.len() as Seq)
            .unwrap()
    }
}

#[test]
fn a_device_stops_at_a_sealed_chunk_until_the_key_log_lets_it_in() {
    let mom = device(1);
    let son = device(2);
    let family = FamilyId([7; 16]);
    let (doc, keylog) = (DocId::from(family), family.key_log());
    let everyone = known(&[&mom, &son]);

    mom.host
        .create_family_as(family, ("우리 가족", "엄마"), true, T0)
        .unwrap();
    mom.host
        .edit_family(family, |fd| fd.add_member(son.actor.user, "아들", T0))
        .unwrap();
    // Sealed as it leaves, with the same id on every listing (a push after a
    // reconnection is the same chunk).
    let first = mom.host.outbox(None, 100).unwrap();
    let again = mom.host.outbox(None, 100).unwrap();
    let sealed: Vec<&OutboxEntry> = first.iter().filter(|e| e.doc == doc).collect();
    assert_eq!(sealed.len(), 2);
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.chunk, b.chunk);
    }
    for e in &sealed {
        assert!(e.bytes.starts_with(b"DRD"), "a sealed chunk");
        assert!(
            !e.bytes
                .windows("우리 가족".len())
                .any(|w| w == "우리 가족".as_bytes())
        );
    }

    let mut kl = Log::default();
    let mut fd = Log::default();
    kl.push(&mom, keylog);
    fd.push(&mom, doc);
    assert!(mom.host.keys_step(family, &everyone, T0).unwrap().in_group);

    // The son's device hears the key log (the family is sealed) and stops at the
    // family document's first chunk: nothing stored, the cursor stays.
    assert!(kl.deliver(&son, keylog, DocKind::KeyLog(family), 0).keys);
    let change = fd.deliver(&son, doc, DocKind::Family(family), 0);
    assert_eq!(change.locked_at, Some(0));
    assert_eq!(son.store.cursor(doc).unwrap(), 0);
    assert!(son.store.load(doc).unwrap().is_none());
    // An edit on the empty copy would start the document over: refused.
    assert!(matches!(
        son.host
            .edit_family(family, |fd| fd.add_member(son.actor.user, "아들", T0)),
        Err(HostError::WaitingForKeys(f)) if f == family
    ));

    // It asks to be added; mom's device adds it and gives it the history.
    let step = son.host.keys_step(family, &everyone, T0).unwrap();
    assert_eq!(step.appended, 1, "its key package");
    let seen = kl.chunks.len() as Seq;
    kl.push(&son, keylog);
    kl.deliver(&mom, keylog, DocKind::KeyLog(family), seen);
    let step = mom.host.keys_step(family, &everyone, T0).unwrap();
    assert_eq!(step.appended, 1, "a Commit adding the son's device");
    kl.push(&mom, keylog);
    let step = mom.host.keys_step(family, &everyone, T0).unwrap();
    assert_eq!(step.appended, 1, "the history for the device it added");
    kl.push(&mom, keylog);
    kl.deliver(&son, keylog, DocKind::KeyLog(family), seen + 1);
    let step = son.host.keys_step(family, &everyone, T0).unwrap();
    assert!(step.in_group && step.new_keys, "{step:?}");

    // Now everything opens, from before it joined too.
    let change = fd.deliver(&son, doc, DocKind::Family(family), 0);
    assert_eq!((change.refused, change.locked_at), (0, None));
    let view = son
        .host
        .read_family(family, |fd| fd.view().clone())
        .unwrap();
    assert_eq!(view.name, "우리 가족");
    assert!(view.members.contains_key(&son.actor.user.to_hex()));

    // A chunk in the clear, or an altered one, is refused in a sealed family.
    let mut altered = fd.chunks[1].0.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let plain = mom.host.store().load(doc).unwrap().unwrap().changes[0].clone();
    let change = son
        .host
        .apply(
            doc,
            DocKind::Family(family),
            None,
            &[
                IncomingChunk {
                    seq: 3,
                    author: Some(mom.actor.user),
                    bytes: plain,
                },
                IncomingChunk {
                    seq: 4,
                    author: Some(mom.actor.user),
                    bytes: altered,
                },
            ],
            4,
        )
        .unwrap();
    assert_eq!(change.refused, 2);
}

/// Whether a family is sealed is decided by its document's first chunk, never by its
/// key log: a Commit-looking entry any member (or the relay) appends to a clear
/// family's key log changes nothing — its clear chunks still open, its outbox still
/// goes out.
#[test]
fn a_key_log_entry_does_not_seal_a_clear_family() {
    let mom = device(1);
    let son = device(2);
    let family = FamilyId([8; 16]);
    let (doc, keylog) = (DocId::from(family), family.key_log());
    mom.host
        .create_family_as(family, ("우리 가족", "엄마"), false, T0)
        .unwrap();
    let mut fd = Log::default();
    fd.push(&mom, doc);
    assert!(!fd.chunks[0].0.starts_with(b"DRD"), "clear");
    // A hostile entry: a real Commit of another (sealed) family's group.
    let other = device(3);
    other
        .host
        .create_family_as(FamilyId([9; 16]), ("남의 집", "누구"), true, T0)
        .unwrap();
    let forged = other.host.outbox(None, 100).unwrap()[0].bytes.clone();
    let mut kl = Log::default();
    kl.chunks.push((forged, other.actor.user));
    assert!(kl.deliver(&son, keylog, DocKind::KeyLog(family), 0).keys);
    let step = son
        .host
        .keys_step(family, &known(&[&mom, &son]), T0)
        .unwrap();
    assert_eq!(step.appended, 0, "no key package for a clear family");
    let change = fd.deliver(&son, doc, DocKind::Family(family), 0);
    assert_eq!((change.refused, change.locked_at), (0, None));
    assert!(!son.host.is_sealed(family));
    son.host
        .edit_family(family, |fd| fd.add_member(son.actor.user, "아들", T0))
        .unwrap();
    let out = son.host.outbox(None, 100).unwrap();
    assert!(
        out.iter().any(|e| e.doc == doc),
        "the son's change goes out"
    );
    // Once the family is known clear, its key log keeps nothing on this device.
    kl.chunks
        .push((b"DRK\x01 anything".to_vec(), mom.actor.user));
    assert!(!kl.deliver(&son, keylog, DocKind::KeyLog(family), 1).keys);
}

/// A family whose id says it is sealed is sealed on every device before any of its
/// chunks arrives: a relay serving a new member a clear first chunk (here a real one,
/// of another family) has it refused — the member does not take the family for a
/// clear one, and writes nothing to it in the clear.
#[test]
fn a_clear_first_chunk_of_a_family_whose_id_says_sealed_is_refused() {
    let mom = device(1);
    let son = device(2);
    let sealed = FamilyId::new_family(true);
    assert!(son.host.is_sealed(sealed), "sealed before anything arrived");
    // The relay's forgery: a clear family's first chunk, served under the sealed id.
    let clear = FamilyId::new_family(false);
    mom.host
        .create_family_as(clear, ("우리 가족", "엄마"), false, T0)
        .unwrap();
    let mut fd = Log::default();
    fd.push(&mom, DocId::from(clear));
    assert!(!fd.chunks[0].0.starts_with(b"DRD"), "clear");
    let change = fd.deliver(&son, DocId::from(sealed), DocKind::Family(sealed), 0);
    assert_eq!(change.refused, 1, "{change:?}");
    assert!(son.host.is_sealed(sealed));
    assert!(
        son.host
            .edit_family(sealed, |fd| fd.add_member(son.actor.user, "아들", T0))
            .is_err(),
        "no edit on an empty copy"
    );
    assert!(
        son.host
            .outbox(None, 100)
            .unwrap()
            .iter()
            .all(|e| e.doc != DocId::from(sealed)),
        "nothing goes out in the clear"
    );
}

/// A change this device cannot seal yet (it is not in the family's group) waits
/// alone: the listing reads past it, so the changes behind it — here a personal
/// document's — still go out, even a page at a time.
#[test]
fn a_change_that_cannot_be_sealed_yet_does_not_hold_up_the_others() {
    let mom = device(1);
    let son = device(2);
    let family = FamilyId([11; 16]);
    let doc = DocId::from(family);
    mom.host
        .create_family_as(family, ("우리 가족", "엄마"), true, T0)
        .unwrap();
    let mut fd = Log::default();
    fd.push(&mom, doc);
    son.store
        .set_membership(family, doran_client_core::store::Membership::Member, T0)
        .unwrap();
    assert_eq!(
        fd.deliver(&son, doc, DocKind::Family(family), 0).locked_at,
        Some(0)
    );
    // Two changes of the family's (as a device that wrote before its keys were
    // taken from it would hold), then one of its personal document.
    son.store.commit_local(doc, b"waiting 1").unwrap();
    son.store.commit_local(doc, b"waiting 2").unwrap();
    let personal = DocId([12; 16]);
    son.store
        .commit_local(personal, b"a profile change")
        .unwrap();
    let first = son.host.outbox(None, 1).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].doc, personal, "read past the two that wait");
    assert!(son.host.outbox(Some(first[0].id), 1).unwrap().is_empty());
}

/// Keys saved for another account on the same device (signed out, another signed
/// in) are not taken: the new account starts with none.
#[test]
fn keys_saved_for_another_account_are_not_loaded() {
    let mom = device(1);
    let family = FamilyId([13; 16]);
    mom.host
        .create_family_as(family, ("우리 가족", "엄마"), true, T0)
        .unwrap();
    let mine = Keeper::load(
        &*mom.store,
        mom.actor.user,
        mom.actor.device,
        mom.key.clone(),
    )
    .unwrap();
    assert!(mine.is_sealed(family) && !mine.is_new());
    let other = Keeper::load(
        &*mom.store,
        UserId([9; 16]),
        DeviceId([9; 16]),
        random_key().unwrap(),
    )
    .unwrap();
    assert!(other.is_new() && !other.is_sealed(family));
}

/// A device in the group that gets a chunk sealed under an epoch it has no key for
/// (a made-up one, or one it is behind on) keeps it aside and goes on: the chunks
/// after it are applied, nothing locks.
#[test]
fn a_chunk_with_an_unknown_epoch_is_kept_aside_and_the_document_goes_on() {
    let mom = device(1);
    let family = FamilyId([10; 16]);
    let doc = DocId::from(family);
    mom.host
        .create_family_as(family, ("우리 가족", "엄마"), true, T0)
        .unwrap();
    let mut fd = Log::default();
    fd.push(&mom, doc);
    // Mom's second device has the same user: let it be a copy made of mom's store.
    let mut bogus = fd.chunks[0].0.clone();
    bogus[4..12].copy_from_slice(&(1u64 << 40).to_be_bytes());
    mom.host
        .edit_family(family, |fd| fd.add_member(UserId([2; 16]), "아들", T0))
        .unwrap();
    fd.chunks.push((bogus, mom.actor.user));
    let seen = fd.chunks.len() as Seq;
    fd.push(&mom, doc);
    // A fresh copy of mom's ring reads the log from the start: the bogus chunk is
    // kept aside, the one after it is applied.
    let copy = copy_of_keys(&mom);
    let chunks: Vec<IncomingChunk> = fd
        .chunks
        .iter()
        .enumerate()
        .map(|(i, (bytes, author))| IncomingChunk {
            seq: i as Seq + 1,
            author: Some(*author),
            bytes: bytes.clone(),
        })
        .collect();
    let change = copy
        .host
        .apply(doc, DocKind::Family(family), None, &chunks, seen + 1)
        .unwrap();
    assert_eq!((change.refused, change.locked_at), (0, None));
    assert_eq!(copy.store.cursor(doc).unwrap(), seen + 1);
    let view = copy
        .host
        .read_family(family, |fd| fd.view().clone())
        .unwrap();
    assert!(
        view.members.contains_key(&UserId([2; 16]).to_hex()),
        "the chunk after it"
    );
    assert!(
        copy.store
            .get_meta(&format!("keys/held/{}", doc.to_hex()))
            .unwrap()
            .is_some()
    );
    // A copy lacking what it kept aside neither makes nor vouches for a snapshot.
    assert_eq!(copy.host.save(doc, DocKind::Family(family)).unwrap(), None);
    let saved = mom
        .host
        .save(doc, DocKind::Family(family))
        .unwrap()
        .unwrap();
    assert_eq!(
        copy.host
            .check_snapshot(doc, DocKind::Family(family), (1, mom.actor.user), &saved)
            .unwrap(),
        SnapshotCheck::CannotTell
    );
}

/// `new` sees the family is sealed (its document's first chunk does not open), asks
/// to be let in, `by` adds it and sends the history, `new` takes both: the key
/// log's choreography, played by hand.
fn let_in(
    by: &Dev,
    new: &Dev,
    family: FamilyId,
    logs: (&mut Log, &Log),
    known: &KnownDevices,
    now: i64,
) {
    let (kl, fd) = logs;
    let keylog = family.key_log();
    let seen = kl.chunks.len() as Seq;
    kl.deliver(new, keylog, DocKind::KeyLog(family), 0);
    assert_eq!(
        fd.deliver(new, DocId::from(family), DocKind::Family(family), 0)
            .locked_at,
        Some(0)
    );
    assert_eq!(new.host.keys_step(family, known, now).unwrap().appended, 1);
    kl.push(new, keylog);
    kl.deliver(by, keylog, DocKind::KeyLog(family), seen);
    assert_eq!(by.host.keys_step(family, known, now).unwrap().appended, 1);
    kl.push(by, keylog);
    assert_eq!(by.host.keys_step(family, known, now).unwrap().appended, 1);
    kl.push(by, keylog);
    kl.deliver(new, keylog, DocKind::KeyLog(family), seen + 1);
    assert!(new.host.keys_step(family, known, now).unwrap().in_group);
}

/// Each device refreshes its own leaf a week after it was last new (a Commit, a new
/// epoch whose secret goes to the other leaves only): a copy of its keys taken
/// before — a stolen backup, a cloned disk — reads what was sealed until the
/// refresh, and nothing sealed after, while the family's other device follows.
#[test]
fn a_weekly_refresh_locks_out_a_copy_of_a_devices_keys() {
    const DAY: i64 = 24 * 60 * 60 * 1000;
    let mom = device(1);
    let dad = device(3);
    let family = FamilyId([14; 16]);
    let (doc, keylog) = (DocId::from(family), family.key_log());
    let both = known(&[&mom, &dad]);
    let name = |d: &Dev| {
        d.host
            .read_family(family, |fd| fd.view().name.clone())
            .unwrap()
    };
    mom.host
        .create_family_as(family, ("우리 가족", "엄마"), true, T0)
        .unwrap();
    mom.host
        .edit_family(family, |fd| fd.add_member(dad.actor.user, "아빠", T0))
        .unwrap();
    let mut kl = Log::default();
    let mut fd = Log::default();
    kl.push(&mom, keylog);
    fd.push(&mom, doc);
    assert_eq!(mom.host.keys_step(family, &both, T0).unwrap().appended, 0);
    let_in(&mom, &dad, family, (&mut kl, &fd), &both, T0);
    assert_eq!(mom.host.keys_step(family, &both, T0).unwrap().appended, 0);
    let before = mom.host.key_epoch(family).unwrap();
    assert_eq!(dad.host.key_epoch(family), Some(before));

    // A copy of mom's device keys, taken now.
    let copy = copy_of_keys(&mom);
    // Written after the copy, before the refresh: the copy reads it (it is a working
    // copy of her keys).
    mom.host
        .edit_family(family, |fd| fd.rename("복사 뒤", T0 + DAY))
        .unwrap();
    fd.push(&mom, doc);

    // Nothing before a week; then a Commit refreshing her leaf, once.
    let step = mom.host.keys_step(family, &both, T0 + 6 * DAY).unwrap();
    assert_eq!(step.appended, 0, "{step:?}");
    let seen = kl.chunks.len() as Seq;
    let step = mom.host.keys_step(family, &both, T0 + 7 * DAY).unwrap();
    assert_eq!(step.appended, 1, "the refreshing Commit: {step:?}");
    kl.push(&mom, keylog);
    let step = mom.host.keys_step(family, &both, T0 + 7 * DAY).unwrap();
    assert!(step.new_keys && step.appended == 0, "{step:?}");
    assert_eq!(mom.host.key_epoch(family), Some(before + 1));
    let step = mom.host.keys_step(family, &both, T0 + 13 * DAY).unwrap();
    assert_eq!(step.appended, 0, "not again within the week: {step:?}");
    kl.deliver(&dad, keylog, DocKind::KeyLog(family), seen);
    let step = dad.host.keys_step(family, &both, T0 + 7 * DAY).unwrap();
    assert!(step.new_keys, "dad follows: {step:?}");
    assert_eq!(dad.host.key_epoch(family), Some(before + 1));

    // Written after the refresh: sealed under the new epoch.
    mom.host
        .edit_family(family, |fd| fd.rename("바뀐 이름", T0 + 7 * DAY))
        .unwrap();
    fd.push(&mom, doc);
    fd.deliver(&dad, doc, DocKind::Family(family), 0);
    assert_eq!(name(&dad), "바뀐 이름");

    // The copy takes the whole key log and document: it reads up to the refresh
    // and not after, also once it tried its kept-aside chunks again.
    kl.deliver(&copy, keylog, DocKind::KeyLog(family), 0);
    copy.host.keys_step(family, &both, T0 + 7 * DAY).unwrap();
    assert_eq!(copy.host.key_epoch(family), Some(before));
    let change = fd.deliver(&copy, doc, DocKind::Family(family), 0);
    assert_eq!(change.locked_at, None);
    copy.host.retry_held(family).unwrap();
    assert_eq!(
        name(&copy),
        "복사 뒤",
        "the copy reads up to the refresh only"
    );
    assert_eq!(name(&mom), "바뀐 이름");
}

/// A new account's personal document (its id carries the sealed mark) is sealed
/// under its profile key group as it leaves the outbox — whatever personal document
/// the store has been told is this user's — and a relay naming another personal
/// document at sign-in is refused: it cannot have the device write its profile in
/// the clear.
#[test]
fn a_sealed_personal_document_never_leaves_in_the_clear() {
    let me = device(1);
    let doc = DocId(FamilyId::new_family(true).0);
    me.store
        .set_meta(doran_client_core::sync::START_PROFILE_KEYS, &doc.0)
        .unwrap();
    me.store.commit_local(doc, b"a mood").unwrap();
    // The profile key group is started as the host opens with its keys.
    let host =
        StoreHost::with_keys(Arc::clone(&me.store), me.actor, (me.key.clone(), None)).unwrap();
    assert!(
        host.key_epoch(doran_client_core::sync::personal_group(doc))
            .is_some()
    );
    // A relay saying the user's personal document is another one changes nothing of
    // how this one leaves, and the sign-in is refused.
    let lie = doran_client_core::sync::SignedIn {
        user: me.actor.user,
        device: me.actor.device,
        server_time: 0,
        personal_doc: DocId([3; 16]),
        families: Vec::new(),
    };
    assert!(matches!(
        host.signed_in(&lie, T0),
        Err(HostError::OtherPersonalDoc { .. })
    ));
    me.store
        .set_personal_doc(me.actor.user, DocId([3; 16]))
        .unwrap();
    let out = host.outbox(None, 10).unwrap();
    let mine: Vec<&OutboxEntry> = out.iter().filter(|e| e.doc == doc).collect();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].bytes.starts_with(b"DRD\x01"), "sealed");
    assert!(!mine[0].bytes.windows(6).any(|w| w == b"a mood"));
}

/// A family's volume (issue 17) is not named by its family's id, so the checks that
/// find a family document by its id would take it for a document to push as it is:
/// a volume's change is sealed under its family's group, and one of a family this
/// device does not keep waits in the outbox; it never leaves in the clear.
#[test]
fn a_volumes_change_never_leaves_in_the_clear() {
    let me = device(1);
    let family = FamilyId::new_family(true);
    let volume = family.volume(2026);
    me.store.commit_local(volume, b"a photo of 2026").unwrap();
    me.store.commit_local(DocId([9; 16]), b"another").unwrap();
    let out = me.host.outbox(None, 10).unwrap();
    assert!(out.iter().all(|e| e.doc != volume), "{out:?}");
    assert!(
        !out.iter()
            .any(|e| e.bytes.windows(15).any(|w| w == b"a photo of 2026"))
    );
}

/// A family its host seals after creating it: a device that turns at the first
/// envelope of the log owes the family a sealed snapshot (so the relay can drop the
/// clear history), but one that turns at the relay's snapshot, sealed (another
/// member's device confirmed it: the clear history is gone already), owes none — nor
/// does a device that owed one once the relay serves such a snapshot. A clear
/// snapshot pushed just before the sealing is not vouched for after it.
#[test]
fn a_device_that_turns_at_the_relay_s_sealed_snapshot_owes_none() {
    let mom = device(1);
    let son = device(2);
    let daughter = device(3);
    let family = FamilyId([9; 16]);
    let doc = DocId::from(family);
    let kind = DocKind::Family(family);
    mom.host
        .create_family_as(family, ("우리 가족", "엄마"), false, T0)
        .unwrap();
    for (d, name) in [(&son, "아들"), (&daughter, "딸")] {
        mom.host
            .edit_family(family, |fd| fd.add_member(d.actor.user, name, T0))
            .unwrap();
    }
    let mut fd = Log::default();
    fd.push(&mom, doc);
    let clear = fd.chunks.len() as Seq;
    for d in [&son, &daughter] {
        let change = fd.deliver(d, doc, kind, 0);
        assert_eq!((change.refused, change.locked_at), (0, None));
    }

    // A clear snapshot pushed just before the sealing.
    let clear_snapshot = mom.host.save(doc, kind).unwrap().unwrap();
    assert!(!clear_snapshot.starts_with(b"DRD"));

    // Mom seals it; her next change is the log's first envelope. Her device keeps
    // volumes once the relay acked it (issue 17), and says so once.
    assert!(mom.host.seal_clear_family(family).unwrap());
    mom.host
        .edit_family(family, |fd| {
            fd.set_member_name(mom.actor.user, "엄마곰", T0)
        })
        .unwrap();
    assert!(!mom.host.took_up_volumes(), "not before the relay took it");
    fd.push(&mom, doc);
    assert!(fd.chunks[clear as usize].0.starts_with(b"DRD"));
    assert!(mom.host.took_up_volumes(), "the first envelope acked");
    assert!(!mom.host.took_up_volumes(), "said once");

    // The son turns at that envelope: he owes a sealed snapshot.
    let change = fd.deliver(&son, doc, kind, clear);
    assert_eq!(change.locked_at, Some(clear), "no key yet");
    assert_eq!(son.host.snapshots_owed().unwrap(), vec![doc]);
    // He does not vouch for the clear snapshot, whole as it is: confirmed, it would
    // keep the clear history on the relay.
    assert_eq!(
        son.host
            .check_snapshot(doc, kind, (clear, mom.actor.user), &clear_snapshot)
            .unwrap(),
        SnapshotCheck::CannotTell
    );

    // Mom's sealed snapshot, confirmed, is what the relay serves from then on: the
    // daughter turns at it and owes none.
    let snapshot = mom.host.save(doc, kind).unwrap().unwrap();
    assert!(snapshot.starts_with(b"DRD"), "sealed");
    let covers = fd.chunks.len() as Seq;
    let change = daughter
        .host
        .apply(doc, kind, Some(&snapshot), &[], covers)
        .unwrap();
    assert_eq!(change.locked_at, Some(clear), "no key yet");
    assert!(daughter.host.is_sealed(family));
    assert!(daughter.host.snapshots_owed().unwrap().is_empty());

    // Served to the son too, it ends what he owed.
    son.host
        .apply(doc, kind, Some(&snapshot), &[], covers)
        .unwrap();
    assert!(son.host.snapshots_owed().unwrap().is_empty());
}

/// The middle of `year` (UTC, unix ms).
fn mid(year: u16) -> i64 {
    let days = (i64::from(year) - 1970) * 3_652_425 / 10_000;
    (days + 180) * 86_400_000
}

/// The clock of the host writing the year being made.
static CLOCK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn clock() -> i64 {
    CLOCK.load(std::sync::atomic::Ordering::SeqCst)
}

fn in_2026() -> i64 {
    mid(2026)
}

/// A family's per-year volumes between two device hosts, the relay played by hand
/// (issue 17): what a year makes leaves sealed under the family's group; the other
/// device opens it with the family's keys and applies it within its family (started
/// from the volume's genesis), and refuses a clear chunk in it; its snapshot is
/// sealed and checked like the family's document's; and a device taking in year
/// after year keeps at most two older years loaded, the others parked with their
/// entities still shown.
#[test]
fn volumes_leave_sealed_open_within_their_family_and_older_years_are_parked() {
    let mom = device(1);
    let son = device(2);
    let son_host = StoreHost::with_keys(Arc::clone(&son.store), son.actor, (son.key.clone(), None))
        .unwrap()
        .with_clock(in_2026);
    let family = FamilyId::new_family(true);
    let (doc, keylog) = (DocId::from(family), family.key_log());
    let everyone = known(&[&mom, &son]);
    mom.host
        .create_family_as(family, ("우리 가족", "엄마"), true, T0)
        .unwrap();
    mom.host
        .edit_family(family, |fd| fd.add_member(son.actor.user, "아들", T0))
        .unwrap();
    let (mut kl, mut core) = (Log::default(), Log::default());
    kl.push(&mom, keylog);
    core.push(&mom, doc);
    assert!(mom.host.keys_step(family, &everyone, T0).unwrap().in_group);
    let_in(&mom, &son, family, (&mut kl, &core), &everyone, T0);
    drop(son.host);
    let son = Dev {
        host: son_host,
        ..son
    };
    assert_eq!(
        core.deliver(&son, doc, DocKind::Family(family), 0).refused,
        0
    );

    let mut volumes = std::collections::BTreeMap::new();
    for year in 2022..=2026u16 {
        CLOCK.store(mid(year), std::sync::atomic::Ordering::SeqCst);
        let host = StoreHost::with_keys(Arc::clone(&mom.store), mom.actor, (mom.key.clone(), None))
            .unwrap()
            .filing_by_year()
            .with_clock(clock);
        let title = format!("{year}년 미션");
        host.edit_family(family, |fd| fd.add_mission(&title, &[], None, mid(year)))
            .unwrap();
        let volume = family.volume(year);
        // The year's listing in the family's document, the mission in its volume.
        let seen = core.chunks.len() as Seq;
        assert_eq!(core.push_from(&host, mom.actor.user, doc).len(), 1);
        let mut log = Log::default();
        assert_eq!(log.push_from(&host, mom.actor.user, volume).len(), 1);
        let sealed = &log.chunks[0].0;
        assert!(sealed.starts_with(b"DRD"), "sealed");
        assert!(!sealed.windows(title.len()).any(|w| w == title.as_bytes()));
        assert_eq!(
            core.deliver(&son, doc, DocKind::Family(family), seen)
                .refused,
            0
        );
        let change = log.deliver(&son, volume, DocKind::Volume(family, year), 0);
        assert_eq!((change.refused, change.locked_at), (0, None), "{year}");
        assert!(!change.touched.is_empty());
        volumes.insert(year, log);
    }
    let (titles, loaded) = son
        .host
        .read_family(family, |fd| {
            let titles: Vec<String> = fd
                .view()
                .missions
                .values()
                .map(|m| m.title.clone())
                .collect();
            (titles, fd.volume_years().collect::<Vec<u16>>())
        })
        .unwrap();
    assert_eq!(titles.len(), 5, "every year's mission shown: {titles:?}");
    assert_eq!(
        loaded,
        vec![2024, 2025, 2026],
        "this year and the two nearest older ones"
    );

    // A clear chunk in a volume is refused.
    let this = family.volume(2026);
    let plain = mom.store.load(this).unwrap().unwrap().changes[0].clone();
    let change = son
        .host
        .apply(
            this,
            DocKind::Volume(family, 2026),
            None,
            &[IncomingChunk {
                seq: 2,
                author: Some(mom.actor.user),
                bytes: plain,
            }],
            2,
        )
        .unwrap();
    assert_eq!(change.refused, 1);

    // Mom's snapshot of this year's volume leaves sealed, and the son's device finds
    // every change it holds in it.
    let saved = mom
        .host
        .save(this, DocKind::Volume(family, 2026))
        .unwrap()
        .expect("a snapshot");
    assert!(saved.starts_with(b"DRD"), "sealed");
    assert_eq!(
        son.host
            .check_snapshot(
                this,
                DocKind::Volume(family, 2026),
                (1, mom.actor.user),
                &saved
            )
            .unwrap(),
        SnapshotCheck::Contains
    );
}
