//! The local APIC, the I/O APIC and the MADT (*Windows Internals*, Part 2,
//! ch. 8, "Hardware interrupt processing"): the HAL maps IRQLs to APIC task
//! priorities (CR8), programs the local APIC timer as the clock source,
//! sends IPIs, and routes device interrupts through the I/O APIC.

use super::{phys_read, phys_to_virt, phys_u32, rdmsr, wrmsr};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_ID: u32 = 0x20;
const APIC_VERSION: u32 = 0x30;
const APIC_EOI: u32 = 0xB0;
const APIC_SVR: u32 = 0xF0;
const APIC_ESR: u32 = 0x280;
const APIC_ICR_LOW: u32 = 0x300;
const APIC_ICR_HIGH: u32 = 0x310;
const APIC_LVT_TIMER: u32 = 0x320;
const APIC_LVT_LINT0: u32 = 0x350;
const APIC_LVT_LINT1: u32 = 0x360;
const APIC_LVT_ERROR: u32 = 0x370;
const APIC_TIMER_INITIAL: u32 = 0x380;
const APIC_TIMER_CURRENT: u32 = 0x390;
const APIC_TIMER_DIVIDE: u32 = 0x3E0;

/// Vectors as NT assigns them on x64: IRQL = vector >> 4.
pub const APC_VECTOR: u8 = 0x1F;
pub const DPC_VECTOR: u8 = 0x2F;
pub const CLOCK_VECTOR: u8 = 0xD1;
pub const IPI_VECTOR: u8 = 0xE1;
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// First vector for device interrupts (`IoConnectInterrupt` picks from here).
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;

/// Processors, I/O APICs and overrides from the MADT.
#[derive(Clone, Copy, Debug)]
pub struct Madt {
    pub local_apic_pa: u64,
    pub apic_ids: [u8; super::MAX_PROCESSORS],
    pub processor_count: usize,
    pub ioapic_pa: u64,
    pub ioapic_gsi_base: u32,
    /// ISA IRQ → (GSI, flags) from interrupt source overrides.
    pub isa_override: [(u32, u16); 16],
}

/// Parses the MADT (`APIC` table): enabled local APICs, the first I/O APIC and ISA overrides.
pub fn parse_madt(rsdp: u64) -> Option<Madt> {
    let t = super::acpi_find_table(rsdp, b"APIC")?;
    let len = phys_u32(t + 4) as u64;
    let mut m = Madt {
        local_apic_pa: phys_u32(t + 36) as u64,
        apic_ids: [0; super::MAX_PROCESSORS],
        processor_count: 0,
        ioapic_pa: 0,
        ioapic_gsi_base: 0,
        isa_override: core::array::from_fn(|i| (i as u32, 0)),
    };
    let mut off = 44;
    while off + 2 <= len {
        let [kind, elen] = phys_read::<2>(t + off);
        if elen < 2 || off + elen as u64 > len {
            break;
        }
        let e = t + off;
        match kind {
            0 => {
                let [_, _, _uid, id] = phys_read::<4>(e);
                let flags = phys_u32(e + 4);
                if flags & 1 != 0 && m.processor_count < super::MAX_PROCESSORS {
                    m.apic_ids[m.processor_count] = id;
                    m.processor_count += 1;
                }
            }
            1 if m.ioapic_pa == 0 => {
                m.ioapic_pa = phys_u32(e + 4) as u64;
                m.ioapic_gsi_base = phys_u32(e + 8);
            }
            2 => {
                let [_, _, _bus, irq] = phys_read::<4>(e);
                let gsi = phys_u32(e + 4);
                let flags = u16::from_le_bytes(phys_read::<2>(e + 8));
                if (irq as usize) < 16 {
                    m.isa_override[irq as usize] = (gsi, flags);
                }
            }
            5 => m.local_apic_pa = u64::from_le_bytes(phys_read::<8>(e + 4)),
            _ => {}
        }
        off += elen as u64;
    }
    Some(m)
}

static LAPIC_VA: AtomicU64 = AtomicU64::new(0);
static IOAPIC_VA: AtomicU64 = AtomicU64::new(0);
/// APIC timer counts per clock tick (divide-by-16), calibrated on the boot processor.
static TIMER_COUNT_PER_TICK: AtomicU32 = AtomicU32::new(0);

fn reg(off: u32) -> *mut u32 {
    (LAPIC_VA.load(Ordering::Relaxed) + off as u64) as *mut u32
}

/// Physical address of the local APIC registers.
pub fn base_physical() -> u64 {
    rdmsr(IA32_APIC_BASE) & 0x000F_FFFF_FFFF_F000
}

/// Whether the local APIC is mapped (phase 0 done).
pub fn is_initialized() -> bool {
    LAPIC_VA.load(Ordering::Relaxed) != 0
}

/// Reads a local APIC register.
pub fn read(off: u32) -> u32 {
    // SAFETY: the local APIC page is mapped through the direct map (uncached in
    // QEMU's model; ntrs maps all of the low 4 GiB) and registers are 32-bit aligned.
    unsafe { reg(off).read_volatile() }
}

/// Writes a local APIC register.
pub fn write(off: u32, v: u32) {
    // SAFETY: as for `read`.
    unsafe { reg(off).write_volatile(v) }
}

/// This processor's local APIC id.
pub fn current_apic_id() -> u8 {
    (read(APIC_ID) >> 24) as u8
}

/// Masks the legacy 8259 PICs: every device interrupt goes through the I/O APIC.
fn mask_pic() {
    super::outb(0x21, 0xFF);
    super::outb(0xA1, 0xFF);
}

/// `HalInitializeProcessor` (APIC part): enables this processor's local APIC
/// with the spurious vector, masks LINT0/1, sets the error vector, and (on the
/// boot processor) masks the PICs and every I/O APIC input.
pub fn initialize_processor(madt: &Madt, boot: bool) {
    if boot {
        LAPIC_VA.store(phys_to_virt(madt.local_apic_pa), Ordering::Relaxed);
        if madt.ioapic_pa != 0 {
            IOAPIC_VA.store(phys_to_virt(madt.ioapic_pa), Ordering::Relaxed);
        }
        mask_pic();
        for i in 0..ioapic_entries() {
            ioapic_write_redirection(i, 1 << 16);
        }
    }
    let base = rdmsr(IA32_APIC_BASE);
    // SAFETY: setting the global enable bit of the APIC base MSR keeps its address.
    unsafe { wrmsr(IA32_APIC_BASE, base | (1 << 11)) };
    write(APIC_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(APIC_LVT_LINT0, 1 << 16);
    write(APIC_LVT_LINT1, 0x400); // NMI
    write(APIC_LVT_ERROR, 0xFE);
    write(APIC_ESR, 0);
    write(APIC_EOI, 0);
}

/// The local APIC version register (for `!apic`).
pub fn version() -> u32 {
    read(APIC_VERSION)
}

/// End of interrupt.
pub fn eoi() {
    write(APIC_EOI, 0);
}

fn wait_icr_idle() {
    while read(APIC_ICR_LOW) & (1 << 12) != 0 {
        core::hint::spin_loop();
    }
}

/// Sends a fixed IPI with `vector` to the processor whose APIC id is `apic_id`.
pub fn send_ipi(apic_id: u8, vector: u8) {
    let f = super::disable_interrupts();
    wait_icr_idle();
    write(APIC_ICR_HIGH, (apic_id as u32) << 24);
    write(APIC_ICR_LOW, vector as u32 | (1 << 14));
    super::restore_interrupts(f);
}

/// Sends a non-maskable interrupt to the processor whose APIC id is
/// `apic_id` (delivery mode NMI: it arrives even with interrupts disabled).
pub fn send_nmi(apic_id: u8) {
    let f = super::disable_interrupts();
    wait_icr_idle();
    write(APIC_ICR_HIGH, (apic_id as u32) << 24);
    write(APIC_ICR_LOW, (0b100 << 8) | (1 << 14));
    super::restore_interrupts(f);
}

/// `HalRequestSoftwareInterrupt`: a self-IPI whose vector's priority class is
/// the requested IRQL, so the APIC holds it until CR8 drops below that level.
pub fn request_software_interrupt(vector: u8) {
    let f = super::disable_interrupts();
    wait_icr_idle();
    write(APIC_ICR_LOW, vector as u32 | (1 << 14) | (1 << 18));
    super::restore_interrupts(f);
}

/// INIT then two STARTUP IPIs (`HalStartNextProcessor`) to the processor at
/// `apic_id`, starting it in real mode at physical page `start_page`.
pub fn start_processor(apic_id: u8, start_page: u8, stall_us: impl Fn(u64)) {
    wait_icr_idle();
    write(APIC_ESR, 0);
    write(APIC_ICR_HIGH, (apic_id as u32) << 24);
    write(APIC_ICR_LOW, 0x4500);
    wait_icr_idle();
    stall_us(10_000);
    for _ in 0..2 {
        write(APIC_ICR_HIGH, (apic_id as u32) << 24);
        write(APIC_ICR_LOW, 0x4600 | start_page as u32);
        stall_us(200);
        wait_icr_idle();
    }
}

/// Calibrates the local APIC timer against the TSC (whose rate winload
/// measured): counts (divide by 16) in `tick_100ns` hundred-nanosecond units.
pub fn calibrate_timer(tsc_frequency: u64, tick_100ns: u64) -> u32 {
    write(APIC_TIMER_DIVIDE, 0x3);
    write(APIC_LVT_TIMER, 1 << 16);
    write(APIC_TIMER_INITIAL, u32::MAX);
    let start = super::rdtsc();
    let wait = tsc_frequency / 100; // 10 ms
    while super::rdtsc() - start < wait {
        core::hint::spin_loop();
    }
    let elapsed = u32::MAX - read(APIC_TIMER_CURRENT);
    write(APIC_TIMER_INITIAL, 0);
    // counts per 10 ms → counts per tick.
    let per_tick = (elapsed as u64 * tick_100ns / 100_000).clamp(1, u32::MAX as u64) as u32;
    TIMER_COUNT_PER_TICK.store(per_tick, Ordering::Relaxed);
    per_tick
}

/// Starts the periodic clock interrupt on this processor (`HalpTimerInitialize`).
pub fn start_clock() {
    write(APIC_TIMER_DIVIDE, 0x3);
    write(APIC_LVT_TIMER, CLOCK_VECTOR as u32 | (1 << 17));
    write(
        APIC_TIMER_INITIAL,
        TIMER_COUNT_PER_TICK.load(Ordering::Relaxed),
    );
}

/// Counts per clock tick (for `!apic`).
pub fn timer_count_per_tick() -> u32 {
    TIMER_COUNT_PER_TICK.load(Ordering::Relaxed)
}

fn ioapic_read(index: u32) -> u32 {
    let base = IOAPIC_VA.load(Ordering::Relaxed);
    if base == 0 {
        return 0;
    }
    // SAFETY: IOREGSEL/IOWIN of the I/O APIC the MADT names, mapped through the direct map.
    unsafe {
        (base as *mut u32).write_volatile(index);
        ((base + 0x10) as *mut u32).read_volatile()
    }
}

fn ioapic_write(index: u32, v: u32) {
    let base = IOAPIC_VA.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: as for `ioapic_read`.
    unsafe {
        (base as *mut u32).write_volatile(index);
        ((base + 0x10) as *mut u32).write_volatile(v);
    }
}

/// Redirection entries the I/O APIC has.
pub fn ioapic_entries() -> u32 {
    if IOAPIC_VA.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    ((ioapic_read(1) >> 16) & 0xFF) + 1
}

fn ioapic_write_redirection(entry: u32, low: u32) {
    ioapic_write(0x10 + 2 * entry, low);
    ioapic_write(0x11 + 2 * entry, 0);
}

/// Routes global system interrupt `gsi` to `vector` on the processor with
/// `apic_id` (`HalEnableSystemInterrupt`), with polarity/trigger from MADT flags.
pub fn ioapic_route(madt: &Madt, gsi: u32, vector: u8, apic_id: u8, mps_flags: u16) {
    let Some(entry) = gsi.checked_sub(madt.ioapic_gsi_base) else {
        return;
    };
    let mut low = vector as u32;
    if mps_flags & 3 == 3 {
        low |= 1 << 13; // active low
    }
    if (mps_flags >> 2) & 3 == 3 {
        low |= 1 << 15; // level triggered
    }
    ioapic_write(0x11 + 2 * entry, (apic_id as u32) << 24);
    ioapic_write(0x10 + 2 * entry, low);
}

/// Masks global system interrupt `gsi` (`HalDisableSystemInterrupt`).
pub fn ioapic_mask(madt: &Madt, gsi: u32) {
    if let Some(entry) = gsi.checked_sub(madt.ioapic_gsi_base) {
        ioapic_write_redirection(entry, 1 << 16);
    }
}

/// This processor's initial APIC id from CPUID (valid before the APIC is mapped).
pub fn current_apic_id_raw() -> u8 {
    (core::arch::x86_64::__cpuid(1).ebx >> 24) as u8
}
