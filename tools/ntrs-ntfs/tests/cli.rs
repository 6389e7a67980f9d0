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

/// A 24 MiB disk with a GPT whose partition 2 spans LBA 4096..=45055.
fn gpt_disk(path: &std::path::Path) {
    let mut disk = vec![0u8; 24 << 20];
    let h = &mut disk[512..1024];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[0x48..0x50].copy_from_slice(&2u64.to_le_bytes());
    h[0x50..0x54].copy_from_slice(&128u32.to_le_bytes());
    h[0x54..0x58].copy_from_slice(&128u32.to_le_bytes());
    // Entry 2 (index 1): basic data partition type, some unique GUID.
    let e = &mut disk[1024 + 128..1024 + 256];
    e[0..16].copy_from_slice(&[
        0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99,
        0xC7,
    ]);
    e[16..32].copy_from_slice(&[7; 16]);
    e[0x20..0x28].copy_from_slice(&4096u64.to_le_bytes());
    e[0x28..0x30].copy_from_slice(&45055u64.to_le_bytes());
    std::fs::write(path, disk).unwrap();
}

#[test]
fn format_copy_list_stat_remove_check_in_a_gpt_partition() {
    let d = scratch("gpt");
    let img = d.join("disk.img");
    gpt_disk(&img);
    let img = img.to_str().unwrap();
    let (s, out) = tool(&[img, "--partition", "1", "info"]);
    assert!(!s && out.contains("unused"), "{out}");
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
