//! [`HostError`]: why the device side of syncing (the store and the open documents)
//! failed.

use crate::{error::DocError, family_store::OpenError, store::StoreError};

/// Why a [`SyncHost`](super::SyncHost) call failed. The sync driver disconnects on
/// it; the cursors are re-read on the next connection, so nothing is skipped.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document could not be read or written.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// A document is not of the kind it was asked as (a family document opened as a
    /// personal one, or the other way round).
    #[error("document {0} is not a {1} document")]
    WrongKind(doran_protocol::DocId, &'static str),
    /// The end-to-end keys failed (the key ring could not be saved or restored, or
    /// refused a step of this device's own).
    #[error(transparent)]
    Keys(#[from] super::KeysError),
    /// The family's documents are sealed and this device cannot read its document yet
    /// (it has not been given the family's keys, or has not caught up with them): an
    /// edit now would be made on an empty copy.
    #[error("waiting for the keys of family {0}")]
    WaitingForKeys(doran_protocol::FamilyId),
    /// Another process on this device wrote the document every time this host made
    /// its edit (`EDIT_ATTEMPTS` times): the edit was not made. Try again.
    #[error("document {0} kept changing under this edit; nothing was written")]
    Overtaken(doran_protocol::DocId),
    /// An edit needs one of the family's per-year volumes (issue 17) that is not on
    /// this device (any more): nothing was written.
    #[error("family {0}'s volume of {1} is not on this device; nothing was written")]
    VolumeNotSynced(doran_protocol::FamilyId, u16),
    /// The relay signed this device in as another user than the one whose account it
    /// holds.
    #[error("signed in as {signed_in} but this device writes as {account}")]
    OtherUser {
        /// Who the relay says signed in.
        signed_in: doran_protocol::UserId,
        /// The account on this device.
        account: doran_protocol::UserId,
    },
    /// The relay named another personal document for this user than the one this
    /// device holds (a user's personal document never changes): a relay serving an
    /// unsealed one would have this device write its profile in the clear.
    #[error("the relay names personal document {served}, this device's is {known}")]
    OtherPersonalDoc {
        /// What the relay named.
        served: doran_protocol::DocId,
        /// The one this device holds.
        known: doran_protocol::DocId,
    },
}

impl From<OpenError> for HostError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::NotFound(doc) => HostError::Store(StoreError::NotFound {
                kind: "document",
                key: doc.to_hex(),
            }),
            OpenError::Store(e) => HostError::Store(e),
            OpenError::Doc(e) => HostError::Doc(e),
        }
    }
}

/// Result of a host call.
pub type HostResult<T, E = HostError> = Result<T, E>;
