//! The kernel's side of user mode (*Windows Internals*, Part 2, ch. 8):
//! entering ring 3 from a thread's `KTRAP_FRAME`, probing and copying user
//! buffers under fault protection, the user-mode half of exception
//! dispatching (routed to the executive's handler), and keeping
//! `KUSER_SHARED_DATA`'s times current from the clock.
//!
//! Fault protection: NT's services wrap user accesses in `__try`/`__except`;
//! ntrs has no structured exception handling in the kernel, so every user
//! access goes through one copy routine (`KiCopyUserMemory`) whose faulting
//! instruction the trap dispatcher recognizes: a fault there that the
//! memory manager cannot resolve resumes at the routine's failure exit with
//! the exception status (STATUS_ACCESS_VIOLATION, STATUS_IN_PAGE_ERROR ...)
//! instead of bugchecking.

use super::trap::KTrapFrame;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::status::*;
use nt::user::KSystemTime;
use nt::NtStatus;

// rcx = destination, rdx = source, r8 = length; eax = 0 or the exception
// status the trap dispatcher stored (see `fixup_user_copy_fault`).
core::arch::global_asm!(
    ".global KiCopyUserMemory",
    "KiCopyUserMemory:",
    "push rdi",
    "push rsi",
    "mov rdi, rcx",
    "mov rsi, rdx",
    "mov rcx, r8",
    ".global KiCopyUserMemoryFaultingInstruction",
    "KiCopyUserMemoryFaultingInstruction:",
    "rep movsb",
    "xor eax, eax",
    "pop rsi",
    "pop rdi",
    "ret",
    ".global KiCopyUserMemoryFailed",
    "KiCopyUserMemoryFailed:",
    "cld",
    "pop rsi",
    "pop rdi",
    "ret",
);

extern "C" {
    fn KiCopyUserMemory(dst: *mut u8, src: *const u8, len: usize) -> u32;
    fn KiCopyUserMemoryFaultingInstruction();
    fn KiCopyUserMemoryFailed();
    fn KiTrapExit();
}

/// Trap dispatcher hook: a kernel-mode fault with `status` at the copy
/// routine's instruction resumes at its failure exit returning `status`.
/// Returns whether the fault was one of these.
pub fn fixup_user_copy_fault(frame: &mut KTrapFrame, status: u32) -> bool {
    if frame.seg_cs & 1 != 0 || frame.rip != KiCopyUserMemoryFaultingInstruction as *const () as u64
    {
        return false;
    }
    frame.rip = KiCopyUserMemoryFailed as *const () as u64;
    frame.rax = status as u64;
    true
}

/// The services' probe: `ProbeForRead`'s checks (`nt::probe`: a zero
/// length passes; alignment to `alignment`, then the range below
/// `MM_USER_PROBE_ADDRESS` without wrapping) and, unlike NT's, a NULL
/// start rejected at once with the STATUS_ACCESS_VIOLATION the access
/// would give.
pub fn probe(address: u64, len: usize, alignment: u64) -> Result<(), NtStatus> {
    if len == 0 {
        return Ok(());
    }
    let alignment = u32::try_from(alignment).unwrap_or(0);
    nt::probe::probe_for_read(address, len as u64, alignment)?;
    if address == 0 {
        return Err(STATUS_ACCESS_VIOLATION);
    }
    Ok(())
}

/// `ProbeForRead` (the exported routine's work): the checks only, nothing
/// is touched; the error is the status NT raises.
pub fn probe_for_read(address: u64, length: u64, alignment: u32) -> Result<(), NtStatus> {
    nt::probe::probe_for_read(address, length, alignment)
}

/// `ProbeForWrite` (the exported routine's work): `ProbeForRead`'s checks,
/// then one byte of every page of the buffer read and written back through
/// the fault-protected copy, in the current address space; a page that is
/// not there or not writable gives STATUS_ACCESS_VIOLATION (or the status
/// of a failed in-page read), never a crash. Call at or below APC_LEVEL.
pub fn probe_for_write(address: u64, length: u64, alignment: u32) -> Result<(), NtStatus> {
    for at in nt::probe::write_probe_addresses(address, length, alignment)? {
        let mut b = [0u8; 1];
        // SAFETY: `b` is a one-byte kernel buffer; `at` lies in a probed
        // user range, and faults on it are recovered by the trap
        // dispatcher (`fixup_user_copy_fault`).
        let r = unsafe { KiCopyUserMemory(b.as_mut_ptr(), at as *const u8, 1) };
        if r != 0 {
            return Err(NtStatus(r as i32));
        }
        // SAFETY: as above, with the roles exchanged.
        let r = unsafe { KiCopyUserMemory(at as *mut u8, b.as_ptr(), 1) };
        if r != 0 {
            return Err(NtStatus(r as i32));
        }
    }
    Ok(())
}

/// Copies `dst.len()` bytes from user address `src` (probed first); a bad
/// or unmapped address gives the exception status, never a crash.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), NtStatus> {
    probe(src, dst.len(), 1)?;
    if dst.is_empty() {
        return Ok(());
    }
    // SAFETY: `dst` is a kernel buffer of that length; the source is a
    // probed user range, and faults on it are recovered by the trap
    // dispatcher (`fixup_user_copy_fault`).
    let r = unsafe { KiCopyUserMemory(dst.as_mut_ptr(), src as *const u8, dst.len()) };
    if r == 0 {
        Ok(())
    } else {
        Err(NtStatus(r as i32))
    }
}

/// Copies `src` to user address `dst` (probed first), as [`copy_from_user`].
pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), NtStatus> {
    probe(dst, src.len(), 1)?;
    if src.is_empty() {
        return Ok(());
    }
    // SAFETY: as in `copy_from_user`, with the roles exchanged.
    let r = unsafe { KiCopyUserMemory(dst as *mut u8, src.as_ptr(), src.len()) };
    if r == 0 {
        Ok(())
    } else {
        Err(NtStatus(r as i32))
    }
}

/// Reads a plain value from user memory.
pub fn read_user<T: Copy + Default>(src: u64) -> Result<T, NtStatus> {
    let mut v = T::default();
    // SAFETY: `v` is a plain value; viewing it as bytes to fill it is sound
    // for the integer and repr(C) types services read.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(&mut v as *mut T as *mut u8, core::mem::size_of::<T>())
    };
    copy_from_user(bytes, src)?;
    Ok(v)
}

/// Writes a plain value to user memory.
pub fn write_user<T: Copy>(dst: u64, v: &T) -> Result<(), NtStatus> {
    // SAFETY: reading a plain value's bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>())
    };
    copy_to_user(dst, bytes)
}

/// What the executive does with an exception raised in user mode (the
/// user-mode half of `KiDispatchException`), registered in phase 1.
static USER_EXCEPTION: crate::rtl::Once<fn(&mut KTrapFrame, u32, u64)> = crate::rtl::Once::new();

/// Registers the executive's user exception handler.
pub fn register_user_exception_handler(f: fn(&mut KTrapFrame, u32, u64)) {
    USER_EXCEPTION.set(f);
}

/// Whether the executive registered its handler (before that, a user-mode
/// fault is treated as a kernel fault).
pub fn user_exceptions_handled() -> bool {
    USER_EXCEPTION.get().is_some()
}

/// An exception user mode does not handle (second chance, or no
/// dispatcher to send it to): the executive ends the process with `code`
/// (`address` is reported). Does not return when the handler is registered.
pub fn end_process_for_exception(frame: &mut KTrapFrame, code: u32, address: u64) {
    if let Some(f) = USER_EXCEPTION.get() {
        f(frame, code, address);
    }
}

/// Builds the initial `KTRAP_FRAME` of a user thread at the top of its
/// kernel stack and leaves for ring 3 through the trap exit (`iretq`,
/// `swapgs` because the frame's CS is user mode): RIP `entry`, RSP `stack`,
/// RCX `argument` (a native entry point's first parameter), CS 0x33,
/// SS 0x2B, IF set. `teb` becomes the user GS base (KERNEL_GS_BASE until
/// the `swapgs`) and stays the thread's for every later switch.
///
/// The frame occupies the top 0x190 bytes of the kernel stack, where the
/// thread's start-up call chain runs; so the code first moves to a stack
/// pointer below the frame (the call chain is abandoned: nothing in it
/// returns) and builds the frame from there, as `KiInitializeContextThread`
/// places a user thread's trap frame above its start frame.
///
/// # Safety
/// Called on the thread's own kernel stack at PASSIVE_LEVEL with the
/// thread attached to the address space where `entry`, `stack` and `teb`
/// are mapped user memory; nothing on the current stack may need dropping.
pub unsafe fn enter_user_mode(entry: u64, stack: u64, argument: u64, teb: u64) -> ! {
    let top = super::sched::current_thread().initial_stack;
    let below = top - core::mem::size_of::<KTrapFrame>() as u64 - 0x40;
    // SAFETY: `below` is 16-byte aligned inside this thread's kernel stack,
    // under the frame area; the four values travel in registers
    // (rcx, rdx, r8, r9: the Windows x64 convention of `extern "C"` here).
    unsafe {
        core::arch::asm!(
            "mov rsp, {below}",
            "call {inner}",
            "ud2",
            below = in(reg) below,
            inner = sym ki_enter_user_mode,
            in("rcx") entry,
            in("rdx") stack,
            in("r8") argument,
            in("r9") teb,
            options(noreturn)
        )
    }
}

extern "C" fn ki_enter_user_mode(entry: u64, stack: u64, argument: u64, teb: u64) -> ! {
    let frame_address = {
        let t = super::sched::current_thread();
        t.set_teb(teb);
        t.initial_stack - core::mem::size_of::<KTrapFrame>() as u64
    };
    let frame = frame_address as *mut KTrapFrame;
    // SAFETY: the top 0x190 bytes of this thread's kernel stack are above
    // the stack pointer now (see `enter_user_mode`) and 16-byte aligned for
    // the XMM slots.
    unsafe {
        core::ptr::write_bytes(frame as *mut u8, 0, core::mem::size_of::<KTrapFrame>());
        let f = &mut *frame;
        f.previous_mode = 1;
        f.mx_csr = super::thread::DEFAULT_MXCSR;
        f.rcx = argument;
        f.rip = entry;
        f.seg_cs = (super::gdt::KGDT64_R3_CODE | 3) as u64;
        f.eflags = 0x200;
        f.rsp = stack;
        f.seg_ss = (super::gdt::KGDT64_R3_DATA | 3) as u64;
    }
    crate::hal::disable_interrupts();
    // SAFETY: KERNEL_GS_BASE only matters after the next swapgs, which the
    // exit below performs on the way to user mode.
    unsafe { crate::hal::wrmsr(super::MSR_KERNEL_GS_BASE, teb) };
    // SAFETY: the frame is a complete user-mode KTRAP_FRAME; the exit
    // restores it and irets to ring 3. Non-volatile registers that the
    // frame does not hold are zeroed so no kernel value leaks.
    unsafe {
        core::arch::asm!(
            "mov rsp, {f}",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "jmp {exit}",
            f = in(reg) frame_address,
            exit = sym KiTrapExit,
            options(noreturn)
        )
    }
}

/// The kernel's mapping of `KUSER_SHARED_DATA` (0 until the memory manager
/// maps it).
static SHARED_DATA: AtomicU64 = AtomicU64::new(0);

/// Records where `KUSER_SHARED_DATA` is mapped for the kernel (phase 1).
pub fn set_shared_data(va: u64) {
    SHARED_DATA.store(va, Ordering::Release);
}

fn write_system_time(t: *mut KSystemTime, v: u64) {
    // SAFETY: `t` is a field of the mapped shared data page; the order
    // High2Time, LowPart, High1Time lets readers detect a torn value.
    unsafe {
        core::ptr::addr_of_mut!((*t).high2_time).write_volatile((v >> 32) as i32);
        core::ptr::addr_of_mut!((*t).low_part).write_volatile(v as u32);
        core::ptr::addr_of_mut!((*t).high1_time).write_volatile((v >> 32) as i32);
    }
}

/// The clock's update of `KUSER_SHARED_DATA` (processor 0, each tick):
/// `InterruptTime`, `SystemTime`, `TickCount`.
pub fn update_shared_data(interrupt_time: u64, system_time: u64, tick_count: u64) {
    let va = SHARED_DATA.load(Ordering::Acquire);
    if va == 0 {
        return;
    }
    let d = va as *mut nt::user::KUserSharedData;
    // SAFETY: `va` is the kernel's read/write mapping of the shared page,
    // never unmapped; only processor 0's clock writes these fields.
    unsafe {
        write_system_time(core::ptr::addr_of_mut!((*d).interrupt_time), interrupt_time);
        write_system_time(core::ptr::addr_of_mut!((*d).system_time), system_time);
        write_system_time(core::ptr::addr_of_mut!((*d).tick_count), tick_count);
        core::ptr::addr_of_mut!((*d).tick_count_low_deprecated).write_volatile(tick_count as u32);
    }
}
