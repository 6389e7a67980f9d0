//! `ntrs-ntfs`: the ntrs NTFS implementation from the host, on an image file
//! or on a partition of a GPT disk image.

use clap::{Parser, Subcommand};
use ntfs::attr::{mft_no, AT_DATA};
use ntfs::{BlockDevice, FormatOptions, MemDevice, OffsetDevice, Volume};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "ntrs-ntfs", about = "ntrs NTFS tool")]
struct Cli {
    /// Disk or volume image.
    image: String,
    /// Use partition N (1-based) of a GPT disk image.
    #[arg(long)]
    partition: Option<u32>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List a directory.
    Ls {
        #[arg(default_value = "/")]
        path: String,
        /// Long listing (record number, size).
        #[arg(short, long)]
        long: bool,
    },
    /// Print a file (`path` or `path:stream`) to stdout.
    Cat { path: String },
    /// Copy: `cp HOSTFILE :path` (into the volume) or `cp :path HOSTFILE` (out).
    Cp { from: String, to: String },
    /// Create a directory (and missing parents).
    Mkdir { path: String },
    /// Remove a file or an empty directory.
    Rm { path: String },
    /// Rename or move.
    Mv { from: String, to: String },
    /// Show attributes, runs and the security descriptor (SDDL).
    Stat { path: String },
    /// Format the image (or partition) as NTFS.
    Format {
        /// Volume label.
        #[arg(long, default_value = "")]
        label: String,
        /// Cluster size in bytes.
        #[arg(long, default_value_t = 4096)]
        cluster_size: u32,
        /// Create the image with this size in MiB first.
        #[arg(long)]
        size_mib: Option<u64>,
    },
    /// Verify the volume (read-only chkdsk).
    Check,
    /// Volume information.
    Info,
    /// Benchmarks on in-memory volumes (the image argument is ignored; plain
    /// `ntrs-ntfs bench` works too).
    Bench,
}

/// A file-backed block device.
struct FileDevice {
    f: File,
    size: u64,
}

impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> ntfs::Result<()> {
        self.f
            .seek(SeekFrom::Start(offset))
            .map_err(|_| ntfs::Error::Io)?;
        self.f.read_exact(buf).map_err(|_| ntfs::Error::Io)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> ntfs::Result<()> {
        self.f
            .seek(SeekFrom::Start(offset))
            .map_err(|_| ntfs::Error::Io)?;
        self.f.write_all(buf).map_err(|_| ntfs::Error::Io)
    }
    fn flush(&mut self) -> ntfs::Result<()> {
        self.f.flush().map_err(|_| ntfs::Error::Io)
    }
}

/// Finds partition `n` (1-based) in a GPT disk: (first byte, length).
fn gpt_partition(dev: &mut FileDevice, n: u32) -> Result<(u64, u64), String> {
    let mut h = [0u8; 512];
    dev.read_at(512, &mut h).map_err(|e| e.to_string())?;
    if &h[0..8] != b"EFI PART" {
        return Err("no GPT header at LBA 1".into());
    }
    let le64 = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let le32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let entries_lba = le64(&h, 0x48);
    let count = le32(&h, 0x50);
    let esize = le32(&h, 0x54) as u64;
    if n == 0 || n > count || esize < 128 {
        return Err(format!("partition {n} out of range (1..={count})"));
    }
    let mut e = vec![0u8; esize as usize];
    dev.read_at(entries_lba * 512 + (n as u64 - 1) * esize, &mut e)
        .map_err(|e| e.to_string())?;
    let first = le64(&e, 0x20);
    let last = le64(&e, 0x28);
    if e[0..16].iter().all(|b| *b == 0) || last < first {
        return Err(format!("partition {n} is unused"));
    }
    Ok((first * 512, (last - first + 1) * 512))
}

fn open_dev(cli: &Cli, create_mib: Option<u64>) -> Result<OffsetDevice<FileDevice>, String> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create_mib.is_some())
        .truncate(false)
        .open(&cli.image)
        .map_err(|e| format!("{}: {e}", cli.image))?;
    if let Some(m) = create_mib {
        f.set_len(m * 1024 * 1024).map_err(|e| e.to_string())?;
    }
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    let mut dev = FileDevice { f, size };
    let (start, len) = match cli.partition {
        Some(n) => gpt_partition(&mut dev, n)?,
        None => (0, size),
    };
    OffsetDevice::new(dev, start, len).map_err(|e| e.to_string())
}

fn now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    116_444_736_000_000_000 + d.as_nanos() as u64 / 100
}

fn run(cli: Cli) -> Result<(), String> {
    let e = |x: ntfs::Error| format!("{x} ({})", x.status());
    if let Cmd::Bench = cli.cmd {
        return bench().map_err(e);
    }
    if let Cmd::Format {
        label,
        cluster_size,
        size_mib,
    } = &cli.cmd
    {
        let dev = open_dev(&cli, *size_mib)?;
        let opts = FormatOptions {
            label: label.clone(),
            cluster_size: *cluster_size,
            time: now(),
            ..Default::default()
        };
        let v = ntfs::format(dev, &opts).map_err(e)?;
        println!(
            "formatted: {} clusters of {} bytes",
            v.total_clusters(),
            v.cluster_size()
        );
        return Ok(());
    }
    let dev = open_dev(&cli, None)?;
    let mut v = Volume::open(dev).map_err(e)?;
    v.clock = now;
    match cli.cmd {
        Cmd::Ls { path, long } => {
            let n = v.lookup(&path).map_err(e)?;
            for d in v.read_dir(n).map_err(e)? {
                if long {
                    let kind = if d.is_dir() { "d" } else { "-" };
                    println!(
                        "{kind} {:>8} {:>12} {}",
                        d.mft_no(),
                        d.file_name.data_size,
                        d.name
                    );
                } else {
                    println!("{}", d.name);
                }
            }
        }
        Cmd::Cat { path } => {
            let data = v.read_file(&path).map_err(e)?;
            std::io::stdout()
                .write_all(&data)
                .map_err(|x| x.to_string())?;
        }
        Cmd::Cp { from, to } => match (from.strip_prefix(':'), to.strip_prefix(':')) {
            (None, Some(dst)) => {
                let data = std::fs::read(&from).map_err(|x| format!("{from}: {x}"))?;
                let n = v.write_file(dst, &data).map_err(e)?;
                // Keep the host file's modification time.
                if let Ok(m) = std::fs::metadata(&from).and_then(|m| m.modified()) {
                    if let Ok(d) = m.duration_since(std::time::UNIX_EPOCH) {
                        let t = 116_444_736_000_000_000 + d.as_nanos() as u64 / 100;
                        v.set_times(n, t, t, t).map_err(e)?;
                    }
                }
            }
            (Some(src), None) => {
                let data = v.read_file(src).map_err(e)?;
                std::fs::write(&to, data).map_err(|x| format!("{to}: {x}"))?;
            }
            _ => return Err("exactly one of FROM and TO must be :path inside the volume".into()),
        },
        Cmd::Mkdir { path } => {
            v.create_dir_all(&path).map_err(e)?;
        }
        Cmd::Rm { path } => v.remove(&path).map_err(e)?,
        Cmd::Mv { from, to } => v.rename(&from, &to).map_err(e)?,
        Cmd::Stat { path } => {
            let n = v.lookup(&path).map_err(e)?;
            let info = v.stat(n).map_err(e)?;
            println!(
                "record {} seq {} flags {:#x} links {}",
                info.mft_no, info.seq, info.record_flags, info.link_count
            );
            let si = &info.std_info;
            println!(
                "attributes {:#x} created {} modified {} mft-changed {} accessed {} security id {:#x}",
                si.file_attributes, si.creation, si.modification, si.mft_change, si.access, si.security_id
            );
            for f in &info.names {
                println!(
                    "name {:?} namespace {} parent {}",
                    f.name_string(),
                    f.namespace,
                    mft_no(f.parent)
                );
            }
            for s in &info.streams {
                println!(
                    "attr {:#x} {:?} size {} allocated {} {} flags {:#x}",
                    s.ty,
                    s.name,
                    s.size,
                    s.allocated,
                    if s.resident {
                        "resident"
                    } else {
                        "non-resident"
                    },
                    s.flags
                );
                for r in &s.runs {
                    match r.lcn {
                        Some(l) => println!("  vcn {} len {} lcn {}", r.vcn, r.len, l),
                        None => println!("  vcn {} len {} sparse", r.vcn, r.len),
                    }
                }
            }
            if info.reparse.is_some() {
                match v.reparse_point(n).map_err(e)? {
                    Some(ntfs::reparse::ReparsePoint::Symlink {
                        target,
                        print,
                        relative,
                    }) => {
                        println!(
                            "reparse symlink -> {target:?} (print {print:?}, relative {relative})"
                        )
                    }
                    Some(ntfs::reparse::ReparsePoint::MountPoint { target, print }) => {
                        println!("reparse junction -> {target:?} (print {print:?})")
                    }
                    Some(ntfs::reparse::ReparsePoint::Other { tag, data }) => {
                        println!("reparse tag {tag:#x} ({} bytes)", data.len())
                    }
                    None => {}
                }
            }
            match v.security_descriptor(n).map_err(e)? {
                Some(sd) => match security::sd::SecurityDescriptor::parse(&sd)
                    .and_then(|d| security::sddl::format(&d))
                {
                    Ok(s) => println!("security {s}"),
                    Err(st) => {
                        println!("security descriptor ({} bytes) not parsed: {st}", sd.len())
                    }
                },
                None => println!("security none"),
            }
            let _ = AT_DATA;
        }
        Cmd::Check => {
            let problems = ntfs::check(&mut v).map_err(e)?;
            for p in &problems {
                println!("{p}");
            }
            if !problems.is_empty() {
                return Err(format!("{} problem(s)", problems.len()));
            }
            println!("no problems found");
        }
        Cmd::Info => {
            let (maj, min, flags) = v.volume_version().map_err(e)?;
            println!("label {:?}", v.volume_name().map_err(e)?);
            println!("NTFS {maj}.{min} flags {flags:#x}");
            println!(
                "cluster size {} record size {} clusters {} MFT records {}",
                v.cluster_size(),
                v.record_size(),
                v.total_clusters(),
                v.mft_records()
            );
            println!("free clusters {}", v.free_cluster_count().map_err(e)?);
        }
        Cmd::Bench | Cmd::Format { .. } => unreachable!(),
    }
    Ok(())
}

fn bench() -> ntfs::Result<()> {
    // Create 10,000 small files.
    let opts = FormatOptions::default();
    let mut v = ntfs::format(MemDevice::new(256 << 20), &opts)?;
    v.create("/d", true)?;
    let t = Instant::now();
    for i in 0..10_000 {
        v.write_file(&format!("/d/file{i:05}.txt"), b"hello")?;
    }
    println!(
        "BENCH ntfs_create_10000_files {} ms",
        t.elapsed().as_millis()
    );
    // Read a 64 MiB file.
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    v.write_file("/big.bin", &data)?;
    // Streamed through a 1 MiB buffer, as ntfscat does.
    let t = Instant::now();
    let n = v.lookup("/big.bin")?;
    let st = v.open_stream(n, AT_DATA, &[])?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut off, mut sum) = (0u64, 0u64);
    loop {
        let got = v.read_stream_at(&st, off, &mut buf)?;
        if got == 0 {
            break;
        }
        sum = sum.wrapping_add(
            buf[..got]
                .iter()
                .step_by(4096)
                .map(|b| *b as u64)
                .sum::<u64>(),
        );
        off += got as u64;
    }
    let s = t.elapsed().as_secs_f64();
    let want: u64 = data.iter().step_by(4096).map(|b| *b as u64).sum();
    if off != data.len() as u64 || sum != want {
        return Err(ntfs::Error::Corrupt("bench: read back differs"));
    }
    println!("BENCH ntfs_read_64mib {:.0} MB/s", 64.0 * 1.048576 / s);
    // The same read by ntfs-3g's ntfscat on the same image, when installed.
    if std::path::Path::new("/usr/bin/ntfscat").exists() {
        let img = std::env::temp_dir().join(format!("ntrs-ntfs-bench-{}.img", std::process::id()));
        let dev = v.into_device();
        if std::fs::write(&img, &dev.data).is_ok() {
            let t = Instant::now();
            let st = std::process::Command::new("/usr/bin/ntfscat")
                .arg(&img)
                .arg("/big.bin")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            let s = t.elapsed().as_secs_f64();
            if st.is_ok_and(|s| s.success()) {
                println!(
                    "BENCH ntfs3g_ntfscat_read_64mib {:.0} MB/s",
                    64.0 * 1.048576 / s
                );
            }
            let _ = std::fs::remove_file(&img);
        }
    }
    // Lookups in a 100,000-entry directory.
    let mut v = ntfs::format(MemDevice::new(512 << 20), &opts)?;
    let dir = v.create("/big", true)?;
    for i in 0..100_000u32 {
        let name: Vec<u16> = format!("n{i:06}").encode_utf16().collect();
        v.create_in(dir, &name, false)?;
    }
    let t = Instant::now();
    let rounds = 20_000u32;
    for i in 0..rounds {
        let k = (i.wrapping_mul(7919)) % 100_000;
        let name: Vec<u16> = format!("n{k:06}").encode_utf16().collect();
        if v.lookup_in(dir, &name)?.is_none() {
            return Err(ntfs::Error::NotFound);
        }
    }
    println!(
        "BENCH ntfs_lookup_100000_dir {} ns",
        t.elapsed().as_nanos() / rounds as u128
    );
    Ok(())
}

fn main() -> ExitCode {
    // `ntrs-ntfs bench` needs no image (what `cargo xtask bench` runs).
    if std::env::args().nth(1).as_deref() == Some("bench") && std::env::args().len() == 2 {
        return match bench() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ntrs-ntfs: bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ntrs-ntfs: {e}");
            ExitCode::FAILURE
        }
    }
}
