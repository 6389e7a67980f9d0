//! Runs the built `ntrs-sec` binary.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ntrs-sec"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_granted() {
    let (rc, out, _) = run(&[
        "check",
        "--sd",
        "O:BAG:SYD:(A;;FR;;;WD)",
        "--token",
        "user",
        "--access",
        "0x80000000",
    ]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("0x00120089") && out.contains("STATUS_SUCCESS"),
        "{out}"
    );
}

#[test]
fn check_denied() {
    let (rc, out, _) = run(&[
        "check",
        "--sd",
        "O:BAG:SYD:(A;;FA;;;BA)",
        "--token",
        "user",
        "--access",
        "0x1",
    ]);
    assert_eq!(rc, 1);
    assert!(out.contains("STATUS_ACCESS_DENIED"), "{out}");
}

#[test]
fn check_admin_and_system() {
    for t in ["admin", "system"] {
        let (rc, _, _) = run(&[
            "check",
            "--sd",
            "O:BAG:SYD:(A;;FA;;;BA)",
            "--token",
            t,
            "--access",
            "0x10000000",
        ]);
        assert_eq!(rc, 0, "{t}");
    }
}

#[test]
fn check_privilege_not_held() {
    let (rc, out, _) = run(&[
        "check",
        "--sd",
        "O:BAD:NO_ACCESS_CONTROL",
        "--token",
        "user",
        "--access",
        "0x01000000",
    ]);
    assert_eq!(rc, 1);
    assert!(out.contains("STATUS_PRIVILEGE_NOT_HELD"), "{out}");
}

#[test]
fn bad_sddl_and_mask() {
    let (rc, _, err) = run(&[
        "check", "--sd", "D:(A;;", "--token", "user", "--access", "1",
    ]);
    assert_eq!(rc, 2);
    assert!(err.contains("bad SDDL"));
    let (rc, _, err) = run(&[
        "check", "--sd", "O:SYD:", "--token", "user", "--access", "zz",
    ]);
    assert_eq!(rc, 2);
    assert!(err.contains("bad access mask"));
}

#[test]
fn sddl_prints_descriptor() {
    let (rc, out, _) = run(&["sddl", "O:BAG:SYD:PAI(A;;FA;;;SY)"]);
    assert_eq!(rc, 0);
    assert!(out.contains("owner:   S-1-5-32-544"), "{out}");
    assert!(out.contains("mask 0x001f01ff S-1-5-18"), "{out}");
    assert!(out.contains("sddl:    O:BAG:SYD:PAI(A;;FA;;;SY)"), "{out}");
}
