//! `uniffi-bindgen`: UniFFI's generator, pinned to the workspace's `uniffi`, so the
//! bindings always match the library (`scripts/bindings` runs it on the built cdylib).

fn main() {
    uniffi::uniffi_bindgen_main()
}
