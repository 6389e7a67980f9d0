//! The kernel heap (Rust's `GlobalAlloc`): every `Box`, `Vec` and
//! `BTreeMap` node of the kernel is a block of the executive pools
//! (`ex::xpool`, *Windows Internals*, Part 1, ch. 5, "Kernel-mode heaps"),
//! tagged with the tag of the allocation scope it was made in.
//!
//! - **Early boot pool**: until the PFN database exists there are no pool
//!   pages, so phase 0 starts on a fixed region carved from the largest free
//!   physical range (reached through the direct map): the PFN database lives
//!   there. It also serves as the must-succeed reserve: an infallible Rust
//!   allocation the executive pools refuse (pool at its maximum, memory
//!   exhausted, or a pool that cannot grow where the allocation is made:
//!   interrupts off, above IPI_LEVEL, or inside the memory manager's page
//!   supply) comes from here. Blocks freed after the switch go back to
//!   whichever pool their address belongs to.
//! - **Scopes**: NT callers pass a tag to `ExAllocatePoolWithTag`; Rust's
//!   allocator has no tag argument, so code states it with a guard,
//!   `let _tag = PoolTag::enter(*b"Thre");` (or `enter_paged`). A scope
//!   entered below DISPATCH_LEVEL belongs to the thread (`KThread::pool_tag`,
//!   so it follows the thread across preemption and processors); one
//!   entered at DISPATCH_LEVEL or above, where the code cannot be preempted,
//!   belongs to the processor and wins over the thread's while it lasts. An
//!   allocation outside any scope is tagged `None`, NT's tag for untagged
//!   `ExAllocatePool`. Paged scopes allocate from the paged pool only below
//!   DISPATCH_LEVEL.
//! - **Failure**: `GlobalAlloc` returns null only when the early pool is
//!   exhausted too; Rust's allocation-error path then panics, and the panic
//!   handler turns that into `MUST_SUCCEED_POOL_EMPTY` (0x41).
//!   Services use [`try_box`], [`try_vec_with_capacity`], [`try_reserve`]
//!   and [`try_push`], which never touch the must-succeed reserve and fail
//!   with STATUS_INSUFFICIENT_RESOURCES.

use crate::hal::MAX_PROCESSORS;
use crate::ke::{self, DISPATCH_LEVEL};
use ::mm::pool::{PoolError, PoolType};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use nt::arc::MemoryType;
use nt::status::STATUS_INSUFFICIENT_RESOURCES;
use nt::NtStatus;

// ---------------------------------------------------------------------
// The early boot pool
// ---------------------------------------------------------------------

/// Bytes the early pool has beyond the PFN database: what phase 0 allocates
/// before the executive pools exist, plus the must-succeed reserve.
const EARLY_RESERVE: u64 = 8 << 20;
/// Page-granular blocks up to this many pages are recycled through per-size free lists.
const LARGE_CLASSES: usize = 64;
const CLASSES: usize = 9; // 16 .. 4096 bytes
const MIN_CLASS: usize = 16;

struct EarlyState {
    start: u64,
    next: u64,
    end: u64,
    free: [u64; CLASSES],
    /// Free page-granular blocks by page count (index = pages - 1).
    large_free: [u64; LARGE_CLASSES],
    in_use: u64,
}

/// A bump allocator with power-of-two size classes and page-granular
/// blocks recycled up to 64 pages (larger ones, the PFN database, are never
/// freed). One lock, taken with interrupts off.
struct EarlyPool {
    lock: AtomicBool,
    state: core::cell::UnsafeCell<EarlyState>,
}

// SAFETY: all access to `state` happens with `lock` held.
unsafe impl Sync for EarlyPool {}

/// The early pool's range, set once in phase 0 before any block exists
/// (read on every free without the lock).
static EARLY_START: AtomicU64 = AtomicU64::new(0);
static EARLY_END: AtomicU64 = AtomicU64::new(0);

static EARLY: EarlyPool = EarlyPool {
    lock: AtomicBool::new(false),
    state: core::cell::UnsafeCell::new(EarlyState {
        start: 0,
        next: 0,
        end: 0,
        free: [0; CLASSES],
        large_free: [0; LARGE_CLASSES],
        in_use: 0,
    }),
};

fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout
        .size()
        .max(layout.align())
        .max(MIN_CLASS)
        .next_power_of_two();
    let c = size.trailing_zeros() as usize - MIN_CLASS.trailing_zeros() as usize;
    (c < CLASSES).then_some(c)
}

impl EarlyPool {
    fn with<R>(&self, f: impl FnOnce(&mut EarlyState) -> R) -> R {
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

    fn contains(&self, p: u64) -> bool {
        p >= EARLY_START.load(Ordering::Relaxed) && p < EARLY_END.load(Ordering::Relaxed)
    }

    /// A block for `layout` (aligned to its class, or to pages), or null.
    fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|s| match class_of(&layout) {
            Some(c) => {
                let size = (MIN_CLASS << c) as u64;
                if s.free[c] != 0 {
                    let b = s.free[c];
                    // SAFETY: a free block stores the next free block in its first word.
                    s.free[c] = unsafe { *(b as *const u64) };
                    s.in_use += size;
                    return b as *mut u8;
                }
                let b = s.next.next_multiple_of(size);
                if b + size > s.end {
                    return core::ptr::null_mut();
                }
                s.next = b + size;
                s.in_use += size;
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

    /// Frees a block `alloc` returned for `layout`.
    fn dealloc(&self, ptr: *mut u8, layout: Layout) {
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
    let (start, end) = EARLY.with(|s| (s.start, s.end));
    (start - crate::hal::phys_to_virt(0), end - start)
}

/// Bytes in use in the early pool, and its size.
pub fn early_pool_usage() -> (u64, u64) {
    EARLY.with(|s| (s.in_use, s.end - s.start))
}

/// Takes the early pool region from the top of the largest free range: room
/// for the PFN database (one entry per page up to the highest the loader
/// describes, as `PfnDatabase::from_descriptors` builds it) plus
/// [`EARLY_RESERVE`].
pub fn initialize(lb: &nt::arc::LoaderParameterBlock) -> Result<(), NtStatus> {
    // SAFETY: the loader's descriptor array stays mapped.
    let descs = unsafe { lb.memory_descriptors() };
    let highest = descs
        .iter()
        .filter(|d| d.memory_type != MemoryType::SpecialMemory)
        .map(|d| d.base_page + d.page_count)
        .max()
        .unwrap_or(0);
    let pfn_bytes = highest * core::mem::size_of::<::mm::pfn::PfnEntry>() as u64;
    let size = (pfn_bytes + EARLY_RESERVE).next_multiple_of(2 << 20);
    let best = descs
        .iter()
        .filter(|d| d.memory_type == MemoryType::Free)
        .max_by_key(|d| d.page_count)
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    if best.page_count * 4096 < size {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // The top of the range, leaving low memory to the memory manager.
    let start = crate::hal::phys_to_virt((best.base_page + best.page_count) * 4096 - size);
    EARLY.with(|s| {
        s.start = start;
        s.next = start;
        s.end = start + size;
    });
    EARLY_START.store(start, Ordering::Relaxed);
    EARLY_END.store(start + size, Ordering::Relaxed);
    Ok(())
}

// ---------------------------------------------------------------------
// Allocation scopes
// ---------------------------------------------------------------------

/// Scope bit: allocate from the paged pool.
const PAGED_SCOPE: u64 = 1 << 32;
/// NT's tag for allocations without one (`ExAllocatePool`).
pub const TAG_NONE: u32 = u32::from_le_bytes(*b"None");

/// Each processor's scope for code running at DISPATCH_LEVEL or above (0: none).
static PROCESSOR_SCOPE: [AtomicU64; MAX_PROCESSORS] = [const { AtomicU64::new(0) }; MAX_PROCESSORS];

enum Slot {
    Thread,
    Processor(usize),
}

/// An allocation scope: heap allocations until the guard drops are tagged
/// with its tag (see the module comment). Scopes nest.
pub struct PoolTag {
    saved: u64,
    slot: Slot,
    /// Stays on the thread (and, at raised IRQL, the processor) that made it.
    _local: core::marker::PhantomData<*const ()>,
}

impl PoolTag {
    /// Nonpaged pool allocations tagged `tag`.
    pub fn enter(tag: [u8; 4]) -> PoolTag {
        Self::scope(u32::from_le_bytes(tag) as u64)
    }

    /// Paged pool allocations tagged `tag` (nonpaged at DISPATCH_LEVEL and above).
    pub fn enter_paged(tag: [u8; 4]) -> PoolTag {
        Self::scope(u32::from_le_bytes(tag) as u64 | PAGED_SCOPE)
    }

    fn scope(v: u64) -> PoolTag {
        if ke::irql() < DISPATCH_LEVEL {
            if let Some(saved) = ke::thread::swap_current_pool_tag(v) {
                return PoolTag {
                    saved,
                    slot: Slot::Thread,
                    _local: core::marker::PhantomData,
                };
            }
        }
        let n = ke::current_processor_number() as usize;
        PoolTag {
            saved: PROCESSOR_SCOPE[n].swap(v, Ordering::Relaxed),
            slot: Slot::Processor(n),
            _local: core::marker::PhantomData,
        }
    }
}

impl Drop for PoolTag {
    fn drop(&mut self) {
        match self.slot {
            Slot::Thread => {
                ke::thread::swap_current_pool_tag(self.saved);
            }
            Slot::Processor(n) => PROCESSOR_SCOPE[n].store(self.saved, Ordering::Relaxed),
        }
    }
}

/// The pool and tag of the scope in effect here: the processor's at
/// DISPATCH_LEVEL and above if one is set, else the thread's; `None` and
/// the nonpaged pool when unscoped (and before the executive pools serve
/// the heap, when scopes do not matter), and the nonpaged pool for a paged
/// scope at DISPATCH_LEVEL and above. (Below DISPATCH_LEVEL this
/// processor's slot is always clear: scopes that set it end before the
/// IRQL drops.)
#[inline(always)]
fn current_scope() -> (PoolType, u32) {
    if !EXECUTIVE.load(Ordering::Relaxed) {
        return (PoolType::NonPaged, TAG_NONE);
    }
    current_scope_executive()
}

/// [`current_scope`] once the executive pools serve the heap ([`EXECUTIVE`]
/// set, which happens after the boot processor's PCR is set up; other
/// processors set up theirs before they allocate).
#[inline(always)]
fn current_scope_executive() -> (PoolType, u32) {
    let raised = ke::irql() >= DISPATCH_LEVEL;
    let scope = if raised {
        raised_scope()
    } else {
        // SAFETY: GS points at this processor's KPCR (see above).
        unsafe { ke::thread::current_pool_tag_unchecked() }
    };
    let tag = match scope as u32 {
        0 => TAG_NONE,
        t => t,
    };
    if scope & PAGED_SCOPE != 0 && !raised {
        (PoolType::Paged, tag)
    } else {
        (PoolType::NonPaged, tag)
    }
}

/// The scope at DISPATCH_LEVEL and above: the processor's if set; else,
/// outside interrupt service, the thread's. Interrupt service (ISRs, the
/// dispatch interrupt and its DPCs) runs on whatever thread it interrupted:
/// its allocations are not that thread's, so only a processor scope
/// applies there.
#[inline(never)]
fn raised_scope() -> u64 {
    let scope = PROCESSOR_SCOPE[crate::ex::xpool::processor_index()].load(Ordering::Relaxed);
    if scope != 0 || ke::intr::in_interrupt() {
        return scope;
    }
    // SAFETY: only reached with the executive pools serving the heap, so GS
    // points at this processor's KPCR (see `current_scope_executive`).
    unsafe { ke::thread::current_pool_tag_unchecked() }
}

// ---------------------------------------------------------------------
// GlobalAlloc
// ---------------------------------------------------------------------

/// Whether the executive pools serve the heap (set in phase 0 once the PFN
/// database exists).
static EXECUTIVE: AtomicBool = AtomicBool::new(false);
/// Infallible allocations the executive pools refused, served by the early pool.
static EARLY_FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// Blocks over 16-byte alignment that are not big allocations (which are
/// page aligned) get `align` extra bytes; the original block address is
/// stored just below the aligned one.
#[inline]
fn over_aligned(layout: &Layout) -> bool {
    layout.align() > 16
        && !(layout.align() <= 4096 && ::mm::pool::is_big_allocation(layout.size() as u64))
}

fn raise(e: PoolError) -> ! {
    match e {
        PoolError::BugCheck(b) => ke::bugcheck::ke_bug_check_ex(
            b.code,
            b.parameters[0],
            b.parameters[1],
            b.parameters[2],
            b.parameters[3],
        ),
        e => unreachable!("pool: {e}"),
    }
}

/// A block from the executive pools for `layout` in `scope`, or `None` when
/// they refuse it.
#[inline(always)]
fn pool_alloc(layout: Layout, zero: bool, scope: (PoolType, u32)) -> Option<*mut u8> {
    if layout.align() <= 16 {
        let va =
            crate::ex::xpool::allocate_from_lookaside(scope.0, layout.size() as u64, scope.1, zero);
        if va != 0 {
            return Some(va as *mut u8);
        }
    }
    pool_alloc_slow(layout, zero, scope)
}

#[inline(never)]
fn pool_alloc_slow(
    layout: Layout,
    zero: bool,
    (pool_type, tag): (PoolType, u32),
) -> Option<*mut u8> {
    let over = over_aligned(&layout);
    let size = layout.size() as u64;
    let bytes = if over {
        size.checked_add(layout.align() as u64)?
    } else {
        size
    };
    // `pool_alloc` already tried this processor's lookaside list for blocks
    // of at most 16-byte alignment: go straight to the locked path, which
    // also consumes any error that attempt left.
    let r = if layout.align() <= 16 {
        crate::ex::xpool::allocate_slow(pool_type, bytes, tag, zero)
    } else {
        crate::ex::xpool::allocate(pool_type, bytes, tag, zero)
    };
    let va = match r {
        Ok(va) => va,
        Err(PoolError::InsufficientResources { .. }) => return None,
        Err(e) => raise(e),
    };
    if !over {
        return Some(va as *mut u8);
    }
    let aligned = (va + 8).next_multiple_of(layout.align() as u64);
    // SAFETY: `aligned - 8 >= va` and `aligned + size <= va + bytes`: the
    // word below the aligned block is inside the pool block.
    unsafe { ((aligned - 8) as *mut u64).write(va) };
    Some(aligned as *mut u8)
}

fn pool_free(ptr: *mut u8, layout: Layout) {
    let va = if over_aligned(&layout) {
        // SAFETY: `pool_alloc` stored the block address there.
        unsafe { ((ptr as u64 - 8) as *const u64).read() }
    } else {
        ptr as u64
    };
    if let Err(e) = crate::ex::xpool::free_heap_block(va) {
        raise(e);
    }
}

/// The kernel heap.
pub struct KernelHeap;

#[global_allocator]
pub static POOL: KernelHeap = KernelHeap;

impl KernelHeap {
    /// Bytes allocated now in the executive pools (both, all tags) and the
    /// early pool: what the leak tests compare.
    pub fn bytes_in_use(&self) -> u64 {
        crate::ex::xpool::bytes_in_use(PoolType::NonPaged)
            + crate::ex::xpool::bytes_in_use(PoolType::Paged)
            + early_pool_usage().0
    }
}

// SAFETY: blocks come from the executive pools (which hand out disjoint
// blocks of at least the requested size, 16-byte aligned or page aligned
// for big ones, with over-aligned layouts padded as `pool_alloc` does) or
// from the early pool (aligned to their class); `dealloc` sends each block
// back to the pool its address belongs to with the layout it was made for.
unsafe impl GlobalAlloc for KernelHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if EXECUTIVE.load(Ordering::Relaxed) {
            if let Some(p) = pool_alloc(layout, false, current_scope_executive()) {
                return p;
            }
            EARLY_FALLBACKS.fetch_add(1, Ordering::Relaxed);
        }
        EARLY.alloc(layout)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if EXECUTIVE.load(Ordering::Relaxed) {
            if let Some(p) = pool_alloc(layout, true, current_scope_executive()) {
                return p;
            }
            EARLY_FALLBACKS.fetch_add(1, Ordering::Relaxed);
        }
        let p = EARLY.alloc(layout);
        if !p.is_null() {
            // SAFETY: a fresh block of `layout.size()` bytes.
            unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if EARLY.contains(ptr as u64) {
            EARLY.dealloc(ptr, layout);
        } else {
            pool_free(ptr, layout);
        }
    }
}

/// `InitializePool`: from now on the heap comes from the executive pools
/// (phase 0, once the PFN database exists); their maximum sizes follow the
/// amount of RAM the loader describes.
pub fn ex_initialize_pool(lb: &nt::arc::LoaderParameterBlock) {
    // SAFETY: the loader's descriptor array stays mapped.
    let descs = unsafe { lb.memory_descriptors() };
    let ram_pages = descs
        .iter()
        .filter(|d| d.memory_type != MemoryType::SpecialMemory)
        .map(|d| d.page_count)
        .sum();
    crate::ex::xpool::ex_initialize_pool_sizes(ram_pages);
    EXECUTIVE.store(true, Ordering::Release);
}

/// Infallible allocations served by the early pool since the switch.
pub fn early_fallbacks() -> u64 {
    EARLY_FALLBACKS.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------
// Fallible allocation for services
// ---------------------------------------------------------------------

/// A block for `layout` from the executive pools in `scope`, never from the
/// must-succeed reserve: STATUS_INSUFFICIENT_RESOURCES when the pool
/// refuses (at its maximum, out of memory, or unable to grow here).
/// Non-zero sizes only.
fn try_alloc_in(layout: Layout, scope: (PoolType, u32)) -> Result<NonNull<u8>, NtStatus> {
    let p = if EXECUTIVE.load(Ordering::Relaxed) {
        pool_alloc(layout, false, scope).unwrap_or(core::ptr::null_mut())
    } else {
        EARLY.alloc(layout)
    };
    NonNull::new(p).ok_or(STATUS_INSUFFICIENT_RESOURCES)
}

/// `Box::new` that fails with STATUS_INSUFFICIENT_RESOURCES instead of
/// taking the must-succeed path (tagged by the current scope).
pub fn try_box<T>(v: T) -> Result<Box<T>, NtStatus> {
    try_box_in(v, current_scope())
}

/// [`try_box`] from the nonpaged pool tagged `tag` (as `ExAllocatePoolWithTag`
/// names its tag), whatever the scope.
pub fn try_box_tagged<T>(v: T, tag: [u8; 4]) -> Result<Box<T>, NtStatus> {
    try_box_in(v, (PoolType::NonPaged, u32::from_le_bytes(tag)))
}

fn try_box_in<T>(v: T, scope: (PoolType, u32)) -> Result<Box<T>, NtStatus> {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return Ok(Box::new(v));
    }
    let p = try_alloc_in(layout, scope)?.cast::<T>();
    // SAFETY: `p` is a fresh block from the global allocator for `Layout::new::<T>()`,
    // which `Box` frees with that same layout.
    unsafe {
        p.as_ptr().write(v);
        Ok(Box::from_raw(p.as_ptr()))
    }
}

/// `Vec::with_capacity` that fails with STATUS_INSUFFICIENT_RESOURCES.
pub fn try_vec_with_capacity<T>(capacity: usize) -> Result<Vec<T>, NtStatus> {
    let layout = Layout::array::<T>(capacity).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    if layout.size() == 0 {
        return Ok(Vec::with_capacity(capacity));
    }
    let p = try_alloc_in(layout, current_scope())?.cast::<T>();
    // SAFETY: a block from the global allocator with the layout of
    // `capacity` elements of `T`, holding none yet.
    Ok(unsafe { Vec::from_raw_parts(p.as_ptr(), 0, capacity) })
}

/// `Vec::try_reserve` whose failure is STATUS_INSUFFICIENT_RESOURCES (and
/// which never takes the must-succeed reserve): room for `additional` more
/// elements, growing to at least twice the capacity.
pub fn try_reserve<T>(v: &mut Vec<T>, additional: usize) -> Result<(), NtStatus> {
    if v.capacity() - v.len() >= additional {
        return Ok(());
    }
    let need = v
        .len()
        .checked_add(additional)
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let mut grown = try_vec_with_capacity::<T>(need.max(v.capacity() * 2).max(4))?;
    grown.append(v);
    *v = grown;
    Ok(())
}

/// `Vec::push` that fails with STATUS_INSUFFICIENT_RESOURCES when the vector
/// must grow and the pool refuses.
pub fn try_push<T>(v: &mut Vec<T>, x: T) -> Result<(), NtStatus> {
    try_reserve(v, 1)?;
    v.push(x);
    Ok(())
}

// ---------------------------------------------------------------------
// Out of memory on an infallible path
// ---------------------------------------------------------------------

/// Called by the panic handler: a panic from Rust's allocation-error path
/// ("memory allocation of N bytes failed") stops the system with
/// `MUST_SUCCEED_POOL_EMPTY` (0x41): P1 the request size, P2 the pages of
/// nonpaged pool, P3 its big allocations (those over a page), P4 the pages
/// available. Any other panic returns.
pub fn check_allocation_failure(info: &core::panic::PanicInfo) {
    struct Line {
        b: [u8; 80],
        n: usize,
    }
    impl core::fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let take = s.len().min(self.b.len() - self.n);
            self.b[self.n..self.n + take].copy_from_slice(&s.as_bytes()[..take]);
            self.n += take;
            Ok(())
        }
    }
    let mut line = Line { b: [0; 80], n: 0 };
    let _ = core::fmt::write(&mut line, format_args!("{}", info.message()));
    let Some(size) = core::str::from_utf8(&line.b[..line.n])
        .ok()
        .and_then(|s| s.strip_prefix("memory allocation of "))
        .and_then(|s| s.strip_suffix(" bytes failed"))
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return;
    };
    let np = crate::ex::xpool::pool_stats(PoolType::NonPaged);
    let available = if crate::mm::map::system_page_locks_owned() {
        0
    } else {
        crate::mm::pfn::counts().map_or(0, |c| c.zeroed + c.free + c.standby)
    };
    ke::bugcheck::ke_bug_check_ex(
        nt::bugcheck::MUST_SUCCEED_POOL_EMPTY,
        size,
        np.pages,
        np.big_allocations,
        available,
    );
}

/// `/CRASHTEST=POOLEMPTY`: with the nonpaged pool capped at what it holds,
/// infallible 1 MiB heap allocations use up the must-succeed reserve; the
/// next one must stop the system with `MUST_SUCCEED_POOL_EMPTY` (0x41).
pub fn crash_test_pool_empty() {
    let pages = crate::ex::xpool::pool_stats(PoolType::NonPaged).pages;
    crate::ex::xpool::ex_set_pool_maximum(PoolType::NonPaged, pages);
    crate::dbg_println!(
        "crash test: nonpaged pool capped at {pages} pages; allocating 1 MiB blocks until the reserve is gone"
    );
    // Room for every block, so that the 1 MiB request is the one that fails.
    let mut keep = Vec::with_capacity(1024);
    loop {
        keep.push(core::hint::black_box(alloc::vec![1u8; 1 << 20]));
    }
}
