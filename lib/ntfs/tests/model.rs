//! Property tests: random create/write/truncate/rename/delete sequences on a
//! volume and on an in-memory model end in the same tree (plus one large
//! directory under insert/delete, and hard links with named streams), and the
//! checker finds nothing. Case count: NTRS_PROPTEST_CASES (default 48).

use ntfs::{check, format, Error, FormatOptions, MemDevice, Volume};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Dir,
    File(Vec<u8>),
}

#[derive(Clone, Debug)]
enum Op {
    Create(String, Vec<u8>),
    Mkdir(String),
    Write(String, u32, Vec<u8>),
    Truncate(String, u32),
    Rename(String, String),
    Delete(String),
}

fn path() -> impl Strategy<Value = String> {
    let comp = prop::sample::select(vec!["a", "b", "c", "dd", "long name with spaces.txt"]);
    prop::collection::vec(comp, 1..4).prop_map(|v| format!("/{}", v.join("/")))
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..300),
        2 => (0usize..9000, any::<u8>()).prop_map(|(n, b)| (0..n).map(|i| b.wrapping_add(i as u8)).collect()),
        1 => (30000usize..70000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (path(), data()).prop_map(|(p, d)| Op::Create(p, d)),
        2 => path().prop_map(Op::Mkdir),
        2 => (path(), 0u32..20000, data()).prop_map(|(p, o, d)| Op::Write(p, o, d)),
        1 => (path(), 0u32..20000).prop_map(|(p, l)| Op::Truncate(p, l)),
        1 => (path(), path()).prop_map(|(a, b)| Op::Rename(a, b)),
        2 => path().prop_map(Op::Delete),
    ]
}

fn parent(p: &str) -> String {
    match p.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => p[..i].into(),
        None => "/".into(),
    }
}

type Model = BTreeMap<String, Node>;

fn is_dir(m: &Model, p: &str) -> bool {
    p == "/" || m.get(p) == Some(&Node::Dir)
}

/// Applies `op` to the model; returns whether it should succeed.
fn model_apply(m: &mut Model, op: &Op) -> bool {
    match op {
        Op::Create(p, d) => {
            if !is_dir(m, &parent(p)) || is_dir(m, p) {
                return false;
            }
            m.insert(p.clone(), Node::File(d.clone()));
            true
        }
        Op::Mkdir(p) => {
            if !is_dir(m, &parent(p)) || m.contains_key(p) {
                return false;
            }
            m.insert(p.clone(), Node::Dir);
            true
        }
        Op::Write(p, o, d) => match m.get_mut(p) {
            Some(Node::File(f)) => {
                let end = *o as usize + d.len();
                if f.len() < end {
                    f.resize(end, 0);
                }
                f[*o as usize..end].copy_from_slice(d);
                true
            }
            _ => false,
        },
        Op::Truncate(p, l) => match m.get_mut(p) {
            Some(Node::File(f)) => {
                f.resize(*l as usize, 0);
                true
            }
            _ => false,
        },
        Op::Rename(a, b) => {
            if !m.contains_key(a) || !is_dir(m, &parent(b)) {
                return false;
            }
            if a == b {
                return true;
            }
            if m.contains_key(b) || b.starts_with(&format!("{a}/")) {
                return false;
            }
            let moved: Vec<String> = m
                .keys()
                .filter(|k| *k == a || k.starts_with(&format!("{a}/")))
                .cloned()
                .collect();
            for k in moved {
                let v = m.remove(&k).unwrap();
                m.insert(format!("{b}{}", &k[a.len()..]), v);
            }
            true
        }
        Op::Delete(p) => {
            match m.get(p) {
                None => return false,
                Some(Node::Dir) if m.keys().any(|k| k.starts_with(&format!("{p}/"))) => {
                    return false
                }
                _ => {}
            }
            m.remove(p);
            true
        }
    }
}

fn vol_apply(v: &mut Volume<MemDevice>, op: &Op) -> Result<(), Error> {
    match op {
        Op::Create(p, d) => v.write_file(p, d).map(|_| ()),
        Op::Mkdir(p) => v.create(p, true).map(|_| ()),
        Op::Write(p, o, d) => {
            let n = v.lookup(p)?;
            v.write_at(n, &[], *o as u64, d)
        }
        Op::Truncate(p, l) => {
            let n = v.lookup(p)?;
            v.set_len(n, &[], *l as u64)
        }
        Op::Rename(a, b) => v.rename(a, b),
        Op::Delete(p) => v.remove(p),
    }
}

fn walk(v: &mut Volume<MemDevice>, dir: u64, prefix: &str, out: &mut Model) {
    for e in v.read_dir(dir).unwrap() {
        if dir == 5 && (e.name.starts_with('$') || e.name == ".") {
            continue;
        }
        let p = format!("{prefix}/{}", e.name);
        if e.is_dir() {
            out.insert(p.clone(), Node::Dir);
            walk(v, e.mft_no(), &p, out);
        } else {
            out.insert(p.clone(), Node::File(v.read_file(&p).unwrap()));
        }
    }
}

fn cases() -> u32 {
    std::env::var("NTRS_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn volume_matches_model(ops in prop::collection::vec(op(), 1..40), tiny in prop::bool::weighted(0.3)) {
        // Tiny volumes fill up: a failed operation changes nothing, except
        // that rewriting an existing file leaves it empty.
        let size = if tiny { 5 << 18 } else { 8 << 20 };
        let mut v = format(MemDevice::new(size), &FormatOptions::default()).unwrap();
        let mut m = Model::new();
        let ops: Vec<Op> = if tiny {
            // Bigger writes so the volume fills.
            ops.into_iter()
                .map(|op| match op {
                    Op::Create(p, d) => Op::Create(p, d.repeat(16)),
                    Op::Write(p, o, d) => Op::Write(p, o, d.repeat(16)),
                    other => other,
                })
                .collect()
        } else {
            ops
        };
        for op in &ops {
            let before = m.clone();
            let want = model_apply(&mut m, op);
            let got = vol_apply(&mut v, op);
            if got == Err(Error::DiskFull) {
                prop_assert!(want, "{:?} -> DiskFull but the model says it is invalid", op);
                m = before;
                if let Op::Create(p, _) = op {
                    if let Some(Node::File(f)) = m.get_mut(p) {
                        f.clear();
                    }
                }
                continue;
            }
            prop_assert_eq!(want, got.is_ok(), "{:?} -> {:?}", op, got);
        }
        let mut seen = Model::new();
        walk(&mut v, 5, "", &mut seen);
        prop_assert_eq!(&seen, &m);
        let problems = check(&mut v).unwrap();
        prop_assert!(problems.is_empty(), "{:#?}", problems);
        // Remount from the bytes and compare again.
        let mut v = Volume::open(v.into_device()).unwrap();
        let mut again = Model::new();
        walk(&mut v, 5, "", &mut again);
        prop_assert_eq!(&again, &m);
    }
}

#[derive(Clone, Debug)]
enum DirOp {
    Add(u16),
    Del(u16),
}

fn dir_ops() -> impl Strategy<Value = Vec<DirOp>> {
    prop::collection::vec(
        prop_oneof![3 => (0u16..400).prop_map(DirOp::Add), 2 => (0u16..400).prop_map(DirOp::Del)],
        50..700,
    )
}

fn entry_name(i: u16) -> String {
    // Varying lengths so nodes split at different points.
    format!("entry {i:03} {}", "x".repeat((i as usize * 7) % 60))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases() / 4 + 1))]
    /// One directory under heavy insert/delete: node splits, root promotion,
    /// predecessor replacement and rebuilds keep the B+ tree equal to a set.
    #[test]
    fn directory_index_matches_set(ops in dir_ops()) {
        let mut v = format(MemDevice::new(16 << 20), &FormatOptions::default()).unwrap();
        let d = v.create("/d", true).unwrap();
        let mut set = std::collections::BTreeSet::new();
        for op in &ops {
            match op {
                DirOp::Add(i) => {
                    let r = v.create(&format!("/d/{}", entry_name(*i)), false);
                    prop_assert_eq!(r.is_ok(), set.insert(*i), "add {}: {:?}", i, r);
                }
                DirOp::Del(i) => {
                    let r = v.remove(&format!("/d/{}", entry_name(*i)));
                    prop_assert_eq!(r.is_ok(), set.remove(i), "del {}: {:?}", i, r);
                }
            }
        }
        let listed: Vec<String> = v.read_dir(d).unwrap().into_iter().map(|e| e.name).collect();
        let want: Vec<String> = set.iter().map(|i| entry_name(*i)).collect();
        prop_assert_eq!(listed, want);
        let problems = check(&mut v).unwrap();
        prop_assert!(problems.is_empty(), "{:#?}", problems);
    }
}

#[derive(Clone, Debug)]
enum LinkOp {
    Create(u8, Vec<u8>),
    Link(u8, u8),
    Write(u8, u16, Vec<u8>),
    Stream(u8, u8, Vec<u8>),
    Delete(u8),
}

fn link_ops() -> impl Strategy<Value = Vec<LinkOp>> {
    let name = 0u8..6;
    prop::collection::vec(
        prop_oneof![
            2 => (name.clone(), data()).prop_map(|(n, d)| LinkOp::Create(n, d)),
            2 => (name.clone(), name.clone()).prop_map(|(a, b)| LinkOp::Link(a, b)),
            2 => (name.clone(), 0u16..3000, data()).prop_map(|(n, o, d)| LinkOp::Write(n, o, d)),
            1 => (name.clone(), 0u8..2, data()).prop_map(|(n, s, d)| LinkOp::Stream(n, s, d)),
            2 => name.prop_map(LinkOp::Delete),
        ],
        1..40,
    )
}

#[derive(Default, Clone, Debug)]
struct Inode {
    data: Vec<u8>,
    streams: BTreeMap<u8, Vec<u8>>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    /// Hard links share data and streams; the last unlink frees the file.
    #[test]
    fn hard_links_and_streams_match_model(ops in link_ops()) {
        let mut v = format(MemDevice::new(8 << 20), &FormatOptions::default()).unwrap();
        let mut names: BTreeMap<u8, usize> = BTreeMap::new();
        let mut inodes: Vec<Inode> = Vec::new();
        let path = |n: u8| format!("/file-{n}");
        for op in &ops {
            match op {
                LinkOp::Create(n, d) => {
                    let r = v.write_file(&path(*n), d);
                    prop_assert!(r.is_ok(), "{:?}", r);
                    match names.get(n) {
                        Some(&i) => inodes[i].data = d.clone(),
                        None => {
                            inodes.push(Inode { data: d.clone(), ..Default::default() });
                            names.insert(*n, inodes.len() - 1);
                        }
                    }
                }
                LinkOp::Link(a, b) => {
                    let r = v.link(&path(*a), &path(*b));
                    let ok = names.contains_key(a) && !names.contains_key(b);
                    prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
                    if ok {
                        let i = names[a];
                        names.insert(*b, i);
                    }
                }
                LinkOp::Write(n, o, d) => {
                    let r = v.lookup(&path(*n)).and_then(|f| v.write_at(f, &[], *o as u64, d));
                    prop_assert_eq!(r.is_ok(), names.contains_key(n), "{:?}", r);
                    if let Some(&i) = names.get(n) {
                        let f = &mut inodes[i].data;
                        let end = *o as usize + d.len();
                        if f.len() < end {
                            f.resize(end, 0);
                        }
                        f[*o as usize..end].copy_from_slice(d);
                    }
                }
                LinkOp::Stream(n, s, d) => {
                    // Like CreateFile("name:stream"): creates the file if needed.
                    let r = v.write_file(&format!("{}:s{s}", path(*n)), d);
                    prop_assert!(r.is_ok(), "{:?}", r);
                    let i = match names.get(n) {
                        Some(&i) => i,
                        None => {
                            inodes.push(Inode::default());
                            names.insert(*n, inodes.len() - 1);
                            inodes.len() - 1
                        }
                    };
                    inodes[i].streams.insert(*s, d.clone());
                }
                LinkOp::Delete(n) => {
                    let r = v.remove(&path(*n));
                    prop_assert_eq!(r.is_ok(), names.remove(n).is_some(), "{:?}", r);
                }
            }
        }
        for (n, &i) in &names {
            prop_assert_eq!(&v.read_file(&path(*n)).unwrap(), &inodes[i].data);
            for (s, d) in &inodes[i].streams {
                prop_assert_eq!(&v.read_file(&format!("{}:s{s}", path(*n))).unwrap(), d);
            }
            let f = v.lookup(&path(*n)).unwrap();
            let links = names.values().filter(|&&j| j == i).count();
            prop_assert_eq!(v.stat(f).unwrap().link_count as usize, links);
        }
        let listed = v.read_dir(5).unwrap().into_iter().filter(|e| e.name.starts_with("file-")).count();
        prop_assert_eq!(listed, names.len());
        let problems = check(&mut v).unwrap();
        prop_assert!(problems.is_empty(), "{:#?}", problems);
    }
}
