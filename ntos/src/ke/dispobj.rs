//! Semaphores and mutexes in memory the caller owns (`KSEMAPHORE`,
//! `KMUTEX`), and `KeWaitForSingleObject` / `KeWaitForMultipleObjects` on
//! any mix of them and `KEVENT`s (*Windows Internals*, Part 2, ch. 8,
//! "Dispatcher objects").
//!
//! The scheme of `ke/event.rs` extended: the object's state lives in its
//! own `DISPATCHER_HEADER` (`SignalState`, a semaphore's `Limit`, a mutex's
//! `OwnerThread`/`Abandoned` mirrored), and a dispatcher-database object is
//! attached through the header's `WaitListHead` (`Flink` = id + 1,
//! `Blink` = waiters) while it is needed: while threads wait on it, and for
//! a mutex also while it is owned (the database keeps the owner, the
//! recursion count, the owner's disabled normal kernel APCs and abandonment
//! at thread exit). The last waiter of a free object detaches and deletes
//! it, after copying its state back. All under the dispatcher lock.
//!
//! Not here: `KTIMER` in caller memory (`ke/timer_export.rs`; waiting on
//! one is STATUS_NOT_IMPLEMENTED), threads and processes (ntrs has
//! no `ETHREAD`/`EPROCESS` bodies with a header for drivers), queues.

use super::sched;
use super::thread::WaitReason;
use super::wait::{self as kw, RawObject, Waitable};
use ::ke::objects::{ObjectId, ThreadId, WaitType, MAXIMUM_WAIT_OBJECTS};
use alloc::vec::Vec;
use core::ptr::addr_of_mut;
use nt::status::*;
use nt::NtStatus;
use wdk::{
    DISPATCHER_HEADER, KMUTANT, KSEMAPHORE, LIST_ENTRY, MUTANT_OBJECT, NOTIFICATION_EVENT,
    SEMAPHORE_OBJECT,
};

type Header = *mut DISPATCHER_HEADER;

/// # Safety
/// `h` is a live header; dispatcher lock held.
unsafe fn attached(h: Header) -> Option<ObjectId> {
    // SAFETY: the caller guarantees `h`.
    unsafe {
        let head = addr_of_mut!((*h).WaitListHead);
        let f = (*head).Flink;
        (f != head && !f.is_null()).then(|| ObjectId(f as usize as u32 - 1))
    }
}

/// # Safety
/// As [`attached`].
unsafe fn waiters(h: Header) -> usize {
    // SAFETY: the caller guarantees `h`.
    unsafe {
        if attached(h).is_some() {
            (*h).WaitListHead.Blink as usize
        } else {
            0
        }
    }
}

/// # Safety
/// As [`attached`].
unsafe fn set_attached(h: Header, id: Option<ObjectId>, waiters: usize) {
    // SAFETY: the caller guarantees `h`.
    unsafe {
        let head: *mut LIST_ENTRY = addr_of_mut!((*h).WaitListHead);
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

/// The database object of `h`, attaching a new one with the header's
/// state if none is. STATUS_INVALID_PARAMETER for a header type this file
/// does not handle or a state the database refuses.
///
/// # Safety
/// As [`attached`].
unsafe fn attach(st: &mut sched::DispatcherState, h: Header) -> Result<ObjectId, NtStatus> {
    // SAFETY: the caller guarantees `h`.
    unsafe {
        if let Some(id) = attached(h) {
            return Ok(id);
        }
        let id = match (*h).Type {
            0 | 1 => st.db.create_event(
                (*h).Type as u32 == NOTIFICATION_EVENT,
                (*h).SignalState != 0,
            ),
            SEMAPHORE_OBJECT => {
                let s = h as *mut KSEMAPHORE;
                st.db.create_semaphore((*h).SignalState, (*s).Limit)?
            }
            // A mutex is attached whenever it is owned, so an unattached
            // one is free.
            MUTANT_OBJECT if (*h).SignalState == 1 => st.db.create_mutex(),
            // Waits on a driver's KTIMER are not implemented (ke/timer_export.rs).
            wdk::TIMER_NOTIFICATION_OBJECT | wdk::TIMER_SYNCHRONIZATION_OBJECT => {
                return Err(STATUS_NOT_IMPLEMENTED)
            }
            _ => return Err(STATUS_INVALID_PARAMETER),
        };
        set_attached(h, Some(id), 0);
        Ok(id)
    }
}

/// Copies the database object's state into the header, and detaches and
/// deletes the object when nobody waits and (a mutex) nobody owns it.
///
/// # Safety
/// As [`attached`]; `id` is `h`'s attached object.
unsafe fn sync_back(st: &mut sched::DispatcherState, h: Header, id: ObjectId) {
    // SAFETY: the caller guarantees `h`.
    unsafe {
        let Ok(q) = st.db.query(id) else {
            set_attached(h, None, 0);
            return;
        };
        (*h).SignalState = q.state;
        let mut owned = false;
        if (*h).Type == MUTANT_OBJECT {
            let m = h as *mut KMUTANT;
            (*m).OwnerThread = q
                .owner
                .and_then(|t| st.thread_table.get(t.0))
                .map_or(core::ptr::null_mut(), |e| e.thread.address() as *mut _);
            (*m).MutantFlags = q.abandoned as u8;
            owned = q.owner.is_some();
        }
        if waiters(h) == 0 && !owned {
            let _ = st.db.delete(id, &mut st.unwaits);
            set_attached(h, None, 0);
        }
    }
}

/// `KeInitializeSemaphore`: `count` of `limit`.
///
/// # Safety
/// `s` points at 0x20 writable bytes no thread waits on.
pub unsafe fn ke_initialize_semaphore(s: *mut KSEMAPHORE, count: i32, limit: i32) {
    // SAFETY: the caller guarantees `s`.
    unsafe {
        let h = addr_of_mut!((*s).Header);
        (*h).Type = SEMAPHORE_OBJECT;
        (*h).Signalling = 0;
        (*h).Size = (core::mem::size_of::<KSEMAPHORE>() / 4) as u8;
        (*h).Reserved1 = 0;
        (*h).SignalState = count;
        (*s).Limit = limit;
        set_attached(h, None, 0);
    }
}

/// `KeReleaseSemaphore`: adds `adjustment`, satisfying waits with
/// `increment`; the previous count. Past the limit (or a non-positive
/// adjustment) the state is unchanged and the status comes back instead
/// (NT raises `STATUS_SEMAPHORE_LIMIT_EXCEEDED`; ntrs has no kernel SEH).
///
/// # Safety
/// `s` is an initialised `KSEMAPHORE`.
pub unsafe fn ke_release_semaphore(
    s: *mut KSEMAPHORE,
    increment: u8,
    adjustment: i32,
) -> Result<i32, NtStatus> {
    kw::with_db(|st| {
        // SAFETY: the caller guarantees `s`; dispatcher lock held.
        unsafe {
            let h = addr_of_mut!((*s).Header);
            if (*h).Type != SEMAPHORE_OBJECT {
                return Err(STATUS_INVALID_PARAMETER);
            }
            match attached(h) {
                Some(id) => {
                    let r = st
                        .db
                        .release_semaphore(id, adjustment, increment, &mut st.unwaits);
                    sync_back(st, h, id);
                    r
                }
                None => {
                    let prev = (*h).SignalState;
                    if adjustment <= 0 {
                        return Err(STATUS_INVALID_PARAMETER);
                    }
                    match prev.checked_add(adjustment) {
                        Some(n) if n <= (*s).Limit => {
                            (*h).SignalState = n;
                            Ok(prev)
                        }
                        _ => Err(STATUS_SEMAPHORE_LIMIT_EXCEEDED),
                    }
                }
            }
        }
    })
}

/// `KeInitializeMutex`: a free kernel mutex (`Level` is ignored, as on
/// Windows).
///
/// # Safety
/// `m` points at 0x38 writable bytes no thread waits on or owns.
pub unsafe fn ke_initialize_mutex(m: *mut KMUTANT) {
    // SAFETY: the caller guarantees `m`.
    unsafe {
        let h = addr_of_mut!((*m).Header);
        (*h).Type = MUTANT_OBJECT;
        (*h).Signalling = 0;
        (*h).Size = (core::mem::size_of::<KMUTANT>() / 4) as u8;
        (*h).Reserved1 = 0;
        (*h).SignalState = 1;
        (*m).MutantListEntry = LIST_ENTRY::zeroed();
        (*m).OwnerThread = core::ptr::null_mut();
        (*m).MutantFlags = 0;
        (*m).ApcDisable = 1;
        set_attached(h, None, 0);
    }
}

/// `KeReleaseMutex`: the owner's release (the last one frees it and hands
/// it to a waiter); the previous state. A caller that does not own it gets
/// `STATUS_MUTANT_NOT_OWNED` and nothing changes (NT stops the system
/// with `THREAD_NOT_MUTEX_OWNER`).
///
/// # Safety
/// `m` is an initialised `KMUTEX`.
pub unsafe fn ke_release_mutex(m: *mut KMUTANT) -> Result<i32, NtStatus> {
    let me = sched::current_thread_id();
    let r = kw::with_db(|st| {
        // SAFETY: the caller guarantees `m`; dispatcher lock held.
        unsafe {
            let h = addr_of_mut!((*m).Header);
            if (*h).Type != MUTANT_OBJECT {
                return Err(STATUS_INVALID_PARAMETER);
            }
            let id = attached(h).ok_or(STATUS_MUTANT_NOT_OWNED)?;
            let r = st
                .db
                .release_mutant(id, ThreadId(me), false, &mut st.unwaits);
            sync_back(st, h, id);
            r
        }
    });
    // Normal kernel APCs the mutex held off may be deliverable now.
    if r.is_ok() {
        super::apc::ke_deliver_pending_kernel_apcs();
    }
    r
}

/// Waits for `headers` (any or all) as `KeWaitForMultipleObjects`:
/// STATUS_WAIT_0 + index for a wait-any, STATUS_SUCCESS for a wait-all,
/// STATUS_ABANDONED_WAIT_0 + index for an abandoned mutex, STATUS_TIMEOUT,
/// STATUS_ALERTED, STATUS_USER_APC; STATUS_INVALID_PARAMETER for no or
/// more than 64 objects or an object type not handled here.
///
/// # Safety
/// Each header is an initialised event, semaphore or mutex that stays
/// live during the wait.
pub unsafe fn ke_wait_for_headers(
    headers: &[Header],
    wait_type: WaitType,
    reason: WaitReason,
    user_mode: bool,
    alertable: bool,
    timeout: Option<u64>,
) -> NtStatus {
    if headers.is_empty() || headers.len() > MAXIMUM_WAIT_OBJECTS {
        return STATUS_INVALID_PARAMETER;
    }
    let mut ids: Vec<RawObject> = Vec::new();
    if crate::ex::pool::try_reserve(&mut ids, headers.len()).is_err() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    let attached_all = kw::with_db(|st| {
        for &h in headers {
            // SAFETY: the caller guarantees each header; lock held.
            match unsafe { attach(st, h) } {
                Ok(id) => {
                    // SAFETY: as above.
                    unsafe { set_attached(h, Some(id), waiters(h) + 1) };
                    ids.push(RawObject(id));
                }
                Err(e) => {
                    // Undo the ones attached so far.
                    for (k, &h2) in headers.iter().enumerate().take(ids.len()) {
                        // SAFETY: as above.
                        unsafe {
                            set_attached(h2, Some(ids[k].0), waiters(h2).saturating_sub(1));
                            sync_back(st, h2, ids[k].0);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    });
    if let Err(e) = attached_all {
        return e;
    }
    let mut objs: Vec<&dyn Waitable> = Vec::new();
    if crate::ex::pool::try_reserve(&mut objs, ids.len()).is_err() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    for o in &ids {
        objs.push(o);
    }
    let status =
        kw::ke_wait_for_multiple_objects(&objs, wait_type, reason, user_mode, alertable, timeout);
    kw::with_db(|st| {
        for (k, &h) in headers.iter().enumerate() {
            // SAFETY: the caller guarantees the headers outlive the wait.
            unsafe {
                if attached(h) == Some(ids[k].0) {
                    set_attached(h, Some(ids[k].0), waiters(h).saturating_sub(1));
                    sync_back(st, h, ids[k].0);
                }
            }
        }
    });
    status
}

/// `KeInitializeSemaphore` export.
///
/// # Safety
/// As [`ke_initialize_semaphore`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeInitializeSemaphore(s: *mut KSEMAPHORE, count: i32, limit: i32) {
    if !s.is_null() {
        // SAFETY: forwarded caller guarantee.
        unsafe { ke_initialize_semaphore(s, count, limit) }
    }
}

/// `KeReleaseSemaphore` export: the previous count, or the failure status
/// (see [`ke_release_semaphore`]). `Wait` is ignored.
///
/// # Safety
/// As [`ke_release_semaphore`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeReleaseSemaphore(
    s: *mut KSEMAPHORE,
    increment: i32,
    adjustment: i32,
    _wait: u8,
) -> i32 {
    if s.is_null() {
        return STATUS_INVALID_PARAMETER.as_u32() as i32;
    }
    // SAFETY: forwarded caller guarantee.
    match unsafe { ke_release_semaphore(s, increment.clamp(0, 31) as u8, adjustment) } {
        Ok(p) => p,
        Err(e) => e.as_u32() as i32,
    }
}

/// `KeReadStateSemaphore` export.
///
/// # Safety
/// `s` is an initialised `KSEMAPHORE`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeReadStateSemaphore(s: *mut KSEMAPHORE) -> i32 {
    // SAFETY: forwarded caller guarantee; an aligned 4-byte read.
    unsafe { core::ptr::read_volatile(addr_of_mut!((*s).Header.SignalState)) }
}

/// `KeInitializeMutex` export.
///
/// # Safety
/// As [`ke_initialize_mutex`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeInitializeMutex(m: *mut KMUTANT, _level: u32) {
    if !m.is_null() {
        // SAFETY: forwarded caller guarantee.
        unsafe { ke_initialize_mutex(m) }
    }
}

/// `KeReleaseMutex` export: the previous state, or the failure status
/// (see [`ke_release_mutex`]). `Wait` is ignored.
///
/// # Safety
/// As [`ke_release_mutex`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeReleaseMutex(m: *mut KMUTANT, _wait: u8) -> i32 {
    if m.is_null() {
        return STATUS_INVALID_PARAMETER.as_u32() as i32;
    }
    // SAFETY: forwarded caller guarantee.
    match unsafe { ke_release_mutex(m) } {
        Ok(p) => p,
        Err(e) => e.as_u32() as i32,
    }
}

/// `KeReadStateMutex` export.
///
/// # Safety
/// `m` is an initialised `KMUTEX`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeReadStateMutex(m: *mut KMUTANT) -> i32 {
    // SAFETY: forwarded caller guarantee; an aligned 4-byte read.
    unsafe { core::ptr::read_volatile(addr_of_mut!((*m).Header.SignalState)) }
}

/// `KeWaitForMultipleObjects` export: `WaitAll` (0) or `WaitAny` (1) on up
/// to 64 events, semaphores and mutexes. `WaitBlockArray` is not needed
/// (ntrs keeps wait blocks in its dispatcher database) and is ignored; more
/// than 64 objects is STATUS_INVALID_PARAMETER (NT stops with
/// `MAXIMUM_WAIT_OBJECTS_EXCEEDED`).
///
/// # Safety
/// `objects` points at `count` initialised dispatcher objects of those
/// kinds; `timeout` null or readable.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeWaitForMultipleObjects(
    count: u32,
    objects: *mut *mut core::ffi::c_void,
    wait_type: u32,
    _reason: u32,
    mode: i8,
    alertable: u8,
    timeout: *mut i64,
    _wait_block_array: *mut core::ffi::c_void,
) -> NtStatus {
    if objects.is_null() || count == 0 || count as usize > MAXIMUM_WAIT_OBJECTS {
        return STATUS_INVALID_PARAMETER;
    }
    let wt = match wait_type {
        0 => WaitType::WaitAll,
        1 => WaitType::WaitAny,
        _ => return STATUS_INVALID_PARAMETER,
    };
    // SAFETY: the caller guarantees `count` readable pointers.
    let list = unsafe { core::slice::from_raw_parts(objects as *const Header, count as usize) };
    if list.iter().any(|h| h.is_null()) {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        ke_wait_for_headers(
            list,
            wt,
            WaitReason::Executive,
            mode != 0,
            alertable != 0,
            super::event::timeout_from(timeout),
        )
    }
}
