//! `IRP_MJ_DIRECTORY_CONTROL` / `IRP_MN_QUERY_DIRECTORY`.

use crate::vcb::*;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use rt::wdk::*;
use wdk::fs::{self as fsinfo, DirEntryInfo, FileTimes};

/// One entry of an enumeration.
pub struct Entry {
    name: Vec<u16>,
    short: Vec<u16>,
    file_id: i64,
    times: FileTimes,
    eof: i64,
    alloc: i64,
    attributes: u32,
}

/// A directory handle's enumeration: the entries that matched the
/// expression of the first query (or of the last `SL_RESTART_SCAN`), in
/// index (collation) order, and the next one to return.
pub struct Enumeration {
    entries: Vec<Entry>,
    next: usize,
    class: u32,
}

/// `$FILE_NAME`'s directory flag (`DUP_FILE_NAME_INDEX_PRESENT`).
const DUP_DIRECTORY: u32 = 0x1000_0000;

/// Builds the enumeration of directory `dir` for `expr` (None: `*`).
fn enumerate(
    st: &mut VcbState,
    dir: u64,
    expr: Option<Vec<u16>>,
    class: u32,
) -> Result<Vec<Entry>, NtStatus> {
    let up: Vec<u16> = st.vol.upcase().to_vec();
    let upc = |c: u16| up.get(c as usize).copied().unwrap_or(c);
    let expr: Option<Vec<u16>> = expr.map(|e| e.iter().map(|&c| upc(c)).collect());
    let table = if up.len() >= 0x10000 {
        up.as_ptr()
    } else {
        core::ptr::null()
    };
    let matches = |name: &[u16]| -> bool {
        let Some(e) = &expr else { return true };
        let es = rt::request::unicode(e);
        let ns = rt::request::unicode(name);
        // SAFETY: both strings live across the call; the table has 64K entries.
        unsafe { FsRtlIsNameInExpression(&es, &ns, 1, table) != 0 }
    };
    let want_short = class == fsinfo::class::FileBothDirectoryInformation
        || class == fsinfo::class::FileIdBothDirectoryInformation;
    let mut out = Vec::new();
    // "." and ".." in every directory but the root, as NTFS reports them.
    if dir != ntfs::volume::rec::ROOT {
        let me = st.vol.stat(dir).map_err(|e| e.status())?;
        let parent = me
            .names
            .first()
            .map(|n| n.parent & 0xFFFF_FFFF_FFFF)
            .unwrap_or(ntfs::volume::rec::ROOT);
        let pstat = st.vol.stat(parent).map_err(|e| e.status())?;
        for (name, s, n) in [(".", &me, dir), ("..", &pstat, parent)] {
            let name: Vec<u16> = name.encode_utf16().collect();
            if matches(&name) {
                out.push(Entry {
                    name,
                    short: Vec::new(),
                    file_id: ((s.seq as i64) << 48) | n as i64,
                    times: crate::info::times(&s.std_info),
                    eof: 0,
                    alloc: 0,
                    attributes: crate::info::attributes(s.std_info.file_attributes, true),
                });
            }
        }
    }
    let list = st.vol.read_dir(dir).map_err(|e| e.status())?;
    for e in list {
        // The metafiles (records 0-15: $MFT .. $Extend, and the root's own entry) are
        // not enumerated.
        if e.mft_no() < 16 {
            continue;
        }
        let name: Vec<u16> = e.file_name.name.clone();
        if !matches(&name) {
            continue;
        }
        let f = &e.file_name;
        let is_dir = f.flags & DUP_DIRECTORY != 0;
        let mut short = Vec::new();
        // A Win32 name has a DOS twin on 8.3 volumes.
        if want_short && f.namespace == 1 {
            if let Ok(s) = st.vol.stat(e.mft_no()) {
                if let Some(d) = s
                    .names
                    .iter()
                    .find(|n| n.namespace == 2 && n.parent == f.parent)
                {
                    short = d.name.clone();
                }
            }
        }
        out.push(Entry {
            name,
            short,
            file_id: e.fref as i64,
            times: FileTimes {
                creation: f.creation as i64,
                last_access: f.access as i64,
                last_write: f.modification as i64,
                change: f.mft_change as i64,
            },
            eof: if is_dir { 0 } else { f.data_size as i64 },
            alloc: if is_dir { 0 } else { f.allocated_size as i64 },
            attributes: crate::info::attributes(f.flags, is_dir),
        });
    }
    Ok(out)
}

/// `IRP_MN_QUERY_DIRECTORY`: entries matching the expression
/// (`FsRtlIsNameInExpression` semantics, case-insensitive) in
/// `FileDirectoryInformation`, `FileFullDirectoryInformation`,
/// `FileBothDirectoryInformation`, `FileNamesInformation` or
/// `FileIdBothDirectoryInformation` (others: STATUS_INVALID_INFO_CLASS),
/// linked by `NextEntryOffset` and 8-byte aligned, as many as fit
/// (`SL_RETURN_SINGLE_ENTRY`: one). The expression of the first query
/// stays until `SL_RESTART_SCAN`. No match at all is STATUS_NO_SUCH_FILE,
/// the end STATUS_NO_MORE_FILES; an entry that does not fit in an empty
/// buffer is returned cut with STATUS_BUFFER_OVERFLOW. `SL_INDEX_SPECIFIED`
/// is ignored (NTFS has no file indexes). Change notification
/// (`IRP_MN_NOTIFY_CHANGE_DIRECTORY`): STATUS_NOT_IMPLEMENTED.
///
/// # Safety
/// A directory control request we own on one of our file objects.
pub unsafe fn control(
    st: &mut VcbState,
    irp: *mut IRP,
    sl: *mut IO_STACK_LOCATION,
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        if (*sl).MinorFunction != IRP_MN_QUERY_DIRECTORY {
            return (STATUS_NOT_IMPLEMENTED, 0);
        }
        let fo = (*sl).FileObject;
        let Some((_, ccb)) = contexts(fo) else {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        let n = (*ccb).fcb;
        if !fcb(st, n).map(|f| f.is_dir).unwrap_or(false) {
            return (STATUS_INVALID_PARAMETER, 0);
        }
        let p = (*sl).Parameters.QueryDirectory;
        let class = p.FileInformationClass;
        let Some(fixed) = fsinfo::dir_name_offset(class) else {
            return (STATUS_INVALID_INFO_CLASS, 0);
        };
        let flags = (*sl).Flags;
        let first = (*ccb).dir.is_none();
        if first || flags & SL_RESTART_SCAN != 0 {
            let expr = if p.FileName.is_null() || (*p.FileName).Length == 0 {
                None
            } else {
                let s = &*p.FileName;
                Some(core::slice::from_raw_parts(s.Buffer, s.Length as usize / 2).to_vec())
            };
            let entries = match enumerate(st, n, expr, class) {
                Ok(e) => e,
                Err(e) => return (e, 0),
            };
            (*ccb).dir = Some(Enumeration {
                entries,
                next: 0,
                class,
            });
        }
        let en = (*ccb).dir.as_mut().unwrap();
        let _ = en.class;
        if en.next >= en.entries.len() {
            return if en.entries.is_empty() {
                (STATUS_NO_SUCH_FILE, 0)
            } else {
                (STATUS_NO_MORE_FILES, 0)
            };
        }
        let buf = crate::vcb::request_buffer(irp);
        let len = p.Length as usize;
        if len < fixed || buf.is_null() {
            return (STATUS_INFO_LENGTH_MISMATCH, 0);
        }
        let out = core::slice::from_raw_parts_mut(buf, len);
        let mut used = 0usize;
        let mut last: Option<usize> = None;
        while en.next < en.entries.len() {
            let e = &en.entries[en.next];
            let info = DirEntryInfo {
                file_index: 0,
                times: e.times,
                end_of_file: e.eof,
                allocation_size: e.alloc,
                attributes: e.attributes,
                name: &e.name,
                short_name: &e.short,
                file_id: e.file_id,
            };
            let Some(bytes) = fsinfo::dir_entry(class, &info) else {
                return (STATUS_INVALID_INFO_CLASS, 0);
            };
            let start = (used + 7) & !7;
            if start + bytes.len() > len {
                if last.is_none() {
                    // Not even one entry fits: return it cut.
                    let n = len.min(bytes.len());
                    out[..n].copy_from_slice(&bytes[..n]);
                    en.next += 1;
                    return (STATUS_BUFFER_OVERFLOW, n);
                }
                break;
            }
            out[used..start].fill(0);
            out[start..start + bytes.len()].copy_from_slice(&bytes);
            if let Some(l) = last {
                let delta = (start - l) as u32;
                out[l..l + 4].copy_from_slice(&delta.to_le_bytes());
            }
            last = Some(start);
            used = start + bytes.len();
            en.next += 1;
            if flags & SL_RETURN_SINGLE_ENTRY != 0 {
                break;
            }
        }
        (STATUS_SUCCESS, used)
    }
}
