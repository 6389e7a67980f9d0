//! The fuzzing entry point, shared by `fuzz/` (cargo-fuzz) and the host
//! test that replays the committed corpus.

use crate::check::check;
use crate::device::MemDevice;
use crate::volume::Volume;

/// Mounts `data` as a volume and exercises every read path (listing,
/// lookups, reading every file and stream, security descriptors, the
/// checker), then a few writes. Must never panic, whatever `data` holds.
pub fn fuzz_one(data: &[u8]) {
    if data.len() > 64 << 20 {
        return;
    }
    let Ok(mut v) = Volume::open(MemDevice::from_vec(data.to_vec())) else {
        return;
    };
    let _ = v.volume_name();
    let _ = v.volume_version();
    let mut stack = alloc::vec![5u64];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        seen += 1;
        if seen > 200 {
            break;
        }
        let Ok(entries) = v.read_dir(d) else { continue };
        for e in entries.iter().take(200) {
            let n = e.mft_no();
            if e.is_dir() && n != d && n != 5 {
                stack.push(n);
            }
            if let Ok(info) = v.stat(n) {
                for s in &info.streams {
                    if s.ty == crate::attr::AT_DATA && s.size < (4 << 20) {
                        let name: alloc::vec::Vec<u16> = s.name.encode_utf16().collect();
                        let _ = v.read_stream_all(n, s.ty, &name);
                    }
                }
            }
            let _ = v.security_descriptor(n);
            let _ = v.lookup_in(d, &e.file_name.name);
        }
    }
    let _ = v.lookup("/a/b/c");
    let _ = check(&mut v);
    let _ = v.write_file("/fuzz-new", b"data");
    let _ = v.create_dir_all("/fuzz/dir");
    let _ = v.remove("/fuzz-new");
}
