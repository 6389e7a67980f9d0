//! DOS path names to NT path names (`RtlDetermineDosPathNameType_U`,
//! `RtlDosPathNameToNtPathName_U_WithStatus`, `RtlGetFullPathName_U`), with
//! the rules Microsoft documents for Win32 path normalization ("Naming
//! Files, Paths, and Namespaces"; J. Kuhne, "Path Normalization", MSDN
//! blogs):
//!
//! - `\\?\X` is passed through untouched: `\??\X`.
//! - `C:\x` (drive absolute) becomes `\??\C:\x`; `\\server\share\x` (UNC)
//!   becomes `\??\UNC\server\share\x`; `\\.\X` (local device) `\??\X`.
//! - `\x` (rooted) takes the current directory's root (its drive, or its
//!   `\\server\share`); `x` (relative) is appended to the current directory;
//!   `C:x` (drive relative) is relative to the current directory when that
//!   is on drive C, else to `C:\` (Windows keeps a per-drive directory in
//!   the hidden `=C:` environment variables; ntrs has one current directory).
//! - Both `\` and `/` separate; runs of separators are one; `.` segments go;
//!   `..` removes the segment before it but never the root (`C:\`,
//!   `\\server\share\`, the device of `\\.\device\`); trailing dots and
//!   spaces of the final segment go; a trailing separator stays.
//! - A final segment naming a DOS device (`CON`, `PRN`, `AUX`, `NUL`,
//!   `COM1`-`COM9`, `LPT1`-`LPT9`, with any extension) makes the path
//!   `\??\NAME` (for drive and relative paths, not UNC or device ones).
//!
//! Everything is written into a caller's buffer: no allocation.

use nt::status::*;
use nt::NtStatus;

/// `RTL_PATH_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathType {
    Unknown = 0,
    UncAbsolute = 1,
    DriveAbsolute = 2,
    DriveRelative = 3,
    Rooted = 4,
    Relative = 5,
    LocalDevice = 6,
    RootLocalDevice = 7,
}

fn sep(c: u16) -> bool {
    c == b'\\' as u16 || c == b'/' as u16
}

fn letter(c: u16) -> bool {
    (b'a' as u16..=b'z' as u16).contains(&c) || (b'A' as u16..=b'Z' as u16).contains(&c)
}

/// `RtlDetermineDosPathNameType_U`.
pub fn path_type(p: &[u16]) -> PathType {
    let at = |i: usize| p.get(i).copied().unwrap_or(0);
    if p.is_empty() {
        return PathType::Unknown;
    }
    if sep(at(0)) {
        if !sep(at(1)) {
            return PathType::Rooted;
        }
        let c = at(2);
        if c == b'.' as u16 || c == b'?' as u16 {
            if p.len() == 3 {
                return PathType::RootLocalDevice;
            }
            if sep(at(3)) {
                return PathType::LocalDevice;
            }
        }
        return PathType::UncAbsolute;
    }
    if at(1) == b':' as u16 && letter(at(0)) {
        if sep(at(2)) {
            PathType::DriveAbsolute
        } else {
            PathType::DriveRelative
        }
    } else {
        PathType::Relative
    }
}

/// The result of a conversion: the NT path's length in `buf` (units) and
/// where its final segment starts (`None` when it ends in a separator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtPath {
    pub length: usize,
    pub file_part: Option<usize>,
}

struct Out<'a> {
    buf: &'a mut [u16],
    len: usize,
}

impl Out<'_> {
    fn push(&mut self, c: u16) -> Result<(), NtStatus> {
        *self.buf.get_mut(self.len).ok_or(STATUS_NAME_TOO_LONG)? = c;
        self.len += 1;
        Ok(())
    }
    fn extend(&mut self, s: &[u16]) -> Result<(), NtStatus> {
        s.iter().try_for_each(|&c| self.push(c))
    }
    fn ascii(&mut self, s: &str) -> Result<(), NtStatus> {
        s.bytes().try_for_each(|c| self.push(c as u16))
    }
}

/// Segments of `s` split at either separator, without the empty ones.
fn segments(s: &[u16]) -> impl Iterator<Item = &[u16]> {
    s.split(|&c| sep(c)).filter(|x| !x.is_empty())
}

/// Appends `segments` to `out` (whose root ends at `root`, just after a
/// separator or empty), applying `.`/`..`; the last segment of the last
/// source loses its trailing dots and spaces.
fn append(out: &mut Out<'_>, root: usize, sources: &[&[u16]]) -> Result<(), NtStatus> {
    let last_src = sources.len().saturating_sub(1);
    for (si, src) in sources.iter().enumerate() {
        let n = segments(src).count();
        for (i, seg) in segments(src).enumerate() {
            let mut seg = seg;
            if si == last_src && i + 1 == n {
                while let Some((&c, rest)) = seg.split_last() {
                    if c == b'.' as u16 && (seg == [0x2E] || seg == [0x2E, 0x2E]) {
                        break;
                    }
                    if c == b'.' as u16 || c == b' ' as u16 {
                        seg = rest;
                    } else {
                        break;
                    }
                }
                if seg.is_empty() {
                    continue;
                }
            }
            if seg == [0x2E] {
                continue;
            }
            if seg == [0x2E, 0x2E] {
                // Drop the segment before, keeping the root.
                if out.len > root {
                    let mut l = out.len - 1; // the separator after it
                    while l > root && !sep(out.buf[l - 1]) {
                        l -= 1;
                    }
                    out.len = l;
                }
                continue;
            }
            out.extend(seg)?;
            out.push(b'\\' as u16)?;
        }
    }
    Ok(())
}

/// The DOS device a final segment names (`CON`, `nul.txt`, `COM1 `), if any.
fn dos_device(p: &[u16]) -> Option<&[u16]> {
    let last = p.rsplit(|&c| sep(c) || c == b':' as u16).next()?;
    let stem_end = last
        .iter()
        .position(|&c| c == b'.' as u16 || c == b':' as u16)
        .unwrap_or(last.len());
    let mut stem = &last[..stem_end];
    while let Some((&c, rest)) = stem.split_last() {
        if c != b' ' as u16 {
            break;
        }
        stem = rest;
    }
    let up = |i: usize| (stem[i] as u8).to_ascii_uppercase();
    if stem.iter().any(|&c| c > 0x7F) {
        return None;
    }
    let name = match stem.len() {
        3 => [up(0), up(1), up(2)],
        4 => [up(0), up(1), up(2)],
        _ => return None,
    };
    let ok = match (stem.len(), &name) {
        (3, b"CON" | b"PRN" | b"AUX" | b"NUL") => true,
        (4, b"COM" | b"LPT") => (b'1'..=b'9').contains(&up(3)),
        _ => false,
    };
    ok.then_some(stem)
}

/// The root of a current directory: `C:\` (3 units) or `\\server\share\`
/// (its length), with the prefix the NT form needs.
fn cwd_root(cwd: &[u16]) -> Result<(usize, &'static str, usize), NtStatus> {
    match path_type(cwd) {
        PathType::DriveAbsolute => Ok((3, "\\??\\", 0)),
        PathType::UncAbsolute => {
            // Skip "\\", the server and the share.
            let mut n = 0;
            let mut i = 2;
            while i < cwd.len() {
                if sep(cwd[i]) {
                    n += 1;
                    if n == 2 {
                        return Ok((i + 1, "\\??\\UNC\\", 2));
                    }
                }
                i += 1;
            }
            Ok((cwd.len(), "\\??\\UNC\\", 2))
        }
        _ => Err(STATUS_OBJECT_PATH_NOT_FOUND),
    }
}

/// `RtlDosPathNameToNtPathName_U_WithStatus`: the NT form of `path`
/// relative to the current directory `cwd` (a full DOS path, `C:\dir\`),
/// written into `buf`. An empty path is `STATUS_OBJECT_NAME_INVALID`; a
/// result longer than `buf` (or than a counted string's 32,767 units)
/// `STATUS_NAME_TOO_LONG`; a relative path with no usable current
/// directory `STATUS_OBJECT_PATH_NOT_FOUND`.
pub fn dos_path_to_nt_path(path: &[u16], cwd: &[u16], buf: &mut [u16]) -> Result<NtPath, NtStatus> {
    let max = buf.len().min(0x7FFF);
    let mut out = Out {
        buf: &mut buf[..max],
        len: 0,
    };
    let ty = path_type(path);
    let ends_in_sep = path.last().is_some_and(|&c| sep(c));
    match ty {
        PathType::Unknown => return Err(STATUS_OBJECT_NAME_INVALID),
        PathType::LocalDevice if path[2] == b'?' as u16 => {
            // \\?\ : verbatim.
            out.ascii("\\??\\")?;
            out.extend(&path[4..])?;
            let file = path[4..]
                .iter()
                .rposition(|&c| c == b'\\' as u16)
                .map_or(4, |i| 4 + i + 1);
            let file_part = (file < out.len).then_some(file);
            return Ok(NtPath {
                length: out.len,
                file_part,
            });
        }
        PathType::RootLocalDevice => {
            out.ascii("\\??\\")?;
            return Ok(NtPath {
                length: out.len,
                file_part: None,
            });
        }
        _ => {}
    }
    if matches!(
        ty,
        PathType::DriveAbsolute | PathType::DriveRelative | PathType::Relative | PathType::Rooted
    ) {
        if let Some(dev) = dos_device(path) {
            out.ascii("\\??\\")?;
            out.extend(dev)?;
            return Ok(NtPath {
                length: out.len,
                file_part: Some(4),
            });
        }
    }
    let root;
    match ty {
        PathType::DriveAbsolute => {
            out.ascii("\\??\\")?;
            out.extend(&path[..2])?;
            out.push(b'\\' as u16)?;
            root = out.len;
            append(&mut out, root, &[&path[3..]])?;
        }
        PathType::DriveRelative => {
            out.ascii("\\??\\")?;
            out.push(crate::upcase::upcase(path[0]))?;
            out.ascii(":\\")?;
            root = out.len;
            let same_drive = path_type(cwd) == PathType::DriveAbsolute
                && crate::upcase::upcase(cwd[0]) == crate::upcase::upcase(path[0]);
            if same_drive {
                append(&mut out, root, &[&cwd[3..], &path[2..]])?;
            } else {
                append(&mut out, root, &[&path[2..]])?;
            }
        }
        PathType::UncAbsolute => {
            out.ascii("\\??\\UNC\\")?;
            // The root is \\server\share\.
            let rest = &path[2..];
            let mut segs = segments(rest);
            let server = segs.next().ok_or(STATUS_OBJECT_NAME_INVALID)?;
            out.extend(server)?;
            out.push(b'\\' as u16)?;
            if let Some(share) = segs.next() {
                out.extend(share)?;
                out.push(b'\\' as u16)?;
            }
            root = out.len;
            // What follows the share.
            let mut n = 0;
            let mut start = rest.len();
            let mut prev_sep = true;
            for (i, &c) in rest.iter().enumerate() {
                if !sep(c) && prev_sep {
                    n += 1;
                    if n == 3 {
                        start = i;
                        break;
                    }
                }
                prev_sep = sep(c);
            }
            append(&mut out, root, &[&rest[start..]])?;
        }
        PathType::LocalDevice => {
            // \\.\device\rest: the device is part of the root.
            out.ascii("\\??\\")?;
            let rest = &path[4..];
            let mut segs = segments(rest);
            if let Some(dev) = segs.next() {
                out.extend(dev)?;
                out.push(b'\\' as u16)?;
            }
            root = out.len;
            let dev_end = rest.iter().position(|&c| sep(c)).unwrap_or(rest.len());
            append(&mut out, root, &[&rest[dev_end..]])?;
        }
        PathType::Rooted | PathType::Relative => {
            let (cr, prefix, skip) = cwd_root(cwd)?;
            out.ascii(prefix)?;
            for &c in &cwd[skip..cr] {
                out.push(if c == b'/' as u16 { b'\\' as u16 } else { c })?;
            }
            if !out.buf[..out.len].ends_with(&[b'\\' as u16]) {
                out.push(b'\\' as u16)?;
            }
            root = out.len;
            if ty == PathType::Rooted {
                append(&mut out, root, &[path])?;
            } else {
                append(&mut out, root, &[&cwd[cr..], path])?;
            }
        }
        PathType::Unknown | PathType::RootLocalDevice => unreachable!("returned above"),
    }
    // `append` leaves a separator after every segment (and the root ends
    // in one): keep it only when the path itself ended in one, or when it
    // is a drive's root (`\??\C:\`).
    let drive_root = out.len == 7 && out.buf[5] == b':' as u16;
    if !ends_in_sep && !drive_root && out.len > 4 && out.buf[out.len - 1] == b'\\' as u16 {
        out.len -= 1;
    }
    let file_part = if out.len > root && !ends_in_sep {
        let start = out.buf[..out.len]
            .iter()
            .rposition(|&c| c == b'\\' as u16)
            .map_or(0, |i| i + 1);
        Some(start)
    } else {
        None
    };
    Ok(NtPath {
        length: out.len,
        file_part,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn nt(path: &str, cwd: &str) -> Result<String, NtStatus> {
        let mut buf = [0u16; 600];
        let r = dos_path_to_nt_path(&w(path), &w(cwd), &mut buf)?;
        Ok(String::from_utf16(&buf[..r.length]).unwrap())
    }

    #[test]
    fn path_types() {
        use PathType::*;
        for (p, t) in [
            ("", Unknown),
            ("\\\\server\\share", UncAbsolute),
            ("//server/share", UncAbsolute),
            ("C:\\x", DriveAbsolute),
            ("c:/x", DriveAbsolute),
            ("C:x", DriveRelative),
            ("C:", DriveRelative),
            ("\\x", Rooted),
            ("x\\y", Relative),
            ("1:\\x", Relative),
            ("\\\\.\\PhysicalDrive0", LocalDevice),
            ("\\\\?\\C:\\x", LocalDevice),
            ("\\\\.", RootLocalDevice),
            ("\\\\?", RootLocalDevice),
        ] {
            assert_eq!(path_type(&w(p)), t, "{p}");
        }
    }

    #[test]
    fn conversions() {
        let cwd = "C:\\Users\\ntrs\\";
        for (p, want) in [
            ("C:\\x", "\\??\\C:\\x"),
            ("C:\\x\\", "\\??\\C:\\x\\"),
            ("C:\\", "\\??\\C:\\"),
            ("c:/a/b/../c/./d", "\\??\\c:\\a\\c\\d"),
            ("C:\\..\\..\\x", "\\??\\C:\\x"),
            ("C:\\a\\\\b", "\\??\\C:\\a\\b"),
            ("C:\\a\\file.txt. . ", "\\??\\C:\\a\\file.txt"),
            ("C:\\a.\\b", "\\??\\C:\\a.\\b"),
            ("x.txt", "\\??\\C:\\Users\\ntrs\\x.txt"),
            ("..\\x", "\\??\\C:\\Users\\x"),
            ("..\\..\\..\\..\\x", "\\??\\C:\\x"),
            (".", "\\??\\C:\\Users\\ntrs"),
            ("\\Windows", "\\??\\C:\\Windows"),
            ("C:tmp", "\\??\\C:\\Users\\ntrs\\tmp"),
            ("D:tmp", "\\??\\D:\\tmp"),
            (
                "\\\\server\\share\\a\\..\\..\\b",
                "\\??\\UNC\\server\\share\\b",
            ),
            ("\\\\server\\share", "\\??\\UNC\\server\\share"),
            ("C:\\.", "\\??\\C:\\"),
            ("D:", "\\??\\D:\\"),
            ("//server/share/x", "\\??\\UNC\\server\\share\\x"),
            ("\\\\?\\C:\\a\\..\\b/.", "\\??\\C:\\a\\..\\b/."),
            ("\\\\.\\C:\\a\\..\\..\\b", "\\??\\C:\\b"),
            ("\\\\.\\PhysicalDrive0", "\\??\\PhysicalDrive0"),
            ("\\\\.", "\\??\\"),
            ("NUL", "\\??\\NUL"),
            ("C:\\dir\\con.txt", "\\??\\con"),
            ("com1", "\\??\\com1"),
            ("COM0", "\\??\\C:\\Users\\ntrs\\COM0"),
            ("console", "\\??\\C:\\Users\\ntrs\\console"),
        ] {
            assert_eq!(nt(p, cwd).as_deref(), Ok(want), "{p}");
        }
        // A UNC current directory.
        let unc = "\\\\srv\\sh\\dir\\";
        assert_eq!(nt("x", unc).as_deref(), Ok("\\??\\UNC\\srv\\sh\\dir\\x"));
        assert_eq!(nt("\\y", unc).as_deref(), Ok("\\??\\UNC\\srv\\sh\\y"));
        assert_eq!(nt("..\\..\\z", unc).as_deref(), Ok("\\??\\UNC\\srv\\sh\\z"));
    }

    #[test]
    fn errors_and_file_part() {
        assert_eq!(nt("", "C:\\"), Err(STATUS_OBJECT_NAME_INVALID));
        assert_eq!(nt("x", ""), Err(STATUS_OBJECT_PATH_NOT_FOUND));
        assert_eq!(nt("x", "relative\\"), Err(STATUS_OBJECT_PATH_NOT_FOUND));
        let mut tiny = [0u16; 6];
        assert_eq!(
            dos_path_to_nt_path(&w("C:\\abc"), &w("C:\\"), &mut tiny),
            Err(STATUS_NAME_TOO_LONG)
        );
        let mut buf = [0u16; 64];
        let r = dos_path_to_nt_path(&w("C:\\dir\\file.txt"), &w("C:\\"), &mut buf).unwrap();
        assert_eq!(r.file_part, Some(11));
        assert_eq!(String::from_utf16(&buf[11..r.length]).unwrap(), "file.txt");
        let r = dos_path_to_nt_path(&w("C:\\dir\\"), &w("C:\\"), &mut buf).unwrap();
        assert_eq!(r.file_part, None);
    }

    proptest::proptest! {
        /// Any input gives an answer or a status, never a panic; a drive
        /// path's answer starts with \??\ and has no `.`/`..` segments or
        /// doubled separators.
        #[test]
        fn never_panics_and_normalizes(p in "[a-zC:\\\\/. ]{0,24}") {
            let mut buf = [0u16; 200];
            if let Ok(r) = dos_path_to_nt_path(&w(&p), &w("C:\\d\\"), &mut buf) {
                let s = String::from_utf16(&buf[..r.length]).unwrap();
                proptest::prop_assert!(s.starts_with("\\??\\"));
                let ty = path_type(&w(&p));
                if ty != PathType::LocalDevice && ty != PathType::UncAbsolute {
                    let body = &s[4..];
                    proptest::prop_assert!(!body.contains("\\\\"), "{}", s);
                    proptest::prop_assert!(!body.split('\\').any(|x| x == "." || x == ".."), "{}", s);
                }
            }
        }
    }
}
