//! Model-based check: random sequences of operations give the same answers and leave
//! the same state in [`MemoryStore`] and [`SqliteStore`]. The conformance suite tests
//! chosen cases; this one looks for the corners nobody thought of (duplicates across
//! calls, compaction interleaved with remote chunks, blob states in odd orders, view
//! cache rows arriving with writes that append nothing or after an invalidation).

use std::collections::BTreeMap;

use doran_client_core::store::{
    BlobOwner, BlobRecord, BlobState, LocalStore, LogPos, MAX_VIEW_KEY_LEN, Membership,
    MemoryStore, NotificationRecord, OutboxEntry, Result, SqliteStore, ViewRow,
};
use doran_protocol::{BlobHash, ChunkId, DocId, FamilyId};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Commit {
        doc: u8,
        chunk: Option<u8>,
    },
    Remote {
        doc: u8,
        chunks: Vec<Option<u8>>,
        cursor: Option<u64>,
    },
    /// Compact with the document's current log end, or (`back > 0`) one it had
    /// `back` loads ago, which may be stale.
    Compact {
        doc: u8,
        back: usize,
        snapshot: u8,
    },
    Ack {
        nth: usize,
    },
    AckChunk {
        doc: u8,
        chunk: u8,
    },
    PutBlob {
        n: u8,
        state: u8,
        cached: bool,
        used: i64,
    },
    SetState {
        n: u8,
        state: u8,
    },
    SetCached {
        n: u8,
        cached: bool,
    },
    Touch {
        n: u8,
        used: i64,
    },
    SetMeta {
        key: u8,
        value: u8,
    },
    DeleteMeta {
        key: u8,
    },
    /// A commit carrying view rows (`None`: without rows).
    CommitView {
        doc: u8,
        chunk: Option<u8>,
        view: Option<Vec<(u8, Option<u8>)>>,
    },
    RemoteView {
        doc: u8,
        chunks: Vec<Option<u8>>,
        cursor: Option<u64>,
        view: Option<Vec<(u8, Option<u8>)>>,
    },
    /// Rebuild the cache as of the current log end, or (`back > 0`) one the document
    /// had `back` loads ago, which may be stale.
    ReplaceView {
        doc: u8,
        back: usize,
        version: u8,
        rows: Vec<(u8, u8)>,
    },
    DropView {
        doc: u8,
    },
    SetMembership {
        family: u8,
        removed: bool,
    },
    SyncMemberships {
        listed: Vec<u8>,
    },
    ForgetFamily {
        family: u8,
    },
    AddNote {
        n: u8,
        at: i64,
        keep: usize,
    },
    MarkRead {
        n: Option<u8>,
    },
    Dismiss {
        n: u8,
    },
    SnapshotCovers {
        doc: u8,
        seq: u64,
    },
}

/// A view row key: mostly one of a few good ones, now and then an empty or a too long
/// one (see [`view_key`]).
fn view_key_index() -> impl Strategy<Value = u8> {
    prop_oneof![30 => 0u8..4, 1 => Just(254u8), 1 => Just(255u8)]
}

fn view_rows() -> impl Strategy<Value = Option<Vec<(u8, Option<u8>)>>> {
    prop::option::weighted(
        0.8,
        prop::collection::vec(
            (view_key_index(), prop::option::weighted(0.8, any::<u8>())),
            0..4,
        ),
    )
}

fn op() -> impl Strategy<Value = Op> {
    let chunk = prop::option::weighted(0.95, 0u8..8);
    prop_oneof![
        4 => (0u8..3, chunk.clone()).prop_map(|(doc, chunk)| Op::Commit { doc, chunk }),
        3 => (0u8..3, prop::collection::vec(chunk.clone(), 0..4), prop::option::of(0u64..20))
            .prop_map(|(doc, chunks, cursor)| Op::Remote { doc, chunks, cursor }),
        2 => (0u8..3, 0usize..4, any::<u8>())
            .prop_map(|(doc, back, snapshot)| Op::Compact { doc, back, snapshot }),
        1 => (0usize..4).prop_map(|nth| Op::Ack { nth }),
        1 => (0u8..3, 0u8..8).prop_map(|(doc, chunk)| Op::AckChunk { doc, chunk }),
        2 => (0u8..5, 0u8..3, any::<bool>(), 0i64..10)
            .prop_map(|(n, state, cached, used)| Op::PutBlob { n, state, cached, used }),
        1 => (0u8..5, 0u8..3).prop_map(|(n, state)| Op::SetState { n, state }),
        1 => (0u8..5, any::<bool>()).prop_map(|(n, cached)| Op::SetCached { n, cached }),
        1 => (0u8..5, 0i64..10).prop_map(|(n, used)| Op::Touch { n, used }),
        1 => (0u8..3, any::<u8>()).prop_map(|(key, value)| Op::SetMeta { key, value }),
        1 => (0u8..3).prop_map(|key| Op::DeleteMeta { key }),
        4 => (0u8..3, chunk.clone(), view_rows())
            .prop_map(|(doc, chunk, view)| Op::CommitView { doc, chunk, view }),
        3 => (
            0u8..3,
            prop::collection::vec(chunk, 0..4),
            prop::option::of(0u64..20),
            view_rows(),
        )
            .prop_map(|(doc, chunks, cursor, view)| Op::RemoteView { doc, chunks, cursor, view }),
        2 => (0u8..3, prop_oneof![3 => Just(0usize), 1 => 1usize..4], any::<u8>(),
              prop::collection::vec((view_key_index(), any::<u8>()), 0..4))
            .prop_map(|(doc, back, version, rows)| Op::ReplaceView { doc, back, version, rows }),
        1 => (0u8..3).prop_map(|doc| Op::DropView { doc }),
        1 => (0u8..4, any::<bool>()).prop_map(|(family, removed)| Op::SetMembership { family, removed }),
        1 => prop::collection::vec(0u8..4, 0..4).prop_map(|listed| Op::SyncMemberships { listed }),
        1 => (0u8..4).prop_map(|family| Op::ForgetFamily { family }),
        2 => (0u8..6, 0i64..4, 1usize..5).prop_map(|(n, at, keep)| Op::AddNote { n, at, keep }),
        1 => prop::option::of(0u8..6).prop_map(|n| Op::MarkRead { n }),
        1 => (0u8..6).prop_map(|n| Op::Dismiss { n }),
        1 => (0u8..4, 0u64..30).prop_map(|(doc, seq)| Op::SnapshotCovers { doc, seq }),
    ]
}

fn family(n: u8) -> FamilyId {
    FamilyId([n; 16])
}

fn doc(n: u8) -> DocId {
    DocId([n; 16])
}

fn chunk(c: Option<u8>) -> Vec<u8> {
    c.map_or_else(Vec::new, |c| vec![b'c', c])
}

/// The key of view row `n`: `v0`..`v3`, or out of bounds (empty for 254, one byte too
/// long for 255).
fn view_key(n: u8) -> String {
    match n {
        254 => String::new(),
        255 => "v".repeat(MAX_VIEW_KEY_LEN + 1),
        n => format!("v{n}"),
    }
}

fn view(rows: &Option<Vec<(u8, Option<u8>)>>) -> Option<Vec<ViewRow>> {
    rows.as_ref().map(|rows| {
        rows.iter()
            .map(|(key, value)| ViewRow {
                key: view_key(*key),
                bytes: value.map(|v| vec![v]),
            })
            .collect()
    })
}

fn hash(n: u8) -> BlobHash {
    BlobHash::of(&[n])
}

fn state(s: u8) -> BlobState {
    match s % 3 {
        0 => BlobState::PendingUpload,
        1 => BlobState::Uploaded,
        _ => BlobState::RemoteOnly,
    }
}

/// One backend under test, with the log positions it handed out per document (the
/// positions are opaque, so each backend is driven with its own).
struct Subject {
    store: Box<dyn LocalStore>,
    ends: BTreeMap<u8, Vec<LogPos>>,
}

/// An answer, written so that both backends must produce the same text: errors by
/// variant, outbox entries without their wall-clock time.
fn answer<T: std::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Ok(value) => format!("ok {value:?}"),
        Err(err) => format!("err {}", err_kind(&format!("{err:?}"))),
    }
}

fn err_kind(debug: &str) -> &str {
    debug.split([' ', '(', '{']).next().unwrap_or(debug)
}

fn entry(e: &OutboxEntry) -> (u64, DocId, ChunkId, Vec<u8>) {
    (e.id, e.doc, e.chunk, e.bytes.clone())
}

impl Subject {
    fn apply(&mut self, op: &Op) -> String {
        let s = &*self.store;
        match op {
            Op::Commit { doc: d, chunk: c } => {
                answer(s.commit_local(doc(*d), &chunk(*c)).map(|e| entry(&e)))
            }
            Op::Remote {
                doc: d,
                chunks,
                cursor,
            } => {
                let owned: Vec<Vec<u8>> = chunks.iter().map(|c| chunk(*c)).collect();
                let slices: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
                answer(s.apply_remote(doc(*d), &slices, *cursor))
            }
            Op::Compact {
                doc: d,
                back,
                snapshot,
            } => match self.through(*d, *back) {
                Ok(through) => answer(self.store.compact(doc(*d), &[b's', *snapshot], through)),
                Err(err) => answer::<()>(Err(err)),
            },
            Op::Ack { nth } => {
                let id = s
                    .outbox(usize::MAX)
                    .ok()
                    .and_then(|o| o.get(*nth).map(|e| e.id));
                answer(s.outbox_acked(id.unwrap_or(u64::MAX)))
            }
            Op::AckChunk { doc: d, chunk: c } => {
                answer(s.outbox_acked_chunk(doc(*d), ChunkId::of(&chunk(Some(*c)))))
            }
            Op::PutBlob {
                n,
                state: st,
                cached,
                used,
            } => answer(
                s.put_blob(&BlobRecord {
                    hash: hash(*n),
                    size: u64::from(*n) * 10,
                    mime: format!("type/{n}"),
                    state: state(*st),
                    cached: *cached,
                    last_used_ms: *used,
                    owner: match n % 3 {
                        0 => None,
                        1 => Some(BlobOwner::Me),
                        _ => Some(BlobOwner::Family(FamilyId([*n; 16]))),
                    },
                    key: doran_client_core::seal::BlobKey::from_slice(&[*n; 32])
                        .filter(|_| n.is_multiple_of(2)),
                }),
            ),
            Op::SetState { n, state: st } => answer(s.set_blob_state(hash(*n), state(*st))),
            Op::SetCached { n, cached } => answer(s.set_cached(hash(*n), *cached)),
            Op::Touch { n, used } => answer(s.touch_blob(hash(*n), *used)),
            Op::SetMeta { key, value } => answer(s.set_meta(&format!("k{key}"), &[*value])),
            Op::DeleteMeta { key } => answer(s.delete_meta(&format!("k{key}"))),
            Op::CommitView {
                doc: d,
                chunk: c,
                view: rows,
            } => answer(
                s.commit_local_with_view(doc(*d), &chunk(*c), view(rows).as_deref())
                    .map(|e| entry(&e)),
            ),
            Op::RemoteView {
                doc: d,
                chunks,
                cursor,
                view: rows,
            } => {
                let owned: Vec<Vec<u8>> = chunks.iter().map(|c| chunk(*c)).collect();
                let slices: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
                answer(s.apply_remote_with_view(doc(*d), &slices, *cursor, view(rows).as_deref()))
            }
            Op::ReplaceView {
                doc: d,
                back,
                version,
                rows,
            } => {
                let rows: Vec<(String, Vec<u8>)> = rows
                    .iter()
                    .map(|(key, value)| (view_key(*key), vec![*value]))
                    .collect();
                match self.through(*d, *back) {
                    Ok(through) => answer(self.store.replace_view(
                        doc(*d),
                        u32::from(*version),
                        through,
                        &rows,
                    )),
                    Err(err) => answer::<()>(Err(err)),
                }
            }
            Op::DropView { doc: d } => answer(s.drop_view(doc(*d))),
            Op::SetMembership { family: f, removed } => {
                let m = if *removed {
                    Membership::Removed
                } else {
                    Membership::Member
                };
                answer(s.set_membership(family(*f), m, 1))
            }
            Op::SyncMemberships { listed } => {
                let listed: Vec<FamilyId> = listed.iter().map(|f| family(*f)).collect();
                answer(s.sync_memberships(&listed, 2))
            }
            Op::ForgetFamily { family: f } => answer(s.forget_family(family(*f))),
            Op::AddNote { n, at, keep } => answer(s.add_notification(
                &NotificationRecord {
                    id: format!("n{n}"),
                    family: (n % 2 == 0).then(|| family(*n)),
                    at_ms: *at,
                    body: vec![*n],
                    read: false,
                },
                *keep,
            )),
            Op::MarkRead { n } => {
                let id = n.map(|n| format!("n{n}"));
                answer(s.mark_notifications_read(id.as_deref()))
            }
            Op::Dismiss { n } => answer(s.dismiss_notification(&format!("n{n}"))),
            Op::SnapshotCovers { doc: d, seq } => answer(s.set_snapshot_covers(doc(*d), *seq)),
        }
    }

    /// The current log end of document `d` (`START` when unknown), or (`back > 0`) the
    /// one it had `back` calls ago; every call records the current one.
    fn through(&mut self, d: u8, back: usize) -> Result<LogPos> {
        let current = self
            .store
            .load(doc(d))?
            .map_or(LogPos::START, |st| st.log_end);
        let ends = self.ends.entry(d).or_default();
        ends.push(current);
        Ok(ends[ends.len().saturating_sub(1 + back)])
    }

    /// Everything observable, except log positions and outbox timestamps.
    fn state(&self) -> Result<String> {
        let s = &*self.store;
        let mut out = String::new();
        for d in s.documents()? {
            let stored = s.load(d)?;
            let stored = stored.map(|st| (st.snapshot, st.changes, st.cursor));
            out += &format!("{d:?} {stored:?} cursor={}\n", s.cursor(d)?);
            // The cache, without its (opaque) position, which must be the log end.
            let view = s.load_view(d)?;
            if let Some(view) = &view {
                let log_end = s.load(d)?.map(|st| st.log_end);
                assert_eq!(Some(view.through), log_end, "a loaded view is current");
            }
            let view = view.map(|v| (v.version, v.rows));
            out += &format!("{d:?} view {view:?}\n");
        }
        let outbox: Vec<_> = s.outbox(usize::MAX)?.iter().map(entry).collect();
        out += &format!("outbox {outbox:?} pending={}\n", s.pending_count()?);
        out += &format!("uploads {:?}\n", s.pending_uploads()?);
        out += &format!("evict {:?}\n", s.eviction_candidates(usize::MAX)?);
        out += &format!("cached {}\n", s.cached_bytes()?);
        for n in 0..5 {
            out += &format!("blob {n} {:?}\n", s.blob(hash(n))?);
        }
        for key in 0..3 {
            out += &format!("meta {key} {:?}\n", s.get_meta(&format!("k{key}"))?);
        }
        out += &format!("families {:?}\n", s.families()?);
        out += &format!(
            "notes {:?} unread={}\n",
            s.notifications(usize::MAX)?,
            s.unread_notifications()?
        );
        for d in 0..4 {
            out += &format!("snapshot {d} {}\n", s.snapshot_covers(doc(d))?);
        }
        Ok(out)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn store_backends_agree(ops in prop::collection::vec(op(), 1..60)) {
        let mut memory = Subject { store: Box::new(MemoryStore::new()), ends: BTreeMap::new() };
        let mut sqlite = Subject {
            store: Box::new(SqliteStore::open_in_memory().expect("open")),
            ends: BTreeMap::new(),
        };
        for (step, op) in ops.iter().enumerate() {
            let (a, b) = (memory.apply(op), sqlite.apply(op));
            prop_assert_eq!(&a, &b, "step {}: {:?}", step, op);
            let (a, b) = (memory.state().expect("memory state"), sqlite.state().expect("sqlite state"));
            prop_assert_eq!(a, b, "state after step {}: {:?}", step, op);
        }
    }
}
