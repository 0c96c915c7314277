//! An incoming Automerge chunk, as the relay delivers it: the bounded checker, then
//! the whole apply path of a family document (Automerge's parser and the family's
//! rules) when the checker lets it through.
//!
//! The apply path catches a panic inside Automerge (it refuses the chunk as
//! `Crashed` and rebuilds the document): that is the product's behaviour, so the
//! target runs with the default panic hook instead of libfuzzer-sys's, which aborts
//! even on a panic that is caught. A panic that escapes still aborts (it cannot
//! unwind out of the fuzzer's C entry point) and is reported as a crash.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: drop(std::panic::take_hook()),
    |data: &[u8]| doran_client_core::chunk_bounds::fuzz_apply(data)
);
