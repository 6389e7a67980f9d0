//! x64 page tables through the self-map: the PML4 maps itself at slot 0x1ED
//! (as on Windows before KASLR of the PTE base), so the PTE of any address
//! is at a fixed virtual address (`MiGetPteAddress`), and `!pte` shows all
//! four levels like WinDbg.

const SELF_MAP: u64 = nt::arc::SELF_MAP_PML4_INDEX as u64;

/// `PTE_BASE`: 0xFFFFF680'00000000 with the self-map at 0x1ED.
pub const PTE_BASE: u64 = 0xFFFF_0000_0000_0000 | (SELF_MAP << 39);
/// `PDE_BASE`.
pub const PDE_BASE: u64 = PTE_BASE | (SELF_MAP << 30);
/// `PPE_BASE`.
pub const PPE_BASE: u64 = PDE_BASE | (SELF_MAP << 21);
/// `PXE_BASE`.
pub const PXE_BASE: u64 = PPE_BASE | (SELF_MAP << 12);

const _: () = assert!(PTE_BASE == 0xFFFF_F680_0000_0000);
const _: () = assert!(PXE_BASE == 0xFFFF_F6FB_7DBE_D000);

pub const PTE_VALID: u64 = 1;
pub const PTE_WRITE: u64 = 1 << 1;
pub const PTE_USER: u64 = 1 << 2;
pub const PTE_WRITE_THROUGH: u64 = 1 << 3;
pub const PTE_CACHE_DISABLE: u64 = 1 << 4;
pub const PTE_ACCESSED: u64 = 1 << 5;
pub const PTE_DIRTY: u64 = 1 << 6;
pub const PTE_LARGE: u64 = 1 << 7;
pub const PTE_GLOBAL: u64 = 1 << 8;
/// Software bit NT uses for copy-on-write.
pub const PTE_COPY_ON_WRITE: u64 = 1 << 9;
pub const PTE_NX: u64 = 1 << 63;

/// `MiGetPteAddress`.
pub const fn pte_address(va: u64) -> u64 {
    PTE_BASE + ((va >> 9) & 0x7F_FFFF_FFF8)
}
/// `MiGetPdeAddress`.
pub const fn pde_address(va: u64) -> u64 {
    PDE_BASE + ((va >> 18) & 0x3FFF_FFF8)
}
/// `MiGetPpeAddress`.
pub const fn ppe_address(va: u64) -> u64 {
    PPE_BASE + ((va >> 27) & 0x1F_FFF8)
}
/// `MiGetPxeAddress`.
pub const fn pxe_address(va: u64) -> u64 {
    PXE_BASE + ((va >> 36) & 0xFF8)
}

/// WinDbg's flag string for a PTE: copy-on-write, global, large, dirty,
/// accessed, cache-disabled, write-through, kernel/user, write/read,
/// execute, valid.
pub fn flags(pte: u64) -> [u8; 11] {
    let b = |bit: u64, c: u8| if pte & bit != 0 { c } else { b'-' };
    [
        b(PTE_COPY_ON_WRITE, b'C'),
        b(PTE_GLOBAL, b'G'),
        b(PTE_LARGE, b'L'),
        b(PTE_DIRTY, b'D'),
        b(PTE_ACCESSED, b'A'),
        b(PTE_CACHE_DISABLE, b'N'),
        b(PTE_WRITE_THROUGH, b'T'),
        if pte & PTE_USER != 0 { b'U' } else { b'K' },
        if pte & PTE_WRITE != 0 { b'W' } else { b'R' },
        if pte & PTE_NX != 0 { b'-' } else { b'E' },
        b(PTE_VALID, b'V'),
    ]
}

/// Reads a paging-structure entry through the self-map.
fn read(addr: u64) -> u64 {
    // SAFETY: the caller walks from the PXE down and only reads a level whose
    // parent entry is present (and not a large page), so the self-map maps `addr`.
    unsafe { (addr as *const u64).read_volatile() }
}

/// The four entries mapping `va` (PXE, PPE, PDE, PTE); levels below a
/// non-present or large entry are `None`.
pub fn walk(va: u64) -> [(u64, Option<u64>); 4] {
    let addrs = [
        pxe_address(va),
        ppe_address(va),
        pde_address(va),
        pte_address(va),
    ];
    let mut out = [(0, None); 4];
    let mut go = true;
    for (i, &a) in addrs.iter().enumerate() {
        out[i].0 = a;
        if go {
            let v = read(a);
            out[i].1 = Some(v);
            go = v & PTE_VALID != 0 && (i == 0 || v & PTE_LARGE == 0);
        }
    }
    out
}

/// The physical address `va` maps to, if any (`MmGetPhysicalAddress`).
pub fn physical_address(va: u64) -> Option<u64> {
    let w = walk(va);
    for (level, &(_, e)) in w.iter().enumerate() {
        let e = e?;
        if e & PTE_VALID == 0 {
            return None;
        }
        let frame = e & 0x000F_FFFF_FFFF_F000;
        match level {
            1 if e & PTE_LARGE != 0 => return Some((frame & !0x3FFF_FFFF) | (va & 0x3FFF_FFFF)),
            2 if e & PTE_LARGE != 0 => return Some((frame & !0x1F_FFFF) | (va & 0x1F_FFFF)),
            3 => return Some(frame | (va & 0xFFF)),
            _ => {}
        }
    }
    None
}

/// PAGE_FAULT_IN_NONPAGED_AREA parameter 4 for a fault on `va`:
/// `NONPAGED_BUGCHECK_NOT_PRESENT_PAGE_TABLE` (2) when a paging structure
/// above the PTE is missing, `NONPAGED_BUGCHECK_FREED_PTE` (0) when the
/// tables exist and the PTE itself is empty or not valid.
pub fn nonpaged_fault_type(va: u64) -> u64 {
    let w = walk(va);
    let tables_present = w[..3]
        .iter()
        .all(|(_, e)| e.is_some_and(|v| v & PTE_VALID != 0));
    if tables_present && w[3].1.is_some() {
        0
    } else {
        2
    }
}

/// `!pte <va>`.
pub fn kd_pte(arg: Option<&str>) {
    let Some(va) = arg.and_then(|a| nt::kd::parse_number(a).ok()) else {
        crate::dbg_println!("usage: !pte <virtual address>");
        return;
    };
    // Canonical form.
    let va = if va & (1 << 47) != 0 {
        va | 0xFFFF_0000_0000_0000
    } else {
        va & 0x0000_FFFF_FFFF_FFFF
    };
    let w = walk(va);
    crate::dbg_println!("                                           VA {va:016x}");
    let names = ["PXE", "PPE", "PDE", "PTE"];
    let mut l1 = alloc::string::String::new();
    let mut l2 = alloc::string::String::new();
    let mut l3 = alloc::string::String::new();
    for (i, &(a, e)) in w.iter().enumerate() {
        l1 += &alloc::format!("{} at {:016X}    ", names[i], a);
        match e {
            Some(v) => {
                l2 += &alloc::format!("contains {v:016X}  ");
                let f = flags(v);
                let fs = core::str::from_utf8(&f).unwrap_or("");
                if v & PTE_VALID != 0 {
                    l3 += &alloc::format!("pfn {:<10x}{}  ", (v & 0x000F_FFFF_FFFF_F000) >> 12, fs);
                } else {
                    l3 += &alloc::format!("not valid{:17}", "");
                }
            }
            None => {
                l2 += &alloc::format!("{:27}", "");
                l3 += &alloc::format!("{:27}", "");
            }
        }
    }
    crate::dbg_println!("{}", l1.trim_end());
    crate::dbg_println!("{}", l2.trim_end());
    crate::dbg_println!("{}", l3.trim_end());
    if let Some(l) = w
        .iter()
        .position(|(_, e)| e.is_some_and(|v| v & PTE_VALID != 0 && v & PTE_LARGE != 0))
    {
        crate::dbg_println!("({} maps a large page)", names[l]);
    }
}
