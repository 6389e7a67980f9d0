//! Tests of dispatcher objects and waits against NT's documented behaviour,
//! plus a randomized simulation checking that no wake-up is ever lost.

use crate::objects::*;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use proptest::prelude::*;

const T1: ThreadId = ThreadId(1);
const T2: ThreadId = ThreadId(2);
const T3: ThreadId = ThreadId(3);

fn sat(s: NtStatus) -> Result<WaitStart, NtStatus> {
    Ok(WaitStart::Satisfied(s))
}

#[test]
fn signaled_notification_event_satisfies_at_once_and_stays_signaled() {
    let mut d = Dispatcher::new();
    let e = d.create_event(true, true);
    assert_eq!(
        d.wait(T1, &[e], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
    assert_eq!(
        d.wait(T2, &[e], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
    assert_eq!(d.query(e).unwrap().state, 1);
}

#[test]
fn synchronization_event_wakes_one_waiter_and_resets() {
    let mut d = Dispatcher::new();
    let e = d.create_event(false, false);
    assert_eq!(
        d.wait(T1, &[e], WaitType::WaitAny, false),
        Ok(WaitStart::Blocked)
    );
    assert_eq!(
        d.wait(T2, &[e], WaitType::WaitAny, false),
        Ok(WaitStart::Blocked)
    );
    let mut out = Vec::new();
    assert_eq!(d.set_event(e, 1, &mut out), Ok(0));
    assert_eq!(
        out,
        [Unwait {
            thread: T1,
            status: STATUS_WAIT_0,
            increment: 1
        }]
    );
    assert_eq!(
        d.query(e).unwrap().state,
        0,
        "auto-reset after satisfying one wait"
    );
    assert!(d.is_waiting(T2));
    out.clear();
    d.set_event(e, 1, &mut out).unwrap();
    assert_eq!(out[0].thread, T2, "FIFO order");
}

#[test]
fn notification_event_wakes_all_waiters() {
    let mut d = Dispatcher::new();
    let e = d.create_event(true, false);
    for t in [T1, T2, T3] {
        d.wait(t, &[e], WaitType::WaitAny, false).unwrap();
    }
    let mut out = Vec::new();
    d.set_event(e, 2, &mut out).unwrap();
    assert_eq!(out.len(), 3);
    assert!(out
        .iter()
        .all(|u| u.increment == 2 && u.status == STATUS_WAIT_0));
    assert_eq!(d.reset_event(e), Ok(1));
}

#[test]
fn pulse_event_wakes_waiters_and_leaves_it_reset() {
    let mut d = Dispatcher::new();
    let e = d.create_event(true, false);
    d.wait(T1, &[e], WaitType::WaitAny, false).unwrap();
    let mut out = Vec::new();
    assert_eq!(d.pulse_event(e, 0, &mut out), Ok(0));
    assert_eq!(out.len(), 1);
    assert_eq!(d.query(e).unwrap().state, 0);
}

#[test]
fn zero_timeout_polls() {
    let mut d = Dispatcher::new();
    let e = d.create_event(false, false);
    assert_eq!(
        d.wait(T1, &[e], WaitType::WaitAny, true),
        sat(STATUS_TIMEOUT)
    );
    assert!(!d.is_waiting(T1));
    assert_eq!(d.query(e).unwrap().waiters, 0);
}

#[test]
fn wait_any_reports_the_first_signaled_index() {
    let mut d = Dispatcher::new();
    let a = d.create_event(false, false);
    let b = d.create_event(false, true);
    let c = d.create_event(false, true);
    assert_eq!(
        d.wait(T1, &[a, b, c], WaitType::WaitAny, false),
        sat(NtStatus(1))
    );
    assert_eq!(d.query(b).unwrap().state, 0);
    assert_eq!(d.query(c).unwrap().state, 1, "only one object is satisfied");
}

#[test]
fn wait_any_blocked_then_satisfied_by_the_second_object() {
    let mut d = Dispatcher::new();
    let a = d.create_event(false, false);
    let b = d.create_event(false, false);
    d.wait(T1, &[a, b], WaitType::WaitAny, false).unwrap();
    let mut out = Vec::new();
    d.set_event(b, 1, &mut out).unwrap();
    assert_eq!(out[0].status, NtStatus(1));
    assert_eq!(
        d.query(a).unwrap().waiters,
        0,
        "wait blocks removed from every object"
    );
}

#[test]
fn wait_all_needs_every_object_at_once() {
    let mut d = Dispatcher::new();
    let a = d.create_event(false, false);
    let b = d.create_event(false, false);
    assert_eq!(
        d.wait(T1, &[a, b], WaitType::WaitAll, false),
        Ok(WaitStart::Blocked)
    );
    let mut out = Vec::new();
    d.set_event(a, 1, &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(
        d.query(a).unwrap().state,
        1,
        "not consumed until all are signaled"
    );
    d.set_event(b, 1, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, STATUS_WAIT_0);
    assert_eq!(d.query(a).unwrap().state, 0);
    assert_eq!(d.query(b).unwrap().state, 0);
}

#[test]
fn wait_all_with_a_duplicate_is_invalid_parameter_mix() {
    let mut d = Dispatcher::new();
    let a = d.create_event(false, true);
    assert_eq!(
        d.wait(T1, &[a, a], WaitType::WaitAll, false),
        Err(STATUS_INVALID_PARAMETER_MIX)
    );
    assert_eq!(
        d.wait(T1, &[a, a], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
}

#[test]
fn too_many_or_no_objects_or_bad_objects() {
    let mut d = Dispatcher::new();
    let objs: Vec<_> = (0..65).map(|_| d.create_event(true, false)).collect();
    assert_eq!(
        d.wait(T1, &objs, WaitType::WaitAny, false),
        Err(STATUS_INVALID_PARAMETER)
    );
    assert_eq!(
        d.wait(T1, &[], WaitType::WaitAny, false),
        Err(STATUS_INVALID_PARAMETER)
    );
    assert_eq!(
        d.wait(T1, &objs[..64], WaitType::WaitAny, false),
        Ok(WaitStart::Blocked)
    );
    assert_eq!(
        d.wait(T2, &[ObjectId(999)], WaitType::WaitAny, false),
        Err(STATUS_INVALID_HANDLE)
    );
    assert_eq!(
        d.wait(T1, &objs[..1], WaitType::WaitAny, false),
        Err(STATUS_INVALID_PARAMETER),
        "a waiting thread cannot start a second wait"
    );
}

#[test]
fn mutant_ownership_recursion_and_release() {
    let mut d = Dispatcher::new();
    let m = d.create_mutant(None);
    assert_eq!(
        d.wait(T1, &[m], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
    assert_eq!(
        d.wait(T1, &[m], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0),
        "recursive"
    );
    assert_eq!(d.query(m).unwrap().owner, Some(T1));
    assert_eq!(
        d.wait(T2, &[m], WaitType::WaitAny, false),
        Ok(WaitStart::Blocked)
    );
    let mut out = Vec::new();
    assert_eq!(
        d.release_mutant(m, T2, false, &mut out),
        Err(STATUS_MUTANT_NOT_OWNED)
    );
    assert_eq!(d.release_mutant(m, T1, false, &mut out), Ok(-1));
    assert!(out.is_empty(), "still owned once");
    assert_eq!(d.release_mutant(m, T1, false, &mut out), Ok(0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].thread, T2);
    assert_eq!(out[0].increment, MUTANT_INCREMENT);
    assert_eq!(d.query(m).unwrap().owner, Some(T2));
}

#[test]
fn initially_owned_mutant() {
    let mut d = Dispatcher::new();
    let m = d.create_mutant(Some(T1));
    assert_eq!(
        d.wait(T2, &[m], WaitType::WaitAny, true),
        sat(STATUS_TIMEOUT)
    );
    let mut out = Vec::new();
    assert_eq!(d.release_mutant(m, T1, false, &mut out), Ok(0));
    assert_eq!(d.query(m).unwrap().state, 1);
}

#[test]
fn thread_exit_abandons_owned_mutants() {
    let mut d = Dispatcher::new();
    let m = d.create_mutant(None);
    let other = d.create_event(false, false);
    d.wait(T1, &[m], WaitType::WaitAny, false).unwrap();
    d.wait(T2, &[other, m], WaitType::WaitAny, false).unwrap();
    let tobj = d.create_thread_object(false);
    d.wait(T3, &[tobj], WaitType::WaitAny, false).unwrap();
    let mut out = Vec::new();
    d.thread_exit(T1, Some(tobj), &mut out).unwrap();
    let t2 = out.iter().find(|u| u.thread == T2).unwrap();
    assert_eq!(t2.status, NtStatus(STATUS_ABANDONED_WAIT_0.0 + 1));
    assert_eq!(d.query(m).unwrap().owner, Some(T2));
    assert!(
        !d.query(m).unwrap().abandoned,
        "abandonment is reported once"
    );
    let t3 = out.iter().find(|u| u.thread == T3).unwrap();
    assert_eq!(t3.status, STATUS_WAIT_0, "thread object signaled at exit");
}

#[test]
fn abandoned_free_mutant_reports_abandoned_to_the_next_acquirer() {
    let mut d = Dispatcher::new();
    let m = d.create_mutant(None);
    d.wait(T1, &[m], WaitType::WaitAny, false).unwrap();
    let mut out = Vec::new();
    d.thread_exit(T1, None, &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(
        d.wait(T2, &[m], WaitType::WaitAny, false),
        sat(STATUS_ABANDONED_WAIT_0)
    );
    assert_eq!(d.release_mutant(m, T2, false, &mut out), Ok(0));
    assert_eq!(
        d.wait(T3, &[m], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
}

#[test]
fn semaphore_counts_and_limit() {
    let mut d = Dispatcher::new();
    assert_eq!(d.create_semaphore(3, 2), Err(STATUS_INVALID_PARAMETER));
    assert_eq!(d.create_semaphore(0, 0), Err(STATUS_INVALID_PARAMETER));
    let s = d.create_semaphore(1, 2).unwrap();
    assert_eq!(
        d.wait(T1, &[s], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
    for t in [T2, T3] {
        assert_eq!(
            d.wait(t, &[s], WaitType::WaitAny, false),
            Ok(WaitStart::Blocked)
        );
    }
    let mut out = Vec::new();
    assert_eq!(
        d.release_semaphore(s, 3, 1, &mut out),
        Err(STATUS_SEMAPHORE_LIMIT_EXCEEDED)
    );
    assert!(out.is_empty());
    assert_eq!(
        d.release_semaphore(s, 0, 1, &mut out),
        Err(STATUS_INVALID_PARAMETER)
    );
    assert_eq!(
        d.release_semaphore(s, 2, SEMAPHORE_INCREMENT, &mut out),
        Ok(0)
    );
    assert_eq!(out.len(), 2, "a release of 2 wakes two waiters");
    assert_eq!(d.query(s).unwrap().state, 0);
}

#[test]
fn timers_signal_and_reset() {
    let mut d = Dispatcher::new();
    let n = d.create_timer(true);
    let s = d.create_timer(false);
    d.wait(T1, &[n], WaitType::WaitAny, false).unwrap();
    d.wait(T2, &[s], WaitType::WaitAny, false).unwrap();
    d.wait(T3, &[s], WaitType::WaitAny, false).unwrap();
    let mut out = Vec::new();
    d.signal_timer(n, &mut out).unwrap();
    d.signal_timer(s, &mut out).unwrap();
    assert_eq!(out.len(), 2, "the synchronization timer wakes one waiter");
    assert_eq!(d.query(n).unwrap().state, 1);
    assert_eq!(d.query(s).unwrap().state, 0);
    d.reset_timer(n).unwrap();
    assert_eq!(d.query(n).unwrap().state, 0);
}

#[test]
fn cancel_wait_removes_wait_blocks() {
    let mut d = Dispatcher::new();
    let e = d.create_event(false, false);
    d.wait(T1, &[e], WaitType::WaitAny, false).unwrap();
    assert!(d.cancel_wait(T1));
    assert!(!d.cancel_wait(T1));
    let mut out = Vec::new();
    d.set_event(e, 1, &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(d.query(e).unwrap().state, 1, "nobody consumed the signal");
}

#[test]
fn wrong_object_kind_is_type_mismatch() {
    let mut d = Dispatcher::new();
    let e = d.create_event(false, false);
    let m = d.create_mutant(None);
    let mut out = Vec::new();
    assert_eq!(
        d.set_event(m, 0, &mut out),
        Err(STATUS_OBJECT_TYPE_MISMATCH)
    );
    assert_eq!(
        d.release_semaphore(e, 1, 0, &mut out),
        Err(STATUS_OBJECT_TYPE_MISMATCH)
    );
    assert_eq!(
        d.release_mutant(e, T1, false, &mut out),
        Err(STATUS_OBJECT_TYPE_MISMATCH)
    );
}

#[test]
fn deleting_an_object_ends_its_waits() {
    let mut d = Dispatcher::new();
    let e = d.create_event(false, false);
    d.wait(T1, &[e], WaitType::WaitAny, false).unwrap();
    let mut out = Vec::new();
    d.delete(e, &mut out).unwrap();
    assert_eq!(out[0].status, STATUS_INVALID_HANDLE);
    assert_eq!(d.object_count(), 0);
    let e2 = d.create_event(false, false);
    assert_eq!(e2, e, "ids are reused");
}

/// One step of the random simulation.
#[derive(Clone, Debug)]
enum Op {
    Wait {
        t: usize,
        objs: Vec<usize>,
        all: bool,
    },
    Set(usize),
    Reset(usize),
    Pulse(usize),
    Release {
        t: usize,
        obj: usize,
    },
    ReleaseSem {
        obj: usize,
        n: i32,
    },
    Cancel(usize),
    Exit(usize),
}

const THREADS: usize = 6;
const OBJECTS: usize = 6;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..THREADS,
            proptest::collection::vec(0..OBJECTS, 1..4),
            any::<bool>()
        )
            .prop_map(|(t, objs, all)| Op::Wait { t, objs, all }),
        (0..OBJECTS).prop_map(Op::Set),
        (0..OBJECTS).prop_map(Op::Reset),
        (0..OBJECTS).prop_map(Op::Pulse),
        (0..THREADS, 0..OBJECTS).prop_map(|(t, obj)| Op::Release { t, obj }),
        (0..OBJECTS, 1..3i32).prop_map(|(obj, n)| Op::ReleaseSem { obj, n }),
        (0..THREADS).prop_map(Op::Cancel),
        (0..THREADS).prop_map(Op::Exit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random waits and signals on events, a mutant and semaphores: after
    /// every step no blocked thread could be satisfied by the current state
    /// (no lost wake-up), semaphores stay within limits, a mutant is owned
    /// exactly when its state is not positive, and woken threads are not
    /// waiting.
    #[test]
    fn no_lost_wakeups(ops in proptest::collection::vec(op(), 1..80)) {
        let mut d = Dispatcher::new();
        // 0,1: sync events; 2: notification event; 3: mutant; 4,5: semaphores.
        let objs = [
            d.create_event(false, false),
            d.create_event(false, true),
            d.create_event(true, false),
            d.create_mutant(None),
            d.create_semaphore(0, 2).unwrap(),
            d.create_semaphore(1, 3).unwrap(),
        ];
        let mut out = Vec::new();
        for op in ops {
            out.clear();
            match op {
                Op::Wait { t, objs: o, all } => {
                    let ids: Vec<_> = o.iter().map(|&i| objs[i]).collect();
                    let wt = if all { WaitType::WaitAll } else { WaitType::WaitAny };
                    let _ = d.wait(ThreadId(t as u32), &ids, wt, false);
                }
                Op::Set(i) => { let _ = d.set_event(objs[i], 1, &mut out); }
                Op::Reset(i) => { let _ = d.reset_event(objs[i]); }
                Op::Pulse(i) => { let _ = d.pulse_event(objs[i], 1, &mut out); }
                Op::Release { t, obj } => {
                    let _ = d.release_mutant(objs[obj], ThreadId(t as u32), false, &mut out);
                }
                Op::ReleaseSem { obj, n } => {
                    let _ = d.release_semaphore(objs[obj], n, 1, &mut out);
                }
                Op::Cancel(t) => { d.cancel_wait(ThreadId(t as u32)); }
                Op::Exit(t) => { let _ = d.thread_exit(ThreadId(t as u32), None, &mut out); }
            }
            for u in &out {
                prop_assert!(!d.is_waiting(u.thread), "woken thread still waiting");
            }
            for t in 0..THREADS {
                let tid = ThreadId(t as u32);
                let w = d.wait_objects(tid).to_vec();
                if w.is_empty() {
                    continue;
                }
                let sig = |id: ObjectId| {
                    let q = d.query(id).unwrap();
                    q.state > 0 || (q.kind == ObjectKind::Mutant && q.owner == Some(tid))
                };
                if d.wait_is_all(tid) {
                    prop_assert!(!w.iter().all(|&id| sig(id)), "thread {t}'s wait-all is satisfiable");
                } else {
                    prop_assert!(!w.iter().any(|&id| sig(id)), "thread {t}'s wait-any is satisfiable");
                }
            }
            for &s in &objs[4..] {
                let q = d.query(s).unwrap();
                prop_assert!(q.state >= 0 && q.state <= q.limit);
            }
            let m = d.query(objs[3]).unwrap();
            prop_assert_eq!(m.owner.is_some(), m.state <= 0);
        }
    }
}

mod alerts_and_apcs {
    use super::*;
    use crate::apc::*;

    #[test]
    fn signaled_object_wins_over_alert_then_alert_then_poll() {
        let mut d = Dispatcher::new();
        let e = d.create_event(true, true);
        let mut apc = ApcState::<crate::apc::ApcId>::new();
        apc.alert(ProcessorMode::UserMode, None);
        assert_eq!(
            d.wait_alertable(
                T1,
                &[e],
                WaitType::WaitAny,
                false,
                &mut apc,
                ProcessorMode::UserMode,
                true
            ),
            sat(STATUS_WAIT_0)
        );
        d.reset_event(e).unwrap();
        assert_eq!(
            d.wait_alertable(
                T1,
                &[e],
                WaitType::WaitAny,
                true,
                &mut apc,
                ProcessorMode::UserMode,
                true
            ),
            sat(STATUS_ALERTED)
        );
        assert_eq!(
            d.wait_alertable(
                T1,
                &[e],
                WaitType::WaitAny,
                true,
                &mut apc,
                ProcessorMode::UserMode,
                true
            ),
            sat(STATUS_TIMEOUT)
        );
        apc.insert(ApcId(1), ApcKind::User, &ApcTarget::IDLE);
        assert_eq!(
            d.wait_alertable(
                T1,
                &[e],
                WaitType::WaitAny,
                false,
                &mut apc,
                ProcessorMode::KernelMode,
                true
            ),
            Ok(WaitStart::Blocked),
            "user APCs do not end kernel-mode waits"
        );
        assert!(d.cancel_wait(T1));
        assert_eq!(
            d.wait_alertable(
                T1,
                &[e],
                WaitType::WaitAny,
                false,
                &mut apc,
                ProcessorMode::UserMode,
                true
            ),
            sat(STATUS_USER_APC)
        );
        assert!(!d.is_waiting(T1));
    }

    #[test]
    fn apc_insert_aborts_the_wait_and_the_object_stays_unsatisfied() {
        let mut d = Dispatcher::new();
        let m = d.create_mutant(Some(T2));
        let mut apc = ApcState::<crate::apc::ApcId>::new();
        assert_eq!(
            d.wait_alertable(
                T1,
                &[m],
                WaitType::WaitAny,
                false,
                &mut apc,
                ProcessorMode::UserMode,
                true
            ),
            Ok(WaitStart::Blocked)
        );
        let target = ApcTarget {
            waiting: d.is_waiting(T1),
            wait_mode: ProcessorMode::UserMode,
            alertable: true,
            ..ApcTarget::IDLE
        };
        let r = apc.insert(ApcId(9), ApcKind::User, &target);
        let mut out = Vec::new();
        assert!(d.abort_wait(T1, r.unwait.unwrap(), &mut out));
        assert_eq!(
            out,
            [Unwait {
                thread: T1,
                status: STATUS_USER_APC,
                increment: 0
            }]
        );
        assert_eq!(d.query(m).unwrap().waiters, 0);
        out.clear();
        d.release_mutant(m, T2, false, &mut out).unwrap();
        assert!(
            out.is_empty(),
            "the aborted wait no longer takes the mutant"
        );
        assert!(!d.abort_wait(T1, STATUS_KERNEL_APC, &mut out));
    }

    #[test]
    fn timeout_ends_a_blocked_wait() {
        let mut d = Dispatcher::new();
        let s = d.create_semaphore(0, 1).unwrap();
        assert_eq!(
            d.wait(T3, &[s], WaitType::WaitAny, false),
            Ok(WaitStart::Blocked)
        );
        let mut out = Vec::new();
        assert!(d.timeout_expired(T3, &mut out));
        assert_eq!(out[0].status, STATUS_TIMEOUT);
        assert!(!d.timeout_expired(T3, &mut out));
        out.clear();
        d.release_semaphore(s, 1, 1, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(d.query(s).unwrap().state, 1);
    }
}

#[test]
fn kernel_mutex_disables_kernel_apcs_while_owned() {
    let mut d = Dispatcher::new();
    let m = d.create_mutex();
    let plain = d.create_mutant(None);
    assert_eq!(d.mutex_apc_disable(T1), 0);
    assert_eq!(
        d.wait(T1, &[m], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
    assert_eq!(
        d.wait(T1, &[plain], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
    assert_eq!(d.mutex_apc_disable(T1), 1, "only the kernel mutex counts");
    assert_eq!(
        d.wait(T1, &[m], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
    assert_eq!(d.mutex_apc_disable(T1), 1, "recursion does not count twice");
    let mut out = Vec::new();
    d.release_mutant(m, T1, false, &mut out).unwrap();
    assert_eq!(d.mutex_apc_disable(T1), 1);
    assert_eq!(
        d.wait(T2, &[m], WaitType::WaitAny, false),
        Ok(WaitStart::Blocked)
    );
    d.release_mutant(m, T1, false, &mut out).unwrap();
    assert_eq!(d.mutex_apc_disable(T1), 0);
    assert_eq!(out[0].thread, T2);
    assert_eq!(d.mutex_apc_disable(T2), 1, "the woken waiter owns it now");
    assert_eq!(d.query(m).unwrap().kind, ObjectKind::Mutant);
}

#[test]
fn wait_ex_polls_past_due_and_records_the_wait() {
    use crate::apc::{ApcState, ProcessorMode};
    let mut d = Dispatcher::new();
    let e = d.create_event(false, false);
    let f = d.create_event(true, false);
    let mut apc = ApcState::<crate::apc::ApcId>::new();
    let params = WaitParams {
        mode: ProcessorMode::UserMode,
        alertable: true,
        due: Some(1000),
        reason: WaitReason::UserRequest,
    };
    assert_eq!(
        d.wait_ex(T1, &[e, f], WaitType::WaitAll, &params, 1000, &mut apc),
        sat(STATUS_TIMEOUT),
        "due time reached: a poll"
    );
    assert_eq!(d.wait_info(T1), None);
    assert_eq!(
        d.wait_ex(T1, &[e, f], WaitType::WaitAll, &params, 999, &mut apc),
        Ok(WaitStart::Blocked)
    );
    assert_eq!(
        d.wait_info(T1),
        Some(WaitInfo {
            wait_type: WaitType::WaitAll,
            objects: 2,
            params
        })
    );
    assert_eq!(WaitReason::UserRequest as u8, 6);
    let mut out = Vec::new();
    assert!(d.timeout_expired(T1, &mut out));
    assert_eq!(d.wait_info(T1), None);
    let forever = WaitParams::default();
    assert_eq!(
        d.wait_ex(T1, &[e], WaitType::WaitAny, &forever, u64::MAX, &mut apc),
        Ok(WaitStart::Blocked),
        "no due time never polls"
    );
    assert_eq!(d.wait_info(T1).unwrap().params.due, None);
}

#[test]
fn mutant_recursion_limit() {
    let mut d = Dispatcher::new();
    let m = d.create_mutant(Some(T1));
    // Owned recursively 2^31 times: one more acquisition overflows the count.
    d.force_state(m, i32::MIN);
    assert_eq!(
        d.wait(T1, &[m], WaitType::WaitAny, false),
        Err(STATUS_MUTANT_LIMIT_EXCEEDED)
    );
    assert_eq!(d.query(m).unwrap().state, i32::MIN, "state unchanged");
    assert!(!d.is_waiting(T1));
    d.force_state(m, i32::MIN + 1);
    assert_eq!(
        d.wait(T1, &[m], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
    let mut out = Vec::new();
    assert_eq!(d.release_mutant(m, T1, false, &mut out), Ok(i32::MIN));
    assert_eq!(
        d.release_mutant(m, T2, false, &mut out),
        Err(STATUS_MUTANT_NOT_OWNED)
    );
}

#[test]
fn mutant_limit_in_a_wait_all_changes_nothing() {
    let mut d = Dispatcher::new();
    let m = d.create_mutant(Some(T1));
    let e = d.create_event(false, true);
    d.force_state(m, i32::MIN);
    assert_eq!(
        d.wait(T1, &[e, m], WaitType::WaitAll, false),
        Err(STATUS_MUTANT_LIMIT_EXCEEDED)
    );
    assert_eq!(d.query(e).unwrap().state, 1, "the event was not consumed");
    // Blocked first, then the overflow is found when the wait is satisfied.
    d.reset_event(e).unwrap();
    assert_eq!(
        d.wait(T1, &[e, m], WaitType::WaitAll, false),
        Ok(WaitStart::Blocked)
    );
    let mut out = Vec::new();
    d.set_event(e, 1, &mut out).unwrap();
    assert_eq!(out[0].status, STATUS_MUTANT_LIMIT_EXCEEDED);
    assert!(!d.is_waiting(T1));
    assert_eq!(d.query(e).unwrap().state, 1);
}

#[test]
fn process_object_signals_every_waiter_at_termination_and_stays_signaled() {
    let mut d = Dispatcher::new();
    let p = d.create_thread_object(true);
    let e = d.create_event(true, false);
    assert_eq!(
        d.wait(T1, &[p], WaitType::WaitAny, false),
        Ok(WaitStart::Blocked)
    );
    assert_eq!(
        d.wait(T2, &[p], WaitType::WaitAny, false),
        Ok(WaitStart::Blocked)
    );
    let mut out = Vec::new();
    assert_eq!(
        d.signal_terminated(e, &mut out),
        Err(STATUS_OBJECT_TYPE_MISMATCH)
    );
    d.signal_terminated(p, &mut out).unwrap();
    assert_eq!(out.len(), 2, "both waiters released");
    assert!(out.iter().all(|u| u.status == STATUS_WAIT_0));
    assert_eq!(
        d.wait(T3, &[p], WaitType::WaitAny, false),
        sat(STATUS_WAIT_0)
    );
}
