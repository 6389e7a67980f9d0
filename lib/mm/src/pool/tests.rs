use super::*;
use alloc::vec;
use proptest::prelude::*;

/// Host pool memory: a byte arena of `pages` pages at `base`.
struct Arena {
    base: u64,
    bytes: Vec<u8>,
    used: Vec<bool>,
}

impl Arena {
    fn new(base: u64, pages: usize) -> Self {
        Arena {
            base,
            bytes: vec![0xCC; pages * PAGE_SIZE as usize],
            used: vec![false; pages],
        }
    }
    fn off(&self, va: u64) -> usize {
        (va - self.base) as usize
    }
    fn pages_in_use(&self) -> usize {
        self.used.iter().filter(|&&u| u).count()
    }
}

impl PoolMemory for Arena {
    fn allocate_pages(&mut self, pages: u64) -> Option<u64> {
        let n = pages as usize;
        let start = (0..=self.used.len().checked_sub(n)?)
            .find(|&i| self.used[i..i + n].iter().all(|u| !u))?;
        for u in &mut self.used[start..start + n] {
            *u = true;
        }
        // Fresh pages contain garbage, like recycled physical memory.
        let o = start * PAGE_SIZE as usize;
        self.bytes[o..o + n * PAGE_SIZE as usize].fill(0xCC);
        Some(self.base + (start as u64) * PAGE_SIZE)
    }
    fn free_pages(&mut self, va: u64, pages: u64) {
        let i = self.off(va) / PAGE_SIZE as usize;
        for u in &mut self.used[i..i + pages as usize] {
            assert!(*u, "freeing a free page");
            *u = false;
        }
    }
    fn read(&self, va: u64, buf: &mut [u8]) {
        let o = self.off(va);
        buf.copy_from_slice(&self.bytes[o..o + buf.len()]);
    }
    fn write(&mut self, va: u64, data: &[u8]) {
        let o = self.off(va);
        self.bytes[o..o + data.len()].copy_from_slice(data);
    }
    fn fill(&mut self, va: u64, len: u64, byte: u8) {
        let o = self.off(va);
        self.bytes[o..o + len as usize].fill(byte);
    }
}

const BASE: u64 = 0xFFFF_A000_0000_0000;
const TAG: u32 = u32::from_le_bytes(*b"Test");
const TAG2: u32 = u32::from_le_bytes(*b"Othr");

fn bugcheck(e: Result<(), PoolError>) -> (u32, [u64; 4]) {
    match e {
        Err(PoolError::BugCheck(b)) => (b.code, b.parameters),
        other => panic!("expected a bug check, got {other:?}"),
    }
}

#[test]
fn small_allocations_zeroed_tagged_and_reused() {
    let mut mem = Arena::new(BASE, 16);
    let mut pool = Pool::new(PoolType::NonPaged);
    let a = pool.allocate(&mut mem, 100, TAG, true).unwrap();
    assert_eq!(a % 16, 0);
    let mut buf = [0xFFu8; 100];
    mem.read(a, &mut buf);
    assert!(buf.iter().all(|&b| b == 0));
    let b = pool.allocate(&mut mem, 100, TAG, false).unwrap();
    let mut buf = [0u8; 100];
    mem.read(b, &mut buf);
    // Not zeroed: the old contents stay (the first 16 bytes held the free
    // block's list links).
    assert!(
        buf[16..].iter().all(|&b| b == 0xCC),
        "uninitialized memory is not zeroed"
    );
    assert_eq!(
        pool.usage(TAG),
        TagUsage {
            allocs: 2,
            frees: 0,
            bytes: 256
        }
    );
    assert!(pool
        .format_pool_used()
        .contains(" Test          2          0        256"));
    // Usage counts whole blocks: 100 bytes + header = 8 units = 128 bytes.
    assert_eq!(pool.query(&mem, a), Some((TAG, 128)));
    pool.verify(&mem).unwrap();
    pool.free(&mut mem, a, TAG).unwrap();
    // Lookaside: the same block comes back for the same size.
    let c = pool.allocate(&mut mem, 110, TAG2, true).unwrap();
    assert_eq!(c, a);
    assert_eq!(
        pool.usage(TAG),
        TagUsage {
            allocs: 2,
            frees: 1,
            bytes: 128
        }
    );
    pool.free(&mut mem, b, 0).unwrap();
    pool.free(&mut mem, c, TAG2).unwrap();
    pool.flush_lookaside(&mut mem).unwrap();
    pool.verify(&mem).unwrap();
    assert_eq!(mem.pages_in_use(), 0, "empty page returned");
    assert_eq!(pool.stats().pages, 0);
}

#[test]
fn big_pages() {
    let mut mem = Arena::new(BASE, 16);
    let mut pool = Pool::new(PoolType::Paged);
    let a = pool.allocate(&mut mem, 0x2001, TAG, true).unwrap();
    assert_eq!(a % PAGE_SIZE, 0);
    assert_eq!(mem.pages_in_use(), 3);
    assert_eq!(pool.stats().big_allocations, 1);
    assert_eq!(pool.query(&mem, a), Some((TAG, 0x2001)));
    // Freeing inside a big allocation / with the wrong tag.
    assert_eq!(
        bugcheck(pool.free(&mut mem, a + 0x1000, TAG)),
        (BAD_POOL_CALLER, [0x46, a + 0x1000, 0, 0])
    );
    assert_eq!(
        bugcheck(pool.free(&mut mem, a, TAG2)),
        (BAD_POOL_CALLER, [0x0A, a, TAG as u64, TAG2 as u64])
    );
    pool.free(&mut mem, a, TAG).unwrap();
    assert_eq!(mem.pages_in_use(), 0);
    assert_eq!(
        bugcheck(pool.free(&mut mem, a, TAG)),
        (BAD_POOL_CALLER, [0x42, a, 0, 0])
    );
    // 4064 bytes of block (254 units) is the largest small block.
    let s = pool.allocate(&mut mem, 4064 - 16, TAG, false).unwrap();
    assert_eq!(s % PAGE_SIZE, 16);
    let b = pool.allocate(&mut mem, 4064 - 15, TAG, false).unwrap();
    assert_eq!(b % PAGE_SIZE, 0);
}

#[test]
fn corruption_detection() {
    let mut mem = Arena::new(BASE, 16);
    let mut pool = Pool::new(PoolType::NonPaged);
    let a = pool.allocate(&mut mem, 1000, TAG, false).unwrap(); // not a lookaside size
    let b = pool.allocate(&mut mem, 1000, TAG, false).unwrap();
    let c = pool.allocate(&mut mem, 1000, TAG, false).unwrap();
    // Wrong tag.
    assert_eq!(
        bugcheck(pool.free(&mut mem, a, TAG2)),
        (BAD_POOL_CALLER, [0x0A, a, TAG as u64, TAG2 as u64])
    );
    // Misaligned / not a pool address.
    assert_eq!(
        bugcheck(pool.free(&mut mem, a + 8, TAG)),
        (BAD_POOL_CALLER, [0x46, a + 8, 0, 0])
    );
    assert_eq!(
        bugcheck(pool.free(&mut mem, 0x1234_0000, TAG)),
        (BAD_POOL_CALLER, [0x42, 0x1234_0000, 0, 0])
    );
    // Double free.
    pool.free(&mut mem, a, TAG).unwrap();
    let mut hdr = [0u8; 8];
    mem.read(a - 16, &mut hdr);
    assert_eq!(
        bugcheck(pool.free(&mut mem, a, TAG)),
        (BAD_POOL_CALLER, [0x07, 0, u64::from_le_bytes(hdr), a])
    );
    // Overrun of b corrupts c's header: c's PreviousSize no longer matches.
    let b_header = b - 16;
    let c_header = c - 16;
    mem.fill(b, 1000 + 40, 0x41);
    assert_eq!(
        bugcheck(pool.free(&mut mem, b, TAG)),
        (BAD_POOL_HEADER, [0x5, b_header, 0, c_header])
    );
    // Zeroed BlockSize.
    mem.fill(c_header + 2, 1, 0);
    mem.fill(c_header + 3, 1, 1);
    assert_eq!(
        bugcheck(pool.free(&mut mem, c, 0)),
        (BAD_POOL_HEADER, [0x8, 0, 0, c_header])
    );
    // Wrong pool type.
    let mut paged = Pool::new(PoolType::Paged);
    let mut pmem = Arena::new(BASE + 0x100000, 4);
    let p = paged.allocate(&mut pmem, 64, TAG, false).unwrap();
    let mut raw = [0u8; 8];
    pmem.read(p - 16, &mut raw);
    raw[3] = 1; // NonPaged + 1
    pmem.write(p - 16, &raw);
    assert_eq!(
        bugcheck(paged.free(&mut pmem, p, TAG)),
        (BAD_POOL_CALLER, [0x01, p - 16, u64::from_le_bytes(raw), 0])
    );
    // Tag 0.
    assert_eq!(
        pool.allocate(&mut mem, 10, 0, false),
        Err(PoolError::BugCheck(BugCheck {
            code: BAD_POOL_CALLER,
            parameters: [0x9B, 0, 10, 0]
        }))
    );
}

#[test]
fn write_after_free_is_caught() {
    let mut mem = Arena::new(BASE, 8);
    let mut pool = Pool::new(PoolType::NonPaged);
    let _a = pool.allocate(&mut mem, 1000, TAG, false).unwrap();
    let b = pool.allocate(&mut mem, 1000, TAG, false).unwrap();
    let _c = pool.allocate(&mut mem, 1000, TAG, false).unwrap();
    pool.free(&mut mem, b, TAG).unwrap();
    pool.verify(&mem).unwrap();
    // The freed block's Flink is overwritten.
    mem.write(b, &0x4141_4141_4141_4141u64.to_le_bytes());
    assert!(pool.verify(&mem).is_err());
    match pool.allocate(&mut mem, 1000, TAG, false) {
        Err(PoolError::BugCheck(BugCheck { code, parameters })) => {
            assert_eq!(code, BAD_POOL_HEADER);
            assert_eq!(parameters[0], 0x3);
            assert_eq!(parameters[1], b - 16);
            assert_eq!(parameters[2], 0x4141_4141_4141_4141);
        }
        other => panic!("{other:?}"),
    }
    // Same on a lookaside list: the parked block's next pointer is clobbered.
    let mut pool = Pool::new(PoolType::Paged);
    let mut mem = Arena::new(BASE, 8);
    let x = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    let y = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    pool.free(&mut mem, x, TAG).unwrap();
    pool.free(&mut mem, y, TAG).unwrap();
    mem.write(y, &0xDEAD_0000u64.to_le_bytes());
    assert_eq!(
        pool.allocate(&mut mem, 40, TAG, false),
        Err(PoolError::BugCheck(BugCheck {
            code: BAD_POOL_HEADER,
            parameters: [0x3, y - 16, 0xDEAD_0000, 0]
        }))
    );
}

#[test]
fn ex_allocate_pool2_flags() {
    let mut np = Pool::new(PoolType::NonPaged);
    let mut pp = Pool::new(PoolType::Paged);
    let mut npm = Arena::new(BASE, 4);
    let mut ppm = Arena::new(BASE + 0x100000, 1);
    let a = ex_allocate_pool2(
        &mut np,
        &mut npm,
        &mut pp,
        &mut ppm,
        POOL_FLAG_NON_PAGED,
        32,
        TAG,
    )
    .unwrap();
    assert!(np.query(&npm, a).is_some());
    let b = ex_allocate_pool2(
        &mut np,
        &mut npm,
        &mut pp,
        &mut ppm,
        POOL_FLAG_PAGED | POOL_FLAG_UNINITIALIZED,
        32,
        TAG,
    )
    .unwrap();
    assert!(pp.query(&ppm, b).is_some());
    let mut f = |flags| ex_allocate_pool2(&mut np, &mut npm, &mut pp, &mut ppm, flags, 32, TAG);
    assert_eq!(f(0), Err(PoolError::InvalidFlags));
    assert_eq!(
        f(POOL_FLAG_PAGED | POOL_FLAG_NON_PAGED),
        Err(PoolError::InvalidFlags)
    );
    assert_eq!(
        f(POOL_FLAG_PAGED | 0x4000_0000),
        Err(PoolError::InvalidFlags)
    );
    assert_eq!(
        f(POOL_FLAG_PAGED | POOL_FLAG_SESSION),
        Err(PoolError::NotImplemented)
    );
    // Unknown optional flags are ignored.
    assert!(f(POOL_FLAG_NON_PAGED | (1 << 40)).is_ok());
    let r = ex_allocate_pool2(
        &mut np,
        &mut npm,
        &mut pp,
        &mut ppm,
        POOL_FLAG_PAGED | POOL_FLAG_RAISE_ON_FAILURE,
        0x2000,
        TAG,
    );
    assert_eq!(r, Err(PoolError::InsufficientResources { raise: true }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_alloc_free_keeps_pool_consistent(ops in proptest::collection::vec((any::<bool>(), 0u64..5000, any::<usize>()), 1..200)) {
        let mut mem = Arena::new(BASE, 64);
        let mut pool = Pool::new(PoolType::NonPaged);
        let mut live: Vec<(u64, u64, u8)> = vec![];
        for (i, (alloc, size, pick)) in ops.into_iter().enumerate() {
            if alloc || live.is_empty() {
                match pool.allocate(&mut mem, size, TAG, true) {
                    Ok(va) => {
                        for &(o, s, _) in &live {
                            prop_assert!(va + size <= o || o + s <= va || size == 0 || s == 0, "overlap");
                        }
                        let fill = i as u8;
                        mem.fill(va, size, fill);
                        live.push((va, size, fill));
                    }
                    Err(e) => prop_assert_eq!(e, PoolError::InsufficientResources { raise: false }),
                }
            } else {
                let (va, size, fill) = live.swap_remove(pick % live.len());
                let mut buf = vec![0u8; size as usize];
                mem.read(va, &mut buf);
                prop_assert!(buf.iter().all(|&b| b == fill), "block contents clobbered");
                pool.free(&mut mem, va, TAG).unwrap();
            }
            pool.verify(&mem).map_err(TestCaseError::fail)?;
        }
        for (va, _, _) in live.drain(..) {
            pool.free(&mut mem, va, TAG).unwrap();
        }
        pool.flush_lookaside(&mut mem).unwrap();
        pool.verify(&mem).map_err(TestCaseError::fail)?;
        prop_assert_eq!(mem.pages_in_use(), 0);
        prop_assert_eq!(pool.usage(TAG).bytes, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Corrupted pool memory and wild frees end in errors, never in a panic
    /// or an access outside the pool's pages.
    #[test]
    fn corruption_never_panics(
        sizes in proptest::collection::vec(0u64..1500, 1..20),
        pokes in proptest::collection::vec((0u64..(4 * PAGE_SIZE), any::<u8>()), 0..8),
        frees in proptest::collection::vec((any::<usize>(), -40i64..40, any::<bool>()), 1..30),
    ) {
        let mut mem = Arena::new(BASE, 4);
        let mut pool = Pool::new(PoolType::NonPaged);
        let mut live = vec![];
        for s in sizes {
            if let Ok(va) = pool.allocate(&mut mem, s, TAG, false) {
                live.push(va);
            }
        }
        for (off, byte) in pokes {
            mem.fill(BASE + off, 1, byte);
        }
        for (i, delta, right_tag) in frees {
            if live.is_empty() {
                break;
            }
            let va = live[i % live.len()].wrapping_add_signed(delta);
            let r = pool.free(&mut mem, va, if right_tag { TAG } else { TAG2 });
            if let Err(e) = r {
                prop_assert!(matches!(e, PoolError::BugCheck(_)), "{e:?}");
            }
            let _ = pool.allocate(&mut mem, 64, TAG, true);
        }
    }
}
