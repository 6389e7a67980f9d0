//! Per-processor GDT and TSS laid out exactly as Windows x64 lays them out
//! (*Windows Internals*, Part 2, ch. 8, "Segmentation").

/// `KGDT64_R0_CODE`: ring 0 long-mode code.
pub const KGDT64_R0_CODE: u16 = 0x10;
/// `KGDT64_R0_DATA`: ring 0 data/stack.
pub const KGDT64_R0_DATA: u16 = 0x18;
/// `KGDT64_R3_CMCODE`: ring 3 compatibility-mode (WoW64) code.
pub const KGDT64_R3_CMCODE: u16 = 0x20;
/// `KGDT64_R3_DATA`: ring 3 data.
pub const KGDT64_R3_DATA: u16 = 0x28;
/// `KGDT64_R3_CODE`: ring 3 long-mode code.
pub const KGDT64_R3_CODE: u16 = 0x30;
/// `KGDT64_SYS_TSS`: the 16-byte TSS descriptor.
pub const KGDT64_SYS_TSS: u16 = 0x40;
/// `KGDT64_R3_CMTEB`: the WoW64 TEB segment.
pub const KGDT64_R3_CMTEB: u16 = 0x50;
/// Entries in each processor's GDT.
pub const GDT_ENTRIES: usize = 16;

/// Encodes a code/data descriptor: base, 20-bit limit, access byte and flags nibble (G, D/B, L, AVL).
pub const fn descriptor(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    (limit as u64 & 0xFFFF)
        | ((base as u64 & 0xFF_FFFF) << 16)
        | ((access as u64) << 40)
        | (((limit as u64 >> 16) & 0xF) << 48)
        | (((flags as u64) & 0xF) << 52)
        | (((base as u64 >> 24) & 0xFF) << 56)
}

/// The Windows x64 GDT with the TSS at `tss` (`KiInitializeGdt`).
pub fn build(tss: u64, tss_limit: u32) -> [u64; GDT_ENTRIES] {
    let mut g = [0u64; GDT_ENTRIES];
    g[KGDT64_R0_CODE as usize / 8] = descriptor(0, 0, 0x9B, 0x2);
    g[KGDT64_R0_DATA as usize / 8] = descriptor(0, 0, 0x93, 0x4);
    g[KGDT64_R3_CMCODE as usize / 8] = descriptor(0, 0xFFFFF, 0xFB, 0xC);
    g[KGDT64_R3_DATA as usize / 8] = descriptor(0, 0xFFFFF, 0xF3, 0xC);
    g[KGDT64_R3_CODE as usize / 8] = descriptor(0, 0, 0xFB, 0x2);
    g[KGDT64_SYS_TSS as usize / 8] = descriptor(tss as u32, tss_limit, 0x89, 0x0);
    g[KGDT64_SYS_TSS as usize / 8 + 1] = tss >> 32;
    g[KGDT64_R3_CMTEB as usize / 8] = descriptor(0, 0x3C00, 0xF3, 0x4);
    g
}

/// `KTSS64`.
#[repr(C, packed(4))]
pub struct Ktss64 {
    pub reserved0: u32,
    /// Rsp0..Rsp2: stacks for privilege transitions.
    pub rsp: [u64; 3],
    pub reserved1: u64,
    /// Ist[1..7]: interrupt stack table (index 0 unused, as NT declares Ist[8]).
    pub ist: [u64; 7],
    pub reserved2: u64,
    pub reserved3: u16,
    pub io_map_base: u16,
}

/// IST slots NT uses: 1 double fault, 2 NMI, 3 machine check.
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

/// One decoded GDT entry, as the kd `dg` command prints it.
pub struct DecodedSegment {
    pub base: u64,
    pub limit: u64,
    pub type_name: &'static str,
    pub dpl: u8,
    pub big: bool,
    pub granular: bool,
    pub present: bool,
    pub long: bool,
    pub flags: u16,
}

/// Decodes the descriptor at `index` (`next` is the following entry, for 16-byte system descriptors).
pub fn decode(d: u64, next: u64) -> DecodedSegment {
    let access = (d >> 40) as u8;
    let flags4 = ((d >> 52) & 0xF) as u8;
    let system = access & 0x10 == 0;
    let ty = access & 0xF;
    let mut base = ((d >> 16) & 0xFF_FFFF) | ((d >> 56) << 24);
    let raw_limit = (d & 0xFFFF) | ((d >> 48) & 0xF) << 16;
    let granular = flags4 & 0x8 != 0;
    let limit = if granular {
        (raw_limit << 12) | 0xFFF
    } else {
        raw_limit
    };
    let type_name = if !system {
        let accessed = ty & 1 != 0;
        if ty & 0x8 != 0 {
            match (ty & 0x2 != 0, accessed) {
                (true, true) => "Code RE Ac",
                (true, false) => "Code RE   ",
                (false, true) => "Code EO Ac",
                (false, false) => "Code EO   ",
            }
        } else {
            match (ty & 0x2 != 0, accessed) {
                (true, true) => "Data RW Ac",
                (true, false) => "Data RW   ",
                (false, true) => "Data RO Ac",
                (false, false) => "Data RO   ",
            }
        }
    } else {
        match ty {
            0x9 => "TSS32 Avl ",
            0xB => "TSS32 Busy",
            0xC => "CallGate32",
            0xE => "Int Gate32",
            0xF => "TrapGate32",
            _ => "<Reserved>",
        }
    };
    if system && matches!(ty, 0x9 | 0xB) {
        base |= next << 32;
    }
    DecodedSegment {
        base,
        limit,
        type_name,
        dpl: (access >> 5) & 3,
        big: flags4 & 0x4 != 0,
        granular,
        present: access & 0x80 != 0,
        long: flags4 & 0x2 != 0,
        flags: ((flags4 as u16) << 8) | access as u16,
    }
}
