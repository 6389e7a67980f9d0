//! Job objects (*Windows Internals* 7th ed., Part 1, ch. 3, "Jobs"): the
//! Job object type (`PsJobType`), `EJOB` with its processes, limits and
//! accounting (the rules are `lib/ps/src/job.rs`, host-tested), and the
//! kernel halves of `NtCreateJobObject`, `NtOpenJobObject`,
//! `NtAssignProcessToJobObject`, `NtIsProcessInJob`, `NtTerminateJobObject`,
//! `NtQueryInformationJobObject` and `NtSetInformationJobObject`.
//!
//! A process is in at most one job (`EPROCESS.Job`, set once: ntrs has no
//! nested jobs). The process holds a reference to the Job object until it
//! is deleted; the job lists its active processes (those that have not
//! exited). A Job object is waitable: its body is a notification event,
//! signaled when the job is terminated (`NtTerminateJobObject`).

use super::*;
use crate::ob::handle::{
    ob_insert_object_handle, ob_open_object_by_name_handle, ob_reference_object_by_handle,
};
use crate::ob::object::Mode;
use ::ps::job::{ChildJob, JobState};

/// `PsJobType`.
pub static PS_JOB_TYPE: ObjectTypeRef = ObjectTypeRef::new();

/// Job access rights (`JOB_OBJECT_*`).
pub const JOB_OBJECT_ASSIGN_PROCESS: u32 = 0x0001;
pub const JOB_OBJECT_SET_ATTRIBUTES: u32 = 0x0002;
pub const JOB_OBJECT_QUERY: u32 = 0x0004;
pub const JOB_OBJECT_TERMINATE: u32 = 0x0008;
pub const JOB_OBJECT_SET_SECURITY_ATTRIBUTES: u32 = 0x0010;
/// `JOB_OBJECT_ALL_ACCESS` (STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x3F).
pub const JOB_OBJECT_ALL_ACCESS: u32 = 0x001F_003F;

/// The Job type's generic mapping: read = READ_CONTROL | QUERY, write =
/// READ_CONTROL | ASSIGN_PROCESS | SET_ATTRIBUTES | TERMINATE, execute =
/// READ_CONTROL | SYNCHRONIZE, all = `JOB_OBJECT_ALL_ACCESS`.
const JOB_MAPPING: GenericMapping = GenericMapping {
    read: 0x0002_0004,
    write: 0x0002_000B,
    execute: 0x0012_0000,
    all: JOB_OBJECT_ALL_ACCESS,
};

/// `EJOB` (the fields ntrs has).
pub struct EJob {
    /// The Job object.
    object: ObjectId,
    /// Its body: a notification event, signaled at termination.
    dispatcher: u32,
    /// Limits, active processes (by Process object) and accounting.
    state: SpinLocked<JobState<ObjectId>, DISPATCH_LEVEL>,
}

impl EJob {
    /// The Job object.
    pub fn object(&self) -> ObjectId {
        self.object
    }

    /// Runs `f` on the job's state.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut JobState<ObjectId>) -> R) -> R {
        self.state.with(f)
    }
}

/// Job objects' executive bodies by object id.
static JOBS: SpinLocked<BTreeMap<ObjectId, Arc<EJob>>, DISPATCH_LEVEL> =
    SpinLocked::new(BTreeMap::new());

/// The executive job behind a Job object.
pub fn job_by_object(id: ObjectId) -> Option<Arc<EJob>> {
    JOBS.with(|m| m.get(&id).cloned())
}

/// `PspInitializeJobStructures`: the Job type.
pub fn init_job_type() -> Result<(), NtStatus> {
    ob_create_object_type(
        "Job",
        TypeInitializer {
            generic_mapping: JOB_MAPPING,
            close: Some(job_close),
            delete: Some(job_delete),
            ..Default::default()
        },
        &PS_JOB_TYPE,
    )
    .map(|_| ())
}

/// `PspJobDelete`: the registry's `EJob` goes (the object manager deletes
/// the dispatcher object with the body).
fn job_delete(id: ObjectId) {
    let j = JOBS.with(|m| m.remove(&id));
    drop(j);
}

/// `PspJobClose`: with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, the last
/// handle's close terminates every process of the job. The processes are
/// ended by a system worker thread (the closing thread may be one of them,
/// and ends with the others when it next takes its terminate APC).
fn job_close(id: ObjectId, handles_left: u64) {
    if handles_left != 0 {
        return;
    }
    let Some(j) = job_by_object(id) else {
        return;
    };
    if !j.with_state(|s| s.kill_on_close()) || j.with_state(|s| s.active_processes()) == 0 {
        return;
    }
    // The work item's reference, dropped when it has run.
    if ob_reference_object(id).is_err() {
        return;
    }
    crate::ex::worker::ex_queue_work_item(
        crate::ex::worker::WorkQueueItem {
            routine: |id| {
                if let Some(j) = job_by_object(id) {
                    // ntrs reads NT's behaviour as exit status 0 for the
                    // processes a job's close kills.
                    let _ = terminate_members(&j, STATUS_SUCCESS);
                }
                ob_dereference_object(id);
            },
            parameter: id,
        },
        crate::ex::worker::WorkQueueType::DelayedWorkQueue,
    );
}

/// `PspTerminateAllProcessesInJob`: every active process of the job but
/// the caller's is terminated with `status`; returns whether the caller's
/// process is in the job (the caller ends it once it holds nothing).
fn terminate_members(j: &EJob, status: NtStatus) -> bool {
    let me = with_current_process(|p| p.map(|p| p.object()));
    let mut self_too = false;
    for key in j.with_state(|s| s.members()) {
        let Some(p) = process_by_object(key) else {
            continue;
        };
        if let Ok(true) = terminate_process_others(&p, status) {
            self_too = true;
        }
        if Some(key) == me && !p.has_exited() {
            self_too = true;
        }
    }
    self_too
}

/// `NtCreateJobObject`: a job without limits or processes, named when
/// `name` is given (OBJ_OPENIF opens an existing one:
/// STATUS_OBJECT_NAME_EXISTS). Returns the handle and the status.
pub fn nt_create_job_object(
    desired: u32,
    name: Option<&str>,
    attributes: u32,
    mode: Mode,
) -> Result<(u64, NtStatus), NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"Job ");
    let event = crate::ke::wait::create_object(|db| Ok(db.create_event(true, false)))?;
    let created = ob_create_object(CreateSpec {
        object_type: &PS_JOB_TYPE,
        name,
        attributes,
        body: ObjectBody::Dispatcher(event.0),
        sd: None,
    });
    let (id, status) = match created {
        Ok(v) => v,
        Err(e) => {
            crate::ke::wait::delete_object(event.0);
            return Err(e);
        }
    };
    if status == STATUS_SUCCESS {
        let j = Arc::new(EJob {
            object: id,
            dispatcher: event.0,
            state: SpinLocked::new(JobState::new()),
        });
        JOBS.with(|m| m.insert(id, j));
    } else {
        // OBJ_OPENIF found an existing object: ours was never used.
        crate::ke::wait::delete_object(event.0);
    }
    ob_insert_object_handle(id, desired, attributes, mode).map(|h| (h, status))
}

/// `NtOpenJobObject` by name (the caller's effective token is checked).
pub fn nt_open_job_object(
    desired: u32,
    path: &str,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let subject = crate::se::se_capture_subject_context();
    ob_open_object_by_name_handle(
        path,
        Some(&PS_JOB_TYPE),
        attributes,
        desired,
        mode,
        subject.effective_token(),
    )
}

/// A job behind a handle, referenced, with its `EJob`.
pub fn reference_job(
    handle: u64,
    desired: u32,
    mode: Mode,
) -> Result<(crate::ob::handle::ObjectRef, Arc<EJob>), NtStatus> {
    let r = ob_reference_object_by_handle(handle, desired, Some(&PS_JOB_TYPE), mode)?;
    let j = job_by_object(r.id).ok_or(STATUS_INVALID_HANDLE)?;
    Ok((r, j))
}

/// Puts `p` in `j` (`EPROCESS.Job`; the process references the Job object
/// until it is deleted). STATUS_ACCESS_DENIED if it is in a job already,
/// STATUS_PROCESS_IS_TERMINATING if it has exited, STATUS_QUOTA_EXCEEDED
/// beyond the active-process limit.
fn join(j: &Arc<EJob>, p: &EProcess) -> Result<(), NtStatus> {
    if p.job.get().is_some() {
        return Err(STATUS_ACCESS_DENIED);
    }
    if p.has_exited() {
        return Err(STATUS_PROCESS_IS_TERMINATING);
    }
    ob_reference_object(j.object)?;
    j.with_state(|s| s.admit(p.object(), p.pid()))
        .inspect_err(|_| ob_dereference_object(j.object))?;
    if p.job.set(alloc::boxed::Box::new(Arc::clone(j))).is_err() {
        // Another assignment won the race.
        j.with_state(|s| s.leave(p.object(), 0, 0));
        ob_dereference_object(j.object);
        return Err(STATUS_ACCESS_DENIED);
    }
    // The process may have exited before it was listed: its exit did not
    // see the job, so it leaves here.
    if p.has_exited() {
        process_left_job(p);
    }
    Ok(())
}

/// A new process created by `parent` (`PspCreateProcess`): in the parent's
/// job unless it breaks away (`breakaway`: `PROCESS_CREATE_FLAGS_BREAKAWAY`).
pub(super) fn inherit_job(parent: &EProcess, child: &EProcess, breakaway: bool) -> NtStatus {
    let Some(j) = parent.job.get() else {
        return STATUS_SUCCESS;
    };
    match j.with_state(|s| s.child(breakaway)) {
        Ok(ChildJob::BreaksAway) => STATUS_SUCCESS,
        Ok(ChildJob::Joins) => match join(j, child) {
            Ok(()) => STATUS_SUCCESS,
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// At process exit: the process is no longer active in its job; its
/// kernel time stays in the job's totals (ntrs charges no user time).
pub(super) fn process_left_job(p: &EProcess) {
    if let Some(j) = p.job.get() {
        let k = ticks_100ns(p.pcb().kernel_time());
        j.with_state(|s| s.leave(p.object(), k, 0));
    }
}

/// At process deletion: the process's reference to its Job object.
pub(super) fn process_deleted(p: &EProcess) {
    if let Some(j) = p.job.get() {
        ob_dereference_object(j.object);
    }
}

fn ticks_100ns(ticks: u64) -> u64 {
    ticks * crate::ke::clock::TIME_INCREMENT
}

/// `NtAssignProcessToJobObject` (JOB_OBJECT_ASSIGN_PROCESS on the job,
/// PROCESS_SET_QUOTA | PROCESS_TERMINATE on the process). A process in a
/// job already is STATUS_ACCESS_DENIED (ntrs has no nested jobs); beyond
/// the job's active-process limit the process is terminated with
/// STATUS_QUOTA_EXCEEDED and that is returned, as on NT.
pub fn nt_assign_process_to_job_object(job: u64, process: u64, mode: Mode) -> NtStatus {
    let (_jr, j) = match reference_job(job, JOB_OBJECT_ASSIGN_PROCESS, mode) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let (pr, p) = match super::services::reference_process(
        process,
        PROCESS_SET_QUOTA | PROCESS_TERMINATE,
        mode,
    ) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if p.object() == 0 || p.pid() == crate::ob::handle::SYSTEM_PROCESS_ID {
        return STATUS_ACCESS_DENIED;
    }
    match join(&j, &p) {
        Ok(()) => STATUS_SUCCESS,
        Err(STATUS_QUOTA_EXCEEDED) => {
            j.with_state(|s| s.note_limit_termination());
            if let Ok(true) = terminate_process_others(&p, STATUS_QUOTA_EXCEEDED) {
                // The caller's own process: it ends holding nothing.
                drop(pr);
                drop(p);
                drop(_jr);
                drop(j);
                ps_terminate_current_thread(STATUS_QUOTA_EXCEEDED);
            }
            STATUS_QUOTA_EXCEEDED
        }
        Err(e) => e,
    }
}

/// `NtIsProcessInJob` (PROCESS_QUERY_LIMITED_INFORMATION; JOB_OBJECT_QUERY
/// on the job when one is given): STATUS_PROCESS_IN_JOB or
/// STATUS_PROCESS_NOT_IN_JOB (in any job when `job` is `None`).
pub fn nt_is_process_in_job(process: u64, job: Option<u64>, mode: Mode) -> NtStatus {
    let (_pr, p) = match super::services::reference_process(
        process,
        PROCESS_QUERY_LIMITED_INFORMATION,
        mode,
    ) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let inside = match job {
        None => p.job.get().is_some(),
        Some(h) => match reference_job(h, JOB_OBJECT_QUERY, mode) {
            Ok((_jr, j)) => p.job.get().is_some_and(|pj| pj.object == j.object),
            Err(e) => return e,
        },
    };
    if inside {
        STATUS_PROCESS_IN_JOB
    } else {
        STATUS_PROCESS_NOT_IN_JOB
    }
}

/// `NtTerminateJobObject` (JOB_OBJECT_TERMINATE): every process of the job
/// ends with `status` and the job is signaled. A caller inside the job
/// ends last, when its references are dropped.
pub fn nt_terminate_job_object(job: u64, status: NtStatus, mode: Mode) -> NtStatus {
    let (jr, j) = match reference_job(job, JOB_OBJECT_TERMINATE, mode) {
        Ok(x) => x,
        Err(e) => return e,
    };
    j.with_state(|s| s.set_terminated());
    let self_too = terminate_members(&j, status);
    crate::ke::wait::with_db(|st| {
        let _ = st
            .db
            .set_event(::ke::objects::ObjectId(j.dispatcher), 0, &mut st.unwaits);
    });
    if self_too {
        drop(jr);
        drop(j);
        ps_terminate_current_thread(status);
    }
    STATUS_SUCCESS
}

/// `NtQueryInformationJobObject` (JOB_OBJECT_QUERY):
/// `JobObjectBasicAccountingInformation` (times of the exited processes
/// plus the active ones' now; `TotalUserTime` 0 and `TotalPageFaultCount`
/// 0: ntrs counts neither per process), the basic and extended limits, the
/// process id list. `Err((status, written))`: STATUS_BUFFER_OVERFLOW still
/// has data to copy out.
pub fn nt_query_information_job_object(
    job: u64,
    class: u32,
    buffer: &mut [u8],
    mode: Mode,
) -> Result<usize, (NtStatus, usize)> {
    let (_jr, j) = reference_job(job, JOB_OBJECT_QUERY, mode).map_err(|e| (e, 0))?;
    if class == ::ps::job::JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION {
        let members = j.with_state(|s| s.members());
        let times: Vec<(ObjectId, u64)> = members
            .iter()
            .map(|&k| {
                (
                    k,
                    process_by_object(k).map_or(0, |p| ticks_100ns(p.pcb().kernel_time())),
                )
            })
            .collect();
        let a = j.with_state(|s| {
            s.accounting(|k| (times.iter().find(|t| t.0 == k).map_or(0, |t| t.1), 0))
        });
        return ::ps::info::answer_fixed(&a, buffer).map_err(|e| (e, 0));
    }
    j.with_state(|s| s.query(class, buffer))
}

/// `NtSetInformationJobObject` (JOB_OBJECT_SET_ATTRIBUTES): the basic and
/// extended limit classes (see `lib/ps/src/job.rs` for what is enforced).
pub fn nt_set_information_job_object(job: u64, class: u32, input: &[u8], mode: Mode) -> NtStatus {
    let (_jr, j) = match reference_job(job, JOB_OBJECT_SET_ATTRIBUTES, mode) {
        Ok(x) => x,
        Err(e) => return e,
    };
    match j.with_state(|s| s.set_limits(class, input)) {
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e,
    }
}
