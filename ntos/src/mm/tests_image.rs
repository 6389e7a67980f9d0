//! Boot tests of image sections (`mm.image.*`): `NtCreateSection(SEC_IMAGE)`
//! over `C:\Windows\System32\ntrsuser.exe` read through ntfs.sys, views in
//! two processes sharing the image's pages, per-section protections,
//! copy-on-write of written image pages, relocation to another base,
//! `SECTION_IMAGE_INFORMATION`, and the statuses for files that are not
//! valid images (crafted in ntrstest.sys's in-memory files).

use crate::io::file::{nt_create_file, nt_read_file, nt_write_file, OpenPacket, RequestArgs};
use crate::io::load::{nt_load_driver, nt_unload_driver};
use crate::ktest::{check, Test, TestResult};
use crate::mm::process::*;
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use ::mm::section::SEC_IMAGE;
use ::mm::{PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_READONLY, PAGE_WRITECOPY};
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use nt::status::*;
use wdk::*;

const IMAGE: &str = "\\??\\C:\\Windows\\System32\\ntrsuser.exe";
const KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntrstest";

fn open(path: &str, desired: u32, disposition: u32) -> Result<u64, NtStatus> {
    nt_create_file(
        path,
        &OpenPacket {
            desired: desired | SYNCHRONIZE,
            share: FILE_SHARE_READ | FILE_SHARE_WRITE,
            disposition,
            options: FILE_NON_DIRECTORY_FILE | FILE_SYNCHRONOUS_IO_NONALERT,
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

/// The whole file through NtReadFile.
fn read_all(h: u64) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 0x10000];
    loop {
        match io(h, &mut chunk, out.len() as i64, false) {
            Ok(0) | Err(STATUS_END_OF_FILE) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) => return Err("NtReadFile of the image failed"),
        }
        if out.len() > 64 << 20 {
            return Err("implausible image size");
        }
    }
}

/// Runs `f` attached to process `pid`.
fn attached<R>(pid: u32, f: impl FnOnce() -> R) -> Result<R, &'static str> {
    ke_stack_attach_process(pid).map_err(|_| "attach")?;
    let r = f();
    ke_unstack_detach_process();
    Ok(r)
}

fn rd(va: u64) -> u8 {
    // SAFETY: an address in an image view of the attached process; a
    // fault pages it in.
    unsafe { (va as *const u8).read_volatile() }
}

fn wr(va: u64, v: u8) {
    // SAFETY: as above, a copy-on-write page.
    unsafe { (va as *mut u8).write_volatile(v) }
}

struct Cleanup {
    handles: Vec<u64>,
    sections: Vec<u32>,
    pids: Vec<u32>,
}

impl Cleanup {
    fn run(self) {
        for s in self.sections {
            mm_close_section(s);
        }
        for p in self.pids {
            mm_delete_process_address_space(p);
        }
        for h in self.handles {
            nt_close(h);
        }
    }
}

fn image_body(c: &mut Cleanup) -> TestResult {
    let k = Mode::KernelMode;
    let h = open(IMAGE, FILE_READ_DATA | FILE_EXECUTE, FILE_OPEN)
        .map_err(|_| "opening ntrsuser.exe failed")?;
    c.handles.push(h);
    let file = read_all(h)?;
    let pe = pe::PeFile::parse(&file).map_err(|_| "ntrsuser.exe does not parse")?;
    let mut expected = vec![0u8; pe.size_of_image as usize];
    pe.map_into(&mut expected)
        .map_err(|_| "pe::map_into of ntrsuser.exe")?;
    let pages = (pe.size_of_image as u64).div_ceil(4096);

    let areas = super::file::control_areas();
    let sec = nt_create_section_from_file(h, 0, PAGE_EXECUTE, SEC_IMAGE, k)
        .map_err(|_| "NtCreateSection(SEC_IMAGE) of ntrsuser.exe failed")?;
    c.sections.push(sec);
    let sec2 = nt_create_section_from_file(h, 0, PAGE_EXECUTE, SEC_IMAGE, k)
        .map_err(|_| "second NtCreateSection(SEC_IMAGE)")?;
    c.sections.push(sec2);
    check(
        super::file::control_areas() == areas + 1,
        "two image sections of one file do not share one control area",
    )?;
    let ca = section_control_area(sec).ok_or("no control area")?;
    check(
        section_control_area(sec2) == Some(ca),
        "the second section has another control area",
    )?;

    // SECTION_IMAGE_INFORMATION from the headers.
    let info = nt_query_section_image_information(sec).map_err(|_| "NtQuerySection")?;
    check(
        info.transfer_address == pe.image_base + pe.address_of_entry_point as u64,
        "TransferAddress is not ImageBase + AddressOfEntryPoint",
    )?;
    check(
        info.machine == 0x8664 && info.sub_system_type == pe.subsystem as u32,
        "Machine / SubSystemType wrong",
    )?;
    check(
        info.image_file_size as usize == file.len() && info.image_contains_code,
        "ImageFileSize / ImageContainsCode wrong",
    )?;
    check(
        info.to_bytes().len() == 0x40,
        "SECTION_IMAGE_INFORMATION is not 0x40 bytes",
    )?;

    let a = mm_create_process_address_space().map_err(|_| "process A")?;
    c.pids.push(a);
    let b = mm_create_process_address_space().map_err(|_| "process B")?;
    c.pids.push(b);

    // A: the kernel API; B: NtMapViewOfSection on the second section.
    let (base, size, st) = mm_map_image_section(sec, a, 0).map_err(|_| "map into A")?;
    check(st == STATUS_SUCCESS, "A's view is not at the image base")?;
    check(base == pe.image_base, "A's view base is not ImageBase")?;
    check(size == pages * 4096, "view size is not SizeOfImage")?;
    let (mut bb, mut bs) = (0, 0);
    let st = attached(b, || {
        nt_map_view_of_section(sec2, &mut bb, &mut bs, PAGE_READONLY)
    })?;
    check(
        st == STATUS_SUCCESS && bb == base,
        "B's view is not at the image base",
    )?;

    // Contents: what the PE loader's map_into makes of the file (headers,
    // every section, zero-fill), page for page.
    attached(a, || {
        for (i, &e) in expected.iter().enumerate() {
            if rd(base + i as u64) != e {
                return Err("A's view differs from the image the file describes");
            }
        }
        // The bytes after SizeOfImage to the end of the page are zero.
        let end = pages * 4096;
        check(
            (pe.size_of_image as u64..end).all(|o| rd(base + o) == 0),
            "the last page's tail is not zero",
        )
    })??;

    // Protections: headers read-only, each section per its characteristics.
    let mut code = None;
    let mut data = None;
    attached(a, || {
        let q = nt_query_virtual_memory(base).map_err(|_| "NtQueryVirtualMemory")?;
        check(
            q.protect == PAGE_READONLY && q.type_ == ::mm::MEM_IMAGE,
            "headers are not PAGE_READONLY MEM_IMAGE",
        )?;
        check(
            q.allocation_protect == ::mm::PAGE_EXECUTE_WRITECOPY && q.allocation_base == base,
            "AllocationProtect / AllocationBase of the image",
        )?;
        for s in &pe.sections {
            let va = base + s.virtual_address as u64;
            let q = nt_query_virtual_memory(va).map_err(|_| "NtQueryVirtualMemory")?;
            let want = ::mm::image::section_protection(s.characteristics);
            check(q.protect == want, "a section's protection is wrong")?;
            if want == PAGE_EXECUTE_READ && code.is_none() {
                code = Some(va);
            }
            // A data page to write: writable data, else read-only data
            // that B will make writable with NtProtectVirtualMemory.
            if matches!(want, PAGE_WRITECOPY | PAGE_READONLY)
                && s.size_of_raw_data != 0
                && data.is_none_or(|(_, p)| p != PAGE_WRITECOPY)
            {
                data = Some((va, want));
            }
        }
        Ok::<(), &'static str>(())
    })??;
    let code = code.ok_or("ntrsuser.exe has no code section")?;
    let (data, data_protect) = data.ok_or("ntrsuser.exe has no initialized data section")?;

    // Shared pages: B touches the code and data pages A touched; the same
    // frames, which are the control area's.
    let (code_b, data_b) = attached(b, || (rd(code), rd(data)))?;
    let fa = user_page_frame(a, code);
    check(
        fa.is_some() && fa == user_page_frame(b, code),
        "the code page is not one frame in both processes",
    )?;
    let da = user_page_frame(a, data);
    check(
        da.is_some() && da == user_page_frame(b, data),
        "the data page is not shared before a write",
    )?;
    check(
        code_b == expected[(code - base) as usize] && data_b == expected[(data - base) as usize],
        "B reads other bytes",
    )?;

    // Copy-on-write: B writes the data page, gets a private copy; A and
    // the section keep the file's bytes.
    let old = data_b;
    attached(b, || {
        if data_protect == PAGE_READONLY {
            // VirtualProtect(PAGE_READWRITE) of an image page: copy-on-write.
            let (mut pb, mut ps) = (data, 1);
            let prev = nt_protect_virtual_memory(&mut pb, &mut ps, ::mm::PAGE_READWRITE)
                .map_err(|_| "NtProtectVirtualMemory(PAGE_READWRITE) of an image page")?;
            check(prev == PAGE_READONLY, "old protection is not PAGE_READONLY")?;
            let q = nt_query_virtual_memory(data).map_err(|_| "NtQueryVirtualMemory")?;
            check(
                q.protect == PAGE_WRITECOPY,
                "PAGE_READWRITE on an image page did not become PAGE_WRITECOPY",
            )?;
        }
        wr(data, old ^ 0x5A);
        check(rd(data) == old ^ 0x5A, "B lost its write")
    })??;
    let db = user_page_frame(b, data);
    check(
        db.is_some() && db != da,
        "B's written image page is not a private copy",
    )?;
    attached(a, || {
        check(
            rd(data) == old,
            "B's write to an image page reached A (the shared page)",
        )
    })??;
    check(user_page_frame(a, data) == da, "A's page changed frame")?;

    // The base is taken in A: a second view goes elsewhere,
    // STATUS_IMAGE_NOT_AT_BASE, same contents (not relocated: the loader
    // applies relocations).
    let (base2, _, st) = mm_map_image_section(sec, a, 0).map_err(|_| "second map into A")?;
    check(
        st == STATUS_IMAGE_NOT_AT_BASE && base2 != base,
        "a second view at a taken base was not STATUS_IMAGE_NOT_AT_BASE",
    )?;
    attached(a, || {
        check(
            (0..4096u64).all(|o| rd(base2 + o) == expected[o as usize]),
            "the moved view's headers differ",
        )?;
        check(
            nt_unmap_view_of_section(base2) == STATUS_SUCCESS
                && nt_unmap_view_of_section(base) == STATUS_SUCCESS,
            "NtUnmapViewOfSection of A's views",
        )
    })??;
    attached(b, || {
        check(
            nt_unmap_view_of_section(bb) == STATUS_SUCCESS,
            "NtUnmapViewOfSection of B's view",
        )
    })??;
    check(
        mm_close_section(sec) == STATUS_SUCCESS && mm_close_section(sec2) == STATUS_SUCCESS,
        "closing the image sections",
    )?;
    c.sections.clear();
    check(
        super::file::control_areas() == areas,
        "the image control area outlived its sections and views",
    )?;

    // A handle without FILE_EXECUTE cannot make an executable image section.
    let ro = open(IMAGE, FILE_READ_DATA, FILE_OPEN).map_err(|_| "read-only open")?;
    c.handles.push(ro);
    check(
        nt_create_section_from_file(ro, 0, PAGE_EXECUTE, SEC_IMAGE, k) == Err(STATUS_ACCESS_DENIED),
        "PAGE_EXECUTE on a handle without FILE_EXECUTE was not STATUS_ACCESS_DENIED",
    )
}

fn t_image_section() -> TestResult {
    let mut c = Cleanup {
        handles: Vec::new(),
        sections: Vec::new(),
        pids: Vec::new(),
    };
    let r = image_body(&mut c);
    c.run();
    r
}

/// A file of ntrstest.sys with `bytes`; its SEC_IMAGE status.
fn image_status(c: &mut Cleanup, name: &str, bytes: &[u8]) -> Result<NtStatus, &'static str> {
    let path = alloc::format!("\\Device\\NtrsTestFile\\{name}");
    let h = nt_create_file(
        &path,
        &OpenPacket {
            desired: FILE_READ_DATA | FILE_WRITE_DATA | FILE_EXECUTE,
            share: FILE_SHARE_VALID_FLAGS,
            disposition: FILE_OVERWRITE_IF,
            options: 0,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: Mode::KernelMode,
        },
    )
    .map(|(h, _)| h)
    .map_err(|_| "open of a test file")?;
    c.handles.push(h);
    if !bytes.is_empty() {
        let mut b = bytes.to_vec();
        check(
            io(h, &mut b, 0, true) == Ok(bytes.len()),
            "NtWriteFile of a test file",
        )?;
    }
    Ok(
        match nt_create_section_from_file(h, 0, PAGE_EXECUTE, SEC_IMAGE, Mode::KernelMode) {
            Ok(s) => {
                c.sections.push(s);
                STATUS_SUCCESS
            }
            Err(e) => e,
        },
    )
}

fn bad_body(c: &mut Cleanup) -> TestResult {
    // A valid image to corrupt: ntrsuser.exe's first 64 KiB and its size.
    let h = open(IMAGE, FILE_READ_DATA, FILE_OPEN).map_err(|_| "opening ntrsuser.exe failed")?;
    c.handles.push(h);
    let good = read_all(h)?;
    check(
        image_status(c, "img_good", &good)? == STATUS_SUCCESS,
        "a copy of ntrsuser.exe is not a valid image",
    )?;
    check(
        image_status(c, "img_empty", &[])? == STATUS_INVALID_FILE_FOR_SECTION,
        "an empty file was not STATUS_INVALID_FILE_FOR_SECTION",
    )?;
    check(
        image_status(c, "img_text", b"not an image at all")? == STATUS_INVALID_IMAGE_NOT_MZ,
        "a text file was not STATUS_INVALID_IMAGE_NOT_MZ",
    )?;
    let lfanew = u32::from_le_bytes([good[0x3C], good[0x3D], good[0x3E], good[0x3F]]) as usize;
    let mut dos = good.clone();
    dos[lfanew] = b'N';
    dos[lfanew + 1] = b'E';
    check(
        image_status(c, "img_dos", &dos)? == STATUS_INVALID_IMAGE_PROTECT,
        "an MZ file without a PE header was not STATUS_INVALID_IMAGE_PROTECT",
    )?;
    let mut machine = good.clone();
    machine[lfanew + 4] = 0x4C;
    machine[lfanew + 5] = 0x01;
    check(
        image_status(c, "img_i386", &machine)? == STATUS_INVALID_IMAGE_FORMAT,
        "an i386 machine type was not STATUS_INVALID_IMAGE_FORMAT",
    )?;
    // Cut the file inside its first section's raw data.
    let cut = &good[..good.len().min(0x800)];
    check(
        image_status(c, "img_cut", cut)? == STATUS_INVALID_IMAGE_FORMAT,
        "a truncated image was not STATUS_INVALID_IMAGE_FORMAT",
    )?;
    // SizeOfImage smaller than the sections.
    let mut small = good.clone();
    let soi = lfanew + 24 + 56;
    small[soi..soi + 4].copy_from_slice(&0x1000u32.to_le_bytes());
    check(
        image_status(c, "img_small", &small)? == STATUS_INVALID_IMAGE_FORMAT,
        "SizeOfImage below the sections was not STATUS_INVALID_IMAGE_FORMAT",
    )
}

fn t_bad_images() -> TestResult {
    check(
        nt_load_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest)",
    )?;
    let mut c = Cleanup {
        handles: Vec::new(),
        sections: Vec::new(),
        pids: Vec::new(),
    };
    let r = bad_body(&mut c);
    c.run();
    let unloaded = nt_unload_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS;
    r?;
    check(unloaded, "NtUnloadDriver(ntrstest)")
}

/// The `mm.image.*` boot tests.
pub const TESTS: &[Test] = &[
    (
        "mm.image.section_shared_pages_copy_on_write",
        t_image_section,
    ),
    ("mm.image.invalid_image_statuses", t_bad_images),
];
