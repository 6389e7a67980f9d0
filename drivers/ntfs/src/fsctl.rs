//! `IRP_MJ_FILE_SYSTEM_CONTROL` (`IRP_MN_USER_FS_REQUEST`) on a volume:
//! the USN change journal's FSCTLs (*Windows Internals* Part 2 ch. 11,
//! "Change logging"), over lib/ntfs's `usn.rs`; and the USN records the
//! driver's operations write, with the reasons NTFS gathers per file in
//! its FCB until the close record.
//!
//! Input and output layouts are winioctl.h's (`CREATE_USN_JOURNAL_DATA`,
//! `USN_JOURNAL_DATA_V0`/`V1`, `READ_USN_JOURNAL_DATA_V0`/`V1`,
//! `DELETE_USN_JOURNAL_DATA`). NTFS takes these on a volume handle; ntrs
//! has no volume open through the file system yet, so it takes them on
//! any handle of the volume.

use crate::vcb::{fcb, now, VcbState};
use nt::status::*;
use nt::NtStatus;
use ntfs::usn::*;
use rt::wdk::*;

/// Writes a USN record for file `n` with `reason` added to the reasons its
/// FCB gathered (a reason already recorded since the last close writes no
/// record, as NTFS does; `USN_REASON_CLOSE` always writes one and starts
/// the gathering anew). A journal that is not there writes nothing.
pub fn usn_post(st: &mut VcbState, n: u64, reason: u32) {
    let acc = match fcb(st, n) {
        Some(f) => {
            if reason & USN_REASON_CLOSE == 0 && f.usn_reasons & reason == reason {
                return;
            }
            let acc = f.usn_reasons | reason;
            f.usn_reasons = if reason & USN_REASON_CLOSE != 0 {
                0
            } else {
                acc
            };
            acc
        }
        None => reason,
    };
    usn_write(st, n, acc);
}

/// The reason of a data change of `stream` (unnamed or named): extend,
/// truncation, else overwrite.
pub fn data_reason(stream: &[u16], extend: bool, truncate: bool) -> u32 {
    match (stream.is_empty(), extend, truncate) {
        (true, true, _) => USN_REASON_DATA_EXTEND,
        (true, _, true) => USN_REASON_DATA_TRUNCATION,
        (true, _, _) => USN_REASON_DATA_OVERWRITE,
        (false, true, _) => USN_REASON_NAMED_DATA_EXTEND,
        (false, _, true) => USN_REASON_NAMED_DATA_TRUNCATION,
        (false, _, _) => USN_REASON_NAMED_DATA_OVERWRITE,
    }
}

/// Writes one USN record for file `n` with exactly `reason`.
pub fn usn_write(st: &mut VcbState, n: u64, reason: u32) {
    if let Err(e) = st.vol.usn_append(n, reason, now()) {
        rt::kprintln!("ntfs: USN record for file {n} failed: {e}");
    }
}

/// A kernel-mode caller's METHOD_NEITHER buffer as a slice. A user-mode
/// caller's is refused (`None`: the driver has no fault-protected copy of
/// user memory yet, and ntrs has no kernel `__try` to catch a probe).
///
/// # Safety
/// A kernel-mode caller passed a buffer valid for `len` bytes.
unsafe fn neither<'a>(irp: *mut IRP, p: *mut u8, len: usize) -> Option<&'a mut [u8]> {
    // SAFETY: per the contract: only kernel-mode callers' buffers are used.
    unsafe {
        if p.is_null() || len == 0 || (*irp).RequestorMode != 0 {
            return None;
        }
        Some(core::slice::from_raw_parts_mut(p, len))
    }
}

/// The FSCTLs this driver implements: (status, information).
///
/// # Safety
/// `irp` and `sl` are a file system control request we own.
pub unsafe fn control(
    st: &mut VcbState,
    irp: *mut IRP,
    sl: *mut IO_STACK_LOCATION,
) -> (NtStatus, usize) {
    // SAFETY: per the contract; the buffers are the I/O manager's (system
    // buffer) or the caller's (METHOD_NEITHER, checked by `neither`).
    unsafe {
        if (*sl).MinorFunction != IRP_MN_USER_FS_REQUEST {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        }
        let p = &(*sl).Parameters.DeviceIoControl;
        let (code, in_len, out_len) = (
            p.IoControlCode,
            p.InputBufferLength as usize,
            p.OutputBufferLength as usize,
        );
        let sys = (*irp).AssociatedIrp.SystemBuffer as *mut u8;
        match code {
            FSCTL_CREATE_USN_JOURNAL => {
                if (*irp).RequestorMode != 0 {
                    return (STATUS_NOT_IMPLEMENTED, 0);
                }
                let Some(inp) = neither(irp, p.Type3InputBuffer as *mut u8, in_len) else {
                    return (STATUS_INVALID_USER_BUFFER, 0);
                };
                if inp.len() < CREATE_USN_JOURNAL_DATA_LEN {
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                let max = u64::from_le_bytes(inp[0..8].try_into().unwrap_or_default());
                let delta = u64::from_le_bytes(inp[8..16].try_into().unwrap_or_default());
                match st.vol.create_usn_journal(max, delta, now()) {
                    Ok(_) => (STATUS_SUCCESS, 0),
                    Err(e) => (e.status(), 0),
                }
            }
            FSCTL_QUERY_USN_JOURNAL => {
                if out_len < USN_JOURNAL_DATA_V0_LEN || sys.is_null() {
                    return (STATUS_BUFFER_TOO_SMALL, 0);
                }
                match st.vol.query_usn_journal() {
                    Ok(Some(j)) => {
                        let b = j.to_bytes(out_len >= USN_JOURNAL_DATA_V1_LEN);
                        core::ptr::copy_nonoverlapping(b.as_ptr(), sys, b.len());
                        (STATUS_SUCCESS, b.len())
                    }
                    Ok(None) => (STATUS_JOURNAL_NOT_ACTIVE, 0),
                    Err(e) => (e.status(), 0),
                }
            }
            FSCTL_READ_USN_JOURNAL => {
                if (*irp).RequestorMode != 0 {
                    return (STATUS_NOT_IMPLEMENTED, 0);
                }
                let Some(inp) = neither(irp, p.Type3InputBuffer as *mut u8, in_len) else {
                    return (STATUS_INVALID_USER_BUFFER, 0);
                };
                let q = match ReadJournalData::parse(inp) {
                    Ok(q) => q,
                    Err(_) => return (STATUS_INVALID_PARAMETER, 0),
                };
                let Some(out) = neither(irp, (*irp).UserBuffer as *mut u8, out_len) else {
                    return (STATUS_INVALID_USER_BUFFER, 0);
                };
                if out.len() < 8 {
                    return (STATUS_BUFFER_TOO_SMALL, 0);
                }
                match st.vol.read_usn_journal(&q, out.len()) {
                    Ok(b) => {
                        out[..b.len()].copy_from_slice(&b);
                        (STATUS_SUCCESS, b.len())
                    }
                    Err(ntfs::Error::NotFound) => (STATUS_JOURNAL_NOT_ACTIVE, 0),
                    Err(e) => (e.status(), 0),
                }
            }
            FSCTL_DELETE_USN_JOURNAL => {
                if in_len < DELETE_USN_JOURNAL_DATA_LEN || sys.is_null() {
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                let inp = core::slice::from_raw_parts(sys, DELETE_USN_JOURNAL_DATA_LEN);
                let id = u64::from_le_bytes(inp[0..8].try_into().unwrap_or_default());
                let flags = u32::from_le_bytes(inp[8..12].try_into().unwrap_or_default());
                if flags & !(USN_DELETE_FLAG_DELETE | USN_DELETE_FLAG_NOTIFY) != 0 || flags == 0 {
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                if flags & USN_DELETE_FLAG_DELETE == 0 {
                    // NOTIFY alone: no deletion is ever in progress here
                    // (the delete below is synchronous).
                    return (STATUS_SUCCESS, 0);
                }
                match st.vol.delete_usn_journal(id) {
                    Ok(()) => (STATUS_SUCCESS, 0),
                    Err(ntfs::Error::NotFound) => (STATUS_JOURNAL_NOT_ACTIVE, 0),
                    Err(e) => (e.status(), 0),
                }
            }
            _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    }
}
