//! Kernel process objects (`KPROCESS`, *Windows Internals*, Part 1, ch. 3,
//! "Process internals", and ch. 4, "Thread scheduling"): the part of a
//! process the kernel schedules by — its address space, base priority,
//! affinity, quantum, accumulated time and thread list.
//!
//! ntrs has no executive processes yet (no `EPROCESS`: no process id, image
//! name, handle table, PEB or token in here). The kernel has two process
//! objects, as NT does at boot: the idle process (`KiInitialProcess`, which
//! owns each processor's idle thread) and the System process (the kernel
//! part of `PsInitialSystemProcess`, which owns every other thread). Both
//! are static; `KiProcessListHead` lists the System process (the idle
//! process is not on it, as in NT).

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
}

impl KProcess {
    const fn new(base_priority: u8) -> Self {
        KProcess {
            directory_table_base: AtomicU64::new(0),
            base_priority,
            quantum_reset: ::ke::priority::CLIENT_QUANTUM,
            kernel_time: AtomicU64::new(0),
            threads: SpinLocked::new(Vec::new()),
        }
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
