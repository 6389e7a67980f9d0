//! Exception and APC dispatching to user mode (*Windows Internals*, Part 2,
//! ch. 8, "Exception dispatching" and "Asynchronous procedure call
//! interrupts"): the user-mode half of `KiDispatchException`, the user
//! APC frame of `KiInitializeUserApc`, `KeContextFromKframes` /
//! `KeContextToKframes`, and the services that work on the caller's own
//! context: `NtContinue`, `NtRaiseException`, `NtTestAlert`, and the
//! current-thread part of `NtGetContextThread`/`NtSetContextThread`.
//!
//! The rules (exception codes and parameters, EFLAGS/MXCSR sanitizing,
//! privileged-instruction recognition, frame placement) are the
//! host-tested `ke::except` crate module; this file moves registers.
//!
//! First chance: the `CONTEXT` and `EXCEPTION_RECORD` (with `CONTEXT_EX`
//! and a machine frame, [`nt::context::UserExceptionFrame`]) are copied
//! below the faulting RSP and the thread resumes at
//! `KiUserExceptionDispatcher` with RSP at the CONTEXT. If the copy fails
//! (bad stack) or the process has no dispatcher, or for a second chance
//! (`NtRaiseException(.., FirstChance = FALSE)`, what ntdll's dispatcher
//! does when no handler took the exception), the process ends with the
//! exception code (the executive's handler registered in
//! `ke::user::register_user_exception_handler`).
//!
//! Where the dispatchers are: NT looks them up in ntdll once
//! (`PspLookupKernelUserEntryPoints`). Until ntdll is mapped into
//! processes, the executive's lookup (registered here) finds exports named
//! `KiUserExceptionDispatcher`/`KiUserApcDispatcher` in the process's own
//! image; a process without them has no dispatcher (its exceptions end
//! it, as before).

use super::trap::{KExceptionFrame, KTrapFrame};
use super::user::{copy_from_user, copy_to_user, probe, read_user};
use ::ke::except::*;
use core::sync::atomic::{AtomicU32, Ordering};
use nt::context::*;
use nt::status::*;
use nt::user::MM_USER_PROBE_ADDRESS;
use nt::NtStatus;

/// The user-mode entry points the kernel sends threads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserEntryPoint {
    /// `KiUserExceptionDispatcher`.
    ExceptionDispatcher,
    /// `KiUserApcDispatcher`.
    ApcDispatcher,
}

static USER_ENTRY: crate::rtl::Once<fn(UserEntryPoint) -> Option<u64>> = crate::rtl::Once::new();

/// Registers the executive's lookup of the current process's user-mode
/// dispatchers (phase 1).
pub fn register_user_entry_points(f: fn(UserEntryPoint) -> Option<u64>) {
    USER_ENTRY.set(f);
}

fn user_entry(which: UserEntryPoint) -> Option<u64> {
    USER_ENTRY.get().and_then(|f| f(which))
}

/// The processor's MXCSR_MASK (from an FXSAVE image; 0xFFBF when it
/// reports 0, per the SDM), read once.
static MXCSR_MASK: AtomicU32 = AtomicU32::new(0);

fn mxcsr_mask() -> u32 {
    let m = MXCSR_MASK.load(Ordering::Relaxed);
    if m != 0 {
        return m;
    }
    #[repr(C, align(16))]
    struct Area([u8; 512]);
    let mut a = Area([0; 512]);
    // SAFETY: FXSAVE writes 512 bytes to a 16-byte aligned buffer of that size.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) a.0.as_mut_ptr(), options(nostack)) };
    let m = u32::from_le_bytes([a.0[28], a.0[29], a.0[30], a.0[31]]);
    let m = if m == 0 { 0xFFBF } else { m };
    MXCSR_MASK.store(m, Ordering::Relaxed);
    m
}

fn m128(x: [u64; 2]) -> M128A {
    M128A {
        low: x[0],
        high: x[1] as i64,
    }
}

fn from_m128(x: M128A) -> [u64; 2] {
    [x.low, x.high as u64]
}

/// `KeContextFromKframes`: the user context a trap frame and its exception
/// frame hold (CONTEXT_FULL | CONTEXT_SEGMENTS; the x87 registers and the
/// debug registers are not kept by ntrs and read as zero).
pub fn context_from_frames(tf: &KTrapFrame, ef: &KExceptionFrame) -> Context {
    let mut c = Context {
        context_flags: CONTEXT_FULL | CONTEXT_SEGMENTS,
        mx_csr: tf.mx_csr,
        seg_cs: USER_CS,
        seg_ds: USER_SS,
        seg_es: USER_SS,
        seg_fs: USER_FS,
        seg_gs: USER_SS,
        seg_ss: USER_SS,
        eflags: tf.eflags as u32,
        rax: tf.rax,
        rcx: tf.rcx,
        rdx: tf.rdx,
        rbx: tf.rbx,
        rsp: tf.rsp,
        rbp: tf.rbp,
        rsi: tf.rsi,
        rdi: tf.rdi,
        r8: tf.r8,
        r9: tf.r9,
        r10: tf.r10,
        r11: tf.r11,
        r12: ef.r12,
        r13: ef.r13,
        r14: ef.r14,
        r15: ef.r15,
        rip: tf.rip,
        ..Default::default()
    };
    c.flt_save.control_word = 0x27F;
    c.flt_save.mx_csr = tf.mx_csr;
    c.flt_save.mx_csr_mask = mxcsr_mask();
    for i in 0..6 {
        c.flt_save.xmm_registers[i] = m128(tf.xmm[i]);
    }
    for i in 0..10 {
        c.flt_save.xmm_registers[6 + i] = m128(ef.xmm[i]);
    }
    c
}

/// `KeContextToKframes` for a user-mode frame: the parts `ContextFlags`
/// names, sanitized (CS/SS stay user selectors, EFLAGS keeps only what
/// user mode may set with IF on, MXCSR loses reserved bits; segment and
/// debug registers are ignored). Returns false when the new RIP is not
/// canonical: the frame keeps it, and the caller raises the access
/// violation the processor would (an `iretq` to it would fault in ring 0).
pub fn context_to_frames(c: &Context, tf: &mut KTrapFrame, ef: &mut KExceptionFrame) -> bool {
    let flags = c.context_flags;
    let has = |f: u32| flags & f == f;
    if has(CONTEXT_CONTROL) {
        tf.rip = c.rip;
        tf.rsp = c.rsp;
        tf.eflags = sanitize_eflags(c.eflags as u64);
        tf.seg_cs = USER_CS as u64;
        tf.seg_ss = USER_SS as u64;
    }
    if has(CONTEXT_INTEGER) {
        tf.rax = c.rax;
        tf.rcx = c.rcx;
        tf.rdx = c.rdx;
        tf.rbx = c.rbx;
        tf.rbp = c.rbp;
        tf.rsi = c.rsi;
        tf.rdi = c.rdi;
        tf.r8 = c.r8;
        tf.r9 = c.r9;
        tf.r10 = c.r10;
        tf.r11 = c.r11;
        ef.r12 = c.r12;
        ef.r13 = c.r13;
        ef.r14 = c.r14;
        ef.r15 = c.r15;
    }
    if has(CONTEXT_FLOATING_POINT) {
        tf.mx_csr = sanitize_mxcsr(c.mx_csr, mxcsr_mask());
        for i in 0..6 {
            tf.xmm[i] = from_m128(c.flt_save.xmm_registers[i]);
        }
        for i in 0..10 {
            ef.xmm[i] = from_m128(c.flt_save.xmm_registers[6 + i]);
        }
    }
    // The system-service exit restores everything from the frames.
    tf.exception_active = 1;
    is_canonical(tf.rip)
}

fn bytes_of<T>(v: &T) -> &[u8] {
    // SAFETY: a plain repr(C) value viewed as its bytes (padding included,
    // which the frames below zero-initialize through `Default`/explicit fields).
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>()) }
}

/// Second chance with no one to take it: the executive ends the process
/// with the exception code (does not return while a handler is registered).
fn unhandled(tf: &mut KTrapFrame, record: &ExceptionRecord) {
    let address = if record.number_parameters >= 2 {
        record.exception_information[1]
    } else {
        record.exception_address
    };
    super::user::end_process_for_exception(tf, record.exception_code, address);
}

/// The user-mode half of `KiDispatchException`: `record` happened with the
/// user context `ctx`. First chance: copy both to the user stack and resume
/// at `KiUserExceptionDispatcher`; otherwise (or when that fails) the
/// process ends with the code.
pub fn ki_dispatch_user_exception(
    tf: &mut KTrapFrame,
    record: &ExceptionRecord,
    ctx: &Context,
    first_chance: bool,
) {
    if first_chance {
        if let Some(dispatcher) = user_entry(UserEntryPoint::ExceptionDispatcher) {
            if let Some(base) = user_exception_frame_address(ctx.rsp, MM_USER_PROBE_ADDRESS) {
                let context_size = core::mem::size_of::<Context>() as i32;
                let ex_size = core::mem::size_of::<ContextEx>() as u32;
                let frame = UserExceptionFrame {
                    context: *ctx,
                    context_ex: ContextEx {
                        all: ContextChunk {
                            offset: -context_size,
                            length: context_size as u32 + ex_size,
                        },
                        legacy: ContextChunk {
                            offset: -context_size,
                            length: context_size as u32,
                        },
                        xstate: ContextChunk {
                            offset: ex_size as i32,
                            length: 0,
                        },
                    },
                    align1: 0,
                    exception_record: *record,
                    align2: 0,
                    machine_frame: MachineFrame {
                        rip: ctx.rip,
                        seg_cs: USER_CS as u64,
                        eflags: ctx.eflags as u64,
                        rsp: ctx.rsp,
                        seg_ss: USER_SS as u64,
                    },
                };
                if copy_to_user(base, bytes_of(&frame)).is_ok() {
                    tf.rsp = base;
                    tf.rip = dispatcher;
                    tf.seg_cs = USER_CS as u64;
                    tf.seg_ss = USER_SS as u64;
                    // No spurious single-step trap in the dispatcher.
                    tf.eflags = sanitize_eflags(ctx.eflags as u64) & !0x100;
                    tf.exception_active = 1;
                    return;
                }
            }
        }
    }
    unhandled(tf, record);
}

/// Trap dispatcher hook for an unresolved fault in user mode (`vector`,
/// `status` the memory manager's answer for a page fault, `cr2`).
///
/// # Safety
/// `ef` is the exception frame the exception entry built below `tf`.
pub unsafe fn dispatch_user_fault(
    tf: &mut KTrapFrame,
    ef: *mut KExceptionFrame,
    vector: u32,
    status: u32,
    cr2: u64,
) {
    let mut fault = UserFault {
        vector,
        rip: tf.rip,
        error_code: tf.error_code,
        fault_address: cr2,
        page_fault_status: if vector == VECTOR_PAGE_FAULT {
            status
        } else {
            0
        },
        privileged: false,
        mxcsr: tf.mx_csr,
    };
    if vector == VECTOR_GENERAL_PROTECTION {
        let mut insn = [0u8; 15];
        let n = (0..insn.len())
            .take_while(|&i| {
                copy_from_user(&mut insn[i..i + 1], tf.rip.wrapping_add(i as u64)).is_ok()
            })
            .count();
        fault.privileged = is_privileged_instruction(&insn[..n]);
    }
    let (record, rip) = exception_record_for(&fault);
    // SAFETY: per the contract.
    let ef = unsafe { &mut *ef };
    let mut ctx = context_from_frames(tf, ef);
    ctx.rip = rip;
    ki_dispatch_user_exception(tf, &record, &ctx, true);
}

/// Captures a `CONTEXT` from user memory (8-byte alignment, as NT probes it).
fn capture_context(at: u64) -> Result<Context, NtStatus> {
    probe(at, core::mem::size_of::<Context>(), 8)?;
    read_user::<Context>(at)
}

/// `NtContinue(ContextRecord, TestAlert)`: resumes with the given context
/// (after `KeTestAlertThread(UserMode)` when asked, which lets the next
/// user APC in). Does not return to the caller when it succeeds.
pub fn nt_continue(
    a: &[u64; super::syscall::MAX_SERVICE_ARGUMENTS],
    tf: &mut KTrapFrame,
) -> NtStatus {
    let ctx = match capture_context(a[0]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    // SAFETY: service trap frames come from KiSystemCall64, which builds
    // the exception frame below them.
    let (tf, ef) = unsafe { tf.with_exception_frame() };
    let canonical = context_to_frames(&ctx, tf, ef);
    if a[1] as u8 != 0 {
        super::apc::ke_test_alert_thread(super::apc::ApcMode::UserMode);
    }
    if !canonical {
        raise_bad_rip(tf, ef);
    }
    // RAX is the context's, not a status.
    NtStatus(tf.rax as i32)
}

/// The access violation an `iretq` to a non-canonical RIP stands for.
fn raise_bad_rip(tf: &mut KTrapFrame, ef: &mut KExceptionFrame) {
    let ctx = context_from_frames(tf, ef);
    let record = ExceptionRecord {
        exception_code: STATUS_ACCESS_VIOLATION.as_u32(),
        exception_address: tf.rip,
        number_parameters: 2,
        exception_information: {
            let mut i = [0u64; EXCEPTION_MAXIMUM_PARAMETERS];
            i[0] = EXCEPTION_EXECUTE_FAULT;
            i[1] = tf.rip;
            i
        },
        ..Default::default()
    };
    ki_dispatch_user_exception(tf, &record, &ctx, true);
}

/// `NtRaiseException(ExceptionRecord, ContextRecord, FirstChance)`: raises
/// a software exception with the given record and context (first chance:
/// to `KiUserExceptionDispatcher`; second chance: the process ends with
/// the code).
pub fn nt_raise_exception(
    a: &[u64; super::syscall::MAX_SERVICE_ARGUMENTS],
    tf: &mut KTrapFrame,
) -> NtStatus {
    let r = (|| {
        probe(a[0], core::mem::size_of::<ExceptionRecord>(), 4)?;
        let record: ExceptionRecord = read_user(a[0])?;
        check_raised_record(&record)?;
        let ctx = capture_context(a[1])?;
        Ok((record, ctx))
    })();
    let (mut record, mut ctx) = match r {
        Ok(x) => x,
        Err(e) => return e,
    };
    // Parameters beyond NumberParameters are not the caller's to pass on.
    for p in record.exception_information[record.number_parameters as usize..].iter_mut() {
        *p = 0;
    }
    ctx.eflags = sanitize_eflags(ctx.eflags as u64) as u32;
    ctx.seg_cs = USER_CS;
    ctx.seg_ss = USER_SS;
    ctx.mx_csr = sanitize_mxcsr(ctx.mx_csr, mxcsr_mask());
    ctx.flt_save.mx_csr = ctx.mx_csr;
    // SAFETY: as in `nt_continue`.
    let (tf, ef) = unsafe { tf.with_exception_frame() };
    // The context the dispatcher gets is also the one the thread resumes
    // with if the dispatch cannot be made (its registers for the exit).
    let mut full = ctx;
    full.context_flags = CONTEXT_FULL;
    let canonical = context_to_frames(&full, tf, ef);
    if !canonical && a[2] as u8 != 0 {
        raise_bad_rip(tf, ef);
    } else {
        ki_dispatch_user_exception(tf, &record, &ctx, a[2] as u8 != 0);
    }
    NtStatus(tf.rax as i32)
}

/// `NtTestAlert`: STATUS_ALERTED if the thread was alerted (user mode);
/// with user APCs queued they are delivered on the way out.
pub fn nt_test_alert(
    _: &[u64; super::syscall::MAX_SERVICE_ARGUMENTS],
    _: &mut KTrapFrame,
) -> NtStatus {
    if super::apc::ke_test_alert_thread(super::apc::ApcMode::UserMode) {
        STATUS_ALERTED
    } else {
        STATUS_SUCCESS
    }
}

/// `NtGetContextThread` for the current thread: the context at the
/// system call (`ContextFlags` read from the caller's record chooses the
/// parts written back; RIP/RSP are the caller's return point).
pub fn get_current_context(at: u64, tf: &mut KTrapFrame) -> NtStatus {
    let r = (|| {
        probe(at, core::mem::size_of::<Context>(), 8)?;
        let flags: u32 = read_user(at + 0x30)?;
        // SAFETY: as in `nt_continue`.
        let (tf, ef) = unsafe { tf.with_exception_frame() };
        let mut c = context_from_frames(tf, ef);
        c.context_flags = flags;
        // Only the parts asked for are written (NT's KeContextFromKframes).
        let mut out: Context = read_user(at)?;
        let has = |f: u32| flags & f == f;
        if has(CONTEXT_CONTROL) {
            (out.rip, out.rsp, out.eflags, out.seg_cs, out.seg_ss) =
                (c.rip, c.rsp, c.eflags, c.seg_cs, c.seg_ss);
        }
        if has(CONTEXT_INTEGER) {
            (
                out.rax, out.rcx, out.rdx, out.rbx, out.rbp, out.rsi, out.rdi,
            ) = (c.rax, c.rcx, c.rdx, c.rbx, c.rbp, c.rsi, c.rdi);
            (out.r8, out.r9, out.r10, out.r11) = (c.r8, c.r9, c.r10, c.r11);
            (out.r12, out.r13, out.r14, out.r15) = (c.r12, c.r13, c.r14, c.r15);
        }
        if has(CONTEXT_SEGMENTS) {
            (out.seg_ds, out.seg_es, out.seg_fs, out.seg_gs) =
                (c.seg_ds, c.seg_es, c.seg_fs, c.seg_gs);
        }
        if has(CONTEXT_FLOATING_POINT) {
            out.mx_csr = c.mx_csr;
            out.flt_save = c.flt_save;
        }
        if has(CONTEXT_DEBUG_REGISTERS) {
            (out.dr0, out.dr1, out.dr2, out.dr3, out.dr6, out.dr7) = (0, 0, 0, 0, 0, 0);
        }
        copy_to_user(at, bytes_of(&out))
    })();
    match r {
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// `NtSetContextThread` for the current thread: the system call returns
/// into the given context (its RAX included).
pub fn set_current_context(at: u64, tf: &mut KTrapFrame) -> NtStatus {
    let ctx = match capture_context(at) {
        Ok(c) => c,
        Err(e) => return e,
    };
    // SAFETY: as in `nt_continue`.
    let (tf, ef) = unsafe { tf.with_exception_frame() };
    let rax = tf.rax;
    if !context_to_frames(&ctx, tf, ef) {
        raise_bad_rip(tf, ef);
    }
    if ctx.context_flags & CONTEXT_INTEGER != CONTEXT_INTEGER {
        tf.rax = rax;
    }
    NtStatus(tf.rax as i32)
}

/// `KiInitializeUserApc` at the system-service exit: when the current
/// thread has a user-mode APC due (`UserApcPending`, after a wait that
/// ended with STATUS_USER_APC, `NtTestAlert` or `NtContinue(.., TRUE)`),
/// its context (RAX the service's status) goes to the user stack with the
/// APC in the home slots and the thread resumes at `KiUserApcDispatcher`,
/// which calls the routine and `NtContinue`s back.
pub fn deliver_user_apc(tf: &mut KTrapFrame) {
    let Some(dispatcher) = user_entry(UserEntryPoint::ApcDispatcher) else {
        return;
    };
    let Some((routine, context, arg1, arg2)) = super::apc::ki_take_user_mode_apc() else {
        return;
    };
    // SAFETY: as in `nt_continue`.
    let (tf, ef) = unsafe { tf.with_exception_frame() };
    let mut ctx = context_from_frames(tf, ef);
    ctx.p1_home = context as u64;
    ctx.p2_home = arg1 as u64;
    ctx.p3_home = arg2 as u64;
    ctx.p4_home = routine;
    let Some(base) = user_apc_frame_address(tf.rsp, MM_USER_PROBE_ADDRESS) else {
        return unhandled_apc_stack(tf, &ctx);
    };
    let frame = UserApcFrame {
        context: ctx,
        machine_frame: MachineFrame {
            rip: tf.rip,
            seg_cs: USER_CS as u64,
            eflags: tf.eflags,
            rsp: tf.rsp,
            seg_ss: USER_SS as u64,
        },
    };
    if copy_to_user(base, bytes_of(&frame)).is_err() {
        return unhandled_apc_stack(tf, &ctx);
    }
    tf.rsp = base;
    tf.rip = dispatcher;
    tf.eflags &= !0x100;
    tf.exception_active = 1;
}

/// The user stack cannot take the APC frame: NT raises the failure as an
/// exception in user mode; here it goes through the exception path (whose
/// own copy fails the same way and ends the process).
fn unhandled_apc_stack(tf: &mut KTrapFrame, ctx: &Context) {
    let record = ExceptionRecord {
        exception_code: STATUS_ACCESS_VIOLATION.as_u32(),
        exception_address: ctx.rip,
        ..Default::default()
    };
    ki_dispatch_user_exception(tf, &record, ctx, true);
}
