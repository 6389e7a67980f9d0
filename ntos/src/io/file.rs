//! File objects and the services on them: the Device type's parse
//! procedure (`IopParseDevice`) makes a `FILE_OBJECT` for an open of a
//! device or of a path below it (`\Device\Null`,
//! `\GLOBAL??\C:\x` → `\Device\HarddiskVolume2` + `\x`) and sends
//! `IRP_MJ_CREATE` down the device's stack; `NtReadFile`, `NtWriteFile`,
//! `NtDeviceIoControlFile`, `NtFsControlFile`, `NtFlushBuffersFile`,
//! `NtCancelIoFile` and `NtSetInformationFile(FileCompletionInformation)`
//! build IRPs for it; the last handle's close sends `IRP_MJ_CLEANUP` and
//! the last reference `IRP_MJ_CLOSE`.

use super::irp::*;
use super::*;
use crate::ob::handle::{ob_insert_object_handle, ob_reference_object_by_handle};
use crate::ob::object::{ob_reference_object, Mode};
use core::ffi::c_void;
use core::ptr;

/// What an open asks (`OPEN_PACKET`).
#[derive(Clone, Copy, Debug)]
pub struct OpenPacket {
    pub desired: u32,
    pub share: u32,
    pub disposition: u32,
    pub options: u32,
    pub file_attributes: u32,
    pub attributes: u32,
    pub mode: Mode,
}

/// The file object body of a live file object id.
pub fn file_of(id: ObjectId) -> Option<*mut FILE_OBJECT> {
    match body_of(id) {
        Some((b, IoKind::File)) => Some(b as *mut FILE_OBJECT),
        _ => None,
    }
}

/// The device requests for `file` go to: the top of its device's stack
/// (`IoGetRelatedDeviceObject`).
///
/// # Safety
/// `file` must be a live file object.
pub unsafe fn related_device(file: *mut FILE_OBJECT) -> *mut DEVICE_OBJECT {
    // SAFETY: a live file object keeps its device (and VPB).
    unsafe { super::fs::io_get_related_device_object(file) }
}

/// Sends `major` for `file` with an IRP the I/O manager waits for and
/// frees (create, cleanup, close); `fill` completes the stack location.
///
/// # Safety
/// `file` must be a live file object.
unsafe fn send_local(
    file: *mut FILE_OBJECT,
    major: u8,
    fill: impl FnOnce(*mut IO_STACK_LOCATION),
) -> (NtStatus, usize) {
    // SAFETY: the caller guarantees `file`; the event and status block live
    // on this stack until the IRP is freed below.
    unsafe {
        let top = related_device(file);
        let irp = io_allocate_irp((*top).StackSize, false);
        if irp.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        let mut ev = KEVENT::zeroed();
        crate::ke::event::ke_initialize_event(&mut ev, NOTIFICATION_EVENT, false);
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        if let Some(ext) = ext_of(irp) {
            (*ext).flags = EXT_LOCAL;
        }
        (*irp).UserEvent = &mut ev;
        (*irp).UserIosb = &mut iosb;
        (*irp).Tail.Overlay.OriginalFileObject = file;
        (*irp).Tail.Overlay.Thread = crate::ke::sched::current_thread().address() as *mut c_void;
        (*irp).Flags = IRP_SYNCHRONOUS_API
            | match major {
                IRP_MJ_CREATE => IRP_CREATE_OPERATION,
                IRP_MJ_CLOSE => IRP_CLOSE_OPERATION,
                _ => 0,
            };
        let stack = IoGetNextIrpStackLocation(irp);
        (*stack).MajorFunction = major;
        (*stack).FileObject = file;
        fill(stack);
        let mut status = iof_call_driver_and_wait(top, irp, &mut ev);
        // Pending: the completion's status; otherwise a completion status
        // that differs from the one returned wins.
        if status == STATUS_PENDING || (iosb.Status != status && iosb.Status.as_u32() != 0) {
            status = iosb.Status;
        }
        let info = iosb.Information;
        io_free_irp(irp);
        (status, info)
    }
}

/// `IopParseDevice`: opens `dev` (object `dev_id`, referenced by the
/// caller) with `remaining` (the path below it, without a leading `\`):
/// makes the file object and sends `IRP_MJ_CREATE` down the device's stack.
/// Returns the file object, referenced once, and the create's information.
pub fn open_device(
    dev_id: ObjectId,
    remaining: &str,
    p: &OpenPacket,
) -> Result<(ObjectId, usize), NtStatus> {
    let Some((db, IoKind::Device)) = body_of(dev_id) else {
        return Err(STATUS_OBJECT_TYPE_MISMATCH);
    };
    let dev = db as *mut DEVICE_OBJECT;
    // Checks and the open count under the database lock.
    super::device::DATABASE_LOCK.with(|_| {
        // SAFETY: the device is referenced by the caller.
        unsafe {
            let doe = (*dev).DeviceObjectExtension;
            if (*dev).Flags & DO_DEVICE_INITIALIZING != 0
                || (*doe).ExtensionFlags
                    & (super::device::DOE_DELETE_PENDING
                        | super::device::DOE_UNLOAD_PENDING
                        | super::device::DOE_REMOVE_PENDING
                        | super::device::DOE_REMOVE_PROCESSED)
                    != 0
            {
                return Err(STATUS_NO_SUCH_DEVICE);
            }
            if (*dev).Flags & DO_EXCLUSIVE != 0 && (*dev).ReferenceCount != 0 {
                return Err(STATUS_ACCESS_DENIED);
            }
            (*dev).ReferenceCount += 1;
            Ok(())
        }
    })?;
    let undo_count = || {
        super::device::DATABASE_LOCK.with(|_| {
            // SAFETY: the device is still referenced by the caller.
            unsafe { (*dev).ReferenceCount -= 1 }
        })
    };
    // A path below a volume: mount it if needed and open through its file
    // system (`IopCheckVpbMounted`); the file object holds a VPB reference.
    let vpb = if remaining.is_empty() {
        ptr::null_mut()
    } else {
        // SAFETY: the device is referenced by the caller.
        match unsafe { super::fs::check_vpb_mounted(dev) } {
            Ok(v) => v,
            Err(e) => {
                undo_count();
                return Err(e);
            }
        }
    };
    let undo_count = || {
        if !vpb.is_null() {
            // SAFETY: referenced above.
            unsafe { super::fs::dereference_vpb(vpb) };
        }
        undo_count();
    };
    let name = if remaining.is_empty() {
        Ok(UNICODE_STRING::empty())
    } else {
        // The parse hands the path without its leading separator, or "\\"
        // for the device's root (`\??\C:\`).
        if remaining == "\\" {
            alloc_unicode(remaining)
        } else {
            alloc_unicode(&alloc::format!("\\{remaining}"))
        }
    };
    let mut name = match name {
        Ok(n) => n,
        Err(e) => {
            undo_count();
            return Err(e);
        }
    };
    let body = match allocate_body(IoKind::File, core::mem::size_of::<FILE_OBJECT>(), TAG_FILE) {
        Ok(b) => b,
        Err(e) => {
            free_unicode(&mut name);
            undo_count();
            return Err(e);
        }
    };
    let file = body as *mut FILE_OBJECT;
    // SAFETY: a fresh zeroed FILE_OBJECT.
    unsafe {
        (*file).Type = IO_TYPE_FILE;
        (*file).Size = core::mem::size_of::<FILE_OBJECT>() as i16;
        (*file).DeviceObject = dev;
        // Null for a direct device open: its requests go to the device.
        (*file).Vpb = vpb;
        (*file).FileName = name;
        if p.options & (FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT) != 0 {
            (*file).Flags |= FO_SYNCHRONOUS_IO;
            if p.options & FILE_SYNCHRONOUS_IO_ALERT != 0 {
                (*file).Flags |= FO_ALERTABLE_IO;
            }
        }
        if p.options & FILE_NO_INTERMEDIATE_BUFFERING != 0 {
            (*file).Flags |= FO_NO_INTERMEDIATE_BUFFERING;
        }
        if p.options & FILE_WRITE_THROUGH != 0 {
            (*file).Flags |= FO_WRITE_THROUGH;
        }
        if remaining.is_empty() {
            (*file).Flags |= FO_DIRECT_DEVICE_OPEN;
        }
        crate::ke::event::ke_initialize_event(
            ptr::addr_of_mut!((*file).Lock),
            SYNCHRONIZATION_EVENT,
            false,
        );
        crate::ke::event::ke_initialize_event(
            ptr::addr_of_mut!((*file).Event),
            NOTIFICATION_EVENT,
            false,
        );
        InitializeListHead(ptr::addr_of_mut!((*file).IrpList));
    }
    // The file keeps its device (released by the file's delete procedure).
    if let Err(e) = ob_reference_object(dev_id) {
        // SAFETY: the name was allocated above.
        unsafe { free_unicode(&mut (*file).FileName) };
        free_body(body, TAG_FILE);
        undo_count();
        return Err(e);
    }
    let file_id = match insert_object(&IO_FILE_OBJECT_TYPE, IoKind::File, body, TAG_FILE, None, 0) {
        Ok(id) => id,
        Err(e) => {
            free_unicode(&mut name);
            ob_dereference_object(dev_id);
            undo_count();
            return Err(e);
        }
    };
    let mut sec = IO_SECURITY_CONTEXT {
        SecurityQos: ptr::null_mut(),
        AccessState: ptr::null_mut(),
        DesiredAccess: p.desired,
        FullCreateOptions: p.options,
    };
    // SAFETY: the file object is live (we hold its reference); the security
    // context outlives the synchronous create.
    let (status, info) = unsafe {
        send_local(file, IRP_MJ_CREATE, |s| {
            (*s).Parameters.Create = CreateParameters {
                SecurityContext: &mut sec,
                Options: (p.disposition << 24) | (p.options & 0x00FF_FFFF),
                Reserved0: 0,
                FileAttributes: p.file_attributes as u16,
                ShareAccess: p.share as u16,
                Reserved1: 0,
                EaLength: 0,
            };
            if p.attributes & ::ob::OBJ_CASE_INSENSITIVE == 0 {
                (*s).Flags |= SL_CASE_SENSITIVE;
            }
        })
    };
    if !status.is_success() {
        // The driver refused: no close is sent (FO_FILE_OPEN is clear).
        ob_dereference_object(file_id);
        return Err(status);
    }
    // SAFETY: the file object is live.
    unsafe { (*file).Flags |= FO_FILE_OPEN };
    Ok((file_id, info))
}

/// The Device type's `ParseProcedure` for opens through the object
/// manager (`ObOpenObjectByName` of a path below a device): an open for
/// the access asked, shared for everything, `FILE_OPEN`.
pub fn parse_device(
    object: ObjectId,
    remaining: &str,
    ctx: &crate::ob::types::ParseContext,
) -> Result<(ObjectId, u32), NtStatus> {
    let p = OpenPacket {
        desired: ctx.desired,
        share: FILE_SHARE_VALID_FLAGS,
        disposition: FILE_OPEN,
        options: 0,
        file_attributes: 0,
        attributes: ctx.attributes,
        mode: ctx.mode,
    };
    open_device(object, remaining, &p).map(|(id, _)| (id, ctx.desired))
}

/// `NtCreateFile` (and `NtOpenFile`: disposition `FILE_OPEN`): looks the
/// path up in the namespace (following symbolic links) to a device and
/// opens it with the rest of the path as the file name. Returns the handle
/// and the create's information (`FILE_OPENED`, ...). A path that ends in
/// something other than a device is STATUS_OBJECT_TYPE_MISMATCH.
pub fn nt_create_file(path: &str, p: &OpenPacket) -> Result<(u64, usize), NtStatus> {
    if p.disposition > FILE_MAXIMUM_DISPOSITION || p.share & !FILE_SHARE_VALID_FLAGS != 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let dev_ty = IO_DEVICE_OBJECT_TYPE
        .index()
        .ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    let (dev_id, remaining) = crate::ob::with_ob(|st| {
        let (id, rest) = match st.ns.lookup(path, p.attributes, None)? {
            ::ob::namespace::Lookup::Found(id) => (id, alloc::string::String::new()),
            ::ob::namespace::Lookup::Parse { object, remaining } => (object, remaining),
        };
        if st.ns.header(id).map(|h| h.type_index) != Some(dev_ty) {
            return Err(STATUS_OBJECT_TYPE_MISMATCH);
        }
        st.ns
            .reference(id)
            .map_err(|_| STATUS_OBJECT_NAME_NOT_FOUND)?;
        Ok((id, rest))
    })?;
    let r = open_device(dev_id, &remaining, p);
    ob_dereference_object(dev_id);
    let (file_id, info) = r?;
    if let Some(f) = file_of(file_id) {
        // SAFETY: the file object is live (we hold its reference).
        unsafe { (*f).Flags |= FO_HANDLE_CREATED };
    }
    let h = ob_insert_object_handle(file_id, p.desired, p.attributes, p.mode)?;
    Ok((h, info))
}

/// `NtOpenFile`.
pub fn nt_open_file(
    path: &str,
    desired: u32,
    attributes: u32,
    share: u32,
    options: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    nt_create_file(
        path,
        &OpenPacket {
            desired,
            share,
            disposition: FILE_OPEN,
            options,
            file_attributes: 0,
            attributes,
            mode,
        },
    )
    .map(|(h, _)| h)
}

/// The Device... File type's `CloseProcedure`: the last handle's close
/// sends `IRP_MJ_CLEANUP` (`IopCloseFile`).
pub(super) fn close_file(id: ObjectId, handles_left: u64) {
    if handles_left != 0 {
        return;
    }
    let Some(file) = file_of(id) else { return };
    // SAFETY: the closing handle's reference keeps the file object live.
    unsafe {
        if (*file).Flags & FO_FILE_OPEN == 0 {
            return;
        }
        send_local(file, IRP_MJ_CLEANUP, |_| {});
        (*file).Flags |= FO_CLEANUP_COMPLETE;
    }
}

/// The File type's delete procedure (`IopDeleteFile`): `IRP_MJ_CLOSE` for
/// an opened file, then its name, its completion context and its device
/// reference go.
pub(super) fn delete_file(body: u64) {
    let file = body as *mut FILE_OBJECT;
    // SAFETY: the last reference went; the file object is ours.
    unsafe {
        if (*file).Flags & FO_FILE_OPEN != 0 {
            send_local(file, IRP_MJ_CLOSE, |_| {});
        }
        free_unicode(&mut (*file).FileName);
        let cc = (*file).CompletionContext;
        if !cc.is_null() {
            if let Some(id) = object_of((*cc).Port as u64, IoKind::Completion) {
                ob_dereference_object(id);
            }
            let _ = xpool::free(cc as u64, TAG_COMPLETION);
            (*file).CompletionContext = ptr::null_mut();
        }
        if !(*file).Vpb.is_null() {
            super::fs::dereference_vpb((*file).Vpb);
        }
        let dev = (*file).DeviceObject;
        let removing = super::device::DATABASE_LOCK.with(|_| {
            (*dev).ReferenceCount -= 1;
            (*(*dev).DeviceObjectExtension).ExtensionFlags & super::device::DOE_REMOVE_PENDING != 0
        });
        // The last handle of a surprise-removed stack lets its remove IRP
        // go (`IopDecrementDeviceObjectRef` → the pending removal).
        if removing {
            super::pnp::remove::handles_closed();
        }
        if let Some(id) = object_of(dev as u64, IoKind::Device) {
            ob_dereference_object(id);
        }
    }
}

/// A referenced file object from a handle.
pub(super) struct FileRef {
    pub(super) r: crate::ob::handle::ObjectRef,
    pub(super) file: *mut FILE_OBJECT,
}

pub(super) fn reference_file(handle: u64, access: u32, mode: Mode) -> Result<FileRef, NtStatus> {
    let r = ob_reference_object_by_handle(handle, access, Some(&IO_FILE_OBJECT_TYPE), mode)?;
    let file = file_of(r.id).ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    Ok(FileRef { r, file })
}

/// The event object of an `Nt*File` call: referenced (the IRP keeps the
/// reference until completion) and reset. Returns its id + 1, or 0.
pub(super) fn reference_event(event: Option<u64>, mode: Mode) -> Result<usize, NtStatus> {
    let Some(h) = event else { return Ok(0) };
    let r = ob_reference_object_by_handle(
        h,
        crate::ex::event::EVENT_MODIFY_STATE,
        Some(&crate::ex::event::EX_EVENT_OBJECT_TYPE),
        mode,
    )?;
    let id = r.id;
    core::mem::forget(r);
    let idx = crate::ob::object::with_body(id, |b| match b.body {
        ObjectBody::Dispatcher(i) => Some(i),
        _ => None,
    })
    .flatten();
    if let Some(i) = idx {
        crate::ke::wait::with_db(|st| {
            let _ = st.db.reset_event(::ke::objects::ObjectId(i));
        });
    }
    Ok(id + 1)
}

/// What every `Nt*File` request carries besides its parameters.
#[derive(Clone, Copy)]
pub struct RequestArgs {
    /// An event object handle to signal on completion.
    pub event: Option<u64>,
    /// The context of the completion packet (the file's completion port).
    pub apc_context: usize,
    /// The caller's I/O status block (written on completion).
    pub iosb: *mut IO_STATUS_BLOCK,
    pub mode: Mode,
    /// `ApcRoutine`: queued as an APC to the calling thread when the
    /// request completes, with `apc_context` and the status block (not
    /// allowed on a file associated with a completion port).
    pub apc_routine: Option<super::irp::IoApcRoutine>,
}

/// Builds and sends a thread's request on a file (the common part of the
/// `Nt*File` services); `setup` fills the stack location and the buffers.
/// Synchronous files (`FO_SYNCHRONOUS_IO`) wait for the result; otherwise
/// STATUS_PENDING comes back for a request the driver has not finished.
pub(super) fn file_request(
    handle: u64,
    access: u32,
    args: &RequestArgs,
    major: u8,
    setup: impl FnOnce(*mut IRP, *mut DEVICE_OBJECT, *mut FILE_OBJECT) -> Result<(), NtStatus>,
) -> Result<NtStatus, NtStatus> {
    if args.iosb.is_null() {
        return Err(STATUS_ACCESS_VIOLATION);
    }
    let f = reference_file(handle, access, args.mode)?;
    file_request_on(f, args, major, setup)
}

/// [`file_request`] on a file object the caller referenced (its reference
/// is dropped on return).
pub(super) fn file_request_on(
    f: FileRef,
    args: &RequestArgs,
    major: u8,
    setup: impl FnOnce(*mut IRP, *mut DEVICE_OBJECT, *mut FILE_OBJECT) -> Result<(), NtStatus>,
) -> Result<NtStatus, NtStatus> {
    // SAFETY: the handle's reference keeps the file object.
    if args.apc_routine.is_some() && unsafe { !(*f.file).CompletionContext.is_null() } {
        // A file with a completion port reports there, not by APC.
        return Err(STATUS_INVALID_PARAMETER);
    }
    let event = reference_event(args.event, args.mode)?;
    let drop_event = || {
        if event != 0 {
            ob_dereference_object(event - 1);
        }
    };
    let file = f.file;
    // SAFETY: the file object is referenced; the IRP is fresh and ours until sent.
    unsafe {
        let top = related_device(file);
        let irp = io_allocate_irp((*top).StackSize, false);
        if irp.is_null() {
            drop_event();
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let ext = ext_of(irp).unwrap_or(ptr::null_mut());
        (*ext).flags = EXT_THREAD | EXT_SERVICE;
        (*ext).thread = crate::ke::sched::current_thread_id();
        (*ext).event_object = event;
        (*ext).apc_context = args.apc_context;
        (*irp).RequestorMode = if args.mode == Mode::UserMode {
            USER_MODE
        } else {
            KERNEL_MODE
        };
        (*irp).UserIosb = args.iosb;
        (*irp).Tail.Overlay.OriginalFileObject = file;
        (*irp).Tail.Overlay.Thread = crate::ke::sched::current_thread().address() as *mut c_void;
        if let Some(r) = args.apc_routine {
            (*irp).Overlay.AsynchronousParameters.UserApcRoutine = r as usize as *mut c_void;
            (*irp).Overlay.AsynchronousParameters.UserApcContext = args.apc_context as *mut c_void;
        }
        let stack = IoGetNextIrpStackLocation(irp);
        (*stack).MajorFunction = major;
        (*stack).FileObject = file;
        if let Err(e) = setup(irp, top, file) {
            release_buffers(irp);
            io_free_irp(irp);
            drop_event();
            return Err(e);
        }
        let sync = (*file).Flags & FO_SYNCHRONOUS_IO != 0;
        if sync {
            crate::ke::event::ke_reset_event(ptr::addr_of_mut!((*file).Event));
        }
        // The IRP's own reference on the file, dropped by its completion.
        let _ = ob_reference_object(f.r.id);
        queue_thread_irp(irp);
        let mut status = iof_call_driver(top, irp);
        if sync && status == STATUS_PENDING {
            crate::ke::event::ke_wait_for_event(
                ptr::addr_of_mut!((*file).Event),
                crate::ke::thread::WaitReason::Executive,
                args.mode == Mode::UserMode,
                (*file).Flags & FO_ALERTABLE_IO != 0,
                None,
            );
            status = (*file).FinalStatus;
        }
        Ok(status)
    }
}

/// `NtReadFile` / `NtWriteFile`: `offset` None uses (and advances) the
/// synchronous file's current byte offset.
#[allow(clippy::too_many_arguments)]
fn read_write(
    handle: u64,
    args: &RequestArgs,
    buffer: *mut c_void,
    length: u32,
    offset: Option<i64>,
    key: u32,
    write: bool,
) -> Result<NtStatus, NtStatus> {
    let (access, major) = if write {
        (FILE_WRITE_DATA, IRP_MJ_WRITE)
    } else {
        (FILE_READ_DATA, IRP_MJ_READ)
    };
    if args.iosb.is_null() {
        return Err(STATUS_ACCESS_VIOLATION);
    }
    let f = reference_file(handle, access, args.mode)?;
    // NT's "turbo" path: a cached synchronous file asks the driver's fast
    // I/O routine first and builds an IRP only if it declines.
    if let Some(st) = super::fastio::try_read_write(&f, args, buffer, length, offset, key, write)? {
        return Ok(st);
    }
    let mut used = 0i64;
    let mut file_used: *mut FILE_OBJECT = ptr::null_mut();
    let r = file_request_on(f, args, major, |irp, top, file| {
        // SAFETY: the IRP is ours; the caller's buffer is valid for `length`.
        unsafe {
            let off = match offset {
                Some(o) => o,
                None if (*file).Flags & FO_SYNCHRONOUS_IO != 0 => (*file).CurrentByteOffset,
                None => 0,
            };
            used = off;
            file_used = file;
            (*irp).Flags |= if write {
                IRP_WRITE_OPERATION
            } else {
                IRP_READ_OPERATION
            };
            let stack = IoGetNextIrpStackLocation(irp);
            (*stack).Parameters.Read.Length = length;
            (*stack).Parameters.Read.Key = key;
            (*stack).Parameters.Read.ByteOffset = off;
            if key != 0 {
                (*stack).Flags |= SL_KEY_SPECIFIED;
            }
            setup_transfer(irp, top, buffer, length, !write)
        }
    })?;
    if r.is_success() && r != STATUS_PENDING && !file_used.is_null() {
        // SAFETY: the caller's status block was written by the completion;
        // the handle keeps the file object.
        unsafe {
            if (*file_used).Flags & FO_SYNCHRONOUS_IO != 0 {
                (*file_used).CurrentByteOffset = used + (*args.iosb).Information as i64;
            }
        }
    }
    Ok(r)
}

/// `NtReadFile`: returns the request's status (STATUS_PENDING for an
/// asynchronous request not finished yet; the status block, the event and
/// the completion port report its end).
pub fn nt_read_file(
    handle: u64,
    args: &RequestArgs,
    buffer: *mut c_void,
    length: u32,
    offset: Option<i64>,
    key: u32,
) -> Result<NtStatus, NtStatus> {
    read_write(handle, args, buffer, length, offset, key, false)
}

/// `NtWriteFile`.
pub fn nt_write_file(
    handle: u64,
    args: &RequestArgs,
    buffer: *mut c_void,
    length: u32,
    offset: Option<i64>,
    key: u32,
) -> Result<NtStatus, NtStatus> {
    read_write(handle, args, buffer, length, offset, key, true)
}

#[allow(clippy::too_many_arguments)]
fn control(
    handle: u64,
    args: &RequestArgs,
    major: u8,
    code: u32,
    input: *mut c_void,
    input_length: u32,
    output: *mut c_void,
    output_length: u32,
) -> Result<NtStatus, NtStatus> {
    let access = match ACCESS_FROM_CTL_CODE(code) {
        FILE_READ_ACCESS => FILE_READ_DATA,
        FILE_WRITE_ACCESS => FILE_WRITE_DATA,
        3 => FILE_READ_DATA | FILE_WRITE_DATA,
        _ => 0,
    };
    file_request(handle, access, args, major, |irp, _top, _file| {
        // SAFETY: the IRP is ours; the caller's buffers are valid.
        unsafe { setup_ioctl(irp, code, input, input_length, output, output_length) }
    })
}

/// `NtDeviceIoControlFile`: buffers by the code's transfer method.
#[allow(clippy::too_many_arguments)]
pub fn nt_device_io_control_file(
    handle: u64,
    args: &RequestArgs,
    code: u32,
    input: *mut c_void,
    input_length: u32,
    output: *mut c_void,
    output_length: u32,
) -> Result<NtStatus, NtStatus> {
    control(
        handle,
        args,
        IRP_MJ_DEVICE_CONTROL,
        code,
        input,
        input_length,
        output,
        output_length,
    )
}

/// `NtFsControlFile` (`IRP_MJ_FILE_SYSTEM_CONTROL`, `IRP_MN_USER_FS_REQUEST`).
#[allow(clippy::too_many_arguments)]
pub fn nt_fs_control_file(
    handle: u64,
    args: &RequestArgs,
    code: u32,
    input: *mut c_void,
    input_length: u32,
    output: *mut c_void,
    output_length: u32,
) -> Result<NtStatus, NtStatus> {
    control(
        handle,
        args,
        IRP_MJ_FILE_SYSTEM_CONTROL,
        code,
        input,
        input_length,
        output,
        output_length,
    )
}

/// `NtFlushBuffersFile`.
pub fn nt_flush_buffers_file(
    handle: u64,
    iosb: *mut IO_STATUS_BLOCK,
    mode: Mode,
) -> Result<NtStatus, NtStatus> {
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb,
        mode,
    };
    file_request(
        handle,
        FILE_WRITE_DATA,
        &args,
        IRP_MJ_FLUSH_BUFFERS,
        |_, _, _| Ok(()),
    )
}

/// `NtCancelIoFile`: cancels the calling thread's requests on the file;
/// the status block gets STATUS_SUCCESS. (NT waits for them to finish;
/// ntrs returns once their cancel routines ran.)
pub fn nt_cancel_io_file(
    handle: u64,
    iosb: Option<&mut IO_STATUS_BLOCK>,
    mode: Mode,
) -> Result<NtStatus, NtStatus> {
    let f = reference_file(handle, 0, mode)?;
    super::irp::cancel_file_requests(f.file, Some(crate::ke::sched::current_thread_id()));
    if let Some(iosb) = iosb {
        *iosb = IO_STATUS_BLOCK {
            Status: STATUS_SUCCESS,
            Information: 0,
        };
    }
    Ok(STATUS_SUCCESS)
}

/// `NtSetInformationFile` with `FileCompletionInformation`: associates the
/// file with an I/O completion port and a key (once: a second association
/// is STATUS_INVALID_PARAMETER). Other classes are STATUS_INVALID_INFO_CLASS
/// here (file systems come with issue 16).
pub fn nt_set_completion_information(
    handle: u64,
    port: u64,
    key: usize,
    mode: Mode,
) -> Result<(), NtStatus> {
    let f = reference_file(handle, 0, mode)?;
    let p = ob_reference_object_by_handle(port, 0x0002, Some(&IO_COMPLETION_OBJECT_TYPE), mode)?;
    let Some((port_body, IoKind::Completion)) = body_of(p.id) else {
        return Err(STATUS_OBJECT_TYPE_MISMATCH);
    };
    let cc = xpool::allocate(
        PoolType::NonPaged,
        core::mem::size_of::<IO_COMPLETION_CONTEXT>() as u64,
        TAG_COMPLETION,
        true,
    )
    .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)? as *mut IO_COMPLETION_CONTEXT;
    // SAFETY: a fresh block; the file object is referenced.
    unsafe {
        (*cc).Port = port_body as *mut c_void;
        (*cc).Key = key as *mut c_void;
        let slot = &*(ptr::addr_of_mut!((*f.file).CompletionContext)
            as *const core::sync::atomic::AtomicPtr<IO_COMPLETION_CONTEXT>);
        if slot
            .compare_exchange(
                ptr::null_mut(),
                cc,
                core::sync::atomic::Ordering::AcqRel,
                core::sync::atomic::Ordering::Acquire,
            )
            .is_err()
        {
            let _ = xpool::free(cc as u64, TAG_COMPLETION);
            return Err(STATUS_INVALID_PARAMETER);
        }
    }
    // The file keeps the port (dropped by the file's delete procedure).
    let id = p.id;
    core::mem::forget(p);
    let _ = id;
    Ok(())
}

/// `IoGetDeviceObjectPointer`: opens `name` and returns the file object
/// (referenced; the caller dereferences it when done) and the device the
/// requests go to (the top of the stack).
pub fn io_get_device_object_pointer(
    name: &str,
    desired: u32,
) -> Result<(*mut FILE_OBJECT, *mut DEVICE_OBJECT), NtStatus> {
    let p = OpenPacket {
        desired,
        share: FILE_SHARE_VALID_FLAGS,
        disposition: FILE_OPEN,
        options: 0,
        file_attributes: 0,
        attributes: ::ob::OBJ_CASE_INSENSITIVE,
        mode: Mode::KernelMode,
    };
    let (h, _) = nt_create_file(name, &p)?;
    let r = ob_reference_object_by_handle(h, 0, Some(&IO_FILE_OBJECT_TYPE), Mode::KernelMode);
    crate::ob::handle::nt_close(h);
    let r = r?;
    let file = file_of(r.id).ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    core::mem::forget(r);
    // SAFETY: the file object is referenced.
    Ok((file, unsafe { related_device(file) }))
}
