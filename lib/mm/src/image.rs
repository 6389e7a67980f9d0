//! Image sections (`SEC_IMAGE`): the layout of a PE image's control area
//! (*Windows Internals* 7th ed., Part 1, ch. 5, "Section objects": an image
//! section's control area has one subsection per PE section plus one for
//! the headers, each with its own protection; "Copy-on-write").
//!
//! [`ImageLayout::from_headers`] validates the headers of a PE file (read
//! by the kernel with a paging read) the way `MiCreateImageFileMap` does and
//! builds the subsections; [`ImageLayout::page_source`] says where each
//! page of the mapped image comes from (file offset and byte count, the
//! rest of the page zero: the tail of a section and `.bss` are zero-fill),
//! and [`ImageLayout::protection_runs`] gives the view's per-page
//! protection. [`SectionImageInformation`] is `SECTION_IMAGE_INFORMATION`
//! as `NtQuerySection(SectionImageInformation)` returns it.
//!
//! Protection per subsection, as NT maps a user image: headers
//! `PAGE_READONLY`; code (`IMAGE_SCN_MEM_EXECUTE`) `PAGE_EXECUTE_READ`, or
//! `PAGE_EXECUTE_WRITECOPY` when also writable; writable data
//! `PAGE_WRITECOPY` (a write makes a private copy; the section's page is
//! never written back to the image file); other readable sections
//! `PAGE_READONLY`; a section with none of read/write/execute
//! `PAGE_NOACCESS`. An image whose `SectionAlignment` is below the page
//! size must have `FileAlignment == SectionAlignment` and is mapped flat:
//! one subsection, every page `PAGE_EXECUTE_WRITECOPY`, page n from file
//! offset n * 4096 (NT does the same for such images).

use alloc::vec::Vec;

use nt::status::*;
use nt::NtStatus;

use crate::*;

/// `IMAGE_SCN_MEM_EXECUTE`.
pub const IMAGE_SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// `IMAGE_SCN_MEM_READ`.
pub const IMAGE_SCN_MEM_READ: u32 = 0x4000_0000;
/// `IMAGE_SCN_MEM_WRITE`.
pub const IMAGE_SCN_MEM_WRITE: u32 = 0x8000_0000;
/// `IMAGE_SCN_CNT_CODE`.
pub const IMAGE_SCN_CNT_CODE: u32 = 0x0000_0020;
/// `IMAGE_FILE_RELOCS_STRIPPED`.
pub const IMAGE_FILE_RELOCS_STRIPPED: u16 = 0x0001;
/// `IMAGE_FILE_MACHINE_AMD64`.
pub const IMAGE_FILE_MACHINE_AMD64: u16 = 0x8664;
/// Largest header area read to validate an image (NT reads the first
/// page; ntrs accepts section tables up to this).
pub const MAX_HEADER_BYTES: u64 = 0x10000;
/// Largest `SizeOfImage` accepted (as `pe::PeFile::parse`).
pub const MAX_IMAGE_SIZE: u64 = 1 << 30;

/// One subsection of an image control area (`SUBSECTION`): a run of image
/// pages backed by one range of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subsection {
    /// The PE section's name (`.text`, ...); the headers' subsection has
    /// an empty name.
    pub name: [u8; 8],
    /// First image page (RVA / 4096).
    pub first_page: u64,
    /// Pages mapped (`PtesInSubsection`).
    pub pages: u64,
    /// File offset of the first page's data (`StartingSector` * 512: NT
    /// rounds `PointerToRawData` down to 512 bytes).
    pub file_offset: u64,
    /// Bytes of the file the subsection maps (`SizeOfRawData`, clipped to
    /// the mapped size); the rest is zero-fill.
    pub file_bytes: u64,
    /// The pages' protection (`PAGE_*`).
    pub protect: u32,
}

impl Subsection {
    /// The section name as text.
    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(8);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

/// `SECTION_IMAGE_INFORMATION` (x64, 0x40 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SectionImageInformation {
    pub transfer_address: u64,
    pub zero_bits: u32,
    pub maximum_stack_size: u64,
    pub committed_stack_size: u64,
    pub sub_system_type: u32,
    pub sub_system_minor_version: u16,
    pub sub_system_major_version: u16,
    pub major_operating_system_version: u16,
    pub minor_operating_system_version: u16,
    pub image_characteristics: u16,
    pub dll_characteristics: u16,
    pub machine: u16,
    pub image_contains_code: bool,
    pub image_flags: u8,
    pub loader_flags: u32,
    pub image_file_size: u32,
    pub check_sum: u32,
}

/// `sizeof(SECTION_IMAGE_INFORMATION)` on x64.
pub const SECTION_IMAGE_INFORMATION_SIZE: usize = 0x40;

impl SectionImageInformation {
    /// The structure's bytes as user mode sees them.
    pub fn to_bytes(&self) -> [u8; SECTION_IMAGE_INFORMATION_SIZE] {
        let mut b = [0u8; SECTION_IMAGE_INFORMATION_SIZE];
        b[0..8].copy_from_slice(&self.transfer_address.to_le_bytes());
        b[8..12].copy_from_slice(&self.zero_bits.to_le_bytes());
        b[0x10..0x18].copy_from_slice(&self.maximum_stack_size.to_le_bytes());
        b[0x18..0x20].copy_from_slice(&self.committed_stack_size.to_le_bytes());
        b[0x20..0x24].copy_from_slice(&self.sub_system_type.to_le_bytes());
        b[0x24..0x26].copy_from_slice(&self.sub_system_minor_version.to_le_bytes());
        b[0x26..0x28].copy_from_slice(&self.sub_system_major_version.to_le_bytes());
        b[0x28..0x2A].copy_from_slice(&self.major_operating_system_version.to_le_bytes());
        b[0x2A..0x2C].copy_from_slice(&self.minor_operating_system_version.to_le_bytes());
        b[0x2C..0x2E].copy_from_slice(&self.image_characteristics.to_le_bytes());
        b[0x2E..0x30].copy_from_slice(&self.dll_characteristics.to_le_bytes());
        b[0x30..0x32].copy_from_slice(&self.machine.to_le_bytes());
        b[0x32] = self.image_contains_code as u8;
        b[0x33] = self.image_flags;
        b[0x34..0x38].copy_from_slice(&self.loader_flags.to_le_bytes());
        b[0x38..0x3C].copy_from_slice(&self.image_file_size.to_le_bytes());
        b[0x3C..0x40].copy_from_slice(&self.check_sum.to_le_bytes());
        b
    }
}

/// The validated layout of an image section (`SEGMENT` of an image with
/// its subsections and `MI_SECTION_IMAGE_INFORMATION`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    /// `OptionalHeader.ImageBase`: where the image wants to be mapped.
    pub image_base: u64,
    /// Pages of the mapped image (`SizeOfImage` rounded up).
    pub pages: u64,
    /// `SizeOfHeaders`.
    pub size_of_headers: u32,
    /// The image cannot move (`IMAGE_FILE_RELOCS_STRIPPED`).
    pub relocs_stripped: bool,
    /// Headers first, then one per PE section, in page order.
    pub subsections: Vec<Subsection>,
    /// `SECTION_IMAGE_INFORMATION`.
    pub info: SectionImageInformation,
}

fn round_up(v: u64, a: u64) -> Option<u64> {
    v.checked_add(a - 1).map(|x| x / a * a)
}

/// The protection of a PE section's pages in a user image view.
pub fn section_protection(characteristics: u32) -> u32 {
    let x = characteristics & IMAGE_SCN_MEM_EXECUTE != 0;
    let w = characteristics & IMAGE_SCN_MEM_WRITE != 0;
    let r = characteristics & IMAGE_SCN_MEM_READ != 0;
    match (x, w, r) {
        (true, true, _) => PAGE_EXECUTE_WRITECOPY,
        (true, false, _) => PAGE_EXECUTE_READ,
        (false, true, _) => PAGE_WRITECOPY,
        (false, false, true) => PAGE_READONLY,
        (false, false, false) => PAGE_NOACCESS,
    }
}

impl ImageLayout {
    /// Validates the image headers (`headers`: the first bytes of the file,
    /// at least through the section table; `file_size`: the file's size)
    /// and builds the layout (`MiCreateImageFileMap`). Statuses as NT's:
    /// no `MZ` → `STATUS_INVALID_IMAGE_NOT_MZ`; `e_lfanew` not pointing at
    /// a `PE\0\0` signature (a DOS program, or NE/LE: ntrs does not tell
    /// those apart) → `STATUS_INVALID_IMAGE_PROTECT`; everything else
    /// wrong (truncated headers, not PE32+ for AMD64 — ntrs has no WoW64
    /// —, bad alignments, an `ImageBase` not a multiple of 64 KiB, sections out of order, overlapping or past
    /// `SizeOfImage`, raw data past the end of the file) →
    /// `STATUS_INVALID_IMAGE_FORMAT`.
    pub fn from_headers(headers: &[u8], file_size: u64) -> Result<ImageLayout, NtStatus> {
        let rd16 = |o: usize| {
            headers
                .get(o..o + 2)
                .map(|s| u16::from_le_bytes([s[0], s[1]]))
        };
        let rd32 = |o: usize| {
            headers
                .get(o..o + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        if rd16(0) != Some(0x5A4D) {
            return Err(STATUS_INVALID_IMAGE_NOT_MZ);
        }
        let lfanew = rd32(0x3C).ok_or(STATUS_INVALID_IMAGE_PROTECT)? as usize;
        if lfanew as u64 >= file_size || rd32(lfanew) != Some(0x0000_4550) {
            return Err(STATUS_INVALID_IMAGE_PROTECT);
        }
        let img = pe::image::Image::parse(headers).map_err(|e| e.status)?;
        let (fh, opt) = (img.file, img.opt);
        if fh.machine != IMAGE_FILE_MACHINE_AMD64 || !img.is_pe32_plus() {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let sa = u64::from(opt.section_alignment);
        let fa = u64::from(opt.file_alignment);
        if sa == 0 || fa == 0 || !sa.is_power_of_two() || !fa.is_power_of_two() || fa > sa {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        // The spec's rule, which NT enforces: a 64 KiB multiple.
        if !opt.image_base.is_multiple_of(ALLOCATION_GRANULARITY) {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let size_of_image = u64::from(opt.size_of_image);
        if size_of_image == 0 || size_of_image > MAX_IMAGE_SIZE {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let headers_size = u64::from(opt.size_of_headers);
        if headers_size == 0 || headers_size > size_of_image || headers_size > file_size {
            return Err(STATUS_INVALID_IMAGE_FORMAT);
        }
        let pages =
            round_up(size_of_image, PAGE_SIZE).ok_or(STATUS_INVALID_IMAGE_FORMAT)? / PAGE_SIZE;
        let info = SectionImageInformation {
            transfer_address: opt
                .image_base
                .wrapping_add(u64::from(opt.address_of_entry_point)),
            zero_bits: 0,
            maximum_stack_size: opt.size_of_stack_reserve,
            committed_stack_size: opt.size_of_stack_commit,
            sub_system_type: u32::from(opt.subsystem),
            sub_system_minor_version: opt.minor_subsystem_version,
            sub_system_major_version: opt.major_subsystem_version,
            major_operating_system_version: opt.major_operating_system_version,
            minor_operating_system_version: opt.minor_operating_system_version,
            image_characteristics: fh.characteristics,
            dll_characteristics: opt.dll_characteristics,
            machine: fh.machine,
            image_contains_code: opt.size_of_code != 0
                || img
                    .sections
                    .iter()
                    .any(|s| s.characteristics & (IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_CNT_CODE) != 0),
            image_flags: 0,
            loader_flags: opt.loader_flags,
            image_file_size: u32::try_from(file_size).unwrap_or(u32::MAX),
            check_sum: opt.check_sum,
        };
        let mut subsections = Vec::new();
        if sa < PAGE_SIZE {
            // Small section alignment: mapped flat, file layout = memory layout.
            if fa != sa {
                return Err(STATUS_INVALID_IMAGE_FORMAT);
            }
            for s in &img.sections {
                let raw_end = u64::from(s.pointer_to_raw_data) + u64::from(s.size_of_raw_data);
                let mem_end = u64::from(s.virtual_address)
                    + u64::from(s.virtual_size.max(s.size_of_raw_data));
                if (s.size_of_raw_data != 0 && raw_end > file_size)
                    || mem_end > size_of_image
                    || (s.size_of_raw_data != 0 && s.pointer_to_raw_data != s.virtual_address)
                {
                    return Err(STATUS_INVALID_IMAGE_FORMAT);
                }
            }
            subsections.push(Subsection {
                name: [0; 8],
                first_page: 0,
                pages,
                file_offset: 0,
                file_bytes: file_size.min(size_of_image),
                protect: PAGE_EXECUTE_WRITECOPY,
            });
        } else {
            let header_pages =
                round_up(headers_size, sa).ok_or(STATUS_INVALID_IMAGE_FORMAT)? / PAGE_SIZE;
            subsections.push(Subsection {
                name: [0; 8],
                first_page: 0,
                pages: header_pages,
                file_offset: 0,
                file_bytes: headers_size,
                protect: PAGE_READONLY,
            });
            let mut next = header_pages * PAGE_SIZE;
            for s in &img.sections {
                let va = u64::from(s.virtual_address);
                let raw = u64::from(s.size_of_raw_data);
                let vsize = match s.virtual_size {
                    0 => raw,
                    v => u64::from(v),
                };
                // NT requires the sections to follow each other exactly.
                if va != next || vsize == 0 {
                    return Err(STATUS_INVALID_IMAGE_FORMAT);
                }
                let mapped = round_up(vsize, sa).ok_or(STATUS_INVALID_IMAGE_FORMAT)?;
                let end = va.checked_add(mapped).ok_or(STATUS_INVALID_IMAGE_FORMAT)?;
                if end > pages * PAGE_SIZE {
                    return Err(STATUS_INVALID_IMAGE_FORMAT);
                }
                let file_offset = u64::from(s.pointer_to_raw_data) & !0x1FF;
                let file_bytes = if raw == 0 {
                    0
                } else {
                    let skew = u64::from(s.pointer_to_raw_data) - file_offset;
                    (raw + skew).min(mapped)
                };
                if file_bytes != 0
                    && file_offset + file_bytes > round_up(file_size, 0x200).unwrap_or(u64::MAX)
                {
                    return Err(STATUS_INVALID_IMAGE_FORMAT);
                }
                let mut name = [0u8; 8];
                name.copy_from_slice(&s.raw_name);
                subsections.push(Subsection {
                    name,
                    first_page: va / PAGE_SIZE,
                    pages: mapped / PAGE_SIZE,
                    file_offset,
                    file_bytes,
                    protect: section_protection(s.characteristics),
                });
                next = end;
            }
        }
        Ok(ImageLayout {
            image_base: opt.image_base,
            pages,
            size_of_headers: opt.size_of_headers,
            relocs_stripped: fh.characteristics & IMAGE_FILE_RELOCS_STRIPPED != 0,
            subsections,
            info,
        })
    }

    /// How many bytes of the file's start [`ImageLayout::from_headers`]
    /// needs (the headers through the section table), from a first page
    /// already read; `None` when the first page is not even a PE (the
    /// parse of it gives the status).
    pub fn header_bytes_needed(first: &[u8]) -> Option<u64> {
        let rd16 = |o: usize| {
            first
                .get(o..o + 2)
                .map(|s| u16::from_le_bytes([s[0], s[1]]))
        };
        let lfanew = u64::from(u32::from_le_bytes(first.get(0x3C..0x40)?.try_into().ok()?));
        let nsec = u64::from(rd16(lfanew as usize + 6)?);
        let opt = u64::from(rd16(lfanew as usize + 20)?);
        let soh = first
            .get(lfanew as usize + 24 + 60..lfanew as usize + 24 + 64)
            .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
            .unwrap_or(0);
        Some(
            (lfanew + 24 + opt + nsec * 40)
                .max(soh)
                .min(MAX_HEADER_BYTES),
        )
    }

    /// Where page `page` of the mapped image comes from: `(file offset,
    /// bytes)` to read (the rest of the page is zero); bytes 0 is a
    /// zero-fill page. `None` beyond the image.
    pub fn page_source(&self, page: u64) -> Option<(u64, u64)> {
        if page >= self.pages {
            return None;
        }
        let s = self
            .subsections
            .iter()
            .find(|s| (s.first_page..s.first_page + s.pages).contains(&page));
        let Some(s) = s else {
            return Some((0, 0));
        };
        let within = (page - s.first_page) * PAGE_SIZE;
        let bytes = s.file_bytes.saturating_sub(within).min(PAGE_SIZE);
        Some((s.file_offset + within, bytes))
    }

    /// The view's protection as runs `(first page, pages, protect)` in
    /// page order, covering every page (pages no subsection maps are
    /// `PAGE_NOACCESS`).
    pub fn protection_runs(&self) -> Vec<(u64, u64, u32)> {
        let mut out = Vec::new();
        let mut next = 0;
        for s in &self.subsections {
            if s.first_page > next {
                out.push((next, s.first_page - next, PAGE_NOACCESS));
            }
            out.push((s.first_page, s.pages, s.protect));
            next = s.first_page + s.pages;
        }
        if next < self.pages {
            out.push((next, self.pages - next, PAGE_NOACCESS));
        }
        out
    }

    /// The protection of image page `page`.
    pub fn protection(&self, page: u64) -> u32 {
        self.subsections
            .iter()
            .find(|s| (s.first_page..s.first_page + s.pages).contains(&page))
            .map_or(PAGE_NOACCESS, |s| s.protect)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;

    /// A PE32+ image file: headers at 0 (0x400 bytes), sections
    /// `(name, va, vsize, raw size, characteristics)` laid out at file
    /// offsets from 0x400 in order, each raw area filled with its index + 1.
    pub fn build_pe(sections: &[(&str, u32, u32, u32, u32)], size_of_image: u32) -> Vec<u8> {
        let mut f = vec![0u8; 0x400];
        f[0] = b'M';
        f[1] = b'Z';
        f[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        f[0x80..0x84].copy_from_slice(b"PE\0\0");
        let fh = 0x84;
        f[fh..fh + 2].copy_from_slice(&IMAGE_FILE_MACHINE_AMD64.to_le_bytes());
        f[fh + 2..fh + 4].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        f[fh + 16..fh + 18].copy_from_slice(&240u16.to_le_bytes());
        f[fh + 18..fh + 20].copy_from_slice(&0x22u16.to_le_bytes());
        let oh = fh + 20;
        f[oh..oh + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
        f[oh + 4..oh + 8].copy_from_slice(&0x1000u32.to_le_bytes()); // SizeOfCode
        f[oh + 16..oh + 20].copy_from_slice(&0x1010u32.to_le_bytes()); // entry
        f[oh + 24..oh + 32].copy_from_slice(&0x1_4000_0000u64.to_le_bytes());
        f[oh + 32..oh + 36].copy_from_slice(&0x1000u32.to_le_bytes());
        f[oh + 36..oh + 40].copy_from_slice(&0x200u32.to_le_bytes());
        f[oh + 40..oh + 42].copy_from_slice(&6u16.to_le_bytes());
        f[oh + 48..oh + 50].copy_from_slice(&6u16.to_le_bytes());
        f[oh + 50..oh + 52].copy_from_slice(&2u16.to_le_bytes());
        f[oh + 56..oh + 60].copy_from_slice(&size_of_image.to_le_bytes());
        f[oh + 60..oh + 64].copy_from_slice(&0x400u32.to_le_bytes());
        f[oh + 64..oh + 68].copy_from_slice(&0x1234u32.to_le_bytes());
        f[oh + 68..oh + 70].copy_from_slice(&3u16.to_le_bytes());
        f[oh + 70..oh + 72].copy_from_slice(&0x8160u16.to_le_bytes());
        f[oh + 72..oh + 80].copy_from_slice(&0x10_0000u64.to_le_bytes());
        f[oh + 80..oh + 88].copy_from_slice(&0x1000u64.to_le_bytes());
        f[oh + 108..oh + 112].copy_from_slice(&16u32.to_le_bytes());
        let mut raw = 0x400u32;
        for (i, &(name, va, vsize, rsize, ch)) in sections.iter().enumerate() {
            let s = oh + 240 + i * 40;
            f[s..s + name.len()].copy_from_slice(name.as_bytes());
            f[s + 8..s + 12].copy_from_slice(&vsize.to_le_bytes());
            f[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
            f[s + 16..s + 20].copy_from_slice(&rsize.to_le_bytes());
            f[s + 20..s + 24].copy_from_slice(&(if rsize == 0 { 0 } else { raw }).to_le_bytes());
            f[s + 36..s + 40].copy_from_slice(&ch.to_le_bytes());
            if rsize != 0 {
                f.resize((raw + rsize) as usize, i as u8 + 1);
                raw += rsize;
            }
        }
        f
    }

    const TEXT: u32 = IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ;
    const RDATA: u32 = IMAGE_SCN_MEM_READ;
    const DATA: u32 = IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_WRITE;

    fn sample() -> Vec<u8> {
        build_pe(
            &[
                (".text", 0x1000, 0x1800, 0x1800, TEXT),
                (".rdata", 0x3000, 0x200, 0x200, RDATA),
                (".data", 0x4000, 0x3000, 0x400, DATA),
                (".bss", 0x7000, 0x1000, 0, DATA),
            ],
            0x8000,
        )
    }

    #[test]
    fn layout_protections_and_sources() {
        let f = sample();
        let l = ImageLayout::from_headers(&f, f.len() as u64).unwrap();
        assert_eq!((l.image_base, l.pages), (0x1_4000_0000, 8));
        assert_eq!(l.subsections.len(), 5);
        assert_eq!(l.subsections[1].name(), ".text");
        assert_eq!(
            l.protection_runs(),
            vec![
                (0, 1, PAGE_READONLY),
                (1, 2, PAGE_EXECUTE_READ),
                (3, 1, PAGE_READONLY),
                (4, 3, PAGE_WRITECOPY),
                (7, 1, PAGE_WRITECOPY)
            ]
        );
        // Headers: 0x400 bytes; .text page 2 holds the last 0x800 bytes.
        assert_eq!(l.page_source(0), Some((0, 0x400)));
        assert_eq!(l.page_source(1), Some((0x400, 0x1000)));
        assert_eq!(l.page_source(2), Some((0x1400, 0x800)));
        assert_eq!(l.page_source(3), Some((0x1C00, 0x200)));
        assert_eq!(l.page_source(4), Some((0x1E00, 0x400)));
        // .data's uninitialized tail and .bss: zero-fill.
        assert_eq!(l.page_source(5).unwrap().1, 0);
        assert_eq!(l.page_source(7).unwrap().1, 0);
        assert_eq!(l.page_source(8), None);
        let i = l.info;
        assert_eq!(i.transfer_address, 0x1_4000_1010);
        assert_eq!(
            (i.maximum_stack_size, i.committed_stack_size),
            (0x10_0000, 0x1000)
        );
        assert_eq!(
            (
                i.sub_system_type,
                i.sub_system_major_version,
                i.sub_system_minor_version
            ),
            (3, 6, 2)
        );
        assert!(i.image_contains_code);
        let b = i.to_bytes();
        assert_eq!(&b[0..8], &0x1_4000_1010u64.to_le_bytes());
        assert_eq!(&b[0x24..0x28], &[2, 0, 6, 0]);
        assert_eq!(&b[0x28..0x2A], &[6, 0]);
        assert_eq!(&b[0x2C..0x2E], &0x22u16.to_le_bytes());
        assert_eq!(&b[0x2E..0x30], &0x8160u16.to_le_bytes());
        assert_eq!(&b[0x30..0x32], &0x8664u16.to_le_bytes());
        assert_eq!(b[0x32], 1);
        assert_eq!(&b[0x38..0x3C], &(f.len() as u32).to_le_bytes());
        assert_eq!(&b[0x3C..0x40], &0x1234u32.to_le_bytes());
        assert_eq!(ImageLayout::header_bytes_needed(&f[..0x400]), Some(0x400));
    }

    #[test]
    fn bad_images() {
        let f = sample();
        let n = f.len() as u64;
        let mut g = f.clone();
        g[0] = b'X';
        assert_eq!(
            ImageLayout::from_headers(&g, n),
            Err(STATUS_INVALID_IMAGE_NOT_MZ)
        );
        let mut g = f.clone();
        g[0x80] = b'N';
        assert_eq!(
            ImageLayout::from_headers(&g, n),
            Err(STATUS_INVALID_IMAGE_PROTECT)
        );
        let mut g = f.clone();
        g[0x3C..0x40].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert_eq!(
            ImageLayout::from_headers(&g, n),
            Err(STATUS_INVALID_IMAGE_PROTECT)
        );
        let mut g = f.clone();
        g[0x84..0x86].copy_from_slice(&0x14Cu16.to_le_bytes());
        assert_eq!(
            ImageLayout::from_headers(&g, n),
            Err(STATUS_INVALID_IMAGE_FORMAT)
        );
        // Truncated section table.
        assert_eq!(
            ImageLayout::from_headers(&f[..0x1A0], n),
            Err(STATUS_INVALID_IMAGE_FORMAT)
        );
        // Raw data past the end of the file.
        assert_eq!(
            ImageLayout::from_headers(&f, 0x1000),
            Err(STATUS_INVALID_IMAGE_FORMAT)
        );
        // A gap between sections, sections out of order, past SizeOfImage.
        for secs in [
            &[(".text", 0x2000, 0x100, 0x200, TEXT)][..],
            &[
                (".a", 0x2000, 0x100, 0x200, TEXT),
                (".b", 0x1000, 0x100, 0x200, TEXT),
            ][..],
            &[(".text", 0x1000, 0x9000, 0x200, TEXT)][..],
        ] {
            let g = build_pe(secs, 0x8000);
            assert_eq!(
                ImageLayout::from_headers(&g, g.len() as u64),
                Err(STATUS_INVALID_IMAGE_FORMAT),
                "{secs:?}"
            );
        }
        // Section alignment below the file alignment.
        let mut g = f.clone();
        let oh = 0x84 + 20;
        g[oh + 32..oh + 36].copy_from_slice(&0x100u32.to_le_bytes());
        assert_eq!(
            ImageLayout::from_headers(&g, n),
            Err(STATUS_INVALID_IMAGE_FORMAT)
        );
    }

    #[test]
    fn protections_of_characteristics() {
        assert_eq!(section_protection(TEXT), PAGE_EXECUTE_READ);
        assert_eq!(
            section_protection(TEXT | IMAGE_SCN_MEM_WRITE),
            PAGE_EXECUTE_WRITECOPY
        );
        assert_eq!(section_protection(RDATA), PAGE_READONLY);
        assert_eq!(section_protection(DATA), PAGE_WRITECOPY);
        assert_eq!(section_protection(0), PAGE_NOACCESS);
    }
}
