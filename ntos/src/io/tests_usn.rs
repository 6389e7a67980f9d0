//! Boot test of ntfs.sys's USN change journal (`fs.usn.` prefix): the
//! FSCTLs through `NtFsControlFile` on a handle of `C:` and the records
//! the driver writes for a file's create, write, close and delete. The
//! layouts are read here at winioctl.h's offsets (not through lib/ntfs),
//! so a layout mistake in the driver fails the test.

use super::file::*;
use super::*;
use crate::ktest::{check, Test, TestResult};
use crate::ob::object::Mode;
use alloc::vec;
use alloc::vec::Vec;

pub const TESTS: &[Test] = &[("fs.usn.journal_fsctls", t_usn)];

const FSCTL_READ_USN_JOURNAL: u32 = 0x0009_00BB;
const FSCTL_CREATE_USN_JOURNAL: u32 = 0x0009_00E7;
const FSCTL_QUERY_USN_JOURNAL: u32 = 0x0009_00F4;
const FSCTL_DELETE_USN_JOURNAL: u32 = 0x0009_00F8;
const STATUS_JOURNAL_NOT_ACTIVE: NtStatus = NtStatus::from_u32(0xC00002B8);

fn open_ex(path: &str, desired: u32, disposition: u32, options: u32) -> Result<u64, NtStatus> {
    nt_create_file(
        path,
        &OpenPacket {
            desired: desired | SYNCHRONIZE,
            share: FILE_SHARE_READ | FILE_SHARE_WRITE,
            disposition,
            options: options | FILE_SYNCHRONOUS_IO_NONALERT,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: Mode::KernelMode,
        },
    )
    .map(|(h, _)| h)
}

fn close(h: u64) {
    crate::ob::handle::nt_close(h);
}

/// `NtFsControlFile`: (status, bytes returned).
fn fsctl(h: u64, code: u32, input: &[u8], output: &mut [u8]) -> (NtStatus, usize) {
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let mut inp = input.to_vec();
    match nt_fs_control_file(
        h,
        &a,
        code,
        if inp.is_empty() {
            core::ptr::null_mut()
        } else {
            inp.as_mut_ptr().cast()
        },
        inp.len() as u32,
        if output.is_empty() {
            core::ptr::null_mut()
        } else {
            output.as_mut_ptr().cast()
        },
        output.len() as u32,
    ) {
        Ok(s) => (s, iosb.Information),
        Err(e) => (e, 0),
    }
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
        .unwrap_or(0)
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default()))
        .unwrap_or(0)
}

/// `USN_JOURNAL_DATA_V0/V1` of the volume (buffer of `len`).
fn query(h: u64, len: usize) -> (NtStatus, Vec<u8>) {
    let mut out = vec![0u8; len];
    let (s, n) = fsctl(h, FSCTL_QUERY_USN_JOURNAL, &[], &mut out);
    out.truncate(n);
    (s, out)
}

/// `READ_USN_JOURNAL_DATA_V0`.
fn read_input(start: u64, mask: u32, only_close: u32, id: u64) -> Vec<u8> {
    let mut b = vec![0u8; 0x28];
    b[0..8].copy_from_slice(&start.to_le_bytes());
    b[8..12].copy_from_slice(&mask.to_le_bytes());
    b[12..16].copy_from_slice(&only_close.to_le_bytes());
    b[0x20..0x28].copy_from_slice(&id.to_le_bytes());
    b
}

/// The (reason, name) of every `USN_RECORD_V2` in a read's output.
fn records(out: &[u8]) -> Result<Vec<(u32, alloc::string::String)>, &'static str> {
    let mut v = Vec::new();
    let mut o = 8;
    while o < out.len() {
        let len = u32_at(out, o) as usize;
        check(len >= 0x3C && o + len <= out.len(), "a record's length")?;
        check(
            u32_at(out, o + 4) & 0xFFFF == 2,
            "a record's major version is not 2",
        )?;
        let nl = (u32_at(out, o + 0x38) & 0xFFFF) as usize;
        let no = (u32_at(out, o + 0x38) >> 16) as usize;
        check(no == 0x3C && no + nl <= len, "a record's name offset")?;
        let units: Vec<u16> = out[o + no..o + no + nl]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        v.push((
            u32_at(out, o + 0x28),
            alloc::string::String::from_utf16_lossy(&units),
        ));
        o += len;
    }
    Ok(v)
}

/// Create, query (V0 and V1), the records of a file's life (create, write
/// extending it, close; delete-on-close), a close-only read, a wrong
/// journal id, delete and query again.
fn t_usn() -> TestResult {
    let root = open_ex(
        "\\??\\C:\\",
        FILE_READ_ATTRIBUTES,
        FILE_OPEN,
        FILE_DIRECTORY_FILE,
    )
    .map_err(|_| "opening C:\\ failed")?;
    let r = (|| {
        // A journal left by an earlier failed run goes first.
        let (s, q) = query(root, 0x38);
        if s.is_success() {
            let mut d = vec![0u8; 0x10];
            d[0..8].copy_from_slice(&u64_at(&q, 0).to_le_bytes());
            d[8..12].copy_from_slice(&1u32.to_le_bytes());
            fsctl(root, FSCTL_DELETE_USN_JOURNAL, &d, &mut []);
        }
        let (s, _) = query(root, 0x38);
        check(
            s == STATUS_JOURNAL_NOT_ACTIVE,
            "query without a journal is not STATUS_JOURNAL_NOT_ACTIVE",
        )?;
        let (s, _) = query(root, 0x20);
        check(
            s == STATUS_BUFFER_TOO_SMALL || s == STATUS_JOURNAL_NOT_ACTIVE,
            "a short query buffer",
        )?;
        let mut c = vec![0u8; 0x10];
        c[0..8].copy_from_slice(&(1u64 << 20).to_le_bytes());
        c[8..16].copy_from_slice(&(64u64 << 10).to_le_bytes());
        let (s, _) = fsctl(root, FSCTL_CREATE_USN_JOURNAL, &c, &mut []);
        check(s.is_success(), "FSCTL_CREATE_USN_JOURNAL failed")?;
        let (s, q0) = query(root, 0x38);
        check(s.is_success() && q0.len() == 0x38, "V0 query")?;
        let (s, q1) = query(root, 0x40);
        check(s.is_success() && q1.len() == 0x3C, "V1 query")?;
        let id = u64_at(&q1, 0);
        check(id != 0 && u64_at(&q0, 0) == id, "the journal id")?;
        check(
            u64_at(&q1, 0x28) == 1 << 20 && u64_at(&q1, 0x30) == 64 << 10,
            "maximum size and allocation delta",
        )?;
        check(
            u32_at(&q1, 0x38) == 0x0002_0002,
            "supported record versions are not 2..2",
        )?;
        // A file's life.
        let path = "\\??\\C:\\ntrs-usn-test.txt";
        let rw = FILE_READ_DATA | FILE_WRITE_DATA | DELETE;
        let h = open_ex(path, rw, FILE_CREATE, FILE_NON_DIRECTORY_FILE)
            .map_err(|_| "creating the file failed")?;
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        let a = RequestArgs {
            event: None,
            apc_context: 0,
            apc_routine: None,
            iosb: &mut iosb,
            mode: Mode::KernelMode,
        };
        let data = [0x5Au8; 300];
        let w = nt_write_file(h, &a, data.as_ptr() as *mut _, 300, Some(0), 0);
        close(h);
        check(w.is_ok_and(|s| s.is_success()), "writing the file failed")?;
        let h = open_ex(path, rw, FILE_OPEN, FILE_DELETE_ON_CLOSE)
            .map_err(|_| "opening the file delete-on-close failed")?;
        close(h);
        // Read everything.
        let mut out = vec![0u8; 64 << 10];
        let (s, n) = fsctl(
            root,
            FSCTL_READ_USN_JOURNAL,
            &read_input(0, u32::MAX, 0, id),
            &mut out,
        );
        check(s.is_success() && n >= 8, "FSCTL_READ_USN_JOURNAL failed")?;
        let (_, q) = query(root, 0x38);
        check(
            u64_at(&out, 0) == u64_at(&q, 0x10),
            "the read's next USN is not the journal's",
        )?;
        let ours: Vec<u32> = records(&out[..n])?
            .into_iter()
            .filter(|(_, name)| name == "ntrs-usn-test.txt")
            .map(|(r, _)| r)
            .collect();
        // FILE_CREATE; + DATA_EXTEND; close; FILE_DELETE | CLOSE.
        check(
            ours == [0x100, 0x102, 0x8000_0102, 0x8000_0200],
            "the file's records are not create, extend, close, delete",
        )?;
        // Close records only.
        let (s, n) = fsctl(
            root,
            FSCTL_READ_USN_JOURNAL,
            &read_input(0, u32::MAX, 1, id),
            &mut out,
        );
        check(s.is_success(), "a close-only read failed")?;
        let recs = records(&out[..n])?;
        check(
            !recs.is_empty() && recs.iter().all(|(r, _)| r & 0x8000_0000 != 0),
            "a close-only read returned other records",
        )?;
        let (s, _) = fsctl(
            root,
            FSCTL_READ_USN_JOURNAL,
            &read_input(0, u32::MAX, 0, id ^ 1),
            &mut out,
        );
        check(
            s == STATUS_INVALID_PARAMETER,
            "a wrong journal id is not STATUS_INVALID_PARAMETER",
        )?;
        // Delete.
        let mut d = vec![0u8; 0x10];
        d[0..8].copy_from_slice(&id.to_le_bytes());
        d[8..12].copy_from_slice(&1u32.to_le_bytes());
        let (s, _) = fsctl(root, FSCTL_DELETE_USN_JOURNAL, &d, &mut []);
        check(s.is_success(), "FSCTL_DELETE_USN_JOURNAL failed")?;
        let (s, _) = query(root, 0x38);
        check(
            s == STATUS_JOURNAL_NOT_ACTIVE,
            "the journal is still there after delete",
        )
    })();
    close(root);
    r
}
