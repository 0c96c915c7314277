//! The hostile-client suite: the real relay binary against clients that break the
//! rules. Every case asserts the exact typed refusal (an `ErrorCode` in an
//! `ErrorFrame` tied to the request, document or chunk concerned, or an HTTP status
//! with its `x-doran-error` code) and then, through a legitimate client, that
//! nothing changed. Each test starts one relay and runs many cases on it; every
//! assertion names its case. After each group a normal client still registers,
//! signs in, pushes and receives.

mod support;

use doran_protocol::{
    BlobHash, Challenge, ChunkId, ClientFrame, DeviceId, DocId, ErrorCode, ErrorFrame, FamilyId,
    InviteId, InviteState, MembershipChange, PROTOCOL_VERSION, Request, RequestId, Response,
    ServerEvent, ServerFrame, Signature, Subscription, UserId,
    limits::{
        MAX_CHUNK_BYTES, MAX_FRAME_BYTES, MAX_INVITE_CARD_BYTES, MAX_SUBSCRIPTIONS_PER_FRAME,
    },
};
use ed25519_dalek::SigningKey;
use support::{
    Client, HttpResponse, Identity, Server, TIMEOUT, assert_relay_works, http, http_chunked,
    now_ms, signed_headers, signed_headers_at, signed_http,
};

// ---------------------------------------------------------------------------
// Assertions that name their case.

/// `e` has `code` and is tied to nothing (no request, doc or chunk).
#[track_caller]
fn untied(case: &str, e: &ErrorFrame, code: ErrorCode) {
    assert_eq!(e.code, code, "{case}: code ({e:?})");
    assert_eq!(
        (e.request, e.doc, e.chunk),
        (None, None, None),
        "{case}: tied to nothing ({e:?})"
    );
}

/// A request was refused with `code` (the error carries its request id: `request`
/// only matches errors tied to it).
#[track_caller]
fn refused(case: &str, got: Result<Response, ErrorFrame>, code: ErrorCode) -> ErrorFrame {
    let e = match got {
        Err(e) => e,
        Ok(r) => panic!("{case}: expected {code:?}, the relay answered {r:?}"),
    };
    assert_eq!(e.code, code, "{case}: code ({e:?})");
    assert!(e.request.is_some(), "{case}: tied to the request ({e:?})");
    assert_eq!((e.doc, e.chunk), (None, None), "{case}: no doc ({e:?})");
    e
}

/// An error about `doc` (and `chunk`, for pushes) with `code`.
#[track_caller]
fn about_doc(case: &str, e: &ErrorFrame, code: ErrorCode, doc: DocId, chunk: Option<ChunkId>) {
    assert_eq!(e.code, code, "{case}: code ({e:?})");
    assert_eq!(e.doc, Some(doc), "{case}: tied to the doc ({e:?})");
    assert_eq!(e.chunk, chunk, "{case}: chunk ({e:?})");
    assert_eq!(e.request, None, "{case}: no request ({e:?})");
}

/// An HTTP refusal: `status` and `x-doran-error: code`.
#[track_caller]
fn http_refused(case: &str, r: &HttpResponse, status: u16, code: ErrorCode) {
    assert_eq!(r.status, status, "{case}: status ({r:?})");
    assert_eq!(
        r.header("x-doran-error"),
        Some(code.code().to_string().as_str()),
        "{case}: x-doran-error ({r:?})"
    );
}

// ---------------------------------------------------------------------------
// Small steps.

/// A fresh connection: Hello, then the frame `make` builds for the challenge; the
/// refusal it gets.
async fn answer_refused(
    server: &Server,
    make: impl FnOnce(&Challenge) -> ClientFrame,
) -> (Client, ErrorFrame) {
    let mut c = Client::connect(server).await;
    let challenge = c.hello().await;
    c.send(&make(&challenge)).await;
    let e = c.refusal().await;
    (c, e)
}

/// A signed GET of `/blobs/{hash}` by `id`.
async fn get_blob(server: &Server, id: &Identity, hash: &BlobHash) -> HttpResponse {
    let path = format!("/blobs/{hash}");
    http(server, "GET", &path, &signed_headers(id, "GET", &path), b"").await
}

/// A signed PUT of `bytes` as `/blobs/{hash}?family={family}` by `id`.
async fn put_blob(
    server: &Server,
    id: &Identity,
    hash: &BlobHash,
    family: FamilyId,
    bytes: &[u8],
) -> HttpResponse {
    let path = format!("/blobs/{hash}?family={family}");
    http(
        server,
        "PUT",
        &path,
        &signed_headers(id, "PUT", &path),
        bytes,
    )
    .await
}

/// `host` (connection `h`) invites `guest` (connection `g`) to `family` as `name`,
/// and the guest accepts.
async fn join(h: &mut Client, host: &Identity, g: &mut Client, guest: &Identity, family: FamilyId) {
    let invite = InviteId::random();
    h.request(host.invite_request(invite, family, guest.user()))
        .await
        .expect("invite sent");
    g.request(guest.answer_request(invite, true))
        .await
        .expect("invite accepted");
}

/// Alice's blob is still there, byte for byte.
async fn assert_original(
    server: &Server,
    owner: &Identity,
    hash: &BlobHash,
    bytes: &[u8],
    case: &str,
) {
    let r = get_blob(server, owner, hash).await;
    assert_eq!(r.status, 200, "{case}: the owner still reads it ({r:?})");
    assert_eq!(r.body, bytes, "{case}: the original bytes");
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_and_sign_in_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let family = a.create_family().await;
    let fdoc = DocId::from(family);
    a.push_ack(fdoc, b"family one".to_vec()).await.expect("ack");
    a.push_ack(alice.personal_doc, b"diary one".to_vec())
        .await
        .expect("ack");
    let family_view = a.subscribe_view(fdoc, 0).await.expect("readable");
    let diary_view = a
        .subscribe_view(alice.personal_doc, 0)
        .await
        .expect("readable");
    let alice_devices = a.devices().await;
    let bob_devices = b.devices().await;
    let alice_families = a.families().await;

    // Case: a Request before sign-in (no Hello at all).
    let mut c = Client::connect(&server).await;
    c.send(&ClientFrame::Request {
        id: RequestId(7),
        body: Request::ListFamilies,
    })
    .await;
    let e = c.refusal().await;
    assert_eq!(e.code, ErrorCode::NotSignedIn, "request_before_sign_in");
    assert_eq!(e.request, Some(RequestId(7)), "request_before_sign_in: id");

    // Case: Subscribe before sign-in (after Hello, challenge unanswered).
    let challenge = c.hello().await;
    c.send(&ClientFrame::Subscribe {
        docs: vec![Subscription {
            doc: fdoc,
            since: 0,
        }],
    })
    .await;
    untied(
        "subscribe_before_sign_in",
        &c.refusal().await,
        ErrorCode::NotSignedIn,
    );

    // Case: Push before sign-in: tied to its doc and chunk.
    let evil = b"written before sign-in".to_vec();
    c.send(&ClientFrame::push(alice.personal_doc, evil.clone()))
        .await;
    about_doc(
        "push_before_sign_in",
        &c.refusal().await,
        ErrorCode::NotSignedIn,
        alice.personal_doc,
        Some(ChunkId::of(&evil)),
    );

    // Case: PushSnapshot before sign-in.
    c.send(&ClientFrame::PushSnapshot {
        doc: fdoc,
        covers_seq: 1,
        blob: BlobHash::of(b"snap"),
        len: 4,
    })
    .await;
    about_doc(
        "push_snapshot_before_sign_in",
        &c.refusal().await,
        ErrorCode::NotSignedIn,
        fdoc,
        None,
    );

    // Case: Unsubscribe and Ping before sign-in.
    c.send(&ClientFrame::Unsubscribe { docs: vec![fdoc] }).await;
    untied(
        "unsubscribe_before_sign_in",
        &c.refusal().await,
        ErrorCode::NotSignedIn,
    );
    c.send(&ClientFrame::Ping { nonce: 1 }).await;
    untied(
        "ping_before_sign_in",
        &c.refusal().await,
        ErrorCode::NotSignedIn,
    );

    // The challenge survived all that: it still signs Alice in on this connection,
    // and none of the frames above reached a document.
    c.send(&alice.signin_frame(&challenge)).await;
    assert!(
        matches!(c.next_relevant().await, ServerFrame::SignedIn { .. }),
        "pre-sign-in frames left the challenge usable"
    );
    assert_eq!(
        c.subscribe_view(fdoc, 0).await.as_ref(),
        Ok(&family_view),
        "pre-sign-in frames: the family doc is unchanged"
    );
    assert_eq!(
        c.subscribe_view(alice.personal_doc, 0).await.as_ref(),
        Ok(&diary_view),
        "pre-sign-in frames: the personal doc is unchanged"
    );

    // Case: SignIn before Hello.
    let mut d = Client::connect(&server).await;
    let fake = Challenge {
        protocol_version: PROTOCOL_VERSION,
        nonce: [0; 32],
        server_id: "test-relay".into(),
        expires_at: u64::MAX,
    };
    d.send(&alice.signin_frame(&fake)).await;
    untied(
        "sign_in_before_hello",
        &d.refusal().await,
        ErrorCode::UnexpectedFrame,
    );

    // Case: malformed bytes (an unknown variant).
    d.send_raw(vec![1, 250, 3]).await;
    untied(
        "malformed_bytes",
        &d.refusal().await,
        ErrorCode::MalformedFrame,
    );

    // Case: an unknown encoding byte.
    d.send_raw(vec![2, 10, 5]).await;
    untied(
        "unknown_encoding_byte",
        &d.refusal().await,
        ErrorCode::UnsupportedEncoding,
    );

    // Case: an empty binary message.
    d.send_raw(Vec::new()).await;
    untied(
        "empty_binary_message",
        &d.refusal().await,
        ErrorCode::MalformedFrame,
    );

    // Case: bytes left over after a valid frame.
    let mut trailing =
        doran_protocol::codec::encode_client(&ClientFrame::Ping { nonce: 5 }).expect("encodes");
    trailing.push(0);
    d.send_raw(trailing).await;
    untied(
        "trailing_bytes",
        &d.refusal().await,
        ErrorCode::MalformedFrame,
    );

    // Case: a truncated frame (a SignIn cut short).
    let mut cut =
        doran_protocol::codec::encode_client(&alice.signin_frame(&fake)).expect("encodes");
    cut.truncate(20);
    d.send_raw(cut).await;
    untied(
        "truncated_frame",
        &d.refusal().await,
        ErrorCode::MalformedFrame,
    );

    // Case: a text message.
    d.send_text("{\"hello\":1}").await;
    untied(
        "text_message",
        &d.refusal().await,
        ErrorCode::MalformedFrame,
    );

    // Case: an oversize frame (one byte past MAX_FRAME_BYTES).
    d.send_raw(vec![1; MAX_FRAME_BYTES + 1]).await;
    untied(
        "oversize_frame",
        &d.refusal().await,
        ErrorCode::FrameTooLarge,
    );

    // Case: Hello with a client label that has control characters.
    d.send(&ClientFrame::Hello {
        protocol_version: PROTOCOL_VERSION,
        client: "evil\nclient".into(),
    })
    .await;
    untied(
        "hello_control_characters",
        &d.refusal().await,
        ErrorCode::InvalidInput,
    );

    // After all that garbage the connection is still open and signs in.
    let challenge = d.hello().await;
    d.send(&bob.signin_frame(&challenge)).await;
    assert!(
        matches!(d.next_relevant().await, ServerFrame::SignedIn { .. }),
        "garbage frames: the connection still signs in"
    );

    // Case: a message past twice the frame limit: no frame can be read from it, so
    // the relay drops that socket (by design, see http.rs) and serves everyone else.
    let mut huge = Client::connect(&server).await;
    let sent = huge.try_send_raw(vec![1; 2 * MAX_FRAME_BYTES + 1]).await;
    if sent {
        huge.closed().await;
    }
    d.quiet(77).await;

    // Case: Hello with an unsupported protocol version: an error, then Goodbye.
    let mut v = Client::connect(&server).await;
    let first = v.hello_version(PROTOCOL_VERSION + 98).await;
    match first {
        ServerFrame::Error(e) => untied(
            "unsupported_protocol_version",
            &e,
            ErrorCode::UnsupportedProtocolVersion,
        ),
        other => panic!("unsupported_protocol_version: expected an error, got {other:?}"),
    }
    assert_eq!(
        v.goodbye().await,
        ErrorCode::UnsupportedProtocolVersion,
        "unsupported_protocol_version: goodbye"
    );
    assert!(
        v.next().await.is_none(),
        "unsupported_protocol_version: closed"
    );

    // Case: a second Hello on a signed-in connection.
    a.send(&ClientFrame::Hello {
        protocol_version: PROTOCOL_VERSION,
        client: "again".into(),
    })
    .await;
    untied(
        "second_hello",
        &a.refusal().await,
        ErrorCode::UnexpectedFrame,
    );

    // Case: SignIn and Register on a signed-in connection.
    a.send(&alice.signin_frame(&fake)).await;
    untied(
        "sign_in_when_signed_in",
        &a.refusal().await,
        ErrorCode::AlreadySignedIn,
    );
    let newcomer = Identity::new("newcomer@example.com", "newcomer");
    a.send(&newcomer.register_frame(&fake)).await;
    untied(
        "register_when_signed_in",
        &a.refusal().await,
        ErrorCode::AlreadySignedIn,
    );
    assert_eq!(
        a.families().await,
        alice_families,
        "second_hello: nothing changed"
    );

    // Case: a bad signature on SignIn (Alice's ids, another key).
    let mut forged = alice.clone();
    forged.device_key = SigningKey::from_bytes(&[7; 32]);
    let (mut f, e) = answer_refused(&server, |ch| forged.signin_frame(ch)).await;
    untied("bad_signature", &e, ErrorCode::BadSignature);

    // Case: the challenge replayed after that failure (the real signature now).
    let fresh = f.hello().await;
    f.send(&alice.signin_frame(&fresh)).await;
    assert!(
        matches!(f.next_relevant().await, ServerFrame::SignedIn { .. }),
        "bad_signature: a fresh challenge still signs in"
    );
    let mut r = Client::connect(&server).await;
    let ch = r.hello().await;
    r.send(&forged.signin_frame(&ch)).await;
    untied(
        "bad_signature_again",
        &r.refusal().await,
        ErrorCode::BadSignature,
    );
    r.send(&alice.signin_frame(&ch)).await;
    untied(
        "replayed_challenge",
        &r.refusal().await,
        ErrorCode::ChallengeReplayed,
    );

    // Case: a SignIn captured from another connection (signed over that
    // connection's challenge) does not verify against this one's.
    let mut victim = Client::connect(&server).await;
    let victim_ch = victim.hello().await;
    let captured = alice.signin_frame(&victim_ch);
    let (_, e) = answer_refused(&server, |_| captured.clone()).await;
    untied("captured_sign_in", &e, ErrorCode::BadSignature);
    victim.send(&captured).await;
    assert!(
        matches!(victim.next_relevant().await, ServerFrame::SignedIn { .. }),
        "captured_sign_in: the victim's own challenge is untouched"
    );

    // Case: signing in as another user's device (their ids, my key).
    let mut impostor = bob.clone();
    impostor.device_key = alice.device_key.clone();
    let (_, e) = answer_refused(&server, |ch| impostor.signin_frame(ch)).await;
    untied("another_users_device", &e, ErrorCode::BadSignature);

    // Case: my user id with another user's device id.
    let mut mixed = alice.clone();
    mixed.device = bob.device;
    let (_, e) = answer_refused(&server, |ch| mixed.signin_frame(ch)).await;
    untied("my_user_their_device", &e, ErrorCode::UnknownDevice);

    // Case: SignIn for an unknown device.
    let mut ghost = alice.clone();
    ghost.device = DeviceId::random();
    let (_, e) = answer_refused(&server, |ch| ghost.signin_frame(ch)).await;
    untied("unknown_device", &e, ErrorCode::UnknownDevice);

    // Case: SignIn for an unknown user.
    let mut nobody = alice.clone();
    nobody.user = Some(UserId::random());
    let (_, e) = answer_refused(&server, |ch| nobody.signin_frame(ch)).await;
    untied("unknown_user", &e, ErrorCode::UnknownUser);
    assert_eq!(
        b.devices().await,
        bob_devices,
        "impostors: Bob's devices unchanged"
    );
    drop(Client::sign_in(&server, &bob).await);

    // Case: a revoked device signs in. Alice links a second device, revokes it; its
    // live connection is told goodbye and it can sign in no more.
    let code = match a.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("link code: {other:?}"),
    };
    // Case: redeeming the code for a device id that is taken (Bob's): refused, and
    // the code is not used up by the refusal.
    let mut taken = alice.another_device();
    taken.device = bob.device;
    let (_, e) = answer_refused(&server, |ch| taken.link_frame(ch, &code)).await;
    untied("link_with_taken_device_id", &e, ErrorCode::AlreadyExists);
    assert_eq!(
        a.devices().await,
        alice_devices,
        "link_with_taken_device_id"
    );
    assert_eq!(
        b.devices().await,
        bob_devices,
        "link_with_taken_device_id: Bob"
    );
    // The code survived the refusal.
    let tablet = alice.another_device();
    let mut t = support::link_and_confirm(&server, &mut a, &alice, &tablet, &code).await;
    let tablet_code = match t.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("link code from the tablet: {other:?}"),
    };
    assert_eq!(
        a.request(Request::RevokeDevice {
            device: tablet.device
        })
        .await,
        Ok(Response::Done),
        "revoke"
    );
    assert_eq!(
        t.goodbye().await,
        ErrorCode::DeviceRevoked,
        "revoked: goodbye"
    );
    let devices_after_revoke = a.devices().await;
    assert!(
        devices_after_revoke
            .iter()
            .any(|(d, _, revoked)| *d == tablet.device && revoked.is_some()),
        "revoked: listed as revoked"
    );
    let (_, e) = answer_refused(&server, |ch| tablet.signin_frame(ch)).await;
    untied("revoked_device_signs_in", &e, ErrorCode::DeviceRevoked);

    // Case: a revoked device over HTTP.
    let r = get_blob(&server, &tablet, &BlobHash::of(b"anything")).await;
    http_refused("revoked_device_http", &r, 401, ErrorCode::DeviceRevoked);
    // Case: someone without its key asking about the revoked device: a bad
    // signature, not whether it was revoked.
    let mut asking = alice.clone();
    asking.device = tablet.device;
    let r = get_blob(&server, &asking, &BlobHash::of(b"anything")).await;
    http_refused(
        "revoked_device_http_unsigned",
        &r,
        401,
        ErrorCode::BadSignature,
    );

    // Case: the link code used again, by another new device: the tablet claimed it.
    let thief = alice.another_device();
    let (_, e) = answer_refused(&server, |ch| thief.link_frame(ch, &code)).await;
    untied("link_code_reused", &e, ErrorCode::LinkClaimed);

    // Case: a guessed link code.
    let (_, e) = answer_refused(&server, |ch| thief.link_frame(ch, "ZZZZ9999")).await;
    untied("link_code_guessed", &e, ErrorCode::InvalidLinkCode);

    // Case: a code issued by a device that was revoked since.
    let (_, e) = answer_refused(&server, |ch| thief.link_frame(ch, &tablet_code)).await;
    untied(
        "link_code_of_revoked_device",
        &e,
        ErrorCode::InvalidLinkCode,
    );
    assert_eq!(
        a.devices().await,
        devices_after_revoke,
        "link codes: devices unchanged"
    );

    // Case: Recover claiming Alice's public user key without her private key.
    let mut claimant = alice.another_device();
    claimant.user_key = SigningKey::from_bytes(&[9; 32]);
    let (_, e) = answer_refused(&server, |ch| {
        let mut frame = claimant.recover_frame(ch);
        if let ClientFrame::Recover { user_key, .. } = &mut frame {
            *user_key = alice.user_public();
        }
        frame
    })
    .await;
    untied("recover_without_user_key", &e, ErrorCode::BadSignature);

    // Case: Recover with a user key nobody registered.
    let stranger = Identity::new("stranger@example.com", "stranger");
    let (_, e) = answer_refused(&server, |ch| stranger.recover_frame(ch)).await;
    untied("recover_unknown_user_key", &e, ErrorCode::UnknownUser);
    assert_eq!(
        a.devices().await,
        devices_after_revoke,
        "recover: devices unchanged"
    );

    // Case: registering an email already taken (other case and spaces).
    let twin = Identity::new("  ALICE@example.com ", "alice2");
    let (_, e) = answer_refused(&server, |ch| twin.register_frame(ch)).await;
    untied("register_email_taken", &e, ErrorCode::AlreadyExists);
    // No user was made with the twin's key.
    let (_, e) = answer_refused(&server, |ch| twin.recover_frame(ch)).await;
    untied("register_email_taken: no user", &e, ErrorCode::UnknownUser);

    // Case: registering with an invalid nickname (product rule: 2–15 characters).
    let mut short = Identity::new("carol@example.com", "c");
    let (_, e) = answer_refused(&server, |ch| short.register_frame(ch)).await;
    untied("register_nickname_too_short", &e, ErrorCode::InvalidInput);

    // Case: a nickname with forbidden characters.
    short.nickname = "carol!".into();
    let (_, e) = answer_refused(&server, |ch| short.register_frame(ch)).await;
    untied(
        "register_nickname_bad_characters",
        &e,
        ErrorCode::InvalidInput,
    );

    // Case: a nickname with control characters (refused by frame validation).
    short.nickname = "car\u{0}ol".into();
    let (_, e) = answer_refused(&server, |ch| short.register_frame(ch)).await;
    untied(
        "register_nickname_control_characters",
        &e,
        ErrorCode::InvalidInput,
    );

    // Case: an invalid email.
    let mut bad_email = Identity::new("not an email", "carol");
    let (_, e) = answer_refused(&server, |ch| bad_email.register_frame(ch)).await;
    untied("register_invalid_email", &e, ErrorCode::InvalidInput);
    bad_email.email = "x@y".into();
    let (_, e) = answer_refused(&server, |ch| bad_email.register_frame(ch)).await;
    untied("register_invalid_email_domain", &e, ErrorCode::InvalidInput);

    // Case: registering with Alice's public user key (signed by another key).
    let copycat = Identity::new("copycat@example.com", "copycat");
    let (_, e) = answer_refused(&server, |ch| {
        let mut frame = copycat.register_frame(ch);
        if let ClientFrame::Register { user_key, .. } = &mut frame {
            *user_key = alice.user_public();
        }
        frame
    })
    .await;
    untied(
        "register_with_another_users_key",
        &e,
        ErrorCode::BadSignature,
    );

    // Case: registering with Bob's device id.
    let mut device_thief = Identity::new("thief@example.com", "thief");
    device_thief.device = bob.device;
    let (_, e) = answer_refused(&server, |ch| device_thief.register_frame(ch)).await;
    untied(
        "register_with_taken_device_id",
        &e,
        ErrorCode::AlreadyExists,
    );

    // Case: registering with a family's document as the personal document.
    let mut doc_thief = Identity::new("docthief@example.com", "docthief");
    doc_thief.personal_doc = fdoc;
    let (_, e) = answer_refused(&server, |ch| doc_thief.register_frame(ch)).await;
    untied("register_with_family_doc", &e, ErrorCode::AlreadyExists);

    // Case: registering with Alice's personal document.
    doc_thief.personal_doc = alice.personal_doc;
    let (_, e) = answer_refused(&server, |ch| doc_thief.register_frame(ch)).await;
    untied("register_with_personal_doc", &e, ErrorCode::AlreadyExists);

    // Nothing above changed anything: Bob's device still signs in, the documents
    // are as they were, the refused emails are still free.
    let mut b2 = Client::sign_in(&server, &bob).await;
    assert_eq!(
        b2.devices().await,
        bob_devices,
        "registrations: Bob's devices"
    );
    let mut a2 = Client::sign_in(&server, &alice).await;
    assert_eq!(a2.subscribe_view(fdoc, 0).await.as_ref(), Ok(&family_view));
    assert_eq!(
        a2.subscribe_view(alice.personal_doc, 0).await.as_ref(),
        Ok(&diary_view)
    );
    assert_eq!(a2.families().await, alice_families, "families unchanged");
    assert_eq!(
        devices_after_revoke
            .iter()
            .filter(|(d, _, _)| *d != tablet.device)
            .cloned()
            .collect::<Vec<_>>(),
        alice_devices,
        "Alice's first device is untouched"
    );
    let mut carol = Identity::new("carol@example.com", "carol");
    drop(Client::register(&server, &mut carol).await);
    let mut thief = Identity::new("thief@example.com", "thief");
    drop(Client::register(&server, &mut thief).await);

    assert_relay_works(&server, "framing").await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn family_and_invite_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut carol = Identity::new("carol@example.com", "carol");
    let mut dave = Identity::new("dave@example.com", "dave");
    let mut erin = Identity::new("erin@example.com", "erin");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let mut c = Client::register(&server, &mut carol).await;
    let mut d = Client::register(&server, &mut dave).await;
    let mut e = Client::register(&server, &mut erin).await;
    let family = a.create_family().await;
    join(&mut a, &alice, &mut b, &bob, family).await;
    let other = c.create_family().await;

    let snapshot = a.families().await;
    let carol_families = c.families().await;
    let check = |case: &str, got: Vec<doran_protocol::FamilySummary>| {
        assert_eq!(got, snapshot, "{case}: Alice's families unchanged");
    };

    // Case: Carol creates a family with the id of Alice's (taking it over).
    let got = c.request(Request::CreateFamily { family }).await;
    refused("create_family_with_taken_id", got, ErrorCode::AlreadyExists);
    check("create_family_with_taken_id", a.families().await);
    assert_eq!(
        c.families().await,
        carol_families,
        "create_family_with_taken_id"
    );

    // Case: Carol creates a family whose document would be Alice's personal doc.
    let got = c
        .request(Request::CreateFamily {
            family: FamilyId(alice.personal_doc.0),
        })
        .await;
    refused(
        "create_family_over_personal_doc",
        got,
        ErrorCode::AlreadyExists,
    );
    let err = c
        .subscribe_view(alice.personal_doc, 0)
        .await
        .expect_err("still private");
    about_doc(
        "create_family_over_personal_doc: still private",
        &err,
        ErrorCode::Forbidden,
        alice.personal_doc,
        None,
    );
    assert_eq!(
        c.families().await,
        carol_families,
        "create_family_over_personal_doc"
    );

    // Case: a member removes the host.
    let got = b
        .request(Request::RemoveMember {
            family,
            user: alice.user(),
        })
        .await;
    refused("member_removes_host", got, ErrorCode::Forbidden);
    // Case: an outsider removes a member.
    let got = c
        .request(Request::RemoveMember {
            family,
            user: bob.user(),
        })
        .await;
    refused("outsider_removes_member", got, ErrorCode::Forbidden);
    // Case: the host removes themself.
    let got = a
        .request(Request::RemoveMember {
            family,
            user: alice.user(),
        })
        .await;
    refused("host_removes_self", got, ErrorCode::Conflict);
    // Case: the host removes someone who is not a member.
    let got = a
        .request(Request::RemoveMember {
            family,
            user: carol.user(),
        })
        .await;
    refused("remove_non_member", got, ErrorCode::NotFound);
    check("removals", a.families().await);

    // Case: a member deletes the family; an outsider deletes it.
    let delete = Request::DeleteFamily { family };
    refused(
        "member_deletes",
        b.request(delete.clone()).await,
        ErrorCode::Forbidden,
    );
    refused(
        "outsider_deletes",
        c.request(delete).await,
        ErrorCode::Forbidden,
    );
    // Case: the host leaves instead of deleting.
    let got = a.request(Request::LeaveFamily { family }).await;
    refused("host_leaves", got, ErrorCode::Conflict);
    // Case: an outsider leaves a family they are not in.
    let got = c.request(Request::LeaveFamily { family }).await;
    refused("outsider_leaves", got, ErrorCode::Forbidden);
    check("deletes_and_leaves", a.families().await);
    assert_eq!(b.families().await.len(), 1, "Bob is still a member");

    // Case: a member (not the host) invites.
    let got = b
        .request(bob.invite_request(InviteId::random(), family, dave.user()))
        .await;
    refused("member_invites", got, ErrorCode::Forbidden);
    // Case: an outsider invites to a family that is not theirs.
    let got = c
        .request(carol.invite_request(InviteId::random(), family, dave.user()))
        .await;
    refused("outsider_invites", got, ErrorCode::Forbidden);
    // Case: inviting a member.
    let got = a
        .request(alice.invite_request(InviteId::random(), family, bob.user()))
        .await;
    refused("invite_a_member", got, ErrorCode::AlreadyMember);
    // Case: inviting oneself.
    let got = a
        .request(alice.invite_request(InviteId::random(), family, alice.user()))
        .await;
    refused("invite_self", got, ErrorCode::AlreadyMember);
    // Case: inviting a user who does not exist.
    let got = a
        .request(alice.invite_request(InviteId::random(), family, UserId::random()))
        .await;
    refused("invite_unknown_user", got, ErrorCode::NotFound);
    // Case: a card past the limit (8 KiB), and an empty one, however well signed.
    for (case, card) in [
        (
            "invite_card_too_large",
            vec![0xca; MAX_INVITE_CARD_BYTES + 1],
        ),
        ("invite_card_empty", Vec::new()),
    ] {
        let got = a
            .request(alice.invite_request_with_card(InviteId::random(), family, dave.user(), card))
            .await;
        refused(case, got, ErrorCode::InvalidInput);
    }
    // Case: an invite signed by another key (Bob's device key on Alice's frame).
    let mut forger = alice.clone();
    forger.device_key = bob.device_key.clone();
    let got = a
        .request(forger.invite_request(InviteId::random(), family, dave.user()))
        .await;
    refused("invite_forged_signature", got, ErrorCode::BadSignature);
    // Case: a valid signature for another card (the relay, or anyone on the way,
    // handing the invitee a card the inviter did not seal).
    let invite = InviteId::random();
    let Request::SendInvite { signature, .. } =
        alice.invite_request_with_card(invite, family, dave.user(), b"the card sent".to_vec())
    else {
        unreachable!()
    };
    let got = a
        .request(Request::SendInvite {
            invite,
            family,
            invitee: dave.user(),
            card: b"another card".to_vec(),
            signature,
        })
        .await;
    refused(
        "invite_signature_for_other_card",
        got,
        ErrorCode::BadSignature,
    );
    assert_eq!(
        d.invites().await,
        Vec::new(),
        "invites refused: Dave has none"
    );
    assert_eq!(
        a.invites().await,
        Vec::new(),
        "invites refused: Alice sees none"
    );
    d.quiet(1).await; // no InviteReceived slipped through

    // A real invite to Dave.
    let i1 = InviteId::random();
    let sent = a
        .request(alice.invite_request(i1, family, dave.user()))
        .await
        .expect("invite sent");
    let Response::InviteSent(i1_info) = sent else {
        panic!("unexpected {sent:?}")
    };
    let received = d
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.clone()),
            _ => None,
        })
        .await;
    assert_eq!(received, i1_info);
    let pending = vec![i1_info.clone()];

    // Case: inviting the same person twice.
    let got = a
        .request(alice.invite_request(InviteId::random(), family, dave.user()))
        .await;
    refused("invite_twice", got, ErrorCode::AlreadyInvited);
    // Case: reusing an invite id for someone else.
    let got = a
        .request(alice.invite_request(i1, family, erin.user()))
        .await;
    refused("invite_id_reused", got, ErrorCode::AlreadyExists);
    assert_eq!(a.invites().await, pending, "invite_twice: Alice's invites");
    assert_eq!(d.invites().await, pending, "invite_twice: Dave's invites");
    assert_eq!(
        e.invites().await,
        Vec::new(),
        "invite_id_reused: Erin has none"
    );

    // Case: Erin accepts the invite addressed to Dave.
    let got = e.request(erin.answer_request(i1, true)).await;
    refused("accept_someone_elses_invite", got, ErrorCode::Forbidden);
    // Case: Dave answers with a forged signature (signed for reject, sent as accept).
    let Request::AnswerInvite { signature, .. } = dave.answer_request(i1, false) else {
        unreachable!()
    };
    let got = d
        .request(Request::AnswerInvite {
            invite: i1,
            accept: true,
            signature,
        })
        .await;
    refused("answer_forged_signature", got, ErrorCode::BadSignature);
    // Case: Dave answers signed by another device's key.
    let mut dave_forger = dave.clone();
    dave_forger.device_key = erin.device_key.clone();
    let got = d.request(dave_forger.answer_request(i1, true)).await;
    refused("answer_signed_by_another_key", got, ErrorCode::BadSignature);
    // Case: an answer with an all-zero signature.
    let got = d
        .request(Request::AnswerInvite {
            invite: i1,
            accept: true,
            signature: Signature([0; 64]),
        })
        .await;
    refused("answer_zero_signature", got, ErrorCode::BadSignature);
    // Case: answering an invite that does not exist.
    let got = d
        .request(dave.answer_request(InviteId::random(), true))
        .await;
    refused("answer_unknown_invite", got, ErrorCode::NotFound);
    // Case: a member who is neither the sender nor the host withdraws it.
    let got = b.request(Request::WithdrawInvite { invite: i1 }).await;
    refused("member_withdraws", got, ErrorCode::Forbidden);
    // Case: the invitee withdraws it (they reject instead).
    let got = d.request(Request::WithdrawInvite { invite: i1 }).await;
    refused("invitee_withdraws", got, ErrorCode::Forbidden);
    // Case: the host of another family withdraws it.
    let got = c.request(Request::WithdrawInvite { invite: i1 }).await;
    refused("outsider_withdraws", got, ErrorCode::Forbidden);
    assert_eq!(a.invites().await, pending, "answers refused: still pending");
    assert_eq!(
        d.invites().await,
        pending,
        "answers refused: still pending for Dave"
    );
    check("answers refused", a.families().await);

    // Alice withdraws it; Dave is told.
    assert_eq!(
        a.request(Request::WithdrawInvite { invite: i1 }).await,
        Ok(Response::Done)
    );
    let withdrawn = d
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::InviteWithdrawn { invite }) => Some(*invite),
            _ => None,
        })
        .await;
    assert_eq!(withdrawn, i1);
    // Case: answering a withdrawn invite.
    let got = d.request(dave.answer_request(i1, true)).await;
    refused("answer_withdrawn_invite", got, ErrorCode::InviteWithdrawn);
    // Case: withdrawing it again.
    let got = a.request(Request::WithdrawInvite { invite: i1 }).await;
    refused("withdraw_twice", got, ErrorCode::InviteWithdrawn);
    check("answer_withdrawn_invite", a.families().await);
    assert_eq!(
        d.families().await,
        Vec::new(),
        "answer_withdrawn_invite: Dave in none"
    );
    assert_eq!(
        d.invites().await,
        Vec::new(),
        "answer_withdrawn_invite: none pending"
    );

    // A second invite, which Dave rejects.
    let i2 = InviteId::random();
    a.request(alice.invite_request(i2, family, dave.user()))
        .await
        .expect("invite sent");
    let answered = d.request(dave.answer_request(i2, false)).await;
    assert!(
        matches!(answered, Ok(Response::InviteAnswered { ref invite, family: None }) if invite.state == InviteState::Rejected),
        "reject: {answered:?}"
    );
    // Case: answering twice (accepting after rejecting).
    let got = d.request(dave.answer_request(i2, true)).await;
    refused("answer_twice", got, ErrorCode::InviteAnswered);
    // Case: withdrawing an answered invite.
    let got = a.request(Request::WithdrawInvite { invite: i2 }).await;
    refused("withdraw_answered", got, ErrorCode::InviteAnswered);
    check("answer_twice", a.families().await);
    assert_eq!(d.families().await, Vec::new(), "answer_twice: Dave in none");

    // Erin joins.
    join(&mut a, &alice, &mut e, &erin, family).await;
    let snapshot = a.families().await;
    assert_eq!(snapshot[0].members.len(), 3);

    // Case: an outsider lists the family's presence.
    let got = c.request(Request::ListPresence { family }).await;
    refused("outsider_presence", got, ErrorCode::Forbidden);
    // Case: Carol revokes Bob's device.
    let bob_devices = b.devices().await;
    let got = c
        .request(Request::RevokeDevice { device: bob.device })
        .await;
    refused("revoke_another_users_device", got, ErrorCode::NotFound);
    assert_eq!(
        b.devices().await,
        bob_devices,
        "revoke_another_users_device"
    );
    b.quiet(2).await; // Bob's connection is still open and was not told goodbye
    // Case: SetProfile with an invalid nickname.
    let got = c
        .request(Request::SetProfile {
            nickname: "!".into(),
            avatar: None,
        })
        .await;
    refused("set_profile_invalid_nickname", got, ErrorCode::InvalidInput);
    let found = a
        .request(Request::LookupUser {
            email: "carol@example.com".into(),
        })
        .await;
    assert!(
        matches!(found, Ok(Response::UserFound(Some(ref u))) if u.nickname == "carol"),
        "set_profile_invalid_nickname: unchanged ({found:?})"
    );
    // Case: a lookup that is not an email or handle.
    let got = a
        .request(Request::LookupUser {
            email: "a b".into(),
        })
        .await;
    refused("lookup_invalid_email", got, ErrorCode::InvalidInput);
    // Case: a request on a family that does not exist.
    let got = a
        .request(Request::DeleteFamily {
            family: FamilyId::random(),
        })
        .await;
    refused("delete_unknown_family", got, ErrorCode::Forbidden);

    // Everything as it was.
    assert_eq!(a.families().await, snapshot, "end: Alice's families");
    assert_eq!(c.families().await.len(), 1, "end: Carol's family");
    assert_eq!(c.families().await[0].family, other, "end: Carol's family");
    assert_eq!(a.invites().await, Vec::new(), "end: no pending invites");
    assert_relay_works(&server, "families").await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_refusals_and_a_removed_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut carol = Identity::new("carol@example.com", "carol");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let mut c = Client::register(&server, &mut carol).await;
    let family = a.create_family().await;
    join(&mut a, &alice, &mut b, &bob, family).await;
    let other = c.create_family().await;
    let fdoc = DocId::from(family);
    let gdoc = DocId::from(other);
    for bytes in [b"a1".to_vec(), b"a2".to_vec()] {
        a.push_ack(fdoc, bytes).await.expect("ack");
    }
    a.push_ack(alice.personal_doc, b"diary".to_vec())
        .await
        .expect("ack");
    c.push_ack(gdoc, b"c1".to_vec()).await.expect("ack");

    // A reader on a separate connection, for "nothing changed".
    let mut reader = Client::sign_in(&server, &alice).await;
    let family_view = reader.subscribe_view(fdoc, 0).await.expect("readable");
    let diary_view = reader
        .subscribe_view(alice.personal_doc, 0)
        .await
        .expect("readable");
    assert_eq!(family_view.head, 2);
    let mut g_reader = Client::sign_in(&server, &carol).await;
    let g_view = g_reader.subscribe_view(gdoc, 0).await.expect("readable");

    // Case: subscribing to another family's document.
    let err = c.subscribe_view(fdoc, 0).await.expect_err("forbidden");
    about_doc(
        "subscribe_other_family_doc",
        &err,
        ErrorCode::Forbidden,
        fdoc,
        None,
    );
    // Case: subscribing from a later seq does not help.
    let err = c.subscribe_view(fdoc, 1).await.expect_err("forbidden");
    about_doc(
        "subscribe_other_family_doc_since",
        &err,
        ErrorCode::Forbidden,
        fdoc,
        None,
    );

    // Case: pushing to another family's document.
    let err = c
        .push_ack(fdoc, b"carol was here".to_vec())
        .await
        .expect_err("forbidden");
    about_doc(
        "push_other_family_doc",
        &err,
        ErrorCode::Forbidden,
        fdoc,
        Some(ChunkId::of(b"carol was here")),
    );

    // Case: a subscription list mixing a readable and a forbidden document: the
    // forbidden one is refused, the other proceeds.
    c.send(&ClientFrame::Subscribe {
        docs: vec![
            Subscription {
                doc: fdoc,
                since: 0,
            },
            Subscription {
                doc: gdoc,
                since: 0,
            },
        ],
    })
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match c.next_relevant().await {
            ServerFrame::Error(e) => {
                about_doc("subscribe_mixed", &e, ErrorCode::Forbidden, fdoc, None);
                seen.push("error");
            }
            ServerFrame::Chunk { doc, .. } => assert_eq!(doc, gdoc, "subscribe_mixed: chunk"),
            ServerFrame::CaughtUp { doc, seq } => {
                assert_eq!((doc, seq), (gdoc, 1), "subscribe_mixed: caught up");
                seen.push("caught up");
            }
            other => panic!("subscribe_mixed: unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["error", "caught up"], "subscribe_mixed: in order");

    // Case: subscribing to / pushing to a document that does not exist.
    let nowhere = DocId::random();
    let err = c.subscribe_view(nowhere, 0).await.expect_err("not found");
    about_doc(
        "subscribe_unknown_doc",
        &err,
        ErrorCode::NotFound,
        nowhere,
        None,
    );
    let err = c
        .push_ack(nowhere, b"void".to_vec())
        .await
        .expect_err("not found");
    about_doc(
        "push_unknown_doc",
        &err,
        ErrorCode::NotFound,
        nowhere,
        Some(ChunkId::of(b"void")),
    );
    // It still does not exist (the push did not create it).
    let err = a.subscribe_view(nowhere, 0).await.expect_err("not found");
    about_doc(
        "push_unknown_doc: not created",
        &err,
        ErrorCode::NotFound,
        nowhere,
        None,
    );

    // Case: a stranger subscribes to Alice's personal document.
    let err = c
        .subscribe_view(alice.personal_doc, 0)
        .await
        .expect_err("forbidden");
    about_doc(
        "subscribe_strangers_personal_doc",
        &err,
        ErrorCode::Forbidden,
        alice.personal_doc,
        None,
    );
    // Case: a co-member (who may read it) pushes to Alice's personal document.
    let bob_reads = b
        .subscribe_view(alice.personal_doc, 0)
        .await
        .expect("a co-member reads the personal doc");
    assert_eq!(bob_reads, diary_view);
    let err = b
        .push_ack(alice.personal_doc, b"bob edits".to_vec())
        .await
        .expect_err("forbidden");
    about_doc(
        "push_co_members_personal_doc",
        &err,
        ErrorCode::Forbidden,
        alice.personal_doc,
        Some(ChunkId::of(b"bob edits")),
    );

    // Case: a Push whose chunk id does not match its bytes.
    let claimed = ChunkId::of(b"what I claim");
    a.send(&ClientFrame::Push {
        doc: fdoc,
        chunk: claimed,
        bytes: b"what I send".to_vec(),
    })
    .await;
    about_doc(
        "push_hash_mismatch",
        &a.refusal().await,
        ErrorCode::HashMismatch,
        fdoc,
        Some(claimed),
    );
    // Case: a chunk one byte past MAX_CHUNK_BYTES.
    let big = vec![7u8; MAX_CHUNK_BYTES + 1];
    let big_id = ChunkId::of(&big);
    a.send(&ClientFrame::push(fdoc, big)).await;
    about_doc(
        "push_oversize_chunk",
        &a.refusal().await,
        ErrorCode::TooLarge,
        fdoc,
        Some(big_id),
    );
    // Case: an empty chunk.
    a.send(&ClientFrame::push(fdoc, Vec::new())).await;
    about_doc(
        "push_empty_chunk",
        &a.refusal().await,
        ErrorCode::InvalidInput,
        fdoc,
        Some(ChunkId::of(b"")),
    );
    // Case: too many subscriptions in one frame.
    let docs = (0..=MAX_SUBSCRIPTIONS_PER_FRAME)
        .map(|_| Subscription {
            doc: DocId::random(),
            since: 0,
        })
        .collect();
    a.send(&ClientFrame::Subscribe { docs }).await;
    untied(
        "subscribe_too_many",
        &a.refusal().await,
        ErrorCode::InvalidInput,
    );

    // Snapshots. Alice uploads a snapshot blob to her family, Carol one to hers.
    let snap = b"alice's snapshot".to_vec();
    let snap_hash = BlobHash::of(&snap);
    assert_eq!(
        put_blob(&server, &alice, &snap_hash, family, &snap)
            .await
            .status,
        201
    );
    let carol_snap = b"carol's snapshot".to_vec();
    let carol_hash = BlobHash::of(&carol_snap);
    assert_eq!(
        put_blob(&server, &carol, &carol_hash, other, &carol_snap)
            .await
            .status,
        201
    );
    let snapshot_frame = |doc, covers_seq, blob, len| ClientFrame::PushSnapshot {
        doc,
        covers_seq,
        blob,
        len,
    };
    let len = snap.len() as u64;

    // Case: a snapshot past the head.
    a.send(&snapshot_frame(fdoc, 5, snap_hash, len)).await;
    about_doc(
        "snapshot_past_head",
        &a.refusal().await,
        ErrorCode::Conflict,
        fdoc,
        None,
    );
    // Case: a snapshot of a blob never uploaded.
    a.send(&snapshot_frame(
        fdoc,
        1,
        BlobHash::of(b"never uploaded"),
        14,
    ))
    .await;
    about_doc(
        "snapshot_missing_blob",
        &a.refusal().await,
        ErrorCode::NotFound,
        fdoc,
        None,
    );
    // Case: a snapshot whose len is not the blob's size.
    a.send(&snapshot_frame(fdoc, 1, snap_hash, len + 1)).await;
    about_doc(
        "snapshot_wrong_len",
        &a.refusal().await,
        ErrorCode::InvalidInput,
        fdoc,
        None,
    );
    // Case: a snapshot covering seq 0.
    a.send(&snapshot_frame(fdoc, 0, snap_hash, len)).await;
    about_doc(
        "snapshot_covers_zero",
        &a.refusal().await,
        ErrorCode::InvalidInput,
        fdoc,
        None,
    );
    // Case: a snapshot naming another family's blob (known by hash only).
    a.send(&snapshot_frame(
        fdoc,
        1,
        carol_hash,
        carol_snap.len() as u64,
    ))
    .await;
    about_doc(
        "snapshot_foreign_blob",
        &a.refusal().await,
        ErrorCode::NotFound,
        fdoc,
        None,
    );
    assert_eq!(
        get_blob(&server, &alice, &carol_hash).await.status,
        404,
        "snapshot_foreign_blob: no grant earned"
    );
    // Case: a snapshot for another family's document (with Carol's own blob).
    c.send(&snapshot_frame(
        fdoc,
        1,
        carol_hash,
        carol_snap.len() as u64,
    ))
    .await;
    about_doc(
        "snapshot_other_family",
        &c.refusal().await,
        ErrorCode::Forbidden,
        fdoc,
        None,
    );
    assert_eq!(
        get_blob(&server, &bob, &carol_hash).await.status,
        404,
        "snapshot_other_family: no grant to the family"
    );
    // Case: a co-member snapshots Alice's personal document.
    b.send(&snapshot_frame(alice.personal_doc, 1, snap_hash, len))
        .await;
    about_doc(
        "snapshot_co_members_personal_doc",
        &b.refusal().await,
        ErrorCode::Forbidden,
        alice.personal_doc,
        None,
    );

    // Nothing changed: no snapshot, the same chunks, and the doc readers got
    // nothing live.
    let mut check = Client::sign_in(&server, &alice).await;
    assert_eq!(
        check.subscribe_view(fdoc, 0).await.as_ref(),
        Ok(&family_view),
        "family doc"
    );
    assert_eq!(
        check.subscribe_view(alice.personal_doc, 0).await.as_ref(),
        Ok(&diary_view),
        "personal doc"
    );
    let mut check_g = Client::sign_in(&server, &carol).await;
    assert_eq!(
        check_g.subscribe_view(gdoc, 0).await.as_ref(),
        Ok(&g_view),
        "Carol's doc"
    );
    reader.quiet(3).await;
    g_reader.quiet(4).await;

    // A removed member reading on. Bob is subscribed live; a family blob exists.
    let photo = b"family photo".to_vec();
    let photo_hash = BlobHash::of(&photo);
    assert_eq!(
        put_blob(&server, &alice, &photo_hash, family, &photo)
            .await
            .status,
        201
    );
    assert_eq!(
        get_blob(&server, &bob, &photo_hash).await.status,
        200,
        "Bob reads it"
    );
    let live = b
        .subscribe_view(fdoc, 0)
        .await
        .expect("Bob reads the family doc");
    assert_eq!(live, family_view);
    assert_eq!(
        a.request(Request::RemoveMember {
            family,
            user: bob.user(),
        })
        .await,
        Ok(Response::Done)
    );
    // Case: the live subscription ends with a typed error after the event.
    let change = b
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::MembershipChanged { change, .. }) => Some(*change),
            _ => None,
        })
        .await;
    assert_eq!(
        change,
        MembershipChange::Removed {
            user: bob.user(),
            by: alice.user()
        }
    );
    // Bob was subscribed to the family doc and to Alice's personal doc (readable
    // only through the family): both end, in either order.
    let mut ended = Vec::new();
    for _ in 0..2 {
        let e = b.refusal().await;
        let doc = e
            .doc
            .expect("removed_live_subscription_ends: tied to a doc");
        about_doc(
            "removed_live_subscription_ends",
            &e,
            ErrorCode::Forbidden,
            doc,
            None,
        );
        ended.push(doc);
    }
    ended.sort_by_key(|d| d.0);
    let mut expected = vec![fdoc, alice.personal_doc];
    expected.sort_by_key(|d| d.0);
    assert_eq!(ended, expected, "removed_live_subscription_ends: both docs");
    // Case: later chunks do not reach the removed member.
    let seq = a.push_ack(fdoc, b"after bob".to_vec()).await.expect("ack");
    assert_eq!(seq, 3);
    b.quiet(5).await;
    // Case: the removed member subscribes again.
    let err = b.subscribe_view(fdoc, 2).await.expect_err("forbidden");
    about_doc(
        "removed_member_resubscribes",
        &err,
        ErrorCode::Forbidden,
        fdoc,
        None,
    );
    // Case: the removed member pushes.
    let err = b
        .push_ack(fdoc, b"still here".to_vec())
        .await
        .expect_err("forbidden");
    about_doc(
        "removed_member_pushes",
        &err,
        ErrorCode::Forbidden,
        fdoc,
        Some(ChunkId::of(b"still here")),
    );
    // Case: the removed member fetches the family's blob.
    let r = get_blob(&server, &bob, &photo_hash).await;
    http_refused("removed_member_fetches_blob", &r, 404, ErrorCode::NotFound);
    // Case: the removed member reads the former co-member's personal doc.
    let err = b
        .subscribe_view(alice.personal_doc, 0)
        .await
        .expect_err("forbidden");
    about_doc(
        "removed_member_reads_personal_doc",
        &err,
        ErrorCode::Forbidden,
        alice.personal_doc,
        None,
    );
    // Case: the removed member's requests on the family.
    let got = b.request(Request::ListPresence { family }).await;
    refused("removed_member_presence", got, ErrorCode::Forbidden);
    let got = b.request(Request::LeaveFamily { family }).await;
    refused("removed_member_leaves", got, ErrorCode::Forbidden);
    let mut check = Client::sign_in(&server, &alice).await;
    let view = check.subscribe_view(fdoc, 0).await.expect("readable");
    assert_eq!(
        view.head, 3,
        "removed member: the log has Alice's chunk only"
    );
    assert_eq!(
        view.chunks.last().map(|c| c.1.as_slice()),
        Some(&b"after bob"[..])
    );
    assert_eq!(check.families().await[0].members.len(), 1, "Bob is gone");

    // Case: writing to a deleted family's document.
    assert_eq!(
        c.request(Request::DeleteFamily { family: other }).await,
        Ok(Response::Done)
    );
    let err = c.push_ack(gdoc, b"ghost".to_vec()).await;
    let err = err.expect_err("deleted");
    about_doc(
        "push_deleted_family_doc",
        &err,
        ErrorCode::NotFound,
        gdoc,
        Some(ChunkId::of(b"ghost")),
    );
    let err = c.subscribe_view(gdoc, 0).await.expect_err("deleted");
    about_doc(
        "subscribe_deleted_family_doc",
        &err,
        ErrorCode::NotFound,
        gdoc,
        None,
    );
    let r = get_blob(&server, &carol, &carol_hash).await;
    http_refused("deleted_family_blob", &r, 404, ErrorCode::NotFound);

    assert_relay_works(&server, "documents").await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_http_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &["--max-blob-bytes", "1000", "--family-quota-bytes", "1500"],
    );
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let fa = a.create_family().await;
    let fb = b.create_family().await;
    let photo: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    let hash = BlobHash::of(&photo);
    assert_eq!(
        put_blob(&server, &alice, &hash, fa, &photo).await.status,
        201
    );
    let get = format!("/blobs/{hash}");

    // Case: another family's blob, by hash (GET, HEAD and a Range).
    let r = get_blob(&server, &bob, &hash).await;
    http_refused("fetch_other_family_blob", &r, 404, ErrorCode::NotFound);
    let r = signed_http(&server, &bob, "HEAD", &get, b"").await;
    assert_eq!(r.status, 404, "head_other_family_blob");
    let mut headers = signed_headers(&bob, "GET", &get);
    headers.push(("range".into(), "bytes=0-9".into()));
    let r = http(&server, "GET", &get, &headers, b"").await;
    http_refused("range_other_family_blob", &r, 404, ErrorCode::NotFound);

    // Case: uploading other bytes under the blob's hash (into one's own family).
    let r = put_blob(&server, &bob, &hash, fb, b"not the photo").await;
    http_refused("upload_mismatched_bytes", &r, 400, ErrorCode::HashMismatch);
    assert_original(&server, &alice, &hash, &photo, "upload_mismatched_bytes").await;
    let r = get_blob(&server, &bob, &hash).await;
    http_refused(
        "upload_mismatched_bytes: no grant",
        &r,
        404,
        ErrorCode::NotFound,
    );
    // Case: the same bytes one byte short (a prefix of the real blob).
    let r = put_blob(&server, &bob, &hash, fb, &photo[..599]).await;
    http_refused("upload_truncated_bytes", &r, 400, ErrorCode::HashMismatch);
    assert_original(&server, &alice, &hash, &photo, "upload_truncated_bytes").await;

    // Case: uploading into another family.
    let r = put_blob(&server, &bob, &hash, fa, &photo).await;
    http_refused("upload_into_other_family", &r, 403, ErrorCode::Forbidden);
    let r = get_blob(&server, &bob, &hash).await;
    http_refused(
        "upload_into_other_family: no grant",
        &r,
        404,
        ErrorCode::NotFound,
    );
    // Case: uploading into a family that does not exist.
    let r = put_blob(&server, &bob, &hash, FamilyId::random(), &photo).await;
    http_refused("upload_into_unknown_family", &r, 403, ErrorCode::Forbidden);
    // Case: uploading without saying which family.
    let path = format!("/blobs/{hash}");
    let r = signed_http(&server, &bob, "PUT", &path, &photo).await;
    http_refused("upload_without_family", &r, 400, ErrorCode::InvalidInput);
    // Case: a malformed hash.
    let path = "/blobs/not-a-hash";
    let r = signed_http(&server, &alice, "GET", path, b"").await;
    http_refused("malformed_hash", &r, 400, ErrorCode::InvalidInput);

    // Case: a blob past the size limit.
    let big = vec![1u8; 1001];
    let big_hash = BlobHash::of(&big);
    let r = put_blob(&server, &alice, &big_hash, fa, &big).await;
    http_refused("upload_oversize", &r, 413, ErrorCode::TooLarge);
    let r = get_blob(&server, &alice, &big_hash).await;
    http_refused("upload_oversize: not stored", &r, 404, ErrorCode::NotFound);
    // Case: a blob past the family's quota (600 used, 1000 more > 1500).
    let fits = vec![2u8; 1000];
    let fits_hash = BlobHash::of(&fits);
    let r = put_blob(&server, &alice, &fits_hash, fa, &fits).await;
    http_refused("upload_past_quota", &r, 507, ErrorCode::QuotaExceeded);
    let r = get_blob(&server, &alice, &fits_hash).await;
    http_refused(
        "upload_past_quota: not stored",
        &r,
        404,
        ErrorCode::NotFound,
    );
    // Case: new bytes that do not match their (new) hash: nothing stored.
    let claimed = BlobHash::of(b"claimed");
    let r = put_blob(&server, &alice, &claimed, fa, b"different").await;
    http_refused("upload_new_hash_mismatch", &r, 400, ErrorCode::HashMismatch);
    let r = get_blob(&server, &alice, &claimed).await;
    http_refused(
        "upload_new_hash_mismatch: not stored",
        &r,
        404,
        ErrorCode::NotFound,
    );

    // Case: unsigned.
    let r = http(&server, "GET", &get, &[], b"").await;
    http_refused("unsigned_request", &r, 401, ErrorCode::NotSignedIn);
    // Case: a malformed signature header.
    let mut headers = signed_headers(&alice, "GET", &get);
    headers[2].1 = "abcd".into();
    let r = http(&server, "GET", &get, &headers, b"").await;
    http_refused(
        "malformed_signature_header",
        &r,
        401,
        ErrorCode::NotSignedIn,
    );
    // Case: a replayed request.
    let once = signed_headers(&alice, "GET", &get);
    assert_eq!(http(&server, "GET", &get, &once, b"").await.status, 200);
    let r = http(&server, "GET", &get, &once, b"").await;
    http_refused("replayed_request", &r, 401, ErrorCode::ChallengeReplayed);
    // Case: a stale request time (10 minutes ago; the window is 5).
    let stale = signed_headers_at(&alice, "GET", &get, now_ms() - 600_000);
    let r = http(&server, "GET", &get, &stale, b"").await;
    http_refused("stale_request_time", &r, 401, ErrorCode::ChallengeExpired);
    // Case: a request time in the future.
    let future = signed_headers_at(&alice, "GET", &get, now_ms() + 600_000);
    let r = http(&server, "GET", &get, &future, b"").await;
    http_refused("future_request_time", &r, 401, ErrorCode::ChallengeExpired);
    // Case: Alice's device id, Bob's key.
    let mut impostor = alice.clone();
    impostor.device_key = bob.device_key.clone();
    let r = signed_http(&server, &impostor, "GET", &get, b"").await;
    http_refused("http_another_key", &r, 401, ErrorCode::BadSignature);
    // Case: a signature for another path.
    let other_path = format!("/blobs/{}", BlobHash::of(b"other"));
    let r = http(
        &server,
        "GET",
        &get,
        &signed_headers(&alice, "GET", &other_path),
        b"",
    )
    .await;
    http_refused(
        "http_signature_for_other_path",
        &r,
        401,
        ErrorCode::BadSignature,
    );
    // Case: a GET signature used for a PUT.
    let put = format!("/blobs/{hash}?family={fb}");
    let r = http(
        &server,
        "PUT",
        &put,
        &signed_headers(&bob, "GET", &put),
        &photo,
    )
    .await;
    http_refused(
        "http_signature_for_other_method",
        &r,
        401,
        ErrorCode::BadSignature,
    );
    // Case: a signature for another family in the query (Bob signs B, sends A).
    let signed_for_b = signed_headers(&bob, "PUT", &put);
    let put_a = format!("/blobs/{hash}?family={fa}");
    let r = http(&server, "PUT", &put_a, &signed_for_b, &photo).await;
    http_refused(
        "http_signature_for_other_query",
        &r,
        401,
        ErrorCode::BadSignature,
    );
    // Case: an unknown device: refused like a bad signature (the relay says nothing
    // about which device ids exist).
    let mut ghost = alice.clone();
    ghost.device = DeviceId::random();
    let r = signed_http(&server, &ghost, "GET", &get, b"").await;
    http_refused("http_unknown_device", &r, 401, ErrorCode::BadSignature);

    // Case: naming another family's blob as one's avatar does not make it readable.
    let got = b
        .request(Request::SetProfile {
            nickname: "bob_kim".into(),
            avatar: Some(hash),
        })
        .await;
    assert_eq!(
        got,
        Ok(Response::Done),
        "avatar_names_foreign_blob: accepted"
    );
    let r = get_blob(&server, &bob, &hash).await;
    http_refused("avatar_names_foreign_blob", &r, 404, ErrorCode::NotFound);

    // Case: an oversize blob sent chunked (no Content-Length): cut off as it
    // streams in, nothing stored.
    let big_chunked = vec![3u8; 1200];
    let big_chunked_hash = BlobHash::of(&big_chunked);
    let path = format!("/blobs/{big_chunked_hash}?family={fa}");
    let r = http_chunked(
        &server,
        "PUT",
        &path,
        &signed_headers(&alice, "PUT", &path),
        &big_chunked,
        300,
    )
    .await;
    http_refused("upload_oversize_chunked", &r, 413, ErrorCode::TooLarge);
    let r = get_blob(&server, &alice, &big_chunked_hash).await;
    http_refused(
        "upload_oversize_chunked: not stored",
        &r,
        404,
        ErrorCode::NotFound,
    );
    // Case: past the quota, chunked (fits the size limit, not the quota).
    let path = format!("/blobs/{fits_hash}?family={fa}");
    let r = http_chunked(
        &server,
        "PUT",
        &path,
        &signed_headers(&alice, "PUT", &path),
        &fits,
        300,
    )
    .await;
    http_refused(
        "upload_past_quota_chunked",
        &r,
        507,
        ErrorCode::QuotaExceeded,
    );
    let r = get_blob(&server, &alice, &fits_hash).await;
    http_refused(
        "upload_past_quota_chunked: not stored",
        &r,
        404,
        ErrorCode::NotFound,
    );

    // Nothing changed: the original is intact, Bob has no grant, only the one
    // upload was counted.
    assert_original(&server, &alice, &hash, &photo, "end").await;
    let r = get_blob(&server, &bob, &hash).await;
    http_refused("end: Bob", &r, 404, ErrorCode::NotFound);
    let r = http(&server, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("doran_blob_bytes_in_total 600"), "{text}");
    // Bob uploading the real bytes to his own family is how he earns a grant.
    assert_eq!(put_blob(&server, &bob, &hash, fb, &photo).await.status, 201);
    assert_eq!(get_blob(&server, &bob, &hash).await.body, photo);
    drop((a, b));
    assert_relay_works(&server, "blobs").await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_are_limited_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"limits": {"frames_per_second": 1, "frame_burst": 40, "rate_limit_strikes": 5,
        "lookups_per_minute_per_account": 3, "lookups_per_minute_per_address": 7}}"#;
    let server = Server::start_with_config(dir.path(), config, &[]);
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let lookup = |email: &str| Request::LookupUser {
        email: email.into(),
    };

    // Case: a lookup flood past the per-account limit (3 a minute).
    for i in 0..3 {
        let got = a.request(lookup("bob@example.com")).await;
        assert!(
            matches!(got, Ok(Response::UserFound(Some(ref u))) if u.user == bob.user()),
            "lookup {i}: {got:?}"
        );
    }
    let e = refused(
        "lookup_flood_account",
        a.request(lookup("bob@example.com")).await,
        ErrorCode::RateLimited,
    );
    assert!(
        e.retry_after_ms.is_some(),
        "lookup_flood_account: retry after"
    );
    // Case: past the per-address limit (7 a minute; 6 used: the two registrations
    // take one each, as an "already exists" answers a lookup), from another account.
    let got = b.request(lookup("alice@example.com")).await;
    assert!(matches!(got, Ok(Response::UserFound(Some(_)))), "{got:?}");
    let e = refused(
        "lookup_flood_address",
        b.request(lookup("alice@example.com")).await,
        ErrorCode::RateLimited,
    );
    assert!(
        e.retry_after_ms.is_some(),
        "lookup_flood_address: retry after"
    );
    // Other requests are not limited.
    assert_eq!(
        b.families().await,
        Vec::new(),
        "lookup floods: other requests work"
    );

    // Case: a frame flood past the rate limit: pushes are acked within the burst,
    // then refused (tied to their doc and chunk) and the connection is closed.
    let family = a.create_family().await;
    let doc = DocId::from(family);
    let mut f = Client::sign_in(&server, &alice).await;
    // In lockstep (each push waits for its answer), so the client never writes to
    // a socket the relay has closed and the goodbye is always read.
    let mut acked = Vec::new();
    let mut limited = Vec::new();
    let mut i = 0;
    let reason = 'flood: loop {
        assert!(i < 1000, "frame_flood: never closed");
        let bytes = format!("flood {i}").into_bytes();
        i += 1;
        f.send(&ClientFrame::push(doc, bytes)).await;
        loop {
            match f.next().await {
                Some(ServerFrame::Ack { chunk, seq, .. }) => {
                    acked.push((seq, chunk));
                    break;
                }
                Some(ServerFrame::Error(e)) => {
                    assert_eq!(e.code, ErrorCode::RateLimited, "frame_flood: {e:?}");
                    assert_eq!(e.doc, Some(doc), "frame_flood: tied to the doc");
                    assert!(e.retry_after_ms.is_some(), "frame_flood: retry after");
                    limited.push(e.chunk.expect("frame_flood: tied to the chunk"));
                    break;
                }
                Some(ServerFrame::Goodbye { reason, .. }) => break 'flood reason,
                Some(ServerFrame::Event(_)) => {}
                Some(other) => panic!("frame_flood: unexpected {other:?}"),
                None => panic!("frame_flood: closed without a goodbye"),
            }
        }
    };
    assert_eq!(
        reason,
        ErrorCode::RateLimited,
        "frame_flood: goodbye reason"
    );
    assert!(!acked.is_empty(), "frame_flood: the burst was served");
    assert!(
        limited.len() >= 5,
        "frame_flood: refusals before the goodbye"
    );
    // The log holds exactly the acked chunks, none of the refused ones.
    let mut reader = Client::sign_in(&server, &alice).await;
    let view = reader.subscribe_view(doc, 0).await.expect("readable");
    let logged: Vec<(u64, ChunkId)> = view
        .chunks
        .iter()
        .map(|(seq, bytes)| (*seq, ChunkId::of(bytes)))
        .collect();
    assert_eq!(logged, acked, "frame_flood: the log is what was acked");
    assert!(
        limited.iter().all(|c| !logged.iter().any(|(_, l)| l == c)),
        "frame_flood: no refused chunk was stored"
    );
    // Alice's other connection was not affected.
    a.quiet(9).await;

    // Case: a flood of text messages (not frames) is limited like frames: each is
    // refused as malformed within the burst, then rate limited, then closed.
    let mut t = Client::connect(&server).await;
    let (mut malformed, mut limited, mut n) = (0, 0, 0);
    let reason = loop {
        assert!(n < 1000, "text_flood: never closed");
        n += 1;
        t.send_text(&format!("flood {n}")).await;
        match t.next().await {
            Some(ServerFrame::Error(e)) if e.code == ErrorCode::MalformedFrame => malformed += 1,
            Some(ServerFrame::Error(e)) => {
                untied("text_flood", &e, ErrorCode::RateLimited);
                assert!(e.retry_after_ms.is_some(), "text_flood: retry after");
                limited += 1;
            }
            Some(ServerFrame::Goodbye { reason, .. }) => break reason,
            other => panic!("text_flood: unexpected {other:?}"),
        }
    };
    assert_eq!(reason, ErrorCode::RateLimited, "text_flood: goodbye reason");
    assert!(malformed > 0, "text_flood: the burst was answered");
    assert!(limited >= 5, "text_flood: refusals before the goodbye");

    // Case: a flood of websocket pings is limited the same way.
    // Lockstep on the websocket pong, which the relay's websocket layer sends for
    // every ping it reads; a refusal's error frame follows its pong.
    let mut p = Client::connect(&server).await;
    let (mut malformed, mut limited, mut n) = (0, 0, 0);
    let reason = 'flood: loop {
        assert!(n < 1000, "ws_ping_flood: never closed");
        n += 1;
        assert!(p.try_send_ws_ping().await, "ws_ping_flood: send");
        loop {
            match p.next_or_pong().await {
                Some(None) => break,
                Some(Some(ServerFrame::Error(e))) if e.code == ErrorCode::MalformedFrame => {
                    malformed += 1;
                }
                Some(Some(ServerFrame::Error(e))) => {
                    untied("ws_ping_flood", &e, ErrorCode::RateLimited);
                    limited += 1;
                }
                Some(Some(ServerFrame::Goodbye { reason, .. })) => break 'flood reason,
                other => panic!("ws_ping_flood: unexpected {other:?}"),
            }
        }
    };
    assert_eq!(
        reason,
        ErrorCode::RateLimited,
        "ws_ping_flood: goodbye reason"
    );
    assert_eq!(
        malformed, 0,
        "ws_ping_flood: pings are not malformed frames"
    );
    assert!(limited >= 5, "ws_ping_flood: refusals before the goodbye");
    a.quiet(10).await;
    drop(b);

    // This address used its lookups, so it cannot probe emails by registering either
    // (an "already exists" answers a lookup); its users still sign in and work.
    let carol = Identity::new("carol@example.com", "carol");
    let mut c = Client::connect(&server).await;
    let challenge = c.hello().await;
    c.send(&carol.register_frame(&challenge)).await;
    assert_eq!(
        c.refusal().await.code,
        ErrorCode::RateLimited,
        "register_after_flood"
    );
    let mut again = Client::sign_in(&server, &bob).await;
    assert!(again.families().await.is_empty(), "floods: bob still works");
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_challenge_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Challenges that expire the moment they are issued: no sleeping needed.
    let mut server =
        Server::start_with_config(dir.path(), r#"{"limits": {"challenge_ttl_secs": 0}}"#, &[]);
    let mut alice = Identity::new("alice@example.com", "alice");

    // Case: answering an expired challenge.
    let (mut c, e) = answer_refused(&server, |ch| alice.register_frame(ch)).await;
    untied("expired_challenge", &e, ErrorCode::ChallengeExpired);
    // Case: answering it again after that.
    let ch = Challenge {
        protocol_version: PROTOCOL_VERSION,
        nonce: [1; 32],
        server_id: "test-relay".into(),
        expires_at: u64::MAX,
    };
    c.send(&alice.register_frame(&ch)).await;
    untied(
        "expired_challenge_again",
        &c.refusal().await,
        ErrorCode::ChallengeReplayed,
    );
    drop(c);

    // Nothing was stored: on the same data dir with the default challenge life,
    // the same email registers.
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success(), "{status:?}");
    let server = Server::start(dir.path());
    drop(Client::register(&server, &mut alice).await);
    assert_relay_works(&server, "expired_challenge").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_invite_cannot_be_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Invites live one second; the test waits for the relay's clock (this
    // machine's) to pass the invite's `expires_at`: the condition under test, not a
    // stand-in for synchronisation.
    let server =
        Server::start_with_config(dir.path(), r#"{"limits": {"invite_ttl_secs": 1}}"#, &[]);
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let family = a.create_family().await;
    let invite = InviteId::random();
    let sent = a
        .request(alice.invite_request(invite, family, bob.user()))
        .await
        .expect("invite sent");
    let Response::InviteSent(info) = sent else {
        panic!("unexpected {sent:?}")
    };
    let families = a.families().await;
    let wait = info.expires_at.saturating_sub(now_ms()) + 5;
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;

    // Case: answering an expired invite.
    let got = b.request(bob.answer_request(invite, true)).await;
    refused("answer_expired_invite", got, ErrorCode::InviteExpired);
    // Case: withdrawing an expired invite.
    let got = a.request(Request::WithdrawInvite { invite }).await;
    refused("withdraw_expired_invite", got, ErrorCode::InviteExpired);
    assert_eq!(
        a.families().await,
        families,
        "expired invite: membership unchanged"
    );
    assert_eq!(
        b.families().await,
        Vec::new(),
        "expired invite: Bob joined nothing"
    );
    assert_eq!(b.invites().await, Vec::new(), "expired invite: not pending");
    // A new invite is not refused as a duplicate of the expired one.
    let again = InviteId::random();
    a.request(alice.invite_request(again, family, bob.user()))
        .await
        .expect("a new invite after expiry");
    assert_relay_works(&server, "expired_invite").await;
}

// ---------------------------------------------------------------------------

/// Opens a websocket; the relay's refusal of the upgrade as `(status, x-doran-error)`.
async fn ws_refusal(server: &Server) -> Option<(u16, Option<String>)> {
    use tokio_tungstenite::tungstenite::Error;
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Ok(_) => None,
        Err(Error::Http(r)) => Some((
            r.status().as_u16(),
            r.headers()
                .get("x-doran-error")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        )),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_one_address_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--max-connections-per-ip", "3"]);
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let mut extra = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(&server).await;
        c.hello().await; // the upgrade went through and the session runs
        extra.push(c);
    }

    // Case: a fourth connection from the same address.
    let refusal = ws_refusal(&server).await;
    assert_eq!(
        refusal,
        Some((429, Some(ErrorCode::RateLimited.code().to_string()))),
        "connection_flood"
    );
    // The connections already open are unaffected.
    a.quiet(1).await;
    assert_eq!(
        a.families().await,
        Vec::new(),
        "connection_flood: Alice's connection"
    );

    // Once the extra connections close their slots are freed (no leak): a new one
    // is accepted within the timeout. (The relay frees a slot when it notices the
    // close; there is no frame to wait for, so this retries the refused upgrade.)
    drop(extra);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match ws_refusal(&server).await {
            None => break,
            Some((429, _)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => panic!("connection_flood: slots not freed ({other:?})"),
        }
    }
    drop(a);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    // Two connections at once for the normal client (plus the one just made).
    loop {
        let first = tokio_tungstenite::connect_async(server.ws_url()).await;
        let second = tokio_tungstenite::connect_async(server.ws_url()).await;
        let third = tokio_tungstenite::connect_async(server.ws_url()).await;
        if first.is_ok() && second.is_ok() && third.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection_flood: slots not freed"
        );
        drop((first, second, third));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Snapshots: a member cannot wipe the relay's copy of the family.

/// Pushes a snapshot reference and waits for `SnapshotAccepted` (it is then
/// pending) or the refusal.
async fn push_snapshot(
    c: &mut Client,
    doc: DocId,
    covers_seq: u64,
    blob: BlobHash,
    len: u64,
) -> Result<(), ErrorFrame> {
    c.send(&ClientFrame::PushSnapshot {
        doc,
        covers_seq,
        blob,
        len,
    })
    .await;
    c.until(|f| match f {
        ServerFrame::SnapshotAccepted { doc: d, .. } if *d == doc => Some(Ok(())),
        ServerFrame::Error(e) if e.doc == Some(doc) => Some(Err(e.clone())),
        _ => None,
    })
    .await
}

fn confirm(doc: DocId, covers_seq: u64, blob: BlobHash) -> Request {
    Request::ConfirmSnapshot {
        doc,
        covers_seq,
        blob,
    }
}

/// Every snapshot offered is downloaded and checked by every member's device: a
/// member replacing their own pending snapshot in a loop would drain the family's
/// data and batteries. The relay holds such a replacement back for
/// `snapshot_replace_secs`; the same snapshot again, and another member's, are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_replace_their_own_pending_snapshot_in_a_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let family = a.create_family().await;
    join(&mut a, &alice, &mut b, &bob, family).await;
    let fdoc = DocId::from(family);
    for i in 1..=3u8 {
        b.push_ack(fdoc, vec![b'b', i]).await.expect("a chunk");
    }
    let upload = |who, bytes: &'static [u8]| {
        let server = &server;
        async move {
            let hash = BlobHash::of(bytes);
            let put = put_blob(server, who, &hash, family, bytes).await;
            assert_eq!(put.status, 201, "uploaded");
            (hash, bytes.len() as u64)
        }
    };
    let (first, first_len) = upload(&bob, b"bob's first snapshot").await;
    let (second, second_len) = upload(&bob, b"bob's second snapshot").await;
    let (hers, hers_len) = upload(&alice, b"alice's snapshot").await;

    push_snapshot(&mut b, fdoc, 2, first, first_len)
        .await
        .expect("the first is taken as pending");
    // Case: Bob replaces it at once, with another blob or another seq.
    for (covers_seq, blob, len) in [(3, second, second_len), (3, first, first_len)] {
        let e = push_snapshot(&mut b, fdoc, covers_seq, blob, len)
            .await
            .expect_err("replace_own_at_once: held back");
        assert_eq!(e.code, ErrorCode::RateLimited, "replace_own_at_once: {e:?}");
        let wait = e.retry_after_ms.expect("replace_own_at_once: says when");
        assert!(wait > 0 && wait <= 60_000, "replace_own_at_once: {wait} ms");
    }
    // Case: the same snapshot again is no new offer: taken as it is.
    push_snapshot(&mut b, fdoc, 2, first, first_len)
        .await
        .expect("same_again: accepted");
    // Case: Alice's device offering its own snapshot is not held back by Bob's.
    push_snapshot(&mut a, fdoc, 3, hers, hers_len)
        .await
        .expect("another_member: accepted");
    // Alice's replaced it: the pending one now is hers, so confirming Bob's fails
    // and Alice's is the one Bob's device can confirm.
    let got = a.request(confirm(fdoc, 2, first)).await;
    refused("confirm_replaced", got, ErrorCode::NotFound);
    assert_eq!(
        b.request(confirm(fdoc, 3, hers)).await,
        Ok(Response::Done),
        "confirm_hers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_drops_chunks_only_once_another_member_confirms_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut carol = Identity::new("carol@example.com", "carol");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let mut c = Client::register(&server, &mut carol).await;
    let family = a.create_family().await;
    join(&mut a, &alice, &mut b, &bob, family).await;
    let fdoc = DocId::from(family);
    for i in 1..=5u8 {
        a.push_ack(fdoc, vec![b'a', i]).await.expect("a chunk");
    }
    b.push_ack(fdoc, b"bob's change".to_vec())
        .await
        .expect("a chunk");
    let full = Client::sign_in(&server, &alice)
        .await
        .subscribe_view(fdoc, 0)
        .await
        .expect("readable");
    assert_eq!(full.chunks.len(), 6);
    // Alice's device listens live, as a family device does.
    let mut reader = Client::sign_in(&server, &alice).await;
    reader.subscribe_view(fdoc, 0).await.expect("readable");

    // Case: Bob, hostile, points the snapshot slot at Alice's photo, claiming it
    // covers the whole log. The relay takes it as pending and drops nothing.
    let photo = b"alice's family photo".to_vec();
    let photo_hash = BlobHash::of(&photo);
    assert_eq!(
        put_blob(&server, &alice, &photo_hash, family, &photo)
            .await
            .status,
        201
    );
    push_snapshot(&mut b, fdoc, 6, photo_hash, photo.len() as u64)
        .await
        .expect("taken as pending");
    let offer = reader
        .until(|f| match f {
            ServerFrame::PendingSnapshot { doc, .. } if *doc == fdoc => Some(f.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        offer,
        ServerFrame::PendingSnapshot {
            doc: fdoc,
            covers_seq: 6,
            blob: photo_hash,
            len: photo.len() as u64,
            by: bob.user(),
            by_device: bob.device,
        },
        "pending_photo: offered to the family's devices"
    );
    let mut fresh = Client::sign_in(&server, &alice).await;
    assert_eq!(
        fresh.subscribe_view(fdoc, 0).await.as_ref(),
        Ok(&full),
        "pending_photo: a new device still gets every chunk"
    );

    // Case: the pusher confirms his own snapshot.
    let got = b.request(confirm(fdoc, 6, photo_hash)).await;
    refused("confirm_own_snapshot", got, ErrorCode::Forbidden);
    // Case: a non-member confirms it.
    let got = c.request(confirm(fdoc, 6, photo_hash)).await;
    refused("confirm_as_non_member", got, ErrorCode::Forbidden);
    // Case: a wrong seq, a wrong blob.
    let got = a.request(confirm(fdoc, 5, photo_hash)).await;
    refused("confirm_wrong_seq", got, ErrorCode::NotFound);
    let got = a.request(confirm(fdoc, 6, BlobHash::of(b"other"))).await;
    refused("confirm_wrong_blob", got, ErrorCode::NotFound);
    // Case: a confirmation of an unknown document.
    let got = a.request(confirm(DocId::random(), 1, photo_hash)).await;
    refused("confirm_unknown_doc", got, ErrorCode::NotFound);
    // Case: Alice's device reports it (it found the photo missing every change).
    let reported = a
        .request(Request::RejectSnapshot {
            doc: fdoc,
            covers_seq: 6,
            blob: photo_hash,
        })
        .await;
    assert_eq!(reported, Ok(Response::Done), "reject: logged");
    assert_eq!(
        fresh.subscribe_view(fdoc, 0).await.as_ref(),
        Ok(&full),
        "refused confirmations: every chunk kept"
    );

    // Case: an honest snapshot replaces it; the stale pending one cannot be
    // confirmed any more, and the photo keeps its upload grant.
    let honest = b"an honest save of the family document".to_vec();
    let honest_hash = BlobHash::of(&honest);
    assert_eq!(
        put_blob(&server, &alice, &honest_hash, family, &honest)
            .await
            .status,
        201
    );
    push_snapshot(&mut a, fdoc, 6, honest_hash, honest.len() as u64)
        .await
        .expect("taken as pending");
    let got = a.request(confirm(fdoc, 6, photo_hash)).await;
    refused("confirm_replaced_snapshot", got, ErrorCode::NotFound);
    assert_original(&server, &alice, &photo_hash, &photo, "replaced_photo").await;
    assert_eq!(get_blob(&server, &bob, &photo_hash).await.status, 200);

    // Bob's device confirms Alice's snapshot: the covered chunks go, a new device
    // gets the snapshot and nothing before it.
    assert_eq!(
        b.request(confirm(fdoc, 6, honest_hash)).await,
        Ok(Response::Done)
    );
    let after = fresh.subscribe_view(fdoc, 0).await.expect("readable");
    assert_eq!(after.snapshot, Some((6, honest_hash)));
    assert!(after.chunks.is_empty(), "{after:?}");
    assert_eq!(after.head, 6);
    assert_original(&server, &alice, &photo_hash, &photo, "confirmed_photo").await;
    let got = b.request(confirm(fdoc, 6, honest_hash)).await;
    refused("confirm_twice", got, ErrorCode::NotFound);

    // Case: a personal document. Its owner's device cannot confirm its own
    // snapshot; a co-member's device can.
    let diary = alice.personal_doc;
    a.push_ack(diary, b"diary 1".to_vec())
        .await
        .expect("a chunk");
    a.push_ack(diary, b"diary 2".to_vec())
        .await
        .expect("a chunk");
    let save = b"a save of the diary".to_vec();
    let save_hash = BlobHash::of(&save);
    let path = format!("/blobs/{save_hash}?owner=me");
    let put = http(
        &server,
        "PUT",
        &path,
        &signed_headers(&alice, "PUT", &path),
        &save,
    )
    .await;
    assert_eq!(put.status, 201);
    push_snapshot(&mut a, diary, 2, save_hash, save.len() as u64)
        .await
        .expect("taken as pending");
    let got = a.request(confirm(diary, 2, save_hash)).await;
    refused("confirm_own_personal_snapshot", got, ErrorCode::Forbidden);
    let got = c.request(confirm(diary, 2, save_hash)).await;
    refused("confirm_personal_as_stranger", got, ErrorCode::Forbidden);
    assert_eq!(
        b.request(confirm(diary, 2, save_hash)).await,
        Ok(Response::Done)
    );
    let view = fresh.subscribe_view(diary, 0).await.expect("readable");
    assert_eq!(
        (view.snapshot, view.chunks.len()),
        (Some((2, save_hash)), 0)
    );
    assert_relay_works(&server, "snapshots").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_snapshot_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Pending snapshots live one second; the test waits for the relay's clock to
    // pass it: the condition under test, not a stand-in for synchronisation.
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits": {"pending_snapshot_ttl_secs": 1}}"#,
        &[],
    );
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let family = a.create_family().await;
    join(&mut a, &alice, &mut b, &bob, family).await;
    let fdoc = DocId::from(family);
    for i in 1..=3u8 {
        a.push_ack(fdoc, vec![i]).await.expect("a chunk");
    }
    let save = b"a save".to_vec();
    let hash = BlobHash::of(&save);
    assert_eq!(
        put_blob(&server, &alice, &hash, family, &save).await.status,
        201
    );
    let pushed_at = now_ms();
    push_snapshot(&mut a, fdoc, 3, hash, save.len() as u64)
        .await
        .expect("taken as pending");
    let wait = (pushed_at + 1_000 + 5).saturating_sub(now_ms());
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;

    // Case: confirming an expired snapshot.
    let got = b.request(confirm(fdoc, 3, hash)).await;
    refused("confirm_expired", got, ErrorCode::NotFound);
    // Expired, it is no longer offered in a catch-up, and every chunk is kept.
    let mut fresh = Client::sign_in(&server, &bob).await;
    fresh
        .send(&ClientFrame::Subscribe {
            docs: vec![Subscription {
                doc: fdoc,
                since: 0,
            }],
        })
        .await;
    let mut chunks = 0;
    loop {
        match fresh.next().await.expect("open") {
            ServerFrame::Chunk { .. } => chunks += 1,
            ServerFrame::CaughtUp { .. } => break,
            ServerFrame::PendingSnapshot { .. } | ServerFrame::Snapshot { .. } => {
                panic!("expired: offered or served")
            }
            _ => {}
        }
    }
    assert_eq!(chunks, 3, "expired: every chunk kept");
    assert_relay_works(&server, "expired_snapshot").await;
}
