//! `IRP_MJ_QUERY_INFORMATION`, `IRP_MJ_SET_INFORMATION` and
//! `IRP_MJ_QUERY_VOLUME_INFORMATION`.

use crate::vcb::*;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use ntfs::attr::AT_DATA;
use rt::wdk::*;
use wdk::fs::{self as fsinfo, class::*, FileTimes};

/// Copies `data` into the request's buffer of `length` bytes. A structure
/// whose fixed part (`fixed` bytes) does not fit is
/// STATUS_INFO_LENGTH_MISMATCH; a variable tail that does not fit is cut
/// with STATUS_BUFFER_OVERFLOW, as NTFS does.
///
/// # Safety
/// `buf` is valid for `length` bytes.
pub unsafe fn answer(buf: *mut u8, length: u32, fixed: usize, data: &[u8]) -> (NtStatus, usize) {
    let length = length as usize;
    if length < fixed {
        return (STATUS_INFO_LENGTH_MISMATCH, 0);
    }
    if buf.is_null() {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let n = data.len().min(length);
    // SAFETY: per the contract.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), buf, n) };
    if n < data.len() {
        (STATUS_BUFFER_OVERFLOW, n)
    } else {
        (STATUS_SUCCESS, n)
    }
}

/// Times in `FILE_*_INFORMATION` order from `$STANDARD_INFORMATION`.
pub fn times(si: &ntfs::attr::StandardInformation) -> FileTimes {
    FileTimes {
        creation: si.creation as i64,
        last_access: si.access as i64,
        last_write: si.modification as i64,
        change: si.mft_change as i64,
    }
}

/// `FileAttributes` as NTFS reports them: `$STANDARD_INFORMATION`'s, the
/// directory bit for directories, `FILE_ATTRIBUTE_NORMAL` for none.
pub fn attributes(si_attrs: u32, is_dir: bool) -> u32 {
    // NTFS keeps the directory bit in $FILE_NAME (0x10000000), not in
    // $STANDARD_INFORMATION; callers see FILE_ATTRIBUTE_DIRECTORY.
    let mut a = si_attrs & 0x0000_FFFF;
    if is_dir {
        a |= fsinfo::FILE_ATTRIBUTE_DIRECTORY;
    }
    if a == 0 {
        a = fsinfo::FILE_ATTRIBUTE_NORMAL;
    }
    a
}

/// `IRP_MJ_QUERY_INFORMATION`: basic, standard, internal, EA, access,
/// position, mode, alignment, name, all, network open, attribute tag,
/// stream. Other classes: STATUS_INVALID_PARAMETER (what NTFS returns for
/// a class it does not know).
///
/// # Safety
/// A query request we own on one of our file objects.
pub unsafe fn query(
    st: &mut VcbState,
    irp: *mut IRP,
    sl: *mut IO_STACK_LOCATION,
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let fo = (*sl).FileObject;
        let Some((scb, ccb)) = contexts(fo) else {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        let n = (*ccb).fcb;
        let Some(f) = fcb(st, n) else {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        let (is_dir, delete_pending, path) = (f.is_dir, f.delete_pending, f.path.clone());
        let stream_name = (*scb).stream.clone();
        let p = (*sl).Parameters.QueryFile;
        let buf = request_buffer(irp);
        let stat = match st.vol.stat(n) {
            Ok(s) => s,
            Err(e) => return (e.status(), 0),
        };
        let t = times(&stat.std_info);
        let attrs = attributes(stat.std_info.file_attributes, is_dir);
        let data_stream = stat
            .streams
            .iter()
            .find(|s| s.ty == AT_DATA && s.name.encode_utf16().eq(stream_name.iter().copied()));
        let (alloc, eof) = match data_stream {
            Some(s) if !(is_dir && stream_name.is_empty()) => (s.allocated as i64, s.size as i64),
            _ => (0, 0),
        };
        let dir_view = is_dir && stream_name.is_empty();
        // Link count: each name counts once (a Win32 name and its DOS twin are one link).
        let links = stat.names.iter().filter(|n| n.namespace != 2).count() as u32;
        let standard = fsinfo::standard(alloc, eof, links, delete_pending, dir_view);
        let basic = fsinfo::basic(&t, attrs);
        let mode = (*fo).Flags & (FO_SYNCHRONOUS_IO | FO_ALERTABLE_IO);
        let mode = if mode & FO_ALERTABLE_IO != 0 {
            FILE_SYNCHRONOUS_IO_ALERT
        } else if mode & FO_SYNCHRONOUS_IO != 0 {
            FILE_SYNCHRONOUS_IO_NONALERT
        } else {
            0
        };
        let index = ((stat.seq as i64) << 48) | n as i64;
        match p.FileInformationClass {
            FileBasicInformation => answer(buf, p.Length, 0x28, &basic),
            FileStandardInformation => answer(buf, p.Length, 0x18, &standard),
            FileInternalInformation => answer(buf, p.Length, 8, &index.to_le_bytes()),
            FileEaInformation => answer(buf, p.Length, 4, &0u32.to_le_bytes()),
            FilePositionInformation => {
                answer(buf, p.Length, 8, &(*fo).CurrentByteOffset.to_le_bytes())
            }
            FileModeInformation => answer(buf, p.Length, 4, &mode.to_le_bytes()),
            FileAlignmentInformation => answer(buf, p.Length, 4, &0u32.to_le_bytes()),
            FileNameInformation => answer(buf, p.Length, 4, &fsinfo::name(&path)),
            FileAllInformation => {
                let access = 0u32; // filled by the I/O manager on NT
                let d = fsinfo::all(
                    &basic,
                    &standard,
                    index,
                    access,
                    (*fo).CurrentByteOffset,
                    mode,
                    0,
                    &path,
                );
                answer(buf, p.Length, 0x64, &d)
            }
            FileNetworkOpenInformation => answer(
                buf,
                p.Length,
                0x38,
                &fsinfo::network_open(&t, alloc, eof, attrs),
            ),
            FileAttributeTagInformation => {
                let tag = stat
                    .reparse
                    .as_ref()
                    .and_then(|r| r.get(..4))
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                let mut d = Vec::with_capacity(8);
                d.extend_from_slice(&attrs.to_le_bytes());
                d.extend_from_slice(&tag.to_le_bytes());
                answer(buf, p.Length, 8, &d)
            }
            FileStreamInformation => {
                let list: Vec<(Vec<u16>, i64, i64)> = stat
                    .streams
                    .iter()
                    .filter(|s| s.ty == AT_DATA)
                    .map(|s| {
                        (
                            s.name.encode_utf16().collect(),
                            s.size as i64,
                            s.allocated as i64,
                        )
                    })
                    .collect();
                let d = fsinfo::streams(&list);
                if d.is_empty() {
                    (STATUS_SUCCESS, 0)
                } else {
                    answer(buf, p.Length, 24, &d)
                }
            }
            _ => (STATUS_INVALID_PARAMETER, 0),
        }
    }
}

/// `IRP_MJ_SET_INFORMATION`: position, end of file, disposition (delete
/// when the last handle goes; a non-empty directory is
/// STATUS_DIRECTORY_NOT_EMPTY at that point, logged), basic (times and
/// attributes; 0 leaves a time unchanged, -1 is taken as 0 too; the change time is lib/ntfs's).
/// Rename, link, allocation and the others: STATUS_NOT_IMPLEMENTED.
///
/// # Safety
/// A set request we own on one of our file objects.
pub unsafe fn set(
    st: &mut VcbState,
    irp: *mut IRP,
    sl: *mut IO_STACK_LOCATION,
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let fo = (*sl).FileObject;
        let Some((scb, ccb)) = contexts(fo) else {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        let n = (*ccb).fcb;
        let p = (*sl).Parameters.SetFile;
        let buf = request_buffer(irp);
        let len = p.Length as usize;
        let input = |need: usize| -> Option<&[u8]> {
            if len < need || buf.is_null() {
                None
            } else {
                Some(core::slice::from_raw_parts(buf, need))
            }
        };
        let i64_at = |b: &[u8], o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            i64::from_le_bytes(a)
        };
        match p.FileInformationClass {
            FilePositionInformation => {
                let Some(b) = input(8) else {
                    return (STATUS_INFO_LENGTH_MISMATCH, 0);
                };
                let pos = i64_at(b, 0);
                if pos < 0 {
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                (*fo).CurrentByteOffset = pos;
                (STATUS_SUCCESS, 0)
            }
            FileEndOfFileInformation => {
                let Some(b) = input(8) else {
                    return (STATUS_INFO_LENGTH_MISMATCH, 0);
                };
                let eof = i64_at(b, 0);
                if eof < 0 {
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                if fcb(st, n).map(|f| f.is_dir).unwrap_or(true) && (*scb).stream.is_empty() {
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                let old = (*scb).header.Common.FileSize;
                if let Err(e) = st.vol.set_len(n, &(*scb).stream, eof as u64) {
                    return (e.status(), 0);
                }
                if eof != old {
                    crate::fsctl::usn_post(
                        st,
                        n,
                        crate::fsctl::data_reason(&(*scb).stream, eof > old, eof < old),
                    );
                }
                // The header and the cache manager follow (a smaller size
                // drops the cached pages past it; no paging I/O is sent).
                crate::rw::refresh_sizes(st, n, scb);
                crate::rw::set_cache_sizes(scb);
                (STATUS_SUCCESS, 0)
            }
            FileBasicInformation => {
                let Some(b) = input(0x24) else {
                    return (STATUS_INFO_LENGTH_MISMATCH, 0);
                };
                let pick = |o: usize| {
                    let v = i64_at(b, o);
                    if v > 0 {
                        Some(v as u64)
                    } else {
                        None
                    }
                };
                let cur = match st.vol.stat(n) {
                    Ok(s) => s.std_info,
                    Err(e) => return (e.status(), 0),
                };
                // ChangeTime (0x18) is the file system's: lib/ntfs sets it.
                if let Err(e) = st.vol.set_times(
                    n,
                    pick(0).unwrap_or(cur.creation),
                    pick(0x10).unwrap_or(cur.modification),
                    pick(8).unwrap_or(cur.access),
                ) {
                    return (e.status(), 0);
                }
                let a = u32::from_le_bytes([b[0x20], b[0x21], b[0x22], b[0x23]]);
                if a != 0 {
                    let a = a & !(fsinfo::FILE_ATTRIBUTE_DIRECTORY | fsinfo::FILE_ATTRIBUTE_NORMAL);
                    if let Err(e) = st.vol.set_attributes(n, a) {
                        return (e.status(), 0);
                    }
                }
                (STATUS_SUCCESS, 0)
            }
            FileDispositionInformationEx => {
                let Some(b) = input(4) else {
                    return (STATUS_INFO_LENGTH_MISMATCH, 0);
                };
                let flags = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                disposition_ex(st, fo, scb, ccb, n, flags)
            }
            FileDispositionInformation => {
                let Some(b) = input(1) else {
                    return (STATUS_INFO_LENGTH_MISMATCH, 0);
                };
                disposition_ex(st, fo, scb, ccb, n, u32::from(b[0] != 0))
            }
            FileAllocationInformation => {
                let Some(b) = input(8) else {
                    return (STATUS_INFO_LENGTH_MISMATCH, 0);
                };
                let size = i64_at(b, 0);
                if size < 0 {
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                if fcb(st, n).map(|f| f.is_dir).unwrap_or(true) && (*scb).stream.is_empty() {
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                // Below the end of file the file is cut there (NTFS does);
                // above it nothing is preallocated (lib/ntfs allocates as
                // data is written).
                if size < (*scb).header.Common.FileSize {
                    if let Err(e) = st.vol.set_len(n, &(*scb).stream, size as u64) {
                        return (e.status(), 0);
                    }
                    crate::rw::refresh_sizes(st, n, scb);
                    crate::rw::set_cache_sizes(scb);
                }
                (STATUS_SUCCESS, 0)
            }
            FileRenameInformation
            | FileRenameInformationEx
            | FileLinkInformation
            | FileLinkInformationEx => {
                let Some(b) = input(20) else {
                    return (STATUS_INFO_LENGTH_MISMATCH, 0);
                };
                let name_len = u32::from_le_bytes([b[16], b[17], b[18], b[19]]) as usize;
                let Some(b) = input(20 + name_len) else {
                    return (STATUS_INFO_LENGTH_MISMATCH, 0);
                };
                let name: Vec<u16> = b[20..]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let link = matches!(
                    p.FileInformationClass,
                    FileLinkInformation | FileLinkInformationEx
                );
                rename_or_link(
                    st,
                    scb,
                    n,
                    p.FileObject,
                    p.ReplaceIfExists & 1 != 0,
                    &name,
                    link,
                )
            }
            _ => (STATUS_NOT_IMPLEMENTED, 0),
        }
    }
}

const FileRenameInformation: u32 = 10;
const FileAllocationInformation: u32 = 19;
const FileRenameInformationEx: u32 = 65;
const FileLinkInformationEx: u32 = 72;
/// `FILE_DISPOSITION_*` flags of `FileDispositionInformationEx`.
const FILE_DISPOSITION_DELETE: u32 = 0x1;
const FILE_DISPOSITION_POSIX_SEMANTICS: u32 = 0x2;
const FILE_DISPOSITION_ON_CLOSE: u32 = 0x8;
const FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE: u32 = 0x10;

/// `FileDispositionInformation(Ex)`: delete pending (or not) for the
/// file, removed at its last handle's cleanup; `FILE_DISPOSITION_ON_CLOSE`
/// sets or clears this handle's delete-on-close instead;
/// `FILE_DISPOSITION_POSIX_SEMANTICS` removes the name when this handle
/// closes even if others stay open. A non-empty directory is
/// STATUS_DIRECTORY_NOT_EMPTY, a system file below record 24 and a
/// read-only file (unless `FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE`)
/// STATUS_CANNOT_DELETE.
///
/// # Safety
/// Our file object with its SCB and CCB.
unsafe fn disposition_ex(
    st: &mut VcbState,
    fo: *mut FILE_OBJECT,
    scb: *mut Scb,
    ccb: *mut Ccb,
    n: u64,
    flags: u32,
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let delete = flags & FILE_DISPOSITION_DELETE != 0;
        if delete {
            if n < 24 {
                return (STATUS_CANNOT_DELETE, 0);
            }
            match st.vol.stat(n) {
                Ok(s)
                    if s.std_info.file_attributes & fsinfo::FILE_ATTRIBUTE_READONLY != 0
                        && flags & FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE == 0 =>
                {
                    return (STATUS_CANNOT_DELETE, 0)
                }
                Err(e) => return (e.status(), 0),
                _ => {}
            }
            if (*scb).stream.is_empty() && fcb(st, n).is_some_and(|f| f.is_dir) {
                match st.vol.read_dir(n) {
                    Ok(v) if !v.is_empty() => return (STATUS_DIRECTORY_NOT_EMPTY, 0),
                    Err(e) => return (e.status(), 0),
                    _ => {}
                }
            }
        }
        if flags & FILE_DISPOSITION_ON_CLOSE != 0 {
            (*ccb).delete_on_close = delete;
            return (STATUS_SUCCESS, 0);
        }
        if let Some(f) = fcb(st, n) {
            f.delete_pending = delete;
        }
        (*ccb).posix_delete = delete && flags & FILE_DISPOSITION_POSIX_SEMANTICS != 0;
        (*fo).DeletePending = delete as u8;
        (STATUS_SUCCESS, 0)
    }
}

const BACKSLASH: u16 = b'\\' as u16;

/// `FileRenameInformation(Ex)` / `FileLinkInformation(Ex)`: the target is
/// the last component of `name` in the directory the I/O manager opened
/// (`target`), or in the file's own directory when there is none. An
/// existing target is STATUS_OBJECT_NAME_COLLISION unless `replace`; with
/// `replace` a directory or a file with open handles is
/// STATUS_ACCESS_DENIED, otherwise it is deleted first. Renaming a
/// directory with open files below it is STATUS_ACCESS_DENIED; a link to a
/// directory STATUS_FILE_IS_A_DIRECTORY; a named stream
/// STATUS_NOT_IMPLEMENTED.
///
/// # Safety
/// Our SCB of record `n`; `target` null or a file object of this volume.
unsafe fn rename_or_link(
    st: &mut VcbState,
    scb: *mut Scb,
    n: u64,
    target: *mut FILE_OBJECT,
    replace: bool,
    name: &[u16],
    link: bool,
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        if !(*scb).stream.is_empty() {
            return (STATUS_NOT_IMPLEMENTED, 0);
        }
        let last: Vec<u16> = match name.iter().rposition(|&c| c == BACKSLASH) {
            Some(i) => name[i + 1..].to_vec(),
            None => name.to_vec(),
        };
        if last.is_empty()
            || last.len() > 255
            || last
                .iter()
                .any(|&c| c < 0x20 || (c < 0x80 && b"*?<>\"|:/\\".contains(&(c as u8))))
        {
            return (STATUS_OBJECT_NAME_INVALID, 0);
        }
        let Some(f) = fcb(st, n) else {
            return (STATUS_INVALID_PARAMETER, 0);
        };
        if n == ntfs::volume::rec::ROOT {
            return (STATUS_ACCESS_DENIED, 0);
        }
        let (is_dir, src) = (f.is_dir, f.path.clone());
        if link && is_dir {
            return (STATUS_FILE_IS_A_DIRECTORY, 0);
        }
        let parent_of = |p: &[u16]| -> Vec<u16> {
            match p.iter().rposition(|&c| c == BACKSLASH) {
                Some(i) => p[..i].to_vec(),
                None => Vec::new(),
            }
        };
        let (dir_rec, dir_path) = if target.is_null() {
            if name.contains(&BACKSLASH) {
                return (STATUS_INVALID_PARAMETER, 0);
            }
            let pp = parent_of(&src);
            let r = if pp.is_empty() {
                Ok(ntfs::volume::rec::ROOT)
            } else {
                st.vol.lookup(&utf16(&pp))
            };
            match r {
                Ok(r) => (r, pp),
                Err(e) => return (e.status(), 0),
            }
        } else {
            let Some((tscb, tccb)) = contexts(target) else {
                return (STATUS_INVALID_PARAMETER, 0);
            };
            let tn = (*tccb).fcb;
            match fcb_of_scb(st, tn, tscb) {
                Some(t) if t.is_dir => {
                    let p = if t.path.as_slice() == [BACKSLASH] {
                        Vec::new()
                    } else {
                        t.path.clone()
                    };
                    (tn, p)
                }
                _ => return (STATUS_OBJECT_PATH_NOT_FOUND, 0),
            }
        };
        let mut new_path = dir_path.clone();
        new_path.push(BACKSLASH);
        new_path.extend_from_slice(&last);
        match st.vol.lookup_in(dir_rec, &last) {
            Ok(Some(e)) if e.mft_no() == n => {
                if link {
                    return (STATUS_OBJECT_NAME_COLLISION, 0);
                }
                // A rename onto one of its own names (a case change).
            }
            Ok(Some(e)) => {
                if !replace {
                    return (STATUS_OBJECT_NAME_COLLISION, 0);
                }
                let t = e.mft_no();
                if e.is_dir() || fcb(st, t).is_some_and(|f| f.opens > 0) {
                    return (STATUS_ACCESS_DENIED, 0);
                }
                let mut tp = dir_path.clone();
                tp.push(BACKSLASH);
                tp.extend(e.name.encode_utf16());
                if let Err(e) = st.vol.remove(&utf16(&tp)) {
                    return (e.status(), 0);
                }
                // A file gone with its last link: its FCB (kept by a
                // section) leaves the table.
                if st
                    .vol
                    .stat(t)
                    .map(|s| s.seq != (e.fref >> 48) as u16)
                    .unwrap_or(true)
                {
                    if let Some(f) = st.fcbs.remove(&t) {
                        st.orphans.push(f);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => return (e.status(), 0),
        }
        if !link && is_dir {
            let mut prefix = src.clone();
            prefix.push(BACKSLASH);
            if st
                .fcbs
                .values()
                .any(|f| f.opens > 0 && f.path.starts_with(&prefix))
            {
                return (STATUS_ACCESS_DENIED, 0);
            }
        }
        let (from, to) = (utf16(&src), utf16(&new_path));
        if !link {
            // The old name's record stands alone (NTFS's reason for it).
            crate::fsctl::usn_write(st, n, ntfs::usn::USN_REASON_RENAME_OLD_NAME);
        }
        let r = if link {
            st.vol.link(&from, &to)
        } else {
            st.vol.rename(&from, &to)
        };
        if let Err(e) = r {
            return (e.status(), 0);
        }
        crate::fsctl::usn_post(
            st,
            n,
            if link {
                ntfs::usn::USN_REASON_HARD_LINK_CHANGE
            } else {
                ntfs::usn::USN_REASON_RENAME_NEW_NAME
            },
        );
        if !link {
            let mut prefix = src.clone();
            prefix.push(BACKSLASH);
            for f in st.fcbs.values_mut() {
                if f.path == src {
                    f.path = new_path.clone();
                } else if f.path.starts_with(&prefix) {
                    let mut p = new_path.clone();
                    p.extend_from_slice(&f.path[src.len()..]);
                    f.path = p;
                }
            }
        }
        (STATUS_SUCCESS, 0)
    }
}

fn utf16(s: &[u16]) -> alloc::string::String {
    char::decode_utf16(s.iter().copied())
        .map(|c| c.unwrap_or('\u{FFFD}'))
        .collect()
}

/// `IRP_MJ_QUERY_VOLUME_INFORMATION`: volume (creation time of `$Volume`,
/// serial, label), size and full size (clusters from `$Bitmap`), device,
/// attribute ("NTFS", 255-character names). Others:
/// STATUS_INVALID_PARAMETER.
///
/// # Safety
/// A query request we own on one of our file objects.
pub unsafe fn query_volume(
    vcb: &Vcb,
    st: &mut VcbState,
    irp: *mut IRP,
    sl: *mut IO_STACK_LOCATION,
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let p = (*sl).Parameters.QueryVolume;
        let buf = request_buffer(irp);
        match p.FsInformationClass {
            FileFsVolumeInformation => {
                let created = match st.vol.stat(ntfs::volume::rec::VOLUME) {
                    Ok(s) => s.std_info.creation as i64,
                    Err(e) => return (e.status(), 0),
                };
                let label: Vec<u16> = st
                    .vol
                    .volume_name()
                    .map(|s| s.encode_utf16().collect())
                    .unwrap_or_default();
                let d = fsinfo::fs_volume(created, vcb.serial as u32, &label);
                answer(buf, p.Length, 0x12, &d)
            }
            FileFsSizeInformation | FileFsFullSizeInformation => {
                let full = p.FsInformationClass == FileFsFullSizeInformation;
                let free = match st.vol.free_cluster_count() {
                    Ok(f) => f,
                    Err(e) => return (e.status(), 0),
                };
                let ss = (*vcb.vdo).SectorSize.max(1) as u64;
                let spc = (st.vol.cluster_size() / ss) as u32;
                let d = fsinfo::fs_size(
                    st.vol.total_clusters() as i64,
                    free as i64,
                    spc,
                    ss as u32,
                    full,
                );
                answer(buf, p.Length, d.len(), &d)
            }
            FileFsDeviceInformation => {
                let d = fsinfo::fs_device(FILE_DEVICE_DISK, (*vcb.target).Characteristics);
                answer(buf, p.Length, 8, &d)
            }
            FileFsAttributeInformation => {
                let name: Vec<u16> = "NTFS".encode_utf16().collect();
                let d = fsinfo::fs_attribute(
                    fsinfo::FILE_CASE_SENSITIVE_SEARCH
                        | fsinfo::FILE_CASE_PRESERVED_NAMES
                        | fsinfo::FILE_UNICODE_ON_DISK
                        | fsinfo::FILE_PERSISTENT_ACLS
                        | fsinfo::FILE_NAMED_STREAMS,
                    255,
                    &name,
                );
                answer(buf, p.Length, 0xC, &d)
            }
            _ => (STATUS_INVALID_PARAMETER, 0),
        }
    }
}
