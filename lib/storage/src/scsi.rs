//! SCSI-to-ATA translation (what storahci does for a SATA disk, in the
//! manner of SAT, SCSI/ATA Translation): the CDB of an `IRP_MJ_SCSI`
//! request becomes an ATA command for the AHCI port or is answered from the
//! IDENTIFY DEVICE data; ATA errors become an SRB status and sense data;
//! the class driver turns SRB status and sense into an NTSTATUS. Also the
//! PnP identifiers of a disk (`IRP_MN_QUERY_ID` on the port's disk PDO),
//! formed from the INQUIRY vendor/product/revision as Windows' storport
//! forms them.

use crate::ahci::{H2dFis, Identify, PortError};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use wdk::scsi::*;

/// `STATUS_NONEXISTENT_SECTOR`.
pub const STATUS_NONEXISTENT_SECTOR: NtStatus = NtStatus::from_u32(0xC000_0015);

/// Sense key, additional sense code and qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    /// `SCSI_SENSE_*`.
    pub key: u8,
    /// `SCSI_ADSENSE_*`.
    pub asc: u8,
    /// Qualifier.
    pub ascq: u8,
}

impl Sense {
    /// ILLEGAL REQUEST / INVALID FIELD IN CDB.
    pub const INVALID_CDB: Sense = Sense {
        key: SCSI_SENSE_ILLEGAL_REQUEST,
        asc: SCSI_ADSENSE_INVALID_CDB,
        ascq: 0,
    };
    /// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
    pub const INVALID_OPCODE: Sense = Sense {
        key: SCSI_SENSE_ILLEGAL_REQUEST,
        asc: SCSI_ADSENSE_ILLEGAL_COMMAND,
        ascq: 0,
    };
    /// ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const LBA_OUT_OF_RANGE: Sense = Sense {
        key: SCSI_SENSE_ILLEGAL_REQUEST,
        asc: SCSI_ADSENSE_ILLEGAL_BLOCK,
        ascq: 0,
    };
    /// MEDIUM ERROR / UNRECOVERED READ ERROR.
    pub const UNRECOVERED_READ: Sense = Sense {
        key: SCSI_SENSE_MEDIUM_ERROR,
        asc: SCSI_ADSENSE_UNRECOVERED_ERROR,
        ascq: 0,
    };
    /// ABORTED COMMAND, no additional code.
    pub const ABORTED: Sense = Sense {
        key: SCSI_SENSE_ABORTED_COMMAND,
        asc: 0,
        ascq: 0,
    };

    /// Fixed-format `SENSE_DATA` (response code 0x70, additional length 10).
    pub fn to_sense_data(&self) -> SENSE_DATA {
        SENSE_DATA {
            ErrorCode: SCSI_SENSE_ERRORCODE_FIXED_CURRENT,
            SenseKey: self.key & 0xF,
            AdditionalSenseLength: (SENSE_BUFFER_SIZE - 8) as u8,
            AdditionalSenseCode: self.asc,
            AdditionalSenseCodeQualifier: self.ascq,
            ..Default::default()
        }
    }

    /// The sense in the 18 bytes of a `SENSE_DATA`.
    pub fn to_bytes(&self) -> [u8; SENSE_BUFFER_SIZE] {
        let d = self.to_sense_data();
        let mut b = [0u8; SENSE_BUFFER_SIZE];
        b[0] = d.ErrorCode;
        b[2] = d.SenseKey;
        b[7] = d.AdditionalSenseLength;
        b[12] = d.AdditionalSenseCode;
        b[13] = d.AdditionalSenseCodeQualifier;
        b
    }

    /// Parses the key/ASC/ASCQ of fixed-format sense bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Sense> {
        if b.len() < 14 || b[0] & 0x7E != 0x70 {
            return None;
        }
        Some(Sense {
            key: b[2] & 0xF,
            asc: b[12],
            ascq: b[13],
        })
    }
}

/// What the port does for a CDB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answered from what the port knows: copy these bytes (at most the
    /// SRB's `DataTransferLength`) to the data buffer.
    Data(Vec<u8>),
    /// Success without data (TEST UNIT READY, a zero-block transfer).
    Good,
    /// Issue this ATA command moving `bytes` bytes (`write`: to the device).
    Ata {
        /// The command.
        fis: H2dFis,
        /// Data direction.
        write: bool,
        /// Bytes moved.
        bytes: u32,
    },
    /// CHECK CONDITION with this sense (`SRB_STATUS_ERROR`).
    Check(Sense),
    /// The request itself is malformed: complete with this SRB status.
    Reject(u8),
}

/// The INQUIRY vendor (8), product (16) and revision (4) of an ATA disk:
/// the model's first word is the vendor when it fits 8 characters (as
/// Windows shows `WDC`, `QEMU`), else `ATA` (SAT's vendor); the product is
/// the rest of the model; the revision is the firmware's first 4 characters.
pub fn inquiry_strings(id: &Identify) -> ([u8; 8], [u8; 16], [u8; 4]) {
    let mut vendor = [b' '; 8];
    let mut product = [b' '; 16];
    let mut rev = [b' '; 4];
    let model = id.model.as_str();
    let (v, p) = match model.split_once(' ') {
        Some((v, p)) if !v.is_empty() && v.len() <= 8 => (v, p.trim_start()),
        _ => ("ATA", model),
    };
    let put = |dst: &mut [u8], s: &str| {
        for (d, c) in dst.iter_mut().zip(s.bytes()) {
            *d = if c.is_ascii_graphic() { c } else { b' ' };
        }
    };
    put(&mut vendor, v);
    put(&mut product, p);
    put(&mut rev, &id.firmware);
    (vendor, product, rev)
}

/// Standard INQUIRY data (36 bytes): a direct-access device, not removable,
/// SPC-3, response data format 2.
pub fn inquiry_data(id: &Identify) -> [u8; INQUIRYDATABUFFERSIZE] {
    let (v, p, r) = inquiry_strings(id);
    let mut d = [0u8; INQUIRYDATABUFFERSIZE];
    d[0] = DIRECT_ACCESS_DEVICE;
    d[2] = 0x05;
    d[3] = 0x02;
    d[4] = (INQUIRYDATABUFFERSIZE - 5) as u8;
    d[8..16].copy_from_slice(&v);
    d[16..32].copy_from_slice(&p);
    d[32..36].copy_from_slice(&r);
    d
}

fn be16(b: &[u8]) -> u32 {
    u16::from_be_bytes([b[0], b[1]]) as u32
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Most blocks one ATA command moves here (the 16-bit count; 0 would mean
/// 65536 and is never sent).
pub const MAX_BLOCKS: u32 = 0xFFFF;

fn rw(id: &Identify, write: bool, lba: u64, blocks: u32, transfer: u32) -> Action {
    if blocks == 0 {
        return Action::Good;
    }
    if lba
        .checked_add(blocks as u64)
        .is_none_or(|end| end > id.sectors)
    {
        return Action::Check(Sense::LBA_OUT_OF_RANGE);
    }
    let Some(bytes) = blocks.checked_mul(id.sector_size) else {
        return Action::Reject(SRB_STATUS_INVALID_REQUEST);
    };
    if blocks > MAX_BLOCKS || (!id.lba48 && lba + blocks as u64 > 1 << 28) {
        return Action::Check(Sense::INVALID_CDB);
    }
    if bytes > transfer {
        return Action::Reject(SRB_STATUS_DATA_OVERRUN);
    }
    Action::Ata {
        fis: H2dFis::dma_ext(write, lba, blocks as u16),
        write,
        bytes,
    }
}

/// Translates `cdb` for the disk `id` whose SRB gives `transfer` bytes of
/// data buffer.
pub fn translate(cdb: &[u8], id: &Identify, transfer: u32) -> Action {
    let Some(&op) = cdb.first() else {
        return Action::Reject(SRB_STATUS_INVALID_REQUEST);
    };
    let need = match op {
        SCSIOP_TEST_UNIT_READY | SCSIOP_INQUIRY | SCSIOP_MODE_SENSE | SCSIOP_REQUEST_SENSE => 6,
        SCSIOP_READ
        | SCSIOP_WRITE
        | SCSIOP_READ_CAPACITY
        | SCSIOP_SYNCHRONIZE_CACHE
        | SCSIOP_MODE_SENSE10 => 10,
        SCSIOP_READ16 | SCSIOP_WRITE16 | SCSIOP_READ_CAPACITY16 | SCSIOP_SYNCHRONIZE_CACHE16 => 16,
        _ => return Action::Check(Sense::INVALID_OPCODE),
    };
    if cdb.len() < need {
        return Action::Reject(SRB_STATUS_INVALID_REQUEST);
    }
    match op {
        SCSIOP_TEST_UNIT_READY => Action::Good,
        SCSIOP_REQUEST_SENSE => {
            // No deferred errors are kept: NO SENSE (autosense carries errors).
            let s = Sense {
                key: SCSI_SENSE_NO_SENSE,
                asc: 0,
                ascq: 0,
            };
            let n = (cdb[4] as usize).min(SENSE_BUFFER_SIZE);
            Action::Data(s.to_bytes()[..n].to_vec())
        }
        SCSIOP_INQUIRY => {
            let alloc_len = be16(&cdb[3..5]) as usize;
            let evpd = cdb[1] & 1 != 0;
            let data: Vec<u8> = match (evpd, cdb[2]) {
                (false, 0) => inquiry_data(id).to_vec(),
                (false, _) => return Action::Check(Sense::INVALID_CDB),
                // Supported VPD pages: 0x00 and 0x80.
                (true, 0x00) => vec![DIRECT_ACCESS_DEVICE, 0x00, 0, 2, 0x00, 0x80],
                // Unit serial number: IDENTIFY's serial number.
                (true, 0x80) => {
                    let s = id.serial.as_bytes();
                    let mut d = vec![DIRECT_ACCESS_DEVICE, 0x80, 0, s.len().min(255) as u8];
                    d.extend_from_slice(&s[..s.len().min(255)]);
                    d
                }
                (true, _) => return Action::Check(Sense::INVALID_CDB),
            };
            Action::Data(data[..data.len().min(alloc_len)].to_vec())
        }
        SCSIOP_READ_CAPACITY => {
            let last = (id.sectors - 1).min(0xFFFF_FFFF) as u32;
            let mut d = Vec::with_capacity(8);
            d.extend_from_slice(&last.to_be_bytes());
            d.extend_from_slice(&id.sector_size.to_be_bytes());
            Action::Data(d)
        }
        SCSIOP_READ_CAPACITY16 => {
            if cdb[1] & 0x1F != SERVICE_ACTION_READ_CAPACITY16 {
                return Action::Check(Sense::INVALID_CDB);
            }
            let alloc_len = be32(&cdb[10..14]) as usize;
            let mut d = vec![0u8; 32];
            d[..8].copy_from_slice(&(id.sectors - 1).to_be_bytes());
            d[8..12].copy_from_slice(&id.sector_size.to_be_bytes());
            d.truncate(alloc_len);
            Action::Data(d)
        }
        SCSIOP_MODE_SENSE | SCSIOP_MODE_SENSE10 => {
            // Only "all pages" is answered, with the header alone (no block
            // descriptor, no pages, not write protected); other pages are
            // not implemented.
            if cdb[2] & 0x3F != 0x3F {
                return Action::Check(Sense::INVALID_CDB);
            }
            if op == SCSIOP_MODE_SENSE {
                let n = (cdb[4] as usize).min(4);
                Action::Data(vec![3, 0, 0, 0][..n].to_vec())
            } else {
                let n = (be16(&cdb[7..9]) as usize).min(8);
                Action::Data(vec![0, 6, 0, 0, 0, 0, 0, 0][..n].to_vec())
            }
        }
        SCSIOP_READ | SCSIOP_WRITE => rw(
            id,
            op == SCSIOP_WRITE,
            be32(&cdb[2..6]) as u64,
            be16(&cdb[7..9]),
            transfer,
        ),
        SCSIOP_READ16 | SCSIOP_WRITE16 => rw(
            id,
            op == SCSIOP_WRITE16,
            be64(&cdb[2..10]),
            be32(&cdb[10..14]),
            transfer,
        ),
        SCSIOP_SYNCHRONIZE_CACHE | SCSIOP_SYNCHRONIZE_CACHE16 => Action::Ata {
            fis: H2dFis::flush(),
            write: false,
            bytes: 0,
        },
        _ => Action::Check(Sense::INVALID_OPCODE),
    }
}

/// The SRB status and sense for a failed ATA command: UNC → MEDIUM ERROR /
/// UNRECOVERED READ ERROR, IDNF → ILLEGAL REQUEST / LBA OUT OF RANGE, other
/// device errors → ABORTED COMMAND; a timeout, a missing device and a
/// request the port cannot express have SRB statuses of their own.
pub fn port_error(e: &PortError) -> (u8, Option<Sense>) {
    use crate::ahci::reg::{ATA_ERR_IDNF, ATA_ERR_UNC};
    match e {
        PortError::Device(_, tfd) if (tfd >> 8) & ATA_ERR_UNC != 0 => {
            (SRB_STATUS_ERROR, Some(Sense::UNRECOVERED_READ))
        }
        PortError::Device(_, tfd) if (tfd >> 8) & ATA_ERR_IDNF != 0 => {
            (SRB_STATUS_ERROR, Some(Sense::LBA_OUT_OF_RANGE))
        }
        PortError::Device(..) => (SRB_STATUS_ERROR, Some(Sense::ABORTED)),
        PortError::Timeout => (SRB_STATUS_TIMEOUT, None),
        PortError::NoDevice => (SRB_STATUS_NO_DEVICE, None),
        PortError::BadRequest => (SRB_STATUS_INVALID_REQUEST, None),
    }
}

/// The class driver's NTSTATUS for a completed SRB (`ClassInterpretSenseInfo`
/// reduced to the cases the port produces): SUCCESS; sense MEDIUM ERROR →
/// `STATUS_DEVICE_DATA_ERROR`, ILLEGAL REQUEST with LBA OUT OF RANGE →
/// `STATUS_NONEXISTENT_SECTOR`, other ILLEGAL REQUEST →
/// `STATUS_INVALID_DEVICE_REQUEST`, other sense → `STATUS_IO_DEVICE_ERROR`;
/// TIMEOUT → `STATUS_IO_TIMEOUT`, NO_DEVICE → `STATUS_NO_SUCH_DEVICE`,
/// INVALID_REQUEST → `STATUS_INVALID_DEVICE_REQUEST`, DATA_OVERRUN →
/// `STATUS_BUFFER_OVERFLOW`... as classpnp does, else `STATUS_IO_DEVICE_ERROR`.
pub fn srb_ntstatus(srb_status: u8, sense: Option<Sense>) -> NtStatus {
    match SRB_STATUS(srb_status) {
        SRB_STATUS_SUCCESS => STATUS_SUCCESS,
        SRB_STATUS_ERROR => match sense {
            Some(s) if s.key == SCSI_SENSE_MEDIUM_ERROR => STATUS_DEVICE_DATA_ERROR,
            Some(s)
                if s.key == SCSI_SENSE_ILLEGAL_REQUEST && s.asc == SCSI_ADSENSE_ILLEGAL_BLOCK =>
            {
                STATUS_NONEXISTENT_SECTOR
            }
            Some(s) if s.key == SCSI_SENSE_ILLEGAL_REQUEST => STATUS_INVALID_DEVICE_REQUEST,
            _ => STATUS_IO_DEVICE_ERROR,
        },
        SRB_STATUS_TIMEOUT | SRB_STATUS_COMMAND_TIMEOUT => STATUS_IO_TIMEOUT,
        SRB_STATUS_NO_DEVICE => STATUS_NO_SUCH_DEVICE,
        SRB_STATUS_INVALID_REQUEST | SRB_STATUS_BAD_FUNCTION => STATUS_INVALID_DEVICE_REQUEST,
        SRB_STATUS_DATA_OVERRUN => STATUS_DATA_OVERRUN,
        _ => STATUS_IO_DEVICE_ERROR,
    }
}

fn id_chars(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c == b' ' || !c.is_ascii_graphic() || c == b',' {
                '_'
            } else {
                c as char
            }
        })
        .collect()
}

/// The disk PDO's `IRP_MN_QUERY_ID` answers from INQUIRY's strings, as
/// storport forms them for a disk: the device ID
/// `SCSI\Disk&Ven_<v>&Prod_<p>`, the hardware IDs
/// `SCSI\Disk<v8><p16><r4>`, `SCSI\Disk<v8><p16>`, `SCSI\Disk<v8>`,
/// `SCSI\<v8><p16><r1>`, `<v8><p16><r1>`, `GenDisk`, and the compatible
/// IDs `SCSI\Disk`, `SCSI\RAW` (spaces as `_`).
pub fn disk_ids(v: &[u8; 8], p: &[u8; 16], r: &[u8; 4]) -> (String, Vec<String>, Vec<String>) {
    let (v8, p16, r4) = (id_chars(v), id_chars(p), id_chars(r));
    let trim = |s: &[u8]| id_chars(String::from_utf8_lossy(s).trim_end().as_bytes());
    let device = format!("SCSI\\Disk&Ven_{}&Prod_{}", trim(v), trim(p));
    let hw = vec![
        format!("SCSI\\Disk{v8}{p16}{r4}"),
        format!("SCSI\\Disk{v8}{p16}"),
        format!("SCSI\\Disk{v8}"),
        format!("SCSI\\{v8}{p16}{}", &r4[..1]),
        format!("{v8}{p16}{}", &r4[..1]),
        String::from("GenDisk"),
    ];
    let compat = vec![String::from("SCSI\\Disk"), String::from("SCSI\\RAW")];
    (device, hw, compat)
}

/// A disk PDO's instance ID: path (the AHCI port), target and LUN as two
/// hex digits each, as storport reports them (`000000` for port 0).
pub fn instance_id(path: u8, target: u8, lun: u8) -> String {
    format!("{path:02X}{target:02X}{lun:02X}")
}

#[cfg(test)]
mod tests;
