//! Recovery of deleted keys and values from free cells.

extern crate std;

use alloc::string::String;
use alloc::vec::Vec;

use proptest::prelude::*;

use crate::*;

const T0: u64 = 133_000_000_000_000_000;

fn sample() -> Hive {
    let mut h = Hive::new_empty("ROOT").unwrap();
    h.set_time(T0);
    for p in ["Software\\Vendor\\Keep", "Software\\Vendor\\Gone", "Other"] {
        let k = h.create_key_path(p).unwrap();
        h.set_value(k, "Small", REG_DWORD, &7u32.to_le_bytes())
            .unwrap();
        h.set_value(k, "Path", REG_SZ, &utf16z("C:\\Program Files\\x.exe"))
            .unwrap();
    }
    let g = h.open_key("Software\\Vendor\\Gone").unwrap();
    h.set_value(g, "Blob", REG_BINARY, &alloc::vec![0xA5; 20000])
        .unwrap();
    h.set_value(g, "", REG_SZ, &utf16z("default")).unwrap();
    h
}

fn values(k: &DeletedKey) -> Vec<(String, u32, Option<Vec<u8>>)> {
    let mut v: Vec<_> = k
        .values
        .iter()
        .map(|v| (v.name.clone(), v.ty, v.data.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_hive_without_deletions_has_nothing_to_recover() {
    let h = Hive::from_bytes(&sample().to_bytes()).unwrap();
    assert_eq!(h.recover_deleted(), Recovered::default());
}

#[test]
fn deleted_key_and_its_values_are_recovered_with_their_path() {
    let mut h = sample();
    let g = h.open_key("Software\\Vendor\\Gone").unwrap();
    let want = {
        let mut v: Vec<_> = h
            .enum_values(g)
            .unwrap()
            .into_iter()
            .map(|v| (v.name, v.ty, Some(v.data)))
            .collect();
        v.sort();
        v
    };
    h.set_time(T0 + 1);
    h.delete_key(g).unwrap();
    // Recovery works on the file as written, not only in memory.
    let h = Hive::from_bytes(&h.to_bytes()).unwrap();
    let r = h.recover_deleted();
    assert_eq!(r.keys.len(), 1, "{:#?}", r.keys);
    let k = &r.keys[0];
    assert_eq!(k.name, "Gone");
    assert_eq!(k.offset, g);
    assert_eq!(k.path.as_deref(), Some("Software\\Vendor\\Gone"));
    assert_eq!(k.last_write, T0);
    assert_eq!(values(k), want);
    assert!(r.values.is_empty(), "{:#?}", r.values);
    // Live keys are untouched and not reported.
    assert!(h.open_key("Software\\Vendor\\Keep").is_ok());
}

#[test]
fn deleted_tree_paths_resolve_through_recovered_parents() {
    let mut h = sample();
    let v = h.open_key("Software\\Vendor").unwrap();
    h.delete_tree(v).unwrap();
    let r = h.recover_deleted();
    let mut paths: Vec<_> = r.keys.iter().filter_map(|k| k.path.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "Software\\Vendor",
            "Software\\Vendor\\Gone",
            "Software\\Vendor\\Keep"
        ]
    );
    let keep = r.keys.iter().find(|k| k.name == "Keep").unwrap();
    assert_eq!(keep.values.len(), 2);
}

#[test]
fn deleted_value_of_a_live_key_is_recovered_without_a_key() {
    let mut h = sample();
    let k = h.open_key("Other").unwrap();
    h.delete_value(k, "Path").unwrap();
    let r = h.recover_deleted();
    assert!(r.keys.is_empty());
    assert_eq!(r.values.len(), 1);
    assert_eq!(r.values[0].name, "Path");
    assert_eq!(r.values[0].ty, REG_SZ);
    assert_eq!(
        r.values[0].data.as_deref(),
        Some(&utf16z("C:\\Program Files\\x.exe")[..])
    );
}

#[test]
fn reused_space_is_not_reported_as_data() {
    let mut h = sample();
    let g = h.open_key("Software\\Vendor\\Gone").unwrap();
    h.delete_key(g).unwrap();
    // Reuse the free space: the old records are overwritten (zero-filled allocations).
    let o = h.open_key("Other").unwrap();
    for i in 0..40 {
        h.set_value(o, &alloc::format!("fill{}", i), REG_BINARY, &[1; 600])
            .unwrap();
    }
    let r = h.recover_deleted();
    for k in &r.keys {
        for v in &k.values {
            if let Some(d) = &v.data {
                // Whatever survives is the original data, never the new values' bytes.
                assert!(!d.iter().all(|&b| b == 1) || d.is_empty(), "{:?}", v.name);
            }
        }
    }
}

/// Hive-bin offsets of the free cells of a hive file: (offset, size).
fn free_cells(file: &[u8]) -> Vec<(usize, usize)> {
    let bins = &file[PAGE..];
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 32 <= bins.len() {
        let size = rd32(bins, pos + 8).unwrap() as usize;
        let mut c = pos + 32;
        while c < pos + size {
            let s = rd32(bins, c).unwrap() as i32;
            if s > 0 {
                out.push((c, s as usize));
            }
            c += s.unsigned_abs() as usize;
        }
        pos += size;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Random bytes in every free cell (with planted nk / vk signatures and size fields at random
    /// 8-byte boundaries) never make recovery panic, and recovered offsets are free-cell offsets.
    #[test]
    fn random_free_cell_contents_never_panic(
        noise in proptest::collection::vec(any::<u8>(), 64..4096),
        plants in proptest::collection::vec((any::<u16>(), any::<bool>(), any::<i32>()), 0..64),
    ) {
        let mut h = sample();
        let g = h.open_key("Software\\Vendor\\Gone").unwrap();
        h.delete_key(g).unwrap();
        let mut file = h.to_bytes();
        let cells = free_cells(&file);
        let mut n = 0usize;
        for &(c, z) in &cells {
            for i in c + 4..c + z {
                file[PAGE + i] = noise[n % noise.len()];
                n += 1;
            }
        }
        for (i, &(pos, nk, size)) in plants.iter().enumerate() {
            let (c, z) = cells[i % cells.len()];
            if z < 16 {
                continue;
            }
            let p = c + 8 + (pos as usize % (z - 8)) / 8 * 8;
            if p + 6 > c + z {
                continue;
            }
            let at = PAGE + p;
            if p != c {
                file[at..at + 4].copy_from_slice(&size.to_le_bytes());
            }
            file[at + 4..at + 6].copy_from_slice(if nk { b"nk" } else { b"vk" });
        }
        let h = Hive::from_bytes(&file).unwrap();
        let r = h.recover_deleted();
        for k in &r.keys {
            prop_assert!(cells.iter().any(|&(c, z)| (k.offset as usize) >= c && (k.offset as usize) < c + z));
        }
        crate::fuzz_one(&file);
    }
}
