//! Parses arbitrary bytes as a `$LogFile` (restart pages, records, the last
//! checkpoint, the analysis pass): none of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ntfs::log::fuzz_one_log(data);
});
