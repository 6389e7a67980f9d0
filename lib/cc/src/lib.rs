//! Cache manager policy logic that does not need the hardware
//! (*Windows Internals* 7th ed., Part 2, ch. 11, "Caching and file
//! systems", the cache manager half).
//!
//! Everything here works on integers: file offsets, page numbers of a
//! stream, view numbers, VACB indexes. The kernel (`ntos/src/cc`) maps and
//! unmaps the views through the memory manager, copies the data and issues
//! the writes; it asks these types what to do.
//!
//! - [`vacb`]: VACBs (256 KiB views), the per-stream VACB index array and
//!   the system's view pool with its LRU list of idle views.
//! - [`bcb`]: the mapping and pinning interface's buffer control blocks.
//! - [`dirty`]: a stream's dirty pages as runs.
//! - [`readahead`]: private cache maps and read-ahead prediction.
//! - [`throttle`]: `CcCanIWrite`, deferred writes and the lazy writer quota.
//! - [`manager`]: the shared cache maps and the lazy writer's pass.
//! - [`kd`]: `!filecache` and `!defwrites` text.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

pub mod bcb;
pub mod dirty;
pub mod kd;
pub mod manager;
pub mod readahead;
pub mod throttle;
pub mod vacb;

#[cfg(test)]
mod tests;

/// `PAGE_SIZE` on x64.
pub const PAGE_SIZE: u64 = 0x1000;
/// `PAGE_SHIFT` on x64.
pub const PAGE_SHIFT: u32 = 12;

/// `CC_FILE_SIZES`: what `CcInitializeCacheMap` and `CcSetFileSizes` are
/// given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileSizes {
    /// `AllocationSize`: the section must cover at least this much.
    pub allocation_size: u64,
    /// `FileSize`: end of file.
    pub file_size: u64,
    /// `ValidDataLength`: bytes the file system has written.
    pub valid_data_length: u64,
}
