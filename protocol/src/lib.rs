//! Wire protocol shared by the Dorandoran relay and its clients.
//!
//! The relay is content-agnostic: it keeps, per document, an append-only log of
//! opaque chunks (Automerge changes it never parses), plus accounts, devices,
//! families, invites and presence. Each device holds one websocket carrying every
//! document and every server event; blobs (photos, voice, snapshots) travel over
//! plain HTTP and are only referred to here.
//!
//! # Frames
//!
//! A websocket binary message is one frame: [`ClientFrame`] from a device,
//! [`ServerFrame`] from the relay, encoded by [`codec`] as one
//! [`ENCODING_VERSION`] byte followed by postcard, at most
//! [`MAX_FRAME_BYTES`](limits::MAX_FRAME_BYTES). Every enum's variant order is part
//! of the wire format (variants may only be appended). Every refusal is a typed
//! [`ErrorFrame`] with a stable [`ErrorCode`], never a silently dropped socket.
//!
//! # A connection
//!
//! ```text
//! device                                   relay
//!   Hello { protocol_version, client }  ─▶
//!                                       ◀─  Challenge { nonce, server_id, expires_at }
//!   Register | SignIn | Recover         ─▶        (signatures over signing::* bytes)
//!     | LinkDevice
//!                                       ◀─  SignedIn { user, device, personal_doc, families }
//!                                       ◀─  HttpSessionKey? { expires, life_ms, key }
//!   Subscribe { doc, since }*           ─▶
//!                                       ◀─  Snapshot? · Chunk { seq > since }* · CaughtUp
//!   Push { doc, chunk, bytes }          ─▶
//!                                       ◀─  Ack { doc, chunk, seq }   (durable)
//!                                       ◀─  Chunk …                   (others' pushes, live)
//!   Request { id, body }                ─▶
//!                                       ◀─  Response { id, body } | Error { request: id, … }
//!                                       ◀─  Event(InviteReceived | MembershipChanged | Presence …)
//!   Ping { nonce }                      ─▶
//!                                       ◀─  Pong { nonce }
//!                                       ◀─  Goodbye { reason }        (shutdown, revoked)
//! ```
//!
//! * **Identity.** A user is an ed25519 key made on the first device; each device has
//!   its own key. The relay never sees a password: a device proves itself by signing
//!   the challenge ([`signing`] defines every signed byte string). `Register` creates
//!   the user, `SignIn` signs in a known device, `Recover` adds a device with the
//!   user key restored from the recovery phrase, `LinkDevice` adds one with a short
//!   code issued by a signed-in device ([`Request::IssueLinkCode`]).
//! * **Documents.** A chunk's id is blake3 of its bytes; pushing is idempotent (the
//!   same chunk is acked with its existing seq). A client keeps a cursor per document
//!   and subscribes with `since` = its cursor; duplicates and reordering are harmless
//!   because Automerge merges are idempotent. Compaction is client-driven: upload a
//!   snapshot blob, then [`PushSnapshot`](ClientFrame::PushSnapshot); a new device
//!   gets the snapshot and the tail.
//! * **Families and invites.** The relay holds membership and checks it on every
//!   document, blob and request. Invites go: exact [`LookupUser`](Request::LookupUser)
//!   → signed [`SendInvite`](Request::SendInvite) → the invitee's devices get
//!   [`InviteReceived`](ServerEvent::InviteReceived) → signed
//!   [`AnswerInvite`](Request::AnswerInvite) → on accept, every member gets
//!   [`MembershipChanged`](ServerEvent::MembershipChanged).
//! * **Presence** is what the relay knows from connections
//!   ([`ServerEvent::Presence`], [`Request::ListPresence`]); it is never stored.
//!
//! # Limits
//!
//! [`codec::decode`] refuses oversize input before parsing and never panics;
//! [`ClientFrame::validate`] checks the per-field [`limits`] so the relay can answer
//! a precise [`ErrorCode`]. [`codec::decode_client_checked`] does both.
//!
//! Times are unix milliseconds ([`UnixMillis`]) on the relay's clock.

#![warn(missing_docs)]

pub mod challenge;
pub mod codec;
pub mod error_code;
pub mod frame;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod model;
pub mod signing;
pub mod text;
pub mod validate;
mod wire;

pub use challenge::Challenge;
pub use codec::{
    CodecError, ENCODING_VERSION, Frame, PROTOCOL_VERSION, decode, decode_client,
    decode_client_checked, decode_server, encode, encode_client, encode_server,
};
pub use error_code::ErrorCode;
pub use frame::{
    ClientFrame, ErrorFrame, HttpSessionKey, MembershipChange, Request, RequestId, Response,
    ServerEvent, ServerFrame, Subscription,
};
pub use ids::{
    BlobHash, ChunkId, DeviceId, DocId, FamilyId, IdError, InviteId, LinkId, SEALED_PREFIX, Seq,
    UserId, VOLUME_YEARS, looks_sealed, volume_year,
};
pub use keys::{PublicKey, Signature};
pub use model::{
    DeviceInfo, DirectoryEntry, FamilySummary, InviteInfo, InviteState, MemberInfo,
    PendingLinkInfo, PresenceInfo, Role,
};
pub use validate::ProtocolViolation;

/// A point in time: milliseconds since the unix epoch, on the relay's clock.
pub type UnixMillis = u64;
