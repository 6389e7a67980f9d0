//! The kernel's policy code (*Windows Internals*, Part 1, ch. 4, "Thread
//! scheduling"; Part 2, ch. 8, "Synchronization", "Deferred procedure call
//! interrupts", "Asynchronous procedure call interrupts", "Timer
//! processing"), kept free of hardware so it is tested on the host. This is
//! the code ntoskrnl runs — it has no second implementation:
//!
//! - `sched` (with `ready` and `priority`): the scheduler the kernel keeps
//!   under its dispatcher lock and asks at every scheduling event (readying,
//!   waits, yields, the dispatch interrupt, priority and affinity changes);
//! - `objects`: the dispatcher database (events, mutants, semaphores,
//!   timers, threads as waitable objects, wait blocks);
//! - `timer`: the timer table (`KTIMER`s and every wait's timeout);
//! - `dpc`: each processor's DPC queue and its interrupt request rules;
//! - `apc`: each thread's APC queues, alert flags and delivery rules.
//!
//! The kernel (`ntos/src/ke`) holds these behind its locks and carries out
//! what they answer: context switches, software interrupts, IPIs, calling
//! DPC and APC routines.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod apc;
pub mod dpc;
pub mod except;
pub mod objects;
pub mod priority;
pub mod queue;
pub mod ready;
pub mod sched;
pub mod timer;

#[cfg(test)]
mod objects_tests;
#[cfg(test)]
mod sim_tests;

/// `MAXIMUM_PRIORITY`: priorities run 0..=31.
pub const MAXIMUM_PRIORITY: u8 = 32;
/// `LOW_REALTIME_PRIORITY`: 16..=31 are real-time, 1..=15 dynamic, 0 the zero-page thread.
pub const LOW_REALTIME_PRIORITY: u8 = 16;
