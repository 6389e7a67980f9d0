//! A host "virtual memory" for tests and the fuzz target: reservations
//! from the host allocator, commit state per page; decommitted pages are
//! poisoned (0xCC) so a heap that reads them shows it.
extern crate std;

use crate::{VirtualMemory, PAGE};
use core::ptr;
use nt::status::{NtStatus, STATUS_NO_MEMORY};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::vec::Vec;

/// Host "virtual memory": reservations from the host allocator, commit
/// state per page; decommitted pages are poisoned so reading them shows.
#[derive(Clone, Default)]
pub struct HostVm(Rc<RefCell<Reservations>>);

/// Base -> (size, committed pages).
type Reservations = BTreeMap<usize, (usize, Vec<bool>)>;

impl HostVm {
    /// Live reservations.
    pub fn reservations(&self) -> usize {
        self.0.borrow().len()
    }
    /// Committed bytes.
    pub fn committed(&self) -> usize {
        self.0
            .borrow()
            .values()
            .map(|(_, p)| p.iter().filter(|c| **c).count() * PAGE)
            .sum()
    }
    fn set(&self, address: usize, size: usize, on: bool) -> Result<(), NtStatus> {
        assert_eq!(address % PAGE, 0, "unaligned commit change");
        assert_eq!(size % PAGE, 0, "partial page");
        let mut m = self.0.borrow_mut();
        let (&base, (len, pages)) = m.range_mut(..=address).next_back().expect("no reservation");
        assert!(address + size <= base + *len, "outside the reservation");
        pages[(address - base) / PAGE..(address - base + size) / PAGE].fill(on);
        if !on {
            // SAFETY: inside a live host allocation.
            unsafe { ptr::write_bytes(address as *mut u8, 0xCC, size) };
        }
        Ok(())
    }
}

// SAFETY: reservations are fresh host allocations used by nothing else.
unsafe impl VirtualMemory for HostVm {
    fn reserve(&self, size: usize) -> Result<usize, NtStatus> {
        assert_eq!(size % 0x10000, 0);
        if size > 1 << 30 {
            return Err(STATUS_NO_MEMORY);
        }
        // SAFETY: non-zero size, valid alignment.
        let p = unsafe { alloc_zeroed(Layout::from_size_align(size, 0x10000).unwrap()) } as usize;
        assert_ne!(p, 0);
        self.0
            .borrow_mut()
            .insert(p, (size, std::vec![false; size / PAGE]));
        Ok(p)
    }
    fn commit(&self, address: usize, size: usize) -> Result<(), NtStatus> {
        self.set(address, size, true)
    }
    fn decommit(&self, address: usize, size: usize) -> Result<(), NtStatus> {
        self.set(address, size, false)
    }
    fn release(&self, address: usize) -> Result<(), NtStatus> {
        let (size, _) = self
            .0
            .borrow_mut()
            .remove(&address)
            .expect("not a reservation base");
        // SAFETY: allocated in `reserve` with this layout.
        unsafe {
            dealloc(
                address as *mut u8,
                Layout::from_size_align(size, 0x10000).unwrap(),
            )
        };
        Ok(())
    }
    fn current_thread(&self) -> usize {
        1
    }
    fn yield_processor(&self) {
        panic!("single-threaded test contended for the heap lock");
    }
}
