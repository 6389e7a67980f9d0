//! Boot tests of the loaded volume drivers (drivers/partmgr, volmgr,
//! mountmgr), all through the I/O manager (`NtOpenFile`, `NtReadFile`,
//! `NtDeviceIoControlFile` on the names they create): partmgr above DR0,
//! the volumes' data, IOCTLs and extent checks, the `PartitionN` links,
//! the volume interfaces, the mount manager's links, `MountedDevices`
//! values and `IOCTL_MOUNTMGR_QUERY_POINTS`.

use super::tests::{DISK_SIZE, ESP_SIZE, MIB, SYSTEM_SIZE};
use super::*;
use crate::io::file::*;
use crate::ktest::{check, Test, TestResult};
use alloc::vec;
use alloc::vec::Vec;
use wdk::mountdev::*;
use wdk::*;

pub const TESTS: &[Test] = &[
    ("storage.drivers_loaded", t_drivers_loaded),
    ("storage.partmgr_filter_above_dr0", t_partmgr_filter),
    ("storage.ntfs_through_volume2", t_ntfs_through_volume2),
    ("storage.partition_links", t_partition_links),
    ("storage.volume_ioctls", t_volume_ioctls),
    ("storage.volume_extent_checked", t_volume_extent),
    ("storage.volume_interfaces", t_volume_interfaces),
    ("storage.mount_manager", t_mount_manager),
    ("storage.mountmgr_query_points", t_query_points),
];

const MOUNTED_DEVICES: &str = "\\REGISTRY\\MACHINE\\SYSTEM\\MountedDevices";

fn open(path: &str) -> Result<u64, NtStatus> {
    nt_open_file(
        path,
        FILE_READ_DATA | FILE_WRITE_DATA | SYNCHRONIZE,
        ::ob::OBJ_CASE_INSENSITIVE,
        FILE_SHARE_READ | FILE_SHARE_WRITE,
        FILE_SYNCHRONOUS_IO_NONALERT,
        Mode::KernelMode,
    )
}

/// `NtReadFile`/`NtWriteFile` of `buf` at `offset` of the device `path`:
/// the bytes moved, or the request's error status.
pub fn volume_transfer(
    path: &str,
    write: bool,
    offset: i64,
    buf: &mut [u8],
) -> Result<usize, NtStatus> {
    let h = open(path)?;
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let r = if write {
        nt_write_file(
            h,
            &args,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            Some(offset),
            0,
        )
    } else {
        nt_read_file(
            h,
            &args,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            Some(offset),
            0,
        )
    };
    crate::ob::handle::nt_close(h);
    match r {
        Ok(s) if s.is_success() => Ok(iosb.Information),
        Ok(s) | Err(s) => Err(s),
    }
}

/// `NtDeviceIoControlFile` on `path`: (status, bytes returned).
fn device_ioctl(path: &str, code: u32, input: &[u8], out: &mut [u8]) -> (NtStatus, usize) {
    let h = match open(path) {
        Ok(h) => h,
        Err(s) => return (s, 0),
    };
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let r = nt_device_io_control_file(
        h,
        &args,
        code,
        input.as_ptr() as *mut _,
        input.len() as u32,
        out.as_mut_ptr().cast(),
        out.len() as u32,
    );
    crate::ob::handle::nt_close(h);
    match r {
        Ok(s) if !s.is_error() => (s, iosb.Information),
        Ok(s) | Err(s) => (s, 0),
    }
}

fn partitions() -> Result<Vec<gpt::Partition>, &'static str> {
    let s = stack().ok_or("the storage stack did not start")?;
    Ok(s.disk.gpt.as_ref().ok_or("no GPT")?.partitions.clone())
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn utf16_bytes(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect()
}

/// `lm`'s list has partmgr.sys, volmgr.sys and mountmgr.sys, and their
/// driver objects exist.
fn t_drivers_loaded() -> TestResult {
    let mods = crate::mm::ldr::loaded_modules();
    for (image, driver) in [
        ("partmgr.sys", "\\Driver\\partmgr"),
        ("volmgr.sys", "\\Driver\\volmgr"),
        ("mountmgr.sys", "\\Driver\\mountmgr"),
    ] {
        check(
            mods.iter()
                .any(|m| m.base_dll_name.eq_ignore_ascii_case(image)),
            "a volume driver is not in the loaded-module list",
        )?;
        check(
            crate::io::driver::find_driver(driver).is_some(),
            "a volume driver has no driver object",
        )?;
    }
    Ok(())
}

/// `!devstack` of DR0: partmgr's filter device is attached directly above
/// disk's DR0 (the disk class's UpperFilters).
fn t_partmgr_filter() -> TestResult {
    let dr0 = crate::io::objects_of(crate::io::IoKind::Device)
        .into_iter()
        .find(|(id, _)| crate::ob::ob_query_name_string(*id) == "\\Device\\Harddisk0\\DR0")
        .map(|(_, body)| body as *mut DEVICE_OBJECT)
        .ok_or("no DR0")?;
    let partmgr = crate::io::driver::find_driver("\\Driver\\partmgr").ok_or("no partmgr")?;
    let disk = crate::io::driver::find_driver("\\Driver\\disk").ok_or("no disk driver")?;
    // SAFETY: DR0 is live; its stack is read as kd reads it.
    unsafe {
        check((*dr0).DriverObject == disk, "DR0 is not disk's")?;
        let above = (*dr0).AttachedDevice;
        check(!above.is_null(), "nothing is attached above DR0")?;
        check(
            (*above).DriverObject == partmgr,
            "the device above DR0 is not partmgr's",
        )?;
        check(
            crate::io::device::attached_to(above) == dr0,
            "partmgr's device is not attached to DR0",
        )?;
        check(
            (*above).Flags & DO_DIRECT_IO != 0 && (*above).StackSize == (*dr0).StackSize + 1,
            "the filter does not look like the disk",
        )?;
    }
    crate::io::kd::kd_devstack("\\Device\\Harddisk0\\DR0");
    Ok(())
}

/// The NTFS boot sector and $MFT record 0 through `\Device\HarddiskVolume2`,
/// `\Device\Harddisk0\Partition2` and `\GLOBAL??\C:` (volmgr's volume over
/// partmgr over DR0).
fn t_ntfs_through_volume2() -> TestResult {
    for name in [
        "\\Device\\HarddiskVolume2",
        "\\Device\\Harddisk0\\Partition2",
        "\\GLOBAL??\\C:",
    ] {
        let mut boot = vec![0u8; 512];
        volume_transfer(name, false, 0, &mut boot).map_err(|_| "reading the boot sector failed")?;
        check(
            &boot[3..11] == b"NTFS    ",
            "no NTFS OEM ID in the volume's boot sector",
        )?;
        let bps = u16::from_le_bytes([boot[0x0B], boot[0x0C]]) as u64;
        let spc = boot[0x0D] as u64;
        let mft_lcn = u64_at(&boot, 0x30);
        check(bps == 512 && spc != 0, "NTFS geometry")?;
        let mut rec = vec![0u8; 1024];
        volume_transfer(name, false, (mft_lcn * bps * spc) as i64, &mut rec)
            .map_err(|_| "reading $MFT record 0 failed")?;
        check(
            &rec[..4] == b"FILE",
            "$MFT record 0 does not start with FILE",
        )?;
    }
    Ok(())
}

/// `\Device\Harddisk0\PartitionN` and `\GLOBAL??\Harddisk0PartitionN` link
/// to `\Device\HarddiskVolumeN` (Windows 10's layout); Partition0 is DR0.
fn t_partition_links() -> TestResult {
    for n in 1..=2u32 {
        let want = alloc::format!("\\Device\\HarddiskVolume{n}");
        check(
            symbolic_link_target(&alloc::format!("\\Device\\Harddisk0\\Partition{n}")).as_deref()
                == Ok(want.as_str()),
            "PartitionN is not a link to HarddiskVolumeN",
        )?;
        check(
            symbolic_link_target(&alloc::format!("\\GLOBAL??\\Harddisk0Partition{n}")).as_deref()
                == Ok(want.as_str()),
            "Harddisk0PartitionN is not a link to HarddiskVolumeN",
        )?;
    }
    check(
        symbolic_link_target("\\Device\\Harddisk0\\Partition0").as_deref()
            == Ok("\\Device\\Harddisk0\\DR0"),
        "Partition0 is not DR0",
    )?;
    check(
        symbolic_link_target("\\Device\\Harddisk0\\Partition3").is_err(),
        "a third partition link exists",
    )
}

/// The volumes' IOCTL answers.
fn t_volume_ioctls() -> TestResult {
    let parts = partitions()?;
    let v2 = "\\Device\\HarddiskVolume2";
    let mut out = vec![0u8; 512];
    let (s, n) = device_ioctl(v2, dk::IOCTL_DISK_GET_PARTITION_INFO_EX, &[], &mut out);
    check(
        s == STATUS_SUCCESS && n == 0x90,
        "GET_PARTITION_INFO_EX on volume 2",
    )?;
    check(
        u64_at(&out, 8) == parts[1].first_lba * 512,
        "StartingOffset",
    )?;
    check(u64_at(&out, 0x10) == SYSTEM_SIZE, "PartitionLength")?;
    check(u32_at(&out, 0x18) == 2, "PartitionNumber")?;
    check(
        out[0x20..0x30] == storage::guid::types::BASIC_DATA.to_bytes()
            && out[0x30..0x40] == parts[1].unique_guid.to_bytes(),
        "PartitionType/PartitionId",
    )?;
    let (s, n) = device_ioctl(
        "\\Device\\HarddiskVolume1",
        dk::IOCTL_DISK_GET_LENGTH_INFO,
        &[],
        &mut out,
    );
    check(
        s == STATUS_SUCCESS && n == 8 && u64_at(&out, 0) == ESP_SIZE,
        "GET_LENGTH_INFO on volume 1",
    )?;
    let (s, n) = device_ioctl(v2, dk::IOCTL_STORAGE_GET_DEVICE_NUMBER, &[], &mut out);
    check(
        s == STATUS_SUCCESS
            && n == 12
            && u32_at(&out, 0) == 7
            && u32_at(&out, 4) == 0
            && u32_at(&out, 8) == 2,
        "STORAGE_GET_DEVICE_NUMBER",
    )?;
    let (s, n) = device_ioctl(v2, dk::IOCTL_MOUNTDEV_QUERY_UNIQUE_ID, &[], &mut out);
    check(
        s == STATUS_SUCCESS && n == 26 && out[..2] == [24, 0],
        "QUERY_UNIQUE_ID",
    )?;
    check(
        out[2..26] == mountmgr::gpt_unique_id(&parts[1].unique_guid),
        "unique ID is not DMIO:ID:<partition GUID>",
    )?;
    let (s, n) = device_ioctl(v2, dk::IOCTL_MOUNTDEV_QUERY_UNIQUE_ID, &[], &mut out[..2]);
    check(
        s == STATUS_BUFFER_OVERFLOW && n == 2 && out[..2] == [24, 0],
        "QUERY_UNIQUE_ID header only",
    )?;
    let (s, _) = device_ioctl(v2, dk::IOCTL_MOUNTDEV_QUERY_DEVICE_NAME, &[], &mut out);
    let name = utf16_bytes(v2);
    check(
        s == STATUS_SUCCESS
            && u16::from_le_bytes([out[0], out[1]]) as usize == name.len()
            && out[2..2 + name.len()] == name[..],
        "QUERY_DEVICE_NAME",
    )?;
    let (s, n) = device_ioctl(v2, IOCTL_MOUNTDEV_QUERY_STABLE_GUID, &[], &mut out);
    check(
        s == STATUS_SUCCESS && n == 16 && out[..16] == parts[1].unique_guid.to_bytes(),
        "QUERY_STABLE_GUID is not the partition GUID",
    )?;
    // Volume disk extents: one extent of disk 0 at the partition's offset.
    let (s, n) = device_ioctl(v2, dk::IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS, &[], &mut out);
    check(
        s == STATUS_SUCCESS
            && n == 0x20
            && u32_at(&out, 0) == 1
            && u32_at(&out, 8) == 0
            && u64_at(&out, 0x10) == parts[1].first_lba * 512
            && u64_at(&out, 0x18) == SYSTEM_SIZE,
        "VOLUME_DISK_EXTENTS",
    )?;
    let (s, _) = device_ioctl(
        v2,
        dk::IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS,
        &[],
        &mut out[..0x1F],
    );
    check(
        s == STATUS_BUFFER_TOO_SMALL,
        "a short VOLUME_DISK_EXTENTS buffer",
    )?;
    let (s, _) = device_ioctl(v2, 0x0007_FFFC, &[], &mut out);
    check(
        s == STATUS_INVALID_DEVICE_REQUEST,
        "an unknown IOCTL on a volume",
    )
}

/// Reads are checked against the volume's extent (not the disk's): past
/// the end, at the end, unaligned are refused; the last sector reads; a
/// zero-length read succeeds.
fn t_volume_extent() -> TestResult {
    let v1 = "\\Device\\HarddiskVolume1";
    let end = ESP_SIZE as i64;
    let mut b = vec![0u8; 1024];
    check(
        volume_transfer(v1, false, end, &mut b[..512]) == Err(STATUS_INVALID_PARAMETER),
        "a read at the volume's end (inside the disk) was not refused",
    )?;
    check(
        volume_transfer(v1, false, end - 512, &mut b[..1024]) == Err(STATUS_INVALID_PARAMETER),
        "a read running past the volume's end",
    )?;
    check(
        volume_transfer(v1, true, end, &mut b[..512]) == Err(STATUS_INVALID_PARAMETER),
        "a write past the volume's end",
    )?;
    check(
        volume_transfer(v1, false, 100, &mut b[..512]) == Err(STATUS_INVALID_PARAMETER),
        "an unaligned volume read",
    )?;
    check(
        volume_transfer(v1, false, end - 512, &mut b[..512]) == Ok(512),
        "the volume's last sector",
    )?;
    // The same bytes through DR0 at the partition's offset.
    let parts = partitions()?;
    let mut d = vec![0u8; 512];
    volume_transfer(
        "\\Device\\Harddisk0\\DR0",
        false,
        (parts[0].last_lba * 512) as i64,
        &mut d,
    )
    .map_err(|_| "DR0 read failed")?;
    check(
        d[..] == b[..512],
        "the volume's last sector is not the partition's",
    )?;
    check(
        volume_transfer(v1, false, 0, &mut b[..0]) == Ok(0),
        "a zero-length volume read",
    )?;
    check(DISK_SIZE > ESP_SIZE + SYSTEM_SIZE + MIB, "image layout")
}

/// volmgr registered and enabled `GUID_DEVINTERFACE_VOLUME` for each volume:
/// `\??\STORAGE#Volume#{disk GUID}#<offset>#{53f5630d-...}` names whose
/// `\GLOBAL??` links reach the volumes; mountmgr is registered for them.
fn t_volume_interfaces() -> TestResult {
    let parts = partitions()?;
    let s = stack().ok_or("no stack")?;
    let disk_guid = s.disk.gpt.as_ref().ok_or("no GPT")?.header.disk_guid;
    let names =
        crate::io::pnp::interface::io_get_device_interfaces(&GUID_DEVINTERFACE_VOLUME, 0, 0);
    check(names.len() == 2, "not two volume interfaces")?;
    for (i, p) in parts.iter().enumerate() {
        let want = alloc::format!(
            "\\??\\STORAGE#Volume#{{{disk_guid}}}#{:016X}#{{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}}",
            p.first_lba * 512
        );
        check(
            names.iter().any(|n| n.eq_ignore_ascii_case(&want)),
            "a volume interface name is not STORAGE#Volume#{disk}#offset#{class}",
        )?;
        let leaf = &want[4..];
        check(
            symbolic_link_target(&alloc::format!("\\GLOBAL??\\{leaf}")).as_deref()
                == Ok(alloc::format!("\\Device\\HarddiskVolume{}", i + 1).as_str()),
            "an interface link does not reach its volume",
        )?;
    }
    check(
        crate::io::pnp::interface::registration_count() >= 1,
        "nobody (mountmgr) is registered for interface arrivals",
    )
}

fn t_mount_manager() -> TestResult {
    use crate::cm::*;
    let parts = partitions()?;
    check(
        symbolic_link_target("\\GLOBAL??\\C:").as_deref() == Ok("\\Device\\HarddiskVolume2"),
        "\\GLOBAL??\\C: is not a link to \\Device\\HarddiskVolume2",
    )?;
    let mut boot = vec![0u8; 512];
    volume_transfer("\\??\\C:", false, 0, &mut boot).map_err(|_| "\\??\\C: does not open")?;
    check(
        &boot[3..11] == b"NTFS    ",
        "\\??\\C: does not reach volume 2",
    )?;
    check(
        symbolic_link_target("\\GLOBAL??\\MountPointManager").as_deref()
            == Ok("\\Device\\MountPointManager"),
        "no \\GLOBAL??\\MountPointManager",
    )?;
    let h = nt_open_key(MOUNTED_DEVICES, KEY_READ, Mode::KernelMode)
        .map_err(|_| "no MountedDevices key")?;
    let mut r = Ok(());
    for (i, p) in parts.iter().enumerate() {
        let leaf = mountmgr::volume_guid_leaf(&p.unique_guid);
        let target = symbolic_link_target(&alloc::format!("\\GLOBAL??\\{leaf}"));
        let want = mountmgr::volume_device_name(i as u32 + 1);
        let id = mountmgr::gpt_unique_id(&p.unique_guid).to_vec();
        let val = nt_query_value_key(h, &alloc::format!("\\??\\{leaf}"), Mode::KernelMode);
        r = r
            .and(check(
                target.as_deref() == Ok(want.as_str()),
                "a Volume{GUID} link is wrong or missing",
            ))
            .and(check(
                val == Ok((REG_BINARY, id)),
                "a \\??\\Volume{GUID} value is wrong or missing",
            ));
    }
    let c = nt_query_value_key(h, "\\DosDevices\\C:", Mode::KernelMode);
    let d = nt_query_value_key(h, "\\DosDevices\\D:", Mode::KernelMode);
    crate::ob::handle::nt_close(h);
    r?;
    check(
        c == Ok((
            REG_BINARY,
            mountmgr::gpt_unique_id(&parts[1].unique_guid).to_vec(),
        )),
        "\\DosDevices\\C: is not DMIO:ID:<system partition GUID>",
    )?;
    check(d.is_err(), "the ESP got a drive letter")
}

/// `IOCTL_MOUNTMGR_QUERY_POINTS` on `\GLOBAL??\MountPointManager`: every
/// point (`\DosDevices\C:` and both `\??\Volume{...}`), each with its
/// unique ID and device; a device-name criterion; a short buffer.
fn t_query_points() -> TestResult {
    let parts = partitions()?;
    let mgr = "\\GLOBAL??\\MountPointManager";
    let all = [0u8; 24];
    let mut out = vec![0u8; 2048];
    let (s, n) = device_ioctl(mgr, IOCTL_MOUNTMGR_QUERY_POINTS, &all, &mut out);
    check(s == STATUS_SUCCESS, "QUERY_POINTS failed")?;
    let size = u32_at(&out, 0) as usize;
    let count = u32_at(&out, 4) as usize;
    check(
        size == n && count == 3,
        "not three mount points (C: and two volume GUIDs)",
    )?;
    let text = |o: usize, l: usize| {
        let u: Vec<u16> = out[o..o + l]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&u)
    };
    let mut seen_c = false;
    for k in 0..count {
        let e = 8 + 24 * k;
        let (lo, ll) = (
            u32_at(&out, e) as usize,
            u16::from_le_bytes([out[e + 4], out[e + 5]]) as usize,
        );
        let (io, il) = (
            u32_at(&out, e + 8) as usize,
            u16::from_le_bytes([out[e + 12], out[e + 13]]) as usize,
        );
        let (dof, dl) = (
            u32_at(&out, e + 16) as usize,
            u16::from_le_bytes([out[e + 20], out[e + 21]]) as usize,
        );
        check(
            lo + ll <= size && io + il <= size && dof + dl <= size,
            "a mount point lies outside the answer",
        )?;
        let link = text(lo, ll);
        let dev = text(dof, dl);
        if link == "\\DosDevices\\C:" {
            seen_c = true;
            check(dev == "\\Device\\HarddiskVolume2", "C:'s device")?;
            check(
                out[io..io + il] == mountmgr::gpt_unique_id(&parts[1].unique_guid),
                "C:'s unique ID",
            )?;
        } else {
            check(
                link.starts_with("\\??\\Volume{"),
                "an unexpected mount point name",
            )?;
        }
    }
    check(seen_c, "no \\DosDevices\\C: mount point")?;
    // Only volume 1's points (its GUID name; the ESP has no letter).
    let dev = utf16_bytes("\\Device\\HarddiskVolume1");
    let mut input = vec![0u8; 24];
    input[16..20].copy_from_slice(&24u32.to_le_bytes());
    input[20..22].copy_from_slice(&(dev.len() as u16).to_le_bytes());
    input.extend_from_slice(&dev);
    let (s, _) = device_ioctl(mgr, IOCTL_MOUNTMGR_QUERY_POINTS, &input, &mut out);
    check(
        s == STATUS_SUCCESS && u32_at(&out, 4) == 1,
        "a device-name criterion",
    )?;
    let (s, n) = device_ioctl(mgr, IOCTL_MOUNTMGR_QUERY_POINTS, &all, &mut out[..32]);
    check(
        s == STATUS_BUFFER_OVERFLOW && n == 32 && u32_at(&out, 0) as usize == size,
        "a short buffer does not get the size with STATUS_BUFFER_OVERFLOW",
    )?;
    let (s, _) = device_ioctl(mgr, IOCTL_MOUNTMGR_QUERY_POINTS, &all[..8], &mut out);
    check(s == STATUS_INVALID_PARAMETER, "a short input")
}
