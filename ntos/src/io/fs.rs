//! The I/O manager's mount path (*Windows Internals* 7th ed., Part 1
//! ch. 6, "Volume parameter blocks", and Part 2 ch. 11, "File system
//! driver architecture"): VPBs on disk-type devices, the file system queues
//! (`IoRegisterFileSystem`), mounting a volume on its first open
//! (`IopMountVolume`: `IRP_MJ_FILE_SYSTEM_CONTROL`/`IRP_MN_MOUNT_VOLUME` to
//! each registered file system, `STATUS_UNRECOGNIZED_VOLUME` → the next),
//! and where a file object's requests go once its volume is mounted
//! (`IoGetRelatedDeviceObject`: the top of the file system's volume device
//! stack). `FsRtlIsNameInExpression` is here too (logic in `wdk::fs`).

use super::irp::*;
use super::*;
use core::ffi::c_void;
use core::ptr;

/// Pool tag of VPBs (NT: `Vpb `).
pub const TAG_VPB: u32 = tag(b"Vpb ");

/// `IopVpbSpinLock`: a VPB's `Flags`, `DeviceObject` and `ReferenceCount`
/// change under it.
static VPB_LOCK: crate::ke::irql::KSpinLock = crate::ke::irql::KSpinLock::new();

/// Most file systems one queue holds.
const MAX_FS: usize = 16;

/// The file system queues (`IopDiskFileSystemQueueHead`,
/// `IopCdRomFileSystemQueueHead`, `IopTapeFileSystemQueueHead`): control
/// device objects, the most recently registered first, as NT inserts them.
struct Queues {
    disk: [usize; MAX_FS],
    cdrom: [usize; MAX_FS],
    tape: [usize; MAX_FS],
}

static QUEUES: SpinLocked<Queues, { crate::ke::DISPATCH_LEVEL }> = SpinLocked::new(Queues {
    disk: [0; MAX_FS],
    cdrom: [0; MAX_FS],
    tape: [0; MAX_FS],
});

fn queue_of(q: &mut Queues, device_type: u32) -> Option<&mut [usize; MAX_FS]> {
    match device_type {
        FILE_DEVICE_DISK_FILE_SYSTEM => Some(&mut q.disk),
        FILE_DEVICE_CD_ROM_FILE_SYSTEM => Some(&mut q.cdrom),
        FILE_DEVICE_TAPE_FILE_SYSTEM => Some(&mut q.tape),
        _ => None,
    }
}

/// Whether a device of `device_type` gets a VPB at creation
/// (`IopCreateVpb`: disks, CD-ROMs, tapes, virtual disks).
pub fn needs_vpb(device_type: u32) -> bool {
    matches!(
        device_type,
        FILE_DEVICE_DISK | FILE_DEVICE_CD_ROM | FILE_DEVICE_TAPE | FILE_DEVICE_VIRTUAL_DISK
    )
}

/// `IopCreateVpb`: a zeroed VPB whose `RealDevice` is `dev`, in `dev->Vpb`.
///
/// # Safety
/// `dev` is a device object being created.
pub unsafe fn create_vpb(dev: *mut DEVICE_OBJECT) -> Result<(), NtStatus> {
    let va = xpool::allocate(
        PoolType::NonPaged,
        core::mem::size_of::<VPB>() as u64,
        TAG_VPB,
        true,
    )
    .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    let vpb = va as *mut VPB;
    // SAFETY: a fresh zeroed VPB; the caller owns `dev`.
    unsafe {
        (*vpb).Type = IO_TYPE_VPB;
        (*vpb).Size = core::mem::size_of::<VPB>() as i16;
        (*vpb).RealDevice = dev;
        (*dev).Vpb = vpb;
    }
    Ok(())
}

/// Frees a device's VPB when the device object goes (its delete procedure).
///
/// # Safety
/// `dev` is a device object whose last reference went.
pub unsafe fn free_vpb(dev: *mut DEVICE_OBJECT) {
    // SAFETY: per the contract; nothing else reaches the device now.
    unsafe {
        let vpb = (*dev).Vpb;
        if !vpb.is_null() && (*vpb).RealDevice == dev {
            (*dev).Vpb = ptr::null_mut();
            let _ = xpool::free(vpb as u64, TAG_VPB);
        }
    }
}

/// `IoAcquireVpbSpinLock`: raises to DISPATCH_LEVEL; returns the old IRQL.
pub fn io_acquire_vpb_spin_lock() -> u8 {
    VPB_LOCK.acquire()
}

/// `IoReleaseVpbSpinLock`.
pub fn io_release_vpb_spin_lock(irql: u8) {
    VPB_LOCK.release(irql)
}

/// `IoRegisterFileSystem`: puts a file system's control device at the head
/// of the queue its device type selects, so the next mounts offer volumes
/// to it first. A device of another type is ignored (NT queues network
/// file systems separately; ntrs has none).
///
/// # Safety
/// `dev` is a live device object.
pub unsafe fn io_register_file_system(dev: *mut DEVICE_OBJECT) {
    // SAFETY: per the contract.
    let ty = unsafe { (*dev).DeviceType };
    QUEUES.with(|q| {
        if let Some(q) = queue_of(q, ty) {
            if q.contains(&(dev as usize)) || q[MAX_FS - 1] != 0 {
                return;
            }
            q.copy_within(0..MAX_FS - 1, 1);
            q[0] = dev as usize;
        }
    });
    // The queue holds the device (NT references it too).
    if let Some(id) = object_of(dev as u64, IoKind::Device) {
        let _ = crate::ob::object::ob_reference_object(id);
    }
    // SAFETY: the device is live.
    unsafe { (*dev).Flags &= !DO_DEVICE_INITIALIZING };
}

/// `IoUnregisterFileSystem`: takes the control device out of its queue.
///
/// # Safety
/// `dev` is a live device object.
pub unsafe fn io_unregister_file_system(dev: *mut DEVICE_OBJECT) {
    // SAFETY: per the contract.
    let ty = unsafe { (*dev).DeviceType };
    let removed = QUEUES.with(|q| {
        let Some(q) = queue_of(q, ty) else {
            return false;
        };
        let Some(i) = q.iter().position(|&d| d == dev as usize) else {
            return false;
        };
        q.copy_within(i + 1.., i);
        q[MAX_FS - 1] = 0;
        true
    });
    if removed {
        if let Some(id) = object_of(dev as u64, IoKind::Device) {
            ob_dereference_object(id);
        }
    }
}

/// The registered file systems of the queue for `device_type`
/// (`FILE_DEVICE_DISK_FILE_SYSTEM`, ...), head first (for kd and tests).
pub fn registered(device_type: u32) -> Vec<*mut DEVICE_OBJECT> {
    QUEUES.with(|q| {
        queue_of(q, device_type)
            .map(|q| {
                q.iter()
                    .take_while(|&&d| d != 0)
                    .map(|&d| d as *mut DEVICE_OBJECT)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// The file system queue a volume of `device_type` is offered to.
fn fs_type_for(device_type: u32) -> u32 {
    match device_type {
        FILE_DEVICE_CD_ROM => FILE_DEVICE_CD_ROM_FILE_SYSTEM,
        FILE_DEVICE_TAPE => FILE_DEVICE_TAPE_FILE_SYSTEM,
        _ => FILE_DEVICE_DISK_FILE_SYSTEM,
    }
}

/// Sends `IRP_MN_MOUNT_VOLUME` for `vpb` (target: the top of the real
/// device's stack) to the file system control device `fs` and waits.
///
/// # Safety
/// `fs`, `vpb` and `target` are live.
unsafe fn send_mount(
    fs: *mut DEVICE_OBJECT,
    vpb: *mut VPB,
    target: *mut DEVICE_OBJECT,
) -> NtStatus {
    // SAFETY: per the contract; the event and status block live on this
    // stack until the IRP is freed below.
    unsafe {
        let top = super::device::io_get_attached_device(fs);
        let irp = io_allocate_irp((*top).StackSize, false);
        if irp.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        let mut ev = KEVENT::zeroed();
        crate::ke::event::ke_initialize_event(&mut ev, NOTIFICATION_EVENT, false);
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        if let Some(ext) = ext_of(irp) {
            (*ext).flags = EXT_LOCAL;
        }
        (*irp).UserEvent = &mut ev;
        (*irp).UserIosb = &mut iosb;
        (*irp).Tail.Overlay.Thread = crate::ke::sched::current_thread().address() as *mut c_void;
        (*irp).Flags = IRP_MOUNT_COMPLETION | IRP_SYNCHRONOUS_PAGING_IO;
        let stack = IoGetNextIrpStackLocation(irp);
        (*stack).MajorFunction = IRP_MJ_FILE_SYSTEM_CONTROL;
        (*stack).MinorFunction = IRP_MN_MOUNT_VOLUME;
        (*stack).Parameters.MountVolume = MountVolumeParameters {
            Vpb: vpb,
            DeviceObject: target,
        };
        let mut status = iof_call_driver_and_wait(top, irp, &mut ev);
        if status == STATUS_PENDING {
            status = iosb.Status;
        }
        io_free_irp(irp);
        status
    }
}

/// `IopMountVolume` (under the real device's `DeviceLock`, as NT): offers
/// the volume to each registered file system in turn until one mounts it
/// (sets `Vpb->DeviceObject`); `STATUS_UNRECOGNIZED_VOLUME` moves to the
/// next, any other failure ends the attempt with that status. With no file
/// system registered for the device's type, returns `Ok(false)`: the open
/// goes to the device itself (NT would mount RAW; ntrs has no RAW file
/// system).
///
/// # Safety
/// `dev` is a live, referenced device with a VPB.
unsafe fn mount_volume(dev: *mut DEVICE_OBJECT) -> Result<bool, NtStatus> {
    // SAFETY: per the contract.
    let (vpb, dev_type) = unsafe { ((*dev).Vpb, (*dev).DeviceType) };
    let lock = || {
        // SAFETY: the device's lock event lives as long as the device.
        unsafe {
            crate::ke::event::ke_wait_for_event(
                ptr::addr_of_mut!((*dev).DeviceLock),
                crate::ke::thread::WaitReason::Executive,
                false,
                false,
                None,
            )
        };
    };
    let unlock = || {
        // SAFETY: as above; a synchronization event lets the next one in.
        unsafe { crate::ke::event::ke_set_event(ptr::addr_of_mut!((*dev).DeviceLock), 0) };
    };
    lock();
    // Someone else may have mounted it while we waited.
    let mounted = {
        let irql = io_acquire_vpb_spin_lock();
        // SAFETY: the VPB lives as long as its device; read under its lock.
        let m = unsafe { (*vpb).Flags & VPB_MOUNTED != 0 };
        io_release_vpb_spin_lock(irql);
        m
    };
    if mounted {
        unlock();
        return Ok(true);
    }
    let fss = registered(fs_type_for(dev_type));
    if fss.is_empty() {
        unlock();
        return Ok(false);
    }
    // SAFETY: the device is referenced.
    let target = unsafe { super::device::io_get_attached_device(dev) };
    let mut result = Err(STATUS_UNRECOGNIZED_VOLUME);
    for fs in fss {
        // SAFETY: registered devices are referenced by the queue.
        let status = unsafe { send_mount(fs, vpb, target) };
        if status.is_success() {
            let irql = io_acquire_vpb_spin_lock();
            // SAFETY: under the VPB lock.
            let ok = unsafe {
                if (*vpb).DeviceObject.is_null() {
                    false
                } else {
                    (*vpb).Flags |= VPB_MOUNTED;
                    true
                }
            };
            io_release_vpb_spin_lock(irql);
            result = if ok {
                Ok(true)
            } else {
                // A file system that says it mounted but set no device.
                Err(STATUS_UNRECOGNIZED_VOLUME)
            };
            break;
        }
        if status != STATUS_UNRECOGNIZED_VOLUME {
            result = Err(status);
            break;
        }
    }
    unlock();
    result
}

/// The VPB an open of `dev` with a path below it goes through, referenced
/// for the file object (`IopCheckVpbMounted`): mounts the volume first if
/// needed. `Ok(null)`: the device has no VPB, or no file system is
/// registered for it, and the open goes to the device itself.
///
/// # Safety
/// `dev` is a live, referenced device object.
pub unsafe fn check_vpb_mounted(dev: *mut DEVICE_OBJECT) -> Result<*mut VPB, NtStatus> {
    // SAFETY: per the contract.
    let vpb = unsafe { (*dev).Vpb };
    if vpb.is_null() {
        return Ok(ptr::null_mut());
    }
    loop {
        let irql = io_acquire_vpb_spin_lock();
        // SAFETY: under the VPB lock.
        let got = unsafe {
            if (*vpb).Flags & VPB_MOUNTED != 0 && !(*vpb).DeviceObject.is_null() {
                (*vpb).ReferenceCount += 1;
                true
            } else {
                false
            }
        };
        io_release_vpb_spin_lock(irql);
        if got {
            return Ok(vpb);
        }
        // SAFETY: per the contract.
        if !unsafe { mount_volume(dev)? } {
            return Ok(ptr::null_mut());
        }
    }
}

/// Drops a file object's VPB reference (`IopDereferenceVpbAndFree`).
///
/// # Safety
/// `vpb` was referenced by [`check_vpb_mounted`].
pub unsafe fn dereference_vpb(vpb: *mut VPB) {
    let irql = io_acquire_vpb_spin_lock();
    // SAFETY: under the VPB lock; the VPB lives as long as its device.
    unsafe { (*vpb).ReferenceCount = (*vpb).ReferenceCount.saturating_sub(1) };
    io_release_vpb_spin_lock(irql);
}

/// `IoGetRelatedDeviceObject`: where a file object's requests go. A file
/// opened through a mounted volume goes to the top of the file system's
/// volume device stack; a direct device open to the top of the device's.
///
/// # Safety
/// `file` is a live file object.
pub unsafe fn io_get_related_device_object(file: *mut FILE_OBJECT) -> *mut DEVICE_OBJECT {
    // SAFETY: a live file object keeps its device and VPB.
    unsafe {
        let vpb = (*file).Vpb;
        let dev = if !vpb.is_null() && !(*vpb).DeviceObject.is_null() {
            (*vpb).DeviceObject
        } else {
            (*file).DeviceObject
        };
        super::device::io_get_attached_device(dev)
    }
}

/// `FsRtlIsNameInExpression` over `wdk::fs::is_name_in_expression`; with
/// `ignore_case`, `upcase` (a 64K-entry table, or null: ASCII) upcases the
/// name.
pub fn fs_rtl_is_name_in_expression(
    expr: &[u16],
    name: &[u16],
    ignore_case: bool,
    upcase: Option<&[u16]>,
) -> bool {
    let up = |c: u16| match upcase {
        Some(t) if t.len() > c as usize => t[c as usize],
        _ => {
            if (b'a' as u16..=b'z' as u16).contains(&c) {
                c - 0x20
            } else {
                c
            }
        }
    };
    wdk::fs::is_name_in_expression(expr, name, ignore_case, &up)
}

pub mod exports {
    //! The mount path's exports (ntos/exports/fs.txt).
    #![allow(non_snake_case)]
    use super::*;

    /// `IoRegisterFileSystem`.
    ///
    /// # Safety
    /// `dev` is the caller's live device object.
    #[no_mangle]
    pub unsafe extern "system" fn IoRegisterFileSystem(dev: *mut DEVICE_OBJECT) {
        if object_of(dev as u64, IoKind::Device).is_some() {
            // SAFETY: checked live above.
            unsafe { io_register_file_system(dev) }
        }
    }

    /// `IoUnregisterFileSystem`.
    ///
    /// # Safety
    /// `dev` is the caller's live device object.
    #[no_mangle]
    pub unsafe extern "system" fn IoUnregisterFileSystem(dev: *mut DEVICE_OBJECT) {
        if object_of(dev as u64, IoKind::Device).is_some() {
            // SAFETY: checked live above.
            unsafe { io_unregister_file_system(dev) }
        }
    }

    /// `IoAcquireVpbSpinLock`.
    ///
    /// # Safety
    /// `irql` is writable.
    #[no_mangle]
    pub unsafe extern "system" fn IoAcquireVpbSpinLock(irql: *mut u8) {
        let old = io_acquire_vpb_spin_lock();
        // SAFETY: per the contract.
        unsafe { *irql = old };
    }

    /// `IoReleaseVpbSpinLock`.
    #[no_mangle]
    pub extern "system" fn IoReleaseVpbSpinLock(irql: u8) {
        io_release_vpb_spin_lock(irql)
    }

    /// `IoGetRelatedDeviceObject`.
    ///
    /// # Safety
    /// `file` is a live file object.
    #[no_mangle]
    pub unsafe extern "system" fn IoGetRelatedDeviceObject(
        file: *mut FILE_OBJECT,
    ) -> *mut DEVICE_OBJECT {
        // SAFETY: per the contract.
        unsafe { io_get_related_device_object(file) }
    }

    /// The characters of a `UNICODE_STRING` (empty for a null buffer).
    ///
    /// # Safety
    /// `s.Buffer` null or valid for `s.Length` bytes.
    unsafe fn unicode_slice(s: &UNICODE_STRING) -> &[u16] {
        if s.Buffer.is_null() || s.Length == 0 {
            &[]
        } else {
            // SAFETY: per the contract.
            unsafe { core::slice::from_raw_parts(s.Buffer, s.Length as usize / 2) }
        }
    }

    /// `FsRtlIsNameInExpression`.
    ///
    /// # Safety
    /// Valid `UNICODE_STRING`s; `upcase` null or a 64K-entry table.
    #[no_mangle]
    pub unsafe extern "system" fn FsRtlIsNameInExpression(
        expression: *const UNICODE_STRING,
        name: *const UNICODE_STRING,
        ignore_case: u8,
        upcase: *const u16,
    ) -> u8 {
        // SAFETY: per the contract.
        unsafe {
            let e = unicode_slice(&*expression);
            let n = unicode_slice(&*name);
            let t = if upcase.is_null() {
                None
            } else {
                Some(core::slice::from_raw_parts(upcase, 0x10000))
            };
            fs_rtl_is_name_in_expression(e, n, ignore_case != 0, t) as u8
        }
    }
}

/// A buffered transfer of `length` bytes for an information request (NT
/// buffers `NtQueryInformationFile` and friends whatever the device's
/// flags): a system buffer, copied in for a set (`input` false), copied
/// back `Information` bytes for a query.
///
/// # Safety
/// The IRP is being built; `buffer` is valid for `length` bytes.
unsafe fn setup_buffered(
    irp: *mut IRP,
    buffer: *mut c_void,
    length: u32,
    input: bool,
) -> Result<(), NtStatus> {
    // SAFETY: per the contract.
    unsafe {
        (*irp).UserBuffer = buffer;
        if length != 0 {
            let sys = xpool::allocate(PoolType::NonPaged, length as u64, TAG_BUFFER, true)
                .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
            if !input {
                ptr::copy_nonoverlapping(buffer as *const u8, sys as *mut u8, length as usize);
            }
            (*irp).AssociatedIrp.SystemBuffer = sys as *mut c_void;
            (*irp).Flags |= IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER;
            if let Some(ext) = ext_of(irp) {
                (*ext).buffer_length = length;
            }
        }
        if input {
            (*irp).Flags |= IRP_INPUT_OPERATION;
        }
        Ok(())
    }
}

/// `NtSetInformationFile` (`IRP_MJ_SET_INFORMATION`, buffered), for the
/// classes the file system implements (not `FileCompletionInformation`,
/// which the I/O manager keeps: `file::nt_set_completion_information`).
///
/// Rename and link (`FileRenameInformation(Ex)`, `FileLinkInformation(Ex)`):
/// as NT's `IopOpenLinkOrRenameTarget`, a target name with a `\` is a full
/// path whose directory the I/O manager opens (`FILE_DIRECTORY_FILE`) and
/// passes as `Parameters.SetFile.FileObject`, with `ReplaceIfExists` from
/// the caller's structure; a target on another volume is
/// STATUS_NOT_SAME_DEVICE. A plain name renames within the file's own
/// directory (no target file object). A `RootDirectory` handle is not
/// supported yet (STATUS_NOT_IMPLEMENTED). The target directory stays open
/// until the request returns (synchronous file objects; an asynchronous
/// request that pends outlives it).
///
/// # Safety
/// `buffer` is valid for `length` bytes.
pub unsafe fn nt_set_information_file(
    handle: u64,
    args: &super::file::RequestArgs,
    buffer: *mut c_void,
    length: u32,
    class: u32,
) -> Result<NtStatus, NtStatus> {
    // FileRenameInformation, FileLinkInformation, and their Ex forms.
    let mut target: Option<(u64, *mut FILE_OBJECT)> = None;
    let mut replace = 0usize;
    if matches!(class, 10 | 11 | 65 | 72) {
        if length < 20 || buffer.is_null() {
            return Err(STATUS_INFO_LENGTH_MISMATCH);
        }
        // SAFETY: per the contract, `buffer` holds `length` >= 20 bytes.
        let b = unsafe { core::slice::from_raw_parts(buffer as *const u8, length as usize) };
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        replace = if class >= 65 {
            (u32_at(0) & 1) as usize
        } else {
            usize::from(b[0] != 0)
        };
        let root = u64::from(u32_at(8)) | (u64::from(u32_at(12)) << 32);
        let name_len = u32_at(16) as usize;
        if !name_len.is_multiple_of(2) || 20 + name_len > b.len() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let name: Vec<u16> = b[20..20 + name_len]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if root != 0 {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        if let Some(i) = name.iter().rposition(|&c| c == b'\\' as u16) {
            let dir = String::from_utf16_lossy(&name[..=i]);
            let (h, _) = super::file::nt_create_file(
                &dir,
                &super::file::OpenPacket {
                    desired: FILE_ADD_FILE | SYNCHRONIZE,
                    share: FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    disposition: FILE_OPEN,
                    options: FILE_DIRECTORY_FILE | FILE_SYNCHRONOUS_IO_NONALERT,
                    file_attributes: 0,
                    attributes: ::ob::OBJ_CASE_INSENSITIVE,
                    mode: crate::ob::object::Mode::KernelMode,
                },
            )?;
            let fo = crate::ob::handle::ob_reference_object_by_handle(
                h,
                0,
                Some(&super::IO_FILE_OBJECT_TYPE),
                crate::ob::object::Mode::KernelMode,
            )
            .ok()
            .and_then(|r| super::file::file_of(r.id));
            match fo {
                Some(fo) => target = Some((h, fo)),
                None => {
                    crate::ob::handle::nt_close(h);
                    return Err(STATUS_OBJECT_PATH_NOT_FOUND);
                }
            }
        }
    }
    let r = super::file::file_request(handle, 0, args, IRP_MJ_SET_INFORMATION, |irp, dev, _| {
        // SAFETY: the IRP is ours; the caller's buffer is valid for
        // `length`; the target directory's handle keeps its file object.
        unsafe {
            let target_fo = match target {
                Some((_, fo)) => {
                    if super::file::related_device(fo) != dev {
                        return Err(STATUS_NOT_SAME_DEVICE);
                    }
                    fo
                }
                None => ptr::null_mut(),
            };
            let s = IoGetNextIrpStackLocation(irp);
            (*s).Parameters.SetFile = SetFileParameters {
                Length: length,
                Reserved0: 0,
                FileInformationClass: class,
                Reserved1: 0,
                FileObject: target_fo,
                ReplaceIfExists: replace,
            };
            setup_buffered(irp, buffer, length, false)
        }
    });
    if let Some((h, _)) = target {
        crate::ob::handle::nt_close(h);
    }
    r
}

/// `NtQueryVolumeInformationFile` (`IRP_MJ_QUERY_VOLUME_INFORMATION`).
///
/// # Safety
/// `buffer` is valid for `length` bytes until the request completes.
pub unsafe fn nt_query_volume_information_file(
    handle: u64,
    args: &super::file::RequestArgs,
    buffer: *mut c_void,
    length: u32,
    class: u32,
) -> Result<NtStatus, NtStatus> {
    super::file::file_request(
        handle,
        0,
        args,
        IRP_MJ_QUERY_VOLUME_INFORMATION,
        |irp, _, _| {
            // SAFETY: the IRP is ours; the caller's buffer is valid for `length`.
            unsafe {
                let s = IoGetNextIrpStackLocation(irp);
                (*s).Parameters.QueryVolume = QueryVolumeParameters {
                    Length: length,
                    Reserved0: 0,
                    FsInformationClass: class,
                };
                setup_buffered(irp, buffer, length, true)
            }
        },
    )
}

/// `NtQueryDirectoryFile` (`IRP_MJ_DIRECTORY_CONTROL`,
/// `IRP_MN_QUERY_DIRECTORY`; buffered here, where NT passes NTFS the
/// caller's buffer): `pattern` None is every entry; `restart` sets
/// `SL_RESTART_SCAN`, `single` `SL_RETURN_SINGLE_ENTRY`.
///
/// # Safety
/// `buffer` is valid for `length` bytes until the request completes.
#[allow(clippy::too_many_arguments)]
pub unsafe fn nt_query_directory_file(
    handle: u64,
    args: &super::file::RequestArgs,
    buffer: *mut c_void,
    length: u32,
    class: u32,
    single: bool,
    pattern: Option<&str>,
    restart: bool,
) -> Result<NtStatus, NtStatus> {
    let mut name = match pattern {
        Some(p) => Some(alloc_unicode(p)?),
        None => None,
    };
    let name_ptr = name
        .as_mut()
        .map_or(ptr::null_mut(), |n| n as *mut UNICODE_STRING);
    let r = super::file::file_request(
        handle,
        FILE_LIST_DIRECTORY,
        args,
        IRP_MJ_DIRECTORY_CONTROL,
        |irp, _, _| {
            // SAFETY: the IRP is ours; the caller's buffer is valid for
            // `length`; the pattern outlives the request (synchronous
            // files wait; NT captures it into pool for the asynchronous case).
            unsafe {
                let s = IoGetNextIrpStackLocation(irp);
                (*s).MinorFunction = IRP_MN_QUERY_DIRECTORY;
                (*s).Flags = if restart { SL_RESTART_SCAN } else { 0 }
                    | if single { SL_RETURN_SINGLE_ENTRY } else { 0 };
                (*s).Parameters.QueryDirectory = QueryDirectoryParameters {
                    Length: length,
                    Reserved0: 0,
                    FileName: name_ptr,
                    FileInformationClass: class,
                    Reserved1: 0,
                    FileIndex: 0,
                };
                setup_buffered(irp, buffer, length, true)
            }
        },
    );
    if let Some(mut n) = name {
        free_unicode(&mut n);
    }
    r
}
