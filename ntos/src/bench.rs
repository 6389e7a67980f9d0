//! In-kernel micro-benchmarks (`/BENCH`): one `BENCH name value unit` line
//! each. Times come from the TSC that winload calibrated; run under QEMU's
//! `-icount shift=0` the same numbers are guest instructions (xtask renames them).

use crate::ke::{self, clock, dpc, sched, thread, timer};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

fn ns(ticks: u64) -> u64 {
    let freq = crate::loader_block().tsc_frequency.max(1);
    (ticks as u128 * 1_000_000_000 / freq as u128) as u64
}

fn sleep_ms(ms: u64) {
    sched::ke_delay_execution_thread(ms * 10_000);
}

/// Runs every benchmark.
pub fn run_all() {
    crate::se::bench_access_check();
    bench_yield_switch();
    bench_dpc_latency();
    bench_timer_dpc_latency();
    bench_handles();
    bench_waits();
    bench_memory();
    bench_registry();
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
        Err(e) => {
            crate::dbg_println!("BENCH {NAME} setup-failed {e:?}");
            return;
        }
    };
    for i in 0..100 {
        let Ok((p, _)) = nt_create_key(
            &alloc::format!("{base}\\K{i:03}"),
            KEY_ALL_ACCESS,
            0,
            Mode::KernelMode,
        ) else {
            crate::dbg_println!("BENCH {NAME} setup-failed at K{i:03}");
            return;
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
                crate::dbg_println!("BENCH {NAME} setup-failed at K{i:03}\\S{j:04}");
                return;
            }
        }
    }
    let flushed = nt_flush_key(h, Mode::KernelMode);
    crate::ob::handle::nt_close(h);
    if flushed != nt::status::STATUS_SUCCESS {
        crate::dbg_println!("BENCH {NAME} setup-failed flush {flushed:?}");
        return;
    }
    const N: u64 = 2000;
    // The paths are built before the timed loop: it measures the registry, not formatting.
    let paths: alloc::vec::Vec<(alloc::string::String, u32)> = (0..N)
        .map(|n| {
            let j = ((n * 7) % 1000) as u32;
            (alloc::format!("{base}\\K{:03}\\S{j:04}", n % 100), j)
        })
        .collect();
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
    let t = ns(crate::hal::rdtsc() - t0) / N;
    if failures != 0 {
        crate::dbg_println!("BENCH {NAME} failed {failures} of {N} operations");
    } else {
        crate::dbg_println!("BENCH {NAME} {t} ns");
    }
}

/// `BENCH mm_pool_alloc_free`, `mm_virtual_alloc_free`, `mm_demand_zero_fault`.
fn bench_memory() {
    use crate::mm::process::*;
    use ::mm::{MEM_COMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_READWRITE};
    let tag = u32::from_le_bytes(*b"Bnch");
    const N: u64 = 20_000;
    let t0 = crate::hal::rdtsc();
    for _ in 0..N {
        let p = crate::ex::xpool::ex_allocate_pool2(::mm::pool::POOL_FLAG_NON_PAGED, 64, tag);
        crate::ex::xpool::ex_free_pool_with_tag(p, tag);
    }
    crate::dbg_println!(
        "BENCH mm_pool_alloc_free {} ns",
        ns(crate::hal::rdtsc() - t0) / N
    );
    let Ok(pid) = mm_create_process_address_space() else {
        return;
    };
    if ke_stack_attach_process(pid).is_err() {
        return;
    }
    const M: u64 = 2000;
    let t0 = crate::hal::rdtsc();
    for _ in 0..M {
        let (mut b, mut s) = (0, 0x10000);
        nt_allocate_virtual_memory(&mut b, &mut s, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        let mut z = 0;
        nt_free_virtual_memory(&mut b, &mut z, MEM_RELEASE);
    }
    crate::dbg_println!(
        "BENCH mm_virtual_alloc_free {} ns",
        ns(crate::hal::rdtsc() - t0) / M
    );
    const PAGES: u64 = 2000;
    let (mut b, mut s) = (0, PAGES * 4096);
    if nt_allocate_virtual_memory(&mut b, &mut s, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE)
        == nt::status::STATUS_SUCCESS
    {
        let t0 = crate::hal::rdtsc();
        for i in 0..PAGES {
            // SAFETY: committed memory of the attached process; each write is one demand-zero fault.
            unsafe { ((b + i * 4096) as *mut u8).write_volatile(1) };
        }
        crate::dbg_println!(
            "BENCH mm_demand_zero_fault {} ns",
            ns(crate::hal::rdtsc() - t0) / PAGES
        );
        let mut z = 0;
        nt_free_virtual_memory(&mut b, &mut z, MEM_RELEASE);
    }
    ke_unstack_detach_process();
    mm_delete_process_address_space(pid);
}

static BPING: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(false, false);
static BPONG: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(false, false);
static BSIGNALED: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(true, true);
static PONG_DONE: AtomicBool = AtomicBool::new(false);

/// `BENCH ke_event_pingpong_same_cpu` / `_cross_cpu`: one round trip of two
/// synchronization events between two threads = two waits, two sets, two
/// context switches (same processor) or two cross-processor wake-ups;
/// `BENCH ke_wait_signaled_event`: a wait that is satisfied at once.
fn bench_waits() {
    use crate::ke::thread::WaitReason;
    use crate::ke::wait::*;
    const ROUNDS: u64 = 2000;
    for (name, cross) in [("same_cpu", false), ("cross_cpu", true)] {
        if cross && ke::processor_count() < 2 {
            continue;
        }
        PONG_DONE.store(false, Ordering::SeqCst);
        let me = sched::current_thread_id();
        let old = sched::ke_set_priority_thread(me, 15);
        // Pin ourselves to processor 0 and the partner to 0 or 1.
        let partner_cpu = if cross { 2 } else { 1 };
        let t = thread::create_system_thread(
            "bench-pong",
            15,
            partner_cpu,
            |_| {
                for _ in 0..ROUNDS {
                    ke_wait_for_single_object(&BPING, WaitReason::Executive, false, false, None);
                    ke_set_event(&BPONG, 0);
                }
                PONG_DONE.store(true, Ordering::SeqCst);
            },
            0,
        );
        let mine = thread::thread(me).map(|t| t.affinity).unwrap_or(u64::MAX);
        if let Some(th) = thread::thread(me) {
            th.affinity = 1;
        }
        // Get onto processor 0 before timing.
        while ke::current_processor_number() != 0 {
            sched::ke_yield_execution();
            sleep_ms(1);
        }
        sched::ready_thread(t);
        let t0 = crate::hal::rdtsc();
        for _ in 0..ROUNDS {
            ke_set_event(&BPING, 0);
            ke_wait_for_single_object(&BPONG, WaitReason::Executive, false, false, None);
        }
        let span = crate::hal::rdtsc() - t0;
        while !PONG_DONE.load(Ordering::SeqCst) {
            sleep_ms(1);
        }
        if let Some(th) = thread::thread(me) {
            th.affinity = mine;
        }
        sched::ke_set_priority_thread(me, old);
        crate::dbg_println!("BENCH ke_event_pingpong_{name} {} ns", ns(span) / ROUNDS);
    }
    const N: u64 = 20_000;
    let t0 = crate::hal::rdtsc();
    for _ in 0..N {
        ke_wait_for_single_object(&BSIGNALED, WaitReason::Executive, false, false, None);
    }
    crate::dbg_println!(
        "BENCH ke_wait_signaled_event {} ns",
        ns(crate::hal::rdtsc() - t0) / N
    );
}

/// `BENCH ob_handle_create_close`, `ob_reference_object_by_handle`, `ob_open_by_name`.
fn bench_handles() {
    use crate::ob::handle::*;
    use crate::ob::object::*;
    let Ok((id, _)) = ob_create_object(CreateSpec {
        type_name: "Event",
        name: Some("\\BaseNamedObjects\\BenchEvent"),
        attributes: 0,
        body: ObjectBody::Plain,
        sd: None,
    }) else {
        crate::dbg_println!("BENCH ob_handle_create_close setup-failed");
        return;
    };
    const N: u64 = 20_000;
    let t0 = crate::hal::rdtsc();
    for _ in 0..N {
        if let Ok(h) = ob_create_handle(id, 0x1F0003, 0) {
            nt_close(h);
        }
    }
    crate::dbg_println!(
        "BENCH ob_handle_create_close {} ns",
        ns(crate::hal::rdtsc() - t0) / N
    );
    let event = crate::ob::system_type("Event");
    if let Ok(h) = ob_create_handle(id, 0x1F0003, 0) {
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            let _ = ob_reference_object_by_handle(h, 1, event, Mode::UserMode);
        }
        crate::dbg_println!(
            "BENCH ob_reference_object_by_handle {} ns",
            ns(crate::hal::rdtsc() - t0) / N
        );
        let token = security::token::Token::system();
        let t0 = crate::hal::rdtsc();
        for _ in 0..N {
            if let Ok((oid, _)) = ob_open_object_by_name(
                "\\BaseNamedObjects\\BenchEvent",
                Some("Event"),
                ::ob::OBJ_CASE_INSENSITIVE,
                1,
                Mode::UserMode,
                &token,
            ) {
                ob_dereference_object(oid);
            }
        }
        crate::dbg_println!(
            "BENCH ob_open_by_name {} ns",
            ns(crate::hal::rdtsc() - t0) / N
        );
        nt_close(h);
    }
    ob_dereference_object(id);
}

const SWITCHES: u64 = 2000;
static YIELD_DONE: AtomicU32 = AtomicU32::new(0);
static YIELD_START: AtomicU64 = AtomicU64::new(0);
static YIELD_END: AtomicU64 = AtomicU64::new(0);

/// `BENCH ke_context_switch_yield`: two threads on one processor yielding
/// to each other; each yield is one full context switch.
fn bench_yield_switch() {
    YIELD_DONE.store(0, Ordering::SeqCst);
    YIELD_START.store(0, Ordering::SeqCst);
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
                    sched::ke_yield_execution();
                }
                YIELD_END.store(crate::hal::rdtsc(), Ordering::SeqCst);
                YIELD_DONE.fetch_add(1, Ordering::SeqCst);
            },
            0,
        );
        sched::ready_thread(t);
    }
    sched::ke_set_priority_thread(me, old);
    while YIELD_DONE.load(Ordering::SeqCst) < 2 {
        sleep_ms(1);
    }
    // The threads time themselves: 2 * SWITCHES yields, each a switch.
    let span = YIELD_END.load(Ordering::SeqCst) - YIELD_START.load(Ordering::SeqCst);
    crate::dbg_println!(
        "BENCH ke_context_switch_yield {} ns",
        ns(span) / (2 * SWITCHES)
    );
}

static DPC_T0: AtomicU64 = AtomicU64::new(0);
static DPC_SUM: AtomicU64 = AtomicU64::new(0);
static BENCH_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| {
        let d = crate::hal::rdtsc() - DPC_T0.load(Ordering::SeqCst);
        DPC_SUM.fetch_add(d, Ordering::SeqCst);
    },
    0,
);

/// `BENCH ke_dpc_latency`: KeInsertQueueDpc at PASSIVE_LEVEL to the DPC routine running.
fn bench_dpc_latency() {
    const N: u64 = 1000;
    DPC_SUM.store(0, Ordering::SeqCst);
    for _ in 0..N {
        DPC_T0.store(crate::hal::rdtsc(), Ordering::SeqCst);
        dpc::ke_insert_queue_dpc(&BENCH_DPC, 0, 0);
    }
    crate::dbg_println!(
        "BENCH ke_dpc_latency {} ns",
        ns(DPC_SUM.load(Ordering::SeqCst)) / N
    );
}

static TIMER: timer::KTimer = timer::KTimer::new();
static TIMER_LAT_SUM: AtomicU64 = AtomicU64::new(0);
static TIMER_N: AtomicU64 = AtomicU64::new(0);
static TIMER_STOP: AtomicBool = AtomicBool::new(false);
static TIMER_DPC: dpc::KDpc = dpc::KDpc::new(
    |_, _, _, _| {
        let expired_at = timer::LAST_EXPIRY_TSC.load(Ordering::SeqCst);
        TIMER_LAT_SUM.fetch_add(crate::hal::rdtsc() - expired_at, Ordering::SeqCst);
        TIMER_N.fetch_add(1, Ordering::SeqCst);
    },
    0,
);

/// `BENCH ke_timer_dpc_latency`: from the clock interrupt that finds a
/// timer due to its DPC routine running (periodic timer, one per tick).
fn bench_timer_dpc_latency() {
    TIMER_LAT_SUM.store(0, Ordering::SeqCst);
    TIMER_N.store(0, Ordering::SeqCst);
    TIMER_STOP.store(false, Ordering::SeqCst);
    timer::ke_set_timer_ex(
        &TIMER,
        -(clock::TIME_INCREMENT as i64),
        16,
        Some(&TIMER_DPC),
    );
    while TIMER_N.load(Ordering::SeqCst) < 20 {
        sleep_ms(20);
    }
    timer::ke_cancel_timer(&TIMER);
    let n = TIMER_N.load(Ordering::SeqCst);
    crate::dbg_println!(
        "BENCH ke_timer_dpc_latency {} ns",
        ns(TIMER_LAT_SUM.load(Ordering::SeqCst)) / n.max(1)
    );
    let _ = ke::processor_count();
}
