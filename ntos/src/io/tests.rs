//! Boot tests of the I/O manager, with in-kernel test drivers created
//! through `create_driver_object` (the path the loader's `IopLoadDriver`
//! takes): `\Driver\KTest` with three devices (buffered, direct and
//! neither I/O), `\Driver\KTestFilter` attached above the buffered one,
//! and a driver whose `DriverEntry` fails.

use super::completion::*;
use super::device::*;
use super::driver::*;
use super::file::*;
use super::irp::*;
use super::*;
use crate::ktest::{check, wait_until, Test, TestResult};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const K: Mode = Mode::KernelMode;

/// Reads at this offset stay pending until cancelled or completed by
/// [`complete_pending`].
pub(super) const PEND_OFFSET: i64 = 0x7000_0000;
/// A buffered I/O control code: the output is the input with every byte + 1.
const IOCTL_KTEST_BUFFERED: u32 =
    CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// Direct: fills the output MDL's buffer with the input's first byte.
const IOCTL_KTEST_DIRECT: u32 = CTL_CODE(
    FILE_DEVICE_UNKNOWN,
    0x801,
    METHOD_OUT_DIRECT,
    FILE_READ_ACCESS,
);
/// Neither: reads a u32 from Type3InputBuffer, writes it + 1 to UserBuffer.
const IOCTL_KTEST_NEITHER: u32 =
    CTL_CODE(FILE_DEVICE_UNKNOWN, 0x802, METHOD_NEITHER, FILE_ANY_ACCESS);

/// The test device's extension.
#[repr(C)]
struct KtestExt {
    share: SHARE_ACCESS,
    /// 0 buffered, 1 direct, 2 neither.
    kind: u32,
}

static DEV_BUFFERED: AtomicU64 = AtomicU64::new(0);
static FILTER_DEV: AtomicU64 = AtomicU64::new(0);
static FILTER_SEEN: AtomicU32 = AtomicU32::new(0);
static CLOSES: AtomicU32 = AtomicU32::new(0);
pub(super) static CANCELS: AtomicU32 = AtomicU32::new(0);
static LAST_NAME: crate::ke::irql::SpinLocked<
    alloc::string::String,
    { crate::ke::DISPATCH_LEVEL },
> = crate::ke::irql::SpinLocked::new(alloc::string::String::new());
/// IRPs pending in the test driver (addresses).
pub(super) static PENDING: crate::ke::irql::SpinLocked<Vec<u64>, { crate::ke::DISPATCH_LEVEL }> =
    crate::ke::irql::SpinLocked::new(Vec::new());

fn pattern(offset: i64, i: usize) -> u8 {
    (offset as u8).wrapping_add(i as u8)
}

/// # Safety
/// The IRP is at the test driver's location.
unsafe fn complete(irp: *mut IRP, status: NtStatus, info: usize) -> NtStatus {
    // SAFETY: the driver owns the IRP.
    unsafe {
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = info;
        iof_complete_request(irp, IO_NO_INCREMENT);
    }
    status
}

/// The test driver's cancel-safe queue (`IoCsq*`): its lock and callbacks.
static CSQ_LOCK: crate::ke::irql::KSpinLock = crate::ke::irql::KSpinLock::new();
static mut CSQ: core::mem::MaybeUninit<IO_CSQ> = core::mem::MaybeUninit::zeroed();

fn csq() -> *mut IO_CSQ {
    // Only a raw pointer to the static is formed; the queue's own routines
    // and lock serialise every access through it.
    core::ptr::addr_of_mut!(CSQ) as *mut IO_CSQ
}

unsafe extern "system" fn q_insert(_c: *mut IO_CSQ, irp: *mut IRP) {
    PENDING.with(|p| p.push(irp as u64));
}
unsafe extern "system" fn q_remove(_c: *mut IO_CSQ, irp: *mut IRP) {
    PENDING.with(|p| p.retain(|&x| x != irp as u64));
}
unsafe extern "system" fn q_peek(_c: *mut IO_CSQ, irp: *mut IRP, _ctx: *mut c_void) -> *mut IRP {
    PENDING.with(|p| {
        let start = if irp.is_null() {
            0
        } else {
            p.iter()
                .position(|&x| x == irp as u64)
                .map_or(p.len(), |i| i + 1)
        };
        p.get(start)
            .map_or(core::ptr::null_mut(), |&x| x as *mut IRP)
    })
}
unsafe extern "system" fn q_acquire(_c: *mut IO_CSQ, irql: *mut u8) {
    // SAFETY: the queue's caller passes a writable IRQL.
    unsafe { *irql = CSQ_LOCK.acquire() };
}
unsafe extern "system" fn q_release(_c: *mut IO_CSQ, irql: u8) {
    CSQ_LOCK.release(irql);
}
unsafe extern "system" fn q_complete_canceled(_c: *mut IO_CSQ, irp: *mut IRP) {
    CANCELS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the queue handed us the cancelled IRP.
    unsafe { complete(irp, STATUS_CANCELLED, 0) };
}

/// Completes every queued IRP the driver can take out of its queue.
pub(super) fn complete_pending(_: usize) {
    loop {
        // SAFETY: the queue was initialised by DriverEntry.
        let irp = unsafe { crate::io::exports::IoCsqRemoveNextIrp(csq(), core::ptr::null_mut()) };
        if irp.is_null() {
            break;
        }
        // SAFETY: removed from the queue: the driver owns it.
        unsafe {
            let s = IoGetCurrentIrpStackLocation(irp);
            let len = (*s).Parameters.Read.Length as usize;
            complete(irp, STATUS_SUCCESS, len);
        }
    }
}

/// # Safety
/// The IRP is at the driver's location.
unsafe fn pend(irp: *mut IRP) -> NtStatus {
    // SAFETY: the queue marks the IRP pending and owns its cancellation.
    unsafe { crate::io::exports::IoCsqInsertIrp(csq(), irp, core::ptr::null_mut()) };
    STATUS_PENDING
}

unsafe extern "system" fn kt_dispatch(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP; the extension is ours.
    unsafe {
        let ext = (*dev).DeviceExtension as *mut KtestExt;
        let s = IoGetCurrentIrpStackLocation(irp);
        match (*s).MajorFunction {
            IRP_MJ_CREATE => {
                let f = (*s).FileObject;
                LAST_NAME.with(|n| *n = unicode_to_string(&(*f).FileName));
                let c = (*s).Parameters.Create;
                let st = crate::io::exports::IoCheckShareAccess(
                    (*c.SecurityContext).DesiredAccess,
                    c.ShareAccess as u32,
                    f,
                    &mut (*ext).share,
                    1,
                );
                complete(irp, st, if st.is_success() { FILE_OPENED } else { 0 })
            }
            IRP_MJ_CLEANUP => {
                crate::io::exports::IoRemoveShareAccess((*s).FileObject, &mut (*ext).share);
                complete(irp, STATUS_SUCCESS, 0)
            }
            IRP_MJ_CLOSE => {
                CLOSES.fetch_add(1, Ordering::SeqCst);
                complete(irp, STATUS_SUCCESS, 0)
            }
            IRP_MJ_READ => {
                let r = (*s).Parameters.Read;
                if r.ByteOffset >= PEND_OFFSET {
                    return pend(irp);
                }
                let buf: *mut u8 = match (*ext).kind {
                    0 => (*irp).AssociatedIrp.SystemBuffer as *mut u8,
                    1 => mdl::system_address((*irp).MdlAddress) as *mut u8,
                    _ => (*irp).UserBuffer as *mut u8,
                };
                if buf.is_null() && r.Length != 0 {
                    return complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0);
                }
                for i in 0..r.Length as usize {
                    *buf.add(i) = pattern(r.ByteOffset, i);
                }
                complete(irp, STATUS_SUCCESS, r.Length as usize)
            }
            IRP_MJ_WRITE => complete(irp, STATUS_SUCCESS, (*s).Parameters.Write.Length as usize),
            IRP_MJ_FLUSH_BUFFERS => complete(irp, STATUS_SUCCESS, 0),
            IRP_MJ_DEVICE_CONTROL => {
                let p = (*s).Parameters.DeviceIoControl;
                match p.IoControlCode {
                    IOCTL_KTEST_BUFFERED => {
                        let b = (*irp).AssociatedIrp.SystemBuffer as *mut u8;
                        let n = p.InputBufferLength.min(p.OutputBufferLength) as usize;
                        for i in 0..n {
                            *b.add(i) = (*b.add(i)).wrapping_add(1);
                        }
                        complete(irp, STATUS_SUCCESS, n)
                    }
                    IOCTL_KTEST_DIRECT => {
                        let inb = (*irp).AssociatedIrp.SystemBuffer as *const u8;
                        let out = mdl::system_address((*irp).MdlAddress) as *mut u8;
                        if inb.is_null() || out.is_null() {
                            return complete(irp, STATUS_INVALID_PARAMETER, 0);
                        }
                        core::ptr::write_bytes(out, *inb, p.OutputBufferLength as usize);
                        complete(irp, STATUS_SUCCESS, p.OutputBufferLength as usize)
                    }
                    IOCTL_KTEST_NEITHER => {
                        let v = (p.Type3InputBuffer as *const u32).read_unaligned();
                        ((*irp).UserBuffer as *mut u32).write_unaligned(v + 1);
                        complete(irp, STATUS_SUCCESS, 4)
                    }
                    _ => complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0),
                }
            }
            _ => complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    }
}

unsafe extern "system" fn kt_entry(
    driver: *mut DRIVER_OBJECT,
    _reg: *mut UNICODE_STRING,
) -> NtStatus {
    // SAFETY: DriverEntry owns its driver object; the queue is initialised
    // before any IRP can reach it.
    unsafe {
        let st = crate::io::exports::IoCsqInitialize(
            csq(),
            q_insert,
            q_remove,
            q_peek,
            q_acquire,
            q_release,
            q_complete_canceled,
        );
        if !st.is_success() {
            return st;
        }
        for mj in [
            IRP_MJ_CREATE,
            IRP_MJ_CLEANUP,
            IRP_MJ_CLOSE,
            IRP_MJ_READ,
            IRP_MJ_WRITE,
            IRP_MJ_FLUSH_BUFFERS,
            IRP_MJ_DEVICE_CONTROL,
        ] {
            (*driver).MajorFunction[mj as usize] = Some(kt_dispatch);
        }
        for (kind, name, flag) in [
            (0u32, "\\Device\\KTestBuffered", DO_BUFFERED_IO),
            (1, "\\Device\\KTestDirect", DO_DIRECT_IO),
            (2, "\\Device\\KTestNeither", 0),
        ] {
            let dev = match io_create_device(
                driver,
                core::mem::size_of::<KtestExt>() as u32,
                Some(name),
                FILE_DEVICE_UNKNOWN,
                0,
                false,
            ) {
                Ok(d) => d,
                Err(e) => return e,
            };
            (*dev).Flags |= flag;
            (*((*dev).DeviceExtension as *mut KtestExt)).kind = kind;
            if kind == 0 {
                DEV_BUFFERED.store(dev as u64, Ordering::SeqCst);
            }
        }
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn filter_done(
    _dev: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    ctx: *mut c_void,
) -> NtStatus {
    FILTER_SEEN.fetch_add(ctx as u32, Ordering::SeqCst);
    // SAFETY: the completion routine owns the IRP for now.
    unsafe {
        if (*irp).PendingReturned != 0 {
            IoMarkIrpPending(irp);
        }
    }
    STATUS_SUCCESS
}

/// The filter: reads are moved 0x100 bytes further and watched on their
/// way back; everything else passes through untouched.
unsafe extern "system" fn filter_dispatch(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP; the lower device is in the extension.
    unsafe {
        let lower = *((*dev).DeviceExtension as *mut *mut DEVICE_OBJECT);
        let s = IoGetCurrentIrpStackLocation(irp);
        if (*s).MajorFunction == IRP_MJ_READ {
            IoCopyCurrentIrpStackLocationToNext(irp);
            (*IoGetNextIrpStackLocation(irp)).Parameters.Read.ByteOffset += 0x100;
            IoSetCompletionRoutine(irp, filter_done, 3usize as *mut c_void, true, true, true);
        } else {
            IoSkipCurrentIrpStackLocation(irp);
        }
        iof_call_driver(lower, irp)
    }
}

unsafe extern "system" fn filter_entry(
    driver: *mut DRIVER_OBJECT,
    _reg: *mut UNICODE_STRING,
) -> NtStatus {
    // SAFETY: DriverEntry owns its driver object.
    unsafe {
        (*driver).MajorFunction = [Some(filter_dispatch as DRIVER_DISPATCH); IRP_MJ_COUNT];
        let dev = match io_create_device(
            driver,
            core::mem::size_of::<*mut DEVICE_OBJECT>() as u32,
            None,
            FILE_DEVICE_UNKNOWN,
            0,
            false,
        ) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let target = DEV_BUFFERED.load(Ordering::SeqCst) as *mut DEVICE_OBJECT;
        let lower = io_attach_device_to_device_stack(dev, target);
        if lower.is_null() {
            return STATUS_NO_SUCH_DEVICE;
        }
        *((*dev).DeviceExtension as *mut *mut DEVICE_OBJECT) = lower;
        (*dev).Flags |= (*lower).Flags & (DO_BUFFERED_IO | DO_DIRECT_IO);
        FILTER_DEV.store(dev as u64, Ordering::SeqCst);
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn failing_entry(
    driver: *mut DRIVER_OBJECT,
    _reg: *mut UNICODE_STRING,
) -> NtStatus {
    // SAFETY: DriverEntry owns its driver object.
    unsafe {
        let _ = io_create_device(
            driver,
            64,
            Some("\\Device\\KTestFail"),
            FILE_DEVICE_UNKNOWN,
            0,
            false,
        );
        let _ = io_create_device(driver, 0, None, FILE_DEVICE_UNKNOWN, 0, false);
    }
    STATUS_DEVICE_NOT_READY
}

static SETUP: AtomicBool = AtomicBool::new(false);

/// Creates the test drivers once.
pub(super) fn setup() -> TestResult {
    if SETUP.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let reg = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\KTest";
    create_driver_object(
        "\\Driver\\KTest",
        kt_entry,
        reg,
        (0, 0),
        core::ptr::null_mut(),
    )
    .map_err(|_| "DriverEntry of \\Driver\\KTest")?;
    create_driver_object(
        "\\Driver\\KTestFilter",
        filter_entry,
        "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\KTestFilter",
        (0, 0),
        core::ptr::null_mut(),
    )
    .map_err(|_| "DriverEntry of the filter")?;
    Ok(())
}

/// The device `io_test_device_read` reads (the test drivers are created on first use).
pub fn bench_device() -> Result<&'static str, &'static str> {
    setup()?;
    Ok("\\Device\\KTestNeither")
}

fn packet(desired: u32, share: u32, options: u32) -> OpenPacket {
    OpenPacket {
        desired,
        share,
        disposition: FILE_OPEN,
        options,
        file_attributes: 0,
        attributes: ::ob::OBJ_CASE_INSENSITIVE,
        mode: K,
    }
}

pub(super) fn open(path: &str, options: u32) -> Result<u64, NtStatus> {
    nt_create_file(
        path,
        &packet(
            FILE_READ_DATA | FILE_WRITE_DATA,
            FILE_SHARE_VALID_FLAGS,
            options,
        ),
    )
    .map(|(h, _)| h)
}

fn args(iosb: &mut IO_STATUS_BLOCK) -> RequestArgs {
    RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb,
        mode: K,
    }
}

fn read(
    h: u64,
    buf: &mut [u8],
    offset: i64,
    iosb: &mut IO_STATUS_BLOCK,
) -> Result<NtStatus, NtStatus> {
    nt_read_file(
        h,
        &args(iosb),
        buf.as_mut_ptr() as *mut c_void,
        buf.len() as u32,
        Some(offset),
        0,
    )
}

fn t_driver_objects() -> TestResult {
    setup()?;
    let d = find_driver("\\Driver\\KTest").ok_or("\\Driver\\KTest not in the namespace")?;
    // SAFETY: a live, permanent driver object.
    unsafe {
        check((*d).Type == IO_TYPE_DRIVER, "driver Type")?;
        check((*d).Flags & DRVO_INITIALIZED != 0, "DRVO_INITIALIZED")?;
        check(
            unicode_to_string(&(*d).DriverName) == "\\Driver\\KTest",
            "DriverName",
        )?;
        let ext = (*d).DriverExtension;
        check(
            unicode_to_string(&(*ext).ServiceKeyName) == "KTest",
            "ServiceKeyName",
        )?;
        let mut n = 0;
        let mut dev = (*d).DeviceObject;
        while !dev.is_null() {
            check((*dev).DriverObject == d, "device's DriverObject")?;
            check(
                (*dev).Flags & DO_DEVICE_INITIALIZING == 0,
                "DO_DEVICE_INITIALIZING cleared after DriverEntry",
            )?;
            n += 1;
            dev = (*dev).NextDevice;
        }
        check(n == 3, "three devices on the driver's list")?;
        let b = DEV_BUFFERED.load(Ordering::SeqCst) as *mut DEVICE_OBJECT;
        let f = FILTER_DEV.load(Ordering::SeqCst) as *mut DEVICE_OBJECT;
        check(
            (*b).AttachedDevice == f,
            "filter attached above the buffered device",
        )?;
        check((*f).StackSize == 2, "filter StackSize")?;
        check(io_get_attached_device(b) == f, "IoGetAttachedDevice")?;
    }
    Ok(())
}

fn t_round_trip() -> TestResult {
    setup()?;
    let h = open("\\Device\\KTestNeither", FILE_SYNCHRONOUS_IO_NONALERT)
        .map_err(|_| "open \\Device\\KTestNeither")?;
    let mut buf = [0u8; 40];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let s = read(h, &mut buf, 0x20, &mut iosb).map_err(|_| "NtReadFile")?;
    check(s == STATUS_SUCCESS, "read status")?;
    check(
        iosb.Status == STATUS_SUCCESS && iosb.Information == 40,
        "I/O status block",
    )?;
    check(
        buf.iter().enumerate().all(|(i, &b)| b == pattern(0x20, i)),
        "data",
    )?;
    // A synchronous file's current offset: a read without an offset continues there.
    let mut more = [0u8; 8];
    let s = nt_read_file(
        h,
        &args(&mut iosb),
        more.as_mut_ptr() as *mut c_void,
        8,
        None,
        0,
    )
    .map_err(|_| "read at current offset")?;
    check(
        s == STATUS_SUCCESS && more[0] == pattern(0x48, 0),
        "current byte offset advanced",
    )?;
    let data = [7u8; 12];
    let s = nt_write_file(
        h,
        &args(&mut iosb),
        data.as_ptr() as *mut c_void,
        12,
        Some(0),
        0,
    )
    .map_err(|_| "NtWriteFile")?;
    check(s == STATUS_SUCCESS && iosb.Information == 12, "write")?;
    let s = nt_flush_buffers_file(h, &mut iosb, K).map_err(|_| "NtFlushBuffersFile")?;
    check(s == STATUS_SUCCESS, "flush")?;
    let closes = CLOSES.load(Ordering::SeqCst);
    check(nt_close(h) == STATUS_SUCCESS, "NtClose")?;
    check(
        CLOSES.load(Ordering::SeqCst) == closes + 1,
        "IRP_MJ_CLOSE after the last handle",
    )?;
    Ok(())
}

fn t_buffered_and_direct_reads() -> TestResult {
    setup()?;
    for path in ["\\Device\\KTestDirect", "\\Device\\KTestBuffered"] {
        let h = open(path, FILE_SYNCHRONOUS_IO_NONALERT).map_err(|_| "open")?;
        // Crosses a page boundary.
        let mut buf = alloc::vec![0u8; 5000];
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        let s = read(h, &mut buf, 3, &mut iosb).map_err(|_| "NtReadFile")?;
        nt_close(h);
        check(s == STATUS_SUCCESS && iosb.Information == 5000, "status")?;
        // Through the filter (buffered device), the data comes from 0x100 further.
        let base = if path.ends_with("Buffered") { 0x103 } else { 3 };
        check(
            buf.iter().enumerate().all(|(i, &b)| b == pattern(base, i)),
            "data",
        )?;
    }
    Ok(())
}

fn t_filter() -> TestResult {
    setup()?;
    let seen = FILTER_SEEN.load(Ordering::SeqCst);
    let h = open("\\Device\\KTestBuffered", 0).map_err(|_| "open")?;
    let mut buf = [0u8; 16];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let s = read(h, &mut buf, 0, &mut iosb).map_err(|_| "read")?;
    nt_close(h);
    check(s == STATUS_SUCCESS, "status")?;
    check(
        buf[0] == pattern(0x100, 0),
        "the filter moved the read 0x100 bytes on",
    )?;
    check(
        FILTER_SEEN.load(Ordering::SeqCst) == seen + 3,
        "the filter's completion routine ran once",
    )?;
    Ok(())
}

static MPR_STATUS: AtomicU32 = AtomicU32::new(0);

unsafe extern "system" fn keep(_d: *mut DEVICE_OBJECT, irp: *mut IRP, ev: *mut c_void) -> NtStatus {
    // SAFETY: the IRP is still ours (we return MORE_PROCESSING_REQUIRED); `ev` is the test's event.
    unsafe {
        MPR_STATUS.store((*irp).IoStatus.Status.as_u32(), Ordering::SeqCst);
        crate::ke::event::ke_set_event(ev as *mut KEVENT, 0);
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

/// An IRP of the test's own (`IoAllocateIrp`) with a completion routine
/// that keeps it: the I/O manager must leave it alone.
fn t_more_processing_required() -> TestResult {
    setup()?;
    let dev = DEV_BUFFERED.load(Ordering::SeqCst) as *mut DEVICE_OBJECT;
    let before = live_irps();
    // SAFETY: the IRP is ours; the device stack is live; `buf` and `ev` outlive the request.
    unsafe {
        let top = io_get_attached_device(dev);
        let irp = io_allocate_irp((*top).StackSize, false);
        check(!irp.is_null(), "IoAllocateIrp")?;
        let mut ev = KEVENT::zeroed();
        crate::ke::event::ke_initialize_event(&mut ev, NOTIFICATION_EVENT, false);
        let mut buf = [0u8; 8];
        let s = IoGetNextIrpStackLocation(irp);
        (*s).MajorFunction = IRP_MJ_READ;
        (*s).Parameters.Read.Length = 8;
        setup_transfer(irp, top, buf.as_mut_ptr() as *mut c_void, 8, true)
            .map_err(|_| "buffers")?;
        IoSetCompletionRoutine(
            irp,
            keep,
            &mut ev as *mut KEVENT as *mut c_void,
            true,
            true,
            true,
        );
        let st = iof_call_driver(top, irp);
        if st == STATUS_PENDING {
            crate::ke::event::ke_wait_for_event(
                &mut ev,
                crate::ke::thread::WaitReason::Executive,
                false,
                false,
                None,
            );
        }
        check(
            MPR_STATUS.load(Ordering::SeqCst) == STATUS_SUCCESS.as_u32(),
            "completion routine saw success",
        )?;
        check((*irp).Type == IO_TYPE_IRP, "the IRP was not freed")?;
        check((*irp).IoStatus.Information == 8, "information kept")?;
        // The I/O manager did not copy the buffer back (our IRP, our buffers).
        let sys = (*irp).AssociatedIrp.SystemBuffer as *const u8;
        check(*sys == pattern(0x100, 0), "system buffer holds the data")?;
        release_buffers(irp);
        io_free_irp(irp);
    }
    check(live_irps() == before, "IRP freed")?;
    Ok(())
}

fn t_cancel() -> TestResult {
    setup()?;
    let cancels = CANCELS.load(Ordering::SeqCst);
    // NtCancelIoFile on an asynchronous file.
    let h = open("\\Device\\KTestNeither", 0).map_err(|_| "open")?;
    let (ev, _) = crate::ex::event::nt_create_event(
        crate::ex::event::EVENT_ALL_ACCESS,
        None,
        0,
        crate::ex::event::EventType::NotificationEvent,
        false,
        K,
    )
    .map_err(|_| "event")?;
    let mut buf = [0u8; 4];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = RequestArgs {
        event: Some(ev),
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: K,
    };
    let s = nt_read_file(
        h,
        &a,
        buf.as_mut_ptr() as *mut c_void,
        4,
        Some(PEND_OFFSET),
        0,
    )
    .map_err(|_| "read")?;
    check(s == STATUS_PENDING, "the read is pending")?;
    let mut ci = IO_STATUS_BLOCK::zeroed();
    nt_cancel_io_file(h, Some(&mut ci), K).map_err(|_| "NtCancelIoFile")?;
    let w =
        crate::ex::event::nt_wait_for_single_object(ev, false, Some(1000 * crate::ktest::MS), K);
    check(w == STATUS_SUCCESS, "the event was signaled")?;
    check(
        iosb.Status == STATUS_CANCELLED,
        "STATUS_CANCELLED in the status block",
    )?;
    check(
        CANCELS.load(Ordering::SeqCst) == cancels + 1,
        "the cancel routine ran",
    )?;
    // IoCancelIrp on an IRP of the test's own.
    let dev = DEV_BUFFERED.load(Ordering::SeqCst) as *mut DEVICE_OBJECT;
    // SAFETY: the IRP is ours until sent, then the driver's; the completion
    // routine hands it back.
    unsafe {
        let top = io_get_attached_device(dev);
        let irp = io_allocate_irp((*top).StackSize, false);
        check(!irp.is_null(), "IoAllocateIrp")?;
        let mut kev = KEVENT::zeroed();
        crate::ke::event::ke_initialize_event(&mut kev, NOTIFICATION_EVENT, false);
        let s = IoGetNextIrpStackLocation(irp);
        (*s).MajorFunction = IRP_MJ_READ;
        (*s).Parameters.Read.ByteOffset = PEND_OFFSET;
        IoSetCompletionRoutine(
            irp,
            keep,
            &mut kev as *mut KEVENT as *mut c_void,
            true,
            true,
            true,
        );
        check(iof_call_driver(top, irp) == STATUS_PENDING, "pending")?;
        check(io_cancel_irp(irp), "IoCancelIrp found a cancel routine")?;
        let w = crate::ke::event::ke_wait_for_event(
            &mut kev,
            crate::ke::thread::WaitReason::Executive,
            false,
            false,
            Some(1000 * crate::ktest::MS),
        );
        check(w == STATUS_SUCCESS, "completed")?;
        check(
            MPR_STATUS.load(Ordering::SeqCst) == STATUS_CANCELLED.as_u32(),
            "completion routine saw STATUS_CANCELLED",
        )?;
        check(!io_cancel_irp(irp), "no cancel routine left to call")?;
        io_free_irp(irp);
    }
    nt_close(ev);
    nt_close(h);
    Ok(())
}

/// 64 asynchronous reads pending in the driver, completed from a worker
/// thread, reported through an I/O completion port.
fn t_completion_port() -> TestResult {
    setup()?;
    let port = nt_create_io_completion(IO_COMPLETION_ALL_ACCESS, None, 0, 0, K)
        .map_err(|_| "NtCreateIoCompletion")?;
    let h = open("\\Device\\KTestNeither", 0).map_err(|_| "open")?;
    nt_set_completion_information(h, port, 0x55, K).map_err(|_| "FileCompletionInformation")?;
    check(
        nt_set_completion_information(h, port, 0x56, K) == Err(STATUS_INVALID_PARAMETER),
        "a second association is refused",
    )?;
    const N: usize = 64;
    let mut bufs = alloc::vec![0u8; N * 4];
    let mut iosbs = alloc::vec![IO_STATUS_BLOCK::zeroed(); N];
    for i in 0..N {
        let a = RequestArgs {
            event: None,
            apc_context: 1000 + i,
            apc_routine: None,
            iosb: &mut iosbs[i],
            mode: K,
        };
        let s = nt_read_file(
            h,
            &a,
            bufs[i * 4..].as_mut_ptr() as *mut c_void,
            4,
            Some(PEND_OFFSET + i as i64),
            0,
        )
        .map_err(|_| "read")?;
        check(s == STATUS_PENDING, "each read is pending")?;
    }
    check(
        PENDING.with(|p| p.len()) == N,
        "64 IRPs queued in the driver",
    )?;
    crate::ex::worker::ex_queue_work_item(
        crate::ex::worker::WorkQueueItem {
            routine: complete_pending,
            parameter: 0,
        },
        crate::ex::worker::WorkQueueType::DelayedWorkQueue,
    );
    let mut seen = [false; N];
    let mut got = 0;
    let mut out = [::io::queue::CompletionPacket {
        key: 0,
        apc_context: 0,
        status: STATUS_SUCCESS,
        information: 0,
    }; 16];
    while got < N {
        let n = nt_remove_io_completion_ex(port, &mut out, Some(2000 * crate::ktest::MS), false, K)
            .map_err(|_| "NtRemoveIoCompletionEx")?;
        check(n > 0, "packets before the timeout")?;
        for p in &out[..n] {
            check(p.key == 0x55, "the file's key")?;
            check(
                p.status == STATUS_SUCCESS && p.information == 4,
                "status and information",
            )?;
            let i = p
                .apc_context
                .checked_sub(1000)
                .filter(|&i| i < N)
                .ok_or("context")?;
            check(!seen[i], "each request once")?;
            seen[i] = true;
        }
        got += n;
    }
    check(
        iosbs
            .iter()
            .all(|s| s.Status == STATUS_SUCCESS && s.Information == 4),
        "status blocks",
    )?;
    // NtSetIoCompletion and a poll of an empty port.
    nt_set_io_completion(port, 9, 8, STATUS_SUCCESS, 7, K).map_err(|_| "NtSetIoCompletion")?;
    let p = nt_remove_io_completion(port, Some(0), K).map_err(|_| "remove")?;
    check(
        p.is_some_and(|p| p.key == 9 && p.apc_context == 8 && p.information == 7),
        "posted packet",
    )?;
    check(
        nt_remove_io_completion(port, Some(0), K) == Ok(None),
        "empty port times out",
    )?;
    nt_close(h);
    nt_close(port);
    Ok(())
}

fn t_ioctls() -> TestResult {
    setup()?;
    let h = open("\\Device\\KTestNeither", FILE_SYNCHRONOUS_IO_NONALERT).map_err(|_| "open")?;
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let mut inb = [1u8, 2, 3, 4];
    let mut out = [0u8; 4];
    let s = nt_device_io_control_file(
        h,
        &args(&mut iosb),
        IOCTL_KTEST_BUFFERED,
        inb.as_mut_ptr() as *mut c_void,
        4,
        out.as_mut_ptr() as *mut c_void,
        4,
    )
    .map_err(|_| "buffered")?;
    check(
        s == STATUS_SUCCESS && out == [2, 3, 4, 5] && iosb.Information == 4,
        "METHOD_BUFFERED",
    )?;
    check(inb == [1, 2, 3, 4], "the caller's input untouched")?;
    let mut big = alloc::vec![0u8; 6000];
    let mut fill = [0x5Au8];
    let s = nt_device_io_control_file(
        h,
        &args(&mut iosb),
        IOCTL_KTEST_DIRECT,
        fill.as_mut_ptr() as *mut c_void,
        1,
        big.as_mut_ptr() as *mut c_void,
        6000,
    )
    .map_err(|_| "direct")?;
    check(
        s == STATUS_SUCCESS && big.iter().all(|&b| b == 0x5A),
        "METHOD_OUT_DIRECT through a system mapping",
    )?;
    let mut v = 41u32;
    let mut r = 0u32;
    let s = nt_device_io_control_file(
        h,
        &args(&mut iosb),
        IOCTL_KTEST_NEITHER,
        &mut v as *mut u32 as *mut c_void,
        4,
        &mut r as *mut u32 as *mut c_void,
        4,
    )
    .map_err(|_| "neither")?;
    check(s == STATUS_SUCCESS && r == 42, "METHOD_NEITHER")?;
    let s = nt_device_io_control_file(
        h,
        &args(&mut iosb),
        0x1234,
        core::ptr::null_mut(),
        0,
        core::ptr::null_mut(),
        0,
    );
    check(s == Ok(STATUS_INVALID_DEVICE_REQUEST), "unknown code")?;
    let s = nt_fs_control_file(
        h,
        &args(&mut iosb),
        0x90018,
        core::ptr::null_mut(),
        0,
        core::ptr::null_mut(),
        0,
    );
    check(
        s == Ok(STATUS_INVALID_DEVICE_REQUEST),
        "FSCTL to a driver without IRP_MJ_FILE_SYSTEM_CONTROL",
    )?;
    nt_close(h);
    Ok(())
}

fn t_sharing_and_names() -> TestResult {
    setup()?;
    let (h1, info) = nt_create_file("\\Device\\KTestDirect", &packet(FILE_READ_DATA, 0, 0))
        .map_err(|_| "first open")?;
    check(info == FILE_OPENED, "FILE_OPENED")?;
    let r = nt_create_file(
        "\\Device\\KTestDirect",
        &packet(FILE_READ_DATA, FILE_SHARE_READ, 0),
    );
    check(
        r.err() == Some(STATUS_SHARING_VIOLATION),
        "STATUS_SHARING_VIOLATION",
    )?;
    nt_close(h1);
    let (h2, _) = nt_create_file(
        "\\Device\\KTestDirect",
        &packet(FILE_READ_DATA, FILE_SHARE_READ, 0),
    )
    .map_err(|_| "after close")?;
    nt_close(h2);
    // A drive-letter link and a path below the device.
    io_create_symbolic_link("\\GLOBAL??\\KT:", "\\Device\\KTestNeither")
        .map_err(|_| "IoCreateSymbolicLink")?;
    let h = open("\\??\\KT:\\dir\\file.txt", 0).map_err(|_| "open through the link")?;
    check(
        LAST_NAME.with(|n| n.as_str() == "\\dir\\file.txt"),
        "FILE_OBJECT.FileName is the rest of the path",
    )?;
    nt_close(h);
    io_delete_symbolic_link("\\GLOBAL??\\KT:").map_err(|_| "IoDeleteSymbolicLink")?;
    check(
        open("\\??\\KT:\\x", 0).err() == Some(STATUS_OBJECT_PATH_NOT_FOUND),
        "link gone",
    )?;
    check(
        open("\\Device\\NoSuchDevice", 0).err() == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "no such device",
    )?;
    check(
        open("\\Driver\\KTest", 0).err() == Some(STATUS_OBJECT_TYPE_MISMATCH),
        "a driver is not a file",
    )?;
    Ok(())
}

fn t_bad_handles() -> TestResult {
    setup()?;
    let mut buf = [0u8; 4];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    check(
        read(0xDEAD_0004, &mut buf, 0, &mut iosb).err() == Some(STATUS_INVALID_HANDLE),
        "bogus handle",
    )?;
    let h = open("\\Device\\KTestNeither", 0).map_err(|_| "open")?;
    nt_close(h);
    check(
        read(h, &mut buf, 0, &mut iosb).err() == Some(STATUS_INVALID_HANDLE),
        "closed handle",
    )?;
    let (ev, _) = crate::ex::event::nt_create_event(
        crate::ex::event::EVENT_ALL_ACCESS,
        None,
        0,
        crate::ex::event::EventType::NotificationEvent,
        false,
        K,
    )
    .map_err(|_| "event")?;
    check(
        read(ev, &mut buf, 0, &mut iosb).err() == Some(STATUS_OBJECT_TYPE_MISMATCH),
        "an event is not a file",
    )?;
    check(
        nt_remove_io_completion(ev, Some(0), K).err() == Some(STATUS_OBJECT_TYPE_MISMATCH),
        "an event is not a port",
    )?;
    nt_close(ev);
    Ok(())
}

fn t_failing_driver() -> TestResult {
    let devs = xpool::nonpaged_usage(TAG_DEVICE);
    let count = objects_of(IoKind::Device).len();
    let r = create_driver_object(
        "\\Driver\\KTestFail",
        failing_entry,
        "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\KTestFail",
        (0, 0),
        core::ptr::null_mut(),
    );
    check(
        r.err() == Some(STATUS_DEVICE_NOT_READY),
        "DriverEntry's status",
    )?;
    check(
        find_driver("\\Driver\\KTestFail").is_none(),
        "no driver object left",
    )?;
    check(
        open("\\Device\\KTestFail", 0).err() == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "no device name left",
    )?;
    check(
        objects_of(IoKind::Device).len() == count,
        "no device objects left",
    )?;
    check(
        xpool::nonpaged_usage(TAG_DEVICE) == devs,
        "device object pool back where it was",
    )?;
    Ok(())
}

fn usage() -> [(u64, u64); 7] {
    [
        TAG_IRP,
        TAG_FILE,
        TAG_DEVICE,
        TAG_BUFFER,
        TAG_MDL,
        TAG_NAME,
        TAG_COMPLETION,
    ]
    .map(xpool::nonpaged_usage)
}

/// A round of every kind of request, then the I/O manager's pool tags are
/// where they were.
fn t_no_leaks() -> TestResult {
    setup()?;
    // Warm up lazily created structures (the handle table, lookasides).
    t_round_trip()?;
    let before = usage();
    t_round_trip()?;
    t_buffered_and_direct_reads()?;
    t_ioctls()?;
    t_cancel()?;
    t_completion_port()?;
    t_sharing_and_names()?;
    let ok = wait_until(3000, || usage() == before);
    if !ok {
        let after = usage();
        crate::dbg_println!("io pool before {before:?} after {after:?}");
    }
    check(ok, "Irp/File/Devi/IoBu/Mdl/IoNm/IoCo pool usage unchanged")
}

static KEV: AtomicU64 = AtomicU64::new(0);
static KEV_WOKEN: AtomicUsize = AtomicUsize::new(0);

fn set_later(_: usize) {
    crate::ktest::sleep_ms(20);
    // SAFETY: the test keeps the event alive until the wait below returns.
    unsafe { crate::ke::event::ke_set_event(KEV.load(Ordering::SeqCst) as *mut KEVENT, 1) };
}

/// KEVENTs in memory the caller owns.
fn t_kevent() -> TestResult {
    use crate::ke::event::*;
    use crate::ke::thread::WaitReason;
    let mut ev = KEVENT::zeroed();
    let e: *mut KEVENT = &mut ev;
    // SAFETY: `ev` lives on this stack for the whole test.
    unsafe {
        ke_initialize_event(e, SYNCHRONIZATION_EVENT, true);
        check(
            ke_wait_for_event(e, WaitReason::Executive, false, false, Some(0)) == STATUS_SUCCESS,
            "signaled",
        )?;
        check(
            ke_read_state_event(e) == 0,
            "a synchronization event resets on a wait",
        )?;
        check(
            ke_wait_for_event(e, WaitReason::Executive, false, false, Some(0)) == STATUS_TIMEOUT,
            "poll times out",
        )?;
        ke_initialize_event(e, NOTIFICATION_EVENT, false);
        KEV.store(e as u64, Ordering::SeqCst);
        crate::ex::worker::ex_queue_work_item(
            crate::ex::worker::WorkQueueItem {
                routine: set_later,
                parameter: 0,
            },
            crate::ex::worker::WorkQueueType::DelayedWorkQueue,
        );
        let w = ke_wait_for_event(
            e,
            WaitReason::Executive,
            false,
            false,
            Some(2000 * crate::ktest::MS),
        );
        KEV_WOKEN.fetch_add(1, Ordering::SeqCst);
        check(w == STATUS_SUCCESS, "woken by another thread")?;
        check(
            ke_read_state_event(e) == 1,
            "a notification event stays signaled",
        )?;
        check(
            core::ptr::eq((*e).Header.WaitListHead.Flink, &(*e).Header.WaitListHead),
            "no dispatcher object left attached",
        )?;
        check(
            ke_reset_event(e) == 1 && ke_read_state_event(e) == 0,
            "KeResetEvent",
        )?;
    }
    Ok(())
}

/// The kd commands on the test objects, with a read pending in the driver
/// (their output goes to the debug port; a bad pointer walk would crash).
fn t_kd_commands() -> TestResult {
    setup()?;
    let h = open("\\Device\\KTestNeither", 0).map_err(|_| "open")?;
    let mut buf = [0u8; 4];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let s = read(h, &mut buf, PEND_OFFSET, &mut iosb).map_err(|_| "read")?;
    check(s == STATUS_PENDING, "pending")?;
    let irp = PENDING
        .with(|p| p.first().copied())
        .ok_or("no pending IRP")?;
    super::kd::kd_drvobj("\\Driver\\KTest 2");
    super::kd::kd_devobj("\\Device\\KTestBuffered");
    super::kd::kd_devstack("\\Device\\KTestBuffered");
    super::kd::kd_irpfind("");
    super::kd::kd_irp(&alloc::format!("{irp:x}"));
    crate::ob::kd_object("\\Driver");
    let mut ci = IO_STATUS_BLOCK::zeroed();
    nt_cancel_io_file(h, Some(&mut ci), K).map_err(|_| "cancel")?;
    check(
        wait_until(500, || iosb.Status == STATUS_CANCELLED),
        "cancelled",
    )?;
    nt_close(h);
    Ok(())
}

static CC_GOT: AtomicU32 = AtomicU32::new(0);
static CC_GO: AtomicU32 = AtomicU32::new(0);
static CC_EXITED: AtomicU32 = AtomicU32::new(0);
static CC_ENTERED: AtomicU32 = AtomicU32::new(0);
static CC_EV: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(true, false);
const CC_QUIT: usize = 31;

/// A worker of `io.completion_port.concurrency_limit`: takes a packet,
/// records its key, keeps running (yielding) until the test lets it go,
/// then for key 1 blocks on `CC_EV`, and comes back for the next packet.
fn cc_worker(port: usize) {
    use crate::ke::{sched, wait};
    loop {
        CC_ENTERED.fetch_add(1, Ordering::AcqRel);
        let Ok(Some(p)) = nt_remove_io_completion(port as u64, Some(10_000 * crate::ktest::MS), K)
        else {
            break;
        };
        if p.key == CC_QUIT {
            break;
        }
        CC_GOT.fetch_or(1 << p.key, Ordering::AcqRel);
        while CC_GO.load(Ordering::Acquire) & (1 << p.key) == 0 {
            sched::ke_yield_execution();
        }
        if p.key == 1 {
            wait::ke_wait_for_single_object(
                &CC_EV,
                crate::ke::thread::WaitReason::Executive,
                false,
                false,
                Some(10_000 * crate::ktest::MS),
            );
        }
    }
    CC_EXITED.fetch_add(1, Ordering::AcqRel);
}

fn cc_post(port: u64, key: usize) -> TestResult {
    nt_set_io_completion(port, key, 0, STATUS_SUCCESS, 0, K).map_err(|_| "NtSetIoCompletion")
}

fn cc_body(port: u64, workers: &[u32]) -> TestResult {
    use crate::ke::sched::thread_state;
    use crate::ke::thread::ThreadState;
    check(
        wait_until(2000, || {
            workers
                .iter()
                .all(|&t| thread_state(t) == Some(ThreadState::Waiting))
        }),
        "the workers did not wait on the port",
    )?;
    cc_post(port, 1)?;
    cc_post(port, 2)?;
    crate::ktest::sleep_ms(60);
    check(
        CC_GOT.load(Ordering::Acquire) == 1 << 1,
        "concurrency 1: a second waiter was released while the first ran",
    )?;
    // The running worker blocks on an event: the other waiter goes.
    CC_GO.fetch_or(1 << 1, Ordering::AcqRel);
    check(
        wait_until(2000, || {
            CC_GOT.load(Ordering::Acquire) == (1 << 1) | (1 << 2)
        }),
        "the second waiter was not released when the first blocked",
    )?;
    // The first wakes (two run, above the limit as NT allows) and comes
    // back to the port; with the second still running, a third packet waits.
    crate::ke::wait::ke_set_event(&CC_EV, 0);
    check(
        wait_until(2000, || CC_ENTERED.load(Ordering::Acquire) >= 3),
        "the first worker did not come back to the port",
    )?;
    cc_post(port, 3)?;
    crate::ktest::sleep_ms(60);
    check(
        CC_GOT.load(Ordering::Acquire) & (1 << 3) == 0,
        "a waiter was released while an associated thread ran (concurrency 1)",
    )?;
    // The running one comes back for more: the third packet goes.
    CC_GO.fetch_or((1 << 2) | (1 << 3), Ordering::AcqRel);
    check(
        wait_until(2000, || CC_GOT.load(Ordering::Acquire) & (1 << 3) != 0),
        "the third packet was not released when the running worker waited again",
    )
}

/// KQUEUE concurrency: a port with concurrency 1 and two waiting threads
/// releases the second only once the first blocks or waits again.
fn t_completion_port_concurrency() -> TestResult {
    use crate::ke::sched;
    CC_GOT.store(0, Ordering::Release);
    CC_GO.store(0, Ordering::Release);
    CC_EXITED.store(0, Ordering::Release);
    CC_ENTERED.store(0, Ordering::Release);
    crate::ke::wait::ke_reset_event(&CC_EV);
    let port = nt_create_io_completion(IO_COMPLETION_ALL_ACCESS, None, 0, 1, K)
        .map_err(|_| "NtCreateIoCompletion")?;
    let me = sched::ke_query_priority_thread(sched::current_thread_id()).unwrap_or(8);
    let prio = me.saturating_sub(1).max(1);
    let mut workers = alloc::vec::Vec::new();
    for _ in 0..2 {
        match sched::start_system_thread("io-cc", prio, u64::MAX, cc_worker, port as usize) {
            Ok(t) => workers.push(t),
            Err(_) => break,
        }
    }
    let r = if workers.len() == 2 {
        cc_body(port, &workers)
    } else {
        Err("cannot start the workers")
    };
    // Let everyone go and quit.
    CC_GO.store(u32::MAX, Ordering::Release);
    crate::ke::wait::ke_set_event(&CC_EV, 0);
    for _ in 0..workers.len() {
        let _ = cc_post(port, CC_QUIT);
    }
    let n = workers.len() as u32;
    let exited = wait_until(5000, || CC_EXITED.load(Ordering::Acquire) == n);
    nt_close(port);
    r?;
    check(exited, "the workers did not exit")
}

pub const TESTS: &[Test] = &[
    ("io.kevent.caller_memory", t_kevent),
    ("io.driver.objects", t_driver_objects),
    ("io.irp.round_trip", t_round_trip),
    ("io.irp.buffered_direct_reads", t_buffered_and_direct_reads),
    ("io.irp.filter", t_filter),
    (
        "io.irp.more_processing_required",
        t_more_processing_required,
    ),
    ("io.irp.cancel", t_cancel),
    ("io.completion_port.64_reads", t_completion_port),
    (
        "io.completion_port.concurrency_limit",
        t_completion_port_concurrency,
    ),
    ("io.irp.ioctl_methods", t_ioctls),
    ("io.file.sharing_and_names", t_sharing_and_names),
    ("io.file.bad_handles", t_bad_handles),
    ("io.driver.init_failure", t_failing_driver),
    ("io.pool.no_leaks", t_no_leaks),
    ("io.kd.commands", t_kd_commands),
];
