//! Kernel process objects (`KPROCESS`, *Windows Internals*, Part 1, ch. 3,
//! "Process internals", and ch. 4, "Thread scheduling"): the part of a
//! process the kernel schedules by — its address space, base priority,
//! affinity, quantum, accumulated time and thread list.
//!
//! The executive's process (`EPROCESS`, `crate::ps`) wraps one of these and
//! names itself in its `executive` value; the kernel never looks inside it.
//! Two are static, as at NT boot: the idle process (`KiInitialProcess`,
//! which owns each processor's idle thread) and the System process (the
//! kernel part of `PsInitialSystemProcess`, which owns the system threads).
//! `KiProcessListHead` lists the System process (the idle process is not on
//! it, as in NT); the process manager keeps the list of the others.

use super::irql::{SpinLocked, SYNCH_LEVEL};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// `KPROCESS` (the fields ntrs has).
pub struct KProcess {
    /// `DirectoryTableBase`: the physical address of its PML4 (0 until
    /// phase 0 records the system's).
    directory_table_base: AtomicU64,
    /// `BasePriority`.
    pub base_priority: u8,
    /// `QuantumReset`, in quantum units.
    pub quantum_reset: u8,
    /// `KernelTime`: clock ticks its threads ran, including threads that
    /// have exited.
    kernel_time: AtomicU64,
    /// `ThreadListHead` under `ProcessLock`: ids of its threads (taken
    /// after the dispatcher lock when both are held).
    threads: SpinLocked<Vec<u32>, SYNCH_LEVEL>,
    /// The executive's process (`CONTAINING_RECORD(Pcb, EPROCESS, Pcb)` in
    /// NT): an opaque value the process manager sets once (0: none). The
    /// kernel never interprets it.
    executive: AtomicU64,
}

impl KProcess {
    const fn new(base_priority: u8) -> Self {
        KProcess {
            directory_table_base: AtomicU64::new(0),
            base_priority,
            quantum_reset: ::ke::priority::CLIENT_QUANTUM,
            kernel_time: AtomicU64::new(0),
            threads: SpinLocked::new(Vec::new()),
            executive: AtomicU64::new(0),
        }
    }

    /// `KeInitializeProcess`: a process object for the process manager
    /// (`PspCreateProcess`) with its base priority and address space.
    pub fn new_process(base_priority: u8, directory_table_base: u64) -> Self {
        let p = KProcess::new(base_priority);
        p.directory_table_base
            .store(directory_table_base, Ordering::Relaxed);
        p
    }

    /// The executive's value set by `set_executive` (0: none).
    pub fn executive(&self) -> u64 {
        self.executive.load(Ordering::Acquire)
    }

    /// Sets the executive's value once; false if one was set already.
    pub fn set_executive(&self, v: u64) -> bool {
        self.executive
            .compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// `DirectoryTableBase`.
    pub fn directory_table_base(&self) -> u64 {
        self.directory_table_base.load(Ordering::Relaxed)
    }

    /// `KernelTime` in clock ticks.
    pub fn kernel_time(&self) -> u64 {
        self.kernel_time.load(Ordering::Relaxed)
    }

    /// One clock tick charged to a thread of this process (clock interrupt).
    pub(super) fn charge_tick(&self) {
        self.kernel_time.fetch_add(1, Ordering::Relaxed);
    }

    /// Links a new thread into `ThreadListHead`.
    pub(super) fn add_thread(&self, tid: u32) {
        self.threads.with(|t| t.push(tid));
    }

    /// Unlinks a thread that is being deleted.
    pub(super) fn remove_thread(&self, tid: u32) {
        self.threads.with(|t| t.retain(|&x| x != tid));
    }

    /// Its threads' ids, in creation order (taken under `ProcessLock`).
    pub fn thread_ids(&self) -> Vec<u32> {
        self.threads.with(|t| t.clone())
    }

    /// Its threads' ids, or None when the list lock is held by this or a
    /// stopped processor (the debugger after a bugcheck).
    pub fn try_thread_ids(&self) -> Option<Vec<u32>> {
        self.threads.try_lock(1 << 20).map(|t| t.clone())
    }

    /// The object's address (`!process` prints it).
    pub fn address(&self) -> u64 {
        self as *const KProcess as u64
    }
}

/// `KiInitialProcess`: the idle process, owner of the idle threads.
pub static KI_IDLE_PROCESS: KProcess = KProcess::new(0);
/// The System process's `KPROCESS` (`PsInitialSystemProcess->Pcb`).
pub static KI_SYSTEM_PROCESS: KProcess = KProcess::new(8);

/// Records the system address space in both boot processes (phase 0).
pub fn initialize(system_pml4: u64) {
    KI_IDLE_PROCESS
        .directory_table_base
        .store(system_pml4, Ordering::Relaxed);
    KI_SYSTEM_PROCESS
        .directory_table_base
        .store(system_pml4, Ordering::Relaxed);
}

/// `KiProcessListHead`: every process but the idle process.
pub fn process_list() -> [&'static KProcess; 1] {
    [&KI_SYSTEM_PROCESS]
}
