//! The `ntrs-ntfs` tool end to end: format a partition inside a GPT disk
//! image, copy files in and out, list, stat, remove, check.

use std::path::PathBuf;
use std::process::Command;

fn tool(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ntrs-ntfs"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn ok(args: &[&str]) -> String {
    let (s, out) = tool(args);
    assert!(s, "ntrs-ntfs {args:?} failed: {out}");
    out
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ntrs-ntfs-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A 24 MiB disk with a GPT (protective MBR, primary header and entry array with their CRC32s;
/// no backup copy) whose partition 2 spans LBA 4096..=45055.
fn gpt_disk(path: &std::path::Path) {
    let mut disk = vec![0u8; 24 << 20];
    let total = (disk.len() / 512) as u64;
    // Protective MBR.
    disk[446 + 4] = 0xEE;
    disk[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    disk[446 + 12..446 + 16].copy_from_slice(&((total - 1) as u32).to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xAA;
    // Entry 2 (index 1): basic data partition type, some unique GUID.
    let e = &mut disk[1024 + 128..1024 + 256];
    e[0..16].copy_from_slice(&[
        0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99,
        0xC7,
    ]);
    e[16..32].copy_from_slice(&[7; 16]);
    e[0x20..0x28].copy_from_slice(&4096u64.to_le_bytes());
    e[0x28..0x30].copy_from_slice(&45055u64.to_le_bytes());
    let entries_crc = storage::crc32::crc32(&disk[1024..1024 + 128 * 128]);
    let h = &mut disk[512..1024];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[0x18..0x20].copy_from_slice(&1u64.to_le_bytes());
    h[0x20..0x28].copy_from_slice(&(total - 1).to_le_bytes());
    h[0x28..0x30].copy_from_slice(&34u64.to_le_bytes());
    h[0x30..0x38].copy_from_slice(&(total - 34).to_le_bytes());
    h[0x38..0x48].copy_from_slice(&[9; 16]);
    h[0x48..0x50].copy_from_slice(&2u64.to_le_bytes());
    h[0x50..0x54].copy_from_slice(&128u32.to_le_bytes());
    h[0x54..0x58].copy_from_slice(&128u32.to_le_bytes());
    h[0x58..0x5C].copy_from_slice(&entries_crc.to_le_bytes());
    let header_crc = storage::crc32::crc32(&h[..92]);
    h[0x10..0x14].copy_from_slice(&header_crc.to_le_bytes());
    std::fs::write(path, disk).unwrap();
}

#[test]
fn format_copy_list_stat_remove_check_in_a_gpt_partition() {
    let d = scratch("gpt");
    let img = d.join("disk.img");
    gpt_disk(&img);
    let img = img.to_str().unwrap();
    let (s, out) = tool(&[img, "--partition", "1", "info"]);
    assert!(
        !s && out.contains("partition 1 is not used (used: 2)"),
        "{out}"
    );
    ok(&[img, "--partition", "2", "format", "--label", "SYSTEM"]);
    // The first 2 MiB (GPT area) is untouched.
    let raw = std::fs::read(img).unwrap();
    assert_eq!(&raw[512..520], b"EFI PART");
    assert_eq!(&raw[4096 * 512 + 3..4096 * 512 + 11], b"NTFS    ");
    let host = d.join("kernel.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 127) as u8).collect();
    std::fs::write(&host, &data).unwrap();
    let p = |a: &[&str]| {
        let mut v = vec![img, "--partition", "2"];
        v.extend_from_slice(a);
        ok(&v)
    };
    p(&["mkdir", "/Windows/System32"]);
    p(&[
        "cp",
        host.to_str().unwrap(),
        ":/Windows/System32/ntoskrnl.exe",
    ]);
    let back = d.join("back.bin");
    p(&[
        "cp",
        ":/Windows/System32/ntoskrnl.exe",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let ls = p(&["ls", "-l", "/Windows/System32"]);
    assert!(ls.contains("300000") && ls.contains("ntoskrnl.exe"), "{ls}");
    let st = p(&["stat", "/Windows/System32/ntoskrnl.exe"]);
    assert!(
        st.contains("non-resident") && st.contains("lcn") && st.contains("security O:BA"),
        "{st}"
    );
    assert!(p(&["info"]).contains("\"SYSTEM\""));
    p(&["mv", "/Windows/System32/ntoskrnl.exe", "/nt.exe"]);
    assert_eq!(p(&["cat", "/nt.exe"]).len(), data.len()); // lossy text, same length for bytes < 0x80
    p(&["rm", "/nt.exe"]);
    let (s, out) = tool(&[img, "--partition", "2", "cat", "/nt.exe"]);
    assert!(!s && out.contains("STATUS_OBJECT_NAME_NOT_FOUND"), "{out}");
    assert!(p(&["check"]).contains("no problems"));
}

use ntfs::{FormatOptions, MemDevice};

/// 2022-06-18T04:26:40Z.
const T0: u64 = 133_000_000_000_000_000;

/// A 16 MiB volume image with `/Dir/a.txt`, `/Dir/b.bin` (1 MiB), `/Many` with `many` files.
fn volume(path: &std::path::Path, many: usize) {
    fn clock() -> u64 {
        T0
    }
    let opts = FormatOptions {
        label: "TEST".into(),
        time: T0,
        ..Default::default()
    };
    let mut v = ntfs::format(MemDevice::new(16 << 20), &opts).unwrap();
    v.clock = clock;
    v.create_dir_all("/Dir").unwrap();
    let a = v.write_file("/Dir/a.txt", b"hello\n").unwrap();
    v.set_times(a, T0 + 10_000_000, T0 + 20_000_000, T0 + 30_000_000)
        .unwrap();
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    v.write_file("/Dir/b.bin", &big).unwrap();
    v.create_dir_all("/Many").unwrap();
    for i in 0..many {
        v.write_file(&format!("/Many/a-rather-long-file-name-{i:05}.txt"), b"x")
            .unwrap();
    }
    std::fs::write(path, &v.into_device().data).unwrap();
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ntrs-ntfs"))
        .args(args)
        .output()
        .unwrap()
}

/// A failure: non-zero exit and exactly one stderr line naming the problem, no panic.
fn one_line_failure(o: &std::process::Output, what: &str) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{what}: succeeded");
    assert!(!e.contains("panicked"), "{what}: {e}");
    assert_eq!(e.lines().count(), 1, "{what}: {e}");
    assert!(e.starts_with("ntrs-ntfs: "), "{what}: {e}");
    e
}

#[test]
fn every_subcommand_takes_both_path_forms() {
    let d = scratch("paths");
    let img = d.join("v.img");
    volume(&img, 0);
    let img = img.to_str().unwrap();
    ok(&[img, "mkdir", ":/A/B"]);
    ok(&[img, "mkdir", "/C"]);
    for p in ["/", ":/"] {
        let ls = ok(&[img, "ls", p]);
        assert!(
            ls.contains("A\n") && ls.contains("C\n") && ls.contains("Dir\n"),
            "{ls}"
        );
    }
    assert!(ok(&[img, "ls", ":/A"]).contains("B"));
    assert_eq!(ok(&[img, "cat", ":/Dir/a.txt"]), "hello\n");
    assert_eq!(ok(&[img, "cat", "/Dir/a.txt"]), "hello\n");
    assert!(ok(&[img, "stat", ":/Dir/a.txt"]).contains("record"));
    ok(&[img, "mv", ":/C", "/D"]);
    ok(&[img, "cp", ":/Dir/a.txt", ":/D/copy.txt"]);
    assert_eq!(ok(&[img, "cat", "/D/copy.txt"]), "hello\n");
    ok(&[img, "rm", ":/D/copy.txt"]);
    ok(&[img, "rm", "/D"]);
    ok(&[img, "rm", ":/A/B"]);
    let (s, out) = tool(&[img, "ls", ":/D"]);
    assert!(!s && out.contains("STATUS_OBJECT_NAME_NOT_FOUND"), "{out}");
    // cp with no volume side says what it wants.
    let o = run(&[img, "cp", "x", "y"]);
    assert!(one_line_failure(&o, "cp x y").contains(":/path"));
    // --help documents the syntax and has examples.
    let h = ok(&["--help"]);
    assert!(h.contains(":/dir/file") && h.contains("Examples:"), "{h}");
}

#[test]
fn ls_hides_metafiles_unless_all_and_long_shows_details() {
    let d = scratch("ls");
    let img = d.join("v.img");
    volume(&img, 0);
    let img = img.to_str().unwrap();
    let ls = ok(&[img, "ls", "/"]);
    let names: Vec<&str> = ls.lines().collect();
    assert_eq!(names, ["Dir", "Many"], "{ls}");
    let all = ok(&[img, "ls", "-a", "/"]);
    for m in [
        "$MFT", "$MFTMirr", "$LogFile", "$Bitmap", "$UpCase", "$Secure", ".",
    ] {
        assert!(all.lines().any(|l| l == m), "{m} missing: {all}");
    }
    let long = ok(&[img, "ls", "-l", "/Dir"]);
    let a = long.lines().find(|l| l.ends_with(" a.txt")).unwrap();
    let f: Vec<&str> = a.split_whitespace().collect();
    // mode, file reference, size, created (date time), modified (date time), short name, name
    assert_eq!(f[0], "-a-------", "{a}");
    assert!(f[1].starts_with("0x0001") && f[1].len() == 18, "{a}");
    assert_eq!(f[2], "6");
    assert_eq!(
        &f[3..7],
        ["2022-06-18", "04:26:41", "2022-06-18", "04:26:42"],
        "{a}"
    );
    assert_eq!(f[7], "-");
    let dir = ok(&[img, "ls", "-l", "/"]);
    assert!(
        dir.lines()
            .any(|l| l.starts_with("d") && l.ends_with(" Dir")),
        "{dir}"
    );
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let d = scratch("pipe");
    let img = d.join("v.img");
    volume(&img, 3000);
    let img = img.to_str().unwrap();
    for args in [
        vec![img, "ls", "/Many"],
        vec![img, "ls", "-l", "/Many"],
        vec![img, "cat", "/Dir/b.bin"],
        vec![img, "timeline"],
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ntrs-ntfs"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        c.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
        drop(c.stdout.take()); // `| head -c 16`
        let o = c.wait_with_output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {:?} {e}", o.status);
        assert!(e.is_empty(), "{args:?}: {e}");
    }
}

#[test]
fn corrupt_and_truncated_images_fail_with_one_line() {
    let d = scratch("corrupt");
    let img = d.join("v.img");
    volume(&img, 40);
    let good = std::fs::read(&img).unwrap();
    let bad = d.join("bad.img");
    let badp = bad.to_str().unwrap();
    let cmds: [&[&str]; 12] = [
        &["ls", "-a", "/"],
        &["logfile"],
        &["recover", "--list"],
        &["secaudit"],
        &["mft", "0"],
        &["ads", "/"],
        &["ls", "-l", "/Many"],
        &["cat", "/Dir/b.bin"],
        &["stat", "/Dir/a.txt"],
        &["timeline"],
        &["check"],
        &["info"],
    ];
    // Truncated copies: each command fails with one line or succeeds, never panics; reading
    // beyond the end is named as such.
    for len in [0usize, 100, 512, 4096, 1 << 20, good.len() / 2] {
        std::fs::write(&bad, &good[..len]).unwrap();
        for c in cmds {
            let mut a = vec![badp];
            a.extend_from_slice(c);
            let o = run(&a);
            if !o.status.success() {
                let e = one_line_failure(&o, &format!("truncated to {len}: {c:?}"));
                assert!(
                    e.contains("not an NTFS volume")
                        || e.contains("past the end")
                        || e.contains("corrupt"),
                    "{len} {c:?}: {e}"
                );
            } else {
                assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
            }
        }
    }
    let o = run(&[badp, "--partition", "1", "ls"]);
    one_line_failure(&o, "GPT on a truncated image");
    // Damaged copies: bytes of the boot sector, the MFT and directory indexes overwritten.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut failures = 0;
    for round in 0..40 {
        let mut b = good.clone();
        for _ in 0..(1 + round % 8) {
            // Half the hits in the first 64 KiB (boot sector), the rest anywhere in the first
            // 4 MiB, where the MFT and the small directories live.
            let span = if rnd() % 2 == 0 { 1 << 16 } else { 4 << 20 };
            let at = (rnd() % span) as usize;
            let n = (rnd() % 64 + 1) as usize;
            for i in at..(at + n).min(b.len()) {
                b[i] = rnd() as u8;
            }
        }
        std::fs::write(&bad, &b).unwrap();
        for c in cmds {
            let mut a = vec![badp];
            a.extend_from_slice(c);
            let o = run(&a);
            if o.status.success() {
                assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
            } else {
                one_line_failure(&o, &format!("round {round}: {c:?}"));
                failures += 1;
            }
        }
    }
    assert!(failures > 0, "no corruption was noticed at all");
    // A missing image and bad arguments: one line too.
    one_line_failure(&run(&["/nonexistent.img", "ls"]), "missing image");
    one_line_failure(&run(&[badp, "frobnicate"]), "unknown subcommand");
}

#[test]
fn timeline_lists_macb_times_of_standard_information_and_file_names() {
    let d = scratch("timeline");
    let img = d.join("v.img");
    volume(&img, 0);
    let img = img.to_str().unwrap();
    let (s, _) = tool(&[img, "rm", "/Dir/b.bin"]);
    assert!(s);
    let csv = ok(&[img, "timeline"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "record,sequence,state,type,source,namespace,path,modified,accessed,changed,born,size,attributes"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 13), "{csv}");
    // set_times(a, created T0+1s, modified T0+2s, accessed T0+3s): $STANDARD_INFORMATION.
    let si = rows
        .iter()
        .find(|r| r[4] == "SI" && r[6] == "\\Dir\\a.txt")
        .unwrap();
    assert_eq!(si[2], "yes");
    assert_eq!(si[3], "file");
    assert_eq!(si[7], "2022-06-18T04:26:42.0000000Z"); // M
    assert_eq!(si[8], "2022-06-18T04:26:43.0000000Z"); // A
    assert_eq!(si[10], "2022-06-18T04:26:41.0000000Z"); // B
    assert_eq!(si[11], "6");
    // Its $FILE_NAME row names the same path, in its namespace.
    let fname = rows
        .iter()
        .find(|r| r[4] == "FN" && r[6] == "\\Dir\\a.txt")
        .unwrap();
    assert_eq!(fname[0], si[0]);
    assert!(["win32", "win32+dos", "posix"].contains(&fname[5]));
    // Metafiles and directories are in it; the root is `\`.
    assert!(rows.iter().any(|r| r[6] == "\\$MFT"));
    assert!(rows
        .iter()
        .any(|r| r[0] == "5" && r[6] == "\\" && r[3] == "dir"));
    // The deleted file's record is reported as deleted.
    assert!(rows.iter().any(|r| r[2] == "deleted"), "{csv}");
}

/// Every example of `ntrs-ntfs --help` runs (through `sh`, as typed) on images that have the
/// files they name.
#[test]
fn help_examples_work() {
    let d = scratch("examples");
    // disk.img: partition 2 of a GPT disk with /Windows/System32.
    let disk = d.join("disk.img");
    gpt_disk(&disk);
    let di = disk.to_str().unwrap();
    ok(&[di, "--partition", "2", "format"]);
    ok(&[di, "--partition", "2", "mkdir", "/Windows/System32"]);
    // vol.img: /Windows/System32/config/SYSTEM, /file.txt with a Zone.Identifier stream, /bootmgr.
    let opts = FormatOptions::default();
    let mut v = ntfs::format(MemDevice::new(16 << 20), &opts).unwrap();
    v.create_dir_all("/Windows/System32/config").unwrap();
    v.write_file("/Windows/System32/config/SYSTEM", b"regf")
        .unwrap();
    v.write_file("/file.txt", b"text").unwrap();
    v.write_file(
        "/file.txt:Zone.Identifier",
        b"[ZoneTransfer]\r\nZoneId=3\r\n",
    )
    .unwrap();
    v.write_file("/bootmgr", b"MZ").unwrap();
    // Deleted files: the pads' lower records are reused first by the examples that create
    // files, so /old.txt's record stays as it was.
    for p in ["/pad1", "/pad2", "/pad3", "/old.txt"] {
        v.write_file(p, b"deleted text").unwrap();
    }
    for p in ["/pad1", "/pad2", "/pad3", "/old.txt"] {
        v.remove(p).unwrap();
    }
    std::fs::write(d.join("vol.img"), &v.into_device().data).unwrap();
    std::fs::write(d.join("ntoskrnl.exe"), b"MZ kernel").unwrap();
    let help = ok(&["--help"]);
    let examples: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Examples:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim())
        .collect();
    assert!(examples.len() >= 8, "{help}");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ntrs-ntfs"))
        .parent()
        .unwrap();
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
        assert!(
            o.status.success(),
            "{e}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(std::fs::read(d.join("SYSTEM")).unwrap(), b"regf");
    assert!(std::fs::read_to_string(d.join("timeline.csv"))
        .unwrap()
        .contains("\\bootmgr"));
    assert_eq!(std::fs::read(d.join("old.txt")).unwrap(), b"deleted text");
}

#[test]
fn ads_lists_named_data_streams() {
    let d = scratch("ads");
    let img = d.join("v.img");
    volume(&img, 0);
    let img = img.to_str().unwrap();
    let host = d.join("zone");
    std::fs::write(&host, b"[ZoneTransfer]\r\nZoneId=3\r\n").unwrap();
    let h = host.to_str().unwrap();
    ok(&[img, "cp", h, ":/Dir/a.txt:Zone.Identifier"]);
    ok(&[img, "cp", h, ":/Dir:OnTheDirectory"]);
    assert_eq!(
        ok(&[img, "ads"]),
        "/Dir:OnTheDirectory 26\n/Dir/a.txt:Zone.Identifier 26\n"
    );
    assert_eq!(
        ok(&[img, "ads", ":/Dir/a.txt"]),
        "/Dir/a.txt:Zone.Identifier 26\n"
    );
    assert_eq!(ok(&[img, "ads", "/Many"]), "");
}

#[test]
fn man_page_and_completions() {
    let man = ok(&["man"]);
    assert!(man.contains(".TH ntrs-ntfs 1"), "{man}");
    assert!(
        man.contains("timeline") && man.contains("Examples:"),
        "{man}"
    );
    for (shell, mark) in [
        ("bash", "complete "),
        ("zsh", "#compdef ntrs-ntfs"),
        ("fish", "complete -c ntrs-ntfs"),
    ] {
        let s = ok(&["completions", shell]);
        assert!(s.contains(mark) && s.contains("timeline"), "{shell}: {s}");
    }
    one_line_failure(&run(&["completions", "cmd.exe"]), "unknown shell");
}

#[test]
fn mft_dumps_a_record_in_use_or_not() {
    let d = scratch("mft");
    let img = d.join("v.img");
    volume(&img, 0);
    let img = img.to_str().unwrap();
    let st = ok(&[img, "stat", "/Dir/a.txt"]);
    let rec = st.split_whitespace().nth(1).unwrap().to_string();
    let m = ok(&[img, "mft", &rec]);
    assert!(
        m.starts_with(&format!("record {rec} sequence 1 (in use)")),
        "{m}"
    );
    assert!(
        m.contains("$STANDARD_INFORMATION") && m.contains("name \"a.txt\""),
        "{m}"
    );
    assert!(m.contains("modified 2022-06-18T04:26:42.0000000Z"), "{m}");
    let big = ok(&[img, "stat", "/Dir/b.bin"]);
    let brec = big.split_whitespace().nth(1).unwrap().to_string();
    assert!(ok(&[img, "mft", &brec]).contains(" lcn "));
    ok(&[img, "rm", "/Dir/a.txt"]);
    let m = ok(&[img, "mft", &rec]);
    assert!(
        m.starts_with(&format!("record {rec} sequence 2 (not in use)")),
        "{m}"
    );
    one_line_failure(&run(&[img, "mft", "99999999"]), "record beyond the MFT");
}

#[test]
fn generated_text_that_cannot_be_written_fails_with_one_line() {
    // `ntrs-ntfs man > /dev/full`: one error line and a failure, no panic.
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not a Linux host
    };
    for args in [vec!["man"], vec!["completions", "bash"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_ntrs-ntfs"))
            .args(&args)
            .stdout(std::process::Stdio::from(full.try_clone().unwrap()))
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}: exit 0 with the output lost");
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains("writing the output"), "{args:?}: {e}");
    }
}

/// A volume with deleted files: `/Dir/big.bin` (non-resident, 300,000 bytes), `/note.txt`
/// (resident) and a kept file; returns the big file's content and record.
fn deleted_volume(path: &std::path::Path) -> (Vec<u8>, u64) {
    let mut v = ntfs::format(MemDevice::new(16 << 20), &FormatOptions::default()).unwrap();
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    v.create_dir_all("/Dir").unwrap();
    let n = v.write_file("/Dir/big.bin", &big).unwrap();
    v.write_file("/note.txt", b"a resident note").unwrap();
    v.write_file("/kept.txt", b"kept").unwrap();
    v.remove("/Dir/big.bin").unwrap();
    v.remove("/note.txt").unwrap();
    std::fs::write(path, &v.into_device().data).unwrap();
    (big, n)
}

/// `recover`: the list, copies by record, path and name (byte-exact), refusals, and the same
/// records as ntfs-3g's ntfsundelete finds (when installed).
#[test]
fn recover_lists_and_copies_deleted_files() {
    let d = scratch("recover");
    let img = d.join("v.img");
    let (big, n) = deleted_volume(&img);
    let im = img.to_str().unwrap();
    let list = ok(&[im, "recover", "--list"]);
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows.iter()
            .any(|r| r.contains("300000") && r.contains("intact") && r.ends_with("\\Dir\\big.bin")),
        "{list}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains(" 15 ") && r.ends_with("\\note.txt")),
        "{list}"
    );
    let out = d.join("by-record.bin");
    let msg = ok(&[im, "recover", &n.to_string(), "-o", out.to_str().unwrap()]);
    assert!(msg.contains("none reallocated per $Bitmap"), "{msg}");
    assert_eq!(std::fs::read(&out).unwrap(), big);
    let out2 = d.join("by-path.bin");
    ok(&[im, "recover", "/Dir/big.bin", "-o", out2.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out2).unwrap(), big);
    let o = run(&[im, "recover", "note.txt", "-o", "-"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, b"a resident note");
    // Refusals: one line each.
    one_line_failure(
        &run(&[im, "recover", "/Dir/big.bin", "-o", out.to_str().unwrap()]),
        "existing output",
    );
    one_line_failure(
        &run(&[im, "recover", "kept.txt", "-o", "-"]),
        "a file in use",
    );
    one_line_failure(&run(&[im, "recover", "12345", "-o", "-"]), "no such record");
    one_line_failure(&run(&[im, "recover", "/Dir/big.bin"]), "no -o");
    // Reuse the clusters: the volume fills up until a new file takes them.
    let mut v = ntfs::Volume::open(MemDevice {
        data: std::fs::read(&img).unwrap(),
    })
    .unwrap();
    for i in 0..200 {
        if v.write_file(&format!("/fill{i}.bin"), &[0xEE; 100_000])
            .is_err()
        {
            break;
        }
        match v.deleted_file(n) {
            Ok(f) if f.intact() => continue,
            _ => break,
        }
    }
    std::fs::write(&img, &v.into_device().data).unwrap();
    let list = ok(&[im, "recover", "--list"]);
    if list.contains("\\Dir\\big.bin") {
        assert!(list.contains("clusters reallocated"), "{list}");
        let e = one_line_failure(
            &run(&[im, "recover", &n.to_string(), "-o", "-"]),
            "reallocated",
        );
        assert!(e.contains("--force") && e.contains("$Bitmap"), "{e}");
        let o = run(&[im, "recover", &n.to_string(), "-o", "-", "--force"]);
        assert!(o.status.success());
        assert_eq!(o.stdout.len(), big.len());
        assert_ne!(o.stdout, big);
    }
}

#[test]
fn recover_finds_what_ntfsundelete_finds() {
    if !std::path::Path::new("/usr/sbin/ntfsundelete").exists() {
        if std::env::var("NTRS_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("ntfsundelete is not installed and NTRS_REQUIRE_INTEROP=1");
        }
        eprintln!("SKIP: ntfsundelete not installed (Debian ntfs-3g)");
        return;
    }
    let d = scratch("undelete");
    let img = d.join("v.img");
    let (big, n) = deleted_volume(&img);
    let im = img.to_str().unwrap();
    let o = Command::new("/usr/sbin/ntfsundelete")
        .args(["--scan", im])
        .output()
        .unwrap();
    let theirs: std::collections::BTreeSet<(u64, String)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let rec = f.first()?.parse().ok()?;
            let name = f.last()?.to_string();
            (name != "<none>").then_some((rec, name))
        })
        .collect();
    let ours: std::collections::BTreeSet<(u64, String)> = ok(&[im, "recover", "--list"])
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f.last().unwrap().rsplit('\\').next().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    // ntfsundelete writes whole clusters; the first `size` bytes are the file, as ours.
    let u = d.join("u.bin");
    let o = Command::new("/usr/sbin/ntfsundelete")
        .args([
            "--undelete",
            "--inodes",
            &n.to_string(),
            "--output",
            u.to_str().unwrap(),
            im,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(&std::fs::read(&u).unwrap()[..big.len()], &big[..]);
}

/// `secaudit`: descriptors with ids, verified hashes, SDDL and users; a damaged descriptor is a
/// problem (exit 1); ntfs-3g's ntfssecaudit counts the same entries and agrees there are no
/// errors on the undamaged volume (when installed).
#[test]
fn secaudit_shows_descriptors_and_finds_damage() {
    let d = scratch("secaudit");
    let img = d.join("v.img");
    let mut v = ntfs::format(MemDevice::new(16 << 20), &FormatOptions::default()).unwrap();
    let sd = security::sddl::parse("O:SYG:SYD:P(A;;FA;;;SY)(A;;0x1200a9;;;BU)")
        .unwrap()
        .to_bytes();
    let f = v.write_file("/private.txt", b"p").unwrap();
    let id = v.set_security(f, &sd).unwrap();
    let g = v.write_file("/private2.txt", b"q").unwrap();
    assert_eq!(v.set_security(g, &sd).unwrap(), id);
    let sds = v
        .open_stream(
            9,
            ntfs::attr::AT_DATA,
            &"$SDS".encode_utf16().collect::<Vec<_>>(),
        )
        .unwrap();
    let cs = v.cluster_size();
    std::fs::write(&img, &v.into_device().data).unwrap();
    let im = img.to_str().unwrap();
    let t = ok(&[im, "secaudit"]);
    assert!(
        t.starts_with("$Secure: 2 descriptors in $SDS, 2 $SII entries, 2 $SDH entries"),
        "{t}"
    );
    let block = t
        .split("\n\n")
        .find(|b| b.contains(&format!("id {id:#x} ")))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        block.contains("(ok)") && block.contains("mirror ok $SII ok $SDH ok"),
        "{block}"
    );
    assert!(
        block.contains("O:SYG:SYD:P(A;;FA;;;SY)(A;;0x1200a9;;;BU)"),
        "{block}"
    );
    assert!(
        block.contains("used by 2 file(s)")
            && block.contains("\\private.txt (record")
            && block.contains("\\private2.txt"),
        "{block}"
    );
    if std::path::Path::new("/usr/bin/ntfssecaudit").exists() {
        let o = Command::new("/usr/bin/ntfssecaudit")
            .args(["-a", im])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout);
        // Same entries in both indexes. (ntfssecaudit also reports "Security attribute is too
        // long" past the last mirror entry when lib/ntfs ends $SDS unpadded: see docs/ntfs.md.)
        assert!(
            s.contains("2 valid entries in $SII")
                && s.contains("2 valid entries in $SDH")
                && s.contains("All keys are present in all lists"),
            "{s}"
        );
    }
    // Damage the second descriptor's bytes in the primary copy: its hash and mirror disagree.
    let off = t
        .split("\n\n")
        .find(|b| b.contains(&format!("id {id:#x} ")))
        .unwrap();
    let off = u64::from_str_radix(
        off.split("offset 0x")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap(),
        16,
    )
    .unwrap();
    let lcn = sds.runs[0].lcn.unwrap();
    let at = (lcn * cs + off + 20 + 18) as usize;
    let mut b = std::fs::read(&img).unwrap();
    b[at] ^= 0x5a;
    std::fs::write(&img, &b).unwrap();
    let o = run(&[im, "secaudit"]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("(WRONG)") && out.contains("mirror DIFFERS"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "problem: id {id:#x}: the recorded hash is not the descriptor's"
        )),
        "{out}"
    );
    one_line_failure(&o, "damaged $SDS");
}

#[test]
fn logfile_dumps_records_and_recovery_makes_the_volume_clean() {
    use ntfs::{BlockDevice, MemDevice, Volume};
    let d = scratch("logfile");
    let img = d.join("v.img");
    let im = img.to_str().unwrap();
    ok(&[im, "format", "--size-mib", "16"]);
    // Write with journaling on and "crash" (no clean shutdown), through the library.
    let mut v = Volume::open(MemDevice::from_vec(std::fs::read(&img).unwrap())).unwrap();
    v.enable_logging().unwrap();
    v.create_dir_all("/d").unwrap();
    v.write_file("/d/a.txt", b"journaled").unwrap();
    let mut dev = v.into_device();
    dev.flush().unwrap();
    std::fs::write(&img, &dev.data).unwrap();

    let t = ok(&[im, "logfile"]);
    assert!(t.contains("restart page 0 at 0x0: RSTR LFS 1.1"), "{t}");
    assert!(t.contains("client 0 \"NTFS\""), "{t}");
    assert!(!t.contains("(clean)"), "{t}");
    // Windows' logical operations, with their data decoded.
    assert!(t.contains("redo InitializeFileRecordSegment"), "{t}");
    assert!(t.contains("redo AddIndexEntryRoot"), "{t}");
    assert!(t.contains("\"a.txt\""), "{t}");
    assert!(t.contains("redo SetBitsInNonresidentBitMap"), "{t}");
    assert!(t.contains(": bits 0x"), "{t}");
    // A page's image before its transaction's first change.
    assert!(
        t.contains("redo Noop (0) undo UpdateNonresidentValue"),
        "{t}"
    );
    assert!(t.contains("redo ForgetTransaction"), "{t}");
    // The checker sees the dirty log; recovery replays it and the checker is satisfied.
    let (good, out) = tool(&[im, "check"]);
    assert!(!good && out.contains("not marked clean"), "{out}");
    let r = ok(&[im, "logfile", "--recover"]);
    assert!(r.contains("recovery:"), "{r}");
    ok(&[im, "check"]);
    assert_eq!(ok(&[im, "cat", "/d/a.txt"]), "journaled");
    let t = ok(&[im, "logfile", "--limit", "1"]);
    assert!(t.contains("(clean)") && t.contains("1 record(s)"), "{t}");
    // Raw mode on random bytes fails with one line, no panic.
    let raw = d.join("raw.bin");
    std::fs::write(
        &raw,
        (0..100_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let o = run(&[raw.to_str().unwrap(), "logfile", "--raw"]);
    one_line_failure(&o, "random $LogFile");
}

#[test]
fn usn_lists_the_change_journal() {
    use ntfs::usn::*;
    use ntfs::{MemDevice, Volume};
    let d = scratch("usn");
    let img = d.join("v.img");
    let im = img.to_str().unwrap();
    ok(&[im, "format", "--size-mib", "16"]);
    let (good, out) = tool(&[im, "usn"]);
    assert!(!good && out.contains("no USN journal"), "{out}");
    let mut v = Volume::open(MemDevice::from_vec(std::fs::read(&img).unwrap())).unwrap();
    v.create_usn_journal(1 << 20, 64 << 10, 0xABCD).unwrap();
    let n = v.write_file("/note.txt", b"x").unwrap();
    v.usn_append(n, USN_REASON_FILE_CREATE, 0x01DC_0000_0000_0000)
        .unwrap();
    v.usn_append(
        n,
        USN_REASON_FILE_CREATE | USN_REASON_DATA_EXTEND | USN_REASON_CLOSE,
        0x01DC_0000_0000_0000,
    )
    .unwrap();
    std::fs::write(&img, &v.into_device().data).unwrap();
    let t = ok(&[im, "usn"]);
    assert!(t.contains("Usn Journal ID   : 0x000000000000abcd"), "{t}");
    assert!(t.contains("Next Usn         : 0x00000000000000a0"), "{t}");
    assert!(t.contains("Usn               : 0\n"), "{t}");
    assert!(t.contains("Usn               : 80\n"), "{t}");
    assert!(t.contains("File name         : note.txt"), "{t}");
    assert!(
        t.contains("Reason            : 0x00000100: File create\n"),
        "{t}"
    );
    assert!(
        t.contains("Reason            : 0x80000102: Data extend | File create | Close"),
        "{t}"
    );
    assert!(t.contains("Record length     : 80"), "{t}");
    assert!(t.contains("Parent file ID    : 0005000000000005"), "{t}");
}
