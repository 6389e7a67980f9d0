//! ntdll.dll: the native API DLL (*Windows Internals* 7th ed., Part 1,
//! ch. 3 "The image loader", ch. 5 "Heap manager"; Part 2, ch. 8 "System
//! service dispatching"). A `no_std` PE DLL for `x86_64-pc-windows-msvc`
//! linked by rust-lld with no default libraries and no entry point. Its
//! exports carry Windows' names; the logic behind the `Rtl*` exports lives
//! in host-tested crates under `lib/` (see docs/ntdll.md).
#![no_std]

mod crt;
mod except;
mod heap;
mod rtl_exports;
mod seh;
mod syscalls;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Nothing in ntdll panics on bad input (every export checks it and
    // returns an NTSTATUS); a panic is an ntdll bug. End the process with
    // STATUS_INTERNAL_ERROR rather than run on in an unknown state.
    loop {
        // SAFETY: NtTerminateProcess(NtCurrentProcess(), status) takes no
        // pointers; it does not return for the current process.
        unsafe { syscalls::NtTerminateProcess(u64::MAX, 0xC000_00E5u32 as i32) };
    }
}
