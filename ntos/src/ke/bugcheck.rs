//! `KeBugCheckEx`: the stop screen (*Windows Internals*, Part 2, ch. 10,
//! "Crash dump analysis").

use core::sync::atomic::{AtomicBool, Ordering};

static IN_BUGCHECK: AtomicBool = AtomicBool::new(false);
/// Set by the first bugcheck and never cleared: the system stopped, and kd
/// (which the stop screen breaks into) must not run the orderly shutdown.
static BUGCHECKED: AtomicBool = AtomicBool::new(false);

/// Whether the system has bugchecked (kd after a stop screen).
pub fn ke_has_bugchecked() -> bool {
    BUGCHECKED.load(Ordering::Acquire)
}

/// `KeBugCheckEx`: prints the stop code, its name and four parameters, then
/// ends the test run (test mode) or breaks into kd (otherwise).
pub fn ke_bug_check_ex(code: u32, p1: u64, p2: u64, p3: u64, p4: u64) -> ! {
    // SAFETY: disabling interrupts is always allowed in kernel mode.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
    BUGCHECKED.store(true, Ordering::SeqCst);
    if IN_BUGCHECK.swap(true, Ordering::SeqCst) {
        crate::dbg_println!("\n*** STOP during bugcheck: {code:#010X}");
        crate::hal::halt_forever();
    }
    if crate::hal::apic::is_initialized() {
        super::mp::freeze_other_processors();
        crate::rtl::debug::break_print_lock();
    }
    let name = nt::bugcheck::name(code).unwrap_or("UNKNOWN_BUGCHECK_CODE");
    crate::dbg_println!();
    crate::dbg_println!("*** STOP: 0x{code:08X} ({name})");
    crate::dbg_println!("    (0x{p1:016X},0x{p2:016X},0x{p3:016X},0x{p4:016X})");
    crate::dbg_println!();
    if crate::hal::apic::is_initialized() {
        crate::dbg_println!(
            "processor {}: bugchecked at irql {}",
            super::current_processor_number(),
            super::irql()
        );
        super::mp::print_frozen_processors();
        crate::dbg_println!();
    }
    crate::dbg_println!(
        "A problem has been detected and ntrs has been shut down to prevent damage"
    );
    crate::dbg_println!("to your computer. Bugcheck analysis: stop code {name}.");
    crate::dbg_println!();
    if crate::rtl::test_mode() {
        crate::dbg_println!("KTEST bugcheck FAIL 0x{code:08X} {name}");
        crate::hal::debug_exit(0x11);
    }
    crate::dbg_println!("Break instruction exception after bugcheck; kd is waiting.");
    IN_BUGCHECK.store(false, Ordering::SeqCst);
    match DEBUGGER.get() {
        Some(kd) => kd(),
        None => crate::hal::halt_forever(),
    }
}

/// The kernel debugger's command loop, registered in phase 0 (`KdInitSystem`):
/// the stop screen breaks into it (the kernel does not import kd).
static DEBUGGER: crate::rtl::Once<fn() -> !> = crate::rtl::Once::new();

/// Registers the debugger the stop screen breaks into.
pub fn register_debugger(kd: fn() -> !) {
    DEBUGGER.set(kd);
}

/// `KeBugCheckEx`, exported for drivers.
#[no_mangle]
pub extern "system" fn KeBugCheckEx(code: u32, p1: u64, p2: u64, p3: u64, p4: u64) -> ! {
    ke_bug_check_ex(code, p1, p2, p3, p4)
}
