//! Boot tests of the raw SRB path: `IRP_MJ_SCSI` IRPs carrying a
//! `SCSI_REQUEST_BLOCK` sent straight to storahci.sys's disk PDO (the
//! device disk.sys's DR0 is attached to), as a class driver sends them.

use crate::ktest::{check, Test, TestResult};
use alloc::boxed::Box;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use storage::scsi::STATUS_NONEXISTENT_SECTOR;
use wdk::scsi::*;
use wdk::*;

pub const TESTS: &[Test] = &[
    ("storage.srb.inquiry_read_capacity16", t_inquiry_capacity),
    ("storage.srb.read_beyond_end_sense", t_read_beyond_end),
    ("storage.srb.several_in_flight", t_in_flight),
    ("storage.srb.port_reset_reissues_in_flight", t_port_reset),
];

/// storahci's disk PDO: the device DR0 (disk.sys's FDO) is attached to.
fn disk_pdo() -> Result<*mut DEVICE_OBJECT, &'static str> {
    let dr0 = crate::io::objects_of(crate::io::IoKind::Device)
        .into_iter()
        .find(|(id, _)| crate::ob::ob_query_name_string(*id) == "\\Device\\Harddisk0\\DR0")
        .map(|(_, body)| body as *mut DEVICE_OBJECT)
        .ok_or("no DR0")?;
    // SAFETY: DR0 is live for the system's lifetime.
    let pdo = unsafe { crate::io::device::attached_to(dr0) };
    let storahci = crate::io::driver::find_driver("\\Driver\\storahci").ok_or("no storahci")?;
    // SAFETY: as above.
    if pdo.is_null() || unsafe { (*pdo).DriverObject } != storahci {
        return Err("DR0 is not on storahci's PDO");
    }
    Ok(pdo)
}

/// One SRB with its sense buffer, data buffer, event and status block,
/// boxed so their addresses stay put while the IRP is out.
struct Request {
    srb: SCSI_REQUEST_BLOCK,
    sense: [u8; SENSE_BUFFER_SIZE],
    data: Vec<u8>,
    ev: KEVENT,
    iosb: IO_STATUS_BLOCK,
    status: NtStatus,
}

fn request(cdb: &[u8], len: usize) -> Box<Request> {
    let mut r = Box::new(Request {
        srb: SCSI_REQUEST_BLOCK::new(),
        sense: [0; SENSE_BUFFER_SIZE],
        data: alloc::vec![0u8; len],
        // SAFETY: an all-zero KEVENT is valid before KeInitializeEvent.
        ev: unsafe { core::mem::zeroed() },
        iosb: IO_STATUS_BLOCK::zeroed(),
        status: STATUS_PENDING,
    });
    r.srb.Function = SRB_FUNCTION_EXECUTE_SCSI;
    r.srb.CdbLength = cdb.len() as u8;
    r.srb.Cdb[..cdb.len()].copy_from_slice(cdb);
    r.srb.DataBuffer = r.data.as_mut_ptr().cast();
    r.srb.DataTransferLength = len as u32;
    r.srb.SrbFlags = if len == 0 {
        SRB_FLAGS_NO_DATA_TRANSFER
    } else {
        SRB_FLAGS_DATA_IN
    };
    r.srb.SenseInfoBuffer = r.sense.as_mut_ptr().cast();
    r.srb.SenseInfoBufferLength = SENSE_BUFFER_SIZE as u8;
    r.srb.TimeOutValue = 10;
    // SAFETY: the event is in the boxed request, which outlives its use.
    unsafe { crate::ke::event::ke_initialize_event(&mut r.ev, NOTIFICATION_EVENT, false) };
    r
}

/// Sends `r` to `pdo` without waiting (`IoBuildDeviceIoControlRequest`-
/// style thread request; the I/O manager signals `r.ev`).
fn send(pdo: *mut DEVICE_OBJECT, r: &mut Request) -> Result<(), &'static str> {
    // SAFETY: the PDO is live; the request's fields outlive the IRP (the
    // caller waits for the event before dropping it).
    unsafe {
        let irp = crate::io::irp::build_request(
            IRP_MJ_SCSI,
            pdo,
            core::ptr::null_mut(),
            0,
            None,
            &mut r.ev,
            &mut r.iosb,
            true,
        );
        if irp.is_null() {
            return Err("IRP allocation");
        }
        (*IoGetNextIrpStackLocation(irp)).Parameters.Scsi = ScsiParameters {
            Srb: (&raw mut r.srb).cast(),
        };
        r.status = crate::io::irp::iof_call_driver(pdo, irp);
    }
    Ok(())
}

fn wait(r: &mut Request) {
    if r.status == STATUS_PENDING {
        // SAFETY: the event was initialised by `request` and lives in `r`.
        unsafe {
            crate::ke::event::ke_wait_for_event(
                &mut r.ev,
                ::ke::objects::WaitReason::Executive,
                false,
                false,
                None,
            )
        };
        r.status = r.iosb.Status;
    }
}

fn run(pdo: *mut DEVICE_OBJECT, cdb: &[u8], len: usize) -> Result<Box<Request>, &'static str> {
    let mut r = request(cdb, len);
    send(pdo, &mut r)?;
    wait(&mut r);
    Ok(r)
}

fn read16(lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = SCSIOP_READ16;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// INQUIRY: a direct-access device with ASCII vendor/product strings;
/// READ CAPACITY(16): the last LBA and block size agree with the disk the
/// storage stack knows.
fn t_inquiry_capacity() -> TestResult {
    let pdo = disk_pdo()?;
    let st = crate::storage::stack().ok_or("no storage stack")?;
    let r = run(pdo, &[SCSIOP_INQUIRY, 0, 0, 0, 96, 0], 96)?;
    check(r.status == STATUS_SUCCESS, "INQUIRY status")?;
    check(
        SRB_STATUS(r.srb.SrbStatus) == SRB_STATUS_SUCCESS,
        "INQUIRY SRB status",
    )?;
    let n = r.srb.DataTransferLength as usize;
    check((36..=96).contains(&n), "INQUIRY length")?;
    check(r.data[0] & 0x1F == 0, "peripheral type: direct access")?;
    check(
        r.data[8..32]
            .iter()
            .all(|c| c.is_ascii_graphic() || *c == b' '),
        "vendor/product ASCII",
    )?;
    let mut c = [0u8; 16];
    c[0] = SCSIOP_READ_CAPACITY16;
    c[1] = 0x10;
    c[13] = 32;
    let r = run(pdo, &c, 32)?;
    check(r.status == STATUS_SUCCESS, "READ CAPACITY(16) status")?;
    let last = u64::from_be_bytes(r.data[..8].try_into().unwrap_or_default());
    let bs = u32::from_be_bytes(r.data[8..12].try_into().unwrap_or_default());
    check(bs == st.sector_size(), "block size")?;
    check(
        (last + 1) * bs as u64 == st.disk_bytes(),
        "last LBA matches the disk size",
    )?;
    Ok(())
}

/// READ(16) of the block after the last: CHECK CONDITION with autosense
/// ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (0x05/0x21), SRB
/// status ERROR, nothing transferred, the IRP failed with
/// STATUS_NONEXISTENT_SECTOR (classpnp's reading of that sense).
fn t_read_beyond_end() -> TestResult {
    let pdo = disk_pdo()?;
    let st = crate::storage::stack().ok_or("no storage stack")?;
    let ss = st.sector_size();
    let end = st.disk_bytes() / ss as u64;
    let r = run(pdo, &read16(end, 1), ss as usize)?;
    check(
        SRB_STATUS(r.srb.SrbStatus) == SRB_STATUS_ERROR,
        "SRB status ERROR",
    )?;
    check(
        r.srb.SrbStatus & SRB_STATUS_AUTOSENSE_VALID != 0,
        "autosense valid",
    )?;
    check(
        r.srb.ScsiStatus == SCSISTAT_CHECK_CONDITION,
        "CHECK CONDITION",
    )?;
    check(
        r.sense[0] & 0x7F == 0x70 && r.sense[2] & 0x0F == 0x05 && r.sense[12] == 0x21,
        "sense ILLEGAL REQUEST / LBA OUT OF RANGE",
    )?;
    check(r.srb.DataTransferLength == 0, "nothing transferred")?;
    check(r.status == STATUS_NONEXISTENT_SECTOR, "IRP status")?;
    // Straddling the end (last block + one past it) fails the same way.
    let r = run(pdo, &read16(end - 1, 2), 2 * ss as usize)?;
    check(
        r.status == STATUS_NONEXISTENT_SECTOR && r.sense[12] == 0x21,
        "straddling read",
    )?;
    Ok(())
}

/// Eight READ(16)s of different 4 KiB pieces sent before any is waited for:
/// the port has several commands in its slots at once; each one's data is
/// what DR0 returns for the same bytes.
fn t_in_flight() -> TestResult {
    let pdo = disk_pdo()?;
    let st = crate::storage::stack().ok_or("no storage stack")?;
    let ss = st.sector_size() as u64;
    let per = 4096 / ss;
    let mut reqs: Vec<Box<Request>> = Vec::new();
    for i in 0..8u64 {
        let lba = 34 + i * 37 * per;
        let mut r = request(&read16(lba, per as u32), 4096);
        send(pdo, &mut r)?;
        reqs.push(r);
    }
    let pending = reqs.iter().filter(|r| r.status == STATUS_PENDING).count();
    for r in reqs.iter_mut() {
        wait(r);
    }
    check(pending >= 2, "several SRBs pending at once")?;
    for (i, r) in reqs.iter().enumerate() {
        check(
            r.status == STATUS_SUCCESS && r.srb.DataTransferLength == 4096,
            "SRB read",
        )?;
        let lba = 34 + i as u64 * 37 * per;
        let mut via_dr0 = alloc::vec![0u8; 4096];
        st.read(super::Device::Disk(0), (lba * ss) as i64, &mut via_dr0)
            .map_err(|_| "read through DR0")?;
        check(r.data == via_dr0, "SRB data equals DR0's")?;
    }
    Ok(())
}

/// A port reset asked for while reads are in flight
/// (`SRB_FUNCTION_RESET_DEVICE` straight to storahci's PDO: the port's
/// engine stops, COMRESET, start): the reset succeeds and every read
/// completes with DR0's data; then `IOCTL_STORAGE_RESET_DEVICE` through
/// DR0 (disk.sys sends the SRB) succeeds and the disk still reads.
fn t_port_reset() -> TestResult {
    let pdo = disk_pdo()?;
    let st = crate::storage::stack().ok_or("no storage stack")?;
    let ss = st.sector_size() as u64;
    let per = 4096 / ss;
    let mut reqs: Vec<Box<Request>> = Vec::new();
    for i in 0..6u64 {
        let lba = 34 + i * 53 * per;
        let mut r = request(&read16(lba, per as u32), 4096);
        send(pdo, &mut r)?;
        reqs.push(r);
    }
    let mut reset = request(&[], 0);
    reset.srb.Function = SRB_FUNCTION_RESET_DEVICE;
    send(pdo, &mut reset)?;
    wait(&mut reset);
    for r in reqs.iter_mut() {
        wait(r);
    }
    check(
        reset.status == STATUS_SUCCESS && reset.srb.SrbStatus == SRB_STATUS_SUCCESS,
        "the reset SRB succeeds",
    )?;
    for (i, r) in reqs.iter().enumerate() {
        check(
            r.status == STATUS_SUCCESS && r.srb.DataTransferLength == 4096,
            "a read in flight across the reset",
        )?;
        let lba = 34 + i as u64 * 53 * per;
        let mut via_dr0 = alloc::vec![0u8; 4096];
        st.read(super::Device::Disk(0), (lba * ss) as i64, &mut via_dr0)
            .map_err(|_| "read through DR0")?;
        check(r.data == via_dr0, "data after the reset equals DR0's")?;
    }
    let (s, _) = st.ioctl(
        super::Device::Disk(0),
        wdk::disk::IOCTL_STORAGE_RESET_DEVICE,
        &mut [],
    );
    check(
        s == STATUS_SUCCESS,
        "IOCTL_STORAGE_RESET_DEVICE through DR0",
    )?;
    let mut gpt = alloc::vec![0u8; ss as usize];
    st.read(super::Device::Disk(0), ss as i64, &mut gpt)
        .map_err(|_| "read after the IOCTL reset")?;
    check(&gpt[..8] == b"EFI PART", "the GPT header after the reset")?;
    Ok(())
}
