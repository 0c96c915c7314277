//! An incoming Automerge chunk, as the relay delivers it: the bounded checker, then
//! the whole apply path of a family document (Automerge's parser and the family's
//! rules) when the checker lets it through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| doran_client_core::chunk_bounds::fuzz_apply(data));
