//! A family as the relay knows it: its membership (never its content, title or 호칭,
//! which live in the family document since protocol 7).

use serde::{Deserialize, Serialize};

use crate::{DocId, FamilyId, UnixMillis, UserId};

/// A member's role in one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The owner (호스트): created the family; may rename or delete it, remove members,
    /// withdraw any invite. Exactly one per family.
    Host,
    /// Any other member: reads and writes the family's documents and blobs, may leave.
    Member,
}

/// One member of a family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Who. (Their 호칭 is in the family document's member entry.)
    pub user: UserId,
    /// Host or member.
    pub role: Role,
    /// When they joined (creation for the host, acceptance for others).
    pub joined_at: UnixMillis,
    /// Their personal document (nickname, avatar, mood), readable by co-members.
    pub personal_doc: DocId,
}

/// A family the signed-in user belongs to, with its members.
///
/// The family document has the same id: `DocId::from(family)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilySummary {
    /// The family (and its document, which holds its title).
    pub family: FamilyId,
    /// The signed-in user's role in it.
    pub role: Role,
    /// When it was created.
    pub created_at: UnixMillis,
    /// Every member, the signed-in user included.
    #[serde(deserialize_with = "crate::wire::seq")]
    pub members: Vec<MemberInfo>,
}

impl FamilySummary {
    /// The family's shared document.
    pub fn doc(&self) -> DocId {
        DocId::from(self.family)
    }

    /// The member entry of `user`, if they belong to the family.
    pub fn member(&self, user: &UserId) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.user == *user)
    }
}
