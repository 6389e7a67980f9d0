//! AHCI 1.3.1 (Serial ATA AHCI specification): HBA and port registers, the
//! command list / command table / PRDT / FIS structures, IDENTIFY DEVICE
//! parsing, and the port logic storahci runs: stopping and starting the
//! command engine, issuing a command in a free slot, completion and error
//! detection through PxIS/PxTFD, and recovery (engine restart, COMRESET)
//! with retries. It is written over [`Hba`] (register access) and
//! [`PortMemory`] (the port's DMA page), so host tests run it against the
//! simulated HBA in `sim` and the kernel runs it against the real ICH9.

use nt::status::*;
use nt::NtStatus;

/// Generic host control registers (offsets into ABAR).
pub mod reg {
    /// Host capabilities.
    pub const CAP: u32 = 0x00;
    /// Global host control.
    pub const GHC: u32 = 0x04;
    /// Interrupt status (one bit per port).
    pub const IS: u32 = 0x08;
    /// Ports implemented.
    pub const PI: u32 = 0x0C;
    /// Version.
    pub const VS: u32 = 0x10;
    /// Host capabilities extended.
    pub const CAP2: u32 = 0x24;
    /// `GHC.HR`: HBA reset.
    pub const GHC_HR: u32 = 1 << 0;
    /// `GHC.IE`: interrupt enable.
    pub const GHC_IE: u32 = 1 << 1;
    /// `GHC.AE`: AHCI enable.
    pub const GHC_AE: u32 = 1 << 31;
    /// `CAP.S64A`: 64-bit addressing.
    pub const CAP_S64A: u32 = 1 << 31;
    /// `CAP.SSS`: staggered spin-up.
    pub const CAP_SSS: u32 = 1 << 27;

    /// Port register block offset.
    pub const fn port(p: u32) -> u32 {
        0x100 + p * 0x80
    }
    /// Command list base (1 KiB aligned).
    pub const PXCLB: u32 = 0x00;
    /// Command list base, upper 32 bits.
    pub const PXCLBU: u32 = 0x04;
    /// FIS receive area base (256-byte aligned).
    pub const PXFB: u32 = 0x08;
    /// FIS base, upper 32 bits.
    pub const PXFBU: u32 = 0x0C;
    /// Interrupt status.
    pub const PXIS: u32 = 0x10;
    /// Interrupt enable.
    pub const PXIE: u32 = 0x14;
    /// Command and status.
    pub const PXCMD: u32 = 0x18;
    /// Task file data.
    pub const PXTFD: u32 = 0x20;
    /// Signature.
    pub const PXSIG: u32 = 0x24;
    /// SATA status (SStatus).
    pub const PXSSTS: u32 = 0x28;
    /// SATA control (SControl).
    pub const PXSCTL: u32 = 0x2C;
    /// SATA error (SError).
    pub const PXSERR: u32 = 0x30;
    /// SATA active (NCQ).
    pub const PXSACT: u32 = 0x34;
    /// Command issue.
    pub const PXCI: u32 = 0x38;

    /// `PxCMD.ST`: start.
    pub const CMD_ST: u32 = 1 << 0;
    /// `PxCMD.SUD`: spin-up device.
    pub const CMD_SUD: u32 = 1 << 1;
    /// `PxCMD.POD`: power on device.
    pub const CMD_POD: u32 = 1 << 2;
    /// `PxCMD.CLO`: command list override.
    pub const CMD_CLO: u32 = 1 << 3;
    /// `PxCMD.FRE`: FIS receive enable.
    pub const CMD_FRE: u32 = 1 << 4;
    /// `PxCMD.FR`: FIS receive running.
    pub const CMD_FR: u32 = 1 << 14;
    /// `PxCMD.CR`: command list running.
    pub const CMD_CR: u32 = 1 << 15;

    /// `PxIS.DHRS`: device-to-host register FIS received.
    pub const IS_DHRS: u32 = 1 << 0;
    /// `PxIS.PSS`: PIO setup FIS.
    pub const IS_PSS: u32 = 1 << 1;
    /// `PxIS.DSS`: DMA setup FIS.
    pub const IS_DSS: u32 = 1 << 2;
    /// `PxIS.SDBS`: set device bits FIS.
    pub const IS_SDBS: u32 = 1 << 3;
    /// `PxIS.PCS`: port connect change.
    pub const IS_PCS: u32 = 1 << 6;
    /// `PxIS.PRCS`: PhyRdy change.
    pub const IS_PRCS: u32 = 1 << 22;
    /// `PxIS.OFS`: overflow.
    pub const IS_OFS: u32 = 1 << 24;
    /// `PxIS.INFS`: interface non-fatal error.
    pub const IS_INFS: u32 = 1 << 26;
    /// `PxIS.IFS`: interface fatal error.
    pub const IS_IFS: u32 = 1 << 27;
    /// `PxIS.HBDS`: host bus data error.
    pub const IS_HBDS: u32 = 1 << 28;
    /// `PxIS.HBFS`: host bus fatal error.
    pub const IS_HBFS: u32 = 1 << 29;
    /// `PxIS.TFES`: task file error.
    pub const IS_TFES: u32 = 1 << 30;
    /// The error bits that stop the command engine.
    pub const IS_ERRORS: u32 = IS_TFES | IS_HBFS | IS_HBDS | IS_IFS | IS_INFS | IS_OFS;
    /// The PxIE bits storahci enables: command completion (D2H register,
    /// PIO setup, DMA setup, set device bits FISes) and every error.
    pub const IE_ENABLED: u32 = IS_DHRS | IS_PSS | IS_DSS | IS_SDBS | IS_ERRORS;

    /// `PxTFD.STS.ERR`.
    pub const TFD_ERR: u32 = 1 << 0;
    /// `PxTFD.STS.DRQ`.
    pub const TFD_DRQ: u32 = 1 << 3;
    /// `PxTFD.STS.BSY`.
    pub const TFD_BSY: u32 = 1 << 7;
    /// ATA error register UNC (uncorrectable data) bit, in `PxTFD.ERR`.
    pub const ATA_ERR_UNC: u32 = 1 << 6;
    /// ATA error register IDNF (ID not found: LBA out of range).
    pub const ATA_ERR_IDNF: u32 = 1 << 4;
    /// ATA error register ABRT.
    pub const ATA_ERR_ABRT: u32 = 1 << 2;

    /// `PxSSTS.DET` = 3: device present, Phy communication established.
    pub const SSTS_DET_PRESENT: u32 = 3;
    /// `PxSIG` of a SATA disk.
    pub const SIG_ATA: u32 = 0x0000_0101;
}

/// ATA commands used.
pub mod ata {
    /// READ DMA EXT.
    pub const READ_DMA_EXT: u8 = 0x25;
    /// WRITE DMA EXT.
    pub const WRITE_DMA_EXT: u8 = 0x35;
    /// FLUSH CACHE EXT.
    pub const FLUSH_CACHE_EXT: u8 = 0xEA;
    /// IDENTIFY DEVICE.
    pub const IDENTIFY_DEVICE: u8 = 0xEC;
}

use reg::*;

/// MMIO access to the HBA's registers (ABAR) and a short delay for polls.
pub trait Hba {
    /// Reads the 32-bit register at `offset` from ABAR.
    fn read32(&mut self, offset: u32) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&mut self, offset: u32, value: u32);
    /// Waits about `us` microseconds (hardware settle times, poll intervals).
    fn stall(&mut self, us: u32);
    /// Waits up to `max_us` microseconds for the port's interrupt while a
    /// command runs; returns the microseconds waited (at least 1). Without an
    /// interrupt (the default) this is one poll interval's stall.
    fn wait_interrupt(&mut self, max_us: u32) -> u32 {
        let us = POLL_US.min(max_us).max(1);
        self.stall(us);
        us
    }
}

/// The port's DMA memory: one physically contiguous page holding the command
/// list, the received-FIS area and the command tables ([`layout`]).
pub trait PortMemory {
    /// Its physical address (4 KiB aligned).
    fn phys(&self) -> u64;
    /// Copies `data` in at byte offset `off`.
    fn write(&mut self, off: usize, data: &[u8]);
    /// Copies bytes out at `off`.
    fn read(&self, off: usize, out: &mut [u8]);
}

/// Layout of the port page: 32-entry command list at 0 (1 KiB), received
/// FIS at 0x400 (256 bytes), then [`SLOTS`] command tables of
/// [`TABLE_SIZE`] bytes, each with [`PRDT_ENTRIES`] PRDT entries.
pub mod layout {
    /// Command list.
    pub const CMD_LIST: usize = 0;
    /// Received FIS area.
    pub const RX_FIS: usize = 0x400;
    /// D2H register FIS within the received FIS area.
    pub const RX_D2H: usize = RX_FIS + 0x40;
    /// First command table.
    pub const TABLES: usize = 0x500;
    /// Command slots used (the tables that fit the page).
    pub const SLOTS: u32 = 4;
    /// PRDT entries per table.
    pub const PRDT_ENTRIES: usize = 32;
    /// One command table: 0x80 bytes of FIS/ATAPI area + the PRDT.
    pub const TABLE_SIZE: usize = 0x80 + PRDT_ENTRIES * 16;
    /// Bytes used.
    pub const PAGE_BYTES: usize = TABLES + SLOTS as usize * TABLE_SIZE;
    const _: () =
        assert!(PAGE_BYTES <= 4096 && TABLE_SIZE.is_multiple_of(128) && TABLES.is_multiple_of(128));
}

/// One physically contiguous piece of a data buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical address (even).
    pub phys: u64,
    /// Bytes (even, at most 4 MiB).
    pub len: u32,
}

/// Host-to-device register FIS (FIS type 0x27), 20 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct H2dFis {
    /// ATA command.
    pub command: u8,
    /// Features (16 bits).
    pub features: u16,
    /// 48-bit LBA.
    pub lba: u64,
    /// Device register.
    pub device: u8,
    /// Sector count (16 bits).
    pub count: u16,
}

/// FIS type of a host-to-device register FIS.
pub const FIS_TYPE_REG_H2D: u8 = 0x27;
/// FIS type of a device-to-host register FIS.
pub const FIS_TYPE_REG_D2H: u8 = 0x34;

impl H2dFis {
    /// READ DMA EXT / WRITE DMA EXT of `count` sectors at `lba` (count 0
    /// means 65536 in ATA; callers never pass 0).
    pub fn dma_ext(write: bool, lba: u64, count: u16) -> H2dFis {
        H2dFis {
            command: if write {
                ata::WRITE_DMA_EXT
            } else {
                ata::READ_DMA_EXT
            },
            features: 0,
            lba,
            device: 1 << 6,
            count,
        }
    }
    /// IDENTIFY DEVICE.
    pub fn identify() -> H2dFis {
        H2dFis {
            command: ata::IDENTIFY_DEVICE,
            ..Default::default()
        }
    }
    /// FLUSH CACHE EXT.
    pub fn flush() -> H2dFis {
        H2dFis {
            command: ata::FLUSH_CACHE_EXT,
            device: 1 << 6,
            ..Default::default()
        }
    }
    /// The 20 bytes, with the C bit (command register update) set.
    pub fn to_bytes(&self) -> [u8; 20] {
        let l = self.lba.to_le_bytes();
        let f = self.features.to_le_bytes();
        let c = self.count.to_le_bytes();
        [
            FIS_TYPE_REG_H2D,
            0x80,
            self.command,
            f[0],
            l[0],
            l[1],
            l[2],
            self.device,
            l[3],
            l[4],
            l[5],
            f[1],
            c[0],
            c[1],
            0,
            0,
            0,
            0,
            0,
            0,
        ]
    }
    /// Parses the 20 bytes (the simulated HBA's side).
    pub fn from_bytes(b: &[u8]) -> Option<H2dFis> {
        if b.len() < 20 || b[0] != FIS_TYPE_REG_H2D || b[1] & 0x80 == 0 {
            return None;
        }
        Some(H2dFis {
            command: b[2],
            features: u16::from_le_bytes([b[3], b[11]]),
            lba: u64::from_le_bytes([b[4], b[5], b[6], b[8], b[9], b[10], 0, 0]),
            device: b[7],
            count: u16::from_le_bytes([b[12], b[13]]),
        })
    }
}

/// Command header DW0 for a command FIS of 5 DWORDs with `prdtl` PRDT entries.
pub fn header_dw0(write: bool, prdtl: u16) -> u32 {
    5 | if write { 1 << 6 } else { 0 } | (prdtl as u32) << 16
}

/// A PRDT entry (16 bytes): data base, byte count - 1 (bit 0 set), no IRQ bit.
pub fn prdt_entry(s: &Segment) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[..8].copy_from_slice(&s.phys.to_le_bytes());
    e[12..16].copy_from_slice(&((s.len - 1) & 0x3F_FFFF).to_le_bytes());
    e
}

/// What IDENTIFY DEVICE says about a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identify {
    /// Model number (words 27-46), trimmed.
    pub model: alloc::string::String,
    /// Serial number (words 10-19), trimmed.
    pub serial: alloc::string::String,
    /// Firmware revision (words 23-26), trimmed.
    pub firmware: alloc::string::String,
    /// 48-bit addressing supported (word 83 bit 10).
    pub lba48: bool,
    /// User-addressable sectors (words 100-103 with LBA48, else 60-61).
    pub sectors: u64,
    /// Logical sector size in bytes (word 106/117-118; 512 when not given).
    pub sector_size: u32,
}

fn ata_string(words: &[u16]) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    for w in words {
        for b in w.to_be_bytes() {
            s.push(if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            });
        }
    }
    alloc::string::String::from(s.trim())
}

impl Identify {
    /// Parses the 512-byte IDENTIFY DEVICE data.
    pub fn parse(data: &[u8]) -> Result<Identify, NtStatus> {
        if data.len() < 512 {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let w: alloc::vec::Vec<u16> = data[..512]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        // Word 0 bit 15 set: not an ATA device.
        if w[0] & 0x8000 != 0 {
            return Err(STATUS_UNRECOGNIZED_MEDIA);
        }
        let lba48 = w[83] & (1 << 10) != 0;
        let sectors = if lba48 {
            w[100] as u64 | (w[101] as u64) << 16 | (w[102] as u64) << 32 | (w[103] as u64) << 48
        } else {
            w[60] as u64 | (w[61] as u64) << 16
        };
        let mut sector_size = 512;
        if w[106] & 0xC000 == 0x4000 && w[106] & (1 << 12) != 0 {
            let words = w[117] as u32 | (w[118] as u32) << 16;
            sector_size = words * 2;
        }
        if sectors == 0 || sector_size < 512 || !sector_size.is_power_of_two() {
            return Err(STATUS_UNRECOGNIZED_MEDIA);
        }
        Ok(Identify {
            model: ata_string(&w[27..47]),
            serial: ata_string(&w[10..20]),
            firmware: ata_string(&w[23..27]),
            lba48,
            sectors,
            sector_size,
        })
    }
}

/// Why a port operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// No device on the port (PxSSTS.DET != 3 after reset).
    NoDevice,
    /// The command engine or the device did not respond in time.
    Timeout,
    /// The device reported an error: (PxIS, PxTFD).
    Device(u32, u32),
    /// The request cannot be expressed (too many segments, odd lengths).
    BadRequest,
}

impl PortError {
    /// The NTSTATUS the class driver completes with (what storport's SRB
    /// status maps to): no device `STATUS_NO_SUCH_DEVICE`, timeout
    /// `STATUS_IO_TIMEOUT`, uncorrectable data `STATUS_DEVICE_DATA_ERROR`,
    /// other device errors `STATUS_IO_DEVICE_ERROR`.
    pub fn status(&self) -> NtStatus {
        match self {
            PortError::NoDevice => STATUS_NO_SUCH_DEVICE,
            PortError::Timeout => STATUS_IO_TIMEOUT,
            PortError::Device(_, tfd) if (tfd >> 8) & ATA_ERR_UNC != 0 => STATUS_DEVICE_DATA_ERROR,
            PortError::Device(..) => STATUS_IO_DEVICE_ERROR,
            PortError::BadRequest => STATUS_INVALID_PARAMETER,
        }
    }
}

/// Poll interval while waiting on the HBA, microseconds.
pub const POLL_US: u32 = 1;
/// Engine start/stop limit (the spec allows 500 ms).
pub const ENGINE_TIMEOUT_US: u32 = 500_000;
/// Command completion limit.
pub const COMMAND_TIMEOUT_US: u32 = 5_000_000;
/// Retries after recovery (classpnp retries a failed request up to 4 times).
pub const MAX_RETRIES: u32 = 4;

/// Counters kept by the port (shown by tests and kd).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Commands completed successfully.
    pub completed: u64,
    /// Errors seen (each failed attempt).
    pub errors: u64,
    /// COMRESETs done.
    pub comresets: u64,
    /// Engine restarts done for recovery.
    pub restarts: u64,
}

/// One AHCI port.
pub struct Port<H: Hba, M: PortMemory> {
    /// Register access.
    pub hba: H,
    /// Port number.
    pub port: u32,
    /// The DMA page.
    pub mem: M,
    slots: u32,
    busy: u32,
    s64a: bool,
    /// Counters.
    pub stats: PortStats,
}

impl<H: Hba, M: PortMemory> Port<H, M> {
    /// A port over `hba`, using `mem` for its command list and tables.
    pub fn new(mut hba: H, port: u32, mem: M) -> Self {
        let cap = hba.read32(CAP);
        let ncs = ((cap >> 8) & 0x1F) + 1;
        Port {
            hba,
            port,
            mem,
            slots: ncs.min(layout::SLOTS),
            busy: 0,
            s64a: cap & CAP_S64A != 0,
            stats: PortStats::default(),
        }
    }

    fn r(&mut self, off: u32) -> u32 {
        self.hba.read32(port(self.port) + off)
    }
    fn w(&mut self, off: u32, v: u32) {
        self.hba.write32(port(self.port) + off, v)
    }

    /// Polls until `done(self)` or `limit_us` elapsed.
    fn wait(&mut self, limit_us: u32, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let mut waited = 0;
        loop {
            if done(self) {
                return true;
            }
            if waited >= limit_us {
                return false;
            }
            self.hba.stall(POLL_US);
            waited += POLL_US;
        }
    }

    /// Stops the command engine: clears ST and waits for CR, then FRE and FR
    /// (AHCI 10.1.2).
    pub fn stop(&mut self) -> Result<(), PortError> {
        let cmd = self.r(PXCMD);
        self.w(PXCMD, cmd & !CMD_ST);
        if !self.wait(ENGINE_TIMEOUT_US, |p| p.r(PXCMD) & CMD_CR == 0) {
            return Err(PortError::Timeout);
        }
        let cmd = self.r(PXCMD);
        self.w(PXCMD, cmd & !CMD_FRE);
        if !self.wait(ENGINE_TIMEOUT_US, |p| p.r(PXCMD) & CMD_FR == 0) {
            return Err(PortError::Timeout);
        }
        self.busy = 0;
        Ok(())
    }

    /// Starts the engine once the device is not busy (AHCI 10.3.1): FRE, then ST.
    pub fn start(&mut self) -> Result<(), PortError> {
        let cmd = self.r(PXCMD);
        self.w(PXCMD, cmd | CMD_FRE);
        if !self.wait(COMMAND_TIMEOUT_US, |p| {
            p.r(PXTFD) & (TFD_BSY | TFD_DRQ) == 0
        }) {
            return Err(PortError::Timeout);
        }
        let cmd = self.r(PXCMD);
        self.w(PXCMD, cmd | CMD_ST);
        Ok(())
    }

    /// Brings the port up: engine stopped, command list and FIS area
    /// programmed, errors cleared, device detected (COMRESET if the link is
    /// down), engine started.
    pub fn init(&mut self) -> Result<(), PortError> {
        // AHCI mode.
        let ghc = self.hba.read32(GHC);
        self.hba.write32(GHC, ghc | GHC_AE);
        self.stop()?;
        let base = self.mem.phys();
        if !self.s64a && base >> 32 != 0 {
            return Err(PortError::BadRequest);
        }
        self.mem.write(0, &[0u8; layout::PAGE_BYTES]);
        self.w(PXCLB, (base + layout::CMD_LIST as u64) as u32);
        self.w(PXCLBU, ((base + layout::CMD_LIST as u64) >> 32) as u32);
        self.w(PXFB, (base + layout::RX_FIS as u64) as u32);
        self.w(PXFBU, ((base + layout::RX_FIS as u64) >> 32) as u32);
        let cmd = self.r(PXCMD);
        self.w(PXCMD, cmd | CMD_SUD | CMD_POD);
        if self.r(PXSSTS) & 0xF != SSTS_DET_PRESENT {
            self.comreset()?;
        }
        self.clear_errors();
        self.start()
    }

    /// Enables the port's completion and error interrupts (PxIE) and the
    /// HBA's interrupt (GHC.IE), once a service routine is connected.
    pub fn enable_interrupts(&mut self) {
        self.w(PXIE, IE_ENABLED);
        let ghc = self.hba.read32(GHC);
        self.hba.write32(GHC, ghc | GHC_IE);
    }

    /// Masks the port's interrupts again (PxIE = 0; GHC.IE is left to the
    /// other ports).
    pub fn disable_interrupts(&mut self) {
        self.w(PXIE, 0);
    }

    fn clear_errors(&mut self) {
        let serr = self.r(PXSERR);
        self.w(PXSERR, serr);
        let is = self.r(PXIS);
        self.w(PXIS, is);
    }

    /// COMRESET (AHCI 10.4.2): with the engine stopped, DET=1 for at least
    /// 1 ms, DET=0, wait for the link (DET=3), clear SERR.
    /// The port's interrupt enables (PxIE) are put back afterwards, for an
    /// HBA that clears them with the rest of the port's state on a reset
    /// (the simulated one does).
    pub fn comreset(&mut self) -> Result<(), PortError> {
        self.stats.comresets += 1;
        let ie = self.r(PXIE);
        let sctl = self.r(PXSCTL) & !0xF;
        self.w(PXSCTL, sctl | 0x301);
        self.hba.stall(1000);
        self.w(PXSCTL, sctl | 0x300);
        let up = self.wait(ENGINE_TIMEOUT_US, |p| p.r(PXSSTS) & 0xF == SSTS_DET_PRESENT);
        if ie != 0 {
            self.w(PXIE, ie);
        }
        if !up {
            return Err(PortError::NoDevice);
        }
        let serr = self.r(PXSERR);
        self.w(PXSERR, serr);
        Ok(())
    }

    /// Issues `fis` with data `segments` in a free slot; returns the slot.
    pub fn issue(
        &mut self,
        fis: &H2dFis,
        write: bool,
        segments: &[Segment],
    ) -> Result<u32, PortError> {
        if segments.len() > layout::PRDT_ENTRIES
            || segments
                .iter()
                .any(|s| s.len == 0 || s.len & 1 != 0 || s.phys & 1 != 0 || s.len > 1 << 22)
        {
            return Err(PortError::BadRequest);
        }
        let ci = self.r(PXCI) | self.r(PXSACT);
        let slot = (0..self.slots)
            .find(|s| (ci | self.busy) & (1 << s) == 0)
            .ok_or(PortError::Timeout)?;
        let table = layout::TABLES + slot as usize * layout::TABLE_SIZE;
        let mut head = [0u8; 0x80];
        head[..20].copy_from_slice(&fis.to_bytes());
        self.mem.write(table, &head);
        for (i, s) in segments.iter().enumerate() {
            self.mem.write(table + 0x80 + i * 16, &prdt_entry(s));
        }
        let ctba = self.mem.phys() + table as u64;
        let mut hdr = [0u8; 32];
        hdr[..4].copy_from_slice(&header_dw0(write, segments.len() as u16).to_le_bytes());
        hdr[8..16].copy_from_slice(&ctba.to_le_bytes());
        self.mem.write(layout::CMD_LIST + slot as usize * 32, &hdr);
        self.busy |= 1 << slot;
        self.w(PXCI, 1 << slot);
        Ok(slot)
    }

    /// Checks `slot`: `None` while running, else its result. An error bit in
    /// PxIS (the engine stopped) fails every outstanding command.
    pub fn poll(&mut self, slot: u32) -> Option<Result<(), PortError>> {
        let is = self.r(PXIS);
        if is & IS_ERRORS != 0 {
            let tfd = self.r(PXTFD);
            self.busy &= !(1 << slot);
            return Some(Err(PortError::Device(is, tfd)));
        }
        if self.r(PXCI) & (1 << slot) != 0 {
            return None;
        }
        self.busy &= !(1 << slot);
        // Acknowledge completion interrupts.
        self.w(PXIS, is & (IS_DHRS | IS_PSS | IS_DSS | IS_SDBS));
        Some(Ok(()))
    }

    /// Bytes the HBA transferred for `slot` (PRDBC).
    pub fn transferred(&self, slot: u32) -> u32 {
        let mut b = [0u8; 4];
        self.mem
            .read(layout::CMD_LIST + slot as usize * 32 + 4, &mut b);
        u32::from_le_bytes(b)
    }

    /// Recovery after an error (AHCI 6.2.2.1/2): stop the engine, clear the
    /// error state, COMRESET when the device stays busy or the engine will
    /// not stop, start again.
    pub fn recover(&mut self) -> Result<(), PortError> {
        self.stats.restarts += 1;
        let stopped = self.stop();
        self.clear_errors();
        if stopped.is_err() || self.r(PXTFD) & (TFD_BSY | TFD_DRQ) != 0 {
            // Stop again in case ST was still set, then reset the link.
            let _ = self.stop();
            self.comreset()?;
            self.clear_errors();
        }
        self.start()
    }

    /// Runs one command to completion by polling, recovering and retrying
    /// (up to [`MAX_RETRIES`]) on device errors and timeouts.
    pub fn execute(
        &mut self,
        fis: &H2dFis,
        write: bool,
        segments: &[Segment],
    ) -> Result<u32, PortError> {
        let mut last = PortError::Timeout;
        for _ in 0..=MAX_RETRIES {
            let slot = self.issue(fis, write, segments)?;
            let mut waited = 0u32;
            let result = loop {
                if let Some(r) = self.poll(slot) {
                    break Some(r);
                }
                if waited >= COMMAND_TIMEOUT_US {
                    break None;
                }
                waited = waited
                    .saturating_add(self.hba.wait_interrupt(COMMAND_TIMEOUT_US - waited).max(1));
            };
            match result {
                Some(Ok(())) => {
                    self.stats.completed += 1;
                    return Ok(self.transferred(slot));
                }
                Some(Err(e)) => last = e,
                None => {
                    self.busy &= !(1 << slot);
                    last = PortError::Timeout;
                }
            }
            self.stats.errors += 1;
            if let PortError::Device(_, tfd) = last {
                // ABRT / IDNF: the command itself is bad; retrying will not help.
                if (tfd >> 8) & (ATA_ERR_IDNF | ATA_ERR_ABRT) != 0 {
                    self.recover()?;
                    return Err(last);
                }
            }
            self.recover()?;
        }
        Err(last)
    }

    /// IDENTIFY DEVICE into the 512-byte buffer at `buf`.
    pub fn identify(&mut self, buf: Segment) -> Result<(), PortError> {
        self.execute(&H2dFis::identify(), false, &[buf]).map(|_| ())
    }

    /// Reads or writes `count` sectors at `lba` through `segments`.
    pub fn transfer(
        &mut self,
        write: bool,
        lba: u64,
        count: u16,
        segments: &[Segment],
    ) -> Result<u32, PortError> {
        self.execute(&H2dFis::dma_ext(write, lba, count), write, segments)
    }

    /// FLUSH CACHE EXT.
    pub fn flush(&mut self) -> Result<(), PortError> {
        self.execute(&H2dFis::flush(), false, &[]).map(|_| ())
    }
}

pub mod engine;

#[cfg(test)]
pub mod sim;
#[cfg(test)]
mod tests;
