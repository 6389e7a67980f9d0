//! The `Rtl*` exports over lib/rtl: each turns its C arguments into slices,
//! calls the tested routine and writes the results back. Pointers are the
//! caller's, as on Windows: a bad one faults in the caller's process.
//! Routines that allocate (`AllocateDestinationString = TRUE`,
//! `RtlDosPathNameToNtPathName_U_WithStatus`) wait for the process heap
//! and the PEB's current directory (issue 16): not exported yet.
#![allow(non_snake_case)]

use core::slice;
use rtl::bitmap::Bitmap;
use rtl::time::TimeFields;

/// `UNICODE_STRING` (and, with `u8` units, `ANSI_STRING`).
#[repr(C)]
pub struct CountedString<T> {
    pub length: u16,
    pub maximum_length: u16,
    pub buffer: *mut T,
}

/// `RTL_BITMAP`.
#[repr(C)]
pub struct RtlBitmap {
    pub size_of_bitmap: u32,
    pub buffer: *mut u32,
}

const STATUS_SUCCESS: i32 = 0;
const STATUS_NOT_IMPLEMENTED: i32 = 0xC000_0002u32 as i32;

/// The used part of a counted string.
///
/// # Safety
/// `s` points to a valid counted string whose buffer holds `length` bytes.
unsafe fn used<'a, T>(s: *const CountedString<T>) -> &'a [T] {
    // SAFETY: the caller passes a valid string.
    let s = unsafe { &*s };
    if s.buffer.is_null() {
        return &[];
    }
    // SAFETY: the buffer holds `length` bytes of `T` units.
    unsafe { slice::from_raw_parts(s.buffer, s.length as usize / core::mem::size_of::<T>()) }
}

/// The whole buffer of a counted string (`maximum_length` bytes).
///
/// # Safety
/// `s` points to a valid counted string whose buffer holds
/// `maximum_length` writable bytes, not aliased elsewhere during the call.
unsafe fn whole<'a, T>(s: *mut CountedString<T>) -> &'a mut [T] {
    // SAFETY: the caller passes a valid string.
    let s = unsafe { &*s };
    if s.buffer.is_null() {
        return &mut [];
    }
    // SAFETY: the buffer holds `maximum_length` writable bytes.
    unsafe {
        slice::from_raw_parts_mut(
            s.buffer,
            s.maximum_length as usize / core::mem::size_of::<T>(),
        )
    }
}

/// Units before the NUL of a C string.
///
/// # Safety
/// `p` is null or NUL-terminated.
unsafe fn c_len<T: Copy + Default + PartialEq>(p: *const T) -> usize {
    if p.is_null() {
        return 0;
    }
    let mut n = 0;
    // SAFETY: the string is NUL-terminated, so every unit read up to the
    // NUL is inside it.
    while unsafe { *p.add(n) } != T::default() {
        n += 1;
    }
    n
}

/// `RtlInitUnicodeString`.
///
/// # Safety
/// `dst` is writable; `src` is null or a NUL-terminated UTF-16 string.
#[no_mangle]
pub unsafe extern "system" fn RtlInitUnicodeString(dst: *mut CountedString<u16>, src: *const u16) {
    // SAFETY: per the contract.
    let n = unsafe { c_len(src) };
    let (length, maximum_length) = if src.is_null() {
        (0, 0)
    } else {
        rtl::string::init_unicode_lengths(n)
    };
    // SAFETY: `dst` is writable.
    unsafe {
        dst.write(CountedString {
            length,
            maximum_length,
            buffer: src as *mut u16,
        });
    }
}

/// `RtlInitUnicodeStringEx`: `STATUS_NAME_TOO_LONG` for a source too long.
///
/// # Safety
/// As [`RtlInitUnicodeString`].
#[no_mangle]
pub unsafe extern "system" fn RtlInitUnicodeStringEx(
    dst: *mut CountedString<u16>,
    src: *const u16,
) -> i32 {
    // SAFETY: per the contract.
    let n = unsafe { c_len(src) };
    let (length, maximum_length) = if src.is_null() {
        (0, 0)
    } else {
        match rtl::string::init_unicode_lengths_ex(n) {
            Ok(l) => l,
            Err(s) => return s.as_u32() as i32,
        }
    };
    // SAFETY: `dst` is writable.
    unsafe {
        dst.write(CountedString {
            length,
            maximum_length,
            buffer: src as *mut u16,
        });
    }
    STATUS_SUCCESS
}

/// `RtlInitAnsiString`.
///
/// # Safety
/// `dst` is writable; `src` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "system" fn RtlInitAnsiString(dst: *mut CountedString<u8>, src: *const u8) {
    // SAFETY: per the contract.
    let n = unsafe { c_len(src) };
    let (length, maximum_length) = if src.is_null() {
        (0, 0)
    } else {
        rtl::string::init_ansi_lengths(n)
    };
    // SAFETY: `dst` is writable.
    unsafe {
        dst.write(CountedString {
            length,
            maximum_length,
            buffer: src as *mut u8,
        });
    }
}

/// `RtlCompareUnicodeString`.
///
/// # Safety
/// Both are valid `UNICODE_STRING`s.
#[no_mangle]
pub unsafe extern "system" fn RtlCompareUnicodeString(
    a: *const CountedString<u16>,
    b: *const CountedString<u16>,
    case_insensitive: u8,
) -> i32 {
    // SAFETY: per the contract.
    let (a, b) = unsafe { (used(a), used(b)) };
    rtl::string::compare_unicode(a, b, case_insensitive != 0)
}

/// `RtlEqualUnicodeString`.
///
/// # Safety
/// Both are valid `UNICODE_STRING`s.
#[no_mangle]
pub unsafe extern "system" fn RtlEqualUnicodeString(
    a: *const CountedString<u16>,
    b: *const CountedString<u16>,
    case_insensitive: u8,
) -> u8 {
    // SAFETY: per the contract.
    let (a, b) = unsafe { (used(a), used(b)) };
    rtl::string::equal_unicode(a, b, case_insensitive != 0) as u8
}

/// `RtlPrefixUnicodeString`.
///
/// # Safety
/// Both are valid `UNICODE_STRING`s.
#[no_mangle]
pub unsafe extern "system" fn RtlPrefixUnicodeString(
    prefix: *const CountedString<u16>,
    s: *const CountedString<u16>,
    case_insensitive: u8,
) -> u8 {
    // SAFETY: per the contract.
    let (p, s) = unsafe { (used(prefix), used(s)) };
    rtl::string::prefix_unicode(p, s, case_insensitive != 0) as u8
}

/// `RtlCompareString`.
///
/// # Safety
/// Both are valid `STRING`s.
#[no_mangle]
pub unsafe extern "system" fn RtlCompareString(
    a: *const CountedString<u8>,
    b: *const CountedString<u8>,
    case_insensitive: u8,
) -> i32 {
    // SAFETY: per the contract.
    let (a, b) = unsafe { (used(a), used(b)) };
    rtl::string::compare_ansi(a, b, case_insensitive != 0)
}

/// `RtlUpcaseUnicodeChar`.
#[no_mangle]
pub extern "system" fn RtlUpcaseUnicodeChar(c: u16) -> u16 {
    rtl::upcase::upcase(c)
}

/// `RtlDowncaseUnicodeChar`.
#[no_mangle]
pub extern "system" fn RtlDowncaseUnicodeChar(c: u16) -> u16 {
    rtl::upcase::downcase(c)
}

/// `RtlUpcaseUnicodeString` (`allocate` TRUE: `STATUS_NOT_IMPLEMENTED`
/// until ntdll has the process heap).
///
/// # Safety
/// `dst` and `src` are valid `UNICODE_STRING`s, `dst`'s buffer writable and
/// not overlapping `src`'s.
#[no_mangle]
pub unsafe extern "system" fn RtlUpcaseUnicodeString(
    dst: *mut CountedString<u16>,
    src: *const CountedString<u16>,
    allocate: u8,
) -> i32 {
    if allocate != 0 {
        return STATUS_NOT_IMPLEMENTED;
    }
    // SAFETY: per the contract.
    let (s, d) = unsafe { (used(src), whole(dst)) };
    match rtl::string::upcase_unicode_string(s, d) {
        Ok(len) => {
            // SAFETY: `dst` is valid.
            unsafe { (*dst).length = len };
            STATUS_SUCCESS
        }
        Err(e) => e.as_u32() as i32,
    }
}

/// `RtlUnicodeStringToAnsiString` (Latin-1; `allocate` TRUE:
/// `STATUS_NOT_IMPLEMENTED` until ntdll has the process heap).
///
/// # Safety
/// `dst` and `src` are valid counted strings, `dst`'s buffer writable.
#[no_mangle]
pub unsafe extern "system" fn RtlUnicodeStringToAnsiString(
    dst: *mut CountedString<u8>,
    src: *const CountedString<u16>,
    allocate: u8,
) -> i32 {
    if allocate != 0 {
        return STATUS_NOT_IMPLEMENTED;
    }
    // SAFETY: per the contract.
    let (s, d) = unsafe { (used(src), whole(dst)) };
    let (len, status) = rtl::string::unicode_string_to_ansi(s, d);
    // SAFETY: `dst` is valid.
    unsafe { (*dst).length = len };
    status.as_u32() as i32
}

/// `RtlAnsiStringToUnicodeString` (Latin-1; `allocate` TRUE:
/// `STATUS_NOT_IMPLEMENTED` until ntdll has the process heap).
///
/// # Safety
/// `dst` and `src` are valid counted strings, `dst`'s buffer writable.
#[no_mangle]
pub unsafe extern "system" fn RtlAnsiStringToUnicodeString(
    dst: *mut CountedString<u16>,
    src: *const CountedString<u8>,
    allocate: u8,
) -> i32 {
    if allocate != 0 {
        return STATUS_NOT_IMPLEMENTED;
    }
    // SAFETY: per the contract.
    let (s, d) = unsafe { (used(src), whole(dst)) };
    let (len, status) = rtl::string::ansi_string_to_unicode(s, d);
    // SAFETY: `dst` is valid.
    unsafe { (*dst).length = len };
    status.as_u32() as i32
}

/// `RtlNtStatusToDosError`.
#[no_mangle]
pub extern "system" fn RtlNtStatusToDosError(status: i32) -> u32 {
    rtl::error::nt_status_to_dos_error(status as u32)
}

/// `RtlDetermineDosPathNameType_U`.
///
/// # Safety
/// `path` is null or NUL-terminated.
#[no_mangle]
pub unsafe extern "system" fn RtlDetermineDosPathNameType_U(path: *const u16) -> u32 {
    // SAFETY: per the contract.
    let n = unsafe { c_len(path) };
    if n == 0 {
        return 0;
    }
    // SAFETY: the string holds `n` units before its NUL.
    rtl::path::path_type(unsafe { slice::from_raw_parts(path, n) }) as u32
}

/// `RtlTimeToTimeFields`.
///
/// # Safety
/// `time` is readable, `fields` writable.
#[no_mangle]
pub unsafe extern "system" fn RtlTimeToTimeFields(time: *const i64, fields: *mut TimeFields) {
    // SAFETY: per the contract.
    unsafe { fields.write(rtl::time::time_to_fields(time.read())) }
}

/// `RtlTimeFieldsToTime`: FALSE for fields out of range.
///
/// # Safety
/// `fields` is readable, `time` writable.
#[no_mangle]
pub unsafe extern "system" fn RtlTimeFieldsToTime(fields: *const TimeFields, time: *mut i64) -> u8 {
    // SAFETY: per the contract.
    match rtl::time::fields_to_time(unsafe { &*fields }) {
        Some(t) => {
            // SAFETY: per the contract.
            unsafe { time.write(t) };
            1
        }
        None => 0,
    }
}

/// `RtlInitializeBitMap`.
///
/// # Safety
/// `header` is writable.
#[no_mangle]
pub unsafe extern "system" fn RtlInitializeBitMap(
    header: *mut RtlBitmap,
    buffer: *mut u32,
    size: u32,
) {
    // SAFETY: per the contract.
    unsafe {
        header.write(RtlBitmap {
            size_of_bitmap: size,
            buffer,
        })
    }
}

/// Runs `f` on the bitmap `header` describes (`None`'s answer when its
/// buffer is null).
///
/// # Safety
/// `header` is valid and its buffer holds `size_of_bitmap` bits, writable
/// and not aliased during the call.
unsafe fn with_bitmap<R>(
    header: *mut RtlBitmap,
    none: R,
    f: impl FnOnce(&mut Bitmap<'_>) -> R,
) -> R {
    // SAFETY: per the contract.
    let h = unsafe { &*header };
    if h.buffer.is_null() {
        return none;
    }
    let words = h.size_of_bitmap.div_ceil(32) as usize;
    // SAFETY: the buffer holds `size_of_bitmap` bits, rounded up to words.
    let buf = unsafe { slice::from_raw_parts_mut(h.buffer, words) };
    match Bitmap::new(buf, h.size_of_bitmap) {
        Some(mut b) => f(&mut b),
        None => none,
    }
}

macro_rules! bitmap_exports {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $none:expr, |$b:ident| $body:expr;)*) => {
        $(
            $(#[$doc])*
            ///
            /// # Safety
            /// `header` describes a valid, writable bitmap.
            #[no_mangle]
            pub unsafe extern "system" fn $name(header: *mut RtlBitmap $(, $arg: $ty)*) -> $ret {
                // SAFETY: per the contract.
                unsafe { with_bitmap(header, $none, |$b| $body) }
            }
        )*
    };
}

bitmap_exports! {
    /// `RtlSetBits` (a range outside the bitmap is ignored).
    RtlSetBits(start: u32, n: u32) -> () = (), |b| { b.set_bits(start, n); };
    /// `RtlClearBits` (a range outside the bitmap is ignored).
    RtlClearBits(start: u32, n: u32) -> () = (), |b| { b.clear_bits(start, n); };
    /// `RtlSetAllBits`.
    RtlSetAllBits() -> () = (), |b| b.set_all();
    /// `RtlClearAllBits`.
    RtlClearAllBits() -> () = (), |b| b.clear_all();
    /// `RtlAreBitsSet`.
    RtlAreBitsSet(start: u32, n: u32) -> u8 = 0, |b| b.are_bits_set(start, n) as u8;
    /// `RtlAreBitsClear`.
    RtlAreBitsClear(start: u32, n: u32) -> u8 = 0, |b| b.are_bits_clear(start, n) as u8;
    /// `RtlFindClearBits`.
    RtlFindClearBits(n: u32, hint: u32) -> u32 = u32::MAX, |b| b.find_clear_bits(n, hint);
    /// `RtlFindSetBits`.
    RtlFindSetBits(n: u32, hint: u32) -> u32 = u32::MAX, |b| b.find_set_bits(n, hint);
    /// `RtlFindClearBitsAndSet`.
    RtlFindClearBitsAndSet(n: u32, hint: u32) -> u32 = u32::MAX, |b| b.find_clear_bits_and_set(n, hint);
    /// `RtlFindSetBitsAndClear`.
    RtlFindSetBitsAndClear(n: u32, hint: u32) -> u32 = u32::MAX, |b| b.find_set_bits_and_clear(n, hint);
    /// `RtlNumberOfSetBits`.
    RtlNumberOfSetBits() -> u32 = 0, |b| b.number_of_set_bits();
    /// `RtlNumberOfClearBits`.
    RtlNumberOfClearBits() -> u32 = 0, |b| b.number_of_clear_bits();
}
