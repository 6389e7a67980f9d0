//! Executive synchronization (*Windows Internals*, Part 2, ch. 8,
//! "Low-IRQL synchronization"): fast and guarded mutexes, executive
//! resources (`ERESOURCE`) with NT's shared/exclusive and starvation rules,
//! push locks, and rundown protection, all built on dispatcher objects.

use crate::ke::irql::{ke_lower_irql, ke_raise_irql, SpinLocked};
use crate::ke::thread::WaitReason;
use crate::ke::wait::{ke_set_event, ke_wait_for_single_object, KEvent, KSemaphore};
use crate::ke::{self, sched, APC_LEVEL, DISPATCH_LEVEL};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};

fn wait(e: &dyn crate::ke::wait::Waitable) {
    ke_wait_for_single_object(e, WaitReason::Executive, false, false, None);
}

/// `FAST_MUTEX`: raises to APC_LEVEL while held; not recursive.
pub struct FastMutex {
    count: AtomicI32,
    owner: AtomicU32,
    old_irql: AtomicU8,
    event: KEvent,
    pub contention: AtomicU32,
}

impl FastMutex {
    /// `ExInitializeFastMutex`.
    pub const fn new() -> Self {
        FastMutex {
            count: AtomicI32::new(1),
            owner: AtomicU32::new(0),
            old_irql: AtomicU8::new(0),
            event: KEvent::new(false, false),
            contention: AtomicU32::new(0),
        }
    }

    /// `ExAcquireFastMutex`.
    pub fn acquire(&self) {
        let old = ke_raise_irql(APC_LEVEL);
        if self.count.fetch_sub(1, Ordering::Acquire) != 1 {
            self.contention.fetch_add(1, Ordering::Relaxed);
            wait(&self.event);
        }
        self.owner
            .store(sched::current_thread_id(), Ordering::Relaxed);
        self.old_irql.store(old, Ordering::Relaxed);
    }

    /// `ExTryToAcquireFastMutex`.
    pub fn try_acquire(&self) -> bool {
        let old = ke_raise_irql(APC_LEVEL);
        if self
            .count
            .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.owner
                .store(sched::current_thread_id(), Ordering::Relaxed);
            self.old_irql.store(old, Ordering::Relaxed);
            true
        } else {
            ke_lower_irql(old);
            false
        }
    }

    /// `ExReleaseFastMutex`.
    pub fn release(&self) {
        let old = self.old_irql.load(Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        if self.count.fetch_add(1, Ordering::Release) != 0 {
            ke_set_event(&self.event, 1);
        }
        ke_lower_irql(old);
    }

    /// The owning thread id, 0 when free.
    pub fn owner(&self) -> u32 {
        self.owner.load(Ordering::Relaxed)
    }
}

impl Default for FastMutex {
    fn default() -> Self {
        Self::new()
    }
}

/// `KGUARDED_MUTEX`: like a fast mutex, but holds off all kernel APCs with a
/// guarded region instead of raising IRQL.
pub struct GuardedMutex {
    count: AtomicI32,
    owner: AtomicU32,
    event: KEvent,
}

impl GuardedMutex {
    /// `KeInitializeGuardedMutex`.
    pub const fn new() -> Self {
        GuardedMutex {
            count: AtomicI32::new(1),
            owner: AtomicU32::new(0),
            event: KEvent::new(false, false),
        }
    }

    /// `KeAcquireGuardedMutex`.
    pub fn acquire(&self) {
        ke::apc::ke_enter_guarded_region();
        if self.count.fetch_sub(1, Ordering::Acquire) != 1 {
            wait(&self.event);
        }
        self.owner
            .store(sched::current_thread_id(), Ordering::Relaxed);
    }

    /// `KeReleaseGuardedMutex`.
    pub fn release(&self) {
        self.owner.store(0, Ordering::Relaxed);
        if self.count.fetch_add(1, Ordering::Release) != 0 {
            ke_set_event(&self.event, 1);
        }
        ke::apc::ke_leave_guarded_region();
    }
}

impl Default for GuardedMutex {
    fn default() -> Self {
        Self::new()
    }
}

/// Resource state, under the resource's spin lock.
#[derive(Default)]
struct ResourceState {
    /// `ActiveCount`: owners (shared) or 1 (exclusive).
    active: u32,
    exclusive_owner: u32,
    exclusive_recursion: u32,
    /// (thread, recursion) of shared owners (`OwnerTable`).
    shared: Vec<(u32, u32)>,
    waiting_exclusive: u32,
    waiting_shared: u32,
    /// Grants handed to woken waiters before they run (direct hand-off).
    granted_exclusive: u32,
    granted_shared: u32,
    pub contention: u32,
}

/// `ERESOURCE`: shared/exclusive with NT's rules — a thread may re-acquire
/// what it owns; new shared requests wait behind waiting exclusive requests
/// (writers are not starved) unless the caller already owns the resource
/// shared or uses `acquire_shared_starve_exclusive`; on release, waiting
/// shared requests are granted before exclusive ones after an exclusive
/// owner leaves, and one exclusive request after the last shared owner leaves.
pub struct EResource {
    state: SpinLocked<ResourceState, DISPATCH_LEVEL>,
    exclusive_wait: KEvent,
    shared_wait: KSemaphore,
    name: &'static str,
}

static RESOURCES: SpinLocked<Vec<&'static EResource>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());

impl EResource {
    /// `ExInitializeResourceLite` (the name is for `!locks`).
    pub const fn new(name: &'static str) -> Self {
        EResource {
            state: SpinLocked::new(ResourceState {
                active: 0,
                exclusive_owner: 0,
                exclusive_recursion: 0,
                shared: Vec::new(),
                waiting_exclusive: 0,
                waiting_shared: 0,
                granted_exclusive: 0,
                granted_shared: 0,
                contention: 0,
            }),
            exclusive_wait: KEvent::new(false, false),
            shared_wait: KSemaphore::new(0, i32::MAX),
            name,
        }
    }

    /// Adds a static resource to the system list `!locks` walks (`ExpSystemResourcesList`).
    pub fn register(&'static self) {
        RESOURCES.with(|l| {
            if !l.iter().any(|r| core::ptr::eq(*r, self)) {
                l.push(self)
            }
        });
    }

    /// `ExAcquireResourceExclusiveLite` (Wait = TRUE).
    pub fn acquire_exclusive(&self) {
        let me = sched::current_thread_id();
        let must_wait = self.state.with(|s| {
            if s.active == 0 {
                s.active = 1;
                s.exclusive_owner = me;
                s.exclusive_recursion = 1;
                false
            } else if s.exclusive_owner == me {
                s.exclusive_recursion += 1;
                false
            } else {
                s.waiting_exclusive += 1;
                s.contention += 1;
                true
            }
        });
        if must_wait {
            loop {
                wait(&self.exclusive_wait);
                let got = self.state.with(|s| {
                    if s.granted_exclusive > 0 {
                        s.granted_exclusive -= 1;
                        s.exclusive_owner = me;
                        s.exclusive_recursion = 1;
                        true
                    } else {
                        false
                    }
                });
                if got {
                    break;
                }
            }
        }
    }

    fn acquire_shared_inner(&self, starve_exclusive: bool) {
        let me = sched::current_thread_id();
        let must_wait = self.state.with(|s| {
            if let Some(e) = s.shared.iter_mut().find(|e| e.0 == me) {
                e.1 += 1;
                return false;
            }
            if s.exclusive_owner == me {
                // An exclusive owner may acquire shared (recursively exclusive).
                s.exclusive_recursion += 1;
                return false;
            }
            let free_or_shared =
                s.active == 0 || (s.exclusive_owner == 0 && s.granted_exclusive == 0);
            if free_or_shared && (starve_exclusive || s.waiting_exclusive == 0) {
                s.active += 1;
                s.shared.push((me, 1));
                false
            } else {
                s.waiting_shared += 1;
                s.contention += 1;
                true
            }
        });
        if must_wait {
            loop {
                wait(&self.shared_wait);
                let got = self.state.with(|s| {
                    if s.granted_shared > 0 {
                        s.granted_shared -= 1;
                        s.shared.push((me, 1));
                        true
                    } else {
                        false
                    }
                });
                if got {
                    break;
                }
            }
        }
    }

    /// `ExAcquireResourceSharedLite`.
    pub fn acquire_shared(&self) {
        self.acquire_shared_inner(false)
    }

    /// `ExAcquireSharedStarveExclusive`: shared even with exclusive waiters.
    pub fn acquire_shared_starve_exclusive(&self) {
        self.acquire_shared_inner(true)
    }

    /// `ExReleaseResourceLite` (`ExReleaseResourceForThreadLite` for the caller).
    pub fn release(&self) {
        let me = sched::current_thread_id();
        let (wake_shared, wake_exclusive) = self.state.with(|s| {
            let was_exclusive = s.exclusive_owner == me;
            if s.exclusive_owner == me {
                s.exclusive_recursion -= 1;
                if s.exclusive_recursion > 0 {
                    return (0, false);
                }
                s.exclusive_owner = 0;
                s.active = 0;
            } else if let Some(i) = s.shared.iter().position(|e| e.0 == me) {
                s.shared[i].1 -= 1;
                if s.shared[i].1 > 0 {
                    return (0, false);
                }
                s.shared.swap_remove(i);
                s.active -= 1;
                if s.active > 0 {
                    return (0, false);
                }
            } else {
                crate::ke::bugcheck::ke_bug_check_ex(
                    nt::bugcheck::RESOURCE_NOT_OWNED,
                    self as *const _ as u64,
                    me as u64,
                    0,
                    0,
                );
            }
            // Free now: hand it to waiters. After an exclusive owner, every
            // waiting shared request goes first; after the last shared
            // owner, one waiting exclusive request.
            let shared_first = was_exclusive || s.waiting_exclusive == 0;
            if s.waiting_shared > 0 && shared_first {
                let n = s.waiting_shared;
                s.waiting_shared = 0;
                s.granted_shared += n;
                s.active = n;
                (n, false)
            } else if s.waiting_exclusive > 0 {
                s.waiting_exclusive -= 1;
                s.granted_exclusive += 1;
                s.active = 1;
                s.exclusive_owner = u32::MAX; // claimed by the woken waiter
                (0, true)
            } else {
                (0, false)
            }
        });
        if wake_shared > 0 {
            let _ = crate::ke::wait::ke_release_semaphore(&self.shared_wait, 1, wake_shared as i32);
        }
        if wake_exclusive {
            ke_set_event(&self.exclusive_wait, 1);
        }
    }

    /// `ExIsResourceAcquiredExclusiveLite`.
    pub fn is_acquired_exclusive(&self) -> bool {
        let me = sched::current_thread_id();
        self.state.with(|s| s.exclusive_owner == me)
    }

    /// `ExIsResourceAcquiredSharedLite`: the caller's recursion count.
    pub fn shared_count(&self) -> u32 {
        let me = sched::current_thread_id();
        self.state
            .with(|s| s.shared.iter().find(|e| e.0 == me).map_or(0, |e| e.1))
    }
}

/// `!locks`: every registered resource with its owners and waiters.
pub fn kd_locks() {
    let list: Vec<&'static EResource> = RESOURCES.with(|l| l.clone());
    crate::dbg_println!("**** DUMP OF ALL RESOURCE OBJECTS ****");
    for r in list {
        let (active, ex, shared, we, ws, cont) = r.state.with(|s| {
            (
                s.active,
                s.exclusive_owner,
                s.shared.clone(),
                s.waiting_exclusive,
                s.waiting_shared,
                s.contention,
            )
        });
        crate::dbg_println!(
            "Resource @ {:016x} ({})   {}  ActiveCnt = {}",
            r as *const EResource as u64,
            r.name,
            if ex != 0 {
                "Exclusively owned"
            } else if active > 0 {
                "Shared"
            } else {
                "Available"
            },
            active
        );
        crate::dbg_println!("    Contention Count = {cont}");
        crate::dbg_println!("    NumberOfExclusiveWaiters = {we}  NumberOfSharedWaiters = {ws}");
        if ex != 0 && ex != u32::MAX {
            crate::dbg_println!("     Threads: Cid {:04x}-01<*>", ex * 4);
        }
        for (t, n) in shared {
            crate::dbg_println!("     Threads: Cid {:04x}-{n:02}", t * 4);
        }
    }
}

/// `EX_PUSH_LOCK`: a pointer-sized reader/writer lock. Uncontended acquires
/// are one compare-exchange; contended ones wait on a dispatcher event.
/// State: bit 0 = exclusively held, bits 1.. = shared count × 2... stored as
/// `shared << 1 | exclusive`.
pub struct PushLock {
    state: AtomicU64,
    wake: KEvent,
    waiters: AtomicU32,
}

impl PushLock {
    /// `ExInitializePushLock`.
    pub const fn new() -> Self {
        PushLock {
            state: AtomicU64::new(0),
            wake: KEvent::new(true, false),
            waiters: AtomicU32::new(0),
        }
    }

    fn wait_for_change(&self, seen: u64) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        crate::ke::wait::ke_reset_event(&self.wake);
        if self.state.load(Ordering::SeqCst) == seen {
            ke_wait_for_single_object(
                &self.wake,
                WaitReason::Executive,
                false,
                false,
                Some(10_000),
            );
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// `ExAcquirePushLockExclusive`.
    pub fn acquire_exclusive(&self) {
        loop {
            match self
                .state
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => self.wait_for_change(seen),
            }
        }
    }

    /// `ExAcquirePushLockShared`.
    pub fn acquire_shared(&self) {
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & 1 == 0 {
                if self
                    .state
                    .compare_exchange(s, s + 2, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            self.wait_for_change(s);
        }
    }

    /// `ExReleasePushLockExclusive`.
    pub fn release_exclusive(&self) {
        self.state.store(0, Ordering::Release);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            ke_set_event(&self.wake, 1);
        }
    }

    /// `ExReleasePushLockShared`.
    pub fn release_shared(&self) {
        let prev = self.state.fetch_sub(2, Ordering::Release);
        if prev == 2 && self.waiters.load(Ordering::SeqCst) > 0 {
            ke_set_event(&self.wake, 1);
        }
    }
}

impl Default for PushLock {
    fn default() -> Self {
        Self::new()
    }
}

/// `EX_RUNDOWN_REF`: references that block rundown; once rundown starts no
/// new reference is granted, and the waiter resumes when the last one goes.
/// State: `count << 1 | rundown_active`.
pub struct RundownRef {
    state: AtomicU64,
    done: KEvent,
}

impl RundownRef {
    /// `ExInitializeRundownProtection`.
    pub const fn new() -> Self {
        RundownRef {
            state: AtomicU64::new(0),
            done: KEvent::new(true, false),
        }
    }

    /// `ExAcquireRundownProtection`: FALSE once rundown has begun.
    pub fn acquire(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & 1 != 0 {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(s, s + 2, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(v) => s = v,
            }
        }
    }

    /// `ExReleaseRundownProtection`.
    pub fn release(&self) {
        let prev = self.state.fetch_sub(2, Ordering::Release);
        if prev == 3 {
            ke_set_event(&self.done, 0);
        }
    }

    /// `ExWaitForRundownProtectionRelease`: blocks new references and waits
    /// for the outstanding ones.
    pub fn wait_for_release(&self) {
        let prev = self.state.fetch_or(1, Ordering::AcqRel);
        if prev >> 1 != 0 {
            wait(&self.done);
        }
    }

    /// `ExReInitializeRundownProtection`.
    pub fn reinitialize(&self) {
        crate::ke::wait::ke_reset_event(&self.done);
        self.state.store(0, Ordering::Release);
    }
}

impl Default for RundownRef {
    fn default() -> Self {
        Self::new()
    }
}
