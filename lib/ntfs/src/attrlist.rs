//! Files whose attributes do not fit in one file record (*Windows
//! Internals* 7th ed., Part 2 ch. 11, "File records": the base record keeps
//! `$STANDARD_INFORMATION` and an `$ATTRIBUTE_LIST` naming, for every
//! attribute or extent, the record that holds it; the others go to
//! extension records whose header points back at the base record).
//!
//! The write side works on a whole file at a time: [`Volume::read_file_record`]
//! merges the extension records into one logical [`Record`] (the extents of
//! a non-resident attribute joined into one attribute) and `write_record`
//! lays a logical record that does not fit out again: attributes in (type,
//! name, VCN) order fill the base record, then extension records (the
//! file's old ones first, new ones allocated as needed, left-over ones
//! freed); a non-resident attribute whose run list cannot fit in one record
//! is split into extents by VCN; the list is resident in the base record
//! when it fits there, else non-resident. Instance numbers are given anew
//! per record on each layout, and the list names them.

use crate::attr::*;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::record::{attrs_offset, fixup, Attr, Body, NonResident, Record, MFT_RECORD_IN_USE};
use crate::runlist::Run;
use crate::util::*;
use crate::volume::{rec, Volume};
use alloc::vec::Vec;

/// Most extension records one file may have (bad input beyond it).
const MAX_EXTENSIONS: usize = 4096;

/// Encodes an `$ATTRIBUTE_LIST` value (entries sorted by type, name, VCN).
pub fn build_attr_list(entries: &[AttrListEntry]) -> Vec<u8> {
    let mut b = Vec::new();
    for e in entries {
        let len = align8(0x1A + 2 * e.name.len());
        let o = b.len();
        b.resize(o + len, 0);
        put32(&mut b, o, e.ty);
        put16(&mut b, o + 4, len as u16);
        b[o + 6] = e.name.len() as u8;
        b[o + 7] = 0x1A;
        put64(&mut b, o + 8, e.start_vcn);
        put64(&mut b, o + 0x10, e.fref);
        put16(&mut b, o + 0x18, e.instance);
        for (i, u) in e.name.iter().enumerate() {
            put16(&mut b, o + 0x1A + 2 * i, *u);
        }
    }
    b
}

/// Joins the extents of each non-resident attribute into one attribute
/// (runs in VCN order, sizes from the extent at VCN 0).
fn merge_extents(attrs: Vec<Attr>, n: u64) -> Result<Vec<Attr>> {
    let mut out: Vec<Attr> = Vec::new();
    let mut rest = attrs;
    rest.sort_by_key(|a| a.nonres().map(|x| x.start_vcn).unwrap_or(0));
    for a in rest {
        let Some(nr) = a.nonres() else {
            out.push(a);
            continue;
        };
        let prev = out
            .iter_mut()
            .find(|x| x.ty == a.ty && x.name == a.name && x.nonres().is_some());
        match prev {
            None => {
                if nr.start_vcn != 0 {
                    return Err(Error::BadRecord {
                        record: n,
                        reason: "attribute extent without its first extent",
                    });
                }
                out.push(a);
            }
            Some(p) => {
                if let Body::NonResident(pn) = &mut p.body {
                    if nr.start_vcn != pn.last_vcn.wrapping_add(1) {
                        return Err(Error::BadRecord {
                            record: n,
                            reason: "attribute extents not contiguous",
                        });
                    }
                    pn.runs.extend_from_slice(&nr.runs);
                    pn.last_vcn = nr.last_vcn;
                }
            }
        }
    }
    Ok(out)
}

/// Bytes an attribute may take to fit in an otherwise empty record.
fn max_attr_len(rs: usize) -> usize {
    rs - attrs_offset(rs) - 8
}

/// Splits non-resident attributes whose run list does not fit in one record
/// into extents (later extents carry zero sizes, as Windows writes them).
fn split_extents(attrs: Vec<Attr>, rs: usize) -> Result<Vec<Attr>> {
    let max = max_attr_len(rs);
    let mut out = Vec::new();
    for a in attrs {
        if a.encoded_len() <= max || a.nonres().is_none() {
            if a.encoded_len() > max {
                return Err(Error::Unsupported(
                    "a resident attribute larger than a file record",
                ));
            }
            out.push(a);
            continue;
        }
        let Body::NonResident(nr) = &a.body else {
            continue;
        };
        let mut first = true;
        let mut cur: Vec<Run> = Vec::new();
        let flush = |cur: &mut Vec<Run>, first: &mut bool, out: &mut Vec<Attr>| {
            let start = cur.first().map(|r| r.vcn).unwrap_or(0);
            let end = cur
                .last()
                .map(|r| r.vcn.saturating_add(r.len))
                .unwrap_or(start);
            let mut x = nr.clone();
            x.start_vcn = start;
            x.last_vcn = end.wrapping_sub(1);
            x.runs = core::mem::take(cur);
            if !*first {
                x.allocated_size = 0;
                x.data_size = 0;
                x.initialized_size = 0;
                if x.compressed_size.is_some() {
                    x.compressed_size = Some(0);
                }
            }
            *first = false;
            out.push(Attr {
                ty: a.ty,
                name: a.name.clone(),
                flags: a.flags,
                instance: 0,
                body: Body::NonResident(x),
            });
        };
        for r in &nr.runs {
            cur.push(*r);
            let trial = Attr {
                ty: a.ty,
                name: a.name.clone(),
                flags: a.flags,
                instance: 0,
                body: Body::NonResident(NonResident {
                    runs: cur.clone(),
                    ..nr.clone()
                }),
            };
            if trial.encoded_len() > max {
                let last = cur.pop();
                if cur.is_empty() {
                    return Err(Error::Corrupt("one run larger than a file record"));
                }
                flush(&mut cur, &mut first, &mut out);
                cur.extend(last);
            }
        }
        if !cur.is_empty() || first {
            flush(&mut cur, &mut first, &mut out);
        }
    }
    Ok(out)
}

/// The on-disk extension layout of file `n`: its extension records
/// (number, sequence) and the clusters of a non-resident list.
type Layout = (Vec<(u64, u16)>, Vec<Run>);

impl<D: BlockDevice> Volume<D> {
    /// Reads file `n` for modification: the base record with the attributes
    /// of its extension records merged in (see the module documentation).
    /// Without an `$ATTRIBUTE_LIST` this is [`Volume::read_record`].
    pub fn read_file_record(&mut self, n: u64) -> Result<Record> {
        let base = self.read_record(n)?;
        if base.find(AT_ATTRIBUTE_LIST, &[]).is_none() {
            return Ok(base);
        }
        if n == rec::MFT || base.base != 0 {
            return Err(Error::Unsupported(
                "modifying $MFT's attribute list or an extension record",
            ));
        }
        let (exts, _) = self.ext_layout(&base)?;
        let mut attrs: Vec<Attr> = base
            .attrs
            .iter()
            .filter(|a| a.ty != AT_ATTRIBUTE_LIST)
            .cloned()
            .collect();
        for (no, _) in &exts {
            attrs.extend(self.read_record(*no)?.attrs);
        }
        let merged = merge_extents(attrs, n)?;
        let mut r = base;
        r.attrs.clear();
        r.next_instance = 0;
        for a in merged {
            r.add(a);
        }
        r.has_ext = true;
        Ok(r)
    }

    /// The extension records and list clusters `base` (as on disk) uses.
    fn ext_layout(&mut self, base: &Record) -> Result<Layout> {
        let n = base.number;
        let Some(al) = base.find(AT_ATTRIBUTE_LIST, &[]).cloned() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let list = parse_attr_list(&self.attr_value(&al, n)?)?;
        let mut exts: Vec<(u64, u16)> = Vec::new();
        for e in &list {
            let no = mft_no(e.fref);
            if no == n || exts.iter().any(|(x, _)| *x == no) {
                continue;
            }
            if exts.len() >= MAX_EXTENSIONS {
                return Err(Error::BadRecord {
                    record: n,
                    reason: "attribute list too long",
                });
            }
            let r = self.read_record(no)?;
            if mft_no(r.base) != n || !r.in_use() {
                return Err(Error::BadRecord {
                    record: no,
                    reason: "extension record of another file",
                });
            }
            exts.push((no, r.seq));
        }
        let runs = al.nonres().map(|x| x.runs.clone()).unwrap_or_default();
        Ok((exts, runs))
    }

    /// Whether `write_record` must lay `r` out over several records.
    pub(crate) fn needs_layout(&self, r: &Record) -> bool {
        r.number != rec::MFT
            && r.base == 0
            && r.in_use()
            && (r.has_ext || r.encoded_len(self.rs) > self.rs)
            && r.find(AT_ATTRIBUTE_LIST, &[]).is_none()
    }

    /// Gives back what the on-disk layout of `n` holds beyond its base
    /// record: extension records and the list's clusters.
    pub(crate) fn free_layout(&mut self, n: u64) -> Result<()> {
        let disk = self.read_record(n)?;
        let (exts, runs) = self.ext_layout(&disk)?;
        for (no, _) in exts {
            let r = self.read_record(no)?;
            self.free_record(r)?;
        }
        for r in runs {
            if let Some(l) = r.lcn {
                self.free_clusters(l, r.len)?;
            }
        }
        Ok(())
    }

    /// Writes a whole file's attributes over its base record, extension
    /// records and `$ATTRIBUTE_LIST` (see the module documentation).
    pub(crate) fn write_file_layout(&mut self, r: &Record) -> Result<()> {
        let rs = self.rs;
        let n = r.number;
        let disk = match self.read_record(n) {
            Ok(d) if d.in_use() && d.base == 0 => Some(d),
            _ => None,
        };
        let (old_exts, old_runs) = match &disk {
            Some(d) => self.ext_layout(d)?,
            None => (Vec::new(), Vec::new()),
        };
        // Everything fits in the base record again: no list.
        if r.encoded_len(rs) <= rs {
            let mut b = r.clone();
            b.has_ext = false;
            self.write_plain(&b)?;
            self.drop_layout(old_exts, old_runs)?;
            return Ok(());
        }
        let mut attrs = split_extents(r.attrs.clone(), rs)?;
        attrs.sort_by(|a, b| {
            (a.ty, &a.name, a.nonres().map(|x| x.start_vcn).unwrap_or(0)).cmp(&(
                b.ty,
                &b.name,
                b.nonres().map(|x| x.start_vcn).unwrap_or(0),
            ))
        });
        // The list's size is known before placement: one entry per attribute.
        let list_len: usize = attrs.iter().map(|a| align8(0x1A + 2 * a.name.len())).sum();
        let si_len = attrs
            .iter()
            .filter(|a| a.ty == AT_STANDARD_INFORMATION)
            .map(|a| a.encoded_len())
            .sum::<usize>();
        let resident_list = align8(0x18 + list_len);
        let list_resident = attrs_offset(rs) + si_len + resident_list + 8 <= rs;
        let list_enc = if list_resident { resident_list } else { 0x48 };
        // Place: the base record first, then extension records.
        let mut base = r.clone();
        base.attrs.clear();
        base.next_instance = 0;
        base.has_ext = false;
        let mut base_used = attrs_offset(rs) + 8 + list_enc;
        let mut recs: Vec<Record> = Vec::new();
        let mut reuse = old_exts.clone().into_iter();
        let mut placed: Vec<(usize, u16)> = Vec::new(); // (record index: 0 = base, instance)
        let mut list_entries: Vec<AttrListEntry> = Vec::new();
        for a in attrs {
            let len = a.encoded_len();
            let vcn = a.nonres().map(|x| x.start_vcn).unwrap_or(0);
            let (ty, name) = (a.ty, a.name.clone());
            let in_base =
                a.ty == AT_STANDARD_INFORMATION || (recs.is_empty() && base_used + len <= rs);
            let (idx, inst) = if in_base {
                base_used += len;
                let inst = base.next_instance;
                base.add(a);
                (0, inst)
            } else {
                let fits_last = recs.last().is_some_and(|x| x.encoded_len(rs) + len <= rs);
                if !fits_last {
                    let (no, seq) = match reuse.next() {
                        Some((no, seq)) => (no, seq),
                        None => self.alloc_record()?,
                    };
                    let mut e = Record::new(no, seq);
                    e.base = make_ref(n, r.seq);
                    e.flags = MFT_RECORD_IN_USE;
                    recs.push(e);
                }
                let last = recs.last_mut().ok_or(Error::Corrupt("extension record"))?;
                let inst = last.next_instance;
                last.add(a);
                (recs.len(), inst)
            };
            placed.push((idx, inst));
            let (no, seq) = if idx == 0 {
                (n, r.seq)
            } else {
                (recs[idx - 1].number, recs[idx - 1].seq)
            };
            list_entries.push(AttrListEntry {
                ty,
                name,
                start_vcn: vcn,
                fref: make_ref(no, seq),
                instance: inst,
            });
        }
        let list = build_attr_list(&list_entries);
        // The list's own clusters: the old ones go, new ones when non-resident.
        for run in &old_runs {
            if let Some(l) = run.lcn {
                self.free_clusters(l, run.len)?;
            }
        }
        let list_attr = if list_resident {
            Attr::resident(AT_ATTRIBUTE_LIST, &[], list)
        } else {
            let clusters = (list.len() as u64).div_ceil(self.cs);
            let mut runs = Vec::new();
            let mut vcn = 0;
            for (l, len) in self.alloc_clusters(clusters, None)? {
                runs.push(Run {
                    vcn,
                    len,
                    lcn: Some(l),
                });
                vcn += len;
            }
            let mut buf = list.clone();
            buf.resize((clusters * self.cs) as usize, 0);
            self.state.meta_target = Some(crate::log::volume::Target {
                file_reference: make_ref(n, r.seq),
                type_code: AT_ATTRIBUTE_LIST,
                name: Vec::new(),
                bytes_per_index_buffer: 0,
            });
            let w = self.write_runs(&runs, 0, &buf);
            self.state.meta_target = None;
            w?;
            Attr {
                ty: AT_ATTRIBUTE_LIST,
                name: Vec::new(),
                flags: 0,
                instance: 0,
                body: Body::NonResident(NonResident {
                    start_vcn: 0,
                    last_vcn: clusters.wrapping_sub(1),
                    runs,
                    compression_unit: 0,
                    allocated_size: clusters * self.cs,
                    data_size: list.len() as u64,
                    initialized_size: list.len() as u64,
                    compressed_size: None,
                }),
            }
        };
        // The list gets the base record's next instance (not listed itself).
        base.add(list_attr);
        if base.encoded_len(rs) > rs {
            return Err(Error::Unsupported(
                "attribute list does not fit in the base record",
            ));
        }
        for e in &recs {
            self.write_plain(e)?;
        }
        self.write_plain(&base)?;
        // Extension records no longer needed.
        let used = recs.len();
        for (no, _) in old_exts.into_iter().skip(used) {
            let x = self.read_record(no)?;
            self.free_record(x)?;
        }
        Ok(())
    }

    fn drop_layout(&mut self, exts: Vec<(u64, u16)>, runs: Vec<Run>) -> Result<()> {
        for (no, _) in exts {
            let x = self.read_record(no)?;
            self.free_record(x)?;
        }
        for r in runs {
            if let Some(l) = r.lcn {
                self.free_clusters(l, r.len)?;
            }
        }
        Ok(())
    }

    /// Writes one physical record as it is.
    fn write_plain(&mut self, r: &Record) -> Result<()> {
        self.log_update(crate::txn::Update::Record(r.number));
        let mut b = r.build(self.rs)?;
        fixup(&mut b)?;
        self.write_record_raw(r.number, &b)
    }
}
