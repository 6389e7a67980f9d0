//! The NT driver interface in Rust: the structures drivers and the I/O
//! manager share, in the layouts of the Windows x64 headers (wdm.h, ntddk.h,
//! ntifs.h; sizes and offsets are checked at compile time), the constants,
//! the routines wdm.h defines inline, and — with feature `driver` — the
//! ntoskrnl exports drivers link against (*Windows Internals*, Part 1, ch. 6).
//!
//! Names are Windows' (types, fields and routines) so driver code reads like
//! the documentation. `STATUS_*` codes come from the `nt` crate.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types, non_snake_case)]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

pub mod base;
pub mod cc;
pub mod consts;
pub mod disk;
pub mod fastio;
#[cfg(any(feature = "alloc", test))]
pub mod fs;
pub mod fsrtl;
pub mod helpers;
pub mod io;
#[cfg(feature = "driver")]
pub mod kernel;
pub mod mountdev;
#[cfg(feature = "driver")]
pub mod ntoskrnl;
#[cfg(feature = "driver")]
pub mod ntoskrnl_cc;
#[cfg(feature = "driver")]
pub mod ntoskrnl_pnp;
#[cfg(feature = "driver")]
pub mod ntoskrnl_storage;
pub mod ob;
pub mod pnp;
pub mod pnpnotify;
pub mod registry;
pub mod scsi;
pub mod volmgr;

pub use base::*;
pub use cc::*;
pub use consts::*;
pub use fastio::*;
pub use fsrtl::*;
pub use helpers::*;
pub use io::*;
#[cfg(feature = "driver")]
pub use kernel::*;
#[cfg(feature = "driver")]
pub use ntoskrnl::*;
#[cfg(feature = "driver")]
pub use ntoskrnl_cc::*;
#[cfg(feature = "driver")]
pub use ntoskrnl_pnp::*;
#[cfg(feature = "driver")]
pub use ntoskrnl_storage::*;
pub use ob::*;
pub use pnp::*;

#[cfg(test)]
mod tests;
