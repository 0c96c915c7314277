//! The sync state machine with no sockets: frames in, effects out.

use std::sync::Arc;

use doran_client_core::{
    Actor,
    keys::DeviceKeys,
    store::{BlobOwner, LocalStore, MemoryStore, OutboxEntry},
    sync::{
        BackoffConfig, DocCursor, DocKind, Effects, Event, IncomingChunk, OutboxWanted,
        RelayAddress, RequestOutcome, SignInAs, SnapshotCheck, SnapshotRef, StoreHost, SyncConfig,
        SyncHost, SyncMachine, SyncStatus, VerifySnapshot,
    },
};
use doran_protocol::{
    BlobHash, Challenge, ChunkId, ClientFrame, DeviceId, DocId, ErrorCode, ErrorFrame, FamilyId,
    FamilySummary, HttpSessionKey, MemberInfo, MembershipChange, Request, RequestId, Response,
    Role, ServerEvent, ServerFrame, Subscription, UserId, signing,
};
use ed25519_dalek::{Signature, Verifier};

const USER: UserId = UserId([7; 16]);
/// The family's host in the tests with real documents ([`family_chunks`]).
const HOST: UserId = UserId([1; 16]);
const PERSONAL: DocId = DocId([8; 16]);

fn challenge() -> Challenge {
    Challenge {
        protocol_version: 1,
        nonce: [1; 32],
        server_id: "test".into(),
        expires_at: 10_000,
    }
}

fn config() -> SyncConfig {
    SyncConfig {
        max_in_flight: 2,
        outbox_batch: 10,
        compact_after: 5,
        backoff: BackoffConfig {
            base_ms: 100,
            max_ms: 10_000,
        },
        ..SyncConfig::default()
    }
}

fn machine(keys: &DeviceKeys) -> SyncMachine {
    SyncMachine::new(keys.clone(), SignInAs::Known { user: USER }, config(), 42)
}

fn signed_in(families: Vec<FamilyId>) -> ServerFrame {
    ServerFrame::SignedIn {
        user: USER,
        device: DeviceId([9; 16]),
        // 2026-05-28: this year's volume is 2026's.
        server_time: 1_780_000_000_000,
        personal_doc: PERSONAL,
        families,
    }
}

/// Connects and signs in; returns the effects of the sign-in and the id of the
/// machine's own ListFamilies request.
fn sign_in(
    m: &mut SyncMachine,
    docs: Vec<DocCursor>,
    families: Vec<FamilyId>,
) -> (Effects, RequestId) {
    m.handle(0, Event::Connected { docs });
    m.handle(1, Event::Frame(ServerFrame::Challenge(challenge())));
    let fx = m.handle(2, Event::Frame(signed_in(families)));
    let list = fx
        .send
        .iter()
        .find_map(|f| match f {
            ClientFrame::Request {
                id,
                body: Request::ListFamilies,
            } => Some(*id),
            _ => None,
        })
        .expect("the machine lists the families");
    (fx, list)
}

fn entry(id: u64, doc: DocId, bytes: &[u8]) -> OutboxEntry {
    OutboxEntry {
        id,
        doc,
        chunk: ChunkId::of(bytes),
        bytes: bytes.to_vec(),
        created_at_ms: 0,
    }
}

/// What a store lists for `want` out of `outbox`.
fn listed(outbox: &[OutboxEntry], want: OutboxWanted) -> Vec<OutboxEntry> {
    outbox
        .iter()
        .filter(|e| want.after.is_none_or(|after| e.id > after))
        .take(want.limit)
        .cloned()
        .collect()
}

/// Refuses the push of `chunk` with `code`.
fn refuse(m: &mut SyncMachine, now: u64, doc: DocId, chunk: ChunkId, code: ErrorCode) -> Effects {
    let e = ErrorFrame::new(code, "later").for_doc(doc).for_chunk(chunk);
    m.handle(now, Event::Frame(ServerFrame::Error(e)))
}

fn subs(fx: &Effects) -> Vec<Subscription> {
    fx.send
        .iter()
        .flat_map(|f| match f {
            ClientFrame::Subscribe { docs } => docs.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn pushes(fx: &Effects) -> Vec<ChunkId> {
    fx.send
        .iter()
        .filter_map(|f| match f {
            ClientFrame::Push { chunk, .. } => Some(*chunk),
            _ => None,
        })
        .collect()
}

#[test]
fn signs_in_with_a_valid_signature_and_subscribes_everything() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    // Step 1: connected → Hello.
    let fx = m.handle(0, Event::Connected { docs: vec![] });
    assert!(matches!(fx.send.as_slice(), [ClientFrame::Hello { .. }]));
    assert_eq!(fx.status, Some(SyncStatus::Connecting));
    // Step 2: challenge → SignIn signed by the device key.
    let fx = m.handle(1, Event::Frame(ServerFrame::Challenge(challenge())));
    let [
        ClientFrame::SignIn {
            user,
            device,
            signature,
        },
    ] = fx.send.as_slice()
    else {
        panic!("expected SignIn, got {:?}", fx.send);
    };
    assert_eq!((*user, *device), (USER, keys.device));
    let msg = signing::signin_message(&challenge(), &USER, &keys.device);
    keys.device_key
        .verifying_key()
        .verify(&msg, &Signature::from_bytes(&signature.0))
        .expect("the signature verifies");
    // Step 3: SignedIn → subscribe personal doc and family docs, list families, ask
    // for the outbox.
    let family = FamilyId([3; 16]);
    let fx = m.handle(2, Event::Frame(signed_in(vec![family])));
    assert_eq!(
        subs(&fx),
        vec![
            Subscription {
                doc: PERSONAL,
                since: 0
            },
            Subscription {
                doc: DocId::from(family),
                since: 0
            },
            // Its key log beside it.
            Subscription {
                doc: family.key_log(),
                since: 0
            },
        ]
    );
    assert_eq!(
        fx.want_outbox,
        Some(OutboxWanted {
            after: None,
            limit: 10
        })
    );
    assert_eq!(fx.signed_in.as_ref().map(|s| s.user), Some(USER));
    assert_eq!(fx.status, Some(SyncStatus::Syncing));
}

#[test]
fn the_sign_in_s_http_session_key_is_handed_over_once_signed_in_only() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let key = |n: u8| HttpSessionKey {
        expires: 600_000 + u64::from(n),
        life_ms: 600_000,
        key: [n; 32],
    };
    m.handle(0, Event::Connected { docs: vec![] });
    // Before the sign-in (or before the challenge): no relay answered this device's
    // signature yet, so a key is nobody's to hand over.
    let fx = m.handle(1, Event::Frame(ServerFrame::HttpSessionKey(key(1))));
    assert_eq!(fx.http_session, None);
    m.handle(2, Event::Frame(ServerFrame::Challenge(challenge())));
    let fx = m.handle(3, Event::Frame(ServerFrame::HttpSessionKey(key(2))));
    assert_eq!(fx.http_session, None);
    let fx = m.handle(4, Event::Frame(signed_in(vec![])));
    assert_eq!(fx.http_session, None, "SignedIn alone brings no key");
    let fx = m.handle(5, Event::Frame(ServerFrame::HttpSessionKey(key(3))));
    assert_eq!(fx.http_session, Some(key(3)));
    assert_eq!(m.server_id(), Some("test"), "the relay the key is for");
    // Merged effects keep the later key.
    let mut both = m.handle(6, Event::Frame(ServerFrame::HttpSessionKey(key(4))));
    both.merge(Effects::default());
    assert_eq!(both.http_session, Some(key(4)));
    let mut earlier = Effects {
        http_session: Some(key(5)),
        ..Effects::default()
    };
    earlier.merge(both);
    assert_eq!(earlier.http_session, Some(key(4)));
    // After the connection ended, a late key is not taken.
    m.handle(
        7,
        Event::Disconnected {
            reason: "gone".into(),
        },
    );
    let fx = m.handle(8, Event::Frame(ServerFrame::HttpSessionKey(key(6))));
    assert_eq!(fx.http_session, None);
}

#[test]
fn register_signs_with_both_keys() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = SyncMachine::new(
        keys.clone(),
        SignInAs::Register {
            email: "a@b".into(),
            nickname: "엄마".into(),
            personal_doc: PERSONAL,
        },
        config(),
        1,
    );
    m.handle(0, Event::Connected { docs: vec![] });
    let fx = m.handle(1, Event::Frame(ServerFrame::Challenge(challenge())));
    let [
        ClientFrame::Register {
            user_signature,
            device_signature,
            user_key,
            device_key,
            ..
        },
    ] = fx.send.as_slice()
    else {
        panic!("expected Register, got {:?}", fx.send);
    };
    assert_eq!(Some(*user_key), keys.user_public());
    let msg = signing::register_user_message(
        &challenge(),
        "a@b",
        "엄마",
        &PERSONAL,
        user_key,
        &keys.device,
        device_key,
    );
    let uk = ed25519_dalek::VerifyingKey::from_bytes(&user_key.0).expect("key");
    uk.verify(&msg, &Signature::from_bytes(&user_signature.0))
        .expect("user signature");
    let msg = signing::register_device_message(
        &challenge(),
        "a@b",
        "엄마",
        &PERSONAL,
        user_key,
        &keys.device,
        device_key,
    );
    keys.device_key
        .verifying_key()
        .verify(&msg, &Signature::from_bytes(&device_signature.0))
        .expect("device signature");
    // Registered: the next connection signs in as the known user.
    m.handle(2, Event::Frame(signed_in(vec![])));
    m.handle(
        3,
        Event::Disconnected {
            reason: "test".into(),
        },
    );
    m.handle(4, Event::Connected { docs: vec![] });
    let fx = m.handle(5, Event::Frame(ServerFrame::Challenge(challenge())));
    assert!(matches!(fx.send.as_slice(), [ClientFrame::SignIn { user, .. }] if *user == USER));
}

#[test]
fn outbox_is_pushed_in_order_with_a_bounded_window() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let (_, list) = sign_in(&mut m, vec![], vec![]);
    let entries: Vec<_> = (1..=5)
        .map(|i| entry(i, PERSONAL, format!("change {i}").as_bytes()))
        .collect();
    // Step 1: the host hands over the outbox; only two go out (max_in_flight = 2).
    let fx = m.handle(3, Event::Outbox(entries.clone()));
    assert_eq!(pushes(&fx), vec![entries[0].chunk, entries[1].chunk]);
    // Step 2: each ack frees a slot for the next entry, in outbox order.
    let fx = m.handle(
        4,
        Event::Frame(ServerFrame::Ack {
            doc: PERSONAL,
            chunk: entries[0].chunk,
            seq: 1,
        }),
    );
    assert_eq!(fx.acked, vec![(PERSONAL, entries[0].chunk, 1)]);
    assert_eq!(pushes(&fx), vec![entries[2].chunk]);
    for (i, e) in entries.iter().enumerate().skip(1) {
        let fx = m.handle(
            5,
            Event::Frame(ServerFrame::Ack {
                doc: PERSONAL,
                chunk: e.chunk,
                seq: i as u64 + 1,
            }),
        );
        assert_eq!(fx.acked, vec![(PERSONAL, e.chunk, i as u64 + 1)]);
        if i + 2 < entries.len() {
            assert_eq!(pushes(&fx), vec![entries[i + 2].chunk]);
        }
    }
    // Step 3: the personal doc catches up and the families are listed: up to date.
    m.handle(
        6,
        Event::Frame(ServerFrame::CaughtUp {
            doc: PERSONAL,
            seq: 5,
        }),
    );
    let fx = m.handle(
        7,
        Event::Frame(ServerFrame::Response {
            id: list,
            body: Response::Families(vec![]),
        }),
    );
    assert_eq!(fx.status, Some(SyncStatus::UpToDate));
    // Own acks moved the cursor over seqs 1..=5: nothing will be redelivered.
    assert_eq!(m.cursors(), vec![(PERSONAL, 5)]);
    // Step 4: a local change asks for the outbox again.
    let fx = m.handle(8, Event::LocalChange);
    assert_eq!(
        fx.want_outbox,
        Some(OutboxWanted {
            after: Some(5),
            limit: 10
        }),
        "listed after the last entry queued"
    );
    assert_eq!(fx.status, Some(SyncStatus::Syncing));
}

#[test]
fn chunks_are_applied_once_and_cursors_resume() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId([3; 16]);
    let fdoc = DocId::from(family);
    // Resume: the store already holds seq 4 of the family doc.
    let (fx, _) = sign_in(
        &mut m,
        vec![DocCursor {
            doc: fdoc,
            cursor: 4,
            snapshot_covers: 0,
        }],
        vec![family],
    );
    assert!(subs(&fx).contains(&Subscription {
        doc: fdoc,
        since: 4
    }));
    // The chunk's author, as the relay recorded it, goes to the host with it.
    let pusher = UserId([5; 16]);
    let chunk =
        |seq: u64| ServerFrame::chunk(fdoc, seq, Some(pusher), format!("c{seq}").into_bytes());
    let fx = m.handle(3, Event::Frame(chunk(5)));
    assert_eq!(fx.apply.len(), 1);
    assert_eq!(fx.apply[0].kind, DocKind::Family(family));
    assert_eq!(
        fx.apply[0].chunks,
        vec![IncomingChunk {
            seq: 5,
            author: Some(pusher),
            bytes: b"c5".to_vec()
        }]
    );
    assert_eq!(fx.apply[0].cursor, 5);
    // A duplicate and an older chunk change nothing.
    assert!(m.handle(4, Event::Frame(chunk(5))).apply.is_empty());
    assert!(m.handle(5, Event::Frame(chunk(3))).apply.is_empty());
    // A chunk whose bytes do not match its id is not applied, and says so.
    let fx = m.handle(
        6,
        Event::Frame(ServerFrame::Chunk {
            doc: fdoc,
            seq: 6,
            chunk: ChunkId::of(b"other"),
            author: None,
            bytes: b"c6".to_vec(),
        }),
    );
    assert!(fx.apply.iter().all(|a| a.chunks.is_empty()));
    assert_eq!(fx.errors.len(), 1);
    // Protocol 1's frame (no author) is a chunk whose author is not known.
    let fx = m.handle(
        7,
        Event::Frame(ServerFrame::UnauthoredChunk {
            doc: fdoc,
            seq: 7,
            chunk: ChunkId::of(b"c7"),
            bytes: b"c7".to_vec(),
        }),
    );
    assert_eq!(fx.apply[0].chunks[0].author, None);
    // A chunk of a document we do not sync is ignored.
    let stranger = ServerFrame::chunk(DocId([99; 16]), 1, None, b"x".to_vec());
    assert!(m.handle(7, Event::Frame(stranger)).apply.is_empty());
    assert_eq!(
        m.cursors(),
        vec![(fdoc, 7), (PERSONAL, 0), (family.key_log(), 0)]
    );
}

/// A cursor past the relay's log (a forged chunk, a relay restored from a backup): the
/// device forgets it, subscribes again from 0, and ignores the live chunks that were
/// in flight until the catch-up brings the log in order.
#[test]
fn a_cursor_ahead_of_the_relay_starts_that_document_over() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId([3; 16]);
    let fdoc = DocId::from(family);
    let (fx, _) = sign_in(
        &mut m,
        vec![DocCursor {
            doc: fdoc,
            cursor: 1 << 62,
            snapshot_covers: 1 << 62,
        }],
        vec![family],
    );
    assert!(subs(&fx).contains(&Subscription {
        doc: fdoc,
        since: 1 << 62
    }));
    let fx = m.handle(
        3,
        Event::Frame(ServerFrame::CursorAhead { doc: fdoc, head: 7 }),
    );
    assert_eq!(
        fx.reset_cursors,
        vec![fdoc],
        "the stored cursor is forgotten"
    );
    assert_eq!(
        subs(&fx),
        vec![Subscription {
            doc: fdoc,
            since: 0
        }]
    );
    assert_eq!(
        m.cursors(),
        vec![(fdoc, 0), (PERSONAL, 0), (family.key_log(), 0)]
    );
    // A live chunk past the old head, sent before the relay saw the new
    // subscription, is skipped: the catch-up delivers it again, in order.
    let chunk = |seq: u64| ServerFrame::chunk(fdoc, seq, None, format!("c{seq}").into_bytes());
    assert!(m.handle(4, Event::Frame(chunk(8))).apply.is_empty());
    for seq in 1..=8 {
        let fx = m.handle(5 + seq, Event::Frame(chunk(seq)));
        assert_eq!(fx.apply.len(), 1, "seq {seq} is applied");
        assert_eq!(fx.apply[0].cursor, seq);
    }
    m.handle(
        20,
        Event::Frame(ServerFrame::CaughtUp { doc: fdoc, seq: 8 }),
    );
    // Caught up: live delivery as usual (a gap is the relay's to fill, not ours).
    let fx = m.handle(21, Event::Frame(chunk(10)));
    assert_eq!(fx.apply[0].cursor, 10);
    // Another CursorAhead for a document the device does not sync changes nothing.
    let fx = m.handle(
        22,
        Event::Frame(ServerFrame::CursorAhead {
            doc: DocId([99; 16]),
            head: 1,
        }),
    );
    assert!(fx.reset_cursors.is_empty() && fx.send.is_empty());
}

/// A snapshot the device cannot fetch (the relay lost the blob, a bad body) stalls
/// only its own document: it goes back to its cursor, stops listening, and subscribes
/// again later from there; the other documents are not touched.
#[test]
fn a_snapshot_that_cannot_be_fetched_stalls_only_its_document() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId([3; 16]);
    let fdoc = DocId::from(family);
    let (_, _) = sign_in(
        &mut m,
        vec![DocCursor {
            doc: fdoc,
            cursor: 2,
            snapshot_covers: 0,
        }],
        vec![family],
    );
    let blob = BlobHash::of(b"snapshot");
    let fx = m.handle(
        3,
        Event::Frame(ServerFrame::Snapshot {
            doc: fdoc,
            covers_seq: 10,
            blob,
            len: 8,
        }),
    );
    assert_eq!(fx.apply.len(), 1);
    assert_eq!(
        m.cursors(),
        vec![(fdoc, 10), (PERSONAL, 0), (family.key_log(), 0)]
    );
    // The host could not fetch it: back to 2, unsubscribed.
    let fx = m.handle(4, Event::SnapshotUnavailable { doc: fdoc });
    assert_eq!(fx.send, vec![ClientFrame::Unsubscribe { docs: vec![fdoc] }]);
    assert_eq!(
        m.cursors(),
        vec![(fdoc, 2), (PERSONAL, 0), (family.key_log(), 0)]
    );
    // What was already on its way for that document is not applied...
    let chunk =
        |doc: DocId, seq: u64| ServerFrame::chunk(doc, seq, None, format!("c{seq}").into_bytes());
    assert!(m.handle(5, Event::Frame(chunk(fdoc, 11))).apply.is_empty());
    m.handle(
        6,
        Event::Frame(ServerFrame::CaughtUp { doc: fdoc, seq: 11 }),
    );
    // ...while the other documents go on.
    assert_eq!(m.handle(7, Event::Frame(chunk(PERSONAL, 1))).apply.len(), 1);
    // Not retried before its time, then subscribed again from its cursor.
    assert!(subs(&m.handle(8, Event::Tick)).is_empty());
    let fx = m.handle(
        4 + doran_client_core::sync::SNAPSHOT_RETRY_FIRST_MS,
        Event::Tick,
    );
    assert_eq!(
        subs(&fx),
        vec![Subscription {
            doc: fdoc,
            since: 2
        }]
    );
    // A stray failure report for a document without a snapshot changes nothing.
    let fx = m.handle(
        5 + doran_client_core::sync::SNAPSHOT_RETRY_FIRST_MS,
        Event::SnapshotUnavailable { doc: fdoc },
    );
    assert!(fx.send.is_empty());
}

/// A snapshot a catch-up named is most often gone by the time it is fetched because a
/// newer one replaced it (the relay no longer serves a replaced snapshot): the
/// document asks again after a second, then twice as long each time it fails again,
/// up to [`SNAPSHOT_RETRY_MS`]; a snapshot that applies starts the count over.
#[test]
fn a_snapshot_gone_when_fetched_is_asked_again_soon_then_less_often() {
    use doran_client_core::sync::{SNAPSHOT_RETRY_FIRST_MS, SNAPSHOT_RETRY_MS};
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId([3; 16]);
    let fdoc = DocId::from(family);
    sign_in(
        &mut m,
        vec![DocCursor {
            doc: fdoc,
            cursor: 2,
            snapshot_covers: 0,
        }],
        vec![family],
    );
    let snapshot = |covers_seq: u64| {
        Event::Frame(ServerFrame::Snapshot {
            doc: fdoc,
            covers_seq,
            blob: BlobHash::of(&covers_seq.to_le_bytes()),
            len: 8,
        })
    };
    let mut now = 10;
    // Fails eight times in a row: each wait is twice the last, up to the cap.
    let mut waits = Vec::new();
    for _ in 0..8 {
        assert_eq!(m.handle(now, snapshot(10)).apply.len(), 1, "applied");
        now += 1;
        m.handle(now, Event::SnapshotUnavailable { doc: fdoc });
        let failed = now;
        let mut wait = None;
        for later in (failed + 250..=failed + SNAPSHOT_RETRY_MS).step_by(250) {
            if !subs(&m.handle(later, Event::Tick)).is_empty() {
                wait = Some(later - failed);
                now = later;
                break;
            }
        }
        waits.push(wait.expect("asked again within the cap"));
    }
    let expected: Vec<u64> = (0..8)
        .map(|n| (SNAPSHOT_RETRY_FIRST_MS << n).min(SNAPSHOT_RETRY_MS))
        .collect();
    assert_eq!(waits, expected);
    assert_eq!(SNAPSHOT_RETRY_FIRST_MS, 1_000, "a second first");
    // A snapshot that applies (its catch-up ends) starts the count over.
    m.handle(now, snapshot(10));
    m.handle(
        now,
        Event::Frame(ServerFrame::CaughtUp { doc: fdoc, seq: 10 }),
    );
    now += 1;
    m.handle(now, snapshot(20));
    m.handle(now, Event::SnapshotUnavailable { doc: fdoc });
    assert!(subs(&m.handle(now + SNAPSHOT_RETRY_FIRST_MS - 1, Event::Tick)).is_empty());
    assert_eq!(
        subs(&m.handle(now + SNAPSHOT_RETRY_FIRST_MS, Event::Tick)),
        vec![Subscription {
            doc: fdoc,
            since: 10
        }]
    );
}

#[test]
fn reconnect_backoff_grows_is_capped_and_jittered() {
    let keys = DeviceKeys::generate().expect("keys");
    let delays = |seed: u64| {
        let mut m = SyncMachine::new(keys.clone(), SignInAs::Known { user: USER }, config(), seed);
        (0..12)
            .map(|i| {
                m.handle(i, Event::Connected { docs: vec![] });
                m.handle(
                    i,
                    Event::Disconnected {
                        reason: "down".into(),
                    },
                )
                .reconnect_after
                .expect("a delay")
            })
            .collect::<Vec<_>>()
    };
    let a = delays(1);
    // Each attempt waits between half and all of min(10 000, 100 · 2ⁿ).
    for (n, d) in a.iter().enumerate() {
        let ceiling = (100u64 << n).min(10_000);
        assert!(
            (ceiling / 2..=ceiling).contains(d),
            "attempt {n}: {d} ms not in [{}, {ceiling}]",
            ceiling / 2
        );
    }
    assert!(a[6] > a[0], "it grows");
    assert!(a.iter().all(|&d| d <= 10_000), "it is capped");
    assert_eq!(a, delays(1), "deterministic for a seed");
    assert_ne!(a, delays(2), "jittered by the seed");
    // A successful sign-in resets it.
    let mut m = machine(&keys);
    for _ in 0..5 {
        m.handle(0, Event::Connected { docs: vec![] });
        m.handle(
            0,
            Event::Disconnected {
                reason: "down".into(),
            },
        );
    }
    sign_in(&mut m, vec![], vec![]);
    let d = m
        .handle(
            9,
            Event::Disconnected {
                reason: "down".into(),
            },
        )
        .reconnect_after
        .expect("a delay");
    assert!(d <= 100);
}

#[test]
fn goodbye_respects_retry_after_and_revocation_stops() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    sign_in(&mut m, vec![], vec![]);
    let fx = m.handle(
        3,
        Event::Frame(ServerFrame::goodbye(
            ErrorCode::ShuttingDown,
            "bye",
            Some(5_000),
        )),
    );
    assert!(fx.close);
    assert!(fx.reconnect_after >= Some(5_000));
    assert_eq!(fx.status, Some(SyncStatus::Offline));
    // The socket closing after the goodbye does not count twice.
    assert_eq!(
        m.handle(
            4,
            Event::Disconnected {
                reason: "closed".into()
            }
        )
        .reconnect_after,
        None
    );
    sign_in(&mut m, vec![], vec![]);
    let fx = m.handle(
        5,
        Event::Frame(ServerFrame::goodbye(
            ErrorCode::DeviceRevoked,
            "revoked",
            None,
        )),
    );
    assert_eq!(fx.reconnect_after, None);
    assert_eq!(fx.fatal.map(|f| f.code), Some(ErrorCode::DeviceRevoked));
    assert!(m.is_stopped());
}

#[test]
fn a_refused_sign_in_is_fatal_but_an_expired_challenge_retries() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    m.handle(0, Event::Connected { docs: vec![] });
    m.handle(1, Event::Frame(ServerFrame::Challenge(challenge())));
    let fx = m.handle(
        2,
        Event::Frame(ServerFrame::Error(ErrorFrame::new(
            ErrorCode::ChallengeExpired,
            "late",
        ))),
    );
    assert!(fx.reconnect_after.is_some() && fx.fatal.is_none());
    m.handle(3, Event::Connected { docs: vec![] });
    m.handle(4, Event::Frame(ServerFrame::Challenge(challenge())));
    let fx = m.handle(
        5,
        Event::Frame(ServerFrame::Error(ErrorFrame::new(
            ErrorCode::UnknownDevice,
            "who?",
        ))),
    );
    assert_eq!(fx.fatal.map(|f| f.code), Some(ErrorCode::UnknownDevice));
    assert_eq!(fx.reconnect_after, None);
}

/// A relay whose id is a URL naming another address than the one connected to gets
/// no signature at all (a relay in the middle would forward it to the one named);
/// one naming this address, or an id that is not a URL, is signed for.
#[test]
fn a_relay_announcing_another_relays_url_gets_nothing_signed() {
    let keys = DeviceKeys::generate().expect("keys");
    let at = |server_id: &str| {
        let mut m = SyncMachine::new(
            keys.clone(),
            SignInAs::Known { user: USER },
            SyncConfig {
                relay_address: Some(RelayAddress {
                    host: "relay.example.org".into(),
                    port: 443,
                    secure: true,
                }),
                ..config()
            },
            42,
        );
        m.handle(0, Event::Connected { docs: vec![] });
        let fx = m.handle(
            1,
            Event::Frame(ServerFrame::Challenge(Challenge {
                server_id: server_id.into(),
                ..challenge()
            })),
        );
        (m, fx)
    };
    let signs = |fx: &Effects| {
        fx.send
            .iter()
            .any(|f| matches!(f, ClientFrame::SignIn { .. }))
    };

    let (mut m, fx) = at("https://evil.example");
    assert!(!signs(&fx), "nothing signed for another relay");
    assert!(fx.close);
    assert_eq!(fx.reconnect_after, None, "not tried again on its own");
    let fatal = fx.fatal.expect("stopped");
    assert_eq!(fatal.code, ErrorCode::WrongRelay);
    assert!(fatal.message.contains("evil.example"), "{}", fatal.message);
    assert!(m.is_stopped());
    assert_eq!(
        m.server_id(),
        None,
        "its id is not taken for signing requests"
    );
    assert!(m.handle(2, Event::Connected { docs: vec![] }).close);

    for another_port in ["https://relay.example.org:8443", "http://relay.example.org"] {
        let (_, fx) = at(another_port);
        assert!(!signs(&fx), "{another_port}");
        assert_eq!(fx.fatal.map(|f| f.code), Some(ErrorCode::WrongRelay));
    }
    for fine in [
        "https://relay.example.org",
        "wss://RELAY.example.org/ws",
        "test",
    ] {
        let (m, fx) = at(fine);
        assert!(signs(&fx), "{fine}");
        assert!(fx.fatal.is_none(), "{fine}");
        assert_eq!(m.server_id(), Some(fine));
    }
}

#[test]
fn requests_wait_for_sign_in_and_fail_on_disconnect() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let (early, fx) = m.request(0, Request::ListInvites);
    assert!(fx.send.is_empty(), "not sent before sign-in");
    let (fx, _) = sign_in(&mut m, vec![], vec![]);
    assert!(fx.send.iter().any(|f| f.request_id() == Some(early)));
    let fx = m.handle(
        3,
        Event::Frame(ServerFrame::Response {
            id: early,
            body: Response::Invites(vec![]),
        }),
    );
    assert_eq!(
        fx.answered,
        vec![(early, RequestOutcome::Response(Response::Invites(vec![])))]
    );
    let (refused, _) = m.request(4, Request::ListDevices);
    let e = ErrorFrame::new(ErrorCode::RateLimited, "slow").for_request(refused);
    let fx = m.handle(5, Event::Frame(ServerFrame::Error(e.clone())));
    assert_eq!(fx.answered, vec![(refused, RequestOutcome::Refused(e))]);
    let (lost, _) = m.request(6, Request::ListDevices);
    let fx = m.handle(
        7,
        Event::Disconnected {
            reason: "cut".into(),
        },
    );
    assert_eq!(fx.answered, vec![(lost, RequestOutcome::Disconnected)]);
}

#[test]
fn membership_follows_server_events() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    sign_in(&mut m, vec![], vec![]);
    let family = FamilyId([4; 16]);
    let other = UserId([5; 16]);
    let other_doc = DocId([6; 16]);
    let member = |user, personal_doc| MemberInfo {
        user,
        role: Role::Member,
        joined_at: 0,
        personal_doc,
    };
    // Joined: the family doc and the co-member's personal doc are subscribed.
    let fx = m.handle(
        3,
        Event::Frame(ServerFrame::Event(ServerEvent::MembershipChanged {
            family,
            members: vec![member(USER, PERSONAL), member(other, other_doc)],
            change: MembershipChange::Joined { user: USER },
        })),
    );
    let docs: Vec<DocId> = subs(&fx).iter().map(|s| s.doc).collect();
    assert_eq!(docs, vec![DocId::from(family), family.key_log(), other_doc]);
    assert_eq!(fx.events.len(), 1);
    // Forbidden on a document: it is dropped.
    let e = ErrorFrame::new(ErrorCode::Forbidden, "no").for_doc(other_doc);
    let fx = m.handle(4, Event::Frame(ServerFrame::Error(e)));
    assert_eq!(fx.dropped, vec![(other_doc, ErrorCode::Forbidden)]);
    // Removed: the family doc is dropped and unsubscribed.
    let fx = m.handle(
        5,
        Event::Frame(ServerFrame::Event(ServerEvent::MembershipChanged {
            family,
            members: vec![],
            change: MembershipChange::Removed {
                user: USER,
                by: other,
            },
        })),
    );
    assert_eq!(
        fx.dropped,
        vec![
            (DocId::from(family), ErrorCode::Forbidden),
            (family.key_log(), ErrorCode::Forbidden)
        ]
    );
    assert!(fx.send.iter().any(
        |f| matches!(f, ClientFrame::Unsubscribe { docs } if docs == &vec![DocId::from(family)])
    ));
    // An accepted invite's response subscribes the family.
    let (id, _) = m.request(6, Request::ListFamilies);
    let summary = FamilySummary {
        family,
        role: Role::Member,
        created_at: 0,
        members: vec![member(USER, PERSONAL)],
    };
    let fx = m.handle(
        7,
        Event::Frame(ServerFrame::Response {
            id,
            body: Response::FamilyCreated(summary),
        }),
    );
    assert_eq!(subs(&fx).len(), 2, "the family document and its key log");
}

/// A chunk sealed under an epoch this device has no key for: the document goes back
/// to the last seq stored and stops listening — not holding up "up to date", taking
/// no chunk meanwhile — until the host says keys came; then it is subscribed again
/// from there and its chunks are taken in order.
#[test]
fn a_document_waiting_for_keys_stops_and_starts_again_from_where_it_was() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId([3; 16]);
    let fdoc = DocId::from(family);
    let (_, list) = sign_in(&mut m, vec![], vec![family]);
    m.handle(
        3,
        Event::Frame(ServerFrame::Response {
            id: list,
            body: Response::Families(vec![]),
        }),
    );
    m.handle(3, Event::Outbox(vec![]));
    for doc in [PERSONAL, family.key_log()] {
        m.handle(3, Event::Frame(ServerFrame::CaughtUp { doc, seq: 0 }));
    }
    for seq in 1..=3 {
        let bytes = format!("sealed {seq}").into_bytes();
        m.handle(4, Event::Frame(ServerFrame::chunk(fdoc, seq, None, bytes)));
    }
    // The host opened the first and stopped at the second.
    let fx = m.handle(
        5,
        Event::DocLocked {
            doc: fdoc,
            cursor: 1,
        },
    );
    assert_eq!(fx.send, vec![ClientFrame::Unsubscribe { docs: vec![fdoc] }]);
    assert_eq!(
        m.status(),
        SyncStatus::UpToDate,
        "nothing more to do until keys come"
    );
    let late = ServerFrame::chunk(fdoc, 4, None, b"sealed 4".to_vec());
    assert!(
        m.handle(6, Event::Frame(late)).apply.is_empty(),
        "not listening"
    );
    // Keys came.
    let fx = m.handle(7, Event::Unlocked { docs: vec![fdoc] });
    assert_eq!(
        subs(&fx),
        vec![Subscription {
            doc: fdoc,
            since: 1
        }]
    );
    assert_eq!(m.status(), SyncStatus::Syncing);
    let fx = m.handle(
        8,
        Event::Frame(ServerFrame::chunk(fdoc, 2, None, b"sealed 2".to_vec())),
    );
    assert_eq!(fx.apply[0].cursor, 2);
}

#[test]
fn a_long_log_asks_for_a_snapshot_once() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId([3; 16]);
    let fdoc = DocId::from(family);
    sign_in(&mut m, vec![], vec![family]);
    let mut compact = Vec::new();
    for seq in 1..=8 {
        let fx = m.handle(
            3,
            Event::Frame(ServerFrame::chunk(
                fdoc,
                seq,
                None,
                format!("c{seq}").into_bytes(),
            )),
        );
        compact.extend(fx.compact);
    }
    assert!(compact.is_empty(), "not before catch-up");
    let fx = m.handle(4, Event::Frame(ServerFrame::CaughtUp { doc: fdoc, seq: 8 }));
    assert_eq!(fx.compact.len(), 1);
    assert_eq!(
        (fx.compact[0].covers_seq, fx.compact[0].kind),
        (8, DocKind::Family(family))
    );
    assert_eq!(fx.compact[0].owner(), BlobOwner::Family(family));
    assert_eq!(
        m.status(),
        SyncStatus::Syncing,
        "a snapshot is in the making"
    );
    let fx = m.handle(
        5,
        Event::Frame(ServerFrame::chunk(fdoc, 9, None, b"c9".to_vec())),
    );
    assert!(fx.compact.is_empty(), "one at a time");
    let blob = BlobHash::of(b"snapshot");
    let fx = m.handle(
        6,
        Event::SnapshotUploaded {
            doc: fdoc,
            covers_seq: 8,
            blob,
            len: 8,
        },
    );
    assert!(matches!(
        fx.send.as_slice(),
        [ClientFrame::PushSnapshot { covers_seq: 8, .. }]
    ));
    let fx = m.handle(
        7,
        Event::Frame(ServerFrame::SnapshotAccepted {
            doc: fdoc,
            covers_seq: 8,
        }),
    );
    assert_eq!(fx.snapshot_accepted, vec![(fdoc, 8)]);
}

/// A machine signed in, with one family, and that family's document.
fn with_a_family() -> (SyncMachine, DocId) {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId([3; 16]);
    sign_in(&mut m, vec![], vec![family]);
    (m, DocId::from(family))
}

/// Chunk `seq` of `doc` (one byte) arrives at `now`.
fn feed_chunk(m: &mut SyncMachine, now: u64, doc: DocId, seq: u64) {
    m.handle(
        now,
        Event::Frame(ServerFrame::chunk(doc, seq, None, vec![seq as u8])),
    );
}

/// A snapshot the relay refused (its pusher replaced its own pending one too soon,
/// the network failed) is not made again before the relay's hint, nor before a wait
/// that doubles with each failure in a row: a device owing a family a sealed snapshot
/// asks for one at every chunk, and each one uploads the whole document again.
#[test]
fn a_refused_snapshot_is_not_made_again_before_its_wait() {
    use doran_client_core::sync::COMPACT_RETRY_FIRST_MS;
    let (mut m, fdoc) = with_a_family();
    for seq in 1..=2 {
        feed_chunk(&mut m, 3, fdoc, seq);
    }
    m.handle(3, Event::Frame(ServerFrame::CaughtUp { doc: fdoc, seq: 2 }));
    let compacts = |m: &mut SyncMachine, now: u64| {
        m.handle(now, Event::CompactNow { doc: fdoc }).compact.len()
    };
    assert_eq!(compacts(&mut m, 10), 1);
    m.handle(
        11,
        Event::SnapshotUploaded {
            doc: fdoc,
            covers_seq: 2,
            blob: BlobHash::of(b"snapshot"),
            len: 8,
        },
    );
    // Refused: the user's own pending snapshot is a minute old at most.
    let e = ErrorFrame::new(ErrorCode::RateLimited, "too many requests")
        .for_doc(fdoc)
        .retry_after(60_000);
    m.handle(12, Event::Frame(ServerFrame::Error(e)));
    feed_chunk(&mut m, 13, fdoc, 3);
    assert_eq!(compacts(&mut m, 13), 0, "not at the next chunk");
    assert_eq!(compacts(&mut m, 12 + 59_999), 0, "not before the hint");
    assert_eq!(compacts(&mut m, 12 + 60_000), 1);
    // Uploads that failed (no hint): the second failure in a row waits twice the
    // first wait, the third four times (a chunk came meanwhile each time: a failed
    // snapshot also waits for one).
    let chunk = |m: &mut SyncMachine, now: u64, seq: u64| feed_chunk(m, now, fdoc, seq);
    m.handle(60_100, Event::CompactFailed { doc: fdoc });
    chunk(&mut m, 60_101, 4);
    assert_eq!(compacts(&mut m, 60_100 + 2 * COMPACT_RETRY_FIRST_MS - 1), 0);
    assert_eq!(compacts(&mut m, 60_100 + 2 * COMPACT_RETRY_FIRST_MS), 1);
    let failed = 60_100 + 2 * COMPACT_RETRY_FIRST_MS + 1;
    m.handle(failed, Event::CompactFailed { doc: fdoc });
    chunk(&mut m, failed, 5);
    assert_eq!(compacts(&mut m, failed + 4 * COMPACT_RETRY_FIRST_MS - 1), 0);
    assert_eq!(compacts(&mut m, failed + 4 * COMPACT_RETRY_FIRST_MS), 1);
    // Accepted, the count starts over.
    let accepted = failed + 4 * COMPACT_RETRY_FIRST_MS + 1;
    m.handle(
        accepted,
        Event::Frame(ServerFrame::SnapshotAccepted {
            doc: fdoc,
            covers_seq: 5,
        }),
    );
    chunk(&mut m, accepted, 6);
    assert_eq!(compacts(&mut m, accepted), 1);
    m.handle(accepted, Event::CompactFailed { doc: fdoc });
    chunk(&mut m, accepted, 7);
    assert_eq!(compacts(&mut m, accepted + COMPACT_RETRY_FIRST_MS), 1);
}

/// A snapshot asked for while its document waits after a failed one is made at the
/// first tick after the wait, though nothing asks again (a family gone quiet still
/// gets the sealed snapshot it is owed); a snapshot this device skips (not allowed
/// yet, nothing to save) is no failure and holds nothing back.
#[test]
fn a_snapshot_held_back_is_made_after_its_wait_and_a_skip_holds_nothing_back() {
    use doran_client_core::sync::COMPACT_RETRY_FIRST_MS;
    let (mut m, fdoc) = with_a_family();
    let chunk = |m: &mut SyncMachine, now: u64, seq: u64| feed_chunk(m, now, fdoc, seq);
    chunk(&mut m, 3, 1);
    m.handle(3, Event::Frame(ServerFrame::CaughtUp { doc: fdoc, seq: 1 }));
    let now_asked = |m: &mut SyncMachine, now: u64| {
        m.handle(now, Event::CompactNow { doc: fdoc }).compact.len()
    };
    // Skipped: asked again at the next chunk, at once.
    assert_eq!(now_asked(&mut m, 10), 1);
    m.handle(11, Event::CompactSkipped { doc: fdoc });
    chunk(&mut m, 12, 2);
    assert_eq!(now_asked(&mut m, 12), 1, "a skip is no failure");
    // Failed: asked again during the wait, made at the first tick after it.
    m.handle(13, Event::CompactFailed { doc: fdoc });
    chunk(&mut m, 14, 3);
    assert_eq!(now_asked(&mut m, 14), 0, "held back");
    let tick = |m: &mut SyncMachine, now: u64| m.handle(now, Event::Tick).compact.len();
    assert_eq!(tick(&mut m, 13 + COMPACT_RETRY_FIRST_MS - 1), 0);
    assert_eq!(tick(&mut m, 13 + COMPACT_RETRY_FIRST_MS), 1);
    assert_eq!(tick(&mut m, 13 + COMPACT_RETRY_FIRST_MS + 1000), 0, "once");
    // A full log takes no chunk until a snapshot frees it: a push refused
    // document_full asks for a snapshot, and one that fails then is made again after
    // its wait with no chunk since (the one made at the tick above is under way).
    let full = ErrorFrame::new(ErrorCode::DocumentFull, "the document's log is full")
        .for_doc(fdoc)
        .for_chunk(ChunkId::of(b"a change"));
    let t = 13 + COMPACT_RETRY_FIRST_MS + 2000;
    m.handle(t, Event::Frame(ServerFrame::Error(full.clone())));
    m.handle(t, Event::CompactFailed { doc: fdoc });
    let fx = m.handle(t + 1, Event::Frame(ServerFrame::Error(full)));
    assert!(fx.compact.is_empty(), "held back");
    assert_eq!(tick(&mut m, t + 2 * COMPACT_RETRY_FIRST_MS - 1), 0);
    assert_eq!(tick(&mut m, t + 2 * COMPACT_RETRY_FIRST_MS), 1);
}

#[test]
fn the_own_personal_document_is_compacted_and_a_co_members_is_not() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId([3; 16]);
    let other = UserId([4; 16]);
    let other_doc = DocId([5; 16]);
    let (_, list) = sign_in(&mut m, vec![], vec![family]);
    m.handle(3, Event::Outbox(vec![]));
    let member = |user, personal_doc| MemberInfo {
        user,
        role: Role::Member,
        joined_at: 0,
        personal_doc,
    };
    let summary = FamilySummary {
        family,
        role: Role::Member,
        created_at: 0,
        members: vec![member(USER, PERSONAL), member(other, other_doc)],
    };
    m.handle(
        3,
        Event::Frame(ServerFrame::Response {
            id: list,
            body: Response::Families(vec![summary]),
        }),
    );
    let mut compact = Vec::new();
    for doc in [PERSONAL, other_doc] {
        for seq in 1..=8 {
            let bytes = format!("{doc} {seq}").into_bytes();
            let fx = m.handle(4, Event::Frame(ServerFrame::chunk(doc, seq, None, bytes)));
            compact.extend(fx.compact);
        }
        let fx = m.handle(5, Event::Frame(ServerFrame::CaughtUp { doc, seq: 8 }));
        compact.extend(fx.compact);
    }
    let fdoc = DocId::from(family);
    m.handle(6, Event::Frame(ServerFrame::CaughtUp { doc: fdoc, seq: 0 }));
    let keys = family.key_log();
    m.handle(6, Event::Frame(ServerFrame::CaughtUp { doc: keys, seq: 0 }));
    assert_eq!(compact.len(), 1, "{compact:?}");
    assert_eq!(compact[0].doc, PERSONAL);
    assert_eq!(compact[0].kind, DocKind::Personal(USER));
    assert_eq!(compact[0].covers_seq, 8);
    assert_eq!(compact[0].owner(), BlobOwner::Me, "a personal blob");
    assert_eq!(m.status(), SyncStatus::Syncing);

    // The relay refuses the snapshot (say, the blob went missing): the machine gives
    // up on it for a while, and is up to date.
    let blob = BlobHash::of(b"snapshot");
    let fx = m.handle(
        7,
        Event::SnapshotUploaded {
            doc: PERSONAL,
            covers_seq: 8,
            blob,
            len: 8,
        },
    );
    assert_eq!(fx.send.len(), 1);
    let e =
        ErrorFrame::new(ErrorCode::NotFound, "upload the snapshot blob first").for_doc(PERSONAL);
    let fx = m.handle(8, Event::Frame(ServerFrame::Error(e)));
    assert!(fx.dropped.is_empty(), "still synced");
    assert_eq!(m.status(), SyncStatus::UpToDate);
}

#[test]
fn a_refused_push_leaves_the_outbox_and_a_transient_one_stays() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    sign_in(&mut m, vec![], vec![]);
    let a = entry(1, PERSONAL, b"a");
    let b = entry(2, PERSONAL, b"b");
    m.handle(3, Event::Outbox(vec![a.clone(), b.clone()]));
    let e = ErrorFrame::new(ErrorCode::TooLarge, "big")
        .for_doc(PERSONAL)
        .for_chunk(a.chunk);
    let fx = m.handle(4, Event::Frame(ServerFrame::Error(e)));
    assert_eq!(fx.refused, vec![(PERSONAL, a.chunk, ErrorCode::TooLarge)]);
    let e = ErrorFrame::new(ErrorCode::Unavailable, "later")
        .for_doc(PERSONAL)
        .for_chunk(b.chunk);
    let fx = m.handle(5, Event::Frame(ServerFrame::Error(e)));
    assert!(fx.refused.is_empty());
    assert_eq!(fx.errors.len(), 1);
}

/// The snapshot requests (`ConfirmSnapshot`, `RejectSnapshot`) among `fx.send`.
fn snapshot_requests(fx: &Effects) -> Vec<(RequestId, Request)> {
    fx.send
        .iter()
        .filter_map(|f| match f {
            ClientFrame::Request { id, body } => match body {
                Request::ConfirmSnapshot { .. } | Request::RejectSnapshot { .. } => {
                    Some((*id, body.clone()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn offer(doc: DocId, covers_seq: u64, blob: BlobHash, by: UserId) -> ServerFrame {
    ServerFrame::PendingSnapshot {
        doc,
        covers_seq,
        blob,
        len: 10,
        by,
        by_device: DeviceId([by.0[0]; 16]),
    }
}

#[test]
fn a_pending_snapshot_is_confirmed_only_when_it_holds_every_change() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = SyncMachine::new(
        keys,
        SignInAs::Known { user: USER },
        SyncConfig {
            compact_after: 1000,
            ..config()
        },
        42,
    );
    let family = FamilyId([3; 16]);
    let fdoc = DocId::from(family);
    let other = UserId([5; 16]);
    let (_, list) = sign_in(&mut m, vec![], vec![family]);
    // Everything else is done, so the status shows what the snapshot holds up.
    m.handle(
        3,
        Event::Frame(ServerFrame::Response {
            id: list,
            body: Response::Families(vec![]),
        }),
    );
    m.handle(3, Event::Outbox(vec![]));
    m.handle(
        3,
        Event::Frame(ServerFrame::CaughtUp {
            doc: PERSONAL,
            seq: 0,
        }),
    );
    m.handle(
        3,
        Event::Frame(ServerFrame::CaughtUp {
            doc: family.key_log(),
            seq: 0,
        }),
    );
    let partial = BlobHash::of(b"a partial save");

    // Offered during the catch-up, before this device holds what it covers: nothing
    // to check yet.
    m.handle(
        3,
        Event::Frame(ServerFrame::chunk(fdoc, 1, None, b"c1".to_vec())),
    );
    let fx = m.handle(3, Event::Frame(offer(fdoc, 2, partial, other)));
    assert!(fx.verify_snapshots.is_empty(), "not yet");
    let fx = m.handle(
        3,
        Event::Frame(ServerFrame::chunk(fdoc, 2, None, b"c2".to_vec())),
    );
    assert!(fx.verify_snapshots.is_empty(), "not caught up yet");
    let fx = m.handle(4, Event::Frame(ServerFrame::CaughtUp { doc: fdoc, seq: 2 }));
    assert_eq!(
        fx.verify_snapshots,
        vec![VerifySnapshot {
            doc: fdoc,
            kind: DocKind::Family(family),
            snapshot: SnapshotRef {
                blob: partial,
                len: 10,
                covers_seq: 2,
            },
            by: other,
        }]
    );
    assert_eq!(
        m.status(),
        SyncStatus::Syncing,
        "a snapshot is being checked"
    );

    // The host found a change missing: reported, never confirmed; offered again, it
    // is not checked again.
    let fx = m.handle(
        5,
        Event::SnapshotChecked {
            doc: fdoc,
            covers_seq: 2,
            blob: partial,
            check: SnapshotCheck::Missing(1),
        },
    );
    let sent = snapshot_requests(&fx);
    assert!(
        matches!(
            sent.as_slice(),
            [(_, Request::RejectSnapshot { covers_seq: 2, blob, .. })] if *blob == partial
        ),
        "{sent:?}"
    );
    let fx = m.handle(
        5,
        Event::Frame(ServerFrame::Response {
            id: sent[0].0,
            body: Response::Done,
        }),
    );
    assert_eq!(fx.answered, Vec::new(), "the machine's own request");
    assert_eq!(m.status(), SyncStatus::UpToDate);
    let fx = m.handle(6, Event::Frame(offer(fdoc, 2, partial, other)));
    assert!(fx.verify_snapshots.is_empty() && fx.send.is_empty());

    // One it cannot tell about: neither confirmed nor reported.
    let unknown = BlobHash::of(b"cannot tell");
    let fx = m.handle(7, Event::Frame(offer(fdoc, 2, unknown, other)));
    assert_eq!(fx.verify_snapshots.len(), 1);
    let fx = m.handle(
        7,
        Event::SnapshotChecked {
            doc: fdoc,
            covers_seq: 2,
            blob: unknown,
            check: SnapshotCheck::CannotTell,
        },
    );
    assert!(snapshot_requests(&fx).is_empty());

    // One holding a change this device lacks, written by someone other than its
    // pusher (laundering a change written as someone else): reported, never
    // confirmed.
    let laundering = BlobHash::of(b"with a forged change");
    let fx = m.handle(7, Event::Frame(offer(fdoc, 2, laundering, other)));
    assert_eq!(fx.verify_snapshots.len(), 1);
    assert_eq!(
        fx.verify_snapshots[0].by, other,
        "the host is told who pushed it"
    );
    let fx = m.handle(
        7,
        Event::SnapshotChecked {
            doc: fdoc,
            covers_seq: 2,
            blob: laundering,
            check: SnapshotCheck::Foreign(1),
        },
    );
    let sent = snapshot_requests(&fx);
    assert!(
        matches!(
            sent.as_slice(),
            [(_, Request::RejectSnapshot { covers_seq: 2, blob, .. })] if *blob == laundering
        ),
        "{sent:?}"
    );
    let fx = m.handle(
        7,
        Event::Frame(ServerFrame::Response {
            id: sent[0].0,
            body: Response::Done,
        }),
    );
    assert!(
        fx.snapshot_accepted.is_empty(),
        "a rejection is no snapshot"
    );

    // A verdict on something no longer offered is ignored.
    let fx = m.handle(
        7,
        Event::SnapshotChecked {
            doc: fdoc,
            covers_seq: 2,
            blob: BlobHash::of(b"never offered"),
            check: SnapshotCheck::Contains,
        },
    );
    assert!(snapshot_requests(&fx).is_empty());

    // This user's own snapshot is never checked nor confirmed by this device.
    let fx = m.handle(8, Event::Frame(offer(fdoc, 2, BlobHash::of(b"mine"), USER)));
    assert!(fx.verify_snapshots.is_empty() && fx.send.is_empty());

    // A complete one is confirmed.
    let whole = BlobHash::of(b"a whole save");
    let fx = m.handle(9, Event::Frame(offer(fdoc, 2, whole, other)));
    assert_eq!(fx.verify_snapshots.len(), 1);
    let fx = m.handle(
        10,
        Event::SnapshotChecked {
            doc: fdoc,
            covers_seq: 2,
            blob: whole,
            check: SnapshotCheck::Contains,
        },
    );
    let sent = snapshot_requests(&fx);
    assert!(
        matches!(
            sent.as_slice(),
            [(_, Request::ConfirmSnapshot { doc, covers_seq: 2, blob })] if *doc == fdoc && *blob == whole
        ),
        "{sent:?}"
    );
    assert_eq!(m.status(), SyncStatus::Syncing, "until the relay answered");
    let fx = m.handle(
        11,
        Event::Frame(ServerFrame::Response {
            id: sent[0].0,
            body: Response::Done,
        }),
    );
    assert_eq!(m.status(), SyncStatus::UpToDate);
    // Confirmed, it is the relay's snapshot: the host hears of it as of one of its
    // own (a sealed snapshot this device owes is owed no more).
    assert_eq!(fx.snapshot_accepted, vec![(fdoc, 2)]);
}

/// A family document written by its host's device, as the chunks its outbox holds.
fn family_chunks(family: FamilyId, missions: usize) -> (Vec<Vec<u8>>, StoreHost) {
    let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
    let host_actor = Actor {
        user: HOST,
        device: DeviceId([1; 16]),
    };
    let writer = StoreHost::new(Arc::clone(&store), host_actor);
    writer
        .create_family(family, "우리집", "엄마", 1)
        .expect("created");
    for i in 0..missions {
        writer
            .edit_family(family, |fd| {
                fd.add_mission(&format!("미션 {i}"), &[], None, 2)
            })
            .expect("mission added");
    }
    let chunks = store
        .outbox(100)
        .expect("outbox")
        .into_iter()
        .map(|e| e.bytes)
        .collect();
    (chunks, writer)
}

/// A save holding only the first `n` changes of `full`.
fn prefix(full: &[u8], n: usize) -> Vec<u8> {
    let whole = automerge::Automerge::load(full).expect("loads");
    let changes: Vec<automerge::Change> = whole.get_changes(&[]);
    let mut part = automerge::Automerge::new();
    part.apply_changes(changes[..n].iter().cloned())
        .expect("a prefix applies");
    part.save()
}

#[test]
fn the_host_finds_a_snapshot_missing_one_change_and_the_machine_never_confirms_it() {
    let family = FamilyId([3; 16]);
    let fdoc = DocId::from(family);
    let kind = DocKind::Family(family);
    let (chunks, writer) = family_chunks(family, 3);
    let full = writer
        .save(fdoc, kind)
        .expect("saved")
        .expect("the document");
    let changes = automerge::Automerge::load(&full)
        .expect("loads")
        .get_changes(&[])
        .len();

    // A member's device received every chunk, seqs 1..=4.
    let member = StoreHost::new(
        Arc::new(MemoryStore::new()),
        Actor {
            user: USER,
            device: DeviceId([9; 16]),
        },
    );
    let received: Vec<IncomingChunk> = chunks
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, bytes)| IncomingChunk {
            seq: i as u64 + 1,
            author: Some(HOST),
            bytes,
        })
        .collect();
    let head = received.len() as u64;
    member
        .apply(fdoc, kind, None, &received, head)
        .expect("applied");

    // The whole document holds everything; one without its last change does not,
    // unless it only claims to cover the seqs before that change.
    let short = prefix(&full, changes - 1);
    let check = |covers, bytes: &[u8]| {
        member
            .check_snapshot(fdoc, kind, (covers, HOST), bytes)
            .expect("checked")
    };
    assert_eq!(check(head, &full), SnapshotCheck::Contains);
    assert_eq!(check(head, &short), SnapshotCheck::Missing(1));
    assert_eq!(check(head - 1, &short), SnapshotCheck::Contains);
    assert_eq!(
        check(head, &prefix(&full, 0)),
        SnapshotCheck::Missing(changes)
    );
    assert!(matches!(
        check(head, b"a family photo, not a document"),
        SnapshotCheck::Unreadable(_)
    ));

    // The verdict on the short one, handed to the machine, sends no confirmation.
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    sign_in(&mut m, vec![], vec![family]);
    for c in &received {
        m.handle(
            3,
            Event::Frame(ServerFrame::chunk(fdoc, c.seq, c.author, c.bytes.clone())),
        );
    }
    let blob = BlobHash::of(&short);
    m.handle(3, Event::Frame(offer(fdoc, head, blob, UserId([1; 16]))));
    let fx = m.handle(
        4,
        Event::Frame(ServerFrame::CaughtUp {
            doc: fdoc,
            seq: head,
        }),
    );
    assert_eq!(fx.verify_snapshots.len(), 1);
    let fx = m.handle(
        5,
        Event::SnapshotChecked {
            doc: fdoc,
            covers_seq: head,
            blob,
            check: check(head, &short),
        },
    );
    assert!(
        snapshot_requests(&fx)
            .iter()
            .all(|(_, r)| !matches!(r, Request::ConfirmSnapshot { .. })),
        "never confirmed"
    );
}

#[test]
fn a_full_document_log_keeps_the_edit_asks_for_a_snapshot_and_pushes_it_again() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    // Three chunks here, fewer than compaction waits for (5).
    let stored = DocCursor {
        doc: PERSONAL,
        cursor: 3,
        snapshot_covers: 0,
    };
    sign_in(&mut m, vec![stored], vec![]);
    let fx = m.handle(
        3,
        Event::Frame(ServerFrame::CaughtUp {
            doc: PERSONAL,
            seq: 3,
        }),
    );
    assert!(fx.compact.is_empty());
    let outbox = vec![entry(1, PERSONAL, b"a")];
    let fx = m.handle(4, Event::Outbox(outbox.clone()));
    assert_eq!(pushes(&fx), vec![outbox[0].chunk]);

    // The relay says the log is full: the edit stays, and a snapshot is asked for.
    let fx = refuse(
        &mut m,
        5,
        PERSONAL,
        outbox[0].chunk,
        ErrorCode::DocumentFull,
    );
    assert!(fx.refused.is_empty(), "the edit is kept: {:?}", fx.refused);
    assert_eq!(
        fx.compact.iter().map(|c| c.doc).collect::<Vec<_>>(),
        vec![PERSONAL],
        "a snapshot frees the log"
    );
    // Not before the delay; then from the oldest entry again, on the same connection.
    let retry = config().retry_refused_after_ms;
    assert!(m.handle(5 + retry - 1, Event::Tick).want_outbox.is_none());
    let want = m
        .handle(5 + retry, Event::Tick)
        .want_outbox
        .expect("the outbox is listed again");
    assert_eq!(want.after, None);
    let fx = m.handle(5 + retry + 1, Event::Outbox(listed(&outbox, want)));
    assert_eq!(pushes(&fx), vec![outbox[0].chunk], "pushed again");

    // Still full: the next round waits twice as long (a log nobody compacts is not
    // asked every few seconds for ever)…
    let at = 5 + retry + 2;
    refuse(
        &mut m,
        at,
        PERSONAL,
        outbox[0].chunk,
        ErrorCode::DocumentFull,
    );
    assert!(
        m.handle(at + 2 * retry - 1, Event::Tick)
            .want_outbox
            .is_none()
    );
    let want = m
        .handle(at + 2 * retry, Event::Tick)
        .want_outbox
        .expect("listed again");
    let fx = m.handle(at + 2 * retry, Event::Outbox(listed(&outbox, want)));
    // …and an ack brings the short wait back.
    let now = at + 2 * retry + 1;
    m.handle(
        now,
        Event::Frame(ServerFrame::Ack {
            doc: PERSONAL,
            chunk: pushes(&fx)[0],
            seq: 4,
        }),
    );
    let later = entry(2, PERSONAL, b"b");
    m.handle(now, Event::LocalChange);
    m.handle(now, Event::Outbox(vec![later.clone()]));
    refuse(&mut m, now, PERSONAL, later.chunk, ErrorCode::Unavailable);
    assert!(
        m.handle(now + retry, Event::Tick).want_outbox.is_some(),
        "back to the first delay"
    );
}

#[test]
fn pushes_kept_for_later_neither_hide_newer_edits_nor_wait_for_a_new_connection() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    sign_in(&mut m, vec![], vec![]);
    let batch = config().outbox_batch as u64;
    let mut outbox: Vec<_> = (1..=batch)
        .map(|i| entry(i, PERSONAL, format!("c{i}").as_bytes()))
        .collect();
    // A full page of edits, every push refused for now (`unavailable`).
    let mut now = 3;
    let mut fx = m.handle(now, Event::Outbox(outbox.clone()));
    let mut refused = 0;
    while let Some(chunk) = pushes(&fx).first().copied() {
        let mut next = Effects::default();
        for c in pushes(&fx) {
            now += 1;
            next.merge(refuse(&mut m, now, PERSONAL, c, ErrorCode::Unavailable));
            refused += 1;
        }
        if let Some(want) = next.want_outbox {
            next.merge(m.handle(now, Event::Outbox(listed(&outbox, want))));
        }
        assert_ne!(pushes(&next).first(), Some(&chunk), "each is pushed once");
        fx = next;
    }
    assert_eq!(refused, batch, "the whole page went out once");

    // A new edit is listed after them and goes out at once.
    outbox.push(entry(batch + 1, PERSONAL, b"new"));
    let want = m
        .handle(now, Event::LocalChange)
        .want_outbox
        .expect("listed");
    assert_eq!(want.after, Some(batch));
    let fx = m.handle(now, Event::Outbox(listed(&outbox, want)));
    assert_eq!(pushes(&fx), vec![outbox[batch as usize].chunk]);
    m.handle(
        now,
        Event::Frame(ServerFrame::Ack {
            doc: PERSONAL,
            chunk: outbox[batch as usize].chunk,
            seq: 1,
        }),
    );
    outbox.pop();

    // Due while a listing after the last entry is on its way: the retry waits for it
    // (else that listing would move past the kept ones again)…
    let due = now + config().retry_refused_after_ms;
    let pending = m
        .handle(due, Event::LocalChange)
        .want_outbox
        .expect("listed");
    assert!(m.handle(due, Event::Tick).want_outbox.is_none());
    m.handle(due, Event::Outbox(listed(&outbox, pending)));
    // …and then the kept ones go again, still connected, oldest first.
    let want = m
        .handle(due + 1, Event::Tick)
        .want_outbox
        .expect("the outbox is listed again");
    assert_eq!(want.after, None);
    let fx = m.handle(due + 1, Event::Outbox(listed(&outbox, want)));
    assert_eq!(pushes(&fx), vec![outbox[0].chunk, outbox[1].chunk]);
}

/// The `OpenVolume` requests in `fx`: (request id, family, year).
fn volume_opens(fx: &Effects) -> Vec<(RequestId, FamilyId, u16)> {
    fx.send
        .iter()
        .filter_map(|f| match f {
            ClientFrame::Request {
                id,
                body: Request::OpenVolume { family, year },
            } => Some((*id, *family, *year)),
            _ => None,
        })
        .collect()
}

/// A family's per-year volumes (issue 17): each year its document lists is opened on
/// the relay once per connection, and synced once the relay said so; a volume's
/// changes wait in the outbox until then (pushed before, the relay would refuse them,
/// and a refused change leaves the outbox). A clear family, or one not synced, opens
/// none; a family left drops its volumes.
#[test]
fn a_listed_volume_is_opened_once_then_synced_and_its_changes_wait_until_then() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId::new_family(true);
    let volume = family.volume(2026);
    let (_, list) = sign_in(&mut m, vec![], vec![family]);
    m.handle(
        3,
        Event::Frame(ServerFrame::Response {
            id: list,
            body: Response::Families(vec![]),
        }),
    );
    // The outbox holds a change of the family's document and one of its volume.
    let outbox = vec![
        entry(1, DocId::from(family), b"core"),
        entry(2, volume, b"volume"),
    ];
    let fx = m.handle(4, Event::Outbox(outbox.clone()));
    assert_eq!(
        pushes(&fx),
        vec![outbox[0].chunk],
        "the volume's change waits"
    );

    // Listed: opened once; a clear family and a family not synced open nothing.
    let clear = FamilyId::new_family(false);
    let stranger = FamilyId::new_family(true);
    let fx = m.handle(
        5,
        Event::Volumes {
            listed: vec![
                (family, vec![2026]),
                (clear, vec![2026]),
                (stranger, vec![2026]),
            ],
        },
    );
    let opens = volume_opens(&fx);
    assert_eq!(opens.len(), 1);
    let (open_id, opened_family, year) = opens[0];
    assert_eq!((opened_family, year), (family, 2026));
    assert!(
        subs(&fx).is_empty(),
        "not subscribed before the relay opened it"
    );
    let again = m.handle(
        6,
        Event::Volumes {
            listed: vec![(family, vec![2026])],
        },
    );
    assert!(volume_opens(&again).is_empty(), "asked once per connection");
    assert_eq!(m.status(), SyncStatus::Syncing);

    // Opened: subscribed, and the outbox listed again from its oldest entry.
    let fx = m.handle(
        7,
        Event::Frame(ServerFrame::Response {
            id: open_id,
            body: Response::Done,
        }),
    );
    assert_eq!(
        subs(&fx),
        vec![Subscription {
            doc: volume,
            since: 0
        }]
    );
    let want = fx.want_outbox.expect("the outbox listed again");
    assert_eq!(want.after, None);
    let fx = m.handle(8, Event::Outbox(listed(&outbox, want)));
    assert_eq!(
        pushes(&fx),
        vec![outbox[1].chunk],
        "the volume's change goes; the other is on its way already"
    );
    // Its chunks are applied as the volume's.
    let fx = m.handle(
        9,
        Event::Frame(ServerFrame::chunk(
            volume,
            1,
            Some(HOST),
            b"sealed".to_vec(),
        )),
    );
    assert_eq!(fx.apply.len(), 1);
    assert_eq!(fx.apply[0].kind, DocKind::Volume(family, 2026));

    // Left: the volume goes with the family.
    let fx = m.handle(
        10,
        Event::Frame(ServerFrame::Event(ServerEvent::MembershipChanged {
            family,
            members: vec![],
            change: MembershipChange::Left { user: USER },
        })),
    );
    assert!(fx.dropped.contains(&(volume, ErrorCode::Forbidden)));
    let fx = m.handle(
        11,
        Event::Volumes {
            listed: vec![(family, vec![2026])],
        },
    );
    assert!(volume_opens(&fx).is_empty(), "a family left opens nothing");
}

/// A new connection opens the listed volumes again (the relay's answer was for the
/// last one), resuming each from the cursor the store has; a volume the relay would
/// not open stays unsynced on that connection, its changes in the outbox.
#[test]
fn volumes_are_opened_again_on_each_connection_from_their_stored_cursor() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId::new_family(true);
    let (old, refused) = (family.volume(2025), family.volume(2026));
    let stored = vec![DocCursor {
        doc: old,
        cursor: 7,
        snapshot_covers: 0,
    }];
    for round in 0..2u64 {
        let at = round * 100;
        m.handle(
            at,
            Event::Connected {
                docs: stored.clone(),
            },
        );
        m.handle(at + 1, Event::Frame(ServerFrame::Challenge(challenge())));
        m.handle(at + 2, Event::Frame(signed_in(vec![family])));
        let fx = m.handle(
            at + 3,
            Event::Volumes {
                listed: vec![(family, vec![2025, 2026])],
            },
        );
        let opens = volume_opens(&fx);
        let years: Vec<u16> = opens.iter().map(|(_, _, year)| *year).collect();
        assert_eq!(years, vec![2026, 2025], "round {round}: the newest first");
        let fx = m.handle(
            at + 4,
            Event::Frame(ServerFrame::Response {
                id: opens[1].0,
                body: Response::Done,
            }),
        );
        assert_eq!(subs(&fx), vec![Subscription { doc: old, since: 7 }]);
        let e = ErrorFrame::new(ErrorCode::Forbidden, "no").for_request(opens[0].0);
        let fx = m.handle(at + 5, Event::Frame(ServerFrame::Error(e)));
        assert!(subs(&fx).is_empty() && fx.dropped.is_empty());
        assert!(fx.errors.is_empty(), "logged, not shown");
        let fx = m.handle(at + 6, Event::Outbox(vec![entry(1, refused, b"waits")]));
        assert!(pushes(&fx).is_empty(), "round {round}: its change waits");
        m.handle(
            at + 7,
            Event::Disconnected {
                reason: "gone".into(),
            },
        );
    }
}

/// Any member may list any year: a device opens a few volumes at a time (a burst
/// would meet the relay's rate limit), this year's first, then next year's, then the
/// past from the newest, and never a year after next. A refusal the relay means for
/// good is not shown to the user (the member did nothing); one that passes is asked
/// again after a wait.
#[test]
fn a_family_listing_every_year_opens_a_few_at_a_time_this_year_first() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId::new_family(true);
    let (_, list) = sign_in(&mut m, vec![], vec![family]);
    m.handle(
        3,
        Event::Frame(ServerFrame::Response {
            id: list,
            body: Response::Families(vec![]),
        }),
    );
    let every_year: Vec<u16> = doran_protocol::VOLUME_YEARS.collect();
    let fx = m.handle(
        4,
        Event::Volumes {
            listed: vec![(family, every_year)],
        },
    );
    let opens = volume_opens(&fx);
    let years: Vec<u16> = opens.iter().map(|(_, _, y)| *y).collect();
    assert_eq!(years, vec![2026, 2027, 2025, 2024]);
    assert_eq!(opens.len(), doran_client_core::sync::MAX_VOLUME_OPENS);

    // Refused for good (the family's cap): not shown, and the next year is asked.
    let quota = ErrorFrame::new(ErrorCode::QuotaExceeded, "cap").for_request(opens[3].0);
    let fx = m.handle(5, Event::Frame(ServerFrame::Error(quota)));
    assert!(fx.errors.is_empty(), "nothing for the user");
    assert_eq!(
        volume_opens(&fx)
            .iter()
            .map(|(_, _, y)| *y)
            .collect::<Vec<_>>(),
        vec![2023]
    );
    // Busy: asked again once the relay's wait is over, not before.
    let busy = ErrorFrame {
        retry_after_ms: Some(7_000),
        ..ErrorFrame::new(ErrorCode::RateLimited, "slow down").for_request(opens[0].0)
    };
    let fx = m.handle(6, Event::Frame(ServerFrame::Error(busy)));
    assert!(fx.errors.is_empty());
    assert_eq!(
        volume_opens(&fx)
            .iter()
            .map(|(_, _, y)| *y)
            .collect::<Vec<_>>(),
        vec![2022]
    );
    for (_, _, year) in volume_opens(&m.handle(1_000, Event::Tick)) {
        assert_ne!(year, 2026, "not before its wait");
    }
    let listed_again = Event::Volumes {
        listed: vec![(family, vec![2026])],
    };
    assert!(
        volume_opens(&m.handle(1_100, listed_again)).is_empty(),
        "a listing meanwhile does not ask again before the wait"
    );
    // Room for it once an answer comes, after its wait.
    let fx = m.handle(
        7_100,
        Event::Frame(ServerFrame::Response {
            id: opens[1].0,
            body: Response::Done,
        }),
    );
    assert_eq!(
        subs(&fx),
        vec![Subscription {
            doc: family.volume(2027),
            since: 0
        }]
    );
    let fx = m.handle(7_200, Event::Tick);
    assert!(
        volume_opens(&fx).is_empty(),
        "four wait for the relay already"
    );
    // This year's goes before the older years still queued.
    let fx = m.handle(
        7_300,
        Event::Frame(ServerFrame::Response {
            id: opens[2].0,
            body: Response::Done,
        }),
    );
    assert_eq!(
        volume_opens(&fx)
            .iter()
            .map(|(_, _, y)| *y)
            .collect::<Vec<_>>(),
        vec![2026]
    );
    assert_eq!(m.status(), SyncStatus::Syncing);
}

/// A family its host sealed after its creation keeps volumes once the relay took the
/// sealing; a device asking a moment before (its host's first envelope still on its
/// way) is told `conflict`, and asks again after a wait, a few times, each wait twice
/// the last — then no more on this connection (a relay that keeps saying so), and the
/// status settles.
#[test]
fn a_volume_of_a_family_not_yet_sealed_on_the_relay_is_asked_again() {
    use doran_client_core::sync::{MAX_VOLUME_CONFLICTS, VOLUME_RETRY_MS};
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    let family = FamilyId::new_family(false);
    let (_, list) = sign_in(&mut m, vec![], vec![family]);
    let families = Response::Families(vec![]);
    m.handle(
        2,
        Event::Frame(ServerFrame::Response {
            id: list,
            body: families,
        }),
    );
    m.handle(2, Event::Outbox(vec![]));
    for doc in [PERSONAL, DocId::from(family), family.key_log()] {
        m.handle(2, Event::Frame(ServerFrame::CaughtUp { doc, seq: 0 }));
    }
    assert_eq!(m.status(), SyncStatus::UpToDate);
    let listed = vec![(family, vec![2026])];
    let opens = volume_opens(&m.handle(3, Event::Volumes { listed }));
    assert_eq!(
        opens.len(),
        1,
        "a family created clear lists its volumes too"
    );
    let conflict = |id| ErrorFrame::new(ErrorCode::Conflict, "not sealed yet").for_request(id);
    let fx = m.handle(3, Event::Frame(ServerFrame::Error(conflict(opens[0].0))));
    assert!(fx.errors.is_empty() && volume_opens(&fx).is_empty());
    let mut at = 3;
    for n in 1..=MAX_VOLUME_CONFLICTS {
        assert_eq!(m.status(), SyncStatus::Syncing, "try {n}: it waits");
        let wait = VOLUME_RETRY_MS << (n - 1);
        let early = m.handle(at + wait - 1, Event::Tick);
        assert!(
            volume_opens(&early).is_empty(),
            "try {n}: not before its wait"
        );
        at += wait;
        let again = volume_opens(&m.handle(at, Event::Tick));
        let years: Vec<u16> = again.iter().map(|(_, _, y)| *y).collect();
        assert_eq!(years, vec![2026], "try {n}");
        m.handle(at, Event::Frame(ServerFrame::Error(conflict(again[0].0))));
    }
    assert_eq!(m.status(), SyncStatus::UpToDate, "nothing left to wait for");
    let later = m.handle(at + (VOLUME_RETRY_MS << MAX_VOLUME_CONFLICTS), Event::Tick);
    assert!(
        volume_opens(&later).is_empty(),
        "given up on this connection"
    );
}

/// A push refused for the connection's frame rate pauses every push for the wait the
/// relay gave: the refusal frees room in flight, but nothing goes until the next tick
/// past that wait (before, each refusal sent the next push, refused in turn, until the
/// relay closed the connection for ignoring its limit). Then the outbox goes again
/// from its oldest entry, the refused one first — and a refusal of another kind does
/// not pause the others.
#[test]
fn a_push_refused_for_the_frame_rate_pauses_pushing_for_the_relays_wait() {
    let keys = DeviceKeys::generate().expect("keys");
    let mut m = machine(&keys);
    sign_in(&mut m, vec![], vec![]);
    let in_flight = config().max_in_flight as u64;
    let outbox: Vec<_> = (1..=in_flight + 8)
        .map(|i| entry(i, PERSONAL, format!("c{i}").as_bytes()))
        .collect();
    let now = 3;
    let fx = m.handle(now, Event::Outbox(outbox.clone()));
    let sent = pushes(&fx);
    assert_eq!(sent.len() as u64, in_flight);

    // The first is refused, waiting 40 ms; the rest in flight are refused too.
    let e = ErrorFrame::new(ErrorCode::RateLimited, "too many frames")
        .retry_after(40)
        .for_doc(PERSONAL)
        .for_chunk(sent[0]);
    let fx = m.handle(now, Event::Frame(ServerFrame::Error(e)));
    assert!(pushes(&fx).is_empty(), "nothing pushed in its place");
    for c in &sent[1..] {
        let fx = refuse(&mut m, now + 1, PERSONAL, *c, ErrorCode::RateLimited);
        assert!(pushes(&fx).is_empty(), "nothing pushed while paused");
        assert!(fx.want_outbox.is_none());
    }
    assert!(
        m.handle(now + 20, Event::Tick).want_outbox.is_none(),
        "not before the relay's wait"
    );
    // A new edit waits too.
    assert!(pushes(&m.handle(now + 30, Event::LocalChange)).is_empty());

    // Past the wait, the outbox is listed from its oldest entry and pushed again.
    let want = m
        .handle(now + 41, Event::Tick)
        .want_outbox
        .expect("the outbox is listed again");
    assert_eq!(want.after, None);
    let fx = m.handle(now + 41, Event::Outbox(listed(&outbox, want)));
    assert_eq!(pushes(&fx).first(), Some(&outbox[0].chunk));
    assert_eq!(pushes(&fx).len() as u64, in_flight);

    // Another kind of refusal keeps only its push: the next goes at once.
    let fx = refuse(
        &mut m,
        now + 42,
        PERSONAL,
        outbox[0].chunk,
        ErrorCode::Unavailable,
    );
    assert_eq!(pushes(&fx).len(), 1, "room in flight is used again");
}
