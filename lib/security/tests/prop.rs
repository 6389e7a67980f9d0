//! Property tests: random bytes never panic the parsers; values round-trip.

use proptest::prelude::*;
use security::acl::{Ace, Acl};
use security::sd::SecurityDescriptor;
use security::sid::Sid;

fn sid() -> impl Strategy<Value = Sid> {
    (
        0u64..(1 << 48),
        proptest::collection::vec(any::<u32>(), 0..=15),
    )
        .prop_map(|(a, s)| Sid::new(a, &s).unwrap())
}

fn ace() -> impl Strategy<Value = Ace> {
    (
        prop_oneof![Just(0u8), Just(1), Just(2), Just(0x11)],
        any::<u8>(),
        any::<u32>(),
        sid(),
    )
        .prop_map(|(t, f, m, s)| Ace::new(t, f, m, s))
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Sid::parse(&data);
        let _ = Acl::parse(&data);
        let _ = SecurityDescriptor::parse(&data);
        if let Ok(s) = std::str::from_utf8(&data) {
            let _ = security::sddl::parse(s);
        }
    }

    #[test]
    fn random_sddl_text_never_panics(s in "[OGDS:();A-Z0-9x-]{0,64}") {
        if let Ok(sd) = security::sddl::parse(&s) {
            let _ = security::sddl::format(&sd);
        }
    }

    #[test]
    fn sid_roundtrip(s in sid()) {
        prop_assert_eq!(Sid::parse(&s.to_bytes()).unwrap(), (s.clone(), s.len()));
        prop_assert_eq!(Sid::parse_str(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn acl_roundtrip(aces in proptest::collection::vec(ace(), 0..8)) {
        let a = Acl::from_aces(aces);
        let b = a.to_bytes();
        prop_assert_eq!(b.len(), a.size());
        prop_assert_eq!(Acl::parse(&b).unwrap().0, a);
    }

    #[test]
    fn sd_roundtrip(o in proptest::option::of(sid()), g in proptest::option::of(sid()), aces in proptest::collection::vec(ace(), 0..4)) {
        let mut sd = SecurityDescriptor::new();
        sd.owner = o;
        sd.group = g;
        sd.set_dacl(Some(Acl::from_aces(aces)));
        prop_assert_eq!(SecurityDescriptor::parse(&sd.to_bytes()).unwrap(), sd);
    }

    #[test]
    fn truncated_sd_never_panics(cut in 0usize..200) {
        let sd = security::sddl::parse("O:BAG:SYD:(A;;FA;;;SY)(D;;GW;;;WD)S:(ML;;NW;;;HI)").unwrap();
        let b = sd.to_bytes();
        let _ = SecurityDescriptor::parse(&b[..cut.min(b.len())]);
    }
}
