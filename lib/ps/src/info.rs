//! Information-class structures in their Windows x64 layouts. Each type
//! writes itself little-endian at NT's offsets (`write_to`), so the kernel
//! copies bytes and never casts caller memory.

use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// `PROCESSINFOCLASS` values ntrs answers.
pub const PROCESS_BASIC_INFORMATION: u32 = 0;
pub const PROCESS_TIMES: u32 = 4;
pub const PROCESS_BASE_PRIORITY: u32 = 5;
pub const PROCESS_PRIORITY_CLASS: u32 = 18;
pub const PROCESS_HANDLE_COUNT: u32 = 20;
pub const PROCESS_AFFINITY_MASK: u32 = 21;
pub const PROCESS_IMAGE_FILE_NAME: u32 = 27;
/// `THREADINFOCLASS` values ntrs answers.
pub const THREAD_BASIC_INFORMATION: u32 = 0;
pub const THREAD_TIMES: u32 = 1;
pub const THREAD_PRIORITY: u32 = 2;
pub const THREAD_BASE_PRIORITY: u32 = 3;
pub const THREAD_AFFINITY_MASK: u32 = 4;
pub const THREAD_SUSPEND_COUNT: u32 = 35;
/// `SYSTEM_INFORMATION_CLASS` values ntrs answers.
pub const SYSTEM_BASIC_INFORMATION: u32 = 0;
pub const SYSTEM_PROCESS_INFORMATION: u32 = 5;

/// A structure with a fixed Windows x64 layout.
pub trait Layout {
    /// `sizeof` on Windows x64.
    const SIZE: usize;
    /// Writes the structure at offset 0 of `out` (`out.len() >= SIZE`).
    fn write_to(&self, out: &mut [u8]);

    /// The structure as bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = alloc::vec![0u8; Self::SIZE];
        self.write_to(&mut v);
        v
    }
}

fn put(out: &mut [u8], off: usize, bytes: &[u8]) {
    out[off..off + bytes.len()].copy_from_slice(bytes);
}

/// `PROCESS_BASIC_INFORMATION` (48 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessBasicInformation {
    pub exit_status: i32,
    pub peb_base_address: u64,
    pub affinity_mask: u64,
    pub base_priority: i32,
    pub unique_process_id: u64,
    pub inherited_from_unique_process_id: u64,
}

impl Layout for ProcessBasicInformation {
    const SIZE: usize = 48;
    fn write_to(&self, o: &mut [u8]) {
        put(o, 0, &self.exit_status.to_le_bytes());
        put(o, 8, &self.peb_base_address.to_le_bytes());
        put(o, 16, &self.affinity_mask.to_le_bytes());
        put(o, 24, &self.base_priority.to_le_bytes());
        put(o, 32, &self.unique_process_id.to_le_bytes());
        put(o, 40, &self.inherited_from_unique_process_id.to_le_bytes());
    }
}

/// `KERNEL_USER_TIMES` (32 bytes; 100 ns units).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelUserTimes {
    pub create_time: u64,
    pub exit_time: u64,
    pub kernel_time: u64,
    pub user_time: u64,
}

impl Layout for KernelUserTimes {
    const SIZE: usize = 32;
    fn write_to(&self, o: &mut [u8]) {
        put(o, 0, &self.create_time.to_le_bytes());
        put(o, 8, &self.exit_time.to_le_bytes());
        put(o, 16, &self.kernel_time.to_le_bytes());
        put(o, 24, &self.user_time.to_le_bytes());
    }
}

/// `THREAD_BASIC_INFORMATION` (48 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadBasicInformation {
    pub exit_status: i32,
    pub teb_base_address: u64,
    /// `ClientId.UniqueProcess`, `ClientId.UniqueThread`.
    pub unique_process: u64,
    pub unique_thread: u64,
    pub affinity_mask: u64,
    pub priority: i32,
    pub base_priority: i32,
}

impl Layout for ThreadBasicInformation {
    const SIZE: usize = 48;
    fn write_to(&self, o: &mut [u8]) {
        put(o, 0, &self.exit_status.to_le_bytes());
        put(o, 8, &self.teb_base_address.to_le_bytes());
        put(o, 16, &self.unique_process.to_le_bytes());
        put(o, 24, &self.unique_thread.to_le_bytes());
        put(o, 32, &self.affinity_mask.to_le_bytes());
        put(o, 40, &self.priority.to_le_bytes());
        put(o, 44, &self.base_priority.to_le_bytes());
    }
}

/// `SYSTEM_BASIC_INFORMATION` (64 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemBasicInformation {
    /// `TimerResolution` (100 ns units).
    pub timer_resolution: u32,
    pub page_size: u32,
    pub number_of_physical_pages: u32,
    pub lowest_physical_page_number: u32,
    pub highest_physical_page_number: u32,
    pub allocation_granularity: u32,
    pub minimum_user_mode_address: u64,
    pub maximum_user_mode_address: u64,
    pub active_processors_affinity_mask: u64,
    pub number_of_processors: i8,
}

impl Layout for SystemBasicInformation {
    const SIZE: usize = 64;
    fn write_to(&self, o: &mut [u8]) {
        put(o, 0, &0u32.to_le_bytes());
        put(o, 4, &self.timer_resolution.to_le_bytes());
        put(o, 8, &self.page_size.to_le_bytes());
        put(o, 12, &self.number_of_physical_pages.to_le_bytes());
        put(o, 16, &self.lowest_physical_page_number.to_le_bytes());
        put(o, 20, &self.highest_physical_page_number.to_le_bytes());
        put(o, 24, &self.allocation_granularity.to_le_bytes());
        put(o, 32, &self.minimum_user_mode_address.to_le_bytes());
        put(o, 40, &self.maximum_user_mode_address.to_le_bytes());
        put(o, 48, &self.active_processors_affinity_mask.to_le_bytes());
        put(o, 56, &self.number_of_processors.to_le_bytes());
    }
}

/// A fixed-size class answered into the caller's buffer: the length must be
/// the structure's (STATUS_INFO_LENGTH_MISMATCH otherwise, as
/// `NtQueryInformationProcess` does for fixed classes); returns the bytes
/// written (the `ReturnLength`).
pub fn answer_fixed<T: Layout>(v: &T, buffer: &mut [u8]) -> Result<usize, NtStatus> {
    if buffer.len() != T::SIZE {
        return Err(STATUS_INFO_LENGTH_MISMATCH);
    }
    v.write_to(buffer);
    Ok(T::SIZE)
}

/// A `ULONG` class (`ProcessHandleCount`, `ThreadSuspendCount`, ...).
pub fn answer_u32(v: u32, buffer: &mut [u8]) -> Result<usize, NtStatus> {
    if buffer.len() != 4 {
        return Err(STATUS_INFO_LENGTH_MISMATCH);
    }
    buffer.copy_from_slice(&v.to_le_bytes());
    Ok(4)
}

/// A set class's fixed-size input: its bytes, or STATUS_INFO_LENGTH_MISMATCH.
pub fn input<const N: usize>(buffer: &[u8]) -> Result<[u8; N], NtStatus> {
    buffer.try_into().map_err(|_| STATUS_INFO_LENGTH_MISMATCH)
}

/// `ProcessImageFileName`: a `UNICODE_STRING` (16 bytes: Length,
/// MaximumLength, 4 bytes padding, Buffer) followed by the UTF-16 name and
/// its terminator, `Buffer` pointing just after the header (the caller's
/// buffer starts at `buffer_address`). STATUS_INFO_LENGTH_MISMATCH with the
/// needed length when the buffer is too small.
pub fn answer_unicode_string(
    name: &str,
    buffer_address: u64,
    buffer: &mut [u8],
) -> Result<usize, (NtStatus, usize)> {
    let utf16: Vec<u16> = name.encode_utf16().collect();
    let bytes = utf16.len() * 2;
    let need = 16 + bytes + 2;
    if buffer.len() < need || bytes + 2 > u16::MAX as usize {
        return Err((STATUS_INFO_LENGTH_MISMATCH, need));
    }
    put(buffer, 0, &(bytes as u16).to_le_bytes());
    put(buffer, 2, &((bytes + 2) as u16).to_le_bytes());
    put(buffer, 4, &0u32.to_le_bytes());
    put(buffer, 8, &(buffer_address + 16).to_le_bytes());
    for (i, c) in utf16.iter().enumerate() {
        put(buffer, 16 + 2 * i, &c.to_le_bytes());
    }
    put(buffer, 16 + bytes, &0u16.to_le_bytes());
    Ok(need)
}

/// `SYSTEM_THREAD_INFORMATION` (80 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemThreadInformation {
    pub kernel_time: u64,
    pub user_time: u64,
    pub create_time: u64,
    pub wait_time: u32,
    pub start_address: u64,
    pub unique_process: u64,
    pub unique_thread: u64,
    pub priority: i32,
    pub base_priority: i32,
    pub context_switches: u32,
    /// `KTHREAD_STATE`.
    pub thread_state: u32,
    /// `KWAIT_REASON`.
    pub wait_reason: u32,
}

impl Layout for SystemThreadInformation {
    const SIZE: usize = 80;
    fn write_to(&self, o: &mut [u8]) {
        put(o, 0, &self.kernel_time.to_le_bytes());
        put(o, 8, &self.user_time.to_le_bytes());
        put(o, 16, &self.create_time.to_le_bytes());
        put(o, 24, &self.wait_time.to_le_bytes());
        put(o, 32, &self.start_address.to_le_bytes());
        put(o, 40, &self.unique_process.to_le_bytes());
        put(o, 48, &self.unique_thread.to_le_bytes());
        put(o, 56, &self.priority.to_le_bytes());
        put(o, 60, &self.base_priority.to_le_bytes());
        put(o, 64, &self.context_switches.to_le_bytes());
        put(o, 68, &self.thread_state.to_le_bytes());
        put(o, 72, &self.wait_reason.to_le_bytes());
    }
}

/// One process of `SystemProcessInformation`: the fields ntrs fills of
/// `SYSTEM_PROCESS_INFORMATION` (256 bytes before its threads); the others
/// (working set, page file, I/O counters) are zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemProcess {
    pub create_time: u64,
    pub user_time: u64,
    pub kernel_time: u64,
    pub image_name: alloc::string::String,
    pub base_priority: i32,
    pub unique_process_id: u64,
    pub inherited_from_unique_process_id: u64,
    pub handle_count: u32,
    pub threads: Vec<SystemThreadInformation>,
}

/// `sizeof(SYSTEM_PROCESS_INFORMATION)` on x64.
pub const SYSTEM_PROCESS_INFORMATION_SIZE: usize = 256;
/// Offsets in `SYSTEM_PROCESS_INFORMATION`.
const SPI_NUMBER_OF_THREADS: usize = 4;
const SPI_CREATE_TIME: usize = 32;
const SPI_USER_TIME: usize = 40;
const SPI_KERNEL_TIME: usize = 48;
const SPI_IMAGE_NAME: usize = 56;
const SPI_BASE_PRIORITY: usize = 72;
const SPI_UNIQUE_PROCESS_ID: usize = 80;
const SPI_INHERITED_FROM: usize = 88;
const SPI_HANDLE_COUNT: usize = 96;

/// `SystemProcessInformation`: each process's record followed by its
/// threads' and its image name (UTF-16, terminated, 8-byte aligned),
/// chained by `NextEntryOffset` (0 in the last). `buffer_address` is where
/// the caller's buffer lives (`ImageName.Buffer` points into it). Returns
/// the length written, or STATUS_INFO_LENGTH_MISMATCH with the length
/// needed.
pub fn answer_process_list(
    processes: &[SystemProcess],
    buffer_address: u64,
    buffer: &mut [u8],
) -> Result<usize, (NtStatus, usize)> {
    let name_len = |p: &SystemProcess| p.image_name.encode_utf16().count() * 2;
    let entry_len = |p: &SystemProcess| {
        let n = SYSTEM_PROCESS_INFORMATION_SIZE
            + p.threads.len() * SystemThreadInformation::SIZE
            + if p.image_name.is_empty() {
                0
            } else {
                name_len(p) + 2
            };
        n.next_multiple_of(8)
    };
    let need: usize = processes.iter().map(entry_len).sum();
    if buffer.len() < need {
        return Err((STATUS_INFO_LENGTH_MISMATCH, need));
    }
    buffer[..need].fill(0);
    let mut off = 0;
    for (i, p) in processes.iter().enumerate() {
        let len = entry_len(p);
        let next = if i + 1 == processes.len() { 0 } else { len };
        let e = &mut buffer[off..off + len];
        put(e, 0, &(next as u32).to_le_bytes());
        put(
            e,
            SPI_NUMBER_OF_THREADS,
            &(p.threads.len() as u32).to_le_bytes(),
        );
        put(e, SPI_CREATE_TIME, &p.create_time.to_le_bytes());
        put(e, SPI_USER_TIME, &p.user_time.to_le_bytes());
        put(e, SPI_KERNEL_TIME, &p.kernel_time.to_le_bytes());
        put(e, SPI_BASE_PRIORITY, &p.base_priority.to_le_bytes());
        put(e, SPI_UNIQUE_PROCESS_ID, &p.unique_process_id.to_le_bytes());
        put(
            e,
            SPI_INHERITED_FROM,
            &p.inherited_from_unique_process_id.to_le_bytes(),
        );
        put(e, SPI_HANDLE_COUNT, &p.handle_count.to_le_bytes());
        for (j, t) in p.threads.iter().enumerate() {
            let at = SYSTEM_PROCESS_INFORMATION_SIZE + j * SystemThreadInformation::SIZE;
            t.write_to(&mut e[at..]);
        }
        if !p.image_name.is_empty() {
            let at =
                SYSTEM_PROCESS_INFORMATION_SIZE + p.threads.len() * SystemThreadInformation::SIZE;
            let bytes = name_len(p);
            put(e, SPI_IMAGE_NAME, &(bytes as u16).to_le_bytes());
            put(e, SPI_IMAGE_NAME + 2, &((bytes + 2) as u16).to_le_bytes());
            put(
                e,
                SPI_IMAGE_NAME + 8,
                &(buffer_address + (off + at) as u64).to_le_bytes(),
            );
            for (k, c) in p.image_name.encode_utf16().enumerate() {
                put(e, at + 2 * k, &c.to_le_bytes());
            }
        }
        off += len;
    }
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }
    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn process_basic_information_offsets() {
        let b = ProcessBasicInformation {
            exit_status: 0x103,
            peb_base_address: 0x7FF0_0000,
            affinity_mask: 0xF,
            base_priority: 8,
            unique_process_id: 0x44,
            inherited_from_unique_process_id: 4,
        }
        .to_bytes();
        assert_eq!(b.len(), 48);
        assert_eq!(u32_at(&b, 0), 0x103);
        assert_eq!(u64_at(&b, 8), 0x7FF0_0000);
        assert_eq!(u64_at(&b, 16), 0xF);
        assert_eq!(u32_at(&b, 24), 8);
        assert_eq!(u64_at(&b, 32), 0x44);
        assert_eq!(u64_at(&b, 40), 4);
    }

    #[test]
    fn thread_basic_information_offsets() {
        let b = ThreadBasicInformation {
            exit_status: 0x103,
            teb_base_address: 0x1000,
            unique_process: 8,
            unique_thread: 12,
            affinity_mask: 3,
            priority: 9,
            base_priority: 8,
        }
        .to_bytes();
        assert_eq!(b.len(), 48);
        assert_eq!(u64_at(&b, 16), 8);
        assert_eq!(u64_at(&b, 24), 12);
        assert_eq!(u64_at(&b, 32), 3);
        assert_eq!(u32_at(&b, 40), 9);
        assert_eq!(u32_at(&b, 44), 8);
    }

    #[test]
    fn system_basic_information_offsets() {
        let b = SystemBasicInformation {
            timer_resolution: 156_250,
            page_size: 4096,
            number_of_physical_pages: 100,
            lowest_physical_page_number: 1,
            highest_physical_page_number: 200,
            allocation_granularity: 0x10000,
            minimum_user_mode_address: 0x10000,
            maximum_user_mode_address: 0x7FFF_FFFE_FFFF,
            active_processors_affinity_mask: 0xF,
            number_of_processors: 4,
        }
        .to_bytes();
        assert_eq!(b.len(), 64);
        assert_eq!(u32_at(&b, 4), 156_250);
        assert_eq!(u32_at(&b, 8), 4096);
        assert_eq!(u32_at(&b, 24), 0x10000);
        assert_eq!(u64_at(&b, 40), 0x7FFF_FFFE_FFFF);
        assert_eq!(u64_at(&b, 48), 0xF);
        assert_eq!(b[56], 4);
    }

    #[test]
    fn fixed_classes_need_the_exact_length() {
        let t = KernelUserTimes::default();
        assert_eq!(
            answer_fixed(&t, &mut [0u8; 31]),
            Err(STATUS_INFO_LENGTH_MISMATCH)
        );
        assert_eq!(
            answer_fixed(&t, &mut [0u8; 33]),
            Err(STATUS_INFO_LENGTH_MISMATCH)
        );
        assert_eq!(answer_fixed(&t, &mut [0u8; 32]), Ok(32));
        assert_eq!(
            answer_u32(7, &mut [0u8; 8]),
            Err(STATUS_INFO_LENGTH_MISMATCH)
        );
        assert_eq!(input::<4>(&[1, 0, 0]), Err(STATUS_INFO_LENGTH_MISMATCH));
    }

    #[test]
    fn image_file_name_is_a_unicode_string_in_the_buffer() {
        let mut b = [0u8; 64];
        assert_eq!(
            answer_unicode_string("abc", 0x1000, &mut b[..20]),
            Err((STATUS_INFO_LENGTH_MISMATCH, 24))
        );
        assert_eq!(answer_unicode_string("abc", 0x1000, &mut b), Ok(24));
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), 6);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 8);
        assert_eq!(u64_at(&b, 8), 0x1010);
        assert_eq!(&b[16..24], &[b'a', 0, b'b', 0, b'c', 0, 0, 0]);
    }

    #[test]
    fn process_list_chains_entries_with_threads_and_names() {
        let t = SystemThreadInformation {
            unique_process: 8,
            unique_thread: 12,
            priority: 8,
            ..Default::default()
        };
        let ps = [
            SystemProcess {
                unique_process_id: 0,
                ..Default::default()
            },
            SystemProcess {
                unique_process_id: 8,
                inherited_from_unique_process_id: 4,
                image_name: "a.exe".into(),
                handle_count: 3,
                threads: alloc::vec![t, t],
                ..Default::default()
            },
        ];
        let mut small = [0u8; 300];
        let need = match answer_process_list(&ps, 0x10_0000, &mut small) {
            Err((s, n)) => {
                assert_eq!(s, STATUS_INFO_LENGTH_MISMATCH);
                n
            }
            Ok(_) => panic!("fit in 300 bytes"),
        };
        assert_eq!(need, 256 + (256usize + 160 + 12).next_multiple_of(8));
        let mut b = alloc::vec![0xAAu8; need];
        assert_eq!(answer_process_list(&ps, 0x10_0000, &mut b), Ok(need));
        assert_eq!(u32_at(&b, 0), 256, "NextEntryOffset of Idle");
        let e = &b[256..];
        assert_eq!(u32_at(e, 0), 0, "last entry");
        assert_eq!(u32_at(e, 4), 2);
        assert_eq!(u64_at(e, 80), 8);
        assert_eq!(u64_at(e, 88), 4);
        assert_eq!(u32_at(e, 96), 3);
        assert_eq!(u64_at(e, 256 + 40), 8, "thread ClientId.UniqueProcess");
        assert_eq!(u64_at(e, 256 + 80 + 48), 12, "second thread UniqueThread");
        assert_eq!(u16::from_le_bytes([e[56], e[57]]), 10);
        let name_at = u64_at(e, 64) - 0x10_0000;
        assert_eq!(name_at as usize, 256 + 256 + 160);
        assert_eq!(b[name_at as usize], b'a');
    }
}
