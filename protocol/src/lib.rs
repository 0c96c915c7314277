//! Wire types shared by the Dorandoran relay and its clients.

pub mod ids;

pub use ids::{BlobHash, ChunkId, DeviceId, DocId, FamilyId, IdError, InviteId, Seq, UserId};
