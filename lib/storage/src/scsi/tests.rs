use super::*;
use crate::ahci::ata;

fn disk(sectors: u64) -> Identify {
    Identify {
        model: "QEMU HARDDISK".into(),
        serial: "QM00001".into(),
        firmware: "2.5+".into(),
        lba48: true,
        sectors,
        sector_size: 512,
    }
}

fn cdb10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn cdb16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[test]
fn read_write_10_and_16_become_dma_ext() {
    let id = disk(1 << 20);
    match translate(&cdb10(SCSIOP_READ, 34, 8), &id, 4096) {
        Action::Ata { fis, write, bytes } => {
            assert_eq!(fis.command, ata::READ_DMA_EXT);
            assert_eq!((fis.lba, fis.count, write, bytes), (34, 8, false, 4096));
        }
        a => panic!("{a:?}"),
    }
    match translate(&cdb16(SCSIOP_WRITE16, 0xF_0000, 2), &id, 1024) {
        Action::Ata { fis, write, bytes } => {
            assert_eq!(fis.command, ata::WRITE_DMA_EXT);
            assert_eq!(
                (fis.lba, fis.count, write, bytes),
                (0xF_0000, 2, true, 1024)
            );
        }
        a => panic!("{a:?}"),
    }
    // Zero blocks: nothing to do.
    assert_eq!(translate(&cdb10(SCSIOP_READ, 5, 0), &id, 0), Action::Good);
}

#[test]
fn out_of_range_and_bad_transfers() {
    let id = disk(1000);
    assert_eq!(
        translate(&cdb10(SCSIOP_READ, 999, 2), &id, 1024),
        Action::Check(Sense::LBA_OUT_OF_RANGE)
    );
    assert_eq!(
        translate(&cdb16(SCSIOP_READ16, u64::MAX, 1), &id, 512),
        Action::Check(Sense::LBA_OUT_OF_RANGE)
    );
    assert!(matches!(
        translate(&cdb10(SCSIOP_READ, 999, 1), &id, 512),
        Action::Ata { .. }
    ));
    // The data buffer is smaller than the blocks asked for.
    assert_eq!(
        translate(&cdb10(SCSIOP_READ, 0, 2), &id, 512),
        Action::Reject(SRB_STATUS_DATA_OVERRUN)
    );
    // More than one ATA command can move.
    let big = disk(1 << 30);
    assert_eq!(
        translate(&cdb16(SCSIOP_READ16, 0, 0x1_0000), &big, u32::MAX),
        Action::Check(Sense::INVALID_CDB)
    );
    // Short CDB, empty CDB, unknown opcode.
    assert_eq!(
        translate(&[SCSIOP_READ, 0, 0], &id, 0),
        Action::Reject(SRB_STATUS_INVALID_REQUEST)
    );
    assert_eq!(
        translate(&[], &id, 0),
        Action::Reject(SRB_STATUS_INVALID_REQUEST)
    );
    assert_eq!(
        translate(&[0xC7, 0, 0, 0, 0, 0], &id, 0),
        Action::Check(Sense::INVALID_OPCODE)
    );
}

#[test]
fn inquiry_and_vpd_pages() {
    let id = disk(1000);
    let Action::Data(d) = translate(&[SCSIOP_INQUIRY, 0, 0, 0, 36, 0], &id, 36) else {
        panic!()
    };
    assert_eq!(d.len(), 36);
    assert_eq!(d[0], DIRECT_ACCESS_DEVICE);
    assert_eq!(d[4], 31);
    assert_eq!(&d[8..16], b"QEMU    ");
    assert_eq!(&d[16..32], b"HARDDISK        ");
    assert_eq!(&d[32..36], b"2.5+");
    // Allocation length cuts the answer.
    let Action::Data(d) = translate(&[SCSIOP_INQUIRY, 0, 0, 0, 5, 0], &id, 36) else {
        panic!()
    };
    assert_eq!(d.len(), 5);
    let Action::Data(d) = translate(&[SCSIOP_INQUIRY, 1, 0x80, 0, 255, 0], &id, 255) else {
        panic!()
    };
    assert_eq!(&d[4..], b"QM00001");
    assert_eq!(d[3], 7);
    let Action::Data(d) = translate(&[SCSIOP_INQUIRY, 1, 0, 0, 255, 0], &id, 255) else {
        panic!()
    };
    assert_eq!(&d[4..], &[0x00, 0x80]);
    assert_eq!(
        translate(&[SCSIOP_INQUIRY, 1, 0x83, 0, 255, 0], &id, 255),
        Action::Check(Sense::INVALID_CDB)
    );
    assert_eq!(
        translate(&[SCSIOP_INQUIRY, 0, 0x80, 0, 255, 0], &id, 255),
        Action::Check(Sense::INVALID_CDB)
    );
    // A model without a short first word: vendor "ATA".
    let mut long = disk(10);
    long.model = "VERYLONGVENDOR X".into();
    let (v, p, _) = inquiry_strings(&long);
    assert_eq!(&v, b"ATA     ");
    assert_eq!(&p, b"VERYLONGVENDOR X");
}

#[test]
fn read_capacity_10_and_16() {
    let id = disk(0x1_2345_6789);
    let mut c = [0u8; 10];
    c[0] = SCSIOP_READ_CAPACITY;
    let Action::Data(d) = translate(&c, &id, 8) else {
        panic!()
    };
    // Too large for 32 bits: 0xFFFFFFFF tells the class driver to use (16).
    assert_eq!(d, [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 2, 0]);
    let mut c = [0u8; 16];
    c[0] = SCSIOP_READ_CAPACITY16;
    c[1] = SERVICE_ACTION_READ_CAPACITY16;
    c[13] = 32;
    let Action::Data(d) = translate(&c, &id, 32) else {
        panic!()
    };
    assert_eq!(d.len(), 32);
    assert_eq!(&d[..8], &0x1_2345_6788u64.to_be_bytes());
    assert_eq!(&d[8..12], &512u32.to_be_bytes());
    c[1] = 0x11;
    assert_eq!(translate(&c, &id, 32), Action::Check(Sense::INVALID_CDB));
    let small = disk(2048);
    let mut c = [0u8; 10];
    c[0] = SCSIOP_READ_CAPACITY;
    assert_eq!(
        translate(&c, &small, 8),
        Action::Data([0, 0, 7, 0xFF, 0, 0, 2, 0].to_vec())
    );
}

#[test]
fn tur_sync_cache_mode_sense_request_sense() {
    let id = disk(100);
    assert_eq!(translate(&[0; 6], &id, 0), Action::Good);
    let mut c = [0u8; 10];
    c[0] = SCSIOP_SYNCHRONIZE_CACHE;
    match translate(&c, &id, 0) {
        Action::Ata { fis, bytes, .. } => {
            assert_eq!(fis.command, ata::FLUSH_CACHE_EXT);
            assert_eq!(bytes, 0);
        }
        a => panic!("{a:?}"),
    }
    assert_eq!(
        translate(&[SCSIOP_MODE_SENSE, 0, 0x3F, 0, 255, 0], &id, 255),
        Action::Data([3, 0, 0, 0].to_vec())
    );
    assert_eq!(
        translate(&[SCSIOP_MODE_SENSE, 0, 0x08, 0, 255, 0], &id, 255),
        Action::Check(Sense::INVALID_CDB)
    );
    let Action::Data(d) = translate(&[SCSIOP_REQUEST_SENSE, 0, 0, 0, 18, 0], &id, 18) else {
        panic!()
    };
    assert_eq!(Sense::from_bytes(&d).unwrap().key, SCSI_SENSE_NO_SENSE);
}

#[test]
fn ata_errors_to_sense_and_status() {
    use crate::ahci::reg::*;
    let unc = PortError::Device(IS_TFES, (ATA_ERR_UNC << 8) | 0x51);
    let (st, sense) = port_error(&unc);
    assert_eq!(st, SRB_STATUS_ERROR);
    assert_eq!(sense, Some(Sense::UNRECOVERED_READ));
    assert_eq!(
        srb_ntstatus(st | SRB_STATUS_AUTOSENSE_VALID, sense),
        STATUS_DEVICE_DATA_ERROR
    );
    let idnf = PortError::Device(IS_TFES, ((ATA_ERR_IDNF | ATA_ERR_ABRT) << 8) | 0x51);
    let (st, sense) = port_error(&idnf);
    assert_eq!(sense, Some(Sense::LBA_OUT_OF_RANGE));
    assert_eq!(srb_ntstatus(st, sense), STATUS_NONEXISTENT_SECTOR);
    assert_eq!(
        port_error(&PortError::Device(IS_TFES, 0x8051)),
        (SRB_STATUS_ERROR, Some(Sense::ABORTED))
    );
    assert_eq!(port_error(&PortError::Timeout), (SRB_STATUS_TIMEOUT, None));
    assert_eq!(srb_ntstatus(SRB_STATUS_TIMEOUT, None), STATUS_IO_TIMEOUT);
    assert_eq!(
        srb_ntstatus(SRB_STATUS_NO_DEVICE, None),
        STATUS_NO_SUCH_DEVICE
    );
    assert_eq!(
        srb_ntstatus(SRB_STATUS_ERROR, Some(Sense::INVALID_CDB)),
        STATUS_INVALID_DEVICE_REQUEST
    );
    assert_eq!(srb_ntstatus(SRB_STATUS_SUCCESS, None), STATUS_SUCCESS);
    // Sense bytes round trip in the SENSE_DATA layout.
    let b = Sense::UNRECOVERED_READ.to_bytes();
    assert_eq!((b[0], b[2], b[7], b[12], b[13]), (0x70, 3, 10, 0x11, 0));
    assert_eq!(Sense::from_bytes(&b), Some(Sense::UNRECOVERED_READ));
    assert_eq!(Sense::from_bytes(&[0u8; 18]), None);
}

#[test]
fn disk_pnp_ids() {
    let (v, p, r) = inquiry_strings(&disk(1));
    let (dev, hw, compat) = disk_ids(&v, &p, &r);
    assert_eq!(dev, "SCSI\\Disk&Ven_QEMU&Prod_HARDDISK");
    assert_eq!(
        hw,
        [
            "SCSI\\DiskQEMU____HARDDISK________2.5+",
            "SCSI\\DiskQEMU____HARDDISK________",
            "SCSI\\DiskQEMU____",
            "SCSI\\QEMU____HARDDISK________2",
            "QEMU____HARDDISK________2",
            "GenDisk",
        ]
    );
    assert_eq!(compat, ["SCSI\\Disk", "SCSI\\RAW"]);
    assert_eq!(instance_id(0, 0, 0), "000000");
    assert_eq!(instance_id(3, 0, 0), "030000");
}
