#![no_main]
use libfuzzer_sys::fuzz_target;
use security::sd::SecurityDescriptor;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = SecurityDescriptor::parse(data) {
        let b = sd.to_bytes();
        assert_eq!(SecurityDescriptor::parse(&b), Ok(sd));
    }
});
