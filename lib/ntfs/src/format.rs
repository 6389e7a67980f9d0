//! Formatting a device as NTFS 3.1 (our mkntfs): the boot sector and its
//! backup, `$MFT` (64 records), `$MFTMirr`, `$LogFile` (filled with 0xFF: an
//! empty log that Windows and ntfs-3g initialise on first mount, as mkntfs
//! leaves it), `$Volume`, `$AttrDef`, the root directory, `$Bitmap`, `$Boot`,
//! `$BadClus`, `$Secure` (one descriptor, id 0x100, in `$SDS`/`$SII`/`$SDH`),
//! `$UpCase`, and `$Extend` with `$Quota`, `$ObjId` and `$Reparse`.

use crate::attr::*;
use crate::boot::BootSector;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::index::{self, IndexEntry, RootHeader};
use crate::record::*;
use crate::runlist::Run;
use crate::upcase;
use crate::util::*;
use crate::volume::{rec, Volume, I30};
use alloc::string::String;
use alloc::vec::Vec;

/// Options for [`format`].
#[derive(Clone, Debug)]
pub struct FormatOptions {
    /// Volume label.
    pub label: String,
    /// Bytes per cluster (power of two, 512..=65536); 0 picks 4096.
    pub cluster_size: u32,
    /// Bytes per sector (512 or 4096).
    pub sector_size: u32,
    /// Bytes per MFT record (1024 or 4096).
    pub record_size: u32,
    /// Bytes per index block (4096).
    pub index_size: u32,
    /// Volume serial number; 0 derives one from `time` (as Windows'
    /// format derives it from the clock), so volumes formatted at different
    /// times get different serials.
    pub serial: u64,
    /// Sectors before the partition (the boot sector's hidden sectors field).
    pub hidden_sectors: u32,
    /// Timestamp for all system files (100 ns units since 1601).
    pub time: u64,
    /// Generate 8.3 short names for long names (`format /S:enable`). The
    /// default is off, as Windows 8 and later format data volumes; Windows
    /// setup turns it on for the system volume. Stored in `$Volume`
    /// (`$VOLUME_INFORMATION` flag 0x80 set when off).
    pub short_names: bool,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            label: String::new(),
            cluster_size: 4096,
            sector_size: 512,
            record_size: 1024,
            index_size: 4096,
            serial: 0,
            hidden_sectors: 0,
            time: crate::volume::fixed_clock(),
            short_names: false,
        }
    }
}

/// `$AttrDef` rows as Windows writes them (and mkntfs copies): name, type,
/// collation rule, flags (0x02 indexable, 0x40 always resident, 0x80 may be
/// non-resident and is logged), min size, max size (-1: no limit).
const ATTR_DEFS: &[(&str, u32, u32, u32, i64, i64)] = &[
    ("$STANDARD_INFORMATION", 0x10, 0, 0x40, 0x30, 0x48),
    ("$ATTRIBUTE_LIST", 0x20, 0, 0x80, 0, -1),
    ("$FILE_NAME", 0x30, 0, 0x42, 0x44, 0x242),
    ("$OBJECT_ID", 0x40, 0, 0x40, 0, 0x100),
    ("$SECURITY_DESCRIPTOR", 0x50, 0, 0x80, 0, -1),
    ("$VOLUME_NAME", 0x60, 0, 0x40, 2, 0x100),
    ("$VOLUME_INFORMATION", 0x70, 0, 0x40, 0xC, 0xC),
    ("$DATA", 0x80, 0, 0, 0, -1),
    ("$INDEX_ROOT", 0x90, 0, 0x40, 0, -1),
    ("$INDEX_ALLOCATION", 0xA0, 0, 0x80, 0, -1),
    ("$BITMAP", 0xB0, 0, 0x80, 0, -1),
    ("$REPARSE_POINT", 0xC0, 0, 0x80, 0, 0x4000),
    ("$EA_INFORMATION", 0xD0, 0, 0x40, 8, 8),
    ("$EA", 0xE0, 0, 0, 0, 0x10000),
    ("$LOGGED_UTILITY_STREAM", 0x100, 0, 0x80, 0, 0x10000),
];

/// The `$AttrDef` data (2560 bytes: 16 entries of 160 bytes).
pub fn attrdef_table() -> Vec<u8> {
    let mut b = alloc::vec![0u8; 2560];
    for (i, (name, ty, coll, flags, min, max)) in ATTR_DEFS.iter().enumerate() {
        let o = i * 160;
        for (j, u) in name.encode_utf16().enumerate() {
            put16(&mut b, o + 2 * j, u);
        }
        put32(&mut b, o + 128, *ty);
        put32(&mut b, o + 136, *coll);
        put32(&mut b, o + 140, *flags);
        put64(&mut b, o + 144, *min as u64);
        put64(&mut b, o + 152, *max as u64);
    }
    b
}

/// The default security descriptor (id 0x100): owner and group
/// Administrators, DACL granting full access to SYSTEM and Administrators
/// and read/execute to Everyone, inheritable (OI|CI).
pub fn default_security_descriptor() -> Vec<u8> {
    fn sid(auth: u8, subs: &[u32]) -> Vec<u8> {
        let mut s = alloc::vec![1u8, subs.len() as u8, 0, 0, 0, 0, 0, auth];
        for x in subs {
            s.extend_from_slice(&x.to_le_bytes());
        }
        s
    }
    let sy = sid(5, &[18]);
    let ba = sid(5, &[32, 544]);
    let wd = sid(1, &[0]);
    let mut aces = Vec::new();
    for (mask, s) in [
        (0x001F_01FFu32, &sy),
        (0x001F_01FF, &ba),
        (0x0012_00A9, &wd),
    ] {
        aces.push(0u8); // ACCESS_ALLOWED_ACE_TYPE
        aces.push(0x03); // OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE
        aces.extend_from_slice(&((8 + s.len()) as u16).to_le_bytes());
        aces.extend_from_slice(&mask.to_le_bytes());
        aces.extend_from_slice(s);
    }
    let mut acl = alloc::vec![2u8, 0];
    acl.extend_from_slice(&((8 + aces.len()) as u16).to_le_bytes());
    acl.extend_from_slice(&3u16.to_le_bytes());
    acl.extend_from_slice(&[0, 0]);
    acl.extend_from_slice(&aces);
    let mut sd = alloc::vec![0u8; 20];
    sd[0] = 1;
    put16(&mut sd, 2, 0x8004); // SE_SELF_RELATIVE | SE_DACL_PRESENT
    let owner = sd.len();
    sd.extend_from_slice(&ba);
    let group = sd.len();
    sd.extend_from_slice(&ba);
    let dacl = sd.len();
    sd.extend_from_slice(&acl);
    put32(&mut sd, 4, owner as u32);
    put32(&mut sd, 8, group as u32);
    put32(&mut sd, 16, dacl as u32);
    sd
}

/// The `$SDH` hash of a security descriptor.
pub fn sd_hash(sd: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for c in sd.chunks_exact(4) {
        h = h
            .rotate_left(3)
            .wrapping_add(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    }
    h
}

struct Layout {
    cs: u64,
    next: u64,
    total: u64,
    bitmap: Vec<u8>,
}

impl Layout {
    fn take(&mut self, at: u64, n: u64) -> Result<u64> {
        if at.checked_add(n).is_none_or(|e| e > self.total) {
            return Err(Error::InvalidParameter("device too small for NTFS"));
        }
        for c in at..at + n {
            self.bitmap[(c / 8) as usize] |= 1 << (c % 8);
        }
        Ok(at)
    }
    fn bump(&mut self, bytes: u64) -> Result<(u64, u64)> {
        let n = bytes.div_ceil(self.cs).max(1);
        let at = self.next;
        self.take(at, n)?;
        self.next += n;
        Ok((at, n))
    }
}

fn nonres(
    ty: u32,
    name: &[u16],
    lcn: Option<u64>,
    clusters: u64,
    size: u64,
    init: u64,
    cs: u64,
) -> Attr {
    let runs = if clusters == 0 {
        Vec::new()
    } else {
        alloc::vec![Run {
            vcn: 0,
            len: clusters,
            lcn
        }]
    };
    Attr {
        ty,
        name: name.to_vec(),
        flags: 0,
        instance: 0,
        body: Body::NonResident(NonResident {
            start_vcn: 0,
            last_vcn: clusters.wrapping_sub(1),
            runs,
            compression_unit: 0,
            allocated_size: clusters * cs,
            data_size: size,
            initialized_size: init,
            compressed_size: None,
        }),
    }
}

fn u16s(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// Formats `dev` as NTFS and returns it mounted.
pub fn format<D: BlockDevice>(mut dev: D, o: &FormatOptions) -> Result<Volume<D>> {
    let bps = o.sector_size as u64;
    let cs = if o.cluster_size == 0 {
        4096
    } else {
        o.cluster_size
    } as u64;
    if !(bps == 512 || bps == 1024 || bps == 2048 || bps == 4096) {
        return Err(Error::InvalidParameter("sector size"));
    }
    if !cs.is_power_of_two() || cs < bps || cs > 65536 {
        return Err(Error::InvalidParameter("cluster size"));
    }
    let rs = o.record_size as u64;
    if !(rs == 1024 || rs == 4096) || rs < bps {
        return Err(Error::InvalidParameter("record size"));
    }
    let ibs = o.index_size as u64;
    if !ibs.is_power_of_two() || !(512..=65536).contains(&ibs) || ibs < bps {
        return Err(Error::InvalidParameter("index block size"));
    }
    if o.label.encode_utf16().count() > 128 {
        return Err(Error::InvalidParameter("label longer than 128 characters"));
    }
    let size = dev.size();
    let sectors = size / bps;
    if sectors < 2 {
        return Err(Error::InvalidParameter("device too small for NTFS"));
    }
    let total_sectors = sectors - 1;
    let total = total_sectors / (cs / bps);
    if total * cs < 1024 * 1024 {
        return Err(Error::InvalidParameter(
            "device too small for NTFS (1 MiB minimum)",
        ));
    }
    let t = o.time;
    let bitmap_bytes = total.div_ceil(64) * 8;
    let mut lay = Layout {
        cs,
        next: 0,
        total,
        bitmap: alloc::vec![0u8; bitmap_bytes as usize],
    };
    // Bits past the end of the volume are set.
    for c in total..bitmap_bytes * 8 {
        lay.bitmap[(c / 8) as usize] |= 1 << (c % 8);
    }
    let boot_cl = 8192u64.div_ceil(cs);
    lay.take(0, boot_cl)?;
    let mftbmp_lcn = lay.take(boot_cl, 1)?;
    let mft_lcn = core::cmp::max(boot_cl + 1, 16384u64.div_ceil(cs));
    let mft_records = 64u64;
    let mft_cl = (mft_records * rs).div_ceil(cs);
    lay.take(mft_lcn, mft_cl)?;
    let zone_end = mft_lcn + mft_cl + total / 8;
    let log_size = ((size / 32).clamp(256 * 1024, 64 * 1024 * 1024)).div_ceil(cs) * cs;
    lay.next = zone_end;
    let need_rest = log_size + 4096 + bitmap_bytes + 131072 + 0x40000 + 8 * cs + 8192;
    if lay.next.saturating_add(need_rest.div_ceil(cs)) > total {
        lay.next = mft_lcn + mft_cl;
    }
    let (log_lcn, log_cl) = lay.bump(log_size)?;
    let (ad_lcn, ad_cl) = lay.bump(2560)?;
    let (bm_lcn, bm_cl) = lay.bump(bitmap_bytes)?;
    let (up_lcn, up_cl) = lay.bump(131072)?;
    let sd = default_security_descriptor();
    let sd_hash_v = sd_hash(&sd);
    let sds_entry = 20 + sd.len() as u64;
    let sds_size = 0x40000 + sds_entry;
    let (sds_lcn, sds_cl) = lay.bump(sds_size)?;
    let mirr_bytes = 4 * rs;
    let mirr_cl = mirr_bytes.div_ceil(cs);
    let mirr_lcn = core::cmp::max(total / 2, lay.next);
    lay.take(mirr_lcn, mirr_cl)?;

    let serial = if o.serial != 0 {
        o.serial
    } else {
        volume_serial(o.time, size)
    };
    let boot = BootSector {
        bytes_per_sector: bps as u32,
        cluster_size: cs as u32,
        total_sectors,
        mft_lcn,
        mftmirr_lcn: mirr_lcn,
        record_size: rs as u32,
        index_record_size: ibs as u32,
        serial,
        hidden_sectors: o.hidden_sectors,
    };
    let bs = boot.build();
    let mut boot_area = alloc::vec![0u8; (boot_cl * cs) as usize];
    boot_area[..512].copy_from_slice(&bs);
    dev.write_at(0, &boot_area)?;
    dev.write_at(total_sectors * bps, &bs)?;

    // Data of the system files.
    let mut log = alloc::vec![0xFFu8; (1 << 20).min(log_size) as usize];
    let rp = restart_page(log_size)?;
    log[..rp.len()].copy_from_slice(&rp);
    log[rp.len()..2 * rp.len()].copy_from_slice(&rp);
    let mut off = 0;
    while off < log_size {
        let k = core::cmp::min(log.len() as u64, log_size - off);
        dev.write_at(log_lcn * cs + off, &log[..k as usize])?;
        off += k;
        if off == k {
            // Only the first chunk carries the restart pages.
            log.fill(0xFF);
        }
    }
    log.clear();
    let mut ad = attrdef_table();
    ad.resize((ad_cl * cs) as usize, 0);
    dev.write_at(ad_lcn * cs, &ad)?;
    let up: Vec<u8> = upcase::default_table()
        .iter()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    dev.write_at(up_lcn * cs, &up)?;
    let mut sds = alloc::vec![0u8; (sds_cl * cs) as usize];
    let mut hdr = [0u8; 20];
    put32(&mut hdr, 0, sd_hash_v);
    put32(&mut hdr, 4, 0x100);
    put64(&mut hdr, 8, 0);
    put32(&mut hdr, 16, sds_entry as u32);
    for base in [0usize, 0x40000] {
        sds[base..base + 20].copy_from_slice(&hdr);
        sds[base + 20..base + 20 + sd.len()].copy_from_slice(&sd);
    }
    // The mirror copy's header records its primary's offset.
    dev.write_at(sds_lcn * cs, &sds)?;
    // Records 0-15 (system files and reserved) and 24-26 ($Extend's files)
    // are in use; 16-23, kept for MFT extension records, are free, as
    // Windows leaves them.
    let mut mftbmp = alloc::vec![0u8; cs as usize];
    for n in (0..16u64).chain(24..27) {
        mftbmp[(n / 8) as usize] |= 1 << (n % 8);
    }
    dev.write_at(mftbmp_lcn * cs, &mftbmp)?;
    // Zero the MFT and the mirror.
    dev.write_at(mft_lcn * cs, &alloc::vec![0u8; (mft_cl * cs) as usize])?;
    dev.write_at(mirr_lcn * cs, &alloc::vec![0u8; (mirr_cl * cs) as usize])?;

    let root_ref = make_ref(rec::ROOT, rec::ROOT as u16);
    let ext_ref = make_ref(rec::EXTEND, rec::EXTEND as u16);
    let mk = |n: u64,
              seq: u16,
              name: &str,
              parent: u64,
              fattr: u32,
              size: u64,
              alloc: u64|
     -> (Record, FileName) {
        let mut r = Record::new(n, seq);
        r.link_count = 1;
        let si = StandardInformation {
            creation: t,
            modification: t,
            mft_change: t,
            access: t,
            file_attributes: fattr & !FILE_ATTR_DUP_FILE_NAME_INDEX_PRESENT,
            security_id: 0x100,
            ..Default::default()
        };
        r.add(Attr::resident(AT_STANDARD_INFORMATION, &[], si.build()));
        let f = FileName {
            parent,
            creation: t,
            modification: t,
            mft_change: t,
            access: t,
            allocated_size: alloc,
            data_size: size,
            flags: fattr,
            reparse: 0,
            namespace: NS_WIN32_AND_DOS,
            name: u16s(name),
        };
        r.add(Attr::resident(AT_FILE_NAME, &[], f.build()));
        (r, f)
    };
    let hs = FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM;
    let mut records: Vec<Record> = Vec::new();
    let mut root_names: Vec<(u64, FileName)> = Vec::new();
    let mut ext_names: Vec<(u64, FileName)> = Vec::new();
    let i30h = RootHeader {
        ty: AT_FILE_NAME,
        collation: index::COLLATION_FILE_NAME,
        block_size: ibs as u32,
        clusters_per_block: if ibs >= cs {
            (ibs / cs) as u8
        } else {
            (ibs / 512) as u8
        },
    };
    let view = |coll: u32| RootHeader {
        ty: 0,
        collation: coll,
        block_size: ibs as u32,
        clusters_per_block: i30h.clusters_per_block,
    };

    // 0 $MFT
    let (mut r, f) = mk(0, 1, "$MFT", root_ref, hs, mft_records * rs, mft_cl * cs);
    r.add(nonres(
        AT_DATA,
        &[],
        Some(mft_lcn),
        mft_cl,
        mft_records * rs,
        mft_records * rs,
        cs,
    ));
    r.add(nonres(AT_BITMAP, &[], Some(mftbmp_lcn), 1, 8, 8, cs));
    root_names.push((make_ref(0, 1), f));
    records.push(r);
    // 1 $MFTMirr
    let (mut r, f) = mk(1, 1, "$MFTMirr", root_ref, hs, mirr_bytes, mirr_cl * cs);
    r.add(nonres(
        AT_DATA,
        &[],
        Some(mirr_lcn),
        mirr_cl,
        mirr_bytes,
        mirr_bytes,
        cs,
    ));
    root_names.push((make_ref(1, 1), f));
    records.push(r);
    // 2 $LogFile
    let (mut r, f) = mk(2, 2, "$LogFile", root_ref, hs, log_size, log_cl * cs);
    r.add(nonres(
        AT_DATA,
        &[],
        Some(log_lcn),
        log_cl,
        log_size,
        log_size,
        cs,
    ));
    root_names.push((make_ref(2, 2), f));
    records.push(r);
    // 3 $Volume
    let (mut r, f) = mk(3, 3, "$Volume", root_ref, hs, 0, 0);
    let label: Vec<u8> = o
        .label
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    r.add(Attr::resident(
        AT_SECURITY_DESCRIPTOR,
        &[],
        volume_security_descriptor(),
    ));
    r.add(Attr::resident(AT_VOLUME_NAME, &[], label));
    let mut vi = alloc::vec![0u8; 12];
    vi[8] = 3;
    vi[9] = 1;
    if !o.short_names {
        put16(&mut vi, 10, VOLUME_DISABLE_SHORT_NAMES);
    }
    r.add(Attr::resident(AT_VOLUME_INFORMATION, &[], vi));
    r.add(Attr::resident(AT_DATA, &[], Vec::new()));
    root_names.push((make_ref(3, 3), f));
    records.push(r);
    // 4 $AttrDef
    let (mut r, f) = mk(4, 4, "$AttrDef", root_ref, hs, 2560, ad_cl * cs);
    r.add(nonres(AT_DATA, &[], Some(ad_lcn), ad_cl, 2560, 2560, cs));
    root_names.push((make_ref(4, 4), f));
    records.push(r);
    // 5 root
    let (mut r, f) = mk(
        5,
        5,
        ".",
        root_ref,
        hs | FILE_ATTR_DUP_FILE_NAME_INDEX_PRESENT,
        0,
        0,
    );
    r.flags |= MFT_RECORD_IS_DIRECTORY;
    r.add(Attr::resident(
        AT_INDEX_ROOT,
        &I30,
        index::build_root(&i30h, &[IndexEntry::end(None)]),
    ));
    root_names.push((make_ref(5, 5), f));
    records.push(r);
    // 6 $Bitmap
    let (mut r, f) = mk(6, 6, "$Bitmap", root_ref, hs, bitmap_bytes, bm_cl * cs);
    r.add(nonres(
        AT_DATA,
        &[],
        Some(bm_lcn),
        bm_cl,
        bitmap_bytes,
        bitmap_bytes,
        cs,
    ));
    root_names.push((make_ref(6, 6), f));
    records.push(r);
    // 7 $Boot
    let (mut r, f) = mk(7, 7, "$Boot", root_ref, hs, boot_cl * cs, boot_cl * cs);
    r.add(nonres(
        AT_DATA,
        &[],
        Some(0),
        boot_cl,
        boot_cl * cs,
        boot_cl * cs,
        cs,
    ));
    root_names.push((make_ref(7, 7), f));
    records.push(r);
    // 8 $BadClus
    let (mut r, f) = mk(8, 8, "$BadClus", root_ref, hs, 0, 0);
    r.add(Attr::resident(AT_DATA, &[], Vec::new()));
    r.add(nonres(
        AT_DATA,
        &u16s("$Bad"),
        None,
        total,
        total * cs,
        0,
        cs,
    ));
    root_names.push((make_ref(8, 8), f));
    records.push(r);
    // 9 $Secure
    let (mut r, f) = mk(
        9,
        9,
        "$Secure",
        root_ref,
        hs | FILE_ATTR_DUP_VIEW_INDEX_PRESENT,
        0,
        0,
    );
    r.flags |= MFT_RECORD_IS_VIEW_INDEX;
    r.add(nonres(
        AT_DATA,
        &u16s("$SDS"),
        Some(sds_lcn),
        sds_cl,
        sds_size,
        sds_size,
        cs,
    ));
    let sdh_e = IndexEntry {
        fref: 0,
        key: [sd_hash_v.to_le_bytes(), 0x100u32.to_le_bytes()].concat(),
        data: hdr.to_vec(),
        child: None,
        last: false,
    };
    let sii_e = IndexEntry {
        fref: 0,
        key: 0x100u32.to_le_bytes().to_vec(),
        data: hdr.to_vec(),
        child: None,
        last: false,
    };
    r.add(Attr::resident(
        AT_INDEX_ROOT,
        &u16s("$SDH"),
        index::build_root(
            &view(index::COLLATION_NTOFS_SECURITY_HASH),
            &[sdh_e, IndexEntry::end(None)],
        ),
    ));
    r.add(Attr::resident(
        AT_INDEX_ROOT,
        &u16s("$SII"),
        index::build_root(
            &view(index::COLLATION_NTOFS_ULONG),
            &[sii_e, IndexEntry::end(None)],
        ),
    ));
    root_names.push((make_ref(9, 9), f));
    records.push(r);
    // 10 $UpCase
    let (mut r, f) = mk(10, 10, "$UpCase", root_ref, hs, 131072, up_cl * cs);
    r.add(nonres(
        AT_DATA,
        &[],
        Some(up_lcn),
        up_cl,
        131072,
        131072,
        cs,
    ));
    r.add(Attr::resident(AT_DATA, &u16s("$Info"), upcase_info(&up)));
    root_names.push((make_ref(10, 10), f));
    records.push(r);
    // 11 $Extend
    let (mut r, f) = mk(
        11,
        11,
        "$Extend",
        root_ref,
        hs | FILE_ATTR_DUP_FILE_NAME_INDEX_PRESENT,
        0,
        0,
    );
    r.flags |= MFT_RECORD_IS_DIRECTORY;
    r.add(Attr::resident(
        AT_INDEX_ROOT,
        &I30,
        index::build_root(&i30h, &[IndexEntry::end(None)]),
    ));
    root_names.push((make_ref(11, 11), f));
    records.push(r);
    // 12..15: reserved, in use, no names.
    for n in 12..16u64 {
        let (mut r, _) = mk(n, n as u16, "x", root_ref, hs, 0, 0);
        r.attrs.retain(|a| a.ty != AT_FILE_NAME);
        r.link_count = 0;
        r.add(Attr::resident(AT_DATA, &[], Vec::new()));
        records.push(r);
    }
    // 16..23: reserved for MFT extension records, formatted, not in use.
    for n in 16..24u64 {
        let mut r = Record::new(n, n as u16);
        r.flags = 0;
        records.push(r);
    }
    // 24 $Quota, 25 $ObjId, 26 $Reparse.
    let ve = hs | FILE_ATTRIBUTE_ARCHIVE | FILE_ATTR_DUP_VIEW_INDEX_PRESENT;
    let (mut r, f) = mk(24, 1, "$Quota", ext_ref, ve, 0, 0);
    r.flags |= MFT_RECORD_IS_4 | MFT_RECORD_IS_VIEW_INDEX;
    r.add(Attr::resident(
        AT_INDEX_ROOT,
        &u16s("$O"),
        index::build_root(
            &view(index::COLLATION_NTOFS_SID),
            &[quota_owner_entry(), IndexEntry::end(None)],
        ),
    ));
    r.add(Attr::resident(
        AT_INDEX_ROOT,
        &u16s("$Q"),
        index::build_root(
            &view(index::COLLATION_NTOFS_ULONG),
            &[
                quota_entry(QUOTA_DEFAULTS_ID, t, None),
                quota_entry(QUOTA_FIRST_USER_ID, t, Some(&administrators_sid())),
                IndexEntry::end(None),
            ],
        ),
    ));
    ext_names.push((make_ref(24, 1), f));
    records.push(r);
    let (mut r, f) = mk(25, 1, "$ObjId", ext_ref, ve, 0, 0);
    r.flags |= MFT_RECORD_IS_4 | MFT_RECORD_IS_VIEW_INDEX;
    r.add(Attr::resident(
        AT_INDEX_ROOT,
        &u16s("$O"),
        index::build_root(
            &view(index::COLLATION_NTOFS_ULONGS),
            &[IndexEntry::end(None)],
        ),
    ));
    ext_names.push((make_ref(25, 1), f));
    records.push(r);
    let (mut r, f) = mk(26, 1, "$Reparse", ext_ref, ve, 0, 0);
    r.flags |= MFT_RECORD_IS_4 | MFT_RECORD_IS_VIEW_INDEX;
    r.add(Attr::resident(
        AT_INDEX_ROOT,
        &u16s("$R"),
        index::build_root(
            &view(index::COLLATION_NTOFS_ULONGS),
            &[IndexEntry::end(None)],
        ),
    ));
    ext_names.push((make_ref(26, 1), f));
    records.push(r);
    // Free records 27..63: formatted, not in use.
    for n in 27..mft_records {
        let mut r = Record::new(n, 1);
        r.flags = 0;
        records.push(r);
    }
    // $Bitmap contents are final now (index blocks allocate through the volume).
    let mut bmd = lay.bitmap.clone();
    bmd.resize((bm_cl * cs) as usize, 0);
    dev.write_at(bm_lcn * cs, &bmd)?;
    for r in &records {
        let mut b = r.build(rs as usize)?;
        fixup(&mut b)?;
        dev.write_at(mft_lcn * cs + r.number * rs, &b)?;
        if r.number < 4 {
            dev.write_at(mirr_lcn * cs + r.number * rs, &b)?;
        }
    }
    dev.flush()?;
    let mut v = Volume::open(dev)?;
    for (fref, f) in root_names {
        let e = IndexEntry {
            fref,
            key: f.build(),
            data: Vec::new(),
            child: None,
            last: false,
        };
        v.i30_insert(rec::ROOT, e)?;
    }
    for (fref, f) in ext_names {
        let e = IndexEntry {
            fref,
            key: f.build(),
            data: Vec::new(),
            child: None,
            last: false,
        };
        v.i30_insert(rec::EXTEND, e)?;
    }
    v.flush()?;
    Ok(v)
}

/// A volume serial number from the format time and the volume size
/// (splitmix64 of both).
pub fn volume_serial(time: u64, size: u64) -> u64 {
    let mut z = time ^ size.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sid(auth: u8, subs: &[u32]) -> Vec<u8> {
    let mut s = alloc::vec![1u8, subs.len() as u8, 0, 0, 0, 0, 0, auth];
    for x in subs {
        s.extend_from_slice(&x.to_le_bytes());
    }
    s
}

/// S-1-5-32-544 (BUILTIN\Administrators).
pub fn administrators_sid() -> Vec<u8> {
    sid(5, &[32, 544])
}

/// The `$SECURITY_DESCRIPTOR` Windows gives `$Volume`: owner SYSTEM, group
/// Administrators, DACL allowing SYSTEM and Administrators 0x0012019F
/// (read, write, synchronize).
pub fn volume_security_descriptor() -> Vec<u8> {
    let sy = sid(5, &[18]);
    let ba = administrators_sid();
    let mut aces = Vec::new();
    for s in [&sy, &ba] {
        aces.extend_from_slice(&[0, 0]); // ACCESS_ALLOWED_ACE_TYPE, no flags
        aces.extend_from_slice(&((8 + s.len()) as u16).to_le_bytes());
        aces.extend_from_slice(&0x0012_019Fu32.to_le_bytes());
        aces.extend_from_slice(s);
    }
    let mut sd = alloc::vec![0u8; 20];
    sd[0] = 1;
    put16(&mut sd, 2, 0x8004); // SE_SELF_RELATIVE | SE_DACL_PRESENT
    put32(&mut sd, 16, 20); // DACL right after the header
    sd.extend_from_slice(&[2, 0]);
    sd.extend_from_slice(&((8 + aces.len()) as u16).to_le_bytes());
    sd.extend_from_slice(&2u16.to_le_bytes());
    sd.extend_from_slice(&[0, 0]);
    sd.extend_from_slice(&aces);
    let owner = sd.len();
    sd.extend_from_slice(&sy);
    let group = sd.len();
    sd.extend_from_slice(&ba);
    put32(&mut sd, 4, owner as u32);
    put32(&mut sd, 8, group as u32);
    sd
}

/// CRC-64 as `$UpCase:$Info` uses it: the Jones polynomial, reflected
/// (0x9A6C9329AC4BC9B5), initial value and final xor all ones.
pub fn crc64(data: &[u8]) -> u64 {
    let mut c = u64::MAX;
    for &b in data {
        c ^= b as u64;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x9A6C_9329_AC4B_C9B5
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The `$UpCase:$Info` stream Windows 8 and later write (32 bytes): its
/// length, a reserved ULONG, the CRC-64 of the `$UpCase` data, then the
/// version of the system that wrote the table (major, minor, build,
/// service pack major/minor). Left 0, as mkntfs leaves them: no Windows
/// version wrote it.
pub fn upcase_info(upcase: &[u8]) -> Vec<u8> {
    let mut b = alloc::vec![0u8; 32];
    put32(&mut b, 0, 32);
    put64(&mut b, 8, crc64(upcase));
    b
}

/// `$Quota:$Q` owner id of the defaults entry.
pub const QUOTA_DEFAULTS_ID: u32 = 1;
/// `$Quota:$Q` first owner id given to a SID (Administrators at format).
pub const QUOTA_FIRST_USER_ID: u32 = 0x100;

/// A `$Quota:$Q` entry (key: owner id; data: QUOTA_CONTROL_ENTRY version 2,
/// flags 1 = default limits, bytes used 0, change time, threshold and limit
/// -1 (none), exceeded time 0, then the owner's SID, none for the defaults).
fn quota_entry(id: u32, time: u64, sid: Option<&[u8]>) -> IndexEntry {
    let mut d = alloc::vec![0u8; 48];
    put32(&mut d, 0, 2);
    put32(&mut d, 4, 1);
    put64(&mut d, 16, time);
    put64(&mut d, 24, u64::MAX);
    put64(&mut d, 32, u64::MAX);
    if let Some(s) = sid {
        d.extend_from_slice(s);
    }
    IndexEntry {
        fref: 0,
        key: id.to_le_bytes().to_vec(),
        data: d,
        child: None,
        last: false,
    }
}

/// The `$Quota:$O` entry mapping Administrators' SID to owner id 0x100.
fn quota_owner_entry() -> IndexEntry {
    IndexEntry {
        fref: 0,
        key: administrators_sid(),
        data: QUOTA_FIRST_USER_ID.to_le_bytes().to_vec(),
        child: None,
        last: false,
    }
}

/// LFS page size used for `$LogFile` restart and log record pages.
pub const LOG_PAGE_SIZE: usize = 4096;
/// Restart area flag: the volume was cleanly dismounted.
pub const RESTART_VOLUME_IS_CLEAN: u16 = 0x0002;

/// One `$LogFile` restart page ("RSTR", LFS version 1.1) with a restart
/// area saying the volume is clean and one client, "NTFS", whose log is
/// empty. Both restart pages of a freshly formatted volume carry it; the
/// log record pages after them are all 0xFF (never written). Built by the
/// log file service ([`crate::log::write::empty_restart_page`]).
pub fn restart_page(log_size: u64) -> Result<Vec<u8>> {
    crate::log::write::empty_restart_page(log_size)
}
