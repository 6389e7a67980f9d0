//! The VAD tree (*Windows Internals* 7th ed., Part 1, ch. 5, "Virtual
//! address descriptors"): a self-balancing (AVL, as NT's `MM_AVL_TABLE` /
//! `RTL_AVL_TREE`) tree of non-overlapping virtual page ranges keyed by their
//! starting VPN. Each node carries `StartingVpn`/`EndingVpn` (inclusive, as in
//! `MMVAD`) and a payload `T` (the address space stores its per-VAD state there).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::Vpn;

/// One VAD: `[start, end]` inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vad<T> {
    /// `StartingVpn`.
    pub start: Vpn,
    /// `EndingVpn` (inclusive).
    pub end: Vpn,
    pub data: T,
}

impl<T> Vad<T> {
    /// Number of pages described.
    pub fn pages(&self) -> u64 {
        self.end - self.start + 1
    }
    /// Whether `vpn` lies inside.
    pub fn contains(&self, vpn: Vpn) -> bool {
        vpn >= self.start && vpn <= self.end
    }
}

#[derive(Clone, Debug)]
struct Node<T> {
    vad: Vad<T>,
    height: u32,
    left: Link<T>,
    right: Link<T>,
}

type Link<T> = Option<Box<Node<T>>>;

/// Errors of [`VadTree::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VadError {
    /// `start > end`.
    EmptyRange,
    /// The range overlaps an existing VAD (NT: `STATUS_CONFLICTING_ADDRESSES`).
    Conflict,
}

/// Direction of [`VadTree::find_free`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchDirection {
    /// `MiFindEmptyAddressRange`: lowest fit first.
    BottomUp,
    /// `MiFindEmptyAddressRangeDown` (`MEM_TOP_DOWN`): highest fit first.
    TopDown,
}

/// `MM_AVL_TABLE` (`VadRoot` in `EPROCESS`).
#[derive(Clone, Debug)]
pub struct VadTree<T> {
    root: Link<T>,
    len: usize,
}

impl<T> Default for VadTree<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn height<T>(n: &Link<T>) -> u32 {
    n.as_ref().map_or(0, |n| n.height)
}

fn update<T>(n: &mut Node<T>) {
    n.height = 1 + height(&n.left).max(height(&n.right));
}

fn rotate_right<T>(mut n: Box<Node<T>>) -> Box<Node<T>> {
    let Some(mut l) = n.left.take() else { return n };
    n.left = l.right.take();
    update(&mut n);
    l.right = Some(n);
    update(&mut l);
    l
}

fn rotate_left<T>(mut n: Box<Node<T>>) -> Box<Node<T>> {
    let Some(mut r) = n.right.take() else {
        return n;
    };
    n.right = r.left.take();
    update(&mut n);
    r.left = Some(n);
    update(&mut r);
    r
}

fn balance<T>(mut n: Box<Node<T>>) -> Box<Node<T>> {
    update(&mut n);
    let bf = height(&n.left) as i64 - height(&n.right) as i64;
    if bf > 1 {
        if let Some(l) = n.left.take() {
            n.left = Some(if height(&l.left) < height(&l.right) {
                rotate_left(l)
            } else {
                l
            });
        }
        rotate_right(n)
    } else if bf < -1 {
        if let Some(r) = n.right.take() {
            n.right = Some(if height(&r.right) < height(&r.left) {
                rotate_right(r)
            } else {
                r
            });
        }
        rotate_left(n)
    } else {
        n
    }
}

fn insert_node<T>(link: Link<T>, vad: Vad<T>) -> Box<Node<T>> {
    match link {
        None => Box::new(Node {
            vad,
            height: 1,
            left: None,
            right: None,
        }),
        Some(mut n) => {
            if vad.start < n.vad.start {
                n.left = Some(insert_node(n.left.take(), vad));
            } else {
                n.right = Some(insert_node(n.right.take(), vad));
            }
            balance(n)
        }
    }
}

/// Removes the minimum of a subtree; returns (rest, min).
fn take_min<T>(mut n: Box<Node<T>>) -> (Link<T>, Box<Node<T>>) {
    match n.left.take() {
        None => (n.right.take(), n),
        Some(l) => {
            let (rest, min) = take_min(l);
            n.left = rest;
            (Some(balance(n)), min)
        }
    }
}

fn remove_node<T>(link: Link<T>, start: Vpn, out: &mut Option<Vad<T>>) -> Link<T> {
    let mut n = link?;
    match start.cmp(&n.vad.start) {
        Ordering::Less => {
            n.left = remove_node(n.left.take(), start, out);
            Some(balance(n))
        }
        Ordering::Greater => {
            n.right = remove_node(n.right.take(), start, out);
            Some(balance(n))
        }
        Ordering::Equal => {
            let (left, right) = (n.left.take(), n.right.take());
            *out = Some(n.vad);
            match (left, right) {
                (None, r) => r,
                (l, None) => l,
                (l, Some(r)) => {
                    let (rest, mut min) = take_min(r);
                    min.left = l;
                    min.right = rest;
                    Some(balance(min))
                }
            }
        }
    }
}

impl<T> VadTree<T> {
    /// An empty tree.
    pub const fn new() -> Self {
        VadTree { root: None, len: 0 }
    }

    /// Number of VADs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no VADs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Height of the tree (0 when empty).
    pub fn height(&self) -> u32 {
        height(&self.root)
    }

    /// `MiLocateAddress`: the VAD containing `vpn`.
    pub fn find(&self, vpn: Vpn) -> Option<&Vad<T>> {
        let mut cur = self.root.as_deref();
        while let Some(n) = cur {
            if vpn < n.vad.start {
                cur = n.left.as_deref();
            } else if vpn > n.vad.end {
                cur = n.right.as_deref();
            } else {
                return Some(&n.vad);
            }
        }
        None
    }

    /// Mutable [`Self::find`]. The range must not be changed through it
    /// (only the payload); use remove + insert to resize.
    pub fn find_mut(&mut self, vpn: Vpn) -> Option<&mut Vad<T>> {
        let mut cur = self.root.as_deref_mut();
        while let Some(n) = cur {
            if vpn < n.vad.start {
                cur = n.left.as_deref_mut();
            } else if vpn > n.vad.end {
                cur = n.right.as_deref_mut();
            } else {
                return Some(&mut n.vad);
            }
        }
        None
    }

    /// `MiCheckForConflictingVad`: the first VAD overlapping `[start, end]`.
    pub fn first_overlapping(&self, start: Vpn, end: Vpn) -> Option<&Vad<T>> {
        let mut cur = self.root.as_deref();
        let mut best: Option<&Vad<T>> = None;
        while let Some(n) = cur {
            if n.vad.end < start {
                cur = n.right.as_deref();
            } else if n.vad.start > end {
                cur = n.left.as_deref();
            } else {
                best = Some(&n.vad);
                cur = n.left.as_deref();
            }
        }
        best
    }

    /// `MiInsertVad`: inserts `[start, end]`, rejecting overlap.
    pub fn insert(&mut self, start: Vpn, end: Vpn, data: T) -> Result<(), VadError> {
        if start > end {
            return Err(VadError::EmptyRange);
        }
        if self.first_overlapping(start, end).is_some() {
            return Err(VadError::Conflict);
        }
        self.root = Some(insert_node(self.root.take(), Vad { start, end, data }));
        self.len += 1;
        Ok(())
    }

    /// `MiRemoveVad`: removes the VAD starting exactly at `start`.
    pub fn remove(&mut self, start: Vpn) -> Option<Vad<T>> {
        let mut out = None;
        self.root = remove_node(self.root.take(), start, &mut out);
        if out.is_some() {
            self.len -= 1;
        }
        out
    }

    /// In-order iteration (ascending start).
    pub fn iter(&self) -> Iter<'_, T> {
        let mut it = Iter { stack: Vec::new() };
        it.push_left(self.root.as_deref());
        it
    }

    /// The VAD with the smallest start `> vpn`.
    pub fn next_after(&self, vpn: Vpn) -> Option<&Vad<T>> {
        let mut cur = self.root.as_deref();
        let mut best = None;
        while let Some(n) = cur {
            if n.vad.start > vpn {
                best = Some(&n.vad);
                cur = n.left.as_deref();
            } else {
                cur = n.right.as_deref();
            }
        }
        best
    }

    /// `MiFindEmptyAddressRange` / `MiFindEmptyAddressRangeDown`: a free run of
    /// `pages` pages starting at a multiple of `align` pages, inside
    /// `[low, high]` (inclusive VPNs). Returns its starting VPN.
    pub fn find_free(
        &self,
        pages: u64,
        align: u64,
        low: Vpn,
        high: Vpn,
        direction: SearchDirection,
    ) -> Option<Vpn> {
        if pages == 0 || align == 0 || low > high {
            return None;
        }
        // Gaps between VADs, clipped to [low, high]: (first free, last free).
        let mut gaps: Vec<(Vpn, Vpn)> = Vec::new();
        let mut cursor = low;
        let mut done = false;
        for v in self.iter() {
            if v.end < low {
                continue;
            }
            if v.start > high {
                break;
            }
            if v.start > cursor {
                gaps.push((cursor, v.start - 1));
            }
            match v.end.checked_add(1) {
                Some(c) if c <= high => cursor = cursor.max(c),
                _ => {
                    done = true;
                    break;
                }
            }
        }
        if !done && cursor <= high {
            gaps.push((cursor, high));
        }
        let fit_up = |(a, b): (Vpn, Vpn)| {
            let s = a.checked_add(align - 1)? / align * align;
            let e = s.checked_add(pages - 1)?;
            (e <= b).then_some(s)
        };
        let fit_down = |(a, b): (Vpn, Vpn)| {
            let last_start = b.checked_sub(pages - 1)?;
            let s = last_start / align * align;
            (s >= a).then_some(s)
        };
        match direction {
            SearchDirection::BottomUp => gaps.into_iter().find_map(fit_up),
            SearchDirection::TopDown => gaps.into_iter().rev().find_map(fit_down),
        }
    }

    /// Checks the AVL invariants (ordering, no overlap, stored heights,
    /// balance factor in -1..=1) and the length.
    pub fn verify(&self) -> Result<(), String> {
        fn walk<T>(
            n: &Link<T>,
            lo: Option<Vpn>,
            hi: Option<Vpn>,
            count: &mut usize,
        ) -> Result<u32, String> {
            let Some(n) = n else { return Ok(0) };
            *count += 1;
            if n.vad.start > n.vad.end {
                return Err(alloc::format!("empty VAD at {:#x}", n.vad.start));
            }
            if lo.is_some_and(|lo| n.vad.start <= lo) || hi.is_some_and(|hi| n.vad.end >= hi) {
                return Err(alloc::format!(
                    "VAD {:#x}-{:#x} out of order/overlapping",
                    n.vad.start,
                    n.vad.end
                ));
            }
            let lh = walk(&n.left, lo, Some(n.vad.start), count)?;
            let rh = walk(&n.right, Some(n.vad.end), hi, count)?;
            if lh.abs_diff(rh) > 1 {
                return Err(alloc::format!(
                    "unbalanced at {:#x}: {lh} vs {rh}",
                    n.vad.start
                ));
            }
            let h = 1 + lh.max(rh);
            if h != n.height {
                return Err(alloc::format!("stale height at {:#x}", n.vad.start));
            }
            Ok(h)
        }
        let mut count = 0;
        walk(&self.root, None, None, &mut count)?;
        if count != self.len {
            return Err(alloc::format!("len {} but {} nodes", self.len, count));
        }
        Ok(())
    }
}

/// In-order iterator over a [`VadTree`].
pub struct Iter<'a, T> {
    stack: Vec<&'a Node<T>>,
}

impl<'a, T> Iter<'a, T> {
    fn push_left(&mut self, mut n: Option<&'a Node<T>>) {
        while let Some(x) = n {
            self.stack.push(x);
            n = x.left.as_deref();
        }
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a Vad<T>;
    fn next(&mut self) -> Option<Self::Item> {
        let n = self.stack.pop()?;
        self.push_left(n.right.as_deref());
        Some(&n.vad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    #[test]
    fn insert_find_remove() {
        let mut t = VadTree::new();
        t.insert(0x10, 0x1f, 'a').unwrap();
        t.insert(0x30, 0x3f, 'b').unwrap();
        assert_eq!(t.insert(0x1f, 0x20, 'c'), Err(VadError::Conflict));
        assert_eq!(t.insert(0x0, 0x10, 'c'), Err(VadError::Conflict));
        assert_eq!(t.insert(0x5, 0x4, 'c'), Err(VadError::EmptyRange));
        t.insert(0x20, 0x2f, 'c').unwrap();
        assert_eq!(t.find(0x25).unwrap().data, 'c');
        assert!(t.find(0x40).is_none());
        assert_eq!(t.first_overlapping(0, 0x100).unwrap().start, 0x10);
        assert_eq!(t.next_after(0x10).unwrap().start, 0x20);
        assert_eq!(t.iter().map(|v| v.data).collect::<String>(), "acb");
        assert!(t.remove(0x21).is_none());
        assert_eq!(t.remove(0x20).unwrap().data, 'c');
        assert_eq!(t.len(), 2);
        t.verify().unwrap();
    }

    #[test]
    fn find_free_alignment_and_direction() {
        let mut t = VadTree::new();
        t.insert(0x10, 0x1f, ()).unwrap();
        t.insert(0x25, 0x2f, ()).unwrap();
        assert_eq!(
            t.find_free(16, 16, 0x10, 0xff, SearchDirection::BottomUp),
            Some(0x30)
        );
        assert_eq!(
            t.find_free(4, 16, 0x10, 0xff, SearchDirection::BottomUp),
            Some(0x20)
        );
        assert_eq!(
            t.find_free(16, 16, 0x10, 0xff, SearchDirection::TopDown),
            Some(0xf0)
        );
        assert_eq!(
            t.find_free(16, 16, 0x10, 0xfe, SearchDirection::TopDown),
            Some(0xe0)
        );
        assert_eq!(
            t.find_free(0x100, 16, 0x10, 0xff, SearchDirection::BottomUp),
            None
        );
        assert_eq!(
            t.find_free(1, 1, u64::MAX - 1, u64::MAX, SearchDirection::TopDown),
            Some(u64::MAX)
        );
    }

    #[test]
    fn stays_balanced_on_sequential_inserts() {
        let mut t = VadTree::new();
        for i in 0..1024u64 {
            t.insert(i * 2, i * 2, i).unwrap();
        }
        t.verify().unwrap();
        assert!(t.height() <= 11, "height {}", t.height());
        for i in 0..512u64 {
            t.remove(i * 4).unwrap();
        }
        t.verify().unwrap();
        assert_eq!(t.len(), 512);
    }

    fn model_free(
        model: &BTreeMap<u64, u64>,
        pages: u64,
        align: u64,
        low: u64,
        high: u64,
        up: bool,
    ) -> Option<u64> {
        let free =
            |s: u64| (s..=s + pages - 1).all(|p| !model.iter().any(|(&a, &b)| p >= a && p <= b));
        let starts = (low..=high).filter(|s| s % align == 0 && s + pages - 1 <= high);
        if up {
            starts.into_iter().find(|&s| free(s))
        } else {
            starts.into_iter().rev().find(|&s| free(s))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_btreemap_model(ops in proptest::collection::vec((0u8..4, 0u64..200, 1u64..12, 1u64..5), 1..120)) {
            let mut t = VadTree::new();
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            for (kind, a, len, al) in ops {
                match kind {
                    0 | 1 => {
                        let end = a + len - 1;
                        let overlap = model.iter().any(|(&s, &e)| s <= end && a <= e);
                        let r = t.insert(a, end, a ^ 0x55);
                        if overlap {
                            prop_assert_eq!(r, Err(VadError::Conflict));
                        } else {
                            prop_assert_eq!(r, Ok(()));
                            model.insert(a, end);
                        }
                    }
                    2 => {
                        let key = model.keys().copied().find(|&k| k >= a);
                        let key = key.unwrap_or(a);
                        let r = t.remove(key).map(|v| (v.start, v.end, v.data));
                        prop_assert_eq!(r, model.remove(&key).map(|e| (key, e, key ^ 0x55)));
                    }
                    _ => {
                        let (low, high) = (a / 2, a / 2 + 60);
                        for up in [true, false] {
                            let dir = if up { SearchDirection::BottomUp } else { SearchDirection::TopDown };
                            prop_assert_eq!(t.find_free(len, al, low, high, dir), model_free(&model, len, al, low, high, up));
                        }
                        let hit = model.iter().find(|(&s, &e)| a >= s && a <= e).map(|(&s, _)| s);
                        prop_assert_eq!(t.find(a).map(|v| v.start), hit);
                    }
                }
                t.verify().map_err(TestCaseError::fail)?;
                let got: Vec<(u64, u64)> = t.iter().map(|v| (v.start, v.end)).collect();
                let want: Vec<(u64, u64)> = model.iter().map(|(&s, &e)| (s, e)).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
