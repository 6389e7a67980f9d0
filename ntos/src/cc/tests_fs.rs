//! Boot tests of cached I/O through ntfs.sys (`fs.cache.*`): the cache
//! manager under a real file system, through the native services on
//! `\??\C:` paths (docs/cc.md, docs/ntfs.md "The driver"); and of
//! ntfs.sys's rename, hard links and dispositions (`fs.set.*`).

use crate::io::file::*;
use crate::ktest::{check, Test, TestResult};
use crate::ob::handle::{nt_close, ob_reference_object_by_handle};
use crate::ob::object::Mode;
use alloc::vec;
use alloc::vec::Vec;
use nt::status::*;
use wdk::fs::class::*;
use wdk::*;

pub const TESTS: &[Test] = &[
    ("fs.cache.large_file_cached_and_noncached", t_large_file),
    ("fs.cache.mapped_view_agrees_with_write", t_mapped_view),
    ("fs.set.rename_link_disposition_sharing", t_rename_link),
];

fn open(path: &str, desired: u32, disposition: u32, options: u32) -> Result<u64, NtStatus> {
    nt_create_file(
        path,
        &OpenPacket {
            desired: desired | SYNCHRONIZE,
            share: FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            disposition,
            options: options | FILE_SYNCHRONOUS_IO_NONALERT,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: Mode::KernelMode,
        },
    )
    .map(|(h, _)| h)
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

/// `NtReadFile`/`NtWriteFile` at `offset`: the bytes moved.
fn io(h: u64, buf: &mut [u8], offset: i64, write: bool) -> Result<usize, NtStatus> {
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = args(&mut iosb);
    let (p, n) = (buf.as_mut_ptr().cast(), buf.len() as u32);
    let s = if write {
        nt_write_file(h, &a, p, n, Some(offset), 0)
    } else {
        nt_read_file(h, &a, p, n, Some(offset), 0)
    }?;
    if !s.is_success() {
        return Err(s);
    }
    Ok(iosb.Information)
}

fn set(h: u64, class: u32, data: &[u8]) -> NtStatus {
    let mut d = data.to_vec();
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = args(&mut iosb);
    // SAFETY: the buffer outlives the synchronous request.
    unsafe {
        crate::io::fs::nt_set_information_file(h, &a, d.as_mut_ptr().cast(), d.len() as u32, class)
    }
    .unwrap_or_else(|e| e)
}

/// The file object behind a handle (the handle keeps it alive).
fn file_object(h: u64) -> Result<*mut FILE_OBJECT, &'static str> {
    let r = ob_reference_object_by_handle(
        h,
        0,
        Some(&crate::io::IO_FILE_OBJECT_TYPE),
        Mode::KernelMode,
    )
    .map_err(|_| "no file object behind the handle")?;
    // `r` drops its reference on return; the handle keeps the object.
    crate::io::file::file_of(r.id).ok_or("not a file object")
}

/// The test pattern: each 4-byte word holds its offset mixed with a seed,
/// so a page read from the wrong place is seen.
fn fill(buf: &mut [u8], offset: u64, seed: u32) {
    for (i, c) in buf.chunks_mut(4).enumerate() {
        let w = ((offset as u32).wrapping_add(i as u32 * 4) ^ seed).wrapping_mul(0x9E37_79B1);
        let b = w.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
}

fn delete(h: u64) -> TestResult {
    check(
        set(h, FileDispositionInformation, &[1]).is_success(),
        "setting the delete disposition failed",
    )
}

/// Size of the large file: 4 MiB (the boot image's system volume is 64
/// MiB, most of it taken by the system files).
const LARGE: usize = 4 << 20;
const CHUNK: usize = 256 * 1024;

fn t_large_file() -> TestResult {
    let path = "\\??\\C:\\ntrs-cache-test.bin";
    let rw = FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | DELETE;
    let h = open(path, rw, FILE_OVERWRITE_IF, FILE_NON_DIRECTORY_FILE)
        .map_err(|_| "creating the test file failed")?;
    let mut nc = 0;
    let r = (|| {
        let mut buf = vec![0u8; CHUNK];
        // Written cached, chunk by chunk, each extending the file.
        for off in (0..LARGE).step_by(CHUNK) {
            fill(&mut buf, off as u64, 0x5EED);
            check(
                io(h, &mut buf, off as i64, true) == Ok(CHUNK),
                "a cached write failed",
            )?;
        }
        let fo = file_object(h)?;
        // SAFETY: the handle keeps the file object.
        let (cached, sop) =
            unsafe { (!(*fo).PrivateCacheMap.is_null(), (*fo).SectionObjectPointer) };
        check(
            cached,
            "the writes did not set up caching on the file object",
        )?;
        // SAFETY: as above: the SCB's section object pointers.
        let shared = unsafe { !(*sop).SharedCacheMap.is_null() };
        check(shared, "no shared cache map for the stream")?;
        // Read back cached (after the first, through fast I/O).
        let mut want = vec![0u8; CHUNK];
        for off in (0..LARGE).step_by(CHUNK) {
            fill(&mut want, off as u64, 0x5EED);
            check(
                io(h, &mut buf, off as i64, false) == Ok(CHUNK),
                "a cached read failed",
            )?;
            check(buf == want, "cached read back differs")?;
        }
        let mut end = [0u8; 16];
        check(
            io(h, &mut end, LARGE as i64, false) == Err(STATUS_END_OF_FILE),
            "a cached read at the end of file is not STATUS_END_OF_FILE",
        )?;
        // Non-cached: a second handle opened FILE_NO_INTERMEDIATE_BUFFERING
        // reads what the cache holds (the range is flushed first).
        nc = open(path, rw, FILE_OPEN, FILE_NO_INTERMEDIATE_BUFFERING)
            .map_err(|_| "opening non-cached failed")?;
        for off in (0..LARGE).step_by(CHUNK) {
            fill(&mut want, off as u64, 0x5EED);
            check(
                io(nc, &mut buf, off as i64, false) == Ok(CHUNK),
                "a non-cached read failed",
            )?;
            if let Some(i) = (0..CHUNK).find(|&i| buf[i] != want[i]) {
                let bad = (0..CHUNK).filter(|&j| buf[j] != want[j]).count();
                let zero_pages = buf
                    .chunks(4096)
                    .filter(|p| p.iter().all(|&b| b == 0))
                    .count();
                let mut again = vec![0u8; CHUNK];
                let cached_ok = io(h, &mut again, off as i64, false) == Ok(CHUNK) && again == want;
                let mut again2 = vec![0u8; CHUNK];
                let nc_again =
                    io(nc, &mut again2, off as i64, false) == Ok(CHUNK) && again2 == want;
                crate::dbg_println!(
                    "fs.cache: non-cached read differs at {:#x} (got {:02x?}, want {:02x?}); {} bytes differ, {} zero pages; cached {}, non-cached again {}",
                    off + i,
                    &buf[i..(i + 8).min(CHUNK)],
                    &want[i..(i + 8).min(CHUNK)],
                    bad, zero_pages, cached_ok, nc_again
                );
                return Err("non-cached read back differs");
            }
        }
        let ncfo = file_object(nc)?;
        // SAFETY: the handle keeps the file object.
        let nc_cached = unsafe { !(*ncfo).PrivateCacheMap.is_null() };
        check(!nc_cached, "the non-cached file object was cached")?;
        // A non-cached write in the middle: the cached handle sees it
        // (the range is purged from the cache).
        let at = 5 * (1 << 20) + 4096;
        let mut page = vec![0u8; 8192];
        fill(&mut page, at as u64, 0xA11CE);
        check(
            io(nc, &mut page, at as i64, true) == Ok(page.len()),
            "a non-cached write failed",
        )?;
        let mut back = vec![0u8; 8192];
        check(
            io(h, &mut back, at as i64, false) == Ok(back.len()),
            "cached read after the non-cached write",
        )?;
        check(
            back == page,
            "the cache still holds the old data after a non-cached write",
        )?;
        // A cached write inside the file, then a non-cached read sees it.
        fill(&mut page, at as u64 + 100, 0xBEEF);
        check(
            io(h, &mut page, at as i64 + 100, true) == Ok(page.len()),
            "cached overwrite",
        )?;
        check(
            io(nc, &mut back, at as i64 + 100, false) == Ok(back.len()),
            "non-cached read of the cached overwrite",
        )?;
        check(
            back == page,
            "a non-cached read does not see a cached write",
        )?;
        // Truncating through the cached handle: the cache follows.
        check(
            set(
                h,
                FileEndOfFileInformation,
                &(LARGE as i64 / 2).to_le_bytes(),
            )
            .is_success(),
            "truncating failed",
        )?;
        check(
            io(h, &mut end, LARGE as i64 / 2, false) == Err(STATUS_END_OF_FILE),
            "a cached read past the new end of file",
        )?;
        delete(h)
    })();
    if nc != 0 {
        nt_close(nc);
    }
    nt_close(h);
    r?;
    check(
        open(path, FILE_READ_DATA, FILE_OPEN, 0) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
        "the deleted cached file still opens",
    )
}

fn t_mapped_view() -> TestResult {
    use crate::mm::process::*;
    let path = "\\??\\C:\\ntrs-map-test.bin";
    let rw = FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | DELETE;
    let h = open(path, rw, FILE_OVERWRITE_IF, FILE_NON_DIRECTORY_FILE)
        .map_err(|_| "creating the test file failed")?;
    const SIZE: usize = 3 * 4096 + 100;
    let mut data = vec![0u8; SIZE];
    fill(&mut data, 0, 0x77);
    let (mut sec, mut pid, mut nc) = (None, None, 0);
    let r = (|| {
        check(io(h, &mut data, 0, true) == Ok(SIZE), "NtWriteFile")?;
        let s = nt_create_section_from_file(
            h,
            0,
            ::mm::PAGE_READWRITE,
            ::mm::section::SEC_COMMIT,
            Mode::KernelMode,
        )
        .map_err(|_| "NtCreateSection on the file")?;
        sec = Some(s);
        let p = mm_create_process_address_space().map_err(|_| "process")?;
        pid = Some(p);
        ke_stack_attach_process(p).map_err(|_| "attach")?;
        let r = (|| {
            let (mut base, mut size) = (0, 0);
            check(
                nt_map_view_of_section(s, &mut base, &mut size, ::mm::PAGE_READWRITE)
                    == STATUS_SUCCESS,
                "NtMapViewOfSection",
            )?;
            let view = |i: usize| {
                // SAFETY: inside the view just mapped in the attached process.
                unsafe { ((base + i as u64) as *const u8).read_volatile() }
            };
            check(
                (0..SIZE).all(|i| view(i) == data[i]),
                "the view does not show what NtWriteFile wrote",
            )?;
            // NtWriteFile after the mapping: the view sees it at once.
            let mut new = *b"written by NtWriteFile";
            check(
                io(h, &mut new, 4096 + 5, true) == Ok(new.len()),
                "second NtWriteFile",
            )?;
            check(
                (0..new.len()).all(|i| view(4096 + 5 + i) == new[i]),
                "the view does not see a later NtWriteFile",
            )?;
            data[4096 + 5..4096 + 5 + new.len()].copy_from_slice(&new);
            // A store through the view: NtReadFile sees it.
            let msg = b"stored through the view";
            for (i, &b) in msg.iter().enumerate() {
                // SAFETY: a writable view, inside the file.
                unsafe { ((base + 8192 + 3 + i as u64) as *mut u8).write_volatile(b) };
            }
            data[8192 + 3..8192 + 3 + msg.len()].copy_from_slice(msg);
            let mut back = vec![0u8; SIZE];
            check(io(h, &mut back, 0, false) == Ok(SIZE), "NtReadFile")?;
            check(back == data, "NtReadFile does not see the view's store")?;
            check(
                nt_unmap_view_of_section(base) == STATUS_SUCCESS,
                "NtUnmapViewOfSection",
            )
        })();
        ke_unstack_detach_process();
        r?;
        // After NtFlushBuffersFile the disk has both changes (a non-cached
        // read goes to lib/ntfs).
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        check(
            nt_flush_buffers_file(h, &mut iosb, Mode::KernelMode).is_ok_and(|s| s.is_success()),
            "NtFlushBuffersFile",
        )?;
        nc = open(path, rw, FILE_OPEN, FILE_NO_INTERMEDIATE_BUFFERING)
            .map_err(|_| "opening non-cached failed")?;
        let mut back = vec![0u8; SIZE];
        check(io(nc, &mut back, 0, false) == Ok(SIZE), "non-cached read")?;
        check(
            back == data,
            "the disk does not hold the view's and NtWriteFile's data after the flush",
        )?;
        delete(h)
    })();
    if let Some(s) = sec {
        mm_close_section(s);
    }
    if let Some(p) = pid {
        mm_delete_process_address_space(p);
    }
    if nc != 0 {
        nt_close(nc);
    }
    nt_close(h);
    r
}

/// A `FILE_RENAME_INFORMATION` / `FILE_LINK_INFORMATION` buffer.
fn rename_info(replace: bool, name: &str) -> Vec<u8> {
    let n: Vec<u16> = name.encode_utf16().collect();
    let mut b = vec![0u8; 20];
    b[0] = replace as u8;
    b[16..20].copy_from_slice(&((n.len() * 2) as u32).to_le_bytes());
    for c in n {
        b.extend_from_slice(&c.to_le_bytes());
    }
    b
}

const FILE_RENAME_INFORMATION: u32 = 10;
const FILE_LINK_INFORMATION: u32 = 11;
const FILE_ALLOCATION_INFORMATION: u32 = 19;
const FILE_STANDARD_INFORMATION: u32 = 5;

fn links(h: u64) -> Result<u32, &'static str> {
    let mut buf = [0u8; 0x18];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    // SAFETY: the buffer and status block outlive the synchronous request.
    let s = unsafe {
        crate::io::info::nt_query_information_file(
            h,
            &mut iosb,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            FILE_STANDARD_INFORMATION,
            Mode::KernelMode,
        )
    }
    .unwrap_or_else(|e| e);
    if !s.is_success() {
        return Err("FileStandardInformation");
    }
    Ok(u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]))
}

fn read_all(path: &str) -> Result<Vec<u8>, NtStatus> {
    let h = open(path, FILE_READ_DATA, FILE_OPEN, FILE_NON_DIRECTORY_FILE)?;
    let mut buf = vec![0u8; 64];
    let r = io(h, &mut buf, 0, false);
    nt_close(h);
    buf.truncate(r?);
    Ok(buf)
}

fn t_rename_link() -> TestResult {
    const D: &str = "\\??\\C:\\ntrs-set";
    let rw = FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | DELETE;
    let p = |s: &str| alloc::format!("{D}\\{s}");
    let dir = open(
        D,
        FILE_LIST_DIRECTORY | DELETE,
        FILE_OPEN_IF,
        FILE_DIRECTORY_FILE,
    )
    .map_err(|_| "creating the test directory")?;
    let sub = open(
        &p("sub"),
        FILE_LIST_DIRECTORY | DELETE,
        FILE_OPEN_IF,
        FILE_DIRECTORY_FILE,
    )
    .map_err(|_| "creating the subdirectory")?;
    let mut handles: Vec<u64> = Vec::new();
    let r = (|| {
        let a = open(&p("a.txt"), rw, FILE_OVERWRITE_IF, FILE_NON_DIRECTORY_FILE)
            .map_err(|_| "create a.txt")?;
        handles.push(a);
        let mut hello = *b"hello";
        check(io(a, &mut hello, 0, true) == Ok(5), "write a.txt")?;
        // Rename within the directory (a plain name).
        check(
            set(a, FILE_RENAME_INFORMATION, &rename_info(false, "b.txt")).is_success(),
            "rename a.txt -> b.txt",
        )?;
        check(
            read_all(&p("a.txt")) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
            "a.txt still opens after the rename",
        )?;
        check(
            read_all(&p("b.txt")).as_deref() == Ok(&b"hello"[..]),
            "b.txt content",
        )?;
        // Across directories (a full path: the I/O manager opens the target directory).
        check(
            set(
                a,
                FILE_RENAME_INFORMATION,
                &rename_info(false, &p("sub\\c.txt")),
            )
            .is_success(),
            "rename b.txt -> sub\\c.txt",
        )?;
        check(
            read_all(&p("sub\\c.txt")).as_deref() == Ok(&b"hello"[..]),
            "sub\\c.txt content",
        )?;
        check(
            read_all(&p("b.txt")) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
            "b.txt after the move",
        )?;
        // ReplaceIfExists.
        let d = open(&p("d.txt"), rw, FILE_OVERWRITE_IF, FILE_NON_DIRECTORY_FILE)
            .map_err(|_| "create d.txt")?;
        let mut other = *b"other";
        let w = io(d, &mut other, 0, true);
        nt_close(d);
        check(w == Ok(5), "write d.txt")?;
        check(
            set(a, FILE_RENAME_INFORMATION, &rename_info(false, &p("d.txt")))
                == STATUS_OBJECT_NAME_COLLISION,
            "rename onto an existing name without ReplaceIfExists",
        )?;
        // An open target cannot be replaced.
        let e = open(&p("e.txt"), rw, FILE_OVERWRITE_IF, FILE_NON_DIRECTORY_FILE)
            .map_err(|_| "create e.txt")?;
        handles.push(e);
        check(
            set(a, FILE_RENAME_INFORMATION, &rename_info(true, &p("e.txt")))
                == STATUS_ACCESS_DENIED,
            "replacing an open file is not STATUS_ACCESS_DENIED",
        )?;
        check(
            set(a, FILE_RENAME_INFORMATION, &rename_info(true, &p("d.txt"))).is_success(),
            "rename with ReplaceIfExists",
        )?;
        check(
            read_all(&p("d.txt")).as_deref() == Ok(&b"hello"[..]),
            "d.txt replaced",
        )?;
        // Hard link into the subdirectory.
        check(
            set(
                a,
                FILE_LINK_INFORMATION,
                &rename_info(false, &p("sub\\link.txt")),
            )
            .is_success(),
            "FileLinkInformation",
        )?;
        check(links(a)? == 2, "two links after FileLinkInformation")?;
        check(
            set(a, FILE_LINK_INFORMATION, &rename_info(false, &p("e.txt")))
                == STATUS_OBJECT_NAME_COLLISION,
            "a link onto an existing name",
        )?;
        let l = open(&p("sub\\link.txt"), rw, FILE_OPEN, FILE_NON_DIRECTORY_FILE)
            .map_err(|_| "open the link")?;
        let mut jello = *b"J";
        let w = io(l, &mut jello, 0, true);
        nt_close(l);
        check(w == Ok(1), "write through the link")?;
        check(
            read_all(&p("d.txt")).as_deref() == Ok(&b"Jello"[..]),
            "the link is the same file",
        )?;
        // Sharing: an exclusive open, then any other open is a violation.
        let x = nt_create_file(
            &p("x.txt"),
            &OpenPacket {
                desired: FILE_READ_DATA | SYNCHRONIZE,
                share: 0,
                disposition: FILE_OPEN_IF,
                options: FILE_SYNCHRONOUS_IO_NONALERT,
                file_attributes: 0,
                attributes: ::ob::OBJ_CASE_INSENSITIVE,
                mode: Mode::KernelMode,
            },
        );
        match x {
            Ok((x, _)) => {
                let second = read_all(&p("x.txt"));
                nt_close(x);
                check(
                    second == Err(STATUS_SHARING_VIOLATION),
                    "second open of an exclusive file",
                )?;
            }
            Err(_) => return Err("exclusive open"),
        }
        // Allocation below the end of file cuts it.
        check(
            set(a, FILE_ALLOCATION_INFORMATION, &2i64.to_le_bytes()).is_success(),
            "FileAllocationInformation",
        )?;
        check(
            read_all(&p("d.txt")).as_deref() == Ok(&b"Je"[..]),
            "allocation cut the file",
        )?;
        // POSIX delete: the name goes when the handle closes, the other
        // handle still reads the data.
        let keep = open(&p("d.txt"), rw, FILE_OPEN, FILE_NON_DIRECTORY_FILE)
            .map_err(|_| "second handle")?;
        handles.push(keep);
        check(
            set(a, FileDispositionInformationEx, &3u32.to_le_bytes()).is_success(),
            "FileDispositionInformationEx(DELETE | POSIX_SEMANTICS)",
        )?;
        handles.retain(|&h| h != a);
        nt_close(a);
        check(
            read_all(&p("d.txt")) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
            "the POSIX-deleted name still opens",
        )?;
        let mut two = [0u8; 2];
        check(
            io(keep, &mut two, 0, false) == Ok(2) && &two == b"Je",
            "the open handle lost the data",
        )?;
        let n = open(&p("d.txt"), rw, FILE_CREATE, FILE_NON_DIRECTORY_FILE)
            .map_err(|_| "a new file under the POSIX-deleted name")?;
        nt_close(n);
        handles.retain(|&h| h != keep);
        nt_close(keep);
        // Delete-on-close with a second handle: the file stays until both close.
        let c1 = open(&p("doc.txt"), rw, FILE_CREATE, FILE_DELETE_ON_CLOSE)
            .map_err(|_| "delete-on-close create")?;
        let c2 = open(&p("doc.txt"), rw, FILE_OPEN, 0).map_err(|_| "second open")?;
        nt_close(c1);
        let pending = read_all(&p("doc.txt"));
        nt_close(c2);
        check(
            pending == Err(STATUS_DELETE_PENDING),
            "open during a pending delete",
        )?;
        check(
            read_all(&p("doc.txt")) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
            "delete-on-close",
        )?;
        // A non-empty directory cannot be deleted.
        check(
            set(sub, FileDispositionInformation, &[1]) == STATUS_DIRECTORY_NOT_EMPTY,
            "deleting a non-empty directory",
        )
    })();
    for h in handles {
        nt_close(h);
    }
    // Clean up: every name in the test directory, then the directories.
    for name in [
        "d.txt",
        "e.txt",
        "x.txt",
        "sub\\c.txt",
        "sub\\link.txt",
        "a.txt",
        "b.txt",
    ] {
        if let Ok(h) = open(&p(name), DELETE, FILE_OPEN, FILE_NON_DIRECTORY_FILE) {
            let _ = delete(h);
            nt_close(h);
        }
    }
    let _ = delete(sub);
    nt_close(sub);
    let _ = delete(dir);
    nt_close(dir);
    r?;
    check(
        open(D, FILE_LIST_DIRECTORY, FILE_OPEN, FILE_DIRECTORY_FILE)
            == Err(STATUS_OBJECT_NAME_NOT_FOUND),
        "the test directory was not deleted",
    )
}
