//! The concurrency accounting of `KQUEUE` (*Windows Internals*, Part 1,
//! ch. 6, "I/O completion ports", and Part 2, ch. 8: `CurrentCount`,
//! `MaximumCount`). A queue lets at most `MaximumCount` threads associated
//! with it run at once: a waiter is released only while fewer associated
//! threads are active; an associated thread that blocks on anything else
//! stops counting (which may release a waiter) and counts again when it
//! wakes; a thread that comes back to remove another entry has finished
//! its previous one and stops counting.
//!
//! The kernel hands entries to waiters as *tokens* (a dispatcher
//! semaphore's count): [`Gate::pump`] turns a pending entry into a token
//! only while `active < max`, and counts the token's future owner as
//! active at once (the thread a token wakes runs associated; a token left
//! in the semaphore goes to the next remover without a wait). Everything
//! here runs under the dispatcher lock.

use alloc::vec::Vec;

/// One queue's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate<S = u32> {
    /// `CurrentCount`: associated threads running, plus tokens handed out
    /// and not yet taken.
    pub active: u32,
    /// `MaximumCount` (the port's concurrency value, at least 1).
    pub max: u32,
    /// Entries queued and not yet handed out as tokens.
    pub pending: u32,
    /// The dispatcher object that carries the tokens.
    pub tokens: S,
}

impl<S: Copy> Gate<S> {
    pub fn new(max: u32, tokens: S) -> Self {
        Gate {
            active: 0,
            max: max.max(1),
            pending: 0,
            tokens,
        }
    }

    /// Hands out as many tokens as the limit allows now; returns how many
    /// (the caller releases the semaphore by that count).
    pub fn pump(&mut self) -> u32 {
        let n = self.pending.min(self.max.saturating_sub(self.active));
        self.pending -= n;
        self.active += n;
        n
    }

    /// `KeInsertQueue`: an entry arrived.
    pub fn insert(&mut self) -> u32 {
        self.pending += 1;
        self.pump()
    }

    /// An associated thread stops counting: it blocks on something other
    /// than the queue, leaves for another queue or exits, or comes back to
    /// remove (its previous entry is done).
    pub fn thread_idle(&mut self) -> u32 {
        self.active = self.active.saturating_sub(1);
        self.pump()
    }

    /// An associated thread runs again: woken from another wait, or back
    /// from a remove that took no token (timeout, alert, user APC). It
    /// counts even above the limit, as NT's does.
    pub fn thread_runs(&mut self) {
        self.active += 1;
    }

    /// `KeRemoveQueueEx` taking more than one entry: a further entry for
    /// the thread that already holds a token (it counts once), if one is
    /// pending.
    pub fn take_more(&mut self) -> bool {
        if self.pending > 0 {
            self.pending -= 1;
            true
        } else {
            false
        }
    }
}

/// The queues of the system, by index.
#[derive(Debug, Default)]
pub struct Gates<S = u32> {
    slots: Vec<Option<Gate<S>>>,
    free: Vec<u32>,
}

impl<S: Copy> Gates<S> {
    pub fn new() -> Self {
        Gates {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Adds a queue; None if memory for its slot cannot be had.
    pub fn create(&mut self, max: u32, tokens: S) -> Option<u32> {
        let g = Gate::new(max, tokens);
        if let Some(i) = self.free.pop() {
            self.slots[i as usize] = Some(g);
            return Some(i);
        }
        self.slots.try_reserve(1).ok()?;
        self.free.try_reserve(self.slots.len() + 1).ok()?;
        self.slots.push(Some(g));
        Some(self.slots.len() as u32 - 1)
    }

    /// Removes a queue (the caller first disassociates its threads).
    pub fn delete(&mut self, i: u32) {
        if let Some(s) = self.slots.get_mut(i as usize) {
            if s.take().is_some() {
                self.free.push(i);
            }
        }
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut Gate<S>> {
        self.slots.get_mut(i as usize)?.as_mut()
    }

    pub fn get(&self, i: u32) -> Option<&Gate<S>> {
        self.slots.get(i as usize)?.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_exceed_the_limit() {
        let mut g = Gate::new(1, ());
        assert_eq!(g.insert(), 1, "the first entry goes out");
        assert_eq!(g.insert(), 0, "the second waits: one thread active");
        assert_eq!((g.active, g.pending), (1, 1));
        // The running thread blocks elsewhere: the second entry goes out.
        assert_eq!(g.thread_idle(), 1);
        assert_eq!((g.active, g.pending), (1, 0));
        // It wakes: two run (above the limit, as NT allows).
        g.thread_runs();
        assert_eq!(g.active, 2);
        assert_eq!(g.insert(), 0);
        // One comes back to remove: still one active, nothing released.
        assert_eq!(g.thread_idle(), 0);
        // The other comes back too: the third entry goes out.
        assert_eq!(g.thread_idle(), 1);
        assert_eq!((g.active, g.pending), (1, 0));
    }

    #[test]
    fn zero_concurrency_is_one_and_more_entries_count_once() {
        let mut g = Gate::new(0, ());
        assert_eq!(g.max, 1);
        g.insert();
        g.insert();
        g.insert();
        assert_eq!((g.active, g.pending), (1, 2));
        assert!(g.take_more() && g.take_more() && !g.take_more());
        assert_eq!(g.active, 1);
        assert_eq!(g.thread_idle(), 0);
        assert_eq!(g.active, 0);
        assert_eq!(g.thread_idle(), 0, "never below zero");
    }

    #[test]
    fn higher_limits_release_up_to_the_limit() {
        let mut g = Gate::new(3, ());
        for _ in 0..5 {
            g.insert();
        }
        assert_eq!((g.active, g.pending), (3, 2));
        assert_eq!(g.thread_idle(), 1);
        assert_eq!(g.thread_idle(), 1);
        assert_eq!((g.active, g.pending), (3, 0));
    }

    #[test]
    fn slots_are_reused() {
        let mut gs: Gates<u8> = Gates::new();
        let a = gs.create(1, 7).unwrap();
        let b = gs.create(2, 8).unwrap();
        assert_ne!(a, b);
        gs.delete(a);
        assert!(gs.get(a).is_none());
        let c = gs.create(4, 9).unwrap();
        assert_eq!(c, a);
        assert_eq!(gs.get(c).unwrap().max, 4);
        assert_eq!(gs.get_mut(b).unwrap().tokens, 8);
    }
}
