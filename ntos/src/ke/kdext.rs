//! kd commands for the kernel core, named and laid out as WinDbg's:
//! `!running`, `!ready`, `!thread`, `!process`, `!prcb`, `!apic`, `~N`
//! (`!dpcs` and `!timer` live beside their modules). Each handler takes the
//! command's argument string.
//!
//! They print only what ntrs has: a field NT has and ntrs does not (a TEB,
//! a Win32 thread, a client id's process part, an image name, a handle
//! table, I/O and page priorities) is left out. Thread and process state is
//! read under the locks that guard it — the dispatcher lock and the
//! process's thread-list lock — into a snapshot, and printed after they are
//! released; threads are held by counted references meanwhile. If a lock is
//! held by a stopped processor (kd after a bugcheck), the command says so
//! instead of waiting forever.

use super::process::{self, KProcess};
use super::sched::{self, DispatcherGuard, WaitRecord, PROCESSOR_SCHED};
use super::thread::{KThread, ThreadRef, ThreadState};
use crate::dbg_println;
use ::ke::apc::ProcessorMode;
use ::ke::objects::{ObjectKind, ThreadId};
use ::ke::sched::SchedThread;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

/// The processor kd commands describe (`~N` switches it).
pub static KD_PROCESSOR: AtomicU32 = AtomicU32::new(0);

/// Spins before a kd command gives up on a lock (about a second under TCG).
const KD_LOCK_SPINS: u32 = 1 << 22;

/// A hexadecimal number as WinDbg reads addresses: optional `0x`, and
/// backtick separators (`fffff800`00400000`).
fn parse_address(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: String = s.chars().filter(|&c| c != '`').collect();
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(&digits, 16).ok()
}

fn dispatcher_or_say() -> Option<DispatcherGuard> {
    let g = sched::try_lock(KD_LOCK_SPINS);
    if g.is_none() {
        dbg_println!("The dispatcher lock is held (by this or a stopped processor); thread state cannot be read safely.");
    }
    g
}

/// How a thread's wait looked when it was snapshot.
struct WaitSnapshot {
    record: WaitRecord,
    /// Each object waited on: its dispatcher object id, what it is, and
    /// the owning thread's address for a mutant.
    objects: Vec<(u32, Option<::ke::objects::ObjectInfo>, u64)>,
    wait_all: bool,
}

/// Everything `!thread` prints about one thread, read under the dispatcher lock.
struct ThreadSnapshot {
    thread: ThreadRef,
    /// The scheduler's view (None: an idle thread, or a reaped thread).
    sched: Option<SchedThread>,
    /// Processor whose idle thread it is.
    idle_of: Option<u32>,
    /// Processor it is running on now (from the PRCBs).
    running_on: Option<u32>,
    wait: Option<WaitSnapshot>,
    /// Still in the thread table (not yet reaped).
    live: bool,
    kernel_apcs: usize,
    user_apcs: usize,
    /// `Alerted[KernelMode]`, `Alerted[UserMode]`.
    alerted: (bool, bool),
}

fn snapshot(g: &DispatcherGuard, t: ThreadRef) -> ThreadSnapshot {
    let tid = t.id;
    let entry = g.thread_table.get(tid).filter(|e| e.thread.same(&t));
    let live = entry.is_some();
    let sched = live
        .then(|| g.sched.thread(ThreadId(tid)).ok().copied())
        .flatten();
    let n = super::processor_count();
    let on = |f: fn(&super::Kprcb) -> u64| {
        (0..n).find(|&p| super::pcr_of(p).is_some_and(|pcr| f(&pcr.prcb) == t.address()))
    };
    let idle_of = on(|prcb| prcb.idle_thread.load(Ordering::Relaxed));
    let running_on = on(|prcb| prcb.current_thread.load(Ordering::Relaxed));
    let wait = match (entry, sched) {
        (Some(e), Some(s)) if s.state == ThreadState::Waiting => Some(WaitSnapshot {
            record: e.wait,
            objects: g
                .db
                .wait_objects(ThreadId(tid))
                .iter()
                .map(|o| {
                    let info = g.db.query(*o).ok();
                    let owner = info
                        .and_then(|i| i.owner)
                        .and_then(|t| g.thread_table.get(t.0))
                        .map_or(0, |e| e.thread.address());
                    (o.0, info, owner)
                })
                .collect(),
            wait_all: g.db.wait_is_all(ThreadId(tid)),
        }),
        _ => None,
    };
    let (kernel_apcs, user_apcs) = entry.map_or((0, 0), |e| {
        let k = e
            .apc
            .queued()
            .filter(|(_, k)| *k != ::ke::apc::ApcKind::User)
            .count();
        (k, e.apc.queued().count() - k)
    });
    let alerted = entry.map_or((false, false), |e| {
        (
            e.apc.is_alerted(ProcessorMode::KernelMode),
            e.apc.is_alerted(ProcessorMode::UserMode),
        )
    });
    ThreadSnapshot {
        thread: t,
        sched,
        idle_of,
        running_on,
        wait,
        live,
        kernel_apcs,
        user_apcs,
        alerted,
    }
}

/// What WinDbg prints after a wait object: its type, and a semaphore's
/// limit or a mutant's owner.
fn object_text(info: Option<::ke::objects::ObjectInfo>, owner: u64) -> String {
    let Some(i) = info else {
        return String::from("(deleted object)");
    };
    match i.kind {
        ObjectKind::NotificationEvent => String::from("NotificationEvent"),
        ObjectKind::SynchronizationEvent => String::from("SynchronizationEvent"),
        ObjectKind::Mutant => alloc::format!("Mutant - owning thread {owner:016x}"),
        ObjectKind::Semaphore => alloc::format!("Semaphore Limit 0x{:x}", i.limit),
        ObjectKind::NotificationTimer => String::from("NotificationTimer"),
        ObjectKind::SynchronizationTimer => String::from("SynchronizationTimer"),
        ObjectKind::Thread => String::from("Thread"),
        ObjectKind::Process => String::from("Process"),
    }
}

/// The state part of the `THREAD` line.
fn state_text(s: &ThreadSnapshot) -> String {
    if !s.live {
        return String::from("TERMINATED (reaped)");
    }
    if let Some(p) = s.running_on {
        return alloc::format!("RUNNING on processor {p:x}");
    }
    if let Some(p) = s.idle_of {
        return alloc::format!("IDLE thread of processor {p:x} (not running)");
    }
    match s.sched {
        Some(t) => match t.state {
            ThreadState::Ready => alloc::format!("READY on processor {:x}", t.last_processor),
            ThreadState::Standby => alloc::format!("STANDBY on processor {:x}", t.last_processor),
            ThreadState::Waiting => match &s.wait {
                Some(w) => alloc::format!(
                    "WAIT: ({:?}) {} {}",
                    w.record.reason,
                    match w.record.mode {
                        ProcessorMode::KernelMode => "KernelMode",
                        ProcessorMode::UserMode => "UserMode",
                    },
                    if w.record.alertable {
                        "Alertable"
                    } else {
                        "Non-Alertable"
                    }
                ),
                None => String::from("WAIT"),
            },
            st => String::from(st.name()),
        },
        None => String::from("(not scheduled)"),
    }
}

fn thread_line(s: &ThreadSnapshot) -> String {
    alloc::format!(
        "THREAD {:016x}  Id {:04x}  {}",
        s.thread.address(),
        s.thread.id,
        state_text(s)
    )
}

/// Ticks as WinDbg prints times: `h:mm:ss.mmm`.
pub fn ticks_as_time(ticks: u64) -> String {
    let ms = ticks * super::clock::TIME_INCREMENT / 10_000;
    alloc::format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn print_thread(s: &ThreadSnapshot, indent: &str) {
    let t: &KThread = &s.thread;
    dbg_println!("{indent}{}", thread_line(s));
    if let Some(w) = &s.wait {
        for (id, info, owner) in &w.objects {
            dbg_println!(
                "{indent}    dispatcher object {id:04x}  {}",
                object_text(*info, *owner)
            );
        }
        if w.objects.len() > 1 {
            dbg_println!(
                "{indent}    {}",
                if w.wait_all { "WaitAll" } else { "WaitAny" }
            );
        }
    }
    dbg_println!(
        "{indent}    Owning Process            {:016x}",
        t.process.address()
    );
    if t.attached_process() != 0 {
        dbg_println!(
            "{indent}    Attached Process          address space {}",
            t.attached_process()
        );
    }
    if let Some(w) = &s.wait {
        let now = super::clock::ke_query_tick_count();
        let ticks = now.saturating_sub(w.record.start_tick);
        dbg_println!(
            "{indent}    Wait Start TickCount      {:<14} Ticks: {} ({})",
            w.record.start_tick,
            ticks,
            ticks_as_time(ticks)
        );
        dbg_println!("{indent}    Wait IRQL                 {}", w.record.irql);
    }
    let ideal = s
        .sched
        .map(|x| alloc::format!("             IdealProcessor: {}", x.ideal_processor))
        .unwrap_or_default();
    dbg_println!(
        "{indent}    Context Switch Count      {:<14}{ideal}",
        t.context_switches()
    );
    dbg_println!(
        "{indent}    KernelTime                {}",
        ticks_as_time(t.kernel_time())
    );
    match t.start_routine {
        Some(f) => dbg_println!(
            "{indent}    Start Address {:016x} ({})",
            f as *const () as u64,
            t.name()
        ),
        // The boot path and the processors' startup paths became threads.
        None => dbg_println!("{indent}    Name {}", t.name()),
    }
    if s.running_on.is_some() {
        dbg_println!("{indent}    Stack Init {:016x}", t.initial_stack);
    } else {
        dbg_println!(
            "{indent}    Stack Init {:016x} Current {:016x}",
            t.initial_stack,
            t.kernel_stack()
        );
    }
    dbg_println!("{indent}    Limit {:016x}", t.stack_limit);
    if let Some(x) = s.sched {
        dbg_println!(
            "{indent}    Priority {}  BasePriority {}  Affinity {:x}  Quantum {}/{} units",
            x.priority,
            x.base_priority,
            x.affinity,
            x.quantum.remaining,
            x.quantum.reset
        );
    }
    dbg_println!(
        "{indent}    APCs: {} kernel, {} user queued  KernelApcDisable {}  SpecialApcDisable {}",
        s.kernel_apcs,
        s.user_apcs,
        t.kernel_apc_disable(),
        t.special_apc_disable()
    );
    if s.alerted.0 || s.alerted.1 {
        dbg_println!(
            "{indent}    Alerted:{}{}",
            if s.alerted.0 { " KernelMode" } else { "" },
            if s.alerted.1 { " UserMode" } else { "" }
        );
    }
}

/// `~N`: switch the processor kd shows.
pub fn kd_switch_processor(arg: &str) {
    match arg.trim().trim_end_matches('s').parse::<u32>() {
        Ok(n) if n < super::processor_count() => {
            KD_PROCESSOR.store(n, Ordering::Relaxed);
            dbg_println!("Switched to processor {n}");
        }
        _ => dbg_println!("Invalid processor number '{arg}'"),
    }
}

/// `!running`: what every processor runs, its standby thread, its idle thread.
pub fn kd_running(_args: &str) {
    let n = super::processor_count();
    let all: u64 = (0..n).fold(0, |m, p| m | 1 << p);
    let idle: u64 = (0..n)
        .filter(|&p| PROCESSOR_SCHED[p as usize].idle.load(Ordering::Relaxed))
        .fold(0, |m, p| m | 1 << p);
    // Priorities come from the scheduler, by id, under its lock.
    let g = dispatcher_or_say();
    let prio_of = |addr: u64| -> Option<u8> {
        let g = g.as_ref()?;
        let tid = g.thread_table.find_by_address(addr)?;
        g.sched.thread(ThreadId(tid)).ok().map(|t| t.priority)
    };
    // (processor, PRCB, current, its priority, next, its priority, idle thread)
    type Row = (u32, u64, u64, Option<u8>, u64, Option<u8>, u64);
    let rows: Vec<Row> = (0..n)
        .filter_map(|p| {
            let pcr = super::pcr_of(p)?;
            let cur = pcr.prcb.current_thread.load(Ordering::Relaxed);
            let next = pcr.prcb.next_thread.load(Ordering::Relaxed);
            let idle_t = pcr.prcb.idle_thread.load(Ordering::Relaxed);
            let cur_pri = if cur != 0 && cur == idle_t {
                Some(0)
            } else {
                prio_of(cur)
            };
            Some((
                p,
                pcr.current_prcb,
                cur,
                cur_pri,
                next,
                prio_of(next),
                idle_t,
            ))
        })
        .collect();
    drop(g);
    dbg_println!("System Processors:  ({all:016x})");
    dbg_println!("  Idle Processors:  ({idle:016x})");
    dbg_println!();
    dbg_println!("       Prcbs             Current         (pri) Next            (pri) Idle");
    let pri = |p: Option<u8>| p.map_or(String::from("    "), |p| alloc::format!("({p:>2})"));
    for (p, prcb, cur, cur_pri, next, next_pri, idle_t) in rows {
        let next = if next == 0 {
            String::from("                      ")
        } else {
            alloc::format!("{next:016x} {}", pri(next_pri))
        };
        dbg_println!(
            "  {:<2} {:016x}  {:016x} {} {} {:016x}",
            p,
            prcb,
            cur,
            pri(cur_pri),
            next,
            idle_t
        );
    }
}

/// `!ready`: ready threads by processor and priority.
pub fn kd_ready(_args: &str) {
    let Some(g) = dispatcher_or_say() else {
        return;
    };
    let mut per_cpu: Vec<(u32, Vec<(u8, ThreadSnapshot)>)> = Vec::new();
    for p in 0..super::processor_count() {
        let mut v = Vec::new();
        for (tid, prio) in g.sched.ready_list(p) {
            if let Some(e) = g.thread_table.get(tid.0) {
                let t = e.thread.clone();
                v.push((prio, snapshot(&g, t)));
            }
        }
        per_cpu.push((p, v));
    }
    drop(g);
    for (p, list) in &per_cpu {
        if list.is_empty() {
            dbg_println!("Processor {p}: No threads in READY state");
            continue;
        }
        let mut last = None;
        for (prio, s) in list {
            if last != Some(*prio) {
                dbg_println!("Processor {p}: Ready Threads at priority {prio}");
                last = Some(*prio);
            }
            dbg_println!("    {}", thread_line(s));
        }
    }
    // The snapshots' references are dropped here, after the lock.
    drop(per_cpu);
}

/// `!thread [address | -t id]`: the current thread, or the thread object at
/// an address, or (`-t`) the thread with that id.
pub fn kd_thread(args: &str) {
    let args = args.trim();
    let by_id = args.strip_prefix("-t");
    let t: Option<ThreadRef> = if args.is_empty() {
        super::thread::try_current_thread().and_then(|c| sched::reference_thread(c.id))
    } else {
        let Some(v) = parse_address(by_id.unwrap_or(args)) else {
            dbg_println!("{args}: Not a thread");
            return;
        };
        let Some(g) = dispatcher_or_say() else {
            return;
        };
        let tid = if by_id.is_some() {
            u32::try_from(v)
                .ok()
                .filter(|&i| g.thread_table.get(i).is_some())
        } else {
            g.thread_table.find_by_address(v)
        };
        tid.and_then(|i| g.thread_table.get(i).map(|e| e.thread.clone()))
    };
    let Some(t) = t else {
        dbg_println!("{args}: Not a thread");
        return;
    };
    let Some(g) = dispatcher_or_say() else {
        return;
    };
    let s = snapshot(&g, t);
    drop(g);
    print_thread(&s, "");
}

fn print_process(p: &KProcess, threads: bool) {
    dbg_println!("PROCESS {:016x}", p.address());
    dbg_println!("    DirBase: {:08x}", p.directory_table_base());
    if !threads {
        return;
    }
    dbg_println!(
        "    BasePriority {}  QuantumReset {}  KernelTime {}",
        p.base_priority,
        p.quantum_reset,
        ticks_as_time(p.kernel_time())
    );
    let Some(ids) = p.try_thread_ids() else {
        dbg_println!("    (thread list locked by a stopped processor)");
        return;
    };
    let Some(g) = dispatcher_or_say() else {
        return;
    };
    let snaps: Vec<ThreadSnapshot> = ids
        .iter()
        .filter_map(|&i| g.thread_table.get(i).map(|e| e.thread.clone()))
        .map(|t| snapshot(&g, t))
        .collect();
    drop(g);
    dbg_println!();
    for s in &snaps {
        print_thread(s, "        ");
        dbg_println!();
    }
}

/// `!process [address|0 [flags]]`: the current thread's process, or with
/// `0` every process on `KiProcessListHead`; flags 0 print the header only.
/// ntrs's processes are kernel process objects (see `ke::process`).
pub fn kd_process(args: &str) {
    let mut it = args.split_whitespace();
    let first = it.next().and_then(parse_address);
    let flags = it.next().and_then(parse_address).unwrap_or(0xF);
    let threads = flags != 0;
    match first {
        Some(0) => {
            dbg_println!("**** NT ACTIVE PROCESS DUMP ****");
            for p in process::process_list() {
                print_process(p, threads);
            }
        }
        Some(a) => {
            let found = process::process_list()
                .into_iter()
                .chain([&process::KI_IDLE_PROCESS])
                .find(|p| p.address() == a);
            match found {
                Some(p) => print_process(p, threads),
                None => dbg_println!("{a:x}: Not a process"),
            }
        }
        None => match super::thread::try_current_thread() {
            Some(t) => print_process(t.process, threads),
            None => dbg_println!("No current thread"),
        },
    }
}

/// The threads `ids` as `!process <addr> 7` lists them (snapshots under the
/// dispatcher lock, printed after), each line prefixed by `indent`.
pub fn print_threads(ids: &[u32], indent: &str) {
    let Some(g) = dispatcher_or_say() else {
        return;
    };
    let snaps: Vec<ThreadSnapshot> = ids
        .iter()
        .filter_map(|&i| g.thread_table.get(i).map(|e| e.thread.clone()))
        .map(|t| snapshot(&g, t))
        .collect();
    drop(g);
    for s in &snaps {
        print_thread(s, indent);
        dbg_println!();
    }
}

/// The walk `!process` makes (every thread of the System process
/// snapshot under the locks, references dropped after), without printing:
/// the number of threads seen. For the boot test that runs it while threads
/// die on other processors.
pub fn walk_threads_for_test() -> usize {
    let ids = process::KI_SYSTEM_PROCESS.thread_ids();
    let Some(g) = sched::try_lock(KD_LOCK_SPINS) else {
        return 0;
    };
    let snaps: Vec<ThreadSnapshot> = ids
        .iter()
        .filter_map(|&i| g.thread_table.get(i).map(|e| e.thread.clone()))
        .map(|t| snapshot(&g, t))
        .collect();
    drop(g);
    snaps
        .iter()
        .filter(|s| !s.thread.name().is_empty() && s.thread.stack_limit < s.thread.initial_stack)
        .count()
}

/// `!prcb [n]`: processor `n`'s block (default: the one `~N` chose).
pub fn kd_prcb(args: &str) {
    let n = args
        .trim()
        .parse::<u32>()
        .ok()
        .unwrap_or_else(|| KD_PROCESSOR.load(Ordering::Relaxed));
    let Some(pcr) = super::pcr_of(n) else {
        dbg_println!("Cannot get PRCB address for processor {n}");
        return;
    };
    let ps = &PROCESSOR_SCHED[n as usize];
    dbg_println!("PRCB for Processor {n} at {:016x}:", pcr.current_prcb);
    dbg_println!("Current IRQL -- {}", pcr.irql.load(Ordering::Relaxed));
    dbg_println!(
        "Threads--  Current {:016x} Next {:016x} Idle {:016x}",
        pcr.prcb.current_thread.load(Ordering::Relaxed),
        pcr.prcb.next_thread.load(Ordering::Relaxed),
        pcr.prcb.idle_thread.load(Ordering::Relaxed)
    );
    dbg_println!(
        "Processor Index {n} Number (0, {n}) GroupSetMember {:x}",
        1u64 << n
    );
    dbg_println!(
        "Interrupt Count -- {:08x}",
        super::intr::COUNTS
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    );
    dbg_println!(
        "Times -- Clock  {:08x} Idle      {:08x}",
        ps.ticks.load(Ordering::Relaxed),
        ps.idle_ticks.load(Ordering::Relaxed)
    );
    dbg_println!(
        "DPC -- Dispatch interrupts {:08x} DPCs run {:08x}",
        ps.dispatch_interrupts.load(Ordering::Relaxed),
        super::dpc::dpcs_run(n)
    );
    if let Some(id) = super::apic_id_of(n) {
        dbg_println!("Local APIC id {id:x}");
    }
}

/// `!apic`: this processor's local APIC.
pub fn kd_apic(_args: &str) {
    use crate::hal::apic as a;
    dbg_println!(
        "Apic @ local APIC  ID:{:x} (v{:x})",
        a::current_apic_id(),
        a::version() & 0xFF
    );
    dbg_println!(
        "    TimerCount: {:08x} per tick ({} ns tick)",
        a::timer_count_per_tick(),
        super::clock::TIME_INCREMENT * 100
    );
    dbg_println!("    I/O APIC redirection entries: {}", a::ioapic_entries());
    let (fmt, size) = super::thread::extended_state_format();
    dbg_println!("    Extended state: {fmt}, {size} bytes per thread");
}

/// For every thread that is waiting (not running, so its kernel stack is
/// still): the words from its saved stack pointer up to its initial stack
/// that `describe` names (the caller resolves addresses inside loaded
/// images), like WinDbg's `dps` over each stack. Return addresses are among
/// them, but so are stale words: this is a raw view, not an unwind (the
/// images carry no unwind data). Used by the boot tests' watchdog.
pub fn print_waiting_stacks(describe: &dyn Fn(u64) -> Option<String>) {
    let Some(g) = dispatcher_or_say() else {
        return;
    };
    // Only the waiting threads' references are taken: a reference may not
    // be dropped under the dispatcher lock.
    let waiting: Vec<ThreadRef> = g
        .thread_table
        .ids()
        .filter(|&i| {
            g.sched
                .thread(ThreadId(i))
                .is_ok_and(|s| s.state == ThreadState::Waiting)
        })
        .filter_map(|i| g.thread_table.get(i).map(|e| e.thread.clone()))
        .collect();
    drop(g);
    for t in &waiting {
        let k: &KThread = t;
        let (sp, top) = (k.kernel_stack(), k.initial_stack);
        dbg_println!(
            "THREAD {:016x} ({}) waiting, stack {sp:016x}..{top:016x}",
            t.address(),
            k.name()
        );
        if sp == 0 || sp > top || top - sp > 64 * 1024 || sp % 8 != 0 {
            continue;
        }
        for a in (sp..top).step_by(8) {
            // SAFETY: `t` holds a reference on the thread, which keeps its
            // kernel stack allocated and mapped; `a` is an aligned address
            // inside that stack. The thread is waiting, so the words are
            // not being written; a word read while it wakes is only stale.
            let w = unsafe { core::sync::atomic::AtomicU64::from_ptr(a as *mut u64) }
                .load(Ordering::Relaxed);
            if let Some(what) = describe(w) {
                dbg_println!("    {a:016x}  {w:016x}  {what}");
            }
        }
    }
}

/// Where a stack walk of a thread starts (`k` after `.thread`).
#[derive(Clone, Copy, Debug)]
pub enum StackStart {
    /// The thread is not running: its switch frame (`KiSwapContext`'s
    /// pushes: RFLAGS, R15-R12, RSI, RDI, RBP, RBX, the return address) is
    /// at `switch_rsp`, in the kernel stack `limit..top`.
    Saved {
        switch_rsp: u64,
        limit: u64,
        top: u64,
    },
    /// The thread runs on a processor now: its registers are not saved.
    Running,
}

/// The stack walk start of the thread whose `KTHREAD` address is `addr`.
pub fn thread_stack_start(addr: u64) -> Option<StackStart> {
    let g = dispatcher_or_say()?;
    let tid = g.thread_table.find_by_address(addr)?;
    let running = g
        .sched
        .thread(ThreadId(tid))
        .is_ok_and(|t| t.state == ThreadState::Running);
    let t = g.thread_table.get(tid)?.thread.clone();
    drop(g);
    let k: &KThread = &t;
    Some(if running {
        StackStart::Running
    } else {
        StackStart::Saved {
            switch_rsp: k.kernel_stack(),
            limit: k.stack_limit,
            top: k.initial_stack,
        }
    })
}
