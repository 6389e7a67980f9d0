//! System service dispatching (*Windows Internals*, Part 2, ch. 8, "System
//! service handling"): the `SYSCALL` entry `KiSystemCall64`, which builds a
//! `KTRAP_FRAME` at NT's offsets on the thread's kernel stack, copies
//! arguments 5 and up from the caller's stack under fault protection and
//! dispatches through the service table (`KiServiceTable`) that the
//! executive registers, built from the one list in `nt::syscalls`.
//!
//! Entry: `swapgs`; the user RSP goes to `KPCR.UserRsp` (gs:[0x10]); the
//! kernel stack is the running thread's `InitialStack` (the TSS's RSP0, found
//! through `KPCR.TssBase`); the frame records RIP (from RCX), RFLAGS (from
//! R11), RSP, CS 0x33 / SS 0x2B, the service number (RAX) and the four
//! register arguments (R10, RDX, R8, R9), `PreviousMode` = UserMode.
//! Exit: `sysretq`, unless the frame's RIP is not canonical (SYSRET would
//! fault in kernel mode with the user's stack) or a service asked for a
//! full restore (a changed context): then the trap exit with `iretq`.
//! Volatile registers a service does not return are zeroed, so no kernel
//! value reaches user mode.

use super::trap::KTrapFrame;
use core::sync::atomic::{AtomicU8, Ordering};
use nt::status::*;
use nt::NtStatus;

const MSR_EFER: u32 = 0xC000_0080;
const MSR_STAR: u32 = 0xC000_0081;
const MSR_LSTAR: u32 = 0xC000_0082;
const MSR_SFMASK: u32 = 0xC000_0084;
/// EFLAGS cleared on `SYSCALL`: TF, IF, DF, NT, AC.
const SYSCALL_FLAG_MASK: u64 = 0x100 | 0x200 | 0x400 | 0x4000 | 0x4_0000;

/// Most arguments a service takes (NtCreateUserProcess and friends: 11).
pub const MAX_SERVICE_ARGUMENTS: usize = 16;

/// A service routine: its arguments (0-3 from registers, the rest from the
/// caller's stack) and the trap frame (for services that change the
/// context, e.g. `NtContinue`); returns the NTSTATUS put in RAX.
pub type ServiceRoutine = fn(&[u64; MAX_SERVICE_ARGUMENTS], &mut KTrapFrame) -> NtStatus;

/// One slot of `KiServiceTable`.
#[derive(Clone, Copy)]
pub struct ServiceEntry {
    pub routine: ServiceRoutine,
    pub arguments: u8,
    /// The service may make a user APC due without a wait
    /// (`NtTestAlert`, `NtContinue`): the exit checks for one.
    pub delivers_apcs: bool,
}

/// The service table, registered once by the executive (phase 1).
static SERVICE_TABLE: crate::rtl::Once<&'static [Option<ServiceEntry>]> = crate::rtl::Once::new();

/// Installs the service table (`KeAddSystemServiceTable` for table 0).
pub fn register_service_table(table: &'static [Option<ServiceEntry>]) {
    SERVICE_TABLE.set(table);
}

/// Whether SMEP was turned on (kd and the tests report it).
static SMEP: AtomicU8 = AtomicU8::new(0);

/// Whether the processor runs with SMEP (supervisor-mode execution prevention).
pub fn smep_enabled() -> bool {
    SMEP.load(Ordering::Relaxed) != 0
}

/// Per-processor set-up (`KiInitializeProcessor`'s system-call part):
/// EFER.SCE, STAR (kernel CS 0x10 / SS 0x18; user base 0x23 so that
/// SYSRET loads CS 0x33 and SS 0x2B), LSTAR = `KiSystemCall64`, SFMASK;
/// and CR4.SMEP where CPUID offers it. SMAP is left off: kernel code
/// (the memory manager's tests, the services' capture) still touches user
/// pages outside `stac`/`clac` brackets.
pub fn initialize_processor() {
    // SAFETY: these MSRs only configure the SYSCALL instruction, whose
    // target is the entry below; enabling SMEP only adds a protection
    // (the kernel never executes user pages).
    unsafe {
        let efer = crate::hal::rdmsr(MSR_EFER);
        crate::hal::wrmsr(MSR_EFER, efer | 1);
        crate::hal::wrmsr(MSR_STAR, (0x23u64 << 48) | (0x10u64 << 32));
        crate::hal::wrmsr(MSR_LSTAR, KiSystemCall64 as *const () as u64);
        crate::hal::wrmsr(MSR_SFMASK, SYSCALL_FLAG_MASK);
        let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
        if leaf7.ebx & (1 << 7) != 0 {
            let mut cr4: u64;
            core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
            cr4 |= 1 << 20;
            core::arch::asm!("mov cr4, {}", in(reg) cr4, options(nomem, nostack));
            SMEP.store(1, Ordering::Relaxed);
        }
    }
}

// KiSystemCall64. Frame offsets are KTRAP_FRAME's (trap.rs). The exit
// tests `ExceptionActive` (0x2B), which a service sets to ask for the full
// iretq restore of every volatile register from the frame.
core::arch::global_asm!(
    ".global KiSystemCall64",
    "KiSystemCall64:",
    "swapgs",
    "mov gs:[0x10], rsp",
    "mov rsp, gs:[0x08]",
    "mov rsp, [rsp + 4]",
    "sub rsp, 0x190",
    "mov qword ptr [rsp + 0x188], 0x2B",
    "mov [rsp + 0x178], r11",
    "mov qword ptr [rsp + 0x170], 0x33",
    "mov [rsp + 0x168], rcx",
    "mov rcx, gs:[0x10]",
    "mov [rsp + 0x180], rcx",
    "mov qword ptr [rsp + 0x160], 0",
    "mov [rsp + 0x30], rax",
    "mov [rsp + 0x38], r10",
    "mov [rsp + 0x40], rdx",
    "mov [rsp + 0x48], r8",
    "mov [rsp + 0x50], r9",
    "mov [rsp + 0x58], r10",
    "mov [rsp + 0x140], rbx",
    "mov [rsp + 0x148], rdi",
    "mov [rsp + 0x150], rsi",
    "mov [rsp + 0x158], rbp",
    "stmxcsr [rsp + 0x2C]",
    "mov word ptr [rsp + 0x28], 1",
    "mov word ptr [rsp + 0x2A], 0",
    "sti",
    "cld",
    // The exception frame (R12-R15, XMM6-XMM15) below the trap frame: the
    // context services and user APC delivery read and change it.
    "sub rsp, 0xE0",
    "mov [rsp + 0x20], r12",
    "mov [rsp + 0x28], r13",
    "mov [rsp + 0x30], r14",
    "mov [rsp + 0x38], r15",
    "movaps [rsp + 0x40], xmm6",
    "movaps [rsp + 0x50], xmm7",
    "movaps [rsp + 0x60], xmm8",
    "movaps [rsp + 0x70], xmm9",
    "movaps [rsp + 0x80], xmm10",
    "movaps [rsp + 0x90], xmm11",
    "movaps [rsp + 0xA0], xmm12",
    "movaps [rsp + 0xB0], xmm13",
    "movaps [rsp + 0xC0], xmm14",
    "movaps [rsp + 0xD0], xmm15",
    "lea rcx, [rsp + 0xE0]",
    "call KiSystemServiceDispatch",
    "cli",
    "cmp byte ptr [rsp + 0xE0 + 0x2B], 0",
    "jne 4f",
    "add rsp, 0xE0",
    "mov rcx, [rsp + 0x168]",
    // Canonical user RIP? (bits 63..47 all zero)
    "mov rax, rcx",
    "shr rax, 47",
    "jnz 3f",
    "ldmxcsr [rsp + 0x2C]",
    "mov rax, [rsp + 0x30]",
    "mov rbx, [rsp + 0x140]",
    "mov rdi, [rsp + 0x148]",
    "mov rsi, [rsp + 0x150]",
    "mov rbp, [rsp + 0x158]",
    "mov r11, [rsp + 0x178]",
    "xor edx, edx",
    "xor r8d, r8d",
    "xor r9d, r9d",
    "xor r10d, r10d",
    "pxor xmm0, xmm0",
    "pxor xmm1, xmm1",
    "pxor xmm2, xmm2",
    "pxor xmm3, xmm3",
    "pxor xmm4, xmm4",
    "pxor xmm5, xmm5",
    "mov rsp, [rsp + 0x180]",
    "swapgs",
    "sysretq",
    // Full restore through the trap exit (iretq).
    "3:",
    "mov byte ptr [rsp + 0x2B], 0",
    "jmp KiTrapExit",
    // A changed context: the exception frame's registers too.
    "4:",
    "mov byte ptr [rsp + 0xE0 + 0x2B], 0",
    "jmp KiExceptionFrameExit",
);

extern "C" {
    fn KiSystemCall64();
}

/// The Rust half of `KiSystemCall64` (`KiSystemServiceStart` ..
/// `KiSystemServiceCopyEnd`): looks the number up, copies stack arguments
/// from the caller's stack under fault protection, calls the service and
/// puts its status in RAX.
#[no_mangle]
extern "C" fn KiSystemServiceDispatch(frame: &mut KTrapFrame) {
    let number = frame.rax as u32;
    let entry = SERVICE_TABLE
        .get()
        .and_then(|t| t.get(number as usize).copied().flatten());
    let Some(entry) = entry else {
        frame.rax = STATUS_INVALID_SYSTEM_SERVICE.as_u32() as u64;
        return;
    };
    let mut args = [0u64; MAX_SERVICE_ARGUMENTS];
    args[0] = frame.r10;
    args[1] = frame.rdx;
    args[2] = frame.r8;
    args[3] = frame.r9;
    let n = (entry.arguments as usize).min(MAX_SERVICE_ARGUMENTS);
    if n > 4 {
        let mut stack = [0u8; (MAX_SERVICE_ARGUMENTS - 4) * 8];
        let len = (n - 4) * 8;
        if let Err(s) = super::user::copy_from_user(&mut stack[..len], frame.rsp.wrapping_add(0x28))
        {
            frame.rax = s.as_u32() as u64;
            return;
        }
        for (a, b) in args[4..n].iter_mut().zip(stack.chunks_exact(8)) {
            *a = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        }
    }
    frame.exception_active = 0;
    let status = (entry.routine)(&args, frame);
    // A service that replaced the context (NtContinue, NtRaiseException,
    // NtSetContextThread) left RAX as the context's.
    if frame.exception_active == 0 {
        frame.rax = status.as_u32() as u64;
    }
    // A user APC due on the way out (`KiDeliverApc(UserMode)` at the
    // service exit): after an alertable wait that it ended, `NtTestAlert`
    // or `NtContinue(.., TRUE)`.
    if status == STATUS_USER_APC || entry.delivers_apcs {
        super::except::deliver_user_apc(frame);
    }
}
