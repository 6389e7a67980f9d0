//! Tests over `tests/data/seh.dll`: functions assembled by MinGW-w64's GNU
//! as from `tests/data/seh.s` (its `.seh_*` directives wrote `.pdata` and
//! `.xdata`; a chained pair was written by hand). Each check builds the
//! stack a function's prologue leaves at some instruction (a forward model
//! of the instructions in seh.s), unwinds from that PC, and compares the
//! caller's registers with the ones the model started from.
extern crate std;

use super::*;
use std::vec;
use std::vec::Vec;

const DLL: &[u8] = include_bytes!("../tests/data/seh.dll");
const BASE: u64 = 0x1_8000_0000;
const STACK_LOW: u64 = 0x7000_0000;
const STACK_SIZE: u64 = 0x20_0000;
const STACK_TOP: u64 = STACK_LOW + STACK_SIZE;
const RET: u64 = 0x1_4000_1234;

struct Mem {
    regions: Vec<(u64, Vec<u8>)>,
}

impl Mem {
    fn new() -> Mem {
        let pe = pe::PeFile::parse(DLL).unwrap();
        let mut image = vec![0u8; pe.size_of_image as usize];
        pe.load(&mut image, BASE).unwrap();
        Mem {
            regions: vec![(BASE, image), (STACK_LOW, vec![0xCC; STACK_SIZE as usize])],
        }
    }

    fn write(&mut self, a: u64, bytes: &[u8]) {
        for (base, data) in &mut self.regions {
            if a >= *base && a + bytes.len() as u64 <= *base + data.len() as u64 {
                let o = (a - *base) as usize;
                data[o..o + bytes.len()].copy_from_slice(bytes);
                return;
            }
        }
        panic!("write outside the fake memory at {a:#x}");
    }

    fn write_u64(&mut self, a: u64, v: u64) {
        self.write(a, &v.to_le_bytes());
    }
}

impl Memory for Mem {
    fn read(&self, a: u64, buf: &mut [u8]) -> bool {
        for (base, data) in &self.regions {
            if a >= *base && a.wrapping_add(buf.len() as u64) <= *base + data.len() as u64 {
                let o = (a - *base) as usize;
                buf.copy_from_slice(&data[o..o + buf.len()]);
                return true;
            }
        }
        false
    }
}

/// The image's `.pdata` (address, count).
fn pdata() -> (u64, u32) {
    let img = pe::image::Image::parse(DLL).unwrap();
    let n = img.runtime_functions().unwrap().len() as u32;
    let d = pe::mapped_directory(
        &{
            let pe = pe::PeFile::parse(DLL).unwrap();
            let mut v = vec![0u8; pe.size_of_image as usize];
            pe.load(&mut v, BASE).unwrap();
            v
        },
        3, // IMAGE_DIRECTORY_ENTRY_EXCEPTION
    )
    .unwrap();
    (BASE + d.virtual_address as u64, n)
}

fn entry_for(mem: &Mem, pc: u64) -> RuntimeFunction {
    let (table, n) = pdata();
    let at = lookup_function_entry(mem, BASE, table, n, pc).expect("a function entry");
    mem.read_runtime_function(at).unwrap()
}

/// A distinct value for integer register `r` before the call.
fn orig(r: u8) -> u64 {
    0x0100_0000_0000_0000 * (u64::from(r) + 1) + 0x1111 * u64::from(r)
}

fn xmm_orig(r: u8) -> M128A {
    M128A {
        low: 0xAAAA_0000 + u64::from(r),
        high: 0x5555_0000 + i64::from(r),
    }
}

const GARBAGE: u64 = 0xDEAD_BEEF_DEAD_BEEF;

/// One prologue instruction of seh.s, and the PC offset after it.
#[derive(Clone, Copy)]
enum Step {
    Push(u8),
    Alloc(u64),
    SetFp(u8, u64),
    SaveReg(u8, u64),
    SaveXmm(u8, u64),
}

/// Runs the first `k` steps forward from the call's state: returns the
/// context at that point (saved registers clobbered, as a body would).
fn run_prologue(mem: &mut Mem, steps: &[Step], k: usize, clobber_movs: bool) -> (Context, u64) {
    let mut c = Context::default();
    for r in 0..16 {
        set_register(&mut c, r, orig(r));
    }
    for x in 0..16 {
        c.flt_save.xmm_registers[x as usize] = xmm_orig(x);
    }
    let s0 = STACK_TOP - 0x1000;
    c.rsp = s0;
    mem.write_u64(s0, RET);
    for s in &steps[..k] {
        match *s {
            Step::Push(r) => {
                c.rsp -= 8;
                mem.write_u64(c.rsp, register(&c, r));
                set_register(&mut c, r, GARBAGE);
            }
            Step::Alloc(n) => c.rsp -= n,
            Step::SetFp(r, off) => {
                let v = c.rsp + off;
                set_register(&mut c, r, v)
            }
            Step::SaveReg(r, off) => {
                mem.write_u64(c.rsp + off, register(&c, r));
                if clobber_movs {
                    set_register(&mut c, r, GARBAGE);
                }
            }
            Step::SaveXmm(x, off) => {
                let v = c.flt_save.xmm_registers[x as usize];
                mem.write_u64(c.rsp + off, v.low);
                mem.write_u64(c.rsp + off + 8, v.high as u64);
                if clobber_movs {
                    c.flt_save.xmm_registers[x as usize] = M128A::default();
                }
            }
        }
    }
    (c, s0)
}

/// Unwinds from `begin + pc_off` in state `k` and checks the caller's state.
fn check(steps: &[Step], begin: u64, pc_off: u64, k: usize, clobber_movs: bool) -> Unwound {
    let mut mem = Mem::new();
    let (mut c, s0) = run_prologue(&mut mem, steps, k, clobber_movs);
    c.rip = BASE + begin + pc_off;
    let entry = entry_for(&mem, c.rip);
    let mut ptrs = NonvolatileContextPointers::default();
    let u = virtual_unwind(
        &mem,
        UNW_FLAG_EHANDLER,
        BASE,
        c.rip,
        &entry,
        &mut c,
        Some(&mut ptrs),
    )
    .unwrap_or_else(|e| panic!("unwind at +{pc_off:#x} (state {k}): {e:?}"));
    assert_eq!(c.rip, RET, "RIP at +{pc_off:#x} (state {k})");
    assert_eq!(c.rsp, s0 + 8, "RSP at +{pc_off:#x} (state {k})");
    for r in 0..16u8 {
        if r != 4 {
            assert_eq!(
                register(&c, r),
                orig(r),
                "register {r} at +{pc_off:#x} (state {k})"
            );
        }
    }
    for x in 0..16u8 {
        assert_eq!(c.flt_save.xmm_registers[x as usize], xmm_orig(x), "xmm{x}");
    }
    // Every pointer found points at the saved value.
    for (r, &p) in ptrs.integer_context.iter().enumerate() {
        if p != 0 {
            assert_eq!(
                mem.read_u64(p).unwrap(),
                orig(r as u8),
                "pointer to register {r}"
            );
        }
    }
    u
}

const F_PUSH: u64 = 0x1000;
const PUSH_STEPS: &[Step] = &[Step::Push(3), Step::Push(6), Step::Alloc(0x28)];

#[test]
fn push_and_alloc_in_prologue_body_and_epilogue() {
    // (PC offset, prologue steps done): the prologue, the body (the
    // return address of the call), then each epilogue instruction.
    for (pc, k) in [
        (0, 0),
        (1, 1),
        (2, 2),
        (6, 3),
        (8, 3),
        (9, 3),
        (0xd, 2),
        (0xe, 1),
        (0xf, 0),
    ] {
        check(PUSH_STEPS, F_PUSH, pc, k, true);
    }
}

const F_FRAME: u64 = 0x1010;
const FRAME_STEPS: &[Step] = &[
    Step::Push(5),
    Step::Push(7),
    Step::Alloc(0x1000),
    Step::SetFp(5, 0x20),
    Step::SaveXmm(6, 0x30),
    Step::SaveReg(12, 0x40),
];

#[test]
fn frame_register_and_mov_saves() {
    for (pc, k) in [
        (0, 0),
        (1, 1),
        (2, 2),
        (9, 3),
        (0xe, 4),
        (0x13, 5),
        (0x18, 6),
        (0x1a, 6),
    ] {
        let u = check(FRAME_STEPS, F_FRAME, pc, k, true);
        let expect = if k >= 4 {
            STACK_TOP - 0x1000 - 16 - 0x1000 // RBP - 0x20 = RSP after the alloc
        } else {
            STACK_TOP - 0x1000 - 8 * k.min(2) as u64 - if k >= 3 { 0x1000 } else { 0 }
        };
        assert_eq!(u.establisher_frame, expect, "frame at +{pc:#x}");
    }
    // The epilogue: the body restored xmm6 and r12 before `lea rsp`.
    for (pc, k) in [(0x25, 6), (0x2c, 2), (0x2d, 1), (0x2e, 0)] {
        check(FRAME_STEPS, F_FRAME, pc, k, false);
    }
}

const F_HUGE: u64 = 0x103f;
const HUGE_STEPS: &[Step] = &[
    Step::Push(13),
    Step::Alloc(0x123450),
    Step::SaveReg(14, 0x100000),
    Step::SaveXmm(7, 0x100010),
];

#[test]
fn far_codes_and_tail_call_epilogue() {
    for (pc, k) in [(0, 0), (2, 1), (9, 2), (0x11, 3), (0x19, 4), (0x1b, 4)] {
        check(HUGE_STEPS, F_HUGE, pc, k, true);
    }
    // add rsp; pop r13; jmp f_push (a tail call: a jmp out of the function).
    for (pc, k) in [(0x24, 4), (0x2b, 1), (0x2d, 0)] {
        check(HUGE_STEPS, F_HUGE, pc, k, false);
    }
}

#[test]
fn machine_frame_with_error_code() {
    let mut mem = Mem::new();
    let top = STACK_TOP - 0x1000;
    // error code, RIP, CS, EFLAGS, RSP, SS; then 0x40 allocated.
    let frame = [0xE, 0x1_4000_5678, 0x33, 0x202, 0x7123_4560, 0x2B];
    for (i, v) in frame.iter().enumerate() {
        mem.write_u64(top + 8 * i as u64, *v);
    }
    let mut c = Context {
        rsp: top - 0x40,
        rip: BASE + 0x1074,
        rbx: 7,
        ..Default::default()
    };
    let entry = entry_for(&mem, c.rip);
    virtual_unwind(&mem, 0, BASE, c.rip, &entry, &mut c, None).unwrap();
    assert_eq!((c.rip, c.rsp, c.rbx), (0x1_4000_5678, 0x7123_4560, 7));
}

#[test]
fn chained_unwind_info() {
    let steps = &[
        Step::Push(3),
        Step::Alloc(0x20),
        Step::Push(6),
        Step::Alloc(0x10),
    ];
    // In f_split (primary) and in its cold part at the call's return
    // address, the second `add rsp` and what follows (a legal epilogue of
    // the primary's frame).
    check(steps, 0x1092, 0x5, 2, true);
    check(steps, 0x109b, 0x7, 4, true);
    check(steps, 0x109b, 0xd, 2, true);
    check(steps, 0x109b, 0x11, 1, true);
    check(steps, 0x109b, 0x12, 0, true);
    // The cold part's prologue: its own codes by offset, then all of the
    // primary's.
    check(steps, 0x109b, 0x1, 3, true);
    check(steps, 0x109b, 0x0, 2, true);
}

#[test]
fn handler_and_scope_table() {
    let mut mem = Mem::new();
    let (mut c, _) = run_prologue(&mut mem, &[Step::Alloc(0x28)], 1, true);
    c.rip = BASE + 0x107c; // the return address inside __try
    let entry = entry_for(&mem, c.rip);
    let mut c2 = c;
    let u = virtual_unwind(&mem, UNW_FLAG_EHANDLER, BASE, c.rip, &entry, &mut c2, None).unwrap();
    assert_eq!(u.handler, Some(BASE + 0x1091));
    assert_eq!(mem.read_u32(u.handler_data).unwrap(), 2);
    let mut c3 = c;
    let u = virtual_unwind(&mem, UNW_FLAG_UHANDLER, BASE, c.rip, &entry, &mut c3, None).unwrap();
    assert_eq!(u.handler, Some(BASE + 0x1091));
    // In the prologue and in an epilogue: no handler.
    let mut c4 = c;
    c4.rsp += 0x28;
    let u = virtual_unwind(
        &mem,
        UNW_FLAG_EHANDLER,
        BASE,
        BASE + 0x1076,
        &entry,
        &mut c4,
        None,
    )
    .unwrap();
    assert_eq!(u.handler, None);
    let mut c5 = c;
    let u = virtual_unwind(
        &mem,
        UNW_FLAG_EHANDLER,
        BASE,
        BASE + 0x107e,
        &entry,
        &mut c5,
        None,
    )
    .unwrap();
    assert_eq!((u.handler, c5.rip), (None, RET));
}

#[test]
fn decoding_agrees_with_lib_pe() {
    let mem = Mem::new();
    let img = pe::image::Image::parse(DLL).unwrap();
    let fs = img.runtime_functions().unwrap();
    assert_eq!(fs.len(), 7);
    let (table, n) = pdata();
    for f in &fs {
        let info = img.unwind_info(f.unwind_info_address).unwrap();
        let h = unwind_info_header(&mem, BASE, f.unwind_info_address).unwrap();
        assert_eq!(
            (h.version, h.flags, h.size_of_prolog, h.count_of_codes),
            (
                info.version,
                info.flags,
                info.size_of_prolog,
                info.count_of_codes
            )
        );
        assert_eq!(
            (h.frame_register, h.frame_offset),
            (info.frame_register, info.frame_offset)
        );
        for pc in [f.begin_address, f.end_address - 1] {
            let at = lookup_function_entry(&mem, BASE, table, n, BASE + pc as u64).unwrap();
            assert_eq!(
                mem.read_runtime_function(at).unwrap().begin_address,
                f.begin_address
            );
        }
    }
    // Gaps between functions and outside the image have no entry.
    for pc in [0x108a, 0x1091, 0x10ae, 0x0fff] {
        assert_eq!(
            lookup_function_entry(&mem, BASE, table, n, BASE + pc),
            None,
            "{pc:#x}"
        );
    }
    assert_eq!(lookup_function_entry(&mem, BASE, table, n, 5), None);
}

#[test]
fn bad_unwind_info_is_an_error_not_a_panic() {
    let mut mem = Mem::new();
    let entry = RuntimeFunction {
        begin_address: 0x1000,
        end_address: 0x1010,
        unwind_data: 0x3000,
    };
    // Version 3, then an unknown code, then a count past the data.
    for (bytes, what) in [
        (&[3u8, 0, 0, 0][..], "version"),
        (&[1, 6, 1, 0, 6, 0x0B][..], "op 11"),
        (&[1, 6, 1, 0, 6, 0x01][..], "ALLOC_LARGE with one slot"),
    ] {
        let mut m2 = Mem::new();
        m2.write(BASE + 0x3000, bytes);
        let mut c = Context {
            rsp: STACK_TOP - 0x100,
            rip: BASE + 0x1008,
            ..Default::default()
        };
        let r = virtual_unwind(&m2, 0, BASE, c.rip, &entry, &mut c, None);
        assert!(
            matches!(r, Err(UnwindError::BadUnwindInfo(0x3000))),
            "{what}: {r:?}"
        );
    }
    // A stack pointer outside memory.
    let mut c = Context {
        rsp: 0x10,
        rip: BASE + 0x1008,
        ..Default::default()
    };
    mem.write(BASE + 0x3000, &[1, 0, 0, 0]);
    let r = virtual_unwind(&mem, 0, BASE, c.rip, &entry, &mut c, None);
    assert!(matches!(r, Err(UnwindError::Memory(_))), "{r:?}");
    // A chain that points at itself.
    let mut m3 = Mem::new();
    m3.write(
        BASE + 0x3000,
        &[
            1 | 4 << 3,
            0,
            0,
            0,
            0x00,
            0x10,
            0,
            0,
            0x10,
            0x10,
            0,
            0,
            0,
            0x30,
            0,
            0,
        ],
    );
    let mut c = Context {
        rsp: STACK_TOP - 0x100,
        rip: BASE + 0x1008,
        ..Default::default()
    };
    let r = virtual_unwind(&m3, 0, BASE, c.rip, &entry, &mut c, None);
    assert!(matches!(r, Err(UnwindError::BadUnwindInfo(_))), "{r:?}");
}

// ---------------------------------------------------------------- frame walks

/// The environment of the walks: f_seh called from a leaf-free caller
/// chain, handlers simulated by address.
struct Env {
    mem: Mem,
    calls: Vec<(u64, u32, u64)>, // (handler, flags, frame)
    scope: ScopeLog,
}

#[derive(Default)]
struct ScopeLog {
    filters: Vec<u64>,
    finallies: Vec<u64>,
    unwinds: Vec<(u64, u64)>,
    filter_result: i32,
}

impl Memory for Env {
    fn read(&self, a: u64, buf: &mut [u8]) -> bool {
        self.mem.read(a, buf)
    }
}

impl Environment for Env {
    fn lookup(&self, pc: u64) -> Option<(u64, u64)> {
        let (table, n) = pdata();
        lookup_function_entry(&self.mem, BASE, table, n, pc).map(|e| (BASE, e))
    }
    fn stack_limits(&self) -> (u64, u64) {
        (STACK_LOW, STACK_TOP)
    }
    fn call_handler(
        &mut self,
        handler: u64,
        record: &mut ExceptionRecord,
        frame: u64,
        context: &mut Context,
        dc: &mut DispatcherContext,
    ) -> u32 {
        self.calls.push((handler, record.exception_flags, frame));
        assert_eq!(handler, BASE + 0x1091);
        let Env { mem, scope, .. } = self;
        c_specific_handler(&*mem, scope, record, frame, context, dc)
    }
}

impl ScopeCalls for ScopeLog {
    fn filter(&mut self, f: u64, _: &mut ExceptionRecord, _: &mut Context, _: u64) -> i32 {
        self.filters.push(f);
        self.filter_result
    }
    fn termination(&mut self, h: u64, frame: u64) {
        self.finallies.push(h);
        assert_ne!(frame, 0);
    }
    fn unwind(&mut self, frame: u64, ip: u64, _: &mut ExceptionRecord, _: &mut DispatcherContext) {
        self.unwinds.push((frame, ip));
    }
}

/// A fault in a leaf called from f_seh's __try (the leaf's return address
/// 0x107c at RSP), f_seh called from f_push's body, f_push called from RET.
fn walk_setup(filter_result: i32) -> (Env, Context, u64) {
    let mut mem = Mem::new();
    let (c, s0) = run_prologue(&mut mem, PUSH_STEPS, 3, true);
    // f_push's call pushed its return address 0x1008; f_seh allocated 0x28.
    let mut rsp = c.rsp - 8;
    mem.write_u64(rsp, BASE + 0x1008);
    rsp -= 0x28;
    let seh_frame = rsp;
    rsp -= 8;
    mem.write_u64(rsp, BASE + 0x107c);
    // The faulting leaf at RIP 0 of nothing known: its RSP has the return.
    let ctx = Context {
        rsp,
        rip: 0x2_0000_0000,
        rbx: c.rbx,
        rsi: c.rsi,
        ..Default::default()
    };
    let _ = s0;
    let env = Env {
        mem,
        calls: Vec::new(),
        scope: ScopeLog {
            filter_result,
            ..Default::default()
        },
    };
    (env, ctx, seh_frame)
}

#[test]
fn dispatch_runs_the_filter_and_unwinds_to_the_except_block() {
    let (mut env, mut ctx, seh_frame) = walk_setup(1);
    let mut rec = ExceptionRecord {
        exception_code: 0xC000_0005,
        ..Default::default()
    };
    let r = dispatch_exception(&mut env, &mut rec, &mut ctx);
    // The simulated RtlUnwindEx returns, so the walk goes on: not handled.
    assert_eq!(r, Dispatch::NotHandled);
    assert_eq!(env.calls[0], (BASE + 0x1091, 0, seh_frame));
    assert_eq!(env.scope.filters, [BASE + 0x108a]);
    assert_eq!(env.scope.unwinds, [(seh_frame, BASE + 0x1083)]);
    assert!(
        env.scope.finallies.is_empty(),
        "no termination handler runs while dispatching"
    );
}

#[test]
fn dispatch_continue_execution_and_noncontinuable() {
    let (mut env, mut ctx, _) = walk_setup(-1);
    let mut rec = ExceptionRecord::default();
    assert_eq!(
        dispatch_exception(&mut env, &mut rec, &mut ctx),
        Dispatch::Continue
    );
    let (mut env, mut ctx, _) = walk_setup(-1);
    let mut rec = ExceptionRecord {
        exception_flags: EXCEPTION_NONCONTINUABLE,
        ..Default::default()
    };
    assert_eq!(
        dispatch_exception(&mut env, &mut rec, &mut ctx),
        Dispatch::Raise(STATUS_NONCONTINUABLE_EXCEPTION)
    );
    // Filter 0 searches on: the walk ends at the stack's end.
    let (mut env, mut ctx, _) = walk_setup(0);
    let mut rec = ExceptionRecord::default();
    assert_eq!(
        dispatch_exception(&mut env, &mut rec, &mut ctx),
        Dispatch::NotHandled
    );
    assert_eq!(env.scope.filters.len(), 1);
}

#[test]
fn unwind_runs_the_finally_then_stops_at_the_target() {
    let (mut env, mut ctx, seh_frame) = walk_setup(1);
    let mut rec = ExceptionRecord {
        exception_code: 0xC000_0005,
        ..Default::default()
    };
    let r = unwind_frames(
        &mut env,
        seh_frame,
        BASE + 0x1083,
        &mut rec,
        0xC000_0005,
        &mut ctx,
    );
    assert_eq!(r, Ok(()));
    assert_eq!(env.scope.finallies, [BASE + 0x1090]);
    assert_eq!(
        env.calls[0].1 & EXCEPTION_TARGET_UNWIND,
        EXCEPTION_TARGET_UNWIND
    );
    assert_eq!(
        (ctx.rip, ctx.rax, ctx.rsp),
        (BASE + 0x1083, 0xC000_0005, seh_frame)
    );
    assert_eq!(
        rec.exception_flags & EXCEPTION_UNWINDING,
        EXCEPTION_UNWINDING
    );
}

#[test]
fn exit_unwind_and_bad_targets() {
    let (mut env, mut ctx, _) = walk_setup(1);
    let mut rec = ExceptionRecord::default();
    assert_eq!(unwind_frames(&mut env, 0, 0, &mut rec, 0, &mut ctx), Ok(()));
    assert_eq!(env.scope.finallies, [BASE + 0x1090]);
    assert_eq!(
        rec.exception_flags & EXCEPTION_EXIT_UNWIND,
        EXCEPTION_EXIT_UNWIND
    );
    // A target frame below the first frame cannot be reached.
    let (mut env, mut ctx, _) = walk_setup(1);
    let mut rec = ExceptionRecord::default();
    let low = ctx.rsp - 0x100;
    assert_eq!(
        unwind_frames(&mut env, low, 1, &mut rec, 0, &mut ctx),
        Err(STATUS_INVALID_UNWIND_TARGET)
    );
}
