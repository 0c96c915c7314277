//! The Dorandoran engine on a device.
