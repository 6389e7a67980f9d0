//! The runtime every ntrs driver links: the panic handler (a driver panic
//! is a bug check, as an unhandled kernel-mode exception is on Windows),
//! the import library's search path (build.rs), and `dbg!`-style printing of
//! Rust formatting through `DbgPrint`. The ntoskrnl imports themselves
//! come from lib/wdk (feature `driver`), re-exported as `rt::wdk`.
#![no_std]
#![warn(clippy::undocumented_unsafe_blocks)]

pub use wdk;

#[cfg(feature = "alloc")]
pub mod heap;
pub mod request;

use core::fmt::{self, Write};

/// `KMODE_EXCEPTION_NOT_HANDLED`.
const KMODE_EXCEPTION_NOT_HANDLED: u32 = 0x1E;
/// `STATUS_ASSERTION_FAILURE`, the exception code a panic stands for.
const STATUS_ASSERTION_FAILURE: u32 = 0xC000_0420;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    print(format_args!("driver panic: {info}\n"));
    // SAFETY: KeBugCheckEx takes plain integers and does not return.
    unsafe {
        wdk::KeBugCheckEx(
            KMODE_EXCEPTION_NOT_HANDLED,
            STATUS_ASSERTION_FAILURE as usize,
            0,
            0,
            0,
        )
    }
}

/// A fixed buffer that formats into a NUL-terminated line for DbgPrint.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // Keep room for the NUL; '%' would be a DbgPrint conversion.
            if self.len + 2 >= self.buf.len() {
                break;
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'%' {
                self.buf[self.len] = b'%';
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Prints Rust formatting through `DbgPrint` (one call per message, cut at
/// 255 bytes).
pub fn print(args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_fmt(args);
    line.buf[line.len] = 0;
    // SAFETY: the buffer is NUL-terminated.
    unsafe { wdk::DbgPrint(line.buf.as_ptr()) };
}

/// `println!` for drivers: one DbgPrint line.
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => { $crate::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// UTF-16 of an ASCII string literal, for `UNICODE_STRING` names
/// (`const NAME: [u16; 13] = rt::utf16("\\Device\\Null\0");`).
pub const fn utf16<const N: usize>(s: &str) -> [u16; N] {
    let b = s.as_bytes();
    assert!(b.len() == N, "length mismatch");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        assert!(b[i] < 0x80, "not ASCII");
        out[i] = b[i] as u16;
        i += 1;
    }
    out
}

/// A `UNICODE_STRING` over a NUL-terminated UTF-16 array (Length without
/// the NUL).
pub fn unicode_string(s: &'static [u16]) -> wdk::UNICODE_STRING {
    let n = s.len().saturating_sub(1) as u16 * 2;
    wdk::UNICODE_STRING {
        Length: n,
        MaximumLength: n + 2,
        Buffer: s.as_ptr() as *mut u16,
    }
}
