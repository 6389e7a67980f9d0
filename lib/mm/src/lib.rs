//! Memory manager policy logic that does not need the hardware
//! (*Windows Internals* 7th ed., Part 1, ch. 5, "Memory management").
//!
//! Everything here works on integers: physical pages are page frame numbers
//! (PFNs), virtual pages are virtual page numbers (VPNs). The kernel owns the
//! page tables and physical memory; it asks these types what to do (which
//! frame to use, which status to return, which PTEs to rewrite) and performs
//! the hardware side itself.
//!
//! - [`pfn`]: the PFN database and its page lists (zeroed, free, standby,
//!   modified, bad), built from the loader's memory descriptors.
//! - [`vad`]: the VAD tree (an AVL tree of virtual address descriptors).
//! - [`vm`]: a process address space implementing the rules of
//!   `NtAllocateVirtualMemory`, `NtFreeVirtualMemory`, `NtProtectVirtualMemory`,
//!   `NtQueryVirtualMemory`, commit charge and `MmAccessFault` resolution.
//! - [`section`]: pagefile-backed section objects with shared and
//!   copy-on-write views.
//! - [`pool`]: executive pool logic (`ExAllocatePool2`, `ExFreePoolWithTag`,
//!   pool headers, big pages, lookaside lists, per-tag usage, corruption checks).
//! - [`ws`]: per-process working set lists and trimming.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod pfn;
pub mod vad;

/// `PAGE_SIZE` on x64.
pub const PAGE_SIZE: u64 = 0x1000;
/// `PAGE_SHIFT` on x64.
pub const PAGE_SHIFT: u32 = 12;
/// Allocation granularity (`MM_ALLOCATION_GRANULARITY`): 64 KiB.
pub const ALLOCATION_GRANULARITY: u64 = 0x10000;
/// Pages per allocation granule.
pub const GRANULARITY_PAGES: u64 = ALLOCATION_GRANULARITY / PAGE_SIZE;
/// A physical page frame number.
pub type Pfn = u64;
/// A virtual page number (virtual address >> 12).
pub type Vpn = u64;
