//! The executive's part of exception and APC dispatching to user mode
//! (*Windows Internals*, Part 2, ch. 8): finding a process's user-mode
//! dispatchers, and the thread-handle services around contexts and APCs:
//! `NtGetContextThread`, `NtSetContextThread`, `NtQueueApcThread`,
//! `NtQueueApcThreadEx` (the register-level work is `ke::except`).
//!
//! Dispatcher lookup (NT's `PspLookupKernelUserEntryPoints` reads ntdll's
//! exports once): the exports `KiUserExceptionDispatcher` and
//! `KiUserApcDispatcher` of the process's own image (`PEB.ImageBaseAddress`;
//! ntrs differs: test images such as ntrsexc.exe bring their own), else of
//! ntdll.dll mapped in the process, read from user memory under fault
//! protection with the `pe` crate's export walk.
//!
//! ntrs differs: `NtGetContextThread`/`NtSetContextThread` work on the
//! calling thread only (another thread's context needs it stopped in the
//! kernel with a special APC; STATUS_NOT_IMPLEMENTED for now, after the
//! handle and access checks).

use crate::ke::except::UserEntryPoint;
use crate::ke::syscall::MAX_SERVICE_ARGUMENTS;
use crate::ke::trap::KTrapFrame;
use crate::ke::user::{copy_from_user, read_user};
use crate::ob::object::Mode;
use crate::ps::{THREAD_GET_CONTEXT, THREAD_SET_CONTEXT};
use alloc::vec;
use nt::status::*;
use nt::NtStatus;

type Args = [u64; MAX_SERVICE_ARGUMENTS];

const NT_CURRENT_THREAD: u64 = u64::MAX - 1;

/// Pool tag of the APCs `NtQueueApcThread` allocates (NT's `PsAp`).
pub const USER_APC_TAG: [u8; 4] = *b"PsAp";

/// Largest image the lookup copies (its SizeOfImage).
const MAX_EXPORT_END: usize = 4 << 20;

/// A user-mode dispatcher by name: an export of the process's main image
/// (test images that bring their own), else of ntdll.dll, which every
/// process has mapped at its preferred base (`mm::user::map_system_dll`).
fn image_export(name: &[u8]) -> Option<u64> {
    let teb = crate::ke::sched::current_thread().teb();
    if teb == 0 {
        return None;
    }
    let peb: u64 =
        read_user(teb + core::mem::offset_of!(nt::user::Teb, process_environment_block) as u64)
            .ok()?;
    let base: u64 =
        read_user(peb + core::mem::offset_of!(nt::user::Peb, image_base_address) as u64).ok()?;
    if let Ok(a) = image_export_inner(base, name) {
        return Some(a);
    }
    let ntdll = pe::PeFile::parse(super::uproc::boot_image("ntdll.dll")?).ok()?;
    image_export_inner(ntdll.image_base, name).ok()
}

/// The export of the image mapped at `base`, or the step that failed.
fn image_export_inner(base: u64, name: &[u8]) -> Result<u64, &'static str> {
    let mut headers = vec![0u8; 0x1000];
    copy_from_user(&mut headers, base).map_err(|_| "headers")?;
    // A sparse copy of the image, SizeOfImage long: the headers and the
    // export directory (the names and tables lld and link.exe put inside it).
    let nt_headers = u32::from_le_bytes(headers[0x3C..0x40].try_into().unwrap_or([0; 4])) as usize;
    let size_at = nt_headers.checked_add(24 + 56).ok_or("size")?;
    let size_of_image = headers
        .get(size_at..size_at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("size")?;
    if size_of_image > MAX_EXPORT_END || size_of_image < headers.len() {
        return Err("size");
    }
    let mut image = vec![0u8; size_of_image];
    image[..headers.len()].copy_from_slice(&headers);
    let dir = pe::mapped_directory(&image, pe::IMAGE_DIRECTORY_ENTRY_EXPORT).map_err(|_| "dir")?;
    let start = dir.virtual_address as usize;
    let end = start + dir.size as usize;
    if dir.size == 0 || start < headers.len() {
        return Err("dir");
    }
    copy_from_user(&mut image[start..end], base + start as u64).map_err(|_| "copy")?;
    match pe::find_export(&image, dir, name) {
        Ok(pe::ExportTarget::Code(rva)) => Ok(base + rva as u64),
        _ => Err("name"),
    }
}

/// The lookup registered with the kernel.
fn user_entry_point(which: UserEntryPoint) -> Option<u64> {
    image_export(match which {
        UserEntryPoint::ExceptionDispatcher => b"KiUserExceptionDispatcher",
        UserEntryPoint::ApcDispatcher => b"KiUserApcDispatcher",
    })
}

/// Registers the lookup (phase 1, with the service table).
pub fn initialize() {
    crate::ke::except::register_user_entry_points(user_entry_point);
}

/// The routines this file and `ke::except` provide, by service name.
pub fn routine(name: &str) -> Option<crate::ke::syscall::ServiceRoutine> {
    Some(match name {
        "NtContinue" => crate::ke::except::nt_continue,
        "NtRaiseException" => crate::ke::except::nt_raise_exception,
        "NtTestAlert" => crate::ke::except::nt_test_alert,
        "NtGetContextThread" => nt_get_context_thread,
        "NtSetContextThread" => nt_set_context_thread,
        "NtQueueApcThread" => nt_queue_apc_thread,
        "NtQueueApcThreadEx" => nt_queue_apc_thread_ex,
        _ => return None,
    })
}

/// The kernel thread id `handle` names, after the handle and access check
/// (`NtCurrentThread()` is the caller, whether or not it has an ETHREAD yet).
fn thread_of_handle(handle: u64, access: u32) -> Result<u32, NtStatus> {
    if handle == NT_CURRENT_THREAD {
        return Ok(crate::ke::sched::current_thread_id());
    }
    let (_r, t) = crate::ps::services::reference_thread(handle, access, Mode::UserMode)?;
    Ok(t.kernel_id.load(core::sync::atomic::Ordering::Acquire))
}

/// Whether `handle` names the calling thread (after the handle and access check).
fn is_current_thread(handle: u64, access: u32) -> Result<bool, NtStatus> {
    Ok(thread_of_handle(handle, access)? == crate::ke::sched::current_thread_id())
}

/// `NtGetContextThread(ThreadHandle, ThreadContext)`.
fn nt_get_context_thread(a: &Args, tf: &mut KTrapFrame) -> NtStatus {
    match is_current_thread(a[0], THREAD_GET_CONTEXT) {
        Ok(true) => crate::ke::except::get_current_context(a[1], tf),
        Ok(false) => STATUS_NOT_IMPLEMENTED,
        Err(e) => e,
    }
}

/// `NtSetContextThread(ThreadHandle, ThreadContext)`.
fn nt_set_context_thread(a: &Args, tf: &mut KTrapFrame) -> NtStatus {
    match is_current_thread(a[0], THREAD_SET_CONTEXT) {
        Ok(true) => crate::ke::except::set_current_context(a[1], tf),
        Ok(false) => STATUS_NOT_IMPLEMENTED,
        Err(e) => e,
    }
}

/// `NtQueueApcThread(ThreadHandle, ApcRoutine, ApcArgument1, ApcArgument2,
/// ApcArgument3)`: a user APC calling `ApcRoutine(Argument1, Argument2,
/// Argument3)` in the thread's next alertable wait (or `NtTestAlert`).
/// THREAD_SET_CONTEXT access, as NT asks; STATUS_UNSUCCESSFUL when the
/// thread takes no more APCs (it is ending).
fn nt_queue_apc_thread(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    queue_user_apc(a[0], a[1], a[2], a[3], a[4])
}

/// `NtQueueApcThreadEx(ThreadHandle, ReserveHandle, ApcRoutine, ...)`:
/// as `NtQueueApcThread`; a reserve object (`NtAllocateReserveObject`)
/// is not supported (STATUS_NOT_IMPLEMENTED for a non-NULL one).
fn nt_queue_apc_thread_ex(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    if a[1] != 0 {
        return STATUS_NOT_IMPLEMENTED;
    }
    queue_user_apc(a[0], a[2], a[3], a[4], a[5])
}

fn queue_user_apc(handle: u64, routine: u64, arg1: u64, arg2: u64, arg3: u64) -> NtStatus {
    let tid = match thread_of_handle(handle, THREAD_SET_CONTEXT) {
        Ok(t) => t,
        Err(e) => return e,
    };
    if routine == 0 || routine >= nt::user::MM_USER_PROBE_ADDRESS {
        return STATUS_INVALID_PARAMETER;
    }
    let apc = {
        let _tag = crate::ex::pool::PoolTag::enter(USER_APC_TAG);
        crate::ke::apc::KApc::new_user(routine, arg1 as usize)
    };
    if crate::ke::apc::ke_insert_queue_apc(apc, tid, arg2 as usize, arg3 as usize, 0) {
        STATUS_SUCCESS
    } else {
        crate::ke::apc::ke_free_unqueued_user_apc(apc);
        STATUS_UNSUCCESSFUL
    }
}
