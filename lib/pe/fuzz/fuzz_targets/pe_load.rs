//! Parses arbitrary bytes as a PE32+ image, maps and relocates it, and walks
//! its exports and imports: none of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pe::fuzz_one(data);
});
