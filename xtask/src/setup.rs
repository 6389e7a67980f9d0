//! Installs what a fresh machine lacks: Debian packages and Rust targets.

use crate::{run, Result};
use std::path::Path;
use std::process::Command;

/// (command or file that proves the package is there, Debian package).
const PACKAGES: &[(&str, &str)] = &[
    ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"),
    ("/usr/share/ovmf/OVMF.fd", "ovmf"),
    ("/usr/bin/ntfscat", "ntfs-3g"),
    ("/usr/bin/hivexsh", "libhivex-bin"),
    ("/usr/bin/hivexregedit", "libwin-hivex-perl"),
    ("/usr/bin/mdir", "mtools"),
    // ntrs-pe's interop test and benchmark: MinGW's objdump, and the PE
    // files of Debian's MinGW runtime and Wine packages it compares against.
    (
        "/usr/bin/x86_64-w64-mingw32-objdump",
        "binutils-mingw-w64-x86-64",
    ),
    (
        "/usr/lib/gcc/x86_64-w64-mingw32/12-win32/libgcc_s_seh-1.dll",
        "gcc-mingw-w64-x86-64-win32-runtime",
    ),
    ("/usr/x86_64-w64-mingw32/lib/zlib1.dll", "libz-mingw-w64"),
    (
        "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/kernel32.dll",
        "libwine",
    ),
];

pub fn ensure_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(probe, _)| !Path::new(probe).exists())
        .map(|&(_, pkg)| pkg)
        .fold(Vec::new(), |mut v, pkg| {
            if !v.contains(&pkg) {
                v.push(pkg);
            }
            v
        });
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask: installing {}", missing.join(" "));
    let sudo = !is_root();
    let apt = |args: &[&str]| {
        let mut c = if sudo {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        c
    };
    run(&mut apt(&["update", "-qq"]))?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    run(&mut apt(&args))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn ensure_rust_targets() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup: {e}"))?;
    let have = String::from_utf8_lossy(&out.stdout).to_string();
    for t in ["x86_64-unknown-uefi", "x86_64-pc-windows-msvc"] {
        if !have.lines().any(|l| l.trim() == t) {
            run(Command::new("rustup").args(["target", "add", t]))?;
        }
    }
    Ok(())
}
