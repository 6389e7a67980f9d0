//! Virtual address control blocks: the system cache's 256 KiB views.
//!
//! *Windows Internals* 7th ed., Part 2, ch. 11, "Cache virtual memory
//! management" and "Cache data structures": the cache manager maps files into
//! the system cache in views of `VACB_MAPPING_GRANULARITY` (256 KiB), each
//! described by a VACB (its base address, the shared cache map and file
//! offset it maps, and an active count of callers using it). A stream's
//! shared cache map finds its views through a VACB index array: one level of
//! pointers for files up to 32 MiB, a tree of 128-entry arrays above that.
//!
//! [`VacbIndexArray`] is that per-stream index; [`ViewPool`] is the system's
//! set of VACBs with the view budget (the size of the system cache address
//! range divided by 256 KiB) and an LRU list of views nobody is using, which
//! are reused (unmapped from their old stream) when the budget is spent.

use alloc::vec;
use alloc::vec::Vec;

/// `VACB_MAPPING_GRANULARITY`: 256 KiB.
pub const VACB_MAPPING_GRANULARITY: u64 = 0x4_0000;
/// `VACB_OFFSET_SHIFT`: log2 of the view size.
pub const VACB_OFFSET_SHIFT: u32 = 18;
/// Entries in one VACB index array level (`VACB_LEVEL_SHIFT` = 7).
pub const VACB_LEVEL_ENTRIES: usize = 128;
/// `VACB_SIZE_OF_FIRST_LEVEL`: a file up to this size has a one-level index
/// (128 views of 256 KiB = 32 MiB).
pub const VACB_SIZE_OF_FIRST_LEVEL: u64 = VACB_MAPPING_GRANULARITY * VACB_LEVEL_ENTRIES as u64;

/// A VACB's index in the [`ViewPool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VacbId(pub u32);

#[derive(Clone, Debug)]
enum Level {
    Leaf(Vec<Option<VacbId>>),
    Inner(Vec<Option<Level>>),
}

/// A view number beyond what a [`VacbIndexArray`] covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeyondIndex;

/// A stream's VACB index array (`SHARED_CACHE_MAP.Vacbs`): view number
/// (file offset >> 18) to the VACB mapping it.
#[derive(Clone, Debug)]
pub struct VacbIndexArray {
    /// Levels: 1 for sections up to 32 MiB, each further level multiplies
    /// the reach by 128.
    levels: u32,
    root: Level,
    mapped: u32,
}

/// Levels an index needs for a section of `size` bytes.
pub fn levels_for(size: u64) -> u32 {
    let mut levels = 1;
    let mut reach = VACB_SIZE_OF_FIRST_LEVEL;
    while size > reach && levels < 6 {
        levels += 1;
        reach = reach.saturating_mul(VACB_LEVEL_ENTRIES as u64);
    }
    levels
}

impl VacbIndexArray {
    /// An empty index for a section of `section_size` bytes. A one-level
    /// index is sized to the section's views, as NT sizes the first array.
    pub fn new(section_size: u64) -> Self {
        let levels = levels_for(section_size);
        let root = if levels == 1 {
            let views = section_size.div_ceil(VACB_MAPPING_GRANULARITY).max(1) as usize;
            Level::Leaf(vec![None; views])
        } else {
            Level::Inner(Vec::new())
        };
        VacbIndexArray {
            levels,
            root,
            mapped: 0,
        }
    }

    /// Levels in use.
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// Views currently mapped.
    pub fn mapped(&self) -> u32 {
        self.mapped
    }

    /// Grows the index for a section of `section_size` bytes (a one-level
    /// index grows in place up to 128 entries, then a level is added on
    /// top, as NT adds levels when a file grows past 32 MiB).
    pub fn extend(&mut self, section_size: u64) {
        let want = levels_for(section_size);
        if self.levels == 1 && want == 1 {
            if let Level::Leaf(v) = &mut self.root {
                let views = section_size.div_ceil(VACB_MAPPING_GRANULARITY) as usize;
                if views > v.len() {
                    v.resize(views, None);
                }
            }
            return;
        }
        if self.levels == 1 {
            if let Level::Leaf(v) = &mut self.root {
                v.resize(VACB_LEVEL_ENTRIES, None);
            }
        }
        while self.levels < want {
            let old = core::mem::replace(&mut self.root, Level::Inner(Vec::new()));
            let mut top = vec![None; 1];
            top[0] = Some(old);
            self.root = Level::Inner(top);
            self.levels += 1;
        }
    }

    /// Views the index can hold.
    pub fn capacity(&self) -> u64 {
        if self.levels == 1 {
            match &self.root {
                Level::Leaf(v) => v.len() as u64,
                Level::Inner(_) => 0,
            }
        } else {
            (VACB_LEVEL_ENTRIES as u64).saturating_pow(self.levels)
        }
    }

    fn digit(&self, view: u64, level: u32) -> usize {
        // level counts down from self.levels - 1 (root) to 0 (leaf).
        ((view >> (7 * level)) & (VACB_LEVEL_ENTRIES as u64 - 1)) as usize
    }

    /// The VACB mapping view number `view`.
    pub fn get(&self, view: u64) -> Option<VacbId> {
        if view >= self.capacity() {
            return None;
        }
        let mut node = &self.root;
        let mut level = self.levels - 1;
        loop {
            match node {
                Level::Leaf(v) => {
                    let i = if self.levels == 1 {
                        view as usize
                    } else {
                        self.digit(view, 0)
                    };
                    return v.get(i).copied().flatten();
                }
                Level::Inner(v) => {
                    node = v.get(self.digit(view, level))?.as_ref()?;
                    level -= 1;
                }
            }
        }
    }

    /// Records (`Some`) or clears (`None`) the VACB of view `view`; returns
    /// the previous entry. Views beyond the capacity are refused with `Err`.
    pub fn set(&mut self, view: u64, vacb: Option<VacbId>) -> Result<Option<VacbId>, BeyondIndex> {
        if view >= self.capacity() {
            return Err(BeyondIndex);
        }
        let levels = self.levels;
        let digits: Vec<usize> = (0..levels).rev().map(|l| self.digit(view, l)).collect();
        let mut node = &mut self.root;
        let mut depth = 0;
        let old = loop {
            match node {
                Level::Leaf(v) => {
                    let i = if levels == 1 {
                        view as usize
                    } else {
                        digits[depth]
                    };
                    break core::mem::replace(&mut v[i], vacb);
                }
                Level::Inner(v) => {
                    let i = digits[depth];
                    if v.len() <= i {
                        if vacb.is_none() {
                            break None;
                        }
                        v.resize_with(i + 1, || None);
                    }
                    let child_is_leaf = depth + 2 == levels as usize;
                    if v[i].is_none() {
                        if vacb.is_none() {
                            break None;
                        }
                        v[i] = Some(if child_is_leaf {
                            Level::Leaf(vec![None; VACB_LEVEL_ENTRIES])
                        } else {
                            Level::Inner(Vec::new())
                        });
                    }
                    node = v[i].as_mut().ok_or(BeyondIndex)?;
                    depth += 1;
                }
            }
        };
        match (old, vacb) {
            (None, Some(_)) => self.mapped += 1,
            (Some(_), None) => self.mapped -= 1,
            _ => {}
        }
        Ok(old)
    }

    /// Every (view, VACB) pair, in view order.
    pub fn entries(&self) -> Vec<(u64, VacbId)> {
        fn walk(node: &Level, prefix: u64, one_level: bool, out: &mut Vec<(u64, VacbId)>) {
            match node {
                Level::Leaf(v) => {
                    for (i, e) in v.iter().enumerate() {
                        if let Some(id) = e {
                            let view = if one_level {
                                i as u64
                            } else {
                                (prefix << 7) | i as u64
                            };
                            out.push((view, *id));
                        }
                    }
                }
                Level::Inner(v) => {
                    for (i, c) in v.iter().enumerate() {
                        if let Some(c) = c {
                            walk(c, (prefix << 7) | i as u64, false, out);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, 0, self.levels == 1, &mut out);
        out
    }
}

/// Where a VACB is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VacbMapping {
    /// The shared cache map (stream) it maps.
    pub map: u32,
    /// The view number (file offset >> 18).
    pub view: u64,
}

/// One VACB.
#[derive(Clone, Debug, Default)]
pub struct Vacb {
    /// The stream view mapped, `None` when the slot is free.
    pub mapping: Option<VacbMapping>,
    /// Callers using the view (`Overlay.ActiveCount`).
    pub active: u32,
    /// LRU links (indexes), valid while mapped and inactive.
    lru_prev: Option<u32>,
    lru_next: Option<u32>,
}

/// What the kernel must do to make a view usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewGrant {
    /// The view is already mapped; its active count was raised.
    Hit(VacbId),
    /// A fresh VACB: map the view at its address, then use it.
    Map(VacbId),
    /// An idle VACB taken from another view: unmap `evicted` first (its
    /// stream's index no longer names this VACB), then map the new one.
    Reuse {
        /// The VACB reused.
        vacb: VacbId,
        /// What it mapped before.
        evicted: VacbMapping,
    },
}

impl ViewGrant {
    /// The VACB granted.
    pub fn vacb(&self) -> VacbId {
        match *self {
            ViewGrant::Hit(v) | ViewGrant::Map(v) => v,
            ViewGrant::Reuse { vacb, .. } => vacb,
        }
    }
}

/// The system's VACBs with the view budget and the LRU list of inactive
/// views (`CcVacbLru`).
#[derive(Clone, Debug)]
pub struct ViewPool {
    vacbs: Vec<Vacb>,
    budget: u32,
    free: Vec<u32>,
    lru_head: Option<u32>,
    lru_tail: Option<u32>,
    /// Views reused from another stream (`!filecache` statistics).
    pub reuses: u64,
    /// Peak number of mapped views.
    pub peak_mapped: u32,
}

impl ViewPool {
    /// A pool of at most `budget` views.
    pub fn new(budget: u32) -> Self {
        ViewPool {
            vacbs: Vec::new(),
            budget,
            free: Vec::new(),
            lru_head: None,
            lru_tail: None,
            reuses: 0,
            peak_mapped: 0,
        }
    }

    /// The view budget.
    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// A VACB.
    pub fn vacb(&self, id: VacbId) -> &Vacb {
        &self.vacbs[id.0 as usize]
    }

    /// Views mapped now.
    pub fn mapped(&self) -> u32 {
        self.vacbs.iter().filter(|v| v.mapping.is_some()).count() as u32
    }

    /// Views mapped and in use (active count above zero).
    pub fn active(&self) -> u32 {
        self.vacbs.iter().filter(|v| v.active > 0).count() as u32
    }

    fn lru_unlink(&mut self, i: u32) {
        let (p, n) = {
            let v = &self.vacbs[i as usize];
            (v.lru_prev, v.lru_next)
        };
        match p {
            Some(p) => self.vacbs[p as usize].lru_next = n,
            None => self.lru_head = n,
        }
        match n {
            Some(n) => self.vacbs[n as usize].lru_prev = p,
            None => self.lru_tail = p,
        }
        let v = &mut self.vacbs[i as usize];
        v.lru_prev = None;
        v.lru_next = None;
    }

    fn lru_push_tail(&mut self, i: u32) {
        self.vacbs[i as usize].lru_prev = self.lru_tail;
        self.vacbs[i as usize].lru_next = None;
        match self.lru_tail {
            Some(t) => self.vacbs[t as usize].lru_next = Some(i),
            None => self.lru_head = Some(i),
        }
        self.lru_tail = Some(i);
    }

    fn in_lru(&self, i: u32) -> bool {
        let v = &self.vacbs[i as usize];
        v.lru_prev.is_some() || v.lru_next.is_some() || self.lru_head == Some(i)
    }

    /// Raises the active count of a mapped VACB (a hit through the stream's
    /// index).
    pub fn reference(&mut self, id: VacbId) {
        if self.vacbs[id.0 as usize].active == 0 && self.in_lru(id.0) {
            self.lru_unlink(id.0);
        }
        self.vacbs[id.0 as usize].active += 1;
    }

    /// Takes a VACB for `mapping` (not mapped now): a free one within the
    /// budget, else the least recently used inactive one. `None` when every
    /// view is in use.
    pub fn allocate(&mut self, mapping: VacbMapping) -> Option<ViewGrant> {
        let grant = if let Some(i) = self.free.pop() {
            ViewGrant::Map(VacbId(i))
        } else if (self.vacbs.len() as u32) < self.budget {
            self.vacbs.push(Vacb::default());
            ViewGrant::Map(VacbId(self.vacbs.len() as u32 - 1))
        } else {
            let i = self.lru_head?;
            self.lru_unlink(i);
            let evicted = self.vacbs[i as usize].mapping?;
            self.reuses += 1;
            ViewGrant::Reuse {
                vacb: VacbId(i),
                evicted,
            }
        };
        let v = &mut self.vacbs[grant.vacb().0 as usize];
        v.mapping = Some(mapping);
        v.active = 1;
        let m = self.mapped();
        self.peak_mapped = self.peak_mapped.max(m);
        Some(grant)
    }

    /// Lowers the active count; an idle view goes to the LRU tail (most
    /// recently used). Returns false if the VACB was not active.
    pub fn release(&mut self, id: VacbId) -> bool {
        let v = &mut self.vacbs[id.0 as usize];
        if v.active == 0 {
            return false;
        }
        v.active -= 1;
        if v.active == 0 && v.mapping.is_some() {
            self.lru_push_tail(id.0);
        }
        true
    }

    /// Frees an inactive VACB (its view is being unmapped). Returns false if
    /// it is still active.
    pub fn free(&mut self, id: VacbId) -> bool {
        if self.vacbs[id.0 as usize].active != 0 {
            return false;
        }
        if self.in_lru(id.0) {
            self.lru_unlink(id.0);
        }
        self.vacbs[id.0 as usize].mapping = None;
        self.free.push(id.0);
        true
    }

    /// Inactive views from least to most recently used.
    pub fn lru(&self) -> Vec<VacbId> {
        let mut out = Vec::new();
        let mut c = self.lru_head;
        while let Some(i) = c {
            out.push(VacbId(i));
            c = self.vacbs[i as usize].lru_next;
        }
        out
    }

    /// Every mapped VACB.
    pub fn iter_mapped(&self) -> impl Iterator<Item = (VacbId, &Vacb)> {
        self.vacbs
            .iter()
            .enumerate()
            .filter(|(_, v)| v.mapping.is_some())
            .map(|(i, v)| (VacbId(i as u32), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_by_size() {
        assert_eq!(levels_for(0), 1);
        assert_eq!(levels_for(32 << 20), 1);
        assert_eq!(levels_for((32 << 20) + 1), 2);
        assert_eq!(levels_for(4 << 30), 2);
        assert_eq!(levels_for((4 << 30) + 1), 3);
    }

    #[test]
    fn one_level_sized_to_section() {
        let mut a = VacbIndexArray::new(600 * 1024);
        assert_eq!(a.capacity(), 3);
        assert!(a.set(3, Some(VacbId(1))).is_err());
        a.set(2, Some(VacbId(7))).unwrap();
        assert_eq!(a.get(2), Some(VacbId(7)));
        a.extend(1 << 20);
        assert_eq!(a.capacity(), 4);
        assert_eq!(a.get(2), Some(VacbId(7)));
        // Past 32 MiB the index becomes two levels and keeps its entries.
        a.extend(100 << 20);
        assert_eq!(a.levels(), 2);
        assert_eq!(a.get(2), Some(VacbId(7)));
        a.set(300, Some(VacbId(9))).unwrap();
        assert_eq!(a.entries(), [(2, VacbId(7)), (300, VacbId(9))]);
        assert_eq!(a.mapped(), 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn index_matches_a_map(
            sizes in proptest::collection::vec(0u64..(64u64 << 30), 1..4),
            sets in proptest::collection::vec((0u64..300_000, proptest::option::of(0u32..50)), 1..80),
        ) {
            let mut sizes = sizes;
            sizes.sort();
            let mut a = VacbIndexArray::new(sizes[0]);
            let mut model = alloc::collections::BTreeMap::new();
            for (k, s) in sizes.iter().enumerate() {
                if k > 0 { a.extend(*s); }
                let cap = a.capacity();
                for &(view, id) in &sets {
                    let r = a.set(view, id.map(VacbId));
                    if view >= cap {
                        prop_assert!(r.is_err());
                        continue;
                    }
                    let old = match id {
                        Some(i) => model.insert(view, VacbId(i)),
                        None => model.remove(&view),
                    };
                    prop_assert_eq!(r.unwrap(), old);
                }
                for (&v, &id) in &model {
                    prop_assert_eq!(a.get(v), Some(id));
                }
                let e: alloc::vec::Vec<(u64, VacbId)> = model.iter().map(|(&v, &i)| (v, i)).collect();
                prop_assert_eq!(a.entries(), e);
                prop_assert_eq!(a.mapped() as usize, model.len());
            }
        }
    }

    #[test]
    fn pool_reuses_least_recently_used_idle_view() {
        let mut p = ViewPool::new(2);
        let m = |view| VacbMapping { map: 1, view };
        let a = p.allocate(m(0)).unwrap();
        let b = p.allocate(m(1)).unwrap();
        assert!(matches!(a, ViewGrant::Map(_)));
        // Both active: no view for a third.
        assert_eq!(p.allocate(m(2)), None);
        p.release(b.vacb());
        p.release(a.vacb());
        // b went idle first, so it is reused first.
        let c = p.allocate(m(2)).unwrap();
        assert_eq!(
            c,
            ViewGrant::Reuse {
                vacb: b.vacb(),
                evicted: m(1)
            }
        );
        // A hit on an idle view takes it off the LRU list.
        p.reference(a.vacb());
        assert!(p.lru().is_empty());
        assert_eq!(p.allocate(m(3)), None);
        p.release(a.vacb());
        assert!(p.free(a.vacb()));
        assert_eq!(p.allocate(m(3)), Some(ViewGrant::Map(a.vacb())));
        assert_eq!(p.reuses, 1);
        assert_eq!(p.peak_mapped, 2);
    }
}
