//! Processes and threads from user mode: `spawn` (creates a child process
//! of this image and a thread, waits for both, reads their exit codes and
//! checks the error paths), `child` (what the child checks: its command
//! line, environment and current directory), `spin` (a child that only
//! loops until it is terminated), and the process/thread benchmarks.

use crate::sys::*;
use crate::{check, exit, print, teb, NT_CURRENT_PROCESS, STATUS_SUCCESS};
use core::sync::atomic::{AtomicU64, Ordering};
use nt::user::{Peb, RtlUserProcessParameters, UnicodeString};

const NT_CURRENT_THREAD: u64 = u64::MAX - 1;
const ALL_ACCESS: u32 = 0x1F_FFFF;
pub(crate) const IMAGE: &str = "\\??\\C:\\Windows\\System32\\ntrsuser.exe";
const STATUS_OBJECT_NAME_NOT_FOUND: i32 = 0xC000_0034u32 as i32;
const STATUS_ACCESS_VIOLATION: i32 = 0xC000_0005u32 as i32;
const STATUS_INVALID_PARAMETER: i32 = 0xC000_000Du32 as i32;
const CHILD_EXIT: i32 = 0x1234;
const THREAD_EXIT: i32 = 0x77;
const KILLED: i32 = 0x4321;
/// The environment the child gets.
const ENVIRONMENT: &str = "NTRS=child\0PATH=C:\\Windows\0\0";

/// Copies ASCII `parts` into `buf` as UTF-16; returns the length in units.
fn fill(buf: &mut [u16], parts: &[&str]) -> usize {
    let mut n = 0;
    for p in parts {
        for b in p.bytes() {
            if n < buf.len() {
                buf[n] = u16::from(b);
                n += 1;
            }
        }
    }
    n
}

fn us(buf: &[u16], n: usize) -> UnicodeString {
    UnicodeString {
        length: (2 * n) as u16,
        maximum_length: (2 * buf.len()) as u16,
        buffer: buf.as_ptr() as u64,
    }
}

/// `NtCreateUserProcess` of `image` with the command line `ntrsuser.exe
/// <command>` and ENVIRONMENT; `cid` receives the child's client id.
/// `parameters` replaces the parameters' address when not 0 (error tests).
pub(crate) fn create_process(
    image: &str,
    command: &str,
    process: &mut u64,
    thread: &mut u64,
    cid: &mut [u64; 2],
    parameters: u64,
) -> i32 {
    let mut img = [0u16; 64];
    let ni = fill(&mut img, &[image]);
    let mut line = [0u16; 64];
    let nl = fill(&mut line, &["ntrsuser.exe ", command]);
    let mut env = [0u16; 40];
    let ne = fill(&mut env, &[ENVIRONMENT]);
    let mut dir = [0u16; 8];
    let nd = fill(&mut dir, &["C:\\"]);
    // SAFETY: every field of the structure is an integer or an array of
    // them; all zeros is a valid value.
    let mut pp: RtlUserProcessParameters = unsafe { core::mem::zeroed() };
    pp.maximum_length = core::mem::size_of::<RtlUserProcessParameters>() as u32;
    pp.length = pp.maximum_length;
    pp.flags = nt::user::RTL_USER_PROC_PARAMS_NORMALIZED;
    pp.image_path_name = us(&img, ni);
    pp.command_line = us(&line, nl);
    pp.current_directory.dos_path = us(&dir, nd);
    pp.environment = env.as_ptr() as u64;
    pp.environment_size = (2 * ne) as u64;
    let mut info = PsCreateInfo {
        size: 0x58,
        ..Default::default()
    };
    let mut list = PsAttributeList {
        total_length: 8 + 2 * 32,
        ..Default::default()
    };
    list.attributes[0] = PsAttribute {
        attribute: 0x2_0005, // PS_ATTRIBUTE_IMAGE_NAME
        size: (2 * ni) as u64,
        value: img.as_ptr() as u64,
        return_length: 0,
    };
    list.attributes[1] = PsAttribute {
        attribute: 0x1_0003, // PS_ATTRIBUTE_CLIENT_ID
        size: 16,
        value: cid.as_mut_ptr() as u64,
        return_length: 0,
    };
    let params = if parameters != 0 {
        parameters as *const RtlUserProcessParameters
    } else {
        &pp
    };
    // SAFETY: every pointer names a live local of this frame (or is the
    // deliberately bad `parameters`, which the kernel must refuse).
    unsafe {
        NtCreateUserProcess(
            process, thread, ALL_ACCESS, ALL_ACCESS, 0, 0, 0, 0, params, &mut info, &list,
        )
    }
}

pub(crate) fn wait(h: u64) -> i32 {
    let timeout: i64 = -100_000_000; // 10 s
                                     // SAFETY: `timeout` is readable.
    unsafe { NtWaitForSingleObject(h, 0, &timeout) }
}

/// (ExitStatus, PebBaseAddress, UniqueProcessId, InheritedFromUniqueProcessId).
pub(crate) fn process_basic(h: u64) -> (i32, i32, u64, u64, u64) {
    let mut b = [0u8; 48];
    let mut rl = 0u32;
    // SAFETY: `b` and `rl` are writable.
    let s = unsafe { NtQueryInformationProcess(h, 0, b.as_mut_ptr(), 48, &mut rl) };
    let q = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    (s, q(0) as i32, q(8), q(0x20), q(0x28))
}

/// `ThreadBasicInformation.ExitStatus`.
fn thread_exit_status(h: u64) -> i32 {
    let mut b = [0u8; 48];
    // SAFETY: `b` is writable; no return length.
    let s = unsafe { NtQueryInformationThread(h, 0, b.as_mut_ptr(), 48, core::ptr::null_mut()) };
    if s != STATUS_SUCCESS {
        return s;
    }
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

static THREAD_ARG: AtomicU64 = AtomicU64::new(0);
static THREAD_TEB: AtomicU64 = AtomicU64::new(0);

extern "system" fn thread_main(arg: u64) -> ! {
    THREAD_ARG.store(arg, Ordering::SeqCst);
    THREAD_TEB.store(teb() as u64, Ordering::SeqCst);
    // SAFETY: ends this thread.
    unsafe { NtTerminateThread(NT_CURRENT_THREAD, THREAD_EXIT) };
    exit(1)
}

fn create_thread(start: extern "system" fn(u64) -> !, arg: u64, h: &mut u64) -> i32 {
    // SAFETY: `h` is writable; `start` is code of this image.
    unsafe {
        NtCreateThreadEx(
            h,
            ALL_ACCESS,
            0,
            NT_CURRENT_PROCESS,
            start,
            arg,
            0,
            0,
            0,
            0,
            core::ptr::null(),
        )
    }
}

pub(crate) fn close(h: u64) -> i32 {
    // SAFETY: closing a handle of this process.
    unsafe { NtClose(h) }
}

/// `spawn`: a child process and a thread, both waited for, their exit codes
/// read back; then a running child terminated, and the error paths.
pub fn spawn() -> ! {
    print("ntrsuser: spawn");
    // SAFETY: the TEB is this thread's.
    let me = unsafe { (*teb()).client_id };
    let (mut ph, mut th, mut cid) = (0u64, 0u64, [0u64; 2]);
    let s = create_process(IMAGE, "child", &mut ph, &mut th, &mut cid, 0);
    check(
        40,
        s == STATUS_SUCCESS && ph != 0 && th != 0,
        "NtCreateUserProcess",
    );
    check(
        41,
        cid[0] != 0 && cid[0] != me.unique_process && cid[1] != 0,
        "PS_ATTRIBUTE_CLIENT_ID names a new process and thread",
    );
    let mut h = 0u64;
    let s = create_thread(thread_main, 0x55, &mut h);
    check(42, s == STATUS_SUCCESS && h != 0, "NtCreateThreadEx");
    check(
        43,
        wait(ph) == STATUS_SUCCESS && wait(h) == STATUS_SUCCESS,
        "both are signalled at exit",
    );
    check(
        44,
        THREAD_ARG.load(Ordering::SeqCst) == 0x55
            && THREAD_TEB.load(Ordering::SeqCst) != teb() as u64,
        "the thread ran with its argument and its own TEB",
    );
    let (s, status, peb, pid, parent) = process_basic(ph);
    check(
        45,
        s == STATUS_SUCCESS && status == CHILD_EXIT,
        "child exit status kept (ProcessBasicInformation)",
    );
    check(
        46,
        peb != 0 && pid == cid[0] && parent == me.unique_process,
        "child PebBaseAddress, UniqueProcessId, InheritedFromUniqueProcessId",
    );
    check(
        47,
        thread_exit_status(h) == THREAD_EXIT && thread_exit_status(th) == CHILD_EXIT,
        "thread exit statuses (ThreadBasicInformation)",
    );
    check(
        48,
        close(ph) == 0 && close(th) == 0 && close(h) == 0,
        "handles closed",
    );

    // A child that runs until it is terminated.
    let s = create_process(IMAGE, "spin", &mut ph, &mut th, &mut cid, 0);
    check(49, s == STATUS_SUCCESS, "NtCreateUserProcess (spin)");
    let delay: i64 = -200_000;
    // SAFETY: `delay` is readable.
    unsafe { NtDelayExecution(0, &delay) };
    // SAFETY: terminating the child through its handle.
    let s = unsafe { NtTerminateProcess(ph, KILLED) };
    check(
        50,
        s == STATUS_SUCCESS && wait(ph) == STATUS_SUCCESS,
        "NtTerminateProcess of a running child",
    );
    check(
        51,
        process_basic(ph).1 == KILLED,
        "terminated child's exit status",
    );
    close(ph);
    close(th);

    // Errors.
    let s = create_process(
        "\\??\\C:\\Windows\\System32\\nosuch.exe",
        "child",
        &mut ph,
        &mut th,
        &mut cid,
        0,
    );
    check(
        52,
        s == STATUS_OBJECT_NAME_NOT_FOUND,
        "missing image: STATUS_OBJECT_NAME_NOT_FOUND",
    );
    let s = create_process(IMAGE, "child", &mut ph, &mut th, &mut cid, 0x10);
    check(
        53,
        s == STATUS_ACCESS_VIOLATION,
        "bad ProcessParameters: STATUS_ACCESS_VIOLATION",
    );
    // SAFETY: a kernel start address: the service must refuse it.
    let bad: extern "system" fn(u64) -> ! =
        unsafe { core::mem::transmute(0xFFFF_F800_0040_1000u64) };
    let s = create_thread(bad, 0, &mut h);
    check(
        54,
        s == STATUS_INVALID_PARAMETER,
        "kernel start address: STATUS_INVALID_PARAMETER",
    );
    print("ntrsuser: spawn checks passed");
    exit(0)
}

/// `child`: checks what the parent gave it, then exits with CHILD_EXIT.
pub fn child(peb: *mut Peb) -> ! {
    // SAFETY: the kernel passes this process's PEB, whose parameters it wrote.
    let pp = unsafe { &*((*peb).process_parameters as *const RtlUserProcessParameters) };
    let env = pp.environment as *const u16;
    let want: [u16; 10] = core::array::from_fn(|i| u16::from(b"NTRS=child"[i]));
    // SAFETY: the kernel copied the environment block (at least as long as
    // ENVIRONMENT) into this process.
    let got = unsafe { core::slice::from_raw_parts(env, want.len()) };
    if env.is_null() || got != want || pp.environment_size != 2 * ENVIRONMENT.len() as u64 {
        exit(0xE000_0060u32 as i32);
    }
    let dir = pp.current_directory.dos_path;
    // SAFETY: as above, the string the kernel copied.
    if dir.length != 6 || unsafe { *(dir.buffer as *const u16) } != u16::from(b'C') {
        exit(0xE000_0061u32 as i32);
    }
    // SAFETY: the TEB is this thread's.
    let cid = unsafe { (*teb()).client_id };
    if cid.unique_thread == 0 || cid.unique_process == 0 {
        exit(0xE000_0062u32 as i32);
    }
    exit(CHILD_EXIT)
}

/// `spin`: loops until terminated.
pub fn spin() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

extern "system" fn exit_thread(_: u64) -> ! {
    // SAFETY: ends this thread.
    unsafe { NtTerminateThread(NT_CURRENT_THREAD, 0) };
    exit(1)
}

/// The benchmark loops; each returns (ticks, operations) or exits with
/// 0xE0000100 on a failed operation.
pub fn bench(name: &[u8]) -> Option<(u64, u64)> {
    let fail = || exit(0xE000_0100u32 as i32);
    match name {
        b"sys_thread_create_exit_wait" => {
            const N: u64 = 200;
            let t0 = crate::rdtsc();
            for _ in 0..N {
                let mut h = 0u64;
                if create_thread(exit_thread, 0, &mut h) != 0 || wait(h) != 0 || close(h) != 0 {
                    fail();
                }
            }
            Some((crate::rdtsc() - t0, N))
        }
        b"sys_process_create_exit_wait" => {
            const N: u64 = 50;
            let t0 = crate::rdtsc();
            for _ in 0..N {
                let (mut ph, mut th, mut cid) = (0u64, 0u64, [0u64; 2]);
                if create_process(IMAGE, "exit", &mut ph, &mut th, &mut cid, 0) != 0
                    || wait(ph) != 0
                    || close(ph) != 0
                    || close(th) != 0
                {
                    fail();
                }
            }
            Some((crate::rdtsc() - t0, N))
        }
        b"sys_event_pingpong" => {
            const N: u64 = 1000;
            let (mut ping, mut pong) = (0u64, 0u64);
            // SAFETY: the handles are writable; synchronization events.
            let ok = unsafe {
                NtCreateEvent(&mut ping, 0x1F0003, 0, 1, 0) == 0
                    && NtCreateEvent(&mut pong, 0x1F0003, 0, 1, 0) == 0
            };
            if !ok {
                fail();
            }
            PINGPONG.store(ping | (pong << 32), Ordering::SeqCst);
            let mut h = 0u64;
            if create_thread(ponger, N, &mut h) != 0 {
                fail();
            }
            let t0 = crate::rdtsc();
            for _ in 0..N {
                // SAFETY: our own event handles.
                let s = unsafe {
                    NtSetEvent(ping, core::ptr::null_mut())
                        | NtWaitForSingleObject(pong, 0, core::ptr::null())
                };
                if s != 0 {
                    fail();
                }
            }
            let span = crate::rdtsc() - t0;
            if wait(h) != 0 || thread_exit_status(h) != 0 {
                fail();
            }
            close(h);
            close(ping);
            close(pong);
            Some((span, N))
        }
        _ => None,
    }
}

/// The ping-pong benchmark's two event handles (low and high halves).
static PINGPONG: AtomicU64 = AtomicU64::new(0);

/// The other side of the ping-pong: waits for ping, sets pong, `n` times.
extern "system" fn ponger(n: u64) -> ! {
    let v = PINGPONG.load(Ordering::SeqCst);
    let (ping, pong) = (v & 0xFFFF_FFFF, v >> 32);
    for _ in 0..n {
        // SAFETY: the process's event handles.
        let s = unsafe {
            NtWaitForSingleObject(ping, 0, core::ptr::null())
                | NtSetEvent(pong, core::ptr::null_mut())
        };
        if s != 0 {
            // SAFETY: ends this thread with a failure status.
            unsafe { NtTerminateThread(NT_CURRENT_THREAD, 0xE000_0102u32 as i32) };
        }
    }
    // SAFETY: ends this thread.
    unsafe { NtTerminateThread(NT_CURRENT_THREAD, 0) };
    exit(1)
}
