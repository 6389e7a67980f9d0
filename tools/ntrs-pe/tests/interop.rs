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
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad hex {s:?}"))
}

fn parse_objdump(text: &str) -> Objdump {
    let mut d = Objdump::default();
    let mut lines = text.lines().peekable();
    let mut mode = "";
    while let Some(l) = lines.next() {
        let t: Vec<&str> = l.split_whitespace().collect();
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
/// is longer (padding) or absent (.bss), else the raw size.
fn bfd_size(s: &Value) -> u64 {
    let (vs, raw) = (u(&s["virtual_size"]), u(&s["size_of_raw_data"]));
    if vs != 0 && (vs < raw || raw == 0) {
        vs
    } else {
        raw
    }
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
    let headers = ntrs(&["--json", "headers"], &files);
    let imports = ntrs(&["--json", "imports"], &files);
    let exports = ntrs(&["--json", "exports"], &files);
    let checksums = ntrs(&["--json", "checksum"], &files);
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
