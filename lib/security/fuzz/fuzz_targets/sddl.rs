#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = core::str::from_utf8(data) {
        if let Ok(sd) = security::sddl::parse(s) {
            let _ = security::sddl::format(&sd);
            let _ = sd.to_bytes();
        }
    }
});
