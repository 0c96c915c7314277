//! Errors of the document layer: what a UI shows when an edit is refused.

use crate::validate::Field;

/// Why a document operation was refused. Nothing is changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// A text field is empty after trimming, or longer than the product allows.
    #[error("{field} must be {min}–{max} characters, got {got}")]
    Length {
        /// Which field.
        field: Field,
        /// Fewest characters allowed.
        min: usize,
        /// Most characters allowed.
        max: usize,
        /// How many characters were given.
        got: usize,
    },
    /// A text field contains characters the product does not allow there.
    #[error("{field} contains a character that is not allowed: {ch:?}")]
    Charset {
        /// Which field.
        field: Field,
        /// The first offending character.
        ch: char,
    },
    /// A value is not one of the allowed choices (palette color, mood, cover…).
    #[error("{field}: {value:?} is not one of the allowed values")]
    NotAllowed {
        /// Which field.
        field: Field,
        /// The value given.
        value: String,
    },
    /// A date or time could not be parsed, or a range ends before it starts.
    #[error("bad date or time: {0}")]
    BadDate(String),
    /// The entity referred to does not exist (or was deleted, perhaps concurrently).
    #[error("{kind} {id} not found")]
    NotFound {
        /// What kind of entity.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The user is not a member of this family.
    #[error("user {0} is not a member of this family")]
    NotMember(String),
    /// Only the host, or only the author, may do this.
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    /// The user is already a member (use `set_member_name` to rename them).
    #[error("user {0} is already a member of this family")]
    AlreadyMember(String),
    /// Another member already uses this 호칭 in the family.
    #[error("the name {0:?} is already used in this family")]
    NameTaken(String),
    /// The user is not a participant of the mission they tried to tick.
    #[error("user {user} does not take part in mission {mission}")]
    NotParticipant {
        /// The user.
        user: String,
        /// The mission.
        mission: String,
    },
    /// A mission needs at least one participant.
    #[error("a mission needs at least one participant")]
    NoParticipants,
    /// The bytes are not an Automerge document or change, or violate the schema.
    #[error("document bytes rejected: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// An incoming chunk or change was set aside: over a cost limit, unreadable, or
    /// breaking the family document's rules (`crate::rules`). Nothing of it is stored.
    #[error("incoming change refused: {0}")]
    Refused(#[from] crate::replica::Refusal),
    /// A local edit would write more operations in one change than every device
    /// accepts ([`crate::chunk_bounds::Limits::max_change_ops`]).
    #[error("this edit is too large: {ops} operations, at most {limit}")]
    EditTooLarge {
        /// Operations the edit would write.
        ops: usize,
        /// The most one change may hold.
        limit: u64,
    },
    /// The document's contents do not match the schema this version understands.
    #[error("document does not match the schema: {0}")]
    Schema(String),
    /// What the edit changes is kept in the family's volume of this year, which this
    /// device has not loaded (`FamilyDoc::attach_volume`).
    #[error("the family's volume of {0} is not loaded")]
    VolumeNotLoaded(u16),
}

impl DocError {
    /// A refusal of a text by [`doran_protocol::text`], about `field`.
    pub fn text(field: Field, e: doran_protocol::text::TextError) -> Self {
        use doran_protocol::text::TextError;
        match e {
            TextError::Length { min, max, got } => DocError::Length {
                field,
                min,
                max,
                got,
            },
            TextError::Charset { ch } => DocError::Charset { field, ch },
            TextError::Email(_) => DocError::NotAllowed {
                field,
                value: String::new(),
            },
        }
    }
}

impl From<autosurgeon::HydrateError> for DocError {
    fn from(e: autosurgeon::HydrateError) -> Self {
        DocError::Schema(e.to_string())
    }
}

impl From<autosurgeon::ReconcileError> for DocError {
    fn from(e: autosurgeon::ReconcileError) -> Self {
        DocError::Schema(e.to_string())
    }
}

/// Result of a document operation.
pub type Result<T, E = DocError> = std::result::Result<T, E>;
