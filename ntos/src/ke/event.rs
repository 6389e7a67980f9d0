//! Events in memory the caller owns (`KeInitializeEvent`, `KeSetEvent`,
//! `KeResetEvent`, `KeClearEvent`, `KeReadStateEvent` and
//! `KeWaitForSingleObject` on a `KEVENT`): the 0x18-byte `KEVENT` drivers
//! embed in their device extensions, stacks and IRPs.
//!
//! The dispatcher database (`::ke::objects`) keeps waitable objects by id,
//! but a driver's `KEVENT` has no destructor: it just stops being used. So
//! the event's state lives in its own `DISPATCHER_HEADER` bytes
//! (`SignalState`), and a dispatcher object exists only while threads wait
//! on it: the first waiter creates one, recorded in the header's
//! `WaitListHead` (`Flink` = its id + 1, `Blink` = the number of waiters;
//! an empty list head, as `KeInitializeEvent` leaves it, means none), and
//! the last waiter to leave copies its state back and deletes it. While a
//! dispatcher object exists it holds the event's state; `SignalState`
//! mirrors it after every operation. Everything happens under the
//! dispatcher lock, so nothing is leaked when the memory is reused and no
//! registry of addresses is needed.

use super::thread::WaitReason;
use super::wait::{self as kw, RawObject};
use ::ke::objects::ObjectId;
use core::ptr::addr_of_mut;
use nt::status::*;
use nt::NtStatus;
use wdk::{KEVENT, LIST_ENTRY, NOTIFICATION_EVENT, SYNCHRONIZATION_EVENT};

/// The dispatcher object backing the event while threads wait on it.
///
/// # Safety
/// `ev` is a live `KEVENT`; dispatcher lock held.
unsafe fn attached(ev: *mut KEVENT) -> Option<ObjectId> {
    // SAFETY: the caller guarantees `ev` is live.
    unsafe {
        let head = addr_of_mut!((*ev).Header.WaitListHead);
        let f = (*head).Flink;
        if f == head || f.is_null() {
            None
        } else {
            Some(ObjectId(f as usize as u32 - 1))
        }
    }
}

/// # Safety
/// `ev` is a live `KEVENT`; dispatcher lock held.
unsafe fn set_attached(ev: *mut KEVENT, id: Option<ObjectId>, waiters: usize) {
    // SAFETY: the caller guarantees `ev` is live.
    unsafe {
        let head: *mut LIST_ENTRY = addr_of_mut!((*ev).Header.WaitListHead);
        match id {
            Some(id) => {
                (*head).Flink = (id.0 as usize + 1) as *mut LIST_ENTRY;
                (*head).Blink = waiters as *mut LIST_ENTRY;
            }
            None => {
                (*head).Flink = head;
                (*head).Blink = head;
            }
        }
    }
}

fn is_notification(ev: &KEVENT) -> bool {
    ev.Header.Type as u32 == NOTIFICATION_EVENT
}

/// `KeInitializeEvent`: a notification or synchronization event in the
/// caller's memory, signaled or not.
///
/// # Safety
/// `ev` must point at 0x18 writable bytes no thread waits on.
pub unsafe fn ke_initialize_event(ev: *mut KEVENT, event_type: u32, state: bool) {
    // SAFETY: the caller guarantees `ev` is writable.
    unsafe {
        (*ev).Header.Type = if event_type == SYNCHRONIZATION_EVENT {
            1
        } else {
            0
        };
        (*ev).Header.Signalling = 0;
        (*ev).Header.Size = (core::mem::size_of::<KEVENT>() / 4) as u8;
        (*ev).Header.Reserved1 = 0;
        (*ev).Header.SignalState = state as i32;
        set_attached(ev, None, 0);
    }
}

/// `KeSetEvent`: signals the event (satisfying waits, with `increment` as
/// the waiters' boost) and returns the previous state.
///
/// # Safety
/// `ev` must be an initialised `KEVENT`.
pub unsafe fn ke_set_event(ev: *mut KEVENT, increment: u8) -> i32 {
    kw::with_db(|st| {
        // SAFETY: the caller guarantees `ev` is live; the dispatcher lock is held.
        unsafe {
            let prev = (*ev).Header.SignalState;
            match attached(ev) {
                Some(id) => {
                    let _ = st.db.set_event(id, increment, &mut st.unwaits);
                    (*ev).Header.SignalState = st.db.query(id).map_or(1, |q| q.state);
                }
                None => (*ev).Header.SignalState = 1,
            }
            prev
        }
    })
}

/// `KeResetEvent`: clears the event, returning the previous state
/// (`KeClearEvent` is the same without the result).
///
/// # Safety
/// `ev` must be an initialised `KEVENT`.
pub unsafe fn ke_reset_event(ev: *mut KEVENT) -> i32 {
    kw::with_db(|st| {
        // SAFETY: the caller guarantees `ev` is live; the dispatcher lock is held.
        unsafe {
            let prev = (*ev).Header.SignalState;
            if let Some(id) = attached(ev) {
                let _ = st.db.reset_event(id);
            }
            (*ev).Header.SignalState = 0;
            prev
        }
    })
}

/// `KeReadStateEvent`.
///
/// # Safety
/// `ev` must be an initialised `KEVENT`.
pub unsafe fn ke_read_state_event(ev: *mut KEVENT) -> i32 {
    // SAFETY: the caller guarantees `ev` is live; a 4-byte aligned read.
    unsafe { core::ptr::read_volatile(addr_of_mut!((*ev).Header.SignalState)) }
}

/// `KeWaitForSingleObject` on a `KEVENT`: returns at once if it is
/// signaled (consuming a synchronization event's signal), else waits on a
/// dispatcher object attached to it for the wait (see the module notes).
/// `timeout` as `ke_wait_for_single_object` takes it (relative 100 ns,
/// `None` forever). A header that is not an event is STATUS_INVALID_PARAMETER.
///
/// # Safety
/// `ev` must be an initialised `KEVENT` that stays live during the wait.
pub unsafe fn ke_wait_for_event(
    ev: *mut KEVENT,
    reason: WaitReason,
    user_mode: bool,
    alertable: bool,
    timeout: Option<u64>,
) -> NtStatus {
    // SAFETY: the caller guarantees `ev` is live.
    if unsafe { (*ev).Header.Type } > 1 {
        return STATUS_INVALID_PARAMETER;
    }
    let id = kw::with_db(|st| {
        // SAFETY: the caller guarantees `ev` is live; the dispatcher lock is held.
        unsafe {
            if let Some(id) = attached(ev) {
                let waiters = (*ev).Header.WaitListHead.Blink as usize;
                set_attached(ev, Some(id), waiters + 1);
                return Ok(id);
            }
            if (*ev).Header.SignalState != 0 {
                if !is_notification(&*ev) {
                    (*ev).Header.SignalState = 0;
                }
                return Err(STATUS_SUCCESS);
            }
            if timeout == Some(0) {
                return Err(STATUS_TIMEOUT);
            }
            let id = st.db.create_event(is_notification(&*ev), false);
            set_attached(ev, Some(id), 1);
            Ok(id)
        }
    });
    let id = match id {
        Ok(id) => id,
        Err(s) => return s,
    };
    let status =
        kw::ke_wait_for_single_object(&RawObject(id), reason, user_mode, alertable, timeout);
    kw::with_db(|st| {
        // SAFETY: the caller guarantees `ev` outlives the wait; lock held.
        unsafe {
            (*ev).Header.SignalState = st.db.query(id).map_or(0, |q| q.state);
            let waiters = ((*ev).Header.WaitListHead.Blink as usize).saturating_sub(1);
            if waiters == 0 {
                let _ = st.db.delete(id, &mut st.unwaits);
                set_attached(ev, None, 0);
            } else {
                set_attached(ev, Some(id), waiters);
            }
        }
    });
    status
}

/// The timeout of `KeWaitForSingleObject` (`PLARGE_INTEGER`): null waits
/// forever, negative is relative, positive an absolute system time.
///
/// # Safety
/// `timeout` must be null or point at a readable i64.
pub unsafe fn timeout_from(timeout: *const i64) -> Option<u64> {
    if timeout.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `timeout` is readable.
    let t = unsafe { timeout.read_unaligned() };
    if t <= 0 {
        Some(t.unsigned_abs())
    } else {
        Some((t as u64).saturating_sub(super::clock::ke_query_system_time()))
    }
}

/// `KeInitializeEvent` export.
///
/// # Safety
/// As [`ke_initialize_event`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeInitializeEvent(event: *mut KEVENT, event_type: u32, state: u8) {
    // SAFETY: forwarded caller guarantee.
    unsafe { ke_initialize_event(event, event_type, state != 0) }
}

/// `KeSetEvent` export (`Wait` is ignored: ntrs does not keep the
/// dispatcher lock across the call).
///
/// # Safety
/// As [`ke_set_event`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeSetEvent(event: *mut KEVENT, increment: i32, _wait: u8) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { ke_set_event(event, increment.clamp(0, 31) as u8) }
}

/// `KeResetEvent` export.
///
/// # Safety
/// As [`ke_reset_event`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeResetEvent(event: *mut KEVENT) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { ke_reset_event(event) }
}

/// `KeClearEvent` export.
///
/// # Safety
/// As [`ke_reset_event`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeClearEvent(event: *mut KEVENT) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        ke_reset_event(event);
    }
}

/// `KeReadStateEvent` export.
///
/// # Safety
/// As [`ke_read_state_event`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeReadStateEvent(event: *mut KEVENT) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { ke_read_state_event(event) }
}

/// `KeWaitForSingleObject` export: events (notification and
/// synchronization) here, semaphores and mutexes in `ke/dispobj.rs`;
/// other dispatcher headers are STATUS_INVALID_PARAMETER.
///
/// # Safety
/// `object` must be an initialised `KEVENT`, `KSEMAPHORE` or `KMUTEX`;
/// `timeout` null or readable.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeWaitForSingleObject(
    object: *mut core::ffi::c_void,
    _reason: u32,
    mode: i8,
    alertable: u8,
    timeout: *mut i64,
) -> NtStatus {
    if object.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller guarantees a dispatcher object: its header's type
    // byte is readable.
    if unsafe { (*(object as *mut wdk::DISPATCHER_HEADER)).Type } > 1 {
        // SAFETY: forwarded caller guarantees.
        return unsafe {
            super::dispobj::ke_wait_for_headers(
                &[object as *mut wdk::DISPATCHER_HEADER],
                ::ke::objects::WaitType::WaitAny,
                WaitReason::Executive,
                mode != 0,
                alertable != 0,
                timeout_from(timeout),
            )
        };
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        ke_wait_for_event(
            object as *mut KEVENT,
            WaitReason::Executive,
            mode != 0,
            alertable != 0,
            timeout_from(timeout),
        )
    }
}
