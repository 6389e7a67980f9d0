//! SDDL (`ConvertStringSecurityDescriptorToSecurityDescriptorW` and back).
//! Supports O:, G:, D:, S:, ACL flags P/AI/AR, ACE types A D AU ML OA OD
//! (with object GUIDs), ACE flags, rights aliases and hex masks.

use crate::access::*;
use crate::acl::*;
use crate::sd::*;
use crate::sid::Sid;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use nt::status::*;

type SidCtor = fn() -> Sid;

const SID_ALIASES: &[(&str, SidCtor)] = &[
    ("SY", Sid::local_system),
    ("BA", Sid::builtin_administrators),
    ("BU", Sid::builtin_users),
    ("WD", Sid::world),
    ("AU", Sid::authenticated_users),
    ("IU", Sid::interactive),
    ("CO", Sid::creator_owner),
    ("CG", Sid::creator_group),
    ("OW", Sid::owner_rights),
    ("LS", Sid::local_service),
    ("NS", Sid::network_service),
    ("AN", Sid::anonymous),
    ("RC", Sid::restricted_code),
    ("LW", || Sid::mandatory_label(crate::sid::LOW_RID)),
    ("ME", || Sid::mandatory_label(crate::sid::MEDIUM_RID)),
    ("HI", || Sid::mandatory_label(crate::sid::HIGH_RID)),
    ("SI", || Sid::mandatory_label(crate::sid::SYSTEM_RID)),
];

const RIGHTS: &[(&str, u32)] = &[
    ("GA", GENERIC_ALL),
    ("GR", GENERIC_READ),
    ("GW", GENERIC_WRITE),
    ("GX", GENERIC_EXECUTE),
    ("RC", READ_CONTROL),
    ("SD", DELETE),
    ("WD", WRITE_DAC),
    ("WO", WRITE_OWNER),
    ("FA", FILE_ALL_ACCESS),
    ("FR", FILE_GENERIC_READ),
    ("FW", FILE_GENERIC_WRITE),
    ("FX", FILE_GENERIC_EXECUTE),
    ("KA", KEY_ALL_ACCESS),
    ("KR", KEY_READ),
    ("KW", KEY_WRITE),
    ("KX", KEY_EXECUTE),
    ("NW", MANDATORY_NO_WRITE_UP),
    ("NR", MANDATORY_NO_READ_UP),
    ("NX", MANDATORY_NO_EXECUTE_UP),
];

const ACE_TYPES: &[(&str, u8)] = &[
    ("A", ACCESS_ALLOWED_ACE_TYPE),
    ("D", ACCESS_DENIED_ACE_TYPE),
    ("AU", SYSTEM_AUDIT_ACE_TYPE),
    ("ML", SYSTEM_MANDATORY_LABEL_ACE_TYPE),
    ("OA", ACCESS_ALLOWED_OBJECT_ACE_TYPE),
    ("OD", ACCESS_DENIED_OBJECT_ACE_TYPE),
];

const ACE_FLAGS: &[(&str, u8)] = &[
    ("OI", OBJECT_INHERIT_ACE),
    ("CI", CONTAINER_INHERIT_ACE),
    ("NP", NO_PROPAGATE_INHERIT_ACE),
    ("IO", INHERIT_ONLY_ACE),
    ("ID", INHERITED_ACE),
    ("SA", SUCCESSFUL_ACCESS_ACE_FLAG),
    ("FA", FAILED_ACCESS_ACE_FLAG),
];

const BAD: NtStatus = STATUS_INVALID_PARAMETER;

/// Parses a SID string: a two-letter alias or `S-1-...`.
pub fn parse_sid(s: &str) -> Result<Sid, NtStatus> {
    let s = s.trim();
    if let Some((_, f)) = SID_ALIASES.iter().find(|(a, _)| a.eq_ignore_ascii_case(s)) {
        return Ok(f());
    }
    Sid::parse_str(s)
}

/// Formats a SID using an alias where one exists.
pub fn format_sid(s: &Sid) -> String {
    SID_ALIASES
        .iter()
        .find(|(_, f)| f() == *s)
        .map(|(a, _)| String::from(*a))
        .unwrap_or_else(|| format!("{s}"))
}

fn pairs(s: &str) -> Result<Vec<&str>, NtStatus> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return Err(BAD);
    }
    Ok((0..s.len()).step_by(2).map(|i| &s[i..i + 2]).collect())
}

/// Parses an SDDL rights string: hex/decimal number or alias pairs.
pub fn parse_rights(s: &str) -> Result<u32, NtStatus> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(h, 16).map_err(|_| BAD);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| BAD);
    }
    let mut m = 0;
    for p in pairs(s)? {
        m |= RIGHTS
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(p))
            .ok_or(BAD)?
            .1;
    }
    Ok(m)
}

/// Formats rights: a single exact alias, else generic/standard aliases if
/// they cover the mask, else hex.
pub fn format_rights(m: u32, ace_type: u8) -> String {
    if ace_type == SYSTEM_MANDATORY_LABEL_ACE_TYPE {
        let mut s = String::new();
        for (a, v) in &RIGHTS[16..] {
            if m & v != 0 {
                s.push_str(a);
            }
        }
        if m & !7 == 0 && !s.is_empty() {
            return s;
        }
        return format!("{m:#x}");
    }
    if let Some((a, _)) = RIGHTS[8..16].iter().find(|(_, v)| *v == m) {
        return String::from(*a);
    }
    let mut s = String::new();
    let mut left = m;
    for (a, v) in &RIGHTS[..8] {
        if m & v != 0 {
            s.push_str(a);
            left &= !v;
        }
    }
    if left == 0 && !s.is_empty() {
        s
    } else {
        format!("{m:#x}")
    }
}

fn parse_ace(s: &str) -> Result<Ace, NtStatus> {
    let f: Vec<&str> = s.split(';').collect();
    if f.len() != 6 && f.len() != 7 {
        return Err(BAD);
    }
    let ace_type = ACE_TYPES
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(f[0].trim()))
        .ok_or(BAD)?
        .1;
    let mut flags = 0;
    for p in pairs(f[1].trim())? {
        flags |= ACE_FLAGS
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(p))
            .ok_or(BAD)?
            .1;
    }
    let mask = parse_rights(f[2])?;
    if f.len() == 7 {
        return Err(STATUS_NOT_IMPLEMENTED);
    }
    let object_type = parse_guid(f[3])?;
    let inherited_object_type = parse_guid(f[4])?;
    let sid = parse_sid(f[5])?;
    let mut ace = Ace::new(ace_type, flags, mask, sid);
    if matches!(
        ace_type,
        ACCESS_ALLOWED_OBJECT_ACE_TYPE | ACCESS_DENIED_OBJECT_ACE_TYPE
    ) {
        let flags = object_type.is_some() as u32 | ((inherited_object_type.is_some() as u32) << 1);
        ace.object = Some(ObjectAceData {
            flags,
            object_type,
            inherited_object_type,
        });
    } else if object_type.is_some() || inherited_object_type.is_some() {
        return Err(BAD);
    }
    Ok(ace)
}

/// Parses a GUID string (`bf967a86-0de6-11d0-a285-00aa003049e2`) into
/// its in-memory `GUID` byte order; empty means absent.
pub fn parse_guid(s: &str) -> Result<Option<[u8; 16]>, NtStatus> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if parts.len() != 5
        || parts
            .iter()
            .zip(lens)
            .any(|(p, l)| p.len() != l || !p.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(BAD);
    }
    let hex = |p: &str| -> Vec<u8> {
        (0..p.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&p[i..i + 2], 16).unwrap())
            .collect()
    };
    let mut g = [0u8; 16];
    for (range, part) in [(0..4, 0), (4..6, 1), (6..8, 2)] {
        let mut d = hex(parts[part]);
        d.reverse();
        g[range].copy_from_slice(&d);
    }
    g[8..10].copy_from_slice(&hex(parts[3]));
    g[10..].copy_from_slice(&hex(parts[4]));
    Ok(Some(g))
}

/// Formats a `GUID` in registry form without braces.
pub fn format_guid(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

fn format_ace(a: &Ace) -> Result<String, NtStatus> {
    let t = ACE_TYPES
        .iter()
        .find(|(_, v)| *v == a.ace_type)
        .ok_or(STATUS_NOT_IMPLEMENTED)?
        .0;
    let g = |o: Option<&[u8; 16]>| o.map(format_guid).unwrap_or_default();
    let (ot, it) = match &a.object {
        Some(o) => (
            g(o.object_type.as_ref()),
            g(o.inherited_object_type.as_ref()),
        ),
        None => (String::new(), String::new()),
    };
    let mut fl = String::new();
    for (n, v) in ACE_FLAGS {
        if a.flags & v != 0 {
            fl.push_str(n);
        }
    }
    Ok(format!(
        "({t};{fl};{};{ot};{it};{})",
        format_rights(a.mask, a.ace_type),
        format_sid(&a.sid)
    ))
}

/// Returns (control bits, ACL or None for NO_ACCESS_CONTROL).
fn parse_acl(s: &str, dacl: bool) -> Result<(u16, Option<Acl>), NtStatus> {
    let (flags, rest) = s.split_at(s.find('(').unwrap_or(s.len()));
    let mut control = 0;
    let mut f = flags.trim();
    let mut null = false;
    while !f.is_empty() {
        let (bits, n) = if f.starts_with("NO_ACCESS_CONTROL") {
            null = true;
            (0, 17)
        } else if f.starts_with("AI") {
            (
                if dacl {
                    SE_DACL_AUTO_INHERITED
                } else {
                    SE_SACL_AUTO_INHERITED
                },
                2,
            )
        } else if f.starts_with("AR") {
            (
                if dacl {
                    SE_DACL_AUTO_INHERIT_REQ
                } else {
                    SE_SACL_AUTO_INHERIT_REQ
                },
                2,
            )
        } else if f.starts_with('P') {
            (
                if dacl {
                    SE_DACL_PROTECTED
                } else {
                    SE_SACL_PROTECTED
                },
                1,
            )
        } else {
            return Err(BAD);
        };
        control |= bits;
        f = &f[n..];
    }
    let mut aces = Vec::new();
    let mut r = rest.trim();
    while !r.is_empty() {
        let body = r.strip_prefix('(').ok_or(BAD)?;
        let end = body.find(')').ok_or(BAD)?;
        aces.push(parse_ace(&body[..end])?);
        r = body[end + 1..].trim_start();
    }
    if null {
        if !aces.is_empty() {
            return Err(BAD);
        }
        return Ok((control, None));
    }
    Ok((control, Some(Acl::from_aces(aces))))
}

/// Parses an SDDL string into a security descriptor.
pub fn parse(s: &str) -> Result<SecurityDescriptor, NtStatus> {
    let b = s.as_bytes();
    let mut starts = Vec::new();
    let mut depth = 0i32;
    for i in 0..b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            c if depth == 0
                && matches!(c, b'O' | b'G' | b'D' | b'S')
                && b.get(i + 1) == Some(&b':') =>
            {
                starts.push(i)
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(BAD);
        }
    }
    if depth != 0
        || (s.trim().is_empty())
        || starts.first().is_some_and(|&f| !s[..f].trim().is_empty())
        || starts.is_empty()
    {
        return Err(BAD);
    }
    let mut sd = SecurityDescriptor::new();
    let mut seen = 0u8;
    for (k, &st) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(s.len());
        let v = &s[st + 2..end];
        let bit = 1 << "OGDS".find(b[st] as char).unwrap();
        if seen & bit != 0 {
            return Err(BAD);
        }
        seen |= bit;
        match b[st] {
            b'O' => sd.owner = Some(parse_sid(v)?),
            b'G' => sd.group = Some(parse_sid(v)?),
            b'D' => {
                let (c, a) = parse_acl(v, true)?;
                sd.control |= c;
                sd.set_dacl(a);
            }
            _ => {
                let (c, a) = parse_acl(v, false)?;
                sd.control |= c;
                sd.set_sacl(a);
            }
        }
    }
    Ok(sd)
}

fn format_acl(
    out: &mut String,
    acl: &Option<Acl>,
    control: u16,
    dacl: bool,
) -> Result<(), NtStatus> {
    let (p, ai, ar) = if dacl {
        (
            SE_DACL_PROTECTED,
            SE_DACL_AUTO_INHERITED,
            SE_DACL_AUTO_INHERIT_REQ,
        )
    } else {
        (
            SE_SACL_PROTECTED,
            SE_SACL_AUTO_INHERITED,
            SE_SACL_AUTO_INHERIT_REQ,
        )
    };
    if control & p != 0 {
        out.push('P');
    }
    if control & ar != 0 {
        out.push_str("AR");
    }
    if control & ai != 0 {
        out.push_str("AI");
    }
    match acl {
        None => out.push_str("NO_ACCESS_CONTROL"),
        Some(a) => {
            for ace in &a.aces {
                out.push_str(&format_ace(ace)?);
            }
        }
    }
    Ok(())
}

/// Formats a security descriptor as SDDL
/// (`ConvertSecurityDescriptorToStringSecurityDescriptorW`).
pub fn format(sd: &SecurityDescriptor) -> Result<String, NtStatus> {
    let mut out = String::new();
    if let Some(o) = &sd.owner {
        out.push_str("O:");
        out.push_str(&format_sid(o));
    }
    if let Some(g) = &sd.group {
        out.push_str("G:");
        out.push_str(&format_sid(g));
    }
    if sd.dacl_present() {
        out.push_str("D:");
        format_acl(&mut out, &sd.dacl, sd.control, true)?;
    }
    if sd.control & SE_SACL_PRESENT != 0 {
        out.push_str("S:");
        format_acl(&mut out, &sd.sacl, sd.control, false)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_group_dacl() {
        let sd = parse("O:BAG:SYD:(A;;FA;;;SY)(A;;FR;;;WD)").unwrap();
        assert_eq!(sd.owner, Some(Sid::builtin_administrators()));
        assert_eq!(sd.group, Some(Sid::local_system()));
        let d = sd.dacl.as_ref().unwrap();
        assert_eq!(d.aces.len(), 2);
        assert_eq!(d.aces[0].mask, FILE_ALL_ACCESS);
        assert_eq!(d.aces[1].sid, Sid::world());
    }
    #[test]
    fn roundtrip_format() {
        let s = "O:BAG:SYD:PAI(D;OICI;GA;;;AN)(A;ID;FA;;;SY)(A;;0x1234;;;S-1-5-21-1-2-3-1001)S:(ML;;NW;;;HI)";
        let sd = parse(s).unwrap();
        assert_eq!(format(&sd).unwrap(), s);
        assert_ne!(sd.control & SE_DACL_PROTECTED, 0);
        assert_ne!(sd.control & SE_DACL_AUTO_INHERITED, 0);
    }
    #[test]
    fn null_dacl() {
        let sd = parse("D:NO_ACCESS_CONTROL").unwrap();
        assert!(sd.dacl_present() && sd.dacl.is_none());
        assert_eq!(format(&sd).unwrap(), "D:NO_ACCESS_CONTROL");
    }
    #[test]
    fn empty_dacl() {
        let sd = parse("D:").unwrap();
        assert!(sd.dacl.as_ref().unwrap().aces.is_empty());
    }
    #[test]
    fn ace_flags() {
        let sd = parse("D:(A;OICIIONP;GR;;;CO)").unwrap();
        let a = &sd.dacl.unwrap().aces[0];
        assert_eq!(
            a.flags,
            OBJECT_INHERIT_ACE
                | CONTAINER_INHERIT_ACE
                | INHERIT_ONLY_ACE
                | NO_PROPAGATE_INHERIT_ACE
        );
        assert_eq!(a.mask, GENERIC_READ);
        assert_eq!(a.sid, Sid::creator_owner());
    }
    #[test]
    fn rights_aliases() {
        assert_eq!(
            parse_rights("RCSDWDWO").unwrap(),
            READ_CONTROL | DELETE | WRITE_DAC | WRITE_OWNER
        );
        assert_eq!(parse_rights("KA").unwrap(), 0xF003F);
        assert_eq!(parse_rights("0x1F01FF").unwrap(), FILE_ALL_ACCESS);
        assert_eq!(
            parse_rights("GRGX").unwrap(),
            GENERIC_READ | GENERIC_EXECUTE
        );
        assert_eq!(parse_rights("ZZ"), Err(BAD));
        assert_eq!(parse_rights("G"), Err(BAD));
    }
    #[test]
    fn format_rights_forms() {
        assert_eq!(format_rights(FILE_ALL_ACCESS, 0), "FA");
        assert_eq!(format_rights(GENERIC_ALL, 0), "GA");
        assert_eq!(format_rights(READ_CONTROL | WRITE_DAC, 0), "RCWD");
        assert_eq!(format_rights(0x3, 0), "0x3");
        assert_eq!(format_rights(3, SYSTEM_MANDATORY_LABEL_ACE_TYPE), "NWNR");
    }
    #[test]
    fn sid_aliases() {
        for (a, s) in [
            ("SY", "S-1-5-18"),
            ("BA", "S-1-5-32-544"),
            ("WD", "S-1-1-0"),
            ("AU", "S-1-5-11"),
            ("IU", "S-1-5-4"),
            ("BU", "S-1-5-32-545"),
            ("CO", "S-1-3-0"),
            ("CG", "S-1-3-1"),
            ("OW", "S-1-3-4"),
            ("LS", "S-1-5-19"),
            ("NS", "S-1-5-20"),
            ("AN", "S-1-5-7"),
        ] {
            let sid = parse_sid(a).unwrap();
            assert_eq!(format!("{sid}"), s);
            assert_eq!(format_sid(&sid), a);
        }
    }
    #[test]
    fn errors() {
        for s in [
            "",
            "X:BA",
            "O:",
            "O:ZZ",
            "D:(A;;FA;;;SY",
            "D:(Q;;FA;;;SY)",
            "D:(A;;FA;;SY)",
            "O:BAO:SY",
            "junkO:BA",
            "D:X(A;;FA;;;SY)",
            "D:((A;;FA;;;SY))",
            "D:NO_ACCESS_CONTROL(A;;FA;;;SY)",
        ] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
    #[test]
    fn object_guid_roundtrip() {
        let s = "D:(OA;;FA;bf967a86-0de6-11d0-a285-00aa003049e2;;SY)";
        let sd = parse(s).unwrap();
        let o = sd.dacl.as_ref().unwrap().aces[0].object.clone().unwrap();
        assert_eq!(o.flags, 1);
        assert_eq!(o.object_type.unwrap()[..4], [0x86, 0x7a, 0x96, 0xbf]);
        assert_eq!(o.object_type.unwrap()[8..10], [0xa2, 0x85]);
        assert_eq!(format(&sd).unwrap(), s);
        assert_eq!(sd.dacl.as_ref().unwrap().revision, ACL_REVISION_DS);
    }
    #[test]
    fn bad_guid_and_guid_on_plain_ace() {
        assert_eq!(parse("D:(OA;;FA;bf967a86-0de6;;SY)"), Err(BAD));
        assert_eq!(
            parse("D:(A;;FA;bf967a86-0de6-11d0-a285-00aa003049e2;;SY)"),
            Err(BAD)
        );
        assert_eq!(parse_guid("zf967a86-0de6-11d0-a285-00aa003049e2"), Err(BAD));
    }
    #[test]
    fn conditional_ace_field_not_supported() {
        assert_eq!(parse("D:(XA;;FA;;;SY;(x))"), Err(BAD));
        assert_eq!(parse("D:(A;;FA;;;SY;x)"), Err(STATUS_NOT_IMPLEMENTED));
    }
    #[test]
    fn sacl_label() {
        let sd = parse("S:(ML;;NWNRNX;;;LW)").unwrap();
        let a = &sd.sacl.unwrap().aces[0];
        assert_eq!(a.ace_type, SYSTEM_MANDATORY_LABEL_ACE_TYPE);
        assert_eq!(a.mask, 7);
        assert_eq!(a.sid.integrity_rid(), Some(crate::sid::LOW_RID));
    }
    #[test]
    fn binary_roundtrip_through_sddl() {
        let sd = parse("O:SYG:SYD:(A;;GA;;;BA)(D;;WD;;;WD)").unwrap();
        let b = sd.to_bytes();
        assert_eq!(SecurityDescriptor::parse(&b).unwrap(), sd);
    }
}
