//! Interop with Debian's ntfs-3g tools (no FUSE): volumes made and filled by
//! mkntfs/ntfscp are read back byte-exact by this crate, and volumes this
//! crate formats and fills are read back byte-exact by ntfscat/ntfsls and
//! pass `ntfsfix -n`. Skips (with a message) when the tools are missing,
//! unless NTRS_REQUIRE_INTEROP=1.

use ntfs::{check, format, FormatOptions, MemDevice, Volume};
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: [&str; 6] = [
    "/usr/sbin/mkntfs",
    "/usr/sbin/ntfscp",
    "/usr/bin/ntfscat",
    "/usr/bin/ntfsls",
    "/usr/bin/ntfsinfo",
    "/usr/bin/ntfsfix",
];

fn tools_present() -> bool {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| !Path::new(t).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("NTRS_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("ntfs-3g tools missing: {missing:?} (NTRS_REQUIRE_INTEROP=1)");
    }
    eprintln!("SKIP: ntfs-3g tools missing: {missing:?}");
    false
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ntrs-ntfs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd} {args:?} failed: {text}");
    text
}

fn run_bytes(cmd: &str, args: &[&str]) -> Vec<u8> {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn open_image(img: &Path) -> Volume<MemDevice> {
    Volume::open(MemDevice::from_vec(std::fs::read(img).unwrap())).unwrap()
}

/// mkntfs + ntfscp → this crate.
fn ntfs3g_to_us(cluster: u32) {
    if !tools_present() {
        return;
    }
    let d = scratch(&format!("in{cluster}"));
    let img = d.join("vol.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(48 << 20).unwrap();
    drop(f);
    let img_s = img.to_str().unwrap();
    run(
        "/usr/sbin/mkntfs",
        &[
            "-F",
            "-f",
            "-q",
            "-s",
            "512",
            "-c",
            &cluster.to_string(),
            "-L",
            "INTEROP",
            img_s,
        ],
    );
    // Directories: ntfs-3g's tools cannot create them without FUSE, so this
    // crate makes them and ntfscp fills them (exercising both sides' indexes).
    {
        let mut v = open_image(&img);
        v.create_dir_all("/deep/a/b/c/d/e/f/g").unwrap();
        v.create_dir_all("/wide").unwrap();
        std::fs::write(&img, v.into_device().data).unwrap();
    }
    let mut expect: Vec<(String, Vec<u8>)> = Vec::new();
    let put = |path: &str, data: Vec<u8>, expect: &mut Vec<(String, Vec<u8>)>| {
        let host = d.join("src.bin");
        std::fs::write(&host, &data).unwrap();
        run(
            "/usr/sbin/ntfscp",
            &["-q", img_s, host.to_str().unwrap(), path],
        );
        expect.retain(|(p, _)| p != path);
        expect.push((path.to_string(), data));
    };
    for i in 0..160u32 {
        let name =
            format!("/wide/entry number {i:03} with a fairly long name to fill index blocks.txt");
        put(&name, pattern(i, (i as usize * 37) % 3000), &mut expect);
    }
    put(
        "/deep/a/b/c/d/e/f/g/leaf.bin",
        pattern(999, 70_000),
        &mut expect,
    );
    // Fragmentation: grow files in interleaved order.
    put("/frag1", pattern(1, 100_000), &mut expect);
    put("/frag2", pattern(2, 100_000), &mut expect);
    put("/frag1", pattern(3, 400_000), &mut expect);
    put("/frag3", pattern(4, 50_000), &mut expect);
    put("/frag1", pattern(5, 900_000), &mut expect);
    put("/large", pattern(6, 3 << 20), &mut expect);
    // A named stream.
    let side = d.join("side.bin");
    std::fs::write(&side, b"alternate data").unwrap();
    run(
        "/usr/sbin/ntfscp",
        &["-q", "-N", "alt", img_s, side.to_str().unwrap(), "/large"],
    );

    let mut v = open_image(&img);
    assert_eq!(v.volume_name().unwrap(), "INTEROP");
    // Our formatter's $UpCase is the one mkntfs (and Windows) writes.
    let theirs = v.read_file("/$UpCase").unwrap();
    let ours: Vec<u8> = ntfs::upcase::default_table()
        .iter()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    assert!(theirs == ours, "$UpCase differs from mkntfs's");
    for (p, data) in &expect {
        let got = v.read_file(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(
            got == *data,
            "{p}: contents differ ({} vs {} bytes)",
            got.len(),
            data.len()
        );
    }
    assert_eq!(v.read_file("/large:alt").unwrap(), b"alternate data");
    let frag = v.lookup("/frag1").unwrap();
    let info = v.stat(frag).unwrap();
    let runs = &info
        .streams
        .iter()
        .find(|s| s.ty == ntfs::attr::AT_DATA && s.name.is_empty())
        .unwrap()
        .runs;
    assert!(runs.len() > 1, "frag1 should be fragmented: {runs:?}");
    let wide = v.lookup("/wide").unwrap();
    let listed = v.read_dir(wide).unwrap();
    assert_eq!(listed.len(), 160);
    assert!(v
        .stat(wide)
        .unwrap()
        .streams
        .iter()
        .any(|s| s.ty == ntfs::attr::AT_INDEX_ALLOCATION));
    // Case-insensitive lookup through $UpCase.
    assert!(v
        .lookup("/WIDE/ENTRY NUMBER 007 WITH A FAIRLY LONG NAME TO FILL INDEX BLOCKS.TXT")
        .is_ok());
    assert!(v.security_descriptor(wide).unwrap().is_some());
    assert!(v.security_descriptor(5).unwrap().is_some());
    let problems = check(&mut v).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn ntfs3g_volume_read_back_4k_clusters() {
    ntfs3g_to_us(4096);
}

#[test]
fn ntfs3g_volume_read_back_1k_clusters() {
    ntfs3g_to_us(1024);
}

/// This crate formats and fills → ntfs-3g reads.
#[test]
fn our_volume_read_by_ntfs3g() {
    if !tools_present() {
        return;
    }
    let d = scratch("out");
    let mut v = format(
        MemDevice::new(40 << 20),
        &FormatOptions {
            label: "OURS".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let mut expect: Vec<(String, Vec<u8>)> = Vec::new();
    v.create_dir_all("/Windows/System32/drivers/etc").unwrap();
    for i in 0..200u32 {
        let p = format!("/Windows/System32/file {i:03} with some long name.dll");
        let data = pattern(i, (i as usize * 131) % 9000);
        v.write_file(&p, &data).unwrap();
        expect.push((p, data));
    }
    let big = pattern(77, (2 << 20) + 123);
    v.write_file("/Windows/System32/ntoskrnl.exe", &big)
        .unwrap();
    expect.push(("/Windows/System32/ntoskrnl.exe".into(), big));
    v.write_file(
        "/Windows/System32/drivers/etc/hosts",
        b"127.0.0.1 localhost\n",
    )
    .unwrap();
    expect.push((
        "/Windows/System32/drivers/etc/hosts".into(),
        b"127.0.0.1 localhost\n".to_vec(),
    ));
    // Grow, shrink, rename, delete, link.
    let n = v
        .lookup("/Windows/System32/file 005 with some long name.dll")
        .unwrap();
    v.write_at(n, &[], 100_000, b"end").unwrap();
    let mut e5 = pattern(5, 655);
    e5.resize(100_000, 0);
    e5.extend_from_slice(b"end");
    expect.retain(|(p, _)| !p.contains("file 005"));
    expect.push((
        "/Windows/System32/file 005 with some long name.dll".into(),
        e5,
    ));
    v.rename(
        "/Windows/System32/file 010 with some long name.dll",
        "/Windows/moved.dll",
    )
    .unwrap();
    let moved = expect
        .iter()
        .find(|(p, _)| p.contains("file 010"))
        .unwrap()
        .1
        .clone();
    expect.retain(|(p, _)| !p.contains("file 010"));
    expect.push(("/Windows/moved.dll".into(), moved.clone()));
    for i in (20..200).step_by(3) {
        let p = format!("/Windows/System32/file {i:03} with some long name.dll");
        v.remove(&p).unwrap();
        expect.retain(|(q, _)| *q != p);
    }
    v.link("/Windows/moved.dll", "/hardlink.dll").unwrap();
    expect.push(("/hardlink.dll".into(), moved));
    v.write_file(
        "/Windows/moved.dll:Zone.Identifier",
        b"[ZoneTransfer]\r\nZoneId=3\r\n",
    )
    .unwrap();
    // Descriptors set through $Secure (shared ids, new $SDS entries).
    for i in 0..200u32 {
        let mut sd = ntfs::format::default_security_descriptor();
        sd[2] |= 0x10;
        let m = sd.windows(4).position(|w| w == [0xA9, 0, 0x12, 0]).unwrap();
        sd[m..m + 4].copy_from_slice(&(0x0012_0000u32 | (i % 150)).to_le_bytes());
        if let Ok(n) = v.lookup(&format!(
            "/Windows/System32/file {i:03} with some long name.dll"
        )) {
            v.set_security(n, &sd).unwrap();
        }
    }
    // A symbolic link (reparse point indexed in $Extend\$Reparse).
    let link = v.write_file("/link-to-windows", b"").unwrap();
    let rp = ntfs::reparse::ReparsePoint::symlink("\\??\\C:\\Windows", "C:\\Windows", false);
    v.set_reparse_point(link, &rp).unwrap();
    // A large directory: many index blocks, a non-resident block bitmap.
    let big = v.create_dir_all("/big").unwrap();
    for i in 0..1500u32 {
        let name: Vec<u16> = format!("a long file name to make many index blocks {i:05}")
            .encode_utf16()
            .collect();
        v.create_in(big, &name, false).unwrap();
    }
    // Thin it out: leaves empty, borrow and merge.
    for i in (0..1500u32).filter(|i| (i / 40) % 3 != 0 || i % 5 == 0) {
        v.remove(&format!(
            "/big/a long file name to make many index blocks {i:05}"
        ))
        .unwrap();
    }
    let kept = (0..1500u32)
        .filter(|i| !((i / 40) % 3 != 0 || i % 5 == 0))
        .count();
    let bstat = v.stat(big).unwrap();
    let bm = bstat
        .streams
        .iter()
        .find(|s| s.ty == ntfs::attr::AT_BITMAP)
        .unwrap();
    assert!(
        !bm.resident,
        "block bitmap of a large directory should be non-resident"
    );
    assert!(check(&mut v).unwrap().is_empty());
    let img = d.join("ours.img");
    std::fs::write(&img, v.into_device().data).unwrap();
    let img_s = img.to_str().unwrap();

    let fix = run("/usr/bin/ntfsfix", &["-n", img_s]);
    assert!(fix.contains("processed successfully"), "{fix}");
    for bad in ["rror", "orrupt", "nconsist"] {
        assert!(!fix.contains(bad), "ntfsfix complained: {fix}");
    }
    let linfo = run("/usr/bin/ntfsinfo", &["-F", "/link-to-windows", img_s]);
    assert!(
        linfo.contains("$REPARSE_POINT") || linfo.contains("eparse"),
        "{linfo}"
    );
    let audit = run("/usr/bin/ntfssecaudit", &["-a", img_s]);
    assert!(
        audit.contains("No errors were found") && !audit.contains("warning"),
        "{audit}"
    );
    let info = run("/usr/bin/ntfsinfo", &["-m", img_s]);
    assert!(info.contains("Volume Name: OURS"), "{info}");
    for (p, data) in &expect {
        let got = run_bytes("/usr/bin/ntfscat", &[img_s, p]);
        assert!(
            got == *data,
            "ntfscat {p}: {} vs {} bytes",
            got.len(),
            data.len()
        );
    }
    let zone = run_bytes(
        "/usr/bin/ntfscat",
        &["-n", "Zone.Identifier", img_s, "/Windows/moved.dll"],
    );
    assert_eq!(zone, b"[ZoneTransfer]\r\nZoneId=3\r\n");
    let ls = run("/usr/bin/ntfsls", &["-p", "/Windows/System32", img_s]);
    let mut listed: Vec<&str> = ls.lines().filter(|l| *l != "." && *l != "..").collect();
    listed.sort();
    let mut want: Vec<String> = expect
        .iter()
        .filter_map(|(p, _)| p.strip_prefix("/Windows/System32/"))
        .filter(|r| !r.contains('/'))
        .map(String::from)
        .collect();
    want.push("drivers".into());
    want.sort();
    assert_eq!(listed, want);
    let big_ls = run("/usr/bin/ntfsls", &["-p", "/big", img_s]);
    assert_eq!(
        big_ls
            .lines()
            .filter(|l| l.starts_with("a long file name"))
            .count(),
        kept
    );
    // ntfs-3g writes into our volume; we read its changes and stay consistent.
    let host = d.join("h.bin");
    let data = pattern(4242, 300_000);
    std::fs::write(&host, &data).unwrap();
    run(
        "/usr/sbin/ntfscp",
        &[
            "-q",
            img_s,
            host.to_str().unwrap(),
            "/Windows/System32/drivers/etc/hosts",
        ],
    );
    let mut v = open_image(&img);
    assert_eq!(
        v.read_file("/Windows/System32/drivers/etc/hosts").unwrap(),
        data
    );
    let problems = check(&mut v).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A read-write ntfs-3g (FUSE) mount of an image, unmounted on drop.
struct Mount {
    dir: PathBuf,
}

impl Mount {
    /// Mounts `img` at `dir`; `None` (after a skip message) when FUSE
    /// mounting is not possible here: always when the machine has no
    /// `/dev/fuse` (a kernel device no package installs), otherwise unless
    /// NTRS_REQUIRE_INTEROP=1.
    fn new(img: &Path, dir: &Path) -> Option<Mount> {
        if !Path::new("/dev/fuse").exists() {
            eprintln!("SKIP: no /dev/fuse on this machine: ntfs-3g cannot mount");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("/usr/bin/ntfs-3g")
            .args([img.to_str().unwrap(), dir.to_str().unwrap()])
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Mount {
                dir: dir.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var("NTRS_REQUIRE_INTEROP").as_deref() == Ok("1") {
                    panic!("ntfs-3g mount failed (NTRS_REQUIRE_INTEROP=1): {why}");
                }
                eprintln!("SKIP: ntfs-3g cannot mount here: {why}");
                None
            }
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }
    fn unmount(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = Command::new("umount").arg(&self.dir).status();
            self.dir = PathBuf::new();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Files this crate creates (long names, 8.3 names, a hard link, a large
/// directory) are renamed and deleted by ntfs-3g mounted read-write: with
/// 8.3 creation on, every long name has its DOS twin (ntfs-3g removes the
/// pair, as Windows does); with it off, long names are POSIX names.
fn ntfs3g_deletes_and_renames_our_files(short_names: bool) {
    if !tools_present() || !Path::new("/usr/bin/ntfs-3g").exists() {
        return;
    }
    let d = scratch(&format!("fuse{}", short_names as u8));
    let mut v = format(
        MemDevice::new(32 << 20),
        &FormatOptions {
            label: "FUSE".into(),
            short_names,
            ..Default::default()
        },
    )
    .unwrap();
    v.create_dir_all("/Program Files/Some Vendor").unwrap();
    v.create_dir_all("/DATA").unwrap();
    for i in 0..300u32 {
        let p = format!("/DATA/long file name number {i:03}.txt");
        v.write_file(&p, &pattern(i, 100 + i as usize * 7)).unwrap();
    }
    v.write_file("/UP.TXT", b"upper").unwrap();
    v.write_file("/lower.txt", b"lower").unwrap();
    v.write_file("/hello world.txt", b"hello").unwrap();
    v.write_file("/Mixed Case Name.Extension", b"mixed")
        .unwrap();
    v.write_file("/Program Files/Some Vendor/app.exe", &pattern(9, 5000))
        .unwrap();
    v.link("/lower.txt", "/lower link").unwrap();
    assert!(check(&mut v).unwrap().is_empty());
    let img = d.join("fuse.img");
    std::fs::write(&img, v.into_device().data).unwrap();
    {
        let Some(mut m) = Mount::new(&img, &d.join("mnt")) else {
            return;
        };
        let fs = |r: std::io::Result<()>, what: &str| {
            r.unwrap_or_else(|e| panic!("ntfs-3g {what}: {e}"));
        };
        for f in [
            "/UP.TXT",
            "/hello world.txt",
            "/lower link",
            "/Mixed Case Name.Extension",
        ] {
            fs(std::fs::remove_file(m.path(f)), &format!("unlink {f}"));
        }
        for i in (0..300u32).step_by(2) {
            let p = format!("/DATA/long file name number {i:03}.txt");
            fs(std::fs::remove_file(m.path(&p)), &format!("unlink {p}"));
        }
        for i in (1..300u32).step_by(10) {
            let from = format!("/DATA/long file name number {i:03}.txt");
            let to = format!("/DATA/renamed by ntfs-3g {i:03}.txt");
            fs(std::fs::rename(m.path(&from), m.path(&to)), "rename");
        }
        fs(
            std::fs::rename(m.path("/lower.txt"), m.path("/Program Files/moved.txt")),
            "move",
        );
        fs(
            std::fs::remove_file(m.path("/Program Files/Some Vendor/app.exe")),
            "unlink app.exe",
        );
        fs(
            std::fs::remove_dir(m.path("/Program Files/Some Vendor")),
            "rmdir",
        );
        let left: usize = std::fs::read_dir(m.path("/DATA")).unwrap().count();
        assert_eq!(left, 150);
        m.unmount();
    }
    let img_s = img.to_str().unwrap();
    let fix = run("/usr/bin/ntfsfix", &["-n", img_s]);
    assert!(fix.contains("processed successfully"), "{fix}");
    let mut v = open_image(&img);
    let problems = check(&mut v).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    for gone in [
        "/UP.TXT",
        "/hello world.txt",
        "/lower.txt",
        "/lower link",
        "/Mixed Case Name.Extension",
    ] {
        assert!(v.lookup(gone).is_err(), "{gone} still there");
    }
    assert_eq!(v.read_file("/Program Files/moved.txt").unwrap(), b"lower");
    assert!(v.lookup("/Program Files/Some Vendor").is_err());
    for i in 0..300u32 {
        let p = format!("/DATA/long file name number {i:03}.txt");
        let r = format!("/DATA/renamed by ntfs-3g {i:03}.txt");
        let data = pattern(i, 100 + i as usize * 7);
        if i % 2 == 0 {
            assert!(v.lookup(&p).is_err());
        } else if i % 10 == 1 {
            assert_eq!(v.read_file(&r).unwrap(), data);
        } else {
            assert_eq!(v.read_file(&p).unwrap(), data);
        }
    }
}

#[test]
fn ntfs3g_mount_deletes_and_renames_our_files_with_short_names() {
    ntfs3g_deletes_and_renames_our_files(true);
}

#[test]
fn ntfs3g_mount_deletes_and_renames_our_files_without_short_names() {
    ntfs3g_deletes_and_renames_our_files(false);
}

/// A directory ntfs-3g builds with its `$INDEX_ROOT` in an extension
/// record (a 250-character name leaves no room for the root once the index
/// gets `$INDEX_ALLOCATION`, so ntfs-3g moves it out behind an
/// `$ATTRIBUTE_LIST`): the checker finds no problems, lookups and listings
/// go through the extension record, and files read back byte-exact.
#[test]
fn ntfs3g_directory_with_index_root_in_an_extension_record() {
    if !tools_present() || !Path::new("/usr/bin/ntfs-3g").exists() {
        return;
    }
    let d = scratch("attrlist-dir");
    let img = d.join("vol.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(32 << 20).unwrap();
    drop(f);
    run(
        "/usr/sbin/mkntfs",
        &["-F", "-f", "-q", img.to_str().unwrap()],
    );
    let dir = "D".repeat(250);
    let name = |i: u32| format!("file with a fairly long name number {i:03}.txt");
    {
        let Some(mut m) = Mount::new(&img, &d.join("mnt")) else {
            return;
        };
        std::fs::create_dir(m.path(&dir)).unwrap();
        for i in 0..300u32 {
            std::fs::write(
                m.path(&format!("{dir}/{}", name(i))),
                pattern(i, i as usize * 13),
            )
            .unwrap();
        }
        m.unmount();
    }
    let mut v = open_image(&img);
    let n = v.lookup(&format!("/{dir}")).unwrap();
    let (base, _) = v.load(n).unwrap();
    assert!(
        base.find(ntfs::attr::AT_ATTRIBUTE_LIST, &[]).is_some()
            && base
                .find(ntfs::attr::AT_INDEX_ROOT, &[36, 73, 51, 48])
                .is_none(),
        "ntfs-3g kept the index root in the base record; the test needs it outside"
    );
    let problems = check(&mut v).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(v.read_dir(n).unwrap().len(), 300);
    for i in (0..300u32).step_by(7) {
        assert_eq!(
            v.read_file(&format!("/{dir}/{}", name(i))).unwrap(),
            pattern(i, i as usize * 13)
        );
    }
}

fn resident(v: &mut Volume<MemDevice>, n: u64, ty: u32, name: &str) -> Vec<u8> {
    let nm: Vec<u16> = name.encode_utf16().collect();
    v.read_record(n)
        .unwrap()
        .find(ty, &nm)
        .unwrap_or_else(|| panic!("record {n}: no {ty:#x} {name:?}"))
        .value()
        .unwrap()
        .to_vec()
}

/// What `format` writes against what mkntfs writes (mkntfs copies
/// Windows' tables): `$AttrDef`, `$Volume`'s descriptor, `$UpCase:$Info`,
/// `$Quota`'s `$O`/`$Q` roots (times and padding aside), the `$SDH` entry shape and
/// the `$MFT` bitmap are the same bytes; ntfsfix -n and ntfsinfo accept it.
#[test]
fn format_matches_mkntfs_metadata() {
    if !tools_present() {
        return;
    }
    let d = scratch("fmtcmp");
    let img = d.join("mk.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(16 << 20).unwrap();
    drop(f);
    let img_s = img.to_str().unwrap();
    run(
        "/usr/sbin/mkntfs",
        &["-F", "-f", "-q", "-s", "512", "-c", "4096", img_s],
    );
    let mut mk = open_image(&img);
    let mut ours = format(MemDevice::new(16 << 20), &FormatOptions::default()).unwrap();
    for v in [&mut mk, &mut ours] {
        assert!(v.volume_version().is_ok());
    }
    let a = mk.read_stream_all(4, ntfs::attr::AT_DATA, &[]).unwrap();
    let b = ours.read_stream_all(4, ntfs::attr::AT_DATA, &[]).unwrap();
    assert_eq!(a, b, "$AttrDef");
    // $Quota:$O: the same entry; the 4 padding bytes after its data are
    // left out (mkntfs writes 0x20 there, this crate zeros; what Windows
    // writes in padding is not documented).
    let mut oa = resident(&mut mk, 24, ntfs::attr::AT_INDEX_ROOT, "$O");
    let mut ob = resident(&mut ours, 24, ntfs::attr::AT_INDEX_ROOT, "$O");
    assert_eq!(oa.len(), 88);
    oa[68..72].fill(0);
    ob[68..72].fill(0);
    assert_eq!(oa, ob, "$Quota:$O");
    for (n, ty, name) in [
        (3, ntfs::attr::AT_SECURITY_DESCRIPTOR, ""),
        (10, ntfs::attr::AT_DATA, "$Info"),
    ] {
        assert_eq!(
            resident(&mut mk, n, ty, name),
            resident(&mut ours, n, ty, name),
            "record {n} {ty:#x} {name}"
        );
    }
    // $Q: the same bytes but for the change times (data offset 0x10 in each
    // entry's QUOTA_CONTROL_ENTRY).
    let mut qa = resident(&mut mk, 24, ntfs::attr::AT_INDEX_ROOT, "$Q");
    let mut qb = resident(&mut ours, 24, ntfs::attr::AT_INDEX_ROOT, "$Q");
    assert_eq!(qa.len(), qb.len());
    for q in [&mut qa, &mut qb] {
        let mut o = 32;
        for _ in 0..2 {
            let doff = u16::from_le_bytes([q[o], q[o + 1]]) as usize;
            let len = u16::from_le_bytes([q[o + 8], q[o + 9]]) as usize;
            q[o + doff + 16..o + doff + 24].fill(0);
            o += len;
        }
    }
    assert_eq!(qa, qb, "$Quota:$Q");
    // $SDH: each entry 0x30 bytes with "I\0I\0" after the 20-byte data.
    for v in [&mut mk, &mut ours] {
        let sdh = resident(v, 9, ntfs::attr::AT_INDEX_ROOT, "$SDH");
        assert_eq!(&sdh[32 + 8..32 + 10], &[0x30, 0]);
        assert_eq!(&sdh[32 + 0x2C..32 + 0x30], b"I\0I\0");
    }
    let ma = mk.read_stream_all(0, ntfs::attr::AT_BITMAP, &[]).unwrap();
    let mb = ours.read_stream_all(0, ntfs::attr::AT_BITMAP, &[]).unwrap();
    assert_eq!(&mb[..2], &ma[..2], "$MFT bitmap, records 0-15");
    assert_eq!(mb[2], 0, "records 16-23 free");
    let out = d.join("ours.img");
    std::fs::write(&out, ours.into_device().data).unwrap();
    let out_s = out.to_str().unwrap();
    let fix = run("/usr/bin/ntfsfix", &["-n", out_s]);
    assert!(fix.contains("processed successfully"), "{fix}");
    for bad in ["rror", "orrupt", "nconsist"] {
        assert!(!fix.contains(bad), "ntfsfix complained: {fix}");
    }
    let info = run("/usr/bin/ntfsinfo", &["-m", out_s]);
    assert!(info.contains("Volume Version: 3.1"), "{info}");
    let uinfo = run("/usr/bin/ntfsinfo", &["-F", "/$UpCase", out_s]);
    assert!(uinfo.contains("$Info"), "{uinfo}");
}

/// Files this crate lays out over extension records (many hard links,
/// many named streams, a run list longer than a record, a directory whose
/// index root moved out) are read byte-exact by ntfscat/ntfsls, accepted
/// by ntfsfix -n, and deleted cleanly by a read-write ntfs-3g mount.
#[test]
fn our_attribute_lists_read_by_ntfs3g() {
    if !tools_present() {
        return;
    }
    let d = scratch("ourlists");
    let mut v = format(MemDevice::new(32 << 20), &FormatOptions::default()).unwrap();
    v.create_dir_all("/d").unwrap();
    let body = pattern(5, 7000);
    v.write_file("/d/file", &body).unwrap();
    let link = |i: u32| format!("/d/hard link with a long name to fill the record {i:03}");
    for i in 0..40 {
        v.link("/d/file", &link(i)).unwrap();
    }
    let s = v.write_file("/d/streams", b"main").unwrap();
    for i in 0..40 {
        v.write_file(&format!("/d/streams:stream number {i}"), &pattern(i, 1500))
            .unwrap();
    }
    let a = v.write_file("/d/frag", b"").unwrap();
    let b = v.write_file("/d/other", b"").unwrap();
    let cs = v.cluster_size() as usize;
    let mut frag = Vec::new();
    for i in 0..300u32 {
        let chunk = pattern(100 + i, cs);
        v.write_at(a, &[], (i as usize * cs) as u64, &chunk)
            .unwrap();
        v.write_at(b, &[], (i as usize * cs) as u64, &chunk)
            .unwrap();
        frag.extend_from_slice(&chunk);
    }
    let dir = v.create_dir_all("/spill").unwrap();
    for i in 0..30usize {
        let name: Vec<u16> = "s".repeat(i + 1).encode_utf16().collect();
        v.write_at(dir, &name, 0, &pattern(i as u32, 800)).unwrap();
    }
    for i in 0..200 {
        v.write_file(&format!("/spill/entry {i:04}"), b"e").unwrap();
    }
    for n in [v.lookup("/d/file").unwrap(), s, a, dir] {
        assert!(v.stat(n).unwrap().has_attr_list, "record {n}");
    }
    assert!(check(&mut v).unwrap().is_empty());
    let img = d.join("lists.img");
    std::fs::write(&img, v.into_device().data).unwrap();
    let img_s = img.to_str().unwrap();
    let fix = run("/usr/bin/ntfsfix", &["-n", img_s]);
    assert!(fix.contains("processed successfully"), "{fix}");
    for bad in ["rror", "orrupt", "nconsist"] {
        assert!(!fix.contains(bad), "ntfsfix complained: {fix}");
    }
    assert_eq!(run_bytes("/usr/bin/ntfscat", &[img_s, "/d/file"]), body);
    assert_eq!(run_bytes("/usr/bin/ntfscat", &[img_s, &link(33)]), body);
    assert_eq!(run_bytes("/usr/bin/ntfscat", &[img_s, "/d/frag"]), frag);
    for i in [0u32, 17, 39] {
        let got = run_bytes(
            "/usr/bin/ntfscat",
            &["-n", &format!("stream number {i}"), img_s, "/d/streams"],
        );
        assert_eq!(got, pattern(i, 1500), "stream {i}");
    }
    let ls = run("/usr/bin/ntfsls", &["-p", "/d", img_s]);
    assert_eq!(
        ls.lines().filter(|l| l.starts_with("hard link")).count(),
        40
    );
    let ls = run("/usr/bin/ntfsls", &["-p", "/spill", img_s]);
    assert_eq!(ls.lines().filter(|l| l.starts_with("entry ")).count(), 200);
    if !Path::new("/usr/bin/ntfs-3g").exists() {
        return;
    }
    {
        let Some(mut m) = Mount::new(&img, &d.join("mnt")) else {
            return;
        };
        assert_eq!(std::fs::read(m.path(&link(3))).unwrap(), body);
        for i in 0..40 {
            std::fs::remove_file(m.path(&link(i))).unwrap();
        }
        for p in ["/d/file", "/d/streams", "/d/frag"] {
            std::fs::remove_file(m.path(p)).unwrap();
        }
        for i in 0..200 {
            std::fs::remove_file(m.path(&format!("/spill/entry {i:04}"))).unwrap();
        }
        m.unmount();
    }
    let fix = run("/usr/bin/ntfsfix", &["-n", img_s]);
    assert!(fix.contains("processed successfully"), "{fix}");
    let mut v = open_image(&img);
    let problems = check(&mut v).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(v.read_file("/d/other").unwrap(), frag);
}

/// A USN journal we create (sparse `$J` trimmed at its start, `$Max`) is
/// accepted by `ntfsfix -n`, and `ntfscat` reads `$J` and `$Max` as we do.
#[test]
fn our_usn_journal_read_by_ntfs3g() {
    use ntfs::usn::*;
    if !tools_present() {
        return;
    }
    let d = scratch("usn");
    let mut v = format(MemDevice::new(16 << 20), &FormatOptions::default()).unwrap();
    v.create_usn_journal(32 << 10, 8 << 10, 0x1234).unwrap();
    let n = v.write_file("/journaled.txt", b"x").unwrap();
    for i in 0..1500u64 {
        v.usn_append(n, USN_REASON_DATA_OVERWRITE, i).unwrap();
    }
    let j = v.query_usn_journal().unwrap().unwrap();
    assert!(j.first_usn > 0);
    assert!(check(&mut v).unwrap().is_empty());
    let jn = v.usn_journal_file().unwrap().unwrap();
    let jname: Vec<u16> = "$J".encode_utf16().collect();
    let ours = v.read_stream_all(jn, 0x80, &jname).unwrap();
    let max = v
        .read_stream_all(jn, 0x80, &"$Max".encode_utf16().collect::<Vec<_>>())
        .unwrap();
    let img = d.join("usn.img");
    std::fs::write(&img, v.into_device().data).unwrap();
    let img_s = img.to_str().unwrap();
    let fix = run("/usr/bin/ntfsfix", &["-n", img_s]);
    assert!(fix.contains("processed successfully"), "{fix}");
    for bad in ["rror", "orrupt", "nconsist"] {
        assert!(!fix.contains(bad), "ntfsfix complained: {fix}");
    }
    let j3g = run_bytes(
        "/usr/bin/ntfscat",
        &["-a", "0x80", "-n", "$J", img_s, "/$Extend/$UsnJrnl"],
    );
    assert_eq!(j3g.len(), ours.len());
    assert!(j3g == ours, "$J differs");
    let m3g = run_bytes(
        "/usr/bin/ntfscat",
        &["-a", "0x80", "-n", "$Max", img_s, "/$Extend/$UsnJrnl"],
    );
    assert_eq!(m3g, max);
}
