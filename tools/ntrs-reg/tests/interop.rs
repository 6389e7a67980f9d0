//! Interop with hivex (`hivexsh`, `hivexregedit`), and CLI behaviour. Without the hivex tools the
//! interop tests print a skip message, unless NTRS_REQUIRE_INTEROP=1 makes them fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use regf::regtext::{import_reg_text, import_reg_text_prefix};
use regf::*;

const TOOL: &str = env!("CARGO_BIN_EXE_ntrs-reg");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ntrs-reg-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn have(tool: &str) -> bool {
    let ok = Path::new(&format!("/usr/bin/{}", tool)).exists()
        || Command::new(tool).arg("--help").output().is_ok();
    if !ok {
        if std::env::var("NTRS_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("{} is not installed and NTRS_REQUIRE_INTEROP=1", tool);
        }
        eprintln!("SKIP: {} not installed (Debian libhivex-bin)", tool);
    }
    ok
}

type Dump = BTreeMap<String, Vec<(String, u32, Vec<u8>)>>;

/// Normalized content: upper-cased paths and value names, values sorted.
fn norm(h: &Hive) -> Dump {
    h.dump()
        .unwrap()
        .into_iter()
        .map(|(k, vs)| {
            let mut v: Vec<_> = vs
                .into_iter()
                .map(|v| (v.name.to_uppercase(), v.ty, v.data))
                .collect();
            v.sort();
            (k.to_uppercase(), v)
        })
        .collect()
}

fn sample_hive() -> Hive {
    let mut h = Hive::new_empty("ROOT").unwrap();
    h.set_time(133_000_000_000_000_000);
    let k = h.create_key_path("ControlSet001\\Services\\disk").unwrap();
    h.set_value(k, "Type", REG_DWORD, &1u32.to_le_bytes())
        .unwrap();
    h.set_value(k, "Start", REG_DWORD, &0u32.to_le_bytes())
        .unwrap();
    h.set_value(
        k,
        "ImagePath",
        REG_EXPAND_SZ,
        &utf16z("System32\\drivers\\disk.sys"),
    )
    .unwrap();
    h.set_value(k, "Group", REG_SZ, &utf16z("SCSI Class"))
        .unwrap();
    h.set_value(k, "", REG_SZ, &utf16z("default \"quoted\""))
        .unwrap();
    h.set_value(
        k,
        "Multi",
        REG_MULTI_SZ,
        &[utf16z("a"), utf16z("bc"), vec![0, 0]].concat(),
    )
    .unwrap();
    h.set_value(k, "Q", REG_QWORD, &0x1122334455667788u64.to_le_bytes())
        .unwrap();
    h.set_value(k, "None", REG_NONE, &[]).unwrap();
    h.set_value(
        k,
        "Big",
        REG_BINARY,
        &(0..50000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    h.set_value(k, "BE", regf::REG_DWORD_BIG_ENDIAN, &[0, 0, 0, 5])
        .unwrap();
    let root = h.root();
    let (_, _) = h
        .create_key_ex(root, "Classy", Some("SomeClass"), false)
        .unwrap();
    let many = h.create_key(root, "Many").unwrap();
    for i in 0..700 {
        let s = h.create_key(many, &format!("Sub{:04}", i)).unwrap();
        h.set_value(s, "i", REG_DWORD, &(i as u32).to_le_bytes())
            .unwrap();
    }
    h
}

#[test]
fn hivex_reads_our_hives() {
    if !have("hivexregedit") || !have("hivexsh") {
        return;
    }
    let h = sample_hive();
    let p = tmp("ours.hive");
    std::fs::write(&p, h.to_bytes()).unwrap();
    assert!(check(&h.to_bytes()).is_empty());
    let out = Command::new("hivexregedit")
        .arg("--export")
        .arg(&p)
        .arg("\\")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hivexregedit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut back = Hive::new_empty("ROOT").unwrap();
    import_reg_text(&mut back, &text).unwrap();
    assert_eq!(norm(&back), norm(&h));
    // hivexsh lists the same subkeys.
    let out = Command::new("hivexsh")
        .arg(&p)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"cd ControlSet001\\Services\\disk\nlsval Start\ncd \\\nls\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines.contains(&"0"), "{}", s);
    for k in ["Classy", "ControlSet001", "Many"] {
        assert!(lines.contains(&k), "{} missing from hivexsh ls: {}", k, s);
    }
}

fn sample_reg() -> String {
    let mut t = String::from("Windows Registry Editor Version 5.00\n\n");
    t += "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor]\n\"s\"=\"hello \\\"w\\\" \\\\\"\n\"d\"=dword:deadbeef\n@=hex(2):25,00,41,00,25,00,00,00\n";
    t += "\"m\"=hex(7):61,00,00,00,62,00,00,00,00,00\n\"q\"=hex(b):01,02,03,04,05,06,07,08\n\"n\"=hex(0):\n";
    t += "\"big\"=hex:";
    let bytes: Vec<String> = (0..20000u32)
        .map(|i| format!("{:02x}", (i * 13) as u8))
        .collect();
    for (i, chunk) in bytes.chunks(20).enumerate() {
        if i > 0 {
            t += ",\\\n  ";
        }
        t += &chunk.join(",");
    }
    t += "\n\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\Many]\n\n";
    for i in 0..600 {
        t += &format!(
            "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\Many\\K{:04}]\n\"v\"=dword:{:08x}\n\n",
            i, i
        );
    }
    t += "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Other]\n\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Other\\Deep]\n\n";
    t += "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Other\\Deep\\Deeper]\n\"x\"=hex:01\n";
    t
}

#[test]
fn we_read_hivex_merged_hives() {
    if !have("hivexregedit") {
        return;
    }
    let p = tmp("merged.hive");
    let st = Command::new(TOOL)
        .args(["create", "--root", "ROOT"])
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    let reg = tmp("in.reg");
    std::fs::write(&reg, sample_reg()).unwrap();
    let out = Command::new("hivexregedit")
        .args(["--merge", "--prefix", "HKEY_LOCAL_MACHINE\\SOFTWARE"])
        .arg(&p)
        .arg(&reg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hivexregedit --merge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&p).unwrap();
    let theirs = Hive::from_bytes(&bytes).unwrap();
    let mut ours = Hive::new_empty("ROOT").unwrap();
    import_reg_text_prefix(
        &mut ours,
        &sample_reg(),
        Some("HKEY_LOCAL_MACHINE\\SOFTWARE"),
    )
    .unwrap();
    assert_eq!(norm(&theirs), norm(&ours));
    // The CLI reads it too.
    let out = Command::new(TOOL)
        .arg("query")
        .arg(&p)
        .args(["Vendor", "d"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "\"d\"=dword:deadbeef"
    );
    let probs = check(&bytes);
    eprintln!("check of the hivex-merged hive: {} problem(s)", probs.len());
    for p in &probs {
        eprintln!("  {}", p);
    }
    assert!(probs.is_empty());
}

#[test]
fn cli_roundtrip_and_errors() {
    let p = tmp("cli.hive");
    let run = |args: &[&str]| Command::new(TOOL).args(args).output().unwrap();
    let ps = p.to_str().unwrap();
    assert!(run(&["create", ps]).status.success());
    assert!(run(&["set", ps, "A\\B", "v", "dword", "0x2a"])
        .status
        .success());
    assert!(run(&["set", ps, "A", "s", "sz", "text"]).status.success());
    let o = run(&["query", ps, "a\\b", "V"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "\"v\"=dword:0000002a"
    );
    // Export, re-import into a new hive, same content.
    let reg = tmp("cli.reg");
    assert!(run(&["export", ps, "", "-o", reg.to_str().unwrap()])
        .status
        .success());
    let p2 = tmp("cli2.hive");
    assert!(run(&[
        "import",
        "--create",
        p2.to_str().unwrap(),
        reg.to_str().unwrap()
    ])
    .status
    .success());
    let a = Hive::from_bytes(&std::fs::read(&p).unwrap()).unwrap();
    let b = Hive::from_bytes(&std::fs::read(&p2).unwrap()).unwrap();
    assert_eq!(norm(&a), norm(&b));
    // Errors: non-zero exit with a message, no panic.
    let o = run(&["delete", ps, "A"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("STATUS_CANNOT_DELETE"));
    assert!(run(&["delete", ps, "A", "-r"]).status.success());
    let o = run(&["query", ps, "A"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("STATUS_OBJECT_NAME_NOT_FOUND"));
    std::fs::write(&p2, b"regf garbage").unwrap();
    for args in [
        vec!["check", p2.to_str().unwrap()],
        vec!["query", p2.to_str().unwrap(), ""],
    ] {
        let o = run(&args);
        assert!(!o.status.success());
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    }
    assert!(run(&["check", ps]).status.success());
}

#[test]
fn hivex_reads_our_bcd_and_system_hives() {
    if !have("hivexregedit") {
        return;
    }
    use regf::bcd::*;
    let spec = BcdSpec {
        key_name: "BCD00000001".into(),
        bootmgr_path: "\\EFI\\Microsoft\\Boot\\bootmgfw.efi".into(),
        bootmgr_device: vec![1, 0, 0, 0],
        timeout: 3,
        default: 0,
        entries: vec![BcdEntrySpec {
            guid: "{6f0b3d52-6b9a-4b39-9a4f-2f1f0a1d3c11}".into(),
            description: "ntrs".into(),
            path: "\\Windows\\system32\\winload.efi".into(),
            systemroot: "\\Windows".into(),
            load_options: Some("/DEBUG".into()),
            device: vec![2; 8],
        }],
    };
    let system = regf::regtext::hive_from_reg_text(
        "ROOT",
        include_str!("../../../image/registry/SYSTEM.reg"),
    )
    .unwrap();
    for (name, h) in [
        ("bcd.hive", build_bcd(&spec).unwrap()),
        ("system.hive", system),
    ] {
        let p = tmp(name);
        std::fs::write(&p, h.to_bytes()).unwrap();
        let out = Command::new("hivexregedit")
            .arg("--export")
            .arg(&p)
            .arg("\\")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut back = Hive::new_empty("ROOT").unwrap();
        import_reg_text(&mut back, &String::from_utf8(out.stdout).unwrap()).unwrap();
        assert_eq!(norm(&back), norm(&h), "{}", name);
    }
}

/// `ntrs-reg export -o` (the `reg export` format) and `hivexregedit --export` describe the same
/// keys and values: both import back to the same content.
#[test]
fn our_reg_export_agrees_with_hivexregedit() {
    if !have("hivexregedit") {
        return;
    }
    let h = sample_hive();
    let p = tmp("agree.hive");
    std::fs::write(&p, h.to_bytes()).unwrap();
    let reg = tmp("agree.reg");
    let o = Command::new(TOOL)
        .arg("export")
        .arg(&p)
        .args(["", "--prefix", "HKEY_LOCAL_MACHINE\\SOFTWARE", "-o"])
        .arg(&reg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = regf::regtext::decode_reg_file(&std::fs::read(&reg).unwrap()).unwrap();
    assert!(ours.starts_with("Windows Registry Editor Version 5.00\r\n\r\n"));
    assert!(ours.split("\r\n").all(|l| l.chars().count() <= 80));
    let out = Command::new("hivexregedit")
        .args(["--export", "--prefix", "HKEY_LOCAL_MACHINE\\SOFTWARE"])
        .arg(&p)
        .arg("\\")
        .output()
        .unwrap();
    assert!(out.status.success());
    let theirs = String::from_utf8(out.stdout).unwrap();
    let mut a = Hive::new_empty("ROOT").unwrap();
    import_reg_text(&mut a, &ours).unwrap();
    let mut b = Hive::new_empty("ROOT").unwrap();
    import_reg_text(&mut b, &theirs).unwrap();
    assert_eq!(norm(&a), norm(&b));
    assert_eq!(norm(&a), norm(&h));
}

/// A store edited by `ntrs-reg bcd` (create, set, displayorder, default, timeout, delete) stays
/// readable by hivex with the same content.
#[test]
fn hivex_reads_a_store_edited_by_ntrs_reg_bcd() {
    if !have("hivexregedit") {
        return;
    }
    use regf::bcd::*;
    let loader = "{6f0b3d52-6b9a-4b39-9a4f-2f1f0a1d3c11}";
    let spec = BcdSpec {
        key_name: "BCD00000001".into(),
        bootmgr_path: "\\EFI\\Microsoft\\Boot\\bootmgfw.efi".into(),
        bootmgr_device: regf::bcdedit::boot_device(),
        timeout: 3,
        default: 0,
        entries: vec![BcdEntrySpec {
            guid: loader.into(),
            description: "ntrs".into(),
            path: "\\Windows\\system32\\winload.efi".into(),
            systemroot: "\\Windows".into(),
            load_options: None,
            device: vec![],
        }],
    };
    let p = tmp("edited-bcd.hive");
    std::fs::write(&p, build_bcd(&spec).unwrap().to_bytes()).unwrap();
    let ps = p.to_str().unwrap();
    let new = "{0a0b0c0d-1111-2222-3333-444455556666}";
    for args in [
        &["/create", new, "/d", "Two", "/application", "osloader"][..],
        &["/set", new, "path", "\\Windows\\system32\\winload.efi"],
        &["/set", new, "loadoptions", "/DEBUG /SOS"],
        &["/set", new, "device", "boot"],
        &["/set", loader, "detecthal", "yes"],
        &["/displayorder", new, "/addlast"],
        &["/default", new],
        &["/timeout", "30"],
        &[
            "/create",
            "{0a0b0c0d-1111-2222-3333-444455556667}",
            "/d",
            "Gone",
            "/application",
            "resume",
        ],
        &["/delete", "{0a0b0c0d-1111-2222-3333-444455556667}"],
    ] {
        let mut a = vec!["bcd", ps];
        a.extend_from_slice(args);
        let o = Command::new(TOOL).args(&a).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let ours = Hive::from_bytes(&std::fs::read(&p).unwrap()).unwrap();
    let out = Command::new("hivexregedit")
        .arg("--export")
        .arg(&p)
        .arg("\\")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut back = Hive::new_empty("ROOT").unwrap();
    import_reg_text(&mut back, &String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(norm(&back), norm(&ours));
    let st = read_bcd(&ours).unwrap();
    assert_eq!(st.default.as_deref(), Some(new));
    assert_eq!(st.timeout, Some(30));
    assert_eq!(st.display_order, [loader, new]);
}
