//! Boot tests of the process manager (`ps.` prefix).

use super::services::*;
use super::*;
use crate::ktest::{check, sleep_ms, TestResult};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;

/// Waits on a handle with a timeout in milliseconds.
fn wait_ms(h: u64, ms: u64) -> NtStatus {
    crate::ex::event::nt_wait_for_single_object(h, false, Some(ms * 10_000), Mode::KernelMode)
}

static NOTIFIED_CREATE: AtomicU32 = AtomicU32::new(0);
static NOTIFIED_EXIT: AtomicU32 = AtomicU32::new(0);
static THREAD_CREATE: AtomicU32 = AtomicU32::new(0);
static THREAD_EXIT: AtomicU32 = AtomicU32::new(0);

fn process_notify(_p: &EProcess, pid: u32, parent: Option<u32>) {
    match parent {
        Some(_) => NOTIFIED_CREATE.store(pid, Ordering::SeqCst),
        None => NOTIFIED_EXIT.store(pid, Ordering::SeqCst),
    }
}

fn thread_notify(_pid: u32, tid: u32, create: bool) {
    if create {
        THREAD_CREATE.store(tid, Ordering::SeqCst);
    } else {
        THREAD_EXIT.store(tid, Ordering::SeqCst);
    }
}

/// A thread that waits until told to stop (`ctx`: an `AtomicU32` flag).
fn waiter(ctx: usize) {
    // SAFETY: the tests pass the address of a static AtomicU32.
    let flag = unsafe { &*(ctx as *const AtomicU32) };
    while flag.load(Ordering::SeqCst) == 0 {
        crate::ke::sched::ke_delay_execution_thread(10_000);
    }
}

/// A thread that counts while it runs (`ctx`: an `AtomicU32` counter).
fn counter(ctx: usize) {
    // SAFETY: the tests pass the address of a static AtomicU32.
    let c = unsafe { &*(ctx as *const AtomicU32) };
    loop {
        c.fetch_add(1, Ordering::SeqCst);
        crate::ke::sched::ke_delay_execution_thread(10_000);
    }
}

/// A terminated thread is freed by the next thread switched in on its
/// processor (the reaper's work in NT); an idle processor switches only when
/// given work, so the tests give each one a thread that returns at once.
fn kick_reapers() {
    for cpu in 0..crate::ke::processor_count().min(64) {
        let _ = crate::ke::sched::start_system_thread("reap", 1, 1 << cpu, |_| {}, 0);
    }
}

/// Drops the creation reference `ps_create_thread` gave the caller.
fn release(t: Arc<EThread>) {
    ob_dereference_object(t.object());
}

fn exit_with(ctx: usize) {
    ps_terminate_current_thread(NtStatus(ctx as i32))
}

fn process_lifecycle() -> TestResult {
    let pool0 = crate::ex::pool::POOL.bytes_in_use();
    let (h0, _) = crate::ob::handle::handle_counts();
    check(
        ps_set_create_process_notify_routine(ProcessNotify::Kernel(process_notify), false)
            == STATUS_SUCCESS,
        "notify registration",
    )?;
    let h = nt_create_process_ex(
        None,
        PROCESS_ALL_ACCESS,
        0,
        false,
        "ktest.exe",
        Mode::KernelMode,
    )
    .map_err(|_| "NtCreateProcessEx failed")?;
    let (r, p) = reference_process(h, PROCESS_QUERY_INFORMATION, Mode::KernelMode)
        .map_err(|_| "process handle does not reference a process")?;
    let pid = p.pid();
    drop(r);
    check(
        pid != 0 && pid.is_multiple_of(4),
        "process id not a multiple of 4",
    )?;
    check(
        p.inherited_from == crate::ob::handle::SYSTEM_PROCESS_ID,
        "parent is not System",
    )?;
    check(
        NOTIFIED_CREATE.load(Ordering::SeqCst) == pid,
        "create notify not called",
    )?;
    // Open it again by client id; a bad id is STATUS_INVALID_CID.
    let h2 = nt_open_process(
        PROCESS_QUERY_INFORMATION | 0x0010_0000,
        0,
        pid,
        Mode::KernelMode,
    )
    .map_err(|_| "NtOpenProcess by CID failed")?;
    check(
        nt_open_process(PROCESS_ALL_ACCESS, 0, pid + 0x1000, Mode::KernelMode)
            == Err(STATUS_INVALID_CID),
        "a free CID opened",
    )?;
    check(
        crate::se::ps_reference_primary_token(pid).is_some_and(|t| {
            ob_dereference_object(t);
            true
        }),
        "no primary token",
    )?;
    // A thread in it keeps it alive; it exits with its own status.
    static STOP: AtomicU32 = AtomicU32::new(0);
    STOP.store(0, Ordering::SeqCst);
    let t = ps_create_thread(
        &p,
        "ktest-waiter",
        8,
        waiter,
        &STOP as *const _ as usize,
        false,
    )
    .map_err(|_| "thread creation failed")?;
    check(t.tid().is_multiple_of(4) && t.tid() != pid, "thread id")?;
    check(p.active_threads() == 1, "active threads")?;
    check(
        wait_ms(h2, 30) == STATUS_TIMEOUT,
        "process signaled while its thread runs",
    )?;
    // Terminate: the thread takes the APC, the process exits and is signaled.
    check(
        nt_terminate_process(h, NtStatus(0x1234), Mode::KernelMode) == STATUS_SUCCESS,
        "NtTerminateProcess",
    )?;
    check(
        wait_ms(h2, 2000) == STATUS_WAIT_0,
        "process not signaled after terminate",
    )?;
    check(p.exit_status() == NtStatus(0x1234), "exit status not kept")?;
    check(t.exit_status() == NtStatus(0x1234), "thread exit status")?;
    check(
        NOTIFIED_EXIT.load(Ordering::SeqCst) == pid,
        "exit notify not called",
    )?;
    check(
        nt_terminate_process(h, STATUS_SUCCESS, Mode::KernelMode) == STATUS_PROCESS_IS_TERMINATING,
        "second terminate",
    )?;
    release(t);
    drop(p);
    check(
        nt_close(h) == STATUS_SUCCESS && nt_close(h2) == STATUS_SUCCESS,
        "close",
    )?;
    let _ = ps_set_create_process_notify_routine(ProcessNotify::Kernel(process_notify), true);
    // The thread is reaped by the next switch on its processor and the
    // object deleted by the last dereference (maybe by a worker).
    let gone = || match ps_lookup_process_by_process_id(pid) {
        Ok(id) => {
            ob_dereference_object(id);
            false
        }
        Err(e) => e == STATUS_INVALID_CID,
    };
    for _ in 0..100 {
        kick_reapers();
        if gone() && crate::ex::pool::POOL.bytes_in_use() <= pool0 {
            break;
        }
        sleep_ms(10);
    }
    check(gone(), "the process object outlived its handles")?;
    check(
        crate::ob::handle::handle_counts().0 == h0,
        "handle count changed",
    )?;
    Ok(())
}

/// Pool usage back where it started after create/terminate/close rounds:
/// a leak grows it every round, others' allocations only sometimes.
fn no_leak() -> TestResult {
    static STOP: AtomicU32 = AtomicU32::new(0);
    let round = || -> TestResult {
        let h = nt_create_process_ex(
            None,
            PROCESS_ALL_ACCESS,
            0,
            false,
            "leak.exe",
            Mode::KernelMode,
        )
        .map_err(|_| "create")?;
        let (r, p) = reference_process(h, 0, Mode::KernelMode).map_err(|_| "reference")?;
        drop(r);
        STOP.store(0, Ordering::SeqCst);
        let t = ps_create_thread(&p, "leak", 8, waiter, &STOP as *const _ as usize, false)
            .map_err(|_| "thread")?;
        STOP.store(1, Ordering::SeqCst);
        check(
            wait_ms(h, 2000) == STATUS_WAIT_0,
            "process did not exit with its thread",
        )?;
        release(t);
        drop(p);
        check(nt_close(h) == STATUS_SUCCESS, "close")?;
        kick_reapers();
        sleep_ms(20);
        Ok(())
    };
    round()?;
    for _ in 0..4 {
        let before = crate::ex::pool::POOL.bytes_in_use();
        round()?;
        round()?;
        if crate::ex::pool::POOL.bytes_in_use() <= before {
            return Ok(());
        }
    }
    Err("pool grew on every create/exit round")
}

fn thread_suspend_resume() -> TestResult {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let system = system_process().ok_or("no System process")?;
    let t = ps_create_thread(
        system,
        "ktest-count",
        8,
        counter,
        &COUNT as *const _ as usize,
        true,
    )
    .map_err(|_| "create suspended")?;
    check(
        t.suspend_count.load(Ordering::SeqCst) == 1,
        "not created suspended",
    )?;
    sleep_ms(30);
    check(COUNT.load(Ordering::SeqCst) == 0, "a suspended thread ran")?;
    let h = open_object_for_test(&t)?;
    check(
        nt_suspend_thread(h, Mode::KernelMode) == Ok(1),
        "second suspend count",
    )?;
    check(
        nt_resume_thread(h, Mode::KernelMode) == Ok(2),
        "resume count 2",
    )?;
    sleep_ms(30);
    check(
        COUNT.load(Ordering::SeqCst) == 0,
        "ran with suspend count 1",
    )?;
    check(
        nt_resume_thread(h, Mode::KernelMode) == Ok(1),
        "resume count 1",
    )?;
    sleep_ms(50);
    let ran = COUNT.load(Ordering::SeqCst);
    check(ran > 0, "did not run after the last resume")?;
    check(
        nt_resume_thread(h, Mode::KernelMode) == Ok(0),
        "resume of a running thread",
    )?;
    check(
        nt_suspend_thread(h, Mode::KernelMode) == Ok(0),
        "suspend running",
    )?;
    sleep_ms(40);
    let a = COUNT.load(Ordering::SeqCst);
    sleep_ms(40);
    check(COUNT.load(Ordering::SeqCst) == a, "ran while suspended")?;
    check(
        nt_terminate_thread(h, NtStatus(7), Mode::KernelMode) == STATUS_SUCCESS,
        "terminate a suspended thread",
    )?;
    check(wait_ms(h, 2000) == STATUS_WAIT_0, "thread not signaled")?;
    check(t.exit_status() == NtStatus(7), "thread exit status")?;
    release(t);
    check(nt_close(h) == STATUS_SUCCESS, "close")
}

/// Threads created suspended, one after another, each terminated and freed
/// before the next: none may run. (A Thread object's slot was once reused
/// before its delete procedure ran, which then removed the new thread's
/// `EThread` from the registry; the new thread found no `EThread`, skipped
/// its suspend wait and ran.)
fn suspended_thread_churn() -> TestResult {
    static C: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];
    let system = system_process().ok_or("no System process")?;
    let mut ran = 0;
    for i in 0..200usize {
        let c = &C[i % C.len()];
        c.store(0, Ordering::SeqCst);
        let t = ps_create_thread(
            system,
            "ktest-churn",
            8,
            counter,
            c as *const _ as usize,
            true,
        )
        .map_err(|_| "create suspended")?;
        sleep_ms(2);
        if c.load(Ordering::SeqCst) != 0 {
            ran += 1;
        }
        let h = open_object_for_test(&t)?;
        check(
            nt_terminate_thread(h, NtStatus(7), Mode::KernelMode) == STATUS_SUCCESS,
            "terminate a suspended thread",
        )?;
        check(wait_ms(h, 2000) == STATUS_WAIT_0, "thread not signaled")?;
        release(t);
        check(nt_close(h) == STATUS_SUCCESS, "close")?;
    }
    if ran != 0 {
        crate::dbg_println!("ps.suspended_thread_churn_never_runs: {ran} of 200 ran");
    }
    check(ran == 0, "a thread created suspended ran")
}

fn open_object_for_test(t: &EThread) -> Result<u64, &'static str> {
    ob_reference_object(t.object()).map_err(|_| "reference")?;
    crate::ob::handle::ob_insert_object_handle(t.object(), THREAD_ALL_ACCESS, 0, Mode::KernelMode)
        .map_err(|_| "handle")
}

fn thread_notify_and_cid() -> TestResult {
    check(
        ps_set_create_thread_notify_routine(ThreadNotify::Kernel(thread_notify), false)
            == STATUS_SUCCESS,
        "register",
    )?;
    let system = system_process().ok_or("no System process")?;
    let t =
        ps_create_thread(system, "ktest-exit", 8, exit_with, 0x55, false).map_err(|_| "create")?;
    let tid = t.tid();
    check(THREAD_CREATE.load(Ordering::SeqCst) == tid, "create notify")?;
    let h = nt_open_thread(THREAD_ALL_ACCESS, 0, 0, tid, Mode::KernelMode)
        .map_err(|_| "NtOpenThread by CID")?;
    check(
        nt_open_thread(THREAD_ALL_ACCESS, 0, 8, tid, Mode::KernelMode) == Err(STATUS_INVALID_CID),
        "thread opened under the wrong process id",
    )?;
    check(
        wait_ms(h, 2000) == STATUS_WAIT_0,
        "thread not signaled at exit",
    )?;
    check(
        t.exit_status() == NtStatus(0x55),
        "PsTerminateSystemThread status",
    )?;
    check(THREAD_EXIT.load(Ordering::SeqCst) == tid, "exit notify")?;
    let _ = ps_set_create_thread_notify_routine(ThreadNotify::Kernel(thread_notify), true);
    release(t);
    check(
        ps_set_create_thread_notify_routine(ThreadNotify::Kernel(thread_notify), true)
            == STATUS_PROCEDURE_NOT_FOUND,
        "removed twice",
    )?;
    check(nt_close(h) == STATUS_SUCCESS, "close")
}

fn system_and_idle() -> TestResult {
    let s = system_process().ok_or("no System process")?;
    check(s.pid() == 4, "System is not PID 4")?;
    check(
        idle_process().is_some_and(|i| i.pid() == 0),
        "Idle is not PID 0",
    )?;
    let id = ps_lookup_process_by_process_id(4).map_err(|_| "lookup System")?;
    check(id == s.object(), "PID 4 names another object")?;
    ob_dereference_object(id);
    check(
        ps_lookup_process_by_process_id(0) == Err(STATUS_INVALID_CID),
        "PID 0 looked up",
    )?;
    // NtCurrentProcess() references the current (System) process.
    let (_r, p) = reference_process(NT_CURRENT_PROCESS, 0, Mode::KernelMode)
        .map_err(|_| "NtCurrentProcess")?;
    check(p.pid() == 4, "current process of a system thread")?;
    check(
        terminate_process(&p, STATUS_SUCCESS) == STATUS_ACCESS_DENIED,
        "System terminated",
    )
}

fn per_process_handle_table() -> TestResult {
    // Handles made by a thread of another process land in that process's table.
    static HANDLE: AtomicU64 = AtomicU64::new(0);
    static DONE: AtomicU32 = AtomicU32::new(0);
    fn make_handle(_: usize) {
        let h = crate::ex::event::nt_create_event(
            0x1F0003,
            None,
            0,
            crate::ex::event::EventType::NotificationEvent,
            false,
            Mode::KernelMode,
        )
        .map_or(0, |(h, _)| h);
        HANDLE.store(h, Ordering::SeqCst);
        DONE.store(1, Ordering::SeqCst);
        while DONE.load(Ordering::SeqCst) != 2 {
            crate::ke::sched::ke_delay_execution_thread(10_000);
        }
    }
    DONE.store(0, Ordering::SeqCst);
    let h = nt_create_process_ex(
        None,
        PROCESS_ALL_ACCESS,
        0,
        false,
        "tables.exe",
        Mode::KernelMode,
    )
    .map_err(|_| "create")?;
    let (_r, p) = reference_process(h, 0, Mode::KernelMode).map_err(|_| "reference")?;
    let t = ps_create_thread(&p, "maker", 8, make_handle, 0, false).map_err(|_| "thread")?;
    for _ in 0..200 {
        if DONE.load(Ordering::SeqCst) == 1 {
            break;
        }
        sleep_ms(5);
    }
    let eh = HANDLE.load(Ordering::SeqCst);
    check(eh != 0, "the thread made no handle")?;
    check(
        p.handle_table().map(|t| t.count()) == Some(1),
        "handle not in the process's table",
    )?;
    let event = p
        .handle_table()
        .and_then(|t| t.lookup(::ob::handle::Handle(eh)).ok())
        .map(|e| e.object)
        .ok_or("handle not found in the process's table")?;
    // The same value in the System process (this thread's) names something else.
    let r = crate::ob::handle::ob_reference_object_by_handle(eh, 0, None, Mode::KernelMode);
    check(
        r.as_ref().map(|r| r.id).ok() != Some(event),
        "System sees the process's handle",
    )?;
    drop(r);
    DONE.store(2, Ordering::SeqCst);
    check(wait_ms(h, 2000) == STATUS_WAIT_0, "process did not exit")?;
    check(
        p.handle_table().map(|t| t.count()) == Some(0),
        "exit left handles open",
    )?;
    release(t);
    check(nt_close(h) == STATUS_SUCCESS, "close")
}

fn query_information() -> TestResult {
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let h = nt_create_process_ex(
        None,
        PROCESS_ALL_ACCESS,
        0,
        false,
        "query.exe",
        Mode::KernelMode,
    )
    .map_err(|_| "create")?;
    let (_r, p) = reference_process(h, 0, Mode::KernelMode).map_err(|_| "reference")?;
    let mut b = [0u8; 48];
    check(
        nt_query_information_process(h, 0, &mut b[..40], 0, Mode::KernelMode)
            == Err(STATUS_INFO_LENGTH_MISMATCH),
        "short ProcessBasicInformation buffer",
    )?;
    check(
        nt_query_information_process(h, 0, &mut b, 0, Mode::KernelMode) == Ok(48),
        "ProcessBasicInformation",
    )?;
    check(
        u64_at(&b, 32) == u64::from(p.pid()) && u64_at(&b, 40) == 4,
        "UniqueProcessId/InheritedFromUniqueProcessId",
    )?;
    check(
        i32::from_le_bytes([b[0], b[1], b[2], b[3]]) == STATUS_PENDING.0,
        "a running process's ExitStatus is STATUS_PENDING",
    )?;
    let mut n = [0u8; 64];
    let len = nt_query_information_process(h, 27, &mut n, 0x1000, Mode::KernelMode)
        .map_err(|_| "ProcessImageFileName")?;
    check(len == 16 + 18 + 2 && n[16] == b'q', "image file name")?;
    let mut c = [0u8; 4];
    check(
        nt_query_information_process(h, 20, &mut c, 0, Mode::KernelMode) == Ok(4) && c == [0; 4],
        "ProcessHandleCount of a new process",
    )?;
    check(
        nt_set_information_process(h, 21, &3u64.to_le_bytes(), Mode::KernelMode) == STATUS_SUCCESS
            && p.affinity.load(Ordering::Relaxed) == 3,
        "ProcessAffinityMask",
    )?;
    // A thread: basic information and priority.
    static STOP: AtomicU32 = AtomicU32::new(0);
    STOP.store(0, Ordering::SeqCst);
    let t = ps_create_thread(&p, "query", 8, waiter, &STOP as *const _ as usize, false)
        .map_err(|_| "thread")?;
    let th = open_object_for_test(&t)?;
    check(
        nt_set_information_thread(th, 2, &12i32.to_le_bytes(), Mode::KernelMode) == STATUS_SUCCESS,
        "ThreadPriority",
    )?;
    let mut tb = [0u8; 48];
    check(
        nt_query_information_thread(th, 0, &mut tb, Mode::KernelMode) == Ok(48),
        "ThreadBasicInformation",
    )?;
    check(
        u64_at(&tb, 16) == u64::from(p.pid()) && u64_at(&tb, 24) == u64::from(t.tid()),
        "ClientId",
    )?;
    check(
        u64_at(&tb, 32) == 3,
        "the thread got the process's affinity",
    )?;
    check(
        i32::from_le_bytes([tb[40], tb[41], tb[42], tb[43]]) == 12,
        "Priority after ThreadPriority",
    )?;
    // The system process list names the process and its thread.
    let mut need = 0;
    let mut buf = alloc::vec::Vec::new();
    for _ in 0..4 {
        buf.resize(need, 0u8);
        match nt_query_system_information(5, &mut buf, 0) {
            Ok(_) => break,
            Err((e, n)) if e == STATUS_INFO_LENGTH_MISMATCH => need = n + 4096,
            Err(_) => return Err("SystemProcessInformation"),
        }
    }
    let mut off = 0usize;
    let mut found = false;
    loop {
        let e = buf.get(off..off + 256).ok_or("entry out of the buffer")?;
        if u64_at(e, 80) == u64::from(p.pid()) {
            let threads = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let t0 = buf
                .get(off + 256..off + 336)
                .ok_or("thread out of the buffer")?;
            found = threads == 1 && u64_at(t0, 48) == u64::from(t.tid());
        }
        let next = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize;
        if next == 0 {
            break;
        }
        off += next;
    }
    check(found, "the process list lacks the process or its thread")?;
    let mut sb = [0u8; 64];
    check(
        nt_query_system_information(0, &mut sb, 0) == Ok(64)
            && sb[56] as u32 == crate::ke::processor_count(),
        "SystemBasicInformation",
    )?;
    STOP.store(1, Ordering::SeqCst);
    check(wait_ms(h, 2000) == STATUS_WAIT_0, "exit")?;
    check(
        nt_query_information_process(h, 0, &mut b, 0, Mode::KernelMode) == Ok(48)
            && b[..4] == [0; 4],
        "exit status after exit",
    )?;
    release(t);
    check(
        nt_close(th) == STATUS_SUCCESS && nt_close(h) == STATUS_SUCCESS,
        "close",
    )
}

pub const TESTS: &[crate::ktest::Test] = &[
    ("ps.query_and_set_information", query_information),
    ("ps.system_and_idle_processes", system_and_idle),
    ("ps.process_create_open_terminate_wait", process_lifecycle),
    ("ps.thread_notify_and_cid", thread_notify_and_cid),
    ("ps.thread_suspend_resume", thread_suspend_resume),
    (
        "ps.suspended_thread_churn_never_runs",
        suspended_thread_churn,
    ),
    ("ps.per_process_handle_table", per_process_handle_table),
    ("ps.process_churn_leaves_pool_unchanged", no_leak),
    (
        "ps.job_limits_accounting_terminate",
        super::job_tests::job_limits_accounting_terminate,
    ),
    ("ps.job_kill_on_close", super::job_tests::job_kill_on_close),
    (
        "ps.user_jobs_and_process_list",
        super::job_tests::user_jobs_and_process_list,
    ),
    ("ps.user_syscall_fuzz", super::job_tests::user_syscall_fuzz),
];
