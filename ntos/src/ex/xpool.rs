//! Executive pools (*Windows Internals*, Part 1, ch. 5, "Kernel-mode heaps
//! (system memory pools)"): the nonpaged and paged pool over the
//! host-tested `::mm::pool` (x64 `POOL_HEADER`s, big pages,
//! per-processor lookaside lists, `PoolTrackTable`, corruption checks that
//! bug check with `BAD_POOL_HEADER` 0x19 / `BAD_POOL_CALLER` 0xC2), backed
//! by pages mapped in system PTEs; `ExAllocatePool2`, `ExFreePoolWithTag`,
//! `!poolused` and the pool lines of `!vm`. The kernel heap
//! (`ex::pool`, Rust's `GlobalAlloc`) allocates from these pools.
//!
//! Locking: each pool's `POOL_DESCRIPTOR` is behind its own spin lock, held
//! with interrupts disabled (ntrs's dispatcher, DPC and worker queues still
//! allocate at raised IRQL, up to HIGH_LEVEL, so an interrupt must not find
//! the lock held by the code it interrupted). Small blocks are allocated and
//! freed through the current processor's lookaside lists without that lock.
//! The lock is never held while the memory manager is called: pages are
//! obtained and returned between two lock holds (see [`grow`] and
//! [`release_surplus`]).
//!
//! ntrs deviation: nothing in the kernel is paged out yet, so the paged pool
//! is resident like the nonpaged one (separate pool, separate accounting,
//! NT's IRQL rules for `ExAllocatePool2` callers).

use crate::hal::{self, MAX_PROCESSORS};
use crate::ke::{self, DISPATCH_LEVEL};
use ::mm::pool::{
    PoolDescriptor, PoolError, PoolMemory, PoolShared, PoolStats, PoolType, PpLookaside, TagUsage,
};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Pool memory: kernel virtual addresses of pages mapped in system PTEs.
pub struct SystemPages;

fn word(va: u64) -> &'static AtomicU64 {
    // SAFETY: the pool only names 8-byte aligned words inside pages it holds
    // (mapped, never unmapped while it holds them); every processor touches
    // them only through atomic accesses or as block memory it owns.
    unsafe { AtomicU64::from_ptr(va as *mut u64) }
}

impl PoolMemory for SystemPages {
    #[inline]
    fn read_u64(&self, va: u64) -> u64 {
        word(va).load(Ordering::Acquire)
    }
    #[inline]
    fn write_u64(&self, va: u64, value: u64) {
        word(va).store(value, Ordering::Release)
    }
    #[inline]
    fn compare_exchange_u64(&self, va: u64, current: u64, new: u64) -> Result<u64, u64> {
        word(va).compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
    #[inline]
    fn fetch_add_u64(&self, va: u64, delta: u64) -> u64 {
        word(va).fetch_add(delta, Ordering::AcqRel)
    }
    #[inline(always)]
    fn zero_words(&self, va: u64, len: u64) {
        // SAFETY: the pool zeroes only block bodies it just allocated: 16-byte
        // aligned, `len` a multiple of 16, inside the block.
        unsafe {
            core::arch::asm!(
                "rep stosq",
                inout("rdi") va => _,
                inout("rcx") len / 8 => _,
                in("rax") 0u64,
                options(nostack, preserves_flags)
            )
        };
    }
    #[inline]
    fn fill(&self, va: u64, len: u64, byte: u8) {
        if byte == 0 && va.is_multiple_of(8) && len.is_multiple_of(8) {
            // SAFETY: the pool fills only memory it owns (block bodies,
            // fresh table pages), 8-byte aligned here.
            unsafe {
                core::arch::asm!(
                    "rep stosq",
                    inout("rdi") va => _,
                    inout("rcx") len / 8 => _,
                    in("rax") 0u64,
                    options(nostack, preserves_flags)
                )
            };
        } else {
            // SAFETY: as above.
            unsafe { core::ptr::write_bytes(va as *mut u8, byte, len as usize) };
        }
    }
}

/// A spin lock held with interrupts disabled (see the module comment);
/// waiters spin with interrupts as they were.
struct PoolLock<T> {
    /// Owner's processor number + 1, 0 when free.
    owner: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only reached with the lock held.
unsafe impl<T: Send> Sync for PoolLock<T> {}

impl<T> PoolLock<T> {
    const fn new(v: T) -> Self {
        PoolLock {
            owner: AtomicU32::new(0),
            data: UnsafeCell::new(v),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let flags = hal::disable_interrupts();
        loop {
            let me = ke::current_processor_number() + 1;
            match self
                .owner
                .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(o) if o == me => ke::bugcheck::ke_bug_check_ex(
                    nt::bugcheck::SPIN_LOCK_ALREADY_OWNED,
                    self as *const Self as u64,
                    0,
                    0,
                    0,
                ),
                Err(_) => {
                    hal::restore_interrupts(flags);
                    while self.owner.load(Ordering::Relaxed) != 0 {
                        core::hint::spin_loop();
                    }
                    hal::disable_interrupts();
                }
            }
        }
        // SAFETY: the lock is held; interrupts are off, so nothing else on
        // this processor can reach it until it is released.
        let r = f(unsafe { &mut *self.data.get() });
        self.owner.store(0, Ordering::Release);
        hal::restore_interrupts(flags);
        r
    }
}

/// One executive pool: the lock-free part and the locked descriptor.
struct ExPool {
    shared: PoolShared,
    descriptor: PoolLock<PoolDescriptor>,
}

const fn ex_pool(pool_type: PoolType) -> ExPool {
    ExPool {
        shared: PoolShared::new(
            pool_type,
            crate::mm::map::SYSTEM_PTE_BASE,
            crate::mm::map::SYSTEM_PTE_PAGES,
        ),
        descriptor: PoolLock::new(PoolDescriptor::new()),
    }
}

/// `NonPagedPoolDescriptor` and `PagedPoolDescriptor`, by `PoolType`.
static POOLS: [ExPool; 2] = [ex_pool(PoolType::NonPaged), ex_pool(PoolType::Paged)];

/// One processor's lookaside lists (`Prcb->PPNPagedLookasideList`,
/// `Prcb->PPPagedLookasideList`), and whether a [`LookasideGuard`] holds
/// them.
struct Lookasides {
    busy: UnsafeCell<bool>,
    lists: UnsafeCell<[PpLookaside; 2]>,
}

// SAFETY: each processor reaches only its own entry, with interrupts off,
// and its lists only through the one `LookasideGuard` that set `busy`.
unsafe impl Sync for Lookasides {}

static LOOKASIDES: [Lookasides; MAX_PROCESSORS] = [const {
    Lookasides {
        busy: UnsafeCell::new(false),
        lists: UnsafeCell::new([PpLookaside::new(), PpLookaside::new()]),
    }
}; MAX_PROCESSORS];

/// This processor's number, for indexing per-processor pool data.
#[inline(always)]
pub(crate) fn processor_index() -> usize {
    let n: u32;
    // SAFETY: GS:[0x1A4] is `Prcb.Number`: the executive pools exist only
    // after the boot processor set up its PCR, and other processors set up
    // theirs before they allocate.
    unsafe { core::arch::asm!("mov {:e}, gs:[0x1A4]", out(reg) n, options(nostack, readonly)) };
    n as usize % MAX_PROCESSORS
}

/// Exclusive use of this processor's lookaside lists: interrupts stay
/// disabled from [`LookasideGuard::acquire`] until the guard drops, so the
/// code holding it is neither interrupted nor moved to another processor,
/// and the lists it hands out ([`LookasideGuard::list`]) are borrowed from
/// the guard, so no reference outlives it.
struct LookasideGuard {
    flags: u64,
    n: usize,
    /// Stays on the processor whose interrupts it disabled.
    _local: core::marker::PhantomData<*const ()>,
}

impl LookasideGuard {
    /// Disables interrupts and takes this processor's lists; `None` (and
    /// interrupts as they were) if a guard already holds them here (code
    /// running under a guard that allocated again): the caller then takes
    /// the pool's locked path.
    #[inline(always)]
    fn acquire() -> Option<LookasideGuard> {
        let flags = hal::disable_interrupts();
        let n = processor_index();
        let busy = LOOKASIDES[n].busy.get();
        // SAFETY: `busy` of entry `n` is touched only by processor `n` with
        // interrupts disabled, which this code now is (it cannot be
        // interrupted or moved until it restores them).
        if unsafe { busy.read() } {
            hal::restore_interrupts(flags);
            return None;
        }
        // SAFETY: as above.
        unsafe { busy.write(true) };
        Some(LookasideGuard {
            flags,
            n,
            _local: core::marker::PhantomData,
        })
    }

    /// The lists of `pool_type`, for as long as this guard is borrowed.
    #[inline(always)]
    fn list(&mut self, pool_type: PoolType) -> &mut PpLookaside {
        // SAFETY: this guard set `busy` of entry `n` on processor `n` with
        // interrupts disabled, and keeps both until it drops: no other
        // guard (here or in an interrupt, which cannot come) and no other
        // processor reaches these lists meanwhile, and the returned borrow
        // of `self` ends before the drop.
        unsafe { &mut (*LOOKASIDES[self.n].lists.get())[pool_type as usize] }
    }
}

impl Drop for LookasideGuard {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: still on processor `n` with interrupts disabled (see
        // `acquire`); no borrow from `list` is alive (they borrow `self`).
        unsafe { LOOKASIDES[self.n].busy.get().write(false) };
        hal::restore_interrupts(self.flags);
    }
}

/// Runs `f` on this processor's lookaside list of `pool_type` under a
/// [`LookasideGuard`]; `None` if one already holds them here.
#[inline(always)]
fn with_lookaside<R>(pool_type: PoolType, f: impl FnOnce(&mut PpLookaside) -> R) -> Option<R> {
    let mut g = LookasideGuard::acquire()?;
    Some(f(g.list(pool_type)))
}

/// Set while this processor is inside the memory manager for a pool (at
/// DISPATCH_LEVEL or above, so the thread cannot move): allocations made
/// meanwhile must not grow the pools again.
static IN_PAGE_SUPPLY: [AtomicBool; MAX_PROCESSORS] =
    [const { AtomicBool::new(false) }; MAX_PROCESSORS];

/// Largest request the lookaside lists serve (32 units, header included).
const LOOKASIDE_BYTES: u64 = ::mm::pool::POOL_SMALL_LISTS * ::mm::pool::POOL_BLOCK_SIZE - 16;

const EXHAUSTED: PoolError = PoolError::InsufficientResources { raise: false };

/// Whether this code may call the memory manager for pool pages: not from
/// inside such a call, not while this processor holds one of the locks the
/// memory manager takes, and not where another processor's flush request
/// (an IPI, after `max_irql`) could not be answered while it waits on those
/// locks, unless no other processor runs yet (phase 0).
fn may_call_memory_manager(max_irql: u8) -> bool {
    if IN_PAGE_SUPPLY[ke::current_processor_number() as usize].load(Ordering::Relaxed)
        || crate::mm::map::system_page_locks_owned()
    {
        return false;
    }
    ke::processor_count() <= 1 || (hal::interrupts_enabled() && ke::irql() <= max_irql)
}

/// Calls the memory manager for the pool at DISPATCH_LEVEL or above, marked
/// so allocations it makes do not grow the pools.
fn page_supply<R>(f: impl FnOnce() -> R) -> R {
    let old = ke::irql();
    if old < DISPATCH_LEVEL {
        ke::irql::ke_raise_irql(DISPATCH_LEVEL);
    }
    let n = ke::current_processor_number() as usize;
    IN_PAGE_SUPPLY[n].store(true, Ordering::Relaxed);
    let r = f();
    IN_PAGE_SUPPLY[n].store(false, Ordering::Relaxed);
    if old < DISPATCH_LEVEL {
        ke::irql::ke_lower_irql(old);
    }
    r
}

impl ExPool {
    /// The locked path of an allocation, growing the pool when it asks for
    /// pages and that is safe here (`MiAllocatePoolPages`, expansion).
    fn allocate_locked(&self, bytes: u64, tag: u32, zero: bool) -> Result<u64, PoolError> {
        let mem = &SystemPages;
        let mut r = self
            .descriptor
            .with(|d| d.try_allocate(&self.shared, mem, bytes, tag, zero));
        for _ in 0..8 {
            match r {
                Err(PoolError::NeedPages { pages }) => {
                    r = grow(pages).and_then(|va| {
                        self.descriptor.with(|d| {
                            d.add_pages(mem, va, pages);
                            d.try_allocate(&self.shared, mem, bytes, tag, zero)
                        })
                    });
                }
                r => return r,
            }
        }
        // Other processors kept taking the pages this one obtained.
        Err(EXHAUSTED)
    }

    fn stats(&self) -> PoolStats {
        self.descriptor.with(|d| d.stats())
    }
}

/// Obtains a run of `pages` pages for a pool, outside its lock.
fn grow(pages: u64) -> Result<u64, PoolError> {
    if !may_call_memory_manager(ke::IPI_LEVEL - 1) {
        return Err(EXHAUSTED);
    }
    page_supply(|| crate::mm::map::mm_allocate_system_pages(pages)).map_err(|_| EXHAUSTED)
}

/// Returns the pool's surplus free runs to the memory manager, if that is
/// safe here (`MiFreePoolPages`); otherwise they wait in the pool's cache
/// for the next free that can.
fn release_surplus(pool: &ExPool) {
    if !may_call_memory_manager(DISPATCH_LEVEL) {
        return;
    }
    while let Some((va, pages)) = pool.descriptor.with(|d| d.take_surplus(&SystemPages)) {
        page_supply(|| crate::mm::map::mm_free_system_pages(va, pages));
    }
}

/// Allocates `bytes` from `pool_type` tagged `tag`: the processor's
/// lookaside list, else the locked path. `InsufficientResources` when the
/// pool is at its maximum, memory is exhausted, or the pool would have to
/// grow where it cannot (see [`may_call_memory_manager`]).
#[inline]
pub fn allocate(pool_type: PoolType, bytes: u64, tag: u32, zero: bool) -> Result<u64, PoolError> {
    let va = allocate_from_lookaside(pool_type, bytes, tag, zero);
    if va != 0 {
        return Ok(va);
    }
    allocate_slow(pool_type, bytes, tag, zero)
}

/// The fast path of an allocation: a block from this processor's
/// lookaside list, or 0 if the locked path must serve it.
#[inline(always)]
pub fn allocate_from_lookaside(pool_type: PoolType, bytes: u64, tag: u32, zero: bool) -> u64 {
    if bytes > LOOKASIDE_BYTES {
        return 0;
    }
    let pool = &POOLS[pool_type as usize];
    let Some(mut g) = LookasideGuard::acquire() else {
        return 0;
    };
    pool.shared
        .allocate_from_lookaside(g.list(pool_type), &SystemPages, bytes, tag, zero)
}

/// The locked path of an allocation whose lookaside attempt (if any) just
/// returned 0: that attempt's out-of-band error, if it left one, is the
/// result; otherwise the pool descriptor serves the block. Callers that made
/// their own lookaside attempt come here directly, so no error is left
/// pending for a later, unrelated allocation.
#[inline(never)]
pub fn allocate_slow(
    pool_type: PoolType,
    bytes: u64,
    tag: u32,
    zero: bool,
) -> Result<u64, PoolError> {
    if let Some(e) = with_lookaside(pool_type, |la| la.take_error()).flatten() {
        return Err(e);
    }
    POOLS[pool_type as usize].allocate_locked(bytes, tag, zero)
}

/// The pool whose small-block page holds `va`, if any.
#[inline]
fn small_block_pool(va: u64) -> Option<&'static ExPool> {
    let page = va & !0xFFF;
    if va == page {
        return None;
    }
    POOLS
        .iter()
        .find(|p| p.shared.is_small_page(&SystemPages, page))
}

/// Frees `va` (tag 0: any tag): the processor's lookaside list, else the
/// locked path of its pool; big allocations and addresses no pool owns go
/// to the nonpaged pool and then the paged one, which report
/// `BAD_POOL_CALLER` 0x42 when neither owns it.
#[inline]
pub fn free(va: u64, tag: u32) -> Result<(), PoolError> {
    if free_to_lookaside(va, tag) {
        return Ok(());
    }
    free_slow(va, tag)
}

/// Frees a block the kernel heap allocated. Rust hands back only blocks it
/// was given, so a small block's header (in the block's own page) names
/// its pool without the small-page bitmap; anything unexpected takes the
/// checked path.
#[inline]
pub fn free_heap_block(va: u64) -> Result<(), PoolError> {
    if va & 0xFFF != 0 {
        // SAFETY: a live small block: its header is the 16 bytes below it,
        // in the same page.
        let ty = unsafe { ((va - 16 + 3) as *const u8).read_volatile() };
        let pool_type = match ty {
            1 => PoolType::NonPaged,
            2 => PoolType::Paged,
            _ => return free_slow(va, 0),
        };
        if park(&POOLS[pool_type as usize], va, 0) {
            return Ok(());
        }
    }
    free_slow(va, 0)
}

/// Parks a small block of `pool` on this processor's lookaside list.
#[inline(always)]
fn park(pool: &ExPool, va: u64, tag: u32) -> bool {
    let Some(mut g) = LookasideGuard::acquire() else {
        return false;
    };
    pool.shared
        .free_small_to_lookaside(g.list(pool.shared.pool_type()), &SystemPages, va, tag)
}

/// The fast path of a free: a small block parked on this processor's
/// lookaside list; false if the locked path must take it.
#[inline(always)]
fn free_to_lookaside(va: u64, tag: u32) -> bool {
    let Some(pool) = small_block_pool(va) else {
        return false;
    };
    park(pool, va, tag)
}

#[inline(never)]
fn free_slow(va: u64, tag: u32) -> Result<(), PoolError> {
    match small_block_pool(va) {
        Some(pool) => free_small_slow(pool, va, tag),
        None => free_other(va, tag),
    }
}

#[inline(never)]
fn free_small_slow(pool: &ExPool, va: u64, tag: u32) -> Result<(), PoolError> {
    pool.descriptor
        .with(|d| d.free(&pool.shared, &SystemPages, va, tag))?;
    release_surplus(pool);
    Ok(())
}

#[inline(never)]
fn free_other(va: u64, tag: u32) -> Result<(), PoolError> {
    let not_ours = |r: &Result<(), PoolError>| matches!(r, Err(PoolError::BugCheck(b)) if b.code == nt::bugcheck::BAD_POOL_CALLER && b.parameters[0] == 0x42);
    let mut r = Ok(());
    for pool in &POOLS {
        r = pool
            .descriptor
            .with(|d| d.free(&pool.shared, &SystemPages, va, tag));
        if r.is_ok() {
            release_surplus(pool);
        }
        if !not_ours(&r) {
            break;
        }
    }
    r
}

#[cold]
fn raise(e: PoolError) {
    if let PoolError::BugCheck(b) = e {
        ke::bugcheck::ke_bug_check_ex(
            b.code,
            b.parameters[0],
            b.parameters[1],
            b.parameters[2],
            b.parameters[3],
        );
    }
}

/// `ExAllocatePool2`: a block of `bytes` tagged `tag` (zeroed unless
/// `POOL_FLAG_UNINITIALIZED`), or 0 when out of memory or the flags are
/// invalid. Above DISPATCH_LEVEL (above APC_LEVEL for paged pool) it bug
/// checks with `BAD_POOL_CALLER` 0x08 (current IRQL, pool type, size). An
/// exhausted pool with `POOL_FLAG_RAISE_ON_FAILURE` raises
/// STATUS_INSUFFICIENT_RESOURCES; ntrs has no exception dispatching for it,
/// so that ends as an unhandled kernel-mode exception
/// (`KMODE_EXCEPTION_NOT_HANDLED`, 0xC000009A).
pub fn ex_allocate_pool2(flags: u64, bytes: u64, tag: u32) -> u64 {
    // The common case first: a small nonpaged block from the lookaside list.
    if flags == ::mm::pool::POOL_FLAG_NON_PAGED
        && ke::irql() <= DISPATCH_LEVEL
        && bytes <= LOOKASIDE_BYTES
    {
        let va = allocate_from_lookaside(PoolType::NonPaged, bytes, tag, true);
        if va != 0 {
            return va;
        }
    }
    ex_allocate_pool2_slow(flags, bytes, tag)
}

#[inline(never)]
fn ex_allocate_pool2_slow(flags: u64, bytes: u64, tag: u32) -> u64 {
    let req = match ::mm::pool::pool2_request(flags) {
        Ok(r) => r,
        Err(_) => return 0,
    };
    let irql = ke::irql();
    let max = match req.pool_type {
        PoolType::NonPaged => DISPATCH_LEVEL,
        PoolType::Paged => ke::APC_LEVEL,
    };
    if irql > max {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::BAD_POOL_CALLER,
            0x08,
            irql as u64,
            req.pool_type as u64,
            bytes,
        );
    }
    match allocate(req.pool_type, bytes, tag, req.zero) {
        Ok(va) => va,
        Err(PoolError::InsufficientResources { .. }) if req.raise => ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::KMODE_EXCEPTION_NOT_HANDLED,
            nt::status::STATUS_INSUFFICIENT_RESOURCES.as_u32() as u64,
            0,
            0,
            0,
        ),
        Err(e) => {
            raise(e);
            0
        }
    }
}

/// `ExFreePoolWithTag`: a bad free (wrong tag, corrupted header, double
/// free, an address no pool owns) bug checks as NT does; above
/// DISPATCH_LEVEL (above APC_LEVEL for paged pool) it is `BAD_POOL_CALLER`
/// 0x09 (current IRQL, pool type, address).
pub fn ex_free_pool_with_tag(va: u64, tag: u32) {
    let irql = ke::irql();
    if irql > ke::APC_LEVEL {
        check_free_irql(va, irql);
    }
    if !free_to_lookaside(va, tag) {
        ex_free_pool_slow(va, tag);
    }
}

#[inline(never)]
fn ex_free_pool_slow(va: u64, tag: u32) {
    if let Err(e) = free_slow(va, tag) {
        raise(e);
    }
}

#[cold]
fn check_free_irql(va: u64, irql: u8) {
    let paged = &POOLS[PoolType::Paged as usize];
    let pool_type = match small_block_pool(va) {
        Some(p) => p.shared.pool_type(),
        None if paged
            .descriptor
            .with(|d| d.query(&paged.shared, &SystemPages, va).is_some()) =>
        {
            PoolType::Paged
        }
        None => PoolType::NonPaged,
    };
    if irql > DISPATCH_LEVEL || pool_type == PoolType::Paged {
        ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::BAD_POOL_CALLER,
            0x09,
            irql as u64,
            pool_type as u64,
            va,
        );
    }
}

/// `ExAllocatePool2`, exported for drivers.
#[no_mangle]
pub extern "system" fn ExAllocatePool2(flags: u64, bytes: usize, tag: u32) -> *mut u8 {
    ex_allocate_pool2(flags, bytes as u64, tag) as *mut u8
}

/// `ExAllocatePoolWithTag` (`POOL_TYPE`, size, tag): the old interface,
/// uninitialized memory. The pool type's low bit selects paged pool
/// (`PagedPool` 1, `PagedPoolCacheAligned` 5, ...); every other type is
/// nonpaged (`NonPagedPool` 0, `NonPagedPoolNx` 512, ...). ntrs maps all
/// nonpaged pool NX, which is what `NonPagedPoolNx` asks for; `NonPagedPool`
/// executable memory is not provided (documented in docs/mm.md).
pub fn ex_allocate_pool_with_tag(pool_type: u32, bytes: u64, tag: u32) -> u64 {
    let base = if pool_type & 1 != 0 {
        ::mm::pool::POOL_FLAG_PAGED
    } else {
        ::mm::pool::POOL_FLAG_NON_PAGED
    };
    let mut flags = base | ::mm::pool::POOL_FLAG_UNINITIALIZED;
    if pool_type & 4 != 0 {
        flags |= ::mm::pool::POOL_FLAG_CACHE_ALIGNED;
    }
    ex_allocate_pool2(flags, bytes, tag)
}

/// `ExAllocatePoolWithTag`, exported for drivers.
#[no_mangle]
pub extern "system" fn ExAllocatePoolWithTag(pool_type: u32, bytes: usize, tag: u32) -> *mut u8 {
    ex_allocate_pool_with_tag(pool_type, bytes as u64, tag) as *mut u8
}

/// `ExFreePoolWithTag`, exported for drivers.
#[no_mangle]
pub extern "system" fn ExFreePoolWithTag(p: *mut u8, tag: u32) {
    ex_free_pool_with_tag(p as u64, tag)
}

/// `ExFreePool`: `ExFreePoolWithTag` without a tag check (tag 0).
#[no_mangle]
pub extern "system" fn ExFreePool(p: *mut u8) {
    ex_free_pool_with_tag(p as u64, 0)
}

/// Sets the pools' maximum sizes from the amount of RAM (phase 0):
/// three quarters of it each (`MmMaximumNonPagedPoolInBytes` on x64 is
/// 75% of RAM; the paged pool, resident in ntrs, gets the same bound).
pub fn ex_initialize_pool_sizes(ram_pages: u64) {
    // The lookaside link cookie, different on every boot.
    let cookie = hal::rdtsc().wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 << 63;
    for p in &POOLS {
        p.shared.set_cookie(cookie);
        p.descriptor
            .with(|d| d.set_maximum_pages(ram_pages / 4 * 3));
    }
}

/// Sets the maximum size of a pool in pages (the boot tests lower it to
/// exhaust the pool quickly); returns the previous maximum.
pub fn ex_set_pool_maximum(pool_type: PoolType, pages: u64) -> u64 {
    POOLS[pool_type as usize].descriptor.with(|d| {
        let old = d.stats().maximum_pages;
        d.set_maximum_pages(pages);
        old
    })
}

/// Page counts of a pool.
pub fn pool_stats(pool_type: PoolType) -> PoolStats {
    POOLS[pool_type as usize].stats()
}

/// Usage of `tag` in a pool.
pub fn tag_usage(pool_type: PoolType, tag: u32) -> TagUsage {
    POOLS[pool_type as usize].shared.usage(&SystemPages, tag)
}

/// Bytes allocated from a pool now, all tags.
pub fn bytes_in_use(pool_type: PoolType) -> u64 {
    POOLS[pool_type as usize].shared.bytes_in_use(&SystemPages)
}

/// Bytes and allocations outstanding for `tag` in the nonpaged pool.
pub fn nonpaged_usage(tag: u32) -> (u64, u64) {
    let u = tag_usage(PoolType::NonPaged, tag);
    (u.bytes, u.outstanding())
}

/// Empties this processor's lookaside lists into the pools' free lists
/// (what the balance set manager does when it trims lookaside depths).
pub fn flush_current_lookasides() {
    for pool in &POOLS {
        let pool_type = pool.shared.pool_type();
        let r = with_lookaside(pool_type, |la| {
            pool.descriptor
                .with(|d| d.flush_lookaside(&pool.shared, &SystemPages, la))
        });
        if let Some(Err(e)) = r {
            raise(e);
        }
        release_surplus(pool);
    }
}

/// Bytes and outstanding allocations per (pool, tag) now: what a leak test
/// compares before and after to name the tags that grew.
pub fn tag_snapshot() -> alloc::vec::Vec<(PoolType, u32, u64, u64)> {
    let mut v = alloc::vec::Vec::new();
    for t in [PoolType::NonPaged, PoolType::Paged] {
        for (tag, u) in POOLS[t as usize].shared.tag_usage(&SystemPages) {
            v.push((t, tag, u.bytes, u.outstanding()));
        }
    }
    v
}

/// Prints the tags whose bytes grew from `before` to `after` (snapshots
/// from [`tag_snapshot`]), with their outstanding allocation counts.
pub fn print_tag_growth(before: &[(PoolType, u32, u64, u64)], after: &[(PoolType, u32, u64, u64)]) {
    for &(t, tag, bytes, n) in after {
        let (b0, n0) = before
            .iter()
            .find(|e| e.0 == t && e.1 == tag)
            .map_or((0, 0), |e| (e.2, e.3));
        if bytes > b0 {
            let name: alloc::string::String = ::mm::pool::tag_string(tag).iter().collect();
            crate::dbg_println!(
                "  pool {t:?} tag {name}: {b0} -> {bytes} bytes, {n0} -> {n} allocations"
            );
        }
    }
}

/// `!poolused`: usage per tag of both pools, in WinDbg's layout.
pub fn kd_poolused() {
    let np = POOLS[0].shared.tag_usage(&SystemPages);
    let pp = POOLS[1].shared.tag_usage(&SystemPages);
    crate::dbg_print!("{}", ::mm::pool::format_pool_used(&np, &pp));
    let (used, size) = crate::ex::pool::early_pool_usage();
    crate::dbg_println!(
        " (early boot pool, outside the executive pools: {used} of {size} bytes in use; \
         {} must-succeed allocations served from it since the pools took over)",
        crate::ex::pool::early_fallbacks()
    );
}

/// The pool lines of `!vm`.
pub fn kd_vm_lines() {
    let kb = |p: u64| p * 4;
    for (name, max_name, t) in [
        (
            "NonPagedPool Usage:",
            "NonPagedPool Max:",
            PoolType::NonPaged,
        ),
        ("PagedPool Usage:", "PagedPool Maximum:", PoolType::Paged),
    ] {
        let s = pool_stats(t);
        crate::dbg_println!("{name:<26}{:>10} (   {:>10} Kb)", s.pages, kb(s.pages));
        crate::dbg_println!(
            "{max_name:<26}{:>10} (   {:>10} Kb)",
            s.maximum_pages,
            kb(s.maximum_pages)
        );
    }
}
