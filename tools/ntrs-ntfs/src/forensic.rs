//! `recover` (deleted files) and `secaudit` (`$Secure`): the reading is `ntfs::recover` and
//! `ntfs::sds` (host-tested there); this file chooses, checks and prints.

use std::collections::BTreeMap;
use std::io::Write;

use ntfs::attr::{
    mft_no, FileName, StandardInformation, AT_FILE_NAME, AT_STANDARD_INFORMATION, NS_DOS,
};
use ntfs::recover::DeletedFile;
use ntfs::{BlockDevice, Volume};

use crate::{io_fail, ntfs_msg, short_time, Fail};

/// The path of a name whose parent is `parent`, `\` separated: parents are followed while their
/// records are directories in use with the sequence number the reference expects; otherwise the
/// path starts with `?` (the parent was deleted or reused).
pub fn path_of<D: BlockDevice>(v: &mut Volume<D>, name: &str, parent: u64) -> String {
    let mut parts = vec![name.to_string()];
    let mut cur = parent;
    for _ in 0..256 {
        let pn = mft_no(cur);
        if pn == 5 {
            parts.reverse();
            return format!("\\{}", parts.join("\\"));
        }
        let Ok(r) = v.read_record(pn) else { break };
        if !r.in_use() || r.seq as u64 != cur >> 48 {
            break;
        }
        let Some(f) = r
            .attrs
            .iter()
            .filter(|a| a.ty == AT_FILE_NAME)
            .filter_map(|a| a.value().and_then(|b| FileName::parse(b).ok()))
            .find(|f| f.namespace != NS_DOS)
        else {
            break;
        };
        parts.push(f.name_string());
        cur = f.parent;
    }
    parts.reverse();
    format!("?\\{}", parts.join("\\"))
}

fn state(d: &DeletedFile) -> String {
    match d.unreadable {
        Some(why) => format!("unreadable: {why}"),
        None if d.clusters_in_use > 0 => format!(
            "{} of {} clusters reallocated",
            d.clusters_in_use, d.clusters
        ),
        None => "intact".to_string(),
    }
}

/// `recover --list`, or `recover TARGET -o FILE`.
pub fn recover<D: BlockDevice>(
    v: &mut Volume<D>,
    target: Option<&str>,
    output: Option<&str>,
    list: bool,
    force: bool,
    out: &mut impl Write,
) -> Result<(), Fail> {
    let e = ntfs_msg;
    let deleted = v.deleted_files().map_err(e)?;
    let mut rows = Vec::new();
    for d in deleted {
        let p = path_of(v, &d.name.name_string(), d.name.parent);
        rows.push((d, p));
    }
    if list || target.is_none() {
        outln!(
            out,
            "record  seq         size  modified             state  path"
        );
        for (d, p) in &rows {
            let m = d
                .std_info
                .as_ref()
                .map(|s| s.modification)
                .unwrap_or(d.name.modification);
            outln!(
                out,
                "{:>6} {:>4} {:>12}  {}  {}{}  {}",
                d.record,
                d.seq,
                d.size,
                short_time(m),
                state(d),
                if d.dir { " (directory)" } else { "" },
                p
            );
        }
        if target.is_none() && !list {
            return Err(
                "recover: name a record number or a deleted file (see --list), with -o FILE".into(),
            );
        }
        return Ok(());
    }
    let t = target.unwrap_or_default();
    let picked: Vec<&(DeletedFile, String)> = match t.parse::<u64>() {
        Ok(n) => rows.iter().filter(|(d, _)| d.record == n).collect(),
        Err(_) => {
            let mut want = t.trim_start_matches(':').replace('/', "\\").to_lowercase();
            if !want.starts_with(['\\', '?']) {
                want.insert(0, '\\');
            }
            let full = rows
                .iter()
                .filter(|(_, p)| p.to_lowercase() == want)
                .collect::<Vec<_>>();
            if full.is_empty() {
                rows.iter()
                    .filter(|(d, _)| {
                        d.name.name_string().to_lowercase() == want.trim_start_matches('\\')
                    })
                    .collect()
            } else {
                full
            }
        }
    };
    let (d, p) = match picked[..] {
        [one] => one,
        [] => {
            return Err(format!(
                "recover: {t}: no deleted file record with that number or name (recover --list shows them)"
            )
            .into())
        }
        ref many => {
            let recs: Vec<String> = many.iter().map(|(d, _)| d.record.to_string()).collect();
            return Err(format!(
                "recover: {t} names {} deleted records ({}): give the record number",
                many.len(),
                recs.join(", ")
            )
            .into());
        }
    };
    if d.dir {
        return Err(format!(
            "recover: record {} ({p}) was a directory: nothing to copy",
            d.record
        )
        .into());
    }
    if let Some(why) = d.unreadable {
        return Err(format!("recover: record {} ({p}): {why}", d.record).into());
    }
    if d.clusters_in_use > 0 && !force {
        return Err(format!(
            "recover: record {} ({p}): {} of its {} clusters are now allocated per $Bitmap (reused by other files, the content may be overwritten); --force copies them anyway",
            d.record, d.clusters_in_use, d.clusters
        )
        .into());
    }
    let Some(path) = output else {
        return Err("recover: -o FILE (or -o - for standard output) is needed".into());
    };
    let record = d.record;
    let note = if d.resident {
        "resident in the MFT record".to_string()
    } else if d.clusters_in_use == 0 {
        format!("{} clusters, none reallocated per $Bitmap", d.clusters)
    } else {
        format!(
            "{} clusters, {} of them reallocated per $Bitmap: copied anyway (--force)",
            d.clusters, d.clusters_in_use
        )
    };
    let p = p.clone();
    let n = if path == "-" {
        let r = v.recover_data(record, &mut |c| out.write_all(c).map_err(|x| x.to_string()));
        r.map_err(|m| Fail::Msg(format!("recover: record {record}: {m}")))?
    } else {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|x| format!("recover: {path}: {x}"))?;
        let n = v
            .recover_data(record, &mut |c| {
                f.write_all(c).map_err(|x| format!("{path}: {x}"))
            })
            .map_err(|m| Fail::Msg(format!("recover: record {record}: {m}")))?;
        f.sync_all().map_err(|x| format!("recover: {path}: {x}"))?;
        n
    };
    let msg = format!("recovered record {record} ({p}): {n} bytes ({note})");
    if path == "-" {
        eprintln!("ntrs-ntfs: {msg}");
    } else {
        outln!(out, "{msg}");
    }
    Ok(())
}

/// `secaudit`: every `$SDS` descriptor with its id, hash (checked), offset, mirror and index
/// state, as SDDL, and the files whose `$STANDARD_INFORMATION` names its id.
pub fn secaudit<D: BlockDevice>(
    v: &mut Volume<D>,
    all_files: bool,
    out: &mut impl Write,
) -> Result<(), Fail> {
    let e = ntfs_msg;
    let a = v.secure_audit().map_err(e)?;
    let mut problems = a.problems.clone();
    // Files by security id (in-use base records).
    let mut users: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for n in 0..v.mft_records() {
        let Ok(r) = v.read_record(n) else { continue };
        if !r.in_use() || r.base != 0 {
            continue;
        }
        let si = r
            .find(AT_STANDARD_INFORMATION, &[])
            .and_then(|x| x.value())
            .and_then(|b| StandardInformation::parse(b).ok());
        let Some(si) = si else { continue };
        if si.security_id == 0 {
            continue;
        }
        let name = r
            .attrs
            .iter()
            .filter(|x| x.ty == AT_FILE_NAME)
            .filter_map(|x| x.value().and_then(|b| FileName::parse(b).ok()))
            .find(|f| f.namespace != NS_DOS);
        let p = match (n, name) {
            (5, _) => "\\".to_string(),
            (_, Some(f)) => path_of(v, &f.name_string(), f.parent),
            (_, None) => "(no name)".to_string(),
        };
        users.entry(si.security_id).or_default().push((n, p));
    }
    let mut ids = std::collections::BTreeSet::new();
    outln!(
        out,
        "$Secure: {} descriptors in $SDS, {} $SII entries, {} $SDH entries",
        a.entries.len(),
        a.sii.len(),
        a.sdh.len()
    );
    for x in &a.entries {
        if !ids.insert(x.id) {
            problems.push(format!(
                "$SDS {:#x}: security id {:#x} appears twice",
                x.offset, x.id
            ));
        }
        let sii = a.sii.iter().find(|s| s.id == x.id);
        let sdh = a.sdh.iter().find(|s| s.id == x.id && s.hash == x.hash);
        let ix = |s: Option<&ntfs::sds::SecureIndexEntry>| match s {
            Some(s) if s.offset == x.offset && s.length == x.length && s.hash == x.hash => "ok",
            Some(_) => "differs",
            None => "missing",
        };
        let (si, sh) = (ix(sii), ix(sdh));
        outln!(
            out,
            "\nid {:#x} hash {:#010x} ({}) offset {:#x} length {:#x} mirror {} $SII {} $SDH {}",
            x.id,
            x.hash,
            if x.hash_ok { "ok" } else { "WRONG" },
            x.offset,
            x.length,
            match x.mirror_ok {
                Some(true) => "ok",
                Some(false) => "DIFFERS",
                None => "beyond the stream",
            },
            si,
            sh
        );
        if !x.hash_ok {
            problems.push(format!(
                "id {:#x}: the recorded hash is not the descriptor's",
                x.id
            ));
        }
        if x.mirror_ok == Some(false) {
            problems.push(format!("id {:#x}: the mirror copy differs", x.id));
        }
        if si != "ok" || sh != "ok" {
            problems.push(format!("id {:#x}: $SII {si}, $SDH {sh}", x.id));
        }
        match security::sd::SecurityDescriptor::parse(&x.sd)
            .and_then(|d| security::sddl::format(&d))
        {
            Ok(s) => outln!(out, "  {s}"),
            Err(st) => outln!(
                out,
                "  (descriptor of {} bytes not parsed: {st})",
                x.sd.len()
            ),
        }
        let u = users.get(&x.id).map(Vec::as_slice).unwrap_or(&[]);
        let shown = if all_files { u.len() } else { u.len().min(10) };
        outln!(out, "  used by {} file(s)", u.len());
        for (n, p) in &u[..shown] {
            outln!(out, "    {p} (record {n})");
        }
        if shown < u.len() {
            outln!(
                out,
                "    ... and {} more (--all-files lists them)",
                u.len() - shown
            );
        }
    }
    for s in &a.sii {
        if !ids.contains(&s.id) {
            problems.push(format!("$SII: id {:#x} has no $SDS entry", s.id));
        }
    }
    for (id, u) in &users {
        if !ids.contains(id) {
            problems.push(format!(
                "{} file(s) use security id {id:#x}, which $SDS does not hold (e.g. {})",
                u.len(),
                u[0].1
            ));
        }
    }
    if !problems.is_empty() {
        outln!(out, "");
        for p in &problems {
            outln!(out, "problem: {p}");
        }
        out.flush().map_err(io_fail)?;
        return Err(format!("secaudit: {} problem(s)", problems.len()).into());
    }
    Ok(())
}

/// `logfile`: the restart pages, the last checkpoint and the records of a `$LogFile`.
pub fn logfile(bytes: &[u8], limit: Option<usize>, out: &mut impl Write) -> Result<(), Fail> {
    use ntfs::log::layout::{LFS_CLIENT_RESTART, LOG_RECORD_MULTI_PAGE};
    use ntfs::log::ntfs::{analyze, Checkpoint, NtfsRecord};
    use ntfs::log::{Log, RestartPage};
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(io_fail);
    let show = |out: &mut dyn Write, name: &str, p: &Result<RestartPage, ntfs::Error>| match p {
        Err(x) => w(out, format!("restart page {name}: invalid ({x})")),
        Ok(p) => {
            let (h, a) = (&p.header, &p.area);
            w(
                out,
                format!(
                    "restart page {name} at {:#x}: {} LFS {}.{} system page {} log page {} \
                         current LSN {:#x} flags {:#x}{} seq bits {} file size {:#x} \
                         open count {} record header {:#x} page data {:#x}",
                    p.offset,
                    String::from_utf8_lossy(&h.magic),
                    h.major_version,
                    h.minor_version,
                    h.system_page_size,
                    h.log_page_size,
                    a.current_lsn,
                    a.flags,
                    if p.clean() { " (clean)" } else { "" },
                    a.seq_number_bits,
                    a.file_size,
                    a.restart_log_open_count,
                    a.log_record_header_length,
                    a.log_page_data_offset
                ),
            )?;
            for (i, c) in p.clients.iter().enumerate() {
                w(
                    out,
                    format!(
                        "  client {i} {:?}: oldest LSN {:#x} restart LSN {:#x} seq {}",
                        c.name(),
                        c.oldest_lsn,
                        c.client_restart_lsn,
                        c.seq_number
                    ),
                )?;
            }
            Ok(())
        }
    };
    let log = match Log::open(bytes) {
        Ok(l) => l,
        Err(x) => {
            let p0 = bytes
                .get(..4096)
                .map(|b| ntfs::log::read::parse_restart_page(b, 0))
                .unwrap_or(Err(ntfs::Error::OutOfRange));
            show(out, "0", &p0)?;
            return Err(Fail::Msg(format!("$LogFile: {x}")));
        }
    };
    show(out, "0", &log.first)?;
    show(out, "1", &log.second)?;
    w(
        out,
        format!(
            "in effect: restart page at {:#x}; first log page {:#x}",
            log.current.offset, log.first_page
        ),
    )?;
    if let Some(c) = log.current.clients.first() {
        if c.client_restart_lsn != 0 {
            match Checkpoint::read(&log, c.client_restart_lsn) {
                Ok((ra, cp)) => {
                    w(
                        out,
                        format!(
                            "checkpoint {:#x}: NTFS restart {}.{} start {:#x}: {} open attributes, \
                             {} names, {} dirty pages, {} transactions",
                            c.client_restart_lsn,
                            ra.major_version,
                            ra.minor_version,
                            ra.start_of_checkpoint,
                            cp.open_attributes.len(),
                            cp.attribute_names.len(),
                            cp.dirty_pages.len(),
                            cp.transactions.len()
                        ),
                    )?;
                    for (o, a) in &cp.open_attributes {
                        let name = cp
                            .attribute_names
                            .iter()
                            .find(|n| n.0 as u32 == *o)
                            .map(|n| String::from_utf16_lossy(&n.1))
                            .unwrap_or_default();
                        w(
                            out,
                            format!(
                                "  open attribute {o:#x}: file {:#x} type {:#x} {name}",
                                a.file_reference, a.attribute_type_code
                            ),
                        )?;
                    }
                    for (d, l) in &cp.dirty_pages {
                        w(
                            out,
                            format!(
                                "  dirty page: attribute {:#x} VCN {:#x} oldest LSN {:#x} LCNs {l:x?}",
                                d.target_attribute, d.vcn, d.oldest_lsn
                            ),
                        )?;
                    }
                    for (id, t) in &cp.transactions {
                        w(
                            out,
                            format!(
                                "  transaction {id:#x}: state {} first {:#x} previous {:#x} undo next {:#x}",
                                t.transaction_state, t.first_lsn, t.previous_lsn, t.undo_next_lsn
                            ),
                        )?;
                    }
                }
                Err(x) => w(
                    out,
                    format!("checkpoint {:#x}: unreadable ({x})", c.client_restart_lsn),
                )?,
            }
        }
    }
    let mut n = 0usize;
    let start = log.start_lsn().unwrap_or(u64::MAX);
    for r in log.all_records() {
        if limit.is_some_and(|l| n >= l) {
            break;
        }
        n += 1;
        let h = &r.header;
        let mut line = format!(
            "{}LSN {:#x} prev {:#x} undo-next {:#x} txn {:#x} len {}{}",
            if h.this_lsn < start { "(old) " } else { "" },
            h.this_lsn,
            h.client_previous_lsn,
            h.client_undo_next_lsn,
            h.transaction_id,
            h.client_data_length,
            if h.flags & LOG_RECORD_MULTI_PAGE != 0 {
                " multi-page"
            } else {
                ""
            }
        );
        if h.record_type == LFS_CLIENT_RESTART {
            line.push_str(" client restart");
            if let Ok(ra) = ntfs::log::layout::NtfsRestartArea::parse(&r.data) {
                line.push_str(&format!(
                    " (checkpoint start {:#x})",
                    ra.start_of_checkpoint
                ));
            }
        } else {
            match NtfsRecord::parse(&r.data) {
                Ok(x) => {
                    let nm = |c: u16| {
                        ntfs::log::ops::op_name(c)
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("Unknown({c:#x})"))
                    };
                    let hh = &x.header;
                    line.push_str(&format!(
                        " redo {} ({}) undo {} ({}) target {:#x} VCN {:#x} record offset {:#x} \
                         attribute offset {:#x} cluster block {:#x} LCNs {:x?}",
                        nm(hh.redo_operation),
                        hh.redo_length,
                        nm(hh.undo_operation),
                        hh.undo_length,
                        hh.target_attribute,
                        hh.target_vcn,
                        hh.record_offset,
                        hh.attribute_offset,
                        hh.cluster_block_offset,
                        x.lcns
                    ));
                    let d = x.redo_op().and_then(|o| {
                        ntfs::log::logical::describe(o, &x.redo)
                            .or_else(|| ntfs::log::logical::describe(x.undo_op()?, &x.undo))
                    });
                    if let Some(d) = d {
                        line.push_str(&format!(": {d}"));
                    }
                }
                Err(x) => line.push_str(&format!(" client data unreadable ({x})")),
            }
        }
        w(out, line)?;
    }
    w(
        out,
        format!("{n} record(s); those marked (old) precede the oldest LSN the client needs"),
    )?;
    if let Ok(a) = analyze(&log) {
        if !a.uncommitted.is_empty() {
            let t: Vec<String> = a
                .uncommitted
                .iter()
                .map(|(t, l)| format!("{t:#x} (last LSN {l:#x})"))
                .collect();
            w(
                out,
                format!("transactions without ForgetTransaction: {}", t.join(", ")),
            )?;
        }
    }
    Ok(())
}
