//! Raising exceptions from user mode: `RtlCaptureContext`,
//! `RtlRaiseException`, `RtlRaiseStatus`.
//!
//! As Windows' ntdll, `RtlRaiseException` dispatches the exception itself
//! (`RtlDispatchException`, seh.rs): handled, it continues with the
//! (possibly changed) context (`NtContinue`); not handled, it is raised
//! to the kernel as the second chance (`NtRaiseException(.., FALSE)`),
//! which ends the process with the exception code. Under a debugger
//! (`PEB.BeingDebugged`) it goes to the kernel as a first-chance exception
//! instead, which reaches the debugger and then `KiUserExceptionDispatcher`.
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
// ExceptionAddress), then as described above. Its unwind data (the
// 0x4F8 allocation) lets RtlUnwindEx walk through it to the raiser. The
// Nt calls return only on failure: the process then ends with that status.
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
    ".seh_proc RtlRaiseException",
    "RtlRaiseException:",
    "mov [rsp + 8], rcx",
    "sub rsp, 0x4F8",
    ".seh_stackalloc 0x4F8",
    ".seh_endprologue",
    "lea rcx, [rsp + 0x20]",
    "call RtlCaptureContext",
    "lea rax, [rsp + 0x500]",
    "mov [rsp + 0x20 + 0x98], rax",
    "mov rax, [rsp + 0x4F8]",
    "mov [rsp + 0x20 + 0xF8], rax",
    "mov rcx, [rsp + 0x500]",
    "mov [rsp + 0x20 + 0x80], rcx",
    "mov [rcx + 0x10], rax",
    "mov rax, gs:[0x60]",
    "cmp byte ptr [rax + 2], 0",
    "jne 4f",
    "lea rdx, [rsp + 0x20]",
    "call RtlDispatchException",
    "test al, al",
    "jz 5f",
    "lea rcx, [rsp + 0x20]",
    "xor edx, edx",
    "call NtContinue",
    "jmp 6f",
    "5:",
    "mov rcx, [rsp + 0x500]",
    "lea rdx, [rsp + 0x20]",
    "xor r8d, r8d",
    "call NtRaiseException",
    "jmp 6f",
    "4:",
    "mov rcx, [rsp + 0x500]",
    "lea rdx, [rsp + 0x20]",
    "mov r8d, 1",
    "call NtRaiseException",
    "6:",
    "mov ecx, eax",
    "call ntdll_raise_failed",
    "int3",
    ".seh_endproc",
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
