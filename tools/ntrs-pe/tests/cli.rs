//! The ntrs-pe binary on the synthetic images of lib/pe's `pe_inspect` fuzz
//! corpus (every directory it shows, PE32+ and PE32) and on its corrupt
//! variants.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const TOOL: &str = env!("CARGO_BIN_EXE_ntrs-pe");

fn corpus(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../lib/pe/fuzz/corpus/pe_inspect")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    Command::new(TOOL).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn help_shows_examples_and_they_work() {
    let h = ok(&["--help"]);
    assert!(h.contains("Examples:"), "{h}");
    for c in [
        "headers",
        "imports",
        "exports",
        "unwindinfo",
        "debug",
        "checksum",
        "all",
    ] {
        assert!(h.contains(c), "--help lacks {c}");
    }
    let f = corpus("seed-rich64.bin");
    let g = corpus("seed-rich32.bin");
    // Every spelling of a command: subcommand, dumpbin's /name, --name.
    let a = ok(&["headers", &f]);
    assert_eq!(ok(&["/headers", &f]), a);
    assert_eq!(ok(&["/HEADERS", &f]), a);
    assert_eq!(ok(&["--headers", &f]), a);
    ok(&["/imports", &f]);
    json(&["--exports", &f, "--json"]);
    ok(&["unwindinfo", &f]);
    ok(&["debug", &f]);
    ok(&["checksum", &f, &g]);
    let all = json(&["all", "--json", &f, &g]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert!(ok(&["man"]).contains(".TH ntrs-pe"));
    assert!(ok(&["completions", "bash"]).contains("ntrs-pe"));
}

#[test]
fn text_output_shows_every_directory() {
    let f = corpus("seed-rich64.bin");
    let h = ok(&["headers", &f]);
    for want in [
        "8664 machine (x64)",
        "20B magic # (PE32+)",
        "140000000 image base",
        "1800 entry point (0000000140001800)",
        "3 subsystem (Windows CUI)",
        "1200 [      28] RVA [size] of Import Directory",
        "SECTION HEADER #1",
        ".text name",
        "E0000020 flags",
        "         Execute\n         Read\n         Write\n",
    ] {
        assert!(h.contains(want), "headers lack {want:?}:\n{h}");
    }
    let i = ok(&["imports", &f]);
    for want in [
        "KERNEL32.dll",
        "7 Sleep",
        "Ordinal    16",
        "delay load imports",
        "user32.dll",
        "3 MessageBoxW",
    ] {
        assert!(i.contains(want), "imports lack {want:?}:\n{i}");
    }
    let e = ok(&["exports", &f]);
    for want in [
        "exports for rich.dll",
        "5    0 00001800 Alpha",
        "6    1          Beta (forwarded to NTDLL.RtlFoo)",
        "Gamma (forwarded to rich.Alpha)",
    ] {
        assert!(e.contains(want), "exports lack {want:?}:\n{e}");
    }
    let r = ok(&["relocations", &f]);
    assert!(
        r.contains("1000 RVA,       C SizeOfBlock") && r.contains("DIR64    00001008"),
        "{r}"
    );
    let t = ok(&["tls", &f]);
    assert!(
        t.contains("0000000140001800") && t.contains("10 Size of zero fill"),
        "{t}"
    );
    let u = ok(&["unwindinfo", &f]);
    for want in [
        "Function Table (2)",
        "Unwind flags: EHANDLER",
        "Frame register: rbp",
        "10: ALLOC_LARGE, size=0x180",
        "09: SAVE_NONVOL, register=rbx, offset=0x80",
        "05: SET_FPREG, register=rbp, offset=0x20",
        "02: PUSH_NONVOL, register=rbp",
        "01: ALLOC_SMALL, size=0x20",
        "Handler: 00001A00",
        "PUSH_MACHFRAME, with error code",
        "Chained: 00001800 00001820 00001900",
    ] {
        assert!(u.contains(want), "unwindinfo lacks {want:?}:\n{u}");
    }
    let l = ok(&["loadconfig", &f]);
    assert!(
        l.contains("140001B00 SecurityCookie") && l.contains("100 GuardFlags"),
        "{l}"
    );
    let d = ok(&["debug", &f]);
    for want in [
        "codeview",
        "Format: RSDS, {12345678-9ABC-DEF0-0123-456789ABCDEF}, 3, c:\\src\\rich.pdb",
        "Symbol server key: 123456789ABCDEF00123456789ABCDEF3",
    ] {
        assert!(d.contains(want), "debug lacks {want:?}:\n{d}");
    }
    let c = ok(&["certificates", &f]);
    assert!(
        c.contains("length       13 revision 0x0200 type 2 (PKCS_SIGNED_DATA)"),
        "{c}"
    );
    assert!(c.contains("type 1 (X509)"), "{c}");
    assert!(ok(&["checksum", &f]).contains(" OK"));
    // PE32.
    let g = corpus("seed-rich32.bin");
    let h = ok(&["headers", &g]);
    assert!(
        h.contains("10B magic # (PE32)") && h.contains("1000 base of data"),
        "{h}"
    );
    assert!(ok(&["relocations", &g]).contains("HIGHLOW"));
}

#[test]
fn json_output_has_every_directory() {
    let f = corpus("seed-rich64.bin");
    let v = json(&["all", "--json", &f]);
    assert_eq!(v["optional_header"]["image_base"], 0x1_4000_0000u64);
    assert_eq!(v["sections"][0]["name"], ".text");
    assert_eq!(v["imports"][0]["functions"][1]["ordinal"], 16);
    assert_eq!(v["delay_imports"][0]["functions"][0]["name"], "MessageBoxW");
    assert_eq!(v["exports"]["functions"][1]["forwarder"], "NTDLL.RtlFoo");
    assert_eq!(v["relocations"][0]["entries"][0]["type"], "DIR64");
    assert_eq!(v["tls"]["callbacks"][0], 0x1_4000_1800u64);
    assert_eq!(v["exception_functions"][0]["codes"][0]["size"], 0x180);
    assert_eq!(v["load_config"]["GuardFlags"], 0x100);
    assert_eq!(
        v["debug"][0]["codeview"]["symbol_server_key"],
        "123456789ABCDEF00123456789ABCDEF3"
    );
    assert_eq!(v["certificates"][1]["type"], "X509");
    let c = json(&["checksum", "--json", &f]);
    assert_eq!(c["checksum"]["status"], "OK");
    assert_eq!(c["checksum"]["stored"], c["checksum"]["computed"]);
}

#[test]
fn bad_input_gives_one_line_and_a_failure() {
    let dir = std::env::temp_dir().join(format!("ntrs-pe-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.dll");
    std::fs::write(&empty, b"").unwrap();
    let cases: Vec<(String, &str, &str)> = vec![
        (empty.to_str().unwrap().into(), "headers", "no MZ signature"),
        (
            dir.join("missing.dll").to_str().unwrap().into(),
            "headers",
            "No such file",
        ),
        (
            corpus("truncated-half.bin"),
            "certificates",
            "past the end of the file",
        ),
        (corpus("forwarder-loop.bin"), "exports", "loop"),
        (corpus("unwind-truncated-codes.bin"), "unwindinfo", "slots"),
        (corpus("cert-overlong.bin"), "certificates", "length"),
        (corpus("reloc-tiny-block.bin"), "relocations", "size 4"),
        (corpus("imports-no-terminator.bin"), "imports", "outside"),
        (corpus("tls-callbacks-outside.bin"), "tls", "TLS callback"),
    ];
    for (file, cmd, want) in &cases {
        for json in [false, true] {
            let mut args = vec![cmd.to_string(), file.clone()];
            if json {
                args.push("--json".into());
            }
            let o = Command::new(TOOL).args(&args).output().unwrap();
            let e = stderr(&o);
            assert!(!o.status.success(), "{args:?} succeeded");
            assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
            assert!(
                e.contains(want) && e.contains(file.as_str()),
                "{args:?}: {e}"
            );
            assert!(!e.contains("panicked"), "{args:?}: {e}");
        }
        // `all` fails on the same file, and `all` over every corpus file never panics.
        let o = run(&["all", file]);
        assert!(!o.status.success() && !stderr(&o).contains("panicked"));
    }
    // A bad file among good ones: the good ones are still shown.
    let good = corpus("seed-rich64.bin");
    let o = run(&["headers", &good, empty.to_str().unwrap(), &good]);
    assert!(!o.status.success());
    assert_eq!(stdout(&o).matches("Dump of file").count(), 2);
    assert_eq!(stderr(&o).lines().count(), 1);
    // A stored checksum that differs is a failure of `checksum`, not of `headers`.
    let mut b = std::fs::read(&good).unwrap();
    b[0x500] ^= 0xFF;
    let changed = dir.join("changed.dll");
    std::fs::write(&changed, &b).unwrap();
    let o = run(&["checksum", changed.to_str().unwrap()]);
    assert!(
        !o.status.success() && stdout(&o).contains("MISMATCH"),
        "{}",
        stdout(&o)
    );
    ok(&["headers", changed.to_str().unwrap()]);
    ok(&["all", changed.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_output_that_cannot_be_written_fails_with_one_line() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not a Linux host
    };
    let f = corpus("seed-rich64.bin");
    for args in [
        vec!["all", f.as_str()],
        vec!["headers", "--json", f.as_str()],
        vec!["man"],
        vec!["completions", "bash"],
    ] {
        let o = Command::new(TOOL)
            .args(&args)
            .stdout(std::process::Stdio::from(full.try_clone().unwrap()))
            .output()
            .unwrap();
        let e = stderr(&o);
        assert!(!o.status.success(), "{args:?}: exit 0 with the output lost");
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains("writing the output"), "{args:?}: {e}");
    }
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::Read;
    let f = corpus("seed-rich64.bin");
    let files: Vec<&str> = std::iter::repeat_n(f.as_str(), 300).collect();
    let mut c = Command::new(TOOL)
        .arg("all")
        .args(&files)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    c.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(c.stdout.take()); // `| head -c 16`
    let o = c.wait_with_output().unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{:?} {e}", o.status);
    assert!(e.is_empty(), "{e}");
}

/// A large file is read in part (headers and non-debug sections); when a
/// structure points into a section that was not read, ntrs-pe reads the
/// whole file and shows the same thing as for a small file.
#[test]
fn large_files_read_in_part_show_everything() {
    let mut b = std::fs::read(corpus("seed-rich64.bin")).unwrap();
    let certs = b.split_off(0x1400); // headers + .text; the certificate table is dropped
    drop(certs);
    let dd = 0x84 + 20 + 112;
    b[dd + 4 * 8..dd + 4 * 8 + 8].fill(0); // no certificate directory
                                           // A second section, ".debug_a", 1 MiB at RVA 0x2000, holding the imported DLL's name.
    b[0x86..0x88].copy_from_slice(&2u16.to_le_bytes());
    let sh = 0x84 + 20 + 240 + 40;
    b[sh..sh + 8].copy_from_slice(b".debug_a");
    for (o, v) in [
        (8, 0x10_0000u32),
        (12, 0x2000),
        (16, 0x10_0000),
        (20, 0x1400),
        (36, 0x4200_0040),
    ] {
        b[sh + o..sh + o + 4].copy_from_slice(&v.to_le_bytes());
    }
    b.resize(0x1400 + 0x10_0000, 0);
    b[0x1400..0x1400 + 9].copy_from_slice(b"FAR32.dll");
    let small_imports = ok(&["imports", &corpus("seed-rich64.bin")]);
    let dir = std::env::temp_dir().join(format!("ntrs-pe-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("large.dll");
    std::fs::write(&p, &b).unwrap();
    let ps = p.to_str().unwrap();
    // Exports are all in .text: read in part.
    let small = ok(&["exports", &corpus("seed-rich64.bin")]);
    let large = ok(&["exports", ps]);
    assert_eq!(
        small.lines().skip(2).collect::<Vec<_>>(),
        large.lines().skip(2).collect::<Vec<_>>()
    );
    assert!(ok(&["headers", ps]).contains(".debug_a name"));
    // The import descriptor's name moves into .debug_a: only the whole file has it.
    let desc = 0x400 + 0x200 + 12;
    b[desc..desc + 4].copy_from_slice(&0x2000u32.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let i = ok(&["imports", ps]);
    assert!(i.contains("    FAR32.dll\n"), "{i}");
    assert_eq!(
        i.replace("FAR32.dll", "KERNEL32.dll")
            .lines()
            .skip(2)
            .collect::<Vec<_>>(),
        small_imports.lines().skip(2).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
