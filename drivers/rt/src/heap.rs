//! The global allocator of drivers built with feature `alloc`: nonpaged
//! pool through `ExAllocatePool2(POOL_FLAG_NON_PAGED)` / `ExFreePool`,
//! tagged `Rust` (visible in `!poolused`). Pool blocks are 16-byte
//! aligned; a larger alignment is served by over-allocating and keeping
//! the pool pointer just below the aligned block. A failed allocation
//! returns null, which `alloc` turns into its allocation-error handler
//! (a bug check through the panic handler); code that must survive
//! exhaustion uses the fallible `try_reserve` forms.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

/// `POOL_FLAG_NON_PAGED`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// Pool tag `Rust`.
const TAG: u32 = u32::from_le_bytes(*b"Rust");
/// What the pool guarantees.
const POOL_ALIGN: usize = 16;

/// The pool allocator.
pub struct PoolAllocator;

// SAFETY: ExAllocatePool2 returns a fresh block of at least the requested
// size (16-byte aligned) or null; over-aligned blocks are carved so the
// returned pointer is aligned and the stored pool pointer lies inside the
// same allocation; dealloc frees exactly the pool pointer alloc got.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= POOL_ALIGN {
            // SAFETY: plain pool allocation.
            return unsafe { wdk::ExAllocatePool2(POOL_FLAG_NON_PAGED, layout.size(), TAG) }.cast();
        }
        let Some(total) = layout.size().checked_add(layout.align() + 8) else {
            return core::ptr::null_mut();
        };
        // SAFETY: plain pool allocation.
        let p = unsafe { wdk::ExAllocatePool2(POOL_FLAG_NON_PAGED, total, TAG) } as usize;
        if p == 0 {
            return core::ptr::null_mut();
        }
        let aligned = (p + 8 + layout.align() - 1) & !(layout.align() - 1);
        // SAFETY: `aligned - 8 >= p` and `aligned + size <= p + total`:
        // both the stored pointer and the block lie in the allocation.
        unsafe { ((aligned - 8) as *mut usize).write(p) };
        aligned as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let p = if layout.align() <= POOL_ALIGN {
            ptr as *mut c_void
        } else {
            // SAFETY: alloc stored the pool pointer just below the block.
            unsafe { ((ptr as usize - 8) as *const usize).read() as *mut c_void }
        };
        // SAFETY: a block this allocator got from the pool.
        unsafe { wdk::ExFreePool(p) }
    }
}

#[global_allocator]
static GLOBAL: PoolAllocator = PoolAllocator;
