//! Link ntoskrnl.exe as NT links it: native subsystem, entry KiSystemStartup,
//! preferred base in the upper half, and the exports drivers import.
//!
//! The export names are listed one per line in `exports/<component>.txt`
//! (`;` starts a comment). They go into a module-definition file (`/def:`,
//! the `/export:` list with the image name ntoskrnl.exe); lld-link then also
//! writes the import library `ntoskrnl.lib` that drivers link against (into
//! the profile directory, beside `ntoskrnl.efi`). A listed name with no
//! `#[no_mangle]` function of that name in `src/` fails the build here, with
//! the file and line, before the linker would.
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Names of the `#[no_mangle]` functions in the kernel's sources.
fn no_mangle_functions(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut names = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let mut pending = false;
        for line in text.lines() {
            let l = line.trim();
            // A global_asm! entry (`".globl DbgPrint",`) defines the symbol too.
            if let Some(rest) = l.strip_prefix("\".globl ") {
                names.push(
                    rest.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect(),
                );
                continue;
            }
            if l.starts_with("#[no_mangle]") || l.starts_with("#[unsafe(no_mangle)]") {
                pending = true;
                continue;
            }
            if pending && !l.starts_with("#[") && !l.starts_with("///") && !l.starts_with("//") {
                if let Some(i) = l.find("fn ") {
                    let rest = &l[i + 3..];
                    let n: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    names.push(n);
                } else if let Some(i) = l.find("static ") {
                    let rest = l[i + 7..].trim_start_matches("mut ");
                    let n: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    names.push(n);
                }
                pending = false;
            }
        }
    }
    names
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let exports_dir = manifest.join("exports");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=exports");
    println!("cargo:rerun-if-changed=src");
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-uefi") {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&exports_dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "txt"));
    files.sort();
    let defined = no_mangle_functions(&manifest.join("src"));
    let mut exports: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let name = line.split(';').next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let where_ = format!("{}:{}", f.display(), i + 1);
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errors.push(format!("{where_}: '{name}' is not an export name"));
            } else if exports.iter().any(|e| e == name) {
                errors.push(format!("{where_}: '{name}' is listed twice"));
            } else if !defined.iter().any(|d| d == name) {
                errors.push(format!(
                    "{where_}: export '{name}' has no #[no_mangle] function of that name in ntos/src"
                ));
            } else {
                exports.push(name.to_string());
            }
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            println!("cargo:warning={e}");
        }
        panic!("ntoskrnl exports:\n{}", errors.join("\n"));
    }
    // OUT_DIR is <target>/<triple>/<profile>/build/ntoskrnl-<hash>/out: the
    // import library goes to <target>/<triple>/<profile>/ntoskrnl.lib.
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let profile_dir = out.ancestors().nth(3).unwrap().to_path_buf();
    // The module-definition file names the image "ntoskrnl.exe" in the
    // import library (cargo's output file is ntoskrnl-<hash>.efi, and
    // drivers must import from ntoskrnl.exe) and lists the exports.
    let mut def = String::from("NAME ntoskrnl.exe\nEXPORTS\n");
    for e in &exports {
        def.push_str(&format!("    {e}\n"));
    }
    let def_path = out.join("ntoskrnl.def");
    std::fs::write(&def_path, def).expect("writing ntoskrnl.def");
    let args = vec![
        "/entry:KiSystemStartup".to_string(),
        "/subsystem:native".to_string(),
        "/base:0xFFFFF80000400000".to_string(),
        format!("/def:{}", def_path.display()),
        format!("/implib:{}", profile_dir.join("ntoskrnl.lib").display()),
    ];
    for arg in args {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
