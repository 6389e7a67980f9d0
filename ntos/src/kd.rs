//! The kernel debugger shell (`kd>`), on the debug port. Commands are named
//! and formatted as WinDbg's so the book's experiments read the same.

pub mod mem;
pub mod print;

use crate::ke::{self, gdt};
use crate::{dbg_print, dbg_println, hal};
use core::sync::atomic::{AtomicBool, Ordering};

static FIRST_PROMPT: AtomicBool = AtomicBool::new(true);

/// Milliseconds from the firmware hand-off to now.
pub fn ms_since_handoff() -> u64 {
    let lb = crate::rtl::loader_block();
    if lb.tsc_frequency == 0 {
        return 0;
    }
    (hal::rdtsc().saturating_sub(lb.firmware_handoff_tsc)) * 1000 / lb.tsc_frequency
}

/// Between polls of the debug port: sleep a tick when the scheduler runs and
/// this is an ordinary thread (so lower-priority threads run), else spin.
fn wait_for_input() {
    if ke::sched::SCHEDULER_RUNNING.load(Ordering::Relaxed)
        && ke::irql() == ke::PASSIVE_LEVEL
        && hal::interrupts_enabled()
    {
        ke::sched::ke_delay_execution_thread(ke::clock::TIME_INCREMENT);
    } else {
        // Waiting for a person at a raised IRQL is not a hang.
        ke::clock::set_watchdogs_enabled(false);
        core::hint::spin_loop();
    }
}

/// Reads one line from the debug port, echoing it.
fn read_line(buf: &mut [u8; 256]) -> &str {
    let mut n = 0;
    loop {
        let Some(c) = crate::rtl::debug::serial_read_byte() else {
            wait_for_input();
            continue;
        };
        match c {
            b'\r' | b'\n' => {
                dbg_println!();
                if !ke::bugcheck::ke_has_bugchecked() {
                    ke::clock::set_watchdogs_enabled(true);
                }
                break;
            }
            0x08 | 0x7F if n > 0 => {
                n -= 1;
                dbg_print!("\x08 \x08");
            }
            c if (0x20..0x7F).contains(&c) && n < buf.len() => {
                buf[n] = c;
                n += 1;
                crate::rtl::debug::serial_write_byte(c);
            }
            _ => {}
        }
    }
    core::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// The kd read-eval loop; never returns (`shutdown` powers off).
pub fn kd_loop() -> ! {
    if FIRST_PROMPT.swap(false, Ordering::SeqCst) {
        let ms = ms_since_handoff();
        dbg_println!("ntrs: firmware hand-off to kd prompt: {ms} ms");
        if crate::rtl::load_options()
            .split_whitespace()
            .any(|o| o.eq_ignore_ascii_case("/BENCH"))
        {
            dbg_println!("BENCH boot_to_kd_prompt {ms} ms");
            crate::bench::run_all();
        }
    }
    let mut buf = [0u8; 256];
    loop {
        dbg_print!("kd> ");
        let line = read_line(&mut buf);
        execute(line.trim());
    }
}

/// The one number parser every kd command uses (`nt::kd::parse_number`:
/// hex by default, optional `0x`, backtick separators, `0n` decimal).
pub fn parse_number(s: &str) -> Option<u64> {
    nt::kd::parse_number(s).ok()
}

/// Formats a 64-bit value as WinDbg does: `fffff800`00400000`.
pub struct Q(pub u64);
impl core::fmt::Display for Q {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:08x}`{:08x}", self.0 >> 32, self.0 as u32)
    }
}

/// A kd command handler: gets the command line after the command word.
pub type Handler = fn(&str);

/// The first argument, if any.
fn first(args: &str) -> Option<&str> {
    args.split_whitespace().next()
}

/// A processor number argument (default: the one kd shows); prints the
/// parse error and returns `None` for a bad one.
fn processor_arg(args: &str) -> Option<u32> {
    match first(args) {
        None => Some(kd_processor()),
        Some(a) => match nt::kd::parse_u32(a) {
            Ok(n) => Some(n),
            Err(e) => {
                dbg_println!("{e} in '{a}'");
                None
            }
        },
    }
}

/// The kd command table: dispatch (`execute`) and `help` both read it.
pub static COMMANDS: &[nt::kd::Command<Handler>] = &[
    cmd("help", &["?"], "", "this list", |_| help()),
    cmd("dg", &[], "<first> [last]", "display GDT selectors", dg),
    cmd(
        "!pcr",
        &[],
        "[n]",
        "processor control region of processor n",
        |a| {
            if let Some(n) = processor_arg(a) {
                pcr(n)
            }
        },
    ),
    cmd(
        "!prcb",
        &[],
        "[n]",
        "processor control block of processor n",
        ke::kdext::kd_prcb,
    ),
    cmd(
        "~",
        &[],
        "<n>",
        "make processor n the one kd shows (~1)",
        ke::kdext::kd_switch_processor,
    ),
    cmd(
        "!running",
        &[],
        "",
        "what every processor is running",
        ke::kdext::kd_running,
    ),
    cmd(
        "!ready",
        &[],
        "",
        "ready threads by processor and priority",
        ke::kdext::kd_ready,
    ),
    cmd(
        "!thread",
        &[],
        "[addr|cid]",
        "a thread (default: the current one)",
        ke::kdext::kd_thread,
    ),
    cmd(
        "!process",
        &[],
        "[0 | address [flags]]",
        "processes (0: every one) and, with flags, their threads",
        crate::ps::kd::kd_process,
    ),
    cmd(
        "!dpcs",
        &[],
        "",
        "queued DPCs per processor",
        ke::dpc::kd_dpcs,
    ),
    cmd("!timer", &[], "", "the timer table", ke::timer::kd_timer),
    cmd(
        "!apic",
        &[],
        "",
        "local APIC, clock and extended-state setup",
        ke::kdext::kd_apic,
    ),
    cmd("r", &[], "", "current registers", |_| registers()),
    cmd("lm", &[], "", "loaded modules", |_| crate::mm::ldr::kd_lm()),
    cmd("!irql", &[], "[n]", "the IRQL of processor n", irql_cmd),
    cmd(
        "rdmsr",
        &[],
        "<msr>",
        "read a model-specific register",
        rdmsr,
    ),
    cmd(
        "!memusage",
        &[],
        "",
        "physical page lists (zeroed, free, standby, ...)",
        |_| crate::mm::pfn::kd_lists(),
    ),
    cmd(
        "!loaderblock",
        &[],
        "",
        "loader memory descriptors by type",
        |_| memory_map(),
    ),
    cmd("!pfn", &[], "<pfn>", "a PFN database entry", |a| {
        crate::mm::pfn::kd_pfn(first(a))
    }),
    cmd("!vm", &[], "", "physical and kernel memory usage", |_| {
        crate::mm::pfn::kd_vm()
    }),
    cmd(
        "!pte",
        &[],
        "<va>",
        "the PXE, PPE, PDE and PTE mapping an address",
        |a| crate::mm::pte::kd_pte(first(a)),
    ),
    cmd(
        "!vad",
        &[],
        "[pid]",
        "a process's VAD tree (no pid: the address spaces)",
        |a| crate::mm::process::kd_vad(first(a)),
    ),
    cmd(
        "!ca",
        &[],
        "[address]",
        "a control area and its segment (no address: the control areas)",
        |a| crate::mm::file::kd_ca(first(a)),
    ),
    cmd(
        "!address",
        &[],
        "<pid>",
        "every region of a process's user address space",
        |a| crate::mm::process::kd_address(first(a)),
    ),
    cmd(
        "!reg",
        &[],
        "querykey <p> | openkeys | hivelist",
        "the registry",
        crate::cm::kd::kd_reg,
    ),
    cmd(
        "!locks",
        &[],
        "",
        "executive resources, owners and waiters",
        |_| crate::ex::sync::kd_locks(),
    ),
    cmd("!poolused", &[], "", "pool usage per tag", |_| {
        crate::ex::xpool::kd_poolused()
    }),
    cmd("!filecache", &[], "", "system cache views and cached streams", |_| {
        crate::cc::kd_filecache()
    }),
    cmd("!defwrites", &[], "", "cache write throttle state", |_| {
        crate::cc::kd_defwrites()
    }),
    cmd("!exqueue", &[], "", "executive worker queues", |_| {
        crate::ex::worker::kd_exqueue()
    }),
    cmd(
        "!object",
        &[],
        "[\\path|address]",
        "an object, or a directory's entries (default \\)",
        |a| crate::ob::kd_object(first(a).unwrap_or("\\")),
    ),
    cmd(
        "!handle",
        &[],
        "[h [flags [process]]] | [h] kernel",
        "handles of a process (default the current one) or the kernel table",
        |a| {
            let mut w = a.split_whitespace();
            crate::ob::handle::kd_handle(w.next(), w.next(), w.next())
        },
    ),
    cmd(
        "!acl",
        &[],
        "<sddl-acl>",
        "an ACL's ACEs, e.g. !acl D:(A;;GA;;;SY)",
        crate::se::kd_acl,
    ),
    cmd(
        "!sd",
        &[],
        "<address|\\path>",
        "an object's security descriptor",
        crate::se::kd_sd,
    ),
    cmd(
        "!sddl",
        &[],
        "<sddl>",
        "parse an SDDL security descriptor and dump it",
        crate::se::kd_sddl,
    ),
    cmd(
        "!token",
        &[],
        "[address]",
        "a token (default: the current thread's effective token)",
        crate::se::kd_token,
    ),
    cmd(
        "!devnode",
        &[],
        "[address [flags]]",
        "device nodes (0 = the root; flags 1 children, 2 raw resources, 4 requirements, 8 translated resources)",
        crate::io::pnp::kd::kd_devnode,
    ),
    cmd(
        "!arbiter",
        &[],
        "[flags]",
        "the PnP resource arbiters' allocated ranges (flags 1 port, 2 memory, 4 interrupt, 0x10 bus number; default all)",
        crate::io::pnp::kd::kd_arbiter,
    ),
    cmd(
        "!drvobj",
        &[],
        "<\\Driver\\name|address> [flags]",
        "a driver object and its devices (flags 2: dispatch routines)",
        crate::io::kd::kd_drvobj,
    ),
    cmd(
        "!devobj",
        &[],
        "<\\Device\\name|address>",
        "a device object",
        crate::io::kd::kd_devobj,
    ),
    cmd(
        "!devstack",
        &[],
        "<\\Device\\name|address>",
        "the device stack a device is in",
        crate::io::kd::kd_devstack,
    ),
    cmd(
        "!irp",
        &[],
        "<address>",
        "an IRP and its stack locations",
        crate::io::kd::kd_irp,
    ),
    cmd(
        "!irpfind",
        &[],
        "",
        "every live IRP",
        crate::io::kd::kd_irpfind,
    ),
    cmd(
        ".crash",
        &[],
        "",
        "bugcheck 0xE2 MANUALLY_INITIATED_CRASH",
        |_| ke::bugcheck::ke_bug_check_ex(nt::bugcheck::MANUALLY_INITIATED_CRASH, 0, 0, 0, 0),
    ),
    cmd(
        "shutdown",
        &[],
        "",
        "flush hives and caches, dismount, ACPI power off",
        |_| {
            dbg_println!("Shutting down.");
            crate::ex::shutdown::nt_shutdown_system(crate::ex::shutdown::ShutdownAction::PowerOff)
        },
    ),
    cmd(
        "reboot",
        &[],
        "",
        "flush hives and caches, dismount, reset the machine",
        |_| {
            dbg_println!("Rebooting.");
            crate::ex::shutdown::nt_shutdown_system(crate::ex::shutdown::ShutdownAction::Reboot)
        },
    ),
    cmd(
        "db",
        &[],
        "<address> [L<count>|<end>]",
        "display bytes and ASCII (user addresses: the .process address space)",
        |a| mem::dump(nt::kdmem::Unit::Byte, a),
    ),
    cmd("dw", &[], "<address> [L<count>|<end>]", "display words", |a| {
        mem::dump(nt::kdmem::Unit::Word, a)
    }),
    cmd(
        "dd",
        &[],
        "<address> [L<count>|<end>]",
        "display double words",
        |a| mem::dump(nt::kdmem::Unit::Dword, a),
    ),
    cmd(
        "dq",
        &[],
        "<address> [L<count>|<end>]",
        "display quad words",
        |a| mem::dump(nt::kdmem::Unit::Qword, a),
    ),
    cmd(
        "dps",
        &[],
        "<address> [L<count>|<end>]",
        "display pointers with their symbols",
        mem::dps,
    ),
    cmd(
        "u",
        &[],
        "<address> [L<count>]",
        "disassemble (count instructions, default 8)",
        mem::unassemble,
    ),
    cmd(
        "x",
        &[],
        "nt!<pattern>",
        "symbols (ntoskrnl's exports) matching * and ? wildcards",
        mem::examine,
    ),
    cmd(
        "ln",
        &[],
        "<address>",
        "the nearest symbols below and above an address",
        mem::list_near,
    ),
    cmd(
        "!peb",
        &[],
        "",
        "the PEB of the .process process (default: the current one)",
        mem::peb,
    ),
    cmd(
        "k",
        &[],
        "[frames]",
        "kernel stack of the .thread thread (default: the current one), from unwind data",
        mem::stack,
    ),
    cmd(
        ".thread",
        &[],
        "[thread]",
        "set the thread k walks (0: current)",
        mem::dot_thread,
    ),
    cmd(
        ".process",
        &[],
        "[process]",
        "set the implicit process for user addresses (0: current)",
        mem::dot_process,
    ),
];

const fn cmd(
    name: &'static str,
    aliases: &'static [&'static str],
    syntax: &'static str,
    help: &'static str,
    handler: Handler,
) -> nt::kd::Command<Handler> {
    nt::kd::Command {
        name,
        aliases,
        syntax,
        help,
        handler,
    }
}

/// Runs one kd command line: looks the command word up in `COMMANDS`.
pub fn execute(line: &str) {
    let (word, args) = nt::kd::split_command(line);
    if word.is_empty() {
        return;
    }
    match nt::kd::find(COMMANDS, word) {
        Some(c) => (c.handler)(args),
        None => dbg_println!("       ^ Syntax error in '{line}' (type 'help' for commands)"),
    }
}

fn kd_processor() -> u32 {
    ke::kdext::KD_PROCESSOR.load(Ordering::Relaxed)
}

/// Writes kd output through `dbg_print!`.
struct DbgWriter;
impl core::fmt::Write for DbgWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        dbg_print!("{s}");
        Ok(())
    }
}

/// `help`: one line per entry of `COMMANDS`.
fn help() {
    dbg_println!("ntrs kernel debugger commands (numbers are hex; 0n10 is decimal):");
    for c in COMMANDS {
        let _ = nt::kd::write_help_line(&mut DbgWriter, c);
        dbg_println!();
    }
}

fn irql_cmd(args: &str) {
    let Some(n) = processor_arg(args) else { return };
    let irql = if n == ke::current_processor_number() {
        ke::irql()
    } else {
        match ke::pcr_of(n) {
            Some(p) => p.irql.load(Ordering::Relaxed),
            None => {
                dbg_println!("Cannot get PRCB address for processor {n}");
                return;
            }
        }
    };
    dbg_println!(
        "Debugger saved IRQL for processor 0x{n:x} -- {irql} ({})",
        irql_name(irql)
    )
}

fn rdmsr(args: &str) {
    match first(args).map(nt::kd::parse_u32) {
        Some(Ok(m)) => dbg_println!("msr[{:x}] = {}", m, Q(hal::rdmsr(m))),
        Some(Err(e)) => dbg_println!("{e}"),
        None => dbg_println!("usage: rdmsr <msr>"),
    }
}

fn irql_name(i: u8) -> &'static str {
    match i {
        0 => "PASSIVE_LEVEL",
        1 => "APC_LEVEL",
        2 => "DISPATCH_LEVEL",
        13 => "CLOCK_LEVEL",
        14 => "IPI_LEVEL",
        15 => "HIGH_LEVEL",
        _ => "DEVICE_LEVEL",
    }
}

fn dg(args: &str) {
    let mut w = args.split_whitespace().map(parse_number);
    let (Some(Some(first)), last) = (w.next(), w.next().flatten()) else {
        dbg_println!("usage: dg <first selector> [last selector]");
        return;
    };
    let last = last.unwrap_or(first);
    let pcr = ke::ke_get_pcr();
    // SAFETY: GdtBase points at this processor's static GDT of GDT_ENTRIES entries.
    let table =
        unsafe { core::slice::from_raw_parts(pcr.gdt_base as *const u64, gdt::GDT_ENTRIES) };
    dbg_println!("                                                    P Si Gr Pr Lo");
    dbg_println!("Sel        Base              Limit          Type    l ze an es ng Flags");
    dbg_println!("---- ----------------- ----------------- ---------- - -- -- -- -- --------");
    let mut sel = first & !7;
    while sel <= last {
        let i = (sel / 8) as usize;
        if i >= table.len() {
            dbg_println!("{sel:04X} Unable to get descriptor");
        } else {
            let d = gdt::decode(table[i], table.get(i + 1).copied().unwrap_or(0));
            dbg_println!(
                "{:04x} {} {} {} {} {} {} {} {} {:08x}",
                sel,
                Q(d.base),
                Q(d.limit),
                d.type_name,
                d.dpl,
                if d.big { "Bg" } else { "Nb" },
                if d.granular { "Pg" } else { "By" },
                if d.present { "P " } else { "Np" },
                if d.long { "Lo" } else { "Nl" },
                d.flags
            );
        }
        sel += 8;
    }
}

fn pcr(n: u32) {
    let Some(block) = ke::processor_block(n) else {
        dbg_println!("Cannot get PRCB address for processor {n}");
        return;
    };
    let p = &block.pcr;
    dbg_println!("KPCR for Processor {} at {:016x}:", n, p.self_);
    dbg_println!("    Major {} Minor {}", p.major_version, p.minor_version);
    dbg_println!("\t              Self: {:016x}", p.self_);
    dbg_println!("\t              Prcb: {:016x}", p.current_prcb);
    let irql = if n == ke::current_processor_number() {
        ke::irql()
    } else {
        p.irql.load(Ordering::Relaxed)
    };
    dbg_println!("\t              Irql: {:016x}", irql);
    dbg_println!("\t               IDT: {:016x}", p.idt_base);
    dbg_println!("\t               GDT: {:016x}", p.gdt_base);
    dbg_println!("\t               TSS: {:016x}", p.tss_base);
    dbg_println!(
        "\t     CurrentThread: {:016x}",
        p.prcb.current_thread.load(Ordering::Relaxed)
    );
    dbg_println!(
        "\t        NextThread: {:016x}",
        p.prcb.next_thread.load(Ordering::Relaxed)
    );
    dbg_println!(
        "\t        IdleThread: {:016x}",
        p.prcb.idle_thread.load(Ordering::Relaxed)
    );
    dbg_println!("\t           RspBase: {:016x}", p.prcb.rsp_base);
}

fn registers() {
    let (rsp, rbp, rflags, cs, ss, ds, cr0, cr3, cr4): (
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
    );
    // SAFETY: reads registers only.
    unsafe {
        core::arch::asm!(
            "mov {0}, rsp", "mov {1}, rbp", "pushfq", "pop {2}",
            "mov {3:x}, cs", "mov {4:x}, ss", "mov {5:x}, ds",
            "mov {6}, cr0", "mov {7}, cr3", "mov {8}, cr4",
            out(reg) rsp, out(reg) rbp, out(reg) rflags, out(reg) cs, out(reg) ss, out(reg) ds,
            out(reg) cr0, out(reg) cr3, out(reg) cr4,
        );
    }
    let rip = registers as *const () as usize as u64;
    dbg_println!("rsp={rsp:016x} rbp={rbp:016x} rip={rip:016x}");
    dbg_println!("cr0={cr0:016x} cr3={cr3:016x} cr4={cr4:016x} efl={rflags:08x}");
    dbg_println!(
        "cs={:04x}  ss={:04x}  ds={:04x}  gsbase={:016x}  kernelgsbase={:016x}",
        cs & 0xFFFF,
        ss & 0xFFFF,
        ds & 0xFFFF,
        hal::rdmsr(ke::MSR_GS_BASE),
        hal::rdmsr(ke::MSR_KERNEL_GS_BASE)
    );
}

fn memory_map() {
    let lb = crate::rtl::loader_block();
    dbg_println!("Base       Pages      Type");
    // SAFETY: the descriptor array lives in loader MemoryData pages that stay mapped.
    for d in unsafe { lb.memory_descriptors() } {
        dbg_println!(
            "{:010x} {:010x} {}",
            d.base_page,
            d.page_count,
            d.memory_type.name()
        );
    }
}

/// Boot tests of the command table.
pub const TESTS: &[crate::ktest::Test] = &[("kd.command_table", || {
    use crate::ktest::check;
    nt::kd::validate(COMMANDS).map_err(|_| "a kd command name is used twice or lacks help")?;
    // Every command word dispatch accepts is in the table `help` prints.
    for w in [
        "help",
        "?",
        "dg",
        "!pcr",
        "!prcb",
        "~",
        "!running",
        "!ready",
        "!thread",
        "!process",
        "!dpcs",
        "!timer",
        "!apic",
        "r",
        "lm",
        "!irql",
        "rdmsr",
        ".crash",
        "!memusage",
        "!loaderblock",
        "!pfn",
        "!vm",
        "!reg",
        "!vad",
        "!address",
        "!locks",
        "!poolused",
        "!exqueue",
        "!filecache",
        "!defwrites",
        "!sd",
        "!sddl",
        "!token",
        "!object",
        "!pte",
        "!acl",
        "!handle",
        "shutdown",
        "reboot",
        "db",
        "dw",
        "dd",
        "dq",
        "dps",
        "u",
        "x",
        "ln",
        ".process",
        "k",
        ".thread",
        "!peb",
    ] {
        check(
            nt::kd::find(COMMANDS, w).is_some(),
            "a kd command is missing from the table",
        )?;
    }
    check(
        nt::kd::split_command("~1") == ("~", "1")
            && parse_number("fffff800`00400000") == Some(0xFFFF_F800_0040_0000),
        "kd number parsing",
    )
})];
