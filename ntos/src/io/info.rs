//! `NtQueryInformationFile`: checks the class, its minimum length and the
//! access it needs (NT's `IopQueryOperationLength` /
//! `IopQueryOperationAccess` for the classes listed below), answers the
//! classes the I/O manager owns (`FilePositionInformation` for a
//! synchronous file, `FileModeInformation`, `FileAccessInformation`), tries the driver's
//! `FastIoQueryBasicInfo` / `FastIoQueryStandardInfo` for those two
//! classes, and otherwise sends `IRP_MJ_QUERY_INFORMATION` with a system
//! buffer (buffered I/O, whatever the device's flags, as NT does).
//! Classes not in the table are STATUS_INVALID_INFO_CLASS here.
#![allow(non_upper_case_globals)]

use super::file::{file_request_on, reference_file, RequestArgs};
use super::irp::*;
use super::*;
use core::ffi::c_void;
use core::ptr;

/// (minimum length, access) of a queryable class, or None.
pub fn query_class(class: u32) -> Option<(u32, u32)> {
    Some(match class {
        FileBasicInformation => (0x28, FILE_READ_ATTRIBUTES),
        FileStandardInformation => (0x18, 0),
        FileInternalInformation => (8, 0),
        FileEaInformation => (4, 0),
        FileAccessInformation => (4, 0),
        FileNameInformation => (8, 0),
        FilePositionInformation => (8, 0),
        FileModeInformation => (4, 0),
        FileAlignmentInformation => (4, 0),
        FileAllInformation => (0x68, FILE_READ_ATTRIBUTES),
        FileStreamInformation => (0x20, 0),
        FileNetworkOpenInformation => (0x38, FILE_READ_ATTRIBUTES),
        FileAttributeTagInformation => (8, FILE_READ_ATTRIBUTES),
        _ => return None,
    })
}

/// `NtQueryInformationFile` (synchronous or not, as the file object is;
/// no event or APC: those are `NtQueryInformationFile`'s own, which has
/// none). Returns the status; `iosb.Information` is the bytes written.
///
/// # Safety
/// `buffer` must be valid for `length` bytes and `iosb` for one
/// `IO_STATUS_BLOCK` until the request completes.
pub unsafe fn nt_query_information_file(
    handle: u64,
    iosb: *mut IO_STATUS_BLOCK,
    buffer: *mut c_void,
    length: u32,
    class: u32,
    mode: crate::ob::object::Mode,
) -> Result<NtStatus, NtStatus> {
    let (min, access) = query_class(class).ok_or(STATUS_INVALID_INFO_CLASS)?;
    if length < min {
        return Err(STATUS_INFO_LENGTH_MISMATCH);
    }
    if iosb.is_null() || buffer.is_null() {
        return Err(STATUS_ACCESS_VIOLATION);
    }
    let f = reference_file(handle, access, mode)?;
    let file = f.file;
    // SAFETY: the reference keeps the file object; the caller guarantees
    // the buffer and the status block.
    unsafe {
        let sync = (*file).Flags & FO_SYNCHRONOUS_IO != 0;
        let answer = |value: &[u8]| -> NtStatus {
            ptr::copy_nonoverlapping(value.as_ptr(), buffer as *mut u8, value.len());
            iosb.write(IO_STATUS_BLOCK {
                Status: STATUS_SUCCESS,
                Information: value.len(),
            });
            STATUS_SUCCESS
        };
        if class == FilePositionInformation && sync {
            return Ok(answer(&(*file).CurrentByteOffset.to_le_bytes()));
        }
        if class == FileAccessInformation {
            return Ok(answer(&f.r.granted_access.to_le_bytes()));
        }
        if class == FileModeInformation {
            let fl = (*file).Flags;
            let mut m = 0u32;
            for (fo, opt) in [
                (FO_WRITE_THROUGH, FILE_WRITE_THROUGH),
                (FO_SEQUENTIAL_ONLY, FILE_SEQUENTIAL_ONLY),
                (FO_NO_INTERMEDIATE_BUFFERING, FILE_NO_INTERMEDIATE_BUFFERING),
                (FO_DELETE_ON_CLOSE, FILE_DELETE_ON_CLOSE),
            ] {
                if fl & fo != 0 {
                    m |= opt;
                }
            }
            if sync {
                m |= if fl & FO_ALERTABLE_IO != 0 {
                    FILE_SYNCHRONOUS_IO_ALERT
                } else {
                    FILE_SYNCHRONOUS_IO_NONALERT
                };
            }
            return Ok(answer(&m.to_le_bytes()));
        }
        if class == FileBasicInformation || class == FileStandardInformation {
            if let Some((table, top)) = super::fastio::table_of(file) {
                let mut local = IO_STATUS_BLOCK::zeroed();
                let done = if class == FileBasicInformation {
                    table
                        .FastIoQueryBasicInfo
                        .is_some_and(|r| r(file, 1, buffer.cast(), &mut local, top) != 0)
                } else {
                    table
                        .FastIoQueryStandardInfo
                        .is_some_and(|r| r(file, 1, buffer.cast(), &mut local, top) != 0)
                };
                if done {
                    iosb.write(local);
                    return Ok(local.Status);
                }
            }
        }
    }
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb,
        mode,
    };
    file_request_on(f, &args, IRP_MJ_QUERY_INFORMATION, |irp, _top, _file| {
        // SAFETY: the IRP is ours until sent; the buffer is the caller's.
        unsafe {
            let sys = xpool::allocate(PoolType::NonPaged, length as u64, TAG_BUFFER, true)
                .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
            (*irp).AssociatedIrp.SystemBuffer = sys as *mut c_void;
            (*irp).UserBuffer = buffer;
            (*irp).Flags |= IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER | IRP_INPUT_OPERATION;
            if let Some(ext) = ext_of(irp) {
                (*ext).buffer_length = length;
            }
            let stack = IoGetNextIrpStackLocation(irp);
            (*stack).Parameters.QueryFile = QueryFileParameters {
                Length: length,
                Reserved0: 0,
                FileInformationClass: class,
            };
            Ok(())
        }
    })
}
