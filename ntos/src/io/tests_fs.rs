//! Boot tests of the mount path (`io/fs.rs`) and ntfs.sys (`fs.` prefix),
//! all through the native services on `\??\C:` paths: the volume is
//! mounted by its first open below it, and every request goes to ntfs.sys's
//! volume device.

use super::file::*;
use super::fs::*;
use super::*;
use crate::ktest::{check, Test, TestResult};
use crate::ob::object::Mode;
use alloc::vec;
use wdk::fs::class::*;

pub const TESTS: &[Test] = &[
    ("fs.mount.registered_and_mounted", t_mounted),
    ("fs.open.ntoskrnl_matches_loaded_image", t_ntoskrnl),
    ("fs.open.statuses", t_statuses),
    ("fs.open.case_insensitive", t_case_insensitive),
    ("fs.dir.query_sys_wildcard", t_dir_query),
    ("fs.info.file_classes", t_file_info),
    ("fs.info.volume_classes", t_volume_info),
    ("fs.share.violation", t_share),
    ("fs.write.create_write_read_delete", t_create_write_delete),
];

const KERNEL: &str = "\\??\\C:\\Windows\\System32\\ntoskrnl.exe";

fn open_ex(
    path: &str,
    desired: u32,
    share: u32,
    disposition: u32,
    options: u32,
) -> Result<(u64, usize), NtStatus> {
    nt_create_file(
        path,
        &OpenPacket {
            desired: desired | SYNCHRONIZE,
            share,
            disposition,
            options: options | FILE_SYNCHRONOUS_IO_NONALERT,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: Mode::KernelMode,
        },
    )
}

fn open(path: &str, options: u32) -> Result<u64, NtStatus> {
    open_ex(
        path,
        FILE_READ_DATA | FILE_READ_ATTRIBUTES,
        FILE_SHARE_READ,
        FILE_OPEN,
        options,
    )
    .map(|(h, _)| h)
}

fn close(h: u64) {
    crate::ob::handle::nt_close(h);
}

fn args(iosb: &mut IO_STATUS_BLOCK) -> RequestArgs {
    RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb,
        mode: Mode::KernelMode,
    }
}

/// Reads at `offset`: (status, bytes).
fn read(h: u64, offset: i64, buf: &mut [u8]) -> (NtStatus, usize) {
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = args(&mut iosb);
    match nt_read_file(
        h,
        &a,
        buf.as_mut_ptr().cast(),
        buf.len() as u32,
        Some(offset),
        0,
    ) {
        Ok(s) => (s, iosb.Information),
        Err(e) => (e, 0),
    }
}

fn write(h: u64, offset: i64, buf: &[u8]) -> (NtStatus, usize) {
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = args(&mut iosb);
    match nt_write_file(
        h,
        &a,
        buf.as_ptr() as *mut _,
        buf.len() as u32,
        Some(offset),
        0,
    ) {
        Ok(s) => (s, iosb.Information),
        Err(e) => (e, 0),
    }
}

/// `NtQueryInformationFile` (io/info.rs) into a fresh buffer of `len`:
/// (status, bytes).
fn query(h: u64, class: u32, len: usize) -> (NtStatus, Vec<u8>) {
    let mut buf = vec![0u8; len];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    // SAFETY: the buffer and status block outlive the synchronous request.
    let s = unsafe {
        super::info::nt_query_information_file(
            h,
            &mut iosb,
            buf.as_mut_ptr().cast(),
            len as u32,
            class,
            Mode::KernelMode,
        )
    }
    .unwrap_or_else(|e| e);
    buf.truncate(iosb.Information.min(len));
    (s, buf)
}

fn set(h: u64, class: u32, data: &[u8]) -> NtStatus {
    let mut d = data.to_vec();
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = args(&mut iosb);
    // SAFETY: the buffer outlives the synchronous request.
    unsafe { nt_set_information_file(h, &a, d.as_mut_ptr().cast(), d.len() as u32, class) }
        .unwrap_or_else(|e| e)
}

fn query_volume(h: u64, class: u32, len: usize) -> (NtStatus, Vec<u8>) {
    let mut buf = vec![0u8; len];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = args(&mut iosb);
    // SAFETY: the buffer outlives the synchronous request.
    let s = unsafe {
        nt_query_volume_information_file(h, &a, buf.as_mut_ptr().cast(), len as u32, class)
    }
    .unwrap_or_else(|e| e);
    buf.truncate(iosb.Information.min(len));
    (s, buf)
}

/// `\Device\HarddiskVolume2` itself (the device holding the VPB).
fn volume_device() -> Result<*mut DEVICE_OBJECT, &'static str> {
    let (file, _) = io_get_device_object_pointer("\\Device\\HarddiskVolume2", 0)
        .map_err(|_| "no HarddiskVolume2")?;
    // SAFETY: the file object is referenced until dropped below; the boot
    // volume's device lives for the system.
    let dev = unsafe { (*file).DeviceObject };
    if let Some(id) = object_of(file as u64, IoKind::File) {
        ob_dereference_object(id);
    }
    Ok(dev)
}

/// The driver object named `name`.
fn driver_named(name: &str) -> Option<*mut DRIVER_OBJECT> {
    let id = crate::ob::with_ob(
        |st| match st.ns.lookup(name, ::ob::OBJ_CASE_INSENSITIVE, None) {
            Ok(::ob::namespace::Lookup::Found(id)) => Some(id),
            _ => None,
        },
    )?;
    match body_of(id) {
        Some((b, IoKind::Driver)) => Some(b as *mut DRIVER_OBJECT),
        _ => None,
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        .unwrap_or(0)
}

fn i64_at(b: &[u8], o: usize) -> i64 {
    let mut a = [0u8; 8];
    if let Some(x) = b.get(o..o + 8) {
        a.copy_from_slice(x);
    }
    i64::from_le_bytes(a)
}

fn utf16_at(b: &[u8], o: usize, bytes: usize) -> String {
    let units: Vec<u16> = b
        .get(o..o + bytes)
        .unwrap_or(&[])
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// The file's size from `FileStandardInformation`.
fn file_size(h: u64) -> Result<i64, &'static str> {
    let (s, b) = query(h, FileStandardInformation, 24);
    check(
        s.is_success() && b.len() == 24,
        "FileStandardInformation failed",
    )?;
    Ok(i64_at(&b, 8))
}

/// ntfs.sys registered `\Ntfs` as a disk file system; after an open below
/// C:, `\Device\HarddiskVolume2`'s VPB is mounted, names a volume device
/// of `\FileSystem\Ntfs` (whose stack size is the volume's + 1) and counts
/// the open file.
fn t_mounted() -> TestResult {
    let fss = registered(FILE_DEVICE_DISK_FILE_SYSTEM);
    check(!fss.is_empty(), "no disk file system registered")?;
    let h = open(KERNEL, FILE_NON_DIRECTORY_FILE).map_err(|_| "opening ntoskrnl.exe failed")?;
    let dev = volume_device()?;
    // SAFETY: the volume device stays (it is the boot volume); its VPB lives with it.
    let r = unsafe {
        let vpb = (*dev).Vpb;
        if vpb.is_null() {
            Err("HarddiskVolume2 has no VPB")
        } else if (*vpb).Flags & VPB_MOUNTED == 0 || (*vpb).DeviceObject.is_null() {
            Err("the VPB is not mounted after an open")
        } else if (*vpb).ReferenceCount == 0 {
            Err("the open file does not reference the VPB")
        } else {
            let vdo = (*vpb).DeviceObject;
            let drv = (*vdo).DriverObject;
            let fs_drv = (*fss[0]).DriverObject;
            if drv != fs_drv {
                Err("the volume device is not the file system's")
            } else if (*vdo).DeviceType != FILE_DEVICE_DISK_FILE_SYSTEM {
                Err("the volume device's type is not FILE_DEVICE_DISK_FILE_SYSTEM")
            } else if (*vpb).RealDevice != dev {
                Err("Vpb->RealDevice is not the volume")
            } else if ((*vdo).StackSize as i32)
                < (*super::device::io_get_attached_device(dev)).StackSize as i32 + 1
            {
                Err("the volume device's stack is too short")
            } else {
                if driver_named("\\FileSystem\\Ntfs") != Some(drv) {
                    Err("the file system driver is not \\FileSystem\\Ntfs")
                } else {
                    Ok(())
                }
            }
        }
    };
    close(h);
    r?;
    Ok(())
}

/// ntoskrnl.exe read through ntfs.sys: its headers and every read-only
/// section equal the image winload mapped from the same file, and its
/// size covers every section's raw data.
fn t_ntoskrnl() -> TestResult {
    let h = open(KERNEL, FILE_NON_DIRECTORY_FILE).map_err(|_| "opening ntoskrnl.exe failed")?;
    let r = (|| {
        let size = file_size(h)? as usize;
        check(
            size > 4096 && size < 64 << 20,
            "implausible ntoskrnl.exe size",
        )?;
        let mut file = vec![0u8; size];
        // Read in odd-sized pieces so offsets are unaligned.
        let mut off = 0;
        while off < size {
            let n = (size - off).min(100_000 + 13);
            let (s, got) = read(h, off as i64, &mut file[off..off + n]);
            check(s.is_success() && got == n, "a read of ntoskrnl.exe failed")?;
            off += n;
        }
        let (s, _) = read(h, size as i64, &mut [0u8; 16]);
        check(
            s == STATUS_END_OF_FILE,
            "a read at the end is not STATUS_END_OF_FILE",
        )?;
        let k = crate::mm::ldr::loaded_modules();
        let k = k.first().ok_or("no loaded modules")?;
        // SAFETY: winload maps ntoskrnl's SizeOfImage bytes for the life of
        // the system; the read-only pages compared are never written.
        let image = unsafe {
            core::slice::from_raw_parts(k.dll_base as *const u8, k.size_of_image as usize)
        };
        let lfanew = u32_at(&file, 0x3C) as usize;
        check(
            &file[..2] == b"MZ" && file.get(lfanew..lfanew + 4) == Some(b"PE\0\0"),
            "not a PE",
        )?;
        let sections = u16::from_le_bytes([file[lfanew + 6], file[lfanew + 7]]) as usize;
        let opt = u16::from_le_bytes([file[lfanew + 20], file[lfanew + 21]]) as usize;
        let size_of_headers = u32_at(&file, lfanew + 24 + 60) as usize;
        check(
            file[..size_of_headers] == image[..size_of_headers],
            "ntoskrnl.exe's headers differ from the loaded image",
        )?;
        let table = lfanew + 24 + opt;
        let mut compared = 0;
        for i in 0..sections {
            let s = table + 40 * i;
            let vsize = u32_at(&file, s + 8) as usize;
            let va = u32_at(&file, s + 12) as usize;
            let raw = u32_at(&file, s + 16) as usize;
            let ptr = u32_at(&file, s + 20) as usize;
            let ch = u32_at(&file, s + 36);
            check(
                ptr + raw <= size,
                "a section's raw data is past the end of the file",
            )?;
            // Read-only, not discardable: what the loader leaves as in the file.
            if ch & 0x8000_0000 != 0 || ch & 0x0200_0000 != 0 {
                continue;
            }
            let n = raw.min(vsize);
            check(
                file[ptr..ptr + n] == image[va..va + n],
                "a read-only section differs from the loaded image",
            )?;
            compared += n;
        }
        check(compared > 0x10000, "too little of ntoskrnl.exe compared")
    })();
    close(h);
    r
}

/// The statuses Windows returns for the open errors.
fn t_statuses() -> TestResult {
    check(
        open(KERNEL, FILE_DIRECTORY_FILE) == Err(STATUS_NOT_A_DIRECTORY),
        "FILE_DIRECTORY_FILE on a file is not STATUS_NOT_A_DIRECTORY",
    )?;
    check(
        open("\\??\\C:\\Windows", FILE_NON_DIRECTORY_FILE) == Err(STATUS_FILE_IS_A_DIRECTORY),
        "FILE_NON_DIRECTORY_FILE on a directory is not STATUS_FILE_IS_A_DIRECTORY",
    )?;
    check(
        open("\\??\\C:\\Windows\\System32\\nosuchfile.exe", 0) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
        "a missing file is not STATUS_OBJECT_NAME_NOT_FOUND",
    )?;
    check(
        open("\\??\\C:\\Windows\\NoSuchDir\\ntoskrnl.exe", 0) == Err(STATUS_OBJECT_PATH_NOT_FOUND),
        "a missing directory is not STATUS_OBJECT_PATH_NOT_FOUND",
    )?;
    check(
        open("\\??\\C:\\Windows\\System32\\ntoskrnl.exe\\x", 0)
            == Err(STATUS_OBJECT_PATH_NOT_FOUND),
        "a file used as a directory is not STATUS_OBJECT_PATH_NOT_FOUND",
    )?;
    check(
        open("\\??\\C:\\Windows\\a*b", 0) == Err(STATUS_OBJECT_NAME_INVALID),
        "a wildcard in a name is not STATUS_OBJECT_NAME_INVALID",
    )?;
    check(
        open(KERNEL, FILE_DIRECTORY_FILE | FILE_NON_DIRECTORY_FILE)
            == Err(STATUS_INVALID_PARAMETER),
        "FILE_DIRECTORY_FILE | FILE_NON_DIRECTORY_FILE is not STATUS_INVALID_PARAMETER",
    )?;
    check(
        open(KERNEL, FILE_OPEN_BY_FILE_ID) == Err(STATUS_NOT_IMPLEMENTED),
        "FILE_OPEN_BY_FILE_ID is not STATUS_NOT_IMPLEMENTED",
    )?;
    // A directory opens as one.
    let h = open("\\??\\C:\\Windows\\System32", FILE_DIRECTORY_FILE)
        .map_err(|_| "opening System32 as a directory failed")?;
    let (s, _) = read(h, 0, &mut [0u8; 16]);
    close(h);
    check(
        s == STATUS_INVALID_DEVICE_REQUEST,
        "reading a directory is not STATUS_INVALID_DEVICE_REQUEST",
    )
}

/// Upper/lower case variants open the same file (same file id).
fn t_case_insensitive() -> TestResult {
    let a = open(KERNEL, 0).map_err(|_| "open failed")?;
    let b = open("\\??\\c:\\WINDOWS\\system32\\NtOsKrnl.EXE", 0);
    let (_, ia) = query(a, FileInternalInformation, 8);
    close(a);
    let b = b.map_err(|_| "the mixed-case open failed")?;
    let (_, ib) = query(b, FileInternalInformation, 8);
    let (s, n) = query(b, FileNameInformation, 512);
    close(b);
    check(
        ia.len() == 8 && ia == ib,
        "the two opens are different files",
    )?;
    check(s.is_success(), "FileNameInformation failed")?;
    let name = utf16_at(&n, 4, u32_at(&n, 0) as usize);
    check(
        name == "\\Windows\\System32\\ntoskrnl.exe",
        "FileNameInformation is not the name as stored",
    )
}

/// Names of a directory query: (status, names) in `FileNamesInformation`
/// or the class given, following `NextEntryOffset`.
fn list(h: u64, class: u32, pattern: Option<&str>, restart: bool) -> (NtStatus, Vec<String>) {
    let mut buf = vec![0u8; 4096];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = args(&mut iosb);
    // SAFETY: the buffer outlives the synchronous request.
    let s = unsafe {
        nt_query_directory_file(
            h,
            &a,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            class,
            false,
            pattern,
            restart,
        )
    }
    .unwrap_or_else(|e| e);
    let mut names = Vec::new();
    if s.is_success() {
        let off = wdk::fs::dir_name_offset(class).unwrap_or(0);
        let len_at = if class == FileNamesInformation {
            8
        } else {
            0x3C
        };
        let mut p = 0usize;
        loop {
            let len = u32_at(&buf, p + len_at) as usize;
            names.push(utf16_at(&buf, p + off, len));
            let next = u32_at(&buf, p) as usize;
            if next == 0 {
                break;
            }
            p += next;
        }
    }
    (s, names)
}

/// `*.sys` in `\Windows\System32\drivers` returns the driver images, in
/// several calls, then STATUS_NO_MORE_FILES; a pattern matching nothing is
/// STATUS_NO_SUCH_FILE; `FileBothDirectoryInformation` and
/// `FileIdBothDirectoryInformation` give the same names.
fn t_dir_query() -> TestResult {
    let dir = "\\??\\C:\\Windows\\System32\\drivers";
    let h = open_ex(
        dir,
        FILE_LIST_DIRECTORY,
        FILE_SHARE_READ,
        FILE_OPEN,
        FILE_DIRECTORY_FILE,
    )
    .map_err(|_| "opening drivers failed")?
    .0;
    let r = (|| {
        let mut all = Vec::new();
        let mut first = true;
        loop {
            let (s, names) = list(h, FileNamesInformation, Some("*.sys"), false);
            if s == STATUS_NO_MORE_FILES {
                break;
            }
            check(s.is_success(), "a query of *.sys failed")?;
            check(
                !names.is_empty() || !first,
                "the first query returned nothing",
            )?;
            first = false;
            all.extend(names);
            check(all.len() < 10_000, "the enumeration does not end")?;
        }
        for want in [
            "ntfs.sys",
            "disk.sys",
            "null.sys",
            "volmgr.sys",
            "storahci.sys",
        ] {
            check(
                all.iter().any(|n| n.eq_ignore_ascii_case(want)),
                "a driver is missing from *.sys",
            )?;
        }
        check(
            all.iter().all(|n| n.to_ascii_lowercase().ends_with(".sys")),
            "*.sys returned a name not ending in .sys",
        )?;
        for class in [
            FileDirectoryInformation,
            FileFullDirectoryInformation,
            FileBothDirectoryInformation,
            FileIdBothDirectoryInformation,
        ] {
            let (s, names) = list(h, class, Some("NT?S.SYS"), true);
            check(
                s.is_success() && names.len() == 1 && names[0].eq_ignore_ascii_case("ntfs.sys"),
                "NT?S.SYS did not find exactly ntfs.sys",
            )?;
        }
        Ok(())
    })();
    close(h);
    r?;
    let h = open_ex(
        dir,
        FILE_LIST_DIRECTORY,
        FILE_SHARE_READ,
        FILE_OPEN,
        FILE_DIRECTORY_FILE,
    )
    .map_err(|_| "reopening drivers failed")?
    .0;
    let (s, _) = list(h, FileNamesInformation, Some("*.nosuchext"), false);
    // "." and ".." in a subdirectory.
    let (s2, dots) = list(h, FileNamesInformation, Some("*"), true);
    close(h);
    check(
        s == STATUS_NO_SUCH_FILE,
        "no match is not STATUS_NO_SUCH_FILE",
    )?;
    check(
        s2.is_success() && dots.len() >= 2 && dots[0] == "." && dots[1] == "..",
        "a subdirectory does not list . and .. first",
    )
}

/// The information classes on ntoskrnl.exe agree with each other.
fn t_file_info() -> TestResult {
    let h = open(KERNEL, 0).map_err(|_| "open failed")?;
    let r = (|| {
        let size = file_size(h)?;
        let (s, basic) = query(h, FileBasicInformation, 40);
        check(
            s.is_success() && basic.len() == 40,
            "FileBasicInformation failed",
        )?;
        check(i64_at(&basic, 0) > 0, "no creation time")?;
        check(
            u32_at(&basic, 32) & 0x10 == 0,
            "a file reported as a directory",
        )?;
        let (s, _) = query(h, FileBasicInformation, 8);
        check(
            s == STATUS_INFO_LENGTH_MISMATCH,
            "a short buffer is not STATUS_INFO_LENGTH_MISMATCH",
        )?;
        let (s, all) = query(h, FileAllInformation, 1024);
        check(s.is_success(), "FileAllInformation failed")?;
        check(
            all[..40] == basic[..],
            "FileAllInformation's basic part differs",
        )?;
        check(
            i64_at(&all, 0x28 + 8) == size,
            "FileAllInformation's size differs",
        )?;
        let (s, net) = query(h, FileNetworkOpenInformation, 56);
        check(
            s.is_success() && i64_at(&net, 0x28) == size,
            "FileNetworkOpenInformation differs",
        )?;
        let (s, tag) = query(h, FileAttributeTagInformation, 8);
        check(
            s.is_success() && u32_at(&tag, 4) == 0,
            "FileAttributeTagInformation failed",
        )?;
        let (s, st) = query(h, FileStreamInformation, 256);
        check(s.is_success(), "FileStreamInformation failed")?;
        let name = utf16_at(&st, 24, u32_at(&st, 4) as usize);
        check(
            name == "::$DATA" && i64_at(&st, 8) == size,
            "FileStreamInformation does not report ::$DATA",
        )?;
        let (s, short) = query(h, FileNameInformation, 10);
        check(
            s == STATUS_BUFFER_OVERFLOW && short.len() == 10,
            "a cut name is not STATUS_BUFFER_OVERFLOW",
        )?;
        check(
            set(h, FilePositionInformation, &1234i64.to_le_bytes()).is_success(),
            "setting the position failed",
        )?;
        let (s, pos) = query(h, FilePositionInformation, 8);
        check(
            s.is_success() && i64_at(&pos, 0) == 1234,
            "the position did not stick",
        )?;
        Ok(())
    })();
    close(h);
    r
}

/// Volume information: NTFS attributes, sizes that fit the 64 MiB volume,
/// the serial in the VPB.
fn t_volume_info() -> TestResult {
    let h = open("\\??\\C:\\", FILE_DIRECTORY_FILE).map_err(|_| "opening the root failed")?;
    let r = (|| {
        let (s, a) = query_volume(h, FileFsAttributeInformation, 64);
        check(s.is_success(), "FileFsAttributeInformation failed")?;
        check(
            utf16_at(&a, 12, u32_at(&a, 8) as usize) == "NTFS",
            "not NTFS",
        )?;
        let (s, z) = query_volume(h, FileFsFullSizeInformation, 32);
        check(s.is_success(), "FileFsFullSizeInformation failed")?;
        let total = i64_at(&z, 0);
        let free = i64_at(&z, 16);
        let bytes = total * u32_at(&z, 24) as i64 * u32_at(&z, 28) as i64;
        check(
            bytes > 32 << 20 && bytes <= 64 << 20 && free > 0 && free < total,
            "implausible volume sizes",
        )?;
        let (s, v) = query_volume(h, FileFsVolumeInformation, 128);
        check(s.is_success(), "FileFsVolumeInformation failed")?;
        let dev = volume_device()?;
        // SAFETY: the boot volume's device and VPB live for the system.
        let serial = unsafe { (*(*dev).Vpb).SerialNumber };
        check(u32_at(&v, 8) == serial, "the serial differs from the VPB's")?;
        let (s, d) = query_volume(h, FileFsDeviceInformation, 8);
        check(
            s.is_success() && u32_at(&d, 0) == FILE_DEVICE_DISK,
            "FileFsDeviceInformation",
        )?;
        Ok(())
    })();
    close(h);
    r
}

/// A file opened without sharing cannot be opened again
/// (STATUS_SHARING_VIOLATION); once closed it can.
fn t_share() -> TestResult {
    let (a, _) = open_ex(KERNEL, FILE_READ_DATA, 0, FILE_OPEN, 0).map_err(|_| "open failed")?;
    let b = open(KERNEL, 0);
    close(a);
    check(b == Err(STATUS_SHARING_VIOLATION), "no sharing violation")?;
    let c = open(KERNEL, 0).map_err(|_| "the open after close failed")?;
    close(c);
    Ok(())
}

/// Create, write (resident, then past a cluster), read back, truncate,
/// FILE_CREATE collision, then delete on close.
fn t_create_write_delete() -> TestResult {
    let path = "\\??\\C:\\ntrs-fs-test.bin";
    let rw = FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | DELETE;
    let (h, info) = open_ex(path, rw, 0, FILE_OVERWRITE_IF, FILE_NON_DIRECTORY_FILE)
        .map_err(|_| "creating the test file failed")?;
    let r = (|| {
        check(
            info == FILE_CREATED || info == FILE_OVERWRITTEN,
            "create information",
        )?;
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (s, n) = write(h, 0, &data[..100]);
        check(s.is_success() && n == 100, "a small write failed")?;
        let (s, n) = write(h, 100, &data[100..]);
        check(
            s.is_success() && n == data.len() - 100,
            "a large write failed",
        )?;
        check(file_size(h)? == data.len() as i64, "the size after writing")?;
        let mut back = vec![0u8; data.len()];
        let (s, n) = read(h, 0, &mut back);
        check(
            s.is_success() && n == data.len() && back == data,
            "read back differs",
        )?;
        check(
            set(h, FileEndOfFileInformation, &5000i64.to_le_bytes()).is_success(),
            "truncating failed",
        )?;
        check(file_size(h)? == 5000, "the size after truncating")?;
        check(
            open_ex(path, rw, FILE_SHARE_READ, FILE_CREATE, 0).map(|_| ())
                == Err(STATUS_OBJECT_NAME_COLLISION),
            "FILE_CREATE of an existing file is not STATUS_OBJECT_NAME_COLLISION",
        )?;
        check(
            set(h, FileDispositionInformation, &[1]).is_success(),
            "setting the delete disposition failed",
        )?;
        Ok(())
    })();
    close(h);
    r?;
    check(
        open(path, 0) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
        "the deleted file still opens",
    )?;
    // FILE_DELETE_ON_CLOSE.
    let (h, _) = open_ex(path, rw, 0, FILE_CREATE, FILE_DELETE_ON_CLOSE)
        .map_err(|_| "creating the delete-on-close file failed")?;
    let (s, _) = write(h, 0, b"bye");
    close(h);
    check(s.is_success(), "writing the delete-on-close file failed")?;
    check(
        open(path, 0) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
        "the delete-on-close file still opens",
    )
}
