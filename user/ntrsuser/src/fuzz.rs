//! `fuzz <calls> <seed>`: a system-call fuzzer. Each call picks a service
//! from the one list (`nt::syscalls::SERVICES`), or now and then a number
//! no table has, and random arguments from a pool of hostile values (NULL,
//! pseudo-handles, small handle values, kernel addresses, unmapped and
//! read-only pages, a writable scratch buffer with random contents and
//! unaligned pointers into it, huge lengths, random 64-bit values), the
//! ones past the fourth on the stack as for a real stub. Every return must
//! be an NTSTATUS the status table names; an unknown one ends the process
//! with 0xE00000F1 after printing the service and the value.
//!
//! Services that would end, stop or redirect the fuzzer itself are left
//! out: NtTerminateProcess, NtTerminateThread, NtSuspendThread,
//! NtContinue, NtRaiseException, NtSetContextThread, NtQueueApcThread(Ex),
//! NtCreateThreadEx and NtCreateUserProcess (random start addresses run),
//! NtWaitForSingleObject and NtDelayExecution (unbounded waits),
//! NtFreeVirtualMemory and NtProtectVirtualMemory (they could unmap or
//! protect the fuzzer's own image and stack), NtAssignProcessToJobObject
//! (a kill-on-close job could then end it), and NtDisplayString (the log).

use crate::sys::*;
use crate::{exit, print, NT_CURRENT_PROCESS};

core::arch::global_asm!(
    ".globl ntrs_fuzz_call",
    ".p2align 4",
    "ntrs_fuzz_call:",
    // rcx = service number, rdx = 12 arguments. Arguments 5-12 go where
    // the kernel reads them: rsp + 0x28 at the `syscall`.
    "push rsi",
    "sub rsp, 0x80",
    "mov rsi, rdx",
    "mov eax, ecx",
    "mov r11, [rsi + 0x20]",
    "mov [rsp + 0x28], r11",
    "mov r11, [rsi + 0x28]",
    "mov [rsp + 0x30], r11",
    "mov r11, [rsi + 0x30]",
    "mov [rsp + 0x38], r11",
    "mov r11, [rsi + 0x38]",
    "mov [rsp + 0x40], r11",
    "mov r11, [rsi + 0x40]",
    "mov [rsp + 0x48], r11",
    "mov r11, [rsi + 0x48]",
    "mov [rsp + 0x50], r11",
    "mov r11, [rsi + 0x50]",
    "mov [rsp + 0x58], r11",
    "mov r11, [rsi + 0x58]",
    "mov [rsp + 0x60], r11",
    "mov r10, [rsi]",
    "mov rdx, [rsi + 0x08]",
    "mov r8, [rsi + 0x10]",
    "mov r9, [rsi + 0x18]",
    "syscall",
    "add rsp, 0x80",
    "pop rsi",
    "ret",
);

extern "system" {
    fn ntrs_fuzz_call(number: u64, args: *const u64) -> i32;
}

const EXCLUDED: &[&str] = &[
    "NtTerminateProcess",
    "NtTerminateThread",
    "NtSuspendThread",
    "NtContinue",
    "NtRaiseException",
    "NtSetContextThread",
    "NtQueueApcThread",
    "NtQueueApcThreadEx",
    "NtCreateThreadEx",
    "NtCreateUserProcess",
    "NtWaitForSingleObject",
    "NtDelayExecution",
    "NtFreeVirtualMemory",
    "NtProtectVirtualMemory",
    "NtAssignProcessToJobObject",
    "NtDisplayString",
];

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SCRATCH: u64 = 0x10000;

fn number(arg: &[u8], which: usize, default: u64) -> u64 {
    let mut words = arg.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let Some(w) = words.nth(which) else {
        return default;
    };
    w.iter().filter(|b| b.is_ascii_digit()).fold(0u64, |n, &b| {
        n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'))
    })
}

/// One hostile argument.
fn argument(r: &mut Rng, scratch: u64) -> u64 {
    match r.below(16) {
        0 => 0,
        1 => NT_CURRENT_PROCESS,
        2 => u64::MAX - 1,
        3 => 4 * (1 + r.below(64)),
        4 => 0xFFFF_F800_0000_0000 + 8 * r.below(0x10_0000),
        5 => 0xFFFF_8000_0000_0000,
        6 => 0x1000 * (1 + r.below(15)),
        7 => nt::user::MM_SHARED_USER_DATA_VA,
        8 => 0x7FFF_FFFF_0000 - 8 * r.below(4),
        9 | 10 => scratch + 8 * r.below(SCRATCH / 8 - 64),
        11 => scratch + r.below(SCRATCH),
        12 => [0xFFFF_FFFF, 0x7FFF_FFFF, 0x30, 0x1_0000_0000][r.below(4) as usize],
        13 => r.below(0x100),
        _ => r.next(),
    }
}

pub fn fuzz(arg: &[u8]) -> ! {
    let calls = number(arg, 0, 2000);
    let mut r = Rng(number(arg, 1, 1) | 1);
    print("ntrsuser: fuzz");
    let (mut va, mut size) = (0u64, SCRATCH);
    // SAFETY: the out parameters are writable; MEM_COMMIT | MEM_RESERVE, read/write.
    if unsafe { NtAllocateVirtualMemory(NT_CURRENT_PROCESS, &mut va, 0, &mut size, 0x3000, 0x04) }
        != 0
    {
        exit(0xE000_00F0u32 as i32);
    }
    let targets: [Option<&nt::syscalls::SystemService>; 64] = {
        let mut t = [None; 64];
        let mut n = 0;
        for s in nt::syscalls::SERVICES {
            if !EXCLUDED.contains(&s.name) && n < t.len() {
                t[n] = Some(s);
                n += 1;
            }
        }
        t
    };
    let count = targets.iter().flatten().count() as u64;
    for i in 0..calls {
        if i % 64 == 0 {
            // Fresh random contents (structures, strings, pointers) in the
            // scratch buffer, which the services may have written.
            for o in (0..SCRATCH).step_by(8) {
                let v = if r.below(4) == 0 {
                    argument(&mut r, va)
                } else {
                    r.next()
                };
                // SAFETY: `va` is 64 KiB of this process's committed
                // read/write memory; the fuzzer never frees it.
                unsafe { ((va + o) as *mut u64).write_volatile(v) };
            }
        }
        let (name, num) = if r.below(32) == 0 {
            ("(unlisted)", 0x1C8 + r.below(0x1000))
        } else {
            match targets[r.below(count) as usize] {
                Some(s) => (s.name, u64::from(s.number)),
                None => continue,
            }
        };
        let args: [u64; 12] = core::array::from_fn(|_| argument(&mut r, va));
        // SAFETY: a system call with hostile arguments: the kernel must
        // refuse what it cannot use. The services that could end, stop or
        // redirect this process are excluded above; the memory the kernel
        // may write is the scratch buffer or memory it must refuse.
        let status = unsafe { ntrs_fuzz_call(num, args.as_ptr()) };
        if nt::NtStatus(status).name().is_none() {
            print("ntrsuser: fuzz: a service returned an unknown NTSTATUS:");
            print(name);
            let mut hex = [0u8; 8];
            for (k, h) in hex.iter_mut().enumerate() {
                *h = b"0123456789ABCDEF"[((status as u32) >> (28 - 4 * k)) as usize & 0xF];
            }
            print(core::str::from_utf8(&hex).unwrap_or("?"));
            exit(0xE000_00F1u32 as i32);
        }
    }
    print("ntrsuser: fuzz done");
    exit(0)
}
