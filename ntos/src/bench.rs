//! In-kernel micro-benchmarks (`/BENCH`).
//!
//! Each benchmark checks that every measured operation succeeded and prints
//! `BENCH <name> <value> <unit>`, or `BENCH <name> FAILED <reason>` instead
//! of a figure. Every figure is the median of [`REPS`] repetitions; before
//! each repetition the benchmark waits until the zero page thread has no
//! free pages left to zero, so that it does not run (on this or another
//! processor) during the measurement. After the last benchmark the kernel
//! prints `BENCH-END`.
//!
//! Units: nanoseconds from the TSC, scaled by winload's calibration; with
//! `/BENCHTICKS` raw TSC ticks per operation instead. Under QEMU's
//! `-icount shift=0` the TSC advances one tick per guest instruction, so
//! `cargo xtask bench` boots a second time, on one processor, with
//! `-icount shift=0,sleep=off /BENCHTICKS`, and reports those ticks as
//! instruction counts (docs/bench.md).

use crate::dbg_println;
use crate::ke::{self, clock, dpc, sched, thread, timer};
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Repetitions of every measurement; the figure printed is their median.
const REPS: usize = 3;

/// One repetition: (TSC ticks spent, operations done), or why it failed.
type Sample = Result<(u64, u64), String>;

fn ns(ticks: u64) -> u64 {
    let freq = crate::rtl::loader_block().tsc_frequency.max(1);
    (ticks as u128 * 1_000_000_000 / freq as u128) as u64
}

fn sleep_ms(ms: u64) {
    sched::ke_delay_execution_thread(ms * 10_000);
}

/// `/BENCHTICKS`: report TSC ticks per operation instead of nanoseconds.
fn ticks_mode() -> bool {
    crate::rtl::load_options()
        .split_whitespace()
        .any(|o| o.eq_ignore_ascii_case("/BENCHTICKS"))
}

/// Waits (sleeping, at most 20 s) until the zero page thread has zeroed every
/// free page, so that it is idle when a measurement starts.
fn settle() -> Result<(), String> {
    let end = clock::ke_query_interrupt_time() + 20_000 * 10_000;
    loop {
        let free = crate::mm::pfn::counts().map_or(0, |c| c.free);
        if free == 0 {
            return Ok(());
        }
        if clock::ke_query_interrupt_time() > end {
            return Err(format!(
                "the zero page thread still has {free} pages to zero after 20 s"
            ));
        }
        sleep_ms(5);
    }
}

/// Waits (sleeping) up to `ms` milliseconds for `cond`.
fn wait_for(ms: u64, cond: impl Fn() -> bool) -> bool {
    let end = clock::ke_query_interrupt_time() + ms * 10_000;
    while !cond() {
        if clock::ke_query_interrupt_time() > end {
            return false;
        }
        sleep_ms(1);
    }
    true
}

/// The median of `v` (sorted in place).
fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs `one` [`REPS`] times, each after [`settle`], and prints the median
/// per-operation figure, or the first failure.
fn bench(name: &str, mut one: impl FnMut() -> Sample) {
    let ticks = ticks_mode();
    let mut per_op = [0u64; REPS];
    for slot in per_op.iter_mut() {
        match settle().and_then(|()| one()) {
            Ok((_, 0)) => return fail(name, "no operations measured"),
            Ok((span, ops)) => *slot = if ticks { span } else { ns(span) } / ops,
            Err(why) => return fail(name, &why),
        }
    }
    let unit = if ticks { "ticks" } else { "ns" };
    dbg_println!("BENCH {name} {} {unit}", median(&mut per_op));
}

/// `BENCH <name> FAILED <reason>`.
fn fail(name: &str, why: &str) {
    dbg_println!("BENCH {name} FAILED {why}");
}

/// Runs every benchmark, then prints `BENCH-END`.
pub fn run_all() {
    // `/BENCHUSER` (a developer's run): only the system-call benchmarks.
    let user_only = crate::rtl::load_options()
        .split_whitespace()
        .any(|o| o.eq_ignore_ascii_case("/BENCHUSER"));
    if !user_only {
        bench_access_check();
        bench_yield_switch();
        bench_dpc_latency();
        bench_timer_dpc_latency();
        bench_handles();
        bench_waits();
        bench_memory();
        bench_registry();
        bench_io();
        bench_disk();
        bench_io_null_read();
    }
    bench_user();
    dbg_println!("BENCH-END");
}

/// `BENCH se_access_check_10_ace`: one access check on a 10-ACE DACL whose
/// granting ACE is last; each check must grant the requested access.
fn bench_access_check() {
    use security::access::GenericMapping;
    use security::check::{access_check, CheckFlags};
    const NAME: &str = "se_access_check_10_ace";
    let sddl = "O:SYG:SYD:(A;;FR;;;S-1-5-21-9-9-9-1)(A;;FR;;;S-1-5-21-9-9-9-2)(A;;FR;;;S-1-5-21-9-9-9-3)\
                (A;;FR;;;S-1-5-21-9-9-9-4)(A;;FR;;;S-1-5-21-9-9-9-5)(A;;FR;;;S-1-5-21-9-9-9-6)\
                (A;;FR;;;S-1-5-21-9-9-9-7)(A;;FR;;;S-1-5-21-9-9-9-8)(A;;FR;;;S-1-5-21-9-9-9-9)(A;;FR;;;BU)";
    let (Ok(sd), Ok(user)) = (
        security::sddl::parse(sddl),
        security::sddl::parse_sid("S-1-5-21-1-2-3-1001"),
    ) else {
        return fail(NAME, "the SDDL or SID did not parse");
    };
    let token = security::token::Token::standard_user(user);
    const DESIRED: u32 = 0x0012_0089;
    bench(NAME, || {
        const N: u64 = 2000;
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            let r = access_check(
                &sd,
                &token,
                DESIRED,
                &GenericMapping::FILE,
                CheckFlags::default(),
            );
            if r != Ok(DESIRED) {
                return Err(format!("the check returned {r:?}"));
            }
        }
        Ok((crate::hal::rdtsc() - t0, N))
    });
}

/// `BENCH cm_open_query_close_100k_keys`: open + query a value + close on a
/// key among 100,000 (100 keys of 1,000 subkeys each, in the SOFTWARE hive),
/// by full path through the object manager. The hive is flushed before the
/// timed loop, so the lazy flush has nothing to write meanwhile. Every open
/// and query must succeed and return the key's own value, else the line
/// reports the failure instead of a figure.
fn bench_registry() {
    use crate::cm::*;
    use crate::ob::object::Mode;
    const NAME: &str = "cm_open_query_close_100k_keys";
    let base = "\\REGISTRY\\MACHINE\\SOFTWARE\\Bench";
    let (h, _) = match nt_create_key(base, KEY_ALL_ACCESS, 0, Mode::KernelMode) {
        Ok(v) => v,
        Err(e) => return fail(NAME, &format!("creating {base}: {e:?}")),
    };
    for i in 0..100 {
        let Ok((p, _)) = nt_create_key(
            &alloc::format!("{base}\\K{i:03}"),
            KEY_ALL_ACCESS,
            0,
            Mode::KernelMode,
        ) else {
            return fail(NAME, &format!("creating K{i:03} failed"));
        };
        crate::ob::handle::nt_close(p);
        for j in 0..1000u32 {
            let ok = match nt_create_key(
                &alloc::format!("{base}\\K{i:03}\\S{j:04}"),
                KEY_ALL_ACCESS,
                0,
                Mode::KernelMode,
            ) {
                Ok((k, _)) => {
                    let s =
                        nt_set_value_key(k, "Value", REG_DWORD, &j.to_le_bytes(), Mode::KernelMode);
                    crate::ob::handle::nt_close(k);
                    s == nt::status::STATUS_SUCCESS
                }
                Err(_) => false,
            };
            if !ok {
                return fail(NAME, &format!("creating K{i:03}\\S{j:04} failed"));
            }
        }
    }
    let flushed = nt_flush_key(h, Mode::KernelMode);
    crate::ob::handle::nt_close(h);
    if flushed != nt::status::STATUS_SUCCESS {
        return fail(NAME, &format!("NtFlushKey: {flushed:?}"));
    }
    const N: u64 = 2000;
    // The paths are built before the timed loop: it measures the registry, not formatting.
    let paths: alloc::vec::Vec<(alloc::string::String, u32)> = (0..N)
        .map(|n| {
            let j = ((n * 7) % 1000) as u32;
            (alloc::format!("{base}\\K{:03}\\S{j:04}", n % 100), j)
        })
        .collect();
    bench(NAME, || {
        let mut failures = 0u64;
        let t0 = crate::hal::rdtsc();
        for (path, j) in &paths {
            let j = *j;
            match nt_open_key(path, KEY_READ, Mode::KernelMode) {
                Ok(k) => {
                    let mut buf = [0u8; 16];
                    match nt_query_value_key_into(k, "Value", &mut buf, Mode::KernelMode) {
                        Ok((REG_DWORD, 4)) if buf[..4] == j.to_le_bytes() => {}
                        _ => failures += 1,
                    }
                    crate::ob::handle::nt_close(k);
                }
                Err(_) => failures += 1,
            }
        }
        let span = crate::hal::rdtsc() - t0;
        if failures != 0 {
            return Err(format!(
                "{failures} of {N} open+query+close operations failed"
            ));
        }
        Ok((span, N))
    });
}

/// `BENCH mm_pool_alloc_free` (`ExAllocatePool2` + `ExFreePoolWithTag` of
/// 64 bytes: the per-processor lookaside fast path), `ex_heap_box_alloc_free`
/// (a 48-byte `Box` through the kernel heap, the same path with the scope's
/// tag), `mm_virtual_alloc_free`, `mm_demand_zero_fault`.
fn bench_memory() {
    use crate::mm::process::*;
    use ::mm::{MEM_COMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_READWRITE};
    use nt::status::STATUS_SUCCESS;
    let tag = u32::from_le_bytes(*b"Bnch");
    bench("mm_pool_alloc_free", || {
        const N: u64 = 20_000;
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            let p = crate::ex::xpool::ex_allocate_pool2(::mm::pool::POOL_FLAG_NON_PAGED, 64, tag);
            if p == 0 {
                return Err("ExAllocatePool2 returned NULL".into());
            }
            crate::ex::xpool::ex_free_pool_with_tag(p, tag);
        }
        Ok((crate::hal::rdtsc() - t0, N))
    });
    bench("ex_heap_box_alloc_free", || {
        const N: u64 = 20_000;
        let before = crate::ex::xpool::tag_usage(::mm::pool::PoolType::NonPaged, tag);
        let t0 = crate::hal::rdtsc();
        {
            let _tag = crate::ex::pool::PoolTag::enter(*b"Bnch");
            for i in 0..N {
                drop(core::hint::black_box(alloc::boxed::Box::new([i; 6])));
            }
        }
        let span = crate::hal::rdtsc() - t0;
        let after = crate::ex::xpool::tag_usage(::mm::pool::PoolType::NonPaged, tag);
        if after.allocs - before.allocs != N || after.bytes != before.bytes {
            return Err("the boxes were not pool blocks of the scope's tag".into());
        }
        Ok((span, N))
    });
    let pid = match mm_create_process_address_space() {
        Ok(pid) => pid,
        Err(e) => {
            let why = format!("creating an address space: {e:?}");
            fail("mm_virtual_alloc_free", &why);
            return fail("mm_demand_zero_fault", &why);
        }
    };
    if let Err(e) = ke_stack_attach_process(pid) {
        let why = format!("attaching: {e:?}");
        fail("mm_virtual_alloc_free", &why);
        fail("mm_demand_zero_fault", &why);
        mm_delete_process_address_space(pid);
        return;
    }
    bench("mm_virtual_alloc_free", || {
        const M: u64 = 2000;
        let t0 = crate::hal::rdtsc();
        for _ in 0..M {
            let (mut b, mut s) = (0, 0x10000);
            let st = nt_allocate_virtual_memory(
                &mut b,
                &mut s,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_READWRITE,
            );
            if st != STATUS_SUCCESS || b == 0 {
                return Err(format!("NtAllocateVirtualMemory: {st:?}"));
            }
            let mut z = 0;
            let st = nt_free_virtual_memory(&mut b, &mut z, MEM_RELEASE);
            if st != STATUS_SUCCESS {
                return Err(format!("NtFreeVirtualMemory: {st:?}"));
            }
        }
        Ok((crate::hal::rdtsc() - t0, M))
    });
    bench("mm_demand_zero_fault", || {
        const PAGES: u64 = 2000;
        let (mut b, mut s) = (0, PAGES * 4096);
        let st =
            nt_allocate_virtual_memory(&mut b, &mut s, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        if st != STATUS_SUCCESS || b == 0 {
            return Err(format!("NtAllocateVirtualMemory: {st:?}"));
        }
        let t0 = crate::hal::rdtsc();
        for i in 0..PAGES {
            // SAFETY: committed memory of the attached process; each write is one demand-zero fault.
            unsafe { ((b + i * 4096) as *mut u8).write_volatile(1) };
        }
        let span = crate::hal::rdtsc() - t0;
        // Every page must now hold the byte written on a zero-filled page.
        let bad = (0..PAGES).find(|i| {
            let p = b + i * 4096;
            // SAFETY: the pages were just faulted in and stay committed.
            let (first, rest) = unsafe {
                (
                    (p as *const u8).read_volatile(),
                    ((p + 8) as *const u64).read_volatile(),
                )
            };
            first != 1 || rest != 0
        });
        let mut z = 0;
        let st = nt_free_virtual_memory(&mut b, &mut z, MEM_RELEASE);
        if let Some(i) = bad {
            return Err(format!(
                "page {i} does not read back as a zero page with one write"
            ));
        }
        if st != STATUS_SUCCESS {
            return Err(format!("NtFreeVirtualMemory: {st:?}"));
        }
        Ok((span, PAGES))
    });
    ke_unstack_detach_process();
    let st = mm_delete_process_address_space(pid);
    if !st.is_success() {
        dbg_println!("bench: deleting the benchmark address space: {st:?}");
    }
}

static BPING: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(false, false);
static BPONG: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(false, false);
static BSIGNALED: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(true, true);
const ROUNDS: u64 = 2000;
/// Ping-pong threads finished (0, 1 or 2).
static PP_DONE: AtomicU32 = AtomicU32::new(0);
/// Waits that did not return STATUS_SUCCESS.
static PP_BAD_WAITS: AtomicU64 = AtomicU64::new(0);
static PP_SPAN: AtomicU64 = AtomicU64::new(0);

/// `KeWaitForSingleObject` on a ping-pong event; counts a wait that did not
/// return STATUS_SUCCESS.
fn pp_wait(e: &crate::ke::wait::KEvent) {
    use crate::ke::thread::WaitReason;
    let st =
        crate::ke::wait::ke_wait_for_single_object(e, WaitReason::Executive, false, false, None);
    if st != nt::status::STATUS_SUCCESS {
        PP_BAD_WAITS.fetch_add(1, Ordering::SeqCst);
    }
}

/// `BENCH ke_event_pingpong_same_cpu` / `_cross_cpu`: one round trip of two
/// synchronization events between two threads (pinned to processor 0, and
/// to processor 0 or 1) = two waits, two sets, two context switches (same
/// processor) or two cross-processor wake-ups;
/// `BENCH ke_wait_signaled_event`: a wait that is satisfied at once.
fn bench_waits() {
    use crate::ke::wait::*;
    for (name, cross) in [
        ("ke_event_pingpong_same_cpu", false),
        ("ke_event_pingpong_cross_cpu", true),
    ] {
        if cross && ke::processor_count() < 2 {
            continue;
        }
        bench(name, || {
            PP_DONE.store(0, Ordering::SeqCst);
            PP_BAD_WAITS.store(0, Ordering::SeqCst);
            let pong = thread::create_system_thread(
                "bench-pong",
                15,
                if cross { 2 } else { 1 },
                |_| {
                    for _ in 0..ROUNDS {
                        pp_wait(&BPING);
                        ke_set_event(&BPONG, 0);
                    }
                    PP_DONE.fetch_add(1, Ordering::SeqCst);
                },
                0,
            );
            let ping = thread::create_system_thread(
                "bench-ping",
                15,
                1,
                |_| {
                    let t0 = crate::hal::rdtsc();
                    for _ in 0..ROUNDS {
                        ke_set_event(&BPING, 0);
                        pp_wait(&BPONG);
                    }
                    PP_SPAN.store(crate::hal::rdtsc() - t0, Ordering::SeqCst);
                    PP_DONE.fetch_add(1, Ordering::SeqCst);
                },
                0,
            );
            for t in [pong, ping] {
                let t = t.map_err(|s| format!("thread creation failed: {:#x}", s.as_u32()))?;
                sched::ready_thread(t)
                    .map_err(|s| format!("readying a thread failed: {:#x}", s.as_u32()))?;
            }
            if !wait_for(60_000, || PP_DONE.load(Ordering::SeqCst) == 2) {
                return Err("the ping-pong threads did not finish in 60 s".into());
            }
            let bad = PP_BAD_WAITS.load(Ordering::SeqCst);
            if bad != 0 {
                return Err(format!("{bad} waits did not return STATUS_SUCCESS"));
            }
            Ok((PP_SPAN.load(Ordering::SeqCst), ROUNDS))
        });
    }
    bench("ke_wait_signaled_event", || {
        use crate::ke::thread::WaitReason;
        const N: u64 = 20_000;
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            let st =
                ke_wait_for_single_object(&BSIGNALED, WaitReason::Executive, false, false, None);
            if st != nt::status::STATUS_SUCCESS {
                return Err(format!("the wait returned {st:?}"));
            }
        }
        Ok((crate::hal::rdtsc() - t0, N))
    });
}

/// `BENCH ob_handle_create_close`, `ob_reference_object_by_handle`, `ob_open_by_name`.
fn bench_handles() {
    use crate::ob::handle::*;
    use crate::ob::object::*;
    use nt::status::STATUS_SUCCESS;
    let Ok((id, _)) = ob_create_object(CreateSpec {
        object_type: &crate::ex::event::EX_EVENT_OBJECT_TYPE,
        name: Some("\\BaseNamedObjects\\BenchEvent"),
        attributes: 0,
        body: ObjectBody::Plain,
        sd: None,
    }) else {
        for n in [
            "ob_handle_create_close",
            "ob_reference_object_by_handle",
            "ob_open_by_name",
        ] {
            fail(n, "creating the event object failed");
        }
        return;
    };
    // One handle stays open throughout: the event is a temporary named
    // object, so closing its last handle would delete its name.
    let h = match ob_create_handle(id, 0x1F0003, 0) {
        Ok(h) => h,
        Err(e) => {
            let why = format!("ObpCreateHandle: {e:?}");
            for n in [
                "ob_handle_create_close",
                "ob_reference_object_by_handle",
                "ob_open_by_name",
            ] {
                fail(n, &why);
            }
            ob_dereference_object(id);
            return;
        }
    };
    const N: u64 = 20_000;
    bench("ob_handle_create_close", || {
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            let h =
                ob_create_handle(id, 0x1F0003, 0).map_err(|e| format!("ObpCreateHandle: {e:?}"))?;
            let st = nt_close(h);
            if st != STATUS_SUCCESS {
                return Err(format!("NtClose: {st:?}"));
            }
        }
        Ok((crate::hal::rdtsc() - t0, N))
    });
    let event = Some(&crate::ex::event::EX_EVENT_OBJECT_TYPE);
    bench("ob_reference_object_by_handle", || {
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            let r = ob_reference_object_by_handle(h, 1, event, Mode::UserMode)
                .map_err(|e| format!("ObReferenceObjectByHandle: {e:?}"))?;
            if r.id != id {
                return Err("the handle referenced another object".into());
            }
        }
        Ok((crate::hal::rdtsc() - t0, N))
    });
    let token = security::token::Token::system();
    bench("ob_open_by_name", || {
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            let (oid, _) = ob_open_object_by_name(
                "\\BaseNamedObjects\\BenchEvent",
                Some(&crate::ex::event::EX_EVENT_OBJECT_TYPE),
                ::ob::OBJ_CASE_INSENSITIVE,
                1,
                Mode::UserMode,
                &token,
            )
            .map_err(|e| format!("ObOpenObjectByName: {e:?}"))?;
            ob_dereference_object(oid);
            if oid != id {
                return Err("the name opened another object".into());
            }
        }
        Ok((crate::hal::rdtsc() - t0, N))
    });
    nt_close(h);
    ob_dereference_object(id);
}

const SWITCHES: u64 = 2000;
static YIELD_DONE: AtomicU32 = AtomicU32::new(0);
static YIELD_START: AtomicU64 = AtomicU64::new(0);
static YIELD_END: AtomicU64 = AtomicU64::new(0);
/// Yields by both threads so far.
static YIELD_COUNT: AtomicU64 = AtomicU64::new(0);
/// Yields after which the other thread had not run.
static YIELD_NO_SWITCH: AtomicU64 = AtomicU64::new(0);

/// `BENCH ke_context_switch_yield`: two threads on processor 0 yielding to
/// each other; each yield must be one full context switch (the other thread
/// ran before the yield returned).
fn bench_yield_switch() {
    bench("ke_context_switch_yield", || {
        YIELD_DONE.store(0, Ordering::SeqCst);
        YIELD_START.store(0, Ordering::SeqCst);
        YIELD_COUNT.store(0, Ordering::SeqCst);
        YIELD_NO_SWITCH.store(0, Ordering::SeqCst);
        let me = sched::current_thread_id();
        let old = sched::ke_set_priority_thread(me, 20);
        for _ in 0..2 {
            let t = thread::create_system_thread(
                "bench-yield",
                15,
                1,
                |_| {
                    let _ = YIELD_START.compare_exchange(
                        0,
                        crate::hal::rdtsc(),
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    for _ in 0..SWITCHES {
                        let mine = YIELD_COUNT.fetch_add(1, Ordering::SeqCst) + 1;
                        sched::ke_yield_execution();
                        if YIELD_COUNT.load(Ordering::SeqCst) == mine {
                            YIELD_NO_SWITCH.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    YIELD_END.store(crate::hal::rdtsc(), Ordering::SeqCst);
                    YIELD_DONE.fetch_add(1, Ordering::SeqCst);
                },
                0,
            );
            let started = t.and_then(sched::ready_thread);
            if let Err(s) = started {
                sched::ke_set_priority_thread(me, old);
                return Err(format!(
                    "starting a yielding thread failed: {:#x}",
                    s.as_u32()
                ));
            }
        }
        sched::ke_set_priority_thread(me, old);
        if !wait_for(60_000, || YIELD_DONE.load(Ordering::SeqCst) == 2) {
            return Err("the yielding threads did not finish in 60 s".into());
        }
        // The first yield may come before the partner is ready and the last
        // after it finished; every other one must switch.
        let lone = YIELD_NO_SWITCH.load(Ordering::SeqCst);
        if lone > 2 {
            return Err(format!("{lone} yields returned without a switch"));
        }
        // The threads time themselves: 2 * SWITCHES yields.
        let span = YIELD_END.load(Ordering::SeqCst) - YIELD_START.load(Ordering::SeqCst);
        Ok((span, 2 * SWITCHES))
    });
}

static DPC_T0: AtomicU64 = AtomicU64::new(0);
static DPC_SUM: AtomicU64 = AtomicU64::new(0);
static DPC_RUNS: AtomicU64 = AtomicU64::new(0);
static BENCH_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| {
        let d = crate::hal::rdtsc() - DPC_T0.load(Ordering::SeqCst);
        DPC_SUM.fetch_add(d, Ordering::SeqCst);
        DPC_RUNS.fetch_add(1, Ordering::SeqCst);
    },
    0,
);

/// `BENCH ke_dpc_latency`: KeInsertQueueDpc at PASSIVE_LEVEL to the DPC
/// routine running; every insert must queue the DPC and every DPC must run.
fn bench_dpc_latency() {
    bench("ke_dpc_latency", || {
        const N: u64 = 1000;
        DPC_SUM.store(0, Ordering::SeqCst);
        DPC_RUNS.store(0, Ordering::SeqCst);
        for i in 0..N {
            DPC_T0.store(crate::hal::rdtsc(), Ordering::SeqCst);
            if !dpc::ke_insert_queue_dpc(&BENCH_DPC, 0, 0) {
                return Err(format!(
                    "KeInsertQueueDpc found the DPC still queued at {i}"
                ));
            }
            // The dispatch interrupt is requested on this processor; the
            // DPC runs as soon as it is delivered.
            let mut spins = 0u32;
            while DPC_RUNS.load(Ordering::SeqCst) != i + 1 {
                spins += 1;
                if spins > 10_000_000 {
                    return Err(format!("DPC {i} never ran"));
                }
                core::hint::spin_loop();
            }
        }
        Ok((DPC_SUM.load(Ordering::SeqCst), N))
    });
}

static TIMER: timer::KTimer = timer::KTimer::new();
static TIMER_LAT_SUM: AtomicU64 = AtomicU64::new(0);
static TIMER_N: AtomicU64 = AtomicU64::new(0);
static TIMER_STOP: AtomicBool = AtomicBool::new(false);
/// Expirations measured per repetition.
const TIMER_EXPIRATIONS: u64 = 20;
/// Set by the DPC at the last measured expiration (synchronization event).
static TIMER_DONE: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(false, false);
static TIMER_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| {
        if TIMER_STOP.load(Ordering::SeqCst) {
            return;
        }
        let latency = crate::hal::rdtsc() - timer::LAST_EXPIRY_TSC.load(Ordering::SeqCst);
        // Only the first TIMER_EXPIRATIONS count (one more may come before
        // the benchmark thread cancels the timer).
        let k = TIMER_N.fetch_add(1, Ordering::SeqCst);
        if k < TIMER_EXPIRATIONS {
            TIMER_LAT_SUM.fetch_add(latency, Ordering::SeqCst);
        }
        if k + 1 == TIMER_EXPIRATIONS {
            crate::ke::wait::ke_set_event(&TIMER_DONE, 0);
        }
    },
    0,
);

/// `BENCH ke_timer_dpc_latency`: from the clock interrupt that finds a
/// timer due to its DPC routine running (periodic timer, one per tick);
/// 20 expirations must arrive within 10 s. The benchmark thread waits on an
/// event the DPC sets at the 20th, so that no timer of its own expires in
/// the measured ticks (a polling sleep's timeout would, and its wake-up
/// would be counted in the latency).
fn bench_timer_dpc_latency() {
    use crate::ke::thread::WaitReason;
    bench("ke_timer_dpc_latency", || {
        TIMER_LAT_SUM.store(0, Ordering::SeqCst);
        TIMER_N.store(0, Ordering::SeqCst);
        TIMER_STOP.store(false, Ordering::SeqCst);
        crate::ke::wait::ke_reset_event(&TIMER_DONE);
        timer::ke_set_timer_ex(
            &TIMER,
            -(clock::TIME_INCREMENT as i64),
            16,
            Some(&TIMER_DPC),
        );
        let st = crate::ke::wait::ke_wait_for_single_object(
            &TIMER_DONE,
            WaitReason::Executive,
            false,
            false,
            Some(10_000 * 10_000),
        );
        TIMER_STOP.store(true, Ordering::SeqCst);
        timer::ke_cancel_timer(&TIMER);
        let n = TIMER_N.load(Ordering::SeqCst).min(TIMER_EXPIRATIONS);
        if st != nt::status::STATUS_SUCCESS || n < TIMER_EXPIRATIONS {
            return Err(format!(
                "{n} of {TIMER_EXPIRATIONS} timer DPCs ran in 10 s (wait: {st:?})"
            ));
        }
        Ok((TIMER_LAT_SUM.load(Ordering::SeqCst), n))
    });
}

/// `BENCH io_test_device_read`: `NtReadFile` of 8 bytes on a synchronous handle to
/// the I/O test driver's `\Device\KTestNeither` (neither I/O; the driver
/// completes at once): a full IRP round trip (allocation, `IofCallDriver`,
/// dispatch, `IofCompleteRequest`, the status block, freeing). Each read
/// must return STATUS_SUCCESS with 8 bytes.
/// `BENCH io_completion_port_post_remove`: `NtSetIoCompletion` +
/// `NtRemoveIoCompletion` of that packet; each must come back.
fn bench_io() {
    use crate::io::completion::*;
    use crate::io::file::*;
    use crate::ob::object::Mode;
    let dev = match crate::io::tests::bench_device() {
        Ok(d) => d,
        Err(why) => {
            fail("io_test_device_read", why);
            return fail("io_completion_port_post_remove", why);
        }
    };
    let p = OpenPacket {
        desired: wdk::FILE_READ_DATA,
        share: wdk::FILE_SHARE_VALID_FLAGS,
        disposition: wdk::FILE_OPEN,
        options: wdk::FILE_SYNCHRONOUS_IO_NONALERT,
        file_attributes: 0,
        attributes: ::ob::OBJ_CASE_INSENSITIVE,
        mode: Mode::KernelMode,
    };
    match nt_create_file(dev, &p) {
        Ok((h, _)) => {
            bench("io_test_device_read", || {
                const N: u64 = 5_000;
                let mut buf = [0u8; 8];
                let mut iosb = wdk::IO_STATUS_BLOCK::zeroed();
                let args = RequestArgs {
                    event: None,
                    apc_context: 0,
                    apc_routine: None,
                    iosb: &mut iosb,
                    mode: Mode::KernelMode,
                };
                let t0 = crate::hal::rdtsc();
                for _ in 0..N {
                    let st = nt_read_file(
                        h,
                        &args,
                        buf.as_mut_ptr() as *mut core::ffi::c_void,
                        8,
                        Some(0),
                        0,
                    );
                    if st != Ok(nt::status::STATUS_SUCCESS) {
                        return Err(format!("NtReadFile returned {st:?}"));
                    }
                }
                let span = crate::hal::rdtsc() - t0;
                if iosb.Information != 8 {
                    return Err(format!("the status block says {} bytes", iosb.Information));
                }
                Ok((span, N))
            });
            crate::ob::handle::nt_close(h);
        }
        Err(e) => fail(
            "io_test_device_read",
            &format!("NtCreateFile({dev}): {e:?}"),
        ),
    }
    let port = match nt_create_io_completion(IO_COMPLETION_ALL_ACCESS, None, 0, 0, Mode::KernelMode)
    {
        Ok(h) => h,
        Err(e) => {
            return fail(
                "io_completion_port_post_remove",
                &format!("NtCreateIoCompletion: {e:?}"),
            )
        }
    };
    bench("io_completion_port_post_remove", || {
        const N: u64 = 10_000;
        let t0 = crate::hal::rdtsc();
        for i in 0..N as usize {
            nt_set_io_completion(port, 7, i, nt::status::STATUS_SUCCESS, 0, Mode::KernelMode)
                .map_err(|e| format!("NtSetIoCompletion: {e:?}"))?;
            match nt_remove_io_completion(port, None, Mode::KernelMode) {
                Ok(Some(p)) if p.key == 7 && p.apc_context == i => {}
                r => return Err(format!("NtRemoveIoCompletion returned {r:?}")),
            }
        }
        Ok((crate::hal::rdtsc() - t0, N))
    });
    crate::ob::handle::nt_close(port);
}

/// `BENCH io_disk_read_4k_random`: one 4 KiB read at a random 4 KiB-aligned
/// offset of `\Device\Harddisk0\DR0` (an IRP to disk.sys: sector checks,
/// a READ(16) SRB to storahci.sys's disk PDO, CDB-to-ATA translation, PRDT
/// build, AHCI command issue, the interrupt, the DPC completing the SRB and
/// the IRP), minus the time the requester was blocked waiting for the
/// pended IRP (`storage::WAIT_TICKS`): the driver path's own instructions.
/// `io_disk_read_4k_random_with_wait` is the same loop with the wait
/// included. `io_disk_read_seq_mb_s` (timed pass) /
/// `io_disk_read_seq_per_mib` (instruction pass): 16 MiB read from the
/// disk's start in 128 KiB requests, wait included. Every read must return
/// its full length.
fn bench_disk() {
    use crate::storage::{stack, Device, WAIT_TICKS};
    const NAMES: [&str; 4] = [
        "io_disk_read_4k_random",
        "io_disk_read_4k_random_with_wait",
        "io_disk_read_seq_mb_s",
        "io_disk_read_4k_random_busy",
    ];
    let Some(s) = stack() else {
        for n in NAMES {
            fail(n, "the storage stack did not start");
        }
        return;
    };
    // A page-aligned 4 KiB buffer (one PRDT entry), as O_DIRECT asks for.
    let mut backing = alloc::vec![0u8; 8192 + 128 * 1024];
    let skew = backing.as_ptr().align_offset(4096);
    let blocks = s.disk_bytes() / 4096;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    // 0: minus the requester's wait; 1: wait included; 2: minus the time
    // this processor spent halted (everything it executed for the reads:
    // the path, the interrupt, the DPC, the switches to the idle thread
    // and back), the figure comparable with Linux's busy time.
    for (name, mode) in [(NAMES[0], 0), (NAMES[1], 1), (NAMES[3], 2)] {
        let buf = &mut backing[skew..skew + 4096];
        bench(name, || {
            const N: u64 = 100;
            let cpu = crate::ke::current_processor_number() as usize;
            let h0 = crate::ke::sched::halted_tsc(cpu);
            let w0 = WAIT_TICKS.load(Ordering::Relaxed);
            let t0 = crate::hal::rdtsc();
            for _ in 0..N {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let off = ((x >> 20) % blocks * 4096) as i64;
                match s.read(Device::Disk(0), off, buf) {
                    Ok(4096) => {}
                    r => return Err(format!("the read at {off:#x} returned {r:?}")),
                }
            }
            let mut span = crate::hal::rdtsc() - t0;
            if mode == 0 {
                span -= (WAIT_TICKS.load(Ordering::Relaxed) - w0).min(span);
            } else if mode == 2 {
                if crate::ke::current_processor_number() as usize != cpu {
                    return Err("the benchmark thread changed processors".into());
                }
                span -= (crate::ke::sched::halted_tsc(cpu) - h0).min(span);
            }
            Ok((span, N))
        });
    }
    const TOTAL: usize = 16 << 20;
    const CHUNK: usize = 128 * 1024;
    let ticks = ticks_mode();
    let mut per = [0u64; REPS];
    for slot in per.iter_mut() {
        if let Err(why) = settle() {
            return fail(NAMES[2], &why);
        }
        let buf = &mut backing[skew..skew + CHUNK];
        let t0 = crate::hal::rdtsc();
        for i in 0..TOTAL / CHUNK {
            match s.read(Device::Disk(0), (i * CHUNK) as i64, buf) {
                Ok(n) if n == CHUNK => {}
                r => return fail(NAMES[2], &format!("the read of chunk {i} returned {r:?}")),
            }
        }
        let span = crate::hal::rdtsc() - t0;
        *slot = if ticks {
            span / (TOTAL as u64 >> 20)
        } else {
            // MB/s = bytes / ns * 1000.
            TOTAL as u64 * 1000 / ns(span).max(1)
        };
    }
    if ticks {
        dbg_println!("BENCH io_disk_read_seq_per_mib {} ticks", median(&mut per));
    } else {
        dbg_println!("BENCH {} {} MB/s", NAMES[2], median(&mut per));
    }
}

/// `BENCH io_null_read`: `NtReadFile` of 64 bytes on `\Device\Null` (a
/// synchronous handle), a full IRP round trip through null.sys, the
/// loaded driver image: IRP allocation, `IofCallDriver`, null.sys's
/// dispatch routine completing with STATUS_END_OF_FILE, the completion.
/// Every read must return STATUS_END_OF_FILE.
fn bench_io_null_read() {
    use crate::io::file::{nt_open_file, nt_read_file, RequestArgs};
    use crate::ob::object::Mode;
    const N: u64 = 1000;
    let h = match nt_open_file(
        "\\Device\\Null",
        wdk::FILE_GENERIC_READ,
        ::ob::OBJ_CASE_INSENSITIVE,
        0,
        wdk::FILE_SYNCHRONOUS_IO_NONALERT,
        Mode::KernelMode,
    ) {
        Ok(h) => h,
        Err(e) => {
            return fail(
                "io_null_read",
                &format!("cannot open \\Device\\Null: {e:?}"),
            )
        }
    };
    let mut iosb = wdk::IO_STATUS_BLOCK {
        Status: nt::status::STATUS_SUCCESS,
        Information: 0,
    };
    let mut buf = [0u8; 64];
    bench("io_null_read", || {
        let args = RequestArgs {
            event: None,
            apc_context: 0,
            apc_routine: None,
            iosb: &mut iosb,
            mode: Mode::KernelMode,
        };
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            let r = nt_read_file(h, &args, buf.as_mut_ptr().cast(), 64, None, 0);
            if r.unwrap_or_else(|e| e) != nt::status::STATUS_END_OF_FILE {
                return Err(format!("NtReadFile returned {r:?}"));
            }
        }
        Ok((crate::hal::rdtsc() - t0, N))
    });
    let _ = crate::ob::handle::nt_close(h);
}

/// The system-call benchmarks, measured from user mode by `ntrsuser.exe
/// bench <name>` (TSC ticks around its loop, every result checked; one
/// process per repetition): `sys_null_call` (a service number the table
/// does not have: the whole SYSCALL entry, dispatch and SYSRET exit),
/// `sys_event_create_close` (NtCreateEvent + NtClose),
/// `sys_virtual_alloc_free` (64 KiB NtAllocateVirtualMemory MEM_COMMIT +
/// NtFreeVirtualMemory MEM_RELEASE), `sys_demand_zero_fault_user` (first
/// write to a committed page from user mode), `sys_thread_create_exit_wait`
/// (NtCreateThreadEx, the thread's NtTerminateThread, NtWaitForSingleObject
/// and NtClose), `sys_process_create_exit_wait` (NtCreateUserProcess of
/// ntrsuser.exe, which exits at once, the wait and two NtClose calls),
/// `sys_event_pingpong` (two user threads of one process, one round trip
/// through two synchronization events).
fn bench_user() {
    for name in [
        "sys_null_call",
        "sys_event_create_close",
        "sys_virtual_alloc_free",
        "sys_demand_zero_fault_user",
        "sys_thread_create_exit_wait",
        "sys_process_create_exit_wait",
        "sys_event_pingpong",
    ] {
        bench(name, || {
            let (status, out) =
                crate::ex::uproc::run_to_exit("ntrsuser.exe", &format!("bench {name}"), 30_000)
                    .map_err(|e| format!("running ntrsuser.exe: {:#x}", e.as_u32()))?;
            if status != nt::status::STATUS_SUCCESS {
                return Err(format!("ntrsuser.exe ended with {:#x}", status.as_u32()));
            }
            let line = out
                .lines()
                .find_map(|l| l.strip_prefix("BENCHDATA "))
                .ok_or("no BENCHDATA line")?;
            let mut it = line.split_whitespace().map(|v| v.parse::<u64>());
            match (it.next(), it.next()) {
                (Some(Ok(t)), Some(Ok(n))) => Ok((t, n)),
                _ => Err("bad BENCHDATA line".into()),
            }
        });
    }
}
