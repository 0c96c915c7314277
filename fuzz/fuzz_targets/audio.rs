//! A recording handed to the voice converter: the container demuxers (our WebM/EBML
//! reader and Ogg/Opus page walker, symphonia's MP4/WAV/MP3), the decoders and the MP3
//! encoder, without the guard that turns a panic into an error.
#![no_main]

use doran_audio::{ConvertOptions, convert_unguarded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = convert_unguarded(data, &ConvertOptions::default());
});
