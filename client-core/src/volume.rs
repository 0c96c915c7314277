//! A family's per-year volumes (issue 17, `docs/architecture.md`, "Per-year volumes"):
//! the documents a family's calendar entries, missions, photos and voice messages are
//! kept in, one per year, so that a device loads the years its screens need rather
//! than the family's whole history (loading an Automerge document rebuilds every
//! change it ever had).
//!
//! A volume is named by the family's id and its year ([`FamilyId::volume`]) and starts
//! with the same first change on every device ([`genesis`]): two devices starting a
//! year apart, offline, make the same maps, so their later writes under them merge
//! (two `photos` maps made apart would hide one another). That change is never stored
//! nor pushed; each device makes it. Its changes pass the volume's rules
//! ([`DocRules::Volume`]).

mod merge;

pub(crate) use merge::{Aside, hides, merge_parts};
pub use merge::{Merged, Place, merged};

use automerge::{ActorId, AutoCommit, Change, ObjType, ROOT, transaction::Transactable};
use doran_protocol::{FamilyId, UserId};

use crate::rules::DocRules;

/// The collections a volume holds, made by its first change in this order (the order
/// is part of the first change's bytes: never change it).
pub const COLLECTIONS: [&str; 4] = ["calendar", "missions", "photos", "voices"];

/// The message of a volume's first change.
const GENESIS_MESSAGE: &str = "volume.genesis";

/// The first change of `family`'s volume of `year`: the same bytes on every device
/// (written as the volume's own id, at time 0, with [`COLLECTIONS`] in order, and no
/// author), so devices that start a year apart hold one volume.
pub fn genesis(family: FamilyId, year: u16) -> Change {
    let id = family.volume(year);
    let mut doc = AutoCommit::new().with_actor(ActorId::from(id.0.to_vec()));
    for collection in COLLECTIONS {
        // A fresh document takes a map at its root: this cannot fail.
        if let Err(e) = doc.put_object(ROOT, collection, ObjType::Map) {
            unreachable!("a fresh document refused a map: {e}");
        }
    }
    doc.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(GENESIS_MESSAGE)
            .with_time(0),
    );
    match doc.get_last_local_change() {
        Some(change) => change,
        None => unreachable!("a commit of four maps made no change"),
    }
}

/// The rules of `family`'s volume of `year`, whose host is `host` (the author of the
/// family document's first change, [`crate::rules::host_of`]).
pub fn rules(family: FamilyId, year: u16, host: UserId) -> DocRules {
    DocRules::Volume {
        host,
        genesis: genesis(family, year).hash(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_makes_the_same_first_change_and_no_other() {
        let family = FamilyId([7; 16]);
        let mut a = genesis(family, 2026);
        let mut b = genesis(family, 2026);
        assert_eq!(a.raw_bytes(), b.raw_bytes());
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.deps(), &[]);
        assert_eq!(a.timestamp(), 0);
        assert_eq!(a.message(), Some(GENESIS_MESSAGE));
        assert_ne!(a.hash(), genesis(family, 2027).hash());
        assert_ne!(a.hash(), genesis(FamilyId([8; 16]), 2026).hash());
        // Pinned: a change of these bytes would split every family's volumes in two
        // (devices of the old and the new build would each make their own).
        assert_eq!(
            hex::encode(a.bytes()),
            concat!(
                "856f4a83303e65cc015800102571ca2942f716d0d707e2b8be1fc84f0101000e",
                "766f6c756d652e67656e657369730005152134014202560270027c0863616c65",
                "6e646172086d697373696f6e730670686f746f7306766f696365730404000400",
                "0400"
            ),
            "the first change's bytes"
        );
        assert_eq!(b.bytes().len(), 98, "under 256 bytes: never compressed");
    }
}
