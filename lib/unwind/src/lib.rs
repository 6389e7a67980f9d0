//! x64 structured exception handling as ntdll runs it (*Windows Internals*
//! 7th ed., Part 2, ch. 8 "Exception dispatching"; the formats are MS docs'
//! "x64 exception handling": `RUNTIME_FUNCTION`, `UNWIND_INFO`,
//! `UNWIND_CODE`, and the epilogue rules of "x64 prolog and epilog").
//!
//! - [`lookup_function_entry`]: `RtlLookupFunctionEntry`'s search of one
//!   image's `.pdata` table.
//! - [`virtual_unwind`]: `RtlVirtualUnwind`: every `UWOP_*` code (with
//!   `UWOP_PUSH_MACHFRAME`), chained unwind info (`UNW_FLAG_CHAININFO`),
//!   the exception/termination handler (`UNW_FLAG_EHANDLER`/`UHANDLER`),
//!   the establisher frame, and epilogue detection: when the PC is in an
//!   epilogue the remaining epilogue instructions are emulated instead of
//!   the prologue codes, as Windows does.
//! - [`dispatch_exception`] and [`unwind_frames`]: the frame walks of
//!   `RtlDispatchException` and `RtlUnwindEx` over an [`Environment`]
//!   (memory, function lookup, stack limits, calling handlers).
//! - [`c_specific_handler`]: `__C_specific_handler`'s walk of the scope
//!   table that MSVC and clang emit for `__try`/`__except`/`__finally`.
//!
//! No allocation and no panics on bad input: unwind data comes from images
//! and stacks a program controls, so every read goes through [`Memory`] and
//! bad data is an [`UnwindError`].
#![no_std]

use nt::context::{Context, ExceptionRecord, EXCEPTION_NONCONTINUABLE, M128A};

#[cfg(test)]
mod tests;

/// `UNW_FLAG_NHANDLER`.
pub const UNW_FLAG_NHANDLER: u32 = 0;
/// `UNW_FLAG_EHANDLER`: the function has an exception handler.
pub const UNW_FLAG_EHANDLER: u32 = 1;
/// `UNW_FLAG_UHANDLER`: the function has a termination (unwind) handler.
pub const UNW_FLAG_UHANDLER: u32 = 2;
/// `UNW_FLAG_CHAININFO`: the unwind info continues another function's.
pub const UNW_FLAG_CHAININFO: u32 = 4;

/// `EXCEPTION_UNWINDING`.
pub const EXCEPTION_UNWINDING: u32 = 0x2;
/// `EXCEPTION_EXIT_UNWIND`.
pub const EXCEPTION_EXIT_UNWIND: u32 = 0x4;
/// `EXCEPTION_STACK_INVALID`.
pub const EXCEPTION_STACK_INVALID: u32 = 0x8;
/// `EXCEPTION_NESTED_CALL`.
pub const EXCEPTION_NESTED_CALL: u32 = 0x10;
/// `EXCEPTION_TARGET_UNWIND`.
pub const EXCEPTION_TARGET_UNWIND: u32 = 0x20;
/// `EXCEPTION_COLLIDED_UNWIND`.
pub const EXCEPTION_COLLIDED_UNWIND: u32 = 0x40;
/// `EXCEPTION_UNWIND` (either unwinding flag).
pub const EXCEPTION_UNWIND: u32 = EXCEPTION_UNWINDING | EXCEPTION_EXIT_UNWIND;

/// `EXCEPTION_DISPOSITION` values.
pub const EXCEPTION_CONTINUE_EXECUTION_DISPOSITION: u32 = 0;
/// `ExceptionContinueSearch`.
pub const EXCEPTION_CONTINUE_SEARCH_DISPOSITION: u32 = 1;
/// `ExceptionNestedException`.
pub const EXCEPTION_NESTED_EXCEPTION_DISPOSITION: u32 = 2;
/// `ExceptionCollidedUnwind`.
pub const EXCEPTION_COLLIDED_UNWIND_DISPOSITION: u32 = 3;

/// `EXCEPTION_EXECUTE_HANDLER` as a scope record's filter address: no
/// filter function, always handle.
pub const EXCEPTION_EXECUTE_HANDLER: u32 = 1;

const STATUS_NONCONTINUABLE_EXCEPTION: u32 = 0xC000_0025;
const STATUS_INVALID_DISPOSITION: u32 = 0xC000_0026;
const STATUS_BAD_STACK: u32 = 0xC000_0028;
const STATUS_INVALID_UNWIND_TARGET: u32 = 0xC000_0029;
const STATUS_BAD_FUNCTION_TABLE: u32 = 0xC000_00FF;
const STATUS_NOT_IMPLEMENTED: u32 = 0xC000_0002;

/// Chains longer than this are taken as a loop in corrupt unwind data.
const MAX_CHAIN: usize = 32;

/// `RUNTIME_FUNCTION` (x64 `.pdata` entry): RVAs of the function's start,
/// end (exclusive) and `UNWIND_INFO`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeFunction {
    pub begin_address: u32,
    pub end_address: u32,
    pub unwind_data: u32,
}

/// `KNONVOLATILE_CONTEXT_POINTERS` (x64): where unwinding found each XMM
/// and integer register's saved value (0: not saved by the frames walked).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NonvolatileContextPointers {
    pub floating_context: [u64; 16],
    pub integer_context: [u64; 16],
}

/// `DISPATCHER_CONTEXT` (x64), the last argument of a language handler.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatcherContext {
    pub control_pc: u64,
    pub image_base: u64,
    pub function_entry: u64,
    pub establisher_frame: u64,
    pub target_ip: u64,
    pub context_record: u64,
    pub language_handler: u64,
    pub handler_data: u64,
    pub history_table: u64,
    pub scope_index: u32,
    pub fill0: u32,
}

const _: () = {
    assert!(core::mem::size_of::<RuntimeFunction>() == 12);
    assert!(core::mem::size_of::<NonvolatileContextPointers>() == 0x100);
    assert!(core::mem::size_of::<DispatcherContext>() == 0x50);
    assert!(core::mem::offset_of!(DispatcherContext, scope_index) == 0x48);
};

/// Why unwinding stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwindError {
    /// A read of unwind data, code or stack at this address failed.
    Memory(u64),
    /// The `UNWIND_INFO` at this RVA is malformed (version, code count,
    /// an unknown `UWOP_*`, a frame register that is not set, a chain loop).
    BadUnwindInfo(u32),
}

impl UnwindError {
    /// The NTSTATUS Windows reports for it.
    pub fn status(self) -> u32 {
        match self {
            UnwindError::Memory(_) => STATUS_BAD_STACK,
            UnwindError::BadUnwindInfo(_) => STATUS_BAD_FUNCTION_TABLE,
        }
    }
}

/// Reads of the process's memory: image data, code bytes, the stack.
pub trait Memory {
    /// Fills `buf` from `address`; false if any byte cannot be read.
    fn read(&self, address: u64, buf: &mut [u8]) -> bool;

    /// A little-endian u64.
    fn read_u64(&self, address: u64) -> Result<u64, UnwindError> {
        let mut b = [0; 8];
        self.read(address, &mut b)
            .then_some(u64::from_le_bytes(b))
            .ok_or(UnwindError::Memory(address))
    }

    /// A little-endian u32.
    fn read_u32(&self, address: u64) -> Result<u32, UnwindError> {
        let mut b = [0; 4];
        self.read(address, &mut b)
            .then_some(u32::from_le_bytes(b))
            .ok_or(UnwindError::Memory(address))
    }

    /// A little-endian u16.
    fn read_u16(&self, address: u64) -> Result<u16, UnwindError> {
        let mut b = [0; 2];
        self.read(address, &mut b)
            .then_some(u16::from_le_bytes(b))
            .ok_or(UnwindError::Memory(address))
    }

    /// A `RUNTIME_FUNCTION`.
    fn read_runtime_function(&self, address: u64) -> Result<RuntimeFunction, UnwindError> {
        Ok(RuntimeFunction {
            begin_address: self.read_u32(address)?,
            end_address: self.read_u32(address.wrapping_add(4))?,
            unwind_data: self.read_u32(address.wrapping_add(8))?,
        })
    }
}

/// Integer register `n` of a context in unwind-code order (RAX, RCX, RDX,
/// RBX, RSP, RBP, RSI, RDI, R8-R15).
pub fn register(ctx: &Context, n: u8) -> u64 {
    match n & 15 {
        0 => ctx.rax,
        1 => ctx.rcx,
        2 => ctx.rdx,
        3 => ctx.rbx,
        4 => ctx.rsp,
        5 => ctx.rbp,
        6 => ctx.rsi,
        7 => ctx.rdi,
        8 => ctx.r8,
        9 => ctx.r9,
        10 => ctx.r10,
        11 => ctx.r11,
        12 => ctx.r12,
        13 => ctx.r13,
        14 => ctx.r14,
        _ => ctx.r15,
    }
}

/// Sets integer register `n` (order of [`register`]).
pub fn set_register(ctx: &mut Context, n: u8, v: u64) {
    let r = match n & 15 {
        0 => &mut ctx.rax,
        1 => &mut ctx.rcx,
        2 => &mut ctx.rdx,
        3 => &mut ctx.rbx,
        4 => &mut ctx.rsp,
        5 => &mut ctx.rbp,
        6 => &mut ctx.rsi,
        7 => &mut ctx.rdi,
        8 => &mut ctx.r8,
        9 => &mut ctx.r9,
        10 => &mut ctx.r10,
        11 => &mut ctx.r11,
        12 => &mut ctx.r12,
        13 => &mut ctx.r13,
        14 => &mut ctx.r14,
        _ => &mut ctx.r15,
    };
    *r = v;
}

/// `RtlLookupFunctionEntry` within one image: the address of the
/// `RUNTIME_FUNCTION` of the table at `table` (`count` entries sorted by
/// address, as the linker writes `.pdata`) whose range holds `pc`.
pub fn lookup_function_entry<M: Memory + ?Sized>(
    mem: &M,
    image_base: u64,
    table: u64,
    count: u32,
    pc: u64,
) -> Option<u64> {
    let rva = pc.checked_sub(image_base)?;
    let rva = u32::try_from(rva).ok()?;
    let (mut lo, mut hi) = (0u32, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let at = table.wrapping_add(u64::from(mid) * 12);
        let f = mem.read_runtime_function(at).ok()?;
        if rva < f.begin_address {
            hi = mid;
        } else if rva >= f.end_address {
            lo = mid + 1;
        } else {
            return Some(at);
        }
    }
    None
}

/// The fixed part of `UNWIND_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnwindInfoHeader {
    pub version: u8,
    pub flags: u8,
    pub size_of_prolog: u8,
    pub count_of_codes: u8,
    pub frame_register: u8,
    pub frame_offset: u8,
}

/// Reads the `UNWIND_INFO` header at `image_base + rva`; versions 1 and 2.
pub fn unwind_info_header<M: Memory + ?Sized>(
    mem: &M,
    image_base: u64,
    rva: u32,
) -> Result<UnwindInfoHeader, UnwindError> {
    let v = mem.read_u32(image_base.wrapping_add(u64::from(rva)))?;
    let h = UnwindInfoHeader {
        version: v as u8 & 7,
        flags: v as u8 >> 3,
        size_of_prolog: (v >> 8) as u8,
        count_of_codes: (v >> 16) as u8,
        frame_register: (v >> 24) as u8 & 15,
        frame_offset: (v >> 28) as u8,
    };
    if h.version != 1 && h.version != 2 {
        return Err(UnwindError::BadUnwindInfo(rva));
    }
    Ok(h)
}

/// RVA of what follows the (even-padded) unwind codes: the chained
/// `RUNTIME_FUNCTION` or the handler's RVA.
fn after_codes(rva: u32, h: &UnwindInfoHeader) -> u32 {
    let slots = (u32::from(h.count_of_codes) + 1) & !1;
    rva.wrapping_add(4 + slots * 2)
}

/// Slots an unwind code uses (`UWOP_*` in `op`), or None if unknown.
fn code_slots(op: u8, info: u8, version: u8) -> Option<usize> {
    Some(match op {
        0 | 2 | 3 => 1,         // PUSH_NONVOL, ALLOC_SMALL, SET_FPREG
        1 if info == 0 => 2,    // ALLOC_LARGE, size/8 in 16 bits
        1 if info == 1 => 3,    // ALLOC_LARGE, 32-bit size
        4 | 8 => 2,             // SAVE_NONVOL, SAVE_XMM128
        5 | 9 => 3,             // the _FAR forms
        6 if version == 2 => 1, // UWOP_EPILOG (version 2)
        10 if info <= 1 => 1,   // PUSH_MACHFRAME
        _ => return None,
    })
}

/// What unwinding one frame found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unwound {
    /// The language handler (absolute), when the function has one of the
    /// asked type and the PC is past its prologue and not in an epilogue.
    pub handler: Option<u64>,
    /// The handler's data (absolute address after the handler RVA).
    pub handler_data: u64,
    /// The establisher frame: RSP after the prologue, or the frame
    /// register's base when the function set one.
    pub establisher_frame: u64,
}

/// Applies the unwind codes of one `UNWIND_INFO` to `ctx` (undoing the
/// prologue): those at or before `prolog_offset`, or all. Returns whether a
/// `UWOP_PUSH_MACHFRAME` set RIP and RSP.
fn apply_codes<M: Memory + ?Sized>(
    mem: &M,
    image_base: u64,
    rva: u32,
    h: &UnwindInfoHeader,
    prolog_offset: Option<u32>,
    ctx: &mut Context,
    mut ptrs: Option<&mut NonvolatileContextPointers>,
) -> Result<bool, UnwindError> {
    let bad = UnwindError::BadUnwindInfo(rva);
    let count = usize::from(h.count_of_codes);
    let codes = image_base.wrapping_add(u64::from(rva) + 4);
    let slot = |i: usize| mem.read_u16(codes.wrapping_add(i as u64 * 2));
    let mut machframe = false;
    let mut i = 0;
    while i < count {
        let c = slot(i)?;
        let (offset, op, info) = (c as u8, (c >> 8) as u8 & 15, (c >> 12) as u8);
        let n = code_slots(op, info, h.version).ok_or(bad)?;
        if i + n > count {
            return Err(bad);
        }
        if prolog_offset.is_some_and(|p| u32::from(offset) > p) {
            i += n;
            continue;
        }
        let rsp = ctx.rsp;
        match op {
            0 => {
                let v = mem.read_u64(rsp)?;
                set_register(ctx, info, v);
                if let Some(p) = ptrs.as_deref_mut() {
                    p.integer_context[usize::from(info)] = rsp;
                }
                ctx.rsp = rsp.wrapping_add(8);
            }
            1 | 2 => {
                let size = match (op, info) {
                    (2, _) => u64::from(info) * 8 + 8,
                    (_, 0) => u64::from(slot(i + 1)?) * 8,
                    _ => u64::from(slot(i + 1)?) | u64::from(slot(i + 2)?) << 16,
                };
                ctx.rsp = rsp.wrapping_add(size);
            }
            3 => {
                if h.frame_register == 0 {
                    return Err(bad);
                }
                ctx.rsp =
                    register(ctx, h.frame_register).wrapping_sub(u64::from(h.frame_offset) * 16);
            }
            4 | 5 => {
                let off = if op == 4 {
                    u64::from(slot(i + 1)?) * 8
                } else {
                    u64::from(slot(i + 1)?) | u64::from(slot(i + 2)?) << 16
                };
                let at = rsp.wrapping_add(off);
                let v = mem.read_u64(at)?;
                set_register(ctx, info, v);
                if let Some(p) = ptrs.as_deref_mut() {
                    p.integer_context[usize::from(info)] = at;
                }
            }
            8 | 9 => {
                let off = if op == 8 {
                    u64::from(slot(i + 1)?) * 16
                } else {
                    u64::from(slot(i + 1)?) | u64::from(slot(i + 2)?) << 16
                };
                let at = rsp.wrapping_add(off);
                let low = mem.read_u64(at)?;
                let high = mem.read_u64(at.wrapping_add(8))? as i64;
                ctx.flt_save.xmm_registers[usize::from(info)] = M128A { low, high };
                if let Some(p) = ptrs.as_deref_mut() {
                    p.floating_context[usize::from(info)] = at;
                }
            }
            6 => {} // UWOP_EPILOG describes epilogues, nothing to undo
            _ => {
                // UWOP_PUSH_MACHFRAME: RIP, CS, EFLAGS, RSP, SS (after an
                // error code when info is 1).
                let base = if info == 1 { rsp.wrapping_add(8) } else { rsp };
                ctx.rip = mem.read_u64(base)?;
                ctx.rsp = mem.read_u64(base.wrapping_add(24))?;
                machframe = true;
            }
        }
        i += n;
    }
    Ok(machframe)
}

/// One step of an epilogue, found by [`epilogue`].
#[derive(Clone, Copy)]
enum EpilogueStep {
    AddRsp(u64),
    LeaRsp { reg: u8, disp: i64 },
    Pop(u8),
}

/// The steps of an epilogue before its return, and how many there are.
type EpilogueSteps = ([Option<EpilogueStep>; 17], usize);

/// Whether the code at `pc` is an epilogue, the way Windows recognizes one
/// (MS docs, "x64 prolog and epilog"): an optional `add rsp, imm` or
/// `lea rsp, [frame register + disp]`, then `pop`s of 64-bit registers,
/// then `ret` (or `rep ret`) or a `jmp` out of the function (`jmp rel` to a
/// target outside it, or `jmp qword ptr [...]` with ModRM mod 00). Returns
/// the steps before the final return, or None.
fn epilogue<M: Memory + ?Sized>(
    mem: &M,
    pc: u64,
    func_begin: u64,
    func_end: u64,
    h: &UnwindInfoHeader,
) -> Result<Option<EpilogueSteps>, UnwindError> {
    let mut b = [0u8; 64];
    // Code near the end of a mapping: read what there is, byte by byte.
    let mut len = 0;
    while len < b.len() && mem.read(pc.wrapping_add(len as u64), &mut b[len..len + 1]) {
        len += 1;
    }
    let code = &b[..len];
    let at = |i: usize| code.get(i).copied();
    let mut steps = [None; 17];
    let mut n = 0;
    let mut i = 0;
    // add rsp, imm8 / imm32
    match (at(0), at(1), at(2)) {
        (Some(0x48), Some(0x83), Some(0xC4)) => {
            let Some(imm) = at(3) else { return Ok(None) };
            steps[n] = Some(EpilogueStep::AddRsp(imm as i8 as i64 as u64));
            n += 1;
            i = 4;
        }
        (Some(0x48), Some(0x81), Some(0xC4)) => {
            let Some(imm) = code.get(3..7) else {
                return Ok(None);
            };
            let v = i32::from_le_bytes([imm[0], imm[1], imm[2], imm[3]]);
            steps[n] = Some(EpilogueStep::AddRsp(v as i64 as u64));
            n += 1;
            i = 7;
        }
        (Some(rex @ (0x48 | 0x49)), Some(0x8D), Some(modrm)) => {
            let (md, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, (modrm & 7) | (rex & 1) << 3);
            if reg != 4 || h.frame_register == 0 || rm != h.frame_register || rm & 7 == 4 {
                return Ok(None);
            }
            let (disp, l) = match md {
                0 if rm & 7 != 5 => (0, 3),
                1 => match at(3) {
                    Some(d) => (d as i8 as i64, 4),
                    None => return Ok(None),
                },
                2 => match code.get(3..7) {
                    Some(d) => (i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64, 7),
                    None => return Ok(None),
                },
                _ => return Ok(None),
            };
            steps[n] = Some(EpilogueStep::LeaRsp { reg: rm, disp });
            n += 1;
            i = l;
        }
        _ => {}
    }
    // pop reg / pop r8-r15
    loop {
        match (at(i), at(i + 1)) {
            (Some(op @ 0x58..=0x5F), _) if n < 17 => {
                steps[n] = Some(EpilogueStep::Pop(op - 0x58));
                n += 1;
                i += 1;
            }
            (Some(0x41), Some(op @ 0x58..=0x5F)) if n < 17 => {
                steps[n] = Some(EpilogueStep::Pop(op - 0x58 + 8));
                n += 1;
                i += 2;
            }
            _ => break,
        }
    }
    let outside = |target: u64| target < func_begin || target >= func_end;
    let next = pc.wrapping_add(i as u64);
    let ends = match (at(i), at(i + 1), at(i + 2)) {
        (Some(0xC3), _, _) | (Some(0xF3), Some(0xC3), _) => true,
        (Some(0xE9), _, _) => match code.get(i + 1..i + 5) {
            Some(d) => {
                let rel = i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64;
                outside(next.wrapping_add(5).wrapping_add(rel as u64))
            }
            None => false,
        },
        (Some(0xEB), Some(d), _) => outside(next.wrapping_add(2).wrapping_add(d as i8 as u64)),
        (Some(0xFF), Some(modrm), _) => modrm & 0x38 == 0x20 && modrm >> 6 == 0,
        (Some(0x40..=0x4F), Some(0xFF), Some(modrm)) => modrm & 0x38 == 0x20 && modrm >> 6 == 0,
        _ => false,
    };
    Ok(ends.then_some((steps, n)))
}

/// `RtlVirtualUnwind(HandlerType, ImageBase, ControlPc, FunctionEntry,
/// ContextRecord, &HandlerData, &EstablisherFrame, ContextPointers)`:
/// turns `ctx` (the state at `control_pc` in the function `entry`
/// describes) into its caller's state. `handler_type` is
/// `UNW_FLAG_EHANDLER` or `UNW_FLAG_UHANDLER` (or NHANDLER).
#[allow(clippy::too_many_arguments)]
pub fn virtual_unwind<M: Memory + ?Sized>(
    mem: &M,
    handler_type: u32,
    image_base: u64,
    control_pc: u64,
    entry: &RuntimeFunction,
    ctx: &mut Context,
    mut ptrs: Option<&mut NonvolatileContextPointers>,
) -> Result<Unwound, UnwindError> {
    let rva = entry.unwind_data;
    let h = unwind_info_header(mem, image_base, rva)?;
    let begin = image_base.wrapping_add(u64::from(entry.begin_address));
    let end = image_base.wrapping_add(u64::from(entry.end_address));
    let prolog_offset = u32::try_from(control_pc.wrapping_sub(begin)).unwrap_or(u32::MAX);
    let in_prolog = prolog_offset < u32::from(h.size_of_prolog);
    let chained = u32::from(h.flags) & UNW_FLAG_CHAININFO != 0;

    // The establisher frame.
    let establisher_frame = if h.frame_register == 0 {
        ctx.rsp
    } else {
        let fp = register(ctx, h.frame_register).wrapping_sub(u64::from(h.frame_offset) * 16);
        if !in_prolog || chained {
            fp
        } else {
            // In the prologue: the frame register counts once set.
            let codes = image_base.wrapping_add(u64::from(rva) + 4);
            let mut set = false;
            let mut i = 0;
            while i < usize::from(h.count_of_codes) {
                let c = mem.read_u16(codes.wrapping_add(i as u64 * 2))?;
                let (off, op, info) = (c as u8, (c >> 8) as u8 & 15, (c >> 12) as u8);
                if op == 3 {
                    set = u32::from(off) <= prolog_offset;
                    break;
                }
                i += code_slots(op, info, h.version).ok_or(UnwindError::BadUnwindInfo(rva))?;
            }
            if set {
                fp
            } else {
                ctx.rsp
            }
        }
    };

    // In an epilogue: emulate the rest of it.
    if !in_prolog {
        if let Some((steps, n)) = epilogue(mem, control_pc, begin, end, &h)? {
            let mut c = *ctx;
            let mut p = ptrs.as_deref().copied().unwrap_or_default();
            for s in steps.iter().take(n).flatten() {
                match *s {
                    EpilogueStep::AddRsp(v) => c.rsp = c.rsp.wrapping_add(v),
                    EpilogueStep::LeaRsp { reg, disp } => {
                        c.rsp = register(&c, reg).wrapping_add(disp as u64)
                    }
                    EpilogueStep::Pop(r) => {
                        let v = mem.read_u64(c.rsp)?;
                        p.integer_context[usize::from(r)] = c.rsp;
                        set_register(&mut c, r, v);
                        c.rsp = c.rsp.wrapping_add(8);
                    }
                }
            }
            c.rip = mem.read_u64(c.rsp)?;
            c.rsp = c.rsp.wrapping_add(8);
            *ctx = c;
            if let Some(q) = ptrs {
                *q = p;
            }
            return Ok(Unwound {
                handler: None,
                handler_data: 0,
                establisher_frame,
            });
        }
    }

    // The prologue's codes, then those of the chain.
    let mut machframe = apply_codes(
        mem,
        image_base,
        rva,
        &h,
        Some(prolog_offset),
        ctx,
        ptrs.as_deref_mut(),
    )?;
    let (mut last_rva, mut last) = (rva, h);
    let mut depth = 0;
    while u32::from(last.flags) & UNW_FLAG_CHAININFO != 0 {
        depth += 1;
        if depth > MAX_CHAIN {
            return Err(UnwindError::BadUnwindInfo(rva));
        }
        let at = image_base.wrapping_add(u64::from(after_codes(last_rva, &last)));
        let f = mem.read_runtime_function(at)?;
        last_rva = f.unwind_data;
        last = unwind_info_header(mem, image_base, last_rva)?;
        machframe |= apply_codes(
            mem,
            image_base,
            last_rva,
            &last,
            None,
            ctx,
            ptrs.as_deref_mut(),
        )?;
    }
    if !machframe {
        ctx.rip = mem.read_u64(ctx.rsp)?;
        ctx.rsp = ctx.rsp.wrapping_add(8);
    }

    let mut out = Unwound {
        handler: None,
        handler_data: 0,
        establisher_frame,
    };
    let handler_flags = u32::from(last.flags) & (UNW_FLAG_EHANDLER | UNW_FLAG_UHANDLER);
    if !in_prolog && handler_flags & handler_type != 0 {
        let at = image_base.wrapping_add(u64::from(after_codes(last_rva, &last)));
        let handler = mem.read_u32(at)?;
        out.handler = Some(image_base.wrapping_add(u64::from(handler)));
        out.handler_data = at.wrapping_add(4);
    }
    Ok(out)
}

/// What ntdll provides for the frame walks: memory, the function lookup
/// over the loaded images, the thread's stack and calls of language
/// handlers (through `RtlpExecuteHandlerForException`/`ForUnwind`).
pub trait Environment: Memory {
    /// `RtlLookupFunctionEntry`: the image base and the address of the
    /// `RUNTIME_FUNCTION` for `pc`, or None (a leaf function or no image).
    fn lookup(&self, pc: u64) -> Option<(u64, u64)>;
    /// The thread's stack: (limit, base), from the TEB.
    fn stack_limits(&self) -> (u64, u64);
    /// Calls `handler(record, establisher_frame, context, dispatcher)`.
    fn call_handler(
        &mut self,
        handler: u64,
        record: &mut ExceptionRecord,
        establisher_frame: u64,
        context: &mut Context,
        dispatcher: &mut DispatcherContext,
    ) -> u32;
}

/// One frame of a walk: unwinds `ctx` out of the function at `ctx.rip`.
/// Returns (image base, function entry address, what unwinding found).
fn step<E: Environment + ?Sized>(
    env: &E,
    handler_type: u32,
    ctx: &mut Context,
) -> Result<(u64, u64, Unwound), UnwindError> {
    let pc = ctx.rip;
    match env.lookup(pc) {
        Some((base, entry_at)) => {
            let entry = env.read_runtime_function(entry_at)?;
            let u = virtual_unwind(env, handler_type, base, pc, &entry, ctx, None)?;
            Ok((base, entry_at, u))
        }
        None => {
            // A leaf function: no prologue, the return address at RSP.
            let frame = ctx.rsp;
            ctx.rip = env.read_u64(ctx.rsp)?;
            ctx.rsp = ctx.rsp.wrapping_add(8);
            Ok((
                0,
                0,
                Unwound {
                    handler: None,
                    handler_data: 0,
                    establisher_frame: frame,
                },
            ))
        }
    }
}

/// What [`dispatch_exception`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// A handler returned `ExceptionContinueExecution`: resume with the
    /// (possibly changed) context.
    Continue,
    /// No frame handled it (or the stack ended or was invalid; then the
    /// record has `EXCEPTION_STACK_INVALID`).
    NotHandled,
    /// The walk must raise this status (a noncontinuable exception was
    /// continued, or a handler returned a bad disposition).
    Raise(u32),
}

/// The frame walk of `RtlDispatchException` (after the vectored handlers):
/// unwinds a copy of `context` frame by frame and calls every exception
/// handler (`UNW_FLAG_EHANDLER`) with the original record and context and a
/// `DISPATCHER_CONTEXT` for its frame, until one continues execution or
/// the stack ends. A handler that handles the exception by unwinding
/// (`RtlUnwindEx`) does not return here.
pub fn dispatch_exception<E: Environment + ?Sized>(
    env: &mut E,
    record: &mut ExceptionRecord,
    context: &mut Context,
) -> Dispatch {
    let (low, high) = env.stack_limits();
    let mut ctx = *context;
    loop {
        if ctx.rip == 0 || ctx.rsp < low || ctx.rsp >= high {
            return Dispatch::NotHandled;
        }
        let pc = ctx.rip;
        let (image_base, entry, u) = match step(env, UNW_FLAG_EHANDLER, &mut ctx) {
            Ok(x) => x,
            Err(_) => {
                record.exception_flags |= EXCEPTION_STACK_INVALID;
                return Dispatch::NotHandled;
            }
        };
        let frame = u.establisher_frame;
        // Each frame is above the last: a walk that does not move up the
        // stack would never end.
        if frame & 7 != 0 || frame < low || frame >= high || ctx.rsp <= frame {
            record.exception_flags |= EXCEPTION_STACK_INVALID;
            return Dispatch::NotHandled;
        }
        if let Some(handler) = u.handler {
            let mut dc = DispatcherContext {
                control_pc: pc,
                image_base,
                function_entry: entry,
                establisher_frame: frame,
                target_ip: 0,
                context_record: &mut ctx as *mut Context as u64,
                language_handler: handler,
                handler_data: u.handler_data,
                history_table: 0,
                scope_index: 0,
                fill0: 0,
            };
            let d = env.call_handler(handler, record, frame, context, &mut dc);
            match d {
                EXCEPTION_CONTINUE_EXECUTION_DISPOSITION => {
                    if record.exception_flags & EXCEPTION_NONCONTINUABLE != 0 {
                        return Dispatch::Raise(STATUS_NONCONTINUABLE_EXCEPTION);
                    }
                    return Dispatch::Continue;
                }
                EXCEPTION_CONTINUE_SEARCH_DISPOSITION => {}
                _ => return Dispatch::Raise(STATUS_INVALID_DISPOSITION),
            }
        }
    }
}

/// The frame walk of `RtlUnwindEx(TargetFrame, TargetIp, ExceptionRecord,
/// ReturnValue, ..)` from `ctx` (RtlUnwindEx's own captured state): calls
/// every termination handler (`UNW_FLAG_UHANDLER`) of the frames up to and
/// including the one whose establisher frame is `target_frame` (that one
/// with `EXCEPTION_TARGET_UNWIND`), then leaves in `ctx` the target
/// frame's state with RIP = `target_ip` and RAX = `return_value`, for the
/// caller to continue with. `target_frame` 0 is an exit unwind: every frame
/// to the end of the stack, and `ctx` is then of no use.
pub fn unwind_frames<E: Environment + ?Sized>(
    env: &mut E,
    target_frame: u64,
    target_ip: u64,
    record: &mut ExceptionRecord,
    return_value: u64,
    ctx: &mut Context,
) -> Result<(), u32> {
    let (low, high) = env.stack_limits();
    record.exception_flags |= EXCEPTION_UNWINDING;
    if target_frame == 0 {
        record.exception_flags |= EXCEPTION_EXIT_UNWIND;
    }
    loop {
        if ctx.rip == 0 || ctx.rsp < low || ctx.rsp >= high {
            return if target_frame == 0 {
                Ok(())
            } else {
                Err(STATUS_INVALID_UNWIND_TARGET)
            };
        }
        let pc = ctx.rip;
        let mut next = *ctx;
        let (image_base, entry, u) =
            step(env, UNW_FLAG_UHANDLER, &mut next).map_err(|e| e.status())?;
        let frame = u.establisher_frame;
        if frame & 7 != 0 || frame < low || frame >= high || next.rsp <= ctx.rsp {
            return Err(STATUS_BAD_STACK);
        }
        if target_frame != 0 && frame > target_frame {
            return Err(STATUS_INVALID_UNWIND_TARGET);
        }
        if let Some(handler) = u.handler {
            if frame == target_frame {
                record.exception_flags |= EXCEPTION_TARGET_UNWIND;
            }
            let mut dc = DispatcherContext {
                control_pc: pc,
                image_base,
                function_entry: entry,
                establisher_frame: frame,
                target_ip,
                context_record: ctx as *mut Context as u64,
                language_handler: handler,
                handler_data: u.handler_data,
                history_table: 0,
                scope_index: 0,
                fill0: 0,
            };
            let d = env.call_handler(handler, record, frame, ctx, &mut dc);
            record.exception_flags &= !(EXCEPTION_TARGET_UNWIND | EXCEPTION_COLLIDED_UNWIND);
            match d {
                EXCEPTION_CONTINUE_SEARCH_DISPOSITION => {}
                // A collided unwind (an unwind started inside a
                // termination handler of this one) is not supported.
                EXCEPTION_COLLIDED_UNWIND_DISPOSITION => return Err(STATUS_NOT_IMPLEMENTED),
                _ => return Err(STATUS_INVALID_DISPOSITION),
            }
        }
        if target_frame != 0 && frame == target_frame {
            ctx.rax = return_value;
            ctx.rip = target_ip;
            return Ok(());
        }
        *ctx = next;
    }
}

/// One entry of a C scope table (`SCOPE_TABLE_AMD64`): RVAs of the guarded
/// range, the filter (or `EXCEPTION_EXECUTE_HANDLER`) or the termination
/// handler, and the `__except` block (0 for `__finally`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeRecord {
    pub begin_address: u32,
    pub end_address: u32,
    pub handler_address: u32,
    pub jump_target: u32,
}

/// The calls `__C_specific_handler` makes, provided by ntdll.
pub trait ScopeCalls {
    /// Calls the filter `filter(&EXCEPTION_POINTERS, EstablisherFrame)`.
    fn filter(
        &mut self,
        filter: u64,
        record: &mut ExceptionRecord,
        context: &mut Context,
        establisher_frame: u64,
    ) -> i32;
    /// Calls the termination handler `handler(TRUE, EstablisherFrame)`
    /// (abnormal termination: reached by unwinding).
    fn termination(&mut self, handler: u64, establisher_frame: u64);
    /// `RtlUnwindEx(EstablisherFrame, TargetIp, Record, ExceptionCode,
    /// DispatcherContext.ContextRecord, HistoryTable)`; in ntdll it does
    /// not return.
    fn unwind(
        &mut self,
        establisher_frame: u64,
        target_ip: u64,
        record: &mut ExceptionRecord,
        dispatcher: &mut DispatcherContext,
    );
}

/// `__C_specific_handler(ExceptionRecord, EstablisherFrame, ContextRecord,
/// DispatcherContext)`: the scope table is at `HandlerData` (a count, then
/// [`ScopeRecord`]s, innermost first).
///
/// Dispatch: for each scope from `ScopeIndex` holding the PC with a
/// `__except` block, the filter decides: negative continues execution,
/// positive unwinds to the block (with the exception code in RAX), zero
/// searches on. Unwind: each scope holding the PC runs its `__finally`
/// (after `ScopeIndex` is moved past it, so a collided unwind resumes
/// after it), stopping at the target scope of a target unwind.
pub fn c_specific_handler<M: Memory + ?Sized, S: ScopeCalls + ?Sized>(
    mem: &M,
    calls: &mut S,
    record: &mut ExceptionRecord,
    establisher_frame: u64,
    context: &mut Context,
    dc: &mut DispatcherContext,
) -> u32 {
    let table = dc.handler_data;
    let Ok(count) = mem.read_u32(table) else {
        return EXCEPTION_CONTINUE_SEARCH_DISPOSITION;
    };
    let scope = |i: u32| -> Option<ScopeRecord> {
        let at = table.wrapping_add(4 + u64::from(i) * 16);
        Some(ScopeRecord {
            begin_address: mem.read_u32(at).ok()?,
            end_address: mem.read_u32(at.wrapping_add(4)).ok()?,
            handler_address: mem.read_u32(at.wrapping_add(8)).ok()?,
            jump_target: mem.read_u32(at.wrapping_add(12)).ok()?,
        })
    };
    let pc = dc.control_pc.wrapping_sub(dc.image_base);
    let holds = |s: &ScopeRecord, rva: u64| {
        rva >= u64::from(s.begin_address) && rva < u64::from(s.end_address)
    };
    if record.exception_flags & EXCEPTION_UNWIND == 0 {
        for i in dc.scope_index..count {
            let Some(s) = scope(i) else { break };
            if !holds(&s, pc) || s.jump_target == 0 {
                continue;
            }
            let verdict = if s.handler_address == EXCEPTION_EXECUTE_HANDLER {
                1
            } else {
                let f = dc.image_base.wrapping_add(u64::from(s.handler_address));
                calls.filter(f, record, context, establisher_frame)
            };
            if verdict < 0 {
                return EXCEPTION_CONTINUE_EXECUTION_DISPOSITION;
            }
            if verdict > 0 {
                let target = dc.image_base.wrapping_add(u64::from(s.jump_target));
                calls.unwind(establisher_frame, target, record, dc);
                // RtlUnwindEx came back: it failed.
                return EXCEPTION_CONTINUE_SEARCH_DISPOSITION;
            }
        }
    } else {
        let target = dc.target_ip.wrapping_sub(dc.image_base);
        let target_unwind = record.exception_flags & EXCEPTION_TARGET_UNWIND != 0;
        for i in dc.scope_index..count {
            let Some(s) = scope(i) else { break };
            if !holds(&s, pc) {
                continue;
            }
            if target_unwind
                && (u64::from(s.jump_target) == target || (s.jump_target == 0 && holds(&s, target)))
            {
                break;
            }
            if s.jump_target == 0 {
                dc.scope_index = i + 1;
                let h = dc.image_base.wrapping_add(u64::from(s.handler_address));
                calls.termination(h, establisher_frame);
            }
        }
    }
    EXCEPTION_CONTINUE_SEARCH_DISPOSITION
}
