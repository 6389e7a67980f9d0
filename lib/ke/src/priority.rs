//! Priority classes, relative priorities, boosts, decay and quantum
//! accounting as *Windows Internals* Part 1, ch. 4 describes them.

use crate::LOW_REALTIME_PRIORITY;

/// Process priority classes and their base priorities (`PROCESS_PRIORITY_CLASS_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorityClass {
    Idle,
    BelowNormal,
    Normal,
    AboveNormal,
    High,
    Realtime,
}

impl PriorityClass {
    /// The process base priority of the class (4, 6, 8, 10, 13, 24).
    pub fn base_priority(self) -> u8 {
        match self {
            PriorityClass::Idle => 4,
            PriorityClass::BelowNormal => 6,
            PriorityClass::Normal => 8,
            PriorityClass::AboveNormal => 10,
            PriorityClass::High => 13,
            PriorityClass::Realtime => 24,
        }
    }
}

/// `THREAD_PRIORITY_IDLE`.
pub const THREAD_PRIORITY_IDLE: i8 = -15;
/// `THREAD_PRIORITY_TIME_CRITICAL`.
pub const THREAD_PRIORITY_TIME_CRITICAL: i8 = 15;

/// A thread's base priority from its process's class and its relative
/// priority (-2..=2, or the saturating IDLE / TIME_CRITICAL values), as
/// `SetThreadPriority` maps them: the result stays within the dynamic range
/// (1..=15) or the real-time range (16..=31) of its class.
pub fn thread_base_priority(class: PriorityClass, relative: i8) -> u8 {
    let realtime = class == PriorityClass::Realtime;
    let (lo, hi) = if realtime { (16, 31) } else { (1, 15) };
    match relative {
        THREAD_PRIORITY_IDLE => lo,
        THREAD_PRIORITY_TIME_CRITICAL => hi,
        r => {
            (class.base_priority() as i16 + r.clamp(-2, 2) as i16).clamp(lo as i16, hi as i16) as u8
        }
    }
}

/// Whether `priority` is in the real-time range.
pub fn is_realtime(priority: u8) -> bool {
    priority >= LOW_REALTIME_PRIORITY
}

/// Priority increments drivers and the executive pass when satisfying a
/// wait (ntddk.h: `IO_NO_INCREMENT` 0, `IO_DISK_INCREMENT` 1,
/// `EVENT_INCREMENT` 1, `IO_KEYBOARD_INCREMENT` 6, `IO_SOUND_INCREMENT` 8).
pub const IO_NO_INCREMENT: u8 = 0;
pub const EVENT_INCREMENT: u8 = 1;
pub const IO_DISK_INCREMENT: u8 = 1;
pub const IO_KEYBOARD_INCREMENT: u8 = 6;
pub const IO_SOUND_INCREMENT: u8 = 8;

/// The priority a woken thread runs at (`KiUnwaitThread` → boost): base +
/// increment, never above 15, never below its current priority, and never
/// for real-time threads.
pub fn boosted_priority(base: u8, current: u8, increment: u8) -> u8 {
    if is_realtime(base) {
        return current.max(base);
    }
    let boosted = (base + increment).min(LOW_REALTIME_PRIORITY - 1);
    boosted.max(current)
}

/// Priority after a quantum end (`KiDecayPriority`-style): a boosted
/// dynamic thread loses one level, never going below its base.
pub fn decayed_priority(base: u8, current: u8) -> u8 {
    if is_realtime(base) || current <= base {
        current.max(base)
    } else {
        current - 1
    }
}

/// Quantum units consumed per clock tick (the book's "3 units per tick").
pub const QUANTUM_UNITS_PER_TICK: u8 = 3;
/// Client systems: 2 clock ticks per quantum.
pub const CLIENT_QUANTUM: u8 = 2 * QUANTUM_UNITS_PER_TICK;
/// Server systems: 12 clock ticks per quantum.
pub const SERVER_QUANTUM: u8 = 12 * QUANTUM_UNITS_PER_TICK;

/// Quantum accounting for one thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantum {
    pub reset: u8,
    pub remaining: u8,
}

impl Quantum {
    pub fn new(reset: u8) -> Self {
        Quantum {
            reset,
            remaining: reset,
        }
    }

    /// Charges one clock tick; returns true when the quantum has ended.
    pub fn tick(&mut self) -> bool {
        self.remaining = self.remaining.saturating_sub(QUANTUM_UNITS_PER_TICK);
        self.remaining == 0
    }

    /// A wait that was satisfied does not refill the quantum; quantum end does.
    pub fn replenish(&mut self) {
        self.remaining = self.reset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_base_priorities() {
        assert_eq!(thread_base_priority(PriorityClass::Normal, 0), 8);
        assert_eq!(thread_base_priority(PriorityClass::Normal, 2), 10);
        assert_eq!(thread_base_priority(PriorityClass::Normal, -2), 6);
        assert_eq!(thread_base_priority(PriorityClass::High, 2), 15);
        assert_eq!(thread_base_priority(PriorityClass::Idle, -2), 2);
        assert_eq!(
            thread_base_priority(PriorityClass::Normal, THREAD_PRIORITY_IDLE),
            1
        );
        assert_eq!(
            thread_base_priority(PriorityClass::Normal, THREAD_PRIORITY_TIME_CRITICAL),
            15
        );
        assert_eq!(thread_base_priority(PriorityClass::Realtime, 0), 24);
        assert_eq!(
            thread_base_priority(PriorityClass::Realtime, THREAD_PRIORITY_IDLE),
            16
        );
        assert_eq!(
            thread_base_priority(PriorityClass::Realtime, THREAD_PRIORITY_TIME_CRITICAL),
            31
        );
        assert_eq!(thread_base_priority(PriorityClass::Realtime, 2), 26);
    }

    #[test]
    fn boosts_cap_at_15_and_skip_realtime() {
        assert_eq!(boosted_priority(8, 8, EVENT_INCREMENT), 9);
        assert_eq!(boosted_priority(8, 8, IO_KEYBOARD_INCREMENT), 14);
        assert_eq!(boosted_priority(13, 13, IO_SOUND_INCREMENT), 15);
        assert_eq!(
            boosted_priority(8, 12, EVENT_INCREMENT),
            12,
            "never lowers a higher current priority"
        );
        assert_eq!(boosted_priority(24, 24, IO_SOUND_INCREMENT), 24);
    }

    #[test]
    fn decay_one_level_per_quantum_to_base() {
        let mut p = boosted_priority(8, 8, IO_KEYBOARD_INCREMENT);
        let mut steps = 0;
        while p > 8 {
            p = decayed_priority(8, p);
            steps += 1;
        }
        assert_eq!(steps, 6);
        assert_eq!(decayed_priority(8, 8), 8);
        assert_eq!(decayed_priority(24, 24), 24);
    }

    #[test]
    fn quantum_in_units() {
        let mut q = Quantum::new(CLIENT_QUANTUM);
        assert!(!q.tick());
        assert!(q.tick());
        q.replenish();
        assert_eq!(q.remaining, 6);
        let mut s = Quantum::new(SERVER_QUANTUM);
        assert_eq!((0..12).filter(|_| s.tick()).count(), 1);
    }
}
