//! The `Nt*`/`Zw*` system-call stubs, generated from the one service list
//! (`nt::nt_services!`, lib/nt/src/syscalls.rs) so ntdll and the kernel's
//! `KiServiceTable` cannot disagree. Every stub has the byte layout of
//! Windows 10 x64 ntdll and starts on a 32-byte boundary, as there:
//!
//! ```text
//! 4C 8B D1                    mov r10, rcx
//! B8 nn nn 00 00              mov eax, N
//! F6 04 25 08 03 FE 7F 01     test byte ptr [7FFE0308h], 1   ; KUSER_SHARED_DATA.SystemCall
//! 75 03                       jne +3
//! 0F 05                       syscall
//! C3                          ret
//! CD 2E                       int 2Eh
//! C3                          ret
//! ```
//!
//! `ZwX` is a second label on `NtX`'s stub (one address, two exports, as in
//! Windows' ntdll). The exports are emitted as `-export:` directives in the
//! object's `.drectve` section, which is how MSVC's `__declspec(dllexport)`
//! reaches the linker. The assembly is written by `build.rs` from
//! `nt::syscalls::SERVICES`.

core::arch::global_asm!(include_str!(concat!(env!("OUT_DIR"), "/stubs.s")));

#[allow(non_snake_case, dead_code)]
extern "system" {
    pub fn NtTerminateProcess(process: u64, status: i32) -> i32;
    pub fn NtAllocateVirtualMemory(
        process: u64,
        base: *mut u64,
        zero_bits: u64,
        size: *mut u64,
        allocation_type: u32,
        protect: u32,
    ) -> i32;
    pub fn NtFreeVirtualMemory(process: u64, base: *mut u64, size: *mut u64, free_type: u32)
        -> i32;
    pub fn NtYieldExecution() -> i32;
    pub fn NtContinue(context: *const nt::context::Context, test_alert: u8) -> i32;
    pub fn NtRaiseException(
        record: *const nt::context::ExceptionRecord,
        context: *const nt::context::Context,
        first_chance: u8,
    ) -> i32;
}
