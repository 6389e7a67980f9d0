//! Shared code of the boot manager and the OS loader: the boot file-system
//! interface, QEMU fw_cfg access, and small CPU helpers.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod blockdev;
pub mod fs;
pub mod fwcfg;

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86-64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}
