//! Executive dispatcher-object services (`NtCreateEvent`, `NtOpenEvent`,
//! `NtSetEvent`, mutants, semaphores, `NtWaitForSingleObject`,
//! `NtWaitForMultipleObjects`): object-manager objects whose bodies are
//! dispatcher objects. Callable from kernel mode now; the system-call layer
//! reaches them when user mode lands.

use crate::ke::thread::WaitReason;
use crate::ke::wait::{self as kw, RawObject, Waitable};
use crate::ob::handle::{
    ob_insert_object_handle, ob_open_object_by_name_handle, ob_reference_object_by_handle,
};
use crate::ob::object::*;
use crate::ob::types::{ob_create_object_type, ObjectTypeRef, TypeInitializer};
use ::ke::objects::{ObjectId, WaitType};
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// Access rights.
pub const EVENT_QUERY_STATE: u32 = 0x0001;
pub const EVENT_MODIFY_STATE: u32 = 0x0002;
pub const EVENT_ALL_ACCESS: u32 = 0x001F_0003;
pub const MUTANT_QUERY_STATE: u32 = 0x0001;
pub const MUTANT_ALL_ACCESS: u32 = 0x001F_0001;
pub const SEMAPHORE_MODIFY_STATE: u32 = 0x0002;
pub const SEMAPHORE_ALL_ACCESS: u32 = 0x001F_0003;
pub const SYNCHRONIZE: u32 = 0x0010_0000;

/// `ExEventObjectType`, `ExMutantObjectType`, `ExSemaphoreObjectType`,
/// `ExTimerObjectType`.
pub static EX_EVENT_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static EX_MUTANT_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static EX_SEMAPHORE_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static EX_TIMER_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();

/// `ExpEventInitialization`, `ExpMutantInitialization`,
/// `ExpSemaphoreInitialization`, `ExpTimerInitialization`: the four types
/// with NT's generic mappings.
pub fn ex_init_object_types() -> Result<(), NtStatus> {
    use security::access::GenericMapping;
    let types: [(&str, u32, &ObjectTypeRef); 4] = [
        // EVENT_QUERY_STATE 1, EVENT_MODIFY_STATE 2.
        ("Event", EVENT_ALL_ACCESS, &EX_EVENT_OBJECT_TYPE),
        // MUTANT_QUERY_STATE 1.
        ("Mutant", MUTANT_ALL_ACCESS, &EX_MUTANT_OBJECT_TYPE),
        // SEMAPHORE_QUERY_STATE 1, SEMAPHORE_MODIFY_STATE 2.
        ("Semaphore", SEMAPHORE_ALL_ACCESS, &EX_SEMAPHORE_OBJECT_TYPE),
        // TIMER_QUERY_STATE 1, TIMER_MODIFY_STATE 2.
        ("Timer", TIMER_ALL_ACCESS, &EX_TIMER_OBJECT_TYPE),
    ];
    for (name, all, out) in types {
        let modify = if all & 2 != 0 {
            0x0002_0002
        } else {
            0x0002_0000
        };
        let init = TypeInitializer {
            generic_mapping: GenericMapping {
                read: 0x0002_0001,
                write: modify,
                execute: SYNCHRONIZE,
                all,
            },
            ..Default::default()
        };
        ob_create_object_type(name, init, out)?;
    }
    Ok(())
}

/// `EVENT_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    NotificationEvent,
    SynchronizationEvent,
}

fn create_named(
    object_type: &'static ObjectTypeRef,
    name: Option<&str>,
    attributes: u32,
    desired: u32,
    mode: Mode,
    make: impl FnOnce(&mut ::ke::objects::Dispatcher) -> Result<ObjectId, NtStatus>,
) -> Result<(u64, NtStatus), NtStatus> {
    let obj = kw::create_object(make)?;
    let created = ob_create_object(CreateSpec {
        object_type,
        name,
        attributes,
        body: ObjectBody::Dispatcher(obj.0),
        sd: None,
    });
    let (id, status) = match created {
        Ok(v) => v,
        Err(e) => {
            kw::delete_object(obj.0);
            return Err(e);
        }
    };
    if status != STATUS_SUCCESS {
        // OBJ_OPENIF found an existing object: ours was never used.
        kw::delete_object(obj.0);
    }
    ob_insert_object_handle(id, desired, attributes, mode).map(|h| (h, status))
}

/// `ObOpenObjectByName` with the caller's effective token
/// (`SeCaptureSubjectContext`).
fn open_named(
    object_type: &ObjectTypeRef,
    path: &str,
    attributes: u32,
    desired: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let subject = crate::se::se_capture_subject_context();
    ob_open_object_by_name_handle(
        path,
        Some(object_type),
        attributes,
        desired,
        mode,
        subject.effective_token(),
    )
}

/// The dispatcher object behind a handle, checked for type and access.
fn dispatcher_of(
    handle: u64,
    object_type: &ObjectTypeRef,
    desired: u32,
    mode: Mode,
) -> Result<(crate::ob::handle::ObjectRef, ObjectId), NtStatus> {
    let r = ob_reference_object_by_handle(handle, desired, Some(object_type), mode)?;
    let idx = with_body(r.id, |b| match b.body {
        ObjectBody::Dispatcher(i) => Some(i),
        _ => None,
    })
    .flatten()
    .ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    Ok((r, ObjectId(idx)))
}

/// `NtCreateEvent`: returns the handle (and STATUS_OBJECT_NAME_EXISTS with OBJ_OPENIF).
pub fn nt_create_event(
    desired: u32,
    name: Option<&str>,
    attributes: u32,
    event_type: EventType,
    initial_state: bool,
    mode: Mode,
) -> Result<(u64, NtStatus), NtStatus> {
    create_named(
        &EX_EVENT_OBJECT_TYPE,
        name,
        attributes,
        desired,
        mode,
        |db| Ok(db.create_event(event_type == EventType::NotificationEvent, initial_state)),
    )
}

/// `NtOpenEvent`.
pub fn nt_open_event(
    desired: u32,
    path: &str,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    open_named(&EX_EVENT_OBJECT_TYPE, path, attributes, desired, mode)
}

/// `NtSetEvent`: returns the previous state.
pub fn nt_set_event(handle: u64, mode: Mode) -> Result<i32, NtStatus> {
    let (_r, id) = dispatcher_of(handle, &EX_EVENT_OBJECT_TYPE, EVENT_MODIFY_STATE, mode)?;
    kw::with_db(|st| {
        st.db
            .set_event(id, ::ke::priority::EVENT_INCREMENT, &mut st.unwaits)
    })
}

/// `NtResetEvent`.
pub fn nt_reset_event(handle: u64, mode: Mode) -> Result<i32, NtStatus> {
    let (_r, id) = dispatcher_of(handle, &EX_EVENT_OBJECT_TYPE, EVENT_MODIFY_STATE, mode)?;
    kw::with_db(|st| st.db.reset_event(id))
}

/// `NtPulseEvent`.
pub fn nt_pulse_event(handle: u64, mode: Mode) -> Result<i32, NtStatus> {
    let (_r, id) = dispatcher_of(handle, &EX_EVENT_OBJECT_TYPE, EVENT_MODIFY_STATE, mode)?;
    kw::with_db(|st| {
        st.db
            .pulse_event(id, ::ke::priority::EVENT_INCREMENT, &mut st.unwaits)
    })
}

/// `NtCreateMutant`.
pub fn nt_create_mutant(
    desired: u32,
    name: Option<&str>,
    attributes: u32,
    initial_owner: bool,
    mode: Mode,
) -> Result<(u64, NtStatus), NtStatus> {
    let me = crate::ke::sched::current_thread_id();
    create_named(
        &EX_MUTANT_OBJECT_TYPE,
        name,
        attributes,
        desired,
        mode,
        |db| Ok(db.create_mutant(initial_owner.then_some(::ke::objects::ThreadId(me)))),
    )
}

/// `NtOpenMutant`.
pub fn nt_open_mutant(
    desired: u32,
    path: &str,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    open_named(&EX_MUTANT_OBJECT_TYPE, path, attributes, desired, mode)
}

/// `NtReleaseMutant`: returns the previous count; STATUS_MUTANT_NOT_OWNED.
pub fn nt_release_mutant(handle: u64, mode: Mode) -> Result<i32, NtStatus> {
    let (_r, id) = dispatcher_of(handle, &EX_MUTANT_OBJECT_TYPE, 0, mode)?;
    let me = ::ke::objects::ThreadId(crate::ke::sched::current_thread_id());
    kw::with_db(|st| st.db.release_mutant(id, me, false, &mut st.unwaits))
}

/// `NtCreateSemaphore`: STATUS_INVALID_PARAMETER for a bad count/limit.
pub fn nt_create_semaphore(
    desired: u32,
    name: Option<&str>,
    attributes: u32,
    initial: i32,
    maximum: i32,
    mode: Mode,
) -> Result<(u64, NtStatus), NtStatus> {
    create_named(
        &EX_SEMAPHORE_OBJECT_TYPE,
        name,
        attributes,
        desired,
        mode,
        |db| db.create_semaphore(initial, maximum),
    )
}

/// `NtOpenSemaphore`.
pub fn nt_open_semaphore(
    desired: u32,
    path: &str,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    open_named(&EX_SEMAPHORE_OBJECT_TYPE, path, attributes, desired, mode)
}

/// `NtReleaseSemaphore`: returns the previous count.
pub fn nt_release_semaphore(handle: u64, count: i32, mode: Mode) -> Result<i32, NtStatus> {
    let (_r, id) = dispatcher_of(
        handle,
        &EX_SEMAPHORE_OBJECT_TYPE,
        SEMAPHORE_MODIFY_STATE,
        mode,
    )?;
    kw::with_db(|st| st.db.release_semaphore(id, count, 1, &mut st.unwaits))
}

/// `NtWaitForSingleObject` (needs SYNCHRONIZE from user mode).
/// `timeout`: relative 100 ns units, `None` = infinite.
pub fn nt_wait_for_single_object(
    handle: u64,
    alertable: bool,
    timeout: Option<u64>,
    mode: Mode,
) -> NtStatus {
    nt_wait_for_multiple_objects(&[handle], WaitType::WaitAny, alertable, timeout, mode)
}

/// `NtWaitForMultipleObjects`: STATUS_INVALID_PARAMETER_1 for a bad count.
pub fn nt_wait_for_multiple_objects(
    handles: &[u64],
    wait_type: WaitType,
    alertable: bool,
    timeout: Option<u64>,
    mode: Mode,
) -> NtStatus {
    if handles.is_empty() || handles.len() > ::ke::objects::MAXIMUM_WAIT_OBJECTS {
        return STATUS_INVALID_PARAMETER_1;
    }
    let mut refs = Vec::with_capacity(handles.len());
    enum Wait {
        Raw(RawObject),
        Timer(&'static crate::ke::timer::KTimer),
    }
    let mut objs: Vec<Wait> = Vec::with_capacity(handles.len());
    for &h in handles {
        let r = match ob_reference_object_by_handle(h, SYNCHRONIZE, None, mode) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let w = with_body(r.id, |b| match b.body {
            ObjectBody::Dispatcher(i) => Some(Wait::Raw(RawObject(ObjectId(i)))),
            ObjectBody::Timer(t) => Some(Wait::Timer(t)),
            _ => None,
        })
        .flatten();
        let Some(w) = w else {
            return STATUS_OBJECT_TYPE_MISMATCH;
        };
        objs.push(w);
        refs.push(r);
    }
    let waitables: Vec<&dyn Waitable> = objs
        .iter()
        .map(|o| match o {
            Wait::Raw(r) => r as &dyn Waitable,
            Wait::Timer(t) => *t as &dyn Waitable,
        })
        .collect();
    kw::ke_wait_for_multiple_objects(
        &waitables,
        wait_type,
        WaitReason::UserRequest,
        mode == Mode::UserMode,
        alertable,
        timeout,
    )
}

/// `TIMER_QUERY_STATE`, `TIMER_MODIFY_STATE`, `TIMER_ALL_ACCESS`.
pub const TIMER_QUERY_STATE: u32 = 0x0001;
pub const TIMER_MODIFY_STATE: u32 = 0x0002;
pub const TIMER_ALL_ACCESS: u32 = 0x001F_0003;

/// `TIMER_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerType {
    NotificationTimer,
    SynchronizationTimer,
}

/// `NtCreateTimer`.
pub fn nt_create_timer(
    desired: u32,
    name: Option<&str>,
    attributes: u32,
    timer_type: TimerType,
    mode: Mode,
) -> Result<(u64, NtStatus), NtStatus> {
    let t: &'static crate::ke::timer::KTimer = alloc::boxed::Box::leak(alloc::boxed::Box::new(
        if timer_type == TimerType::NotificationTimer {
            crate::ke::timer::KTimer::new()
        } else {
            crate::ke::timer::KTimer::new_synchronization()
        },
    ));
    let created = ob_create_object(CreateSpec {
        object_type: &EX_TIMER_OBJECT_TYPE,
        name,
        attributes,
        body: ObjectBody::Timer(t),
        sd: None,
    });
    let (id, status) = match created {
        Ok(v) => v,
        Err(e) => {
            // SAFETY: never inserted anywhere.
            drop(unsafe {
                alloc::boxed::Box::from_raw(t as *const _ as *mut crate::ke::timer::KTimer)
            });
            return Err(e);
        }
    };
    if status != STATUS_SUCCESS {
        // SAFETY: the existing object was returned; ours was never inserted.
        drop(unsafe {
            alloc::boxed::Box::from_raw(t as *const _ as *mut crate::ke::timer::KTimer)
        });
    }
    ob_insert_object_handle(id, desired, attributes, mode).map(|h| (h, status))
}

/// `NtOpenTimer`.
pub fn nt_open_timer(
    desired: u32,
    path: &str,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    open_named(&EX_TIMER_OBJECT_TYPE, path, attributes, desired, mode)
}

fn timer_of(
    handle: u64,
    desired: u32,
    mode: Mode,
) -> Result<
    (
        crate::ob::handle::ObjectRef,
        &'static crate::ke::timer::KTimer,
    ),
    NtStatus,
> {
    let r = ob_reference_object_by_handle(handle, desired, Some(&EX_TIMER_OBJECT_TYPE), mode)?;
    let t = with_body(r.id, |b| match b.body {
        ObjectBody::Timer(t) => Some(t),
        _ => None,
    })
    .flatten()
    .ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    Ok((r, t))
}

/// `NtSetTimer`: `due` negative = relative 100 ns units; `period_ms` > 0
/// makes it periodic. Returns the previous signal state.
pub fn nt_set_timer(handle: u64, due: i64, period_ms: u32, mode: Mode) -> Result<bool, NtStatus> {
    let (_r, t) = timer_of(handle, TIMER_MODIFY_STATE, mode)?;
    let prev = t.signaled();
    crate::ke::timer::ke_set_timer_ex(t, due, period_ms, None);
    Ok(prev)
}

/// `NtCancelTimer`: returns the current signal state.
pub fn nt_cancel_timer(handle: u64, mode: Mode) -> Result<bool, NtStatus> {
    let (_r, t) = timer_of(handle, TIMER_MODIFY_STATE, mode)?;
    crate::ke::timer::ke_cancel_timer(t);
    Ok(t.signaled())
}
