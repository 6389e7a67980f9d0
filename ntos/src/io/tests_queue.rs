//! Boot tests of device queues and `StartIo`, with an in-kernel test driver
//! `\Driver\KTestQueue` (`\Device\KTestQueue`) whose read dispatch routine
//! marks the IRP pending and hands it to `IoStartPacket` (by key for
//! offsets from 1000) with a cancel routine; its `DriverStartIo` records
//! which request started and leaves it current until the test "finishes"
//! it at DISPATCH_LEVEL (as a driver's DPC would) and calls
//! `IoStartNextPacket(ByKey)`. The exported routines are called, as a
//! driver image would.

use super::driver::*;
use super::file::*;
use super::irp::*;
use super::queue::*;
use super::*;
use crate::ke::irql::SpinLocked;
use crate::ktest::{check, wait_until, Test, TestResult};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const K: Mode = Mode::KernelMode;
/// Reads at or above this offset are started by key (the offset).
const BY_KEY: i64 = 1000;

static DEV: AtomicU64 = AtomicU64::new(0);
/// Offsets in the order `DriverStartIo` saw them.
static STARTED: SpinLocked<Vec<i64>, { crate::ke::DISPATCH_LEVEL }> = SpinLocked::new(Vec::new());
/// (offset, IRP) of every read the dispatch routine received.
static IRPS: SpinLocked<Vec<(i64, u64)>, { crate::ke::DISPATCH_LEVEL }> =
    SpinLocked::new(Vec::new());

unsafe fn complete(irp: *mut IRP, status: NtStatus) -> NtStatus {
    // SAFETY: the driver owns the IRP.
    unsafe {
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = 0;
        iof_complete_request(irp, IO_NO_INCREMENT);
    }
    status
}

unsafe fn offset_of_irp(irp: *mut IRP) -> i64 {
    // SAFETY: the IRP is at the driver's location.
    unsafe {
        (*IoGetCurrentIrpStackLocation(irp))
            .Parameters
            .Read
            .ByteOffset
    }
}

unsafe extern "system" fn q_start_io(_dev: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: StartIo gets the IRP at the driver's location.
    let off = unsafe { offset_of_irp(irp) };
    STARTED.with(|s| s.push(off));
}

/// The driver's cancel routine (called with the cancel spin lock held): a
/// queued IRP is taken out of the device queue and completed; the current
/// one is left to the "DPC", which sees `Cancel`.
unsafe extern "system" fn q_cancel(dev: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: the I/O manager calls this with a live device and IRP.
    unsafe {
        if irp == (*dev).CurrentIrp {
            super::exports::IoReleaseCancelSpinLock((*irp).CancelIrql);
            return;
        }
        let queued = KeRemoveEntryDeviceQueue(
            core::ptr::addr_of_mut!((*dev).DeviceQueue),
            core::ptr::addr_of_mut!((*irp).Tail.Overlay.Queue.DeviceQueueEntry),
        ) != 0;
        super::exports::IoReleaseCancelSpinLock((*irp).CancelIrql);
        if queued {
            complete(irp, STATUS_CANCELLED);
        }
    }
}

unsafe extern "system" fn q_dispatch(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP.
    unsafe {
        let s = IoGetCurrentIrpStackLocation(irp);
        match (*s).MajorFunction {
            IRP_MJ_READ => {
                let off = offset_of_irp(irp);
                IRPS.with(|v| v.push((off, irp as u64)));
                IoMarkIrpPending(irp);
                let key = off as u32;
                let kp: *const u32 = if off >= BY_KEY {
                    &key
                } else {
                    core::ptr::null()
                };
                IoStartPacket(dev, irp, kp, Some(q_cancel));
                STATUS_PENDING
            }
            IRP_MJ_CREATE | IRP_MJ_CLEANUP | IRP_MJ_CLOSE => complete(irp, STATUS_SUCCESS),
            _ => complete(irp, STATUS_INVALID_DEVICE_REQUEST),
        }
    }
}

unsafe extern "system" fn q_entry(
    driver: *mut DRIVER_OBJECT,
    _reg: *mut UNICODE_STRING,
) -> NtStatus {
    // SAFETY: DriverEntry owns its driver object.
    unsafe {
        (*driver).DriverStartIo = Some(q_start_io);
        for mj in [IRP_MJ_CREATE, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_READ] {
            (*driver).MajorFunction[mj as usize] = Some(q_dispatch);
        }
        match super::device::io_create_device(
            driver,
            0,
            Some("\\Device\\KTestQueue"),
            FILE_DEVICE_UNKNOWN,
            0,
            false,
        ) {
            Ok(d) => {
                DEV.store(d as u64, Ordering::SeqCst);
                STATUS_SUCCESS
            }
            Err(e) => e,
        }
    }
}

static SETUP: AtomicBool = AtomicBool::new(false);

fn setup() -> TestResult {
    if SETUP.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    create_driver_object(
        "\\Driver\\KTestQueue",
        q_entry,
        "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\KTestQueue",
        (0, 0),
        core::ptr::null_mut(),
    )
    .map(|_| ())
    .map_err(|_| "DriverEntry of \\Driver\\KTestQueue")
}

fn dev() -> *mut DEVICE_OBJECT {
    DEV.load(Ordering::SeqCst) as *mut DEVICE_OBJECT
}

/// The "DPC": completes the current IRP (cancelled if it was) and starts
/// the next one, at DISPATCH_LEVEL. Returns the finished IRP's offset.
fn finish_current(key: Option<u32>) -> Option<i64> {
    let d = dev();
    let old = crate::ke::irql::ke_raise_irql(crate::ke::DISPATCH_LEVEL);
    // SAFETY: the device is live; the current IRP is the driver's.
    let off = unsafe {
        let irp = (*d).CurrentIrp;
        let off = if irp.is_null() {
            None
        } else {
            let off = offset_of_irp(irp);
            // Own it: take the cancel routine back (the cancel routine of
            // the current IRP never completes it).
            let _ = IoSetCancelRoutine(irp, None);
            let st = if (*irp).Cancel != 0 {
                STATUS_CANCELLED
            } else {
                STATUS_SUCCESS
            };
            complete(irp, st);
            Some(off)
        };
        match key {
            Some(k) => IoStartNextPacketByKey(d, 1, k),
            None => IoStartNextPacket(d, 1),
        }
        off
    };
    crate::ke::irql::ke_lower_irql(old);
    off
}

fn irp_at(off: i64) -> *mut IRP {
    IRPS.with(|v| v.iter().rev().find(|(o, _)| *o == off).map(|&(_, i)| i))
        .unwrap_or(0) as *mut IRP
}

fn read_async(h: u64, off: i64, iosb: &mut IO_STATUS_BLOCK, buf: &mut [u8; 4]) -> NtStatus {
    iosb.Status = STATUS_PENDING;
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb,
        mode: K,
    };
    nt_read_file(h, &args, buf.as_mut_ptr().cast::<c_void>(), 4, Some(off), 0).unwrap_or_else(|e| e)
}

fn queue_busy() -> bool {
    // SAFETY: the device is live.
    unsafe { ::io::devqueue::busy(core::ptr::addr_of!((*dev()).DeviceQueue)) }
}

fn open() -> Result<u64, &'static str> {
    setup()?;
    nt_open_file(
        "\\Device\\KTestQueue",
        FILE_READ_DATA,
        ::ob::OBJ_CASE_INSENSITIVE,
        FILE_SHARE_VALID_FLAGS,
        0,
        K,
    )
    .map_err(|_| "open \\Device\\KTestQueue")
}

/// `IoStartPacket` starts an idle device's request at once and queues the
/// rest in order; `IoStartNextPacket` starts them one by one and the queue
/// goes idle when empty; a queued request's cancellation takes it out
/// (`KeRemoveEntryDeviceQueue`), the current one's is seen by the driver.
fn t_start_packet_fifo_and_cancel() -> TestResult {
    let h = open()?;
    STARTED.with(|s| s.clear());
    let mut iosb = [IO_STATUS_BLOCK::zeroed(); 5];
    let mut bufs = [[0u8; 4]; 5];
    for i in 0..4 {
        let s = read_async(h, i as i64 + 1, &mut iosb[i], &mut bufs[i]);
        check(s == STATUS_PENDING, "read pending")?;
    }
    check(STARTED.with(|s| s.clone()) == [1], "only the first started")?;
    check(queue_busy(), "queue busy")?;
    // SAFETY: the device is live.
    let current = unsafe { (*dev()).CurrentIrp };
    check(current == irp_at(1), "CurrentIrp is the first read")?;
    // Cancel the queued read at offset 3.
    // SAFETY: the IRP is pending in the driver.
    let called = unsafe { io_cancel_irp(irp_at(3)) };
    check(called, "cancel routine called")?;
    check(
        wait_until(500, || iosb[2].Status == STATUS_CANCELLED),
        "queued read cancelled",
    )?;
    check(finish_current(None) == Some(1), "finish 1")?;
    check(finish_current(None) == Some(2), "finish 2")?;
    check(finish_current(None) == Some(4), "finish 4")?;
    check(
        STARTED.with(|s| s.clone()) == [1, 2, 4],
        "started in order, without the cancelled one",
    )?;
    check(finish_current(None).is_none(), "nothing current")?;
    check(!queue_busy(), "queue idle when empty")?;
    check(
        wait_until(500, || {
            [0, 1, 3].iter().all(|&i| iosb[i].Status == STATUS_SUCCESS)
        }),
        "finished reads completed",
    )?;
    // The current request's cancellation: the driver completes it as cancelled.
    let s = read_async(h, 5, &mut iosb[4], &mut bufs[4]);
    check(s == STATUS_PENDING, "read 5 pending")?;
    // SAFETY: the IRP is current in the driver.
    check(unsafe { io_cancel_irp(irp_at(5)) }, "cancel current")?;
    check(
        iosb[4].Status == STATUS_PENDING,
        "current not completed by the cancel routine",
    )?;
    check(finish_current(None) == Some(5), "finish 5")?;
    check(
        wait_until(500, || iosb[4].Status == STATUS_CANCELLED),
        "current read cancelled",
    )?;
    check(!queue_busy(), "idle again")?;
    nt_close(h);
    Ok(())
}

/// `IoStartPacket` with a key keeps the queue sorted;
/// `IoStartNextPacketByKey` takes the first request with a key at least
/// the one given, else (none) the first.
fn t_start_packet_by_key() -> TestResult {
    let h = open()?;
    STARTED.with(|s| s.clear());
    let mut iosb = [IO_STATUS_BLOCK::zeroed(); 4];
    let mut bufs = [[0u8; 4]; 4];
    for (i, off) in [1010i64, 1030, 1020, 1040].into_iter().enumerate() {
        check(
            read_async(h, off, &mut iosb[i], &mut bufs[i]) == STATUS_PENDING,
            "pending",
        )?;
    }
    check(finish_current(Some(1025)) == Some(1010), "finish 1010")?;
    check(finish_current(Some(1035)) == Some(1030), "finish 1030")?;
    check(finish_current(Some(1050)) == Some(1040), "finish 1040")?;
    check(finish_current(Some(0)) == Some(1020), "finish 1020")?;
    check(
        STARTED.with(|s| s.clone()) == [1010, 1030, 1040, 1020],
        "by-key order with wrap-around",
    )?;
    check(!queue_busy(), "idle")?;
    check(
        wait_until(500, || iosb.iter().all(|s| s.Status == STATUS_SUCCESS)),
        "all completed",
    )?;
    nt_close(h);
    Ok(())
}

pub const TESTS: &[Test] = &[
    (
        "io.queue.start_packet_fifo_and_cancel",
        t_start_packet_fifo_and_cancel,
    ),
    ("io.queue.start_packet_by_key", t_start_packet_by_key),
];
