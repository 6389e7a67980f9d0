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
//! - [`control`], [`image`]: file-backed data and image sections (control
//!   areas, prototype PTEs, PE image layout).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod control;
pub mod fault;
pub mod image;
pub mod pagefile;
pub mod pfn;
pub mod pool;
pub mod section;
pub mod syspte;
pub mod vad;
pub mod vm;
pub mod ws;

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

/// `PAGE_NOACCESS`.
pub const PAGE_NOACCESS: u32 = 0x01;
/// `PAGE_READONLY`.
pub const PAGE_READONLY: u32 = 0x02;
/// `PAGE_READWRITE`.
pub const PAGE_READWRITE: u32 = 0x04;
/// `PAGE_WRITECOPY`.
pub const PAGE_WRITECOPY: u32 = 0x08;
/// `PAGE_EXECUTE`.
pub const PAGE_EXECUTE: u32 = 0x10;
/// `PAGE_EXECUTE_READ`.
pub const PAGE_EXECUTE_READ: u32 = 0x20;
/// `PAGE_EXECUTE_READWRITE`.
pub const PAGE_EXECUTE_READWRITE: u32 = 0x40;
/// `PAGE_EXECUTE_WRITECOPY`.
pub const PAGE_EXECUTE_WRITECOPY: u32 = 0x80;
/// `PAGE_GUARD`.
pub const PAGE_GUARD: u32 = 0x100;
/// `PAGE_NOCACHE`.
pub const PAGE_NOCACHE: u32 = 0x200;
/// `PAGE_WRITECOMBINE`.
pub const PAGE_WRITECOMBINE: u32 = 0x400;

/// `MEM_COMMIT`.
pub const MEM_COMMIT: u32 = 0x1000;
/// `MEM_RESERVE`.
pub const MEM_RESERVE: u32 = 0x2000;
/// `MEM_DECOMMIT`.
pub const MEM_DECOMMIT: u32 = 0x4000;
/// `MEM_RELEASE`.
pub const MEM_RELEASE: u32 = 0x8000;
/// `MEM_FREE` (query state).
pub const MEM_FREE: u32 = 0x10000;
/// `MEM_PRIVATE` (query type).
pub const MEM_PRIVATE: u32 = 0x20000;
/// `MEM_MAPPED` (query type).
pub const MEM_MAPPED: u32 = 0x40000;
/// `MEM_RESET`.
pub const MEM_RESET: u32 = 0x80000;
/// `MEM_TOP_DOWN`.
pub const MEM_TOP_DOWN: u32 = 0x100000;
/// `MEM_WRITE_WATCH`.
pub const MEM_WRITE_WATCH: u32 = 0x200000;
/// `MEM_PHYSICAL`.
pub const MEM_PHYSICAL: u32 = 0x400000;
/// `MEM_RESET_UNDO`.
pub const MEM_RESET_UNDO: u32 = 0x1000000;
/// `MEM_IMAGE` (query type).
pub const MEM_IMAGE: u32 = 0x1000000;
/// `MEM_LARGE_PAGES`.
pub const MEM_LARGE_PAGES: u32 = 0x20000000;
/// `MEM_COALESCE_PLACEHOLDERS` (free type).
pub const MEM_COALESCE_PLACEHOLDERS: u32 = 0x1;
/// `MEM_PRESERVE_PLACEHOLDER` (free type).
pub const MEM_PRESERVE_PLACEHOLDER: u32 = 0x2;

/// `MM_LOWEST_USER_ADDRESS`: the first 64 KiB are never mapped.
pub const MM_LOWEST_USER_ADDRESS: u64 = 0x1_0000;
/// `MM_HIGHEST_USER_ADDRESS` on x64 (`MmHighestUserAddress`).
pub const MM_HIGHEST_USER_ADDRESS: u64 = 0x7FFF_FFFE_FFFF;
/// `MM_HIGHEST_VAD_ADDRESS`: highest address a VAD may cover (64 KiB below
/// `MM_HIGHEST_USER_ADDRESS`, as in NT).
pub const MM_HIGHEST_VAD_ADDRESS: u64 = MM_HIGHEST_USER_ADDRESS - ALLOCATION_GRANULARITY;

/// Whether `protect` is a valid `PAGE_*` value (`MiMakeProtectionMask`
/// succeeds): exactly one base protection, at most one of `PAGE_GUARD`,
/// `PAGE_NOCACHE`, `PAGE_WRITECOMBINE`, and no modifier on `PAGE_NOACCESS`.
pub fn is_valid_protection(protect: u32) -> bool {
    let base = protect & 0xFF;
    let modifiers = protect & (PAGE_GUARD | PAGE_NOCACHE | PAGE_WRITECOMBINE);
    let one_modifier = modifiers == 0 || modifiers.is_power_of_two();
    let noaccess_modified = base == PAGE_NOACCESS && modifiers != 0;
    protect & !0x7FF == 0 && base.is_power_of_two() && one_modifier && !noaccess_modified
}

/// The base protection without `PAGE_GUARD`/`PAGE_NOCACHE`/`PAGE_WRITECOMBINE`.
pub fn base_protection(protect: u32) -> u32 {
    protect & 0xFF
}

/// Whether the protection allows reads.
pub fn protection_readable(protect: u32) -> bool {
    let b = base_protection(protect);
    b != 0 && b != PAGE_NOACCESS
}

/// Whether the protection allows writes (copy-on-write counts).
pub fn protection_writable(protect: u32) -> bool {
    matches!(
        base_protection(protect),
        PAGE_READWRITE | PAGE_WRITECOPY | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY
    )
}

/// Whether the protection allows instruction fetches.
pub fn protection_executable(protect: u32) -> bool {
    base_protection(protect) & 0xF0 != 0
}

/// Whether the protection is one of the copy-on-write ones.
pub fn protection_copy_on_write(protect: u32) -> bool {
    matches!(
        base_protection(protect),
        PAGE_WRITECOPY | PAGE_EXECUTE_WRITECOPY
    )
}
