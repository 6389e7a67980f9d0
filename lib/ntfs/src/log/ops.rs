//! NTFS log operations (`NTFS_LOG_OPERATION`): the redo and undo operation
//! codes of NTFS's client records, with Windows' names.

macro_rules! ops {
    ($($name:ident = $code:expr,)*) => {
        /// An NTFS redo/undo operation code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Op {
            $(
                #[allow(missing_docs)]
                $name = $code,
            )*
        }

        impl Op {
            /// The operation of a code, if it is one Windows defines.
            pub fn from_code(c: u16) -> Option<Op> {
                match c {
                    $($code => Some(Op::$name),)*
                    _ => None,
                }
            }

            /// Windows' name of the operation.
            pub fn name(self) -> &'static str {
                match self {
                    $(Op::$name => stringify!($name),)*
                }
            }
        }

        /// Every operation, in code order.
        pub const ALL: &[Op] = &[$(Op::$name,)*];
    };
}

ops! {
    Noop = 0x00,
    CompensationLogRecord = 0x01,
    InitializeFileRecordSegment = 0x02,
    DeallocateFileRecordSegment = 0x03,
    WriteEndOfFileRecordSegment = 0x04,
    CreateAttribute = 0x05,
    DeleteAttribute = 0x06,
    UpdateResidentValue = 0x07,
    UpdateNonresidentValue = 0x08,
    UpdateMappingPairs = 0x09,
    DeleteDirtyClusters = 0x0A,
    SetNewAttributeSizes = 0x0B,
    AddIndexEntryRoot = 0x0C,
    DeleteIndexEntryRoot = 0x0D,
    AddIndexEntryAllocation = 0x0E,
    DeleteIndexEntryAllocation = 0x0F,
    WriteEndOfIndexBuffer = 0x10,
    SetIndexEntryVcnRoot = 0x11,
    SetIndexEntryVcnAllocation = 0x12,
    UpdateFileNameRoot = 0x13,
    UpdateFileNameAllocation = 0x14,
    SetBitsInNonresidentBitMap = 0x15,
    ClearBitsInNonresidentBitMap = 0x16,
    HotFix = 0x17,
    EndTopLevelAction = 0x18,
    PrepareTransaction = 0x19,
    CommitTransaction = 0x1A,
    ForgetTransaction = 0x1B,
    OpenNonresidentAttribute = 0x1C,
    OpenAttributeTableDump = 0x1D,
    AttributeNamesDump = 0x1E,
    DirtyPageTableDump = 0x1F,
    TransactionTableDump = 0x20,
    UpdateRecordDataRoot = 0x21,
    UpdateRecordDataAllocation = 0x22,
    UpdateRelativeDataInIndex = 0x23,
    UpdateRelativeDataInIndex2 = 0x24,
    ZeroEndOfFileRecord = 0x25,
}

/// Name of an operation code (`"Unknown(0xNN)"` style callers format the rest).
pub fn op_name(code: u16) -> Option<&'static str> {
    Op::from_code(code).map(Op::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_named() {
        for (i, op) in ALL.iter().enumerate() {
            assert_eq!(*op as u16, i as u16);
            assert_eq!(Op::from_code(i as u16), Some(*op));
        }
        assert_eq!(Op::from_code(0x26), None);
        assert_eq!(op_name(0x15), Some("SetBitsInNonresidentBitMap"));
        assert_eq!(op_name(0x1C), Some("OpenNonresidentAttribute"));
    }
}
