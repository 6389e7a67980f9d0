//! The logic behind ntdll's `Rtl*` exports (*Windows Internals* 7th ed.,
//! Part 1, ch. 3): counted strings, the upcase table, `RtlNtStatusToDosError`,
//! DOS-to-NT path conversion, bitmaps and time fields. `no_std` and
//! allocation-free: every routine works on caller-provided slices, so ntdll
//! can run it before any heap exists. ntdll (user/ntdll) wraps these in the
//! exported C ABI; the tests here are the tests of that code.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod bitmap;
pub mod error;
pub mod path;
pub mod string;
pub mod time;
pub mod upcase;
