//! Boot tests of cached I/O through ntfs.sys (`fs.cache.*`): the cache
//! manager under a real file system, through the native services on
//! `\??\C:` paths (docs/cc.md, docs/ntfs.md "The driver").

use crate::io::file::*;
use crate::ktest::{check, Test, TestResult};
use crate::ob::handle::{nt_close, ob_reference_object_by_handle};
use crate::ob::object::Mode;
use alloc::vec;
use nt::status::*;
use wdk::fs::class::*;
use wdk::*;

pub const TESTS: &[Test] = &[
    ("fs.cache.large_file_cached_and_noncached", t_large_file),
    ("fs.cache.mapped_view_agrees_with_write", t_mapped_view),
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

/// Size of the large file: 16 MiB (the boot image's system volume is 64
/// MiB, most of it taken by the system files).
const LARGE: usize = 16 << 20;
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
