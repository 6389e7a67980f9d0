//! The SCSI request interface between class and port drivers (srb.h,
//! scsi.h, ntddstor.h): `SCSI_REQUEST_BLOCK` in its Windows x64 layout
//! (0x58 bytes: two pointers' worth of padding after the status union on
//! 64-bit), `SENSE_DATA` (fixed format, 18 bytes), the CDB operation codes
//! the disk class driver sends, `SRB_FUNCTION_*`, `SRB_STATUS_*`,
//! `SRB_FLAGS_*`, SCSI status bytes, sense keys and additional sense codes,
//! and the `CONFIGURATION_INFORMATION` record (ntddk.h) whose `DiskCount`
//! numbers disks. Offsets are checked at compile time.

#![allow(non_upper_case_globals)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

/// `SCSI_REQUEST_BLOCK` (srb.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SCSI_REQUEST_BLOCK {
    pub Length: u16,
    pub Function: u8,
    pub SrbStatus: u8,
    pub ScsiStatus: u8,
    pub PathId: u8,
    pub TargetId: u8,
    pub Lun: u8,
    pub QueueTag: u8,
    pub QueueAction: u8,
    pub CdbLength: u8,
    pub SenseInfoBufferLength: u8,
    pub SrbFlags: u32,
    pub DataTransferLength: u32,
    pub TimeOutValue: u32,
    pub DataBuffer: *mut c_void,
    pub SenseInfoBuffer: *mut c_void,
    pub NextSrb: *mut SCSI_REQUEST_BLOCK,
    pub OriginalRequest: *mut c_void,
    pub SrbExtension: *mut c_void,
    /// `InternalStatus` / `QueueSortKey` / `LinkTimeoutValue`.
    pub QueueSortKey: u32,
    /// Present on 64-bit only.
    pub Reserved: u32,
    pub Cdb: [u8; 16],
}

/// `SCSI_REQUEST_BLOCK_SIZE`.
pub const SCSI_REQUEST_BLOCK_SIZE: usize = size_of::<SCSI_REQUEST_BLOCK>();

const _: () = {
    assert!(size_of::<SCSI_REQUEST_BLOCK>() == 0x58);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, Function) == 0x02);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, CdbLength) == 0x0A);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, SrbFlags) == 0x0C);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, DataTransferLength) == 0x10);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, TimeOutValue) == 0x14);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, DataBuffer) == 0x18);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, SenseInfoBuffer) == 0x20);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, OriginalRequest) == 0x30);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, SrbExtension) == 0x38);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, QueueSortKey) == 0x40);
    assert!(offset_of!(SCSI_REQUEST_BLOCK, Cdb) == 0x48);
};

impl SCSI_REQUEST_BLOCK {
    /// An all-zero SRB with `Length` set.
    pub const fn new() -> Self {
        SCSI_REQUEST_BLOCK {
            Length: SCSI_REQUEST_BLOCK_SIZE as u16,
            Function: 0,
            SrbStatus: 0,
            ScsiStatus: 0,
            PathId: 0,
            TargetId: 0,
            Lun: 0,
            QueueTag: 0,
            QueueAction: 0,
            CdbLength: 0,
            SenseInfoBufferLength: 0,
            SrbFlags: 0,
            DataTransferLength: 0,
            TimeOutValue: 0,
            DataBuffer: core::ptr::null_mut(),
            SenseInfoBuffer: core::ptr::null_mut(),
            NextSrb: core::ptr::null_mut(),
            OriginalRequest: core::ptr::null_mut(),
            SrbExtension: core::ptr::null_mut(),
            QueueSortKey: 0,
            Reserved: 0,
            Cdb: [0; 16],
        }
    }
}

impl Default for SCSI_REQUEST_BLOCK {
    fn default() -> Self {
        Self::new()
    }
}

/// `SENSE_DATA` (scsi.h), fixed format: byte 0 `ErrorCode:7 Valid:1`,
/// byte 2 `SenseKey:4 Reserved:1 IncorrectLength:1 EndOfMedia:1 FileMark:1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SENSE_DATA {
    pub ErrorCode: u8,
    pub SegmentNumber: u8,
    pub SenseKey: u8,
    pub Information: [u8; 4],
    pub AdditionalSenseLength: u8,
    pub CommandSpecificInformation: [u8; 4],
    pub AdditionalSenseCode: u8,
    pub AdditionalSenseCodeQualifier: u8,
    pub FieldReplaceableUnitCode: u8,
    pub SenseKeySpecific: [u8; 3],
}

/// `SENSE_BUFFER_SIZE`.
pub const SENSE_BUFFER_SIZE: usize = size_of::<SENSE_DATA>();

const _: () = {
    assert!(size_of::<SENSE_DATA>() == 18);
    assert!(offset_of!(SENSE_DATA, AdditionalSenseLength) == 7);
    assert!(offset_of!(SENSE_DATA, AdditionalSenseCode) == 12);
    assert!(offset_of!(SENSE_DATA, AdditionalSenseCodeQualifier) == 13);
};

/// `SCSI_SENSE_ERRORCODE_FIXED_CURRENT`.
pub const SCSI_SENSE_ERRORCODE_FIXED_CURRENT: u8 = 0x70;

// SRB functions.
pub const SRB_FUNCTION_EXECUTE_SCSI: u8 = 0x00;
pub const SRB_FUNCTION_CLAIM_DEVICE: u8 = 0x01;
pub const SRB_FUNCTION_IO_CONTROL: u8 = 0x02;
pub const SRB_FUNCTION_RELEASE_QUEUE: u8 = 0x04;
pub const SRB_FUNCTION_ATTACH_DEVICE: u8 = 0x05;
pub const SRB_FUNCTION_RELEASE_DEVICE: u8 = 0x06;
pub const SRB_FUNCTION_SHUTDOWN: u8 = 0x07;
pub const SRB_FUNCTION_FLUSH: u8 = 0x08;
pub const SRB_FUNCTION_ABORT_COMMAND: u8 = 0x10;
pub const SRB_FUNCTION_RESET_BUS: u8 = 0x12;
pub const SRB_FUNCTION_RESET_DEVICE: u8 = 0x13;
pub const SRB_FUNCTION_FLUSH_QUEUE: u8 = 0x15;

// SRB status (the low 6 bits; the two flags above them).
pub const SRB_STATUS_PENDING: u8 = 0x00;
pub const SRB_STATUS_SUCCESS: u8 = 0x01;
pub const SRB_STATUS_ABORTED: u8 = 0x02;
pub const SRB_STATUS_ERROR: u8 = 0x04;
pub const SRB_STATUS_BUSY: u8 = 0x05;
pub const SRB_STATUS_INVALID_REQUEST: u8 = 0x06;
pub const SRB_STATUS_INVALID_PATH_ID: u8 = 0x07;
pub const SRB_STATUS_NO_DEVICE: u8 = 0x08;
pub const SRB_STATUS_TIMEOUT: u8 = 0x09;
pub const SRB_STATUS_SELECTION_TIMEOUT: u8 = 0x0A;
pub const SRB_STATUS_COMMAND_TIMEOUT: u8 = 0x0B;
pub const SRB_STATUS_BUS_RESET: u8 = 0x0E;
pub const SRB_STATUS_DATA_OVERRUN: u8 = 0x12;
pub const SRB_STATUS_BAD_SRB_BLOCK_LENGTH: u8 = 0x15;
pub const SRB_STATUS_INVALID_LUN: u8 = 0x20;
pub const SRB_STATUS_INVALID_TARGET_ID: u8 = 0x21;
pub const SRB_STATUS_BAD_FUNCTION: u8 = 0x22;
pub const SRB_STATUS_ERROR_RECOVERY: u8 = 0x23;
pub const SRB_STATUS_INTERNAL_ERROR: u8 = 0x30;
pub const SRB_STATUS_QUEUE_FROZEN: u8 = 0x40;
pub const SRB_STATUS_AUTOSENSE_VALID: u8 = 0x80;

/// `SRB_STATUS(Status)`: without the queue-frozen and autosense flags.
pub const fn SRB_STATUS(status: u8) -> u8 {
    status & !(SRB_STATUS_AUTOSENSE_VALID | SRB_STATUS_QUEUE_FROZEN)
}

// SRB flags.
pub const SRB_FLAGS_QUEUE_ACTION_ENABLE: u32 = 0x0000_0002;
pub const SRB_FLAGS_DISABLE_DISCONNECT: u32 = 0x0000_0004;
pub const SRB_FLAGS_DISABLE_SYNCH_TRANSFER: u32 = 0x0000_0008;
pub const SRB_FLAGS_BYPASS_FROZEN_QUEUE: u32 = 0x0000_0010;
pub const SRB_FLAGS_DISABLE_AUTOSENSE: u32 = 0x0000_0020;
pub const SRB_FLAGS_DATA_IN: u32 = 0x0000_0040;
pub const SRB_FLAGS_DATA_OUT: u32 = 0x0000_0080;
pub const SRB_FLAGS_NO_DATA_TRANSFER: u32 = 0x0000_0000;
pub const SRB_FLAGS_UNSPECIFIED_DIRECTION: u32 = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT;
pub const SRB_FLAGS_NO_QUEUE_FREEZE: u32 = 0x0000_0100;
pub const SRB_FLAGS_ADAPTER_CACHE_ENABLE: u32 = 0x0000_0200;

// SCSI status bytes.
pub const SCSISTAT_GOOD: u8 = 0x00;
pub const SCSISTAT_CHECK_CONDITION: u8 = 0x02;
pub const SCSISTAT_BUSY: u8 = 0x08;

// CDB operation codes (SCSIOP_*).
pub const SCSIOP_TEST_UNIT_READY: u8 = 0x00;
pub const SCSIOP_REQUEST_SENSE: u8 = 0x03;
pub const SCSIOP_INQUIRY: u8 = 0x12;
pub const SCSIOP_MODE_SENSE: u8 = 0x1A;
pub const SCSIOP_READ_CAPACITY: u8 = 0x25;
pub const SCSIOP_READ: u8 = 0x28;
pub const SCSIOP_WRITE: u8 = 0x2A;
pub const SCSIOP_SYNCHRONIZE_CACHE: u8 = 0x35;
pub const SCSIOP_MODE_SENSE10: u8 = 0x5A;
pub const SCSIOP_READ16: u8 = 0x88;
pub const SCSIOP_WRITE16: u8 = 0x8A;
pub const SCSIOP_SYNCHRONIZE_CACHE16: u8 = 0x91;
/// `SCSIOP_SERVICE_ACTION_IN16` (`SCSIOP_READ_CAPACITY16` with service action 0x10).
pub const SCSIOP_READ_CAPACITY16: u8 = 0x9E;
/// `SERVICE_ACTION_READ_CAPACITY16`.
pub const SERVICE_ACTION_READ_CAPACITY16: u8 = 0x10;

// Sense keys (SCSI_SENSE_*).
pub const SCSI_SENSE_NO_SENSE: u8 = 0x00;
pub const SCSI_SENSE_RECOVERED_ERROR: u8 = 0x01;
pub const SCSI_SENSE_NOT_READY: u8 = 0x02;
pub const SCSI_SENSE_MEDIUM_ERROR: u8 = 0x03;
pub const SCSI_SENSE_HARDWARE_ERROR: u8 = 0x04;
pub const SCSI_SENSE_ILLEGAL_REQUEST: u8 = 0x05;
pub const SCSI_SENSE_UNIT_ATTENTION: u8 = 0x06;
pub const SCSI_SENSE_ABORTED_COMMAND: u8 = 0x0B;

// Additional sense codes (SCSI_ADSENSE_*).
pub const SCSI_ADSENSE_NO_SENSE: u8 = 0x00;
pub const SCSI_ADSENSE_UNRECOVERED_ERROR: u8 = 0x11;
pub const SCSI_ADSENSE_ILLEGAL_COMMAND: u8 = 0x20;
pub const SCSI_ADSENSE_ILLEGAL_BLOCK: u8 = 0x21;
pub const SCSI_ADSENSE_INVALID_CDB: u8 = 0x24;
pub const SCSI_ADSENSE_INTERNAL_TARGET_FAILURE: u8 = 0x44;
pub const SCSI_ADSENSE_LUN_COMMUNICATION: u8 = 0x08;

/// `DIRECT_ACCESS_DEVICE` (INQUIRY peripheral device type).
pub const DIRECT_ACCESS_DEVICE: u8 = 0x00;
/// `INQUIRYDATABUFFERSIZE`: the 36 standard INQUIRY bytes.
pub const INQUIRYDATABUFFERSIZE: usize = 36;

/// `READ_CAPACITY_DATA` (big-endian on the wire).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct READ_CAPACITY_DATA {
    pub LogicalBlockAddress: u32,
    pub BytesPerBlock: u32,
}

/// `READ_CAPACITY_DATA_EX` (big-endian on the wire).
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct READ_CAPACITY_DATA_EX {
    pub LogicalBlockAddress: u64,
    pub BytesPerBlock: u32,
}

const _: () = {
    assert!(size_of::<READ_CAPACITY_DATA>() == 8);
    assert!(size_of::<READ_CAPACITY_DATA_EX>() == 12);
};

/// `CONFIGURATION_INFORMATION` (ntddk.h), what
/// `IoGetConfigurationInformation` returns: device counts drivers use to
/// name new devices (`DiskCount` → `\Device\Harddisk<n>`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CONFIGURATION_INFORMATION {
    pub DiskCount: u32,
    pub FloppyCount: u32,
    pub CdRomCount: u32,
    pub TapeCount: u32,
    pub ScsiPortCount: u32,
    pub SerialCount: u32,
    pub ParallelCount: u32,
    pub AtDiskPrimaryAddressClaimed: u8,
    pub AtDiskSecondaryAddressClaimed: u8,
    /// `sizeof(CONFIGURATION_INFORMATION)`.
    pub Version: u32,
    pub MediumChangerCount: u32,
}

const _: () = {
    assert!(size_of::<CONFIGURATION_INFORMATION>() == 40);
    assert!(offset_of!(CONFIGURATION_INFORMATION, ScsiPortCount) == 16);
    assert!(offset_of!(CONFIGURATION_INFORMATION, AtDiskPrimaryAddressClaimed) == 28);
    assert!(offset_of!(CONFIGURATION_INFORMATION, Version) == 32);
};

/// `IOCTL_STORAGE_QUERY_PROPERTY` (ntddstor.h): CTL_CODE(IOCTL_STORAGE_BASE,
/// 0x500, METHOD_BUFFERED, FILE_ANY_ACCESS).
pub const IOCTL_STORAGE_QUERY_PROPERTY: u32 = 0x002D_1400;
/// `STORAGE_PROPERTY_ID` `StorageDeviceProperty`.
pub const StorageDeviceProperty: u32 = 0;
/// `StorageAdapterProperty`.
pub const StorageAdapterProperty: u32 = 1;
/// `STORAGE_QUERY_TYPE` `PropertyStandardQuery`.
pub const PropertyStandardQuery: u32 = 0;
/// `PropertyExistsQuery`.
pub const PropertyExistsQuery: u32 = 1;
/// `STORAGE_BUS_TYPE` `BusTypeAta`.
pub const BusTypeAta: u32 = 0x03;
/// `BusTypeSata`.
pub const BusTypeSata: u32 = 0x0B;

/// `STORAGE_PROPERTY_QUERY` (the input; `AdditionalParameters` follow).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct STORAGE_PROPERTY_QUERY {
    pub PropertyId: u32,
    pub QueryType: u32,
    pub AdditionalParameters: [u8; 1],
}

/// `STORAGE_DEVICE_DESCRIPTOR` (its strings follow at the offsets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct STORAGE_DEVICE_DESCRIPTOR {
    pub Version: u32,
    pub Size: u32,
    pub DeviceType: u8,
    pub DeviceTypeModifier: u8,
    pub RemovableMedia: u8,
    pub CommandQueueing: u8,
    pub VendorIdOffset: u32,
    pub ProductIdOffset: u32,
    pub ProductRevisionOffset: u32,
    pub SerialNumberOffset: u32,
    /// `STORAGE_BUS_TYPE`.
    pub BusType: u32,
    pub RawPropertiesLength: u32,
    pub RawDeviceProperties: [u8; 1],
}

/// `STORAGE_ADAPTER_DESCRIPTOR`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct STORAGE_ADAPTER_DESCRIPTOR {
    pub Version: u32,
    pub Size: u32,
    pub MaximumTransferLength: u32,
    pub MaximumPhysicalPages: u32,
    pub AlignmentMask: u32,
    pub AdapterUsesPio: u8,
    pub AdapterScansDown: u8,
    pub CommandQueueing: u8,
    pub AcceleratedTransfer: u8,
    pub BusType: u8,
    pub BusMajorVersion: u16,
    pub BusMinorVersion: u16,
    pub SrbType: u8,
    pub AddressType: u8,
}

const _: () = {
    assert!(size_of::<STORAGE_PROPERTY_QUERY>() == 12);
    assert!(size_of::<STORAGE_DEVICE_DESCRIPTOR>() == 40);
    assert!(offset_of!(STORAGE_DEVICE_DESCRIPTOR, VendorIdOffset) == 12);
    assert!(offset_of!(STORAGE_DEVICE_DESCRIPTOR, BusType) == 28);
    assert!(offset_of!(STORAGE_DEVICE_DESCRIPTOR, RawDeviceProperties) == 36);
    assert!(size_of::<STORAGE_ADAPTER_DESCRIPTOR>() == 32);
    assert!(offset_of!(STORAGE_ADAPTER_DESCRIPTOR, BusType) == 24);
    assert!(offset_of!(STORAGE_ADAPTER_DESCRIPTOR, BusMajorVersion) == 26);
    assert!(offset_of!(STORAGE_ADAPTER_DESCRIPTOR, SrbType) == 30);
};
