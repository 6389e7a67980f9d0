//! The OS loader (winload.efi): reads ntoskrnl.exe from the system volume,
//! maps it in the upper half, builds the page tables and the loader parameter
//! block, exits boot services and jumps to `KiSystemStartup`
//! (*Windows Internals*, Part 2, ch. 12, "The Windows OS Loader").
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::vec::Vec;
use bootlib::fs::find_system_volume;
use core::ptr::NonNull;
use nt::arc::*;
use uefi::boot::{self as uboot, AllocateType, MemoryType as EfiType};
use uefi::mem::memory_map::MemoryMap;
use uefi::prelude::*;
use uefi::println;
use uefi::proto::console::gop::{GraphicsOutput, PixelFormat};
use uefi::proto::loaded_image::LoadedImage;

const PAGE: u64 = 4096;
const PTE_P: u64 = 1;
const PTE_W: u64 = 2;
const PTE_PS: u64 = 1 << 7;
const PTE_G: u64 = 1 << 8;
const PTE_NX: u64 = 1 << 63;

/// UEFI memory type for pages the loader allocates on behalf of NT type `t`.
fn efi_type(t: MemoryType) -> EfiType {
    EfiType::custom(0x8000_0000 | t as u32)
}

/// Zeroed pages of NT memory type `t`, or `None` when the firmware has none
/// (sizes can come from disk data: the image's SizeOfImage, hive sizes).
fn alloc_pages(t: MemoryType, pages: usize) -> Option<u64> {
    let p: NonNull<u8> = uboot::allocate_pages(AllocateType::AnyPages, efi_type(t), pages).ok()?;
    let a = p.as_ptr() as u64;
    // SAFETY: freshly allocated, identity-mapped pages of the requested size.
    unsafe { core::ptr::write_bytes(a as *mut u8, 0, pages * PAGE as usize) };
    Some(a)
}

/// Reports an allocation failure the way the loader reports load errors.
fn out_of_memory(what: &str, pages: usize) -> Status {
    println!("winload: cannot allocate {pages} pages for {what}");
    Status::OUT_OF_RESOURCES
}

/// Page-table builder over pages the loader owns (identity mapped now).
struct Tables {
    pml4: u64,
}

impl Tables {
    fn entry(table: u64, index: u64) -> *mut u64 {
        (table + index * 8) as *mut u64
    }

    /// Returns the next-level table under `table[index]`, creating it.
    fn next(table: u64, index: u64) -> u64 {
        let e = Self::entry(table, index);
        // SAFETY: `table` is a page-table page the loader allocated and identity maps.
        unsafe {
            if *e & PTE_P == 0 {
                // A page-table page: the firmware running out of single
                // pages here leaves nothing to boot with.
                let Some(t) = alloc_pages(MemoryType::MemoryData, 1) else {
                    println!("winload: out of memory for page tables");
                    loop {
                        core::hint::spin_loop();
                    }
                };
                *e = t | PTE_P | PTE_W;
            }
            *e & 0x000F_FFFF_FFFF_F000
        }
    }

    fn map_2m(&mut self, va: u64, pa: u64, flags: u64) {
        let pdpt = Self::next(self.pml4, (va >> 39) & 511);
        let pd = Self::next(pdpt, (va >> 30) & 511);
        // SAFETY: `pd` is a page-table page owned by the loader.
        unsafe { *Self::entry(pd, (va >> 21) & 511) = pa | flags | PTE_PS | PTE_P };
    }

    fn map_4k(&mut self, va: u64, pa: u64, flags: u64) {
        let pdpt = Self::next(self.pml4, (va >> 39) & 511);
        let pd = Self::next(pdpt, (va >> 30) & 511);
        let pt = Self::next(pd, (va >> 21) & 511);
        // SAFETY: `pt` is a page-table page owned by the loader.
        unsafe { *Self::entry(pt, (va >> 12) & 511) = pa | flags | PTE_P };
    }
}

fn translate(t: EfiType) -> MemoryType {
    match t {
        EfiType::CONVENTIONAL | EfiType::BOOT_SERVICES_CODE | EfiType::BOOT_SERVICES_DATA => {
            MemoryType::Free
        }
        EfiType::LOADER_CODE => MemoryType::LoadedProgram,
        EfiType::LOADER_DATA => MemoryType::MemoryData,
        EfiType::UNUSABLE => MemoryType::Bad,
        EfiType::ACPI_RECLAIM | EfiType::ACPI_NON_VOLATILE => MemoryType::FirmwarePermanent,
        EfiType::RUNTIME_SERVICES_CODE | EfiType::RUNTIME_SERVICES_DATA => {
            MemoryType::FirmwarePermanent
        }
        t if t.0 & 0x8000_0000 != 0 && (t.0 & 0xFF) <= MemoryType::ErrorLogMemory as u32 => {
            // SAFETY: the low byte is a valid `MemoryType` discriminant (checked above).
            unsafe { core::mem::transmute::<u32, MemoryType>(t.0 & 0xFF) }
        }
        _ => MemoryType::SpecialMemory,
    }
}

fn leak_str(s: &str) -> LoaderString {
    let v: &'static mut [u8] = alloc::boxed::Box::leak(Vec::from(s.as_bytes()).into_boxed_slice());
    LoaderString {
        ptr: v.as_ptr() as u64 + PHYSICAL_MAP_BASE,
        len: v.len() as u64,
    }
}

/// A hive as the kernel gets it (`HvLoadHive` in the loader): a primary
/// whose sequence numbers agree is handed over as it is; one a flush left
/// half-written (the machine stopped between the log and the primary) is
/// repaired from its `.LOG1` / `.LOG2` (`regf::log::load_with_logs`), and
/// the repaired hive is handed over. The kernel then sees the primary on the
/// disk still differs and rewrites it whole on its first flush. A hive the
/// logs cannot repair is handed over as read (the kernel refuses it).
fn recover_hive(
    vol: &mut alloc::boxed::Box<dyn bootlib::fs::BootFileSystem>,
    name: &str,
    primary: Vec<u8>,
) -> Vec<u8> {
    let clean = primary.len() >= 12 && primary[4..8] == primary[8..12];
    if clean {
        return primary;
    }
    let mut log = |ext: &str| {
        vol.read_file(&alloc::format!("\\Windows\\System32\\config\\{name}.{ext}"))
            .unwrap_or_default()
    };
    let (log1, log2) = (log("LOG1"), log("LOG2"));
    match regf::log::load_with_logs(&primary, &log1, &log2) {
        Ok((hive, recovery)) => {
            println!("winload: {name} hive recovered from its logs ({recovery:?})");
            hive.to_bytes()
        }
        Err(e) => {
            println!("winload: {name} hive needs recovery and its logs do not repair it ({e})");
            primary
        }
    }
}

/// (service name, image path under the system root, Start) of every driver
/// service (Type 1 kernel driver or 2 file system driver) that is not
/// disabled (Start 0..=3) in the control set `Select\Current` names, in key
/// order (`OslGetBootDrivers` takes Start = 0 only; ntrs's winload also
/// brings the others' files, which the kernel cannot read yet).
fn service_drivers(hive_bytes: &[u8]) -> Vec<(alloc::string::String, alloc::string::String, u32)> {
    let mut out = Vec::new();
    let Ok(h) = regf::Hive::from_bytes(hive_bytes) else {
        return out;
    };
    let dword = |v: &regf::Value| {
        v.data
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let current = h
        .open_key("Select")
        .and_then(|k| h.query_value(k, "Current"))
        .ok()
        .and_then(|v| dword(&v))
        .unwrap_or(1);
    let Ok(services) = h.open_key(&alloc::format!("ControlSet{current:03}\\Services")) else {
        return out;
    };
    for s in h.enum_subkeys(services).unwrap_or_default() {
        let start = h.query_value(s, "Start").ok().and_then(|v| dword(&v));
        let ty = h.query_value(s, "Type").ok().and_then(|v| dword(&v));
        let (Some(start @ 0..=3), Some(1 | 2)) = (start, ty) else {
            continue;
        };
        let name = h.key_name(s).unwrap_or_default();
        let image = h
            .query_value(s, "ImagePath")
            .map(|v| regf::from_utf16z(&v.data))
            .unwrap_or_else(|_| alloc::format!("System32\\drivers\\{name}.sys"));
        // `\SystemRoot\System32\...` and `System32\...` both name a file
        // under the system root.
        let rel = alloc::string::String::from(image.strip_prefix('\\').unwrap_or(&image));
        let rel = match rel.get(..11) {
            Some(p) if p.eq_ignore_ascii_case("SystemRoot\\") => {
                alloc::string::String::from(&rel[11..])
            }
            _ => rel,
        };
        out.push((name, rel, start));
    }
    out
}

/// The boot manager's hand-off: `handoff_tsc=<n>;osloadoptions=<BCD options>`.
fn bootmgr_options() -> (Option<u64>, alloc::string::String) {
    let Ok(li) = uboot::open_protocol_exclusive::<LoadedImage>(uboot::image_handle()) else {
        return (None, alloc::string::String::new());
    };
    let Some(s) = li
        .load_options_as_bytes()
        .and_then(|b| core::str::from_utf8(b).ok())
    else {
        return (None, alloc::string::String::new());
    };
    let mut tsc = None;
    let mut opts = alloc::string::String::new();
    for part in s.trim_end_matches('\0').split(';') {
        if let Some(v) = part.strip_prefix("handoff_tsc=") {
            tsc = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("osloadoptions=") {
            opts = v.into();
        }
    }
    (tsc, opts)
}

/// User-mode images handed to the kernel with the boot drivers (paths
/// under the system root).
const BOOT_USER_IMAGES: &[&str] = &[
    "System32\\ntrsuser.exe",
    "System32\\ntrsexc.exe",
    "System32\\ntdll.dll",
    "System32\\ntrsseh.exe",
];

#[entry]
fn main() -> Status {
    let entry_tsc = bootlib::rdtsc();
    uefi::helpers::init().unwrap();
    let (handoff, bcd_options) = bootmgr_options();
    let handoff = handoff.unwrap_or(entry_tsc);
    // Calibrate the TSC against the firmware's stall service.
    let t0 = bootlib::rdtsc();
    uboot::stall(core::time::Duration::from_millis(10));
    let tsc_frequency = (bootlib::rdtsc() - t0) * 100;

    // BCD's load options, then the one-time options from fw_cfg.
    let fw = bootlib::fwcfg::load_options();
    let load_options: alloc::string::String = alloc::format!("{bcd_options} {fw}").trim().into();
    println!("winload: loading \\Windows\\System32\\ntoskrnl.exe (options: '{load_options}')");
    let mut vol = match find_system_volume() {
        Ok(v) => v,
        Err(s) => {
            println!("winload: no system volume ({s})");
            return Status::NOT_FOUND;
        }
    };
    let file = match vol.read_file("\\Windows\\System32\\ntoskrnl.exe") {
        Ok(f) => f,
        Err(s) => {
            println!("winload: cannot read ntoskrnl.exe ({s})");
            return Status::NOT_FOUND;
        }
    };
    // The SYSTEM hive (`OslLoadSystemHive`): handed to the kernel as the
    // primary file holds it, or as its logs repair it (`HvLoadHive`).
    let system_hive = match vol.read_file("\\Windows\\System32\\config\\SYSTEM") {
        Ok(h) => recover_hive(&mut vol, "SYSTEM", h),
        Err(s) => {
            println!("winload: no SYSTEM hive ({s}); booting without it");
            alloc::vec::Vec::new()
        }
    };
    let software_hive = vol
        .read_file("\\Windows\\System32\\config\\SOFTWARE")
        .map(|h| recover_hive(&mut vol, "SOFTWARE", h))
        .unwrap_or_default();
    // Boot drivers (`OslLoadDrivers`): Start = 0 under the current control
    // set's Services, and (ntrs) the files of the other driver services,
    // handed to the kernel as bytes in the boot driver list; the kernel's
    // MmLoadSystemImage maps them (docs/io.md, "Driver loading").
    let mut driver_files: Vec<BootDriverFile> = Vec::new();
    for (name, image, start) in service_drivers(&system_hive) {
        let d = match vol.read_file(&alloc::format!("\\Windows\\{image}")) {
            Ok(d) => d,
            Err(_) => {
                if start == 0 {
                    println!(
                        "winload: boot driver {name}: \\Windows\\{image} not present; skipped"
                    );
                }
                continue;
            }
        };
        let pages = d.len().div_ceil(PAGE as usize).max(1);
        let Some(pa) = alloc_pages(MemoryType::BootDriver, pages) else {
            return out_of_memory("a driver file", pages);
        };
        // SAFETY: `pa` is `pages` freshly allocated, identity-mapped pages.
        unsafe { core::ptr::copy_nonoverlapping(d.as_ptr(), pa as *mut u8, d.len()) };
        println!(
            "winload: driver {name} ({image}, Start={start}): {} bytes",
            d.len()
        );
        driver_files.push(BootDriverFile {
            service_name: leak_str(&name),
            file_path: leak_str(&image),
            data: PHYSICAL_MAP_BASE + pa,
            length: d.len() as u64,
        });
    }
    // ntrs (until the kernel reads files through ntfs.sys and maps image
    // sections): the user-mode test images come along in the same list,
    // with no service name; the kernel copies them into new processes.
    for image in BOOT_USER_IMAGES {
        let Ok(d) = vol.read_file(&alloc::format!("\\Windows\\{image}")) else {
            continue;
        };
        let pages = d.len().div_ceil(PAGE as usize).max(1);
        let Some(pa) = alloc_pages(MemoryType::BootDriver, pages) else {
            return out_of_memory("a user image", pages);
        };
        // SAFETY: `pa` is `pages` freshly allocated, identity-mapped pages.
        unsafe { core::ptr::copy_nonoverlapping(d.as_ptr(), pa as *mut u8, d.len()) };
        driver_files.push(BootDriverFile {
            service_name: leak_str(""),
            file_path: leak_str(image),
            data: PHYSICAL_MAP_BASE + pa,
            length: d.len() as u64,
        });
    }
    let driver_files: &'static mut [BootDriverFile] = driver_files.leak();
    drop(vol);
    let (registry_base, registry_length) = if system_hive.is_empty() {
        (0, 0)
    } else {
        let pages = system_hive.len().div_ceil(PAGE as usize);
        let Some(pa) = alloc_pages(MemoryType::RegistryData, pages) else {
            return out_of_memory("a registry hive", pages);
        };
        // SAFETY: `pa` is `pages` freshly allocated, identity-mapped pages.
        unsafe {
            core::ptr::copy_nonoverlapping(system_hive.as_ptr(), pa as *mut u8, system_hive.len())
        };
        (PHYSICAL_MAP_BASE + pa, system_hive.len() as u64)
    };
    let (software_hive_base, software_hive_length) = if software_hive.is_empty() {
        (0, 0)
    } else {
        let pages = software_hive.len().div_ceil(PAGE as usize);
        let Some(pa) = alloc_pages(MemoryType::RegistryData, pages) else {
            return out_of_memory("a registry hive", pages);
        };
        // SAFETY: `pa` is `pages` freshly allocated, identity-mapped pages.
        unsafe {
            core::ptr::copy_nonoverlapping(
                software_hive.as_ptr(),
                pa as *mut u8,
                software_hive.len(),
            )
        };
        (PHYSICAL_MAP_BASE + pa, software_hive.len() as u64)
    };
    let pe = match pe::PeFile::parse(&file) {
        Ok(p) => p,
        Err(s) => {
            println!("winload: ntoskrnl.exe is not a valid image ({s})");
            return Status::LOAD_ERROR;
        }
    };
    let image_pages = (pe.size_of_image as u64).div_ceil(PAGE) as usize;
    let Some(image_pa) = alloc_pages(MemoryType::SystemCode, image_pages) else {
        println!(
            "winload: ntoskrnl.exe's SizeOfImage {:#x} cannot be allocated",
            pe.size_of_image
        );
        return Status::LOAD_ERROR;
    };
    // SAFETY: `image_pa` is `image_pages` freshly allocated identity-mapped pages.
    let image = unsafe {
        core::slice::from_raw_parts_mut(image_pa as *mut u8, image_pages * PAGE as usize)
    };
    if let Err(s) = pe.load(image, KERNEL_IMAGE_BASE) {
        println!("winload: cannot relocate ntoskrnl.exe ({s})");
        return Status::LOAD_ERROR;
    }
    if let Err(s) = pe::bind_imports(
        image,
        pe.directory(pe::IMAGE_DIRECTORY_ENTRY_IMPORT),
        |_| Err(nt::status::STATUS_DLL_NOT_FOUND),
    ) {
        println!("winload: ntoskrnl.exe has unresolved imports ({s})");
        return Status::LOAD_ERROR;
    }

    let stack_pages = (KERNEL_STACK_SIZE / PAGE) as usize;
    let Some(kernel_stack) = alloc_pages(MemoryType::StartupKernelStack, stack_pages) else {
        return out_of_memory("the boot stack", stack_pages);
    };
    let mut ist = [0u64; 3];
    for slot in ist.iter_mut() {
        let Some(p) = alloc_pages(MemoryType::StartupPanicStack, stack_pages) else {
            return out_of_memory("the panic stacks", stack_pages);
        };
        *slot = p;
    }

    // ACPI RSDP.
    let acpi_rsdp = uefi::system::with_config_table(|t| {
        t.iter()
            .find(|e| e.guid == uefi::table::cfg::ConfigTableEntry::ACPI2_GUID)
            .or_else(|| {
                t.iter()
                    .find(|e| e.guid == uefi::table::cfg::ConfigTableEntry::ACPI_GUID)
            })
            .map(|e| e.address as u64)
            .unwrap_or(0)
    });

    // Framebuffer.
    let mut framebuffer = FramebufferInfo::default();
    if let Ok(h) = uboot::get_handle_for_protocol::<GraphicsOutput>() {
        if let Ok(mut gop) = uboot::open_protocol_exclusive::<GraphicsOutput>(h) {
            let mode = gop.current_mode_info();
            let (w, hgt) = mode.resolution();
            let mut fb = gop.frame_buffer();
            framebuffer = FramebufferInfo {
                base: fb.as_mut_ptr() as u64 + PHYSICAL_MAP_BASE,
                size: fb.size() as u64,
                width: w as u32,
                height: hgt as u32,
                pixels_per_scan_line: mode.stride() as u32,
                format: if mode.pixel_format() == PixelFormat::Rgb {
                    0
                } else {
                    1
                },
            };
        }
    }

    // Page tables. Highest physical address: all of RAM, and at least 4 GiB for MMIO.
    let Ok(map) = uboot::memory_map(EfiType::LOADER_DATA) else {
        println!("winload: the firmware returned no memory map");
        return Status::LOAD_ERROR;
    };
    let max_pa = map
        .entries()
        .map(|d| d.phys_start + d.page_count * PAGE)
        .max()
        .unwrap_or(0)
        .max(4 << 30)
        .next_multiple_of(2 << 20);
    let map_entries = map.entries().count();
    drop(map);
    let Some(pml4) = alloc_pages(MemoryType::MemoryData, 1) else {
        return out_of_memory("the PML4", 1);
    };
    let mut tables = Tables { pml4 };
    let mut pa = 0;
    while pa < max_pa {
        tables.map_2m(pa, pa, PTE_W); // identity, for the switch; the kernel drops it
        tables.map_2m(PHYSICAL_MAP_BASE + pa, pa, PTE_W | PTE_G | PTE_NX);
        pa += 2 << 20;
    }
    for page in 0..image_pages as u64 {
        let rva = page * PAGE;
        let sec = pe.sections.iter().find(|s| {
            rva >= s.virtual_address as u64
                && rva
                    < (s.virtual_address as u64 + s.virtual_size.max(1) as u64)
                        .next_multiple_of(PAGE)
        });
        let flags = match sec {
            Some(s) if s.characteristics & pe::IMAGE_SCN_MEM_EXECUTE != 0 => PTE_G,
            Some(s) if s.characteristics & pe::IMAGE_SCN_MEM_WRITE != 0 => PTE_G | PTE_W | PTE_NX,
            _ => PTE_G | PTE_NX,
        };
        tables.map_4k(KERNEL_IMAGE_BASE + rva, image_pa + rva, flags);
    }
    // SAFETY: the PML4 page is owned by the loader; slot 0x1ED points back at it (self-map).
    unsafe { *Tables::entry(pml4, SELF_MAP_PML4_INDEX as u64) = pml4 | PTE_P | PTE_W | PTE_NX };

    // Loader block and its arrays live in LOADER_DATA pool (MemoryData after hand-off).
    let mut descriptors: Vec<MemoryDescriptor> = Vec::with_capacity(map_entries + 64);
    let name = b"ntoskrnl.exe";
    let mut module = LoadedModule {
        dll_base: KERNEL_IMAGE_BASE,
        entry_point: KERNEL_IMAGE_BASE + pe.address_of_entry_point as u64,
        size_of_image: pe.size_of_image,
        name_length: name.len() as u32,
        base_dll_name: [0; MODULE_NAME_LEN],
        physical_base: image_pa,
    };
    module.base_dll_name[..name.len()].copy_from_slice(name);
    let modules: &'static mut [LoadedModule] = Vec::from([module]).leak();
    let block: &'static mut LoaderParameterBlock =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(LoaderParameterBlock {
            signature: LOADER_BLOCK_SIGNATURE,
            version: LOADER_BLOCK_VERSION,
            size: core::mem::size_of::<LoaderParameterBlock>() as u32,
            memory_descriptors: 0,
            memory_descriptor_count: 0,
            load_order: modules.as_ptr() as u64 + PHYSICAL_MAP_BASE,
            load_order_count: modules.len() as u64,
            kernel_stack: kernel_stack + KERNEL_STACK_SIZE + PHYSICAL_MAP_BASE,
            ist_stacks: ist.map(|s| s + PHYSICAL_MAP_BASE),
            load_options: leak_str(&load_options),
            arc_boot_device_name: leak_str("multi(0)disk(0)rdisk(0)partition(2)"),
            nt_boot_path_name: leak_str("\\Windows\\"),
            registry_base,
            registry_length,
            acpi_rsdp,
            framebuffer,
            pml4_physical: pml4,
            tsc_frequency,
            firmware_handoff_tsc: handoff,
            physical_map_size: max_pa,
            software_hive_base,
            software_hive_length,
            boot_drivers: if driver_files.is_empty() {
                0
            } else {
                driver_files.as_ptr() as u64 + PHYSICAL_MAP_BASE
            },
            boot_driver_count: driver_files.len() as u64,
        }));
    let entry = KERNEL_IMAGE_BASE + pe.address_of_entry_point as u64;
    drop(file);

    // SAFETY: nothing from boot services is used after this point.
    let map = unsafe { uboot::exit_boot_services(None) };
    for d in map.entries() {
        let t = translate(d.ty);
        if let Some(last) = descriptors.last_mut() {
            if last.memory_type == t && last.base_page + last.page_count == d.phys_start / PAGE {
                last.page_count += d.page_count;
                continue;
            }
        }
        if descriptors.len() < descriptors.capacity() {
            descriptors.push(MemoryDescriptor {
                memory_type: t,
                _pad: 0,
                base_page: d.phys_start / PAGE,
                page_count: d.page_count,
            });
        }
    }
    block.memory_descriptors = descriptors.as_ptr() as u64 + PHYSICAL_MAP_BASE;
    block.memory_descriptor_count = descriptors.len() as u64;
    core::mem::forget(descriptors);
    core::mem::forget(map);
    let block_va = block as *mut LoaderParameterBlock as u64 + PHYSICAL_MAP_BASE;
    let stack_top = block.kernel_stack;

    // SAFETY: the new tables identity-map all RAM (so this code keeps running),
    // map the kernel image, and the direct map holds the stack and loader block.
    // EFER.NXE must be on before CR3 holds NX entries; CR0.WP enforces read-only
    // kernel pages. KiSystemStartup never returns.
    unsafe {
        core::arch::asm!(
            "cli",
            "mov ecx, 0xC0000080",
            "rdmsr",
            "or eax, 0x800",
            "wrmsr",
            "mov rax, cr0",
            "or rax, 0x10000",
            "mov cr0, rax",
            "mov cr3, r8",
            "mov rsp, r9",
            "sub rsp, 0x28",
            "mov rcx, r10",
            "call r11",
            "2: hlt",
            "jmp 2b",
            in("r8") pml4,
            in("r9") stack_top,
            in("r10") block_va,
            in("r11") entry,
            options(noreturn)
        );
    }
}
