//! Boot tests of the storage stack's disk part: the GPT through
//! `\Device\Harddisk0\DR0`, a scratch write/read outside every partition,
//! the disk IOCTLs, bad requests' statuses, and the file I/O path to `C:`.
//! The volume and mount manager tests (partmgr.sys, volmgr.sys,
//! mountmgr.sys) are in `tests_volume.rs`.

use super::*;
use crate::ktest::{check, Test, TestResult};
use alloc::vec;
use alloc::vec::Vec;

/// What xtask/src/image.rs lays out: 1 MiB, the ESP (40 MiB), the system
/// partition (64 MiB), 1 MiB.
pub const MIB: u64 = 1 << 20;
pub const ESP_SIZE: u64 = 40 * MIB;
pub const SYSTEM_SIZE: u64 = 64 * MIB;
pub const DISK_SIZE: u64 = MIB + ESP_SIZE + SYSTEM_SIZE + MIB;

pub const TESTS: &[Test] = &[
    ("storage.gpt_through_dr0", t_gpt_through_dr0),
    ("storage.disk_ioctls", t_disk_ioctls),
    ("storage.scratch_write_read", t_scratch_write_read),
    ("storage.bad_requests", t_bad_requests),
    ("storage.contiguous_dma_memory", t_contiguous),
    ("storage.interrupt_completion", t_interrupt),
    ("storage.nt_file_io", t_nt_file_io),
];

/// Through the I/O manager: NtOpenFile of `\GLOBAL??\C:` and of
/// `\Device\Harddisk0\DR0` (the link is followed to volmgr's/disk's device
/// object), NtReadFile of the NTFS boot sector and of the GPT header,
/// NtDeviceIoControlFile, an unaligned read's status, and a name below the
/// volume (no file system mounted yet).
fn t_nt_file_io() -> TestResult {
    use crate::io::file::*;
    use wdk::*;
    let open = |path: &str| {
        nt_open_file(
            path,
            FILE_READ_DATA | SYNCHRONIZE,
            ::ob::OBJ_CASE_INSENSITIVE,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            FILE_SYNCHRONOUS_IO_NONALERT,
            Mode::KernelMode,
        )
    };
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let mut buf = vec![0u8; 4096];
    let h = open("\\GLOBAL??\\C:").map_err(|e| {
        crate::dbg_println!(
            "storage.nt_file_io: NtOpenFile \\GLOBAL??\\C: {e:?}; DR0: {:?}",
            open("\\Device\\Harddisk0\\DR0").err()
        );
        "NtOpenFile \\GLOBAL??\\C: failed"
    })?;
    let r1 = nt_read_file(h, &args, buf.as_mut_ptr() as _, 512, Some(0), 0);
    let got1 = (r1, iosb.Information, buf[3..11] == *b"NTFS    ");
    let r2 = nt_read_file(h, &args, buf.as_mut_ptr() as _, 100, Some(0), 0);
    let mut li = [0u8; 8];
    let r3 = nt_device_io_control_file(
        h,
        &args,
        dk::IOCTL_DISK_GET_LENGTH_INFO,
        core::ptr::null_mut(),
        0,
        li.as_mut_ptr() as _,
        8,
    );
    let len = u64::from_le_bytes(li);
    crate::ob::handle::nt_close(h);
    check(
        got1 == (Ok(STATUS_SUCCESS), 512, true),
        "NtReadFile of C:'s boot sector",
    )?;
    check(
        matches!(r2, Ok(s) | Err(s) if s == STATUS_INVALID_PARAMETER),
        "an unaligned NtReadFile is not STATUS_INVALID_PARAMETER",
    )?;
    check(
        r3 == Ok(STATUS_SUCCESS) && len == SYSTEM_SIZE,
        "IOCTL_DISK_GET_LENGTH_INFO on C:",
    )?;
    let h = open("\\Device\\Harddisk0\\DR0").map_err(|_| "NtOpenFile DR0 failed")?;
    let r4 = nt_read_file(h, &args, buf.as_mut_ptr() as _, 512, Some(512), 0);
    let got4 = buf[..8] == *b"EFI PART";
    crate::ob::handle::nt_close(h);
    check(
        r4 == Ok(STATUS_SUCCESS) && got4,
        "NtReadFile of DR0's LBA 1",
    )?;
    check(
        open("\\GLOBAL??\\C:\\x").is_err(),
        "a file below C: opened with no file system",
    )
}

/// storahci.sys connected the controller's interrupt from its START_DEVICE
/// resources (MSI, assigned by the PnP manager) and requests complete
/// through it: 8 reads raise at least 8 interrupts at that vector.
fn t_interrupt() -> TestResult {
    let s = st()?;
    let node = crate::io::pnp::find_pci_device(0x8086, 0x2922).ok_or("no AHCI node")?;
    check(
        node.state() == crate::io::pnp::DEVICE_NODE_STARTED,
        "the AHCI controller's node is not started",
    )?;
    let vector = node
        .resources()
        .and_then(|r| r.interrupt.as_ref())
        .map(|i| i.vector())
        .ok_or("the controller has no interrupt")?;
    let before =
        crate::ke::intr::interrupt_count(vector).ok_or("nothing connected at the vector")?;
    let mut b = vec![0u8; 4096];
    for i in 0..8 {
        s.read(Device::Disk(0), i * 4096, &mut b)
            .map_err(|_| "a read failed")?;
    }
    let after = crate::ke::intr::interrupt_count(vector).ok_or("disconnected")?;
    check(after >= before + 8, "fewer interrupts than completed reads")
}

/// `MmAllocateContiguousMemorySpecifyCache` gives zeroed, physically
/// contiguous pages in range and within the boundary; bad arguments fail;
/// `MmFreeContiguousMemory` takes them back once.
fn t_contiguous() -> TestResult {
    use crate::mm::contig::*;
    let va = mm_allocate_contiguous_memory(5 * 4096, 0, 0xFFFF_FFFF, 0x10_0000, MM_CACHED)
        .map_err(|_| "allocating 20 KiB below 4 GiB failed")?;
    let pa = crate::mm::pte::physical_address(va).ok_or("not mapped")?;
    let mut r = check(
        pa + 5 * 4096 - 1 <= 0xFFFF_FFFF,
        "above the highest acceptable address",
    )
    .and(check(
        pa / 0x10_0000 == (pa + 5 * 4096 - 1) / 0x10_0000,
        "crosses the boundary",
    ));
    for i in 0..5u64 {
        r = r.and(check(
            crate::mm::pte::physical_address(va + i * 4096) == Some(pa + i * 4096),
            "pages are not physically contiguous",
        ));
    }
    // SAFETY: va maps 5 pages this test owns until it frees them below.
    let zero = unsafe { core::slice::from_raw_parts(va as *const u8, 5 * 4096) }
        .iter()
        .all(|&b| b == 0);
    let e = MmGetPhysicalAddress(va as *mut core::ffi::c_void) as u64;
    let freed = mm_free_contiguous_memory(va);
    r?;
    check(zero, "not zeroed")?;
    check(e == pa, "MmGetPhysicalAddress disagrees")?;
    check(freed == STATUS_SUCCESS, "free failed")?;
    check(
        mm_free_contiguous_memory(va) == STATUS_INVALID_PARAMETER,
        "a double free was accepted",
    )?;
    check(
        mm_allocate_contiguous_memory(0, 0, u64::MAX, 0, MM_CACHED)
            == Err(STATUS_INVALID_PARAMETER),
        "size 0",
    )?;
    check(
        mm_allocate_contiguous_memory(8192, 0, u64::MAX, 4096, MM_CACHED)
            == Err(STATUS_INVALID_PARAMETER),
        "a run larger than its boundary",
    )?;
    check(
        MmAllocateContiguousMemorySpecifyCache(4096, 0x1000, 0x1FFF, 0, 9).is_null(),
        "a bad cache type",
    )
}

fn st() -> Result<&'static Stack, &'static str> {
    stack().ok_or("the storage stack did not start")
}

fn t_gpt_through_dr0() -> TestResult {
    let s = st()?;
    check(s.disk_bytes() == DISK_SIZE, "disk size is not the image's")?;
    for name in [
        "\\Device\\Harddisk0\\DR0",
        "\\Device\\Harddisk0\\Partition0",
        "\\GLOBAL??\\PhysicalDrive0",
    ] {
        let dev = s
            .resolve(name)
            .map_err(|_| "a disk name does not resolve")?;
        check(
            dev == Device::Disk(0),
            "a disk name resolves to another device",
        )?;
        let mut lba1 = vec![0u8; 512];
        s.read(dev, 512, &mut lba1)
            .map_err(|_| "reading LBA 1 failed")?;
        check(&lba1[..8] == b"EFI PART", "no EFI PART signature at LBA 1")?;
        let h = gpt::Header::parse(&lba1, 1, 512, s.disk.sectors)
            .map_err(|_| "the header read through DR0 is invalid (CRC or fields)")?;
        let g = s.disk.gpt.as_ref().ok_or("no GPT parsed at start")?;
        check(
            h == g.header,
            "the header differs from the one parsed at start",
        )?;
        let mut arr = vec![0u8; (h.array_bytes() as usize).div_ceil(512) * 512];
        s.read(dev, (h.entries_lba * 512) as i64, &mut arr)
            .map_err(|_| "reading the entry array failed")?;
        let parts = gpt::check_entries(&h, &arr).map_err(|_| "entry array CRC mismatch")?;
        check(parts.len() == 2, "the image has two partitions")?;
        check(
            parts[0].type_guid == storage::guid::types::EFI_SYSTEM
                && parts[1].type_guid == storage::guid::types::BASIC_DATA,
            "partition types are not ESP, basic data",
        )?;
        check(
            parts[0].sectors() * 512 == ESP_SIZE && parts[1].sectors() * 512 == SYSTEM_SIZE,
            "partition sizes are not the image's",
        )?;
        check(
            parts
                .iter()
                .map(|p| p.unique_guid)
                .eq(g.partitions.iter().map(|p| p.unique_guid)),
            "partition GUIDs differ from those parsed at start",
        )?;
    }
    // The backup header at the last LBA agrees.
    let g = s.disk.gpt.as_ref().ok_or("no GPT")?;
    check(
        g.primary_error.is_none() && g.backup_error.is_none(),
        "a GPT copy is bad",
    )?;
    let mut last = vec![0u8; 512];
    s.read(Device::Disk(0), (DISK_SIZE - 512) as i64, &mut last)
        .map_err(|_| "reading the last LBA failed")?;
    let b = gpt::Header::parse(&last, DISK_SIZE / 512 - 1, 512, DISK_SIZE / 512)
        .map_err(|_| "the backup header is invalid")?;
    check(
        b.alternate_lba == 1
            && b.disk_guid == g.header.disk_guid
            && b.entries_crc32 == g.header.entries_crc32,
        "the backup header disagrees with the primary",
    )
}

fn t_disk_ioctls() -> TestResult {
    let s = st()?;
    let g = s.disk.gpt.as_ref().ok_or("no GPT")?;
    let mut out = vec![0u8; 4096];
    let (status, n) = s.ioctl(
        Device::Disk(0),
        dk::IOCTL_DISK_GET_DRIVE_GEOMETRY_EX,
        &mut out,
    );
    check(
        status == STATUS_SUCCESS && n == 0x70,
        "GET_DRIVE_GEOMETRY_EX failed",
    )?;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    check(u32_at(&out, 0x14) == 512, "BytesPerSector")?;
    check(u32_at(&out, 0x08) == dk::FixedMedia, "MediaType")?;
    check(u64_at(&out, 0x18) == DISK_SIZE, "DiskSize")?;
    check(
        u32_at(&out, 0x24) == dk::PARTITION_STYLE_GPT,
        "PartitionStyle",
    )?;
    check(out[0x28..0x38] == g.header.disk_guid.to_bytes(), "DiskId")?;
    let (status, _) = s.ioctl(
        Device::Disk(0),
        dk::IOCTL_DISK_GET_DRIVE_GEOMETRY_EX,
        &mut out[..0x1F],
    );
    check(
        status == STATUS_BUFFER_TOO_SMALL,
        "a short GET_DRIVE_GEOMETRY_EX buffer",
    )?;

    let (status, n) = s.ioctl(
        Device::Disk(0),
        dk::IOCTL_DISK_GET_DRIVE_LAYOUT_EX,
        &mut out,
    );
    check(
        status == STATUS_SUCCESS && n == 0x30 + 2 * 0x90,
        "GET_DRIVE_LAYOUT_EX",
    )?;
    check(u32_at(&out, 4) == 2, "PartitionCount")?;
    let e2 = 0x30 + 0x90;
    check(
        u32_at(&out, e2 + 0x18) == 2,
        "second entry's PartitionNumber",
    )?;
    check(
        out[e2 + 0x30..e2 + 0x40] == g.partitions[1].unique_guid.to_bytes(),
        "second entry's PartitionId",
    )?;
    let (status, _) = s.ioctl(
        Device::Disk(0),
        dk::IOCTL_DISK_GET_DRIVE_LAYOUT_EX,
        &mut out[..0x30 + 0x90],
    );
    check(
        status == STATUS_BUFFER_TOO_SMALL,
        "a layout buffer for one entry",
    )?;

    let (status, n) = s.ioctl(Device::Disk(0), dk::IOCTL_DISK_GET_LENGTH_INFO, &mut out);
    check(
        status == STATUS_SUCCESS && n == 8 && u64_at(&out, 0) == DISK_SIZE,
        "GET_LENGTH_INFO on DR0",
    )?;
    let (status, _) = s.ioctl(Device::Disk(0), 0x0007_FFFC, &mut out);
    check(status == STATUS_INVALID_DEVICE_REQUEST, "an unknown IOCTL")
}

/// The scratch area: the sectors after the last partition up to the last
/// usable LBA (the image leaves 1 MiB there less the backup table). It is
/// computed from the GPT and checked to lie outside every partition.
fn scratch(s: &Stack) -> Result<(u64, u64), &'static str> {
    let g = s.disk.gpt.as_ref().ok_or("no GPT")?;
    let first = g
        .partitions
        .iter()
        .map(|p| p.last_lba + 1)
        .max()
        .ok_or("no partitions")?;
    let last = g.header.last_usable_lba;
    check(
        last >= first + 128,
        "less than 64 KiB free after the partitions",
    )?;
    check(
        g.partitions.iter().all(|p| p.last_lba < first),
        "the scratch area overlaps a partition",
    )?;
    Ok((first, last - first + 1))
}

fn t_scratch_write_read() -> TestResult {
    let s = st()?;
    let (lba, _) = scratch(s)?;
    let off = (lba * 512) as i64;
    const LEN: usize = 64 * 1024;
    let mut saved = vec![0u8; LEN];
    s.read(Device::Disk(0), off, &mut saved)
        .map_err(|_| "reading the scratch area failed")?;
    let seed = crate::hal::rdtsc();
    let pattern: Vec<u8> = (0..LEN)
        .map(|i| (seed.wrapping_mul(i as u64 + 1) >> 13) as u8 ^ i as u8)
        .collect();
    s.write(Device::Disk(0), off, &pattern)
        .map_err(|_| "writing the scratch area failed")?;
    let mut back = vec![0u8; LEN];
    s.read(Device::Disk(0), off, &mut back)
        .map_err(|_| "reading it back failed")?;
    check(
        back == pattern,
        "the data read back differs from what was written",
    )?;
    // An odd buffer address goes through a bounce buffer.
    let mut odd = vec![0u8; 4096 + 1];
    s.read(Device::Disk(0), off, &mut odd[1..])
        .map_err(|_| "reading into an odd address failed")?;
    check(odd[1..] == pattern[..4096], "read into an odd address")?;
    odd[1..].fill(0x5A);
    s.write(Device::Disk(0), off, &odd[1..])
        .map_err(|_| "writing from an odd address failed")?;
    s.read(Device::Disk(0), off, &mut back[..4096])
        .map_err(|_| "reading back")?;
    check(
        back[..4096].iter().all(|&b| b == 0x5A),
        "write from an odd address",
    )?;
    s.write(Device::Disk(0), off, &saved)
        .map_err(|_| "restoring the scratch area failed")?;
    check(
        s.flush() == STATUS_SUCCESS,
        "IRP_MJ_FLUSH_BUFFERS (SYNCHRONIZE CACHE) failed",
    )
}

fn t_bad_requests() -> TestResult {
    let s = st()?;
    let mut b = vec![0u8; 1024];
    check(
        s.read(Device::Disk(0), 100, &mut b[..512]) == Err(STATUS_INVALID_PARAMETER),
        "unaligned offset",
    )?;
    check(
        s.read(Device::Disk(0), 0, &mut b[..100]) == Err(STATUS_INVALID_PARAMETER),
        "unaligned length",
    )?;
    check(
        s.read(Device::Disk(0), -512, &mut b[..512]) == Err(STATUS_INVALID_PARAMETER),
        "negative offset",
    )?;
    check(
        s.write(Device::Disk(0), DISK_SIZE as i64, &b[..512]) == Err(STATUS_INVALID_PARAMETER),
        "a write past the disk's end",
    )?;
    check(
        s.read(Device::Disk(0), 0, &mut b[..0]) == Ok(0),
        "a zero-length read",
    )?;
    check(
        s.resolve("\\Device\\Harddisk0\\DR9").is_err(),
        "a missing disk resolves",
    )?;
    check(
        s.resolve("\\GLOBAL??\\Q:").is_err(),
        "a missing drive letter resolves",
    )?;
    // The kernel's handle on the disk simulates a removal (disk.sys has no
    // surprise-removal path yet, so nothing is sent down the stack).
    s.set_removed(true);
    let r = s.read(Device::Disk(0), 0, &mut b[..512]);
    let (io, _) = s.ioctl(Device::Disk(0), dk::IOCTL_DISK_GET_LENGTH_INFO, &mut b);
    s.set_removed(false);
    check(r == Err(STATUS_NO_SUCH_DEVICE), "a read of a removed disk")?;
    check(io == STATUS_NO_SUCH_DEVICE, "an IOCTL to a removed disk")?;
    check(
        s.read(Device::Disk(0), 0, &mut b[..512]) == Ok(512),
        "reads work again",
    )
}
