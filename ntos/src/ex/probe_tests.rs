//! Boot tests of `ProbeForRead`/`ProbeForWrite` (`ex::probe`): the exports
//! on buffers they must accept, and the statuses they raise, seen through
//! the routines the exports call, in a scratch user address space.

use crate::ktest::{check, Test, TestResult};
use crate::mm::process::{
    ke_stack_attach_process, ke_unstack_detach_process, mm_create_process_address_space,
    mm_delete_process_address_space, nt_allocate_virtual_memory,
};
use crate::mm::user::{MEM_COMMIT, MEM_RESERVE, PAGE_READONLY, PAGE_READWRITE};
use core::ffi::c_void;
use nt::status::*;

pub const TESTS: &[Test] = &[
    ("ex.probe.read_write_checks", t_probe),
    ("ex.probe.exports_accept_valid_buffers", t_exports),
];

/// Allocates `size` bytes at `base` in the attached address space.
fn alloc(base: u64, size: u64, kind: u32, protect: u32) -> Result<u64, &'static str> {
    let (mut b, mut s) = (base, size);
    let st = nt_allocate_virtual_memory(&mut b, &mut s, kind, protect);
    check(
        st == STATUS_SUCCESS && b == base,
        "allocation in the scratch space",
    )?;
    Ok(b)
}

/// Runs `f` attached to a new, empty user address space, then deletes it.
fn in_scratch_space(f: impl FnOnce() -> TestResult) -> TestResult {
    let space = mm_create_process_address_space().map_err(|_| "no address space")?;
    let r = match ke_stack_attach_process(space) {
        Ok(()) => {
            let r = f();
            ke_unstack_detach_process();
            r
        }
        Err(_) => Err("attach"),
    };
    let _ = mm_delete_process_address_space(space);
    r
}

const RW: u64 = 0x40_0000;
const RO: u64 = 0x50_0000;
const RESERVED: u64 = 0x60_0000;

fn layout() -> TestResult {
    // Two read/write pages, a read-only page, a reserved (not committed) page.
    alloc(RW, 0x2000, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE)?;
    alloc(RO, 0x1000, MEM_RESERVE | MEM_COMMIT, PAGE_READONLY)?;
    alloc(RESERVED, 0x1000, MEM_RESERVE, PAGE_READWRITE)?;
    Ok(())
}

fn t_probe() -> TestResult {
    use crate::ke::user::{copy_from_user, copy_to_user, probe_for_read, probe_for_write};
    in_scratch_space(|| {
        layout()?;
        copy_to_user(RW + 0xFFC, &0x1234_5678u32.to_le_bytes()).map_err(|_| "seed")?;
        // ProbeForRead: checks only.
        check(probe_for_read(RW, 0x2000, 8).is_ok(), "read RW")?;
        check(
            probe_for_read(RESERVED, 0x1000, 8).is_ok(),
            "ProbeForRead touched a reserved page",
        )?;
        check(
            probe_for_read(RW + 2, 8, 4) == Err(STATUS_DATATYPE_MISALIGNMENT),
            "misaligned read",
        )?;
        check(
            probe_for_read(nt::user::KI_USER_SHARED_DATA, 8, 8) == Err(STATUS_ACCESS_VIOLATION),
            "kernel range read",
        )?;
        check(
            probe_for_read(0xFFFF_8000_0000_0001, 0, 8).is_ok(),
            "zero length is checked",
        )?;
        // ProbeForWrite: every page accessed, contents unchanged.
        check(
            probe_for_write(RW + 0xFFC, 8, 4).is_ok(),
            "write across pages",
        )?;
        let mut v = [0u8; 4];
        copy_from_user(&mut v, RW + 0xFFC).map_err(|_| "read back")?;
        check(
            u32::from_le_bytes(v) == 0x1234_5678,
            "ProbeForWrite changed the buffer",
        )?;
        check(
            probe_for_write(RO, 8, 8) == Err(STATUS_ACCESS_VIOLATION),
            "read-only page writable",
        )?;
        check(
            probe_for_write(RW + 0x1FF8, 0x10, 8) == Err(STATUS_ACCESS_VIOLATION),
            "write running off the committed pages",
        )?;
        check(
            probe_for_write(RESERVED, 1, 1) == Err(STATUS_ACCESS_VIOLATION),
            "reserved page writable",
        )?;
        check(
            probe_for_write(RW + 1, 2, 2) == Err(STATUS_DATATYPE_MISALIGNMENT),
            "misaligned write",
        )?;
        check(
            probe_for_write(nt::user::KI_USER_SHARED_DATA, 8, 8) == Err(STATUS_ACCESS_VIOLATION),
            "kernel range write",
        )?;
        check(
            probe_for_write(RESERVED + 3, 0, 8).is_ok(),
            "zero-length write is checked",
        )
    })
}

fn t_exports() -> TestResult {
    use super::probe::{ProbeForRead, ProbeForWrite};
    in_scratch_space(|| {
        layout()?;
        // Returning at all is the pass: a failure stops the system.
        ProbeForRead(RW as *const c_void, 0x2000, 8);
        ProbeForRead(RESERVED as *const c_void, 0x1000, 4);
        ProbeForRead(0xFFFF_8000_0000_0003usize as *const c_void, 0, 8);
        ProbeForWrite(RW as *mut c_void, 0x2000, 16);
        ProbeForWrite(nt::user::KI_USER_SHARED_DATA as *mut c_void, 0, 8);
        Ok(())
    })
}
