//! Scenario tests over the whole cache manager state.

use crate::manager::{view_chunks, CacheManager, CcError, MapId, Teardown};
use crate::throttle::{DeferredWrite, Throttle};
use crate::vacb::{ViewGrant, VACB_MAPPING_GRANULARITY as V};
use crate::FileSizes;
use alloc::string::ToString;
use alloc::vec::Vec;
use proptest::prelude::*;

fn sizes(n: u64) -> FileSizes {
    FileSizes {
        allocation_size: n,
        file_size: n,
        valid_data_length: n,
    }
}

#[test]
fn view_chunks_split_at_256k() {
    let c: Vec<_> = view_chunks(V - 10, 30).collect();
    assert_eq!(c, [(0, V - 10, 10), (1, 0, 20)]);
    assert_eq!(view_chunks(0, 0).count(), 0);
    assert_eq!(view_chunks(3 * V, 2 * V).count(), 2);
}

#[test]
fn views_hit_reuse_and_budget() {
    let mut cc = CacheManager::new(2, 1000);
    let a = cc.create_map(sizes(4 * V), 1);
    let b = cc.create_map(sizes(V), 2);
    let g0 = cc.get_view(a, 0).unwrap();
    assert!(matches!(g0, ViewGrant::Map(_)));
    assert_eq!(cc.get_view(a, 100).unwrap(), ViewGrant::Hit(g0.vacb()));
    let g1 = cc.get_view(a, V).unwrap();
    assert_eq!(cc.get_view(b, 0), Err(CcError::NoViews));
    assert_eq!(cc.get_view(a, 4 * V), Err(CcError::BeyondSection));
    cc.release_view(g1.vacb());
    let gb = cc.get_view(b, 0).unwrap();
    assert!(
        matches!(gb, ViewGrant::Reuse { evicted, .. } if evicted.view == 1 && evicted.map == a.0)
    );
    assert!(cc.map(a).unwrap().vacbs.get(1).is_none());
    assert!(cc.verify());
    // A view that could not be mapped is given back.
    cc.release_view(gb.vacb());
    let g2 = cc.get_view(a, 2 * V).unwrap();
    assert!(cc.abandon_view(g2.vacb()));
    assert!(cc.map(a).unwrap().vacbs.get(2).is_none());
    assert!(matches!(cc.get_view(a, 2 * V), Ok(ViewGrant::Map(_))));
    assert!(cc.verify());
}

#[test]
fn flush_and_lazy_writer_reach_every_dirty_page() {
    let mut cc = CacheManager::new(16, 1 << 20);
    let a = cc.create_map(sizes(16 << 20), 1);
    let b = cc.create_map(sizes(16 << 20), 2);
    cc.mark_dirty(a, 0, 256 * 4096).unwrap();
    cc.mark_dirty(b, 1 << 20, 256 * 4096).unwrap();
    // Rewriting dirty pages does not count them twice.
    assert_eq!(cc.mark_dirty(a, 100, 4096).unwrap(), 0);
    assert_eq!(cc.total_dirty, 512);
    // Each pass takes an eighth; passes alternate fairly and finish.
    let mut passes = 0;
    let mut written = [0u64; 2];
    while cc.total_dirty > 0 {
        let plan = cc.lazy_pass();
        let total: u64 = plan
            .writes
            .iter()
            .flat_map(|(_, r)| r.iter().map(|r| r.count))
            .sum();
        assert!(total >= 1);
        for (m, runs) in plan.writes {
            for r in runs {
                written[m.0 as usize] += r.count;
                cc.write_done(m, r, true).unwrap();
            }
        }
        passes += 1;
        assert!(passes < 100);
    }
    assert_eq!(written, [256, 256]);
    assert!(
        passes >= 8,
        "an eighth per pass takes many passes: {passes}"
    );
    assert!(cc.verify());
}

#[test]
fn failed_writes_are_dirty_again() {
    let mut cc = CacheManager::new(4, 1000);
    let a = cc.create_map(sizes(V), 1);
    cc.mark_dirty(a, 0, 3 * 4096).unwrap();
    let runs = cc.take_for_flush(a, Some((4096, 4096))).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(cc.total_dirty, 2);
    cc.write_done(a, runs[0], false).unwrap();
    assert_eq!(cc.total_dirty, 3);
    let all = cc.take_for_flush(a, None).unwrap();
    assert_eq!(all.iter().map(|r| r.count).sum::<u64>(), 3);
    assert!(cc.verify());
}

#[test]
fn close_with_dirty_pages_defers_teardown_to_the_lazy_writer() {
    let mut cc = CacheManager::new(4, 1000);
    let a = cc.create_map(sizes(V), 1);
    let p = cc.open_private(a).unwrap();
    let q = cc.open_private(a).unwrap();
    let g = cc.get_view(a, 0).unwrap();
    cc.mark_dirty(a, 0, 10).unwrap();
    cc.release_view(g.vacb());
    assert_eq!(cc.close_private(p).unwrap().1, Teardown::StillOpen);
    assert_eq!(cc.close_private(q).unwrap().1, Teardown::AfterLazyWrite);
    let plan = cc.lazy_pass();
    assert_eq!(plan.writes.len(), 1);
    assert!(plan.teardown.is_empty());
    for (m, runs) in plan.writes {
        for r in runs {
            cc.write_done(m, r, true).unwrap();
        }
    }
    let plan = cc.lazy_pass();
    assert_eq!(plan.teardown, [a]);
    let views = cc.delete_map(a).unwrap();
    assert_eq!(views.len(), 1);
    assert!(cc.map(a).is_none());
    assert_eq!(cc.close_private(p), Err(CcError::BadId));
}

#[test]
fn purge_refuses_active_views_and_drops_dirty_pages() {
    let mut cc = CacheManager::new(4, 1000);
    let a = cc.create_map(sizes(2 * V), 1);
    let g = cc.get_view(a, V).unwrap();
    cc.mark_dirty(a, V, 8192).unwrap();
    assert_eq!(cc.purge(a, None), Err(CcError::Busy));
    cc.release_view(g.vacb());
    let gone = cc.purge(a, Some((V, 100))).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(cc.total_dirty, 1);
    assert!(cc.map(a).unwrap().vacbs.get(1).is_none());
    assert!(cc.verify());
}

#[test]
fn truncation_drops_dirty_pages_past_the_end_and_growth_extends_the_index() {
    let mut cc = CacheManager::new(4, 1000);
    let a = cc.create_map(sizes(V), 1);
    cc.mark_dirty(a, 0, V).unwrap();
    assert_eq!(cc.set_file_sizes(a, sizes(4096 + 1)).unwrap(), 62);
    assert_eq!(cc.total_dirty, 2);
    cc.set_file_sizes(a, sizes(64 << 20)).unwrap();
    assert_eq!(cc.map(a).unwrap().vacbs.levels(), 2);
    assert!(cc.get_view(a, 63 << 20).is_ok());
    assert!(cc.verify());
}

#[test]
fn throttle_and_deferred_writes() {
    let mut cc = CacheManager::new(4, 100);
    let a = cc.create_map(sizes(V), 1);
    cc.mark_dirty(a, 0, 90 * 4096).unwrap();
    assert_eq!(
        cc.can_i_write(a, 0, 10 * 4096, false, false, 1000, 10),
        None
    );
    assert_eq!(
        cc.can_i_write(a, 0, 11 * 4096, false, false, 1000, 10),
        Some(Throttle::GlobalThreshold)
    );
    cc.defer_write(
        DeferredWrite {
            token: 7,
            map: a.0,
            pages: 20,
            bytes: 20 * 4096,
        },
        false,
    );
    // A small write now queues behind the deferred one.
    assert_eq!(
        cc.can_i_write(a, 0, 4096, false, false, 1000, 10),
        Some(Throttle::QueuedBehind)
    );
    assert!(cc.post_deferred_writes(1000, 10).is_empty());
    // The lazy writer writes; the deferred write then fits and is posted.
    let plan = cc.lazy_pass();
    for (m, runs) in plan.writes {
        for r in runs {
            cc.write_done(m, r, true).unwrap();
        }
    }
    let posted = cc.post_deferred_writes(1000, 10);
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].token, 7);
    let text = crate::kd::format_defwrites(&cc, &Default::default(), |t| t);
    assert!(text.contains("Write throttles not engaged"), "{text}");
}

#[test]
fn kd_text() {
    let mut cc = CacheManager::new(4, 100);
    let a = cc.create_map(sizes(V), 0xABC);
    cc.get_view(a, 0).unwrap();
    cc.mark_dirty(a, 0, 4096).unwrap();
    let t = crate::kd::format_filecache(&cc, |k| (k, "\\f.txt".to_string()));
    assert!(t.contains("Current size 256 kb"), "{t}");
    assert!(
        t.contains("0000000000000abc     256     256       4"),
        "{t}"
    );
    assert!(t.ends_with("\\f.txt\n"));
    cc.mark_dirty(a, 4096, 99 * 4096).unwrap();
    let d = crate::kd::format_defwrites(
        &cc,
        &crate::kd::MmCounters {
            available_pages: Some(5),
            ..Default::default()
        },
        |t| t,
    );
    assert!(
        d.contains("CcTotalDirtyPages:                 100 (     400 Kb)"),
        "{d}"
    );
    assert!(d.contains("MmAvailablePages"));
    assert!(!d.contains("MmThrottleTop"));
    assert!(d.contains("Write throttles engaged"));
}

#[derive(Debug, Clone)]
enum Op {
    Open(u8),
    Close(u8),
    Get(u8, u64),
    Release(u8),
    Dirty(u8, u64, u64),
    Flush(u8),
    Purge(u8),
    Lazy,
    Size(u8, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::Open),
        (0u8..6).prop_map(Op::Close),
        (0u8..3, 0u64..(8 * V)).prop_map(|(m, o)| Op::Get(m, o)),
        (0u8..8).prop_map(Op::Release),
        (0u8..3, 0u64..(8 * V), 1u64..100_000).prop_map(|(m, o, l)| Op::Dirty(m, o, l)),
        (0u8..3).prop_map(Op::Flush),
        (0u8..3).prop_map(Op::Purge),
        Just(Op::Lazy),
        (0u8..3, 0u64..(8 * V)).prop_map(|(m, s)| Op::Size(m, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Random operations keep the cross-structure invariants, never hand
    /// out more views than the budget, and keep the dirty total exact.
    #[test]
    fn random_operations_keep_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut cc = CacheManager::new(3, 200);
        let mut maps: Vec<MapId> = Vec::new();
        let mut privs = Vec::new();
        let mut held = Vec::new();
        for i in 0..3 {
            maps.push(cc.create_map(sizes(4 * V), i));
        }
        for o in ops {
            match o {
                Op::Open(m) => {
                    if let Ok(p) = cc.open_private(maps[m as usize]) { privs.push(p); }
                }
                Op::Close(i) => {
                    if (i as usize) < privs.len() {
                        let p = privs.remove(i as usize);
                        let _ = cc.close_private(p);
                    }
                }
                Op::Get(m, off) => {
                    match cc.get_view(maps[m as usize], off) {
                        Ok(g) => held.push(g.vacb()),
                        Err(CcError::NoViews) => prop_assert_eq!(cc.views.active(), 3),
                        Err(_) => {}
                    }
                }
                Op::Release(i) => {
                    if (i as usize) < held.len() {
                        let v = held.remove(i as usize);
                        prop_assert!(cc.release_view(v));
                    }
                }
                Op::Dirty(m, o, l) => { let _ = cc.mark_dirty(maps[m as usize], o, l); }
                Op::Flush(m) => {
                    if let Ok(runs) = cc.take_for_flush(maps[m as usize], None) {
                        for r in runs { cc.write_done(maps[m as usize], r, true).unwrap(); }
                    }
                }
                Op::Purge(m) => { let _ = cc.purge(maps[m as usize], None); }
                Op::Lazy => {
                    let before = cc.total_dirty;
                    let plan = cc.lazy_pass();
                    let n: u64 = plan.writes.iter().flat_map(|(_, r)| r.iter().map(|r| r.count)).sum();
                    prop_assert!(n <= before);
                    if before > 0 { prop_assert!(n > 0); }
                    for (m, runs) in plan.writes {
                        for r in runs { cc.write_done(m, r, true).unwrap(); }
                    }
                }
                Op::Size(m, s) => { let _ = cc.set_file_sizes(maps[m as usize], sizes(s)); }
            }
            prop_assert!(cc.verify());
            prop_assert!(cc.views.mapped() <= 3);
        }
    }
}

#[test]
fn growth_unmaps_the_idle_short_view_and_keeps_its_dirty_pages() {
    let mut cc = CacheManager::new(4, 1000);
    let a = cc.create_map(sizes(100), 1);
    let g = cc.get_view(a, 0).unwrap();
    cc.mark_dirty(a, 0, 100).unwrap();
    // In use: left alone.
    assert!(cc.unmap_idle_view(a, 0).is_none());
    cc.release_view(g.vacb());
    cc.set_file_sizes(a, sizes(20_000)).unwrap();
    let (v, m) = cc.unmap_idle_view(a, 0).unwrap();
    assert_eq!((v, m.view), (g.vacb(), 0));
    assert!(cc.map(a).unwrap().vacbs.get(0).is_none());
    assert_eq!(cc.total_dirty, 1);
    // Not mapped any more: nothing to do; the next use maps it again.
    assert!(cc.unmap_idle_view(a, 0).is_none());
    assert!(matches!(cc.get_view(a, 0), Ok(ViewGrant::Map(_))));
    assert!(cc.verify());
}
