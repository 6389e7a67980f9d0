//! Boot tests of exception and APC dispatching to user mode (`user.exc_*`,
//! `user.apc_*`): the test image `ntrsexc.exe` (user/ntrsexc) exports its
//! own `KiUserExceptionDispatcher`/`KiUserApcDispatcher` and checks from
//! ring 3 what they are handed; the kernel checks its exit status and
//! that nothing stays allocated afterwards.

use super::uproc::run_to_exit;
use crate::ktest::{check, Test, TestResult};
use alloc::string::String;
use nt::status::*;
use nt::NtStatus;

/// Runs `ntrsexc.exe <command>` to its end (20 s at most).
fn run(command: &str) -> Result<(NtStatus, String), &'static str> {
    let commit = crate::mm::process::COMMIT.used();
    let r = run_to_exit("ntrsexc.exe", command, 20_000).map_err(|e| match e {
        STATUS_OBJECT_NAME_NOT_FOUND => "winload did not hand over ntrsexc.exe",
        STATUS_TIMEOUT => "the process did not end within 20 s",
        _ => "creating the process failed",
    })?;
    if crate::mm::process::COMMIT.used() != commit {
        return Err("commit charge not returned after the process ended");
    }
    Ok(r)
}

/// A command whose checks must all pass (exit status 0).
fn all_pass(command: &str) -> TestResult {
    let (status, out) = run(command)?;
    if status != STATUS_SUCCESS {
        crate::dbg_println!(
            "ntrsexc {command}: exit status {:#x}; output:\n{out}",
            status.as_u32()
        );
        return Err("ntrsexc's checks failed (exit status 0xE00000nn names the check)");
    }
    check(
        out.contains("all checks passed"),
        "ntrsexc's output lacks its last line",
    )
}

fn t_dispatch() -> TestResult {
    all_pass("dispatch")
}

fn t_kernel_memory() -> TestResult {
    all_pass("kernel")
}

fn t_apc() -> TestResult {
    // The APC left queued at exit is flushed and freed with the thread:
    // the user-APC tag's outstanding count comes back (nothing else
    // allocates under this tag).
    use crate::ex::xpool::tag_usage;
    use ::mm::pool::PoolType;
    let tag = u32::from_le_bytes(super::xcpt::USER_APC_TAG);
    let before = tag_usage(PoolType::NonPaged, tag);
    all_pass("apc")?;
    let after = tag_usage(PoolType::NonPaged, tag);
    check(
        after.allocs >= before.allocs + 5,
        "user APCs were not allocated under their tag",
    )?;
    check(
        after.outstanding() == before.outstanding(),
        "user APC blocks left allocated",
    )
}

fn t_unhandled() -> TestResult {
    let (status, out) = run("unhandled")?;
    check(out.contains("declined"), "nothing displayed before raising")?;
    check(
        status.as_u32() == 0xE000_1234,
        "a declined exception did not end the process with its code",
    )
}

fn t_bad_stack() -> TestResult {
    let (status, _) = run("badstack")?;
    check(
        status == STATUS_BREAKPOINT,
        "an exception with an unusable stack did not end the process with its code",
    )
}

pub const TESTS: &[Test] = &[
    ("user.exc_dispatch", t_dispatch),
    ("user.exc_kernel_memory_access_violation", t_kernel_memory),
    ("user.exc_unhandled_second_chance", t_unhandled),
    ("user.exc_bad_stack", t_bad_stack),
    ("user.apc_delivery", t_apc),
];
