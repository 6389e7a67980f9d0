//! The global allocator of drivers that use `alloc` (feature `alloc`):
//! nonpaged pool through `ExAllocatePool2`/`ExFreePool`, tagged `Rust`.
//! Pool blocks are 16-byte aligned; a larger alignment over-allocates and
//! keeps the block's address just below the aligned pointer. A failed
//! allocation returns null: `Vec`/`Box` turn that into the alloc error
//! handler (a bug check) unless the driver uses the fallible `try_*` APIs,
//! which it must for sizes that come from requests.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

/// `POOL_FLAG_NON_PAGED`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
const TAG: u32 = u32::from_le_bytes(*b"Rust");
const POOL_ALIGN: usize = 16;

/// The pool allocator.
pub struct Pool;

// SAFETY: ExAllocatePool2 returns fresh, unaliased nonpaged memory of at
// least the requested size, 16-byte aligned; larger alignments are produced
// by over-allocating; dealloc hands back exactly what ExAllocatePool2 gave.
unsafe impl GlobalAlloc for Pool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size().max(1);
        if layout.align() <= POOL_ALIGN {
            // SAFETY: plain pool allocation.
            return unsafe { wdk::ExAllocatePool2(POOL_FLAG_NON_PAGED, size, TAG) }.cast();
        }
        let Some(total) = size.checked_add(layout.align() + 8) else {
            return core::ptr::null_mut();
        };
        // SAFETY: plain pool allocation.
        let base = unsafe { wdk::ExAllocatePool2(POOL_FLAG_NON_PAGED, total, TAG) } as usize;
        if base == 0 {
            return core::ptr::null_mut();
        }
        let aligned = (base + 8 + layout.align() - 1) & !(layout.align() - 1);
        // SAFETY: `aligned - 8 >= base` and `aligned + size <= base + total`:
        // the slot below the aligned pointer is inside the block.
        unsafe { ((aligned - 8) as *mut usize).write(base) };
        aligned as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let block = if layout.align() <= POOL_ALIGN {
            ptr as *mut c_void
        } else {
            // SAFETY: alloc stored the block address below the pointer.
            unsafe { ((ptr as usize - 8) as *const usize).read() as *mut c_void }
        };
        // SAFETY: a block ExAllocatePool2 returned.
        unsafe { wdk::ExFreePool(block) }
    }
}

#[global_allocator]
static POOL: Pool = Pool;
