//! Job objects' rules (*Windows Internals* 7th ed., Part 1, ch. 3, "Jobs"):
//! the limits a job enforces, its accounting, and the information classes
//! of `NtQueryInformationJobObject`/`NtSetInformationJobObject` in their
//! Windows x64 layouts (winnt.h: `JOBOBJECT_BASIC_ACCOUNTING_INFORMATION`,
//! `JOBOBJECT_BASIC_LIMIT_INFORMATION`, `JOBOBJECT_EXTENDED_LIMIT_INFORMATION`,
//! `JOBOBJECT_BASIC_PROCESS_ID_LIST`). The kernel keeps one [`JobState`]
//! per Job object, keyed by its own process handle type `K`.

use crate::info::Layout;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// `JOBOBJECTINFOCLASS` values ntrs answers.
pub const JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION: u32 = 1;
pub const JOB_OBJECT_BASIC_LIMIT_INFORMATION: u32 = 2;
pub const JOB_OBJECT_BASIC_PROCESS_ID_LIST: u32 = 3;
pub const JOB_OBJECT_EXTENDED_LIMIT_INFORMATION: u32 = 9;

/// `JOB_OBJECT_LIMIT_*` (winnt.h).
pub const JOB_OBJECT_LIMIT_WORKINGSET: u32 = 0x0000_0001;
pub const JOB_OBJECT_LIMIT_PROCESS_TIME: u32 = 0x0000_0002;
pub const JOB_OBJECT_LIMIT_JOB_TIME: u32 = 0x0000_0004;
pub const JOB_OBJECT_LIMIT_ACTIVE_PROCESS: u32 = 0x0000_0008;
pub const JOB_OBJECT_LIMIT_AFFINITY: u32 = 0x0000_0010;
pub const JOB_OBJECT_LIMIT_PRIORITY_CLASS: u32 = 0x0000_0020;
pub const JOB_OBJECT_LIMIT_PRESERVE_JOB_TIME: u32 = 0x0000_0040;
pub const JOB_OBJECT_LIMIT_SCHEDULING_CLASS: u32 = 0x0000_0080;
pub const JOB_OBJECT_LIMIT_PROCESS_MEMORY: u32 = 0x0000_0100;
pub const JOB_OBJECT_LIMIT_JOB_MEMORY: u32 = 0x0000_0200;
pub const JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION: u32 = 0x0000_0400;
pub const JOB_OBJECT_LIMIT_BREAKAWAY_OK: u32 = 0x0000_0800;
pub const JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK: u32 = 0x0000_1000;
pub const JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: u32 = 0x0000_2000;
pub const JOB_OBJECT_LIMIT_SUBSET_AFFINITY: u32 = 0x0000_4000;
/// `JOB_OBJECT_BASIC_LIMIT_VALID_FLAGS`, `JOB_OBJECT_EXTENDED_LIMIT_VALID_FLAGS`.
pub const JOB_OBJECT_BASIC_LIMIT_VALID_FLAGS: u32 = 0x0000_00FF;
pub const JOB_OBJECT_EXTENDED_LIMIT_VALID_FLAGS: u32 = 0x0000_7FFF;

/// The limits ntrs enforces. A valid flag outside these is
/// STATUS_NOT_IMPLEMENTED (time, working-set, memory, affinity, priority and
/// scheduling limits, die-on-unhandled-exception).
pub const SUPPORTED_LIMIT_FLAGS: u32 = JOB_OBJECT_LIMIT_ACTIVE_PROCESS
    | JOB_OBJECT_LIMIT_BREAKAWAY_OK
    | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK
    | JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;

fn put(out: &mut [u8], off: usize, bytes: &[u8]) {
    out[off..off + bytes.len()].copy_from_slice(bytes);
}
fn q(b: &[u8], o: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(v)
}
fn d(b: &[u8], o: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(v)
}

/// `JOBOBJECT_BASIC_ACCOUNTING_INFORMATION` (48 bytes; times in 100 ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BasicAccounting {
    pub total_user_time: u64,
    pub total_kernel_time: u64,
    pub this_period_total_user_time: u64,
    pub this_period_total_kernel_time: u64,
    pub total_page_fault_count: u32,
    pub total_processes: u32,
    pub active_processes: u32,
    pub total_terminated_processes: u32,
}

impl Layout for BasicAccounting {
    const SIZE: usize = 48;
    fn write_to(&self, o: &mut [u8]) {
        put(o, 0, &self.total_user_time.to_le_bytes());
        put(o, 8, &self.total_kernel_time.to_le_bytes());
        put(o, 16, &self.this_period_total_user_time.to_le_bytes());
        put(o, 24, &self.this_period_total_kernel_time.to_le_bytes());
        put(o, 32, &self.total_page_fault_count.to_le_bytes());
        put(o, 36, &self.total_processes.to_le_bytes());
        put(o, 40, &self.active_processes.to_le_bytes());
        put(o, 44, &self.total_terminated_processes.to_le_bytes());
    }
}

/// `JOBOBJECT_BASIC_LIMIT_INFORMATION` (64 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BasicLimits {
    pub per_process_user_time_limit: i64,
    pub per_job_user_time_limit: i64,
    pub limit_flags: u32,
    pub minimum_working_set_size: u64,
    pub maximum_working_set_size: u64,
    pub active_process_limit: u32,
    pub affinity: u64,
    pub priority_class: u32,
    pub scheduling_class: u32,
}

impl Layout for BasicLimits {
    const SIZE: usize = 64;
    fn write_to(&self, o: &mut [u8]) {
        put(o, 0, &self.per_process_user_time_limit.to_le_bytes());
        put(o, 8, &self.per_job_user_time_limit.to_le_bytes());
        put(o, 16, &self.limit_flags.to_le_bytes());
        put(o, 20, &[0; 4]);
        put(o, 24, &self.minimum_working_set_size.to_le_bytes());
        put(o, 32, &self.maximum_working_set_size.to_le_bytes());
        put(o, 40, &self.active_process_limit.to_le_bytes());
        put(o, 44, &[0; 4]);
        put(o, 48, &self.affinity.to_le_bytes());
        put(o, 56, &self.priority_class.to_le_bytes());
        put(o, 60, &self.scheduling_class.to_le_bytes());
    }
}

impl BasicLimits {
    /// Reads the structure from the first 64 bytes of `b`.
    pub fn read_from(b: &[u8]) -> Self {
        BasicLimits {
            per_process_user_time_limit: q(b, 0) as i64,
            per_job_user_time_limit: q(b, 8) as i64,
            limit_flags: d(b, 16),
            minimum_working_set_size: q(b, 24),
            maximum_working_set_size: q(b, 32),
            active_process_limit: d(b, 40),
            affinity: q(b, 48),
            priority_class: d(b, 56),
            scheduling_class: d(b, 60),
        }
    }
}

/// `JOBOBJECT_EXTENDED_LIMIT_INFORMATION` (144 bytes): the basic limits,
/// `IO_COUNTERS` (48 bytes at 64, zero: ntrs does not count I/O per job),
/// `ProcessMemoryLimit` 112, `JobMemoryLimit` 120, `PeakProcessMemoryUsed`
/// 128, `PeakJobMemoryUsed` 136.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtendedLimits {
    pub basic: BasicLimits,
    pub process_memory_limit: u64,
    pub job_memory_limit: u64,
    pub peak_process_memory_used: u64,
    pub peak_job_memory_used: u64,
}

impl Layout for ExtendedLimits {
    const SIZE: usize = 144;
    fn write_to(&self, o: &mut [u8]) {
        self.basic.write_to(&mut o[..64]);
        o[64..112].fill(0);
        put(o, 112, &self.process_memory_limit.to_le_bytes());
        put(o, 120, &self.job_memory_limit.to_le_bytes());
        put(o, 128, &self.peak_process_memory_used.to_le_bytes());
        put(o, 136, &self.peak_job_memory_used.to_le_bytes());
    }
}

/// `sizeof(JOBOBJECT_BASIC_PROCESS_ID_LIST)` on x64 (two ULONGs and one
/// `ULONG_PTR`): the smallest buffer the class takes.
pub const PROCESS_ID_LIST_MIN: usize = 16;

/// What a new process of a job member becomes (`PspAssignProcessToJob` at
/// creation, with `PROCESS_CREATE_FLAGS_BREAKAWAY` as `breakaway`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildJob {
    /// The child is in the job too.
    Joins,
    /// The child is in no job (a breakaway the job allows).
    BreaksAway,
}

/// One process in a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member<K> {
    key: K,
    pid: u32,
}

/// A job's state: its limits, its active processes (in the order they
/// joined), and the accounting of the processes that left.
#[derive(Clone, Debug, Default)]
pub struct JobState<K> {
    limits: ExtendedLimits,
    members: Vec<Member<K>>,
    total_processes: u32,
    total_terminated_processes: u32,
    /// Times of the processes that exited (100 ns).
    exited_kernel_time: u64,
    exited_user_time: u64,
    /// `NtTerminateJobObject` ran.
    terminated: bool,
}

impl<K: Copy + PartialEq> JobState<K> {
    /// A job without limits or processes.
    pub fn new() -> Self {
        JobState {
            limits: ExtendedLimits::default(),
            members: Vec::new(),
            total_processes: 0,
            total_terminated_processes: 0,
            exited_kernel_time: 0,
            exited_user_time: 0,
            terminated: false,
        }
    }

    /// `LimitFlags`.
    pub fn limit_flags(&self) -> u32 {
        self.limits.basic.limit_flags
    }

    /// `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` is set.
    pub fn kill_on_close(&self) -> bool {
        self.limit_flags() & JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE != 0
    }

    /// `ActiveProcesses`.
    pub fn active_processes(&self) -> u32 {
        self.members.len() as u32
    }

    /// The active processes' keys, in the order they joined.
    pub fn members(&self) -> Vec<K> {
        self.members.iter().map(|m| m.key).collect()
    }

    /// Whether `key` is an active process of the job.
    pub fn contains(&self, key: K) -> bool {
        self.members.iter().any(|m| m.key == key)
    }

    /// Whether the job was terminated (`NtTerminateJobObject`).
    pub fn terminated(&self) -> bool {
        self.terminated
    }

    /// Records the termination of the job.
    pub fn set_terminated(&mut self) {
        self.terminated = true;
    }

    /// A process joins (`NtAssignProcessToJobObject`, or created by a
    /// member): STATUS_QUOTA_EXCEEDED when `JOB_OBJECT_LIMIT_ACTIVE_PROCESS`
    /// is set and the job already has `ActiveProcessLimit` processes; a key
    /// already in is STATUS_ACCESS_DENIED.
    pub fn admit(&mut self, key: K, pid: u32) -> Result<(), NtStatus> {
        if self.contains(key) {
            return Err(STATUS_ACCESS_DENIED);
        }
        if self.limit_flags() & JOB_OBJECT_LIMIT_ACTIVE_PROCESS != 0
            && self.active_processes() >= self.limits.basic.active_process_limit
        {
            return Err(STATUS_QUOTA_EXCEEDED);
        }
        self.members.push(Member { key, pid });
        self.total_processes += 1;
        Ok(())
    }

    /// A process was terminated because of a limit (counted in
    /// `TotalTerminatedProcesses`).
    pub fn note_limit_termination(&mut self) {
        self.total_terminated_processes += 1;
    }

    /// A process of the job exited with these times (100 ns): it is no
    /// longer active, its times stay in the totals. False if it was not
    /// an active process of the job (nothing changes).
    pub fn leave(&mut self, key: K, kernel_time: u64, user_time: u64) -> bool {
        let Some(i) = self.members.iter().position(|m| m.key == key) else {
            return false;
        };
        self.members.remove(i);
        self.exited_kernel_time += kernel_time;
        self.exited_user_time += user_time;
        true
    }

    /// What a process created by a member becomes: in the job, or broken
    /// away (`JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK`, or `breakaway` asked
    /// with `JOB_OBJECT_LIMIT_BREAKAWAY_OK`); a breakaway the job does not
    /// allow is STATUS_ACCESS_DENIED.
    pub fn child(&self, breakaway: bool) -> Result<ChildJob, NtStatus> {
        let f = self.limit_flags();
        if f & JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK != 0 {
            return Ok(ChildJob::BreaksAway);
        }
        match (breakaway, f & JOB_OBJECT_LIMIT_BREAKAWAY_OK != 0) {
            (false, _) => Ok(ChildJob::Joins),
            (true, true) => Ok(ChildJob::BreaksAway),
            (true, false) => Err(STATUS_ACCESS_DENIED),
        }
    }

    /// `JobObjectBasicAccountingInformation`: the exited processes' times
    /// plus `live(key)` (kernel, user) of each active one.
    pub fn accounting(&self, live: impl Fn(K) -> (u64, u64)) -> BasicAccounting {
        let (mut k, mut u) = (self.exited_kernel_time, self.exited_user_time);
        for m in &self.members {
            let (mk, mu) = live(m.key);
            k += mk;
            u += mu;
        }
        BasicAccounting {
            total_user_time: u,
            total_kernel_time: k,
            this_period_total_user_time: u,
            this_period_total_kernel_time: k,
            total_page_fault_count: 0,
            total_processes: self.total_processes,
            active_processes: self.active_processes(),
            total_terminated_processes: self.total_terminated_processes,
        }
    }

    /// `NtQueryInformationJobObject` for the limit classes and the process
    /// id list. Returns the `ReturnLength`; a fixed class needs the exact
    /// length (STATUS_INFO_LENGTH_MISMATCH). The id list needs at least
    /// [`PROCESS_ID_LIST_MIN`] bytes and gives as many ids as fit, with
    /// STATUS_BUFFER_OVERFLOW (data written, the caller's
    /// `NumberOfProcessIdsInList` is below `NumberOfAssignedProcesses`)
    /// when not all did: `Err((status, length written))`.
    pub fn query(&self, class: u32, buffer: &mut [u8]) -> Result<usize, (NtStatus, usize)> {
        match class {
            JOB_OBJECT_BASIC_LIMIT_INFORMATION => {
                crate::info::answer_fixed(&self.limits.basic, buffer).map_err(|e| (e, 0))
            }
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION => {
                crate::info::answer_fixed(&self.limits, buffer).map_err(|e| (e, 0))
            }
            JOB_OBJECT_BASIC_PROCESS_ID_LIST => {
                if buffer.len() < PROCESS_ID_LIST_MIN {
                    return Err((STATUS_INFO_LENGTH_MISMATCH, 0));
                }
                let fit = ((buffer.len() - 8) / 8).min(self.members.len());
                put(buffer, 0, &self.active_processes().to_le_bytes());
                put(buffer, 4, &(fit as u32).to_le_bytes());
                for (i, m) in self.members.iter().take(fit).enumerate() {
                    put(buffer, 8 + 8 * i, &u64::from(m.pid).to_le_bytes());
                }
                let n = 8 + 8 * fit.max(1);
                if fit < self.members.len() {
                    Err((STATUS_BUFFER_OVERFLOW, n))
                } else {
                    Ok(n)
                }
            }
            _ => Err((STATUS_INVALID_INFO_CLASS, 0)),
        }
    }

    /// `NtSetInformationJobObject` for `JobObjectBasicLimitInformation`
    /// (only the basic flags; the extended ones set before stay) and
    /// `JobObjectExtendedLimitInformation` (all flags). The input must be
    /// the structure's exact length (STATUS_INFO_LENGTH_MISMATCH); a flag
    /// outside the class's valid set is STATUS_INVALID_PARAMETER, a valid
    /// one ntrs does not enforce STATUS_NOT_IMPLEMENTED. Nothing changes
    /// on failure. Setting a lower active-process limit does not end
    /// processes already in the job (it applies to the next ones).
    pub fn set_limits(&mut self, class: u32, input: &[u8]) -> Result<(), NtStatus> {
        let (size, valid) = match class {
            JOB_OBJECT_BASIC_LIMIT_INFORMATION => {
                (BasicLimits::SIZE, JOB_OBJECT_BASIC_LIMIT_VALID_FLAGS)
            }
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION => {
                (ExtendedLimits::SIZE, JOB_OBJECT_EXTENDED_LIMIT_VALID_FLAGS)
            }
            _ => return Err(STATUS_INVALID_INFO_CLASS),
        };
        if input.len() != size {
            return Err(STATUS_INFO_LENGTH_MISMATCH);
        }
        let basic = BasicLimits::read_from(input);
        let flags = basic.limit_flags;
        if flags & !valid != 0 {
            return Err(STATUS_INVALID_PARAMETER);
        }
        if flags & !SUPPORTED_LIMIT_FLAGS != 0 {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        let l = &mut self.limits;
        l.basic.limit_flags = if class == JOB_OBJECT_BASIC_LIMIT_INFORMATION {
            (l.basic.limit_flags & !JOB_OBJECT_BASIC_LIMIT_VALID_FLAGS) | flags
        } else {
            flags
        };
        l.basic.active_process_limit = if flags & JOB_OBJECT_LIMIT_ACTIVE_PROCESS != 0 {
            basic.active_process_limit
        } else {
            0
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], o: usize) -> u64 {
        q(b, o)
    }
    fn u32_at(b: &[u8], o: usize) -> u32 {
        d(b, o)
    }

    fn limits(class: u32, flags: u32, active: u32) -> Vec<u8> {
        let b = BasicLimits {
            limit_flags: flags,
            active_process_limit: active,
            ..Default::default()
        };
        if class == JOB_OBJECT_BASIC_LIMIT_INFORMATION {
            b.to_bytes()
        } else {
            ExtendedLimits {
                basic: b,
                ..Default::default()
            }
            .to_bytes()
        }
    }

    #[test]
    fn layouts_match_winnt() {
        let a = BasicAccounting {
            total_user_time: 1,
            total_kernel_time: 2,
            this_period_total_user_time: 3,
            this_period_total_kernel_time: 4,
            total_page_fault_count: 5,
            total_processes: 6,
            active_processes: 7,
            total_terminated_processes: 8,
        }
        .to_bytes();
        assert_eq!(a.len(), 48);
        assert_eq!(u64_at(&a, 8), 2);
        assert_eq!(u64_at(&a, 24), 4);
        assert_eq!(u32_at(&a, 36), 6);
        assert_eq!(u32_at(&a, 40), 7);
        assert_eq!(u32_at(&a, 44), 8);
        let b = BasicLimits {
            per_process_user_time_limit: 1,
            per_job_user_time_limit: 2,
            limit_flags: 0x2008,
            minimum_working_set_size: 3,
            maximum_working_set_size: 4,
            active_process_limit: 5,
            affinity: 6,
            priority_class: 7,
            scheduling_class: 8,
        };
        let bb = b.to_bytes();
        assert_eq!(bb.len(), 64);
        assert_eq!(u32_at(&bb, 16), 0x2008);
        assert_eq!(u64_at(&bb, 24), 3);
        assert_eq!(u64_at(&bb, 32), 4);
        assert_eq!(u32_at(&bb, 40), 5);
        assert_eq!(u64_at(&bb, 48), 6);
        assert_eq!(u32_at(&bb, 56), 7);
        assert_eq!(u32_at(&bb, 60), 8);
        assert_eq!(BasicLimits::read_from(&bb), b);
        let e = ExtendedLimits {
            basic: b,
            process_memory_limit: 9,
            job_memory_limit: 10,
            peak_process_memory_used: 11,
            peak_job_memory_used: 12,
        }
        .to_bytes();
        assert_eq!(e.len(), 144);
        assert_eq!(&e[..64], &bb[..]);
        assert_eq!(u64_at(&e, 112), 9);
        assert_eq!(u64_at(&e, 120), 10);
        assert_eq!(u64_at(&e, 128), 11);
        assert_eq!(u64_at(&e, 136), 12);
    }

    #[test]
    fn active_process_limit_and_accounting() {
        let mut j = JobState::<u32>::new();
        let l = limits(
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
            JOB_OBJECT_LIMIT_ACTIVE_PROCESS,
            2,
        );
        assert_eq!(
            j.set_limits(JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, &l),
            Ok(())
        );
        assert_eq!(j.admit(10, 100), Ok(()));
        assert_eq!(j.admit(10, 100), Err(STATUS_ACCESS_DENIED));
        assert_eq!(j.admit(11, 104), Ok(()));
        assert_eq!(j.admit(12, 108), Err(STATUS_QUOTA_EXCEEDED));
        j.note_limit_termination();
        assert!(j.leave(10, 50, 7));
        assert!(!j.leave(10, 50, 7), "a second exit counts nothing");
        assert_eq!(j.admit(12, 108), Ok(()));
        let a = j.accounting(|k| (u64::from(k), 1));
        assert_eq!(a.total_processes, 3);
        assert_eq!(a.active_processes, 2);
        assert_eq!(a.total_terminated_processes, 1);
        assert_eq!(a.total_kernel_time, 50 + 11 + 12);
        assert_eq!(a.total_user_time, 7 + 2);
        assert_eq!(j.members(), [11, 12]);
    }

    #[test]
    fn set_limits_validates_flags_and_length() {
        let mut j = JobState::<u32>::new();
        let basic = JOB_OBJECT_BASIC_LIMIT_INFORMATION;
        let ext = JOB_OBJECT_EXTENDED_LIMIT_INFORMATION;
        assert_eq!(
            j.set_limits(basic, &limits(ext, 0, 0)),
            Err(STATUS_INFO_LENGTH_MISMATCH)
        );
        assert_eq!(
            j.set_limits(basic, &limits(basic, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, 0)),
            Err(STATUS_INVALID_PARAMETER),
            "an extended flag through the basic class"
        );
        assert_eq!(
            j.set_limits(ext, &limits(ext, 0x8000, 0)),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            j.set_limits(ext, &limits(ext, JOB_OBJECT_LIMIT_JOB_MEMORY, 0)),
            Err(STATUS_NOT_IMPLEMENTED)
        );
        assert_eq!(j.limit_flags(), 0, "nothing changes on failure");
        assert_eq!(
            j.set_limits(ext, &limits(ext, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, 0)),
            Ok(())
        );
        assert!(j.kill_on_close());
        // The basic class keeps the extended flags.
        assert_eq!(
            j.set_limits(basic, &limits(basic, JOB_OBJECT_LIMIT_ACTIVE_PROCESS, 3)),
            Ok(())
        );
        assert!(j.kill_on_close());
        let mut out = [0u8; 144];
        assert_eq!(j.query(ext, &mut out), Ok(144));
        assert_eq!(u32_at(&out, 16), 0x2008);
        assert_eq!(u32_at(&out, 40), 3);
        assert_eq!(j.query(basic, &mut out[..64]), Ok(64));
        assert_eq!(
            j.query(basic, &mut out[..63]),
            Err((STATUS_INFO_LENGTH_MISMATCH, 0))
        );
        assert_eq!(j.set_limits(4, &[]), Err(STATUS_INVALID_INFO_CLASS));
    }

    #[test]
    fn process_id_list_fits_what_it_can() {
        let mut j = JobState::<u32>::new();
        for (k, pid) in [(1, 0x20), (2, 0x24), (3, 0x28)] {
            j.admit(k, pid).unwrap();
        }
        let c = JOB_OBJECT_BASIC_PROCESS_ID_LIST;
        let mut b = [0u8; 40];
        assert_eq!(
            j.query(c, &mut b[..15]),
            Err((STATUS_INFO_LENGTH_MISMATCH, 0))
        );
        assert_eq!(j.query(c, &mut b[..24]), Err((STATUS_BUFFER_OVERFLOW, 24)));
        assert_eq!(u32_at(&b, 0), 3);
        assert_eq!(u32_at(&b, 4), 2);
        assert_eq!(u64_at(&b, 8), 0x20);
        assert_eq!(u64_at(&b, 16), 0x24);
        assert_eq!(j.query(c, &mut b[..32]), Ok(32));
        assert_eq!(u32_at(&b, 4), 3);
        assert_eq!(u64_at(&b, 24), 0x28);
        let empty = JobState::<u32>::new();
        assert_eq!(empty.query(c, &mut b[..16]), Ok(16));
        assert_eq!(u32_at(&b, 0), 0);
        assert_eq!(u32_at(&b, 4), 0);
    }

    #[test]
    fn children_join_or_break_away() {
        let mut j = JobState::<u32>::new();
        let ext = JOB_OBJECT_EXTENDED_LIMIT_INFORMATION;
        assert_eq!(j.child(false), Ok(ChildJob::Joins));
        assert_eq!(j.child(true), Err(STATUS_ACCESS_DENIED));
        j.set_limits(ext, &limits(ext, JOB_OBJECT_LIMIT_BREAKAWAY_OK, 0))
            .unwrap();
        assert_eq!(j.child(false), Ok(ChildJob::Joins));
        assert_eq!(j.child(true), Ok(ChildJob::BreaksAway));
        j.set_limits(ext, &limits(ext, JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK, 0))
            .unwrap();
        assert_eq!(j.child(false), Ok(ChildJob::BreaksAway));
    }
}
