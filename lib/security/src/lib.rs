//! The security reference monitor (Windows Internals 7th ed., Part 1 ch. 7):
//! SIDs, access masks, ACEs/ACLs, self-relative security descriptors,
//! tokens and `SeAccessCheck`. Host-testable, `no_std` + `alloc`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod access;
pub mod acl;
pub mod check;
pub mod inherit;
pub mod kd;
pub mod sd;
pub mod sddl;
pub mod sid;
pub mod token;

pub use nt::status::NtStatus;
