//! Early boot pool: the kernel heap until the memory manager's nonpaged and
//! paged pools exist (issue "Memory manager foundation"). It carves a fixed
//! region out of the largest free physical range in the loader's memory
//! descriptors (reached through the direct map) and serves power-of-two size
//! classes from per-class free lists; blocks above the largest class are
//! page-granular, recycled through per-page-count free lists up to 64 pages
//! (thread stacks), and never returned above that (the PFN database).
//! Single lock, interrupts are off.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, Ordering};
use nt::arc::MemoryType;

/// Bytes taken for the early pool.
pub const EARLY_POOL_SIZE: u64 = 128 << 20;
/// Page-granular blocks up to this many pages are recycled through per-size free lists.
const LARGE_CLASSES: usize = 64;
const CLASSES: usize = 9; // 16 .. 4096 bytes
const MIN_CLASS: usize = 16;

struct State {
    next: u64,
    end: u64,
    free: [u64; CLASSES],
    /// Free page-granular blocks by page count (index = pages - 1).
    large_free: [u64; LARGE_CLASSES],
    in_use: u64,
}

pub struct EarlyPool {
    lock: AtomicBool,
    state: core::cell::UnsafeCell<State>,
}

// SAFETY: all access to `state` happens with `lock` held.
unsafe impl Sync for EarlyPool {}

#[global_allocator]
pub static POOL: EarlyPool = EarlyPool {
    lock: AtomicBool::new(false),
    state: core::cell::UnsafeCell::new(State {
        next: 0,
        end: 0,
        free: [0; CLASSES],
        large_free: [0; LARGE_CLASSES],
        in_use: 0,
    }),
};

impl EarlyPool {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // Interrupt handlers and DPCs may allocate: hold the lock with interrupts off.
        let flags = crate::hal::disable_interrupts();
        while self
            .lock
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Interrupts are off: serve TB flush requests meanwhile.
            crate::ke::mp::ki_flush_target_tb();
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held.
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        crate::hal::restore_interrupts(flags);
        r
    }

    /// Bytes currently allocated (for leak checks and `!poolused`-style totals).
    pub fn bytes_in_use(&self) -> u64 {
        self.with(|s| s.in_use)
    }
}

fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout
        .size()
        .max(layout.align())
        .max(MIN_CLASS)
        .next_power_of_two();
    let c = size.trailing_zeros() as usize - MIN_CLASS.trailing_zeros() as usize;
    (c < CLASSES).then_some(c)
}

// SAFETY: blocks come from the reserved region, are aligned to their class
// size (a power of two at least as large as the requested alignment), and
// never overlap: each is either fresh from the bump pointer or was freed.
unsafe impl GlobalAlloc for EarlyPool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|s| match class_of(&layout) {
            Some(c) => {
                let size = (MIN_CLASS << c) as u64;
                s.in_use += size;
                if s.free[c] != 0 {
                    let b = s.free[c];
                    // SAFETY: a free block stores the next free block in its first word.
                    s.free[c] = unsafe { *(b as *const u64) };
                    return b as *mut u8;
                }
                let b = s.next.next_multiple_of(size);
                if b + size > s.end {
                    s.in_use -= size;
                    return core::ptr::null_mut();
                }
                s.next = b + size;
                b as *mut u8
            }
            None => {
                let align = (layout.align() as u64).max(4096);
                let size = (layout.size() as u64).next_multiple_of(4096);
                let pages = (size / 4096) as usize;
                if align == 4096 && pages <= LARGE_CLASSES && s.large_free[pages - 1] != 0 {
                    let b = s.large_free[pages - 1];
                    // SAFETY: a free large block stores the next one in its first word.
                    s.large_free[pages - 1] = unsafe { *(b as *const u64) };
                    s.in_use += size;
                    return b as *mut u8;
                }
                let b = s.next.next_multiple_of(align);
                if b + size > s.end {
                    return core::ptr::null_mut();
                }
                s.next = b + size;
                s.in_use += size;
                b as *mut u8
            }
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.with(|s| match class_of(&layout) {
            Some(c) => {
                // SAFETY: the block is ours, at least 16 bytes, and now free.
                unsafe { *(ptr as *mut u64) = s.free[c] };
                s.free[c] = ptr as u64;
                s.in_use -= (MIN_CLASS << c) as u64;
            }
            None => {
                let size = (layout.size() as u64).next_multiple_of(4096);
                let pages = (size / 4096) as usize;
                s.in_use -= size;
                if pages <= LARGE_CLASSES && (ptr as u64).is_multiple_of(4096) {
                    // SAFETY: the block is ours, page aligned, and now free.
                    unsafe { *(ptr as *mut u64) = s.large_free[pages - 1] };
                    s.large_free[pages - 1] = ptr as u64;
                }
            }
        })
    }
}

/// Physical base and size of the early pool's region (the PFN database claims it).
pub fn region() -> (u64, u64) {
    let start = POOL.with(|s| s.end) - EARLY_POOL_SIZE;
    (start - crate::hal::phys_to_virt(0), EARLY_POOL_SIZE)
}

/// Takes the early pool region from the top of the largest free range.
pub fn initialize(lb: &nt::arc::LoaderParameterBlock) -> Result<(), nt::NtStatus> {
    // SAFETY: the loader's descriptor array stays mapped.
    let descs = unsafe { lb.memory_descriptors() };
    let best = descs
        .iter()
        .filter(|d| d.memory_type == MemoryType::Free)
        .max_by_key(|d| d.page_count)
        .ok_or(nt::status::STATUS_INSUFFICIENT_RESOURCES)?;
    if best.page_count * 4096 < EARLY_POOL_SIZE {
        return Err(nt::status::STATUS_INSUFFICIENT_RESOURCES);
    }
    // The top of the range, leaving low memory to the memory manager.
    let start =
        crate::hal::phys_to_virt((best.base_page + best.page_count) * 4096 - EARLY_POOL_SIZE);
    POOL.with(|s| {
        s.next = start;
        s.end = start + EARLY_POOL_SIZE;
    });
    Ok(())
}
