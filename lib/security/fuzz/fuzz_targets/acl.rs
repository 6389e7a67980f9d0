#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((v, n)) = security::acl::Acl::parse(data) {
        assert!(n <= data.len());
        let b = v.to_bytes();
        assert_eq!(security::acl::Acl::parse(&b).map(|r| r.0), Ok(v));
    }
});
