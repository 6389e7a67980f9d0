//! `ACE_HEADER`, the ACE types, and `ACL` (`RtlValidAcl`, `RtlAddAce`).

use crate::sid::Sid;
use alloc::vec::Vec;
use nt::status::*;

/// `ACCESS_ALLOWED_ACE_TYPE`.
pub const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
/// `ACCESS_DENIED_ACE_TYPE`.
pub const ACCESS_DENIED_ACE_TYPE: u8 = 1;
/// `SYSTEM_AUDIT_ACE_TYPE`.
pub const SYSTEM_AUDIT_ACE_TYPE: u8 = 2;
/// `ACCESS_ALLOWED_OBJECT_ACE_TYPE`.
pub const ACCESS_ALLOWED_OBJECT_ACE_TYPE: u8 = 5;
/// `ACCESS_DENIED_OBJECT_ACE_TYPE`.
pub const ACCESS_DENIED_OBJECT_ACE_TYPE: u8 = 6;
/// `SYSTEM_AUDIT_OBJECT_ACE_TYPE`.
pub const SYSTEM_AUDIT_OBJECT_ACE_TYPE: u8 = 7;
/// `ACCESS_ALLOWED_CALLBACK_ACE_TYPE`.
pub const ACCESS_ALLOWED_CALLBACK_ACE_TYPE: u8 = 9;
/// `ACCESS_DENIED_CALLBACK_ACE_TYPE`.
pub const ACCESS_DENIED_CALLBACK_ACE_TYPE: u8 = 10;
/// `SYSTEM_MANDATORY_LABEL_ACE_TYPE`.
pub const SYSTEM_MANDATORY_LABEL_ACE_TYPE: u8 = 0x11;

/// `OBJECT_INHERIT_ACE`.
pub const OBJECT_INHERIT_ACE: u8 = 0x01;
/// `CONTAINER_INHERIT_ACE`.
pub const CONTAINER_INHERIT_ACE: u8 = 0x02;
/// `NO_PROPAGATE_INHERIT_ACE`.
pub const NO_PROPAGATE_INHERIT_ACE: u8 = 0x04;
/// `INHERIT_ONLY_ACE`.
pub const INHERIT_ONLY_ACE: u8 = 0x08;
/// `INHERITED_ACE`.
pub const INHERITED_ACE: u8 = 0x10;
/// `SUCCESSFUL_ACCESS_ACE_FLAG`.
pub const SUCCESSFUL_ACCESS_ACE_FLAG: u8 = 0x40;
/// `FAILED_ACCESS_ACE_FLAG`.
pub const FAILED_ACCESS_ACE_FLAG: u8 = 0x80;

/// `SYSTEM_MANDATORY_LABEL_NO_WRITE_UP`.
pub const MANDATORY_NO_WRITE_UP: u32 = 1;
/// `SYSTEM_MANDATORY_LABEL_NO_READ_UP`.
pub const MANDATORY_NO_READ_UP: u32 = 2;
/// `SYSTEM_MANDATORY_LABEL_NO_EXECUTE_UP`.
pub const MANDATORY_NO_EXECUTE_UP: u32 = 4;

/// `ACL_REVISION`.
pub const ACL_REVISION: u8 = 2;
/// `ACL_REVISION_DS` (object ACEs allowed).
pub const ACL_REVISION_DS: u8 = 4;

/// One ACE. Object ACEs keep their GUIDs; callback ACEs keep application data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    /// `AceType`.
    pub ace_type: u8,
    /// `AceFlags`.
    pub flags: u8,
    /// `Mask`.
    pub mask: u32,
    /// `SidStart`.
    pub sid: Sid,
    /// Object ACE `Flags`, `ObjectType` and `InheritedObjectType` (type 5-8).
    pub object: Option<ObjectAceData>,
    /// Trailing application data (callback ACEs, or padding kept verbatim).
    pub extra: Vec<u8>,
}

/// The object-specific part of `ACCESS_ALLOWED_OBJECT_ACE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectAceData {
    /// `ACE_OBJECT_TYPE_PRESENT` | `ACE_INHERITED_OBJECT_TYPE_PRESENT`.
    pub flags: u32,
    /// `ObjectType`.
    pub object_type: Option<[u8; 16]>,
    /// `InheritedObjectType`.
    pub inherited_object_type: Option<[u8; 16]>,
}

fn is_object_type(t: u8) -> bool {
    (5..=8).contains(&t) || (11..=16).contains(&t) && t != 13 && t != 14
}

fn is_known_type(t: u8) -> bool {
    t <= 0x13
}

impl Ace {
    /// A simple (non-object) ACE.
    pub fn new(ace_type: u8, flags: u8, mask: u32, sid: Sid) -> Ace {
        Ace {
            ace_type,
            flags,
            mask,
            sid,
            object: None,
            extra: Vec::new(),
        }
    }
    /// `ACCESS_ALLOWED_ACE`.
    pub fn allow(mask: u32, sid: Sid) -> Ace {
        Ace::new(ACCESS_ALLOWED_ACE_TYPE, 0, mask, sid)
    }
    /// `ACCESS_DENIED_ACE`.
    pub fn deny(mask: u32, sid: Sid) -> Ace {
        Ace::new(ACCESS_DENIED_ACE_TYPE, 0, mask, sid)
    }
    /// `SYSTEM_MANDATORY_LABEL_ACE` with a policy mask.
    pub fn label(rid: u32, policy: u32) -> Ace {
        Ace::new(
            SYSTEM_MANDATORY_LABEL_ACE_TYPE,
            0,
            policy,
            Sid::mandatory_label(rid),
        )
    }
    /// True if `INHERIT_ONLY_ACE` is set (not applied to this object).
    pub fn inherit_only(&self) -> bool {
        self.flags & INHERIT_ONLY_ACE != 0
    }
    /// True for the callback ACE types (conditional ACEs), which ntrs rejects
    /// in access checks.
    pub fn is_callback(&self) -> bool {
        matches!(self.ace_type, 9..=16) && !matches!(self.ace_type, 0x11..)
    }
    /// Parses one ACE at the start of `b`; returns it and `AceSize`.
    pub fn parse(b: &[u8]) -> Result<(Ace, usize), NtStatus> {
        if b.len() < 4 {
            return Err(STATUS_INVALID_ACL);
        }
        let ace_type = b[0];
        let flags = b[1];
        let size = u16::from_le_bytes([b[2], b[3]]) as usize;
        if size < 16 || !size.is_multiple_of(4) || size > b.len() || !is_known_type(ace_type) {
            return Err(STATUS_INVALID_ACL);
        }
        let body = &b[..size];
        let mask = u32::from_le_bytes(body[4..8].try_into().unwrap());
        let mut off = 8;
        let object = if is_object_type(ace_type) {
            if size < 12 {
                return Err(STATUS_INVALID_ACL);
            }
            let of = u32::from_le_bytes(body[8..12].try_into().unwrap());
            off = 12;
            let mut guid = |present: bool| -> Result<Option<[u8; 16]>, NtStatus> {
                if !present {
                    return Ok(None);
                }
                let g = body.get(off..off + 16).ok_or(STATUS_INVALID_ACL)?;
                off += 16;
                Ok(Some(g.try_into().unwrap()))
            };
            let object_type = guid(of & 1 != 0)?;
            let inherited_object_type = guid(of & 2 != 0)?;
            Some(ObjectAceData {
                flags: of,
                object_type,
                inherited_object_type,
            })
        } else {
            None
        };
        let (sid, n) = Sid::parse(&body[off..]).map_err(|_| STATUS_INVALID_ACL)?;
        let extra = body[off + n..].to_vec();
        Ok((
            Ace {
                ace_type,
                flags,
                mask,
                sid,
                object,
                extra,
            },
            size,
        ))
    }
    /// Size in bytes of the serialized ACE (`AceSize`), a multiple of 4.
    pub fn size(&self) -> usize {
        let mut n = 8 + self.sid.len() + self.extra.len();
        if let Some(o) = &self.object {
            n += 4 + 16
                * (o.object_type.is_some() as usize + o.inherited_object_type.is_some() as usize);
        }
        (n + 3) & !3
    }
    /// Appends the binary ACE.
    pub fn write(&self, v: &mut Vec<u8>) {
        let start = v.len();
        v.push(self.ace_type);
        v.push(self.flags);
        v.extend_from_slice(&(self.size() as u16).to_le_bytes());
        v.extend_from_slice(&self.mask.to_le_bytes());
        if let Some(o) = &self.object {
            // The presence bits follow the GUIDs; any other bits are kept as read.
            let f = (o.flags & !3)
                | (o.object_type.is_some() as u32)
                | ((o.inherited_object_type.is_some() as u32) << 1);
            v.extend_from_slice(&f.to_le_bytes());
            if let Some(g) = &o.object_type {
                v.extend_from_slice(g);
            }
            if let Some(g) = &o.inherited_object_type {
                v.extend_from_slice(g);
            }
        }
        self.sid.write(v);
        v.extend_from_slice(&self.extra);
        while v.len() - start < self.size() {
            v.push(0);
        }
    }
}

/// An `ACL`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Acl {
    /// `AclRevision` (2 or 4).
    pub revision: u8,
    /// The ACEs in order.
    pub aces: Vec<Ace>,
}

impl Acl {
    /// `RtlCreateAcl` with `ACL_REVISION`.
    pub fn new() -> Acl {
        Acl {
            revision: ACL_REVISION,
            aces: Vec::new(),
        }
    }
    /// Builds an ACL from ACEs, picking revision 4 if any object ACE is present.
    pub fn from_aces(aces: Vec<Ace>) -> Acl {
        let revision = if aces.iter().any(|a| a.object.is_some()) {
            ACL_REVISION_DS
        } else {
            ACL_REVISION
        };
        Acl { revision, aces }
    }
    /// Parses an ACL (`RtlValidAcl`); returns it and `AclSize`.
    pub fn parse(b: &[u8]) -> Result<(Acl, usize), NtStatus> {
        if b.len() < 8 {
            return Err(STATUS_INVALID_ACL);
        }
        let revision = b[0];
        if !(ACL_REVISION..=ACL_REVISION_DS).contains(&revision) {
            return Err(STATUS_INVALID_ACL);
        }
        let size = u16::from_le_bytes([b[2], b[3]]) as usize;
        let count = u16::from_le_bytes([b[4], b[5]]) as usize;
        if size < 8 || size > b.len() || !size.is_multiple_of(4) {
            return Err(STATUS_INVALID_ACL);
        }
        let mut off = 8;
        let mut aces = Vec::new();
        for _ in 0..count {
            let (ace, n) = Ace::parse(&b[off..size])?;
            if ace.object.is_some() && revision < ACL_REVISION_DS {
                return Err(STATUS_INVALID_ACL);
            }
            aces.push(ace);
            off += n;
        }
        Ok((Acl { revision, aces }, size))
    }
    /// `AclSize` of the serialized form.
    pub fn size(&self) -> usize {
        8 + self.aces.iter().map(Ace::size).sum::<usize>()
    }
    /// Serializes the ACL.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write(&mut v);
        v
    }
    /// Appends the binary ACL.
    pub fn write(&self, v: &mut Vec<u8>) {
        v.push(self.revision);
        v.push(0);
        v.extend_from_slice(&(self.size() as u16).to_le_bytes());
        v.extend_from_slice(&(self.aces.len() as u16).to_le_bytes());
        v.extend_from_slice(&[0, 0]);
        for a in &self.aces {
            a.write(v);
        }
    }
    /// Canonical order for a DACL: explicit deny, explicit allow, then
    /// inherited ACEs (deny before allow within them is not required by
    /// Windows' checker; ntrs checks explicit-before-inherited and
    /// explicit deny-before-allow).
    pub fn is_canonical(&self) -> bool {
        let mut stage = 0; // 0 explicit deny, 1 explicit allow, 2 inherited
        for a in &self.aces {
            let inherited = a.flags & INHERITED_ACE != 0;
            let deny = matches!(
                a.ace_type,
                ACCESS_DENIED_ACE_TYPE | ACCESS_DENIED_OBJECT_ACE_TYPE
            );
            let s = if inherited {
                2
            } else if deny {
                0
            } else {
                1
            };
            if s < stage {
                return false;
            }
            stage = s;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn ace_layout() {
        let a = Ace::allow(0x1F01FF, Sid::world());
        let mut v = Vec::new();
        a.write(&mut v);
        assert_eq!(v.len(), 20);
        assert_eq!(&v[..8], &[0, 0, 20, 0, 0xFF, 0x01, 0x1F, 0]);
        assert_eq!(Ace::parse(&v).unwrap(), (a, 20));
    }
    #[test]
    fn acl_roundtrip() {
        let acl = Acl::from_aces(vec![
            Ace::deny(1, Sid::world()),
            Ace::allow(2, Sid::local_system()),
        ]);
        let b = acl.to_bytes();
        assert_eq!(b.len(), 8 + 20 + 20);
        assert_eq!(Acl::parse(&b).unwrap(), (acl, 48));
    }
    #[test]
    fn empty_acl() {
        let b = Acl::new().to_bytes();
        assert_eq!(b, [2, 0, 8, 0, 0, 0, 0, 0]);
        assert!(Acl::parse(&b).unwrap().0.aces.is_empty());
    }
    #[test]
    fn bad_revision() {
        assert_eq!(
            Acl::parse(&[1, 0, 8, 0, 0, 0, 0, 0]),
            Err(STATUS_INVALID_ACL)
        );
        assert_eq!(
            Acl::parse(&[5, 0, 8, 0, 0, 0, 0, 0]),
            Err(STATUS_INVALID_ACL)
        );
    }
    #[test]
    fn size_beyond_buffer() {
        assert_eq!(
            Acl::parse(&[2, 0, 12, 0, 0, 0, 0, 0]),
            Err(STATUS_INVALID_ACL)
        );
    }
    #[test]
    fn count_beyond_size() {
        assert_eq!(
            Acl::parse(&[2, 0, 8, 0, 1, 0, 0, 0]),
            Err(STATUS_INVALID_ACL)
        );
    }
    #[test]
    fn ace_size_too_small() {
        let mut b = Acl::from_aces(vec![Ace::allow(1, Sid::world())]).to_bytes();
        b[10] = 8;
        assert_eq!(Acl::parse(&b), Err(STATUS_INVALID_ACL));
    }
    #[test]
    fn object_ace_roundtrip_needs_rev4() {
        let mut a = Ace::new(ACCESS_ALLOWED_OBJECT_ACE_TYPE, 0, 0x100, Sid::world());
        a.object = Some(ObjectAceData {
            flags: 1,
            object_type: Some([7; 16]),
            inherited_object_type: None,
        });
        let acl = Acl::from_aces(vec![a]);
        assert_eq!(acl.revision, 4);
        let mut b = acl.to_bytes();
        assert_eq!(Acl::parse(&b).unwrap().0, acl);
        b[0] = 2;
        assert_eq!(Acl::parse(&b), Err(STATUS_INVALID_ACL));
    }
    #[test]
    fn callback_ace_parsed() {
        let mut a = Ace::new(ACCESS_ALLOWED_CALLBACK_ACE_TYPE, 0, 1, Sid::world());
        a.extra = vec![b'a', b'r', b't', b'x'];
        let b = Acl::from_aces(vec![a.clone()]).to_bytes();
        let p = Acl::parse(&b).unwrap().0;
        assert!(p.aces[0].is_callback());
        assert_eq!(p.aces[0], a);
    }
    #[test]
    fn canonical_order() {
        let w = Sid::world;
        assert!(Acl::from_aces(vec![Ace::deny(1, w()), Ace::allow(1, w())]).is_canonical());
        assert!(!Acl::from_aces(vec![Ace::allow(1, w()), Ace::deny(1, w())]).is_canonical());
        let mut inh = Ace::allow(1, w());
        inh.flags = INHERITED_ACE;
        assert!(!Acl::from_aces(vec![inh.clone(), Ace::allow(1, w())]).is_canonical());
        assert!(Acl::from_aces(vec![Ace::allow(1, w()), inh]).is_canonical());
    }
}
