//! `ntrs-ntfs check` and `ls` on a volume ntfs-3g made with a directory
//! whose `$INDEX_ROOT` lives in an extension record (behind an
//! `$ATTRIBUTE_LIST`): no false errors, the directory lists. The volume is
//! the fuzz corpus seed `ntfs3g-4m-attr-list-dir` (mkntfs, then a 250-
//! character directory with 120 files made through an ntfs-3g mount).

use std::process::Command;

#[test]
fn check_follows_an_index_root_in_an_extension_record() {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../lib/ntfs/fuzz/corpus/volume/ntfs3g-4m-attr-list-dir.ntfz");
    let img = ntfs::fuzz::decode_image(&std::fs::read(seed).unwrap()).unwrap();
    let path = std::env::temp_dir().join(format!("ntrs-ntfs-lists-{}.img", std::process::id()));
    std::fs::write(&path, img).unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_ntrs-ntfs"))
            .arg(&path)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (ok, out) = run(&["check"]);
    assert!(ok && out.contains("no problems found"), "{out}");
    let dir = format!("/{}", "D".repeat(250));
    let (ok, out) = run(&["stat", &dir]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["ls", &dir]);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("file with")).count(),
        120
    );
    let _ = std::fs::remove_file(&path);
}
