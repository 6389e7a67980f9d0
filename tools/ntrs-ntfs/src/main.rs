//! `ntrs-ntfs`: the ntrs NTFS implementation from the host, on an image file
//! or on a partition of a GPT or MBR disk image.

use clap::{Parser, Subcommand};
use ntfs::attr::{mft_no, AT_DATA};
use ntfs::{BlockDevice, FormatOptions, MemDevice, OffsetDevice, Volume};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

const EXAMPLES: &str = "\
Volume paths: /dir/file or :/dir/file in every subcommand (`cp` needs the ':' to tell the volume
side from the host side); '\\' separates components too, and file:stream names a data stream.

Examples:
  ntrs-ntfs disk.img --partition 2 ls -l /Windows/System32
  ntrs-ntfs vol.img ls -a /        # also the metafiles $MFT, $Bitmap, ... and .
  ntrs-ntfs vol.img cp ./ntoskrnl.exe :/Windows/System32/ntoskrnl.exe
  ntrs-ntfs vol.img cp :/Windows/System32/config/SYSTEM ./SYSTEM
  ntrs-ntfs vol.img mkdir :/Windows/Temp
  ntrs-ntfs vol.img ads /                     # every alternate data stream on the volume
  ntrs-ntfs vol.img cat /file.txt:Zone.Identifier
  ntrs-ntfs vol.img stat /bootmgr
  ntrs-ntfs vol.img mft 0                     # MFT record 0 ($MFT), every attribute decoded
  ntrs-ntfs vol.img timeline > timeline.csv
  ntrs-ntfs vol.img recover --list             # deleted files, and whether their clusters are intact
  ntrs-ntfs vol.img recover /old.txt -o old.txt # copy a deleted file out (or give its record number)
  ntrs-ntfs vol.img secaudit                   # $Secure descriptors as SDDL, hashes checked
  ntrs-ntfs vol.img format --label SYSTEM --size-mib 64
  ntrs-ntfs man > ntrs-ntfs.1                 # manual page (no image needed)
  ntrs-ntfs completions bash > ntrs-ntfs.bash # shell completions: bash, zsh, fish, ...

Every failure prints one line naming the problem and exits with status 1; a closed output pipe
(`ntrs-ntfs vol.img ls | head -1`) ends the command quietly.";

#[derive(Parser)]
#[command(
    name = "ntrs-ntfs",
    about = "NTFS volume tool (the ntrs NTFS driver's code, on an image file or a partition of a GPT or MBR disk image)",
    after_help = EXAMPLES
)]
struct Cli {
    /// Disk or volume image.
    image: String,
    /// Use partition N (1-based) of a GPT or MBR disk image (MBR: 1-4 primary, 5 on logical).
    #[arg(long)]
    partition: Option<u32>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List a directory: metafiles ($MFT, ..., records below 16) and `.` are hidden unless -a.
    Ls {
        #[arg(default_value = "/")]
        path: String,
        /// Long listing: mode (d a r h s l c p e: directory, archive, read-only, hidden, system,
        /// reparse point, compressed, sparse, encrypted), file reference (record and sequence
        /// number, hex), size, created and modified times ($STANDARD_INFORMATION, UTC), the
        /// 8.3 short name ("-" when none), name.
        #[arg(short, long)]
        long: bool,
        /// Also the metafiles and `.`.
        #[arg(short, long)]
        all: bool,
    },
    /// Print a file (`path` or `path:stream`) to stdout.
    Cat { path: String },
    /// Copy: `cp HOSTFILE :path` (into the volume), `cp :path HOSTFILE` (out) or
    /// `cp :path :path` (inside the volume).
    Cp { from: String, to: String },
    /// Create a directory (and missing parents).
    Mkdir { path: String },
    /// Remove a file or an empty directory.
    Rm { path: String },
    /// Rename or move.
    Mv { from: String, to: String },
    /// Show attributes, runs and the security descriptor (SDDL).
    Stat { path: String },
    /// Dump MFT record N (in use or not) with every attribute of the record decoded: header,
    /// $STANDARD_INFORMATION, $FILE_NAME, $VOLUME_NAME, resident sizes, non-resident runs.
    Mft { record: u64 },
    /// List alternate data streams (named $DATA attributes) of a file, or of every file below a
    /// directory: `path:stream size` per line.
    Ads {
        #[arg(default_value = "/")]
        path: String,
    },
    /// MACB timeline of every file record as CSV: one row per $STANDARD_INFORMATION and per
    /// $FILE_NAME attribute (times in ISO 8601 UTC).
    Timeline,
    /// Deleted files whose MFT record still parses: `recover --list` lists them (record,
    /// sequence, size, modified time, whether $Bitmap still has their clusters free, path);
    /// `recover RECORD|NAME -o FILE` copies one out (refused when clusters were reallocated,
    /// unless --force).
    Recover {
        /// Record number, path (as --list shows it) or name of the deleted file.
        target: Option<String>,
        /// Host file to create (`-` for standard output).
        #[arg(short, long)]
        output: Option<String>,
        /// List the deleted files.
        #[arg(long)]
        list: bool,
        /// Copy even when $Bitmap shows some of the file's clusters allocated again.
        #[arg(long)]
        force: bool,
    },
    /// $Secure audit: every security descriptor in $SDS as SDDL with its id, hash (verified),
    /// mirror copy and $SII/$SDH entries, and the files that use it; exits 1 on any problem.
    Secaudit {
        /// List every file using each descriptor (default: the first 10).
        #[arg(long)]
        all_files: bool,
    },
    /// Dump $LogFile: both restart pages (version, sizes, current LSN, flags, clients), the
    /// last checkpoint's tables, then every record still in the log by LSN: type, transaction,
    /// previous/undo-next LSN, redo/undo operation names, target attribute, VCN, offsets, LCNs.
    /// With --raw, IMAGE is an extracted $LogFile instead of a volume; --recover replays a
    /// dirty log written by ntrs (redo, then undo of transactions that did not commit) and marks
    /// it clean.
    Logfile {
        /// IMAGE is a $LogFile copied out of a volume.
        #[arg(long)]
        raw: bool,
        /// Run restart recovery on the volume (writes to the image).
        #[arg(long, conflicts_with = "raw")]
        recover: bool,
        /// Print at most N records.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// List the USN change journal ($Extend\$UsnJrnl:$J): the journal's id, first and next
    /// USN and sizes, then every record in the shape of `fsutil usn readjournal` (USN, file
    /// name, reason flags, time stamp, attributes, file and parent file references, source
    /// info, security id, version, record length).
    Usn,
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
        /// Generate 8.3 short names for long names (off by default, as Windows formats data
        /// volumes; `format /S:enable`).
        #[arg(long)]
        short_names: bool,
    },
    /// Verify the volume (read-only chkdsk).
    Check,
    /// Volume information.
    Info,
    /// Benchmarks on in-memory volumes (the image argument is ignored; plain
    /// `ntrs-ntfs bench` works too).
    Bench,
}

/// Why a command stopped.
enum Fail {
    /// A problem, one line.
    Msg(String),
    /// Standard output was closed (`| head`): stop quietly.
    Pipe,
}

impl From<String> for Fail {
    fn from(m: String) -> Self {
        Fail::Msg(m)
    }
}

impl From<&str> for Fail {
    fn from(m: &str) -> Self {
        Fail::Msg(m.into())
    }
}

fn io_fail(e: std::io::Error) -> Fail {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Fail::Pipe
    } else {
        Fail::Msg(format!("writing the output: {e}"))
    }
}

/// `writeln!` to the (buffered) output that stops the command on a closed pipe instead of
/// panicking.
macro_rules! outln {
    ($w:expr, $($t:tt)*) => {
        writeln!($w, $($t)*).map_err(io_fail)?
    };
}

mod forensic;

/// `println!` for the benchmark figures: a closed pipe is ignored.
macro_rules! benchln {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// The volume path of a command argument: `:/p` and `/p` (and `p`) name the same file.
fn vpath(s: &str) -> &str {
    s.strip_prefix(':').unwrap_or(s)
}

/// The last failed device access, for the error line (what was read where, and why).
static LAST_IO: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// A device that remembers its last failed access.
struct Traced<D>(D);

impl<D: BlockDevice> Traced<D> {
    fn note(&self, what: &str, offset: u64, len: usize, e: &ntfs::Error) {
        let size = self.0.size();
        let m = if offset.saturating_add(len as u64) > size {
            format!("{what} of {len} bytes at offset {offset:#x} is past the end of the image or partition ({size:#x} bytes): truncated image or corrupt volume")
        } else {
            format!("{what} of {len} bytes at offset {offset:#x} failed: {e}")
        };
        if let Ok(mut g) = LAST_IO.lock() {
            *g = Some(m);
        }
    }
}

impl<D: BlockDevice> BlockDevice for Traced<D> {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> ntfs::Result<()> {
        let r = self.0.read_at(offset, buf);
        if let Err(e) = &r {
            self.note("read", offset, buf.len(), e);
        }
        r
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> ntfs::Result<()> {
        let r = self.0.write_at(offset, buf);
        if let Err(e) = &r {
            self.note("write", offset, buf.len(), e);
        }
        r
    }
    fn flush(&mut self) -> ntfs::Result<()> {
        self.0.flush()
    }
}

/// One line for an NTFS error: the error, its NTSTATUS, and for device errors what failed.
fn ntfs_msg(x: ntfs::Error) -> String {
    let detail = match x {
        ntfs::Error::Io | ntfs::Error::OutOfRange => LAST_IO
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .map(|d| format!(": {d}"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!("{x} ({}){detail}", x.status())
}

/// A file-backed block device. Small reads are served from a read-ahead window (a timeline
/// reads every MFT record in order: one system call per window instead of per record) that
/// starts at 16 KiB and doubles, up to 1 MiB, while reads stay sequential, so scattered reads
/// (opening a volume, one lookup) do not each copy a megabyte; writes go to the file and update
/// the window.
struct FileDevice {
    f: File,
    size: u64,
    window: Vec<u8>,
    window_at: u64,
    /// Length of the next window read.
    next_window: u64,
}

/// Largest and smallest [`FileDevice`] read-ahead window.
const WINDOW: u64 = 1 << 20;
const MIN_WINDOW: u64 = 16 << 10;

impl FileDevice {
    fn new(f: File, size: u64) -> Self {
        FileDevice {
            f,
            size,
            window: Vec::new(),
            window_at: 0,
            next_window: MIN_WINDOW,
        }
    }
}

impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> ntfs::Result<()> {
        use std::os::unix::fs::FileExt;
        let len = buf.len() as u64;
        let end = offset.checked_add(len).ok_or(ntfs::Error::OutOfRange)?;
        if len > WINDOW / 4 || end > self.size {
            return self
                .f
                .read_exact_at(buf, offset)
                .map_err(|_| ntfs::Error::Io);
        }
        let inside = offset >= self.window_at && end <= self.window_at + self.window.len() as u64;
        if !inside {
            let start = offset & !(4096 - 1);
            let window_end = self.window_at + self.window.len() as u64;
            self.next_window =
                if !self.window.is_empty() && (self.window_at..=window_end).contains(&offset) {
                    (self.next_window * 2).min(WINDOW)
                } else {
                    MIN_WINDOW
                };
            let want = self.next_window.max((end - start).next_multiple_of(4096));
            let n = want.min(self.size - start) as usize;
            self.window.resize(n, 0);
            if self.f.read_exact_at(&mut self.window, start).is_err() {
                self.window.clear();
                return Err(ntfs::Error::Io);
            }
            self.window_at = start;
        }
        let o = (offset - self.window_at) as usize;
        buf.copy_from_slice(&self.window[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> ntfs::Result<()> {
        use std::os::unix::fs::FileExt;
        self.f
            .write_all_at(buf, offset)
            .map_err(|_| ntfs::Error::Io)?;
        // Keep the window equal to the file where they overlap.
        let (ws, we) = (self.window_at, self.window_at + self.window.len() as u64);
        let (s, e) = (offset.max(ws), (offset + buf.len() as u64).min(we));
        if s < e {
            self.window[(s - ws) as usize..(e - ws) as usize]
                .copy_from_slice(&buf[(s - offset) as usize..(e - offset) as usize]);
        }
        Ok(())
    }
    fn flush(&mut self) -> ntfs::Result<()> {
        self.f.flush().map_err(|_| ntfs::Error::Io)
    }
}

/// The image as 512-byte sectors for lib/storage's partition table readers.
struct Sectors<'a>(&'a mut FileDevice);

impl storage::gpt::SectorSource for Sectors<'_> {
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), nt::NtStatus> {
        let at = lba
            .checked_mul(512)
            .ok_or(nt::status::STATUS_INVALID_PARAMETER)?;
        self.0
            .read_at(at, buf)
            .map_err(|_| nt::status::STATUS_DEVICE_DATA_ERROR)
    }
}

/// Finds partition `n` (1-based) of a partitioned disk image: (first byte, length). A GPT disk
/// (the primary table, or the backup when the primary is damaged) numbers its entries in array
/// order; an MBR disk numbers primary partitions by slot (1-4) and logical partitions from 5.
fn find_partition(dev: &mut FileDevice, n: u32) -> Result<(u64, u64), String> {
    let parts = partitions(dev)?;
    let Some(&(_, first, sectors)) = parts.iter().find(|p| p.0 == n) else {
        let list: Vec<String> = parts.iter().map(|p| p.0.to_string()).collect();
        return Err(format!(
            "partition {n} is not used (used: {})",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        ));
    };
    match (first.checked_mul(512), sectors.checked_mul(512)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!("partition {n}: sector range overflows")),
    }
}

/// The used partitions of a partitioned disk image, read once: (number as [`find_partition`]
/// takes it, first sector, sectors).
fn partitions(dev: &mut FileDevice) -> Result<Vec<(u32, u64, u64)>, String> {
    use storage::gpt::GptError;
    let total = dev.size / 512;
    match storage::gpt::read(&mut Sectors(dev), 512, total) {
        Ok(g) => Ok(g
            .partitions
            .iter()
            .filter(|p| p.sectors() != 0)
            .map(|p| (p.entry_index + 1, p.first_lba, p.sectors()))
            .collect()),
        Err(GptError::NoSignature) | Err(GptError::DiskTooSmall) => {
            let parts = storage::mbr::read(&mut Sectors(dev), 512, total).map_err(|e| match e {
                storage::mbr::MbrError::NoSignature => {
                    "no partition table (neither a GPT nor an MBR)".to_string()
                }
                e => format!("MBR: {e}"),
            })?;
            Ok(parts
                .iter()
                .filter(|p| p.sectors != 0)
                .map(|p| (p.number, p.first_lba, p.sectors))
                .collect())
        }
        Err(e) => Err(format!("GPT: {e}")),
    }
}

/// For an image that is not a volume: the partitions holding NTFS (by boot sector), as a hint
/// to pass `--partition`; empty when the image has no partition table.
fn partition_hint(cli: &Cli) -> String {
    let Ok(f) = File::open(&cli.image) else {
        return String::new();
    };
    let Ok(size) = f.metadata().map(|m| m.len()) else {
        return String::new();
    };
    let mut dev = FileDevice::new(f, size);
    let Ok(parts) = partitions(&mut dev) else {
        return String::new();
    };
    let mut found = Vec::new();
    for (n, first, _) in parts {
        let mut boot = [0u8; 11];
        let ntfs = first
            .checked_mul(512)
            .is_some_and(|at| dev.read_at(at, &mut boot).is_ok() && &boot[3..11] == b"NTFS    ");
        if ntfs {
            found.push(n.to_string());
        }
    }
    match found.len() {
        0 => String::new(),
        1 => format!(
            " (the image is a partitioned disk: use --partition {})",
            found[0]
        ),
        _ => format!(
            " (the image is a partitioned disk with NTFS in partitions {}: use --partition N)",
            found.join(", ")
        ),
    }
}

fn open_dev(
    cli: &Cli,
    create_mib: Option<u64>,
    write: bool,
) -> Result<Traced<OffsetDevice<FileDevice>>, String> {
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .create(create_mib.is_some())
        .truncate(false)
        .open(&cli.image)
        .map_err(|e| e.to_string())?;
    if let Some(m) = create_mib {
        let bytes = m
            .checked_mul(1024 * 1024)
            .ok_or("--size-mib is too large")?;
        f.set_len(bytes).map_err(|e| e.to_string())?;
    }
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    let mut dev = FileDevice::new(f, size);
    let (start, len) = match cli.partition {
        Some(n) => find_partition(&mut dev, n)?,
        None => (0, size),
    };
    if start.saturating_add(len) > size {
        return Err(format!(
            "partition ends at byte {:#x}, past the end of the image ({size:#x} bytes)",
            start.saturating_add(len)
        ));
    }
    OffsetDevice::new(dev, start, len)
        .map(Traced)
        .map_err(|e| e.to_string())
}

fn now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    116_444_736_000_000_000 + d.as_nanos() as u64 / 100
}

/// Mode letters of `ls -l`: directory, archive, read-only, hidden, system, reparse point,
/// compressed, sparse, encrypted.
fn mode(attrs: u32, dir: bool) -> String {
    use ntfs::attr::*;
    let flags = [
        (dir, 'd'),
        (attrs & FILE_ATTRIBUTE_ARCHIVE != 0, 'a'),
        (attrs & FILE_ATTRIBUTE_READONLY != 0, 'r'),
        (attrs & FILE_ATTRIBUTE_HIDDEN != 0, 'h'),
        (attrs & FILE_ATTRIBUTE_SYSTEM != 0, 's'),
        (attrs & FILE_ATTRIBUTE_REPARSE_POINT != 0, 'l'),
        (attrs & FILE_ATTRIBUTE_COMPRESSED != 0, 'c'),
        (attrs & FILE_ATTRIBUTE_SPARSE_FILE != 0, 'p'),
        (attrs & 0x4000 != 0, 'e'),
    ];
    flags
        .iter()
        .map(|&(on, c)| if on { c } else { '-' })
        .collect()
}

/// A time as `2026-01-01 12:00:00` (UTC, seconds).
fn short_time(t: u64) -> String {
    let f = nt::time::time_to_time_fields(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        f.year, f.month, f.day, f.hour, f.minute, f.second
    )
}

/// `usn`: the journal's state, then its records as `fsutil usn readjournal` prints them.
fn usn_list<D: BlockDevice>(v: &mut Volume<D>, out: &mut impl Write) -> Result<(), Fail> {
    use ntfs::usn::UsnRecord;
    let Some(_) = v.query_usn_journal().map_err(ntfs_msg)? else {
        return Err(Fail::from(
            "no USN journal ($Extend\\$UsnJrnl) on this volume".to_string(),
        ));
    };
    let (j, recs) = v.usn_records().map_err(ntfs_msg)?;
    outln!(out, "Usn Journal ID   : {:#018x}", j.journal_id);
    outln!(out, "First Usn        : {:#018x}", j.first_usn);
    outln!(out, "Next Usn         : {:#018x}", j.next_usn);
    outln!(out, "Lowest Valid Usn : {:#018x}", j.lowest_valid_usn);
    outln!(out, "Max Usn          : {:#018x}", j.max_usn);
    outln!(out, "Maximum Size     : {:#018x}", j.maximum_size);
    outln!(out, "Allocation Delta : {:#018x}", j.allocation_delta);
    for r in &recs {
        let attrs = r.file_attributes;
        outln!(out, "");
        outln!(out, "Usn               : {}", r.usn);
        outln!(
            out,
            "File name         : {}",
            String::from_utf16_lossy(&r.name)
        );
        outln!(out, "File name length  : {}", 2 * r.name.len());
        outln!(
            out,
            "Reason            : {:#010x}: {}",
            r.reason,
            UsnRecord::reason_text(r.reason)
        );
        outln!(out, "Time stamp        : {}", short_time(r.timestamp));
        outln!(
            out,
            "File attributes   : {:#010x}: {}",
            attrs,
            mode(attrs, attrs & 0x10 != 0)
        );
        outln!(out, "File ID           : {:016x}", r.file_reference);
        outln!(out, "Parent file ID    : {:016x}", r.parent_reference);
        outln!(out, "Source info       : {:#010x}", r.source_info);
        outln!(out, "Security ID       : {}", r.security_id);
        outln!(out, "Major version     : 2");
        outln!(out, "Minor version     : 0");
        outln!(out, "Record length     : {}", r.len());
    }
    Ok(())
}

/// Whether a command changes the volume (the image is opened for writing only then).
fn writes(cmd: &Cmd) -> bool {
    match cmd {
        Cmd::Cp { to, .. } => to.starts_with(':'),
        Cmd::Mkdir { .. } | Cmd::Rm { .. } | Cmd::Mv { .. } | Cmd::Format { .. } => true,
        Cmd::Logfile { recover, .. } => *recover,
        _ => false,
    }
}

fn run(cli: Cli) -> Result<(), Fail> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let r = run_cmd(cli, &mut out);
    // What was written before a failure is shown; a closed pipe ends quietly either way.
    let f = out.flush().map_err(io_fail);
    match (r, f) {
        (Err(Fail::Msg(m)), _) => Err(Fail::Msg(m)),
        (r, f) => r.and(f),
    }
}

fn run_cmd(cli: Cli, out: &mut impl Write) -> Result<(), Fail> {
    let e = ntfs_msg;
    if let Cmd::Bench = cli.cmd {
        return bench().map_err(|x| Fail::Msg(e(x)));
    }
    if let Cmd::Format {
        label,
        cluster_size,
        size_mib,
        short_names,
    } = &cli.cmd
    {
        let dev = open_dev(&cli, *size_mib, true)?;
        let opts = FormatOptions {
            label: label.clone(),
            cluster_size: *cluster_size,
            time: now(),
            short_names: *short_names,
            ..Default::default()
        };
        let v = ntfs::format(dev, &opts).map_err(e)?;
        outln!(
            out,
            "formatted: {} clusters of {} bytes",
            v.total_clusters(),
            v.cluster_size()
        );
        return Ok(());
    }
    if let Cmd::Logfile {
        raw: true, limit, ..
    } = cli.cmd
    {
        let bytes = std::fs::read(&cli.image).map_err(|x| Fail::Msg(x.to_string()))?;
        return forensic::logfile(&bytes, limit, out);
    }
    let dev = open_dev(&cli, None, writes(&cli.cmd))?;
    let mut v = match Volume::open(dev) {
        Ok(v) => v,
        Err(x @ ntfs::Error::NotNtfs(_)) if cli.partition.is_none() => {
            return Err(Fail::Msg(format!("{}{}", e(x), partition_hint(&cli))));
        }
        Err(x) => return Err(Fail::Msg(e(x))),
    };
    v.clock = now;
    match cli.cmd {
        Cmd::Ls { path, long, all } => {
            let path = vpath(&path);
            let n = v.lookup(path).map_err(e)?;
            let mut entries = v.read_dir(n).map_err(e)?;
            if !all {
                // As Windows enumerates: the metafiles (records 0..15, `.` is the root's own
                // entry, record 5) are not listed.
                entries.retain(|d| d.mft_no() >= 16);
            }
            for d in entries {
                if !long {
                    outln!(out, "{}", d.name);
                    continue;
                }
                let info = v.stat(d.mft_no()).map_err(e)?;
                let dir = info.is_dir();
                let short = info
                    .names
                    .iter()
                    .find(|f| f.namespace == ntfs::attr::NS_DOS && f.parent == d.file_name.parent)
                    .map(|f| f.name_string())
                    .unwrap_or_else(|| "-".into());
                let fref = (info.seq as u64) << 48 | info.mft_no;
                let size = if dir {
                    "-".to_string()
                } else {
                    info.size().to_string()
                };
                outln!(
                    out,
                    "{} {:#018x} {:>12} {} {} {:<12} {}",
                    mode(info.std_info.file_attributes, dir),
                    fref,
                    size,
                    short_time(info.std_info.creation),
                    short_time(info.std_info.modification),
                    short,
                    d.name
                );
            }
        }
        Cmd::Cat { path } => {
            let data = v.read_file(vpath(&path)).map_err(e)?;
            out.write_all(&data).map_err(io_fail)?;
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
            (Some(src), Some(dst)) => {
                let data = v.read_file(src).map_err(e)?;
                v.write_file(dst, &data).map_err(e)?;
            }
            (None, None) => {
                return Err(
                    "cp: one of FROM and TO must be a volume path written :/path (the other is a host file)".into(),
                )
            }
        },
        Cmd::Mkdir { path } => {
            v.create_dir_all(vpath(&path)).map_err(e)?;
        }
        Cmd::Rm { path } => v.remove(vpath(&path)).map_err(e)?,
        Cmd::Mv { from, to } => v.rename(vpath(&from), vpath(&to)).map_err(e)?,
        Cmd::Stat { path } => {
            let n = v.lookup(vpath(&path)).map_err(e)?;
            let info = v.stat(n).map_err(e)?;
            outln!(
                out,
                "record {} seq {} flags {:#x} links {}",
                info.mft_no,
                info.seq,
                info.record_flags,
                info.link_count
            );
            let si = &info.std_info;
            outln!(
                out,
                "attributes {:#x} created {} modified {} mft-changed {} accessed {} security id {:#x}",
                si.file_attributes, si.creation, si.modification, si.mft_change, si.access, si.security_id
            );
            for f in &info.names {
                outln!(
                    out,
                    "name {:?} namespace {} parent {}",
                    f.name_string(),
                    f.namespace,
                    mft_no(f.parent)
                );
            }
            for s in &info.streams {
                outln!(
                    out,
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
                        Some(l) => outln!(out, "  vcn {} len {} lcn {}", r.vcn, r.len, l),
                        None => outln!(out, "  vcn {} len {} sparse", r.vcn, r.len),
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
                        outln!(
                            out,
                            "reparse symlink -> {target:?} (print {print:?}, relative {relative})"
                        )
                    }
                    Some(ntfs::reparse::ReparsePoint::MountPoint { target, print }) => {
                        outln!(out, "reparse junction -> {target:?} (print {print:?})")
                    }
                    Some(ntfs::reparse::ReparsePoint::Other { tag, data }) => {
                        outln!(out, "reparse tag {tag:#x} ({} bytes)", data.len())
                    }
                    None => {}
                }
            }
            match v.security_descriptor(n).map_err(e)? {
                Some(sd) => match security::sd::SecurityDescriptor::parse(&sd)
                    .and_then(|d| security::sddl::format(&d))
                {
                    Ok(s) => outln!(out, "security {s}"),
                    Err(st) => {
                        outln!(out, "security descriptor ({} bytes) not parsed: {st}", sd.len())
                    }
                },
                None => outln!(out, "security none"),
            }
        }
        Cmd::Timeline => timeline(&mut v, out)?,
        Cmd::Usn => usn_list(&mut v, out)?,
        Cmd::Recover {
            target,
            output,
            list,
            force,
        } => forensic::recover(
            &mut v,
            target.as_deref(),
            output.as_deref(),
            list,
            force,
            out,
        )?,
        Cmd::Secaudit { all_files } => forensic::secaudit(&mut v, all_files, out)?,
        Cmd::Logfile {
            recover: true,
            ..
        } => {
            let (redone, undone) = v.recover().map_err(e)?;
            outln!(out, "recovery: {redone} record(s) redone, {undone} undone; log clean");
        }
        Cmd::Logfile { limit, .. } => {
            let bytes = v
                .read_stream_all(ntfs::volume::rec::LOGFILE, AT_DATA, &[])
                .map_err(e)?;
            forensic::logfile(&bytes, limit, out)?
        }
        Cmd::Mft { record } => {
            let r = v.read_record(record).map_err(e)?;
            mft_dump(&r, out)?;
        }
        Cmd::Ads { path } => {
            let p = vpath(&path).trim_end_matches(['/', '\\']);
            let n = v.lookup(p).map_err(e)?;
            // Depth-first over the tree (a file is its own tree); metafiles are left out.
            let mut stack = vec![(n, p.to_string())];
            let mut seen = std::collections::BTreeSet::new();
            while let Some((n, p)) = stack.pop() {
                if !seen.insert(n) {
                    continue;
                }
                let info = v.stat(n).map_err(e)?;
                for s in &info.streams {
                    if s.ty == AT_DATA && !s.name.is_empty() {
                        outln!(out, "{}:{} {}", if p.is_empty() { "/" } else { &p }, s.name, s.size);
                    }
                }
                if info.is_dir() {
                    let mut subs = v.read_dir(n).map_err(e)?;
                    subs.retain(|d| d.mft_no() >= 16);
                    for d in subs.into_iter().rev() {
                        stack.push((d.mft_no(), format!("{p}/{}", d.name)));
                    }
                }
            }
        }
        Cmd::Check => {
            let problems = ntfs::check(&mut v).map_err(e)?;
            for p in &problems {
                outln!(out, "{p}");
            }
            if !problems.is_empty() {
                return Err(format!("{} problem(s)", problems.len()).into());
            }
            outln!(out, "no problems found");
        }
        Cmd::Info => {
            let (maj, min, flags) = v.volume_version().map_err(e)?;
            outln!(out, "label {:?}", v.volume_name().map_err(e)?);
            outln!(out, "NTFS {maj}.{min} flags {flags:#x}");
            outln!(
                out,
                "cluster size {} record size {} clusters {} MFT records {}",
                v.cluster_size(),
                v.record_size(),
                v.total_clusters(),
                v.mft_records()
            );
            outln!(out, "free clusters {}", v.free_cluster_count().map_err(e)?);
        }
        Cmd::Bench | Cmd::Format { .. } => unreachable!(),
    }
    Ok(())
}

/// Name of a standard attribute type (`$AttrDef`).
fn attr_type_name(ty: u32) -> &'static str {
    match ty {
        0x10 => "$STANDARD_INFORMATION",
        0x20 => "$ATTRIBUTE_LIST",
        0x30 => "$FILE_NAME",
        0x40 => "$OBJECT_ID",
        0x50 => "$SECURITY_DESCRIPTOR",
        0x60 => "$VOLUME_NAME",
        0x70 => "$VOLUME_INFORMATION",
        0x80 => "$DATA",
        0x90 => "$INDEX_ROOT",
        0xA0 => "$INDEX_ALLOCATION",
        0xB0 => "$BITMAP",
        0xC0 => "$REPARSE_POINT",
        0xD0 => "$EA_INFORMATION",
        0xE0 => "$EA",
        0x100 => "$LOGGED_UTILITY_STREAM",
        _ => "(unknown)",
    }
}

/// `mft N`: the record header and each attribute the record holds, decoded.
fn mft_dump(r: &ntfs::record::Record, out: &mut impl Write) -> Result<(), Fail> {
    use ntfs::attr::{FileName, StandardInformation, AT_FILE_NAME, AT_STANDARD_INFORMATION};
    use ntfs::record::Body;
    let iso = nt::time::Iso8601;
    outln!(
        out,
        "record {} sequence {} ({}{}) links {} base {:#018x} lsn {:#x}",
        r.number,
        r.seq,
        if r.in_use() { "in use" } else { "not in use" },
        if r.flags & ntfs::record::MFT_RECORD_IS_DIRECTORY != 0 {
            ", directory"
        } else {
            ""
        },
        r.link_count,
        r.base,
        r.lsn
    );
    for a in &r.attrs {
        let name = String::from_utf16_lossy(&a.name);
        let body = match &a.body {
            Body::Resident { value, .. } => format!("resident, {} bytes", value.len()),
            Body::NonResident(n) => format!(
                "non-resident, vcn {}..={}, size {} allocated {} initialized {}{}",
                n.start_vcn,
                n.last_vcn,
                n.data_size,
                n.allocated_size,
                n.initialized_size,
                if n.compression_unit != 0 {
                    format!(", compression unit 2^{}", n.compression_unit)
                } else {
                    String::new()
                }
            ),
        };
        outln!(
            out,
            "attribute {:#x} {}{} instance {} flags {:#x}: {}",
            a.ty,
            attr_type_name(a.ty),
            if name.is_empty() {
                String::new()
            } else {
                format!(" \"{name}\"")
            },
            a.instance,
            a.flags,
            body
        );
        let value = a.value();
        match a.ty {
            AT_STANDARD_INFORMATION => {
                if let Some(si) = value.and_then(|b| StandardInformation::parse(b).ok()) {
                    outln!(
                        out,
                        "  modified {} accessed {} changed {} born {}",
                        iso(si.modification),
                        iso(si.access),
                        iso(si.mft_change),
                        iso(si.creation)
                    );
                    outln!(
                        out,
                        "  attributes {:#x} owner id {} security id {:#x} usn {:#x}",
                        si.file_attributes,
                        si.owner_id,
                        si.security_id,
                        si.usn
                    );
                }
            }
            AT_FILE_NAME => {
                if let Some(f) = value.and_then(|b| FileName::parse(b).ok()) {
                    outln!(
                        out,
                        "  name {:?} namespace {} parent {} (sequence {})",
                        f.name_string(),
                        f.namespace,
                        mft_no(f.parent),
                        f.parent >> 48
                    );
                    outln!(
                        out,
                        "  modified {} accessed {} changed {} born {}",
                        iso(f.modification),
                        iso(f.access),
                        iso(f.mft_change),
                        iso(f.creation)
                    );
                    outln!(
                        out,
                        "  size {} allocated {} flags {:#x}",
                        f.data_size,
                        f.allocated_size,
                        f.flags
                    );
                }
            }
            0x60 => {
                if let Some(b) = value {
                    let u: Vec<u16> = b
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect();
                    outln!(out, "  label {:?}", String::from_utf16_lossy(&u));
                }
            }
            _ => {}
        }
        if let Some(n) = a.nonres() {
            for run in &n.runs {
                match run.lcn {
                    Some(l) => outln!(out, "  vcn {} len {} lcn {}", run.vcn, run.len, l),
                    None => outln!(out, "  vcn {} len {} sparse", run.vcn, run.len),
                }
            }
        }
    }
    Ok(())
}

/// One file record's time sources, for `timeline`.
struct TimelineRecord {
    seq: u16,
    in_use: bool,
    dir: bool,
    size: u64,
    si: Option<ntfs::attr::StandardInformation>,
    names: Vec<ntfs::attr::FileName>,
}

/// A CSV field (RFC 4180 quoting when needed).
fn csv(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Paths of `timeline` records: each directory's path is built once and kept, so a row's path
/// is its parent's path and its own name.
struct TimelinePaths<'a> {
    recs: &'a [Option<TimelineRecord>],
    /// The path of a record through its first non-DOS name, once built.
    memo: Vec<Option<std::rc::Rc<str>>>,
    /// Records on the walk being built (a loop ends there).
    visiting: Vec<bool>,
}

impl<'a> TimelinePaths<'a> {
    fn new(recs: &'a [Option<TimelineRecord>]) -> Self {
        TimelinePaths {
            recs,
            memo: vec![None; recs.len()],
            visiting: vec![false; recs.len()],
        }
    }

    /// The path, `\` separated, of the name `name` of record `n` in directory `parent`: the
    /// root's children start with `\`; when an ancestor is missing, is not in use under the
    /// sequence number the reference names, or leads back to a record already on the walk, or
    /// the chain is longer than 256 names, the path starts with `?` and holds the names that
    /// could be followed.
    fn path(&mut self, n: u64, name: &str, parent: u64) -> String {
        let n = n as usize;
        let was = self.visiting.get(n).copied();
        if was.is_some() {
            self.visiting[n] = true;
        }
        let p = self.path_at(name, parent, 0);
        if let Some(was) = was {
            self.visiting[n] = was;
        }
        p
    }

    fn path_at(&mut self, name: &str, parent: u64, depth: usize) -> String {
        let pn = mft_no(parent);
        let prefix = if pn == 5 {
            None
        } else {
            Some(self.dir_path(pn, parent >> 48, depth + 1))
        };
        let head = match &prefix {
            None => "",
            Some(Some(p)) => p,
            Some(None) => "?",
        };
        let mut s = String::with_capacity(head.len() + 1 + name.len());
        s.push_str(head);
        s.push('\\');
        s.push_str(name);
        s
    }

    /// The path of directory `pn` as a reference with sequence number `seq` names it; `None`
    /// when it cannot be followed.
    fn dir_path(&mut self, pn: u64, seq: u64, depth: usize) -> Option<std::rc::Rc<str>> {
        let recs = self.recs;
        let i = pn as usize;
        let p = recs.get(i)?.as_ref().filter(|p| p.seq as u64 == seq)?;
        if self.visiting[i] || depth > 256 {
            return None;
        }
        if let Some(m) = &self.memo[i] {
            return Some(m.clone());
        }
        let f = p.names.iter().find(|f| f.namespace != ntfs::attr::NS_DOS)?;
        self.visiting[i] = true;
        let path: std::rc::Rc<str> = self.path_at(&f.name_string(), f.parent, depth).into();
        self.visiting[i] = false;
        // A path that could not be followed to the root depends on where the walk started:
        // only rooted paths are kept.
        if path.starts_with('\\') {
            self.memo[i] = Some(path.clone());
        }
        Some(path)
    }
}

/// One record's `timeline` sources from its bytes as stored (fixups applied here): `Ok(None)`
/// for an extension record or one with neither `$STANDARD_INFORMATION` nor `$FILE_NAME`,
/// `Err(signature)` when the record does not parse.
fn timeline_record<D: BlockDevice>(
    v: &mut Volume<D>,
    n: u64,
    raw: &mut [u8],
) -> Result<Option<TimelineRecord>, [u8; 4]> {
    use ntfs::attr::AT_STANDARD_INFORMATION;
    use ntfs::attr::{FileName, StandardInformation, AT_ATTRIBUTE_LIST, AT_FILE_NAME};
    let sig: [u8; 4] = raw[..4].try_into().unwrap_or_default();
    ntfs::record::unfixup(raw, b"FILE").map_err(|_| sig)?;
    let r = ntfs::record::RecordView::parse(raw, n).map_err(|_| sig)?;
    // As `Volume::read_record` would: every attribute must decode.
    // The first unnamed $STANDARD_INFORMATION and $DATA count, as `Record::find` finds them.
    let mut si = None;
    let mut names: Vec<FileName> = Vec::new();
    let mut size = None;
    let mut listed = false;
    for a in r.attrs() {
        let a = a.map_err(|_| sig)?;
        if a.non_resident {
            a.to_attr(n).map_err(|_| sig)?;
        }
        match a.ty {
            AT_STANDARD_INFORMATION if si.is_none() && a.named(&[]) => {
                si = Some(a.value().and_then(|b| StandardInformation::parse(b).ok()));
            }
            AT_FILE_NAME => {
                if let Some(f) = a.value().and_then(|b| FileName::parse(b).ok()) {
                    names.push(f);
                }
            }
            AT_DATA if size.is_none() && a.named(&[]) => size = Some(a.data_size()),
            AT_ATTRIBUTE_LIST if a.named(&[]) => listed = true,
            _ => {}
        }
    }
    let (si, size) = (si.flatten(), size.unwrap_or(0));
    if r.base != 0 {
        return Ok(None);
    }
    let dir = r.flags & ntfs::record::MFT_RECORD_IS_DIRECTORY != 0;
    // $STANDARD_INFORMATION and $FILE_NAME are always resident: the base record holds them,
    // unless an $ATTRIBUTE_LIST moved some to extension records (then stat gathers them).
    if r.in_use() && listed {
        if let Ok(info) = v.stat(n) {
            return Ok(Some(TimelineRecord {
                seq: info.seq,
                in_use: true,
                dir,
                size: info.size(),
                si: Some(info.std_info),
                names: info.names,
            }));
        }
    }
    // As the record holds them (for a deleted record: what is left of it).
    if si.is_none() && names.is_empty() {
        return Ok(None);
    }
    Ok(Some(TimelineRecord {
        seq: r.seq,
        in_use: r.in_use(),
        dir,
        size,
        si,
        names,
    }))
}

/// `timeline`: for every file record (in use or deleted, whose record still parses), one CSV
/// row for its `$STANDARD_INFORMATION` and one per `$FILE_NAME`, with the four MACB times
/// (modified, accessed, MFT entry changed, born) as ISO 8601 UTC.
fn timeline<D: BlockDevice>(v: &mut Volume<D>, out: &mut impl Write) -> Result<(), Fail> {
    use ntfs::attr::FileName;
    let mut recs: Vec<Option<TimelineRecord>> = Vec::new();
    let mut unreadable = 0u64;
    let total = v.mft_records();
    let rs = v.record_size();
    // The MFT is read 1024 records at a time (past the device's read-ahead window: straight
    // into the buffer); a batch that cannot be read whole (a run that does not map) is read
    // record by record, so one bad place loses only its records.
    const BATCH: usize = 1024;
    let mut batch = vec![0u8; BATCH * rs];
    let mut first = 0u64;
    while first < total {
        let got = match v.read_records_raw(first, &mut batch) {
            Ok(0) => break,
            Ok(k) => k,
            Err(_) => {
                let k = (total - first).min(BATCH as u64) as usize;
                for (i, chunk) in batch.chunks_exact_mut(rs).take(k).enumerate() {
                    match v.read_record_raw(first + i as u64) {
                        Ok(b) if b.len() == rs => chunk.copy_from_slice(&b),
                        _ => chunk.fill(0),
                    }
                }
                k
            }
        };
        for (i, raw) in batch.chunks_exact_mut(rs).take(got).enumerate() {
            let n = first + i as u64;
            match timeline_record(v, n, raw) {
                Ok(Some(t)) => {
                    recs.resize_with(n as usize + 1, || None);
                    recs[n as usize] = Some(t);
                }
                Ok(None) => {}
                // Never-used records are skipped; a record with a signature that does not
                // parse is damaged and counted.
                Err(sig) => {
                    if sig == *b"FILE" || sig == *b"BAAD" {
                        unreadable += 1;
                    }
                }
            }
        }
        first += got as u64;
    }
    outln!(out, "{}", TIMELINE_HEADER);
    let mut paths = TimelinePaths::new(&recs);
    // Rows are built in one buffer written out in large pieces.
    let mut line: Vec<u8> = Vec::with_capacity(64 << 10);
    for (n, t) in recs.iter().enumerate() {
        let Some(t) = t else { continue };
        let main = t
            .names
            .iter()
            .find(|f| f.namespace != ntfs::attr::NS_DOS)
            .or(t.names.first());
        let mut path = |f: &FileName| {
            if n == 5 {
                "\\".to_string()
            } else {
                paths.path(n as u64, &f.name_string(), f.parent)
            }
        };
        let mut common = Vec::with_capacity(32);
        push_u64(&mut common, n as u64);
        common.push(b',');
        push_u64(&mut common, t.seq.into());
        common.extend_from_slice(if t.in_use { b",yes," } else { b",deleted," });
        common.extend_from_slice(if t.dir { b"dir" } else { b"file" });
        if let Some(si) = &t.si {
            let p = main.map(&mut path).unwrap_or_default();
            timeline_row(
                &mut line,
                &common,
                b"SI,",
                &p,
                [si.modification, si.access, si.mft_change, si.creation],
                t.size,
                si.file_attributes,
            );
        }
        for f in &t.names {
            let ns: &[u8] = match f.namespace {
                ntfs::attr::NS_POSIX => b"FN,posix",
                ntfs::attr::NS_WIN32 => b"FN,win32",
                ntfs::attr::NS_DOS => b"FN,dos",
                _ => b"FN,win32+dos",
            };
            let p = path(f);
            timeline_row(
                &mut line,
                &common,
                ns,
                &p,
                [f.modification, f.access, f.mft_change, f.creation],
                f.data_size,
                f.flags,
            );
        }
        if line.len() >= 60 << 10 {
            out.write_all(&line).map_err(io_fail)?;
            line.clear();
        }
    }
    out.write_all(&line).map_err(io_fail)?;
    if unreadable > 0 {
        eprintln!("ntrs-ntfs: warning: timeline: {unreadable} damaged MFT record(s) left out");
    }
    Ok(())
}

/// Appends `v` in decimal.
fn push_u64(b: &mut Vec<u8>, mut v: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    b.extend_from_slice(&d[i..]);
}

/// Appends `v` as `0x` and lower-case hexadecimal digits (as `{:#x}`).
fn push_hex(b: &mut Vec<u8>, mut v: u64) {
    let mut d = [0u8; 16];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    b.extend_from_slice(b"0x");
    b.extend_from_slice(&d[i..]);
}

/// Appends one `timeline` row: the record's columns, the source and namespace, the path (CSV
/// quoted when needed), the four times, the size and the attributes, and a line feed.
fn timeline_row(
    b: &mut Vec<u8>,
    common: &[u8],
    source: &[u8],
    path: &str,
    times: [u64; 4],
    size: u64,
    attributes: u32,
) {
    b.extend_from_slice(common);
    b.push(b',');
    b.extend_from_slice(source);
    b.push(b',');
    b.extend_from_slice(csv(path).as_bytes());
    for t in times {
        b.push(b',');
        match nt::time::Iso8601(t).digits() {
            Some(d) => b.extend_from_slice(&d),
            None => b.extend_from_slice(nt::time::Iso8601(t).to_string().as_bytes()),
        }
    }
    b.push(b',');
    push_u64(b, size);
    b.push(b',');
    push_hex(b, attributes.into());
    b.push(b'\n');
}

/// Columns of `timeline`: MACB = modified, accessed, changed (MFT entry), born.
const TIMELINE_HEADER: &str =
    "record,sequence,state,type,source,namespace,path,modified,accessed,changed,born,size,attributes";

fn bench() -> ntfs::Result<()> {
    // Create 10,000 small files.
    let opts = FormatOptions::default();
    let mut v = ntfs::format(MemDevice::new(256 << 20), &opts)?;
    v.create("/d", true)?;
    let t = Instant::now();
    for i in 0..10_000 {
        v.write_file(&format!("/d/file{i:05}.txt"), b"hello")?;
    }
    benchln!(
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
    benchln!("BENCH ntfs_read_64mib {:.0} MB/s", 64.0 * 1.048576 / s);
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
                benchln!(
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
    benchln!(
        "BENCH ntfs_lookup_100000_dir {} ns",
        t.elapsed().as_nanos() / rounds as u128
    );
    bench_timeline()
}

/// Median of three timed runs of `f` in milliseconds; each run must succeed.
fn median3_ms(mut f: impl FnMut() -> Result<(), String>) -> Result<u128, String> {
    let mut t = Vec::new();
    for _ in 0..3 {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_millis());
    }
    t.sort();
    Ok(t[1])
}

/// `ntfs_timeline_5000_files`: `ntrs-ntfs IMAGE timeline` (a process, output read from a pipe)
/// on a volume image with 5000 files in 50 directories, against ntfs-3g's `ntfsls -R` on the
/// same image when installed. The timeline must have a row per `$STANDARD_INFORMATION` and
/// `$FILE_NAME` of every file, ntfsls a line per file.
fn bench_timeline() -> ntfs::Result<()> {
    let opts = FormatOptions::default();
    let mut v = ntfs::format(MemDevice::new(64 << 20), &opts)?;
    for d in 0..50 {
        v.create(&format!("/dir{d:02}"), true)?;
        for f in 0..100 {
            v.write_file(&format!("/dir{d:02}/file{f:03}.txt"), b"data")?;
        }
    }
    let img = std::env::temp_dir().join(format!("ntrs-ntfs-timeline-{}.img", std::process::id()));
    std::fs::write(&img, &v.into_device().data).map_err(|_| ntfs::Error::Io)?;
    let run = |prog: &std::path::Path, args: &[&std::ffi::OsStr], min_lines: usize| {
        median3_ms(|| {
            let o = std::process::Command::new(prog)
                .args(args)
                .output()
                .map_err(|x| x.to_string())?;
            let lines = o.stdout.split(|&b| b == b'\n').count();
            if !o.status.success() || lines < min_lines {
                return Err(format!(
                    "{} exited {}, {lines} lines",
                    prog.display(),
                    o.status
                ));
            }
            Ok(())
        })
    };
    let mut failed = false;
    let me = std::env::current_exe().map_err(|_| ntfs::Error::Io)?;
    match run(&me, &[img.as_os_str(), "timeline".as_ref()], 1 + 2 * 5000) {
        Ok(ms) => benchln!("BENCH ntfs_timeline_5000_files {ms} ms"),
        Err(x) => {
            benchln!("BENCH ntfs_timeline_5000_files FAILED {x}");
            failed = true;
        }
    }
    let ntfsls = std::path::Path::new("/usr/bin/ntfsls");
    if ntfsls.exists() {
        match run(ntfsls, &["-R".as_ref(), img.as_os_str()], 5000) {
            Ok(ms) => benchln!("BENCH ntfs3g_ntfsls_R_5000_files {ms} ms"),
            Err(x) => {
                benchln!("BENCH ntfs3g_ntfsls_R_5000_files FAILED {x}");
                failed = true;
            }
        }
    }
    if std::env::var_os("NTRS_KEEP_BENCH_IMAGE").is_some() {
        eprintln!("ntrs-ntfs: bench: image kept: {}", img.display());
    } else {
        let _ = std::fs::remove_file(&img);
    }
    if failed {
        return Err(ntfs::Error::Corrupt("timeline benchmark failed"));
    }
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
    // `ntrs-ntfs man` / `ntrs-ntfs completions SHELL` need no image either.
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.len()) {
        (Some("man"), 2) => {
            use clap::CommandFactory;
            let mut b = Vec::new();
            if clap_mangen::Man::new(Cli::command())
                .render(&mut b)
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            return write_generated(&b);
        }
        (Some("completions"), 3) => {
            use clap::{CommandFactory, ValueEnum};
            let Ok(shell) = clap_complete::Shell::from_str(&args[2], true) else {
                eprintln!("ntrs-ntfs: completions: unknown shell {} (bash, elvish, fish, powershell, zsh)", args[2]);
                return ExitCode::from(2);
            };
            // Generated into memory: clap_complete panics when its writer fails.
            let mut b = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ntrs-ntfs", &mut b);
            return write_generated(&b);
        }
        _ => {}
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Usage errors: the one line that names the problem.
            let r = e.render().to_string();
            let line = r.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "ntrs-ntfs: {} (see ntrs-ntfs --help)",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let image = cli.image.clone();
    match run(cli) {
        Ok(()) | Err(Fail::Pipe) => ExitCode::SUCCESS,
        Err(Fail::Msg(m)) => {
            eprintln!("ntrs-ntfs: {image}: {m}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a generated manual page or completion script to stdout, ending as
/// every command does: quietly on a closed pipe, one line on another failure.
fn write_generated(b: &[u8]) -> ExitCode {
    match std::io::stdout().write_all(b).map_err(io_fail) {
        Ok(()) | Err(Fail::Pipe) => ExitCode::SUCCESS,
        Err(Fail::Msg(m)) => {
            eprintln!("ntrs-ntfs: {m}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl_rec(seq: u16, names: &[(&str, u64)]) -> Option<TimelineRecord> {
        Some(TimelineRecord {
            seq,
            in_use: true,
            dir: true,
            size: 0,
            si: None,
            names: names
                .iter()
                .map(|&(n, parent)| ntfs::attr::FileName {
                    parent,
                    creation: 0,
                    modification: 0,
                    mft_change: 0,
                    access: 0,
                    allocated_size: 0,
                    data_size: 0,
                    flags: 0,
                    reparse: 0,
                    namespace: ntfs::attr::NS_WIN32,
                    name: n.encode_utf16().collect(),
                })
                .collect(),
        })
    }

    /// Timeline paths: rooted chains, a parent reused under another sequence number, a
    /// missing parent, a record that is its own parent and a loop of two directories.
    #[test]
    fn timeline_paths_follow_parents_and_stop_at_broken_links() {
        let r = |n: u64, seq: u64| n | seq << 48;
        let mut recs: Vec<Option<TimelineRecord>> = (0..64).map(|_| None).collect();
        recs[5] = tl_rec(5, &[(".", r(5, 5))]);
        recs[30] = tl_rec(1, &[("a", r(5, 5))]);
        recs[31] = tl_rec(1, &[("b", r(30, 1))]);
        recs[40] = tl_rec(1, &[("x", r(41, 1))]);
        recs[41] = tl_rec(1, &[("y", r(40, 1))]);
        recs[42] = tl_rec(1, &[("self", r(42, 1))]);
        let mut p = TimelinePaths::new(&recs);
        assert_eq!(p.path(32, "f", r(31, 1)), "\\a\\b\\f");
        // The memo gives the same answer the second time.
        assert_eq!(p.path(33, "g", r(31, 1)), "\\a\\b\\g");
        assert_eq!(p.path(34, "h", r(31, 2)), "?\\h", "reused parent");
        assert_eq!(p.path(35, "i", r(60, 1)), "?\\i", "missing parent");
        assert_eq!(p.path(42, "self", r(42, 1)), "?\\self");
        // The loop ends where it comes back to a record on the walk.
        assert_eq!(p.path(40, "x", r(41, 1)), "?\\y\\x");
        assert_eq!(p.path(50, "z", r(40, 1)), "?\\y\\x\\z");
        assert_eq!(p.path(51, "top", r(5, 5)), "\\top");
    }

    /// The read-ahead window returns what the file holds: across window boundaries, after
    /// writes inside and outside it, and fails past the end.
    #[test]
    fn file_device_window_matches_the_file() {
        let p = std::env::temp_dir().join(format!("ntrs-ntfs-window-{}", std::process::id()));
        let size = 3 * WINDOW as usize + 1000;
        let mut model: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        std::fs::write(&p, &model).unwrap();
        let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let mut d = FileDevice::new(f, size as u64);
        let mut x = 12345u64;
        for i in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 33) as usize % 9000 + 1;
            let off = (x >> 13) as usize % (size - len);
            if i % 5 == 0 {
                let data: Vec<u8> = (0..len).map(|j| (j + i) as u8).collect();
                d.write_at(off as u64, &data).unwrap();
                model[off..off + len].copy_from_slice(&data);
            } else {
                let mut b = vec![0; len];
                d.read_at(off as u64, &mut b).unwrap();
                assert_eq!(b, &model[off..off + len], "read {len} at {off}");
            }
        }
        let mut b = [0u8; 16];
        assert!(d.read_at(size as u64 - 8, &mut b).is_err());
        drop(d);
        assert_eq!(std::fs::read(&p).unwrap(), model);
        let _ = std::fs::remove_file(&p);
    }
}
