//! The relay's storage, behind small synchronous traits so that PostgreSQL and an
//! S3-compatible object store can follow without touching the handlers.
//!
//! - [`AccountStore`]: users, devices, families and memberships, invites, link codes,
//!   and which document belongs to whom (for access checks).
//! - [`LogStore`]: per document, an append-only log of opaque chunks with a server
//!   sequence number, and the latest snapshot reference.
//! - [`BlobStore`]: content-addressed bytes (photos, voice, snapshots), stored once
//!   however many families use them; which family may read which blob is recorded
//!   by the [`AccountStore`] (`grant_blob` / `blob_granted`).
//!
//! Every method is one transaction: it happens entirely or, when it returns an error,
//! not at all. Methods are synchronous (SQLite is); async handlers call them through
//! `spawn_blocking`. Implementations are shared as `Arc<dyn …>`.
//!
//! **Durability.** [`LogStore::append`] returns only once the chunk is durable
//! (`synchronous=FULL` for SQLite): the relay acks a push after it returns, and an
//! acked chunk survives `kill -9` of the relay.

mod error;
mod types;

pub use error::{StoreError, StoreResult};
pub use types::*;

use doran_protocol::{
    BlobHash, ChunkId, DeviceId, DocId, FamilyId, InviteId, Seq, UserId,
    model::{InviteInfo, MemberInfo},
};

/// Users, devices, families, invites, link codes and document ownership.
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    // ----- users and devices -----

    /// Creates a user with their first device and their personal document. Fails with
    /// [`StoreError::EmailTaken`] if the (normalised, lowercase) email is used, and
    /// [`StoreError::Conflict`] if an id or key is already registered.
    fn create_user(&self, user: &NewUser, first_device: &NewDevice) -> StoreResult<()>;
    /// A user by id.
    fn user(&self, user: UserId) -> StoreResult<Option<UserRecord>>;
    /// A user by exact email (already normalised by the caller).
    fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Updates nickname and avatar.
    fn set_profile(
        &self,
        user: UserId,
        nickname: &str,
        avatar: Option<BlobHash>,
    ) -> StoreResult<()>;
    /// Adds a device to an existing user (link code or recovery).
    fn add_device(&self, user: UserId, device: &NewDevice) -> StoreResult<()>;
    /// A device by id, revoked or not.
    fn device(&self, device: DeviceId) -> StoreResult<Option<DeviceRecord>>;
    /// A user's devices, revoked ones included.
    fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>>;
    /// Revokes a device (idempotent). `NotFound` if it is not the user's.
    fn revoke_device(&self, user: UserId, device: DeviceId, at: u64) -> StoreResult<()>;
    /// Records when a device was last connected.
    fn touch_device(&self, device: DeviceId, at: u64) -> StoreResult<()>;

    // ----- link codes -----

    /// Stores a link code (only its blake3 hash is kept) for `user`, issued by
    /// `device`, valid until `expires_at`.
    fn put_link_code(
        &self,
        code_hash: [u8; 32],
        user: UserId,
        device: DeviceId,
        expires_at: u64,
    ) -> StoreResult<()>;
    /// Consumes a link code: returns its user if it exists, is unused and unexpired at
    /// `now`, and marks it used in the same transaction; `None` otherwise.
    fn take_link_code(&self, code_hash: [u8; 32], now: u64) -> StoreResult<Option<UserId>>;

    // ----- families -----

    /// Creates a family with its host as the first member, and its family document.
    fn create_family(
        &self,
        family: FamilyId,
        title: &str,
        host: UserId,
        host_name: &str,
        at: u64,
    ) -> StoreResult<()>;
    /// A family (not deleted).
    fn family(&self, family: FamilyId) -> StoreResult<Option<FamilyRecord>>;
    /// The families `user` belongs to.
    fn families_of(&self, user: UserId) -> StoreResult<Vec<FamilyRecord>>;
    /// The members of a family.
    fn members(&self, family: FamilyId) -> StoreResult<Vec<MemberInfo>>;
    /// `user`'s membership in `family`, if any.
    fn membership(&self, family: FamilyId, user: UserId) -> StoreResult<Option<MemberInfo>>;
    /// Renames a family.
    fn rename_family(&self, family: FamilyId, title: &str) -> StoreResult<()>;
    /// Changes a member's 호칭; [`StoreError::NameTaken`] if another member has it.
    fn set_member_name(&self, family: FamilyId, user: UserId, name: &str) -> StoreResult<()>;
    /// Removes a member (leave or removal). `NotFound` if not a member.
    fn remove_member(&self, family: FamilyId, user: UserId) -> StoreResult<()>;
    /// Deletes a family: memberships, pending invites and blob grants go; its
    /// document log is dropped.
    fn delete_family(&self, family: FamilyId) -> StoreResult<()>;

    // ----- invites -----

    /// Stores a pending invite. [`StoreError::AlreadyMember`] if the invitee is a
    /// member, [`StoreError::AlreadyInvited`] if a pending, unexpired invite to them
    /// for this family exists, [`StoreError::NameTaken`] if the proposed 호칭 is used.
    fn create_invite(&self, invite: &NewInvite) -> StoreResult<()>;
    /// An invite with names filled in, its state computed at `now` (a pending invite
    /// past its expiry reads as `Expired`).
    fn invite(&self, invite: InviteId, now: u64) -> StoreResult<Option<InviteInfo>>;
    /// Pending, unexpired invites addressed to `user`.
    fn invites_for(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>>;
    /// Pending, unexpired invites of a family.
    fn invites_of_family(&self, family: FamilyId, now: u64) -> StoreResult<Vec<InviteInfo>>;
    /// Answers a pending, unexpired invite. On accept, adds the membership with the
    /// proposed 호칭 in the same transaction. Errors: `NotFound`,
    /// [`StoreError::InviteExpired`], [`StoreError::InviteClosed`] (already answered
    /// or withdrawn), `AlreadyMember`, `NameTaken`.
    fn answer_invite(&self, invite: InviteId, accept: bool, now: u64) -> StoreResult<InviteInfo>;
    /// Withdraws a pending invite. Errors as for `answer_invite`.
    fn withdraw_invite(&self, invite: InviteId, now: u64) -> StoreResult<InviteInfo>;

    // ----- documents and blobs: ownership for access checks -----

    /// Who a document belongs to: a family's document or a user's personal document.
    fn doc_owner(&self, doc: DocId) -> StoreResult<Option<DocOwner>>;
    /// Records that `family` may read `blob` (it was uploaded to or used by it).
    fn grant_blob(&self, family: FamilyId, blob: BlobHash, size: u64) -> StoreResult<()>;
    /// Whether any family of `user` may read `blob`.
    fn blob_granted(&self, user: UserId, blob: BlobHash) -> StoreResult<bool>;
    /// Bytes of blobs granted to a family (for its quota).
    fn family_blob_bytes(&self, family: FamilyId) -> StoreResult<u64>;
}

/// Per-document append-only logs of opaque chunks.
pub trait LogStore: Send + Sync + std::fmt::Debug {
    /// Appends a chunk and returns its seq, durably. Idempotent by chunk id: a chunk
    /// already in the log returns its existing seq and [`Appended::existed`] = true.
    /// Seqs start at 1 and have no gaps within a document.
    fn append(&self, doc: DocId, chunk: ChunkId, bytes: &[u8], at: u64) -> StoreResult<Appended>;
    /// Chunks with seq > `since`, in order, at most `limit`, skipping those covered by
    /// the snapshot (the caller sends the snapshot first when `since` < its seq).
    fn read_since(&self, doc: DocId, since: Seq, limit: usize) -> StoreResult<Vec<StoredChunk>>;
    /// The latest seq of a document (0 when empty).
    fn head(&self, doc: DocId) -> StoreResult<Seq>;
    /// Records a snapshot blob covering seq ≤ `covers_seq` and drops the chunks it
    /// covers. Ignored (`Ok(false)`) if an equal or newer snapshot exists;
    /// [`StoreError::Invalid`] if `covers_seq` is past the head.
    fn put_snapshot(&self, doc: DocId, snapshot: &SnapshotRef) -> StoreResult<bool>;
    /// The latest snapshot, if any.
    fn snapshot(&self, doc: DocId) -> StoreResult<Option<SnapshotRef>>;
    /// Drops a document's log and snapshot (family deleted).
    fn drop_doc(&self, doc: DocId) -> StoreResult<()>;
}

/// Content-addressed bytes. Writes go to a temporary place and become visible under
/// their hash only once verified, so a reader never sees a partial blob.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Starts an upload; write bytes to the returned sink, then `finish` it.
    fn begin(&self) -> StoreResult<Box<dyn BlobSink>>;
    /// Whether a blob exists, and its size.
    fn size(&self, hash: BlobHash) -> StoreResult<Option<u64>>;
    /// Reads `len` bytes at `offset` (clamped to the blob's end).
    fn read(&self, hash: BlobHash, offset: u64, len: u64) -> StoreResult<Vec<u8>>;
}

/// An upload in progress.
pub trait BlobSink: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> StoreResult<()>;
    /// Verifies that the bytes hash to `expected` and publishes them under it
    /// (durably). [`StoreError::HashMismatch`] otherwise, and nothing is published.
    /// Publishing a blob that already exists is fine (deduplication).
    fn finish(self: Box<Self>, expected: BlobHash) -> StoreResult<u64>;
}
