//! The mapping and pinning interface (*Windows Internals* Part 2, ch. 11,
//! "Cache manager interfaces": "mapping and pinning"): a file system maps
//! a range of a cached stream and reads it in place (`CcMapData`), pins it
//! to modify it (`CcPinRead`, `CcPinMappedData`, `CcPreparePinWrite`),
//! marks it dirty (`CcSetDirtyPinnedData`) and ends each map or pin with
//! `CcUnpinData`. The bookkeeping is `::cc::bcb` (host-tested); here the
//! view is referenced for the BCB's life and the `PUBLIC_BCB` block the
//! caller holds is allocated.
//!
//! Where ntrs differs: NT raises an exception on an I/O error or a failed
//! allocation in these routines; ntrs has no kernel exception handling
//! yet, so they return FALSE instead. A request without `PIN_WAIT` /
//! `MAP_WAIT` returns FALSE (ntrs does not check residency without
//! waiting), as `CcCopyRead(Wait = FALSE)` does. `PIN_EXCLUSIVE` does not
//! make pins of one range exclude each other (no BCB resource yet), and a
//! pinned range's dirty pages may be written by the lazy writer while it is
//! pinned (NT's lazy writer waits for the BCB). `MAP_NO_READ` /
//! `PIN_NO_READ` skip making the pages resident; a later access faults
//! them in. `CcSetDirtyPinnedData`'s LSN is not kept (no log-file
//! ordering of writes).

#![allow(non_snake_case)]

use super::*;
use ::cc::bcb::{self, Bcb, BcbError, BcbId};
use wdk::{CACHE_NTC_BCB, PUBLIC_BCB};

/// What a BCB pointer handed to a driver points at: the public part first.
#[repr(C)]
pub struct BcbBlock {
    public: PUBLIC_BCB,
    id: BcbId,
    map: MapId,
    vacb: VacbId,
}

fn bcb_status(e: BcbError) -> NtStatus {
    match e {
        BcbError::BadRange => STATUS_INVALID_PARAMETER,
        BcbError::NoBcb => STATUS_NOT_FOUND,
        BcbError::Unknown => STATUS_INVALID_PARAMETER,
    }
}

/// How a map or pin request was asked for.
#[derive(Clone, Copy)]
pub struct Request {
    /// Pin (may modify) rather than only map.
    pub pin: bool,
    /// `CcPreparePinWrite`: the range is about to be written.
    pub prepare_write: bool,
    /// `CcPreparePinWrite`'s `Zero`.
    pub zero: bool,
    /// `PIN_*` / `MAP_*` flags.
    pub flags: u32,
}

/// Maps or pins `[offset, offset + length)` of cached file `file`:
/// returns the BCB block and the address of the data.
///
/// # Safety
/// `file` is a cached, live file object.
pub unsafe fn cc_map_or_pin(
    file: *mut FILE_OBJECT,
    offset: u64,
    length: u64,
    req: Request,
) -> Result<(*mut BcbBlock, *mut u8), NtStatus> {
    // SAFETY: the caller guarantees `file`.
    let Some((_, map)) = (unsafe { private_of(file) }) else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    let tracks = req.flags & bcb::PIN_CALLER_TRACKS_DIRTY_DATA != 0;
    if !tracks && req.flags & bcb::PIN_WAIT == 0 {
        return Err(STATUS_CANT_WAIT);
    }
    with(|st| st.bcbs.check(map, offset, length, req.pin, req.flags)).map_err(bcb_status)?;
    let view = get_view(map, offset)?;
    let va = view.va + (offset & (VACB_MAPPING_GRANULARITY - 1));
    let no_read = req.flags & (bcb::PIN_NO_READ | bcb::MAP_NO_READ) != 0 && !tracks;
    if !no_read {
        if let Err(s) = mmf::mm_prefault_system_cache(va, length) {
            release_view(view);
            return Err(s);
        }
    }
    if req.zero && !tracks {
        // SAFETY: `[va, va + length)` lies in the referenced view (the
        // range is in one view), whose pages were just made resident.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, length as usize) };
    }
    let id = with(|st| {
        st.bcbs.insert(Bcb {
            map,
            offset,
            length,
            pinned: req.pin,
            caller_tracks_dirty: tracks,
        })
    });
    let block = Box::into_raw(Box::new(BcbBlock {
        public: PUBLIC_BCB {
            NodeTypeCode: CACHE_NTC_BCB,
            NodeByteSize: core::mem::size_of::<BcbBlock>() as i16,
            MappedLength: length as u32,
            MappedFileOffset: offset as i64,
        },
        id,
        map,
        vacb: view.vacb,
    }));
    if req.prepare_write && !tracks {
        set_dirty(map, offset, length);
    }
    Ok((block, va as *mut u8))
}

fn set_dirty(map: MapId, offset: u64, length: u64) {
    let first = with(|st| {
        let before = st.cc.total_dirty;
        let _ = st.cc.mark_dirty(map, offset, length);
        before == 0
    });
    if first {
        wake_lazy_writer();
    }
}

/// The live BCB behind a driver's BCB pointer.
///
/// # Safety
/// `bcb` is null or a pointer this module returned and not yet unpinned.
unsafe fn live(bcb: *mut BcbBlock) -> Option<(BcbId, Bcb)> {
    if bcb.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a live block.
    let id = unsafe { (*bcb).id };
    with(|st| st.bcbs.get(id).copied()).map(|b| (id, b))
}

/// `CcPinMappedData`: pins a mapped BCB whose range covers
/// `[offset, offset + length)`.
///
/// # Safety
/// `bcb` is a live BCB pointer of this module.
pub unsafe fn cc_pin_mapped_data(
    bcb: *mut BcbBlock,
    offset: u64,
    length: u64,
) -> Result<(), NtStatus> {
    // SAFETY: forwarded.
    let (id, b) = unsafe { live(bcb) }.ok_or(STATUS_INVALID_PARAMETER)?;
    if offset < b.offset || offset + length > b.offset + b.length {
        return Err(STATUS_INVALID_PARAMETER);
    }
    with(|st| st.bcbs.pin(id)).map(|_| ()).map_err(bcb_status)
}

/// `CcSetDirtyPinnedData`: the pinned range goes to the lazy writer.
///
/// # Safety
/// `bcb` is a live BCB pointer of this module.
pub unsafe fn cc_set_dirty_pinned_data(bcb: *mut BcbBlock) -> Result<(), NtStatus> {
    // SAFETY: forwarded.
    let (_, b) = unsafe { live(bcb) }.ok_or(STATUS_INVALID_PARAMETER)?;
    if !b.pinned {
        return Err(STATUS_INVALID_PARAMETER);
    }
    set_dirty(b.map, b.offset, b.length);
    Ok(())
}

/// `CcUnpinData`: ends a map or pin: the view reference goes and the
/// block is freed.
///
/// # Safety
/// `bcb` is a live BCB pointer of this module; it is invalid afterwards.
pub unsafe fn cc_unpin_data(bcb: *mut BcbBlock) -> Result<(), NtStatus> {
    if bcb.is_null() {
        return Err(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: the caller guarantees a live block.
    let (id, vacb) = unsafe { ((*bcb).id, (*bcb).vacb) };
    with(|st| st.bcbs.remove(id)).map_err(bcb_status)?;
    release_view(View { va: 0, vacb });
    // SAFETY: the block came from `Box::into_raw` above and its BCB was
    // live until just now, so this is its one free.
    drop(unsafe { Box::from_raw(bcb) });
    Ok(())
}

/// Live BCBs of the stream `file` is cached in (tests).
///
/// # Safety
/// `file` is a live file object.
pub unsafe fn live_bcbs(file: *mut FILE_OBJECT) -> usize {
    // SAFETY: forwarded.
    match unsafe { private_of(file) } {
        Some((_, map)) => with(|st| st.bcbs.count_of(map)),
        None => 0,
    }
}

fn offset_of(p: *const i64) -> Option<u64> {
    // SAFETY: the driver passes a valid LARGE_INTEGER pointer or null.
    (!p.is_null())
        .then(|| unsafe { p.read_unaligned() })
        .and_then(|o| u64::try_from(o).ok())
}

/// Writes the outputs of a successful map or pin.
///
/// # Safety
/// `bcb_out` and `buffer_out` are writable or null.
unsafe fn out(
    r: Result<(*mut BcbBlock, *mut u8), NtStatus>,
    bcb_out: *mut *mut c_void,
    buffer_out: *mut *mut c_void,
) -> u8 {
    match r {
        Ok((b, va)) => {
            // SAFETY: the caller guarantees the output pointers.
            unsafe {
                if !bcb_out.is_null() {
                    bcb_out.write_unaligned(b.cast());
                }
                if !buffer_out.is_null() {
                    buffer_out.write_unaligned(va.cast());
                }
            }
            1
        }
        Err(_) => 0,
    }
}

/// The body of `CcMapData`, `CcPinRead` and `CcPreparePinWrite`: checks
/// the file object and offset, maps or pins, writes the outputs.
///
/// # Safety
/// Driver-supplied pointers must be valid (`file` a cached file object,
/// `offset` null or readable, the outputs null or writable).
unsafe fn map_or_pin_export(
    file: *mut FILE_OBJECT,
    offset: *const i64,
    length: u32,
    req: Request,
    bcb_out: *mut *mut c_void,
    buffer_out: *mut *mut c_void,
) -> u8 {
    let Some(off) = offset_of(offset).filter(|_| !file.is_null()) else {
        return 0;
    };
    // SAFETY: forwarded caller guarantees.
    unsafe {
        out(
            cc_map_or_pin(file, off, length as u64, req),
            bcb_out,
            buffer_out,
        )
    }
}

/// `CcMapData`.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn CcMapData(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *const i64,
    Length: u32,
    Flags: u32,
    Bcb: *mut *mut c_void,
    Buffer: *mut *mut c_void,
) -> u8 {
    let req = Request {
        pin: false,
        prepare_write: false,
        zero: false,
        flags: Flags & (bcb::MAP_WAIT | bcb::MAP_NO_READ),
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { map_or_pin_export(FileObject, FileOffset, Length, req, Bcb, Buffer) }
}

/// `CcPinRead`.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn CcPinRead(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *const i64,
    Length: u32,
    Flags: u32,
    Bcb: *mut *mut c_void,
    Buffer: *mut *mut c_void,
) -> u8 {
    let req = Request {
        pin: true,
        prepare_write: false,
        zero: false,
        flags: Flags,
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { map_or_pin_export(FileObject, FileOffset, Length, req, Bcb, Buffer) }
}

/// `CcPreparePinWrite`: pins the range for writing (zeroed when `Zero`)
/// and marks it dirty, unless `PIN_CALLER_TRACKS_DIRTY_DATA`.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn CcPreparePinWrite(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *const i64,
    Length: u32,
    Zero: u8,
    Flags: u32,
    Bcb: *mut *mut c_void,
    Buffer: *mut *mut c_void,
) -> u8 {
    let req = Request {
        pin: true,
        prepare_write: true,
        zero: Zero != 0,
        flags: Flags,
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { map_or_pin_export(FileObject, FileOffset, Length, req, Bcb, Buffer) }
}

/// `CcPinMappedData`: `*Bcb` (from `CcMapData`) becomes pinned.
///
/// # Safety
/// Driver-supplied pointers must be valid; `*Bcb` a live BCB.
#[no_mangle]
pub unsafe extern "system" fn CcPinMappedData(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *const i64,
    Length: u32,
    Flags: u32,
    Bcb: *mut *mut c_void,
) -> u8 {
    let Some(off) = offset_of(FileOffset).filter(|_| !FileObject.is_null() && !Bcb.is_null())
    else {
        return 0;
    };
    if Flags & bcb::PIN_WAIT == 0 {
        return 0;
    }
    // SAFETY: forwarded caller guarantees.
    let b = unsafe { Bcb.read_unaligned() }.cast::<BcbBlock>();
    // SAFETY: as above.
    u8::from(unsafe { cc_pin_mapped_data(b, off, Length as u64) }.is_ok())
}

/// `CcSetDirtyPinnedData` (the LSN is not kept).
///
/// # Safety
/// `BcbVoid` is a live pinned BCB.
#[no_mangle]
pub unsafe extern "system" fn CcSetDirtyPinnedData(BcbVoid: *mut c_void, _Lsn: *const i64) {
    // SAFETY: forwarded caller guarantees.
    let _ = unsafe { cc_set_dirty_pinned_data(BcbVoid.cast()) };
}

/// `CcUnpinData`.
///
/// # Safety
/// `Bcb` is a live BCB; invalid afterwards.
#[no_mangle]
pub unsafe extern "system" fn CcUnpinData(Bcb: *mut c_void) {
    // SAFETY: forwarded caller guarantees.
    let _ = unsafe { cc_unpin_data(Bcb.cast()) };
}

/// `CcUnpinDataForThread`: ntrs's BCBs have no owner thread, so this is
/// `CcUnpinData`.
///
/// # Safety
/// `Bcb` is a live BCB; invalid afterwards.
#[no_mangle]
pub unsafe extern "system" fn CcUnpinDataForThread(Bcb: *mut c_void, _ResourceThreadId: usize) {
    // SAFETY: forwarded caller guarantees.
    let _ = unsafe { cc_unpin_data(Bcb.cast()) };
}
