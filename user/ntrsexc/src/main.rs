//! ntrsexc.exe: user-mode exception and APC dispatching from ring 3.
//! It exports its own `KiUserExceptionDispatcher` and `KiUserApcDispatcher`
//! (ntdll does not exist yet; the kernel looks the names up in the image),
//! with the stack frames Windows 10 x64's ntdll expects: the exception
//! dispatcher is entered with RSP at the CONTEXT and the EXCEPTION_RECORD
//! at RSP+0x4F0; it calls the handler below and then `NtContinue`s with
//! the (changed) context, or raises the exception again as second chance
//! (`NtRaiseException(.., FALSE)`) when the handler declines. The APC
//! dispatcher calls `P4Home(P1Home, P2Home, P3Home)` of the CONTEXT at RSP
//! and `NtContinue(context, TRUE)`s.
//!
//! Commands: `dispatch` (faults and raised exceptions reach the handler with
//! the right records and contexts; context services), `apc` (user APCs),
//! `unhandled` (a declined exception ends the process with its code),
//! `badstack` (an exception with an unusable stack ends the process),
//! `kernel` (reads, writes and executes kernel memory: each an access
//! violation with the right parameters). Exit status 0 when every check
//! passes, else 0xE0000000 | the failed check's number.
#![no_std]
#![no_main]

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use nt::context::*;
use nt::user::{Peb, RtlUserProcessParameters, UnicodeString};

#[path = "../../ntrsuser/src/crt.rs"]
mod crt;

mod sys {
    use nt::context::{Context, ExceptionRecord};
    use nt::user::UnicodeString;

    macro_rules! stubs {
        ($($name:ident $number:literal $args:literal),* $(,)?) => {
            core::arch::global_asm!(
                $(
                    concat!(".globl ", stringify!($name)),
                    ".p2align 4",
                    concat!(stringify!($name), ":"),
                    "mov r10, rcx",
                    concat!("mov eax, ", stringify!($number)),
                    "syscall",
                    "ret",
                )*
            );
        };
    }
    nt::nt_services!(stubs);

    #[allow(non_snake_case, dead_code)]
    extern "system" {
        pub fn NtDisplayString(s: *const UnicodeString) -> i32;
        pub fn NtTerminateProcess(process: u64, status: i32) -> i32;
        pub fn NtContinue(ctx: *const Context, test_alert: u8) -> i32;
        pub fn NtRaiseException(rec: *const ExceptionRecord, ctx: *const Context, first: u8)
            -> i32;
        pub fn NtGetContextThread(thread: u64, ctx: *mut Context) -> i32;
        pub fn NtSetContextThread(thread: u64, ctx: *const Context) -> i32;
        pub fn NtTestAlert() -> i32;
        pub fn NtQueueApcThread(thread: u64, routine: u64, a1: u64, a2: u64, a3: u64) -> i32;
        pub fn NtCreateEvent(
            handle: *mut u64,
            access: u32,
            attributes: u64,
            event_type: u32,
            initial: u8,
        ) -> i32;
        pub fn NtWaitForSingleObject(handle: u64, alertable: u8, timeout: *const i64) -> i32;
        pub fn NtDelayExecution(alertable: u8, interval: *const i64) -> i32;
        pub fn NtClose(handle: u64) -> i32;
        pub fn NtYieldExecution() -> i32;
    }
}
use sys::*;

const NT_CURRENT_PROCESS: u64 = u64::MAX;
const NT_CURRENT_THREAD: u64 = u64::MAX - 1;
const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;
const STATUS_BREAKPOINT: u32 = 0x8000_0003;
const STATUS_USER_APC: i32 = 0xC0;
const STATUS_TIMEOUT: i32 = 0x102;

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

fn print_hex(label: &str, v: u64) {
    let mut b = [0u8; 120];
    let l = label.len().min(100);
    b[..l].copy_from_slice(&label.as_bytes()[..l]);
    for i in 0..16 {
        let d = (v >> (60 - 4 * i)) & 0xF;
        b[l + i] = if d < 10 {
            b'0' + d as u8
        } else {
            b'a' + d as u8 - 10
        };
    }
    print(core::str::from_utf8(&b[..l + 16]).unwrap_or("?"));
}

fn exit(status: u32) -> ! {
    // SAFETY: terminating the current process does not return.
    unsafe { NtTerminateProcess(NT_CURRENT_PROCESS, status as i32) };
    loop {
        core::hint::spin_loop();
    }
}

fn check(n: u32, ok: bool, what: &str) {
    if ok {
        print(what);
    } else {
        print("ntrsexc: FAILED");
        print(what);
        exit(0xE000_0000 | n);
    }
}

// What the handler does with the next exception.
const MODE_RESUME: u64 = 0;
const MODE_DECLINE: u64 = 1;
const MODE_SKIP_INT3: u64 = 2;
const MODE_RETURN: u64 = 3;

static MODE: AtomicU64 = AtomicU64::new(MODE_RESUME);
/// Where MODE_RESUME continues.
static RESUME: AtomicU64 = AtomicU64::new(0);
/// The faulting instruction's address (set by each test).
static AT: AtomicU64 = AtomicU64::new(0);
// What the handler saw.
static COUNT: AtomicU64 = AtomicU64::new(0);
static CODE: AtomicU64 = AtomicU64::new(0);
static ADDR: AtomicU64 = AtomicU64::new(0);
static NPARAMS: AtomicU64 = AtomicU64::new(0);
static INFO0: AtomicU64 = AtomicU64::new(0);
static INFO1: AtomicU64 = AtomicU64::new(0);
static CRIP: AtomicU64 = AtomicU64::new(0);
static CRSP: AtomicU64 = AtomicU64::new(0);
static CR12: AtomicU64 = AtomicU64::new(0);
static CXMM6: AtomicU64 = AtomicU64::new(0);
static CFLAGS: AtomicU64 = AtomicU64::new(0);
static CSEGS: AtomicU64 = AtomicU64::new(0);
static DISPATCH_RSP: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(
    ".globl KiUserExceptionDispatcher",
    ".p2align 4",
    "KiUserExceptionDispatcher:",
    "cld",
    "lea rcx, [rsp + 0x4F0]",
    "mov rdx, rsp",
    "sub rsp, 0x20",
    "call ntrsexc_dispatch",
    "add rsp, 0x20",
    "test al, al",
    "jz 1f",
    "mov rcx, rsp",
    "xor edx, edx",
    "call NtContinue",
    "ud2",
    "1:",
    "lea rcx, [rsp + 0x4F0]",
    "mov rdx, rsp",
    "xor r8d, r8d",
    "sub rsp, 0x20",
    "call NtRaiseException",
    "ud2",
    ".globl KiUserApcDispatcher",
    ".p2align 4",
    "KiUserApcDispatcher:",
    "mov rcx, [rsp]",
    "mov rdx, [rsp + 0x8]",
    "mov r8, [rsp + 0x10]",
    "mov rax, [rsp + 0x18]",
    "call rax",
    "mov rcx, rsp",
    "mov dl, 1",
    "call NtContinue",
    "ud2",
);

// `__chkstk` (frames over a page, as the test functions' contexts make):
// touches each page from the caller's stack pointer down to the new one,
// preserving every register (RAX holds the size).
core::arch::global_asm!(
    ".globl __chkstk",
    ".p2align 4",
    "__chkstk:",
    "push rcx",
    "push rax",
    "lea rcx, [rsp + 0x18]",
    "1:",
    "cmp rax, 0x1000",
    "jb 2f",
    "sub rcx, 0x1000",
    "test byte ptr [rcx], 0",
    "sub rax, 0x1000",
    "jmp 1b",
    "2:",
    "sub rcx, rax",
    "test byte ptr [rcx], 0",
    "pop rax",
    "pop rcx",
    "ret",
);

/// The exception handler the dispatcher calls: records what it got and
/// fixes the context as `MODE` says; returns whether to continue.
#[no_mangle]
extern "C" fn ntrsexc_dispatch(rec: *mut ExceptionRecord, ctx: *mut Context) -> u8 {
    // SAFETY: the kernel put both on this stack for the dispatcher.
    let (r, c) = unsafe { (&*rec, &mut *ctx) };
    DISPATCH_RSP.store(ctx as u64, SeqCst);
    COUNT.fetch_add(1, SeqCst);
    CODE.store(r.exception_code as u64, SeqCst);
    ADDR.store(r.exception_address, SeqCst);
    NPARAMS.store(r.number_parameters as u64, SeqCst);
    INFO0.store(r.exception_information[0], SeqCst);
    INFO1.store(r.exception_information[1], SeqCst);
    CRIP.store(c.rip, SeqCst);
    CRSP.store(c.rsp, SeqCst);
    CR12.store(c.r12, SeqCst);
    CXMM6.store(c.flt_save.xmm_registers[6].low, SeqCst);
    CFLAGS.store(c.context_flags as u64, SeqCst);
    CSEGS.store((c.seg_cs as u64) << 16 | c.seg_ss as u64, SeqCst);
    match MODE.load(SeqCst) {
        MODE_RESUME => {
            c.rip = RESUME.load(SeqCst);
            1
        }
        MODE_SKIP_INT3 => {
            c.rip += 1;
            c.r12 = 0xABCD;
            1
        }
        MODE_RETURN => {
            // SAFETY: a faulting `call` pushed its return address here.
            c.rip = unsafe { *(c.rsp as *const u64) };
            c.rsp += 8;
            1
        }
        _ => 0,
    }
}

/// Runs `$insn` (with the extra operands), which must fault; the handler
/// resumes after it (MODE_RESUME) or as the mode says.
macro_rules! faulting {
    ([$($insn:literal),* $(,)?] $(, $($rest:tt)*)?) => {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov [rip + {resume}], {t}",
            "lea {t}, [rip + 3f]",
            "mov [rip + {at}], {t}",
            "3:",
            $($insn,)*
            "2:",
            t = out(reg) _,
            resume = sym RESUME,
            at = sym AT
            $(, $($rest)*)?
        )
    };
}

fn reset(mode: u64) -> u64 {
    MODE.store(mode, SeqCst);
    CODE.store(0, SeqCst);
    NPARAMS.store(0, SeqCst);
    INFO0.store(u64::MAX, SeqCst);
    INFO1.store(0, SeqCst);
    COUNT.load(SeqCst)
}

/// Checks the last access violation: kind (0 read, 1 write, 8 execute) and address.
fn check_av(n: u32, before: u64, kind: u64, address: u64, what: &str) {
    check(
        n,
        COUNT.load(SeqCst) == before + 1
            && CODE.load(SeqCst) == STATUS_ACCESS_VIOLATION as u64
            && NPARAMS.load(SeqCst) == 2
            && INFO0.load(SeqCst) == kind
            && INFO1.load(SeqCst) == address,
        what,
    );
}

fn check_code(n: u32, before: u64, code: u32, what: &str) {
    check(
        n,
        COUNT.load(SeqCst) == before + 1
            && CODE.load(SeqCst) == code as u64
            && ADDR.load(SeqCst) == AT.load(SeqCst)
            && CRIP.load(SeqCst) == AT.load(SeqCst),
        what,
    );
}

fn base_context() -> Context {
    Context {
        context_flags: CONTEXT_FULL,
        mx_csr: 0x1F80,
        seg_cs: 0x33,
        seg_ss: 0x2B,
        eflags: 0x202,
        ..Default::default()
    }
}

/// Fills `ctx` (in rdx) with the current non-volatile registers and RSP,
/// RIP = label 2, sets RESUME to label 2, then runs `$call`; control comes
/// back at label 2 either way.
macro_rules! with_context {
    ([$($call:literal),* $(,)?] $(, $($rest:tt)*)?) => {
        core::arch::asm!(
            "lea rax, [rip + 2f]",
            "mov [rdx + 0xF8], rax",
            "mov [rip + {resume}], rax",
            "mov [rdx + 0x98], rsp",
            "mov [rdx + 0x90], rbx",
            "mov [rdx + 0xA0], rbp",
            "mov [rdx + 0xA8], rsi",
            "mov [rdx + 0xB0], rdi",
            "mov [rdx + 0xD8], r12",
            "mov [rdx + 0xE0], r13",
            "mov [rdx + 0xE8], r14",
            "mov [rdx + 0xF0], r15",
            "movups [rdx + 0x200], xmm6",
            "movups [rdx + 0x210], xmm7",
            "movups [rdx + 0x220], xmm8",
            "movups [rdx + 0x230], xmm9",
            "movups [rdx + 0x240], xmm10",
            "movups [rdx + 0x250], xmm11",
            "movups [rdx + 0x260], xmm12",
            "movups [rdx + 0x270], xmm13",
            "movups [rdx + 0x280], xmm14",
            "movups [rdx + 0x290], xmm15",
            $($call,)*
            "2:",
            resume = sym RESUME
            $(, $($rest)*)?
        )
    };
}

fn dispatch_tests() -> ! {
    print("ntrsexc: exception dispatch");
    // 1-3: int3, with the non-volatile registers in the context, and a
    // context change (R12) taking effect through NtContinue.
    let before = reset(MODE_SKIP_INT3);
    let r12_after: u64;
    let rsp_at: u64;
    // SAFETY: the handler skips the int3 and sets R12; nothing else changes.
    unsafe {
        faulting!(
            ["mov {sp}, rsp", "mov r12, 0x11112222", "mov {x}, 0x5555", "movq xmm6, {x}", "int3"],
            sp = out(reg) rsp_at,
            x = out(reg) _,
            inout("r12") 0u64 => r12_after,
            out("xmm6") _,
        )
    };
    // The int3 is the last instruction before label 2: AT is 3f, the
    // sequence's start; the breakpoint's address is label 2 - 1.
    let int3_at = RESUME.load(SeqCst) - 1;
    check(
        1,
        COUNT.load(SeqCst) == before + 1
            && CODE.load(SeqCst) == STATUS_BREAKPOINT as u64
            && ADDR.load(SeqCst) == int3_at
            && CRIP.load(SeqCst) == int3_at
            && NPARAMS.load(SeqCst) == 1,
        "int3: STATUS_BREAKPOINT at the int3, context Rip at it",
    );
    check(
        2,
        CR12.load(SeqCst) == 0x1111_2222
            && CXMM6.load(SeqCst) == 0x5555
            && CRSP.load(SeqCst) == rsp_at
            && CFLAGS.load(SeqCst) & CONTEXT_FULL as u64 == CONTEXT_FULL as u64
            && CSEGS.load(SeqCst) == 0x33 << 16 | 0x2B,
        "int3: context holds RSP, R12, XMM6, CONTEXT_FULL, user selectors",
    );
    let d = DISPATCH_RSP.load(SeqCst);
    check(
        3,
        r12_after == 0xABCD && d.is_multiple_of(16) && d + 0x5C0 <= rsp_at + 16,
        "int3: NtContinue resumed with the handler's R12; frame below the stack",
    );

    // 4-6: access violations: read NULL+0x10, write the read-only shared page, execute NX data.
    let before = reset(MODE_RESUME);
    // SAFETY: the read faults; the handler resumes at label 2.
    unsafe { faulting!(["mov {v}, qword ptr [0x10]"],  v = out(reg) _) };
    check_av(
        4,
        before,
        0,
        0x10,
        "read of NULL+0x10: access violation (read, 0x10)",
    );
    check(
        5,
        ADDR.load(SeqCst) == AT.load(SeqCst),
        "read: ExceptionAddress is the instruction",
    );
    let before = reset(MODE_RESUME);
    // SAFETY: the write faults (KUSER_SHARED_DATA is read-only).
    unsafe { faulting!(["mov qword ptr [{p}], 1"],  p = in(reg) 0x7FFE_0800u64) };
    check_av(
        6,
        before,
        1,
        0x7FFE_0800,
        "write of KUSER_SHARED_DATA: access violation (write)",
    );
    let before = reset(MODE_RETURN);
    // SAFETY: the call faults on the NX page; the handler returns.
    unsafe { faulting!(["call {p}"],  p = in(reg) 0x7FFE_0000u64) };
    check_av(
        7,
        before,
        8,
        0x7FFE_0000,
        "call into NX data: access violation (execute)",
    );
    check(
        8,
        ADDR.load(SeqCst) == 0x7FFE_0000,
        "execute: ExceptionAddress is the target",
    );

    // 9-12: divide error, privileged instructions, invalid opcode, non-canonical.
    let before = reset(MODE_RESUME);
    // SAFETY: divides by zero; the handler resumes.
    unsafe {
        faulting!(["div {z:e}"],  z = in(reg) 0u32, inout("eax") 1u32 => _, inout("edx") 0u32 => _)
    };
    check_code(
        9,
        before,
        0xC000_0094,
        "div by zero: STATUS_INTEGER_DIVIDE_BY_ZERO",
    );
    let before = reset(MODE_RESUME);
    // SAFETY: hlt faults in ring 3.
    unsafe { faulting!(["hlt"]) };
    check_code(
        10,
        before,
        0xC000_0096,
        "hlt: STATUS_PRIVILEGED_INSTRUCTION",
    );
    let before = reset(MODE_RESUME);
    // SAFETY: as above.
    unsafe { faulting!(["mov {v}, cr0"],  v = out(reg) _) };
    check_code(
        11,
        before,
        0xC000_0096,
        "mov from cr0: STATUS_PRIVILEGED_INSTRUCTION",
    );
    let before = reset(MODE_RESUME);
    // SAFETY: ud2 faults.
    unsafe { faulting!(["ud2"]) };
    check_code(12, before, 0xC000_001D, "ud2: STATUS_ILLEGAL_INSTRUCTION");
    let before = reset(MODE_RESUME);
    // SAFETY: the access faults (#GP on a non-canonical address).
    unsafe {
        faulting!(["mov {v}, qword ptr [{p}]"],  v = out(reg) _, p = in(reg) 0x8000_0000_0000u64)
    };
    check_av(
        13,
        before,
        0,
        u64::MAX,
        "non-canonical read: access violation at -1",
    );

    // 14-15: NtRaiseException, first chance, reaches the handler with its record.
    let mut rec = ExceptionRecord {
        exception_code: 0xE000_1234,
        number_parameters: 2,
        ..Default::default()
    };
    rec.exception_information[0] = 7;
    rec.exception_information[1] = 8;
    let mut ctx = base_context();
    let before = reset(MODE_RESUME);
    let st: i32;
    // SAFETY: the handler resumes at label 2 with this context's registers.
    unsafe {
        with_context!(
            ["mov r8d, 1", "sub rsp, 0x20", "call {f}", "add rsp, 0x20"],
            f = sym NtRaiseException,
            in("rcx") core::ptr::addr_of!(rec),
            in("rdx") core::ptr::addr_of_mut!(ctx),
            lateout("eax") st,
            clobber_abi("system"),
        )
    };
    check(
        14,
        COUNT.load(SeqCst) == before + 1
            && CODE.load(SeqCst) == 0xE000_1234
            && INFO0.load(SeqCst) == 7
            && INFO1.load(SeqCst) == 8,
        "NtRaiseException (first chance) reaches the handler with the record",
    );
    let _ = st;
    rec.number_parameters = 16;
    // SAFETY: both point at valid structures; the service rejects the record.
    let s = unsafe { NtRaiseException(&rec, &ctx, 1) };
    check(
        15,
        s == 0xC000_000Du32 as i32,
        "NtRaiseException: 16 parameters -> STATUS_INVALID_PARAMETER",
    );

    // 16-17: NtContinue and NtSetContextThread: registers (R12, full RAX) and RIP from the context.
    let mut ctx = base_context();
    let r12_after: u64;
    // SAFETY: NtContinue resumes at label 2 with these registers and R12 changed.
    unsafe {
        with_context!(
            ["mov qword ptr [rdx + 0xD8], 0x5151", "mov rcx, rdx", "xor edx, edx", "sub rsp, 0x20", "call {f}", "add rsp, 0x20"],
            f = sym NtContinue,
            in("rdx") core::ptr::addr_of_mut!(ctx),
            inout("r12") 0u64 => r12_after,
            clobber_abi("system"),
        )
    };
    check(
        16,
        r12_after == 0x5151,
        "NtContinue: resumes at the context's RIP with its R12",
    );
    let mut ctx = base_context();
    let rax_after: u64;
    // SAFETY: as above, through NtSetContextThread.
    unsafe {
        with_context!(
            ["mov rax, 0x123456789ABCDEF0", "mov [rdx + 0x78], rax", "mov rcx, -2", "sub rsp, 0x20", "call {f}", "add rsp, 0x20"],
            f = sym NtSetContextThread,
            in("rdx") core::ptr::addr_of_mut!(ctx),
            lateout("rax") rax_after,
            clobber_abi("system"),
        )
    };
    check(
        17,
        rax_after == 0x1234_5678_9ABC_DEF0,
        "NtSetContextThread: returns into the context (64-bit RAX)",
    );

    // 18: NtContinue with a non-canonical RIP: an access violation (execute) there.
    let mut ctx = base_context();
    let before = reset(MODE_RESUME);
    // SAFETY: the kernel raises the violation; the handler resumes at label 2.
    unsafe {
        with_context!(
            ["mov rax, 0x800000000000", "mov [rdx + 0xF8], rax", "mov rcx, rdx", "xor edx, edx", "sub rsp, 0x20", "call {f}", "add rsp, 0x20"],
            f = sym NtContinue,
            in("rdx") core::ptr::addr_of_mut!(ctx),
            clobber_abi("system"),
        )
    };
    check_av(
        18,
        before,
        8,
        0x8000_0000_0000,
        "NtContinue to a non-canonical RIP: access violation (execute)",
    );

    // 19-20: EFLAGS sanitized (IOPL, NT cannot be set; IF stays on).
    let mut ctx = base_context();
    ctx.eflags = 0x3000 | 0x4000 | 0x202 | 0x1;
    let flags: u64;
    // SAFETY: NtContinue resumes at label 2; pushfq reads the flags there.
    unsafe {
        with_context!(
            ["mov rcx, rdx", "xor edx, edx", "sub rsp, 0x20", "call {f}", "add rsp, 0x20", "2:", "pushfq", "pop rax"],
            f = sym NtContinue,
            lateout("rax") flags,
            in("rdx") core::ptr::addr_of_mut!(ctx),
            clobber_abi("system"),
        )
    };
    check(
        22,
        flags & 0x7000 == 0 && flags & 0x201 == 0x201,
        "NtContinue: EFLAGS sanitized (no IOPL or NT; IF on; CF kept)",
    );
    // SAFETY: a NULL and a misaligned context pointer are rejected.
    let s1 = unsafe { NtContinue(core::ptr::null(), 0) };
    // SAFETY: as above.
    let s2 = unsafe { NtContinue((core::ptr::addr_of!(ctx) as usize + 4) as *const Context, 0) };
    check(
        19,
        s1 == STATUS_ACCESS_VIOLATION as i32 && s2 == 0x8000_0002u32 as i32,
        "NtContinue: NULL -> access violation, misaligned -> datatype misalignment",
    );

    // 20: NtGetContextThread on the current thread.
    let mut c = base_context();
    let here = &c as *const Context as u64;
    // SAFETY: `c` is writable.
    let s = unsafe { NtGetContextThread(NT_CURRENT_THREAD, &mut c) };
    let stub = NtGetContextThread as *const () as u64;
    check(
        20,
        s == 0
            && c.rip > stub
            && c.rip < stub + 0x20
            && c.rsp < here
            && c.rsp > here - 0x1000
            && c.seg_cs == 0x33
            && c.eflags & 0x200 != 0,
        "NtGetContextThread(current): RIP in the stub, RSP on this stack",
    );
    // SAFETY: a bad handle is rejected before the context is touched.
    let s = unsafe { NtGetContextThread(0x1234, &mut c) };
    check(
        21,
        s == 0xC000_0008u32 as i32,
        "NtGetContextThread: invalid handle",
    );
    print("ntrsexc: all checks passed");
    exit(0)
}

static APC_COUNT: AtomicU64 = AtomicU64::new(0);
static APC_ARGS: AtomicU64 = AtomicU64::new(0);

extern "system" fn apc_routine(a1: u64, a2: u64, a3: u64) {
    APC_COUNT.fetch_add(1, SeqCst);
    APC_ARGS.store(a1 << 16 | a2 << 8 | a3, SeqCst);
}

fn queue(a: u64) -> i32 {
    // SAFETY: queues a user APC to this thread.
    unsafe {
        NtQueueApcThread(
            NT_CURRENT_THREAD,
            apc_routine as *const () as u64,
            a,
            a + 1,
            a + 2,
        )
    }
}

fn apc_tests() -> ! {
    print("ntrsexc: user APCs");
    let s = queue(1);
    print_hex("NtQueueApcThread: ", s as u32 as u64);
    check(1, s == 0, "NtQueueApcThread(current)");
    // SAFETY: no arguments.
    unsafe { NtYieldExecution() };
    check(
        2,
        APC_COUNT.load(SeqCst) == 0,
        "not delivered outside an alertable wait",
    );
    // SAFETY: no arguments.
    let s = unsafe { NtTestAlert() };
    check(
        3,
        s == 0 && APC_COUNT.load(SeqCst) == 1 && APC_ARGS.load(SeqCst) == 1 << 16 | 2 << 8 | 3,
        "NtTestAlert runs it with its three arguments",
    );
    let mut h = 0u64;
    // SAFETY: `h` is writable; a notification event, not signalled.
    let s = unsafe { NtCreateEvent(&mut h, 0x1F0003, 0, 0, 0) };
    check(4, s == 0, "NtCreateEvent");
    check(5, queue(4) == 0 && queue(7) == 0, "two APCs queued");
    let timeout: i64 = -10_000_000; // 1 s
                                    // SAFETY: `timeout` is readable.
    let s = unsafe { NtWaitForSingleObject(h, 1, &timeout) };
    check(
        6,
        s == STATUS_USER_APC
            && APC_COUNT.load(SeqCst) == 3
            && APC_ARGS.load(SeqCst) == 7 << 16 | 8 << 8 | 9,
        "alertable wait: STATUS_USER_APC after both ran (in order)",
    );
    check(7, queue(10) == 0, "another APC queued");
    let short: i64 = -100_000; // 10 ms
                               // SAFETY: as above.
    let s = unsafe { NtWaitForSingleObject(h, 0, &short) };
    check(
        8,
        s == STATUS_TIMEOUT && APC_COUNT.load(SeqCst) == 3,
        "non-alertable wait: times out, APC not run",
    );
    // SAFETY: as above.
    let s = unsafe { NtDelayExecution(1, &timeout) };
    check(
        9,
        s == STATUS_USER_APC && APC_COUNT.load(SeqCst) == 4,
        "alertable NtDelayExecution: STATUS_USER_APC after the APC ran",
    );
    // SAFETY: invalid arguments are rejected.
    let s = unsafe { NtQueueApcThread(0x1234, apc_routine as *const () as u64, 0, 0, 0) };
    check(
        10,
        s == 0xC000_0008u32 as i32,
        "NtQueueApcThread: invalid handle",
    );
    // SAFETY: as above.
    let s = unsafe { NtQueueApcThread(NT_CURRENT_THREAD, 0, 0, 0, 0) };
    check(
        11,
        s == 0xC000_000Du32 as i32,
        "NtQueueApcThread: NULL routine",
    );
    // SAFETY: closing our handle.
    unsafe { NtClose(h) };
    // Left queued at exit: the kernel flushes and frees it.
    check(12, queue(20) == 0, "an APC left queued at exit");
    print("ntrsexc: all checks passed");
    exit(0)
}

fn kernel_tests() -> ! {
    print("ntrsexc: user access to kernel memory");
    let before = reset(MODE_RESUME);
    // SAFETY: the read faults; resumed.
    unsafe {
        faulting!(["mov {v}, qword ptr [{p}]"],  v = out(reg) _, p = in(reg) 0xFFFF_F780_0000_0000u64)
    };
    check_av(
        1,
        before,
        0,
        0xFFFF_F780_0000_0000,
        "read of kernel memory: access violation (read)",
    );
    let before = reset(MODE_RESUME);
    // SAFETY: the write faults; resumed.
    unsafe { faulting!(["mov qword ptr [{p}], 0"],  p = in(reg) 0xFFFF_F780_0000_0000u64) };
    check_av(
        2,
        before,
        1,
        0xFFFF_F780_0000_0000,
        "write of kernel memory: access violation (write)",
    );
    let target = kernel_code_address();
    let before = reset(MODE_RETURN);
    // SAFETY: the call faults; the handler returns.
    unsafe { faulting!(["call {p}"],  p = in(reg) target) };
    check_av(
        3,
        before,
        8,
        target,
        "execute of kernel code: access violation (execute)",
    );
    print("ntrsexc: all checks passed");
    exit(0)
}

/// A kernel code address: the system call entry (LSTAR) is not readable
/// from user mode, so use the kernel's usual load address.
fn kernel_code_address() -> u64 {
    0xFFFF_F800_0040_1000
}

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

/// NtProcessStartup: a native image's entry point, called with the PEB.
#[no_mangle]
extern "system" fn NtProcessStartup(peb: *mut Peb) -> ! {
    let mut buf = [0u8; 64];
    // SAFETY: the kernel passes the PEB of this process.
    let n = command_line(unsafe { &*peb }, &mut buf);
    let line = &buf[..n];
    let cmd = match line.iter().position(|&b| b == b' ') {
        Some(i) => &line[i + 1..],
        None => &[],
    };
    let word = cmd.split(|&b| b == b' ').next().unwrap_or(&[]);
    match word {
        b"dispatch" => dispatch_tests(),
        b"apc" => apc_tests(),
        b"kernel" => kernel_tests(),
        b"unhandled" => {
            print("ntrsexc: raising 0xE0001234, declined");
            MODE.store(MODE_DECLINE, SeqCst);
            let rec = ExceptionRecord {
                exception_code: 0xE000_1234,
                ..Default::default()
            };
            let mut ctx = base_context();
            // SAFETY: the dispatcher raises it again as second chance; the
            // process ends with the code.
            unsafe {
                with_context!(
                    ["mov r8d, 1", "sub rsp, 0x20", "call {f}", "add rsp, 0x20"],
                    f = sym NtRaiseException,
                    in("rcx") core::ptr::addr_of!(rec),
                    in("rdx") core::ptr::addr_of_mut!(ctx),
                    clobber_abi("system"),
                )
            };
            exit(1)
        }
        b"badstack" => {
            print("ntrsexc: int3 with an unusable stack");
            // SAFETY: the kernel cannot write the exception frame below
            // RSP 0x100; the process ends with STATUS_BREAKPOINT.
            unsafe { core::arch::asm!("mov rsp, 0x100", "int3", options(noreturn)) }
        }
        _ => {
            print("ntrsexc: unknown command");
            exit(0xC000_000D)
        }
    }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    exit(0xC000_0409)
}
