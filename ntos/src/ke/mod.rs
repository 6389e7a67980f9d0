//! The kernel (ke): processor control region, descriptor tables, IRQL,
//! trap dispatching and bugchecks (*Windows Internals*, Part 2, ch. 8).

pub mod bugcheck;
pub mod gdt;
pub mod probe;
pub mod trap;

use core::cell::UnsafeCell;
use gdt::{Ktss64, GDT_ENTRIES};
use trap::KIdtEntry64;

pub const MSR_GS_BASE: u32 = 0xC000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;

/// IRQL values on x64 (wdm.h).
pub const PASSIVE_LEVEL: u8 = 0;
pub const APC_LEVEL: u8 = 1;
pub const DISPATCH_LEVEL: u8 = 2;
pub const CLOCK_LEVEL: u8 = 13;
pub const IPI_LEVEL: u8 = 14;
pub const HIGH_LEVEL: u8 = 15;

/// `KPRCB` (the fields ntrs uses so far, at NT's offsets).
#[repr(C)]
pub struct Kprcb {
    pub mx_csr: u32,
    pub legacy_number: u8,
    pub reserved_must_be_zero: u8,
    pub interrupt_request: u8,
    pub idle_halt: u8,
    pub current_thread: u64,
    pub next_thread: u64,
    pub idle_thread: u64,
    pub nesting_level: u8,
    pub clock_owner: u8,
    pub pending_tick_flags: u8,
    pub idle_state: u8,
    pub number: u32,
    pub rsp_base: u64,
}

/// `KPCR` (x64): reached through GS base. `Prcb` starts at offset 0x180 as in NT.
#[repr(C, align(4096))]
pub struct Kpcr {
    pub gdt_base: u64,
    pub tss_base: u64,
    pub user_rsp: u64,
    pub self_: u64,
    pub current_prcb: u64,
    pub lock_array: u64,
    pub used_self: u64,
    pub idt_base: u64,
    pub unused: [u64; 2],
    pub irql: u8,
    pub second_level_cache_associativity: u8,
    pub obsolete_number: u8,
    pub fill0: u8,
    pub unused0: [u32; 3],
    pub major_version: u16,
    pub minor_version: u16,
    pub stall_scale_factor: u32,
    pub unused1: [u64; 3],
    pub kernel_reserved: [u32; 15],
    pub second_level_cache_size: u32,
    pub hal_reserved: [u32; 16],
    pub unused2: u32,
    pub kd_version_block: u64,
    pub unused3: u64,
    pub pcr_align1: [u32; 26],
    pub prcb: Kprcb,
}

const _: () = assert!(core::mem::offset_of!(Kpcr, irql) == 0x50);
const _: () = assert!(core::mem::offset_of!(Kpcr, prcb) == 0x180);

/// Everything one processor owns: PCR, GDT, TSS, IDT.
#[repr(C, align(4096))]
pub struct ProcessorBlock {
    pub pcr: Kpcr,
    pub gdt: [u64; GDT_ENTRIES],
    pub tss: Ktss64,
    pub idt: [KIdtEntry64; 256],
}

struct Processors(UnsafeCell<core::mem::MaybeUninit<ProcessorBlock>>);
// SAFETY: each processor touches only its own block; the boot processor
// initializes block 0 before anything else runs.
unsafe impl Sync for Processors {}

static BOOT_PROCESSOR: Processors = Processors(UnsafeCell::new(core::mem::MaybeUninit::zeroed()));

/// The current processor's PCR (`KeGetPcr`): read from GS:[0x18] (`Self`).
pub fn ke_get_pcr() -> &'static Kpcr {
    let p: u64;
    // SAFETY: GS base points at this processor's KPCR once `ki_initialize_processor` ran.
    unsafe { core::arch::asm!("mov {}, gs:[0x18]", out(reg) p, options(nostack, readonly)) };
    // SAFETY: KPCR.Self points at the static processor block.
    unsafe { &*(p as *const Kpcr) }
}

/// The boot processor's block (kd inspects it).
pub fn processor_block(n: u32) -> Option<&'static ProcessorBlock> {
    // SAFETY: initialized by `ki_initialize_processor` before kd can run.
    (n == 0).then(|| unsafe { (*BOOT_PROCESSOR.0.get()).assume_init_ref() })
}

/// Current IRQL: CR8 on x64 (`KeGetCurrentIrql`).
pub fn irql() -> u8 {
    let v: u64;
    // SAFETY: reading CR8 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr8", out(reg) v, options(nomem, nostack)) };
    v as u8
}

/// `KeGetCurrentIrql`, exported for drivers.
#[no_mangle]
pub extern "C" fn KeGetCurrentIrql() -> u8 {
    irql()
}

#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

/// Phase-0 processor initialization (`KiInitializeProcessor`/`KiInitializeGdt`/
/// `KiInitializeIdt`): GDT with TSS and IST stacks, IDT, segment registers,
/// GS base pointing at the KPCR, IRQL at HIGH until interrupts are wired.
///
/// # Safety
/// Must run once on the boot processor, with interrupts disabled.
pub unsafe fn ki_initialize_processor(ist_tops: [u64; 3], kernel_stack_top: u64) {
    // SAFETY: single-threaded phase 0; nothing else references the block yet.
    let block = unsafe { (*BOOT_PROCESSOR.0.get()).assume_init_mut() };
    let pcr_addr = &block.pcr as *const Kpcr as u64;
    block.tss.rsp[0] = kernel_stack_top;
    block.tss.ist[0] = ist_tops[0];
    block.tss.ist[1] = ist_tops[1];
    block.tss.ist[2] = ist_tops[2];
    block.tss.io_map_base = core::mem::size_of::<Ktss64>() as u16;
    let tss_addr = &block.tss as *const Ktss64 as u64;
    block.gdt = gdt::build(tss_addr, core::mem::size_of::<Ktss64>() as u32 - 1);
    trap::build_idt(&mut block.idt);
    let pcr = &mut block.pcr;
    pcr.gdt_base = block.gdt.as_ptr() as u64;
    pcr.tss_base = tss_addr;
    pcr.self_ = pcr_addr;
    pcr.current_prcb = pcr_addr + 0x180;
    pcr.used_self = 0;
    pcr.idt_base = block.idt.as_ptr() as u64;
    pcr.major_version = 1;
    pcr.minor_version = 1;
    pcr.prcb.number = 0;
    pcr.prcb.rsp_base = kernel_stack_top;

    let gdtr = DescriptorTablePointer {
        limit: (GDT_ENTRIES * 8 - 1) as u16,
        base: block.gdt.as_ptr() as u64,
    };
    let idtr = DescriptorTablePointer {
        limit: (256 * 16 - 1) as u16,
        base: block.idt.as_ptr() as u64,
    };
    // SAFETY: the GDT/IDT are static and fully built; reloading CS through a
    // far return and the data selectors uses the layout above; LTR marks the TSS busy.
    unsafe {
        core::arch::asm!(
            "lgdt [{gdtr}]",
            "lidt [{idtr}]",
            "push 0x10",
            "lea rax, [rip + 2f]",
            "push rax",
            "retfq",
            "2:",
            "mov ax, 0x18",
            "mov ss, ax",
            "mov ax, 0x2B",
            "mov ds, ax",
            "mov es, ax",
            "mov ax, 0x53",
            "mov fs, ax",
            "mov ax, 0x2B",
            "mov gs, ax",
            "mov ax, 0x40",
            "ltr ax",
            gdtr = in(reg) &gdtr,
            idtr = in(reg) &idtr,
            out("rax") _,
        );
        // GS was reloaded above, which clears its base: set the KPCR now.
        crate::hal::wrmsr(MSR_GS_BASE, pcr_addr);
        crate::hal::wrmsr(MSR_KERNEL_GS_BASE, 0);
    }
}
