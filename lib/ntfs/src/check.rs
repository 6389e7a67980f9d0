//! The checker (our read-only chkdsk): walks the MFT, every attribute's
//! runs, every directory index and the bitmaps, and reports each
//! inconsistency it finds. Used by the tests after every mutation sequence.

use crate::attr::*;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::record::{unfixup, Record};
use crate::upcase;
use crate::volume::{rec, Volume, I30};
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The MFT record concerned, if any.
    pub record: Option<u64>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.record {
            Some(r) => write!(f, "record {r}: {}", self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

fn p(out: &mut Vec<Problem>, record: Option<u64>, what: String) {
    if out.len() < 10_000 {
        out.push(Problem { record, what });
    }
}

/// Checks the volume; returns every problem found. Errors only when the
/// volume cannot be walked at all (unreadable device, no `$Bitmap`).
///
/// Checked: update sequence arrays of every record in use; MFT bitmap vs.
/// in-use flags; every run inside the volume, no cluster claimed twice,
/// `$Bitmap` vs. the clusters the runs claim (lost and leaked clusters);
/// `$I30` order by `$UpCase` collation, entries pointing at in-use records
/// with the right sequence number and a matching `$FILE_NAME`, every
/// `$FILE_NAME` indexed in its parent; link counts; index block bitmaps;
/// `$MFTMirr` equal to the first records of `$MFT`.
pub fn check<D: BlockDevice>(v: &mut Volume<D>) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    let total = v.total_clusters();
    let cs = v.cluster_size();
    let records = v.mft_records();
    let mft_bitmap = v.read_stream_all(rec::MFT, AT_BITMAP, &[])?;
    let bitmap = v.read_stream_all(rec::BITMAP, AT_DATA, &[])?;
    if (bitmap.len() as u64) * 8 < total {
        p(
            &mut out,
            Some(rec::BITMAP),
            "$Bitmap smaller than the volume".into(),
        );
        return Ok(out);
    }
    let bit = |b: &[u8], i: u64| {
        b.get((i / 8) as usize)
            .is_some_and(|x| x & (1 << (i % 8)) != 0)
    };
    let mut used = alloc::vec![0u8; bitmap.len()];
    let mut bases: Vec<Record> = Vec::new();
    // Names per record from $FILE_NAME attributes: (parent, name, namespace).
    let mut fnames: Vec<(u64, u64, Vec<u16>, u8)> = Vec::new();
    for n in 0..records {
        let in_bitmap = bit(&mft_bitmap, n);
        let raw = match v.read_record_raw(n) {
            Ok(r) => r,
            Err(e) => {
                p(&mut out, Some(n), format!("unreadable: {e}"));
                continue;
            }
        };
        let mut b = raw.clone();
        if unfixup(&mut b, b"FILE").is_err() {
            if in_bitmap && n >= 24 {
                p(
                    &mut out,
                    Some(n),
                    "in use in the MFT bitmap but bad signature or update sequence array".into(),
                );
            }
            continue;
        }
        let r = match Record::parse(&b, n) {
            Ok(r) => r,
            Err(e) => {
                if in_bitmap {
                    p(&mut out, Some(n), format!("{e}"));
                }
                continue;
            }
        };
        if r.in_use() != in_bitmap && !(16..24).contains(&n) {
            p(
                &mut out,
                Some(n),
                format!(
                    "in-use flag {} but MFT bitmap bit {}",
                    r.in_use(),
                    in_bitmap
                ),
            );
        }
        if !r.in_use() {
            continue;
        }
        // Clusters.
        for a in &r.attrs {
            let Some(nr) = a.nonres() else { continue };
            if n == rec::BADCLUS
                && a.name.as_slice() == [b'$' as u16, b'B' as u16, b'a' as u16, b'd' as u16]
            {
                continue;
            }
            for run in &nr.runs {
                let Some(l) = run.lcn else { continue };
                if l.checked_add(run.len).is_none_or(|e| e > total) {
                    p(
                        &mut out,
                        Some(n),
                        format!("run at LCN {l} length {} beyond the volume", run.len),
                    );
                    continue;
                }
                for c in l..l + run.len {
                    let byte = &mut used[(c / 8) as usize];
                    if *byte & (1 << (c % 8)) != 0 {
                        p(&mut out, Some(n), format!("cluster {c} allocated twice"));
                    }
                    *byte |= 1 << (c % 8);
                }
            }
            if a.nonres().is_some_and(|x| x.start_vcn == 0) {
                let clusters: u64 = nr.runs.iter().map(|r| r.len).sum();
                if r.find(AT_ATTRIBUTE_LIST, &[]).is_none()
                    && a.flags & ATTR_COMPRESSED == 0
                    && clusters * cs != nr.allocated_size
                    && r.base == 0
                {
                    p(
                        &mut out,
                        Some(n),
                        format!(
                            "attribute {:#x}: allocated size {} but runs cover {} bytes",
                            a.ty,
                            nr.allocated_size,
                            clusters * cs
                        ),
                    );
                }
                if nr.data_size > nr.allocated_size || nr.initialized_size > nr.data_size {
                    p(
                        &mut out,
                        Some(n),
                        format!("attribute {:#x}: sizes out of order", a.ty),
                    );
                }
            }
        }
        if r.base != 0 {
            continue;
        }
        // A file with an $ATTRIBUTE_LIST: its names and its index root may
        // live in extension records; look at all of its attributes.
        let mut r = r;
        if let Some(al) = r.find(AT_ATTRIBUTE_LIST, &[]).cloned() {
            check_attr_list(v, &r, &al, &mut out);
            match v.load(n) {
                Ok((_, all)) => r.attrs = all,
                Err(e) => p(&mut out, Some(n), format!("attribute list: {e}")),
            }
        }
        let mut links = 0u16;
        let mut all = 0u16;
        for a in r.attrs.iter().filter(|a| a.ty == AT_FILE_NAME) {
            match a.value().map(FileName::parse) {
                Some(Ok(f)) => {
                    all += 1;
                    if f.namespace != NS_DOS {
                        links += 1;
                    }
                    fnames.push((n, mft_no(f.parent), f.name, f.namespace));
                }
                _ => p(&mut out, Some(n), "unparsable $FILE_NAME".into()),
            }
        }
        if n >= 16 && r.link_count != links && r.link_count != all {
            p(
                &mut out,
                Some(n),
                format!("link count {} but {} names", r.link_count, links),
            );
        }
        bases.push(r);
    }
    for c in 0..total {
        let (u, m) = (bit(&used, c), bit(&bitmap, c));
        if u && !m {
            p(
                &mut out,
                None,
                format!("cluster {c} in use but free in $Bitmap"),
            );
        } else if m && !u {
            p(
                &mut out,
                None,
                format!("cluster {c} marked in $Bitmap but not used (leak)"),
            );
        }
    }
    // Indexes.
    let up = v.upcase().to_vec();
    let mut indexed: BTreeSet<(u64, u64, Vec<u16>)> = BTreeSet::new();
    for r in &bases {
        if r.find(AT_INDEX_ROOT, &I30).is_none() {
            continue;
        }
        let n = r.number;
        let ctx = match v.index_ctx(n, &I30) {
            Ok(c) => c,
            Err(e) => {
                p(&mut out, Some(n), format!("index: {e}"));
                continue;
            }
        };
        let entries = match v.index_all(&ctx) {
            Ok(e) => e,
            Err(e) => {
                p(&mut out, Some(n), format!("index walk: {e}"));
                continue;
            }
        };
        // Index block bitmap vs blocks in use.
        if let Some(s) = &ctx.alloc {
            let mut reached = BTreeSet::new();
            let mut stack: Vec<Vec<crate::index::IndexEntry>> = alloc::vec![ctx.root.clone()];
            while let Some(node) = stack.pop() {
                for e in node {
                    if let Some(c) = e.child {
                        if reached.insert(c) {
                            if let Ok(ch) = v.read_block(&ctx, c) {
                                stack.push(ch);
                            }
                        }
                    }
                }
            }
            let bm = ctx.bitmap.clone().unwrap_or_default();
            let blocks = s.data_size / ctx.hdr.block_size as u64;
            for i in 0..blocks {
                let vcn = i * ctx.hdr.block_size as u64 / ctx.vcn_unit;
                if bit(&bm, i) != reached.contains(&vcn) {
                    p(
                        &mut out,
                        Some(n),
                        format!(
                            "index block {vcn}: bitmap {} but {}reachable",
                            bit(&bm, i),
                            if reached.contains(&vcn) { "" } else { "not " }
                        ),
                    );
                }
            }
        }
        let mut prev: Option<Vec<u16>> = None;
        for e in &entries {
            let f = match FileName::parse(&e.key) {
                Ok(f) => f,
                Err(_) => {
                    p(&mut out, Some(n), "index entry with bad key".into());
                    continue;
                }
            };
            if let Some(pn) = &prev {
                if upcase::collate_names(&up, pn, &f.name) != Ordering::Less {
                    p(
                        &mut out,
                        Some(n),
                        format!("index out of order at {:?}", f.name_string()),
                    );
                }
            }
            prev = Some(f.name.clone());
            if mft_no(f.parent) != n {
                p(
                    &mut out,
                    Some(n),
                    format!(
                        "entry {:?} names parent {}",
                        f.name_string(),
                        mft_no(f.parent)
                    ),
                );
            }
            let target = mft_no(e.fref);
            match bases.iter().find(|b| b.number == target) {
                Some(t) => {
                    if seq_no(e.fref) != 0 && seq_no(e.fref) != t.seq {
                        p(
                            &mut out,
                            Some(n),
                            format!(
                                "entry {:?} has sequence {} but record {target} has {}",
                                f.name_string(),
                                seq_no(e.fref),
                                t.seq
                            ),
                        );
                    }
                }
                None => p(
                    &mut out,
                    Some(n),
                    format!(
                        "entry {:?} points at record {target} which is not in use",
                        f.name_string()
                    ),
                ),
            }
            indexed.insert((target, n, f.name));
        }
    }
    for (n, parent, name, _) in &fnames {
        if !indexed.contains(&(*n, *parent, name.clone())) {
            p(
                &mut out,
                Some(*n),
                format!(
                    "name {:?} missing from the index of {parent}",
                    crate::util::utf16_to_string(name)
                ),
            );
        }
    }
    // $LogFile: both restart pages empty (0xFF) or valid and clean.
    let log = v.open_stream(rec::LOGFILE, AT_DATA, &[])?;
    let ps = crate::format::LOG_PAGE_SIZE;
    let mut pages = alloc::vec![0u8; 2 * ps];
    if v.read_stream_at(&log, 0, &mut pages)? != pages.len() {
        p(
            &mut out,
            Some(rec::LOGFILE),
            "$LogFile shorter than its restart pages".into(),
        );
    }
    for (i, pg) in pages.chunks_exact(ps).enumerate() {
        if pg.iter().all(|b| *b == 0xFF) {
            continue;
        }
        let mut c = pg.to_vec();
        if unfixup(&mut c, b"RSTR").is_err() {
            p(
                &mut out,
                Some(rec::LOGFILE),
                format!("restart page {i}: bad signature or update sequence array"),
            );
            continue;
        }
        let ra = crate::util::u16_at(&c, 0x18).unwrap_or(0) as usize;
        match crate::util::u16_at(&c, ra + 0x0E) {
            Ok(f) if f & crate::format::RESTART_VOLUME_IS_CLEAN != 0 => {}
            _ => p(
                &mut out,
                Some(rec::LOGFILE),
                format!("restart page {i}: volume not marked clean"),
            ),
        }
    }
    // $UpCase:$Info (Windows 8 and later): length 32 and the CRC-64 of $UpCase.
    let info_name: Vec<u16> = "$Info".encode_utf16().collect();
    if let Ok(info) = v.read_stream_all(rec::UPCASE, AT_DATA, &info_name) {
        let up: Vec<u8> = v.upcase().iter().flat_map(|u| u.to_le_bytes()).collect();
        let ok = info.len() == 32
            && crate::util::u32_at(&info, 0) == Ok(32)
            && crate::util::u64_at(&info, 8) == Ok(crate::format::crc64(&up));
        if !ok {
            p(
                &mut out,
                Some(rec::UPCASE),
                "$UpCase:$Info does not match the table (length or CRC-64)".into(),
            );
        }
    }
    // $MFTMirr: Windows keeps the first four records ($MFT, $MFTMirr, $LogFile, $Volume) in step
    // with the mirror. On a volume whose clusters hold more records the mirror's cluster has more
    // copies, written at format time and never updated (seen on a Windows 10 volume with 2 MiB
    // clusters), so only the first four are compared.
    let mirr = v.read_stream_all(rec::MFTMIRR, AT_DATA, &[])?;
    let rs = v.record_size();
    for (i, m) in mirr.chunks_exact(rs).take(4).enumerate() {
        match v.read_record_raw(i as u64) {
            Ok(raw) if raw == m => {}
            Ok(_) => p(
                &mut out,
                Some(i as u64),
                "differs from its $MFTMirr copy".into(),
            ),
            Err(Error::BadRecord { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Each `$ATTRIBUTE_LIST` entry of base record `r` names an attribute that
/// is there: in `r` or in an extension record of `r` (sequence number
/// matching), with that type, name, lowest VCN and instance.
fn check_attr_list<D: BlockDevice>(
    v: &mut Volume<D>,
    r: &Record,
    al: &crate::record::Attr,
    out: &mut Vec<Problem>,
) {
    let n = r.number;
    let list = match v.attr_value(al, n).and_then(|b| parse_attr_list(&b)) {
        Ok(l) => l,
        Err(e) => {
            p(out, Some(n), format!("attribute list: {e}"));
            return;
        }
    };
    let mut cache: Vec<Record> = Vec::new();
    for e in &list {
        let no = mft_no(e.fref);
        let rec = if no == n {
            Some(r.clone())
        } else if let Some(x) = cache.iter().find(|x| x.number == no) {
            Some(x.clone())
        } else {
            match v.read_record(no) {
                Ok(x) => {
                    if mft_no(x.base) != n || !x.in_use() || x.seq != seq_no(e.fref) {
                        p(
                            out,
                            Some(n),
                            format!("attribute list names record {no}, not an extension record of this file"),
                        );
                        None
                    } else {
                        cache.push(x.clone());
                        Some(x)
                    }
                }
                Err(err) => {
                    p(
                        out,
                        Some(n),
                        format!("attribute list names record {no}: {err}"),
                    );
                    None
                }
            }
        };
        let Some(rec) = rec else { continue };
        let found = rec.attrs.iter().any(|a| {
            a.ty == e.ty
                && a.name == e.name
                && a.instance == e.instance
                && a.nonres().map(|x| x.start_vcn).unwrap_or(0) == e.start_vcn
        });
        if !found {
            p(
                out,
                Some(n),
                format!(
                    "attribute list entry {:#x} instance {} not in record {no}",
                    e.ty, e.instance
                ),
            );
        }
    }
}
