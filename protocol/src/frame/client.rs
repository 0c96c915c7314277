//! Frames a device sends to the relay.

use serde::{Deserialize, Serialize};

use crate::{
    BlobHash, ChunkId, DeviceId, DocId, PublicKey, Request, RequestId, Seq, Signature, UserId,
};

/// A frame a device sends to the relay over its one websocket.
///
/// A connection starts with [`Hello`](Self::Hello); the relay answers with a
/// [`Challenge`](crate::ServerFrame::Challenge), which the device answers with exactly
/// one of [`Register`](Self::Register), [`SignIn`](Self::SignIn),
/// [`Recover`](Self::Recover) or [`LinkDevice`](Self::LinkDevice). After
/// [`SignedIn`](crate::ServerFrame::SignedIn) the device may send everything else.
///
/// **Variant order is part of the wire format: variants may only be appended.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// First frame on every connection: the protocol version the device speaks and a
    /// short description of the app (e.g. `dorandoran-desktop/0.1.0 (macOS 15)`),
    /// kept as the device label. Answered by `Challenge`, or by an
    /// `UnsupportedProtocolVersion` error and `Goodbye`.
    Hello {
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the device's build.
        protocol_version: u16,
        /// App name, version and platform.
        client: String,
    },

    /// Creates a new user with its first device, answering the challenge. The user key
    /// signs [`register_user_message`](crate::signing::register_user_message) (it
    /// vouches for the device key); the device key signs
    /// [`register_device_message`](crate::signing::register_device_message) (it holds
    /// the key). Answered by `SignedIn` (the relay assigns the [`UserId`]), or an
    /// error such as `AlreadyExists` (email taken) or `BadSignature`.
    Register {
        /// The searchable label (email or handle), unique per server.
        email: String,
        /// The profile name shown in the directory.
        nickname: String,
        /// The user's personal document (made by the device), readable by the
        /// members of the user's families.
        personal_doc: DocId,
        /// The user's ed25519 public key (made on this device, restorable from the
        /// recovery phrase).
        user_key: PublicKey,
        /// This device.
        device: DeviceId,
        /// This device's ed25519 public key.
        device_key: PublicKey,
        /// By the user key, over `register_user_message`.
        user_signature: Signature,
        /// By the device key, over `register_device_message`.
        device_signature: Signature,
    },

    /// Signs in a known device: the device key signs
    /// [`signin_message`](crate::signing::signin_message). Answered by `SignedIn`, or
    /// `UnknownUser`, `UnknownDevice`, `DeviceRevoked`, `BadSignature`,
    /// `ChallengeExpired`.
    SignIn {
        /// The user.
        user: UserId,
        /// This device.
        device: DeviceId,
        /// By the device key, over `signin_message`.
        signature: Signature,
    },

    /// Adds a new device to an existing user with the user key restored from the
    /// recovery phrase. The user key signs
    /// [`recover_user_message`](crate::signing::recover_user_message), the device key
    /// [`recover_device_message`](crate::signing::recover_device_message). Answered by
    /// `SignedIn`, or `UnknownUser` (no user has this key), `BadSignature`.
    Recover {
        /// The restored user key; the relay finds the user by it.
        user_key: PublicKey,
        /// The new device.
        device: DeviceId,
        /// The new device's key.
        device_key: PublicKey,
        /// By the user key, over `recover_user_message`.
        user_signature: Signature,
        /// By the device key, over `recover_device_message`.
        device_signature: Signature,
    },

    /// Adds a new device to an existing user with a short code that a signed-in device
    /// of that user issued ([`Request::IssueLinkCode`]). The new device key signs
    /// [`link_device_message`](crate::signing::link_device_message). The first answer
    /// claims the code for this device key and is `LinkPending` (the user's devices
    /// get [`LinkRequested`](crate::ServerEvent::LinkRequested)); the device asks
    /// again (a new connection, the same code and key) until a signed-in device of the
    /// user answers: then `SignedIn`, or `LinkRejected`. Other errors:
    /// `InvalidLinkCode`, `LinkClaimed` (another key claimed the code), `LinkExpired`.
    LinkDevice {
        /// The code shown on the other device.
        code: String,
        /// The new device.
        device: DeviceId,
        /// The new device's key.
        device_key: PublicKey,
        /// By the device key, over `link_device_message`.
        signature: Signature,
    },

    /// An account, directory, family or invite operation. Answered by
    /// [`ServerFrame::Response`](crate::ServerFrame::Response) with the same `id`, or
    /// an [`ErrorFrame`](crate::ErrorFrame) whose `request` is that `id`.
    Request {
        /// Chosen by the device, echoed in the answer.
        id: RequestId,
        /// What to do.
        body: Request,
    },

    /// Starts (or restarts) streaming documents. For each subscription the relay
    /// sends, in order: a `Snapshot` if the log before it was compacted, the `Chunk`s
    /// with seq > `since`, then `CaughtUp`; after that new chunks arrive live. A
    /// document the user may not read gets an error frame with its `doc` (`Forbidden`
    /// or `NotFound`); the other subscriptions proceed.
    Subscribe {
        /// At most [`MAX_SUBSCRIPTIONS_PER_FRAME`](crate::limits::MAX_SUBSCRIPTIONS_PER_FRAME).
        #[serde(deserialize_with = "crate::wire::seq")]
        docs: Vec<Subscription>,
    },

    /// Stops live delivery of these documents. Not answered.
    Unsubscribe {
        /// At most [`MAX_SUBSCRIPTIONS_PER_FRAME`](crate::limits::MAX_SUBSCRIPTIONS_PER_FRAME).
        #[serde(deserialize_with = "crate::wire::seq")]
        docs: Vec<DocId>,
    },

    /// Appends a chunk of Automerge changes to a document's log. Answered by `Ack`
    /// once the chunk is durable (a chunk already in the log is acked with its
    /// existing seq), or an error with `doc` and `chunk` set (`Forbidden`,
    /// `HashMismatch`, `TooLarge`, `QuotaExceeded`). The pushing connection does not
    /// get the chunk echoed back; other subscribers get it as `Chunk`.
    Push {
        /// The document.
        doc: DocId,
        /// blake3 of `bytes`.
        chunk: ChunkId,
        /// The changes, at most [`MAX_CHUNK_BYTES`](crate::limits::MAX_CHUNK_BYTES).
        #[serde(with = "crate::wire::bytes")]
        bytes: Vec<u8>,
    },

    /// Declares a snapshot of a document covering every chunk with seq ≤
    /// `covers_seq`. The snapshot itself was uploaded first as a blob over HTTP (it
    /// can be larger than a frame); this frame only refers to it. Answered by
    /// `SnapshotAccepted` — the snapshot is then *pending*: the relay drops the
    /// covered chunks only once a device of another member has confirmed it
    /// (`Request::ConfirmSnapshot`) — or an error (`NotFound` if the blob is missing,
    /// `Conflict` if `covers_seq` is beyond the log's head).
    PushSnapshot {
        /// The document.
        doc: DocId,
        /// The highest seq whose changes the snapshot contains.
        covers_seq: Seq,
        /// The uploaded blob holding the snapshot (`Automerge::save`).
        blob: BlobHash,
        /// Its length in bytes.
        len: u64,
    },

    /// Liveness check; answered by `Pong` with the same nonce.
    Ping {
        /// Any value, echoed.
        nonce: u64,
    },
}

/// One document to stream, and where the device's copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subscription {
    /// The document.
    pub doc: DocId,
    /// The highest seq the device already has; 0 for none.
    pub since: Seq,
}

impl ClientFrame {
    /// A stable name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Hello { .. } => "hello",
            ClientFrame::Register { .. } => "register",
            ClientFrame::SignIn { .. } => "sign_in",
            ClientFrame::Recover { .. } => "recover",
            ClientFrame::LinkDevice { .. } => "link_device",
            ClientFrame::Request { .. } => "request",
            ClientFrame::Subscribe { .. } => "subscribe",
            ClientFrame::Unsubscribe { .. } => "unsubscribe",
            ClientFrame::Push { .. } => "push",
            ClientFrame::PushSnapshot { .. } => "push_snapshot",
            ClientFrame::Ping { .. } => "ping",
        }
    }

    /// Whether this frame answers a challenge (allowed only before sign-in).
    pub fn is_sign_in(&self) -> bool {
        matches!(
            self,
            ClientFrame::Register { .. }
                | ClientFrame::SignIn { .. }
                | ClientFrame::Recover { .. }
                | ClientFrame::LinkDevice { .. }
        )
    }

    /// The request id, for a `Request`.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            ClientFrame::Request { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The single document this frame is about (`Push`, `PushSnapshot`).
    pub fn doc(&self) -> Option<DocId> {
        match self {
            ClientFrame::Push { doc, .. } | ClientFrame::PushSnapshot { doc, .. } => Some(*doc),
            _ => None,
        }
    }

    /// The chunk this frame carries (`Push`).
    pub fn chunk(&self) -> Option<ChunkId> {
        match self {
            ClientFrame::Push { chunk, .. } => Some(*chunk),
            _ => None,
        }
    }
}

impl ClientFrame {
    /// A `Push` frame for `bytes`, with its chunk id computed.
    pub fn push(doc: DocId, bytes: Vec<u8>) -> Self {
        ClientFrame::Push {
            doc,
            chunk: ChunkId::of(&bytes),
            bytes,
        }
    }
}
