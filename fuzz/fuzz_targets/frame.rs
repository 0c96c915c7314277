//! The wire frame decoder: both directions, and the relay's checked decode (size,
//! header, per-field limits). Must never panic nor allocate past what the input
//! justifies; a decoded frame must encode and decode back to itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| doran_protocol::codec::fuzz_decode(data));
