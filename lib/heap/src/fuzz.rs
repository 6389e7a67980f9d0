//! The fuzz target's body (`fuzz/fuzz_targets/heap.rs`): bytes become a
//! sequence of heap calls, including frees of pointers that are not blocks
//! (interior, stale, unaligned, double). Valid calls must behave like the
//! model (sizes and contents kept); invalid ones must return
//! STATUS_HEAP_CORRUPTION, never crash the heap.
extern crate std;

use crate::host::HostVm;
use crate::*;
use std::vec::Vec;

fn fill(p: usize, n: usize, v: u8) {
    // SAFETY: `p` is a live block of at least `n` bytes.
    unsafe { ptr::write_bytes(p as *mut u8, v, n) };
}

fn holds(p: usize, n: usize, v: u8) -> bool {
    // SAFETY: as in `fill`.
    unsafe { core::slice::from_raw_parts(p as *const u8, n) }
        .iter()
        .all(|b| *b == v)
}

/// Runs one input; panics when the heap misbehaves.
pub fn fuzz_one(data: &[u8]) {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let flags = [HEAP_GROWABLE, 0, HEAP_GROWABLE | HEAP_NO_SERIALIZE][first as usize % 3];
    let vm = HostVm::default();
    let p = Heap::create(
        vm.clone(),
        flags,
        if flags == 0 { 0x40000 } else { 0 },
        0,
        7,
    )
    .unwrap();
    // SAFETY: just created; destroyed at the end, single-threaded.
    let h = unsafe { &*p };
    let mut live: Vec<(usize, usize, u8)> = Vec::new();
    let mut dead: Vec<usize> = Vec::new();
    for (k, op) in data.chunks_exact(4).enumerate() {
        let tag = k as u8;
        let size = match op[1] & 3 {
            0 => op[2] as usize,
            1 => (op[2] as usize) << 4,
            2 => u16::from_le_bytes([op[2], op[3]]) as usize,
            _ => VIRTUAL_MEMORY_THRESHOLD + op[2] as usize,
        };
        let pick = op[3] as usize;
        // SAFETY: single-threaded; blocks used within their sizes.
        unsafe {
            match op[0] % 6 {
                0 => match h.allocate(0, size) {
                    Ok(a) => {
                        fill(a, size, tag);
                        dead.retain(|d| *d != a);
                        live.push((a, size, tag));
                    }
                    Err(s) => assert_eq!(s, STATUS_NO_MEMORY),
                },
                1 if !live.is_empty() => {
                    let (a, _, _) = live.swap_remove(pick % live.len());
                    h.free(0, a).unwrap();
                    dead.push(a);
                }
                2 if !live.is_empty() => {
                    let k = pick % live.len();
                    let (a, n, t) = live[k];
                    let f = if op[1] & 4 != 0 {
                        HEAP_REALLOC_IN_PLACE_ONLY
                    } else {
                        0
                    };
                    match h.reallocate(f, a, size) {
                        Ok(b) => {
                            assert!(holds(b, n.min(size), t));
                            fill(b, size, t);
                            if b != a {
                                dead.push(a);
                            }
                            dead.retain(|d| *d != b);
                            live[k] = (b, size, t);
                        }
                        Err(s) => {
                            assert_eq!(s, STATUS_NO_MEMORY);
                            assert!(holds(a, n, t));
                        }
                    }
                }
                3 if !dead.is_empty() => {
                    let d = dead[pick % dead.len()];
                    if live.iter().all(|l| l.0 != d) {
                        assert_eq!(h.free(0, d), Err(STATUS_HEAP_CORRUPTION));
                    }
                }
                4 if !live.is_empty() => {
                    let (a, n, _) = live[pick % live.len()];
                    let off = 1 + (op[2] as usize % n.max(1));
                    let q = a + off;
                    if live.iter().all(|l| l.0 != q) {
                        assert_eq!(h.free(0, q), Err(STATUS_HEAP_CORRUPTION));
                        assert_eq!(h.size(0, q), Err(STATUS_HEAP_CORRUPTION));
                    }
                }
                5 => {
                    let mut prev = 0;
                    let mut busy = 0;
                    while let Ok(e) = h.walk(prev) {
                        if matches!(e, WalkEntry::Block { busy: true, .. }) {
                            busy += 1;
                        }
                        prev = e.data_address();
                    }
                    assert_eq!(busy, live.len());
                }
                _ => {}
            }
        }
        for &(a, n, t) in &live {
            // SAFETY: single-threaded.
            assert_eq!(unsafe { h.size(0, a) }, Ok(n));
            assert!(holds(a, n, t));
        }
    }
    for (a, _, _) in live {
        // SAFETY: single-threaded.
        unsafe { h.free(0, a).unwrap() };
    }
    // SAFETY: not used afterwards.
    unsafe { Heap::destroy(p).unwrap() };
    assert_eq!(vm.reservations(), 0);
}
