//! A stream's dirty pages as a set of page runs.
//!
//! NT tracks the dirty pages of a stream cached through `CcCopyWrite` in the
//! shared cache map's bitmap ranges (`MBCB`, `BITMAP_RANGE`); ntrs keeps the
//! same information as coalesced runs of page numbers, which costs nothing
//! per clean page and makes "the next N dirty pages from here" cheap for the
//! lazy writer.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// A run of pages `[first, first + count)` (page numbers in the stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRun {
    /// First page number (file offset >> 12).
    pub first: u64,
    /// Number of pages.
    pub count: u64,
}

impl PageRun {
    /// One past the last page.
    pub fn end(&self) -> u64 {
        self.first + self.count
    }
}

/// A set of page numbers kept as non-overlapping, non-adjacent runs.
#[derive(Clone, Debug, Default)]
pub struct DirtyRuns {
    /// start -> end (exclusive). Runs never overlap or touch.
    runs: BTreeMap<u64, u64>,
    pages: u64,
}

impl DirtyRuns {
    /// An empty set.
    pub const fn new() -> Self {
        DirtyRuns {
            runs: BTreeMap::new(),
            pages: 0,
        }
    }

    /// Pages in the set.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Whether `page` is in the set.
    pub fn contains(&self, page: u64) -> bool {
        self.runs
            .range(..=page)
            .next_back()
            .is_some_and(|(_, &e)| page < e)
    }

    /// Adds `[first, end)`; returns how many pages were not in the set.
    pub fn insert(&mut self, first: u64, end: u64) -> u64 {
        if first >= end {
            return 0;
        }
        let mut start = first;
        let mut stop = end;
        let mut covered = 0;
        // Absorb a run that starts at or before `first` and reaches it.
        if let Some((&s, &e)) = self.runs.range(..=first).next_back() {
            if e >= first {
                start = s;
                stop = stop.max(e);
                covered += e.min(end).saturating_sub(first);
                self.runs.remove(&s);
            }
        }
        // Absorb every run starting inside (first, end].
        loop {
            let next = self.runs.range(first..=stop).next().map(|(&s, &e)| (s, e));
            let Some((s, e)) = next else { break };
            covered += e.min(end).saturating_sub(s.max(first));
            stop = stop.max(e);
            self.runs.remove(&s);
        }
        self.runs.insert(start, stop);
        let added = (end - first) - covered;
        self.pages += added;
        added
    }

    /// Removes `[first, end)`; returns how many pages were in the set.
    pub fn remove(&mut self, first: u64, end: u64) -> u64 {
        if first >= end {
            return 0;
        }
        let mut removed = 0;
        let hits: Vec<(u64, u64)> = self
            .runs
            .range(..end)
            .rev()
            .take_while(|(_, &e)| e > first)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in hits {
            if e <= first {
                continue;
            }
            self.runs.remove(&s);
            if s < first {
                self.runs.insert(s, first);
            }
            if e > end {
                self.runs.insert(end, e);
            }
            removed += e.min(end) - s.max(first);
        }
        self.pages -= removed;
        removed
    }

    /// The runs intersecting `[first, end)`, clipped to it.
    pub fn runs_in(&self, first: u64, end: u64) -> Vec<PageRun> {
        let mut out = Vec::new();
        let start_key = self
            .runs
            .range(..=first)
            .next_back()
            .map_or(first, |(&s, _)| s);
        for (&s, &e) in self.runs.range(start_key..end) {
            let a = s.max(first);
            let b = e.min(end);
            if a < b {
                out.push(PageRun {
                    first: a,
                    count: b - a,
                });
            }
        }
        out
    }

    /// Removes and returns up to `max` dirty pages, starting at page
    /// `cursor` and wrapping round to the start of the
    /// stream (the lazy writer's round-robin over a file). Runs are split
    /// at `max`.
    pub fn take_from(&mut self, cursor: u64, max: u64) -> Vec<PageRun> {
        let mut out = Vec::new();
        let mut budget = max;
        let mut order = self.runs_in(cursor, u64::MAX);
        order.extend(self.runs_in(0, cursor));
        for r in order {
            if budget == 0 {
                break;
            }
            let n = r.count.min(budget);
            out.push(PageRun {
                first: r.first,
                count: n,
            });
            budget -= n;
        }
        for r in &out {
            self.remove(r.first, r.end());
        }
        out
    }

    /// Every run, in order.
    pub fn iter(&self) -> impl Iterator<Item = PageRun> + '_ {
        self.runs.iter().map(|(&s, &e)| PageRun {
            first: s,
            count: e - s,
        })
    }

    /// Empties the set; returns how many pages it held.
    pub fn clear(&mut self) -> u64 {
        let n = self.pages;
        self.runs.clear();
        self.pages = 0;
        n
    }

    /// Checks the invariants (for tests): runs ordered, non-empty,
    /// non-touching, and the page count right.
    pub fn verify(&self) -> bool {
        let mut prev_end: Option<u64> = None;
        let mut n = 0;
        for (&s, &e) in &self.runs {
            if s >= e || prev_end.is_some_and(|p| p >= s) {
                return false;
            }
            n += e - s;
            prev_end = Some(e);
        }
        n == self.pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use proptest::prelude::*;

    #[test]
    fn insert_merges_and_counts() {
        let mut d = DirtyRuns::new();
        assert_eq!(d.insert(10, 20), 10);
        assert_eq!(d.insert(20, 25), 5);
        assert_eq!(d.iter().count(), 1);
        assert_eq!(d.insert(5, 30), 10);
        assert_eq!(d.pages(), 25);
        assert_eq!(d.remove(10, 12), 2);
        assert_eq!(d.iter().count(), 2);
        assert!(!d.contains(11));
        assert!(d.contains(12));
        assert!(d.verify());
    }

    #[test]
    fn take_from_wraps_and_splits() {
        let mut d = DirtyRuns::new();
        d.insert(0, 4);
        d.insert(100, 110);
        let t = d.take_from(50, 6);
        assert_eq!(
            t,
            [PageRun {
                first: 100,
                count: 6
            }]
        );
        let t = d.take_from(106, 10);
        assert_eq!(
            t,
            [
                PageRun {
                    first: 106,
                    count: 4
                },
                PageRun { first: 0, count: 4 }
            ]
        );
        assert_eq!(d.pages(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Remove(u64, u64),
        Take(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..200, 0u64..40).prop_map(|(a, n)| Op::Insert(a, a + n)),
            (0u64..200, 0u64..40).prop_map(|(a, n)| Op::Remove(a, a + n)),
            (0u64..200, 0u64..30).prop_map(|(c, n)| Op::Take(c, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_a_set_model(ops in proptest::collection::vec(op(), 1..60)) {
            let mut d = DirtyRuns::new();
            let mut m = BTreeSet::new();
            for o in ops {
                match o {
                    Op::Insert(a, b) => {
                        let before = m.len() as u64;
                        m.extend(a..b);
                        prop_assert_eq!(d.insert(a, b), m.len() as u64 - before);
                    }
                    Op::Remove(a, b) => {
                        let before = m.len() as u64;
                        m.retain(|p| !(a..b).contains(p));
                        prop_assert_eq!(d.remove(a, b), before - m.len() as u64);
                    }
                    Op::Take(c, n) => {
                        let got = d.take_from(c, n);
                        let want: alloc::vec::Vec<u64> = m.range(c..).chain(m.range(..c))
                            .copied().take(n as usize).collect();
                        let flat: alloc::vec::Vec<u64> =
                            got.iter().flat_map(|r| r.first..r.end()).collect();
                        prop_assert_eq!(&flat, &want);
                        for p in want { m.remove(&p); }
                    }
                }
                prop_assert!(d.verify());
                prop_assert_eq!(d.pages(), m.len() as u64);
                let runs = d.runs_in(20, 120);
                let flat: alloc::vec::Vec<u64> =
                    runs.iter().flat_map(|r| r.first..r.end()).collect();
                let want: alloc::vec::Vec<u64> = m.range(20..120).copied().collect();
                prop_assert_eq!(flat, want);
            }
        }
    }
}
