//! User-mode structures the kernel writes and user mode reads, in their
//! Windows 10 x64 layouts (checked offsets below): `KUSER_SHARED_DATA`,
//! `TEB`, `PEB`, `RTL_USER_PROCESS_PARAMETERS`, `PEB_LDR_DATA`, and the
//! user address-space layout constants (*Windows Internals*, Part 1, ch. 3,
//! "Process internals", ch. 4, "Thread internals", ch. 5, "x64 virtual
//! address space layouts"). Fields ntrs does not fill stay zero; reserved
//! space keeps the offsets of the fields after it.

use core::mem::{offset_of, size_of};

/// `MM_HIGHEST_USER_ADDRESS`.
pub const MM_HIGHEST_USER_ADDRESS: u64 = 0x0000_7FFF_FFFE_FFFF;
/// `MM_USER_PROBE_ADDRESS`: `ProbeForRead`/`ProbeForWrite` reject anything
/// reaching it (the 64 KiB below 0x8000'00000000 stay a no-access guard).
pub const MM_USER_PROBE_ADDRESS: u64 = 0x0000_7FFF_FFFF_0000;
/// `MM_SHARED_USER_DATA_VA`: where user mode sees `KUSER_SHARED_DATA` (read-only).
pub const MM_SHARED_USER_DATA_VA: u64 = 0x7FFE_0000;
/// `KI_USER_SHARED_DATA`: the kernel's read/write mapping of the same page.
pub const KI_USER_SHARED_DATA: u64 = 0xFFFF_F780_0000_0000;

/// `KSYSTEM_TIME`: a 64-bit time written `High2Time`, `LowPart`,
/// `High1Time`; a reader retries until `High1Time == High2Time`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KSystemTime {
    pub low_part: u32,
    pub high1_time: i32,
    pub high2_time: i32,
}

/// `KUSER_SHARED_DATA` (Windows 10 x64), the fields up to `Cookie`;
/// the rest of the page is reserved here.
#[repr(C)]
pub struct KUserSharedData {
    pub tick_count_low_deprecated: u32,
    pub tick_count_multiplier: u32,
    pub interrupt_time: KSystemTime,
    pub system_time: KSystemTime,
    pub time_zone_bias: KSystemTime,
    pub image_number_low: u16,
    pub image_number_high: u16,
    pub nt_system_root: [u16; 260],
    pub max_stack_trace_depth: u32,
    pub crypto_exponent: u32,
    pub time_zone_id: u32,
    pub large_page_minimum: u32,
    pub ait_sampling_value: u32,
    pub app_compat_flag: u32,
    pub rng_seed_version: u64,
    pub global_validation_runlevel: u32,
    pub time_zone_bias_stamp: i32,
    pub nt_build_number: u32,
    pub nt_product_type: u32,
    pub product_type_is_valid: u8,
    pub reserved0: u8,
    pub native_processor_architecture: u16,
    pub nt_major_version: u32,
    pub nt_minor_version: u32,
    pub processor_features: [u8; 64],
    pub reserved1: u32,
    pub reserved3: u32,
    pub time_slip: u32,
    pub alternative_architecture: u32,
    pub boot_id: u32,
    pub system_expiration_date: i64,
    pub suite_mask: u32,
    pub kd_debugger_enabled: u8,
    pub mitigation_policies: u8,
    pub cycles_per_yield: u16,
    pub active_console_id: u32,
    pub dismount_count: u32,
    pub com_plus_package: u32,
    pub last_system_rit_event_tick_count: u32,
    pub number_of_physical_pages: u32,
    pub safe_boot_mode: u8,
    pub virtualization_flags: u8,
    pub reserved12: [u8; 2],
    pub shared_data_flags: u32,
    pub data_flags_pad: u32,
    pub test_ret_instruction: u64,
    pub qpc_frequency: i64,
    pub system_call: u32,
    pub reserved2: u32,
    pub system_call_pad: [u64; 2],
    /// `TickCount` (`TickCountQuad` overlays its first 8 bytes).
    pub tick_count: KSystemTime,
    pub reserved_tick_count_overlay: [u32; 1],
    pub cookie: u32,
    pub reserved_rest: [u8; 4096 - 0x334],
}

const _: () = assert!(offset_of!(KUserSharedData, tick_count_multiplier) == 0x004);
const _: () = assert!(offset_of!(KUserSharedData, interrupt_time) == 0x008);
const _: () = assert!(offset_of!(KUserSharedData, system_time) == 0x014);
const _: () = assert!(offset_of!(KUserSharedData, time_zone_bias) == 0x020);
const _: () = assert!(offset_of!(KUserSharedData, nt_system_root) == 0x030);
const _: () = assert!(offset_of!(KUserSharedData, nt_build_number) == 0x260);
const _: () = assert!(offset_of!(KUserSharedData, nt_product_type) == 0x264);
const _: () = assert!(offset_of!(KUserSharedData, native_processor_architecture) == 0x26A);
const _: () = assert!(offset_of!(KUserSharedData, nt_major_version) == 0x26C);
const _: () = assert!(offset_of!(KUserSharedData, nt_minor_version) == 0x270);
const _: () = assert!(offset_of!(KUserSharedData, processor_features) == 0x274);
const _: () = assert!(offset_of!(KUserSharedData, kd_debugger_enabled) == 0x2D4);
const _: () = assert!(offset_of!(KUserSharedData, number_of_physical_pages) == 0x2E8);
const _: () = assert!(offset_of!(KUserSharedData, qpc_frequency) == 0x300);
const _: () = assert!(offset_of!(KUserSharedData, system_call) == 0x308);
const _: () = assert!(offset_of!(KUserSharedData, tick_count) == 0x320);
const _: () = assert!(offset_of!(KUserSharedData, cookie) == 0x330);
const _: () = assert!(size_of::<KUserSharedData>() == 4096);

/// `CLIENT_ID`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientId {
    pub unique_process: u64,
    pub unique_thread: u64,
}

/// `UNICODE_STRING` (x64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UnicodeString {
    /// Bytes in use (no terminator).
    pub length: u16,
    pub maximum_length: u16,
    pub buffer: u64,
}

const _: () = assert!(size_of::<UnicodeString>() == 16);

/// `LIST_ENTRY` (x64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ListEntry {
    pub flink: u64,
    pub blink: u64,
}

/// `NT_TIB` (x64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NtTib {
    pub exception_list: u64,
    pub stack_base: u64,
    pub stack_limit: u64,
    pub sub_system_tib: u64,
    pub fiber_data: u64,
    pub arbitrary_user_pointer: u64,
    /// `Self`: the TEB's own address (what `NtCurrentTeb` reads at gs:[0x30]).
    pub self_: u64,
}

/// `TEB` (Windows 10 x64, 0x1838 bytes).
#[repr(C)]
pub struct Teb {
    pub nt_tib: NtTib,
    pub environment_pointer: u64,
    pub client_id: ClientId,
    pub active_rpc_handle: u64,
    pub thread_local_storage_pointer: u64,
    pub process_environment_block: u64,
    pub last_error_value: u32,
    pub count_of_owned_critical_sections: u32,
    pub csr_client_thread: u64,
    pub win32_thread_info: u64,
    pub user32_reserved: [u32; 26],
    pub user_reserved: [u32; 5],
    pub pad0: u32,
    pub wow32_reserved: u64,
    pub current_locale: u32,
    pub fp_software_status_register: u32,
    pub reserved_for_debugger_instrumentation: [u64; 16],
    pub system_reserved1: [u64; 30],
    pub reserved_to_0x1250: [u8; 0x1250 - 0x280],
    pub last_status_value: u32,
    pub pad1: u32,
    pub reserved_to_0x1478: [u8; 0x1478 - 0x1258],
    pub deallocation_stack: u64,
    pub tls_slots: [u64; 64],
    pub tls_links: ListEntry,
    pub reserved_to_0x1780: [u8; 0x1780 - 0x1690],
    pub tls_expansion_slots: u64,
    pub reserved_rest: [u8; 0x1838 - 0x1788],
}

const _: () = assert!(offset_of!(Teb, nt_tib) == 0x000);
const _: () = assert!(offset_of!(Teb, environment_pointer) == 0x038);
const _: () = assert!(offset_of!(Teb, client_id) == 0x040);
const _: () = assert!(offset_of!(Teb, thread_local_storage_pointer) == 0x058);
const _: () = assert!(offset_of!(Teb, process_environment_block) == 0x060);
const _: () = assert!(offset_of!(Teb, last_error_value) == 0x068);
const _: () = assert!(offset_of!(Teb, win32_thread_info) == 0x078);
const _: () = assert!(offset_of!(Teb, wow32_reserved) == 0x100);
const _: () = assert!(offset_of!(Teb, current_locale) == 0x108);
const _: () = assert!(offset_of!(Teb, system_reserved1) == 0x190);
const _: () = assert!(offset_of!(Teb, last_status_value) == 0x1250);
const _: () = assert!(offset_of!(Teb, deallocation_stack) == 0x1478);
const _: () = assert!(offset_of!(Teb, tls_slots) == 0x1480);
const _: () = assert!(offset_of!(Teb, tls_links) == 0x1680);
const _: () = assert!(offset_of!(Teb, tls_expansion_slots) == 0x1780);
const _: () = assert!(size_of::<Teb>() == 0x1838);

/// `PEB` (Windows 10 x64), the fields up to `ImageSubsystemMinorVersion`.
#[repr(C)]
pub struct Peb {
    pub inherited_address_space: u8,
    pub read_image_file_exec_options: u8,
    pub being_debugged: u8,
    pub bit_field: u8,
    pub padding0: [u8; 4],
    pub mutant: u64,
    pub image_base_address: u64,
    /// `Ldr` (`PEB_LDR_DATA`), filled by the loader (`LdrInitializeThunk`).
    pub ldr: u64,
    /// `ProcessParameters` (`RTL_USER_PROCESS_PARAMETERS`).
    pub process_parameters: u64,
    pub sub_system_data: u64,
    pub process_heap: u64,
    pub fast_peb_lock: u64,
    pub reserved_to_0xb8: [u8; 0xB8 - 0x40],
    pub number_of_processors: u32,
    pub nt_global_flag: u32,
    pub reserved_to_0x118: [u8; 0x118 - 0xC0],
    pub os_major_version: u32,
    pub os_minor_version: u32,
    pub os_build_number: u16,
    pub os_csd_version: u16,
    pub os_platform_id: u32,
    pub image_subsystem: u32,
    pub image_subsystem_major_version: u32,
    pub image_subsystem_minor_version: u32,
    pub reserved_rest: [u8; 0x7C8 - 0x134],
}

const _: () = assert!(offset_of!(Peb, being_debugged) == 0x002);
const _: () = assert!(offset_of!(Peb, image_base_address) == 0x010);
const _: () = assert!(offset_of!(Peb, ldr) == 0x018);
const _: () = assert!(offset_of!(Peb, process_parameters) == 0x020);
const _: () = assert!(offset_of!(Peb, process_heap) == 0x030);
const _: () = assert!(offset_of!(Peb, number_of_processors) == 0x0B8);
const _: () = assert!(offset_of!(Peb, nt_global_flag) == 0x0BC);
const _: () = assert!(offset_of!(Peb, os_major_version) == 0x118);
const _: () = assert!(offset_of!(Peb, os_build_number) == 0x120);
const _: () = assert!(offset_of!(Peb, image_subsystem) == 0x128);
const _: () = assert!(size_of::<Peb>() == 0x7C8);

/// `PEB_LDR_DATA` (x64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PebLdrData {
    pub length: u32,
    pub initialized: u8,
    pub pad: [u8; 3],
    pub ss_handle: u64,
    pub in_load_order_module_list: ListEntry,
    pub in_memory_order_module_list: ListEntry,
    pub in_initialization_order_module_list: ListEntry,
    pub entry_in_progress: u64,
    pub shutdown_in_progress: u8,
    pub pad2: [u8; 7],
    pub shutdown_thread_id: u64,
}

const _: () = assert!(offset_of!(PebLdrData, in_load_order_module_list) == 0x10);
const _: () = assert!(offset_of!(PebLdrData, in_initialization_order_module_list) == 0x30);
const _: () = assert!(size_of::<PebLdrData>() == 0x58);

/// `CURDIR`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CurDir {
    pub dos_path: UnicodeString,
    pub handle: u64,
}

/// `RTL_USER_PROCESS_PARAMETERS` (x64), the fields up to `EnvironmentVersion`.
#[repr(C)]
pub struct RtlUserProcessParameters {
    pub maximum_length: u32,
    pub length: u32,
    /// `RTL_USER_PROC_PARAMS_NORMALIZED` (1): the strings hold addresses, not offsets.
    pub flags: u32,
    pub debug_flags: u32,
    pub console_handle: u64,
    pub console_flags: u32,
    pub pad0: u32,
    pub standard_input: u64,
    pub standard_output: u64,
    pub standard_error: u64,
    pub current_directory: CurDir,
    pub dll_path: UnicodeString,
    pub image_path_name: UnicodeString,
    pub command_line: UnicodeString,
    pub environment: u64,
    pub starting_x: u32,
    pub starting_y: u32,
    pub count_x: u32,
    pub count_y: u32,
    pub count_chars_x: u32,
    pub count_chars_y: u32,
    pub fill_attribute: u32,
    pub window_flags: u32,
    pub show_window_flags: u32,
    pub pad1: u32,
    pub window_title: UnicodeString,
    pub desktop_info: UnicodeString,
    pub shell_info: UnicodeString,
    pub runtime_data: UnicodeString,
    pub current_directories: [[u8; 0x18]; 32],
    pub environment_size: u64,
    pub environment_version: u64,
}

/// `RTL_USER_PROC_PARAMS_NORMALIZED`.
pub const RTL_USER_PROC_PARAMS_NORMALIZED: u32 = 1;

const _: () = assert!(offset_of!(RtlUserProcessParameters, console_handle) == 0x10);
const _: () = assert!(offset_of!(RtlUserProcessParameters, standard_input) == 0x20);
const _: () = assert!(offset_of!(RtlUserProcessParameters, standard_output) == 0x28);
const _: () = assert!(offset_of!(RtlUserProcessParameters, current_directory) == 0x38);
const _: () = assert!(offset_of!(RtlUserProcessParameters, dll_path) == 0x50);
const _: () = assert!(offset_of!(RtlUserProcessParameters, image_path_name) == 0x60);
const _: () = assert!(offset_of!(RtlUserProcessParameters, command_line) == 0x70);
const _: () = assert!(offset_of!(RtlUserProcessParameters, environment) == 0x80);
const _: () = assert!(offset_of!(RtlUserProcessParameters, window_flags) == 0xA4);
const _: () = assert!(offset_of!(RtlUserProcessParameters, window_title) == 0xB0);
const _: () = assert!(offset_of!(RtlUserProcessParameters, current_directories) == 0xF0);
const _: () = assert!(offset_of!(RtlUserProcessParameters, environment_size) == 0x3F0);

/// Reads a `KSYSTEM_TIME` the way user mode must (retry while a writer is
/// between its stores).
///
/// # Safety
/// `t` points at a readable `KSYSTEM_TIME`.
pub unsafe fn read_system_time(t: *const KSystemTime) -> u64 {
    loop {
        // SAFETY: per the contract; volatile because the clock rewrites it.
        let (h1, lo, h2) = unsafe {
            (
                core::ptr::addr_of!((*t).high1_time).read_volatile(),
                core::ptr::addr_of!((*t).low_part).read_volatile(),
                core::ptr::addr_of!((*t).high2_time).read_volatile(),
            )
        };
        if h1 == h2 {
            return ((h1 as u32 as u64) << 32) | lo as u64;
        }
    }
}
