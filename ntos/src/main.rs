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
pub mod cc;
pub mod cm;
pub mod ex;
pub mod hal;
pub mod io;
pub mod kd;
pub mod ke;
pub mod ktest;
pub mod mm;
pub mod ob;
pub mod ps;
pub mod rtl;
pub mod se;
pub mod storage;

use core::sync::atomic::Ordering;
use nt::arc::LoaderParameterBlock;

/// The kernel entry point (`KiSystemStartup`), called by winload with RCX = loader block.
///
/// # Safety
/// Only winload calls this, once, with a valid loader block and interrupts off.
#[no_mangle]
pub unsafe extern "C" fn KiSystemStartup(loader_block: *mut LoaderParameterBlock) -> ! {
    rtl::debug::serial_init();
    ke::bugcheck::register_debugger(kd::kd_loop);
    dbg_println!("\nntrs kernel: KiSystemStartup");
    // SAFETY: winload passes its loader block, in MemoryData pages reached
    // through the direct map that stay mapped for the whole boot.
    if let Err((signature, version)) = unsafe { rtl::boot::set_loader_block(loader_block) } {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE0_INITIALIZATION_FAILED,
            signature,
            version as u64,
            0,
            0,
        );
    }
    let lb = rtl::loader_block();
    let opts = rtl::load_options();
    let ist = lb.ist_stacks.map(|b| b + nt::arc::KERNEL_STACK_SIZE);
    // SAFETY: phase 0 on the boot processor with interrupts disabled.
    unsafe { ke::ki_initialize_processor(0, ist, lb.kernel_stack) };
    ke::irql::set_irql(ke::HIGH_LEVEL);
    ke::thread::init_extended_state(true);
    hal::acpi_init(lb.acpi_rsdp);
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
    ex::pool::ex_initialize_pool(lb);
    if let Err(s) = mm::process::initialize() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::INSTALL_MORE_MEMORY,
            s.as_u32() as u64,
            2,
            0,
            0,
        );
    }
    // The application processors' start-up page, taken before anything else
    // can use up the few free pages below 1 MiB.
    let startup_page = mm::pfn::mm_allocate_page_in_range(1, 0x9E);
    // The loader's identity map goes; every kernel PML4 entry is made now so
    // all address spaces share the kernel half; kernel stacks come from the
    // memory manager (system PTEs with guard pages).
    mm::map::mm_remove_boot_identity_map();
    if let Err(s) = mm::map::mm_create_kernel_top_level_tables() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::INSTALL_MORE_MEMORY,
            s.as_u32() as u64,
            3,
            0,
            0,
        );
    }
    ke::trap::register_page_fault_routines(ke::trap::PageFaultRoutines {
        access_fault: mm::process::mm_access_fault,
        user_space_current: || mm::process::current_process() != 0,
        nonpaged_fault_type: mm::pte::nonpaged_fault_type,
        system_fault: mm::file::mm_system_cache_fault,
    });
    ke::stack::register(ke::stack::StackRoutines {
        create: mm::map::mm_create_kernel_stack,
        delete: mm::map::mm_delete_kernel_stack,
    });
    if let Err(s) = ob::ob_init_system() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            0,
            0,
            0,
        );
    }
    ki_initialize_kernel(lb, startup_page);
    if let Err(s) = ps::ps_init_system() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PROCESS1_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            0,
            0,
            0,
        );
    }
    if let Err(s) = cm::cm_initialize() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::CONFIG_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            0,
            0,
            0,
        );
    }
    if let Err(s) = io::io_init_system() {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            2,
            0,
            0,
        );
    }
    // Boot-start drivers, then the PnP manager enumerates the machine's
    // devices once the registry is up (`IoInitSystem`'s PnP part; a failure
    // leaves the tree empty), then the system-start drivers.
    // Control\SystemBootDevice (the boot partition's ARC name) before the
    // boot drivers load: mountmgr.sys reads it to find the system volume.
    let s = storage::record_boot_device();
    if s != nt::status::STATUS_SUCCESS {
        dbg_println!("storage: SystemBootDevice not recorded: {s:?}");
    }
    io::load::io_initialize_boot_drivers();
    if let Err(s) = io::pnp::pnp_initialize() {
        dbg_println!("ntrs kernel: PnP initialization failed: {:#x}", s.as_u32());
    }
    // The kernel's handle on the boot disk (\Device\Harddisk0\DR0, which the
    // PnP manager's disk stack provides). A boot disk that cannot be
    // reached is logged and the boot goes on.
    if let Err(s) = storage::initialize() {
        dbg_println!("storage: the storage stack did not start: {s:?}");
    }
    io::load::io_initialize_system_drivers();
    // Devices whose drivers the system-start phase loaded: AddDevice and
    // IRP_MN_START_DEVICE now.
    io::pnp::pnp_start_devices();
    // The system volume can be reached now: the SYSTEM and SOFTWARE hives
    // are bound to their files (CmInitSystem1's CmpInitializeHiveList).
    cm::cm_initialize_hive_files();
    // User mode: KUSER_SHARED_DATA, the service table, the user exception
    // handler (the system call entry itself is set per processor).
    if let Err(s) = mm::user::initialize_shared_user_data() {
        dbg_println!("ntrs kernel: KUSER_SHARED_DATA not mapped: {s:?}");
    }
    ex::uproc::initialize();
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
        let ok = ke::tests::stress(secs);
        hal::debug_exit(if ok { 0x10 } else { 0x11 });
    }
    if let Some(name) = opts
        .split_whitespace()
        .find_map(|o| o.strip_prefix("/CRASHTEST="))
    {
        ktest::run_crash_test(name);
    }
    if rtl::test_mode() {
        ktest::run_all();
    }
    kd::kd_loop()
}

/// The HAL's interrupt controllers and clock, then the scheduler: this boot
/// path becomes the System process's first thread, every other processor is
/// started, and interrupts are enabled at PASSIVE_LEVEL (`KiInitializeKernel`,
/// `HalInitSystem`, `KeStartAllProcessors`).
fn ki_initialize_kernel(lb: &LoaderParameterBlock, startup_page: Option<u64>) {
    // The kernel's own structures (dispatcher database, DPC and timer
    // queues) are charged to `Ke  `; the scope ends before the IRQL drops.
    let ke_tag = ex::pool::PoolTag::enter(*b"Ke  ");
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
    drop(ke_tag);
    ke::irql::set_irql(ke::PASSIVE_LEVEL);
    hal::restore_interrupts(0x200);
    start_application_processors(startup_page);
    mm::pfn::start_zero_page_thread();
    mm::file::start_mapped_page_writer();
    ex::worker::initialize();
}

/// `KeStartAllProcessors` with the memory manager's help: a trampoline
/// page below 1 MiB, mapped at VA == PA only while the processors start.
fn start_application_processors(startup_page: Option<u64>) {
    if ke::madt().is_none_or(|m| m.processor_count <= 1) {
        return;
    }
    let Some(page) = startup_page else {
        dbg_println!("ntrs kernel: no free page below 1 MiB; application processors not started");
        return;
    };
    if let Err(s) = mm::map::mm_map_startup_page(page << 12) {
        dbg_println!(
            "ntrs kernel: cannot map the start-up page ({:#x}); application processors not started",
            s.as_u32()
        );
        return;
    }
    ke::mp::ke_start_all_processors(page);
    mm::map::mm_unmap_startup_page(page << 12);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    dbg_println!("\nntrs kernel panic: {info}");
    ex::pool::check_allocation_failure(info);
    ke::bugcheck::ke_bug_check_ex(
        nt::bugcheck::KMODE_EXCEPTION_NOT_HANDLED,
        0xC000_0420,
        0,
        0,
        0,
    )
}
