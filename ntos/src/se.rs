//! The security reference monitor in the kernel (*Windows Internals*,
//! Part 1, ch. 7, "Access tokens", "Impersonation"): tokens are objects of
//! the `Token` type whose bodies are the host-tested `security` crate's
//! `Token`; the System process has a primary token (`SeMakeSystemToken`);
//! threads impersonate; object opens check access with the caller's
//! effective token (`SeCaptureSubjectContext`). kd: `!token`, `!sd`,
//! `!sddl`, `!acl`.
//!
//! Where ntrs differs: the process's `Token` field and the thread's
//! impersonation information (`ClientSecurity`, `ActiveImpersonationInfo`)
//! are kept here in two maps keyed by process id (`crate::ps` assigns a new
//! process its token and removes it when the process is deleted) and
//! kernel thread id. `ps_thread_exited` drops a thread's
//! impersonation when it exits: `se_init_system` registers it as the
//! kernel's thread-exit routine (`ke::sched::register_thread_exit_routine`),
//! which `terminate_current_thread` calls before the kernel's own part.

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use crate::ob::handle::{
    ob_create_handle, ob_reference_object_by_handle, KERNEL_HANDLE_MASK, NT_CURRENT_PROCESS,
    NT_CURRENT_THREAD, SYSTEM_PROCESS_ID,
};
use crate::ob::object::{
    ob_check_object_access, ob_create_object, ob_dereference_object, ob_query_object_security,
    ob_reference_object, ob_set_object_security, with_body, CreateSpec, Mode, ObjectBody,
};
use crate::ob::types::{ob_create_object_type, ObjectTypeRef, TypeInitializer};
use ::ob::namespace::ObjectId;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;
use security::access::GenericMapping;
use security::sid::Sid;
use security::token::{ImpersonationLevel, Token, TokenType};

/// `SeTokenObjectType`.
pub static SE_TOKEN_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();

/// Token access rights (`TOKEN_*`).
pub const TOKEN_ASSIGN_PRIMARY: u32 = 0x0001;
pub const TOKEN_DUPLICATE: u32 = 0x0002;
pub const TOKEN_IMPERSONATE: u32 = 0x0004;
pub const TOKEN_QUERY: u32 = 0x0008;
pub const TOKEN_ADJUST_PRIVILEGES: u32 = 0x0020;
pub const TOKEN_ALL_ACCESS: u32 = 0x000F_01FF;

/// The Token type's generic mapping: TOKEN_READ, TOKEN_WRITE,
/// TOKEN_EXECUTE, TOKEN_ALL_ACCESS.
const TOKEN_MAPPING: GenericMapping = GenericMapping {
    read: 0x0002_0008,
    write: 0x0002_00E0,
    execute: 0x0002_0000,
    all: TOKEN_ALL_ACCESS,
};

/// The descriptor of boot tokens: SYSTEM everything, Administrators read.
const TOKEN_SDDL: &str = "O:SYG:SYD:(A;;GA;;;SY)(A;;GR;;;BA)";

/// `EPROCESS.Token` stand-in: each process's primary token object (the
/// map holds one reference to it).
static PRIMARY_TOKENS: SpinLocked<BTreeMap<u32, ObjectId>, DISPATCH_LEVEL> =
    SpinLocked::new(BTreeMap::new());

/// `ETHREAD.ClientSecurity` stand-in: the impersonation token object of
/// each impersonating thread (one reference held) and its level.
static IMPERSONATION: SpinLocked<BTreeMap<u32, (ObjectId, ImpersonationLevel)>, DISPATCH_LEVEL> =
    SpinLocked::new(BTreeMap::new());

/// `ExAllocateLocallyUniqueId`: LUIDs after the well-known ones.
static NEXT_LUID: AtomicU64 = AtomicU64::new(0x3e8);

fn allocate_luid() -> u64 {
    NEXT_LUID.fetch_add(1, Ordering::Relaxed)
}

/// `SeCreateAccessToken`'s object half: a token object (unnamed, one
/// reference for the caller) with a fresh token id.
pub fn se_create_token_object(mut token: Token) -> Result<ObjectId, NtStatus> {
    token.token_id = allocate_luid();
    let sd = security::sddl::parse(TOKEN_SDDL).map_err(|_| STATUS_INVALID_SECURITY_DESCR)?;
    let (id, _) = ob_create_object(CreateSpec {
        object_type: &SE_TOKEN_OBJECT_TYPE,
        name: None,
        attributes: 0,
        body: ObjectBody::Token(Arc::new(token)),
        sd: Some(sd),
    })?;
    Ok(id)
}

/// The token body of a token object.
pub fn token_of(id: ObjectId) -> Option<Arc<Token>> {
    with_body(id, |b| match &b.body {
        ObjectBody::Token(t) => Some(Arc::clone(t)),
        _ => None,
    })
    .flatten()
}

/// `SeInitSystem`: the Token type and the System process's primary token
/// (`SeMakeSystemToken`).
pub fn se_init_system() -> Result<(), NtStatus> {
    ob_create_object_type(
        "Token",
        TypeInitializer {
            generic_mapping: TOKEN_MAPPING,
            ..Default::default()
        },
        &SE_TOKEN_OBJECT_TYPE,
    )?;
    crate::ke::sched::register_thread_exit_routine(ps_thread_exited);
    let system = se_create_token_object(Token::system())?;
    if let Some(old) = PRIMARY_TOKENS.with(|m| m.insert(SYSTEM_PROCESS_ID, system)) {
        ob_dereference_object(old);
    }
    Ok(())
}

/// The current thread's kernel id and its process's client id (the idle
/// threads count as System's).
fn current_thread_and_process() -> (u32, u32) {
    let t = crate::ke::sched::current_thread();
    let pid = crate::ps::ps_get_current_process_id();
    (t.id, if pid == 0 { SYSTEM_PROCESS_ID } else { pid })
}

/// `SeSubProcessToken`: process `pid` gets a primary token duplicated from
/// process `parent`'s (a new token object with a fresh token id).
pub fn se_assign_process_token(pid: u32, parent: u32) -> Result<(), NtStatus> {
    let src = ps_reference_primary_token(parent).ok_or(STATUS_NO_TOKEN)?;
    let t = token_of(src);
    ob_dereference_object(src);
    let mut t = (*t.ok_or(STATUS_NO_TOKEN)?).clone();
    t.token_type = TokenType::Primary;
    let id = se_create_token_object(t)?;
    if let Some(old) = PRIMARY_TOKENS.with(|m| m.insert(pid, id)) {
        ob_dereference_object(old);
    }
    Ok(())
}

/// The process `pid` is deleted (`PspProcessDelete` → `PspDeleteProcessSecurity`):
/// its primary token reference goes.
pub fn se_remove_process_token(pid: u32) {
    if let Some(old) = PRIMARY_TOKENS.with(|m| m.remove(&pid)) {
        ob_dereference_object(old);
    }
}

/// `PsReferencePrimaryToken`: the process's primary token object,
/// referenced (the caller dereferences it). A process without its own token
/// runs with the System process's (all processes are System's today).
pub fn ps_reference_primary_token(process_id: u32) -> Option<ObjectId> {
    PRIMARY_TOKENS.with(|m| {
        let id = *m.get(&process_id).or_else(|| m.get(&SYSTEM_PROCESS_ID))?;
        // The map's reference keeps it alive while the map is locked.
        ob_reference_object(id).ok().map(|_| id)
    })
}

/// `PsReferenceImpersonationToken`: the thread's impersonation token
/// object, referenced, with its level; `None` when not impersonating.
pub fn ps_reference_impersonation_token(thread_id: u32) -> Option<(ObjectId, ImpersonationLevel)> {
    IMPERSONATION.with(|m| {
        let &(id, level) = m.get(&thread_id)?;
        ob_reference_object(id).ok().map(|_| (id, level))
    })
}

/// `SECURITY_SUBJECT_CONTEXT`: the tokens an access check uses.
pub struct SubjectContext {
    /// `ClientToken` and `ImpersonationLevel` when the thread impersonates.
    pub client: Option<(Arc<Token>, ImpersonationLevel)>,
    /// `PrimaryToken`.
    pub primary: Arc<Token>,
}

impl SubjectContext {
    /// `SeQuerySubjectContextToken`: the impersonation token if any, else
    /// the primary token.
    pub fn effective_token(&self) -> &Token {
        match &self.client {
            Some((t, _)) => t,
            None => &self.primary,
        }
    }
}

/// `SeCaptureSubjectContext` for the current thread: its impersonation
/// token (if any) and its process's primary token, as they are now (later
/// changes to the thread's impersonation do not affect the capture).
pub fn se_capture_subject_context() -> SubjectContext {
    let (tid, pid) = current_thread_and_process();
    let client = ps_reference_impersonation_token(tid).and_then(|(id, level)| {
        let t = token_of(id);
        ob_dereference_object(id);
        t.map(|t| (t, level))
    });
    let primary = ps_reference_primary_token(pid)
        .and_then(|id| {
            let t = token_of(id);
            ob_dereference_object(id);
            t
        })
        // Before `se_init_system` (phase 0) the subject is SYSTEM.
        .unwrap_or_else(|| Arc::new(Token::system()));
    SubjectContext { client, primary }
}

/// `PsImpersonateClient`: the thread impersonates `token` (a referenced
/// token object the call takes over) at `level`; `None` reverts.
pub fn ps_impersonate_client(thread_id: u32, token: Option<(ObjectId, ImpersonationLevel)>) {
    let old = IMPERSONATION.with(|m| match token {
        Some(t) => m.insert(thread_id, t),
        None => m.remove(&thread_id),
    });
    if let Some((id, _)) = old {
        ob_dereference_object(id);
    }
}

/// `PsRevertToSelf` for the current thread.
pub fn ps_revert_to_self() {
    ps_impersonate_client(current_thread_and_process().0, None);
}

/// Drops a thread's impersonation when it exits (`PspExitThread`): the
/// kernel's thread-exit routine, called by the exiting thread itself.
pub fn ps_thread_exited(thread_id: u32) {
    ps_impersonate_client(thread_id, None);
}

/// A token object behind a handle, referenced, with the access checked.
fn token_by_handle(
    handle: u64,
    desired: u32,
    mode: Mode,
) -> Result<(crate::ob::handle::ObjectRef, Arc<Token>), NtStatus> {
    let r = ob_reference_object_by_handle(handle, desired, Some(&SE_TOKEN_OBJECT_TYPE), mode)?;
    let t = token_of(r.id).ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    Ok((r, t))
}

/// Opens a token object for the caller: checks `desired` against the
/// token's descriptor with `subject` (`ObOpenObjectByPointer`).
fn open_token(id: ObjectId, desired: u32, mode: Mode, subject: &Token) -> Result<u64, NtStatus> {
    let sd = ob_query_object_security(id)?;
    let granted = ob_check_object_access(
        sd.as_ref(),
        &SE_TOKEN_OBJECT_TYPE,
        desired,
        mode,
        0,
        subject,
    )?;
    ob_create_handle(id, granted, 0)
}

/// Accepts only `NtCurrentProcess()`/`NtCurrentThread()`: ntrs has no
/// process or thread objects yet, so any other valid handle names an object
/// of another type (STATUS_OBJECT_TYPE_MISMATCH) and anything else is
/// STATUS_INVALID_HANDLE.
fn pseudo_handle_only(handle: u64, want: u64, mode: Mode) -> Result<(), NtStatus> {
    if handle == want {
        return Ok(());
    }
    if handle & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK && mode == Mode::UserMode {
        return Err(STATUS_INVALID_HANDLE);
    }
    ob_reference_object_by_handle(handle, 0, None, Mode::KernelMode)?;
    Err(STATUS_OBJECT_TYPE_MISMATCH)
}

/// `NtOpenProcessToken`: a handle to the process's primary token.
pub fn nt_open_process_token(process: u64, desired: u32, mode: Mode) -> Result<u64, NtStatus> {
    pseudo_handle_only(process, NT_CURRENT_PROCESS, mode)?;
    let subject = se_capture_subject_context();
    let (_, pid) = current_thread_and_process();
    let id = ps_reference_primary_token(pid).ok_or(STATUS_NO_TOKEN)?;
    let r = open_token(id, desired, mode, subject.effective_token());
    ob_dereference_object(id);
    r
}

/// `NtOpenThreadToken`: a handle to the thread's impersonation token;
/// STATUS_NO_TOKEN when it does not impersonate. `open_as_self` checks the
/// access with the process's primary token instead of the impersonation one.
pub fn nt_open_thread_token(
    thread: u64,
    desired: u32,
    open_as_self: bool,
    mode: Mode,
) -> Result<u64, NtStatus> {
    pseudo_handle_only(thread, NT_CURRENT_THREAD, mode)?;
    let subject = se_capture_subject_context();
    let (tid, _) = current_thread_and_process();
    let (id, _) = ps_reference_impersonation_token(tid).ok_or(STATUS_NO_TOKEN)?;
    let checker: &Token = if open_as_self {
        &subject.primary
    } else {
        subject.effective_token()
    };
    let r = open_token(id, desired, mode, checker);
    ob_dereference_object(id);
    r
}

/// `NtDuplicateToken`: a new token object of `token_type` at `level`
/// (STATUS_BAD_IMPERSONATION_LEVEL above the source's); the source handle
/// needs TOKEN_DUPLICATE.
pub fn nt_duplicate_token(
    existing: u64,
    desired: u32,
    token_type: TokenType,
    level: ImpersonationLevel,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let (_r, t) = token_by_handle(existing, TOKEN_DUPLICATE, mode)?;
    let new = t.duplicate(token_type, level)?;
    let id = se_create_token_object(new)?;
    // The creator of a token gets the access it asks for.
    let granted = if desired & security::access::MAXIMUM_ALLOWED != 0 {
        TOKEN_ALL_ACCESS
    } else {
        security::access::map_generic(desired, &TOKEN_MAPPING)
    };
    let h = ob_create_handle(id, granted, 0);
    ob_dereference_object(id);
    h
}

/// `NtFilterToken` with restricting SIDs only (`CreateRestrictedToken`):
/// a new token that every access check also checks against `restricted`;
/// the new handle has TOKEN_ALL_ACCESS. Disabling SIDs and deleting
/// privileges (the other `NtFilterToken` inputs) are not implemented.
pub fn nt_filter_token(existing: u64, restricted: &[Sid], mode: Mode) -> Result<u64, NtStatus> {
    let (_r, t) = token_by_handle(existing, TOKEN_DUPLICATE, mode)?;
    let id = se_create_token_object(t.restrict(restricted))?;
    let h = ob_create_handle(id, TOKEN_ALL_ACCESS, 0);
    ob_dereference_object(id);
    h
}

/// `NtSetInformationThread(ThreadImpersonationToken)` for
/// `NtCurrentThread()`: impersonates the token behind `token` (needs
/// TOKEN_IMPERSONATE; STATUS_BAD_TOKEN_TYPE for a primary token); 0
/// reverts. Without SeImpersonatePrivilege in the primary token, a token of
/// another user is downgraded to SecurityIdentification, as NT does.
pub fn nt_set_information_thread_impersonation_token(
    thread: u64,
    token: u64,
    mode: Mode,
) -> NtStatus {
    if let Err(s) = pseudo_handle_only(thread, NT_CURRENT_THREAD, mode) {
        return s;
    }
    if token == 0 {
        ps_revert_to_self();
        return STATUS_SUCCESS;
    }
    let (r, t) = match token_by_handle(token, TOKEN_IMPERSONATE, mode) {
        Ok(v) => v,
        Err(s) => return s,
    };
    if t.token_type != TokenType::Impersonation {
        return STATUS_BAD_TOKEN_TYPE;
    }
    let subject = se_capture_subject_context();
    let mut level = t.impersonation_level;
    if !subject
        .primary
        .has_privilege(security::token::privilege::IMPERSONATE)
        && subject.primary.user.sid != t.user.sid
    {
        level = level.min(ImpersonationLevel::Identification);
    }
    // The impersonation keeps its own reference.
    if ob_reference_object(r.id).is_err() {
        return STATUS_INVALID_HANDLE;
    }
    ps_impersonate_client(current_thread_and_process().0, Some((r.id, level)));
    STATUS_SUCCESS
}

/// `NtQuerySecurityObject` (the whole descriptor; needs READ_CONTROL).
pub fn nt_query_security_object(
    handle: u64,
    mode: Mode,
) -> Result<Option<security::sd::SecurityDescriptor>, NtStatus> {
    let r = ob_reference_object_by_handle(handle, security::access::READ_CONTROL, None, mode)?;
    ob_query_object_security(r.id)
}

/// `NtSetSecurityObject` (the whole descriptor; needs WRITE_DAC).
pub fn nt_set_security_object(
    handle: u64,
    sd: &security::sd::SecurityDescriptor,
    mode: Mode,
) -> NtStatus {
    match ob_reference_object_by_handle(handle, security::access::WRITE_DAC, None, mode) {
        Ok(r) => match ob_set_object_security(r.id, sd) {
            Ok(()) => STATUS_SUCCESS,
            Err(s) => s,
        },
        Err(s) => s,
    }
}

/// Writes kd output through `dbg_print!`.
struct Out;
impl core::fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::dbg_print!("{s}");
        Ok(())
    }
}

/// `!token [address]`: without an argument the current thread's effective
/// token (its impersonation token, else its process's primary token); with
/// an address, that token object.
pub fn kd_token(args: &str) {
    let id = match args.split_whitespace().next() {
        None => {
            let (tid, pid) = current_thread_and_process();
            match ps_reference_impersonation_token(tid) {
                Some((id, level)) => {
                    crate::dbg_println!("Thread is impersonating at level {level:?}.");
                    id
                }
                None => {
                    crate::dbg_println!("Thread is not impersonating. Using process token...");
                    match ps_reference_primary_token(pid) {
                        Some(id) => id,
                        None => {
                            crate::dbg_println!("The process has no token.");
                            return;
                        }
                    }
                }
            }
        }
        Some(a) => {
            let Some(id) = crate::kd::parse_number(a).and_then(crate::ob::object_at) else {
                crate::dbg_println!("{a} is not the address of an object");
                return;
            };
            if ob_reference_object(id).is_err() {
                crate::dbg_println!("{a} is not the address of an object");
                return;
            }
            id
        }
    };
    match token_of(id) {
        Some(t) => {
            crate::dbg_println!("_TOKEN {:016x}", crate::ob::object_address(id));
            let _ = security::kd::write_token(&mut Out, &t);
        }
        None => crate::dbg_println!(
            "{:016x} is not a token object",
            crate::ob::object_address(id)
        ),
    }
    ob_dereference_object(id);
}

/// `!sd <address|path>`: the security descriptor of the object at an
/// address (or with a name), as WinDbg dumps one.
pub fn kd_sd(args: &str) {
    let Some(a) = args.split_whitespace().next() else {
        crate::dbg_println!("usage: !sd <object address or \\path>   (!sddl <sddl> parses SDDL)");
        return;
    };
    let id = if a.starts_with('\\') {
        match crate::ob::with_ob(|st| st.ns.lookup(a, ::ob::OBJ_CASE_INSENSITIVE, None)) {
            Ok(::ob::namespace::Lookup::Found(id)) => Some(id),
            _ => None,
        }
    } else {
        crate::kd::parse_number(a).and_then(crate::ob::object_at)
    };
    let Some(id) = id else {
        crate::dbg_println!("{a} is not an object");
        return;
    };
    match ob_query_object_security(id) {
        Ok(Some(sd)) => {
            let _ = security::kd::write_sd(&mut Out, &sd);
        }
        Ok(None) => crate::dbg_println!(
            "Object {:016x} has no security descriptor",
            crate::ob::object_address(id)
        ),
        Err(s) => crate::dbg_println!("!sd: {s}"),
    }
}

/// `!sddl <sddl>`: parses an SDDL string and dumps the descriptor.
pub fn kd_sddl(sddl: &str) {
    match security::sddl::parse(sddl) {
        Ok(sd) => {
            let text = security::sddl::format(&sd).unwrap_or_default();
            crate::dbg_println!("SDDL: {text}");
            let _ = security::kd::write_sd(&mut Out, &sd);
        }
        Err(s) => crate::dbg_println!("!sddl: {s}"),
    }
}

/// `!acl <D:...|S:...>`: an ACL given in SDDL, laid out as WinDbg's `!acl`.
pub fn kd_acl(text: &str) {
    let sddl = if text.starts_with("D:") || text.starts_with("S:") {
        alloc::format!("O:SYG:SY{text}")
    } else {
        crate::dbg_println!("usage: !acl D:(A;;GA;;;SY)...   or   !acl S:(ML;;NW;;;HI)");
        return;
    };
    let sd = match security::sddl::parse(&sddl) {
        Ok(sd) => sd,
        Err(s) => {
            crate::dbg_println!("!acl: {s}");
            return;
        }
    };
    let Some(acl) = (if text.starts_with("D:") {
        sd.dacl
    } else {
        sd.sacl
    }) else {
        crate::dbg_println!("ACL is: NULL");
        return;
    };
    crate::dbg_println!("ACL is: ");
    let _ = security::kd::write_acl(&mut Out, "ACL is: ", &acl);
}
