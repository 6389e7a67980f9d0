//! `KQUEUE` concurrency (*Windows Internals*, Part 1, ch. 6, "I/O
//! completion ports"; Part 2, ch. 8): the kernel side of an I/O completion
//! port's concurrency value. The counts are the host-tested
//! `::ke::queue::Gate` in the dispatcher state; the entries themselves are
//! the port's (`io/completion.rs`), handed to waiters as the counts of a
//! dispatcher semaphore (the gate's tokens). A thread that removes from a
//! queue becomes associated with it (`KTHREAD.Queue`); the scheduler calls
//! [`thread_blocks`] when an associated thread blocks on anything but the
//! queue, [`thread_wakes`] when such a wait ends, and [`thread_exits`].
//!
//! Where ntrs differs: NT releases queue waiters last-in first-out; ntrs's
//! semaphore releases them first-in first-out.

use super::sched::{self, DispatcherState};
use super::wait::{self as kw, RawObject};
use ::ke::objects::ObjectId;
use nt::status::*;
use nt::NtStatus;

/// Releases `n` tokens of gate `q` (lock held).
fn hand_out(st: &mut DispatcherState, q: u32, n: u32) {
    if n == 0 {
        return;
    }
    if let Some(sem) = st.queues.get(q).map(|g| g.tokens) {
        let _ = st.db.release_semaphore(sem, n as i32, 0, &mut st.unwaits);
        kw::process_unwaits(st);
    }
}

/// An associated thread blocks on something other than its queue
/// (`KiWaitTest`'s queue side): it stops counting, which may release a
/// waiter (`KiActivateWaiterQueue`). Lock held.
pub(super) fn thread_blocks(st: &mut DispatcherState, q: u32) {
    let n = st.queues.get_mut(q).map_or(0, |g| g.thread_idle());
    hand_out(st, q, n);
}

/// An associated thread's other wait ended: it counts again. Lock held.
pub(super) fn thread_wakes(st: &mut DispatcherState, q: u32) {
    if let Some(g) = st.queues.get_mut(q) {
        g.thread_runs();
    }
}

/// Thread exit: the thread leaves its queue. Lock held.
pub(super) fn thread_exits(st: &mut DispatcherState, tid: u32) {
    let Some(q) = st.thread_table.get_mut(tid).and_then(|e| e.queue.take()) else {
        return;
    };
    thread_blocks(st, q);
}

/// `KeInitializeQueue(Count)`: a gate with concurrency `max` (0 means the
/// number of processors) and a fresh token semaphore. Returns the gate.
pub fn ke_initialize_queue(max: u32) -> Result<u32, NtStatus> {
    let max = if max == 0 {
        super::processor_count()
    } else {
        max
    };
    kw::with_db(|st| {
        let sem = st.db.create_semaphore(0, i32::MAX)?;
        match st.queues.create(max, sem) {
            Some(q) => Ok(q),
            None => {
                let _ = st.db.delete(sem, &mut st.unwaits);
                Err(STATUS_INSUFFICIENT_RESOURCES)
            }
        }
    })
}

/// `KeRundownQueue`: disassociates every thread and deletes the gate and
/// its semaphore (the port is going; nobody waits on it).
pub fn ke_rundown_queue(q: u32) {
    kw::with_db(|st| {
        let ids: alloc::vec::Vec<u32> = st.thread_table.ids().collect();
        for t in ids {
            if let Some(e) = st.thread_table.get_mut(t) {
                if e.queue == Some(q) {
                    e.queue = None;
                    e.queue_wait = false;
                }
            }
        }
        if let Some(sem) = st.queues.get(q).map(|g| g.tokens) {
            let _ = st.db.delete(sem, &mut st.unwaits);
        }
        st.queues.delete(q);
        kw::process_unwaits(st);
    });
}

/// `KeInsertQueue`: an entry was queued (the caller queued it first).
pub fn ke_insert_queue(q: u32) {
    kw::with_db(|st| {
        let n = st.queues.get_mut(q).map_or(0, |g| g.insert());
        hand_out(st, q, n);
    });
}

/// The first half of `KeRemoveQueue` for the current thread: it becomes
/// associated with `q` (leaving another queue it was associated with) and
/// stops counting while it waits; then waits for a token (`timeout` as
/// `ke_wait_for_single_object` takes it). STATUS_SUCCESS means the thread
/// holds a token (an entry is its to take) and counts as active; any other
/// status means no entry, and the thread counts again as it runs on.
pub fn ke_remove_queue(q: u32, user_mode: bool, alertable: bool, timeout: Option<u64>) -> NtStatus {
    let tid = sched::current_thread_id();
    let sem = kw::with_db(|st| -> Option<ObjectId> {
        let sem = st.queues.get(q)?.tokens;
        let prev = st.thread_table.get_mut(tid).and_then(|e| {
            let prev = e.queue.replace(q);
            e.queue_wait = true;
            prev
        });
        if let Some(p) = prev.filter(|&p| p != q) {
            thread_blocks(st, p);
            let n = st.queues.get_mut(q).map_or(0, |g| g.pump());
            hand_out(st, q, n);
        } else if prev == Some(q) {
            thread_blocks(st, q);
        } else {
            let n = st.queues.get_mut(q).map_or(0, |g| g.pump());
            hand_out(st, q, n);
        }
        Some(sem)
    });
    let Some(sem) = sem else {
        return STATUS_INVALID_HANDLE;
    };
    let s = kw::ke_wait_for_single_object(
        &RawObject(sem),
        super::thread::WaitReason::WrQueue,
        user_mode,
        alertable,
        timeout,
    );
    kw::with_db(|st| {
        let here = st.thread_table.get_mut(tid).is_some_and(|e| {
            e.queue_wait = false;
            e.queue == Some(q)
        });
        if s != STATUS_SUCCESS && here {
            thread_wakes(st, q);
        }
    });
    s
}

/// `KeRemoveQueueEx` beyond the first entry: another pending entry for a
/// thread that already holds one (it counts once).
pub fn ke_remove_queue_more(q: u32) -> bool {
    kw::with_db(|st| st.queues.get_mut(q).is_some_and(|g| g.take_more()))
}

/// `CurrentCount`, `MaximumCount` and the entries not yet handed out
/// (kd and tests).
pub fn ke_query_queue(q: u32) -> Option<(u32, u32, u32)> {
    kw::with_db(|st| st.queues.get(q).map(|g| (g.active, g.max, g.pending)))
}
