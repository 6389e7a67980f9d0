//! x64 structured exception handling (*Windows Internals* 7th ed., Part 2,
//! ch. 8 "Exception dispatching"): `KiUserExceptionDispatcher`,
//! `RtlDispatchException`, `RtlLookupFunctionEntry`, `RtlVirtualUnwind`,
//! `RtlUnwindEx`, `RtlUnwind`, `__C_specific_handler` and the vectored
//! exception handlers. The logic is lib/unwind (host-tested); this file
//! gives it the process's memory, the images, the thread's stack limits
//! and calls of handlers.
//!
//! Images searched by `RtlLookupFunctionEntry`: ntdll itself and the
//! process image (`PEB.ImageBaseAddress`); the loader's module list
//! (`PEB.Ldr`) is not there yet, nor are dynamic function tables
//! (`RtlAddFunctionTable`). Nested exceptions raised inside a handler are
//! dispatched from scratch (no `EXCEPTION_NESTED_CALL` bookkeeping), and a
//! collided unwind fails with STATUS_NOT_IMPLEMENTED (docs/ntdll.md).
#![allow(non_snake_case)]

use crate::syscalls::NtContinue;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use nt::context::{Context, ExceptionRecord, EXCEPTION_NONCONTINUABLE};
use unwind::{
    Dispatch, DispatcherContext, Environment, Memory, NonvolatileContextPointers, RuntimeFunction,
    ScopeCalls,
};

const STATUS_UNWIND: u32 = 0xC000_0027;
/// The highest user address + 1 (`MM_USER_PROBE_ADDRESS`).
const USER_END: u64 = nt::user::MM_USER_PROBE_ADDRESS;

extern "C" {
    /// ntdll's own base (the linker's `__ImageBase`).
    static __ImageBase: u8;
}

// `RtlCaptureContext` (except.rs).
extern "system" {
    fn RtlCaptureContext(context: *mut Context);
}

/// The calling thread's TEB (`NtCurrentTeb`: gs:[0x30]).
fn teb() -> u64 {
    let t: u64;
    // SAFETY: in user mode GS's base is the current thread's TEB, whose
    // NT_TIB.Self (offset 0x30) holds its address; reading it has no effects.
    unsafe {
        core::arch::asm!("mov {}, gs:[0x30]", out(reg) t, options(nostack, readonly, preserves_flags))
    };
    t
}

/// User memory of the current process, read in place. An address outside
/// the user range is refused; one that is in it but not mapped faults in
/// the caller, as Windows' unwinder does on corrupt data.
pub struct ProcessMemory;

impl Memory for ProcessMemory {
    fn read(&self, address: u64, buf: &mut [u8]) -> bool {
        let end = address.checked_add(buf.len() as u64);
        if address < 0x1_0000 || end.is_none_or(|e| e > USER_END) {
            return false;
        }
        // SAFETY: the range is in the user half of the current address
        // space; it is read only (a missing page raises an exception).
        unsafe {
            core::ptr::copy_nonoverlapping(address as *const u8, buf.as_mut_ptr(), buf.len())
        };
        true
    }
}

/// The image around `pc`: (base, address of its `.pdata`, entries).
fn image_of(pc: u64) -> Option<(u64, u64, u32)> {
    let m = ProcessMemory;
    // SAFETY: only the address of the linker-defined symbol is taken.
    let ntdll = unsafe { &__ImageBase as *const u8 as u64 };
    let peb = m.read_u64(teb() + 0x60).ok()?;
    let exe = m.read_u64(peb + 0x10).ok().unwrap_or(0);
    for base in [ntdll, exe] {
        if base == 0 || pc < base {
            continue;
        }
        let Some((size, table, count)) = image_tables(&m, base) else {
            continue;
        };
        if pc - base < size {
            return Some((base, table, count));
        }
    }
    None
}

/// SizeOfImage and the exception directory of the PE32+ image at `base`.
fn image_tables(m: &ProcessMemory, base: u64) -> Option<(u64, u64, u32)> {
    let nt = base + u64::from(m.read_u32(base + 0x3C).ok()?);
    if m.read_u32(nt).ok()? != 0x4550 {
        return None;
    }
    let opt = nt + 24;
    if m.read_u16(opt).ok()? != 0x20B {
        return None;
    }
    let size = u64::from(m.read_u32(opt + 56).ok()?);
    if m.read_u32(opt + 108).ok()? <= 3 {
        return Some((size, 0, 0));
    }
    let rva = m.read_u32(opt + 112 + 3 * 8).ok()?;
    let len = m.read_u32(opt + 112 + 3 * 8 + 4).ok()?;
    Some((size, base + u64::from(rva), len / 12))
}

/// `RtlLookupFunctionEntry(ControlPc, ImageBase, HistoryTable)`: the
/// `RUNTIME_FUNCTION` of the function holding `ControlPc`, and the base of
/// its image; NULL for a leaf function or an address in no image.
///
/// # Safety
/// `ImageBase` is writable.
#[no_mangle]
pub unsafe extern "system" fn RtlLookupFunctionEntry(
    ControlPc: u64,
    ImageBase: *mut u64,
    _HistoryTable: *mut u8,
) -> *mut RuntimeFunction {
    let Some((base, table, count)) = image_of(ControlPc) else {
        return core::ptr::null_mut();
    };
    match unwind::lookup_function_entry(&ProcessMemory, base, table, count, ControlPc) {
        Some(at) => {
            // SAFETY: the caller passes a writable ImageBase.
            unsafe { *ImageBase = base };
            at as *mut RuntimeFunction
        }
        None => core::ptr::null_mut(),
    }
}

/// `RtlVirtualUnwind(HandlerType, ImageBase, ControlPc, FunctionEntry,
/// ContextRecord, HandlerData, EstablisherFrame, ContextPointers)`: the
/// caller's context in `ContextRecord`; returns the language handler of
/// the asked type or NULL. Corrupt unwind data leaves the context as far
/// as it got and returns NULL with `*EstablisherFrame` 0.
///
/// # Safety
/// The pointers are valid (`ContextPointers` may be NULL).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn RtlVirtualUnwind(
    HandlerType: u32,
    ImageBase: u64,
    ControlPc: u64,
    FunctionEntry: *const RuntimeFunction,
    ContextRecord: *mut Context,
    HandlerData: *mut u64,
    EstablisherFrame: *mut u64,
    ContextPointers: *mut NonvolatileContextPointers,
) -> u64 {
    // SAFETY: the caller passes valid pointers; ContextPointers may be NULL.
    let (entry, ctx, ptrs) = unsafe {
        (
            *FunctionEntry,
            &mut *ContextRecord,
            ContextPointers.as_mut(),
        )
    };
    let r = unwind::virtual_unwind(
        &ProcessMemory,
        HandlerType,
        ImageBase,
        ControlPc,
        &entry,
        ctx,
        ptrs,
    );
    let u = r.unwrap_or_default();
    // SAFETY: as above.
    unsafe {
        *HandlerData = u.handler_data;
        *EstablisherFrame = u.establisher_frame;
    }
    u.handler.unwrap_or(0)
}

/// A language handler (`EXCEPTION_ROUTINE`).
type ExceptionRoutine = unsafe extern "system" fn(
    *mut ExceptionRecord,
    u64,
    *mut Context,
    *mut DispatcherContext,
) -> u32;

/// The walks' environment in this process.
struct Ntdll;

impl Memory for Ntdll {
    fn read(&self, address: u64, buf: &mut [u8]) -> bool {
        ProcessMemory.read(address, buf)
    }
}

impl Environment for Ntdll {
    fn lookup(&self, pc: u64) -> Option<(u64, u64)> {
        let mut base = 0;
        // SAFETY: `base` is writable; no history table.
        let e = unsafe { RtlLookupFunctionEntry(pc, &mut base, core::ptr::null_mut()) };
        (!e.is_null()).then_some((base, e as u64))
    }

    fn stack_limits(&self) -> (u64, u64) {
        // NT_TIB.StackBase (0x08) and StackLimit (0x10).
        let t = teb();
        let base = ProcessMemory.read_u64(t + 8).unwrap_or(0);
        let limit = ProcessMemory.read_u64(t + 0x10).unwrap_or(0);
        (limit, base)
    }

    fn call_handler(
        &mut self,
        handler: u64,
        record: &mut ExceptionRecord,
        establisher_frame: u64,
        context: &mut Context,
        dispatcher: &mut DispatcherContext,
    ) -> u32 {
        // SAFETY: `handler` is the language handler an image's unwind data
        // names (an address in that image); it gets Windows' arguments.
        unsafe {
            let f: ExceptionRoutine = core::mem::transmute(handler as usize);
            f(record, establisher_frame, context, dispatcher)
        }
    }
}

// ------------------------------------------------------ vectored handlers

/// Vectored exception handlers, in call order (handler addresses; 0 ends).
/// A fixed table: Windows allocates entries from the process heap, which
/// needs the loader; 64 handlers per process here.
const MAX_VECTORED: usize = 64;
static VECTORED: [AtomicU64; MAX_VECTORED] = [const { AtomicU64::new(0) }; MAX_VECTORED];
/// Handles given out: the slot's index + 1 in the low bits of a cookie.
static VECTORED_IDS: [AtomicU64; MAX_VECTORED] = [const { AtomicU64::new(0) }; MAX_VECTORED];
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static VECTORED_LOCK: AtomicBool = AtomicBool::new(false);

fn lock_vectored() {
    while VECTORED_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
}

fn unlock_vectored() {
    VECTORED_LOCK.store(false, Ordering::Release);
}

/// `RtlAddVectoredExceptionHandler(First, Handler)`: registers
/// `LONG Handler(PEXCEPTION_POINTERS)`, called before frame-based handlers;
/// `First` nonzero puts it before the others. Returns a handle for
/// `RtlRemoveVectoredExceptionHandler`, NULL when the table is full.
#[no_mangle]
pub extern "system" fn RtlAddVectoredExceptionHandler(First: u32, Handler: u64) -> u64 {
    if Handler == 0 {
        return 0;
    }
    lock_vectored();
    let used = VECTORED
        .iter()
        .position(|v| v.load(Ordering::Relaxed) == 0)
        .unwrap_or(MAX_VECTORED);
    if used == MAX_VECTORED {
        unlock_vectored();
        return 0;
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let at = if First != 0 { 0 } else { used };
    for i in (at..used).rev() {
        VECTORED[i + 1].store(VECTORED[i].load(Ordering::Relaxed), Ordering::Relaxed);
        VECTORED_IDS[i + 1].store(VECTORED_IDS[i].load(Ordering::Relaxed), Ordering::Relaxed);
    }
    VECTORED[at].store(Handler, Ordering::Relaxed);
    VECTORED_IDS[at].store(id, Ordering::Relaxed);
    unlock_vectored();
    id
}

/// `RtlRemoveVectoredExceptionHandler(Handle)`: 1 if it was registered.
#[no_mangle]
pub extern "system" fn RtlRemoveVectoredExceptionHandler(Handle: u64) -> u32 {
    if Handle == 0 {
        return 0;
    }
    lock_vectored();
    let found = VECTORED_IDS
        .iter()
        .position(|v| v.load(Ordering::Relaxed) == Handle);
    if let Some(at) = found {
        for i in at..MAX_VECTORED - 1 {
            VECTORED[i].store(VECTORED[i + 1].load(Ordering::Relaxed), Ordering::Relaxed);
            VECTORED_IDS[i].store(
                VECTORED_IDS[i + 1].load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        VECTORED[MAX_VECTORED - 1].store(0, Ordering::Relaxed);
        VECTORED_IDS[MAX_VECTORED - 1].store(0, Ordering::Relaxed);
    }
    unlock_vectored();
    u32::from(found.is_some())
}

/// `EXCEPTION_POINTERS`.
#[repr(C)]
pub struct ExceptionPointers {
    pub exception_record: *mut ExceptionRecord,
    pub context_record: *mut Context,
}

/// Runs the vectored handlers: true if one returned
/// EXCEPTION_CONTINUE_EXECUTION (-1). The table is copied first, so a
/// handler may add or remove handlers.
fn call_vectored(record: &mut ExceptionRecord, context: &mut Context) -> bool {
    let mut list = [0u64; MAX_VECTORED];
    lock_vectored();
    for (d, s) in list.iter_mut().zip(VECTORED.iter()) {
        *d = s.load(Ordering::Relaxed);
    }
    unlock_vectored();
    let mut ptrs = ExceptionPointers {
        exception_record: record,
        context_record: context,
    };
    for &h in list.iter().take_while(|&&h| h != 0) {
        // SAFETY: `h` was registered as a vectored handler,
        // `LONG (*)(PEXCEPTION_POINTERS)`.
        let f: unsafe extern "system" fn(*mut ExceptionPointers) -> i32 =
            unsafe { core::mem::transmute(h as usize) };
        // SAFETY: `ptrs` points at the live record and context.
        if unsafe { f(&mut ptrs) } == -1 {
            return true;
        }
    }
    false
}

// ------------------------------------------------------------ dispatching

/// `RtlDispatchException(ExceptionRecord, ContextRecord)`: the vectored
/// handlers, then every frame's exception handler from the context's frame
/// up the stack. TRUE: continue with the (possibly changed) context.
/// A noncontinuable exception that a handler continued raises
/// STATUS_NONCONTINUABLE_EXCEPTION (a handler's bad disposition
/// STATUS_INVALID_DISPOSITION) with the original as its nested record.
///
/// # Safety
/// Both pointers are valid.
#[no_mangle]
pub unsafe extern "system" fn RtlDispatchException(
    ExceptionRecord: *mut ExceptionRecord,
    ContextRecord: *mut Context,
) -> u8 {
    // SAFETY: the caller passes a valid record and context.
    let (record, context) = unsafe { (&mut *ExceptionRecord, &mut *ContextRecord) };
    if call_vectored(record, context) {
        return 1;
    }
    match unwind::dispatch_exception(&mut Ntdll, record, context) {
        Dispatch::Continue => 1,
        Dispatch::NotHandled => 0,
        Dispatch::Raise(status) => {
            let mut nested = ExceptionRecord {
                exception_code: status,
                exception_flags: EXCEPTION_NONCONTINUABLE,
                exception_record: ExceptionRecord as u64,
                ..Default::default()
            };
            // SAFETY: `nested` is a valid record on this stack.
            unsafe { crate::except::RtlRaiseException(&mut nested) };
            0
        }
    }
}

/// `RtlUnwindEx(TargetFrame, TargetIp, ExceptionRecord, ReturnValue,
/// ContextRecord, HistoryTable)`: runs the termination handlers of every
/// frame from the caller's up to `TargetFrame` (all frames when NULL: an
/// exit unwind), then continues in the target frame at `TargetIp` with
/// RAX = `ReturnValue`. Does not return, except after an exit unwind. A bad
/// target or stack raises the status (STATUS_INVALID_UNWIND_TARGET,
/// STATUS_BAD_STACK). `ContextRecord` (scratch space on Windows) and
/// `HistoryTable` are not used.
///
/// # Safety
/// `ExceptionRecord` is NULL or valid.
#[no_mangle]
#[inline(never)]
pub unsafe extern "system" fn RtlUnwindEx(
    TargetFrame: u64,
    TargetIp: u64,
    ExceptionRecord: *mut ExceptionRecord,
    ReturnValue: u64,
    _ContextRecord: *mut Context,
    _HistoryTable: *mut u8,
) {
    let mut ctx = Context::default();
    // SAFETY: `ctx` is a writable, 16-aligned CONTEXT. It then holds this
    // function's state after the call, which unwinding starts from.
    unsafe { RtlCaptureContext(&mut ctx) };
    let mut local = ExceptionRecord {
        exception_code: STATUS_UNWIND,
        exception_address: ctx.rip,
        ..Default::default()
    };
    // SAFETY: a non-NULL record is the caller's valid record.
    let record = match unsafe { ExceptionRecord.as_mut() } {
        Some(r) => r,
        None => &mut local,
    };
    match unwind::unwind_frames(
        &mut Ntdll,
        TargetFrame,
        TargetIp,
        record,
        ReturnValue,
        &mut ctx,
    ) {
        Ok(()) if TargetFrame == 0 => {}
        Ok(()) => {
            // SAFETY: `ctx` is the complete context of the target frame.
            let s = unsafe { NtContinue(&ctx, 0) };
            crate::except::raise_status(nt::status::NtStatus(s));
        }
        Err(s) => crate::except::raise_status(nt::status::NtStatus(s as i32)),
    }
}

/// `RtlUnwind(TargetFrame, TargetIp, ExceptionRecord, ReturnValue)`.
///
/// # Safety
/// As `RtlUnwindEx`.
#[no_mangle]
#[inline(never)]
pub unsafe extern "system" fn RtlUnwind(
    TargetFrame: u64,
    TargetIp: u64,
    ExceptionRecord: *mut ExceptionRecord,
    ReturnValue: u64,
) {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        RtlUnwindEx(
            TargetFrame,
            TargetIp,
            ExceptionRecord,
            ReturnValue,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    }
}

/// The calls `__C_specific_handler` makes.
struct ScopeCaller;

impl ScopeCalls for ScopeCaller {
    fn filter(
        &mut self,
        filter: u64,
        record: &mut ExceptionRecord,
        context: &mut Context,
        establisher_frame: u64,
    ) -> i32 {
        let mut ptrs = ExceptionPointers {
            exception_record: record,
            context_record: context,
        };
        // SAFETY: `filter` is a scope record's filter in the image that
        // owns the frame: `LONG filter(PEXCEPTION_POINTERS, PVOID frame)`.
        unsafe {
            let f: unsafe extern "system" fn(*mut ExceptionPointers, u64) -> i32 =
                core::mem::transmute(filter as usize);
            f(&mut ptrs, establisher_frame)
        }
    }

    fn termination(&mut self, handler: u64, establisher_frame: u64) {
        // SAFETY: `handler` is a scope record's termination handler:
        // `void handler(BOOLEAN AbnormalTermination, PVOID frame)`.
        unsafe {
            let f: unsafe extern "system" fn(u8, u64) = core::mem::transmute(handler as usize);
            f(1, establisher_frame)
        }
    }

    fn unwind(
        &mut self,
        establisher_frame: u64,
        target_ip: u64,
        record: &mut ExceptionRecord,
        dispatcher: &mut DispatcherContext,
    ) {
        let code = u64::from(record.exception_code);
        // SAFETY: the record is live; the context and history table are
        // the dispatcher's.
        unsafe {
            RtlUnwindEx(
                establisher_frame,
                target_ip,
                record,
                code,
                dispatcher.context_record as *mut Context,
                dispatcher.history_table as *mut u8,
            )
        }
    }
}

/// `__C_specific_handler(ExceptionRecord, EstablisherFrame, ContextRecord,
/// DispatcherContext)`: the language handler of C `__try` blocks (scope
/// tables as MSVC and clang emit them; lib/unwind `c_specific_handler`).
///
/// # Safety
/// Called by the dispatcher with valid pointers.
#[no_mangle]
pub unsafe extern "system" fn __C_specific_handler(
    ExceptionRecord: *mut ExceptionRecord,
    EstablisherFrame: u64,
    ContextRecord: *mut Context,
    DispatcherContext: *mut DispatcherContext,
) -> u32 {
    // SAFETY: the dispatcher's valid pointers.
    let (r, c, d) = unsafe {
        (
            &mut *ExceptionRecord,
            &mut *ContextRecord,
            &mut *DispatcherContext,
        )
    };
    unwind::c_specific_handler(&ProcessMemory, &mut ScopeCaller, r, EstablisherFrame, c, d)
}

// KiUserExceptionDispatcher: the kernel enters it with RSP at the CONTEXT
// and the EXCEPTION_RECORD at RSP+0x4F0 (nt::context::UserExceptionFrame),
// the interrupted RIP/RSP in the MACHINE_FRAME at RSP+0x590, which its
// unwind data describes (UWOP_ALLOC_LARGE 0x590 then UWOP_PUSH_MACHFRAME),
// so unwinding continues in the interrupted function. The CONTEXT's home
// slots are the callees' home space, as on Windows.
// RtlDispatchException TRUE: NtContinue(context, FALSE); FALSE: the
// second chance, NtRaiseException(record, context, FALSE), which ends the
// process. Either returning means a bad context: raise that status.
core::arch::global_asm!(
    ".section .text$ki_user_exception,\"xr\"",
    ".globl KiUserExceptionDispatcher",
    ".p2align 4",
    ".seh_proc KiUserExceptionDispatcher",
    "KiUserExceptionDispatcher:",
    ".seh_pushframe",
    ".seh_stackalloc 0x590",
    ".seh_endprologue",
    "cld",
    "lea rcx, [rsp + 0x4F0]",
    "mov rdx, rsp",
    "call RtlDispatchException",
    "test al, al",
    "jz 2f",
    "mov rcx, rsp",
    "xor edx, edx",
    "call NtContinue",
    "jmp 3f",
    "2:",
    "lea rcx, [rsp + 0x4F0]",
    "mov rdx, rsp",
    "xor r8d, r8d",
    "call NtRaiseException",
    "3:",
    "mov ecx, eax",
    "call ntdll_raise_failed",
    "int3",
    ".seh_endproc",
    ".section .drectve,\"yn\"",
    ".ascii \" -export:KiUserExceptionDispatcher\"",
    ".text",
);
