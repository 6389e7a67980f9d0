//! `SECURITY_DESCRIPTOR` (self-relative form, `RtlValidRelativeSecurityDescriptor`,
//! `RtlMakeSelfRelativeSD`).

use crate::acl::Acl;
use crate::sid::Sid;
use alloc::vec::Vec;
use nt::status::*;

/// `SE_OWNER_DEFAULTED`.
pub const SE_OWNER_DEFAULTED: u16 = 0x0001;
/// `SE_GROUP_DEFAULTED`.
pub const SE_GROUP_DEFAULTED: u16 = 0x0002;
/// `SE_DACL_PRESENT`.
pub const SE_DACL_PRESENT: u16 = 0x0004;
/// `SE_DACL_DEFAULTED`.
pub const SE_DACL_DEFAULTED: u16 = 0x0008;
/// `SE_SACL_PRESENT`.
pub const SE_SACL_PRESENT: u16 = 0x0010;
/// `SE_SACL_DEFAULTED`.
pub const SE_SACL_DEFAULTED: u16 = 0x0020;
/// `SE_DACL_AUTO_INHERIT_REQ`.
pub const SE_DACL_AUTO_INHERIT_REQ: u16 = 0x0100;
/// `SE_SACL_AUTO_INHERIT_REQ`.
pub const SE_SACL_AUTO_INHERIT_REQ: u16 = 0x0200;
/// `SE_DACL_AUTO_INHERITED`.
pub const SE_DACL_AUTO_INHERITED: u16 = 0x0400;
/// `SE_SACL_AUTO_INHERITED`.
pub const SE_SACL_AUTO_INHERITED: u16 = 0x0800;
/// `SE_DACL_PROTECTED`.
pub const SE_DACL_PROTECTED: u16 = 0x1000;
/// `SE_SACL_PROTECTED`.
pub const SE_SACL_PROTECTED: u16 = 0x2000;
/// `SE_SELF_RELATIVE`.
pub const SE_SELF_RELATIVE: u16 = 0x8000;

/// `SECURITY_DESCRIPTOR_REVISION`.
pub const SECURITY_DESCRIPTOR_REVISION: u8 = 1;

/// A security descriptor in parsed form. `dacl == None` with
/// `SE_DACL_PRESENT` set is a NULL DACL (grants everything).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SecurityDescriptor {
    /// `Control` (without `SE_SELF_RELATIVE`, which serialization sets).
    pub control: u16,
    /// `Owner`.
    pub owner: Option<Sid>,
    /// `Group`.
    pub group: Option<Sid>,
    /// `Sacl`.
    pub sacl: Option<Acl>,
    /// `Dacl`.
    pub dacl: Option<Acl>,
}

impl SecurityDescriptor {
    /// `RtlCreateSecurityDescriptor`: empty, no DACL present.
    pub fn new() -> Self {
        Self::default()
    }
    /// True if `SE_DACL_PRESENT` is set.
    pub fn dacl_present(&self) -> bool {
        self.control & SE_DACL_PRESENT != 0
    }
    /// `RtlSetDaclSecurityDescriptor`.
    pub fn set_dacl(&mut self, dacl: Option<Acl>) {
        self.control |= SE_DACL_PRESENT;
        self.dacl = dacl;
    }
    /// `RtlSetSaclSecurityDescriptor`.
    pub fn set_sacl(&mut self, sacl: Option<Acl>) {
        self.control |= SE_SACL_PRESENT;
        self.sacl = sacl;
    }
    /// Parses a self-relative `SECURITY_DESCRIPTOR_RELATIVE`.
    pub fn parse(b: &[u8]) -> Result<Self, NtStatus> {
        if b.len() < 20 {
            return Err(STATUS_INVALID_SECURITY_DESCR);
        }
        if b[0] != SECURITY_DESCRIPTOR_REVISION {
            return Err(STATUS_UNKNOWN_REVISION);
        }
        let control = u16::from_le_bytes([b[2], b[3]]);
        if control & SE_SELF_RELATIVE == 0 {
            return Err(STATUS_INVALID_SECURITY_DESCR);
        }
        let off = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        let at = |o: usize| -> Result<&[u8], NtStatus> {
            if o < 20 || o >= b.len() {
                Err(STATUS_INVALID_SECURITY_DESCR)
            } else {
                Ok(&b[o..])
            }
        };
        let sid = |o: usize| -> Result<Option<Sid>, NtStatus> {
            if o == 0 {
                return Ok(None);
            }
            Ok(Some(
                Sid::parse(at(o)?)
                    .map_err(|_| STATUS_INVALID_SECURITY_DESCR)?
                    .0,
            ))
        };
        let acl = |present: bool, o: usize| -> Result<Option<Acl>, NtStatus> {
            if !present || o == 0 {
                return Ok(None);
            }
            Ok(Some(Acl::parse(at(o)?)?.0))
        };
        let owner = sid(off(4))?;
        let group = sid(off(8))?;
        let sacl = acl(control & SE_SACL_PRESENT != 0, off(12))?;
        let dacl = acl(control & SE_DACL_PRESENT != 0, off(16))?;
        Ok(SecurityDescriptor {
            control: control & !SE_SELF_RELATIVE,
            owner,
            group,
            sacl,
            dacl,
        })
    }
    /// Serializes as self-relative (`RtlMakeSelfRelativeSD`): header, owner,
    /// group, SACL, DACL.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = alloc::vec![0u8; 20];
        v[0] = SECURITY_DESCRIPTOR_REVISION;
        v[2..4].copy_from_slice(&(self.control | SE_SELF_RELATIVE).to_le_bytes());
        let put = |v: &mut Vec<u8>, slot: usize, f: &dyn Fn(&mut Vec<u8>)| {
            let o = v.len() as u32;
            f(v);
            v[slot..slot + 4].copy_from_slice(&o.to_le_bytes());
        };
        if let Some(s) = &self.owner {
            put(&mut v, 4, &|v| s.write(v));
        }
        if let Some(s) = &self.group {
            put(&mut v, 8, &|v| s.write(v));
        }
        if let Some(a) = self
            .sacl
            .as_ref()
            .filter(|_| self.control & SE_SACL_PRESENT != 0)
        {
            put(&mut v, 12, &|v| a.write(v));
        }
        if let Some(a) = self.dacl.as_ref().filter(|_| self.dacl_present()) {
            put(&mut v, 16, &|v| a.write(v));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Ace;
    use alloc::vec;

    fn sample() -> SecurityDescriptor {
        let mut sd = SecurityDescriptor::new();
        sd.owner = Some(Sid::builtin_administrators());
        sd.group = Some(Sid::local_system());
        sd.set_dacl(Some(Acl::from_aces(vec![Ace::allow(
            0x1F01FF,
            Sid::world(),
        )])));
        sd.set_sacl(Some(Acl::from_aces(vec![Ace::label(
            crate::sid::LOW_RID,
            1,
        )])));
        sd.control |= SE_DACL_PROTECTED;
        sd
    }
    #[test]
    fn roundtrip() {
        let sd = sample();
        let b = sd.to_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(
            u16::from_le_bytes([b[2], b[3]]) & SE_SELF_RELATIVE,
            SE_SELF_RELATIVE
        );
        assert_eq!(SecurityDescriptor::parse(&b).unwrap(), sd);
    }
    #[test]
    fn header_offsets() {
        let b = sample().to_bytes();
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 20);
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 36);
    }
    #[test]
    fn null_dacl_roundtrip() {
        let mut sd = SecurityDescriptor::new();
        sd.set_dacl(None);
        let p = SecurityDescriptor::parse(&sd.to_bytes()).unwrap();
        assert!(p.dacl_present());
        assert!(p.dacl.is_none());
    }
    #[test]
    fn not_self_relative() {
        let mut b = sample().to_bytes();
        b[3] &= 0x7F;
        assert_eq!(
            SecurityDescriptor::parse(&b),
            Err(STATUS_INVALID_SECURITY_DESCR)
        );
    }
    #[test]
    fn bad_revision() {
        let mut b = sample().to_bytes();
        b[0] = 2;
        assert_eq!(SecurityDescriptor::parse(&b), Err(STATUS_UNKNOWN_REVISION));
    }
    #[test]
    fn short() {
        assert_eq!(
            SecurityDescriptor::parse(&[1, 0, 0, 0x80]),
            Err(STATUS_INVALID_SECURITY_DESCR)
        );
    }
    #[test]
    fn offset_out_of_range() {
        let mut b = sample().to_bytes();
        b[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            SecurityDescriptor::parse(&b),
            Err(STATUS_INVALID_SECURITY_DESCR)
        );
        b[4..8].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(
            SecurityDescriptor::parse(&b),
            Err(STATUS_INVALID_SECURITY_DESCR)
        );
    }
    #[test]
    fn bad_dacl_reports_invalid_acl() {
        let mut b = sample().to_bytes();
        let o = u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
        b[o] = 9;
        assert_eq!(SecurityDescriptor::parse(&b), Err(STATUS_INVALID_ACL));
    }
}
