//! ntoskrnl.exe: the ntrs kernel and executive.
//!
//! `KiSystemStartup` is the image entry point winload jumps to with the
//! loader parameter block (*Windows Internals*, Part 2, ch. 12, "Kernel
//! initialization"). Phase 0 sets up this processor (GDT, TSS, IDT, KPCR),
//! the debug port and the HAL's ACPI view; with nothing else to run yet, the
//! boot processor then runs the in-kernel tests (`/TESTS`) or the kd shell.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod bench;
pub mod cm;
pub mod ex;
pub mod hal;
pub mod kd;
pub mod ke;
pub mod ktest;
pub mod ktest_cm;
pub mod ktest_ex;
pub mod ktest_ke;
pub mod ktest_mm;
pub mod ktest_ob;
pub mod mm;
pub mod ob;
pub mod se;

use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use nt::arc::{LoaderParameterBlock, LOADER_BLOCK_SIGNATURE, LOADER_BLOCK_VERSION};

static TEST_MODE: AtomicBool = AtomicBool::new(false);
static LOADER_BLOCK: AtomicPtr<LoaderParameterBlock> = AtomicPtr::new(core::ptr::null_mut());
static mut ACPI: Option<hal::AcpiInfo> = None;

/// Whether this boot runs the in-kernel tests (`/TESTS` in the load options).
pub fn test_mode() -> bool {
    TEST_MODE.load(Ordering::Relaxed)
}

/// `KeLoaderBlock`: the block winload passed (valid for the whole boot; ntrs
/// never frees loader memory yet).
pub fn loader_block() -> &'static LoaderParameterBlock {
    // SAFETY: set once in KiSystemStartup from the loader's (kept) MemoryData pages.
    unsafe { &*LOADER_BLOCK.load(Ordering::Relaxed) }
}

/// The HAL's ACPI information, once phase 0 parsed it.
pub fn acpi() -> Option<hal::AcpiInfo> {
    // SAFETY: written once in phase 0 before any reader runs.
    unsafe { *core::ptr::addr_of!(ACPI) }
}

/// Load options (`/TESTS /BENCH ...`), upper-cased by the loader convention.
pub fn load_options() -> &'static str {
    // SAFETY: the loader string lives in MemoryData pages that stay mapped.
    unsafe { loader_block().load_options.as_str() }
}

/// The kernel entry point (`KiSystemStartup`), called by winload with RCX = loader block.
///
/// # Safety
/// Only winload calls this, once, with a valid loader block and interrupts off.
#[no_mangle]
pub unsafe extern "C" fn KiSystemStartup(loader_block: *mut LoaderParameterBlock) -> ! {
    hal::serial_init();
    dbg_println!("\nntrs kernel: KiSystemStartup");
    // SAFETY: winload passes a pointer into the direct map; checked below.
    let lb = unsafe { &*loader_block };
    if lb.signature != LOADER_BLOCK_SIGNATURE || lb.version != LOADER_BLOCK_VERSION {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE0_INITIALIZATION_FAILED,
            lb.signature,
            lb.version as u64,
            0,
            0,
        );
    }
    LOADER_BLOCK.store(loader_block, Ordering::Relaxed);
    let opts = load_options();
    TEST_MODE.store(
        opts.split_whitespace()
            .any(|o| o.eq_ignore_ascii_case("/TESTS")),
        Ordering::Relaxed,
    );
    let ist = lb.ist_stacks.map(|b| b + nt::arc::KERNEL_STACK_SIZE);
    // SAFETY: phase 0 on the boot processor with interrupts disabled.
    unsafe { ke::ki_initialize_processor(0, ist, lb.kernel_stack) };
    ke::irql::set_irql(ke::HIGH_LEVEL);
    ke::thread::init_extended_state(true);
    let acpi = hal::acpi_init(lb.acpi_rsdp);
    // SAFETY: single writer in phase 0.
    unsafe { *core::ptr::addr_of_mut!(ACPI) = acpi };
    if let Err(s) = ex::pool::initialize(lb) {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::INSTALL_MORE_MEMORY,
            s.as_u32() as u64,
            0,
            0,
            0,
        );
    }
    if let Err(s) = mm::pfn::mm_initialize_pfn_database(lb) {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::INSTALL_MORE_MEMORY,
            s.as_u32() as u64,
            1,
            0,
            0,
        );
    }
    if let Err(s) = mm::process::initialize() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::INSTALL_MORE_MEMORY,
            s.as_u32() as u64,
            2,
            0,
            0,
        );
    }
    if let Err(s) = ob::ob_init_system() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            0,
            0,
            0,
        );
    }
    ki_initialize_kernel(lb);
    if let Err(s) = cm::cm_initialize() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::CONFIG_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            0,
            0,
            0,
        );
    }
    dbg_println!(
        "ntrs kernel: phase 0 done; {} memory descriptors, {} modules, {} processors, options '{}'",
        lb.memory_descriptor_count,
        lb.load_order_count,
        ke::processor_count(),
        opts
    );
    if let Some(secs) = opts
        .split_whitespace()
        .find_map(|o| o.strip_prefix("/STRESS="))
        .and_then(|v| v.parse::<u64>().ok())
    {
        let ok = ktest_ke::stress(secs);
        hal::debug_exit(if ok { 0x10 } else { 0x11 });
    }
    if opts
        .split_whitespace()
        .any(|o| o.eq_ignore_ascii_case("/CRASHTEST=BADPOOLFREE"))
    {
        crash_test_bad_pool_free();
    }
    if let Some(name) = opts
        .split_whitespace()
        .find_map(|o| o.strip_prefix("/CRASHTEST="))
    {
        ktest_ke::run_crash_test(name);
    }
    if test_mode() {
        ktest::run_all();
    }
    kd::kd_loop()
}

/// The HAL's interrupt controllers and clock, then the scheduler: this boot
/// path becomes the System process's first thread, every other processor is
/// started, and interrupts are enabled at PASSIVE_LEVEL (`KiInitializeKernel`,
/// `HalInitSystem`, `KeStartAllProcessors`).
fn ki_initialize_kernel(lb: &LoaderParameterBlock) {
    let madt = hal::apic::parse_madt(lb.acpi_rsdp);
    ke::set_madt(madt);
    let Some(madt) = madt else {
        ke::bugcheck::ke_bug_check_ex(nt::bugcheck::HAL_INITIALIZATION_FAILED, 1, 0, 0, 0);
    };
    hal::apic::initialize_processor(&madt, true);
    hal::apic::calibrate_timer(lb.tsc_frequency, ke::clock::TIME_INCREMENT);
    ke::clock::initialize(hal::query_real_time_clock());
    ke::dpc::initialize();
    ke::sched::initialize();
    ke::sched::start_processor_threads(0, "System", 8, lb.kernel_stack);
    ke::sched::SCHEDULER_RUNNING.store(true, Ordering::Release);
    hal::apic::start_clock();
    ke::irql::set_irql(ke::PASSIVE_LEVEL);
    hal::restore_interrupts(0x200);
    ke::mp::ke_start_all_processors();
    mm::pfn::start_zero_page_thread();
    ex::worker::initialize();
}

/// `/CRASHTEST=BADPOOLFREE`: overruns a pool block into the next block's
/// header and frees it; the neighbour check must stop the system with
/// BAD_POOL_HEADER (0x19, subtype 5) as NT does.
fn crash_test_bad_pool_free() {
    let tag = u32::from_le_bytes(*b"Tst1");
    let a = ex::xpool::ex_allocate_pool2(::mm::pool::POOL_FLAG_NON_PAGED, 48, tag);
    let b = ex::xpool::ex_allocate_pool2(::mm::pool::POOL_FLAG_NON_PAGED, 48, tag);
    if a == 0 || b == 0 {
        return;
    }
    dbg_println!(
        "crash test: block {a:#x} overruns by 16 bytes into {b:#x}'s POOL_HEADER, then is freed"
    );
    // SAFETY: 48 bytes round up to a 48-byte block; the next 16 bytes are
    // the following block's POOL_HEADER on the same pool page. Smashing it
    // is the point of the test.
    unsafe { core::ptr::write_bytes(a as *mut u8, 0x41, 48 + 16) };
    ex::xpool::ex_free_pool_with_tag(a, tag);
    dbg_println!("crash test: the bad free was not detected");
}

/// `DbgPrint`, exported for drivers: prints a NUL-terminated string (no format expansion yet).
///
/// # Safety
/// `s` must point to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn DbgPrint(s: *const u8) -> u32 {
    if s.is_null() {
        return nt::status::STATUS_INVALID_PARAMETER.as_u32();
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let c = unsafe { core::ffi::CStr::from_ptr(s.cast()) };
    dbg_print!("{}", c.to_str().unwrap_or("<non-UTF-8 DbgPrint>"));
    0
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    dbg_println!("\nntrs kernel panic: {info}");
    ke::bugcheck::ke_bug_check_ex(
        nt::bugcheck::KMODE_EXCEPTION_NOT_HANDLED,
        0xC000_0420,
        0,
        0,
        0,
    )
}
