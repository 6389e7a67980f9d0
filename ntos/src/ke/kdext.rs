//! kd commands for the kernel core, named and laid out as WinDbg's:
//! `!running`, `!ready`, `!thread`, `!prcb`, `!dpcs`, `!timer`, `!apic`, `~N`.

use super::sched::{self, PROCESSOR_SCHED};
use super::thread::{self, KThread, ThreadState};
use crate::dbg_println;
use core::sync::atomic::{AtomicU32, Ordering};

/// The processor kd commands describe (`~N` switches it).
pub static KD_PROCESSOR: AtomicU32 = AtomicU32::new(0);

fn addr(t: &KThread) -> u64 {
    t as *const KThread as u64
}

fn thread_line(t: &KThread) -> alloc::string::String {
    let state = match t.state {
        ThreadState::Running => alloc::format!("RUNNING on processor {:x}", t.next_processor),
        ThreadState::Ready => alloc::format!("READY on processor {:x}", t.next_processor),
        ThreadState::Waiting => {
            alloc::format!("WAIT: ({:?}) KernelMode Non-Alertable", t.wait_reason)
        }
        s => alloc::string::String::from(s.name()),
    };
    alloc::format!(
        "THREAD {:016x}  Cid {:04x}.{:04x}  Teb: 0000000000000000 Win32Thread: 0000000000000000 {}",
        addr(t),
        t.process_id,
        t.id * 4,
        state
    )
}

/// `~N`: switch the processor kd shows.
pub fn switch_processor(arg: &str) {
    match nt::kd::parse_u32(arg.trim_end_matches('s')) {
        Ok(n) if n < super::processor_count() => {
            KD_PROCESSOR.store(n, Ordering::Relaxed);
            dbg_println!("Switched to processor {n}");
        }
        _ => dbg_println!("Invalid processor number '{arg}'"),
    }
}

/// `!running`: what every processor runs.
pub fn running() {
    let n = super::processor_count();
    let all: u64 = (0..n).fold(0, |m, p| m | 1 << p);
    let idle: u64 = (0..n)
        .filter(|&p| {
            super::pcr_of(p).is_some_and(|pcr| pcr.prcb.current_thread == pcr.prcb.idle_thread)
        })
        .fold(0, |m, p| m | 1 << p);
    dbg_println!("System Processors:  ({all:016x})");
    dbg_println!("  Idle Processors:  ({idle:016x})");
    dbg_println!();
    dbg_println!("       Prcbs             Current         (pri) Next            (pri) Idle");
    for p in 0..n {
        let Some(pcr) = super::pcr_of(p) else {
            continue;
        };
        let cur = pcr.prcb.current_thread;
        // SAFETY: CurrentThread points at a live thread.
        let pri = unsafe { (*(cur as *const KThread)).priority };
        let name = if cur == 0 {
            ""
        } else {
            // SAFETY: as above.
            unsafe { (*(cur as *const KThread)).name() }
        };
        dbg_println!(
            "  {:<2} {:016x}  {:016x} ({:>2})                       {:016x}  {}",
            p,
            pcr.current_prcb,
            cur,
            pri,
            pcr.prcb.idle_thread,
            name
        );
    }
}

/// `!ready`: ready threads by processor and priority.
pub fn ready() {
    let (old, st) = sched::lock();
    let mut lines = alloc::vec::Vec::new();
    for p in 0..super::processor_count() {
        let q = &st.ready[p as usize];
        if q.is_empty() {
            lines.push(alloc::format!("Processor {p}: No threads in READY state"));
            continue;
        }
        for pri in (0..32u8).rev() {
            let ids: alloc::vec::Vec<u32> = q.queue(pri).copied().collect();
            if ids.is_empty() {
                continue;
            }
            lines.push(alloc::format!(
                "Processor {p}: Ready Threads at priority {pri}"
            ));
            for id in ids {
                if let Some(t) = thread::thread(id) {
                    lines.push(alloc::format!("    {}", thread_line(t)));
                }
            }
        }
    }
    sched::unlock(old);
    for l in lines {
        dbg_println!("{l}");
    }
}

/// `!thread [address|tid]`: the current thread, or one by address or Cid.
pub fn thread_cmd(arg: Option<&str>) {
    let t = match arg {
        None => Some(sched::current_thread()),
        Some(a) => {
            let v = nt::kd::parse_number(a).ok();
            v.and_then(|v| {
                thread::thread_ids()
                    .filter_map(thread::thread)
                    .find(|t| addr(t) == v || (t.id * 4) as u64 == v)
            })
        }
    };
    let Some(t) = t else {
        dbg_println!("{}: Not a thread", arg.unwrap_or(""));
        return;
    };
    dbg_println!("{}", thread_line(t));
    dbg_println!("    Owning Process            System       Image:         System");
    dbg_println!(
        "    Wait Start TickCount      {}",
        super::clock::ke_query_tick_count()
    );
    dbg_println!("    Context Switch Count      {}", t.context_switches);
    dbg_println!("    KernelTime                {} ticks", t.kernel_time);
    dbg_println!(
        "    Win32 Start Address {:016x} ({})",
        t.start_routine.map_or(0, |f| f as *const () as u64),
        t.name()
    );
    dbg_println!(
        "    Stack Init {:016x} Current {:016x} Base {:016x} Limit {:016x}",
        t.initial_stack,
        t.kernel_stack,
        t.initial_stack,
        t.stack_limit
    );
    dbg_println!(
        "    Priority {}  BasePriority {}  PriorityDecrement {}  IoPriority 2  PagePriority 5",
        t.priority,
        t.base_priority,
        t.priority_decrement
    );
    dbg_println!(
        "    Affinity {:x}  Ideal processor {}  Quantum {}/{}",
        t.affinity,
        t.ideal_processor,
        t.quantum.remaining,
        t.quantum.reset
    );
}

/// `!prcb [n]`.
pub fn prcb(n: u32) {
    let Some(pcr) = super::pcr_of(n) else {
        dbg_println!("Cannot get PRCB address for processor {n}");
        return;
    };
    let ps = &PROCESSOR_SCHED[n as usize];
    dbg_println!("PRCB for Processor {n} at {:016x}:", pcr.current_prcb);
    dbg_println!("Current IRQL -- {}", pcr.irql);
    dbg_println!(
        "Threads--  Current {:016x} Next {:016x} Idle {:016x}",
        pcr.prcb.current_thread,
        pcr.prcb.next_thread,
        pcr.prcb.idle_thread
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
        super::dpc::DPCS_RUN[n as usize].load(Ordering::Relaxed)
    );
    dbg_println!("Local APIC id {:x}", super::apic_id_of(n).unwrap_or(0));
}

/// `!apic`: this processor's local APIC.
pub fn apic() {
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

/// `!process [0 0]`: the System process and its threads (ntrs has no other
/// processes with threads yet; user address spaces are listed by `!vad`).
pub fn process(args: &str) {
    let brief = args.split_whitespace().nth(1) == Some("0");
    let ids: alloc::vec::Vec<u32> = thread::thread_ids().collect();
    crate::dbg_println!("**** NT ACTIVE PROCESS DUMP ****");
    crate::dbg_println!(
        "PROCESS ffffffffffffffff\n    SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: 0000\n    DirBase: {:08x}  ObjectTable: System  HandleCount: {:>4}.\n    Image: System",
        crate::loader_block().pml4_physical,
        crate::ob::handle::handle_counts().0
    );
    if brief {
        return;
    }
    crate::dbg_println!();
    for id in ids {
        if let Some(t) = thread::thread(id) {
            crate::dbg_println!("        {}", thread_line(t));
            crate::dbg_println!(
                "            Priority {} BasePriority {}  ContextSwitches {}  {}",
                t.priority,
                t.base_priority,
                t.context_switches,
                t.name()
            );
        }
    }
}
