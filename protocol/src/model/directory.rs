//! What an exact email/handle lookup reveals about a user.

use serde::{Deserialize, Serialize};

use crate::{BlobHash, UserId};

/// A user found by an exact [`Request::LookupUser`](crate::Request::LookupUser): just
/// enough to confirm the right person before inviting them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// The user.
    pub user: UserId,
    /// Their nickname.
    pub nickname: String,
    /// Their profile photo, if set (fetchable by whoever received this entry).
    pub avatar: Option<BlobHash>,
}
