//! Raising exceptions from user mode: `RtlCaptureContext`,
//! `RtlRaiseException`, `RtlRaiseStatus`.
//!
//! ntdll has no frame-based dispatcher yet (`RtlDispatchException`,
//! `KiUserExceptionDispatcher`: issue 16), so `RtlRaiseException` hands the
//! exception to the kernel as a first-chance exception
//! (`NtRaiseException(Record, Context, TRUE)`), which dispatches it to the
//! debugger and to the process's `KiUserExceptionDispatcher`, and ends the
//! process with the exception code when nothing handles it. Windows' ntdll
//! first runs `RtlDispatchException` itself and calls the kernel with
//! FirstChance = FALSE only when no handler took it.
#![allow(non_snake_case)]

use crate::syscalls::NtTerminateProcess;
use nt::context::{ExceptionRecord, EXCEPTION_NONCONTINUABLE};
use nt::status::NtStatus;

// RtlCaptureContext(PCONTEXT rcx): every integer register as the caller
// has it, RSP/RIP as after the return, segments, EFlags, MXCSR and the
// legacy floating-point/XMM state (FXSAVE into FltSave, which overlays
// Xmm0-15); ContextFlags = CONTEXT_FULL | CONTEXT_SEGMENTS. Offsets are
// those of the x64 CONTEXT (nt::context::Context).
//
// RtlRaiseException(PEXCEPTION_RECORD rcx): a CONTEXT on its own stack
// (16-aligned at rsp+0x20), captured, then RSP/RIP/RCX set to the caller's
// view after the call (RIP = return address, also the record's
// ExceptionAddress), and NtRaiseException(record, context, TRUE). That
// returns only on failure: the process then ends with that status.
core::arch::global_asm!(
    ".section .text$rtl_except,\"xr\"",
    ".globl RtlCaptureContext",
    ".p2align 4",
    "RtlCaptureContext:",
    "pushfq",
    "mov [rcx + 0x78], rax",
    "mov [rcx + 0x80], rcx",
    "mov [rcx + 0x88], rdx",
    "mov [rcx + 0x90], rbx",
    "mov [rcx + 0xA0], rbp",
    "mov [rcx + 0xA8], rsi",
    "mov [rcx + 0xB0], rdi",
    "mov [rcx + 0xB8], r8",
    "mov [rcx + 0xC0], r9",
    "mov [rcx + 0xC8], r10",
    "mov [rcx + 0xD0], r11",
    "mov [rcx + 0xD8], r12",
    "mov [rcx + 0xE0], r13",
    "mov [rcx + 0xE8], r14",
    "mov [rcx + 0xF0], r15",
    "mov word ptr [rcx + 0x38], cs",
    "mov word ptr [rcx + 0x3A], ds",
    "mov word ptr [rcx + 0x3C], es",
    "mov word ptr [rcx + 0x3E], fs",
    "mov word ptr [rcx + 0x40], gs",
    "mov word ptr [rcx + 0x42], ss",
    "stmxcsr [rcx + 0x34]",
    "fxsave [rcx + 0x100]",
    "pop rax",
    "mov [rcx + 0x44], eax",
    "lea rax, [rsp + 8]",
    "mov [rcx + 0x98], rax",
    "mov rax, [rsp]",
    "mov [rcx + 0xF8], rax",
    "mov dword ptr [rcx + 0x30], 0x10000F",
    "mov rax, [rcx + 0x78]",
    "ret",
    "",
    ".globl RtlRaiseException",
    ".p2align 4",
    "RtlRaiseException:",
    "mov [rsp + 8], rcx",
    "sub rsp, 0x4F8",
    "lea rcx, [rsp + 0x20]",
    "call RtlCaptureContext",
    "lea rax, [rsp + 0x500]",
    "mov [rsp + 0x20 + 0x98], rax",
    "mov rax, [rsp + 0x4F8]",
    "mov [rsp + 0x20 + 0xF8], rax",
    "mov rcx, [rsp + 0x500]",
    "mov [rsp + 0x20 + 0x80], rcx",
    "mov [rcx + 0x10], rax",
    "lea rdx, [rsp + 0x20]",
    "mov r8d, 1",
    "call NtRaiseException",
    "mov ecx, eax",
    "call ntdll_raise_failed",
    "int3",
    ".section .drectve,\"yn\"",
    ".ascii \" -export:RtlCaptureContext -export:RtlRaiseException\"",
    ".text",
);

extern "system" {
    /// `RtlRaiseException` (assembly above).
    pub fn RtlRaiseException(record: *mut ExceptionRecord);
}

/// Where `RtlRaiseException` goes when the kernel refuses the exception.
#[no_mangle]
extern "system" fn ntdll_raise_failed(status: i32) -> ! {
    loop {
        // SAFETY: ending the current process takes no pointers.
        unsafe { NtTerminateProcess(u64::MAX, status) };
    }
}

/// `RtlRaiseStatus`: raises `Status` as a noncontinuable exception.
#[no_mangle]
pub extern "system" fn RtlRaiseStatus(Status: i32) -> ! {
    let mut record = ExceptionRecord {
        exception_code: Status as u32,
        exception_flags: EXCEPTION_NONCONTINUABLE,
        ..Default::default()
    };
    // SAFETY: `record` is a valid EXCEPTION_RECORD on this stack.
    unsafe { RtlRaiseException(&mut record) };
    // A noncontinuable exception that a handler continued: Windows raises
    // STATUS_NONCONTINUABLE_EXCEPTION; end the process with it instead.
    ntdll_raise_failed(0xC000_0025u32 as i32)
}

/// `RtlRaiseStatus` for Rust callers.
pub fn raise_status(s: NtStatus) -> ! {
    RtlRaiseStatus(s.0)
}
