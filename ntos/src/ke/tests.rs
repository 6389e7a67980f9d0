//! Boot tests of the kernel core: scheduling, DPCs, timers, delays, SMP.
//! Each runs in the System thread at PASSIVE_LEVEL with the clock ticking.

use crate::ke::{self, clock, dpc, sched, thread, timer};
use crate::ktest::{check, sleep_ms, wait_until, Test, TestResult, MS};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Creates and starts a test thread; 0 (no thread) if that failed, which
/// the test then notices as a thread that never ran.
fn spawn(name: &str, priority: u8, affinity: u64, f: fn(usize), ctx: usize) -> u32 {
    match sched::start_system_thread(name, priority, affinity, f, ctx) {
        Ok(t) => t,
        Err(s) => {
            crate::dbg_println!("KTEST-NOTE thread {name} not created: {:#x}", s.as_u32());
            0
        }
    }
}

fn me_mask() -> u64 {
    1 << ke::current_processor_number()
}

static PREEMPT_RAN: AtomicBool = AtomicBool::new(false);

fn t_preemption() -> TestResult {
    PREEMPT_RAN.store(false, Ordering::SeqCst);
    // A priority-20 thread bound to this processor must run before the
    // priority-8 test thread executes its next instruction.
    spawn(
        "preempt",
        20,
        me_mask(),
        |_| PREEMPT_RAN.store(true, Ordering::SeqCst),
        0,
    );
    let ran = PREEMPT_RAN.load(Ordering::SeqCst);
    check(
        ran,
        "a higher-priority ready thread did not preempt at once",
    )
}

static RR_FIRST: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static RR_LAST: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static RR_DONE: AtomicU32 = AtomicU32::new(0);

fn rr_body(i: usize) {
    let start = clock::ke_query_interrupt_time();
    RR_FIRST[i].store(start, Ordering::SeqCst);
    // Busy for 12 clock ticks (several quanta), never waiting.
    while clock::ke_query_interrupt_time() < start + 12 * clock::TIME_INCREMENT {
        RR_LAST[i].store(clock::ke_query_interrupt_time(), Ordering::SeqCst);
        core::hint::spin_loop();
    }
    RR_DONE.fetch_add(1, Ordering::SeqCst);
}

fn t_round_robin() -> TestResult {
    RR_DONE.store(0, Ordering::SeqCst);
    // Two CPU-bound threads of equal priority on one processor: quantum end
    // must alternate them, so their running intervals overlap.
    let cpu = me_mask();
    // Create both before either runs: stay above them while readying.
    let me = sched::current_thread_id();
    let old = sched::ke_set_priority_thread(me, 10);
    spawn("rr0", 9, cpu, rr_body, 0);
    spawn("rr1", 9, cpu, rr_body, 1);
    sched::ke_set_priority_thread(me, old);
    // Both outrank us; we run again only when both are done.
    check(
        wait_until(5000, || RR_DONE.load(Ordering::SeqCst) == 2),
        "round-robin threads did not finish",
    )?;
    let (f0, l0) = (
        RR_FIRST[0].load(Ordering::SeqCst),
        RR_LAST[0].load(Ordering::SeqCst),
    );
    let (f1, l1) = (
        RR_FIRST[1].load(Ordering::SeqCst),
        RR_LAST[1].load(Ordering::SeqCst),
    );
    check(
        f1 < l0 && f0 < l1,
        "equal-priority threads did not share the processor on quantum end",
    )
}

static DPC_IRQL: AtomicU8 = AtomicU8::new(0xFF);
static DPC_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
static DPC_ARG: AtomicU64 = AtomicU64::new(0);
static TEST_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, ctx, a1, _| {
        DPC_IRQL.store(ke::irql(), Ordering::SeqCst);
        DPC_CPU.store(ke::current_processor_number(), Ordering::SeqCst);
        DPC_ARG.store((ctx + a1) as u64, Ordering::SeqCst);
    },
    40,
);

fn t_dpc() -> TestResult {
    DPC_IRQL.store(0xFF, Ordering::SeqCst);
    check(
        dpc::ke_insert_queue_dpc(&TEST_DPC, 2, 0),
        "KeInsertQueueDpc returned FALSE for an idle DPC",
    )?;
    // The DPC runs as soon as IRQL drops below DISPATCH_LEVEL: it already has.
    check(
        DPC_IRQL.load(Ordering::SeqCst) == ke::DISPATCH_LEVEL,
        "DPC did not run at DISPATCH_LEVEL",
    )?;
    check(DPC_ARG.load(Ordering::SeqCst) == 42, "DPC arguments lost")?;
    // Inserting twice while queued: the second insert reports FALSE.
    let old = ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
    let first = dpc::ke_insert_queue_dpc(&TEST_DPC, 0, 0);
    let second = dpc::ke_insert_queue_dpc(&TEST_DPC, 0, 0);
    ke::irql::ke_lower_irql(old);
    check(first && !second, "a queued DPC was queued twice")
}

static TARGET_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| DPC_CPU.store(ke::current_processor_number(), Ordering::SeqCst),
    0,
)
.with_target(1);

fn t_targeted_dpc() -> TestResult {
    if ke::processor_count() < 2 {
        return Ok(());
    }
    DPC_CPU.store(u32::MAX, Ordering::SeqCst);
    dpc::ke_insert_queue_dpc(&TARGET_DPC, 0, 0);
    check(
        wait_until(1000, || DPC_CPU.load(Ordering::SeqCst) == 1),
        "a DPC targeted at processor 1 did not run there",
    )
}

static TIMER: timer::KTimer = timer::KTimer::new();
static TIMER_FIRED_AT: AtomicU64 = AtomicU64::new(0);
static TIMER_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| {
        TIMER_FIRED_AT.store(clock::ke_query_interrupt_time(), Ordering::SeqCst);
    },
    0,
);

fn t_timer_dpc() -> TestResult {
    TIMER_FIRED_AT.store(0, Ordering::SeqCst);
    let start = clock::ke_query_interrupt_time();
    check(
        !timer::ke_set_timer_ex(&TIMER, -(50 * MS as i64), 0, Some(&TIMER_DPC)),
        "a fresh timer reported it was already set",
    )?;
    check(
        wait_until(2000, || TIMER_FIRED_AT.load(Ordering::SeqCst) != 0),
        "timer DPC never ran",
    )?;
    let at = TIMER_FIRED_AT.load(Ordering::SeqCst);
    check(at >= start + 50 * MS, "timer fired before its due time")?;
    check(TIMER.signaled(), "expired timer is not signaled")?;
    check(
        !timer::ke_cancel_timer(&TIMER),
        "an expired one-shot timer was still queued",
    )
}

static PERIODIC: timer::KTimer = timer::KTimer::new();

fn t_periodic_timer() -> TestResult {
    timer::ke_set_timer_ex(&PERIODIC, -(20 * MS as i64), 20, None);
    sleep_ms(300);
    let n = PERIODIC.fired.load(Ordering::SeqCst);
    check(
        timer::ke_cancel_timer(&PERIODIC),
        "periodic timer was not queued",
    )?;
    check(
        (5..=20).contains(&n),
        "periodic 20 ms timer fired a wrong number of times in 300 ms",
    )?;
    sleep_ms(60);
    check(
        PERIODIC.fired.load(Ordering::SeqCst) == n,
        "cancelled timer kept firing",
    )
}

/// The idle loop's halted time (`sched::halted_tsc`) grows while this
/// thread sleeps and its processor has nothing else to run, and stays below
/// the time stamps that passed. (Early in boot the zero page thread keeps
/// idle processors busy, so the sleep is repeated, up to 4 s, until the
/// processor halts.)
fn t_idle_halt_time() -> TestResult {
    for _ in 0..80 {
        let me = ke::current_processor_number() as usize;
        let h0 = sched::halted_tsc(me);
        let t0 = crate::hal::rdtsc();
        sched::ke_delay_execution_thread(50 * MS);
        // The sleep may have ended on another processor; the counter read
        // is the one where it began.
        let halted = sched::halted_tsc(me) - h0;
        let span = crate::hal::rdtsc() - t0;
        check(halted <= span, "more halted time than time passed")?;
        if halted > 0 {
            return Ok(());
        }
    }
    Err("no halted time counted across 80 sleeps of 50 ms")
}

fn t_delay() -> TestResult {
    let start = clock::ke_query_interrupt_time();
    let status = sched::ke_delay_execution_thread(100 * MS);
    let elapsed = clock::ke_query_interrupt_time() - start;
    check(
        status == nt::status::STATUS_SUCCESS,
        "delay did not return STATUS_SUCCESS",
    )?;
    check(elapsed >= 100 * MS, "KeDelayExecutionThread returned early")?;
    check(elapsed < 2000 * MS, "KeDelayExecutionThread overslept")
}

fn t_yield() -> TestResult {
    // Raise ourselves above every other thread so nothing can take the processor.
    let me = sched::current_thread_id();
    let old = sched::ke_set_priority_thread(me, 30);
    let s = sched::ke_yield_execution();
    sched::ke_set_priority_thread(me, old);
    check(
        s == nt::status::STATUS_NO_YIELD_PERFORMED,
        "NtYieldExecution with nothing ready did not return STATUS_NO_YIELD_PERFORMED",
    )
}

static CPU_SEEN: [AtomicU32; crate::hal::MAX_PROCESSORS] =
    [const { AtomicU32::new(u32::MAX) }; crate::hal::MAX_PROCESSORS];

fn t_every_processor() -> TestResult {
    let n = ke::processor_count();
    for p in 0..n {
        CPU_SEEN[p as usize].store(u32::MAX, Ordering::SeqCst);
        spawn(
            "percpu",
            9,
            1 << p,
            |p| {
                CPU_SEEN[p].store(ke::current_processor_number(), Ordering::SeqCst);
            },
            p as usize,
        );
    }
    check(
        wait_until(2000, || {
            (0..n).all(|p| CPU_SEEN[p as usize].load(Ordering::SeqCst) == p)
        }),
        "a thread bound to a processor did not run on it",
    )
}

/// What one extended-state round sets and reads back: the 256 bits of
/// YMM8 (only the low 128, XMM8, without AVX), the x87 control word, MXCSR
/// and two integers on the x87 register stack. Layout shared with the asm.
#[repr(C, align(32))]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct FpState {
    ymm: [u64; 4],
    fcw: u16,
    _pad: u16,
    mxcsr: u32,
    st1: i64,
    st0: i64,
}

static XSTATE_OK: AtomicU32 = AtomicU32::new(0);
static XSTATE_BAD: AtomicU32 = AtomicU32::new(0);
static XSTATE_ROUND: AtomicU32 = AtomicU32::new(0);

/// Called from inside the asm below with the test state in the registers:
/// gives the processor away (a yield, every fourth time a short sleep) so
/// the other thread loads its own state meanwhile.
extern "C" fn xstate_switch() {
    sched::ke_yield_execution();
    if XSTATE_ROUND
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(4)
    {
        sched::ke_delay_execution_thread(MS);
    }
    sched::ke_yield_execution();
}

/// Loads `set` into YMM8 (or XMM8), FCW, MXCSR and the x87 stack, calls
/// `xstate_switch`, and stores what the registers hold afterwards in `got`;
/// the caller's YMM8, FCW and MXCSR are saved and restored around it, and
/// the x87 stack is empty again at the end.
fn fp_round_trip(set: &FpState, got: &mut FpState, avx: bool) {
    let s = set as *const FpState;
    let g = got as *mut FpState;
    if avx {
        // SAFETY: AVX is enabled (XCR0 has it); only memory in `set`, `got`
        // and the asm's own stack space is touched; every register changed
        // is restored or declared (the call clobbers what the C ABI lets it).
        unsafe {
            core::arch::asm!(
                "sub rsp, 96",
                "vmovdqu [rsp + 32], ymm8",
                "fnstcw [rsp + 64]",
                "stmxcsr [rsp + 68]",
                "vmovdqu ymm8, [r12]",
                "fldcw [r12 + 32]",
                "ldmxcsr [r12 + 36]",
                "fild qword ptr [r12 + 40]",
                "fild qword ptr [r12 + 48]",
                "call {f}",
                "vmovdqu [r13], ymm8",
                "fnstcw [r13 + 32]",
                "stmxcsr [r13 + 36]",
                "fistp qword ptr [r13 + 48]",
                "fistp qword ptr [r13 + 40]",
                "fldcw [rsp + 64]",
                "ldmxcsr [rsp + 68]",
                "vmovdqu ymm8, [rsp + 32]",
                "add rsp, 96",
                f = sym xstate_switch,
                in("r12") s,
                in("r13") g,
                clobber_abi("C"),
            )
        }
    } else {
        // SAFETY: as above, with XMM8 in place of YMM8 (SSE only).
        unsafe {
            core::arch::asm!(
                "sub rsp, 96",
                "movdqu [rsp + 32], xmm8",
                "fnstcw [rsp + 64]",
                "stmxcsr [rsp + 68]",
                "movdqu xmm8, [r12]",
                "fldcw [r12 + 32]",
                "ldmxcsr [r12 + 36]",
                "fild qword ptr [r12 + 40]",
                "fild qword ptr [r12 + 48]",
                "call {f}",
                "movdqu [r13], xmm8",
                "fnstcw [r13 + 32]",
                "stmxcsr [r13 + 36]",
                "fistp qword ptr [r13 + 48]",
                "fistp qword ptr [r13 + 40]",
                "fldcw [rsp + 64]",
                "ldmxcsr [rsp + 68]",
                "movdqu xmm8, [rsp + 32]",
                "add rsp, 96",
                f = sym xstate_switch,
                in("r12") s,
                in("r13") g,
                clobber_abi("C"),
            )
        }
    }
}

/// One of two threads on one processor: 24 rounds, each with thread- and
/// round-specific YMM, x87 and MXCSR contents held across context switches.
fn xstate_body(which: usize) {
    let avx = thread::avx_enabled();
    let tag = 0x5A5A_0000_0000_0000u64 ^ ((which as u64 + 1) << 40);
    let mut ok = true;
    for i in 0..24u64 {
        let set = FpState {
            ymm: [
                tag ^ i,
                !tag ^ i,
                (tag << 1) ^ (i << 8),
                tag.rotate_left(17) ^ i,
            ],
            // Thread 0 rounds down, thread 1 toward zero (x87 and SSE alike).
            fcw: if which == 0 { 0x077F } else { 0x0F7F },
            _pad: 0,
            mxcsr: if which == 0 { 0x3F80 } else { 0x7F80 },
            st1: (tag >> 20) as i64 + i as i64,
            st0: -((tag >> 24) as i64) - 2 * i as i64,
        };
        let mut want = set;
        if !avx {
            want.ymm[2] = 0;
            want.ymm[3] = 0;
        }
        let mut got = FpState::default();
        fp_round_trip(&set, &mut got, avx);
        if got != want {
            ok = false;
            crate::dbg_println!("KTEST-NOTE thread {which} round {i}: set {want:x?} got {got:x?}");
        }
    }
    if ok {
        XSTATE_OK.fetch_add(1, Ordering::SeqCst);
    } else {
        XSTATE_BAD.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two threads on one processor each keep their own YMM (upper halves
/// included, when AVX is on), x87 stack and control word, and MXCSR across
/// many context switches: a switch that saved only FXSAVE's state would
/// lose the YMM upper halves, one that saved none would mix the threads.
fn t_extended_state() -> TestResult {
    XSTATE_OK.store(0, Ordering::SeqCst);
    XSTATE_BAD.store(0, Ordering::SeqCst);
    let cpu = me_mask();
    if !thread::avx_enabled() {
        crate::dbg_println!(
            "KTEST-NOTE no AVX on this processor: XMM8, x87 and MXCSR are checked, not YMM"
        );
    }
    // Start both before either runs: stay above them while readying.
    let me = sched::current_thread_id();
    let old = sched::ke_set_priority_thread(me, 10);
    spawn("xstate0", 9, cpu, xstate_body, 0);
    spawn("xstate1", 9, cpu, xstate_body, 1);
    sched::ke_set_priority_thread(me, old);
    check(
        wait_until(10_000, || {
            XSTATE_OK.load(Ordering::SeqCst) + XSTATE_BAD.load(Ordering::SeqCst) == 2
        }),
        "extended-state threads did not finish",
    )?;
    check(
        XSTATE_OK.load(Ordering::SeqCst) == 2,
        "YMM/x87/MXCSR contents were not preserved across context switches",
    )
}

/// An FXSAVE image (64-byte aligned).
#[repr(C, align(64))]
struct FxArea([u8; 512]);
/// What the new thread of `t_initial_extended_state` saw: FCW, FSW, the
/// abridged tag word, MXCSR, and YMM8 (XMM8 without AVX).
static INITIAL_X87: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
static INITIAL_YMM: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static INITIAL_DONE: AtomicBool = AtomicBool::new(false);
static INITIAL_TID: AtomicU32 = AtomicU32::new(0);

/// The new thread: records its x87/SSE state as it starts.
fn initial_state_body(_: usize) {
    let mut ymm = [0u64; 4];
    let mut fx = FxArea([0; 512]);
    // SAFETY: FXSAVE into a 64-byte aligned 512-byte local.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) fx.0.as_mut_ptr(), options(nostack)) };
    if thread::avx_enabled() {
        // SAFETY: AVX is enabled; stores YMM8 into a local array.
        unsafe {
            core::arch::asm!("vmovdqu [{}], ymm8", in(reg) ymm.as_mut_ptr(), options(nostack))
        };
    } else {
        // SAFETY: stores XMM8 into a local array.
        unsafe {
            core::arch::asm!("movdqu [{}], xmm8", in(reg) ymm.as_mut_ptr(), options(nostack))
        };
    }
    let f = &fx.0;
    let seen = [
        u32::from(u16::from_le_bytes([f[0], f[1]])),
        u32::from(u16::from_le_bytes([f[2], f[3]])),
        u32::from(f[4]),
        u32::from_le_bytes([f[24], f[25], f[26], f[27]]),
    ];
    for (a, v) in INITIAL_X87.iter().zip(seen) {
        a.store(v, Ordering::SeqCst);
    }
    for (a, v) in INITIAL_YMM.iter().zip(ymm) {
        a.store(v, Ordering::SeqCst);
    }
    INITIAL_DONE.store(true, Ordering::SeqCst);
}

/// Called from inside the asm of `t_initial_extended_state`, with unusual
/// state in the creator's registers: creates and starts the new thread.
extern "C" fn initial_state_spawn() {
    INITIAL_TID.store(
        spawn("initial-state", 20, u64::MAX, initial_state_body, 0),
        Ordering::SeqCst,
    );
}

/// A new thread starts with the default extended state — x87 as FNINIT
/// leaves it (control word 0x037F, empty stack), MXCSR 0x1F80, XMM/YMM
/// zero — not with its creator's registers.
fn t_initial_extended_state() -> TestResult {
    INITIAL_DONE.store(false, Ordering::SeqCst);
    let creator = FpState {
        ymm: [
            0x1111_2222_3333_4444,
            0x5555_6666_7777_8888,
            0x9999_aaaa_bbbb_cccc,
            0xdddd_eeee_ffff_0001,
        ],
        fcw: 0x0F7F,
        _pad: 0,
        mxcsr: 0x7F80,
        st1: 12345,
        st0: -678,
    };
    let avx = thread::avx_enabled();
    let s = &creator as *const FpState;
    if avx {
        // SAFETY: AVX is enabled; the creator's YMM8, FCW and MXCSR are
        // saved and restored around the call, the x87 stack is popped again;
        // only `creator` and the asm's stack space are read or written.
        unsafe {
            core::arch::asm!(
                "sub rsp, 96",
                "vmovdqu [rsp + 32], ymm8",
                "fnstcw [rsp + 64]",
                "stmxcsr [rsp + 68]",
                "vmovdqu ymm8, [r12]",
                "fldcw [r12 + 32]",
                "ldmxcsr [r12 + 36]",
                "fild qword ptr [r12 + 40]",
                "call {f}",
                "fstp st(0)",
                "fldcw [rsp + 64]",
                "ldmxcsr [rsp + 68]",
                "vmovdqu ymm8, [rsp + 32]",
                "add rsp, 96",
                f = sym initial_state_spawn,
                in("r12") s,
                clobber_abi("C"),
            )
        }
    } else {
        // SAFETY: as above with XMM8 (SSE only).
        unsafe {
            core::arch::asm!(
                "sub rsp, 96",
                "movdqu [rsp + 32], xmm8",
                "fnstcw [rsp + 64]",
                "stmxcsr [rsp + 68]",
                "movdqu xmm8, [r12]",
                "fldcw [r12 + 32]",
                "ldmxcsr [r12 + 36]",
                "fild qword ptr [r12 + 40]",
                "call {f}",
                "fstp st(0)",
                "fldcw [rsp + 64]",
                "ldmxcsr [rsp + 68]",
                "movdqu xmm8, [rsp + 32]",
                "add rsp, 96",
                f = sym initial_state_spawn,
                in("r12") s,
                clobber_abi("C"),
            )
        }
    }
    check(
        INITIAL_TID.load(Ordering::SeqCst) != 0,
        "thread not created",
    )?;
    check(
        wait_until(2000, || INITIAL_DONE.load(Ordering::SeqCst)),
        "the new thread never ran",
    )?;
    let [fcw, fsw, ftw, mxcsr] = [0, 1, 2, 3].map(|i| INITIAL_X87[i].load(Ordering::SeqCst));
    let ymm: [u64; 4] = core::array::from_fn(|i| INITIAL_YMM[i].load(Ordering::SeqCst));
    crate::dbg_println!(
        "KTEST-NOTE new thread FCW {fcw:#06x} FSW {fsw:#06x} FTW {ftw:#04x} MXCSR {mxcsr:#x} YMM8 {ymm:x?}"
    );
    check(
        fcw == 0x037F,
        "new thread's x87 control word is not FNINIT's",
    )?;
    check(
        fsw & 0x3800 == 0 && ftw == 0,
        "new thread's x87 stack is not empty",
    )?;
    check(
        mxcsr == 0x1F80,
        "new thread's MXCSR is not the default 0x1F80",
    )?;
    check(
        ymm[0] != creator.ymm[0] && ymm[1] != creator.ymm[1],
        "the creator's XMM8 leaked into the new thread",
    )?;
    check(
        !avx || ymm[2..] == [0, 0],
        "the new thread's YMM8 upper half is not zero",
    )
}

static STRESS_COUNT: AtomicU64 = AtomicU64::new(0);
static STRESS_DONE: AtomicU32 = AtomicU32::new(0);
static STRESS_END: AtomicU64 = AtomicU64::new(0);
static STRESS_LOCK: ke::irql::KQueuedSpinLock = ke::irql::KQueuedSpinLock::new();
static STRESS_SHARED: AtomicU64 = AtomicU64::new(0);
static STRESS_TIMERS: [timer::KTimer; 8] = [const { timer::KTimer::new() }; 8];
static STRESS_DPC_RUNS: AtomicU64 = AtomicU64::new(0);
static STRESS_DPCS: [dpc::KDpc; 8] = [const {
    dpc::KDpc::new(
        |_, _, _, _| {
            STRESS_DPC_RUNS.fetch_add(1, Ordering::Relaxed);
        },
        0,
    )
}; 8];

static STRESS_MUTANT: crate::ke::wait::KMutant = crate::ke::wait::KMutant::new();
static STRESS_MUTANT_COUNTER: AtomicU64 = AtomicU64::new(0);
static STRESS_MUTANT_EXPECTED: AtomicU64 = AtomicU64::new(0);
static STRESS_ITEMS: crate::ke::wait::KSemaphore = crate::ke::wait::KSemaphore::new(0, i32::MAX);
static STRESS_PRODUCED: AtomicU64 = AtomicU64::new(0);
static STRESS_CONSUMED: AtomicU64 = AtomicU64::new(0);
static STRESS_EVENT: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(false, false);

/// One stress worker: until the end time, a random mix of yields, short
/// sleeps, spins, queued-lock updates, timer re-arms, DPC inserts, mutant
/// acquisitions, semaphore produce/consume, and waits on timers and events.
fn stress_worker(i: usize) {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while clock::ke_query_interrupt_time() < STRESS_END.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STRESS_COUNT.fetch_add(1, Ordering::Relaxed);
        match x % 10 {
            6 => {
                // A mutant-protected non-atomic update.
                let s = crate::ke::wait::ke_wait_for_single_object(
                    &STRESS_MUTANT,
                    thread::WaitReason::Executive,
                    false,
                    false,
                    Some(50 * MS),
                );
                if s == nt::status::STATUS_SUCCESS {
                    let v = STRESS_MUTANT_COUNTER.load(Ordering::Relaxed);
                    core::hint::spin_loop();
                    STRESS_MUTANT_COUNTER.store(v + 1, Ordering::Relaxed);
                    STRESS_MUTANT_EXPECTED.fetch_add(1, Ordering::Relaxed);
                    let _ = crate::ke::wait::ke_release_mutant(&STRESS_MUTANT, false);
                }
            }
            7 => {
                // Produce one item.
                if crate::ke::wait::ke_release_semaphore(&STRESS_ITEMS, 1, 1).is_ok() {
                    STRESS_PRODUCED.fetch_add(1, Ordering::Relaxed);
                }
            }
            8 => {
                // Consume one item (or time out).
                let s = crate::ke::wait::ke_wait_for_single_object(
                    &STRESS_ITEMS,
                    thread::WaitReason::Executive,
                    false,
                    false,
                    Some(((x >> 8) % (3 * MS)) + 1),
                );
                if s == nt::status::STATUS_SUCCESS {
                    STRESS_CONSUMED.fetch_add(1, Ordering::Relaxed);
                }
            }
            9 => {
                // Wait on a timer or an event someone else sets.
                if (x >> 9) & 1 == 0 {
                    let t = &STRESS_TIMERS[(x >> 16) as usize % 8];
                    let _ = crate::ke::wait::ke_wait_for_single_object(
                        t,
                        thread::WaitReason::Executive,
                        false,
                        false,
                        Some(4 * MS),
                    );
                } else {
                    crate::ke::wait::ke_pulse_event(&STRESS_EVENT, 1);
                    let _ = crate::ke::wait::ke_wait_for_single_object(
                        &STRESS_EVENT,
                        thread::WaitReason::Executive,
                        false,
                        false,
                        Some(2 * MS),
                    );
                }
            }
            0 => {
                sched::ke_yield_execution();
            }
            1 => {
                sched::ke_delay_execution_thread((x >> 8) % (2 * MS) + 1);
            }
            2 => {
                let mut h = ke::irql::KLockQueueHandle::new();
                STRESS_LOCK.acquire(&mut h);
                let v = STRESS_SHARED.load(Ordering::Relaxed);
                STRESS_SHARED.store(v + 1, Ordering::Relaxed);
                STRESS_LOCK.release(&mut h);
            }
            3 => {
                let t = &STRESS_TIMERS[(x >> 16) as usize % 8];
                timer::ke_set_timer_ex(
                    t,
                    -(((x >> 20) % (3 * MS)) as i64 + 1),
                    0,
                    Some(&STRESS_DPCS[(x >> 24) as usize % 8]),
                );
            }
            4 => {
                dpc::ke_insert_queue_dpc(&STRESS_DPCS[(x >> 12) as usize % 8], 0, 0);
            }
            _ => {
                let end = clock::ke_query_interrupt_time() + (x >> 4) % MS;
                while clock::ke_query_interrupt_time() < end {
                    core::hint::spin_loop();
                }
            }
        }
    }
    STRESS_DONE.fetch_add(1, Ordering::SeqCst);
}

/// The stress run behind `cargo xtask stress` (`/STRESS=<seconds>`): many
/// threads at mixed priorities on every processor for `seconds` of
/// emulated time; returns whether every thread finished.
pub fn stress(seconds: u64) -> bool {
    STRESS_COUNT.store(0, Ordering::SeqCst);
    STRESS_DONE.store(0, Ordering::SeqCst);
    STRESS_END.store(
        clock::ke_query_interrupt_time() + seconds * 1000 * MS,
        Ordering::SeqCst,
    );
    let threads = 6 * ke::processor_count() as usize;
    // Stay above the workers while creating them.
    let me = sched::current_thread_id();
    let old = sched::ke_set_priority_thread(me, 15);
    for i in 0..threads {
        spawn("stress", 4 + (i % 10) as u8, u64::MAX, stress_worker, i);
    }
    sched::ke_set_priority_thread(me, old);
    let finished = wait_until((seconds + 30) * 1000, || {
        STRESS_DONE.load(Ordering::SeqCst) == threads as u32
    });
    // Drain the items left: produced == consumed + remaining (no lost count).
    let mut remaining = 0u64;
    while crate::ke::wait::ke_wait_for_single_object(
        &STRESS_ITEMS,
        thread::WaitReason::Executive,
        false,
        false,
        Some(0),
    ) == nt::status::STATUS_SUCCESS
    {
        remaining += 1;
    }
    let produced = STRESS_PRODUCED.swap(0, Ordering::SeqCst);
    let consumed = STRESS_CONSUMED.swap(0, Ordering::SeqCst);
    let counted = produced == consumed + remaining;
    let mutex_ok = STRESS_MUTANT_COUNTER.swap(0, Ordering::SeqCst)
        == STRESS_MUTANT_EXPECTED.swap(0, Ordering::SeqCst);
    let ok = finished && counted && mutex_ok;
    if !counted {
        crate::dbg_println!("STRESS semaphore accounting: produced {produced} consumed {consumed} remaining {remaining}");
    }
    if !mutex_ok {
        crate::dbg_println!("STRESS mutant-protected counter lost updates");
    }
    for t in STRESS_TIMERS.iter() {
        timer::ke_cancel_timer(t);
    }
    crate::dbg_println!(
        "STRESS {} threads={threads} operations={} lock_updates={} dpcs={} processors={}",
        if ok { "PASS" } else { "FAIL" },
        STRESS_COUNT.load(Ordering::SeqCst),
        STRESS_SHARED.load(Ordering::SeqCst),
        STRESS_DPC_RUNS.load(Ordering::SeqCst),
        ke::processor_count()
    );
    ok
}

fn t_smp_stress_mixed() -> TestResult {
    check(
        stress(3),
        "mixed stress threads did not all finish (hang or lost wakeup)",
    )
}

fn t_smp_stress() -> TestResult {
    STRESS_COUNT.store(0, Ordering::SeqCst);
    STRESS_DONE.store(0, Ordering::SeqCst);
    let threads = 4 * ke::processor_count() as usize;
    for i in 0..threads {
        spawn(
            "stress",
            6 + (i % 5) as u8,
            u64::MAX,
            |i| {
                for k in 0..40u64 {
                    STRESS_COUNT.fetch_add(1, Ordering::SeqCst);
                    match (i as u64 + k) % 3 {
                        0 => {
                            sched::ke_yield_execution();
                        }
                        1 => {
                            sched::ke_delay_execution_thread(MS);
                        }
                        _ => {
                            let end = clock::ke_query_interrupt_time() + MS;
                            while clock::ke_query_interrupt_time() < end {
                                core::hint::spin_loop();
                            }
                        }
                    }
                }
                STRESS_DONE.fetch_add(1, Ordering::SeqCst);
            },
            i,
        );
    }
    check(
        wait_until(20_000, || {
            STRESS_DONE.load(Ordering::SeqCst) == threads as u32
        }),
        "stress threads did not all finish (lost wakeup or hang)",
    )?;
    check(
        STRESS_COUNT.load(Ordering::SeqCst) == threads as u64 * 40,
        "stress iterations lost",
    )
}

/// The kernel-core tests, run after the phase-0 tests.
static DEPTH_DPC_SAW: AtomicU32 = AtomicU32::new(0);
static DEPTH_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| {
        DEPTH_DPC_SAW.store(1 + ke::intr::in_interrupt() as u32, Ordering::SeqCst);
    },
    0,
);
/// Per processor: rounds done, and rounds where a thread switched in by
/// the dispatch interrupt believed it was inside an interrupt.
static DEPTH_ROUNDS: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
static DEPTH_WRONG: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
const DEPTH_ROUNDS_WANTED: u32 = 30;

/// The interrupt depth is exact across context switches: a thread pinned to
/// each processor (up to 4) sleeps a tick at a time, so the dispatch
/// interrupt switches it in each round, having switched out another thread
/// (or the idle thread) inside that interrupt; at PASSIVE_LEVEL and at
/// DISPATCH_LEVEL it must not count as interrupt service, while a DPC must.
fn t_interrupt_depth_follows_threads() -> TestResult {
    DEPTH_DPC_SAW.store(0, Ordering::SeqCst);
    check(
        dpc::ke_insert_queue_dpc(&DEPTH_DPC, 0, 0),
        "KeInsertQueueDpc returned FALSE for an idle DPC",
    )?;
    check(
        wait_until(1000, || DEPTH_DPC_SAW.load(Ordering::SeqCst) != 0),
        "the DPC did not run",
    )?;
    check(
        DEPTH_DPC_SAW.load(Ordering::SeqCst) == 2,
        "a DPC did not count as interrupt service",
    )?;
    check(
        !ke::intr::in_interrupt(),
        "the test thread counts as interrupt service",
    )?;
    let n = (ke::processor_count() as usize).min(4);
    for cpu in 0..n {
        DEPTH_ROUNDS[cpu].store(0, Ordering::SeqCst);
        DEPTH_WRONG[cpu].store(0, Ordering::SeqCst);
        spawn(
            "intr-depth",
            12,
            1 << cpu,
            |cpu| {
                for _ in 0..DEPTH_ROUNDS_WANTED {
                    sleep_ms(1);
                    let passive = ke::intr::in_interrupt();
                    let old = ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
                    let raised = ke::intr::in_interrupt();
                    ke::irql::ke_lower_irql(old);
                    if passive || raised {
                        DEPTH_WRONG[cpu].fetch_add(1, Ordering::SeqCst);
                    }
                    DEPTH_ROUNDS[cpu].fetch_add(1, Ordering::SeqCst);
                }
            },
            cpu,
        );
    }
    let done = wait_until(20_000, || {
        (0..n).all(|c| DEPTH_ROUNDS[c].load(Ordering::SeqCst) == DEPTH_ROUNDS_WANTED)
    });
    check(done, "the pinned threads did not finish their rounds")?;
    check(
        (0..n).all(|c| DEPTH_WRONG[c].load(Ordering::SeqCst) == 0),
        "a thread switched in by the dispatch interrupt counted as interrupt service",
    )
}

pub const TESTS: &[Test] = &[
    ("ke.sched.preemption", t_preemption),
    ("ke.sched.round_robin_on_quantum_end", t_round_robin),
    ("ke.sched.yield_nothing_ready", t_yield),
    ("ke.sched.extended_state_preserved", t_extended_state),
    (
        "ke.thread.initial_extended_state_is_default",
        t_initial_extended_state,
    ),
    ("ke.sched.every_processor_runs_threads", t_every_processor),
    ("ke.dpc.runs_at_dispatch_level", t_dpc),
    ("ke.dpc.targeted", t_targeted_dpc),
    (
        "ke.intr.depth_follows_threads",
        t_interrupt_depth_follows_threads,
    ),
    ("ke.timer.one_shot_dpc", t_timer_dpc),
    ("ke.timer.periodic", t_periodic_timer),
    ("ke.delay_execution", t_delay),
    ("ke.idle_halt_time_counted", t_idle_halt_time),
    ("ke.smp.stress", t_smp_stress),
    ("ke.smp.stress_mixed", t_smp_stress_mixed),
    ("ke.intr.connect_rtc_interrupt", t_interrupt_object),
    ("ke.spinlock.exclusion", t_spin_locks),
    ("ke.thread.terminated_threads_reaped", t_threads_reaped),
    ("ke.apc.kernel_apcs_and_critical_region", t_kernel_apcs),
    ("ke.apc.kernel_apc_during_delay", t_kernel_apc_during_delay),
    (
        "ke.apc.user_apc_and_alert_end_alertable_waits",
        t_user_apc_and_alert,
    ),
    ("ke.wait.event_ping_pong", t_event_ping_pong),
    ("ke.wait.boost_then_decay", t_boost_then_decay),
    ("ke.wait.statuses", t_wait_statuses),
    ("ke.wait.alertable_object_wait", t_alertable_object_wait),
    (
        "ke.thread.reference_outlives_reaping",
        t_thread_reference_outlives_reaping,
    ),
    ("ke.wait.recorded_for_kd", t_wait_record),
    ("ke.dpc_apc.remove_queued", t_remove_queued_dpc_and_apc),
    ("ke.kd.walk_while_threads_die", t_kd_walk_while_threads_die),
];

static RTC_ISR_IRQL: AtomicU8 = AtomicU8::new(0xFF);
static RTC_DPC_RUNS: AtomicU64 = AtomicU64::new(0);
static RTC_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| {
        RTC_DPC_RUNS.fetch_add(1, Ordering::SeqCst);
    },
    0,
);

/// The RTC's periodic interrupt (ISA IRQ 8) through the I/O APIC: the
/// service routine runs at the device IRQL and queues a DPC.
fn t_interrupt_object() -> TestResult {
    let madt = ke::madt().ok_or("no MADT")?;
    let (gsi, flags) = madt.isa_override[8];
    RTC_DPC_RUNS.store(0, Ordering::SeqCst);
    let obj = ke::intr::io_connect_interrupt(
        gsi,
        8,
        flags,
        |_, _| {
            RTC_ISR_IRQL.store(ke::irql(), Ordering::SeqCst);
            // Reading register C acknowledges the RTC interrupt.
            crate::hal::outb(0x70, 0x0C);
            let _ = crate::hal::inb(0x71);
            dpc::ke_insert_queue_dpc(&RTC_DPC, 0, 0);
            true
        },
        0,
    )
    .map_err(|_| "IoConnectInterrupt failed")?;
    // Periodic interrupt at 64 Hz (rate 10), enable PIE.
    let f = crate::hal::disable_interrupts();
    crate::hal::outb(0x70, 0x8A);
    let a = crate::hal::inb(0x71);
    crate::hal::outb(0x70, 0x8A);
    crate::hal::outb(0x71, (a & 0xF0) | 10);
    crate::hal::outb(0x70, 0x8B);
    let b = crate::hal::inb(0x71);
    crate::hal::outb(0x70, 0x8B);
    crate::hal::outb(0x71, b | 0x40);
    crate::hal::outb(0x70, 0x0C);
    let _ = crate::hal::inb(0x71);
    crate::hal::restore_interrupts(f);
    let ok = wait_until(2000, || RTC_DPC_RUNS.load(Ordering::SeqCst) >= 3);
    // Disable PIE again and disconnect.
    crate::hal::outb(0x70, 0x8B);
    let b = crate::hal::inb(0x71);
    crate::hal::outb(0x70, 0x8B);
    crate::hal::outb(0x71, b & !0x40);
    let count = obj.count.load(Ordering::SeqCst);
    ke::intr::io_disconnect_interrupt(obj);
    check(
        ok,
        "no RTC interrupts reached the connected service routine",
    )?;
    check(
        RTC_ISR_IRQL.load(Ordering::SeqCst) == 8,
        "the service routine did not run at its device IRQL",
    )?;
    check(count >= 3, "interrupt object count wrong")
}

static QLOCK: ke::irql::KQueuedSpinLock = ke::irql::KQueuedSpinLock::new();
static SPIN: ke::irql::KSpinLock = ke::irql::KSpinLock::new();
static LOCKED_COUNTER: AtomicU64 = AtomicU64::new(0);
static LOCK_DONE: AtomicU32 = AtomicU32::new(0);

/// Spin locks and queued spin locks exclude each other across processors:
/// a non-atomic read-modify-write under the lock never loses an update.
fn t_spin_locks() -> TestResult {
    LOCKED_COUNTER.store(0, Ordering::SeqCst);
    LOCK_DONE.store(0, Ordering::SeqCst);
    let n = ke::processor_count().max(2);
    for i in 0..n {
        spawn(
            "locker",
            9,
            u64::MAX,
            |i| {
                for k in 0..2000 {
                    if (i + k) % 2 == 0 {
                        let mut h = ke::irql::KLockQueueHandle::new();
                        QLOCK.acquire(&mut h);
                        let v = LOCKED_COUNTER.load(Ordering::Relaxed);
                        core::hint::spin_loop();
                        LOCKED_COUNTER.store(v + 1, Ordering::Relaxed);
                        QLOCK.release(&mut h);
                    } else {
                        // Both locks guard the counter: take them in a fixed order.
                        let mut h = ke::irql::KLockQueueHandle::new();
                        QLOCK.acquire(&mut h);
                        let old = SPIN.acquire();
                        let v = LOCKED_COUNTER.load(Ordering::Relaxed);
                        LOCKED_COUNTER.store(v + 1, Ordering::Relaxed);
                        SPIN.release(old);
                        QLOCK.release(&mut h);
                    }
                }
                LOCK_DONE.fetch_add(1, Ordering::SeqCst);
            },
            i as usize,
        );
    }
    check(
        wait_until(20_000, || LOCK_DONE.load(Ordering::SeqCst) == n),
        "lock threads did not finish",
    )?;
    check(
        LOCKED_COUNTER.load(Ordering::SeqCst) == n as u64 * 2000,
        "an update under a spin lock was lost",
    )?;
    check(
        !QLOCK.is_held() && SPIN.owner() == 0,
        "a lock was left held",
    )
}

static REAP_DONE: AtomicU32 = AtomicU32::new(0);

/// Terminated threads are reaped: after 300 short-lived threads the number
/// of live threads is back where it was and their memory is back in the pool.
fn t_threads_reaped() -> TestResult {
    // Let earlier tests' threads finish and be reaped.
    sleep_ms(50);
    let before = thread::live_threads();
    let pool_before = crate::ex::pool::POOL.bytes_in_use();
    REAP_DONE.store(0, Ordering::SeqCst);
    for _ in 0..300 {
        spawn(
            "short",
            8,
            u64::MAX,
            |_| {
                REAP_DONE.fetch_add(1, Ordering::SeqCst);
            },
            0,
        );
    }
    check(
        wait_until(10_000, || REAP_DONE.load(Ordering::SeqCst) == 300),
        "short-lived threads did not all run",
    )?;
    // The last ones are reaped when their processors next switch.
    sleep_ms(50);
    check(
        wait_until(2000, || thread::live_threads() == before),
        "terminated threads were not reaped",
    )?;
    let grown = crate::ex::pool::POOL
        .bytes_in_use()
        .saturating_sub(pool_before);
    check(grown < 64 * 1024, "300 thread lifetimes leaked pool memory")
}

use crate::ke::apc::{self, ApcMode, KApc};

static APC_RAN_IN: AtomicU32 = AtomicU32::new(0);
static APC_KERNEL_IRQL: AtomicU8 = AtomicU8::new(0xFF);
static APC_NORMAL_IRQL: AtomicU8 = AtomicU8::new(0xFF);
static APC_NORMAL_RUNS: AtomicU32 = AtomicU32::new(0);
static APC_TARGET_STOP: AtomicBool = AtomicBool::new(false);
static APC_TARGET_READY: AtomicBool = AtomicBool::new(false);
static APC_STATUS: AtomicU32 = AtomicU32::new(0);
static APC_ELAPSED: AtomicU64 = AtomicU64::new(0);

fn record_kernel(_: &KApc, _: &mut Option<apc::NormalRoutine>, _: &mut usize) {
    APC_RAN_IN.store(sched::current_thread_id(), Ordering::SeqCst);
    APC_KERNEL_IRQL.store(ke::irql(), Ordering::SeqCst);
}

static SPECIAL_APC: KApc = KApc::new(record_kernel, None, 0, ApcMode::KernelMode);
static NORMAL_APC: KApc = KApc::new(
    record_kernel,
    Some(|_, _, _| {
        APC_NORMAL_IRQL.store(ke::irql(), Ordering::SeqCst);
        APC_NORMAL_RUNS.fetch_add(1, Ordering::SeqCst);
    }),
    0,
    ApcMode::KernelMode,
);
static USER_APC: KApc = KApc::new(
    |_, _, _| {},
    Some(|_, _, _| {
        APC_RAN_IN.store(sched::current_thread_id(), Ordering::SeqCst);
        APC_NORMAL_RUNS.fetch_add(1, Ordering::SeqCst);
    }),
    0,
    ApcMode::UserMode,
);

fn reset_apc_probe() {
    APC_RAN_IN.store(0, Ordering::SeqCst);
    APC_KERNEL_IRQL.store(0xFF, Ordering::SeqCst);
    APC_NORMAL_IRQL.store(0xFF, Ordering::SeqCst);
    APC_NORMAL_RUNS.store(0, Ordering::SeqCst);
    APC_TARGET_STOP.store(false, Ordering::SeqCst);
    APC_TARGET_READY.store(false, Ordering::SeqCst);
}

/// Kernel APCs to a running thread: the special APC runs in that thread at
/// APC_LEVEL; a normal APC waits while the thread is in a critical region,
/// then its normal routine runs at PASSIVE_LEVEL.
fn t_kernel_apcs() -> TestResult {
    reset_apc_probe();
    let tid = spawn(
        "apc-target",
        8,
        u64::MAX,
        |_| {
            apc::ke_enter_critical_region();
            APC_TARGET_READY.store(true, Ordering::SeqCst);
            let t0 = clock::ke_query_interrupt_time();
            while clock::ke_query_interrupt_time() < t0 + 200 * MS {
                core::hint::spin_loop();
            }
            // No normal APC may have run inside the critical region.
            if APC_NORMAL_RUNS.load(Ordering::SeqCst) != 0 {
                APC_STATUS.store(1, Ordering::SeqCst);
            }
            apc::ke_leave_critical_region();
            while !APC_TARGET_STOP.load(Ordering::SeqCst) {
                sched::ke_yield_execution();
            }
        },
        0,
    );
    APC_STATUS.store(0, Ordering::SeqCst);
    check(
        wait_until(2000, || APC_TARGET_READY.load(Ordering::SeqCst)),
        "target never ran",
    )?;
    check(
        apc::ke_insert_queue_apc(&SPECIAL_APC, tid, 0, 0, 0),
        "special APC not queued",
    )?;
    check(
        wait_until(1000, || APC_RAN_IN.load(Ordering::SeqCst) == tid),
        "special kernel APC did not run in the target thread",
    )?;
    check(
        APC_KERNEL_IRQL.load(Ordering::SeqCst) == ke::APC_LEVEL,
        "kernel routine not at APC_LEVEL",
    )?;
    check(
        apc::ke_insert_queue_apc(&NORMAL_APC, tid, 0, 0, 0),
        "normal APC not queued",
    )?;
    check(
        !apc::ke_insert_queue_apc(&NORMAL_APC, tid, 0, 0, 0)
            || APC_NORMAL_RUNS.load(Ordering::SeqCst) > 0,
        "an APC was queued twice",
    )?;
    check(
        wait_until(2000, || APC_NORMAL_RUNS.load(Ordering::SeqCst) == 1),
        "normal kernel APC never ran after the critical region",
    )?;
    APC_TARGET_STOP.store(true, Ordering::SeqCst);
    check(
        APC_STATUS.load(Ordering::SeqCst) == 0,
        "normal APC ran inside a critical region",
    )?;
    check(
        APC_NORMAL_IRQL.load(Ordering::SeqCst) == ke::PASSIVE_LEVEL,
        "normal routine not at PASSIVE_LEVEL",
    )
}

/// A kernel APC to a thread in a (non-alertable) delay is delivered at once
/// and the delay still lasts its full time.
fn t_kernel_apc_during_delay() -> TestResult {
    reset_apc_probe();
    let tid = spawn(
        "apc-sleeper",
        8,
        u64::MAX,
        |_| {
            APC_TARGET_READY.store(true, Ordering::SeqCst);
            let t0 = clock::ke_query_interrupt_time();
            let s = sched::ke_delay_execution_thread_ex(false, false, 400 * MS);
            APC_STATUS.store(s.0 as u32, Ordering::SeqCst);
            APC_ELAPSED.store(clock::ke_query_interrupt_time() - t0, Ordering::SeqCst);
            APC_TARGET_STOP.store(true, Ordering::SeqCst);
        },
        0,
    );
    check(
        wait_until(2000, || APC_TARGET_READY.load(Ordering::SeqCst)),
        "sleeper never ran",
    )?;
    sleep_ms(50);
    let queued_at = clock::ke_query_interrupt_time();
    check(
        apc::ke_insert_queue_apc(&SPECIAL_APC, tid, 0, 0, 0),
        "APC not queued",
    )?;
    check(
        wait_until(1000, || APC_RAN_IN.load(Ordering::SeqCst) == tid),
        "kernel APC not delivered to the sleeping thread",
    )?;
    check(
        clock::ke_query_interrupt_time() - queued_at < 200 * MS,
        "kernel APC waited for the delay to end",
    )?;
    check(
        wait_until(3000, || APC_TARGET_STOP.load(Ordering::SeqCst)),
        "sleeper never woke",
    )?;
    check(
        APC_STATUS.load(Ordering::SeqCst) == 0,
        "delay did not return STATUS_SUCCESS",
    )?;
    check(
        APC_ELAPSED.load(Ordering::SeqCst) >= 400 * MS,
        "the APC cut the delay short",
    )
}

/// A user APC ends an alertable user-mode wait with STATUS_USER_APC after
/// running in that thread; KeAlertThread ends an alertable wait with STATUS_ALERTED.
fn t_user_apc_and_alert() -> TestResult {
    reset_apc_probe();
    APC_STATUS.store(0, Ordering::SeqCst);
    let tid = spawn(
        "apc-alertable",
        8,
        u64::MAX,
        |_| {
            APC_TARGET_READY.store(true, Ordering::SeqCst);
            let s = sched::ke_delay_execution_thread_ex(true, true, 5000 * MS);
            APC_STATUS.store(s.0 as u32, Ordering::SeqCst);
            APC_TARGET_STOP.store(true, Ordering::SeqCst);
        },
        0,
    );
    check(
        wait_until(2000, || APC_TARGET_READY.load(Ordering::SeqCst)),
        "target never ran",
    )?;
    sleep_ms(30);
    check(
        apc::ke_insert_queue_apc(&USER_APC, tid, 0, 0, 0),
        "user APC not queued",
    )?;
    check(
        wait_until(1000, || APC_TARGET_STOP.load(Ordering::SeqCst)),
        "alertable wait not ended by a user APC",
    )?;
    check(
        APC_STATUS.load(Ordering::SeqCst) == nt::status::STATUS_USER_APC.0 as u32,
        "alertable wait did not return STATUS_USER_APC",
    )?;
    check(
        APC_RAN_IN.load(Ordering::SeqCst) == tid,
        "user APC did not run in the target",
    )?;

    APC_TARGET_STOP.store(false, Ordering::SeqCst);
    APC_TARGET_READY.store(false, Ordering::SeqCst);
    let tid = spawn(
        "alertable",
        8,
        u64::MAX,
        |_| {
            APC_TARGET_READY.store(true, Ordering::SeqCst);
            let s = sched::ke_delay_execution_thread_ex(false, true, 5000 * MS);
            APC_STATUS.store(s.0 as u32, Ordering::SeqCst);
            APC_TARGET_STOP.store(true, Ordering::SeqCst);
        },
        0,
    );
    check(
        wait_until(2000, || APC_TARGET_READY.load(Ordering::SeqCst)),
        "target never ran",
    )?;
    sleep_ms(30);
    apc::ke_alert_thread(tid, ApcMode::KernelMode);
    check(
        wait_until(1000, || APC_TARGET_STOP.load(Ordering::SeqCst)),
        "alert did not end the wait",
    )?;
    check(
        APC_STATUS.load(Ordering::SeqCst) == nt::status::STATUS_ALERTED.0 as u32,
        "alerted wait did not return STATUS_ALERTED",
    )
}

use crate::ke::wait::{self as kw, KEvent, KMutant, KSemaphore, ThreadObject};
use ::ke::objects::WaitType;
use thread::WaitReason;

static PING: KEvent = KEvent::new(false, false);
static PONG: KEvent = KEvent::new(false, false);
static PINGPONG_ROUNDS: AtomicU32 = AtomicU32::new(0);

/// Two threads hand a synchronization event pair back and forth: every
/// round needs a wake-up, none may be lost. The woken thread gets the wait
/// boost (+1 over its base 8) and decays back at quantum end.
fn t_event_ping_pong() -> TestResult {
    PINGPONG_ROUNDS.store(0, Ordering::SeqCst);
    let ponger = spawn(
        "ponger",
        8,
        u64::MAX,
        |_| {
            for _ in 0..500 {
                if kw::ke_wait_for_single_object(
                    &PING,
                    WaitReason::Executive,
                    false,
                    false,
                    Some(2000 * MS),
                ) != nt::status::STATUS_SUCCESS
                {
                    return;
                }
                kw::ke_set_event(&PONG, 1);
            }
        },
        0,
    );
    for _ in 0..500 {
        kw::ke_set_event(&PING, 1);
        let s = kw::ke_wait_for_single_object(
            &PONG,
            WaitReason::Executive,
            false,
            false,
            Some(2000 * MS),
        );
        if s != nt::status::STATUS_SUCCESS {
            return Err("ping-pong wait timed out (lost wake-up)");
        }
        PINGPONG_ROUNDS.fetch_add(1, Ordering::SeqCst);
    }
    check(
        wait_until(2000, || {
            sched::thread_state(ponger).is_none_or(|s| s == thread::ThreadState::Terminated)
        }),
        "ponger did not finish",
    )?;
    check(PINGPONG_ROUNDS.load(Ordering::SeqCst) == 500, "rounds lost")
}

static WAKER_EVENT: KEvent = KEvent::new(false, false);
static BOOSTED_TO: AtomicU8 = AtomicU8::new(0);
static DECAYED_TO: AtomicU8 = AtomicU8::new(0);

fn t_boost_then_decay() -> TestResult {
    BOOSTED_TO.store(0, Ordering::SeqCst);
    DECAYED_TO.store(0, Ordering::SeqCst);
    let cpu = me_mask();
    let tid = spawn(
        "boosted",
        8,
        cpu,
        |_| {
            kw::ke_wait_for_single_object(&WAKER_EVENT, WaitReason::Executive, false, false, None);
            BOOSTED_TO.store(
                sched::ke_query_priority_thread(sched::current_thread_id()).unwrap_or(0),
                Ordering::SeqCst,
            );
            // Spin several quanta: quantum end decays the boost back to base.
            let t0 = clock::ke_query_interrupt_time();
            while clock::ke_query_interrupt_time() < t0 + 8 * clock::TIME_INCREMENT {
                core::hint::spin_loop();
            }
            DECAYED_TO.store(
                sched::ke_query_priority_thread(sched::current_thread_id()).unwrap_or(0),
                Ordering::SeqCst,
            );
        },
        0,
    );
    sleep_ms(30);
    check(
        sched::thread_state(tid) == Some(thread::ThreadState::Waiting),
        "thread is not waiting",
    )?;
    kw::ke_set_event(&WAKER_EVENT, 2); // EVENT_INCREMENT-style boost of 2
    check(
        wait_until(3000, || DECAYED_TO.load(Ordering::SeqCst) != 0),
        "boosted thread did not finish",
    )?;
    check(
        BOOSTED_TO.load(Ordering::SeqCst) == 10,
        "wait satisfaction did not boost 8 -> 10",
    )?;
    check(
        DECAYED_TO.load(Ordering::SeqCst) == 8,
        "boost did not decay back to the base priority",
    )
}

static MUTANT: KMutant = KMutant::new();
static SEM: KSemaphore = KSemaphore::new(0, 2);
static EV_A: KEvent = KEvent::new(true, false);
static EV_B: KEvent = KEvent::new(true, false);
static RESULT: AtomicU32 = AtomicU32::new(u32::MAX);

/// The status codes of every wait outcome.
fn t_wait_statuses() -> TestResult {
    use nt::status::*;
    // Timeout and poll.
    let s =
        kw::ke_wait_for_single_object(&EV_A, WaitReason::Executive, false, false, Some(30 * MS));
    check(
        s == STATUS_TIMEOUT,
        "timed wait did not return STATUS_TIMEOUT",
    )?;
    let s = kw::ke_wait_for_single_object(&EV_A, WaitReason::Executive, false, false, Some(0));
    check(s == STATUS_TIMEOUT, "poll did not return STATUS_TIMEOUT")?;
    // WaitAny returns the index of the signaled object.
    kw::ke_set_event(&EV_B, 0);
    let s = kw::ke_wait_for_multiple_objects(
        &[&EV_A, &EV_B],
        WaitType::WaitAny,
        WaitReason::Executive,
        false,
        false,
        None,
    );
    check(s == NtStatus(1), "WaitAny did not return STATUS_WAIT_1")?;
    // WaitAll blocks until both are signaled.
    RESULT.store(u32::MAX, Ordering::SeqCst);
    spawn(
        "waitall",
        9,
        u64::MAX,
        |_| {
            let s = kw::ke_wait_for_multiple_objects(
                &[&EV_A, &EV_B],
                WaitType::WaitAll,
                WaitReason::Executive,
                false,
                false,
                Some(2000 * MS),
            );
            RESULT.store(s.0 as u32, Ordering::SeqCst);
        },
        0,
    );
    sleep_ms(30);
    check(
        RESULT.load(Ordering::SeqCst) == u32::MAX,
        "WaitAll finished with one object signaled",
    )?;
    kw::ke_set_event(&EV_A, 0);
    check(
        wait_until(1000, || RESULT.load(Ordering::SeqCst) == 0),
        "WaitAll not satisfied by both",
    )?;
    kw::ke_reset_event(&EV_A);
    kw::ke_reset_event(&EV_B);
    // A mutant owned by a thread that exits is abandoned.
    spawn(
        "mutant-owner",
        9,
        u64::MAX,
        |_| {
            kw::ke_wait_for_single_object(&MUTANT, WaitReason::Executive, false, false, None);
        },
        0,
    );
    sleep_ms(30);
    let s = kw::ke_wait_for_single_object(
        &MUTANT,
        WaitReason::Executive,
        false,
        false,
        Some(1000 * MS),
    );
    check(
        s == STATUS_ABANDONED_WAIT_0,
        "abandoned mutant did not return STATUS_ABANDONED_WAIT_0",
    )?;
    let s = kw::ke_wait_for_single_object(&MUTANT, WaitReason::Executive, false, false, Some(0));
    check(s == STATUS_SUCCESS, "recursive acquisition failed")?;
    check(
        kw::ke_release_mutant(&MUTANT, false) == Ok(-1),
        "release of a recursively owned mutant",
    )?;
    check(
        kw::ke_release_mutant(&MUTANT, false) == Ok(0),
        "final release",
    )?;
    check(
        kw::ke_release_mutant(&MUTANT, false) == Err(STATUS_MUTANT_NOT_OWNED),
        "releasing an unowned mutant was not STATUS_MUTANT_NOT_OWNED",
    )?;
    // Semaphores.
    check(
        kw::ke_release_semaphore(&SEM, 0, 3) == Err(STATUS_SEMAPHORE_LIMIT_EXCEEDED),
        "semaphore limit not enforced",
    )?;
    check(
        kw::ke_release_semaphore(&SEM, 0, 2) == Ok(0),
        "semaphore release",
    )?;
    for _ in 0..2 {
        let s = kw::ke_wait_for_single_object(&SEM, WaitReason::Executive, false, false, Some(0));
        check(s == STATUS_SUCCESS, "semaphore count not available")?;
    }
    let s = kw::ke_wait_for_single_object(&SEM, WaitReason::Executive, false, false, Some(0));
    check(s == STATUS_TIMEOUT, "semaphore went below zero")?;
    // A thread is signaled when it terminates (join).
    let t = spawn("joinee", 8, u64::MAX, |_| sleep_ms(20), 0);
    let joinee = ThreadObject::new(t).ok_or("joinee thread not found")?;
    let s = kw::ke_wait_for_single_object(
        &joinee,
        WaitReason::Executive,
        false,
        false,
        Some(2000 * MS),
    );
    check(
        s == STATUS_SUCCESS,
        "waiting on a thread did not end at its termination",
    )?;
    // A timer is a waitable object.
    let s =
        kw::ke_wait_for_single_object(&WAIT_TIMER, WaitReason::Executive, false, false, Some(0));
    check(s == STATUS_TIMEOUT, "an unset timer is signaled")?;
    timer::ke_set_timer_ex(&WAIT_TIMER, -(40 * MS as i64), 0, None);
    let t0 = clock::ke_query_interrupt_time();
    let s = kw::ke_wait_for_single_object(
        &WAIT_TIMER,
        WaitReason::Executive,
        false,
        false,
        Some(2000 * MS),
    );
    check(
        s == STATUS_SUCCESS,
        "wait on a timer did not end when it expired",
    )?;
    check(
        clock::ke_query_interrupt_time() - t0 >= 30 * MS,
        "timer wait ended too early",
    )
}

static WAIT_TIMER: timer::KTimer = timer::KTimer::new();

/// Alertable object waits: a user APC ends a user-mode alertable wait.
fn t_alertable_object_wait() -> TestResult {
    reset_apc_probe();
    APC_STATUS.store(0, Ordering::SeqCst);
    let tid = spawn(
        "alertable-obj",
        8,
        u64::MAX,
        |_| {
            APC_TARGET_READY.store(true, Ordering::SeqCst);
            let s = kw::ke_wait_for_single_object(&EV_A, WaitReason::UserRequest, true, true, None);
            APC_STATUS.store(s.0 as u32, Ordering::SeqCst);
            APC_TARGET_STOP.store(true, Ordering::SeqCst);
        },
        0,
    );
    check(
        wait_until(2000, || APC_TARGET_READY.load(Ordering::SeqCst)),
        "target never ran",
    )?;
    sleep_ms(30);
    apc::ke_insert_queue_apc(&USER_APC, tid, 0, 0, 0);
    check(
        wait_until(1000, || APC_TARGET_STOP.load(Ordering::SeqCst)),
        "user APC did not end the wait",
    )?;
    check(
        APC_STATUS.load(Ordering::SeqCst) == nt::status::STATUS_USER_APC.0 as u32,
        "object wait did not return STATUS_USER_APC",
    )
}

static SHORT_RAN: AtomicBool = AtomicBool::new(false);

/// A reference to a thread keeps the thread object: after the thread has
/// exited, been reaped and its id been given to a new thread, waiting on the
/// old reference is satisfied at once (the old thread terminated) and the
/// object still reads as the old thread.
fn t_thread_reference_outlives_reaping() -> TestResult {
    SHORT_RAN.store(false, Ordering::SeqCst);
    let before = thread::live_threads();
    let t1 = thread::create_system_thread(
        "short-lived",
        9,
        u64::MAX,
        |_| SHORT_RAN.store(true, Ordering::SeqCst),
        0,
    )
    .map_err(|_| "thread not created")?;
    let old = ThreadObject::new(t1).ok_or("no reference to a created thread")?;
    sched::ready_thread(t1).map_err(|_| "thread not started")?;
    check(
        wait_until(2000, || {
            SHORT_RAN.load(Ordering::SeqCst) && thread::live_threads() == before
        }),
        "the thread did not run, exit and get reaped",
    )?;
    check(
        sched::reference_thread(t1).is_none(),
        "a reaped thread is still in the thread table",
    )?;
    // Thread ids are reused, most recently freed first.
    let t2 = thread::create_system_thread("id-reuser", 8, u64::MAX, |_| sleep_ms(10), 0)
        .map_err(|_| "second thread not created")?;
    let reused = t2 == t1;
    let s = kw::ke_wait_for_single_object(&old, WaitReason::Executive, false, false, Some(0));
    let name_ok = old.thread().name() == "short-lived" && old.thread().id == t1;
    sched::ready_thread(t2).map_err(|_| "second thread not started")?;
    drop(old);
    check(reused, "the freed thread id was not reused")?;
    check(
        s == nt::status::STATUS_SUCCESS,
        "a wait on an exited thread did not see it terminated (it waited on the id's new owner)",
    )?;
    check(
        name_ok,
        "the referenced thread object changed under the reference",
    )?;
    check(
        wait_until(2000, || thread::live_threads() == before),
        "threads left behind",
    )
}

static RECORD_EVENT: KEvent = KEvent::new(true, false);
static RECORD_STATUS: AtomicU32 = AtomicU32::new(0);

/// A waiting thread's wait is recorded as it is (what `!thread` prints):
/// reason, mode, alertability, the IRQL and the tick count when it blocked.
fn t_wait_record() -> TestResult {
    RECORD_STATUS.store(u32::MAX, Ordering::SeqCst);
    kw::ke_reset_event(&RECORD_EVENT);
    let t0 = clock::ke_query_tick_count();
    let tid = spawn(
        "recorded",
        9,
        u64::MAX,
        |_| {
            let s = kw::ke_wait_for_single_object(
                &RECORD_EVENT,
                WaitReason::UserRequest,
                true,
                true,
                None,
            );
            RECORD_STATUS.store(s.0 as u32, Ordering::SeqCst);
        },
        0,
    );
    sleep_ms(100);
    let r = sched::wait_record(tid);
    let now = clock::ke_query_tick_count();
    apc::ke_alert_thread(tid, ApcMode::UserMode);
    check(
        wait_until(1000, || RECORD_STATUS.load(Ordering::SeqCst) != u32::MAX),
        "the waiting thread did not wake",
    )?;
    let r = r.ok_or("the thread was not waiting")?;
    check(
        r.reason == WaitReason::UserRequest,
        "wait reason not recorded",
    )?;
    check(
        r.mode == ::ke::apc::ProcessorMode::UserMode && r.alertable,
        "wait mode and alertability not recorded",
    )?;
    check(r.irql == ke::PASSIVE_LEVEL, "wait IRQL not recorded")?;
    check(
        (t0..=t0 + 2).contains(&r.start_tick) && now >= r.start_tick + 4,
        "the wait start tick is not when the thread blocked",
    )?;
    check(
        RECORD_STATUS.load(Ordering::SeqCst) == nt::status::STATUS_ALERTED.0 as u32,
        "a user-mode alert did not end the alertable user-mode wait",
    )
}

static REMOVED_DPC_RAN: AtomicBool = AtomicBool::new(false);
static REMOVED_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| REMOVED_DPC_RAN.store(true, Ordering::SeqCst),
    0,
);
static REMOVED_APC_RAN: AtomicBool = AtomicBool::new(false);
static REMOVED_APC: KApc = KApc::new(
    |_, _, _| {},
    Some(|_, _, _| REMOVED_APC_RAN.store(true, Ordering::SeqCst)),
    0,
    ApcMode::KernelMode,
);
static REMOVE_TARGET_GO: AtomicBool = AtomicBool::new(false);
static REMOVE_TARGET_DONE: AtomicBool = AtomicBool::new(false);

/// `KeRemoveQueueDpc` and `KeRemoveQueueApc` take a queued DPC or APC out
/// before it runs; removing it again reports FALSE.
fn t_remove_queued_dpc_and_apc() -> TestResult {
    REMOVED_DPC_RAN.store(false, Ordering::SeqCst);
    let old = ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
    let queued = dpc::ke_insert_queue_dpc(&REMOVED_DPC, 0, 0);
    let removed = dpc::ke_remove_queue_dpc(&REMOVED_DPC);
    let again = dpc::ke_remove_queue_dpc(&REMOVED_DPC);
    ke::irql::ke_lower_irql(old);
    check(queued && removed && !again, "KeRemoveQueueDpc results")?;
    check(
        !REMOVED_DPC_RAN.load(Ordering::SeqCst) && !REMOVED_DPC.is_inserted(),
        "a removed DPC ran or stayed queued",
    )?;
    REMOVED_APC_RAN.store(false, Ordering::SeqCst);
    REMOVE_TARGET_GO.store(false, Ordering::SeqCst);
    REMOVE_TARGET_DONE.store(false, Ordering::SeqCst);
    let tid = spawn(
        "apc-removal",
        8,
        u64::MAX,
        |_| {
            apc::ke_enter_critical_region();
            while !REMOVE_TARGET_GO.load(Ordering::SeqCst) {
                sched::ke_delay_execution_thread(MS);
            }
            apc::ke_leave_critical_region();
            sleep_ms(20);
            REMOVE_TARGET_DONE.store(true, Ordering::SeqCst);
        },
        0,
    );
    sleep_ms(20);
    let queued = apc::ke_insert_queue_apc(&REMOVED_APC, tid, 0, 0, 0);
    let removed = apc::ke_remove_queue_apc(&REMOVED_APC);
    let again = apc::ke_remove_queue_apc(&REMOVED_APC);
    REMOVE_TARGET_GO.store(true, Ordering::SeqCst);
    check(
        wait_until(2000, || REMOVE_TARGET_DONE.load(Ordering::SeqCst)),
        "APC target did not finish",
    )?;
    check(queued && removed && !again, "KeRemoveQueueApc results")?;
    check(
        !REMOVED_APC_RAN.load(Ordering::SeqCst) && !REMOVED_APC.is_inserted(),
        "a removed APC ran or stayed queued",
    )
}

static KD_WALK_STOP: AtomicBool = AtomicBool::new(false);
static KD_WALK_SPAWNED: AtomicU32 = AtomicU32::new(0);

/// kd walks the thread list while other processors create threads that
/// exit at once and are reaped: every walk reads each thread under a
/// reference, so none is freed under it (run with many processors).
fn t_kd_walk_while_threads_die() -> TestResult {
    KD_WALK_STOP.store(false, Ordering::SeqCst);
    KD_WALK_SPAWNED.store(0, Ordering::SeqCst);
    let before = thread::live_threads();
    let spawner = spawn(
        "spawner",
        9,
        !me_mask(),
        |_| {
            while !KD_WALK_STOP.load(Ordering::SeqCst) {
                if sched::start_system_thread("ephemeral", 9, u64::MAX, |_| {}, 0).is_ok() {
                    KD_WALK_SPAWNED.fetch_add(1, Ordering::SeqCst);
                }
                sched::ke_yield_execution();
            }
        },
        0,
    );
    let mut walks = 0u32;
    let mut seen = 0usize;
    let end = clock::ke_query_interrupt_time() + 300 * MS;
    while clock::ke_query_interrupt_time() < end {
        seen += ke::kdext::walk_threads_for_test();
        walks += 1;
    }
    KD_WALK_STOP.store(true, Ordering::SeqCst);
    let _ = spawner;
    check(walks > 0 && seen > 0, "no walks")?;
    check(
        ke::processor_count() < 2 || KD_WALK_SPAWNED.load(Ordering::SeqCst) > 0,
        "no threads were created meanwhile",
    )?;
    check(
        wait_until(3000, || thread::live_threads() == before),
        "threads left behind",
    )
}

/// `/CRASHTEST=DELAYATDISPATCH`: `KeDelayExecutionThread` at DISPATCH_LEVEL
/// must stop the system with IRQL_NOT_LESS_OR_EQUAL (0xA): parameters 0,
/// the IRQL (2), 0, the routine's address.
pub fn crash_delay_at_dispatch() {
    let _old = ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
    crate::dbg_println!("crash test: KeDelayExecutionThread at DISPATCH_LEVEL");
    sched::ke_delay_execution_thread(MS);
}

/// `/CRASHTEST=DPCWATCHDOG`: a processor that spins at DISPATCH_LEVEL
/// forever must stop the system with DPC_WATCHDOG_VIOLATION (1, the period
/// in ticks) after about 30 s, and the stop screen names where it spun.
pub fn crash_spin_at_dispatch() {
    let _old = ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
    crate::dbg_println!("crash test: spinning at DISPATCH_LEVEL");
    loop {
        core::hint::spin_loop();
    }
}

/// `/CRASHTEST=CLOCKWATCHDOG` (two or more processors): a processor that
/// spins with interrupts disabled takes no clock interrupt; the processor
/// watching it must stop the system with CLOCK_WATCHDOG_TIMEOUT after about
/// 30 s, and the freeze NMI must still show where it spun.
pub fn crash_spin_with_interrupts_disabled() {
    if ke::processor_count() < 2 {
        crate::dbg_println!("crash test: CLOCKWATCHDOG needs two processors");
        return;
    }
    let _old = ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
    crate::hal::disable_interrupts();
    crate::dbg_println!(
        "crash test: spinning with interrupts disabled on processor {}",
        ke::current_processor_number()
    );
    loop {
        core::hint::spin_loop();
    }
}

static CRASH_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| {
        crate::dbg_println!("crash test: NtYieldExecution inside a DPC routine");
        sched::ke_yield_execution();
    },
    0,
);

/// `/CRASHTEST=YIELDINDPC`: a yield from a DPC routine must stop the system
/// with ATTEMPTED_SWITCH_FROM_DPC (0xB8): parameters the current thread, 0
/// (no new thread), the stack pointer, 0.
pub fn crash_yield_in_dpc() {
    dpc::ke_insert_queue_dpc(&CRASH_DPC, 0, 0);
    sleep_ms(100);
}
