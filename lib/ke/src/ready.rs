//! Per-processor ready queues (`KPRCB.DispatcherReadyListHead[32]`) and the
//! `ReadySummary` bitmap: bit *n* is set exactly when queue *n* is non-empty,
//! so the highest-priority ready thread is one bit scan away.

use crate::MAXIMUM_PRIORITY;
use alloc::collections::VecDeque;

/// A processor's ready queues over thread identifiers `T`.
#[derive(Clone, Debug)]
pub struct ReadyQueues<T> {
    lists: [VecDeque<T>; MAXIMUM_PRIORITY as usize],
    summary: u32,
}

impl<T: Copy + PartialEq> Default for ReadyQueues<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + PartialEq> ReadyQueues<T> {
    pub fn new() -> Self {
        ReadyQueues {
            lists: core::array::from_fn(|_| VecDeque::new()),
            summary: 0,
        }
    }

    /// `ReadySummary`.
    pub fn summary(&self) -> u32 {
        self.summary
    }

    /// Ready threads at every priority.
    pub fn len(&self) -> usize {
        self.lists.iter().map(|l| l.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.summary == 0
    }

    /// Inserts at the tail (a thread that used its quantum or just became
    /// ready) or the head (a thread preempted before its quantum ended keeps
    /// its turn), as `KiInsertDeferredReadyList` chooses.
    pub fn insert(&mut self, thread: T, priority: u8, at_head: bool) {
        let p = priority.min(MAXIMUM_PRIORITY - 1) as usize;
        if at_head {
            self.lists[p].push_front(thread);
        } else {
            self.lists[p].push_back(thread);
        }
        self.summary |= 1 << p;
    }

    /// The highest priority with a ready thread.
    pub fn highest_priority(&self) -> Option<u8> {
        (self.summary != 0).then(|| 31 - self.summary.leading_zeros() as u8)
    }

    /// Removes and returns the first thread of the highest non-empty queue
    /// (`KiSelectReadyThread`), if its priority is at least `min_priority`.
    pub fn select(&mut self, min_priority: u8) -> Option<(T, u8)> {
        let p = self.highest_priority()?;
        if p < min_priority {
            return None;
        }
        let t = self.lists[p as usize].pop_front()?;
        if self.lists[p as usize].is_empty() {
            self.summary &= !(1 << p);
        }
        Some((t, p))
    }

    /// Removes a specific thread (it was readied elsewhere, or terminated);
    /// returns whether it was queued.
    pub fn remove(&mut self, thread: T, priority: u8) -> bool {
        let p = priority.min(MAXIMUM_PRIORITY - 1) as usize;
        let Some(i) = self.lists[p].iter().position(|&t| t == thread) else {
            return false;
        };
        self.lists[p].remove(i);
        if self.lists[p].is_empty() {
            self.summary &= !(1 << p);
        }
        true
    }

    /// Threads queued at one priority, in order (kd `!ready`).
    pub fn queue(&self, priority: u8) -> impl Iterator<Item = &T> {
        self.lists[priority.min(MAXIMUM_PRIORITY - 1) as usize].iter()
    }

    /// Whether a thread at `priority` must preempt one running at `running`:
    /// strictly higher priority only (equal priority waits for the quantum).
    pub fn preempts(priority: u8, running: u8) -> bool {
        priority > running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_highest_then_fifo() {
        let mut q = ReadyQueues::new();
        q.insert(1u32, 8, false);
        q.insert(2, 8, false);
        q.insert(3, 12, false);
        q.insert(4, 1, false);
        assert_eq!(q.summary(), (1 << 8) | (1 << 12) | (1 << 1));
        assert_eq!(q.select(0), Some((3, 12)));
        assert_eq!(q.select(0), Some((1, 8)));
        assert_eq!(q.select(9), None, "nothing at or above 9");
        assert_eq!(q.select(0), Some((2, 8)));
        assert_eq!(q.summary(), 1 << 1);
        assert_eq!(q.select(0), Some((4, 1)));
        assert!(q.is_empty());
        assert_eq!(q.select(0), None);
    }

    #[test]
    fn preempted_thread_goes_to_the_head() {
        let mut q = ReadyQueues::new();
        q.insert(1u32, 10, false);
        q.insert(2, 10, true);
        assert_eq!(q.queue(10).copied().collect::<alloc::vec::Vec<_>>(), [2, 1]);
    }

    #[test]
    fn remove_clears_summary_bit() {
        let mut q = ReadyQueues::new();
        q.insert(7u32, 31, false);
        q.insert(8, 0, false);
        assert!(q.remove(7, 31));
        assert!(!q.remove(7, 31));
        assert_eq!(q.summary(), 1);
        assert_eq!(q.highest_priority(), Some(0));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn preemption_is_strict() {
        assert!(ReadyQueues::<u32>::preempts(9, 8));
        assert!(!ReadyQueues::<u32>::preempts(8, 8));
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn summary_tracks_queues(ops in proptest::collection::vec((0u8..32, any::<bool>(), any::<bool>()), 1..300)) {
                let mut q = ReadyQueues::new();
                let mut model: alloc::vec::Vec<(u32, u8)> = alloc::vec::Vec::new();
                for (n, (prio, insert, head)) in ops.into_iter().enumerate() {
                    if insert {
                        q.insert(n as u32, prio, head);
                        model.push((n as u32, prio));
                    } else if let Some((t, p)) = q.select(0) {
                        let best = model.iter().map(|m| m.1).max().unwrap();
                        prop_assert_eq!(p, best);
                        let i = model.iter().position(|m| *m == (t, p)).unwrap();
                        model.remove(i);
                    } else {
                        prop_assert!(model.is_empty());
                    }
                    let mut expect = 0u32;
                    for m in &model { expect |= 1 << m.1; }
                    prop_assert_eq!(q.summary(), expect);
                    prop_assert_eq!(q.len(), model.len());
                }
            }
        }
    }
}
