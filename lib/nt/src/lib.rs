//! NT base definitions shared by the boot loader, the kernel, drivers, user mode
//! and the host tools: `NTSTATUS` values, bugcheck (stop) codes, and the
//! loader parameter block handed from winload to `KiSystemStartup`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod arc;
pub mod bugcheck;
pub mod context;
pub mod dpfltr;
pub mod kd;
pub mod kdmem;
pub mod printf;
pub mod probe;
pub mod status;
pub mod syscalls;
pub mod time;
pub mod user;

pub use status::NtStatus;
