//! Running ntrs in QEMU: interactive (serial relayed to the terminal, input
//! lines typed at each `kd> ` prompt), boot tests and benchmarks.

use crate::{build_dir, Result, Tally};
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The firmware: Debian's OVMF in one image (code and a RAM variable store,
/// so no boot leaves state behind for the next).
const OVMF_COMBINED: &str = "/usr/share/ovmf/OVMF.fd";
/// The split OVMF (flash code + a writable variable file), used when the
/// combined image is missing or `NTRS_FIRMWARE=pflash` asks for it.
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The TPM's TIS registers (`PcdTpmBaseAddress`). OVMF probes them at boot;
/// where nothing answers, reads return 0, which looks like a TPM that never
/// becomes valid, and OVMF waits out the TIS timeouts (about 2 s under TCG).
/// Registers that read 0xFF mean "no TPM" and end the probe at once.
const TPM_TIS_BASE: u64 = 0xFED4_0000;
const PROMPT: &str = "kd> ";
/// isa-debug-exit value the kernel writes when every boot test passed (QEMU exits (v << 1) | 1).
const EXIT_TESTS_PASSED: i32 = (0x10 << 1) | 1;

/// The firmware arguments. By default `-bios` with OVMF placed at the top
/// of a ROM that reaches down to the TPM's registers and is 0xFF below
/// OVMF: QEMU maps a `-bios` image ending at 4 GiB, so the padding covers
/// 0xFED40000-, the TPM probe reads 0xFF ("not present") and firmware
/// start-up is about 2 s shorter. Local APIC, IOAPIC and HPET lie outside
/// the padding or take precedence over it.
fn firmware_args() -> Result<Vec<String>> {
    let pflash = std::env::var("NTRS_FIRMWARE").is_ok_and(|v| v == "pflash");
    if !pflash {
        if let Ok(ovmf) = std::fs::read(OVMF_COMBINED) {
            let size = ((1u64 << 32) - TPM_TIS_BASE) as usize;
            if ovmf.len() < size {
                let path = build_dir().join("OVMF-notpm.fd");
                let mut image = vec![0xFFu8; size - ovmf.len()];
                image.extend_from_slice(&ovmf);
                if std::fs::read(&path).ok().as_deref() != Some(&image[..]) {
                    std::fs::create_dir_all(build_dir()).map_err(|e| e.to_string())?;
                    std::fs::write(&path, &image)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                return Ok(vec!["-bios".into(), path.display().to_string()]);
            }
        }
    }
    let vars = build_dir().join("OVMF_VARS.fd");
    if !vars.exists() {
        std::fs::copy(OVMF_VARS, &vars).map_err(|e| format!("{OVMF_VARS}: {e}"))?;
    }
    Ok(vec![
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", vars.display()),
    ])
}

/// Which BCD entry the boot manager starts.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Entry {
    /// Show the menu and wait the BCD timeout: a person at a terminal chooses.
    Menu,
    /// The default entry at once (one-time boot sequence).
    Default,
    /// The kernel-tests entry (its BCD load options say `/TESTS`) at once.
    Tests,
}

/// How to boot: BCD entry, extra load options (fw_cfg), processors and
/// extra QEMU arguments.
#[derive(Clone, Copy)]
pub struct Boot<'a> {
    pub entry: Entry,
    pub load_options: &'a str,
    pub smp: u32,
    pub extra: &'a [&'a str],
}

impl<'a> Boot<'a> {
    /// The default entry with `load_options` on `smp` processors.
    pub fn new(load_options: &'a str, smp: u32) -> Self {
        Boot {
            entry: Entry::Default,
            load_options,
            smp,
            extra: &[],
        }
    }
}

/// The QEMU command line of a boot: only the devices ntrs uses
/// (`-nodefaults`: no VGA, no NIC and its option ROM, no CD-ROM), the
/// serial port on stdio, the disk on the q35's AHCI port, the debug-exit
/// port; the one-time boot sequence and load options through fw_cfg.
fn qemu_command(img: &Path, boot: &Boot) -> Result<Command> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35", "-m", "512M", "-smp"])
        .arg(boot.smp.to_string())
        .args(["-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(firmware_args()?)
        .arg("-drive")
        .arg(format!("format=raw,file={}", img.display()))
        .args(boot.extra);
    // Extra QEMU arguments for experiments (e.g. NTRS_QEMU_ARGS="-cpu max").
    if let Ok(more) = std::env::var("NTRS_QEMU_ARGS") {
        cmd.args(more.split_whitespace());
    }
    let guid = match boot.entry {
        Entry::Menu => None,
        Entry::Default => Some(crate::image::BCD_DEFAULT_ENTRY),
        Entry::Tests => Some(crate::image::BCD_TESTS_ENTRY),
    };
    if let Some(g) = guid {
        cmd.arg("-fw_cfg")
            .arg(format!("name=opt/org.ntrs/bootsequence,string={g}"));
    }
    if !boot.load_options.is_empty() {
        cmd.arg("-fw_cfg").arg(format!(
            "name=opt/org.ntrs/loadoptions,string={}",
            boot.load_options
        ));
    }
    Ok(cmd)
}

fn spawn(img: &Path, boot: &Boot) -> Result<Child> {
    qemu_command(img, boot)?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))
}

enum Event {
    Prompt,
    /// The boot manager's menu is on the screen.
    Menu,
    /// The boot manager has chosen an entry (the menu is over).
    Chosen,
    /// The kernel has started its boot tests (`KTEST-BEGIN`).
    TestsStarted,
    Exited,
}

/// The boot manager's menu header.
const MENU_START: &str = "Windows Boot Manager: choose";
/// The boot manager's line after the choice.
const CHOSEN: &str = "bootmgr: BCD: ";
/// The kernel's first line of a `/TESTS` run.
const TESTS_STARTED: &str = "KTEST-BEGIN ";

/// Relays QEMU's serial output to `echo` while collecting it; sends `Prompt`
/// whenever the output ends with `kd> `, `Menu` and `Chosen` once each.
fn pump_output(
    mut child_out: impl Read + Send + 'static,
    echo: bool,
) -> (mpsc::Receiver<Event>, std::thread::JoinHandle<String>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        let mut marks = [(MENU_START, false), (CHOSEN, false), (TESTS_STARTED, false)];
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
                    for (i, (mark, seen)) in marks.iter_mut().enumerate() {
                        let from = before.saturating_sub(mark.len());
                        if !*seen
                            && all[from..]
                                .windows(mark.len())
                                .any(|w| w == mark.as_bytes())
                        {
                            *seen = true;
                            let _ = tx.send(match i {
                                0 => Event::Menu,
                                1 => Event::Chosen,
                                _ => Event::TestsStarted,
                            });
                        }
                    }
                }
            }
        }
        let _ = tx.send(Event::Exited);
        String::from_utf8_lossy(&all).into_owned()
    });
    (rx, handle)
}

/// What a boot printed and how it ended.
pub struct Session {
    /// QEMU's exit status (isa-debug-exit or `shutdown`).
    pub code: i32,
    /// Everything on the serial port.
    pub out: String,
    /// From QEMU's start to the first `kd> ` prompt.
    pub first_prompt: Option<Duration>,
}

/// Boots with `lines` typed one per `kd> ` prompt. When the lines run out,
/// the next prompt ends the machine. With `menu_from_lines`, the first line
/// read while the boot manager's menu is up answers the menu when it is a
/// single digit (else it waits for the first prompt).
fn run_session(
    img: &Path,
    boot: &Boot,
    lines: &mut dyn Iterator<Item = String>,
    echo: bool,
    timeout: Duration,
) -> Result<Session> {
    run_session_menu(img, boot, lines, echo, false, timeout)
}

fn run_session_menu(
    img: &Path,
    boot: &Boot,
    lines: &mut dyn Iterator<Item = String>,
    echo: bool,
    menu_from_lines: bool,
    timeout: Duration,
) -> Result<Session> {
    let started = Instant::now();
    let mut child = spawn(img, boot)?;
    let mut stdin = child.stdin.take().unwrap();
    let (rx, reader) = pump_output(child.stdout.take().unwrap(), echo);
    let deadline = started + timeout;
    let mut timed_out = false;
    let mut first_prompt = None;
    // A line read at the menu that turned out to be for kd.
    let mut pending: Option<String> = None;
    // Events that arrived while a line was being read at the menu.
    let mut backlog = std::collections::VecDeque::new();
    let mut chosen = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match backlog.pop_front() {
            Some(e) => Ok(e),
            None => rx.recv_timeout(left),
        };
        match event {
            Ok(Event::Prompt) => {
                first_prompt.get_or_insert_with(|| started.elapsed());
                match pending.take().or_else(|| lines.next()) {
                    Some(line) => {
                        if stdin.write_all(format!("{line}\r").as_bytes()).is_err() {
                            break;
                        }
                        let _ = stdin.flush();
                    }
                    None => {
                        if echo {
                            println!(
                                "\nxtask: input ended without `shutdown`; stopping the machine"
                            );
                        }
                        let _ = child.kill();
                        break;
                    }
                }
            }
            Ok(Event::Menu) => {
                if let Some(key) = std::env::var("NTRS_BOOT_MENU_KEY").ok().filter(|_| echo) {
                    let _ = stdin.write_all(key.as_bytes());
                    let _ = stdin.flush();
                } else if menu_from_lines {
                    // Blocks until the person types a line; the boot
                    // manager meanwhile counts down its timeout.
                    let line = lines.next();
                    while let Ok(e) = rx.try_recv() {
                        chosen |= matches!(e, Event::Chosen);
                        backlog.push_back(e);
                    }
                    match line {
                        Some(l) if !chosen && l.trim().len() == 1 => {
                            let _ = stdin.write_all(l.trim().as_bytes());
                            let _ = stdin.flush();
                        }
                        // Too late for the menu, or not a choice: kd's first line.
                        l => pending = l,
                    }
                }
            }
            Ok(Event::Chosen) => chosen = true,
            Ok(Event::TestsStarted) => {}
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
        // The serial log's tail names what hung: without it a timeout
        // in CI cannot be diagnosed.
        let tail: Vec<&str> = out.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "QEMU timed out after {timeout:?}; the serial log ended:\n{}",
            tail.join("\n")
        ));
    }
    Ok(Session {
        code: status.code().unwrap_or(-1),
        out,
        first_prompt,
    })
}

/// `cargo xtask run`: serial on stdio; stdin lines are typed at each prompt.
/// On a terminal the boot manager shows its menu (a person can choose: type
/// the entry's digit and Enter, also before the menu appears); with
/// stdin from a pipe or file it starts the default entry at once.
pub fn run_interactive(img: &Path, load_options: &str) -> Result<u8> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut lines = stdin.lock().lines().map_while(|l| l.ok());
    // Processors: NTRS_SMP (default 2).
    let smp = std::env::var("NTRS_SMP")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &u32| (1..=16).contains(&n))
        .unwrap_or(2);
    let mut boot = Boot::new(load_options, smp);
    if tty || std::env::var("NTRS_BOOT_MENU_KEY").is_ok() {
        boot.entry = Entry::Menu;
    }
    let s = run_session_menu(
        img,
        &boot,
        &mut lines,
        true,
        tty,
        Duration::from_secs(24 * 3600),
    )?;
    Ok(s.code.clamp(0, 255) as u8)
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

/// Component prefixes every in-kernel test run must include at least one
/// test of; a whole table dropped from the kernel's `run_all` shows here.
const KTEST_COMPONENTS: &[&str] = &[
    "ke.", "hal.", "mm.", "ob.", "se.", "ex.", "cm.", "io.", "pnp.", "storage.", "user.", "ps.",
    "fs.", "cc.", "kd.",
];

/// What one `/TESTS` boot reported.
#[derive(Debug, Default)]
pub struct KtestRun {
    /// `KTEST <name> PASS|FAIL <detail>` lines, in order.
    pub results: Vec<(String, bool, String)>,
    /// `KTEST-BEGIN <n> tests`: how many tests the kernel's tables hold.
    pub listed: Option<usize>,
    /// `KTEST-SUMMARY <n> total, <p> passed, <f> failed`.
    pub summary: Option<(usize, usize, usize)>,
}

/// Parses the kernel's `/TESTS` output.
pub fn parse_ktest_run(out: &str) -> KtestRun {
    let mut run = KtestRun {
        results: ktest_lines(out),
        ..Default::default()
    };
    for l in out.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(rest) = l.strip_prefix("KTEST-BEGIN ") {
            run.listed = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(rest) = l.strip_prefix("KTEST-SUMMARY ") {
            let n: Vec<usize> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect();
            if let [total, passed, failed] = n[..] {
                run.summary = Some((total, passed, failed));
            }
        }
    }
    run
}

/// Checks that a `/TESTS` run is complete: the kernel announced its list and
/// printed its summary, every listed test reported exactly once, the summary
/// agrees with the lines, and every component has tests. `Err` says what is
/// wrong.
pub fn ktest_run_complete(run: &KtestRun) -> std::result::Result<(), String> {
    let listed = run
        .listed
        .ok_or("no KTEST-BEGIN line (the kernel did not list its tests)")?;
    let reported = run.results.len();
    let last = run.results.last().map(|r| r.0.as_str()).unwrap_or("none");
    let (total, passed, failed) = run.summary.ok_or_else(|| {
        format!("no KTEST-SUMMARY line: {reported} of {listed} tests reported, the last was {last}")
    })?;
    let mut names: Vec<&str> = run.results.iter().map(|r| r.0.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("test {} reported twice", w[0]));
    }
    if total != listed || reported != listed {
        return Err(format!(
            "the kernel lists {listed} tests, its summary counts {total}, {reported} reported"
        ));
    }
    let fails = run.results.iter().filter(|r| !r.1).count();
    if (passed, failed) != (reported - fails, fails) {
        return Err(format!(
            "summary says {passed} passed, {failed} failed; the KTEST lines say {} and {fails}",
            reported - fails
        ));
    }
    let missing: Vec<&str> = KTEST_COMPONENTS
        .iter()
        .copied()
        .filter(|c| !names.iter().any(|n| n.starts_with(c)))
        .collect();
    if !missing.is_empty() {
        return Err(format!("no tests of {}", missing.join(", ")));
    }
    Ok(())
}

/// One entry of the kernel's crash-test table (`CRASHTEST-ENTRY` lines).
#[derive(Debug, PartialEq)]
pub struct CrashEntry {
    pub name: String,
    pub stop_code: u32,
    /// Expected bugcheck parameters; `None` accepts any value.
    pub params: [Option<u64>; 4],
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
}

/// Parses the crash-test table the kernel prints in a `/TESTS` run:
/// `CRASHTEST-ENTRY <name> 0x<code> <p1> <p2> <p3> <p4>` lines (`*` for any
/// parameter), then `CRASHTEST-COUNT <n>`, which must match.
pub fn parse_crash_table(out: &str) -> std::result::Result<Vec<CrashEntry>, String> {
    let mut entries = Vec::new();
    let mut count = None;
    for l in out.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(rest) = l.strip_prefix("CRASHTEST-ENTRY ") {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let [name, code, p @ ..] = w.as_slice() else {
                return Err(format!("bad line '{l}'"));
            };
            if p.len() != 4 {
                return Err(format!("bad line '{l}'"));
            }
            let mut params = [None; 4];
            for (slot, v) in params.iter_mut().zip(p) {
                if *v != "*" {
                    *slot = Some(hex(v).ok_or_else(|| format!("bad parameter in '{l}'"))?);
                }
            }
            entries.push(CrashEntry {
                name: name.to_string(),
                stop_code: hex(code)
                    .and_then(|c| u32::try_from(c).ok())
                    .ok_or_else(|| format!("bad stop code in '{l}'"))?,
                params,
            });
        } else if let Some(rest) = l.strip_prefix("CRASHTEST-COUNT ") {
            count = rest.trim().parse::<usize>().ok();
        }
    }
    match count {
        None => Err("no CRASHTEST-COUNT line (the kernel did not print its crash tests)".into()),
        Some(n) if n != entries.len() => Err(format!(
            "CRASHTEST-COUNT says {n}, {} CRASHTEST-ENTRY lines",
            entries.len()
        )),
        Some(0) => Err("the crash-test table is empty".into()),
        Some(_) => Ok(entries),
    }
}

/// The first stop screen in `out`: its code and four parameters.
pub fn parse_stop(out: &str) -> Option<(u32, [u64; 4])> {
    let mut lines = out.lines().map(|l| l.trim_end_matches('\r'));
    while let Some(l) = lines.next() {
        let Some(rest) = l.strip_prefix("*** STOP: ") else {
            continue;
        };
        let code = hex(rest.split_whitespace().next()?)?;
        let params: Vec<u64> = lines
            .next()?
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .filter_map(hex)
            .collect();
        return Some((u32::try_from(code).ok()?, params.try_into().ok()?));
    }
    None
}

/// Whether a stop matches a crash-test entry; `Err` says how it differs.
pub fn stop_matches(
    e: &CrashEntry,
    stop: Option<(u32, [u64; 4])>,
) -> std::result::Result<(), String> {
    let (code, params) = stop.ok_or("no `*** STOP` line")?;
    if code != e.stop_code {
        return Err(format!(
            "stopped with 0x{code:08X}, expected 0x{:08X}",
            e.stop_code
        ));
    }
    for (i, (want, got)) in e.params.iter().zip(params).enumerate() {
        if let Some(w) = want {
            if *w != got {
                return Err(format!(
                    "parameter {} is 0x{got:X}, expected 0x{w:X}",
                    i + 1
                ));
            }
        }
    }
    Ok(())
}

/// Boots `/CRASHTEST=LIST` and reads the kernel's crash-test table.
pub fn crash_table_from_kernel(img: &Path) -> std::result::Result<Vec<CrashEntry>, String> {
    let mut lines = ["shutdown".to_string()].into_iter();
    let s = run_session(
        img,
        &Boot::new("/CRASHTEST=LIST", 1),
        &mut lines,
        false,
        Duration::from_secs(180),
    )?;
    parse_crash_table(&s.out)
}

/// Boots `/CRASHTEST=<name>` for every entry of the kernel's table and checks
/// the stop screen, then that kd's `shutdown` ends the machine with status 0.
pub fn crash_tests(
    img: &Path,
    table: &std::result::Result<Vec<CrashEntry>, String>,
    tally: &mut Tally,
    errors: &mut Vec<String>,
) {
    let entries = match table {
        Ok(e) => e,
        Err(e) => return check(tally, errors, "crash/table", false, e),
    };
    for e in entries {
        let name = format!("crash/{}", e.name);
        let mut lines = ["shutdown".to_string()].into_iter();
        match run_session(
            img,
            &Boot::new(&format!("/CRASHTEST={}", e.name), 2),
            &mut lines,
            false,
            Duration::from_secs(180),
        ) {
            Ok(Session { code, out, .. }) => {
                let mut verdict = stop_matches(e, parse_stop(&out));
                if verdict.is_ok() && code != 0 {
                    verdict = Err(format!("kd's shutdown after the stop exited with {code}"));
                }
                if verdict.is_err() {
                    println!("{out}");
                }
                let why = verdict.err().unwrap_or_default();
                check(tally, errors, &name, why.is_empty(), &why);
            }
            Err(err) => check(tally, errors, &name, false, &err),
        }
    }
}

/// The `/TESTS` configurations of `cargo xtask test`: one processor with
/// QEMU's default CPU model, and four with `-cpu max`, whose XSAVE
/// (x87/SSE/AVX) context switches the extended-state test then exercises.
pub const KTEST_CONFIGS: &[(u32, &[&str])] = &[(1, &[]), (4, &["-cpu", "max"])];

/// Boots the in-kernel tests (`/TESTS`) once per configuration `(processors,
/// extra QEMU arguments)`: one KTEST line per test, then isa-debug-exit.
/// Each line becomes `BOOTTEST smp<n>/<name>`, and `smp<n>/complete` checks
/// that every test the kernel lists reported (and that every run reported
/// the same set). Returns the crash-test table the first run printed.
pub fn ktest_runs(
    img: &Path,
    configs: &[(u32, &[&str])],
    tally: &mut Tally,
    errors: &mut Vec<String>,
) -> std::result::Result<Vec<CrashEntry>, String> {
    let mut crash_table = Err("the /TESTS run did not boot".to_string());
    let mut first_names: Option<Vec<String>> = None;
    for &(smp, extra) in configs {
        let prefix = format!("smp{smp}");
        // The BCD's kernel-tests entry, named by a one-time boot sequence:
        // its own load options say /TESTS.
        let boot = Boot {
            entry: Entry::Tests,
            load_options: "",
            smp,
            extra,
        };
        match run_session(
            img,
            &boot,
            &mut std::iter::empty(),
            false,
            Duration::from_secs(300),
        ) {
            Ok(Session { code, out, .. }) => {
                let run = parse_ktest_run(&out);
                for (name, ok, detail) in &run.results {
                    check(tally, errors, &format!("{prefix}/{name}"), *ok, detail);
                }
                let mut names: Vec<String> = run.results.iter().map(|r| r.0.clone()).collect();
                names.sort();
                let mut verdict = ktest_run_complete(&run);
                if verdict.is_ok() && code != EXIT_TESTS_PASSED {
                    verdict = Err(format!("QEMU exit code {code}"));
                }
                if let (Ok(()), Some(first)) = (&verdict, &first_names) {
                    if *first != names {
                        let odd: Vec<&String> = names
                            .iter()
                            .filter(|n| !first.contains(n))
                            .chain(first.iter().filter(|n| !names.contains(n)))
                            .collect();
                        verdict = Err(format!("the runs differ in {odd:?}"));
                    }
                }
                if verdict.is_err() {
                    println!("{out}");
                }
                let why = verdict.err().unwrap_or_default();
                check(
                    tally,
                    errors,
                    &format!("{prefix}/complete"),
                    why.is_empty(),
                    &why,
                );
                if first_names.is_none() {
                    // Named by the boot sequence: no menu, no wait.
                    check(
                        tally,
                        errors,
                        "boot/bootsequence-starts-the-test-entry-without-menu",
                        !out.contains(MENU_START)
                            && out.contains(&format!("starting {}", crate::image::BCD_TESTS_ENTRY)),
                        "the boot manager showed its menu or started another entry",
                    );
                    crash_table = parse_crash_table(&out);
                    first_names = Some(names);
                }
            }
            Err(e) => check(tally, errors, &format!("{prefix}/boot"), false, &e),
        }
    }
    crash_table
}

/// The two-boot registry test (issue 14, "Registry on disk"): boot 1 sets
/// `SYSTEM\NtrsPersist` `Token` (the kernel test `cm.persist.*` with
/// `/CMSET=`), flushes it and ends with the orderly shutdown; on the host the
/// system volume must pass the NTFS checker and `ntfsfix -n`, and hivex must
/// read the token from the SYSTEM hive taken out of the image; boot 2 must
/// find the token (`/CMEXPECT=`) and set another, which the host reads again.
pub fn hive_persistence_test(img: &Path, tally: &mut Tally, errors: &mut Vec<String>) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tokens = [
        format!("boot1-{}-{stamp}", std::process::id()),
        format!("boot2-{}-{stamp}", std::process::id()),
    ];
    for (i, token) in tokens.iter().enumerate() {
        let n = i + 1;
        let mut options = format!("/TESTFILTER=cm.persist. /CMSET={token}");
        if i > 0 {
            options.push_str(&format!(" /CMEXPECT={}", tokens[i - 1]));
        }
        let boot = Boot {
            entry: Entry::Tests,
            load_options: &options,
            smp: 1,
            extra: &[],
        };
        let verdict = match run_session(
            img,
            &boot,
            &mut std::iter::empty(),
            false,
            Duration::from_secs(120),
        ) {
            Ok(Session { code, out, .. }) => {
                let run = parse_ktest_run(&out);
                let failed: Vec<&(String, bool, String)> =
                    run.results.iter().filter(|r| !r.1).collect();
                if run.results.is_empty() {
                    Err("no cm.persist test ran".to_string())
                } else if let Some(f) = failed.first() {
                    Err(format!("{} failed: {}", f.0, f.2))
                } else if code != EXIT_TESTS_PASSED {
                    Err(format!("QEMU exit code {code}"))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        };
        let why = verdict.err().unwrap_or_default();
        check(
            tally,
            errors,
            &format!("registry/hive-persistence-boot{n}"),
            why.is_empty(),
            &why,
        );
        let (volume, hive) = crate::image::check_volume_and_read_value(
            img,
            "Windows/System32/config/SYSTEM",
            "\\NtrsPersist",
            "Token",
        );
        check(
            tally,
            errors,
            &format!("registry/volume-clean-after-boot{n}"),
            volume.is_ok(),
            volume.as_ref().err().map_or("", |e| e.as_str()),
        );
        let detail = match &hive {
            Ok(v) => format!("hivexget returned '{v}', expected '{token}'"),
            Err(e) => e.clone(),
        };
        check(
            tally,
            errors,
            &format!("registry/hivex-reads-the-value-of-boot{n}"),
            hive.as_deref() == Ok(token.as_str()),
            &detail,
        );
        // The hive cm.persist.saved_and_loaded_hive made with NtSaveKey, loaded,
        // changed and unloaded: its root's Token.
        let (_, loaded) =
            crate::image::check_volume_and_read_value(img, "NtrsPersist.hiv", "\\", "Token");
        let detail = match &loaded {
            Ok(v) => format!("hivexget returned '{v}', expected '{token}'"),
            Err(e) => e.clone(),
        };
        check(
            tally,
            errors,
            &format!("registry/hivex-reads-the-saved-and-loaded-hive-of-boot{n}"),
            loaded.as_deref() == Ok(token.as_str()),
            &detail,
        );
    }
}

/// Boot tests: the in-kernel test runs, the boot menu, the crash tests, then
/// the kd shell driven by a script.
pub fn boot_tests(img: &Path, tally: &mut Tally, errors: &mut Vec<String>) {
    // 1. In-kernel tests on one and on four processors.
    let crash_table = ktest_runs(img, KTEST_CONFIGS, tally, errors);

    // 2. The boot manager's menu: choosing the test entry runs the kernel tests.
    boot_menu_test(img, tally, errors);

    // 3. The kernel's crash-test table: each entry must stop the machine
    //    with its stop code; the stop screen then breaks into kd, where
    //    `shutdown` ends the run.
    crash_tests(img, &crash_table, tally, errors);

    // 4. The kd shell driven through the console, as `printf ... | cargo xtask run` does.
    let script = [
        "dg 10 50",
        "lm",
        "!pcr",
        "!thread",
        "!irql",
        "r",
        "!object \\",
        "!running",
        "~1",
        "!prcb",
        "!pte fffff80000400000",
        "!pte 0",
        "!acl D:(A;;GA;;;SY)",
        "!reg querykey \\REGISTRY\\MACHINE",
        "!reg querykey \\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services",
        "!devnode 0 1",
        "!devstack \\Device\\Harddisk0\\DR0",
        "!arbiter",
        "db fffff80000400000 L20",
        "dd 0 L4",
        "x nt!KeBugCheck*",
        "u nt!KeBugCheckEx L3",
        "ln nt!KeBugCheckEx",
        ".crash",
        "shutdown",
    ];
    let mut lines = script.iter().map(|s| s.to_string());
    match run_session(
        img,
        &Boot::new("", 2),
        &mut lines,
        false,
        Duration::from_secs(300),
    ) {
        Ok(Session { code, out, .. }) => {
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
                "kd/lm-storage-drivers",
                kd_output(&out, "lm").is_some_and(|o| {
                    o.contains("\\System32\\drivers\\storahci.sys")
                        && o.contains("\\System32\\drivers\\disk.sys")
                }),
                "lm does not list storahci.sys and disk.sys",
            );
            check(
                tally,
                errors,
                "kd/devstack-dr0",
                kd_output(&out, "!devstack \\Device\\Harddisk0\\DR0").is_some_and(|o| {
                    let disk = o.find("\\Driver\\disk");
                    let ahci = o.find("\\Driver\\storahci");
                    o.contains("> ") && matches!((disk, ahci), (Some(d), Some(a)) if d < a)
                }),
                "!devstack of DR0 does not show disk's FDO over storahci's PDO",
            );
            let pcr = check_pcr(&out);
            check(
                tally,
                errors,
                "kd/pcr",
                pcr.is_ok(),
                pcr.as_ref().err().map_or("", |e| e),
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
            let prcb1 = check_prcb1(&out);
            check(
                tally,
                errors,
                "kd/prcb-after-processor-switch",
                prcb1.is_ok(),
                prcb1.as_ref().err().map_or("", |e| e),
            );
            let thread = check_thread(&out);
            check(
                tally,
                errors,
                "kd/thread",
                thread.is_ok(),
                thread.as_ref().err().map_or("", |e| e),
            );
            check(
                tally,
                errors,
                "kd/pte",
                has("PXE at FFFFF6FB7DBEDF80    PPE at FFFFF6FB7DBF0000    PDE at FFFFF6FB7E000010    PTE at FFFFF6FC00002000")
                    // Global, kernel, read-only, valid; the accessed bit is
                    // set once anything read the headers (the image loader
                    // reads ntoskrnl's export directory through them).
                    && out.lines().any(|l| {
                        let l = l.trim_end();
                        l.starts_with("pfn ")
                            && (l.ends_with("-G-----KR-V") || l.ends_with("-G--A--KR-V"))
                    }),
                "!pte of the kernel base does not walk the self-map to a global read-only page",
            );
            check(
                tally,
                errors,
                "kd/pte-null-not-mapped",
                out.split("VA 0000000000000000").nth(1).is_some_and(|rest| {
                    let l: Vec<&str> = rest.lines().map(str::trim).collect();
                    l.len() > 3
                        && l[1].starts_with("PXE at FFFFF6FB7DBED000")
                        && l[3].starts_with("not valid")
                }),
                "!pte 0 shows a valid PXE: the loader's identity map is still there",
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
                "kd/devnode",
                kd_output(&out, "!devnode 0 1").is_some_and(|o| {
                    o.contains("Dumping IopRootDeviceNode")
                        && o.contains("InstancePath is \"HTREE\\ROOT\\0\"")
                        && o.contains("InstancePath is \"PCI\\VEN_8086&DEV_2922&")
                        && o.contains("ServiceName is \"storahci\"")
                        && o.contains("InstancePath is \"SCSI\\Disk&Ven_QEMU&Prod_HARDDISK\\")
                        && o.contains("ServiceName is \"disk\"")
                        && o.contains(" for PDO ")
                }),
                "!devnode 0 1 does not show the tree with the AHCI controller",
            );
            check(
                tally,
                errors,
                "kd/arbiter",
                kd_output(&out, "!arbiter").is_some_and(|o| {
                    o.contains("Memory Arbiter")
                        && o.contains("Port Arbiter")
                        && o.contains("<Reserved Ecam>")
                        && o.contains("(PCI\\VEN_8086&DEV_2922&")
                        && o.contains("(ACPI\\PNP0A08\\0)")
                }),
                "!arbiter does not show the AHCI controller's ranges and the root bus's bus numbers",
            );
            check(
                tally,
                errors,
                "kd/lm-pci-sys",
                kd_output(&out, "lm").is_some_and(|o| o.contains("drivers\\pci.sys")),
                "lm does not list pci.sys",
            );
            check(
                tally,
                errors,
                "kd/db-kernel-header",
                kd_output(&out, "db fffff80000400000 L20")
                    .is_some_and(|o| o.contains("fffff800`00400000  4d 5a ") && o.contains("  MZ")),
                "db of the kernel base does not show MZ in WinDbg's layout",
            );
            check(
                tally,
                errors,
                "kd/dd-unmapped-is-question-marks",
                kd_output(&out, "dd 0 L4").is_some_and(|o| {
                    o.contains("00000000`00000000  ???????? ???????? ???????? ????????")
                }),
                "dd 0 does not print ???????? for unmapped memory",
            );
            let bugcheck_ex = kd_output(&out, "x nt!KeBugCheck*").and_then(|o| {
                o.lines()
                    .find(|l| l.trim_end().ends_with(" nt!KeBugCheckEx"))
                    .and_then(|l| l.split_whitespace().next())
                    .map(str::to_string)
            });
            check(
                tally,
                errors,
                "kd/x-lists-exports",
                bugcheck_ex.is_some(),
                "x nt!KeBugCheck* does not list nt!KeBugCheckEx",
            );
            check(
                tally,
                errors,
                "kd/u-disassembles-at-a-symbol",
                kd_output(&out, "u nt!KeBugCheckEx L3").is_some_and(|o| {
                    let lines: Vec<&str> = o.lines().filter(|l| !l.trim().is_empty()).collect();
                    lines.len() == 4
                        && lines[0].trim() == "nt!KeBugCheckEx:"
                        && bugcheck_ex
                            .as_deref()
                            .is_some_and(|a| lines[1].starts_with(a))
                }),
                "u nt!KeBugCheckEx L3 does not show the label and three instructions",
            );
            check(
                tally,
                errors,
                "kd/ln-exact-match",
                kd_output(&out, "ln nt!KeBugCheckEx")
                    .is_some_and(|o| o.contains("nt!KeBugCheckEx") && o.contains("Exact matches:")),
                "ln nt!KeBugCheckEx does not report the exact match",
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

/// The output of the kd command `cmd` in a session transcript: the text
/// after the echoed `kd> cmd` up to the next prompt.
pub fn kd_output<'a>(out: &'a str, cmd: &str) -> Option<&'a str> {
    let echo = format!("{PROMPT}{cmd}\r");
    let echo2 = format!("{PROMPT}{cmd}\n");
    let start = out.find(&echo).or_else(|| out.find(&echo2))? + echo.len();
    let rest = &out[start..];
    Some(&rest[..rest.find(PROMPT).unwrap_or(rest.len())])
}

/// The hexadecimal number after `label` on the first line of `block` that
/// contains it (WinDbg's backtick separator allowed).
pub fn kd_field(block: &str, label: &str) -> Option<u64> {
    let line = block.lines().find(|l| l.contains(label))?;
    let after = &line[line.find(label)? + label.len()..];
    let word = after
        .trim_start_matches(|c: char| c == ':' || c.is_whitespace())
        .split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .next()?;
    u64::from_str_radix(&word.replace('`', ""), 16).ok()
}

/// `!pcr` on processor 0: the header names KPCR.Self, the PRCB is at
/// KPCR+0x180, the current thread is the one `!thread` shows (not the idle
/// thread), and RspBase is that thread's initial stack.
pub fn check_pcr(out: &str) -> std::result::Result<(), String> {
    let pcr = kd_output(out, "!pcr").ok_or("no !pcr output")?;
    let thread = kd_output(out, "!thread").ok_or("no !thread output")?;
    let at = kd_field(pcr, "KPCR for Processor 0 at").ok_or("no KPCR header")?;
    let field = |f: &str| kd_field(pcr, f).ok_or(format!("!pcr has no {f}"));
    if field("Self")? != at {
        return Err(format!("Self is not the KPCR's address {at:x}"));
    }
    if field("Prcb")? != at + 0x180 {
        return Err("Prcb is not KPCR+0x180".into());
    }
    let current = field("CurrentThread")?;
    let idle = field("IdleThread")?;
    if current == 0 || idle == 0 || current == idle {
        return Err(format!(
            "CurrentThread {current:x} and IdleThread {idle:x} should be two threads"
        ));
    }
    if kd_field(thread, "THREAD") != Some(current) {
        return Err("CurrentThread is not the thread !thread shows".into());
    }
    if kd_field(thread, "Stack Init") != Some(field("RspBase")?) {
        return Err("RspBase is not the current thread's Stack Init".into());
    }
    Ok(())
}

/// `!thread` (the kd thread on processor 0): running on processor 0, in a
/// process, with a stack whose Limit is below its Init and that holds the
/// stack pointer `r` shows for processor 0.
pub fn check_thread(out: &str) -> std::result::Result<(), String> {
    let t = kd_output(out, "!thread").ok_or("no !thread output")?;
    if !t.contains("RUNNING on processor 0") {
        return Err("!thread does not say RUNNING on processor 0".into());
    }
    if kd_field(t, "Owning Process").unwrap_or(0) == 0 {
        return Err("!thread shows no owning process".into());
    }
    let init = kd_field(t, "Stack Init").ok_or("no Stack Init")?;
    let limit = kd_field(t, "Limit").ok_or("no stack Limit")?;
    let regs = kd_output(out, "r").ok_or("no r output")?;
    let rsp = kd_field(regs, "rsp=").ok_or("r shows no rsp")?;
    if !(limit < rsp && rsp < init) {
        return Err(format!(
            "rsp {rsp:x} is not between the stack's Limit {limit:x} and Init {init:x}"
        ));
    }
    Ok(())
}

/// `~1` then `!prcb`: processor 1's PRCB, not processor 0's.
pub fn check_prcb1(out: &str) -> std::result::Result<(), String> {
    if !out.contains("Switched to processor 1") {
        return Err("~1 did not switch".into());
    }
    let p = kd_output(out, "!prcb").ok_or("no !prcb output")?;
    let at = kd_field(p, "PRCB for Processor 1 at").ok_or("!prcb shows no processor 1 header")?;
    let pcr0 = kd_output(out, "!pcr").and_then(|b| kd_field(b, "Prcb"));
    if pcr0 == Some(at) {
        return Err("processor 1's PRCB is processor 0's".into());
    }
    if kd_field(p, "Processor Index") != Some(1) {
        return Err("Processor Index is not 1".into());
    }
    Ok(())
}

/// Boots of the default entry timed for `boot_total_ms`.
const BOOT_SAMPLES: usize = 3;

/// The median of `v` (sorted in place).
fn median<T: Ord + Copy>(v: &mut [T]) -> T {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The kernel's benchmark lines of one `/BENCH` boot, converted for the
/// report: `icount` turns `<name> <n> ticks` into `<name>_icount <n>
/// instructions`. Failures (`BENCH <name> FAILED ...`) are kept; a run that
/// did not reach `BENCH-END` adds a failure.
pub fn bench_lines(out: &str, icount: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let mut ended = false;
    for l in out.lines().map(|l| l.trim_end_matches('\r')) {
        if l == "BENCH-END" {
            ended = true;
            continue;
        }
        let Some(rest) = l.strip_prefix("BENCH ") else {
            continue;
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        match (icount, parts.as_slice()) {
            (_, [name, "FAILED", why @ ..]) => {
                let name = if icount {
                    format!("{name}_icount")
                } else {
                    name.to_string()
                };
                lines.push(format!("BENCH {name} FAILED {}", why.join(" ")));
            }
            (false, _) => lines.push(l.to_string()),
            (true, [name, v, "ticks"]) => {
                lines.push(format!("BENCH {name}_icount {v} instructions"))
            }
            // Boot-time lines in ms are not instruction counts.
            (true, _) => {}
        }
    }
    if !ended {
        let pass = if icount { "icount" } else { "timed" };
        lines.push(format!(
            "BENCH {pass}_pass FAILED the kernel did not reach BENCH-END"
        ));
    }
    lines
}

/// `cargo xtask bench`: `boot_total_ms` (QEMU start to the first `kd> `
/// prompt, firmware included, median of three boots of the default entry
/// on two processors, as `printf ... | cargo xtask run` boots); then the
/// in-kernel benchmarks timed under TCG on two processors (nanoseconds);
/// then the same benchmarks on one processor under
/// `-icount shift=0,sleep=off` with `/BENCHTICKS`, where one TSC tick is
/// one guest instruction, reported as `<name>_icount <n> instructions`.
/// Every kernel figure is the median of three in-kernel repetitions.
/// Returns the number of failed benchmarks.
pub fn bench(img: &Path) -> Result<usize> {
    let mut failed = 0;
    let mut boots = Vec::new();
    for _ in 0..BOOT_SAMPLES {
        let mut lines = ["shutdown".to_string()].into_iter();
        let s = run_session(
            img,
            &Boot::new("", 2),
            &mut lines,
            false,
            Duration::from_secs(300),
        )?;
        match s.first_prompt {
            Some(t) if s.code == 0 => boots.push(t.as_millis()),
            _ => {
                println!("{}", s.out);
                failed += 1;
                println!(
                    "BENCH boot_total_ms FAILED no kd prompt, or shutdown exited {}",
                    s.code
                );
                break;
            }
        }
    }
    if boots.len() == BOOT_SAMPLES {
        let all: Vec<String> = boots.iter().map(|b| b.to_string()).collect();
        println!("BENCH boot_total_ms {} ms", median(&mut boots));
        println!("xtask: boot_total_ms samples: {}", all.join(" "));
    }
    for icount in [false, true] {
        let boot = if icount {
            Boot {
                extra: &["-icount", "shift=0,sleep=off"],
                ..Boot::new("/BENCH /BENCHTICKS", 1)
            }
        } else {
            Boot::new("/BENCH", 2)
        };
        let mut lines = ["shutdown".to_string()].into_iter();
        let s = run_session(img, &boot, &mut lines, false, Duration::from_secs(1800))?;
        for l in bench_lines(&s.out, icount) {
            if l.contains(" FAILED ") {
                failed += 1;
            }
            println!("{l}");
        }
    }
    Ok(failed)
}

/// Boots without a boot sequence, so the boot manager shows its menu, and
/// picks the second entry ("ntrs (kernel tests)") by typing `2`; the kernel
/// must then start its boot tests (the run is stopped at `KTEST-BEGIN`).
pub fn boot_menu_test(img: &Path, tally: &mut Tally, errors: &mut Vec<String>) {
    let boot = Boot {
        entry: Entry::Menu,
        ..Boot::new("", 1)
    };
    let r = (|| -> Result<String> {
        let mut child = spawn(img, &boot)?;
        let mut stdin = child.stdin.take().unwrap();
        let (rx, reader) = pump_output(child.stdout.take().unwrap(), false);
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Menu) => {
                    let _ = stdin.write_all(b"2");
                    let _ = stdin.flush();
                }
                Ok(Event::Prompt | Event::TestsStarted) | Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    break;
                }
                Ok(Event::Chosen) => {}
                Ok(Event::Exited) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        child.wait().map_err(|e| e.to_string())?;
        Ok(reader.join().unwrap_or_default())
    })();
    match r {
        Ok(out) => {
            let ok = out.contains(MENU_START)
                && out.contains(&format!("starting {}", crate::image::BCD_TESTS_ENTRY))
                && out.contains(TESTS_STARTED);
            if !ok {
                println!("{out}");
            }
            check(
                tally,
                errors,
                "boot/bcd-menu-picks-the-test-entry",
                ok,
                "the menu did not show, or choosing 2 did not start the kernel tests",
            );
        }
        Err(e) => check(tally, errors, "boot/bcd-menu", false, &e),
    }
}

/// `cargo xtask stress`: boots with `/STRESS=<secs>` and checks the verdict.
pub fn stress(img: &Path, secs: u64, smp: u32) -> Result<u8> {
    let Session { code, out, .. } = run_session(
        img,
        &Boot::new(&format!("/STRESS={secs}"), smp),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_text(lines: &[&str]) -> String {
        lines.join("\r\n")
    }

    const COMPLETE: &[&str] = &[
        "KTEST-BEGIN 15 tests",
        "KTEST ke.a PASS",
        "KTEST hal.b PASS",
        "KTEST mm.c PASS",
        "KTEST ob.d FAIL handle leaked",
        "KTEST se.e PASS",
        "KTEST ex.f PASS",
        "KTEST cm.g PASS",
        "KTEST io.h PASS",
        "KTEST pnp.i PASS",
        "KTEST storage.j PASS",
        "KTEST user.k PASS",
        "KTEST ps.l PASS",
        "KTEST fs.m PASS",
        "KTEST cc.n PASS",
        "KTEST kd.o PASS",
        "KTEST-SUMMARY 15 total, 14 passed, 1 failed",
    ];

    #[test]
    fn a_complete_run_passes_the_completeness_check() {
        let run = parse_ktest_run(&run_text(COMPLETE));
        assert_eq!(run.listed, Some(15));
        assert_eq!(run.summary, Some((15, 14, 1)));
        assert_eq!(run.results.len(), 15);
        assert_eq!(
            run.results[3],
            ("ob.d".into(), false, "handle leaked".into())
        );
        assert_eq!(ktest_run_complete(&run), Ok(()));
    }

    #[test]
    fn a_missing_test_or_summary_fails_the_completeness_check() {
        // A test that never reported (the machine hung or the line was lost).
        let mut lines = COMPLETE.to_vec();
        lines.remove(4);
        let e = ktest_run_complete(&parse_ktest_run(&run_text(&lines))).unwrap_err();
        assert!(e.contains("lists 15") && e.contains("14 reported"), "{e}");
        // No summary: the run died after cm.g.
        let e = ktest_run_complete(&parse_ktest_run(&run_text(&COMPLETE[..8]))).unwrap_err();
        assert!(e.contains("no KTEST-SUMMARY") && e.contains("cm.g"), "{e}");
        // No list.
        let e = ktest_run_complete(&parse_ktest_run(&run_text(&COMPLETE[1..]))).unwrap_err();
        assert!(e.contains("KTEST-BEGIN"), "{e}");
        // The same test twice hides a missing one.
        let mut lines = COMPLETE.to_vec();
        lines[2] = "KTEST ke.a PASS";
        let e = ktest_run_complete(&parse_ktest_run(&run_text(&lines))).unwrap_err();
        assert!(e.contains("ke.a reported twice"), "{e}");
        // A summary that disagrees with the lines.
        let mut lines = COMPLETE.to_vec();
        lines[16] = "KTEST-SUMMARY 15 total, 15 passed, 0 failed";
        assert!(ktest_run_complete(&parse_ktest_run(&run_text(&lines))).is_err());
    }

    #[test]
    fn a_component_without_tests_fails_the_completeness_check() {
        let mut lines = COMPLETE.to_vec();
        lines[7] = "KTEST ke.g PASS";
        let e = ktest_run_complete(&parse_ktest_run(&run_text(&lines))).unwrap_err();
        assert!(e.contains("no tests of cm."), "{e}");
    }

    #[test]
    fn parses_the_crash_table_and_checks_its_count() {
        let out = run_text(&[
            "CRASHTEST-ENTRY BADPOOLFREE 0x00000019 0x5 * * *",
            "CRASHTEST-ENTRY NULLDEREF 0x00000050 0x0 0x0 * *",
            "CRASHTEST-COUNT 2",
        ]);
        let t = parse_crash_table(&out).unwrap();
        assert_eq!(
            t[0],
            CrashEntry {
                name: "BADPOOLFREE".into(),
                stop_code: 0x19,
                params: [Some(5), None, None, None]
            }
        );
        assert_eq!(t[1].params, [Some(0), Some(0), None, None]);
        assert!(parse_crash_table(&out.replace("COUNT 2", "COUNT 3")).is_err());
        assert!(parse_crash_table("CRASHTEST-ENTRY X 0x1 * * * *").is_err());
        assert!(parse_crash_table("CRASHTEST-COUNT 0").is_err());
    }

    #[test]
    fn checks_the_stop_screen_against_the_entry() {
        let out = run_text(&[
            "crash test: block ...",
            "",
            "*** STOP: 0x00000019 (BAD_POOL_HEADER)",
            "    (0x0000000000000005,0xFFFF800000001000,0x0000000000000000,0xFFFF800000001030)",
        ]);
        let stop = parse_stop(&out);
        assert_eq!(
            stop,
            Some((0x19, [5, 0xFFFF_8000_0000_1000, 0, 0xFFFF_8000_0000_1030]))
        );
        let mut e = CrashEntry {
            name: "BADPOOLFREE".into(),
            stop_code: 0x19,
            params: [Some(5), None, None, None],
        };
        assert_eq!(stop_matches(&e, stop), Ok(()));
        e.params[0] = Some(3);
        assert!(stop_matches(&e, stop).unwrap_err().contains("parameter 1"));
        e.stop_code = 0x50;
        assert!(stop_matches(&e, stop).unwrap_err().contains("0x00000050"));
        assert!(stop_matches(&e, None).is_err());
    }

    const KD: &str = "kd> !pcr\r\n\
KPCR for Processor 0 at fffff800004b0000:\r\n\
    Major 1 Minor 1\r\n\
\t              Self: fffff800004b0000\r\n\
\t              Prcb: fffff800004b0180\r\n\
\t              Irql: 0000000000000000\r\n\
\t     CurrentThread: ffff800016209200\r\n\
\t        NextThread: 0000000000000000\r\n\
\t        IdleThread: ffff800016212200\r\n\
\t           RspBase: ffff80001de69000\r\n\
kd> !thread\r\n\
THREAD ffff800016209200  Id 0001  RUNNING on processor 0\r\n\
    Owning Process            fffff800004d25d0\r\n\
    Context Switch Count      4\r\n\
    Stack Init ffff80001de69000\r\n\
    Limit ffff80001de59000\r\n\
kd> r\r\n\
rsp=ffff80001de68a58 rbp=fffff800004bfc48 rip=fffff8000042cdd0\r\n\
kd> ~1\r\n\
Switched to processor 1\r\n\
kd> !prcb\r\n\
PRCB for Processor 1 at fffff800004c0180:\r\n\
Processor Index 1 Number (0, 1) GroupSetMember 2\r\n\
kd> shutdown\r\n";

    #[test]
    fn kd_checks_accept_consistent_output() {
        assert_eq!(
            kd_field(kd_output(KD, "!pcr").unwrap(), "Prcb"),
            Some(0xfffff800004b0180)
        );
        assert_eq!(check_pcr(KD), Ok(()));
        assert_eq!(check_thread(KD), Ok(()));
        assert_eq!(check_prcb1(KD), Ok(()));
    }

    #[test]
    fn kd_checks_reject_canned_or_inconsistent_output() {
        // A header alone (what the old check matched) is not enough.
        assert!(
            check_pcr("kd> !pcr\r\nKPCR for Processor 0 at fffff800004b0000:\r\nkd> ").is_err()
        );
        // The current thread must be the one !thread shows.
        assert!(
            check_pcr(&KD.replace("THREAD ffff800016209200", "THREAD ffff800016209300")).is_err()
        );
        // ... and not the idle thread.
        assert!(check_pcr(&KD.replace(
            "IdleThread: ffff800016212200",
            "IdleThread: ffff800016209200"
        ))
        .is_err());
        // RspBase is the current thread's initial stack.
        assert!(
            check_pcr(&KD.replace("RspBase: ffff80001de69000", "RspBase: 0000000000000000"))
                .is_err()
        );
        assert!(
            check_pcr(&KD.replace("Prcb: fffff800004b0180", "Prcb: fffff800004b0100")).is_err()
        );
        // A stack pointer outside the stack.
        assert!(check_thread(&KD.replace("rsp=ffff80001de68a58", "rsp=ffff80001de70000")).is_err());
        assert!(
            check_thread(&KD.replace("Limit ffff80001de59000", "Limit ffff80001de69000")).is_err()
        );
        assert!(check_thread(&KD.replace("fffff800004d25d0", "0000000000000000")).is_err());
        // Processor 1's PRCB must differ from processor 0's.
        assert!(check_prcb1(&KD.replace("fffff800004c0180", "fffff800004b0180")).is_err());
        assert!(check_prcb1(&KD.replace("Processor Index 1", "Processor Index 0")).is_err());
    }

    #[test]
    fn bench_lines_convert_ticks_and_keep_failures() {
        let out = "BENCH boot_to_kd_prompt 90 ms\r\nBENCH a 120 ticks\r\nBENCH b FAILED NtClose: STATUS_INVALID_HANDLE\r\nBENCH-END\r\n";
        assert_eq!(
            bench_lines(out, true),
            [
                "BENCH a_icount 120 instructions",
                "BENCH b_icount FAILED NtClose: STATUS_INVALID_HANDLE"
            ]
        );
        let timed = bench_lines("BENCH a 120 ns\nBENCH-END\n", false);
        assert_eq!(timed, ["BENCH a 120 ns"]);
        // A run that stopped early is a failure, not a shorter list.
        let cut = bench_lines("BENCH a 120 ns\n", false);
        assert!(cut[1].contains("FAILED"), "{cut:?}");
    }
}
