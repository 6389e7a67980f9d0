//! File names as Windows writes them (*Windows Internals* 7th ed., Part 2
//! ch. 11, "Filename mapping"): which `$FILE_NAME` namespaces a new name
//! gets, and the 8.3 short name generated for a long name.
//!
//! Rules (facts from Microsoft's documentation of `RtlGenerate8dot3Name` and
//! `NtfsDisable8dot3NameCreation`, and the published description of the
//! checksum Windows uses after the fourth collision):
//! - A name that is a valid 8.3 name once upper-cased (ASCII, no spaces)
//!   is stored once, as typed, in the Win32&DOS namespace (3): Windows
//!   gives `readme.txt` no short name (`dir /x` shows none, and such files
//!   have a link count of 1 where long names have 2).
//! - Otherwise, with 8.3 creation enabled, the name is stored in the Win32
//!   namespace (1) and a generated short name in the DOS namespace (2).
//! - With 8.3 creation disabled the name is stored in the POSIX namespace
//!   (0): a Win32 name always has a DOS twin (ntfs-3g relies on it when it
//!   deletes), so a name without a twin cannot be a Win32 name.
//!
//! Short name generation: leading periods are skipped; spaces and every
//! period but the last are dropped; letters are upper-cased through
//! `$UpCase`; `: ; , + = [ ]` become `_`; characters outside 0x21..0x7E
//! (NTFS does not allow extended characters in short names by default) and
//! the characters a DOS name cannot hold are dropped. The base keeps its
//! first 6 characters followed by `~1`..`~4`, the extension its first 3.
//! From the fifth candidate on, the base is the first 2 characters, then 4
//! hex digits of a checksum of the long name, then `~1`..`~9` (fewer base
//! characters as the number grows).

use crate::upcase;
use alloc::vec::Vec;

/// Characters allowed in a DOS 8.3 name besides `A`-`Z` and `0`-`9`.
const DOS_EXTRA: &[u8] = b"$%'-_@~`!(){}^#&";

/// Characters Windows turns into `_` in a generated short name.
const TO_UNDERSCORE: &[u8] = b":;,+=[]";

fn dos_char(c: u16) -> bool {
    c < 0x80 && {
        let b = c as u8;
        b.is_ascii_uppercase() || b.is_ascii_digit() || DOS_EXTRA.contains(&b)
    }
}

/// Whether `n` is a valid upper-case 8.3 name (then it is its own DOS name
/// and is stored once, in the Win32&DOS namespace).
pub fn is_dos_name(n: &[u16]) -> bool {
    let dot = n.iter().position(|&c| c == b'.' as u16);
    let (base, ext) = match dot {
        Some(i) => (&n[..i], &n[i + 1..]),
        None => (n, &[][..]),
    };
    !base.is_empty()
        && base.len() <= 8
        && ext.len() <= 3
        && base.iter().all(|c| dos_char(*c))
        && ext.iter().all(|c| dos_char(*c))
        && (dot.is_none() || !ext.is_empty())
}

/// Whether `n` upper-cased through `$UpCase` is a valid 8.3 name (ASCII,
/// no spaces, base ≤ 8, extension ≤ 3). Windows then stores the name once,
/// as typed, in the Win32&DOS namespace and generates no short name
/// (`readme.txt` has no `README~1.TXT`).
pub fn fits_8dot3(table: &[u16], n: &[u16]) -> bool {
    let up: Vec<u16> = n.iter().map(|&c| upcase::up(table, c)).collect();
    n.iter().all(|&c| c < 0x80) && is_dos_name(&up)
}

/// The checksum Windows puts into the short name from the fifth collision
/// on (4 hex digits), computed over the long name's UTF-16 code units.
pub fn checksum(name: &[u16]) -> u16 {
    let mut c: u16 = 0;
    for &u in name {
        c = c.wrapping_mul(0x25).wrapping_add(u);
    }
    let mut t = (c as i32).wrapping_mul(314_159_269);
    if t < 0 {
        t = t.wrapping_neg();
    }
    let q = ((t as i64).wrapping_mul(1_152_921_497) as u64) >> 60;
    let t = (t as u64).wrapping_sub(q.wrapping_mul(1_000_000_007));
    let c = t as u16;
    // The four nibbles in reverse order.
    ((c & 0xF000) >> 12) | ((c & 0x0F00) >> 4) | ((c & 0x00F0) << 4) | ((c & 0x000F) << 12)
}

/// The cleaned base and extension of a long name (before numbering).
fn clean(table: &[u16], name: &[u16]) -> (Vec<u16>, Vec<u16>) {
    let start = name
        .iter()
        .position(|&c| c != b'.' as u16)
        .unwrap_or(name.len());
    let n = &name[start..];
    let (base, ext) = match n.iter().rposition(|&c| c == b'.' as u16) {
        Some(i) => (&n[..i], &n[i + 1..]),
        None => (n, &[][..]),
    };
    let map = |s: &[u16]| -> Vec<u16> {
        s.iter()
            .filter_map(|&c| {
                let u = upcase::up(table, c);
                if u < 0x80 && TO_UNDERSCORE.contains(&(u as u8)) {
                    Some(b'_' as u16)
                } else if dos_char(u) {
                    Some(u)
                } else {
                    None
                }
            })
            .collect()
    };
    (map(base), map(ext))
}

/// The `k`-th candidate short name (k = 1, 2, ...) for `name`: `~1`..`~4`
/// on the first 6 base characters, then the checksum form. `None` past the
/// last candidate (the volume then has no short name to give:
/// `STATUS_FILE_SYSTEM_LIMITATION` on Windows).
pub fn short_name_candidate(table: &[u16], name: &[u16], k: u32) -> Option<Vec<u16>> {
    let (base, ext) = clean(table, name);
    let mut out: Vec<u16>;
    if k == 0 {
        return None;
    }
    if k <= 4 && !base.is_empty() {
        out = base.iter().take(6).copied().collect();
        out.push(b'~' as u16);
        out.push(b'0' as u16 + k as u16);
    } else {
        let n = if base.is_empty() { k } else { k - 4 };
        let digits: Vec<u16> = alloc::format!("{n}").encode_utf16().collect();
        let hex: Vec<u16> = alloc::format!("{:04X}", checksum(name))
            .encode_utf16()
            .collect();
        // prefix + 4 hex + '~' + digits <= 8 characters.
        let room = 8usize.checked_sub(4 + 1 + digits.len())?;
        out = base.iter().take(room.min(2)).copied().collect();
        out.extend_from_slice(&hex);
        out.push(b'~' as u16);
        out.extend_from_slice(&digits);
    }
    if !ext.is_empty() {
        out.push(b'.' as u16);
        out.extend(ext.iter().take(3));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }
    fn s(v: &[u16]) -> String {
        String::from_utf16(v).unwrap()
    }
    fn cand(name: &str, k: u32) -> String {
        s(&short_name_candidate(&upcase::default_table(), &u(name), k).unwrap())
    }

    #[test]
    fn dos_names_are_recognised() {
        for ok in ["UP.TXT", "A", "NTOSKRNL.EXE", "$MFT", "A-B_C~1.X"] {
            assert!(is_dos_name(&u(ok)), "{ok}");
        }
        for bad in [
            "lower.txt",
            "NINECHARS.TXT",
            "A.TEXT",
            "A.",
            ".A",
            "A B.TXT",
            "A.B.C",
            "A+B",
            "É.TXT",
            "",
        ] {
            assert!(!is_dos_name(&u(bad)), "{bad}");
        }
    }

    #[test]
    fn names_that_fit_8dot3_once_upper_cased() {
        let t = upcase::default_table();
        for ok in ["readme.txt", "Wide", "UP.TXT", "a-b.c"] {
            assert!(fits_8dot3(&t, &u(ok)), "{ok}");
        }
        for bad in ["read me.txt", "é.txt", "toolongname.txt", "a.b.c", "x.html"] {
            assert!(!fits_8dot3(&t, &u(bad)), "{bad}");
        }
    }

    #[test]
    fn windows_short_names() {
        // Examples from Microsoft's and others' published descriptions.
        assert_eq!(cand("SomeStuff.aspx", 1), "SOMEST~1.ASP");
        assert_eq!(cand("5+6 June Report.doc", 1), "5_6JUN~1.DOC");
        assert_eq!(cand("a.testing.file.bat", 1), "ATESTI~1.BAT");
        assert_eq!(cand("hello world.txt", 2), "HELLOW~2.TXT");
        assert_eq!(cand("lower.txt", 1), "LOWER~1.TXT");
        assert_eq!(cand("...leading", 1), "LEADIN~1");
        assert_eq!(cand("My Report", 4), "MYREPO~4");
        assert_eq!(cand("[x]", 1), "_X_~1");
        // The fifth candidate switches to the checksum form.
        assert_eq!(checksum(&u("SomeStuff.aspx")), 0xBC84);
        assert_eq!(cand("SomeStuff.aspx", 5), "SOBC84~1.ASP");
        assert_eq!(cand("SomeStuff.aspx", 13), "SOBC84~9.ASP");
        assert_eq!(cand("SomeStuff.aspx", 14), "SBC84~10.ASP");
        assert_eq!(cand("SomeStuff.aspx", 104), "BC84~100.ASP");
        assert!(short_name_candidate(&upcase::default_table(), &u("x"), 1004).is_none());
        // Only characters a short name cannot hold: checksum form at once.
        let c = cand("ééé.txt", 1);
        assert!(c.ends_with("~1.TXT") && c.len() == 10, "{c}");
        // Every candidate is itself a valid DOS name.
        for k in 1..30 {
            let c =
                short_name_candidate(&upcase::default_table(), &u("Ünïcode name.html"), k).unwrap();
            assert!(is_dos_name(&c), "{}", s(&c));
        }
    }
}
