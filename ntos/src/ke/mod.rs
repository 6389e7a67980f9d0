//! The kernel (ke): processor control region, descriptor tables, IRQL,
//! trap dispatching and bugchecks (*Windows Internals*, Part 2, ch. 8).

pub mod apc;
pub mod bugcheck;
pub mod clock;
pub mod dpc;
pub mod gdt;
pub mod intr;
pub mod irql;
pub mod kdext;
pub mod mp;
pub mod probe;
pub mod sched;
pub mod stack;
pub mod thread;
pub mod timer;
pub mod trap;
pub mod wait;

use crate::hal::MAX_PROCESSORS;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
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

struct Processors(UnsafeCell<core::mem::MaybeUninit<[ProcessorBlock; MAX_PROCESSORS]>>);
// SAFETY: each processor initializes and then mutates only its own block;
// other processors only read (kd, the scheduler's running-priority check).
unsafe impl Sync for Processors {}

static PROCESSORS: Processors = Processors(UnsafeCell::new(core::mem::MaybeUninit::zeroed()));
/// Processors initialized so far (`KeNumberProcessors`).
static PROCESSOR_COUNT: AtomicU32 = AtomicU32::new(0);
/// Local APIC id of each processor.
static APIC_IDS: [AtomicU8; MAX_PROCESSORS] = [const { AtomicU8::new(0) }; MAX_PROCESSORS];
static GS_READY: AtomicBool = AtomicBool::new(false);
static mut MADT: Option<crate::hal::apic::Madt> = None;

fn block_ptr(n: u32) -> *mut ProcessorBlock {
    // SAFETY: the array is static; indexing stays in bounds (callers check n).
    unsafe {
        (*PROCESSORS.0.get())
            .as_mut_ptr()
            .cast::<ProcessorBlock>()
            .add(n as usize)
    }
}

/// The current processor's PCR (`KeGetPcr`): read from GS:[0x18] (`Self`).
pub fn ke_get_pcr() -> &'static Kpcr {
    let p: u64;
    // SAFETY: GS base points at this processor's KPCR once `ki_initialize_processor` ran.
    unsafe { core::arch::asm!("mov {}, gs:[0x18]", out(reg) p, options(nostack, readonly)) };
    // SAFETY: KPCR.Self points at the static processor block.
    unsafe { &*(p as *const Kpcr) }
}

/// Whether GS points at a KPCR (application processors touch nothing that
/// asks before their own `ki_initialize_processor`).
pub fn gs_ready() -> bool {
    GS_READY.load(Ordering::Relaxed)
}

/// `KeGetCurrentProcessorNumber`: `Prcb.Number` through GS (0 before GS is set up).
pub fn current_processor_number() -> u32 {
    if !GS_READY.load(Ordering::Relaxed) {
        return 0;
    }
    let n: u32;
    // SAFETY: GS:[0x1A4] is Prcb.Number of this processor's KPCR.
    unsafe { core::arch::asm!("mov {:e}, gs:[0x1A4]", out(reg) n, options(nostack, readonly)) };
    n
}

/// `KeGetCurrentPrcb`.
pub fn current_prcb() -> &'static Kprcb {
    &ke_get_pcr().prcb
}

/// The current processor's PRCB, mutable (scheduler only).
pub fn current_prcb_mut() -> &'static mut Kprcb {
    let n = current_processor_number();
    // SAFETY: only this processor mutates its own PRCB, at raised IRQL.
    unsafe { &mut (*block_ptr(n)).pcr.prcb }
}

/// Processor `n`'s PCR, if it was initialized (`!pcr N`).
pub fn pcr_of(n: u32) -> Option<&'static Kpcr> {
    processor_block(n).map(|b| &b.pcr)
}

/// Processor `n`'s block (kd inspects it).
pub fn processor_block(n: u32) -> Option<&'static ProcessorBlock> {
    // SAFETY: blocks below PROCESSOR_COUNT are initialized.
    (n < PROCESSOR_COUNT.load(Ordering::Acquire)).then(|| unsafe { &*block_ptr(n) })
}

/// Processors running (`KeNumberProcessors`).
pub fn processor_count() -> u32 {
    PROCESSOR_COUNT.load(Ordering::Acquire)
}

/// Local APIC id of processor `n`.
pub fn apic_id_of(n: u32) -> Option<u8> {
    (n < processor_count()).then(|| APIC_IDS[n as usize].load(Ordering::Relaxed))
}

/// The MADT the HAL parsed in phase 0.
pub fn madt() -> Option<crate::hal::apic::Madt> {
    // SAFETY: written once by the boot processor before other processors start.
    unsafe { *core::ptr::addr_of!(MADT) }
}

/// Records the MADT (phase 0, boot processor).
pub fn set_madt(m: Option<crate::hal::apic::Madt>) {
    // SAFETY: phase 0, single writer before any reader.
    unsafe { *core::ptr::addr_of_mut!(MADT) = m };
}

/// Sets this processor's TSS RSP0 (the running thread's InitialStack).
pub fn set_tss_rsp0(top: u64) {
    let n = current_processor_number();
    // SAFETY: only this processor writes its own TSS.
    unsafe { (*block_ptr(n)).tss.rsp[0] = top };
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

/// Processor initialization (`KiInitializeProcessor`/`KiInitializeGdt`/
/// `KiInitializeIdt`): GDT with TSS and IST stacks, IDT, segment registers,
/// GS base pointing at the KPCR.
///
/// # Safety
/// Must run once per processor `number`, on that processor, with interrupts
/// disabled, processors numbered in order from 0.
pub unsafe fn ki_initialize_processor(number: u32, ist_tops: [u64; 3], kernel_stack_top: u64) {
    // SAFETY: each processor initializes only its own block, once.
    let block = unsafe { &mut *block_ptr(number) };
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
    pcr.prcb.number = number;
    pcr.prcb.legacy_number = number as u8;
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
    APIC_IDS[number as usize].store(crate::hal::apic::current_apic_id_raw(), Ordering::Relaxed);
    PROCESSOR_COUNT.fetch_max(number + 1, Ordering::AcqRel);
    GS_READY.store(true, Ordering::Relaxed);
}
