//! Online / last-seen status of a user.

use serde::{Deserialize, Serialize};

use crate::{UnixMillis, UserId};

/// Whether a user is connected, else when they were last seen. The relay knows this
/// from connections; it is never stored in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PresenceInfo {
    /// The user.
    pub user: UserId,
    /// Whether at least one of their devices is connected (접속중).
    pub online: bool,
    /// When their last device disconnected (or now while online); `None` if never.
    pub last_seen: Option<UnixMillis>,
}
