//! Security identifiers (`SID`, `RtlValidSid`, `RtlConvertSidToUnicodeString`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use nt::status::*;

/// `SID_MAX_SUB_AUTHORITIES`.
pub const SID_MAX_SUB_AUTHORITIES: usize = 15;
/// `SID_REVISION`.
pub const SID_REVISION: u8 = 1;

/// A `SID`: revision 1, a 48-bit identifier authority and up to 15 subauthorities.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    authority: [u8; 6],
    subs: Vec<u32>,
}

impl Sid {
    /// Builds a SID (`RtlInitializeSid`); `None` if more than 15 subauthorities.
    pub fn new(authority: u64, subs: &[u32]) -> Option<Sid> {
        if subs.len() > SID_MAX_SUB_AUTHORITIES || authority >> 48 != 0 {
            return None;
        }
        let b = authority.to_be_bytes();
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[2..]);
        Some(Sid {
            authority: a,
            subs: subs.to_vec(),
        })
    }
    fn k(authority: u64, subs: &[u32]) -> Sid {
        Sid::new(authority, subs).unwrap()
    }
    /// The identifier authority as a number.
    pub fn authority(&self) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&self.authority);
        u64::from_be_bytes(b)
    }
    /// The subauthorities (`RtlSubAuthoritySid`).
    pub fn sub_authorities(&self) -> &[u32] {
        &self.subs
    }
    /// Whether this SID is S-1-`authority`-`subs`... (`RtlEqualSid` against
    /// a well-known SID without building it: no allocation).
    pub fn is(&self, authority: u64, subs: &[u32]) -> bool {
        self.subs == subs && self.authority() == authority
    }
    /// Whether this is OWNER RIGHTS (S-1-3-4), without allocating.
    pub fn is_owner_rights(&self) -> bool {
        self.is(3, &[4])
    }
    /// `RtlLengthSid`: 8 + 4 * count.
    pub fn len(&self) -> usize {
        8 + 4 * self.subs.len()
    }
    /// Never true: a SID has at least its 8-byte header.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Parses a binary SID from the start of `b` (`RtlValidSid` checks).
    /// Returns the SID and bytes consumed.
    pub fn parse(b: &[u8]) -> Result<(Sid, usize), NtStatus> {
        if b.len() < 8 {
            return Err(STATUS_INVALID_SID);
        }
        if b[0] != SID_REVISION || b[1] as usize > SID_MAX_SUB_AUTHORITIES {
            return Err(STATUS_INVALID_SID);
        }
        let n = b[1] as usize;
        let len = 8 + 4 * n;
        if b.len() < len {
            return Err(STATUS_INVALID_SID);
        }
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[2..8]);
        let subs = (0..n)
            .map(|i| u32::from_le_bytes(b[8 + 4 * i..12 + 4 * i].try_into().unwrap()))
            .collect();
        Ok((Sid { authority: a, subs }, len))
    }
    /// Serializes the binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.write(&mut v);
        v
    }
    /// Appends the binary form to `v`.
    pub fn write(&self, v: &mut Vec<u8>) {
        v.push(SID_REVISION);
        v.push(self.subs.len() as u8);
        v.extend_from_slice(&self.authority);
        for s in &self.subs {
            v.extend_from_slice(&s.to_le_bytes());
        }
    }
    /// Parses `S-1-5-32-544` (`ConvertStringSidToSid`, numeric form only).
    pub fn parse_str(s: &str) -> Result<Sid, NtStatus> {
        let rest = s
            .strip_prefix("S-")
            .or_else(|| s.strip_prefix("s-"))
            .ok_or(STATUS_INVALID_SID)?;
        let mut it = rest.split('-');
        if it.next() != Some("1") {
            return Err(STATUS_INVALID_SID);
        }
        let auth = it.next().ok_or(STATUS_INVALID_SID)?;
        let auth = if let Some(h) = auth.strip_prefix("0x").or_else(|| auth.strip_prefix("0X")) {
            u64::from_str_radix(h, 16).map_err(|_| STATUS_INVALID_SID)?
        } else {
            auth.parse::<u64>().map_err(|_| STATUS_INVALID_SID)?
        };
        let mut subs = Vec::new();
        for p in it {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(STATUS_INVALID_SID);
            }
            subs.push(p.parse::<u32>().map_err(|_| STATUS_INVALID_SID)?);
        }
        Sid::new(auth, &subs).ok_or(STATUS_INVALID_SID)
    }
    /// True if this is a mandatory label SID (S-1-16-x).
    pub fn is_integrity(&self) -> bool {
        self.authority() == 16 && self.subs.len() == 1
    }
    /// Integrity level RID of a mandatory label SID.
    pub fn integrity_rid(&self) -> Option<u32> {
        self.is_integrity().then(|| self.subs[0])
    }

    /// `SY`: LocalSystem, S-1-5-18.
    pub fn local_system() -> Sid {
        Sid::k(5, &[18])
    }
    /// `LS`: LocalService, S-1-5-19.
    pub fn local_service() -> Sid {
        Sid::k(5, &[19])
    }
    /// `NS`: NetworkService, S-1-5-20.
    pub fn network_service() -> Sid {
        Sid::k(5, &[20])
    }
    /// `BA`: BUILTIN\Administrators, S-1-5-32-544.
    pub fn builtin_administrators() -> Sid {
        Sid::k(5, &[32, 544])
    }
    /// `BU`: BUILTIN\Users, S-1-5-32-545.
    pub fn builtin_users() -> Sid {
        Sid::k(5, &[32, 545])
    }
    /// `WD`: Everyone, S-1-1-0.
    pub fn world() -> Sid {
        Sid::k(1, &[0])
    }
    /// `AU`: Authenticated Users, S-1-5-11.
    pub fn authenticated_users() -> Sid {
        Sid::k(5, &[11])
    }
    /// `IU`: Interactive, S-1-5-4.
    pub fn interactive() -> Sid {
        Sid::k(5, &[4])
    }
    /// `AN`: Anonymous logon, S-1-5-7.
    pub fn anonymous() -> Sid {
        Sid::k(5, &[7])
    }
    /// `RC`: Restricted code, S-1-5-12.
    pub fn restricted_code() -> Sid {
        Sid::k(5, &[12])
    }
    /// `CO`: CREATOR OWNER, S-1-3-0.
    pub fn creator_owner() -> Sid {
        Sid::k(3, &[0])
    }
    /// `CG`: CREATOR GROUP, S-1-3-1.
    pub fn creator_group() -> Sid {
        Sid::k(3, &[1])
    }
    /// `OW`: OWNER RIGHTS, S-1-3-4.
    pub fn owner_rights() -> Sid {
        Sid::k(3, &[4])
    }
    /// Mandatory label with the given RID (S-1-16-rid).
    pub fn mandatory_label(rid: u32) -> Sid {
        Sid::k(16, &[rid])
    }
}

/// `SECURITY_MANDATORY_UNTRUSTED_RID`.
pub const UNTRUSTED_RID: u32 = 0;
/// `SECURITY_MANDATORY_LOW_RID`.
pub const LOW_RID: u32 = 0x1000;
/// `SECURITY_MANDATORY_MEDIUM_RID`.
pub const MEDIUM_RID: u32 = 0x2000;
/// `SECURITY_MANDATORY_HIGH_RID`.
pub const HIGH_RID: u32 = 0x3000;
/// `SECURITY_MANDATORY_SYSTEM_RID`.
pub const SYSTEM_RID: u32 = 0x4000;

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.authority();
        if a >> 32 != 0 {
            write!(f, "S-1-{a:#014X}")?;
        } else {
            write!(f, "S-1-{a}")?;
        }
        for s in &self.subs {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Formats a SID as a string (`RtlConvertSidToUnicodeString`).
pub fn to_string(s: &Sid) -> String {
    alloc::format!("{s}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn well_known_strings() {
        assert_eq!(Sid::local_system().to_string(), "S-1-5-18");
        assert_eq!(Sid::builtin_administrators().to_string(), "S-1-5-32-544");
        assert_eq!(Sid::world().to_string(), "S-1-1-0");
        assert_eq!(Sid::authenticated_users().to_string(), "S-1-5-11");
        assert_eq!(Sid::interactive().to_string(), "S-1-5-4");
        assert_eq!(Sid::creator_owner().to_string(), "S-1-3-0");
        assert_eq!(Sid::creator_group().to_string(), "S-1-3-1");
        assert_eq!(Sid::owner_rights().to_string(), "S-1-3-4");
        assert!(Sid::owner_rights().is_owner_rights());
        assert!(!Sid::creator_owner().is_owner_rights());
        assert!(!Sid::mandatory_label(4).is_owner_rights());
        assert!(Sid::builtin_users().is(5, &[32, 545]));
        assert!(!Sid::builtin_users().is(5, &[32]));
        assert_eq!(Sid::mandatory_label(LOW_RID).to_string(), "S-1-16-4096");
        assert_eq!(Sid::mandatory_label(MEDIUM_RID).to_string(), "S-1-16-8192");
        assert_eq!(Sid::mandatory_label(HIGH_RID).to_string(), "S-1-16-12288");
        assert_eq!(Sid::mandatory_label(SYSTEM_RID).to_string(), "S-1-16-16384");
    }
    #[test]
    fn binary_layout_of_local_system() {
        assert_eq!(
            Sid::local_system().to_bytes(),
            [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]
        );
    }
    #[test]
    fn binary_roundtrip() {
        let s = Sid::parse_str("S-1-5-21-1-2-3-1001").unwrap();
        let b = s.to_bytes();
        assert_eq!(b.len(), 28);
        assert_eq!(Sid::parse(&b).unwrap(), (s, 28));
    }
    #[test]
    fn bad_revision() {
        assert_eq!(
            Sid::parse(&[2, 0, 0, 0, 0, 0, 0, 5]),
            Err(STATUS_INVALID_SID)
        );
    }
    #[test]
    fn too_many_subauthorities() {
        let mut b = alloc::vec![1u8, 16, 0, 0, 0, 0, 0, 5];
        b.resize(8 + 64, 0);
        assert_eq!(Sid::parse(&b), Err(STATUS_INVALID_SID));
        assert!(Sid::new(5, &[0; 16]).is_none());
        assert!(Sid::new(5, &[0; 15]).is_some());
    }
    #[test]
    fn truncated() {
        assert_eq!(
            Sid::parse(&[1, 1, 0, 0, 0, 0, 0, 5, 18]),
            Err(STATUS_INVALID_SID)
        );
        assert_eq!(Sid::parse(&[1]), Err(STATUS_INVALID_SID));
    }
    #[test]
    fn zero_subauthorities_ok() {
        assert_eq!(Sid::parse(&[1, 0, 0, 0, 0, 0, 0, 5]).unwrap().1, 8);
    }
    #[test]
    fn string_errors() {
        for s in [
            "",
            "S-",
            "S-2-5",
            "S-1",
            "S-1-x",
            "S-1-5-",
            "S-1-5--1",
            "X-1-5",
            "S-1-5-4294967296",
        ] {
            assert_eq!(Sid::parse_str(s), Err(STATUS_INVALID_SID), "{s}");
        }
    }
    #[test]
    fn big_authority_hex() {
        let s = Sid::new(0x1234_5678_9abc, &[1]).unwrap();
        let t = s.to_string();
        assert_eq!(t, "S-1-0x123456789ABC-1");
        assert_eq!(Sid::parse_str(&t).unwrap(), s);
    }
    #[test]
    fn integrity() {
        assert_eq!(Sid::mandatory_label(HIGH_RID).integrity_rid(), Some(0x3000));
        assert_eq!(Sid::local_system().integrity_rid(), None);
    }
}
