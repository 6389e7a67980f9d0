//! Per-thread APC state (*Windows Internals*, Part 2, ch. 8, "Asynchronous
//! procedure call interrupts"): the kernel-mode and user-mode APC queues of
//! `KAPC_STATE`, the alert flags, and NT's rules for queuing, for whether a
//! queued APC ends the thread's wait, and for delivery.
//!
//! - Queuing (`KiInsertQueueApc`): a special kernel APC (no normal routine)
//!   goes after the special APCs already queued but ahead of every normal
//!   kernel APC; a normal kernel APC and a user APC go to the tail of their
//!   queue. Nothing is queued while the thread's `ApcQueueable` is clear.
//! - A kernel APC to a thread waiting at PASSIVE_LEVEL that could run it ends
//!   the wait with `STATUS_KERNEL_APC` (the kernel runs the APC and restarts
//!   the wait); a user APC to a thread in an alertable user-mode wait ends it
//!   with `STATUS_USER_APC` and sets `UserApcPending`.
//! - Delivery (`KiDeliverApc`): special kernel APCs at PASSIVE_LEVEL unless
//!   `SpecialApcDisable` (guarded region); normal kernel APCs also need
//!   `KernelApcDisable == 0` (no critical region) and no kernel APC already
//!   in progress; user APCs only on the way back to user mode with
//!   `UserApcPending` set and no kernel APC left.
//!
//! The queues hold whatever the kernel names an APC by (`T`: the kernel
//! queues a reference to its `KAPC` with the insertion's system arguments;
//! the host tests use [`ApcId`]); they only order them.

use alloc::collections::VecDeque;
use nt::status::{STATUS_ALERTED, STATUS_KERNEL_APC, STATUS_USER_APC};
use nt::NtStatus;

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: u8 = 1;

/// An APC object (the host tests' name for one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApcId(pub u32);

/// `KPROCESSOR_MODE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessorMode {
    KernelMode,
    UserMode,
}

/// The three kinds of APC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApcKind {
    /// Kernel mode, no normal routine.
    SpecialKernel,
    /// Kernel mode with a normal routine (runs at PASSIVE_LEVEL).
    NormalKernel,
    /// User mode.
    User,
}

/// What the kernel knows about the target thread when queuing an APC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApcTarget {
    /// The thread is running (on some processor): request an APC interrupt.
    pub running: bool,
    /// The thread is blocked in a wait.
    pub waiting: bool,
    /// `WaitIrql`: the IRQL the wait was entered at.
    pub wait_irql: u8,
    /// `WaitMode`.
    pub wait_mode: ProcessorMode,
    /// `Alertable`.
    pub alertable: bool,
    /// `SpecialApcDisable != 0` (guarded region).
    pub special_apc_disable: bool,
    /// `KernelApcDisable != 0` (critical region).
    pub kernel_apc_disable: bool,
    /// `KernelApcInProgress`.
    pub kernel_apc_in_progress: bool,
}

impl ApcTarget {
    /// A thread that is neither running nor waiting (ready, standby...).
    pub const IDLE: ApcTarget = ApcTarget {
        running: false,
        waiting: false,
        wait_irql: PASSIVE_LEVEL,
        wait_mode: ProcessorMode::KernelMode,
        alertable: false,
        special_apc_disable: false,
        kernel_apc_disable: false,
        kernel_apc_in_progress: false,
    };
}

/// What queuing an APC did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApcInsert {
    /// False when the thread's APC queue is closed (`KeInsertQueueApc` FALSE).
    pub inserted: bool,
    /// The thread runs: request an APC_LEVEL interrupt on its processor.
    pub request_interrupt: bool,
    /// The thread's wait must end with this status
    /// (see [`crate::objects::Dispatcher::abort_wait`]).
    pub unwait: Option<NtStatus>,
}

/// `KAPC_STATE` plus the thread's alert flags, over APCs named by `T`.
#[derive(Clone, Debug)]
pub struct ApcState<T = ApcId> {
    /// Kernel queue: (apc, special).
    kernel: VecDeque<(T, bool)>,
    user: VecDeque<T>,
    /// `ApcQueueable`.
    pub queueable: bool,
    /// `UserApcPending`.
    pub user_apc_pending: bool,
    /// `Alerted[KernelMode]`, `Alerted[UserMode]`.
    alerted: [bool; 2],
}

impl<T: Copy + PartialEq> Default for ApcState<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn mode_index(m: ProcessorMode) -> usize {
    match m {
        ProcessorMode::KernelMode => 0,
        ProcessorMode::UserMode => 1,
    }
}

impl<T: Copy + PartialEq> ApcState<T> {
    pub const fn new() -> Self {
        ApcState {
            kernel: VecDeque::new(),
            user: VecDeque::new(),
            queueable: true,
            user_apc_pending: false,
            alerted: [false; 2],
        }
    }

    /// `KernelApcPending`: kernel APCs are queued.
    pub fn kernel_apc_pending(&self) -> bool {
        !self.kernel.is_empty()
    }

    /// The queues in delivery order (kd `!apc`): kernel queue, then user queue.
    pub fn queued(&self) -> impl Iterator<Item = (T, ApcKind)> + '_ {
        self.kernel
            .iter()
            .map(|&(a, special)| {
                (
                    a,
                    if special {
                        ApcKind::SpecialKernel
                    } else {
                        ApcKind::NormalKernel
                    },
                )
            })
            .chain(self.user.iter().map(|&a| (a, ApcKind::User)))
    }

    /// `KeInsertQueueApc` / `KiInsertQueueApc`: queues `apc` and reports
    /// whether the target's wait must end or an APC interrupt is needed.
    pub fn insert(&mut self, apc: T, kind: ApcKind, target: &ApcTarget) -> ApcInsert {
        let mut r = ApcInsert {
            inserted: false,
            request_interrupt: false,
            unwait: None,
        };
        if !self.queueable {
            return r;
        }
        r.inserted = true;
        match kind {
            ApcKind::SpecialKernel => {
                let at = self.kernel.iter().take_while(|k| k.1).count();
                self.kernel.insert(at, (apc, true));
            }
            ApcKind::NormalKernel => self.kernel.push_back((apc, false)),
            ApcKind::User => self.user.push_back(apc),
        }
        match kind {
            ApcKind::SpecialKernel | ApcKind::NormalKernel => {
                if target.running {
                    r.request_interrupt = true;
                } else if target.waiting
                    && target.wait_irql == PASSIVE_LEVEL
                    && !target.special_apc_disable
                    && (kind == ApcKind::SpecialKernel
                        || (!target.kernel_apc_disable && !target.kernel_apc_in_progress))
                {
                    r.unwait = Some(STATUS_KERNEL_APC);
                }
            }
            ApcKind::User => {
                if target.waiting && target.wait_mode == ProcessorMode::UserMode && target.alertable
                {
                    self.user_apc_pending = true;
                    r.unwait = Some(STATUS_USER_APC);
                }
            }
        }
        r
    }

    /// `KeRemoveQueueApc`: returns whether `apc` was queued.
    pub fn remove(&mut self, apc: T) -> bool {
        if let Some(i) = self.kernel.iter().position(|k| k.0 == apc) {
            self.kernel.remove(i);
            return true;
        }
        if let Some(i) = self.user.iter().position(|&a| a == apc) {
            self.user.remove(i);
            if self.user.is_empty() {
                self.user_apc_pending = false;
            }
            return true;
        }
        false
    }

    /// Thread termination (`KeTerminateThread` clearing `ApcQueueable`,
    /// then `KeFlushQueueApc` for both modes): no APC is queued any more,
    /// and every APC still queued is returned, kernel queue first, so the
    /// kernel can mark them no longer inserted.
    pub fn close(&mut self) -> alloc::vec::Vec<T> {
        self.queueable = false;
        self.user_apc_pending = false;
        let mut v: alloc::vec::Vec<T> = self.kernel.drain(..).map(|k| k.0).collect();
        v.extend(self.user.drain(..));
        v
    }

    /// The APC `KiDeliverApc` would run next, if any: `irql` is the level
    /// being returned to, `mode` whether the return is to user mode.
    pub fn next_deliverable(
        &self,
        irql: u8,
        special_apc_disable: bool,
        kernel_apc_disable: bool,
        kernel_apc_in_progress: bool,
        mode: ProcessorMode,
    ) -> Option<(T, ApcKind)> {
        if irql >= APC_LEVEL {
            return None;
        }
        if let Some(&(apc, special)) = self.kernel.front() {
            if special_apc_disable {
                return None;
            }
            if special {
                return Some((apc, ApcKind::SpecialKernel));
            }
            if kernel_apc_disable || kernel_apc_in_progress {
                // Normal kernel APCs block the user APCs behind them.
                return None;
            }
            return Some((apc, ApcKind::NormalKernel));
        }
        if mode == ProcessorMode::UserMode && self.user_apc_pending {
            return self.user.front().map(|&a| (a, ApcKind::User));
        }
        None
    }

    /// Dequeues what [`ApcState::next_deliverable`] returns (delivering a
    /// user APC clears `UserApcPending`; `NtContinue`'s test-alert sets it
    /// again when more are queued).
    pub fn deliver(
        &mut self,
        irql: u8,
        special_apc_disable: bool,
        kernel_apc_disable: bool,
        kernel_apc_in_progress: bool,
        mode: ProcessorMode,
    ) -> Option<(T, ApcKind)> {
        let next = self.next_deliverable(
            irql,
            special_apc_disable,
            kernel_apc_disable,
            kernel_apc_in_progress,
            mode,
        )?;
        if next.1 == ApcKind::User {
            self.user.pop_front();
            self.user_apc_pending = false;
        } else {
            self.kernel.pop_front();
        }
        Some(next)
    }

    /// `KeAlertThread` (the flag part): returns the previous `Alerted[mode]`.
    /// If `waiting_alertable` names the thread's current alertable wait
    /// mode and the alert may end it (a kernel-mode alert ends any alertable
    /// wait, a user-mode alert only a user-mode one), the flag stays clear and
    /// the caller ends the wait with STATUS_ALERTED (second value).
    pub fn alert(
        &mut self,
        mode: ProcessorMode,
        waiting_alertable: Option<ProcessorMode>,
    ) -> (bool, Option<NtStatus>) {
        let i = mode_index(mode);
        let prev = self.alerted[i];
        if prev {
            return (true, None);
        }
        match waiting_alertable {
            Some(wait_mode)
                if mode == ProcessorMode::KernelMode || wait_mode == ProcessorMode::UserMode =>
            {
                (false, Some(STATUS_ALERTED))
            }
            _ => {
                self.alerted[i] = true;
                (false, None)
            }
        }
    }

    /// `Alerted[mode]`.
    pub fn is_alerted(&self, mode: ProcessorMode) -> bool {
        self.alerted[mode_index(mode)]
    }

    /// `KeTestAlertThread`: returns and clears `Alerted[mode]`; for user
    /// mode with user APCs queued it sets `UserApcPending`.
    pub fn test_alert(&mut self, mode: ProcessorMode) -> bool {
        let was = core::mem::replace(&mut self.alerted[mode_index(mode)], false);
        if mode == ProcessorMode::UserMode && !was && !self.user.is_empty() {
            self.user_apc_pending = true;
        }
        was
    }

    /// The check a wait makes before blocking (`KiCheckAlertability`):
    /// an alertable wait ends at once with STATUS_ALERTED if the thread was
    /// alerted in the wait's mode (or, for a user-mode wait, in kernel mode),
    /// or with STATUS_USER_APC for a user-mode wait with user APCs queued;
    /// any user-mode wait ends with STATUS_USER_APC while `UserApcPending`.
    pub fn check_alertability(
        &mut self,
        wait_mode: ProcessorMode,
        alertable: bool,
    ) -> Option<NtStatus> {
        if alertable {
            let i = mode_index(wait_mode);
            if self.alerted[i] {
                self.alerted[i] = false;
                return Some(STATUS_ALERTED);
            }
            if wait_mode == ProcessorMode::UserMode {
                if !self.user.is_empty() {
                    self.user_apc_pending = true;
                    return Some(STATUS_USER_APC);
                }
                if self.alerted[0] {
                    self.alerted[0] = false;
                    return Some(STATUS_ALERTED);
                }
            }
        } else if wait_mode == ProcessorMode::UserMode && self.user_apc_pending {
            return Some(STATUS_USER_APC);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use ProcessorMode::*;

    fn order(s: &ApcState) -> Vec<u32> {
        s.queued().map(|q| q.0 .0).collect()
    }

    #[test]
    fn special_apcs_go_after_specials_ahead_of_normal() {
        let mut s = ApcState::new();
        let t = ApcTarget::IDLE;
        s.insert(ApcId(1), ApcKind::NormalKernel, &t);
        s.insert(ApcId(2), ApcKind::SpecialKernel, &t);
        s.insert(ApcId(3), ApcKind::NormalKernel, &t);
        s.insert(ApcId(4), ApcKind::SpecialKernel, &t);
        s.insert(ApcId(5), ApcKind::User, &t);
        s.insert(ApcId(6), ApcKind::User, &t);
        assert_eq!(order(&s), [2, 4, 1, 3, 5, 6]);
        assert!(s.kernel_apc_pending());
        assert!(s.remove(ApcId(4)));
        assert!(!s.remove(ApcId(4)));
        assert_eq!(order(&s), [2, 1, 3, 5, 6]);
    }

    #[test]
    fn closed_queue_refuses() {
        let mut s = ApcState::new();
        s.insert(ApcId(1), ApcKind::User, &ApcTarget::IDLE);
        s.insert(ApcId(2), ApcKind::NormalKernel, &ApcTarget::IDLE);
        assert_eq!(s.close(), [ApcId(2), ApcId(1)], "flushed at termination");
        assert!(!s.queueable);
        let r = s.insert(ApcId(3), ApcKind::User, &ApcTarget::IDLE);
        assert!(!r.inserted);
        assert_eq!(s.queued().count(), 0);
        assert!(!s.kernel_apc_pending());
    }

    #[test]
    fn delivery_rules() {
        let mut s = ApcState::new();
        let t = ApcTarget::IDLE;
        s.insert(ApcId(1), ApcKind::NormalKernel, &t);
        s.insert(ApcId(2), ApcKind::SpecialKernel, &t);
        s.insert(ApcId(3), ApcKind::User, &t);
        assert_eq!(
            s.next_deliverable(APC_LEVEL, false, false, false, KernelMode),
            None
        );
        assert_eq!(
            s.next_deliverable(PASSIVE_LEVEL, true, false, false, KernelMode),
            None,
            "guarded region"
        );
        assert_eq!(
            s.deliver(PASSIVE_LEVEL, false, true, false, KernelMode),
            Some((ApcId(2), ApcKind::SpecialKernel)),
            "special APCs run in a critical region"
        );
        assert_eq!(
            s.next_deliverable(PASSIVE_LEVEL, false, true, false, UserMode),
            None,
            "critical region holds the normal APC and the user APC behind it"
        );
        assert_eq!(
            s.next_deliverable(PASSIVE_LEVEL, false, false, true, KernelMode),
            None,
            "kernel APC in progress"
        );
        assert_eq!(
            s.deliver(PASSIVE_LEVEL, false, false, false, KernelMode),
            Some((ApcId(1), ApcKind::NormalKernel))
        );
        assert!(!s.kernel_apc_pending());
        assert_eq!(
            s.next_deliverable(PASSIVE_LEVEL, false, false, false, UserMode),
            None,
            "user APC needs UserApcPending"
        );
        assert!(!s.test_alert(UserMode));
        assert!(s.user_apc_pending);
        assert_eq!(
            s.next_deliverable(PASSIVE_LEVEL, false, false, false, KernelMode),
            None,
            "only on the way to user mode"
        );
        assert_eq!(
            s.deliver(PASSIVE_LEVEL, false, false, false, UserMode),
            Some((ApcId(3), ApcKind::User))
        );
        assert!(!s.user_apc_pending);
    }

    #[test]
    fn kernel_apc_unwaits_passive_waits_it_can_run_in() {
        let waiting = ApcTarget {
            waiting: true,
            ..ApcTarget::IDLE
        };
        let mut s = ApcState::new();
        assert_eq!(
            s.insert(ApcId(1), ApcKind::NormalKernel, &waiting).unwait,
            Some(STATUS_KERNEL_APC)
        );
        let critical = ApcTarget {
            kernel_apc_disable: true,
            ..waiting
        };
        assert_eq!(
            s.insert(ApcId(2), ApcKind::NormalKernel, &critical).unwait,
            None
        );
        assert_eq!(
            s.insert(ApcId(3), ApcKind::SpecialKernel, &critical).unwait,
            Some(STATUS_KERNEL_APC)
        );
        let guarded = ApcTarget {
            special_apc_disable: true,
            ..waiting
        };
        assert_eq!(
            s.insert(ApcId(4), ApcKind::SpecialKernel, &guarded).unwait,
            None
        );
        let at_apc = ApcTarget {
            wait_irql: APC_LEVEL,
            ..waiting
        };
        assert_eq!(
            s.insert(ApcId(5), ApcKind::SpecialKernel, &at_apc).unwait,
            None
        );
        let running = ApcTarget {
            running: true,
            ..ApcTarget::IDLE
        };
        let r = s.insert(ApcId(6), ApcKind::SpecialKernel, &running);
        assert!(r.request_interrupt && r.unwait.is_none());
        assert_eq!(
            s.insert(ApcId(7), ApcKind::User, &waiting).unwait,
            None,
            "kernel-mode wait"
        );
    }

    #[test]
    fn user_apc_unwaits_alertable_user_waits_only() {
        let mut s = ApcState::new();
        let user_wait = ApcTarget {
            waiting: true,
            wait_mode: UserMode,
            ..ApcTarget::IDLE
        };
        assert_eq!(s.insert(ApcId(1), ApcKind::User, &user_wait).unwait, None);
        assert!(!s.user_apc_pending);
        let alertable = ApcTarget {
            alertable: true,
            ..user_wait
        };
        assert_eq!(
            s.insert(ApcId(2), ApcKind::User, &alertable).unwait,
            Some(STATUS_USER_APC)
        );
        assert!(s.user_apc_pending);
    }

    #[test]
    fn alerts_and_wait_entry_checks() {
        let mut s = ApcState::new();
        assert_eq!(s.check_alertability(UserMode, true), None);
        assert_eq!(s.alert(UserMode, None), (false, None));
        assert_eq!(s.alert(UserMode, None), (true, None), "already alerted");
        assert_eq!(s.check_alertability(KernelMode, true), None);
        assert_eq!(s.check_alertability(UserMode, false), None);
        assert_eq!(s.check_alertability(UserMode, true), Some(STATUS_ALERTED));
        assert!(!s.is_alerted(UserMode));
        // A user-mode alert does not end a kernel-mode alertable wait.
        assert_eq!(s.alert(UserMode, Some(KernelMode)), (false, None));
        assert!(s.test_alert(UserMode));
        assert_eq!(
            s.alert(KernelMode, Some(UserMode)),
            (false, Some(STATUS_ALERTED))
        );
        assert!(!s.is_alerted(KernelMode));
        s.alert(KernelMode, None);
        assert_eq!(
            s.check_alertability(UserMode, true),
            Some(STATUS_ALERTED),
            "a kernel alert ends an alertable user wait"
        );
        s.insert(ApcId(1), ApcKind::User, &ApcTarget::IDLE);
        assert_eq!(s.check_alertability(UserMode, false), None);
        assert_eq!(s.check_alertability(KernelMode, true), None);
        assert_eq!(s.check_alertability(UserMode, true), Some(STATUS_USER_APC));
        assert!(s.user_apc_pending);
        assert_eq!(
            s.check_alertability(UserMode, false),
            Some(STATUS_USER_APC),
            "UserApcPending ends any user-mode wait"
        );
    }
}
