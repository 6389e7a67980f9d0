//! `ntrs-pe`: a host tool that shows PE/COFF images the way `dumpbin` does,
//! over the same `lib/pe` crate the kernel's image loader uses (see
//! docs/tools.md and the README).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use pe::image::{
    certificate_type_name, debug_type_name, guid_string, relocation_type_name, CodeView, Image,
    UnwindInfo, UnwindOp, DIRECTORY_NAMES, X64_REGISTERS,
};
use serde_json::{json, Value};

const EXAMPLES: &str = "\
Examples:
  ntrs-pe headers kernel32.dll              # like dumpbin /headers
  ntrs-pe /imports kernel32.dll             # dumpbin spellings work too: /exports, /tls, ...
  ntrs-pe --exports ntdll.dll --json        # and as flags
  ntrs-pe unwindinfo app.exe                # .pdata with decoded x64 UNWIND_INFO
  ntrs-pe debug driver.sys                  # CodeView PDB path, GUID, age, symbol-server key
  ntrs-pe checksum *.sys                    # stored CheckSum against CheckSumMappedFile's
  ntrs-pe all --json a.dll b.dll            # everything, one JSON array
  ntrs-pe man > ntrs-pe.1                   # manual page; `ntrs-pe completions bash` for completions

A malformed image gives one line on stderr naming the structure at fault and a non-zero exit;
with several files the others are still shown.";

#[derive(Parser)]
#[command(
    name = "ntrs-pe",
    about = "PE/COFF image inspector shaped like dumpbin: headers, imports, exports, relocations, TLS, unwind info, load config, debug directory, certificates, checksum",
    after_help = EXAMPLES
)]
struct Cli {
    /// JSON output (one object per file; an array for several files).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Files {
    /// Image files (.exe, .dll, .sys, ...).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// File header, optional header with data directories, section headers (dumpbin /HEADERS).
    #[command(alias = "/headers", alias = "/HEADERS", long_flag = "headers")]
    Headers(Files),
    /// Imported DLLs and functions, including delay-load imports (dumpbin /IMPORTS).
    #[command(alias = "/imports", alias = "/IMPORTS", long_flag = "imports")]
    Imports(Files),
    /// Exported functions: ordinal, hint, RVA, name, forwarder (dumpbin /EXPORTS).
    #[command(alias = "/exports", alias = "/EXPORTS", long_flag = "exports")]
    Exports(Files),
    /// Base relocations, block by block (dumpbin /RELOCATIONS).
    #[command(
        alias = "/relocations",
        alias = "/RELOCATIONS",
        long_flag = "relocations"
    )]
    Relocations(Files),
    /// The TLS directory and its callbacks (dumpbin /TLS).
    #[command(alias = "/tls", alias = "/TLS", long_flag = "tls")]
    Tls(Files),
    /// The x64 exception directory (.pdata) with each function's decoded UNWIND_INFO
    /// (dumpbin /UNWINDINFO).
    #[command(
        alias = "/unwindinfo",
        alias = "/UNWINDINFO",
        alias = "pdata",
        alias = "/pdata",
        alias = "/PDATA",
        long_flag = "unwindinfo"
    )]
    Unwindinfo(Files),
    /// The load configuration directory (dumpbin /LOADCONFIG).
    #[command(alias = "/loadconfig", alias = "/LOADCONFIG", long_flag = "loadconfig")]
    Loadconfig(Files),
    /// The debug directory; CodeView entries with PDB path, GUID, age and the symbol-server
    /// key (dumpbin /PDBPATH-like).
    #[command(alias = "/pdbpath", alias = "/PDBPATH", long_flag = "debug")]
    Debug(Files),
    /// The attribute (Authenticode) certificate table: WIN_CERTIFICATE revision, type, length.
    #[command(alias = "/certificates", long_flag = "certificates")]
    Certificates(Files),
    /// Compares the stored CheckSum with the one CheckSumMappedFile computes; exit status 1
    /// when a stored (non-zero) checksum differs.
    #[command(alias = "/checksum", long_flag = "checksum")]
    Checksum(Files),
    /// Everything above but the checksum check (which reads the whole file): dumpbin /ALL
    /// without raw data.
    #[command(alias = "/all", alias = "/ALL", long_flag = "all")]
    All(Files),
    /// Write the manual page (roff) to stdout: `ntrs-pe man > ntrs-pe.1`.
    Man,
    /// Write a completion script for SHELL to stdout:
    /// `ntrs-pe completions bash > /usr/share/bash-completion/completions/ntrs-pe`.
    Completions { shell: clap_complete::Shell },
    /// Benchmark `pe_parse_all_system32`: `ntrs-pe all` against `objdump -p` over every PE
    /// file of DIR (default: Wine's x86_64-windows directory).
    Bench { dir: Option<PathBuf> },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Headers,
    Imports,
    Exports,
    Relocations,
    Tls,
    Unwind,
    LoadConfig,
    Debug,
    Certificates,
    Checksum,
}

const ALL: &[Part] = &[
    Part::Headers,
    Part::Debug,
    Part::Imports,
    Part::Exports,
    Part::Relocations,
    Part::Tls,
    Part::LoadConfig,
    Part::Unwind,
    Part::Certificates,
];

/// The end of a command whose output cannot be written: a closed pipe is
/// the reader's choice (exit 0); anything else fails with one line.
fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("ntrs-pe: writing the output: {e}");
    std::process::exit(1);
}

fn write_stdout(bytes: &[u8]) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(bytes).and_then(|_| o.flush()) {
        output_failed(e);
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ------------------------------------------------------------ names

fn machine_name(m: u16) -> &'static str {
    match m {
        0x14C => "x86",
        0x8664 => "x64",
        0xAA64 => "ARM64",
        0x1C0 => "ARM",
        0x1C2 => "ARM Thumb",
        0x1C4 => "ARMNT",
        0x200 => "IA64",
        0xEBC => "EFI byte code",
        0x5032 => "RISC-V 32",
        0x5064 => "RISC-V 64",
        0x6264 => "LoongArch 64",
        0 => "unknown",
        _ => "?",
    }
}

const FILE_FLAGS: &[(u16, &str)] = &[
    (0x0001, "Relocations stripped"),
    (0x0002, "Executable"),
    (0x0004, "Line numbers stripped"),
    (0x0008, "Symbols stripped"),
    (0x0010, "Aggressively trim working set"),
    (0x0020, "Application can handle large (>2GB) addresses"),
    (0x0080, "Bytes reversed (low)"),
    (0x0100, "32 bit word machine"),
    (0x0200, "Debug information stripped"),
    (0x0400, "Runs from swap if on removable media"),
    (0x0800, "Runs from swap if on network"),
    (0x1000, "System"),
    (0x2000, "DLL"),
    (0x4000, "Uniprocessor only"),
    (0x8000, "Bytes reversed (high)"),
];

const DLL_FLAGS: &[(u16, &str)] = &[
    (0x0020, "High Entropy Virtual Addresses"),
    (0x0040, "Dynamic base"),
    (0x0080, "Force integrity"),
    (0x0100, "NX compatible"),
    (0x0200, "No isolation"),
    (0x0400, "No structured exception handler"),
    (0x0800, "Do not bind"),
    (0x1000, "AppContainer"),
    (0x2000, "WDM driver"),
    (0x4000, "Control Flow Guard"),
    (0x8000, "Terminal Server Aware"),
];

const SECTION_FLAGS: &[(u32, &str)] = &[
    (0x0000_0008, "No Pad"),
    (0x0000_0020, "Code"),
    (0x0000_0040, "Initialized Data"),
    (0x0000_0080, "Uninitialized Data"),
    (0x0000_0200, "Info"),
    (0x0000_0800, "Remove"),
    (0x0000_1000, "Communal"),
    (0x0000_8000, "GP Relative"),
    (0x0100_0000, "Extended Relocations"),
    (0x0200_0000, "Discardable"),
    (0x0400_0000, "Not Cached"),
    (0x0800_0000, "Not Paged"),
    (0x1000_0000, "Shared"),
    (0x2000_0000, "Execute"),
    (0x4000_0000, "Read"),
    (0x8000_0000, "Write"),
];

fn subsystem_name(s: u16) -> &'static str {
    match s {
        0 => "Unknown",
        1 => "Native",
        2 => "Windows GUI",
        3 => "Windows CUI",
        5 => "OS/2 CUI",
        7 => "POSIX CUI",
        8 => "Native Win9x driver",
        9 => "Windows CE GUI",
        10 => "EFI Application",
        11 => "EFI Boot Service Driver",
        12 => "EFI Runtime Driver",
        13 => "EFI ROM",
        14 => "Xbox",
        16 => "Windows Boot Application",
        _ => "?",
    }
}

fn flag_names<T: Copy + Into<u64>>(v: T, table: &[(T, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(f, _)| v.into() & (*f).into() != 0)
        .map(|&(_, n)| n)
        .collect()
}

/// A `time_t` as `ctime` shows it (UTC): `Sat Feb 18 22:16:11 2023`.
fn ctime(t: u32) -> String {
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = (days + 4).rem_euclid(7) as usize;
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        WD[wd],
        MO[(m - 1) as usize],
        d,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        y
    )
}

fn file_type(img: &Image) -> &'static str {
    if img.file.characteristics & 0x2000 != 0 {
        "DLL"
    } else if img.opt.subsystem == 1 {
        "DRIVER / NATIVE"
    } else {
        "EXECUTABLE IMAGE"
    }
}

fn unwind_op_text(op: &UnwindOp, info: &UnwindInfo) -> String {
    let reg = |r: u8| X64_REGISTERS[(r & 15) as usize];
    match *op {
        UnwindOp::PushNonvol { reg: r } => format!("PUSH_NONVOL, register={}", reg(r)),
        UnwindOp::Alloc { size, large } => format!(
            "{}, size=0x{:X}",
            if large { "ALLOC_LARGE" } else { "ALLOC_SMALL" },
            size
        ),
        UnwindOp::SetFpreg => format!(
            "SET_FPREG, register={}, offset=0x{:X}",
            reg(info.frame_register),
            info.frame_offset as u32 * 16
        ),
        UnwindOp::SaveNonvol {
            reg: r,
            offset,
            far,
        } => format!(
            "SAVE_NONVOL{}, register={}, offset=0x{:X}",
            if far { "_FAR" } else { "" },
            reg(r),
            offset
        ),
        UnwindOp::SaveXmm128 {
            reg: r,
            offset,
            far,
        } => format!(
            "SAVE_XMM128{}, register=xmm{}, offset=0x{:X}",
            if far { "_FAR" } else { "" },
            r,
            offset
        ),
        UnwindOp::Epilog { info, offset } => {
            format!("EPILOG, flags=0x{info:X}, offset=0x{offset:X}")
        }
        UnwindOp::PushMachframe { error_code } => format!(
            "PUSH_MACHFRAME, {}",
            if error_code {
                "with error code"
            } else {
                "without error code"
            }
        ),
        UnwindOp::Unknown { op, info } => format!("UNKNOWN op={op}, info={info}"),
    }
}

fn unwind_op_json(op: &UnwindOp) -> Value {
    match *op {
        UnwindOp::PushNonvol { reg } => {
            json!({"op": "PUSH_NONVOL", "register": X64_REGISTERS[(reg & 15) as usize]})
        }
        UnwindOp::Alloc { size, large } => {
            json!({"op": if large { "ALLOC_LARGE" } else { "ALLOC_SMALL" }, "size": size})
        }
        UnwindOp::SetFpreg => json!({"op": "SET_FPREG"}),
        UnwindOp::SaveNonvol { reg, offset, far } => json!({
            "op": if far { "SAVE_NONVOL_FAR" } else { "SAVE_NONVOL" },
            "register": X64_REGISTERS[(reg & 15) as usize], "offset": offset}),
        UnwindOp::SaveXmm128 { reg, offset, far } => json!({
            "op": if far { "SAVE_XMM128_FAR" } else { "SAVE_XMM128" },
            "register": format!("xmm{reg}"), "offset": offset}),
        UnwindOp::Epilog { info, offset } => {
            json!({"op": "EPILOG", "flags": info, "offset": offset})
        }
        UnwindOp::PushMachframe { error_code } => {
            json!({"op": "PUSH_MACHFRAME", "error_code": error_code})
        }
        UnwindOp::Unknown { op, info } => json!({"op": "UNKNOWN", "code": op, "info": info}),
    }
}

/// The file's computed checksum, computed once (it reads the whole file).
#[derive(Default)]
struct Checksum(std::cell::OnceCell<u32>);

impl Checksum {
    fn get(&self, img: &Image) -> u32 {
        *self.0.get_or_init(|| img.computed_checksum())
    }
}

// ------------------------------------------------------------ text output

fn text_part(img: &Image, ck: &Checksum, part: Part, o: &mut String) -> Result<bool, String> {
    let e = |x: pe::image::Error| x.to_string();
    let base = img.opt.image_base;
    let mut ok = true;
    match part {
        Part::Headers => {
            let f = &img.file;
            let _ = writeln!(o, "PE signature found\n\nFile Type: {}\n", file_type(img));
            let _ = writeln!(o, "FILE HEADER VALUES");
            let _ = writeln!(
                o,
                "{:>16X} machine ({})",
                f.machine,
                machine_name(f.machine)
            );
            let _ = writeln!(o, "{:>16X} number of sections", f.number_of_sections);
            let _ = writeln!(
                o,
                "{:>16X} time date stamp {}",
                f.time_date_stamp,
                ctime(f.time_date_stamp)
            );
            let _ = writeln!(
                o,
                "{:>16X} file pointer to symbol table",
                f.pointer_to_symbol_table
            );
            let _ = writeln!(o, "{:>16X} number of symbols", f.number_of_symbols);
            let _ = writeln!(
                o,
                "{:>16X} size of optional header",
                f.size_of_optional_header
            );
            let _ = writeln!(o, "{:>16X} characteristics", f.characteristics);
            for n in flag_names(f.characteristics, FILE_FLAGS) {
                let _ = writeln!(o, "                   {n}");
            }
            let p = &img.opt;
            let _ = writeln!(o, "\nOPTIONAL HEADER VALUES");
            let _ = writeln!(
                o,
                "{:>16X} magic # ({})",
                p.magic,
                if img.is_pe32_plus() { "PE32+" } else { "PE32" }
            );
            let _ = writeln!(
                o,
                "{:>16} linker version",
                format!("{}.{:02}", p.major_linker_version, p.minor_linker_version)
            );
            let _ = writeln!(o, "{:>16X} size of code", p.size_of_code);
            let _ = writeln!(
                o,
                "{:>16X} size of initialized data",
                p.size_of_initialized_data
            );
            let _ = writeln!(
                o,
                "{:>16X} size of uninitialized data",
                p.size_of_uninitialized_data
            );
            let _ = writeln!(
                o,
                "{:>16X} entry point ({:016X})",
                p.address_of_entry_point,
                base + p.address_of_entry_point as u64
            );
            let _ = writeln!(o, "{:>16X} base of code", p.base_of_code);
            if let Some(bd) = p.base_of_data {
                let _ = writeln!(o, "{:>16X} base of data", bd);
            }
            let _ = writeln!(
                o,
                "{:>16X} image base ({:016X} to {:016X})",
                base,
                base,
                base + p.size_of_image.saturating_sub(1) as u64
            );
            let _ = writeln!(o, "{:>16X} section alignment", p.section_alignment);
            let _ = writeln!(o, "{:>16X} file alignment", p.file_alignment);
            let _ = writeln!(
                o,
                "{:>16} operating system version",
                format!(
                    "{}.{:02}",
                    p.major_operating_system_version, p.minor_operating_system_version
                )
            );
            let _ = writeln!(
                o,
                "{:>16} image version",
                format!("{}.{:02}", p.major_image_version, p.minor_image_version)
            );
            let _ = writeln!(
                o,
                "{:>16} subsystem version",
                format!(
                    "{}.{:02}",
                    p.major_subsystem_version, p.minor_subsystem_version
                )
            );
            let _ = writeln!(o, "{:>16X} Win32 version", p.win32_version_value);
            let _ = writeln!(o, "{:>16X} size of image", p.size_of_image);
            let _ = writeln!(o, "{:>16X} size of headers", p.size_of_headers);
            let _ = writeln!(o, "{:>16X} checksum", p.check_sum);
            let _ = writeln!(
                o,
                "{:>16X} subsystem ({})",
                p.subsystem,
                subsystem_name(p.subsystem)
            );
            let _ = writeln!(o, "{:>16X} DLL characteristics", p.dll_characteristics);
            for n in flag_names(p.dll_characteristics, DLL_FLAGS) {
                let _ = writeln!(o, "                   {n}");
            }
            let _ = writeln!(o, "{:>16X} size of stack reserve", p.size_of_stack_reserve);
            let _ = writeln!(o, "{:>16X} size of stack commit", p.size_of_stack_commit);
            let _ = writeln!(o, "{:>16X} size of heap reserve", p.size_of_heap_reserve);
            let _ = writeln!(o, "{:>16X} size of heap commit", p.size_of_heap_commit);
            let _ = writeln!(o, "{:>16X} loader flags", p.loader_flags);
            let _ = writeln!(
                o,
                "{:>16X} number of directories",
                p.number_of_rva_and_sizes
            );
            for (i, d) in img.directories.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "{:>16X} [{:>8X}] RVA [size] of {} Directory",
                    d.virtual_address, d.size, DIRECTORY_NAMES[i]
                );
            }
            for (i, sh) in img.sections.iter().enumerate() {
                let _ = writeln!(o, "\nSECTION HEADER #{}", i + 1);
                let _ = writeln!(o, "{:>8} name", sh.name);
                let _ = writeln!(o, "{:>8X} virtual size", sh.virtual_size);
                let _ = writeln!(
                    o,
                    "{:>8X} virtual address ({:016X} to {:016X})",
                    sh.virtual_address,
                    base + sh.virtual_address as u64,
                    (base + sh.virtual_address as u64 + sh.virtual_size as u64).saturating_sub(1)
                );
                let _ = writeln!(o, "{:>8X} size of raw data", sh.size_of_raw_data);
                let _ = writeln!(o, "{:>8X} file pointer to raw data", sh.pointer_to_raw_data);
                let _ = writeln!(
                    o,
                    "{:>8X} file pointer to relocation table",
                    sh.pointer_to_relocations
                );
                let _ = writeln!(
                    o,
                    "{:>8X} file pointer to line numbers",
                    sh.pointer_to_linenumbers
                );
                let _ = writeln!(o, "{:>8X} number of relocations", sh.number_of_relocations);
                let _ = writeln!(o, "{:>8X} number of line numbers", sh.number_of_linenumbers);
                let _ = writeln!(o, "{:>8X} flags", sh.characteristics);
                let mut names = flag_names(sh.characteristics, SECTION_FLAGS);
                let align = (sh.characteristics >> 20) & 0xF;
                let a;
                if align != 0 && align < 15 {
                    a = format!("{} byte align", 1u32 << (align - 1));
                    names.push(&a);
                }
                for n in names {
                    let _ = writeln!(o, "         {n}");
                }
            }
        }
        Part::Imports => {
            let imps = img.imports().map_err(e)?;
            let delay = img.delay_imports().map_err(e)?;
            let _ = writeln!(o, "  Section contains the following imports:\n");
            for d in &imps {
                let _ = writeln!(o, "    {}", s(d.dll));
                let _ = writeln!(
                    o,
                    "    {:>18X} Import Address Table",
                    base + d.first_thunk as u64
                );
                let _ = writeln!(
                    o,
                    "    {:>18X} Import Name Table",
                    base + d.original_first_thunk as u64
                );
                let _ = writeln!(o, "    {:>18X} time date stamp", d.time_date_stamp);
                let _ = writeln!(
                    o,
                    "    {:>18X} Index of first forwarder reference\n",
                    d.forwarder_chain
                );
                for f in &d.functions {
                    match (f.ordinal, f.name) {
                        (Some(ord), _) => {
                            let _ = writeln!(o, "                  Ordinal {:>5}", ord);
                        }
                        (None, Some(n)) => {
                            let _ = writeln!(o, "                    {:>4X} {}", f.hint, s(n));
                        }
                        (None, None) => {}
                    }
                }
                let _ = writeln!(o);
            }
            if !delay.is_empty() {
                let _ = writeln!(o, "  Section contains the following delay load imports:\n");
                for d in &delay {
                    let _ = writeln!(o, "    {}", s(d.dll));
                    let _ = writeln!(o, "    {:>18X} Characteristics", d.attributes);
                    let _ = writeln!(
                        o,
                        "    {:>18X} Address of HMODULE",
                        base + d.module_handle_rva as u64
                    );
                    let _ = writeln!(
                        o,
                        "    {:>18X} Import Address Table",
                        base + d.iat_rva as u64
                    );
                    let _ = writeln!(o, "    {:>18X} Import Name Table", base + d.int_rva as u64);
                    let _ = writeln!(
                        o,
                        "    {:>18X} Bound Import Name Table",
                        base + d.bound_iat_rva as u64
                    );
                    let _ = writeln!(
                        o,
                        "    {:>18X} Unload Import Name Table",
                        base + d.unload_iat_rva as u64
                    );
                    let _ = writeln!(o, "    {:>18X} time date stamp\n", d.time_date_stamp);
                    for f in &d.functions {
                        match (f.ordinal, f.name) {
                            (Some(ord), _) => {
                                let _ = writeln!(o, "                  Ordinal {:>5}", ord);
                            }
                            (None, Some(n)) => {
                                let _ = writeln!(o, "                    {:>4X} {}", f.hint, s(n));
                            }
                            (None, None) => {}
                        }
                    }
                    let _ = writeln!(o);
                }
            }
        }
        Part::Exports => {
            let Some(x) = img.exports().map_err(e)? else {
                let _ = writeln!(o, "  No exports\n");
                return Ok(true);
            };
            let _ = writeln!(
                o,
                "  Section contains the following exports for {}\n",
                s(x.name)
            );
            let _ = writeln!(o, "    {:>8X} characteristics", x.characteristics);
            let _ = writeln!(o, "    {:>8X} time date stamp", x.time_date_stamp);
            let _ = writeln!(
                o,
                "    {:>8} version",
                format!("{}.{:02}", x.major_version, x.minor_version)
            );
            let _ = writeln!(o, "    {:>8} ordinal base", x.ordinal_base);
            let _ = writeln!(o, "    {:>8} number of functions", x.number_of_functions);
            let _ = writeln!(o, "    {:>8} number of names\n", x.number_of_names);
            let _ = writeln!(o, "    ordinal hint RVA      name\n");
            let mut named = vec![false; x.functions.len()];
            for n in &x.names {
                let f = &x.functions[n.index as usize];
                named[n.index as usize] = true;
                match f.forwarder {
                    Some(fw) => {
                        let _ = writeln!(
                            o,
                            "    {:>7} {:>4X}          {} (forwarded to {})",
                            f.ordinal,
                            n.hint,
                            s(n.name),
                            s(fw)
                        );
                    }
                    None => {
                        let _ = writeln!(
                            o,
                            "    {:>7} {:>4X} {:08X} {}",
                            f.ordinal,
                            n.hint,
                            f.rva,
                            s(n.name)
                        );
                    }
                }
            }
            for (i, f) in x.functions.iter().enumerate() {
                if named[i] || f.rva == 0 {
                    continue;
                }
                match f.forwarder {
                    Some(fw) => {
                        let _ = writeln!(
                            o,
                            "    {:>7}               [NONAME] (forwarded to {})",
                            f.ordinal,
                            s(fw)
                        );
                    }
                    None => {
                        let _ = writeln!(o, "    {:>7}      {:08X} [NONAME]", f.ordinal, f.rva);
                    }
                }
            }
            let _ = writeln!(o);
        }
        Part::Relocations => {
            let blocks = img.relocations().map_err(e)?;
            let _ = writeln!(o, "BASE RELOCATIONS #{}", blocks.len());
            for b in &blocks {
                let _ = writeln!(o, "{:>8X} RVA,{:>8X} SizeOfBlock", b.page_rva, b.block_size);
                for &(t, off) in &b.entries {
                    let _ = writeln!(
                        o,
                        "     {:>3X}  {:<8} {:08X}",
                        off,
                        relocation_type_name(t, img.file.machine),
                        b.page_rva.wrapping_add(off as u32)
                    );
                }
                let _ = writeln!(o);
            }
        }
        Part::Tls => match img.tls().map_err(e)? {
            None => {
                let _ = writeln!(o, "  No TLS directory\n");
            }
            Some(t) => {
                let _ = writeln!(o, "  Section contains the following TLS directory:\n");
                let _ = writeln!(
                    o,
                    "    {:>16X} Start of raw data",
                    t.start_address_of_raw_data
                );
                let _ = writeln!(o, "    {:>16X} End of raw data", t.end_address_of_raw_data);
                let _ = writeln!(o, "    {:>16X} Address of index", t.address_of_index);
                let _ = writeln!(
                    o,
                    "    {:>16X} Address of callbacks",
                    t.address_of_callbacks
                );
                let _ = writeln!(o, "    {:>16X} Size of zero fill", t.size_of_zero_fill);
                let _ = writeln!(o, "    {:>16X} Characteristics\n", t.characteristics);
                let _ = writeln!(
                    o,
                    "    TLS Callbacks\n\n          Address\n          ----------------"
                );
                for c in &t.callbacks {
                    let _ = writeln!(o, "          {:016X}", c);
                }
                let _ = writeln!(o);
            }
        },
        Part::Unwind => {
            let funcs = img.runtime_functions().map_err(e)?;
            let _ = writeln!(o, "Function Table ({})\n", funcs.len());
            let _ = writeln!(o, "           Begin    End      Info");
            for (i, f) in funcs.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "  {:08X} {:08X} {:08X} {:08X}",
                    i, f.begin_address, f.end_address, f.unwind_info_address
                );
                let u = img
                    .unwind_info(f.unwind_info_address)
                    .map_err(|x| format!("function {:#x}: {}", f.begin_address, x))?;
                let mut flags = Vec::new();
                if u.flags & 1 != 0 {
                    flags.push("EHANDLER");
                }
                if u.flags & 2 != 0 {
                    flags.push("UHANDLER");
                }
                if u.flags & 4 != 0 {
                    flags.push("CHAININFO");
                }
                let _ = writeln!(o, "    Unwind version: {}", u.version);
                let _ = writeln!(
                    o,
                    "    Unwind flags: {}",
                    if flags.is_empty() {
                        "None".into()
                    } else {
                        flags.join(" ")
                    }
                );
                let _ = writeln!(o, "    Size of prologue: 0x{:02X}", u.size_of_prolog);
                let _ = writeln!(o, "    Count of codes: {}", u.count_of_codes);
                if u.frame_register != 0 {
                    let _ = writeln!(
                        o,
                        "    Frame register: {}",
                        X64_REGISTERS[u.frame_register as usize]
                    );
                    let _ = writeln!(o, "    Frame offset: 0x{:X}", u.frame_offset as u32 * 16);
                }
                if !u.codes.is_empty() {
                    let _ = writeln!(o, "    Unwind codes:");
                }
                for c in &u.codes {
                    let _ = writeln!(
                        o,
                        "      {:02X}: {}",
                        c.code_offset,
                        unwind_op_text(&c.op, &u)
                    );
                }
                if let Some(h) = u.handler {
                    let _ = writeln!(o, "    Handler: {:08X}", h);
                }
                if let Some(c) = u.chained {
                    let _ = writeln!(
                        o,
                        "    Chained: {:08X} {:08X} {:08X}",
                        c.begin_address, c.end_address, c.unwind_info_address
                    );
                }
                let _ = writeln!(o);
            }
        }
        Part::LoadConfig => match img.load_config().map_err(e)? {
            None => {
                let _ = writeln!(o, "  No load configuration\n");
            }
            Some(l) => {
                let _ = writeln!(o, "  Section contains the following load config:\n");
                for (n, v) in &l.fields {
                    let _ = writeln!(o, "    {:>16X} {}", v, n);
                }
                let _ = writeln!(o);
            }
        },
        Part::Debug => {
            let entries = img.debug_directory().map_err(e)?;
            let _ = writeln!(o, "  Debug Directories\n");
            let _ = writeln!(o, "        Time Type        Size      RVA  Pointer");
            let _ = writeln!(o, "    -------- ------- -------- -------- --------");
            for d in &entries {
                let _ = writeln!(
                    o,
                    "    {:08X} {:<7} {:08X} {:08X} {:08X}",
                    d.time_date_stamp,
                    debug_type_name(d.debug_type).to_ascii_lowercase(),
                    d.size_of_data,
                    d.address_of_raw_data,
                    d.pointer_to_raw_data
                );
                match &d.codeview {
                    Some(cv @ CodeView::Rsds { guid, age, path }) => {
                        let _ = writeln!(
                            o,
                            "        Format: RSDS, {}, {}, {}",
                            guid_string(guid),
                            age,
                            s(path)
                        );
                        let _ =
                            writeln!(o, "        Symbol server key: {}", cv.symbol_server_key());
                    }
                    Some(
                        cv @ CodeView::Nb10 {
                            signature,
                            age,
                            path,
                            ..
                        },
                    ) => {
                        let _ = writeln!(
                            o,
                            "        Format: NB10, {:X}, {}, {}",
                            signature,
                            age,
                            s(path)
                        );
                        let _ =
                            writeln!(o, "        Symbol server key: {}", cv.symbol_server_key());
                    }
                    None => {}
                }
            }
            let _ = writeln!(o);
        }
        Part::Certificates => {
            let certs = img.certificates().map_err(e)?;
            let _ = writeln!(o, "  Certificates ({})\n", certs.len());
            for c in &certs {
                let _ = writeln!(
                    o,
                    "    offset {:08X} length {:>8} revision 0x{:04X} type {} ({})",
                    c.offset,
                    c.length,
                    c.revision,
                    c.certificate_type,
                    certificate_type_name(c.certificate_type)
                );
            }
            let _ = writeln!(o);
        }
        Part::Checksum => {
            let stored = img.opt.check_sum;
            let computed = ck.get(img);
            let verdict = if stored == 0 {
                "not set"
            } else if stored == computed {
                "OK"
            } else {
                ok = false;
                "MISMATCH"
            };
            let _ = writeln!(
                o,
                "  CheckSum {:08X} computed {:08X} {}\n",
                stored, computed, verdict
            );
        }
    }
    Ok(ok)
}

// ------------------------------------------------------------ JSON output

fn json_part(
    img: &Image,
    ck: &Checksum,
    part: Part,
    o: &mut serde_json::Map<String, Value>,
) -> Result<bool, String> {
    let e = |x: pe::image::Error| x.to_string();
    let mut ok = true;
    let thunks = |fs: &[pe::image::ImportedFunction]| -> Vec<Value> {
        fs.iter()
            .map(|f| match f.ordinal {
                Some(ord) => json!({"ordinal": ord, "iat_rva": f.iat_rva}),
                None => json!({"name": f.name.map(s), "hint": f.hint, "iat_rva": f.iat_rva, "hint_name_rva": f.hint_name_rva}),
            })
            .collect()
    };
    match part {
        Part::Headers => {
            let f = &img.file;
            let p = &img.opt;
            o.insert("file_header".into(), json!({
                "machine": f.machine, "machine_name": machine_name(f.machine),
                "number_of_sections": f.number_of_sections, "time_date_stamp": f.time_date_stamp,
                "pointer_to_symbol_table": f.pointer_to_symbol_table, "number_of_symbols": f.number_of_symbols,
                "size_of_optional_header": f.size_of_optional_header, "characteristics": f.characteristics,
                "characteristics_names": flag_names(f.characteristics, FILE_FLAGS),
            }));
            o.insert("optional_header".into(), json!({
                "magic": p.magic, "format": if img.is_pe32_plus() { "PE32+" } else { "PE32" },
                "linker_version": format!("{}.{:02}", p.major_linker_version, p.minor_linker_version),
                "size_of_code": p.size_of_code, "size_of_initialized_data": p.size_of_initialized_data,
                "size_of_uninitialized_data": p.size_of_uninitialized_data,
                "address_of_entry_point": p.address_of_entry_point, "base_of_code": p.base_of_code,
                "base_of_data": p.base_of_data, "image_base": p.image_base,
                "section_alignment": p.section_alignment, "file_alignment": p.file_alignment,
                "operating_system_version": format!("{}.{:02}", p.major_operating_system_version, p.minor_operating_system_version),
                "image_version": format!("{}.{:02}", p.major_image_version, p.minor_image_version),
                "subsystem_version": format!("{}.{:02}", p.major_subsystem_version, p.minor_subsystem_version),
                "win32_version_value": p.win32_version_value, "size_of_image": p.size_of_image,
                "size_of_headers": p.size_of_headers, "check_sum": p.check_sum,
                "subsystem": p.subsystem, "subsystem_name": subsystem_name(p.subsystem),
                "dll_characteristics": p.dll_characteristics,
                "dll_characteristics_names": flag_names(p.dll_characteristics, DLL_FLAGS),
                "size_of_stack_reserve": p.size_of_stack_reserve, "size_of_stack_commit": p.size_of_stack_commit,
                "size_of_heap_reserve": p.size_of_heap_reserve, "size_of_heap_commit": p.size_of_heap_commit,
                "loader_flags": p.loader_flags, "number_of_rva_and_sizes": p.number_of_rva_and_sizes,
            }));
            o.insert(
                "data_directories".into(),
                img.directories
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        json!({
                "index": i, "name": DIRECTORY_NAMES[i], "rva": d.virtual_address, "size": d.size})
                    })
                    .collect(),
            );
            o.insert("sections".into(), img.sections.iter().map(|sh| json!({
                "name": sh.name, "virtual_size": sh.virtual_size, "virtual_address": sh.virtual_address,
                "size_of_raw_data": sh.size_of_raw_data, "pointer_to_raw_data": sh.pointer_to_raw_data,
                "pointer_to_relocations": sh.pointer_to_relocations, "pointer_to_linenumbers": sh.pointer_to_linenumbers,
                "number_of_relocations": sh.number_of_relocations, "number_of_linenumbers": sh.number_of_linenumbers,
                "characteristics": sh.characteristics,
                "characteristics_names": flag_names(sh.characteristics, SECTION_FLAGS),
            })).collect());
        }
        Part::Imports => {
            let imps = img.imports().map_err(e)?;
            let delay = img.delay_imports().map_err(e)?;
            o.insert("imports".into(), imps.iter().map(|d| json!({
                "dll": s(d.dll), "import_name_table": d.original_first_thunk, "import_address_table": d.first_thunk,
                "time_date_stamp": d.time_date_stamp, "forwarder_chain": d.forwarder_chain,
                "functions": thunks(&d.functions)})).collect());
            o.insert("delay_imports".into(), delay.iter().map(|d| json!({
                "dll": s(d.dll), "attributes": d.attributes, "module_handle_rva": d.module_handle_rva,
                "import_address_table": d.iat_rva, "import_name_table": d.int_rva,
                "bound_import_address_table": d.bound_iat_rva, "unload_import_address_table": d.unload_iat_rva,
                "time_date_stamp": d.time_date_stamp, "functions": thunks(&d.functions)})).collect());
        }
        Part::Exports => {
            let v = match img.exports().map_err(e)? {
                None => Value::Null,
                Some(x) => {
                    // Names by function index, in one pass (a name table may have 65536 entries).
                    let mut by_index: Vec<Vec<Value>> = vec![Vec::new(); x.functions.len()];
                    for n in &x.names {
                        if let Some(v) = by_index.get_mut(n.index as usize) {
                            v.push(json!({"name": s(n.name), "hint": n.hint}));
                        }
                    }
                    json!({
                        "name": s(x.name), "characteristics": x.characteristics, "time_date_stamp": x.time_date_stamp,
                        "version": format!("{}.{:02}", x.major_version, x.minor_version),
                        "ordinal_base": x.ordinal_base, "number_of_functions": x.number_of_functions,
                        "number_of_names": x.number_of_names,
                        "functions": x.functions.iter().zip(by_index).filter(|(f, _)| f.rva != 0).map(|(f, names)| {
                            json!({"ordinal": f.ordinal, "rva": f.rva, "forwarder": f.forwarder.map(s), "names": names})
                        }).collect::<Vec<_>>(),
                    })
                }
            };
            o.insert("exports".into(), v);
        }
        Part::Relocations => {
            let blocks = img.relocations().map_err(e)?;
            o.insert("relocations".into(), blocks.iter().map(|b| json!({
                "page_rva": b.page_rva, "block_size": b.block_size,
                "entries": b.entries.iter().map(|&(t, off)| json!({
                    "type": relocation_type_name(t, img.file.machine), "type_code": t, "offset": off,
                    "rva": b.page_rva.wrapping_add(off as u32)})).collect::<Vec<_>>()})).collect());
        }
        Part::Tls => {
            let v = match img.tls().map_err(e)? {
                None => Value::Null,
                Some(t) => json!({
                    "start_address_of_raw_data": t.start_address_of_raw_data,
                    "end_address_of_raw_data": t.end_address_of_raw_data,
                    "address_of_index": t.address_of_index, "address_of_callbacks": t.address_of_callbacks,
                    "size_of_zero_fill": t.size_of_zero_fill, "characteristics": t.characteristics,
                    "callbacks": t.callbacks}),
            };
            o.insert("tls".into(), v);
        }
        Part::Unwind => {
            let funcs = img.runtime_functions().map_err(e)?;
            let mut out = Vec::with_capacity(funcs.len());
            for f in &funcs {
                let u = img
                    .unwind_info(f.unwind_info_address)
                    .map_err(|x| format!("function {:#x}: {}", f.begin_address, x))?;
                out.push(json!({
                    "begin": f.begin_address, "end": f.end_address, "unwind_info": f.unwind_info_address,
                    "version": u.version, "flags": u.flags, "size_of_prolog": u.size_of_prolog,
                    "count_of_codes": u.count_of_codes,
                    "frame_register": if u.frame_register != 0 { Value::from(X64_REGISTERS[u.frame_register as usize]) } else { Value::Null },
                    "frame_offset": u.frame_offset as u32 * 16,
                    "codes": u.codes.iter().map(|c| { let mut v = unwind_op_json(&c.op); v["code_offset"] = c.code_offset.into(); v }).collect::<Vec<_>>(),
                    "handler": u.handler,
                    "chained": u.chained.map(|c| json!({"begin": c.begin_address, "end": c.end_address, "unwind_info": c.unwind_info_address})),
                }));
            }
            o.insert("exception_functions".into(), Value::Array(out));
        }
        Part::LoadConfig => {
            let v = match img.load_config().map_err(e)? {
                None => Value::Null,
                Some(l) => Value::Object(
                    l.fields
                        .iter()
                        .map(|(n, v)| (n.to_string(), Value::from(*v)))
                        .collect(),
                ),
            };
            o.insert("load_config".into(), v);
        }
        Part::Debug => {
            let entries = img.debug_directory().map_err(e)?;
            o.insert("debug".into(), entries.iter().map(|d| {
                let cv = d.codeview.as_ref().map(|cv| match cv {
                    CodeView::Rsds { guid, age, path } => json!({"format": "RSDS", "guid": guid_string(guid), "age": age,
                        "pdb_path": s(path), "symbol_server_key": cv.symbol_server_key()}),
                    CodeView::Nb10 { offset, signature, age, path } => json!({"format": "NB10", "offset": offset,
                        "signature": signature, "age": age, "pdb_path": s(path), "symbol_server_key": cv.symbol_server_key()}),
                });
                json!({"characteristics": d.characteristics, "time_date_stamp": d.time_date_stamp,
                    "version": format!("{}.{:02}", d.major_version, d.minor_version),
                    "type": debug_type_name(d.debug_type), "type_code": d.debug_type, "size_of_data": d.size_of_data,
                    "address_of_raw_data": d.address_of_raw_data, "pointer_to_raw_data": d.pointer_to_raw_data,
                    "codeview": cv})
            }).collect());
        }
        Part::Certificates => {
            let certs = img.certificates().map_err(e)?;
            o.insert(
                "certificates".into(),
                certs
                    .iter()
                    .map(|c| {
                        json!({
                "offset": c.offset, "length": c.length, "revision": c.revision,
                "type": certificate_type_name(c.certificate_type), "type_code": c.certificate_type})
                    })
                    .collect(),
            );
        }
        Part::Checksum => {
            let stored = img.opt.check_sum;
            let computed = ck.get(img);
            ok = stored == 0 || stored == computed;
            o.insert(
                "checksum".into(),
                json!({"stored": stored, "computed": computed,
                "status": if stored == 0 { "not set" } else if ok { "OK" } else { "MISMATCH" }}),
            );
        }
    }
    Ok(ok)
}

// ------------------------------------------------------------ driver

/// Shows `parts` of every file. Returns the exit status: 0, or 1 when a file
/// could not be read or parsed (one line each on stderr) or, for the
/// `checksum` command alone, a stored checksum differs.
fn show(files: &[PathBuf], parts: &[Part], json_out: bool) -> u8 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let mut status = 0u8;
    let mut values = Vec::new();
    // Files are rendered in parallel, a batch at a time, and written in order.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    for batch in files.chunks(64) {
        let next = AtomicUsize::new(0);
        let slots: Mutex<Vec<Option<Rendered>>> = Mutex::new(vec![None; batch.len()]);
        std::thread::scope(|sc| {
            for _ in 0..threads.min(batch.len()) {
                sc.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = batch.get(i) else { break };
                    let r = render(path, parts, json_out);
                    if let Ok(mut v) = slots.lock() {
                        v[i] = Some(r);
                    }
                });
            }
        });
        let slots = slots.into_inner().unwrap_or_default();
        for (path, r) in batch.iter().zip(slots) {
            match r {
                Some(Rendered::Text(t, ok)) => {
                    write_stdout(t.as_bytes());
                    if !ok && parts.len() == 1 {
                        status = 1;
                    }
                }
                Some(Rendered::Json(v, ok)) => {
                    values.push(v);
                    if !ok && parts.len() == 1 {
                        status = 1;
                    }
                }
                Some(Rendered::Failed(x)) => {
                    eprintln!("ntrs-pe: {}: {}", path.display(), x);
                    status = 1;
                }
                None => {
                    eprintln!(
                        "ntrs-pe: {}: not shown (a worker thread failed)",
                        path.display()
                    );
                    status = 1;
                }
            }
        }
    }
    if json_out {
        let v = if files.len() == 1 {
            values.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        if !(files.len() == 1 && v.is_null()) {
            let mut t = serde_json::to_string_pretty(&v).unwrap_or_default();
            t.push('\n');
            write_stdout(t.as_bytes());
        }
    }
    status
}

/// One file's output: its text or JSON and whether its checksum (when
/// shown) is not a mismatch; or the one line saying why it cannot be shown.
#[derive(Clone)]
enum Rendered {
    Text(String, bool),
    Json(Value, bool),
    Failed(String),
}

/// File ranges read (start, end exclusive).
type Ranges = Vec<(usize, usize)>;

/// Files at least this large are read in part (see [`read_image`]).
const PARTIAL_READ_MIN: usize = 1 << 20;

/// Reads `path` for parsing. A large file is read in part unless `whole`:
/// the headers, the COFF string table and every section but DWARF
/// `.debug*` ones (most of a MinGW or Wine image), into a zero-filled
/// buffer of the file's length, with the ranges read; `Image::missed` then
/// says whether the parsers needed anything else.
fn read_image(path: &Path, whole: bool) -> std::io::Result<(Vec<u8>, Option<Ranges>)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len() as usize;
    let read_all = |mut f: std::fs::File| {
        let mut v = Vec::with_capacity(len);
        f.read_to_end(&mut v).map(|_| (v, None))
    };
    if whole || len < PARTIAL_READ_MIN {
        return read_all(f);
    }
    // Zero-filled (fresh pages from the allocator): what is not read is never touched.
    let mut buf = vec![0u8; len];
    let mut ranges = Vec::new();
    let mut read = |buf: &mut [u8], start: usize, end: usize| -> std::io::Result<()> {
        let end = end.min(len);
        if start < end {
            f.seek(SeekFrom::Start(start as u64))?;
            f.read_exact(&mut buf[start..end])?;
            ranges.push((start, end));
        }
        Ok(())
    };
    const HEAD: usize = 64 << 10;
    read(&mut buf, 0, HEAD)?;
    let r16 = |b: &[u8], o: usize| {
        b.get(o..o + 2)
            .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]) as usize)
    };
    let r32 = |b: &[u8], o: usize| {
        b.get(o..o + 4)
            .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let nt = r32(&buf, 0x3C);
    let headers_end = nt + 24 + r16(&buf, nt + 20) + r16(&buf, nt + 6) * 40;
    if headers_end > HEAD {
        return read_all(f);
    }
    let (symtab, nsyms) = (r32(&buf, nt + 12), r32(&buf, nt + 16));
    if symtab != 0 {
        let strtab = symtab.saturating_add(nsyms.saturating_mul(18));
        read(&mut buf, strtab, strtab.saturating_add(4))?;
        let size = r32(&buf, strtab).min(len);
        read(&mut buf, strtab, strtab.saturating_add(size))?;
    }
    let wanted: Vec<(usize, usize)> = match Image::parse(&buf) {
        Ok(img) => img
            .sections
            .iter()
            .filter(|s| !s.name.starts_with(".debug"))
            .map(|s| {
                let p = s.pointer_to_raw_data as usize;
                (p, p.saturating_add(s.size_of_raw_data as usize))
            })
            .collect(),
        Err(_) => {
            return read_all(f);
        }
    };
    for (a, z) in wanted {
        read(&mut buf, a, z)?;
    }
    Ok((buf, Some(ranges)))
}

fn render(path: &Path, parts: &[Part], json_out: bool) -> Rendered {
    let mut whole = parts.contains(&Part::Checksum);
    loop {
        let (data, ranges) = match read_image(path, whole) {
            Ok(d) => d,
            Err(x) => return Rendered::Failed(x.to_string()),
        };
        let partial = ranges.is_some();
        let img = match Image::parse(&data) {
            Ok(i) => i,
            Err(x) => return Rendered::Failed(x.to_string()),
        };
        let img = match ranges {
            Some(r) => img.with_loaded_ranges(r),
            None => img,
        };
        let out = render_image(path, &img, parts, json_out);
        if partial && img.missed() {
            // The parsers wanted bytes that were not read: read it all.
            whole = true;
            continue;
        }
        return out;
    }
}

fn render_image(path: &Path, img: &Image, parts: &[Part], json_out: bool) -> Rendered {
    let mut ok = true;
    let ck = Checksum::default();
    if json_out {
        let mut m = serde_json::Map::new();
        m.insert("file".into(), Value::from(path.display().to_string()));
        for &p in parts {
            match json_part(img, &ck, p, &mut m) {
                Ok(good) => ok &= good,
                Err(x) => return Rendered::Failed(x),
            }
        }
        Rendered::Json(Value::Object(m), ok)
    } else {
        let mut o = format!("\nDump of file {}\n\n", path.display());
        for &p in parts {
            match text_part(img, &ck, p, &mut o) {
                Ok(good) => ok &= good,
                Err(x) => return Rendered::Failed(x),
            }
        }
        Rendered::Text(o, ok)
    }
}

/// The PE files (MZ signature) directly in `dir`, sorted.
fn pe_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|x| format!("{}: {}", dir.display(), x))? {
        let p = e.map_err(|x| x.to_string())?.path();
        if !p.is_file() {
            continue;
        }
        let mut head = [0u8; 2];
        let is_mz = std::fs::File::open(&p)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .is_ok()
            && head == *b"MZ";
        if is_mz {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Median of three timed runs of `f` in milliseconds; each run must succeed.
fn median3_ms(mut f: impl FnMut() -> Result<(), String>) -> Result<u128, String> {
    let mut t = Vec::new();
    for _ in 0..3 {
        let st = Instant::now();
        f()?;
        t.push(st.elapsed().as_millis());
    }
    t.sort();
    Ok(t[1])
}

const OBJDUMP: &str = "x86_64-w64-mingw32-objdump";

/// `pe_parse_all_system32`: one `ntrs-pe all FILES...` process over every
/// PE file of Wine's system directory, against one `objdump -p FILES...`
/// process over the same files (both writing to a pipe this process reads).
/// Each run must show every file.
fn bench(dir: Option<PathBuf>) -> Result<(), String> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("/usr/lib/x86_64-linux-gnu/wine/x86_64-windows"));
    let files = pe_files(&dir)?;
    if files.is_empty() {
        return Err(format!(
            "{}: no PE files (install Debian's libwine, as `cargo xtask` setup does)",
            dir.display()
        ));
    }
    let me = std::env::current_exe().map_err(|x| x.to_string())?;
    let run = |cmd: &Path, args: &[&str], marker: &str| -> Result<(), String> {
        let o = std::process::Command::new(cmd)
            .args(args)
            .args(&files)
            .output()
            .map_err(|x| format!("{}: {}", cmd.display(), x))?;
        if !o.status.success() {
            return Err(format!(
                "{} {}: {}: {}",
                cmd.display(),
                args.join(" "),
                o.status,
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
        let n = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains(marker))
            .count();
        if n != files.len() {
            return Err(format!(
                "{} showed {} of {} files",
                cmd.display(),
                n,
                files.len()
            ));
        }
        Ok(())
    };
    let mut failed = false;
    match median3_ms(|| run(&me, &["all"], "Dump of file ")) {
        Ok(ms) => println!("BENCH pe_parse_all_system32 {} ms", ms),
        Err(x) => {
            println!("BENCH pe_parse_all_system32 FAILED {}", x);
            failed = true;
        }
    }
    let objdump = Path::new("/usr/bin").join(OBJDUMP);
    if objdump.exists() {
        match median3_ms(|| run(&objdump, &["-p"], "file format pei-")) {
            Ok(ms) => println!("BENCH objdump_p_all_system32 {} ms", ms),
            Err(x) => {
                println!("BENCH objdump_p_all_system32 FAILED {}", x);
                failed = true;
            }
        }
    }
    println!("BENCH pe_parse_all_system32_files {} files", files.len());
    if failed {
        return Err("the benchmark failed".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (files, parts): (&Files, &[Part]) = match &cli.cmd {
        Cmd::Headers(f) => (f, &[Part::Headers]),
        Cmd::Imports(f) => (f, &[Part::Imports]),
        Cmd::Exports(f) => (f, &[Part::Exports]),
        Cmd::Relocations(f) => (f, &[Part::Relocations]),
        Cmd::Tls(f) => (f, &[Part::Tls]),
        Cmd::Unwindinfo(f) => (f, &[Part::Unwind]),
        Cmd::Loadconfig(f) => (f, &[Part::LoadConfig]),
        Cmd::Debug(f) => (f, &[Part::Debug]),
        Cmd::Certificates(f) => (f, &[Part::Certificates]),
        Cmd::Checksum(f) => (f, &[Part::Checksum]),
        Cmd::All(f) => (f, ALL),
        Cmd::Man => {
            use clap::CommandFactory;
            let mut b = Vec::new();
            if let Err(x) = clap_mangen::Man::new(Cli::command()).render(&mut b) {
                eprintln!("ntrs-pe: man: {x}");
                return ExitCode::FAILURE;
            }
            write_stdout(&b);
            return ExitCode::SUCCESS;
        }
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            // Generated into memory: clap_complete panics when its writer fails.
            let mut b = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "ntrs-pe", &mut b);
            write_stdout(&b);
            return ExitCode::SUCCESS;
        }
        Cmd::Bench { dir } => {
            return match bench(dir.clone()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(x) => {
                    eprintln!("ntrs-pe: bench: {x}");
                    ExitCode::FAILURE
                }
            }
        }
    };
    ExitCode::from(show(&files.files, parts, cli.json))
}
