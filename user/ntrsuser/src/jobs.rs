//! `jobs`: job objects and `NtQuerySystemInformation(SystemProcessInformation)`
//! through the real system-call path. Each failed check exits with
//! 0xE0000000 | its number (70-89).

use crate::procs::{close, create_process, process_basic, wait, IMAGE};
use crate::sys::*;
use crate::{check, exit, print, teb, NT_CURRENT_PROCESS, STATUS_SUCCESS};

const JOB_OBJECT_ALL_ACCESS: u32 = 0x1F_003F;
const STATUS_PROCESS_IN_JOB: i32 = 0x123;
const STATUS_PROCESS_NOT_IN_JOB: i32 = 0x124;
const STATUS_QUOTA_EXCEEDED: i32 = 0xC000_0044u32 as i32;
const STATUS_INFO_LENGTH_MISMATCH: i32 = 0xC000_0004u32 as i32;
const STATUS_ACCESS_VIOLATION: i32 = 0xC000_0005u32 as i32;
/// `JobObjectBasicAccountingInformation`, `JobObjectBasicProcessIdList`,
/// `JobObjectExtendedLimitInformation`, `SystemProcessInformation`.
const ACCOUNTING: u32 = 1;
const ID_LIST: u32 = 3;
const EXTENDED_LIMITS: u32 = 9;
const SYSTEM_PROCESS_INFORMATION: u32 = 5;
/// `JOB_OBJECT_LIMIT_ACTIVE_PROCESS`, `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`.
const LIMIT_ACTIVE_PROCESS: u32 = 0x8;
const LIMIT_KILL_ON_JOB_CLOSE: u32 = 0x2000;
const JOB_EXIT: i32 = 0x99;

fn d(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn q(b: &[u8], o: usize) -> u64 {
    u64::from(d(b, o)) | (u64::from(d(b, o + 4)) << 32)
}

fn create_job() -> (i32, u64) {
    let mut h = 0u64;
    // SAFETY: `h` is writable; no object attributes.
    let s = unsafe { NtCreateJobObject(&mut h, JOB_OBJECT_ALL_ACCESS, 0) };
    (s, h)
}

/// `JOBOBJECT_EXTENDED_LIMIT_INFORMATION` with `LimitFlags` and
/// `ActiveProcessLimit` set.
fn set_limits(job: u64, flags: u32, active: u32, length: u32) -> i32 {
    let mut b = [0u8; 144];
    b[16..20].copy_from_slice(&flags.to_le_bytes());
    b[40..44].copy_from_slice(&active.to_le_bytes());
    // SAFETY: `b` is readable for 144 bytes (`length` is at most that).
    unsafe { NtSetInformationJobObject(job, EXTENDED_LIMITS, b.as_ptr(), length.min(144)) }
}

/// A child running `spin`: (status, process handle, thread handle, pid).
fn spin_child() -> (i32, u64, u64, u64) {
    let (mut ph, mut th, mut cid) = (0u64, 0u64, [0u64; 2]);
    let s = create_process(IMAGE, "spin", &mut ph, &mut th, &mut cid, 0);
    (s, ph, th, cid[0])
}

pub fn jobs() -> ! {
    print("ntrsuser: jobs");
    // SAFETY: the TEB is this thread's.
    let me = unsafe { (*teb()).client_id };
    let (s, job) = create_job();
    check(70, s == STATUS_SUCCESS && job != 0, "NtCreateJobObject");
    check(
        71,
        set_limits(job, LIMIT_ACTIVE_PROCESS, 1, 143) == STATUS_INFO_LENGTH_MISMATCH
            && set_limits(job, LIMIT_ACTIVE_PROCESS, 1, 144) == STATUS_SUCCESS,
        "NtSetInformationJobObject (extended limits, active-process limit 1)",
    );
    let (s, p1, t1, pid1) = spin_child();
    check(72, s == STATUS_SUCCESS, "child process");
    // SAFETY: handles of this process.
    let (assign, in_job, me_in_job) = unsafe {
        (
            NtAssignProcessToJobObject(job, p1),
            NtIsProcessInJob(p1, job),
            NtIsProcessInJob(NT_CURRENT_PROCESS, 0),
        )
    };
    check(
        73,
        assign == STATUS_SUCCESS
            && in_job == STATUS_PROCESS_IN_JOB
            && me_in_job == STATUS_PROCESS_NOT_IN_JOB,
        "NtAssignProcessToJobObject, NtIsProcessInJob",
    );
    let (s, p2, t2, _) = spin_child();
    check(74, s == STATUS_SUCCESS, "second child process");
    // SAFETY: handles of this process.
    let assign = unsafe { NtAssignProcessToJobObject(job, p2) };
    check(
        75,
        assign == STATUS_QUOTA_EXCEEDED
            && wait(p2) == STATUS_SUCCESS
            && process_basic(p2).1 == STATUS_QUOTA_EXCEEDED,
        "beyond the limit: STATUS_QUOTA_EXCEEDED, the process terminated with it",
    );
    let mut acc = [0u8; 48];
    let mut rl = 0u32;
    // SAFETY: `acc` and `rl` are writable.
    let s = unsafe { NtQueryInformationJobObject(job, ACCOUNTING, acc.as_mut_ptr(), 48, &mut rl) };
    check(
        76,
        s == STATUS_SUCCESS && rl == 48 && d(&acc, 36) == 1 && d(&acc, 40) == 1 && d(&acc, 44) == 1,
        "JobObjectBasicAccountingInformation: 1 total, 1 active, 1 terminated",
    );
    let mut ids = [0u8; 16];
    // SAFETY: `ids` and `rl` are writable.
    let s = unsafe { NtQueryInformationJobObject(job, ID_LIST, ids.as_mut_ptr(), 16, &mut rl) };
    check(
        77,
        s == STATUS_SUCCESS && rl == 16 && d(&ids, 0) == 1 && d(&ids, 4) == 1 && q(&ids, 8) == pid1,
        "JobObjectBasicProcessIdList",
    );
    // SAFETY: a bad buffer: the service must refuse it.
    let s = unsafe { NtQueryInformationJobObject(job, ACCOUNTING, 0x10 as *mut u8, 48, &mut rl) };
    check(
        78,
        s == STATUS_ACCESS_VIOLATION,
        "bad job query buffer: STATUS_ACCESS_VIOLATION",
    );

    process_list(me.unique_process, me.unique_thread, pid1);

    // SAFETY: handles of this process.
    let s = unsafe { NtTerminateJobObject(job, JOB_EXIT) };
    check(
        84,
        s == STATUS_SUCCESS && wait(job) == STATUS_SUCCESS && wait(p1) == STATUS_SUCCESS,
        "NtTerminateJobObject: the job and its process are signaled",
    );
    check(85, process_basic(p1).1 == JOB_EXIT, "member's exit status");
    for h in [p1, t1, p2, t2, job] {
        close(h);
    }

    // Kill on job close.
    let (s, job) = create_job();
    check(
        86,
        s == STATUS_SUCCESS && set_limits(job, LIMIT_KILL_ON_JOB_CLOSE, 0, 144) == STATUS_SUCCESS,
        "a kill-on-close job",
    );
    let (s, p, t, _) = spin_child();
    // SAFETY: handles of this process.
    let assign = unsafe { NtAssignProcessToJobObject(job, p) };
    check(
        87,
        s == STATUS_SUCCESS && assign == STATUS_SUCCESS,
        "assign",
    );
    check(
        88,
        close(job) == STATUS_SUCCESS && wait(p) == STATUS_SUCCESS && process_basic(p).1 == 0,
        "closing the job ended its process",
    );
    close(p);
    close(t);
    print("ntrsuser: jobs checks passed");
    exit(0)
}

/// `SystemProcessInformation`: a short buffer gets the length needed; the
/// list names this process (image, thread) and the child.
fn process_list(pid: u64, tid: u64, child: u64) {
    let mut small = [0u8; 16];
    let mut need = 0u32;
    // SAFETY: `small` and `need` are writable.
    let s = unsafe {
        NtQuerySystemInformation(
            SYSTEM_PROCESS_INFORMATION,
            small.as_mut_ptr(),
            16,
            &mut need,
        )
    };
    check(
        79,
        s == STATUS_INFO_LENGTH_MISMATCH && need > 256,
        "SystemProcessInformation: STATUS_INFO_LENGTH_MISMATCH with the length needed",
    );
    let (mut va, mut size) = (0u64, 0x10000u64);
    // SAFETY: the out parameters are writable; MEM_COMMIT | MEM_RESERVE, read/write.
    let s =
        unsafe { NtAllocateVirtualMemory(NT_CURRENT_PROCESS, &mut va, 0, &mut size, 0x3000, 0x04) };
    check(80, s == STATUS_SUCCESS, "buffer");
    // SAFETY: 64 KiB committed read/write at `va`, this function's alone.
    let buf = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, 0x10000) };
    let mut rl = 0u32;
    // SAFETY: `buf` is writable for its length.
    let s = unsafe {
        NtQuerySystemInformation(
            SYSTEM_PROCESS_INFORMATION,
            buf.as_mut_ptr(),
            0x10000,
            &mut rl,
        )
    };
    check(
        81,
        s == STATUS_SUCCESS && rl as usize <= buf.len() && rl >= need,
        "SystemProcessInformation",
    );
    let (mut off, mut seen_me, mut seen_child, mut seen_system) = (0usize, false, false, false);
    for _ in 0..1000 {
        let e = &buf[off..];
        let threads = d(e, 4) as usize;
        let id = q(e, 80);
        let name_len = usize::from(u16::from_le_bytes([e[56], e[57]]));
        let name_at = q(e, 64);
        if id == pid {
            let inside =
                name_at >= va + off as u64 && name_at + name_len as u64 <= va + u64::from(rl);
            let mut ok = inside && name_len == 2 * "ntrsuser.exe".len();
            if ok {
                let at = (name_at - va) as usize;
                for (i, c) in "ntrsuser.exe".bytes().enumerate() {
                    ok &= buf[at + 2 * i] == c && buf[at + 2 * i + 1] == 0;
                }
            }
            let e = &buf[off..];
            let mine = (0..threads).any(|t| {
                let th = 256 + 80 * t;
                q(e, th + 40) == pid && q(e, th + 48) == tid
            });
            seen_me = ok && mine;
        }
        seen_child |= id == child && threads == 1;
        seen_system |= id == 4 && threads > 0;
        let next = d(&buf[off..], 0) as usize;
        if next == 0 {
            break;
        }
        off += next;
        if off >= rl as usize {
            break;
        }
    }
    check(
        82,
        seen_me,
        "this process listed with its image name (in the buffer) and this thread",
    );
    check(83, seen_child && seen_system, "the child and System listed");
    // SAFETY: a kernel buffer address: the service must refuse it.
    let s = unsafe {
        NtQuerySystemInformation(
            SYSTEM_PROCESS_INFORMATION,
            0xFFFF_F800_0000_0000u64 as *mut u8,
            0x1000,
            core::ptr::null_mut(),
        )
    };
    check(
        89,
        s == STATUS_ACCESS_VIOLATION,
        "SystemProcessInformation into kernel memory: STATUS_ACCESS_VIOLATION",
    );
    let mut fsize = 0u64;
    // SAFETY: releases the buffer allocated above; `buf` is not used after.
    unsafe { NtFreeVirtualMemory(NT_CURRENT_PROCESS, &mut va, &mut fsize, 0x8000) };
}
