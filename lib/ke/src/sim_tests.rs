//! A randomized simulation wiring the host-tested pieces together the way
//! the kernel does: threads scheduled on 2 processors wait on dispatcher
//! objects (with timeouts in the timer table and alertable user-mode waits),
//! signal and release them, queue user APCs and alert each other, while the
//! clock ticks. After every step: no lost wake-up, the scheduler and the
//! dispatcher agree on who waits, semaphore counts stay within their limit,
//! and a mutant has an owner exactly when it is not free.

use crate::apc::*;
use crate::objects::*;
use crate::sched::*;
use crate::timer::*;
use alloc::vec::Vec;
use proptest::prelude::*;

const CPUS: u32 = 2;
const THREADS: u32 = 6;

struct Sim {
    d: Dispatcher,
    s: Scheduler,
    timers: TimerTable,
    apcs: Vec<ApcState>,
    /// Per thread: (wait mode, alertable) of its current wait.
    wait_kind: Vec<(ProcessorMode, bool)>,
    objects: Vec<ObjectId>,
    now: u64,
    next_apc: u32,
}

impl Sim {
    fn new() -> Sim {
        let mut d = Dispatcher::with_capacity(8, THREADS as usize);
        let objects = alloc::vec![
            d.create_event(true, false),
            d.create_event(false, false),
            d.create_mutant(None),
            d.create_semaphore(0, 2).unwrap(),
            d.create_timer(false),
            // Thread objects of threads 0 and 1.
            d.create_thread_object(false),
            d.create_thread_object(false),
        ];
        let mut s = Scheduler::with_capacity(CPUS, THREADS).unwrap();
        for i in 0..THREADS {
            Self::create(&mut s, i);
            s.ready_thread(ThreadId(i), 0).unwrap();
        }
        for p in 0..CPUS {
            s.dispatch(p, false).unwrap();
        }
        Sim {
            d,
            s,
            timers: TimerTable::<u32>::with_capacity(THREADS),
            apcs: (0..THREADS).map(|_| ApcState::new()).collect(),
            wait_kind: alloc::vec![(ProcessorMode::KernelMode, false); THREADS as usize],
            objects,
            now: 0,
            next_apc: 0,
        }
    }

    fn create(s: &mut Scheduler, i: u32) {
        let affinity = if i == 0 { 0b01 } else { 0b11 };
        s.create_thread(ThreadId(i), 6 + (i % 3) as u8, affinity, i % CPUS, 6)
            .unwrap();
    }

    /// Readies what the dispatcher released, as the kernel does.
    fn unwait(&mut self, out: &mut Vec<Unwait>, p: u32) {
        for u in out.drain(..) {
            self.timers.cancel(TimerId(u.thread.0)).unwrap();
            self.s.unwait_thread(u.thread, u.increment, p).unwrap();
        }
    }

    fn step(&mut self, op: u8, a: u32, b: u32, p: u32) {
        let mut out = Vec::new();
        let obj = self.objects[(a % self.objects.len() as u32) as usize];
        match (op, self.s.running(p)) {
            (0, Some(t)) => {
                // Wait on one or two objects, maybe wait-all, maybe alertable, maybe with timeout.
                let other = self.objects[(b % self.objects.len() as u32) as usize];
                let objs: Vec<ObjectId> = if b.is_multiple_of(2) || other == obj {
                    alloc::vec![obj]
                } else {
                    alloc::vec![obj, other]
                };
                let wt = if b.is_multiple_of(3) {
                    WaitType::WaitAll
                } else {
                    WaitType::WaitAny
                };
                let mode = if a.is_multiple_of(2) {
                    ProcessorMode::UserMode
                } else {
                    ProcessorMode::KernelMode
                };
                let alertable = b % 5 < 2;
                let poll = b.is_multiple_of(7);
                let apc = &mut self.apcs[t.0 as usize];
                let due = (b % 4 == 1).then(|| self.now + u64::from(a) * 100_000);
                let r = if due.is_some() {
                    let params = WaitParams {
                        mode,
                        alertable,
                        due,
                        reason: WaitReason::UserRequest,
                    };
                    self.d.wait_ex(t, &objs, wt, &params, self.now, apc)
                } else {
                    self.d
                        .wait_alertable(t, &objs, wt, poll, apc, mode, alertable)
                }
                .unwrap();
                if r == WaitStart::Blocked {
                    self.wait_kind[t.0 as usize] = (mode, alertable);
                    if let Some(due) = due {
                        self.timers
                            .set(TimerId(t.0), self.now, DueTime::Absolute(due), 0, None)
                            .unwrap();
                    }
                    self.s.wait(p).unwrap();
                }
            }
            (1, _) => {
                let _ = self.d.set_event(obj, 1, &mut out);
            }
            (2, Some(t)) => {
                let _ = self.d.release_mutant(obj, t, false, &mut out);
            }
            (3, _) => {
                let _ = self
                    .d
                    .release_semaphore(obj, 1 + (b % 2) as i32, 1, &mut out);
            }
            (4, _) => {
                let _ = self.d.pulse_event(obj, 1, &mut out);
                let _ = self.d.signal_timer(obj, &mut out);
            }
            (5, _) => {
                // A user APC or an alert to some thread.
                let t = ThreadId(b % THREADS);
                let waiting = self.d.is_waiting(t);
                let (mode, alertable) = self.wait_kind[t.0 as usize];
                let apc = &mut self.apcs[t.0 as usize];
                let status = if a.is_multiple_of(2) {
                    let target = ApcTarget {
                        waiting,
                        wait_mode: mode,
                        alertable,
                        ..ApcTarget::IDLE
                    };
                    self.next_apc += 1;
                    apc.insert(ApcId(self.next_apc), ApcKind::User, &target)
                        .unwait
                } else {
                    apc.alert(
                        ProcessorMode::KernelMode,
                        (waiting && alertable).then_some(mode),
                    )
                    .1
                };
                if let Some(st) = status {
                    assert!(self.d.abort_wait(t, st, &mut out));
                }
            }
            (6, Some(t)) => {
                // Returning to user mode delivers user APCs.
                let apc = &mut self.apcs[t.0 as usize];
                while apc
                    .deliver(PASSIVE_LEVEL, false, false, false, ProcessorMode::UserMode)
                    .is_some()
                {
                    apc.test_alert(ProcessorMode::UserMode);
                }
            }
            (7, _) => {
                // Clock: timeouts expire, quantum accounting.
                self.now += u64::from(b) * 50_000;
                let mut expired = Vec::new();
                self.timers.expire(self.now, &mut expired);
                for x in expired {
                    self.d.timeout_expired(ThreadId(x.timer.0), &mut out);
                }
                if let Some(r) = self.s.running(p) {
                    // The clock interrupt charges the quantum without the
                    // dispatcher lock and hands it back, as the kernel does.
                    let mut q = self.s.thread(r).unwrap().quantum;
                    let end = q.tick();
                    self.s.set_quantum(r, q.remaining).unwrap();
                    if end {
                        self.s.dispatch(p, true).unwrap();
                    }
                }
            }
            (8, Some(t)) => {
                let min = if a.is_multiple_of(2) {
                    self.s.thread(t).unwrap().priority
                } else {
                    0
                };
                self.s.yield_execution(p, min).unwrap();
            }
            (9, Some(t)) if a.is_multiple_of(4) => {
                // The running thread exits (abandoning its mutants, signalling
                // its thread object); a new thread reuses the id.
                let obj = (t.0 < 2).then(|| self.objects[5 + t.0 as usize]);
                self.d.thread_exit(t, obj, &mut out).unwrap();
                self.s.terminate(p).unwrap();
                self.s.delete_thread(t).unwrap();
                Self::create(&mut self.s, t.0);
                self.apcs[t.0 as usize] = ApcState::new();
                self.s.ready_thread(t, p).unwrap();
            }
            _ => {}
        }
        self.unwait(&mut out, p);
        // The dispatch interrupt on every processor.
        for q in 0..CPUS {
            self.s.dispatch(q, false).unwrap();
        }
    }

    fn check(&self) {
        for i in 0..THREADS {
            let t = ThreadId(i);
            let st = self.s.thread(t).unwrap().state;
            assert_eq!(
                self.d.is_waiting(t),
                st == ThreadState::Waiting,
                "thread {i} {st:?}"
            );
            if !self.d.is_waiting(t) {
                assert!(!self.timers.is_inserted(TimerId(i)), "stale timeout");
                continue;
            }
            let info = self.d.wait_info(t).unwrap();
            assert_eq!(
                info.params.due.is_some(),
                self.timers.is_inserted(TimerId(i)),
                "timeout timer armed exactly for waits with a due time"
            );
            let signaled = |o: &ObjectId| {
                let q = self.d.query(*o).unwrap();
                q.state > 0 || q.owner == Some(t)
            };
            let objs = self.d.wait_objects(t);
            let satisfiable = if self.d.wait_is_all(t) {
                objs.iter().all(signaled)
            } else {
                objs.iter().any(signaled)
            };
            assert!(!satisfiable, "lost wake-up: thread {i} on {objs:?}");
        }
        for &o in &self.objects {
            let q = self.d.query(o).unwrap();
            if q.kind == ObjectKind::Semaphore {
                assert!((0..=q.limit).contains(&q.state));
            }
            if q.kind == ObjectKind::Mutant {
                assert_eq!(q.owner.is_some(), q.state <= 0);
            }
        }
        for p in 0..CPUS {
            if let Some(t) = self.s.running(p) {
                assert_ne!(self.s.thread(t).unwrap().affinity & (1 << p), 0);
            } else {
                assert!(self.s.ready_list(p).is_empty(), "idle with work queued");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn kernel_simulation(ops in proptest::collection::vec((0u8..10, 0u32..64, 0u32..64, 0u32..CPUS), 1..400)) {
        let mut sim = Sim::new();
        sim.check();
        for (op, a, b, p) in ops {
            sim.step(op, a, b, p);
            sim.check();
        }
    }
}
