//! Fast I/O (*Windows Internals* 7th ed., Part 1, ch. 6, "Fast I/O"): for
//! a synchronous file object whose file system has set up caching on it
//! (`FILE_OBJECT.PrivateCacheMap` non-null, which `CcInitializeCacheMap`
//! does), `NtReadFile`/`NtWriteFile` first call the `FastIoRead`/
//! `FastIoWrite` routine of the driver at the top of the file's device
//! stack (`IoGetRelatedDeviceObject(File)->DriverObject->FastIoDispatch`)
//! with `Wait = TRUE`, and build an IRP only when the routine returns
//! `FALSE` (or is absent), as NT's `NtReadFile` does. Same for
//! `NtQueryInformationFile` with `FileBasicInformation` /
//! `FileStandardInformation` (`FastIoQueryBasicInfo`,
//! `FastIoQueryStandardInfo`; `io/info.rs`), which NT tries for every file
//! object with a fast I/O table.

use super::file::{reference_event, FileRef, RequestArgs};
use super::irp::set_event_object;
use super::*;
use core::ffi::c_void;

/// The fast I/O table of the driver at the top of `file`'s stack, and
/// that device.
///
/// # Safety
/// `file` must be a live file object.
pub(super) unsafe fn table_of(
    file: *mut FILE_OBJECT,
) -> Option<(&'static FAST_IO_DISPATCH, *mut DEVICE_OBJECT)> {
    // SAFETY: a live file object keeps its device, the device its driver;
    // a driver's table lives as long as its image, which the driver object
    // (referenced by the device) keeps.
    unsafe {
        let top = super::file::related_device(file);
        let table = (*(*top).DriverObject).FastIoDispatch;
        if table.is_null() {
            None
        } else {
            Some((&*table, top))
        }
    }
}

/// The statuses with which NT accepts a fast read's result (anything else
/// is retried with an IRP, so that the error comes from the IRP path).
fn fast_read_status_ok(s: NtStatus) -> bool {
    s == STATUS_SUCCESS || s == STATUS_BUFFER_OVERFLOW || s == STATUS_END_OF_FILE
}

/// Tries the fast path of `NtReadFile` / `NtWriteFile` on the referenced
/// file `f`. `Ok(None)`: not taken (not synchronous, not cached, no
/// routine, an `ApcRoutine` was given, or the routine declined): build an
/// IRP. `Ok(Some(status))`: done; the caller's status block holds the
/// result, the event object is signalled, a completion packet is posted
/// for a file associated with a port, and the synchronous file's
/// `CurrentByteOffset` is the end of the transfer (which the file system's
/// routine also sets, as `FsRtlCopyRead` does).
#[allow(clippy::too_many_arguments)]
pub(super) fn try_read_write(
    f: &FileRef,
    args: &RequestArgs,
    buffer: *mut c_void,
    length: u32,
    offset: Option<i64>,
    key: u32,
    write: bool,
) -> Result<Option<NtStatus>, NtStatus> {
    let file = f.file;
    // SAFETY: the caller's reference keeps the file object, its device and
    // the driver's table; the buffer and status block are the caller's,
    // valid for `length` bytes and one IO_STATUS_BLOCK.
    unsafe {
        if (*file).Flags & FO_SYNCHRONOUS_IO == 0
            || (*file).PrivateCacheMap.is_null()
            || args.apc_routine.is_some()
        {
            return Ok(None);
        }
        let Some((table, top)) = table_of(file) else {
            return Ok(None);
        };
        let routine = if write {
            table.FastIoWrite
        } else {
            table.FastIoRead
        };
        let Some(routine) = routine else {
            return Ok(None);
        };
        let mut off = offset.unwrap_or((*file).CurrentByteOffset);
        // Negative offsets are invalid, except FILE_WRITE_TO_END_OF_FILE
        // (-1) on a write, which the file system resolves.
        if off < 0 && !(write && off == -1) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let start = off;
        let event = reference_event(args.event, args.mode)?;
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        let done = routine(file, &mut off, length, 1, key, buffer, &mut iosb, top) != 0;
        let accepted = done
            && if write {
                iosb.Status == STATUS_SUCCESS
            } else {
                fast_read_status_ok(iosb.Status)
            };
        if !accepted {
            if event != 0 {
                ob_dereference_object(event - 1);
            }
            return Ok(None);
        }
        args.iosb.write(iosb);
        if start >= 0 {
            (*file).CurrentByteOffset = start + iosb.Information as i64;
        }
        if event != 0 {
            set_event_object(event - 1, 0);
            ob_dereference_object(event - 1);
        }
        let cc = (*file).CompletionContext;
        if !cc.is_null() {
            let _ = super::completion::post(
                (*cc).Port as u64,
                ::io::queue::CompletionPacket {
                    key: (*cc).Key as usize,
                    apc_context: args.apc_context,
                    status: iosb.Status,
                    information: iosb.Information,
                },
            );
        }
        Ok(Some(iosb.Status))
    }
}
