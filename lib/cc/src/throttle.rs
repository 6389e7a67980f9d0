//! Write throttling (`CcCanIWrite`, `CcDeferWrite`) and the lazy writer's
//! scan quota.
//!
//! *Windows Internals* 7th ed., Part 2, ch. 11, "Write throttling" and
//! "Lazy writing": a cached write that would take the system's dirty pages
//! (`CcTotalDirtyPages`) past the dirty page threshold
//! (`CcDirtyPageThreshold`), or a stream's dirty pages past its own
//! threshold (`CcSetDirtyPageThreshold`), is not allowed to proceed: a caller
//! that can wait blocks until the lazy writer has written enough, one that
//! cannot gets FALSE and queues the write with `CcDeferWrite`; the lazy
//! writer posts deferred writes in order once they fit. Writes are also held
//! off while available memory is below `MmThrottleTop` (the memory
//! manager's low-memory mark) and the modified page writer cannot keep up.
//!
//! The lazy writer runs once a second and writes one eighth of the dirty
//! pages on each pass, more when the dirty pages exceed the threshold, so a
//! dirty page normally reaches the disk within a few seconds.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The inputs of a `CcCanIWrite` decision.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThrottleState {
    /// `CcTotalDirtyPages`.
    pub total_dirty: u64,
    /// `CcDirtyPageThreshold`.
    pub threshold: u64,
    /// `MmAvailablePages`.
    pub available_pages: u64,
    /// `MmThrottleTop`: below this many available pages writes wait.
    pub throttle_top: u64,
}

/// The stream being written.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamThrottle {
    /// Its dirty pages.
    pub dirty: u64,
    /// Its own threshold (`CcSetDirtyPageThreshold`), 0 for none.
    pub threshold: u64,
    /// The file object is write-through (`FO_WRITE_THROUGH`): its data goes
    /// to disk with the write, so it adds nothing for the lazy writer.
    pub write_through: bool,
}

/// Why a write is held off, or `None` if it may proceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    /// The system's dirty pages would pass `CcDirtyPageThreshold`.
    GlobalThreshold,
    /// The stream's dirty pages would pass its own threshold.
    StreamThreshold,
    /// Available pages are below `MmThrottleTop`.
    LowMemory,
    /// Earlier writes are queued (`CcDeferredWrites`); a new write waits its
    /// turn behind them.
    QueuedBehind,
}

/// Pages a write of `bytes` at `offset` dirties at most.
pub fn pages_spanned(offset: u64, bytes: u64) -> u64 {
    if bytes == 0 {
        return 0;
    }
    let first = offset >> 12;
    let last = (offset + bytes - 1) >> 12;
    last - first + 1
}

/// `CcCanIWrite`'s decision for a write dirtying `pages` pages.
/// `retrying` is TRUE when the caller is a deferred write being posted
/// (it is already at the head of the queue); `queue_empty` says whether
/// `CcDeferredWrites` is empty.
pub fn can_i_write(
    g: &ThrottleState,
    s: &StreamThrottle,
    pages: u64,
    retrying: bool,
    queue_empty: bool,
) -> Option<Throttle> {
    if s.write_through {
        return None;
    }
    if !retrying && !queue_empty {
        return Some(Throttle::QueuedBehind);
    }
    if s.threshold != 0 && s.dirty.saturating_add(pages) > s.threshold {
        return Some(Throttle::StreamThreshold);
    }
    if g.total_dirty.saturating_add(pages) > g.threshold {
        return Some(Throttle::GlobalThreshold);
    }
    if g.available_pages < g.throttle_top {
        return Some(Throttle::LowMemory);
    }
    None
}

/// A queued write (`DEFERRED_WRITE`): the kernel keeps the callback and its
/// context under `token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeferredWrite {
    /// The kernel's handle for the entry (callback, contexts, event).
    pub token: u64,
    /// The stream (shared cache map id).
    pub map: u32,
    /// Pages the write will dirty.
    pub pages: u64,
    /// Bytes the caller asked for (`BytesToWrite`, for `!defwrites`).
    pub bytes: u64,
}

/// `CcDeferredWrites`: FIFO of writes waiting for the throttle to open.
#[derive(Clone, Debug, Default)]
pub struct DeferredWrites {
    queue: VecDeque<DeferredWrite>,
    /// Writes posted from the queue since boot.
    pub posted: u64,
}

impl DeferredWrites {
    /// An empty queue.
    pub const fn new() -> Self {
        DeferredWrites {
            queue: VecDeque::new(),
            posted: 0,
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queued writes in order.
    pub fn iter(&self) -> impl Iterator<Item = &DeferredWrite> {
        self.queue.iter()
    }

    /// `CcDeferWrite`: queue at the tail (`retrying`: at the head, as NT
    /// requeues a write that was posted and failed again).
    pub fn push(&mut self, w: DeferredWrite, retrying: bool) {
        if retrying {
            self.queue.push_front(w);
        } else {
            self.queue.push_back(w);
        }
    }

    /// Removes an entry (a waiter that gave up); returns it.
    pub fn remove(&mut self, token: u64) -> Option<DeferredWrite> {
        let i = self.queue.iter().position(|w| w.token == token)?;
        self.queue.remove(i)
    }

    /// `CcPostDeferredWrites`: takes the writes that may proceed now, in
    /// order, stopping at the first that may not (later ones wait behind it,
    /// keeping writers in FIFO order). Each taken write's pages are counted
    /// against the state as they are taken, so the batch as a whole fits.
    /// `stream(map)` gives each stream's throttle inputs.
    pub fn post(
        &mut self,
        g: &ThrottleState,
        mut stream: impl FnMut(u32) -> StreamThrottle,
    ) -> Vec<DeferredWrite> {
        let mut out = Vec::new();
        let mut g = *g;
        while let Some(w) = self.queue.front().copied() {
            let mut s = stream(w.map);
            s.dirty += out
                .iter()
                .filter(|o: &&DeferredWrite| o.map == w.map)
                .map(|o| o.pages)
                .sum::<u64>();
            // The head of a non-empty queue may always be tried once nothing
            // is dirty (an oversized write must not wait forever).
            let nothing_dirty = g.total_dirty == 0 && out.is_empty();
            if !nothing_dirty && can_i_write(&g, &s, w.pages, true, true).is_some() {
                break;
            }
            self.queue.pop_front();
            g.total_dirty += w.pages;
            self.posted += 1;
            out.push(w);
        }
        out
    }
}

/// Fewest pages a lazy writer pass writes when any is dirty (ntrs: one
/// 64 KiB run, so a few dirty pages are written in one pass instead of one
/// page a second).
pub const LAZY_WRITE_MINIMUM: u64 = 16;

/// Pages the lazy writer writes in one pass (`CcCalculatePagesToWrite`):
/// one eighth of the dirty pages (at least [`LAZY_WRITE_MINIMUM`]), plus
/// everything above the threshold's target when the system is over it.
/// The target is the dirty page level the lazy writer aims to stay under
/// (ntrs: three quarters of the threshold).
pub fn pages_to_write(total_dirty: u64, threshold: u64) -> u64 {
    if total_dirty == 0 {
        return 0;
    }
    let mut n = total_dirty.div_ceil(8).max(LAZY_WRITE_MINIMUM);
    let target = threshold / 4 * 3;
    if total_dirty > target {
        n += total_dirty - target;
    }
    n.min(total_dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(total: u64) -> ThrottleState {
        ThrottleState {
            total_dirty: total,
            threshold: 1000,
            available_pages: 10_000,
            throttle_top: 250,
        }
    }

    #[test]
    fn below_threshold_writes_proceed() {
        let s = StreamThrottle::default();
        assert_eq!(can_i_write(&g(0), &s, 1000, false, true), None);
        assert_eq!(
            can_i_write(&g(1), &s, 1000, false, true),
            Some(Throttle::GlobalThreshold)
        );
    }

    #[test]
    fn per_stream_threshold_and_write_through() {
        let mut s = StreamThrottle {
            dirty: 90,
            threshold: 100,
            write_through: false,
        };
        assert_eq!(can_i_write(&g(0), &s, 10, false, true), None);
        assert_eq!(
            can_i_write(&g(0), &s, 11, false, true),
            Some(Throttle::StreamThreshold)
        );
        s.write_through = true;
        assert_eq!(can_i_write(&g(5000), &s, 11, false, false), None);
    }

    #[test]
    fn low_memory_and_queue_order() {
        let s = StreamThrottle::default();
        let mut low = g(0);
        low.available_pages = 100;
        assert_eq!(
            can_i_write(&low, &s, 1, false, true),
            Some(Throttle::LowMemory)
        );
        assert_eq!(
            can_i_write(&g(0), &s, 1, false, false),
            Some(Throttle::QueuedBehind)
        );
        assert_eq!(can_i_write(&g(0), &s, 1, true, false), None);
    }

    #[test]
    fn deferred_writes_post_in_order_while_they_fit() {
        let mut q = DeferredWrites::new();
        for (t, pages) in [(1, 300), (2, 300), (3, 600), (4, 1)] {
            q.push(
                DeferredWrite {
                    token: t,
                    map: 0,
                    pages,
                    bytes: pages * 4096,
                },
                false,
            );
        }
        // 100 dirty: 1 and 2 fit (700), 3 would reach 1300: stop there,
        // and 4 stays behind 3 although it would fit.
        let got = q.post(&g(100), |_| StreamThrottle::default());
        assert_eq!(got.iter().map(|w| w.token).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(q.iter().map(|w| w.token).collect::<Vec<_>>(), [3, 4]);
        // Nothing dirty: even a write larger than the threshold goes.
        let mut big = DeferredWrites::new();
        big.push(
            DeferredWrite {
                token: 9,
                map: 0,
                pages: 5000,
                bytes: 0,
            },
            false,
        );
        assert_eq!(big.post(&g(0), |_| StreamThrottle::default()).len(), 1);
        assert_eq!(q.remove(4).map(|w| w.token), Some(4));
    }

    #[test]
    fn lazy_writer_quota() {
        assert_eq!(pages_to_write(0, 1000), 0);
        assert_eq!(pages_to_write(1, 1000), 1);
        assert_eq!(pages_to_write(80, 1000), 16);
        assert_eq!(pages_to_write(400, 1000), 50);
        // Over the target (750): one eighth plus the excess.
        assert_eq!(pages_to_write(800, 1000), 100 + 50);
        assert_eq!(pages_to_write(5000, 1000), 625 + 4250);
        assert_eq!(pages_to_write(100, 0), 100);
        assert_eq!(pages_spanned(4095, 2), 2);
        assert_eq!(pages_spanned(0, 4096), 1);
        assert_eq!(pages_spanned(0, 0), 0);
    }
}
