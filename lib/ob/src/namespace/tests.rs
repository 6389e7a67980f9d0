use super::*;
use crate::*;

/// A header table for one test (leaked: tests are short-lived processes).
fn headers() -> &'static ObjectHeaders {
    alloc::boxed::Box::leak(alloc::boxed::Box::new(ObjectHeaders::new()))
}

fn ns_with_event() -> (Namespace<'static>, TypeIndex) {
    let mut ns = Namespace::new(headers()).unwrap();
    let ev = ns.create_type("Event", false).unwrap();
    (ns, ev)
}

fn found(r: Result<Lookup, NtStatus>) -> ObjectId {
    match r {
        Ok(Lookup::Found(id)) => id,
        other => panic!("expected Found, got {other:?}"),
    }
}

#[test]
fn initial_namespace_has_nt_directories() {
    let ns = Namespace::new(headers()).unwrap();
    let root: Vec<String> = ns
        .list_directory(ns.root())
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    for d in [
        "BaseNamedObjects",
        "Device",
        "Driver",
        "GLOBAL??",
        "KernelObjects",
        "ObjectTypes",
    ] {
        assert!(root.iter().any(|n| n == d), "missing \\{d}");
    }
    let types = ns
        .list_directory(found(ns.lookup("\\ObjectTypes", 0, None)))
        .unwrap();
    assert!(types.contains(&("Directory".into(), "Type".into())));
    assert!(types.contains(&("SymbolicLink".into(), "Type".into())));
    assert_eq!(found(ns.lookup("\\", 0, None)), ns.root());
}

#[test]
fn create_and_open_by_name() {
    let (mut ns, ev) = ns_with_event();
    let (id, st) = ns
        .insert("\\BaseNamedObjects\\MyEvent", 0, ev, Body::Opaque)
        .unwrap();
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(found(ns.lookup("\\BaseNamedObjects\\MyEvent", 0, None)), id);
    assert_eq!(ns.full_name(id), "\\BaseNamedObjects\\MyEvent");
    assert_eq!(
        ns.lookup("\\BaseNamedObjects\\myevent", 0, None)
            .unwrap_err(),
        STATUS_OBJECT_NAME_NOT_FOUND
    );
    assert_eq!(
        found(ns.lookup("\\basenamedobjects\\MYEVENT", OBJ_CASE_INSENSITIVE, None)),
        id
    );
    let ev_type = ns.create_type("Mutant", false).unwrap();
    assert_ne!(ev_type, ev);
    let listing = ns
        .list_directory(found(ns.lookup("\\BaseNamedObjects", 0, None)))
        .unwrap();
    assert_eq!(listing, [("MyEvent".to_string(), "Event".to_string())]);
}

#[test]
fn collision_openif_and_type_mismatch() {
    let (mut ns, ev) = ns_with_event();
    let mutant = ns.create_type("Mutant", false).unwrap();
    let (id, _) = ns
        .insert("\\BaseNamedObjects\\X", 0, ev, Body::Opaque)
        .unwrap();
    assert_eq!(
        ns.insert("\\BaseNamedObjects\\X", 0, ev, Body::Opaque)
            .unwrap_err(),
        STATUS_OBJECT_NAME_COLLISION
    );
    let (again, st) = ns
        .insert("\\BaseNamedObjects\\X", OBJ_OPENIF, ev, Body::Opaque)
        .unwrap();
    assert_eq!((again, st), (id, STATUS_OBJECT_NAME_EXISTS));
    assert_eq!(ns.counts(id).0, 2);
    assert_eq!(
        ns.insert("\\BaseNamedObjects\\X", OBJ_OPENIF, mutant, Body::Opaque)
            .unwrap_err(),
        STATUS_OBJECT_TYPE_MISMATCH
    );
    // Case-insensitive create collides with a differently-cased name.
    assert_eq!(
        ns.insert(
            "\\BaseNamedObjects\\x",
            OBJ_CASE_INSENSITIVE,
            ev,
            Body::Opaque
        )
        .unwrap_err(),
        STATUS_OBJECT_NAME_COLLISION
    );
    // Case-sensitive create of a differently-cased name succeeds, and exact match wins.
    let (lower, _) = ns
        .insert("\\BaseNamedObjects\\x", 0, ev, Body::Opaque)
        .unwrap();
    assert_eq!(
        found(ns.lookup("\\BaseNamedObjects\\x", OBJ_CASE_INSENSITIVE, None)),
        lower
    );
    assert_eq!(
        found(ns.lookup("\\BaseNamedObjects\\X", OBJ_CASE_INSENSITIVE, None)),
        id
    );
}

#[test]
fn path_errors_match_nt() {
    let (mut ns, ev) = ns_with_event();
    ns.insert("\\BaseNamedObjects\\E", 0, ev, Body::Opaque)
        .unwrap();
    assert_eq!(
        ns.lookup("BaseNamedObjects", 0, None).unwrap_err(),
        STATUS_OBJECT_PATH_SYNTAX_BAD
    );
    assert_eq!(
        ns.lookup("\\Nope", 0, None).unwrap_err(),
        STATUS_OBJECT_NAME_NOT_FOUND
    );
    assert_eq!(
        ns.lookup("\\Nope\\Deeper", 0, None).unwrap_err(),
        STATUS_OBJECT_PATH_NOT_FOUND
    );
    assert_eq!(
        ns.lookup("\\Device\\\\X", 0, None).unwrap_err(),
        STATUS_OBJECT_NAME_INVALID
    );
    assert_eq!(
        ns.lookup("\\Device\\", 0, None).unwrap_err(),
        STATUS_OBJECT_NAME_INVALID
    );
    assert_eq!(
        ns.lookup("\\BaseNamedObjects\\E\\Sub", 0, None)
            .unwrap_err(),
        STATUS_OBJECT_TYPE_MISMATCH
    );
    assert_eq!(
        ns.insert("\\Nope\\New", 0, ev, Body::Opaque).unwrap_err(),
        STATUS_OBJECT_PATH_NOT_FOUND
    );
    assert_eq!(
        ns.insert("\\Device\\", 0, ev, Body::Opaque).unwrap_err(),
        STATUS_OBJECT_NAME_INVALID
    );
    assert_eq!(
        ns.insert("NoSlash", 0, ev, Body::Opaque).unwrap_err(),
        STATUS_OBJECT_PATH_SYNTAX_BAD
    );
    assert_eq!(
        ns.insert("\\BaseNamedObjects\\E\\Sub", 0, ev, Body::Opaque)
            .unwrap_err(),
        STATUS_OBJECT_TYPE_MISMATCH
    );
}

#[test]
fn relative_to_root_directory() {
    let (mut ns, ev) = ns_with_event();
    let (id, _) = ns
        .insert("\\BaseNamedObjects\\Rel", 0, ev, Body::Opaque)
        .unwrap();
    let bno = found(ns.lookup("\\BaseNamedObjects", 0, None));
    assert_eq!(found(ns.lookup("Rel", 0, Some(bno))), id);
    assert_eq!(found(ns.lookup("", 0, Some(bno))), bno);
    assert_eq!(
        ns.lookup("\\Rel", 0, Some(bno)).unwrap_err(),
        STATUS_OBJECT_PATH_SYNTAX_BAD
    );
    assert_eq!(
        ns.lookup("x", 0, Some(id)).unwrap_err(),
        STATUS_OBJECT_TYPE_MISMATCH
    );
}

#[test]
fn symbolic_links_and_dos_devices() {
    let mut ns = Namespace::new(headers()).unwrap();
    let dev = ns.create_type("Device", true).unwrap();
    let (vol, _) = ns
        .insert(
            "\\Device\\HarddiskVolume1",
            OBJ_PERMANENT,
            dev,
            Body::Opaque,
        )
        .unwrap();
    let (link, _) = ns
        .insert(
            "\\GLOBAL??\\C:",
            OBJ_PERMANENT,
            TYPE_SYMBOLIC_LINK,
            Body::SymbolicLink("\\Device\\HarddiskVolume1".into()),
        )
        .unwrap();
    // \??\C: goes through \GLOBAL?? to the device.
    assert_eq!(found(ns.lookup("\\??\\C:", 0, None)), vol);
    assert_eq!(
        found(ns.lookup("\\GLOBAL??\\c:", OBJ_CASE_INSENSITIVE, None)),
        vol
    );
    // OBJ_OPENLINK opens the link itself, but only as the last component.
    assert_eq!(found(ns.lookup("\\??\\C:", OBJ_OPENLINK, None)), link);
    // The rest of the path goes to the device's parse procedure.
    assert_eq!(
        ns.lookup(
            "\\??\\C:\\Windows\\System32\\ntoskrnl.exe",
            OBJ_OPENLINK,
            None
        )
        .unwrap(),
        Lookup::Parse {
            object: vol,
            remaining: "Windows\\System32\\ntoskrnl.exe".into()
        }
    );
    // A trailing separator is the device's root: remaining "\\".
    assert_eq!(
        ns.lookup("\\??\\C:\\", 0, None).unwrap(),
        Lookup::Parse {
            object: vol,
            remaining: "\\".into()
        }
    );
    assert_eq!(
        ns.insert("\\??\\C:\\x", 0, dev, Body::Opaque).unwrap_err(),
        STATUS_NOT_IMPLEMENTED
    );
}

#[test]
fn symbolic_link_loops_are_cut() {
    let mut ns = Namespace::new(headers()).unwrap();
    ns.insert(
        "\\GLOBAL??\\A",
        0,
        TYPE_SYMBOLIC_LINK,
        Body::SymbolicLink("\\GLOBAL??\\B".into()),
    )
    .unwrap();
    ns.insert(
        "\\GLOBAL??\\B",
        0,
        TYPE_SYMBOLIC_LINK,
        Body::SymbolicLink("\\??\\A".into()),
    )
    .unwrap();
    assert_eq!(
        ns.lookup("\\??\\A", 0, None).unwrap_err(),
        STATUS_REPARSE_POINT_NOT_RESOLVED
    );
    assert_eq!(
        ns.lookup("\\??\\A\\x", 0, None).unwrap_err(),
        STATUS_REPARSE_POINT_NOT_RESOLVED
    );
    // A chain of MAX_REPARSE links still resolves.
    let mut ns = Namespace::new(headers()).unwrap();
    let (target, _) = ns
        .insert(
            "\\KernelObjects\\T",
            0,
            TYPE_DIRECTORY,
            Body::Directory(Vec::new()),
        )
        .unwrap();
    let mut prev = "\\KernelObjects\\T".to_string();
    for i in 0..MAX_REPARSE {
        let name = alloc::format!("\\GLOBAL??\\L{i}");
        ns.insert(
            &name,
            0,
            TYPE_SYMBOLIC_LINK,
            Body::SymbolicLink(prev.clone()),
        )
        .unwrap();
        prev = name;
    }
    assert_eq!(found(ns.lookup(&prev, 0, None)), target);
    let name = "\\GLOBAL??\\Over";
    ns.insert(name, 0, TYPE_SYMBOLIC_LINK, Body::SymbolicLink(prev))
        .unwrap();
    assert_eq!(
        ns.lookup(name, 0, None).unwrap_err(),
        STATUS_REPARSE_POINT_NOT_RESOLVED
    );
}

#[test]
fn temporary_objects_lose_their_name_with_the_last_handle() {
    let (mut ns, ev) = ns_with_event();
    let (id, _) = ns
        .insert("\\BaseNamedObjects\\Temp", 0, ev, Body::Opaque)
        .unwrap();
    ns.open_handle(id).unwrap();
    ns.open_handle(id).unwrap();
    ns.dereference(id, false).unwrap(); // creator's reference
    ns.close_handle(id, false).unwrap();
    assert!(ns.lookup("\\BaseNamedObjects\\Temp", 0, None).is_ok());
    ns.reference(id).unwrap(); // a kernel pointer reference outlives the name
    ns.close_handle(id, false).unwrap();
    assert_eq!(
        ns.lookup("\\BaseNamedObjects\\Temp", 0, None).unwrap_err(),
        STATUS_OBJECT_NAME_NOT_FOUND
    );
    assert!(ns.header(id).is_some());
    assert_eq!(ns.full_name(id), "");
    ns.dereference(id, false).unwrap();
    assert!(ns.header(id).is_none());
    assert_eq!(ns.deleted.last(), Some(&(id, ev)));
    assert_eq!(
        ns.close_handle(id, false).unwrap_err(),
        STATUS_INVALID_PARAMETER
    );
}

#[test]
fn permanent_objects_keep_their_name() {
    let (mut ns, ev) = ns_with_event();
    let (id, _) = ns
        .insert("\\BaseNamedObjects\\Perm", OBJ_PERMANENT, ev, Body::Opaque)
        .unwrap();
    ns.open_handle(id).unwrap();
    ns.close_handle(id, false).unwrap();
    assert_eq!(found(ns.lookup("\\BaseNamedObjects\\Perm", 0, None)), id);
    ns.make_temporary(id).unwrap();
    assert!(ns.lookup("\\BaseNamedObjects\\Perm", 0, None).is_err());
    ns.dereference(id, false).unwrap();
    assert!(ns.header(id).is_none());
}

#[test]
fn deferred_delete_runs_later() {
    let (mut ns, ev) = ns_with_event();
    let id = ns.create_unnamed(ev, Body::Opaque).unwrap();
    ns.dereference(id, true).unwrap();
    assert!(ns.header(id).is_some());
    assert_eq!(ns.pending_deletes(), 1);
    assert_eq!(ns.process_deferred_deletes(), 1);
    assert!(ns.header(id).is_none());
    assert_eq!(
        ns.dereference(id, false).unwrap_err(),
        STATUS_INVALID_PARAMETER
    );
}

#[test]
fn many_create_close_cycles_leave_no_objects() {
    let (mut ns, ev) = ns_with_event();
    let before = ns.live_objects();
    for i in 0..10_000 {
        let name = alloc::format!("\\BaseNamedObjects\\E{}", i % 7);
        let (id, _) = ns.insert(&name, OBJ_OPENIF, ev, Body::Opaque).unwrap();
        ns.open_handle(id).unwrap();
        ns.dereference(id, false).unwrap();
        ns.close_handle(id, i % 2 == 0).unwrap();
        ns.process_deferred_deletes();
    }
    assert_eq!(ns.live_objects(), before);
    assert!(ns
        .list_directory(found(ns.lookup("\\BaseNamedObjects", 0, None)))
        .unwrap()
        .is_empty());
}

#[test]
fn duplicate_type_names_collide() {
    let (mut ns, _) = ns_with_event();
    assert_eq!(
        ns.create_type("event", false).unwrap_err(),
        STATUS_OBJECT_NAME_COLLISION
    );
    assert_eq!(ns.object_type(TYPE_DIRECTORY).unwrap().name, "Directory");
}

#[test]
fn deleted_object_slots_are_reused() {
    let mut ns = Namespace::new(headers()).unwrap();
    let t = ns.create_type("Event", false).unwrap();
    let before = ns.slots();
    for _ in 0..10_000 {
        let id = ns.create_unnamed(t, Body::Opaque).unwrap();
        ns.dereference(id, false).unwrap();
        for (d, _) in core::mem::take(&mut ns.deleted) {
            ns.recycle(d);
        }
    }
    assert!(ns.slots() <= before + 1, "object slots grew with churn");
}

#[test]
fn a_deleted_slot_is_not_reused_before_it_is_recycled() {
    let mut ns = Namespace::new(headers()).unwrap();
    let t = ns.create_type("Thread", false).unwrap();
    let old = ns.create_unnamed(t, Body::Opaque).unwrap();
    ns.dereference(old, false).unwrap();
    assert_eq!(ns.deleted.last(), Some(&(old, t)));
    // The delete procedure has not run yet: a new object gets another id.
    let new = ns.create_unnamed(t, Body::Opaque).unwrap();
    assert_ne!(new, old);
    // Recycling a live object's id does nothing.
    ns.recycle(new);
    let other = ns.create_unnamed(t, Body::Opaque).unwrap();
    assert_ne!(other, new);
    ns.deleted.clear();
    ns.recycle(old);
    ns.recycle(old);
    assert_eq!(ns.create_unnamed(t, Body::Opaque).unwrap(), old);
    assert_ne!(ns.create_unnamed(t, Body::Opaque).unwrap(), old);
}

#[test]
fn a_dying_object_is_not_found_and_frees_its_name() {
    let (mut ns, ev) = ns_with_event();
    let (old, _) = ns
        .insert("\\BaseNamedObjects\\Dying", 0, ev, Body::Opaque)
        .unwrap();
    // Another processor drops the last reference without the lock; its
    // deletion waits for the lock.
    assert_eq!(ns.headers().dereference(old), Ok(true));
    assert_eq!(ns.reference(old), Err(STATUS_INVALID_PARAMETER));
    // OBJ_OPENIF does not hand out the dying object: a new one takes the name.
    let (new, st) = ns
        .insert("\\BaseNamedObjects\\Dying", OBJ_OPENIF, ev, Body::Opaque)
        .unwrap();
    assert_eq!(st, STATUS_SUCCESS);
    assert_ne!(new, old);
    // The deleter gets the lock at last: the new object keeps the name.
    ns.object_dead(old, false);
    assert_eq!(found(ns.lookup("\\BaseNamedObjects\\Dying", 0, None)), new);
    assert!(ns.header(old).is_none());
    assert_eq!(ns.counts(new), (1, 0));
}
