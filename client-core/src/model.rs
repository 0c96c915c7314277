//! The schema of the synced documents, as Rust types mapped onto Automerge with
//! `autosurgeon`.
//!
//! Every entity lives in a map keyed by a random hex id, so concurrent inserts never
//! collide. Sets (participants, completions, likes) are maps keyed by user id, so two
//! people ticking or liking at once both land. Timestamps are Unix milliseconds;
//! calendar dates are `YYYY-MM-DD` strings (a date, not an instant: an event on the
//! 3rd is on the 3rd in every time zone).

mod family;
mod personal;

pub use family::{
    Album, CalendarEvent, Comment, Family, Hidden, Member, Mission, Photo, Role, Voice, VoiceAlbum,
};
pub(crate) use family::{
    HIDDEN_PREFIX, INVITES_PREFIX, MARKED_KINDS, MARKS_PREFIX, VOLUMES_PREFIX, hidden_key,
};
pub use personal::{DEFAULT_AVATARS, Mood, Personal, Settings};

/// The version of the document schema this build writes. Readers accept older ones.
pub const SCHEMA_VERSION: u64 = 1;

/// Serde for autosurgeon's byte vector (stored as Automerge bytes).
mod byte_vec {
    use autosurgeon::bytes::ByteVec;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &ByteVec, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ByteVec, D::Error> {
        Vec::<u8>::deserialize(d).map(ByteVec::from)
    }
}
