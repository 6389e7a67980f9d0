//! The system service list (*Windows Internals*, Part 2, ch. 8, "System
//! service dispatching"): ONE list of (name, number, argument count) from
//! which the kernel builds its service table (`KiServiceTable`) and user
//! mode builds its system-call stubs (today the test images in `user/`,
//! later ntdll's `Nt*`/`Zw*` exports).
//!
//! The numbers are those of **Windows 10 22H2, build 19045 (x64)**, so a
//! stub compiled against this list and one copied from that build's ntdll
//! issue the same `syscall`. The argument counts are the prototypes'
//! (phnt); the kernel copies arguments 5 and up from the caller's stack
//! (`rsp + 0x28`, after the return address and the 32-byte home area).
//!
//! Only services ntrs implements are listed; any other number returns
//! `STATUS_INVALID_SYSTEM_SERVICE`.

/// One system service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemService {
    /// The Windows name (`NtClose`).
    pub name: &'static str,
    /// Its number in Windows 10 build 19045 (x64).
    pub number: u32,
    /// How many 8-byte arguments it takes.
    pub arguments: u8,
}

/// The Windows build the numbers follow.
pub const SERVICE_NUMBERS_BUILD: u32 = 19045;

/// Calls `$m! { Name number arguments, ... }` with every service: the one
/// list, so user-mode stub generators and the kernel read the same rows.
#[macro_export]
macro_rules! nt_services {
    ($m:ident) => {
        $m! {
            NtWaitForSingleObject 0x0004 3,
            NtWriteFile 0x0008 9,
            NtSetEvent 0x000E 2,
            NtClose 0x000F 1,
            NtAllocateVirtualMemory 0x0018 6,
            NtQueryInformationProcess 0x0019 5,
            NtFreeVirtualMemory 0x001E 4,
            NtQueryVirtualMemory 0x0023 6,
            NtQueryInformationThread 0x0025 5,
            NtOpenProcess 0x0026 4,
            NtTerminateProcess 0x002C 2,
            NtQueryPerformanceCounter 0x0031 2,
            NtDelayExecution 0x0034 2,
            NtQuerySystemInformation 0x0036 4,
            NtClearEvent 0x003E 1,
            NtContinue 0x0043 2,
            NtQueueApcThread 0x0045 5,
            NtYieldExecution 0x0046 0,
            NtCreateEvent 0x0048 5,
            NtIsProcessInJob 0x004F 2,
            NtProtectVirtualMemory 0x0050 5,
            NtResumeThread 0x0052 2,
            NtTerminateThread 0x0053 2,
            NtQuerySystemTime 0x005A 1,
            NtAssignProcessToJobObject 0x008F 2,
            NtCreateJobObject 0x00AE 3,
            NtCreateThreadEx 0x00C2 11,
            NtCreateUserProcess 0x00C9 11,
            NtDisplayString 0x00DC 1,
            NtGetContextThread 0x00F3 2,
            NtOpenJobObject 0x0120 3,
            NtOpenThread 0x012F 4,
            NtQueryInformationJobObject 0x014B 5,
            NtQueueApcThreadEx 0x0166 6,
            NtRaiseException 0x0168 3,
            NtResetEvent 0x017A 2,
            NtSetContextThread 0x018D 2,
            NtSetInformationJobObject 0x0199 4,
            NtSuspendThread 0x01BE 2,
            NtTerminateJobObject 0x01C1 2,
            NtTestAlert 0x01C2 0,
        }
    };
}

macro_rules! define_list {
    ($($name:ident $number:literal $args:literal),* $(,)?) => {
        /// Every service, in number order.
        pub const SERVICES: &[SystemService] = &[
            $(SystemService { name: stringify!($name), number: $number, arguments: $args }),*
        ];
        /// The service numbers by name (`number::NtClose`).
        #[allow(non_upper_case_globals)]
        pub mod number {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: u32 = $number;
            )*
        }
    };
}

nt_services!(define_list);

/// Highest number the kernel's table must cover, plus one.
pub const fn table_limit() -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < SERVICES.len() {
        if SERVICES[i].number as usize > max {
            max = SERVICES[i].number as usize;
        }
        i += 1;
    }
    max + 1
}

/// The service with this number.
pub fn by_number(n: u32) -> Option<&'static SystemService> {
    SERVICES.iter().find(|s| s.number == n)
}

/// The service with this name.
pub fn by_name(name: &str) -> Option<&'static SystemService> {
    SERVICES.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_sorted() {
        for w in SERVICES.windows(2) {
            assert!(w[0].number < w[1].number, "{} / {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn known_build_19045_numbers() {
        // Spot checks against Windows 10 22H2's ntdll stubs.
        assert_eq!(number::NtClose, 0x0F);
        assert_eq!(number::NtAllocateVirtualMemory, 0x18);
        assert_eq!(number::NtCreateEvent, 0x48);
        assert_eq!(number::NtDisplayString, 0xDC);
        assert_eq!(by_name("NtWriteFile").map(|s| s.arguments), Some(9));
        assert_eq!(by_number(0x46).map(|s| s.name), Some("NtYieldExecution"));
        assert_eq!(number::NtCreateUserProcess, 0xC9);
        assert_eq!(number::NtCreateThreadEx, 0xC2);
        assert_eq!(
            by_name("NtCreateUserProcess").map(|s| s.arguments),
            Some(11)
        );
        assert!(table_limit() > 0x1BE);
        assert_eq!(number::NtQuerySystemInformation, 0x36);
        assert_eq!(number::NtCreateJobObject, 0xAE);
        assert_eq!(number::NtAssignProcessToJobObject, 0x8F);
        assert_eq!(number::NtQueryInformationJobObject, 0x14B);
        assert_eq!(number::NtTerminateJobObject, 0x1C1);
    }
}
