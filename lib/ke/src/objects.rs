//! Dispatcher objects and waits (*Windows Internals*, Part 2, ch. 8,
//! "Dispatcher objects", "Data structures"): the `DISPATCHER_HEADER` states
//! and wait-block bookkeeping of events, mutants, semaphores, timers,
//! threads and processes, as a pure state machine.
//!
//! The kernel holds one [`Dispatcher`] behind its dispatcher lock and drives
//! it: a wait either completes at once ([`WaitStart::Satisfied`]) or blocks
//! (the kernel switches the thread out); every operation that can satisfy
//! waits appends the threads to wake to an [`Unwait`] list, each with its
//! wait status and priority increment, which the kernel readies (applying
//! the boost). Timeouts, alerts and APCs end a wait from outside:
//! [`Dispatcher::cancel_wait`].
//!
//! Satisfaction follows NT (`KiWaitTest`, `KiWaitSatisfyAny/All`):
//! - an object is signaled for a thread when its state is positive, or when
//!   it is a mutant the thread already owns (recursive acquisition);
//! - satisfying a synchronization event or timer resets it, a semaphore
//!   decrements, a mutant is acquired (owner set, recursion counted;
//!   an abandoned mutant reports `STATUS_ABANDONED_WAIT_0 + n` once);
//! - wait-any is satisfied by the first signaled object in the caller's
//!   order; wait-all only when every object is signaled at once, and then
//!   all are satisfied together;
//! - waiters are examined in FIFO order, and only as many are woken as the
//!   object's state allows.

use crate::apc::{ApcState, ProcessorMode};
use crate::priority::{EVENT_INCREMENT, IO_NO_INCREMENT};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// `MAXIMUM_WAIT_OBJECTS`.
pub const MAXIMUM_WAIT_OBJECTS: usize = 64;
/// `MUTANT_INCREMENT`, `SEMAPHORE_INCREMENT`.
pub const MUTANT_INCREMENT: u8 = 1;
pub const SEMAPHORE_INCREMENT: u8 = 1;

/// An object in the dispatcher database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u32);

/// A thread known to the dispatcher (the kernel's thread id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId(pub u32);

/// `WAIT_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitType {
    WaitAll,
    WaitAny,
}

/// The kind of object (`DISPATCHER_HEADER.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `NotificationEvent`: stays signaled until reset; wakes every waiter.
    NotificationEvent,
    /// `SynchronizationEvent`: auto-resets when it satisfies one wait.
    SynchronizationEvent,
    /// `KMUTANT`.
    Mutant,
    /// `KSEMAPHORE`.
    Semaphore,
    /// Notification `KTIMER`.
    NotificationTimer,
    /// Synchronization `KTIMER`.
    SynchronizationTimer,
    /// `KTHREAD` as a waitable object: signaled when it terminates.
    Thread,
    /// `KPROCESS`: signaled when its last thread terminates.
    Process,
}

#[derive(Clone, Debug)]
struct Object {
    kind: ObjectKind,
    /// `SignalState`: >0 signaled; for a mutant 1 = free, <=0 = owned
    /// (1 - recursion count).
    state: i32,
    /// Semaphore `Limit`.
    limit: i32,
    /// Mutant `OwnerThread`.
    owner: Option<ThreadId>,
    /// Mutant `Abandoned`.
    abandoned: bool,
    /// Mutant `ApcDisable`: 1 for a kernel mutex (`KeInitializeMutex`).
    apc_disable: bool,
    /// `WaitListHead`: (thread, index of this object in its wait).
    waiters: VecDeque<(ThreadId, u8)>,
}

#[derive(Clone, Debug, Default)]
struct ThreadWait {
    objects: Vec<ObjectId>,
    wait_all: bool,
    waiting: bool,
    /// Mutants this thread owns (`MutantListHead`), for abandonment at exit.
    owned: Vec<ObjectId>,
    /// Mode, alertability, timeout and reason of the current wait.
    params: WaitParams,
}

/// `KWAIT_REASON` (the values phnt lists).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum WaitReason {
    #[default]
    Executive = 0,
    FreePage = 1,
    PageIn = 2,
    PoolAllocation = 3,
    DelayExecution = 4,
    Suspended = 5,
    UserRequest = 6,
    WrExecutive = 7,
    WrFreePage = 8,
    WrPageIn = 9,
    WrPoolAllocation = 10,
    WrDelayExecution = 11,
    WrSuspended = 12,
    WrUserRequest = 13,
    WrEventPair = 14,
    WrQueue = 15,
    WrLpcReceive = 16,
    WrLpcReply = 17,
    WrVirtualMemory = 18,
    WrPageOut = 19,
    WrRendezvous = 20,
}

/// The parameters of `KeWaitForMultipleObjects` besides the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitParams {
    /// `WaitMode`.
    pub mode: ProcessorMode,
    /// `Alertable`.
    pub alertable: bool,
    /// The timeout as an absolute interrupt time (the kernel converts NT's
    /// relative/absolute `Timeout`); a due time at or before `now` polls.
    /// None waits forever.
    pub due: Option<u64>,
    /// `WaitReason`.
    pub reason: WaitReason,
}

impl Default for WaitParams {
    fn default() -> Self {
        WaitParams {
            mode: ProcessorMode::KernelMode,
            alertable: false,
            due: None,
            reason: WaitReason::Executive,
        }
    }
}

/// A blocked thread's wait, for `!thread`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitInfo {
    pub wait_type: WaitType,
    pub objects: usize,
    pub params: WaitParams,
}

/// How a wait started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStart {
    /// Satisfied at once with this status (`STATUS_WAIT_0 + n`, `STATUS_ABANDONED_WAIT_0 + n`).
    Satisfied(NtStatus),
    /// The thread must block; a later [`Unwait`] ends the wait.
    Blocked,
}

/// A thread whose wait was satisfied: ready it with this status and boost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unwait {
    pub thread: ThreadId,
    pub status: NtStatus,
    pub increment: u8,
}

/// What `query` reports about an object (`!object` and `NtQueryEvent`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub kind: ObjectKind,
    pub state: i32,
    pub limit: i32,
    pub owner: Option<ThreadId>,
    pub abandoned: bool,
    pub waiters: usize,
}

/// The dispatcher database.
#[derive(Clone, Debug, Default)]
pub struct Dispatcher {
    objects: Vec<Option<Object>>,
    free: Vec<u32>,
    threads: Vec<ThreadWait>,
}

impl Dispatcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pre-sizes the tables (so the kernel's hot paths do not allocate).
    pub fn with_capacity(objects: usize, threads: usize) -> Self {
        Dispatcher {
            objects: Vec::with_capacity(objects),
            free: Vec::with_capacity(objects),
            threads: Vec::with_capacity(threads),
        }
    }

    fn alloc(&mut self, o: Object) -> ObjectId {
        match self.free.pop() {
            Some(i) => {
                self.objects[i as usize] = Some(o);
                ObjectId(i)
            }
            None => {
                self.objects.push(Some(o));
                ObjectId(self.objects.len() as u32 - 1)
            }
        }
    }

    fn new_object(kind: ObjectKind, state: i32, limit: i32) -> Object {
        Object {
            kind,
            state,
            limit,
            owner: None,
            abandoned: false,
            apc_disable: false,
            waiters: VecDeque::new(),
        }
    }

    /// `KeInitializeEvent`.
    pub fn create_event(&mut self, notification: bool, signaled: bool) -> ObjectId {
        let kind = if notification {
            ObjectKind::NotificationEvent
        } else {
            ObjectKind::SynchronizationEvent
        };
        self.alloc(Self::new_object(kind, signaled as i32, 0))
    }

    /// `KeInitializeMutant`: free, or owned once by `owner`.
    pub fn create_mutant(&mut self, owner: Option<ThreadId>) -> ObjectId {
        let mut o = Self::new_object(ObjectKind::Mutant, 1, 0);
        if let Some(t) = owner {
            o.state = 0;
            o.owner = Some(t);
        }
        let id = self.alloc(o);
        if let Some(t) = owner {
            self.thread_mut(t).owned.push(id);
        }
        id
    }

    /// `KeInitializeMutex`: a free kernel mutex, a mutant whose
    /// `ApcDisable` is 1: while a thread owns it, normal kernel APCs are
    /// disabled for that thread (see [`Dispatcher::mutex_apc_disable`]).
    pub fn create_mutex(&mut self) -> ObjectId {
        let mut o = Self::new_object(ObjectKind::Mutant, 1, 0);
        o.apc_disable = true;
        self.alloc(o)
    }

    /// The part of `t`'s `KernelApcDisable` that comes from kernel mutexes
    /// it owns (`KiWaitSatisfyMutant` decrements it on the first
    /// acquisition, `KeReleaseMutant` restores it on the last release): the
    /// number of kernel mutexes `t` owns. The kernel adds it to the
    /// thread's own critical-region count when deciding APC delivery.
    pub fn mutex_apc_disable(&self, t: ThreadId) -> u32 {
        self.threads.get(t.0 as usize).map_or(0, |w| {
            w.owned
                .iter()
                .filter(|&&m| self.object(m).is_ok_and(|o| o.apc_disable))
                .count() as u32
        })
    }

    /// `KeInitializeSemaphore`: STATUS_INVALID_PARAMETER unless
    /// `0 <= count <= limit` and `limit > 0`.
    pub fn create_semaphore(&mut self, count: i32, limit: i32) -> Result<ObjectId, NtStatus> {
        if limit <= 0 || count < 0 || count > limit {
            return Err(STATUS_INVALID_PARAMETER);
        }
        Ok(self.alloc(Self::new_object(ObjectKind::Semaphore, count, limit)))
    }

    /// `KeInitializeTimerEx`.
    pub fn create_timer(&mut self, notification: bool) -> ObjectId {
        let kind = if notification {
            ObjectKind::NotificationTimer
        } else {
            ObjectKind::SynchronizationTimer
        };
        self.alloc(Self::new_object(kind, 0, 0))
    }

    /// The waitable part of a thread or process (signaled at termination).
    pub fn create_thread_object(&mut self, process: bool) -> ObjectId {
        let kind = if process {
            ObjectKind::Process
        } else {
            ObjectKind::Thread
        };
        self.alloc(Self::new_object(kind, 0, 0))
    }

    /// Deletes an object. Threads still waiting on it keep waiting (NT would
    /// never delete an object with waiters: they hold references); here their
    /// wait blocks are dropped and their waits end with STATUS_INVALID_HANDLE.
    pub fn delete(&mut self, id: ObjectId, out: &mut Vec<Unwait>) -> Result<(), NtStatus> {
        let o = self.object(id)?;
        let waiters: Vec<ThreadId> = o.waiters.iter().map(|w| w.0).collect();
        for t in waiters {
            self.end_wait(t, STATUS_INVALID_HANDLE, IO_NO_INCREMENT, out);
        }
        if let Some(owner) = self.object(id)?.owner {
            self.thread_mut(owner).owned.retain(|&m| m != id);
        }
        self.objects[id.0 as usize] = None;
        self.free.push(id.0);
        Ok(())
    }

    fn object(&self, id: ObjectId) -> Result<&Object, NtStatus> {
        self.objects
            .get(id.0 as usize)
            .and_then(|o| o.as_ref())
            .ok_or(STATUS_INVALID_HANDLE)
    }

    fn object_mut(&mut self, id: ObjectId) -> Result<&mut Object, NtStatus> {
        self.objects
            .get_mut(id.0 as usize)
            .and_then(|o| o.as_mut())
            .ok_or(STATUS_INVALID_HANDLE)
    }

    fn thread_mut(&mut self, t: ThreadId) -> &mut ThreadWait {
        let i = t.0 as usize;
        if i >= self.threads.len() {
            self.threads.resize_with(i + 1, ThreadWait::default);
        }
        &mut self.threads[i]
    }

    /// Test hook: forces an object's signal state (e.g. a mutant's
    /// recursion count near its limit).
    #[cfg(test)]
    pub(crate) fn force_state(&mut self, id: ObjectId, state: i32) {
        if let Ok(o) = self.object_mut(id) {
            o.state = state;
        }
    }

    /// Live objects (for leak checks).
    pub fn object_count(&self) -> usize {
        self.objects.iter().filter(|o| o.is_some()).count()
    }

    /// `KeReadStateEvent` & co.: the object's state and bookkeeping.
    pub fn query(&self, id: ObjectId) -> Result<ObjectInfo, NtStatus> {
        let o = self.object(id)?;
        Ok(ObjectInfo {
            kind: o.kind,
            state: o.state,
            limit: o.limit,
            owner: o.owner,
            abandoned: o.abandoned,
            waiters: o.waiters.len(),
        })
    }

    /// Whether `t` is blocked in a wait.
    pub fn is_waiting(&self, t: ThreadId) -> bool {
        self.threads.get(t.0 as usize).is_some_and(|w| w.waiting)
    }

    /// Whether `t`'s current wait is a wait-all.
    pub fn wait_is_all(&self, t: ThreadId) -> bool {
        self.threads
            .get(t.0 as usize)
            .is_some_and(|w| w.waiting && w.wait_all)
    }

    /// The objects `t` waits on.
    pub fn wait_objects(&self, t: ThreadId) -> &[ObjectId] {
        self.threads
            .get(t.0 as usize)
            .filter(|w| w.waiting)
            .map_or(&[], |w| &w.objects)
    }

    fn signaled_for(o: &Object, t: ThreadId) -> bool {
        if o.kind == ObjectKind::Mutant {
            o.state > 0 || o.owner == Some(t)
        } else {
            o.state > 0
        }
    }

    /// Consumes one satisfaction of `id` by `t`; true if it was an abandoned mutant.
    fn satisfy(&mut self, id: ObjectId, t: ThreadId) -> Result<bool, NtStatus> {
        let o = self.object_mut(id)?;
        let mut abandoned = false;
        let mut newly_owned = false;
        match o.kind {
            ObjectKind::SynchronizationEvent | ObjectKind::SynchronizationTimer => o.state = 0,
            ObjectKind::Semaphore => o.state -= 1,
            ObjectKind::Mutant => {
                if o.state == i32::MIN {
                    return Err(STATUS_MUTANT_LIMIT_EXCEEDED);
                }
                if o.state > 0 {
                    o.owner = Some(t);
                    abandoned = core::mem::replace(&mut o.abandoned, false);
                    newly_owned = true;
                }
                o.state -= 1;
            }
            _ => {}
        }
        if newly_owned {
            self.thread_mut(t).owned.push(id);
        }
        Ok(abandoned)
    }

    /// `KeWaitForSingleObject` / `KeWaitForMultipleObjects` (the dispatcher
    /// part): satisfies the wait now if it can, else records wait blocks.
    /// `poll` (a zero timeout) returns STATUS_TIMEOUT instead of blocking.
    /// Errors: no objects or more than 64 (STATUS_INVALID_PARAMETER), the
    /// same object twice in a wait-all (STATUS_INVALID_PARAMETER_MIX), a
    /// deleted object (STATUS_INVALID_HANDLE), a thread that waits already
    /// (STATUS_INVALID_PARAMETER), a mutant acquired too often
    /// (STATUS_MUTANT_LIMIT_EXCEEDED).
    pub fn wait(
        &mut self,
        t: ThreadId,
        objects: &[ObjectId],
        wait_type: WaitType,
        poll: bool,
    ) -> Result<WaitStart, NtStatus> {
        self.wait_inner::<crate::apc::ApcId>(t, objects, wait_type, poll, None)
    }

    /// `KeWaitForMultipleObjects` with a wait mode and alertability: as
    /// [`Dispatcher::wait`], but when no object satisfies the wait, the
    /// thread's alert and user-APC state is checked before polling or
    /// blocking (`KiCheckAlertability`): STATUS_ALERTED or STATUS_USER_APC
    /// end the wait at once. An object that is signaled wins over an alert,
    /// as in NT.
    #[allow(clippy::too_many_arguments)] // KeWaitForMultipleObjects' own parameters
    pub fn wait_alertable<T: Copy + PartialEq>(
        &mut self,
        t: ThreadId,
        objects: &[ObjectId],
        wait_type: WaitType,
        poll: bool,
        apc: &mut ApcState<T>,
        mode: ProcessorMode,
        alertable: bool,
    ) -> Result<WaitStart, NtStatus> {
        self.wait_inner(t, objects, wait_type, poll, Some((apc, mode, alertable)))
    }

    /// `KeWaitForSingleObject` / `KeWaitForMultipleObjects` with all their
    /// parameters: as [`Dispatcher::wait_alertable`], with the timeout as an
    /// absolute due time (`params.due <= now` polls: STATUS_TIMEOUT) and the
    /// wait reason; a blocked wait records them ([`Dispatcher::wait_info`]).
    /// The kernel arms the thread's timeout timer for `params.due` and calls
    /// [`Dispatcher::timeout_expired`] when it fires.
    pub fn wait_ex<T: Copy + PartialEq>(
        &mut self,
        t: ThreadId,
        objects: &[ObjectId],
        wait_type: WaitType,
        params: &WaitParams,
        now: u64,
        apc: &mut ApcState<T>,
    ) -> Result<WaitStart, NtStatus> {
        let poll = params.due.is_some_and(|d| d <= now);
        let r = self.wait_inner(
            t,
            objects,
            wait_type,
            poll,
            Some((apc, params.mode, params.alertable)),
        )?;
        if r == WaitStart::Blocked {
            self.thread_mut(t).params = *params;
        }
        Ok(r)
    }

    /// The current wait of `t` (`!thread`), if it is blocked.
    pub fn wait_info(&self, t: ThreadId) -> Option<WaitInfo> {
        let w = self.threads.get(t.0 as usize).filter(|w| w.waiting)?;
        Some(WaitInfo {
            wait_type: if w.wait_all {
                WaitType::WaitAll
            } else {
                WaitType::WaitAny
            },
            objects: w.objects.len(),
            params: w.params,
        })
    }

    fn wait_inner<T: Copy + PartialEq>(
        &mut self,
        t: ThreadId,
        objects: &[ObjectId],
        wait_type: WaitType,
        poll: bool,
        alert: Option<(&mut ApcState<T>, ProcessorMode, bool)>,
    ) -> Result<WaitStart, NtStatus> {
        if objects.is_empty() || objects.len() > MAXIMUM_WAIT_OBJECTS {
            return Err(STATUS_INVALID_PARAMETER);
        }
        if self.is_waiting(t) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        for (i, &id) in objects.iter().enumerate() {
            self.object(id)?;
            if wait_type == WaitType::WaitAll && objects[..i].contains(&id) {
                return Err(STATUS_INVALID_PARAMETER_MIX);
            }
        }
        match wait_type {
            WaitType::WaitAny => {
                for (i, &id) in objects.iter().enumerate() {
                    if Self::signaled_for(self.object(id)?, t) {
                        let abandoned = self.satisfy(id, t)?;
                        return Ok(WaitStart::Satisfied(wait_status(i, abandoned)));
                    }
                }
            }
            WaitType::WaitAll => {
                if self.all_signaled(objects, t)? {
                    let abandoned = self.satisfy_all(objects, t)?;
                    return Ok(WaitStart::Satisfied(wait_status(0, abandoned)));
                }
            }
        }
        if let Some((apc, mode, alertable)) = alert {
            if let Some(status) = apc.check_alertability(mode, alertable) {
                return Ok(WaitStart::Satisfied(status));
            }
        }
        if poll {
            return Ok(WaitStart::Satisfied(STATUS_TIMEOUT));
        }
        for (i, &id) in objects.iter().enumerate() {
            self.object_mut(id)?.waiters.push_back((t, i as u8));
        }
        let w = self.thread_mut(t);
        w.objects.clear();
        w.objects.extend_from_slice(objects);
        w.wait_all = wait_type == WaitType::WaitAll;
        w.params = WaitParams::default();
        w.waiting = true;
        Ok(WaitStart::Blocked)
    }

    fn all_signaled(&self, objects: &[ObjectId], t: ThreadId) -> Result<bool, NtStatus> {
        for &id in objects {
            if !Self::signaled_for(self.object(id)?, t) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Satisfies every object of a wait-all, or none: a mutant whose
    /// recursion count is at its limit fails the whole wait before any
    /// object changes.
    fn satisfy_all(&mut self, objects: &[ObjectId], t: ThreadId) -> Result<bool, NtStatus> {
        for &id in objects {
            let o = self.object(id)?;
            if o.kind == ObjectKind::Mutant && o.state == i32::MIN {
                return Err(STATUS_MUTANT_LIMIT_EXCEEDED);
            }
        }
        let mut abandoned = false;
        for &id in objects {
            abandoned |= self.satisfy(id, t)?;
        }
        Ok(abandoned)
    }

    /// Removes `t`'s wait blocks (timeout, alert, APC, or satisfaction).
    fn remove_wait_blocks(&mut self, t: ThreadId) {
        let objs = core::mem::take(&mut self.thread_mut(t).objects);
        for id in &objs {
            if let Ok(o) = self.object_mut(*id) {
                o.waiters.retain(|w| w.0 != t);
            }
        }
        let w = self.thread_mut(t);
        w.objects = objs;
        w.objects.clear();
        w.waiting = false;
    }

    fn end_wait(&mut self, t: ThreadId, status: NtStatus, increment: u8, out: &mut Vec<Unwait>) {
        self.remove_wait_blocks(t);
        out.push(Unwait {
            thread: t,
            status,
            increment,
        });
    }

    /// Ends `t`'s wait without satisfying it (`KiUnwaitThread` for a timeout,
    /// an alert or an APC). Returns whether it was waiting.
    pub fn cancel_wait(&mut self, t: ThreadId) -> bool {
        let was = self.is_waiting(t);
        if was {
            self.remove_wait_blocks(t);
        }
        was
    }

    /// `KiUnwaitThread` for a wait that ends unsatisfied: a timeout
    /// (STATUS_TIMEOUT), an alert (STATUS_ALERTED), an APC
    /// (STATUS_KERNEL_APC, STATUS_USER_APC, see [`crate::apc::ApcState::insert`]).
    /// Removes the wait blocks and appends the thread to `out` with no
    /// priority increment. Returns whether the thread was waiting.
    pub fn abort_wait(&mut self, t: ThreadId, status: NtStatus, out: &mut Vec<Unwait>) -> bool {
        let was = self.is_waiting(t);
        if was {
            self.end_wait(t, status, IO_NO_INCREMENT, out);
        }
        was
    }

    /// The wait's timer fired (`KiTimerExpiration` for a wait timeout):
    /// ends the wait with STATUS_TIMEOUT. Returns whether it was waiting.
    pub fn timeout_expired(&mut self, t: ThreadId, out: &mut Vec<Unwait>) -> bool {
        self.abort_wait(t, STATUS_TIMEOUT, out)
    }

    /// `KiWaitTest`: satisfies waiters of `id` in FIFO order while it allows.
    fn wait_test(
        &mut self,
        id: ObjectId,
        increment: u8,
        out: &mut Vec<Unwait>,
    ) -> Result<(), NtStatus> {
        let mut i = 0;
        loop {
            let o = self.object(id)?;
            if o.state <= 0 && o.kind != ObjectKind::Mutant {
                return Ok(());
            }
            let Some(&(t, index)) = o.waiters.get(i) else {
                return Ok(());
            };
            if !Self::signaled_for(o, t) {
                // A mutant owned by someone else: no later waiter can take it either.
                return Ok(());
            }
            let wait_all = self.threads.get(t.0 as usize).is_some_and(|w| w.wait_all);
            if wait_all {
                let objs = self.threads[t.0 as usize].objects.clone();
                if self.all_signaled(&objs, t)? {
                    // A recursion overflow ends that wait with the error
                    // (NT raises it in the waiter) instead of losing it.
                    let status = match self.satisfy_all(&objs, t) {
                        Ok(abandoned) => wait_status(0, abandoned),
                        Err(e) => e,
                    };
                    self.end_wait(t, status, increment, out);
                    i = 0;
                } else {
                    i += 1;
                }
            } else {
                let abandoned = self.satisfy(id, t)?;
                self.end_wait(t, wait_status(index as usize, abandoned), increment, out);
                i = 0;
            }
        }
    }

    fn expect_kind(&self, id: ObjectId, kinds: &[ObjectKind]) -> Result<(), NtStatus> {
        if kinds.contains(&self.object(id)?.kind) {
            Ok(())
        } else {
            Err(STATUS_OBJECT_TYPE_MISMATCH)
        }
    }

    /// `KeSetEvent`: returns the previous state.
    pub fn set_event(
        &mut self,
        id: ObjectId,
        increment: u8,
        out: &mut Vec<Unwait>,
    ) -> Result<i32, NtStatus> {
        self.expect_kind(
            id,
            &[
                ObjectKind::NotificationEvent,
                ObjectKind::SynchronizationEvent,
            ],
        )?;
        let o = self.object_mut(id)?;
        let prev = o.state;
        if prev == 0 {
            o.state = 1;
            self.wait_test(id, increment, out)?;
        }
        Ok(prev)
    }

    /// `KeResetEvent`: returns the previous state.
    pub fn reset_event(&mut self, id: ObjectId) -> Result<i32, NtStatus> {
        self.expect_kind(
            id,
            &[
                ObjectKind::NotificationEvent,
                ObjectKind::SynchronizationEvent,
            ],
        )?;
        let o = self.object_mut(id)?;
        Ok(core::mem::replace(&mut o.state, 0))
    }

    /// `KePulseEvent`: signals (waking what it can) and resets.
    pub fn pulse_event(
        &mut self,
        id: ObjectId,
        increment: u8,
        out: &mut Vec<Unwait>,
    ) -> Result<i32, NtStatus> {
        let prev = self.set_event(id, increment, out)?;
        self.object_mut(id)?.state = 0;
        Ok(prev)
    }

    /// `KeReleaseMutant`: STATUS_MUTANT_NOT_OWNED unless `t` owns it;
    /// the last release frees it (with `abandoned`, waiters get
    /// STATUS_ABANDONED). Returns the previous state.
    pub fn release_mutant(
        &mut self,
        id: ObjectId,
        t: ThreadId,
        abandoned: bool,
        out: &mut Vec<Unwait>,
    ) -> Result<i32, NtStatus> {
        self.expect_kind(id, &[ObjectKind::Mutant])?;
        let o = self.object_mut(id)?;
        let prev = o.state;
        if abandoned {
            o.state = 1;
            o.abandoned = true;
        } else {
            if o.owner != Some(t) {
                return Err(STATUS_MUTANT_NOT_OWNED);
            }
            o.state += 1;
        }
        if o.state > 0 {
            let owner = o.owner.take();
            if let Some(owner) = owner {
                self.thread_mut(owner).owned.retain(|&m| m != id);
            }
            self.wait_test(id, MUTANT_INCREMENT, out)?;
        }
        Ok(prev)
    }

    /// `KeReleaseSemaphore`: adds `count`; STATUS_SEMAPHORE_LIMIT_EXCEEDED
    /// past the limit (state unchanged), STATUS_INVALID_PARAMETER for
    /// `count <= 0`. Returns the previous count.
    pub fn release_semaphore(
        &mut self,
        id: ObjectId,
        count: i32,
        increment: u8,
        out: &mut Vec<Unwait>,
    ) -> Result<i32, NtStatus> {
        self.expect_kind(id, &[ObjectKind::Semaphore])?;
        if count <= 0 {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let o = self.object_mut(id)?;
        let prev = o.state;
        let next = prev.checked_add(count).filter(|&n| n <= o.limit);
        let Some(next) = next else {
            return Err(STATUS_SEMAPHORE_LIMIT_EXCEEDED);
        };
        o.state = next;
        if prev == 0 {
            self.wait_test(id, increment, out)?;
        }
        Ok(prev)
    }

    /// Timer expiry (`KiTimerExpiration` → `KiSignalTimer`).
    pub fn signal_timer(&mut self, id: ObjectId, out: &mut Vec<Unwait>) -> Result<(), NtStatus> {
        self.expect_kind(
            id,
            &[
                ObjectKind::NotificationTimer,
                ObjectKind::SynchronizationTimer,
            ],
        )?;
        self.object_mut(id)?.state = 1;
        self.wait_test(id, IO_NO_INCREMENT, out)
    }

    /// `KeSetTimer` resets the timer's state.
    pub fn reset_timer(&mut self, id: ObjectId) -> Result<(), NtStatus> {
        self.expect_kind(
            id,
            &[
                ObjectKind::NotificationTimer,
                ObjectKind::SynchronizationTimer,
            ],
        )?;
        self.object_mut(id)?.state = 0;
        Ok(())
    }

    /// Thread termination (`PspExitThread` → `KeTerminateThread`): the
    /// thread's mutants are abandoned (their waiters get
    /// STATUS_ABANDONED_WAIT_n), its own wait blocks are removed, and its
    /// thread object (if given) becomes signaled.
    pub fn thread_exit(
        &mut self,
        t: ThreadId,
        thread_object: Option<ObjectId>,
        out: &mut Vec<Unwait>,
    ) -> Result<(), NtStatus> {
        self.cancel_wait(t);
        let owned = core::mem::take(&mut self.thread_mut(t).owned);
        for m in owned {
            if let Ok(o) = self.object_mut(m) {
                o.owner = None;
                o.state = 1;
                o.abandoned = true;
                self.wait_test(m, MUTANT_INCREMENT, out)?;
            }
        }
        if let Some(obj) = thread_object {
            self.expect_kind(obj, &[ObjectKind::Thread, ObjectKind::Process])?;
            self.object_mut(obj)?.state = 1;
            self.wait_test(obj, EVENT_INCREMENT, out)?;
        }
        Ok(())
    }
}

impl Dispatcher {
    /// A process (or an executive thread object) becomes signaled when it
    /// terminates (`KeTerminateProcess`'s `SignalState = 1`), satisfying
    /// its waiters; it stays signaled.
    pub fn signal_terminated(
        &mut self,
        id: ObjectId,
        out: &mut Vec<Unwait>,
    ) -> Result<(), NtStatus> {
        self.expect_kind(id, &[ObjectKind::Process, ObjectKind::Thread])?;
        self.object_mut(id)?.state = 1;
        self.wait_test(id, EVENT_INCREMENT, out)
    }
}

fn wait_status(index: usize, abandoned: bool) -> NtStatus {
    let base = if abandoned {
        STATUS_ABANDONED_WAIT_0
    } else {
        STATUS_WAIT_0
    };
    NtStatus(base.0 + index as i32)
}
