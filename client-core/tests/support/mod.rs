//! What several of the client-core test files start from.

#![allow(dead_code)]

use doran_client_core::{Actor, PhotoInput};
use doran_protocol::{BlobHash, DeviceId, UserId};

/// A new user's device.
pub fn actor() -> Actor {
    Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    }
}

/// A photo prepared on a device, distinct per `n`.
pub fn photo(n: u8) -> PhotoInput {
    PhotoInput {
        blob: BlobHash::of(&[n]).into(),
        thumb: BlobHash::of(&[n, n]).into(),
        mime: "image/jpeg".into(),
        size: 1000,
        width: 800,
        height: 600,
        taken_at: None,
        caption: String::new(),
    }
}
