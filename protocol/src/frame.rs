//! The frames: [`ClientFrame`] (device → relay) and [`ServerFrame`] (relay → device),
//! with the request/response and event payloads they carry.
//!
//! # Wire stability
//!
//! postcard encodes an enum as its **variant index** followed by the fields in
//! declaration order. So in every enum here, variants may only be **appended**; an
//! existing variant is never reordered, removed or given different fields (add a new
//! variant instead, and bump [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) if old
//! peers must not receive it). The tests pin every variant's index.

mod client;
mod error_frame;
mod event;
mod request;
mod response;
mod server;

pub use client::{ClientFrame, Subscription};
pub use error_frame::ErrorFrame;
pub use event::{MembershipChange, ServerEvent};
pub use request::{Request, RequestId};
pub use response::Response;
pub use server::{HttpSessionKey, ServerFrame};
