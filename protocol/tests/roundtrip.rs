//! Property tests of the wire format: every frame variant round-trips, no input makes
//! the decoder panic, and variant indices (the wire's enum tags) never move.
//!
//! Every enum has an exhaustive `*_index` function (adding a variant fails to compile
//! until it gets an index) and a coverage test that samples the strategy until every
//! index was produced (a variant without a strategy fails at run time).

use std::fmt::Debug;

use doran_protocol::{
    BlobHash, Challenge, ChunkId, ClientFrame, CodecError, DeviceId, DeviceInfo, DirectoryEntry,
    DocId, ENCODING_VERSION, ErrorCode, ErrorFrame, FamilyId, FamilySummary, HttpSessionKey,
    InviteId, InviteInfo, InviteState, LinkId, MemberInfo, MembershipChange, PendingLinkInfo,
    PresenceInfo, PublicKey, Request, RequestId, Response, Role, ServerEvent, ServerFrame,
    Signature, Subscription, UserId, decode_client, decode_client_checked, decode_server,
    encode_client, encode_server,
    limits::{MAX_FRAME_BYTES, MAX_SUBSCRIPTIONS_PER_FRAME},
    model::{Certifier, DeviceCert, DeviceKeyPackage, UserCerts},
};
use proptest::{
    collection::vec,
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, TestRunner},
};

// ---------------------------------------------------------------- leaf strategies

fn user() -> impl Strategy<Value = UserId> {
    any::<[u8; 16]>().prop_map(UserId)
}
fn device() -> impl Strategy<Value = DeviceId> {
    any::<[u8; 16]>().prop_map(DeviceId)
}
fn family() -> impl Strategy<Value = FamilyId> {
    any::<[u8; 16]>().prop_map(FamilyId)
}
fn doc() -> impl Strategy<Value = DocId> {
    any::<[u8; 16]>().prop_map(DocId)
}
fn invite_id() -> impl Strategy<Value = InviteId> {
    any::<[u8; 16]>().prop_map(InviteId)
}
fn blob() -> impl Strategy<Value = BlobHash> {
    any::<[u8; 32]>().prop_map(BlobHash)
}
fn chunk_id() -> impl Strategy<Value = ChunkId> {
    any::<[u8; 32]>().prop_map(ChunkId)
}
fn key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}
fn sig() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature(s)
    })
}
fn time() -> impl Strategy<Value = u64> {
    any::<u64>()
}
/// 1–16 printable characters: at most 64 bytes, within every name limit.
fn name() -> impl Strategy<Value = String> {
    "\\PC{1,16}"
}
/// 0–40 printable characters, for server-side free text.
fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}
fn email() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}@[a-z]{1,20}\\.[a-z]{2,6}"
}
fn chunk_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..256)
}
fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        proptest::sample::select(ErrorCode::ALL.to_vec()),
        any::<u16>().prop_map(ErrorCode::from_code),
    ]
}

// ---------------------------------------------------------------- records

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Host), Just(Role::Member)]
}
fn invite_state() -> impl Strategy<Value = InviteState> {
    prop_oneof![
        Just(InviteState::Pending),
        Just(InviteState::Accepted),
        Just(InviteState::Rejected),
        Just(InviteState::Withdrawn),
        Just(InviteState::Expired),
    ]
}
fn member() -> impl Strategy<Value = MemberInfo> {
    (user(), role(), time(), doc()).prop_map(|(user, role, joined_at, personal_doc)| MemberInfo {
        user,
        role,
        joined_at,
        personal_doc,
    })
}
fn family_summary() -> impl Strategy<Value = FamilySummary> {
    (family(), role(), time(), vec(member(), 0..4)).prop_map(
        |(family, role, created_at, members)| FamilySummary {
            family,
            role,
            created_at,
            members,
        },
    )
}
/// An invite's sealed card, as a device sends it: opaque bytes, never empty.
fn card() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..256)
}
fn invite_info() -> impl Strategy<Value = InviteInfo> {
    (
        (invite_id(), family(), user(), name()),
        (user(), name(), time(), time(), invite_state()),
        // Empty too: an invite stored before protocol 7 has no card.
        vec(any::<u8>(), 0..256),
    )
        .prop_map(
            |(
                (invite, family, inviter, inviter_nickname),
                (invitee, invitee_nickname, created_at, expires_at, state),
                card,
            )| InviteInfo {
                invite,
                family,
                inviter,
                inviter_nickname,
                invitee,
                invitee_nickname,
                card,
                created_at,
                expires_at,
                state,
            },
        )
}
fn link_id() -> impl Strategy<Value = LinkId> {
    any::<[u8; 16]>().prop_map(LinkId)
}

fn pending_link() -> impl Strategy<Value = PendingLinkInfo> {
    (link_id(), device(), key(), text(), time(), time()).prop_map(
        |(link, device, device_key, client, requested_at, expires_at)| PendingLinkInfo {
            link,
            device,
            device_key,
            client,
            requested_at,
            expires_at,
        },
    )
}

fn device_info() -> impl Strategy<Value = DeviceInfo> {
    (
        device(),
        key(),
        text(),
        time(),
        proptest::option::of(time()),
        any::<bool>(),
        proptest::option::of(time()),
    )
        .prop_map(
            |(device, device_key, client, added_at, last_seen, online, revoked_at)| DeviceInfo {
                device,
                device_key,
                client,
                added_at,
                last_seen,
                online,
                revoked_at,
            },
        )
}
fn device_cert() -> impl Strategy<Value = DeviceCert> {
    (device(), key(), proptest::option::of(device()), sig()).prop_map(
        |(device, device_key, by, signature)| DeviceCert {
            device,
            device_key,
            by: by.map_or(Certifier::User, Certifier::Device),
            signature,
        },
    )
}
fn directory_entry() -> impl Strategy<Value = DirectoryEntry> {
    (user(), name(), proptest::option::of(blob())).prop_map(|(user, nickname, avatar)| {
        DirectoryEntry {
            user,
            nickname,
            avatar,
        }
    })
}
fn presence_info() -> impl Strategy<Value = PresenceInfo> {
    (user(), any::<bool>(), proptest::option::of(time())).prop_map(|(user, online, last_seen)| {
        PresenceInfo {
            user,
            online,
            last_seen,
        }
    })
}
fn challenge() -> impl Strategy<Value = Challenge> {
    (
        any::<u16>(),
        any::<[u8; 32]>(),
        "[a-z0-9.:/-]{1,40}",
        time(),
    )
        .prop_map(
            |(protocol_version, nonce, server_id, expires_at)| Challenge {
                protocol_version,
                nonce,
                server_id,
                expires_at,
            },
        )
}
fn error_frame() -> impl Strategy<Value = ErrorFrame> {
    (
        proptest::option::of(any::<u32>().prop_map(RequestId)),
        proptest::option::of(doc()),
        proptest::option::of(chunk_id()),
        error_code(),
        text(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(request, doc, chunk, code, message, retry_after_ms)| ErrorFrame {
                request,
                doc,
                chunk,
                code,
                message,
                retry_after_ms,
            },
        )
}

// ---------------------------------------------------------------- enums and indices

const REQUEST_VARIANTS: usize = 27;

fn request_index(r: &Request) -> usize {
    match r {
        Request::CreateFamily { .. } => 0,
        Request::RetiredRenameFamily => 1,
        Request::RetiredSetMemberName => 2,
        Request::RemoveMember { .. } => 3,
        Request::LeaveFamily { .. } => 4,
        Request::DeleteFamily { .. } => 5,
        Request::ListFamilies => 6,
        Request::LookupUser { .. } => 7,
        Request::SendInvite { .. } => 8,
        Request::AnswerInvite { .. } => 9,
        Request::WithdrawInvite { .. } => 10,
        Request::ListInvites => 11,
        Request::ListDevices => 12,
        Request::RevokeDevice { .. } => 13,
        Request::IssueLinkCode => 14,
        Request::SetProfile { .. } => 15,
        Request::ListPresence { .. } => 16,
        Request::RetiredAcceptInviteAs => 17,
        Request::ListPendingLinks => 18,
        Request::ConfirmLink { .. } => 19,
        Request::ConfirmSnapshot { .. } => 20,
        Request::RejectSnapshot { .. } => 21,
        Request::PublishDeviceCerts { .. } => 22,
        Request::DeviceCerts { .. } => 23,
        Request::PublishKeyPackage { .. } => 24,
        Request::KeyPackagesOf { .. } => 25,
        Request::OpenVolume { .. } => 26,
    }
}

/// The requests retired in protocol 7 (their places kept): they decode, and are
/// refused by validation.
fn retired_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::RetiredRenameFamily),
        Just(Request::RetiredSetMemberName),
        Just(Request::RetiredAcceptInviteAs),
    ]
}

/// Every request, the retired ones too.
fn any_request() -> impl Strategy<Value = Request> {
    prop_oneof![request(), retired_request()]
}

/// The requests a device may send: each one valid.
fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        family().prop_map(|family| Request::CreateFamily { family }),
        (family(), user()).prop_map(|(family, user)| Request::RemoveMember { family, user }),
        family().prop_map(|family| Request::LeaveFamily { family }),
        family().prop_map(|family| Request::DeleteFamily { family }),
        Just(Request::ListFamilies),
        email().prop_map(|email| Request::LookupUser { email }),
        (invite_id(), family(), user(), card(), sig()).prop_map(
            |(invite, family, invitee, card, signature)| Request::SendInvite {
                invite,
                family,
                invitee,
                card,
                signature
            }
        ),
        (invite_id(), any::<bool>(), sig()).prop_map(|(invite, accept, signature)| {
            Request::AnswerInvite {
                invite,
                accept,
                signature,
            }
        }),
        invite_id().prop_map(|invite| Request::WithdrawInvite { invite }),
        Just(Request::ListInvites),
        Just(Request::ListDevices),
        device().prop_map(|device| Request::RevokeDevice { device }),
        Just(Request::IssueLinkCode),
        (name(), proptest::option::of(blob()))
            .prop_map(|(nickname, avatar)| Request::SetProfile { nickname, avatar }),
        family().prop_map(|family| Request::ListPresence { family }),
        Just(Request::ListPendingLinks),
        (link_id(), any::<bool>(), sig()).prop_map(|(link, accept, signature)| {
            Request::ConfirmLink {
                link,
                accept,
                signature,
            }
        }),
        (doc(), any::<u64>(), blob()).prop_map(|(doc, covers_seq, blob)| {
            Request::ConfirmSnapshot {
                doc,
                covers_seq,
                blob,
            }
        }),
        (doc(), any::<u64>(), blob()).prop_map(|(doc, covers_seq, blob)| {
            Request::RejectSnapshot {
                doc,
                covers_seq,
                blob,
            }
        }),
        vec(device_cert(), 1..4).prop_map(|certs| Request::PublishDeviceCerts { certs }),
        user().prop_map(|user| Request::DeviceCerts { user }),
        vec(any::<u8>(), 1..64).prop_map(|package| Request::PublishKeyPackage { package }),
        user().prop_map(|user| Request::KeyPackagesOf { user }),
        (family(), doran_protocol::VOLUME_YEARS)
            .prop_map(|(family, year)| Request::OpenVolume { family, year }),
    ]
}

const RESPONSE_VARIANTS: usize = 13;

fn response_index(r: &Response) -> usize {
    match r {
        Response::Done => 0,
        Response::FamilyCreated(_) => 1,
        Response::Families(_) => 2,
        Response::UserFound(_) => 3,
        Response::InviteSent(_) => 4,
        Response::InviteAnswered { .. } => 5,
        Response::Invites(_) => 6,
        Response::Devices(_) => 7,
        Response::LinkCode { .. } => 8,
        Response::Presence(_) => 9,
        Response::PendingLinks(_) => 10,
        Response::DeviceCerts(_) => 11,
        Response::KeyPackages(_) => 12,
    }
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Done),
        family_summary().prop_map(Response::FamilyCreated),
        vec(family_summary(), 0..3).prop_map(Response::Families),
        proptest::option::of(directory_entry()).prop_map(Response::UserFound),
        invite_info().prop_map(Response::InviteSent),
        (invite_info(), proptest::option::of(family_summary()))
            .prop_map(|(invite, family)| Response::InviteAnswered { invite, family }),
        vec(invite_info(), 0..3).prop_map(Response::Invites),
        vec(device_info(), 0..3).prop_map(Response::Devices),
        ("[A-Z0-9-]{4,12}", time())
            .prop_map(|(code, expires_at)| Response::LinkCode { code, expires_at }),
        vec(presence_info(), 0..5).prop_map(Response::Presence),
        vec(pending_link(), 0..3).prop_map(Response::PendingLinks),
        (user(), key(), vec(device_cert(), 0..4), vec(device(), 0..3)).prop_map(
            |(user, user_key, certs, revoked)| {
                Response::DeviceCerts(UserCerts {
                    user,
                    user_key,
                    certs,
                    revoked,
                })
            }
        ),
        vec((device(), vec(any::<u8>(), 1..64)), 0..3).prop_map(|packages| {
            Response::KeyPackages(
                packages
                    .into_iter()
                    .map(|(device, package)| DeviceKeyPackage { device, package })
                    .collect(),
            )
        }),
    ]
}

const MEMBERSHIP_CHANGE_VARIANTS: usize = 4;

fn membership_change_index(c: &MembershipChange) -> usize {
    match c {
        MembershipChange::Joined { .. } => 0,
        MembershipChange::Left { .. } => 1,
        MembershipChange::Removed { .. } => 2,
        MembershipChange::RetiredRenamed => 3,
    }
}

fn membership_change() -> impl Strategy<Value = MembershipChange> {
    prop_oneof![
        user().prop_map(|user| MembershipChange::Joined { user }),
        user().prop_map(|user| MembershipChange::Left { user }),
        (user(), user()).prop_map(|(user, by)| MembershipChange::Removed { user, by }),
        Just(MembershipChange::RetiredRenamed),
    ]
}

const EVENT_VARIANTS: usize = 11;

fn event_index(e: &ServerEvent) -> usize {
    match e {
        ServerEvent::InviteReceived(_) => 0,
        ServerEvent::InviteAnswered { .. } => 1,
        ServerEvent::InviteWithdrawn { .. } => 2,
        ServerEvent::MembershipChanged { .. } => 3,
        ServerEvent::RetiredFamilyRenamed => 4,
        ServerEvent::FamilyDeleted { .. } => 5,
        ServerEvent::Presence(_) => 6,
        ServerEvent::DeviceAdded(_) => 7,
        ServerEvent::DeviceRevoked { .. } => 8,
        ServerEvent::LinkRequested(_) => 9,
        ServerEvent::LinkAnswered { .. } => 10,
    }
}

fn event() -> impl Strategy<Value = ServerEvent> {
    prop_oneof![
        invite_info().prop_map(ServerEvent::InviteReceived),
        (invite_id(), family(), user(), any::<bool>()).prop_map(
            |(invite, family, invitee, accepted)| ServerEvent::InviteAnswered {
                invite,
                family,
                invitee,
                accepted
            }
        ),
        invite_id().prop_map(|invite| ServerEvent::InviteWithdrawn { invite }),
        (family(), vec(member(), 0..4), membership_change()).prop_map(
            |(family, members, change)| ServerEvent::MembershipChanged {
                family,
                members,
                change
            }
        ),
        Just(ServerEvent::RetiredFamilyRenamed),
        family().prop_map(|family| ServerEvent::FamilyDeleted { family }),
        presence_info().prop_map(ServerEvent::Presence),
        device_info().prop_map(ServerEvent::DeviceAdded),
        device().prop_map(|device| ServerEvent::DeviceRevoked { device }),
        pending_link().prop_map(ServerEvent::LinkRequested),
        (link_id(), any::<bool>())
            .prop_map(|(link, accepted)| ServerEvent::LinkAnswered { link, accepted }),
    ]
}

const CLIENT_VARIANTS: usize = 11;

fn client_index(f: &ClientFrame) -> usize {
    match f {
        ClientFrame::Hello { .. } => 0,
        ClientFrame::Register { .. } => 1,
        ClientFrame::SignIn { .. } => 2,
        ClientFrame::Recover { .. } => 3,
        ClientFrame::LinkDevice { .. } => 4,
        ClientFrame::Request { .. } => 5,
        ClientFrame::Subscribe { .. } => 6,
        ClientFrame::Unsubscribe { .. } => 7,
        ClientFrame::Push { .. } => 8,
        ClientFrame::PushSnapshot { .. } => 9,
        ClientFrame::Ping { .. } => 10,
    }
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u16>(), text()).prop_map(|(protocol_version, client)| ClientFrame::Hello {
            protocol_version,
            client
        }),
        (
            (email(), name(), doc(), key()),
            (device(), key(), sig(), sig())
        )
            .prop_map(
                |(
                    (email, nickname, personal_doc, user_key),
                    (device, device_key, user_signature, device_signature),
                )| ClientFrame::Register {
                    email,
                    nickname,
                    personal_doc,
                    user_key,
                    device,
                    device_key,
                    user_signature,
                    device_signature,
                }
            ),
        (user(), device(), sig()).prop_map(|(user, device, signature)| ClientFrame::SignIn {
            user,
            device,
            signature
        }),
        (key(), device(), key(), sig(), sig()).prop_map(
            |(user_key, device, device_key, user_signature, device_signature)| {
                ClientFrame::Recover {
                    user_key,
                    device,
                    device_key,
                    user_signature,
                    device_signature,
                }
            }
        ),
        ("[A-Z0-9-]{1,32}", device(), key(), sig()).prop_map(
            |(code, device, device_key, signature)| ClientFrame::LinkDevice {
                code,
                device,
                device_key,
                signature
            }
        ),
        (any::<u32>(), request()).prop_map(|(id, body)| ClientFrame::Request {
            id: RequestId(id),
            body
        }),
        vec(
            (doc(), any::<u64>()).prop_map(|(doc, since)| Subscription { doc, since }),
            0..40
        )
        .prop_map(|docs| ClientFrame::Subscribe { docs }),
        vec(doc(), 0..40).prop_map(|docs| ClientFrame::Unsubscribe { docs }),
        (doc(), chunk_bytes()).prop_map(|(doc, bytes)| ClientFrame::push(doc, bytes)),
        (doc(), 1..u64::MAX, blob(), 1..u64::MAX).prop_map(|(doc, covers_seq, blob, len)| {
            ClientFrame::PushSnapshot {
                doc,
                covers_seq,
                blob,
                len,
            }
        }),
        any::<u64>().prop_map(|nonce| ClientFrame::Ping { nonce }),
    ]
}

const SERVER_VARIANTS: usize = 16;

fn server_index(f: &ServerFrame) -> usize {
    match f {
        ServerFrame::Challenge(_) => 0,
        ServerFrame::SignedIn { .. } => 1,
        ServerFrame::Response { .. } => 2,
        ServerFrame::Ack { .. } => 3,
        ServerFrame::UnauthoredChunk { .. } => 4,
        ServerFrame::Snapshot { .. } => 5,
        ServerFrame::CaughtUp { .. } => 6,
        ServerFrame::SnapshotAccepted { .. } => 7,
        ServerFrame::Event(_) => 8,
        ServerFrame::Pong { .. } => 9,
        ServerFrame::Error(_) => 10,
        ServerFrame::Goodbye { .. } => 11,
        ServerFrame::CursorAhead { .. } => 12,
        ServerFrame::PendingSnapshot { .. } => 13,
        ServerFrame::Chunk { .. } => 14,
        ServerFrame::HttpSessionKey(_) => 15,
    }
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        challenge().prop_map(ServerFrame::Challenge),
        (user(), device(), time(), doc(), vec(family(), 0..5)).prop_map(
            |(user, device, server_time, personal_doc, families)| ServerFrame::SignedIn {
                user,
                device,
                server_time,
                personal_doc,
                families
            }
        ),
        (any::<u32>(), response()).prop_map(|(id, body)| ServerFrame::Response {
            id: RequestId(id),
            body
        }),
        (doc(), chunk_id(), any::<u64>()).prop_map(|(doc, chunk, seq)| ServerFrame::Ack {
            doc,
            chunk,
            seq
        }),
        (doc(), any::<u64>(), chunk_bytes()).prop_map(|(doc, seq, bytes)| {
            ServerFrame::UnauthoredChunk {
                doc,
                seq,
                chunk: ChunkId::of(&bytes),
                bytes,
            }
        }),
        (doc(), any::<u64>(), blob(), any::<u64>()).prop_map(|(doc, covers_seq, blob, len)| {
            ServerFrame::Snapshot {
                doc,
                covers_seq,
                blob,
                len,
            }
        }),
        (doc(), any::<u64>()).prop_map(|(doc, seq)| ServerFrame::CaughtUp { doc, seq }),
        (doc(), any::<u64>())
            .prop_map(|(doc, covers_seq)| ServerFrame::SnapshotAccepted { doc, covers_seq }),
        event().prop_map(ServerFrame::Event),
        any::<u64>().prop_map(|nonce| ServerFrame::Pong { nonce }),
        error_frame().prop_map(ServerFrame::Error),
        (error_code(), text(), proptest::option::of(any::<u64>())).prop_map(
            |(reason, message, retry_after_ms)| ServerFrame::Goodbye {
                reason,
                message,
                retry_after_ms
            }
        ),
        (doc(), any::<u64>()).prop_map(|(doc, head)| ServerFrame::CursorAhead { doc, head }),
        (doc(), any::<u64>(), blob(), any::<u64>(), user(), device()).prop_map(
            |(doc, covers_seq, blob, len, by, by_device)| ServerFrame::PendingSnapshot {
                doc,
                covers_seq,
                blob,
                len,
                by,
                by_device,
            }
        ),
        (
            doc(),
            any::<u64>(),
            proptest::option::of(user()),
            chunk_bytes()
        )
            .prop_map(|(doc, seq, author, bytes)| ServerFrame::chunk(doc, seq, author, bytes)),
        (time(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(expires, life_ms, key)| {
            ServerFrame::HttpSessionKey(HttpSessionKey {
                expires,
                life_ms,
                key,
            })
        }),
    ]
}

// ---------------------------------------------------------------- coverage

/// Samples `strategy` until every variant index in `0..n` was seen.
fn assert_covers<T: Debug>(
    what: &str,
    strategy: impl Strategy<Value = T>,
    n: usize,
    index: fn(&T) -> usize,
) {
    let mut runner = TestRunner::deterministic();
    let mut seen = vec![false; n];
    for _ in 0..5_000 {
        let value = strategy
            .new_tree(&mut runner)
            .expect("strategy generates")
            .current();
        let i = index(&value);
        assert!(
            i < n,
            "{what}: index {i} of {value:?} is not below the variant count {n}"
        );
        seen[i] = true;
        if seen.iter().all(|&s| s) {
            return;
        }
    }
    let missing: Vec<usize> = (0..n).filter(|&i| !seen[i]).collect();
    panic!("{what}: no strategy produces variant indices {missing:?}");
}

#[test]
fn every_variant_has_a_strategy() {
    assert_covers("ClientFrame", client_frame(), CLIENT_VARIANTS, client_index);
    assert_covers("ServerFrame", server_frame(), SERVER_VARIANTS, server_index);
    assert_covers("Request", any_request(), REQUEST_VARIANTS, request_index);
    assert_covers("Response", response(), RESPONSE_VARIANTS, response_index);
    assert_covers("ServerEvent", event(), EVENT_VARIANTS, event_index);
    assert_covers(
        "MembershipChange",
        membership_change(),
        MEMBERSHIP_CHANGE_VARIANTS,
        membership_change_index,
    );
}

// ---------------------------------------------------------------- properties

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// postcard writes an enum's variant index as a varint; all ours are < 128, so it is
/// one byte and equals the index.
fn tag(bytes: &[u8]) -> usize {
    usize::from(bytes[0])
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        prop_assert_eq!(frame.validate(), Ok(()));
        let wire = encode_client(&frame).expect("encodes");
        prop_assert_eq!(wire[0], ENCODING_VERSION);
        prop_assert_eq!(tag(&wire[1..]), client_index(&frame), "variant index moved");
        prop_assert_eq!(&decode_client(&wire).expect("decodes"), &frame);
        prop_assert_eq!(decode_client_checked(&wire).expect("valid"), frame);
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        prop_assert_eq!(frame.validate(), Ok(()));
        let wire = encode_server(&frame).expect("encodes");
        prop_assert_eq!(wire[0], ENCODING_VERSION);
        prop_assert_eq!(tag(&wire[1..]), server_index(&frame), "variant index moved");
        prop_assert_eq!(decode_server(&wire).expect("decodes"), frame);
    }

    #[test]
    fn nested_enum_indices_are_pinned(
        req in any_request(),
        resp in response(),
        ev in event(),
        change in membership_change(),
    ) {
        prop_assert_eq!(tag(&postcard::to_allocvec(&req).expect("enc")), request_index(&req));
        prop_assert_eq!(tag(&postcard::to_allocvec(&resp).expect("enc")), response_index(&resp));
        prop_assert_eq!(tag(&postcard::to_allocvec(&ev).expect("enc")), event_index(&ev));
        prop_assert_eq!(
            tag(&postcard::to_allocvec(&change).expect("enc")),
            membership_change_index(&change)
        );
    }

    #[test]
    fn truncated_frames_are_errors(frame in client_frame(), sframe in server_frame()) {
        let wire = encode_client(&frame).expect("encodes");
        for end in 0..wire.len() {
            prop_assert!(decode_client(&wire[..end]).is_err(), "prefix of {} bytes decoded", end);
        }
        let wire = encode_server(&sframe).expect("encodes");
        for end in 0..wire.len() {
            prop_assert!(decode_server(&wire[..end]).is_err(), "prefix of {} bytes decoded", end);
        }
    }

    #[test]
    fn a_different_encoding_byte_is_refused(frame in client_frame(), version in any::<u8>()) {
        prop_assume!(version != ENCODING_VERSION);
        let mut wire = encode_client(&frame).expect("encodes");
        wire[0] = version;
        prop_assert_eq!(decode_client(&wire), Err(CodecError::UnsupportedEncoding(version)));
        prop_assert_eq!(decode_server(&wire).err(), Some(CodecError::UnsupportedEncoding(version)));
    }

    #[test]
    fn flipped_bytes_never_panic(
        frame in client_frame(),
        sframe in server_frame(),
        at in any::<prop::sample::Index>(),
        x in 1..=255u8,
    ) {
        let mut wire = encode_client(&frame).expect("encodes");
        let i = at.index(wire.len());
        wire[i] ^= x;
        let _ = decode_client_checked(&wire);
        let mut wire = encode_server(&sframe).expect("encodes");
        let i = at.index(wire.len());
        wire[i] ^= x;
        if let Ok(f) = decode_server(&wire) {
            let _ = f.validate();
        }
    }

    #[test]
    fn retired_requests_decode_and_are_refused(id in any::<u32>(), body in retired_request()) {
        let frame = ClientFrame::Request { id: RequestId(id), body };
        let wire = encode_client(&frame).expect("encodes");
        prop_assert_eq!(&decode_client(&wire).expect("decodes"), &frame);
        prop_assert!(frame.validate().is_err());
        let refused = decode_client_checked(&wire).expect_err("refused");
        prop_assert_eq!(refused.code, ErrorCode::InvalidInput);
        prop_assert_eq!(refused.request, Some(RequestId(id)));
    }

    #[test]
    fn error_codes_survive_any_number(code in any::<u16>()) {
        let e = ErrorCode::from_code(code);
        prop_assert_eq!(e.code(), code);
        let frame = ServerFrame::Error(ErrorFrame::new(e, "x"));
        let back = decode_server(&encode_server(&frame).expect("encodes")).expect("decodes");
        prop_assert_eq!(back, frame);
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        check_no_panic(&bytes);
        // The same bytes behind a valid header reach the postcard decoder.
        let mut framed = vec![ENCODING_VERSION];
        framed.extend_from_slice(&bytes);
        check_no_panic(&framed);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_tag_never_panic(
        tag in 0..16u8,
        bytes in vec(any::<u8>(), 0..512),
    ) {
        let mut framed = vec![ENCODING_VERSION, tag];
        framed.extend_from_slice(&bytes);
        check_no_panic(&framed);
    }
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn bigger_arbitrary_inputs_never_panic(bytes in vec(any::<u8>(), 4096..200_000)) {
        let mut framed = vec![ENCODING_VERSION];
        framed.extend_from_slice(&bytes);
        check_no_panic(&framed);
    }

    #[test]
    fn oversize_input_is_frame_too_large(extra in 1..70_000usize, first in any::<u8>()) {
        let mut bytes = vec![0u8; MAX_FRAME_BYTES + extra];
        bytes[0] = first;
        let expected = CodecError::FrameTooLarge { len: bytes.len(), max: MAX_FRAME_BYTES };
        prop_assert_eq!(decode_client(&bytes), Err(expected.clone()));
        prop_assert_eq!(decode_server(&bytes).err(), Some(expected));
    }
}

fn check_no_panic(bytes: &[u8]) {
    match decode_client(bytes) {
        Ok(frame) => {
            let _ = frame.validate();
        }
        Err(e) => {
            let _ = e.code();
        }
    }
    match decode_server(bytes) {
        Ok(frame) => {
            let _ = frame.validate();
        }
        Err(e) => {
            let _ = e.code();
        }
    }
}

// ---------------------------------------------------------------- fixed cases

#[test]
fn golden_bytes_pin_the_format() {
    // Ping { nonce: 300 }: header, variant 10, varint 300.
    assert_eq!(
        encode_client(&ClientFrame::Ping { nonce: 300 }).expect("encodes"),
        [1, 10, 0xac, 0x02]
    );
    // Hello { protocol_version: 1, client: "ab" }.
    assert_eq!(
        encode_client(&ClientFrame::Hello {
            protocol_version: 1,
            client: "ab".into()
        })
        .expect("encodes"),
        [1, 0, 1, 2, b'a', b'b']
    );
    // Error frame: no request/doc/chunk, code 403 as varint u16, message "", no retry.
    assert_eq!(
        encode_server(&ServerFrame::Error(ErrorFrame::new(
            ErrorCode::RateLimited,
            ""
        )))
        .expect("encodes"),
        [1, 10, 0, 0, 0, 0x93, 0x03, 0, 0]
    );
    // SignIn: variant 2, user, device, signature as a 64-byte byte string.
    let wire = encode_client(&ClientFrame::SignIn {
        user: UserId([1; 16]),
        device: DeviceId([2; 16]),
        signature: Signature([3; 64]),
    })
    .expect("encodes");
    let mut expected = vec![1, 2];
    expected.extend_from_slice(&[1; 16]);
    expected.extend_from_slice(&[2; 16]);
    expected.push(64);
    expected.extend_from_slice(&[3; 64]);
    assert_eq!(wire, expected);
    // Chunk (protocol 2): variant 14, doc, seq, chunk id, the author as an option,
    // the bytes with their length.
    let wire = encode_server(&ServerFrame::chunk(
        DocId([4; 16]),
        5,
        Some(UserId([6; 16])),
        b"x".to_vec(),
    ))
    .expect("encodes");
    let mut expected = vec![1, 14];
    expected.extend_from_slice(&[4; 16]);
    expected.push(5);
    expected.extend_from_slice(&ChunkId::of(b"x").0);
    expected.push(1);
    expected.extend_from_slice(&[6; 16]);
    expected.extend_from_slice(&[1, b'x']);
    assert_eq!(wire, expected);
    // HttpSessionKey (protocol 10): variant 15, expiry and life as varints, the key's
    // 32 bytes with no length.
    let wire = encode_server(&ServerFrame::HttpSessionKey(HttpSessionKey {
        expires: 300,
        life_ms: 5,
        key: [7; 32],
    }))
    .expect("encodes");
    let mut expected = vec![1, 15, 0xac, 0x02, 5];
    expected.extend_from_slice(&[7; 32]);
    assert_eq!(wire, expected);
}

#[test]
fn an_http_session_key_is_not_in_a_frames_debug() {
    let frame = ServerFrame::HttpSessionKey(HttpSessionKey {
        expires: 300,
        life_ms: 5,
        key: [0xab; 32],
    });
    let shown = format!("{frame:?}");
    assert!(shown.contains("expires: 300"), "{shown}");
    // 0xab, as Debug would show the key's bytes.
    assert!(!shown.contains("171"), "{shown}");
}

#[test]
fn an_unknown_error_code_from_a_newer_server_decodes() {
    // Goodbye with reason 999 (varint 0xe7 0x07), empty message, no retry.
    let wire = [1, 11, 0xe7, 0x07, 0, 0];
    assert_eq!(
        decode_server(&wire).expect("decodes"),
        ServerFrame::Goodbye {
            reason: ErrorCode::Unknown(999),
            message: String::new(),
            retry_after_ms: None
        }
    );
}

#[test]
fn a_full_subscribe_frame_fits() {
    let docs = vec![
        Subscription {
            doc: DocId([0xff; 16]),
            since: u64::MAX
        };
        MAX_SUBSCRIPTIONS_PER_FRAME
    ];
    let frame = ClientFrame::Subscribe { docs };
    let wire = encode_client(&frame).expect("fits");
    assert_eq!(decode_client_checked(&wire).expect("valid"), frame);
}
