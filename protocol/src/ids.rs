//! Identifiers. Random ids are 16 bytes; content ids are blake3 hashes (32 bytes).
//!
//! Every id prints and parses as lowercase hex, which is what the command line and
//! the apps show. Parsing answers a typed [`IdError`] and never panics.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is not lowercase/uppercase hex of the right length.
    #[error("{kind} must be {expected} hex characters, got {got:?}")]
    Malformed {
        /// Which kind of id was expected.
        kind: &'static str,
        /// How many hex characters that kind has.
        expected: usize,
        /// The (possibly truncated) input.
        got: String,
    },
}

/// Lowercase hex of `bytes`, written into `out` (at least twice as long) without
/// allocating: ids are printed on hot paths (a blob's file name and etag on every
/// download), and `hex::encode` builds its string one `char` at a time, about 70
/// instructions a byte.
fn hex_str<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a str {
    let out = &mut out[..bytes.len() * 2];
    // Cannot fail: `out` is exactly twice as long as `bytes`.
    let _ = hex::encode_to_slice(bytes, out);
    // Only ASCII hex digits were written, so this is never the empty fallback.
    std::str::from_utf8(out).unwrap_or_default()
}

fn parse_hex<const N: usize>(kind: &'static str, s: &str) -> Result<[u8; N], IdError> {
    let mut out = [0u8; N];
    match hex::decode_to_slice(s, &mut out) {
        Ok(()) => Ok(out),
        Err(_) => Err(IdError::Malformed {
            kind,
            expected: N * 2,
            got: s.chars().take(80).collect(),
        }),
    }
}

macro_rules! random_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A new random id.
            pub fn random() -> Self {
                Self(rand_bytes())
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// Lowercase hex, as shown to people and stored in documents.
            pub fn to_hex(&self) -> String {
                hex_str(&self.0, &mut [0; 32]).to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(hex_str(&self.0, &mut [0; 32]))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($kind, "({})"), hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_hex::<16>($kind, s).map(Self)
            }
        }
    };
}

macro_rules! hash_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The blake3 hash of `bytes`.
            pub fn of(bytes: &[u8]) -> Self {
                Self(*blake3::hash(bytes).as_bytes())
            }

            /// Whether `bytes` hash to this id.
            pub fn verifies(&self, bytes: &[u8]) -> bool {
                Self::of(bytes) == *self
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex_str(&self.0, &mut [0; 64]).to_owned()
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(h: blake3::Hash) -> Self {
                Self(*h.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(hex_str(&self.0, &mut [0; 64]))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($kind, "({})"), hex::encode(&self.0[..8]))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_hex::<32>($kind, s).map(Self)
            }
        }
    };
}

fn rand_bytes() -> [u8; 16] {
    rand::random()
}

random_id!(
    /// A person. Stable across their devices; assigned by the relay at registration.
    UserId,
    "UserId"
);
random_id!(
    /// One device of a user (phone, laptop). Signs in with its own ed25519 key.
    DeviceId,
    "DeviceId"
);
random_id!(
    /// A family (the shared space). Its family document has the same id.
    FamilyId,
    "FamilyId"
);
random_id!(
    /// A synced document: a family document or a user's personal document.
    DocId,
    "DocId"
);
random_id!(
    /// A pending invitation to join a family.
    InviteId,
    "InviteId"
);
random_id!(
    /// A request to link a new device, waiting for a signed-in device of the account
    /// to confirm or reject it. Assigned by the relay when a code is claimed.
    LinkId,
    "LinkId"
);
hash_id!(
    /// A blob (photo, thumbnail, voice message): blake3 of its bytes.
    BlobHash,
    "BlobHash"
);
hash_id!(
    /// A chunk of Automerge changes in a document log: blake3 of its bytes.
    ChunkId,
    "ChunkId"
);

/// A position in a document's log on the relay. The first chunk has seq 1; 0 means
/// "nothing yet", so `since = 0` asks for the whole log.
pub type Seq = u64;

impl From<FamilyId> for DocId {
    /// A family's shared document has the family's id.
    fn from(f: FamilyId) -> Self {
        DocId(f.0)
    }
}

/// What a family's id is XORed with to name its key log. Any fixed value that is not
/// zero would do; XOR makes the relation two-way, so the relay finds the family of a
/// key log without a table of them.
const KEY_LOG_MASK: [u8; 16] = *b"doran key log v1";

fn key_log_xor(id: [u8; 16]) -> [u8; 16] {
    std::array::from_fn(|i| id[i] ^ KEY_LOG_MASK[i])
}

/// The first bytes of every sealed chunk and snapshot (an end-to-end envelope: `DRD`
/// then its format's version): all a relay, which opens nothing, can tell of one.
pub const SEALED_PREFIX: [u8; 3] = *b"DRD";

/// Whether `bytes` (a chunk or snapshot) is an end-to-end envelope, by its first bytes
/// (an Automerge change starts with its own magic, never with these).
pub fn looks_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&SEALED_PREFIX)
}

/// The context of a sealed family's id mark ([`FamilyId::says_sealed`]).
const SEALED_MARK_CONTEXT: &str = "dorandoran 2026-12 sealed family id";

/// The first 4 bytes a sealed family's id carries: a keyed hash of its other 12.
fn sealed_mark(rest: &[u8]) -> [u8; 4] {
    let hash = blake3::derive_key(SEALED_MARK_CONTEXT, rest);
    [hash[0], hash[1], hash[2], hash[3]]
}

impl FamilyId {
    /// A new family's id: 12 random bytes, and before them — for a family whose
    /// documents are sealed end to end — a mark derived from them
    /// ([`FamilyId::says_sealed`]); a clear family's id is random and never carries
    /// the mark. The id names the family's document, key log and key group on every
    /// device, so whether a family is sealed is no relay's to say: a device takes it
    /// from the id, not from the first chunk the relay serves it.
    pub fn new_family(sealed: bool) -> Self {
        loop {
            let mut id = FamilyId::random();
            if sealed {
                let mark = sealed_mark(&id.0[4..]);
                id.0[..4].copy_from_slice(&mark);
            } else if id.says_sealed() {
                // One random id in 2^32 carries the mark by chance.
                continue;
            }
            // Nor may it (or its key log) have a volume's shape, by the same chance.
            if DocId::from(id).may_name_a_new_document() {
                return id;
            }
        }
    }

    /// Whether this id was made for a sealed family ([`FamilyId::new_family`]). A
    /// family created before ids carried the mark says nothing here (its first chunk
    /// decides, as then).
    pub fn says_sealed(self) -> bool {
        self.0[..4] == sealed_mark(&self.0[4..])
    }

    /// The family's key log: a document log like the family document's, read and
    /// written by the same members, whose chunks are the family's end-to-end key
    /// group messages (MLS Commits, Welcomes and key packages; issue 18). The relay
    /// stores and orders them like any chunk, and never compacts it.
    pub fn key_log(self) -> DocId {
        DocId(key_log_xor(self.0))
    }
}

impl DocId {
    /// The family this document would be the key log of ([`FamilyId::key_log`]);
    /// whether that family exists is the relay's to look up.
    pub fn key_log_family(self) -> FamilyId {
        FamilyId(key_log_xor(self.0))
    }

    /// Whether this id has the shape of a family's volume ([`FamilyId::volume`]): its
    /// first 4 bytes are a keyed hash of its other 12. Which family and year it would
    /// be is not told by the id: the relay keeps the volumes its families opened.
    pub fn says_volume(self) -> bool {
        self.0[..4] == volume_mark(&self.0[4..])
    }

    /// Whether a new family or personal document may take this id: neither it nor its
    /// key log may have a volume's shape. Volume ids are derived from the family's id
    /// and a year, so a member who knows the family's id could otherwise take a
    /// volume's id (or make it their family's key log) before the family opens it,
    /// and keep the family from ever opening that year. Ids made by
    /// [`FamilyId::new_family`] always may.
    pub fn may_name_a_new_document(self) -> bool {
        !self.says_volume() && !DocId(key_log_xor(self.0)).says_volume()
    }
}

/// The years a family's data can be kept in volumes ([`FamilyId::volume`]): the
/// instants the documents hold are read within 1900–2200.
pub const VOLUME_YEARS: std::ops::RangeInclusive<u16> = 1900..=2200;

/// The volume an instant (unix ms) belongs to: its year in UTC, within
/// [`VOLUME_YEARS`] (an instant before or after them is in the first or the last).
/// Devices put what is made at an instant in that year's volume, and the relay always
/// lets a family open the volume of the year it is now.
pub fn volume_year(unix_ms: i64) -> u16 {
    // Days to a civil date (Howard Hinnant's `civil_from_days`), the year alone.
    let days = unix_ms.div_euclid(86_400_000) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let year = year_of_era + era * 400 + i64::from(month_index >= 10);
    let (first, last) = (*VOLUME_YEARS.start(), *VOLUME_YEARS.end());
    year.clamp(i64::from(first), i64::from(last)) as u16
}

const VOLUME_ID_CONTEXT: &str = "dorandoran 2026-12 family volume id";
const VOLUME_MARK_CONTEXT: &str = "dorandoran 2026-12 family volume mark";

/// The first 4 bytes of a volume's id: a keyed hash of its other 12.
fn volume_mark(rest: &[u8]) -> [u8; 4] {
    let hash = blake3::derive_key(VOLUME_MARK_CONTEXT, rest);
    [hash[0], hash[1], hash[2], hash[3]]
}

impl FamilyId {
    /// The document holding the family's data of `year` (issue 17,
    /// `docs/architecture.md`, "Per-year volumes"): derived from the family's id and
    /// the year, so every device names it alike with nothing to look up. It carries a
    /// volume's mark ([`DocId::says_volume`]), which no family or personal document
    /// may carry ([`DocId::may_name_a_new_document`]). The relay learns it when a
    /// member opens it ([`Request::OpenVolume`](crate::Request::OpenVolume)); it is
    /// then read and written like the family's document, and sealed by the family's
    /// key group.
    pub fn volume(self, year: u16) -> DocId {
        let mut input = [0u8; 18];
        input[..16].copy_from_slice(&self.0);
        input[16..].copy_from_slice(&year.to_be_bytes());
        let hash = blake3::derive_key(VOLUME_ID_CONTEXT, &input);
        let mut id = [0u8; 16];
        id[4..].copy_from_slice(&hash[..12]);
        let mark = volume_mark(&id[4..]);
        id[..4].copy_from_slice(&mark);
        DocId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_lowercase_hex_and_parse_back() {
        let random = DeviceId([
            0x0f, 0xa0, 0xff, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xab,
        ]);
        assert_eq!(random.to_string(), "0fa0ff000102030405060708090a0bab");
        assert_eq!(random.to_hex(), random.to_string());
        let hash = ChunkId::of(b"a chunk");
        assert_eq!(hash.to_string(), hex::encode(hash.0));
        assert_eq!(hash.to_hex(), hash.to_string());
        for _ in 0..100 {
            let id = FamilyId::random();
            assert_eq!(id.to_string().parse::<FamilyId>(), Ok(id));
            let hash = BlobHash::of(&id.0);
            assert_eq!(hash.to_hex().parse::<BlobHash>(), Ok(hash));
        }
    }

    #[test]
    fn a_sealed_familys_id_says_so_and_a_clear_ones_does_not() {
        for _ in 0..1000 {
            assert!(FamilyId::new_family(true).says_sealed());
            assert!(!FamilyId::new_family(false).says_sealed());
        }
        let mut id = FamilyId::new_family(true);
        id.0[15] ^= 1;
        assert!(!id.says_sealed(), "a changed byte breaks the mark");
        assert_ne!(FamilyId::new_family(true), FamilyId::new_family(true));
    }

    #[test]
    fn a_key_log_names_its_family_and_no_other_document() {
        let f = FamilyId::random();
        assert_eq!(f.key_log().key_log_family(), f);
        assert_ne!(f.key_log(), DocId::from(f));
        assert_ne!(FamilyId::random().key_log(), f.key_log());
    }

    #[test]
    fn a_volume_is_named_by_its_family_and_year_and_by_nothing_else() {
        let f = FamilyId::new_family(true);
        let v = f.volume(2026);
        assert_eq!(v, f.volume(2026), "every device names it alike");
        assert!(v.says_volume());
        assert_ne!(v, f.volume(2027));
        assert_ne!(v, FamilyId::new_family(true).volume(2026));
        assert_ne!(v, DocId::from(f));
        assert_ne!(v, f.key_log());
        // A fixed vector: the derivation is part of the format.
        let fixed = FamilyId([7; 16]).volume(2019);
        assert_eq!(fixed.to_string(), "8cad5bedf6df1aa901ecb1cd706038df");
        for sealed in [true, false] {
            for _ in 0..1000 {
                let id = DocId::from(FamilyId::new_family(sealed));
                assert!(!id.says_volume() && id.may_name_a_new_document());
            }
        }
        // Neither a volume's id nor one whose key log is a volume's names a new
        // family or personal document.
        assert!(!v.may_name_a_new_document());
        let squatting_key_log = DocId(v.key_log_family().0);
        assert!(!squatting_key_log.may_name_a_new_document());
    }

    #[test]
    fn an_instant_is_in_its_utc_years_volume() {
        let at = |y: i64, rest_ms: i64| {
            // Midnight UTC of 1 January of `y` (days from 1970 by whole years).
            let days: i64 = if y >= 1970 {
                (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum()
            } else {
                -(y..1970)
                    .map(|y| if leap(y) { 366 } else { 365 })
                    .sum::<i64>()
            };
            days * 86_400_000 + rest_ms
        };
        fn leap(y: i64) -> bool {
            (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        }
        assert_eq!(volume_year(0), 1970);
        for y in [1900, 1969, 1999, 2000, 2024, 2026, 2100, 2200] {
            assert_eq!(volume_year(at(y, 0)), y as u16, "1 January {y}");
            assert_eq!(
                volume_year(at(y, -1)),
                (y - 1).max(1900) as u16,
                "31 December {}",
                y - 1
            );
        }
        // 2026-12-31 23:59:59.999 UTC, 2026-12-31 15:00 UTC (midnight in Seoul).
        assert_eq!(volume_year(at(2027, -1)), 2026);
        assert_eq!(volume_year(at(2027, -9 * 3_600_000)), 2026);
        // 29 February of a leap year.
        assert_eq!(volume_year(at(2024, 59 * 86_400_000)), 2024);
        assert_eq!(volume_year(i64::MIN), 1900);
        assert_eq!(volume_year(i64::MAX), 2200);
    }

    #[test]
    fn ids_round_trip_through_hex() {
        let u = UserId::random();
        assert_eq!(u.to_string().parse::<UserId>().unwrap(), u);
        let h = BlobHash::of(b"photo");
        assert_eq!(h.to_string().parse::<BlobHash>().unwrap(), h);
        assert!(h.verifies(b"photo"));
        assert!(!h.verifies(b"photo!"));
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(FamilyId::random(), FamilyId::random());
    }

    #[test]
    fn malformed_ids_are_typed_errors() {
        for bad in ["", "zz", "abc", &"a".repeat(33), "é".repeat(16).as_str()] {
            assert!(matches!(
                bad.parse::<UserId>(),
                Err(IdError::Malformed { .. })
            ));
        }
    }
}
