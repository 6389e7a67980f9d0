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
