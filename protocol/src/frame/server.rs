//! Frames the relay sends to a device.

use serde::{Deserialize, Serialize};

use crate::{
    BlobHash, Challenge, ChunkId, DeviceId, DocId, ErrorCode, ErrorFrame, FamilyId, RequestId,
    Response, Seq, ServerEvent, UnixMillis, UserId, frame::error_frame::truncate,
    limits::MAX_MESSAGE_BYTES,
};

/// A frame the relay sends to a device.
///
/// **Variant order is part of the wire format: variants may only be appended.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// Answers `Hello`: the challenge to sign for `Register`, `SignIn`, `Recover` or
    /// `LinkDevice`.
    Challenge(Challenge),

    /// The device is signed in (after `Register`, `SignIn`, `Recover` or
    /// `LinkDevice`). Everything else may now be sent; the device typically
    /// subscribes to its personal document and its families' documents next.
    SignedIn {
        /// The user (assigned by the relay on `Register`).
        user: UserId,
        /// This device.
        device: DeviceId,
        /// The relay's clock (unix ms), for relative times and invite expiry.
        server_time: UnixMillis,
        /// The user's personal document.
        personal_doc: DocId,
        /// The families the user belongs to (details with `ListFamilies`).
        #[serde(deserialize_with = "crate::wire::seq")]
        families: Vec<FamilyId>,
    },

    /// The successful answer to the `Request` with this id.
    Response {
        /// The request's id.
        id: RequestId,
        /// The answer.
        body: Response,
    },

    /// A pushed chunk is durable in the log at `seq` (also for a chunk that was
    /// already there: same id, same seq). The device may forget it from its outbox.
    Ack {
        /// The document.
        doc: DocId,
        /// The chunk.
        chunk: ChunkId,
        /// Its position in the log.
        seq: Seq,
    },

    /// Protocol 1's chunk frame, without its author: a relay of protocol 2 sends
    /// [`ServerFrame::Chunk`] instead, and never this. A device takes it as a chunk
    /// with no author (one stored before relays recorded authors).
    UnauthoredChunk {
        /// The document.
        doc: DocId,
        /// Its position in the log.
        seq: Seq,
        /// blake3 of `bytes`.
        chunk: ChunkId,
        /// The Automerge changes.
        #[serde(with = "crate::wire::bytes")]
        bytes: Vec<u8>,
    },

    /// During catch-up, when the device's `since` is below the latest snapshot: fetch
    /// this blob over HTTP and load it; chunks with seq > `covers_seq` follow.
    Snapshot {
        /// The document.
        doc: DocId,
        /// The highest seq the snapshot contains.
        covers_seq: Seq,
        /// The blob holding the snapshot.
        blob: BlobHash,
        /// Its length in bytes.
        len: u64,
    },

    /// Catch-up of one subscription is complete up to `seq` (the log's head when
    /// catch-up ended); chunks after this are live.
    CaughtUp {
        /// The document.
        doc: DocId,
        /// The log's head; 0 for an empty log.
        seq: Seq,
    },

    /// Answers `PushSnapshot`: the snapshot is recorded as *pending* and covers seq ≤
    /// `covers_seq`. The relay keeps the covered chunks until a device of another
    /// member confirms it (`ConfirmSnapshot`).
    SnapshotAccepted {
        /// The document.
        doc: DocId,
        /// As pushed.
        covers_seq: Seq,
    },

    /// A server-initiated notification (invites, membership, presence, devices).
    Event(ServerEvent),

    /// Answers `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },

    /// A typed error; see [`ErrorFrame`]. The connection stays open.
    Error(ErrorFrame),

    /// The relay is closing this connection on purpose (shutdown, device revoked,
    /// unsupported version, repeated protocol violations). The last frame sent; the
    /// device reconnects after `retry_after_ms` if given, and not at all for
    /// `DeviceRevoked` or `UnsupportedProtocolVersion`.
    Goodbye {
        /// Why.
        reason: ErrorCode,
        /// Human-readable detail for logs, at most
        /// [`MAX_MESSAGE_BYTES`](crate::limits::MAX_MESSAGE_BYTES).
        message: String,
        /// When reconnecting makes sense, in ms.
        retry_after_ms: Option<u64>,
    },

    /// Answers a subscription whose `since` is past the end of the relay's log (the
    /// device kept a forged cursor, or the relay was restored from a backup), instead
    /// of the catch-up and `CaughtUp`. The relay never skips live chunks because of a
    /// device's cursor: the subscription is live from `head`, and every later chunk
    /// is delivered. The device must forget its cursor for `doc` and subscribe again
    /// from a seq it can trust (0 is always safe: merges are idempotent).
    CursorAhead {
        /// The document.
        doc: DocId,
        /// The log's head: the last seq the relay has.
        head: Seq,
    },

    /// A snapshot of `doc` pushed by `by` (from `by_device`), waiting to be
    /// confirmed: sent at the end of a subscription's catch-up (right before
    /// `CaughtUp`) and live when it is pushed.
    /// A device that may confirm it (not the pusher's; see
    /// [`Request::ConfirmSnapshot`](crate::Request::ConfirmSnapshot)) fetches the blob,
    /// loads it and checks that it holds every change the device received in chunks
    /// up to `covers_seq`. Until it is confirmed, catch-ups go on being served from
    /// the last confirmed snapshot and the chunks.
    PendingSnapshot {
        /// The document.
        doc: DocId,
        /// The highest seq it claims to contain.
        covers_seq: Seq,
        /// The blob holding it.
        blob: BlobHash,
        /// Its length in bytes.
        len: u64,
        /// The member who pushed it.
        by: UserId,
        /// The device that pushed it.
        by_device: DeviceId,
    },

    /// A chunk of a subscribed document: during catch-up (seq > `since`, in order)
    /// or live as other devices push. The device applies it and remembers `seq` as
    /// its cursor; duplicates are harmless.
    ///
    /// `author` is the user whose signed-in device pushed the chunk, as the relay
    /// recorded it when it stored the chunk (`None` for a chunk stored before relays
    /// recorded authors). The relay never reads the changes; a device refuses every
    /// change in the chunk that is written under another user's actor id (and, in a
    /// personal document, any chunk not pushed by its owner).
    Chunk {
        /// The document.
        doc: DocId,
        /// Its position in the log.
        seq: Seq,
        /// blake3 of `bytes`.
        chunk: ChunkId,
        /// The user who pushed it; `None` if the relay stored it before it
        /// recorded authors.
        author: Option<UserId>,
        /// The Automerge changes.
        #[serde(with = "crate::wire::bytes")]
        bytes: Vec<u8>,
    },

    /// A session key for the device's HTTP downloads, sent right after `SignedIn` by a
    /// relay that gives keys (since protocol 10): the sign-in proved the device's key
    /// as a signed HTTP request does, so its first download after connecting is MAC'd
    /// under this key instead of signed (see [`http_mac`](crate::signing::http_mac)),
    /// and a blob client that does not know the relay's id yet takes the challenge's
    /// instead of asking `GET /server-id`.
    HttpSessionKey(HttpSessionKey),
}

/// A session key for HTTP downloads ([`ServerFrame::HttpSessionKey`]): the same key a
/// signed request's answer brings in `x-doran-session-key`.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSessionKey {
    /// The relay's unix ms from which the key is refused; names the key in
    /// `x-doran-mac`.
    pub expires: UnixMillis,
    /// How many ms it works from when it was given: a device uses it for half of that
    /// by its own clock, whatever the two clocks say.
    pub life_ms: u64,
    /// The key.
    pub key: [u8; 32],
}

impl std::fmt::Debug for HttpSessionKey {
    /// Without the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSessionKey")
            .field("expires", &self.expires)
            .field("life_ms", &self.life_ms)
            .finish_non_exhaustive()
    }
}

impl ServerFrame {
    /// A `Goodbye` with its message cut to
    /// [`MAX_MESSAGE_BYTES`](crate::limits::MAX_MESSAGE_BYTES).
    pub fn goodbye(
        reason: ErrorCode,
        message: impl Into<String>,
        retry_after_ms: Option<u64>,
    ) -> Self {
        ServerFrame::Goodbye {
            reason,
            message: truncate(message.into(), MAX_MESSAGE_BYTES),
            retry_after_ms,
        }
    }

    /// A `Chunk` frame for `bytes` pushed by `author`, with its id computed.
    pub fn chunk(doc: DocId, seq: Seq, author: Option<UserId>, bytes: Vec<u8>) -> Self {
        ServerFrame::Chunk {
            doc,
            seq,
            chunk: ChunkId::of(&bytes),
            author,
            bytes,
        }
    }

    /// A stable name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Challenge(_) => "challenge",
            ServerFrame::SignedIn { .. } => "signed_in",
            ServerFrame::Response { .. } => "response",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::UnauthoredChunk { .. } | ServerFrame::Chunk { .. } => "chunk",
            ServerFrame::Snapshot { .. } => "snapshot",
            ServerFrame::CaughtUp { .. } => "caught_up",
            ServerFrame::SnapshotAccepted { .. } => "snapshot_accepted",
            ServerFrame::Event(_) => "event",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Error(_) => "error",
            ServerFrame::Goodbye { .. } => "goodbye",
            ServerFrame::CursorAhead { .. } => "cursor_ahead",
            ServerFrame::PendingSnapshot { .. } => "pending_snapshot",
            ServerFrame::HttpSessionKey(_) => "http_session_key",
        }
    }
}

impl From<ErrorFrame> for ServerFrame {
    fn from(e: ErrorFrame) -> Self {
        ServerFrame::Error(e)
    }
}

impl From<ServerEvent> for ServerFrame {
    fn from(e: ServerEvent) -> Self {
        ServerFrame::Event(e)
    }
}
