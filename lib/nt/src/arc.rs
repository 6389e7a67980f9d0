//! The loader parameter block: what winload hands to `KiSystemStartup`
//! (*Windows Internals*, Part 2, ch. 12, "The kernel", and arc.h's
//! `LOADER_PARAMETER_BLOCK`). ntrs keeps NT's field meanings but uses flat
//! arrays instead of `LIST_ENTRY` chains so the block can be built without a
//! shared heap. Every pointer in it is a kernel virtual address inside the
//! physical direct map (`PHYSICAL_MAP_BASE`), so the kernel can drop the
//! loader's identity mapping at any time.

/// "NTRSLDR1": identifies a loader block of this layout.
pub const LOADER_BLOCK_SIGNATURE: u64 = u64::from_le_bytes(*b"NTRSLDR1");
/// Bumped whenever `LoaderParameterBlock`'s layout changes.
pub const LOADER_BLOCK_VERSION: u32 = 3;

/// Where all physical memory is mapped 1:1 in kernel space (ntrs deviation:
/// NT has no direct map; see docs/mm.md).
pub const PHYSICAL_MAP_BASE: u64 = 0xFFFF_8000_0000_0000;
/// Preferred load address of ntoskrnl.exe; boot drivers follow it.
pub const KERNEL_IMAGE_BASE: u64 = 0xFFFF_F800_0040_0000;
/// PML4 slot of the recursive page-table self-map (0x1ED, as on NT x64
/// before Windows 10 1607 randomized it): PTEs live at 0xFFFFF680`00000000.
pub const SELF_MAP_PML4_INDEX: usize = 0x1ED;
/// Size of each kernel stack the loader allocates (boot stack and IST stacks).
pub const KERNEL_STACK_SIZE: u64 = 64 * 1024;

/// `TYPE_OF_MEMORY` from arc.h: what a range of physical memory holds at hand-off.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    ExceptionBlock = 0,
    SystemBlock = 1,
    Free = 2,
    Bad = 3,
    LoadedProgram = 4,
    FirmwareTemporary = 5,
    FirmwarePermanent = 6,
    OsloaderHeap = 7,
    OsloaderStack = 8,
    SystemCode = 9,
    HalCode = 10,
    BootDriver = 11,
    ConsoleInDriver = 12,
    ConsoleOutDriver = 13,
    StartupDpcStack = 14,
    StartupKernelStack = 15,
    StartupPanicStack = 16,
    StartupPcrPage = 17,
    StartupPdrPage = 18,
    RegistryData = 19,
    MemoryData = 20,
    NlsData = 21,
    SpecialMemory = 22,
    BbtMemory = 23,
    Reserve = 24,
    XipRom = 25,
    HalCachedMemory = 26,
    LargePageFiller = 27,
    ErrorLogMemory = 28,
}

impl MemoryType {
    /// The `LoaderXxx` name WinDbg prints for this type.
    pub fn name(self) -> &'static str {
        use MemoryType::*;
        match self {
            ExceptionBlock => "ExceptionBlock",
            SystemBlock => "SystemBlock",
            Free => "Free",
            Bad => "Bad",
            LoadedProgram => "LoadedProgram",
            FirmwareTemporary => "FirmwareTemporary",
            FirmwarePermanent => "FirmwarePermanent",
            OsloaderHeap => "OsloaderHeap",
            OsloaderStack => "OsloaderStack",
            SystemCode => "SystemCode",
            HalCode => "HalCode",
            BootDriver => "BootDriver",
            ConsoleInDriver => "ConsoleInDriver",
            ConsoleOutDriver => "ConsoleOutDriver",
            StartupDpcStack => "StartupDpcStack",
            StartupKernelStack => "StartupKernelStack",
            StartupPanicStack => "StartupPanicStack",
            StartupPcrPage => "StartupPcrPage",
            StartupPdrPage => "StartupPdrPage",
            RegistryData => "RegistryData",
            MemoryData => "MemoryData",
            NlsData => "NlsData",
            SpecialMemory => "SpecialMemory",
            BbtMemory => "BBTMemory",
            Reserve => "Reserve",
            XipRom => "XIPRom",
            HalCachedMemory => "HALCachedMemory",
            LargePageFiller => "LargePageFiller",
            ErrorLogMemory => "ErrorLogMemory",
        }
    }

    /// Whether the memory manager may hand these pages out once boot is done
    /// (free memory, plus loader-only memory the kernel no longer needs).
    pub fn is_reclaimable(self) -> bool {
        matches!(
            self,
            MemoryType::Free
                | MemoryType::FirmwareTemporary
                | MemoryType::LoadedProgram
                | MemoryType::OsloaderStack
        )
    }
}

/// `MEMORY_ALLOCATION_DESCRIPTOR`: one run of physical pages.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryDescriptor {
    pub memory_type: MemoryType,
    pub _pad: u32,
    pub base_page: u64,
    pub page_count: u64,
}

/// Maximum length of a module name in `LoadedModule`.
pub const MODULE_NAME_LEN: usize = 64;

/// `KLDR_DATA_TABLE_ENTRY`: one image the loader mapped (ntoskrnl, boot drivers).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LoadedModule {
    pub dll_base: u64,
    pub entry_point: u64,
    pub size_of_image: u32,
    pub name_length: u32,
    /// `BaseDllName`, ASCII.
    pub base_dll_name: [u8; MODULE_NAME_LEN],
    /// Physical address of the image's first page.
    pub physical_base: u64,
}

impl LoadedModule {
    pub fn name(&self) -> &str {
        let n = (self.name_length as usize).min(MODULE_NAME_LEN);
        core::str::from_utf8(&self.base_dll_name[..n]).unwrap_or("?")
    }
}

/// `BOOT_DRIVER_LIST_ENTRY`, ntrs's way: a driver file winload read for
/// the kernel. NT's winload maps and binds boot drivers itself and lists
/// their loader entries; ntrs's winload hands over the file bytes and the
/// kernel maps them with `MmLoadSystemImage`, one loader for every driver.
/// Until the kernel has a storage stack and a file system, winload brings
/// every driver file the `Services` keys name (see docs/io.md, "Driver
/// loading"), and the I/O manager decides from the registry which start.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootDriverFile {
    /// The service key's name (`Null`), the last component of `RegistryPath`.
    pub service_name: LoaderString,
    /// `FilePath`: the file under the system root, as `ImagePath` names it
    /// (`System32\drivers\null.sys`).
    pub file_path: LoaderString,
    /// The file's bytes (kernel virtual address in the direct map) and size.
    pub data: u64,
    pub length: u64,
}

impl BootDriverFile {
    /// # Safety
    /// `data..data+length` must be mapped for the returned lifetime.
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.data == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees the loader's pages are mapped.
        unsafe { core::slice::from_raw_parts(self.data as *const u8, self.length as usize) }
    }
}

/// Framebuffer the firmware's GOP left us (`BgContext` in NT terms).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FramebufferInfo {
    /// Kernel virtual address (in the direct map); 0 when there is none.
    pub base: u64,
    pub size: u64,
    pub width: u32,
    pub height: u32,
    pub pixels_per_scan_line: u32,
    /// 0 = RGB (red in the low byte), 1 = BGR.
    pub format: u32,
}

/// A string handed over by the loader (UTF-8, not NUL-terminated).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LoaderString {
    pub ptr: u64,
    pub len: u64,
}

impl LoaderString {
    pub const EMPTY: LoaderString = LoaderString { ptr: 0, len: 0 };

    /// # Safety
    /// `ptr..ptr+len` must be mapped and hold UTF-8 for the returned lifetime.
    pub unsafe fn as_str<'a>(&self) -> &'a str {
        if self.ptr == 0 || self.len == 0 {
            return "";
        }
        // SAFETY: the caller guarantees the range is mapped and stays valid.
        let bytes =
            unsafe { core::slice::from_raw_parts(self.ptr as *const u8, self.len as usize) };
        core::str::from_utf8(bytes).unwrap_or("")
    }
}

/// `LOADER_PARAMETER_BLOCK` as ntrs lays it out.
#[repr(C)]
pub struct LoaderParameterBlock {
    pub signature: u64,
    pub version: u32,
    pub size: u32,
    /// `MemoryDescriptorListHead`, flattened.
    pub memory_descriptors: u64,
    pub memory_descriptor_count: u64,
    /// `LoadOrderListHead`, flattened: ntoskrnl.exe first, then boot drivers.
    pub load_order: u64,
    pub load_order_count: u64,
    /// Top of the boot (idle thread) stack, `KernelStack`.
    pub kernel_stack: u64,
    /// Bottoms of the IST stacks (double fault, NMI, machine check), each
    /// `KERNEL_STACK_SIZE` bytes; top = bottom + size.
    pub ist_stacks: [u64; 3],
    /// `LoadOptions`: the BCD load options string, e.g. `/TESTS /DEBUG`.
    pub load_options: LoaderString,
    /// `ArcBootDeviceName`.
    pub arc_boot_device_name: LoaderString,
    /// `NtBootPathName`: `\Windows\`.
    pub nt_boot_path_name: LoaderString,
    /// `RegistryBase`/`RegistryLength`: the SYSTEM hive image (0 until the registry lands).
    pub registry_base: u64,
    pub registry_length: u64,
    /// Physical address of the ACPI RSDP (`AcpiTable` in the firmware information).
    pub acpi_rsdp: u64,
    pub framebuffer: FramebufferInfo,
    /// Physical address of the PML4 the loader built (CR3 at entry).
    pub pml4_physical: u64,
    /// Time-stamp counter frequency measured by the loader (ticks per second).
    pub tsc_frequency: u64,
    /// TSC read when the firmware handed control to the boot manager.
    pub firmware_handoff_tsc: u64,
    /// Highest physical address covered by the direct map.
    pub physical_map_size: u64,
    /// The SOFTWARE hive image (ntrs: loaded by winload too, since the
    /// kernel cannot read files yet; NT loads it in phase 1).
    pub software_hive_base: u64,
    pub software_hive_length: u64,
    /// `BootDriverListHead`, flattened: the driver files winload read.
    pub boot_drivers: u64,
    pub boot_driver_count: u64,
}

impl LoaderParameterBlock {
    /// # Safety
    /// The descriptor array must be mapped for the returned lifetime.
    pub unsafe fn memory_descriptors<'a>(&self) -> &'a [MemoryDescriptor] {
        if self.memory_descriptors == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees the loader's array is mapped.
        unsafe {
            core::slice::from_raw_parts(
                self.memory_descriptors as *const MemoryDescriptor,
                self.memory_descriptor_count as usize,
            )
        }
    }

    /// # Safety
    /// The boot driver array must be mapped for the returned lifetime.
    pub unsafe fn boot_driver_files<'a>(&self) -> &'a [BootDriverFile] {
        if self.boot_drivers == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees the loader's array is mapped.
        unsafe {
            core::slice::from_raw_parts(
                self.boot_drivers as *const BootDriverFile,
                self.boot_driver_count as usize,
            )
        }
    }

    /// # Safety
    /// The module array must be mapped for the returned lifetime.
    pub unsafe fn modules<'a>(&self) -> &'a [LoadedModule] {
        if self.load_order == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees the loader's array is mapped.
        unsafe {
            core::slice::from_raw_parts(
                self.load_order as *const LoadedModule,
                self.load_order_count as usize,
            )
        }
    }
}
