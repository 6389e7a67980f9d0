//! The C routines the compiler calls, which Windows' ntdll also exports
//! under these names (`memcpy`, `memmove`, `memset`, `memcmp`, `strlen`,
//! `wcslen`), and the personality routine and `_fltused` that `core`
//! references (not exported).

/// # Safety
/// C `memcpy` contract.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: per the contract, both ranges are valid for `n` bytes.
    unsafe {
        core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack))
    };
    dst
}

/// # Safety
/// C `memmove` contract.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize + n) {
        // SAFETY: forward copy is correct when dst does not start inside src.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: backward copy with the direction flag, restored after.
    unsafe {
        core::arch::asm!(
            "std", "rep movsb", "cld",
            inout("rcx") n => _,
            inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack)
        )
    };
    dst
}

/// # Safety
/// C `memset` contract.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: per the contract, `dst` is valid for `n` bytes.
    unsafe {
        core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack))
    };
    dst
}

/// # Safety
/// C `memcmp` contract.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: per the contract, both are valid for `n` bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return x as i32 - y as i32;
        }
        i += 1;
    }
    0
}

/// `strlen`, exported as by Windows' ntdll. Volatile reads keep the
/// compiler from turning the loop back into a call to `strlen`.
///
/// # Safety
/// C `strlen` contract: `s` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: every byte up to the NUL is inside the string.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

/// `wcslen`, exported as by Windows' ntdll.
///
/// # Safety
/// `s` is a NUL-terminated UTF-16 string.
#[no_mangle]
pub unsafe extern "C" fn wcslen(s: *const u16) -> usize {
    let mut n = 0;
    // SAFETY: every unit up to the NUL is inside the string.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

// The personality routine `core`'s unwind tables name. Nothing unwinds
// through ntdll (`panic = abort`, no exception dispatch yet), so it is
// never called; if it were, it answers ExceptionContinueSearch (1). Defined
// in assembly so it is not exported (Windows' ntdll does not export it).
// `_fltused`, which code using floating point references, likewise.
core::arch::global_asm!(
    ".globl _fltused",
    ".section .rdata$fltused,\"dr\"",
    "_fltused:",
    ".long 0",
    ".text",
    ".globl __CxxFrameHandler3",
    "__CxxFrameHandler3:",
    "mov eax, 1",
    "ret",
);
