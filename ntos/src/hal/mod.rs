//! Hardware abstraction: port I/O, MSRs, interrupt flags, TLB control,
//! physical memory access through the direct map, and ACPI power-off
//! (*Windows Internals*, Part 2, ch. 8, "Hardware abstraction layer").

pub mod apic;

use core::sync::atomic::{AtomicU64, Ordering};

/// Processors ntrs supports (`MAXIMUM_PROCESSORS` is larger on Windows).
pub const MAX_PROCESSORS: usize = 16;

/// QEMU's isa-debug-exit device (test harness only).
pub const DEBUG_EXIT_PORT: u16 = 0xF4;

pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O to devices this kernel owns (serial, ACPI, debug exit).
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: reading a device port has no memory effects.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}
pub fn outw(port: u16, v: u16) {
    // SAFETY: as for `outb`.
    unsafe {
        core::arch::asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    };
}
pub fn outl(port: u16, v: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    };
}
pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `inb` (PCI configuration data reads have no memory effects).
    unsafe {
        core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags))
    };
    v
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: callers read architectural MSRs that exist on every x86-64 CPU;
    // a missing MSR raises #GP, which the trap handler reports.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    (hi as u64) << 32 | lo as u64
}

/// # Safety
/// Writing an MSR changes processor state; the caller owns that state.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the caller guarantees the write is valid.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack))
    };
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

/// `KiFlushSingleTb` on this processor: `INVLPG` drops the translation of
/// `va`, global or not, and the paging-structure entries used for it.
pub fn invlpg(va: u64) {
    // SAFETY: invalidating a TLB entry has no other architectural effect.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack)) };
}

/// `KeFlushCurrentTbImmediately`: drops every translation on this
/// processor, global ones included. With CR4.PGE set, clearing and setting
/// it again flushes global entries too (a CR3 reload keeps them); without
/// it a CR3 reload is a full flush.
pub fn flush_tb_entire() {
    const CR4_PGE: u64 = 1 << 7;
    let flags = disable_interrupts();
    let cr4: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack)) };
    if cr4 & CR4_PGE != 0 {
        // SAFETY: toggling PGE only flushes the TLB; the same CR4 is restored
        // at once, with interrupts off so nothing runs in between.
        unsafe {
            core::arch::asm!(
                "mov cr4, {off}",
                "mov cr4, {on}",
                off = in(reg) cr4 & !CR4_PGE,
                on = in(reg) cr4,
                options(nostack)
            )
        };
    } else {
        let cr3 = read_cr3();
        // SAFETY: reloading the current CR3 only flushes the TLB.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack)) };
    }
    restore_interrupts(flags);
}

pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stopping the processor with interrupts off is the intended end state.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// Clears IF and returns the previous RFLAGS (`_disable` + saved state).
pub fn disable_interrupts() -> u64 {
    let f: u64;
    // SAFETY: reading RFLAGS and clearing IF is always allowed in ring 0.
    unsafe { core::arch::asm!("pushfq; pop {}; cli", out(reg) f, options(nomem)) };
    f
}

/// Sets IF again if `flags` (from `disable_interrupts`) had it set.
pub fn restore_interrupts(flags: u64) {
    if flags & 0x200 != 0 {
        // SAFETY: re-enabling interrupts that were enabled before.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
}

/// Whether IF is set.
pub fn interrupts_enabled() -> bool {
    let f: u64;
    // SAFETY: reading RFLAGS.
    unsafe { core::arch::asm!("pushfq; pop {}", out(reg) f, options(nomem)) };
    f & 0x200 != 0
}

/// `KeStallExecutionProcessor`: busy-waits `us` microseconds on the TSC.
pub fn stall_execution_processor(us: u64) {
    let freq = crate::rtl::loader_block().tsc_frequency.max(1_000_000);
    let start = rdtsc();
    let wait = freq / 1_000_000 * us;
    while rdtsc().wrapping_sub(start) < wait {
        core::hint::spin_loop();
    }
}

/// `KeStallExecutionProcessor`, exported for drivers.
#[no_mangle]
pub extern "system" fn KeStallExecutionProcessor(microseconds: u32) {
    stall_execution_processor(microseconds as u64)
}

fn cmos(reg: u8) -> u8 {
    outb(0x70, reg);
    inb(0x71)
}

/// Reads the RTC (`HalQueryRealTimeClock`) and returns the system time: 100 ns
/// units since 1601-01-01 UTC, as `KeQuerySystemTime` reports it.
pub fn query_real_time_clock() -> u64 {
    while cmos(0x0A) & 0x80 != 0 {
        core::hint::spin_loop();
    }
    let status_b = cmos(0x0B);
    let bcd = |v: u8| {
        if status_b & 4 == 0 {
            (v & 0x0F) + (v >> 4) * 10
        } else {
            v
        }
    };
    let sec = bcd(cmos(0x00)) as u64;
    let min = bcd(cmos(0x02)) as u64;
    let hour_raw = cmos(0x04);
    let mut hour = bcd(hour_raw & 0x7F) as u64;
    if status_b & 2 == 0 && hour_raw & 0x80 != 0 {
        hour = (hour % 12) + 12;
    }
    let day = bcd(cmos(0x07)) as u64;
    let month = bcd(cmos(0x08)) as u64;
    let year = 2000 + bcd(cmos(0x09)) as u64;
    // Days from 1601-01-01 to the date (proleptic Gregorian).
    let days_before = |y: u64| {
        let y = y - 1;
        y * 365 + y / 4 - y / 100 + y / 400
    };
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    const CUM: [u64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let mut yday = CUM[(month.clamp(1, 12) - 1) as usize] + day.max(1) - 1;
    if leap && month > 2 {
        yday += 1;
    }
    let days = days_before(year) - days_before(1601) + yday;
    ((days * 24 + hour) * 60 + min) * 60 * 10_000_000 + sec * 10_000_000
}

/// Base of the physical direct map (from the loader block).
static PHYS_BASE: AtomicU64 = AtomicU64::new(nt::arc::PHYSICAL_MAP_BASE);

/// Kernel pointer to physical address `pa` (through the direct map).
pub fn phys_to_virt(pa: u64) -> u64 {
    PHYS_BASE.load(Ordering::Relaxed) + pa
}

/// Reads a little-endian value of `N` bytes at physical address `pa`.
pub(crate) fn phys_read<const N: usize>(pa: u64) -> [u8; N] {
    let mut v = [0u8; N];
    // SAFETY: the loader's direct map covers all RAM and the low 4 GiB, which
    // is where firmware places ACPI tables.
    unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(pa) as *const u8, v.as_mut_ptr(), N) };
    v
}
pub(crate) fn phys_u32(pa: u64) -> u32 {
    u32::from_le_bytes(phys_read::<4>(pa))
}
pub(crate) fn phys_u64(pa: u64) -> u64 {
    u64::from_le_bytes(phys_read::<8>(pa))
}

/// What the HAL learned from the ACPI tables.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcpiInfo {
    pub fadt: u64,
    pub dsdt: u64,
    pub pm1a_control: u16,
    pub slp_typ_s5: u16,
    pub reset_port: u16,
    pub reset_value: u8,
}

/// Finds a table by signature through the XSDT (or RSDT).
pub fn acpi_find_table(rsdp: u64, sig: &[u8; 4]) -> Option<u64> {
    if rsdp == 0 || &phys_read::<8>(rsdp) != b"RSD PTR " {
        return None;
    }
    let revision = phys_read::<1>(rsdp + 15)[0];
    let (root, entry) = if revision >= 2 && phys_u64(rsdp + 24) != 0 {
        (phys_u64(rsdp + 24), 8)
    } else {
        (phys_u32(rsdp + 16) as u64, 4)
    };
    let len = phys_u32(root + 4) as u64;
    let count = len.saturating_sub(36) / entry;
    (0..count.min(256))
        .map(|i| {
            if entry == 8 {
                phys_u64(root + 36 + i * 8)
            } else {
                phys_u32(root + 36 + i * 4) as u64
            }
        })
        .find(|&t| &phys_read::<4>(t) == sig)
}

/// The ACPI facts phase 0 found.
static ACPI: crate::rtl::Once<Option<AcpiInfo>> = crate::rtl::Once::new();

/// `HalInitSystem`'s ACPI part (phase 0, once): parses the tables and
/// keeps what `acpi()` reports.
pub fn acpi_init(rsdp: u64) {
    ACPI.set(acpi_parse(rsdp));
}

/// The HAL's ACPI information, once phase 0 parsed it.
pub fn acpi() -> Option<AcpiInfo> {
    ACPI.get().flatten()
}

/// Parses the FADT and the `\_S5` package of the DSDT (`HalpAcpiPreSleep` needs both).
fn acpi_parse(rsdp: u64) -> Option<AcpiInfo> {
    let fadt = acpi_find_table(rsdp, b"FACP")?;
    let fadt_len = phys_u32(fadt + 4) as u64;
    let mut dsdt = phys_u32(fadt + 40) as u64;
    if fadt_len >= 148 && phys_u64(fadt + 140) != 0 {
        dsdt = phys_u64(fadt + 140);
    }
    let pm1a_control = phys_u32(fadt + 64) as u16;
    let (reset_port, reset_value) = if fadt_len >= 129 && phys_read::<1>(fadt + 116)[0] == 1 {
        (phys_u64(fadt + 120) as u16, phys_read::<1>(fadt + 128)[0])
    } else {
        (0xCF9, 0x06)
    };
    // Scan the DSDT's AML for `Name(_S5_, Package(){ SLP_TYPa, ... })`.
    let mut slp_typ_s5 = 0;
    if dsdt != 0 {
        let len = phys_u32(dsdt + 4) as u64;
        let mut i = 36;
        while i + 8 < len {
            if &phys_read::<4>(dsdt + i) == b"_S5_" && phys_read::<1>(dsdt + i + 4)[0] == 0x12 {
                let pkg_len_bytes = (phys_read::<1>(dsdt + i + 5)[0] >> 6) as u64 + 1;
                let first = dsdt + i + 5 + pkg_len_bytes + 1;
                let op = phys_read::<1>(first)[0];
                slp_typ_s5 = match op {
                    0x0A => phys_read::<1>(first + 1)[0] as u16,
                    0x00 => 0,
                    0x01 => 1,
                    v => v as u16,
                };
                break;
            }
            i += 1;
        }
    }
    Some(AcpiInfo {
        fadt,
        dsdt,
        pm1a_control,
        slp_typ_s5,
        reset_port,
        reset_value,
    })
}

/// Powers the machine off through ACPI S5 (`HalReturnToFirmware(HalPowerDownRoutine)`).
pub fn power_off(info: Option<AcpiInfo>) -> ! {
    if let Some(a) = info {
        if a.pm1a_control != 0 {
            outw(a.pm1a_control, (a.slp_typ_s5 << 10) | (1 << 13));
            // The power-off takes effect asynchronously: give it time before
            // reporting failure.
            for _ in 0..50_000_000u64 {
                core::hint::spin_loop();
            }
        }
    }
    crate::dbg_println!("HAL: ACPI power-off failed");
    halt_forever()
}

/// Resets the machine (`HalReturnToFirmware(HalRebootRoutine)`).
pub fn reboot(info: Option<AcpiInfo>) -> ! {
    let (port, value) = info
        .map(|a| (a.reset_port, a.reset_value))
        .unwrap_or((0xCF9, 0x06));
    outb(port, value);
    outb(0x64, 0xFE);
    halt_forever()
}

/// Ends a test run: QEMU exits with status `(code << 1) | 1`.
pub fn debug_exit(code: u32) -> ! {
    outl(DEBUG_EXIT_PORT, code);
    halt_forever()
}
