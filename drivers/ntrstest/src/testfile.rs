//! `\Device\NtrsTestFile`: an in-memory "file system" for the memory
//! manager's and the cache manager's boot tests before ntfs.sys exists.
//! `\Device\NtrsTestFile\name` opens (or creates) the file `name`, whose
//! data is a driver-held buffer; every open of one name shares one FCB
//! (`FsContext`, starting with an `FSRTL_COMMON_FCB_HEADER`) and one
//! `SECTION_OBJECT_POINTERS`, as a real file system's streams do, so the
//! memory manager finds one control area per file. Files live until the
//! driver unloads.
//!
//! Requests: CREATE (dispositions `FILE_OPEN` → `STATUS_OBJECT_NAME_NOT_FOUND`
//! for a missing file, `FILE_CREATE` → `STATUS_OBJECT_NAME_COLLISION` for an
//! existing one, the others open or create; `FILE_SUPERSEDE`/`OVERWRITE*`
//! truncate), CLEANUP, CLOSE, READ and WRITE (cached-style, non-cached and
//! paging I/O: a paging write never extends the file, it is clipped at the
//! end of file as file systems do; `FILE_WRITE_TO_END_OF_FILE` appends),
//! QUERY_INFORMATION (basic, standard, position) and SET_INFORMATION
//! (end-of-file, allocation, position, basic). The device itself (no name)
//! opens but has no data (`STATUS_INVALID_DEVICE_REQUEST`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use nt::status::*;
use rt::wdk::*;

static NAME: [u16; 21] = rt::utf16("\\Device\\NtrsTestFile\0");

/// `NodeTypeCode` of the FCBs (an ntrs value).
const NODE_TYPE_FCB: i16 = 0x7E01;
/// `FILE_ATTRIBUTE_NORMAL`.
const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;

/// One file: the header the cache and memory managers read first.
#[repr(C)]
struct Fcb {
    header: FSRTL_COMMON_FCB_HEADER,
    sop: SECTION_OBJECT_POINTERS,
    name: Vec<u16>,
    data: Vec<u8>,
    opens: u32,
}

impl Fcb {
    fn set_size(&mut self, size: usize) -> Result<(), NtStatus> {
        if size > self.data.len() {
            self.data
                .try_reserve(size - self.data.len())
                .map_err(|_| STATUS_DISK_FULL)?;
        }
        self.data.resize(size, 0);
        self.header.FileSize = size as i64;
        self.header.ValidDataLength = size as i64;
        if self.header.AllocationSize < size as i64 {
            self.header.AllocationSize = (size as i64 + 0xFFF) & !0xFFF;
        }
        Ok(())
    }
}

/// The FCB list and every FCB's data, under one spin flag. Nothing that
/// can fault (a caller's buffer, a mapped view) is touched while it is
/// held: such buffers go through a bounce copy.
struct Files {
    fcbs: Vec<*mut Fcb>,
}

static FILES_LOCK: AtomicBool = AtomicBool::new(false);
static mut FILES: Files = Files { fcbs: Vec::new() };
static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(ptr::null_mut());

struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        FILES_LOCK.store(false, Ordering::Release);
    }
}

/// Runs `f` with the file table locked.
fn with_files<R>(f: impl FnOnce(&mut Files) -> R) -> R {
    while FILES_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let _g = Guard;
    // SAFETY: the spin flag gives this closure the only access.
    f(unsafe { &mut *ptr::addr_of_mut!(FILES) })
}

fn upcase(c: u16) -> u16 {
    if (b'a' as u16..=b'z' as u16).contains(&c) {
        c - 32
    } else {
        c
    }
}

/// The name below the device (without leading `\`).
///
/// # Safety
/// `file` is the request's live file object.
unsafe fn file_name(file: *mut FILE_OBJECT) -> Vec<u16> {
    // SAFETY: the I/O manager keeps the file name with the file object.
    unsafe {
        let n = &(*file).FileName;
        let mut v = Vec::new();
        if !n.Buffer.is_null() {
            let s = core::slice::from_raw_parts(n.Buffer, n.Length as usize / 2);
            v.extend(s.iter().copied().skip_while(|&c| c == b'\\' as u16));
        }
        v
    }
}

fn create(file: *mut FILE_OBJECT, options: u32) -> Result<usize, NtStatus> {
    // SAFETY: the request's file object.
    let name = unsafe { file_name(file) };
    if name.is_empty() {
        return Ok(FILE_OPENED);
    }
    let disposition = options >> 24;
    let fcb = with_files(|f| {
        let found = f.fcbs.iter().copied().find(|&p| {
            // SAFETY: FCBs in the list are live (freed only at unload).
            let n = unsafe { &(*p).name };
            n.len() == name.len() && n.iter().zip(&name).all(|(a, b)| upcase(*a) == upcase(*b))
        });
        match (found, disposition) {
            (None, FILE_OPEN) => Err(STATUS_OBJECT_NAME_NOT_FOUND),
            (Some(_), FILE_CREATE) => Err(STATUS_OBJECT_NAME_COLLISION),
            (Some(p), _) => {
                // SAFETY: live FCB, table locked.
                let fcb = unsafe { &mut *p };
                let info = if matches!(
                    disposition,
                    FILE_SUPERSEDE | FILE_OVERWRITE | FILE_OVERWRITE_IF
                ) {
                    fcb.set_size(0)?;
                    if disposition == FILE_SUPERSEDE {
                        FILE_SUPERSEDED
                    } else {
                        FILE_OVERWRITTEN
                    }
                } else {
                    FILE_OPENED
                };
                fcb.opens += 1;
                Ok((p, info))
            }
            (None, _) => {
                f.fcbs
                    .try_reserve(1)
                    .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
                let fcb = Box::new(Fcb {
                    header: FSRTL_COMMON_FCB_HEADER {
                        NodeTypeCode: NODE_TYPE_FCB,
                        NodeByteSize: core::mem::size_of::<Fcb>() as i16,
                        Flags: 0,
                        IsFastIoPossible: 0,
                        Flags2: 0,
                        Reserved: 0,
                        Resource: ptr::null_mut(),
                        PagingIoResource: ptr::null_mut(),
                        AllocationSize: 0,
                        FileSize: 0,
                        ValidDataLength: 0,
                    },
                    sop: SECTION_OBJECT_POINTERS {
                        DataSectionObject: ptr::null_mut(),
                        SharedCacheMap: ptr::null_mut(),
                        ImageSectionObject: ptr::null_mut(),
                    },
                    name: name.clone(),
                    data: Vec::new(),
                    opens: 1,
                });
                let p = Box::into_raw(fcb);
                f.fcbs.push(p);
                Ok((p, FILE_CREATED))
            }
        }
    })?;
    let (p, info) = fcb;
    // SAFETY: the request's file object; the FCB lives until unload.
    unsafe {
        (*file).FsContext = p.cast();
        (*file).SectionObjectPointer = ptr::addr_of_mut!((*p).sop);
    }
    Ok(info)
}

/// The FCB of a request's file object (null for the device itself).
///
/// # Safety
/// `file` is the request's live file object.
unsafe fn fcb_of(file: *mut FILE_OBJECT) -> *mut Fcb {
    // SAFETY: as the caller guarantees.
    unsafe {
        if file.is_null() {
            ptr::null_mut()
        } else {
            (*file).FsContext.cast()
        }
    }
}

/// The request's data buffer: the MDL's system address (paging and direct
/// I/O) or the caller's buffer.
///
/// # Safety
/// `irp` is the request being handled.
unsafe fn buffer_of(irp: *mut IRP) -> *mut u8 {
    // SAFETY: the request's MDL describes locked pages; otherwise the
    // caller's buffer is valid for the request's length.
    unsafe {
        if !(*irp).MdlAddress.is_null() {
            MmGetSystemAddressForMdlSafe((*irp).MdlAddress, 0).cast()
        } else if !(*irp).AssociatedIrp.SystemBuffer.is_null() {
            (*irp).AssociatedIrp.SystemBuffer.cast()
        } else {
            (*irp).UserBuffer.cast()
        }
    }
}

fn read(fcb: *mut Fcb, irp: *mut IRP, offset: i64, length: usize) -> Result<usize, NtStatus> {
    // SAFETY: the request's buffer is valid for `length` bytes.
    let buf = unsafe { buffer_of(irp) };
    if length == 0 {
        return Ok(0);
    }
    if buf.is_null() || offset < 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let mut bounce: Vec<u8> = Vec::new();
    bounce
        .try_reserve(length)
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    with_files(|_| {
        // SAFETY: live FCB, table locked.
        let data = unsafe { &(*fcb).data };
        let off = offset as usize;
        if offset as u64 >= data.len() as u64 {
            return Err(STATUS_END_OF_FILE);
        }
        let n = length.min(data.len() - off);
        bounce.extend_from_slice(&data[off..off + n]);
        Ok(())
    })?;
    // SAFETY: the buffer holds `length` >= bounce.len() bytes.
    unsafe { ptr::copy_nonoverlapping(bounce.as_ptr(), buf, bounce.len()) };
    Ok(bounce.len())
}

fn write(
    fcb: *mut Fcb,
    irp: *mut IRP,
    offset: i64,
    length: usize,
    paging: bool,
) -> Result<usize, NtStatus> {
    // SAFETY: the request's buffer is valid for `length` bytes.
    let buf = unsafe { buffer_of(irp) };
    if length == 0 {
        return Ok(0);
    }
    if buf.is_null() {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let mut bounce: Vec<u8> = Vec::new();
    bounce
        .try_reserve(length)
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: as above.
    bounce.extend_from_slice(unsafe { core::slice::from_raw_parts(buf, length) });
    with_files(|_| {
        // SAFETY: live FCB, table locked.
        let fcb = unsafe { &mut *fcb };
        let size = fcb.data.len();
        // FILE_WRITE_TO_END_OF_FILE: LowPart 0xFFFFFFFF, HighPart -1.
        let off = if offset == -1 && !paging {
            size
        } else if offset < 0 {
            return Err(STATUS_INVALID_PARAMETER);
        } else {
            offset as usize
        };
        let n = if paging {
            // Paging I/O never extends a file.
            if off >= size {
                return Ok(0);
            }
            length.min(size - off)
        } else {
            let end = off.checked_add(length).ok_or(STATUS_INVALID_PARAMETER)?;
            if end > size {
                fcb.set_size(end)?;
            }
            length
        };
        fcb.data[off..off + n].copy_from_slice(&bounce[..n]);
        Ok(n)
    })
}

#[allow(non_upper_case_globals)]
fn query(fcb: *mut Fcb, irp: *mut IRP, sl: *mut IO_STACK_LOCATION) -> Result<usize, NtStatus> {
    use file_information_class::*;
    // SAFETY: the request's stack location and system buffer.
    let (class, len, buf, file) = unsafe {
        (
            (*sl).Parameters.QueryFile.FileInformationClass,
            (*sl).Parameters.QueryFile.Length as usize,
            (*irp).AssociatedIrp.SystemBuffer,
            (*sl).FileObject,
        )
    };
    fn put<T: Copy>(buf: *mut c_void, len: usize, v: T) -> Result<usize, NtStatus> {
        let n = core::mem::size_of::<T>();
        if len < n || buf.is_null() {
            return Err(STATUS_INFO_LENGTH_MISMATCH);
        }
        // SAFETY: the system buffer holds `len` >= n bytes.
        unsafe { ptr::copy_nonoverlapping(&v as *const T as *const u8, buf.cast(), n) };
        Ok(n)
    }
    let (alloc, eof) = with_files(|_| {
        // SAFETY: live FCB, table locked.
        let h = unsafe { &(*fcb).header };
        (h.AllocationSize, h.FileSize)
    });
    match class {
        FileBasicInformation => put(
            buf,
            len,
            FILE_BASIC_INFORMATION {
                FileAttributes: FILE_ATTRIBUTE_NORMAL,
                ..Default::default()
            },
        ),
        FileStandardInformation => put(
            buf,
            len,
            FILE_STANDARD_INFORMATION {
                AllocationSize: alloc,
                EndOfFile: eof,
                NumberOfLinks: 1,
                DeletePending: 0,
                Directory: 0,
            },
        ),
        FilePositionInformation => put(
            buf,
            len,
            FILE_POSITION_INFORMATION {
                // SAFETY: the request's file object.
                CurrentByteOffset: unsafe { (*file).CurrentByteOffset },
            },
        ),
        _ => Err(STATUS_INVALID_PARAMETER),
    }
}

#[allow(non_upper_case_globals)]
fn set(fcb: *mut Fcb, irp: *mut IRP, sl: *mut IO_STACK_LOCATION) -> Result<usize, NtStatus> {
    use file_information_class::*;
    // SAFETY: the request's stack location and system buffer.
    let (class, len, buf, file) = unsafe {
        (
            (*sl).Parameters.SetFile.FileInformationClass,
            (*sl).Parameters.SetFile.Length as usize,
            (*irp).AssociatedIrp.SystemBuffer,
            (*sl).FileObject,
        )
    };
    let get = |n: usize| -> Result<i64, NtStatus> {
        if buf.is_null() || len < n {
            return Err(STATUS_INFO_LENGTH_MISMATCH);
        }
        // SAFETY: the system buffer holds at least 8 bytes.
        Ok(unsafe { (buf as *const i64).read_unaligned() })
    };
    match class {
        FileEndOfFileInformation => {
            let v = get(8)?;
            let size = usize::try_from(v).map_err(|_| STATUS_INVALID_PARAMETER)?;
            // SAFETY: live FCB, table locked.
            with_files(|_| unsafe { (*fcb).set_size(size) })?;
            Ok(0)
        }
        FileAllocationInformation => {
            let v = get(8)?;
            if v < 0 {
                return Err(STATUS_INVALID_PARAMETER);
            }
            with_files(|_| {
                // SAFETY: live FCB, table locked.
                let f = unsafe { &mut *fcb };
                let a = (v + 0xFFF) & !0xFFF;
                if (a as usize) < f.data.len() {
                    // Allocation below the end of file truncates the file (NTFS).
                    f.set_size(v as usize)?;
                }
                f.header.AllocationSize = a;
                Ok::<(), NtStatus>(())
            })?;
            Ok(0)
        }
        FilePositionInformation => {
            let v = get(8)?;
            if v < 0 {
                return Err(STATUS_INVALID_PARAMETER);
            }
            // SAFETY: the request's file object.
            unsafe { (*file).CurrentByteOffset = v };
            Ok(0)
        }
        FileBasicInformation => {
            if len < core::mem::size_of::<FILE_BASIC_INFORMATION>() {
                return Err(STATUS_INFO_LENGTH_MISMATCH);
            }
            Ok(0)
        }
        _ => Err(STATUS_INVALID_PARAMETER),
    }
}

/// The dispatch routine of `\Device\NtrsTestFile`.
///
/// # Safety
/// Called by the I/O manager with an IRP whose current location is ours.
pub unsafe extern "system" fn dispatch(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> nt::NtStatus {
    // SAFETY: the I/O manager passes an IRP we own until we complete it.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let file = (*sl).FileObject;
        let fcb = fcb_of(file);
        let paging = (*irp).Flags & IRP_PAGING_IO != 0;
        let r = match (*sl).MajorFunction {
            IRP_MJ_CREATE => create(file, (*sl).Parameters.Create.Options),
            IRP_MJ_CLEANUP => Ok(0),
            IRP_MJ_CLOSE => {
                if !fcb.is_null() {
                    with_files(|_| (*fcb).opens = (*fcb).opens.saturating_sub(1));
                }
                Ok(0)
            }
            IRP_MJ_DEVICE_CONTROL
                if (*sl).Parameters.DeviceIoControl.IoControlCode
                    == crate::timertest::IOCTL_NTRSTEST_TIMERS =>
            {
                crate::timertest::ioctl(irp, sl)
            }
            _ if fcb.is_null() => Err(STATUS_INVALID_DEVICE_REQUEST),
            IRP_MJ_READ => read(
                fcb,
                irp,
                (*sl).Parameters.Read.ByteOffset,
                (*sl).Parameters.Read.Length as usize,
            ),
            IRP_MJ_WRITE => write(
                fcb,
                irp,
                (*sl).Parameters.Read.ByteOffset,
                (*sl).Parameters.Read.Length as usize,
                paging,
            ),
            IRP_MJ_QUERY_INFORMATION => query(fcb, irp, sl),
            IRP_MJ_SET_INFORMATION => set(fcb, irp, sl),
            IRP_MJ_FLUSH_BUFFERS => Ok(0),
            _ => Err(STATUS_INVALID_DEVICE_REQUEST),
        };
        let (status, info) = match r {
            Ok(n) => (STATUS_SUCCESS, n),
            Err(e) => (e, 0),
        };
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = info;
        IoCompleteRequest(irp, IO_NO_INCREMENT);
        status
    }
}

/// Creates `\Device\NtrsTestFile` and routes the driver's requests here.
///
/// # Safety
/// Called from DriverEntry with the driver object.
pub unsafe fn create_device(driver: *mut DRIVER_OBJECT) -> nt::NtStatus {
    let mut name = rt::unicode_string(&NAME);
    let mut device: *mut DEVICE_OBJECT = ptr::null_mut();
    // SAFETY: valid driver object, name and out pointer.
    let status =
        unsafe { IoCreateDevice(driver, 0, &mut name, FILE_DEVICE_UNKNOWN, 0, 0, &mut device) };
    if !status.is_success() {
        return status;
    }
    // SAFETY: the driver object is ours during DriverEntry; the device is new.
    unsafe {
        for mj in [
            IRP_MJ_CREATE,
            IRP_MJ_CLOSE,
            IRP_MJ_CLEANUP,
            IRP_MJ_READ,
            IRP_MJ_WRITE,
            IRP_MJ_QUERY_INFORMATION,
            IRP_MJ_SET_INFORMATION,
            IRP_MJ_FLUSH_BUFFERS,
            IRP_MJ_DEVICE_CONTROL,
        ] {
            (*driver).MajorFunction[mj as usize] = Some(dispatch);
        }
        (*device).Flags &= !DO_DEVICE_INITIALIZING;
    }
    DEVICE.store(device, Ordering::Release);
    STATUS_SUCCESS
}

/// DriverUnload's part: deletes the device and every file.
pub fn delete_device() {
    let d = DEVICE.swap(ptr::null_mut(), Ordering::AcqRel);
    if !d.is_null() {
        // SAFETY: our device, created in DriverEntry.
        unsafe { IoDeleteDevice(d) };
    }
    let fcbs = with_files(|f| core::mem::take(&mut f.fcbs));
    for p in fcbs {
        // SAFETY: FCBs came from Box::into_raw and nothing uses them after
        // unload (the I/O manager unloads only without open files).
        drop(unsafe { Box::from_raw(p) });
    }
}
