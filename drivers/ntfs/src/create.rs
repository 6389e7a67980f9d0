//! `IRP_MJ_CREATE`, `IRP_MJ_CLEANUP`, `IRP_MJ_CLOSE` and `IRP_MJ_WRITE`.

use crate::vcb::*;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use ntfs::volume::rec;
use rt::wdk::*;

const BACKSLASH: u16 = b'\\' as u16;
const COLON: u16 = b':' as u16;

/// A path split for lookup: directory components, the last component, and
/// the stream named after `:` (empty: the unnamed `$DATA`).
struct Parsed {
    dirs: Vec<Vec<u16>>,
    last: Option<Vec<u16>>,
    stream: Vec<u16>,
    trailing_backslash: bool,
}

fn parse(name: &[u16]) -> Result<Parsed, NtStatus> {
    let trailing = name.len() > 1 && name.last() == Some(&BACKSLASH);
    let mut comps: Vec<Vec<u16>> = name
        .split(|&c| c == BACKSLASH)
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect();
    let mut stream = Vec::new();
    let last = comps.pop();
    let last = match last {
        Some(l) => {
            let mut parts = l.split(|&c| c == COLON);
            let base = parts.next().unwrap_or(&[]).to_vec();
            if let Some(s) = parts.next() {
                stream = s.to_vec();
                // `name:stream:$DATA` or `name::$DATA`; another type is not supported.
                if let Some(ty) = parts.next() {
                    let data: Vec<u16> = "$DATA".encode_utf16().collect();
                    if !ty.iter().map(|&c| up_ascii(c)).eq(data.iter().copied()) {
                        return Err(STATUS_NOT_IMPLEMENTED);
                    }
                }
                if parts.next().is_some() {
                    return Err(STATUS_OBJECT_NAME_INVALID);
                }
            }
            if base.is_empty() {
                return Err(STATUS_OBJECT_NAME_INVALID);
            }
            Some(base)
        }
        None => None,
    };
    for c in comps.iter().chain(last.iter()) {
        if c.iter()
            .any(|&ch| ch < 0x20 || b"*?<>\"|:/".contains(&(ch as u8)) && ch < 0x80)
        {
            return Err(STATUS_OBJECT_NAME_INVALID);
        }
    }
    Ok(Parsed {
        dirs: comps,
        last,
        stream,
        trailing_backslash: trailing,
    })
}

fn up_ascii(c: u16) -> u16 {
    if (b'a' as u16..=b'z' as u16).contains(&c) {
        c - 0x20
    } else {
        c
    }
}

fn utf16_string(s: &[u16]) -> String {
    char::decode_utf16(s.iter().copied())
        .map(|c| c.unwrap_or('\u{FFFD}'))
        .collect()
}

/// `IRP_MJ_CREATE`: opens (or creates) the file or directory named by
/// `FileObject->FileName` (relative to `RelatedFileObject` when given).
///
/// - Lookup is case-insensitive through the volume's `$UpCase` (lib/ntfs);
///   `SL_CASE_SENSITIVE` is not honoured (NTFS honours it only when the
///   system is case-sensitive, which Windows is not by default).
/// - A missing directory on the way is STATUS_OBJECT_PATH_NOT_FOUND, a
///   missing last component STATUS_OBJECT_NAME_NOT_FOUND (for `FILE_OPEN`
///   and `FILE_OVERWRITE`); `FILE_DIRECTORY_FILE` on a file is
///   STATUS_NOT_A_DIRECTORY, `FILE_NON_DIRECTORY_FILE` on a directory
///   STATUS_FILE_IS_A_DIRECTORY, both together STATUS_INVALID_PARAMETER.
/// - Dispositions: `FILE_OPEN`, `FILE_OPEN_IF`, `FILE_CREATE`,
///   `FILE_OVERWRITE(_IF)` and `FILE_SUPERSEDE` (the last three truncate
///   the stream to 0; attributes are not replaced).
/// - Named streams `file:stream[:$DATA]`: opened when they exist, created
///   by the creating dispositions.
/// - Share access per stream through `IoCheckShareAccess`.
/// - Not supported (STATUS_NOT_IMPLEMENTED): `FILE_OPEN_BY_FILE_ID` (the
///   I/O manager cannot pass a binary name yet), opening the volume
///   itself through the file system (an empty name), stream types other
///   than `$DATA`. Reparse points are opened as plain files (never
///   followed, no STATUS_REPARSE). No access check against the file's
///   security descriptor yet.
///
/// # Safety
/// A create request we own.
pub unsafe fn create(
    _vcb: &Vcb,
    st: &mut VcbState,
    _irp: *mut IRP,
    sl: *mut IO_STACK_LOCATION,
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let fo = (*sl).FileObject;
        let p = (*sl).Parameters.Create;
        let disposition = p.Options >> 24;
        let options = p.Options & 0x00FF_FFFF;
        let desired = if p.SecurityContext.is_null() {
            0
        } else {
            (*p.SecurityContext).DesiredAccess
        };
        if options & FILE_OPEN_BY_FILE_ID != 0 {
            return (STATUS_NOT_IMPLEMENTED, 0);
        }
        if options & FILE_DIRECTORY_FILE != 0 && options & FILE_NON_DIRECTORY_FILE != 0 {
            return (STATUS_INVALID_PARAMETER, 0);
        }
        let fname = &(*fo).FileName;
        let mut name: Vec<u16> = if fname.Buffer.is_null() || fname.Length == 0 {
            Vec::new()
        } else {
            core::slice::from_raw_parts(fname.Buffer, fname.Length as usize / 2).to_vec()
        };
        let related = (*fo).RelatedFileObject;
        if !related.is_null() {
            if let Some((_, rccb)) = contexts(related) {
                let Some(rf) = fcb(st, (*rccb).fcb) else {
                    return (STATUS_INVALID_PARAMETER, 0);
                };
                let mut full = rf.path.clone();
                if !name.is_empty() {
                    if full.last() != Some(&BACKSLASH) {
                        full.push(BACKSLASH);
                    }
                    full.extend_from_slice(&name);
                }
                name = full;
            }
        }
        if name.is_empty() {
            // A volume open through the file system (DASD): not yet.
            return (STATUS_NOT_IMPLEMENTED, 0);
        }
        let parsed = match parse(&name) {
            Ok(p) => p,
            Err(e) => return (e, 0),
        };
        // Walk the directories.
        let mut cur = rec::ROOT;
        let mut path: Vec<u16> = Vec::new();
        for d in &parsed.dirs {
            match st.vol.lookup_in(cur, d) {
                Ok(Some(e)) if e.is_dir() => {
                    cur = e.mft_no();
                    path.push(BACKSLASH);
                    path.extend(e.name.encode_utf16());
                }
                Ok(_) => return (STATUS_OBJECT_PATH_NOT_FOUND, 0),
                Err(ntfs::Error::NotADirectory) => return (STATUS_OBJECT_PATH_NOT_FOUND, 0),
                Err(e) => return (e.status(), 0),
            }
        }
        let parent = cur;
        let mut info = FILE_OPENED;
        let (record, is_dir) = match &parsed.last {
            None => (rec::ROOT, true),
            Some(last) => match st.vol.lookup_in(parent, last) {
                Ok(Some(e)) => {
                    path.push(BACKSLASH);
                    path.extend(e.name.encode_utf16());
                    if disposition == FILE_CREATE && parsed.stream.is_empty() {
                        return (STATUS_OBJECT_NAME_COLLISION, 0);
                    }
                    (e.mft_no(), e.is_dir())
                }
                Ok(None) => {
                    if disposition == FILE_OPEN || disposition == FILE_OVERWRITE {
                        return (STATUS_OBJECT_NAME_NOT_FOUND, 0);
                    }
                    if !parsed.stream.is_empty() {
                        // Creating the file and its named stream at once: not yet.
                        return (STATUS_OBJECT_NAME_NOT_FOUND, 0);
                    }
                    let dir = options & FILE_DIRECTORY_FILE != 0;
                    match st.vol.create_in(parent, last, dir) {
                        Ok(n) => {
                            path.push(BACKSLASH);
                            path.extend_from_slice(last);
                            info = FILE_CREATED;
                            (n, dir)
                        }
                        Err(e) => return (e.status(), 0),
                    }
                }
                Err(e) => return (e.status(), 0),
            },
        };
        if path.is_empty() {
            path.push(BACKSLASH);
        }
        let stream_open = !parsed.stream.is_empty();
        if !stream_open {
            if is_dir && options & FILE_NON_DIRECTORY_FILE != 0 {
                return (STATUS_FILE_IS_A_DIRECTORY, 0);
            }
            if !is_dir && (options & FILE_DIRECTORY_FILE != 0 || parsed.trailing_backslash) {
                return (STATUS_NOT_A_DIRECTORY, 0);
            }
        } else if options & FILE_DIRECTORY_FILE != 0 {
            return (STATUS_NOT_A_DIRECTORY, 0);
        }
        if let Some(f) = fcb(st, record) {
            if f.delete_pending {
                return (STATUS_DELETE_PENDING, 0);
            }
        }
        // The stream: it must exist unless the disposition creates.
        if stream_open {
            let exists = st
                .vol
                .open_stream(record, ntfs::attr::AT_DATA, &parsed.stream)
                .is_ok();
            if !exists {
                if disposition == FILE_OPEN || disposition == FILE_OVERWRITE {
                    return (STATUS_OBJECT_NAME_NOT_FOUND, 0);
                }
                if let Err(e) = st.vol.write_at(record, &parsed.stream, 0, &[]) {
                    return (e.status(), 0);
                }
                info = FILE_CREATED;
            } else if disposition == FILE_CREATE {
                return (STATUS_OBJECT_NAME_COLLISION, 0);
            }
        }
        let truncate = info == FILE_OPENED
            && matches!(
                disposition,
                FILE_OVERWRITE | FILE_OVERWRITE_IF | FILE_SUPERSEDE
            );
        if truncate && is_dir && !stream_open {
            return (STATUS_INVALID_PARAMETER, 0);
        }
        // FCB and SCB.
        let f = st.fcbs.entry(record).or_insert_with(|| {
            Box::new(Fcb {
                path,
                is_dir,
                opens: 0,
                refs: 0,
                delete_pending: false,
                usn_reasons: 0,
                scbs: Vec::new(),
            })
        });
        if info == FILE_CREATED && f.usn_reasons & ntfs::usn::USN_REASON_FILE_CREATE == 0 {
            f.usn_reasons |= ntfs::usn::USN_REASON_FILE_CREATE;
            let r = f.usn_reasons;
            crate::fsctl::usn_write(st, record, r);
        }
        let Some(f) = fcb(st, record) else {
            return (STATUS_FILE_DELETED, 0);
        };
        let si = match f.scbs.iter().position(|s| s.stream == parsed.stream) {
            Some(i) => i,
            None => {
                let data = !is_dir || stream_open;
                let sizes = if data {
                    match st
                        .vol
                        .open_stream(record, ntfs::attr::AT_DATA, &parsed.stream)
                    {
                        Ok(s) => Some((s.allocated_size, s.data_size)),
                        Err(e) => {
                            if fcb(st, record).is_some_and(|f| f.refs == 0) {
                                st.fcbs.remove(&record);
                            }
                            return (e.status(), 0);
                        }
                    }
                } else {
                    None
                };
                let f = fcb(st, record).unwrap();
                f.scbs
                    .push(Box::new(Scb::new(parsed.stream.clone(), sizes)));
                f.scbs.len() - 1
            }
        };
        let f = fcb(st, record).unwrap();
        let scb: *mut Scb = &mut *f.scbs[si];
        let s = IoCheckShareAccess(desired, p.ShareAccess as u32, fo, &mut (*scb).share, 1);
        if !s.is_success() {
            if f.refs == 0 {
                st.fcbs.remove(&record);
            }
            return (s, 0);
        }
        if truncate {
            if let Err(e) = st.vol.set_len(record, &parsed.stream, 0) {
                let f = fcb(st, record).unwrap();
                IoRemoveShareAccess(fo, &mut (*scb).share);
                if f.refs == 0 {
                    st.fcbs.remove(&record);
                }
                return (e.status(), 0);
            }
            // The cached pages and the section past 0 go (the memory
            // manager keeps pages a user view maps).
            (*scb).set_sizes(0, 0);
            if !(*scb).section.SharedCacheMap.is_null()
                || !(*scb).section.DataSectionObject.is_null()
            {
                let sizes = (*scb).cc_sizes();
                if !(*scb).section.SharedCacheMap.is_null() {
                    if let Some(cfo) = cache_file_object(scb) {
                        CcSetFileSizes(cfo, &sizes);
                    }
                }
                CcPurgeCacheSection(&mut (*scb).section, core::ptr::null(), 0, 0);
            }
            info = if disposition == FILE_SUPERSEDE {
                FILE_SUPERSEDED
            } else {
                FILE_OVERWRITTEN
            };
        }
        let f = fcb(st, record).unwrap();
        f.opens += 1;
        f.refs += 1;
        (*scb).refs += 1;
        let ccb = Box::new(Ccb {
            fcb: record,
            delete_on_close: options & FILE_DELETE_ON_CLOSE != 0,
            posix_delete: false,
            dir: None,
        });
        (*fo).FsContext = scb.cast();
        (*fo).FsContext2 = Box::into_raw(ccb).cast();
        (*fo).SectionObjectPointer = &mut (*scb).section;
        (STATUS_SUCCESS, info)
    }
}

/// A file object of the stream the cache manager holds (for
/// `CcSetFileSizes`, which takes a file object).
///
/// # Safety
/// `scb` is a live SCB.
pub unsafe fn cache_file_object(scb: *mut Scb) -> Option<*mut FILE_OBJECT> {
    // SAFETY: per the contract.
    let fo = unsafe { CcGetFileObjectFromSectionPtrs(&mut (*scb).section) };
    (!fo.is_null()).then_some(fo)
}

/// `IRP_MJ_CLEANUP` (the last handle of a file object): share access goes;
/// the file object's cache map goes (`CcUninitializeCacheMap`); when the
/// file's last handle goes with a delete pending (or this handle was
/// delete-on-close), the name is removed (and the file, at its last link:
/// lib/ntfs frees the record and clusters). A deleted file's FCB leaves
/// the FCB table at once (its cached pages are truncated away, paging I/O
/// still in flight for it is dropped), so that a new file reusing the
/// record gets a fresh FCB.
///
/// # Safety
/// A file object of this volume.
pub unsafe fn cleanup(vcb: &Vcb, fo: *mut FILE_OBJECT) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let Some((scb, ccb)) = contexts(fo) else {
            return (STATUS_SUCCESS, 0);
        };
        let mut deleted = false;
        {
            let mut st = vcb.state.lock();
            let st = &mut *st;
            IoRemoveShareAccess(fo, &mut (*scb).share);
            let n = (*ccb).fcb;
            if let Some(f) = fcb_of_scb(st, n, scb) {
                if (*ccb).delete_on_close {
                    f.delete_pending = true;
                }
                f.opens = f.opens.saturating_sub(1);
                if f.opens > 0 && f.delete_pending && (*ccb).posix_delete {
                    // POSIX semantics: the name leaves the namespace now;
                    // the file lives on in `$Extend\$Deleted` (where
                    // Windows 10 keeps such files) until its last handle.
                    let from = utf16_string(&f.path);
                    let to = alloc::format!("\\$Extend\\$Deleted\\{n:016X}");
                    let r = deleted_dir(&mut st.vol).and_then(|_| st.vol.rename(&from, &to));
                    match r {
                        Ok(()) => {
                            if let Some(f) = fcb(st, n) {
                                f.path = to.encode_utf16().collect();
                            }
                        }
                        Err(e) => rt::kprintln!("ntfs: POSIX delete of {from} failed: {e}"),
                    }
                }
                let Some(f) = fcb(st, n) else {
                    return (STATUS_SUCCESS, 0);
                };
                if f.opens == 0 && !f.delete_pending && f.usn_reasons != 0 {
                    // The close record: what the file's handles changed.
                    let r = f.usn_reasons | ntfs::usn::USN_REASON_CLOSE;
                    f.usn_reasons = 0;
                    crate::fsctl::usn_write(st, n, r);
                }
                let Some(f) = fcb(st, n) else {
                    return (STATUS_SUCCESS, 0);
                };
                if f.opens == 0 && f.delete_pending {
                    let path = utf16_string(&f.path);
                    let stream = (*scb).stream.clone();
                    f.delete_pending = false;
                    if stream.is_empty() {
                        let r = f.usn_reasons
                            | ntfs::usn::USN_REASON_FILE_DELETE
                            | ntfs::usn::USN_REASON_CLOSE;
                        f.usn_reasons = 0;
                        crate::fsctl::usn_write(st, n, r);
                    }
                    let r = if stream.is_empty() {
                        st.vol.remove(&path)
                    } else {
                        Err(ntfs::Error::Unsupported("deleting a named stream"))
                    };
                    match r {
                        Ok(()) => {
                            deleted = true;
                            if let Some(f) = st.fcbs.remove(&n) {
                                st.orphans.push(f);
                            }
                            (*scb).set_sizes(0, 0);
                        }
                        Err(e) => rt::kprintln!("ntfs: delete of {path} failed: {e}"),
                    }
                }
            }
        }
        // Outside the volume lock: the cache manager may write or drop
        // pages (paging I/O to this driver).
        if !(*fo).PrivateCacheMap.is_null() {
            let zero: LARGE_INTEGER = 0;
            let truncate = if deleted {
                &zero as *const _
            } else {
                core::ptr::null()
            };
            CcUninitializeCacheMap(fo, truncate, core::ptr::null_mut());
        } else if deleted && !(*scb).section.SharedCacheMap.is_null() {
            if let Some(cfo) = cache_file_object(scb) {
                let sizes = (*scb).cc_sizes();
                CcSetFileSizes(cfo, &sizes);
            }
        }
        (STATUS_SUCCESS, 0)
    }
}

/// `IRP_MJ_CLOSE` (the file object's last reference): its CCB goes; the
/// SCB and FCB go with their last file object.
///
/// # Safety
/// A file object of this volume.
pub unsafe fn close(st: &mut VcbState, fo: *mut FILE_OBJECT) -> (NtStatus, usize) {
    // SAFETY: per the contract; the CCB was made by `create`.
    unsafe {
        let Some((scb, ccb)) = contexts(fo) else {
            return (STATUS_SUCCESS, 0);
        };
        let ccb = Box::from_raw(ccb);
        (*fo).FsContext2 = core::ptr::null_mut();
        (*scb).refs = (*scb).refs.saturating_sub(1);
        let scb_free = (*scb).refs == 0;
        let release = |f: &mut Fcb| {
            if scb_free {
                f.scbs.retain(|s| !core::ptr::eq(&**s, scb));
            }
            f.refs = f.refs.saturating_sub(1);
            f.refs == 0
        };
        if let Some(f) = fcb_of_scb(st, ccb.fcb, scb) {
            if release(f) {
                st.fcbs.remove(&ccb.fcb);
            }
        } else if let Some(i) = st
            .orphans
            .iter()
            .position(|f| f.scbs.iter().any(|s| core::ptr::eq(&**s, scb)))
        {
            if release(&mut st.orphans[i]) {
                st.orphans.swap_remove(i);
            }
        }
        (STATUS_SUCCESS, 0)
    }
}

/// `\$Extend\$Deleted`, created on first use (as Windows 10 does).
fn deleted_dir(vol: &mut Vol) -> ntfs::Result<u64> {
    let name: Vec<u16> = "$Deleted".encode_utf16().collect();
    match vol.lookup_in(rec::EXTEND, &name)? {
        Some(e) => Ok(e.mft_no()),
        None => vol.create_in(rec::EXTEND, &name, true),
    }
}
