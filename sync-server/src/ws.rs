//! The device websocket under a session: the upgrade's socket, tungstenite on top of
//! a [`gate::Gate`] that hands it one frame at a time, and a [`Link`] that parks an
//! idle connection without its websocket buffers (see [`link`]). The session's binary
//! messages are framed and written by the relay itself (`outbox`); tungstenite reads,
//! and writes the control frames.

pub mod gate;
pub mod link;
mod outbox;
pub mod socket;

pub use link::{Closed, Link};
pub use socket::Socket;

use doran_protocol::limits::MAX_FRAME_BYTES;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes tungstenite reads (from the gate) at once, and the read buffer an open
/// websocket starts with. tungstenite zero-fills this much before every read (its
/// default, 128 KiB, made that `memset` a third of the relay's CPU under load). A
/// change frame is a few hundred bytes; a larger one is copied over in more reads.
/// The gate reads the socket in [`gate::READ_CHUNK`]s.
const READ_BUFFER: usize = 1024;

/// The websocket settings of every session: frames and messages up to twice the frame
/// limit, so an oversize frame gets a typed `FrameTooLarge` error frame (beyond that
/// the socket is closed).
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(2 * MAX_FRAME_BYTES))
        .max_frame_size(Some(2 * MAX_FRAME_BYTES))
        .read_buffer_size(READ_BUFFER)
}
