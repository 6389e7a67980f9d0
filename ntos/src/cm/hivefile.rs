//! Hive files on the system volume (`CmpOpenHiveFiles`, `CmpFileRead`,
//! `CmpFileWrite`, `CmpFileSetSize`, `CmpFileFlush`): the primary file and
//! its `.LOG1` / `.LOG2` opened through the I/O manager and the file system
//! with kernel handles (NT keeps them in `CMHIVE.FileHandles`), and
//! `regf::log::HiveFiles` over `NtReadFile` / `NtWriteFile` /
//! `NtSetInformationFile(FileEndOfFileInformation)` / `NtFlushBuffersFile`.
//! The flush protocol (log first, then the primary with its sequence
//! numbers) is regf's; this file only moves bytes.
//!
//! ntrs opens the files non-cached and write-through (every regf write is
//! sector-aligned: 512-byte log blocks, 4 KiB hive pages), so a write is on
//! the disk when `NtWriteFile` returns; the flush barriers regf asks for are
//! still sent. NT opens them cached and relies on `ZwFlushBuffersFile`.

use crate::io::file::{nt_create_file, nt_flush_buffers_file, nt_write_file, OpenPacket};
use crate::io::file::{nt_read_file, RequestArgs};
use crate::ob::object::{Mode, OBJ_KERNEL_HANDLE};
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use regf::log::{HiveFile, HiveFiles};
use wdk::IO_STATUS_BLOCK;

const K: Mode = Mode::KernelMode;

/// The three kernel handles of a hive's files.
pub struct DiskFiles {
    handles: [u64; 3],
}

fn idx(f: HiveFile) -> usize {
    match f {
        HiveFile::Primary => 0,
        HiveFile::Log1 => 1,
        HiveFile::Log2 => 2,
    }
}

fn io_error(s: NtStatus) -> regf::Error {
    crate::dbg_println!("cm: hive file I/O failed ({s})");
    regf::Error::Status(STATUS_REGISTRY_IO_FAILED)
}

fn args(iosb: &mut IO_STATUS_BLOCK) -> RequestArgs {
    RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb,
        mode: K,
    }
}

/// Opens (or creates, for a missing log) one hive file: `path` through the
/// namespace, read/write, shared for reading only (as NT, which keeps others
/// from writing a loaded hive).
pub fn open_hive_file(path: &str, create: bool) -> Result<u64, NtStatus> {
    nt_create_file(
        path,
        &OpenPacket {
            desired: wdk::FILE_READ_DATA
                | wdk::FILE_WRITE_DATA
                | wdk::FILE_READ_ATTRIBUTES
                | wdk::FILE_WRITE_ATTRIBUTES
                | wdk::SYNCHRONIZE,
            share: wdk::FILE_SHARE_READ,
            disposition: if create {
                wdk::FILE_OPEN_IF
            } else {
                wdk::FILE_OPEN
            },
            options: wdk::FILE_SYNCHRONOUS_IO_NONALERT
                | wdk::FILE_NON_DIRECTORY_FILE
                | wdk::FILE_NO_INTERMEDIATE_BUFFERING
                | wdk::FILE_WRITE_THROUGH,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            mode: K,
        },
    )
    .map(|(h, _)| h)
}

/// The end of file of `h` (`FileStandardInformation`).
pub fn file_size(h: u64) -> Result<u64, NtStatus> {
    let mut buf = [0u8; 24];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    // SAFETY: the buffer and the status block outlive the synchronous request.
    let s = unsafe {
        crate::io::info::nt_query_information_file(
            h,
            &mut iosb,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            wdk::FileStandardInformation,
            K,
        )
    }
    .unwrap_or_else(|e| e);
    if !s.is_success() {
        return Err(s);
    }
    Ok(i64::from_le_bytes(buf[8..16].try_into().unwrap_or_default()).max(0) as u64)
}

/// Reads `len` bytes at `offset` of `h` (fewer at the end of the file).
pub fn read_at(h: u64, offset: u64, len: usize) -> Result<Vec<u8>, NtStatus> {
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    out.resize(len, 0);
    let mut done = 0usize;
    while done < len {
        let n = (len - done).min(1 << 20);
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        let a = args(&mut iosb);
        let s = nt_read_file(
            h,
            &a,
            out[done..].as_mut_ptr().cast(),
            n as u32,
            Some((offset + done as u64) as i64),
            0,
        )
        .unwrap_or_else(|e| e);
        if s == STATUS_END_OF_FILE {
            break;
        }
        if !s.is_success() {
            return Err(s);
        }
        if iosb.Information == 0 {
            break;
        }
        done += iosb.Information;
    }
    out.truncate(done);
    Ok(out)
}

/// Writes `data` at `offset` of `h` (a kernel-mode write).
pub fn write_at(h: u64, offset: u64, data: &[u8]) -> Result<(), NtStatus> {
    let mut done = 0usize;
    while done < data.len() {
        let n = (data.len() - done).min(1 << 20);
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        let a = args(&mut iosb);
        let s = nt_write_file(
            h,
            &a,
            data[done..].as_ptr() as *mut _,
            n as u32,
            Some((offset + done as u64) as i64),
            0,
        )
        .unwrap_or_else(|e| e);
        if !s.is_success() {
            return Err(s);
        }
        if iosb.Information == 0 {
            return Err(STATUS_DISK_FULL);
        }
        done += iosb.Information;
    }
    Ok(())
}

/// Sets the end of file of `h` (`FileEndOfFileInformation`).
pub fn set_end_of_file(h: u64, len: u64) -> Result<(), NtStatus> {
    let mut eof = (len as i64).to_le_bytes();
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = args(&mut iosb);
    // SAFETY: the buffer outlives the synchronous request.
    let s = unsafe {
        crate::io::fs::nt_set_information_file(
            h,
            &a,
            eof.as_mut_ptr().cast(),
            eof.len() as u32,
            wdk::fs::class::FileEndOfFileInformation,
        )
    }
    .unwrap_or_else(|e| e);
    if s.is_success() {
        Ok(())
    } else {
        Err(s)
    }
}

impl DiskFiles {
    /// Opens `<path>`, `<path>.LOG1` and `<path>.LOG2` (the logs are
    /// created when missing, as NT does for a hive whose logs were deleted).
    pub fn open(path: &str) -> Result<DiskFiles, NtStatus> {
        let primary = open_hive_file(path, false)?;
        let mut handles = [primary, 0, 0];
        for (i, ext) in [(1, "LOG1"), (2, "LOG2")] {
            match open_hive_file(&alloc::format!("{path}.{ext}"), true) {
                Ok(h) => handles[i] = h,
                Err(e) => {
                    DiskFiles { handles }.close();
                    return Err(e);
                }
            }
        }
        Ok(DiskFiles { handles })
    }

    /// The handle of file `f` (boot tests read the files through it).
    pub fn handle(&self, f: HiveFile) -> u64 {
        self.handles[idx(f)]
    }

    /// Closes the handles (`CmpCloseHiveFiles`).
    pub fn close(&mut self) {
        for h in &mut self.handles {
            if *h != 0 {
                crate::ob::handle::nt_close(*h);
                *h = 0;
            }
        }
    }
}

impl Drop for DiskFiles {
    fn drop(&mut self) {
        self.close();
    }
}

impl HiveFiles for DiskFiles {
    fn read(&self, f: HiveFile) -> Vec<u8> {
        let h = self.handles[idx(f)];
        file_size(h)
            .and_then(|n| read_at(h, 0, n as usize))
            .unwrap_or_default()
    }

    fn write(&mut self, f: HiveFile, offset: usize, data: &[u8]) -> regf::Result<()> {
        write_at(self.handles[idx(f)], offset as u64, data).map_err(io_error)
    }

    fn set_len(&mut self, f: HiveFile, len: usize) -> regf::Result<()> {
        set_end_of_file(self.handles[idx(f)], len as u64).map_err(io_error)
    }

    fn flush(&mut self, f: HiveFile) -> regf::Result<()> {
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        nt_flush_buffers_file(self.handles[idx(f)], &mut iosb, K)
            .and_then(|s| if s.is_success() { Ok(()) } else { Err(s) })
            .map_err(io_error)
    }
}
