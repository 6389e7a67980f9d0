//! The kernel debugger shell (`kd>`), on the debug port. Commands are named
//! and formatted as WinDbg's so the book's experiments read the same.

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

fn parse_hex(s: &str) -> Option<u64> {
    let s = s
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .replace_backtick();
    u64::from_str_radix(s.as_str(), 16).ok()
}

trait Backtick {
    fn replace_backtick(&self) -> HexBuf;
}
/// A small fixed buffer for a hex number with WinDbg's ` separators removed.
struct HexBuf([u8; 32], usize);
impl HexBuf {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0[..self.1]).unwrap_or("")
    }
}
impl Backtick for str {
    fn replace_backtick(&self) -> HexBuf {
        let mut b = HexBuf([0; 32], 0);
        for c in self.bytes().filter(|&c| c != b'`') {
            if b.1 < 32 {
                b.0[b.1] = c;
                b.1 += 1;
            }
        }
        b
    }
}

/// Formats a 64-bit value as WinDbg does: `fffff800`00400000`.
struct Q(u64);
impl core::fmt::Display for Q {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:08x}`{:08x}", self.0 >> 32, self.0 as u32)
    }
}

/// Runs one kd command line.
pub fn execute(line: &str) {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else { return };
    let args: [Option<&str>; 2] = [words.next(), words.next()];
    let rest = line.trim_start()[cmd.len()..].trim();
    match cmd {
        "help" | "?" => help(),
        "dg" => dg(args[0].and_then(parse_hex), args[1].and_then(parse_hex)),
        "!pcr" => pcr(args[0]
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(kd_processor)),
        "!prcb" => ke::kdext::kd_prcb(rest),
        "!running" => ke::kdext::kd_running(rest),
        "!ready" => ke::kdext::kd_ready(rest),
        "!thread" => ke::kdext::kd_thread(rest),
        "!process" => ke::kdext::kd_process(rest),
        "!dpcs" => ke::dpc::kd_dpcs(rest),
        "!timer" => ke::timer::kd_timer(rest),
        "!apic" => ke::kdext::kd_apic(rest),
        c if c.starts_with('~') && c.len() > 1 => ke::kdext::kd_switch_processor(&c[1..]),
        "r" => registers(),
        "lm" => lm(),
        "!irql" => {
            let n = args[0]
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(kd_processor);
            let irql = if n == ke::current_processor_number() {
                ke::irql()
            } else {
                ke::pcr_of(n).map_or(0, |p| p.irql.load(Ordering::Relaxed))
            };
            dbg_println!(
                "Debugger saved IRQL for processor 0x{n:x} -- {irql} ({})",
                irql_name(irql)
            )
        }
        "rdmsr" => match args[0].and_then(parse_hex) {
            Some(m) => dbg_println!("msr[{:x}] = {}", m, Q(hal::rdmsr(m as u32))),
            None => dbg_println!("usage: rdmsr <msr>"),
        },
        ".crash" => {
            ke::bugcheck::ke_bug_check_ex(nt::bugcheck::MANUALLY_INITIATED_CRASH, 0, 0, 0, 0)
        }
        "!memusage" => {
            crate::mm::pfn::kd_lists();
        }
        "!loaderblock" => memory_map(),
        "!pfn" => crate::mm::pfn::kd_pfn(args[0]),
        "!vm" => crate::mm::pfn::kd_vm(),
        "!reg" => crate::cm::kd::kd_reg(line.trim_start_matches("!reg")),
        "!vad" => crate::mm::process::kd_vad(args[0]),
        "!address" => crate::mm::process::kd_address(args[0]),
        "!locks" => crate::ex::sync::kd_locks(),
        "!poolused" => crate::ex::xpool::kd_poolused(),
        "!exqueue" => crate::ex::worker::kd_exqueue(),
        "!sd" => crate::se::kd_sd(line.trim_start_matches("!sd").trim()),
        "!token" => crate::se::kd_token(args[0].unwrap_or("system")),
        "!object" => crate::ob::kd_object(args[0].unwrap_or("\\")),
        "!pte" => crate::mm::pte::kd_pte(args[0]),
        "!acl" => crate::se::kd_acl(line.trim_start_matches("!acl").trim()),
        "!handle" => crate::ob::handle::kd_handle(args[0], args[1]),
        "shutdown" => {
            dbg_println!("Shutting down.");
            hal::power_off(crate::hal::acpi())
        }
        "reboot" => {
            dbg_println!("Rebooting.");
            hal::reboot(crate::hal::acpi())
        }
        _ => dbg_println!("       ^ Syntax error in '{line}' (type 'help' for commands)"),
    }
}

fn kd_processor() -> u32 {
    ke::kdext::KD_PROCESSOR.load(Ordering::Relaxed)
}

fn help() {
    dbg_println!("ntrs kernel debugger commands:");
    dbg_println!("  dg <first> [last]   display GDT selectors (hex)");
    dbg_println!("  !pcr [n]            processor control region of processor n");
    dbg_println!("  !prcb [n]           processor control block of processor n");
    dbg_println!("  ~n                  make processor n the one kd shows");
    dbg_println!("  !running            what every processor is running");
    dbg_println!("  !ready              ready threads by processor and priority");
    dbg_println!("  !thread [addr|cid]  a thread (default: the current one)");
    dbg_println!("  !process [0 0]      the System process and its threads");
    dbg_println!("  !dpcs               queued DPCs per processor");
    dbg_println!("  !timer              the timer table");
    dbg_println!("  !apic               local APIC, clock and extended-state setup");
    dbg_println!("  r                   current registers");
    dbg_println!("  lm                  loaded modules");
    dbg_println!("  !irql               current IRQL");
    dbg_println!("  rdmsr <msr>         read a model-specific register");
    dbg_println!("  !memusage           physical page lists (zeroed, free, standby, ...)");
    dbg_println!("  !loaderblock        loader memory descriptors by type");
    dbg_println!("  !pfn <pfn>          a PFN database entry");
    dbg_println!("  !vm                 physical and kernel memory usage");
    dbg_println!("  !reg querykey <p> | openkeys | hivelist   the registry");
    dbg_println!("  !vad [pid]          a process's VAD tree (no pid: the address spaces)");
    dbg_println!("  !address <pid>      every region of a process's user address space");
    dbg_println!("  !locks              executive resources, owners and waiters");
    dbg_println!("  !poolused           pool usage per tag");
    dbg_println!("  !exqueue            executive worker queues");
    dbg_println!("  !object [path]      an object, or a directory's entries (default \\)");
    dbg_println!("  !handle [h] [kernel] handles of the System process (or the kernel table)");
    dbg_println!("  !pte <va>           the PXE, PPE, PDE and PTE mapping an address");
    dbg_println!("  !acl <sddl-acl>     an ACL's ACEs, e.g. !acl D:(A;;GA;;;SY)");
    dbg_println!("  !sd <sddl>          parse and show a security descriptor");
    dbg_println!("  !token [system|admin|user]  show one of the boot tokens");
    dbg_println!("  .crash              bugcheck 0xE2 MANUALLY_INITIATED_CRASH");
    dbg_println!("  shutdown | reboot   ACPI power off / reset");
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

fn dg(first: Option<u64>, last: Option<u64>) {
    let Some(first) = first else {
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

fn lm() {
    dbg_println!("start             end                 module name");
    // SAFETY: the module array lives in loader MemoryData pages that stay mapped.
    for m in unsafe { crate::rtl::loader_block().modules() } {
        let short = if m.name().eq_ignore_ascii_case("ntoskrnl.exe") {
            "nt"
        } else {
            m.name().trim_end_matches(".sys")
        };
        dbg_println!(
            "{} {}   {:<10} {}",
            Q(m.dll_base),
            Q(m.dll_base + m.size_of_image as u64),
            short,
            m.name()
        );
    }
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
