//! The real relay binary over real sockets, across the life of accounts, devices,
//! families and the process itself: a graceful restart keeps everything, `kill -9`
//! right after an ack keeps the chunk, snapshot + tail for a new member, device
//! linking, recovery and revocation, membership changes, presence, and invites
//! delivered to an offline invitee and withdrawn.
//!
//! No sleeps: every step waits for the frame (or the `listening on` line) that proves
//! it happened, within [`support::TIMEOUT`]. Where a step asserts that something was
//! *not* delivered, a `Ping` is sent after the cause and everything up to the `Pong`
//! is checked: the relay forwards queued hub messages before it reads the socket, so
//! anything caused earlier arrives before the `Pong`.

mod support;

use std::collections::BTreeMap;

use doran_protocol::{
    BlobHash, Challenge, ChunkId, ClientFrame, DeviceId, DeviceInfo, DocId, ErrorCode, ErrorFrame,
    FamilyId, FamilySummary, InviteId, InviteInfo, InviteState, MemberInfo, MembershipChange,
    PresenceInfo, PublicKey, Request, Response, Seq, ServerEvent, ServerFrame, Signature,
    Subscription, UserId, signing,
};
use ed25519_dalek::{Signer, SigningKey};
use support::{Client, HttpResponse, Identity, Server, sample_card, signed_http};

/// The `--server-id` that `Server::start` passes.
const SERVER_ID: &str = "test-relay";

// ---------------------------------------------------------------------------------
// Helpers (this file's own; `support` is shared with other suites).
// ---------------------------------------------------------------------------------

fn public(k: &SigningKey) -> PublicKey {
    PublicKey(k.verifying_key().to_bytes())
}

/// Another device of the same user: a new device id and device key, the same user
/// key and user id.
fn new_device_of(id: &Identity) -> Identity {
    let mut d = id.clone();
    d.device = DeviceId::random();
    d.device_key = SigningKey::from_bytes(&rand::random());
    d
}

/// The `LinkDevice` frame by `d`'s device key, redeeming `code`.
fn link_frame(d: &Identity, challenge: &Challenge, code: &str) -> ClientFrame {
    let device_key = public(&d.device_key);
    let msg = signing::link_device_message(challenge, code, &d.device, &device_key);
    ClientFrame::LinkDevice {
        code: code.into(),
        device: d.device,
        device_key,
        signature: d.sign_device(&msg),
    }
}

/// The `Recover` frame: signed by `d`'s user key (as restored from the recovery
/// phrase) and by its new device key.
fn recover_frame(d: &Identity, challenge: &Challenge) -> ClientFrame {
    let (user_key, device_key) = (public(&d.user_key), public(&d.device_key));
    let user_msg = signing::recover_user_message(challenge, &user_key, &d.device, &device_key);
    let device_msg = signing::recover_device_message(challenge, &user_key, &d.device, &device_key);
    ClientFrame::Recover {
        user_key,
        device: d.device,
        device_key,
        user_signature: Signature(d.user_key.sign(&user_msg).to_bytes()),
        device_signature: d.sign_device(&device_msg),
    }
}

/// What a `SignedIn` frame said.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignedIn {
    user: UserId,
    device: DeviceId,
    personal_doc: DocId,
    families: Vec<FamilyId>,
}

/// Connects, says hello, answers the challenge with `answer(challenge)`; the
/// connection and either what `SignedIn` said or the refusal.
async fn answer_challenge(
    server: &Server,
    answer: impl FnOnce(&Challenge) -> ClientFrame,
) -> (Client, Result<SignedIn, ErrorFrame>) {
    let mut c = Client::connect(server).await;
    let challenge = c.hello().await;
    c.send(&answer(&challenge)).await;
    let result = match c.next_relevant().await {
        ServerFrame::SignedIn {
            user,
            device,
            personal_doc,
            families,
            ..
        } => Ok(SignedIn {
            user,
            device,
            personal_doc,
            families,
        }),
        ServerFrame::Error(e) => Err(e),
        other => panic!("expected SignedIn or an error, got {other:?}"),
    };
    (c, result)
}

/// Signs `id` in on a fresh connection and returns what `SignedIn` said.
async fn sign_in(server: &Server, id: &Identity) -> (Client, SignedIn) {
    let (c, result) = answer_challenge(server, |ch| id.signin_frame(ch)).await;
    (c, result.expect("signed in"))
}

/// Issues a link code on `c` (signed in as `id`), redeems it with a new device of
/// `id`, and confirms it on `c`; returns the new device's identity and connection.
async fn link_new_device(server: &Server, c: &mut Client, id: &Identity) -> (Identity, Client) {
    let Ok(Response::LinkCode { code, .. }) = c.request(Request::IssueLinkCode).await else {
        panic!("no link code")
    };
    let linked = new_device_of(id);
    let (_, waiting) = answer_challenge(server, |ch| link_frame(&linked, ch, &code)).await;
    assert_eq!(waiting.expect_err("waits").code, ErrorCode::LinkPending);
    let asked = c.link_requested().await;
    let confirmed = c.request(id.confirm_link_request(&asked, true)).await;
    assert_eq!(confirmed, Ok(Response::Done));
    let (lc, result) = answer_challenge(server, |ch| link_frame(&linked, ch, &code)).await;
    assert_eq!(result.expect("linked").user, id.user());
    (linked, lc)
}

/// Creates a family with the caller as host.
async fn create_family(c: &mut Client) -> FamilyId {
    let family = FamilyId::random();
    let created = c
        .request(Request::CreateFamily { family })
        .await
        .expect("family created");
    assert!(matches!(created, Response::FamilyCreated(_)), "{created:?}");
    family
}

/// `host` invites `invitee` (signed, with a fresh card) and gets the stored invite
/// back, its card as sent.
async fn send_invite(
    c: &mut Client,
    host: &Identity,
    family: FamilyId,
    invitee: &Identity,
) -> InviteInfo {
    let invite = InviteId::random();
    let card = sample_card();
    let msg = signing::invite_message(
        SERVER_ID,
        &invite,
        &family,
        &host.user(),
        &host.device,
        &invitee.user(),
        &card,
    );
    let sent = c
        .request(Request::SendInvite {
            invite,
            family,
            invitee: invitee.user(),
            card: card.clone(),
            signature: host.sign_device(&msg),
        })
        .await
        .expect("invite sent");
    let Response::InviteSent(info) = sent else {
        panic!("unexpected {sent:?}")
    };
    assert_eq!(
        (info.invite, info.state, &info.card),
        (invite, InviteState::Pending, &card)
    );
    info
}

/// `who` answers `invite` (signed).
async fn answer_invite(
    c: &mut Client,
    who: &Identity,
    invite: InviteId,
    accept: bool,
) -> Result<Response, ErrorFrame> {
    let msg = signing::invite_answer_message(SERVER_ID, &invite, &who.user(), &who.device, accept);
    c.request(Request::AnswerInvite {
        invite,
        accept,
        signature: who.sign_device(&msg),
    })
    .await
}

/// The next event that `pick` accepts (other frames and events are skipped).
async fn event<T>(c: &mut Client, mut pick: impl FnMut(&ServerEvent) -> Option<T>) -> T {
    c.until(|f| match f {
        ServerFrame::Event(e) => pick(e),
        _ => None,
    })
    .await
}

/// The next `MembershipChanged` of `family`: the members after it, and the change.
async fn membership_changed(c: &mut Client, family: FamilyId) -> (Vec<UserId>, MembershipChange) {
    event(c, |e| match e {
        ServerEvent::MembershipChanged {
            family: f,
            members,
            change,
        } if *f == family => Some((users(members), *change)),
        _ => None,
    })
    .await
}

fn users(members: &[MemberInfo]) -> Vec<UserId> {
    let mut users: Vec<UserId> = members.iter().map(|m| m.user).collect();
    users.sort();
    users
}

fn sorted(mut users: Vec<UserId>) -> Vec<UserId> {
    users.sort();
    users
}

/// The whole invite handshake: `host` invites `member`, whose connected device sees
/// the invite and accepts it; the host sees the member join. Returns the invite.
async fn add_member(
    (hc, host): (&mut Client, &Identity),
    (mc, member): (&mut Client, &Identity),
    family: FamilyId,
) -> InviteId {
    let invite = send_invite(hc, host, family, member).await.invite;
    let received = event(mc, |e| match e {
        ServerEvent::InviteReceived(i) => Some(i.invite),
        _ => None,
    })
    .await;
    assert_eq!(received, invite);
    let accepted = answer_invite(mc, member, invite, true)
        .await
        .expect("accepted");
    assert!(
        matches!(
            accepted,
            Response::InviteAnswered {
                family: Some(_),
                ..
            }
        ),
        "{accepted:?}"
    );
    let (_, change) = membership_changed(hc, family).await;
    assert_eq!(
        change,
        MembershipChange::Joined {
            user: member.user()
        }
    );
    invite
}

/// Subscribes to `doc` since `since`; the frames of its catch-up (snapshot, chunks,
/// pending snapshot), in order, up to and including `CaughtUp`. An error about `doc` fails the test.
async fn catch_up(c: &mut Client, doc: DocId, since: Seq) -> Vec<ServerFrame> {
    c.send(&ClientFrame::Subscribe {
        docs: vec![Subscription { doc, since }],
    })
    .await;
    let mut frames = Vec::new();
    loop {
        let frame = c.next().await.expect("the socket is open");
        match &frame {
            ServerFrame::Snapshot { doc: d, .. }
            | ServerFrame::Chunk { doc: d, .. }
            | ServerFrame::PendingSnapshot { doc: d, .. }
                if *d == doc =>
            {
                frames.push(frame);
            }
            ServerFrame::CaughtUp { doc: d, .. } if *d == doc => {
                frames.push(frame);
                return frames;
            }
            ServerFrame::Error(e) if e.doc == Some(doc) => panic!("subscribe refused: {e:?}"),
            _ => {}
        }
    }
}

/// The `(seq, bytes)` of the chunks among `frames`.
fn chunks(frames: &[ServerFrame]) -> Vec<(Seq, Vec<u8>)> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Chunk { seq, bytes, .. } => Some((*seq, bytes.clone())),
            _ => None,
        })
        .collect()
}

/// Subscribing to `doc` is refused; the error's code.
async fn subscribe_refused(c: &mut Client, doc: DocId) -> ErrorCode {
    c.send(&ClientFrame::Subscribe {
        docs: vec![Subscription { doc, since: 0 }],
    })
    .await;
    c.until(|f| match f {
        ServerFrame::Error(e) if e.doc == Some(doc) => Some(e.code),
        ServerFrame::CaughtUp { doc: d, .. } | ServerFrame::Chunk { doc: d, .. } if *d == doc => {
            panic!("subscribed to {doc} after all: {f:?}")
        }
        _ => None,
    })
    .await
}

/// Pushes `bytes` to `doc` and waits for the ack; its seq.
async fn push(c: &mut Client, doc: DocId, bytes: &[u8]) -> Seq {
    c.send(&ClientFrame::push(doc, bytes.to_vec())).await;
    let chunk = ChunkId::of(bytes);
    c.until(|f| match f {
        ServerFrame::Ack {
            doc: d,
            chunk: got,
            seq,
        } if *d == doc && *got == chunk => Some(*seq),
        ServerFrame::Error(e) if e.chunk == Some(chunk) => panic!("push refused: {e:?}"),
        _ => None,
    })
    .await
}

/// Pushing `bytes` to `doc` is refused; the error's code.
async fn push_refused(c: &mut Client, doc: DocId, bytes: &[u8]) -> ErrorCode {
    c.send(&ClientFrame::push(doc, bytes.to_vec())).await;
    let chunk = ChunkId::of(bytes);
    c.until(|f| match f {
        ServerFrame::Error(e) if e.chunk == Some(chunk) => {
            assert_eq!(e.doc, Some(doc));
            Some(e.code)
        }
        ServerFrame::Ack { chunk: got, .. } if *got == chunk => {
            panic!("push accepted: {f:?}")
        }
        _ => None,
    })
    .await
}

/// The next live chunk of `doc`: `(seq, bytes)`.
async fn live_chunk(c: &mut Client, doc: DocId) -> (Seq, Vec<u8>) {
    c.until(|f| match f {
        ServerFrame::Chunk {
            doc: d, seq, bytes, ..
        } if *d == doc => Some((*seq, bytes.clone())),
        _ => None,
    })
    .await
}

/// Pings and returns every frame received before the `Pong`.
async fn frames_until_pong(c: &mut Client) -> Vec<ServerFrame> {
    let nonce = rand::random();
    c.send(&ClientFrame::Ping { nonce }).await;
    let mut before = Vec::new();
    loop {
        match c.next().await.expect("the socket is open") {
            ServerFrame::Pong { nonce: n } if n == nonce => return before,
            other => before.push(other),
        }
    }
}

/// Nothing of `doc` arrives before a `Pong`.
async fn assert_no_chunk_of(c: &mut Client, doc: DocId) {
    for f in frames_until_pong(c).await {
        assert!(
            !matches!(f, ServerFrame::Chunk { doc: d, .. } if d == doc),
            "a chunk of {doc} was still delivered: {f:?}"
        );
    }
}

async fn list_families(c: &mut Client) -> Vec<FamilySummary> {
    match c.request(Request::ListFamilies).await {
        Ok(Response::Families(list)) => list,
        other => panic!("unexpected {other:?}"),
    }
}

async fn list_invites(c: &mut Client) -> Vec<InviteInfo> {
    match c.request(Request::ListInvites).await {
        Ok(Response::Invites(list)) => list,
        other => panic!("unexpected {other:?}"),
    }
}

async fn list_devices(c: &mut Client) -> BTreeMap<DeviceId, DeviceInfo> {
    match c.request(Request::ListDevices).await {
        Ok(Response::Devices(list)) => list.into_iter().map(|d| (d.device, d)).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn list_presence(c: &mut Client, family: FamilyId) -> BTreeMap<UserId, PresenceInfo> {
    match c.request(Request::ListPresence { family }).await {
        Ok(Response::Presence(list)) => list.into_iter().map(|p| (p.user, p)).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Uploads `bytes` as a blob of `family`, signed by `id`'s device; its hash.
async fn upload(server: &Server, id: &Identity, family: FamilyId, bytes: &[u8]) -> BlobHash {
    let hash = BlobHash::of(bytes);
    let path = format!("/blobs/{hash}?family={family}");
    let r = signed_http(server, id, "PUT", &path, bytes).await;
    assert_eq!(r.status, 201, "{r:?}");
    hash
}

/// Downloads a blob, signed by `id`'s device.
async fn download(server: &Server, id: &Identity, hash: BlobHash) -> HttpResponse {
    let path = format!("/blobs/{hash}");
    signed_http(server, id, "GET", &path, b"").await
}

// ---------------------------------------------------------------------------------
// 1. A graceful restart keeps everything.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_accounts_families_invites_logs_and_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());

    // Step 1: Alice hosts a family that Bob joined by invite; Carol's invite is
    // still pending.
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut carol = Identity::new("carol@example.com", "carol");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let mut c = Client::register(&server, &mut carol).await;
    let family = create_family(&mut a).await;
    let accepted = add_member((&mut a, &alice), (&mut b, &bob), family).await;
    let pending = send_invite(&mut a, &alice, family, &carol).await;

    // Step 2: both members push to the family document, Alice to her personal one,
    // and Alice uploads a photo for the family.
    let doc = DocId::from(family);
    for bytes in [&b"a1"[..], b"a2", b"a3"] {
        push(&mut a, doc, bytes).await;
    }
    assert_eq!(push(&mut b, doc, b"b1").await, 4);
    let photo: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let hash = upload(&server, &alice, family, &photo).await;

    // Her personal document has a snapshot covering its first chunk, and a tail.
    let personal = alice.personal_doc;
    assert_eq!(push(&mut a, personal, b"diary 1").await, 1);
    assert_eq!(push(&mut a, personal, b"diary 2").await, 2);
    let saved = b"automerge save of diary 1".to_vec();
    let blob = upload(&server, &alice, family, &saved).await;
    a.send(&ClientFrame::PushSnapshot {
        doc: personal,
        covers_seq: 1,
        blob,
        len: saved.len() as u64,
    })
    .await;
    a.until(|f| match f {
        ServerFrame::SnapshotAccepted { .. } => Some(()),
        ServerFrame::Error(e) => panic!("snapshot refused: {e:?}"),
        _ => None,
    })
    .await;
    // Pending until a device other than the pusher confirms it: Bob's, who may read
    // Alice's personal document.
    assert_eq!(
        b.request(Request::ConfirmSnapshot {
            doc: personal,
            covers_seq: 1,
            blob
        })
        .await,
        Ok(Response::Done)
    );
    let personal_before = catch_up(&mut b, personal, 0).await;
    assert_eq!(personal_before.len(), 3, "snapshot, chunk 2, caught up");

    // And a link code is issued but not redeemed yet.
    let Ok(Response::LinkCode { code, .. }) = a.request(Request::IssueLinkCode).await else {
        panic!("no link code")
    };
    let families_before = list_families(&mut a).await;
    let log_before = catch_up(&mut b, doc, 0).await;
    assert_eq!(
        chunks(&log_before),
        vec![
            (1, b"a1".to_vec()),
            (2, b"a2".to_vec()),
            (3, b"a3".to_vec()),
            (4, b"b1".to_vec())
        ]
    );
    let devices_before = list_devices(&mut a).await;

    // Step 3: SIGTERM: every connection gets a goodbye and the relay exits 0.
    let stopped = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.terminate()
    });
    for conn in [&mut a, &mut b, &mut c] {
        assert_eq!(conn.goodbye().await, ErrorCode::ShuttingDown);
    }
    let status = stopped.await.expect("join");
    assert!(status.success(), "exit status {status:?}");

    // Step 4: a new relay on the same data dir; the same devices sign in with the
    // stored keys and see the same family.
    let server = Server::start(dir.path());
    let (mut a, signed) = sign_in(&server, &alice).await;
    assert_eq!(signed.families, vec![family]);
    assert_eq!(signed.personal_doc, alice.personal_doc);
    let (mut b, signed) = sign_in(&server, &bob).await;
    assert_eq!(signed.families, vec![family]);
    assert_eq!(list_families(&mut a).await, families_before);
    let devices_after = list_devices(&mut a).await;
    assert_eq!(
        devices_after.keys().collect::<Vec<_>>(),
        devices_before.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        devices_after[&alice.device].device_key,
        devices_before[&alice.device].device_key
    );

    // Step 5: invites: Carol's pending invite is delivered when she signs in and
    // listed for Alice; Bob's accepted invite stays answered.
    let (mut c, _) = sign_in(&server, &carol).await;
    let redelivered = event(&mut c, |e| match e {
        ServerEvent::InviteReceived(i) => Some(i.clone()),
        _ => None,
    })
    .await;
    assert_eq!(redelivered, pending);
    assert_eq!(list_invites(&mut a).await, vec![pending.clone()]);
    let again = answer_invite(&mut b, &bob, accepted, true)
        .await
        .expect_err("already answered");
    assert_eq!(again.code, ErrorCode::InviteAnswered);

    // Step 6: the logs: catch-up from 0 gives the same chunks at the same seqs; the
    // next push continues the numbering, and a re-push is still idempotent.
    assert_eq!(catch_up(&mut b, doc, 0).await, log_before);
    assert_eq!(catch_up(&mut a, personal, 0).await, personal_before);
    assert_eq!(push(&mut a, doc, b"a5").await, 5);
    assert_eq!(live_chunk(&mut b, doc).await, (5, b"a5".to_vec()));
    assert_eq!(push(&mut a, doc, b"a2").await, 2);

    // Step 7: the blobs are still there for a member of the family.
    let r = download(&server, &bob, hash).await;
    assert_eq!((r.status, r.body.as_slice()), (200, photo.as_slice()));
    let r = download(&server, &bob, blob).await;
    assert_eq!((r.status, r.body.as_slice()), (200, saved.as_slice()));

    // Step 8: the link code issued before the restart still adds a device, once
    // confirmed.
    let tablet = new_device_of(&alice);
    let (_t, waiting) = answer_challenge(&server, |ch| link_frame(&tablet, ch, &code)).await;
    assert_eq!(waiting.expect_err("waits").code, ErrorCode::LinkPending);
    let asked = a.link_requested().await;
    assert_eq!(
        a.request(alice.confirm_link_request(&asked, true)).await,
        Ok(Response::Done)
    );
    let (_t, linked) = answer_challenge(&server, |ch| link_frame(&tablet, ch, &code)).await;
    assert_eq!(linked.expect("linked after the restart").user, alice.user());

    // Step 9: the directory still finds Bob; Carol can still accept.
    let found = a
        .request(Request::LookupUser {
            email: "bob@example.com".into(),
        })
        .await
        .expect("lookup");
    assert!(matches!(found, Response::UserFound(Some(ref e)) if e.user == bob.user()));
    let joined = answer_invite(&mut c, &carol, pending.invite, true)
        .await
        .expect("carol joins after the restart");
    let Response::InviteAnswered {
        family: Some(summary),
        ..
    } = joined
    else {
        panic!("unexpected {joined:?}")
    };
    assert_eq!(summary.members.len(), 3);
}

// ---------------------------------------------------------------------------------
// 2. `kill -9` right after an ack keeps the chunk.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acked_chunk_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let family = create_family(&mut a).await;
    let doc = DocId::from(family);

    // Step 1: one push; as soon as its ack arrives the relay is SIGKILLed
    // (`Server`'s drop is `Child::kill`, then `wait`).
    assert_eq!(push(&mut a, doc, b"first").await, 1);
    drop(server);
    assert!(a.next().await.is_none(), "the socket died with the relay");

    // Step 2: a new relay on the same data dir has the chunk at its seq.
    let server = Server::start(dir.path());
    let (mut a, _) = sign_in(&server, &alice).await;
    assert_eq!(
        catch_up(&mut a, doc, 0).await,
        vec![
            ServerFrame::Chunk {
                doc,
                seq: 1,
                chunk: ChunkId::of(b"first"),
                author: Some(alice.user()),
                bytes: b"first".to_vec()
            },
            ServerFrame::CaughtUp { doc, seq: 1 }
        ]
    );
    drop(a);

    // Step 3: rounds of 30 pushes sent back to back; the relay is SIGKILLed as soon
    // as the n-th ack arrives. Acks already on their way are read afterwards: every
    // acked chunk must be in the log after the restart, at the seq of its ack.
    let mut server = server;
    let mut acked: BTreeMap<ChunkId, Seq> = BTreeMap::from([(ChunkId::of(b"first"), 1)]);
    for (round, kill_after) in [1usize, 5, 20].into_iter().enumerate() {
        let (mut a, _) = sign_in(&server, &alice).await;
        let burst: Vec<Vec<u8>> = (0..30)
            .map(|i| format!("round {round} chunk {i}").into_bytes())
            .collect();
        for bytes in &burst {
            a.send(&ClientFrame::push(doc, bytes.clone())).await;
        }
        let mut this_round = 0;
        while this_round < kill_after {
            match a.next().await.expect("the socket is open") {
                ServerFrame::Ack { chunk, seq, .. } => {
                    acked.insert(chunk, seq);
                    this_round += 1;
                }
                ServerFrame::Error(e) => panic!("push refused: {e:?}"),
                _ => {}
            }
        }
        drop(server);
        while let Some(frame) = a.next().await {
            if let ServerFrame::Ack { chunk, seq, .. } = frame {
                acked.insert(chunk, seq);
            }
        }

        // Step 4: restart; catch up from 0: every acked chunk is there with its seq,
        // and the log has no holes.
        server = Server::start(dir.path());
        let (mut a, _) = sign_in(&server, &alice).await;
        let log = catch_up(&mut a, doc, 0).await;
        let in_log: BTreeMap<ChunkId, Seq> = log
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Chunk { seq, chunk, .. } => Some((*chunk, *seq)),
                _ => None,
            })
            .collect();
        for (chunk, seq) in &acked {
            assert_eq!(
                in_log.get(chunk),
                Some(seq),
                "round {round}: acked chunk {chunk} lost or moved"
            );
        }
        let seqs: Vec<Seq> = chunks(&log).iter().map(|(s, _)| *s).collect();
        let head = seqs.len() as Seq;
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "round {round}");
        assert_eq!(log.last(), Some(&ServerFrame::CaughtUp { doc, seq: head }));

        // Step 5: the client re-pushes its whole outbox; what was acked keeps its
        // seq, the rest is appended once.
        for bytes in &burst {
            let seq = push(&mut a, doc, bytes).await;
            if let Some(before) = acked.insert(ChunkId::of(bytes), seq) {
                assert_eq!(seq, before, "round {round}: a re-push moved a chunk");
            }
        }
        assert_eq!(acked.len() as Seq, 1 + 30 * (round as Seq + 1));
    }

    // Step 6: the same for a graceful SIGTERM in the middle of a burst: the relay
    // says goodbye, exits 0, and every chunk it acked is in the log.
    let (mut a, _) = sign_in(&server, &alice).await;
    let burst: Vec<Vec<u8>> = (0..30)
        .map(|i| format!("sigterm chunk {i}").into_bytes())
        .collect();
    for bytes in &burst {
        a.send(&ClientFrame::push(doc, bytes.clone())).await;
    }
    let first = a
        .until(|f| match f {
            ServerFrame::Ack { chunk, seq, .. } => Some((*chunk, *seq)),
            _ => None,
        })
        .await;
    acked.insert(first.0, first.1);
    let stopped = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.terminate()
    });
    let reason = loop {
        match a.next().await.expect("a goodbye before the close") {
            ServerFrame::Ack { chunk, seq, .. } => {
                acked.insert(chunk, seq);
            }
            ServerFrame::Goodbye { reason, .. } => break reason,
            ServerFrame::Error(e) => panic!("push refused: {e:?}"),
            _ => {}
        }
    };
    assert_eq!(reason, ErrorCode::ShuttingDown);
    let status = stopped.await.expect("join");
    assert!(status.success(), "exit status {status:?}");
    let server = Server::start(dir.path());
    let (mut a, _) = sign_in(&server, &alice).await;
    let in_log: BTreeMap<ChunkId, Seq> = catch_up(&mut a, doc, 0)
        .await
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Chunk { seq, chunk, .. } => Some((*chunk, *seq)),
            _ => None,
        })
        .collect();
    for (chunk, seq) in &acked {
        assert_eq!(in_log.get(chunk), Some(seq), "acked chunk {chunk} lost");
    }
}

// ---------------------------------------------------------------------------------
// 3. Snapshot + tail for a new device.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_gets_the_snapshot_then_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let family = create_family(&mut a).await;
    let doc = DocId::from(family);

    // Step 1: Alice pushes six chunks.
    for i in 1..=6u64 {
        assert_eq!(push(&mut a, doc, format!("change {i}").as_bytes()).await, i);
    }

    // Step 2: she uploads a snapshot of the state up to seq 4 and declares it; a
    // snapshot beyond the head is refused.
    let snapshot = b"automerge save of changes 1..=4".to_vec();
    let blob = upload(&server, &alice, family, &snapshot).await;
    let len = snapshot.len() as u64;
    a.send(&ClientFrame::PushSnapshot {
        doc,
        covers_seq: 99,
        blob,
        len,
    })
    .await;
    let e = a.error().await;
    assert_eq!((e.code, e.doc), (ErrorCode::Conflict, Some(doc)));
    a.send(&ClientFrame::PushSnapshot {
        doc,
        covers_seq: 4,
        blob,
        len,
    })
    .await;
    let accepted = a
        .until(|f| match f {
            ServerFrame::SnapshotAccepted { .. } => Some(f.clone()),
            ServerFrame::Error(e) => panic!("snapshot refused: {e:?}"),
            _ => None,
        })
        .await;
    assert_eq!(
        accepted,
        ServerFrame::SnapshotAccepted { doc, covers_seq: 4 }
    );
    // Alice cannot vouch for her own snapshot.
    let own = a
        .request(Request::ConfirmSnapshot {
            doc,
            covers_seq: 4,
            blob,
        })
        .await;
    assert_eq!(own.map_err(|e| e.code), Err(ErrorCode::Forbidden));

    // Step 3: Bob registers a new device and joins; until a device of his confirms
    // the snapshot, catch-ups still bring every chunk, and the snapshot is offered.
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut b = Client::register(&server, &mut bob).await;
    add_member((&mut a, &alice), (&mut b, &bob), family).await;
    let all = catch_up(&mut b, doc, 0).await;
    assert_eq!(chunks(&all).len(), 6, "{all:?}");
    assert_eq!(
        all[all.len() - 2],
        ServerFrame::PendingSnapshot {
            doc,
            covers_seq: 4,
            blob,
            len,
            by: alice.user(),
            by_device: alice.device,
        }
    );
    assert_eq!(
        b.request(Request::ConfirmSnapshot {
            doc,
            covers_seq: 4,
            blob
        })
        .await,
        Ok(Response::Done)
    );
    // Confirmed once: again is `not_found`.
    let again = b
        .request(Request::ConfirmSnapshot {
            doc,
            covers_seq: 4,
            blob,
        })
        .await;
    assert_eq!(again.map_err(|e| e.code), Err(ErrorCode::NotFound));

    // Subscribing from 0 now gives the snapshot first, then only the chunks after
    // it, then CaughtUp.
    let chunk = |seq: Seq| {
        let bytes = format!("change {seq}").into_bytes();
        ServerFrame::Chunk {
            doc,
            seq,
            chunk: ChunkId::of(&bytes),
            author: Some(alice.user()),
            bytes,
        }
    };
    assert_eq!(
        catch_up(&mut b, doc, 0).await,
        vec![
            ServerFrame::Snapshot {
                doc,
                covers_seq: 4,
                blob,
                len
            },
            chunk(5),
            chunk(6),
            ServerFrame::CaughtUp { doc, seq: 6 },
        ]
    );

    // Step 4: the snapshot blob downloads and verifies against the frame.
    let r = download(&server, &bob, blob).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(BlobHash::of(&r.body), blob);
    assert_eq!(r.body.len() as u64, len);

    // Step 5: live delivery continues after the tail.
    assert_eq!(push(&mut a, doc, b"change 7").await, 7);
    assert_eq!(live_chunk(&mut b, doc).await, (7, b"change 7".to_vec()));

    // Step 6: a device already past the snapshot gets no snapshot; one behind it
    // gets the snapshot instead of the dropped chunks.
    let (_, mut b2) = link_new_device(&server, &mut b, &bob).await;
    assert_eq!(
        catch_up(&mut b2, doc, 5).await,
        vec![chunk(6), chunk(7), ServerFrame::CaughtUp { doc, seq: 7 }]
    );
    let (_, mut b3) = link_new_device(&server, &mut b, &bob).await;
    let frames = catch_up(&mut b3, doc, 2).await;
    assert_eq!(
        frames.first(),
        Some(&ServerFrame::Snapshot {
            doc,
            covers_seq: 4,
            blob,
            len
        })
    );
    assert_eq!(chunks(&frames).first().map(|c| c.0), Some(5));

    // Step 7: a newer snapshot replaces it; the old blob is no longer granted (it
    // stops counting in the family's quota) and new subscribers get the new one.
    let newer = b"automerge save of changes 1..=7".to_vec();
    let newer_blob = upload(&server, &alice, family, &newer).await;
    a.send(&ClientFrame::PushSnapshot {
        doc,
        covers_seq: 7,
        blob: newer_blob,
        len: newer.len() as u64,
    })
    .await;
    a.until(|f| match f {
        ServerFrame::SnapshotAccepted { covers_seq: 7, .. } => Some(()),
        ServerFrame::Error(e) => panic!("snapshot refused: {e:?}"),
        _ => None,
    })
    .await;
    // Still pending: the old one is served, and readable.
    assert_eq!(download(&server, &bob, blob).await.status, 200);
    assert_eq!(
        b.request(Request::ConfirmSnapshot {
            doc,
            covers_seq: 7,
            blob: newer_blob
        })
        .await,
        Ok(Response::Done)
    );
    assert_eq!(download(&server, &bob, blob).await.status, 404);
    assert_eq!(download(&server, &alice, blob).await.status, 404);
    let r = download(&server, &bob, newer_blob).await;
    assert_eq!((r.status, r.body), (200, newer.clone()));
    let (_, mut b4) = link_new_device(&server, &mut b, &bob).await;
    assert_eq!(
        catch_up(&mut b4, doc, 0).await.first(),
        Some(&ServerFrame::Snapshot {
            doc,
            covers_seq: 7,
            blob: newer_blob,
            len: newer.len() as u64
        })
    );
}

// ---------------------------------------------------------------------------------
// 4. Linking a device with a code.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_code_adds_a_device_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let family = create_family(&mut a).await;
    let doc = DocId::from(family);

    // Step 1: the signed-in device issues a link code.
    let issued = a.request(Request::IssueLinkCode).await.expect("a code");
    let Response::LinkCode { code, expires_at } = issued else {
        panic!("unexpected {issued:?}")
    };
    assert!(!code.is_empty() && code.len() <= 32, "{code:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        expires_at > now,
        "the code is short-lived, not already expired"
    );

    // Step 2: a new device presents it with its own key and waits; the first device
    // is asked and confirms; the new device is then signed in as Alice, with her
    // personal document and family, and the first device is told.
    let laptop = new_device_of(&alice);
    let (_, waiting) = answer_challenge(&server, |ch| link_frame(&laptop, ch, &code)).await;
    assert_eq!(waiting.expect_err("waits").code, ErrorCode::LinkPending);
    let asked = a.link_requested().await;
    assert_eq!(asked.device, laptop.device);
    assert_eq!(
        a.request(alice.confirm_link_request(&asked, true)).await,
        Ok(Response::Done)
    );
    let (mut l, signed) = answer_challenge(&server, |ch| link_frame(&laptop, ch, &code)).await;
    let signed = signed.expect("linked");
    assert_eq!(
        signed,
        SignedIn {
            user: alice.user(),
            device: laptop.device,
            personal_doc: alice.personal_doc,
            families: vec![family],
        }
    );
    let added = event(&mut a, |e| match e {
        ServerEvent::DeviceAdded(info) => Some(info.clone()),
        _ => None,
    })
    .await;
    assert_eq!(added.device, laptop.device);
    assert_eq!(added.device_key, public(&laptop.device_key));
    assert!(added.revoked_at.is_none());

    // Step 3: it subscribes and receives what the first device pushes, to the
    // family document and to the personal document.
    for d in [doc, alice.personal_doc] {
        assert_eq!(catch_up(&mut l, d, 0).await.len(), 1, "only CaughtUp");
    }
    assert_eq!(push(&mut a, doc, b"from the phone").await, 1);
    assert_eq!(
        live_chunk(&mut l, doc).await,
        (1, b"from the phone".to_vec())
    );
    assert_eq!(push(&mut a, alice.personal_doc, b"note").await, 1);
    assert_eq!(
        live_chunk(&mut l, alice.personal_doc).await,
        (1, b"note".to_vec())
    );

    // Step 4: ListDevices shows both, online, from either device.
    for c in [&mut a, &mut l] {
        let devices = list_devices(c).await;
        assert_eq!(devices.len(), 2);
        for id in [alice.device, laptop.device] {
            assert!(devices[&id].online && devices[&id].revoked_at.is_none());
        }
    }

    // Step 5: the used code and a wrong code are refused, and add nothing.
    for (what, attempt, refusal) in [
        ("used", code.clone(), ErrorCode::LinkClaimed),
        ("wrong", "WRONG123".to_owned(), ErrorCode::InvalidLinkCode),
    ] {
        let tablet = new_device_of(&alice);
        let (_t, result) = answer_challenge(&server, |ch| link_frame(&tablet, ch, &attempt)).await;
        let e = result.expect_err(what);
        assert_eq!(e.code, refusal, "{what} code");
    }
    assert_eq!(list_devices(&mut a).await.len(), 2);

    // Step 6: the linked device is a device like any other: it signs in again.
    drop(l);
    let (_l, signed) = sign_in(&server, &laptop).await;
    assert_eq!(signed.device, laptop.device);
}

// ---------------------------------------------------------------------------------
// 5. Recovery from the recovery phrase.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_key_recovers_the_account_on_a_new_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let family = create_family(&mut a).await;
    assert_eq!(push(&mut a, alice.personal_doc, b"diary").await, 1);

    // Step 1: a new device restores the user key (the same secret bytes the phrase
    // encodes), makes its own device key, and recovers: it is signed in as Alice.
    let mut restored = new_device_of(&alice);
    restored.user_key = SigningKey::from_bytes(&alice.user_key.to_bytes());
    let (mut r, signed) = answer_challenge(&server, |ch| recover_frame(&restored, ch)).await;
    assert_eq!(
        signed.expect("recovered"),
        SignedIn {
            user: alice.user(),
            device: restored.device,
            personal_doc: alice.personal_doc,
            families: vec![family],
        }
    );
    let added = event(&mut a, |e| match e {
        ServerEvent::DeviceAdded(info) => Some(info.device),
        _ => None,
    })
    .await;
    assert_eq!(added, restored.device);

    // Step 2: the recovered device reads Alice's documents and signs in again later.
    assert_eq!(
        chunks(&catch_up(&mut r, alice.personal_doc, 0).await),
        vec![(1, b"diary".to_vec())]
    );
    drop(r);
    sign_in(&server, &restored).await;

    // Step 3: a key no user has, and a user signature by the wrong key, are
    // refused; no device is added.
    let stranger = Identity::new("nobody@example.com", "nobody");
    let (_s, result) = answer_challenge(&server, |ch| recover_frame(&stranger, ch)).await;
    assert_eq!(result.expect_err("unknown").code, ErrorCode::UnknownUser);
    let forger = new_device_of(&alice);
    let (_f, result) = answer_challenge(&server, |ch| {
        let mut frame = recover_frame(&forger, ch);
        if let ClientFrame::Recover { user_signature, .. } = &mut frame {
            *user_signature = Signature(stranger.user_key.sign(b"not this").to_bytes());
        }
        frame
    })
    .await;
    assert_eq!(result.expect_err("forged").code, ErrorCode::BadSignature);
    assert_eq!(list_devices(&mut a).await.len(), 2);
}

// ---------------------------------------------------------------------------------
// 6. Revoking a device.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_disconnected_and_locked_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let family = create_family(&mut a).await;
    let photo = b"a family photo".to_vec();
    let hash = upload(&server, &alice, family, &photo).await;

    // Step 1: a linked second device is online and subscribed.
    let (laptop, mut l) = link_new_device(&server, &mut a, &alice).await;
    catch_up(&mut l, alice.personal_doc, 0).await;
    assert_eq!(download(&server, &laptop, hash).await.status, 200);

    // Step 2: the first device revokes it: the user's devices are told, and the
    // revoked device's socket gets Goodbye(DeviceRevoked) as its last frame.
    assert_eq!(
        a.request(Request::RevokeDevice {
            device: laptop.device
        })
        .await,
        Ok(Response::Done)
    );
    let revoked = event(&mut a, |e| match e {
        ServerEvent::DeviceRevoked { device } => Some(*device),
        _ => None,
    })
    .await;
    assert_eq!(revoked, laptop.device);
    assert_eq!(l.goodbye().await, ErrorCode::DeviceRevoked);
    assert!(l.next().await.is_none(), "Goodbye is the last frame");

    // Step 3: it can no longer sign in, nor use blobs over HTTP.
    let (_l, result) = answer_challenge(&server, |ch| laptop.signin_frame(ch)).await;
    assert_eq!(result.expect_err("revoked").code, ErrorCode::DeviceRevoked);
    let r = download(&server, &laptop, hash).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-doran-error"), Some("207"));

    // Step 4: ListDevices shows it revoked and offline; the first device still works.
    let devices = list_devices(&mut a).await;
    let gone = &devices[&laptop.device];
    assert!(gone.revoked_at.is_some() && !gone.online);
    assert!(devices[&alice.device].online && devices[&alice.device].revoked_at.is_none());
    assert_eq!(push(&mut a, alice.personal_doc, b"still here").await, 1);

    // Step 5: a device may revoke itself: the answer, then Goodbye(DeviceRevoked).
    assert_eq!(
        a.request(Request::RevokeDevice {
            device: alice.device
        })
        .await,
        Ok(Response::Done)
    );
    assert_eq!(a.goodbye().await, ErrorCode::DeviceRevoked);
    let (_a, result) = answer_challenge(&server, |ch| alice.signin_frame(ch)).await;
    assert_eq!(result.expect_err("revoked").code, ErrorCode::DeviceRevoked);
}

// ---------------------------------------------------------------------------------
// 7. Membership changes: remove, leave, rename, delete.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_reach_every_member_and_end_access() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut host = Identity::new("host@example.com", "host");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut carol = Identity::new("carol@example.com", "carol");
    let mut dave = Identity::new("dave@example.com", "dave");
    let mut h = Client::register(&server, &mut host).await;
    let mut b = Client::register(&server, &mut bob).await;
    let mut c = Client::register(&server, &mut carol).await;
    let mut d = Client::register(&server, &mut dave).await;

    // Step 1: a family of four, everyone subscribed to its document; a family blob.
    let family = create_family(&mut h).await;
    let doc = DocId::from(family);
    add_member((&mut h, &host), (&mut b, &bob), family).await;
    add_member((&mut h, &host), (&mut c, &carol), family).await;
    add_member((&mut h, &host), (&mut d, &dave), family).await;
    for conn in [&mut h, &mut b, &mut c, &mut d] {
        catch_up(conn, doc, 0).await;
    }
    // Bob also follows the host's personal document (readable by co-members).
    catch_up(&mut b, host.personal_doc, 0).await;
    let photo = b"family photo".to_vec();
    let blob = upload(&server, &host, family, &photo).await;

    // Step 2: the family's title is its document's (protocol 7): a rename through
    // the relay is refused, and no member hears of anything.
    let refused = h
        .request(Request::RetiredRenameFamily)
        .await
        .expect_err("retired");
    assert_eq!(refused.code, ErrorCode::InvalidInput);
    for (n, conn) in [&mut h, &mut b, &mut c, &mut d].into_iter().enumerate() {
        conn.quiet(n as u64).await;
    }

    // Step 3: the host removes Bob: every member and Bob get MembershipChanged
    // (Removed), listing the members after the change.
    assert_eq!(
        h.request(Request::RemoveMember {
            family,
            user: bob.user()
        })
        .await,
        Ok(Response::Done)
    );
    let after = sorted(vec![host.user(), carol.user(), dave.user()]);
    let removed = MembershipChange::Removed {
        user: bob.user(),
        by: host.user(),
    };
    for conn in [&mut h, &mut b, &mut c, &mut d] {
        assert_eq!(
            membership_changed(conn, family).await,
            (after.clone(), removed)
        );
    }

    // Step 4: Bob's live subscriptions end (a Forbidden error about each document:
    // the family's, and the host's personal one he no longer shares a family with);
    // the host's next pushes reach the members but not Bob; Bob can neither
    // subscribe, push, nor fetch the family's blob.
    let mut ended = BTreeMap::new();
    while ended.len() < 2 {
        match b.next().await.expect("the socket is open") {
            ServerFrame::Error(e) => {
                ended.insert(e.doc.expect("about a document"), e.code);
            }
            f @ ServerFrame::Chunk { .. } => panic!("a chunk after removal: {f:?}"),
            _ => {}
        }
    }
    assert_eq!(
        ended,
        BTreeMap::from([
            (doc, ErrorCode::Forbidden),
            (host.personal_doc, ErrorCode::Forbidden)
        ])
    );
    assert_eq!(push(&mut h, doc, b"after bob").await, 1);
    for conn in [&mut c, &mut d] {
        assert_eq!(live_chunk(conn, doc).await, (1, b"after bob".to_vec()));
    }
    assert_eq!(push(&mut h, host.personal_doc, b"host diary").await, 1);
    assert_no_chunk_of(&mut b, doc).await;
    assert_no_chunk_of(&mut b, host.personal_doc).await;
    assert_eq!(
        subscribe_refused(&mut b, host.personal_doc).await,
        ErrorCode::Forbidden
    );
    assert_eq!(subscribe_refused(&mut b, doc).await, ErrorCode::Forbidden);
    assert_eq!(
        push_refused(&mut b, doc, b"bob again").await,
        ErrorCode::Forbidden
    );
    assert_eq!(download(&server, &bob, blob).await.status, 404);
    assert!(list_families(&mut b).await.is_empty());

    // Step 5: Carol leaves: the remaining members and Carol get MembershipChanged
    // (Left); her subscription ends too.
    assert_eq!(
        c.request(Request::LeaveFamily { family }).await,
        Ok(Response::Done)
    );
    let after = sorted(vec![host.user(), dave.user()]);
    let left = MembershipChange::Left { user: carol.user() };
    for conn in [&mut h, &mut c, &mut d] {
        assert_eq!(
            membership_changed(conn, family).await,
            (after.clone(), left)
        );
    }
    assert_eq!(c.error().await.doc, Some(doc));
    assert_eq!(subscribe_refused(&mut c, doc).await, ErrorCode::Forbidden);

    // Step 6: the host invites Bob back, then deletes the family: the members get
    // FamilyDeleted, Bob's pending invite is withdrawn, and the document and blob
    // are gone.
    let invite = send_invite(&mut h, &host, family, &bob).await.invite;
    assert_eq!(
        h.request(Request::DeleteFamily { family }).await,
        Ok(Response::Done)
    );
    for conn in [&mut h, &mut d] {
        let deleted = event(conn, |e| match e {
            ServerEvent::FamilyDeleted { family: f } => Some(*f),
            _ => None,
        })
        .await;
        assert_eq!(deleted, family);
    }
    let withdrawn = event(&mut b, |e| match e {
        ServerEvent::InviteWithdrawn { invite } => Some(*invite),
        _ => None,
    })
    .await;
    assert_eq!(withdrawn, invite);
    let refused = answer_invite(&mut b, &bob, invite, true)
        .await
        .expect_err("the family is gone");
    assert!(
        matches!(
            refused.code,
            ErrorCode::InviteWithdrawn | ErrorCode::NotFound
        ),
        "{refused:?}"
    );
    // Live subscriptions to the deleted document end; subscribing again gets
    // `not_found` or `forbidden`, as documented.
    for conn in [&mut h, &mut d] {
        assert_eq!(conn.error().await.doc, Some(doc), "the subscription ends");
    }
    for conn in [&mut h, &mut d] {
        let code = subscribe_refused(conn, doc).await;
        assert!(
            matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
            "{code:?}"
        );
        assert!(list_families(conn).await.is_empty());
    }
    assert_eq!(download(&server, &dave, blob).await.status, 404);
    assert_eq!(download(&server, &host, blob).await.status, 404);
}

/// A family's key log (`FamilyId::key_log`, issue 18) is a log like the family's
/// document: its members read and write it, nobody else does, a removed member's
/// subscription to it ends, and it goes with the family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_familys_key_log_is_its_members_and_goes_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut host = Identity::new("host@example.com", "host");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut eve = Identity::new("eve@example.com", "eve");
    let mut h = Client::register(&server, &mut host).await;
    let mut b = Client::register(&server, &mut bob).await;
    let mut e = Client::register(&server, &mut eve).await;
    let family = create_family(&mut h).await;
    let log = family.key_log();
    add_member((&mut h, &host), (&mut b, &bob), family).await;

    // Both members read and write it, in one order.
    assert_eq!(push(&mut h, log, b"commit 0").await, 1);
    assert_eq!(
        chunks(&catch_up(&mut b, log, 0).await),
        vec![(1, b"commit 0".to_vec())]
    );
    catch_up(&mut h, log, 1).await;
    assert_eq!(push(&mut b, log, b"key package").await, 2);
    assert_eq!(live_chunk(&mut h, log).await, (2, b"key package".to_vec()));

    // Nobody compacts it: a snapshot of the key log is refused before anything else.
    h.send(&ClientFrame::PushSnapshot {
        doc: log,
        covers_seq: 2,
        blob: BlobHash::of(b"a snapshot of the key log"),
        len: 25,
    })
    .await;
    let refused = h.refusal().await;
    assert_eq!(
        (refused.code, refused.doc),
        (ErrorCode::Forbidden, Some(log))
    );

    // Somebody else does neither.
    assert_eq!(subscribe_refused(&mut e, log).await, ErrorCode::Forbidden);
    assert_eq!(
        push_refused(&mut e, log, b"rogue").await,
        ErrorCode::Forbidden
    );

    // Bob removed: his subscription ends, he reads and writes nothing more.
    assert_eq!(
        h.request(Request::RemoveMember {
            family,
            user: bob.user()
        })
        .await,
        Ok(Response::Done)
    );
    let ended = b
        .until(|f| match f {
            ServerFrame::Error(err) if err.doc == Some(log) => Some(err.code),
            ServerFrame::Chunk { doc, .. } if *doc == log => panic!("a chunk after removal"),
            _ => None,
        })
        .await;
    assert_eq!(ended, ErrorCode::Forbidden);
    assert_eq!(push(&mut h, log, b"commit 1: bob out").await, 3);
    assert_no_chunk_of(&mut b, log).await;
    assert_eq!(subscribe_refused(&mut b, log).await, ErrorCode::Forbidden);
    assert_eq!(
        push_refused(&mut b, log, b"bob again").await,
        ErrorCode::Forbidden
    );

    // Deleted with the family.
    assert_eq!(
        h.request(Request::DeleteFamily { family }).await,
        Ok(Response::Done)
    );
    let code = h
        .until(|f| match f {
            ServerFrame::Error(err) if err.doc == Some(log) => Some(err.code),
            _ => None,
        })
        .await;
    assert!(
        matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
        "{code:?}"
    );
    let code = subscribe_refused(&mut h, log).await;
    assert!(
        matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
        "{code:?}"
    );
}

// ---------------------------------------------------------------------------------
// 8. Presence.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_members_see_each_other_come_and_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let family = create_family(&mut a).await;
    add_member((&mut a, &alice), (&mut b, &bob), family).await;
    let presence_of = |user: UserId| {
        move |e: &ServerEvent| match e {
            ServerEvent::Presence(p) if p.user == user => Some(*p),
            _ => None,
        }
    };

    // Step 1: Bob disconnects: Alice sees him go offline, with when.
    drop(b);
    let offline = event(&mut a, presence_of(bob.user())).await;
    assert!(!offline.online, "{offline:?}");
    let went = offline.last_seen.expect("last seen");
    let listed = list_presence(&mut a, family).await;
    assert_eq!(listed[&bob.user()], offline);
    assert!(listed[&alice.user()].online);

    // Step 2: Bob connects again: Alice sees him come online.
    let (mut b, _) = sign_in(&server, &bob).await;
    let online = event(&mut a, presence_of(bob.user())).await;
    assert!(online.online, "{online:?}");
    assert!(online.last_seen.expect("now") >= went);
    assert!(list_presence(&mut a, family).await[&bob.user()].online);

    // Step 3: the same the other way round: Alice leaves and comes back.
    drop(a);
    let offline = event(&mut b, presence_of(alice.user())).await;
    assert!(
        !offline.online && offline.last_seen.is_some(),
        "{offline:?}"
    );
    let (_a, _) = sign_in(&server, &alice).await;
    let online = event(&mut b, presence_of(alice.user())).await;
    assert!(online.online, "{online:?}");
}

// ---------------------------------------------------------------------------------
// 9. Invites to an offline invitee, and withdrawal.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_invitee_gets_the_invite_and_its_withdrawal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    drop(Client::register(&server, &mut bob).await);
    let family = create_family(&mut a).await;

    // Step 1: Alice invites Bob while he is offline. (Should his old connection
    // still be closing, it may get the invite live too; what matters here is the
    // delivery on his next sign-in.)
    let sent = send_invite(&mut a, &alice, family, &bob).await;

    // Step 2: Bob signs in: the invite arrives right after SignedIn, and is listed.
    let (mut b, _) = sign_in(&server, &bob).await;
    let received = event(&mut b, |e| match e {
        ServerEvent::InviteReceived(i) => Some(i.clone()),
        _ => None,
    })
    .await;
    assert_eq!(received, sent);
    assert_eq!(list_invites(&mut b).await, vec![sent.clone()]);

    // Step 3: Alice withdraws it: Bob's device is told at once.
    assert_eq!(
        a.request(Request::WithdrawInvite {
            invite: sent.invite
        })
        .await,
        Ok(Response::Done)
    );
    let withdrawn = event(&mut b, |e| match e {
        ServerEvent::InviteWithdrawn { invite } => Some(*invite),
        _ => None,
    })
    .await;
    assert_eq!(withdrawn, sent.invite);

    // Step 4: answering it now is refused, and Bob is not a member.
    let refused = answer_invite(&mut b, &bob, sent.invite, true)
        .await
        .expect_err("withdrawn");
    assert_eq!(refused.code, ErrorCode::InviteWithdrawn);
    assert!(list_families(&mut b).await.is_empty());
    assert!(list_invites(&mut b).await.is_empty());
    assert!(list_invites(&mut a).await.is_empty());

    // Step 5: on his next sign-in nothing is re-delivered (pending invites are sent
    // right after SignedIn, before the answer to a Ping).
    drop(b);
    let (mut b, _) = sign_in(&server, &bob).await;
    for f in frames_until_pong(&mut b).await {
        assert!(
            !matches!(f, ServerFrame::Event(ServerEvent::InviteReceived(_))),
            "{f:?}"
        );
    }

    // Step 6: a withdrawn invite does not block a new one.
    let again = send_invite(&mut a, &alice, family, &bob).await;
    let received = event(&mut b, |e| match e {
        ServerEvent::InviteReceived(i) => Some(i.invite),
        _ => None,
    })
    .await;
    assert_eq!(received, again.invite);
}
