//! The kernel (ke): processor control region, descriptor tables, IRQL,
//! trap dispatching and bugchecks (*Windows Internals*, Part 2, ch. 8).

pub mod apc;
pub mod bugcheck;
pub mod clock;
pub mod dispobj;
pub mod dpc;
pub mod dpc_export;
pub mod event;
pub mod except;
pub mod gdt;
pub mod intr;
pub mod irql;
pub mod kdext;
pub mod mp;
pub mod probe;
pub mod process;
pub mod queue;
pub mod sched;
pub mod stack;
pub mod syscall;
/// Boot tests (`/TESTS`) of this component.
pub mod tests;
/// Boot tests of dispatcher objects in caller memory.
pub mod tests_dispobj;
pub mod thread;
pub mod timer;
pub mod timer_export;
pub mod trap;
pub mod user;
pub mod wait;

use crate::hal::MAX_PROCESSORS;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
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

/// `KPRCB` (the fields ntrs uses so far, at NT's offsets). The thread
/// pointers are written by their own processor and read by others (kd, the
/// scheduler's bookkeeping), hence atomics; the rest is set once when the
/// processor initializes, before it is counted in `processor_count`.
#[repr(C)]
pub struct Kprcb {
    pub mx_csr: u32,
    pub legacy_number: u8,
    pub reserved_must_be_zero: u8,
    pub interrupt_request: u8,
    pub idle_halt: u8,
    /// `CurrentThread` (GS:[0x188]).
    pub current_thread: AtomicU64,
    /// `NextThread`: the standby thread chosen for this processor.
    pub next_thread: AtomicU64,
    /// `IdleThread`.
    pub idle_thread: AtomicU64,
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
    /// `Irql`: a copy of CR8 that `irql::write_cr8` keeps for other
    /// processors (kd); CR8 stays authoritative.
    pub irql: AtomicU8,
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
const _: () = assert!(
    core::mem::offset_of!(Kpcr, prcb) + core::mem::offset_of!(Kprcb, current_thread) == 0x188
);
const _: () =
    assert!(core::mem::offset_of!(Kpcr, prcb) + core::mem::offset_of!(Kprcb, number) == 0x1A4);

/// Everything one processor owns: PCR, GDT, TSS, IDT.
#[repr(C, align(4096))]
pub struct ProcessorBlock {
    pub pcr: Kpcr,
    pub gdt: [u64; GDT_ENTRIES],
    /// The TSS: its `Rsp0` is rewritten on every context switch by its own
    /// processor (and read by the hardware), so it is only reached through
    /// this cell, never through a shared reference.
    tss: UnsafeCell<Ktss64>,
    pub idt: [KIdtEntry64; 256],
}

impl ProcessorBlock {
    /// Address of the TSS (`KPCR.TssBase`).
    pub fn tss_address(&self) -> u64 {
        self.tss.get() as u64
    }
}

struct Processors(UnsafeCell<core::mem::MaybeUninit<[ProcessorBlock; MAX_PROCESSORS]>>);
// SAFETY: each processor initializes its own block once, before it counts in
// `PROCESSOR_COUNT` (which `processor_block` checks, with Acquire against the
// initializer's Release); afterwards only atomics (`Kpcr.irql`, the PRCB's
// thread pointers) and the TSS (behind its own `UnsafeCell`, touched only
// by its processor) change, so shared references to a block never see a
// plain write.
unsafe impl Sync for Processors {}

static PROCESSORS: Processors = Processors(UnsafeCell::new(core::mem::MaybeUninit::zeroed()));
/// Processors initialized so far (`KeNumberProcessors`).
static PROCESSOR_COUNT: AtomicU32 = AtomicU32::new(0);
/// Local APIC id of each processor.
static APIC_IDS: [AtomicU8; MAX_PROCESSORS] = [const { AtomicU8::new(0) }; MAX_PROCESSORS];
static GS_READY: AtomicBool = AtomicBool::new(false);
static MADT: SetOnce<crate::hal::apic::Madt> = SetOnce::new();

/// A value set once (phase 0) and read afterwards without a lock.
struct SetOnce<T> {
    /// 0 empty, 1 being written, 2 set.
    state: AtomicU8,
    value: UnsafeCell<core::mem::MaybeUninit<T>>,
}

// SAFETY: the value is written only by the single caller that moved `state`
// from 0 to 1, and read only after `state` is 2 (Release/Acquire), after
// which it never changes; `T: Send + Sync` so sharing the read is sound.
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}

impl<T: Copy> SetOnce<T> {
    const fn new() -> Self {
        SetOnce {
            state: AtomicU8::new(0),
            value: UnsafeCell::new(core::mem::MaybeUninit::uninit()),
        }
    }

    /// Stores `v` unless a value was stored already; returns whether it did.
    fn set(&self, v: T) -> bool {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: this caller won the 0 -> 1 transition: nobody else writes,
        // and readers wait for state 2.
        unsafe { (*self.value.get()).write(v) };
        self.state.store(2, Ordering::Release);
        true
    }

    fn get(&self) -> Option<T> {
        if self.state.load(Ordering::Acquire) != 2 {
            return None;
        }
        // SAFETY: state 2 means the value was fully written and never changes again.
        Some(unsafe { (*self.value.get()).assume_init() })
    }
}

/// Processor `n`'s block, by address (no reference is formed).
fn block_ptr(n: u32) -> *mut ProcessorBlock {
    let n = (n as usize).min(MAX_PROCESSORS - 1);
    // Pointer arithmetic inside the static array (`n` is clamped to it).
    PROCESSORS.0.get().cast::<ProcessorBlock>().wrapping_add(n)
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

/// Processor `n`'s PCR, if it was initialized (`!pcr N`).
pub fn pcr_of(n: u32) -> Option<&'static Kpcr> {
    processor_block(n).map(|b| &b.pcr)
}

/// Processor `n`'s block (kd inspects it).
pub fn processor_block(n: u32) -> Option<&'static ProcessorBlock> {
    // SAFETY: processors start one at a time and each counts itself in
    // PROCESSOR_COUNT (Release) only after initializing its block, so blocks
    // below the count (Acquire) are initialized; see `Processors` for why a
    // shared reference to one is sound afterwards.
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
    MADT.get()
}

/// Records the MADT (phase 0, boot processor); later calls change nothing.
pub fn set_madt(m: Option<crate::hal::apic::Madt>) {
    if let Some(m) = m {
        MADT.set(m);
    }
}

/// Sets this processor's TSS RSP0 (the running thread's InitialStack).
pub fn set_tss_rsp0(top: u64) {
    let n = current_processor_number();
    // SAFETY: only this processor writes its own TSS, through the cell's
    // raw pointer; no reference to the TSS is ever formed outside
    // `ki_initialize_processor` (which runs before the processor switches).
    unsafe { (*(*block_ptr(n)).tss.get()).rsp[0] = top };
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
pub extern "system" fn KeGetCurrentIrql() -> u8 {
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
    // SAFETY: each processor initializes only its own block, once, before
    // it counts in PROCESSOR_COUNT, so nobody else references it yet.
    let block = unsafe { &mut *block_ptr(number) };
    let pcr_addr = &block.pcr as *const Kpcr as u64;
    let tss = block.tss.get_mut();
    tss.rsp[0] = kernel_stack_top;
    tss.ist[0] = ist_tops[0];
    tss.ist[1] = ist_tops[1];
    tss.ist[2] = ist_tops[2];
    tss.io_map_base = core::mem::size_of::<Ktss64>() as u16;
    let tss_addr = block.tss.get() as u64;
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
    syscall::initialize_processor();
    APIC_IDS[number as usize].store(crate::hal::apic::current_apic_id_raw(), Ordering::Relaxed);
    PROCESSOR_COUNT.fetch_max(number + 1, Ordering::AcqRel);
    GS_READY.store(true, Ordering::Relaxed);
}
