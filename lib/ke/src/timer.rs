//! The timer table (*Windows Internals*, Part 2, ch. 8, "Timer processing",
//! "Timer expiration"): `KTIMER`s hang in 256 list heads indexed by their
//! due time in clock ticks modulo 256 (`KiTimerTableListHead`), each list
//! sorted by due time. The clock interrupt only has to look at the lists
//! between the last tick processed and now; expiry hands back the expired
//! timers in due order (the kernel signals their dispatcher objects through
//! [`crate::objects::Dispatcher::signal_timer`] and queues their DPCs), and
//! periodic timers are re-inserted one period later.
//!
//! Times are interrupt time in 100 ns units (`KeQueryInterruptTime`). A
//! timer is named by a [`TimerId`] the kernel chooses (ntrs: a thread's id
//! for the timeout of its wait — NT's `KTHREAD.Timer` —, or a slot past the
//! thread ids for a `KTIMER`); the table is an arena indexed by it. What a
//! timer queues at expiry (`KTIMER.Dpc`) is the kernel's own name for the
//! DPC (`D`; the host tests use numbers).

use alloc::vec::Vec;
use core::fmt;

/// Number of timer list heads (`TIMER_TABLE_SIZE`).
pub const TIMER_TABLE_SIZE: usize = 256;
/// `KeMaximumIncrement`: one clock tick, 15.625 ms in 100 ns units.
pub const CLOCK_TICK: u64 = 156_250;
/// Timers each list has room for without allocating.
const LIST_CAPACITY: usize = 4;
/// 100 ns units per millisecond (periods are given in ms, as `KeSetTimerEx`).
const UNITS_PER_MS: u64 = 10_000;

/// A timer in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u32);

/// When a timer is due (`KeSetTimerEx`'s `DueTime`). NT passes absolute
/// times as system time and relative ones as negative values; here both are
/// explicit and absolute times are already interrupt time (the kernel
/// converts system time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueTime {
    /// At this interrupt time.
    Absolute(u64),
    /// This many 100 ns units after `now`.
    Relative(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry<D> {
    due: u64,
    /// Period in 100 ns units (0: one-shot).
    period: u64,
    dpc: Option<D>,
    /// The list head it hangs on.
    list: usize,
}

/// A timer that expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired<D = u32> {
    pub timer: TimerId,
    /// The due time it expired for.
    pub due: u64,
    /// The DPC to queue (`KTIMER.Dpc`).
    pub dpc: Option<D>,
    /// Its period in 100 ns units; non-zero means it was re-inserted.
    pub period: u64,
}

/// One line of the `!timer` dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerInfo<D = u32> {
    pub timer: TimerId,
    pub due: u64,
    /// Period in 100 ns units (0: one-shot).
    pub period: u64,
    pub dpc: Option<D>,
    /// The list head it hangs on.
    pub hand: usize,
}

impl<D: fmt::Display> fmt::Display for TimerInfo<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:3} timer {:5} due {:#018x} period {:6} ms",
            self.hand,
            self.timer.0,
            self.due,
            self.period / UNITS_PER_MS
        )?;
        match &self.dpc {
            Some(d) => write!(f, " dpc {d}"),
            None => write!(f, " no dpc"),
        }
    }
}

/// Errors of the timer table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// The timer id is beyond the table's capacity.
    BadTimer(TimerId),
}

impl fmt::Display for TimerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimerError::BadTimer(t) => write!(f, "timer {} outside the timer table", t.0),
        }
    }
}

/// The timer table.
#[derive(Clone, Debug)]
pub struct TimerTable<D = u32> {
    /// `KiTimerTableListHead`: per list, timers sorted by due time.
    lists: [Vec<TimerId>; TIMER_TABLE_SIZE],
    /// Per timer: its entry while inserted.
    timers: Vec<Option<Entry<D>>>,
    /// The tick up to which expiry has been processed.
    last_tick: u64,
    inserted: usize,
    /// One bit per list head: set while the list holds a timer, so that
    /// [`TimerTable::next_due`] looks only at non-empty lists (the clock
    /// path computes it after every expiry).
    occupied: [u64; TIMER_TABLE_SIZE / 64],
}

fn hand(due: u64) -> usize {
    ((due / CLOCK_TICK) % TIMER_TABLE_SIZE as u64) as usize
}

impl<D: Copy> TimerTable<D> {
    /// A table for timer ids `0..capacity`.
    pub fn with_capacity(capacity: u32) -> Self {
        TimerTable {
            // Room for a few timers per list from the start, so that
            // expiry (which re-links periodic timers, in the dispatch
            // interrupt) does not allocate as timers move to lists they
            // have not used before.
            lists: core::array::from_fn(|_| Vec::with_capacity(LIST_CAPACITY)),
            timers: alloc::vec![None; capacity as usize],
            last_tick: 0,
            inserted: 0,
            occupied: [0; TIMER_TABLE_SIZE / 64],
        }
    }

    /// Updates list `h`'s bit in `occupied` after a change to it.
    fn note_list(&mut self, h: usize) {
        let bit = 1u64 << (h % 64);
        if self.lists[h].is_empty() {
            self.occupied[h / 64] &= !bit;
        } else {
            self.occupied[h / 64] |= bit;
        }
    }

    /// Makes room for timer ids `0..capacity` (never shrinks).
    pub fn grow(&mut self, capacity: u32) {
        if capacity as usize > self.timers.len() {
            self.timers.resize(capacity as usize, None);
        }
    }

    /// Timers currently inserted.
    pub fn len(&self) -> usize {
        self.inserted
    }

    pub fn is_empty(&self) -> bool {
        self.inserted == 0
    }

    fn slot(&mut self, t: TimerId) -> Result<&mut Option<Entry<D>>, TimerError> {
        self.timers
            .get_mut(t.0 as usize)
            .ok_or(TimerError::BadTimer(t))
    }

    /// Whether `t` is in the table (`KTIMER.Header.Inserted`).
    pub fn is_inserted(&self, t: TimerId) -> bool {
        self.timers.get(t.0 as usize).is_some_and(|e| e.is_some())
    }

    fn unlink(&mut self, t: TimerId, h: usize) {
        let list = &mut self.lists[h];
        if let Some(i) = list.iter().position(|&x| x == t) {
            list.remove(i);
        }
        self.note_list(h);
        self.inserted -= 1;
    }

    /// Links `t` due at `due`. A timer already due hangs on the list of the
    /// last processed tick so the next expiry scan sees it.
    fn link(&mut self, t: TimerId, due: u64, period: u64, dpc: Option<D>) {
        let list = hand(due.max(self.last_tick * CLOCK_TICK));
        let e = Entry {
            due,
            period,
            dpc,
            list,
        };
        let timers = &self.timers;
        let h = list;
        let list = &mut self.lists[h];
        // After every timer due at or before it: equal due times expire in insertion order.
        let at = list.partition_point(|x| {
            timers
                .get(x.0 as usize)
                .and_then(|s| s.as_ref())
                .is_some_and(|o| o.due <= e.due)
        });
        list.insert(at, t);
        self.occupied[h / 64] |= 1 << (h % 64);
        self.timers[t.0 as usize] = Some(e);
        self.inserted += 1;
    }

    /// `KeSetTimerEx`: (re)inserts `t` due at `due` (relative times count
    /// from `now`), periodic every `period_ms` milliseconds if non-zero,
    /// queuing `dpc` when it expires. Returns whether the timer was already
    /// inserted (it is cancelled first, as NT does). A due time at or before
    /// `now` expires at the next [`TimerTable::expire`]. Due times that would
    /// overflow saturate at `u64::MAX` (never expire in practice).
    pub fn set(
        &mut self,
        t: TimerId,
        now: u64,
        due: DueTime,
        period_ms: u32,
        dpc: Option<D>,
    ) -> Result<bool, TimerError> {
        let was = self.cancel(t)?;
        let due = match due {
            DueTime::Absolute(d) => d,
            DueTime::Relative(r) => now.saturating_add(r),
        };
        let period = u64::from(period_ms) * UNITS_PER_MS;
        self.link(t, due, period, dpc);
        Ok(was)
    }

    /// `KeCancelTimer`: removes `t`; returns whether it was inserted.
    pub fn cancel(&mut self, t: TimerId) -> Result<bool, TimerError> {
        match self.slot(t)?.take() {
            Some(e) => {
                self.unlink(t, e.list);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The earliest due time (for the clock interrupt's "is anything due"
    /// check and for tick skipping): the least first entry of the 256
    /// lists, each being sorted by due time.
    pub fn next_due(&self) -> Option<u64> {
        let mut min = None;
        for (w, &bits) in self.occupied.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let h = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let due = self.lists[h]
                    .first()
                    .and_then(|t| self.timers.get(t.0 as usize).copied().flatten())
                    .map(|e| e.due);
                min = match (min, due) {
                    (Some(m), Some(d)) => Some(core::cmp::min(m, d)),
                    (m, d) => m.or(d),
                };
            }
        }
        min
    }

    /// `KiTimerExpiration`: removes every timer due at or before `now`,
    /// appending them to `out` in due order (ties by insertion order), and
    /// re-inserts periodic ones one period after `now`
    /// (`KiTimerListExpire`). Only the lists for the ticks since the last
    /// call are scanned (all 256 after a long gap).
    pub fn expire(&mut self, now: u64, out: &mut Vec<Expired<D>>) {
        let start = out.len();
        let now_tick = now / CLOCK_TICK;
        let first = self.last_tick.min(now_tick);
        let span = (now_tick - first).min(TIMER_TABLE_SIZE as u64 - 1);
        for k in 0..=span {
            let h = ((now_tick - k) % TIMER_TABLE_SIZE as u64) as usize;
            let mut i = 0;
            while let Some(&t) = self.lists[h].get(i) {
                let Some(e) = self.timers.get(t.0 as usize).copied().flatten() else {
                    i += 1;
                    continue;
                };
                if e.due > now {
                    // Sorted by due time: the rest of this list is later.
                    break;
                }
                self.lists[h].remove(i);
                self.note_list(h);
                self.timers[t.0 as usize] = None;
                self.inserted -= 1;
                out.push(Expired {
                    timer: t,
                    due: e.due,
                    dpc: e.dpc,
                    period: e.period,
                });
            }
        }
        self.last_tick = now_tick;
        // Usually one list was scanned, and it is sorted already.
        if !out[start..].is_sorted_by_key(|x| x.due) {
            out[start..].sort_by_key(|x| x.due);
        }
        for x in &out[start..] {
            if x.period != 0 {
                let due = now.saturating_add(x.period);
                self.link(x.timer, due, x.period, x.dpc);
            }
        }
    }

    /// The `!timer` dump: every inserted timer in due order.
    pub fn dump(&self) -> Vec<TimerInfo<D>> {
        let mut v: Vec<TimerInfo<D>> = self
            .timers
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.map(|e| TimerInfo {
                    timer: TimerId(i as u32),
                    due: e.due,
                    period: e.period,
                    dpc: e.dpc,
                    hand: e.list,
                })
            })
            .collect();
        v.sort_by_key(|i| (i.due, i.timer));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = UNITS_PER_MS;

    fn expire(t: &mut TimerTable, now: u64) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        t.expire(now, &mut out);
        out.iter().map(|x| (x.timer.0, x.due)).collect()
    }

    #[test]
    fn expires_in_due_order_only_when_due() {
        let mut t = TimerTable::<u32>::with_capacity(8);
        assert_eq!(
            t.set(TimerId(1), 0, DueTime::Relative(30 * MS), 0, None),
            Ok(false)
        );
        assert_eq!(
            t.set(TimerId(2), 0, DueTime::Absolute(10 * MS), 0, Some(7)),
            Ok(false)
        );
        assert_eq!(
            t.set(TimerId(3), 0, DueTime::Relative(5000 * MS), 0, None),
            Ok(false)
        );
        assert_eq!(t.len(), 3);
        assert_eq!(t.next_due(), Some(10 * MS));
        assert_eq!(expire(&mut t, 5 * MS), []);
        let mut out = Vec::new();
        t.expire(40 * MS, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].timer, TimerId(2));
        assert_eq!(out[0].dpc, Some(7));
        assert_eq!(out[1].timer, TimerId(1));
        assert!(!t.is_inserted(TimerId(1)));
        assert!(t.is_inserted(TimerId(3)));
        // 5 s is 320 ticks: more than one trip round the table.
        assert_eq!(expire(&mut t, 4999 * MS), []);
        assert_eq!(expire(&mut t, 5000 * MS), [(3, 5000 * MS)]);
        assert!(t.is_empty());
    }

    #[test]
    fn cancel_reports_whether_queued_and_set_replaces() {
        let mut t = TimerTable::<u32>::with_capacity(4);
        assert_eq!(t.cancel(TimerId(0)), Ok(false));
        t.set(TimerId(0), 0, DueTime::Relative(MS), 0, None)
            .unwrap();
        assert_eq!(
            t.set(TimerId(0), 0, DueTime::Relative(100 * MS), 0, None),
            Ok(true),
            "KeSetTimer on an inserted timer reports it"
        );
        assert_eq!(t.len(), 1);
        assert_eq!(expire(&mut t, 50 * MS), []);
        assert_eq!(t.cancel(TimerId(0)), Ok(true));
        assert_eq!(t.cancel(TimerId(0)), Ok(false));
        assert_eq!(expire(&mut t, 200 * MS), []);
        assert_eq!(
            t.set(TimerId(9), 0, DueTime::Relative(1), 0, None),
            Err(TimerError::BadTimer(TimerId(9)))
        );
    }

    #[test]
    fn periodic_timers_rearm_one_period_after_expiry() {
        let mut t = TimerTable::<u32>::with_capacity(2);
        t.set(TimerId(1), 0, DueTime::Relative(20 * MS), 100, Some(3))
            .unwrap();
        let mut out = Vec::new();
        t.expire(20 * MS, &mut out);
        assert_eq!(out[0].period, 100 * MS);
        assert!(t.is_inserted(TimerId(1)));
        assert_eq!(t.next_due(), Some(120 * MS));
        assert_eq!(expire(&mut t, 119 * MS), []);
        assert_eq!(expire(&mut t, 125 * MS), [(1, 120 * MS)]);
        assert_eq!(t.next_due(), Some(225 * MS));
        assert_eq!(t.cancel(TimerId(1)), Ok(true));
    }

    #[test]
    fn timer_set_in_the_past_expires_at_the_next_scan() {
        let mut t = TimerTable::<u32>::with_capacity(2);
        assert_eq!(expire(&mut t, 1000 * MS), []);
        t.set(TimerId(0), 1000 * MS, DueTime::Absolute(3 * MS), 0, None)
            .unwrap();
        assert_eq!(expire(&mut t, 1001 * MS), [(0, 3 * MS)]);
    }

    #[test]
    fn the_table_grows_for_more_timer_ids() {
        let mut t = TimerTable::<u32>::with_capacity(2);
        assert_eq!(
            t.set(TimerId(5), 0, DueTime::Relative(MS), 0, None),
            Err(TimerError::BadTimer(TimerId(5)))
        );
        t.set(TimerId(1), 0, DueTime::Relative(2 * MS), 0, None)
            .unwrap();
        t.grow(8);
        t.grow(4);
        assert_eq!(
            t.set(TimerId(8), 0, DueTime::Relative(MS), 0, None),
            Err(TimerError::BadTimer(TimerId(8))),
            "grown to 8 ids, never shrunk"
        );
        t.set(TimerId(5), 0, DueTime::Relative(MS), 0, Some(9))
            .unwrap();
        assert_eq!(t.next_due(), Some(MS));
        let mut out = Vec::new();
        t.expire(3 * MS, &mut out);
        assert_eq!(
            out.iter().map(|x| (x.timer.0, x.dpc)).collect::<Vec<_>>(),
            [(5, Some(9)), (1, None)]
        );
    }

    #[test]
    fn dump_lists_due_period_and_dpc() {
        let mut t = TimerTable::<u32>::with_capacity(4);
        t.set(
            TimerId(2),
            0,
            DueTime::Absolute(2 * CLOCK_TICK),
            250,
            Some(5),
        )
        .unwrap();
        t.set(TimerId(1), 0, DueTime::Absolute(CLOCK_TICK), 0, None)
            .unwrap();
        let d = t.dump();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].timer, d[0].hand), (TimerId(1), 1));
        assert_eq!(
            (d[1].timer, d[1].hand, d[1].period),
            (TimerId(2), 2, 250 * MS)
        );
        let line = alloc::format!("{}", d[1]);
        assert!(line.contains("period    250 ms"), "{line}");
        assert!(line.contains("dpc 5"), "{line}");
        assert!(alloc::format!("{}", d[0]).contains("no dpc"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Against a model: every timer expires exactly at the first scan at
        /// or after its due time, never earlier, in due order.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u8..3, 0u32..8, 0u64..600_000_000, 0u32..3), 1..120)) {
            let mut t = TimerTable::<u32>::with_capacity(8);
            let mut model: [Option<(u64, u64)>; 8] = [None; 8];
            let mut now = 0u64;
            for (op, id, v, per) in ops {
                match op {
                    0 => {
                        let period = if per == 2 { 40 } else { 0 };
                        let was = t.set(TimerId(id), now, DueTime::Relative(v / 10), period, None).unwrap();
                        prop_assert_eq!(was, model[id as usize].is_some());
                        model[id as usize] = Some((now + v / 10, u64::from(period) * MS));
                    }
                    1 => {
                        let was = t.cancel(TimerId(id)).unwrap();
                        prop_assert_eq!(was, model[id as usize].take().is_some());
                    }
                    _ => {
                        now += if per == 0 { v } else { v / 2000 };
                        let mut out = Vec::new();
                        t.expire(now, &mut out);
                        let mut expect: Vec<(u64, u32)> = Vec::new();
                        for (i, m) in model.iter_mut().enumerate() {
                            if let Some((due, period)) = *m {
                                if due <= now {
                                    expect.push((due, i as u32));
                                    *m = (period != 0).then_some((now + period, period));
                                }
                            }
                        }
                        expect.sort();
                        let mut got: Vec<(u64, u32)> = out.iter().map(|x| (x.due, x.timer.0)).collect();
                        got.sort();
                        prop_assert_eq!(got, expect);
                        prop_assert!(out.windows(2).all(|w| w[0].due <= w[1].due));
                    }
                }
                prop_assert_eq!(t.len(), model.iter().flatten().count());
                prop_assert_eq!(t.next_due(), model.iter().flatten().map(|m| m.0).min());
            }
        }
    }
}
