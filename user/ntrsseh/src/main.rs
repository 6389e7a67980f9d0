//! ntrsseh.exe: ntdll's structured exception handling from ring 3.
//!
//! The program has no dispatcher of its own: the kernel enters ntdll's
//! `KiUserExceptionDispatcher`, which runs `RtlDispatchException` over
//! this image's `.pdata`. Two functions written in assembly carry the scope
//! tables MSVC/clang emit for C `__try` blocks, with `__C_specific_handler`
//! as their language handler: `try_call(f, arg)` is
//! `__try { return f(arg); } __except (seh_filter(..)) { return 0xEEEE<<48 | code; }`
//! (and checks that RBX, which it set, came back through the unwind);
//! `finally_call(f, arg)` is `__try { return f(arg); } __finally { seh_finally(..); }`
//! (and clobbers RBX/RSI, which unwinding must restore for its caller).
//!
//! No loader yet: ntdll is where the kernel maps it (its preferred base)
//! and the exports used here are looked up by name in its export table.
//! One line per check; exit status 0 when all pass, else 0xE0000000 | n.
#![no_std]
#![no_main]

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use nt::context::{Context, ExceptionRecord, EXCEPTION_NONCONTINUABLE};
use nt::user::UnicodeString;

#[path = "../../ntrsuser/src/crt.rs"]
mod crt;

mod sys {
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
    }
}
use sys::*;

/// Where the kernel maps ntdll.dll (its preferred base, user/ntdll/build.rs).
const NTDLL_BASE: u64 = 0x1_8000_0000;
const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;
const STATUS_BREAKPOINT: u32 = 0x8000_0003;
const STATUS_NONCONTINUABLE_EXCEPTION: u32 = 0xC000_0025;
const HANDLED: u64 = 0xEEEE_0000_0000_0000;

/// ntdll's `__C_specific_handler`; this image's thunk of that name jumps
/// through it.
#[no_mangle]
static NTDLL_C_SPECIFIC_HANDLER: AtomicU64 = AtomicU64::new(0);

extern "C" {
    /// The image's own base (the linker's `__ImageBase`).
    static __ImageBase: u8;
}

extern "system" {
    fn try_call(f: extern "system" fn(u64) -> u64, arg: u64) -> u64;
    fn finally_call(f: extern "system" fn(u64) -> u64, arg: u64) -> u64;
}

core::arch::global_asm!(
    ".text",
    ".globl __C_specific_handler",
    ".p2align 4",
    "__C_specific_handler:",
    "jmp qword ptr [rip + {handler}]",
    "",
    ".globl try_call",
    ".p2align 4",
    ".seh_proc try_call",
    "try_call:",
    "push rbx",
    ".seh_pushreg rbx",
    "sub rsp, 0x20",
    ".seh_stackalloc 0x20",
    ".seh_endprologue",
    "mov rbx, 0x0123456789ABCDEF",
    "mov rax, rcx",
    "mov rcx, rdx",
    "ntrsseh_try_begin:",
    "call rax",
    "nop",
    "ntrsseh_try_end:",
    "add rsp, 0x20",
    "pop rbx",
    "ret",
    "ntrsseh_try_except:",
    "mov rcx, 0x0123456789ABCDEF",
    "cmp rbx, rcx",
    "jne 2f",
    "mov ecx, eax",
    "mov rax, 0xEEEE000000000000",
    "or rax, rcx",
    "add rsp, 0x20",
    "pop rbx",
    "ret",
    "2:",
    "mov rax, 0xBADBADBAD",
    "add rsp, 0x20",
    "pop rbx",
    "ret",
    ".seh_handler __C_specific_handler, @except",
    ".seh_handlerdata",
    ".long 1",
    ".long ntrsseh_try_begin@IMGREL",
    ".long ntrsseh_try_end@IMGREL",
    ".long seh_filter@IMGREL",
    ".long ntrsseh_try_except@IMGREL",
    ".text",
    ".seh_endproc",
    "",
    ".globl finally_call",
    ".p2align 4",
    ".seh_proc finally_call",
    "finally_call:",
    "push rbx",
    ".seh_pushreg rbx",
    "push rsi",
    ".seh_pushreg rsi",
    "sub rsp, 0x28",
    ".seh_stackalloc 0x28",
    ".seh_endprologue",
    "mov rbx, 0x1111",
    "mov rsi, 0x2222",
    "mov rax, rcx",
    "mov rcx, rdx",
    "ntrsseh_finally_begin:",
    "call rax",
    "nop",
    "ntrsseh_finally_end:",
    "mov rsi, rax",
    "xor ecx, ecx",
    "mov rdx, rsp",
    "call seh_finally",
    "mov rax, rsi",
    "add rsp, 0x28",
    "pop rsi",
    "pop rbx",
    "ret",
    ".seh_handler __C_specific_handler, @unwind",
    ".seh_handlerdata",
    ".long 1",
    ".long ntrsseh_finally_begin@IMGREL",
    ".long ntrsseh_finally_end@IMGREL",
    ".long seh_finally@IMGREL",
    ".long 0",
    ".text",
    ".seh_endproc",
    handler = sym NTDLL_C_SPECIFIC_HANDLER,
);

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

fn exit(status: u32) -> ! {
    // SAFETY: terminating the current process does not return.
    unsafe { NtTerminateProcess(u64::MAX, status as i32) };
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    print("ntrsseh: panic");
    exit(0xE000_00FF)
}

static FAILED: AtomicU64 = AtomicU64::new(0);

/// Prints `ntrsseh: <what> ok` or `... FAILED`; the first failure's number
/// becomes the exit status.
fn check(n: u32, ok: bool, what: &str) {
    let mut b = [0u8; 120];
    let mut l = 0;
    for part in ["ntrsseh: ", what, if ok { " ok" } else { " FAILED" }] {
        let p = part.as_bytes();
        let k = p.len().min(b.len() - l);
        b[l..l + k].copy_from_slice(&p[..k]);
        l += k;
    }
    print(core::str::from_utf8(&b[..l]).unwrap_or("ntrsseh: ?"));
    if !ok {
        let _ = FAILED.compare_exchange(0, u64::from(0xE000_0000 | n), SeqCst, SeqCst);
    }
}

/// An export of ntdll by name (its export directory, in place), or 0.
fn ntdll_export(name: &[u8]) -> u64 {
    let b = NTDLL_BASE;
    // SAFETY: the kernel maps ntdll at NTDLL_BASE in every process; the
    // reads stay inside its headers and export directory.
    unsafe {
        let rd32 = |a: u64| core::ptr::read_unaligned(a as *const u32);
        let rd16 = |a: u64| core::ptr::read_unaligned(a as *const u16);
        let nt = b + u64::from(rd32(b + 0x3C));
        if rd32(nt) != 0x4550 {
            return 0;
        }
        let dir = b + u64::from(rd32(nt + 24 + 112));
        let count = rd32(dir + 24);
        let functions = b + u64::from(rd32(dir + 28));
        let names = b + u64::from(rd32(dir + 32));
        let ordinals = b + u64::from(rd32(dir + 36));
        for i in 0..u64::from(count) {
            let s = (b + u64::from(rd32(names + 4 * i))) as *const u8;
            let mut k = 0;
            while k < name.len() && *s.add(k) == name[k] {
                k += 1;
            }
            if k == name.len() && *s.add(k) == 0 {
                let ord = u64::from(rd16(ordinals + 2 * i));
                return b + u64::from(rd32(functions + 4 * ord));
            }
        }
        0
    }
}

/// `EXCEPTION_POINTERS`.
#[repr(C)]
struct ExceptionPointers {
    record: *mut ExceptionRecord,
    context: *mut Context,
}

// What the filter, the termination handler and the vectored handler saw.
static FILTER_RESULT: AtomicU64 = AtomicU64::new(1);
static FILTER_CODE: AtomicU64 = AtomicU64::new(0);
static FILTER_INFO0: AtomicU64 = AtomicU64::new(0);
static FILTER_INFO1: AtomicU64 = AtomicU64::new(0);
static FILTER_NPARAMS: AtomicU64 = AtomicU64::new(0);
static FILTER_FRAME: AtomicU64 = AtomicU64::new(0);
/// Events in order, 4 bits each: 1 filter, 2 finally (normal), 3 finally
/// (abnormal), 4 vectored handler.
static EVENTS: AtomicU64 = AtomicU64::new(0);
static VEH_COUNT: AtomicU64 = AtomicU64::new(0);

fn event(e: u64) {
    let v = EVENTS.load(SeqCst);
    EVENTS.store(v << 4 | e, SeqCst);
}

fn reset() {
    EVENTS.store(0, SeqCst);
    FILTER_CODE.store(0, SeqCst);
    FILTER_INFO0.store(0, SeqCst);
    FILTER_INFO1.store(0, SeqCst);
    FILTER_NPARAMS.store(0, SeqCst);
    FILTER_RESULT.store(1, SeqCst);
}

/// The `__except` filter of `try_call` (EXCEPTION_EXECUTE_HANDLER unless
/// a test asks otherwise; a STATUS_NONCONTINUABLE_EXCEPTION is always
/// handled).
#[no_mangle]
extern "system" fn seh_filter(p: *mut ExceptionPointers, frame: u64) -> i32 {
    // SAFETY: __C_specific_handler passes valid EXCEPTION_POINTERS.
    let r = unsafe { &*(*p).record };
    event(1);
    FILTER_CODE.store(u64::from(r.exception_code), SeqCst);
    FILTER_NPARAMS.store(u64::from(r.number_parameters), SeqCst);
    FILTER_INFO0.store(r.exception_information[0], SeqCst);
    FILTER_INFO1.store(r.exception_information[1], SeqCst);
    FILTER_FRAME.store(frame, SeqCst);
    if r.exception_code == STATUS_NONCONTINUABLE_EXCEPTION {
        return 1;
    }
    FILTER_RESULT.load(SeqCst) as i64 as i32
}

/// The `__finally` block of `finally_call`.
#[no_mangle]
extern "system" fn seh_finally(abnormal: u8, _frame: u64) {
    event(if abnormal != 0 { 3 } else { 2 });
}

extern "system" fn write_bad(address: u64) -> u64 {
    // SAFETY: deliberately faults: nothing is mapped at `address`.
    unsafe { core::ptr::write_volatile(address as *mut u32, 1) };
    0x600D
}

type RaiseFn = unsafe extern "system" fn(*mut ExceptionRecord);

fn raise(code: u32, flags: u32) {
    let mut r = ExceptionRecord {
        exception_code: code,
        exception_flags: flags,
        number_parameters: 2,
        ..Default::default()
    };
    r.exception_information[0] = 0x1234;
    r.exception_information[1] = 0x5678;
    // SAFETY: RtlRaiseException's address from ntdll's export table; the
    // record is valid.
    unsafe {
        let f: RaiseFn = core::mem::transmute(ntdll_export(b"RtlRaiseException") as usize);
        f(&mut r)
    };
}

extern "system" fn raise_e0000bad(_: u64) -> u64 {
    raise(0xE000_0BAD, 0);
    0x600D
}

extern "system" fn raise_noncontinuable(_: u64) -> u64 {
    raise(0xE000_0002, EXCEPTION_NONCONTINUABLE);
    0x600D
}

extern "system" fn nested(arg: u64) -> u64 {
    // SAFETY: finally_call calls `raise_e0000bad(arg)` inside its __try.
    unsafe { finally_call(raise_e0000bad, arg) }
}

extern "system" fn nested_normal(arg: u64) -> u64 {
    extern "system" fn ret(a: u64) -> u64 {
        a + 1
    }
    // SAFETY: finally_call calls `ret(arg)`.
    unsafe { finally_call(ret, arg) }
}

extern "system" fn do_int3(_: u64) -> u64 {
    // SAFETY: a breakpoint, which the vectored handler steps over.
    unsafe { core::arch::asm!("int3") };
    0xB0B
}

extern "system" fn veh(p: *mut ExceptionPointers) -> i32 {
    // SAFETY: ntdll passes valid EXCEPTION_POINTERS.
    let (r, c) = unsafe { (&*(*p).record, &mut *(*p).context) };
    if r.exception_code != STATUS_BREAKPOINT {
        return 0; // EXCEPTION_CONTINUE_SEARCH
    }
    event(4);
    VEH_COUNT.fetch_add(1, SeqCst);
    c.rip += 1;
    -1 // EXCEPTION_CONTINUE_EXECUTION
}

fn run() {
    let cs = ntdll_export(b"__C_specific_handler");
    check(1, cs != 0, "ntdll exports __C_specific_handler");
    NTDLL_C_SPECIFIC_HANDLER.store(cs, SeqCst);

    // RtlLookupFunctionEntry finds this image's .pdata entry of try_call.
    // SAFETY: only the addresses of the symbols are taken.
    let (base, f) = unsafe {
        (
            &__ImageBase as *const u8 as u64,
            try_call as *const () as u64,
        )
    };
    let lookup = ntdll_export(b"RtlLookupFunctionEntry");
    let mut found_base = 0u64;
    let entry = if lookup == 0 {
        0
    } else {
        // SAFETY: RtlLookupFunctionEntry(ControlPc, &ImageBase, NULL).
        unsafe {
            let l: extern "system" fn(u64, *mut u64, u64) -> *const [u32; 3] =
                core::mem::transmute(lookup as usize);
            l(f + 4, &mut found_base, 0) as u64
        }
    };
    // SAFETY: a non-NULL result points at a RUNTIME_FUNCTION.
    let begin = if entry != 0 {
        unsafe { (*(entry as *const [u32; 3]))[0] }
    } else {
        0
    };
    check(
        2,
        entry != 0 && found_base == base && u64::from(begin) == f - base,
        "RtlLookupFunctionEntry finds try_call",
    );

    // An access violation in a callee of a __try: the filter sees the
    // record, the __except block runs with the code, RBX restored.
    reset();
    // SAFETY: try_call calls write_bad(0x10) in its __try.
    let r = unsafe { try_call(write_bad, 0x10) };
    check(
        3,
        r == HANDLED | u64::from(STATUS_ACCESS_VIOLATION)
            && FILTER_CODE.load(SeqCst) == u64::from(STATUS_ACCESS_VIOLATION)
            && FILTER_INFO0.load(SeqCst) == 1
            && FILTER_INFO1.load(SeqCst) == 0x10
            && EVENTS.load(SeqCst) == 0x1,
        "access violation caught by __except",
    );

    // RtlRaiseException with parameters, caught the same way.
    reset();
    // SAFETY: as above.
    let r = unsafe { try_call(raise_e0000bad, 0) };
    check(
        4,
        r == HANDLED | 0xE000_0BAD
            && FILTER_NPARAMS.load(SeqCst) == 2
            && FILTER_INFO0.load(SeqCst) == 0x1234
            && FILTER_INFO1.load(SeqCst) == 0x5678,
        "RtlRaiseException caught by __except",
    );

    // Nested: the exception passes a __finally frame on its way to the
    // __except frame; the filter runs first (dispatch), then the
    // termination handler (unwind, abnormal), then the __except block,
    // with the registers finally_call clobbered restored for try_call.
    reset();
    // SAFETY: as above.
    let r = unsafe { try_call(nested, 0) };
    check(
        5,
        r == HANDLED | 0xE000_0BAD && EVENTS.load(SeqCst) == 0x13,
        "nested unwind runs __finally before __except",
    );

    // No exception: __finally runs normally, the __try's value comes back.
    reset();
    // SAFETY: as above.
    let r = unsafe { try_call(nested_normal, 41) };
    check(
        6,
        r == 42 && EVENTS.load(SeqCst) == 0x2,
        "__finally on normal exit",
    );

    // A filter returning EXCEPTION_CONTINUE_EXECUTION: RtlRaiseException
    // returns to its caller.
    reset();
    FILTER_RESULT.store(u64::MAX, SeqCst); // -1
                                           // SAFETY: as above.
    let r = unsafe { try_call(raise_e0000bad, 0) };
    check(
        7,
        r == 0x600D && EVENTS.load(SeqCst) == 0x1,
        "EXCEPTION_CONTINUE_EXECUTION resumes after RtlRaiseException",
    );

    // Continuing a noncontinuable exception raises
    // STATUS_NONCONTINUABLE_EXCEPTION, which the filter handles.
    reset();
    FILTER_RESULT.store(u64::MAX, SeqCst);
    // SAFETY: as above.
    let r = unsafe { try_call(raise_noncontinuable, 0) };
    check(
        8,
        r == HANDLED | u64::from(STATUS_NONCONTINUABLE_EXCEPTION),
        "continuing a noncontinuable exception raises STATUS_NONCONTINUABLE_EXCEPTION",
    );

    // A vectored handler sees the breakpoint before any frame and
    // continues after the int3; removed, it is not called again.
    reset();
    let add = ntdll_export(b"RtlAddVectoredExceptionHandler");
    let remove = ntdll_export(b"RtlRemoveVectoredExceptionHandler");
    check(
        9,
        add != 0 && remove != 0,
        "ntdll exports the vectored handler routines",
    );
    if add == 0 || remove == 0 {
        return;
    }
    // SAFETY: the exports' Windows signatures.
    let (add, remove) = unsafe {
        (
            core::mem::transmute::<usize, extern "system" fn(u32, u64) -> u64>(add as usize),
            core::mem::transmute::<usize, extern "system" fn(u64) -> u32>(remove as usize),
        )
    };
    let h = add(1, veh as *const () as u64);
    // SAFETY: as above.
    let r = unsafe { try_call(do_int3, 0) };
    check(
        10,
        h != 0 && r == 0xB0B && VEH_COUNT.load(SeqCst) == 1 && EVENTS.load(SeqCst) == 0x4,
        "vectored handler continues after int3",
    );
    check(
        11,
        remove(h) == 1 && remove(h) == 0,
        "RtlRemoveVectoredExceptionHandler",
    );
    reset();
    // SAFETY: as above; now the __except frame takes the breakpoint.
    let r = unsafe { try_call(do_int3, 0) };
    check(
        12,
        r == HANDLED | u64::from(STATUS_BREAKPOINT) && VEH_COUNT.load(SeqCst) == 1,
        "removed vectored handler not called",
    );
}

/// NtProcessStartup: a native image's entry point, called with the PEB.
#[no_mangle]
extern "system" fn NtProcessStartup(_peb: u64) -> ! {
    run();
    match FAILED.load(SeqCst) {
        0 => {
            print("ntrsseh: all checks passed");
            exit(0)
        }
        s => exit(s as u32),
    }
}
