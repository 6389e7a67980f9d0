//! Boot tests of ntdll's structured exception handling (`user.seh_*`):
//! `ntrsseh.exe` (user/ntrsseh) has no dispatcher of its own, so its
//! exceptions go to ntdll's `KiUserExceptionDispatcher` and
//! `RtlDispatchException`, through `__C_specific_handler` scope tables,
//! `RtlUnwindEx` and vectored handlers; it prints one line per check.

use super::uproc::run_to_exit;
use crate::ktest::{check, Test, TestResult};
use nt::status::*;

/// The checks ntrsseh.exe prints, each followed by " ok" when it passed.
const CHECKS: &[&str] = &[
    "ntdll exports __C_specific_handler",
    "RtlLookupFunctionEntry finds try_call",
    "access violation caught by __except",
    "RtlRaiseException caught by __except",
    "nested unwind runs __finally before __except",
    "__finally on normal exit",
    "EXCEPTION_CONTINUE_EXECUTION resumes after RtlRaiseException",
    "continuing a noncontinuable exception raises STATUS_NONCONTINUABLE_EXCEPTION",
    "ntdll exports the vectored handler routines",
    "vectored handler continues after int3",
    "RtlRemoveVectoredExceptionHandler",
    "removed vectored handler not called",
];

fn t_seh() -> TestResult {
    let commit = crate::mm::process::COMMIT.used();
    let (status, out) = run_to_exit("ntrsseh.exe", "", 20_000).map_err(|e| match e {
        STATUS_OBJECT_NAME_NOT_FOUND => "winload did not hand over ntrsseh.exe",
        STATUS_TIMEOUT => "the process did not end within 20 s",
        _ => "creating the process failed",
    })?;
    let all = CHECKS.iter().all(|c| {
        out.lines().any(|l| {
            l.strip_prefix("ntrsseh: ")
                .and_then(|l| l.strip_suffix(" ok"))
                == Some(c)
        })
    });
    if status != STATUS_SUCCESS || !all {
        crate::dbg_println!(
            "ntrsseh: exit status {:#x}; output:\n{out}",
            status.as_u32()
        );
        return Err("ntrsseh's checks failed (exit status 0xE00000nn names the first)");
    }
    check(
        out.contains("ntrsseh: all checks passed"),
        "ntrsseh's output lacks its last line",
    )?;
    check(
        crate::mm::process::COMMIT.used() == commit,
        "commit charge not returned after the process ended",
    )
}

pub const TESTS: &[Test] = &[("user.seh_ntdll_try_except_finally", t_seh)];
