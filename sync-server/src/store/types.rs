//! Records the relay's stores take and return.

use doran_protocol::{
    BlobHash, ChunkId, DeviceId, DocId, FamilyId, InviteId, LinkId, PublicKey, Seq, UserId,
};

/// Whom a blob is granted to: a family (photos, voice, its document's snapshots) or a
/// user (their avatar, their personal document's snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobGrantee {
    /// Read by the family's members.
    Family(FamilyId),
    /// Read by the user and everyone who shares a family with them.
    User(UserId),
}

/// A finished, verified upload to grant ([`AccountStore::grant_upload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadGrant {
    /// The family it is for, or the uploading user (a personal blob).
    pub to: BlobGrantee,
    /// The blob.
    pub blob: BlobHash,
    /// Its size in bytes.
    pub size: u64,
    /// The uploading user.
    pub by: UserId,
    /// The device that uploaded it (signed the request).
    pub device: DeviceId,
    /// The quota of `to`, in bytes: the grant must fit in it, unless the blob already
    /// counts against `to`.
    pub quota: u64,
}

/// What became of an [`UploadGrant`]. The checks made when the upload started are
/// made again at its end, in the grant's transaction: the upload may have taken
/// minutes, and others may have changed the family, the device or the quota since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum UploadVerdict {
    /// The blob is granted.
    Granted,
    /// The uploader is not (or no longer) a member of the family, or the family was
    /// deleted. Nothing was granted.
    NotMember,
    /// The uploading device is revoked. Nothing was granted.
    DeviceRevoked,
    /// The blob does not fit in the quota (what others granted meanwhile counts).
    /// Nothing was granted.
    QuotaExceeded,
}

/// Caps on pending invites, checked by [`AccountStore::create_invite_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteLimits {
    /// Pending, unexpired invites addressed to one user.
    pub per_invitee: usize,
    /// Pending, unexpired invites of one family.
    pub per_family: usize,
    /// Invites from one family to one person made in the last [`INVITE_PAIR_WINDOW_MS`],
    /// in any state: sending and withdrawing in a loop would otherwise notify the
    /// invitee (`InviteReceived`, `InviteWithdrawn`) without end.
    pub per_pair: usize,
}

/// The window of [`InviteLimits::per_pair`]: a day.
pub const INVITE_PAIR_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

impl InviteLimits {
    /// No caps.
    pub const UNLIMITED: InviteLimits = InviteLimits {
        per_invitee: usize::MAX,
        per_family: usize::MAX,
        per_pair: usize::MAX,
    };
}

/// A user to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Their id.
    pub id: UserId,
    /// Email or handle, normalised (trimmed, lowercase); unique on the relay.
    pub email: String,
    /// Nickname (validated by the caller).
    pub nickname: String,
    /// The user's ed25519 key (restored from the recovery phrase to add devices).
    pub user_key: PublicKey,
    /// Their personal document.
    pub personal_doc: DocId,
    /// When (unix ms).
    pub created_at: u64,
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Their id.
    pub id: UserId,
    /// Email or handle.
    pub email: String,
    /// Nickname.
    pub nickname: String,
    /// Profile photo.
    pub avatar: Option<BlobHash>,
    /// The user key.
    pub user_key: PublicKey,
    /// Their personal document.
    pub personal_doc: DocId,
    /// When they registered.
    pub created_at: u64,
}

/// A device to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// Its id.
    pub id: DeviceId,
    /// Its ed25519 key; signs sign-in challenges.
    pub key: PublicKey,
    /// The client it runs ("Dorandoran iOS 1.0"), from its hello.
    pub client: String,
    /// When (unix ms).
    pub added_at: u64,
}

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Its id.
    pub id: DeviceId,
    /// Whose.
    pub user: UserId,
    /// Its key.
    pub key: PublicKey,
    /// Its name (`Hello.client`) as of its latest sign-in.
    pub client: String,
    /// When it was added.
    pub added_at: u64,
    /// When it was last connected.
    pub last_seen: Option<u64>,
    /// When it was revoked; a revoked device cannot sign in.
    pub revoked_at: Option<u64>,
}

/// Where a link request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Waiting for a signed-in device of the user (until `expires_at`).
    Pending,
    /// Confirmed: the device was added to the user.
    Accepted,
    /// Rejected: the device was not added, and the code is spent.
    Rejected,
}

/// A new device that claimed a link code, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// The request.
    pub id: LinkId,
    /// The user whose code it claimed.
    pub user: UserId,
    /// The new device (`added_at` is when it claimed the code).
    pub device: NewDevice,
    /// When the request, like the code it claimed, stops working.
    pub expires_at: u64,
    /// Where it stands (a pending request past `expires_at` is expired).
    pub state: LinkState,
}

/// A family as stored: its membership only. Its title, like its members' 호칭, lives
/// in the family document (protocol 7), which the relay cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRecord {
    /// Its id (and its document's).
    pub id: FamilyId,
    /// Its host.
    pub host: UserId,
    /// When it was created.
    pub created_at: u64,
}

/// An invite to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvite {
    /// Its id (chosen by the inviting client).
    pub id: InviteId,
    /// The family.
    pub family: FamilyId,
    /// Who invites (the host).
    pub inviter: UserId,
    /// Who is invited.
    pub invitee: UserId,
    /// The invite's card, as the inviter's device sealed it (the family's title and
    /// the 호칭 it proposes, for the invitee's devices): opaque bytes, stored and
    /// served back unchanged. Empty for invites stored before protocol 7.
    pub card: Vec<u8>,
    /// When (unix ms).
    pub created_at: u64,
    /// When it expires (7 days later).
    pub expires_at: u64,
}

/// Who a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocOwner {
    /// A family's shared document: members read and write it.
    Family(FamilyId),
    /// A user's personal document: the owner writes it; members of the owner's
    /// families read it.
    Personal(UserId),
    /// The key log of a user's personal document: the key group of the user's own
    /// devices (issue 18, `docs/security.md`), read and written by that user alone
    /// and never compacted. Its id is the personal document's, XORed like a family's
    /// key log ([`doran_protocol::FamilyId::key_log`]).
    PersonalKeys(UserId),
}

impl DocOwner {
    /// The family whose own document `doc` is — the family's document or one of its
    /// volumes (`FamilyId::volume`), not its key log, not a personal document: the
    /// documents the sealing rule (`Sealing`) applies to.
    pub fn family_document(self, doc: DocId) -> Option<FamilyId> {
        match self {
            DocOwner::Family(family) if doc != family.key_log() => Some(family),
            _ => None,
        }
    }

    /// Whether `doc` (a document of this owner) is sealed by its id: a family's
    /// document or volume whose family id carries the sealed mark, any family's volume
    /// (a family created clear opens volumes only once its host sealed its document,
    /// so each is sealed from its first change), or a personal document made with the
    /// mark (every account since personal documents were sealed). Such a document
    /// takes envelopes only, chunks and snapshots alike (key logs have no rule).
    pub fn sealed_by_id(self, doc: DocId) -> bool {
        match self {
            DocOwner::Family(family) => {
                doc != family.key_log() && (family.says_sealed() || doc != DocId::from(family))
            }
            DocOwner::Personal(_) => FamilyId(doc.0).says_sealed(),
            DocOwner::PersonalKeys(_) => false,
        }
    }
}

/// A chunk to append, one of a group given to
/// [`LogStore::append_batch`](super::LogStore::append_batch).
#[derive(Debug, Clone, Copy)]
pub struct NewChunk<'a> {
    /// The document.
    pub doc: DocId,
    /// blake3 of `bytes` (checked by the caller).
    pub chunk: ChunkId,
    /// The Automerge change bytes.
    pub bytes: &'a [u8],
    /// The user whose device pushed it (the signed-in session's), kept with the chunk
    /// and sent with it in every `Chunk` frame: devices refuse changes in it written
    /// under another user's actor id. `None` only for chunks stored before authors
    /// were recorded (and in tests).
    pub author: Option<UserId>,
    /// When it arrived (unix ms).
    pub at: u64,
    /// The most chunk bytes the document's log may hold with this chunk (its quota).
    pub max_log_bytes: u64,
    /// What the chunk is to a family document's sealing (the session decides it from
    /// the chunk's first bytes and the pusher's role; the store checks it against
    /// the log in the same transaction as the append, so no clear chunk ever lands
    /// after the first envelope).
    pub sealing: Sealing,
}

/// A chunk's part in its log's sealing. A clear family's document becomes sealed for
/// good when its host pushes the first envelope (the family's documents are sealed
/// end to end from then on); from then on the log takes envelopes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sealing {
    /// Not a family document, or one whose id says it is sealed (checked by the
    /// session): no rule.
    #[default]
    Any,
    /// A clear chunk of a family document: refused once the log is sealed
    /// ([`StoreError::DocumentSealed`](super::StoreError::DocumentSealed)).
    Clear,
    /// An envelope pushed by the family's host: it seals the log if it was not.
    Seals,
    /// An envelope pushed by another member: refused while the log is clear
    /// ([`StoreError::NotSealed`](super::StoreError::NotSealed)) — only the host
    /// seals a family.
    Envelope,
}

impl Sealing {
    /// Its number in the stores (PostgreSQL's `doran_append` takes it).
    pub fn code(self) -> i16 {
        match self {
            Sealing::Any => 0,
            Sealing::Clear => 1,
            Sealing::Seals => 2,
            Sealing::Envelope => 3,
        }
    }
}

/// The result of appending a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number in the document's log.
    pub seq: Seq,
    /// Whether the chunk was already in the log (an idempotent re-push).
    pub existed: bool,
}

/// A chunk read back from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    /// Its sequence number.
    pub seq: Seq,
    /// blake3 of its bytes.
    pub chunk: ChunkId,
    /// The user who pushed it; `None` for a chunk stored before authors were
    /// recorded.
    pub author: Option<UserId>,
    /// The opaque bytes.
    pub bytes: Vec<u8>,
}

/// A snapshot of a document, stored as a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The last seq it covers.
    pub covers_seq: Seq,
    /// The blob holding it.
    pub blob: BlobHash,
    /// Its size.
    pub len: u64,
}

/// A snapshot a device pushed, waiting for a device of another member to confirm
/// that it contains what it replaces (see [`LogStore::put_pending_snapshot`]). Until
/// then the log keeps every chunk it claims to cover.
///
/// [`LogStore::put_pending_snapshot`]: super::LogStore::put_pending_snapshot
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingSnapshot {
    /// What it claims to be.
    pub snapshot: SnapshotRef,
    /// The user who pushed it.
    pub by: UserId,
    /// Their device that pushed it.
    pub by_device: DeviceId,
    /// When it was pushed (unix ms); it expires a configured time later.
    pub at: u64,
}

/// What [`LogStore::put_pending_snapshot`](super::LogStore::put_pending_snapshot) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingPut {
    /// It is now the document's pending snapshot; the one it replaced, if any.
    Recorded(Option<PendingSnapshot>),
    /// The same snapshot (seq and blob) was already pending: nothing changed.
    Same,
    /// The confirmed snapshot already covers as much: nothing changed.
    Stale,
}

/// A blob in a blob store, as a sweep sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlob {
    /// Its hash.
    pub hash: BlobHash,
    /// Its size.
    pub size: u64,
    /// When it was last stored (or stored again), unix ms.
    pub stored_at: u64,
}
