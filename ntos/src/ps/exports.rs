//! The process manager's kernel exports (`ntos/exports/ps.txt`): thin shims
//! over the routines in `crate::ps`. A `PEPROCESS`/`PETHREAD` a driver gets
//! is the address of the Process/Thread object (what kd shows); drivers
//! release references with `ObfDereferenceObject`.

#![allow(non_snake_case)]

use super::*;
use core::ffi::c_void;

/// `PS_CREATE_NOTIFY_INFO` (x64 layout; `FileObject`, `ImageFileName` and
/// `CommandLine` are NULL in ntrs: processes are not created from image
/// files yet).
#[repr(C)]
pub struct PsCreateNotifyInfo {
    pub size: u64,
    pub flags: u32,
    pub parent_process_id: u64,
    /// `CreatingThreadId` (`CLIENT_ID`: `UniqueProcess`, `UniqueThread`).
    pub creating_process: u64,
    pub creating_thread: u64,
    pub file_object: u64,
    pub image_file_name: u64,
    pub command_line: u64,
    /// `CreationStatus`: a driver may set a failure to refuse the creation
    /// (ntrs reads it back but does not act on it yet).
    pub creation_status: i32,
}

const _: () = assert!(core::mem::size_of::<PsCreateNotifyInfo>() == 72);
const _: () = assert!(core::mem::offset_of!(PsCreateNotifyInfo, parent_process_id) == 16);
const _: () = assert!(core::mem::offset_of!(PsCreateNotifyInfo, creating_process) == 24);
const _: () = assert!(core::mem::offset_of!(PsCreateNotifyInfo, file_object) == 40);
const _: () = assert!(core::mem::offset_of!(PsCreateNotifyInfo, creation_status) == 64);

impl PsCreateNotifyInfo {
    pub fn new(parent: u32, creating_process: u32, creating_thread: u32) -> Self {
        PsCreateNotifyInfo {
            size: core::mem::size_of::<Self>() as u64,
            flags: 0,
            parent_process_id: u64::from(parent),
            creating_process: u64::from(creating_process),
            creating_thread: u64::from(creating_thread),
            file_object: 0,
            image_file_name: 0,
            command_line: 0,
            creation_status: 0,
        }
    }
}

/// The Process or Thread object at a `PEPROCESS`/`PETHREAD` address.
pub fn object_of_pointer(p: u64) -> Option<ObjectId> {
    let id = crate::ob::object_at(p)?;
    let ty = OB_HEADERS.type_index(id)?;
    (Some(ty) == PS_PROCESS_TYPE.index() || Some(ty) == PS_THREAD_TYPE.index()).then_some(id)
}

/// `PsGetCurrentProcessId`.
#[no_mangle]
pub extern "system" fn PsGetCurrentProcessId() -> u64 {
    u64::from(ps_get_current_process_id())
}

/// `PsGetCurrentThreadId`.
#[no_mangle]
pub extern "system" fn PsGetCurrentThreadId() -> u64 {
    u64::from(ps_get_current_thread_id())
}

/// `PsGetCurrentProcess` (`IoGetCurrentProcess`): not referenced.
#[no_mangle]
pub extern "system" fn PsGetCurrentProcess() -> u64 {
    with_current_process(|p| p.map_or(0, |p| p.address()))
}

/// `PsGetCurrentThread`: not referenced (NULL for a kernel thread without
/// an `ETHREAD`).
#[no_mangle]
pub extern "system" fn PsGetCurrentThread() -> u64 {
    with_current_thread(|t| t.map_or(0, |t| t.address()))
}

/// `PsLookupProcessByProcessId`: a referenced `PEPROCESS`.
///
/// # Safety
/// `process` is writable.
#[no_mangle]
pub unsafe extern "system" fn PsLookupProcessByProcessId(pid: u64, process: *mut u64) -> NtStatus {
    let Ok(pid) = u32::try_from(pid) else {
        return STATUS_INVALID_CID;
    };
    match ps_lookup_process_by_process_id(pid) {
        Ok(id) => {
            // SAFETY: the caller passes a writable pointer.
            unsafe { process.write(crate::ob::object_address(id)) };
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `PsLookupThreadByThreadId`: a referenced `PETHREAD`.
///
/// # Safety
/// `thread` is writable.
#[no_mangle]
pub unsafe extern "system" fn PsLookupThreadByThreadId(tid: u64, thread: *mut u64) -> NtStatus {
    let Ok(tid) = u32::try_from(tid) else {
        return STATUS_INVALID_CID;
    };
    match ps_lookup_thread_by_thread_id(tid) {
        Ok(id) => {
            // SAFETY: the caller passes a writable pointer.
            unsafe { thread.write(crate::ob::object_address(id)) };
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `PKSTART_ROUTINE`.
type KStartRoutine = extern "system" fn(*mut c_void);

/// The start of a driver's system thread: its routine and context.
struct DriverStart {
    routine: KStartRoutine,
    context: u64,
}

fn driver_thread_start(ctx: usize) {
    // SAFETY: `ctx` is the `Box<DriverStart>` leaked by
    // `PsCreateSystemThread` for exactly this thread, taken back once here.
    let s = unsafe { alloc::boxed::Box::from_raw(ctx as *mut DriverStart) };
    let (routine, context) = (s.routine, s.context);
    drop(s);
    routine(context as *mut c_void);
}

/// `PsCreateSystemThread`: a thread of the System process (or of
/// `process_handle`'s process) running `routine(context)`; a kernel handle
/// to it in `*thread_handle`, its client id in `*client_id` when given.
///
/// # Safety
/// `thread_handle` is writable; `client_id` is NULL or writable for two
/// pointers; `object_attributes` is NULL or an `OBJECT_ATTRIBUTES`.
#[no_mangle]
pub unsafe extern "system" fn PsCreateSystemThread(
    thread_handle: *mut u64,
    desired_access: u32,
    object_attributes: *const wdk::OBJECT_ATTRIBUTES,
    process_handle: u64,
    client_id: *mut [u64; 2],
    routine: KStartRoutine,
    context: *mut c_void,
) -> NtStatus {
    let attributes = if object_attributes.is_null() {
        0
    } else {
        // SAFETY: the caller passes an OBJECT_ATTRIBUTES.
        unsafe { (*object_attributes).Attributes }
    };
    let process = if process_handle == 0 {
        None
    } else {
        match services::reference_process(
            process_handle,
            PROCESS_CREATE_THREAD,
            crate::ob::object::Mode::KernelMode,
        ) {
            Ok((_r, p)) => Some(p),
            Err(e) => return e,
        }
    };
    let start = match crate::ex::pool::try_box_tagged(
        DriverStart {
            routine,
            context: context as u64,
        },
        *b"Thre",
    ) {
        Ok(b) => alloc::boxed::Box::into_raw(b),
        Err(e) => return e,
    };
    let t = match ps_create_system_thread(
        process.as_ref(),
        "SystemThread",
        driver_thread_start,
        start as usize,
    ) {
        Ok(t) => t,
        Err(e) => {
            // SAFETY: the thread was not created: the box is still ours.
            drop(unsafe { alloc::boxed::Box::from_raw(start) });
            return e;
        }
    };
    if !client_id.is_null() {
        // SAFETY: the caller passes a writable CLIENT_ID.
        unsafe { client_id.write([u64::from(t.process.pid()), u64::from(t.tid())]) };
    }
    match crate::ob::handle::ob_insert_object_handle(
        t.object(),
        desired_access,
        attributes | crate::ob::object::OBJ_KERNEL_HANDLE,
        crate::ob::object::Mode::KernelMode,
    ) {
        Ok(h) => {
            // SAFETY: the caller passes a writable handle pointer.
            unsafe { thread_handle.write(h) };
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `PsTerminateSystemThread`: the current thread ends with `status`.
#[no_mangle]
pub extern "system" fn PsTerminateSystemThread(status: NtStatus) -> NtStatus {
    ps_terminate_current_thread(status)
}

/// `PsSetCreateProcessNotifyRoutine`.
#[no_mangle]
pub extern "system" fn PsSetCreateProcessNotifyRoutine(
    routine: extern "system" fn(u64, u64, u8),
    remove: u8,
) -> NtStatus {
    ps_set_create_process_notify_routine(ProcessNotify::Driver(routine), remove != 0)
}

/// `PsSetCreateProcessNotifyRoutineEx`.
#[no_mangle]
pub extern "system" fn PsSetCreateProcessNotifyRoutineEx(
    routine: extern "system" fn(u64, u64, *mut PsCreateNotifyInfo),
    remove: u8,
) -> NtStatus {
    ps_set_create_process_notify_routine(ProcessNotify::DriverEx(routine), remove != 0)
}

/// `PsSetCreateThreadNotifyRoutine`.
#[no_mangle]
pub extern "system" fn PsSetCreateThreadNotifyRoutine(
    routine: extern "system" fn(u64, u64, u8),
) -> NtStatus {
    ps_set_create_thread_notify_routine(ThreadNotify::Driver(routine), false)
}

/// `PsRemoveCreateThreadNotifyRoutine`.
#[no_mangle]
pub extern "system" fn PsRemoveCreateThreadNotifyRoutine(
    routine: extern "system" fn(u64, u64, u8),
) -> NtStatus {
    ps_set_create_thread_notify_routine(ThreadNotify::Driver(routine), true)
}
