//! Scheduling policy of the NT kernel (*Windows Internals*, Part 1, ch. 4,
//! "Thread scheduling"; Part 2, ch. 8, "Synchronization"), kept free of
//! hardware so it is tested on the host: ready queues (`ready`), the
//! priority and quantum arithmetic (`priority`), and dispatcher objects with
//! their waits (`objects`). The kernel applies these under its locks.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod apc;
pub mod dpc;
pub mod objects;
pub mod priority;
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
