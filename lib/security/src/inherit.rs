//! ACL inheritance for new objects (`SeAssignSecurity`,
//! `RtlNewSecurityObject`): CREATOR OWNER/GROUP substitution, OI/CI/NP/IO
//! handling, generic mapping of effective ACEs and `INHERITED_ACE`.

use crate::access::{
    map_generic, GenericMapping, GENERIC_ALL, GENERIC_EXECUTE, GENERIC_READ, GENERIC_WRITE,
};
use crate::acl::*;
use crate::sd::*;
use crate::sid::Sid;
use crate::token::Token;
use alloc::vec;
use alloc::vec::Vec;

const INHERIT_FLAGS: u8 =
    OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE | NO_PROPAGATE_INHERIT_ACE | INHERIT_ONLY_ACE;
const GENERIC: u32 = GENERIC_ALL | GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE;

fn effective(ace: &Ace, owner: &Sid, group: &Sid, map: &GenericMapping) -> Ace {
    let mut a = ace.clone();
    if a.sid == Sid::creator_owner() {
        a.sid = owner.clone();
    } else if a.sid == Sid::creator_group() {
        a.sid = group.clone();
    }
    a.mask = map_generic(a.mask, map);
    a.flags = (a.flags & !INHERIT_FLAGS) | INHERITED_ACE;
    a
}

/// Computes the ACEs a child inherits from `parent` (`RtlpInheritAcl`).
/// Containers keep propagating ACEs; where the effective form differs
/// (CREATOR OWNER/GROUP or generic bits) Windows splits the ACE into an
/// effective ACE and an inherit-only ACE, and so does ntrs.
pub fn inherit_acl(
    parent: &Acl,
    is_container: bool,
    owner: &Sid,
    group: &Sid,
    map: &GenericMapping,
) -> Vec<Ace> {
    let mut out = Vec::new();
    for ace in &parent.aces {
        let oi = ace.flags & OBJECT_INHERIT_ACE != 0;
        let ci = ace.flags & CONTAINER_INHERIT_ACE != 0;
        let np = ace.flags & NO_PROPAGATE_INHERIT_ACE != 0;
        if !is_container {
            if oi {
                out.push(effective(ace, owner, group, map));
            }
            continue;
        }
        if ci {
            if np {
                out.push(effective(ace, owner, group, map));
                continue;
            }
            let creator = ace.sid == Sid::creator_owner() || ace.sid == Sid::creator_group();
            if creator || ace.mask & GENERIC != 0 {
                out.push(effective(ace, owner, group, map));
                let mut io = ace.clone();
                io.flags = (ace.flags & INHERIT_FLAGS) | INHERIT_ONLY_ACE | INHERITED_ACE;
                out.push(io);
            } else {
                let mut a = ace.clone();
                a.flags = (ace.flags & !INHERIT_ONLY_ACE) | INHERITED_ACE;
                out.push(a);
            }
        } else if oi && !np {
            let mut a = ace.clone();
            a.flags = (ace.flags & INHERIT_FLAGS) | INHERIT_ONLY_ACE | INHERITED_ACE;
            out.push(a);
        }
    }
    out
}

/// `SeAssignSecurity`: the security descriptor of a new object created by
/// `token` under `parent` with an optional caller-supplied descriptor.
/// An explicit (non-defaulted) DACL from the creator replaces inheritance;
/// otherwise inheritable parent ACEs are used; otherwise the token's default
/// DACL (`GA` for the user and SYSTEM).
pub fn assign_security(
    parent: Option<&SecurityDescriptor>,
    creator: Option<&SecurityDescriptor>,
    is_container: bool,
    token: &Token,
    map: &GenericMapping,
) -> SecurityDescriptor {
    let owner = creator.and_then(|c| c.owner.clone()).unwrap_or_else(|| {
        if token.default_owner_index == 0 {
            token.user.sid.clone()
        } else {
            token.groups[token.default_owner_index - 1].sid.clone()
        }
    });
    let group = creator
        .and_then(|c| c.group.clone())
        .unwrap_or_else(|| token.primary_group.clone());
    let mut sd = SecurityDescriptor::new();
    let explicit = creator.filter(|c| c.dacl_present() && c.control & SE_DACL_DEFAULTED == 0);
    if let Some(c) = explicit {
        sd.set_dacl(c.dacl.clone());
        sd.control |= c.control & SE_DACL_PROTECTED;
    } else {
        let inherited = parent
            .and_then(|p| p.dacl.as_ref().filter(|_| p.dacl_present()).map(|d| (p, d)))
            .map(|(p, d)| (p, inherit_acl(d, is_container, &owner, &group, map)))
            .filter(|(_, a)| !a.is_empty());
        if let Some((p, aces)) = inherited {
            sd.set_dacl(Some(Acl::from_aces(aces)));
            if p.control & (SE_DACL_AUTO_INHERITED | SE_DACL_AUTO_INHERIT_REQ) != 0 {
                sd.control |= SE_DACL_AUTO_INHERITED;
            }
        } else if let Some(c) = creator.filter(|c| c.dacl_present()) {
            sd.set_dacl(c.dacl.clone());
            sd.control |= SE_DACL_DEFAULTED;
        } else {
            sd.set_dacl(Some(Acl::from_aces(vec![
                Ace::allow(map.all, token.user.sid.clone()),
                Ace::allow(map.all, Sid::local_system()),
            ])));
            sd.control |= SE_DACL_DEFAULTED;
        }
    }
    if let Some(c) =
        creator.filter(|c| c.control & SE_SACL_PRESENT != 0 && c.control & SE_SACL_DEFAULTED == 0)
    {
        sd.set_sacl(c.sacl.clone());
    } else if let Some(s) = parent.and_then(|p| p.sacl.as_ref()) {
        let aces = inherit_acl(s, is_container, &owner, &group, map);
        if !aces.is_empty() {
            sd.set_sacl(Some(Acl::from_aces(aces)));
        }
    }
    sd.owner = Some(owner);
    sd.group = Some(group);
    sd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::*;
    use crate::sddl;

    fn alice() -> Sid {
        Sid::parse_str("S-1-5-21-1-2-3-1001").unwrap()
    }
    fn tok() -> Token {
        Token::standard_user(alice())
    }
    fn child(parent: &str, container: bool) -> SecurityDescriptor {
        let p = sddl::parse(parent).unwrap();
        assign_security(Some(&p), None, container, &tok(), &GenericMapping::FILE)
    }
    fn aces(sd: &SecurityDescriptor) -> Vec<Ace> {
        sd.dacl.clone().unwrap().aces
    }

    #[test]
    fn object_inherits_oi_only() {
        let sd = child("O:SYD:(A;OI;FR;;;WD)(A;CI;FA;;;BA)(A;;FA;;;SY)", false);
        let a = aces(&sd);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].sid, Sid::world());
        assert_eq!(a[0].flags, INHERITED_ACE);
    }
    #[test]
    fn container_ci_keeps_flags() {
        let a = aces(&child("O:SYD:(A;OICI;FA;;;BA)", true));
        assert_eq!(a.len(), 1);
        assert_eq!(
            a[0].flags,
            OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE | INHERITED_ACE
        );
    }
    #[test]
    fn container_oi_only_becomes_inherit_only() {
        let a = aces(&child("O:SYD:(A;OI;FR;;;WD)", true));
        assert_eq!(a.len(), 1);
        assert_eq!(
            a[0].flags,
            OBJECT_INHERIT_ACE | INHERIT_ONLY_ACE | INHERITED_ACE
        );
    }
    #[test]
    fn container_oi_np_not_inherited() {
        let sd = child("O:SYD:(A;OINP;FR;;;WD)", true);
        assert_eq!(sd.control & SE_DACL_DEFAULTED, SE_DACL_DEFAULTED);
    }
    #[test]
    fn np_stops_propagation() {
        let a = aces(&child("O:SYD:(A;CINP;FA;;;BA)", true));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].flags, INHERITED_ACE);
    }
    #[test]
    fn creator_owner_substituted_on_object() {
        let a = aces(&child("O:SYD:(A;OIIO;GA;;;CO)", false));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].sid, alice());
        assert_eq!(a[0].mask, FILE_ALL_ACCESS);
        assert_eq!(a[0].flags, INHERITED_ACE);
    }
    #[test]
    fn creator_owner_split_on_container() {
        let a = aces(&child("O:SYD:(A;OICIIO;GA;;;CO)", true));
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].sid, alice());
        assert_eq!(a[0].mask, FILE_ALL_ACCESS);
        assert_eq!(a[1].sid, Sid::creator_owner());
        assert_eq!(a[1].mask, GENERIC_ALL);
        assert!(a[1].inherit_only());
    }
    #[test]
    fn creator_group_substituted() {
        let a = aces(&child("O:SYD:(A;OI;GR;;;CG)", false));
        assert_eq!(a[0].sid, Sid::builtin_users());
        assert_eq!(a[0].mask, FILE_GENERIC_READ);
    }
    #[test]
    fn generic_mapped_on_object() {
        let a = aces(&child("O:SYD:(A;OI;GW;;;WD)", false));
        assert_eq!(a[0].mask, FILE_GENERIC_WRITE);
    }
    #[test]
    fn no_inheritable_gives_default_dacl() {
        let sd = child("O:SYD:(A;;FA;;;WD)", false);
        let a = aces(&sd);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].sid, alice());
        assert_ne!(sd.control & SE_DACL_DEFAULTED, 0);
    }
    #[test]
    fn explicit_dacl_wins() {
        let p = sddl::parse("O:SYD:(A;OI;FA;;;WD)").unwrap();
        let c = sddl::parse("D:P(A;;FR;;;BA)").unwrap();
        let sd = assign_security(Some(&p), Some(&c), false, &tok(), &GenericMapping::FILE);
        assert_eq!(aces(&sd), c.dacl.unwrap().aces);
        assert_ne!(sd.control & SE_DACL_PROTECTED, 0);
    }
    #[test]
    fn owner_and_group_from_token() {
        let sd = child("O:SYD:(A;OI;FA;;;WD)", false);
        assert_eq!(sd.owner, Some(alice()));
        assert_eq!(sd.group, Some(Sid::builtin_users()));
        let sd = assign_security(None, None, false, &Token::system(), &GenericMapping::FILE);
        assert_eq!(sd.owner, Some(Sid::builtin_administrators()));
    }
    #[test]
    fn auto_inherited_propagates() {
        let sd = child("O:SYD:AI(A;OI;FA;;;WD)", false);
        assert_ne!(sd.control & SE_DACL_AUTO_INHERITED, 0);
        let sd = child("O:SYD:(A;OI;FA;;;WD)", false);
        assert_eq!(sd.control & SE_DACL_AUTO_INHERITED, 0);
    }
    #[test]
    fn label_inherits_through_sacl() {
        let sd = child("O:SYD:(A;OI;FA;;;WD)S:(ML;OI;NW;;;LW)", false);
        let s = sd.sacl.unwrap();
        assert_eq!(s.aces[0].sid.integrity_rid(), Some(crate::sid::LOW_RID));
        assert_eq!(s.aces[0].flags, INHERITED_ACE);
    }
    #[test]
    fn inherited_child_is_checkable() {
        let sd = child("O:SYD:(A;OICI;GA;;;CO)(A;OICI;GR;;;WD)", false);
        let g = crate::check::access_check(
            &sd,
            &tok(),
            GENERIC_ALL,
            &GenericMapping::FILE,
            Default::default(),
        );
        assert_eq!(g, Ok(FILE_ALL_ACCESS));
    }
}
