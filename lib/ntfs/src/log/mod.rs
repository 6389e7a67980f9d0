//! The NTFS log file service (*Windows Internals* 7th ed., Part 2 ch. 11,
//! "NTFS recovery support": the log file service, log record types,
//! recovery). `$LogFile` holds two restart pages, then (LFS 1.1) two tail
//! pages, then the circular area of log record pages. NTFS is LFS's one
//! client; its records carry a redo and an undo operation each.
//!
//! - [`layout`]: the on-disk structures, with offset asserts, and LSN math.
//! - [`ops`]: Windows' operation codes and names.
//! - [`read`]: reading LFS 1.1 and 2.0 logs (restart areas, records).
//! - [`write`]: formatting an empty clean 1.1 log and appending records.
//! - [`ntfs`]: NTFS client records (redo/undo data, LCNs) and checkpoints.

pub mod layout;
pub mod logical;
pub mod ntfs;
pub mod ops;
pub mod read;
pub mod volume;
pub mod write;

pub use layout::LsnMath;
pub use ops::Op;
pub use read::{Log, LogRecord, RestartPage};
pub use write::{format_log, LogStore, LogWriter, NewRecord};

/// Parses arbitrary bytes as a `$LogFile` and walks everything in it
/// (restart pages, records, checkpoint, analysis): must never panic. The
/// cargo-fuzz target `logfile` and the property tests call it.
pub fn fuzz_one_log(b: &[u8]) {
    if let Ok(log) = Log::open(b) {
        let _ = log.all_records();
        for r in log.records().take(10_000) {
            let _ = ntfs::NtfsRecord::parse(&r.data);
        }
        let _ = ntfs::analyze(&log);
    }
}

#[cfg(test)]
mod tests;
