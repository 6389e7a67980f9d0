//! Inspection of PE/COFF image files as they lie on disk, per the Microsoft
//! PE format specification: every header field, section headers (with COFF
//! string-table long names), imports and delay-load imports, exports with
//! forwarders, base relocations, TLS, the x64 exception directory with its
//! UNWIND_INFO decoded, load configuration, the debug directory (CodeView
//! RSDS/NB10), the attribute certificate table and the image checksum as
//! `CheckSumMappedFile` computes it.
//!
//! Unlike [`crate::PeFile`] (what the loaders accept: PE32+ on x64 only),
//! [`Image`] reads PE32 and PE32+ of any machine, and reads them in file
//! layout (an RVA is translated through the section table), so a tool can
//! show an image the kernel would refuse. Every read is bounds-checked; a
//! malformed structure is an [`Error`] naming it, never a panic, and no
//! count read from the file is trusted before the bytes it describes are
//! known to be present.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;

use nt::status::*;
use nt::NtStatus;

use crate::DataDirectory;

/// What is wrong with an image: the NTSTATUS the loader would give and one
/// line naming the structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub status: NtStatus,
    pub what: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status.name() {
            Some(n) => write!(f, "{} ({})", self.what, n),
            None => write!(f, "{} ({:#010x})", self.what, self.status.0),
        }
    }
}

fn bad(what: String) -> Error {
    Error {
        status: STATUS_INVALID_IMAGE_FORMAT,
        what,
    }
}

pub type Result<T> = core::result::Result<T, Error>;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

pub const IMAGE_NT_OPTIONAL_HDR32_MAGIC: u16 = 0x10B;
pub const IMAGE_FILE_MACHINE_I386: u16 = 0x14C;
pub const IMAGE_DIRECTORY_ENTRY_EXCEPTION: usize = 3;
pub const IMAGE_DIRECTORY_ENTRY_SECURITY: usize = 4;
pub const IMAGE_DIRECTORY_ENTRY_DEBUG: usize = 6;
pub const IMAGE_DIRECTORY_ENTRY_TLS: usize = 9;
pub const IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG: usize = 10;
pub const IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT: usize = 13;
pub const IMAGE_DEBUG_TYPE_CODEVIEW: u32 = 2;

/// Names of the 16 data directories, in order.
pub const DIRECTORY_NAMES: [&str; 16] = [
    "Export",
    "Import",
    "Resource",
    "Exception",
    "Certificates",
    "Base Relocation",
    "Debug",
    "Architecture",
    "Global Pointer",
    "Thread Storage",
    "Load Configuration",
    "Bound Import",
    "Import Address Table",
    "Delay Import",
    "COM Descriptor",
    "Reserved",
];

/// Upper bound on entries of any one table (imports of one DLL, descriptors,
/// TLS callbacks): far above real images, it bounds work on corrupt ones.
const MAX_ENTRIES: usize = 1 << 20;

/// `IMAGE_FILE_HEADER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileHeader {
    pub machine: u16,
    pub number_of_sections: u16,
    pub time_date_stamp: u32,
    pub pointer_to_symbol_table: u32,
    pub number_of_symbols: u32,
    pub size_of_optional_header: u16,
    pub characteristics: u16,
}

/// `IMAGE_OPTIONAL_HEADER32` / `IMAGE_OPTIONAL_HEADER64` (without the data
/// directories); `base_of_data` exists only in PE32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionalHeader {
    pub magic: u16,
    pub major_linker_version: u8,
    pub minor_linker_version: u8,
    pub size_of_code: u32,
    pub size_of_initialized_data: u32,
    pub size_of_uninitialized_data: u32,
    pub address_of_entry_point: u32,
    pub base_of_code: u32,
    pub base_of_data: Option<u32>,
    pub image_base: u64,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub major_operating_system_version: u16,
    pub minor_operating_system_version: u16,
    pub major_image_version: u16,
    pub minor_image_version: u16,
    pub major_subsystem_version: u16,
    pub minor_subsystem_version: u16,
    pub win32_version_value: u32,
    pub size_of_image: u32,
    pub size_of_headers: u32,
    pub check_sum: u32,
    pub subsystem: u16,
    pub dll_characteristics: u16,
    pub size_of_stack_reserve: u64,
    pub size_of_stack_commit: u64,
    pub size_of_heap_reserve: u64,
    pub size_of_heap_commit: u64,
    pub loader_flags: u32,
    pub number_of_rva_and_sizes: u32,
}

/// `IMAGE_SECTION_HEADER`, with the name resolved (a `/nnn` name is an
/// offset into the COFF string table, as object files and MinGW images with
/// DWARF sections use).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectionHeader {
    pub raw_name: [u8; 8],
    pub name: String,
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub size_of_raw_data: u32,
    pub pointer_to_raw_data: u32,
    pub pointer_to_relocations: u32,
    pub pointer_to_linenumbers: u32,
    pub number_of_relocations: u16,
    pub number_of_linenumbers: u16,
    pub characteristics: u32,
}

/// A parsed image file.
#[derive(Clone, Debug)]
pub struct Image<'a> {
    pub data: &'a [u8],
    pub e_lfanew: u32,
    pub file: FileHeader,
    pub opt: OptionalHeader,
    pub directories: Vec<DataDirectory>,
    pub sections: Vec<SectionHeader>,
    /// The file ranges `data` really holds, when the caller read only part
    /// of the file (see [`Image::with_loaded_ranges`]); `None`: all of it.
    loaded: Option<Vec<(usize, usize)>>,
    /// A read fell outside `loaded`.
    missed: Cell<bool>,
}

impl<'a> Image<'a> {
    /// Parses the DOS stub pointer, file header, optional header, data
    /// directories and section table.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        if u16_at(data, 0) != Some(crate::IMAGE_DOS_SIGNATURE) {
            return Err(Error {
                status: STATUS_INVALID_IMAGE_NOT_MZ,
                what: "no MZ signature at offset 0".into(),
            });
        }
        let e_lfanew =
            u32_at(data, 0x3C).ok_or_else(|| bad("file ends inside the DOS header".into()))?;
        let nt = e_lfanew as usize;
        match u32_at(data, nt) {
            Some(crate::IMAGE_NT_SIGNATURE) => {}
            Some(_) => return Err(bad(format!("no PE signature at e_lfanew {:#x}", nt))),
            None => {
                return Err(bad(format!(
                    "e_lfanew {:#x} points past the end of the file ({} bytes)",
                    nt,
                    data.len()
                )))
            }
        }
        let fh = nt + 4;
        let trunc = |what: &str| bad(format!("file ends inside the {what}"));
        let file = FileHeader {
            machine: u16_at(data, fh).ok_or_else(|| trunc("file header"))?,
            number_of_sections: u16_at(data, fh + 2).ok_or_else(|| trunc("file header"))?,
            time_date_stamp: u32_at(data, fh + 4).ok_or_else(|| trunc("file header"))?,
            pointer_to_symbol_table: u32_at(data, fh + 8).ok_or_else(|| trunc("file header"))?,
            number_of_symbols: u32_at(data, fh + 12).ok_or_else(|| trunc("file header"))?,
            size_of_optional_header: u16_at(data, fh + 16).ok_or_else(|| trunc("file header"))?,
            characteristics: u16_at(data, fh + 18).ok_or_else(|| trunc("file header"))?,
        };
        let oh = fh + 20;
        let opt_size = file.size_of_optional_header as usize;
        let ob = data
            .get(oh..oh + opt_size)
            .ok_or_else(|| trunc("optional header"))?;
        let magic = u16_at(ob, 0).ok_or_else(|| bad("optional header is empty".into()))?;
        let plus = match magic {
            crate::IMAGE_NT_OPTIONAL_HDR64_MAGIC => true,
            IMAGE_NT_OPTIONAL_HDR32_MAGIC => false,
            m => {
                return Err(bad(format!(
                    "optional header magic {m:#x} is neither PE32 (0x10b) nor PE32+ (0x20b)"
                )))
            }
        };
        let fixed = if plus { 112 } else { 96 };
        if opt_size < fixed {
            return Err(bad(format!(
                "optional header size {opt_size} is smaller than the {fixed} bytes of its fields"
            )));
        }
        // Every read below is inside `ob[..fixed]`, checked above.
        let r16 = |o| u16_at(ob, o).unwrap_or(0);
        let r32 = |o| u32_at(ob, o).unwrap_or(0);
        let r64 = |o| u64_at(ob, o).unwrap_or(0);
        let (image_base, base_of_data) = if plus {
            (r64(24), None)
        } else {
            (r32(28) as u64, Some(r32(24)))
        };
        let ptr = |o32: usize, o64: usize| if plus { r64(o64) } else { r32(o32) as u64 };
        let opt = OptionalHeader {
            magic,
            major_linker_version: ob[2],
            minor_linker_version: ob[3],
            size_of_code: r32(4),
            size_of_initialized_data: r32(8),
            size_of_uninitialized_data: r32(12),
            address_of_entry_point: r32(16),
            base_of_code: r32(20),
            base_of_data,
            image_base,
            section_alignment: r32(32),
            file_alignment: r32(36),
            major_operating_system_version: r16(40),
            minor_operating_system_version: r16(42),
            major_image_version: r16(44),
            minor_image_version: r16(46),
            major_subsystem_version: r16(48),
            minor_subsystem_version: r16(50),
            win32_version_value: r32(52),
            size_of_image: r32(56),
            size_of_headers: r32(60),
            check_sum: r32(64),
            subsystem: r16(68),
            dll_characteristics: r16(70),
            size_of_stack_reserve: ptr(72, 72),
            size_of_stack_commit: ptr(76, 80),
            size_of_heap_reserve: ptr(80, 88),
            size_of_heap_commit: ptr(84, 96),
            loader_flags: r32(if plus { 104 } else { 88 }),
            number_of_rva_and_sizes: r32(if plus { 108 } else { 92 }),
        };
        let ndirs = (opt.number_of_rva_and_sizes as usize).min(16);
        if fixed + ndirs * 8 > opt_size {
            return Err(bad(format!(
                "{} data directories do not fit the {}-byte optional header",
                ndirs, opt_size
            )));
        }
        let directories = (0..ndirs)
            .map(|i| DataDirectory {
                virtual_address: r32(fixed + i * 8),
                size: r32(fixed + i * 8 + 4),
            })
            .collect();
        let sh = oh + opt_size;
        let nsec = file.number_of_sections as usize;
        let table = data.get(sh..sh + nsec * 40).ok_or_else(|| {
            bad(format!(
                "section table ({nsec} headers at offset {sh:#x}) runs past the end of the file"
            ))
        })?;
        let strtab = (file.pointer_to_symbol_table as usize)
            .checked_add(file.number_of_symbols as usize * 18)
            .filter(|_| file.pointer_to_symbol_table != 0);
        let mut sections = Vec::with_capacity(nsec);
        for s in table.chunks_exact(40) {
            let mut raw_name = [0u8; 8];
            raw_name.copy_from_slice(&s[..8]);
            let r = |o| u32_at(s, o).unwrap_or(0);
            sections.push(SectionHeader {
                name: section_name(data, &raw_name, strtab),
                raw_name,
                virtual_size: r(8),
                virtual_address: r(12),
                size_of_raw_data: r(16),
                pointer_to_raw_data: r(20),
                pointer_to_relocations: r(24),
                pointer_to_linenumbers: r(28),
                number_of_relocations: u16_at(s, 32).unwrap_or(0),
                number_of_linenumbers: u16_at(s, 34).unwrap_or(0),
                characteristics: r(36),
            });
        }
        Ok(Image {
            data,
            e_lfanew,
            file,
            opt,
            directories,
            sections,
            loaded: None,
            missed: Cell::new(false),
        })
    }

    /// Declares that only `ranges` (file offsets, end exclusive) of `data`
    /// hold the file's bytes: a caller that read the headers and some
    /// sections into a zero-filled buffer of the file's length. Every read
    /// outside them then fails as if the bytes were absent and sets
    /// [`Image::missed`], so the caller knows to read the whole file and
    /// ask again; nothing is ever decoded from bytes that were not read.
    /// The headers and section table (and the COFF string table, for long
    /// section names) must be in the ranges before [`Image::parse`].
    pub fn with_loaded_ranges(mut self, ranges: Vec<(usize, usize)>) -> Self {
        self.loaded = Some(ranges);
        self
    }

    /// Whether a read fell outside the ranges given to
    /// [`Image::with_loaded_ranges`] (the answers may then be incomplete).
    pub fn missed(&self) -> bool {
        self.missed.get()
    }

    /// The file bytes `start..end`, if the file has them (and they were read).
    pub fn file_bytes(&self, start: usize, end: usize) -> Option<&'a [u8]> {
        let b = self.data.get(start..end)?;
        if let Some(l) = &self.loaded {
            if !l.iter().any(|&(a, z)| a <= start && end <= z) {
                self.missed.set(true);
                return None;
            }
        }
        Some(b)
    }

    /// PE32+ (64-bit pointers in the optional header, TLS, thunks, load config).
    pub fn is_pe32_plus(&self) -> bool {
        self.opt.magic == crate::IMAGE_NT_OPTIONAL_HDR64_MAGIC
    }

    fn ptr_size(&self) -> usize {
        if self.is_pe32_plus() {
            8
        } else {
            4
        }
    }

    pub fn directory(&self, index: usize) -> DataDirectory {
        self.directories.get(index).copied().unwrap_or_default()
    }

    /// The file offset of the optional header's CheckSum field.
    pub fn checksum_offset(&self) -> usize {
        self.e_lfanew as usize + 24 + 64
    }

    /// The checksum `CheckSumMappedFile` computes for this file (it reads
    /// every byte: with [`Image::with_loaded_ranges`] it sets
    /// [`Image::missed`] unless one range covers the whole file).
    pub fn computed_checksum(&self) -> u32 {
        if self.file_bytes(0, self.data.len()).is_none() {
            return 0;
        }
        pe_checksum(self.data, self.checksum_offset())
    }

    /// The section whose memory range holds `rva`.
    pub fn section_of(&self, rva: u32) -> Option<&SectionHeader> {
        self.sections.iter().find(|s| {
            let size = s.virtual_size.max(s.size_of_raw_data);
            rva >= s.virtual_address && ((rva - s.virtual_address) as u64) < size as u64
        })
    }

    /// The file bytes from `rva` to the end of what the file holds of the
    /// section (or headers) containing it; `None` when `rva` is in no
    /// section's raw data.
    pub fn bytes_from(&self, rva: u32) -> Option<&'a [u8]> {
        let data = self.data;
        if let Some(s) = self.section_of(rva) {
            let delta = (rva - s.virtual_address) as usize;
            let raw = s.size_of_raw_data as usize;
            if delta >= raw {
                return None;
            }
            let start = (s.pointer_to_raw_data as usize).checked_add(delta)?;
            let end = (s.pointer_to_raw_data as usize)
                .saturating_add(raw)
                .min(data.len());
            return self.file_bytes(start, end);
        }
        let headers = (self.opt.size_of_headers as usize).min(data.len());
        let first_section = self
            .sections
            .iter()
            .map(|s| s.virtual_address as usize)
            .min()
            .unwrap_or(usize::MAX);
        if (rva as usize) < headers && (rva as usize) < first_section {
            return self.file_bytes(rva as usize, headers);
        }
        None
    }

    /// `len` bytes at `rva`, all inside one section's raw data.
    pub fn bytes_at(&self, rva: u32, len: usize) -> Option<&'a [u8]> {
        self.bytes_from(rva)?.get(..len)
    }

    fn need(&self, rva: u32, len: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        self.bytes_at(rva, len).ok_or_else(|| {
            bad(format!(
                "{} at RVA {:#x} ({} bytes) is outside the file's sections",
                what(),
                rva,
                len
            ))
        })
    }

    fn u32_rva(&self, rva: u32, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32_at(self.need(rva, 4, what)?, 0).unwrap_or(0))
    }

    /// The NUL-terminated string at `rva` (without the NUL).
    pub fn cstr_at(&self, rva: u32) -> Option<&'a [u8]> {
        let b = self.bytes_from(rva)?;
        let n = b.iter().take(1 << 16).position(|&c| c == 0)?;
        Some(&b[..n])
    }

    fn cstr(&self, rva: u32, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        self.cstr_at(rva).ok_or_else(|| {
            bad(format!(
                "{} at RVA {:#x} is outside the file's sections or not NUL-terminated",
                what(),
                rva
            ))
        })
    }

    /// A pointer-sized value (4 bytes in PE32, 8 in PE32+) at `rva`.
    fn ptr_rva(&self, rva: u32, what: &dyn Fn() -> String) -> Result<u64> {
        let b = self.need(rva, self.ptr_size(), what)?;
        Ok(if self.is_pe32_plus() {
            u64_at(b, 0).unwrap_or(0)
        } else {
            u32_at(b, 0).unwrap_or(0) as u64
        })
    }

    /// Converts a virtual address of this image (at its preferred base) to an RVA.
    pub fn va_to_rva(&self, va: u64) -> Option<u32> {
        va.checked_sub(self.opt.image_base)
            .and_then(|r| u32::try_from(r).ok())
    }

    /// The bytes of data directory `index`, or `None` when it is empty.
    fn dir_bytes(&self, index: usize) -> Result<Option<(DataDirectory, &'a [u8])>> {
        let d = self.directory(index);
        if d.virtual_address == 0 || d.size == 0 {
            return Ok(None);
        }
        let b = self.bytes_from(d.virtual_address).ok_or_else(|| {
            bad(format!(
                "{} directory RVA {:#x} is outside the file's sections",
                DIRECTORY_NAMES[index], d.virtual_address
            ))
        })?;
        Ok(Some((d, b)))
    }
}

fn section_name(data: &[u8], raw: &[u8; 8], strtab: Option<usize>) -> String {
    let n = raw.iter().position(|&c| c == 0).unwrap_or(8);
    let short = String::from_utf8_lossy(&raw[..n]).into_owned();
    let Some(digits) = short.strip_prefix('/') else {
        return short;
    };
    let (Ok(off), Some(tab)) = (digits.parse::<usize>(), strtab) else {
        return short;
    };
    let Some(tail) = tab.checked_add(off).and_then(|o| data.get(o..)) else {
        return short;
    };
    match tail.iter().take(4096).position(|&c| c == 0) {
        Some(n) => String::from_utf8_lossy(&tail[..n]).into_owned(),
        None => short,
    }
}

/// The image checksum as imagehlp's `CheckSumMappedFile` computes it: the
/// 16-bit one's-complement sum (carries folded back in) of the whole file,
/// read as little-endian words with an odd last byte zero-extended, the
/// CheckSum field itself counting as zero, plus the file length.
pub fn pe_checksum(data: &[u8], checksum_offset: usize) -> u32 {
    // Summing 32-bit words is the same sum modulo 0xFFFF (2^16 = 1 there),
    // and folding a non-zero sum never gives 0, so the result equals the
    // word-by-word fold; it lets the compiler vectorize the loop. A byte at
    // offset p contributes b << (8 * (p % 4)) to this sum.
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let tail = data.len() - words.remainder().len();
    for (i, &b) in words.remainder().iter().enumerate() {
        sum += (b as u64) << (8 * ((tail + i) % 4));
    }
    // The CheckSum field counts as zero: take back each of its bytes.
    for p in checksum_offset..checksum_offset.saturating_add(4) {
        if let Some(&b) = data.get(p) {
            sum -= (b as u64) << (8 * (p % 4));
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    (sum as u32).wrapping_add(data.len() as u32)
}

/// The same checksum computed word by word as the specification describes
/// it (16-bit adds with the carry folded back each time): the reference
/// [`pe_checksum`] is tested against.
pub fn pe_checksum_reference(data: &[u8], checksum_offset: usize) -> u32 {
    let field = checksum_offset..checksum_offset.saturating_add(4);
    let byte = |p: usize| match data.get(p) {
        Some(&b) if !field.contains(&p) => b,
        _ => 0,
    };
    let mut sum: u32 = 0;
    for i in (0..data.len()).step_by(2) {
        sum += u16::from_le_bytes([byte(i), byte(i + 1)]) as u32;
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum.wrapping_add(data.len() as u32)
}

// ---------------------------------------------------------------- imports

/// One imported function (an import lookup table entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedFunction<'a> {
    /// RVA of the lookup table entry (import name table, or the IAT when
    /// the descriptor has no name table).
    pub thunk_rva: u32,
    /// RVA of the IAT slot the loader fills.
    pub iat_rva: u32,
    /// The raw lookup entry.
    pub thunk: u64,
    /// Imported by ordinal.
    pub ordinal: Option<u16>,
    /// Imported by name: the hint and name at `hint_name_rva`.
    pub hint: u16,
    pub name: Option<&'a [u8]>,
    pub hint_name_rva: u32,
}

/// `IMAGE_IMPORT_DESCRIPTOR` with the functions it imports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportDescriptor<'a> {
    pub rva: u32,
    pub original_first_thunk: u32,
    pub time_date_stamp: u32,
    pub forwarder_chain: u32,
    pub name_rva: u32,
    pub first_thunk: u32,
    pub dll: &'a [u8],
    pub functions: Vec<ImportedFunction<'a>>,
}

/// `ImgDelayDescr` (`IMAGE_DELAYLOAD_DESCRIPTOR`) with its functions.
/// Addresses are RVAs; a descriptor without the RVA attribute (bit 0, the
/// Visual C++ 6 format) holds VAs, converted here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayImportDescriptor<'a> {
    pub rva: u32,
    pub attributes: u32,
    pub dll_name_rva: u32,
    pub module_handle_rva: u32,
    pub iat_rva: u32,
    pub int_rva: u32,
    pub bound_iat_rva: u32,
    pub unload_iat_rva: u32,
    pub time_date_stamp: u32,
    pub dll: &'a [u8],
    pub functions: Vec<ImportedFunction<'a>>,
}

impl<'a> Image<'a> {
    /// Walks one import lookup table.
    fn thunks(
        &self,
        lookup: u32,
        iat: u32,
        va_based: bool,
        budget: &mut usize,
        who: &dyn Fn() -> String,
    ) -> Result<Vec<ImportedFunction<'a>>> {
        let ps = self.ptr_size() as u32;
        let flag = if self.is_pe32_plus() {
            1u64 << 63
        } else {
            1u64 << 31
        };
        let mut out = Vec::new();
        for i in 0.. {
            // One budget for the whole directory: descriptors may share
            // one long lookup table.
            if *budget == 0 {
                return Err(bad(format!(
                    "{}: more than {} imported functions in the directory",
                    who(),
                    MAX_ENTRIES
                )));
            }
            *budget -= 1;
            let thunk_rva = lookup
                .checked_add(i * ps)
                .ok_or_else(|| bad(format!("{}: lookup table wraps", who())))?;
            let thunk = self.ptr_rva(thunk_rva, &|| format!("{}: lookup entry {}", who(), i))?;
            if thunk == 0 {
                break;
            }
            let iat_rva = iat.wrapping_add(i * ps);
            if thunk & flag != 0 {
                out.push(ImportedFunction {
                    thunk_rva,
                    iat_rva,
                    thunk,
                    ordinal: Some(thunk as u16),
                    hint: 0,
                    name: None,
                    hint_name_rva: 0,
                });
                continue;
            }
            let target = if va_based {
                self.va_to_rva(thunk).ok_or_else(|| {
                    bad(format!(
                        "{}: lookup entry {} VA {:#x} is below the image base",
                        who(),
                        i,
                        thunk
                    ))
                })?
            } else {
                (thunk & 0x7FFF_FFFF) as u32
            };
            let hb = self.need(target, 2, &|| {
                format!("{}: hint/name of entry {}", who(), i)
            })?;
            let name = self.cstr(target.wrapping_add(2), &|| {
                format!("{}: name of entry {}", who(), i)
            })?;
            out.push(ImportedFunction {
                thunk_rva,
                iat_rva,
                thunk,
                ordinal: None,
                hint: u16_at(hb, 0).unwrap_or(0),
                name: Some(name),
                hint_name_rva: target,
            });
        }
        Ok(out)
    }

    /// The import directory: descriptors up to the null one.
    pub fn imports(&self) -> Result<Vec<ImportDescriptor<'a>>> {
        let Some((d, _)) = self.dir_bytes(crate::IMAGE_DIRECTORY_ENTRY_IMPORT)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut budget = MAX_ENTRIES;
        for n in 0.. {
            if n >= MAX_ENTRIES as u32 {
                return Err(bad("more than 2^20 import descriptors".into()));
            }
            let rva = d.virtual_address.wrapping_add(n * 20);
            let b = self.need(rva, 20, &|| format!("import descriptor {n}"))?;
            let r = |o| u32_at(b, o).unwrap_or(0);
            let (oft, tds, fwd, name_rva, ft) = (r(0), r(4), r(8), r(12), r(16));
            if name_rva == 0 && ft == 0 {
                break;
            }
            let dll = self.cstr(name_rva, &|| format!("import descriptor {n} DLL name"))?;
            let lookup = if oft != 0 { oft } else { ft };
            let dll_s = String::from_utf8_lossy(dll);
            let functions = self.thunks(lookup, ft, false, &mut budget, &|| {
                format!("imports of {dll_s}")
            })?;
            out.push(ImportDescriptor {
                rva,
                original_first_thunk: oft,
                time_date_stamp: tds,
                forwarder_chain: fwd,
                name_rva,
                first_thunk: ft,
                dll,
                functions,
            });
        }
        Ok(out)
    }

    /// The delay-load import directory.
    pub fn delay_imports(&self) -> Result<Vec<DelayImportDescriptor<'a>>> {
        let Some((d, _)) = self.dir_bytes(IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut budget = MAX_ENTRIES;
        for n in 0.. {
            if n >= MAX_ENTRIES as u32 {
                return Err(bad("more than 2^20 delay-load descriptors".into()));
            }
            let rva = d.virtual_address.wrapping_add(n * 32);
            let b = self.need(rva, 32, &|| format!("delay-load descriptor {n}"))?;
            let r = |o| u32_at(b, o).unwrap_or(0);
            let attributes = r(0);
            if r(4) == 0 {
                break;
            }
            let va_based = attributes & 1 == 0;
            let conv = |v: u32, field: &str| -> Result<u32> {
                if !va_based || v == 0 {
                    return Ok(v);
                }
                self.va_to_rva(v as u64).ok_or_else(|| {
                    bad(format!(
                        "delay-load descriptor {n}: {field} VA {v:#x} is below the image base"
                    ))
                })
            };
            let dll_name_rva = conv(r(4), "DLL name")?;
            let module_handle_rva = conv(r(8), "module handle")?;
            let iat_rva = conv(r(12), "IAT")?;
            let int_rva = conv(r(16), "name table")?;
            let bound_iat_rva = conv(r(20), "bound IAT")?;
            let unload_iat_rva = conv(r(24), "unload IAT")?;
            let dll = self.cstr(dll_name_rva, &|| {
                format!("delay-load descriptor {n} DLL name")
            })?;
            let dll_s = String::from_utf8_lossy(dll);
            let functions = if int_rva != 0 {
                self.thunks(int_rva, iat_rva, va_based, &mut budget, &|| {
                    format!("delay-load imports of {dll_s}")
                })?
            } else {
                Vec::new()
            };
            out.push(DelayImportDescriptor {
                rva,
                attributes,
                dll_name_rva,
                module_handle_rva,
                iat_rva,
                int_rva,
                bound_iat_rva,
                unload_iat_rva,
                time_date_stamp: r(28),
                dll,
                functions,
            });
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- exports

/// One export address table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedFunction<'a> {
    pub ordinal: u32,
    pub rva: u32,
    /// `DLL.Name` or `DLL.#ordinal` when `rva` points inside the export
    /// directory.
    pub forwarder: Option<&'a [u8]>,
}

/// One name pointer table entry: the name and the index (ordinal minus the
/// base) of the function it names. `hint` is the entry's index in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportName<'a> {
    pub hint: u32,
    pub name: &'a [u8],
    pub index: u32,
}

/// `IMAGE_EXPORT_DIRECTORY` with its tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportDirectory<'a> {
    pub characteristics: u32,
    pub time_date_stamp: u32,
    pub major_version: u16,
    pub minor_version: u16,
    pub name_rva: u32,
    pub name: &'a [u8],
    pub ordinal_base: u32,
    pub number_of_functions: u32,
    pub number_of_names: u32,
    pub address_of_functions: u32,
    pub address_of_names: u32,
    pub address_of_name_ordinals: u32,
    pub functions: Vec<ExportedFunction<'a>>,
    pub names: Vec<ExportName<'a>>,
}

/// One step of following an export: where function `idx` leads.
enum Step<'a> {
    /// Forwarded to another export of this same module (its function index).
    Next(u32),
    Done(ResolvedExport<'a>),
}

impl<'a> ExportDirectory<'a> {
    /// The first name of function `index`, if it has one.
    pub fn name_of(&self, index: u32) -> Option<&ExportName<'a>> {
        self.names.iter().find(|n| n.index == index)
    }

    /// Names to function indexes (the first name wins, as the loader's
    /// binary search over a sorted table would find one of them).
    fn name_map(&self) -> BTreeMap<&'a [u8], u32> {
        let mut m = BTreeMap::new();
        for n in &self.names {
            m.entry(n.name).or_insert(n.index);
        }
        m
    }

    fn step(&self, idx: u32, names: &BTreeMap<&'a [u8], u32>) -> Result<Step<'a>> {
        let f = self
            .functions
            .get(idx as usize)
            .ok_or_else(|| bad(format!("export index {idx} is outside the address table")))?;
        let Some(fw) = f.forwarder else {
            return Ok(Step::Done(ResolvedExport::Function(idx)));
        };
        let Some(dot) = fw.iter().rposition(|&c| c == b'.') else {
            return Err(bad(format!(
                "forwarder {} has no module name",
                String::from_utf8_lossy(fw)
            )));
        };
        if !fw[..dot].eq_ignore_ascii_case(module_stem(self.name)) {
            return Ok(Step::Done(ResolvedExport::Forwarder(fw)));
        }
        let target = &fw[dot + 1..];
        let next = if let Some(ord) = target.strip_prefix(b"#") {
            let o: u32 = core::str::from_utf8(ord)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "forwarder {} has a bad ordinal",
                        String::from_utf8_lossy(fw)
                    ))
                })?;
            o.wrapping_sub(self.ordinal_base)
        } else {
            *names.get(target).ok_or_else(|| {
                bad(format!(
                    "forwarder {} names no export of this module",
                    String::from_utf8_lossy(fw)
                ))
            })?
        };
        Ok(Step::Next(next))
    }

    /// Follows `name` through forwarders to this same module (`KERNEL32`
    /// exporting `A` as `KERNEL32.B`), as the loader would, and returns the
    /// export it ends at: its function index, or the forwarder into another
    /// module. A chain longer than the address table has come back to an
    /// export it passed: an error.
    pub fn resolve(&self, name: &[u8]) -> Result<ResolvedExport<'a>> {
        let names = self.name_map();
        let mut idx = *names.get(name).ok_or_else(|| Error {
            status: STATUS_ENTRYPOINT_NOT_FOUND,
            what: format!("no export named {}", String::from_utf8_lossy(name)),
        })?;
        for _ in 0..=self.functions.len() {
            match self.step(idx, &names)? {
                Step::Done(r) => return Ok(r),
                Step::Next(n) => idx = n,
            }
        }
        Err(bad(format!(
            "export {} forwards in a loop",
            String::from_utf8_lossy(name)
        )))
    }

    /// Checks that no forwarder chain inside this module is a loop: each
    /// function is walked once (a chain stops at a function already
    /// finished), so a table of n exports costs O(n log n).
    fn check_forwarder_loops(&self) -> Result<()> {
        let names = self.name_map();
        // 0: not seen, 1: on the chain being walked, 2: finished.
        let mut state = alloc::vec![0u8; self.functions.len()];
        let mut chain = Vec::new();
        for start in 0..self.functions.len() {
            let mut i = start;
            let mut looped = false;
            loop {
                match state[i] {
                    2 => break,
                    1 => {
                        looped = true;
                        break;
                    }
                    _ => {}
                }
                state[i] = 1;
                chain.push(i);
                match self.step(i as u32, &names) {
                    Ok(Step::Next(n)) if (n as usize) < state.len() => i = n as usize,
                    // Out-of-module, unforwarded or broken: the chain ends
                    // (a broken one is reported when it is resolved).
                    _ => break,
                }
            }
            if looped {
                let who = match self.name_of(i as u32) {
                    Some(n) => String::from_utf8_lossy(n.name).into_owned(),
                    None => format!("#{}", self.functions[i].ordinal),
                };
                return Err(bad(format!(
                    "export {} forwards in a loop (through {})",
                    who,
                    String::from_utf8_lossy(self.functions[i].forwarder.unwrap_or_default())
                )));
            }
            for c in chain.drain(..) {
                state[c] = 2;
            }
        }
        Ok(())
    }
}

/// Where [`ExportDirectory::resolve`] ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedExport<'a> {
    Function(u32),
    Forwarder(&'a [u8]),
}

/// `KERNEL32` of `KERNEL32.dll`.
fn module_stem(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&c| c == b'.') {
        Some(d) => &name[..d],
        None => name,
    }
}

impl<'a> Image<'a> {
    /// The export directory, or `None` when the image exports nothing.
    /// Forwarders to this same module that come back around are an error.
    pub fn exports(&self) -> Result<Option<ExportDirectory<'a>>> {
        let Some((d, _)) = self.dir_bytes(crate::IMAGE_DIRECTORY_ENTRY_EXPORT)? else {
            return Ok(None);
        };
        let b = self.need(d.virtual_address, 40, &|| "export directory".into())?;
        let r = |o| u32_at(b, o).unwrap_or(0);
        let name_rva = r(12);
        let name = if name_rva == 0 {
            &[][..]
        } else {
            self.cstr(name_rva, &|| "export DLL name".into())?
        };
        let (nf, nn) = (r(20), r(24));
        let (af, an, ao) = (r(28), r(32), r(36));
        let ft = self.need(af, nf as usize * 4, &|| {
            format!("export address table ({nf} entries)")
        })?;
        let nt = self.need(an, nn as usize * 4, &|| {
            format!("export name pointer table ({nn} entries)")
        })?;
        let ot = self.need(ao, nn as usize * 2, &|| {
            format!("export ordinal table ({nn} entries)")
        })?;
        let dir_end = d.virtual_address as u64 + d.size as u64;
        let base = r(16);
        if base as u64 + nf as u64 > 1 << 32 {
            return Err(bad(format!(
                "export ordinal base {base:#x} plus {nf} functions passes 2^32"
            )));
        }
        let mut functions = Vec::with_capacity(nf as usize);
        for (i, e) in ft.chunks_exact(4).enumerate() {
            let rva = u32_at(e, 0).unwrap_or(0);
            let forwarder = if rva >= d.virtual_address && (rva as u64) < dir_end {
                Some(self.cstr(rva, &|| {
                    format!("forwarder of export ordinal {}", base as u64 + i as u64)
                })?)
            } else {
                None
            };
            functions.push(ExportedFunction {
                ordinal: base + i as u32,
                rva,
                forwarder,
            });
        }
        let mut names = Vec::with_capacity(nn as usize);
        for (i, (p, o)) in nt.chunks_exact(4).zip(ot.chunks_exact(2)).enumerate() {
            let index = u16_at(o, 0).unwrap_or(0) as u32;
            let name = self.cstr(u32_at(p, 0).unwrap_or(0), &|| format!("export name {i}"))?;
            if index >= nf {
                return Err(bad(format!(
                    "export name {} has ordinal index {} outside the {}-entry address table",
                    String::from_utf8_lossy(name),
                    index,
                    nf
                )));
            }
            names.push(ExportName {
                hint: i as u32,
                name,
                index,
            });
        }
        let dir = ExportDirectory {
            characteristics: r(0),
            time_date_stamp: r(4),
            major_version: u16_at(b, 8).unwrap_or(0),
            minor_version: u16_at(b, 10).unwrap_or(0),
            name_rva,
            name,
            ordinal_base: base,
            number_of_functions: nf,
            number_of_names: nn,
            address_of_functions: af,
            address_of_names: an,
            address_of_name_ordinals: ao,
            functions,
            names,
        };
        // Forwarders back into this module must end somewhere.
        dir.check_forwarder_loops()?;
        Ok(Some(dir))
    }
}

// ---------------------------------------------------------------- relocations

/// One base relocation block (`IMAGE_BASE_RELOCATION`) and its entries
/// (type in the high 4 bits, page offset in the low 12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelocationBlock {
    pub rva: u32,
    pub page_rva: u32,
    pub block_size: u32,
    pub entries: Vec<(u8, u16)>,
}

/// The name of base relocation type `t` (`IMAGE_REL_BASED_*`).
pub fn relocation_type_name(t: u8, machine: u16) -> &'static str {
    match t {
        0 => "ABSOLUTE",
        1 => "HIGH",
        2 => "LOW",
        3 => "HIGHLOW",
        4 => "HIGHADJ",
        5 => match machine {
            0x1C0 | 0x1C2 | 0x1C4 => "ARM_MOV32",
            0x5032 | 0x5064 | 0x5128 => "RISCV_HIGH20",
            _ => "MIPS_JMPADDR",
        },
        7 => match machine {
            0x5032 | 0x5064 | 0x5128 => "RISCV_LOW12I",
            _ => "THUMB_MOV32",
        },
        8 => "RISCV_LOW12S",
        9 => "MIPS_JMPADDR16",
        10 => "DIR64",
        _ => "UNKNOWN",
    }
}

impl Image<'_> {
    /// The base relocation directory, block by block. Zero padding after
    /// the last block (a zero page and size) ends the walk.
    pub fn relocations(&self) -> Result<Vec<RelocationBlock>> {
        let Some((d, bytes)) = self.dir_bytes(crate::IMAGE_DIRECTORY_ENTRY_BASERELOC)? else {
            return Ok(Vec::new());
        };
        let size = d.size as usize;
        if size > bytes.len() {
            return Err(bad(format!(
                "base relocation directory ({} bytes at RVA {:#x}) runs past its section's data",
                size, d.virtual_address
            )));
        }
        let bytes = &bytes[..size];
        let mut out = Vec::new();
        let mut off = 0usize;
        while off + 8 <= size {
            let page_rva = u32_at(bytes, off).unwrap_or(0);
            let block_size = u32_at(bytes, off + 4).unwrap_or(0);
            let rva = d.virtual_address + off as u32;
            if page_rva == 0 && block_size == 0 {
                break;
            }
            if block_size < 8 || block_size as usize > size - off {
                return Err(bad(format!(
                    "base relocation block at RVA {rva:#x} has size {block_size} (needs 8..={})",
                    size - off
                )));
            }
            let entries = bytes[off + 8..off + block_size as usize]
                .chunks_exact(2)
                .map(|e| {
                    let v = u16::from_le_bytes([e[0], e[1]]);
                    ((v >> 12) as u8, v & 0xFFF)
                })
                .collect();
            out.push(RelocationBlock {
                rva,
                page_rva,
                block_size,
                entries,
            });
            off += block_size as usize;
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- TLS

/// `IMAGE_TLS_DIRECTORY32/64` (addresses are VAs) and its callback list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsDirectory {
    pub start_address_of_raw_data: u64,
    pub end_address_of_raw_data: u64,
    pub address_of_index: u64,
    pub address_of_callbacks: u64,
    pub size_of_zero_fill: u32,
    pub characteristics: u32,
    pub callbacks: Vec<u64>,
}

impl Image<'_> {
    pub fn tls(&self) -> Result<Option<TlsDirectory>> {
        let Some((d, _)) = self.dir_bytes(IMAGE_DIRECTORY_ENTRY_TLS)? else {
            return Ok(None);
        };
        let ps = self.ptr_size();
        let b = self.need(d.virtual_address, 4 * ps + 8, &|| "TLS directory".into())?;
        let p = |i: usize| {
            if ps == 8 {
                u64_at(b, i * 8).unwrap_or(0)
            } else {
                u32_at(b, i * 4).unwrap_or(0) as u64
            }
        };
        let address_of_callbacks = p(3);
        let mut callbacks = Vec::new();
        if address_of_callbacks != 0 {
            let start = self.va_to_rva(address_of_callbacks).ok_or_else(|| {
                bad(format!(
                    "TLS callback array VA {address_of_callbacks:#x} is not in the image"
                ))
            })?;
            for i in 0..MAX_ENTRIES {
                let rva = start.wrapping_add((i * ps) as u32);
                let cb = self.ptr_rva(rva, &|| format!("TLS callback {i}"))?;
                if cb == 0 {
                    break;
                }
                callbacks.push(cb);
            }
        }
        Ok(Some(TlsDirectory {
            start_address_of_raw_data: p(0),
            end_address_of_raw_data: p(1),
            address_of_index: p(2),
            address_of_callbacks,
            size_of_zero_fill: u32_at(b, 4 * ps).unwrap_or(0),
            characteristics: u32_at(b, 4 * ps + 4).unwrap_or(0),
            callbacks,
        }))
    }
}

// ---------------------------------------------------------------- exceptions

/// `RUNTIME_FUNCTION` (x64 `.pdata` entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeFunction {
    pub begin_address: u32,
    pub end_address: u32,
    pub unwind_info_address: u32,
}

pub const UNW_FLAG_EHANDLER: u8 = 1;
pub const UNW_FLAG_UHANDLER: u8 = 2;
pub const UNW_FLAG_CHAININFO: u8 = 4;

/// x64 general registers in unwind-code order.
pub const X64_REGISTERS: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// One decoded unwind operation (`UNWIND_CODE` and the slots it uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwindOp {
    /// `UWOP_PUSH_NONVOL`: push of a general register.
    PushNonvol { reg: u8 },
    /// `UWOP_ALLOC_LARGE` / `UWOP_ALLOC_SMALL`: `rsp -= size`.
    Alloc { size: u32, large: bool },
    /// `UWOP_SET_FPREG`: frame register = rsp + 16 * frame offset.
    SetFpreg,
    /// `UWOP_SAVE_NONVOL(_FAR)`: `mov [rsp+offset], reg`.
    SaveNonvol { reg: u8, offset: u32, far: bool },
    /// `UWOP_SAVE_XMM128(_FAR)`: `movaps [rsp+offset], xmmN`.
    SaveXmm128 { reg: u8, offset: u32, far: bool },
    /// `UWOP_EPILOG` (version 2): an epilog location.
    Epilog { info: u8, offset: u8 },
    /// `UWOP_PUSH_MACHFRAME`: a machine frame, with an error code when set.
    PushMachframe { error_code: bool },
    /// An operation code this decoder does not know (its slot only).
    Unknown { op: u8, info: u8 },
}

/// One unwind code: where in the prolog it applies and what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnwindCode {
    pub code_offset: u8,
    pub op: UnwindOp,
}

/// `UNWIND_INFO`, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwindInfo {
    pub rva: u32,
    pub version: u8,
    pub flags: u8,
    pub size_of_prolog: u8,
    pub count_of_codes: u8,
    pub frame_register: u8,
    pub frame_offset: u8,
    pub codes: Vec<UnwindCode>,
    /// Exception/termination handler RVA (EHANDLER or UHANDLER).
    pub handler: Option<u32>,
    /// The primary function entry of chained unwind info (CHAININFO).
    pub chained: Option<RuntimeFunction>,
}

impl Image<'_> {
    /// The x64 exception directory (`.pdata`): its `RUNTIME_FUNCTION`s.
    /// Other machines' tables have other layouts and give an empty list.
    pub fn runtime_functions(&self) -> Result<Vec<RuntimeFunction>> {
        if self.file.machine != crate::IMAGE_FILE_MACHINE_AMD64 {
            return Ok(Vec::new());
        }
        let Some((d, bytes)) = self.dir_bytes(IMAGE_DIRECTORY_ENTRY_EXCEPTION)? else {
            return Ok(Vec::new());
        };
        let n = d.size as usize / 12;
        let b = bytes.get(..n * 12).ok_or_else(|| {
            bad(format!(
                "exception directory ({} entries at RVA {:#x}) runs past its section's data",
                n, d.virtual_address
            ))
        })?;
        Ok(b.chunks_exact(12)
            .map(|e| RuntimeFunction {
                begin_address: u32_at(e, 0).unwrap_or(0),
                end_address: u32_at(e, 4).unwrap_or(0),
                unwind_info_address: u32_at(e, 8).unwrap_or(0),
            })
            .collect())
    }

    /// Decodes the `UNWIND_INFO` at `rva`.
    pub fn unwind_info(&self, rva: u32) -> Result<UnwindInfo> {
        let h = self.need(rva, 4, &|| "UNWIND_INFO".into())?;
        let version = h[0] & 7;
        let flags = h[0] >> 3;
        let count = h[2];
        let slots_len = (count as usize).div_ceil(2) * 2;
        let b = self.need(rva, 4 + slots_len * 2, &|| {
            format!("UNWIND_INFO with {count} codes")
        })?;
        let slot = |i: usize| u16_at(b, 4 + i * 2).unwrap_or(0);
        let mut codes = Vec::new();
        let mut i = 0usize;
        let trunc = |i: usize| {
            bad(format!(
                "UNWIND_INFO at RVA {rva:#x}: code {i} needs slots past its {count} codes"
            ))
        };
        while i < count as usize {
            let c = slot(i);
            let code_offset = c as u8;
            let op = ((c >> 8) & 0xF) as u8;
            let info = (c >> 12) as u8;
            let need = |n: usize| {
                if i + n > count as usize {
                    Err(trunc(i))
                } else {
                    Ok(())
                }
            };
            let (decoded, used) = match op {
                0 => (UnwindOp::PushNonvol { reg: info }, 1),
                1 if info == 0 => {
                    need(2)?;
                    (
                        UnwindOp::Alloc {
                            size: slot(i + 1) as u32 * 8,
                            large: true,
                        },
                        2,
                    )
                }
                1 => {
                    need(3)?;
                    (
                        UnwindOp::Alloc {
                            size: slot(i + 1) as u32 | (slot(i + 2) as u32) << 16,
                            large: true,
                        },
                        3,
                    )
                }
                2 => (
                    UnwindOp::Alloc {
                        size: info as u32 * 8 + 8,
                        large: false,
                    },
                    1,
                ),
                3 => (UnwindOp::SetFpreg, 1),
                4 => {
                    need(2)?;
                    (
                        UnwindOp::SaveNonvol {
                            reg: info,
                            offset: slot(i + 1) as u32 * 8,
                            far: false,
                        },
                        2,
                    )
                }
                5 => {
                    need(3)?;
                    (
                        UnwindOp::SaveNonvol {
                            reg: info,
                            offset: slot(i + 1) as u32 | (slot(i + 2) as u32) << 16,
                            far: true,
                        },
                        3,
                    )
                }
                6 if version == 2 => (
                    UnwindOp::Epilog {
                        info,
                        offset: code_offset,
                    },
                    1,
                ),
                8 => {
                    need(2)?;
                    (
                        UnwindOp::SaveXmm128 {
                            reg: info,
                            offset: slot(i + 1) as u32 * 16,
                            far: false,
                        },
                        2,
                    )
                }
                9 => {
                    need(3)?;
                    (
                        UnwindOp::SaveXmm128 {
                            reg: info,
                            offset: slot(i + 1) as u32 | (slot(i + 2) as u32) << 16,
                            far: true,
                        },
                        3,
                    )
                }
                10 => (
                    UnwindOp::PushMachframe {
                        error_code: info != 0,
                    },
                    1,
                ),
                _ => (UnwindOp::Unknown { op, info }, 1),
            };
            codes.push(UnwindCode {
                code_offset,
                op: decoded,
            });
            i += used;
        }
        let tail = rva.wrapping_add(4 + slots_len as u32 * 2);
        let (mut handler, mut chained) = (None, None);
        if flags & UNW_FLAG_CHAININFO != 0 {
            let c = self.need(tail, 12, &|| "chained RUNTIME_FUNCTION".into())?;
            chained = Some(RuntimeFunction {
                begin_address: u32_at(c, 0).unwrap_or(0),
                end_address: u32_at(c, 4).unwrap_or(0),
                unwind_info_address: u32_at(c, 8).unwrap_or(0),
            });
        } else if flags & (UNW_FLAG_EHANDLER | UNW_FLAG_UHANDLER) != 0 {
            handler = Some(self.u32_rva(tail, &|| "exception handler RVA".into())?);
        }
        Ok(UnwindInfo {
            rva,
            version,
            flags,
            size_of_prolog: h[1],
            count_of_codes: count,
            frame_register: h[3] & 0xF,
            frame_offset: h[3] >> 4,
            codes,
            handler,
            chained,
        })
    }
}

// ---------------------------------------------------------------- load config

/// `IMAGE_LOAD_CONFIG_DIRECTORY32/64`: the fields its Size covers, in
/// order, with their values (pointers are VAs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadConfig {
    pub size: u32,
    pub fields: Vec<(&'static str, u64)>,
}

/// (name, offset in PE32+, size in PE32+, offset in PE32, size in PE32).
const LOAD_CONFIG_FIELDS: &[(&str, usize, usize, usize, usize)] = &[
    ("Size", 0, 4, 0, 4),
    ("TimeDateStamp", 4, 4, 4, 4),
    ("MajorVersion", 8, 2, 8, 2),
    ("MinorVersion", 10, 2, 10, 2),
    ("GlobalFlagsClear", 12, 4, 12, 4),
    ("GlobalFlagsSet", 16, 4, 16, 4),
    ("CriticalSectionDefaultTimeout", 20, 4, 20, 4),
    ("DeCommitFreeBlockThreshold", 24, 8, 24, 4),
    ("DeCommitTotalFreeThreshold", 32, 8, 28, 4),
    ("LockPrefixTable", 40, 8, 32, 4),
    ("MaximumAllocationSize", 48, 8, 36, 4),
    ("VirtualMemoryThreshold", 56, 8, 40, 4),
    ("ProcessAffinityMask", 64, 8, 48, 4),
    ("ProcessHeapFlags", 72, 4, 44, 4),
    ("CSDVersion", 76, 2, 52, 2),
    ("DependentLoadFlags", 78, 2, 54, 2),
    ("EditList", 80, 8, 56, 4),
    ("SecurityCookie", 88, 8, 60, 4),
    ("SEHandlerTable", 96, 8, 64, 4),
    ("SEHandlerCount", 104, 8, 68, 4),
    ("GuardCFCheckFunctionPointer", 112, 8, 72, 4),
    ("GuardCFDispatchFunctionPointer", 120, 8, 76, 4),
    ("GuardCFFunctionTable", 128, 8, 80, 4),
    ("GuardCFFunctionCount", 136, 8, 84, 4),
    ("GuardFlags", 144, 4, 88, 4),
    ("CodeIntegrity.Flags", 148, 2, 92, 2),
    ("CodeIntegrity.Catalog", 150, 2, 94, 2),
    ("CodeIntegrity.CatalogOffset", 152, 4, 96, 4),
    ("GuardAddressTakenIatEntryTable", 160, 8, 104, 4),
    ("GuardAddressTakenIatEntryCount", 168, 8, 108, 4),
    ("GuardLongJumpTargetTable", 176, 8, 112, 4),
    ("GuardLongJumpTargetCount", 184, 8, 116, 4),
    ("DynamicValueRelocTable", 192, 8, 120, 4),
    ("CHPEMetadataPointer", 200, 8, 124, 4),
    ("GuardRFFailureRoutine", 208, 8, 128, 4),
    ("GuardRFFailureRoutineFunctionPointer", 216, 8, 132, 4),
    ("DynamicValueRelocTableOffset", 224, 4, 136, 4),
    ("DynamicValueRelocTableSection", 228, 2, 140, 2),
    ("GuardRFVerifyStackPointerFunctionPointer", 232, 8, 144, 4),
    ("HotPatchTableOffset", 240, 4, 148, 4),
    ("EnclaveConfigurationPointer", 248, 8, 156, 4),
    ("VolatileMetadataPointer", 256, 8, 160, 4),
    ("GuardEHContinuationTable", 264, 8, 164, 4),
    ("GuardEHContinuationCount", 272, 8, 168, 4),
    ("GuardXFGCheckFunctionPointer", 280, 8, 172, 4),
    ("GuardXFGDispatchFunctionPointer", 288, 8, 176, 4),
    ("GuardXFGTableDispatchFunctionPointer", 296, 8, 180, 4),
    ("CastGuardOsDeterminedFailureMode", 304, 8, 184, 4),
    ("GuardMemcpyFunctionPointer", 312, 8, 188, 4),
];

impl Image<'_> {
    pub fn load_config(&self) -> Result<Option<LoadConfig>> {
        let Some((d, _)) = self.dir_bytes(IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG)? else {
            return Ok(None);
        };
        let size = self.u32_rva(d.virtual_address, &|| "load configuration Size".into())?;
        let b = self.need(d.virtual_address, size as usize, &|| {
            format!("load configuration ({size} bytes)")
        })?;
        let plus = self.is_pe32_plus();
        let mut fields = Vec::new();
        for &(name, o64, s64, o32, s32) in LOAD_CONFIG_FIELDS {
            let (o, s) = if plus { (o64, s64) } else { (o32, s32) };
            if o + s > b.len() {
                break;
            }
            let v = match s {
                2 => u16_at(b, o).unwrap_or(0) as u64,
                4 => u32_at(b, o).unwrap_or(0) as u64,
                _ => u64_at(b, o).unwrap_or(0),
            };
            fields.push((name, v));
        }
        Ok(Some(LoadConfig { size, fields }))
    }
}

// ---------------------------------------------------------------- debug

/// CodeView debug information a debug directory entry points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeView<'a> {
    /// `RSDS`: PDB 7.0 (GUID signature).
    Rsds {
        guid: [u8; 16],
        age: u32,
        path: &'a [u8],
    },
    /// `NB10`: PDB 2.0 (32-bit time signature).
    Nb10 {
        offset: u32,
        signature: u32,
        age: u32,
        path: &'a [u8],
    },
}

impl CodeView<'_> {
    /// The key symbol servers file the PDB under (`pdbname/KEY/pdbname`):
    /// the GUID's 32 hex digits (or NB10's signature) then the age in hex,
    /// upper case.
    pub fn symbol_server_key(&self) -> String {
        match self {
            CodeView::Rsds { guid, age, .. } => {
                let g = guid_fields(guid);
                let mut s = format!("{:08X}{:04X}{:04X}", g.0, g.1, g.2);
                for b in g.3 {
                    s.push_str(&format!("{b:02X}"));
                }
                s.push_str(&format!("{age:X}"));
                s
            }
            CodeView::Nb10 { signature, age, .. } => format!("{signature:08X}{age:X}"),
        }
    }

    pub fn path(&self) -> &[u8] {
        match self {
            CodeView::Rsds { path, .. } | CodeView::Nb10 { path, .. } => path,
        }
    }
}

fn guid_fields(g: &[u8; 16]) -> (u32, u16, u16, [u8; 8]) {
    let mut d4 = [0u8; 8];
    d4.copy_from_slice(&g[8..]);
    (
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        d4,
    )
}

/// A GUID in registry format, `{12345678-1234-1234-1234-123456789ABC}`.
pub fn guid_string(g: &[u8; 16]) -> String {
    let (a, b, c, d) = guid_fields(g);
    format!(
        "{{{a:08X}-{b:04X}-{c:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}}}",
        d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
    )
}

/// `IMAGE_DEBUG_DIRECTORY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugEntry<'a> {
    pub characteristics: u32,
    pub time_date_stamp: u32,
    pub major_version: u16,
    pub minor_version: u16,
    pub debug_type: u32,
    pub size_of_data: u32,
    pub address_of_raw_data: u32,
    pub pointer_to_raw_data: u32,
    pub codeview: Option<CodeView<'a>>,
}

/// The name of debug type `t` (`IMAGE_DEBUG_TYPE_*`).
pub fn debug_type_name(t: u32) -> &'static str {
    match t {
        0 => "UNKNOWN",
        1 => "COFF",
        2 => "CODEVIEW",
        3 => "FPO",
        4 => "MISC",
        5 => "EXCEPTION",
        6 => "FIXUP",
        7 => "OMAP_TO_SRC",
        8 => "OMAP_FROM_SRC",
        9 => "BORLAND",
        10 => "RESERVED10",
        11 => "CLSID",
        12 => "VC_FEATURE",
        13 => "POGO",
        14 => "ILTCG",
        15 => "MPX",
        16 => "REPRO",
        17 => "EMBEDDED_PORTABLE_PDB",
        19 => "PDBCHECKSUM",
        20 => "EX_DLLCHARACTERISTICS",
        _ => "?",
    }
}

impl<'a> Image<'a> {
    pub fn debug_directory(&self) -> Result<Vec<DebugEntry<'a>>> {
        let Some((d, _)) = self.dir_bytes(IMAGE_DIRECTORY_ENTRY_DEBUG)? else {
            return Ok(Vec::new());
        };
        let n = d.size as usize / 28;
        let b = self.need(d.virtual_address, n * 28, &|| {
            format!("debug directory ({n} entries)")
        })?;
        let mut out = Vec::with_capacity(n);
        for (i, e) in b.chunks_exact(28).enumerate() {
            let r = |o| u32_at(e, o).unwrap_or(0);
            let (debug_type, size, addr, ptr) = (r(12), r(16), r(20), r(24));
            let codeview = if debug_type == IMAGE_DEBUG_TYPE_CODEVIEW && size != 0 {
                let raw = if ptr != 0 {
                    self.file_bytes(ptr as usize, (ptr as usize).saturating_add(size as usize))
                } else {
                    self.bytes_at(addr, size as usize)
                };
                let raw = raw.ok_or_else(|| {
                    bad(format!(
                        "debug entry {i}: CodeView data ({size} bytes at file offset {ptr:#x}) is outside the file"
                    ))
                })?;
                Some(parse_codeview(raw).ok_or_else(|| {
                    bad(format!(
                        "debug entry {i}: CodeView data is neither a complete RSDS nor NB10 record"
                    ))
                })?)
            } else {
                None
            };
            out.push(DebugEntry {
                characteristics: r(0),
                time_date_stamp: r(4),
                major_version: u16_at(e, 8).unwrap_or(0),
                minor_version: u16_at(e, 10).unwrap_or(0),
                debug_type,
                size_of_data: size,
                address_of_raw_data: addr,
                pointer_to_raw_data: ptr,
                codeview,
            });
        }
        Ok(out)
    }
}

fn parse_codeview(b: &[u8]) -> Option<CodeView<'_>> {
    fn cut(s: &[u8]) -> Option<&[u8]> {
        s.iter().position(|&c| c == 0).map(|n| &s[..n])
    }
    match b.get(..4)? {
        b"RSDS" => {
            let mut guid = [0u8; 16];
            guid.copy_from_slice(b.get(4..20)?);
            Some(CodeView::Rsds {
                guid,
                age: u32_at(b, 20)?,
                path: cut(b.get(24..)?)?,
            })
        }
        b"NB10" => Some(CodeView::Nb10 {
            offset: u32_at(b, 4)?,
            signature: u32_at(b, 8)?,
            age: u32_at(b, 12)?,
            path: cut(b.get(16..)?)?,
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------- certificates

/// One `WIN_CERTIFICATE` of the attribute certificate table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate<'a> {
    pub offset: u32,
    pub length: u32,
    pub revision: u16,
    pub certificate_type: u16,
    pub data: &'a [u8],
}

pub fn certificate_type_name(t: u16) -> &'static str {
    match t {
        1 => "X509",
        2 => "PKCS_SIGNED_DATA",
        3 => "RESERVED_1",
        4 => "TS_STACK_SIGNED",
        _ => "?",
    }
}

impl<'a> Image<'a> {
    /// The attribute certificate table (its directory address is a file
    /// offset, not an RVA); entries are 8-byte aligned.
    pub fn certificates(&self) -> Result<Vec<Certificate<'a>>> {
        let d = self.directory(IMAGE_DIRECTORY_ENTRY_SECURITY);
        if d.virtual_address == 0 || d.size == 0 {
            return Ok(Vec::new());
        }
        let start = d.virtual_address as usize;
        let table = self
            .file_bytes(start, start.saturating_add(d.size as usize))
            .ok_or_else(|| {
                bad(format!(
                    "certificate table ({} bytes at file offset {:#x}) runs past the end of the file ({} bytes)",
                    d.size,
                    start,
                    self.data.len()
                ))
            })?;
        let mut out = Vec::new();
        let mut off = 0usize;
        while off < table.len() {
            let length = u32_at(table, off).ok_or_else(|| {
                bad(format!(
                    "certificate at file offset {:#x} is truncated",
                    start + off
                ))
            })?;
            if length < 8 || length as usize > table.len() - off {
                return Err(bad(format!(
                    "certificate at file offset {:#x} has length {} (the table has {} bytes left)",
                    start + off,
                    length,
                    table.len() - off
                )));
            }
            out.push(Certificate {
                offset: (start + off) as u32,
                length,
                revision: u16_at(table, off + 4).unwrap_or(0),
                certificate_type: u16_at(table, off + 6).unwrap_or(0),
                data: &table[off + 8..off + length as usize],
            });
            off += (length as usize).div_ceil(8) * 8;
        }
        Ok(out)
    }
}

/// Runs every parser over `data` (the `pe_inspect` fuzz target and the
/// corpus replay test share this). Errors are fine; panics are bugs.
pub fn fuzz_inspect(data: &[u8]) {
    let Ok(img) = Image::parse(data) else { return };
    let _ = img.computed_checksum();
    let _ = img.imports();
    let _ = img.delay_imports();
    if let Ok(Some(e)) = img.exports() {
        for n in e.names.iter().take(64) {
            let _ = e.resolve(n.name);
        }
    }
    let _ = img.relocations();
    let _ = img.tls();
    if let Ok(f) = img.runtime_functions() {
        for r in f.iter().take(4096) {
            let _ = img.unwind_info(r.unwind_info_address);
        }
    }
    let _ = img.load_config();
    let _ = img.debug_directory();
    let _ = img.certificates();
    for rva in [0, 0x1000, u32::MAX, img.opt.address_of_entry_point] {
        let _ = img.cstr_at(rva);
        let _ = img.bytes_at(rva, 16);
    }
}

#[cfg(test)]
mod tests;
