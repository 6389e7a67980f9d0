//! In-kernel boot tests (`/TESTS`): one `KTEST <name> PASS|FAIL <detail>`
//! line each on the debug port, then isa-debug-exit 0x10 (all passed) or 0x11.

use crate::ke::probe::*;
use crate::ke::trap::*;
use crate::ke::{self, gdt};
use crate::{dbg_println, hal};
use core::sync::atomic::Ordering;

/// A boot test's outcome: `Err` carries the reason printed after FAIL.
pub type TestResult = Result<(), &'static str>;
/// A named boot test.
pub type Test = (&'static str, fn() -> TestResult);

/// `Ok` if `cond` holds, else the reason.
pub fn check(cond: bool, why: &'static str) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(why)
    }
}

/// 100 ns units per millisecond.
pub const MS: u64 = 10_000;

/// `KeDelayExecutionThread` for `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    ke::sched::ke_delay_execution_thread(ms * MS);
}

/// Waits (sleeping) until `cond` holds or `ms` elapse.
pub fn wait_until(ms: u64, cond: impl Fn() -> bool) -> bool {
    let end = ke::clock::ke_query_interrupt_time() + ms * MS;
    while !cond() {
        if ke::clock::ke_query_interrupt_time() > end {
            return false;
        }
        sleep_ms(2);
    }
    true
}

/// Resets the probe record before a probe runs.
fn arm() {
    KI_PROBE_VECTOR.store(u64::MAX, Ordering::SeqCst);
    KI_PROBE_ERROR.store(0, Ordering::SeqCst);
    KI_PROBE_CR2.store(0, Ordering::SeqCst);
}

fn vector() -> u64 {
    KI_PROBE_VECTOR.load(Ordering::SeqCst)
}

/// An address no page table maps (PML4 slot 0x1F2).
const UNMAPPED: u64 = 0xFFFF_F900_0000_0000;

const TESTS: &[Test] = &[
    ("ke.gdt.layout", || {
        let pcr = ke::ke_get_pcr();
        // SAFETY: GdtBase points at the static GDT.
        let g =
            unsafe { core::slice::from_raw_parts(pcr.gdt_base as *const u64, gdt::GDT_ENTRIES) };
        check(g[2] == gdt::descriptor(0, 0, 0x9B, 2), "KGDT64_R0_CODE")?;
        check(g[3] == gdt::descriptor(0, 0, 0x93, 4), "KGDT64_R0_DATA")?;
        check(
            g[4] == gdt::descriptor(0, 0xFFFFF, 0xFB, 0xC),
            "KGDT64_R3_CMCODE",
        )?;
        check(
            g[5] == gdt::descriptor(0, 0xFFFFF, 0xF3, 0xC),
            "KGDT64_R3_DATA",
        )?;
        check(g[6] == gdt::descriptor(0, 0, 0xFB, 2), "KGDT64_R3_CODE")?;
        check((g[8] >> 40) & 0xFF == 0x8B, "TSS not busy after LTR")?;
        check(
            g[10] == gdt::descriptor(0, 0x3C00, 0xF3, 4),
            "KGDT64_R3_CMTEB",
        )?;
        let cs: u16;
        // SAFETY: reads CS.
        unsafe { core::arch::asm!("mov {0:x}, cs", out(reg) cs) };
        check(cs == gdt::KGDT64_R0_CODE, "CS is not KGDT64_R0_CODE")
    }),
    ("ke.pcr.gsbase", || {
        let pcr = ke::ke_get_pcr();
        check(
            hal::rdmsr(ke::MSR_GS_BASE) == pcr.self_,
            "GS base != KPCR.Self",
        )?;
        check(
            pcr.current_prcb == pcr.self_ + 0x180,
            "Prcb not at KPCR+0x180",
        )?;
        check(
            hal::rdmsr(ke::MSR_KERNEL_GS_BASE) == 0,
            "KernelGsBase should hold the user GS (0)",
        )
    }),
    ("ke.trap.divide_error", || {
        arm();
        // SAFETY: the probe faults and the dispatcher resumes it.
        unsafe { KiProbeDivide() };
        check(vector() == 0, "#DE not delivered to vector 0")?;
        check(
            exception_code(0) == 0xC000_0094,
            "STATUS_INTEGER_DIVIDE_BY_ZERO",
        )
    }),
    ("ke.trap.invalid_opcode", || {
        arm();
        // SAFETY: as above.
        unsafe { KiProbeInvalidOpcode() };
        check(vector() == 6, "#UD not delivered to vector 6")
    }),
    ("ke.trap.breakpoint", || {
        arm();
        // SAFETY: as above.
        unsafe { KiProbeBreakpoint() };
        check(vector() == 3, "#BP not delivered to vector 3")
    }),
    ("ke.trap.general_protection", || {
        arm();
        // SAFETY: a non-canonical read raises #GP, which the probe absorbs.
        unsafe { KiProbeRead(0x8000_0000_0000_0000) };
        check(vector() == 13, "#GP not delivered to vector 13")?;
        check(
            KI_PROBE_ERROR.load(Ordering::SeqCst) == 0,
            "#GP error code should be 0",
        )
    }),
    ("ke.trap.page_fault", || {
        arm();
        // SAFETY: reading an unmapped address raises #PF, which the probe absorbs.
        unsafe { KiProbeRead(UNMAPPED + 0x123) };
        check(vector() == 14, "#PF not delivered to vector 14")?;
        check(
            KI_PROBE_CR2.load(Ordering::SeqCst) == UNMAPPED + 0x123,
            "CR2 is not the faulting address",
        )?;
        check(
            KI_PROBE_ERROR.load(Ordering::SeqCst) & 3 == 0,
            "error code should say not-present read",
        )
    }),
    ("mm.kernel_code_write_protected", || {
        arm();
        let code = crate::KiSystemStartup as *const () as usize as u64;
        // SAFETY: writing the kernel's own code page must fault (CR0.WP, read-only PTE).
        unsafe { KiProbeWrite(code) };
        check(vector() == 14, "write to .text did not fault")?;
        check(
            KI_PROBE_ERROR.load(Ordering::SeqCst) & 3 == 3,
            "error code should say present + write",
        )
    }),
    ("ke.trap.double_fault_ist", || {
        arm();
        // With interrupts off: an interrupt taken on the unmapped stack (in
        // the probe, or pending when the dispatcher resumes it) would be a
        // second #DF the probe no longer expects.
        let flags = hal::disable_interrupts();
        // SAFETY: the probe runs with an unmapped stack; #DF arrives on IST1 and
        // the dispatcher resumes at the probe's label, which restores RSP.
        unsafe { KiProbeDoubleFault(UNMAPPED + 0x1000) };
        hal::restore_interrupts(flags);
        check(vector() == 8, "#DF not delivered to vector 8")?;
        let rsp = KI_PROBE_HANDLER_RSP.load(Ordering::SeqCst);
        let ist_base = crate::rtl::loader_block().ist_stacks[0];
        check(
            rsp > ist_base && rsp <= ist_base + nt::arc::KERNEL_STACK_SIZE,
            "#DF handler did not run on the IST1 stack",
        )
    }),
    ("hal.acpi.fadt", || {
        let a = crate::hal::acpi().ok_or("no FADT found through the RSDP")?;
        check(a.pm1a_control != 0, "FADT has no PM1a control block")
    }),
    ("ob.named_objects", || {
        use ::ob::namespace::{Body, Lookup};
        crate::ob::with_namespace(|ns| {
            let event = crate::ex::event::EX_EVENT_OBJECT_TYPE
                .index()
                .ok_or("Event type not registered")?;
            let (id, st) = ns
                .insert("\\BaseNamedObjects\\KTestEvent", 0, event, Body::Opaque)
                .map_err(|_| "create failed")?;
            check(st == nt::status::STATUS_SUCCESS, "create status")?;
            ns.open_handle(id).map_err(|_| "open handle")?;
            ns.dereference(id, false).map_err(|_| "deref")?;
            let found = ns.lookup(
                "\\basenamedobjects\\ktestevent",
                ::ob::OBJ_CASE_INSENSITIVE,
                None,
            );
            check(
                found == Ok(Lookup::Found(id)),
                "open by name (case-insensitive)",
            )?;
            ns.close_handle(id, false).map_err(|_| "close")?;
            check(
                ns.lookup("\\BaseNamedObjects\\KTestEvent", 0, None)
                    == Err(nt::status::STATUS_OBJECT_NAME_NOT_FOUND),
                "temporary object kept its name after the last close",
            )
        })
    }),
    ("ob.handle_churn_leaves_pool_unchanged", || {
        use ::ob::handle::{HandleEntry, HandleTable};
        // Other processors allocate and free meanwhile (the lazy writer,
        // the mapped page writer, workers): a leak grows the pool on every
        // round, a concurrent allocation only on some.
        const ROUNDS: u32 = 6;
        for round in 0..ROUNDS {
            let before = crate::ex::pool::POOL.bytes_in_use();
            {
                let t: HandleTable<u32> = HandleTable::new();
                let mut live = alloc::vec::Vec::new();
                for i in 0..20_000u32 {
                    live.push(
                        t.create(HandleEntry {
                            object: i,
                            granted_access: 0x1F0003,
                            attributes: 0,
                        })
                        .map_err(|_| "create")?,
                    );
                }
                for h in live.drain(..) {
                    t.close(h).map_err(|_| "close")?;
                }
                check(
                    t.count() == 0 && t.capacity() == 20_224,
                    "table shape after churn",
                )?;
            }
            if crate::ex::pool::POOL.bytes_in_use() <= before {
                return Ok(());
            }
            if round + 1 < ROUNDS {
                crate::ke::sched::ke_delay_execution_thread(50 * 10_000);
            }
        }
        Err("pool usage grew after freeing the table, six rounds in a row")
    }),
    ("se.dacl_denies_test_token", || {
        use security::access::GenericMapping;
        use security::check::{access_check, CheckFlags};
        use security::token::Token;
        // An object whose DACL denies the test user and allows everyone.
        let sd = security::sddl::parse("O:SYG:SYD:(D;;GA;;;S-1-5-21-1-2-3-1001)(A;;GA;;;WD)")
            .map_err(|_| "SDDL did not parse")?;
        let user =
            security::sddl::parse_sid("S-1-5-21-1-2-3-1001").map_err(|_| "SID did not parse")?;
        let test = Token::standard_user(user);
        let map = GenericMapping::FILE;
        check(
            access_check(&sd, &test, 0x0012_0089, &map, CheckFlags::default())
                == Err(nt::status::STATUS_ACCESS_DENIED),
            "test token was not refused with STATUS_ACCESS_DENIED",
        )?;
        check(
            access_check(
                &sd,
                &Token::system(),
                0x0012_0089,
                &map,
                CheckFlags::default(),
            ) == Ok(0x0012_0089),
            "system token was not granted the requested access",
        )
    }),
    ("ke.loader_block", || {
        let lb = crate::rtl::loader_block();
        // SAFETY: loader arrays stay mapped.
        let (mds, mods) = unsafe { (lb.memory_descriptors(), lb.modules()) };
        check(!mds.is_empty(), "no memory descriptors")?;
        check(
            mds.iter()
                .any(|d| d.memory_type == nt::arc::MemoryType::Free),
            "no free memory",
        )?;
        check(
            mds.iter().any(|d| {
                d.memory_type == nt::arc::MemoryType::SystemCode
                    && d.base_page * 4096 <= mods[0].physical_base
                    && (d.base_page + d.page_count) * 4096 > mods[0].physical_base
            }),
            "kernel image not described as SystemCode",
        )?;
        check(
            mods.first().map(|m| m.name()) == Some("ntoskrnl.exe"),
            "first module is not ntoskrnl.exe",
        )?;
        check(lb.tsc_frequency > 0, "TSC not calibrated")
    }),
];

/// Every boot-test table, one per component. `run_all` prints how many
/// tests these hold before it runs them, so the harness can tell a test that
/// never reported from one that was never listed.
const ALL: &[&[Test]] = &[
    TESTS,
    crate::ke::tests::TESTS,
    crate::ke::tests_dispobj::TESTS,
    crate::ob::tests::TESTS,
    crate::mm::tests::TESTS,
    crate::mm::ldr_tests::TESTS,
    crate::mm::tests_file::TESTS,
    crate::mm::tests_image::TESTS,
    crate::ex::tests::TESTS,
    crate::ex::uproc_tests::TESTS,
    crate::ex::xcpt_tests::TESTS,
    crate::ex::seh_tests::TESTS,
    crate::cm::tests::TESTS,
    crate::io::tests::TESTS,
    crate::io::tests_apc::TESTS,
    crate::io::tests_load::TESTS,
    crate::io::tests_fastio::TESTS,
    crate::io::tests_queue::TESTS,
    crate::io::pnp::tests::TESTS,
    crate::io::pnp::tests_interface::TESTS,
    crate::io::pnp::tests_remove::TESTS,
    crate::storage::tests::TESTS,
    crate::storage::tests_volume::TESTS,
    crate::storage::tests_srb::TESTS,
    crate::cc::tests::TESTS,
    crate::io::tests_fs::TESTS,
    crate::io::tests_usn::TESTS,
    crate::cc::tests_fs::TESTS,
    crate::kd::TESTS,
    crate::kd::mem::TESTS,
    crate::ps::tests::TESTS,
    crate::ex::probe_tests::TESTS,
];

/// How long one boot test may run before the watchdog reports it hung
/// (the whole 4-processor run takes under a minute).
const HUNG_AFTER_SECONDS: u64 = 120;

/// The test running now, and how many have started (the watchdog's view).
static WATCHED: crate::ke::irql::SpinLocked<Option<&'static str>, { ke::DISPATCH_LEVEL }> =
    crate::ke::irql::SpinLocked::new(None);
static STARTED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The boot tests' watchdog thread: a test that does not finish within
/// [`HUNG_AFTER_SECONDS`] fails as hung, after what the kernel debugger
/// knows of the threads (their waits, and the words of their stacks that
/// point into loaded images), the locks and the worker queues is printed,
/// and QEMU exits with the failure code, so a hang names itself instead of
/// timing the run out.
fn watchdog(_context: usize) {
    const STEP_SECONDS: u64 = 5;
    let mut seen = u64::MAX;
    let mut still = 0;
    loop {
        let _ = crate::ke::sched::ke_delay_execution_thread(STEP_SECONDS * 10_000_000);
        let now = STARTED.load(Ordering::Acquire);
        if now != seen {
            (seen, still) = (now, 0);
            continue;
        }
        still += STEP_SECONDS;
        if still < HUNG_AFTER_SECONDS {
            continue;
        }
        let name = WATCHED.lock().unwrap_or("?");
        dbg_println!("KTEST-WATCHDOG {name} has not finished after {still} s");
        for cmd in ["!running", "!process 0 7", "!locks", "!exqueue"] {
            // Not "kd> ": the harness takes that for kd's prompt.
            dbg_println!("KTEST-WATCHDOG {cmd}");
            crate::kd::execute(cmd);
        }
        dbg_println!("KTEST-WATCHDOG stack words inside loaded images, per waiting thread");
        crate::ke::kdext::print_waiting_stacks(&|w| {
            crate::mm::ldr::module_containing(w)
                .map(|m| alloc::format!("{}+{:#x}", m.base_dll_name, w - m.dll_base))
        });
        dbg_println!("KTEST {name} FAIL hung: no result after {still} s");
        hal::debug_exit(0x11)
    }
}

/// Runs every test and exits QEMU with the verdict.
///
/// Output: `KTEST-BEGIN <n> tests`, one `KTEST <name> PASS|FAIL <detail>`
/// line per test, the crash-test table (`CRASHTEST-ENTRY` lines, see
/// [`print_crash_tests`]), then `KTEST-SUMMARY <n> total, <p> passed, <f> failed`.
pub fn run_all() -> ! {
    let mut failed = 0;
    // `/TESTFILTER=<prefix>` (a developer's run): only the tests whose
    // names start with it; the count says how many that is.
    let filter = crate::rtl::load_options()
        .split_whitespace()
        .find_map(|o| o.strip_prefix("/TESTFILTER="))
        .unwrap_or("");
    let selected = || {
        ALL.iter()
            .flat_map(|t| t.iter())
            .filter(|(name, _)| name.starts_with(filter))
    };
    let total = selected().count();
    dbg_println!("KTEST-BEGIN {total} tests");
    if crate::ps::ps_create_system_thread(None, "ktest-watchdog", watchdog, 0).is_err() {
        dbg_println!("KTEST-WATCHDOG not started");
    }
    for (name, test) in selected() {
        WATCHED.lock().replace(name);
        STARTED.fetch_add(1, Ordering::AcqRel);
        match test() {
            Ok(()) => dbg_println!("KTEST {name} PASS"),
            Err(why) => {
                failed += 1;
                dbg_println!("KTEST {name} FAIL {why}");
            }
        }
    }
    print_crash_tests();
    dbg_println!(
        "KTEST-SUMMARY {total} total, {} passed, {failed} failed",
        total - failed
    );
    // An orderly end (hives, cache, volume), so the image is consistent for
    // the host's checks and for the next boot.
    crate::ex::shutdown::ex_prepare_shutdown();
    hal::debug_exit(if failed == 0 { 0x10 } else { 0x11 })
}

/// A boot test that must stop the machine: `/CRASHTEST=<name>` runs `run`,
/// which must end in `KeBugCheckEx(stop_code, ...)`. The harness boots every
/// entry and compares the `*** STOP:` line with `stop_code` and with each
/// parameter given in `params` (`None`: any value).
pub struct CrashTest {
    /// The name after `/CRASHTEST=` (upper case, no spaces).
    pub name: &'static str,
    /// The stop code the test must end in.
    pub stop_code: u32,
    /// Expected bugcheck parameters 1-4; `None` accepts any value.
    pub params: [Option<u64>; 4],
    /// Provokes the stop. Returning at all means the test failed.
    pub run: fn(),
}

/// The crash tests, in the order the harness boots them.
pub const CRASH_TESTS: &[CrashTest] = &[
    CrashTest {
        name: "BADPOOLFREE",
        stop_code: nt::bugcheck::BAD_POOL_HEADER,
        // Subtype 5: the neighbouring headers disagree.
        params: [Some(5), None, None, None],
        run: crash_bad_pool_free,
    },
    CrashTest {
        name: "NULLREAD",
        stop_code: nt::bugcheck::PAGE_FAULT_IN_NONPAGED_AREA,
        // Address 0, a read, the faulting instruction (any), no page table.
        params: [Some(0), Some(0), None, Some(2)],
        run: crate::mm::tests::crash_null_read,
    },
    CrashTest {
        name: "USERFAULTATDISPATCH",
        stop_code: nt::bugcheck::IRQL_NOT_LESS_OR_EQUAL,
        // The user address, DISPATCH_LEVEL, a write.
        params: [
            Some(crate::mm::tests::DISPATCH_FAULT_VA),
            Some(2),
            Some(1),
            None,
        ],
        run: crate::mm::tests::crash_user_fault_at_dispatch,
    },
    CrashTest {
        name: "DELAYATDISPATCH",
        stop_code: nt::bugcheck::IRQL_NOT_LESS_OR_EQUAL,
        params: [Some(0), Some(2), Some(0), None],
        run: crate::ke::tests::crash_delay_at_dispatch,
    },
    CrashTest {
        name: "YIELDINDPC",
        stop_code: nt::bugcheck::ATTEMPTED_SWITCH_FROM_DPC,
        // The current thread, no new thread, the stack pointer, 0.
        params: [None, Some(0), None, Some(0)],
        run: crate::ke::tests::crash_yield_in_dpc,
    },
    CrashTest {
        name: "POOLEMPTY",
        stop_code: nt::bugcheck::MUST_SUCCEED_POOL_EMPTY,
        // The 1 MiB request; nonpaged pool pages, its big allocations and
        // the available pages depend on the boot.
        params: [Some(1 << 20), None, None, None],
        run: crate::ex::pool::crash_test_pool_empty,
    },
    CrashTest {
        name: "POOLPAGEDATDISPATCH",
        stop_code: nt::bugcheck::BAD_POOL_CALLER,
        // Allocation at too high an IRQL: DISPATCH_LEVEL, PagedPool, 64 bytes.
        params: [Some(0x08), Some(2), Some(1), Some(64)],
        run: crate::ex::tests::crash_paged_alloc_at_dispatch,
    },
    CrashTest {
        name: "POOLALLOCATCLOCK",
        stop_code: nt::bugcheck::BAD_POOL_CALLER,
        // Allocation at too high an IRQL: CLOCK_LEVEL, NonPagedPool, 64 bytes.
        params: [Some(0x08), Some(13), Some(0), Some(64)],
        run: crate::ex::tests::crash_nonpaged_alloc_at_clock_level,
    },
    CrashTest {
        name: "POOLFREEPAGEDATDISPATCH",
        stop_code: nt::bugcheck::BAD_POOL_CALLER,
        // Free at too high an IRQL: DISPATCH_LEVEL, PagedPool, the block.
        params: [Some(0x09), Some(2), Some(1), None],
        run: crate::ex::tests::crash_paged_free_at_dispatch,
    },
    CrashTest {
        name: "CRITICALDRIVER",
        stop_code: nt::bugcheck::IO1_INITIALIZATION_FAILED,
        // A critical driver's image fails to load: its status
        // (STATUS_INVALID_IMAGE_FORMAT) and start type (3).
        params: [Some(0xC000_007B), Some(3), Some(0), Some(0)],
        run: crate::io::load::crash_critical_driver_fails,
    },
    CrashTest {
        name: "STACKOVERFLOW",
        stop_code: nt::bugcheck::UNEXPECTED_KERNEL_MODE_TRAP,
        // EXCEPTION_DOUBLE_FAULT: the #PF on the guard page cannot be delivered.
        params: [Some(8), None, None, None],
        run: crate::mm::tests::crash_stack_overflow,
    },
    CrashTest {
        name: "PROBEMISALIGNED",
        stop_code: nt::bugcheck::KMODE_EXCEPTION_NOT_HANDLED,
        // ProbeForRead raises STATUS_DATATYPE_MISALIGNMENT; no handler.
        params: [Some(0x8000_0002), None, Some(0), Some(0)],
        run: crate::ex::probe::crash_probe_misaligned,
    },
    CrashTest {
        name: "PROBEKERNELWRITE",
        stop_code: nt::bugcheck::KMODE_EXCEPTION_NOT_HANDLED,
        // ProbeForWrite of a kernel address raises STATUS_ACCESS_VIOLATION.
        params: [Some(0xC000_0005), None, Some(0), Some(0)],
        run: crate::ex::probe::crash_probe_kernel_write,
    },
    CrashTest {
        name: "DPCWATCHDOG",
        stop_code: nt::bugcheck::DPC_WATCHDOG_VIOLATION,
        // Cumulative time at DISPATCH_LEVEL (1), the period in ticks.
        params: [
            Some(1),
            Some(crate::ke::clock::DPC_WATCHDOG_TICKS as u64),
            Some(0),
            Some(0),
        ],
        run: crate::ke::tests::crash_spin_at_dispatch,
    },
    CrashTest {
        name: "CLOCKWATCHDOG",
        stop_code: nt::bugcheck::CLOCK_WATCHDOG_TIMEOUT,
        // The period in ticks; the silent processor (whichever it ran on).
        params: [
            Some(crate::ke::clock::CLOCK_WATCHDOG_TICKS as u64),
            Some(0),
            Some(0),
            None,
        ],
        run: crate::ke::tests::crash_spin_with_interrupts_disabled,
    },
];

/// Prints the crash-test table for the harness: one
/// `CRASHTEST-ENTRY <name> 0x<code> <p1> <p2> <p3> <p4>` line per entry
/// (a parameter is `*` when any value is accepted), then `CRASHTEST-COUNT <n>`.
pub fn print_crash_tests() {
    for t in CRASH_TESTS {
        let mut params = alloc::string::String::new();
        for p in t.params {
            match p {
                Some(v) => params.push_str(&alloc::format!(" 0x{v:X}")),
                None => params.push_str(" *"),
            }
        }
        dbg_println!("CRASHTEST-ENTRY {} 0x{:08X}{params}", t.name, t.stop_code);
    }
    dbg_println!("CRASHTEST-COUNT {}", CRASH_TESTS.len());
}

/// `/CRASHTEST=<name>`: runs that crash test. If it returns (no stop), says
/// so and returns, and the boot goes on to kd, where the harness sees no
/// `*** STOP` line. `/CRASHTEST=LIST` prints the table; an unknown name says
/// so and prints it.
pub fn run_crash_test(name: &str) {
    if name.eq_ignore_ascii_case("LIST") {
        return print_crash_tests();
    }
    let Some(t) = CRASH_TESTS
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(name))
    else {
        dbg_println!("CRASHTEST {name} unknown; the table is:");
        print_crash_tests();
        return;
    };
    dbg_println!("CRASHTEST {} expects stop 0x{:08X}", t.name, t.stop_code);
    (t.run)();
    dbg_println!("CRASHTEST {} FAIL the test returned without a stop", t.name);
}

/// `BADPOOLFREE`: overruns a pool block into the next block's header and
/// frees it; the neighbour check must stop the system with BAD_POOL_HEADER
/// (0x19, subtype 5) as NT does.
fn crash_bad_pool_free() {
    use crate::ex::xpool::{ex_allocate_pool2, ex_free_pool_with_tag};
    let tag = u32::from_le_bytes(*b"Tst1");
    // Two blocks where the second directly follows the first on one pool
    // page (its POOL_HEADER in the 16 bytes after the first's 48). Where
    // the pool hands them out depends on what was allocated before, so
    // pairs are taken (and kept, so they are not handed out again) until
    // one is adjacent.
    let mut pair = None;
    for _ in 0..256 {
        let a = ex_allocate_pool2(::mm::pool::POOL_FLAG_NON_PAGED, 48, tag);
        let b = ex_allocate_pool2(::mm::pool::POOL_FLAG_NON_PAGED, 48, tag);
        if a == 0 || b == 0 {
            dbg_println!("crash test: pool allocation failed");
            return;
        }
        if b == a + 48 + 16 {
            pair = Some((a, b));
            break;
        }
    }
    let Some((a, b)) = pair else {
        dbg_println!("crash test: no two adjacent pool blocks in 256 pairs");
        return;
    };
    dbg_println!(
        "crash test: block {a:#x} overruns by 16 bytes into {b:#x}'s POOL_HEADER, then is freed"
    );
    // SAFETY: the two blocks are adjacent on one pool page (checked above):
    // the 16 bytes after `a`'s 48 are `b`'s POOL_HEADER. Smashing it is the
    // point of the test.
    unsafe { core::ptr::write_bytes(a as *mut u8, 0x41, 48 + 16) };
    ex_free_pool_with_tag(a, tag);
}
