//! Finding and reading deleted files (`ntrs-ntfs recover`). Deleting a file on NTFS clears the
//! in-use flag of its MFT record and frees its clusters in `$Bitmap`, but leaves the record's
//! attributes and the clusters' contents where they were until they are reused. A deleted base
//! record that still parses gives the name, parent, times and the `$DATA` attribute (resident
//! bytes, or the run list); the clusters are intact only while `$Bitmap` still has them free.

use crate::attr::*;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::record::{Body, Record, MFT_RECORD_IS_DIRECTORY};
use crate::runlist::Run;
use crate::volume::{rec, Stream, Volume};
use alloc::string::String;
use alloc::vec::Vec;

/// A deleted file record found by [`Volume::deleted_files`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedFile {
    /// MFT record number.
    pub record: u64,
    /// Sequence number in the record (deletion increments it).
    pub seq: u16,
    /// Whether the record was a directory.
    pub dir: bool,
    /// The (Win32 or POSIX, else DOS) `$FILE_NAME`.
    pub name: FileName,
    /// `$STANDARD_INFORMATION`, when it still parses.
    pub std_info: Option<StandardInformation>,
    /// Size of the unnamed `$DATA` stream (0 without one).
    pub size: u64,
    /// Whether the data is resident (in the record itself).
    pub resident: bool,
    /// Why the data cannot be read back, when it cannot (e.g. the runs continue in extension
    /// records); `None` when it can.
    pub unreadable: Option<&'static str>,
    /// Clusters the data occupies (holes excluded).
    pub clusters: u64,
    /// How many of them `$Bitmap` now marks allocated (reused, or at risk of having been).
    pub clusters_in_use: u64,
}

impl DeletedFile {
    /// Whether the data can be recovered as it was: readable and no cluster reallocated.
    pub fn intact(&self) -> bool {
        self.unreadable.is_none() && self.clusters_in_use == 0
    }
}

/// The unnamed `$DATA` of a deleted base record as one stream, when the record alone holds it.
fn data_stream(r: &Record, cs: u64) -> core::result::Result<Option<Stream>, &'static str> {
    if r.attrs
        .iter()
        .all(|a| !(a.ty == AT_DATA && a.name.is_empty()))
    {
        return Ok(None);
    }
    let s = Volume::<crate::MemDevice>::stream_from(&r.attrs, AT_DATA, &[], r.number, cs)
        .map_err(|_| "the data attribute does not describe the whole stream")?;
    if let Some(n) = r
        .attrs
        .iter()
        .find(|a| a.ty == AT_DATA && a.name.is_empty())
        .and_then(|a| a.nonres())
    {
        // Runs that stop before the data's end continue in an extension record.
        let mapped = crate::runlist::end_vcn(&n.runs).saturating_mul(cs);
        if mapped < n.data_size.min(n.allocated_size) && s.compression_unit == 0 {
            return Err("the run list continues in extension records");
        }
    }
    Ok(Some(s))
}

/// Number of set bits of `bitmap` in `[lcn, lcn + len)`; bits past its end count as set.
fn allocated_in(bitmap: &[u8], lcn: u64, len: u64) -> u64 {
    let mut n = 0;
    for c in lcn..lcn.saturating_add(len) {
        let set = bitmap
            .get((c / 8) as usize)
            .is_none_or(|b| b & (1 << (c % 8)) != 0);
        n += set as u64;
    }
    n
}

/// Examines one raw record (as read, fixups not applied): a deleted base file record with a
/// name gives a [`DeletedFile`]; anything else (in use, extension, never used, damaged) `None`.
pub fn examine_record(raw: &[u8], n: u64, cs: u64, bitmap: &[u8]) -> Option<DeletedFile> {
    let mut b = raw.to_vec();
    crate::record::unfixup(&mut b, b"FILE").ok()?;
    let r = Record::parse(&b, n).ok()?;
    if r.in_use() || r.base != 0 || n < 16 {
        return None;
    }
    let names: Vec<FileName> = r
        .attrs
        .iter()
        .filter(|a| a.ty == AT_FILE_NAME)
        .filter_map(|a| a.value().and_then(|v| FileName::parse(v).ok()))
        .collect();
    let name = names
        .iter()
        .find(|f| f.namespace != NS_DOS)
        .or(names.first())?
        .clone();
    let std_info = r
        .find(AT_STANDARD_INFORMATION, &[])
        .and_then(|a| a.value())
        .and_then(|v| StandardInformation::parse(v).ok());
    let (mut size, mut resident, mut unreadable, mut clusters, mut in_use) = (0, false, None, 0, 0);
    match data_stream(&r, cs) {
        Ok(Some(s)) => {
            size = s.data_size;
            resident = s.resident.is_some();
            for Run { lcn, len, .. } in &s.runs {
                if let Some(l) = lcn {
                    clusters += len;
                    in_use += allocated_in(bitmap, *l, *len);
                }
            }
        }
        Ok(None) => {}
        Err(why) => {
            unreadable = Some(why);
            if let Some(a) = r.find(AT_DATA, &[]) {
                size = a.data_size();
            }
        }
    }
    Some(DeletedFile {
        record: n,
        seq: r.seq,
        // (The directory flag may have been cleared with the in-use flag: an $I30 index says.)
        dir: r.flags & MFT_RECORD_IS_DIRECTORY != 0
            || r.find(AT_INDEX_ROOT, &crate::volume::I30).is_some(),
        name,
        std_info,
        size,
        resident,
        unreadable,
        clusters,
        clusters_in_use: in_use,
    })
}

impl<D: BlockDevice> Volume<D> {
    /// The cluster allocation bitmap (`$Bitmap`'s data).
    pub fn cluster_bitmap(&mut self) -> Result<Vec<u8>> {
        self.read_stream_all(rec::BITMAP, AT_DATA, &[])
    }

    /// Every deleted file record that still parses and has a name, in record order, each with
    /// how many of its clusters `$Bitmap` now marks in use.
    pub fn deleted_files(&mut self) -> Result<Vec<DeletedFile>> {
        let bitmap = self.cluster_bitmap()?;
        let mut out = Vec::new();
        for n in 16..self.mft_records() {
            let Ok(raw) = self.read_record_raw(n) else {
                continue;
            };
            if let Some(d) = examine_record(&raw, n, self.cs, &bitmap) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The deleted file in record `n`, or `STATUS_NOT_FOUND`-like [`Error::NotFound`] when the
    /// record holds no deleted file.
    pub fn deleted_file(&mut self, n: u64) -> Result<DeletedFile> {
        let bitmap = self.cluster_bitmap()?;
        let raw = self.read_record_raw(n)?;
        examine_record(&raw, n, self.cs, &bitmap).ok_or(Error::NotFound)
    }

    /// Copies the data of deleted record `n` to `out` in chunks (as it is on disk now: the
    /// caller checks [`DeletedFile::intact`] first). Returns the bytes written.
    pub fn recover_data(
        &mut self,
        n: u64,
        out: &mut dyn FnMut(&[u8]) -> core::result::Result<(), String>,
    ) -> core::result::Result<u64, String> {
        let raw = self.read_record_raw(n).map_err(|e| alloc::format!("{e}"))?;
        let mut b = raw;
        crate::record::unfixup(&mut b, b"FILE").map_err(|e| alloc::format!("{e}"))?;
        let r = Record::parse(&b, n).map_err(|e| alloc::format!("{e}"))?;
        if r.in_use() {
            return Err("the record is in use (not a deleted file)".into());
        }
        let Some(s) = data_stream(&r, self.cs).map_err(String::from)? else {
            return Ok(0);
        };
        if let Some(Body::Resident { value, .. }) = r.find(AT_DATA, &[]).map(|a| &a.body) {
            out(value)?;
            return Ok(value.len() as u64);
        }
        let mut buf = alloc::vec![0u8; 1 << 20];
        let mut off = 0u64;
        while off < s.data_size {
            let got = self
                .read_stream_at(&s, off, &mut buf)
                .map_err(|e| alloc::format!("reading at byte {off}: {e}"))?;
            if got == 0 {
                break;
            }
            out(&buf[..got])?;
            off += got as u64;
        }
        Ok(off)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use crate::*;
    use proptest::prelude::*;

    fn volume() -> Volume<MemDevice> {
        format(MemDevice::new(16 << 20), &FormatOptions::default()).unwrap()
    }

    #[test]
    fn deleted_files_are_found_and_read_back() {
        let mut v = volume();
        let big: alloc::vec::Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        v.create("/d", true).unwrap();
        v.write_file("/d/big.bin", &big).unwrap();
        v.write_file("/small.txt", b"tiny").unwrap();
        v.write_file("/kept.txt", b"kept").unwrap();
        let nb = v.lookup("/d/big.bin").unwrap();
        let ns = v.lookup("/small.txt").unwrap();
        v.remove("/d/big.bin").unwrap();
        v.remove("/small.txt").unwrap();
        let d = v.deleted_files().unwrap();
        let names: alloc::vec::Vec<_> = d.iter().map(|x| x.name.name_string()).collect();
        assert_eq!(names, ["big.bin", "small.txt"], "{d:?}");
        let b = d.iter().find(|x| x.record == nb).unwrap();
        assert!(
            b.intact() && !b.resident && b.size == big.len() as u64,
            "{b:?}"
        );
        assert_eq!(b.clusters, 25);
        let s = d.iter().find(|x| x.record == ns).unwrap();
        assert!(s.intact() && s.resident && s.size == 4);
        let mut got = alloc::vec::Vec::new();
        let n = v
            .recover_data(nb, &mut |c| {
                got.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
        assert_eq!(n, big.len() as u64);
        assert_eq!(got, big);
        // A new file takes the freed clusters: the deleted one is no longer intact.
        // (The allocator moves on before it comes back: fill the volume until it does.)
        let mut reused = false;
        for i in 0..200 {
            if v.write_file(&alloc::format!("/fill{i}.bin"), &alloc::vec![0xEE; 100_000])
                .is_err()
            {
                break;
            }
            match v.deleted_file(nb) {
                Ok(b) if b.intact() => {}
                Ok(b) => {
                    assert!(b.clusters_in_use > 0 && b.clusters_in_use <= b.clusters);
                    reused = true;
                    break;
                }
                // Or the record itself was reused for a new file.
                Err(Error::NotFound) => {
                    reused = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(reused);
        // In-use records are not deleted files.
        let kept = v.lookup("/kept.txt").unwrap();
        assert!(matches!(v.deleted_file(kept), Err(Error::NotFound)));
        assert!(v.recover_data(kept, &mut |_| Ok(())).is_err());
    }

    /// The fuzz corpus seed with deleted files (written with `NTFS_WRITE_SEEDS=1`): a 2 MiB
    /// volume with a deleted resident file, a deleted non-resident file and a deleted directory.
    /// The committed seed must still hold them (the corpus replay then runs the scanner on it).
    #[test]
    fn deleted_files_corpus_seed() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/volume/ours-2m-deleted.ntfz");
        if std::env::var_os("NTFS_WRITE_SEEDS").is_some() {
            let opts = FormatOptions {
                cluster_size: 1024,
                ..Default::default()
            };
            let mut v = format(MemDevice::new(2 << 20), &opts).unwrap();
            v.create_dir_all("/gone/sub").unwrap();
            v.write_file("/gone/sub/data.bin", &[0x5a; 9000]).unwrap();
            v.write_file("/note.txt", b"resident").unwrap();
            v.remove("/gone/sub/data.bin").unwrap();
            v.remove("/gone/sub").unwrap();
            v.remove("/note.txt").unwrap();
            std::fs::write(&path, fuzz::encode_image(&v.into_device().data)).unwrap();
        }
        let img = fuzz::decode_image(&std::fs::read(&path).unwrap()).unwrap();
        let mut v = Volume::open(MemDevice::from_vec(img)).unwrap();
        let d = v.deleted_files().unwrap();
        let names: alloc::vec::Vec<_> = d.iter().map(|x| x.name.name_string()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(d.iter().any(|x| x.dir) && d.iter().all(|x| x.intact()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Damaged records (random bytes over a deleted file's record): examining them never
        /// panics, and what is found lies within the bitmap's accounting.
        #[test]
        fn damaged_records_never_panic(edits in proptest::collection::vec((0usize..1024, any::<u8>()), 0..64)) {
            let mut v = volume();
            v.write_file("/f.bin", &[5u8; 20_000]).unwrap();
            let n = v.lookup("/f.bin").unwrap();
            v.remove("/f.bin").unwrap();
            let mut raw = v.read_record_raw(n).unwrap();
            for (o, b) in edits {
                raw[o] = b;
            }
            let bm = v.cluster_bitmap().unwrap();
            if let Some(d) = crate::recover::examine_record(&raw, n, v.cluster_size(), &bm) {
                prop_assert!(d.clusters_in_use <= d.clusters);
            }
        }
    }
}
