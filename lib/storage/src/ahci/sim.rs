//! A simulated AHCI HBA with one SATA disk on port 0, for host tests of the
//! port logic: it walks the command list, command tables and PRDTs in a
//! simulated physical memory like the ICH9 does, and can inject errors
//! (task-file errors, a device that stays busy until COMRESET, no device).

use super::*;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

/// Simulated physical memory: regions at physical bases.
#[derive(Default)]
pub struct PhysMem {
    regions: Vec<(u64, Vec<u8>)>,
}

impl PhysMem {
    /// Adds a zeroed region of `len` bytes at `base`.
    pub fn add(&mut self, base: u64, len: usize) {
        self.regions.push((base, vec![0; len]));
    }
    fn slice(&mut self, pa: u64, len: usize) -> &mut [u8] {
        for (b, r) in &mut self.regions {
            if pa >= *b && pa + len as u64 <= *b + r.len() as u64 {
                let o = (pa - *b) as usize;
                return &mut r[o..o + len];
            }
        }
        panic!("simulated DMA to unmapped {pa:#x}+{len:#x}");
    }
    /// Reads bytes at a physical address.
    pub fn read(&mut self, pa: u64, out: &mut [u8]) {
        out.copy_from_slice(self.slice(pa, out.len()));
    }
    /// Writes bytes at a physical address.
    pub fn write(&mut self, pa: u64, data: &[u8]) {
        self.slice(pa, data.len()).copy_from_slice(data);
    }
}

/// Shared simulated memory.
pub type Mem = Rc<RefCell<PhysMem>>;

/// A [`PortMemory`] page in simulated memory.
pub struct SimPage {
    /// The memory.
    pub mem: Mem,
    /// Its physical address.
    pub pa: u64,
}

impl PortMemory for SimPage {
    fn phys(&self) -> u64 {
        self.pa
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        self.mem.borrow_mut().write(self.pa + off as u64, data);
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        self.mem.borrow_mut().read(self.pa + off as u64, out);
    }
}

/// The simulated HBA.
pub struct SimHba {
    /// DMA memory.
    pub mem: Mem,
    regs: Vec<u32>,
    /// The disk's contents (512-byte sectors).
    pub disk: Vec<u8>,
    /// Fail this many upcoming commands with a retryable task-file error (ICRC).
    pub fail_next: u32,
    /// Failed commands leave the device busy (BSY) until a COMRESET.
    pub hang_on_fail: bool,
    /// No device on the link: COMRESET never brings DET to 3.
    pub absent: bool,
    /// Commands executed (including failed ones).
    pub commands: u32,
    /// Microseconds stalled.
    pub stalled_us: u64,
    /// Set when the port logic violated the spec (e.g. issued while not running).
    pub violation: Option<&'static str>,
    /// Commands never complete (PxCI stays set, no FIS): a lost command.
    pub stuck: bool,
    /// Interrupt waits: the simulated wait returns at once (the command
    /// already ran) after "waiting" up to 1 ms.
    pub interrupt_waits: u32,
}

const P0: u32 = 0x100;

impl SimHba {
    /// An HBA with a disk of `sectors` sectors, link up, engine stopped.
    pub fn new(mem: Mem, sectors: u64) -> SimHba {
        let mut h = SimHba {
            mem,
            regs: vec![0; (0x100 + 0x80) / 4],
            disk: vec![0; sectors as usize * 512],
            fail_next: 0,
            hang_on_fail: false,
            absent: false,
            commands: 0,
            stalled_us: 0,
            violation: None,
            stuck: false,
            interrupt_waits: 0,
        };
        h.set(CAP, CAP_S64A | (31 << 8));
        h.set(PI, 1);
        h.set(VS, 0x0001_0000);
        h.set(P0 + PXSSTS, 0x113);
        h.set(P0 + PXTFD, 0x50);
        h.set(P0 + PXSIG, SIG_ATA);
        h
    }
    fn get(&self, off: u32) -> u32 {
        self.regs[off as usize / 4]
    }
    fn set(&mut self, off: u32, v: u32) {
        self.regs[off as usize / 4] = v;
    }
    /// The IDENTIFY DEVICE data it returns.
    pub fn identify_data(&self) -> [u8; 512] {
        let mut w = [0u16; 256];
        w[0] = 0x0040;
        let put = |w: &mut [u16; 256], at: usize, n: usize, s: &str| {
            let mut b = vec![b' '; n * 2];
            b[..s.len()].copy_from_slice(s.as_bytes());
            for i in 0..n {
                w[at + i] = u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
            }
        };
        put(&mut w, 10, 10, "QM00001");
        put(&mut w, 23, 4, "2.5+");
        put(&mut w, 27, 20, "QEMU HARDDISK");
        let sectors = self.disk.len() as u64 / 512;
        w[60] = sectors.min(0x0FFF_FFFF) as u16;
        w[61] = (sectors.min(0x0FFF_FFFF) >> 16) as u16;
        w[83] = 1 << 10 | 1 << 14;
        for i in 0..4 {
            w[100 + i] = (sectors >> (16 * i)) as u16;
        }
        let mut out = [0u8; 512];
        for (i, x) in w.iter().enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&x.to_le_bytes());
        }
        out
    }

    fn fail(&mut self, err: u32) {
        let tfd = (err << 8) | 0x51 | if self.hang_on_fail { TFD_BSY } else { 0 };
        self.set(P0 + PXTFD, tfd);
        let is = self.get(P0 + PXIS);
        self.set(P0 + PXIS, is | IS_TFES);
    }

    fn run(&mut self, slot: u32) {
        self.commands += 1;
        let clb = self.get(P0 + PXCLB) as u64 | (self.get(P0 + PXCLBU) as u64) << 32;
        let fb = self.get(P0 + PXFB) as u64 | (self.get(P0 + PXFBU) as u64) << 32;
        let mut hdr = [0u8; 32];
        self.mem.borrow_mut().read(clb + slot as u64 * 32, &mut hdr);
        let dw0 = u32::from_le_bytes(hdr[..4].try_into().unwrap());
        let ctba = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        if ctba % 128 != 0 || dw0 & 0x1F != 5 {
            self.violation = Some("bad command header");
        }
        let mut cfis = [0u8; 20];
        self.mem.borrow_mut().read(ctba, &mut cfis);
        let Some(fis) = H2dFis::from_bytes(&cfis) else {
            self.violation = Some("bad command FIS");
            return self.fail(ATA_ERR_ABRT);
        };
        let prdtl = (dw0 >> 16) as usize;
        let mut prdt = Vec::new();
        for i in 0..prdtl {
            let mut e = [0u8; 16];
            self.mem
                .borrow_mut()
                .read(ctba + 0x80 + i as u64 * 16, &mut e);
            let dba = u64::from_le_bytes(e[..8].try_into().unwrap());
            let dbc = (u32::from_le_bytes(e[12..16].try_into().unwrap()) & 0x3F_FFFF) + 1;
            prdt.push((dba, dbc as usize));
        }
        if self.stuck {
            return;
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return self.fail(0x80); // ICRC: interface CRC error
        }
        let write_bit = dw0 & (1 << 6) != 0;
        let mut moved = 0usize;
        match fis.command {
            ata::IDENTIFY_DEVICE => {
                let data = self.identify_data();
                let mut m = self.mem.borrow_mut();
                for (pa, n) in &prdt {
                    let n = (*n).min(512 - moved);
                    m.write(*pa, &data[moved..moved + n]);
                    moved += n;
                }
            }
            ata::READ_DMA_EXT | ata::WRITE_DMA_EXT => {
                let write = fis.command == ata::WRITE_DMA_EXT;
                if write != write_bit {
                    self.violation = Some("W bit does not match the command");
                }
                let count = if fis.count == 0 {
                    65536
                } else {
                    fis.count as usize
                };
                let start = fis.lba as usize * 512;
                let len = count * 512;
                if start + len > self.disk.len() {
                    return self.fail(ATA_ERR_IDNF | ATA_ERR_ABRT);
                }
                let total: usize = prdt.iter().map(|p| p.1).sum();
                if total < len {
                    self.violation = Some("PRDT shorter than the transfer");
                    return self.fail(ATA_ERR_ABRT);
                }
                let mut m = self.mem.borrow_mut();
                for (pa, n) in &prdt {
                    let n = (*n).min(len - moved);
                    let d = &mut self.disk[start + moved..start + moved + n];
                    if write {
                        m.read(*pa, d);
                    } else {
                        m.write(*pa, d);
                    }
                    moved += n;
                }
            }
            ata::FLUSH_CACHE_EXT => {}
            _ => return self.fail(ATA_ERR_ABRT),
        }
        // PRDBC, D2H FIS, completion.
        self.mem
            .borrow_mut()
            .write(clb + slot as u64 * 32 + 4, &(moved as u32).to_le_bytes());
        let mut d2h = [0u8; 20];
        d2h[0] = FIS_TYPE_REG_D2H;
        d2h[2] = 0x50;
        self.mem.borrow_mut().write(fb + 0x40, &d2h);
        self.set(P0 + PXTFD, 0x50);
        let ci = self.get(P0 + PXCI);
        self.set(P0 + PXCI, ci & !(1 << slot));
        let is = self.get(P0 + PXIS);
        self.set(P0 + PXIS, is | IS_DHRS);
    }
}

impl Hba for SimHba {
    fn read32(&mut self, offset: u32) -> u32 {
        self.get(offset)
    }
    fn write32(&mut self, offset: u32, v: u32) {
        match offset {
            o if o == P0 + PXIS || o == P0 + PXSERR || o == IS => {
                let old = self.get(o);
                self.set(o, old & !v);
            }
            o if o == P0 + PXCMD => {
                let old = self.get(o);
                let mut new = v & !(CMD_CR | CMD_FR);
                if v & CMD_ST != 0 {
                    if old & CMD_ST == 0 && self.get(P0 + PXTFD) & (TFD_BSY | TFD_DRQ) != 0 {
                        self.violation = Some("ST set while the device is busy");
                    }
                    new |= CMD_CR;
                } else {
                    self.set(P0 + PXCI, 0);
                }
                if v & CMD_FRE != 0 {
                    new |= CMD_FR;
                }
                self.set(o, new);
            }
            o if o == P0 + PXSCTL => {
                self.set(o, v);
                if v & 0xF == 1 {
                    // The port's state goes, interrupt enables included.
                    self.set(P0 + PXIE, 0);
                    self.set(P0 + PXSSTS, 0);
                    self.set(P0 + PXTFD, 0x80);
                } else if !self.absent {
                    self.set(P0 + PXSSTS, 0x113);
                    self.set(P0 + PXTFD, 0x50);
                    self.set(P0 + PXSIG, SIG_ATA);
                    let serr = self.get(P0 + PXSERR);
                    self.set(P0 + PXSERR, serr | 1 << 26); // DIAG.X: exchanged
                }
            }
            o if o == P0 + PXCI => {
                if self.get(P0 + PXCMD) & CMD_CR == 0 {
                    self.violation = Some("command issued with the engine stopped");
                    return;
                }
                let old = self.get(o);
                self.set(o, old | v);
                for slot in 0..32 {
                    let tfd = self.get(P0 + PXTFD);
                    if v & (1 << slot) != 0
                        && self.get(P0 + PXIS) & IS_ERRORS == 0
                        && tfd & TFD_BSY == 0
                    {
                        self.run(slot);
                    }
                }
            }
            o => self.set(o, v),
        }
    }
    fn stall(&mut self, us: u32) {
        self.stalled_us += us as u64;
    }
    fn wait_interrupt(&mut self, max_us: u32) -> u32 {
        self.interrupt_waits += 1;
        let us = max_us.clamp(1, 1000);
        self.stalled_us += us as u64;
        us
    }
}
