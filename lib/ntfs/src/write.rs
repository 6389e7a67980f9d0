//! The write side: create, write, truncate, delete, rename, hard links and
//! `$I30` index maintenance (insert with node split and root promotion;
//! delete in place, or by rebuilding the tree when a node would empty).

use crate::attr::*;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::index::{self, IndexEntry, RootHeader};
use crate::names;
use crate::record::{Attr, Body, NonResident, Record, MFT_RECORD_IN_USE, MFT_RECORD_IS_DIRECTORY};
use crate::runlist;
use crate::upcase;
use crate::volume::{rec, split_stream, IndexCtx, Volume, I30};
use alloc::vec::Vec;
use core::cmp::Ordering;

/// Characters Win32 does not allow in names.
const BAD_CHARS: &[u16] = &[
    b'/' as u16,
    b'\\' as u16,
    b':' as u16,
    b'*' as u16,
    b'?' as u16,
    b'"' as u16,
    b'<' as u16,
    b'>' as u16,
    b'|' as u16,
];

/// Largest `$I30` block bitmap kept resident (bytes); larger ones move to clusters.
const MAX_RESIDENT_BITMAP: usize = 8;

/// One level of a descent: (node VCN or None for the root, its entries, position).
type PathStep = (Option<u64>, Vec<IndexEntry>, usize);

/// Validates one name component.
pub fn check_name(n: &[u16]) -> Result<()> {
    if n.is_empty() || n.len() > 255 || n.iter().any(|c| *c < 0x20 || BAD_CHARS.contains(c)) {
        return Err(Error::InvalidName);
    }
    if n == [b'.' as u16] || n == [b'.' as u16, b'.' as u16] {
        return Err(Error::InvalidName);
    }
    Ok(())
}

/// Splits a path into (parent path, last component).
fn split_parent(path: &str) -> Result<(&str, Vec<u16>)> {
    let p = path.trim_end_matches(['/', '\\']);
    let i = p.rfind(['/', '\\']).map(|i| i + 1).unwrap_or(0);
    let name: Vec<u16> = p[i..].encode_utf16().collect();
    check_name(&name)?;
    Ok((&p[..i], name))
}

impl<D: BlockDevice> Volume<D> {
    fn now(&self) -> u64 {
        (self.clock)()
    }

    fn dir_ref(&mut self, dir: u64) -> Result<(Record, u64)> {
        let r = self.read_record(dir)?;
        if !r.in_use() || !r.is_dir() {
            return Err(Error::NotADirectory);
        }
        let fref = make_ref(dir, r.seq);
        Ok((r, fref))
    }

    /// Creates an empty file (`dir == false`) or directory at `path`; the
    /// parent must exist. Returns the new MFT record number.
    pub fn create(&mut self, path: &str, dir: bool) -> Result<u64> {
        let (ppath, name) = split_parent(path)?;
        let parent = self.lookup(ppath).map_err(|e| {
            if e == Error::NotFound {
                Error::PathNotFound
            } else {
                e
            }
        })?;
        self.create_in(parent, &name, dir)
    }

    /// Creates `name` in directory `parent`.
    pub fn create_in(&mut self, parent: u64, name: &[u16], dir: bool) -> Result<u64> {
        self.create_with(parent, name, dir, &[])
    }

    /// [`Volume::create_in`] with initial resident data for a file (`data`
    /// must be small enough to stay resident: at most 512 bytes).
    fn create_with(&mut self, parent: u64, name: &[u16], dir: bool, data: &[u8]) -> Result<u64> {
        self.op(|v| v.create_with_op(parent, name, dir, data))
    }

    fn create_with_op(&mut self, parent: u64, name: &[u16], dir: bool, data: &[u8]) -> Result<u64> {
        if data.len() > 512 || (dir && !data.is_empty()) {
            return Err(Error::InvalidParameter("initial data too large"));
        }
        check_name(name)?;
        let (prec, pref) = self.dir_ref(parent)?;
        if self.lookup_in(parent, name)?.is_some() {
            return Err(Error::NameCollision);
        }
        let sec_id = prec
            .find(AT_STANDARD_INFORMATION, &[])
            .and_then(|a| a.value())
            .and_then(|v| StandardInformation::parse(v).ok())
            .map(|s| s.security_id)
            .unwrap_or(0);
        // A parent with an old-style descriptor (no security id): use the
        // volume's first shared descriptor when there is one.
        let sec_id = if sec_id == 0 && matches!(self.security_by_id(0x100), Ok(Some(_))) {
            0x100
        } else {
            sec_id
        };
        let (n, seq) = self.alloc_record()?;
        let t = self.now();
        let mut r = Record::new(n, seq);
        r.link_count = 1;
        let attrs = if dir {
            FILE_ATTR_DUP_FILE_NAME_INDEX_PRESENT
        } else {
            FILE_ATTRIBUTE_ARCHIVE
        };
        let si = StandardInformation {
            creation: t,
            modification: t,
            mft_change: t,
            access: t,
            file_attributes: if dir { 0 } else { FILE_ATTRIBUTE_ARCHIVE },
            security_id: sec_id,
            ..Default::default()
        };
        r.add(Attr::resident(AT_STANDARD_INFORMATION, &[], si.build()));
        let fname = FileName {
            parent: pref,
            creation: t,
            modification: t,
            mft_change: t,
            access: t,
            allocated_size: (data.len() as u64 + 7) & !7,
            data_size: data.len() as u64,
            flags: attrs,
            reparse: 0,
            namespace: NS_POSIX,
            name: name.to_vec(),
        };
        let fnames = self.new_names(parent, name, &fname)?;
        for f in &fnames {
            r.add(Attr::resident(AT_FILE_NAME, &[], f.build()));
        }
        // The record's link count counts every $FILE_NAME, the DOS name
        // too, as Windows writes it (ntfs-3g frees the record when the
        // count reaches 0 while removing the names one by one).
        r.link_count = fnames.len() as u16;
        if dir {
            r.flags = MFT_RECORD_IN_USE | MFT_RECORD_IS_DIRECTORY;
            let h = self.i30_header();
            r.add(Attr::resident(
                AT_INDEX_ROOT,
                &I30,
                index::build_root(&h, &[IndexEntry::end(None)]),
            ));
        } else {
            r.add(Attr::resident(AT_DATA, &[], data.to_vec()));
        }
        self.write_record(&r)?;
        if let Err(err) = self.insert_names(parent, make_ref(n, seq), &fnames) {
            // Not reachable by name: give the record back.
            r.flags = 0;
            let _ = self.write_record(&r);
            return Err(err);
        }
        self.flush()?;
        Ok(n)
    }

    /// The `$FILE_NAME`s a new name `name` in directory `parent` gets, as
    /// Windows writes them (see [`crate::names`]): one Win32&DOS name when
    /// `name` upper-cased is a valid 8.3 name; with 8.3 creation enabled a
    /// Win32 name plus a generated DOS name unique in `parent`; otherwise
    /// one POSIX name. `tmpl` gives every field but name and namespace.
    pub(crate) fn new_names(
        &mut self,
        parent: u64,
        name: &[u16],
        tmpl: &FileName,
    ) -> Result<Vec<FileName>> {
        let mut f = tmpl.clone();
        f.name = name.to_vec();
        if names::fits_8dot3(&self.upcase, name) {
            f.namespace = NS_WIN32_AND_DOS;
            return Ok(alloc::vec![f]);
        }
        if !self.short_names {
            f.namespace = NS_POSIX;
            return Ok(alloc::vec![f]);
        }
        f.namespace = NS_WIN32;
        let mut k = 1;
        loop {
            let c =
                names::short_name_candidate(&self.upcase, name, k).ok_or(Error::NameCollision)?;
            if self.lookup_in(parent, &c)?.is_none() {
                let mut d = f.clone();
                d.name = c;
                d.namespace = NS_DOS;
                return Ok(alloc::vec![f, d]);
            }
            k += 1;
        }
    }

    /// Indexes `names` of file `fref` in `parent`; on failure the ones
    /// already inserted are taken out again.
    fn insert_names(&mut self, parent: u64, fref: u64, names: &[FileName]) -> Result<()> {
        for (i, f) in names.iter().enumerate() {
            let e = IndexEntry {
                fref,
                key: f.build(),
                data: Vec::new(),
                child: None,
                last: false,
            };
            if let Err(err) = self.i30_insert(parent, e) {
                for g in &names[..i] {
                    let _ = self.i30_remove(parent, &g.name, mft_no(fref));
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Whether 8.3 short names are generated for new long names on this
    /// volume (`$VOLUME_INFORMATION` flag 0x80 clear).
    pub fn short_name_creation(&self) -> bool {
        self.short_names
    }

    /// Enables or disables 8.3 short name creation on this volume and
    /// records it in `$Volume` (`$VOLUME_INFORMATION` flag 0x80, the
    /// per-volume state `fsutil 8dot3name set` changes). Existing names stay.
    pub fn set_short_name_creation(&mut self, enabled: bool) -> Result<()> {
        self.op(|v| {
            let mut r = v.read_record(rec::VOLUME)?;
            let a = r
                .find_mut(AT_VOLUME_INFORMATION, &[])
                .ok_or(Error::BadRecord {
                    record: rec::VOLUME,
                    reason: "no $VOLUME_INFORMATION",
                })?;
            let Body::Resident { value, .. } = &mut a.body else {
                return Err(Error::BadRecord {
                    record: rec::VOLUME,
                    reason: "non-resident $VOLUME_INFORMATION",
                });
            };
            if value.len() < 12 {
                return Err(Error::BadRecord {
                    record: rec::VOLUME,
                    reason: "short $VOLUME_INFORMATION",
                });
            }
            let mut flags = u16::from_le_bytes([value[10], value[11]]);
            if enabled {
                flags &= !VOLUME_DISABLE_SHORT_NAMES;
            } else {
                flags |= VOLUME_DISABLE_SHORT_NAMES;
            }
            value[10..12].copy_from_slice(&flags.to_le_bytes());
            v.write_record(&r)?;
            v.short_names = enabled;
            v.flush()
        })
    }

    pub(crate) fn i30_header(&self) -> RootHeader {
        let bs = self.boot.index_record_size;
        RootHeader {
            ty: AT_FILE_NAME,
            collation: index::COLLATION_FILE_NAME,
            block_size: bs,
            clusters_per_block: crate::boot::encode_size(bs, self.boot.cluster_size).max(1),
        }
        .fix_cpb(self.boot.cluster_size)
    }

    /// Creates every missing directory of `path`; returns the last one.
    pub fn create_dir_all(&mut self, path: &str) -> Result<u64> {
        let mut cur = rec::ROOT;
        for c in path.split(['/', '\\']).filter(|c| !c.is_empty()) {
            let name: Vec<u16> = c.encode_utf16().collect();
            cur = match self.lookup_in(cur, &name)? {
                Some(e) => {
                    if !e.is_dir() {
                        return Err(Error::NotADirectory);
                    }
                    e.mft_no()
                }
                None => self.create_in(cur, &name, true)?,
            };
        }
        Ok(cur)
    }

    /// Creates or replaces the file at `path` (or `path:stream`) with `data`.
    /// The parent directory must exist. Returns the record number.
    /// Each step (create, truncate, write) is its own operation: when the
    /// write fails (e.g. `DiskFull`) a new file is removed again and an
    /// existing one is left empty.
    pub fn write_file(&mut self, path: &str, data: &[u8]) -> Result<u64> {
        self.write_file_op(path, data)
    }

    fn write_file_op(&mut self, path: &str, data: &[u8]) -> Result<u64> {
        let (p, stream) = split_stream(path);
        let sname: Vec<u16> = stream.encode_utf16().collect();
        let n = match self.lookup(p) {
            Ok(n) => n,
            Err(Error::NotFound) if sname.is_empty() && data.len() <= 512 => {
                // New small file: one record write and one index insert.
                let (ppath, name) = split_parent(p)?;
                let parent = self.lookup(ppath).map_err(|e| {
                    if e == Error::NotFound {
                        Error::PathNotFound
                    } else {
                        e
                    }
                })?;
                return self.create_with(parent, &name, false, data);
            }
            Err(Error::NotFound) => {
                let n = self.create(p, false)?;
                if let Err(e) = self.write_at(n, &sname, 0, data) {
                    // Do not leave a half-made file behind.
                    let _ = self.remove(p);
                    return Err(e);
                }
                return Ok(n);
            }
            Err(e) => return Err(e),
        };
        self.set_len(n, &sname, 0)?;
        self.write_at(n, &sname, 0, data)?;
        Ok(n)
    }

    /// Writes `data` at `offset` of stream `stream` ("" = unnamed) of file
    /// `n`, creating a named stream if missing and extending as needed.
    /// Writing into holes of sparse files and into compressed files returns
    /// `Unsupported`.
    pub fn write_at(&mut self, n: u64, stream: &[u16], offset: u64, data: &[u8]) -> Result<()> {
        self.op(|v| v.write_at_op(n, stream, offset, data))
    }

    fn write_at_op(&mut self, n: u64, stream: &[u16], offset: u64, data: &[u8]) -> Result<()> {
        let mut r = self.read_file_record(n)?;
        if stream.is_empty() && r.is_dir() {
            return Err(Error::IsADirectory);
        }
        if !stream.is_empty() {
            check_name(stream)?;
        }
        if r.find(AT_DATA, stream).is_none() {
            r.add(Attr::resident(AT_DATA, stream, Vec::new()));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(Error::InvalidParameter("offset"))?;
        let a = r.find(AT_DATA, stream).ok_or(Error::NotFound)?.clone();
        let size = a.data_size();
        let new_size = size.max(end);
        let mut resident_done = false;
        let small = new_size <= self.rs as u64;
        if let (true, Body::Resident { value, .. }) = (small, &a.body) {
            let mut v = value.clone();
            v.resize(new_size as usize, 0);
            v[offset as usize..end as usize].copy_from_slice(data);
            let mut trial = r.clone();
            if let Some(x) = trial.find_mut(AT_DATA, stream) {
                x.body = Body::Resident {
                    value: v,
                    indexed: false,
                };
            }
            if trial.encoded_len(self.rs) + 128 <= self.rs {
                r = trial;
                resident_done = true;
            }
        }
        if !resident_done {
            if new_size > size || a.value().is_some() {
                self.resize_attr(&mut r, AT_DATA, stream, new_size, true)?;
            }
            let runs = r
                .find(AT_DATA, stream)
                .and_then(|a| a.nonres())
                .map(|n| n.runs.clone())
                .unwrap_or_default();
            self.state.data_write = true;
            self.write_runs(&runs, offset, data)?;
        }
        self.touch(&mut r)?;
        self.fit(&mut r)?;
        self.update_dir_entry_sizes(&mut r)?;
        self.write_record(&r)?;
        self.flush()
    }

    /// Writes `data` at `offset` of a stream in place: only the data
    /// clusters are written, the file record (times, sizes) is left as
    /// it is. This is what paging I/O needs (the cache manager writing
    /// pages back: NT's NTFS does not touch the record for it either).
    /// A write that is not wholly inside the stream's initialized data
    /// of a plain non-resident stream (resident, compressed, sparse hole,
    /// past the initialized size) goes through [`Volume::write_at`].
    pub fn write_in_place(
        &mut self,
        n: u64,
        stream: &[u16],
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        let s = self.open_stream(n, AT_DATA, stream)?;
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(Error::InvalidParameter("offset"))?;
        let plain = s.resident.is_none()
            && s.compression_unit == 0
            && end <= s.initialized_size
            && end <= s.data_size;
        if !plain {
            return self.write_at(n, stream, offset, data);
        }
        // A hole (sparse run) in the range: let write_at refuse it.
        let mut vcn = offset / self.cs;
        let last = (end - 1) / self.cs;
        while vcn <= last {
            match runlist::lookup(&s.runs, vcn) {
                Some((Some(_), left)) => vcn += left.max(1),
                _ => return self.write_at(n, stream, offset, data),
            }
        }
        self.op(|v| {
            v.state.data_write = true;
            v.write_runs(&s.runs, offset, data)
        })
    }

    /// Sets the length of a stream (truncate or zero-extend).
    pub fn set_len(&mut self, n: u64, stream: &[u16], len: u64) -> Result<()> {
        self.op(|v| v.set_len_op(n, stream, len))
    }

    fn set_len_op(&mut self, n: u64, stream: &[u16], len: u64) -> Result<()> {
        let mut r = self.read_file_record(n)?;
        if stream.is_empty() && r.is_dir() {
            return Err(Error::IsADirectory);
        }
        if r.find(AT_DATA, stream).is_none() {
            if !stream.is_empty() {
                check_name(stream)?;
            }
            r.add(Attr::resident(AT_DATA, stream, Vec::new()));
        }
        let a = r.find(AT_DATA, stream).ok_or(Error::NotFound)?.clone();
        match &a.body {
            Body::Resident { .. } => {
                let mut trial = r.clone();
                if len <= self.rs as u64 {
                    self.resize_attr(&mut trial, AT_DATA, stream, len, false)?;
                }
                let shrink = len <= a.data_size();
                if len <= self.rs as u64 && (shrink || trial.encoded_len(self.rs) + 128 <= self.rs)
                {
                    r = trial;
                } else {
                    self.resize_attr(&mut r, AT_DATA, stream, len, true)?;
                }
            }
            Body::NonResident(_) => {
                if len == 0 {
                    // Back to an empty resident value.
                    self.resize_attr(&mut r, AT_DATA, stream, 0, true)?;
                    if let Some(x) = r.find_mut(AT_DATA, stream) {
                        x.body = Body::Resident {
                            value: Vec::new(),
                            indexed: false,
                        };
                        x.flags &= !ATTR_SPARSE;
                    }
                } else {
                    self.resize_attr(&mut r, AT_DATA, stream, len, true)?;
                }
            }
        }
        self.touch(&mut r)?;
        self.fit(&mut r)?;
        self.update_dir_entry_sizes(&mut r)?;
        self.write_record(&r)?;
        self.flush()
    }

    /// Makes a record fit: moves its largest resident `$DATA` values to
    /// clusters until the attributes fit or none is left (what still does
    /// not fit goes to extension records when the record is written).
    pub(crate) fn fit(&mut self, r: &mut Record) -> Result<()> {
        while r.encoded_len(self.rs) > self.rs {
            let victim = r
                .attrs
                .iter()
                .filter(|a| a.ty == AT_DATA)
                .filter_map(|a| a.value().map(|v| (v.len(), a.name.clone())))
                .filter(|(len, _)| *len > 0)
                .max_by_key(|(len, _)| *len);
            let Some((len, name)) = victim else {
                // Still too large: `write_record` moves attributes to
                // extension records behind an $ATTRIBUTE_LIST.
                return Ok(());
            };
            self.resize_attr(r, AT_DATA, &name, len as u64, true)?;
        }
        Ok(())
    }

    fn touch(&mut self, r: &mut Record) -> Result<()> {
        let t = self.now();
        if let Some(a) = r.find_mut(AT_STANDARD_INFORMATION, &[]) {
            if let Body::Resident { value, .. } = &mut a.body {
                let mut si = StandardInformation::parse(value)?;
                si.modification = t;
                si.mft_change = t;
                let old_len = value.len();
                let mut nv = si.build();
                nv.truncate(old_len.max(48));
                *value = nv;
            }
        }
        Ok(())
    }

    /// Sets the four timestamps of file `n` (100 ns units since 1601).
    pub fn set_times(
        &mut self,
        n: u64,
        creation: u64,
        modification: u64,
        access: u64,
    ) -> Result<()> {
        let mut r = self.read_file_record(n)?;
        let a = r
            .find_mut(AT_STANDARD_INFORMATION, &[])
            .ok_or(Error::BadRecord {
                record: n,
                reason: "no $STANDARD_INFORMATION",
            })?;
        if let Body::Resident { value, .. } = &mut a.body {
            let mut si = StandardInformation::parse(value)?;
            si.creation = creation;
            si.modification = modification;
            si.mft_change = modification;
            si.access = access;
            let old_len = value.len();
            let mut nv = si.build();
            nv.truncate(old_len.max(48));
            *value = nv;
        }
        self.times = Some((creation, modification, access));
        let r2 = self.sync_names(&mut r, None);
        self.times = None;
        r2?;
        self.write_record(&r)?;
        self.flush()
    }

    /// Refreshes the size fields of the `$FILE_NAME` copies (in the record
    /// and in the parents' indexes) after a change of the unnamed stream.
    fn update_dir_entry_sizes(&mut self, r: &mut Record) -> Result<()> {
        self.sync_names(r, None)
    }

    /// Brings the `$FILE_NAME` copies (in the record and in the parents'
    /// indexes) up to date with the unnamed stream's sizes and, when given,
    /// new file attributes. Call before writing the record.
    fn sync_names(&mut self, r: &mut Record, attrs: Option<u32>) -> Result<()> {
        let (size, alloc) = match r.find(AT_DATA, &[]) {
            Some(a) => match &a.body {
                Body::Resident { value, .. } => {
                    (value.len() as u64, ((value.len() as u64) + 7) & !7)
                }
                Body::NonResident(n) => (n.data_size, n.allocated_size),
            },
            None => (0, 0),
        };
        let dir_bit = if r.is_dir() {
            FILE_ATTR_DUP_FILE_NAME_INDEX_PRESENT
        } else {
            0
        };
        let fref = make_ref(r.number, r.seq);
        for a in r.attrs.iter_mut().filter(|a| a.ty == AT_FILE_NAME) {
            let Body::Resident { value, .. } = &mut a.body else {
                continue;
            };
            let Ok(f) = FileName::parse(value) else {
                continue;
            };
            let mut nf = f.clone();
            if dir_bit == 0 {
                nf.data_size = size;
                nf.allocated_size = alloc;
            }
            if let Some((c, m, a)) = self.times {
                nf.creation = c;
                nf.modification = m;
                nf.mft_change = m;
                nf.access = a;
            }
            if let Some(x) = attrs {
                nf.flags =
                    (x & 0x0FFF_FFFF) | dir_bit | (f.flags & FILE_ATTR_DUP_VIEW_INDEX_PRESENT);
            }
            if nf == f {
                continue;
            }
            let key = nf.build();
            *value = key.clone();
            let parent = mft_no(f.parent);
            self.i30_replace_key(parent, &f.name, fref, key)?;
        }
        Ok(())
    }

    /// Sets the `FILE_ATTRIBUTE_*` bits of file `n` (read-only, hidden,
    /// system, archive, ...), in `$STANDARD_INFORMATION` and in every
    /// `$FILE_NAME` copy.
    pub fn set_attributes(&mut self, n: u64, attributes: u32) -> Result<()> {
        self.op(|v| {
            let mut r = v.read_file_record(n)?;
            let keep = FILE_ATTRIBUTE_SPARSE_FILE
                | FILE_ATTRIBUTE_REPARSE_POINT
                | FILE_ATTRIBUTE_COMPRESSED;
            let settable = FILE_ATTRIBUTE_READONLY
                | FILE_ATTRIBUTE_HIDDEN
                | FILE_ATTRIBUTE_SYSTEM
                | FILE_ATTRIBUTE_ARCHIVE
                | FILE_ATTRIBUTE_NORMAL;
            if attributes & !settable != 0 {
                return Err(Error::InvalidParameter(
                    "only read-only, hidden, system, archive and normal can be set",
                ));
            }
            let mut new_attrs = attributes & !FILE_ATTRIBUTE_NORMAL;
            if let Some(Body::Resident { value, .. }) = r
                .find_mut(AT_STANDARD_INFORMATION, &[])
                .map(|a| &mut a.body)
            {
                let mut si = StandardInformation::parse(value)?;
                new_attrs |= si.file_attributes & keep;
                si.file_attributes = new_attrs;
                let old = value.len();
                let mut nv = si.build();
                nv.truncate(old.max(48));
                *value = nv;
            }
            v.sync_names(&mut r, Some(new_attrs))?;
            v.write_record(&r)?;
            v.flush()
        })
    }

    /// Removes one name of a file (`rm`/`rmdir`): the file goes when its
    /// last link does. Directories must be empty.
    pub fn remove(&mut self, path: &str) -> Result<()> {
        self.op(|v| v.remove_op(path))
    }

    fn remove_op(&mut self, path: &str) -> Result<()> {
        let (ppath, name) = split_parent(path)?;
        let parent = self.lookup(ppath).map_err(|e| {
            if e == Error::NotFound {
                Error::PathNotFound
            } else {
                e
            }
        })?;
        let e = self.lookup_in(parent, &name)?.ok_or(Error::NotFound)?;
        let n = e.mft_no();
        if n < rec::FIRST_USER && n != 0 && n < 24 {
            return Err(Error::InvalidParameter("cannot remove a system file"));
        }
        let mut r = self.read_file_record(n)?;
        if r.is_dir() {
            let ctx = self.index_ctx(n, &I30)?;
            if ctx.root.len() > 1 || ctx.root.iter().any(|e| e.child.is_some()) {
                return Err(Error::DirectoryNotEmpty);
            }
        }
        // Drop this name (and its Win32/DOS twin) from the record and the index.
        let all_attrs = r.attrs.clone();
        let mut dropped = 0u16;
        for (inst, f) in Self::link_names(&r, parent, &e.file_name.name) {
            self.i30_remove(parent, &f.name, n)?;
            r.attrs.retain(|a| a.instance != inst);
            dropped += 1;
        }
        r.link_count = r.link_count.saturating_sub(dropped.max(1));
        let names_left = r.attrs.iter().any(|a| a.ty == AT_FILE_NAME);
        if !names_left {
            r.link_count = 0;
        }
        if r.link_count == 0 || !names_left {
            for a in &r.attrs {
                if let Some(nr) = a.nonres() {
                    for run in &nr.runs {
                        if let Some(l) = run.lcn {
                            self.free_clusters(l, run.len)?;
                        }
                    }
                }
            }
            // As Windows and ntfs-3g leave it: the freed record keeps its attributes (names,
            // times, runs) until reused, which is what undelete tools read.
            r.attrs = all_attrs;
            self.free_record(r)?;
        } else {
            self.write_record(&r)?;
        }
        self.flush()
    }

    /// The `$FILE_NAME`s (instance, value) that make up the link named
    /// `name` (exactly as indexed) in `parent`: that name, plus its DOS
    /// twin when it is the Win32 name or its Win32 twin when it is the DOS
    /// name (Windows keeps the pair together).
    fn link_names(r: &Record, parent: u64, name: &[u16]) -> Vec<(u16, FileName)> {
        let all: Vec<(u16, FileName)> = r
            .attrs
            .iter()
            .filter(|a| a.ty == AT_FILE_NAME)
            .filter_map(|a| {
                a.value()
                    .and_then(|v| FileName::parse(v).ok())
                    .map(|f| (a.instance, f))
            })
            .filter(|(_, f)| mft_no(f.parent) == parent)
            .collect();
        let Some(ns) = all
            .iter()
            .find(|(_, f)| f.name == name)
            .map(|(_, f)| f.namespace)
        else {
            return Vec::new();
        };
        all.into_iter()
            .filter(|(_, f)| {
                f.name == name
                    || (matches!(ns, NS_WIN32 | NS_DOS) && matches!(f.namespace, NS_WIN32 | NS_DOS))
            })
            .collect()
    }

    /// Renames or moves `from` to `to` (which must not exist).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.op(|v| v.rename_op(from, to))
    }

    fn rename_op(&mut self, from: &str, to: &str) -> Result<()> {
        let (fp, fname) = split_parent(from)?;
        let (tp, tname) = split_parent(to)?;
        let fparent = self.lookup(fp).map_err(|e| {
            if e == Error::NotFound {
                Error::PathNotFound
            } else {
                e
            }
        })?;
        let tparent = self.lookup(tp).map_err(|e| {
            if e == Error::NotFound {
                Error::PathNotFound
            } else {
                e
            }
        })?;
        let e = self.lookup_in(fparent, &fname)?.ok_or(Error::NotFound)?;
        let n = e.mft_no();
        if let Some(x) = self.lookup_in(tparent, &tname)? {
            if x.mft_no() != n || fparent != tparent {
                return Err(Error::NameCollision);
            }
        }
        // A directory may not move below itself.
        let mut cur = tparent;
        for _ in 0..1024 {
            if cur == n {
                return Err(Error::InvalidParameter("move into own subtree"));
            }
            if cur == rec::ROOT {
                break;
            }
            let r = self.read_record(cur)?;
            let p = r
                .attrs
                .iter()
                .find(|a| a.ty == AT_FILE_NAME)
                .and_then(|a| a.value())
                .and_then(|v| FileName::parse(v).ok())
                .map(|f| mft_no(f.parent))
                .unwrap_or(rec::ROOT);
            cur = p;
        }
        let mut r = self.read_file_record(n)?;
        let (_, tref) = self.dir_ref(tparent)?;
        if fparent == tparent && e.file_name.name == tname {
            return Ok(());
        }
        // Every name of this link in the old parent (long + DOS) goes.
        let old = Self::link_names(&r, fparent, &e.file_name.name);
        let template = old
            .iter()
            .find(|(_, f)| f.namespace != NS_DOS)
            .or(old.first())
            .map(|(_, f)| f.clone())
            .ok_or(Error::BadRecord {
                record: n,
                reason: "name not in record",
            })?;
        for (inst, _) in &old {
            r.attrs.retain(|a| a.instance != *inst);
        }
        // Out of the old directory first, so a case change or taking the
        // file's own short name does not collide with itself.
        let fref = make_ref(n, r.seq);
        let old_names: Vec<FileName> = old.into_iter().map(|(_, f)| f).collect();
        for f in &old_names {
            self.i30_remove(fparent, &f.name, n)?;
        }
        let mut nf = template;
        nf.parent = tref;
        nf.mft_change = self.now();
        // A hard link's POSIX name stays POSIX when the file keeps its
        // Win32/DOS names elsewhere (a file has at most one DOS name).
        let keeps_win32 = r
            .attrs
            .iter()
            .filter(|a| a.ty == AT_FILE_NAME)
            .filter_map(|a| a.value().and_then(|v| FileName::parse(v).ok()))
            .any(|f| f.namespace != NS_POSIX);
        let new_names = if keeps_win32 {
            nf.name = tname.clone();
            nf.namespace = NS_POSIX;
            Ok(alloc::vec![nf])
        } else {
            self.new_names(tparent, &tname, &nf)
        };
        let result = new_names.and_then(|names| {
            let mut trial = r.clone();
            for f in &names {
                trial.add(Attr::resident(AT_FILE_NAME, &[], f.build()));
            }
            trial.link_count = trial
                .link_count
                .saturating_sub(old_names.len() as u16)
                .saturating_add(names.len() as u16)
                .max(1);
            self.fit(&mut trial)?;
            self.insert_names(tparent, fref, &names)?;
            Ok(trial)
        });
        match result {
            Ok(t) => r = t,
            Err(err) => {
                // Put the old names back: nothing has changed on disk.
                let _ = self.insert_names(fparent, fref, &old_names);
                return Err(err);
            }
        }
        self.write_record(&r)?;
        self.flush()
    }

    /// Adds a hard link `new` to the file at `existing` (files only).
    pub fn link(&mut self, existing: &str, new: &str) -> Result<()> {
        self.op(|v| v.link_op(existing, new))
    }

    fn link_op(&mut self, existing: &str, new: &str) -> Result<()> {
        let n = self.lookup(existing)?;
        let (tp, tname) = split_parent(new)?;
        let tparent = self.lookup(tp).map_err(|e| {
            if e == Error::NotFound {
                Error::PathNotFound
            } else {
                e
            }
        })?;
        if self.lookup_in(tparent, &tname)?.is_some() {
            return Err(Error::NameCollision);
        }
        let mut r = self.read_file_record(n)?;
        if r.is_dir() {
            return Err(Error::IsADirectory);
        }
        let (_, tref) = self.dir_ref(tparent)?;
        let mut nf = r
            .attrs
            .iter()
            .find(|a| a.ty == AT_FILE_NAME)
            .and_then(|a| a.value())
            .map(FileName::parse)
            .ok_or(Error::BadRecord {
                record: n,
                reason: "no $FILE_NAME",
            })??;
        nf.parent = tref;
        nf.name = tname;
        nf.namespace = NS_POSIX;
        r.add(Attr::resident(AT_FILE_NAME, &[], nf.build()));
        r.link_count = r.link_count.saturating_add(1);
        self.fit(&mut r)?;
        let ie = IndexEntry {
            fref: make_ref(n, r.seq),
            key: nf.build(),
            data: Vec::new(),
            child: None,
            last: false,
        };
        self.i30_insert(tparent, ie)?;
        self.write_record(&r)?;
        self.flush()
    }

    // ----- $I30 maintenance -----

    /// Orders two index keys by the index's collation rule.
    fn key_cmp(&self, collation: u32, a: &IndexEntry, b: &IndexEntry) -> Ordering {
        let ulongs = |k: &[u8]| -> Vec<u32> {
            k.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        match collation {
            index::COLLATION_FILE_NAME => {
                let fa = FileName::parse(&a.key).map(|f| f.name).unwrap_or_default();
                let fb = FileName::parse(&b.key).map(|f| f.name).unwrap_or_default();
                upcase::collate_names(&self.upcase, &fa, &fb)
            }
            index::COLLATION_NTOFS_ULONG
            | index::COLLATION_NTOFS_ULONGS
            | index::COLLATION_NTOFS_SECURITY_HASH => ulongs(&a.key).cmp(&ulongs(&b.key)),
            _ => a.key.cmp(&b.key),
        }
    }

    /// Whether the root with `entries` fits in the directory's record.
    fn root_fits(&self, ctx: &IndexCtx, entries: &[IndexEntry]) -> bool {
        let nm = ctx.name.clone();
        if ctx.record.has_ext {
            // A file laid out over extension records: the root only has to
            // fit in a record of its own.
            let root = Attr::resident(AT_INDEX_ROOT, &nm, index::build_root(&ctx.hdr, entries));
            let rs = self.rs;
            return root.encoded_len() + crate::record::attrs_offset(rs) + 8 <= rs;
        }
        let mut r = ctx.record.clone();
        if let Some(a) = r.find_mut(AT_INDEX_ROOT, &nm) {
            a.body = Body::Resident {
                value: index::build_root(&ctx.hdr, entries),
                indexed: false,
            };
        }
        if let (Some(bm), Some(a)) = (&ctx.bitmap, r.find_mut(AT_BITMAP, &nm)) {
            if a.value().is_some() && bm.len() <= MAX_RESIDENT_BITMAP {
                a.body = Body::Resident {
                    value: bm.clone(),
                    indexed: false,
                };
            }
        }
        r.encoded_len(self.rs) <= self.rs
    }

    /// Writes the directory record with the current root and bitmap.
    fn commit_root(&mut self, ctx: &mut IndexCtx) -> Result<()> {
        let nm = ctx.name.clone();
        let v = index::build_root(&ctx.hdr, &ctx.root);
        if let Some(a) = ctx.record.find_mut(AT_INDEX_ROOT, &nm) {
            a.body = Body::Resident {
                value: v,
                indexed: false,
            };
        }
        if let Some(bm) = ctx.bitmap.clone() {
            if ctx.record.find(AT_BITMAP, &nm).is_none() {
                ctx.record.add(Attr::resident(AT_BITMAP, &nm, Vec::new()));
            }
            let resident = ctx
                .record
                .find(AT_BITMAP, &nm)
                .is_some_and(|a| a.value().is_some());
            if resident && bm.len() <= MAX_RESIDENT_BITMAP {
                if let Some(a) = ctx.record.find_mut(AT_BITMAP, &nm) {
                    a.body = Body::Resident {
                        value: bm,
                        indexed: false,
                    };
                }
            } else {
                // Large directories keep the block bitmap in clusters.
                let mut r = ctx.record.clone();
                let size = r.find(AT_BITMAP, &nm).map(|a| a.data_size()).unwrap_or(0);
                if resident || size != bm.len() as u64 {
                    self.resize_attr(&mut r, AT_BITMAP, &nm, bm.len() as u64, true)?;
                }
                let runs = r
                    .find(AT_BITMAP, &nm)
                    .and_then(|a| a.nonres())
                    .map(|n| n.runs.clone())
                    .unwrap_or_default();
                self.state.meta_target = Some(crate::log::volume::Target {
                    file_reference: make_ref(ctx.mft, ctx.record.seq),
                    type_code: AT_BITMAP,
                    name: nm.clone(),
                    bytes_per_index_buffer: 0,
                });
                let w = self.write_runs(&runs, 0, &bm);
                self.state.meta_target = None;
                w?;
                ctx.record = r;
            }
        }
        let r = ctx.record.clone();
        self.write_record(&r)
    }

    /// Allocates an index block (extending `$INDEX_ALLOCATION`).
    fn alloc_block(&mut self, ctx: &mut IndexCtx) -> Result<u64> {
        let nm = ctx.name.clone();
        let bs = ctx.hdr.block_size as u64;
        let blocks = ctx.alloc.as_ref().map(|s| s.data_size / bs).unwrap_or(0);
        let bm = ctx.bitmap.get_or_insert_with(|| alloc::vec![0u8; 8]);
        let mut idx = None;
        for i in 0..blocks {
            if bm
                .get((i / 8) as usize)
                .is_some_and(|b| b & (1 << (i % 8)) == 0)
            {
                idx = Some(i);
                break;
            }
        }
        let i = match idx {
            Some(i) => i,
            None => {
                if ctx.record.find(AT_INDEX_ALLOCATION, &nm).is_none() {
                    let empty = Attr {
                        ty: AT_INDEX_ALLOCATION,
                        name: ctx.name.clone(),
                        flags: 0,
                        instance: 0,
                        body: Body::NonResident(NonResident {
                            start_vcn: 0,
                            last_vcn: u64::MAX,
                            runs: Vec::new(),
                            compression_unit: 0,
                            allocated_size: 0,
                            data_size: 0,
                            initialized_size: 0,
                            compressed_size: None,
                        }),
                    };
                    ctx.record.add(empty);
                }
                let mut rec = ctx.record.clone();
                // Preallocate a quarter more so a growing directory's
                // allocation stays in few runs.
                let new_size = (blocks + 1) * bs;
                let have = rec
                    .find(AT_INDEX_ALLOCATION, &nm)
                    .and_then(|a| a.nonres())
                    .map(|n| n.allocated_size)
                    .unwrap_or(0);
                if new_size > have {
                    let reserve = new_size + (blocks / 4) * bs;
                    self.resize_attr(&mut rec, AT_INDEX_ALLOCATION, &nm, reserve, true)?;
                }
                self.resize_attr_ex(&mut rec, AT_INDEX_ALLOCATION, &nm, new_size, true, false)?;
                ctx.record = rec;
                ctx.alloc = Some(Self::stream_from(
                    &ctx.record.attrs,
                    AT_INDEX_ALLOCATION,
                    &nm,
                    ctx.mft,
                    self.cs,
                )?);
                let bm = ctx.bitmap.get_or_insert_with(|| alloc::vec![0u8; 8]);
                let need = (blocks + 1).div_ceil(64) as usize * 8;
                if bm.len() < need {
                    bm.resize(need, 0);
                }
                blocks
            }
        };
        let bm = ctx.bitmap.get_or_insert_with(|| alloc::vec![0u8; 8]);
        let byte = bm
            .get_mut((i / 8) as usize)
            .ok_or(Error::Corrupt("index bitmap"))?;
        *byte |= 1 << (i % 8);
        Ok(i * bs / ctx.vcn_unit)
    }

    fn load_dir_ctx(&mut self, dir: u64) -> Result<IndexCtx> {
        let ctx = self.index_ctx(dir, &I30)?;
        if ctx.hdr.ty != AT_FILE_NAME {
            return Err(Error::NotADirectory);
        }
        Ok(ctx)
    }

    /// Inserts an entry into directory `dir`'s `$I30`.
    pub(crate) fn i30_insert(&mut self, dir: u64, e: IndexEntry) -> Result<()> {
        let ctx = self.load_dir_ctx(dir)?;
        self.index_insert(ctx, e)
    }

    /// Inserts an entry into a loaded index (any collation).
    pub(crate) fn index_insert(&mut self, mut ctx: IndexCtx, e: IndexEntry) -> Result<()> {
        let coll = ctx.hdr.collation;
        let cap = index::block_capacity(ctx.hdr.block_size as usize);
        // Descend, remembering (vcn, entries, position) per level.
        let mut path: Vec<PathStep> = Vec::new();
        let mut node = ctx.root.clone();
        let mut vcn = None;
        for _ in 0..64 {
            let mut pos = node.len() - 1;
            for (i, x) in node.iter().enumerate() {
                if x.last {
                    pos = i;
                    break;
                }
                match self.key_cmp(coll, &e, x) {
                    Ordering::Equal => return Err(Error::NameCollision),
                    Ordering::Less => {
                        pos = i;
                        break;
                    }
                    Ordering::Greater => {}
                }
            }
            let child = node[pos].child;
            path.push((vcn, node, pos));
            match child {
                Some(c) => {
                    node = self.read_block(&ctx, c)?;
                    vcn = Some(c);
                }
                None => break,
            }
        }
        let (mut vcn, mut entries, pos) = path.pop().ok_or(Error::Corrupt("index path"))?;
        entries.insert(pos, e);
        loop {
            match vcn {
                None => {
                    if self.root_fits(&ctx, &entries) {
                        ctx.root = entries;
                        return self.commit_root(&mut ctx);
                    }
                    // Promote: everything moves into a new block below an empty root.
                    let nv = self.alloc_block(&mut ctx)?;
                    ctx.root = alloc::vec![IndexEntry::end(Some(nv))];
                    path.push((None, ctx.root.clone(), 0));
                    vcn = Some(nv);
                    continue;
                }
                Some(v) => {
                    if index::entries_len(&entries) <= cap {
                        self.write_block(&ctx, v, &entries)?;
                        return self.commit_root(&mut ctx);
                    }
                    let mid = (entries.len() - 1) / 2;
                    let mut median = entries[mid].clone();
                    let mut left: Vec<IndexEntry> = entries[..mid].to_vec();
                    left.push(IndexEntry::end(median.child));
                    let right: Vec<IndexEntry> = entries[mid + 1..].to_vec();
                    let lv = self.alloc_block(&mut ctx)?;
                    self.write_block(&ctx, lv, &left)?;
                    self.write_block(&ctx, v, &right)?;
                    median.child = Some(lv);
                    let (pv, mut pentries, ppos) =
                        path.pop().ok_or(Error::Corrupt("index path"))?;
                    pentries.insert(ppos, median);
                    vcn = pv;
                    entries = pentries;
                    if vcn.is_none() {
                        ctx.root = entries.clone();
                    }
                }
            }
        }
    }

    /// Finds the path to the entry of `name` (exact, case-insensitive match) and file `n`.
    fn i30_path(&mut self, ctx: &IndexCtx, name: &[u16], n: u64) -> Result<Option<Vec<PathStep>>> {
        let mut path = Vec::new();
        let mut node = ctx.root.clone();
        let mut vcn = None;
        for _ in 0..64 {
            let mut next = None;
            let mut hit = None;
            for (i, x) in node.iter().enumerate() {
                if x.last {
                    next = Some(i);
                    break;
                }
                let xn = FileName::parse(&x.key)?.name;
                match upcase::collate_names(&self.upcase, name, &xn) {
                    Ordering::Equal if mft_no(x.fref) == n => {
                        hit = Some(i);
                        break;
                    }
                    Ordering::Less => {
                        next = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            if let Some(i) = hit {
                path.push((vcn, node, i));
                return Ok(Some(path));
            }
            let i = next.ok_or(Error::Corrupt("index node without end"))?;
            let child = node[i].child;
            path.push((vcn, node, i));
            match child {
                Some(c) => {
                    node = self.read_block(ctx, c)?;
                    vcn = Some(c);
                }
                None => return Ok(None),
            }
        }
        Err(Error::Corrupt("index too deep"))
    }

    fn i30_replace_key(&mut self, dir: u64, name: &[u16], fref: u64, key: Vec<u8>) -> Result<()> {
        let mut ctx = match self.load_dir_ctx(dir) {
            Ok(c) => c,
            Err(Error::Unsupported(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(mut path) = self.i30_path(&ctx, name, mft_no(fref))? else {
            return Ok(());
        };
        let (vcn, mut entries, i) = path.pop().ok_or(Error::Corrupt("index path"))?;
        entries[i].key = key;
        match vcn {
            None => {
                ctx.root = entries;
                self.commit_root(&mut ctx)
            }
            Some(v) => self.write_block(&ctx, v, &entries),
        }
    }

    /// Removes the entry for `name` / file `n` from directory `dir`.
    pub(crate) fn i30_remove(&mut self, dir: u64, name: &[u16], n: u64) -> Result<()> {
        let mut ctx = self.load_dir_ctx(dir)?;
        let mut path = self.i30_path(&ctx, name, n)?.ok_or(Error::NotFound)?;
        let (vcn, mut entries, i) = path.pop().ok_or(Error::Corrupt("index path"))?;
        let leaf = entries[i].child.is_none();
        let real = entries.iter().filter(|e| !e.last).count();
        if leaf && (vcn.is_none() || real > 1) {
            entries.remove(i);
            return match vcn {
                None => {
                    ctx.root = entries;
                    self.commit_root(&mut ctx)
                }
                Some(v) => {
                    self.write_block(&ctx, v, &entries)?;
                    Ok(())
                }
            };
        }
        if leaf && real == 1 {
            // The leaf empties: borrow from or merge with a sibling leaf.
            if let (Some(lv), Some((pvcn, pentries, k))) = (vcn, path.last().cloned()) {
                if self.leaf_underflow(&mut ctx, lv, pvcn, pentries, k)? {
                    return Ok(());
                }
            }
        }
        if let (false, Some(left)) = (leaf, entries[i].child) {
            // Replace it by its predecessor, the last entry of the rightmost
            // leaf of its left subtree, when that leaf keeps an entry.
            let mut pvcn = left;
            let mut pnode = self.read_block(&ctx, pvcn)?;
            for _ in 0..64 {
                match pnode.last().and_then(|e| e.child) {
                    Some(c) => {
                        pvcn = c;
                        pnode = self.read_block(&ctx, c)?;
                    }
                    None => break,
                }
            }
            let real = pnode.iter().filter(|e| !e.last).count();
            let is_leaf = pnode.iter().all(|e| e.child.is_none());
            if is_leaf && real > 1 && pnode.last().is_some_and(|e| e.last) && Some(pvcn) != vcn {
                let pred = pnode.remove(pnode.len() - 2);
                let mut repl = pred;
                repl.child = Some(left);
                entries[i] = repl;
                let cap = index::block_capacity(ctx.hdr.block_size as usize);
                let fits = match vcn {
                    None => self.root_fits(&ctx, &entries),
                    Some(_) => index::entries_len(&entries) <= cap,
                };
                if fits {
                    self.write_block(&ctx, pvcn, &pnode)?;
                    return match vcn {
                        None => {
                            ctx.root = entries;
                            self.commit_root(&mut ctx)
                        }
                        Some(v) => self.write_block(&ctx, v, &entries),
                    };
                }
            }
        }
        // Otherwise rebuild the whole tree without the entry.
        let mut all = self.index_all(&ctx)?;
        all.retain(|e| {
            !(mft_no(e.fref) == n
                && FileName::parse(&e.key)
                    .map(|f| f.name == name)
                    .unwrap_or(false))
        });
        self.i30_rebuild(&mut ctx, all)
    }

    /// Handles a leaf `lv` whose only entry is being deleted; `p` is its
    /// parent (at `pvcn`, None = root) and `k` the parent entry pointing at
    /// it. Borrows an entry through the separator from a sibling leaf with
    /// two or more, or merges the separator into a sibling leaf with one and
    /// frees `lv`. Returns false (nothing written) when neither applies.
    fn leaf_underflow(
        &mut self,
        ctx: &mut IndexCtx,
        lv: u64,
        pvcn: Option<u64>,
        p: Vec<IndexEntry>,
        k: usize,
    ) -> Result<bool> {
        let cap = index::block_capacity(ctx.hdr.block_size as usize);
        let is_leaf = |n: &[IndexEntry]| {
            n.iter().all(|e| e.child.is_none()) && n.last().is_some_and(|e| e.last)
        };
        // (sibling VCN, separator index in p, sibling is on the left)
        let (sv, d, left) = if k > 0 {
            match p.get(k - 1).and_then(|e| e.child) {
                Some(c) => (c, k - 1, true),
                None => return Ok(false),
            }
        } else {
            match p.get(1).and_then(|e| e.child) {
                Some(c) => (c, 0, false),
                None => return Ok(false),
            }
        };
        if sv == lv {
            return Ok(false);
        }
        let mut sib = self.read_block(ctx, sv)?;
        if !is_leaf(&sib) {
            return Ok(false);
        }
        let mut down = p[d].clone();
        down.child = None;
        let mut newp = p.clone();
        let sib_real = sib.len() - 1;
        let mut new_leaf = None;
        if sib_real >= 2 {
            // Borrow: the sibling's nearest entry moves up, the separator down.
            let mut up = if left {
                sib.remove(sib.len() - 2)
            } else {
                sib.remove(0)
            };
            up.child = Some(if left { sv } else { lv });
            newp[d] = up;
            new_leaf = Some(alloc::vec![down, IndexEntry::end(None)]);
        } else {
            // Merge: the separator joins the sibling; the empty leaf goes.
            if left {
                let at = sib.len() - 1;
                sib.insert(at, down);
                newp.remove(d);
                newp[d].child = Some(sv);
            } else {
                sib.insert(0, down);
                newp.remove(0);
            }
            if pvcn.is_some() && newp.len() < 2 {
                return Ok(false);
            }
        }
        let parent_fits = match pvcn {
            None => self.root_fits(ctx, &newp),
            Some(_) => index::entries_len(&newp) <= cap,
        };
        if !parent_fits || index::entries_len(&sib) > cap {
            return Ok(false);
        }
        self.write_block(ctx, sv, &sib)?;
        match new_leaf {
            Some(l) => self.write_block(ctx, lv, &l)?,
            None => {
                let i = lv * ctx.vcn_unit / ctx.hdr.block_size as u64;
                if let Some(b) = ctx
                    .bitmap
                    .as_mut()
                    .and_then(|bm| bm.get_mut((i / 8) as usize))
                {
                    *b &= !(1 << (i % 8));
                }
            }
        }
        match pvcn {
            None => ctx.root = newp,
            Some(v) => self.write_block(ctx, v, &newp)?,
        }
        self.commit_root(ctx)?;
        Ok(true)
    }

    /// Rebuilds a directory's index bottom-up from sorted entries.
    fn i30_rebuild(&mut self, ctx: &mut IndexCtx, entries: Vec<IndexEntry>) -> Result<()> {
        let nm = ctx.name.clone();
        if let Some(bm) = ctx.bitmap.as_mut() {
            bm.fill(0);
        }
        let cap = index::block_capacity(ctx.hdr.block_size as usize) * 3 / 4;
        let mut level: Vec<IndexEntry> = entries
            .into_iter()
            .map(|mut e| {
                e.child = None;
                e
            })
            .collect();
        let mut end_child: Option<u64> = None;
        for _ in 0..64 {
            let mut root_try = level.clone();
            root_try.push(IndexEntry::end(end_child));
            if self.root_fits(ctx, &root_try) {
                ctx.root = root_try;
                break;
            }
            let mut up = Vec::new();
            let mut cur: Vec<IndexEntry> = Vec::new();
            let mut cur_len = 0;
            let mut i = 0;
            while i < level.len() {
                let l = level[i].encoded_len();
                if !cur.is_empty() && cur_len + l > cap && i + 1 < level.len() {
                    let mut sep = level[i].clone();
                    let mut node = core::mem::take(&mut cur);
                    node.push(IndexEntry::end(sep.child));
                    let v = self.alloc_block(ctx)?;
                    self.write_block(ctx, v, &node)?;
                    sep.child = Some(v);
                    up.push(sep);
                    cur_len = 0;
                    i += 1;
                    continue;
                }
                cur.push(level[i].clone());
                cur_len += l;
                i += 1;
            }
            cur.push(IndexEntry::end(end_child));
            let v = self.alloc_block(ctx)?;
            self.write_block(ctx, v, &cur)?;
            level = up;
            end_child = Some(v);
        }
        let used = ctx
            .bitmap
            .as_ref()
            .is_some_and(|b| b.iter().any(|x| *x != 0));
        if !used && ctx.record.find(AT_INDEX_ALLOCATION, &nm).is_some() {
            let mut r = ctx.record.clone();
            self.resize_attr(&mut r, AT_INDEX_ALLOCATION, &nm, 0, true)?;
            r.remove(AT_INDEX_ALLOCATION, &nm);
            if r.find(AT_BITMAP, &nm).is_some_and(|a| a.nonres().is_some()) {
                self.resize_attr(&mut r, AT_BITMAP, &nm, 0, true)?;
            }
            r.remove(AT_BITMAP, &nm);
            ctx.record = r;
            ctx.alloc = None;
            ctx.bitmap = None;
        }
        self.commit_root(ctx)
    }
}

impl RootHeader {
    /// Fixes the "clusters per index block" byte for blocks smaller than a cluster.
    pub(crate) fn fix_cpb(mut self, cluster: u32) -> Self {
        self.clusters_per_block = if self.block_size >= cluster {
            (self.block_size / cluster) as u8
        } else {
            (self.block_size / 512) as u8
        };
        self
    }
}
