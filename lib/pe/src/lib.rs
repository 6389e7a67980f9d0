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

/// One export of a mapped image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export<'a> {
    pub name: Option<&'a [u8]>,
    pub ordinal: u32,
    pub rva: u32,
}

/// Lists the export directory of a mapped image (`IMAGE_EXPORT_DIRECTORY`).
pub fn exports(image: &[u8], dir: DataDirectory) -> Result<Vec<Export<'_>>, NtStatus> {
    if dir.size == 0 {
        return Ok(Vec::new());
    }
    let d = dir.virtual_address as usize;
    let base = rd32(image, d + 16)?;
    let nfuncs = rd32(image, d + 20)? as usize;
    let nnames = rd32(image, d + 24)? as usize;
    let funcs = rd32(image, d + 28)? as usize;
    let names = rd32(image, d + 32)? as usize;
    let ords = rd32(image, d + 36)? as usize;
    if nfuncs > 65536 || nnames > nfuncs {
        return Err(STATUS_INVALID_IMAGE_FORMAT);
    }
    let mut out = Vec::with_capacity(nfuncs);
    for i in 0..nfuncs {
        out.push(Export {
            name: None,
            ordinal: base + i as u32,
            rva: rd32(image, funcs + i * 4)?,
        });
    }
    for i in 0..nnames {
        let name = cstr(image, rd32(image, names + i * 4)? as usize)?;
        let idx = rd16(image, ords + i * 2)? as usize;
        out.get_mut(idx).ok_or(STATUS_INVALID_IMAGE_FORMAT)?.name = Some(name);
    }
    Ok(out)
}

/// Finds an export by name (`LdrGetProcedureAddress` / `MmGetSystemRoutineAddress`).
pub fn find_export(image: &[u8], dir: DataDirectory, name: &[u8]) -> Result<u32, NtStatus> {
    exports(image, dir)?
        .into_iter()
        .find(|e| e.name == Some(name))
        .map(|e| e.rva)
        .ok_or(STATUS_ENTRYPOINT_NOT_FOUND)
}

/// Resolves a driver's import against the export list of the module it
/// names, with the kernel loader's statuses (`MiSnapThunk`): a missing name
/// is `STATUS_DRIVER_ENTRYPOINT_NOT_FOUND`, a missing ordinal
/// `STATUS_DRIVER_ORDINAL_NOT_FOUND`. `dir` is the exporter's export
/// directory: an export whose RVA falls inside it is a forwarder, which
/// ntrs does not follow (`STATUS_DRIVER_ENTRYPOINT_NOT_FOUND`; ntoskrnl has
/// none). Returns the export's RVA.
pub fn resolve_import(
    exports: &[Export<'_>],
    dir: DataDirectory,
    import: &Import<'_>,
) -> Result<u32, NtStatus> {
    let (found, missing) = match import.name {
        Some(n) => (
            exports.iter().find(|e| e.name == Some(n)),
            STATUS_DRIVER_ENTRYPOINT_NOT_FOUND,
        ),
        None => (
            exports.iter().find(|e| e.ordinal == import.ordinal as u32),
            STATUS_DRIVER_ORDINAL_NOT_FOUND,
        ),
    };
    let rva = found.map(|e| e.rva).filter(|&r| r != 0).ok_or(missing)?;
    let forwarder =
        rva >= dir.virtual_address && (rva as u64) < dir.virtual_address as u64 + dir.size as u64;
    if forwarder {
        return Err(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND);
    }
    Ok(rva)
}

/// One imported symbol: which DLL, by name or ordinal, and the IAT slot to fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import<'a> {
    pub dll: &'a [u8],
    pub name: Option<&'a [u8]>,
    pub ordinal: u16,
    pub iat_rva: u32,
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
        for i in 0.. {
            let e = rd64(image, lookup + i * 8)?;
            if e == 0 {
                break;
            }
            if i > 65536 {
                return Err(STATUS_INVALID_IMAGE_FORMAT);
            }
            let iat_rva = (iat + i * 8) as u32;
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
                    ordinal: 0,
                    iat_rva,
                });
            }
        }
        d += 20;
        if out.len() > 1 << 20 {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
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
    let own: Vec<(Option<Vec<u8>>, u32, u32)> = match exports(&image, exp_dir) {
        Ok(ex) => ex
            .iter()
            .map(|e| (e.name.map(|n| n.to_vec()), e.ordinal, e.rva))
            .collect(),
        Err(_) => Vec::new(),
    };
    let own: Vec<Export<'_>> = own
        .iter()
        .map(|(n, o, r)| Export {
            name: n.as_deref(),
            ordinal: *o,
            rva: *r,
        })
        .collect();
    let _ = bind_imports(
        &mut image,
        pe.directory(IMAGE_DIRECTORY_ENTRY_IMPORT),
        |i| resolve_import(&own, exp_dir, i).map(u64::from),
    );
}

#[cfg(test)]
mod tests;
