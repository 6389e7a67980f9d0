//! kd commands of the process manager, shaped as WinDbg's and printing only
//! what ntrs has: `!process`, the process part of `!handle`.

use super::*;
use crate::dbg_println;
use crate::kd::parse_number;

/// `100 ns` units as `h:mm:ss.mmm`.
fn hundred_ns(t: u64) -> String {
    let ms = t / 10_000;
    alloc::format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The process whose `PEPROCESS` (object address) is `addr`, or Idle's
/// kernel process address.
fn process_at(addr: u64) -> Option<Arc<EProcess>> {
    if let Some(idle) = idle_process() {
        if idle.pcb().address() == addr {
            return Some(Arc::clone(idle));
        }
    }
    process_list()
        .into_iter()
        .find(|p| p.address() == addr || p.pcb().address() == addr)
}

fn print_process(p: &EProcess, flags: u64) {
    let addr = if p.object() != 0 {
        p.address()
    } else {
        p.pcb().address()
    };
    dbg_println!("PROCESS {addr:016x}");
    dbg_println!(
        "    Cid: {:04x}    ParentCid: {:04x}",
        p.pid(),
        p.inherited_from
    );
    match p.handle_table() {
        Some(t) => dbg_println!(
            "    DirBase: {:08x}  ObjectTable: {:016x}  HandleCount: {}.",
            p.pcb().directory_table_base(),
            t as *const Table as u64,
            t.count()
        ),
        None => dbg_println!("    DirBase: {:08x}", p.pcb().directory_table_base()),
    }
    dbg_println!("    Image: {}", p.image_file_name);
    if flags == 0 {
        dbg_println!();
        return;
    }
    let now = crate::ke::clock::ke_query_system_time();
    dbg_println!(
        "    ElapsedTime                       {}",
        hundred_ns(now.saturating_sub(p.create_time))
    );
    dbg_println!(
        "    KernelTime                        {}",
        crate::ke::kdext::ticks_as_time(p.pcb().kernel_time())
    );
    dbg_println!(
        "    BasePriority                      {}",
        p.pcb().base_priority
    );
    if p.has_exited() {
        dbg_println!(
            "    ExitStatus                        {:08x}",
            p.exit_status().as_u32()
        );
    }
    dbg_println!(
        "    ActiveThreads                     {}",
        p.active_threads()
    );
    dbg_println!();
    let Some(ids) = p.pcb().try_thread_ids() else {
        dbg_println!("    (thread list locked by a stopped processor)");
        return;
    };
    for tid in ids {
        let e = crate::ke::sched::reference_thread(tid).and_then(|k| ethread_of_kernel(&k));
        if let Some(e) = e {
            dbg_println!(
                "        THREAD {:016x}  Cid {:04x}.{:04x}",
                e.address(),
                p.pid(),
                e.tid()
            );
        }
        crate::ke::kdext::print_threads(&[tid], "        ");
    }
}

/// `!process [0 | address] [flags]`: the current process, every process
/// (`0`, Idle not included, as WinDbg's walk of `PsActiveProcessHead`), or
/// the one at `address` (its `PEPROCESS`, or the kernel process object);
/// flags 0 print the summary, others add times and threads.
pub fn kd_process(args: &str) {
    let mut it = args.split_whitespace();
    let first = it.next().and_then(parse_number);
    let flags = it.next().and_then(parse_number).unwrap_or(0xF);
    match first {
        Some(0) => {
            dbg_println!("**** NT ACTIVE PROCESS DUMP ****");
            for p in process_list() {
                print_process(&p, flags);
            }
        }
        Some(a) => match process_at(a) {
            Some(p) => print_process(&p, flags),
            None => dbg_println!("{a:x}: Not a process"),
        },
        None => match current_process() {
            Some(p) => print_process(&p, flags),
            None => dbg_println!("No current process"),
        },
    }
}

/// `!handle`'s process argument: runs `f` with a label and the handle
/// table of the process at that address (default: the current process).
/// False if the address names no process with a handle table.
pub fn kd_with_process_table(process: Option<&str>, f: impl FnOnce(&str, &Table)) -> bool {
    let p = match process.and_then(parse_number) {
        Some(a) if a != 0 => process_at(a),
        _ => current_process().or_else(|| system_process().cloned()),
    };
    let Some(p) = p else {
        return false;
    };
    let Some(t) = p.handle_table() else {
        return false;
    };
    let label = alloc::format!(
        "PROCESS {:016x}  Cid: {:04x}  Image: {}\n",
        p.address(),
        p.pid(),
        p.image_file_name
    );
    f(&label, t);
    true
}
