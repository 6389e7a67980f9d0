//! Remove locks (`IoInitializeRemoveLock`, `IoAcquireRemoveLock`,
//! `IoReleaseRemoveLock`, `IoReleaseRemoveLockAndWait`; MS docs "Using
//! Remove Locks"): a count of the operations in progress on a device, so a
//! driver handling `IRP_MN_REMOVE_DEVICE` waits for them before it detaches
//! and deletes its device. The count starts at 1 (the lock's own bias);
//! once the remove has begun, acquiring fails with STATUS_DELETE_PENDING.
//! The kernel keeps the count in the driver's `IO_REMOVE_LOCK` and signals
//! its `RemoveEvent` when these routines say so.

use core::sync::atomic::{AtomicI32, AtomicU8, Ordering};

/// What `IoAcquireRemoveLock` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// The lock is held (STATUS_SUCCESS).
    Acquired,
    /// The remove has begun (STATUS_DELETE_PENDING); `signal`: this was the
    /// last count, set the remove event.
    DeletePending { signal: bool },
}

/// `IoInitializeRemoveLock`'s counter state.
pub fn initialize(removed: &AtomicU8, count: &AtomicI32) {
    removed.store(0, Ordering::Release);
    count.store(1, Ordering::Release);
}

/// `IoAcquireRemoveLock`.
pub fn acquire(removed: &AtomicU8, count: &AtomicI32) -> Acquire {
    count.fetch_add(1, Ordering::AcqRel);
    if removed.load(Ordering::Acquire) == 0 {
        return Acquire::Acquired;
    }
    Acquire::DeletePending {
        signal: count.fetch_sub(1, Ordering::AcqRel) == 1,
    }
}

/// `IoReleaseRemoveLock`: whether this was the last count (set the event).
pub fn release(count: &AtomicI32) -> bool {
    count.fetch_sub(1, Ordering::AcqRel) == 1
}

/// `IoReleaseRemoveLockAndWait`, called holding one acquisition: marks the
/// lock removed, drops the caller's count and the bias; whether the caller
/// must wait for the event (other holders remain).
pub fn release_and_wait(removed: &AtomicU8, count: &AtomicI32) -> bool {
    removed.store(1, Ordering::Release);
    count.fetch_sub(1, Ordering::AcqRel);
    count.fetch_sub(1, Ordering::AcqRel) != 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_release_then_remove_without_waiting() {
        let (r, c) = (AtomicU8::new(9), AtomicI32::new(9));
        initialize(&r, &c);
        assert_eq!(acquire(&r, &c), Acquire::Acquired);
        assert_eq!(acquire(&r, &c), Acquire::Acquired);
        assert!(!release(&c));
        // The remove handler holds one acquisition.
        assert!(!release_and_wait(&r, &c));
        assert_eq!(c.load(Ordering::SeqCst), 0);
        assert_eq!(acquire(&r, &c), Acquire::DeletePending { signal: true });
        assert_eq!(c.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn remove_waits_for_the_last_holder() {
        let (r, c) = (AtomicU8::new(0), AtomicI32::new(0));
        initialize(&r, &c);
        assert_eq!(acquire(&r, &c), Acquire::Acquired); // an I/O in flight
        assert_eq!(acquire(&r, &c), Acquire::Acquired); // the remove IRP
        assert!(release_and_wait(&r, &c));
        // New requests are refused meanwhile, without signalling.
        assert_eq!(acquire(&r, &c), Acquire::DeletePending { signal: false });
        // The in-flight I/O ends: the waiter is released.
        assert!(release(&c));
    }
}
