//! Security reference monitor glue: the boot tokens and the kd commands
//! `!token` and `!sd` over the host-tested `security` crate.

use security::token::Token;

fn boot_token(name: &str) -> Option<Token> {
    let user = security::sddl::parse_sid("S-1-5-21-1-2-3-1001").ok()?;
    match name {
        "system" => Some(Token::system()),
        "admin" => Some(Token::administrator(user)),
        "user" => Some(Token::standard_user(user)),
        _ => None,
    }
}

/// `!token [system|admin|user]`.
pub fn kd_token(name: &str) {
    let Some(t) = boot_token(name) else {
        crate::dbg_println!("usage: !token [system|admin|user]");
        return;
    };
    crate::dbg_println!("User: {}", t.user.sid);
    crate::dbg_println!("Groups:");
    for (i, g) in t.groups.iter().enumerate() {
        crate::dbg_println!(" {i:02} {}  Attributes - {:#x}", g.sid, g.attributes);
    }
    crate::dbg_println!("Primary Group: {}", t.primary_group);
    crate::dbg_println!("Privs:");
    for p in &t.privileges {
        crate::dbg_println!(
            " {:02} {:#x}  Attributes - {:#x}",
            p.luid,
            p.luid,
            p.attributes
        );
    }
    crate::dbg_println!("Integrity Level: S-1-16-{}", t.integrity());
    crate::dbg_println!("Token type: {:?}", t.token_type);
}

/// `!sd <sddl>`: parses an SDDL string and shows it back with its binary size.
pub fn kd_sd(sddl: &str) {
    match security::sddl::parse(sddl) {
        Ok(sd) => {
            let text = security::sddl::format(&sd).unwrap_or_default();
            crate::dbg_println!("SDDL: {text}");
            crate::dbg_println!("Control: {:#06x}", sd.control);
        }
        Err(s) => crate::dbg_println!("!sd: {s}"),
    }
}

/// The `AceType` names WinDbg prints.
fn ace_type_name(t: u8) -> &'static str {
    match t {
        0 => "ACCESS_ALLOWED_ACE_TYPE",
        1 => "ACCESS_DENIED_ACE_TYPE",
        2 => "SYSTEM_AUDIT_ACE_TYPE",
        3 => "SYSTEM_ALARM_ACE_TYPE",
        5 => "ACCESS_ALLOWED_OBJECT_ACE_TYPE",
        6 => "ACCESS_DENIED_OBJECT_ACE_TYPE",
        9 => "ACCESS_ALLOWED_CALLBACK_ACE_TYPE",
        0x11 => "SYSTEM_MANDATORY_LABEL_ACE_TYPE",
        0x12 => "SYSTEM_RESOURCE_ATTRIBUTE_ACE_TYPE",
        0x13 => "SYSTEM_SCOPED_POLICY_ID_ACE_TYPE",
        _ => "UNKNOWN_ACE_TYPE",
    }
}

/// `!acl <D:...|S:...>`: an ACL given in SDDL, laid out as WinDbg's `!acl`.
pub fn kd_acl(text: &str) {
    let sddl = if text.starts_with("D:") || text.starts_with("S:") {
        alloc::format!("O:SYG:SY{text}")
    } else {
        crate::dbg_println!("usage: !acl D:(A;;GA;;;SY)...   or   !acl S:(ML;;NW;;;HI)");
        return;
    };
    let sd = match security::sddl::parse(&sddl) {
        Ok(sd) => sd,
        Err(s) => {
            crate::dbg_println!("!acl: {s}");
            return;
        }
    };
    let Some(acl) = (if text.starts_with("D:") {
        sd.dacl
    } else {
        sd.sacl
    }) else {
        crate::dbg_println!("ACL is: NULL");
        return;
    };
    crate::dbg_println!("ACL is: ");
    crate::dbg_println!("ACL is: ->AclRevision: 0x{:x}", acl.revision);
    crate::dbg_println!("ACL is: ->Sbz1       : 0x0");
    crate::dbg_println!("ACL is: ->AclSize    : 0x{:x}", acl.size());
    crate::dbg_println!("ACL is: ->AceCount   : 0x{:x}", acl.aces.len());
    crate::dbg_println!("ACL is: ->Sbz2       : 0x0");
    for (i, a) in acl.aces.iter().enumerate() {
        crate::dbg_println!(
            "ACL is: ->Ace[{i}]: ->AceType: {}",
            ace_type_name(a.ace_type)
        );
        crate::dbg_println!("ACL is: ->Ace[{i}]: ->AceFlags: 0x{:x}", a.flags);
        crate::dbg_println!("ACL is: ->Ace[{i}]: ->AceSize: 0x{:x}", a.size());
        crate::dbg_println!("ACL is: ->Ace[{i}]: ->Mask : 0x{:08x}", a.mask);
        crate::dbg_println!("ACL is: ->Ace[{i}]: ->SID: {}", a.sid);
        crate::dbg_println!("ACL is: ");
    }
}
