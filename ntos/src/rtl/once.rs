//! A value set once in phase 0 and read lock-free afterwards, at any IRQL
//! (registrations from the executive to the kernel, HAL facts).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

/// A write-once cell of a `Copy` value.
pub struct Once<T: Copy> {
    state: AtomicU8,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: `value` is written only by the one caller that moved `state` from
// EMPTY to WRITING, and read only after `state` is READY (Release/Acquire),
// after which it never changes.
unsafe impl<T: Copy + Send> Sync for Once<T> {}

impl<T: Copy> Once<T> {
    pub const fn new() -> Self {
        Once {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(None),
        }
    }

    /// Sets the value; `false` if it was set already (the first value stays).
    pub fn set(&self, v: T) -> bool {
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: this caller won EMPTY -> WRITING, so it is the only writer
        // and no reader looks before READY is published below.
        unsafe { *self.value.get() = Some(v) };
        self.state.store(READY, Ordering::Release);
        true
    }

    /// The value, once set.
    pub fn get(&self) -> Option<T> {
        if self.state.load(Ordering::Acquire) != READY {
            return None;
        }
        // SAFETY: READY was published after the only write; it never changes again.
        unsafe { *self.value.get() }
    }
}

impl<T: Copy> Default for Once<T> {
    fn default() -> Self {
        Self::new()
    }
}
