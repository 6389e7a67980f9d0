extern crate std;

use crate::irp::*;
use crate::queue::*;
use crate::share::*;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};
use nt::status::*;
use nt::NtStatus;
use std::boxed::Box;
use std::vec;
use std::vec::Vec;
use wdk::*;

/// A device stack of `n` devices (index 0 the lowest), each with its own
/// driver object whose dispatch routines are given per level.
// Boxed so the objects keep their addresses while the vectors grow.
#[allow(clippy::vec_box)]
struct Stack {
    drivers: Vec<Box<DRIVER_OBJECT>>,
    devices: Vec<Box<DEVICE_OBJECT>>,
}

fn zeroed<T>() -> Box<T> {
    // SAFETY: the wdk structures are plain data for which all-zero is valid
    // (null pointers, None function pointers, zero numbers).
    unsafe { Box::new(core::mem::zeroed()) }
}

fn stack(dispatch: &[DRIVER_DISPATCH]) -> Stack {
    let mut s = Stack {
        drivers: Vec::new(),
        devices: Vec::new(),
    };
    for (i, d) in dispatch.iter().enumerate() {
        let mut drv: Box<DRIVER_OBJECT> = zeroed();
        drv.MajorFunction = [Some(*d); IRP_COUNT];
        let mut dev: Box<DEVICE_OBJECT> = zeroed();
        dev.StackSize = i as i8 + 1;
        dev.DriverObject = &mut *drv;
        s.drivers.push(drv);
        s.devices.push(dev);
    }
    for i in 1..s.devices.len() {
        let upper: *mut DEVICE_OBJECT = &mut *s.devices[i];
        s.devices[i - 1].AttachedDevice = upper;
        s.devices[i].DeviceExtension = &mut *s.devices[i - 1] as *mut DEVICE_OBJECT as *mut c_void;
    }
    s
}
const IRP_COUNT: usize = IRP_MJ_COUNT;

fn irp(n: i8) -> (Vec<u64>, *mut IRP) {
    let size = IoSizeOfIrp(n);
    let mut mem = vec![0u64; size.div_ceil(8)];
    let irp = mem.as_mut_ptr() as *mut IRP;
    // SAFETY: `mem` is 8-byte aligned and large enough.
    unsafe { initialize_irp(irp, size as u16, n) };
    (mem, irp)
}

unsafe extern "system" fn invalid(_d: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the test's IRP.
    unsafe { (*irp).IoStatus.Status = STATUS_INVALID_DEVICE_REQUEST };
    STATUS_INVALID_DEVICE_REQUEST
}

/// Lowest driver: completes reads with 42 bytes at once (the test calls
/// the walk itself, as IofCompleteRequest would).
unsafe extern "system" fn lower(_d: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the test's IRP at this driver's location.
    unsafe {
        let s = IoGetCurrentIrpStackLocation(irp);
        assert_eq!((*irp).CurrentLocation, 1);
        (*irp).IoStatus.Status = STATUS_SUCCESS;
        (*irp).IoStatus.Information = (*s).Parameters.Read.Length as usize;
    }
    STATUS_SUCCESS
}

static SEEN: AtomicUsize = AtomicUsize::new(0);
static SEEN_DEVICE: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn filter_done(
    d: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    ctx: *mut c_void,
) -> NtStatus {
    SEEN.fetch_add(ctx as usize, Ordering::SeqCst);
    SEEN_DEVICE.store(d as usize, Ordering::SeqCst);
    // SAFETY: the test's IRP.
    unsafe {
        (*irp).IoStatus.Information += 1;
        if (*irp).PendingReturned != 0 {
            IoMarkIrpPending(irp);
        }
    }
    STATUS_SUCCESS
}

/// A filter: doubles the read length and sets a completion routine.
unsafe extern "system" fn filter(d: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the test's IRP; the lower device is in the extension.
    unsafe {
        IoCopyCurrentIrpStackLocationToNext(irp);
        let next = IoGetNextIrpStackLocation(irp);
        (*next).Parameters.Read.Length *= 2;
        IoSetCompletionRoutine(irp, filter_done, 7 as *mut c_void, true, true, true);
        call_driver((*d).DeviceExtension as *mut DEVICE_OBJECT, irp, invalid).unwrap()
    }
}

#[test]
fn call_driver_moves_down_and_records_the_device() {
    let mut s = stack(&[lower]);
    let (_m, irp) = irp(1);
    // SAFETY: a one-location IRP sent to a one-device stack.
    unsafe {
        (*IoGetNextIrpStackLocation(irp)).MajorFunction = IRP_MJ_READ;
        (*IoGetNextIrpStackLocation(irp)).Parameters.Read.Length = 42;
        let dev: *mut DEVICE_OBJECT = &mut *s.devices[0];
        assert_eq!(call_driver(dev, irp, invalid), Ok(STATUS_SUCCESS));
        assert_eq!((*IoGetCurrentIrpStackLocation(irp)).DeviceObject, dev);
        assert_eq!((*irp).IoStatus.Information, 42);
        // No location left for another call.
        assert_eq!(
            call_driver(dev, irp, invalid),
            Err(IrpError::NoMoreStackLocations)
        );
        assert_eq!(complete_walk(irp), Ok(Walk::Completed));
        assert_eq!((*irp).CurrentLocation, 3);
        assert_eq!(complete_walk(irp), Err(IrpError::MultipleCompleteRequests));
    }
}

#[test]
fn missing_dispatch_routine_uses_the_invalid_request_routine() {
    let mut s = stack(&[lower]);
    s.drivers[0].MajorFunction[IRP_MJ_WRITE as usize] = None;
    let (_m, irp) = irp(1);
    // SAFETY: as above.
    unsafe {
        (*IoGetNextIrpStackLocation(irp)).MajorFunction = IRP_MJ_WRITE;
        let r = call_driver(&mut *s.devices[0], irp, invalid);
        assert_eq!(r, Ok(STATUS_INVALID_DEVICE_REQUEST));
    }
}

#[test]
fn filter_alters_the_request_and_sees_the_completion() {
    SEEN.store(0, Ordering::SeqCst);
    let mut s = stack(&[lower, filter]);
    let (_m, irp) = irp(2);
    // SAFETY: a two-location IRP sent to the top of a two-device stack.
    unsafe {
        let next = IoGetNextIrpStackLocation(irp);
        (*next).MajorFunction = IRP_MJ_READ;
        (*next).Parameters.Read.Length = 10;
        let top: *mut DEVICE_OBJECT = &mut *s.devices[1];
        assert_eq!(call_driver(top, irp, invalid), Ok(STATUS_SUCCESS));
        assert_eq!(
            (*irp).IoStatus.Information,
            20,
            "the lower driver saw the doubled length"
        );
        assert_eq!(complete_walk(irp), Ok(Walk::Completed));
        assert_eq!(
            SEEN.load(Ordering::SeqCst),
            7,
            "the completion routine ran once with its context"
        );
        assert_eq!(
            SEEN_DEVICE.load(Ordering::SeqCst),
            top as usize,
            "with the filter's own device"
        );
        assert_eq!((*irp).IoStatus.Information, 21);
        assert_eq!((*irp).CurrentLocation, 4);
    }
}

unsafe extern "system" fn keep(
    _d: *mut DEVICE_OBJECT,
    _irp: *mut IRP,
    ctx: *mut c_void,
) -> NtStatus {
    // SAFETY: the context is the test's counter.
    unsafe { *(ctx as *mut u32) += 1 };
    STATUS_MORE_PROCESSING_REQUIRED
}

#[test]
fn more_processing_required_stops_the_walk() {
    let mut s = stack(&[lower]);
    let (_m, irp) = irp(2);
    let mut count = 0u32;
    // SAFETY: the test itself is the upper "driver" at location 2.
    unsafe {
        IoSetNextIrpStackLocation(irp);
        let next = IoGetNextIrpStackLocation(irp);
        (*next).MajorFunction = IRP_MJ_READ;
        IoSetCompletionRoutine(
            irp,
            keep,
            &mut count as *mut u32 as *mut c_void,
            true,
            true,
            true,
        );
        call_driver(&mut *s.devices[0], irp, invalid).unwrap();
        assert_eq!(complete_walk(irp), Ok(Walk::MoreProcessingRequired));
        assert_eq!(count, 1);
        // The IRP stays at the location of the driver whose routine kept it.
        assert_eq!((*irp).CurrentLocation, 2);
    }
}

#[test]
fn completion_routines_run_only_for_the_outcomes_asked() {
    let mut s = stack(&[lower]);
    let (_m, irp) = irp(2);
    let mut count = 0u32;
    // SAFETY: as above.
    unsafe {
        IoSetNextIrpStackLocation(irp);
        IoSetCompletionRoutine(
            irp,
            keep,
            &mut count as *mut u32 as *mut c_void,
            false,
            true,
            false,
        );
        call_driver(&mut *s.devices[0], irp, invalid).unwrap();
        assert_eq!(
            complete_walk(irp),
            Ok(Walk::Completed),
            "success: the error-only routine is skipped"
        );
        assert_eq!(count, 0);
    }
}

unsafe extern "system" fn pends(_d: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the test's IRP.
    unsafe { IoMarkIrpPending(irp) };
    STATUS_PENDING
}

unsafe extern "system" fn passes(d: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the test's IRP; the lower device is in the extension.
    unsafe {
        IoSkipCurrentIrpStackLocation(irp);
        call_driver((*d).DeviceExtension as *mut DEVICE_OBJECT, irp, invalid).unwrap()
    }
}

#[test]
fn pending_returned_propagates_up_where_no_routine_runs() {
    let mut s = stack(&[pends, passes]);
    let (_m, irp) = irp(3);
    // SAFETY: a three-location IRP: the test is at location 3, the filter
    // skips its location so the lower driver gets location 2; the walk must
    // carry the lower driver's pending mark up to location 3 (no routine
    // runs), so PendingReturned is still set at the end.
    unsafe {
        IoSetNextIrpStackLocation(irp);
        let top: *mut DEVICE_OBJECT = &mut *s.devices[1];
        assert_eq!(call_driver(top, irp, invalid), Ok(STATUS_PENDING));
        (*irp).IoStatus.Status = STATUS_SUCCESS;
        assert_eq!(complete_walk(irp), Ok(Walk::Completed));
        assert_eq!((*irp).PendingReturned, 1);
        // The pending mark reached the test's own location (3).
        let top_loc = (irp.add(1) as *mut IO_STACK_LOCATION).add(2);
        assert_eq!(
            (*top_loc).Control & SL_PENDING_RETURNED,
            0,
            "cleared as the walk passed it"
        );
    }
}

#[test]
fn completing_with_status_pending_is_refused() {
    let (_m, irp) = irp(1);
    // SAFETY: a live IRP.
    unsafe {
        (*irp).IoStatus.Status = STATUS_PENDING;
        assert_eq!(complete_walk(irp), Err(IrpError::PendingStatus));
    }
}

#[test]
fn share_access_conflicts() {
    let mut sa = SHARE_ACCESS::default();
    let reader_exclusive = OpenAccess::new(FILE_READ_DATA, 0);
    let reader_sharing = OpenAccess::new(FILE_READ_DATA, FILE_SHARE_READ);
    let attributes_only = OpenAccess::new(FILE_READ_ATTRIBUTES | SYNCHRONIZE, 0);
    set_share_access(&reader_exclusive, &mut sa);
    assert_eq!(sa.OpenCount, 1);
    assert_eq!(
        check_share_access(&reader_sharing, &mut sa, true),
        STATUS_SHARING_VIOLATION
    );
    assert_eq!(sa.OpenCount, 1, "a refused open is not counted");
    assert_eq!(
        check_share_access(&attributes_only, &mut sa, true),
        STATUS_SUCCESS
    );
    assert_eq!(sa.OpenCount, 1, "attribute-only opens are not counted");
    remove_share_access(&reader_exclusive, &mut sa);
    assert_eq!(sa, SHARE_ACCESS::default());
    assert_eq!(
        check_share_access(&reader_sharing, &mut sa, true),
        STATUS_SUCCESS
    );
    let second = OpenAccess::new(FILE_READ_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE);
    assert_eq!(check_share_access(&second, &mut sa, true), STATUS_SUCCESS);
    let writer = OpenAccess::new(FILE_WRITE_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE);
    assert_eq!(
        check_share_access(&writer, &mut sa, false),
        STATUS_SHARING_VIOLATION,
        "the first reader does not share writing"
    );
    let deleter = OpenAccess::new(DELETE, FILE_SHARE_READ);
    assert_eq!(
        check_share_access(&deleter, &mut sa, false),
        STATUS_SHARING_VIOLATION
    );
    assert_eq!(sa.Readers, 2);
    assert_eq!(sa.SharedRead, 2);
    assert_eq!(sa.SharedWrite, 1);
}

#[test]
fn completion_queue_is_fifo() {
    let mut q = CompletionQueue::new();
    for i in 0..5 {
        q.reserve().unwrap();
        q.post(CompletionPacket {
            key: 1,
            apc_context: i,
            status: STATUS_SUCCESS,
            information: i * 2,
        });
    }
    assert_eq!(q.depth(), 5);
    for i in 0..5 {
        assert_eq!(q.remove().map(|p| p.apc_context), Some(i));
    }
    assert_eq!(q.remove(), None);
    assert_eq!(q.posted, 5);
}

// ---------------------------------------------------------------------------
// Cancel-safe queues

use core::cell::RefCell;
std::thread_local! {
    static QUEUE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    static CANCELLED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    static LOCKED: RefCell<u32> = const { RefCell::new(0) };
}

unsafe extern "system" fn q_insert(_c: *mut IO_CSQ, irp: *mut IRP) {
    assert_eq!(
        LOCKED.with(|l| *l.borrow()),
        1,
        "insert under the queue lock"
    );
    QUEUE.with(|q| q.borrow_mut().push(irp as usize));
}
unsafe extern "system" fn q_remove(_c: *mut IO_CSQ, irp: *mut IRP) {
    assert_eq!(
        LOCKED.with(|l| *l.borrow()),
        1,
        "remove under the queue lock"
    );
    QUEUE.with(|q| q.borrow_mut().retain(|&x| x != irp as usize));
}
unsafe extern "system" fn q_peek(_c: *mut IO_CSQ, irp: *mut IRP, _ctx: *mut c_void) -> *mut IRP {
    QUEUE.with(|q| {
        let q = q.borrow();
        let start = if irp.is_null() {
            0
        } else {
            q.iter()
                .position(|&x| x == irp as usize)
                .map_or(q.len(), |i| i + 1)
        };
        q.get(start)
            .map_or(core::ptr::null_mut(), |&x| x as *mut IRP)
    })
}
unsafe extern "system" fn q_acquire(_c: *mut IO_CSQ, _irql: *mut KIRQL) {
    LOCKED.with(|l| *l.borrow_mut() += 1);
}
unsafe extern "system" fn q_release(_c: *mut IO_CSQ, _irql: KIRQL) {
    LOCKED.with(|l| *l.borrow_mut() -= 1);
}
unsafe extern "system" fn q_cancelled(_c: *mut IO_CSQ, irp: *mut IRP) {
    assert_eq!(
        LOCKED.with(|l| *l.borrow()),
        0,
        "completed outside the lock"
    );
    CANCELLED.with(|q| q.borrow_mut().push(irp as usize));
}
unsafe extern "system" fn q_cancel_routine(_d: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: the IRP was queued by csq::insert and handed to us.
    unsafe { crate::csq::cancel(irp) }
}

/// What `IoCancelIrp` does, without the cancel spin lock.
unsafe fn cancel_irp(irp: *mut IRP) -> bool {
    // SAFETY: a live IRP.
    unsafe {
        (*irp).Cancel = 1;
        match IoSetCancelRoutine(irp, None) {
            Some(r) => {
                r(core::ptr::null_mut(), irp);
                true
            }
            None => false,
        }
    }
}

fn new_csq() -> Box<IO_CSQ> {
    let mut csq: Box<IO_CSQ> = zeroed();
    // SAFETY: a writable IO_CSQ.
    let s = unsafe {
        crate::csq::initialize(
            &mut *csq,
            q_insert,
            q_remove,
            q_peek,
            q_acquire,
            q_release,
            q_cancelled,
        )
    };
    assert_eq!(s, STATUS_SUCCESS);
    assert_eq!(csq.Type, IO_TYPE_CSQ);
    csq
}

#[test]
fn csq_insert_remove_next_and_cancel() {
    let mut csq = new_csq();
    let (_m1, a) = irp(1);
    let (_m2, b) = irp(1);
    let (_m3, c) = irp(1);
    // SAFETY: IRPs of the test, each at its single location.
    unsafe {
        for i in [a, b, c] {
            IoSetNextIrpStackLocation(i);
            crate::csq::insert(&mut *csq, i, core::ptr::null_mut(), q_cancel_routine);
            assert_eq!(
                (*IoGetCurrentIrpStackLocation(i)).Control & SL_PENDING_RETURNED,
                SL_PENDING_RETURNED
            );
            assert!((*i).CancelRoutine.is_some());
        }
        // Cancelling b takes it out and completes it as cancelled.
        assert!(cancel_irp(b));
        assert_eq!(CANCELLED.with(|q| q.borrow().clone()), vec![b as usize]);
        assert_eq!(QUEUE.with(|q| q.borrow().len()), 2);
        // The driver gets a, then c; a cancel afterwards finds no routine.
        assert_eq!(crate::csq::remove_next(&mut *csq, core::ptr::null_mut()), a);
        assert!((*a).CancelRoutine.is_none());
        assert!(!cancel_irp(a));
        assert_eq!(crate::csq::remove_next(&mut *csq, core::ptr::null_mut()), c);
        assert!(crate::csq::remove_next(&mut *csq, core::ptr::null_mut()).is_null());
        assert_eq!(LOCKED.with(|l| *l.borrow()), 0);
    }
}

#[test]
fn csq_skips_an_irp_whose_cancel_routine_is_running_and_handles_contexts() {
    let mut csq = new_csq();
    let (_m1, a) = irp(1);
    let (_m2, b) = irp(1);
    let mut ctx_a: Box<IO_CSQ_IRP_CONTEXT> = zeroed();
    let mut ctx_b: Box<IO_CSQ_IRP_CONTEXT> = zeroed();
    // SAFETY: IRPs and contexts of the test.
    unsafe {
        IoSetNextIrpStackLocation(a);
        IoSetNextIrpStackLocation(b);
        crate::csq::insert(&mut *csq, a, &mut *ctx_a, q_cancel_routine);
        crate::csq::insert(&mut *csq, b, &mut *ctx_b, q_cancel_routine);
        assert_eq!(ctx_a.Irp, a);
        assert_eq!(ctx_a.Csq, &mut *csq as *mut IO_CSQ);
        // a's cancel routine has been taken (IoCancelIrp is about to call it):
        // the driver must not get a.
        (*a).Cancel = 1;
        let r = IoSetCancelRoutine(a, None).unwrap();
        assert_eq!(crate::csq::remove_next(&mut *csq, core::ptr::null_mut()), b);
        assert!(ctx_b.Irp.is_null(), "the context no longer names b");
        r(core::ptr::null_mut(), a);
        assert!(CANCELLED.with(|q| q.borrow().contains(&(a as usize))));
        assert!(ctx_a.Irp.is_null());
        assert!(
            crate::csq::remove(&mut *csq, &mut *ctx_a).is_null(),
            "already gone"
        );
    }
}

#[test]
fn csq_insert_of_a_cancelled_irp_completes_it_at_once() {
    let mut csq = new_csq();
    let (_m, a) = irp(1);
    let mut ctx: Box<IO_CSQ_IRP_CONTEXT> = zeroed();
    // SAFETY: an IRP and context of the test.
    unsafe {
        IoSetNextIrpStackLocation(a);
        (*a).Cancel = 1;
        crate::csq::insert(&mut *csq, a, &mut *ctx, q_cancel_routine);
        assert_eq!(QUEUE.with(|q| q.borrow().len()), 0);
        assert_eq!(CANCELLED.with(|q| q.borrow().clone()), vec![a as usize]);
        assert!(ctx.Irp.is_null());
        // IoCsqRemoveIrp of a queued IRP by its context.
        let (_m2, b) = irp(1);
        IoSetNextIrpStackLocation(b);
        crate::csq::insert(&mut *csq, b, &mut *ctx, q_cancel_routine);
        assert_eq!(crate::csq::remove(&mut *csq, &mut *ctx), b);
        assert!((*b).CancelRoutine.is_none());
    }
}
