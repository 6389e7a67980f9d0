//! Boot tests of job objects (`ps.job_*`, listed in `ps::tests::TESTS`).

use super::job::*;
use super::services::*;
use super::*;
use crate::ktest::{check, sleep_ms, TestResult};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use ::ps::info::Layout;
use ::ps::job::*;

const K: Mode = Mode::KernelMode;

fn wait_ms(h: u64, ms: u64) -> NtStatus {
    crate::ex::event::nt_wait_for_single_object(h, false, Some(ms * 10_000), K)
}

fn new_process(parent: Option<u64>, name: &str) -> Result<(u64, Arc<EProcess>), &'static str> {
    let h = nt_create_process_ex(parent, PROCESS_ALL_ACCESS, 0, false, name, K)
        .map_err(|_| "NtCreateProcessEx failed")?;
    let (_r, p) = reference_process(h, 0, K).map_err(|_| "process reference")?;
    Ok((h, p))
}

fn extended(flags: u32, active: u32) -> Vec<u8> {
    ExtendedLimits {
        basic: BasicLimits {
            limit_flags: flags,
            active_process_limit: active,
            ..Default::default()
        },
        ..Default::default()
    }
    .to_bytes()
}

fn accounting(hj: u64) -> Result<BasicAccounting, &'static str> {
    let mut b = [0u8; 48];
    nt_query_information_job_object(hj, JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION, &mut b, K)
        .map_err(|_| "accounting query failed")?;
    let d = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    Ok(BasicAccounting {
        total_processes: d(36),
        active_processes: d(40),
        total_terminated_processes: d(44),
        ..Default::default()
    })
}

/// Waits until the job object behind `id` is deleted (its last reference
/// may go on a worker).
fn job_gone(id: ObjectId) -> bool {
    for _ in 0..200 {
        if job_by_object(id).is_none() {
            return true;
        }
        sleep_ms(10);
    }
    false
}

/// Limits, assignment, inheritance, accounting, the id list, termination.
pub(super) fn job_limits_accounting_terminate() -> TestResult {
    let (hj, _) = nt_create_job_object(JOB_OBJECT_ALL_ACCESS, None, 0, K)
        .map_err(|_| "NtCreateJobObject failed")?;
    let (jr, j) = reference_job(hj, 0, K).map_err(|_| "job reference")?;
    let jid = j.object();
    drop(jr);
    drop(j);
    let (h1, p1) = new_process(None, "job1.exe")?;
    let (h2, p2) = new_process(None, "job2.exe")?;
    let (h3, p3) = new_process(None, "job3.exe")?;
    check(
        nt_is_process_in_job(h1, None, K) == STATUS_PROCESS_NOT_IN_JOB,
        "a new process is in a job",
    )?;
    check(
        nt_set_information_job_object(
            hj,
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
            &extended(
                JOB_OBJECT_LIMIT_ACTIVE_PROCESS | JOB_OBJECT_LIMIT_WORKINGSET,
                2,
            ),
            K,
        ) == STATUS_NOT_IMPLEMENTED,
        "an unenforced limit accepted",
    )?;
    check(
        nt_set_information_job_object(
            hj,
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
            &extended(JOB_OBJECT_LIMIT_ACTIVE_PROCESS, 2),
            K,
        ) == STATUS_SUCCESS,
        "set the active-process limit",
    )?;
    check(
        nt_assign_process_to_job_object(hj, h1, K) == STATUS_SUCCESS
            && nt_assign_process_to_job_object(hj, h2, K) == STATUS_SUCCESS,
        "assign two processes",
    )?;
    check(
        nt_assign_process_to_job_object(hj, h1, K) == STATUS_ACCESS_DENIED,
        "a process assigned twice",
    )?;
    check(
        nt_is_process_in_job(h1, Some(hj), K) == STATUS_PROCESS_IN_JOB
            && nt_is_process_in_job(h3, Some(hj), K) == STATUS_PROCESS_NOT_IN_JOB,
        "NtIsProcessInJob",
    )?;
    // A child of a member would be a third active process.
    check(
        nt_create_process_ex(Some(h1), PROCESS_ALL_ACCESS, 0, false, "child.exe", K)
            == Err(STATUS_QUOTA_EXCEEDED),
        "a child beyond the active-process limit was created",
    )?;
    // Assigning beyond the limit terminates the process.
    check(
        nt_assign_process_to_job_object(hj, h3, K) == STATUS_QUOTA_EXCEEDED,
        "assignment beyond the limit",
    )?;
    check(
        wait_ms(h3, 2000) == STATUS_WAIT_0 && p3.exit_status() == STATUS_QUOTA_EXCEEDED,
        "the refused process did not end with STATUS_QUOTA_EXCEEDED",
    )?;
    let a = accounting(hj)?;
    check(
        a.total_processes == 2 && a.active_processes == 2 && a.total_terminated_processes == 1,
        "accounting after the limit",
    )?;
    // The id list: one id in a 16-byte buffer (STATUS_BUFFER_OVERFLOW), both in 24.
    let mut ids = [0u8; 24];
    let r =
        nt_query_information_job_object(hj, JOB_OBJECT_BASIC_PROCESS_ID_LIST, &mut ids[..16], K);
    check(
        r == Err((STATUS_BUFFER_OVERFLOW, 16)) && ids[0] == 2 && ids[4] == 1,
        "short process id list",
    )?;
    let r = nt_query_information_job_object(hj, JOB_OBJECT_BASIC_PROCESS_ID_LIST, &mut ids, K);
    let id = |i: usize| u64::from_le_bytes(ids[8 + 8 * i..16 + 8 * i].try_into().unwrap_or([0; 8]));
    check(
        r == Ok(24) && id(0) == u64::from(p1.pid()) && id(1) == u64::from(p2.pid()),
        "process id list",
    )?;
    // A higher limit through the basic class: the member's child joins.
    let basic = BasicLimits {
        limit_flags: JOB_OBJECT_LIMIT_ACTIVE_PROCESS,
        active_process_limit: 3,
        ..Default::default()
    }
    .to_bytes();
    check(
        nt_set_information_job_object(hj, JOB_OBJECT_BASIC_LIMIT_INFORMATION, &basic, K)
            == STATUS_SUCCESS,
        "raise the limit",
    )?;
    let (h4, p4) = new_process(Some(h1), "child.exe")?;
    check(
        nt_is_process_in_job(h4, Some(hj), K) == STATUS_PROCESS_IN_JOB,
        "the child did not inherit the job",
    )?;
    // An exited process is no longer active.
    check(
        nt_terminate_process(h2, NtStatus(5), K) == STATUS_SUCCESS
            && wait_ms(h2, 2000) == STATUS_WAIT_0,
        "terminate a member",
    )?;
    let a = accounting(hj)?;
    check(
        a.total_processes == 3 && a.active_processes == 2,
        "accounting after an exit",
    )?;
    // Terminating the job ends every member and signals the job.
    check(wait_ms(hj, 20) == STATUS_TIMEOUT, "job signaled early")?;
    check(
        nt_terminate_job_object(hj, NtStatus(0x77), K) == STATUS_SUCCESS,
        "NtTerminateJobObject",
    )?;
    check(
        wait_ms(hj, 2000) == STATUS_WAIT_0,
        "job not signaled after termination",
    )?;
    check(
        wait_ms(h1, 2000) == STATUS_WAIT_0 && wait_ms(h4, 2000) == STATUS_WAIT_0,
        "members did not exit",
    )?;
    check(
        p1.exit_status() == NtStatus(0x77) && p4.exit_status() == NtStatus(0x77),
        "members' exit status",
    )?;
    check(
        accounting(hj)?.active_processes == 0,
        "active after termination",
    )?;
    check(
        nt_query_information_job_object(hj, 77, &mut ids, K) == Err((STATUS_INVALID_INFO_CLASS, 0)),
        "unknown class",
    )?;
    drop((p1, p2, p3, p4));
    for h in [h1, h2, h3, h4, hj] {
        check(nt_close(h) == STATUS_SUCCESS, "close")?;
    }
    check(
        job_gone(jid),
        "the job object outlived its handles and processes",
    )?;
    Ok(())
}

/// `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`: closing the last job handle ends a
/// member whose thread runs; the job goes with the process.
pub(super) fn job_kill_on_close() -> TestResult {
    fn spin(ctx: usize) {
        // SAFETY: the test passes the address of a static AtomicU32.
        let c = unsafe { &*(ctx as *const AtomicU32) };
        loop {
            c.fetch_add(1, Ordering::SeqCst);
            crate::ke::sched::ke_delay_execution_thread(10_000);
        }
    }
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let (hj, _) = nt_create_job_object(JOB_OBJECT_ALL_ACCESS, None, 0, K)
        .map_err(|_| "NtCreateJobObject failed")?;
    let jid = reference_job(hj, 0, K).map_err(|_| "job")?.1.object();
    check(
        nt_set_information_job_object(
            hj,
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
            &extended(JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, 0),
            K,
        ) == STATUS_SUCCESS,
        "set kill on close",
    )?;
    let (h, p) = new_process(None, "killme.exe")?;
    check(
        nt_assign_process_to_job_object(hj, h, K) == STATUS_SUCCESS,
        "assign",
    )?;
    let t = ps_create_thread(&p, "job-spin", 8, spin, &COUNT as *const _ as usize, false)
        .map_err(|_| "thread")?;
    check(wait_ms(h, 30) == STATUS_TIMEOUT, "process ended early")?;
    check(nt_close(hj) == STATUS_SUCCESS, "close the job")?;
    check(
        wait_ms(h, 3000) == STATUS_WAIT_0,
        "closing the job did not end its process",
    )?;
    check(p.exit_status() == STATUS_SUCCESS, "exit status")?;
    check(
        job_by_object(jid).is_some(),
        "job gone while its process lives",
    )?;
    ob_dereference_object(t.object());
    drop(t);
    drop(p);
    check(nt_close(h) == STATUS_SUCCESS, "close the process")?;
    for cpu in 0..crate::ke::processor_count().min(64) {
        let _ = crate::ke::sched::start_system_thread("reap", 1, 1 << cpu, |_| {}, 0);
    }
    check(job_gone(jid), "the job outlived its process")?;
    Ok(())
}

/// `ntrsuser jobs`: the job services and `SystemProcessInformation` from
/// ring 3 through the system call path (the checks are in
/// user/ntrsuser/src/jobs.rs; the exit status names the first that failed).
pub(super) fn user_jobs_and_process_list() -> TestResult {
    let (status, out) = crate::ex::uproc::run_to_exit("ntrsuser.exe", "jobs", 10_000)
        .map_err(|_| "ntrsuser jobs did not run to its end")?;
    if status != STATUS_SUCCESS {
        crate::dbg_println!(
            "ps.user_jobs_and_process_list: exit status {:#x}; output:\n{out}",
            status.as_u32()
        );
        return Err("ntrsuser's jobs checks failed (exit status names the check)");
    }
    check(
        out.contains("jobs checks passed"),
        "ntrsuser's output is not what it displayed",
    )
}

/// `ntrsuser fuzz`: 3000 system calls with random services and hostile
/// arguments from ring 3 (user/ntrsuser/src/fuzz.rs): no bugcheck, no hang
/// (60 s), every return a known NTSTATUS; afterwards the commit charge and
/// the System handle count are back where they were.
pub(super) fn user_syscall_fuzz() -> TestResult {
    let commit = crate::mm::process::COMMIT.used();
    let (handles, _) = crate::ob::handle::handle_counts();
    let (status, out) = crate::ex::uproc::run_to_exit("ntrsuser.exe", "fuzz 3000 15", 60_000)
        .map_err(|_| "the fuzzer did not run to its end")?;
    if status != STATUS_SUCCESS {
        crate::dbg_println!(
            "ps.user_syscall_fuzz: exit status {:#x}; output:\n{out}",
            status.as_u32()
        );
        return Err("the fuzzer failed (exit status 0xE00000F1: an unknown NTSTATUS)");
    }
    check(out.contains("fuzz done"), "the fuzzer did not finish")?;
    check(
        crate::mm::process::COMMIT.used() == commit,
        "commit charge not returned after the fuzzer ended",
    )?;
    check(
        crate::ob::handle::handle_counts().0 == handles,
        "System handle count changed",
    )
}
