//! Security cells (`sk`): the circular list of shared descriptors with reference counts.

use alloc::vec::Vec;

use crate::*;

/// Default security descriptor for a new hive's root (self-relative): owner Administrators, group
/// SYSTEM, DACL granting KEY_ALL_ACCESS to Administrators and SYSTEM and KEY_READ to Everyone, all
/// container-inheritable.
pub const DEFAULT_SD: [u8; 120] = {
    let mut sd = [0u8; 120];
    sd[0] = 1; // revision
    sd[2] = 0x04; // SE_DACL_PRESENT
    sd[3] = 0x80; // SE_SELF_RELATIVE
    sd[4] = 92; // owner
    sd[8] = 108; // group
    sd[16] = 20; // dacl
                 // ACL header
    sd[20] = 2;
    sd[22] = 72;
    sd[24] = 3;
    // ACE 1: Administrators
    sd[28] = 0;
    sd[29] = 2;
    sd[30] = 24;
    sd[32] = 0x3F;
    sd[34] = 0x0F;
    let admins = [1u8, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0, 0x20, 2, 0, 0];
    let system = [1u8, 1, 0, 0, 0, 0, 0, 5, 0x12, 0, 0, 0];
    let everyone = [1u8, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    let mut i = 0;
    while i < 16 {
        sd[36 + i] = admins[i];
        sd[92 + i] = admins[i];
        i += 1;
    }
    // ACE 2: SYSTEM at 52
    sd[52] = 0;
    sd[53] = 2;
    sd[54] = 20;
    sd[56] = 0x3F;
    sd[58] = 0x0F;
    // ACE 3: Everyone at 72, KEY_READ
    sd[72] = 0;
    sd[73] = 2;
    sd[74] = 20;
    sd[76] = 0x19;
    sd[78] = 0x02;
    let mut j = 0;
    while j < 12 {
        sd[60 + j] = system[j];
        sd[80 + j] = everyone[j];
        sd[108 + j] = system[j];
        j += 1;
    }
    sd
};

impl Hive {
    // ---- sk ----

    pub(crate) fn alloc_sk(&mut self, volatile: bool, sd: &[u8]) -> Result<u32> {
        let c = self.alloc(volatile, 20 + sd.len())?;
        let d = self.cell_mut(c)?;
        d[0..2].copy_from_slice(b"sk");
        wr32(d, 4, c);
        wr32(d, 8, c);
        wr32(d, 12, 0);
        wr32(d, 16, sd.len() as u32);
        d[20..20 + sd.len()].copy_from_slice(sd);
        Ok(c)
    }

    pub(crate) fn sk_ref(&mut self, sk: u32, delta: i32) -> Result<()> {
        let d = self.cell_mut(sk)?;
        if d.get(0..2) != Some(b"sk") {
            return corrupt(sk, "not an sk record");
        }
        let r = rd32(d, 12).unwrap_or(0);
        let n = if delta >= 0 {
            r.checked_add(delta as u32)
        } else {
            r.checked_sub(delta.unsigned_abs())
        };
        let n = match n {
            Some(n) => n,
            None => return corrupt(sk, "sk reference count out of range"),
        };
        wr32(d, 12, n);
        if n == 0 {
            // Unlink from the security list and free.
            let fl = rd32(d, 4).unwrap_or(sk);
            let bl = rd32(d, 8).unwrap_or(sk);
            if fl != sk {
                wr32(self.cell_mut(fl)?, 8, bl);
                wr32(self.cell_mut(bl)?, 4, fl);
            }
            self.free(sk)?;
        }
        Ok(())
    }

    /// The security descriptor bytes of a key.
    pub fn key_security(&self, key: KeyRef) -> Result<Vec<u8>> {
        let sk = self.nk_checked(key)?.sk;
        let d = self.cell(sk)?;
        let len = rd32(d, 16).unwrap_or(0) as usize;
        match d.get(20..20usize.saturating_add(len)) {
            Some(s) if d.get(0..2) == Some(b"sk") => Ok(s.to_vec()),
            _ => corrupt(sk, "bad sk record"),
        }
    }

    /// Sets a key's security descriptor (self-relative bytes), sharing an identical existing sk
    /// record when there is one. The descriptor is stored as given (not validated here).
    pub fn set_key_security(&mut self, key: KeyRef, sd: &[u8]) -> Result<()> {
        let old = self.nk_checked(key)?.sk;
        let volatile = key & VOLATILE_BIT != 0;
        // Search the list (in the same storage) for an identical descriptor.
        let mut found = None;
        if old & VOLATILE_BIT == key & VOLATILE_BIT {
            let mut p = old;
            for _ in 0..100_000 {
                let d = self.cell(p)?;
                let len = rd32(d, 16).unwrap_or(0) as usize;
                if d.get(20..20 + len) == Some(sd) {
                    found = Some(p);
                    break;
                }
                p = rd32(d, 4).unwrap_or(old);
                if p == old {
                    break;
                }
            }
        }
        let new = match found {
            Some(p) => p,
            None => {
                let n = self.alloc_sk(volatile, sd)?;
                if old & VOLATILE_BIT == key & VOLATILE_BIT {
                    // Insert after `old`.
                    let next = rd32(self.cell(old)?, 4).unwrap_or(old);
                    wr32(self.cell_mut(n)?, 4, next);
                    wr32(self.cell_mut(n)?, 8, old);
                    wr32(self.cell_mut(old)?, 4, n);
                    wr32(self.cell_mut(next)?, 8, n);
                }
                n
            }
        };
        if new == old {
            return Ok(());
        }
        self.sk_ref(new, 1)?;
        self.nk_mut_u32(key, NK_SK, new)?;
        self.sk_ref(old, -1)
    }
}
