//! The hardware-free part of exception dispatching to user mode
//! (*Windows Internals*, Part 2, ch. 8, "Exception dispatching"): which
//! `EXCEPTION_RECORD` a processor exception becomes (`KiXxxFault` and
//! `KiPreprocessFault`), what user mode may put in a `CONTEXT` it hands to
//! `NtContinue`/`NtSetContextThread`/`NtRaiseException` (NT's
//! sanitizing of EFLAGS, selectors and MXCSR), and where the frames for
//! `KiUserExceptionDispatcher`/`KiUserApcDispatcher` go on the user stack.

use nt::context::{ExceptionRecord, UserApcFrame, UserExceptionFrame};
use nt::status::*;

/// `EXCEPTION_READ_FAULT`, `EXCEPTION_WRITE_FAULT`, `EXCEPTION_EXECUTE_FAULT`:
/// `ExceptionInformation[0]` of an access violation.
pub const EXCEPTION_READ_FAULT: u64 = 0;
pub const EXCEPTION_WRITE_FAULT: u64 = 1;
pub const EXCEPTION_EXECUTE_FAULT: u64 = 8;

/// The user code and data selectors (`KGDT64_R3_CODE | 3`, `KGDT64_R3_DATA | 3`).
pub const USER_CS: u16 = 0x33;
pub const USER_SS: u16 = 0x2B;
/// The 32-bit TEB selector NT loads in FS (`KGDT64_R3_CMTEB | 3`).
pub const USER_FS: u16 = 0x53;

/// EFLAGS bits user mode may set: CF, PF, AF, ZF, SF, TF, DF, OF, AC, ID.
pub const EFLAGS_USER_SANITIZE: u64 = 0x0024_0FD5;
/// IF and the always-one bit 1.
const EFLAGS_FORCED: u64 = 0x202;

/// EFLAGS as a user context may set them (NT's `SANITIZE_FLAGS`): only the
/// arithmetic, direction, trap, alignment-check and ID flags; interrupts
/// always on, IOPL 0.
pub fn sanitize_eflags(eflags: u64) -> u64 {
    (eflags & EFLAGS_USER_SANITIZE) | EFLAGS_FORCED
}

/// MXCSR as a user context may set it: the reserved bits (16 and up, and
/// those the processor's MXCSR_MASK lacks) cleared so `ldmxcsr` in the
/// kernel's exit cannot fault.
pub fn sanitize_mxcsr(mxcsr: u32, mxcsr_mask: u32) -> u32 {
    mxcsr & mxcsr_mask & 0xFFFF
}

/// Whether `va` is canonical for 4-level paging.
pub fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_FFFF
}

/// Processor exception vectors.
pub const VECTOR_DIVIDE_ERROR: u32 = 0;
pub const VECTOR_DEBUG: u32 = 1;
pub const VECTOR_BREAKPOINT: u32 = 3;
pub const VECTOR_OVERFLOW: u32 = 4;
pub const VECTOR_BOUND: u32 = 5;
pub const VECTOR_INVALID_OPCODE: u32 = 6;
pub const VECTOR_GENERAL_PROTECTION: u32 = 13;
pub const VECTOR_PAGE_FAULT: u32 = 14;
pub const VECTOR_X87: u32 = 16;
pub const VECTOR_ALIGNMENT_CHECK: u32 = 17;
pub const VECTOR_SIMD: u32 = 19;

/// What the trap handler knows about a fault from user mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserFault {
    pub vector: u32,
    /// The saved RIP (after the instruction for traps: #BP, #OF).
    pub rip: u64,
    /// The hardware error code (page faults: bit 1 write, bit 4 execute).
    pub error_code: u64,
    /// CR2 for a page fault.
    pub fault_address: u64,
    /// The memory manager's status for an unresolved page fault
    /// (STATUS_ACCESS_VIOLATION, STATUS_IN_PAGE_ERROR, STATUS_GUARD_PAGE_VIOLATION ...).
    pub page_fault_status: u32,
    /// For #GP: the faulting instruction is a privileged one (see
    /// [`is_privileged_instruction`]).
    pub privileged: bool,
    /// MXCSR at the fault (for #XM).
    pub mxcsr: u32,
}

/// Builds the `EXCEPTION_RECORD` NT raises for a user-mode processor
/// exception and the RIP the context resumes at (a breakpoint's record and
/// context name the `int3` itself, one byte back, as on x64 Windows).
pub fn exception_record_for(f: &UserFault) -> (ExceptionRecord, u64) {
    let mut r = ExceptionRecord {
        exception_address: f.rip,
        ..Default::default()
    };
    let mut rip = f.rip;
    let code = match f.vector {
        VECTOR_DIVIDE_ERROR => STATUS_INTEGER_DIVIDE_BY_ZERO,
        VECTOR_DEBUG => STATUS_SINGLE_STEP,
        VECTOR_BREAKPOINT => {
            rip = f.rip.wrapping_sub(1);
            r.exception_address = rip;
            r.number_parameters = 1;
            r.exception_information[0] = 0; // BREAKPOINT_BREAK
            STATUS_BREAKPOINT
        }
        VECTOR_OVERFLOW => STATUS_INTEGER_OVERFLOW,
        VECTOR_BOUND => STATUS_ARRAY_BOUNDS_EXCEEDED,
        VECTOR_INVALID_OPCODE => STATUS_ILLEGAL_INSTRUCTION,
        VECTOR_GENERAL_PROTECTION if f.privileged => STATUS_PRIVILEGED_INSTRUCTION,
        VECTOR_GENERAL_PROTECTION => {
            // A non-canonical address or a protection the page tables do
            // not describe: NT reports an access violation at address -1.
            r.number_parameters = 2;
            r.exception_information[0] = EXCEPTION_READ_FAULT;
            r.exception_information[1] = u64::MAX;
            STATUS_ACCESS_VIOLATION
        }
        VECTOR_PAGE_FAULT => {
            let kind = if f.error_code & 0x10 != 0 {
                EXCEPTION_EXECUTE_FAULT
            } else if f.error_code & 0x2 != 0 {
                EXCEPTION_WRITE_FAULT
            } else {
                EXCEPTION_READ_FAULT
            };
            let status = if f.page_fault_status == 0 {
                STATUS_ACCESS_VIOLATION
            } else {
                nt::NtStatus::from_u32(f.page_fault_status)
            };
            r.number_parameters = 2;
            r.exception_information[0] = kind;
            r.exception_information[1] = f.fault_address;
            if status == STATUS_IN_PAGE_ERROR {
                r.number_parameters = 3;
                r.exception_information[2] = STATUS_IN_PAGE_ERROR.as_u32() as u64;
            }
            status
        }
        VECTOR_X87 => STATUS_FLOAT_INVALID_OPERATION,
        VECTOR_ALIGNMENT_CHECK => STATUS_DATATYPE_MISALIGNMENT,
        VECTOR_SIMD => simd_status(f.mxcsr),
        _ => STATUS_ACCESS_VIOLATION,
    };
    r.exception_code = code.as_u32();
    (r, rip)
}

/// The status of an SSE exception from the unmasked flags set in MXCSR
/// (NT's `KiXmmException` order: invalid, divide, denormal, overflow,
/// underflow, precision; several at once: STATUS_FLOAT_MULTIPLE_TRAPS).
pub fn simd_status(mxcsr: u32) -> nt::NtStatus {
    let raised = mxcsr & 0x3F & !((mxcsr >> 7) & 0x3F);
    match raised {
        0x01 => STATUS_FLOAT_INVALID_OPERATION,
        0x02 => STATUS_FLOAT_DENORMAL_OPERAND,
        0x04 => STATUS_FLOAT_DIVIDE_BY_ZERO,
        0x08 => STATUS_FLOAT_OVERFLOW,
        0x10 => STATUS_FLOAT_UNDERFLOW,
        0x20 => STATUS_FLOAT_INEXACT_RESULT,
        _ => nt::NtStatus::from_u32(0xC000_02B5), // STATUS_FLOAT_MULTIPLE_TRAPS
    }
}

/// Whether the instruction `bytes` (read at the faulting RIP; prefixes
/// skipped) is one only ring 0 may execute, which turns a #GP from user
/// mode into STATUS_PRIVILEGED_INSTRUCTION (`KiPreprocessFault`'s check):
/// HLT, CLI, STI, IN/OUT/INS/OUTS, CLTS, INVD, WBINVD, WRMSR, RDMSR,
/// MOV to/from CR and DR, LGDT/LIDT/LMSW/INVLPG/SWAPGS, LLDT/LTR.
pub fn is_privileged_instruction(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() && i < 14 {
        match bytes[i] {
            // Operand/address size, segment, lock, rep, REX prefixes.
            0x66 | 0x67 | 0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0xF0 | 0xF2 | 0xF3 => i += 1,
            0x40..=0x4F => i += 1,
            _ => break,
        }
    }
    let Some(&op) = bytes.get(i) else {
        return false;
    };
    match op {
        0xF4 | 0xFA | 0xFB => true,
        0xE4..=0xE7 | 0xEC..=0xEF | 0x6C..=0x6F => true,
        0x0F => {
            let Some(&op2) = bytes.get(i + 1) else {
                return false;
            };
            let modrm = bytes.get(i + 2).copied();
            match op2 {
                0x06 | 0x08 | 0x09 | 0x30 | 0x32 | 0x20..=0x23 => true,
                // Group 7: SGDT/SIDT/SMSW (reg 0, 1, 4) are not privileged
                // without UMIP; LGDT (2), LIDT (3), LMSW (6), INVLPG (7,
                // memory) / SWAPGS (7, 0xF8) are.
                0x01 => modrm.is_some_and(|m| matches!((m >> 3) & 7, 2 | 3 | 6 | 7)),
                // Group 6: LLDT (2), LTR (3).
                0x00 => modrm.is_some_and(|m| matches!((m >> 3) & 7, 2 | 3)),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Where the exception frame goes below the interrupted `rsp`: 16-byte
/// aligned, the whole [`UserExceptionFrame`] under `rsp`. `None` when it
/// would leave the user range (then the exception cannot be dispatched).
pub fn user_exception_frame_address(rsp: u64, user_limit: u64) -> Option<u64> {
    let size = core::mem::size_of::<UserExceptionFrame>() as u64;
    let base = rsp.checked_sub(size)? & !0xF;
    (base != 0 && rsp <= user_limit).then_some(base)
}

/// Where the APC frame goes below the interrupted `rsp` (as above).
pub fn user_apc_frame_address(rsp: u64, user_limit: u64) -> Option<u64> {
    let size = core::mem::size_of::<UserApcFrame>() as u64;
    let base = rsp.checked_sub(size)? & !0xF;
    (base != 0 && rsp <= user_limit).then_some(base)
}

/// A captured `EXCEPTION_RECORD` from user mode is acceptable to raise:
/// at most `EXCEPTION_MAXIMUM_PARAMETERS` parameters (NT's
/// `KiRaiseException` check); the chain pointer is user data, kept as is.
pub fn check_raised_record(r: &ExceptionRecord) -> Result<(), nt::NtStatus> {
    if r.number_parameters as usize > nt::context::EXCEPTION_MAXIMUM_PARAMETERS {
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_fault_records_kind_and_address() {
        let f = UserFault {
            vector: VECTOR_PAGE_FAULT,
            rip: 0x1000,
            error_code: 0x6,
            fault_address: 0x7FFE_0000,
            ..Default::default()
        };
        let (r, rip) = exception_record_for(&f);
        assert_eq!(r.exception_code, STATUS_ACCESS_VIOLATION.as_u32());
        assert_eq!(r.number_parameters, 2);
        assert_eq!(r.exception_information[0], EXCEPTION_WRITE_FAULT);
        assert_eq!(r.exception_information[1], 0x7FFE_0000);
        assert_eq!((r.exception_address, rip), (0x1000, 0x1000));
        let x = UserFault {
            error_code: 0x15,
            ..f
        };
        assert_eq!(
            exception_record_for(&x).0.exception_information[0],
            EXCEPTION_EXECUTE_FAULT
        );
        let g = UserFault {
            page_fault_status: STATUS_GUARD_PAGE_VIOLATION.as_u32(),
            ..f
        };
        assert_eq!(
            exception_record_for(&g).0.exception_code,
            STATUS_GUARD_PAGE_VIOLATION.as_u32()
        );
        let io = UserFault {
            page_fault_status: STATUS_IN_PAGE_ERROR.as_u32(),
            ..f
        };
        assert_eq!(exception_record_for(&io).0.number_parameters, 3);
    }

    #[test]
    fn breakpoint_points_at_the_int3() {
        let f = UserFault {
            vector: VECTOR_BREAKPOINT,
            rip: 0x2001,
            ..Default::default()
        };
        let (r, rip) = exception_record_for(&f);
        assert_eq!(r.exception_code, STATUS_BREAKPOINT.as_u32());
        assert_eq!((r.exception_address, rip), (0x2000, 0x2000));
    }

    #[test]
    fn vectors_map_to_nt_codes() {
        let code = |vector, privileged| {
            exception_record_for(&UserFault {
                vector,
                privileged,
                ..Default::default()
            })
            .0
            .exception_code
        };
        assert_eq!(code(0, false), STATUS_INTEGER_DIVIDE_BY_ZERO.as_u32());
        assert_eq!(code(6, false), STATUS_ILLEGAL_INSTRUCTION.as_u32());
        assert_eq!(code(13, true), STATUS_PRIVILEGED_INSTRUCTION.as_u32());
        assert_eq!(code(13, false), STATUS_ACCESS_VIOLATION.as_u32());
        assert_eq!(code(17, false), STATUS_DATATYPE_MISALIGNMENT.as_u32());
        assert_eq!(code(1, false), STATUS_SINGLE_STEP.as_u32());
    }

    #[test]
    fn privileged_instructions() {
        assert!(is_privileged_instruction(&[0xF4]));
        assert!(is_privileged_instruction(&[0xFA]));
        assert!(is_privileged_instruction(&[0x0F, 0x30]));
        assert!(is_privileged_instruction(&[0x0F, 0x22, 0xD8])); // mov cr3, rax
        assert!(is_privileged_instruction(&[0x0F, 0x01, 0xF8])); // swapgs
        assert!(is_privileged_instruction(&[0x0F, 0x01, 0x10])); // lgdt [rax]
        assert!(is_privileged_instruction(&[0x66, 0xEF])); // out dx, ax
        assert!(is_privileged_instruction(&[0x48, 0x0F, 0x20, 0xC0])); // mov rax, cr0
        assert!(!is_privileged_instruction(&[0x0F, 0x01, 0x00])); // sgdt
        assert!(!is_privileged_instruction(&[0x0F, 0x0B])); // ud2
        assert!(!is_privileged_instruction(&[0x48, 0x8B, 0x00])); // mov rax, [rax]
        assert!(!is_privileged_instruction(&[]));
        assert!(!is_privileged_instruction(&[0x66; 20]));
    }

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize_eflags(0), 0x202);
        assert_eq!(sanitize_eflags(u64::MAX), EFLAGS_USER_SANITIZE | 0x202);
        // IOPL, NT, RF, VM, VIF cannot be set.
        assert_eq!(
            sanitize_eflags(0x3000 | 0x4000 | 0x1_0000 | 0x2_0000) & !0x202,
            0
        );
        assert_eq!(sanitize_mxcsr(0xFFFF_FFFF, 0xFFBF), 0xFFBF);
        assert!(is_canonical(0x7FFF_FFFF_FFFF));
        assert!(is_canonical(0xFFFF_8000_0000_0000));
        assert!(!is_canonical(0x8000_0000_0000));
    }

    #[test]
    fn frames_fit_below_the_stack_pointer() {
        let lim = 0x7FFF_FFFF_0000;
        let b = user_exception_frame_address(0x1_0008, lim).unwrap();
        assert_eq!(b % 16, 0);
        assert!(b + 0x5C0 <= 0x1_0008);
        assert_eq!(user_exception_frame_address(0x100, lim), None);
        assert_eq!(
            user_exception_frame_address(0xFFFF_8000_0000_0000, lim),
            None
        );
        let a = user_apc_frame_address(0x2_0000, lim).unwrap();
        assert_eq!(a, 0x2_0000 - 0x500);
    }

    #[test]
    fn raised_records_are_checked() {
        let mut r = ExceptionRecord {
            number_parameters: 15,
            ..Default::default()
        };
        assert!(check_raised_record(&r).is_ok());
        r.number_parameters = 16;
        assert_eq!(check_raised_record(&r), Err(STATUS_INVALID_PARAMETER));
    }
}
