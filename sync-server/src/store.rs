//! The relay's storage, behind small synchronous traits so that PostgreSQL and an
//! S3-compatible object store can follow without touching the handlers.
//!
//! - [`AccountStore`]: users, devices, families and memberships, invites, link codes,
//!   and which document belongs to whom (for access checks).
//! - [`LogStore`]: per document, an append-only log of opaque chunks with a server
//!   sequence number, and the latest snapshot reference.
//! - [`BlobStore`]: content-addressed bytes (photos, voice, snapshots), stored once
//!   however many families use them; which family or user may read which blob is
//!   recorded by the [`AccountStore`] (`grant_blob`, `grant_blob_to_user`,
//!   `blob_granted`).
//!
//! Every method is one transaction: it happens entirely or, when it returns an error,
//! not at all. Methods are synchronous (SQLite is); async handlers call them through
//! `spawn_blocking` (the PostgreSQL and S3 backends, async inside, block on their
//! calls there: see [`PgStore`]). Implementations are shared as `Arc<dyn …>`.
//!
//! **Conventions.** A read that names an unknown record answers `None`, an empty list
//! or 0; a write that names one fails with [`StoreError::NotFound`] (whose text names
//! the kind: `"user"`, `"device"`, `"family"`, `"member"`, `"invite"`, `"link"`,
//! `"blob"`).
//! Numbers (times, seqs, sizes) must fit SQLite's signed 64 bits; a larger one is
//! [`StoreError::Invalid`]. Times are unix milliseconds; a deadline `expires_at` is
//! passed when `now >= expires_at`. Lists come in a documented, stable order.
//!
//! **Backends.** [`SqliteStore`] keeps accounts and logs in one SQLite file (the
//! relay's default, zero set-up) and [`MemoryStore`] in plain collections (tests, and
//! the reference semantics); both implement [`AccountStore`] and [`LogStore`], so one
//! `Arc` serves as both `Arc<dyn AccountStore>` and `Arc<dyn LogStore>`.
//! [`FsBlobStore`] keeps blobs in a folder, [`MemoryBlobStore`] in memory. For several
//! relays sharing their data (scale-out), [`PgStore`] keeps accounts and logs in
//! PostgreSQL and [`S3BlobStore`] blobs in an S3-compatible object store. The same
//! conformance suite runs against each. [`CachedBlobs`] keeps the small blobs read
//! most recently in memory in front of any of them.
//!
//! **Durability.** [`LogStore::append`] returns only once the chunk is durable
//! (`synchronous=FULL` for SQLite): the relay acks a push after it returns, and an
//! acked chunk survives `kill -9` of the relay.

mod blob_cache;
mod error;
mod fs_blobs;
mod memory;
mod memory_blobs;
mod postgres;
mod rules;
mod s3_blobs;
mod sqlite;
mod types;

#[cfg(test)]
mod conformance;

pub use blob_cache::{CacheStats, CachedBlobs};
pub use error::{StoreError, StoreResult};
pub use fs_blobs::FsBlobStore;
pub use memory::MemoryStore;
pub use memory_blobs::MemoryBlobStore;
pub(crate) use postgres::client as pg_client;
pub use postgres::{PgOptions, PgStore};
pub use s3_blobs::{S3BlobStore, S3Options};
pub use sqlite::SqliteStore;
pub use types::*;

use axum::body::Bytes;
use doran_protocol::{
    BlobHash, ChunkId, DeviceId, DocId, FamilyId, InviteId, LinkId, PublicKey, Seq, UserId,
    model::{DeviceCert, InviteInfo, MemberInfo},
};

/// Users, devices, families, invites, link codes and requests, and document ownership.
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Whether a short read returns now, without waiting on the network, on another
    /// connection's write or on a busy connection: then the relay runs its hottest
    /// reads (an invite list, a download's grant) on the async worker that asked, not
    /// through the blocking pool, whose two hand-offs cost more than such a read
    /// ([`AppState::quick_read`]). SQLite's read connections (when one is free) and
    /// the memory store do; PostgreSQL (a network round trip, run with `block_on`)
    /// does not.
    ///
    /// [`AppState::quick_read`]: crate::state::AppState::quick_read
    fn answers_at_once(&self) -> bool {
        false
    }
    /// How many reads were answered from answers the store keeps in memory, and how
    /// many went to the store, as `(hits, misses)`; `None` for a store that keeps none
    /// (SQLite keeps the invite lists and downloads' checks while nothing they read
    /// was written).
    fn read_cache_stats(&self) -> Option<(u64, u64)> {
        None
    }

    // ----- users and devices -----

    /// Creates a user with their first device and their personal document. Fails with
    /// [`StoreError::EmailTaken`] if the (normalised, lowercase) email is used, and
    /// [`StoreError::Conflict`] if the user id, the user key, the personal document id
    /// (a user's or a family's) or the device's id or key is already registered.
    fn create_user(&self, user: &NewUser, first_device: &NewDevice) -> StoreResult<()>;
    /// A user by id.
    fn user(&self, user: UserId) -> StoreResult<Option<UserRecord>>;
    /// A user by exact email (already normalised by the caller).
    fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// A user by their user key (recovery: the restored key finds its user).
    fn user_by_key(&self, user_key: &PublicKey) -> StoreResult<Option<UserRecord>>;
    /// Updates nickname and avatar. `NotFound` if there is no such user.
    fn set_profile(
        &self,
        user: UserId,
        nickname: &str,
        avatar: Option<BlobHash>,
    ) -> StoreResult<()>;
    /// Adds a device to an existing user (link code or recovery). `NotFound` if there
    /// is no such user, [`StoreError::Conflict`] if the device id or key is registered.
    fn add_device(&self, user: UserId, device: &NewDevice) -> StoreResult<()>;
    /// A device by id, revoked or not.
    fn device(&self, device: DeviceId) -> StoreResult<Option<DeviceRecord>>;
    /// A user's devices, revoked ones included, oldest first (by `added_at`, then id).
    fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>>;
    /// Keeps certificates of `user`'s devices, already checked by the caller (issue
    /// 18): one per (device, certifier), a certificate kept already is skipped (the
    /// first one stays). [`StoreError::TooManyCerts`] if the user would hold more than
    /// `max` for devices that are not revoked (a stolen phone that certified throwaway
    /// devices before its revocation cannot lock its owner out); then none is kept.
    fn put_device_certs(&self, user: UserId, certs: &[DeviceCert], max: usize) -> StoreResult<()>;
    /// The certificates kept for `user`'s devices, oldest first.
    fn device_certs(&self, user: UserId) -> StoreResult<Vec<DeviceCert>>;
    /// Keeps `package`, the key package `device` of `user` published at `at` (issue
    /// 18; opaque bytes, already checked for size by the caller), in place of the one
    /// it published before. `NotFound("device")` if the device is not the user's,
    /// [`StoreError::DeviceRevoked`] if it is revoked.
    fn put_key_package(
        &self,
        user: UserId,
        device: DeviceId,
        package: &[u8],
        at: u64,
    ) -> StoreResult<()>;
    /// The key packages of `user`'s devices that are not revoked, oldest device first
    /// (by `added_at`, then id, like [`devices`](Self::devices)); a device that never
    /// published one is left out.
    fn key_packages(&self, user: UserId) -> StoreResult<Vec<(DeviceId, Vec<u8>)>>;
    /// Revokes `device` on behalf of `by`, a device of the same user (possibly
    /// `device` itself). Idempotent: the first revocation time stays. `NotFound` if
    /// either is not the user's; [`StoreError::DeviceRevoked`] if `by` is revoked,
    /// checked in the same transaction, so of two devices revoking each other at once
    /// only the first succeeds (a stolen device cannot lock its owner out by racing).
    fn revoke_device(
        &self,
        user: UserId,
        device: DeviceId,
        by: DeviceId,
        at: u64,
    ) -> StoreResult<()>;
    /// Records that a device was connected at `at` (`last_seen` only moves forward).
    /// `client`: it signed in then under that name (`Hello.client`), which becomes its
    /// name in the device list — a device added before it named itself well takes
    /// the new name; `None` when a connection ends (an old connection closing late
    /// must not bring back the name it signed in with). `NotFound` if there is no
    /// such device.
    fn touch_device(&self, device: DeviceId, at: u64, client: Option<&str>) -> StoreResult<()>;

    // ----- link codes -----

    /// Stores a link code (only its blake3 hash is kept) for `user`, issued by
    /// `device`, valid until `expires_at`, in place of the user's unclaimed codes: a
    /// user needs one code at a time, so issuing codes cannot pile up rows. (A claimed
    /// code stays with its link request.) `NotFound` if `device` is not the user's,
    /// [`StoreError::Invalid`] if it is revoked, [`StoreError::Conflict`] if the hash
    /// is already stored.
    fn put_link_code(
        &self,
        code_hash: [u8; 32],
        user: UserId,
        device: DeviceId,
        expires_at: u64,
    ) -> StoreResult<()>;

    /// Deletes what is finished and will not be asked about again: link codes and
    /// link requests that expired before `links_before` (a request expires with its
    /// code), and invites answered or withdrawn before `invites_before` or still
    /// pending but expired before it. Afterwards such an invite, code or request reads
    /// as unknown. Returns how many rows went.
    fn purge_finished(&self, links_before: u64, invites_before: u64) -> StoreResult<usize>;

    // ----- link requests: a claimed code waits for a signed-in device's answer -----

    /// A new device presents a link code. If a request already claimed this code: the
    /// same device (id and key) gets that request back as it stands, unchanged (`link`
    /// is ignored); any other gets [`StoreError::LinkClaimed`]. Otherwise, if the code
    /// is unknown, used, expired at `now` or its issuing device is revoked: `None`,
    /// and nothing changes. Otherwise [`StoreError::Conflict`] if the device's id or
    /// key is registered, or `link` is used; else records a `Pending` request `link`
    /// for the code's user that expires with the code, spends the code, and returns
    /// it. `device.added_at` is the request time.
    fn claim_link_code(
        &self,
        code_hash: [u8; 32],
        link: LinkId,
        device: &NewDevice,
        now: u64,
    ) -> StoreResult<Option<LinkRecord>>;
    /// A link request by id, in any state.
    fn link(&self, link: LinkId) -> StoreResult<Option<LinkRecord>>;
    /// `user`'s pending, unexpired link requests, oldest first (then by id).
    fn pending_links(&self, user: UserId, now: u64) -> StoreResult<Vec<LinkRecord>>;
    /// Answers `user`'s pending link request on behalf of `by`, a device of the same
    /// user, and returns it in its new state. On accept, adds the device (added at
    /// `now`) in the same transaction. Errors, checked in this order: `NotFound`
    /// (`"device"`) if `by` is not the user's, [`StoreError::DeviceRevoked`] if it is
    /// revoked, `NotFound` (`"link"`) if the request is unknown or another user's,
    /// [`StoreError::LinkClosed`] if it was answered, [`StoreError::LinkExpired`],
    /// then on accept [`StoreError::Conflict`] if the device id or key got registered
    /// meanwhile.
    fn answer_link(
        &self,
        user: UserId,
        link: LinkId,
        by: DeviceId,
        accept: bool,
        now: u64,
    ) -> StoreResult<LinkRecord>;

    // ----- families -----

    /// Creates a family with its host as the first member, and its family document
    /// (`DocId::from(family)`). A family has no title and its members no 호칭 here:
    /// both live in the family document (protocol 7), and the devices keep 호칭
    /// unique there. `NotFound` if the host is unknown,
    /// [`StoreError::Conflict`] if the id is used (by a family, deleted ones included,
    /// or as a personal document id), [`StoreError::TooManyFamilies`] if the host
    /// already belongs to `max_families` families.
    fn create_family(
        &self,
        family: FamilyId,
        host: UserId,
        at: u64,
        max_families: usize,
    ) -> StoreResult<()>;
    /// A family (not deleted).
    fn family(&self, family: FamilyId) -> StoreResult<Option<FamilyRecord>>;
    /// The families `user` belongs to, in the order they joined (then by id).
    fn families_of(&self, user: UserId) -> StoreResult<Vec<FamilyRecord>>;
    /// The members of a family, in the order they joined (then by user id).
    fn members(&self, family: FamilyId) -> StoreResult<Vec<MemberInfo>>;
    /// `user`'s membership in `family`, if any.
    fn membership(&self, family: FamilyId, user: UserId) -> StoreResult<Option<MemberInfo>>;
    /// Removes a member (leave or removal). `NotFound` if not a member,
    /// [`StoreError::Conflict`] for the host (who deletes the family instead).
    fn remove_member(&self, family: FamilyId, user: UserId) -> StoreResult<()>;
    /// Deletes a family: memberships, invites, blob grants and snapshot references go
    /// (the blobs are released at `at`, see [`blob_referenced`](Self::blob_referenced)),
    /// and its document stops having an owner. The id stays reserved. The caller drops
    /// the document's log ([`LogStore::drop_doc`]). `NotFound` if there is no such
    /// family.
    fn delete_family(&self, family: FamilyId, at: u64) -> StoreResult<()>;
    /// Opens `family`'s volume of `year`, the document [`FamilyId::volume`] names
    /// (issue 17): from then on [`doc_owner`](Self::doc_owner) answers
    /// [`DocOwner::Family`] for it, so it is read, written and sealed like the
    /// family's document. `Ok(true)` if it was opened now, `Ok(false)` if it was open
    /// already. `NotFound` for no such (live) family, [`StoreError::TooManyVolumes`]
    /// if the family has opened `max_volumes`, [`StoreError::Conflict`] if another
    /// document has the volume's id.
    fn open_volume(&self, family: FamilyId, year: u16, max_volumes: usize) -> StoreResult<bool>;
    /// The volumes `family` opened, by year (a deleted family's too, so that their
    /// logs can be dropped).
    fn volumes_of(&self, family: FamilyId) -> StoreResult<Vec<(u16, DocId)>>;

    // ----- invites -----

    /// Stores a pending invite, its card as given. [`StoreError::AlreadyMember`] if
    /// the invitee is a member, [`StoreError::AlreadyInvited`] if a pending invite to
    /// them for this family is unexpired at `created_at`. `NotFound` if the family or
    /// the invitee is unknown or the
    /// inviter is not a member (`"member"`), [`StoreError::Conflict`] if the id is
    /// used, [`StoreError::Invalid`] if it expires before it is created. No caps: see
    /// [`create_invite_within`](Self::create_invite_within).
    fn create_invite(&self, invite: &NewInvite) -> StoreResult<()> {
        self.create_invite_within(invite, InviteLimits::UNLIMITED)
    }
    /// [`create_invite`](Self::create_invite), then [`StoreError::TooManyInvites`] if
    /// the invitee already has `limits.per_invitee` or the family `limits.per_family`
    /// pending, unexpired invites (checked in the same transaction, so racing invites
    /// cannot overshoot): the invitee's notifications and `ListInvites` stay bounded.
    fn create_invite_within(&self, invite: &NewInvite, limits: InviteLimits) -> StoreResult<()>;
    /// An invite with its card and the directory nicknames filled in, its state
    /// computed at `now` (a pending invite past its expiry reads as `Expired`).
    fn invite(&self, invite: InviteId, now: u64) -> StoreResult<Option<InviteInfo>>;
    /// Pending, unexpired invites addressed to `user`, oldest first (then by id).
    fn invites_for(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>>;
    /// Pending, unexpired invites of a family, oldest first (then by id).
    fn invites_of_family(&self, family: FamilyId, now: u64) -> StoreResult<Vec<InviteInfo>>;
    /// What `ListInvites` shows `user` at `now`: [`invites_for`](Self::invites_for),
    /// then [`invites_of_family`](Self::invites_of_family) of each family in the order
    /// of [`families_of`](Self::families_of), every invite once — in one read, where
    /// the three calls took three, each with the pages it reads cold once the relay's
    /// writer committed since (a third fewer instructions per list, `docs/benchmarks.md`).
    fn invites_seen_by(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>>;
    /// Answers a pending, unexpired invite and returns it in its new state. On accept,
    /// adds the membership (role member, joined at `now`) in the same transaction.
    /// Errors, checked in this order: `NotFound`, [`StoreError::InviteClosed`]
    /// (already answered or withdrawn), [`StoreError::InviteExpired`], then on accept
    /// `AlreadyMember`, [`StoreError::TooManyFamilies`] (the invitee already belongs
    /// to `max_families` families).
    fn answer_invite(
        &self,
        invite: InviteId,
        accept: bool,
        now: u64,
        max_families: usize,
    ) -> StoreResult<InviteInfo>;
    /// Withdraws a pending, unexpired invite and returns it. Errors: `NotFound`,
    /// [`StoreError::InviteClosed`], [`StoreError::InviteExpired`].
    fn withdraw_invite(&self, invite: InviteId, now: u64) -> StoreResult<InviteInfo>;

    // ----- documents and blobs: ownership for access checks -----

    /// Who a document belongs to: a family's document or a user's personal document.
    /// `None` for an unknown document and for a deleted family's.
    fn doc_owner(&self, doc: DocId) -> StoreResult<Option<DocOwner>>;
    /// Records that `family` may read `blob`, uploaded by its member `by` (an
    /// **upload grant**). Idempotent: granting it again keeps the first size; a grant
    /// re-uploaded by another member no longer has a single uploader (see
    /// [`settle_snapshot`](Self::settle_snapshot)). `NotFound` if there is no such
    /// family.
    fn grant_blob(
        &self,
        family: FamilyId,
        blob: BlobHash,
        size: u64,
        by: UserId,
    ) -> StoreResult<()>;
    /// Grants a finished upload — to its family as [`grant_blob`](Self::grant_blob)
    /// does, or to the uploader as [`grant_blob_to_user`](Self::grant_blob_to_user)
    /// does — after checking again, in the same transaction, what allowed it to start:
    /// the device is the uploader's and not revoked, the uploader is a member of the
    /// family, and the blob fits in `quota` (or already counts against the grantee).
    /// A refusal is an [`UploadVerdict`] and changes nothing. `NotFound("device")` if
    /// the device is not the uploader's, `NotFound("user")` for an unknown uploader.
    fn grant_upload(&self, upload: &UploadGrant) -> StoreResult<UploadVerdict>;
    /// Records that `blob` is one of `user`'s personal blobs (their avatar, a
    /// snapshot of their personal document): it is then read like their personal
    /// document, by `user` and by everyone who shares a family with them, including
    /// families joined later. Idempotent: granting it again keeps the first size.
    /// `NotFound` if there is no such user.
    fn grant_blob_to_user(&self, user: UserId, blob: BlobHash, size: u64) -> StoreResult<()>;
    /// Whether `user` may read `blob`: it was granted to (or is the current snapshot
    /// of a document of) a family `user` currently belongs to, or `user`, or a user who
    /// currently shares a family with `user`.
    fn blob_granted(&self, user: UserId, blob: BlobHash) -> StoreResult<bool>;
    /// A download's two reads: the device's record ([`device`](Self::device)) and
    /// whether its user may read `blob` ([`blob_granted`](Self::blob_granted)); `None`
    /// if there is no such device. A store that reads in transactions reads both in
    /// one, where the two calls took two, each with its pages cold once the writer
    /// committed since (`docs/benchmarks.md`). The grant is the user's whether the
    /// device is revoked or not: the caller decides what a revoked device hears.
    fn device_and_blob_grant(
        &self,
        device: DeviceId,
        blob: BlobHash,
    ) -> StoreResult<Option<(DeviceRecord, bool)>> {
        let Some(record) = self.device(device)? else {
            return Ok(None);
        };
        let granted = self.blob_granted(record.user, blob)?;
        Ok(Some((record, granted)))
    }
    /// Whether `blob` already counts against exactly this family's or user's quota (an
    /// upload grant, a snapshot reference or a release still in its grace): uploading
    /// it again needs no room. `false` for an unknown user or family, and for a deleted
    /// family once its released blobs' grace is over.
    fn has_blob_grant(&self, to: BlobGrantee, blob: BlobHash) -> StoreResult<bool>;
    /// Bytes counted against a family's quota: each distinct blob it has an upload
    /// grant for, a snapshot reference to, or released less than the grace ago.
    fn family_blob_bytes(&self, family: FamilyId) -> StoreResult<u64>;
    /// Bytes counted against a user's personal quota, as for a family.
    fn user_blob_bytes(&self, user: UserId) -> StoreResult<u64>;

    // ----- snapshot references and blob collection -----

    /// Records `blob` (of `size` bytes) as a snapshot of `doc`, owned by `to` (the
    /// document's family, or the user for a personal document): readable like the
    /// document and counted in `to`'s quota. Kept apart from upload grants, so
    /// withdrawing it never touches an upload grant of the same blob. Idempotent.
    /// `NotFound` if `to` is unknown (or a deleted family).
    fn add_snapshot_ref(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        size: u64,
    ) -> StoreResult<()>;
    /// After the log accepted `blob` as `doc`'s snapshot: withdraws every other
    /// snapshot reference of `doc` (the blobs are released at `at`), and takes over
    /// the upload grant of `blob` to `to` if `by` was its only uploader — the bytes
    /// `by` uploaded for this very snapshot, which must not outlive it in the quota.
    /// An upload grant made by anyone else (a member's photo) is never touched.
    /// `NotFound` if `doc` has no reference to `blob`.
    fn settle_snapshot(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        by: UserId,
        at: u64,
    ) -> StoreResult<()>;
    /// The part of [`settle_snapshot`](Self::settle_snapshot) that a *pending*
    /// snapshot already does: takes over the upload grant of `blob` to `to` if `by`
    /// was its only uploader, so the pusher's own upload of the snapshot's bytes goes
    /// with the snapshot reference when it is replaced or expires unconfirmed. Other
    /// references of `doc` are left alone (the confirmed snapshot stays).
    /// `NotFound` if `doc` has no reference to `blob`.
    fn adopt_snapshot_upload(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        by: UserId,
    ) -> StoreResult<()>;
    /// Withdraws one snapshot reference of `doc` (a snapshot the log did not take),
    /// releasing the blob at `at`; returns whether there was one.
    fn drop_snapshot_ref(&self, doc: DocId, blob: BlobHash, at: u64) -> StoreResult<bool>;
    /// Whether anything still holds `blob`: an upload grant (to a live family or a
    /// user), a snapshot reference, or a release not yet expired. A blob for which
    /// this is false may be deleted from the blob store.
    fn blob_referenced(&self, blob: BlobHash) -> StoreResult<bool>;
    /// Forgets the releases made before `before` (their grace is over); returns how
    /// many.
    fn expire_blob_releases(&self, before: u64) -> StoreResult<usize>;
}

/// Per-document append-only logs of opaque chunks.
pub trait LogStore: Send + Sync + std::fmt::Debug {
    /// Appends a chunk and returns its seq, durably, with no quota and no author (see
    /// [`append_batch`](Self::append_batch)).
    fn append(&self, doc: DocId, chunk: ChunkId, bytes: &[u8], at: u64) -> StoreResult<Appended> {
        let one = NewChunk {
            doc,
            chunk,
            bytes,
            author: None,
            at,
            max_log_bytes: u64::MAX,
            sealing: Sealing::Any,
        };
        self.append_batch(&[one])?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Invalid("no answer for the chunk".into())))
    }
    /// Appends a group of chunks durably and returns each one's result in order. Each
    /// chunk is idempotent by chunk id: one already in the log returns its existing seq
    /// and [`Appended::existed`] = true (a chunk repeated within the group is appended
    /// once; its repeat says `existed`). Seqs start at 1 and have no gaps within a
    /// document. A chunk a snapshot has dropped is no longer known: pushed again, it is
    /// appended anew (harmless, since merges are idempotent). A new chunk that would
    /// make its log hold more than its `max_log_bytes` of chunks is refused alone with
    /// [`StoreError::DocumentFull`]. The caller has checked that `chunk` is
    /// blake3(`bytes`). The chunk's author is stored with it; a re-push of a chunk
    /// already in the log keeps the author it was first stored with. Sealing
    /// ([`NewChunk::sealing`]): a [`Sealing::Seals`] chunk marks its log sealed for
    /// good; once it is, a [`Sealing::Clear`] chunk is refused alone with
    /// [`StoreError::DocumentSealed`]; while it is not, a [`Sealing::Envelope`] one
    /// with [`StoreError::NotSealed`] (a re-push of a chunk already in the log is
    /// answered as before, whatever its sealing). A backend should commit the group at once — one transaction,
    /// one fsync — which is what makes the relay's group commit pay.
    fn append_batch(&self, chunks: &[NewChunk<'_>]) -> StoreResult<Vec<StoreResult<Appended>>>;
    /// Bytes of chunks a document's log holds now (dropped ones not counted); 0 for an
    /// unknown document.
    fn log_bytes(&self, doc: DocId) -> StoreResult<u64>;
    /// Whether the log was sealed by its family's host ([`Sealing::Seals`]); false
    /// for an unknown document.
    fn log_sealed(&self, doc: DocId) -> StoreResult<bool>;
    /// Chunks with seq > `since`, with their authors, in order, at most `limit`,
    /// skipping those covered by the snapshot (the caller sends the snapshot first when `since` < its seq).
    /// Empty for an unknown document.
    fn read_since(&self, doc: DocId, since: Seq, limit: usize) -> StoreResult<Vec<StoredChunk>>;
    /// The latest seq of a document (0 when empty).
    fn head(&self, doc: DocId) -> StoreResult<Seq>;
    /// Records a snapshot blob covering seq ≤ `covers_seq` and drops the chunks it
    /// covers. Ignored (`Ok(false)`) if an equal or newer snapshot exists;
    /// [`StoreError::Invalid`] if `covers_seq` is 0 or past the head.
    fn put_snapshot(&self, doc: DocId, snapshot: &SnapshotRef) -> StoreResult<bool>;
    /// The latest snapshot, if any.
    fn snapshot(&self, doc: DocId) -> StoreResult<Option<SnapshotRef>>;
    /// Records a pushed snapshot as the document's *pending* snapshot, replacing the
    /// pending one (whatever its seq: the newest push wins) and dropping no chunk.
    /// [`PendingPut::Same`] if that very snapshot (seq and blob) is already pending
    /// (its push time and pusher stay), [`PendingPut::Stale`] if the confirmed
    /// snapshot already covers `covers_seq`; [`StoreError::Invalid`] if `covers_seq`
    /// is 0 or past the head.
    fn put_pending_snapshot(
        &self,
        doc: DocId,
        pending: &PendingSnapshot,
    ) -> StoreResult<PendingPut>;
    /// The pending snapshot, if any (expired or not: see
    /// [`expire_pending_snapshots`](Self::expire_pending_snapshots)).
    fn pending_snapshot(&self, doc: DocId) -> StoreResult<Option<PendingSnapshot>>;
    /// Confirms the pending snapshot: if it is exactly (`covers_seq`, `blob`) and was
    /// pushed at or after `pushed_since` (not expired), records it as the snapshot,
    /// drops the chunks it covers and forgets it as pending, in one transaction, and
    /// returns it. `NotFound("pending snapshot")` otherwise (replaced, expired,
    /// confirmed already), and nothing changes.
    fn confirm_snapshot(
        &self,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
        pushed_since: u64,
    ) -> StoreResult<PendingSnapshot>;
    /// Forgets the pending snapshots pushed before `before` and returns them, by
    /// document, so their blob references can be withdrawn.
    fn expire_pending_snapshots(&self, before: u64) -> StoreResult<Vec<(DocId, PendingSnapshot)>>;
    /// Drops a document's log, snapshot and pending snapshot (family deleted); a no-op
    /// for an unknown document. The snapshots' blobs are left to the blob store.
    fn drop_doc(&self, doc: DocId) -> StoreResult<()>;
}

/// Content-addressed bytes. Writes go to a temporary place and become visible under
/// their hash only once verified, so a reader never sees a partial blob.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Whether a small read (a thumbnail, an avatar) is a local file or memory read, so
    /// the relay may do it on the async worker that asked (see
    /// [`AccountStore::answers_at_once`]); not for an object store across the network.
    fn reads_at_once(&self) -> bool {
        false
    }
    /// Bytes the store's disk can still take, when it can tell (a local folder; an
    /// object store's room is not the relay's to see).
    fn free_bytes(&self) -> StoreResult<Option<u64>> {
        Ok(None)
    }
    /// Starts an upload; write bytes to the returned sink, then `finish` it. A sink
    /// dropped without `finish` leaves nothing behind.
    fn begin(&self) -> StoreResult<Box<dyn BlobSink>>;
    /// Whether a blob exists, and its size.
    fn size(&self, hash: BlobHash) -> StoreResult<Option<u64>>;
    /// Reads `len` bytes at `offset` (clamped to the blob's end: empty at or past it).
    /// `NotFound` if there is no such blob.
    fn read(&self, hash: BlobHash, offset: u64, len: u64) -> StoreResult<Vec<u8>>;
    /// The whole blob, `size` bytes as [`size`](Self::size) said (fewer if it is
    /// shorter): a small download's one read. A store in front of another may answer
    /// from memory ([`CachedBlobs`]).
    fn read_whole(&self, hash: BlobHash, size: u64) -> StoreResult<Bytes> {
        self.read(hash, 0, size).map(Bytes::from)
    }
    /// The whole blob if a cache in front of the store holds it: a look in memory, never
    /// a read of the store, so it may be asked on an async worker whatever the store.
    fn kept(&self, _hash: BlobHash) -> Option<Bytes> {
        None
    }
    /// What a cache in front of the store holds and how often it answered; `None`
    /// without one.
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }
    /// Up to `limit` stored blobs with a hash greater than `after` (all, from the
    /// first, for `None`), in hash order: a sweep pages through them.
    fn list(&self, after: Option<BlobHash>, limit: usize) -> StoreResult<Vec<StoredBlob>>;
    /// Deletes a blob; returns whether it existed. Only the blob sweep calls it, for
    /// blobs nothing references ([`AccountStore::blob_referenced`]).
    fn delete(&self, hash: BlobHash) -> StoreResult<bool>;
}

/// An upload in progress.
pub trait BlobSink: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> StoreResult<()>;
    /// Verifies that the bytes hash to `expected` and publishes them under it
    /// (durably). [`StoreError::HashMismatch`] otherwise, and nothing is published.
    /// Publishing a blob that already exists is fine (deduplication); it counts as
    /// stored now ([`StoredBlob::stored_at`]).
    fn finish(self: Box<Self>, expected: BlobHash) -> StoreResult<u64>;
}
