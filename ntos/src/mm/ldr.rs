//! The kernel's image loader (*Windows Internals*, Part 1, ch. 6, "Driver
//! loading", and ch. 5 on system space): `MmLoadSystemImage` maps a driver
//! image into system PTEs, copies its headers and sections, applies its
//! base relocations, binds its imports against ntoskrnl's own export
//! directory, protects its pages W^X, frees its discardable sections and
//! links it into the loaded-module list (`PsLoadedModuleList`);
//! `MmUnloadSystemImage` undoes it. The PE work is the host-tested `pe`
//! crate; this file is the memory-manager glue.
//!
//! ntrs differences: the image comes as bytes (the caller read the file;
//! see io/load.rs for where the bytes come from before the kernel has a
//! file system), it is not backed by a section object or prototype PTEs
//! (its pages are private nonpaged memory), and imports bind only against
//! ntoskrnl.exe (another module is `STATUS_DLL_NOT_FOUND`; Windows would
//! load that DLL from System32\drivers first).

use super::map;
use super::pte::{PTE_GLOBAL, PTE_NX};
use crate::dbg_println;
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use alloc::string::String;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use pe::{PageProtection, PAGE_SIZE};

/// `KLDR_DATA_TABLE_ENTRY`: one image in the loaded-module list, with the
/// fields ntrs has (no section object, no `InInitializationOrderLinks`).
#[derive(Clone, Debug)]
pub struct KldrDataTableEntry {
    pub dll_base: u64,
    /// `EntryPoint`: 0 when the image has none.
    pub entry_point: u64,
    pub size_of_image: u32,
    /// `FullDllName`, e.g. `\SystemRoot\System32\drivers\null.sys`.
    pub full_dll_name: String,
    /// `BaseDllName`, e.g. `null.sys`.
    pub base_dll_name: String,
    /// Pages given back after loading (discardable sections).
    pub discarded_pages: u32,
}

/// What `mm_load_system_image` returns (`ImageHandle`/`ImageBaseAddress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    pub base: u64,
    pub entry_point: u64,
    pub size_of_image: u32,
}

/// `PsLoadedModuleList` with `PsLoadedModuleSpinLock`: the kernel first
/// (from the loader block), then every loaded driver in load order. NT
/// also takes `PsLoadedModuleResource` for long walks; ntrs's walks copy
/// the entries out under the spin lock instead.
static PS_LOADED_MODULE_LIST: SpinLocked<Option<Vec<KldrDataTableEntry>>, DISPATCH_LEVEL> =
    SpinLocked::new(None);

/// The loader block's modules (ntoskrnl.exe) as list entries.
fn initial_list() -> Vec<KldrDataTableEntry> {
    // SAFETY: the module array lives in loader MemoryData pages that stay mapped.
    let modules = unsafe { crate::rtl::loader_block().modules() };
    modules
        .iter()
        .map(|m| KldrDataTableEntry {
            dll_base: m.dll_base,
            entry_point: m.entry_point,
            size_of_image: m.size_of_image,
            full_dll_name: alloc::format!("\\SystemRoot\\system32\\{}", m.name()),
            base_dll_name: String::from(m.name()),
            discarded_pages: 0,
        })
        .collect()
}

fn with_list<R>(f: impl FnOnce(&mut Vec<KldrDataTableEntry>) -> R) -> R {
    // The kernel's entry is built before the lock is taken.
    let fresh = PS_LOADED_MODULE_LIST
        .with(|l| l.is_none())
        .then(initial_list);
    PS_LOADED_MODULE_LIST.with(|l| {
        if l.is_none() {
            *l = fresh.or_else(|| Some(Vec::new()));
        }
        f(l.as_mut().expect("initialized above"))
    })
}

/// A copy of the loaded-module list (`lm`, `ZwQuerySystemInformation`'s
/// `SystemModuleInformation` later).
pub fn loaded_modules() -> Vec<KldrDataTableEntry> {
    with_list(|l| l.clone())
}

/// The mapped ntoskrnl image: (base, bytes).
fn kernel_image() -> Result<(u64, &'static [u8]), NtStatus> {
    // SAFETY: the module array lives in loader MemoryData pages that stay mapped.
    let modules = unsafe { crate::rtl::loader_block().modules() };
    let k = modules.first().ok_or(STATUS_DLL_NOT_FOUND)?;
    // SAFETY: winload maps every page of ntoskrnl.exe (SizeOfImage bytes
    // from dll_base), at least readable, for the life of the system, and
    // nothing unmaps or writes its read-only pages, which is all this reads.
    let image =
        unsafe { core::slice::from_raw_parts(k.dll_base as *const u8, k.size_of_image as usize) };
    Ok((k.dll_base, image))
}

/// Named exports as (RVA, name), sorted by RVA.
pub type ExportSymbols = Vec<(u32, &'static [u8])>;

/// ntoskrnl's base and its named exports that lead to code: the symbols
/// kd knows.
pub fn kernel_symbols() -> Option<(u64, ExportSymbols)> {
    let (base, image) = kernel_image().ok()?;
    let dir = pe::mapped_directory(image, pe::IMAGE_DIRECTORY_ENTRY_EXPORT).ok()?;
    let mut v: ExportSymbols = pe::exports(image, dir)
        .ok()?
        .into_iter()
        .filter(|e| e.forwarder.is_none() && e.rva != 0)
        .flat_map(|e| e.names.into_iter().map(move |n| (e.rva, n)))
        .collect();
    v.sort_unstable();
    Some((base, v))
}

/// `MmGetSystemRoutineAddress`: the address of ntoskrnl's export `name`.
pub fn mm_get_system_routine_address(name: &[u8]) -> Option<u64> {
    let (base, image) = kernel_image().ok()?;
    let dir = pe::mapped_directory(image, pe::IMAGE_DIRECTORY_ENTRY_EXPORT).ok()?;
    let exports = pe::exports(image, dir).ok()?;
    let import = pe::Import {
        dll: b"ntoskrnl.exe",
        name: Some(name),
        ordinal: 0,
        iat_rva: 0,
    };
    pe::resolve_import(&exports, dir, &import)
        .ok()
        .map(|rva| base + rva as u64)
}

/// `MmGetSystemRoutineAddress`, exported for drivers.
///
/// # Safety
/// `name` is null or points to a valid `UNICODE_STRING`.
#[no_mangle]
pub unsafe extern "system" fn MmGetSystemRoutineAddress(
    name: *const crate::rtl::string::UnicodeString,
) -> *mut u8 {
    if name.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller passes a valid UNICODE_STRING.
    let s = unsafe { name.read_unaligned() };
    let n = (s.length / 2) as usize;
    if s.buffer.is_null() || n > 256 {
        return core::ptr::null_mut();
    }
    let mut ascii = [0u8; 256];
    for (i, slot) in ascii.iter_mut().enumerate().take(n) {
        // SAFETY: the string's buffer holds `length` bytes.
        let c = unsafe { s.buffer.add(i).read_unaligned() };
        if c == 0 || c > 0x7F {
            return core::ptr::null_mut();
        }
        *slot = c as u8;
    }
    mm_get_system_routine_address(&ascii[..n]).unwrap_or(0) as *mut u8
}

/// Binds every import of the mapped image against ntoskrnl's exports.
fn bind_to_kernel(image: &mut [u8], dir: pe::DataDirectory) -> Result<(), NtStatus> {
    let (kbase, kimage) = kernel_image()?;
    let kdir = pe::mapped_directory(kimage, pe::IMAGE_DIRECTORY_ENTRY_EXPORT)?;
    let exports = pe::exports(kimage, kdir)?;
    pe::bind_imports(image, dir, |i| {
        if !i.dll.eq_ignore_ascii_case(b"ntoskrnl.exe") {
            return Err(STATUS_DLL_NOT_FOUND);
        }
        pe::resolve_import(&exports, kdir, i).map(|rva| kbase + rva as u64)
    })
}

fn base_name(full: &str) -> &str {
    full.rsplit(['\\', '/']).next().unwrap_or(full)
}

/// Maps, relocates, binds and protects `file` at `va` (its system PTEs
/// already hold `pages` fresh pages); returns the entry point and the
/// number of discarded pages.
fn build_image(file: &pe::PeFile<'_>, va: u64, pages: u64) -> Result<(u64, u32), NtStatus> {
    let protections = file.kernel_page_protections()?;
    {
        // SAFETY: `va` is `pages` freshly mapped read/write pages this
        // routine alone knows about; the slice ends before they are
        // re-protected below.
        let image =
            unsafe { core::slice::from_raw_parts_mut(va as *mut u8, (pages * 4096) as usize) };
        file.load(image, va)?;
        let import_dir = pe::mapped_directory(image, pe::IMAGE_DIRECTORY_ENTRY_IMPORT)?;
        bind_to_kernel(image, import_dir)?;
    }
    let entry = match file.address_of_entry_point {
        0 => 0,
        rva if rva < file.size_of_image
            && protections.get((rva / PAGE_SIZE) as usize)
                == Some(&PageProtection::ReadExecute) =>
        {
            va + rva as u64
        }
        // An entry point outside the image's code.
        _ => return Err(STATUS_INVALID_IMAGE_FORMAT),
    };
    // W^X: runs of pages with one protection at a time.
    let mut discarded = 0;
    let mut i = 0usize;
    while i < protections.len() {
        let p = protections[i];
        let mut j = i + 1;
        while j < protections.len() && protections[j] == p {
            j += 1;
        }
        let run_va = va + i as u64 * 4096;
        let run = (j - i) as u64;
        match p {
            PageProtection::ReadOnly => map::protect_system_pages(run_va, run, PTE_NX | PTE_GLOBAL),
            PageProtection::ReadWrite => {} // already read/write, no-execute
            PageProtection::ReadExecute => map::protect_system_pages(run_va, run, PTE_GLOBAL),
            PageProtection::Discard => {
                map::mm_free_system_page_frames(run_va, run);
                discarded += run as u32;
            }
        }
        i = j;
    }
    Ok((entry, discarded))
}

/// `MmLoadSystemImage`: loads the driver image `file` (the bytes of the
/// file `full_name`, e.g. `\SystemRoot\System32\drivers\null.sys`) into
/// system space. A malformed image is `STATUS_INVALID_IMAGE_NOT_MZ`,
/// `STATUS_INVALID_IMAGE_FORMAT` (bad headers, truncated sections, bad
/// relocations, an entry point outside its code), `STATUS_INVALID_IMAGE_PROTECT`
/// (writable code) or `STATUS_IMAGE_MACHINE_TYPE_MISMATCH`; an import ntoskrnl
/// does not export is `STATUS_DRIVER_ENTRYPOINT_NOT_FOUND` (by name) or
/// `STATUS_DRIVER_ORDINAL_NOT_FOUND`; an import from another module is
/// `STATUS_DLL_NOT_FOUND`; an image of that name already loaded is
/// `STATUS_IMAGE_ALREADY_LOADED`. Nothing stays mapped on failure.
pub fn mm_load_system_image(file: &[u8], full_name: &str) -> Result<LoadedImage, NtStatus> {
    let base_dll_name = base_name(full_name);
    let already = |l: &Vec<KldrDataTableEntry>| {
        l.iter()
            .any(|e| e.base_dll_name.eq_ignore_ascii_case(base_dll_name))
    };
    if with_list(|l| already(l)) {
        return Err(STATUS_IMAGE_ALREADY_LOADED);
    }
    let pefile = pe::PeFile::parse(file)?;
    if pefile.characteristics & pe::IMAGE_FILE_RELOCS_STRIPPED != 0 {
        // It could only run at its preferred base, which system PTEs never give.
        return Err(STATUS_INVALID_IMAGE_FORMAT);
    }
    let pages = pefile.size_of_image.div_ceil(PAGE_SIZE) as u64;
    let va = map::mm_allocate_system_pages(pages)?;
    let (entry_point, discarded) = match build_image(&pefile, va, pages) {
        Ok(r) => r,
        Err(e) => {
            map::mm_free_system_pages(va, pages);
            return Err(e);
        }
    };
    let entry = KldrDataTableEntry {
        dll_base: va,
        entry_point,
        size_of_image: pefile.size_of_image,
        full_dll_name: String::from(full_name),
        base_dll_name: String::from(base_dll_name),
        discarded_pages: discarded,
    };
    let inserted = with_list(|l| {
        if already(l) {
            return Err(STATUS_IMAGE_ALREADY_LOADED);
        }
        l.try_reserve(1)
            .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        l.push(entry);
        Ok(())
    });
    if let Err(e) = inserted {
        map::mm_free_system_pages(va, pages);
        return Err(e);
    }
    Ok(LoadedImage {
        base: va,
        entry_point,
        size_of_image: pefile.size_of_image,
    })
}

/// `MmUnloadSystemImage`: unlinks the image loaded at `base` from the
/// loaded-module list and frees its pages and system PTEs.
/// `STATUS_NOT_FOUND` if no driver image is loaded there (the kernel
/// itself cannot be unloaded).
pub fn mm_unload_system_image(base: u64) -> Result<(), NtStatus> {
    let kernel = kernel_image().map(|(b, _)| b).unwrap_or(0);
    if base == kernel {
        return Err(STATUS_NOT_FOUND);
    }
    let e = with_list(|l| {
        let i = l.iter().position(|e| e.dll_base == base)?;
        Some(l.remove(i))
    })
    .ok_or(STATUS_NOT_FOUND)?;
    let pages = e.size_of_image.div_ceil(PAGE_SIZE) as u64;
    map::mm_free_system_pages(e.dll_base, pages);
    Ok(())
}

/// The loaded-module entry containing `va` (`!lmi`, bug-check reports).
pub fn module_containing(va: u64) -> Option<KldrDataTableEntry> {
    with_list(|l| {
        l.iter()
            .find(|e| va >= e.dll_base && va < e.dll_base + e.size_of_image as u64)
            .cloned()
    })
}

/// kd `lm`: every module of the loaded-module list (WinDbg's columns:
/// start, end, module name, then the image file name). Prints under the
/// list's lock without allocating (the other processors are frozen).
pub fn kd_lm() {
    let Some(guard) = PS_LOADED_MODULE_LIST.try_lock(1000) else {
        dbg_println!("the loaded-module list is locked by a frozen processor");
        return;
    };
    dbg_println!("start             end                 module name");
    if let Some(list) = guard.as_ref() {
        for m in list {
            print_lm_line(
                m.dll_base,
                m.size_of_image,
                &m.base_dll_name,
                &m.full_dll_name,
                "",
            );
        }
        return;
    }
    drop(guard);
    // Nothing loaded yet: the list is still the loader block's.
    // SAFETY: the module array lives in loader MemoryData pages that stay mapped.
    for m in unsafe { crate::rtl::loader_block().modules() } {
        print_lm_line(
            m.dll_base,
            m.size_of_image,
            m.name(),
            "\\SystemRoot\\system32\\",
            m.name(),
        );
    }
}

fn print_lm_line(base: u64, size: u32, name: &str, full: &str, full_tail: &str) {
    let short = if name.eq_ignore_ascii_case("ntoskrnl.exe") {
        "nt"
    } else {
        name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name)
    };
    dbg_println!(
        "{} {}   {:<10} {}{}",
        crate::kd::Q(base),
        crate::kd::Q(base + size as u64),
        short,
        full,
        full_tail
    );
}
