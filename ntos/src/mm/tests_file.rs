//! Boot tests of file-backed data sections (`mm.file.*`) over ntrstest.sys's
//! `\Device\NtrsTestFile`: one control area per file, system cache views
//! paged in by paging read IRPs, pages shared between views, dirty pages
//! written back by `MmFlushSection`, purge, and the error statuses.

use super::file::*;
use crate::io::file::{nt_create_file, nt_read_file, nt_write_file, OpenPacket, RequestArgs};
use crate::io::load::{nt_load_driver, nt_unload_driver};
use crate::ktest::{check, Test, TestResult};
use crate::ob::handle::{nt_close, ob_reference_object_by_handle};
use crate::ob::object::Mode;
use ::mm::control::Proto;
use ::mm::section::{SEC_COMMIT, SEC_IMAGE};
use ::mm::{PAGE_READONLY, PAGE_READWRITE, PAGE_WRITECOPY};
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::Ordering;
use nt::status::*;
use wdk::*;

const KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntrstest";

fn open(name: &str, disposition: u32) -> Result<u64, NtStatus> {
    let path = alloc::format!("\\Device\\NtrsTestFile{name}");
    nt_create_file(
        &path,
        &OpenPacket {
            desired: FILE_READ_DATA | FILE_WRITE_DATA,
            share: FILE_SHARE_VALID_FLAGS,
            disposition,
            options: 0,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: Mode::KernelMode,
        },
    )
    .map(|(h, _)| h)
}

fn io(h: u64, buf: &mut [u8], offset: i64, write: bool) -> Result<usize, NtStatus> {
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let p = buf.as_mut_ptr() as *mut c_void;
    let s = if write {
        nt_write_file(h, &args, p, buf.len() as u32, Some(offset), 0)?
    } else {
        nt_read_file(h, &args, p, buf.len() as u32, Some(offset), 0)?
    };
    if !s.is_success() {
        return Err(s);
    }
    Ok(iosb.Information)
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
    crate::io::file::file_of(r.id).ok_or("not a file object")
}

// The test keeps a handle to the file for as long as it uses `sop`, so its
// section object pointers stay live.
fn flush(
    sop: *mut SECTION_OBJECT_POINTERS,
    offset: Option<u64>,
    len: u64,
) -> Result<u64, NtStatus> {
    // SAFETY: see above.
    unsafe { mm_flush_section(sop, offset, len) }
}

fn purge(sop: *mut SECTION_OBJECT_POINTERS) -> bool {
    // SAFETY: see above.
    unsafe { mm_purge_section(sop, None, 0) }
}

fn reference(sop: *mut SECTION_OBJECT_POINTERS) -> Option<DataSection> {
    // SAFETY: see above.
    unsafe { mm_reference_data_section(sop) }
}

fn pattern(i: usize) -> u8 {
    (i * 7 + i / 4096) as u8
}

fn read_va(va: u64, len: usize) -> Vec<u8> {
    // SAFETY: `va` lies in a mapped system cache view of at least `len`
    // bytes; touching it faults the pages in.
    (0..len)
        .map(|i| unsafe { ((va + i as u64) as *const u8).read_volatile() })
        .collect()
}

fn body(
    handles: &mut Vec<u64>,
    sections: &mut Vec<DataSection>,
    views: &mut Vec<u64>,
) -> TestResult {
    const SIZE: usize = 3 * 4096 + 100;
    let h =
        open("\\mmfile", FILE_OVERWRITE_IF).map_err(|_| "open \\Device\\NtrsTestFile\\mmfile")?;
    handles.push(h);
    let mut data: Vec<u8> = (0..SIZE).map(pattern).collect();
    check(
        io(h, &mut data, 0, true) == Ok(SIZE),
        "NtWriteFile of the test file",
    )?;
    let f = file_object(h)?;
    // SAFETY: the handle keeps the file object.
    let sop = unsafe { (*f).SectionObjectPointer };
    check(
        !sop.is_null(),
        "the test file has no SECTION_OBJECT_POINTERS",
    )?;

    // One control area per file, shared by every creator and every open.
    let s = mm_create_data_section(f, None).map_err(|_| "MmCreateSection for the file")?;
    sections.push(s);
    check(
        mm_section_size(s) == Some(SIZE as u64),
        "segment size is not the file size",
    )?;
    let h2 = open("\\MMFILE", FILE_OPEN).map_err(|_| "second open of the file")?;
    handles.push(h2);
    let s2 =
        mm_create_data_section(file_object(h2)?, None).map_err(|_| "second MmCreateSection")?;
    sections.push(s2);
    check(
        s2 == s,
        "a second file object of the file got another control area",
    )?;
    check(
        // SAFETY: the handle keeps the file and its section object pointers.
        unsafe { !(*sop).DataSectionObject.is_null() },
        "DataSectionObject not set",
    )?;
    let r = reference(sop);
    if let Some(x) = r {
        sections.push(x);
    }
    check(
        r == Some(s),
        "no reference through the section object pointers",
    )?;

    // A view pages in through paging reads; the tail of the last page is zero.
    let reads = PAGING_READS.load(Ordering::Relaxed);
    let (va, vsize) = mm_map_view_in_system_cache(s, 0).map_err(|_| "MmMapViewInSystemCache")?;
    views.push(va);
    check(vsize == 4 * 4096, "view size is not the segment's 4 pages")?;
    check(
        prototype(s, 1) == Some(Proto::File),
        "a page was resident before any touch",
    )?;
    let seen = read_va(va, 4 * 4096);
    check(
        seen[..SIZE] == data[..],
        "the view does not show the file's data",
    )?;
    check(
        seen[SIZE..].iter().all(|&b| b == 0),
        "bytes past the end of file are not zero",
    )?;
    check(
        PAGING_READS.load(Ordering::Relaxed) - reads == 4,
        "not one paging read per page touched",
    )?;
    let _ = read_va(va, 4 * 4096);
    check(
        PAGING_READS.load(Ordering::Relaxed) - reads == 4,
        "a resident page was read again",
    )?;

    // A second view shares the frames (prototype PTEs).
    let (vb, _) = mm_map_view_in_system_cache(s, 0).map_err(|_| "second view")?;
    views.push(vb);
    check(vb != va, "two views at one address")?;
    // SAFETY: both are mapped views of the segment.
    unsafe {
        ((va + 4096 + 5) as *mut u8).write_volatile(0xA5);
        check(
            ((vb + 4096 + 5) as *const u8).read_volatile() == 0xA5,
            "a write through one view is not seen through the other",
        )?;
    }
    check(
        matches!(prototype(s, 1), Some(Proto::Valid { .. })),
        "page 1's prototype PTE is not valid",
    )?;

    // The file does not change until the flush; then a paging write carries it.
    let mut one = [0u8; 1];
    io(h, &mut one, 4096 + 5, false).map_err(|_| "NtReadFile")?;
    check(
        one[0] == pattern(4096 + 5),
        "the file changed before the flush",
    )?;
    let writes = PAGING_WRITES.load(Ordering::Relaxed);
    let n = flush(sop, None, 0).map_err(|_| "MmFlushSection")?;
    check(
        n == 4096,
        "MmFlushSection did not write exactly the one dirty page",
    )?;
    check(
        PAGING_WRITES.load(Ordering::Relaxed) - writes == 1,
        "not one paging write",
    )?;
    io(h, &mut one, 4096 + 5, false).map_err(|_| "NtReadFile after flush")?;
    check(one[0] == 0xA5, "the flushed page is not in the file")?;
    check(flush(sop, None, 0) == Ok(0), "a clean section wrote pages")?;
    // A write into the partial last page is written, clipped at the end of file.
    // SAFETY: a mapped view.
    unsafe { ((vb + 3 * 4096 + 99) as *mut u8).write_volatile(0x5A) };
    check(
        flush(sop, Some(3 * 4096), 100) == Ok(100),
        "partial page flush",
    )?;
    let mut tail = [0u8; 8];
    check(
        io(h, &mut tail, SIZE as i64 - 1, false) == Ok(1),
        "the paging write extended the file",
    )?;
    check(tail[0] == 0x5A, "the last byte was not written back")?;

    // Errors.
    check(
        mm_map_view_in_system_cache(s, 4096) == Err(STATUS_MAPPED_ALIGNMENT),
        "an unaligned view offset was not STATUS_MAPPED_ALIGNMENT",
    )?;
    check(
        mm_map_view_in_system_cache(s, 256 * 1024) == Err(STATUS_INVALID_VIEW_SIZE),
        "a view beyond the segment was not STATUS_INVALID_VIEW_SIZE",
    )?;
    check(
        mm_unmap_view_in_system_cache(SYSTEM_CACHE_END - 4096) == Err(STATUS_NOT_MAPPED_VIEW)
            && mm_unmap_view_in_system_cache(0x1000) == Err(STATUS_NOT_MAPPED_VIEW),
        "unmapping a non-view was not STATUS_NOT_MAPPED_VIEW",
    )?;
    check(!purge(sop), "purge succeeded with views mapped")?;

    // Growth: the segment follows the file.
    check(
        mm_extend_section(s, 5 * 4096).is_ok() && mm_section_size(s) == Some(5 * 4096),
        "MmExtendSection",
    )?;

    // Unmapping harvests dirty bits: the write is flushed after the unmap.
    // SAFETY: a mapped view.
    unsafe { ((va + 2 * 4096) as *mut u8).write_volatile(0x77) };
    for v in views.drain(..) {
        mm_unmap_view_in_system_cache(v).map_err(|_| "MmUnmapViewInSystemCache")?;
    }
    check(
        flush(sop, Some(2 * 4096), 1) == Ok(4096),
        "a write seen only at unmap was not flushed",
    )?;
    io(h, &mut one, 2 * 4096, false).map_err(|_| "NtReadFile")?;
    check(
        one[0] == 0x77,
        "the unmapped view's write is not in the file",
    )?;

    // Purge drops clean pages: the next view reads the file again.
    check(purge(sop), "purge of a clean, unmapped section failed")?;
    check(
        prototype(s, 0) == Some(Proto::File),
        "purge left page 0 resident",
    )?;
    let mut new = [0x33u8; 16];
    io(h, &mut new, 0, true).map_err(|_| "NtWriteFile")?;
    let (vc, _) = mm_map_view_in_system_cache(s, 0).map_err(|_| "view after purge")?;
    views.push(vc);
    check(
        read_va(vc, 16) == new[..],
        "after purge the view does not read the file again",
    )?;
    mm_unmap_view_in_system_cache(vc).map_err(|_| "unmap")?;
    views.clear();

    // Bad input.
    let e = open("\\mmempty", FILE_OVERWRITE_IF).map_err(|_| "open mmempty")?;
    handles.push(e);
    check(
        mm_create_data_section(file_object(e)?, None) == Err(STATUS_MAPPED_FILE_SIZE_ZERO),
        "an empty file was not STATUS_MAPPED_FILE_SIZE_ZERO",
    )?;
    let d = open("", FILE_OPEN).map_err(|_| "open the device")?;
    handles.push(d);
    check(
        mm_create_data_section(file_object(d)?, None) == Err(STATUS_INVALID_FILE_FOR_SECTION),
        "a file object without section pointers was not STATUS_INVALID_FILE_FOR_SECTION",
    )?;
    check(
        mm_create_data_section(0x1000 as *mut FILE_OBJECT, None).is_err(),
        "a bogus file object pointer was accepted",
    )?;

    // The last reference deletes the control area and clears the pointer.
    let before = control_areas();
    for s in sections.drain(..) {
        mm_dereference_data_section(s);
    }
    check(
        control_areas() + 1 == before,
        "the control area outlived its references",
    )?;
    // SAFETY: the handle keeps the file and its section object pointers.
    check(
        unsafe { (*sop).DataSectionObject.is_null() },
        "DataSectionObject not cleared",
    )
}

fn t_cache_views() -> TestResult {
    let _hold = MappedWriterHold::new();
    check(
        nt_load_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest)",
    )?;
    let views_before = system_cache_views_in_use();
    let (mut handles, mut sections, mut views) = (Vec::new(), Vec::new(), Vec::new());
    let r = body(&mut handles, &mut sections, &mut views);
    for v in views {
        let _ = mm_unmap_view_in_system_cache(v);
    }
    for s in sections {
        mm_dereference_data_section(s);
    }
    for h in handles {
        nt_close(h);
    }
    let unloaded = nt_unload_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS;
    r?;
    check(
        system_cache_views_in_use() == views_before,
        "system cache views leaked",
    )?;
    check(unloaded, "NtUnloadDriver(ntrstest)")
}

fn open_access(name: &str, desired: u32) -> Result<u64, NtStatus> {
    let path = alloc::format!("\\Device\\NtrsTestFile{name}");
    nt_create_file(
        &path,
        &OpenPacket {
            desired,
            share: FILE_SHARE_VALID_FLAGS,
            disposition: FILE_OPEN_IF,
            options: 0,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: Mode::KernelMode,
        },
    )
    .map(|(h, _)| h)
}

/// Runs `f` attached to process `pid` (ntrs's attach does not nest).
fn attached<R>(pid: u32, f: impl FnOnce() -> R) -> Result<R, &'static str> {
    use crate::mm::process::*;
    ke_stack_attach_process(pid).map_err(|_| "attach")?;
    let r = f();
    ke_unstack_detach_process();
    Ok(r)
}

/// Maps `section` into process `pid`; returns the view's base.
fn map_in(pid: u32, section: u32, protect: u32) -> Result<u64, &'static str> {
    attached(pid, || {
        let (mut base, mut size) = (0, 0);
        (crate::mm::process::nt_map_view_of_section(section, &mut base, &mut size, protect)
            == STATUS_SUCCESS)
            .then_some(base)
            .ok_or("NtMapViewOfSection of the file section")
    })?
}

fn unmap_in(pid: u32, base: u64) -> TestResult {
    attached(pid, || {
        check(
            crate::mm::process::nt_unmap_view_of_section(base) == STATUS_SUCCESS,
            "NtUnmapViewOfSection",
        )
    })?
}

fn rd(va: u64) -> u8 {
    // SAFETY: an address in a view mapped in the attached process.
    unsafe { (va as *const u8).read_volatile() }
}

fn wr(va: u64, v: u8) {
    // SAFETY: as above, a writable view.
    unsafe { (va as *mut u8).write_volatile(v) }
}

fn user_body(handles: &mut Vec<u64>, sections: &mut Vec<u32>, pids: &mut Vec<u32>) -> TestResult {
    use crate::mm::process::*;
    const SIZE: usize = 2 * 4096 + 10;
    let h = open("\\mmview", FILE_OVERWRITE_IF).map_err(|_| "open mmview")?;
    handles.push(h);
    let mut data: Vec<u8> = (0..SIZE).map(pattern).collect();
    check(io(h, &mut data, 0, true) == Ok(SIZE), "NtWriteFile")?;
    let k = Mode::KernelMode;

    // Bad input.
    check(
        nt_create_section_from_file(0x7777_0000, 0, PAGE_READONLY, SEC_COMMIT, k)
            == Err(STATUS_INVALID_HANDLE),
        "a bad handle was not STATUS_INVALID_HANDLE",
    )?;
    let (ev, _) = crate::ex::event::nt_create_event(
        0x1F_0003,
        None,
        0,
        crate::ex::event::EventType::NotificationEvent,
        false,
        k,
    )
    .map_err(|_| "NtCreateEvent")?;
    handles.push(ev);
    check(
        nt_create_section_from_file(ev, 0, PAGE_READONLY, SEC_COMMIT, k)
            == Err(STATUS_OBJECT_TYPE_MISMATCH),
        "an event handle was not STATUS_OBJECT_TYPE_MISMATCH",
    )?;
    let e = open("\\mmempty2", FILE_OVERWRITE_IF).map_err(|_| "open mmempty2")?;
    handles.push(e);
    check(
        nt_create_section_from_file(e, 0, PAGE_READONLY, SEC_COMMIT, k)
            == Err(STATUS_MAPPED_FILE_SIZE_ZERO),
        "an empty file was not STATUS_MAPPED_FILE_SIZE_ZERO",
    )?;
    check(
        nt_create_section_from_file(h, 0x10_0000, PAGE_READONLY, SEC_COMMIT, k)
            == Err(STATUS_SECTION_TOO_BIG),
        "a section larger than the file was not STATUS_SECTION_TOO_BIG",
    )?;
    check(
        nt_create_section_from_file(h, 0, PAGE_READONLY, SEC_IMAGE, k)
            == Err(STATUS_INVALID_IMAGE_NOT_MZ),
        "SEC_IMAGE on a file that is no image was not STATUS_INVALID_IMAGE_NOT_MZ",
    )?;
    let ro = open_access("\\mmview", FILE_READ_DATA).map_err(|_| "read-only open")?;
    handles.push(ro);
    check(
        nt_create_section_from_file(ro, 0, PAGE_READWRITE, SEC_COMMIT, k)
            == Err(STATUS_ACCESS_DENIED),
        "a writable section on a read-only handle was not STATUS_ACCESS_DENIED",
    )?;
    let areas = control_areas();

    let sec = nt_create_section_from_file(h, 0, PAGE_READWRITE, SEC_COMMIT, k)
        .map_err(|_| "NtCreateSection on the file handle")?;
    sections.push(sec);
    check(
        control_areas() == areas + 1,
        "no control area for the section",
    )?;
    let a = mm_create_process_address_space().map_err(|_| "process A")?;
    pids.push(a);
    let b = mm_create_process_address_space().map_err(|_| "process B")?;
    pids.push(b);

    // A reads the file through its view and writes page 1; B, mapping the
    // section at the same time, sees it.
    let va = map_in(a, sec, PAGE_READWRITE)?;
    let vb = map_in(b, sec, PAGE_READONLY)?;
    attached(a, || {
        check(
            (0..SIZE).all(|i| rd(va + i as u64) == pattern(i)),
            "the user view does not show the file",
        )?;
        check(
            rd(va + SIZE as u64) == 0,
            "past the end of file is not zero",
        )?;
        wr(va + 4096 + 1, 0xC3);
        Ok(())
    })??;
    attached(b, || {
        check(
            rd(vb + 4096 + 1) == 0xC3,
            "B does not see A's write (prototype PTEs)",
        )
    })??;
    unmap_in(b, vb)?;
    // The system cache view of the same file shares the page.
    let f = file_object(h)?;
    let ds = mm_create_data_section(f, None).map_err(|_| "MmCreateSection")?;
    let (cv, _) = mm_map_view_in_system_cache(ds, 0).map_err(|_| "cache view")?;
    let seen = read_va(cv + 4096 + 1, 1)[0];
    let _ = mm_unmap_view_in_system_cache(cv);
    mm_dereference_data_section(ds);
    check(
        seen == 0xC3,
        "the system cache view does not see the user view's write",
    )?;
    check(
        control_areas() == areas + 1,
        "a second control area for the file",
    )?;

    // Flush: the write reaches the file through a paging write.
    // SAFETY: the handle keeps the file object.
    let sop = unsafe { (*f).SectionObjectPointer };
    check(
        flush(sop, None, 0).is_ok_and(|n| n >= 4096),
        "MmFlushSection wrote nothing",
    )?;
    let mut one = [0u8; 1];
    io(h, &mut one, 4096 + 1, false).map_err(|_| "NtReadFile")?;
    check(
        one[0] == 0xC3,
        "the user view's write is not in the file after the flush",
    )?;

    // Copy-on-write: B's private copy reaches neither A nor the file.
    let vc = map_in(b, sec, PAGE_WRITECOPY)?;
    attached(b, || {
        wr(vc + 7, 0x11);
        check(rd(vc + 7) == 0x11, "copy-on-write view lost its write")
    })??;
    attached(a, || {
        check(
            rd(va + 7) == pattern(7),
            "a copy-on-write write leaked into the shared page",
        )
    })??;
    unmap_in(b, vc)?;
    unmap_in(a, va)?;
    check(flush(sop, None, 0).is_ok(), "flush")?;
    io(h, &mut one, 7, false).map_err(|_| "NtReadFile")?;
    check(
        one[0] == pattern(7),
        "a copy-on-write write reached the file",
    )?;

    // Closing the section (no views left) drops the control area.
    check(mm_close_section(sec) == STATUS_SUCCESS, "close section")?;
    sections.clear();
    check(
        control_areas() == areas,
        "the control area outlived the section",
    )
}

fn t_user_views() -> TestResult {
    // Exact paging-write expectations: the mapped page writer waits.
    let _hold = MappedWriterHold::new();
    check(
        nt_load_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest)",
    )?;
    let (mut handles, mut sections, mut pids) = (Vec::new(), Vec::new(), Vec::new());
    let r = user_body(&mut handles, &mut sections, &mut pids);
    for s in sections {
        crate::mm::process::mm_close_section(s);
    }
    for p in pids {
        crate::mm::process::mm_delete_process_address_space(p);
    }
    for h in handles {
        nt_close(h);
    }
    let unloaded = nt_unload_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS;
    r?;
    check(unloaded, "NtUnloadDriver(ntrstest)")
}

/// Polls (up to 5 s) until byte `offset` of the file reads `want`.
fn file_reaches(h: u64, offset: i64, want: u8) -> bool {
    for _ in 0..100 {
        let mut one = [0u8; 1];
        if io(h, &mut one, offset, false).is_ok() && one[0] == want {
            return true;
        }
        crate::ke::sched::ke_delay_execution_thread(500_000); // 50 ms
    }
    false
}

fn writer_body(handles: &mut Vec<u64>, sections: &mut Vec<u32>, pids: &mut Vec<u32>) -> TestResult {
    use crate::mm::process::*;
    const SIZE: usize = 4 * 4096;
    let h = open("\\mmwriter", FILE_OVERWRITE_IF).map_err(|_| "open mmwriter")?;
    handles.push(h);
    let mut data: Vec<u8> = (0..SIZE).map(pattern).collect();
    check(io(h, &mut data, 0, true) == Ok(SIZE), "NtWriteFile")?;
    let sec = nt_create_section_from_file(h, 0, PAGE_READWRITE, SEC_COMMIT, Mode::KernelMode)
        .map_err(|_| "NtCreateSection on the file")?;
    sections.push(sec);
    let a = mm_create_process_address_space().map_err(|_| "process")?;
    pids.push(a);
    let va = map_in(a, sec, PAGE_READWRITE)?;

    // No flush, no unmap: the mapped page writer writes the page within
    // its age limit (1 s), through a paging write.
    let runs = MAPPED_WRITER_RUNS.load(Ordering::Relaxed);
    attached(a, || wr(va + 4096 + 3, 0x3C))?;
    check(
        file_reaches(h, 4096 + 3, 0x3C),
        "the mapped page writer did not write a dirty mapped page",
    )?;
    check(
        MAPPED_WRITER_RUNS.load(Ordering::Relaxed) > runs,
        "the page reached the file without the mapped page writer",
    )?;
    // The page was cleaned (dirty bit taken): a second write is seen again.
    attached(a, || wr(va + 4096 + 3, 0x4D))?;
    check(
        file_reaches(h, 4096 + 3, 0x4D),
        "a second write to a written page was not written again",
    )?;

    // NtFlushVirtualMemory writes at once, with the writer held.
    {
        let _hold = MappedWriterHold::new();
        attached(a, || wr(va + 2 * 4096 + 9, 0x5E))?;
        let writes = PAGING_WRITES.load(Ordering::Relaxed);
        let r = attached(a, || nt_flush_virtual_memory(va + 2 * 4096 + 9, 1))?;
        check(
            r == Ok((va + 2 * 4096, 4096, 4096)),
            "NtFlushVirtualMemory did not write exactly the page",
        )?;
        check(
            PAGING_WRITES.load(Ordering::Relaxed) == writes + 1,
            "NtFlushVirtualMemory was not one paging write",
        )?;
        let mut one = [0u8; 1];
        io(h, &mut one, 2 * 4096 + 9, false).map_err(|_| "NtReadFile")?;
        check(one[0] == 0x5E, "the flushed byte is not in the file")?;
        let r = attached(a, || nt_flush_virtual_memory(va, 0))?;
        check(
            r == Ok((va, SIZE as u64, 0)),
            "a second NtFlushVirtualMemory wrote clean pages",
        )?;
        // Private memory is not mapped data.
        let (mut pb, mut ps) = (0, 4096);
        attached(a, || {
            nt_allocate_virtual_memory(
                &mut pb,
                &mut ps,
                ::mm::MEM_COMMIT | ::mm::MEM_RESERVE,
                PAGE_READWRITE,
            )
        })?;
        check(
            attached(a, || nt_flush_virtual_memory(pb, 1))? == Err(STATUS_NOT_MAPPED_DATA),
            "NtFlushVirtualMemory of private memory was not STATUS_NOT_MAPPED_DATA",
        )?;
        check(
            attached(a, || nt_flush_virtual_memory(0x7000_0000, 1))? == Err(STATUS_NOT_MAPPED_VIEW),
            "NtFlushVirtualMemory of free memory was not STATUS_NOT_MAPPED_VIEW",
        )?;
    }
    unmap_in(a, va)
}

fn t_mapped_writer() -> TestResult {
    check(
        nt_load_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest)",
    )?;
    let (mut handles, mut sections, mut pids) = (Vec::new(), Vec::new(), Vec::new());
    let r = writer_body(&mut handles, &mut sections, &mut pids);
    for s in sections {
        crate::mm::process::mm_close_section(s);
    }
    for p in pids {
        crate::mm::process::mm_delete_process_address_space(p);
    }
    for h in handles {
        nt_close(h);
    }
    let unloaded = nt_unload_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS;
    r?;
    check(unloaded, "NtUnloadDriver(ntrstest)")
}

/// The `mm.file.*` boot tests.
pub const TESTS: &[Test] = &[
    ("mm.file.cache_views_paging_io_flush_purge", t_cache_views),
    ("mm.file.nt_create_section_user_views", t_user_views),
    (
        "mm.file.mapped_page_writer_and_flush_virtual_memory",
        t_mapped_writer,
    ),
];
