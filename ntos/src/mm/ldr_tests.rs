//! Boot tests of the kernel image loader (`MmLoadSystemImage`) on the
//! driver files winload handed over: ntrstest.sys and its deliberately
//! broken copies (built by xtask).

use super::ldr::*;
use super::map::system_ptes_in_use;
use super::pte::{walk, PTE_NX, PTE_VALID, PTE_WRITE};
use crate::ktest::{check, Test, TestResult};
use alloc::vec::Vec;
use nt::status::*;

/// The bytes of the driver file `name` from the loader block.
pub fn driver_file(name: &str) -> Option<&'static [u8]> {
    // SAFETY: the boot driver array and the files live in loader pages
    // (MemoryData, BootDriver) the kernel never frees.
    let files = unsafe { crate::rtl::loader_block().boot_driver_files() };
    files.iter().find_map(|f| {
        // SAFETY: as above.
        let path = unsafe { f.file_path.as_str() };
        let file = path.rsplit('\\').next().unwrap_or(path);
        // SAFETY: as above.
        file.eq_ignore_ascii_case(name)
            .then(|| unsafe { f.bytes() })
    })
}

fn pte(va: u64) -> Option<u64> {
    walk(va)[3].1.filter(|e| e & PTE_VALID != 0)
}

fn t_load_relocate_bind_protect_unload() -> TestResult {
    let file = driver_file("ntrstest.sys").ok_or("winload did not hand over ntrstest.sys")?;
    let ptes = system_ptes_in_use();
    let img = mm_load_system_image(file, "\\SystemRoot\\System32\\drivers\\ldrtest.sys")
        .map_err(|_| "MmLoadSystemImage failed")?;
    let entry = loaded_modules()
        .into_iter()
        .find(|e| e.dll_base == img.base)
        .ok_or("the image is not in PsLoadedModuleList")?;
    check(
        entry.base_dll_name == "ldrtest.sys" && entry.size_of_image == img.size_of_image,
        "wrong loaded-module entry",
    )?;
    check(
        mm_load_system_image(file, "\\SystemRoot\\x\\ldrtest.sys")
            == Err(STATUS_IMAGE_ALREADY_LOADED),
        "a second load of the same name was not STATUS_IMAGE_ALREADY_LOADED",
    )?;
    let pe = pe::PeFile::parse(file).map_err(|_| "ntrstest.sys does not parse")?;
    // The preferred base is not where it went: relocation was real.
    check(pe.image_base != img.base, "loaded at its preferred base")?;
    // Every IAT slot holds the address of the ntoskrnl export it names.
    // SAFETY: the headers and .rdata pages stay mapped until the unload
    // below; only readable pages are read.
    let image =
        unsafe { core::slice::from_raw_parts(img.base as *const u8, img.size_of_image as usize) };
    let dir = pe::mapped_directory(image, pe::IMAGE_DIRECTORY_ENTRY_IMPORT)
        .map_err(|_| "no import directory in the mapped image")?;
    let imports = pe::imports(image, dir).map_err(|_| "imports unreadable")?;
    check(!imports.is_empty(), "no imports")?;
    for i in &imports {
        let want = mm_get_system_routine_address(i.name.ok_or("import by ordinal")?)
            .ok_or("an import ntoskrnl does not export was bound")?;
        let slot = image
            .get(i.iat_rva as usize..i.iat_rva as usize + 8)
            .ok_or("IAT outside the image")?;
        check(
            u64::from_le_bytes(slot.try_into().unwrap_or([0; 8])) == want,
            "an IAT slot does not hold its export's address",
        )?;
    }
    // W^X: headers read-only NX, code executable read-only, data writable
    // NX, the discardable .reloc gone.
    let h = pte(img.base).ok_or("headers not mapped")?;
    check(
        h & PTE_WRITE == 0 && h & PTE_NX != 0,
        "headers not read-only NX",
    )?;
    let mut seen = 0;
    for s in &pe.sections {
        let va = img.base + s.virtual_address as u64;
        let e = pte(va);
        match s.name() {
            ".text" => {
                let e = e.ok_or(".text not mapped")?;
                check(e & PTE_WRITE == 0 && e & PTE_NX == 0, ".text not RX")?;
                check(
                    img.entry_point >= va && img.entry_point < va + s.virtual_size as u64,
                    "entry point outside .text",
                )?;
            }
            ".rdata" => {
                let e = e.ok_or(".rdata not mapped")?;
                check(e & PTE_WRITE == 0 && e & PTE_NX != 0, ".rdata not R")?;
            }
            ".data" => {
                let e = e.ok_or(".data not mapped")?;
                check(e & PTE_WRITE != 0 && e & PTE_NX != 0, ".data not RW NX")?;
            }
            ".reloc" => check(e.is_none(), ".reloc (discardable) still mapped")?,
            _ => continue,
        }
        seen += 1;
    }
    check(seen >= 4, "ntrstest.sys lacks .text/.rdata/.data/.reloc")?;
    check(entry.discarded_pages >= 1, "no page discarded")?;
    check(
        mm_unload_system_image(img.base).is_ok(),
        "MmUnloadSystemImage failed",
    )?;
    check(pte(img.base).is_none(), "headers still mapped after unload")?;
    check(
        !loaded_modules().iter().any(|e| e.dll_base == img.base),
        "still in PsLoadedModuleList after unload",
    )?;
    check(
        mm_unload_system_image(img.base) == Err(STATUS_NOT_FOUND),
        "a second unload did not fail",
    )?;
    check(system_ptes_in_use() == ptes, "system PTEs leaked")
}

fn t_bad_images_fail_cleanly() -> TestResult {
    let good = driver_file("ntrstest.sys").ok_or("winload did not hand over ntrstest.sys")?;
    let modules = loaded_modules().len();
    let name = "\\SystemRoot\\System32\\drivers\\ldrbad.sys";
    let bad_hdr = driver_file("ntrsbadhdr.sys").ok_or("no ntrsbadhdr.sys")?;
    check(
        mm_load_system_image(bad_hdr, name) == Err(STATUS_INVALID_IMAGE_FORMAT),
        "a bad PE signature was not STATUS_INVALID_IMAGE_FORMAT",
    )?;
    let no_imp = driver_file("ntrsnoimp.sys").ok_or("no ntrsnoimp.sys")?;
    check(
        mm_load_system_image(no_imp, name) == Err(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND),
        "a missing import was not STATUS_DRIVER_ENTRYPOINT_NOT_FOUND",
    )?;
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve(good.len()).map_err(|_| "no memory")?;
    v.extend_from_slice(good);
    // (After the copy: it is a big-pool block in system PTEs itself.)
    let ptes = system_ptes_in_use();
    // Another module than ntoskrnl.exe.
    let pos = v
        .windows(13)
        .position(|w| w == b"ntoskrnl.exe\0")
        .ok_or("no ntoskrnl.exe import name")?;
    v[pos + 7] = b'X';
    check(
        mm_load_system_image(&v, name) == Err(STATUS_DLL_NOT_FOUND),
        "an import from another module was not STATUS_DLL_NOT_FOUND",
    )?;
    v[pos + 7] = b'l';
    // Truncated: the headers promise sections the file does not have.
    check(
        mm_load_system_image(&v[..0x400], name) == Err(STATUS_INVALID_IMAGE_FORMAT),
        "a truncated image was not STATUS_INVALID_IMAGE_FORMAT",
    )?;
    check(
        mm_load_system_image(&v[..1], name) == Err(STATUS_INVALID_IMAGE_NOT_MZ),
        "a one-byte file was not STATUS_INVALID_IMAGE_NOT_MZ",
    )?;
    // A bad relocation type in the first relocation block.
    let pe = pe::PeFile::parse(&v).map_err(|_| "copy does not parse")?;
    let reloc = pe
        .sections
        .iter()
        .find(|s| s.name() == ".reloc")
        .ok_or("no .reloc")?;
    let first_entry = reloc.pointer_to_raw_data as usize + 8;
    let saved = [v[first_entry], v[first_entry + 1]];
    v[first_entry + 1] = (v[first_entry + 1] & 0x0F) | 0x70;
    check(
        mm_load_system_image(&v, name) == Err(STATUS_INVALID_IMAGE_FORMAT),
        "a bad relocation type was not STATUS_INVALID_IMAGE_FORMAT",
    )?;
    v[first_entry] = saved[0];
    v[first_entry + 1] = saved[1];
    // Byte mutations across the headers: any status, never a crash, and
    // whatever loads unloads.
    for i in 0..0x200usize {
        for x in [0xFFu8, 0x00, 0x80] {
            let old = v[i];
            v[i] = x;
            if let Ok(img) = mm_load_system_image(&v, name) {
                mm_unload_system_image(img.base).map_err(|_| "unload of a mutant failed")?;
            }
            v[i] = old;
        }
    }
    check(
        system_ptes_in_use() == ptes,
        "failed loads leaked system PTEs",
    )?;
    check(
        loaded_modules().len() == modules,
        "a failed load stayed in PsLoadedModuleList",
    )
}

fn t_kernel_is_first_module() -> TestResult {
    let list = loaded_modules();
    let k = list.first().ok_or("empty PsLoadedModuleList")?;
    check(
        k.base_dll_name.eq_ignore_ascii_case("ntoskrnl.exe")
            && k.dll_base == nt::arc::KERNEL_IMAGE_BASE,
        "ntoskrnl.exe is not the first loaded module",
    )?;
    let f = mm_get_system_routine_address(b"KeBugCheckEx").ok_or("no KeBugCheckEx export")?;
    check(
        f == crate::ke::bugcheck::KeBugCheckEx as *const () as u64,
        "MmGetSystemRoutineAddress(KeBugCheckEx) is not KeBugCheckEx",
    )?;
    check(
        mm_get_system_routine_address(b"NoSuchRoutine").is_none(),
        "a missing routine was found",
    )
}

/// Boot tests of the image loader.
pub const TESTS: &[Test] = &[
    ("mm.ldr.kernel_is_first_module", t_kernel_is_first_module),
    (
        "mm.ldr.load_relocate_bind_protect_unload",
        t_load_relocate_bind_protect_unload,
    ),
    ("mm.ldr.bad_images_fail_cleanly", t_bad_images_fail_cleanly),
];
