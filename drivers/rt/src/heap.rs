//! The global allocator of drivers built with feature `alloc`: nonpaged
//! pool through `ExAllocatePool2` (tag `Rust`), freed with `ExFreePool`.
//! Pool blocks are 16-byte aligned; a request for more alignment fails
//! (returns null) rather than being given a misaligned block. Drivers use
//! the fallible forms (`try_reserve`, `Box::try_new`-style helpers) where
//! a failure must become an NTSTATUS; an infallible allocation that fails
//! panics, which is a bug check.

use core::alloc::{GlobalAlloc, Layout};

/// `POOL_FLAG_NON_PAGED`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// `POOL_FLAG_UNINITIALIZED`: the allocator hands out uninitialized memory.
const POOL_FLAG_UNINITIALIZED: u64 = 0x2;
const TAG: u32 = u32::from_le_bytes(*b"Rust");

struct Pool;

// SAFETY: ExAllocatePool2 returns distinct live blocks of at least the
// size asked, 16-byte aligned (alignments above 16 are refused), until
// ExFreePool; both may be called at any IRQL <= DISPATCH_LEVEL.
unsafe impl GlobalAlloc for Pool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: plain arguments; a null return is a failed allocation.
        unsafe {
            wdk::ExAllocatePool2(
                POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED,
                layout.size().max(1),
                TAG,
            )
            .cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above.
        unsafe { wdk::ExFreePool(ptr.cast()) }
    }
}

#[global_allocator]
static POOL: Pool = Pool;
