//! File-backed data sections in the kernel (*Windows Internals* 7th ed.,
//! Part 1, ch. 5, "Section objects", "Prototype PTEs", "In-paging I/O";
//! Part 2, ch. 11, "Cache virtual memory management"): the hardware and
//! I/O side of `::mm::control` (control areas, segments, prototype PTEs,
//! system cache views).
//!
//! The cache manager's interface (see docs/mm.md, "Mapped files"):
//! [`mm_create_data_section`] creates or references the one control area
//! of a file (`SectionObjectPointer->DataSectionObject`),
//! [`mm_map_view_in_system_cache`] / [`mm_unmap_view_in_system_cache`] map
//! 256 KiB views of it in the system cache range, [`mm_flush_section`]
//! writes dirty pages back, [`mm_extend_section`] follows a growing file,
//! [`mm_purge_section`] drops clean pages, [`mm_dereference_data_section`]
//! drops the reference.
//!
//! A fault on a system cache view (`mm_system_cache_fault`, from the trap
//! handler below DISPATCH_LEVEL) finds the prototype PTE; a page not yet
//! resident is read with a paging read IRP (`IoPageRead`: `IRP_MJ_READ`,
//! `IRP_PAGING_IO | IRP_NOCACHE | IRP_SYNCHRONOUS_PAGING_IO`, an MDL for
//! the frame) sent to the file object's device with no lock held. Dirty
//! pages are found through the hardware dirty bit of the view PTEs
//! (harvested at flush and at unmap) and written with paging write IRPs.

use super::map;
use super::pte::*;
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use ::mm::control::{
    ControlArea, FileMappings, PageIn, Proto, SYSTEM_CACHE_VIEW_PAGES, SYSTEM_CACHE_VIEW_SIZE,
};
use ::mm::{Pfn, PAGE_SIZE};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;
use wdk::*;

/// Start of the system cache's view range (`MmSystemCacheStart`; Windows 7
/// x64 put it at this address too): PML4 slot 0x1F3.
pub const SYSTEM_CACHE_START: u64 = 0xFFFF_F980_0000_0000;
/// Number of 256 KiB views in the range (256 MiB of addresses).
pub const SYSTEM_CACHE_VIEWS: usize = 1024;
/// End of the range (exclusive).
pub const SYSTEM_CACHE_END: u64 =
    SYSTEM_CACHE_START + SYSTEM_CACHE_VIEWS as u64 * SYSTEM_CACHE_VIEW_SIZE;

/// Owner cookie of control-area frames in the PFN database (NT stores the
/// prototype PTE's address): bit 62 | control area id << 32 | page.
const CONTROL_AREA_OWNER: u64 = 1 << 62;

/// Paging I/O counters (`!vm`, tests).
pub static PAGING_READS: AtomicU64 = AtomicU64::new(0);
pub static PAGING_WRITES: AtomicU64 = AtomicU64::new(0);

/// What the kernel keeps per control area beside the `mm` crate's model:
/// the record `DataSectionObject` points at (its address is what `!ca`
/// takes) and the file object.
struct Record {
    /// The `DataSectionObject` value: a pool block holding the id.
    address: u64,
    file: *mut FILE_OBJECT,
    /// The file object's object id (the control area holds a reference).
    file_id: ::ob::namespace::ObjectId,
    /// An image control area (`ImageSectionObject` points at the record)
    /// rather than a data one (`DataSectionObject`).
    image: bool,
}

struct FileMm {
    m: FileMappings,
    records: BTreeMap<u32, Record>,
}

// SAFETY: the raw file object pointers are only used under the lock or
// after taking a control-area reference that keeps the file object alive.
unsafe impl Send for FileMm {}

/// Control areas and system cache views (lock order: before the page-table
/// and PFN locks).
static FILES: SpinLocked<Option<FileMm>, DISPATCH_LEVEL> = SpinLocked::new(None);

fn with_files<R>(f: impl FnOnce(&mut FileMm) -> R) -> R {
    let _tag = crate::ex::pool::PoolTag::enter(*b"MmCa");
    FILES.with(|s| {
        let st = s.get_or_insert_with(|| FileMm {
            m: FileMappings::new(SYSTEM_CACHE_VIEWS),
            records: BTreeMap::new(),
        });
        f(st)
    })
}

/// A referenced data section (control area) of a file, as the cache
/// manager holds it (NT: the section object `CcInitializeCacheMap` makes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSection(u32);

impl DataSection {
    /// The control area's id.
    pub fn id(self) -> u32 {
        self.0
    }
}

/// The id stored in the block `DataSectionObject` points at.
fn id_of_record(address: u64) -> Option<u32> {
    if address == 0 {
        return None;
    }
    // SAFETY: `DataSectionObject` is only ever set by this module to a live
    // pool block holding the id (cleared before the block is freed).
    Some(unsafe { (address as *const u32).read() })
}

fn page_va(pfn: Pfn) -> *mut u8 {
    crate::hal::phys_to_virt(pfn << 12) as *mut u8
}

/// Sends one synchronous paging request for page `pfn` at `offset` of
/// `file` (`IoPageRead` / `IoSynchronousPageWrite`): an IRP with
/// `IRP_PAGING_IO | IRP_NOCACHE | IRP_SYNCHRONOUS_PAGING_IO`, an MDL for
/// the frame, sent to the top of the file's device stack; waits for it.
/// Returns the status and the bytes transferred.
///
/// # Safety
/// `file` must be a live, referenced file object; `pfn` a frame the caller
/// owns for the duration.
unsafe fn paging_io(
    file: *mut FILE_OBJECT,
    write: bool,
    pfn: Pfn,
    offset: u64,
) -> (NtStatus, usize) {
    use crate::io::irp::*;
    // SAFETY: guaranteed by the caller; the event and status block live on
    // this stack until the IRP is freed below.
    unsafe {
        let top = crate::io::file::related_device(file);
        let irp = io_allocate_irp((*top).StackSize, false);
        if irp.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        let mdl =
            crate::io::mdl::io_allocate_mdl(page_va(pfn).cast(), PAGE_SIZE as u32, false, irp);
        if mdl.is_null() {
            io_free_irp(irp);
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        crate::io::mdl::mm_build_mdl_for_non_paged_pool(mdl);
        let mut ev = KEVENT::zeroed();
        crate::ke::event::ke_initialize_event(&mut ev, NOTIFICATION_EVENT, false);
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        if let Some(ext) = ext_of(irp) {
            (*ext).flags = EXT_LOCAL;
        }
        (*irp).UserEvent = &mut ev;
        (*irp).UserIosb = &mut iosb;
        (*irp).UserBuffer = page_va(pfn).cast();
        (*irp).Tail.Overlay.OriginalFileObject = file;
        (*irp).Tail.Overlay.Thread = crate::ke::sched::current_thread().address() as *mut c_void;
        (*irp).Flags = IRP_PAGING_IO | IRP_NOCACHE | IRP_SYNCHRONOUS_PAGING_IO;
        let stack = IoGetNextIrpStackLocation(irp);
        (*stack).MajorFunction = if write { IRP_MJ_WRITE } else { IRP_MJ_READ };
        (*stack).FileObject = file;
        (*stack).Parameters.Read.Length = PAGE_SIZE as u32;
        (*stack).Parameters.Read.ByteOffset = offset as i64;
        let mut status = iof_call_driver_and_wait(top, irp, &mut ev);
        // Pending: the completion's status; otherwise a completion status
        // that differs from the one returned wins.
        if status == STATUS_PENDING || (iosb.Status != status && iosb.Status.as_u32() != 0) {
            status = iosb.Status;
        }
        let info = iosb.Information;
        (*irp).MdlAddress = ptr::null_mut();
        crate::io::mdl::io_free_mdl(mdl);
        io_free_irp(irp);
        if write {
            PAGING_WRITES.fetch_add(1, Ordering::Relaxed);
        } else {
            PAGING_READS.fetch_add(1, Ordering::Relaxed);
        }
        (status, info)
    }
}

/// The file's size from `IRP_MJ_QUERY_INFORMATION(FileStandardInformation)`
/// (`FsRtlGetFileSize`).
///
/// # Safety
/// `file` must be a live, referenced file object.
unsafe fn query_file_size(file: *mut FILE_OBJECT) -> Result<u64, NtStatus> {
    use crate::io::irp::*;
    let mut info = [0u64; 3]; // FILE_STANDARD_INFORMATION (0x18 bytes)
                              // SAFETY: guaranteed by the caller; buffers live on this stack until
                              // the IRP is freed.
    let status = unsafe {
        let top = crate::io::file::related_device(file);
        let irp = io_allocate_irp((*top).StackSize, false);
        if irp.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let mut ev = KEVENT::zeroed();
        crate::ke::event::ke_initialize_event(&mut ev, NOTIFICATION_EVENT, false);
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        if let Some(ext) = ext_of(irp) {
            (*ext).flags = EXT_LOCAL;
        }
        (*irp).UserEvent = &mut ev;
        (*irp).UserIosb = &mut iosb;
        (*irp).AssociatedIrp.SystemBuffer = info.as_mut_ptr().cast();
        (*irp).Tail.Overlay.OriginalFileObject = file;
        (*irp).Tail.Overlay.Thread = crate::ke::sched::current_thread().address() as *mut c_void;
        (*irp).Flags = IRP_SYNCHRONOUS_API;
        let stack = IoGetNextIrpStackLocation(irp);
        (*stack).MajorFunction = IRP_MJ_QUERY_INFORMATION;
        (*stack).FileObject = file;
        (*stack).Parameters.QueryFile.Length = 0x18;
        (*stack).Parameters.QueryFile.FileInformationClass =
            file_information_class::FileStandardInformation;
        let mut status = iof_call_driver_and_wait(top, irp, &mut ev);
        if status == STATUS_PENDING {
            status = iosb.Status;
        }
        io_free_irp(irp);
        status
    };
    if !status.is_success() {
        return Err(status);
    }
    // EndOfFile is the second LARGE_INTEGER.
    Ok(info[1])
}

/// `MmCreateSection(SEC_COMMIT, FileObject)` for the kernel (the cache
/// manager's `CcInitializeCacheMap`): the file's data section, created on
/// first use and referenced (`NumberOfSectionReferences`) on every call.
/// `size` extends the segment (`MaximumSize`); None takes the file's size
/// from the file system. `file` is checked to be a live file object of the
/// I/O manager (`STATUS_INVALID_HANDLE` otherwise) before it is read.
/// Errors: no `SectionObjectPointer`
/// (`STATUS_INVALID_FILE_FOR_SECTION`), an empty file with no size
/// (`STATUS_MAPPED_FILE_SIZE_ZERO`), the size query's failure.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // validated by `object_of` first
pub fn mm_create_data_section(
    file: *mut FILE_OBJECT,
    size: Option<u64>,
) -> Result<DataSection, NtStatus> {
    let file_id =
        crate::io::object_of(file as u64, crate::io::IoKind::File).ok_or(STATUS_INVALID_HANDLE)?;
    // SAFETY: a live file object (the caller's reference).
    let sop = unsafe { (*file).SectionObjectPointer };
    if sop.is_null() {
        return Err(STATUS_INVALID_FILE_FOR_SECTION);
    }
    let mut queried: Option<u64> = None;
    loop {
        // An existing control area: reference it (wait out a deletion).
        let r = with_files(|st| {
            // SAFETY: the file system keeps the section object pointers with the file.
            let id = id_of_record(unsafe { (*sop).DataSectionObject } as u64)?;
            let ca = st.m.get_mut(id)?;
            if ca.being_deleted {
                return Some(Err(STATUS_PENDING));
            }
            if let Some(s) = size {
                if let Err(e) = ca.extend(s) {
                    return Some(Err(e));
                }
            }
            ca.section_references += 1;
            Some(Ok(DataSection(id)))
        });
        match r {
            Some(Err(s)) if s == STATUS_PENDING => {
                crate::ke::sched::ke_delay_execution_thread(0);
                continue;
            }
            Some(r) => return r,
            None => {}
        }
        // A new one: the size comes from the file system (no lock held).
        let want = match (size, queried) {
            (Some(s), _) => s,
            (None, Some(q)) => q,
            (None, None) => {
                // SAFETY: the caller's reference keeps the file object.
                let q = unsafe { query_file_size(file)? };
                queried = Some(q);
                q
            }
        };
        let ca = ControlArea::new(file as u64, want)?;
        let record = crate::ex::pool::try_box(0u32)?;
        let created = with_files(|st| {
            // SAFETY: as above.
            if unsafe { !(*sop).DataSectionObject.is_null() } {
                return None; // another thread won the race: reference its one
            }
            let mut ca = ca;
            ca.section_references = 1;
            let id = st.m.insert(ca);
            let address = alloc::boxed::Box::into_raw(record);
            // SAFETY: a fresh block of ours.
            unsafe {
                address.write(id);
                (*sop).DataSectionObject = address.cast();
            }
            st.records.insert(
                id,
                Record {
                    address: address as u64,
                    file,
                    file_id,
                    image: false,
                },
            );
            Some(id)
        });
        if let Some(id) = created {
            // The control area's reference on the file object (`FilePointer`).
            let _ = crate::ob::object::ob_reference_object(file_id);
            return Ok(DataSection(id));
        }
    }
}

/// `MmCreateSection(SEC_IMAGE, FileObject)` (`MiCreateImageFileMap`): the
/// file's image control area (`SectionObjectPointer->ImageSectionObject`),
/// created on first use from the PE headers (read with paging reads and
/// validated by `::mm::image::ImageLayout::from_headers`) and referenced
/// (`NumberOfSectionReferences`) on every call. Returns the reference and
/// the image's layout. The file's data section, if any, is flushed first
/// so the image sees what was written through mapped views (NT does the
/// same). Errors: not a live file object (`STATUS_INVALID_HANDLE`), no
/// section object pointers or an empty file
/// (`STATUS_INVALID_FILE_FOR_SECTION`), the image statuses of
/// `from_headers`, a failed read's status.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // validated by `object_of` first
pub fn mm_create_image_control_area(
    file: *mut FILE_OBJECT,
) -> Result<(DataSection, ::mm::image::ImageLayout), NtStatus> {
    let file_id =
        crate::io::object_of(file as u64, crate::io::IoKind::File).ok_or(STATUS_INVALID_HANDLE)?;
    // SAFETY: a live file object (the caller's reference).
    let sop = unsafe { (*file).SectionObjectPointer };
    if sop.is_null() {
        return Err(STATUS_INVALID_FILE_FOR_SECTION);
    }
    loop {
        let r = with_files(|st| {
            // SAFETY: the file system keeps the section object pointers with the file.
            let id = id_of_record(unsafe { (*sop).ImageSectionObject } as u64)?;
            let ca = st.m.get_mut(id)?;
            if ca.being_deleted {
                return Some(Err(STATUS_PENDING));
            }
            let layout = ca.image.as_deref()?.clone();
            ca.section_references += 1;
            Some(Ok((DataSection(id), layout)))
        });
        match r {
            Some(Err(s)) if s == STATUS_PENDING => {
                crate::ke::sched::ke_delay_execution_thread(0);
                continue;
            }
            Some(r) => return r,
            None => {}
        }
        // SAFETY: forwarded: the file's live section object pointers.
        let _ = unsafe { mm_flush_section(sop, None, 0) };
        // SAFETY: the caller's reference keeps the file object.
        let size = unsafe { query_file_size(file)? };
        if size == 0 {
            return Err(STATUS_INVALID_FILE_FOR_SECTION);
        }
        let headers = read_image_headers(file, size)?;
        let layout = ::mm::image::ImageLayout::from_headers(&headers, size)?;
        drop(headers);
        let ca = ControlArea::new_image(file as u64, layout.clone())?;
        let record = crate::ex::pool::try_box(0u32)?;
        let created = with_files(|st| {
            // SAFETY: as above.
            if unsafe { !(*sop).ImageSectionObject.is_null() } {
                return None;
            }
            let mut ca = ca;
            ca.section_references = 1;
            let id = st.m.insert(ca);
            let address = alloc::boxed::Box::into_raw(record);
            // SAFETY: a fresh block of ours.
            unsafe {
                address.write(id);
                (*sop).ImageSectionObject = address.cast();
            }
            st.records.insert(
                id,
                Record {
                    address: address as u64,
                    file,
                    file_id,
                    image: true,
                },
            );
            Some(id)
        });
        if let Some(id) = created {
            let _ = crate::ob::object::ob_reference_object(file_id);
            return Ok((DataSection(id), layout));
        }
    }
}

/// Reads the first bytes of an image file (the first page, then as many
/// pages as its headers and section table need, up to
/// `::mm::image::MAX_HEADER_BYTES`) with paging reads into a scratch frame.
fn read_image_headers(file: *mut FILE_OBJECT, size: u64) -> Result<Vec<u8>, NtStatus> {
    let frame = super::pfn::mm_allocate_zeroed_page(0).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let mut out: Vec<u8> = Vec::new();
    let mut need = PAGE_SIZE;
    let mut off = 0;
    let mut result = Ok(());
    while off < need.min(size) {
        // SAFETY: the scratch frame is ours; the file is referenced by the caller.
        let status = unsafe {
            ptr::write_bytes(page_va(frame), 0, PAGE_SIZE as usize);
            paging_io(file, false, frame, off).0
        };
        if !status.is_success() && status != STATUS_END_OF_FILE {
            result = Err(status);
            break;
        }
        if let Err(e) = crate::ex::pool::try_reserve(&mut out, PAGE_SIZE as usize) {
            result = Err(e);
            break;
        }
        // SAFETY: the frame's 4096 bytes through the direct map.
        out.extend_from_slice(unsafe {
            core::slice::from_raw_parts(page_va(frame), PAGE_SIZE as usize)
        });
        off += PAGE_SIZE;
        if off == PAGE_SIZE {
            need = ::mm::image::ImageLayout::header_bytes_needed(&out)
                .unwrap_or(PAGE_SIZE)
                .div_ceil(PAGE_SIZE)
                .max(1)
                * PAGE_SIZE;
        }
    }
    let _ = super::pfn::mm_free_page(frame);
    result?;
    out.truncate(size.min(out.len() as u64) as usize);
    Ok(out)
}

/// The layout of image control area `id` (`SECTION_IMAGE_INFORMATION`,
/// `!ca`); `None` for a data control area or one that is gone.
pub fn image_layout(id: u32) -> Option<::mm::image::ImageLayout> {
    with_files(|st| st.m.get(id)?.image.as_deref().cloned())
}

/// The data section of a file that has one, referenced (cache manager:
/// `SharedCacheMap->Section` for an already cached file).
///
/// # Safety
/// `sop` must be null or the live section object pointers of a file.
pub unsafe fn mm_reference_data_section(sop: *mut SECTION_OBJECT_POINTERS) -> Option<DataSection> {
    if sop.is_null() {
        return None;
    }
    with_files(|st| {
        // SAFETY: the section object pointers live with their file.
        let id = id_of_record(unsafe { (*sop).DataSectionObject } as u64)?;
        let ca = st.m.get_mut(id).filter(|c| !c.being_deleted)?;
        ca.section_references += 1;
        Some(DataSection(id))
    })
}

/// Drops one reference (`MmDereferenceSegment` for the cache manager's
/// section). With the last reference and no view left the control area
/// goes: its dirty pages are written, its frames freed,
/// `DataSectionObject` cleared and the file object dereferenced.
pub fn mm_dereference_data_section(s: DataSection) {
    let delete = with_files(|st| {
        let ca = st.m.get_mut(s.0)?;
        ca.section_references = ca.section_references.saturating_sub(1);
        (ca.unreferenced() && !ca.being_deleted).then(|| {
            ca.being_deleted = true;
        })
    });
    if delete.is_some() {
        delete_control_area(s.0);
    }
}

/// `MiSegmentDelete` for a data section: write the dirty pages, then free
/// everything (no lock held during the writes).
fn delete_control_area(id: u32) {
    let _ = write_dirty(id, 0, u64::MAX);
    let gone = with_files(|st| {
        let ca = st.m.remove(id)?;
        let rec = st.records.remove(&id)?;
        // SAFETY: the control area's file object reference keeps it; the
        // section object pointers live with it.
        unsafe {
            let sop = (*rec.file).SectionObjectPointer;
            if !sop.is_null() {
                if rec.image {
                    if (*sop).ImageSectionObject as u64 == rec.address {
                        (*sop).ImageSectionObject = ptr::null_mut();
                    }
                } else if (*sop).DataSectionObject as u64 == rec.address {
                    (*sop).DataSectionObject = ptr::null_mut();
                }
            }
        }
        Some((ca.into_frames(), rec))
    });
    if let Some((frames, rec)) = gone {
        for f in frames {
            let _ = super::pfn::mm_free_page(f);
        }
        // SAFETY: the record block came from `try_box` in
        // `mm_create_data_section` and nothing points at it any more.
        drop(unsafe { alloc::boxed::Box::from_raw(rec.address as *mut u32) });
        crate::ob::object::ob_dereference_object(rec.file_id);
    }
}

/// `MmExtendSection`: the segment grows with the file (the cache manager's
/// `CcSetFileSizes`); a smaller size leaves it as it is.
pub fn mm_extend_section(s: DataSection, size: u64) -> Result<(), NtStatus> {
    with_files(|st| {
        st.m.get_mut(s.0)
            .ok_or(STATUS_INVALID_PARAMETER)?
            .extend(size)
    })
}

/// The segment's size in bytes.
pub fn mm_section_size(s: DataSection) -> Option<u64> {
    with_files(|st| st.m.get(s.0).map(|c| c.size))
}

fn slot_va(slot: usize) -> u64 {
    SYSTEM_CACHE_START + slot as u64 * SYSTEM_CACHE_VIEW_SIZE
}

/// `MmMapViewInSystemCache(Section, &Base, &SectionOffset, &ViewSize)`: maps
/// the 256 KiB view at `offset` (a multiple of 256 KiB) in the system cache
/// range; returns its address and size (256 KiB, less at the end of the
/// segment). Nothing is made valid: the first touch of each page faults it
/// in from the file. Errors: `STATUS_MAPPED_ALIGNMENT`,
/// `STATUS_INVALID_VIEW_SIZE` (beyond the segment), `STATUS_NO_MEMORY`
/// (every view slot in use), `STATUS_INVALID_PARAMETER` (a section that
/// is gone).
pub fn mm_map_view_in_system_cache(s: DataSection, offset: u64) -> Result<(u64, u64), NtStatus> {
    let (slot, view) = with_files(|st| st.m.map_cache_view(s.0, offset))?;
    Ok((slot_va(slot), view.pages * PAGE_SIZE))
}

/// `MmUnmapViewInSystemCache`: unmaps the view at `va` (any address in
/// it); the dirty bits of its PTEs go to the prototype PTEs (so a later
/// flush writes those pages), every processor flushes the translations.
/// `STATUS_NOT_MAPPED_VIEW` for an address that is no view.
pub fn mm_unmap_view_in_system_cache(va: u64) -> Result<(), NtStatus> {
    if !(SYSTEM_CACHE_START..SYSTEM_CACHE_END).contains(&va) {
        return Err(STATUS_NOT_MAPPED_VIEW);
    }
    let slot = ((va - SYSTEM_CACHE_START) / SYSTEM_CACHE_VIEW_SIZE) as usize;
    let base = slot_va(slot);
    let (view, delete) = with_files(|st| {
        let view = st.m.cache_view(slot).ok_or(STATUS_NOT_MAPPED_VIEW)?;
        let mut stale = Vec::new();
        for i in 0..view.pages {
            let v = base + i * PAGE_SIZE;
            if let Some(e) = map::take_system_pte(v) {
                stale.push(v);
                if e & PTE_DIRTY != 0 {
                    if let Some(ca) = st.m.get_mut(view.control_area) {
                        ca.mark_dirty(view.first_page + i);
                    }
                }
            }
        }
        flush_tb(&stale);
        st.m.unmap_cache_view(slot)?;
        let ca = st.m.get_mut(view.control_area);
        let delete = ca.is_some_and(|ca| {
            let d = ca.unreferenced() && !ca.being_deleted;
            if d {
                ca.being_deleted = true;
            }
            d
        });
        Ok::<_, NtStatus>((view, delete))
    })?;
    if delete {
        delete_control_area(view.control_area);
    }
    Ok(())
}

fn flush_tb(vas: &[u64]) {
    if vas.len() > crate::ke::mp::FLUSH_MULTIPLE_MAXIMUM {
        crate::ke::mp::ke_flush_entire_tb();
    } else if !vas.is_empty() {
        crate::ke::mp::ke_flush_multiple_tb(vas);
    }
}

/// The fault handler's entry for system addresses: `None` outside the
/// system cache range, else whether the page was made valid. A paging read
/// that fails stops the system with KERNEL_DATA_INPAGE_ERROR (0x7A: the
/// status, 0, the address), as NT does when no handler catches the in-page
/// error; callers that want a status use [`mm_prefault_system_cache`].
pub fn mm_system_cache_fault(va: u64, _write: bool) -> Option<Result<(), NtStatus>> {
    if !(SYSTEM_CACHE_START..SYSTEM_CACHE_END).contains(&va) {
        return None;
    }
    let r = make_valid(va & !(PAGE_SIZE - 1));
    if let Err(s) = r {
        if s == STATUS_NOT_MAPPED_VIEW {
            return Some(r); // not a view: the caller's PAGE_FAULT_IN_NONPAGED_AREA
        }
        crate::ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::KERNEL_DATA_INPAGE_ERROR,
            s.as_u32() as u64,
            0,
            va,
            0,
        );
    }
    Some(r)
}

/// Makes every page of `[va, va + length)` in a system cache view valid,
/// reading from the file as needed, and returns the first failure as a
/// status instead of faulting (what `CcCopyRead` / `CcMapData` need to turn
/// an in-page error into their return status; NT gets there through an
/// exception handler around the copy).
pub fn mm_prefault_system_cache(va: u64, length: u64) -> Result<(), NtStatus> {
    if length == 0 {
        return Ok(());
    }
    let end = va.checked_add(length).ok_or(STATUS_INVALID_PARAMETER)?;
    let mut p = va & !(PAGE_SIZE - 1);
    while p < end {
        make_valid(p)?;
        p += PAGE_SIZE;
    }
    Ok(())
}

/// Resolves the page at `va` (page aligned, in the cache range).
fn make_valid(va: u64) -> Result<(), NtStatus> {
    let slot = ((va - SYSTEM_CACHE_START) / SYSTEM_CACHE_VIEW_SIZE) as usize;
    let index = (va - slot_va(slot)) / PAGE_SIZE;
    let view_page = || {
        with_files(|st| {
            st.m.cache_view(slot)
                .filter(|v| index < v.pages)
                .map(|v| (v.control_area, v.first_page + index))
        })
    };
    let (id, page) = view_page().ok_or(STATUS_NOT_MAPPED_VIEW)?;
    page_in(id, page)?;
    // Map it if the view is still there (an unmap may have raced).
    with_files(|st| {
        let view = st.m.cache_view(slot).filter(|v| index < v.pages);
        let Some(view) = view.filter(|v| (v.control_area, v.first_page + index) == (id, page))
        else {
            return Err(STATUS_NOT_MAPPED_VIEW);
        };
        let ca = st.m.get(view.control_area).ok_or(STATUS_NOT_MAPPED_VIEW)?;
        let Some(Proto::Valid { pfn, .. }) = ca.proto(page) else {
            return Err(STATUS_IN_PAGE_ERROR);
        };
        match map::map_page(va, pfn, PTE_WRITE | PTE_NX | PTE_GLOBAL) {
            // Another processor mapped it first.
            Ok(()) | Err(STATUS_CONFLICTING_ADDRESSES) => Ok(()),
            Err(e) => Err(e),
        }
    })
}

/// Makes page `page` of control area `id` resident (`MiResolveProtoPteFault`
/// and `IoPageRead`): returns its frame, reading it from the file with a
/// paging read if needed (no lock held during the read). The caller's
/// reference (a view or a section) keeps the control area alive.
pub fn page_in(id: u32, page: u64) -> Result<Pfn, NtStatus> {
    for _ in 0..100_000 {
        let step = with_files(|st| {
            let file = st
                .records
                .get(&id)
                .map(|r| r.file)
                .ok_or(STATUS_INVALID_PARAMETER)?;
            let ca = st.m.get_mut(id).ok_or(STATUS_INVALID_PARAMETER)?;
            let owner = CONTROL_AREA_OWNER | (u64::from(id) << 32) | (page & 0xFFFF_FFFF);
            let r = ca.begin_fault(page, || super::pfn::mm_allocate_zeroed_page(owner))?;
            if let PageIn::Read { .. } = r {
                // The read keeps the control area alive.
                ca.section_references += 1;
            }
            Ok::<_, NtStatus>((r, file))
        })?;
        match step {
            (PageIn::Resident(pfn), _) => return Ok(pfn),
            (PageIn::Busy, _) => {
                crate::ke::sched::ke_delay_execution_thread(0);
            }
            (
                PageIn::Read {
                    pfn,
                    offset,
                    length,
                },
                file,
            ) => {
                // SAFETY: the control area (referenced for the read) holds a
                // reference on the file object; the frame is ours (InPage).
                let (status, _) = unsafe { paging_io(file, false, pfn, offset) };
                // An image page: the bytes after its subsection's data in
                // the page are zero (the read brought the file's next bytes).
                if length < PAGE_SIZE {
                    // SAFETY: the frame is ours until the page is valid.
                    unsafe {
                        ptr::write_bytes(
                            page_va(pfn).add(length as usize),
                            0,
                            (PAGE_SIZE - length) as usize,
                        )
                    };
                }
                // A short read leaves the rest of the (zeroed) page zero; a
                // page past the end of the file reads as zeros.
                let ok = status.is_success() || status == STATUS_END_OF_FILE;
                let freed = with_files(|st| {
                    st.m.get_mut(id)
                        .and_then(|ca| ca.complete_page_in(page, ok))
                });
                if let Some(f) = freed {
                    let _ = super::pfn::mm_free_page(f);
                }
                mm_dereference_data_section(DataSection(id));
                if !ok {
                    return Err(STATUS_IN_PAGE_ERROR);
                }
                return Ok(pfn);
            }
        }
    }
    Err(STATUS_IN_PAGE_ERROR)
}

/// The frame of page `page` of control area `id` if it is resident (the
/// user fault path's `FaultHost::file_page`).
pub fn resident_frame(id: u32, page: u64) -> Option<Pfn> {
    with_files(|st| match st.m.get(id)?.proto(page)? {
        Proto::Valid { pfn, .. } => Some(pfn),
        _ => None,
    })
}

/// A writable user mapping has (or had) page `page` of control area `id`:
/// it must be written back by the next flush.
pub fn mark_dirty(id: u32, page: u64) {
    with_files(|st| {
        if let Some(ca) = st.m.get_mut(id) {
            ca.mark_dirty(page);
        }
    });
}

/// A user view of a section over control area `id` was mapped
/// (`NumberOfMappedViews`).
pub fn user_view_mapped(id: u32) {
    with_files(|st| {
        if let Some(ca) = st.m.get_mut(id) {
            ca.mapped_views += 1;
        }
    });
}

/// A user view of control area `id` was unmapped; deletes an unreferenced
/// control area (may write pages: call with no spin lock held).
pub fn user_view_unmapped(id: u32) {
    let delete = with_files(|st| {
        let ca = st.m.get_mut(id)?;
        ca.mapped_views = ca.mapped_views.saturating_sub(1);
        (ca.unreferenced() && !ca.being_deleted).then(|| ca.being_deleted = true)
    });
    if delete.is_some() {
        delete_control_area(id);
    }
}

/// `NtCreateSection` made a section object over control area `s`
/// (`NumberOfUserReferences`); the section holds the reference `s` came with.
pub fn add_user_reference(s: DataSection) {
    with_files(|st| {
        if let Some(ca) = st.m.get_mut(s.0) {
            ca.user_references += 1;
        }
    });
}

/// The section object over control area `id` was deleted: drops its user
/// reference and its section reference (no spin lock may be held).
pub fn release_user_reference(id: u32) {
    with_files(|st| {
        if let Some(ca) = st.m.get_mut(id) {
            ca.user_references = ca.user_references.saturating_sub(1);
        }
    });
    mm_dereference_data_section(DataSection(id));
}

/// Harvests the dirty bits of control area `id`'s system cache view PTEs
/// into its prototype PTEs (for pages in `[first, end)`), flushing the TBs.
fn harvest_dirty(st: &mut FileMm, id: u32, first: u64, end: u64) {
    let mut stale = Vec::new();
    for (slot, view) in st.m.cache_views_of(id) {
        for i in 0..view.pages {
            let page = view.first_page + i;
            if page < first || page >= end {
                continue;
            }
            let v = slot_va(slot) + i * PAGE_SIZE;
            if map::clear_system_pte_dirty(v) {
                stale.push(v);
                if let Some(ca) = st.m.get_mut(id) {
                    ca.mark_dirty(page);
                }
            }
        }
    }
    flush_tb(&stale);
}

/// Writes the dirty pages of control area `id` in `[first, first + count)`
/// pages; returns the bytes written or the first failure (failed pages
/// stay dirty).
fn write_dirty(id: u32, first: u64, count: u64) -> Result<u64, NtStatus> {
    let end = first.saturating_add(count);
    // User views' dirty bits first (the memory manager's lock, not ours).
    let user = super::process::harvest_user_dirty(id, first, end);
    let work = with_files(|st| {
        if let Some(ca) = st.m.get_mut(id) {
            for page in user {
                ca.mark_dirty(page);
            }
        }
        harvest_dirty(st, id, first, end);
        let file = st.records.get(&id)?.file;
        let ca = st.m.get_mut(id)?;
        let pages = ca.take_dirty(first, count);
        ca.section_references += 1;
        Some((file, pages))
    });
    let Some((file, pages)) = work else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    let mut written = 0;
    let mut result = Ok(());
    for (page, pfn) in pages {
        // SAFETY: the control area is referenced (and holds the file); the
        // frame stays its own while referenced.
        let (status, info) = unsafe { paging_io(file, true, pfn, page * PAGE_SIZE) };
        if status.is_success() {
            written += info as u64;
        } else {
            with_files(|st| {
                if let Some(ca) = st.m.get_mut(id) {
                    ca.mark_dirty(page);
                }
            });
            if result.is_ok() {
                result = Err(status);
            }
        }
    }
    // Drop the reference without triggering a nested delete when called
    // from the delete path itself.
    let delete = with_files(|st| {
        let ca = st.m.get_mut(id)?;
        ca.section_references = ca.section_references.saturating_sub(1);
        (ca.unreferenced() && !ca.being_deleted).then(|| ca.being_deleted = true)
    });
    if delete.is_some() {
        delete_control_area(id);
    }
    result.map(|()| written)
}

/// Writes the dirty pages `[first, first + count)` of control area `id`
/// (`NtFlushVirtualMemory` of a user view): referenced for the writes, so
/// an unmap meanwhile does not delete it under them. A control area that
/// is gone or being deleted has nothing to write here (its deletion writes).
pub fn flush_control_area(id: u32, first: u64, count: u64) -> Result<u64, NtStatus> {
    let referenced = with_files(|st| {
        let ca = st.m.get_mut(id).filter(|c| !c.being_deleted)?;
        ca.section_references += 1;
        Some(())
    });
    if referenced.is_none() {
        return Ok(0);
    }
    let r = write_dirty(id, first, count);
    mm_dereference_data_section(DataSection(id));
    r
}

/// Pages the mapped page writer wrote (`!vm`, tests).
pub static MAPPED_WRITER_PAGES: AtomicU64 = AtomicU64::new(0);
/// Times the mapped page writer decided to write.
pub static MAPPED_WRITER_RUNS: AtomicU64 = AtomicU64::new(0);
/// Holds (> 0) keep the mapped page writer from writing (boot tests that
/// count paging writes exactly take one with [`MappedWriterHold`]).
static MAPPED_WRITER_HOLDS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// While alive, the mapped page writer does not write (test hook).
pub struct MappedWriterHold(());

impl MappedWriterHold {
    pub fn new() -> Self {
        MAPPED_WRITER_HOLDS.fetch_add(1, Ordering::AcqRel);
        MappedWriterHold(())
    }
}

impl Default for MappedWriterHold {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for MappedWriterHold {
    fn drop(&mut self) {
        MAPPED_WRITER_HOLDS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Tick of the mapped page writer: 250 ms (in 100 ns units).
const MAPPED_WRITER_TICK: u64 = 2_500_000;
/// Dirty mapped pages that make the writer write at once.
pub const MAPPED_WRITER_THRESHOLD: u64 = 64;
/// Ticks a dirty mapped page waits at most (1 s).
const MAPPED_WRITER_MAX_AGE: u32 = 4;

/// `MiMappedPageWriter`: a system thread that, every tick, takes the
/// hardware dirty bits of the user views of mapped data files (and of their
/// system cache views) into their control areas and, when
/// `::mm::control::MappedWriterPolicy` says so (at least
/// [`MAPPED_WRITER_THRESHOLD`] dirty pages, or dirty pages a second old),
/// writes them to their files with paging writes. Files that are only in
/// the system cache are left to the cache manager's lazy writer.
pub fn mapped_page_writer(_: usize) {
    let mut policy =
        ::mm::control::MappedWriterPolicy::new(MAPPED_WRITER_THRESHOLD, MAPPED_WRITER_MAX_AGE);
    loop {
        crate::ke::sched::ke_delay_execution_thread(MAPPED_WRITER_TICK);
        if MAPPED_WRITER_HOLDS.load(Ordering::Acquire) != 0 {
            continue;
        }
        // Reference the candidates so none is deleted under the writer.
        let ids = with_files(|st| {
            let ids = st.m.user_mapped_data_ids();
            for id in &ids {
                if let Some(ca) = st.m.get_mut(*id) {
                    ca.section_references += 1;
                }
            }
            ids
        });
        for &id in &ids {
            for page in super::process::harvest_user_dirty(id, 0, u64::MAX) {
                mark_dirty(id, page);
            }
        }
        let dirty = with_files(|st| {
            for &id in &ids {
                harvest_dirty(st, id, 0, u64::MAX);
            }
            st.m.dirty_pages(&ids)
        });
        if policy.tick(dirty) {
            MAPPED_WRITER_RUNS.fetch_add(1, Ordering::Relaxed);
            for &id in &ids {
                if let Ok(n) = write_dirty(id, 0, u64::MAX) {
                    MAPPED_WRITER_PAGES.fetch_add(n.div_ceil(PAGE_SIZE), Ordering::Relaxed);
                }
            }
        }
        for id in ids {
            mm_dereference_data_section(DataSection(id));
        }
    }
}

/// Starts the mapped page writer thread (phase 1).
pub fn start_mapped_page_writer() {
    if let Err(s) = crate::ke::sched::start_system_thread(
        "MappedPageWriter",
        17,
        u64::MAX,
        mapped_page_writer,
        0,
    ) {
        crate::ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            0x4D50,
            0,
            0,
        );
    }
}

/// `MmFlushSection(SectionObjectPointer, Offset, Length, IoStatus)`: writes
/// the file's dirty mapped pages in the range back with paging writes (the
/// cache manager's `CcFlushCache`, `NtFlushVirtualMemory`). `offset` None
/// flushes the whole section. A file with no data section has nothing to
/// write (success, 0 bytes). Returns the bytes written or the first
/// write's failure.
///
/// # Safety
/// `sop` must be null or the live section object pointers of a file.
pub unsafe fn mm_flush_section(
    sop: *mut SECTION_OBJECT_POINTERS,
    offset: Option<u64>,
    length: u64,
) -> Result<u64, NtStatus> {
    // SAFETY: forwarded caller guarantee.
    let Some(s) = (unsafe { mm_reference_data_section(sop) }) else {
        return Ok(0);
    };
    let (first, count) = match offset {
        None => (0, u64::MAX),
        Some(o) => {
            let first = o / PAGE_SIZE;
            let last = o.saturating_add(length.max(1) - 1) / PAGE_SIZE;
            (first, last - first + 1)
        }
    };
    let r = write_dirty(s.0, first, count);
    mm_dereference_data_section(s);
    r
}

/// `MmPurgeSection`: drops the clean resident pages of the file's data
/// section in the range (the next access reads the file). False when views
/// are mapped or a page in the range is dirty (the cache manager flushes
/// and unmaps first), true otherwise (also when there is no section).
///
/// # Safety
/// `sop` must be null or the live section object pointers of a file.
pub unsafe fn mm_purge_section(
    sop: *mut SECTION_OBJECT_POINTERS,
    offset: Option<u64>,
    length: u64,
) -> bool {
    // SAFETY: forwarded caller guarantee.
    let Some(s) = (unsafe { mm_reference_data_section(sop) }) else {
        return true;
    };
    let (first, count) = match offset {
        None => (0, u64::MAX),
        Some(o) => (o / PAGE_SIZE, length.div_ceil(PAGE_SIZE).max(1)),
    };
    let r = with_files(|st| {
        st.m.get_mut(s.0)
            .map(|ca| ca.purge(first, count))
            .unwrap_or(Ok(Vec::new()))
    });
    mm_dereference_data_section(s);
    match r {
        Ok(frames) => {
            for f in frames {
                let _ = super::pfn::mm_free_page(f);
            }
            true
        }
        Err(_) => false,
    }
}

/// Mapped system cache views (tests, `!ca`).
pub fn system_cache_views_in_use() -> usize {
    with_files(|st| st.m.cache_views_in_use())
}

/// Live control areas (tests).
pub fn control_areas() -> usize {
    with_files(|st| st.records.len())
}

/// The prototype PTE of `page` of a data section (tests).
pub fn prototype(s: DataSection, page: u64) -> Option<Proto> {
    with_files(|st| st.m.get(s.0).and_then(|c| c.proto(page)))
}

/// `!ca [address]`: a control area as WinDbg shows it (only the fields
/// ntrs has); without an address, the list of control areas.
pub fn kd_ca(arg: Option<&str>) {
    let addr = arg.and_then(|a| nt::kd::parse_number(a).ok());
    let text = with_files(|st| {
        let mut s = alloc::string::String::new();
        let Some(addr) = addr else {
            s += "ControlArea       Segment pages  Views  File              Type\n";
            for (id, r) in &st.records {
                if let Some(ca) = st.m.get(*id) {
                    s += &alloc::format!(
                        "{:016x}  {:>13}  {:>5}  {:016x}  {}\n",
                        r.address,
                        ca.pages(),
                        ca.mapped_views,
                        r.file as u64,
                        if ca.is_image() { "Image" } else { "Data" }
                    );
                }
            }
            return s;
        };
        let Some((id, r)) = st.records.iter().find(|(_, r)| r.address == addr) else {
            return alloc::format!("{addr:x} is not a control area\n");
        };
        let Some(ca) = st.m.get(*id) else {
            return s;
        };
        let (valid, dirty, inpage) = ca.counts();
        s += &alloc::format!("ControlArea  @ {:016x}\n", r.address);
        s += &alloc::format!(
            "  Section Ref                 {}  Pfn Ref                   {}  Mapped Views                {}\n",
            ca.section_references,
            valid + inpage,
            ca.mapped_views
        );
        s += &alloc::format!(
            "  User Ref                    {}  System Views              {}\n",
            ca.user_references,
            ca.system_cache_views
        );
        s += &alloc::format!("  File Object  {:016x}\n", r.file as u64);
        s += &alloc::format!(
            "  Flags  File{}{}\n\n",
            if ca.is_image() { " Image" } else { "" },
            if ca.being_deleted {
                " BeingDeleted"
            } else {
                ""
            }
        );
        s += &alloc::format!(
            "Segment @ {:016x}\n  Total Ptes  {:>8x}\n  Segment Size {:>8x}\n  Valid Ptes  {:>8x}  Dirty {:x}  In-page {:x}\n",
            r.address,
            ca.pages(),
            ca.size,
            valid,
            dirty,
            inpage
        );
        if let Some(l) = ca.image.as_deref() {
            s += &alloc::format!(
                "  Image base {:016x}  Entry {:016x}{}\n",
                l.image_base,
                l.info.transfer_address,
                if l.relocs_stripped {
                    "  RelocsStripped"
                } else {
                    ""
                }
            );
            s +=
                "  Subsection  Name      Starting Pte  Ptes  File offset  File bytes  Protection\n";
            for (i, sub) in l.subsections.iter().enumerate() {
                s += &alloc::format!(
                    "  {:>10}  {:<8}  {:>12x}  {:>4x}  {:>11x}  {:>10x}  {:#x}\n",
                    i,
                    if i == 0 { "(headers)" } else { sub.name() },
                    sub.first_page,
                    sub.pages,
                    sub.file_offset,
                    sub.file_bytes,
                    sub.protect
                );
            }
        }
        for (slot, v) in st.m.cache_views_of(*id) {
            s += &alloc::format!(
                "  System cache view {:016x} offset {:x} pages {:x}\n",
                slot_va(slot),
                v.first_page * PAGE_SIZE,
                v.pages
            );
        }
        s
    });
    crate::dbg_println!("{text}");
}

/// System cache view pages (`SYSTEM_CACHE_VIEW_PAGES`), re-exported for the
/// cache manager.
pub const VIEW_PAGES: u64 = SYSTEM_CACHE_VIEW_PAGES;
