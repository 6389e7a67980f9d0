//! Handle table and namespace under concurrency, the way the kernel uses
//! them (each behind its lock, many processors creating, looking up and
//! closing at once): no handle is ever handed out twice, lookups always see
//! the creator's object, and reference counts return to where they started.

use ob::handle::{Handle, HandleEntry, HandleTable};
use ob::namespace::{Body, Lookup, Namespace};
use std::sync::{Arc, Mutex};
use std::thread;

#[test]
fn handle_create_lookup_close_from_many_threads() {
    let table: Arc<Mutex<HandleTable<u64>>> = Arc::new(Mutex::new(HandleTable::new()));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let table = Arc::clone(&table);
            thread::spawn(move || {
                let mut mine: Vec<(Handle, u64)> = Vec::new();
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for i in 0..20_000u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match x % 3 {
                        0 | 1 => {
                            let object = (t << 32) | i;
                            let h = table
                                .lock()
                                .unwrap()
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
                            let e = table.lock().unwrap().close(h).unwrap();
                            assert_eq!(e.object, object, "closed someone else's handle");
                        }
                        _ => {}
                    }
                    if let Some(&(h, object)) = mine.last() {
                        let t2 = table.lock().unwrap();
                        let e = t2.lookup(h).unwrap();
                        assert_eq!(e.object, object, "lookup saw another thread's object");
                        assert_eq!(e.granted_access, (t as u32) << 8);
                    }
                }
                for (h, _) in mine {
                    table.lock().unwrap().close(h).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let t = table.lock().unwrap();
    assert_eq!(t.count(), 0);
    assert!(
        t.levels() >= 2,
        "the table should have grown past one level"
    );
}

#[test]
fn named_objects_opened_and_closed_from_many_threads() {
    let ns = Arc::new(Mutex::new(Namespace::new()));
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
                    let mut n = ns.lock().unwrap();
                    let found = n
                        .lookup("\\basenamedobjects\\shared", ob::OBJ_CASE_INSENSITIVE, None)
                        .unwrap();
                    assert_eq!(found, Lookup::Found(id));
                    n.open_handle(id).unwrap();
                    drop(n);
                    ns.lock().unwrap().close_handle(id, false).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n = ns.lock().unwrap();
    let h = n.header(id).unwrap();
    assert_eq!(h.handle_count, 0);
    assert_eq!(h.pointer_count, 1, "only the creation reference remains");
}
