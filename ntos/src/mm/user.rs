//! The memory manager's part of user processes (*Windows Internals*,
//! Part 1, ch. 3, "Flow of CreateProcess" stages 3 and 4, and ch. 5, "x64
//! virtual address space layouts"): `KUSER_SHARED_DATA` (one page, the
//! kernel's read/write mapping at 0xFFFFF780'00000000 and every process's
//! read-only, no-execute one at 0x7FFE0000), and a new process's user
//! address space: the image mapped at its preferred base with per-section
//! protection (`map_user_image`), the PEB (`MmCreatePeb`), each thread's
//! stack and TEB (`MmCreateTeb`). The process manager (`ps::create`) puts
//! them together and writes the process parameters.
//!
//! ntrs deviation until image sections (SEC_IMAGE) land: the image is
//! copied from the file bytes into private committed memory (MEM_PRIVATE,
//! not MEM_IMAGE), then protected section by section.

use super::pte::{PTE_GLOBAL, PTE_NX, PTE_WRITE};
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::status::*;
use nt::user::*;
use nt::NtStatus;

pub const MEM_COMMIT: u32 = 0x1000;
pub const MEM_RESERVE: u32 = 0x2000;
pub const MEM_RELEASE: u32 = 0x8000;
pub const MEM_TOP_DOWN: u32 = 0x10_0000;
pub const PAGE_NOACCESS: u32 = 0x01;
pub const PAGE_READONLY: u32 = 0x02;
pub const PAGE_READWRITE: u32 = 0x04;
pub const PAGE_EXECUTE_READ: u32 = 0x20;

/// The shared data page's frame (0 until `initialize_shared_user_data`).
static SHARED_DATA_PFN: AtomicU64 = AtomicU64::new(0);
/// Serializes the one-time set-up.
static SHARED_DATA_LOCK: SpinLocked<(), DISPATCH_LEVEL> = SpinLocked::new(());

/// Windows version the shared data and the PEB report (Windows 10 22H2,
/// the build whose system call numbers ntrs uses).
pub const NT_MAJOR_VERSION: u32 = 10;
pub const NT_MINOR_VERSION: u32 = 0;
pub const NT_BUILD_NUMBER: u32 = nt::syscalls::SERVICE_NUMBERS_BUILD;

/// `MiInitializeSharedUserData`: allocates and maps `KUSER_SHARED_DATA`
/// for the kernel and fills its constant fields; the clock keeps the
/// times current from then on. Idempotent.
pub fn initialize_shared_user_data() -> Result<(), NtStatus> {
    SHARED_DATA_LOCK.with(|_| {
        if SHARED_DATA_PFN.load(Ordering::Relaxed) != 0 {
            return Ok(());
        }
        let pfn = super::pfn::mm_allocate_zeroed_page(0).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        super::map::map_page(KI_USER_SHARED_DATA, pfn, PTE_WRITE | PTE_NX | PTE_GLOBAL)?;
        let d = KI_USER_SHARED_DATA as *mut KUserSharedData;
        let pages = super::pfn::counts().map_or(0, |c| c.total);
        // SAFETY: the page was just mapped read/write for the kernel and
        // nobody else knows it yet.
        unsafe {
            let d = &mut *d;
            // TickCountMultiplier: ms per tick in 8.24 fixed point.
            d.tick_count_multiplier = ((crate::ke::clock::TIME_INCREMENT << 24) / 10_000) as u32;
            d.image_number_low = 0x8664;
            d.image_number_high = 0x8664;
            for (i, c) in "C:\\Windows".encode_utf16().enumerate() {
                d.nt_system_root[i] = c;
            }
            d.nt_build_number = NT_BUILD_NUMBER;
            d.nt_product_type = 1; // NtProductWinNt
            d.product_type_is_valid = 1;
            d.native_processor_architecture = 9; // PROCESSOR_ARCHITECTURE_AMD64
            d.nt_major_version = NT_MAJOR_VERSION;
            d.nt_minor_version = NT_MINOR_VERSION;
            d.number_of_physical_pages = pages as u32;
            d.qpc_frequency = crate::rtl::loader_block().tsc_frequency as i64;
            d.system_call = 0; // SYSCALL, not int 2Eh
            d.cookie = (crate::hal::rdtsc() as u32) | 1;
        }
        SHARED_DATA_PFN.store(pfn, Ordering::Relaxed);
        crate::ke::user::set_shared_data(KI_USER_SHARED_DATA);
        Ok(())
    })
}

/// A user image mapped into the attached process (`MmMapViewOfSection`
/// of the image section, ntrs's copy until SEC_IMAGE; see the module note).
#[derive(Clone, Copy, Debug)]
pub struct MappedImage {
    pub image_base: u64,
    pub entry: u64,
    /// `IMAGE_OPTIONAL_HEADER.Subsystem`.
    pub subsystem: u16,
}

/// A thread's user stack and TEB (`MmCreateTeb` and the stack the creator
/// reserves).
#[derive(Clone, Copy, Debug)]
pub struct UserThreadLayout {
    pub teb: u64,
    /// Top of the stack (`StackBase`) and its lowest address.
    pub stack_base: u64,
    pub stack_limit: u64,
}

/// Stack reserved (and committed) for a user thread by default.
pub const USER_STACK_SIZE: u64 = 256 * 1024;

fn allocate(base: u64, size: u64, ty: u32, protect: u32) -> Result<u64, NtStatus> {
    let (mut b, mut s) = (base, size);
    let st = super::process::nt_allocate_virtual_memory(&mut b, &mut s, ty, protect);
    if st.is_error() {
        return Err(st);
    }
    Ok(b)
}

fn protect(base: u64, size: u64, p: u32) -> Result<(), NtStatus> {
    let (mut b, mut s) = (base, size);
    super::process::nt_protect_virtual_memory(&mut b, &mut s, p).map(|_| ())
}

fn release(base: u64) {
    let (mut b, mut s) = (base, 0);
    let _ = super::process::nt_free_virtual_memory(&mut b, &mut s, MEM_RELEASE);
}

/// Checks that `image` is an AMD64 executable (not a DLL) before anything
/// is created for it.
pub fn check_user_image(image: &[u8]) -> Result<(), NtStatus> {
    let pe = pe::PeFile::parse(image)?;
    if pe.machine != 0x8664 || pe.characteristics & 0x2000 != 0 {
        return Err(STATUS_INVALID_IMAGE_FORMAT);
    }
    pe.kernel_page_protections()?;
    Ok(())
}

/// `MmInitializeProcessAddressSpace` for the attached (new, empty) process:
/// the shared data page and the image at its preferred base, protected
/// section by section.
pub fn map_user_image(image: &[u8]) -> Result<MappedImage, NtStatus> {
    initialize_shared_user_data()?;
    check_user_image(image)?;
    let pe = pe::PeFile::parse(image)?;
    let protections = pe.kernel_page_protections()?;
    // KUSER_SHARED_DATA: a reserved VAD keeps allocations away; the PTE
    // maps the shared frame read-only and no-execute for user mode. The
    // VAD has no committed pages, so the frame is never freed or trimmed
    // with the process; a user write faults and finds no commit:
    // STATUS_ACCESS_VIOLATION.
    allocate(MM_SHARED_USER_DATA_VA, 0x1000, MEM_RESERVE, PAGE_READONLY)?;
    let pfn = SHARED_DATA_PFN.load(Ordering::Relaxed);
    super::map::set_user_pte(MM_SHARED_USER_DATA_VA, pfn, PTE_NX)?;

    let base = map_at_preferred_base(&pe, &protections)?;
    Ok(MappedImage {
        image_base: base,
        entry: base + pe.address_of_entry_point as u64,
        subsystem: pe.subsystem,
    })
}

/// `PspMapSystemDll` for the attached process: ntdll.dll (an AMD64 DLL) at
/// its preferred base, protected section by section (ntrs differs: a
/// private copy, not a view of an image section). Returns its base.
pub fn map_system_dll(image: &[u8]) -> Result<u64, NtStatus> {
    let pe = pe::PeFile::parse(image)?;
    if pe.machine != 0x8664 || pe.characteristics & 0x2000 == 0 {
        return Err(STATUS_INVALID_IMAGE_FORMAT);
    }
    let protections = pe.kernel_page_protections()?;
    map_at_preferred_base(&pe, &protections)
}

/// Copies `pe` into the attached process at its preferred base (no
/// relocation needed there) and protects it page by page.
fn map_at_preferred_base(
    pe: &pe::PeFile,
    protections: &[pe::PageProtection],
) -> Result<u64, NtStatus> {
    let size = pe.size_of_image as u64;
    let base = allocate(
        pe.image_base,
        size,
        MEM_RESERVE | MEM_COMMIT,
        PAGE_READWRITE,
    )?;
    if base != pe.image_base {
        return Err(STATUS_CONFLICTING_ADDRESSES);
    }
    // SAFETY: the range was just committed read/write in the attached
    // process; demand-zero faults fill it as it is written.
    let view = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, size as usize) };
    pe.load(view, base)?;
    let mut i = 0;
    while i < protections.len() {
        let p = protections[i];
        let mut j = i + 1;
        while j < protections.len() && protections[j] == p {
            j += 1;
        }
        let prot = match p {
            pe::PageProtection::ReadExecute => PAGE_EXECUTE_READ,
            pe::PageProtection::ReadWrite => PAGE_READWRITE,
            _ => PAGE_READONLY,
        };
        protect(base + i as u64 * 4096, (j - i) as u64 * 4096, prot)?;
        i = j;
    }
    Ok(base)
}

/// `MmCreatePeb` in the attached process: the PEB page with the image
/// base, the process parameters' address, the processor count, the OS
/// version (10.0.19045), platform and subsystem. `Ldr` stays NULL (as on
/// NT, where `LdrInitializeThunk` fills it). Returns its address.
pub fn create_peb(image: &MappedImage, process_parameters: u64) -> Result<u64, NtStatus> {
    let peb = allocate(
        0,
        0x1000,
        MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN,
        PAGE_READWRITE,
    )?;
    let p = peb as *mut Peb;
    // SAFETY: `peb` is a committed read/write page of the attached process
    // that no user thread knows yet.
    unsafe {
        (*p).image_base_address = image.image_base;
        (*p).process_parameters = process_parameters;
        (*p).number_of_processors = crate::ke::processor_count();
        (*p).os_major_version = NT_MAJOR_VERSION;
        (*p).os_minor_version = NT_MINOR_VERSION;
        (*p).os_build_number = NT_BUILD_NUMBER as u16;
        (*p).os_platform_id = 2; // VER_PLATFORM_WIN32_NT
        (*p).image_subsystem = image.subsystem as u32;
    }
    Ok(peb)
}

/// `MmCreateTeb` and the thread's stack in the attached process: a
/// committed stack of `stack_size` bytes (rounded to 64 KiB; growth through
/// guard pages is not there yet) and the TEB (NtTib with StackBase,
/// StackLimit and Self, ClientId, the PEB, DeallocationStack, TlsLinks).
pub fn create_teb(
    peb: u64,
    client_id: (u64, u64),
    stack_size: u64,
) -> Result<UserThreadLayout, NtStatus> {
    let stack_size = stack_size
        .clamp(0x1_0000, 0x100_0000)
        .next_multiple_of(0x1_0000);
    let stack_limit = allocate(0, stack_size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE)?;
    let stack_base = stack_limit + stack_size;
    let teb = match allocate(
        0,
        0x2000,
        MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN,
        PAGE_READWRITE,
    ) {
        Ok(t) => t,
        Err(e) => {
            release(stack_limit);
            return Err(e);
        }
    };
    let t = teb as *mut Teb;
    // SAFETY: `teb` is two committed read/write pages (the TEB is 0x1838
    // bytes) of the attached process that no user thread knows yet.
    unsafe {
        (*t).nt_tib.stack_base = stack_base;
        (*t).nt_tib.stack_limit = stack_limit;
        (*t).nt_tib.self_ = teb;
        (*t).client_id = ClientId {
            unique_process: client_id.0,
            unique_thread: client_id.1,
        };
        (*t).process_environment_block = peb;
        (*t).deallocation_stack = stack_limit;
        (*t).tls_links = ListEntry {
            flink: teb + core::mem::offset_of!(Teb, tls_links) as u64,
            blink: teb + core::mem::offset_of!(Teb, tls_links) as u64,
        };
    }
    Ok(UserThreadLayout {
        teb,
        stack_base,
        stack_limit,
    })
}

/// `MmDeleteTeb` and the stack's release, in the attached process, for a
/// thread that ends while its process goes on.
pub fn delete_teb(layout: &UserThreadLayout) {
    release(layout.teb);
    release(layout.stack_limit);
}

/// The shared data page's frame (0 before `initialize_shared_user_data`).
pub fn shared_data_frame() -> u64 {
    SHARED_DATA_PFN.load(Ordering::Relaxed)
}
