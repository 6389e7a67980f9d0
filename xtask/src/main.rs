//! ntrs build driver: `cargo xtask run | test | bench | image`.
//!
//! It installs what a fresh machine lacks (Debian packages, Rust targets),
//! builds the host crates and the UEFI images, writes the GPT disk image and
//! runs QEMU.

mod drivers;
mod image;
mod qemu;
mod setup;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <command>\n\
         \n  run      build everything, make the disk image, boot it in QEMU (serial on stdio)\
         \n  test     clippy, fmt check, host tests, then boot tests in QEMU\
         \n  ktest [SMP]  boot only the in-kernel tests (on 1 and 4 processors, or on SMP)\
         \n  crashtest [NAME...]  boot each crash test of the kernel's table (or the named ones)\
         \n  hivetest  the two-boot registry persistence test only\
         \n  bench    micro-benchmarks, one `BENCH name value unit` line each\
         \n  image    build everything and write build/ntrs.img only\
         \n  drivers  build the kernel and drivers, check the .sys images (imports, subsystem)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("test") => cmd_test(),
        Some("bench") => cmd_bench(),
        Some("stress") => cmd_stress(&args[1..]),
        Some("ktest") => cmd_ktest(&args[1..]),
        Some("crashtest") => cmd_crashtest(&args[1..]),
        Some("hivetest") => cmd_hivetest(),
        Some("image") => build_all().map(|_| 0),
        Some("drivers") => cmd_drivers(),
        _ => return usage(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::from(1)
        }
    }
}

pub type Result<T> = std::result::Result<T, String>;

/// The repository root (parent of xtask/).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn build_dir() -> PathBuf {
    root().join("build")
}

/// Runs a command, failing with its description when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Builds the UEFI images (boot manager, OS loader, kernel) and the disk image.
fn build_all() -> Result<PathBuf> {
    build_all_with_images().map(|(img, _)| img)
}

/// Builds everything and the disk image; returns the image and the built files.
fn build_all_with_images() -> Result<(PathBuf, Images)> {
    setup::ensure_rust_targets()?;
    let images = build_uefi()?;
    let img = build_dir().join("ntrs.img");
    image::build_disk(&images, &img)?;
    Ok((img, images))
}

/// Paths of the built UEFI/PE images.
pub struct Images {
    pub bootmgr: PathBuf,
    pub winload: PathBuf,
    pub kernel: PathBuf,
    /// The drivers (`name.sys` in `\Windows\System32\drivers`, contents).
    pub drivers: Vec<(String, Vec<u8>)>,
    /// The user-mode images (`name.exe`, `ntdll.dll` in `\Windows\System32`, contents).
    pub user: Vec<(String, Vec<u8>)>,
}

/// The user workspace's images: every `.exe` and `.dll` (ntdll.dll) the
/// release build wrote.
fn user_images() -> Result<Vec<(String, Vec<u8>)>> {
    let dir = root().join("user/target/x86_64-pc-windows-msvc/release");
    let mut v = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "exe" || x == "dll") {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            v.push((name, data));
        }
    }
    v.sort();
    Ok(v)
}

fn build_uefi() -> Result<Images> {
    // The kernel before the drivers: its link writes ntoskrnl.lib.
    for dir in ["boot", "ntos", "drivers", "user"] {
        run(cargo()
            .current_dir(root().join(dir))
            .args(["build", "--release", "--quiet"]))?;
    }
    let boot = root().join("boot/target/x86_64-unknown-uefi/release");
    let ntos = root().join("ntos/target/x86_64-unknown-uefi/release");
    Ok(Images {
        bootmgr: boot.join("bootmgfw.efi"),
        winload: boot.join("winload.efi"),
        kernel: ntos.join("ntoskrnl.efi"),
        drivers: drivers::images()?,
        user: user_images()?,
    })
}

fn cmd_run(args: &[String]) -> Result<u8> {
    setup::ensure_packages()?;
    let img = build_all()?;
    let opts = args.join(" ");
    let out = qemu::run_interactive(&img, &opts)?;
    Ok(out)
}

/// Sums `cargo test` result lines.
#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

fn parse_cargo_test(out: &str, t: &mut Tally) {
    for line in out.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            if let [.., n, what] = words.as_slice() {
                let n: usize = n.parse().unwrap_or(0);
                match *what {
                    "passed" => t.passed += n,
                    "failed" => t.failed += n,
                    _ => {}
                }
            }
        }
    }
}

fn cmd_test() -> Result<u8> {
    setup::ensure_packages()?;
    setup::ensure_rust_targets()?;
    let mut tally = Tally::default();
    let mut errors = Vec::new();

    // Lints on every workspace: host, then the UEFI images.
    let lint = |dir: &str, args: &[&str]| {
        let mut c = cargo();
        c.current_dir(root().join(dir)).args(args);
        c
    };
    let fmt = ["fmt", "--all", "--check"];
    let clippy_uefi = ["clippy", "--release", "--quiet", "--", "-D", "warnings"];
    let checks: Vec<(&str, Command)> = vec![
        ("fmt (host)", lint(".", &fmt)),
        ("fmt (boot)", lint("boot", &fmt)),
        ("fmt (ntos)", lint("ntos", &fmt)),
        ("fmt (drivers)", lint("drivers", &fmt)),
        ("fmt (user)", lint("user", &fmt)),
        (
            "clippy (host)",
            lint(
                ".",
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--quiet",
                    "--",
                    "-D",
                    "warnings",
                ],
            ),
        ),
        ("clippy (boot)", lint("boot", &clippy_uefi)),
        ("clippy (ntos)", lint("ntos", &clippy_uefi)),
        // The drivers link against the kernel's import library
        // (ntoskrnl.lib), which only the kernel's own link writes: on a
        // clean clone the kernel is built before the drivers are linted.
        (
            "build (ntos)",
            lint("ntos", &["build", "--release", "--quiet"]),
        ),
        ("clippy (drivers)", lint("drivers", &clippy_uefi)),
        ("clippy (user)", lint("user", &clippy_uefi)),
        // The host tests read the built ntdll.dll (tools/ntrs-pe/tests/ntdll.rs).
        (
            "build (user)",
            lint("user", &["build", "--release", "--quiet"]),
        ),
    ];
    // Lint results are reported on their own lines (`LINT <name> PASS|FAIL`)
    // and are not test cases: they stay out of the final `N passed` count,
    // but a failed lint fails the run.
    let mut lints = Vec::new();
    for (name, mut cmd) in checks {
        println!("xtask: {name}");
        let result = run(&mut cmd);
        if name.starts_with("build") {
            if let Err(e) = result {
                errors.push(format!("{name}: {e}"));
            }
            continue;
        }
        match result {
            Ok(()) => lints.push(format!("LINT {name} PASS")),
            Err(e) => {
                lints.push(format!("LINT {name} FAIL"));
                errors.push(format!("{name}: {e}"));
            }
        }
    }

    println!("xtask: host tests");
    let out = cargo()
        .current_dir(root())
        .env("NTRS_REQUIRE_INTEROP", "1")
        .args(["test", "--workspace"])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    parse_cargo_test(&text, &mut tally);
    if !out.status.success() {
        errors.push("host tests failed".into());
        if tally.failed == 0 {
            tally.failed += 1;
        }
    }

    println!("xtask: boot tests");
    match build_all_with_images() {
        Ok((img, images)) => {
            let mut rows = drivers::check(&images);
            rows.extend(image::check_system_volume_with_ntfs3g(&img, &images));
            for (name, ok, detail) in rows {
                if ok {
                    println!("BOOTTEST {name} PASS");
                    tally.passed += 1;
                } else {
                    println!("BOOTTEST {name} FAIL {detail}");
                    tally.failed += 1;
                    errors.push(format!("{name}: {detail}"));
                }
            }
            qemu::boot_tests(&img, &mut tally, &mut errors);
            // A registry change survives a shutdown and a second boot, and
            // the host's tools read it from the image in between.
            qemu::hive_persistence_test(&img, &mut tally, &mut errors);
            // The boot tests wrote to the system volume through ntfs.sys
            // (fs.write.*): ntfs-3g must still accept it and read the OS
            // files byte-exact.
            for (name, ok, detail) in image::check_system_volume_with_ntfs3g(&img, &images) {
                let name = format!("{name}-after-boot-tests");
                if ok {
                    println!("BOOTTEST {name} PASS");
                    tally.passed += 1;
                } else {
                    println!("BOOTTEST {name} FAIL {detail}");
                    tally.failed += 1;
                    errors.push(format!("{name}: {detail}"));
                }
            }
        }
        Err(e) => {
            tally.failed += 1;
            errors.push(format!("build: {e}"));
        }
    }

    for l in &lints {
        println!("{l}");
    }
    for e in &errors {
        println!("xtask: FAILED: {e}");
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(if tally.failed == 0 && errors.is_empty() {
        0
    } else {
        1
    })
}

/// `cargo xtask drivers`: builds the UEFI images and runs the driver checks.
fn cmd_drivers() -> Result<u8> {
    setup::ensure_rust_targets()?;
    let images = build_uefi()?;
    let mut failed = 0;
    for (name, ok, detail) in drivers::check(&images) {
        println!("{} {name}: {detail}", if ok { "PASS" } else { "FAIL" });
        failed += usize::from(!ok);
    }
    Ok(u8::from(failed > 0))
}

/// `cargo xtask ktest [SMP]`: only the in-kernel tests, on the test
/// harness's configurations or on SMP processors.
fn cmd_ktest(args: &[String]) -> Result<u8> {
    let custom: Vec<(u32, &[&str])>;
    let configs = match args.first() {
        Some(a) => {
            let smp: u32 = a
                .parse()
                .ok()
                .filter(|n| (1..=16).contains(n))
                .ok_or_else(|| format!("bad processor count '{a}'"))?;
            custom = vec![(smp, &[][..])];
            &custom[..]
        }
        None => qemu::KTEST_CONFIGS,
    };
    setup::ensure_packages()?;
    let img = build_all()?;
    let mut tally = Tally::default();
    let mut errors = Vec::new();
    let _ = qemu::ktest_runs(&img, configs, &mut tally, &mut errors);
    for e in &errors {
        println!("xtask: FAILED: {e}");
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(u8::from(tally.failed > 0))
}

/// `cargo xtask crashtest [NAME...]`: reads the kernel's crash-test table
/// (`/CRASHTEST=LIST`) and boots every entry, or the named ones.
fn cmd_crashtest(names: &[String]) -> Result<u8> {
    setup::ensure_packages()?;
    let img = build_all()?;
    let mut table = qemu::crash_table_from_kernel(&img);
    if let Ok(entries) = &mut table {
        if !names.is_empty() {
            for n in names {
                if !entries.iter().any(|e| e.name.eq_ignore_ascii_case(n)) {
                    return Err(format!("the kernel has no crash test {n}"));
                }
            }
            entries.retain(|e| names.iter().any(|n| e.name.eq_ignore_ascii_case(n)));
        }
    }
    let mut tally = Tally::default();
    let mut errors = Vec::new();
    qemu::crash_tests(&img, &table, &mut tally, &mut errors);
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(u8::from(tally.failed > 0))
}

/// `cargo xtask hivetest`: only the two-boot registry persistence test.
fn cmd_hivetest() -> Result<u8> {
    setup::ensure_packages()?;
    let img = build_all()?;
    let mut tally = Tally::default();
    let mut errors = Vec::new();
    qemu::hive_persistence_test(&img, &mut tally, &mut errors);
    for e in &errors {
        println!("xtask: FAILED: {e}");
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(u8::from(tally.failed > 0))
}

fn cmd_stress(args: &[String]) -> Result<u8> {
    let secs: u64 = match args.first() {
        Some(a) => a.parse().map_err(|_| format!("bad seconds '{a}'"))?,
        None => 30,
    };
    let smp: u32 = match args.get(1) {
        Some(a) => a
            .parse()
            .map_err(|_| format!("bad processor count '{a}'"))?,
        None => 4,
    };
    setup::ensure_packages()?;
    let img = build_all()?;
    qemu::stress(&img, secs, smp)
}

fn cmd_bench() -> Result<u8> {
    setup::ensure_packages()?;
    let img = build_all()?;
    let mut failed = qemu::bench(&img)?;
    // Host-side benchmarks of the format crates (release builds).
    for tool in ["ntrs-ntfs", "ntrs-reg", "ntrs-pe"] {
        let has_bench = root().join("tools").join(tool).join("src/main.rs");
        let src = std::fs::read_to_string(&has_bench).unwrap_or_default();
        if !src.contains("\"bench\"") && !src.contains("Bench") {
            continue;
        }
        let out = cargo()
            .current_dir(root())
            .args(["run", "--quiet", "--release", "-p", tool, "--", "bench"])
            .output()
            .map_err(|e| format!("{tool} bench: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        for l in text.lines().filter(|l| l.starts_with("BENCH ")) {
            println!("{l}");
        }
        if !out.status.success() {
            failed += 1;
            eprintln!(
                "xtask: {tool} bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if failed > 0 {
        println!("xtask: {failed} benchmarks FAILED");
    }
    Ok(u8::from(failed > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cargo_test_lines() {
        let mut t = Tally::default();
        parse_cargo_test(
            "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
             test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n",
            &mut t,
        );
        assert_eq!((t.passed, t.failed), (15, 2));
    }
}
