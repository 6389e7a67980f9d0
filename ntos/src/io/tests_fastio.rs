//! Boot tests of fast I/O and `NtQueryInformationFile`, with an in-kernel
//! test driver `\Driver\KTestFastIo` (`\Device\KTestFastIo`) that has a
//! `FAST_IO_DISPATCH`: an open of `\Device\KTestFastIo\cached` marks its
//! file object cached (`PrivateCacheMap` non-null, as a file system does
//! after `CcInitializeCacheMap`); `FastIoRead` fills a pattern below
//! offset 0x1000 and declines above it; reads through IRPs fill another.
#![allow(non_upper_case_globals)]

use super::driver::*;
use super::file::*;
use super::info::*;
use super::irp::*;
use super::*;
use crate::ktest::{check, Test, TestResult};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

const K: Mode = Mode::KernelMode;
/// `FastIoRead` declines at and above this offset.
const DECLINE_AT: i64 = 0x1000;
/// The `EndOfFile` both the fast and the IRP query report.
const EOF: i64 = 0x12345;

static FAST_READS: AtomicU32 = AtomicU32::new(0);
static FAST_WRITES: AtomicU32 = AtomicU32::new(0);
static FAST_STANDARD: AtomicU32 = AtomicU32::new(0);
static IRP_READS: AtomicU32 = AtomicU32::new(0);
static IRP_WRITES: AtomicU32 = AtomicU32::new(0);
static IRP_QUERIES: AtomicU32 = AtomicU32::new(0);

fn fast_pattern(off: i64, i: usize) -> u8 {
    (off as u8).wrapping_add(i as u8) ^ 0x5A
}
fn irp_pattern(off: i64, i: usize) -> u8 {
    (off as u8).wrapping_add(i as u8)
}

unsafe extern "system" fn fast_read(
    _file: *mut FILE_OBJECT,
    offset: *mut LARGE_INTEGER,
    length: u32,
    wait: BOOLEAN,
    _key: u32,
    buffer: *mut c_void,
    iosb: *mut IO_STATUS_BLOCK,
    _dev: *mut DEVICE_OBJECT,
) -> BOOLEAN {
    FAST_READS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the I/O manager passes a valid offset, buffer and status block.
    unsafe {
        let off = *offset;
        if wait == 0 || off >= DECLINE_AT {
            return 0;
        }
        for i in 0..length as usize {
            *(buffer as *mut u8).add(i) = fast_pattern(off, i);
        }
        iosb.write(IO_STATUS_BLOCK {
            Status: STATUS_SUCCESS,
            Information: length as usize,
        });
    }
    1
}

unsafe extern "system" fn fast_write(
    _file: *mut FILE_OBJECT,
    _offset: *mut LARGE_INTEGER,
    length: u32,
    _wait: BOOLEAN,
    _key: u32,
    _buffer: *mut c_void,
    iosb: *mut IO_STATUS_BLOCK,
    _dev: *mut DEVICE_OBJECT,
) -> BOOLEAN {
    FAST_WRITES.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the I/O manager passes a valid status block.
    unsafe {
        iosb.write(IO_STATUS_BLOCK {
            Status: STATUS_SUCCESS,
            Information: length as usize,
        })
    };
    1
}

unsafe extern "system" fn fast_standard(
    _file: *mut FILE_OBJECT,
    _wait: BOOLEAN,
    buffer: *mut FILE_STANDARD_INFORMATION,
    iosb: *mut IO_STATUS_BLOCK,
    _dev: *mut DEVICE_OBJECT,
) -> BOOLEAN {
    FAST_STANDARD.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the I/O manager passes a buffer of the structure's size.
    unsafe {
        buffer.write(FILE_STANDARD_INFORMATION {
            AllocationSize: 0x20000,
            EndOfFile: EOF,
            NumberOfLinks: 1,
            DeletePending: 0,
            Directory: 0,
        });
        iosb.write(IO_STATUS_BLOCK {
            Status: STATUS_SUCCESS,
            Information: core::mem::size_of::<FILE_STANDARD_INFORMATION>(),
        });
    }
    1
}

static mut TABLE: FAST_IO_DISPATCH = FAST_IO_DISPATCH::empty();

unsafe fn complete(irp: *mut IRP, status: NtStatus, info: usize) -> NtStatus {
    // SAFETY: the driver owns the IRP.
    unsafe {
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = info;
        iof_complete_request(irp, IO_NO_INCREMENT);
    }
    status
}

/// A non-null marker for `PrivateCacheMap` (the test driver's "cache").
const CACHED: *mut c_void = 0x1000 as *mut c_void;

unsafe extern "system" fn fio_dispatch(_dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP (neither I/O: UserBuffer is
    // the caller's buffer; queries come with a system buffer).
    unsafe {
        let s = IoGetCurrentIrpStackLocation(irp);
        let f = (*s).FileObject;
        match (*s).MajorFunction {
            IRP_MJ_CREATE => {
                if unicode_to_string(&(*f).FileName) == "\\cached" {
                    (*f).PrivateCacheMap = CACHED;
                }
                complete(irp, STATUS_SUCCESS, FILE_OPENED)
            }
            IRP_MJ_CLEANUP => {
                (*f).PrivateCacheMap = core::ptr::null_mut();
                complete(irp, STATUS_SUCCESS, 0)
            }
            IRP_MJ_CLOSE => complete(irp, STATUS_SUCCESS, 0),
            IRP_MJ_READ => {
                IRP_READS.fetch_add(1, Ordering::SeqCst);
                let r = (*s).Parameters.Read;
                let b = (*irp).UserBuffer as *mut u8;
                for i in 0..r.Length as usize {
                    *b.add(i) = irp_pattern(r.ByteOffset, i);
                }
                complete(irp, STATUS_SUCCESS, r.Length as usize)
            }
            IRP_MJ_WRITE => {
                IRP_WRITES.fetch_add(1, Ordering::SeqCst);
                complete(irp, STATUS_SUCCESS, (*s).Parameters.Write.Length as usize)
            }
            IRP_MJ_QUERY_INFORMATION => {
                IRP_QUERIES.fetch_add(1, Ordering::SeqCst);
                let q = (*s).Parameters.QueryFile;
                let sys = (*irp).AssociatedIrp.SystemBuffer;
                match q.FileInformationClass {
                    FileStandardInformation => {
                        (sys as *mut FILE_STANDARD_INFORMATION).write_unaligned(
                            FILE_STANDARD_INFORMATION {
                                AllocationSize: 0x20000,
                                EndOfFile: EOF,
                                NumberOfLinks: 1,
                                DeletePending: 0,
                                Directory: 0,
                            },
                        );
                        complete(irp, STATUS_SUCCESS, 0x18)
                    }
                    FileBasicInformation => {
                        (sys as *mut FILE_BASIC_INFORMATION).write_unaligned(
                            FILE_BASIC_INFORMATION {
                                CreationTime: 1,
                                LastAccessTime: 2,
                                LastWriteTime: 3,
                                ChangeTime: 4,
                                FileAttributes: 0x20,
                            },
                        );
                        complete(irp, STATUS_SUCCESS, 0x28)
                    }
                    _ => complete(irp, STATUS_INVALID_PARAMETER, 0),
                }
            }
            _ => complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    }
}

unsafe extern "system" fn fio_entry(
    driver: *mut DRIVER_OBJECT,
    _reg: *mut UNICODE_STRING,
) -> NtStatus {
    // SAFETY: DriverEntry owns its driver object; the table is written
    // once, before the driver object points at it.
    unsafe {
        let t = core::ptr::addr_of_mut!(TABLE);
        (*t).FastIoRead = Some(fast_read);
        (*t).FastIoWrite = Some(fast_write);
        (*t).FastIoQueryStandardInfo = Some(fast_standard);
        (*driver).FastIoDispatch = t;
        for mj in [
            IRP_MJ_CREATE,
            IRP_MJ_CLEANUP,
            IRP_MJ_CLOSE,
            IRP_MJ_READ,
            IRP_MJ_WRITE,
            IRP_MJ_QUERY_INFORMATION,
        ] {
            (*driver).MajorFunction[mj as usize] = Some(fio_dispatch);
        }
        match super::device::io_create_device(
            driver,
            0,
            Some("\\Device\\KTestFastIo"),
            FILE_DEVICE_UNKNOWN,
            0,
            false,
        ) {
            Ok(_) => STATUS_SUCCESS,
            Err(e) => e,
        }
    }
}

static SETUP: AtomicBool = AtomicBool::new(false);

fn setup() -> TestResult {
    if SETUP.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    create_driver_object(
        "\\Driver\\KTestFastIo",
        fio_entry,
        "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\KTestFastIo",
        (0, 0),
        core::ptr::null_mut(),
    )
    .map(|_| ())
    .map_err(|_| "DriverEntry of \\Driver\\KTestFastIo")
}

fn open(name: &str, options: u32) -> Result<u64, &'static str> {
    nt_create_file(
        name,
        &OpenPacket {
            desired: FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES,
            share: FILE_SHARE_VALID_FLAGS,
            disposition: FILE_OPEN,
            options,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: K,
        },
    )
    .map(|(h, _)| h)
    .map_err(|_| "open")
}

fn rw(h: u64, buf: &mut [u8], off: Option<i64>, write: bool) -> (NtStatus, IO_STATUS_BLOCK) {
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: K,
    };
    let p = buf.as_mut_ptr() as *mut c_void;
    let n = buf.len() as u32;
    let r = if write {
        nt_write_file(h, &args, p, n, off, 0)
    } else {
        nt_read_file(h, &args, p, n, off, 0)
    };
    (r.unwrap_or_else(|e| e), iosb)
}

struct Counts([u32; 6]);
fn counts() -> Counts {
    Counts(
        [
            &FAST_READS,
            &FAST_WRITES,
            &FAST_STANDARD,
            &IRP_READS,
            &IRP_WRITES,
            &IRP_QUERIES,
        ]
        .map(|c| c.load(Ordering::SeqCst)),
    )
}
impl Counts {
    fn delta(&self) -> [u32; 6] {
        let now = counts().0;
        core::array::from_fn(|i| now[i] - self.0[i])
    }
}

/// `NtReadFile`/`NtWriteFile` on a cached synchronous file go to
/// `FastIoRead`/`FastIoWrite` without an IRP; a declined fast read, an
/// uncached file and an asynchronous file build IRPs.
fn t_fast_read_write() -> TestResult {
    setup()?;
    let h = open(
        "\\Device\\KTestFastIo\\cached",
        FILE_SYNCHRONOUS_IO_NONALERT,
    )?;
    let live = live_irps();
    let c = counts();
    let mut buf = [0u8; 24];
    let (s, iosb) = rw(h, &mut buf, Some(0x40), false);
    check(
        s == STATUS_SUCCESS && iosb.Information == 24,
        "fast read status",
    )?;
    check(
        buf.iter()
            .enumerate()
            .all(|(i, &b)| b == fast_pattern(0x40, i)),
        "fast read data",
    )?;
    check(c.delta() == [1, 0, 0, 0, 0, 0], "fast read took no IRP")?;
    check(live_irps() == live, "no IRP allocated")?;
    // The current byte offset moved past the fast read.
    let (s, _) = rw(h, &mut buf[..8], None, false);
    check(
        s == STATUS_SUCCESS && buf[0] == fast_pattern(0x40 + 24, 0),
        "current offset after a fast read",
    )?;
    // Declined: the same request goes as an IRP.
    let c = counts();
    let (s, iosb) = rw(h, &mut buf, Some(DECLINE_AT + 3), false);
    check(
        s == STATUS_SUCCESS && iosb.Information == 24,
        "declined read status",
    )?;
    check(
        buf.iter()
            .enumerate()
            .all(|(i, &b)| b == irp_pattern(DECLINE_AT + 3, i)),
        "declined read data from the IRP",
    )?;
    check(
        c.delta() == [1, 0, 0, 1, 0, 0],
        "declined fast read then an IRP",
    )?;
    let c = counts();
    let (s, iosb) = rw(h, &mut buf, Some(0), true);
    check(s == STATUS_SUCCESS && iosb.Information == 24, "fast write")?;
    check(c.delta() == [0, 1, 0, 0, 0, 0], "fast write took no IRP")?;
    let (s, _) = rw(h, &mut buf, Some(-5), false);
    check(s == STATUS_INVALID_PARAMETER, "negative offset")?;
    nt_close(h);
    // Not cached: IRPs only.
    let h = open("\\Device\\KTestFastIo\\plain", FILE_SYNCHRONOUS_IO_NONALERT)?;
    let c = counts();
    let (s, _) = rw(h, &mut buf, Some(0), false);
    check(
        s == STATUS_SUCCESS && buf[1] == irp_pattern(0, 1),
        "uncached read",
    )?;
    check(
        c.delta() == [0, 0, 0, 1, 0, 0],
        "uncached file: no fast I/O",
    )?;
    nt_close(h);
    // Asynchronous file: IRPs only, even when cached.
    let h = open("\\Device\\KTestFastIo\\cached", 0)?;
    let c = counts();
    let (s, _) = rw(h, &mut buf, Some(0), false);
    check(s == STATUS_SUCCESS, "asynchronous read")?;
    check(
        c.delta() == [0, 0, 0, 1, 0, 0],
        "asynchronous file: no fast I/O",
    )?;
    nt_close(h);
    Ok(())
}

fn query(h: u64, buf: &mut [u8], class: u32) -> (NtStatus, IO_STATUS_BLOCK) {
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    // SAFETY: the buffer and status block live across the synchronous call.
    let r = unsafe {
        nt_query_information_file(
            h,
            &mut iosb,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            class,
            K,
        )
    };
    (r.unwrap_or_else(|e| e), iosb)
}

/// `NtQueryInformationFile`: the standard information through
/// `FastIoQueryStandardInfo`, the basic information (no fast routine)
/// through an IRP, the position and mode answered by the I/O manager,
/// short buffers and unknown classes refused.
fn t_query_information() -> TestResult {
    setup()?;
    let h = open(
        "\\Device\\KTestFastIo\\cached",
        FILE_SYNCHRONOUS_IO_NONALERT,
    )?;
    let c = counts();
    let mut b = [0u8; 0x28];
    let (s, iosb) = query(h, &mut b[..0x18], FileStandardInformation);
    check(
        s == STATUS_SUCCESS && iosb.Information == 0x18,
        "standard info",
    )?;
    check(
        i64::from_le_bytes(b[8..16].try_into().unwrap_or_default()) == EOF,
        "EndOfFile",
    )?;
    check(c.delta() == [0, 0, 1, 0, 0, 0], "standard info by fast I/O")?;
    let c = counts();
    let (s, iosb) = query(h, &mut b, FileBasicInformation);
    check(
        s == STATUS_SUCCESS && iosb.Information == 0x28,
        "basic info",
    )?;
    check(
        b[0] == 1 && b[24] == 4 && b[0x20] == 0x20,
        "basic info copied back",
    )?;
    check(c.delta() == [0, 0, 0, 0, 0, 1], "basic info by IRP")?;
    let mut one = [0u8; 24];
    let _ = rw(h, &mut one, Some(0x100), false);
    let (s, _) = query(h, &mut b[..8], FilePositionInformation);
    check(
        s == STATUS_SUCCESS && u64::from_le_bytes(b[..8].try_into().unwrap_or_default()) == 0x118,
        "position",
    )?;
    let (s, _) = query(h, &mut b[..4], FileModeInformation);
    check(
        s == STATUS_SUCCESS
            && u32::from_le_bytes(b[..4].try_into().unwrap_or_default())
                == FILE_SYNCHRONOUS_IO_NONALERT,
        "mode",
    )?;
    let (s, _) = query(h, &mut b[..4], FileAccessInformation);
    check(
        s == STATUS_SUCCESS
            && u32::from_le_bytes(b[..4].try_into().unwrap_or_default())
                == FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES,
        "access",
    )?;
    let (s, _) = query(h, &mut b[..0x20], FileBasicInformation);
    check(s == STATUS_INFO_LENGTH_MISMATCH, "short buffer")?;
    let (s, _) = query(h, &mut b, 0x7F);
    check(s == STATUS_INVALID_INFO_CLASS, "unknown class")?;
    nt_close(h);
    Ok(())
}

pub const TESTS: &[Test] = &[
    ("io.fastio.read_write", t_fast_read_write),
    ("io.fastio.query_information", t_query_information),
];
