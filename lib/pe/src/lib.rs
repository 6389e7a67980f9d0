//! PE/COFF (PE32+) image parsing and loading, per the Microsoft PE format
//! specification: headers, sections, base relocations, exports and imports.
//! Shared by winload (kernel and boot drivers), the kernel's driver loader and
//! ntdll's loader. Every field read is bounds-checked: a malformed image gives
//! `STATUS_INVALID_IMAGE_FORMAT` (or `STATUS_INVALID_IMAGE_NOT_MZ`), never a panic.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod image;

use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

pub const IMAGE_DOS_SIGNATURE: u16 = 0x5A4D;
pub const IMAGE_NT_SIGNATURE: u32 = 0x0000_4550;
pub const IMAGE_FILE_MACHINE_AMD64: u16 = 0x8664;
pub const IMAGE_NT_OPTIONAL_HDR64_MAGIC: u16 = 0x20B;
pub const IMAGE_DIRECTORY_ENTRY_EXPORT: usize = 0;
pub const IMAGE_DIRECTORY_ENTRY_IMPORT: usize = 1;
pub const IMAGE_DIRECTORY_ENTRY_BASERELOC: usize = 5;
pub const IMAGE_REL_BASED_ABSOLUTE: u16 = 0;
pub const IMAGE_REL_BASED_DIR64: u16 = 10;
pub const IMAGE_SCN_MEM_EXECUTE: u32 = 0x2000_0000;
pub const IMAGE_SCN_MEM_READ: u32 = 0x4000_0000;
pub const IMAGE_SCN_MEM_WRITE: u32 = 0x8000_0000;
pub const IMAGE_SCN_CNT_UNINITIALIZED_DATA: u32 = 0x0000_0080;
pub const IMAGE_SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
pub const IMAGE_FILE_RELOCS_STRIPPED: u16 = 0x0001;
pub const IMAGE_FILE_DLL: u16 = 0x2000;
pub const IMAGE_SUBSYSTEM_NATIVE: u16 = 1;
/// The page size kernel images are protected in.
pub const PAGE_SIZE: u32 = 0x1000;

/// How the kernel maps one page of a system image (W^X): code read+execute,
/// read-only data and headers read-only, writable data read+write, and
/// discardable sections (`.reloc`, `INIT`-like) freed once the image is
/// relocated and bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageProtection {
    ReadOnly,
    ReadWrite,
    ReadExecute,
    Discard,
}

fn rd16(b: &[u8], off: usize) -> Result<u16, NtStatus> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(STATUS_INVALID_IMAGE_FORMAT)
}
fn rd32(b: &[u8], off: usize) -> Result<u32, NtStatus> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(STATUS_INVALID_IMAGE_FORMAT)
}
fn rd64(b: &[u8], off: usize) -> Result<u64, NtStatus> {
    b.get(off..off + 8)
        .map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
        .ok_or(STATUS_INVALID_IMAGE_FORMAT)
}

/// `IMAGE_SECTION_HEADER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: [u8; 8],
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub size_of_raw_data: u32,
    pub pointer_to_raw_data: u32,
    pub characteristics: u32,
}

impl Section {
    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(8);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

/// `IMAGE_DATA_DIRECTORY`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataDirectory {
    pub virtual_address: u32,
    pub size: u32,
}

/// A parsed PE32+ file (raw file layout, as read from disk).
#[derive(Debug)]
pub struct PeFile<'a> {
    pub data: &'a [u8],
    pub machine: u16,
    pub characteristics: u16,
    pub image_base: u64,
    pub address_of_entry_point: u32,
    pub size_of_image: u32,
    pub size_of_headers: u32,
    pub section_alignment: u32,
    pub subsystem: u16,
    pub dll_characteristics: u16,
    pub directories: Vec<DataDirectory>,
    pub sections: Vec<Section>,
}

impl<'a> PeFile<'a> {
    /// Parses and validates the headers of a PE32+ image file.
    pub fn parse(data: &'a [u8]) -> Result<Self, NtStatus> {
        if rd16(data, 0).map_err(|_| STATUS_INVALID_IMAGE_NOT_MZ)? != IMAGE_DOS_SIGNATURE {
            return Err(STATUS_INVALID_IMAGE_NOT_MZ);
        }
        let nt = rd32(data, 0x3C)? as usize;
        if rd32(data, nt)? != IMAGE_NT_SIGNATURE {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let fh = nt + 4;
        let machine = rd16(data, fh)?;
        let nsections = rd16(data, fh + 2)? as usize;
        let opt_size = rd16(data, fh + 16)? as usize;
        let characteristics = rd16(data, fh + 18)?;
        let oh = fh + 20;
        if machine != IMAGE_FILE_MACHINE_AMD64 {
            return Err(STATUS_IMAGE_MACHINE_TYPE_MISMATCH);
        }
        if rd16(data, oh)? != IMAGE_NT_OPTIONAL_HDR64_MAGIC || opt_size < 112 {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let address_of_entry_point = rd32(data, oh + 16)?;
        let image_base = rd64(data, oh + 24)?;
        let section_alignment = rd32(data, oh + 32)?;
        let size_of_image = rd32(data, oh + 56)?;
        let size_of_headers = rd32(data, oh + 60)?;
        let subsystem = rd16(data, oh + 68)?;
        let dll_characteristics = rd16(data, oh + 70)?;
        let ndirs = (rd32(data, oh + 108)? as usize).min(16);
        if 112 + ndirs * 8 > opt_size {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let mut directories = Vec::with_capacity(ndirs);
        for i in 0..ndirs {
            directories.push(DataDirectory {
                virtual_address: rd32(data, oh + 112 + i * 8)?,
                size: rd32(data, oh + 116 + i * 8)?,
            });
        }
        if section_alignment == 0 || size_of_image == 0 || size_of_image > 1 << 30 {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let sh = oh + opt_size;
        let mut sections = Vec::with_capacity(nsections);
        for i in 0..nsections {
            let s = sh + i * 40;
            let mut name = [0u8; 8];
            name.copy_from_slice(data.get(s..s + 8).ok_or(STATUS_INVALID_IMAGE_FORMAT)?);
            let sec = Section {
                name,
                virtual_size: rd32(data, s + 8)?,
                virtual_address: rd32(data, s + 12)?,
                size_of_raw_data: rd32(data, s + 16)?,
                pointer_to_raw_data: rd32(data, s + 20)?,
                characteristics: rd32(data, s + 36)?,
            };
            let mem_end =
                sec.virtual_address as u64 + sec.virtual_size.max(sec.size_of_raw_data) as u64;
            let raw_end = sec.pointer_to_raw_data as u64 + sec.size_of_raw_data as u64;
            if mem_end > size_of_image as u64 + section_alignment as u64
                || (sec.size_of_raw_data != 0 && raw_end > data.len() as u64)
            {
                return Err(STATUS_INVALID_IMAGE_FORMAT);
            }
            sections.push(sec);
        }
        if size_of_headers as usize > data.len() || size_of_headers > size_of_image {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        Ok(PeFile {
            data,
            machine,
            characteristics,
            image_base,
            address_of_entry_point,
            size_of_image,
            size_of_headers,
            section_alignment,
            subsystem,
            dll_characteristics,
            directories,
            sections,
        })
    }

    pub fn directory(&self, index: usize) -> DataDirectory {
        self.directories.get(index).copied().unwrap_or_default()
    }

    /// Copies headers and sections into `image` (the memory layout,
    /// `size_of_image` bytes), zero-filling the rest. This is what
    /// `MiMapViewOfImageSection` does for a fresh image.
    pub fn map_into(&self, image: &mut [u8]) -> Result<(), NtStatus> {
        if image.len() < self.size_of_image as usize {
            return Err(STATUS_BUFFER_TOO_SMALL);
        }
        image.fill(0);
        let h = self.size_of_headers as usize;
        image[..h].copy_from_slice(&self.data[..h]);
        for s in &self.sections {
            let n = s
                .size_of_raw_data
                .min(s.virtual_size.max(s.size_of_raw_data)) as usize;
            let src = self
                .data
                .get(s.pointer_to_raw_data as usize..s.pointer_to_raw_data as usize + n)
                .ok_or(STATUS_INVALID_IMAGE_FORMAT)?;
            let va = s.virtual_address as usize;
            let n = n.min(image.len().saturating_sub(va));
            image
                .get_mut(va..va + n)
                .ok_or(STATUS_INVALID_IMAGE_FORMAT)?
                .copy_from_slice(&src[..n]);
        }
        Ok(())
    }

    /// The W^X protection of every 4 KiB page of the image as the kernel
    /// maps a system image (`MiSetSystemCodeProtection`-like): headers and
    /// pages no section covers are read-only; a section's pages take its
    /// characteristics (execute -> ReadExecute, write -> ReadWrite, else
    /// ReadOnly; discardable -> Discard). A page two sections share keeps
    /// the stronger need (a kept section beats a discardable one, write or
    /// execute beats read-only); a section that is both writable and
    /// executable, or a page shared by code and writable data, is
    /// `STATUS_INVALID_IMAGE_PROTECT` (ntrs loads no W+X kernel pages).
    pub fn kernel_page_protections(&self) -> Result<Vec<PageProtection>, NtStatus> {
        let pages = self.size_of_image.div_ceil(PAGE_SIZE) as usize;
        let mut out = alloc::vec![None::<PageProtection>; pages];
        for s in &self.sections {
            let c = s.characteristics;
            let w = c & IMAGE_SCN_MEM_WRITE != 0;
            let x = c & IMAGE_SCN_MEM_EXECUTE != 0;
            if w && x {
                return Err(STATUS_INVALID_IMAGE_PROTECT);
            }
            let prot = if c & IMAGE_SCN_MEM_DISCARDABLE != 0 {
                PageProtection::Discard
            } else if x {
                PageProtection::ReadExecute
            } else if w {
                PageProtection::ReadWrite
            } else {
                PageProtection::ReadOnly
            };
            let size = s.virtual_size.max(s.size_of_raw_data) as u64;
            if size == 0 {
                continue;
            }
            let start = s.virtual_address as u64;
            let end = start + size;
            if end > self.size_of_image as u64 || start < self.size_of_headers as u64 {
                return Err(STATUS_INVALID_IMAGE_FORMAT);
            }
            let first = (start / PAGE_SIZE as u64) as usize;
            let last = end.div_ceil(PAGE_SIZE as u64) as usize;
            for slot in &mut out[first..last] {
                *slot = Some(match (*slot, prot) {
                    (None, p) | (Some(PageProtection::Discard), p) => p,
                    (Some(old), PageProtection::Discard) => old,
                    (Some(old), p) if old == p => p,
                    (Some(PageProtection::ReadOnly), p) | (Some(p), PageProtection::ReadOnly) => p,
                    // ReadWrite with ReadExecute in one page.
                    _ => return Err(STATUS_INVALID_IMAGE_PROTECT),
                });
            }
        }
        // SizeOfImage ends where the last section (or the headers) ends,
        // rounded to the section alignment: a larger one only asks for
        // memory no section uses.
        let align = self.section_alignment.max(1) as u64;
        let end = self
            .sections
            .iter()
            .map(|s| s.virtual_address as u64 + s.virtual_size.max(s.size_of_raw_data) as u64)
            .chain([self.size_of_headers as u64])
            .max()
            .unwrap_or(0);
        if self.size_of_image as u64 > end.div_ceil(align) * align {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        Ok(out
            .into_iter()
            .map(|p| p.unwrap_or(PageProtection::ReadOnly))
            .collect())
    }

    /// Maps the image and rebases it to `new_base` (`LdrRelocateImage`).
    pub fn load(&self, image: &mut [u8], new_base: u64) -> Result<(), NtStatus> {
        self.map_into(image)?;
        relocate(
            image,
            self.directory(IMAGE_DIRECTORY_ENTRY_BASERELOC),
            self.image_base,
            new_base,
        )
    }
}

/// A data directory of an image already mapped in memory (headers at
/// offset 0, everything at its RVA): what the kernel reads from its own
/// image (`RtlImageDirectoryEntryToData` with `MappedAsImage`).
pub fn mapped_directory(image: &[u8], index: usize) -> Result<DataDirectory, NtStatus> {
    if rd16(image, 0)? != IMAGE_DOS_SIGNATURE {
        return Err(STATUS_INVALID_IMAGE_NOT_MZ);
    }
    let nt = rd32(image, 0x3C)? as usize;
    if rd32(image, nt)? != IMAGE_NT_SIGNATURE {
        return Err(STATUS_INVALID_IMAGE_FORMAT);
    }
    let oh = nt + 24;
    if rd16(image, oh)? != IMAGE_NT_OPTIONAL_HDR64_MAGIC {
        return Err(STATUS_INVALID_IMAGE_FORMAT);
    }
    if index >= (rd32(image, oh + 108)? as usize).min(16) {
        return Ok(DataDirectory::default());
    }
    let d = DataDirectory {
        virtual_address: rd32(image, oh + 112 + index * 8)?,
        size: rd32(image, oh + 116 + index * 8)?,
    };
    if d.virtual_address as u64 + d.size as u64 > image.len() as u64 {
        return Err(STATUS_INVALID_IMAGE_FORMAT);
    }
    Ok(d)
}

/// Applies base relocations (`LdrProcessRelocationBlock`) to a mapped image.
pub fn relocate(
    image: &mut [u8],
    dir: DataDirectory,
    old_base: u64,
    new_base: u64,
) -> Result<(), NtStatus> {
    let delta = new_base.wrapping_sub(old_base);
    if delta == 0 || dir.size == 0 {
        return Ok(());
    }
    let mut off = dir.virtual_address as usize;
    let end = off
        .checked_add(dir.size as usize)
        .filter(|&e| e <= image.len())
        .ok_or(STATUS_INVALID_IMAGE_FORMAT)?;
    while off + 8 <= end {
        let page = rd32(image, off)? as usize;
        let block = rd32(image, off + 4)? as usize;
        if block < 8 || off + block > end {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        for i in 0..(block - 8) / 2 {
            let e = rd16(image, off + 8 + i * 2)?;
            let target = page + (e & 0xFFF) as usize;
            match e >> 12 {
                IMAGE_REL_BASED_ABSOLUTE => {}
                IMAGE_REL_BASED_DIR64 => {
                    let v = rd64(image, target)?.wrapping_add(delta);
                    image[target..target + 8].copy_from_slice(&v.to_le_bytes());
                }
                _ => return Err(STATUS_INVALID_IMAGE_FORMAT),
            }
        }
        off += block;
    }
    Ok(())
}

fn cstr(image: &[u8], rva: usize) -> Result<&[u8], NtStatus> {
    let tail = image.get(rva..).ok_or(STATUS_INVALID_IMAGE_FORMAT)?;
    let n = tail
        .iter()
        .position(|&c| c == 0)
        .ok_or(STATUS_INVALID_IMAGE_FORMAT)?;
    Ok(&tail[..n])
}

/// What a forwarder names after its module: an export name
/// (`NTDLL.RtlAcquireSRWLockExclusive`) or an ordinal (`MSVCRT.#12`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardedTo<'a> {
    Name(&'a [u8]),
    Ordinal(u16),
}

/// A forwarder: an export whose address table entry points inside the
/// export directory, at the text `DLL.Name` or `DLL.#ordinal` (PE format,
/// "Export Address Table"). The module is everything before the last dot;
/// the loader appends `.dll` to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarder<'a> {
    /// The whole string, as stored.
    pub text: &'a [u8],
    /// The module part (`NTDLL`).
    pub dll: &'a [u8],
    pub target: ForwardedTo<'a>,
}

impl<'a> Forwarder<'a> {
    /// Splits `DLL.Name` / `DLL.#ordinal`; an empty module or name, or an
    /// ordinal that is not a decimal number below 65,536, is
    /// `STATUS_INVALID_IMAGE_FORMAT`.
    pub fn parse(text: &'a [u8]) -> Result<Self, NtStatus> {
        let dot = text
            .iter()
            .rposition(|&c| c == b'.')
            .ok_or(STATUS_INVALID_IMAGE_FORMAT)?;
        let (dll, what) = (&text[..dot], &text[dot + 1..]);
        if dll.is_empty() || what.is_empty() {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let target = match what.strip_prefix(b"#") {
            Some(digits) => {
                if digits.is_empty() || digits.len() > 5 {
                    return Err(STATUS_INVALID_IMAGE_FORMAT);
                }
                let mut v = 0u32;
                for &c in digits {
                    if !c.is_ascii_digit() {
                        return Err(STATUS_INVALID_IMAGE_FORMAT);
                    }
                    v = v * 10 + (c - b'0') as u32;
                }
                ForwardedTo::Ordinal(u16::try_from(v).map_err(|_| STATUS_INVALID_IMAGE_FORMAT)?)
            }
            None => ForwardedTo::Name(what),
        };
        Ok(Forwarder { text, dll, target })
    }
}

/// Where an export leads: code (or data) at an RVA of the exporting image,
/// or a forwarder the loader must resolve in another module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportTarget<'a> {
    Code(u32),
    Forwarder(Forwarder<'a>),
}

/// The export directory of a mapped image (`IMAGE_EXPORT_DIRECTORY`), with
/// its three tables checked to lie inside the image: lookups by name and by
/// ordinal read the tables in place and allocate nothing (what
/// `LdrGetProcedureAddress` needs before a heap exists).
///
/// Ordinals are 16-bit (an import by ordinal carries `IMAGE_ORDINAL64`, the
/// low 16 bits), so a table whose ordinals `Base .. Base + NumberOfFunctions`
/// do not fit in 0..=65535 (an ordinal base of 0xFFFFFFFF, say) is
/// `STATUS_INVALID_IMAGE_FORMAT` rather than wrapping.
#[derive(Clone, Copy, Debug)]
pub struct ExportTable<'a> {
    image: &'a [u8],
    dir: DataDirectory,
    /// The module name the directory records (`KERNEL32.dll`), empty if none.
    pub name: &'a [u8],
    pub ordinal_base: u32,
    pub number_of_functions: u32,
    pub number_of_names: u32,
    functions: usize,
    names: usize,
    name_ordinals: usize,
}

impl<'a> ExportTable<'a> {
    /// Reads the directory `dir` of the mapped `image`. An empty directory is
    /// a table with no exports.
    pub fn parse(image: &'a [u8], dir: DataDirectory) -> Result<Self, NtStatus> {
        let mut t = ExportTable {
            image,
            dir,
            name: &[],
            ordinal_base: 0,
            number_of_functions: 0,
            number_of_names: 0,
            functions: 0,
            names: 0,
            name_ordinals: 0,
        };
        if dir.size == 0 {
            return Ok(t);
        }
        let d = dir.virtual_address as usize;
        if (d as u64) + (dir.size as u64) > image.len() as u64 || dir.size < 40 {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let name_rva = rd32(image, d + 12)? as usize;
        t.name = if name_rva == 0 {
            &[]
        } else {
            cstr(image, name_rva)?
        };
        t.ordinal_base = rd32(image, d + 16)?;
        t.number_of_functions = rd32(image, d + 20)?;
        t.number_of_names = rd32(image, d + 24)?;
        t.functions = rd32(image, d + 28)? as usize;
        t.names = rd32(image, d + 32)? as usize;
        t.name_ordinals = rd32(image, d + 36)? as usize;
        let nf = t.number_of_functions as u64;
        let nn = t.number_of_names as u64;
        if t.ordinal_base as u64 + nf > 0x1_0000 || (nf == 0 && t.ordinal_base > 0xFFFF) {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let len = image.len() as u64;
        if t.functions as u64 + nf * 4 > len
            || t.names as u64 + nn * 4 > len
            || t.name_ordinals as u64 + nn * 2 > len
        {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        Ok(t)
    }

    /// Whether `rva` lies inside the export directory (a forwarder string).
    fn in_directory(&self, rva: u32) -> bool {
        rva >= self.dir.virtual_address
            && (rva as u64) < self.dir.virtual_address as u64 + self.dir.size as u64
    }

    /// The raw address table entry of function `index` (0 for an unused slot).
    pub fn function_rva(&self, index: u32) -> Result<u32, NtStatus> {
        if index >= self.number_of_functions {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        rd32(self.image, self.functions + index as usize * 4)
    }

    /// Where function `index` leads. An unused slot (RVA 0) is
    /// `STATUS_ENTRYPOINT_NOT_FOUND`; an RVA outside the image, or a
    /// malformed forwarder, `STATUS_INVALID_IMAGE_FORMAT`.
    pub fn target(&self, index: u32) -> Result<ExportTarget<'a>, NtStatus> {
        let rva = self.function_rva(index)?;
        if rva == 0 {
            return Err(STATUS_ENTRYPOINT_NOT_FOUND);
        }
        if self.in_directory(rva) {
            return Ok(ExportTarget::Forwarder(Forwarder::parse(cstr(
                self.image,
                rva as usize,
            )?)?));
        }
        if rva as usize >= self.image.len() {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        Ok(ExportTarget::Code(rva))
    }

    /// Name table entry `hint`: the name and the function index it names.
    pub fn name(&self, hint: u32) -> Result<(&'a [u8], u32), NtStatus> {
        if hint >= self.number_of_names {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let p = rd32(self.image, self.names + hint as usize * 4)? as usize;
        let index = rd16(self.image, self.name_ordinals + hint as usize * 2)? as u32;
        if index >= self.number_of_functions {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        Ok((cstr(self.image, p)?, index))
    }

    /// The function index of export `name` (`LdrpNameToOrdinal`): the name
    /// table entry `hint` first (the import's hint), then a binary search,
    /// the name table being sorted in byte order as the PE format requires
    /// (an unsorted table may not find a name, as on Windows). A missing
    /// name is `STATUS_ENTRYPOINT_NOT_FOUND`.
    pub fn index_of_name(&self, name: &[u8], hint: u16) -> Result<u32, NtStatus> {
        if (hint as u32) < self.number_of_names {
            let (n, i) = self.name(hint as u32)?;
            if n == name {
                return Ok(i);
            }
        }
        let (mut lo, mut hi) = (0u32, self.number_of_names);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (n, i) = self.name(mid)?;
            match n.cmp(name) {
                core::cmp::Ordering::Equal => return Ok(i),
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
            }
        }
        Err(STATUS_ENTRYPOINT_NOT_FOUND)
    }

    /// Export `name` (hint as in [`ExportTable::index_of_name`]).
    pub fn by_name(&self, name: &[u8], hint: u16) -> Result<ExportTarget<'a>, NtStatus> {
        self.target(self.index_of_name(name, hint)?)
    }

    /// Export `ordinal` (the biased ordinal an import by ordinal names); one
    /// outside the table is `STATUS_ORDINAL_NOT_FOUND`.
    pub fn by_ordinal(&self, ordinal: u32) -> Result<ExportTarget<'a>, NtStatus> {
        let index = ordinal
            .checked_sub(self.ordinal_base)
            .filter(|&i| i < self.number_of_functions)
            .ok_or(STATUS_ORDINAL_NOT_FOUND)?;
        self.target(index).map_err(|s| {
            if s == STATUS_ENTRYPOINT_NOT_FOUND {
                STATUS_ORDINAL_NOT_FOUND
            } else {
                s
            }
        })
    }
}

/// One export of a mapped image: one address table entry, with every name
/// the name table gives it (a function may have several, or none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export<'a> {
    /// Its names, in name table order.
    pub names: Vec<&'a [u8]>,
    pub ordinal: u32,
    /// The raw address table entry (0: unused slot).
    pub rva: u32,
    /// Set when `rva` points inside the export directory: the entry is the
    /// forwarder string there, not code.
    pub forwarder: Option<Forwarder<'a>>,
}

impl<'a> Export<'a> {
    /// Whether `name` is one of this export's names.
    pub fn has_name(&self, name: &[u8]) -> bool {
        self.names.contains(&name)
    }

    /// Where this export leads (`None` for an unused slot).
    pub fn target(&self) -> Option<ExportTarget<'a>> {
        match (self.forwarder, self.rva) {
            (Some(f), _) => Some(ExportTarget::Forwarder(f)),
            (None, 0) => None,
            (None, rva) => Some(ExportTarget::Code(rva)),
        }
    }
}

/// Lists the export directory of a mapped image (`IMAGE_EXPORT_DIRECTORY`).
pub fn exports(image: &[u8], dir: DataDirectory) -> Result<Vec<Export<'_>>, NtStatus> {
    let t = ExportTable::parse(image, dir)?;
    let mut out = Vec::with_capacity(t.number_of_functions as usize);
    for i in 0..t.number_of_functions {
        let rva = t.function_rva(i)?;
        let forwarder = match t.target(i) {
            Ok(ExportTarget::Forwarder(f)) => Some(f),
            Ok(ExportTarget::Code(_)) => None,
            Err(s) if s == STATUS_ENTRYPOINT_NOT_FOUND => None,
            Err(s) => return Err(s),
        };
        out.push(Export {
            names: Vec::new(),
            ordinal: t.ordinal_base + i,
            rva,
            forwarder,
        });
    }
    for h in 0..t.number_of_names {
        let (name, index) = t.name(h)?;
        out[index as usize].names.push(name);
    }
    Ok(out)
}

/// Finds an export by name (`LdrGetProcedureAddress` /
/// `MmGetSystemRoutineAddress`): its code RVA, or the forwarder the caller
/// must follow into another module.
pub fn find_export<'a>(
    image: &'a [u8],
    dir: DataDirectory,
    name: &[u8],
) -> Result<ExportTarget<'a>, NtStatus> {
    ExportTable::parse(image, dir)?.by_name(name, 0)
}

/// Resolves a driver's import against the export list of the module it
/// names, with the kernel loader's statuses (`MiSnapThunk`): a missing name
/// is `STATUS_DRIVER_ENTRYPOINT_NOT_FOUND`, a missing ordinal
/// `STATUS_DRIVER_ORDINAL_NOT_FOUND`. A forwarder is not followed by the
/// kernel loader (`STATUS_DRIVER_ENTRYPOINT_NOT_FOUND`; ntoskrnl has none).
/// `dir` is the exporter's export directory (kept for callers; forwarders
/// are already marked in `exports`). Returns the export's RVA.
pub fn resolve_import(
    exports: &[Export<'_>],
    _dir: DataDirectory,
    import: &Import<'_>,
) -> Result<u32, NtStatus> {
    let (found, missing) = match import.name {
        Some(n) => (
            exports.iter().find(|e| e.has_name(n)),
            STATUS_DRIVER_ENTRYPOINT_NOT_FOUND,
        ),
        None => (
            exports.iter().find(|e| e.ordinal == import.ordinal as u32),
            STATUS_DRIVER_ORDINAL_NOT_FOUND,
        ),
    };
    match found.and_then(|e| e.target()) {
        Some(ExportTarget::Code(rva)) => Ok(rva),
        Some(ExportTarget::Forwarder(_)) => Err(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND),
        None => Err(missing),
    }
}

/// One imported symbol: which DLL, by name or ordinal, and the IAT slot to fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import<'a> {
    pub dll: &'a [u8],
    pub name: Option<&'a [u8]>,
    /// By name: the hint (the name's index in the exporter's name table);
    /// by ordinal: the ordinal.
    pub ordinal: u16,
    pub iat_rva: u32,
}

/// Most functions one import directory may list (descriptors can share one
/// lookup table, so the file size alone does not bound it).
const MAX_IMPORTS: usize = 1 << 20;

/// Walks one import lookup table (`lookup`) whose address table is at `iat`.
fn thunks<'a>(
    image: &'a [u8],
    dll: &'a [u8],
    lookup: usize,
    iat: usize,
    out: &mut Vec<Import<'a>>,
) -> Result<(), NtStatus> {
    for i in 0.. {
        let e = rd64(image, lookup + i * 8)?;
        if e == 0 {
            return Ok(());
        }
        if i > 65536 || out.len() >= MAX_IMPORTS {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let iat_rva = u32::try_from(iat + i * 8).map_err(|_| STATUS_INVALID_IMAGE_FORMAT)?;
        if e & (1 << 63) != 0 {
            out.push(Import {
                dll,
                name: None,
                ordinal: e as u16,
                iat_rva,
            });
        } else {
            let hint_name = (e & 0x7FFF_FFFF) as usize;
            out.push(Import {
                dll,
                name: Some(cstr(image, hint_name + 2)?),
                ordinal: rd16(image, hint_name)?,
                iat_rva,
            });
        }
    }
    Ok(())
}

/// Lists the imports of a mapped image (`IMAGE_IMPORT_DESCRIPTOR` chain).
pub fn imports(image: &[u8], dir: DataDirectory) -> Result<Vec<Import<'_>>, NtStatus> {
    let mut out = Vec::new();
    if dir.size == 0 {
        return Ok(out);
    }
    let mut d = dir.virtual_address as usize;
    loop {
        let ilt = rd32(image, d)? as usize;
        let name = rd32(image, d + 12)? as usize;
        let iat = rd32(image, d + 16)? as usize;
        if name == 0 && iat == 0 {
            break;
        }
        let dll = cstr(image, name)?;
        let lookup = if ilt != 0 { ilt } else { iat };
        thunks(image, dll, lookup, iat, &mut out)?;
        d += 20;
    }
    Ok(out)
}

/// `IMAGE_DELAYLOAD_DESCRIPTOR`: one delay-loaded DLL and its functions.
/// The image's own helper (`__delayLoadHelper2`, through
/// `LdrResolveDelayLoadedAPI`) loads the DLL and fills an IAT slot on the
/// first call through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayImport<'a> {
    /// The descriptor's RVA.
    pub descriptor_rva: u32,
    pub attributes: u32,
    pub dll: &'a [u8],
    /// Where the helper stores the loaded module's handle.
    pub module_handle_rva: u32,
    pub iat_rva: u32,
    pub name_table_rva: u32,
    pub bound_iat_rva: u32,
    pub unload_iat_rva: u32,
    pub time_date_stamp: u32,
    /// The functions, each with its slot in the delay IAT.
    pub functions: Vec<Import<'a>>,
}

/// `dlattrRva`: the descriptor's addresses are RVAs. Without it they are
/// Visual C++ 6 VAs, which no x64 linker writes.
pub const DELAYLOAD_RVA_BASED: u32 = 1;
pub const IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT: usize = 13;

/// Lists the delay-load import directory of a mapped image
/// (`IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT`): descriptors of 32 bytes up to one
/// whose DLL name is 0. A descriptor in the old VA form is
/// `STATUS_INVALID_IMAGE_FORMAT` (x64 images always use RVAs).
pub fn delay_imports(image: &[u8], dir: DataDirectory) -> Result<Vec<DelayImport<'_>>, NtStatus> {
    let mut out: Vec<DelayImport<'_>> = Vec::new();
    if dir.size == 0 {
        return Ok(out);
    }
    let mut total = 0usize;
    let mut d = dir.virtual_address as usize;
    loop {
        let r = |o: usize| rd32(image, d + o);
        let attributes = r(0)?;
        let name = r(4)?;
        if name == 0 {
            break;
        }
        if attributes & DELAYLOAD_RVA_BASED == 0 {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let dll = cstr(image, name as usize)?;
        let iat_rva = r(12)?;
        let name_table_rva = r(16)?;
        let mut functions = Vec::new();
        if name_table_rva != 0 {
            thunks(
                image,
                dll,
                name_table_rva as usize,
                iat_rva as usize,
                &mut functions,
            )?;
        }
        total += functions.len();
        if total > MAX_IMPORTS {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        out.push(DelayImport {
            descriptor_rva: d as u32,
            attributes,
            dll,
            module_handle_rva: r(8)?,
            iat_rva,
            name_table_rva,
            bound_iat_rva: r(20)?,
            unload_iat_rva: r(24)?,
            time_date_stamp: r(28)?,
            functions,
        });
        d += 32;
    }
    Ok(out)
}

/// Fills every IAT slot with `resolve(import)` (`MiSnapThunk`).
pub fn bind_imports(
    image: &mut [u8],
    dir: DataDirectory,
    mut resolve: impl FnMut(&Import<'_>) -> Result<u64, NtStatus>,
) -> Result<(), NtStatus> {
    let list: Vec<(u32, u64)> = {
        let imps = imports(image, dir)?;
        let mut v = Vec::with_capacity(imps.len());
        for i in &imps {
            v.push((i.iat_rva, resolve(i)?));
        }
        v
    };
    for (rva, addr) in list {
        let r = rva as usize;
        image
            .get_mut(r..r + 8)
            .ok_or(STATUS_INVALID_IMAGE_FORMAT)?
            .copy_from_slice(&addr.to_le_bytes());
    }
    Ok(())
}

/// Runs every parser over `data` (the fuzz target and the corpus replay test
/// share this): parse, map, relocate to a kernel address, list exports and
/// imports. Errors are fine; panics are bugs.
pub fn fuzz_one(data: &[u8]) {
    let Ok(pe) = PeFile::parse(data) else { return };
    if pe.size_of_image > 16 << 20 {
        return;
    }
    let mut image = alloc::vec![0u8; pe.size_of_image as usize];
    if pe.load(&mut image, 0xFFFF_F800_0040_0000).is_err() {
        return;
    }
    let _ = pe.kernel_page_protections();
    let _ = mapped_directory(&image, IMAGE_DIRECTORY_ENTRY_EXPORT);
    let exp_dir = pe.directory(IMAGE_DIRECTORY_ENTRY_EXPORT);
    let _ = delay_imports(&image, pe.directory(IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT));
    // The exporter is a copy: binding writes the image being bound.
    let exporter = image.clone();
    let own = exports(&exporter, exp_dir).unwrap_or_default();
    if let Ok(t) = ExportTable::parse(&exporter, exp_dir) {
        for e in &own {
            let _ = t.by_ordinal(e.ordinal);
            for n in &e.names {
                let _ = t.by_name(n, 0);
            }
        }
    }
    let _ = bind_imports(
        &mut image,
        pe.directory(IMAGE_DIRECTORY_ENTRY_IMPORT),
        |i| resolve_import(&own, exp_dir, i).map(u64::from),
    );
}

#[cfg(test)]
mod tests;
