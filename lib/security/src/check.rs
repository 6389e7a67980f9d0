//! `SeAccessCheck` (MS-DTYP 2.5.3.2 plus the mandatory integrity check and
//! the restricted-token second pass described in Windows Internals ch. 7).

use crate::access::*;
use crate::acl::*;
use crate::sd::SecurityDescriptor;
use crate::sid::{self, Sid};
use crate::token::{privilege, Token, TOKEN_MANDATORY_POLICY_NO_WRITE_UP};
use nt::status::*;

/// Options for [`access_check`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckFlags {
    /// The caller opened with backup semantics (`FILE_OPEN_FOR_BACKUP_INTENT`):
    /// enabled SeBackupPrivilege / SeRestorePrivilege grant their rights.
    pub backup_intent: bool,
}

/// The owner implicit rights (`READ_CONTROL | WRITE_DAC`).
const OWNER_IMPLICIT: u32 = READ_CONTROL | WRITE_DAC;

/// Mandatory label of the object (`SepGetMandatoryLabel`): the first label
/// ACE in the SACL that is not inherit-only; default medium + NO_WRITE_UP.
pub fn object_label(sd: &SecurityDescriptor) -> (u32, u32) {
    sd.sacl
        .as_ref()
        .and_then(|a| {
            a.aces
                .iter()
                .find(|a| a.ace_type == SYSTEM_MANDATORY_LABEL_ACE_TYPE && !a.inherit_only())
        })
        .and_then(|a| a.sid.integrity_rid().map(|r| (r, a.mask)))
        .unwrap_or((sid::MEDIUM_RID, MANDATORY_NO_WRITE_UP))
}

/// Rights the mandatory integrity policy leaves to `token` (`SepMandatoryIntegrityCheck`).
pub fn mandatory_allowed(sd: &SecurityDescriptor, token: &Token, map: &GenericMapping) -> u32 {
    let (level, policy) = object_label(sd);
    if token.integrity() >= level {
        return !0;
    }
    let mut denied = 0;
    if policy & MANDATORY_NO_WRITE_UP != 0
        && token.mandatory_policy & TOKEN_MANDATORY_POLICY_NO_WRITE_UP != 0
    {
        denied |= map.write | WRITE_DAC | WRITE_OWNER | DELETE;
    }
    if policy & MANDATORY_NO_READ_UP != 0 {
        denied |= map.read;
    }
    if policy & MANDATORY_NO_EXECUTE_UP != 0 {
        denied |= map.execute;
    }
    let mut allowed_back = 0;
    if policy & MANDATORY_NO_READ_UP == 0 {
        allowed_back |= map.read;
    }
    if policy & MANDATORY_NO_EXECUTE_UP == 0 {
        allowed_back |= map.execute;
    }
    !(denied & !allowed_back)
}

/// One DACL walk in maximum-allowed form, seeded with `granted`. `matches`
/// decides whether an ACE's SID applies (`deny` selects deny-only matching).
fn dacl_pass(
    sd: &SecurityDescriptor,
    map: &GenericMapping,
    is_owner: bool,
    matches: &dyn Fn(&Sid, bool) -> bool,
    mut granted: u32,
) -> Result<u32, NtStatus> {
    let dacl = match (&sd.dacl, sd.dacl_present()) {
        (Some(d), true) => d,
        _ => return Ok(!0),
    };
    let owner_rights_present = dacl
        .aces
        .iter()
        .any(|a| a.sid.is_owner_rights() && !a.inherit_only());
    if is_owner && !owner_rights_present {
        granted |= OWNER_IMPLICIT;
    }
    let mut denied = 0u32;
    for ace in &dacl.aces {
        if ace.is_callback() {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        if ace.inherit_only() {
            continue;
        }
        if ace.object.as_ref().is_some_and(|o| o.object_type.is_some()) {
            continue; // no object type list: typed object ACEs do not apply
        }
        let deny = match ace.ace_type {
            ACCESS_ALLOWED_ACE_TYPE | ACCESS_ALLOWED_OBJECT_ACE_TYPE => false,
            ACCESS_DENIED_ACE_TYPE | ACCESS_DENIED_OBJECT_ACE_TYPE => true,
            _ => continue,
        };
        let hit = if ace.sid.is_owner_rights() {
            is_owner
        } else {
            matches(&ace.sid, deny)
        };
        if !hit {
            continue;
        }
        let mask = map_generic(ace.mask, map);
        if deny {
            denied |= mask & !granted;
        } else {
            granted |= mask & !denied;
        }
    }
    Ok(granted)
}

/// `SeAccessCheck`: can `token` get `desired` (may include
/// `MAXIMUM_ALLOWED` and generic bits) on an object protected by `sd`?
/// Returns the granted mask, or `STATUS_ACCESS_DENIED`,
/// `STATUS_PRIVILEGE_NOT_HELD` (ACCESS_SYSTEM_SECURITY without
/// SeSecurityPrivilege), `STATUS_NOT_IMPLEMENTED` (callback ACEs) or
/// `STATUS_INVALID_SECURITY_DESCR` (no owner).
pub fn access_check(
    sd: &SecurityDescriptor,
    token: &Token,
    desired: u32,
    map: &GenericMapping,
    flags: CheckFlags,
) -> Result<u32, NtStatus> {
    let owner = sd.owner.as_ref().ok_or(STATUS_INVALID_SECURITY_DESCR)?;
    let max = desired & MAXIMUM_ALLOWED != 0;
    let mut want = map_generic(desired & !MAXIMUM_ALLOWED, map);
    if want == 0 && !max {
        return Err(STATUS_ACCESS_DENIED);
    }
    let mut pre = 0u32;
    if want & ACCESS_SYSTEM_SECURITY != 0 {
        if !token.has_privilege(privilege::SECURITY) {
            return Err(STATUS_PRIVILEGE_NOT_HELD);
        }
        pre |= ACCESS_SYSTEM_SECURITY;
        want &= !ACCESS_SYSTEM_SECURITY;
    }
    if (want & WRITE_OWNER != 0 || max) && token.has_privilege(privilege::TAKE_OWNERSHIP) {
        pre |= WRITE_OWNER;
    }
    if flags.backup_intent {
        if token.has_privilege(privilege::BACKUP) {
            pre |= map.read | READ_CONTROL;
        }
        if token.has_privilege(privilege::RESTORE) {
            pre |= map.write | WRITE_DAC | WRITE_OWNER | DELETE;
        }
    }
    let mandatory = mandatory_allowed(sd, token, map);
    if !max && want & !mandatory != 0 {
        return Err(STATUS_ACCESS_DENIED);
    }
    let is_owner = token.sid_in_token(owner, false);
    let mut granted = dacl_pass(sd, map, is_owner, &|s, deny| token.sid_in_token(s, deny), 0)?;
    if token.is_restricted() {
        let r_owner = token.sid_in_restricted(owner);
        granted &= dacl_pass(sd, map, r_owner, &|s, _| token.sid_in_restricted(s), 0)?;
    }
    let granted =
        ((granted | (pre & !ACCESS_SYSTEM_SECURITY)) & mandatory) | (pre & ACCESS_SYSTEM_SECURITY);
    if max {
        let null_dacl = !sd.dacl_present() || sd.dacl.is_none();
        let valid = if null_dacl {
            map.all | STANDARD_RIGHTS_ALL
        } else {
            SPECIFIC_RIGHTS_ALL | STANDARD_RIGHTS_ALL
        };
        let g = (granted & valid) | (pre & ACCESS_SYSTEM_SECURITY);
        if g == 0 || want & !g != 0 {
            return Err(STATUS_ACCESS_DENIED);
        }
        Ok(g)
    } else if want & !granted == 0 {
        Ok(want | (pre & ACCESS_SYSTEM_SECURITY))
    } else {
        Err(STATUS_ACCESS_DENIED)
    }
}

/// `SeAccessCheck` on a self-relative security descriptor as stored by the
/// object manager: parses it (bad input gives `STATUS_INVALID_SECURITY_DESCR`,
/// `STATUS_INVALID_ACL`, ...) and runs [`access_check`].
pub fn access_check_relative(
    sd: &[u8],
    token: &Token,
    desired: u32,
    map: &GenericMapping,
    flags: CheckFlags,
) -> Result<u32, NtStatus> {
    access_check(&SecurityDescriptor::parse(sd)?, token, desired, map, flags)
}

/// `SePrivilegeCheck` for a single privilege: `STATUS_PRIVILEGE_NOT_HELD`
/// unless it is present and enabled.
pub fn privilege_check(token: &Token, luid: u32) -> Result<(), NtStatus> {
    if token.has_privilege(luid) {
        Ok(())
    } else {
        Err(STATUS_PRIVILEGE_NOT_HELD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Ace, Acl};
    use crate::token::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const M: GenericMapping = GenericMapping::FILE;
    fn alice() -> Sid {
        Sid::parse_str("S-1-5-21-1-2-3-1001").unwrap()
    }
    fn bob() -> Sid {
        Sid::parse_str("S-1-5-21-1-2-3-1002").unwrap()
    }
    fn sd(owner: Sid, aces: Vec<Ace>) -> SecurityDescriptor {
        let mut s = SecurityDescriptor::new();
        s.owner = Some(owner);
        s.group = Some(Sid::builtin_users());
        s.set_dacl(Some(Acl::from_aces(aces)));
        s
    }
    fn chk(s: &SecurityDescriptor, t: &Token, d: u32) -> Result<u32, NtStatus> {
        access_check(s, t, d, &M, CheckFlags::default())
    }
    fn user() -> Token {
        Token::standard_user(alice())
    }

    #[test]
    fn allow_everyone_read() {
        let s = sd(bob(), vec![Ace::allow(FILE_GENERIC_READ, Sid::world())]);
        assert_eq!(chk(&s, &user(), GENERIC_READ), Ok(FILE_GENERIC_READ));
        assert_eq!(chk(&s, &user(), GENERIC_WRITE), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn deny_before_allow() {
        let s = sd(
            bob(),
            vec![
                Ace::deny(1, alice()),
                Ace::allow(FILE_ALL_ACCESS, Sid::world()),
            ],
        );
        assert_eq!(chk(&s, &user(), 1), Err(STATUS_ACCESS_DENIED));
        assert_eq!(chk(&s, &user(), 2), Ok(2));
    }
    #[test]
    fn allow_before_deny_wins_in_list_order() {
        let s = sd(
            bob(),
            vec![Ace::allow(1, Sid::world()), Ace::deny(1, alice())],
        );
        assert_eq!(chk(&s, &user(), 1), Ok(1));
    }
    #[test]
    fn max_allowed_accumulates() {
        let s = sd(
            bob(),
            vec![
                Ace::allow(1, Sid::world()),
                Ace::allow(2, alice()),
                Ace::deny(4, alice()),
                Ace::allow(4 | 8, Sid::world()),
            ],
        );
        assert_eq!(chk(&s, &user(), MAXIMUM_ALLOWED), Ok(1 | 2 | 8));
    }
    #[test]
    fn max_allowed_nothing_is_denied() {
        let s = sd(bob(), vec![]);
        assert_eq!(chk(&s, &user(), MAXIMUM_ALLOWED), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn max_allowed_plus_specific_requires_specific() {
        let s = sd(bob(), vec![Ace::allow(1, Sid::world())]);
        assert_eq!(
            chk(&s, &user(), MAXIMUM_ALLOWED | 2),
            Err(STATUS_ACCESS_DENIED)
        );
        assert_eq!(chk(&s, &user(), MAXIMUM_ALLOWED | 1), Ok(1));
    }
    #[test]
    fn null_dacl_grants_all() {
        let mut s = SecurityDescriptor::new();
        s.owner = Some(bob());
        s.set_dacl(None);
        assert_eq!(chk(&s, &user(), GENERIC_ALL), Ok(FILE_ALL_ACCESS));
        assert_eq!(chk(&s, &user(), MAXIMUM_ALLOWED), Ok(FILE_ALL_ACCESS));
    }
    #[test]
    fn absent_dacl_grants_all() {
        let mut s = SecurityDescriptor::new();
        s.owner = Some(bob());
        assert_eq!(chk(&s, &user(), 0x1234), Ok(0x1234));
    }
    #[test]
    fn empty_dacl_denies() {
        let s = sd(bob(), vec![]);
        assert_eq!(chk(&s, &user(), 1), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn owner_gets_read_control_write_dac() {
        let s = sd(alice(), vec![]);
        assert_eq!(
            chk(&s, &user(), READ_CONTROL | WRITE_DAC),
            Ok(READ_CONTROL | WRITE_DAC)
        );
        assert_eq!(
            chk(&s, &user(), MAXIMUM_ALLOWED),
            Ok(READ_CONTROL | WRITE_DAC)
        );
        assert_eq!(chk(&s, &user(), WRITE_OWNER), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn owner_implicit_not_removed_by_deny() {
        let s = sd(alice(), vec![Ace::deny(READ_CONTROL, alice())]);
        assert_eq!(chk(&s, &user(), READ_CONTROL), Ok(READ_CONTROL));
    }
    #[test]
    fn owner_rights_ace_replaces_implicit() {
        let s = sd(alice(), vec![Ace::allow(READ_CONTROL, Sid::owner_rights())]);
        assert_eq!(chk(&s, &user(), READ_CONTROL), Ok(READ_CONTROL));
        assert_eq!(chk(&s, &user(), WRITE_DAC), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn owner_rights_ace_ignored_for_non_owner() {
        let s = sd(bob(), vec![Ace::allow(READ_CONTROL, Sid::owner_rights())]);
        assert_eq!(chk(&s, &user(), READ_CONTROL), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn owner_via_group() {
        let s = sd(Sid::builtin_users(), vec![]);
        assert_eq!(chk(&s, &user(), WRITE_DAC), Ok(WRITE_DAC));
    }
    #[test]
    fn take_ownership_privilege() {
        let s = sd(bob(), vec![]);
        let mut t = Token::administrator(alice());
        assert_eq!(chk(&s, &t, WRITE_OWNER), Err(STATUS_ACCESS_DENIED));
        t.adjust_privileges(Some(&[Privilege {
            luid: privilege::TAKE_OWNERSHIP,
            attributes: SE_PRIVILEGE_ENABLED,
        }]));
        assert_eq!(chk(&s, &t, WRITE_OWNER), Ok(WRITE_OWNER));
        assert_eq!(
            chk(&s, &t, WRITE_OWNER | READ_CONTROL),
            Err(STATUS_ACCESS_DENIED)
        );
    }
    #[test]
    fn backup_needs_intent_flag() {
        let s = sd(bob(), vec![]);
        let mut t = Token::administrator(alice());
        t.adjust_privileges(Some(&[Privilege {
            luid: privilege::BACKUP,
            attributes: SE_PRIVILEGE_ENABLED,
        }]));
        assert_eq!(chk(&s, &t, GENERIC_READ), Err(STATUS_ACCESS_DENIED));
        let f = CheckFlags {
            backup_intent: true,
        };
        assert_eq!(
            access_check(&s, &t, GENERIC_READ, &M, f),
            Ok(FILE_GENERIC_READ)
        );
        assert_eq!(
            access_check(&s, &t, GENERIC_WRITE, &M, f),
            Err(STATUS_ACCESS_DENIED)
        );
    }
    #[test]
    fn restore_grants_write_with_intent() {
        let s = sd(bob(), vec![]);
        let mut t = Token::administrator(alice());
        t.adjust_privileges(Some(&[Privilege {
            luid: privilege::RESTORE,
            attributes: SE_PRIVILEGE_ENABLED,
        }]));
        let f = CheckFlags {
            backup_intent: true,
        };
        assert_eq!(
            access_check(&s, &t, GENERIC_WRITE | DELETE, &M, f),
            Ok(FILE_GENERIC_WRITE | DELETE)
        );
    }
    #[test]
    fn disabled_privilege_does_not_count() {
        let s = sd(bob(), vec![]);
        let t = Token::administrator(alice());
        let f = CheckFlags {
            backup_intent: true,
        };
        assert_eq!(
            access_check(&s, &t, GENERIC_READ, &M, f),
            Err(STATUS_ACCESS_DENIED)
        );
    }
    #[test]
    fn system_security_needs_privilege() {
        let s = sd(bob(), vec![Ace::allow(FILE_ALL_ACCESS, Sid::world())]);
        assert_eq!(
            chk(&s, &user(), ACCESS_SYSTEM_SECURITY),
            Err(STATUS_PRIVILEGE_NOT_HELD)
        );
        let mut t = Token::administrator(alice());
        t.adjust_privileges(Some(&[Privilege {
            luid: privilege::SECURITY,
            attributes: SE_PRIVILEGE_ENABLED,
        }]));
        assert_eq!(
            chk(&s, &t, ACCESS_SYSTEM_SECURITY | 1),
            Ok(ACCESS_SYSTEM_SECURITY | 1)
        );
    }
    #[test]
    fn system_security_not_grantable_by_ace() {
        let s = sd(
            bob(),
            vec![Ace::allow(ACCESS_SYSTEM_SECURITY, Sid::world())],
        );
        assert_eq!(
            chk(&s, &user(), ACCESS_SYSTEM_SECURITY),
            Err(STATUS_PRIVILEGE_NOT_HELD)
        );
    }
    #[test]
    fn zero_desired_is_denied() {
        let s = sd(bob(), vec![Ace::allow(FILE_ALL_ACCESS, Sid::world())]);
        assert_eq!(chk(&s, &user(), 0), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn generic_ace_mask_is_mapped() {
        let s = sd(bob(), vec![Ace::allow(GENERIC_ALL, Sid::world())]);
        assert_eq!(chk(&s, &user(), FILE_ALL_ACCESS), Ok(FILE_ALL_ACCESS));
    }
    #[test]
    fn inherit_only_ace_ignored() {
        let mut a = Ace::allow(1, Sid::world());
        a.flags = INHERIT_ONLY_ACE | OBJECT_INHERIT_ACE;
        let s = sd(bob(), vec![a]);
        assert_eq!(chk(&s, &user(), 1), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn deny_only_group_denies_but_never_allows() {
        let mut t = Token::administrator(alice());
        t.groups[0].attributes = SE_GROUP_USE_FOR_DENY_ONLY;
        let s = sd(bob(), vec![Ace::allow(1, Sid::builtin_administrators())]);
        assert_eq!(chk(&s, &t, 1), Err(STATUS_ACCESS_DENIED));
        let s = sd(
            bob(),
            vec![
                Ace::deny(1, Sid::builtin_administrators()),
                Ace::allow(3, Sid::world()),
            ],
        );
        assert_eq!(chk(&s, &t, 1), Err(STATUS_ACCESS_DENIED));
        assert_eq!(chk(&s, &t, 2), Ok(2));
    }
    #[test]
    fn admin_group_allows_admin_not_user() {
        let s = sd(
            Sid::local_system(),
            vec![Ace::allow(FILE_ALL_ACCESS, Sid::builtin_administrators())],
        );
        assert!(chk(&s, &Token::administrator(alice()), GENERIC_ALL).is_ok());
        assert!(chk(&s, &Token::system(), GENERIC_ALL).is_ok());
        assert_eq!(chk(&s, &user(), GENERIC_READ), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn no_owner_is_invalid() {
        let mut s = sd(bob(), vec![]);
        s.owner = None;
        assert_eq!(chk(&s, &user(), 1), Err(STATUS_INVALID_SECURITY_DESCR));
    }
    #[test]
    fn callback_ace_rejected() {
        let s = sd(
            bob(),
            vec![Ace::new(
                ACCESS_ALLOWED_CALLBACK_ACE_TYPE,
                0,
                1,
                Sid::world(),
            )],
        );
        assert_eq!(chk(&s, &user(), 1), Err(STATUS_NOT_IMPLEMENTED));
    }
    fn labelled(rid: u32, policy: u32) -> SecurityDescriptor {
        let mut s = sd(bob(), vec![Ace::allow(FILE_ALL_ACCESS, Sid::world())]);
        s.set_sacl(Some(Acl::from_aces(vec![Ace::label(rid, policy)])));
        s
    }
    #[test]
    fn default_label_is_medium_no_write_up() {
        let s = sd(bob(), vec![Ace::allow(FILE_ALL_ACCESS, Sid::world())]);
        assert_eq!(object_label(&s), (sid::MEDIUM_RID, MANDATORY_NO_WRITE_UP));
        let mut low = user();
        low.set_integrity(sid::LOW_RID);
        assert_eq!(chk(&s, &low, GENERIC_WRITE), Err(STATUS_ACCESS_DENIED));
        assert_eq!(chk(&s, &low, GENERIC_READ), Ok(FILE_GENERIC_READ));
    }
    #[test]
    fn no_write_up_high_object() {
        let s = labelled(sid::HIGH_RID, MANDATORY_NO_WRITE_UP);
        assert_eq!(chk(&s, &user(), GENERIC_WRITE), Err(STATUS_ACCESS_DENIED));
        assert_eq!(chk(&s, &user(), DELETE), Err(STATUS_ACCESS_DENIED));
        assert_eq!(chk(&s, &user(), WRITE_DAC), Err(STATUS_ACCESS_DENIED));
        assert_eq!(
            chk(&s, &user(), GENERIC_READ | GENERIC_EXECUTE),
            Ok(FILE_GENERIC_READ | FILE_GENERIC_EXECUTE)
        );
        assert!(chk(&s, &Token::administrator(alice()), GENERIC_WRITE).is_ok());
    }
    #[test]
    fn no_read_up() {
        let s = labelled(sid::HIGH_RID, MANDATORY_NO_READ_UP);
        assert_eq!(chk(&s, &user(), GENERIC_READ), Err(STATUS_ACCESS_DENIED));
        assert!(chk(&s, &user(), GENERIC_WRITE).is_ok());
    }
    #[test]
    fn no_execute_up() {
        let s = labelled(sid::HIGH_RID, MANDATORY_NO_EXECUTE_UP);
        assert_eq!(chk(&s, &user(), 0x20), Err(STATUS_ACCESS_DENIED));
        assert!(chk(&s, &user(), 0x1).is_ok());
    }
    #[test]
    fn max_allowed_respects_label() {
        let s = labelled(sid::HIGH_RID, MANDATORY_NO_WRITE_UP);
        let g = chk(&s, &user(), MAXIMUM_ALLOWED).unwrap();
        assert_eq!(g & 0x2, 0);
        assert_eq!(g & FILE_GENERIC_READ, FILE_GENERIC_READ);
    }
    #[test]
    fn token_without_no_write_up_policy() {
        let s = labelled(sid::HIGH_RID, MANDATORY_NO_WRITE_UP);
        let mut t = user();
        t.mandatory_policy = 0;
        assert!(chk(&s, &t, GENERIC_WRITE).is_ok());
    }
    #[test]
    fn inherit_only_label_ignored() {
        let mut s = labelled(sid::HIGH_RID, MANDATORY_NO_READ_UP);
        s.sacl.as_mut().unwrap().aces[0].flags = INHERIT_ONLY_ACE | CONTAINER_INHERIT_ACE;
        assert!(chk(&s, &user(), GENERIC_READ).is_ok());
    }
    #[test]
    fn equal_level_not_restricted() {
        let s = labelled(sid::MEDIUM_RID, 7);
        assert!(chk(&s, &user(), GENERIC_ALL).is_ok());
    }
    #[test]
    fn restricted_token_needs_both_passes() {
        let t = user().restrict(&[Sid::restricted_code()]);
        let s = sd(bob(), vec![Ace::allow(FILE_ALL_ACCESS, Sid::world())]);
        assert_eq!(chk(&s, &t, 1), Err(STATUS_ACCESS_DENIED));
        let s = sd(
            bob(),
            vec![
                Ace::allow(FILE_ALL_ACCESS, Sid::world()),
                Ace::allow(1, Sid::restricted_code()),
            ],
        );
        assert_eq!(chk(&s, &t, 1), Ok(1));
        assert_eq!(chk(&s, &t, 2), Err(STATUS_ACCESS_DENIED));
        assert_eq!(chk(&s, &t, MAXIMUM_ALLOWED), Ok(1));
    }
    #[test]
    fn restricted_sid_alone_not_enough() {
        let t = user().restrict(&[Sid::restricted_code()]);
        let s = sd(bob(), vec![Ace::allow(1, Sid::restricted_code())]);
        assert_eq!(chk(&s, &t, 1), Err(STATUS_ACCESS_DENIED));
    }
    #[test]
    fn typed_object_ace_skipped_untyped_applies() {
        let mut a = Ace::new(ACCESS_ALLOWED_OBJECT_ACE_TYPE, 0, 1, Sid::world());
        a.object = Some(ObjectAceData {
            flags: 1,
            object_type: Some([1; 16]),
            inherited_object_type: None,
        });
        let mut b = Ace::new(ACCESS_ALLOWED_OBJECT_ACE_TYPE, 0, 2, Sid::world());
        b.object = Some(ObjectAceData {
            flags: 0,
            object_type: None,
            inherited_object_type: None,
        });
        let s = sd(bob(), vec![a, b]);
        assert_eq!(chk(&s, &user(), 1), Err(STATUS_ACCESS_DENIED));
        assert_eq!(chk(&s, &user(), 2), Ok(2));
    }
    #[test]
    fn relative_form() {
        let s = sd(bob(), vec![Ace::allow(1, Sid::world())]);
        let b = s.to_bytes();
        let f = CheckFlags::default();
        assert_eq!(access_check_relative(&b, &user(), 1, &M, f), Ok(1));
        assert_eq!(
            access_check_relative(&b[..10], &user(), 1, &M, f),
            Err(STATUS_INVALID_SECURITY_DESCR)
        );
    }
    #[test]
    fn privilege_check_enabled_only() {
        let mut t = Token::administrator(alice());
        assert_eq!(
            privilege_check(&t, privilege::DEBUG),
            Err(STATUS_PRIVILEGE_NOT_HELD)
        );
        t.adjust_privileges(Some(&[Privilege {
            luid: privilege::DEBUG,
            attributes: SE_PRIVILEGE_ENABLED,
        }]));
        assert_eq!(privilege_check(&t, privilege::DEBUG), Ok(()));
        assert_eq!(privilege_check(&user(), privilege::CHANGE_NOTIFY), Ok(()));
    }
    #[test]
    fn audit_ace_in_dacl_ignored() {
        let s = sd(
            bob(),
            vec![Ace::new(SYSTEM_AUDIT_ACE_TYPE, 0, 1, Sid::world())],
        );
        assert_eq!(chk(&s, &user(), 1), Err(STATUS_ACCESS_DENIED));
    }
}
