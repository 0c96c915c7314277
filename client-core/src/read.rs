//! Reading entities out of an Automerge document into the model types: fast, and
//! leniently.
//!
//! **Fast.** Automerge hydrates a whole subtree in one ordered pass over its operations
//! (`ReadDoc::hydrate`); reading the same entity field by field with `get` seeks in the
//! operation columns once per field and was an order of magnitude slower on a large
//! family. So an entity is hydrated natively, then its fields are picked out of the
//! hydrated map. Writing still goes through `autosurgeon`, whose encoding (unit enums
//! as strings, `None` as null, bytes as bytes) this reader mirrors.
//!
//! **Leniently.** The family's rules ([`crate::rules`]) check where a write goes and
//! who wrote it, not the value's type: any member can put a string where a time
//! belongs, an empty map where a comment belongs, a year-9999 instant, a 2 MiB title.
//! One bad value must not hide an entity from everyone (its owner could then neither
//! see nor delete it), and what apps are promised must hold whatever was written. So:
//!
//! - an entity is dropped only when it is not a map at all (its id is all there is);
//!   each of its fields is read on its own, a bad one taking a default (an empty name,
//!   no cover, time 0);
//! - a nested item (one like, one tick, one comment) that does not read is skipped,
//!   not its entity;
//! - what apps trust is clamped: instants to [`EARLIEST`]..=[`LATEST`], texts to the
//!   product's limits ([`crate::validate`]), covers, avatars and waveforms to their
//!   ranges, colors to the palette, an event's days into order.

mod family;
mod personal;

use std::collections::BTreeMap;

use automerge::{ScalarValue, hydrate};
use doran_protocol::text::TextRule;
pub use family::Entity;
pub(crate) use personal::personal;

/// The earliest instant read from a document (1900-01-01T00:00Z, in ms): an older one
/// is read as this.
pub const EARLIEST: i64 = -2_208_988_800_000;
/// The latest instant read from a document (2200-01-01T00:00Z, in ms): a later one is
/// read as this. Far inside what the calendar arithmetic can represent, in any offset.
pub const LATEST: i64 = 7_258_118_400_000;

/// An instant from a document, clamped to [`EARLIEST`]..=[`LATEST`].
pub fn instant(ms: i64) -> i64 {
    ms.clamp(EARLIEST, LATEST)
}

/// `s` cut to at most `max` characters.
pub fn cut(mut s: String, max: usize) -> String {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
    }
    s
}

/// A hydrated Automerge map, read field by field; every reader returns `None` for a
/// missing field or one of another type.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a>(&'a hydrate::Map);

impl<'a> Fields<'a> {
    /// The fields of `value`, if it is a map.
    pub fn of(value: &'a hydrate::Value) -> Option<Self> {
        match value {
            hydrate::Value::Map(m) => Some(Fields(m)),
            _ => None,
        }
    }

    /// Every entry, by key.
    pub fn entries(self) -> impl Iterator<Item = (&'a String, &'a hydrate::Value)> {
        self.0.iter().map(|(k, v)| (k, &v.value))
    }

    fn scalar(self, key: &str) -> Option<&'a ScalarValue> {
        match self.0.get(key)? {
            hydrate::Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A string (a scalar string, or a text object).
    pub fn string(self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            hydrate::Value::Scalar(ScalarValue::Str(s)) => Some(s.to_string()),
            hydrate::Value::Text(t) => Some(t.to_string()),
            _ => None,
        }
    }

    /// A string, or empty.
    pub fn id(self, key: &str) -> String {
        self.string(key).unwrap_or_default()
    }

    /// A text shown to people: cut to the limit of `rule`, or empty.
    pub fn text(self, key: &str, rule: TextRule) -> String {
        cut(self.id(key), rule.max)
    }

    /// An integer (signed or not, or a counter), if it fits an `i64`.
    pub fn int(self, key: &str) -> Option<i64> {
        scalar_int(self.scalar(key)?)
    }

    /// A non-negative integer, if it fits a `u64`.
    pub fn uint(self, key: &str) -> Option<u64> {
        match self.scalar(key)? {
            ScalarValue::Uint(u) => Some(*u),
            s => u64::try_from(scalar_int(s)?).ok(),
        }
    }

    /// An instant (ms), clamped ([`instant`]).
    pub fn instant(self, key: &str) -> Option<i64> {
        self.int(key).map(instant)
    }

    /// A boolean.
    pub fn bool(self, key: &str) -> Option<bool> {
        match self.scalar(key)? {
            ScalarValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// A blob's key: 32 bytes, else none.
    pub fn key(self, key: &str) -> Option<crate::seal::BlobKey> {
        self.bytes(key).and_then(crate::seal::BlobKey::from_slice)
    }

    /// Bytes.
    pub fn bytes(self, key: &str) -> Option<&'a [u8]> {
        match self.scalar(key)? {
            ScalarValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A nested map.
    pub fn map(self, key: &str) -> Option<Fields<'a>> {
        Fields::of(self.0.get(key)?)
    }

    /// A nested map of instants by key (likes, ticks, participants, families), each
    /// entry that is not an integer skipped.
    pub fn instants(self, key: &str) -> BTreeMap<String, i64> {
        self.map(key)
            .into_iter()
            .flat_map(Fields::entries)
            .filter_map(|(k, v)| match v {
                hydrate::Value::Scalar(s) => Some((k.clone(), instant(scalar_int(s)?))),
                _ => None,
            })
            .collect()
    }
}

fn scalar_int(s: &ScalarValue) -> Option<i64> {
    match s {
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Some(*i),
        ScalarValue::Uint(u) => i64::try_from(*u).ok(),
        ScalarValue::Counter(c) => Some(i64::from(c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_count_characters() {
        assert_eq!(cut("가족사진".to_owned(), 2), "가족");
        assert_eq!(cut("ab".to_owned(), 5), "ab");
        assert_eq!(cut(String::new(), 0), "");
    }

    #[test]
    fn instants_are_clamped() {
        assert_eq!(instant(i64::MAX), LATEST);
        assert_eq!(instant(i64::MIN), EARLIEST);
        assert_eq!(instant(253_402_300_799_000), LATEST);
        assert_eq!(instant(1_700_000_000_000), 1_700_000_000_000);
    }
}
