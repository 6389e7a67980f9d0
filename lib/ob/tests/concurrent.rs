//! Handle table, object headers and namespace under concurrency, the way
//! the kernel uses them: the handle table and the counts without any lock,
//! the namespace behind its lock. No handle is ever handed out twice,
//! lookups always see the creator's object, a reference taken through a
//! handle never lands on an object whose last reference is gone, every
//! object is deleted exactly once, and counts return to where they started.

use ob::handle::{Handle, HandleEntry, HandleTable};
use ob::namespace::{Body, Lookup, Namespace};
use ob::object::ObjectHeaders;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn handle_create_lookup_close_from_many_threads_without_a_lock() {
    let table: Arc<HandleTable<u64>> = Arc::new(HandleTable::new());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let table = Arc::clone(&table);
            thread::spawn(move || {
                let mut mine: Vec<(Handle, u64)> = Vec::new();
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for i in 0..20_000u64 {
                    match xorshift(&mut x) % 3 {
                        0 | 1 => {
                            let object = (t << 32) | i;
                            let h = table
                                .create(HandleEntry {
                                    object,
                                    granted_access: (t as u32) << 8,
                                    attributes: 0,
                                })
                                .unwrap();
                            mine.push((h, object));
                        }
                        _ if !mine.is_empty() => {
                            let (h, object) = mine.swap_remove((x >> 8) as usize % mine.len());
                            let e = table.close(h).unwrap();
                            assert_eq!(e.object, object, "closed someone else's handle");
                        }
                        _ => {}
                    }
                    if let Some(&(h, object)) = mine.last() {
                        let e = table.lookup(h).unwrap();
                        assert_eq!(e.object, object, "lookup saw another thread's object");
                        assert_eq!(e.granted_access, (t as u32) << 8);
                    }
                }
                for (h, _) in mine {
                    table.close(h).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(table.count(), 0);
    assert!(
        table.capacity() > 256,
        "the table should have grown past one page"
    );
    assert_eq!(table.iter().count(), 0);
}

/// `ObReferenceObjectByHandle` racing `NtClose`: readers reference objects
/// through handles (entry locked) while the owner closes the handles, which
/// hold the objects' only other reference.
#[test]
fn reference_by_handle_never_revives_a_closed_object() {
    const OBJECTS: usize = 5_000;
    let headers: Arc<ObjectHeaders> = Arc::new(ObjectHeaders::new());
    let table: Arc<HandleTable<usize>> = Arc::new(HandleTable::new());
    let deaths: Arc<Vec<AtomicU32>> = Arc::new((0..OBJECTS).map(|_| AtomicU32::new(0)).collect());
    // Handles the owner has published (0 = none yet or closed).
    let published: Arc<Vec<AtomicU64>> = Arc::new((0..64).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicU32::new(0));
    let started = Arc::new(AtomicU32::new(0));
    // References the readers took so far (read before the teardown).
    let taken_so_far = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3u64)
        .map(|t| {
            let (headers, table, deaths, published, done, started, taken_so_far) = (
                Arc::clone(&headers),
                Arc::clone(&table),
                Arc::clone(&deaths),
                Arc::clone(&published),
                Arc::clone(&done),
                Arc::clone(&started),
                Arc::clone(&taken_so_far),
            );
            thread::spawn(move || {
                let mut x = (t + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
                let mut taken = 0u64;
                started.fetch_add(1, Ordering::SeqCst);
                while done.load(Ordering::Acquire) == 0 {
                    let h = published[xorshift(&mut x) as usize % 64].load(Ordering::Acquire);
                    if h == 0 {
                        continue;
                    }
                    let r = table.with_entry(Handle(h), |e| {
                        assert!(
                            headers.reference_if_alive(e.object),
                            "a locked handle entry named an object with no references"
                        );
                        e.object
                    });
                    if let Ok(id) = r {
                        taken += 1;
                        taken_so_far.fetch_add(1, Ordering::Relaxed);
                        if headers.dereference(id).unwrap() {
                            deaths[id].fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                taken
            })
        })
        .collect();
    while started.load(Ordering::SeqCst) < 3 {
        thread::yield_now();
    }
    let mut x = 77u64;
    for id in 0..OBJECTS {
        if id % 8 == 0 {
            // Two cores are shared with the readers: let them run.
            thread::yield_now();
        }
        headers.init(id, 5, 0).unwrap();
        headers.open_handle(id).unwrap();
        let h = table
            .create(HandleEntry {
                object: id,
                granted_access: 1,
                attributes: 0,
            })
            .unwrap();
        // The creator's reference goes: the handle keeps the object.
        assert!(!headers.dereference(id).unwrap());
        let slot = xorshift(&mut x) as usize % 64;
        let old = published[slot].swap(h.0, Ordering::AcqRel);
        if old != 0 {
            let e = table.close(Handle(old)).unwrap();
            assert!(!headers.close_handle(e.object).unwrap().name_check);
            if headers.dereference(e.object).unwrap() {
                deaths[e.object].fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    // The published handles stay open until the readers have taken at least
    // one reference, however the host schedules them (the check below fails
    // on a table that refuses lookups, not on a busy machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while taken_so_far.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
        thread::yield_now();
    }
    for p in published.iter() {
        let h = p.swap(0, Ordering::AcqRel);
        if h != 0 {
            let e = table.close(Handle(h)).unwrap();
            headers.close_handle(e.object).unwrap();
            if headers.dereference(e.object).unwrap() {
                deaths[e.object].fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    done.store(1, Ordering::Release);
    let taken: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(taken > 0, "the readers never got a reference");
    for id in 0..OBJECTS {
        assert_eq!(
            deaths[id].load(Ordering::SeqCst),
            1,
            "object {id} died {} times",
            deaths[id].load(Ordering::SeqCst)
        );
        assert_eq!(headers.pointer_count(id), 0);
        assert_eq!(headers.handle_count(id), 0);
    }
    assert_eq!(table.count(), 0);
}

#[test]
fn named_objects_opened_and_closed_from_many_threads() {
    let headers: &'static ObjectHeaders = Box::leak(Box::new(ObjectHeaders::new()));
    let ns = Arc::new(Mutex::new(Namespace::new(headers).unwrap()));
    let ty = ns.lock().unwrap().create_type("Event", false).unwrap();
    let (id, _) = ns
        .lock()
        .unwrap()
        .insert(
            "\\BaseNamedObjects\\Shared",
            ob::OBJ_PERMANENT,
            ty,
            Body::Opaque,
        )
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let ns = Arc::clone(&ns);
            thread::spawn(move || {
                for _ in 0..5_000 {
                    // Open by name under the namespace lock ...
                    let mut n = ns.lock().unwrap();
                    let found = n
                        .lookup("\\basenamedobjects\\shared", ob::OBJ_CASE_INSENSITIVE, None)
                        .unwrap();
                    assert_eq!(found, Lookup::Found(id));
                    n.reference(id).unwrap();
                    n.open_handle(id).unwrap();
                    n.dereference(id, false).unwrap();
                    drop(n);
                    // ... close without it, taking it only for follow-ups.
                    if headers.close_handle(id).unwrap().name_check {
                        ns.lock().unwrap().delete_name_check(id);
                    }
                    if headers.dereference(id).unwrap() {
                        ns.lock().unwrap().object_dead(id, false);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n = ns.lock().unwrap();
    assert_eq!(n.counts(id), (1, 0), "only the creation reference remains");
    assert!(n.header(id).is_some());
}
