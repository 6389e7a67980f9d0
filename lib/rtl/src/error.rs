//! `RtlNtStatusToDosError`: the Win32 error code for an NTSTATUS, as
//! Windows maps it. The pairs are those Microsoft documents (the "Mapping
//! NT status error codes to Win32 error codes" table, KB 113996, and each
//! status's documented Win32 equivalent); ntrs lists the statuses its
//! components return and the common ones programs test for, not all 2,000
//! of Windows' table. Rules besides the table, as documented for the
//! routine: `STATUS_SUCCESS` is `ERROR_SUCCESS`; a status of facility
//! `FACILITY_WIN32` (7: `0x8007xxxx`, `0xC007xxxx`, what `HRESULT_FROM_WIN32`
//! would wrap) is its low 16 bits; anything else not in the table is
//! `ERROR_MR_MID_NOT_FOUND` (317).

/// `ERROR_MR_MID_NOT_FOUND`: the answer for a status the table lacks.
pub const ERROR_MR_MID_NOT_FOUND: u32 = 317;

/// (NTSTATUS, Win32 error), sorted by status.
const TABLE: &[(u32, u32)] = &[
    (0x0000_0102, 258),  // STATUS_TIMEOUT -> WAIT_TIMEOUT
    (0x0000_0103, 997),  // STATUS_PENDING -> ERROR_IO_PENDING
    (0x4000_0000, 183),  // STATUS_OBJECT_NAME_EXISTS -> ERROR_ALREADY_EXISTS
    (0x8000_0002, 998),  // STATUS_DATATYPE_MISALIGNMENT -> ERROR_NOACCESS
    (0x8000_0005, 234),  // STATUS_BUFFER_OVERFLOW -> ERROR_MORE_DATA
    (0x8000_0006, 18),   // STATUS_NO_MORE_FILES -> ERROR_NO_MORE_FILES
    (0x8000_001A, 259),  // STATUS_NO_MORE_ENTRIES -> ERROR_NO_MORE_ITEMS
    (0xC000_0001, 31),   // STATUS_UNSUCCESSFUL -> ERROR_GEN_FAILURE
    (0xC000_0002, 1),    // STATUS_NOT_IMPLEMENTED -> ERROR_INVALID_FUNCTION
    (0xC000_0003, 87),   // STATUS_INVALID_INFO_CLASS -> ERROR_INVALID_PARAMETER
    (0xC000_0004, 24),   // STATUS_INFO_LENGTH_MISMATCH -> ERROR_BAD_LENGTH
    (0xC000_0005, 998),  // STATUS_ACCESS_VIOLATION -> ERROR_NOACCESS
    (0xC000_0008, 6),    // STATUS_INVALID_HANDLE -> ERROR_INVALID_HANDLE
    (0xC000_000B, 87),   // STATUS_INVALID_CID -> ERROR_INVALID_PARAMETER
    (0xC000_000D, 87),   // STATUS_INVALID_PARAMETER -> ERROR_INVALID_PARAMETER
    (0xC000_000E, 2),    // STATUS_NO_SUCH_DEVICE -> ERROR_FILE_NOT_FOUND
    (0xC000_000F, 2),    // STATUS_NO_SUCH_FILE -> ERROR_FILE_NOT_FOUND
    (0xC000_0010, 1),    // STATUS_INVALID_DEVICE_REQUEST -> ERROR_INVALID_FUNCTION
    (0xC000_0011, 38),   // STATUS_END_OF_FILE -> ERROR_HANDLE_EOF
    (0xC000_0017, 8),    // STATUS_NO_MEMORY -> ERROR_NOT_ENOUGH_MEMORY
    (0xC000_001C, 1),    // STATUS_INVALID_SYSTEM_SERVICE -> ERROR_INVALID_FUNCTION
    (0xC000_0022, 5),    // STATUS_ACCESS_DENIED -> ERROR_ACCESS_DENIED
    (0xC000_0023, 122),  // STATUS_BUFFER_TOO_SMALL -> ERROR_INSUFFICIENT_BUFFER
    (0xC000_0024, 6),    // STATUS_OBJECT_TYPE_MISMATCH -> ERROR_INVALID_HANDLE
    (0xC000_0033, 123),  // STATUS_OBJECT_NAME_INVALID -> ERROR_INVALID_NAME
    (0xC000_0034, 2),    // STATUS_OBJECT_NAME_NOT_FOUND -> ERROR_FILE_NOT_FOUND
    (0xC000_0035, 183),  // STATUS_OBJECT_NAME_COLLISION -> ERROR_ALREADY_EXISTS
    (0xC000_0039, 161),  // STATUS_OBJECT_PATH_INVALID -> ERROR_BAD_PATHNAME
    (0xC000_003A, 3),    // STATUS_OBJECT_PATH_NOT_FOUND -> ERROR_PATH_NOT_FOUND
    (0xC000_003B, 161),  // STATUS_OBJECT_PATH_SYNTAX_BAD -> ERROR_BAD_PATHNAME
    (0xC000_0043, 32),   // STATUS_SHARING_VIOLATION -> ERROR_SHARING_VIOLATION
    (0xC000_0046, 288),  // STATUS_MUTANT_NOT_OWNED -> ERROR_NOT_OWNER
    (0xC000_0047, 298),  // STATUS_SEMAPHORE_LIMIT_EXCEEDED -> ERROR_TOO_MANY_POSTS
    (0xC000_0056, 5),    // STATUS_DELETE_PENDING -> ERROR_ACCESS_DENIED
    (0xC000_0061, 1314), // STATUS_PRIVILEGE_NOT_HELD -> ERROR_PRIVILEGE_NOT_HELD
    (0xC000_007B, 193),  // STATUS_INVALID_IMAGE_FORMAT -> ERROR_BAD_EXE_FORMAT
    (0xC000_007F, 112),  // STATUS_DISK_FULL -> ERROR_DISK_FULL
    (0xC000_009A, 1450), // STATUS_INSUFFICIENT_RESOURCES -> ERROR_NO_SYSTEM_RESOURCES
    (0xC000_00BA, 5),    // STATUS_FILE_IS_A_DIRECTORY -> ERROR_ACCESS_DENIED
    (0xC000_00BB, 50),   // STATUS_NOT_SUPPORTED -> ERROR_NOT_SUPPORTED
    (0xC000_00EF, 87),   // STATUS_INVALID_PARAMETER_1 -> ERROR_INVALID_PARAMETER
    (0xC000_00F0, 87),   // STATUS_INVALID_PARAMETER_2
    (0xC000_00F1, 87),   // STATUS_INVALID_PARAMETER_3
    (0xC000_00F2, 87),   // STATUS_INVALID_PARAMETER_4
    (0xC000_0101, 145),  // STATUS_DIRECTORY_NOT_EMPTY -> ERROR_DIR_NOT_EMPTY
    (0xC000_0103, 267),  // STATUS_NOT_A_DIRECTORY -> ERROR_DIRECTORY
    (0xC000_0106, 206),  // STATUS_NAME_TOO_LONG -> ERROR_FILENAME_EXCED_RANGE
    (0xC000_010A, 5),    // STATUS_PROCESS_IS_TERMINATING -> ERROR_ACCESS_DENIED
    (0xC000_0120, 995),  // STATUS_CANCELLED -> ERROR_OPERATION_ABORTED
    (0xC000_012F, 193),  // STATUS_INVALID_IMAGE_NOT_MZ -> ERROR_BAD_EXE_FORMAT
    (0xC000_0135, 126),  // STATUS_DLL_NOT_FOUND -> ERROR_MOD_NOT_FOUND
    (0xC000_0138, 182),  // STATUS_ORDINAL_NOT_FOUND -> ERROR_INVALID_ORDINAL
    (0xC000_0139, 127),  // STATUS_ENTRYPOINT_NOT_FOUND -> ERROR_PROC_NOT_FOUND
    (0xC000_0142, 1114), // STATUS_DLL_INIT_FAILED -> ERROR_DLL_INIT_FAILED
    (0xC000_0225, 1168), // STATUS_NOT_FOUND -> ERROR_NOT_FOUND
];

/// `RtlNtStatusToDosError`.
pub fn nt_status_to_dos_error(status: u32) -> u32 {
    if status == 0 {
        return 0;
    }
    if status & 0x3FFF_0000 == 0x0007_0000 && status & 0x8000_0000 != 0 {
        return status & 0xFFFF;
    }
    match TABLE.binary_search_by_key(&status, |e| e.0) {
        Ok(i) => TABLE[i].1,
        Err(_) => ERROR_MR_MID_NOT_FOUND,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted() {
        for w in TABLE.windows(2) {
            assert!(w[0].0 < w[1].0, "{:#x}", w[1].0);
        }
    }

    #[test]
    fn documented_mappings() {
        assert_eq!(nt_status_to_dos_error(0), 0);
        assert_eq!(nt_status_to_dos_error(0xC000_0034), 2); // name not found
        assert_eq!(nt_status_to_dos_error(0xC000_003A), 3); // path not found
        assert_eq!(nt_status_to_dos_error(0xC000_0022), 5); // access denied
        assert_eq!(nt_status_to_dos_error(0xC000_0008), 6);
        assert_eq!(nt_status_to_dos_error(0xC000_0017), 8);
        assert_eq!(nt_status_to_dos_error(0xC000_000D), 87);
        assert_eq!(nt_status_to_dos_error(0xC000_0135), 126);
        assert_eq!(nt_status_to_dos_error(0xC000_0139), 127);
        assert_eq!(nt_status_to_dos_error(0x8000_0005), 234);
        assert_eq!(nt_status_to_dos_error(0x0000_0103), 997);
        // FACILITY_WIN32 statuses carry the Win32 code.
        assert_eq!(nt_status_to_dos_error(0xC007_0005), 5);
        assert_eq!(nt_status_to_dos_error(0x8007_0057), 87);
        // Unknown: ERROR_MR_MID_NOT_FOUND.
        assert_eq!(nt_status_to_dos_error(0xC0DE_0001), ERROR_MR_MID_NOT_FOUND);
        assert_eq!(nt_status_to_dos_error(0x0007_0005), ERROR_MR_MID_NOT_FOUND);
    }
}
