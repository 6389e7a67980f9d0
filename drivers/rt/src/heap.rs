//! The global allocator of drivers built with feature `alloc`: nonpaged
//! pool through `ExAllocatePool2` (tag `Rust`), freed with `ExFreePool`.
//! Pool blocks are 16-byte aligned; a request for more alignment gets a
//! block `align` bytes larger, hands out its first `align`-aligned address
//! at least 16 bytes in, and keeps the pool block's address in the 8 bytes
//! before it for `dealloc`. Drivers use
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

/// The alignment pool blocks have.
const POOL_ALIGN: usize = 16;

/// Where an `align`-aligned block goes in a pool block at `raw` (16-byte
/// aligned) of `size + align` bytes: the first multiple of `align` at least
/// 16 bytes past `raw` (room for the pool address before it), which ends
/// within the pool block.
pub fn aligned_in(raw: usize, align: usize) -> usize {
    (raw + align) & !(align - 1)
}

fn allocate(size: usize) -> *mut u8 {
    // SAFETY: plain arguments; a null return is a failed allocation.
    unsafe {
        wdk::ExAllocatePool2(
            POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED,
            size.max(1),
            TAG,
        )
        .cast()
    }
}

// SAFETY: ExAllocatePool2 returns distinct live blocks of at least the
// size asked, 16-byte aligned, until ExFreePool; both may be called at any
// IRQL <= DISPATCH_LEVEL. A block of larger alignment lies inside a pool
// block `align` bytes larger than asked (see `aligned_in`), which `dealloc`
// finds again through the address stored before the block.
unsafe impl GlobalAlloc for Pool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align();
        if align <= POOL_ALIGN {
            return allocate(layout.size());
        }
        let Some(total) = layout.size().checked_add(align) else {
            return core::ptr::null_mut();
        };
        let raw = allocate(total);
        if raw.is_null() {
            return raw;
        }
        let at = aligned_in(raw as usize, align);
        // at - raw is in 16..=align (raw is 16-byte aligned, align a larger
        // power of two), so the 8 bytes before `at` are in the block, and
        // at + size <= raw + total.
        let p = raw.wrapping_add(at - raw as usize);
        // SAFETY: p - 8 .. p lies in the pool block (above); 8-aligned.
        unsafe { p.sub(8).cast::<*mut u8>().write(raw) };
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let raw = if layout.align() <= POOL_ALIGN {
            ptr
        } else {
            // SAFETY: `alloc` stored the pool block's address there.
            unsafe { ptr.sub(8).cast::<*mut u8>().read() }
        };
        // SAFETY: `raw` came from ExAllocatePool2 in `alloc` above.
        unsafe { wdk::ExFreePool(raw.cast()) }
    }
}

#[global_allocator]
static POOL: Pool = Pool;
