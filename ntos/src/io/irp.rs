//! IRPs: allocation (`IoAllocateIrp`, `IoFreeIrp`, `IoBuild*Request`),
//! sending (`IofCallDriver`), completion (`IofCompleteRequest`: the stack
//! walk of the `io` crate, then the I/O manager's own completion for
//! requests a thread issued), and cancellation (`IoCancelIrp`, the cancel
//! spin lock).
//!
//! Every IRP `IoAllocateIrp` makes carries an ntrs extension after its
//! stack locations (marked by `IRP_ALLOCATED_BY_IO` in `AllocationFlags`):
//! the links of the list of live IRPs (`!irpfind`, `NtCancelIoFile`) and
//! what the completion of a thread's request needs (the event object, the
//! completion port, the length of a buffered read).

use super::*;
use crate::ke::apc::{ApcMode, KApc, NormalRoutine};
use crate::ke::irql::KSpinLock;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

/// ntrs's `AllocationFlags` bit: the IRP came from `IoAllocateIrp` and has
/// an [`IrpExt`] after its stack locations.
pub const IRP_ALLOCATED_BY_IO: u8 = 0x80;

/// [`IrpExt::flags`]: a thread's request (`Nt*File`, `IoBuild*Request`):
/// the I/O manager finishes it after the stack walk.
pub const EXT_THREAD: u32 = 0x1;
/// The request came from an `Nt*File` service (errors returned at once
/// are not reported through the I/O status block or the event).
pub const EXT_SERVICE: u32 = 0x2;
/// The issuer waits for the request and frees the IRP itself (the I/O
/// manager's own create, cleanup and close requests): completion only
/// stores the status block and signals the event.
pub const EXT_LOCAL: u32 = 0x4;

/// The ntrs extension of an IRP from `IoAllocateIrp`.
#[repr(C)]
pub struct IrpExt {
    prev: u64,
    next: u64,
    pub flags: u32,
    /// Bytes of a buffered read's system buffer (copied back on completion).
    pub buffer_length: u32,
    /// Issuing thread's id.
    pub thread: u32,
    /// An event object (`NtReadFile`'s `Event`) to signal: object id + 1.
    pub event_object: usize,
    /// `ApcContext` of an `Nt*File` call (the completion packet's context).
    pub apc_context: usize,
    /// The IRP this extension belongs to (for the APC routines).
    irp: u64,
    /// The priority boost `IoCompleteRequest` was given (for the APC).
    boost: i8,
    /// The IRP is on its thread's IRP list.
    on_thread_list: bool,
    /// `IopCompleteRequest`'s special kernel APC (NT uses `Tail.Apc`, which
    /// overlays `Tail.Overlay` and so cannot hold ntrs's APC object).
    completion_apc: KApc,
    /// The caller's APC (`ApcRoutine` of `NtReadFile`...), queued by the
    /// completion.
    user_apc: KApc,
}

/// `PIO_APC_ROUTINE`: `(ApcContext, IoStatusBlock, Reserved)`.
pub type IoApcRoutine =
    unsafe extern "system" fn(*mut core::ffi::c_void, *mut IO_STATUS_BLOCK, u32);

/// The IRP of an APC embedded in its extension.
fn irp_of_apc(apc: &KApc, user: bool) -> *mut IRP {
    let off = if user {
        core::mem::offset_of!(IrpExt, user_apc)
    } else {
        core::mem::offset_of!(IrpExt, completion_apc)
    };
    let ext = (apc as *const KApc as usize - off) as *const IrpExt;
    // SAFETY: ntrs queues these APCs only from inside a live IRP's extension
    // (see `iof_complete_request` and `finish_thread_request`).
    unsafe { (*ext).irp as *mut IRP }
}

/// The live IRPs: the head's address; IRPs link through their extension.
struct IrpList {
    first: u64,
    count: u64,
}

static IRPS: SpinLocked<IrpList, { crate::ke::DISPATCH_LEVEL }> =
    SpinLocked::new(IrpList { first: 0, count: 0 });

/// IRPs allocated and freed (benchmarks and tests).
pub static IRPS_ALLOCATED: AtomicU64 = AtomicU64::new(0);

/// The extension of an IRP from `IoAllocateIrp`.
///
/// # Safety
/// `irp` must be a live IRP.
pub unsafe fn ext_of(irp: *mut IRP) -> Option<*mut IrpExt> {
    // SAFETY: the caller guarantees `irp` is live.
    unsafe {
        if (*irp).AllocationFlags & IRP_ALLOCATED_BY_IO == 0 {
            return None;
        }
        Some((irp as usize + IoSizeOfIrp((*irp).StackCount)) as *mut IrpExt)
    }
}

/// `IoAllocateIrp`: an IRP with `stack_size` stack locations from
/// nonpaged pool, or null without memory.
pub fn io_allocate_irp(stack_size: i8, _charge_quota: bool) -> *mut IRP {
    if stack_size <= 0 {
        return ptr::null_mut();
    }
    let size = IoSizeOfIrp(stack_size) + core::mem::size_of::<IrpExt>();
    let Ok(va) = xpool::allocate(PoolType::NonPaged, size as u64, TAG_IRP, false) else {
        return ptr::null_mut();
    };
    let irp = va as *mut IRP;
    // SAFETY: a fresh block large enough for the IRP, its stack and the extension.
    unsafe {
        initialize_irp(irp, IoSizeOfIrp(stack_size) as u16, stack_size);
        (*irp).AllocationFlags = IRP_ALLOCATED_BY_IO;
        (*irp).AllocationProcessorNumber = crate::ke::current_processor_number() as u16;
        let ext = (va as usize + IoSizeOfIrp(stack_size)) as *mut IrpExt;
        ext.write(IrpExt {
            prev: 0,
            next: 0,
            flags: 0,
            buffer_length: 0,
            thread: 0,
            event_object: 0,
            apc_context: 0,
            irp: va,
            boost: 0,
            on_thread_list: false,
            completion_apc: KApc::new(iop_complete_request_apc, None, 0, ApcMode::KernelMode),
            user_apc: KApc::new(iop_user_completion, None, 0, ApcMode::KernelMode),
        });
        IRPS.with(|l| {
            (*ext).next = l.first;
            if l.first != 0 {
                let f = ext_of(l.first as *mut IRP).unwrap_or(ptr::null_mut());
                if !f.is_null() {
                    (*f).prev = va;
                }
            }
            l.first = va;
            l.count += 1;
        });
    }
    IRPS_ALLOCATED.fetch_add(1, Ordering::Relaxed);
    irp
}

/// `IoFreeIrp`.
///
/// # Safety
/// `irp` must be an IRP from `io_allocate_irp` nobody uses any more.
pub unsafe fn io_free_irp(irp: *mut IRP) {
    // SAFETY: the caller guarantees the IRP is ours and unused.
    unsafe {
        let Some(ext) = ext_of(irp) else {
            return;
        };
        dequeue_thread_irp(irp);
        IRPS.with(|l| {
            let (prev, next) = ((*ext).prev, (*ext).next);
            if prev != 0 {
                if let Some(p) = ext_of(prev as *mut IRP) {
                    (*p).next = next;
                }
            } else {
                l.first = next;
            }
            if next != 0 {
                if let Some(n) = ext_of(next as *mut IRP) {
                    (*n).prev = prev;
                }
            }
            l.count -= 1;
        });
        (*irp).Type = 0;
        let _ = xpool::free(irp as u64, TAG_IRP);
    }
}

/// Every live IRP from `IoAllocateIrp` (kd `!irpfind`, `NtCancelIoFile`).
/// `f` runs with the list locked (at DISPATCH_LEVEL) for each.
pub fn for_each_irp(mut f: impl FnMut(*mut IRP)) {
    IRPS.with(|l| {
        let mut cur = l.first;
        while cur != 0 {
            f(cur as *mut IRP);
            // SAFETY: IRPs on the list are live while it is locked.
            cur = unsafe { ext_of(cur as *mut IRP).map_or(0, |e| (*e).next) };
        }
    });
}

/// Live IRPs from `IoAllocateIrp`.
pub fn live_irps() -> u64 {
    IRPS.with(|l| l.count)
}

fn bugcheck_irp(code: u32, irp: *mut IRP) -> ! {
    crate::ke::bugcheck::ke_bug_check_ex(code, irp as u64, 0, 0, 0)
}

/// `IofCallDriver`: sends the IRP to `device`'s driver. An IRP with no
/// stack location left stops the system with NO_MORE_IRP_STACK_LOCATIONS.
///
/// # Safety
/// `device` must be a live device object and `irp` an IRP the caller owns.
pub unsafe fn iof_call_driver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the caller guarantees both are valid.
    match unsafe { ::io::irp::call_driver(device, irp, driver::invalid_device_request) } {
        Ok(s) => s,
        Err(_) => bugcheck_irp(nt::bugcheck::NO_MORE_IRP_STACK_LOCATIONS, irp),
    }
}

/// [`iof_call_driver`] for a request its sender waits for: when the driver
/// returns STATUS_PENDING, waits (kernel mode, not alertable, no timeout)
/// for `event`, the event the IRP's completion signals. Returns what the
/// driver returned; the caller reads the final status from its status block.
///
/// # Safety
/// As for [`iof_call_driver`], and `event` must be an initialised `KEVENT`
/// that stays live until the IRP is completed.
pub unsafe fn iof_call_driver_and_wait(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    event: *mut KEVENT,
) -> NtStatus {
    // SAFETY: per the contract.
    let status = unsafe { iof_call_driver(device, irp) };
    if status == STATUS_PENDING {
        // SAFETY: per the contract `event` is live until the completion
        // signals it, which ends this wait.
        unsafe {
            crate::ke::event::ke_wait_for_event(
                event,
                crate::ke::thread::WaitReason::Executive,
                false,
                false,
                None,
            )
        };
    }
    status
}

/// `IofCompleteRequest`: runs the completion routines up the stack (the
/// `io` crate's walk); unless one keeps the IRP
/// (`STATUS_MORE_PROCESSING_REQUIRED`), a thread's request is finished
/// (`IopCompleteRequest`). Completing an IRP twice stops the system with
/// MULTIPLE_IRP_COMPLETE_REQUESTS.
///
/// # Safety
/// The caller owns `irp` and gives it up.
pub unsafe fn iof_complete_request(irp: *mut IRP, boost: i8) {
    // SAFETY: the caller owns the IRP.
    match unsafe { ::io::irp::complete_walk(irp) } {
        Ok(::io::irp::Walk::MoreProcessingRequired) => {}
        Ok(::io::irp::Walk::Completed) => {
            // SAFETY: the walk is done; the IRP is the I/O manager's again.
            unsafe {
                if let Some(ext) = ext_of(irp) {
                    if (*ext).flags & EXT_THREAD != 0 {
                        iop_complete_thread_request(irp, ext, boost);
                    } else if (*ext).flags & EXT_LOCAL != 0 {
                        if !(*irp).UserIosb.is_null() {
                            (*irp).UserIosb.write((*irp).IoStatus);
                        }
                        if !(*irp).UserEvent.is_null() {
                            crate::ke::event::ke_set_event((*irp).UserEvent, boost.max(0) as u8);
                        }
                    }
                }
            }
        }
        Err(_) => bugcheck_irp(nt::bugcheck::MULTIPLE_IRP_COMPLETE_REQUESTS, irp),
    }
}

/// The second stage of `IofCompleteRequest` for a thread's request: it
/// runs in the context of the issuing thread (`Irp->Tail.Overlay.Thread`),
/// where the caller's buffers and status block are addressable, as a
/// special kernel APC (`IopCompleteRequest`). Completion on the issuing
/// thread itself below APC_LEVEL takes the short cut and finishes at once
/// (the APC would run right away anyway); so does a request whose thread
/// has gone (`IopDisassociateThreadIrp` cleared it) or takes no APCs.
///
/// # Safety
/// The IRP is a thread's request whose stack walk is done.
unsafe fn iop_complete_thread_request(irp: *mut IRP, ext: *mut IrpExt, boost: i8) {
    // SAFETY: the IRP and its extension are ours until the APC (or the
    // short cut) frees them.
    unsafe {
        let tid = (*ext).thread;
        let here = tid == 0
            || (tid == crate::ke::sched::current_thread_id()
                && crate::ke::irql() < crate::ke::APC_LEVEL);
        if !here {
            (*ext).boost = boost;
            // SAFETY (lifetime): the APC lives in the IRP's extension, and
            // the IRP stays allocated until the APC's kernel routine frees it
            // (KiDeliverApc does not touch the APC after calling it); a
            // thread that exits first cancels and waits for its IRPs.
            let apc: &'static KApc = &*ptr::addr_of!((*ext).completion_apc);
            if crate::ke::apc::ke_insert_queue_apc(apc, tid, 0, 0, boost.max(0) as u8) {
                return;
            }
        }
        finish_thread_request(irp, ext, boost);
    }
}

/// `IopCompleteRequest`, the special kernel APC's kernel routine: runs in
/// the issuing thread at APC_LEVEL.
fn iop_complete_request_apc(apc: &KApc, _normal: &mut Option<NormalRoutine>, _ctx: &mut usize) {
    let irp = irp_of_apc(apc, false);
    // SAFETY: the APC was queued by iop_complete_thread_request for this
    // IRP, whose stack walk is done; the IRP is the I/O manager's.
    unsafe {
        if let Some(ext) = ext_of(irp) {
            finish_thread_request(irp, ext, (*ext).boost);
        }
    }
}

/// `IopUserCompletion`: the kernel routine of the caller's APC; frees the
/// IRP (its normal routine, the caller's `ApcRoutine`, runs next).
fn iop_user_completion(apc: &KApc, _normal: &mut Option<NormalRoutine>, _ctx: &mut usize) {
    // SAFETY: the user APC lives in this IRP's extension; nothing uses the
    // IRP after its APC was delivered.
    unsafe { io_free_irp(irp_of_apc(apc, true)) };
}

/// `IopUserRundown`: the caller's APC was flushed at thread exit.
fn iop_user_rundown(apc: &KApc) {
    // SAFETY: as for iop_user_completion; the APC will not run.
    unsafe { io_free_irp(irp_of_apc(apc, true)) };
}

/// The normal routine of the caller's APC for a kernel-mode request: the
/// caller's `ApcRoutine(ApcContext, IoStatusBlock, 0)` at PASSIVE_LEVEL.
/// SystemArgument1 is the status block (as in NT); SystemArgument2 carries
/// the routine's address (ntrs's `KAPC` normal routine is a Rust function,
/// so the caller's routine travels as an argument).
fn iop_kernel_apc_routine(context: usize, iosb: usize, routine: usize) {
    if routine == 0 {
        return;
    }
    // SAFETY: `routine` is the `PIO_APC_ROUTINE` a kernel-mode caller passed
    // to the service, called with its context and status block as NT does.
    unsafe {
        let f: IoApcRoutine = core::mem::transmute(routine);
        f(
            context as *mut core::ffi::c_void,
            iosb as *mut IO_STATUS_BLOCK,
            0,
        );
    }
}

/// The normal routine of the caller's APC for a user-mode request. The APC
/// is a user-mode APC (it ends an alertable user-mode wait and is taken by
/// `KeTestAlertThread`); running the user's routine needs the return to
/// user mode (`KiUserApcDispatcher`, issue 15), so this kernel stand-in
/// calls nothing. The routine address is SystemArgument2, the status block
/// SystemArgument1, the context NormalContext.
fn iop_user_mode_apc_routine(_context: usize, _iosb: usize, _routine: usize) {}

/// Finishes a thread's request in the issuing thread's context: copies a
/// buffered read's data to the caller's buffer, frees the system buffer
/// and the MDLs, stores the I/O status block, signals the events, queues
/// the completion packet to the file's completion port or the caller's APC
/// routine, and frees the IRP (the caller's APC frees it after running).
///
/// # Safety
/// The IRP is a thread's request whose stack walk is done.
unsafe fn finish_thread_request(irp: *mut IRP, ext: *mut IrpExt, boost: i8) {
    // SAFETY: the IRP and its extension are ours now.
    unsafe {
        dequeue_thread_irp(irp);
        let status = (*irp).IoStatus.Status;
        let flags = (*irp).Flags;
        if flags & IRP_BUFFERED_IO != 0 && flags & IRP_INPUT_OPERATION != 0 {
            let sys = (*irp).AssociatedIrp.SystemBuffer;
            if !status.is_error() && !sys.is_null() && !(*irp).UserBuffer.is_null() {
                let n = (*irp)
                    .IoStatus
                    .Information
                    .min((*ext).buffer_length as usize);
                ptr::copy_nonoverlapping(sys as *const u8, (*irp).UserBuffer as *mut u8, n);
            }
        }
        release_buffers(irp);
        let file = (*irp).Tail.Overlay.OriginalFileObject;
        // An error a service returned at once is the caller's result: the
        // status block, events and port are left alone (as NT does).
        let report =
            !((*ext).flags & EXT_SERVICE != 0 && status.is_error() && (*irp).PendingReturned == 0);
        if report {
            if !(*irp).UserIosb.is_null() {
                (*irp).UserIosb.write((*irp).IoStatus);
            }
            let b = boost.max(0) as u8;
            if !file.is_null() && (*file).Flags & FO_SYNCHRONOUS_IO != 0 {
                (*file).FinalStatus = status;
                crate::ke::event::ke_set_event(ptr::addr_of_mut!((*file).Event), b);
            }
            if !(*irp).UserEvent.is_null() {
                crate::ke::event::ke_set_event((*irp).UserEvent, b);
            }
            if (*ext).event_object != 0 {
                set_event_object((*ext).event_object - 1, b);
            }
            if !file.is_null()
                && !(*file).CompletionContext.is_null()
                && (*irp)
                    .Overlay
                    .AsynchronousParameters
                    .UserApcRoutine
                    .is_null()
            {
                let cc = (*file).CompletionContext;
                let _ = super::completion::post(
                    (*cc).Port as u64,
                    ::io::queue::CompletionPacket {
                        key: (*cc).Key as usize,
                        apc_context: (*ext).apc_context,
                        status,
                        information: (*irp).IoStatus.Information,
                    },
                );
            }
        }
        if (*ext).event_object != 0 {
            ob_dereference_object((*ext).event_object - 1);
        }
        if !file.is_null() {
            if let Some(id) = object_of(file as u64, IoKind::File) {
                ob_dereference_object(id);
            }
        }
        let routine = (*irp).Overlay.AsynchronousParameters.UserApcRoutine as usize;
        if report && routine != 0 && (*ext).thread != 0 {
            let user = (*irp).RequestorMode == USER_MODE;
            let (mode, normal): (ApcMode, NormalRoutine) = if user {
                (ApcMode::UserMode, iop_user_mode_apc_routine)
            } else {
                (ApcMode::KernelMode, iop_kernel_apc_routine)
            };
            let context = (*irp).Overlay.AsynchronousParameters.UserApcContext as usize;
            ptr::addr_of_mut!((*ext).user_apc).write(
                KApc::new(iop_user_completion, Some(normal), context, mode)
                    .with_rundown(iop_user_rundown),
            );
            // SAFETY (lifetime): the APC lives in the IRP's extension; the
            // IRP is freed by the APC's kernel or rundown routine only.
            let apc: &'static KApc = &*ptr::addr_of!((*ext).user_apc);
            if crate::ke::apc::ke_insert_queue_apc(
                apc,
                (*ext).thread,
                (*irp).UserIosb as usize,
                routine,
                boost.max(0) as u8,
            ) {
                return;
            }
        }
        io_free_irp(irp);
    }
}

/// Heads of the threads' IRP lists (`ETHREAD.IrpList`), by thread id: the
/// first IRP's address. IRPs link through `ThreadListEntry`, whose
/// `Flink`/`Blink` hold the next/previous IRP's address (ntrs has no
/// `ETHREAD` to hold a `LIST_ENTRY` head). As in NT, only the thread itself
/// changes its list (issuing a request, its completion APC, its exit), with
/// its APCs held off (a guarded region, or at APC_LEVEL in the APC), so no
/// lock is needed; the slots are atomics because the array is shared.
static THREAD_IRPS: [AtomicU64; crate::ke::thread::MAX_THREADS] =
    [const { AtomicU64::new(0) }; crate::ke::thread::MAX_THREADS];

/// Runs `f` with the current thread's APCs held off (its IRP list's lock).
fn with_apcs_held_off<R>(f: impl FnOnce() -> R) -> R {
    if crate::ke::irql() >= crate::ke::APC_LEVEL {
        return f();
    }
    crate::ke::apc::ke_enter_guarded_region();
    let r = f();
    crate::ke::apc::ke_leave_guarded_region();
    r
}

/// `IopQueueThreadIrp`: puts a thread's request on the issuing thread's IRP
/// list (before it is sent), so thread exit can cancel it.
///
/// # Safety
/// `irp` is a live thread request of ours, not on a list.
pub unsafe fn queue_thread_irp(irp: *mut IRP) {
    // SAFETY: the caller guarantees the IRP.
    unsafe {
        let Some(ext) = ext_of(irp) else { return };
        let tid = (*ext).thread as usize;
        if tid != crate::ke::sched::current_thread_id() as usize
            || tid >= crate::ke::thread::MAX_THREADS
            || (*ext).on_thread_list
        {
            return;
        }
        with_apcs_held_off(|| {
            let head = &THREAD_IRPS[tid];
            let first = head.load(Ordering::Relaxed);
            (*irp).ThreadListEntry.Flink = first as *mut LIST_ENTRY;
            (*irp).ThreadListEntry.Blink = ptr::null_mut();
            if first != 0 {
                (*(first as *mut IRP)).ThreadListEntry.Blink = irp as *mut LIST_ENTRY;
            }
            head.store(irp as u64, Ordering::Relaxed);
            (*ext).on_thread_list = true;
        });
    }
}

/// `IopDequeueThreadIrp`: takes the IRP off its thread's list (if on one).
///
/// # Safety
/// `irp` is a live IRP from `io_allocate_irp`.
unsafe fn dequeue_thread_irp(irp: *mut IRP) {
    // SAFETY: the caller guarantees the IRP; list members are live IRPs.
    unsafe {
        let Some(ext) = ext_of(irp) else { return };
        if !(*ext).on_thread_list {
            return;
        }
        with_apcs_held_off(|| {
            let next = (*irp).ThreadListEntry.Flink as *mut IRP;
            let prev = (*irp).ThreadListEntry.Blink as *mut IRP;
            if prev.is_null() {
                if let Some(h) = THREAD_IRPS.get((*ext).thread as usize) {
                    h.store(next as u64, Ordering::Relaxed);
                }
            } else {
                (*prev).ThreadListEntry.Flink = next as *mut LIST_ENTRY;
            }
            if !next.is_null() {
                (*next).ThreadListEntry.Blink = prev as *mut LIST_ENTRY;
            }
            InitializeListHead(ptr::addr_of_mut!((*irp).ThreadListEntry));
            (*ext).on_thread_list = false;
        });
    }
}

/// The IRPs on the current thread's list (newest first).
pub fn thread_irps() -> Vec<*mut IRP> {
    let tid = crate::ke::sched::current_thread_id() as usize;
    let mut v = Vec::new();
    with_apcs_held_off(|| {
        let mut cur = THREAD_IRPS
            .get(tid)
            .map_or(0, |h| h.load(Ordering::Relaxed));
        while cur != 0 {
            if crate::ex::pool::try_reserve(&mut v, 1).is_err() {
                break;
            }
            v.push(cur as *mut IRP);
            // SAFETY: members of this thread's list are live IRPs while its
            // APCs (which finish them) are held off.
            cur = unsafe { (*(cur as *mut IRP)).ThreadListEntry.Flink as u64 };
        }
    });
    v
}

/// `IoCancelThreadIo`: at thread exit, cancels every request on the
/// thread's IRP list and waits for them to complete (their completion APCs
/// run in this wait); after about five seconds (NT: five minutes) the ones
/// left are disassociated from the thread (`IopDisassociateThreadIrp`:
/// they complete in their completing context, their status block
/// untouched).
pub fn io_cancel_thread_io(tid: u32) {
    if tid != crate::ke::sched::current_thread_id() {
        return;
    }
    for irp in thread_irps() {
        // SAFETY: the IRP was on the list a moment ago and is still live:
        // a request on this thread's list is finished only in this thread
        // (its completion APC, or the short cut on this thread), and this
        // thread is here, not in a wait that would deliver the APC.
        unsafe { io_cancel_irp(irp) };
    }
    for _ in 0..500 {
        if thread_irps().is_empty() {
            return;
        }
        crate::ke::sched::ke_delay_execution_thread(100_000);
    }
    with_apcs_held_off(|| {
        let Some(head) = THREAD_IRPS.get(tid as usize) else {
            return;
        };
        let mut cur = head.swap(0, Ordering::Relaxed);
        while cur != 0 {
            let irp = cur as *mut IRP;
            // SAFETY: members of this thread's list are live IRPs while
            // its APCs are held off.
            unsafe {
                cur = (*irp).ThreadListEntry.Flink as u64;
                InitializeListHead(ptr::addr_of_mut!((*irp).ThreadListEntry));
                (*irp).Tail.Overlay.Thread = ptr::null_mut();
                (*irp).UserIosb = ptr::null_mut();
                (*irp).UserEvent = ptr::null_mut();
                (*irp).UserBuffer = ptr::null_mut();
                if let Some(ext) = ext_of(irp) {
                    (*ext).on_thread_list = false;
                    (*ext).thread = 0;
                }
            }
        }
    });
}

/// Frees an IRP's system buffer (`IRP_DEALLOCATE_BUFFER`) and unlocks and
/// frees its MDLs.
///
/// # Safety
/// The IRP is ours and no driver uses its buffers any more.
pub unsafe fn release_buffers(irp: *mut IRP) {
    // SAFETY: the caller guarantees the IRP is ours.
    unsafe {
        let sys = (*irp).AssociatedIrp.SystemBuffer;
        if (*irp).Flags & IRP_DEALLOCATE_BUFFER != 0 && !sys.is_null() {
            let _ = xpool::free(sys as u64, TAG_BUFFER);
            (*irp).AssociatedIrp.SystemBuffer = ptr::null_mut();
            (*irp).Flags &= !IRP_DEALLOCATE_BUFFER;
        }
        let mut mdl = (*irp).MdlAddress;
        while !mdl.is_null() {
            let next = (*mdl).Next;
            if (*mdl).MdlFlags & MDL_PAGES_LOCKED != 0 {
                super::mdl::mm_unlock_pages(mdl);
            }
            super::mdl::io_free_mdl(mdl);
            mdl = next;
        }
        (*irp).MdlAddress = ptr::null_mut();
    }
}

/// `IopCancelSpinLock`.
static CANCEL_LOCK: KSpinLock = KSpinLock::new();

/// `IoAcquireCancelSpinLock`: returns the IRQL to restore.
pub fn io_acquire_cancel_spin_lock() -> u8 {
    CANCEL_LOCK.acquire()
}

/// `IoReleaseCancelSpinLock`.
pub fn io_release_cancel_spin_lock(irql: u8) {
    CANCEL_LOCK.release(irql)
}

/// `IoCancelIrp`: marks the IRP cancelled and, if its holder set a cancel
/// routine, calls it (with the cancel spin lock held, `CancelIrql` the
/// IRQL to restore); true if a routine was called.
///
/// # Safety
/// `irp` must be a live IRP.
pub unsafe fn io_cancel_irp(irp: *mut IRP) -> bool {
    let old = CANCEL_LOCK.acquire();
    // SAFETY: the caller guarantees the IRP is live; the cancel routine
    // taken out atomically makes the IRP ours to hand to it.
    unsafe {
        (*irp).Cancel = 1;
        match IoSetCancelRoutine(irp, None) {
            Some(routine) => {
                (*irp).CancelIrql = old;
                let stack = IoGetCurrentIrpStackLocation(irp);
                let dev = if (*irp).CurrentLocation <= (*irp).StackCount {
                    (*stack).DeviceObject
                } else {
                    ptr::null_mut()
                };
                routine(dev, irp);
                true
            }
            None => {
                CANCEL_LOCK.release(old);
                false
            }
        }
    }
}

/// Cancels the thread requests of `file` (`NtCancelIoFile`) issued by
/// `thread` (None: any thread); returns how many had a cancel routine.
pub fn cancel_file_requests(file: *mut FILE_OBJECT, thread: Option<u32>) -> usize {
    let mut taken: Vec<(*mut IRP, DRIVER_CANCEL)> = Vec::new();
    let _ = crate::ex::pool::try_reserve(&mut taken, 64);
    for_each_irp(|irp| {
        // SAFETY: IRPs on the locked list are live; taking the cancel
        // routine out atomically makes the IRP ours to hand to it.
        unsafe {
            let Some(ext) = ext_of(irp) else { return };
            if (*ext).flags & EXT_THREAD == 0
                || (*irp).Tail.Overlay.OriginalFileObject != file
                || thread.is_some_and(|t| t != (*ext).thread)
            {
                return;
            }
            (*irp).Cancel = 1;
            if taken.len() < taken.capacity() {
                if let Some(r) = IoSetCancelRoutine(irp, None) {
                    taken.push((irp, r));
                }
            }
        }
    });
    let n = taken.len();
    for (irp, routine) in taken {
        let old = CANCEL_LOCK.acquire();
        // SAFETY: the cancel routine was ours to call (see above).
        unsafe {
            (*irp).CancelIrql = old;
            let stack = IoGetCurrentIrpStackLocation(irp);
            routine((*stack).DeviceObject, irp);
        }
    }
    n
}

/// The common part of `IoBuildSynchronousFsdRequest`,
/// `IoBuildAsynchronousFsdRequest`, `IoBuildDeviceIoControlRequest`: an IRP
/// for the top of `device`'s stack... (the device given, as NT does) with
/// the next location filled by `fill`. Buffers follow the device's
/// `DO_BUFFERED_IO` / `DO_DIRECT_IO` for reads and writes.
///
/// # Safety
/// `device` must be a live device object; buffers valid for their lengths.
#[allow(clippy::too_many_arguments)]
pub unsafe fn build_request(
    major: u8,
    device: *mut DEVICE_OBJECT,
    buffer: *mut core::ffi::c_void,
    length: u32,
    offset: Option<i64>,
    event: *mut KEVENT,
    iosb: *mut IO_STATUS_BLOCK,
    thread: bool,
) -> *mut IRP {
    // SAFETY: the caller guarantees the device is live.
    let irp = io_allocate_irp(unsafe { (*device).StackSize }, false);
    if irp.is_null() {
        return irp;
    }
    // SAFETY: a fresh IRP; the caller's buffers are valid.
    unsafe {
        let ext = ext_of(irp).unwrap_or(ptr::null_mut());
        if thread && !ext.is_null() {
            (*ext).flags = EXT_THREAD;
            (*ext).thread = crate::ke::sched::current_thread_id();
            queue_thread_irp(irp);
        }
        (*irp).UserIosb = iosb;
        (*irp).UserEvent = event;
        (*irp).Tail.Overlay.Thread =
            crate::ke::sched::current_thread().address() as *mut core::ffi::c_void;
        let stack = IoGetNextIrpStackLocation(irp);
        (*stack).MajorFunction = major;
        if major == IRP_MJ_READ || major == IRP_MJ_WRITE {
            (*stack).Parameters.Read.Length = length;
            (*stack).Parameters.Read.ByteOffset = offset.unwrap_or(0);
            if setup_transfer(irp, device, buffer, length, major == IRP_MJ_READ).is_err() {
                release_buffers(irp);
                io_free_irp(irp);
                return ptr::null_mut();
            }
        }
    }
    irp
}

/// Sets up the buffers of a read (`input`) or write by the device's I/O
/// method: a system buffer (`DO_BUFFERED_IO`), a locked MDL
/// (`DO_DIRECT_IO`), or the caller's buffer as it is (neither).
///
/// # Safety
/// `irp` is a fresh IRP of ours; `buffer` valid for `length` bytes.
pub unsafe fn setup_transfer(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    buffer: *mut core::ffi::c_void,
    length: u32,
    input: bool,
) -> Result<(), NtStatus> {
    // SAFETY: the caller guarantees the IRP, device and buffer.
    unsafe {
        let flags = (*device).Flags;
        (*irp).UserBuffer = buffer;
        if flags & DO_BUFFERED_IO != 0 {
            if length != 0 {
                let sys = xpool::allocate(PoolType::NonPaged, length as u64, TAG_BUFFER, false)
                    .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
                if !input {
                    ptr::copy_nonoverlapping(buffer as *const u8, sys as *mut u8, length as usize);
                }
                (*irp).AssociatedIrp.SystemBuffer = sys as *mut core::ffi::c_void;
                (*irp).Flags |= IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER;
                if let Some(ext) = ext_of(irp) {
                    (*ext).buffer_length = length;
                }
            }
            if input {
                (*irp).Flags |= IRP_INPUT_OPERATION;
            }
        } else if flags & DO_DIRECT_IO != 0 && length != 0 {
            let mdl = super::mdl::io_allocate_mdl(buffer, length, false, irp);
            if mdl.is_null() {
                return Err(STATUS_INSUFFICIENT_RESOURCES);
            }
            let op = if input {
                IO_WRITE_ACCESS
            } else {
                IO_READ_ACCESS
            };
            if let Err(e) = super::mdl::mm_probe_and_lock_pages(mdl, op) {
                (*irp).MdlAddress = ptr::null_mut();
                super::mdl::io_free_mdl(mdl);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// `IoBuildDeviceIoControlRequest`: a thread's device I/O control request
/// (`IRP_MJ_DEVICE_CONTROL` or, `internal`, `IRP_MJ_INTERNAL_DEVICE_CONTROL`)
/// with buffers set up by the code's transfer method.
///
/// # Safety
/// `device` live; buffers valid for their lengths; `event`/`iosb` live until completion.
#[allow(clippy::too_many_arguments)]
pub unsafe fn io_build_device_io_control_request(
    code: u32,
    device: *mut DEVICE_OBJECT,
    input: *mut core::ffi::c_void,
    input_length: u32,
    output: *mut core::ffi::c_void,
    output_length: u32,
    internal: bool,
    event: *mut KEVENT,
    iosb: *mut IO_STATUS_BLOCK,
) -> *mut IRP {
    let major = if internal {
        IRP_MJ_INTERNAL_DEVICE_CONTROL
    } else {
        IRP_MJ_DEVICE_CONTROL
    };
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let irp = build_request(major, device, ptr::null_mut(), 0, None, event, iosb, true);
        if irp.is_null() {
            return irp;
        }
        if setup_ioctl(irp, code, input, input_length, output, output_length).is_err() {
            release_buffers(irp);
            io_free_irp(irp);
            return ptr::null_mut();
        }
        irp
    }
}

/// Fills the next stack location of an I/O control request and sets up
/// its buffers by the code's method: `METHOD_BUFFERED` one system buffer
/// for both (input copied in, output copied back), `METHOD_IN_DIRECT` /
/// `METHOD_OUT_DIRECT` the input in a system buffer and the output
/// described by a locked MDL, `METHOD_NEITHER` the caller's pointers
/// (`Type3InputBuffer`, `UserBuffer`).
///
/// # Safety
/// A fresh IRP of ours; buffers valid for their lengths.
pub unsafe fn setup_ioctl(
    irp: *mut IRP,
    code: u32,
    input: *mut core::ffi::c_void,
    input_length: u32,
    output: *mut core::ffi::c_void,
    output_length: u32,
) -> Result<(), NtStatus> {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let stack = IoGetNextIrpStackLocation(irp);
        (*stack).Parameters.DeviceIoControl.IoControlCode = code;
        (*stack).Parameters.DeviceIoControl.InputBufferLength = input_length;
        (*stack).Parameters.DeviceIoControl.OutputBufferLength = output_length;
        let ext = ext_of(irp);
        match METHOD_FROM_CTL_CODE(code) {
            METHOD_BUFFERED => {
                let len = input_length.max(output_length);
                if len != 0 {
                    let sys = xpool::allocate(PoolType::NonPaged, len as u64, TAG_BUFFER, true)
                        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
                    if input_length != 0 && !input.is_null() {
                        ptr::copy_nonoverlapping(
                            input as *const u8,
                            sys as *mut u8,
                            input_length as usize,
                        );
                    }
                    (*irp).AssociatedIrp.SystemBuffer = sys as *mut core::ffi::c_void;
                    (*irp).Flags |= IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER;
                    if output_length != 0 {
                        (*irp).Flags |= IRP_INPUT_OPERATION;
                    }
                    if let Some(e) = ext {
                        (*e).buffer_length = output_length;
                    }
                }
                (*irp).UserBuffer = output;
            }
            METHOD_IN_DIRECT | METHOD_OUT_DIRECT => {
                if input_length != 0 && !input.is_null() {
                    let sys =
                        xpool::allocate(PoolType::NonPaged, input_length as u64, TAG_BUFFER, false)
                            .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
                    ptr::copy_nonoverlapping(
                        input as *const u8,
                        sys as *mut u8,
                        input_length as usize,
                    );
                    (*irp).AssociatedIrp.SystemBuffer = sys as *mut core::ffi::c_void;
                    (*irp).Flags |= IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER;
                    if let Some(e) = ext {
                        (*e).buffer_length = 0;
                    }
                }
                if output_length != 0 && !output.is_null() {
                    let mdl = super::mdl::io_allocate_mdl(output, output_length, false, irp);
                    if mdl.is_null() {
                        return Err(STATUS_INSUFFICIENT_RESOURCES);
                    }
                    let op = if METHOD_FROM_CTL_CODE(code) == METHOD_IN_DIRECT {
                        IO_READ_ACCESS
                    } else {
                        IO_WRITE_ACCESS
                    };
                    super::mdl::mm_probe_and_lock_pages(mdl, op)?;
                }
            }
            _ => {
                (*stack).Parameters.DeviceIoControl.Type3InputBuffer = input;
                (*irp).UserBuffer = output;
            }
        }
        Ok(())
    }
}

/// Signals an event object (`NtReadFile`'s `Event`) by its object id.
pub fn set_event_object(id: ObjectId, boost: u8) {
    let idx = crate::ob::object::with_body(id, |b| match b.body {
        ObjectBody::Dispatcher(i) => Some(i),
        _ => None,
    })
    .flatten();
    if let Some(i) = idx {
        crate::ke::wait::with_db(|st| {
            let _ = st
                .db
                .set_event(::ke::objects::ObjectId(i), boost, &mut st.unwaits);
        });
    }
}
