//! Debugger text: `!defwrites` and `!filecache`, in WinDbg's layout,
//! printing only what ntrs has.

use crate::manager::CacheManager;
use crate::vacb::VACB_MAPPING_GRANULARITY;
use alloc::format;
use alloc::string::String;
use core::fmt::Write;

/// The memory manager's counters `!defwrites` shows beside the cache's.
/// A counter ntrs does not keep is `None` and its line is left out.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmCounters {
    /// `MmAvailablePages`.
    pub available_pages: Option<u64>,
    /// `MmThrottleTop`.
    pub throttle_top: Option<u64>,
    /// `MmThrottleBottom`.
    pub throttle_bottom: Option<u64>,
    /// `MmModifiedPageListHead.Total`.
    pub modified_pages: Option<u64>,
}

fn line(out: &mut String, name: &str, pages: u64) {
    let _ = writeln!(
        out,
        "\t{:<30}{:>8} ({:>8} Kb)",
        format!("{name}:"),
        pages,
        pages * 4
    );
}

/// `!defwrites`: the write throttle analysis. `file_object(token)` names a
/// deferred write's file object address.
pub fn format_defwrites(
    cc: &CacheManager,
    mm: &MmCounters,
    file_object: impl Fn(u64) -> u64,
) -> String {
    let mut out = String::new();
    out.push_str("*** Cache Write Throttle Analysis ***\n\n");
    line(&mut out, "CcTotalDirtyPages", cc.total_dirty);
    line(&mut out, "CcDirtyPageThreshold", cc.threshold);
    for (name, v) in [
        ("MmAvailablePages", mm.available_pages),
        ("MmThrottleTop", mm.throttle_top),
        ("MmThrottleBottom", mm.throttle_bottom),
        ("MmModifiedPageListHead.Total", mm.modified_pages),
    ] {
        if let Some(v) = v {
            line(&mut out, name, v);
        }
    }
    out.push('\n');
    let low = matches!((mm.available_pages, mm.throttle_top), (Some(a), Some(t)) if a < t);
    let engaged = cc.total_dirty >= cc.threshold || low || !cc.deferred.is_empty();
    if !engaged {
        out.push_str("Write throttles not engaged\n");
        return out;
    }
    out.push_str("Write throttles engaged\n");
    if cc.total_dirty >= cc.threshold {
        out.push_str("\tCcTotalDirtyPages >= CcDirtyPageThreshold\n");
    }
    if low {
        out.push_str("\tMmAvailablePages < MmThrottleTop\n");
    }
    if !cc.deferred.is_empty() {
        out.push_str("\nDeferred writes (CcDeferredWrites):\n");
        out.push_str("\tFileObject        BytesToWrite\n");
        for w in cc.deferred.iter() {
            let _ = writeln!(out, "\t{:016x}  {:>12}", file_object(w.token), w.bytes);
        }
    }
    out
}

/// `!filecache`: the system cache's size and, per cached stream, the
/// views mapped and the dirty data. `name(key)` gives the stream's control
/// area (or section object pointers) address and file name.
pub fn format_filecache(cc: &CacheManager, name: impl Fn(u64) -> (u64, String)) -> String {
    let mut out = String::new();
    let kb = VACB_MAPPING_GRANULARITY / 1024;
    out.push_str("***** Dump file cache******\n");
    let mapped = cc.views.mapped() as u64;
    let active = cc.views.active() as u64;
    let _ = writeln!(
        out,
        "  Removed {} nonactive VACBs, processing {} active VACBs ...",
        mapped - active,
        active
    );
    out.push_str("File Cache Information\n");
    let _ = writeln!(out, "  Current size {} kb", mapped * kb);
    let _ = writeln!(
        out,
        "  Peak size    {} kb",
        cc.views.peak_mapped as u64 * kb
    );
    let _ = writeln!(out, "  Maximum size {} kb", cc.views.budget() as u64 * kb);
    let _ = writeln!(out, "  {} Shared Cache Maps", cc.maps().count());
    out.push_str("  Usage Summary (in Kb):\n");
    out.push_str("Control          Mapped  Active   Dirty   FileSize  Name\n");
    for (_, m) in cc.maps() {
        let (ca, n) = name(m.key);
        let views = m.vacbs.entries();
        let act = views
            .iter()
            .filter(|(_, v)| cc.views.vacb(*v).active > 0)
            .count() as u64;
        let _ = writeln!(
            out,
            "{:016x} {:>7} {:>7} {:>7} {:>10}  {}",
            ca,
            views.len() as u64 * kb,
            act * kb,
            m.dirty.pages() * 4,
            m.sizes.file_size,
            n
        );
    }
    out
}
