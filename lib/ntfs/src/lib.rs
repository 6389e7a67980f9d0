//! NTFS (*Windows Internals* 7th ed., Part 2 ch. 11, "NTFS on-disk structure"):
//! the boot sector, the MFT and its file records with update sequence arrays,
//! attributes and run lists, `$I30` B+ tree indexes collated by `$UpCase`,
//! `$Secure`, `$Bitmap`, plus write support, a formatter (our mkntfs) and a
//! read-only checker (our chkdsk).
//!
//! `no_std` + `alloc`. All I/O goes through [`BlockDevice`], so the same code
//! runs in the UEFI loader, the kernel and the host tools. Corrupt input never
//! panics: every on-disk offset and length is bounds-checked and every
//! arithmetic step on disk values is checked; errors are [`Error`], which maps
//! onto NT status codes with [`Error::status`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod attr;
pub mod attrlist;
pub mod boot;
pub mod check;
pub mod device;
pub mod error;
pub mod format;
pub mod fuzz;
pub mod index;
pub mod log;
pub mod lznt1;
pub mod names;
pub mod record;
pub mod recover;
pub mod reparse;
pub mod runlist;
pub mod sds;
pub mod secure;
pub mod txn;
pub mod upcase;
pub mod usn;
mod util;
pub mod volume;
pub mod write;

pub use check::{check, Problem};
pub use device::{BlockDevice, MemDevice, OffsetDevice, SectorIo, Sectored};
pub use error::{Error, Result};
pub use format::{format, FormatOptions};
pub use fuzz::fuzz_one;
pub use volume::{DirEntry, FileInfo, StreamInfo, Volume};

#[cfg(test)]
mod tests;
