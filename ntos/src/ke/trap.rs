//! Trap dispatching: the IDT, entry stubs that build a `KTRAP_FRAME`, and
//! `KiDispatchException` for kernel-mode faults (*Windows Internals*, Part 2,
//! ch. 8, "Trap dispatching").

use crate::ke::bugcheck::ke_bug_check_ex;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::bugcheck::*;

/// `KTRAP_FRAME` (x64), at NT's offsets: 0x190 bytes, `Rip` at 0x168.
#[repr(C)]
pub struct KTrapFrame {
    pub p1_home: u64,
    pub p2_home: u64,
    pub p3_home: u64,
    pub p4_home: u64,
    pub p5: u64,
    pub previous_mode: u8,
    pub previous_irql: u8,
    pub fault_indicator: u8,
    pub exception_active: u8,
    pub mx_csr: u32,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub gs_base: u64,
    pub xmm: [[u64; 2]; 6],
    pub fault_address: u64,
    pub dr: [u64; 6],
    pub debug_control: u64,
    pub last_branch_to_rip: u64,
    pub last_branch_from_rip: u64,
    pub last_exception_to_rip: u64,
    pub last_exception_from_rip: u64,
    pub seg_ds: u16,
    pub seg_es: u16,
    pub seg_fs: u16,
    pub seg_gs: u16,
    pub trap_frame: u64,
    pub rbx: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub error_code: u64,
    pub rip: u64,
    pub seg_cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub seg_ss: u64,
}

const _: () = assert!(core::mem::size_of::<KTrapFrame>() == 0x190);
const _: () = assert!(core::mem::offset_of!(KTrapFrame, rax) == 0x30);
const _: () = assert!(core::mem::offset_of!(KTrapFrame, rbx) == 0x140);
const _: () = assert!(core::mem::offset_of!(KTrapFrame, error_code) == 0x160);
const _: () = assert!(core::mem::offset_of!(KTrapFrame, rip) == 0x168);

/// The non-volatile registers a trap frame lacks (R12-R15, XMM6-XMM15),
/// saved below the trap frame by the exception entry and `KiSystemCall64`
/// and restored from it by their full-restore exits: ntrs's part of NT's
/// `KEXCEPTION_FRAME` (RBX, RDI, RSI, RBP are in the trap frame here). Its
/// first 0x20 bytes are the home area of the dispatcher's call.
#[repr(C, align(16))]
pub struct KExceptionFrame {
    pub p1_home: u64,
    pub p2_home: u64,
    pub p3_home: u64,
    pub p4_home: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// XMM6 .. XMM15.
    pub xmm: [[u64; 2]; 10],
}

const _: () = assert!(core::mem::size_of::<KExceptionFrame>() == 0xE0);
const _: () = assert!(core::mem::offset_of!(KExceptionFrame, xmm) == 0x40);

impl KTrapFrame {
    /// This trap frame with the exception frame right below it (user-mode
    /// trap frames built by an exception entry or `KiSystemCall64` have one).
    ///
    /// # Safety
    /// The frame must have been built by the exception entry (vector < 0x100)
    /// or `KiSystemCall64`, and still be live.
    pub unsafe fn with_exception_frame(&mut self) -> (&mut KTrapFrame, &mut KExceptionFrame) {
        let ef = (self as *mut KTrapFrame as *mut u8)
            .wrapping_sub(core::mem::size_of::<KExceptionFrame>())
            as *mut KExceptionFrame;
        // SAFETY: per the contract, the entry reserved these 0xE0 bytes
        // below the trap frame; they do not overlap it.
        (self, unsafe { &mut *ef })
    }
}

// Entry stubs (`define_stubs!` below). Vectors without a hardware error code
// push 0 so every frame has the same shape; the stub then reserves the rest of
// the KTRAP_FRAME, saves rax, loads the vector number and joins KiTrapCommon.
// Returning to user mode swaps GS back (swapgs discipline, checked through
// the saved CS).
core::arch::global_asm!(
    ".global KiTrapCommon",
    "KiTrapCommon:",
    "test byte ptr [rsp + 0x170], 1",
    "jz 2f",
    "swapgs",
    "2:",
    "mov [rsp + 0x38], rcx",
    "mov [rsp + 0x40], rdx",
    "mov [rsp + 0x48], r8",
    "mov [rsp + 0x50], r9",
    "mov [rsp + 0x58], r10",
    "mov [rsp + 0x60], r11",
    "stmxcsr [rsp + 0x2C]",
    "movaps [rsp + 0x70], xmm0",
    "movaps [rsp + 0x80], xmm1",
    "movaps [rsp + 0x90], xmm2",
    "movaps [rsp + 0xA0], xmm3",
    "movaps [rsp + 0xB0], xmm4",
    "movaps [rsp + 0xC0], xmm5",
    "mov [rsp + 0x140], rbx",
    "mov [rsp + 0x148], rdi",
    "mov [rsp + 0x150], rsi",
    "mov [rsp + 0x158], rbp",
    "mov rcx, rsp",
    "mov edx, eax",
    "cld",
    // Exceptions (not interrupts) also save the non-volatile registers in
    // an exception frame below the trap frame, so a user-mode exception's
    // CONTEXT holds them and a changed context restores them.
    "cmp eax, 0x100",
    "jae 4f",
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
    "mov r8, rsp",
    "call KiDispatchTrap",
    ".global KiExceptionFrameExit",
    "KiExceptionFrameExit:",
    "mov r12, [rsp + 0x20]",
    "mov r13, [rsp + 0x28]",
    "mov r14, [rsp + 0x30]",
    "mov r15, [rsp + 0x38]",
    "movaps xmm6, [rsp + 0x40]",
    "movaps xmm7, [rsp + 0x50]",
    "movaps xmm8, [rsp + 0x60]",
    "movaps xmm9, [rsp + 0x70]",
    "movaps xmm10, [rsp + 0x80]",
    "movaps xmm11, [rsp + 0x90]",
    "movaps xmm12, [rsp + 0xA0]",
    "movaps xmm13, [rsp + 0xB0]",
    "movaps xmm14, [rsp + 0xC0]",
    "movaps xmm15, [rsp + 0xD0]",
    "add rsp, 0xE0",
    "jmp KiTrapExit",
    "4:",
    "xor r8d, r8d",
    "call KiDispatchTrap",
    // The trap exit (`KiExceptionExit`/`KiSystemServiceExit`'s iretq path):
    // restores the frame and returns; user threads also enter ring 3 here.
    ".global KiTrapExit",
    "KiTrapExit:",
    "cli",
    "ldmxcsr [rsp + 0x2C]",
    "movaps xmm0, [rsp + 0x70]",
    "movaps xmm1, [rsp + 0x80]",
    "movaps xmm2, [rsp + 0x90]",
    "movaps xmm3, [rsp + 0xA0]",
    "movaps xmm4, [rsp + 0xB0]",
    "movaps xmm5, [rsp + 0xC0]",
    "mov rax, [rsp + 0x30]",
    "mov rcx, [rsp + 0x38]",
    "mov rdx, [rsp + 0x40]",
    "mov r8, [rsp + 0x48]",
    "mov r9, [rsp + 0x50]",
    "mov r10, [rsp + 0x58]",
    "mov r11, [rsp + 0x60]",
    "mov rbx, [rsp + 0x140]",
    "mov rdi, [rsp + 0x148]",
    "mov rsi, [rsp + 0x150]",
    "mov rbp, [rsp + 0x158]",
    "test byte ptr [rsp + 0x170], 1",
    "jz 3f",
    "swapgs",
    "3:",
    "add rsp, 0x168",
    "iretq",
);

// Interrupt stubs for vectors 0x1F..=0xFF (`KiInterruptDispatch` entry
// points): 32 bytes apart, each passes 0x100 | vector to KiTrapCommon.
core::arch::global_asm!(
    ".global KiInterruptStubs",
    ".balign 32",
    "KiInterruptStubs:",
    ".set ki_vec, 0x1F",
    ".rept 0xE1",
    ".balign 32",
    "push 0",
    "sub rsp, 0x160",
    "mov [rsp + 0x30], rax",
    "mov eax, 0x100 + ki_vec",
    "jmp KiTrapCommon",
    ".set ki_vec, ki_vec + 1",
    ".endr",
);

extern "C" {
    fn KiInterruptStubs();
}

/// Entry stub for interrupt vector `v` (>= 0x1F).
pub fn interrupt_stub(v: u8) -> u64 {
    KiInterruptStubs as *const () as u64 + (v as u64 - 0x1F) * 32
}

macro_rules! define_stubs {
    ($( $name:ident $vec:literal $err:literal ),* $(,)?) => {
        core::arch::global_asm!(
            $(
                concat!(".global ", stringify!($name)),
                concat!(stringify!($name), ":"),
                concat!(".if ", $err, " == 0"),
                "push 0",
                ".endif",
                "sub rsp, 0x160",
                "mov [rsp + 0x30], rax",
                concat!("mov eax, ", $vec),
                "jmp KiTrapCommon",
            )*
        );
        extern "C" { $( fn $name(); )* }
        /// Every entry stub with its vector.
        pub fn entry_stubs() -> [(u8, u64); [$($vec),*].len()] {
            [$( ($vec, $name as *const () as usize as u64) ),*]
        }
    };
}

define_stubs! {
    KiDivideErrorFault 0 0,
    KiDebugTrapOrFault 1 0,
    KiNmiInterrupt 2 0,
    KiBreakpointTrap 3 0,
    KiOverflowTrap 4 0,
    KiBoundFault 5 0,
    KiInvalidOpcodeFault 6 0,
    KiNpxNotAvailableFault 7 0,
    KiDoubleFaultAbort 8 1,
    KiNpxSegmentOverrunAbort 9 0,
    KiInvalidTssFault 10 1,
    KiSegmentNotPresentFault 11 1,
    KiStackFault 12 1,
    KiGeneralProtectionFault 13 1,
    KiPageFault 14 1,
    KiFloatingErrorFault 16 0,
    KiAlignmentFault 17 1,
    KiMcheckAbort 18 0,
    KiXmmException 19 0,
    KiVirtualizationException 20 0,
    KiControlProtectionFault 21 1,
    KiUnexpectedInterrupt 255 0,
}

/// `KIDTENTRY64`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct KIdtEntry64 {
    pub offset_low: u16,
    pub selector: u16,
    pub ist_type: u16,
    pub offset_middle: u16,
    pub offset_high: u32,
    pub reserved: u32,
}

impl KIdtEntry64 {
    pub fn interrupt_gate(handler: u64, ist: u8, dpl: u8) -> Self {
        KIdtEntry64 {
            offset_low: handler as u16,
            selector: crate::ke::gdt::KGDT64_R0_CODE,
            ist_type: (ist as u16 & 7) | (0x8E00 | ((dpl as u16 & 3) << 13)),
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
    pub fn handler(&self) -> u64 {
        self.offset_low as u64 | (self.offset_middle as u64) << 16 | (self.offset_high as u64) << 32
    }
}

/// Fills an IDT (`KiInitializeIdt`): exceptions get their stubs, #DF/NMI/#MC
/// their IST stacks, #BP is reachable from ring 3 like NT's, and every other
/// vector goes to `KiUnexpectedInterrupt` until the HAL connects it.
pub fn build_idt(idt: &mut [KIdtEntry64; 256]) {
    let stubs = entry_stubs();
    let unexpected = stubs.iter().find(|s| s.0 == 255).unwrap().1;
    for e in idt.iter_mut() {
        *e = KIdtEntry64::interrupt_gate(unexpected, 0, 0);
    }
    for &(vec, addr) in stubs.iter().filter(|s| s.0 != 255) {
        let ist = match vec {
            2 => crate::ke::gdt::IST_NMI,
            8 => crate::ke::gdt::IST_DOUBLE_FAULT,
            18 => crate::ke::gdt::IST_MACHINE_CHECK,
            _ => 0,
        };
        let dpl = if vec == 3 || vec == 4 { 3 } else { 0 };
        idt[vec as usize] = KIdtEntry64::interrupt_gate(addr, ist, dpl);
    }
    for v in 0x1Fu8..=0xFF {
        idt[v as usize] = KIdtEntry64::interrupt_gate(interrupt_stub(v), 0, 0);
    }
}

/// Exception code NT raises for a hardware vector (`KiXxxFault` → `STATUS_*`).
pub fn exception_code(vector: u32) -> u32 {
    match vector {
        0 => 0xC000_0094,       // STATUS_INTEGER_DIVIDE_BY_ZERO
        1 => 0x8000_0004,       // STATUS_SINGLE_STEP
        3 => 0x8000_0003,       // STATUS_BREAKPOINT
        4 => 0xC000_0095,       // STATUS_INTEGER_OVERFLOW
        5 => 0xC000_008C,       // STATUS_ARRAY_BOUNDS_EXCEEDED
        6 => 0xC000_001D,       // STATUS_ILLEGAL_INSTRUCTION
        13 | 14 => 0xC000_0005, // STATUS_ACCESS_VIOLATION
        17 => 0x8000_0002,      // STATUS_DATATYPE_MISALIGNMENT
        _ => 0xC000_0005,
    }
}

/// The memory manager's page-fault entry points, registered in phase 0
/// (the kernel does not import the memory manager; NT's `KiPageFault`
/// calls `MmAccessFault` the same way, one layer up).
#[derive(Clone, Copy)]
pub struct PageFaultRoutines {
    /// `MmAccessFault` for a user address of the current process: `Ok` when
    /// resolved, else the exception status.
    pub access_fault: fn(u64, bool, bool) -> Result<(), nt::NtStatus>,
    /// Whether a user address space is current (the thread runs in, or is
    /// attached to, a process).
    pub user_space_current: fn() -> bool,
    /// PAGE_FAULT_IN_NONPAGED_AREA parameter 4 for an address.
    pub nonpaged_fault_type: fn(u64) -> u64,
    /// `MmAccessFault` for a pageable system address (the system cache's
    /// views of mapped files), below DISPATCH_LEVEL: `None` when the
    /// address is not in such a range, else whether the page was made valid.
    pub system_fault: fn(u64, bool) -> Option<Result<(), nt::NtStatus>>,
}

static PAGE_FAULT: crate::rtl::Once<PageFaultRoutines> = crate::rtl::Once::new();

/// Registers the memory manager's page-fault routines (phase 0).
pub fn register_page_fault_routines(r: PageFaultRoutines) {
    PAGE_FAULT.set(r);
}

/// Page-fault error code bits (the hardware's, which NT's 0x50 reports as
/// parameter 2 on x64: 0 read, 2 write, 0x10 execute).
const PF_WRITE: u64 = 1 << 1;
const PF_EXECUTE: u64 = 1 << 4;

/// IRQL_NOT_LESS_OR_EQUAL parameter 3: bit 0 set for a write, bit 3 for an execute.
fn irql_fault_kind(error_code: u64) -> u64 {
    let mut k = 0;
    if error_code & PF_WRITE != 0 {
        k |= 1;
    }
    if error_code & PF_EXECUTE != 0 {
        k |= 1 << 3;
    }
    k
}

/// Probe support for the boot tests: a probe stores its resume address here
/// before executing a faulting instruction; the dispatcher records the fault
/// in `KI_PROBE_*` and resumes there instead of bugchecking.
#[no_mangle]
pub static KI_PROBE_RESUME: AtomicU64 = AtomicU64::new(0);
#[no_mangle]
pub static KI_PROBE_RSP: AtomicU64 = AtomicU64::new(0);
pub static KI_PROBE_VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
pub static KI_PROBE_ERROR: AtomicU64 = AtomicU64::new(0);
pub static KI_PROBE_CR2: AtomicU64 = AtomicU64::new(0);
pub static KI_PROBE_RIP: AtomicU64 = AtomicU64::new(0);
pub static KI_PROBE_HANDLER_RSP: AtomicU64 = AtomicU64::new(0);
/// The exception code (NTSTATUS) the last probed fault raised.
pub static KI_PROBE_STATUS: AtomicU64 = AtomicU64::new(0);

/// The Rust half of every trap (`KiDispatchException` for kernel mode).
#[no_mangle]
extern "C" fn KiDispatchTrap(frame: &mut KTrapFrame, vector: u32, exframe: *mut KExceptionFrame) {
    frame.previous_mode = (frame.seg_cs & 1) as u8;
    frame.previous_irql = crate::ke::irql();
    if vector == 2 && crate::ke::mp::FREEZE.load(Ordering::SeqCst) {
        crate::ke::mp::freeze_this_processor(
            frame.rip,
            frame.rsp,
            frame.previous_irql,
            frame.seg_cs & 3 == 0,
        );
    }
    if vector >= 0x100 {
        if vector == 0x100 + crate::hal::apic::CLOCK_VECTOR as u32 {
            crate::ke::clock::note_interrupted(frame.rip, frame.rsp);
        }
        crate::ke::intr::dispatch_interrupt(vector as u8);
        return;
    }
    // Page faults on user addresses go to the memory manager first, but
    // only below DISPATCH_LEVEL: the memory manager may have to wait
    // (paging file, locks), so at DISPATCH_LEVEL or above a fault on
    // pageable or user memory stops the system as on NT.
    let mut status = exception_code(vector);
    let cr2 = if vector == 14 {
        crate::hal::read_cr2()
    } else {
        0
    };
    if vector == 14 {
        let va = cr2;
        if va < 0x0000_8000_0000_0000 && frame.previous_irql >= crate::ke::DISPATCH_LEVEL {
            ke_bug_check_ex(
                IRQL_NOT_LESS_OR_EQUAL,
                va,
                frame.previous_irql as u64,
                irql_fault_kind(frame.error_code),
                frame.rip,
            );
        }
        if va >= 0xFFFF_8000_0000_0000 && frame.previous_irql < crate::ke::DISPATCH_LEVEL {
            // A pageable system address (a system cache view): resolved with
            // interrupts on, like a user fault; paging I/O may wait.
            if let Some(pf) = PAGE_FAULT.get() {
                let f = crate::hal::interrupts_enabled();
                if frame.eflags & 0x200 != 0 {
                    crate::hal::restore_interrupts(0x200);
                }
                let r = (pf.system_fault)(va, frame.error_code & 2 != 0);
                if !f {
                    crate::hal::disable_interrupts();
                }
                if let Some(Ok(())) = r {
                    return;
                }
            }
        }
        if va < 0x0000_8000_0000_0000 {
            let write = frame.error_code & 2 != 0;
            let execute = frame.error_code & 0x10 != 0;
            // Faults are resolved at the IRQL they happened at, with interrupts on.
            let f = crate::hal::interrupts_enabled();
            if frame.eflags & 0x200 != 0 {
                crate::hal::restore_interrupts(0x200);
            }
            let r = match PAGE_FAULT.get() {
                Some(pf) => (pf.access_fault)(va, write, execute),
                None => Err(nt::status::STATUS_ACCESS_VIOLATION),
            };
            if !f {
                crate::hal::disable_interrupts();
            }
            match r {
                Ok(()) => return,
                Err(s) => status = s.as_u32(),
            }
        }
    }
    // A fault on a user buffer inside the kernel's user-copy routine
    // returns the status to the service; a fault in user mode is the
    // process's exception (`KiDispatchException` with PreviousMode UserMode).
    if crate::ke::user::fixup_user_copy_fault(frame, status) {
        return;
    }
    if frame.seg_cs & 1 != 0 && !exframe.is_null() && crate::ke::user::user_exceptions_handled() {
        // SAFETY: the exception entry built `exframe` below this frame.
        unsafe { crate::ke::except::dispatch_user_fault(frame, exframe, vector, status, cr2) };
        return;
    }
    KI_PROBE_STATUS.store(status as u64, Ordering::SeqCst);
    let resume = KI_PROBE_RESUME.load(Ordering::SeqCst);
    if resume != 0 {
        let here: u64;
        // SAFETY: reading RSP has no side effects.
        unsafe { core::arch::asm!("mov {}, rsp", out(reg) here, options(nomem, nostack)) };
        KI_PROBE_HANDLER_RSP.store(here, Ordering::SeqCst);
        KI_PROBE_VECTOR.store(vector as u64, Ordering::SeqCst);
        KI_PROBE_ERROR.store(frame.error_code, Ordering::SeqCst);
        KI_PROBE_CR2.store(crate::hal::read_cr2(), Ordering::SeqCst);
        KI_PROBE_RIP.store(frame.rip, Ordering::SeqCst);
        KI_PROBE_RESUME.store(0, Ordering::SeqCst);
        frame.rip = resume;
        return;
    }
    match vector {
        3 => {
            // No debugger is attached over the wire; kd reports and continues.
            crate::dbg_println!(
                "Break instruction exception - code 80000003 (first chance) at {:#018x}",
                frame.rip - 1
            );
        }
        8 => ke_bug_check_ex(UNEXPECTED_KERNEL_MODE_TRAP, 8, frame.rsp, frame.rip, 0),
        // An invalid system address, or a user address while no user
        // address space is current (a system thread not attached to a
        // process, e.g. a kernel NULL dereference).
        14 if crate::hal::read_cr2() >= 0x0000_8000_0000_0000
            || !PAGE_FAULT.get().is_some_and(|pf| (pf.user_space_current)()) =>
        {
            let va = crate::hal::read_cr2();
            ke_bug_check_ex(
                PAGE_FAULT_IN_NONPAGED_AREA,
                va,
                frame.error_code & (PF_WRITE | PF_EXECUTE),
                frame.rip,
                PAGE_FAULT
                    .get()
                    .map_or(2, |pf| (pf.nonpaged_fault_type)(va)),
            )
        }
        2 | 18 | 255 => ke_bug_check_ex(
            UNEXPECTED_KERNEL_MODE_TRAP,
            vector as u64,
            frame.rsp,
            frame.rip,
            0,
        ),
        _ => ke_bug_check_ex(
            KMODE_EXCEPTION_NOT_HANDLED,
            status as u64,
            frame.rip,
            0,
            if vector == 13 { u64::MAX } else { 0 },
        ),
    }
}
