//! Exception and thread-context structures as x64 user mode and debuggers
//! see them (*Windows Internals*, Part 2, ch. 8, "Exception dispatching"):
//! `CONTEXT` (0x4D0 bytes), `EXCEPTION_RECORD` (0x98), `CONTEXT_EX`,
//! `MACHINE_FRAME`, and the frames the kernel writes on the user stack
//! before it enters `KiUserExceptionDispatcher` and `KiUserApcDispatcher`.
//! Offsets are Windows 10 x64's (winnt.h), checked by the asserts below.

/// `CONTEXT_AMD64`.
pub const CONTEXT_AMD64: u32 = 0x0010_0000;
/// `CONTEXT_CONTROL`: Rip, Rsp, SegCs, SegSs, EFlags (and Rbp in NT's use).
pub const CONTEXT_CONTROL: u32 = CONTEXT_AMD64 | 0x1;
/// `CONTEXT_INTEGER`: Rax .. R15 except Rsp.
pub const CONTEXT_INTEGER: u32 = CONTEXT_AMD64 | 0x2;
/// `CONTEXT_SEGMENTS`: SegDs, SegEs, SegFs, SegGs.
pub const CONTEXT_SEGMENTS: u32 = CONTEXT_AMD64 | 0x4;
/// `CONTEXT_FLOATING_POINT`: MxCsr and the XMM registers (FltSave).
pub const CONTEXT_FLOATING_POINT: u32 = CONTEXT_AMD64 | 0x8;
/// `CONTEXT_DEBUG_REGISTERS`.
pub const CONTEXT_DEBUG_REGISTERS: u32 = CONTEXT_AMD64 | 0x10;
/// `CONTEXT_FULL`.
pub const CONTEXT_FULL: u32 = CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_FLOATING_POINT;
/// `CONTEXT_ALL`.
pub const CONTEXT_ALL: u32 = CONTEXT_FULL | CONTEXT_SEGMENTS | CONTEXT_DEBUG_REGISTERS;

/// `M128A`.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct M128A {
    pub low: u64,
    pub high: i64,
}

/// `XSAVE_FORMAT` (`XMM_SAVE_AREA32`, the FXSAVE image): 512 bytes.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct XsaveFormat {
    pub control_word: u16,
    pub status_word: u16,
    pub tag_word: u8,
    pub reserved1: u8,
    pub error_opcode: u16,
    pub error_offset: u32,
    pub error_selector: u16,
    pub reserved2: u16,
    pub data_offset: u32,
    pub data_selector: u16,
    pub reserved3: u16,
    pub mx_csr: u32,
    pub mx_csr_mask: u32,
    pub float_registers: [M128A; 8],
    pub xmm_registers: [M128A; 16],
    pub reserved4: [u8; 96],
}

/// `CONTEXT` (x64).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub p1_home: u64,
    pub p2_home: u64,
    pub p3_home: u64,
    pub p4_home: u64,
    pub p5_home: u64,
    pub p6_home: u64,
    pub context_flags: u32,
    pub mx_csr: u32,
    pub seg_cs: u16,
    pub seg_ds: u16,
    pub seg_es: u16,
    pub seg_fs: u16,
    pub seg_gs: u16,
    pub seg_ss: u16,
    pub eflags: u32,
    pub dr0: u64,
    pub dr1: u64,
    pub dr2: u64,
    pub dr3: u64,
    pub dr6: u64,
    pub dr7: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    /// `FltSave` (union with `Header`/`Legacy`/`Xmm0`..`Xmm15`).
    pub flt_save: XsaveFormat,
    pub vector_register: [M128A; 26],
    pub vector_control: u64,
    pub debug_control: u64,
    pub last_branch_to_rip: u64,
    pub last_branch_from_rip: u64,
    pub last_exception_to_rip: u64,
    pub last_exception_from_rip: u64,
}

impl Default for Context {
    fn default() -> Self {
        // SAFETY: every field is an integer or an array of integers, for
        // which all-zero bytes are a valid value.
        unsafe { core::mem::zeroed() }
    }
}

/// Most `ExceptionInformation` entries (`EXCEPTION_MAXIMUM_PARAMETERS`).
pub const EXCEPTION_MAXIMUM_PARAMETERS: usize = 15;
/// `EXCEPTION_NONCONTINUABLE`.
pub const EXCEPTION_NONCONTINUABLE: u32 = 0x1;

/// `EXCEPTION_RECORD` (x64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExceptionRecord {
    pub exception_code: u32,
    pub exception_flags: u32,
    pub exception_record: u64,
    pub exception_address: u64,
    pub number_parameters: u32,
    pub unused_alignment: u32,
    pub exception_information: [u64; EXCEPTION_MAXIMUM_PARAMETERS],
}

/// `CONTEXT_CHUNK`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContextChunk {
    pub offset: i32,
    pub length: u32,
}

/// `CONTEXT_EX`: where the parts of a context lie relative to itself (it
/// follows the `CONTEXT`; `XState` empty when no extended state follows).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContextEx {
    pub all: ContextChunk,
    pub legacy: ContextChunk,
    pub xstate: ContextChunk,
}

/// `MACHINE_FRAME`: what the processor pushes on an interrupt; user-mode
/// unwinding through the dispatchers reads the interrupted Rip and Rsp here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineFrame {
    pub rip: u64,
    pub seg_cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub seg_ss: u64,
}

/// The frame `KiUserExceptionDispatcher` is entered with (RSP points at
/// it): CONTEXT at 0, CONTEXT_EX at 0x4D0, EXCEPTION_RECORD at 0x4F0
/// (ntdll's dispatcher passes `rsp + 0x4F0` and `rsp` to
/// `RtlDispatchException`), the machine frame at 0x590.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct UserExceptionFrame {
    pub context: Context,
    pub context_ex: ContextEx,
    pub align1: u64,
    pub exception_record: ExceptionRecord,
    pub align2: u64,
    pub machine_frame: MachineFrame,
}

/// The frame `KiUserApcDispatcher` is entered with (RSP points at it):
/// the CONTEXT to resume with `NtContinue`, whose home slots carry the
/// APC (P1Home NormalContext, P2Home SystemArgument1, P3Home
/// SystemArgument2, P4Home NormalRoutine), then the machine frame.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct UserApcFrame {
    pub context: Context,
    pub machine_frame: MachineFrame,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<XsaveFormat>() == 0x200);
    assert!(size_of::<Context>() == 0x4D0);
    assert!(offset_of!(Context, context_flags) == 0x30);
    assert!(offset_of!(Context, mx_csr) == 0x34);
    assert!(offset_of!(Context, seg_cs) == 0x38);
    assert!(offset_of!(Context, seg_ss) == 0x42);
    assert!(offset_of!(Context, eflags) == 0x44);
    assert!(offset_of!(Context, dr0) == 0x48);
    assert!(offset_of!(Context, rax) == 0x78);
    assert!(offset_of!(Context, rsp) == 0x98);
    assert!(offset_of!(Context, r12) == 0xD8);
    assert!(offset_of!(Context, rip) == 0xF8);
    assert!(offset_of!(Context, flt_save) == 0x100);
    assert!(offset_of!(Context, flt_save) + offset_of!(XsaveFormat, xmm_registers) == 0x1A0);
    assert!(offset_of!(Context, vector_register) == 0x300);
    assert!(offset_of!(Context, vector_control) == 0x4A0);
    assert!(offset_of!(Context, last_exception_from_rip) == 0x4C8);
    assert!(size_of::<ExceptionRecord>() == 0x98);
    assert!(offset_of!(ExceptionRecord, exception_address) == 0x10);
    assert!(offset_of!(ExceptionRecord, number_parameters) == 0x18);
    assert!(offset_of!(ExceptionRecord, exception_information) == 0x20);
    assert!(size_of::<ContextEx>() == 0x18);
    assert!(size_of::<MachineFrame>() == 0x28);
    assert!(offset_of!(UserExceptionFrame, context_ex) == 0x4D0);
    assert!(offset_of!(UserExceptionFrame, exception_record) == 0x4F0);
    assert!(offset_of!(UserExceptionFrame, machine_frame) == 0x590);
    assert!(size_of::<UserExceptionFrame>() == 0x5C0);
    assert!(offset_of!(UserApcFrame, machine_frame) == 0x4D0);
    assert!(size_of::<UserApcFrame>() == 0x500);
};

/// Offset of the EXCEPTION_RECORD from the dispatcher's RSP.
pub const USER_EXCEPTION_RECORD_OFFSET: u64 = 0x4F0;
