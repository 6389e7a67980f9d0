//! A mounted volume: the read side (records, attributes, streams, index
//! lookups, directory listings, security descriptors).

use crate::attr::*;
use crate::boot::BootSector;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::index::{self, IndexEntry, RootHeader};
use crate::lznt1;
use crate::record::{unfixup, Attr, Body, Record};
use crate::runlist::{self, Run};
use crate::upcase;
use crate::util::*;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// Well-known MFT record numbers.
pub mod rec {
    /// `$MFT`.
    pub const MFT: u64 = 0;
    /// `$MFTMirr`.
    pub const MFTMIRR: u64 = 1;
    /// `$LogFile`.
    pub const LOGFILE: u64 = 2;
    /// `$Volume`.
    pub const VOLUME: u64 = 3;
    /// `$AttrDef`.
    pub const ATTRDEF: u64 = 4;
    /// The root directory.
    pub const ROOT: u64 = 5;
    /// `$Bitmap`.
    pub const BITMAP: u64 = 6;
    /// `$Boot`.
    pub const BOOT: u64 = 7;
    /// `$BadClus`.
    pub const BADCLUS: u64 = 8;
    /// `$Secure`.
    pub const SECURE: u64 = 9;
    /// `$UpCase`.
    pub const UPCASE: u64 = 10;
    /// `$Extend`.
    pub const EXTEND: u64 = 11;
    /// First record number handed out to user files.
    pub const FIRST_USER: u64 = 27;
}

/// `$I30` as UTF-16.
pub const I30: [u16; 4] = [b'$' as u16, b'I' as u16, b'3' as u16, b'0' as u16];

/// Largest stream this implementation reads into memory in one piece.
const MAX_IN_MEMORY: u64 = 1 << 36;

/// A data attribute (possibly spread over several extents) ready for reading.
#[derive(Clone, Debug)]
pub struct Stream {
    /// Attribute type.
    pub ty: u32,
    /// Attribute name.
    pub name: Vec<u16>,
    /// Attribute flags of the first extent.
    pub flags: u16,
    /// Resident value, when resident.
    pub resident: Option<Vec<u8>>,
    /// All runs, sorted by VCN.
    pub runs: Vec<Run>,
    /// Data size.
    pub data_size: u64,
    /// Initialized size (bytes past it read as zero).
    pub initialized_size: u64,
    /// Allocated size.
    pub allocated_size: u64,
    /// Compression unit (log2 clusters), 0 when not compressed.
    pub compression_unit: u8,
}

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name.
    pub name: String,
    /// The file reference (record number in the low 48 bits).
    pub fref: u64,
    /// The `$FILE_NAME` key stored in the index.
    pub file_name: FileName,
}

impl DirEntry {
    /// MFT record number.
    pub fn mft_no(&self) -> u64 {
        mft_no(self.fref)
    }
    /// Whether the entry is a directory (by its index copy of the flags).
    pub fn is_dir(&self) -> bool {
        self.file_name.flags & FILE_ATTR_DUP_FILE_NAME_INDEX_PRESENT != 0
    }
}

/// One stream of a file, for `stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// Attribute type.
    pub ty: u32,
    /// Name ("" for the unnamed stream).
    pub name: String,
    /// Data size.
    pub size: u64,
    /// Allocated size.
    pub allocated: u64,
    /// Whether resident.
    pub resident: bool,
    /// Attribute flags (compressed/sparse/encrypted).
    pub flags: u16,
    /// Runs when non-resident.
    pub runs: Vec<Run>,
}

/// What `stat` reports about a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// MFT record number.
    pub mft_no: u64,
    /// Sequence number.
    pub seq: u16,
    /// Record flags.
    pub record_flags: u16,
    /// Link count.
    pub link_count: u16,
    /// `$STANDARD_INFORMATION`.
    pub std_info: StandardInformation,
    /// All `$FILE_NAME`s.
    pub names: Vec<FileName>,
    /// All attributes as (type, name, size, resident).
    pub streams: Vec<StreamInfo>,
    /// Reparse point data (tag + data), if any; surfaced, not followed.
    pub reparse: Option<Vec<u8>>,
    /// Whether the file has an `$ATTRIBUTE_LIST`.
    pub has_attr_list: bool,
}

impl FileInfo {
    /// Whether the file is a directory.
    pub fn is_dir(&self) -> bool {
        self.record_flags & crate::record::MFT_RECORD_IS_DIRECTORY != 0
    }
    /// Size of the unnamed data stream.
    pub fn size(&self) -> u64 {
        self.streams
            .iter()
            .find(|s| s.ty == AT_DATA && s.name.is_empty())
            .map(|s| s.size)
            .unwrap_or(0)
    }
}

/// A mounted NTFS volume on a block device.
pub struct Volume<D> {
    pub(crate) dev: D,
    /// The boot sector.
    pub boot: BootSector,
    pub(crate) cs: u64,
    pub(crate) rs: usize,
    pub(crate) mft_runs: Vec<Run>,
    pub(crate) mft_size: u64,
    pub(crate) upcase: Vec<u16>,
    pub(crate) state: crate::txn::WriteState,
    /// Source of timestamps (100 ns units since 1601) for writes.
    pub clock: fn() -> u64,
    /// Times `set_times` is copying into `$FILE_NAME`s.
    pub(crate) times: Option<(u64, u64, u64)>,
    /// 8.3 short names are generated for new long names (from `$Volume`).
    pub(crate) short_names: bool,
}

/// Default clock: a fixed instant (2026-01-01), since `no_std` has no time.
pub fn fixed_clock() -> u64 {
    // 2026-01-01T00:00:00Z in 100 ns units since 1601-01-01.
    134_116_992_000_000_000
}

impl<D: BlockDevice> Volume<D> {
    /// Mounts the volume: boot sector, `$MFT`'s run list, `$UpCase`.
    pub fn open(mut dev: D) -> Result<Self> {
        let mut bs = [0u8; 512];
        dev.read_at(0, &mut bs)?;
        let boot = BootSector::parse(&bs)?;
        let cs = boot.cluster_size as u64;
        let rs = boot.record_size as usize;
        let size = boot
            .total_sectors
            .checked_mul(boot.bytes_per_sector as u64)
            .ok_or(Error::NotNtfs("volume size"))?;
        if size > dev.size() {
            return Err(Error::NotNtfs("volume larger than device"));
        }
        if boot.mft_lcn >= boot.total_clusters() {
            return Err(Error::NotNtfs("MFT LCN beyond volume"));
        }
        if boot.mftmirr_lcn >= boot.total_clusters() {
            return Err(Error::NotNtfs("MFT mirror LCN beyond volume"));
        }
        let mut v = Volume {
            dev,
            boot,
            cs,
            rs,
            mft_runs: Vec::new(),
            mft_size: 0,
            upcase: Vec::new(),
            state: Default::default(),
            clock: fixed_clock,
            times: None,
            short_names: true,
        };
        // Bootstrap: record 0 is at the MFT LCN.
        let mut raw = alloc::vec![0u8; rs];
        let off = v
            .boot
            .mft_lcn
            .checked_mul(cs)
            .ok_or(Error::Corrupt("MFT offset"))?;
        v.dev.read_at(off, &mut raw)?;
        if unfixup(&mut raw, b"FILE").is_err() {
            // As NTFS does, fall back to the `$MFTMirr` copy (e.g. a write
            // of record 0 torn by a power cut, which log recovery repairs).
            let moff = v
                .boot
                .mftmirr_lcn
                .checked_mul(cs)
                .ok_or(Error::Corrupt("MFT mirror offset"))?;
            v.dev.read_at(moff, &mut raw)?;
            unfixup(&mut raw, b"FILE").map_err(|_| Error::BadRecord {
                record: 0,
                reason: "bad fixups",
            })?;
        }
        let r0 = Record::parse(&raw, 0)?;
        let d = r0.find(AT_DATA, &[]).ok_or(Error::BadRecord {
            record: 0,
            reason: "no $DATA",
        })?;
        let nr = d.nonres().ok_or(Error::BadRecord {
            record: 0,
            reason: "resident $MFT",
        })?;
        v.mft_runs = nr.runs.clone();
        v.mft_size = nr.data_size;
        if let Some(al) = r0.find(AT_ATTRIBUTE_LIST, &[]) {
            let list = v.attr_value(al, 0)?;
            let entries = parse_attr_list(&list)?;
            for e in entries
                .iter()
                .filter(|e| e.ty == AT_DATA && e.name.is_empty())
            {
                let no = mft_no(e.fref);
                if no == 0 {
                    continue;
                }
                let r = v.read_record(no)?;
                if let Some(d) = r.find(AT_DATA, &[]) {
                    if let Some(n) = d.nonres() {
                        v.mft_runs.extend_from_slice(&n.runs);
                    }
                }
            }
            v.mft_runs.sort_by_key(|r| r.vcn);
        }
        let mapped = runlist::end_vcn(&v.mft_runs).saturating_mul(cs);
        // Record 0 between two steps of recovery's undo (mapping pairs put
        // back, sizes not yet) has a data size past its mapping: read the
        // MFT as far as it is mapped, so recovery (which puts the sizes
        // back) can run.
        if v.mft_size > mapped && mapped >= 16 * rs as u64 {
            v.mft_size = mapped;
        }
        if v.mft_size > mapped || v.mft_size < 16 * rs as u64 {
            return Err(Error::BadRecord {
                record: 0,
                reason: "$MFT data size does not match its runs",
            });
        }
        let up = v.read_stream_all(rec::UPCASE, AT_DATA, &[])?;
        if up.len() != 131072 {
            return Err(Error::Corrupt("$UpCase is not 128 KiB"));
        }
        v.upcase = utf16_units(&up);
        // The per-volume 8.3 state; a volume without $VOLUME_INFORMATION
        // mounts with short names on (NTFS's default when not disabled).
        if let Ok(r) = v.read_record(rec::VOLUME) {
            if let Some(vi) = r.find(AT_VOLUME_INFORMATION, &[]).and_then(|a| a.value()) {
                if let Ok(f) = u16_at(vi, 10) {
                    v.short_names = f & VOLUME_DISABLE_SHORT_NAMES == 0;
                }
            }
        }
        Ok(v)
    }

    /// The device.
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }
    /// Unmounts, returning the device.
    pub fn into_device(self) -> D {
        self.dev
    }
    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        self.cs
    }
    /// Bytes per file record.
    pub fn record_size(&self) -> usize {
        self.rs
    }
    /// Number of clusters.
    pub fn total_clusters(&self) -> u64 {
        self.boot.total_clusters()
    }
    /// Number of MFT records (from `$MFT`'s data size).
    pub fn mft_records(&self) -> u64 {
        self.mft_size / self.rs as u64
    }
    /// The upcase table.
    pub fn upcase(&self) -> &[u16] {
        &self.upcase
    }

    /// Reads `buf.len()` bytes at `offset` of a run-mapped byte stream; holes
    /// and bytes past `valid` read as zero.
    pub(crate) fn read_runs(
        &mut self,
        runs: &[Run],
        valid: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset
                .checked_add(done as u64)
                .ok_or(Error::Corrupt("offset overflow"))?;
            let vcn = pos / self.cs;
            let in_cl = pos % self.cs;
            let (lcn, left) = runlist::lookup(runs, vcn).ok_or(Error::Corrupt("VCN not mapped"))?;
            let avail = left.saturating_mul(self.cs) - in_cl;
            let n = core::cmp::min(avail, (buf.len() - done) as u64) as usize;
            let chunk = &mut buf[done..done + n];
            match lcn {
                Some(l) if pos < valid => {
                    let end = l.checked_add(left).ok_or(Error::Corrupt("LCN overflow"))?;
                    if end > self.total_clusters() {
                        return Err(Error::Corrupt("run beyond end of volume"));
                    }
                    self.dev.read_at(l * self.cs + in_cl, chunk)?;
                    let vis = valid - pos;
                    if (n as u64) > vis {
                        chunk[vis as usize..].fill(0);
                    }
                }
                _ => chunk.fill(0),
            }
            done += n;
        }
        Ok(())
    }

    /// Reads MFT record `n` (fixups applied, parsed).
    pub fn read_record(&mut self, n: u64) -> Result<Record> {
        let raw = self.read_record_raw(n)?;
        let mut b = raw;
        unfixup(&mut b, b"FILE").map_err(|_| Error::BadRecord {
            record: n,
            reason: "bad signature or fixups",
        })?;
        Record::parse(&b, n)
    }

    /// Reads consecutive MFT records as stored (fixups not applied) from record `first` into
    /// `buf`, as many whole records as fit and `$MFT` holds, in one pass over the run list;
    /// returns how many were read (0 past the end). A scan over every record reads with this.
    pub fn read_records_raw(&mut self, first: u64, buf: &mut [u8]) -> Result<usize> {
        let rs = self.rs as u64;
        let total = self.mft_size / rs;
        let n = (buf.len() as u64 / rs).min(total.saturating_sub(first));
        if n == 0 {
            return Ok(0);
        }
        let len = (n * rs) as usize;
        let runs = core::mem::take(&mut self.mft_runs);
        let r = self.read_runs(&runs, u64::MAX, first * rs, &mut buf[..len]);
        self.mft_runs = runs;
        r?;
        Ok(n as usize)
    }

    /// Reads MFT record `n` as stored (fixups not applied).
    pub fn read_record_raw(&mut self, n: u64) -> Result<Vec<u8>> {
        let off = n
            .checked_mul(self.rs as u64)
            .ok_or(Error::Corrupt("record number"))?;
        if off
            .checked_add(self.rs as u64)
            .is_none_or(|e| e > self.mft_size)
        {
            return Err(Error::BadRecord {
                record: n,
                reason: "beyond $MFT",
            });
        }
        let mut raw = alloc::vec![0u8; self.rs];
        let runs = core::mem::take(&mut self.mft_runs);
        let r = self.read_runs(&runs, u64::MAX, off, &mut raw);
        self.mft_runs = runs;
        r?;
        Ok(raw)
    }

    /// Reads a small attribute value whole (resident or non-resident).
    pub(crate) fn attr_value(&mut self, a: &Attr, rec: u64) -> Result<Vec<u8>> {
        match &a.body {
            Body::Resident { value, .. } => Ok(value.clone()),
            Body::NonResident(n) => {
                if n.data_size > 1 << 28 {
                    return Err(Error::BadRecord {
                        record: rec,
                        reason: "metadata attribute too large",
                    });
                }
                let mut v = alloc::vec![0u8; n.data_size as usize];
                self.read_runs(&n.runs, n.initialized_size, 0, &mut v)?;
                Ok(v)
            }
        }
    }

    /// All attributes of a file: the base record's plus those in extension
    /// records named by its `$ATTRIBUTE_LIST`. Returns the base record too.
    pub fn load(&mut self, n: u64) -> Result<(Record, Vec<Attr>)> {
        let base = self.read_record(n)?;
        if !base.in_use() {
            return Err(Error::BadRecord {
                record: n,
                reason: "record not in use",
            });
        }
        if base.base != 0 {
            return Err(Error::BadRecord {
                record: n,
                reason: "is an extension record",
            });
        }
        let mut attrs: Vec<Attr> = base.attrs.clone();
        if let Some(al) = base.find(AT_ATTRIBUTE_LIST, &[]) {
            let list = self.attr_value(al, n)?;
            let entries = parse_attr_list(&list)?;
            let mut seen: Vec<u64> = Vec::new();
            for e in &entries {
                let no = mft_no(e.fref);
                if no == n || seen.contains(&no) {
                    continue;
                }
                seen.push(no);
                if seen.len() > 4096 {
                    return Err(Error::BadRecord {
                        record: n,
                        reason: "attribute list too long",
                    });
                }
                let r = self.read_record(no)?;
                if mft_no(r.base) != n {
                    return Err(Error::BadRecord {
                        record: no,
                        reason: "extension record of another file",
                    });
                }
                attrs.extend(r.attrs);
            }
        }
        Ok((base, attrs))
    }

    /// Gathers the extents of one attribute into a [`Stream`].
    pub fn stream_from(
        attrs: &[Attr],
        ty: u32,
        name: &[u16],
        rec: u64,
        cluster_size: u64,
    ) -> Result<Stream> {
        let mut ext: Vec<&Attr> = attrs
            .iter()
            .filter(|a| a.ty == ty && a.name == name)
            .collect();
        if ext.is_empty() {
            return Err(Error::NotFound);
        }
        if let Some(v) = ext[0].value() {
            return Ok(Stream {
                ty,
                name: name.to_vec(),
                flags: ext[0].flags,
                resident: Some(v.to_vec()),
                runs: Vec::new(),
                data_size: v.len() as u64,
                initialized_size: v.len() as u64,
                allocated_size: v.len() as u64,
                compression_unit: 0,
            });
        }
        ext.sort_by_key(|a| a.nonres().map(|n| n.start_vcn).unwrap_or(0));
        let first = ext[0].nonres().ok_or(Error::BadRecord {
            record: rec,
            reason: "mixed resident extents",
        })?;
        if first.start_vcn != 0 {
            return Err(Error::BadRecord {
                record: rec,
                reason: "first extent does not start at VCN 0",
            });
        }
        let mut runs = Vec::new();
        for a in &ext {
            let n = a.nonres().ok_or(Error::BadRecord {
                record: rec,
                reason: "mixed resident extents",
            })?;
            if runlist::end_vcn(&runs) != n.start_vcn && !runs.is_empty() {
                return Err(Error::BadRecord {
                    record: rec,
                    reason: "extents not contiguous",
                });
            }
            runs.extend_from_slice(&n.runs);
        }
        let mapped = runlist::end_vcn(&runs).saturating_mul(cluster_size);
        if first.data_size > MAX_IN_MEMORY * 1024
            || first.initialized_size > first.data_size
            || first.data_size > mapped
        {
            return Err(Error::BadRecord {
                record: rec,
                reason: "stream sizes",
            });
        }
        Ok(Stream {
            ty,
            name: name.to_vec(),
            flags: ext[0].flags,
            resident: None,
            runs,
            data_size: first.data_size,
            initialized_size: first.initialized_size,
            allocated_size: first.allocated_size,
            compression_unit: if ext[0].flags & ATTR_COMPRESSED != 0 {
                first.compression_unit
            } else {
                0
            },
        })
    }

    /// Opens a stream of file `n`.
    pub fn open_stream(&mut self, n: u64, ty: u32, name: &[u16]) -> Result<Stream> {
        let (_, attrs) = self.load(n)?;
        Self::stream_from(&attrs, ty, name, n, self.cs)
    }

    /// Reads up to `buf.len()` bytes at `offset` of a stream; returns the
    /// count read (short at end of data).
    pub fn read_stream_at(&mut self, s: &Stream, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= s.data_size {
            return Ok(0);
        }
        let n = core::cmp::min(buf.len() as u64, s.data_size - offset) as usize;
        let buf = &mut buf[..n];
        if let Some(v) = &s.resident {
            buf.copy_from_slice(&v[offset as usize..offset as usize + n]);
            return Ok(n);
        }
        let needed = runlist::end_vcn(&s.runs)
            .checked_mul(self.cs)
            .ok_or(Error::Corrupt("run list size"))?;
        if needed < s.data_size.min(s.allocated_size) && s.compression_unit == 0 {
            return Err(Error::Corrupt("run list shorter than data"));
        }
        if s.compression_unit == 0 {
            self.read_runs(&s.runs, s.initialized_size, offset, buf)?;
            return Ok(n);
        }
        // Compressed: work per compression unit.
        if s.compression_unit > 8 {
            return Err(Error::Unsupported(
                "compression unit larger than 256 clusters",
            ));
        }
        let cu_cl = 1u64 << s.compression_unit;
        let cu_bytes = cu_cl * self.cs;
        let mut done = 0usize;
        let mut unit = alloc::vec![0u8; cu_bytes as usize];
        while done < n {
            let pos = offset + done as u64;
            let u = pos / cu_bytes;
            self.read_cu(s, u, cu_cl, &mut unit)?;
            let in_u = (pos % cu_bytes) as usize;
            let k = core::cmp::min(cu_bytes as usize - in_u, n - done);
            buf[done..done + k].copy_from_slice(&unit[in_u..in_u + k]);
            done += k;
        }
        Ok(n)
    }

    fn read_cu(&mut self, s: &Stream, u: u64, cu_cl: u64, out: &mut [u8]) -> Result<()> {
        let first = u * cu_cl;
        let mut allocated = 0u64;
        let mut v = first;
        while v < first + cu_cl {
            match runlist::lookup(&s.runs, v) {
                Some((Some(_), left)) => {
                    let k = left.min(first + cu_cl - v);
                    allocated += k;
                    v += k;
                }
                Some((None, left)) => v += left.min(first + cu_cl - v),
                None => break,
            }
        }
        if allocated == 0 {
            out.fill(0);
        } else if allocated == cu_cl {
            let base = first * self.cs;
            self.read_runs(&s.runs, u64::MAX, base, out)?;
        } else {
            let mut comp = alloc::vec![0u8; (allocated * self.cs) as usize];
            self.read_runs(&s.runs, u64::MAX, first * self.cs, &mut comp)?;
            out.fill(0);
            lznt1::decompress(&comp, out)?;
        }
        Ok(())
    }

    /// Reads a whole stream of file `n` into memory.
    pub fn read_stream_all(&mut self, n: u64, ty: u32, name: &[u16]) -> Result<Vec<u8>> {
        let s = self.open_stream(n, ty, name)?;
        self.read_whole(&s)
    }

    /// Reads a whole opened stream.
    pub fn read_whole(&mut self, s: &Stream) -> Result<Vec<u8>> {
        if s.data_size > MAX_IN_MEMORY {
            return Err(Error::Unsupported("stream too large to read into memory"));
        }
        let mut v = Vec::new();
        v.try_reserve_exact(s.data_size as usize)
            .map_err(|_| Error::Unsupported("stream too large to read into memory"))?;
        v.resize(s.data_size as usize, 0);
        self.read_stream_at(s, 0, &mut v)?;
        Ok(v)
    }

    // ----- indexes -----

    /// Loads the root of index `name` of file `n`, and its allocation stream.
    pub(crate) fn index_ctx(&mut self, n: u64, name: &[u16]) -> Result<IndexCtx> {
        self.index_ctx_ex(n, name, true)
    }

    /// [`Volume::index_ctx`] without the block bitmap (for lookups).
    pub(crate) fn index_ctx_ro(&mut self, n: u64, name: &[u16]) -> Result<IndexCtx> {
        self.index_ctx_ex(n, name, false)
    }

    fn index_ctx_ex(&mut self, n: u64, name: &[u16], with_bitmap: bool) -> Result<IndexCtx> {
        let (mut rec, attrs) = self.load(n)?;
        // With an $ATTRIBUTE_LIST the root may be in an extension record:
        // the context holds the whole file (merged), written back as one.
        let attrs = if rec.find(AT_ATTRIBUTE_LIST, &[]).is_some() && n != rec::MFT {
            rec = self.read_file_record(n)?;
            rec.attrs.clone()
        } else {
            attrs
        };
        let root = attrs
            .iter()
            .find(|a| a.ty == AT_INDEX_ROOT && a.name == name)
            .ok_or(Error::NotADirectory)?;
        let v = root.value().ok_or(Error::BadRecord {
            record: n,
            reason: "non-resident $INDEX_ROOT",
        })?;
        let (hdr, entries, _) = index::parse_root(v)?;
        if !hdr.block_size.is_power_of_two() || !(512..=65536).contains(&hdr.block_size) {
            return Err(Error::BadRecord {
                record: n,
                reason: "index block size",
            });
        }
        let alloc = match Self::stream_from(&attrs, AT_INDEX_ALLOCATION, name, n, self.cs) {
            Ok(s) => Some(s),
            Err(Error::NotFound) => None,
            Err(e) => return Err(e),
        };
        let bitmap = match Self::stream_from(&attrs, AT_BITMAP, name, n, self.cs) {
            Ok(_) if !with_bitmap => None,
            Ok(s) => Some(self.read_whole(&s)?),
            Err(Error::NotFound) => None,
            Err(e) => return Err(e),
        };
        let vcn_unit = if hdr.block_size as u64 >= self.cs {
            self.cs
        } else {
            512
        };
        Ok(IndexCtx {
            mft: n,
            name: name.to_vec(),
            record: rec,
            hdr,
            root: entries,
            alloc,
            bitmap,
            vcn_unit,
        })
    }

    /// Reads one INDX block by VCN.
    pub(crate) fn read_block(&mut self, ctx: &IndexCtx, vcn: u64) -> Result<Vec<IndexEntry>> {
        let s = ctx.alloc.as_ref().ok_or(Error::BadRecord {
            record: ctx.mft,
            reason: "child node without $INDEX_ALLOCATION",
        })?;
        let off = vcn
            .checked_mul(ctx.vcn_unit)
            .ok_or(Error::Corrupt("index VCN"))?;
        let bs = ctx.hdr.block_size as usize;
        if off.checked_add(bs as u64).is_none_or(|e| e > s.data_size) {
            return Err(Error::BadRecord {
                record: ctx.mft,
                reason: "index VCN beyond allocation",
            });
        }
        let mut raw = alloc::vec![0u8; bs];
        self.read_stream_at(s, off, &mut raw)?;
        let (bvcn, e) =
            index::parse_block(&raw, ctx.hdr.ty == 0).map_err(|_| Error::BadRecord {
                record: ctx.mft,
                reason: "bad index block",
            })?;
        if bvcn != vcn {
            return Err(Error::BadRecord {
                record: ctx.mft,
                reason: "index block VCN mismatch",
            });
        }
        Ok(e)
    }

    /// Searches an index with `cmp` (ordering of the wanted key relative to
    /// an entry). Returns the matching entry.
    pub(crate) fn index_find(
        &mut self,
        ctx: &IndexCtx,
        cmp: &mut dyn FnMut(&IndexEntry) -> Ordering,
    ) -> Result<Option<IndexEntry>> {
        let mut node = ctx.root.clone();
        for _ in 0..64 {
            let mut next = None;
            for e in &node {
                if e.last {
                    next = e.child;
                    break;
                }
                match cmp(e) {
                    Ordering::Equal => return Ok(Some(e.clone())),
                    Ordering::Less => {
                        next = e.child;
                        break;
                    }
                    Ordering::Greater => {}
                }
            }
            match next {
                Some(vcn) => node = self.read_block(ctx, vcn)?,
                None => return Ok(None),
            }
        }
        Err(Error::BadRecord {
            record: ctx.mft,
            reason: "index too deep",
        })
    }

    /// All entries of an index in order.
    pub(crate) fn index_all(&mut self, ctx: &IndexCtx) -> Result<Vec<IndexEntry>> {
        let mut out = Vec::new();
        let mut visited = Vec::new();
        let root = ctx.root.clone();
        self.walk(ctx, &root, 0, &mut visited, &mut out)?;
        Ok(out)
    }

    fn walk(
        &mut self,
        ctx: &IndexCtx,
        node: &[IndexEntry],
        depth: u32,
        visited: &mut Vec<u64>,
        out: &mut Vec<IndexEntry>,
    ) -> Result<()> {
        if depth > 32 {
            return Err(Error::BadRecord {
                record: ctx.mft,
                reason: "index too deep",
            });
        }
        for e in node {
            if let Some(vcn) = e.child {
                if visited.contains(&vcn) {
                    return Err(Error::BadRecord {
                        record: ctx.mft,
                        reason: "index node referenced twice",
                    });
                }
                visited.push(vcn);
                let child = self.read_block(ctx, vcn)?;
                self.walk(ctx, &child, depth + 1, visited, out)?;
            }
            if !e.last {
                let mut c = e.clone();
                c.child = None;
                out.push(c);
            }
        }
        Ok(())
    }

    /// Looks `name` up in directory `dir` (case-insensitive, by `$UpCase`).
    pub fn lookup_in(&mut self, dir: u64, name: &[u16]) -> Result<Option<DirEntry>> {
        let ctx = self.index_ctx_ro(dir, &I30)?;
        let up = core::mem::take(&mut self.upcase);
        let mut bad = false;
        let r = self.index_find(&ctx, &mut |e| match FileName::parse(&e.key) {
            Ok(f) => upcase::cmp_ignore_case(&up, name, &f.name),
            Err(_) => {
                bad = true;
                Ordering::Equal
            }
        });
        self.upcase = up;
        let r = r?;
        if bad {
            return Err(Error::BadRecord {
                record: dir,
                reason: "bad $FILE_NAME key",
            });
        }
        match r {
            None => Ok(None),
            Some(e) => {
                let f = FileName::parse(&e.key)?;
                Ok(Some(DirEntry {
                    name: f.name_string(),
                    fref: e.fref,
                    file_name: f,
                }))
            }
        }
    }

    /// Lists a directory in index order. DOS-only names (the short 8.3 alias
    /// of a long name) are left out.
    pub fn read_dir(&mut self, dir: u64) -> Result<Vec<DirEntry>> {
        let ctx = self.index_ctx_ro(dir, &I30)?;
        if ctx.hdr.ty != AT_FILE_NAME {
            return Err(Error::NotADirectory);
        }
        let all = self.index_all(&ctx)?;
        let mut out = Vec::with_capacity(all.len());
        for e in all {
            let f = FileName::parse(&e.key)?;
            if f.namespace == NS_DOS {
                continue;
            }
            out.push(DirEntry {
                name: f.name_string(),
                fref: e.fref,
                file_name: f,
            });
        }
        Ok(out)
    }

    /// Resolves a path (components separated by `/` or `\`) to a record
    /// number. A trailing `:stream` on the last component is not allowed here;
    /// see [`Volume::resolve`].
    pub fn lookup(&mut self, path: &str) -> Result<u64> {
        let mut cur = rec::ROOT;
        let comps: Vec<&str> = path.split(['/', '\\']).filter(|c| !c.is_empty()).collect();
        for (i, c) in comps.iter().enumerate() {
            let name: Vec<u16> = c.encode_utf16().collect();
            let found = match self.lookup_in(cur, &name) {
                Ok(f) => f,
                Err(Error::NotADirectory) => return Err(Error::NotADirectory),
                Err(e) => return Err(e),
            };
            match found {
                Some(e) => cur = e.mft_no(),
                None => {
                    return Err(if i + 1 == comps.len() {
                        Error::NotFound
                    } else {
                        Error::PathNotFound
                    });
                }
            }
        }
        Ok(cur)
    }

    /// Resolves `path[:stream]` to (record, stream name).
    pub fn resolve(&mut self, path: &str) -> Result<(u64, Vec<u16>)> {
        let (p, s) = split_stream(path);
        Ok((self.lookup(p)?, s.encode_utf16().collect()))
    }

    /// Reads a file's data (`path` or `path:stream`) into memory.
    pub fn read_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let (n, s) = self.resolve(path)?;
        let (rec, attrs) = self.load(n)?;
        if rec.is_dir() && s.is_empty() {
            return Err(Error::IsADirectory);
        }
        let st = Self::stream_from(&attrs, AT_DATA, &s, n, self.cs)?;
        self.read_whole(&st)
    }

    /// Information about file `n`.
    pub fn stat(&mut self, n: u64) -> Result<FileInfo> {
        let (rec, attrs) = self.load(n)?;
        let mut info = FileInfo {
            mft_no: n,
            seq: rec.seq,
            record_flags: rec.flags,
            link_count: rec.link_count,
            std_info: StandardInformation::default(),
            names: Vec::new(),
            streams: Vec::new(),
            reparse: None,
            has_attr_list: rec.find(AT_ATTRIBUTE_LIST, &[]).is_some(),
        };
        for a in &attrs {
            match a.ty {
                AT_STANDARD_INFORMATION => {
                    if let Some(v) = a.value() {
                        info.std_info = StandardInformation::parse(v)?;
                    }
                }
                AT_FILE_NAME => {
                    if let Some(v) = a.value() {
                        info.names.push(FileName::parse(v)?);
                    }
                }
                AT_REPARSE_POINT => info.reparse = Some(self.attr_value(a, n)?),
                _ => {}
            }
            let first_extent = a.nonres().is_none_or(|x| x.start_vcn == 0);
            if first_extent && a.ty != AT_ATTRIBUTE_LIST {
                let s = Self::stream_from(&attrs, a.ty, &a.name, n, self.cs)?;
                info.streams.push(StreamInfo {
                    ty: a.ty,
                    name: utf16_to_string(&a.name),
                    size: s.data_size,
                    allocated: s.allocated_size,
                    resident: s.resident.is_some(),
                    flags: a.flags,
                    runs: s.runs,
                });
            }
        }
        Ok(info)
    }

    /// Volume label from `$Volume`.
    pub fn volume_name(&mut self) -> Result<String> {
        let r = self.read_record(rec::VOLUME)?;
        Ok(r.find(AT_VOLUME_NAME, &[])
            .and_then(|a| a.value())
            .map(|v| utf16_to_string(&utf16_units(v)))
            .unwrap_or_default())
    }

    /// NTFS version (major, minor) and volume flags from `$Volume`.
    pub fn volume_version(&mut self) -> Result<(u8, u8, u16)> {
        let r = self.read_record(rec::VOLUME)?;
        let v = r
            .find(AT_VOLUME_INFORMATION, &[])
            .and_then(|a| a.value())
            .ok_or(Error::BadRecord {
                record: 3,
                reason: "no $VOLUME_INFORMATION",
            })?;
        Ok((u8_at(v, 8)?, u8_at(v, 9)?, u16_at(v, 10)?))
    }

    /// The self-relative security descriptor of file `n`: through its
    /// security id in `$Secure:$SII`/`$SDS`, or its own
    /// `$SECURITY_DESCRIPTOR` attribute. `None` when it has neither.
    pub fn security_descriptor(&mut self, n: u64) -> Result<Option<Vec<u8>>> {
        let (_, attrs) = self.load(n)?;
        if let Some(a) = attrs.iter().find(|a| a.ty == AT_SECURITY_DESCRIPTOR) {
            return Ok(Some(self.attr_value(a, n)?));
        }
        let si = attrs
            .iter()
            .find(|a| a.ty == AT_STANDARD_INFORMATION)
            .and_then(|a| a.value())
            .ok_or(Error::BadRecord {
                record: n,
                reason: "no $STANDARD_INFORMATION",
            })?;
        let si = StandardInformation::parse(si)?;
        if si.security_id == 0 {
            return Ok(None);
        }
        self.security_by_id(si.security_id)
    }

    /// Looks a security id up in `$Secure`.
    pub fn security_by_id(&mut self, id: u32) -> Result<Option<Vec<u8>>> {
        let sii: [u16; 4] = [b'$' as u16, b'S' as u16, b'I' as u16, b'I' as u16];
        let ctx = self.index_ctx_ro(rec::SECURE, &sii)?;
        let e = self.index_find(&ctx, &mut |e| {
            let k = u32_at(&e.key, 0).unwrap_or(0);
            id.cmp(&k)
        })?;
        let Some(e) = e else { return Ok(None) };
        let off = u64_at(&e.data, 8)?;
        let len = u32_at(&e.data, 16)? as u64;
        if !(20..=1 << 20).contains(&len) {
            return Err(Error::BadRecord {
                record: rec::SECURE,
                reason: "$SDS entry length",
            });
        }
        let sds: [u16; 4] = [b'$' as u16, b'S' as u16, b'D' as u16, b'S' as u16];
        let s = self.open_stream(rec::SECURE, AT_DATA, &sds)?;
        let mut hdr = [0u8; 20];
        if self.read_stream_at(&s, off, &mut hdr)? != 20 || u32_at(&hdr, 4)? != id {
            return Err(Error::BadRecord {
                record: rec::SECURE,
                reason: "$SDS entry does not match $SII",
            });
        }
        let mut sd = alloc::vec![0u8; (len - 20) as usize];
        let got = self.read_stream_at(&s, off + 20, &mut sd)?;
        if got != sd.len() {
            return Err(Error::BadRecord {
                record: rec::SECURE,
                reason: "$SDS entry truncated",
            });
        }
        Ok(Some(sd))
    }
}

/// Splits `path:stream`.
pub fn split_stream(path: &str) -> (&str, &str) {
    let last_sep = path.rfind(['/', '\\']).map(|i| i + 1).unwrap_or(0);
    match path[last_sep..].find(':') {
        Some(i) => (&path[..last_sep + i], &path[last_sep + i + 1..]),
        None => (path, ""),
    }
}

/// A loaded index root plus what is needed to read its nodes.
#[derive(Clone, Debug)]
pub(crate) struct IndexCtx {
    pub mft: u64,
    pub name: Vec<u16>,
    pub record: Record,
    pub hdr: RootHeader,
    pub root: Vec<IndexEntry>,
    pub alloc: Option<Stream>,
    pub bitmap: Option<Vec<u8>>,
    pub vcn_unit: u64,
}
