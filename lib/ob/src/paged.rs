//! A grow-only three-level array readable without a lock, the shape of NT's
//! handle table (*Windows Internals*, Part 2, ch. 8, "Object handles and the
//! process handle table"): low-level pages of `LOW` elements, a mid level
//! and a top level of 512 page pointers each. Pages are allocated on first
//! use with a compare-and-swap (two processors racing for the same page
//! keep one and free the other) and stay until the array is dropped, so a
//! reader holding `&T` never sees its element move or disappear. Lookup is
//! three acquire loads.

use alloc::boxed::Box;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use once_cell::race::OnceBox;

/// Page pointers in a mid- or top-level page (4096 / 8).
pub const FANOUT: usize = 512;

type Low<T, const LOW: usize> = [T; LOW];
type Mid<T, const LOW: usize> = [OnceBox<Low<T, LOW>>; FANOUT];
type Top<T, const LOW: usize> = [OnceBox<Mid<T, LOW>>; FANOUT];

/// A lock-free, grow-only array of `LOW * 512 * 512` elements.
pub struct PagedArray<T, const LOW: usize> {
    top: OnceBox<Top<T, LOW>>,
}

impl<T: Default + Send + Sync, const LOW: usize> Default for PagedArray<T, LOW> {
    fn default() -> Self {
        Self::new()
    }
}

/// A boxed array of `N` elements built on the heap (no large stack
/// temporary), or STATUS_INSUFFICIENT_RESOURCES when memory is short.
fn boxed_array<E, const N: usize>(f: impl Fn() -> E) -> Result<Box<[E; N]>, NtStatus> {
    let mut v: Vec<E> = Vec::new();
    v.try_reserve_exact(N)
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    v.extend((0..N).map(|_| f()));
    v.into_boxed_slice()
        .try_into()
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)
}

impl<T: Default + Send + Sync, const LOW: usize> PagedArray<T, LOW> {
    /// Number of elements the array can hold.
    pub const CAPACITY: usize = LOW * FANOUT * FANOUT;

    /// An empty array (no pages yet).
    pub const fn new() -> Self {
        PagedArray {
            top: OnceBox::new(),
        }
    }

    #[inline]
    fn split(i: usize) -> (usize, usize, usize) {
        (i / (LOW * FANOUT), (i / LOW) % FANOUT, i % LOW)
    }

    /// The element at `i`, if its page exists.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= Self::CAPACITY {
            return None;
        }
        let (t, m, l) = Self::split(i);
        Some(&self.top.get()?[t].get()?[m].get()?[l])
    }

    /// The element at `i`, allocating its pages if needed.
    /// STATUS_INSUFFICIENT_RESOURCES beyond the capacity or without memory.
    pub fn get_or_alloc(&self, i: usize) -> Result<&T, NtStatus> {
        if i >= Self::CAPACITY {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let (t, m, l) = Self::split(i);
        let top = self
            .top
            .get_or_try_init(|| boxed_array::<_, FANOUT>(OnceBox::new))?;
        let mid = top[t].get_or_try_init(|| boxed_array::<_, FANOUT>(OnceBox::new))?;
        let low = mid[m].get_or_try_init(|| boxed_array::<_, LOW>(T::default))?;
        Ok(&low[l])
    }

    /// Low-level pages allocated so far.
    pub fn pages(&self) -> usize {
        let Some(top) = self.top.get() else {
            return 0;
        };
        top.iter()
            .filter_map(|m| m.get())
            .map(|mid| mid.iter().filter(|l| l.get().is_some()).count())
            .sum()
    }

    /// The index of the element at address `addr` (kd maps an address it
    /// was given back to an element this way), if `addr` is the start of
    /// one of this array's elements.
    pub fn index_of_address(&self, addr: usize) -> Option<usize> {
        let size = core::mem::size_of::<T>().max(1);
        let top = self.top.get()?;
        for (t, mid) in top.iter().enumerate() {
            let Some(mid) = mid.get() else { continue };
            for (m, low) in mid.iter().enumerate() {
                let Some(low) = low.get() else { continue };
                let base = low.as_ptr() as usize;
                if addr >= base && addr < base + LOW * size && (addr - base).is_multiple_of(size) {
                    return Some((t * FANOUT + m) * LOW + (addr - base) / size);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn pages_come_on_first_use_and_stay() {
        let a: PagedArray<AtomicU64, 256> = PagedArray::new();
        assert!(a.get(0).is_none());
        assert_eq!(a.pages(), 0);
        a.get_or_alloc(5).unwrap().store(7, Ordering::Relaxed);
        assert_eq!(a.get(5).unwrap().load(Ordering::Relaxed), 7);
        assert_eq!(a.get(255).unwrap().load(Ordering::Relaxed), 0);
        assert!(a.get(256).is_none());
        assert_eq!(a.pages(), 1);
        let far = 256 * 512 + 3;
        a.get_or_alloc(far).unwrap().store(9, Ordering::Relaxed);
        assert_eq!(a.get(far).unwrap().load(Ordering::Relaxed), 9);
        assert_eq!(a.pages(), 2);
        let p = a.get(5).unwrap() as *const _ as usize;
        assert_eq!(a.index_of_address(p), Some(5));
        assert_eq!(a.index_of_address(p + 1), None);
        let q = a.get(far).unwrap() as *const _ as usize;
        assert_eq!(a.index_of_address(q), Some(far));
        assert_eq!(
            a.get_or_alloc(PagedArray::<AtomicU64, 256>::CAPACITY).err(),
            Some(STATUS_INSUFFICIENT_RESOURCES)
        );
    }

    #[test]
    fn racing_allocations_keep_one_page() {
        extern crate std;
        use std::sync::Arc;
        let a: Arc<PagedArray<AtomicU64, 64>> = Arc::new(PagedArray::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let a = Arc::clone(&a);
                std::thread::spawn(move || {
                    for i in 0..4096usize {
                        a.get_or_alloc(i).unwrap().fetch_add(1, Ordering::Relaxed);
                    }
                    t
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every increment landed in the one page that won.
        for i in 0..4096 {
            assert_eq!(a.get(i).unwrap().load(Ordering::Relaxed), 8);
        }
        assert_eq!(a.pages(), 4096 / 64);
    }
}
