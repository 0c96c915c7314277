//! Wire-level limits. Every frame a peer can send is bounded by these numbers.
//!
//! They are checked in two places: [`crate::codec::decode`] refuses a frame longer
//! than [`MAX_FRAME_BYTES`] before parsing anything, and
//! [`ClientFrame::validate`](crate::ClientFrame::validate) checks the per-field limits
//! below, so the relay can answer a typed [`ErrorCode`](crate::ErrorCode) instead of
//! guessing. Product rules that are stricter (a nickname is 2–15 characters, a family
//! title 1–10, a 호칭 at most 8) are enforced by the apps and the relay on top of these;
//! lengths here are in **bytes** of UTF-8, so that one Hangul syllable (3 bytes) or one
//! emoji (4 bytes) per character always fits.

/// Largest encoded frame, header byte included: 1 MiB of chunk plus 64 KiB of room
/// for the envelope.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024 + 64 * 1024;

/// Largest chunk of Automerge changes in one [`Push`](crate::ClientFrame::Push) or
/// [`Chunk`](crate::ServerFrame::Chunk). A client with more changes splits them over
/// several chunks, or compacts with a snapshot (snapshots travel as blobs over HTTP).
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// Longest email/handle (the searchable label of a user), as in RFC 5321.
pub const MAX_EMAIL_BYTES: usize = 254;

/// Longest nickname (profile name shown in the directory).
pub const MAX_NICKNAME_BYTES: usize = 64;

/// Largest invite card ([`Request::SendInvite`](crate::Request::SendInvite)): the
/// family's title and two 호칭, sealed once, and the key that opens them sealed to
/// each of the invitee's devices and to the family (about 150 bytes each).
pub const MAX_INVITE_CARD_BYTES: usize = 8 * 1024;

/// Longest client description in [`Hello`](crate::ClientFrame::Hello)
/// (e.g. `dorandoran-desktop/0.1.0 (macOS 15)`); also the device label.
pub const MAX_CLIENT_NAME_BYTES: usize = 128;

/// Longest device-link code.
pub const MAX_LINK_CODE_BYTES: usize = 32;

/// Longest server id in a [`Challenge`](crate::Challenge).
pub const MAX_SERVER_ID_BYTES: usize = 128;

/// Longest human-readable message in an [`ErrorFrame`](crate::ErrorFrame) or
/// [`Goodbye`](crate::ServerFrame::Goodbye); longer messages are cut at a character
/// boundary when the frame is built.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Most documents in one [`Subscribe`](crate::ClientFrame::Subscribe) or
/// [`Unsubscribe`](crate::ClientFrame::Unsubscribe) frame. A client with more
/// documents sends several frames.
pub const MAX_SUBSCRIPTIONS_PER_FRAME: usize = 1024;

/// Most device certificates in one
/// [`PublishDeviceCerts`](crate::Request::PublishDeviceCerts).
pub const MAX_CERTS_PER_FRAME: usize = 16;

/// Most device certificates the relay keeps for one user (a certificate per device
/// and certifier; a user with many devices re-certified many times stays under it).
pub const MAX_CERTS_PER_USER: usize = 256;

/// Most bytes of one device's published key package
/// ([`PublishKeyPackage`](crate::Request::PublishKeyPackage)); an MLS KeyPackage of
/// this project's ciphersuite is about 350 bytes.
pub const MAX_KEY_PACKAGE_BYTES: usize = 4096;

/// Most key packages one [`KeyPackages`](crate::Response::KeyPackages) answer holds
/// (a user's oldest devices first): the answer always fits in a frame.
pub const MAX_KEY_PACKAGES_SERVED: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_chunk_fits_in_a_frame_with_room_for_the_envelope() {
        const { assert!(MAX_CHUNK_BYTES + 1024 < MAX_FRAME_BYTES) };
        const { assert!(MAX_SUBSCRIPTIONS_PER_FRAME * 32 < MAX_FRAME_BYTES) };
        const { assert!(MAX_KEY_PACKAGES_SERVED * (MAX_KEY_PACKAGE_BYTES + 64) < MAX_FRAME_BYTES) };
    }
}
