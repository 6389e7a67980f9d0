//! Errors, with their NT status codes.

use core::fmt;
use nt::status::*;

/// Result alias for this crate.
pub type Result<T> = core::result::Result<T, Error>;

/// What went wrong. Each variant maps onto one NT status ([`Error::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The block device failed (`STATUS_DEVICE_DATA_ERROR`).
    Io,
    /// An access past the end of the device (`STATUS_DISK_CORRUPT_ERROR`).
    OutOfRange,
    /// The boot sector is not an NTFS boot sector (`STATUS_UNRECOGNIZED_VOLUME`).
    NotNtfs(&'static str),
    /// A volume-wide structure is inconsistent (`STATUS_DISK_CORRUPT_ERROR`).
    Corrupt(&'static str),
    /// One file record or its attributes are inconsistent (`STATUS_FILE_CORRUPT_ERROR`).
    BadRecord {
        /// MFT record number.
        record: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// No such name (`STATUS_OBJECT_NAME_NOT_FOUND`).
    NotFound,
    /// A directory on the way does not exist (`STATUS_OBJECT_PATH_NOT_FOUND`).
    PathNotFound,
    /// The name exists already (`STATUS_OBJECT_NAME_COLLISION`).
    NameCollision,
    /// No free clusters or MFT records (`STATUS_DISK_FULL`).
    DiskFull,
    /// Removing a directory that still has entries (`STATUS_DIRECTORY_NOT_EMPTY`).
    DirectoryNotEmpty,
    /// A path component is a file (`STATUS_NOT_A_DIRECTORY`).
    NotADirectory,
    /// A file operation on a directory (`STATUS_FILE_IS_A_DIRECTORY`).
    IsADirectory,
    /// A name NTFS cannot store (`STATUS_OBJECT_NAME_INVALID`).
    InvalidName,
    /// A bad argument (`STATUS_INVALID_PARAMETER`).
    InvalidParameter(&'static str),
    /// A case this implementation does not handle (`STATUS_NOT_IMPLEMENTED`).
    Unsupported(&'static str),
}

impl Error {
    /// The NT status code for this error.
    pub fn status(&self) -> NtStatus {
        match self {
            Error::Io => STATUS_DEVICE_DATA_ERROR,
            Error::OutOfRange | Error::Corrupt(_) => STATUS_DISK_CORRUPT_ERROR,
            Error::NotNtfs(_) => STATUS_UNRECOGNIZED_VOLUME,
            Error::BadRecord { .. } => STATUS_FILE_CORRUPT_ERROR,
            Error::NotFound => STATUS_OBJECT_NAME_NOT_FOUND,
            Error::PathNotFound => STATUS_OBJECT_PATH_NOT_FOUND,
            Error::NameCollision => STATUS_OBJECT_NAME_COLLISION,
            Error::DiskFull => STATUS_DISK_FULL,
            Error::DirectoryNotEmpty => STATUS_DIRECTORY_NOT_EMPTY,
            Error::NotADirectory => STATUS_NOT_A_DIRECTORY,
            Error::IsADirectory => STATUS_FILE_IS_A_DIRECTORY,
            Error::InvalidName => STATUS_OBJECT_NAME_INVALID,
            Error::InvalidParameter(_) => STATUS_INVALID_PARAMETER,
            Error::Unsupported(_) => STATUS_NOT_IMPLEMENTED,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io => write!(f, "device I/O error"),
            Error::OutOfRange => write!(f, "access beyond the end of the device"),
            Error::NotNtfs(w) => write!(f, "not an NTFS volume: {w}"),
            Error::Corrupt(w) => write!(f, "volume corrupt: {w}"),
            Error::BadRecord { record, reason } => {
                write!(f, "MFT record {record} corrupt: {reason}")
            }
            Error::NotFound => write!(f, "name not found"),
            Error::PathNotFound => write!(f, "path not found"),
            Error::NameCollision => write!(f, "name already exists"),
            Error::DiskFull => write!(f, "disk full"),
            Error::DirectoryNotEmpty => write!(f, "directory not empty"),
            Error::NotADirectory => write!(f, "not a directory"),
            Error::IsADirectory => write!(f, "is a directory"),
            Error::InvalidName => write!(f, "invalid file name"),
            Error::InvalidParameter(w) => write!(f, "invalid parameter: {w}"),
            Error::Unsupported(w) => write!(f, "not implemented: {w}"),
        }
    }
}
