use super::host::HostVm;
use super::*;
use proptest::prelude::*;
use std::vec::Vec;

fn new_heap(
    flags: u32,
    reserve: usize,
    commit: usize,
) -> (HostVm, &'static Heap<HostVm>, *mut Heap<HostVm>) {
    let vm = HostVm::default();
    let p = Heap::create(vm.clone(), flags, reserve, commit, 0x1234_5678).unwrap();
    // SAFETY: just created; the tests destroy it last.
    (vm, unsafe { &*p }, p)
}

fn fill(p: usize, n: usize, v: u8) {
    // SAFETY: `p` is a busy block of at least `n` bytes.
    unsafe { ptr::write_bytes(p as *mut u8, v, n) };
}

fn check(p: usize, n: usize, v: u8) -> bool {
    // SAFETY: as in `fill`.
    unsafe { std::slice::from_raw_parts(p as *const u8, n) }
        .iter()
        .all(|b| *b == v)
}

fn walk_all(h: &Heap<HostVm>) -> Vec<WalkEntry> {
    let mut v = Vec::new();
    let mut prev = 0;
    loop {
        // SAFETY: single-threaded.
        match unsafe { h.walk(prev) } {
            Ok(e) => {
                prev = e.data_address();
                v.push(e);
            }
            Err(s) => {
                assert_eq!(s, STATUS_NO_MORE_ENTRIES);
                return v;
            }
        }
    }
}

#[test]
fn create_sizes_follow_the_documented_table() {
    let (vm, _, p) = new_heap(HEAP_GROWABLE, 0, 0);
    assert_eq!(vm.committed(), PAGE);
    // SAFETY: not used afterwards.
    unsafe { Heap::destroy(p).unwrap() };
    assert_eq!(vm.reservations(), 0);
    let (vm, h, p) = new_heap(0, 0x20000, 0x40000);
    assert_eq!(vm.committed(), 0x20000);
    assert_eq!(
        walk_all(h).len(),
        2,
        "segment + one free block, all committed"
    );
    // SAFETY: not used afterwards.
    unsafe { Heap::destroy(p).unwrap() };
}

#[test]
fn allocate_free_size_and_zero_memory() {
    let (vm, h, p) = new_heap(HEAP_GROWABLE, 0, 0);
    // SAFETY: single-threaded throughout.
    unsafe {
        let a = h.allocate(0, 100).unwrap();
        assert_eq!(a % 16, 0);
        assert_eq!(h.size(0, a).unwrap(), 100);
        fill(a, 100, 0xAB);
        let b = h.allocate(HEAP_ZERO_MEMORY, 5000).unwrap();
        assert!(check(b, 5000, 0));
        assert!(check(a, 100, 0xAB));
        h.free(0, a).unwrap();
        h.free(0, b).unwrap();
        let z = h.allocate(0, 0).unwrap();
        assert_eq!(h.size(0, z).unwrap(), 0);
        h.free(0, z).unwrap();
        assert!(walk_all(h)
            .iter()
            .all(|e| !matches!(e, WalkEntry::Block { busy: true, .. })));
        Heap::destroy(p).unwrap();
    }
    assert_eq!(vm.reservations(), 0);
}

#[test]
fn double_free_and_overwritten_header_are_heap_corruption() {
    let (_vm, h, p) = new_heap(HEAP_GROWABLE, 0, 0);
    // SAFETY: single-threaded; the overwrite targets the heap's own memory.
    unsafe {
        let a = h.allocate(0, 64).unwrap();
        let b = h.allocate(0, 64).unwrap();
        let c = h.allocate(0, 64).unwrap();
        h.free(0, b).unwrap();
        assert_eq!(h.free(0, b), Err(STATUS_HEAP_CORRUPTION));
        // b merged into nothing; a's free merges with b's block: both stale.
        h.free(0, a).unwrap();
        assert_eq!(h.free(0, b), Err(STATUS_HEAP_CORRUPTION));
        assert_eq!(h.free(0, a), Err(STATUS_HEAP_CORRUPTION));
        // An overflow from the block before c into c's header.
        // A block that merged into its free predecessor.
        let d = h.allocate(0, 64).unwrap();
        let e = h.allocate(0, 64).unwrap();
        let _f = h.allocate(0, 64).unwrap();
        h.free(0, d).unwrap();
        h.free(0, e).unwrap();
        assert_eq!(h.free(0, e), Err(STATUS_HEAP_CORRUPTION));
        ptr::write_bytes((c - 8) as *mut u8, 0x41, 8);
        assert_eq!(h.free(0, c), Err(STATUS_HEAP_CORRUPTION));
        assert_eq!(h.size(0, c), Err(STATUS_HEAP_CORRUPTION));
        // Pointers that were never blocks.
        assert_eq!(h.free(0, c + 16), Err(STATUS_HEAP_CORRUPTION));
        assert_eq!(h.free(0, 0x1000), Err(STATUS_HEAP_CORRUPTION));
        assert_eq!(h.free(0, c + 3), Err(STATUS_HEAP_CORRUPTION));
        Heap::destroy(p).unwrap();
    }
}

#[test]
fn front_end_serves_hot_sizes_and_detects_its_double_free() {
    let (_vm, h, p) = new_heap(HEAP_GROWABLE, 0, 0);
    // SAFETY: single-threaded.
    unsafe {
        let v: Vec<usize> = (0..100).map(|_| h.allocate(0, 40).unwrap()).collect();
        let lfh = v[LFH_ACTIVATION as usize + 1];
        let e = walk_all(h);
        assert!(e.contains(&WalkEntry::Block {
            data: lfh,
            size: 40,
            overhead: 16 + 8,
            index: 0,
            busy: true,
            large: false,
            lfh: true
        }));
        h.free(0, lfh).unwrap();
        assert_eq!(h.free(0, lfh), Err(STATUS_HEAP_CORRUPTION));
        for &a in &v {
            if a != lfh {
                h.free(0, a).unwrap();
            }
        }
        // Empty subsegments went back: only free back-end blocks remain.
        assert!(walk_all(h)
            .iter()
            .all(|e| !matches!(e, WalkEntry::Block { busy: true, .. })));
        Heap::destroy(p).unwrap();
    }
}

#[test]
fn large_blocks_get_their_own_reservation() {
    let (vm, h, p) = new_heap(HEAP_GROWABLE, 0, 0);
    // SAFETY: single-threaded.
    unsafe {
        let a = h.allocate(HEAP_ZERO_MEMORY, 2 << 20).unwrap();
        assert_eq!(vm.reservations(), 2);
        assert_eq!(h.size(0, a).unwrap(), 2 << 20);
        assert!(check(a, 2 << 20, 0));
        let b = h.reallocate(0, a, (2 << 20) - 100).unwrap();
        assert_eq!(a, b);
        assert_eq!(h.size(0, b).unwrap(), (2 << 20) - 100);
        h.free(0, b).unwrap();
        assert_eq!(h.free(0, b), Err(STATUS_HEAP_CORRUPTION));
        assert_eq!(vm.reservations(), 1);
        Heap::destroy(p).unwrap();
    }
    let (_vm, h, p) = new_heap(0, 0x100000, 0);
    // SAFETY: single-threaded.
    unsafe {
        assert_eq!(h.allocate(0, 2 << 20), Err(STATUS_NO_MEMORY));
        Heap::destroy(p).unwrap();
    }
}

#[test]
fn fixed_heap_runs_out_and_growable_heap_adds_segments() {
    let (_vm, h, p) = new_heap(0, 0x10000, 0);
    // SAFETY: single-threaded.
    unsafe {
        let mut n = 0;
        while h.allocate(0, 1000).is_ok() {
            n += 1;
        }
        assert!(n > 50 && n < 66, "{n}");
        Heap::destroy(p).unwrap();
    }
    let (vm, h, p) = new_heap(HEAP_GROWABLE, 0x10000, 0);
    // SAFETY: single-threaded.
    unsafe {
        let v: Vec<usize> = (0..200).map(|_| h.allocate(0, 4000).unwrap()).collect();
        assert!(vm.reservations() > 1);
        let segs = walk_all(h)
            .iter()
            .filter(|e| matches!(e, WalkEntry::Segment { .. }))
            .count();
        assert_eq!(segs, vm.reservations());
        for a in v {
            h.free(0, a).unwrap();
        }
        Heap::destroy(p).unwrap();
    }
    assert_eq!(vm.reservations(), 0);
}

#[test]
fn free_tail_is_decommitted() {
    let (vm, h, p) = new_heap(HEAP_GROWABLE, 0x100000, 0);
    // SAFETY: single-threaded.
    unsafe {
        let a = h.allocate(0, 0x80000).unwrap();
        assert!(vm.committed() > 0x80000);
        h.free(0, a).unwrap();
        assert!(vm.committed() <= 2 * PAGE, "{:#x}", vm.committed());
        let b = h.allocate(0, 0x30000).unwrap();
        fill(b, 0x30000, 1);
        h.free(0, b).unwrap();
        Heap::destroy(p).unwrap();
    }
}

#[test]
fn realloc_in_place_only_and_zeroing() {
    let (_vm, h, p) = new_heap(HEAP_GROWABLE | HEAP_NO_SERIALIZE, 0, 0);
    // SAFETY: single-threaded.
    unsafe {
        let a = h.allocate(0, 100).unwrap();
        fill(a, 100, 7);
        let _guard = h.allocate(0, 100).unwrap();
        assert_eq!(
            h.reallocate(HEAP_REALLOC_IN_PLACE_ONLY, a, 1000),
            Err(STATUS_NO_MEMORY)
        );
        assert_eq!(h.size(0, a).unwrap(), 100);
        let s = h.reallocate(HEAP_REALLOC_IN_PLACE_ONLY, a, 20).unwrap();
        assert_eq!(s, a);
        assert_eq!(h.size(0, a).unwrap(), 20);
        let b = h.reallocate(HEAP_ZERO_MEMORY, a, 3000).unwrap();
        assert_ne!(b, a);
        assert!(check(b, 20, 7));
        assert!(check(b + 20, 2980, 0));
        assert_eq!(h.free(0, a), Err(STATUS_HEAP_CORRUPTION));
        Heap::destroy(p).unwrap();
    }
}

#[test]
fn lock_is_recursive_and_unlock_checks_the_owner() {
    let (_vm, h, p) = new_heap(HEAP_GROWABLE, 0, 0);
    h.lock();
    // SAFETY: single-threaded.
    unsafe {
        let a = h.allocate(0, 10).unwrap();
        h.free(0, a).unwrap();
    }
    h.unlock().unwrap();
    assert_eq!(h.unlock(), Err(STATUS_RESOURCE_NOT_OWNED));
    // SAFETY: not used afterwards.
    unsafe { Heap::destroy(p).unwrap() };
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize, bool),
    Free(usize),
    Realloc(usize, usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        0usize..64,
        0usize..600,
        0usize..20000,
        Just(VIRTUAL_MEMORY_THRESHOLD)
    ];
    prop_oneof![
        4 => (size.clone(), any::<bool>()).prop_map(|(s, z)| Op::Alloc(s, z)),
        3 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), size, any::<bool>()).prop_map(|(i, s, p)| Op::Realloc(i, s, p)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// The heap against a model: live blocks keep their size and contents
    /// (a per-block byte pattern), never overlap, and the walk lists
    /// exactly the live blocks as busy.
    #[test]
    fn heap_matches_model(ops in proptest::collection::vec(op(), 1..200), fixed in any::<bool>()) {
        let flags = if fixed { 0 } else { HEAP_GROWABLE };
        let (vm, h, p) = new_heap(flags, if fixed { 0x40000 } else { 0 }, 0);
        let mut live: Vec<(usize, usize, u8)> = Vec::new();
        let mut tag = 0u8;
        for op in ops {
            tag = tag.wrapping_add(1);
            // SAFETY: single-threaded; blocks are used within their size.
            unsafe {
                match op {
                    Op::Alloc(n, zero) => match h.allocate(if zero { HEAP_ZERO_MEMORY } else { 0 }, n) {
                        Ok(a) => {
                            if zero { prop_assert!(check(a, n, 0)); }
                            fill(a, n, tag);
                            live.push((a, n, tag));
                        }
                        Err(s) => prop_assert_eq!(s, STATUS_NO_MEMORY),
                    },
                    Op::Free(i) if !live.is_empty() => {
                        let (a, _, _) = live.swap_remove(i % live.len());
                        h.free(0, a).unwrap();
                        prop_assert_eq!(h.free(0, a), Err(STATUS_HEAP_CORRUPTION));
                    }
                    Op::Realloc(i, n, in_place) if !live.is_empty() => {
                        let k = i % live.len();
                        let (a, old, t) = live[k];
                        let f = if in_place { HEAP_REALLOC_IN_PLACE_ONLY } else { 0 };
                        match h.reallocate(f, a, n) {
                            Ok(b) => {
                                if in_place { prop_assert_eq!(a, b); }
                                prop_assert!(check(b, old.min(n), t));
                                fill(b, n, t);
                                live[k] = (b, n, t);
                            }
                            Err(s) => {
                                prop_assert_eq!(s, STATUS_NO_MEMORY);
                                prop_assert!(check(a, old, t));
                            }
                        }
                    }
                    _ => {}
                }
                for &(a, n, t) in &live {
                    prop_assert_eq!(h.size(0, a).unwrap(), n);
                    prop_assert!(check(a, n, t), "block {:#x} lost its contents", a);
                }
            }
            let mut sorted = live.clone();
            sorted.sort();
            for w in sorted.windows(2) {
                prop_assert!(w[0].0 + w[0].1 <= w[1].0, "overlap");
            }
        }
        let mut busy: Vec<(usize, usize)> = walk_all(h)
            .iter()
            .filter_map(|e| match *e {
                WalkEntry::Block { data, size, busy: true, .. } => Some((data, size)),
                _ => None,
            })
            .collect();
        busy.sort();
        let mut want: Vec<(usize, usize)> = live.iter().map(|l| (l.0, l.1)).collect();
        want.sort();
        prop_assert_eq!(busy, want);
        for (a, _, _) in live {
            // SAFETY: single-threaded.
            unsafe { h.free(0, a).unwrap() };
        }
        // SAFETY: not used afterwards.
        unsafe { Heap::destroy(p).unwrap() };
        prop_assert_eq!(vm.reservations(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// The fuzz target's body on random inputs (bad frees included).
    #[test]
    fn fuzz_body_holds(data in proptest::collection::vec(any::<u8>(), 0..800)) {
        super::fuzz::fuzz_one(&data);
    }
}
