use super::*;
use alloc::string::ToString;
use alloc::vec;

fn svc(name: &str, start: u32, group: Option<&str>, tag: Option<u32>) -> Service {
    Service {
        name: name.to_string(),
        service_type: SERVICE_KERNEL_DRIVER,
        start,
        error_control: 1,
        group: group.map(|g| g.to_string()),
        tag,
        image_path: None,
    }
}

fn utf16z(strings: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in strings {
        for u in s.encode_utf16() {
            v.extend_from_slice(&u.to_le_bytes());
        }
        v.extend_from_slice(&[0, 0]);
    }
    v.extend_from_slice(&[0, 0]);
    v
}

#[test]
fn orders_by_group_then_tag_then_registry_order() {
    let order: Vec<String> = ["Boot Bus Extender", "SCSI miniport", "Base"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let services = vec![
        svc("ungrouped", 1, None, None),
        svc("base2", 1, Some("Base"), Some(2)),
        svc("base-untagged", 1, Some("base"), None),
        svc("base1", 1, Some("Base"), Some(1)),
        svc("scsi", 1, Some("SCSI miniport"), None),
        svc("unknown-group", 1, Some("Nowhere"), None),
        svc("boot", 0, Some("Base"), None),
        svc("demand", 3, Some("Base"), None),
        Service {
            service_type: 0x10, // a Win32 service: not the I/O manager's
            ..svc("win32", 1, Some("Base"), None)
        },
    ];
    let tags = |g: &str| {
        if g.eq_ignore_ascii_case("Base") {
            vec![1, 2]
        } else {
            vec![]
        }
    };
    let names: Vec<&str> = load_order(&services, SERVICE_SYSTEM_START, &order, &tags)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "scsi",
            "base1",
            "base2",
            "base-untagged",
            "ungrouped",
            "unknown-group"
        ]
    );
    let boot: Vec<&str> = load_order(&services, SERVICE_BOOT_START, &order, &tags)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(boot, ["boot"]);
}

#[test]
fn tags_follow_the_group_order_list_not_their_values() {
    let order = vec!["Base".to_string()];
    let services = vec![
        svc("a", 1, Some("Base"), Some(1)),
        svc("b", 1, Some("Base"), Some(7)),
        svc("c", 1, Some("Base"), Some(3)),
    ];
    let tags = |_: &str| vec![7, 3, 1];
    let names: Vec<&str> = load_order(&services, 1, &order, &tags)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["b", "c", "a"]);
}

#[test]
fn parses_registry_values() {
    assert_eq!(
        parse_multi_sz(&utf16z(&["System Reserved", "Base"])),
        ["System Reserved", "Base"]
    );
    assert!(parse_multi_sz(&[]).is_empty());
    assert_eq!(parse_multi_sz(&[0x41, 0]), ["A"]); // unterminated
    let mut gol = Vec::new();
    for v in [3u32, 5, 1, 9] {
        gol.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(parse_group_order_list(&gol), [5, 1, 9]);
    // A count larger than the data is cut; garbage never panics.
    assert_eq!(parse_group_order_list(&gol[..8]), [5]);
    assert!(parse_group_order_list(&[1, 2]).is_empty());
}

#[test]
fn image_paths_and_object_names() {
    let mut s = svc("Null", 1, None, None);
    assert_eq!(s.image_file().unwrap(), "System32\\drivers\\Null.sys");
    assert_eq!(s.driver_object_name(), "\\Driver\\Null");
    s.image_path = Some("System32\\drivers\\null.sys".into());
    assert_eq!(
        s.full_image_name().unwrap(),
        "\\SystemRoot\\System32\\drivers\\null.sys"
    );
    s.image_path = Some("\\SystemRoot\\system32\\DRIVERS\\x.sys".into());
    assert_eq!(s.image_file().unwrap(), "system32\\DRIVERS\\x.sys");
    s.image_path = Some("\\??\\C:\\x.sys".into());
    assert_eq!(s.image_file(), None);
    s.service_type = SERVICE_FILE_SYSTEM_DRIVER;
    assert_eq!(s.driver_object_name(), "\\FileSystem\\Null");
}

#[test]
fn error_control_actions() {
    assert_eq!(failure_action(0), FailureAction::Ignore);
    assert_eq!(failure_action(1), FailureAction::Log);
    assert_eq!(failure_action(2), FailureAction::Log);
    assert_eq!(failure_action(3), FailureAction::BugCheck);
}
