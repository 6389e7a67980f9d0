//! The ntrs-reg binary: opening dirty hives, deleted-key recovery, query/export formats.

use std::path::PathBuf;
use std::process::{Command, Output};

use regf::log::{LoggedHive, MemFiles};
use regf::*;

const TOOL: &str = env!("CARGO_BIN_EXE_ntrs-reg");

fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ntrs-reg-cli-{}-{}", std::process::id(), test));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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

/// A clean hive file made dirty as Windows leaves it mid-flush: primary sequence number one
/// ahead of the secondary, checksum recomputed.
fn make_dirty(mut b: Vec<u8>) -> Vec<u8> {
    let s2 = u32::from_le_bytes(b[8..12].try_into().unwrap());
    b[4..8].copy_from_slice(&(s2 + 1).to_le_bytes());
    let sum = base_checksum(&b[..PAGE]);
    b[508..512].copy_from_slice(&sum.to_le_bytes());
    b
}

fn sample() -> Hive {
    let mut h = Hive::new_empty("SOFTWARE").unwrap();
    h.set_time(133_000_000_000_000_000);
    let k = h.create_key_path("Vendor\\App").unwrap();
    h.set_value(k, "Version", REG_SZ, &utf16z("1.2")).unwrap();
    h
}

#[test]
fn dirty_hive_without_logs_is_read_with_one_warning() {
    let d = dir("dirty");
    let p = d.join("SOFTWARE");
    std::fs::write(&p, make_dirty(sample().to_bytes())).unwrap();
    let ps = p.to_str().unwrap();
    let o = run(&["query", ps, "Vendor\\App", "Version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"Version\"=\"1.2\""), "{}", stdout(&o));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{}", e);
    assert!(
        e.contains("warning") && e.contains("dirty") && e.contains("not applied"),
        "{}",
        e
    );
    // --strict keeps the configuration manager's refusal: one line, non-zero exit.
    let o = run(&["--strict", "query", ps, "Vendor\\App"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{}", e);
    assert!(e.contains("STATUS_REGISTRY_CORRUPT"), "{}", e);
    // --logs without logs beside the hive is an error.
    let o = run(&["query", ps, "Vendor\\App", "--logs"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no transaction log"), "{}", stderr(&o));
}

#[test]
fn dirty_hive_with_logs_beside_it_is_recovered() {
    let d = dir("logs");
    let mut files = MemFiles::default();
    let mut lh = LoggedHive::create(&mut files, sample()).unwrap();
    let k = lh.hive.open_key("Vendor\\App").unwrap();
    lh.hive
        .set_value(k, "Version", REG_SZ, &utf16z("2.0"))
        .unwrap();
    // Interrupt the flush after the log and the primary's first base block write.
    files.writes = 0;
    files.fail_after = Some(4);
    assert!(lh.flush(&mut files).is_err());
    let p = d.join("SOFTWARE");
    let ps = p.to_str().unwrap();
    std::fs::write(&p, &files.files[0]).unwrap();
    std::fs::write(d.join("SOFTWARE.LOG1"), &files.files[1]).unwrap();
    std::fs::write(d.join("SOFTWARE.LOG2"), &files.files[2]).unwrap();
    let o = run(&["query", ps, "Vendor\\App", "Version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"2.0\""), "{}", stdout(&o));
    assert!(stderr(&o).contains("recovered"), "{}", stderr(&o));
    let o = run(&["--strict", "query", ps, "Vendor\\App", "Version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // --no-logs: the primary as it is (the old value), with the warning.
    let o = run(&["--no-logs", "query", ps, "Vendor\\App", "Version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"1.2\""), "{}", stdout(&o));
    assert!(stderr(&o).contains("dirty"), "{}", stderr(&o));
    assert!(!run(&["--no-logs", "--strict", "query", ps, ""])
        .status
        .success());
}

#[test]
fn deleted_recovers_a_key_deleted_by_the_tool() {
    let d = dir("deleted");
    let p = d.join("SOFTWARE");
    std::fs::write(&p, sample().to_bytes()).unwrap();
    let ps = p.to_str().unwrap();
    let o = run(&["deleted", ps]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("; 0 deleted key(s), 0 deleted value(s)"));
    assert!(
        run(&["set", ps, "Vendor\\App\\Sub", "Name", "sz", "secret"])
            .status
            .success()
    );
    assert!(run(&["delete", ps, "Vendor\\App\\Sub"]).status.success());
    let o = run(&["deleted", ps]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("[Vendor\\App\\Sub]"), "{}", out);
    assert!(out.contains("\"Name\"=\"secret\""), "{}", out);
    let o = run(&["deleted", ps, "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["keys"][0]["path"], "Vendor\\App\\Sub");
    assert_eq!(j["keys"][0]["values"][0]["data"], "secret");
    assert_eq!(j["keys"][0]["values"][0]["type"], "REG_SZ");
}

#[test]
fn query_and_export_show_times_sddl_and_json() {
    let d = dir("query");
    let p = d.join("SOFTWARE");
    let mut h = sample();
    let k = h.open_key("Vendor\\App").unwrap();
    h.set_value(k, "Count", REG_DWORD, &42u32.to_le_bytes())
        .unwrap();
    h.set_value(
        k,
        "List",
        REG_MULTI_SZ,
        &[utf16z("a"), utf16z("b"), vec![0, 0]].concat(),
    )
    .unwrap();
    std::fs::write(&p, h.to_bytes()).unwrap();
    let ps = p.to_str().unwrap();
    // 133000000000000000 is 2022-06-18T04:26:40Z.
    let o = run(&["query", ps, "Vendor\\App"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("; last write 2022-06-18T04:26:40.0000000Z"),
        "{}",
        out
    );
    // The default descriptor of a new hive: Administrators and SYSTEM full, Everyone read.
    assert!(
        out.contains("; security O:BAG:SYD:(A;CI;KA;;;BA)(A;CI;KA;;;SY)(A;CI;KR;;;WD)"),
        "{}",
        out
    );
    let o = run(&["query", ps, "Vendor\\App", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["path"], "Vendor\\App");
    assert_eq!(j["last_write"], "2022-06-18T04:26:40.0000000Z");
    assert_eq!(j["values"][0]["data"], "1.2");
    assert_eq!(j["values"][1]["data"], 42);
    assert_eq!(j["values"][2]["data"], serde_json::json!(["a", "b"]));
    let o = run(&["query", ps, "Vendor\\App", "Count", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["type"], "REG_DWORD");
    let o = run(&["export", ps, "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let paths: Vec<&str> = j["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["", "Vendor", "Vendor\\App"]);
    // export -o writes what regf::regtext::export_reg_file makes: UTF-16LE, BOM, CRLF.
    let reg = d.join("out.reg");
    let o = run(&[
        "export",
        ps,
        "Vendor",
        "--prefix",
        "HKEY_LOCAL_MACHINE\\SOFTWARE",
        "-o",
    ]
    .iter()
    .copied()
    .chain([reg.to_str().unwrap()])
    .collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let b = std::fs::read(&reg).unwrap();
    assert_eq!(&b[..2], &[0xFF, 0xFE]);
    let text = regf::regtext::decode_reg_file(&b).unwrap();
    assert!(text.starts_with(
        "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor]\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\App]\r\n\"Version\"=\"1.2\"\r\n"
    ), "{}", text);
    assert!(text.ends_with("\r\n\r\n"));
}

/// Every example of `ntrs-reg --help` runs (through `sh`, as typed) on hives that have the keys
/// they name.
#[test]
fn help_examples_work() {
    let d = dir("examples");
    let mut system = Hive::new_empty("SYSTEM").unwrap();
    let k = system
        .create_key_path("ControlSet001\\Services\\disk")
        .unwrap();
    system
        .set_value(k, "Start", REG_DWORD, &0u32.to_le_bytes())
        .unwrap();
    std::fs::write(d.join("SYSTEM"), system.to_bytes()).unwrap();
    for h in ["SOFTWARE", "NTUSER.DAT", "SAM"] {
        std::fs::write(d.join(h), Hive::new_empty(h).unwrap().to_bytes()).unwrap();
    }
    std::fs::write(d.join("BCD"), bcd_store().to_bytes()).unwrap();
    let help = stdout(&run(&["--help"]));
    let examples: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Examples:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim())
        .collect();
    assert!(examples.len() >= 6, "{help}");
    let bin = std::path::Path::new(TOOL).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for e in examples {
        let o = Command::new("sh")
            .arg("-c")
            .arg(e)
            .current_dir(&d)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{e}: {}", stderr(&o));
    }
    assert!(d.join("system.reg").exists());
}

#[test]
fn man_page_and_completions() {
    let man = stdout(&run(&["man"]));
    assert!(man.contains(".TH ntrs-reg 1"), "{man}");
    assert!(
        man.contains("deleted") && man.contains("Examples:"),
        "{man}"
    );
    for (shell, mark) in [
        ("bash", "complete "),
        ("zsh", "#compdef ntrs-reg"),
        ("fish", "complete -c ntrs-reg"),
    ] {
        let o = run(&["completions", shell]);
        assert!(o.status.success());
        let s = stdout(&o);
        assert!(s.contains(mark) && s.contains("deleted"), "{shell}: {s}");
    }
}

#[test]
fn an_output_that_cannot_be_written_fails_with_one_line() {
    // `ntrs-reg ... > /dev/full`: every write fails with ENOSPC; the tool
    // must say so and fail rather than exit 0 with the output lost.
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not a Linux host
    };
    let d = dir("full");
    let p = d.join("SOFTWARE");
    std::fs::write(&p, sample().to_bytes()).unwrap();
    let ps = p.to_str().unwrap();
    for args in [
        vec!["export", ps],
        vec!["query", ps, "Vendor\\App"],
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
    let d = dir("pipe");
    let p = d.join("SOFTWARE");
    let mut h = sample();
    for i in 0..3000 {
        h.create_key_path(&format!("Many\\Key{i:05}")).unwrap();
    }
    std::fs::write(&p, h.to_bytes()).unwrap();
    let ps = p.to_str().unwrap();
    for args in [vec!["export", ps], vec!["query", ps, "Many"]] {
        let mut c = Command::new(TOOL)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        c.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
        drop(c.stdout.take()); // `| head -c 16`
        let o = c.wait_with_output().unwrap();
        let e = stderr(&o);
        assert!(o.status.success(), "{args:?}: {:?} {e}", o.status);
        assert!(e.is_empty(), "{args:?}: {e}");
    }
}

pub const LOADER: &str = "{6b9a7d36-0c2f-4a39-8d1c-4e8c1b2a7f01}";

/// A store shaped as the image builder's: a boot manager and one OS loader (the default).
fn bcd_store() -> Hive {
    use regf::bcd::*;
    build_bcd(&BcdSpec {
        key_name: "BCD00000001".into(),
        bootmgr_path: "\\EFI\\Microsoft\\Boot\\bootmgfw.efi".into(),
        bootmgr_device: regf::bcdedit::boot_device(),
        timeout: 1,
        default: 0,
        entries: vec![BcdEntrySpec {
            guid: LOADER.into(),
            description: "ntrs".into(),
            path: "\\Windows\\System32\\winload.efi".into(),
            systemroot: "\\Windows".into(),
            load_options: None,
            device: regf::bcdedit::boot_device(),
        }],
    })
    .unwrap()
}

/// `ntrs-reg bcd`: /enum as bcdedit prints it, the edits, and the boot manager's parser
/// (`regf::bcd::read_bcd`) reading the edited file; bad arguments fail with one line.
#[test]
fn bcd_enum_and_edits() {
    let d = dir("bcd");
    let p = d.join("BCD");
    std::fs::write(&p, bcd_store().to_bytes()).unwrap();
    let ps = p.to_str().unwrap();
    let ok = |args: &[&str]| {
        let mut a = vec!["bcd", ps];
        a.extend_from_slice(args);
        let o = run(&a);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let t = ok(&[]);
    assert!(t.starts_with("Windows Boot Manager\n--------------------\nidentifier              {bootmgr}\ndevice                  boot\n"), "{t}");
    assert!(t.contains("Windows Boot Loader\n-------------------\nidentifier              {default}\ndevice                  boot\npath                    \\Windows\\System32\\winload.efi\ndescription             ntrs\nosdevice                boot\nsystemroot              \\Windows\n"), "{t}");
    let created = ok(&["/create", "/d", "Second OS", "/application", "osloader"]);
    let guid = created
        .strip_prefix("The entry ")
        .and_then(|r| r.strip_suffix(" was successfully created.\n"))
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    assert!(regf::bcdedit::is_guid(&guid), "{guid}");
    ok(&["/set", &guid, "path", "\\Windows\\System32\\winload.efi"]);
    ok(&["/set", &guid, "systemroot", "\\Windows"]);
    ok(&["/set", &guid, "loadoptions", "/DEBUG"]);
    ok(&["/set", &guid, "nx", "OptIn"]);
    ok(&["/set", &guid, "bootmenupolicy", "Standard"]);
    ok(&["/set", &guid, "custom:26000027", "yes"]);
    ok(&["/displayorder", &guid, "/addfirst"]);
    ok(&["/default", &guid]);
    ok(&["/timeout", "12"]);
    let st = regf::bcd::read_bcd(&Hive::from_bytes(&std::fs::read(&p).unwrap()).unwrap()).unwrap();
    assert_eq!(st.default.as_deref(), Some(guid.as_str()));
    assert_eq!(st.timeout, Some(12));
    assert_eq!(st.display_order, [guid.clone(), LOADER.to_string()]);
    assert_eq!(st.entries[0].load_options.as_deref(), Some("/DEBUG"));
    let t = ok(&["/enum", "{default}"]);
    assert!(t.contains("description             Second OS\n"), "{t}");
    assert!(t.contains("nx                      OptIn\n"), "{t}");
    assert!(t.contains("bootmenupolicy          Standard\n"), "{t}");
    assert!(t.contains("osltestsigning          Yes\n"), "{t}");
    let v = ok(&["/enum", "all", "/v"]);
    assert!(
        v.contains(&format!("identifier              {guid}\n")),
        "{v}"
    );
    assert!(
        v.contains(&format!("default                 {guid}\n")),
        "{v}"
    );
    ok(&["/deletevalue", &guid, "nx"]);
    assert!(!ok(&["/enum", &guid]).contains("nx "));
    ok(&["/delete", &guid]);
    let st = regf::bcd::read_bcd(&Hive::from_bytes(&std::fs::read(&p).unwrap()).unwrap()).unwrap();
    assert_eq!(st.display_order, [LOADER]);
    assert_eq!(st.entries.len(), 1);
    assert!(check(&std::fs::read(&p).unwrap()).is_empty());
    // Failures: one line, non-zero exit, the store unchanged.
    let before = std::fs::read(&p).unwrap();
    for bad in [
        &["/set", "{bootmgr}", "osdevice", "boot"][..],
        &["/set", LOADER, "nx", "Sometimes"],
        &["/set", LOADER, "osdevice", "partition=C:"],
        &["/set", "{current}", "nx", "OptIn"],
        &["/delete", "{bootmgr}"],
        &["/default", "{12345678-0000-0000-0000-000000000000}"],
        &["/timeout", "soon"],
        &["/create", "/d", "x"],
        &["/displayorder", "{memdiag}", "/addlast"],
        &["/enum", "nonsense"],
        &["/frobnicate"],
    ] {
        let mut a = vec!["bcd", ps];
        a.extend_from_slice(bad);
        let o = run(&a);
        assert!(!o.status.success(), "{bad:?}");
        assert_eq!(stderr(&o).lines().count(), 1, "{bad:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    assert_eq!(std::fs::read(&p).unwrap(), before);
    // A hive that is no BCD store.
    let q = d.join("NOTBCD");
    std::fs::write(&q, sample().to_bytes()).unwrap();
    let o = run(&["bcd", q.to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("not a BCD store"),
        "{}",
        stderr(&o)
    );
}
