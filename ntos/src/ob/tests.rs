//! Boot tests of the object manager in the kernel: handles, references,
//! types, access, lifetime.

use crate::ex::event::{EX_EVENT_OBJECT_TYPE, EX_MUTANT_OBJECT_TYPE};
use crate::ktest::{check, Test, TestResult};
use crate::ob::handle::*;
use crate::ob::object::*;
use crate::ob::types::ObjectTypeRef;
use nt::status::*;

fn make(
    name: Option<&str>,
    ty: &'static ObjectTypeRef,
    sd: Option<security::sd::SecurityDescriptor>,
) -> Result<::ob::namespace::ObjectId, &'static str> {
    let (id, st) = ob_create_object(CreateSpec {
        object_type: ty,
        name,
        attributes: 0,
        body: ObjectBody::Plain,
        sd,
    })
    .map_err(|_| "ObCreateObject failed")?;
    check(st == STATUS_SUCCESS, "create status")?;
    Ok(id)
}

const EVENT_QUERY_STATE: u32 = 1;
const EVENT_MODIFY_STATE: u32 = 2;

fn t_reference_by_handle() -> TestResult {
    let event = Some(&EX_EVENT_OBJECT_TYPE);
    let mutant = Some(&EX_MUTANT_OBJECT_TYPE);
    let id = make(
        Some("\\BaseNamedObjects\\KTestRef"),
        &EX_EVENT_OBJECT_TYPE,
        None,
    )?;
    let h = ob_create_handle(id, EVENT_QUERY_STATE, 0).map_err(|_| "create handle")?;
    ob_dereference_object(id); // the creation reference; the handle keeps it alive
    check(
        h % 4 == 0 && h != 0,
        "handle values are non-zero multiples of 4",
    )?;
    {
        let r = ob_reference_object_by_handle(h, EVENT_QUERY_STATE, event, Mode::UserMode)
            .map_err(|_| "reference with granted access failed")?;
        check(
            r.id == id && r.granted_access == EVENT_QUERY_STATE,
            "wrong object",
        )?;
    }
    check(
        ob_reference_object_by_handle(h, EVENT_MODIFY_STATE, event, Mode::UserMode).err()
            == Some(STATUS_ACCESS_DENIED),
        "user mode got access the handle was not granted",
    )?;
    check(
        ob_reference_object_by_handle(h, EVENT_MODIFY_STATE, event, Mode::KernelMode).is_ok(),
        "kernel mode must not be access-checked on a handle",
    )?;
    check(
        ob_reference_object_by_handle(h, 0, mutant, Mode::KernelMode).err()
            == Some(STATUS_OBJECT_TYPE_MISMATCH),
        "wrong type was not STATUS_OBJECT_TYPE_MISMATCH",
    )?;
    check(
        ob_reference_object_by_handle(h + 0x400, 0, None, Mode::KernelMode).err()
            == Some(STATUS_INVALID_HANDLE),
        "unused handle was not STATUS_INVALID_HANDLE",
    )?;
    let kh =
        ob_create_handle(id, EVENT_QUERY_STATE, OBJ_KERNEL_HANDLE).map_err(|_| "kernel handle")?;
    check(
        kh & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK,
        "kernel handle lacks the sign bit",
    )?;
    check(
        ob_reference_object_by_handle(kh, 0, None, Mode::UserMode).err()
            == Some(STATUS_INVALID_HANDLE),
        "a kernel handle was usable from user mode",
    )?;
    let dup = nt_duplicate_object(h, 0, 0, DUPLICATE_SAME_ACCESS, Mode::UserMode)
        .map_err(|_| "duplicate")?;
    check(
        nt_duplicate_object(h, EVENT_MODIFY_STATE, 0, 0, Mode::UserMode).err()
            == Some(STATUS_ACCESS_DENIED),
        "duplicate widened access",
    )?;
    check(
        set_protect_from_close(dup, true) == STATUS_SUCCESS,
        "protect",
    )?;
    check(
        nt_close(dup) == STATUS_HANDLE_NOT_CLOSABLE,
        "protected handle closed",
    )?;
    check(
        set_protect_from_close(dup, false) == STATUS_SUCCESS,
        "unprotect",
    )?;
    check(nt_close(dup) == STATUS_SUCCESS, "close dup")?;
    check(nt_close(kh) == STATUS_SUCCESS, "close kernel handle")?;
    check(nt_close(h) == STATUS_SUCCESS, "close")?;
    check(
        nt_close(h) == STATUS_INVALID_HANDLE,
        "double close was not STATUS_INVALID_HANDLE",
    )?;
    // The last handle of a temporary object removed its name.
    let token = security::token::Token::system();
    check(
        ob_open_object_by_name(
            "\\BaseNamedObjects\\KTestRef",
            None,
            0,
            0,
            Mode::KernelMode,
            &token,
        )
        .err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "temporary object outlived its last handle",
    )
}

fn t_open_checks_access() -> TestResult {
    // Everyone may query, the test user is denied everything.
    let sd = security::sddl::parse("O:SYG:SYD:(D;;GA;;;S-1-5-21-1-2-3-1001)(A;;GA;;;WD)")
        .map_err(|_| "sddl")?;
    let id = make(
        Some("\\BaseNamedObjects\\KTestSecured"),
        &EX_EVENT_OBJECT_TYPE,
        Some(sd),
    )?;
    let h = ob_create_handle(id, 0x1F0003, 0).map_err(|_| "handle")?;
    ob_dereference_object(id);
    let user = security::sddl::parse_sid("S-1-5-21-1-2-3-1001").map_err(|_| "sid")?;
    let user_token = security::token::Token::standard_user(user);
    let system = security::token::Token::system();
    let path = "\\BaseNamedObjects\\KTestSecured";
    check(
        ob_open_object_by_name(
            path,
            Some(&EX_EVENT_OBJECT_TYPE),
            0,
            EVENT_QUERY_STATE,
            Mode::UserMode,
            &user_token,
        )
        .err()
            == Some(STATUS_ACCESS_DENIED),
        "denied token was granted",
    )?;
    let (oid, granted) = ob_open_object_by_name(
        path,
        Some(&EX_EVENT_OBJECT_TYPE),
        0,
        0x8000_0000,
        Mode::UserMode,
        &system,
    )
    .map_err(|_| "system token refused")?;
    ob_dereference_object(oid);
    check(
        granted == 0x0002_0001,
        "GENERIC_READ not mapped through the Event mapping",
    )?;
    check(
        ob_open_object_by_name(
            path,
            Some(&EX_MUTANT_OBJECT_TYPE),
            0,
            0,
            Mode::KernelMode,
            &system,
        )
        .err()
            == Some(STATUS_OBJECT_TYPE_MISMATCH),
        "open with the wrong type",
    )?;
    check(nt_close(h) == STATUS_SUCCESS, "close")
}

fn t_million_handles() -> TestResult {
    let id = make(None, &EX_EVENT_OBJECT_TYPE, None)?;
    let (p0, k0) = handle_counts();
    let mut grew = true;
    // Other processors allocate meanwhile: a leak grows every round.
    for _ in 0..3 {
        let before = crate::ex::pool::POOL.bytes_in_use();
        for _ in 0..350_000u32 {
            let h = ob_create_handle(id, 0x1F0003, 0).map_err(|_| "create handle")?;
            if nt_close(h) != STATUS_SUCCESS {
                return Err("close failed");
            }
        }
        if crate::ex::pool::POOL.bytes_in_use() <= before {
            grew = false;
        }
    }
    check(handle_counts() == (p0, k0), "handle count changed")?;
    check(!grew, "a million create/close pairs grew pool usage")?;
    let deleted = crate::ob::with_ob(|st| st.deleted_total);
    ob_dereference_object(id);
    check(
        crate::ob::with_ob(|st| st.deleted_total) == deleted + 1,
        "the last reference did not delete the object",
    )
}

/// Handle create, reference, dereference and close of an object that keeps
/// other references take no object-manager lock: they work while this
/// processor holds it (the old table-and-namespace locks deadlocked here).
fn t_handle_paths_take_no_ob_lock() -> TestResult {
    let id = make(None, &EX_EVENT_OBJECT_TYPE, None)?;
    let h = ob_create_handle(id, EVENT_QUERY_STATE, 0).map_err(|_| "create handle")?;
    let inside = crate::ob::with_ob(|_| {
        let h2 = ob_create_handle(id, EVENT_QUERY_STATE, 0).map_err(|_| "create under the lock")?;
        let r = ob_reference_object_by_handle(
            h,
            EVENT_QUERY_STATE,
            Some(&EX_EVENT_OBJECT_TYPE),
            Mode::UserMode,
        )
        .map_err(|_| "reference under the lock")?;
        check(r.id == id, "wrong object")?;
        drop(r);
        check(nt_close(h2) == STATUS_SUCCESS, "close under the lock")
    });
    inside?;
    check(
        crate::ob::OB_HEADERS.handle_count(id) == 1 && crate::ob::OB_HEADERS.pointer_count(id) == 2,
        "counts after the lock-free paths",
    )?;
    check(nt_close(h) == STATUS_SUCCESS, "close")?;
    let deleted = crate::ob::with_ob(|st| st.deleted_total);
    ob_dereference_object(id);
    check(
        crate::ob::with_ob(|st| st.deleted_total) == deleted + 1,
        "the last reference did not delete the object",
    )
}

/// Types are objects that own their generic mapping: GENERIC_READ maps
/// through the type object the code names, and each type object sits in
/// `\ObjectTypes` under its index.
fn t_types_own_mappings() -> TestResult {
    use crate::ob::types::object_type;
    for (r, read) in [
        (&EX_EVENT_OBJECT_TYPE, 0x0002_0001),
        (&crate::cm::CM_KEY_OBJECT_TYPE, 0x0002_0019),
        (&crate::se::SE_TOKEN_OBJECT_TYPE, 0x0002_0008),
        (&crate::ob::OB_DIRECTORY_OBJECT_TYPE, 0x0002_0003),
    ] {
        let t = r.get().ok_or("a type object was not created")?;
        check(
            t.info.generic_mapping.read == read,
            "a type's GENERIC_READ mapping",
        )?;
        check(
            object_type(t.index).is_some_and(|o| core::ptr::eq(o, t)),
            "the type table and the type object disagree",
        )?;
        let path = alloc::format!("\\ObjectTypes\\{}", t.name);
        let found = crate::ob::with_ob(|st| st.ns.lookup(&path, 0, None));
        check(
            matches!(found, Ok(::ob::namespace::Lookup::Found(_))),
            "a type object is missing from \\ObjectTypes",
        )?;
    }
    Ok(())
}

/// The System process has a primary token: an object of the Token type
/// with LocalSystem as user and SYSTEM_LUID as logon session.
fn t_system_token() -> TestResult {
    let id = crate::se::ps_reference_primary_token(SYSTEM_PROCESS_ID)
        .ok_or("the System process has no primary token")?;
    let ty = object_type_of(id);
    let t = crate::se::token_of(id);
    ob_dereference_object(id);
    check(
        ty.is_some() && ty == crate::se::SE_TOKEN_OBJECT_TYPE.index(),
        "the primary token is not a Token object",
    )?;
    let t = t.ok_or("no token body")?;
    check(
        t.user.sid == security::sid::Sid::local_system()
            && t.authentication_id == security::token::SYSTEM_LUID
            && t.token_id != 0,
        "the System token's user, logon session or id",
    )?;
    let ctx = crate::se::se_capture_subject_context();
    check(
        ctx.client.is_none() && *ctx.effective_token() == *t,
        "a thread that does not impersonate runs with the process token",
    )
}

/// Opens check access with the caller's effective token: impersonating a
/// restricted token makes the open of an object whose DACL grants only
/// SYSTEM fail with STATUS_ACCESS_DENIED; reverting makes it succeed.
fn t_impersonation_decides_opens() -> TestResult {
    use crate::ex::event::*;
    use crate::se::*;
    use security::token::{ImpersonationLevel, TokenType};
    let path = "\\BaseNamedObjects\\KTestSystemOnly";
    let (ev, _) = nt_create_event(
        EVENT_ALL_ACCESS,
        Some(path),
        0,
        EventType::NotificationEvent,
        false,
        Mode::KernelMode,
    )
    .map_err(|_| "create event")?;
    let sd = security::sddl::parse("O:SYG:SYD:(A;;GA;;;SY)").map_err(|_| "sddl")?;
    check(
        nt_set_security_object(ev, &sd, Mode::KernelMode) == STATUS_SUCCESS,
        "NtSetSecurityObject",
    )?;
    check(
        nt_query_security_object(ev, Mode::KernelMode) == Ok(Some(sd.clone())),
        "NtQuerySecurityObject",
    )?;
    let open = || {
        nt_open_event(
            EVENT_QUERY_STATE,
            path,
            OBJ_FORCE_ACCESS_CHECK,
            Mode::KernelMode,
        )
    };
    let h = open().map_err(|_| "SYSTEM (the process token) was refused")?;
    check(nt_close(h) == STATUS_SUCCESS, "close")?;
    check(
        nt_open_thread_token(NT_CURRENT_THREAD, TOKEN_QUERY, false, Mode::KernelMode).err()
            == Some(STATUS_NO_TOKEN),
        "a thread that does not impersonate has no thread token",
    )?;
    let primary = nt_open_process_token(NT_CURRENT_PROCESS, TOKEN_DUPLICATE, Mode::KernelMode)
        .map_err(|_| "NtOpenProcessToken")?;
    let restricted = nt_filter_token(primary, &[security::sid::Sid::world()], Mode::KernelMode)
        .map_err(|_| "NtFilterToken")?;
    let imp = nt_duplicate_token(
        restricted,
        TOKEN_IMPERSONATE | TOKEN_QUERY,
        TokenType::Impersonation,
        ImpersonationLevel::Impersonation,
        Mode::KernelMode,
    )
    .map_err(|_| "NtDuplicateToken")?;
    check(
        nt_set_information_thread_impersonation_token(NT_CURRENT_THREAD, primary, Mode::KernelMode)
            == STATUS_BAD_TOKEN_TYPE,
        "a primary token was accepted for impersonation",
    )?;
    check(
        nt_set_information_thread_impersonation_token(NT_CURRENT_THREAD, imp, Mode::KernelMode)
            == STATUS_SUCCESS,
        "NtSetInformationThread(ThreadImpersonationToken)",
    )?;
    let denied = open().err();
    let effective_restricted = se_capture_subject_context()
        .effective_token()
        .is_restricted();
    let thread_token = nt_open_thread_token(NT_CURRENT_THREAD, TOKEN_QUERY, true, Mode::KernelMode);
    check(
        nt_set_information_thread_impersonation_token(NT_CURRENT_THREAD, 0, Mode::KernelMode)
            == STATUS_SUCCESS,
        "revert",
    )?;
    check(
        denied == Some(STATUS_ACCESS_DENIED),
        "the impersonated restricted token was not refused",
    )?;
    check(
        effective_restricted,
        "the subject context did not pick the impersonation token",
    )?;
    let tt = thread_token.map_err(|_| "NtOpenThreadToken while impersonating")?;
    check(nt_close(tt) == STATUS_SUCCESS, "close thread token")?;
    let h = open().map_err(|_| "reverted thread was refused")?;
    check(nt_close(h) == STATUS_SUCCESS, "close")?;
    // An identification-level token opens nothing.
    let ident = nt_duplicate_token(
        primary,
        TOKEN_IMPERSONATE,
        TokenType::Impersonation,
        ImpersonationLevel::Identification,
        Mode::KernelMode,
    )
    .map_err(|_| "NtDuplicateToken (identification)")?;
    nt_set_information_thread_impersonation_token(NT_CURRENT_THREAD, ident, Mode::KernelMode);
    let r = open().err();
    ps_revert_to_self();
    check(
        r == Some(STATUS_BAD_IMPERSONATION_LEVEL),
        "an identification-level token opened an object",
    )?;
    for x in [ident, imp, restricted, primary, ev] {
        check(nt_close(x) == STATUS_SUCCESS, "close")?;
    }
    Ok(())
}

/// The impersonation token handle the exiting thread impersonates, its
/// thread id, and its verdict (1 impersonated, 2 failed).
static EXIT_IMP_HANDLE: AtomicU64 = AtomicU64::new(0);
static EXIT_IMP_TID: AtomicU32 = AtomicU32::new(0);
static EXIT_IMP_STATE: AtomicU32 = AtomicU32::new(0);

/// A thread that exits while impersonating gives up its impersonation
/// (`PspExitThread`): the slot is gone and the token's reference released.
fn t_impersonation_released_at_exit() -> TestResult {
    use crate::se::*;
    use security::token::{ImpersonationLevel, TokenType};
    let primary = nt_open_process_token(NT_CURRENT_PROCESS, TOKEN_DUPLICATE, Mode::KernelMode)
        .map_err(|_| "NtOpenProcessToken")?;
    let imp = nt_duplicate_token(
        primary,
        TOKEN_IMPERSONATE | TOKEN_QUERY,
        TokenType::Impersonation,
        ImpersonationLevel::Impersonation,
        Mode::KernelMode,
    )
    .map_err(|_| "NtDuplicateToken")?;
    check(nt_close(primary) == STATUS_SUCCESS, "close process token")?;
    let token_ref = ob_reference_object_by_handle(imp, 0, None, Mode::KernelMode)
        .map_err(|_| "referencing the token")?;
    let token = token_ref.id;
    // The handle's reference and this test's.
    let baseline = crate::ob::OB_HEADERS.pointer_count(token);
    EXIT_IMP_HANDLE.store(imp, Ordering::SeqCst);
    EXIT_IMP_STATE.store(0, Ordering::SeqCst);
    let tid = crate::ke::thread::create_system_thread(
        "ktest-impersonate-exit",
        8,
        u64::MAX,
        |_| {
            let me = crate::ke::sched::current_thread_id();
            EXIT_IMP_TID.store(me, Ordering::SeqCst);
            let st = nt_set_information_thread_impersonation_token(
                NT_CURRENT_THREAD,
                EXIT_IMP_HANDLE.load(Ordering::SeqCst),
                Mode::KernelMode,
            );
            let impersonating = ps_reference_impersonation_token(me).map(|(id, _)| {
                ob_dereference_object(id);
                id
            });
            let ok = st == STATUS_SUCCESS && impersonating.is_some();
            EXIT_IMP_STATE.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
            // Returns while impersonating: the thread exits.
        },
        0,
    )
    .map_err(|_| "thread creation")?;
    crate::ke::sched::ready_thread(tid).map_err(|_| "readying the thread")?;
    let ran = crate::ktest::wait_until(5000, || EXIT_IMP_STATE.load(Ordering::SeqCst) != 0);
    let released = crate::ktest::wait_until(5000, || {
        match ps_reference_impersonation_token(EXIT_IMP_TID.load(Ordering::SeqCst)) {
            Some((id, _)) => {
                ob_dereference_object(id);
                false
            }
            None => true,
        }
    });
    let count = crate::ob::OB_HEADERS.pointer_count(token);
    drop(token_ref);
    check(nt_close(imp) == STATUS_SUCCESS, "close impersonation token")?;
    check(ran, "the thread did not run")?;
    check(
        EXIT_IMP_STATE.load(Ordering::SeqCst) == 1,
        "the thread could not impersonate",
    )?;
    check(released, "the exited thread still impersonates")?;
    check(
        count == baseline,
        "the exited thread's token reference was not released",
    )
}

static SMP_SLOTS: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
static SMP_DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static SMP_FINISHED: AtomicU32 = AtomicU32::new(0);
static SMP_TAKEN: AtomicU64 = AtomicU64::new(0);
static SMP_BAD: AtomicU64 = AtomicU64::new(0);

/// `ObReferenceObjectByHandle` on every processor while this thread closes
/// the handles, which hold their objects' only other reference: a
/// reference taken through a handle always finds the handle's reference
/// still there (pointer count at least 2 while both are held), and every
/// object is deleted exactly once.
fn t_reference_racing_close_on_all_processors() -> TestResult {
    const OBJECTS: u64 = 4000;
    SMP_DONE.store(false, Ordering::SeqCst);
    SMP_FINISHED.store(0, Ordering::SeqCst);
    SMP_TAKEN.store(0, Ordering::SeqCst);
    SMP_BAD.store(0, Ordering::SeqCst);
    let workers = crate::ke::processor_count().max(2);
    for w in 0..workers {
        let t = crate::ke::thread::create_system_thread(
            "ob-smp",
            8,
            u64::MAX,
            |seed| {
                let mut x = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                while !SMP_DONE.load(Ordering::Acquire) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let h = SMP_SLOTS[(x % 32) as usize].load(Ordering::Acquire);
                    if h == 0 {
                        core::hint::spin_loop();
                        continue;
                    }
                    if let Ok(r) = ob_reference_object_by_handle(
                        h,
                        0,
                        Some(&EX_EVENT_OBJECT_TYPE),
                        Mode::KernelMode,
                    ) {
                        SMP_TAKEN.fetch_add(1, Ordering::Relaxed);
                        if crate::ob::OB_HEADERS.pointer_count(r.id) < 2
                            && crate::ob::OB_HEADERS.handle_count(r.id) > 0
                        {
                            SMP_BAD.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                SMP_FINISHED.fetch_add(1, Ordering::SeqCst);
            },
            w as usize,
        );
        if t.and_then(crate::ke::sched::ready_thread).is_err() {
            return Err("cannot start a racing thread");
        }
    }
    let (p0, _) = handle_counts();
    // Objects the namespace deleted for earlier tests are counted when
    // reaped: reap them before taking the baseline.
    let deleted = crate::ob::with_ob(|st| {
        st.reap();
        st.deleted_total
    });
    let mut x = 12345u64;
    for i in 0..OBJECTS {
        let id = make(None, &EX_EVENT_OBJECT_TYPE, None)?;
        let h = ob_create_handle(id, EVENT_QUERY_STATE, 0).map_err(|_| "create handle")?;
        ob_dereference_object(id);
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let old = SMP_SLOTS[((x >> 33) % 32) as usize].swap(h, Ordering::AcqRel);
        if old != 0 && nt_close(old) != STATUS_SUCCESS {
            return Err("close of a published handle failed");
        }
        if i % 64 == 0 {
            // Let the workers run on a single processor too.
            crate::ktest::sleep_ms(1);
        }
    }
    for s in &SMP_SLOTS {
        let h = s.swap(0, Ordering::AcqRel);
        if h != 0 && nt_close(h) != STATUS_SUCCESS {
            return Err("final close failed");
        }
    }
    SMP_DONE.store(true, Ordering::Release);
    check(
        crate::ktest::wait_until(5000, || SMP_FINISHED.load(Ordering::SeqCst) == workers),
        "the workers did not finish",
    )?;
    check(
        SMP_BAD.load(Ordering::SeqCst) == 0,
        "a reference through a handle found the handle's reference gone",
    )?;
    check(
        SMP_TAKEN.load(Ordering::SeqCst) > 0,
        "the workers never referenced an object",
    )?;
    check(handle_counts().0 == p0, "handle count changed")?;
    let now = crate::ob::with_ob(|st| st.deleted_total);
    if now != deleted + OBJECTS {
        let msg = alloc::format!(
            "objects were not each deleted exactly once: {} deletions for {OBJECTS} objects",
            now - deleted
        );
        return Err(alloc::boxed::Box::leak(msg.into_boxed_str()));
    }
    Ok(())
}

pub const TESTS: &[Test] = &[
    (
        "ob.reference_racing_close_on_all_processors",
        t_reference_racing_close_on_all_processors,
    ),
    ("ob.type_procedures_and_parse", t_type_procedures),
    (
        "ob.handle_paths_take_no_ob_lock",
        t_handle_paths_take_no_ob_lock,
    ),
    ("ob.types_own_generic_mappings", t_types_own_mappings),
    ("se.system_process_primary_token", t_system_token),
    (
        "se.impersonation_decides_opens",
        t_impersonation_decides_opens,
    ),
    (
        "se.impersonation_released_at_thread_exit",
        t_impersonation_released_at_exit,
    ),
    ("ob.reference_by_handle_statuses", t_reference_by_handle),
    ("ob.open_by_name_checks_access", t_open_checks_access),
    ("ob.million_handles_leave_pool_unchanged", t_million_handles),
];

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

static PARSED: AtomicU64 = AtomicU64::new(0);
static OPENS: AtomicU32 = AtomicU32::new(0);
static CLOSES: AtomicU32 = AtomicU32::new(0);
static DELETES: AtomicU32 = AtomicU32::new(0);
static REFUSE_CLOSE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static LEAF: AtomicU64 = AtomicU64::new(0);

/// A type with every procedure: a parse procedure that owns the namespace
/// below its objects (as the I/O and configuration managers do), open,
/// close, okay-to-close and delete procedures called at NT's points.
fn t_type_procedures() -> TestResult {
    use crate::ob::types::*;
    static KT_PARSED_TYPE: ObjectTypeRef = ObjectTypeRef::new();
    static KT_PARSED_TYPE_2: ObjectTypeRef = ObjectTypeRef::new();
    let init = TypeInitializer {
        open: Some(|_, _, _| {
            OPENS.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }),
        close: Some(|_, _| {
            CLOSES.fetch_add(1, Ordering::SeqCst);
        }),
        delete: Some(|_| {
            DELETES.fetch_add(1, Ordering::SeqCst);
        }),
        parse: Some(|_, remaining, ctx| {
            let desired = ctx.desired;
            // The remaining path must arrive without the leading separator.
            PARSED.store(remaining.len() as u64, Ordering::SeqCst);
            if remaining != "alpha\\beta" {
                return Err(STATUS_OBJECT_NAME_NOT_FOUND);
            }
            let leaf = LEAF.load(Ordering::SeqCst) as usize;
            ob_reference_object(leaf)?;
            Ok((leaf, desired))
        }),
        okay_to_close: Some(|_, _| !REFUSE_CLOSE.load(Ordering::SeqCst)),
        query_name: Some(|_| Some("KtParsedLeaf".into())),
        ..Default::default()
    };
    ob_create_object_type("KtParsed", init, &KT_PARSED_TYPE).map_err(|_| "ObCreateObjectType")?;
    check(
        ob_create_object_type("KtParsed", TypeInitializer::default(), &KT_PARSED_TYPE_2).err()
            == Some(STATUS_OBJECT_NAME_COLLISION)
            && KT_PARSED_TYPE_2.get().is_none(),
        "duplicate type name accepted",
    )?;
    let root = make(Some("\\KtParseRoot"), &KT_PARSED_TYPE, None)?;
    let leaf = make(None, &KT_PARSED_TYPE, None)?;
    check(
        crate::ob::ob_query_name_string(leaf) == "KtParsedLeaf"
            && crate::ob::ob_query_name_string(root) == "\\KtParseRoot",
        "the query-name procedure was not used for an unnamed object",
    )?;
    LEAF.store(leaf as u64, Ordering::SeqCst);
    let token = security::token::Token::system();
    let (found, granted) = ob_open_object_by_name(
        "\\KtParseRoot\\alpha\\beta",
        None,
        0,
        0x1234,
        Mode::KernelMode,
        &token,
    )
    .map_err(|_| "open through the parse procedure failed")?;
    check(
        found == leaf && granted == 0x1234,
        "parse procedure result not returned",
    )?;
    check(
        PARSED.load(Ordering::SeqCst) == 10,
        "parse procedure got the wrong remaining path",
    )?;
    check(
        ob_open_object_by_name("\\KtParseRoot\\gamma", None, 0, 0, Mode::KernelMode, &token).err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "parse procedure's status not returned",
    )?;
    let opens = OPENS.load(Ordering::SeqCst);
    let h = ob_create_handle(found, granted, 0).map_err(|_| "handle")?;
    ob_dereference_object(found);
    check(
        OPENS.load(Ordering::SeqCst) == opens + 1,
        "open procedure not called",
    )?;
    REFUSE_CLOSE.store(true, Ordering::SeqCst);
    check(
        nt_close(h) == STATUS_HANDLE_NOT_CLOSABLE,
        "okay-to-close refusal ignored",
    )?;
    REFUSE_CLOSE.store(false, Ordering::SeqCst);
    // Drop the creation reference: the handle is the last one now.
    ob_dereference_object(leaf);
    let (closes, deletes) = (
        CLOSES.load(Ordering::SeqCst),
        DELETES.load(Ordering::SeqCst),
    );
    check(nt_close(h) == STATUS_SUCCESS, "close")?;
    check(
        CLOSES.load(Ordering::SeqCst) == closes + 1,
        "close procedure not called",
    )?;
    check(
        DELETES.load(Ordering::SeqCst) == deletes + 1,
        "delete procedure not called at the last reference",
    )?;
    let _ = root;
    Ok(())
}
