//! Waits on dispatcher objects (*Windows Internals*, Part 2, ch. 8,
//! "Dispatcher objects"). The dispatcher database is the host-tested
//! `::ke::objects::Dispatcher`, kept in the scheduler's `DispatcherState`
//! under the dispatcher lock. Kernel objects (`KEvent`, `KMutant`,
//! `KSemaphore`, timers, threads) are handles into it, created on first use
//! so they can be `static` or embedded in other structures. Every operation
//! that satisfies waits readies the woken threads with their wait status and
//! the priority increment (the wait boost).

use super::sched::{self, DispatcherState};
use super::thread::{ThreadRef, WaitReason};
use ::ke::apc::ProcessorMode;
use ::ke::objects::{ObjectId, ThreadId, WaitParams, WaitStart, WaitType};
use core::sync::atomic::{AtomicU32, Ordering};
use nt::status::*;
use nt::NtStatus;

/// Something a thread can wait on.
pub trait Waitable {
    /// The object's id in the dispatcher database (lock held).
    fn object_id(&self, st: &mut DispatcherState) -> ObjectId;
}

/// Lazily created dispatcher object: 0 = not yet, else id + 1.
struct Lazy(AtomicU32);

impl Lazy {
    const fn new() -> Self {
        Lazy(AtomicU32::new(0))
    }
    fn get(
        &self,
        st: &mut DispatcherState,
        create: impl FnOnce(&mut DispatcherState) -> ObjectId,
    ) -> ObjectId {
        match self.0.load(Ordering::Acquire) {
            0 => {
                let id = create(st);
                self.0.store(id.0 + 1, Ordering::Release);
                id
            }
            v => ObjectId(v - 1),
        }
    }
    fn existing(&self) -> Option<ObjectId> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            v => Some(ObjectId(v - 1)),
        }
    }
}

impl Drop for Lazy {
    /// An object embedded in a structure that goes away takes its
    /// dispatcher object with it (so the id is not left to be reused under
    /// a stale name). Never dropped with the dispatcher lock held.
    fn drop(&mut self) {
        let v = *self.0.get_mut();
        if v != 0 {
            delete_object(v - 1);
        }
    }
}

/// `KEVENT`.
pub struct KEvent {
    id: Lazy,
    notification: bool,
    initial: bool,
}

impl KEvent {
    /// `KeInitializeEvent(NotificationEvent | SynchronizationEvent, State)`.
    pub const fn new(notification: bool, signaled: bool) -> Self {
        KEvent {
            id: Lazy::new(),
            notification,
            initial: signaled,
        }
    }
}

impl Waitable for KEvent {
    fn object_id(&self, st: &mut DispatcherState) -> ObjectId {
        self.id
            .get(st, |st| st.db.create_event(self.notification, self.initial))
    }
}

/// `KMUTANT` (`KMUTEX` is a mutant whose owner must be kernel mode).
pub struct KMutant {
    id: Lazy,
}

impl KMutant {
    /// `KeInitializeMutant(Mutant, FALSE)`.
    pub const fn new() -> Self {
        KMutant { id: Lazy::new() }
    }
}

impl Default for KMutant {
    fn default() -> Self {
        Self::new()
    }
}

impl Waitable for KMutant {
    fn object_id(&self, st: &mut DispatcherState) -> ObjectId {
        self.id.get(st, |st| st.db.create_mutant(None))
    }
}

/// `KSEMAPHORE`.
pub struct KSemaphore {
    id: Lazy,
    count: i32,
    limit: i32,
}

impl KSemaphore {
    /// `KeInitializeSemaphore`; an invalid count/limit pair is clamped to a
    /// limit of at least 1 and a count within it.
    pub const fn new(count: i32, limit: i32) -> Self {
        let limit = if limit < 1 { 1 } else { limit };
        let count = if count < 0 {
            0
        } else if count > limit {
            limit
        } else {
            count
        };
        KSemaphore {
            id: Lazy::new(),
            count,
            limit,
        }
    }
}

impl Waitable for KSemaphore {
    fn object_id(&self, st: &mut DispatcherState) -> ObjectId {
        self.id.get(st, |st| {
            st.db
                .create_semaphore(self.count, self.limit)
                .unwrap_or_else(|_| st.db.create_event(true, false))
        })
    }
}

/// A raw dispatcher object id (objects owned by the object manager).
pub struct RawObject(pub ObjectId);

impl Waitable for RawObject {
    fn object_id(&self, _st: &mut DispatcherState) -> ObjectId {
        self.0
    }
}

/// A thread as a waitable object (signaled when it terminates). It holds a
/// reference, so the thread object (and its dispatcher object) outlives
/// the wait even if the thread is reaped and its id reused meanwhile.
pub struct ThreadObject(ThreadRef);

impl ThreadObject {
    /// The thread `tid` as a waitable object, if it exists now.
    pub fn new(tid: u32) -> Option<ThreadObject> {
        sched::reference_thread(tid).map(ThreadObject)
    }

    /// From a reference already held.
    pub fn from_ref(t: ThreadRef) -> ThreadObject {
        ThreadObject(t)
    }

    /// The thread object it holds.
    pub fn thread(&self) -> &super::thread::KThread {
        &self.0
    }
}

impl Waitable for ThreadObject {
    fn object_id(&self, _st: &mut DispatcherState) -> ObjectId {
        self.0.dispatcher_object
    }
}

/// Readies every thread in the unwait list (`KiUnwaitThread` for each):
/// wait status, timeout cancelled, boost, `KiReadyThread`.
pub fn process_unwaits(st: &mut DispatcherState) {
    while let Some(u) = st.unwaits.pop() {
        sched::unwait_thread(st, u.thread.0, u.status, u.increment);
    }
}

/// The delete procedure of a dispatcher object owned by the object manager.
pub fn delete_object(index: u32) {
    let mut g = sched::lock();
    let st = &mut *g;
    let _ = st.db.delete(ObjectId(index), &mut st.unwaits);
    process_unwaits(st);
}

/// Creates a dispatcher object for the object manager (NtCreateEvent & co.).
pub fn create_object(
    f: impl FnOnce(&mut ::ke::objects::Dispatcher) -> Result<ObjectId, NtStatus>,
) -> Result<ObjectId, NtStatus> {
    let mut g = sched::lock();
    f(&mut g.db)
}

/// Runs a dispatcher operation that may satisfy waits, then readies the
/// woken threads.
pub fn with_db<R>(f: impl FnOnce(&mut DispatcherState) -> R) -> R {
    let mut g = sched::lock();
    let r = f(&mut g);
    process_unwaits(&mut g);
    r
}

/// `KeWaitForMultipleObjects`: waits for any or all of `objects`.
/// `timeout` is relative, in 100 ns units (`None`: forever; `Some(0)`: poll).
/// Returns `STATUS_WAIT_0 + n`, `STATUS_ABANDONED_WAIT_0 + n`,
/// `STATUS_TIMEOUT`, `STATUS_ALERTED`, `STATUS_USER_APC`, or an error for a
/// bad wait (too many objects, a duplicate in a wait-all). Kernel APCs that
/// arrive during the wait are delivered and the wait resumes. An object
/// that is signaled wins over an alert or a user APC (`KiCheckAlertability`
/// after the objects, as NT orders them). A wait that can block (timeout
/// other than zero) needs IRQL <= APC_LEVEL outside a DPC routine, a poll
/// IRQL <= DISPATCH_LEVEL; otherwise the system stops (see
/// `sched::check_switch_allowed`).
pub fn ke_wait_for_multiple_objects(
    objects: &[&dyn Waitable],
    wait_type: WaitType,
    reason: WaitReason,
    user_mode: bool,
    alertable: bool,
    timeout: Option<u64>,
) -> NtStatus {
    if objects.len() > ::ke::objects::MAXIMUM_WAIT_OBJECTS {
        return STATUS_INVALID_PARAMETER;
    }
    if timeout == Some(0) {
        if super::irql() > super::DISPATCH_LEVEL {
            super::bugcheck::ke_bug_check_ex(
                nt::bugcheck::IRQL_NOT_LESS_OR_EQUAL,
                0,
                super::irql() as u64,
                0,
                ke_wait_for_multiple_objects as *const () as u64,
            );
        }
    } else {
        sched::check_switch_allowed(ke_wait_for_multiple_objects as *const () as u64);
    }
    let mode = if user_mode {
        ProcessorMode::UserMode
    } else {
        ProcessorMode::KernelMode
    };
    let due = timeout.map(|t| sched::interrupt_time().saturating_add(t));
    let tid = sched::current_thread_id();
    let mut ids = [ObjectId(0); ::ke::objects::MAXIMUM_WAIT_OBJECTS];
    loop {
        let mut g = sched::lock();
        let st = &mut *g;
        for (i, o) in objects.iter().enumerate() {
            ids[i] = o.object_id(st);
        }
        let params = WaitParams {
            mode,
            alertable,
            due,
            reason,
        };
        let now = sched::interrupt_time();
        let Some(entry) = st.thread_table.get_mut(tid) else {
            return STATUS_INVALID_PARAMETER;
        };
        let start = st.db.wait_ex(
            ThreadId(tid),
            &ids[..objects.len()],
            wait_type,
            &params,
            now,
            &mut entry.apc,
        );
        match start {
            Err(e) => return e,
            Ok(WaitStart::Satisfied(s)) => {
                process_unwaits(st);
                drop(g);
                if s == STATUS_USER_APC {
                    super::apc::ki_deliver_user_apcs();
                }
                return s;
            }
            Ok(WaitStart::Blocked) => {}
        }
        let irql = g.old_irql();
        sched::record_wait(&mut g, tid, reason, mode, alertable, irql);
        if let Some(d) = due {
            sched::arm_timeout(&mut g, tid, d);
        }
        sched::block_current(&mut g);
        let status = sched::wait_status(&g, tid);
        drop(g);
        if status == STATUS_KERNEL_APC {
            continue;
        }
        if status == STATUS_USER_APC {
            super::apc::ki_deliver_user_apcs();
        }
        return status;
    }
}

/// `KeWaitForSingleObject`.
pub fn ke_wait_for_single_object(
    object: &dyn Waitable,
    reason: WaitReason,
    user_mode: bool,
    alertable: bool,
    timeout: Option<u64>,
) -> NtStatus {
    ke_wait_for_multiple_objects(
        &[object],
        WaitType::WaitAny,
        reason,
        user_mode,
        alertable,
        timeout,
    )
}

/// `KeSetEvent`: returns the previous state.
pub fn ke_set_event(e: &dyn Waitable, increment: u8) -> i32 {
    with_db(|st| {
        let id = e.object_id(st);
        st.db.set_event(id, increment, &mut st.unwaits).unwrap_or(0)
    })
}

/// `KeResetEvent`: returns the previous state.
pub fn ke_reset_event(e: &dyn Waitable) -> i32 {
    with_db(|st| {
        let id = e.object_id(st);
        st.db.reset_event(id).unwrap_or(0)
    })
}

/// `KePulseEvent`.
pub fn ke_pulse_event(e: &dyn Waitable, increment: u8) -> i32 {
    with_db(|st| {
        let id = e.object_id(st);
        st.db
            .pulse_event(id, increment, &mut st.unwaits)
            .unwrap_or(0)
    })
}

/// `KeReadStateEvent` & co.: the object's signal state.
pub fn ke_read_state(o: &dyn Waitable) -> i32 {
    with_db(|st| {
        let id = o.object_id(st);
        st.db.query(id).map_or(0, |q| q.state)
    })
}

/// `KeReleaseMutant`: STATUS_MUTANT_NOT_OWNED if the caller does not own it.
pub fn ke_release_mutant(m: &dyn Waitable, abandoned: bool) -> Result<i32, NtStatus> {
    let me = sched::current_thread_id();
    with_db(|st| {
        let id = m.object_id(st);
        st.db
            .release_mutant(id, ThreadId(me), abandoned, &mut st.unwaits)
    })
}

/// `KeReleaseSemaphore`: STATUS_SEMAPHORE_LIMIT_EXCEEDED past the limit.
pub fn ke_release_semaphore(
    s: &dyn Waitable,
    increment: u8,
    adjustment: i32,
) -> Result<i32, NtStatus> {
    with_db(|st| {
        let id = s.object_id(st);
        st.db
            .release_semaphore(id, adjustment, increment, &mut st.unwaits)
    })
}

/// The dispatcher object of a kernel timer (`KTIMER` is waitable).
pub struct TimerObject(Lazy, bool);

impl TimerObject {
    pub const fn new() -> Self {
        TimerObject(Lazy::new(), true)
    }
    /// A synchronization timer's object (auto-resets when it satisfies a wait).
    pub const fn synchronization() -> Self {
        TimerObject(Lazy::new(), false)
    }
    /// Deletes the dispatcher object, if one was created (timer deletion).
    pub fn destroy(&self) {
        let id = self.0 .0.swap(0, Ordering::AcqRel);
        if id != 0 {
            delete_object(id - 1);
        }
    }
    /// The id if the timer has been used as a wait object.
    pub fn existing(&self) -> Option<ObjectId> {
        self.0.existing()
    }
}

impl Default for TimerObject {
    fn default() -> Self {
        Self::new()
    }
}

impl Waitable for TimerObject {
    fn object_id(&self, st: &mut DispatcherState) -> ObjectId {
        let notification = self.1;
        self.0.get(st, |st| st.db.create_timer(notification))
    }
}
