//! Volumes Windows 10 formatted and wrote (M. Suhanov's ntfs-samples, CC0; see
//! `lib/ntfs/testdata/windows/README.md`): MBR disk images whose partition 1 is NTFS, read by
//! `ntrs-ntfs` and compared with what their author documents and with ntfs-3g's view.
//!
//! Without ntfs-3g the ntfs-3g comparisons print a skip message, unless NTRS_REQUIRE_INTEROP=1
//! makes them fail; every other check always runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TOOL: &str = env!("CARGO_BIN_EXE_ntrs-ntfs");
const IMAGES: [&str; 4] = ["ntfs-lastaccess", "ntfs-si-vs-fn", "ntfs-2m", "ntfs-ptrn"];

/// The images decompressed (gzip is in every Debian system) into the target directory's
/// temporary folder, once: a later run reuses them. Runs of zero bytes are skipped, not written,
/// so the files are sparse where the images are empty.
fn images() -> &'static Vec<PathBuf> {
    static DONE: OnceLock<Vec<PathBuf>> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ntfs-windows-images");
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lib/ntfs/testdata/windows");
        let threads: Vec<_> = IMAGES
            .iter()
            .map(|name| {
                let gz = src.join(format!("{name}.raw.gz"));
                let out = dir.join(format!("{name}.raw"));
                std::thread::spawn(move || {
                    // A complete copy is renamed into place last, so one that exists is whole.
                    if !out.exists() {
                        let part = out.with_extension("partial");
                        gunzip_sparse(&gz, &part);
                        std::fs::rename(&part, &out).unwrap();
                    }
                    out
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

fn gunzip_sparse(gz: &Path, out: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut child = Command::new("gzip")
        .arg("-dc")
        .arg(gz)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("gzip: {e}"));
    let mut src = child.stdout.take().unwrap();
    let mut f = std::fs::File::create(out).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let mut got = 0;
        while got < buf.len() {
            match src.read(&mut buf[got..]).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        if got == 0 {
            break;
        }
        if buf[..got].iter().all(|&b| b == 0) {
            f.seek(SeekFrom::Current(got as i64)).unwrap();
        } else {
            f.write_all(&buf[..got]).unwrap();
        }
        len += got as u64;
    }
    f.set_len(len).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "gzip -dc {} failed",
        gz.display()
    );
}

fn image(name: &str) -> &'static Path {
    let i = IMAGES.iter().position(|n| *n == name).unwrap();
    &images()[i]
}

fn run(img: &Path, args: &[&str]) -> Output {
    Command::new(TOOL).arg(img).args(args).output().unwrap()
}

fn ok(img: &Path, args: &[&str]) -> String {
    let o = run(img, args);
    assert!(
        o.status.success(),
        "{} {args:?}: {}",
        img.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn have(tool: &str) -> bool {
    let ok = Path::new(&format!("/usr/bin/{tool}")).exists();
    if !ok {
        if std::env::var("NTRS_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("{tool} is not installed and NTRS_REQUIRE_INTEROP=1");
        }
        eprintln!("SKIP: {tool} not installed (Debian ntfs-3g)");
    }
    ok
}

/// `check` finds no problem on any of the volumes Windows wrote (the metadata files, indexes,
/// bitmaps, `$Secure`, `$UpCase:$Info`, `$LogFile` restart pages and the `$MFTMirr` records
/// Windows keeps in step).
#[test]
fn windows_volumes_check_clean() {
    for name in IMAGES {
        let out = ok(image(name), &["--partition", "1", "check"]);
        assert!(out.contains("no problems found"), "{name}: {out}");
    }
}

/// An MBR disk image without `--partition` names the partition to use; a partition number
/// that is not used lists the used ones.
#[test]
fn mbr_partition_selection() {
    let img = image("ntfs-lastaccess");
    let o = run(img, &["ls", "/"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("use --partition 1"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let o = run(img, &["--partition", "3", "ls", "/"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("partition 3 is not used (used: 1)"), "{err}");
}

/// The timestamps the images' author documents, as `timeline` shows them (UTC): the last access
/// Windows wrote to `$STANDARD_INFORMATION` only, and hand-edited `$STANDARD_INFORMATION` and
/// `$FILE_NAME` times that disagree.
#[test]
fn documented_timestamps_in_the_timeline() {
    let t = ok(image("ntfs-lastaccess"), &["--partition", "1", "timeline"]);
    let si = t
        .lines()
        .find(|l| l.contains(",SI,,\\test\\1.txt,"))
        .unwrap_or_else(|| panic!("no SI row for \\test\\1.txt:\n{t}"));
    let f: Vec<&str> = si.split(',').collect();
    // modified, accessed, changed, born.
    assert!(f[8].starts_with("2019-03-03T12:37:55"), "{si}");
    assert!(f[10].starts_with("2019-03-03T12:35:06"), "{si}");
    assert!(f[7].starts_with("2019-03-03T12:35:17"), "{si}");
    let t = ok(image("ntfs-si-vs-fn"), &["--partition", "1", "timeline"]);
    let row = |kind: &str| {
        t.lines()
            .find(|l| l.contains(&format!(",{kind},")) && l.contains("\\test\\test.txt"))
            .unwrap_or_else(|| panic!("no {kind} row for \\test\\test.txt"))
            .to_string()
    };
    for (kind, day) in [("SI", "2015-11-03T"), ("FN", "2014-12-12T")] {
        let r = row(kind);
        let times: Vec<&str> = r.split(',').skip(7).take(4).collect();
        assert!(times.iter().all(|x| x.starts_with(day)), "{kind}: {r}");
    }
}

/// Files written by Windows read back: sizes in `ls -l`, contents with `cat`; 2 MiB clusters.
#[test]
fn files_and_cluster_sizes() {
    let img = image("ntfs-ptrn");
    let v = ok(img, &["--partition", "1", "cat", "/os_version.txt"]);
    assert_eq!(v, "\r\nMicrosoft Windows [Version 10.0.18348.1]\r\n");
    let l = ok(img, &["--partition", "1", "ls", "-l", "/"]);
    for (size, name) in [("4", "1.txt"), ("1140", "2.txt"), ("44", "os_version.txt")] {
        assert!(
            l.lines()
                .any(|x| x.ends_with(&format!(" {name}"))
                    && x.split_whitespace().nth(2) == Some(size)),
            "{name} of {size} bytes:\n{l}"
        );
    }
    let i = ok(image("ntfs-2m"), &["--partition", "1", "info"]);
    assert!(i.contains("cluster size 2097152"), "{i}");
    assert!(i.contains("label \"2M\""), "{i}");
}

/// ntfs-3g lists the same names in every directory and reads the same bytes from every `.txt`
/// file as ntrs-ntfs (on the partition copied out of the disk image, which ntfs-3g's tools need).
#[test]
fn ntfs3g_agrees() {
    if !have("ntfsls") || !have("ntfscat") {
        return;
    }
    for name in ["ntfs-lastaccess", "ntfs-ptrn"] {
        let img = image(name);
        // Partition 1 starts at sector 128 on these images.
        let part = img.with_extension("part");
        {
            use std::io::{Seek, SeekFrom};
            let mut from = std::fs::File::open(img).unwrap();
            from.seek(SeekFrom::Start(128 * 512)).unwrap();
            let mut to = std::fs::File::create(&part).unwrap();
            std::io::copy(&mut from, &mut to).unwrap();
        }
        let theirs = Command::new("ntfsls")
            .args(["-R", "-p", "/"])
            .arg(&part)
            .output()
            .unwrap();
        assert!(
            theirs.status.success(),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        // ntfsls -R: a "/dir:" line, the names in it, a blank line; per directory.
        let text = String::from_utf8_lossy(&theirs.stdout).to_string();
        let shown = |n: &&str| !n.is_empty() && *n != "." && *n != "..";
        let mut dirs = 0;
        for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let mut lines = block.lines();
            let dir = lines.next().unwrap().trim_end_matches(':');
            let mut b: Vec<&str> = lines.filter(shown).collect();
            let ours = ok(img, &["--partition", "1", "ls", dir]);
            let mut a: Vec<&str> = ours.lines().filter(shown).collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{name}: directory {dir}");
            dirs += 1;
            for f in a.iter().filter(|n| n.ends_with(".txt")) {
                let path = format!("{}/{f}", dir.trim_end_matches('/'));
                let ours = run(img, &["--partition", "1", "cat", &path]).stdout;
                let theirs = Command::new("ntfscat")
                    .arg(&part)
                    .arg(&path)
                    .output()
                    .unwrap();
                assert!(theirs.status.success(), "ntfscat {path}");
                assert_eq!(ours, theirs.stdout, "{name}:{path}");
            }
        }
        assert!(dirs >= 2, "{name}: ntfsls listed {dirs} directories");
        let _ = std::fs::remove_file(&part);
    }
}

/// The `$LogFile` Windows left on each volume (LFS 1.1, cleanly shut down): both restart pages
/// parse with the "NTFS" client, and the record walk from the first log page reaches exactly the
/// restart area's current LSN (the last checkpoint), through hundreds of records whose
/// operations all have Windows' names.
#[test]
fn windows_logfiles_parse() {
    for name in IMAGES {
        let out = ok(image(name), &["--partition", "1", "logfile"]);
        let lines: Vec<&str> = out.lines().collect();
        for page in [
            "restart page 0 at 0x0: RSTR LFS 1.1",
            "restart page 1 at 0x1000: RSTR LFS 1.1",
        ] {
            let l = lines
                .iter()
                .find(|l| l.starts_with(page))
                .unwrap_or_else(|| panic!("{name}: no {page}:\n{out}"));
            assert!(l.contains("(clean)"), "{name}: {l}");
        }
        assert!(out.contains("client 0 \"NTFS\""), "{name}");
        let current = lines[0]
            .split("current LSN ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap();
        let records: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("LSN ") || l.starts_with("(old) LSN "))
            .collect();
        assert!(records.len() > 100, "{name}: {} records", records.len());
        let last = records.last().unwrap();
        assert!(
            last.contains(&format!("LSN {current} ")) && last.contains("client restart"),
            "{name}: the walk ends at {last}, the restart area says {current}"
        );
        assert!(
            !out.contains("unknown"),
            "{name}: an operation without a name"
        );
    }
}
