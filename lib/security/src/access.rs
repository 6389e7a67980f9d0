//! `ACCESS_MASK` bits and `GENERIC_MAPPING` (`RtlMapGenericMask`).

/// `ACCESS_MASK`.
pub type AccessMask = u32;

/// `DELETE`.
pub const DELETE: u32 = 0x0001_0000;
/// `READ_CONTROL`.
pub const READ_CONTROL: u32 = 0x0002_0000;
/// `WRITE_DAC`.
pub const WRITE_DAC: u32 = 0x0004_0000;
/// `WRITE_OWNER`.
pub const WRITE_OWNER: u32 = 0x0008_0000;
/// `SYNCHRONIZE`.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// `STANDARD_RIGHTS_REQUIRED`.
pub const STANDARD_RIGHTS_REQUIRED: u32 = 0x000F_0000;
/// `STANDARD_RIGHTS_ALL`.
pub const STANDARD_RIGHTS_ALL: u32 = 0x001F_0000;
/// `SPECIFIC_RIGHTS_ALL`.
pub const SPECIFIC_RIGHTS_ALL: u32 = 0x0000_FFFF;
/// `ACCESS_SYSTEM_SECURITY`.
pub const ACCESS_SYSTEM_SECURITY: u32 = 0x0100_0000;
/// `MAXIMUM_ALLOWED`.
pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
/// `GENERIC_ALL`.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// `GENERIC_EXECUTE`.
pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;

/// File rights `FILE_ALL_ACCESS`.
pub const FILE_ALL_ACCESS: u32 = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x1FF;
/// `FILE_GENERIC_READ`.
pub const FILE_GENERIC_READ: u32 = READ_CONTROL | 0x0001 | 0x0080 | 0x0008 | SYNCHRONIZE;
/// `FILE_GENERIC_WRITE`.
pub const FILE_GENERIC_WRITE: u32 = READ_CONTROL | 0x0002 | 0x0100 | 0x0010 | 0x0004 | SYNCHRONIZE;
/// `FILE_GENERIC_EXECUTE`.
pub const FILE_GENERIC_EXECUTE: u32 = READ_CONTROL | 0x0080 | 0x0020 | SYNCHRONIZE;
/// `KEY_ALL_ACCESS`.
pub const KEY_ALL_ACCESS: u32 = 0xF003F;
/// `KEY_READ`.
pub const KEY_READ: u32 = 0x20019;
/// `KEY_WRITE`.
pub const KEY_WRITE: u32 = 0x20006;
/// `KEY_EXECUTE`.
pub const KEY_EXECUTE: u32 = 0x20019;

/// `GENERIC_MAPPING`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenericMapping {
    /// `GenericRead`.
    pub read: u32,
    /// `GenericWrite`.
    pub write: u32,
    /// `GenericExecute`.
    pub execute: u32,
    /// `GenericAll`.
    pub all: u32,
}

impl GenericMapping {
    /// The file object type's mapping (`IoFileObjectType`).
    pub const FILE: GenericMapping = GenericMapping {
        read: FILE_GENERIC_READ,
        write: FILE_GENERIC_WRITE,
        execute: FILE_GENERIC_EXECUTE,
        all: FILE_ALL_ACCESS,
    };
    /// The registry key type's mapping.
    pub const KEY: GenericMapping = GenericMapping {
        read: KEY_READ,
        write: KEY_WRITE,
        execute: KEY_EXECUTE,
        all: KEY_ALL_ACCESS,
    };
}

/// `RtlMapGenericMask`: replaces the four generic bits with the mapping's rights.
pub fn map_generic(mask: u32, m: &GenericMapping) -> u32 {
    let mut out = mask & !(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL);
    if mask & GENERIC_READ != 0 {
        out |= m.read;
    }
    if mask & GENERIC_WRITE != 0 {
        out |= m.write;
    }
    if mask & GENERIC_EXECUTE != 0 {
        out |= m.execute;
    }
    if mask & GENERIC_ALL != 0 {
        out |= m.all;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn values_match_winnt_h() {
        assert_eq!(GENERIC_READ, 0x8000_0000);
        assert_eq!(MAXIMUM_ALLOWED, 0x0200_0000);
        assert_eq!(FILE_ALL_ACCESS, 0x001F_01FF);
        assert_eq!(FILE_GENERIC_READ, 0x0012_0089);
        assert_eq!(FILE_GENERIC_WRITE, 0x0012_0116);
        assert_eq!(FILE_GENERIC_EXECUTE, 0x0012_00A0);
    }
    #[test]
    fn map_generic_all() {
        assert_eq!(
            map_generic(GENERIC_ALL, &GenericMapping::FILE),
            FILE_ALL_ACCESS
        );
    }
    #[test]
    fn map_keeps_specific_and_clears_generic() {
        let m = map_generic(GENERIC_READ | 0x4 | MAXIMUM_ALLOWED, &GenericMapping::FILE);
        assert_eq!(m, FILE_GENERIC_READ | 0x4 | MAXIMUM_ALLOWED);
        assert_eq!(m & 0xF000_0000, 0);
    }
    #[test]
    fn map_no_generic_is_identity() {
        assert_eq!(map_generic(0x1234, &GenericMapping::KEY), 0x1234);
    }
}
