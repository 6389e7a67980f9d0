//! Interop with MinGW's objdump: `ntrs-pe` must agree with
//! `x86_64-w64-mingw32-objdump -p -h` on every PE file of Debian's MinGW and
//! Wine packages (what `cargo xtask` setup installs). Without objdump or the
//! packages the test prints a skip message, unless NTRS_REQUIRE_INTEROP=1
//! makes it fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TOOL: &str = env!("CARGO_BIN_EXE_ntrs-pe");
const OBJDUMP: &str = "/usr/bin/x86_64-w64-mingw32-objdump";
/// The Debian packages whose PE files are compared (see xtask/src/setup.rs).
const PACKAGES: &[&str] = &[
    "libwine",
    "gcc-mingw-w64-x86-64-win32-runtime",
    "libz-mingw-w64",
];

fn skip_or_fail(why: &str) {
    if std::env::var("NTRS_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("{why} and NTRS_REQUIRE_INTEROP=1");
    }
    eprintln!("SKIP: {why}");
}

/// Every regular file with an MZ signature that the packages installed.
fn package_pe_files() -> Option<Vec<PathBuf>> {
    let mut files = Vec::new();
    for pkg in PACKAGES {
        let o = Command::new("dpkg").args(["-L", pkg]).output().ok()?;
        if !o.status.success() {
            skip_or_fail(&format!("Debian package {pkg} is not installed"));
            return None;
        }
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let p = Path::new(line);
            if !p.is_file() || p.is_symlink() {
                continue;
            }
            let mut head = [0u8; 2];
            let mz = std::fs::File::open(p)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok()
                && head == *b"MZ";
            if mz {
                files.push(p.to_path_buf());
            }
        }
    }
    files.sort();
    files.dedup();
    Some(files)
}

/// What objdump says about one file.
#[derive(Default, Debug)]
struct Objdump {
    fields: BTreeMap<String, u64>,
    dirs: Vec<(u64, u64)>,
    /// (name, VMA, size, flags line)
    sections: Vec<(String, u64, u64, String)>,
    /// DLL -> functions: ("name", hint) or ("#ordinal", 0)
    imports: Vec<(String, Vec<(String, u64)>)>,
    /// (ordinal, rva, forwarder)
    exports: Vec<(u64, u64, Option<String>)>,
    /// (function index, name)
    export_names: Vec<(u64, String)>,
    /// (type, size, RVA, file offset, "RSDS <signature> age <n> pdb <path>")
    debug: Vec<(u64, u64, u64, u64, Option<String>)>,
    /// Base relocation blocks: (page RVA, block size, [(offset, type name)]).
    relocs: Vec<RelocBlock>,
    /// UNWIND_INFO RVA -> decoded fields and codes, from the ".xdata" dump.
    unwind: BTreeMap<u64, Unwind>,
}

/// (page RVA, block size, [(offset, type name)]).
type RelocBlock = (u64, u64, Vec<(u64, String)>);

/// One UNWIND_INFO as objdump shows it: version, flags, number of codes,
/// prologue size, frame offset (raw), frame register, (pc offset, operation)
/// per code, handler VA.
#[derive(Default, Debug, PartialEq, Eq)]
struct Unwind {
    version: u64,
    flags: u64,
    codes_count: u64,
    prologue: u64,
    frame_offset: u64,
    frame_reg: String,
    codes: Vec<(u64, String)>,
    handler: Option<u64>,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad hex {s:?}"))
}

fn parse_objdump(text: &str) -> Objdump {
    let mut d = Objdump::default();
    let mut lines = text.lines().peekable();
    let mut mode = "";
    let mut xdata_at: Option<u64> = None;
    while let Some(l) = lines.next() {
        let t: Vec<&str> = l.split_whitespace().collect();
        if l.starts_with("There is a debug directory") {
            mode = "debug";
            continue;
        }
        if mode == "debug" {
            if let Some(cv) = l.strip_prefix("(format ") {
                // "(format RSDS signature <hex> age <n> pdb <path>)"
                let cv = cv.trim_end_matches(')').replace(" signature ", " ");
                if let Some(last) = d.debug.last_mut() {
                    last.4 = Some(cv);
                }
                continue;
            }
            if let [ty, _name, size, rva, off] = t.as_slice() {
                if let Ok(ty) = ty.parse() {
                    d.debug.push((ty, hex(size), hex(rva), hex(off), None));
                    continue;
                }
            }
            if l.is_empty() && !d.debug.is_empty() {
                mode = "";
            }
            continue;
        }
        if l.starts_with("The Import Tables") {
            mode = "imports";
            continue;
        }
        if l.starts_with("Export Address Table -- ") {
            mode = "eat";
            continue;
        }
        if l.starts_with("[Ordinal/Name Pointer] Table") {
            mode = "names";
            continue;
        }
        if l.starts_with("PE File Base Relocations") {
            mode = "relocs";
            continue;
        }
        if mode == "relocs" {
            if let Some(x) = l.strip_prefix("Virtual Address: ") {
                // "<page> Chunk size <n> (0x..) Number of fixups <m>"
                let f: Vec<&str> = x.split_whitespace().collect();
                d.relocs
                    .push((hex(f[0]), f[3].parse().unwrap(), Vec::new()));
                continue;
            }
            if let ["reloc", _, "offset", off, _, ty] = t.as_slice() {
                let b = d.relocs.last_mut().expect("fixup before its block");
                b.2.push((hex(off), ty.to_string()));
                continue;
            }
            if !l.is_empty() {
                mode = "";
            } else {
                continue;
            }
        }
        if l.starts_with("The Function Table")
            || l.starts_with("PE File Base Relocations")
            || l.starts_with("The Export Tables")
            || l.starts_with("There is")
        {
            mode = "";
            continue;
        }
        if l.starts_with("Sections:") {
            mode = "sections";
            continue;
        }
        if l.starts_with("Dump of .xdata") {
            mode = "xdata";
            continue;
        }
        if mode == "xdata" {
            if let Some(rest) = l.strip_prefix(' ') {
                // " <vma> (rva: <rva>): <begin> - <end>"
                if let Some(r) = rest.split("(rva: ").nth(1) {
                    let rva = hex(r.split(')').next().unwrap());
                    d.unwind.insert(rva, Unwind::default());
                    xdata_at = Some(rva);
                    continue;
                }
            }
            let cur = xdata_at.and_then(|r| d.unwind.get_mut(&r));
            if let (Some(u), Some(v)) = (cur, l.strip_prefix('\t')) {
                if let Some(x) = v.strip_prefix("Version: ") {
                    let (ver, fl) = x.split_once(", Flags: ").unwrap();
                    u.version = ver.parse().unwrap();
                    for f in fl.split(" | ") {
                        u.flags |= match f {
                            "UNW_FLAG_EHANDLER" => 1,
                            "UNW_FLAG_UHANDLER" => 2,
                            "UNW_FLAG_CHAININFO" => 4,
                            _ => 0,
                        };
                    }
                } else if let Some(x) = v.strip_prefix("Nbr codes: ") {
                    // "N, Prologue size: 0xNN, Frame offset: 0xN, Frame reg: R"
                    let f: Vec<&str> = x.split(", ").collect();
                    u.codes_count = f[0].parse().unwrap();
                    u.prologue = hex(f[1].trim_start_matches("Prologue size: 0x"));
                    u.frame_offset = hex(f[2].trim_start_matches("Frame offset: 0x"));
                    u.frame_reg = f[3].trim_start_matches("Frame reg: ").to_string();
                } else if let Some(x) = v.strip_prefix("  pc+0x") {
                    let (pc, op) = x.split_once(": ").unwrap();
                    let op = op.trim_end_matches(" [Unexpected!]");
                    let op = op.split(" (info").next().unwrap();
                    let op = if op.starts_with("interrupt entry") {
                        "interrupt entry"
                    } else {
                        op
                    };
                    u.codes.push((hex(pc), op.to_string()));
                } else if let Some(x) = v.strip_prefix("Handler: ") {
                    u.handler = Some(hex(x.trim_end_matches('.')));
                }
            }
            continue;
        }
        match (mode, t.as_slice()) {
            (
                "",
                [k @ ("ImageBase"
                | "AddressOfEntryPoint"
                | "CheckSum"
                | "Subsystem"
                | "SizeOfImage"
                | "SizeOfHeaders"
                | "SectionAlignment"
                | "FileAlignment"
                | "DllCharacteristics"
                | "NumberOfRvaAndSizes"), v, ..],
            ) => {
                d.fields.insert(k.to_string(), hex(v));
            }
            ("", ["Entry", _, rva, size, ..]) if rva.len() >= 8 => {
                d.dirs.push((hex(rva), hex(size)));
            }
            ("imports", ["DLL", "Name:", name]) => {
                d.imports.push((name.to_string(), Vec::new()));
            }
            ("imports", [vma, hint, name]) if l.starts_with('\t') && *vma != "vma:" => {
                let f = d.imports.last_mut().expect("function before DLL Name");
                if *name == "<none>" {
                    f.1.push((format!("#{}", hex(hint) & 0xFFFF), 0));
                } else {
                    f.1.push((
                        name.to_string(),
                        hint.parse().unwrap_or_else(|_| panic!("hint in {l:?}")),
                    ));
                }
            }
            ("eat", _) if l.contains("+base[") => {
                // "[   0] +base[   1] 4561f Forwarder RVA -- NTDLL.X" or "... bd24 Export RVA".
                let at = l.find("+base[").unwrap() + "+base[".len();
                let close = at + l[at..].find(']').expect("]");
                let ord: u64 = l[at..close].trim().parse().expect("ordinal");
                let rest: Vec<&str> = l[close + 1..].split_whitespace().collect();
                let rva = hex(rest[0]);
                let fwd = if rest.get(1) == Some(&"Forwarder") {
                    Some(rest[4..].join(" "))
                } else {
                    None
                };
                d.exports.push((ord, rva, fwd));
            }
            ("names", _) if l.starts_with("\t[") => {
                let close = l.find(']').expect("]");
                let idx: u64 = l[2..close].trim().parse().expect("name index");
                d.export_names.push((idx, l[close + 2..].to_string()));
            }
            ("sections", [idx, name, size, vma, _lma, _off, _algn])
                if idx.parse::<u32>().is_ok() =>
            {
                let flags = lines.next().unwrap_or("").trim().to_string();
                d.sections
                    .push((name.to_string(), hex(vma), hex(size), flags));
            }
            _ => {}
        }
    }
    d
}

fn ntrs(args: &[&str], files: &[PathBuf]) -> Vec<Value> {
    let o = Command::new(TOOL).args(args).args(files).output().unwrap();
    assert!(
        o.status.success() || args.contains(&"checksum"),
        "ntrs-pe {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    match v {
        Value::Array(a) => a,
        v => vec![v],
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// BFD's size of a section of an image: the virtual size when the raw data
/// is longer (padding) or, for uninitialized data (.bss), absent; else the
/// raw size.
fn bfd_size(s: &Value) -> u64 {
    let (vs, raw) = (u(&s["virtual_size"]), u(&s["size_of_raw_data"]));
    let bss = u(&s["characteristics"]) & 0x80 != 0;
    if vs != 0 && (vs < raw || (raw == 0 && bss)) {
        vs
    } else {
        raw
    }
}

/// Compares ntrs-pe with objdump on `files`; returns what was compared and
/// how many stored checksums of MinGW files were recomputed.
fn compare_with_objdump(files: &[PathBuf]) -> (BTreeMap<&'static str, usize>, usize) {
    let headers = ntrs(&["--json", "headers"], files);
    let imports = ntrs(&["--json", "imports"], files);
    let exports = ntrs(&["--json", "exports"], files);
    let checksums = ntrs(&["--json", "checksum"], files);
    let debug = ntrs(&["--json", "debug"], files);
    assert_eq!(headers.len(), files.len());
    let mut compared = BTreeMap::<&str, usize>::new();
    let mut checksummed = 0;
    for (i, f) in files.iter().enumerate() {
        let o = Command::new(OBJDUMP)
            .args(["-p", "-h"])
            .arg(f)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "objdump {}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let od = parse_objdump(&String::from_utf8_lossy(&o.stdout));
        let h = &headers[i];
        let ctx = f.display().to_string();
        assert_eq!(h["file"], ctx);
        let opt = &h["optional_header"];
        for (k, j) in [
            ("ImageBase", "image_base"),
            ("AddressOfEntryPoint", "address_of_entry_point"),
            ("CheckSum", "check_sum"),
            ("Subsystem", "subsystem"),
            ("SizeOfImage", "size_of_image"),
            ("SizeOfHeaders", "size_of_headers"),
            ("SectionAlignment", "section_alignment"),
            ("FileAlignment", "file_alignment"),
            ("DllCharacteristics", "dll_characteristics"),
            ("NumberOfRvaAndSizes", "number_of_rva_and_sizes"),
        ] {
            assert_eq!(od.fields.get(k).copied(), Some(u(&opt[j])), "{ctx}: {k}");
            *compared.entry(k).or_default() += 1;
        }
        // A checksum written by binutils (the MinGW runtime DLLs) must be what we compute.
        let ck = &checksums[i]["checksum"];
        assert_eq!(u(&ck["stored"]), u(&opt["check_sum"]));
        if ctx.contains("mingw") && u(&opt["check_sum"]) != 0 {
            assert_eq!(u(&ck["stored"]), u(&ck["computed"]), "{ctx}: checksum");
            checksummed += 1;
        }
        let dirs: Vec<(u64, u64)> = h["data_directories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (u(&d["rva"]), u(&d["size"])))
            .collect();
        assert_eq!(od.dirs, dirs, "{ctx}: data directories");
        let base = u(&opt["image_base"]);
        let secs = h["sections"].as_array().unwrap();
        assert_eq!(od.sections.len(), secs.len(), "{ctx}: section count");
        for (s, (name, vma, size, flags)) in secs.iter().zip(&od.sections) {
            assert_eq!(s["name"], name.as_str(), "{ctx}: section name");
            assert_eq!(base + u(&s["virtual_address"]), *vma, "{ctx}: {name} VMA");
            assert_eq!(bfd_size(s), *size, "{ctx}: {name} size");
            let c = u(&s["characteristics"]);
            let has = |f: &str| flags.split(", ").any(|x| x == f);
            assert_eq!(c & 0x20 != 0, has("CODE"), "{ctx}: {name} CODE ({flags})");
            assert_eq!(
                c & 0x8000_0000 == 0,
                has("READONLY"),
                "{ctx}: {name} READONLY ({flags})"
            );
            *compared.entry("section").or_default() += 1;
        }
        // Imports: DLL names in order, each with its functions (names with hints, or ordinals).
        let ours: Vec<(String, Vec<(String, u64)>)> = imports[i]["imports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let fs = d["functions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| match f.get("ordinal") {
                        Some(o) => (format!("#{}", u(o)), 0),
                        None => (f["name"].as_str().unwrap().to_string(), u(&f["hint"])),
                    })
                    .collect();
                (d["dll"].as_str().unwrap().to_string(), fs)
            })
            .collect();
        assert_eq!(ours, od.imports, "{ctx}: imports");
        *compared.entry("import").or_default() += ours.iter().map(|d| d.1.len()).sum::<usize>();
        // Debug directory entries and CodeView records.
        let dbg: Vec<(u64, u64, u64, u64, Option<String>)> = debug[i]["debug"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let cv = d["codeview"].as_object().map(|c| {
                    let key = c["symbol_server_key"]
                        .as_str()
                        .unwrap()
                        .to_ascii_lowercase();
                    format!(
                        "{} {} age {} pdb {}",
                        c["format"].as_str().unwrap(),
                        &key[..32.min(key.len())],
                        u(&c["age"]),
                        c["pdb_path"].as_str().unwrap()
                    )
                });
                (
                    u(&d["type_code"]),
                    u(&d["size_of_data"]),
                    u(&d["address_of_raw_data"]),
                    u(&d["pointer_to_raw_data"]),
                    cv,
                )
            })
            .collect();
        assert_eq!(dbg, od.debug, "{ctx}: debug directory");
        *compared.entry("debug").or_default() += dbg.len();
        // Base relocations, block by block.
        let rx = ntrs(&["--json", "relocations"], std::slice::from_ref(f));
        let ours: Vec<RelocBlock> = rx[0]["relocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let e = b["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (u(&e["offset"]), e["type"].as_str().unwrap().to_string()))
                    .collect();
                (u(&b["page_rva"]), u(&b["block_size"]), e)
            })
            .collect();
        assert_eq!(ours, od.relocs, "{ctx}: base relocations");
        *compared.entry("relocation").or_default() += ours.iter().map(|b| b.2.len()).sum::<usize>();
        // The exception directory's UNWIND_INFOs, decoded.
        let ux = ntrs(&["--json", "unwindinfo"], std::slice::from_ref(f));
        let mut ours = BTreeMap::new();
        for fx in ux[0]["exception_functions"].as_array().unwrap() {
            let reg = fx["frame_register"].as_str().unwrap_or("none").to_string();
            let codes = fx["codes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let r = c["register"].as_str().unwrap_or("");
                    let text = match c["op"].as_str().unwrap() {
                        "PUSH_NONVOL" => format!("push {r}"),
                        "ALLOC_SMALL" => {
                            format!("alloc small area: rsp = rsp - {:#x}", u(&c["size"]))
                        }
                        "ALLOC_LARGE" => {
                            format!("alloc large area: rsp = rsp - {:#x}", u(&c["size"]))
                        }
                        "SET_FPREG" => {
                            format!("FPReg: {reg} = rsp + {:#x}", u(&fx["frame_offset"]))
                        }
                        "SAVE_NONVOL" | "SAVE_NONVOL_FAR" | "SAVE_XMM128" | "SAVE_XMM128_FAR" => {
                            format!("save {r} at rsp + {:#x}", u(&c["offset"]))
                        }
                        "PUSH_MACHFRAME" => "interrupt entry".to_string(),
                        op => format!("{op} {c}"),
                    };
                    (u(&c["code_offset"]), text)
                })
                .collect();
            let uw = Unwind {
                version: u(&fx["version"]),
                flags: u(&fx["flags"]),
                codes_count: u(&fx["count_of_codes"]),
                prologue: u(&fx["size_of_prolog"]),
                frame_offset: u(&fx["frame_offset"]) / 16,
                frame_reg: reg,
                codes,
                handler: fx["handler"].as_u64().map(|h| base + h),
            };
            ours.insert(u(&fx["unwind_info"]), uw);
        }
        // objdump leaves out its .xdata dump when the function table has
        // anomalies (entries sharing a begin address): nothing to compare.
        if od.unwind.is_empty() && !ours.is_empty() {
            *compared
                .entry("unwind_info_not_dumped_by_objdump")
                .or_default() += 1;
            ours.clear();
        }
        assert_eq!(ours.len(), od.unwind.len(), "{ctx}: UNWIND_INFO count");
        for (rva, uw) in &ours {
            assert_eq!(
                Some(uw),
                od.unwind.get(rva),
                "{ctx}: UNWIND_INFO at {rva:#x}"
            );
        }
        *compared.entry("unwind_info").or_default() += ours.len();
        // Exports: ordinals, RVAs, forwarders, and each name's function index.
        let ex = &exports[i]["exports"];
        if ex.is_null() {
            assert!(od.exports.is_empty(), "{ctx}: objdump sees exports");
            continue;
        }
        let obase = u(&ex["ordinal_base"]);
        let mut ours: Vec<(u64, u64, Option<String>)> = Vec::new();
        let mut names: Vec<(u64, String)> = Vec::new();
        for fx in ex["functions"].as_array().unwrap() {
            let ord = u(&fx["ordinal"]);
            ours.push((
                ord,
                u(&fx["rva"]),
                fx["forwarder"].as_str().map(String::from),
            ));
            for n in fx["names"].as_array().unwrap() {
                names.push((
                    u(&n["hint"]),
                    format!("{}\0{}", ord - obase, n["name"].as_str().unwrap()),
                ));
            }
        }
        names.sort();
        let names: Vec<(u64, String)> = names
            .into_iter()
            .map(|(_, s)| {
                let (i, n) = s.split_once('\0').unwrap();
                (i.parse().unwrap(), n.to_string())
            })
            .collect();
        assert_eq!(ours, od.exports, "{ctx}: export address table");
        assert_eq!(names, od.export_names, "{ctx}: export names");
        *compared.entry("export").or_default() += ours.len();
    }
    (compared, checksummed)
}

#[test]
fn agrees_with_mingw_objdump_on_debian_pe_files() {
    if !Path::new(OBJDUMP).exists() {
        skip_or_fail(&format!(
            "{OBJDUMP} is not installed (Debian binutils-mingw-w64-x86-64)"
        ));
        return;
    }
    let Some(files) = package_pe_files() else {
        return;
    };
    assert!(
        files.len() >= 100,
        "only {} PE files in {PACKAGES:?}",
        files.len()
    );
    let (compared, checksummed) = compare_with_objdump(&files);
    assert!(
        compared.get("unwind_info").copied().unwrap_or(0) >= 10_000
            && compared.get("relocation").copied().unwrap_or(0) >= 10_000,
        "too few UNWIND_INFOs or relocations compared: {compared:?}"
    );
    assert!(
        checksummed >= 5,
        "only {checksummed} MinGW DLLs with a checksum"
    );
    eprintln!(
        "compared {} PE files with objdump: {:?}, {} checksums recomputed",
        files.len(),
        compared,
        checksummed
    );
}

/// ntrs's own PE images (ntoskrnl, the boot manager, winload, the drivers),
/// linked by lld with CodeView debug directories, when they have been built
/// (`cargo xtask test` builds the kernel before the host tests).
#[test]
fn agrees_with_mingw_objdump_on_ntrs_images() {
    if !Path::new(OBJDUMP).exists() {
        skip_or_fail(&format!(
            "{OBJDUMP} is not installed (Debian binutils-mingw-w64-x86-64)"
        ));
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["ntos", "boot", "drivers"] {
        let d = root.join(dir).join("target/x86_64-unknown-uefi/release");
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "efi") {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        eprintln!("SKIP: no ntrs image built yet (cargo xtask build)");
        return;
    }
    let (compared, _) = compare_with_objdump(&files);
    assert!(
        compared.get("debug").copied().unwrap_or(0) >= 1,
        "no debug directory among {files:?}"
    );
    eprintln!(
        "compared {} ntrs images with objdump: {:?}",
        files.len(),
        compared
    );
}
