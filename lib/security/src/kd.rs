//! The kernel debugger's security views, laid out as WinDbg's `!token`,
//! `!sd` and `!acl` print them, over the fields ntrs keeps (a field NT has
//! and ntrs does not, such as a token's source or session, is left out).

use crate::acl::Acl;
use crate::sd::*;
use crate::token::*;
use core::fmt::{self, Write};

/// The `AceType` names WinDbg prints.
pub fn ace_type_name(t: u8) -> &'static str {
    match t {
        0 => "ACCESS_ALLOWED_ACE_TYPE",
        1 => "ACCESS_DENIED_ACE_TYPE",
        2 => "SYSTEM_AUDIT_ACE_TYPE",
        3 => "SYSTEM_ALARM_ACE_TYPE",
        5 => "ACCESS_ALLOWED_OBJECT_ACE_TYPE",
        6 => "ACCESS_DENIED_OBJECT_ACE_TYPE",
        7 => "SYSTEM_AUDIT_OBJECT_ACE_TYPE",
        9 => "ACCESS_ALLOWED_CALLBACK_ACE_TYPE",
        10 => "ACCESS_DENIED_CALLBACK_ACE_TYPE",
        0x11 => "SYSTEM_MANDATORY_LABEL_ACE_TYPE",
        0x12 => "SYSTEM_RESOURCE_ATTRIBUTE_ACE_TYPE",
        0x13 => "SYSTEM_SCOPED_POLICY_ID_ACE_TYPE",
        _ => "UNKNOWN_ACE_TYPE",
    }
}

/// An ACL's lines, each prefixed (`->Dacl    : ` inside `!sd`, `ACL is: `
/// for `!acl`).
pub fn write_acl(w: &mut dyn Write, prefix: &str, acl: &Acl) -> fmt::Result {
    writeln!(w, "{prefix}->AclRevision: 0x{:x}", acl.revision)?;
    writeln!(w, "{prefix}->AclSize    : 0x{:x}", acl.size())?;
    writeln!(w, "{prefix}->AceCount   : 0x{:x}", acl.aces.len())?;
    for (i, a) in acl.aces.iter().enumerate() {
        writeln!(
            w,
            "{prefix}->Ace[{i}]: ->AceType: {}",
            ace_type_name(a.ace_type)
        )?;
        writeln!(w, "{prefix}->Ace[{i}]: ->AceFlags: 0x{:x}", a.flags)?;
        writeln!(w, "{prefix}->Ace[{i}]: ->AceSize: 0x{:x}", a.size())?;
        writeln!(w, "{prefix}->Ace[{i}]: ->Mask : 0x{:08x}", a.mask)?;
        writeln!(w, "{prefix}->Ace[{i}]: ->SID: {}", a.sid)?;
        writeln!(w, "{prefix}")?;
    }
    Ok(())
}

/// The names of the `Control` bits, one per line as WinDbg lists them.
const CONTROL_BITS: &[(u16, &str)] = &[
    (SE_OWNER_DEFAULTED, "SE_OWNER_DEFAULTED"),
    (SE_GROUP_DEFAULTED, "SE_GROUP_DEFAULTED"),
    (SE_DACL_PRESENT, "SE_DACL_PRESENT"),
    (SE_DACL_DEFAULTED, "SE_DACL_DEFAULTED"),
    (SE_SACL_PRESENT, "SE_SACL_PRESENT"),
    (SE_SACL_DEFAULTED, "SE_SACL_DEFAULTED"),
    (SE_DACL_AUTO_INHERIT_REQ, "SE_DACL_AUTO_INHERIT_REQ"),
    (SE_SACL_AUTO_INHERIT_REQ, "SE_SACL_AUTO_INHERIT_REQ"),
    (SE_DACL_AUTO_INHERITED, "SE_DACL_AUTO_INHERITED"),
    (SE_SACL_AUTO_INHERITED, "SE_SACL_AUTO_INHERITED"),
    (SE_DACL_PROTECTED, "SE_DACL_PROTECTED"),
    (SE_SACL_PROTECTED, "SE_SACL_PROTECTED"),
    (SE_SELF_RELATIVE, "SE_SELF_RELATIVE"),
];

/// `!sd`: a security descriptor as WinDbg dumps one.
pub fn write_sd(w: &mut dyn Write, sd: &SecurityDescriptor) -> fmt::Result {
    writeln!(w, "->Revision: 0x{:x}", SECURITY_DESCRIPTOR_REVISION)?;
    writeln!(w, "->Control : 0x{:x}", sd.control)?;
    for (bit, name) in CONTROL_BITS {
        if sd.control & bit != 0 {
            writeln!(w, "            {name}")?;
        }
    }
    match &sd.owner {
        Some(s) => writeln!(w, "->Owner   : {s}")?,
        None => writeln!(w, "->Owner   :  is NULL")?,
    }
    match &sd.group {
        Some(s) => writeln!(w, "->Group   : {s}")?,
        None => writeln!(w, "->Group   :  is NULL")?,
    }
    for (name, present, acl) in [
        ("->Dacl    : ", sd.control & SE_DACL_PRESENT != 0, &sd.dacl),
        ("->Sacl    : ", sd.control & SE_SACL_PRESENT != 0, &sd.sacl),
    ] {
        match acl {
            Some(acl) if present => {
                writeln!(w, "{name}")?;
                write_acl(w, name, acl)?;
            }
            _ => writeln!(w, "{name} is NULL")?,
        }
    }
    Ok(())
}

/// Group attribute names in WinDbg's order.
const GROUP_BITS: &[(u32, &str)] = &[
    (SE_GROUP_MANDATORY, "Mandatory"),
    (SE_GROUP_ENABLED_BY_DEFAULT, "Default"),
    (SE_GROUP_ENABLED, "Enabled"),
    (SE_GROUP_OWNER, "Owner"),
    (SE_GROUP_USE_FOR_DENY_ONLY, "DenyOnly"),
    (SE_GROUP_INTEGRITY, "GroupIntegrity"),
    (SE_GROUP_INTEGRITY_ENABLED, "GroupIntegrityEnabled"),
    (SE_GROUP_LOGON_ID, "LogonId"),
];

fn write_group_attributes(w: &mut dyn Write, a: u32) -> fmt::Result {
    w.write_str("    Attributes -")?;
    for (bit, name) in GROUP_BITS {
        if a & bit == *bit {
            write!(w, " {name}")?;
        }
    }
    writeln!(w, " ")
}

fn write_groups(w: &mut dyn Write, groups: &[SidAndAttributes]) -> fmt::Result {
    for (i, g) in groups.iter().enumerate() {
        writeln!(w, " {i:02} {}", g.sid)?;
        write_group_attributes(w, g.attributes)?;
    }
    Ok(())
}

/// `!token`'s body for one token (the caller prints the header line with
/// the token object's address).
pub fn write_token(w: &mut dyn Write, t: &Token) -> fmt::Result {
    writeln!(w, "User: {}", t.user.sid)?;
    writeln!(w, "User Groups: ")?;
    write_groups(w, &t.groups)?;
    writeln!(w, "Primary Group: {}", t.primary_group)?;
    writeln!(w, "Privs: ")?;
    for p in &t.privileges {
        let name = privilege::name(p.luid).unwrap_or("UnknownPrivilege");
        write!(w, " {:02} 0x{:09x} {name:<33} Attributes -", p.luid, p.luid)?;
        if p.attributes & SE_PRIVILEGE_ENABLED != 0 {
            w.write_str(" Enabled")?;
        }
        if p.attributes & SE_PRIVILEGE_ENABLED_BY_DEFAULT != 0 {
            w.write_str(" Default")?;
        }
        writeln!(w, " ")?;
    }
    writeln!(
        w,
        "Authentication ID:         ({:x},{:x})",
        t.authentication_id >> 32,
        t.authentication_id as u32
    )?;
    let level = match t.impersonation_level {
        ImpersonationLevel::Anonymous => "Anonymous",
        ImpersonationLevel::Identification => "Identification",
        ImpersonationLevel::Impersonation => "Impersonation",
        ImpersonationLevel::Delegation => "Delegation",
    };
    writeln!(w, "Impersonation Level:       {level}")?;
    let ty = match t.token_type {
        TokenType::Primary => "Primary",
        TokenType::Impersonation => "Impersonation",
    };
    writeln!(w, "TokenType:                 {ty}")?;
    writeln!(w, "Token ID: {:x}", t.token_id)?;
    writeln!(w, "RestrictedSidCount: {}", t.restricted_sids.len())?;
    if !t.restricted_sids.is_empty() {
        writeln!(w, "Restricted SIDs: ")?;
        write_groups(w, &t.restricted_sids)?;
    }
    writeln!(w, "Integrity Level: S-1-16-{}", t.integrity())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    #[test]
    fn token_lines_match_windbg() {
        let mut s = String::new();
        let mut t = Token::system();
        t.token_id = 0x3eb;
        write_token(&mut s, &t).unwrap();
        assert!(s.starts_with("User: S-1-5-18\nUser Groups: \n 00 S-1-5-32-544\n    Attributes - Default Enabled Owner \n"));
        assert!(s.contains(" 01 S-1-1-0\n    Attributes - Mandatory Default Enabled \n"));
        assert!(s.contains("    Attributes - GroupIntegrity GroupIntegrityEnabled \n"));
        assert!(s.contains(
            " 02 0x000000002 SeCreateTokenPrivilege            Attributes - Enabled Default \n"
        ));
        assert!(s.contains(" 03 0x000000003 SeAssignPrimaryTokenPrivilege     Attributes - \n"));
        assert!(s.contains(" 23 0x000000017 SeChangeNotifyPrivilege"));
        assert!(s.contains("Authentication ID:         (0,3e7)\n"));
        assert!(s.contains("Impersonation Level:       Anonymous\n"));
        assert!(s.contains("TokenType:                 Primary\n"));
        assert!(s.contains("Token ID: 3eb\n"));
        assert!(s.contains("RestrictedSidCount: 0\n"));
    }

    #[test]
    fn restricted_impersonation_token() {
        let t = Token::system()
            .restrict(&[crate::sid::Sid::world()])
            .duplicate(TokenType::Impersonation, ImpersonationLevel::Impersonation)
            .unwrap();
        let mut s = String::new();
        write_token(&mut s, &t).unwrap();
        assert!(s.contains("Impersonation Level:       Impersonation\n"));
        assert!(s.contains("TokenType:                 Impersonation\n"));
        assert!(s.contains("RestrictedSidCount: 1\nRestricted SIDs: \n 00 S-1-1-0\n"));
    }

    #[test]
    fn sd_dump_matches_windbg() {
        let sd = crate::sddl::parse("O:BAG:SYD:(A;;0x1f0003;;;SY)").unwrap();
        let mut s = String::new();
        write_sd(&mut s, &sd).unwrap();
        assert_eq!(
            s,
            "->Revision: 0x1\n->Control : 0x4\n            SE_DACL_PRESENT\n\
             ->Owner   : S-1-5-32-544\n->Group   : S-1-5-18\n\
             ->Dacl    : \n->Dacl    : ->AclRevision: 0x2\n->Dacl    : ->AclSize    : 0x1c\n\
             ->Dacl    : ->AceCount   : 0x1\n\
             ->Dacl    : ->Ace[0]: ->AceType: ACCESS_ALLOWED_ACE_TYPE\n\
             ->Dacl    : ->Ace[0]: ->AceFlags: 0x0\n->Dacl    : ->Ace[0]: ->AceSize: 0x14\n\
             ->Dacl    : ->Ace[0]: ->Mask : 0x001f0003\n->Dacl    : ->Ace[0]: ->SID: S-1-5-18\n\
             ->Dacl    : \n->Sacl    :  is NULL\n"
        );
    }
}
