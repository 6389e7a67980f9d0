//! A structural checker for hive files: verifies the base block, every hive bin and cell, and the
//! whole key tree (counts, list order and hashes, value data, security records and their
//! reference counts, maximum lengths), and reports cells that are referenced twice or not at all.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::*;

/// One problem found by [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Hive-bin relative cell offset (or file offset for base-block problems, with `base` set).
    pub offset: u32,
    /// True for base-block problems.
    pub base: bool,
    /// Description.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.base {
            write!(f, "base block +0x{:x}: {}", self.offset, self.message)
        } else {
            write!(f, "cell 0x{:x}: {}", self.offset, self.message)
        }
    }
}

struct Checker<'a> {
    bins: &'a [u8],
    minor: u32,
    /// cell offset -> (size, allocated)
    cells: BTreeMap<u32, (u32, bool)>,
    used: BTreeMap<u32, &'static str>,
    sk_refs: BTreeMap<u32, u32>,
    out: Vec<Problem>,
}

/// Checks a hive file image and returns every problem found (empty: the hive is consistent).
pub fn check(file: &[u8]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut p = |offset: u32, m: String| {
        out.push(Problem {
            offset,
            base: true,
            message: m,
        })
    };
    let base = match file.get(..PAGE) {
        Some(b) => b,
        None => {
            p(
                0,
                format!("file is {} bytes, shorter than a base block", file.len()),
            );
            return out;
        }
    };
    if &base[0..4] != b"regf" {
        p(0, "signature is not \"regf\"".into());
        return out;
    }
    let sum = rd32(base, 508).unwrap_or(0);
    if sum != base_checksum(base) {
        p(
            508,
            format!(
                "checksum 0x{:08x}, computed 0x{:08x}",
                sum,
                base_checksum(base)
            ),
        );
    }
    let (s1, s2) = (rd32(base, 4).unwrap_or(0), rd32(base, 8).unwrap_or(0));
    if s1 != s2 {
        p(
            4,
            format!("primary sequence number {} != secondary {}", s1, s2),
        );
    }
    let major = rd32(base, 20).unwrap_or(0);
    let minor = rd32(base, 24).unwrap_or(0);
    if major != 1 || !(2..=6).contains(&minor) {
        p(20, format!("unsupported version {}.{}", major, minor));
    }
    if rd32(base, 28) != Some(0) {
        p(
            28,
            format!(
                "file type {} is not primary (0)",
                rd32(base, 28).unwrap_or(0)
            ),
        );
    }
    if rd32(base, 32) != Some(1) {
        p(
            32,
            format!("file format {} is not 1", rd32(base, 32).unwrap_or(0)),
        );
    }
    let len = rd32(base, 40).unwrap_or(0) as usize;
    let bins = match file.get(PAGE..PAGE.saturating_add(len)) {
        Some(b) if len.is_multiple_of(PAGE) && len > 0 => b,
        _ => {
            p(
                40,
                format!(
                    "hive bins data size 0x{:x} does not fit the file (0x{:x} bytes)",
                    len,
                    file.len()
                ),
            );
            return out;
        }
    };
    let root = rd32(base, 36).unwrap_or(NIL);
    let mut c = Checker {
        bins,
        minor,
        cells: BTreeMap::new(),
        used: BTreeMap::new(),
        sk_refs: BTreeMap::new(),
        out,
    };
    c.walk_bins();
    c.key(root, NIL, 0);
    c.check_sks();
    for (&off, &(_, alloc)) in &c.cells {
        if alloc && !c.used.contains_key(&off) {
            c.out.push(Problem {
                offset: off,
                base: false,
                message: "allocated cell is not referenced".into(),
            });
        }
    }
    c.out
}

impl Checker<'_> {
    fn bad(&mut self, off: u32, m: String) {
        self.out.push(Problem {
            offset: off,
            base: false,
            message: m,
        });
    }

    fn walk_bins(&mut self) {
        let mut pos = 0usize;
        while pos < self.bins.len() {
            if self.bins.get(pos..pos + 4) != Some(b"hbin") {
                self.bad(pos as u32, "hive bin signature is not \"hbin\"".into());
                return;
            }
            if rd32(self.bins, pos + 4) != Some(pos as u32) {
                self.bad(
                    pos as u32,
                    format!(
                        "hive bin offset field 0x{:x}",
                        rd32(self.bins, pos + 4).unwrap_or(0)
                    ),
                );
            }
            let size = rd32(self.bins, pos + 8).unwrap_or(0) as usize;
            if size < PAGE || !size.is_multiple_of(PAGE) || pos + size > self.bins.len() {
                self.bad(pos as u32, format!("hive bin size 0x{:x}", size));
                return;
            }
            let mut c = pos + 32;
            while c < pos + size {
                let s = rd32(self.bins, c).unwrap_or(0) as i32;
                let z = s.unsigned_abs() as usize;
                if z < 8 || !z.is_multiple_of(8) || c + z > pos + size {
                    self.bad(
                        c as u32,
                        format!(
                            "cell size {} invalid (bin 0x{:x} size 0x{:x})",
                            s, pos, size
                        ),
                    );
                    break;
                }
                self.cells.insert(c as u32, (z as u32, s < 0));
                c += z;
            }
            pos += size;
        }
    }

    /// Marks a cell as referenced by a `kind` record and returns its data.
    fn take(&mut self, off: u32, kind: &'static str) -> Option<&[u8]> {
        let bins = self.bins;
        match self.cells.get(&off).copied() {
            None => {
                self.bad(off, format!("{} offset is not the start of a cell", kind));
                None
            }
            Some((_, false)) => {
                self.bad(off, format!("{} cell is free", kind));
                None
            }
            Some((z, true)) => {
                if let Some(prev) = self.used.insert(off, kind) {
                    if !(prev == "sk" && kind == "sk") {
                        self.bad(
                            off,
                            format!("cell referenced twice (as {} and {})", prev, kind),
                        );
                        return None;
                    }
                }
                bins.get(off as usize + 4..(off + z) as usize)
            }
        }
    }

    fn key(&mut self, off: u32, parent: u32, depth: u32) -> Option<String> {
        if depth > 512 {
            self.bad(off, "key tree deeper than 512".into());
            return None;
        }
        let d = self.take(off, "nk")?;
        if d.get(0..2) != Some(b"nk") {
            self.bad(off, "not an nk record".into());
            return None;
        }
        let d: Vec<u8> = d.to_vec();
        let g = |o| rd32(&d, o).unwrap_or(0);
        let flags = rd16(&d, 2).unwrap_or(0);
        let nlen = rd16(&d, 72).unwrap_or(0) as usize;
        let name = match d.get(76..76 + nlen) {
            Some(n) => crate::decode_name(n, flags & KEY_COMP_NAME != 0),
            None => {
                self.bad(off, format!("nk name length {} runs past the cell", nlen));
                return None;
            }
        };
        if nlen == 0 {
            self.bad(off, "nk name is empty".into());
        }
        let is_root = parent == NIL;
        if is_root && flags & KEY_HIVE_ENTRY == 0 {
            self.bad(off, "root nk lacks KEY_HIVE_ENTRY".into());
        }
        if !is_root {
            if flags & KEY_HIVE_ENTRY != 0 {
                self.bad(off, "non-root nk has KEY_HIVE_ENTRY".into());
            }
            if g(16) != parent {
                self.bad(
                    off,
                    format!("nk parent 0x{:x}, expected 0x{:x}", g(16), parent),
                );
            }
        }
        if flags & KEY_IS_VOLATILE != 0 {
            self.bad(off, "volatile key stored in the file".into());
        }
        // Security.
        let sk = g(44);
        *self.sk_refs.entry(sk).or_insert(0) += 1;
        // Class.
        let class_len = rd16(&d, 74).unwrap_or(0) as u32;
        if g(48) != NIL {
            if let Some(cd) = self.take(g(48), "class") {
                if (cd.len() as u32) < class_len {
                    self.bad(
                        g(48),
                        format!("class name length {} exceeds its cell", class_len),
                    );
                }
            }
        } else if class_len != 0 {
            self.bad(
                off,
                format!("class name length {} without a class cell", class_len),
            );
        }
        // Subkeys.
        let count = g(20);
        let mut children = Vec::new();
        if g(28) != NIL {
            self.list(g(28), &mut children, 0);
        }
        if children.len() as u32 != count {
            self.bad(
                off,
                format!(
                    "nk subkey count {} but list has {} entries",
                    count,
                    children.len()
                ),
            );
        }
        let mut prev: Option<Vec<u16>> = None;
        let mut max_name = 0;
        let mut max_class = 0;
        for (child, hint) in children {
            if let Some(cn) = self.key(child, off, depth + 1) {
                let up = upcase_name(&cn);
                if let Some(p) = &prev {
                    if *p >= up {
                        self.bad(off, format!("subkey list not sorted at \"{}\"", cn));
                    }
                }
                match hint {
                    Hint::Hash(h) if h != lh_hash(&cn) => self.bad(
                        child,
                        format!(
                            "lh hash 0x{:08x} for \"{}\", expected 0x{:08x}",
                            h,
                            cn,
                            lh_hash(&cn)
                        ),
                    ),
                    Hint::Prefix(p) => {
                        let want: Vec<u8> = cn.chars().take(4).map(|c| c as u32 as u8).collect();
                        let got: Vec<u8> = p.iter().copied().take_while(|&b| b != 0).collect();
                        if got != want && cn.chars().all(|c| (c as u32) < 0x80) {
                            self.bad(child, format!("lf name hint does not match \"{}\"", cn));
                        }
                    }
                    _ => {}
                }
                max_name = max_name.max(crate::utf16_len(&cn));
                let cl = self
                    .bins
                    .get(child as usize + 4 + 74..child as usize + 4 + 76)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32)
                    .unwrap_or(0);
                max_class = max_class.max(cl);
                prev = Some(up);
            }
        }
        if g(52) & 0xFFFF < max_name {
            self.bad(
                off,
                format!(
                    "largest subkey name length {} < actual {}",
                    g(52) & 0xFFFF,
                    max_name
                ),
            );
        }
        if g(56) < max_class {
            self.bad(
                off,
                format!(
                    "largest subkey class length {} < actual {}",
                    g(56),
                    max_class
                ),
            );
        }
        // Values.
        let nv = g(36);
        if nv > 0 {
            let vl = g(40);
            let offs: Vec<u32> = match self.take(vl, "value list") {
                Some(l) if l.len() >= nv as usize * 4 => {
                    (0..nv as usize).filter_map(|i| rd32(l, i * 4)).collect()
                }
                Some(_) => {
                    self.bad(vl, format!("value list cell too small for {} values", nv));
                    Vec::new()
                }
                None => Vec::new(),
            };
            let mut names: Vec<Vec<u16>> = Vec::new();
            let (mut mvn, mut mvd) = (0, 0);
            for v in offs {
                if let Some((vn, size)) = self.value(v) {
                    let up = upcase_name(&vn);
                    if names.contains(&up) {
                        self.bad(off, format!("duplicate value name \"{}\"", vn));
                    }
                    names.push(up);
                    mvn = mvn.max(crate::utf16_len(&vn));
                    mvd = mvd.max(size);
                }
            }
            if g(60) < mvn {
                self.bad(
                    off,
                    format!("largest value name length {} < actual {}", g(60), mvn),
                );
            }
            if g(64) < mvd {
                self.bad(
                    off,
                    format!("largest value data size {} < actual {}", g(64), mvd),
                );
            }
        }
        if flags & KEY_SYM_LINK != 0 && nv == 0 {
            self.bad(off, "symbolic link key without a SymbolicLinkValue".into());
        }
        Some(name)
    }

    fn list(&mut self, off: u32, out: &mut Vec<(u32, Hint)>, depth: u32) {
        let d = match self.take(off, "subkey list") {
            Some(d) => d.to_vec(),
            None => return,
        };
        let sig = d.get(0..2).unwrap_or(b"  ");
        let n = rd16(&d, 2).unwrap_or(0) as usize;
        let stride = match sig {
            b"lf" | b"lh" => 8,
            b"li" | b"ri" => 4,
            _ => {
                self.bad(off, "not a subkey list (lf/lh/li/ri)".into());
                return;
            }
        };
        if n == 0 {
            self.bad(off, "empty subkey list".into());
        }
        if 4 + n * stride > d.len() {
            self.bad(
                off,
                format!("{} entries overrun the {}-byte cell", n, d.len()),
            );
            return;
        }
        for i in 0..n {
            let e = rd32(&d, 4 + i * stride).unwrap_or(NIL);
            match sig {
                b"ri" => {
                    if depth > 0 {
                        self.bad(off, "ri list inside an ri list".into());
                        return;
                    }
                    self.list(e, out, 1);
                }
                b"lh" => out.push((e, Hint::Hash(rd32(&d, 8 + i * 8).unwrap_or(0)))),
                b"lf" => {
                    let mut p = [0u8; 4];
                    p.copy_from_slice(&d[8 + i * 8..12 + i * 8]);
                    out.push((e, Hint::Prefix(p)))
                }
                _ => out.push((e, Hint::None)),
            }
        }
    }

    /// Checks a vk and its data; returns (name, data size).
    fn value(&mut self, off: u32) -> Option<(String, u32)> {
        let d = self.take(off, "vk")?.to_vec();
        if d.get(0..2) != Some(b"vk") {
            self.bad(off, "not a vk record".into());
            return None;
        }
        let nlen = rd16(&d, 2).unwrap_or(0) as usize;
        let flags = rd16(&d, 16).unwrap_or(0);
        let name = match d.get(20..20 + nlen) {
            Some(n) => crate::decode_name(n, flags & VALUE_COMP_NAME != 0),
            None => {
                self.bad(off, format!("vk name length {} runs past the cell", nlen));
                return None;
            }
        };
        let size = rd32(&d, 4).unwrap_or(0);
        let data = rd32(&d, 8).unwrap_or(0);
        if size & 0x8000_0000 != 0 {
            if size & 0x7FFF_FFFF > 4 {
                self.bad(off, format!("inline data size {} > 4", size & 0x7FFF_FFFF));
            }
            return Some((name, size & 0x7FFF_FFFF));
        }
        if size == 0 {
            return Some((name, 0));
        }
        let big = size as usize > BIG_DATA_THRESHOLD && self.minor >= 4;
        let cd = self.take(data, "value data")?.to_vec();
        if big && cd.get(0..2) == Some(b"db") {
            let n = rd16(&cd, 2).unwrap_or(0) as usize;
            let want = (size as usize).div_ceil(BIG_DATA_THRESHOLD);
            if n != want {
                self.bad(
                    data,
                    format!("db has {} segments, data size {} needs {}", n, size, want),
                );
            }
            let list = rd32(&cd, 4).unwrap_or(NIL);
            let segs: Vec<u32> = match self.take(list, "db segment list") {
                Some(l) => (0..n).filter_map(|i| rd32(l, i * 4)).collect(),
                None => return Some((name, size)),
            };
            let mut total = 0usize;
            for s in segs {
                if let Some(sd) = self.take(s, "db segment") {
                    total += sd.len().min(BIG_DATA_THRESHOLD);
                }
            }
            if total < size as usize {
                self.bad(
                    data,
                    format!("db segments hold {} of {} bytes", total, size),
                );
            }
        } else if cd.len() < size as usize {
            self.bad(
                data,
                format!(
                    "value data size {} exceeds its {}-byte cell",
                    size,
                    cd.len()
                ),
            );
        }
        Some((name, size))
    }

    fn check_sks(&mut self) {
        let refs: Vec<(u32, u32)> = self.sk_refs.iter().map(|(a, b)| (*a, *b)).collect();
        for (sk, n) in refs {
            let d = match self.take(sk, "sk") {
                Some(d) => d.to_vec(),
                None => continue,
            };
            if d.get(0..2) != Some(b"sk") {
                self.bad(sk, "not an sk record".into());
                continue;
            }
            let rc = rd32(&d, 12).unwrap_or(0);
            if rc != n {
                self.bad(
                    sk,
                    format!("sk reference count {} but {} keys use it", rc, n),
                );
            }
            let len = rd32(&d, 16).unwrap_or(0) as usize;
            if 20 + len > d.len() {
                self.bad(
                    sk,
                    format!("security descriptor size {} exceeds the cell", len),
                );
            }
            let fl = rd32(&d, 4).unwrap_or(NIL);
            let bl = rd32(&d, 8).unwrap_or(NIL);
            let back = self
                .cells
                .get(&fl)
                .and_then(|_| rd32(self.bins, fl as usize + 4 + 8));
            if back != Some(sk) {
                self.bad(sk, format!("sk flink 0x{:x} does not link back", fl));
            }
            let fwd = self
                .cells
                .get(&bl)
                .and_then(|_| rd32(self.bins, bl as usize + 4 + 4));
            if fwd != Some(sk) {
                self.bad(sk, format!("sk blink 0x{:x} does not link back", bl));
            }
            if !self.sk_refs.contains_key(&fl) {
                self.bad(sk, format!("sk flink 0x{:x} is not a used sk", fl));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Hint {
    None,
    Hash(u32),
    Prefix([u8; 4]),
}
