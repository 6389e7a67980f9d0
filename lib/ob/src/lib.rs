//! Object manager logic that does not need the hardware (*Windows Internals*,
//! Part 2, ch. 8, "Object Manager"): handle tables (`handle`) and the object
//! namespace with directories, symbolic links and name lookup (`namespace`).
//! The kernel wraps these with its locks and pool; the rules (handle values,
//! NTSTATUS codes, reparse limits, object lifetime) are decided and tested here.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod handle;
pub mod namespace;
pub mod object;
pub mod paged;

/// `OBJ_INHERIT`.
pub const OBJ_INHERIT: u32 = 0x0000_0002;
/// `OBJ_PERMANENT`.
pub const OBJ_PERMANENT: u32 = 0x0000_0010;
/// `OBJ_EXCLUSIVE`.
pub const OBJ_EXCLUSIVE: u32 = 0x0000_0020;
/// `OBJ_CASE_INSENSITIVE`.
pub const OBJ_CASE_INSENSITIVE: u32 = 0x0000_0040;
/// `OBJ_OPENIF`.
pub const OBJ_OPENIF: u32 = 0x0000_0080;
/// `OBJ_OPENLINK`.
pub const OBJ_OPENLINK: u32 = 0x0000_0100;
/// `OBJ_KERNEL_HANDLE`.
pub const OBJ_KERNEL_HANDLE: u32 = 0x0000_0200;
