//! ntrsuser.exe: ntrs's first user-mode program, a native-subsystem image
//! with no ntdll: its system-call stubs come from the one service list
//! (`nt::nt_services!`, Windows 10 build 19045 numbers, Windows' stub
//! bytes). The kernel's boot tests (`user.*` in ntos) start it with a
//! command line naming what to do and check its exit status and output
//! (`NtDisplayString`).
//!
//! Commands: `basic` (the checks below; exit status 0 when all pass, else
//! 0xE0000000 | the failed check's number), `kread`, `kwrite`, `kexec`
//! (touch kernel memory: the kernel must end the process with
//! STATUS_ACCESS_VIOLATION), `nullcall <n>` (n calls of an invalid service
//! number, for the benchmark), `spawn` (a child process and a thread from
//! user mode, see `procs`), `child`, `spin`, `exit` (what `spawn` and the
//! process benchmark start), `jobs` (job objects and the process list from
//! user mode, see `jobs`), `fuzz <calls> <seed>` (the system-call fuzzer,
//! see `fuzz`).
#![no_std]
#![no_main]

use core::panic::PanicInfo;
use nt::user::{KUserSharedData, Peb, RtlUserProcessParameters, Teb, UnicodeString};

mod crt;
mod fuzz;
mod jobs;
mod procs;
mod sys;
use sys::*;

const STATUS_SUCCESS: i32 = 0;
const STATUS_INVALID_HANDLE: i32 = 0xC000_0008u32 as i32;
const STATUS_ACCESS_VIOLATION: i32 = 0xC000_0005u32 as i32;
const STATUS_INVALID_SYSTEM_SERVICE: i32 = 0xC000_001Cu32 as i32;
const NT_CURRENT_PROCESS: u64 = u64::MAX;

/// Prints a line through `NtDisplayString` (ASCII only, up to 200 characters).
fn print(s: &str) {
    let mut buf = [0u16; 200];
    let n = s.len().min(buf.len());
    for (d, b) in buf.iter_mut().zip(s.bytes()) {
        *d = b as u16;
    }
    let us = UnicodeString {
        length: (n * 2) as u16,
        maximum_length: (buf.len() * 2) as u16,
        buffer: buf.as_ptr() as u64,
    };
    // SAFETY: `us` describes `buf`, which lives across the call.
    unsafe { NtDisplayString(&us) };
}

fn exit(status: i32) -> ! {
    // SAFETY: terminating the current process does not return.
    unsafe { NtTerminateProcess(NT_CURRENT_PROCESS, status) };
    // If it did, the kernel would be wrong: spin where a test sees a timeout.
    loop {
        core::hint::spin_loop();
    }
}

fn teb() -> *mut Teb {
    let t: u64;
    // SAFETY: GS base is the TEB in user mode; NT_TIB.Self is at 0x30.
    unsafe { core::arch::asm!("mov {}, gs:[0x30]", out(reg) t, options(nostack, readonly)) };
    t as *mut Teb
}

fn shared() -> &'static KUserSharedData {
    // SAFETY: the kernel maps KUSER_SHARED_DATA read-only at 0x7FFE0000 in every process.
    unsafe { &*(nt::user::MM_SHARED_USER_DATA_VA as *const KUserSharedData) }
}

extern "C" {
    /// The image's own base (the linker's `__ImageBase`).
    static __ImageBase: u8;
}

/// The command line from the process parameters, as ASCII bytes.
fn command_line(peb: &Peb, out: &mut [u8; 64]) -> usize {
    let pp = peb.process_parameters as *const RtlUserProcessParameters;
    if pp.is_null() {
        return 0;
    }
    // SAFETY: the kernel wrote normalized parameters into this process.
    let cl = unsafe { (*pp).command_line };
    let n = (cl.length as usize / 2).min(out.len());
    for (i, o) in out.iter_mut().enumerate().take(n) {
        // SAFETY: `buffer` holds `length` bytes of UTF-16.
        *o = unsafe { *(cl.buffer as *const u16).add(i) } as u8;
    }
    n
}

fn check(n: u32, ok: bool, what: &str) {
    if ok {
        print(what);
    } else {
        print("ntrsuser: FAILED");
        print(what);
        exit((0xE000_0000u32 | n) as i32);
    }
}

fn basic(peb: *mut Peb) -> ! {
    print("ntrsuser: hello from user mode");
    let t = teb();
    // SAFETY: the TEB is mapped read/write in this process.
    let tr = unsafe { &mut *t };
    check(
        1,
        tr.nt_tib.self_ == t as u64,
        "teb: NtTib.Self is gs:[0x30]",
    );
    check(
        2,
        tr.process_environment_block == peb as u64,
        "teb: ProcessEnvironmentBlock is the PEB the entry got",
    );
    check(
        3,
        tr.client_id.unique_thread != 0 && tr.client_id.unique_process != 0,
        "teb: ClientId set",
    );
    tr.last_error_value = 1234;
    check(
        4,
        tr.last_error_value == 1234,
        "teb: LastErrorValue writable",
    );
    tr.tls_slots[5] = 0x55;
    check(5, tr.tls_slots[5] == 0x55, "teb: TlsSlots writable");
    let stack_probe = 0u64;
    let sp = &stack_probe as *const u64 as u64;
    check(
        6,
        sp < tr.nt_tib.stack_base && sp >= tr.nt_tib.stack_limit,
        "teb: stack within StackLimit..StackBase",
    );
    // SAFETY: the PEB is mapped in this process.
    let p = unsafe { &*peb };
    // SAFETY: taking the address of a linker symbol.
    let base = unsafe { &__ImageBase as *const u8 as u64 };
    check(
        7,
        p.image_base_address == base,
        "peb: ImageBaseAddress is the image's base",
    );
    check(
        8,
        p.process_parameters != 0,
        "peb: ProcessParameters present",
    );
    check(
        9,
        p.os_build_number == nt::syscalls::SERVICE_NUMBERS_BUILD as u16
            && p.number_of_processors >= 1,
        "peb: OSBuildNumber and NumberOfProcessors",
    );

    // KUSER_SHARED_DATA: live times.
    let sh = shared();
    check(
        10,
        sh.nt_major_version == 10 && sh.nt_build_number & 0xFFFF == 19045,
        "kuser: NtMajorVersion 10, NtBuildNumber 19045",
    );
    // SAFETY: the fields are KSYSTEM_TIMEs in the shared page.
    let it0 = unsafe { nt::user::read_system_time(&sh.interrupt_time) };
    // SAFETY: as above.
    let tc0 = unsafe { nt::user::read_system_time(&sh.tick_count) };
    let delay: i64 = -500_000; // 50 ms, relative
                               // SAFETY: `delay` is a readable LARGE_INTEGER.
    let s = unsafe { NtDelayExecution(0, &delay) };
    check(11, s == STATUS_SUCCESS, "NtDelayExecution 50 ms");
    // SAFETY: as above.
    let it1 = unsafe { nt::user::read_system_time(&sh.interrupt_time) };
    // SAFETY: as above.
    let tc1 = unsafe { nt::user::read_system_time(&sh.tick_count) };
    check(
        12,
        it1 >= it0 + 400_000 && tc1 > tc0,
        "kuser: InterruptTime and TickCount advance",
    );
    let mut now: i64 = 0;
    // SAFETY: `now` is writable.
    let s = unsafe { NtQuerySystemTime(&mut now) };
    // SAFETY: as above.
    let st = unsafe { nt::user::read_system_time(&sh.system_time) } as i64;
    check(
        13,
        s == 0 && now > 0 && (now - st).abs() < 10_000_000,
        "NtQuerySystemTime agrees with KUSER SystemTime",
    );

    // Events.
    let mut h: u64 = 0;
    // SAFETY: `h` is writable; no object attributes.
    // SynchronizationEvent (1), not signalled.
    let s = unsafe { NtCreateEvent(&mut h, 0x1F0003, 0, 1, 0) };
    check(
        14,
        s == 0 && h != 0,
        "NtCreateEvent (synchronization event)",
    );
    let mut prev: i32 = -1;
    // SAFETY: `prev` is writable.
    let s = unsafe { NtSetEvent(h, &mut prev) };
    check(
        15,
        s == 0 && prev == 0,
        "NtSetEvent returns the previous state",
    );
    // SAFETY: no timeout pointer: infinite (the event is signalled).
    let s = unsafe { NtWaitForSingleObject(h, 0, core::ptr::null()) };
    check(16, s == 0, "NtWaitForSingleObject on a signalled event");
    let zero: i64 = 0;
    // SAFETY: a zero relative timeout.
    let s = unsafe { NtWaitForSingleObject(h, 0, &zero) };
    check(
        17,
        s == 0x102,
        "NtWaitForSingleObject times out (synchronization event was reset)",
    );
    // SAFETY: closing our handle.
    let s = unsafe { NtClose(h) };
    check(18, s == 0, "NtClose");
    // SAFETY: closing a closed handle only fails.
    let s = unsafe { NtClose(h) };
    check(
        19,
        s == STATUS_INVALID_HANDLE,
        "NtClose of a closed handle: STATUS_INVALID_HANDLE",
    );

    // Virtual memory.
    let mut va: u64 = 0;
    let mut size: u64 = 0x10000;
    // SAFETY: in/out parameters are ours.
    let s =
        unsafe { NtAllocateVirtualMemory(NT_CURRENT_PROCESS, &mut va, 0, &mut size, 0x3000, 0x04) };
    check(
        20,
        s == 0 && va != 0 && size == 0x10000,
        "NtAllocateVirtualMemory 64 KiB",
    );
    // SAFETY: the region was just committed read/write.
    unsafe {
        for i in 0..16u64 {
            ((va + i * 4096) as *mut u64).write_volatile(i);
        }
    }
    // SAFETY: as above.
    let ok = (0..16u64).all(|i| unsafe { ((va + i * 4096) as *const u64).read_volatile() } == i);
    check(21, ok, "demand-zero pages written and read back");
    let mut fsize = 0u64;
    // SAFETY: in/out parameters are ours.
    let s = unsafe { NtFreeVirtualMemory(NT_CURRENT_PROCESS, &mut va, &mut fsize, 0x8000) };
    check(22, s == 0, "NtFreeVirtualMemory MEM_RELEASE");

    // The service table.
    // SAFETY: an unknown service number only returns a status.
    let s = unsafe { sys::invalid_service() };
    check(
        23,
        s == STATUS_INVALID_SYSTEM_SERVICE,
        "unknown service: STATUS_INVALID_SYSTEM_SERVICE",
    );
    // SAFETY: NtYieldExecution takes nothing.
    let s = unsafe { NtYieldExecution() };
    check(24, s == 0 || s == 0x4000_0024, "NtYieldExecution");

    // Bad pointers: never a crash, STATUS_ACCESS_VIOLATION.
    // SAFETY: the kernel must refuse these pointers.
    let s = unsafe { NtQuerySystemTime(0xFFFF_F800_0040_0000 as *mut i64) };
    check(
        25,
        s == STATUS_ACCESS_VIOLATION,
        "NtQuerySystemTime(kernel address): STATUS_ACCESS_VIOLATION",
    );
    // SAFETY: as above.
    let s = unsafe { NtQuerySystemTime(core::ptr::null_mut()) };
    check(
        26,
        s == STATUS_ACCESS_VIOLATION,
        "NtQuerySystemTime(NULL): STATUS_ACCESS_VIOLATION",
    );
    // SAFETY: as above (read-only page).
    let s = unsafe { NtQuerySystemTime(nt::user::MM_SHARED_USER_DATA_VA as *mut i64) };
    check(
        27,
        s == STATUS_ACCESS_VIOLATION,
        "NtQuerySystemTime(read-only KUSER_SHARED_DATA): STATUS_ACCESS_VIOLATION",
    );
    // SAFETY: as above.
    let s = unsafe { NtCreateEvent(0x1000 as *mut u64, 0x1F0003, 0, 0, 0) };
    check(
        28,
        s == STATUS_ACCESS_VIOLATION,
        "NtCreateEvent(unmapped handle pointer): STATUS_ACCESS_VIOLATION",
    );
    // SAFETY: as above (a bad UNICODE_STRING buffer).
    let us = UnicodeString {
        length: 8,
        maximum_length: 8,
        buffer: 0xFFFF_8000_0000_0000,
    };
    let s = unsafe { NtDisplayString(&us) };
    check(
        29,
        s == STATUS_ACCESS_VIOLATION,
        "NtDisplayString(kernel buffer): STATUS_ACCESS_VIOLATION",
    );
    // Argument 5+ from the stack: NtAllocateVirtualMemory's AllocationType
    // and Protect travel there; a bad protection must be seen as such.
    let mut va: u64 = 0;
    let mut size: u64 = 0x1000;
    // SAFETY: in/out parameters are ours.
    let s = unsafe {
        NtAllocateVirtualMemory(NT_CURRENT_PROCESS, &mut va, 0, &mut size, 0x3000, 0x1234)
    };
    check(
        30,
        s == 0xC000_0045u32 as i32,
        "NtAllocateVirtualMemory reads Protect from the stack (STATUS_INVALID_PAGE_PROTECTION)",
    );
    print("ntrsuser: all checks passed");
    exit(0)
}

/// NtProcessStartup: a native image's entry point, called with the PEB.
#[no_mangle]
extern "system" fn NtProcessStartup(peb: *mut Peb) -> ! {
    let mut buf = [0u8; 64];
    // SAFETY: the kernel passes the PEB of this process.
    let n = command_line(unsafe { &*peb }, &mut buf);
    // The command line is "<program> <command> [arguments]".
    let line = &buf[..n];
    let cmd = match line.iter().position(|&b| b == b' ') {
        Some(i) => &line[i + 1..],
        None => &[],
    };
    let word = cmd.split(|&b| b == b' ').next().unwrap_or(&[]);
    match word {
        b"kread" => {
            print("ntrsuser: reading kernel memory");
            // SAFETY: deliberately invalid: the kernel must stop this process.
            let v = unsafe { (0xFFFF_F800_0040_0000u64 as *const u64).read_volatile() };
            exit(v as i32)
        }
        b"kwrite" => {
            print("ntrsuser: writing kernel memory");
            // SAFETY: deliberately invalid, as above.
            unsafe { (0xFFFF_8000_0010_0000u64 as *mut u64).write_volatile(0) };
            exit(1)
        }
        b"kexec" => {
            print("ntrsuser: executing kernel code");
            // SAFETY: deliberately invalid, as above.
            let f: extern "system" fn() = unsafe { core::mem::transmute(0xFFFF_F800_0040_1000u64) };
            f();
            exit(1)
        }
        b"kuserwrite" => {
            print("ntrsuser: writing KUSER_SHARED_DATA");
            // SAFETY: deliberately invalid: the page is read-only for user mode.
            unsafe { (nt::user::MM_SHARED_USER_DATA_VA as *mut u32).write_volatile(0) };
            exit(1)
        }
        b"nullcall" => {
            let rest = &cmd[word.len()..];
            let mut n: u64 = 0;
            for &b in rest {
                if b.is_ascii_digit() {
                    n = n * 10 + (b - b'0') as u64;
                }
            }
            for _ in 0..n {
                // SAFETY: an unknown service number only returns a status.
                if unsafe { sys::invalid_service() } != STATUS_INVALID_SYSTEM_SERVICE {
                    exit(1);
                }
            }
            exit(0)
        }
        b"bench" => bench(&cmd[word.len()..]),
        b"spawn" => procs::spawn(),
        b"jobs" => jobs::jobs(),
        b"fuzz" => fuzz::fuzz(&cmd[word.len()..]),
        b"child" => procs::child(peb),
        b"spin" => procs::spin(),
        b"exit" => exit(0),
        _ => basic(peb),
    }
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC is allowed in user mode (CR4.TSD clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Writes `BENCHDATA <ticks> <ops>` for the kernel's benchmark driver.
fn report(ticks: u64, ops: u64) -> ! {
    let mut line = [0u8; 64];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        for &b in s {
            if n < line.len() {
                line[n] = b;
                n += 1;
            }
        }
    };
    put(b"BENCHDATA ");
    let num = |mut v: u64, put: &mut dyn FnMut(&[u8])| {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        put(&d[i..]);
    };
    num(ticks, &mut put);
    put(b" ");
    num(ops, &mut put);
    print(core::str::from_utf8(&line[..n]).unwrap_or("BENCHDATA 0 0"));
    exit(0)
}

/// `bench <name>`: one timed loop of a system-call benchmark (TSC ticks,
/// which are instructions under `-icount shift=0`); every operation's
/// result is checked, a failure exits with 0xE0000100.
fn bench(arg: &[u8]) -> ! {
    let name = arg.trim_ascii();
    let fail = || exit(0xE000_0100u32 as i32);
    match name {
        b"sys_null_call" => {
            const N: u64 = 2000;
            let t0 = rdtsc();
            for _ in 0..N {
                // SAFETY: an unknown service number only returns a status.
                if unsafe { sys::invalid_service() } != STATUS_INVALID_SYSTEM_SERVICE {
                    fail();
                }
            }
            report(rdtsc() - t0, N)
        }
        b"sys_event_create_close" => {
            const N: u64 = 1000;
            let t0 = rdtsc();
            for _ in 0..N {
                let mut h = 0u64;
                // SAFETY: `h` is writable; no object attributes.
                if unsafe { NtCreateEvent(&mut h, 0x1F0003, 0, 1, 0) } != 0 {
                    fail();
                }
                // SAFETY: closing the handle just created.
                if unsafe { NtClose(h) } != 0 {
                    fail();
                }
            }
            report(rdtsc() - t0, N)
        }
        b"sys_virtual_alloc_free" => {
            const N: u64 = 500;
            let t0 = rdtsc();
            for _ in 0..N {
                let (mut va, mut size) = (0u64, 0x10000u64);
                // SAFETY: in/out parameters are ours.
                let s = unsafe {
                    NtAllocateVirtualMemory(NT_CURRENT_PROCESS, &mut va, 0, &mut size, 0x3000, 0x04)
                };
                if s != 0 {
                    fail();
                }
                let mut fsize = 0u64;
                // SAFETY: as above.
                if unsafe { NtFreeVirtualMemory(NT_CURRENT_PROCESS, &mut va, &mut fsize, 0x8000) }
                    != 0
                {
                    fail();
                }
            }
            report(rdtsc() - t0, N)
        }
        b"sys_demand_zero_fault_user" => {
            const PAGES: u64 = 256;
            let (mut va, mut size) = (0u64, PAGES * 4096);
            // SAFETY: in/out parameters are ours.
            let s = unsafe {
                NtAllocateVirtualMemory(NT_CURRENT_PROCESS, &mut va, 0, &mut size, 0x3000, 0x04)
            };
            if s != 0 {
                fail();
            }
            let t0 = rdtsc();
            for i in 0..PAGES {
                // SAFETY: committed read/write; the first touch is a demand-zero fault.
                unsafe { ((va + i * 4096) as *mut u64).write_volatile(i + 1) };
            }
            let span = rdtsc() - t0;
            // SAFETY: as above.
            if (0..PAGES)
                .any(|i| unsafe { ((va + i * 4096) as *const u64).read_volatile() } != i + 1)
            {
                fail();
            }
            let mut fsize = 0u64;
            // SAFETY: as above.
            if unsafe { NtFreeVirtualMemory(NT_CURRENT_PROCESS, &mut va, &mut fsize, 0x8000) } != 0
            {
                fail();
            }
            report(span, PAGES)
        }
        other => match procs::bench(other) {
            Some((ticks, ops)) => report(ticks, ops),
            None => exit(0xE000_0101u32 as i32),
        },
    }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    print("ntrsuser: panic");
    exit(0xE000_FFFFu32 as i32)
}
