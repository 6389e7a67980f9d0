//! Mounts arbitrary bytes (a raw image or an `NTFZ` sparse image) as an NTFS
//! volume, reads everything, checks it and writes a little: none of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ntfs::fuzz_one(data);
});
