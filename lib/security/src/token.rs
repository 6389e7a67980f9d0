//! Access tokens (`TOKEN`, `NtAdjustPrivilegesToken`, `NtDuplicateToken`).

use crate::sid::{self, Sid};
use alloc::vec;
use alloc::vec::Vec;
use nt::status::*;

/// `SE_GROUP_MANDATORY`.
pub const SE_GROUP_MANDATORY: u32 = 0x1;
/// `SE_GROUP_ENABLED_BY_DEFAULT`.
pub const SE_GROUP_ENABLED_BY_DEFAULT: u32 = 0x2;
/// `SE_GROUP_ENABLED`.
pub const SE_GROUP_ENABLED: u32 = 0x4;
/// `SE_GROUP_OWNER`.
pub const SE_GROUP_OWNER: u32 = 0x8;
/// `SE_GROUP_USE_FOR_DENY_ONLY`.
pub const SE_GROUP_USE_FOR_DENY_ONLY: u32 = 0x10;
/// `SE_GROUP_INTEGRITY`.
pub const SE_GROUP_INTEGRITY: u32 = 0x20;
/// `SE_GROUP_INTEGRITY_ENABLED`.
pub const SE_GROUP_INTEGRITY_ENABLED: u32 = 0x40;
/// `SE_GROUP_LOGON_ID`.
pub const SE_GROUP_LOGON_ID: u32 = 0xC000_0000;

/// `SE_PRIVILEGE_ENABLED_BY_DEFAULT`.
pub const SE_PRIVILEGE_ENABLED_BY_DEFAULT: u32 = 0x1;
/// `SE_PRIVILEGE_ENABLED`.
pub const SE_PRIVILEGE_ENABLED: u32 = 0x2;
/// `SE_PRIVILEGE_REMOVED`.
pub const SE_PRIVILEGE_REMOVED: u32 = 0x4;

/// Privilege LUIDs as Windows numbers them (`SE_*_PRIVILEGE` in wdm.h).
pub mod privilege {
    /// `SeCreateTokenPrivilege`.
    pub const CREATE_TOKEN: u32 = 2;
    /// `SeAssignPrimaryTokenPrivilege`.
    pub const ASSIGN_PRIMARY_TOKEN: u32 = 3;
    /// `SeLockMemoryPrivilege`.
    pub const LOCK_MEMORY: u32 = 4;
    /// `SeIncreaseQuotaPrivilege`.
    pub const INCREASE_QUOTA: u32 = 5;
    /// `SeMachineAccountPrivilege`.
    pub const MACHINE_ACCOUNT: u32 = 6;
    /// `SeTcbPrivilege`.
    pub const TCB: u32 = 7;
    /// `SeSecurityPrivilege`.
    pub const SECURITY: u32 = 8;
    /// `SeTakeOwnershipPrivilege`.
    pub const TAKE_OWNERSHIP: u32 = 9;
    /// `SeLoadDriverPrivilege`.
    pub const LOAD_DRIVER: u32 = 10;
    /// `SeSystemProfilePrivilege`.
    pub const SYSTEM_PROFILE: u32 = 11;
    /// `SeSystemtimePrivilege`.
    pub const SYSTEMTIME: u32 = 12;
    /// `SeProfileSingleProcessPrivilege`.
    pub const PROF_SINGLE_PROCESS: u32 = 13;
    /// `SeIncreaseBasePriorityPrivilege`.
    pub const INC_BASE_PRIORITY: u32 = 14;
    /// `SeCreatePagefilePrivilege`.
    pub const CREATE_PAGEFILE: u32 = 15;
    /// `SeCreatePermanentPrivilege`.
    pub const CREATE_PERMANENT: u32 = 16;
    /// `SeBackupPrivilege`.
    pub const BACKUP: u32 = 17;
    /// `SeRestorePrivilege`.
    pub const RESTORE: u32 = 18;
    /// `SeShutdownPrivilege`.
    pub const SHUTDOWN: u32 = 19;
    /// `SeDebugPrivilege`.
    pub const DEBUG: u32 = 20;
    /// `SeAuditPrivilege`.
    pub const AUDIT: u32 = 21;
    /// `SeSystemEnvironmentPrivilege`.
    pub const SYSTEM_ENVIRONMENT: u32 = 22;
    /// `SeChangeNotifyPrivilege`.
    pub const CHANGE_NOTIFY: u32 = 23;
    /// `SeRemoteShutdownPrivilege`.
    pub const REMOTE_SHUTDOWN: u32 = 24;
    /// `SeUndockPrivilege`.
    pub const UNDOCK: u32 = 25;
    /// `SeManageVolumePrivilege`.
    pub const MANAGE_VOLUME: u32 = 28;
    /// `SeImpersonatePrivilege`.
    pub const IMPERSONATE: u32 = 29;
    /// `SeCreateGlobalPrivilege`.
    pub const CREATE_GLOBAL: u32 = 30;
    /// `SeIncreaseWorkingSetPrivilege`.
    pub const INC_WORKING_SET: u32 = 33;
    /// `SeTimeZonePrivilege`.
    pub const TIME_ZONE: u32 = 34;
    /// `SeCreateSymbolicLinkPrivilege`.
    pub const CREATE_SYMBOLIC_LINK: u32 = 35;

    /// The privilege's name (`LookupPrivilegeName`), as `!token` prints it.
    pub fn name(luid: u32) -> Option<&'static str> {
        Some(match luid {
            2 => "SeCreateTokenPrivilege",
            3 => "SeAssignPrimaryTokenPrivilege",
            4 => "SeLockMemoryPrivilege",
            5 => "SeIncreaseQuotaPrivilege",
            6 => "SeMachineAccountPrivilege",
            7 => "SeTcbPrivilege",
            8 => "SeSecurityPrivilege",
            9 => "SeTakeOwnershipPrivilege",
            10 => "SeLoadDriverPrivilege",
            11 => "SeSystemProfilePrivilege",
            12 => "SeSystemtimePrivilege",
            13 => "SeProfileSingleProcessPrivilege",
            14 => "SeIncreaseBasePriorityPrivilege",
            15 => "SeCreatePagefilePrivilege",
            16 => "SeCreatePermanentPrivilege",
            17 => "SeBackupPrivilege",
            18 => "SeRestorePrivilege",
            19 => "SeShutdownPrivilege",
            20 => "SeDebugPrivilege",
            21 => "SeAuditPrivilege",
            22 => "SeSystemEnvironmentPrivilege",
            23 => "SeChangeNotifyPrivilege",
            24 => "SeRemoteShutdownPrivilege",
            25 => "SeUndockPrivilege",
            26 => "SeSyncAgentPrivilege",
            27 => "SeEnableDelegationPrivilege",
            28 => "SeManageVolumePrivilege",
            29 => "SeImpersonatePrivilege",
            30 => "SeCreateGlobalPrivilege",
            31 => "SeTrustedCredManAccessPrivilege",
            32 => "SeRelabelPrivilege",
            33 => "SeIncreaseWorkingSetPrivilege",
            34 => "SeTimeZonePrivilege",
            35 => "SeCreateSymbolicLinkPrivilege",
            36 => "SeDelegateSessionUserImpersonatePrivilege",
            _ => return None,
        })
    }
}

/// `SID_AND_ATTRIBUTES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidAndAttributes {
    /// `Sid`.
    pub sid: Sid,
    /// `Attributes` (`SE_GROUP_*`).
    pub attributes: u32,
}

/// `LUID_AND_ATTRIBUTES` for a privilege.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privilege {
    /// `Luid` (low part; the high part is 0 for all built-in privileges).
    pub luid: u32,
    /// `Attributes` (`SE_PRIVILEGE_*`).
    pub attributes: u32,
}

/// `TOKEN_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    /// `TokenPrimary`.
    Primary,
    /// `TokenImpersonation`.
    Impersonation,
}

/// `SECURITY_IMPERSONATION_LEVEL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImpersonationLevel {
    /// `SecurityAnonymous`.
    Anonymous,
    /// `SecurityIdentification`.
    Identification,
    /// `SecurityImpersonation`.
    Impersonation,
    /// `SecurityDelegation`.
    Delegation,
}

/// The kernel `TOKEN` object's security-relevant contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// `UserAndGroups[0]`.
    pub user: SidAndAttributes,
    /// The remaining groups, including the integrity label group.
    pub groups: Vec<SidAndAttributes>,
    /// `RestrictedSids` (empty if not restricted).
    pub restricted_sids: Vec<SidAndAttributes>,
    /// `Privileges`.
    pub privileges: Vec<Privilege>,
    /// `TokenType`.
    pub token_type: TokenType,
    /// `ImpersonationLevel` (meaningful for impersonation tokens).
    pub impersonation_level: ImpersonationLevel,
    /// `MandatoryPolicy` (`TOKEN_MANDATORY_POLICY_NO_WRITE_UP` = 1, `_NEW_PROCESS_MIN` = 2).
    pub mandatory_policy: u32,
    /// `DefaultOwnerIndex` into user+groups (0 = user).
    pub default_owner_index: usize,
    /// `PrimaryGroup`.
    pub primary_group: Sid,
    /// `AuthenticationId`: the logon session's LUID (`SYSTEM_LUID` for
    /// SYSTEM; 0 for a token made without a logon session).
    pub authentication_id: u64,
    /// `TokenId`: the LUID the kernel gives each token object (0 until then).
    pub token_id: u64,
}

/// `SYSTEM_LUID`: the logon session of LocalSystem.
pub const SYSTEM_LUID: u64 = 0x3e7;

/// `TOKEN_MANDATORY_POLICY_NO_WRITE_UP`.
pub const TOKEN_MANDATORY_POLICY_NO_WRITE_UP: u32 = 1;
/// `TOKEN_MANDATORY_POLICY_NEW_PROCESS_MIN`.
pub const TOKEN_MANDATORY_POLICY_NEW_PROCESS_MIN: u32 = 2;

const DEF: u32 = SE_GROUP_MANDATORY | SE_GROUP_ENABLED_BY_DEFAULT | SE_GROUP_ENABLED;

fn g(sid: Sid, attributes: u32) -> SidAndAttributes {
    SidAndAttributes { sid, attributes }
}
fn p(luid: u32, on: bool) -> Privilege {
    let a = if on {
        SE_PRIVILEGE_ENABLED | SE_PRIVILEGE_ENABLED_BY_DEFAULT
    } else {
        0
    };
    Privilege {
        luid,
        attributes: a,
    }
}

impl Token {
    /// The SYSTEM token (`SeMakeSystemToken`): LocalSystem, Administrators
    /// as owner, system integrity, most privileges enabled.
    pub fn system() -> Token {
        use privilege::*;
        let on = [
            CREATE_TOKEN,
            LOCK_MEMORY,
            TCB,
            CREATE_PAGEFILE,
            CREATE_PERMANENT,
            AUDIT,
            CHANGE_NOTIFY,
            DEBUG,
            IMPERSONATE,
            CREATE_GLOBAL,
            INC_BASE_PRIORITY,
            PROF_SINGLE_PROCESS,
            SYSTEM_PROFILE,
            CREATE_SYMBOLIC_LINK,
        ];
        let off = [
            ASSIGN_PRIMARY_TOKEN,
            INCREASE_QUOTA,
            SECURITY,
            TAKE_OWNERSHIP,
            LOAD_DRIVER,
            SYSTEMTIME,
            BACKUP,
            RESTORE,
            SHUTDOWN,
            SYSTEM_ENVIRONMENT,
            UNDOCK,
            MANAGE_VOLUME,
            INC_WORKING_SET,
            TIME_ZONE,
        ];
        let mut privileges: Vec<Privilege> = on
            .iter()
            .map(|&l| p(l, true))
            .chain(off.iter().map(|&l| p(l, false)))
            .collect();
        privileges.sort_by_key(|p| p.luid);
        Token {
            user: g(Sid::local_system(), 0),
            groups: vec![
                g(
                    Sid::builtin_administrators(),
                    SE_GROUP_ENABLED | SE_GROUP_ENABLED_BY_DEFAULT | SE_GROUP_OWNER,
                ),
                g(Sid::world(), DEF),
                g(Sid::authenticated_users(), DEF),
                g(
                    Sid::mandatory_label(sid::SYSTEM_RID),
                    SE_GROUP_INTEGRITY | SE_GROUP_INTEGRITY_ENABLED,
                ),
            ],
            restricted_sids: Vec::new(),
            privileges,
            token_type: TokenType::Primary,
            impersonation_level: ImpersonationLevel::Anonymous,
            mandatory_policy: TOKEN_MANDATORY_POLICY_NO_WRITE_UP
                | TOKEN_MANDATORY_POLICY_NEW_PROCESS_MIN,
            default_owner_index: 1,
            primary_group: Sid::local_system(),
            authentication_id: SYSTEM_LUID,
            token_id: 0,
        }
    }
    /// An elevated administrator's token (high integrity, admin privileges
    /// present but mostly disabled, as after UAC elevation).
    pub fn administrator(user: Sid) -> Token {
        use privilege::*;
        let mut t = Token::standard_user(user);
        t.groups.insert(
            0,
            g(
                Sid::builtin_administrators(),
                SE_GROUP_MANDATORY
                    | SE_GROUP_ENABLED
                    | SE_GROUP_ENABLED_BY_DEFAULT
                    | SE_GROUP_OWNER,
            ),
        );
        t.set_integrity(sid::HIGH_RID);
        for l in [
            SECURITY,
            TAKE_OWNERSHIP,
            LOAD_DRIVER,
            BACKUP,
            RESTORE,
            DEBUG,
            SYSTEMTIME,
            IMPERSONATE,
            CREATE_GLOBAL,
        ] {
            t.privileges
                .push(p(l, matches!(l, IMPERSONATE | CREATE_GLOBAL)));
        }
        t.privileges.sort_by_key(|p| p.luid);
        t.privileges.dedup_by_key(|p| p.luid);
        t.default_owner_index = 1;
        t
    }
    /// A standard (medium integrity) interactive user token.
    pub fn standard_user(user: Sid) -> Token {
        use privilege::*;
        Token {
            user: g(user, 0),
            groups: vec![
                g(Sid::world(), DEF),
                g(Sid::builtin_users(), DEF),
                g(Sid::interactive(), DEF),
                g(Sid::authenticated_users(), DEF),
                g(
                    Sid::mandatory_label(sid::MEDIUM_RID),
                    SE_GROUP_INTEGRITY | SE_GROUP_INTEGRITY_ENABLED,
                ),
            ],
            restricted_sids: Vec::new(),
            privileges: vec![
                p(SHUTDOWN, false),
                p(CHANGE_NOTIFY, true),
                p(UNDOCK, false),
                p(INC_WORKING_SET, false),
                p(TIME_ZONE, false),
            ],
            token_type: TokenType::Primary,
            impersonation_level: ImpersonationLevel::Anonymous,
            mandatory_policy: TOKEN_MANDATORY_POLICY_NO_WRITE_UP
                | TOKEN_MANDATORY_POLICY_NEW_PROCESS_MIN,
            default_owner_index: 0,
            primary_group: Sid::builtin_users(),
            authentication_id: 0,
            token_id: 0,
        }
    }
    /// The token's integrity level RID (`SeQueryTokenIntegrity`); tokens
    /// without a label group are treated as untrusted.
    pub fn integrity(&self) -> u32 {
        self.groups
            .iter()
            .find(|g| g.attributes & SE_GROUP_INTEGRITY != 0)
            .and_then(|g| g.sid.integrity_rid())
            .unwrap_or(sid::UNTRUSTED_RID)
    }
    /// Replaces the integrity label group.
    pub fn set_integrity(&mut self, rid: u32) {
        self.groups
            .retain(|g| g.attributes & SE_GROUP_INTEGRITY == 0);
        self.groups.push(g(
            Sid::mandatory_label(rid),
            SE_GROUP_INTEGRITY | SE_GROUP_INTEGRITY_ENABLED,
        ));
    }
    /// True if the privilege is present and enabled (`SePrivilegeCheck`).
    pub fn has_privilege(&self, luid: u32) -> bool {
        self.privileges
            .iter()
            .any(|p| p.luid == luid && p.attributes & SE_PRIVILEGE_ENABLED != 0)
    }
    /// `NtAdjustPrivilegesToken`. `None` disables all. Each entry enables
    /// (`SE_PRIVILEGE_ENABLED`), disables (0) or removes
    /// (`SE_PRIVILEGE_REMOVED`). Returns the previous state of the changed
    /// privileges and `STATUS_NOT_ALL_ASSIGNED` (a success-class warning
    /// code, returned as `Ok`) if some were not held.
    pub fn adjust_privileges(&mut self, new: Option<&[Privilege]>) -> (NtStatus, Vec<Privilege>) {
        let mut prev = Vec::new();
        let Some(new) = new else {
            for p in &mut self.privileges {
                if p.attributes & SE_PRIVILEGE_ENABLED != 0 {
                    prev.push(*p);
                    p.attributes &= !SE_PRIVILEGE_ENABLED;
                }
            }
            return (STATUS_SUCCESS, prev);
        };
        let mut status = STATUS_SUCCESS;
        for n in new {
            match self.privileges.iter().position(|p| p.luid == n.luid) {
                None => status = STATUS_NOT_ALL_ASSIGNED,
                Some(i) => {
                    prev.push(self.privileges[i]);
                    if n.attributes & SE_PRIVILEGE_REMOVED != 0 {
                        self.privileges.remove(i);
                    } else if n.attributes & SE_PRIVILEGE_ENABLED != 0 {
                        self.privileges[i].attributes |= SE_PRIVILEGE_ENABLED;
                    } else {
                        self.privileges[i].attributes &= !SE_PRIVILEGE_ENABLED;
                    }
                }
            }
        }
        (status, prev)
    }
    /// `NtDuplicateToken`. Making an impersonation token at a level above
    /// the source's impersonation level fails with
    /// `STATUS_BAD_IMPERSONATION_LEVEL`.
    pub fn duplicate(
        &self,
        token_type: TokenType,
        level: ImpersonationLevel,
    ) -> Result<Token, NtStatus> {
        if self.token_type == TokenType::Impersonation && level > self.impersonation_level {
            return Err(STATUS_BAD_IMPERSONATION_LEVEL);
        }
        if token_type == TokenType::Primary
            && self.token_type == TokenType::Impersonation
            && self.impersonation_level < ImpersonationLevel::Impersonation
        {
            return Err(STATUS_BAD_IMPERSONATION_LEVEL);
        }
        let mut t = self.clone();
        t.token_type = token_type;
        t.impersonation_level = level;
        Ok(t)
    }
    /// `NtFilterToken` / `CreateRestrictedToken` subset: adds restricting SIDs.
    pub fn restrict(&self, sids: &[Sid]) -> Token {
        let mut t = self.clone();
        t.restricted_sids.extend(sids.iter().map(|s| {
            g(
                s.clone(),
                SE_GROUP_ENABLED | SE_GROUP_MANDATORY | SE_GROUP_ENABLED_BY_DEFAULT,
            )
        }));
        t
    }
    /// True if the token has restricting SIDs (`SeTokenIsRestricted`).
    pub fn is_restricted(&self) -> bool {
        !self.restricted_sids.is_empty()
    }
    /// True if `sid` is the user or an enabled group; `for_deny` also matches
    /// deny-only groups (`SepSidInToken`).
    pub fn sid_in_token(&self, sid: &Sid, for_deny: bool) -> bool {
        if self.user.sid == *sid
            && (for_deny || self.user.attributes & SE_GROUP_USE_FOR_DENY_ONLY == 0)
        {
            return true;
        }
        self.groups.iter().any(|g| {
            g.sid == *sid
                && g.attributes & SE_GROUP_INTEGRITY == 0
                && (g.attributes & SE_GROUP_ENABLED != 0
                    && g.attributes & SE_GROUP_USE_FOR_DENY_ONLY == 0
                    || for_deny
                        && g.attributes & (SE_GROUP_USE_FOR_DENY_ONLY | SE_GROUP_ENABLED) != 0)
        })
    }
    /// `SeAccessCheck`'s rule for a subject impersonating: an impersonation
    /// token below `SecurityImpersonation` (anonymous or identification)
    /// cannot be used to open objects: STATUS_BAD_IMPERSONATION_LEVEL.
    pub fn check_usable_for_access(&self) -> Result<(), NtStatus> {
        if self.token_type == TokenType::Impersonation
            && self.impersonation_level < ImpersonationLevel::Impersonation
        {
            return Err(STATUS_BAD_IMPERSONATION_LEVEL);
        }
        Ok(())
    }
    /// Matches against the restricted SID list.
    pub fn sid_in_restricted(&self, sid: &Sid) -> bool {
        self.restricted_sids.iter().any(|g| g.sid == *sid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privilege::*;

    fn user() -> Sid {
        Sid::parse_str("S-1-5-21-1-2-3-1001").unwrap()
    }
    #[test]
    fn privilege_luids() {
        assert_eq!(TAKE_OWNERSHIP, 9);
        assert_eq!(SECURITY, 8);
        assert_eq!(BACKUP, 17);
        assert_eq!(RESTORE, 18);
        assert_eq!(CHANGE_NOTIFY, 23);
        assert_eq!(DEBUG, 20);
        assert_eq!(IMPERSONATE, 29);
    }
    #[test]
    fn system_token() {
        let t = Token::system();
        assert_eq!(t.user.sid, Sid::local_system());
        assert_eq!(t.integrity(), sid::SYSTEM_RID);
        assert!(t.has_privilege(TCB));
        assert!(!t.has_privilege(TAKE_OWNERSHIP));
        assert!(t.privileges.iter().any(|p| p.luid == TAKE_OWNERSHIP));
    }
    #[test]
    fn levels() {
        assert_eq!(Token::administrator(user()).integrity(), sid::HIGH_RID);
        assert_eq!(Token::standard_user(user()).integrity(), sid::MEDIUM_RID);
    }
    #[test]
    fn user_lacks_admin() {
        let t = Token::standard_user(user());
        assert!(!t.sid_in_token(&Sid::builtin_administrators(), true));
        assert!(t.sid_in_token(&Sid::world(), false));
        assert!(t.sid_in_token(&user(), false));
    }
    #[test]
    fn adjust_enable_and_previous_state() {
        let mut t = Token::administrator(user());
        let (s, prev) = t.adjust_privileges(Some(&[Privilege {
            luid: BACKUP,
            attributes: SE_PRIVILEGE_ENABLED,
        }]));
        assert_eq!(s, STATUS_SUCCESS);
        assert_eq!(prev[0].attributes & SE_PRIVILEGE_ENABLED, 0);
        assert!(t.has_privilege(BACKUP));
    }
    #[test]
    fn adjust_not_held_is_not_all_assigned() {
        let mut t = Token::standard_user(user());
        let (s, _) = t.adjust_privileges(Some(&[
            Privilege {
                luid: DEBUG,
                attributes: SE_PRIVILEGE_ENABLED,
            },
            Privilege {
                luid: SHUTDOWN,
                attributes: SE_PRIVILEGE_ENABLED,
            },
        ]));
        assert_eq!(s, STATUS_NOT_ALL_ASSIGNED);
        assert!(s.is_success());
        assert!(!t.has_privilege(DEBUG));
        assert!(t.has_privilege(SHUTDOWN));
    }
    #[test]
    fn adjust_disable_all() {
        let mut t = Token::system();
        let (_, prev) = t.adjust_privileges(None);
        assert!(!prev.is_empty());
        assert!(t
            .privileges
            .iter()
            .all(|p| p.attributes & SE_PRIVILEGE_ENABLED == 0));
    }
    #[test]
    fn adjust_remove() {
        let mut t = Token::standard_user(user());
        t.adjust_privileges(Some(&[Privilege {
            luid: SHUTDOWN,
            attributes: SE_PRIVILEGE_REMOVED,
        }]));
        assert!(t.privileges.iter().all(|p| p.luid != SHUTDOWN));
        let (s, _) = t.adjust_privileges(Some(&[Privilege {
            luid: SHUTDOWN,
            attributes: SE_PRIVILEGE_ENABLED,
        }]));
        assert_eq!(s, STATUS_NOT_ALL_ASSIGNED);
    }
    #[test]
    fn duplicate_levels() {
        let t = Token::standard_user(user());
        let imp = t
            .duplicate(TokenType::Impersonation, ImpersonationLevel::Identification)
            .unwrap();
        assert_eq!(imp.token_type, TokenType::Impersonation);
        assert_eq!(
            imp.duplicate(TokenType::Impersonation, ImpersonationLevel::Impersonation),
            Err(STATUS_BAD_IMPERSONATION_LEVEL)
        );
        assert_eq!(
            imp.duplicate(TokenType::Primary, ImpersonationLevel::Anonymous),
            Err(STATUS_BAD_IMPERSONATION_LEVEL)
        );
        let imp2 = t
            .duplicate(TokenType::Impersonation, ImpersonationLevel::Delegation)
            .unwrap();
        assert!(imp2
            .duplicate(TokenType::Primary, ImpersonationLevel::Anonymous)
            .is_ok());
    }
    #[test]
    fn identification_tokens_cannot_open_objects() {
        let t = Token::system();
        assert_eq!(t.check_usable_for_access(), Ok(()));
        let id = t
            .duplicate(TokenType::Impersonation, ImpersonationLevel::Identification)
            .unwrap();
        assert_eq!(
            id.check_usable_for_access(),
            Err(STATUS_BAD_IMPERSONATION_LEVEL)
        );
        let imp = t
            .duplicate(TokenType::Impersonation, ImpersonationLevel::Impersonation)
            .unwrap();
        assert_eq!(imp.check_usable_for_access(), Ok(()));
        assert_eq!(imp.authentication_id, SYSTEM_LUID);
    }
    #[test]
    fn privilege_names() {
        assert_eq!(privilege::name(2), Some("SeCreateTokenPrivilege"));
        assert_eq!(
            privilege::name(CHANGE_NOTIFY),
            Some("SeChangeNotifyPrivilege")
        );
        assert_eq!(privilege::name(IMPERSONATE), Some("SeImpersonatePrivilege"));
        assert_eq!(privilege::name(1), None);
    }
    #[test]
    fn deny_only_group() {
        let mut t = Token::administrator(user());
        t.groups[0].attributes = SE_GROUP_USE_FOR_DENY_ONLY;
        assert!(!t.sid_in_token(&Sid::builtin_administrators(), false));
        assert!(t.sid_in_token(&Sid::builtin_administrators(), true));
    }
}
