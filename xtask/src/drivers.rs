//! The drivers workspace (`drivers/`): which `.sys` files go into
//! `\Windows\System32\drivers`, and the checks `cargo xtask test` runs on
//! them with the `object` crate (an independent PE reader): native
//! subsystem, an entry point, relocations, imports only from ntoskrnl.exe
//! and only names the kernel exports.

use crate::{root, Images, Result};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::{Object, ObjectSection};
use std::path::PathBuf;

/// Driver images the boot tests expect to FAIL to load, derived from
/// ntrstest.sys here: (file name, what is wrong).
pub const BROKEN: &[(&str, &str)] = &[
    ("ntrsbadhdr.sys", "PE signature overwritten"),
    (
        "ntrsnoimp.sys",
        "imports ntoskrnl!KeQueryTimeIncremenX, which does not exist",
    ),
];

/// The driver crates: every directory of drivers/ with a Cargo.toml and a
/// src/main.rs (the `rt` library has neither main.rs). Directory, package
/// and binary share the driver's name.
pub fn crates() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("drivers"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.path().join("src/main.rs").exists() && e.path().join("Cargo.toml").exists()
                })
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn target_dir() -> PathBuf {
    root().join("drivers/target/x86_64-unknown-uefi/release")
}

/// The built drivers as `(name.sys, bytes)`, and the deliberately broken
/// copies of ntrstest.sys the load tests use.
pub fn images() -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for c in crates() {
        let p = target_dir().join(format!("{c}.efi"));
        let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        out.push((format!("{c}.sys"), data));
    }
    if let Some((_, test)) = out.iter().find(|(n, _)| n == "ntrstest.sys") {
        let test = test.clone();
        // Bad headers: the "PE\0\0" signature at e_lfanew destroyed.
        let mut bad = test.clone();
        let lfanew = u32::from_le_bytes([bad[0x3C], bad[0x3D], bad[0x3E], bad[0x3F]]) as usize;
        bad[lfanew..lfanew + 4].copy_from_slice(b"XX\0\0");
        out.push((BROKEN[0].0.to_string(), bad));
        // A missing import: one imported name changed by one letter.
        let mut noimp = test;
        let from = b"KeQueryTimeIncrement\0";
        let pos = noimp
            .windows(from.len())
            .position(|w| w == from)
            .ok_or("ntrstest.sys does not import KeQueryTimeIncrement (the missing-import test patches that name)")?;
        noimp[pos + from.len() - 2] = b'X';
        out.push((BROKEN[1].0.to_string(), noimp));
    }
    Ok(out)
}

/// The names ntoskrnl exports, read from the kernel image.
fn kernel_exports(images: &Images) -> Result<Vec<String>> {
    let data = std::fs::read(&images.kernel).map_err(|e| e.to_string())?;
    let pe = PeFile64::parse(&*data).map_err(|e| format!("ntoskrnl: {e}"))?;
    let ex = pe.exports().map_err(|e| format!("ntoskrnl exports: {e}"))?;
    Ok(ex
        .iter()
        .map(|e| String::from_utf8_lossy(e.name()).into_owned())
        .collect())
}

/// Checks one driver image; Err says what is wrong.
fn check_driver(data: &[u8], exports: &[String]) -> std::result::Result<String, String> {
    let pe = PeFile64::parse(data).map_err(|e| format!("not a PE32+ image: {e}"))?;
    let oh = pe.nt_headers().optional_header();
    if oh.subsystem() != object::pe::IMAGE_SUBSYSTEM_NATIVE {
        return Err(format!("subsystem {} is not native (1)", oh.subsystem()));
    }
    if oh.address_of_entry_point() == 0 {
        return Err("no entry point".into());
    }
    if !pe.sections().any(|s| s.name() == Ok(".reloc")) {
        return Err("no .reloc section: the image cannot be relocated".into());
    }
    let imports = pe.imports().map_err(|e| format!("imports: {e}"))?;
    if imports.is_empty() {
        return Err("imports nothing from ntoskrnl.exe".into());
    }
    for i in &imports {
        let lib = String::from_utf8_lossy(i.library());
        let name = String::from_utf8_lossy(i.name());
        if !lib.eq_ignore_ascii_case("ntoskrnl.exe") {
            return Err(format!("imports {name} from {lib}, not ntoskrnl.exe"));
        }
        if !exports.iter().any(|e| *e == name) {
            return Err(format!(
                "imports {name}, which ntoskrnl.exe does not export"
            ));
        }
    }
    Ok(format!("{} imports, all ntoskrnl exports", imports.len()))
}

/// `(check name, passed, detail)` rows for `cargo xtask test`.
pub fn check(images: &Images) -> Vec<(String, bool, String)> {
    let mut rows = Vec::new();
    let exports = match kernel_exports(images) {
        Ok(e) => e,
        Err(e) => {
            rows.push(("drivers/ntoskrnl-exports".into(), false, e));
            return rows;
        }
    };
    rows.push((
        "drivers/ntoskrnl-exports".into(),
        !exports.is_empty(),
        format!("{} exports", exports.len()),
    ));
    let lib = root().join("ntos/target/x86_64-unknown-uefi/release/ntoskrnl.lib");
    rows.push((
        "drivers/ntoskrnl-import-library".into(),
        lib.exists(),
        lib.display().to_string(),
    ));
    let crates = crates();
    rows.push((
        "drivers/built".into(),
        !crates.is_empty() && crates.len() <= images.drivers.len(),
        format!("{} driver crates", crates.len()),
    ));
    for (name, data) in &images.drivers {
        if let Some((_, why)) = BROKEN.iter().find(|(b, _)| b == name) {
            // The broken copies must really be broken, each in its way.
            let r = check_driver(data, &exports);
            rows.push((
                format!("drivers/{name}-is-broken"),
                r.is_err(),
                format!("{why}: {r:?}"),
            ));
            continue;
        }
        match check_driver(data, &exports) {
            Ok(d) => rows.push((format!("drivers/{name}"), true, d)),
            Err(e) => rows.push((format!("drivers/{name}"), false, e)),
        }
    }
    rows
}
