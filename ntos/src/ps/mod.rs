//! The process manager (*Windows Internals* 7th ed., Part 1, ch. 3,
//! "Processes and jobs", and ch. 4, "Threads"): executive process and
//! thread objects (`EPROCESS`, `ETHREAD`) wrapping the kernel's `KPROCESS`
//! and `KTHREAD`, the Process and Thread object types, the client-id table
//! (`PspCidTable`), each process's handle table and primary token, the
//! creation and exit notify routines, and process/thread exit with its
//! rundown.
//!
//! Lifetimes (NT embeds `KPROCESS`/`KTHREAD` in the executive structures;
//! here the executive structures are reference counted beside them):
//! - an `EProcess` lives in an `Arc` held by the process registry (from
//!   creation until the Process object is deleted) and by each of its
//!   `EThread`s; its `KProcess` is inside it, so every `KThread` of the
//!   process (whose `EThread` is freed only after the `KThread`) finds its
//!   process allocated;
//! - an `EThread` lives in an `Arc` held by the thread registry (until the
//!   Thread object is deleted) and by its `KThread` (the `executive` value,
//!   released by the kernel's thread-delete routine when the `KThread` is
//!   freed). The running thread also holds a reference to its Thread
//!   object, dropped when the `KThread` is freed (as NT's reaper does).
//! - Process and Thread objects are waitable: each has its own dispatcher
//!   object (`ObjectBody::Dispatcher`), signaled at exit.
//!
//! See docs/ps.md for the creation flow and where ntrs differs.

pub mod create;
pub mod exports;
pub mod job;
/// Boot tests of job objects.
mod job_tests;
pub mod kd;
pub mod services;
pub mod syscalls;
/// Boot tests (`/TESTS`) of this component.
pub mod tests;

use crate::ke::apc::{ApcMode, KApc, NormalRoutine};
use crate::ke::irql::SpinLocked;
use crate::ke::process::KProcess;
use crate::ke::DISPATCH_LEVEL;
use crate::ob::handle::{Table, NT_CURRENT_PROCESS};
use crate::ob::object::{
    ob_create_object, ob_dereference_object, ob_reference_object, CreateSpec, ObjectBody,
};
use crate::ob::types::{ob_create_object_type, ObjectTypeRef, TypeInitializer};
use crate::ob::OB_HEADERS;
use ::ob::handle::{Handle, HandleEntry, HandleTable};
use ::ob::namespace::ObjectId;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use nt::status::*;
use nt::NtStatus;
use once_cell::race::OnceBox;
use security::access::GenericMapping;

/// `PsProcessType`, `PsThreadType`.
pub static PS_PROCESS_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static PS_THREAD_TYPE: ObjectTypeRef = ObjectTypeRef::new();

/// Process access rights (`PROCESS_*`).
pub const PROCESS_TERMINATE: u32 = 0x0001;
pub const PROCESS_CREATE_THREAD: u32 = 0x0002;
pub const PROCESS_VM_OPERATION: u32 = 0x0008;
pub const PROCESS_VM_READ: u32 = 0x0010;
pub const PROCESS_VM_WRITE: u32 = 0x0020;
pub const PROCESS_DUP_HANDLE: u32 = 0x0040;
pub const PROCESS_CREATE_PROCESS: u32 = 0x0080;
pub const PROCESS_SET_QUOTA: u32 = 0x0100;
pub const PROCESS_SET_INFORMATION: u32 = 0x0200;
pub const PROCESS_QUERY_INFORMATION: u32 = 0x0400;
pub const PROCESS_SUSPEND_RESUME: u32 = 0x0800;
pub const PROCESS_QUERY_LIMITED_INFORMATION: u32 = 0x1000;
pub const PROCESS_ALL_ACCESS: u32 = 0x001F_FFFF;
/// Thread access rights (`THREAD_*`).
pub const THREAD_TERMINATE: u32 = 0x0001;
pub const THREAD_SUSPEND_RESUME: u32 = 0x0002;
pub const THREAD_GET_CONTEXT: u32 = 0x0008;
pub const THREAD_SET_CONTEXT: u32 = 0x0010;
pub const THREAD_SET_INFORMATION: u32 = 0x0020;
pub const THREAD_QUERY_INFORMATION: u32 = 0x0040;
pub const THREAD_SET_LIMITED_INFORMATION: u32 = 0x0400;
pub const THREAD_QUERY_LIMITED_INFORMATION: u32 = 0x0800;
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;

/// The Process type's generic mapping (Windows 10's `PsProcessType`).
const PROCESS_MAPPING: GenericMapping = GenericMapping {
    read: 0x0002_0410,
    write: 0x0002_0BEA,
    execute: 0x0012_1000,
    all: PROCESS_ALL_ACCESS,
};
/// The Thread type's generic mapping (Windows 10's `PsThreadType`).
const THREAD_MAPPING: GenericMapping = GenericMapping {
    read: 0x0002_0048,
    write: 0x0002_0437,
    execute: 0x0012_1800,
    all: THREAD_ALL_ACCESS,
};

/// The descriptor of process and thread objects: SYSTEM and Administrators
/// everything, the owner (the creating token's user) everything.
/// ntrs differs: NT builds it from the creator token's default DACL.
const PROCESS_SDDL: &str = "O:SYG:SYD:(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;OW)";

/// `KPROCESS` inside an `EPROCESS`: the System and Idle processes' are the
/// kernel's static ones, every other process has its own.
enum Pcb {
    Static(&'static KProcess),
    Own(KProcess),
}

/// `EPROCESS.ObjectTable`: the System process's table is the object
/// manager's static one; others own theirs.
enum ObjectTable {
    System,
    Own(Table),
    /// The Idle process has none.
    None,
}

/// `EPROCESS` (the fields ntrs has).
pub struct EProcess {
    pcb: Pcb,
    /// The Process object (0 for Idle, which has none).
    object: AtomicUsize,
    /// `UniqueProcessId` (0 for Idle).
    unique_process_id: AtomicU32,
    /// `InheritedFromUniqueProcessId`.
    pub inherited_from: u32,
    /// `ImageFileName` (NT keeps 15 characters).
    pub image_file_name: String,
    object_table: ObjectTable,
    /// The memory manager's address space (0: system space only).
    pub address_space: u32,
    /// `CreateTime`, `ExitTime` (system time, 100 ns since 1601).
    pub create_time: u64,
    exit_time: AtomicU64,
    /// `ExitStatus`: STATUS_PENDING while the process runs.
    exit_status: AtomicI32,
    /// `ProcessExiting` / `ProcessDelete` flags.
    exiting: AtomicBool,
    exited: AtomicBool,
    /// `ActiveThreads`.
    active_threads: AtomicU32,
    /// Threads created in it (`KPROCESS` keeps the live list).
    pub threads_created: AtomicU32,
    /// The dispatcher object signaled at exit.
    dispatcher: u32,
    /// `PriorityClass` (`PROCESS_PRIORITY_CLASS_*`).
    pub priority_class: core::sync::atomic::AtomicU8,
    /// `Affinity` set with `ProcessAffinityMask`.
    pub affinity: AtomicU64,
    /// `Peb` (0: no user part).
    pub peb: AtomicU64,
    /// Threads of other processes attached to the address space now
    /// (`ps::create`'s builders); exit waits for them before deleting it.
    attach_count: AtomicU32,
    /// The address space was deleted (at exit).
    space_deleted: AtomicBool,
    /// `Job`: set once, when the process joins a job (`ps::job`).
    pub job: OnceBox<Arc<job::EJob>>,
}

impl EProcess {
    /// `Pcb`.
    pub fn pcb(&self) -> &KProcess {
        match &self.pcb {
            Pcb::Static(p) => p,
            Pcb::Own(p) => p,
        }
    }

    /// The Process object (0 for Idle).
    pub fn object(&self) -> ObjectId {
        self.object.load(Ordering::Acquire)
    }

    /// `UniqueProcessId`.
    pub fn pid(&self) -> u32 {
        self.unique_process_id.load(Ordering::Acquire)
    }

    /// `ObjectTable`, if the process has one.
    pub fn handle_table(&self) -> Option<&Table> {
        match &self.object_table {
            ObjectTable::System => Some(crate::ob::handle::system_table()),
            ObjectTable::Own(t) => Some(t),
            ObjectTable::None => None,
        }
    }

    /// `ExitStatus` (STATUS_PENDING while the process runs).
    pub fn exit_status(&self) -> NtStatus {
        NtStatus(self.exit_status.load(Ordering::Acquire))
    }

    /// `ExitTime` (0 while the process runs).
    pub fn exit_time(&self) -> u64 {
        self.exit_time.load(Ordering::Acquire)
    }

    /// Whether the process has exited (its handles are closed, its object
    /// signaled).
    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// `ActiveThreads`.
    pub fn active_threads(&self) -> u32 {
        self.active_threads.load(Ordering::Acquire)
    }

    /// The address kd shows and drivers get for the process (`PEPROCESS`):
    /// its Process object's.
    pub fn address(&self) -> u64 {
        crate::ob::object_address(self.object())
    }
}

/// `ETHREAD` (the fields ntrs has).
pub struct EThread {
    /// `Tcb`: the kernel thread's address and thread-table id.
    pub kthread: AtomicU64,
    pub kernel_id: AtomicU32,
    /// The Thread object.
    object: AtomicUsize,
    /// `Cid.UniqueThread`.
    unique_thread_id: AtomicU32,
    /// `ThreadsProcess`.
    pub process: Arc<EProcess>,
    /// `CreateTime`, `ExitTime`.
    pub create_time: u64,
    exit_time: AtomicU64,
    /// `ExitStatus`: STATUS_PENDING while the thread runs.
    exit_status: AtomicI32,
    /// `Terminated` was requested (`PS_CROSS_THREAD_FLAGS_TERMINATED`).
    terminating: AtomicBool,
    exited: AtomicBool,
    /// `StartAddress` and its context.
    start_routine: StartRoutine,
    start_context: usize,
    /// `SystemThread`.
    pub system_thread: bool,
    /// The dispatcher object signaled at exit.
    dispatcher: u32,
    /// The APC that makes the thread exit (`PspExitNormalApc`).
    terminate_apc: KApc,
    /// `SuspendCount` (the suspend APC's semaphore count in NT).
    pub suspend_count: AtomicU32,
    /// Released once per resume that brings the count to 0.
    resume_event: crate::ke::wait::KEvent,
    suspend_apc: KApc,
    /// A user thread's entry, argument, stack and TEB (`None`: a kernel
    /// thread).
    pub user: Option<create::UserStart>,
}

impl EThread {
    /// The Thread object.
    pub fn object(&self) -> ObjectId {
        self.object.load(Ordering::Acquire)
    }

    /// `Cid.UniqueThread`.
    pub fn tid(&self) -> u32 {
        self.unique_thread_id.load(Ordering::Acquire)
    }

    /// `ExitStatus` (STATUS_PENDING while the thread runs).
    pub fn exit_status(&self) -> NtStatus {
        NtStatus(self.exit_status.load(Ordering::Acquire))
    }

    /// `ExitTime` (0 while the thread runs).
    pub fn exit_time(&self) -> u64 {
        self.exit_time.load(Ordering::Acquire)
    }

    /// Whether the thread has run its exit.
    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// The kernel thread, referenced, while it exists.
    pub fn kernel_thread(&self) -> Option<crate::ke::thread::ThreadRef> {
        let t = crate::ke::sched::reference_thread(self.kernel_id.load(Ordering::Acquire))?;
        (t.address() == self.kthread.load(Ordering::Acquire)).then_some(t)
    }

    /// `StartAddress`.
    pub fn start_address(&self) -> u64 {
        self.start_routine as usize as u64
    }

    /// The address kd shows and drivers get (`PETHREAD`): its object's.
    pub fn address(&self) -> u64 {
        crate::ob::object_address(self.object())
    }
}

impl Drop for EThread {
    /// The thread's reference to its process (`PspThreadDelete`).
    fn drop(&mut self) {
        let p = self.process.object();
        if p != 0 {
            ob_dereference_object(p);
        }
    }
}

/// `PspCidTable`: client ids (process and thread ids, multiples of 4) name
/// the Process or Thread object.
static CID_TABLE: HandleTable<ObjectId> = HandleTable::new();

/// Process and Thread objects' executive bodies, by object id (the object
/// manager keeps the dispatcher object; these keep the rest).
static PROCESSES: SpinLocked<BTreeMap<ObjectId, Arc<EProcess>>, DISPATCH_LEVEL> =
    SpinLocked::new(BTreeMap::new());
static THREADS: SpinLocked<BTreeMap<ObjectId, Arc<EThread>>, DISPATCH_LEVEL> =
    SpinLocked::new(BTreeMap::new());

/// `PsInitialSystemProcess` and `PsIdleProcess`.
static SYSTEM: OnceBox<Arc<EProcess>> = OnceBox::new();
static IDLE: OnceBox<Arc<EProcess>> = OnceBox::new();

/// `PsInitialSystemProcess`, once phase 1 made it.
pub fn system_process() -> Option<&'static Arc<EProcess>> {
    SYSTEM.get()
}

/// `PsIdleProcess`.
pub fn idle_process() -> Option<&'static Arc<EProcess>> {
    IDLE.get()
}

fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let old = crate::ke::irql::ke_raise_irql(DISPATCH_LEVEL.max(crate::ke::irql()));
    let r = f();
    crate::ke::irql::ke_lower_irql(old);
    r
}

fn new_dispatcher_object(process: bool) -> Result<u32, NtStatus> {
    crate::ke::wait::create_object(|db| Ok(db.create_thread_object(process))).map(|o| o.0)
}

fn signal(index: u32) {
    crate::ke::wait::with_db(|st| {
        let _ = st
            .db
            .signal_terminated(::ke::objects::ObjectId(index), &mut st.unwaits);
    });
}

fn allocate_cid(object: ObjectId) -> Result<u32, NtStatus> {
    let h = {
        let _tag = crate::ex::pool::PoolTag::enter(*b"PsCi");
        CID_TABLE.create(HandleEntry {
            object,
            granted_access: 0,
            attributes: 0,
        })?
    };
    u32::try_from(h.0).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)
}

/// `PsInitSystem` (phase 1 part): the Process and Thread types, the Idle
/// process (PID 0) and the System process (PID 4, the first client id) as
/// executive processes, the kernel's thread-exit and thread-delete routines.
pub fn ps_init_system() -> Result<(), NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"Proc");
    ob_create_object_type(
        "Process",
        TypeInitializer {
            generic_mapping: PROCESS_MAPPING,
            delete: Some(process_delete),
            ..Default::default()
        },
        &PS_PROCESS_TYPE,
    )?;
    ob_create_object_type(
        "Thread",
        TypeInitializer {
            generic_mapping: THREAD_MAPPING,
            delete: Some(thread_delete),
            ..Default::default()
        },
        &PS_THREAD_TYPE,
    )?;
    job::init_job_type()?;
    crate::ke::sched::register_thread_exit_routine(ps_exit_thread);
    crate::ke::thread::register_thread_delete_routine(ps_thread_freed);
    let now = crate::ke::clock::ke_query_system_time();
    let idle = Arc::new(EProcess {
        pcb: Pcb::Static(&crate::ke::process::KI_IDLE_PROCESS),
        object: AtomicUsize::new(0),
        unique_process_id: AtomicU32::new(0),
        inherited_from: 0,
        image_file_name: "Idle".into(),
        object_table: ObjectTable::None,
        address_space: 0,
        create_time: now,
        exit_time: AtomicU64::new(0),
        exit_status: AtomicI32::new(STATUS_PENDING.0),
        exiting: AtomicBool::new(false),
        exited: AtomicBool::new(false),
        active_threads: AtomicU32::new(0),
        threads_created: AtomicU32::new(0),
        dispatcher: 0,
        priority_class: core::sync::atomic::AtomicU8::new(PROCESS_PRIORITY_CLASS_NORMAL),
        affinity: AtomicU64::new(u64::MAX),
        peb: AtomicU64::new(0),
        attach_count: AtomicU32::new(0),
        space_deleted: AtomicBool::new(false),
        job: OnceBox::new(),
    });
    crate::ke::process::KI_IDLE_PROCESS.set_executive(Arc::as_ptr(&idle) as u64);
    let _ = IDLE.set(alloc::boxed::Box::new(idle));
    let system = Arc::new(EProcess {
        pcb: Pcb::Static(&crate::ke::process::KI_SYSTEM_PROCESS),
        object: AtomicUsize::new(0),
        unique_process_id: AtomicU32::new(0),
        inherited_from: 0,
        image_file_name: "System".into(),
        object_table: ObjectTable::System,
        address_space: 0,
        create_time: now,
        exit_time: AtomicU64::new(0),
        exit_status: AtomicI32::new(STATUS_PENDING.0),
        exiting: AtomicBool::new(false),
        exited: AtomicBool::new(false),
        active_threads: AtomicU32::new(0),
        threads_created: AtomicU32::new(0),
        dispatcher: new_dispatcher_object(true)?,
        priority_class: core::sync::atomic::AtomicU8::new(PROCESS_PRIORITY_CLASS_NORMAL),
        affinity: AtomicU64::new(u64::MAX),
        peb: AtomicU64::new(0),
        attach_count: AtomicU32::new(0),
        space_deleted: AtomicBool::new(false),
        job: OnceBox::new(),
    });
    let sd = security::sddl::parse(PROCESS_SDDL).map_err(|_| STATUS_INVALID_SECURITY_DESCR)?;
    let (id, _) = ob_create_object(CreateSpec {
        object_type: &PS_PROCESS_TYPE,
        name: None,
        attributes: 0,
        body: ObjectBody::Dispatcher(system.dispatcher),
        sd: Some(sd),
    })?;
    system.object.store(id, Ordering::Release);
    let pid = allocate_cid(id)?;
    debug_assert_eq!(pid, crate::ob::handle::SYSTEM_PROCESS_ID);
    system.unique_process_id.store(pid, Ordering::Release);
    crate::ke::process::KI_SYSTEM_PROCESS.set_executive(Arc::as_ptr(&system) as u64);
    PROCESSES.with(|m| m.insert(id, Arc::clone(&system)));
    // The registry's reference is `PsInitialSystemProcess`'s: never dropped.
    let _ = SYSTEM.set(alloc::boxed::Box::new(system));
    Ok(())
}

/// `PROCESS_PRIORITY_CLASS_NORMAL` and friends.
pub const PROCESS_PRIORITY_CLASS_IDLE: u8 = 1;
pub const PROCESS_PRIORITY_CLASS_NORMAL: u8 = 2;
pub const PROCESS_PRIORITY_CLASS_HIGH: u8 = 3;
pub const PROCESS_PRIORITY_CLASS_REALTIME: u8 = 4;
pub const PROCESS_PRIORITY_CLASS_BELOW_NORMAL: u8 = 5;
pub const PROCESS_PRIORITY_CLASS_ABOVE_NORMAL: u8 = 6;

/// The base priority of a priority class (*Windows Internals*, Part 1,
/// ch. 4, "Windows scheduling APIs").
pub fn priority_class_base(class: u8) -> Option<u8> {
    Some(match class {
        PROCESS_PRIORITY_CLASS_IDLE => 4,
        PROCESS_PRIORITY_CLASS_BELOW_NORMAL => 6,
        PROCESS_PRIORITY_CLASS_NORMAL => 8,
        PROCESS_PRIORITY_CLASS_ABOVE_NORMAL => 10,
        PROCESS_PRIORITY_CLASS_HIGH => 13,
        PROCESS_PRIORITY_CLASS_REALTIME => 24,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// The current process and thread.

/// The executive process of a kernel process.
fn eprocess_of(k: &KProcess) -> Option<&EProcess> {
    let p = k.executive() as *const EProcess;
    // SAFETY: `executive` is set only by this module, to `Arc::as_ptr` of the
    // `EProcess` that contains (or, for System and Idle, owns) `k`; that
    // `EProcess` lives at least as long as `k` (it contains it, and the
    // static ones are never freed), and the caller's `&KProcess` keeps `k`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The executive thread of a kernel thread.
fn ethread_of(k: &crate::ke::thread::KThread) -> Option<&EThread> {
    let p = k.executive() as *const EThread;
    // SAFETY: `executive` is set only by this module, to a pointer from
    // `Arc::into_raw` whose strong count the `KThread` owns until it is
    // freed (the thread-delete routine takes it back), so the `EThread`
    // outlives the caller's `&KThread`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Runs `f` with the current process (`PsGetCurrentProcess`): the current
/// thread's process, valid while the thread runs.
pub fn with_current_process<R>(f: impl FnOnce(Option<&EProcess>) -> R) -> R {
    match crate::ke::thread::try_current_thread() {
        Some(t) => f(eprocess_of(t.process)),
        None => f(None),
    }
}

/// Runs `f` with the current thread's `EThread`, if it has one (threads the
/// kernel made directly, before `ps_init_system` or with
/// `ke::sched::start_system_thread`, have none).
pub fn with_current_thread<R>(f: impl FnOnce(Option<&EThread>) -> R) -> R {
    match crate::ke::thread::try_current_thread() {
        Some(t) => f(ethread_of(&t)),
        None => f(None),
    }
}

/// The object manager's handle table for handles without the kernel bit:
/// the current process's (the System process's before ps is initialized
/// and for the idle threads).
pub fn with_current_handle_table<R>(f: impl FnOnce(&Table) -> R) -> R {
    with_current_process(|p| match p.and_then(|p| p.handle_table()) {
        Some(t) => f(t),
        None => f(crate::ob::handle::system_table()),
    })
}

/// `PsGetCurrentProcessId`.
pub fn ps_get_current_process_id() -> u32 {
    with_current_process(|p| p.map_or(crate::ob::handle::SYSTEM_PROCESS_ID, |p| p.pid()))
}

/// `PsGetCurrentThreadId` (0 for a thread without an `ETHREAD`).
pub fn ps_get_current_thread_id() -> u32 {
    with_current_thread(|t| t.map_or(0, |t| t.tid()))
}

/// The current process's `EProcess`, as an `Arc`.
pub fn current_process() -> Option<Arc<EProcess>> {
    let id = with_current_process(|p| p.map(|p| p.object()))?;
    process_by_object(id)
}

/// `NtCurrentProcess()`/`NtCurrentThread()` for `ObReferenceObjectByHandle`:
/// the object, referenced, with all access.
pub fn reference_pseudo_handle(process: bool) -> Result<(ObjectId, u32), NtStatus> {
    let id = if process {
        with_current_process(|p| p.map(|p| p.object()))
    } else {
        with_current_thread(|t| t.map(|t| t.object()))
    }
    .filter(|&id| id != 0)
    .ok_or(STATUS_INVALID_HANDLE)?;
    // The current thread holds its thread object and (through it) its process.
    ob_reference_object(id)?;
    Ok((
        id,
        if process {
            PROCESS_ALL_ACCESS
        } else {
            THREAD_ALL_ACCESS
        },
    ))
}

/// The executive process behind a Process object.
pub fn process_by_object(id: ObjectId) -> Option<Arc<EProcess>> {
    PROCESSES.with(|m| m.get(&id).cloned())
}

/// The executive thread behind a Thread object.
pub fn thread_by_object(id: ObjectId) -> Option<Arc<EThread>> {
    THREADS.with(|m| m.get(&id).cloned())
}

/// Every process (`PsActiveProcessHead` order: by creation) but Idle.
pub fn process_list() -> Vec<Arc<EProcess>> {
    let mut v: Vec<Arc<EProcess>> = PROCESSES.with(|m| m.values().cloned().collect());
    v.sort_by_key(|p| (p.create_time, p.pid()));
    v
}

/// The executive threads of a process (those with an `ETHREAD`), by kernel
/// thread id, plus the ids of its kernel threads without one.
pub fn threads_of(p: &EProcess) -> (Vec<Arc<EThread>>, Vec<u32>) {
    let mut with = Vec::new();
    let mut bare = Vec::new();
    for tid in p.pcb().thread_ids() {
        let Some(k) = crate::ke::sched::reference_thread(tid) else {
            continue;
        };
        match ethread_of(&k).map(|e| e.object()) {
            Some(obj) => {
                if let Some(t) = thread_by_object(obj) {
                    with.push(t);
                }
            }
            None => bare.push(tid),
        }
    }
    (with, bare)
}

/// The `EThread` of a kernel thread, if it has one.
pub fn ethread_of_kernel(k: &crate::ke::thread::KThread) -> Option<Arc<EThread>> {
    thread_by_object(ethread_of(k)?.object())
}

// ---------------------------------------------------------------------------
// Lookups by client id.

/// A referenced object of `ty` named by client id `cid`.
fn reference_cid(cid: u32, ty: &ObjectTypeRef) -> Result<ObjectId, NtStatus> {
    let want = ty.index().ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    if cid == 0 || !cid.is_multiple_of(4) {
        return Err(STATUS_INVALID_CID);
    }
    at_dispatch(|| {
        CID_TABLE.with_entry(Handle(cid as u64), |e| {
            // The entry stays until the object's delete procedure removes
            // it; an object whose last reference went is not revived.
            if OB_HEADERS.type_index(e.object) != Some(want)
                || !OB_HEADERS.reference_if_alive(e.object)
            {
                return Err(STATUS_INVALID_CID);
            }
            Ok(e.object)
        })
    })
    .map_err(|_| STATUS_INVALID_CID)?
}

/// `PsLookupProcessByProcessId`: the Process object, referenced
/// (STATUS_INVALID_CID for an id naming no live process).
pub fn ps_lookup_process_by_process_id(pid: u32) -> Result<ObjectId, NtStatus> {
    reference_cid(pid, &PS_PROCESS_TYPE)
}

/// `PsLookupThreadByThreadId`: the Thread object, referenced.
pub fn ps_lookup_thread_by_thread_id(tid: u32) -> Result<ObjectId, NtStatus> {
    reference_cid(tid, &PS_THREAD_TYPE)
}

// ---------------------------------------------------------------------------
// Notify routines.

/// A `PsSetCreateProcessNotifyRoutine(Ex)` callback.
#[derive(Clone, Copy)]
pub enum ProcessNotify {
    /// A kernel component's: (the process, its id, `Some(parent id)` at
    /// creation or `None` at exit).
    Kernel(fn(&EProcess, u32, Option<u32>)),
    /// `PCREATE_PROCESS_NOTIFY_ROUTINE(ParentId, ProcessId, Create)`.
    Driver(extern "system" fn(u64, u64, u8)),
    /// `PCREATE_PROCESS_NOTIFY_ROUTINE_EX(Process, ProcessId, CreateInfo)`
    /// (`CreateInfo` NULL at exit).
    DriverEx(extern "system" fn(u64, u64, *mut exports::PsCreateNotifyInfo)),
}

impl ProcessNotify {
    fn address(self) -> usize {
        match self {
            ProcessNotify::Kernel(f) => f as usize,
            ProcessNotify::Driver(f) => f as usize,
            ProcessNotify::DriverEx(f) => f as usize,
        }
    }
}

impl PartialEq for ProcessNotify {
    fn eq(&self, o: &Self) -> bool {
        self.address() == o.address()
    }
}

/// A `PsSetCreateThreadNotifyRoutine` callback.
#[derive(Clone, Copy)]
pub enum ThreadNotify {
    /// A kernel component's: (process id, thread id, create).
    Kernel(fn(u32, u32, bool)),
    /// `PCREATE_THREAD_NOTIFY_ROUTINE(ProcessId, ThreadId, Create)`.
    Driver(extern "system" fn(u64, u64, u8)),
}

impl ThreadNotify {
    fn address(self) -> usize {
        match self {
            ThreadNotify::Kernel(f) => f as usize,
            ThreadNotify::Driver(f) => f as usize,
        }
    }
}

impl PartialEq for ThreadNotify {
    fn eq(&self, o: &Self) -> bool {
        self.address() == o.address()
    }
}

/// `PSP_MAX_CREATE_PROCESS_NOTIFY` (64).
const MAX_NOTIFY: usize = 64;

static PROCESS_NOTIFY: SpinLocked<Vec<ProcessNotify>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());
static THREAD_NOTIFY: SpinLocked<Vec<ThreadNotify>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());

fn register<T: Copy + PartialEq>(
    list: &SpinLocked<Vec<T>, DISPATCH_LEVEL>,
    f: T,
    remove: bool,
) -> NtStatus {
    // Grown outside the lock (no allocation at DISPATCH_LEVEL under it).
    let mut spare: Vec<T> = Vec::new();
    if !remove && spare.try_reserve(MAX_NOTIFY).is_err() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    list.with(|l| {
        if remove {
            match l.iter().position(|&x| x == f) {
                Some(i) => {
                    l.remove(i);
                    STATUS_SUCCESS
                }
                None => STATUS_PROCEDURE_NOT_FOUND,
            }
        } else if l.len() >= MAX_NOTIFY {
            STATUS_INVALID_PARAMETER
        } else {
            if l.capacity() < MAX_NOTIFY {
                core::mem::swap(l, &mut spare);
                l.append(&mut spare);
            }
            l.push(f);
            STATUS_SUCCESS
        }
    })
}

/// `PsSetCreateProcessNotifyRoutine(Ex)` (`remove`: unregister;
/// STATUS_PROCEDURE_NOT_FOUND for one not registered, STATUS_INVALID_PARAMETER
/// when 64 are registered).
pub fn ps_set_create_process_notify_routine(f: ProcessNotify, remove: bool) -> NtStatus {
    register(&PROCESS_NOTIFY, f, remove)
}

/// `PsSetCreateThreadNotifyRoutine` / `PsRemoveCreateThreadNotifyRoutine`.
pub fn ps_set_create_thread_notify_routine(f: ThreadNotify, remove: bool) -> NtStatus {
    register(&THREAD_NOTIFY, f, remove)
}

fn notify_process(p: &EProcess, parent: Option<u32>) {
    let list = PROCESS_NOTIFY.with(|l| l.clone());
    for f in list {
        match f {
            ProcessNotify::Kernel(f) => f(p, p.pid(), parent),
            ProcessNotify::Driver(f) => f(
                u64::from(parent.unwrap_or(p.inherited_from)),
                u64::from(p.pid()),
                u8::from(parent.is_some()),
            ),
            ProcessNotify::DriverEx(f) => match parent {
                Some(parent) => {
                    let mut info = exports::PsCreateNotifyInfo::new(
                        parent,
                        ps_get_current_process_id(),
                        ps_get_current_thread_id(),
                    );
                    f(p.address(), u64::from(p.pid()), &mut info);
                }
                None => f(p.address(), u64::from(p.pid()), core::ptr::null_mut()),
            },
        }
    }
}

fn notify_thread(pid: u32, tid: u32, create: bool) {
    let list = THREAD_NOTIFY.with(|l| l.clone());
    for f in list {
        match f {
            ThreadNotify::Kernel(f) => f(pid, tid, create),
            ThreadNotify::Driver(f) => f(u64::from(pid), u64::from(tid), u8::from(create)),
        }
    }
}

// ---------------------------------------------------------------------------
// Process creation.

/// What `ps_create_process` needs (`NtCreateProcessEx`'s parameters ntrs has).
pub struct CreateProcess<'a> {
    /// The parent (`ParentProcess`; `None`: the current process).
    pub parent: Option<Arc<EProcess>>,
    /// `InheritObjectTable`.
    pub inherit_handles: bool,
    /// The image name kd and `ProcessImageFileName` show.
    pub image_file_name: &'a str,
    /// `PROCESS_CREATE_FLAGS_BREAKAWAY`: leave the parent's job (if it
    /// allows it).
    pub breakaway: bool,
}

/// `PspCreateProcess` without a section: a new address space (empty user
/// half), the parent's primary token duplicated as the child's, its handle
/// table (the parent's inheritable handles when asked), a client id, the
/// create notify routines. Returns the Process object, referenced once for
/// the caller.
pub fn ps_create_process(spec: CreateProcess) -> Result<Arc<EProcess>, NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"Proc");
    let parent = match spec.parent {
        Some(p) => p,
        None => current_process().ok_or(STATUS_INVALID_PARAMETER)?,
    };
    if parent.exiting.load(Ordering::Acquire) {
        return Err(STATUS_PROCESS_IS_TERMINATING);
    }
    let table = match (spec.inherit_handles, parent.handle_table()) {
        (true, Some(t)) => crate::ob::handle::ob_duplicate_inheritable(t)?,
        _ => HandleTable::new(),
    };
    // From here every failure must undo what was made: build the pieces,
    // then hand them to the object whose delete procedure frees them.
    let space = match crate::mm::process::mm_create_process_address_space() {
        Ok(s) => s,
        Err(e) => {
            crate::ob::handle::ob_kill_handle_table(&table);
            return Err(e);
        }
    };
    let dtb = crate::mm::process::directory_table_base(space).unwrap_or(0);
    let dispatcher = match new_dispatcher_object(true) {
        Ok(d) => d,
        Err(e) => {
            crate::ob::handle::ob_kill_handle_table(&table);
            let _ = crate::mm::process::mm_delete_process_address_space(space);
            return Err(e);
        }
    };
    let mut name = String::new();
    name.push_str(&spec.image_file_name[..spec.image_file_name.len().min(15)]);
    let p = Arc::new(EProcess {
        pcb: Pcb::Own(KProcess::new_process(8, dtb)),
        object: AtomicUsize::new(0),
        unique_process_id: AtomicU32::new(0),
        inherited_from: parent.pid(),
        image_file_name: name,
        object_table: ObjectTable::Own(table),
        address_space: space,
        create_time: crate::ke::clock::ke_query_system_time(),
        exit_time: AtomicU64::new(0),
        exit_status: AtomicI32::new(STATUS_PENDING.0),
        exiting: AtomicBool::new(false),
        exited: AtomicBool::new(false),
        active_threads: AtomicU32::new(0),
        threads_created: AtomicU32::new(0),
        dispatcher,
        priority_class: core::sync::atomic::AtomicU8::new(PROCESS_PRIORITY_CLASS_NORMAL),
        affinity: AtomicU64::new(u64::MAX),
        peb: AtomicU64::new(0),
        attach_count: AtomicU32::new(0),
        space_deleted: AtomicBool::new(false),
        job: OnceBox::new(),
    });
    let sd = security::sddl::parse(PROCESS_SDDL).map_err(|_| STATUS_INVALID_SECURITY_DESCR);
    let created = sd.and_then(|sd| {
        ob_create_object(CreateSpec {
            object_type: &PS_PROCESS_TYPE,
            name: None,
            attributes: 0,
            body: ObjectBody::Dispatcher(dispatcher),
            sd: Some(sd),
        })
    });
    let id = match created {
        Ok((id, _)) => id,
        Err(e) => {
            // No object owns the pieces: free them here.
            if let Some(t) = p.handle_table() {
                crate::ob::handle::ob_kill_handle_table(t);
            }
            let _ = crate::mm::process::mm_delete_process_address_space(space);
            crate::ke::wait::delete_object(dispatcher);
            return Err(e);
        }
    };
    // From here the Process object's delete procedure frees everything.
    p.object.store(id, Ordering::Release);
    p.pcb().set_executive(Arc::as_ptr(&p) as u64);
    PROCESSES.with(|m| m.insert(id, Arc::clone(&p)));
    let r = (|| {
        let pid = allocate_cid(id)?;
        p.unique_process_id.store(pid, Ordering::Release);
        // `SeSubProcessToken`: a primary token duplicated from the parent's.
        crate::se::se_assign_process_token(pid, parent.pid())?;
        // `PspCreateProcess`: the child is in the parent's job.
        match job::inherit_job(&parent, &p, spec.breakaway) {
            STATUS_SUCCESS => Ok::<(), NtStatus>(()),
            e => Err(e),
        }
    })();
    if let Err(e) = r {
        // The delete procedure closes the inherited handles and frees the rest.
        ob_dereference_object(id);
        return Err(e);
    }
    notify_process(&p, Some(parent.pid()));
    Ok(p)
}

/// The Process type's delete procedure (`PspProcessDelete`): the client
/// id, the handles (if the process never exited), the address space, the
/// primary token, the registry's `EProcess`.
fn process_delete(id: ObjectId) {
    let Some(p) = PROCESSES.with(|m| m.remove(&id)) else {
        return;
    };
    let pid = p.pid();
    if pid != 0 {
        let _ = at_dispatch(|| CID_TABLE.close(Handle(pid as u64)));
    }
    if !p.exited.swap(true, Ordering::AcqRel) {
        if let Some(t) = p.handle_table() {
            crate::ob::handle::ob_kill_handle_table(t);
        }
    }
    if p.address_space != 0 && !p.space_deleted.swap(true, Ordering::AcqRel) {
        let _ = crate::mm::process::mm_delete_process_address_space(p.address_space);
    }
    if pid != 0 {
        crate::se::se_remove_process_token(pid);
    }
    job::process_deleted(&p);
    drop(p);
}

/// The Thread type's delete procedure (`PspThreadDelete`): the client id
/// and the registry's `EThread` (the process reference goes with the last
/// `Arc`).
fn thread_delete(id: ObjectId) {
    let Some(t) = THREADS.with(|m| m.remove(&id)) else {
        return;
    };
    let tid = t.tid();
    if tid != 0 {
        let _ = at_dispatch(|| CID_TABLE.close(Handle(tid as u64)));
    }
    drop(t);
}

// ---------------------------------------------------------------------------
// Thread creation and exit.

/// What a thread created by `ps_create_thread` runs.
pub type StartRoutine = crate::ke::thread::StartRoutine;

/// `PspCreateThread` for a kernel-mode thread of `process` (the System
/// process for `PsCreateSystemThread`): the `KTHREAD` in the process, the
/// Thread object, a client id, the create notify routines; the thread
/// starts at once unless `suspended`. Returns the `EThread`; the Thread
/// object has one reference for the caller.
pub fn ps_create_thread(
    process: &Arc<EProcess>,
    name: &str,
    priority: u8,
    routine: StartRoutine,
    context: usize,
    suspended: bool,
) -> Result<Arc<EThread>, NtStatus> {
    create_thread(process, name, priority, routine, context, suspended, None)
}

/// `PspCreateThread`: as `ps_create_thread`, with the user part of a user
/// thread (`ps::create`).
fn create_thread(
    process: &Arc<EProcess>,
    name: &str,
    priority: u8,
    routine: StartRoutine,
    context: usize,
    suspended: bool,
    user: Option<create::UserStart>,
) -> Result<Arc<EThread>, NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"Thre");
    if process.exiting.load(Ordering::Acquire) || process.object() == 0 {
        return Err(STATUS_PROCESS_IS_TERMINATING);
    }
    // The thread's reference to its process, dropped with the `EThread`.
    ob_reference_object(process.object())?;
    let dispatcher = match new_dispatcher_object(false) {
        Ok(d) => d,
        Err(e) => {
            ob_dereference_object(process.object());
            return Err(e);
        }
    };
    let t = Arc::new(EThread {
        kthread: AtomicU64::new(0),
        kernel_id: AtomicU32::new(0),
        object: AtomicUsize::new(0),
        unique_thread_id: AtomicU32::new(0),
        process: Arc::clone(process),
        create_time: crate::ke::clock::ke_query_system_time(),
        exit_time: AtomicU64::new(0),
        exit_status: AtomicI32::new(STATUS_PENDING.0),
        terminating: AtomicBool::new(false),
        exited: AtomicBool::new(false),
        start_routine: routine,
        start_context: context,
        system_thread: user.is_none(),
        dispatcher,
        terminate_apc: KApc::new(
            terminate_kernel_routine,
            Some(terminate_normal_routine),
            0,
            ApcMode::KernelMode,
        ),
        suspend_count: AtomicU32::new(0),
        resume_event: crate::ke::wait::KEvent::new(false, false),
        suspend_apc: KApc::new(
            suspend_kernel_routine,
            Some(suspend_normal_routine),
            0,
            ApcMode::KernelMode,
        ),
        user,
    });
    let sd = security::sddl::parse(PROCESS_SDDL).map_err(|_| STATUS_INVALID_SECURITY_DESCR);
    let created = sd.and_then(|sd| {
        ob_create_object(CreateSpec {
            object_type: &PS_THREAD_TYPE,
            name: None,
            attributes: 0,
            body: ObjectBody::Dispatcher(dispatcher),
            sd: Some(sd),
        })
    });
    let id = match created {
        Ok((id, _)) => id,
        Err(e) => {
            crate::ke::wait::delete_object(dispatcher);
            // Dropping `t` drops the process reference.
            return Err(e);
        }
    };
    t.object.store(id, Ordering::Release);
    THREADS.with(|m| m.insert(id, Arc::clone(&t)));
    let r = (|| {
        let cid = allocate_cid(id)?;
        t.unique_thread_id.store(cid, Ordering::Release);
        // SAFETY: the `KProcess` lives inside `process`'s `EProcess` (or is
        // static), and every `EThread` of the process holds an `Arc` of that
        // `EProcess` until its `KThread` is freed (the kernel's
        // thread-delete routine drops it), so the kernel process outlives
        // every kernel thread that points to it, which is all `'static`
        // promises the kernel here.
        let pcb: &'static KProcess = unsafe { &*(process.pcb() as *const KProcess) };
        let kid = crate::ke::thread::create_thread_in_process(
            name,
            pcb,
            priority,
            process.affinity.load(Ordering::Relaxed),
            psp_system_thread_startup,
            0,
        )?;
        let k = crate::ke::sched::reference_thread(kid).ok_or(STATUS_INVALID_PARAMETER)?;
        t.kernel_id.store(kid, Ordering::Release);
        t.kthread.store(k.address(), Ordering::Release);
        // The running thread's references: the `EThread` (as the kernel
        // thread's executive value) and its Thread object, both given back
        // when the `KThread` is freed.
        let _ = ob_reference_object(id);
        k.set_executive(Arc::into_raw(Arc::clone(&t)) as u64);
        Ok::<u32, NtStatus>(kid)
    })();
    let kid = match r {
        Ok(k) => k,
        Err(e) => {
            ob_dereference_object(id);
            return Err(e);
        }
    };
    process.active_threads.fetch_add(1, Ordering::AcqRel);
    process.threads_created.fetch_add(1, Ordering::Relaxed);
    notify_thread(process.pid(), t.tid(), true);
    if suspended {
        suspend_thread(&t)?;
    }
    crate::ke::sched::ready_thread(kid)?;
    Ok(t)
}

/// `PspSystemThreadStartup`: a new thread first takes the APCs queued
/// while it was created (the suspend APC of a thread created suspended),
/// then runs its start routine.
fn psp_system_thread_startup(_: usize) {
    crate::ke::apc::ke_deliver_pending_kernel_apcs();
    // The APC interrupt may come a few instructions late: a thread created
    // suspended waits here until resumed, before its start routine runs.
    suspend_normal_routine(0, 0, 0);
    let start = with_current_thread(|t| t.map(|t| (t.start_routine, t.start_context)));
    if let Some((routine, context)) = start {
        routine(context);
    }
}

/// `PsCreateSystemThread`: a System-process (or `process`) thread running
/// `routine(context)`; returns the Thread object, referenced once.
pub fn ps_create_system_thread(
    process: Option<&Arc<EProcess>>,
    name: &str,
    routine: StartRoutine,
    context: usize,
) -> Result<Arc<EThread>, NtStatus> {
    let system = system_process().ok_or(STATUS_INVALID_PARAMETER)?;
    ps_create_thread(process.unwrap_or(system), name, 8, routine, context, false)
}

/// The kernel's thread-delete routine: the `KThread` whose executive value
/// this is was freed; its `EThread` reference and Thread object reference go.
fn ps_thread_freed(executive: u64) {
    // SAFETY: `executive` is a pointer from `Arc::into_raw` in
    // `ps_create_thread`, handed back exactly once by the kernel when the
    // thread is freed; nothing uses the raw pointer afterwards.
    let t = unsafe { Arc::from_raw(executive as *const EThread) };
    let id = t.object();
    drop(t);
    ob_dereference_object(id);
}

/// `PspExitThread` (the kernel's thread-exit routine, on the exiting
/// thread): exit status and time, the exit notify routines, the Thread
/// object signaled; the last thread of a process exits the process.
fn ps_exit_thread(kernel_id: u32) {
    let Some(obj) = with_current_thread(|t| t.map(|t| t.object())) else {
        return;
    };
    let Some(t) = thread_by_object(obj) else {
        return;
    };
    if t.exited.swap(true, Ordering::AcqRel) {
        return;
    }
    let _ = t.exit_status.compare_exchange(
        STATUS_PENDING.0,
        STATUS_SUCCESS.0,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    t.exit_time
        .store(crate::ke::clock::ke_query_system_time(), Ordering::Release);
    // `KeFlushQueueApc(UserMode)` with the rundown routines before the
    // thread is counted out: whoever waits on the process or thread sees
    // its user APCs freed (the kernel's later flush finds the queue empty).
    crate::ke::apc::ke_flush_user_apcs(kernel_id);
    let p = &t.process;
    // A user thread leaves its process's address space before it is
    // counted out: the last thread's exit deletes it.
    if let Some(u) = &t.user {
        create::leave_user_address_space(p, u);
    }
    notify_thread(p.pid(), t.tid(), false);
    signal(t.dispatcher);
    // The System process never exits (its kernel-made threads are not counted).
    if p.active_threads.fetch_sub(1, Ordering::AcqRel) == 1
        && p.pid() != crate::ob::handle::SYSTEM_PROCESS_ID
    {
        let _ = p.exit_status.compare_exchange(
            STATUS_PENDING.0,
            t.exit_status.load(Ordering::Acquire),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        exit_process(p);
    }
}

/// `PspExitProcess`: the exit notify routines, every handle closed
/// (`ObKillProcess`), the Process object signaled. The address space goes
/// when the Process object is deleted.
fn exit_process(p: &EProcess) {
    p.exiting.store(true, Ordering::Release);
    if p.exited.swap(true, Ordering::AcqRel) {
        return;
    }
    p.exit_time
        .store(crate::ke::clock::ke_query_system_time(), Ordering::Release);
    notify_process(p, None);
    if let Some(t) = p.handle_table() {
        crate::ob::handle::ob_kill_handle_table(t);
    }
    create::delete_user_address_space(p);
    job::process_left_job(p);
    signal(p.dispatcher);
}

/// `PsTerminateSystemThread` / `NtTerminateThread(NtCurrentThread())`:
/// records the exit status and ends the current thread.
pub fn ps_terminate_current_thread(status: NtStatus) -> ! {
    with_current_thread(|t| {
        if let Some(t) = t {
            let _ = t.exit_status.compare_exchange(
                STATUS_PENDING.0,
                status.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    });
    crate::ke::sched::terminate_current_thread()
}

fn terminate_kernel_routine(_apc: &KApc, _normal: &mut Option<NormalRoutine>, _ctx: &mut usize) {}

/// `PspExitNormalApc`: the target thread ends itself at PASSIVE_LEVEL.
fn terminate_normal_routine(_ctx: usize, _a1: usize, _a2: usize) {
    let status = with_current_thread(|t| t.map_or(STATUS_SUCCESS, |t| t.exit_status()));
    ps_terminate_current_thread(status)
}

/// `PspTerminateThreadByPointer`: the thread records `status` and exits
/// (itself, or by a kernel APC that runs when it next runs at PASSIVE_LEVEL
/// or waits). STATUS_THREAD_IS_TERMINATING if it already does.
pub fn terminate_thread(t: &Arc<EThread>, status: NtStatus) -> NtStatus {
    let me = with_current_thread(|c| c.map(|c| c.object()));
    if me == Some(t.object()) {
        ps_terminate_current_thread(status);
    }
    if t.exited.load(Ordering::Acquire) || t.terminating.swap(true, Ordering::AcqRel) {
        return STATUS_THREAD_IS_TERMINATING;
    }
    let _ = t.exit_status.compare_exchange(
        STATUS_PENDING.0,
        status.0,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    // A suspended thread must run to take the APC.
    if t.suspend_count.swap(0, Ordering::AcqRel) != 0 {
        crate::ke::wait::ke_set_event(&t.resume_event, 0);
    }
    // SAFETY: the APC is inside the `EThread`, which the kernel thread
    // holds (its executive value) until it is freed; a thread is freed only
    // after its APC queues were flushed at termination, so the APC outlives
    // every queue it can be in.
    let apc: &'static KApc = unsafe { &*(&t.terminate_apc as *const KApc) };
    if crate::ke::apc::ke_insert_queue_apc(apc, t.kernel_id.load(Ordering::Acquire), 0, 0, 2) {
        STATUS_SUCCESS
    } else {
        // Not queued: the thread is already past its exit routines.
        STATUS_THREAD_IS_TERMINATING
    }
}

/// `PspTerminateProcess`: every thread of the process is terminated with
/// `status`; a process without threads exits at once. The current thread,
/// if it belongs to the process, ends last (and what the caller holds on
/// its stack is not released: callers that hold references use
/// [`terminate_process_others`]).
pub fn terminate_process(p: &Arc<EProcess>, status: NtStatus) -> NtStatus {
    match terminate_process_others(p, status) {
        Ok(true) => ps_terminate_current_thread(status),
        Ok(false) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// The part of `PspTerminateProcess` that returns: every thread of `p` but
/// the current one is terminated with `status` (a process without threads
/// exits). Returns whether the current thread belongs to `p` and must end
/// itself (`ps_terminate_current_thread`) once it dropped its references.
pub fn terminate_process_others(p: &Arc<EProcess>, status: NtStatus) -> Result<bool, NtStatus> {
    if p.object() == 0 || p.pid() == crate::ob::handle::SYSTEM_PROCESS_ID {
        return Err(STATUS_ACCESS_DENIED);
    }
    if p.exited.load(Ordering::Acquire) {
        return Err(STATUS_PROCESS_IS_TERMINATING);
    }
    let _ = p.exit_status.compare_exchange(
        STATUS_PENDING.0,
        status.0,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    p.exiting.store(true, Ordering::Release);
    let me = with_current_thread(|c| c.map(|c| c.object()));
    let (threads, _) = threads_of(p);
    let mut self_too = false;
    for t in &threads {
        if Some(t.object()) == me {
            self_too = true;
        } else {
            let _ = terminate_thread(t, status);
        }
    }
    if p.active_threads.load(Ordering::Acquire) == 0 {
        exit_process(p);
    }
    Ok(self_too)
}

// ---------------------------------------------------------------------------
// Suspend and resume (`KeSuspendThread`: a kernel APC that waits).

fn suspend_kernel_routine(_apc: &KApc, _normal: &mut Option<NormalRoutine>, _ctx: &mut usize) {}

/// The suspend APC's normal routine: waits until the count is back to 0.
fn suspend_normal_routine(_ctx: usize, _a1: usize, _a2: usize) {
    let Some(obj) = with_current_thread(|t| t.map(|t| t.object())) else {
        return;
    };
    let Some(t) = thread_by_object(obj) else {
        return;
    };
    while t.suspend_count.load(Ordering::Acquire) != 0 {
        crate::ke::wait::ke_wait_for_single_object(
            &t.resume_event,
            crate::ke::thread::WaitReason::Suspended,
            false,
            false,
            None,
        );
    }
}

/// `KeSuspendThread`: the previous suspend count;
/// STATUS_SUSPEND_COUNT_EXCEEDED at 127 (`MAXIMUM_SUSPEND_COUNT`).
pub fn suspend_thread(t: &Arc<EThread>) -> Result<u32, NtStatus> {
    if t.exited.load(Ordering::Acquire) || t.terminating.load(Ordering::Acquire) {
        return Err(STATUS_THREAD_IS_TERMINATING);
    }
    let prev = t
        .suspend_count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            (c < MAXIMUM_SUSPEND_COUNT).then_some(c + 1)
        })
        .map_err(|_| STATUS_SUSPEND_COUNT_EXCEEDED)?;
    if prev == 0 {
        // SAFETY: as for the terminate APC: the `EThread` holding it lives
        // until the kernel thread is freed, after its queues were flushed.
        let apc: &'static KApc = unsafe { &*(&t.suspend_apc as *const KApc) };
        crate::ke::apc::ke_insert_queue_apc(apc, t.kernel_id.load(Ordering::Acquire), 0, 0, 0);
    }
    Ok(prev)
}

/// `KeResumeThread`: the previous suspend count (0: it was not suspended).
pub fn resume_thread(t: &Arc<EThread>) -> u32 {
    let prev = t
        .suspend_count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
        .unwrap_or(0);
    if prev == 1 {
        crate::ke::wait::ke_set_event(&t.resume_event, 0);
    }
    prev
}

/// `MAXIMUM_SUSPEND_COUNT`.
pub const MAXIMUM_SUSPEND_COUNT: u32 = 127;
