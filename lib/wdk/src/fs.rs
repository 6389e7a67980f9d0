//! What file systems return to `NtQueryInformationFile`,
//! `NtQueryDirectoryFile` and `NtQueryVolumeInformationFile`: the
//! information classes missing from [`crate::consts::file_information_class`],
//! `FS_INFORMATION_CLASS`, file attributes, `FSCTL_*` codes, and encoders
//! that lay each structure out at the offsets of the Windows x64 headers
//! (ntifs.h / wdm.h; checked by the host tests). Little-endian byte
//! buffers, so a driver writes them into the caller's buffer with one copy.

use alloc::vec::Vec;

/// More `FILE_INFORMATION_CLASS` values (ntifs.h; the query classes are
/// `wdk::fastio`'s, the first ones `consts::file_information_class`).
#[allow(non_upper_case_globals)]
pub mod class {
    pub const FileDirectoryInformation: u32 = 1;
    pub const FileFullDirectoryInformation: u32 = 2;
    pub const FileBothDirectoryInformation: u32 = 3;
    pub const FileLinkInformation: u32 = 11;
    pub const FileNamesInformation: u32 = 12;
    pub const FileDispositionInformation: u32 = 13;
    pub const FileEndOfFileInformation: u32 = 20;
    pub const FileIdBothDirectoryInformation: u32 = 37;
    pub const FileDispositionInformationEx: u32 = 64;
    // FS_INFORMATION_CLASS
    pub const FileFsVolumeInformation: u32 = 1;
    pub const FileFsLabelInformation: u32 = 2;
    pub const FileFsSizeInformation: u32 = 3;
    pub const FileFsDeviceInformation: u32 = 4;
    pub const FileFsAttributeInformation: u32 = 5;
    pub const FileFsFullSizeInformation: u32 = 7;
}

/// `FILE_ATTRIBUTE_*`.
pub const FILE_ATTRIBUTE_READONLY: u32 = 0x1;
pub const FILE_ATTRIBUTE_HIDDEN: u32 = 0x2;
pub const FILE_ATTRIBUTE_SYSTEM: u32 = 0x4;
pub const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
pub const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x20;
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
pub const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;

/// `FILE_CASE_SENSITIVE_SEARCH` and the other `FileSystemAttributes` bits
/// NTFS reports.
pub const FILE_CASE_SENSITIVE_SEARCH: u32 = 0x1;
pub const FILE_CASE_PRESERVED_NAMES: u32 = 0x2;
pub const FILE_UNICODE_ON_DISK: u32 = 0x4;
pub const FILE_PERSISTENT_ACLS: u32 = 0x8;
pub const FILE_NAMED_STREAMS: u32 = 0x40000;
pub const FILE_READ_ONLY_VOLUME: u32 = 0x80000;

/// `FSCTL_DISMOUNT_VOLUME` = CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 8,
/// METHOD_BUFFERED, FILE_ANY_ACCESS).
pub const FSCTL_DISMOUNT_VOLUME: u32 = 0x0009_0020;
/// `FSCTL_LOCK_VOLUME`.
pub const FSCTL_LOCK_VOLUME: u32 = 0x0009_0018;

/// `FILE_USE_FILE_POINTER_POSITION` (`ByteOffset.HighPart` -1, `LowPart`
/// 0xFFFFFFFE).
pub const FILE_USE_FILE_POINTER_POSITION: i64 = -2;

/// Times and sizes every directory and information class shares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileTimes {
    pub creation: i64,
    pub last_access: i64,
    pub last_write: i64,
    pub change: i64,
}

/// What a directory entry reports (FILE_*_DIR_INFORMATION).
#[derive(Clone, Debug, Default)]
pub struct DirEntryInfo<'a> {
    pub file_index: u32,
    pub times: FileTimes,
    pub end_of_file: i64,
    pub allocation_size: i64,
    pub attributes: u32,
    pub name: &'a [u16],
    /// The 8.3 name (up to 12 characters), empty when none.
    pub short_name: &'a [u16],
    pub file_id: i64,
}

fn put_u32(v: &mut [u8], off: usize, x: u32) {
    v[off..off + 4].copy_from_slice(&x.to_le_bytes());
}

fn put_i64(v: &mut [u8], off: usize, x: i64) {
    v[off..off + 8].copy_from_slice(&x.to_le_bytes());
}

fn put_name(v: &mut [u8], off: usize, name: &[u16]) {
    for (i, c) in name.iter().enumerate() {
        v[off + 2 * i..off + 2 * i + 2].copy_from_slice(&c.to_le_bytes());
    }
}

fn put_times(v: &mut [u8], off: usize, t: &FileTimes) {
    put_i64(v, off, t.creation);
    put_i64(v, off + 8, t.last_access);
    put_i64(v, off + 16, t.last_write);
    put_i64(v, off + 24, t.change);
}

/// Offset of `FileName` in each directory information class, `None` for a
/// class this module does not encode.
pub fn dir_name_offset(class: u32) -> Option<usize> {
    match class {
        class::FileDirectoryInformation => Some(0x40),
        class::FileFullDirectoryInformation => Some(0x44),
        class::FileBothDirectoryInformation => Some(0x5E),
        class::FileNamesInformation => Some(0x0C),
        class::FileIdBothDirectoryInformation => Some(0x68),
        _ => None,
    }
}

/// One directory entry of `class` (`NextEntryOffset` 0; the caller links
/// entries, 8-byte aligned). `None` for an unsupported class.
pub fn dir_entry(class: u32, e: &DirEntryInfo<'_>) -> Option<Vec<u8>> {
    let off = dir_name_offset(class)?;
    let mut v = alloc::vec![0u8; off + 2 * e.name.len()];
    put_u32(&mut v, 4, e.file_index);
    if class == class::FileNamesInformation {
        put_u32(&mut v, 8, 2 * e.name.len() as u32);
    } else {
        put_times(&mut v, 8, &e.times);
        put_i64(&mut v, 0x28, e.end_of_file);
        put_i64(&mut v, 0x30, e.allocation_size);
        put_u32(&mut v, 0x38, e.attributes);
        put_u32(&mut v, 0x3C, 2 * e.name.len() as u32);
        // EaSize (0x40) stays 0: no extended attributes.
        if class == class::FileBothDirectoryInformation
            || class == class::FileIdBothDirectoryInformation
        {
            let sn = &e.short_name[..e.short_name.len().min(12)];
            v[0x44] = (2 * sn.len()) as u8;
            put_name(&mut v, 0x46, sn);
        }
        if class == class::FileIdBothDirectoryInformation {
            put_i64(&mut v, 0x60, e.file_id);
        }
    }
    put_name(&mut v, off, e.name);
    Some(v)
}

/// `FILE_BASIC_INFORMATION` (0x28 bytes).
pub fn basic(t: &FileTimes, attributes: u32) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 0x28];
    put_times(&mut v, 0, t);
    put_u32(&mut v, 0x20, attributes);
    v
}

/// `FILE_STANDARD_INFORMATION` (0x18 bytes).
pub fn standard(allocation: i64, eof: i64, links: u32, delete_pending: bool, dir: bool) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 0x18];
    put_i64(&mut v, 0, allocation);
    put_i64(&mut v, 8, eof);
    put_u32(&mut v, 0x10, links);
    v[0x14] = delete_pending as u8;
    v[0x15] = dir as u8;
    v
}

/// `FILE_NAME_INFORMATION`: `FileNameLength` and the name.
pub fn name(name: &[u16]) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 4 + 2 * name.len()];
    put_u32(&mut v, 0, 2 * name.len() as u32);
    put_name(&mut v, 4, name);
    v
}

/// `FILE_ALL_INFORMATION`: basic (0), standard (0x28), internal (0x40), EA
/// (0x48), access (0x4C), position (0x50), mode (0x58), alignment (0x5C),
/// name (0x60).
#[allow(clippy::too_many_arguments)]
pub fn all(
    basic_info: &[u8],
    standard_info: &[u8],
    index: i64,
    access: u32,
    position: i64,
    mode: u32,
    alignment: u32,
    file_name: &[u16],
) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 0x60];
    v[0..0x28].copy_from_slice(basic_info);
    v[0x28..0x40].copy_from_slice(standard_info);
    put_i64(&mut v, 0x40, index);
    put_u32(&mut v, 0x4C, access);
    put_i64(&mut v, 0x50, position);
    put_u32(&mut v, 0x58, mode);
    put_u32(&mut v, 0x5C, alignment);
    v.extend_from_slice(&name(file_name));
    v
}

/// `FILE_NETWORK_OPEN_INFORMATION` (0x38 bytes).
pub fn network_open(t: &FileTimes, allocation: i64, eof: i64, attributes: u32) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 0x38];
    put_times(&mut v, 0, t);
    put_i64(&mut v, 0x20, allocation);
    put_i64(&mut v, 0x28, eof);
    put_u32(&mut v, 0x30, attributes);
    v
}

/// `FILE_STREAM_INFORMATION` entries for (name, size, allocation): names
/// as NTFS reports them (`::$DATA` for the unnamed stream,
/// `:name:$DATA`), each entry 8-byte aligned and linked.
pub fn streams(list: &[(Vec<u16>, i64, i64)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut last = None;
    for (n, size, alloc_size) in list {
        let mut full: Vec<u16> = Vec::new();
        full.push(b':' as u16);
        full.extend_from_slice(n);
        full.extend(":$DATA".encode_utf16());
        while out.len() % 8 != 0 {
            out.push(0);
        }
        if let Some(l) = last {
            let delta = (out.len() - l) as u32;
            put_u32(&mut out, l, delta);
        }
        last = Some(out.len());
        let start = out.len();
        out.resize(start + 24 + 2 * full.len(), 0);
        put_u32(&mut out, start + 4, 2 * full.len() as u32);
        put_i64(&mut out, start + 8, *size);
        put_i64(&mut out, start + 16, *alloc_size);
        put_name(&mut out, start + 24, &full);
    }
    out
}

/// `FILE_FS_VOLUME_INFORMATION`: creation time, serial, label.
pub fn fs_volume(created: i64, serial: u32, label: &[u16]) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 0x12 + 2 * label.len()];
    put_i64(&mut v, 0, created);
    put_u32(&mut v, 8, serial);
    put_u32(&mut v, 0xC, 2 * label.len() as u32);
    v[0x10] = 1; // SupportsObjects: NTFS has object ids.
    put_name(&mut v, 0x12, label);
    v
}

/// `FILE_FS_SIZE_INFORMATION` (0x18) or, `full`, `FILE_FS_FULL_SIZE_INFORMATION` (0x20).
pub fn fs_size(
    total: i64,
    free: i64,
    sectors_per_unit: u32,
    bytes_per_sector: u32,
    full: bool,
) -> Vec<u8> {
    let mut v = alloc::vec![0u8; if full { 0x20 } else { 0x18 }];
    put_i64(&mut v, 0, total);
    put_i64(&mut v, 8, free);
    let mut o = 0x10;
    if full {
        put_i64(&mut v, 0x10, free);
        o = 0x18;
    }
    put_u32(&mut v, o, sectors_per_unit);
    put_u32(&mut v, o + 4, bytes_per_sector);
    v
}

/// `FILE_FS_DEVICE_INFORMATION` (8 bytes).
pub fn fs_device(device_type: u32, characteristics: u32) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 8];
    put_u32(&mut v, 0, device_type);
    put_u32(&mut v, 4, characteristics);
    v
}

/// `FILE_FS_ATTRIBUTE_INFORMATION`.
pub fn fs_attribute(attributes: u32, max_component: u32, fs_name: &[u16]) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 0xC + 2 * fs_name.len()];
    put_u32(&mut v, 0, attributes);
    put_u32(&mut v, 4, max_component);
    put_u32(&mut v, 8, 2 * fs_name.len() as u32);
    put_name(&mut v, 0xC, fs_name);
    v
}

/// `FsRtlIsNameInExpression` semantics: `*` any run, `?` any one
/// character, and the DOS wildcards `<` (DOS_STAR: any run up to the last
/// period), `>` (DOS_QM: one character, or nothing before a period or at
/// the end) and `"` (DOS_DOT: a period, or nothing at the end). With
/// `ignore_case` the name is upcased through `upcase` (the expression must
/// already be upper case, as NT requires).
pub fn is_name_in_expression(
    expr: &[u16],
    name: &[u16],
    ignore_case: bool,
    upcase: &dyn Fn(u16) -> u16,
) -> bool {
    const STAR: u16 = b'*' as u16;
    const QM: u16 = b'?' as u16;
    const DOS_STAR: u16 = b'<' as u16;
    const DOS_QM: u16 = b'>' as u16;
    const DOS_DOT: u16 = b'"' as u16;
    const DOT: u16 = b'.' as u16;
    let nm: Vec<u16> = if ignore_case {
        name.iter().map(|&c| upcase(c)).collect()
    } else {
        name.to_vec()
    };
    let last_dot = nm.iter().rposition(|&c| c == DOT);
    // States: positions in the expression; a set of them per name position.
    let n = expr.len();
    let mut cur = alloc::vec![false; n + 1];
    // Epsilon closure: wildcards that may match nothing.
    fn close(expr: &[u16], set: &mut [bool], at_end: bool, before_dot: bool) {
        let mut i = 0;
        while i < expr.len() {
            if set[i] {
                let c = expr[i];
                let skip = c == b'*' as u16
                    || c == b'<' as u16
                    || (c == b'>' as u16 && (at_end || before_dot))
                    || (c == b'"' as u16 && at_end);
                if skip {
                    set[i + 1] = true;
                }
            }
            i += 1;
        }
    }
    cur[0] = true;
    let at = |i: usize| (i == nm.len(), i < nm.len() && nm[i] == DOT);
    let (e0, d0) = at(0);
    close(expr, &mut cur, e0, d0);
    for (pos, &ch) in nm.iter().enumerate() {
        let mut next = alloc::vec![false; n + 1];
        for i in 0..n {
            if !cur[i] {
                continue;
            }
            match expr[i] {
                STAR => next[i] = true,
                DOS_STAR => {
                    // Matches characters while a later period remains.
                    let more_dots = last_dot.is_some_and(|d| d > pos);
                    if ch != DOT || more_dots {
                        next[i] = true;
                    }
                }
                QM => next[i + 1] = true,
                DOS_QM => {
                    if ch != DOT {
                        next[i + 1] = true;
                    }
                }
                DOS_DOT => {
                    if ch == DOT {
                        next[i + 1] = true;
                    }
                }
                c => {
                    if c == ch {
                        next[i + 1] = true;
                    }
                }
            }
        }
        let (e, d) = at(pos + 1);
        close(expr, &mut next, e, d);
        cur = next;
        if !cur.iter().any(|&b| b) {
            return false;
        }
    }
    cur[n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn m(e: &str, n: &str) -> bool {
        is_name_in_expression(&w(e), &w(n), true, &|c: u16| {
            if (b'a' as u16..=b'z' as u16).contains(&c) {
                c - 32
            } else {
                c
            }
        })
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "anything.txt"));
        assert!(m("*", ""));
        assert!(m("*.SYS", "disk.sys"));
        assert!(!m("*.SYS", "disk.sysx"));
        assert!(!m("*.SYS", "disk.dll"));
        assert!(m("NT?S.SYS", "ntfs.sys"));
        assert!(!m("NT?S.SYS", "nts.sys"));
        assert!(m("NTOSKRNL.EXE", "ntoskrnl.exe"));
        assert!(m("*K*", "disk.sys"));
        assert!(!m("*Q*", "disk.sys"));
        // DOS wildcards as the Win32 layer turns "*.*" and "???" into them.
        assert!(m("<\"*", "readme"));
        assert!(m("<\"*", "readme.txt"));
        assert!(m("<.TXT", "a.b.txt"));
        assert!(m(">>>", "ab"));
        assert!(m(">>>.TXT", "ab.txt"));
        assert!(!m(">>>", "abcd"));
        assert!(m("A\"", "a"));
        assert!(m("A\"B", "a.b"));
    }

    #[test]
    fn layouts() {
        use class::FileDirectoryInformation;
        let name = w("ntfs.sys");
        let sn = w("NTFS.SYS");
        let e = DirEntryInfo {
            file_index: 7,
            times: FileTimes {
                creation: 1,
                last_access: 2,
                last_write: 3,
                change: 4,
            },
            end_of_file: 0x1234,
            allocation_size: 0x2000,
            attributes: FILE_ATTRIBUTE_ARCHIVE,
            name: &name,
            short_name: &sn,
            file_id: 0x55,
        };
        let d = dir_entry(FileDirectoryInformation, &e).unwrap();
        assert_eq!(d.len(), 0x40 + 16);
        assert_eq!(&d[0x28..0x30], &0x1234i64.to_le_bytes());
        assert_eq!(&d[0x3C..0x40], &16u32.to_le_bytes());
        let b = dir_entry(class::FileIdBothDirectoryInformation, &e).unwrap();
        assert_eq!(b[0x44], 16);
        assert_eq!(&b[0x60..0x68], &0x55i64.to_le_bytes());
        assert_eq!(&b[0x68..0x6A], &(b'n' as u16).to_le_bytes());
        let n = dir_entry(class::FileNamesInformation, &e).unwrap();
        assert_eq!(&n[8..12], &16u32.to_le_bytes());
        assert_eq!(basic(&e.times, 0x20).len(), 40);
        assert_eq!(standard(1, 2, 3, false, true)[0x15], 1);
        let a = all(
            &basic(&e.times, 0),
            &standard(1, 2, 3, false, false),
            9,
            0,
            0,
            0,
            0,
            &name,
        );
        assert_eq!(&a[0x60..0x64], &16u32.to_le_bytes());
        let s = streams(&[(Vec::new(), 5, 8), (w("ads"), 1, 8)]);
        assert_eq!(&s[0..4], &40u32.to_le_bytes()); // 24 + 2*7 = 38 → 40
        assert_eq!(&s[4..8], &14u32.to_le_bytes());
        assert_eq!(fs_size(1, 2, 8, 512, true).len(), 32);
    }
}
