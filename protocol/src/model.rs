//! Records the relay answers with and pushes in events: families and members,
//! invites, devices, directory entries, presence.
//!
//! Times are unix milliseconds ([`UnixMillis`](crate::UnixMillis)) as seen by the
//! relay. Like frames, these are postcard-encoded by field order: **fields and enum
//! variants may only be appended in a new protocol version**, never reordered.

mod device;
mod directory;
mod family;
mod invite;
mod presence;

pub use device::{Certifier, DeviceCert, DeviceInfo, DeviceKeyPackage, PendingLinkInfo, UserCerts};
pub use directory::DirectoryEntry;
pub use family::{FamilySummary, MemberInfo, Role};
pub use invite::{InviteInfo, InviteState};
pub use presence::PresenceInfo;
