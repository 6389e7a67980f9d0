//! Parses arbitrary bytes with the image inspector (`pe::image`, what
//! ntrs-pe shows) and runs every directory parser: none of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pe::image::fuzz_inspect(data);
});
