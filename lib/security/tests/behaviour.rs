//! Documented Windows behaviour, exercised through the public API.

use nt::status::*;
use security::access::*;
use security::acl::*;
use security::check::{access_check, object_label, CheckFlags};
use security::sd::*;
use security::sddl;
use security::sid::{self, Sid};
use security::token::*;

fn alice() -> Sid {
    Sid::parse_str("S-1-5-21-7-8-9-1001").unwrap()
}
fn check(s: &str, t: &Token, d: u32) -> Result<u32, NtStatus> {
    access_check(
        &sddl::parse(s).unwrap(),
        t,
        d,
        &GenericMapping::FILE,
        CheckFlags::default(),
    )
}
fn user() -> Token {
    Token::standard_user(alice())
}
fn admin() -> Token {
    Token::administrator(alice())
}

#[test]
fn sid_parse_lowercase_prefix() {
    assert_eq!(Sid::parse_str("s-1-5-18").unwrap(), Sid::local_system());
}
#[test]
fn sid_len_matches_bytes() {
    for s in [Sid::world(), Sid::builtin_administrators(), alice()] {
        assert_eq!(s.len(), s.to_bytes().len());
    }
}
#[test]
fn sid_parse_ignores_trailing_bytes() {
    let mut b = Sid::world().to_bytes();
    b.extend_from_slice(&[0xAA; 5]);
    assert_eq!(Sid::parse(&b).unwrap(), (Sid::world(), 12));
}
#[test]
fn sid_authority_accessor() {
    assert_eq!(Sid::builtin_administrators().authority(), 5);
    assert_eq!(Sid::builtin_administrators().sub_authorities(), &[32, 544]);
    assert!(Sid::new(1 << 48, &[]).is_none());
}
#[test]
fn sid_ordering_is_total() {
    let mut v = vec![
        Sid::local_system(),
        Sid::world(),
        Sid::builtin_administrators(),
    ];
    v.sort();
    v.dedup();
    assert_eq!(v.len(), 3);
}
#[test]
fn map_generic_key() {
    assert_eq!(map_generic(GENERIC_READ, &GenericMapping::KEY), KEY_READ);
    assert_eq!(
        map_generic(GENERIC_ALL, &GenericMapping::KEY),
        KEY_ALL_ACCESS
    );
    assert_eq!(
        map_generic(GENERIC_WRITE | GENERIC_EXECUTE, &GenericMapping::KEY),
        KEY_WRITE | KEY_EXECUTE
    );
}
#[test]
fn standard_rights_composition() {
    assert_eq!(
        STANDARD_RIGHTS_REQUIRED,
        DELETE | READ_CONTROL | WRITE_DAC | WRITE_OWNER
    );
    assert_eq!(STANDARD_RIGHTS_ALL, STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE);
}
#[test]
fn acl_size_counts_padding() {
    let mut a = Ace::allow(1, Sid::world());
    a.extra = vec![1];
    assert_eq!(a.size(), 24);
    let b = Acl::from_aces(vec![a]).to_bytes();
    assert_eq!(b.len(), 32);
    assert!(Acl::parse(&b).is_ok());
}
#[test]
fn acl_unknown_ace_type_rejected() {
    let mut b = Acl::from_aces(vec![Ace::allow(1, Sid::world())]).to_bytes();
    b[8] = 0x40;
    assert_eq!(Acl::parse(&b), Err(STATUS_INVALID_ACL));
}
#[test]
fn acl_ace_with_bad_sid_rejected() {
    let mut b = Acl::from_aces(vec![Ace::allow(1, Sid::world())]).to_bytes();
    b[16] = 7; // SID revision
    assert_eq!(Acl::parse(&b), Err(STATUS_INVALID_ACL));
}
#[test]
fn acl_unaligned_size_rejected() {
    assert_eq!(
        Acl::parse(&[2, 0, 9, 0, 0, 0, 0, 0, 0]),
        Err(STATUS_INVALID_ACL)
    );
}
#[test]
fn acl_rev4_accepts_plain_aces() {
    let mut b = Acl::from_aces(vec![Ace::allow(1, Sid::world())]).to_bytes();
    b[0] = 4;
    assert_eq!(Acl::parse(&b).unwrap().0.revision, 4);
}
#[test]
fn sd_empty_roundtrip() {
    let sd = SecurityDescriptor::new();
    let b = sd.to_bytes();
    assert_eq!(b.len(), 20);
    assert_eq!(SecurityDescriptor::parse(&b).unwrap(), sd);
}
#[test]
fn sd_dacl_offset_ignored_without_present_bit() {
    let mut sd = sddl::parse("O:SYD:(A;;FA;;;WD)").unwrap();
    let mut b = sd.to_bytes();
    b[2] &= !(SE_DACL_PRESENT as u8);
    sd.control &= !SE_DACL_PRESENT;
    let p = SecurityDescriptor::parse(&b).unwrap();
    assert!(!p.dacl_present());
    assert!(p.dacl.is_none());
}
#[test]
fn sd_control_bits_values() {
    assert_eq!(SE_DACL_PRESENT, 4);
    assert_eq!(SE_DACL_PROTECTED, 0x1000);
    assert_eq!(SE_DACL_AUTO_INHERITED, 0x400);
    assert_eq!(SE_SELF_RELATIVE, 0x8000);
}
#[test]
fn sddl_whitespace_tolerated_in_sid() {
    assert_eq!(sddl::parse_sid(" SY ").unwrap(), Sid::local_system());
}
#[test]
fn sddl_decimal_rights() {
    assert_eq!(sddl::parse_rights("16").unwrap(), 16);
}
#[test]
fn sddl_numeric_sid_formats_numeric() {
    assert_eq!(sddl::format_sid(&alice()), "S-1-5-21-7-8-9-1001");
}
#[test]
fn sddl_sacl_flags() {
    let sd = sddl::parse("S:PAI(AU;SAFA;FA;;;WD)").unwrap();
    assert_ne!(sd.control & SE_SACL_PROTECTED, 0);
    assert_ne!(sd.control & SE_SACL_AUTO_INHERITED, 0);
    let a = &sd.sacl.as_ref().unwrap().aces[0];
    assert_eq!(a.flags, SUCCESSFUL_ACCESS_ACE_FLAG | FAILED_ACCESS_ACE_FLAG);
    assert_eq!(sddl::format(&sd).unwrap(), "S:PAI(AU;SAFA;FA;;;WD)");
}
#[test]
fn sddl_duplicate_section_rejected() {
    assert!(sddl::parse("D:(A;;FA;;;SY)D:(A;;FA;;;SY)").is_err());
}
#[test]
fn token_system_is_admin_member() {
    assert!(Token::system().sid_in_token(&Sid::builtin_administrators(), false));
}
#[test]
fn token_integrity_absent_is_untrusted() {
    let mut t = user();
    t.groups.retain(|g| g.attributes & SE_GROUP_INTEGRITY == 0);
    assert_eq!(t.integrity(), sid::UNTRUSTED_RID);
}
#[test]
fn token_disabled_group_does_not_allow() {
    let mut t = user();
    for g in &mut t.groups {
        if g.sid == Sid::world() {
            g.attributes &= !SE_GROUP_ENABLED;
        }
    }
    assert_eq!(
        check("O:SYD:(A;;FA;;;WD)", &t, 1),
        Err(STATUS_ACCESS_DENIED)
    );
}
#[test]
fn token_integrity_group_never_matches_ace() {
    assert_eq!(
        check("O:SYD:(A;;FA;;;ME)", &user(), 1),
        Err(STATUS_ACCESS_DENIED)
    );
}
#[test]
fn token_restrict_marks_restricted() {
    assert!(!user().is_restricted());
    assert!(user().restrict(&[Sid::world()]).is_restricted());
}
#[test]
fn adjust_previous_state_lets_caller_restore() {
    let mut t = admin();
    let (_, prev) = t.adjust_privileges(Some(&[Privilege {
        luid: privilege::DEBUG,
        attributes: SE_PRIVILEGE_ENABLED,
    }]));
    assert!(t.has_privilege(privilege::DEBUG));
    t.adjust_privileges(Some(&prev));
    assert!(!t.has_privilege(privilege::DEBUG));
}
#[test]
fn check_admin_full_control_on_typical_file() {
    let s = "O:BAG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200a9;;;BU)";
    assert_eq!(check(s, &admin(), GENERIC_ALL), Ok(FILE_ALL_ACCESS));
    assert_eq!(
        check(s, &user(), GENERIC_READ | GENERIC_EXECUTE),
        Ok(FILE_GENERIC_READ | FILE_GENERIC_EXECUTE)
    );
    assert_eq!(check(s, &user(), GENERIC_WRITE), Err(STATUS_ACCESS_DENIED));
    assert_eq!(check(s, &user(), MAXIMUM_ALLOWED), Ok(0x1200a9));
}
#[test]
fn check_system_blocked_by_explicit_deny() {
    assert_eq!(
        check("O:BAD:(D;;FA;;;SY)(A;;FA;;;WD)", &Token::system(), 1),
        Err(STATUS_ACCESS_DENIED)
    );
}
#[test]
fn check_partial_grant_across_aces() {
    let s = "O:SYD:(A;;0x1;;;WD)(A;;0x2;;;BU)(A;;0x4;;;IU)";
    assert_eq!(check(s, &user(), 7), Ok(7));
    assert_eq!(check(s, &user(), 15), Err(STATUS_ACCESS_DENIED));
}
#[test]
fn check_deny_partial_overlap() {
    assert_eq!(check("O:SYD:(D;;0x2;;;WD)(A;;0x3;;;WD)", &user(), 1), Ok(1));
    assert_eq!(
        check("O:SYD:(D;;0x2;;;WD)(A;;0x3;;;WD)", &user(), 3),
        Err(STATUS_ACCESS_DENIED)
    );
}
#[test]
fn check_low_integrity_reads_medium_file() {
    let mut t = user();
    t.set_integrity(sid::LOW_RID);
    assert!(check("O:SYD:(A;;FA;;;WD)", &t, GENERIC_READ).is_ok());
    assert_eq!(
        check("O:SYD:(A;;FA;;;WD)", &t, DELETE),
        Err(STATUS_ACCESS_DENIED)
    );
    assert!(check("O:SYD:(A;;FA;;;WD)S:(ML;;NW;;;LW)", &t, GENERIC_WRITE).is_ok());
}
#[test]
fn check_label_object_default() {
    let sd = sddl::parse("S:(ML;;NWNR;;;SI)").unwrap();
    assert_eq!(
        object_label(&sd),
        (
            sid::SYSTEM_RID,
            MANDATORY_NO_WRITE_UP | MANDATORY_NO_READ_UP
        )
    );
}
#[test]
fn check_null_dacl_still_applies_integrity() {
    assert_eq!(
        check(
            "O:SYD:NO_ACCESS_CONTROLS:(ML;;NW;;;HI)",
            &user(),
            GENERIC_WRITE
        ),
        Err(STATUS_ACCESS_DENIED)
    );
    assert!(check(
        "O:SYD:NO_ACCESS_CONTROLS:(ML;;NW;;;HI)",
        &user(),
        GENERIC_READ
    )
    .is_ok());
}
#[test]
fn check_owner_rights_deny() {
    assert_eq!(
        check("O:BUD:(D;;WD;;;OW)(A;;FA;;;WD)", &user(), WRITE_DAC),
        Err(STATUS_ACCESS_DENIED)
    );
    assert_eq!(
        check("O:BUD:(D;;WD;;;OW)(A;;FA;;;WD)", &user(), READ_CONTROL),
        Ok(READ_CONTROL)
    );
}
#[test]
fn check_creator_owner_ace_on_object_does_not_match() {
    assert_eq!(
        check("O:BUD:(A;;FA;;;CO)", &user(), 1),
        Err(STATUS_ACCESS_DENIED)
    );
}
#[test]
fn check_max_allowed_with_take_ownership() {
    let mut t = admin();
    t.adjust_privileges(Some(&[Privilege {
        luid: privilege::TAKE_OWNERSHIP,
        attributes: SE_PRIVILEGE_ENABLED,
    }]));
    assert_eq!(check("O:SYD:", &t, MAXIMUM_ALLOWED), Ok(WRITE_OWNER));
}
#[test]
fn check_system_security_with_max_allowed() {
    let mut t = admin();
    t.adjust_privileges(Some(&[Privilege {
        luid: privilege::SECURITY,
        attributes: SE_PRIVILEGE_ENABLED,
    }]));
    let g = check(
        "O:SYD:(A;;FR;;;WD)",
        &t,
        MAXIMUM_ALLOWED | ACCESS_SYSTEM_SECURITY,
    )
    .unwrap();
    assert_eq!(g, FILE_GENERIC_READ | ACCESS_SYSTEM_SECURITY);
}
