//! The configuration manager's registry over its hives (*Windows Internals* 7th ed., Part 2,
//! ch. 10, "Registry internals": hive mounting, key control blocks and the KCB cache, symbolic
//! links, security caching, change notification).
//!
//! There is no key tree besides the hives: every key is an nk cell of a mounted [`Hive`], and a
//! key control block ([`Kcb`]) is a cache entry naming (hive, cell) with the upper-cased name and
//! its hash, the parent KCB, the resolved target of a symbolic link and the key's parsed security
//! descriptor. As in NT:
//!
//! - a KCB is unique per key and found through a hash table keyed by (parent KCB, name hash), so a
//!   path whose keys are cached is resolved without touching the hive; a miss looks the name up in
//!   the hive's hashed subkey lists and creates the KCB;
//! - each KCB holds a reference on its parent; key objects hold references on their KCB. KCBs
//!   whose count reaches zero stay cached (NT's delayed close) until the cache grows past its
//!   limit, when the least recently used ones are freed;
//! - the master hive (`\REGISTRY`, memory only) holds `MACHINE` and `USER`; other hives are
//!   mounted at link nodes (`KEY_HIVE_EXIT`) whose KCB is the mounted hive's root;
//! - security descriptors are parsed once per security cell of a hive (the hive's security
//!   cache) and the parsed form is kept in the KCB;
//! - notifications are (KCB, filter, watch-subtree, caller token) records; a change returns the
//!   tokens of the notifications it satisfied (removing them) for the caller to signal.
//!
//! Reference counts live in a caller-supplied table of atomics (`&'static [AtomicU32]`), so that
//! a key object's deletion can drop its KCB reference without the registry lock (the kernel's
//! object manager runs delete procedures at DISPATCH_LEVEL). Everything else is changed only
//! through `&mut Registry`, under the kernel's registry lock.
//!
//! Every failure is a status: a hive that cannot grow fails the service with
//! `STATUS_INSUFFICIENT_RESOURCES` and nothing changes; KCB storage is allocated fallibly.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::log::{HiveFiles, LoggedHive};
use crate::*;

/// Index of a key control block.
pub type KcbIndex = u32;
/// "No KCB".
pub const NO_KCB: KcbIndex = u32::MAX;
/// The KCB of `\REGISTRY` (the master hive's root).
pub const ROOT_KCB: KcbIndex = 0;
/// KCBs per storage chunk (a chunk never moves, so a KCB's address is stable).
const CHUNK: usize = 256;
/// Hash buckets of the KCB cache.
const BUCKETS: usize = 4096;
/// Default number of KCBs kept before unreferenced ones are freed.
pub const DEFAULT_CACHE_LIMIT: usize = 4096;
/// Symbolic links followed in one lookup before giving up.
const MAX_LINK_DEPTH: u32 = 16;

/// `REG_NOTIFY_CHANGE_NAME`: a subkey was added or deleted.
pub const REG_NOTIFY_CHANGE_NAME: u32 = 1;
/// `REG_NOTIFY_CHANGE_ATTRIBUTES`.
pub const REG_NOTIFY_CHANGE_ATTRIBUTES: u32 = 2;
/// `REG_NOTIFY_CHANGE_LAST_SET`: a value was set or deleted.
pub const REG_NOTIFY_CHANGE_LAST_SET: u32 = 4;
/// `REG_NOTIFY_CHANGE_SECURITY`.
pub const REG_NOTIFY_CHANGE_SECURITY: u32 = 8;

fn status<T>(s: NtStatus) -> Result<T> {
    Err(Error::Status(s))
}

fn no_memory<T>(_: T) -> Error {
    Error::Status(STATUS_INSUFFICIENT_RESOURCES)
}

/// Where a mounted hive's data lives.
pub enum Storage {
    /// Memory only (the master hive, `HARDWARE`): never written anywhere.
    Memory(Hive),
    /// Bound to a primary file and two logs, flushed log-first ([`LoggedHive::flush`]).
    Files {
        /// The hive and its flush state.
        logged: LoggedHive,
        /// Its files.
        files: Box<dyn HiveFiles + Send + Sync>,
    },
}

impl Storage {
    /// The hive.
    pub fn hive(&self) -> &Hive {
        match self {
            Storage::Memory(h) => h,
            Storage::Files { logged, .. } => &logged.hive,
        }
    }

    fn hive_mut(&mut self) -> &mut Hive {
        match self {
            Storage::Memory(h) => h,
            Storage::Files { logged, .. } => &mut logged.hive,
        }
    }
}

/// A hive mounted in the registry (NT's `CMHIVE`).
pub struct MountedHive<S> {
    /// The hive and where it is written.
    pub storage: Storage,
    /// The file name (`\SystemRoot\System32\Config\SYSTEM`), empty for memory-only hives.
    pub file_name: String,
    /// The KCB of the hive's root.
    pub root: KcbIndex,
    /// The link node in the parent hive: (hive index, cell); `None` for the master hive.
    exit: Option<(u16, u32)>,
    /// Parsed descriptors by security cell (NT's per-hive security cache).
    sd_cache: BTreeMap<u32, S>,
    /// Completed flushes.
    pub flushes: u64,
    /// The hive was unloaded (`NtUnloadKey`); its slot stays so that KCB hive indexes of keys
    /// still open (now deleted) name no other hive, and is reused once none is left.
    unloaded: bool,
}

impl<S> MountedHive<S> {
    /// The hive.
    pub fn hive(&self) -> &Hive {
        self.storage.hive()
    }
}

/// A key control block.
pub struct Kcb<S> {
    /// The hive the key lives in (index into the mounted hives).
    pub hive: u16,
    /// The key's nk cell.
    pub cell: KeyRef,
    /// The parent KCB (`NO_KCB` for `\REGISTRY`).
    pub parent: KcbIndex,
    /// `lh` hash of the upper-cased name.
    name_hash: u32,
    /// Hash of the path from `\REGISTRY` (NT's `ConvKey`): [`conv_key`] of the parent's and
    /// this name's [`NameKey::fold_hash`]. The cache is hashed by it, so a whole path is found with one probe.
    conv: u32,
    /// Upper-cased UTF-16 name.
    name: KcbName,
    /// The name a hive root is mounted under (other keys' names are read from their nk).
    mount_name: Option<String>,
    /// The key's nk flags when the KCB was made (`KEY_SYM_LINK`, `KEY_HIVE_EXIT`, ...).
    pub flags: u16,
    /// The key was deleted; handles to it get `STATUS_KEY_DELETED`.
    pub deleted: bool,
    /// Next KCB in the hash bucket.
    next: KcbIndex,
    /// When the KCB was last looked up (the cache frees the least recently used first).
    stamp: u64,
    /// The resolved target of a symbolic link (referenced), or `NO_KCB`.
    link: KcbIndex,
    /// The parsed security descriptor, once asked for.
    sd: Option<S>,
    /// The slot holds a KCB.
    live: bool,
    /// Never freed (the root and hive roots).
    pinned: bool,
}

/// Longest name a KCB keeps inline (longer names are allocated).
const INLINE_NAME: usize = 20;

/// A KCB's upper-cased UTF-16 name (NT's name control block), inline when short.
enum KcbName {
    Inline(u8, [u16; INLINE_NAME]),
    Heap(Vec<u16>),
}

impl KcbName {
    fn new(want: &NameKey) -> Result<KcbName> {
        if want.len() <= INLINE_NAME {
            let mut a = [0u16; INLINE_NAME];
            for (d, u) in a.iter_mut().zip(want.units()) {
                *d = u;
            }
            return Ok(KcbName::Inline(want.len() as u8, a));
        }
        let mut v = Vec::new();
        v.try_reserve_exact(want.len()).map_err(no_memory)?;
        v.extend(want.units());
        Ok(KcbName::Heap(v))
    }

    fn units(&self) -> &[u16] {
        match self {
            KcbName::Inline(n, a) => &a[..*n as usize],
            KcbName::Heap(v) => v,
        }
    }
}

/// A pending change notification.
struct Notification<N> {
    kcb: KcbIndex,
    filter: u32,
    subtree: bool,
    token: N,
}

/// `KEY_FULL_INFORMATION` essentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInformation {
    /// The key's name.
    pub name: String,
    /// Last write time (FILETIME).
    pub last_write_time: u64,
    /// Subkeys (stable and volatile).
    pub subkeys: u32,
    /// Values.
    pub values: u32,
    /// The key is volatile.
    pub volatile: bool,
}

/// The registry: mounted hives, the KCB cache and pending notifications. `S` is the parsed
/// security descriptor the caller caches, `N` the token a notification returns when it fires.
pub struct Registry<S, N> {
    /// Boxed so that a hive's address (`!reg hivelist`) never changes.
    #[allow(clippy::vec_box)]
    pub(crate) hives: Vec<Box<MountedHive<S>>>,
    chunks: Vec<Vec<Kcb<S>>>,
    free: Vec<KcbIndex>,
    refs: &'static [AtomicU32],
    buckets: Vec<KcbIndex>,
    live: usize,
    /// Slots handed out from the chunks (live or on the free list).
    slots: usize,
    limit: usize,
    /// The cache is trimmed when it holds more KCBs than this.
    trim_at: usize,
    notifications: Vec<Notification<N>>,
    parse_sd: fn(&[u8]) -> Option<S>,
    now: u64,
    /// Lookup clock for [`Kcb::stamp`].
    clock: u64,
}

impl<S: Clone, N> Registry<S, N> {
    /// A registry whose master hive root is `\<root_name>` (the KCB [`ROOT_KCB`]). `refs` holds
    /// the KCB reference counts (its length bounds the number of KCBs); `parse_sd` turns a
    /// security cell's descriptor into the cached form (`None`: the descriptor is invalid).
    pub fn new(
        root_name: &str,
        refs: &'static [AtomicU32],
        parse_sd: fn(&[u8]) -> Option<S>,
    ) -> Result<Self> {
        let mut buckets = Vec::new();
        buckets.try_reserve_exact(BUCKETS).map_err(no_memory)?;
        buckets.resize(BUCKETS, NO_KCB);
        let mut r = Registry {
            hives: Vec::new(),
            chunks: Vec::new(),
            free: Vec::new(),
            refs,
            buckets,
            live: 0,
            slots: 0,
            limit: DEFAULT_CACHE_LIMIT,
            trim_at: DEFAULT_CACHE_LIMIT,
            notifications: Vec::new(),
            parse_sd,
            now: 0,
            clock: 0,
        };
        let master = Hive::new_empty(root_name)?;
        let root_cell = master.root();
        let want = NameKey::new(root_name)?;
        let flags = master.key_flags(root_cell)?;
        let k = r.new_kcb(0, root_cell, NO_KCB, &want, flags, Some(root_name))?;
        r.kcb_mut(k).pinned = true;
        r.hives.try_reserve(1).map_err(no_memory)?;
        r.hives.push(Box::new(MountedHive {
            storage: Storage::Memory(master),
            file_name: String::new(),
            root: k,
            exit: None,
            sd_cache: BTreeMap::new(),
            flushes: 0,
            unloaded: false,
        }));
        Ok(r)
    }

    /// Sets the time (FILETIME) stamped on keys that change.
    pub fn set_time(&mut self, now: u64) {
        if now != self.now {
            self.now = now;
            for h in self.hives.iter_mut() {
                h.storage.hive_mut().set_time(now);
            }
        }
    }

    /// Sets how many KCBs the cache keeps before freeing unreferenced ones.
    pub fn set_cache_limit(&mut self, limit: usize) {
        self.limit = limit.max(16);
        self.trim_at = self.limit;
    }

    // ---- KCB storage ----

    fn slot(&self, k: KcbIndex) -> Option<&Kcb<S>> {
        self.chunks
            .get(k as usize / CHUNK)?
            .get(k as usize % CHUNK)
            .filter(|x| x.live)
    }

    fn kcb_mut(&mut self, k: KcbIndex) -> &mut Kcb<S> {
        &mut self.chunks[k as usize / CHUNK][k as usize % CHUNK]
    }

    /// The KCB `k` (`STATUS_INVALID_HANDLE` for an index that names none).
    pub fn kcb(&self, k: KcbIndex) -> Result<&Kcb<S>> {
        self.slot(k).ok_or(Error::Status(STATUS_INVALID_HANDLE))
    }

    /// A live KCB that is not deleted.
    fn key(&self, k: KcbIndex) -> Result<&Kcb<S>> {
        let x = self.kcb(k)?;
        if x.deleted {
            return status(STATUS_KEY_DELETED);
        }
        Ok(x)
    }

    /// The address of KCB `k` in memory (`!reg` prints it; KCBs never move).
    pub fn kcb_address(&self, k: KcbIndex) -> Option<usize> {
        self.slot(k).map(|x| x as *const Kcb<S> as usize)
    }

    /// References held on KCB `k` (handles, child KCBs, links, notifications).
    pub fn kcb_refs(&self, k: KcbIndex) -> u32 {
        self.refs
            .get(k as usize)
            .map_or(0, |r| r.load(Ordering::Acquire))
    }

    /// Live KCBs in the cache.
    pub fn kcb_count(&self) -> usize {
        self.live
    }

    /// Every live KCB with its reference count.
    pub fn kcbs(&self) -> impl Iterator<Item = (KcbIndex, &Kcb<S>, u32)> + '_ {
        self.chunks.iter().enumerate().flat_map(move |(c, chunk)| {
            chunk
                .iter()
                .enumerate()
                .filter(|(_, k)| k.live)
                .map(move |(i, k)| {
                    let idx = (c * CHUNK + i) as KcbIndex;
                    (idx, k, self.kcb_refs(idx))
                })
        })
    }

    /// Adds a reference to KCB `k` (a new key object).
    pub fn reference(&self, k: KcbIndex) {
        if let Some(r) = self.refs.get(k as usize) {
            r.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Drops a reference to KCB `k`. The KCB stays cached; the cache frees it later once it is
    /// unreferenced. Needs no lock: callable where the registry lock cannot be taken.
    pub fn release_ref(refs: &[AtomicU32], k: KcbIndex) {
        if let Some(r) = refs.get(k as usize) {
            let _ = r.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1));
        }
    }

    /// Drops a reference to KCB `k` ([`Registry::release_ref`] on this registry's table).
    pub fn release(&self, k: KcbIndex) {
        Self::release_ref(self.refs, k);
    }

    /// The reference count table (for [`Registry::release_ref`] without the registry).
    pub fn refs_table(&self) -> &'static [AtomicU32] {
        self.refs
    }

    fn bucket(conv: u32) -> usize {
        (conv.wrapping_mul(0x9E37_79B9) >> 20) as usize & (BUCKETS - 1)
    }

    fn conv_of(&self, k: KcbIndex) -> u32 {
        self.chunks[k as usize / CHUNK][k as usize % CHUNK].conv
    }

    /// Allocates a KCB for (hive, cell) named `want` under `parent` (which gains a reference)
    /// and enters it in the hash table. Fails without changing anything.
    fn new_kcb(
        &mut self,
        hive: u16,
        cell: KeyRef,
        parent: KcbIndex,
        want: &NameKey,
        flags: u16,
        mount_name: Option<&str>,
    ) -> Result<KcbIndex> {
        let name = KcbName::new(want)?;
        let mount_name = match mount_name {
            Some(m) => {
                let mut d = String::new();
                d.try_reserve_exact(m.len()).map_err(no_memory)?;
                d.push_str(m);
                Some(d)
            }
            None => None,
        };
        self.reserve_kcb()?;
        self.clock += 1;
        let conv = if parent == NO_KCB {
            conv_key(0, want.fold_hash())
        } else {
            conv_key(self.conv_of(parent), want.fold_hash())
        };
        let kcb = Kcb {
            hive,
            cell,
            parent,
            name_hash: want.hash(),
            conv,
            name,
            mount_name,
            flags,
            deleted: false,
            next: NO_KCB,
            stamp: self.clock,
            link: NO_KCB,
            sd: None,
            live: true,
            pinned: false,
        };
        let k = match self.free.pop() {
            Some(k) => {
                *self.kcb_mut(k) = kcb;
                k
            }
            None => {
                let last = self.chunks.len() - 1;
                // reserve_kcb left room in the last chunk, whose capacity is CHUNK: this push
                // never moves the chunk.
                self.chunks[last].push(kcb);
                self.slots += 1;
                (last * CHUNK + self.chunks[last].len() - 1) as KcbIndex
            }
        };
        self.refs[k as usize].store(0, Ordering::Release);
        let b = Self::bucket(conv);
        self.kcb_mut(k).next = self.buckets[b];
        self.buckets[b] = k;
        if parent != NO_KCB {
            self.reference(parent);
        }
        self.live += 1;
        Ok(k)
    }

    fn unhash(&mut self, k: KcbIndex) {
        let b = Self::bucket(self.conv_of(k));
        let mut prev = NO_KCB;
        let mut cur = self.buckets[b];
        while cur != NO_KCB {
            let next = self.kcb_mut(cur).next;
            if cur == k {
                if prev == NO_KCB {
                    self.buckets[b] = next;
                } else {
                    self.kcb_mut(prev).next = next;
                }
                self.kcb_mut(k).next = NO_KCB;
                return;
            }
            prev = cur;
            cur = next;
        }
    }

    /// The cached child of `parent` named `want`.
    fn cache_find(&self, parent: KcbIndex, want: &NameKey) -> Option<KcbIndex> {
        let conv = conv_key(self.conv_of(parent), want.fold_hash());
        let mut cur = self.buckets[Self::bucket(conv)];
        while cur != NO_KCB {
            let x = &self.chunks[cur as usize / CHUNK][cur as usize % CHUNK];
            if x.conv == conv
                && x.parent == parent
                && x.name_hash == want.hash()
                && want.matches(x.name.units())
            {
                return Some(cur);
            }
            cur = x.next;
        }
        None
    }

    /// `CmpCacheLookup`: the deepest cached key along `path` below `start`, found by probing
    /// the cache with the path's conv keys from the longest prefix down and checking the
    /// candidate's names up to `start`. Returns the KCB and the bytes of `path` it covers
    /// (`(start, 0)` when nothing is cached, or the path is not all ASCII or too deep for the
    /// fast path; the caller then walks component by component).
    fn cache_lookup(&mut self, start: KcbIndex, path: &str) -> (KcbIndex, usize) {
        const MAX: usize = 24;
        let bytes = path.as_bytes();
        // (start, end) of each component in `path` and the conv key of the prefix ending there.
        let mut comps = [(0u32, 0u32, 0u32); MAX];
        let mut n = 0;
        let mut conv = self.conv_of(start);
        let mut h = 0u32;
        let mut first = 0usize;
        for (i, &c) in bytes.iter().enumerate() {
            if c == b'\\' {
                if i > first {
                    if n == MAX {
                        return (start, 0);
                    }
                    conv = conv_key(conv, h);
                    comps[n] = (first as u32, i as u32, conv);
                    n += 1;
                }
                h = 0;
                first = i + 1;
            } else if c < 0x80 {
                h = lists::fold_step(h, c as u16);
            } else {
                return (start, 0);
            }
        }
        if bytes.len() > first {
            if n == MAX {
                return (start, 0);
            }
            conv = conv_key(conv, h);
            comps[n] = (first as u32, bytes.len() as u32, conv);
            n += 1;
        }
        for i in (0..n).rev() {
            let conv = comps[i].2;
            let mut cur = self.buckets[Self::bucket(conv)];
            while cur != NO_KCB {
                let x = &self.chunks[cur as usize / CHUNK][cur as usize % CHUNK];
                if x.conv == conv && self.names_match(cur, start, bytes, &comps[..=i]) {
                    self.clock += 1;
                    let c = self.clock;
                    self.kcb_mut(cur).stamp = c;
                    return (cur, comps[i].1 as usize);
                }
                cur = x.next;
            }
        }
        (start, 0)
    }

    /// Whether the KCBs from `k` up to (not including) `start` are named by `comps` (ranges of
    /// the ASCII `path`), last component first.
    fn names_match(
        &self,
        mut k: KcbIndex,
        start: KcbIndex,
        path: &[u8],
        comps: &[(u32, u32, u32)],
    ) -> bool {
        for &(s, e, _) in comps.iter().rev() {
            if k == NO_KCB {
                return false;
            }
            let x = &self.chunks[k as usize / CHUNK][k as usize % CHUNK];
            let b = &path[s as usize..e as usize];
            let name = x.name.units();
            if name.len() != b.len()
                || !name
                    .iter()
                    .zip(b)
                    .all(|(&u, &c)| u == c.to_ascii_uppercase() as u16)
            {
                return false;
            }
            k = x.parent;
        }
        k == start
    }

    /// Frees unreferenced KCBs, least recently used first, until the cache is back to three
    /// quarters of its limit.
    fn trim(&mut self) {
        if self.live <= self.trim_at {
            return;
        }
        let target = self.limit * 3 / 4;
        // When referenced KCBs alone exceed the limit, sweep again only after more growth.
        self.trim_at = self.limit.max(self.live + self.limit / 4);
        let total = self.slots;
        let mut candidates: Vec<(u64, KcbIndex)> = Vec::new();
        if candidates.try_reserve_exact(self.live).is_err() {
            // No memory for the sweep: the cache stays larger until the next one.
            return;
        }
        for k in 0..total as KcbIndex {
            let x = &self.chunks[k as usize / CHUNK][k as usize % CHUNK];
            if x.live && !x.pinned && self.kcb_refs(k) == 0 {
                candidates.push((x.stamp, k));
            }
        }
        let excess = self.live.saturating_sub(target).min(candidates.len());
        if excess == 0 {
            return;
        }
        if excess < candidates.len() {
            candidates.select_nth_unstable(excess);
        }
        for &(_, k) in &candidates[..excess] {
            self.free_kcb(k);
        }
        if self.live <= target {
            self.trim_at = self.limit;
        }
    }

    fn free_kcb(&mut self, k: KcbIndex) {
        if !self.kcb_mut(k).deleted {
            self.unhash(k);
        }
        let (parent, link) = {
            let x = self.kcb_mut(k);
            x.live = false;
            x.sd = None;
            x.name = KcbName::Inline(0, [0; INLINE_NAME]);
            x.mount_name = None;
            (x.parent, core::mem::replace(&mut x.link, NO_KCB))
        };
        if parent != NO_KCB {
            self.release(parent);
        }
        if link != NO_KCB {
            self.release(link);
        }
        // Capacity for every slot of every chunk was reserved with the chunk.
        self.free.push(k);
        self.live -= 1;
    }

    // ---- hives ----

    /// The mounted hives, master hive first.
    pub fn hives(&self) -> impl Iterator<Item = &MountedHive<S>> + '_ {
        self.hives.iter().filter(|h| !h.unloaded).map(|h| &**h)
    }

    /// The hive of KCB `k`.
    pub fn hive_of(&self, k: KcbIndex) -> Result<&MountedHive<S>> {
        let h = self.kcb(k)?.hive;
        Ok(&self.hives[h as usize])
    }

    /// The address of hive `h`'s structure in memory (`!reg hivelist` prints it).
    pub fn hive_address(&self, h: &MountedHive<S>) -> usize {
        h as *const MountedHive<S> as usize
    }

    /// The hive whose structure is at `addr`.
    pub fn hive_at_address(&self, addr: usize) -> Option<&MountedHive<S>> {
        self.hives().find(|h| self.hive_address(h) == addr)
    }

    /// Mounts `storage` at `parent\name` (`CmpLinkHiveToMaster`): a volatile link node
    /// (`KEY_HIVE_EXIT`) in the parent's hive and a pinned KCB for the hive's root, which
    /// lookups of `name` reach directly.
    pub fn mount(
        &mut self,
        parent: KcbIndex,
        name: &str,
        storage: Storage,
        file_name: &str,
    ) -> Result<KcbIndex> {
        let want = NameKey::new(name)?;
        let (phive, pcell) = {
            let p = self.key(parent)?;
            (p.hive, p.cell)
        };
        // An unloaded hive's slot is reused once no KCB names it any more.
        for i in 1..self.hives.len() {
            if self.hives[i].unloaded {
                self.reap(i as u16);
            }
        }
        let reuse = (1..self.hives.len()).find(|&i| {
            self.hives[i].unloaded && !self.kcbs().any(|(_, x, _)| x.hive as usize == i)
        });
        if reuse.is_none() && self.hives.len() >= u16::MAX as usize {
            return status(STATUS_INSUFFICIENT_RESOURCES);
        }
        let index = reuse.unwrap_or(self.hives.len()) as u16;
        self.hives.try_reserve(1).map_err(no_memory)?;
        let mut fname = String::new();
        fname
            .try_reserve_exact(file_name.len())
            .map_err(no_memory)?;
        fname.push_str(file_name);
        let ph = self.hives[phive as usize].storage.hive_mut();
        let (exit, created) = ph.create_key_ex(pcell, name, None, true)?;
        if !created {
            return status(STATUS_OBJECT_NAME_COLLISION);
        }
        ph.set_key_flags(exit, KEY_HIVE_EXIT | KEY_NO_DELETE)?;
        let root_cell = storage.hive().root();
        let flags = storage.hive().key_flags(root_cell)?;
        let k = match self.new_kcb(index, root_cell, parent, &want, flags, Some(name)) {
            Ok(k) => k,
            Err(e) => {
                let _ = self.hives[phive as usize]
                    .storage
                    .hive_mut()
                    .delete_key(exit);
                return Err(e);
            }
        };
        self.kcb_mut(k).pinned = true;
        let mut storage = storage;
        storage.hive_mut().set_time(self.now);
        let mounted = Box::new(MountedHive {
            storage,
            file_name: fname,
            root: k,
            exit: Some((phive, exit)),
            sd_cache: BTreeMap::new(),
            flushes: 0,
            unloaded: false,
        });
        match reuse {
            Some(i) => self.hives[i] = mounted,
            None => self.hives.push(mounted),
        }
        Ok(k)
    }

    /// `NtUnloadKey` (`CmUnloadKey`): unmounts the hive whose root is KCB `k` after flushing
    /// it, and returns its storage (dropping it closes the files) with the tokens of the
    /// notifications posted on its keys, which end with it. `held` is how many references on
    /// `k` the caller holds itself (its lookup). A key of the hive that is still referenced
    /// otherwise — an open handle, a pending notification — makes it `STATUS_CANNOT_DELETE`
    /// unless `force` (`REG_FORCE_UNLOAD`): then those keys are deleted under their handles,
    /// which get `STATUS_KEY_DELETED`. A key that is not the root of a loaded hive (or the
    /// master hive's) is `STATUS_INVALID_PARAMETER`. If the flush fails, nothing is unloaded.
    pub fn unmount(&mut self, k: KcbIndex, held: u32, force: bool) -> Result<(Storage, Vec<N>)> {
        let hi = self.key(k)?.hive;
        let h = hi as usize;
        if h == 0 || self.hives[h].root != k || self.hives[h].exit.is_none() {
            return status(STATUS_INVALID_PARAMETER);
        }
        // References the cache explains itself: a child's on its parent, a resolved link's.
        let mut internal: BTreeMap<KcbIndex, u32> = BTreeMap::new();
        for (_, x, _) in self.kcbs() {
            for r in [x.parent, x.link] {
                if r != NO_KCB {
                    *internal.entry(r).or_insert(0) += 1;
                }
            }
        }
        let mine: Vec<KcbIndex> = self
            .kcbs()
            .filter(|(_, x, _)| x.hive == hi)
            .map(|(i, _, _)| i)
            .collect();
        let open = mine.iter().any(|&i| {
            let own = internal.get(&i).copied().unwrap_or(0) + if i == k { held } else { 0 };
            self.kcb_refs(i) > own
        });
        if open && !force {
            return status(STATUS_CANNOT_DELETE);
        }
        let placeholder = Storage::Memory(Hive::new_empty("UNLOADED")?);
        Self::flush_hive(&mut self.hives[h])?;
        // Notifications on the hive's keys end with it.
        let mut fired = Vec::new();
        let mut n = 0;
        while n < self.notifications.len() {
            let on_hive = self.kcb(self.notifications[n].kcb).map(|x| x.hive) == Ok(hi);
            if on_hive {
                let x = self.notifications.swap_remove(n);
                self.release(x.kcb);
                fired.push(x.token);
            } else {
                n += 1;
            }
        }
        // Links resolved into the hive resolve again (and fail) next time.
        let total = self.slots;
        for i in 0..total as KcbIndex {
            let x = &self.chunks[i as usize / CHUNK][i as usize % CHUNK];
            if x.live && x.link != NO_KCB && mine.contains(&x.link) {
                let l = x.link;
                self.forget_link(i, l);
            }
        }
        // Every KCB of the hive is deleted: lookups no longer find it, handles get
        // STATUS_KEY_DELETED, and the unreferenced ones are freed now.
        for &i in &mine {
            if !self.kcb_mut(i).deleted {
                self.unhash(i);
            }
            let link = {
                let x = self.kcb_mut(i);
                x.deleted = true;
                x.pinned = false;
                core::mem::replace(&mut x.link, NO_KCB)
            };
            if link != NO_KCB {
                self.release(link);
            }
        }
        self.reap(hi);
        // The link node in the parent hive goes.
        if let Some((ph, exit)) = self.hives[h].exit.take() {
            let parent = self.hives[ph as usize].storage.hive_mut();
            let f = parent.key_flags(exit)? & !(KEY_NO_DELETE | KEY_HIVE_EXIT);
            parent.nk_mut_u16(exit, NK_FLAGS, f)?;
            parent.delete_key(exit)?;
        }
        let mh = &mut self.hives[h];
        mh.unloaded = true;
        mh.sd_cache.clear();
        mh.file_name.clear();
        let storage = core::mem::replace(&mut mh.storage, placeholder);
        Ok((storage, fired))
    }

    /// Frees the unreferenced deleted KCBs of hive `hi` (children first: a freed KCB drops its
    /// reference on its parent).
    fn reap(&mut self, hi: u16) {
        loop {
            let free: Vec<KcbIndex> = self
                .kcbs()
                .filter(|(_, x, refs)| x.hive == hi && x.deleted && *refs == 0)
                .map(|(i, _, _)| i)
                .collect();
            if free.is_empty() {
                break;
            }
            for i in free {
                self.free_kcb(i);
            }
        }
    }

    /// `NtRestoreKey` (`CmRestoreKey`): replaces the values and subkeys of KCB `k`'s key with
    /// those of `source`'s root ([`Hive::restore_subtree`]). A key below `k` that is still
    /// referenced otherwise than by the cache (a handle, a notification) makes it
    /// `STATUS_CANNOT_DELETE` unless `force` (`REG_FORCE_RESTORE`): then those keys are deleted
    /// under their handles (`STATUS_KEY_DELETED`). Returns the notifications the change fired.
    pub fn restore_key(&mut self, k: KcbIndex, source: &Hive, force: bool) -> Result<Vec<N>> {
        let (hi, cell) = {
            let x = self.key(k)?;
            (x.hive, x.cell)
        };
        let mut internal: BTreeMap<KcbIndex, u32> = BTreeMap::new();
        for (_, x, _) in self.kcbs() {
            for r in [x.parent, x.link] {
                if r != NO_KCB {
                    *internal.entry(r).or_insert(0) += 1;
                }
            }
        }
        let below: Vec<KcbIndex> = self
            .kcbs()
            .filter(|(i, x, _)| !x.deleted && self.is_ancestor(k, *i))
            .map(|(i, _, _)| i)
            .collect();
        let open = below
            .iter()
            .any(|&i| self.kcb_refs(i) > internal.get(&i).copied().unwrap_or(0));
        if open && !force {
            return status(STATUS_CANNOT_DELETE);
        }
        let mh = &mut self.hives[hi as usize];
        mh.storage.hive_mut().restore_subtree(cell, source)?;
        mh.sd_cache.clear();
        let flags = mh.storage.hive().key_flags(cell)?;
        {
            let x = self.kcb_mut(k);
            x.sd = None;
            x.flags = flags;
        }
        // The keys below are gone: handles get STATUS_KEY_DELETED, lookups reach the new ones.
        let total = self.slots;
        for i in 0..total as KcbIndex {
            let x = &self.chunks[i as usize / CHUNK][i as usize % CHUNK];
            if x.live && x.link != NO_KCB && below.contains(&x.link) {
                let l = x.link;
                self.forget_link(i, l);
            }
        }
        for &i in &below {
            self.unhash(i);
            let link = {
                let x = self.kcb_mut(i);
                x.deleted = true;
                core::mem::replace(&mut x.link, NO_KCB)
            };
            if link != NO_KCB {
                self.release(link);
            }
        }
        self.reap(hi);
        Ok(self.report(k, REG_NOTIFY_CHANGE_NAME | REG_NOTIFY_CHANGE_LAST_SET))
    }

    /// `NtSaveKey` / `NtSaveKeyEx` (`CmSaveKey`): the file image of a fresh hive holding KCB
    /// `k`'s key and its stable subtree ([`Hive::save_subtree`]); `format` is
    /// `REG_STANDARD_FORMAT` or `REG_LATEST_FORMAT`.
    pub fn save_key(&self, k: KcbIndex, format: u32) -> Result<Vec<u8>> {
        let x = self.key(k)?;
        let hive = self.hives[x.hive as usize].hive();
        hive.save_subtree_bytes(x.cell, format)
    }

    // ---- lookup ----

    /// The child of KCB `parent` named `want`: from the cache, else from the hive (a hive exit
    /// leads to the mounted hive's root).
    fn child(&mut self, parent: KcbIndex, want: &NameKey) -> Result<KcbIndex> {
        if let Some(k) = self.cache_find(parent, want) {
            self.clock += 1;
            let c = self.clock;
            self.kcb_mut(k).stamp = c;
            return Ok(k);
        }
        let (hi, cell) = {
            let p = self.kcb(parent)?;
            if p.deleted {
                return status(STATUS_OBJECT_NAME_NOT_FOUND);
            }
            (p.hive, p.cell)
        };
        let hive = self.hives[hi as usize].hive();
        let Some(c) = hive.find_subkey(cell, want)? else {
            return status(STATUS_OBJECT_NAME_NOT_FOUND);
        };
        let flags = hive.key_flags(c)?;
        if flags & KEY_HIVE_EXIT != 0 {
            // Mounted hive roots are pinned in the cache: a miss means the link is broken.
            return match self.hives.iter().find(|h| h.exit == Some((hi, c))) {
                Some(h) => Ok(h.root),
                None => corrupt(c, "hive exit without a mounted hive"),
            };
        }
        self.new_kcb(hi, c, parent, want, flags, None)
    }

    /// Follows KCB `k` if its key is a symbolic link (`KEY_SYM_LINK`): the target named by its
    /// `SymbolicLinkValue`, resolved from `\REGISTRY` and cached in the KCB.
    fn resolve_link(&mut self, k: KcbIndex, depth: u32) -> Result<KcbIndex> {
        let (hi, cell, cached) = {
            let x = self.kcb(k)?;
            if x.flags & KEY_SYM_LINK == 0 {
                return Ok(k);
            }
            (x.hive, x.cell, x.link)
        };
        if cached != NO_KCB {
            return Ok(cached);
        }
        let hive = self.hives[hi as usize].hive();
        if depth >= MAX_LINK_DEPTH {
            return status(STATUS_REPARSE_POINT_NOT_RESOLVED);
        }
        let (ty, data) = hive.query_value_data(cell, SYMBOLIC_LINK_VALUE)?;
        if ty != REG_LINK {
            return status(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        let target = from_utf16z(&data);
        let root = self.key_name(ROOT_KCB)?;
        let rest = below_root(&target, &root).ok_or(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))?;
        let t = self.walk(ROOT_KCB, rest, depth + 1)?;
        self.reference(t);
        self.kcb_mut(k).link = t;
        Ok(t)
    }

    /// Walks `path` (backslash-separated, relative) from `start`, following symbolic links:
    /// the deepest cached prefix in one probe, then component by component.
    fn walk(&mut self, start: KcbIndex, path: &str, depth: u32) -> Result<KcbIndex> {
        self.key(start)?;
        let (mut cur, mut pos) = self.cache_lookup(start, path);
        if pos > 0 && self.kcb(cur)?.flags & KEY_SYM_LINK != 0 {
            cur = self.resolve_link(cur, depth)?;
        }
        let bytes = path.as_bytes();
        while pos < bytes.len() {
            // The separator is ASCII, so byte positions around it are character boundaries.
            let end = bytes[pos..]
                .iter()
                .position(|&b| b == b'\\')
                .map_or(bytes.len(), |e| pos + e);
            if end > pos {
                let want = NameKey::new(&path[pos..end])
                    .map_err(|_| Error::Status(STATUS_OBJECT_NAME_INVALID))?;
                cur = self.child(cur, &want)?;
                if self.kcb(cur)?.flags & KEY_SYM_LINK != 0 {
                    cur = self.resolve_link(cur, depth)?;
                }
            }
            pos = end + 1;
        }
        Ok(cur)
    }

    /// Opens `path` below KCB `start` (`CmpParseKey`): the key's KCB with a reference for the
    /// caller. `STATUS_OBJECT_NAME_NOT_FOUND` when a component is missing.
    pub fn lookup(&mut self, start: KcbIndex, path: &str) -> Result<KcbIndex> {
        let k = self.walk(start, path, 0)?;
        self.reference(k);
        self.trim();
        Ok(k)
    }

    /// `NtCreateKey` for `path` below `start`: opens the key if it exists, else creates it in the
    /// parent's hive (its parent must exist: `STATUS_OBJECT_NAME_NOT_FOUND`; a stable key under a
    /// volatile one: `STATUS_CHILD_MUST_BE_VOLATILE`). Returns the KCB (referenced for the
    /// caller), whether it was created, and the notifications the creation satisfied.
    pub fn create_key(
        &mut self,
        start: KcbIndex,
        path: &str,
        volatile: bool,
    ) -> Result<(KcbIndex, bool, Vec<N>)> {
        let (parent_path, name) = path.rsplit_once('\\').unwrap_or(("", path));
        let want = NameKey::new(name)?;
        let parent = self.walk(start, parent_path, 0)?;
        match self.child(parent, &want) {
            Ok(k) => {
                let k = self.resolve_link(k, 0)?;
                self.reference(k);
                self.trim();
                return Ok((k, false, Vec::new()));
            }
            Err(Error::Status(s)) if s == STATUS_OBJECT_NAME_NOT_FOUND => {}
            Err(e) => return Err(e),
        }
        let (hi, pcell) = {
            let p = self.key(parent)?;
            (p.hive, p.cell)
        };
        // The KCB's storage first, so that a created key always gets its KCB.
        self.reserve_kcb()?;
        let hive = self.hives[hi as usize].storage.hive_mut();
        let (cell, _) = hive.create_key_ex(pcell, name, None, volatile)?;
        let flags = hive.key_flags(cell)?;
        let k = self.new_kcb(hi, cell, parent, &want, flags, None)?;
        self.reference(k);
        let fired = self.report(parent, REG_NOTIFY_CHANGE_NAME);
        self.trim();
        Ok((k, true, fired))
    }

    /// Makes sure the next [`Registry::new_kcb`] finds a slot (a free one, or room in the last
    /// chunk within the reference table's size).
    fn reserve_kcb(&mut self) -> Result<()> {
        if !self.free.is_empty() {
            return Ok(());
        }
        if self.slots >= self.refs.len() {
            return status(STATUS_INSUFFICIENT_RESOURCES);
        }
        if self.chunks.last().is_some_and(|c| c.len() < CHUNK) {
            return Ok(());
        }
        let mut c = Vec::new();
        c.try_reserve_exact(CHUNK).map_err(no_memory)?;
        self.chunks.try_reserve(1).map_err(no_memory)?;
        self.free.try_reserve(CHUNK).map_err(no_memory)?;
        self.chunks.push(c);
        Ok(())
    }

    /// `NtDeleteKey`: the key must have no subkeys (`STATUS_CANNOT_DELETE`, also for hive roots
    /// and keys marked `KEY_NO_DELETE`). The KCB is marked deleted; handles to it then get
    /// `STATUS_KEY_DELETED`.
    pub fn delete_key(&mut self, k: KcbIndex) -> Result<Vec<N>> {
        let (hi, cell, parent) = {
            let x = self.key(k)?;
            (x.hive, x.cell, x.parent)
        };
        if parent == NO_KCB || self.hives[hi as usize].root == k {
            return status(STATUS_CANNOT_DELETE);
        }
        self.hives[hi as usize]
            .storage
            .hive_mut()
            .delete_key(cell)?;
        self.hives[hi as usize].sd_cache.clear();
        self.unhash(k);
        let link = {
            let x = self.kcb_mut(k);
            x.deleted = true;
            core::mem::replace(&mut x.link, NO_KCB)
        };
        if link != NO_KCB {
            self.release(link);
        }
        // Links resolved to this key resolve again (and fail) next time.
        let total = self.slots;
        for i in 0..total as KcbIndex {
            let x = &self.chunks[i as usize / CHUNK][i as usize % CHUNK];
            if x.live && x.link == k {
                self.forget_link(i, k);
            }
        }
        Ok(self.report(parent, REG_NOTIFY_CHANGE_NAME))
    }

    /// Sets nk flags of KCB `k`'s key (`KEY_NO_DELETE` on the predefined keys).
    pub fn set_key_flags(&mut self, k: KcbIndex, flags: u16) -> Result<()> {
        let (hi, cell) = {
            let x = self.key(k)?;
            (x.hive, x.cell)
        };
        let h = self.hives[hi as usize].storage.hive_mut();
        h.set_key_flags(cell, flags)?;
        let f = h.key_flags(cell)?;
        self.kcb_mut(k).flags = f;
        Ok(())
    }

    // ---- values and information ----

    /// `NtQueryValueKey`: the value's type and data.
    pub fn query_value(&self, k: KcbIndex, name: &str) -> Result<(u32, Vec<u8>)> {
        let x = self.key(k)?;
        self.hives[x.hive as usize]
            .hive()
            .query_value_data(x.cell, name)
    }

    /// `NtQueryValueKey` into a caller's buffer: (type, data length); the data is copied as far
    /// as it fits.
    pub fn query_value_into(
        &self,
        k: KcbIndex,
        name: &str,
        buf: &mut [u8],
    ) -> Result<(u32, usize)> {
        let x = self.key(k)?;
        self.hives[x.hive as usize]
            .hive()
            .query_value_into(x.cell, name, buf)
    }

    /// `NtSetValueKey`.
    pub fn set_value(&mut self, k: KcbIndex, name: &str, ty: u32, data: &[u8]) -> Result<Vec<N>> {
        let (hi, cell, link) = {
            let x = self.key(k)?;
            (x.hive, x.cell, x.link)
        };
        self.hives[hi as usize]
            .storage
            .hive_mut()
            .set_value(cell, name, ty, data)?;
        self.forget_link(k, link);
        Ok(self.report(k, REG_NOTIFY_CHANGE_LAST_SET))
    }

    /// `NtDeleteValueKey`.
    pub fn delete_value(&mut self, k: KcbIndex, name: &str) -> Result<Vec<N>> {
        let (hi, cell, link) = {
            let x = self.key(k)?;
            (x.hive, x.cell, x.link)
        };
        self.hives[hi as usize]
            .storage
            .hive_mut()
            .delete_value(cell, name)?;
        self.forget_link(k, link);
        Ok(self.report(k, REG_NOTIFY_CHANGE_LAST_SET))
    }

    /// A link's value changed: its cached target is resolved again next time.
    fn forget_link(&mut self, k: KcbIndex, link: KcbIndex) {
        if link != NO_KCB {
            self.kcb_mut(k).link = NO_KCB;
            self.release(link);
        }
    }

    /// `NtEnumerateKey`: the name of subkey `index` (stable keys by name, then volatile ones);
    /// `STATUS_NO_MORE_ENTRIES` past the end.
    pub fn enumerate_key(&self, k: KcbIndex, index: u32) -> Result<String> {
        let x = self.key(k)?;
        let hive = self.hives[x.hive as usize].hive();
        match hive.subkey_at(x.cell, index as usize)? {
            Some(c) => hive.key_name(c),
            None => status(STATUS_NO_MORE_ENTRIES),
        }
    }

    /// `NtEnumerateValueKey`: value `index` in list order.
    pub fn enumerate_value(&self, k: KcbIndex, index: u32) -> Result<Value> {
        let x = self.key(k)?;
        self.hives[x.hive as usize]
            .hive()
            .value_by_index(x.cell, index as usize)?
            .ok_or(Error::Status(STATUS_NO_MORE_ENTRIES))
    }

    /// `NtQueryKey(KeyFullInformation)` essentials.
    pub fn query_key(&self, k: KcbIndex) -> Result<KeyInformation> {
        let x = self.key(k)?;
        let i = self.hives[x.hive as usize].hive().key_info(x.cell)?;
        Ok(KeyInformation {
            name: self.key_name(k)?,
            last_write_time: i.last_write,
            subkeys: i.subkeys + i.volatile_subkeys,
            values: i.values,
            volatile: i.flags & KEY_IS_VOLATILE != 0,
        })
    }

    /// The name of KCB `k`'s key: the mount name of a hive root, else the name in its nk.
    pub fn key_name(&self, k: KcbIndex) -> Result<String> {
        let x = self.kcb(k)?;
        match &x.mount_name {
            Some(m) => {
                let mut s = String::new();
                s.try_reserve_exact(m.len()).map_err(no_memory)?;
                s.push_str(m);
                Ok(s)
            }
            None => self.hives[x.hive as usize].hive().key_name(x.cell),
        }
    }

    /// The full name of KCB `k` (`\REGISTRY\MACHINE\...`).
    pub fn full_name(&self, k: KcbIndex) -> String {
        let mut parts = Vec::new();
        let mut cur = k;
        while let Ok(x) = self.kcb(cur) {
            parts.push(self.key_name(cur).unwrap_or_default());
            cur = x.parent;
            if parts.len() > 512 {
                break;
            }
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('\\');
            s.push_str(p);
        }
        s
    }

    // ---- security ----

    /// The key's security descriptor, parsed once per security cell of its hive and cached in
    /// the KCB. `None` when the key has an empty descriptor; `STATUS_REGISTRY_CORRUPT` when the
    /// descriptor does not parse.
    pub fn security(&mut self, k: KcbIndex) -> Result<Option<S>> {
        let (hi, cell) = {
            let x = self.key(k)?;
            if let Some(sd) = &x.sd {
                return Ok(Some(sd.clone()));
            }
            (x.hive, x.cell)
        };
        let mh = &mut self.hives[hi as usize];
        let sk = mh.storage.hive().key_info(cell)?.security;
        let sd = match mh.sd_cache.get(&sk) {
            Some(sd) => sd.clone(),
            None => {
                let bytes = mh.storage.hive().key_security(cell)?;
                if bytes.is_empty() {
                    return Ok(None);
                }
                let sd = (self.parse_sd)(&bytes).ok_or(Error::Status(STATUS_REGISTRY_CORRUPT))?;
                mh.sd_cache.insert(sk, sd.clone());
                sd
            }
        };
        self.kcb_mut(k).sd = Some(sd.clone());
        Ok(Some(sd))
    }

    /// Sets a key's security descriptor (self-relative bytes; the caller has validated them).
    pub fn set_security(&mut self, k: KcbIndex, sd: &[u8]) -> Result<Vec<N>> {
        let (hi, cell) = {
            let x = self.key(k)?;
            (x.hive, x.cell)
        };
        let parsed = (self.parse_sd)(sd).ok_or(Error::Status(STATUS_INVALID_SECURITY_DESCR))?;
        let mh = &mut self.hives[hi as usize];
        mh.storage.hive_mut().set_key_security(cell, sd)?;
        // Security cells may have been freed and reused.
        mh.sd_cache.clear();
        self.kcb_mut(k).sd = Some(parsed);
        Ok(self.report(k, REG_NOTIFY_CHANGE_SECURITY))
    }

    // ---- flushing ----

    /// Whether a file-backed hive has changes not yet flushed.
    pub fn is_dirty(&self) -> bool {
        self.hives.iter().any(|h| match &h.storage {
            Storage::Files { logged, .. } => logged.is_dirty(),
            Storage::Memory(_) => false,
        })
    }

    /// `NtFlushKey`: flushes the hive of KCB `k` (log first, then the primary). Memory-only
    /// hives have nothing to write.
    pub fn flush(&mut self, k: KcbIndex) -> Result<()> {
        let hi = self.key(k)?.hive;
        Self::flush_hive(&mut self.hives[hi as usize])
    }

    fn flush_hive(h: &mut MountedHive<S>) -> Result<()> {
        if let Storage::Files { logged, files } = &mut h.storage {
            if logged.is_dirty() {
                logged.flush(&mut **files)?;
                h.flushes += 1;
            }
        }
        Ok(())
    }

    /// Flushes every dirty file-backed hive (`CmpLazyFlush`); the first error is returned after
    /// trying them all.
    pub fn flush_all(&mut self) -> Result<()> {
        let mut r = Ok(());
        for h in self.hives.iter_mut() {
            if let Err(e) = Self::flush_hive(h) {
                if r.is_ok() {
                    r = Err(e);
                }
            }
        }
        r
    }

    /// Binds the memory-only hive of KCB `k` — one the boot loader read from its primary file
    /// and handed over — to its files once they can be opened (`CmpInitializeHiveList`): from
    /// then on it is flushed log-first like any file-backed hive ([`LoggedHive::attach`]:
    /// changes made since the loader read it are dirty and reach the files on the next flush).
    /// `primary_base` is the primary file's current base block. A hive already bound is
    /// `STATUS_INVALID_PARAMETER`.
    pub fn bind_files(
        &mut self,
        k: KcbIndex,
        files: Box<dyn HiveFiles + Send + Sync>,
        primary_base: &[u8],
    ) -> Result<()> {
        let hi = self.key(k)?.hive as usize;
        if !matches!(self.hives[hi].storage, Storage::Memory(_)) {
            return status(STATUS_INVALID_PARAMETER);
        }
        let placeholder = Storage::Memory(Hive::new_empty("X")?);
        let h = &mut self.hives[hi];
        match core::mem::replace(&mut h.storage, placeholder) {
            Storage::Memory(hive) => {
                h.storage = Storage::Files {
                    logged: LoggedHive::attach(hive, primary_base),
                    files,
                };
                Ok(())
            }
            other => {
                h.storage = other;
                status(STATUS_INVALID_PARAMETER)
            }
        }
    }

    /// The storage of hive `index` (tests and the kernel debugger read the files).
    pub fn storage(&self, index: usize) -> Option<&Storage> {
        self.hives.get(index).map(|h| &h.storage)
    }

    /// Limits the growth of the hive of KCB `k` (see [`Hive::set_size_limit`]).
    pub fn set_hive_size_limit(&mut self, k: KcbIndex, bytes: u32) -> Result<()> {
        let hi = self.key(k)?.hive;
        self.hives[hi as usize]
            .storage
            .hive_mut()
            .set_size_limit(bytes);
        Ok(())
    }

    // ---- notification ----

    /// `NtNotifyChangeKey`: `token` is returned (once) by the change to KCB `k` (or, with
    /// `subtree`, below it) that matches `filter`. The notification holds a reference on `k`.
    pub fn notify(&mut self, k: KcbIndex, filter: u32, subtree: bool, token: N) -> Result<()> {
        self.key(k)?;
        self.notifications.try_reserve(1).map_err(no_memory)?;
        self.reference(k);
        self.notifications.push(Notification {
            kcb: k,
            filter,
            subtree,
            token,
        });
        Ok(())
    }

    /// Removes the notifications whose token satisfies `pred` (the key handle that posted them
    /// closed) and returns their tokens.
    pub fn cancel_notifications(&mut self, pred: impl Fn(&N) -> bool) -> Vec<N> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.notifications.len() {
            if pred(&self.notifications[i].token) {
                let n = self.notifications.swap_remove(i);
                self.release(n.kcb);
                out.push(n.token);
            } else {
                i += 1;
            }
        }
        out
    }

    /// Pending notifications.
    pub fn notification_count(&self) -> usize {
        self.notifications.len()
    }

    /// A change of kind `filter` to KCB `k`: removes and returns the notifications it satisfies
    /// (on `k` itself, or on an ancestor watching its subtree).
    fn report(&mut self, k: KcbIndex, filter: u32) -> Vec<N> {
        let mut out = Vec::new();
        if self.notifications.is_empty() {
            return out;
        }
        let mut i = 0;
        while i < self.notifications.len() {
            let n = &self.notifications[i];
            let hit =
                n.filter & filter != 0 && (n.kcb == k || (n.subtree && self.is_ancestor(n.kcb, k)));
            if hit {
                let n = self.notifications.swap_remove(i);
                self.release(n.kcb);
                out.push(n.token);
            } else {
                i += 1;
            }
        }
        out
    }

    fn is_ancestor(&self, a: KcbIndex, mut k: KcbIndex) -> bool {
        let mut guard = 0;
        while let Ok(x) = self.kcb(k) {
            if x.parent == a {
                return true;
            }
            k = x.parent;
            guard += 1;
            if guard > 512 {
                break;
            }
        }
        false
    }
}

/// Combines a parent's conv key with a name's `lh` hash.
fn conv_key(parent: u32, name_hash: u32) -> u32 {
    parent.wrapping_mul(0x0100_0193) ^ name_hash
}

/// The part of a full registry path below the root named `root` (`\REGISTRY\MACHINE\X` →
/// `MACHINE\X`); `None` when the path does not start at the root.
pub fn below_root<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let p = path.trim_start_matches('\\');
    let (first, rest) = p.split_once('\\').unwrap_or((p, ""));
    first.eq_ignore_ascii_case(root).then_some(rest)
}
