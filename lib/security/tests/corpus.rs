//! Replays the committed fuzz seed corpus through every parser (no panics,
//! and successful binary parses must round-trip).

use security::acl::Acl;
use security::sd::SecurityDescriptor;
use security::sid::Sid;
use std::path::Path;

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "empty corpus {dir:?}");
    v
}

fn all(data: &[u8]) {
    if let Ok((s, _)) = Sid::parse(data) {
        assert_eq!(Sid::parse(&s.to_bytes()).unwrap().0, s);
    }
    if let Ok((a, _)) = Acl::parse(data) {
        assert_eq!(Acl::parse(&a.to_bytes()).unwrap().0, a);
    }
    if let Ok(sd) = SecurityDescriptor::parse(data) {
        assert_eq!(SecurityDescriptor::parse(&sd.to_bytes()).unwrap(), sd);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(sd) = security::sddl::parse(s) {
            let _ = security::sddl::format(&sd);
        }
    }
}

#[test]
fn replay_sid_corpus() {
    let f = files("sid");
    for (_, d) in &f {
        all(d);
    }
    let ok = f.iter().filter(|(_, d)| Sid::parse(d).is_ok()).count();
    assert!(ok >= 3 && ok < f.len());
}

#[test]
fn replay_acl_corpus() {
    let f = files("acl");
    for (_, d) in &f {
        all(d);
    }
    assert!(f
        .iter()
        .any(|(n, d)| n == "bad_count" && Acl::parse(d).is_err()));
    assert!(f
        .iter()
        .any(|(n, d)| n == "two_aces" && Acl::parse(d).is_ok()));
}

#[test]
fn replay_sd_corpus() {
    let f = files("sd");
    for (_, d) in &f {
        all(d);
    }
    assert!(f
        .iter()
        .any(|(n, d)| n == "full" && SecurityDescriptor::parse(d).is_ok()));
    assert!(f
        .iter()
        .any(|(n, d)| n == "bad_offset" && SecurityDescriptor::parse(d).is_err()));
}

#[test]
fn replay_sddl_corpus() {
    let f = files("sddl");
    for (_, d) in &f {
        all(d);
    }
    let parse = |n: &str| {
        security::sddl::parse(
            std::str::from_utf8(&f.iter().find(|(m, _)| m == n).unwrap().1).unwrap(),
        )
    };
    assert!(parse("basic").is_ok());
    assert!(parse("bad").is_err());
}
