//! The relay stores' error type.

/// Why a store operation failed. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The email (or handle) is already registered.
    #[error("this email is already registered")]
    EmailTaken,
    /// The user is already a member of the family.
    #[error("already a member of this family")]
    AlreadyMember,
    /// A pending invite to this user for this family exists.
    #[error("already invited to this family")]
    AlreadyInvited,
    /// The invite expired before it was answered.
    #[error("the invite has expired")]
    InviteExpired,
    /// The invite was already answered or withdrawn.
    #[error("the invite is no longer open")]
    InviteClosed,
    /// Another device (id or key) already claimed this link code.
    #[error("the link code was claimed by another device")]
    LinkClaimed,
    /// The link request was already confirmed or rejected.
    #[error("the link request was already answered")]
    LinkClosed,
    /// The link request expired before it was answered.
    #[error("the link request has expired")]
    LinkExpired,
    /// The document's log holds as many chunk bytes as its quota allows.
    #[error("the document's log is full")]
    DocumentFull,
    /// A clear chunk for a family document whose log is sealed.
    #[error("the family's documents are sealed: push the change sealed")]
    DocumentSealed,
    /// A member other than the host pushed the first envelope of a clear family's
    /// document (only the host seals a family).
    #[error("only the family's host seals its documents")]
    NotSealed,
    /// The invitee already has, or the family already sent, as many pending invites
    /// as allowed ([`InviteLimits`](super::InviteLimits)).
    #[error("too many pending invites")]
    TooManyInvites,
    /// The user already belongs to as many families as allowed.
    #[error("the user belongs to too many families")]
    TooManyFamilies,
    /// The family already opened as many volumes as the relay keeps.
    #[error("the family has opened too many volumes")]
    TooManyVolumes,
    /// The user already has as many device certificates as the relay keeps.
    #[error("too many device certificates")]
    TooManyCerts,
    /// The device acting was revoked (it may no longer do anything).
    #[error("the device is revoked")]
    DeviceRevoked,
    /// The referenced user, device, family, invite or blob does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An id or key is already registered.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The bytes uploaded do not hash to the expected blob hash.
    #[error("the bytes do not match their hash")]
    HashMismatch,
    /// A value is out of range for the store (e.g. a snapshot past the log's head).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The backend failed (I/O, SQLite, a full disk, a lock held too long).
    #[error("storage failure: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data does not make sense (an id of the wrong length, a negative count,
    /// an unknown state): the database was damaged or written by something else.
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    /// The database was written by a newer version of the relay; this build refuses
    /// to open it rather than misread it.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    NewerSchema {
        /// The schema version found in the database.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// A thread panicked while holding the store's lock; the store refuses further
    /// use rather than risk half-applied state.
    #[error("the store's lock was poisoned by a panic")]
    Poisoned,
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;
