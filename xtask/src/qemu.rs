//! Running ntrs in QEMU: interactive (serial relayed to the terminal, input
//! lines typed at each `kd> ` prompt), boot tests and benchmarks.

use crate::{build_dir, Result, Tally};
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const PROMPT: &str = "kd> ";
/// isa-debug-exit value the kernel writes when every boot test passed (QEMU exits (v << 1) | 1).
const EXIT_TESTS_PASSED: i32 = (0x10 << 1) | 1;

fn spawn(img: &Path, load_options: &str, smp: u32, extra: &[&str]) -> Result<Child> {
    let vars = build_dir().join("OVMF_VARS.fd");
    if !vars.exists() {
        std::fs::copy(OVMF_VARS, &vars).map_err(|e| format!("{OVMF_VARS}: {e}"))?;
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35", "-m", "512M", "-smp"])
        .arg(smp.to_string())
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args(["-net", "none", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,file={}", vars.display()))
        .arg("-drive")
        .arg(format!("format=raw,file={}", img.display()))
        .args(extra);
    // Extra QEMU arguments for experiments (e.g. NTRS_QEMU_ARGS="-cpu max").
    if let Ok(more) = std::env::var("NTRS_QEMU_ARGS") {
        cmd.args(more.split_whitespace());
    }
    if !load_options.is_empty() {
        cmd.arg("-fw_cfg").arg(format!(
            "name=opt/org.ntrs/loadoptions,string={load_options}"
        ));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))
}

enum Event {
    Prompt,
    /// The boot manager's menu is on the screen.
    Menu,
    Exited,
}

/// Printed by the boot manager after its menu.
const MENU_END: &str = "(kernel tests)";

/// Relays QEMU's serial output to `echo` while collecting it; sends `Prompt`
/// whenever the output ends with `kd> `.
fn pump_output(
    mut child_out: impl Read + Send + 'static,
    echo: bool,
) -> (mpsc::Receiver<Event>, std::thread::JoinHandle<String>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        loop {
            match child_out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if echo {
                        let _ = stdout.write_all(&buf[..n]);
                        let _ = stdout.flush();
                    }
                    let before = all.len();
                    all.extend_from_slice(&buf[..n]);
                    if all.ends_with(PROMPT.as_bytes()) {
                        let _ = tx.send(Event::Prompt);
                    }
                    let from = before.saturating_sub(MENU_END.len());
                    if all[from..]
                        .windows(MENU_END.len())
                        .any(|w| w == MENU_END.as_bytes())
                    {
                        let _ = tx.send(Event::Menu);
                    }
                }
            }
        }
        let _ = tx.send(Event::Exited);
        String::from_utf8_lossy(&all).into_owned()
    });
    (rx, handle)
}

/// Boots with `lines` typed one per `kd> ` prompt. Returns (exit code, output).
/// When the lines run out, the next prompt ends the machine.
fn run_session(
    img: &Path,
    load_options: &str,
    smp: u32,
    extra: &[&str],
    lines: &mut dyn Iterator<Item = String>,
    echo: bool,
    timeout: Duration,
) -> Result<(i32, String)> {
    let mut child = spawn(img, load_options, smp, extra)?;
    let mut stdin = child.stdin.take().unwrap();
    let (rx, reader) = pump_output(child.stdout.take().unwrap(), echo);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Prompt) => match lines.next() {
                Some(line) => {
                    if stdin.write_all(format!("{line}\r").as_bytes()).is_err() {
                        break;
                    }
                    let _ = stdin.flush();
                }
                None => {
                    if echo {
                        println!("\nxtask: input ended without `shutdown`; stopping the machine");
                    }
                    let _ = child.kill();
                    break;
                }
            },
            Ok(Event::Menu) => {
                if let Some(key) = std::env::var("NTRS_BOOT_MENU_KEY").ok().filter(|_| echo) {
                    let _ = stdin.write_all(key.as_bytes());
                    let _ = stdin.flush();
                }
            }
            Ok(Event::Exited) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let out = reader.join().unwrap_or_default();
    if timed_out {
        return Err(format!("QEMU timed out after {timeout:?}"));
    }
    Ok((status.code().unwrap_or(-1), out))
}

/// `cargo xtask run`: serial on stdio; stdin lines are typed at each prompt.
pub fn run_interactive(img: &Path, load_options: &str) -> Result<u8> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines().map_while(|l| l.ok());
    // Processors: NTRS_SMP (default 2).
    let smp = std::env::var("NTRS_SMP")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &u32| (1..=16).contains(&n))
        .unwrap_or(2);
    let (code, _) = run_session(
        img,
        load_options,
        smp,
        &[],
        &mut lines,
        true,
        Duration::from_secs(24 * 3600),
    )?;
    Ok(code.clamp(0, 255) as u8)
}

/// Every `KTEST <name> PASS|FAIL ...` line the kernel printed.
fn ktest_lines(out: &str) -> Vec<(String, bool, String)> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim_end_matches('\r');
            let rest = l.strip_prefix("KTEST ")?;
            let mut it = rest.splitn(3, ' ');
            let name = it.next()?.to_string();
            let verdict = it.next()?;
            let detail = it.next().unwrap_or("").to_string();
            match verdict {
                "PASS" => Some((name, true, detail)),
                "FAIL" => Some((name, false, detail)),
                _ => None,
            }
        })
        .collect()
}

fn check(tally: &mut Tally, errors: &mut Vec<String>, name: &str, ok: bool, why: &str) {
    if ok {
        println!("BOOTTEST {name} PASS");
        tally.passed += 1;
    } else {
        println!("BOOTTEST {name} FAIL {why}");
        tally.failed += 1;
        errors.push(format!("{name}: {why}"));
    }
}

/// Boot tests: the in-kernel test run, then the kd shell driven by a script.
pub fn boot_tests(img: &Path, tally: &mut Tally, errors: &mut Vec<String>) {
    // 1. In-kernel tests (`/TESTS`) on one and on four processors: one KTEST
    //    line per test, then isa-debug-exit.
    // The four-processor run uses `-cpu max`, whose XSAVE (x87/SSE/AVX)
    // context switches the extended-state test then exercises.
    for (smp, prefix, extra) in [
        (1, "kernel", &[][..]),
        (4, "kernel-smp4", &["-cpu", "max"][..]),
    ] {
        match run_session(
            img,
            "/TESTS",
            smp,
            extra,
            &mut std::iter::empty(),
            false,
            Duration::from_secs(300),
        ) {
            Ok((code, out)) => {
                let results = ktest_lines(&out);
                for (name, ok, detail) in &results {
                    check(tally, errors, &format!("{prefix}/{name}"), *ok, detail);
                }
                let summary_ok = code == EXIT_TESTS_PASSED && !results.is_empty();
                if !summary_ok {
                    println!("{out}");
                }
                check(
                    tally,
                    errors,
                    &format!("{prefix}/exit-status"),
                    summary_ok,
                    &format!("QEMU exit code {code}, {} KTEST lines", results.len()),
                );
            }
            Err(e) => check(tally, errors, &format!("{prefix}/boot"), false, &e),
        }
    }

    // 2. The boot manager's menu: choosing the test entry runs the kernel tests.
    boot_menu_test(img, tally, errors);

    // 3. A bad pool free stops the system with BAD_POOL_HEADER (0x19); the
    //    stop screen then breaks into kd, where `shutdown` ends the run.
    let mut lines = ["shutdown".to_string()].into_iter();
    match run_session(
        img,
        "/CRASHTEST=BADPOOLFREE",
        1,
        &[],
        &mut lines,
        false,
        Duration::from_secs(300),
    ) {
        Ok((code, out)) => {
            let ok = out.contains("*** STOP: 0x00000019 (BAD_POOL_HEADER)") && code == 0;
            if !ok {
                println!("{out}");
            }
            check(
                tally,
                errors,
                "kernel/bad-pool-free-bugchecks-0x19",
                ok,
                &format!("exit code {code}; no BAD_POOL_HEADER stop screen"),
            );
        }
        Err(e) => check(tally, errors, "kernel/bad-pool-free-boot", false, &e),
    }

    // 3b. An infallible allocation with the pools and the must-succeed
    //     reserve exhausted stops with MUST_SUCCEED_POOL_EMPTY (0x41).
    let mut lines = ["shutdown".to_string()].into_iter();
    match run_session(
        img,
        "/CRASHTEST=POOLEMPTY",
        1,
        &[],
        &mut lines,
        false,
        Duration::from_secs(300),
    ) {
        Ok((code, out)) => {
            let ok = out.contains("*** STOP: 0x00000041 (MUST_SUCCEED_POOL_EMPTY)") && code == 0;
            if !ok {
                println!("{out}");
            }
            check(
                tally,
                errors,
                "kernel/pool-empty-bugchecks-0x41",
                ok,
                &format!("exit code {code}; no MUST_SUCCEED_POOL_EMPTY stop screen"),
            );
        }
        Err(e) => check(tally, errors, "kernel/pool-empty-boot", false, &e),
    }

    // 4. The kd shell driven through the console, as `printf ... | cargo xtask run` does.
    let script = [
        "dg 10 50",
        "lm",
        "!pcr",
        "!irql",
        "r",
        "!object \\",
        "!running",
        "~1",
        "!prcb",
        "!thread",
        "!pte fffff80000400000",
        "!acl D:(A;;GA;;;SY)",
        "!reg querykey \\REGISTRY\\MACHINE",
        "!reg querykey \\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services",
        ".crash",
        "shutdown",
    ];
    let mut lines = script.iter().map(|s| s.to_string());
    match run_session(img, "", 2, &[], &mut lines, false, Duration::from_secs(300)) {
        Ok((code, out)) => {
            let has = |s: &str| out.contains(s);
            check(
                tally,
                errors,
                "kd/shutdown-exits-0",
                code == 0,
                &format!("exit code {code}"),
            );
            check(
                tally,
                errors,
                "kd/dg",
                has("0010 00000000`00000000 00000000`00000000 Code RE Ac 0 Nb By P  Lo 0000029b")
                    && has("0018 00000000`00000000 00000000`00000000 Data RW Ac 0 Bg By P  Nl 00000493")
                    && has("0020 00000000`00000000 00000000`ffffffff Code RE Ac 3 Bg Pg P  Nl 00000cfb")
                    && has("0028 00000000`00000000 00000000`ffffffff Data RW Ac 3 Bg Pg P  Nl 00000cf3")
                    && has("0030 00000000`00000000 00000000`00000000 Code RE Ac 3 Nb By P  Lo 000002fb")
                    && has("TSS32 Busy 0 Nb By P  Nl 0000008b")
                    && has("0050 00000000`00000000 00000000`00003c00 Data RW Ac 3 Bg By P  Nl 000004f3"),
                "dg 10 50 output differs from Windows' layout",
            );
            check(
                tally,
                errors,
                "kd/lm",
                has("ntoskrnl.exe") && has("fffff800`00400000"),
                "lm does not list ntoskrnl",
            );
            check(
                tally,
                errors,
                "kd/pcr",
                has("KPCR for Processor 0 at"),
                "!pcr missing",
            );
            check(
                tally,
                errors,
                "kd/object-root",
                has("Directory                 ObjectTypes")
                    && has("Directory                 GLOBAL??"),
                "!object \\ does not list the root directory",
            );
            check(
                tally,
                errors,
                "kd/running",
                has("System Processors:  (0000000000000003)")
                    && out
                        .lines()
                        .any(|l| l.trim_start().starts_with("1 ") && l.contains("fffff8")),
                "!running does not show both processors",
            );
            check(
                tally,
                errors,
                "kd/prcb-after-processor-switch",
                has("Switched to processor 1") && has("PRCB for Processor 1 at"),
                "~1 then !prcb did not show processor 1",
            );
            check(
                tally,
                errors,
                "kd/thread",
                has("RUNNING on processor 0") && has("Context Switch Count"),
                "!thread does not describe the kd thread",
            );
            check(
                tally,
                errors,
                "kd/pte",
                has("PXE at FFFFF6FB7DBEDF80    PPE at FFFFF6FB7DBF0000    PDE at FFFFF6FB7E000010    PTE at FFFFF6FC00002000")
                    && out.lines().any(|l| l.starts_with("pfn ") && l.trim_end().ends_with("-G-----KR-V")),
                "!pte of the kernel base does not walk the self-map to a global read-only page",
            );
            check(
                tally,
                errors,
                "kd/acl",
                has("ACL is: ->Ace[0]: ->AceType: ACCESS_ALLOWED_ACE_TYPE")
                    && has("ACL is: ->Ace[0]: ->SID: S-1-5-18"),
                "!acl does not show the ACE",
            );
            check(
                tally,
                errors,
                "kd/reg-querykey",
                has("Found KCB") && has("\\REGISTRY\\MACHINE") && has("HARDWARE"),
                "!reg querykey \\REGISTRY\\MACHINE does not list its subkeys",
            );
            check(
                tally,
                errors,
                "kd/reg-services-from-the-system-hive",
                has("ControlSet001\\Services") && has("Beep") && has("Ntfs"),
                "!reg querykey ...\\CurrentControlSet\\Services does not list the SYSTEM hive's services",
            );
            check(
                tally,
                errors,
                "kd/crash",
                has("*** STOP: 0x000000E2 (MANUALLY_INITIATED_CRASH)"),
                "no stop screen",
            );
            if tally.failed > 0 {
                println!("{out}");
            }
        }
        Err(e) => check(tally, errors, "kd/boot", false, &e),
    }
}

/// `cargo xtask bench`: boot-time line first, then the in-kernel benchmarks,
/// in TCG wall-clock time; then the same benchmarks under
/// `-icount shift=0,sleep=off`, where one guest instruction is one virtual
/// nanosecond, reported as `<name>_icount <n> instructions`.
pub fn bench(img: &Path) -> Result<()> {
    let mut found = false;
    for icount in [false, true] {
        let extra: &[&str] = if icount {
            &["-icount", "shift=0,sleep=off"]
        } else {
            &[]
        };
        let mut lines = ["shutdown".to_string()].into_iter();
        let (_, out) = run_session(
            img,
            "/BENCH",
            2,
            extra,
            &mut lines,
            false,
            Duration::from_secs(900),
        )?;
        for l in out.lines() {
            let l = l.trim_end_matches('\r');
            let Some(rest) = l.strip_prefix("BENCH ") else {
                continue;
            };
            found = true;
            let parts: Vec<&str> = rest.split_whitespace().collect();
            match (icount, parts.as_slice()) {
                (false, _) => println!("{l}"),
                // Only per-operation times convert to instruction counts.
                (true, [name, v, "ns"]) => println!("BENCH {name}_icount {v} instructions"),
                (true, _) => {}
            }
        }
    }
    if found {
        Ok(())
    } else {
        Err("no BENCH lines in the kernel's output".to_string())
    }
}

/// Boots and picks the boot manager's second entry ("ntrs (kernel tests)")
/// by typing `2` at its menu; the kernel must then run the boot tests.
pub fn boot_menu_test(img: &Path, tally: &mut Tally, errors: &mut Vec<String>) {
    let r = (|| -> Result<(i32, String)> {
        let mut child = spawn(img, "", 1, &[])?;
        let mut stdin = child.stdin.take().unwrap();
        let (rx, reader) = pump_output(child.stdout.take().unwrap(), false);
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Menu) => {
                    let _ = stdin.write_all(b"2");
                    let _ = stdin.flush();
                }
                Ok(Event::Prompt) => {
                    let _ = stdin.write_all(b"shutdown\r");
                }
                Ok(Event::Exited) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    break;
                }
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        Ok((
            status.code().unwrap_or(-1),
            reader.join().unwrap_or_default(),
        ))
    })();
    match r {
        Ok((code, out)) => {
            let ok = code == EXIT_TESTS_PASSED
                && out.contains("starting {6b9a7d36-0c2f-4a39-8d1c-4e8c1b2a7f02}");
            check(
                tally,
                errors,
                "boot/bcd-menu-picks-the-test-entry",
                ok,
                &format!("exit code {code}; the BCD menu choice did not start the kernel tests"),
            );
        }
        Err(e) => check(tally, errors, "boot/bcd-menu", false, &e),
    }
}

/// `cargo xtask stress`: boots with `/STRESS=<secs>` and checks the verdict.
pub fn stress(img: &Path, secs: u64, smp: u32) -> Result<u8> {
    let (code, out) = run_session(
        img,
        &format!("/STRESS={secs}"),
        smp,
        &[],
        &mut std::iter::empty(),
        false,
        Duration::from_secs(secs * 20 + 300),
    )?;
    let line = out
        .lines()
        .find(|l| l.starts_with("STRESS "))
        .map(|l| l.trim_end_matches('\r').to_string());
    match line {
        Some(l) => println!("{l}"),
        None => println!("{out}"),
    }
    Ok(if code == EXIT_TESTS_PASSED { 0 } else { 1 })
}
