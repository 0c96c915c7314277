//! A picture handed to the photo preparer: format detection, EXIF, decoding (JPEG,
//! PNG, WebP, GIF), resizing and re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = doran_device::photo::prepare(data);
});
