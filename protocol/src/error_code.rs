//! Stable, typed error codes carried by [`ErrorFrame`](crate::ErrorFrame) and
//! [`Goodbye`](crate::ServerFrame::Goodbye).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $code:literal, $name:literal, $text:literal;
    )*) => {
        /// Why the relay refused something, as a stable number.
        ///
        /// On the wire an error code is its `u16` number, not a serde variant index,
        /// so codes can be added without breaking anyone: a code this build does not
        /// know decodes to [`ErrorCode::Unknown`] and keeps its number, so an older
        /// client survives a newer server. **Numbers are never reused or changed.**
        /// Codes are grouped by hundreds (they are not HTTP status codes):
        ///
        /// | code | name | meaning |
        /// |---:|---|---|
        /// | 100 | `malformed_frame` | the frame could not be decoded |
        /// | 101 | `frame_too_large` | the frame is longer than `MAX_FRAME_BYTES` |
        /// | 102 | `unsupported_protocol_version` | the relay does not speak the `Hello` version |
        /// | 103 | `unsupported_encoding` | unknown encoding-version byte |
        /// | 104 | `unexpected_frame` | valid frame, wrong moment (e.g. `SignIn` before `Hello`) |
        /// | 200 | `not_signed_in` | the frame needs a signed-in device |
        /// | 201 | `already_signed_in` | sign-in or registration on a signed-in connection |
        /// | 202 | `bad_signature` | a signature does not verify |
        /// | 203 | `challenge_expired` | the challenge's `expires_at` has passed |
        /// | 204 | `challenge_replayed` | the challenge was already used |
        /// | 205 | `unknown_user` | no such user (sign-in, recovery) |
        /// | 206 | `unknown_device` | no such device for this user |
        /// | 207 | `device_revoked` | the device was revoked |
        /// | 208 | `invalid_link_code` | link code unknown, expired or already used |
        /// | 209 | `link_pending` | the link waits for a signed-in device to confirm it |
        /// | 210 | `link_rejected` | a signed-in device rejected the link |
        /// | 211 | `link_expired` | the link request expired before it was confirmed |
        /// | 212 | `link_claimed` | another device already presented this link code |
        /// | 213 | `link_answered` | the link request was already confirmed or rejected |
        /// | 214 | `wrong_relay` | (device-side, never sent) the relay's id names another address than the one the device connected to |
        /// | 300 | `forbidden` | not a member / not the host / not the owner |
        /// | 301 | `not_found` | the family, user, invite, device or document does not exist |
        /// | 302 | `already_exists` | the id or label is taken (e.g. email already registered) |
        /// | 303 | `already_member` | the invitee is already in the family |
        /// | 304 | `already_invited` | a pending invite for this person and family exists |
        /// | 305 | `invite_expired` | the invite is past its `expires_at` |
        /// | 306 | `invite_withdrawn` | the invite was withdrawn |
        /// | 307 | `invite_answered` | the invite was already accepted or rejected |
        /// | 308 | `name_taken` | this 호칭 is already used in the family |
        /// | 309 | `conflict` | the request contradicts the current state |
        /// | 400 | `invalid_input` | a field fails validation (length, emptiness, range) |
        /// | 401 | `too_large` | a chunk or blob is larger than allowed |
        /// | 402 | `hash_mismatch` | content does not hash to its claimed id |
        /// | 403 | `rate_limited` | too many requests; retry later |
        /// | 404 | `quota_exceeded` | a storage or count quota is full |
        /// | 405 | `too_slow` | the client was too slow (no `Hello` or sign-in in time, an upload below the minimum rate) |
        /// | 406 | `document_full` | the document's log holds all the bytes the relay allows; compact it |
        /// | 407 | `too_many_families` | the user belongs to as many families as the relay allows |
        /// | 408 | `document_sealed` | the family's documents are sealed now; push the change sealed |
        /// | 500 | `internal` | the relay failed; nothing was changed |
        /// | 501 | `shutting_down` | the relay is going away; reconnect elsewhere or later |
        /// | 502 | `unavailable` | a dependency (storage) is briefly unavailable; retry |
        /// | 503 | `busy` | the relay is at a capacity limit right now; retry after the hint |
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
            /// A code this build does not know (sent by a newer peer). It keeps the
            /// number so it can be logged and passed on. Building `Unknown` with a
            /// known number is allowed but decodes back as the named variant.
            Unknown(u16),
        }

        impl ErrorCode {
            /// Every named code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The stable wire number.
            pub const fn code(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Unknown(code) => code,
                }
            }

            /// The code for a wire number; unknown numbers give [`ErrorCode::Unknown`].
            pub const fn from_code(code: u16) -> Self {
                match code {
                    $($code => ErrorCode::$variant,)*
                    other => ErrorCode::Unknown(other),
                }
            }

            /// A stable snake_case name, for logs and metrics labels.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Unknown(_) => "unknown",
                }
            }

            /// A short English description.
            pub const fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Unknown(_) => "unknown error",
                }
            }
        }
    };
}

error_codes! {
    /// The frame could not be decoded (bad postcard, unknown variant, trailing
    /// bytes, empty). Sent in answer to such a frame; the connection stays open.
    MalformedFrame = 100, "malformed_frame", "malformed frame";
    /// The frame is longer than [`MAX_FRAME_BYTES`](crate::limits::MAX_FRAME_BYTES).
    FrameTooLarge = 101, "frame_too_large", "frame too large";
    /// The relay does not speak the `protocol_version` of the `Hello`; it follows
    /// with `Goodbye`.
    UnsupportedProtocolVersion = 102, "unsupported_protocol_version", "unsupported protocol version";
    /// The frame's first byte is not an encoding version the relay knows.
    UnsupportedEncoding = 103, "unsupported_encoding", "unsupported frame encoding";
    /// A well-formed frame arrived at the wrong moment (a second `Hello`, `SignIn`
    /// before `Hello`, `Push` before the challenge was answered).
    UnexpectedFrame = 104, "unexpected_frame", "unexpected frame";
    /// The frame needs a signed-in device (requests, subscriptions, pushes).
    NotSignedIn = 200, "not_signed_in", "not signed in";
    /// `Register`, `SignIn`, `Recover` or `LinkDevice` on a connection that is already
    /// signed in.
    AlreadySignedIn = 201, "already_signed_in", "already signed in";
    /// A signature does not verify against the expected key and canonical message.
    BadSignature = 202, "bad_signature", "bad signature";
    /// The challenge expired before it was answered; reconnect for a new one.
    ChallengeExpired = 203, "challenge_expired", "challenge expired";
    /// The challenge was already used to sign in.
    ChallengeReplayed = 204, "challenge_replayed", "challenge already used";
    /// No user with this id or key.
    UnknownUser = 205, "unknown_user", "unknown user";
    /// No device with this id for this user.
    UnknownDevice = 206, "unknown_device", "unknown device";
    /// The device was revoked; it can no longer sign in. Also a `Goodbye` reason.
    DeviceRevoked = 207, "device_revoked", "device revoked";
    /// The link code is unknown, expired or already used.
    InvalidLinkCode = 208, "invalid_link_code", "invalid link code";
    /// `LinkDevice`: the code is claimed by this device and waits for a signed-in
    /// device of the user to confirm it; ask again later (`retry_after_ms`).
    LinkPending = 209, "link_pending", "waiting for confirmation on another device";
    /// `LinkDevice`: a signed-in device of the user rejected this device; the code is
    /// spent.
    LinkRejected = 210, "link_rejected", "link rejected";
    /// The link request expired before a signed-in device confirmed it.
    LinkExpired = 211, "link_expired", "link request expired";
    /// `LinkDevice`: another device (key) already presented this code.
    LinkClaimed = 212, "link_claimed", "link code claimed by another device";
    /// `ConfirmLink`: the request was already confirmed or rejected.
    LinkAnswered = 213, "link_answered", "link request already answered";
    /// Never sent by a relay: a device stops with it when the relay it connected to
    /// announces an id (`Challenge.server_id`) that is a URL naming another host or
    /// port, so that it signs nothing another relay would take (a relay in the
    /// middle forwarding the real one's challenges).
    WrongRelay = 214, "wrong_relay", "the relay's id names another address";
    /// Not allowed: not a member of the family, not its host, not the owner of the
    /// device or invite.
    Forbidden = 300, "forbidden", "forbidden";
    /// The family, user, invite, device or document does not exist (or the caller may
    /// not know it exists).
    NotFound = 301, "not_found", "not found";
    /// The id or label is already taken (email registered, family id used).
    AlreadyExists = 302, "already_exists", "already exists";
    /// The invitee is already a member of the family.
    AlreadyMember = 303, "already_member", "already a member";
    /// A pending invite for this person and family already exists.
    AlreadyInvited = 304, "already_invited", "already invited";
    /// The invite is past its `expires_at`.
    InviteExpired = 305, "invite_expired", "invite expired";
    /// The invite was withdrawn by the family.
    InviteWithdrawn = 306, "invite_withdrawn", "invite withdrawn";
    /// The invite was already accepted or rejected.
    InviteAnswered = 307, "invite_answered", "invite already answered";
    /// The member name (호칭) is already used by someone else in the family.
    NameTaken = 308, "name_taken", "name already taken in this family";
    /// The request contradicts the current state (e.g. a snapshot covering a seq the
    /// log has not reached, the host leaving without deleting the family).
    Conflict = 309, "conflict", "conflict";
    /// A field fails wire-level validation (too long, empty, out of range).
    InvalidInput = 400, "invalid_input", "invalid input";
    /// A chunk or blob is larger than allowed.
    TooLarge = 401, "too_large", "too large";
    /// Content does not hash to its claimed id (chunk id, blob hash).
    HashMismatch = 402, "hash_mismatch", "hash mismatch";
    /// Too many requests or lookups; the error frame says when to retry.
    RateLimited = 403, "rate_limited", "rate limited";
    /// A storage or count quota is full (bytes per family, families per user).
    QuotaExceeded = 404, "quota_exceeded", "quota exceeded";
    /// The client was too slow: a websocket that did not send `Hello` or sign in
    /// before its deadline (a `Goodbye` reason), or an upload that fell below the
    /// relay's minimum transfer rate. Retrying (faster) can succeed.
    TooSlow = 405, "too_slow", "too slow";
    /// The document's log on the relay holds as many chunk bytes as the relay allows
    /// for it; a snapshot (compaction) frees the chunks it covers.
    DocumentFull = 406, "document_full", "document full";
    /// The user already belongs to as many families as the relay allows (creating or
    /// joining another is refused; leaving or deleting one makes room).
    TooManyFamilies = 407, "too_many_families", "too many families";
    /// The family's documents are sealed end to end now (its host sealed a family
    /// that was clear): a clear chunk is refused. The device keeps the change and
    /// pushes it again sealed once it is in the family's key group.
    DocumentSealed = 408, "document_sealed", "document sealed";
    /// The relay failed; nothing was changed. Safe to retry.
    Internal = 500, "internal", "internal error";
    /// The relay is shutting down; reconnect (later or to another node).
    ShuttingDown = 501, "shutting_down", "server shutting down";
    /// Storage is briefly unavailable; retry.
    Unavailable = 502, "unavailable", "temporarily unavailable";
    /// The relay is at a capacity limit (e.g. its memory of signed requests is full);
    /// retry after `retry_after_ms`.
    Busy = 503, "busy", "busy";
}

impl ErrorCode {
    /// Whether retrying the same frame later can succeed without changing it.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::TooSlow
                | ErrorCode::Internal
                | ErrorCode::ShuttingDown
                | ErrorCode::Unavailable
                | ErrorCode::Busy
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.code())
    }
}

impl From<u16> for ErrorCode {
    fn from(code: u16) -> Self {
        ErrorCode::from_code(code)
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        code.code()
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(ErrorCode::from_code)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_round_trip() {
        let mut seen = HashSet::new();
        let mut last = 0;
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.code()), "duplicate {}", code.code());
            assert!(code.code() > last, "ALL is in numeric order");
            last = code.code();
            assert_eq!(ErrorCode::from_code(code.code()), code);
            assert_ne!(code.name(), "unknown");
        }
    }

    #[test]
    fn unknown_codes_keep_their_number() {
        let code = ErrorCode::from_code(4242);
        assert_eq!(code, ErrorCode::Unknown(4242));
        assert_eq!(code.code(), 4242);
        let bytes = postcard::to_allocvec(&code).unwrap();
        assert_eq!(postcard::from_bytes::<ErrorCode>(&bytes).unwrap(), code);
        assert_eq!(code.to_string(), "unknown error (4242)");
    }

    #[test]
    fn codes_travel_as_their_number() {
        let bytes = postcard::to_allocvec(&ErrorCode::Forbidden).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&300u16).unwrap());
    }

    #[test]
    fn the_doc_table_lists_every_code() {
        let source = include_str!("error_code.rs");
        for &code in ErrorCode::ALL {
            let row = format!("/// | {} | `{}` |", code.code(), code.name());
            assert!(source.contains(&row), "doc table misses {row}");
        }
        let rows = source
            .lines()
            .filter(|l| l.trim_start().starts_with("/// | ") && !l.contains("code | name"))
            .count();
        assert_eq!(rows, ErrorCode::ALL.len(), "doc table has extra rows");
    }

    #[test]
    fn display_says_what_and_which() {
        assert_eq!(ErrorCode::RateLimited.to_string(), "rate limited (403)");
        assert!(ErrorCode::RateLimited.is_transient());
        assert!(!ErrorCode::Forbidden.is_transient());
    }
}
