//! Who may read and write what: pure rules over membership facts.
//!
//! - A **family document** is read and written by the family's members.
//! - A **personal document** is written by its owner only, and read by the owner and
//!   by the members of any family the owner belongs to.
//! - A **family blob** (photo, voice, a family document's snapshot) is read by the
//!   members of a family it was granted to (uploaded to).
//! - A **personal blob** (an avatar, a personal document's snapshot; uploaded with
//!   `?owner=me`) is granted to its user and read like their personal document: by
//!   the user and by everyone who shares a family with them, including families
//!   joined after the upload. Leaving the last shared family ends it.
//!
//!   The store answers both in one query (`AccountStore::blob_granted`), so the rule
//!   here is just its answer, see [`blob_readable`]; a hash alone is never enough.
//!
//! The session loads the facts (the caller's families, the owner's families) from
//! the store and asks these functions; nothing here does I/O.

use doran_protocol::{FamilyId, UserId};

use crate::store::DocOwner;

/// What a user may do with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocAccess {
    /// May subscribe and receive its chunks.
    pub read: bool,
    /// May push chunks and snapshots.
    pub write: bool,
    /// Hosts the family that owns it: only the host seals a clear family's documents
    /// (see `store::Sealing`).
    pub host: bool,
}

/// The facts the rules need about one user and one document.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The caller.
    pub user: UserId,
    /// The families the caller belongs to.
    pub user_families: &'a [FamilyId],
    /// For a personal document, the families its owner belongs to (else ignored).
    pub owner_families: &'a [FamilyId],
    /// The families the caller hosts.
    pub hosted: &'a [FamilyId],
}

/// The access `facts.user` has to a document owned by `owner`.
pub fn doc_access(owner: DocOwner, facts: Facts<'_>) -> DocAccess {
    match owner {
        DocOwner::Family(family) => {
            let member = facts.user_families.contains(&family);
            DocAccess {
                read: member,
                write: member,
                host: member && facts.hosted.contains(&family),
            }
        }
        DocOwner::Personal(owner) | DocOwner::PersonalKeys(owner) if owner == facts.user => {
            DocAccess {
                read: true,
                write: true,
                host: false,
            }
        }
        // The user's own devices' key group: nobody else's business.
        DocOwner::PersonalKeys(_) => DocAccess::default(),
        DocOwner::Personal(_) => DocAccess {
            read: facts
                .owner_families
                .iter()
                .any(|f| facts.user_families.contains(f)),
            write: false,
            host: false,
        },
    }
}

/// Whether a blob may be read, given whether it was granted to one of the caller's
/// families, to the caller, or to a user who shares a family with the caller.
pub fn blob_readable(granted_to_caller_or_their_families: bool) -> bool {
    granted_to_caller_or_their_families
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: UserId = UserId([1; 16]);
    const BOB: UserId = UserId([2; 16]);
    const A: FamilyId = FamilyId([10; 16]);
    const B: FamilyId = FamilyId([11; 16]);

    fn facts<'a>(user: UserId, mine: &'a [FamilyId], owners: &'a [FamilyId]) -> Facts<'a> {
        Facts {
            user,
            user_families: mine,
            owner_families: owners,
            hosted: &[],
        }
    }

    #[test]
    fn family_documents_are_for_members_only() {
        let rw = DocAccess {
            read: true,
            write: true,
            host: false,
        };
        assert_eq!(doc_access(DocOwner::Family(A), facts(ALICE, &[A], &[])), rw);
        let hosted = Facts {
            hosted: &[A],
            ..facts(ALICE, &[A], &[])
        };
        assert!(doc_access(DocOwner::Family(A), hosted).host);
        let left = Facts {
            hosted: &[A],
            ..facts(ALICE, &[], &[])
        };
        assert_eq!(doc_access(DocOwner::Family(A), left), DocAccess::default());
        assert_eq!(
            doc_access(DocOwner::Family(A), facts(ALICE, &[B], &[])),
            DocAccess::default()
        );
        assert_eq!(
            doc_access(DocOwner::Family(A), facts(ALICE, &[], &[])),
            DocAccess::default()
        );
    }

    #[test]
    fn personal_documents_are_written_by_the_owner_and_read_by_co_members() {
        let own = doc_access(DocOwner::Personal(ALICE), facts(ALICE, &[], &[]));
        assert!(own.read && own.write);

        let co_member = doc_access(DocOwner::Personal(ALICE), facts(BOB, &[A, B], &[B]));
        assert!(co_member.read);
        assert!(!co_member.write);

        let stranger = doc_access(DocOwner::Personal(ALICE), facts(BOB, &[A], &[B]));
        // Her devices' key group is hers alone, co-member or not.
        let keys = doc_access(DocOwner::PersonalKeys(ALICE), facts(ALICE, &[], &[]));
        assert!(keys.read && keys.write);
        let co_member_keys = doc_access(DocOwner::PersonalKeys(ALICE), facts(BOB, &[A, B], &[B]));
        assert_eq!(co_member_keys, DocAccess::default());
        assert_eq!(stranger, DocAccess::default());
    }

    #[test]
    fn blobs_follow_their_grants() {
        assert!(blob_readable(true));
        assert!(!blob_readable(false));
    }
}
