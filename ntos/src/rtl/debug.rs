//! The debug port (COM1), as NT's kdcom transport owns it: its own port
//! I/O, a print lock that keeps one print together across processors, and
//! the `dbg_print!`/`dbg_println!` macros behind `DbgPrint`.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// The debug port's I/O base (COM1).
pub const COM1: u16 = 0x3F8;

fn outb(port: u16, v: u8) {
    // SAFETY: port I/O to the debug UART, which only this module drives.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: reading a debug UART register has no memory effects.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Initializes COM1 at 115200 baud, 8N1, FIFOs on (`KdComPortInUse`).
pub fn serial_init() {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xC7);
    outb(COM1 + 4, 0x03);
}

/// Sends one byte, waiting for the transmitter.
pub fn serial_write_byte(b: u8) {
    while inb(COM1 + 5) & 0x20 == 0 {
        core::hint::spin_loop();
    }
    outb(COM1, b);
}

/// A byte from COM1, if one has arrived.
pub fn serial_read_byte() -> Option<u8> {
    (inb(COM1 + 5) & 1 != 0).then(|| inb(COM1))
}

/// The debug port as a `fmt::Write` sink (`DbgPrint` ends up here).
pub struct DebugPort;

impl fmt::Write for DebugPort {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                serial_write_byte(b'\r');
            }
            serial_write_byte(b);
        }
        Ok(())
    }
}

/// Owner of the debug-port lock: the owning processor's initial APIC id + 1
/// (read with CPUID, so this layer needs no processor block), 0 when free.
static PRINT_OWNER: AtomicU32 = AtomicU32::new(0);

fn processor_tag() -> u32 {
    // CPUID leaf 1 exists on every x86-64 processor and has no side effects.
    let r = core::arch::x86_64::__cpuid(1);
    (r.ebx >> 24) + 1
}

/// Writes formatted text to the debug port as one unit: other processors wait,
/// and a nested print on the same processor (an interrupt or a bugcheck while
/// printing) goes straight through instead of deadlocking.
pub fn debug_print(args: fmt::Arguments) {
    use fmt::Write as _;
    let flags: u64;
    // SAFETY: saving RFLAGS and clearing IF is always allowed in ring 0; the
    // print must not be interleaved with an interrupt's print on this processor.
    unsafe { core::arch::asm!("pushfq; pop {}; cli", out(reg) flags, options(nomem)) };
    let me = processor_tag();
    let nested = PRINT_OWNER.load(Ordering::Relaxed) == me;
    if !nested {
        while PRINT_OWNER
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
    }
    let _ = DebugPort.write_fmt(args);
    if !nested {
        PRINT_OWNER.store(0, Ordering::Release);
    }
    if flags & 0x200 != 0 {
        // SAFETY: interrupts were enabled before this print.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
}

/// Frees the debug port's lock whoever holds it (bugcheck: the holder may be frozen).
pub fn break_print_lock() {
    PRINT_OWNER.store(0, Ordering::SeqCst);
}

#[macro_export]
macro_rules! dbg_print {
    ($($arg:tt)*) => {{
        $crate::rtl::debug::debug_print(format_args!($($arg)*));
    }};
}

#[macro_export]
macro_rules! dbg_println {
    () => { $crate::dbg_print!("\n") };
    ($($arg:tt)*) => {{ $crate::dbg_print!($($arg)*); $crate::dbg_print!("\n"); }};
}
