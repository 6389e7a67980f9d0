extern crate std;

use super::*;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Counts this thread's heap allocations, to prove the pool makes none.
struct CountingAllocator;

std::thread_local! {
    static HEAP_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = HEAP_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator;

fn heap_allocations() -> u64 {
    HEAP_ALLOCATIONS.with(|c| c.get())
}

/// Host pool memory: an arena of `pages` pages at `base`, kept as atomic
/// words so several threads can share it as they share kernel memory.
struct Arena {
    base: u64,
    words: Vec<AtomicU64>,
    used: Mutex<Vec<bool>>,
}

impl Arena {
    fn new(base: u64, pages: usize) -> Self {
        Arena {
            base,
            words: (0..pages * PAGE_SIZE as usize / 8)
                .map(|_| AtomicU64::new(0xCCCC_CCCC_CCCC_CCCC))
                .collect(),
            used: Mutex::new(vec![false; pages]),
        }
    }
    fn pages(&self) -> u64 {
        self.words.len() as u64 * 8 / PAGE_SIZE
    }
    fn word(&self, va: u64) -> &AtomicU64 {
        assert!(va >= self.base, "access below the arena: {va:#x}");
        &self.words[((va - self.base) / 8) as usize]
    }
    fn byte(&self, va: u64) -> u8 {
        (self.word(va).load(Ordering::Relaxed) >> (va % 8 * 8)) as u8
    }
    fn set_byte(&self, va: u64, b: u8) {
        let w = self.word(va);
        let shift = va % 8 * 8;
        let v = w.load(Ordering::Relaxed);
        w.store(
            (v & !(0xFF << shift)) | (b as u64) << shift,
            Ordering::Relaxed,
        );
    }
    fn read(&self, va: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.byte(va + i as u64);
        }
    }
    fn write(&self, va: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.set_byte(va + i as u64, b);
        }
    }
    fn pages_in_use(&self) -> u64 {
        self.used.lock().unwrap().iter().filter(|&&u| u).count() as u64
    }
}

impl PoolMemory for Arena {
    fn read_u64(&self, va: u64) -> u64 {
        assert!(va.is_multiple_of(8));
        self.word(va).load(Ordering::Acquire)
    }
    fn write_u64(&self, va: u64, value: u64) {
        assert!(va.is_multiple_of(8));
        self.word(va).store(value, Ordering::Release)
    }
    fn compare_exchange_u64(&self, va: u64, current: u64, new: u64) -> Result<u64, u64> {
        self.word(va)
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
    fn fetch_add_u64(&self, va: u64, delta: u64) -> u64 {
        self.word(va).fetch_add(delta, Ordering::AcqRel)
    }
    fn fill(&self, va: u64, len: u64, byte: u8) {
        for i in 0..len {
            self.set_byte(va + i, byte);
        }
    }
}

impl PageSupply for Arena {
    fn allocate_pages(&mut self, pages: u64) -> Option<u64> {
        self.allocate_run(pages)
    }
    fn free_pages(&mut self, va: u64, pages: u64) {
        self.free_run(va, pages)
    }
}

impl Arena {
    fn allocate_run(&self, pages: u64) -> Option<u64> {
        let n = pages as usize;
        let mut used = self.used.lock().unwrap();
        let start =
            (0..=used.len().checked_sub(n)?).find(|&i| used[i..i + n].iter().all(|u| !u))?;
        for u in &mut used[start..start + n] {
            *u = true;
        }
        drop(used);
        let va = self.base + start as u64 * PAGE_SIZE;
        // Fresh pages contain garbage, like recycled physical memory.
        for i in 0..pages * PAGE_SIZE / 8 {
            self.write_u64(va + i * 8, 0xCCCC_CCCC_CCCC_CCCC);
        }
        Some(va)
    }
    fn free_run(&self, va: u64, pages: u64) {
        let i = ((va - self.base) / PAGE_SIZE) as usize;
        let mut used = self.used.lock().unwrap();
        for u in &mut used[i..i + pages as usize] {
            assert!(*u, "freeing a free page");
            *u = false;
        }
    }
}

const BASE: u64 = 0xFFFF_A000_0000_0000;
const TAG: u32 = u32::from_le_bytes(*b"Test");
const TAG2: u32 = u32::from_le_bytes(*b"Othr");

fn pool_over(pool_type: PoolType, mem: &Arena) -> Pool {
    Pool::new(pool_type, mem.base, mem.pages())
}

fn bugcheck(e: Result<(), PoolError>) -> (u32, [u64; 4]) {
    match e {
        Err(PoolError::BugCheck(b)) => (b.code, b.parameters),
        other => panic!("expected a bug check, got {other:?}"),
    }
}

/// `!poolval`: walks every small-block page and checks that the blocks tile
/// it with consistent `PreviousSize` links, every free list and the
/// lookaside lists (links consistent both ways, entries free blocks of the
/// right size, every free block on exactly one list), the page cache and
/// the big-page table.
fn verify(pool: &Pool, mem: &Arena, lookasides: &[&PpLookaside]) -> Result<(), String> {
    let d = &pool.descriptor;
    let sh = &pool.shared;
    let ty = sh.type_byte();
    let mut free_found = BTreeSet::new();
    let mut parked_found = BTreeSet::new();
    let mut small = 0;
    for p in 0..mem.pages() {
        let page = mem.base + p * PAGE_SIZE;
        if !sh.is_small_page(mem, page) {
            continue;
        }
        small += 1;
        let mut at = page;
        let mut prev = 0u8;
        while at < page + PAGE_SIZE {
            let h = read_header(mem, at);
            if h.block_size == 0 || h.previous_size != prev {
                return Err(format!("bad header at {at:#x}: {h:?}"));
            }
            if h.is_listed_free() {
                free_found.insert(at);
            } else if h.pool_type == 0 {
                parked_found.insert(at);
            } else if h.pool_type != ty {
                return Err(format!("foreign pool type at {at:#x}"));
            }
            prev = h.block_size;
            at += h.block_size as u64 * POOL_BLOCK_SIZE;
        }
        if at != page + PAGE_SIZE {
            return Err(format!("blocks overrun page {page:#x}"));
        }
    }
    if small != d.small_pages {
        return Err(format!(
            "{small} small pages marked, {} counted",
            d.small_pages
        ));
    }
    let mut listed = BTreeSet::new();
    for (n, head) in d.free_lists.iter().enumerate() {
        let mut prev = 0u64;
        let mut cur = head.first;
        while cur != 0 {
            if !free_found.contains(&cur) || !listed.insert(cur) {
                return Err(format!("list {n}: bad or repeated entry {cur:#x}"));
            }
            if read_header(mem, cur).block_size as usize != n {
                return Err(format!("list {n}: entry {cur:#x} has another size"));
            }
            let (f, b) = PoolDescriptor::links(mem, cur);
            if b != prev {
                return Err(format!("list {n}: blink of {cur:#x} is {b:#x}"));
            }
            prev = cur;
            cur = f;
        }
        if head.last != prev {
            return Err(format!("list {n}: tail mismatch"));
        }
    }
    if listed != free_found {
        return Err(format!(
            "{} listed free blocks, {} found",
            listed.len(),
            free_found.len()
        ));
    }
    let mut parked = BTreeSet::new();
    for la in lookasides {
        for n in 0..=POOL_SMALL_LISTS as usize {
            let mut cur = la.heads[n];
            let mut depth = 0;
            while cur != 0 {
                if !parked_found.contains(&cur) || !parked.insert(cur) {
                    return Err(format!("lookaside {n}: bad entry {cur:#x}"));
                }
                if read_header(mem, cur).block_size as usize != n {
                    return Err(format!("lookaside {n}: entry {cur:#x} has another size"));
                }
                depth += 1;
                cur = mem.read_u64(cur + POOL_BLOCK_SIZE) ^ sh.cookie.load(Ordering::Relaxed);
            }
            if depth != la.depth[n] {
                return Err(format!(
                    "lookaside {n}: depth {} but {depth} linked",
                    la.depth[n]
                ));
            }
        }
    }
    if parked != parked_found {
        return Err(format!(
            "{} parked blocks, {} found",
            parked.len(),
            parked_found.len()
        ));
    }
    let (mut runs, mut cur) = (0, d.cache);
    while cur != 0 {
        runs += mem.read_u64(cur + 8);
        cur = mem.read_u64(cur);
    }
    if runs != d.cached_pages {
        return Err(format!(
            "{runs} cached pages linked, {} counted",
            d.cached_pages
        ));
    }
    let (mut live, mut dead, mut pages) = (0, 0, 0);
    for i in 0..d.big_entries {
        let e = d.big_table + i * BIG_ENTRY;
        match mem.read_u64(e) {
            0 => {}
            BIG_FREE => dead += 1,
            va => {
                live += 1;
                pages += mem.read_u64(e + 8);
                if d.big_find(mem, va) != Some(e) {
                    return Err(format!("big allocation {va:#x} cannot be found"));
                }
            }
        }
    }
    if (live, dead, pages) != (d.big_used, d.big_tombstones, d.big_pages)
        || live != d.big_allocations
    {
        return Err(format!(
            "big table: {live} live, {dead} dead, {pages} pages"
        ));
    }
    Ok(())
}

fn check(pool: &Pool, mem: &Arena) {
    verify(pool, mem, &[&pool.lookaside]).unwrap();
}

#[test]
fn small_allocations_zeroed_tagged_and_reused() {
    let mut mem = Arena::new(BASE, 16);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
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
        pool.usage(&mem, TAG),
        TagUsage {
            allocs: 2,
            frees: 0,
            bytes: 256
        }
    );
    assert!(format_pool_used(&pool.tag_usage(&mem), &[])
        .contains("\n Test        2      256         0        0\n"));
    // Usage counts whole blocks: 100 bytes + header = 8 units = 128 bytes.
    assert_eq!(pool.query(&mem, a), Some((TAG, 128)));
    check(&pool, &mem);
    pool.free(&mut mem, a, TAG).unwrap();
    assert_eq!(
        pool.lookaside.blocks(),
        1,
        "a small block is parked on the lookaside list"
    );
    // Lookaside: the same block comes back for the same size.
    let c = pool.allocate(&mut mem, 110, TAG2, true).unwrap();
    assert_eq!(c, a);
    assert_eq!(
        pool.usage(&mem, TAG),
        TagUsage {
            allocs: 2,
            frees: 1,
            bytes: 128
        }
    );
    pool.free(&mut mem, b, 0).unwrap();
    pool.free(&mut mem, c, TAG2).unwrap();
    pool.flush_lookaside(&mut mem).unwrap();
    check(&pool, &mem);
    let s = pool.stats();
    assert_eq!(
        (s.small_pages, s.cached_pages),
        (0, 1),
        "the empty page is kept"
    );
    pool.trim(&mut mem);
    assert_eq!(
        mem.pages_in_use(),
        pool.stats().table_pages,
        "only the pool's own tables remain"
    );
    assert_eq!(pool.stats().pages, pool.stats().table_pages);
}

#[test]
fn big_pages() {
    let mut mem = Arena::new(BASE, 16);
    let mut pool = pool_over(PoolType::Paged, &mem);
    let tables = |p: &Pool| p.stats().table_pages;
    let a = pool.allocate(&mut mem, 0x2001, TAG, true).unwrap();
    assert_eq!(a % PAGE_SIZE, 0);
    assert_eq!(mem.pages_in_use(), 3 + tables(&pool));
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
    // Big runs are returned at once.
    assert_eq!(mem.pages_in_use(), tables(&pool));
    assert_eq!(pool.usage(&mem, TAG).bytes, 0);
    assert_eq!(
        bugcheck(pool.free(&mut mem, a, TAG)),
        (BAD_POOL_CALLER, [0x42, a, 0, 0])
    );
    // 4064 bytes of block (254 units) is the largest small block.
    let s = pool.allocate(&mut mem, 4064 - 16, TAG, false).unwrap();
    assert_eq!(s % PAGE_SIZE, 16);
    let b = pool.allocate(&mut mem, 4064 - 15, TAG, false).unwrap();
    assert_eq!(b % PAGE_SIZE, 0);
    check(&pool, &mem);
}

#[test]
fn corruption_detection() {
    let mut mem = Arena::new(BASE, 16);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
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
    let mut pmem = Arena::new(BASE + 0x100000, 4);
    let mut paged = pool_over(PoolType::Paged, &pmem);
    let p = paged.allocate(&mut pmem, 64, TAG, false).unwrap();
    let mut raw = [0u8; 8];
    pmem.read(p - 16, &mut raw);
    raw[3] = 1; // NonPaged + 1
    pmem.write(p - 16, &raw);
    assert_eq!(
        bugcheck(paged.free(&mut pmem, p, TAG)),
        (BAD_POOL_CALLER, [0x01, p - 16, u64::from_le_bytes(raw), 0])
    );
    // Tag 0, on both the lookaside and the locked path.
    let zero_tag = Err(PoolError::BugCheck(BugCheck {
        code: BAD_POOL_CALLER,
        parameters: [0x9B, 0, 10, 0],
    }));
    assert_eq!(pool.allocate(&mut mem, 10, 0, false), zero_tag);
    assert_eq!(
        pool.descriptor
            .try_allocate(&pool.shared, &mem, 10, 0, false),
        zero_tag
    );
}

#[test]
fn lookaside_sized_blocks_get_every_check() {
    // The fast path hands anything odd to the locked path, which reports it.
    let mut mem = Arena::new(BASE, 8);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    let a = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    let b = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    let c = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    assert_eq!(
        bugcheck(pool.free(&mut mem, a, TAG2)),
        (BAD_POOL_CALLER, [0x0A, a, TAG as u64, TAG2 as u64])
    );
    pool.free(&mut mem, a, TAG).unwrap();
    assert_eq!(pool.lookaside.blocks(), 1);
    let mut hdr = [0u8; 8];
    mem.read(a - 16, &mut hdr);
    assert_eq!(
        bugcheck(pool.free(&mut mem, a, TAG)),
        (BAD_POOL_CALLER, [0x07, 0, u64::from_le_bytes(hdr), a]),
        "a second free of a parked block"
    );
    // b overruns into c's header.
    mem.fill(b, 48 + 1, 0x41);
    assert_eq!(
        bugcheck(pool.free(&mut mem, b, TAG)),
        (BAD_POOL_HEADER, [0x5, b - 16, 0, c - 16])
    );
}

#[test]
fn fast_path_refuses_addresses_that_are_not_block_starts() {
    let mem = Arena::new(BASE, 8);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    let mut m = mem;
    let a = pool.allocate(&mut m, 40, TAG, false).unwrap();
    let page = a & !(PAGE_SIZE - 1);
    let mut la = PpLookaside::new();
    for bad in [a + 8, a + 1, page, page + PAGE_SIZE] {
        assert!(
            !pool.shared.free_small_to_lookaside(&mut la, &m, bad, 0),
            "{bad:#x} taken by the fast path"
        );
    }
    assert!(pool.shared.free_small_to_lookaside(&mut la, &m, a, TAG));
    assert_eq!(la.blocks(), 1);
    // The parked block comes back from the list, and can be parked again.
    let b = pool
        .shared
        .allocate_from_lookaside(&mut la, &m, 40, TAG, false);
    assert_eq!(b, a);
    assert!(pool.shared.free_small_to_lookaside(&mut la, &m, a, TAG));
    pool.descriptor
        .flush_lookaside(&pool.shared, &m, &mut la)
        .unwrap();
}

#[test]
fn lookaside_depth_is_bounded() {
    let mut mem = Arena::new(BASE, 16);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    let blocks: Vec<u64> = (0..100)
        .map(|_| pool.allocate(&mut mem, 64, TAG, false).unwrap())
        .collect();
    for &b in &blocks {
        pool.free(&mut mem, b, TAG).unwrap();
    }
    // 64 + 16 bytes = 5 units; the last block of each page absorbed the
    // 1-unit remainder and sits on the 6-unit list.
    assert_eq!(pool.lookaside.depth[5], LOOKASIDE_DEPTH);
    assert_eq!(pool.lookaside.blocks(), LOOKASIDE_DEPTH as u64 + 1);
    check(&pool, &mem);
    assert_eq!(pool.usage(&mem, TAG).bytes, 0);
}

#[test]
fn write_after_free_is_caught() {
    let mut mem = Arena::new(BASE, 8);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    let _a = pool.allocate(&mut mem, 1000, TAG, false).unwrap();
    let b = pool.allocate(&mut mem, 1000, TAG, false).unwrap();
    let _c = pool.allocate(&mut mem, 1000, TAG, false).unwrap();
    pool.free(&mut mem, b, TAG).unwrap();
    check(&pool, &mem);
    // The freed block's Flink is overwritten.
    mem.write(b, &0x4141_4141_4141_4141u64.to_le_bytes());
    assert!(verify(&pool, &mem, &[&pool.lookaside]).is_err());
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
    let mut mem = Arena::new(BASE, 8);
    let mut pool = pool_over(PoolType::Paged, &mem);
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
fn lookaside_links_are_encoded_and_checked() {
    let mut mem = Arena::new(BASE, 8);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    pool.shared.set_cookie(0x5A5A_0000_1234_0000);
    let x = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    let y = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    let live = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    pool.free(&mut mem, x, TAG).unwrap();
    pool.free(&mut mem, y, TAG).unwrap();
    // y's link names x, encoded.
    assert_eq!(mem.read_u64(y), (x - 16) ^ 0x5A5A_0000_1234_0000);
    check(&pool, &mem);
    // A stray write that makes y's link name a live block: the pop of y
    // succeeds (the link decodes to a pool address), the next pop finds a
    // block that is not parked.
    mem.write_u64(y, (live - 16) ^ 0x5A5A_0000_1234_0000);
    // The live block's first word, as a link, must decode to a pool address.
    mem.write_u64(live, 0x5A5A_0000_1234_0000);
    assert_eq!(pool.allocate(&mut mem, 40, TAG, false), Ok(y));
    let hdr = mem.read_u64(live - 16);
    assert_eq!(
        pool.allocate(&mut mem, 40, TAG, false),
        Err(PoolError::BugCheck(BugCheck {
            code: BAD_POOL_HEADER,
            parameters: [0x3, live - 16, hdr, 0]
        }))
    );
    // A link that decodes outside the pool is caught at once.
    let mut mem = Arena::new(BASE, 8);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    pool.shared.set_cookie(0x5A5A_0000_1234_0000);
    let a = pool.allocate(&mut mem, 40, TAG, false).unwrap();
    pool.free(&mut mem, a, TAG).unwrap();
    mem.write_u64(a, 0);
    assert_eq!(
        pool.allocate(&mut mem, 40, TAG, false),
        Err(PoolError::BugCheck(BugCheck {
            code: BAD_POOL_HEADER,
            parameters: [0x3, a - 16, 0, 0]
        }))
    );
}

#[test]
fn ex_allocate_pool2_flags() {
    let mut npm = Arena::new(BASE, 8);
    let mut ppm = Arena::new(BASE + 0x100000, 3);
    let mut np = pool_over(PoolType::NonPaged, &npm);
    let mut pp = pool_over(PoolType::Paged, &ppm);
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

#[test]
fn the_pool_makes_no_heap_allocations() {
    let mut mem = Arena::new(BASE, 1024);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    let mut live = [0u64; 600];
    let before = heap_allocations();
    for (i, slot) in live.iter_mut().enumerate() {
        let tag = u32::from_le_bytes([
            b'A' + (i % 26) as u8,
            b'B' + (i / 26 % 26) as u8,
            b'x',
            b'y',
        ]);
        let size = [24, 100, 1000, 5000, 300][i % 5];
        *slot = pool.allocate(&mut mem, size, tag, i % 2 == 0).unwrap();
    }
    for &va in live.iter().step_by(2) {
        pool.free(&mut mem, va, 0).unwrap();
    }
    for &va in live.iter().skip(1).step_by(2) {
        pool.free(&mut mem, va, 0).unwrap();
    }
    pool.flush_lookaside(&mut mem).unwrap();
    pool.trim(&mut mem);
    let _ = pool.shared.usage(&mem, TAG);
    assert_eq!(heap_allocations(), before, "the pool used the heap");
    check(&pool, &mem);
    assert_eq!(pool.shared.bytes_in_use(&mem), 0);
}

#[test]
fn tracker_table_grows_for_many_tags() {
    let mut mem = Arena::new(BASE, 4096);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    let tag_of = |i: u32| 0x2000_0000 | i;
    let n = 3000u32;
    let blocks: Vec<u64> = (0..n)
        .map(|i| {
            pool.allocate(&mut mem, 16 + i as u64 % 200, tag_of(i), false)
                .unwrap()
        })
        .collect();
    // 3000 tags need six segments (96 + 192 + 384 + 768 + 1536 usable slots
    // in the first five).
    let segments = pool
        .shared
        .trackers
        .iter()
        .take_while(|s| s.load(Ordering::Relaxed) != 0)
        .count();
    assert_eq!(segments, 6);
    let usage = pool.tag_usage(&mem);
    assert_eq!(usage.len(), n as usize);
    for (i, &b) in blocks.iter().enumerate() {
        let u = pool.usage(&mem, tag_of(i as u32));
        assert_eq!((u.allocs, u.frees), (1, 0));
        assert_eq!(pool.query(&mem, b).map(|q| q.0), Some(tag_of(i as u32)));
        pool.free(&mut mem, b, tag_of(i as u32)).unwrap();
        assert_eq!(pool.usage(&mem, tag_of(i as u32)).bytes, 0);
    }
    check(&pool, &mem);
    // Tags keep their entries (as in NT): nothing is removed, nothing moved.
    assert_eq!(pool.tag_usage(&mem).len(), n as usize);
}

#[test]
fn big_page_table_grows_rehashes_and_reuses_tombstones() {
    let mut mem = Arena::new(BASE, 4096);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    let mut live: Vec<(u64, u64)> = Vec::new();
    for i in 0..1000u64 {
        let bytes = 4096 + (i % 3) * 4096 + i;
        let va = pool.allocate(&mut mem, bytes, TAG, false).unwrap();
        live.push((va, bytes));
    }
    assert_eq!(pool.stats().big_allocations, 1000);
    assert!(pool.descriptor.big_entries >= 1000 * 4 / 3, "table grew");
    check(&pool, &mem);
    for (va, bytes) in &live {
        assert_eq!(pool.query(&mem, *va), Some((TAG, *bytes)));
    }
    // Churn: frees leave tombstones, inserts reuse them; the table does not grow.
    let entries = pool.descriptor.big_entries;
    for round in 0..20_000u64 {
        let i = (round * 7919) as usize % live.len();
        let (va, _) = live[i];
        pool.free(&mut mem, va, TAG).unwrap();
        let bytes = 4096 + round % 5000;
        live[i] = (pool.allocate(&mut mem, bytes, TAG, false).unwrap(), bytes);
    }
    assert_eq!(pool.descriptor.big_entries, entries);
    check(&pool, &mem);
    for (va, _) in live.drain(..) {
        pool.free(&mut mem, va, TAG).unwrap();
    }
    let s = pool.stats();
    assert_eq!((s.big_allocations, s.big_pages), (0, 0));
    assert_eq!(pool.usage(&mem, TAG).bytes, 0);
    pool.trim(&mut mem);
    assert_eq!(mem.pages_in_use(), pool.stats().table_pages);
}

#[test]
fn need_pages_changes_nothing_and_maximum_is_respected() {
    let mem = Arena::new(BASE, 64);
    let shared = PoolShared::new(PoolType::NonPaged, BASE, 64);
    let mut d = PoolDescriptor::new();
    // First allocation: a tracker segment first.
    assert_eq!(
        d.try_allocate(&shared, &mem, 64, TAG, false),
        Err(PoolError::NeedPages { pages: 1 })
    );
    assert_eq!(d.stats(), PoolDescriptor::new().stats());
    let mut got = None;
    for _ in 0..4 {
        match d.try_allocate(&shared, &mem, 64, TAG, false) {
            Err(PoolError::NeedPages { pages }) => {
                let va = mem.allocate_run(pages).unwrap();
                d.add_pages(&mem, va, pages);
            }
            r => {
                got = Some(r.unwrap());
                break;
            }
        }
    }
    let a = got.expect("tracker, bitmap page and a block page were enough");
    assert_eq!(d.stats().pages, 3);
    // A maximum of 3 pages: the next page cannot come.
    d.set_maximum_pages(3);
    assert_eq!(
        d.try_allocate(&shared, &mem, 5000, TAG, false),
        Err(PoolError::InsufficientResources { raise: false })
    );
    d.set_maximum_pages(5);
    assert_eq!(
        d.try_allocate(&shared, &mem, 5000, TAG, false),
        Err(PoolError::NeedPages { pages: 1 }),
        "first the big-page table"
    );
    let va = mem.allocate_run(1).unwrap();
    d.add_pages(&mem, va, 1);
    assert_eq!(
        d.try_allocate(&shared, &mem, 5000, TAG, false),
        Err(PoolError::InsufficientResources { raise: false }),
        "2 more pages would pass the maximum"
    );
    d.free(&shared, &mem, a, TAG).unwrap();
    // The big-page table took the page added last; a's page is kept.
    assert_eq!(d.stats().cached_pages, 1);
    assert_eq!(d.take_surplus(&mem), None, "single pages are kept");
}

#[test]
fn surplus_pages_are_returned() {
    let mut mem = Arena::new(BASE, 256);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    let blocks: Vec<u64> = (0..40)
        .map(|_| pool.allocate(&mut mem, 2000, TAG, false).unwrap())
        .collect();
    assert_eq!(pool.stats().small_pages, 20);
    for b in blocks {
        pool.free(&mut mem, b, TAG).unwrap();
    }
    let s = pool.stats();
    assert_eq!((s.small_pages, s.cached_pages), (0, RETAINED_PAGES));
    assert_eq!(mem.pages_in_use(), s.table_pages + RETAINED_PAGES);
}

#[test]
fn pool_used_lists_both_pools() {
    let t = |s: &[u8; 4]| u32::from_le_bytes(*s);
    let u = |allocs, frees, bytes| TagUsage {
        allocs,
        frees,
        bytes,
    };
    let out = format_pool_used(
        &[(t(b"Aaaa"), u(3, 1, 96)), (t(b"Cccc"), u(1, 0, 4096))],
        &[(t(b"Bbbb"), u(5, 0, 800)), (t(b"Cccc"), u(2, 2, 0))],
    );
    assert_eq!(
        out,
        "   Sorting by Tag\n\n  Pool Used:\n            NonPaged            Paged\n Tag    Allocs     Used    Allocs     Used\n \
         Aaaa        2       96         0        0\n \
         Bbbb        0        0         5      800\n \
         Cccc        1     4096         0        0\n"
    );
}

#[test]
fn tags_sort_by_their_characters() {
    let mut mem = Arena::new(BASE, 8);
    let mut pool = pool_over(PoolType::NonPaged, &mem);
    // Numerically "Baaa" (0x61616142) < "Azzz" (0x7A7A7A41).
    for t in [b"Baaa", b"Azzz", b"Abcd"] {
        pool.allocate(&mut mem, 32, u32::from_le_bytes(*t), false)
            .unwrap();
    }
    let order: Vec<[char; 4]> = pool
        .tag_usage(&mem)
        .iter()
        .map(|e| tag_string(e.0))
        .collect();
    assert_eq!(
        order,
        [
            ['A', 'b', 'c', 'd'],
            ['A', 'z', 'z', 'z'],
            ['B', 'a', 'a', 'a']
        ]
    );
    let out = format_pool_used(&pool.tag_usage(&mem), &[]);
    let a = out.find(" Azzz").unwrap();
    assert!(out.find(" Abcd").unwrap() < a && a < out.find(" Baaa").unwrap());
}

#[test]
fn processors_share_the_pool_without_its_lock_on_the_fast_path() {
    // Four threads play four processors: each has its own lookaside list and
    // takes the (mutex) pool lock only on the slow path. Blocks allocated on
    // one are freed on another; headers and tags must stay consistent.
    let mem = Arena::new(BASE, 2048);
    let shared = PoolShared::new(PoolType::NonPaged, BASE, 2048);
    let desc = Mutex::new(PoolDescriptor::new());
    let handoff: Mutex<Vec<(u64, u64, u8)>> = Mutex::new(Vec::new());
    let lookasides: Vec<PpLookaside> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u8)
            .map(|cpu| {
                let (mem, shared, desc, handoff) = (&mem, &shared, &desc, &handoff);
                s.spawn(move || {
                    let mut la = PpLookaside::new();
                    let mut seed = 0x1234_5678u64 * (cpu as u64 + 1);
                    let mut rnd = move || {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed
                    };
                    let mut mine: Vec<(u64, u64, u8)> = Vec::new();
                    for i in 0..4000u32 {
                        let r = rnd();
                        if r % 3 != 0 || mine.is_empty() {
                            let size = [8, 40, 64, 200, 500, 700][(r >> 8) as usize % 6];
                            let tag = TAG + (r >> 16) as u32 % 4;
                            let va = match shared
                                .allocate_from_lookaside(&mut la, mem, size, tag, false)
                            {
                                0 => loop {
                                    let r = desc
                                        .lock()
                                        .unwrap()
                                        .try_allocate(shared, mem, size, tag, false);
                                    match r {
                                        Err(PoolError::NeedPages { pages }) => {
                                            let va = mem.allocate_run(pages).unwrap();
                                            desc.lock().unwrap().add_pages(mem, va, pages);
                                        }
                                        r => break r.unwrap(),
                                    }
                                },
                                va => va,
                            };
                            let fill = (i as u8) ^ cpu;
                            mem.fill(va, size, fill);
                            mine.push((va, size, fill));
                            if r % 5 == 0 {
                                handoff.lock().unwrap().push(mine.pop().unwrap());
                            }
                        } else {
                            let pick = if r % 2 == 0 {
                                handoff.lock().unwrap().pop()
                            } else {
                                None
                            };
                            let (va, size, fill) =
                                pick.unwrap_or_else(|| mine.swap_remove(r as usize % mine.len()));
                            for o in 0..size {
                                assert_eq!(mem.byte(va + o), fill, "block contents clobbered");
                            }
                            if !shared.free_to_lookaside(&mut la, mem, va, 0) {
                                desc.lock().unwrap().free(shared, mem, va, 0).unwrap();
                            }
                        }
                    }
                    for (va, _, _) in mine {
                        if !shared.free_to_lookaside(&mut la, mem, va, 0) {
                            desc.lock().unwrap().free(shared, mem, va, 0).unwrap();
                        }
                    }
                    la
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut d = desc.into_inner().unwrap();
    for (va, _, _) in handoff.into_inner().unwrap() {
        d.free(&shared, &mem, va, 0).unwrap();
    }
    let pool = Pool {
        shared,
        descriptor: d,
        lookaside: PpLookaside::new(),
    };
    let refs: Vec<&PpLookaside> = lookasides.iter().collect();
    verify(&pool, &mem, &refs).unwrap();
    assert_eq!(pool.shared.bytes_in_use(&mem), 0);
    let mut pool = pool;
    for mut la in lookasides {
        pool.descriptor
            .flush_lookaside(&pool.shared, &mem, &mut la)
            .unwrap();
    }
    check(&pool, &mem);
    assert_eq!(pool.stats().small_pages, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_alloc_free_keeps_pool_consistent(ops in proptest::collection::vec((any::<bool>(), 0u64..5000, any::<usize>()), 1..200)) {
        let mut mem = Arena::new(BASE, 64);
        let mut pool = pool_over(PoolType::NonPaged, &mem);
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
            verify(&pool, &mem, &[&pool.lookaside]).map_err(TestCaseError::fail)?;
        }
        for (va, _, _) in live.drain(..) {
            pool.free(&mut mem, va, TAG).unwrap();
        }
        pool.flush_lookaside(&mut mem).unwrap();
        verify(&pool, &mem, &[&pool.lookaside]).map_err(TestCaseError::fail)?;
        pool.trim(&mut mem);
        prop_assert_eq!(mem.pages_in_use(), pool.stats().table_pages);
        prop_assert_eq!(pool.usage(&mem, TAG).bytes, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Corrupted pool memory and wild frees end in errors, never in a panic
    /// or an access outside the pool's pages.
    #[test]
    fn corruption_never_panics(
        sizes in proptest::collection::vec(0u64..1500, 1..20),
        pokes in proptest::collection::vec((0u64..(8 * PAGE_SIZE), any::<u8>()), 0..8),
        frees in proptest::collection::vec((any::<usize>(), -40i64..40, any::<bool>()), 1..30),
    ) {
        let mut mem = Arena::new(BASE, 8);
        let mut pool = pool_over(PoolType::NonPaged, &mem);
        let mut live = vec![];
        for s in sizes {
            if let Ok(va) = pool.allocate(&mut mem, s, TAG, false) {
                live.push(va);
            }
        }
        // Block pages only: the pool's own tables are as trusted as its descriptor.
        for (off, byte) in pokes {
            if pool.shared.is_small_page(&mem, (BASE + off) & !(PAGE_SIZE - 1)) {
                mem.fill(BASE + off, 1, byte);
            }
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
