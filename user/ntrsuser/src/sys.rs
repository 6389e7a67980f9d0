//! System-call stubs generated from the one service list, with the byte
//! layout of Windows 10's ntdll stubs: `mov r10, rcx; mov eax, N; test
//! byte [KUSER_SHARED_DATA.SystemCall], 1; jne int2e; syscall; ret;
//! int 2Eh; ret`. ntrs leaves `SystemCall` 0, so `syscall` is taken.

use nt::user::UnicodeString;

macro_rules! stubs {
    ($($name:ident $number:literal $args:literal),* $(,)?) => {
        core::arch::global_asm!(
            $(
                concat!(".globl ", stringify!($name)),
                ".p2align 4",
                concat!(stringify!($name), ":"),
                "mov r10, rcx",
                concat!("mov eax, ", stringify!($number)),
                "test byte ptr [0x7FFE0308], 1",
                "jne 2f",
                "syscall",
                "ret",
                "2:",
                "int 0x2E",
                "ret",
            )*
        );
    };
}

nt::nt_services!(stubs);

// A service number no table has (for STATUS_INVALID_SYSTEM_SERVICE and the
// null-call benchmark).
core::arch::global_asm!(
    ".globl NtrsInvalidService",
    ".p2align 4",
    "NtrsInvalidService:",
    "mov r10, rcx",
    "mov eax, 0x0FFF",
    "syscall",
    "ret",
);

#[allow(non_snake_case, dead_code)]
extern "system" {
    pub fn NtDisplayString(s: *const UnicodeString) -> i32;
    pub fn NtTerminateProcess(process: u64, status: i32) -> i32;
    pub fn NtDelayExecution(alertable: u8, interval: *const i64) -> i32;
    pub fn NtQuerySystemTime(time: *mut i64) -> i32;
    pub fn NtCreateEvent(
        handle: *mut u64,
        access: u32,
        attributes: u64,
        event_type: u32,
        initial: u8,
    ) -> i32;
    pub fn NtSetEvent(handle: u64, previous: *mut i32) -> i32;
    pub fn NtWaitForSingleObject(handle: u64, alertable: u8, timeout: *const i64) -> i32;
    pub fn NtClose(handle: u64) -> i32;
    pub fn NtAllocateVirtualMemory(
        process: u64,
        base: *mut u64,
        zero_bits: u64,
        size: *mut u64,
        allocation_type: u32,
        protect: u32,
    ) -> i32;
    pub fn NtFreeVirtualMemory(process: u64, base: *mut u64, size: *mut u64, free_type: u32)
        -> i32;
    pub fn NtYieldExecution() -> i32;
    fn NtrsInvalidService() -> i32;
    pub fn NtTerminateThread(thread: u64, status: i32) -> i32;
    pub fn NtCreateUserProcess(
        process: *mut u64,
        thread: *mut u64,
        process_access: u32,
        thread_access: u32,
        process_attributes: u64,
        thread_attributes: u64,
        process_flags: u32,
        thread_flags: u32,
        parameters: *const nt::user::RtlUserProcessParameters,
        create_info: *mut PsCreateInfo,
        attributes: *const PsAttributeList,
    ) -> i32;
    #[allow(clippy::too_many_arguments)]
    pub fn NtCreateThreadEx(
        thread: *mut u64,
        access: u32,
        attributes: u64,
        process: u64,
        start: extern "system" fn(u64) -> !,
        argument: u64,
        flags: u32,
        zero_bits: u64,
        stack_size: u64,
        maximum_stack_size: u64,
        list: *const PsAttributeList,
    ) -> i32;
    pub fn NtQueryInformationProcess(
        process: u64,
        class: u32,
        buffer: *mut u8,
        length: u32,
        return_length: *mut u32,
    ) -> i32;
    pub fn NtQueryInformationThread(
        thread: u64,
        class: u32,
        buffer: *mut u8,
        length: u32,
        return_length: *mut u32,
    ) -> i32;
    pub fn NtResumeThread(thread: u64, previous: *mut u32) -> i32;
}

#[allow(non_snake_case, dead_code)]
extern "system" {
    pub fn NtQuerySystemInformation(
        class: u32,
        buffer: *mut u8,
        length: u32,
        return_length: *mut u32,
    ) -> i32;
    pub fn NtCreateJobObject(job: *mut u64, access: u32, attributes: u64) -> i32;
    pub fn NtAssignProcessToJobObject(job: u64, process: u64) -> i32;
    pub fn NtIsProcessInJob(process: u64, job: u64) -> i32;
    pub fn NtTerminateJobObject(job: u64, status: i32) -> i32;
    pub fn NtQueryInformationJobObject(
        job: u64,
        class: u32,
        buffer: *mut u8,
        length: u32,
        return_length: *mut u32,
    ) -> i32;
    pub fn NtSetInformationJobObject(job: u64, class: u32, buffer: *const u8, length: u32) -> i32;
}

/// Issues a service number that is not in the table.
///
/// # Safety
/// Always sound; `unsafe` as every system call here.
pub unsafe fn invalid_service() -> i32 {
    // SAFETY: the stub only executes `syscall` with an unknown number.
    unsafe { NtrsInvalidService() }
}

/// `PS_ATTRIBUTE` (x64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PsAttribute {
    pub attribute: u64,
    pub size: u64,
    pub value: u64,
    pub return_length: u64,
}

/// `PS_ATTRIBUTE_LIST` with room for four attributes.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PsAttributeList {
    pub total_length: u64,
    pub attributes: [PsAttribute; 4],
}

/// `PS_CREATE_INFO` (x64, 0x58 bytes), kept as raw quadwords.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PsCreateInfo {
    pub size: u64,
    pub state: u32,
    pub pad: u32,
    pub rest: [u64; 9],
}
