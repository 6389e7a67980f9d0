//! Executive pools (*Windows Internals*, Part 1, ch. 5, "Kernel-mode heaps
//! (system memory pools)"): `ExAllocatePool2` / `ExFreePoolWithTag` over the
//! host-tested `::mm::pool::Pool` (x64 `POOL_HEADER`s, big pages, lookaside
//! lists, per-tag usage, corruption checks that bug check with
//! `BAD_POOL_HEADER` 0x19 / `BAD_POOL_CALLER` 0xC2), backed by zeroed pages
//! mapped in system PTEs.
//!
//! ntrs deviation: nothing in the kernel is paged out yet, so the paged pool
//! is resident like the nonpaged one (separate pool, separate accounting).
//! The Rust heap (`GlobalAlloc`) stays on the early pool.

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use ::mm::pool::{Pool, PoolError, PoolMemory, PoolType};

/// Pool pages from the memory manager (system PTEs).
struct SystemPages;

impl PoolMemory for SystemPages {
    fn allocate_pages(&mut self, pages: u64) -> Option<u64> {
        crate::mm::map::mm_allocate_system_pages(pages).ok()
    }
    fn free_pages(&mut self, va: u64, pages: u64) {
        crate::mm::map::mm_free_system_pages(va, pages);
    }
    fn read(&self, va: u64, buf: &mut [u8]) {
        // SAFETY: the pool only reads pages it obtained from `allocate_pages`.
        unsafe { core::ptr::copy_nonoverlapping(va as *const u8, buf.as_mut_ptr(), buf.len()) };
    }
    fn write(&mut self, va: u64, data: &[u8]) {
        // SAFETY: as for `read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), va as *mut u8, data.len()) };
    }
    fn fill(&mut self, va: u64, len: u64, byte: u8) {
        // SAFETY: as for `read`.
        unsafe { core::ptr::write_bytes(va as *mut u8, byte, len as usize) };
    }
}

static NONPAGED: SpinLocked<Option<Pool>, DISPATCH_LEVEL> = SpinLocked::new(None);
static PAGED: SpinLocked<Option<Pool>, DISPATCH_LEVEL> = SpinLocked::new(None);

fn raise(e: PoolError) -> u64 {
    if let PoolError::BugCheck(b) = e {
        crate::ke::bugcheck::ke_bug_check_ex(
            b.code,
            b.parameters[0],
            b.parameters[1],
            b.parameters[2],
            b.parameters[3],
        );
    }
    0
}

/// `ExAllocatePool2`: a block of `bytes` tagged `tag` (zeroed unless
/// `POOL_FLAG_UNINITIALIZED`), or 0 when out of memory or the flags are invalid.
pub fn ex_allocate_pool2(flags: u64, bytes: u64, tag: u32) -> u64 {
    let r = NONPAGED.with(|np| {
        PAGED.with(|pp| {
            let np = np.get_or_insert_with(|| Pool::new(PoolType::NonPaged));
            let pp = pp.get_or_insert_with(|| Pool::new(PoolType::Paged));
            ::mm::pool::ex_allocate_pool2(
                np,
                &mut SystemPages,
                pp,
                &mut SystemPages,
                flags,
                bytes,
                tag,
            )
        })
    });
    match r {
        Ok(va) => va,
        Err(e) => raise(e),
    }
}

/// `ExFreePoolWithTag`: a bad free (wrong tag, corrupted header, double
/// free, an address no pool owns) bug checks as NT does.
pub fn ex_free_pool_with_tag(va: u64, tag: u32) {
    // The nonpaged pool first; an address it does not own (BAD_POOL_CALLER
    // 0x42 before anything was touched) belongs to the paged pool, or nobody.
    let r = NONPAGED.with(|np| {
        let np = np.get_or_insert_with(|| Pool::new(PoolType::NonPaged));
        np.free(&mut SystemPages, va, tag)
    });
    let not_ours = |r: &Result<(), PoolError>| matches!(r, Err(PoolError::BugCheck(b)) if b.code == nt::bugcheck::BAD_POOL_CALLER && b.parameters[0] == 0x42);
    let r = if not_ours(&r) {
        PAGED.with(|pp| {
            let pp = pp.get_or_insert_with(|| Pool::new(PoolType::Paged));
            pp.free(&mut SystemPages, va, tag)
        })
    } else {
        r
    };
    if let Err(e) = r {
        raise(e);
    }
}

/// `ExAllocatePool2`, exported for drivers.
#[no_mangle]
pub extern "C" fn ExAllocatePool2(flags: u64, bytes: u64, tag: u32) -> *mut u8 {
    ex_allocate_pool2(flags, bytes, tag) as *mut u8
}

/// `ExFreePoolWithTag`, exported for drivers.
#[no_mangle]
pub extern "C" fn ExFreePoolWithTag(p: *mut u8, tag: u32) {
    ex_free_pool_with_tag(p as u64, tag)
}

/// `!poolused`: usage per tag of both pools.
pub fn kd_poolused() {
    let np = NONPAGED.with(|p| p.as_ref().map(|p| p.format_pool_used()));
    let pp = PAGED.with(|p| p.as_ref().map(|p| p.format_pool_used()));
    crate::dbg_println!("NonPaged pool:");
    crate::dbg_println!("{}", np.unwrap_or_default());
    crate::dbg_println!("Paged pool:");
    crate::dbg_println!("{}", pp.unwrap_or_default());
    crate::dbg_println!(
        "(kernel heap in the early pool: {} bytes)",
        crate::ex::pool::POOL.bytes_in_use()
    );
}

/// Bytes and allocations outstanding for `tag` in the nonpaged pool.
pub fn nonpaged_usage(tag: u32) -> (u64, u64) {
    NONPAGED.with(|p| {
        p.as_ref().map_or((0, 0), |p| {
            let u = p.usage(tag);
            (u.bytes, u.allocs.saturating_sub(u.frees))
        })
    })
}
