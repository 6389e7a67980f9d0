//! Boot tests of the end of a thread's request (*Windows Internals*, Part 1,
//! ch. 6, "Completing an IRP"): the second stage runs as a special kernel
//! APC in the issuing thread, the IRP sits on that thread's IRP list, the
//! caller's `ApcRoutine` is queued as an APC (kernel mode: a normal kernel
//! APC that calls it; user mode: a user APC an alertable wait takes), and
//! thread exit cancels the thread's requests (`IoCancelThreadIo`).

use super::file::{nt_read_file, RequestArgs};
use super::irp::{live_irps, thread_irps};
use super::tests::{complete_pending, open, setup, CANCELS, PENDING, PEND_OFFSET};
use crate::ke::apc::{self, ApcMode};
use crate::ke::sched;
use crate::ktest::{check, wait_until, Test, TestResult};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use ::ke::apc::ApcKind;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use nt::status::*;
use wdk::*;

static APC_COUNT: AtomicU32 = AtomicU32::new(0);
static APC_CONTEXT: AtomicU64 = AtomicU64::new(0);
static APC_IOSB: AtomicU64 = AtomicU64::new(0);
static APC_THREAD: AtomicU32 = AtomicU32::new(0);
static APC_IOSB_STATUS: AtomicU32 = AtomicU32::new(0);

/// The caller's `PIO_APC_ROUTINE`.
unsafe extern "system" fn apc_routine(ctx: *mut c_void, iosb: *mut IO_STATUS_BLOCK, _r: u32) {
    APC_CONTEXT.store(ctx as u64, Ordering::SeqCst);
    APC_IOSB.store(iosb as u64, Ordering::SeqCst);
    APC_THREAD.store(sched::current_thread_id(), Ordering::SeqCst);
    // SAFETY: the I/O manager passes the caller's status block, written
    // before the APC was queued.
    APC_IOSB_STATUS.store(unsafe { (*iosb).Status.as_u32() }, Ordering::SeqCst);
    APC_COUNT.fetch_add(1, Ordering::SeqCst);
}

fn complete_later() {
    crate::ex::worker::ex_queue_work_item(
        crate::ex::worker::WorkQueueItem {
            routine: complete_pending,
            parameter: 0,
        },
        crate::ex::worker::WorkQueueType::DelayedWorkQueue,
    );
}

fn iosb_now(iosb: &IO_STATUS_BLOCK) -> (NtStatus, usize) {
    // SAFETY: a live status block another context may have written.
    let v = unsafe { ptr::read_volatile(iosb) };
    (v.Status, v.Information)
}

/// An asynchronous kernel-mode read completed by a worker thread: the IRP
/// is on the issuing thread's list with `Tail.Overlay.Thread` its thread;
/// while the thread is in a guarded region the completion waits as a
/// queued special kernel APC (status block untouched); leaving the region
/// runs it in this thread, and then the caller's ApcRoutine (a normal
/// kernel APC, kernel-mode caller) with its context and status block.
fn t_completion_apc() -> TestResult {
    setup()?;
    let h = open("\\Device\\KTestNeither", 0).map_err(|_| "open")?;
    let me = sched::current_thread_id();
    let mut iosb = IO_STATUS_BLOCK {
        Status: STATUS_PENDING,
        Information: 99,
    };
    let iosb_addr = ptr::addr_of_mut!(iosb);
    let mut buf = [0u8; 4];
    let a = RequestArgs {
        event: None,
        apc_context: 0x1234,
        apc_routine: Some(apc_routine),
        iosb: iosb_addr,
        mode: Mode::KernelMode,
    };
    let count = APC_COUNT.load(Ordering::SeqCst);
    apc::ke_enter_guarded_region();
    let r = (|| {
        let s = nt_read_file(h, &a, buf.as_mut_ptr().cast(), 4, Some(PEND_OFFSET), 0);
        check(s == Ok(STATUS_PENDING), "the read is not pending")?;
        let irps = thread_irps();
        check(irps.len() == 1, "the IRP is not on the thread's IRP list")?;
        // SAFETY: the IRP is pending in the test driver.
        let thread = unsafe { (*irps[0]).Tail.Overlay.Thread } as u64;
        check(
            thread == sched::current_thread().address(),
            "Tail.Overlay.Thread is not the issuing thread",
        )?;
        complete_later();
        check(
            wait_until(2000, || {
                PENDING.with(|p| p.is_empty())
                    && apc::ke_queued_apcs(me)
                        .iter()
                        .any(|q| q.1 == ApcKind::SpecialKernel)
            }),
            "the completion did not queue a special kernel APC to the issuing thread",
        )?;
        check(
            iosb_now(&iosb) == (STATUS_PENDING, 99),
            "the status block was written outside the issuing thread",
        )?;
        check(
            thread_irps().len() == 1,
            "the IRP left the thread's list before its APC ran",
        )
    })();
    apc::ke_leave_guarded_region();
    r?;
    check(
        wait_until(1000, || APC_COUNT.load(Ordering::SeqCst) == count + 1),
        "the caller's ApcRoutine did not run",
    )?;
    check(
        iosb_now(&iosb) == (STATUS_SUCCESS, 4),
        "the APC did not write the status block",
    )?;
    check(
        APC_CONTEXT.load(Ordering::SeqCst) == 0x1234
            && APC_IOSB.load(Ordering::SeqCst) == iosb_addr as u64
            && APC_IOSB_STATUS.load(Ordering::SeqCst) == STATUS_SUCCESS.as_u32(),
        "ApcRoutine got the wrong context or status block",
    )?;
    check(
        APC_THREAD.load(Ordering::SeqCst) == me,
        "ApcRoutine ran outside the issuing thread",
    )?;
    check(
        thread_irps().is_empty(),
        "the IRP stayed on the thread's list",
    )?;
    let _ = nt_close(h);
    Ok(())
}

/// A user-mode request's ApcRoutine is a user APC: queued (context,
/// status block, routine) once the completion ran, kept until an alertable
/// user-mode wait takes it (STATUS_USER_APC), which frees the IRP; the
/// routine (a user address) is never called in kernel mode.
fn t_user_apc_queued() -> TestResult {
    setup()?;
    let h = super::file::nt_create_file(
        "\\Device\\KTestNeither",
        &super::file::OpenPacket {
            desired: FILE_READ_DATA,
            share: FILE_SHARE_VALID_FLAGS,
            disposition: FILE_OPEN,
            options: 0,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: Mode::UserMode,
        },
    )
    .map(|(h, _)| h)
    .map_err(|_| "user-mode open")?;
    let me = sched::current_thread_id();
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let iosb_addr = ptr::addr_of_mut!(iosb);
    let mut buf = [0u8; 4];
    // A "user-mode" routine: never called by the kernel.
    let routine: super::irp::IoApcRoutine = apc_routine;
    let a = RequestArgs {
        event: None,
        apc_context: 0x77,
        apc_routine: Some(routine),
        iosb: iosb_addr,
        mode: Mode::UserMode,
    };
    let count = APC_COUNT.load(Ordering::SeqCst);
    let irps_before = live_irps();
    let s = nt_read_file(h, &a, buf.as_mut_ptr().cast(), 4, Some(PEND_OFFSET), 0);
    check(s == Ok(STATUS_PENDING), "the user-mode read is not pending")?;
    complete_later();
    let queued = || {
        apc::ke_queued_apcs(me).into_iter().find(|q| {
            q.1 == ApcKind::User && q.0.mode == ApcMode::UserMode && q.0.normal_context == 0x77
        })
    };
    check(
        wait_until(2000, || queued().is_some()),
        "no user APC was queued for the ApcRoutine",
    )?;
    let q = queued().ok_or("user APC vanished")?;
    check(
        q.2 == iosb_addr as usize && q.3 == routine as usize,
        "the user APC's arguments are not (status block, routine)",
    )?;
    check(
        iosb_now(&iosb) == (STATUS_SUCCESS, 4),
        "the status block was not written before the user APC",
    )?;
    check(
        live_irps() == irps_before + 1,
        "the IRP was freed before its user APC ran",
    )?;
    // A non-alertable wait leaves it queued; KeTestAlertThread sees it.
    sched::ke_delay_execution_thread_ex(true, false, crate::ktest::MS);
    check(queued().is_some(), "a non-alertable wait took the user APC")?;
    let _ = apc::ke_test_alert_thread(ApcMode::UserMode);
    let w = sched::ke_delay_execution_thread_ex(true, true, 100 * crate::ktest::MS);
    check(
        w == STATUS_USER_APC,
        "an alertable user-mode wait did not end with STATUS_USER_APC",
    )?;
    check(queued().is_none(), "the user APC is still queued")?;
    check(
        live_irps() == irps_before,
        "the user APC did not free the IRP",
    )?;
    check(
        APC_COUNT.load(Ordering::SeqCst) == count,
        "a user-mode ApcRoutine was called in kernel mode",
    )?;
    let _ = nt_close(h);
    Ok(())
}

static EXIT_HANDLE: AtomicU64 = AtomicU64::new(0);
static EXIT_IOSB: AtomicU64 = AtomicU64::new(0);

fn issue_and_exit(_: usize) {
    let h = EXIT_HANDLE.load(Ordering::SeqCst);
    let mut buf = [0u8; 4];
    // The status block lives in pool: the thread's stack goes away.
    let a = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: EXIT_IOSB.load(Ordering::SeqCst) as *mut IO_STATUS_BLOCK,
        mode: Mode::KernelMode,
    };
    let r = nt_read_file(h, &a, buf.as_mut_ptr().cast(), 4, Some(PEND_OFFSET + 1), 0);
    EXIT_READ.store(r.unwrap_or_else(|e| e).as_u32(), Ordering::SeqCst);
}

static EXIT_READ: AtomicU32 = AtomicU32::new(0);

/// A thread that exits with a request pending: `IoCancelThreadIo` cancels
/// it (the driver's cancel routine runs), its completion APC runs in the
/// exiting thread, and nothing is left on any list.
fn t_thread_exit_cancels_io() -> TestResult {
    setup()?;
    let h = open("\\Device\\KTestNeither", 0).map_err(|_| "open")?;
    let iosb = alloc::boxed::Box::new(IO_STATUS_BLOCK {
        Status: STATUS_PENDING,
        Information: 99,
    });
    let iosb = alloc::boxed::Box::into_raw(iosb);
    EXIT_HANDLE.store(h, Ordering::SeqCst);
    EXIT_IOSB.store(iosb as u64, Ordering::SeqCst);
    let cancels = CANCELS.load(Ordering::SeqCst);
    let irps = live_irps();
    EXIT_READ.store(0, Ordering::SeqCst);
    let r = (|| {
        let t = crate::ke::thread::create_system_thread("io-exit", 8, u64::MAX, issue_and_exit, 0)
            .map_err(|_| "thread not created")?;
        sched::ready_thread(t).map_err(|_| "thread not started")?;
        check(
            wait_until(3000, || EXIT_READ.load(Ordering::SeqCst) != 0),
            "the thread did not issue its read",
        )?;
        check(
            EXIT_READ.load(Ordering::SeqCst) == STATUS_PENDING.as_u32(),
            "the thread's read was not pending",
        )?;
        check(
            wait_until(3000, || {
                live_irps() == irps && PENDING.with(|p| p.is_empty())
            }),
            "the exiting thread's request was not cancelled and completed",
        )?;
        check(
            CANCELS.load(Ordering::SeqCst) == cancels + 1,
            "the driver's cancel routine did not run",
        )?;
        // SAFETY: the box is ours; the request is gone.
        let st = unsafe { ptr::read_volatile(iosb) };
        check(
            st.Status == STATUS_CANCELLED,
            "the status block does not say STATUS_CANCELLED",
        )
    })();
    if r.is_ok() {
        // SAFETY: from Box::into_raw above; the request that used it is gone
        // (on failure it is leaked rather than freed under a live request).
        drop(unsafe { alloc::boxed::Box::from_raw(iosb) });
    }
    let _ = nt_close(h);
    r
}

/// Boot tests of completion in the issuing thread.
pub const TESTS: &[Test] = &[
    ("io.irp.completion_apc_in_issuing_thread", t_completion_apc),
    ("io.irp.user_apc_routine_queued", t_user_apc_queued),
    ("io.irp.thread_exit_cancels_io", t_thread_exit_cancels_io),
];
