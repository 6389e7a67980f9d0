//! Executive worker threads (*Windows Internals*, Part 2, ch. 8, "System
//! worker threads"): `ExQueueWorkItem` puts an item on the critical, delayed
//! or hyper-critical queue; each queue has system threads (critical at
//! priority 13, delayed at 12, hyper-critical at 15) that take items in FIFO
//! order and run them at PASSIVE_LEVEL.

use crate::ke::irql::SpinLocked;
use crate::ke::thread::WaitReason;
use crate::ke::wait::{ke_release_semaphore, ke_wait_for_single_object, KSemaphore};
use crate::ke::{sched, HIGH_LEVEL};
use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicU64, Ordering};

/// `WORK_QUEUE_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkQueueType {
    CriticalWorkQueue = 0,
    DelayedWorkQueue = 1,
    HyperCriticalWorkQueue = 2,
}

/// `WORK_QUEUE_ITEM`: a routine and its parameter.
#[derive(Clone, Copy)]
pub struct WorkQueueItem {
    pub routine: fn(usize),
    pub parameter: usize,
}

struct Queue {
    items: SpinLocked<VecDeque<WorkQueueItem>, HIGH_LEVEL>,
    count: KSemaphore,
    processed: AtomicU64,
}

static QUEUES: [Queue; 3] = [const {
    Queue {
        items: SpinLocked::new(VecDeque::new()),
        count: KSemaphore::new(0, i32::MAX),
        processed: AtomicU64::new(0),
    }
}; 3];

const PRIORITIES: [u8; 3] = [13, 12, 15];
const THREADS_PER_QUEUE: [usize; 3] = [2, 2, 1];

/// `ExQueueWorkItem`: callable up to DISPATCH_LEVEL.
pub fn ex_queue_work_item(item: WorkQueueItem, queue: WorkQueueType) {
    let q = &QUEUES[queue as usize];
    q.items.with(|i| i.push_back(item));
    let _ = ke_release_semaphore(&q.count, 0, 1);
}

fn worker(queue: usize) {
    let q = &QUEUES[queue];
    loop {
        ke_wait_for_single_object(&q.count, WaitReason::WrQueue, false, false, None);
        if let Some(item) = q.items.with(|i| i.pop_front()) {
            (item.routine)(item.parameter);
            q.processed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `ExpWorkerInitialization`: starts the worker threads.
pub fn initialize() {
    for (qi, &n) in THREADS_PER_QUEUE.iter().enumerate() {
        for _ in 0..n {
            let name = match qi {
                0 => "CriticalWorker",
                1 => "DelayedWorker",
                _ => "HyperCritWorker",
            };
            if let Err(s) = sched::start_system_thread(name, PRIORITIES[qi], u64::MAX, worker, qi) {
                crate::ke::bugcheck::ke_bug_check_ex(
                    nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
                    s.as_u32() as u64,
                    0x57,
                    qi as u64,
                    0,
                );
            }
        }
    }
}

/// Items each queue has run (for `!exqueue`).
pub fn processed(queue: WorkQueueType) -> u64 {
    QUEUES[queue as usize].processed.load(Ordering::Relaxed)
}

/// `!exqueue`.
pub fn kd_exqueue() {
    for (q, name) in [
        (WorkQueueType::CriticalWorkQueue, "CriticalWorkQueue"),
        (WorkQueueType::DelayedWorkQueue, "DelayedWorkQueue"),
        (
            WorkQueueType::HyperCriticalWorkQueue,
            "HyperCriticalWorkQueue",
        ),
    ] {
        let pending = QUEUES[q as usize].items.with(|i| i.len());
        crate::dbg_println!(
            "{name:<24} threads {}  priority {}  pending {pending}  processed {}",
            THREADS_PER_QUEUE[q as usize],
            PRIORITIES[q as usize],
            processed(q)
        );
    }
}
