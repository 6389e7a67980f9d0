//! Run-time library routines drivers import for strings and memory:
//! `RtlInitUnicodeString` and the `Rtl*Memory` exports.

/// `UNICODE_STRING`: lengths in bytes, not counting a terminator.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UnicodeString {
    pub length: u16,
    pub maximum_length: u16,
    pub buffer: *mut u16,
}

const _: () = assert!(core::mem::size_of::<UnicodeString>() == 16);

/// `RtlInitUnicodeString`: points `dest` at the NUL-terminated `source`
/// (Length = its bytes without the NUL, MaximumLength = with it; a string
/// longer than 32766 characters is cut to 0xFFFC bytes as NT does; a null
/// source gives an empty string).
///
/// # Safety
/// `dest` is writable; `source` is null or NUL-terminated.
#[no_mangle]
pub unsafe extern "system" fn RtlInitUnicodeString(dest: *mut UnicodeString, source: *const u16) {
    let mut n = 0usize;
    if !source.is_null() {
        // SAFETY: the caller passes a NUL-terminated string.
        while unsafe { source.add(n).read_unaligned() } != 0 {
            n += 1;
        }
    }
    let bytes = (n * 2).min(0xFFFC) as u16;
    let s = UnicodeString {
        length: bytes,
        maximum_length: if source.is_null() { 0 } else { bytes + 2 },
        buffer: source as *mut u16,
    };
    // SAFETY: the caller passes a writable UNICODE_STRING.
    unsafe { dest.write_unaligned(s) }
}

/// `RtlCopyMemory` (x64 export): copies `len` bytes of non-overlapping buffers.
///
/// # Safety
/// Both buffers are valid for `len` bytes and do not overlap.
#[no_mangle]
pub unsafe extern "system" fn RtlCopyMemory(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) }
}

/// `RtlMoveMemory`: copies `len` bytes; the buffers may overlap.
///
/// # Safety
/// Both buffers are valid for `len` bytes.
#[no_mangle]
pub unsafe extern "system" fn RtlMoveMemory(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy(src, dst, len) }
}

/// `RtlFillMemory` (destination, length, fill byte).
///
/// # Safety
/// `dst` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "system" fn RtlFillMemory(dst: *mut u8, len: usize, fill: u8) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::write_bytes(dst, fill, len) }
}

/// `RtlZeroMemory`.
///
/// # Safety
/// `dst` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "system" fn RtlZeroMemory(dst: *mut u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::write_bytes(dst, 0, len) }
}

/// `RtlCompareMemory`: the number of leading bytes that match.
///
/// # Safety
/// Both buffers are valid for `len` bytes.
#[no_mangle]
pub unsafe extern "system" fn RtlCompareMemory(a: *const u8, b: *const u8, len: usize) -> usize {
    // SAFETY: the caller's contract.
    let (a, b) = unsafe {
        (
            core::slice::from_raw_parts(a, len),
            core::slice::from_raw_parts(b, len),
        )
    };
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
