//! Waits on dispatcher objects (*Windows Internals*, Part 2, ch. 8,
//! "Dispatcher objects"). The dispatcher database is the host-tested
//! `::ke::objects::Dispatcher`, kept in the scheduler's `DispatcherState`
//! under the dispatcher lock. Kernel objects (`KEvent`, `KMutant`,
//! `KSemaphore`, timers, threads) are handles into it, created on first use
//! so they can be `static` or embedded in other structures. Every operation
//! that satisfies waits readies the woken threads with their wait status and
//! the priority increment (the wait boost).

use super::sched::{self, DispatcherState};
use super::thread::{self, ThreadState, WaitReason};
use ::ke::objects::{ObjectId, ThreadId, WaitStart, WaitType};
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

/// A thread as a waitable object (signaled when it terminates).
pub struct ThreadObject(pub u32);

impl Waitable for ThreadObject {
    fn object_id(&self, st: &mut DispatcherState) -> ObjectId {
        thread_object_locked(st, self.0)
    }
}

/// The dispatcher object of thread `tid`, created on first use.
fn thread_object_locked(st: &mut DispatcherState, tid: u32) -> ObjectId {
    let Some(t) = thread::thread(tid) else {
        // Gone already: a signaled notification event stands in.
        return st.db.create_event(true, true);
    };
    if t.dispatcher_object == 0 {
        let id = st.db.create_thread_object(false);
        t.dispatcher_object = id.0 + 1;
        if t.state == ThreadState::Terminated {
            let _ = st.db.thread_exit(ThreadId(tid), Some(id), &mut st.unwaits);
        }
    }
    ObjectId(t.dispatcher_object - 1)
}

/// Readies every thread in the unwait list (`KiUnwaitThread` for each):
/// wait status, timed wait disarmed, boost, `KiReadyThread`.
pub fn process_unwaits(st: &mut DispatcherState) {
    while let Some(u) = st.unwaits.pop() {
        let tid = u.thread.0;
        let Some(t) = thread::thread(tid) else {
            continue;
        };
        if t.state != ThreadState::Waiting {
            continue;
        }
        t.wait_status = u.status.0;
        sched::disarm_timeout_locked(st, tid);
        t.priority = ::ke::priority::boosted_priority(t.base_priority, t.priority, u.increment);
        sched::ready_thread_locked(st, tid, false);
    }
}

/// A timed wait of `tid` ended (lock held): its wait blocks are removed.
pub fn timeout_locked(st: &mut DispatcherState, tid: u32) {
    st.db.cancel_wait(ThreadId(tid));
}

/// `tid`'s wait was ended by an APC or an alert (lock held): its wait
/// blocks leave the objects' wait lists.
pub fn abort_wait_locked(st: &mut DispatcherState, tid: u32) {
    st.db.cancel_wait(ThreadId(tid));
}

/// `tid` terminated (lock held): its mutants are abandoned and threads
/// waiting on it are released.
pub fn thread_terminated_locked(st: &mut DispatcherState, tid: u32) {
    let obj = thread::thread(tid)
        .filter(|t| t.dispatcher_object != 0)
        .map(|t| ObjectId(t.dispatcher_object - 1));
    let _ = st.db.thread_exit(ThreadId(tid), obj, &mut st.unwaits);
    process_unwaits(st);
}

/// A reaped thread's dispatcher object goes away (lock held).
pub fn thread_reaped_locked(st: &mut DispatcherState, object: u32) {
    if object != 0 {
        let _ = st.db.delete(ObjectId(object - 1), &mut st.unwaits);
        process_unwaits(st);
    }
}

/// The delete procedure of a dispatcher object owned by the object manager.
pub fn delete_object(index: u32) {
    let (old, st) = sched::lock();
    let _ = st.db.delete(ObjectId(index), &mut st.unwaits);
    process_unwaits(st);
    sched::unlock(old);
}

/// Creates a dispatcher object for the object manager (NtCreateEvent & co.).
pub fn create_object(
    f: impl FnOnce(&mut ::ke::objects::Dispatcher) -> Result<ObjectId, NtStatus>,
) -> Result<ObjectId, NtStatus> {
    let (old, st) = sched::lock();
    let r = f(&mut st.db);
    sched::unlock(old);
    r
}

/// Runs a dispatcher operation that may satisfy waits, then readies the
/// woken threads.
pub fn with_db<R>(f: impl FnOnce(&mut DispatcherState) -> R) -> R {
    let (old, st) = sched::lock();
    let r = f(st);
    process_unwaits(st);
    sched::unlock(old);
    r
}

/// `KeWaitForMultipleObjects`: waits for any or all of `objects`.
/// `timeout` is relative, in 100 ns units (`None`: forever; `Some(0)`: poll).
/// Returns `STATUS_WAIT_0 + n`, `STATUS_ABANDONED_WAIT_0 + n`,
/// `STATUS_TIMEOUT`, `STATUS_ALERTED`, `STATUS_USER_APC`, or an error for a
/// bad wait (too many objects, a duplicate in a wait-all). Kernel APCs that
/// arrive during the wait are delivered and the wait resumes.
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
    if super::irql() > super::DISPATCH_LEVEL
        || (super::irql() == super::DISPATCH_LEVEL && timeout != Some(0))
    {
        super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::IRQL_NOT_LESS_OR_EQUAL,
            0,
            super::irql() as u64,
            0,
            0,
        );
    }
    let due = timeout.map(|t| sched::interrupt_time().saturating_add(t));
    let mut ids = [ObjectId(0); ::ke::objects::MAXIMUM_WAIT_OBJECTS];
    loop {
        let (old, st) = sched::lock();
        let me = sched::current_thread();
        if alertable {
            if let Some(s) = super::apc::alertable_wait_status(me, user_mode) {
                sched::unlock(old);
                if s == STATUS_USER_APC.0 {
                    super::apc::ki_deliver_user_apcs();
                }
                return NtStatus(s);
            }
        }
        for (i, o) in objects.iter().enumerate() {
            ids[i] = o.object_id(st);
        }
        let poll = due.is_some_and(|d| d <= sched::interrupt_time());
        let start = st
            .db
            .wait(ThreadId(me.id), &ids[..objects.len()], wait_type, poll);
        match start {
            Err(e) => {
                sched::unlock(old);
                return e;
            }
            Ok(WaitStart::Satisfied(s)) => {
                process_unwaits(st);
                sched::unlock(old);
                return s;
            }
            Ok(WaitStart::Blocked) => {}
        }
        if let Some(d) = due {
            sched::arm_timeout_locked(st, d);
        }
        me.wait_irql = old;
        me.alertable = alertable;
        me.wait_mode_user = user_mode;
        sched::block_current_locked(st, reason);
        let me = sched::current_thread();
        me.alertable = false;
        let status = me.wait_status;
        sched::unlock(old);
        if status == STATUS_KERNEL_APC.0 {
            continue;
        }
        if status == STATUS_USER_APC.0 {
            super::apc::ki_deliver_user_apcs();
        }
        return NtStatus(status);
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

/// Signals a timer's dispatcher object at expiry (dispatch interrupt).
pub fn signal_timer(id: ObjectId) {
    with_db(|st| {
        let _ = st.db.signal_timer(id, &mut st.unwaits);
    });
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
        if let Some(id) = self.0.existing() {
            self.0 .0.store(0, Ordering::Release);
            delete_object(id.0);
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
