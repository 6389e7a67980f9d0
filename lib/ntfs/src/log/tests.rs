//! Host tests of the log file service.

use super::layout::*;
use super::ntfs::*;
use super::ops::Op;
use super::read::Log;
use super::write::*;
use alloc::vec;
use alloc::vec::Vec;

fn fresh(size: usize) -> Vec<u8> {
    let mut s = vec![0u8; size];
    format_log(&mut s).unwrap();
    s
}

fn rec(txn: u32, prev: u64) -> NewRecord {
    NewRecord {
        previous_lsn: prev,
        undo_next_lsn: prev,
        record_type: LFS_CLIENT_RECORD,
        transaction_id: txn,
    }
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k * 7) as u8).collect()
}

#[test]
fn lsn_math() {
    assert_eq!(LsnMath::bits_for_size(4 << 20), 44);
    assert_eq!(LsnMath::bits_for_size(64 << 20), 40);
    let m = LsnMath::new(44).unwrap();
    let lsn = m.lsn(5, 0x12340);
    assert_eq!(m.offset(lsn), 0x12340);
    assert_eq!(m.seq(lsn), 5);
    assert_eq!(lsn, (5u64 << 20) | (0x12340 >> 3));
    assert!(LsnMath::new(64).is_err());
    assert!(LsnMath::new(2).is_err());
}

#[test]
fn empty_log_layout() {
    let p = empty_restart_page(4 << 20).unwrap();
    let mut b = p.clone();
    crate::record::unfixup(&mut b, RSTR).unwrap();
    let h = RestartPageHeader::parse(&b).unwrap();
    assert_eq!(
        (h.usa_ofs, h.usa_count, h.system_page_size, h.log_page_size),
        (0x1E, 9, 4096, 4096)
    );
    assert_eq!(
        (h.restart_offset, h.major_version, h.minor_version),
        (0x30, 1, 1)
    );
    let a = RestartArea::parse(&b, 0x30).unwrap();
    assert_eq!(a.flags, RESTART_VOLUME_IS_CLEAN);
    assert_eq!(
        (a.log_clients, a.client_free_list, a.client_in_use_list),
        (1, 0xFFFF, 0)
    );
    assert_eq!((a.client_array_offset, a.restart_area_length), (0x30, 0xD0));
    assert_eq!(
        (a.log_record_header_length, a.log_page_data_offset),
        (0x30, 0x40)
    );
    assert_eq!(
        (a.seq_number_bits, a.file_size, a.current_lsn),
        (44, 4 << 20, 0)
    );
    let c = ClientRecord::parse(&b, 0x60).unwrap();
    assert_eq!(c.name(), "NTFS");
    assert_eq!(
        (c.prev_client, c.next_client, c.oldest_lsn),
        (0xFFFF, 0xFFFF, 0)
    );

    let s = fresh(1 << 20);
    let log = Log::open(&s).unwrap();
    assert!(log.first.is_ok() && log.second.is_ok());
    assert!(log.current.clean() && log.is_empty());
    assert_eq!(log.records().count(), 0);
}

#[test]
fn structures_round_trip() {
    let h = RecordHeader {
        this_lsn: 1,
        client_previous_lsn: 2,
        client_undo_next_lsn: 3,
        client_data_length: 4,
        client_seq_number: 5,
        client_index: 6,
        record_type: 1,
        transaction_id: 0x18,
        flags: 1,
        reserved: [0; 6],
    };
    let mut b = [0u8; 0x40];
    h.write(&mut b, 8);
    assert_eq!(RecordHeader::parse(&b, 8).unwrap(), h);
    assert_eq!(&b[8 + 0x24..8 + 0x28], &0x18u32.to_le_bytes());
    let mut n = NtfsRecord::new(
        Op::UpdateResidentValue,
        Op::UpdateResidentValue,
        vec![1, 2, 3],
        vec![9; 10],
    );
    n.header.target_attribute = 0x28;
    n.header.target_vcn = 7;
    n.header.record_offset = 0x98;
    n.lcns = vec![0x1234];
    let bytes = n.to_bytes().unwrap();
    let p = NtfsRecord::parse(&bytes).unwrap();
    assert_eq!((p.header.redo_offset, p.header.undo_offset), (0x28, 0x30));
    assert_eq!((&p.redo, &p.undo, &p.lcns), (&n.redo, &n.undo, &n.lcns));
    assert_eq!(p.redo_op(), Some(Op::UpdateResidentValue));
    assert_eq!(p.header.target_vcn, 7);
}

/// Appends `n` records of varied sizes (some spanning pages) in `s`.
fn write_some(s: &mut Vec<u8>, n: usize, g: Option<Geometry>) -> Vec<(u64, Vec<u8>)> {
    let mut w = match g {
        Some(g) => LogWriter::open_with(s, g).unwrap(),
        None => LogWriter::open(s).unwrap(),
    };
    w.write_restart(s, false).unwrap();
    let mut out = Vec::new();
    let mut prev = 0;
    for i in 0..n {
        let len = [24, 200, 5000, 8, 13000, 40][i % 6];
        let d = payload(i, len);
        let lsn = w.append(s, &rec(0x18, prev), &d).unwrap();
        if i == 0 {
            w.client().oldest_lsn = lsn;
        }
        prev = lsn;
        out.push((lsn, d));
        if i % 4 == 3 {
            w.force(s).unwrap();
        }
    }
    w.write_restart(s, false).unwrap();
    out
}

#[test]
fn write_then_read_back() {
    let mut s = fresh(1 << 20);
    let want = write_some(&mut s, 30, None);
    let log = Log::open(&s).unwrap();
    assert!(!log.current.clean());
    assert_eq!(log.current.area.current_lsn, want.last().unwrap().0);
    let got: Vec<_> = log.records().collect();
    assert_eq!(got.len(), want.len());
    for (g, (lsn, d)) in got.iter().zip(&want) {
        assert_eq!(g.header.this_lsn, *lsn);
        assert_eq!(&g.data, d);
        assert_eq!(g.header.flags & LOG_RECORD_MULTI_PAGE != 0, d.len() > 3000);
    }
    // LSNs grow and map back to where the records are.
    for w in want.windows(2) {
        assert!(w[1].0 > w[0].0);
    }
}

#[test]
fn forced_partial_page_is_read_from_the_tail_copy() {
    let mut s = fresh(256 << 10);
    let mut w = LogWriter::open(&mut s).unwrap();
    let a = w.append(&mut s, &rec(0x18, 0), b"first").unwrap();
    let b = w.append(&mut s, &rec(0x18, a), b"second!").unwrap();
    w.client().oldest_lsn = a;
    w.write_restart(&mut s, false).unwrap();
    // The home page was never written: the records are in a tail page.
    let first = 4 * 4096;
    assert!(s[first..first + 4096].iter().all(|x| *x == 0xFF));
    let log = Log::open(&s).unwrap();
    let got: Vec<_> = log.records().map(|r| (r.header.this_lsn, r.data)).collect();
    assert_eq!(got, vec![(a, b"first".to_vec()), (b, b"second!".to_vec())]);
    // A later force of the same page goes to the other tail page and wins.
    let c = w.append(&mut s, &rec(0x18, b), b"third").unwrap();
    w.force(&mut s).unwrap();
    let log = Log::open(&s).unwrap();
    assert_eq!(log.records().count(), 3);
    assert_eq!(log.records().last().unwrap().header.this_lsn, c);
}

#[test]
fn clean_shutdown_and_reopen_continues_lsns() {
    let mut s = fresh(256 << 10);
    let mut w = LogWriter::open(&mut s).unwrap();
    let a = w.append(&mut s, &rec(0x18, 0), &payload(1, 100)).unwrap();
    w.client().oldest_lsn = a;
    w.write_restart(&mut s, true).unwrap();
    let log = Log::open(&s).unwrap();
    assert!(log.current.clean());
    assert_eq!(
        log.first.as_ref().unwrap().area,
        log.second.as_ref().unwrap().area
    );
    let mut w2 = LogWriter::open(&mut s).unwrap();
    let b = w2.append(&mut s, &rec(0x18, 0), b"x").unwrap();
    assert!(b > a, "LSNs keep growing across mounts");
    // A dirty log refuses a new writer.
    w2.write_restart(&mut s, false).unwrap();
    assert!(LogWriter::open(&mut s).is_err());
}

#[test]
fn wraps_around_with_sequence_number() {
    // 64 KiB: 4 header pages + 12 log pages.
    let mut s = fresh(64 << 10);
    let mut w = LogWriter::open(&mut s).unwrap();
    let m = w.math;
    let first_seq = m.seq(w.next_lsn());
    let mut lsns = Vec::new();
    let mut prev = 0;
    for i in 0..200 {
        let d = payload(i, 700);
        let lsn = w.append(&mut s, &rec(0x18, prev), &d).unwrap();
        lsns.push((lsn, d));
        prev = lsn;
        // Keep only the last 20 records "needed" so the log can wrap.
        let keep = lsns.len().saturating_sub(20);
        w.client().oldest_lsn = lsns[keep].0;
    }
    assert!(
        m.seq(prev) >= first_seq + 2,
        "the log wrapped at least twice"
    );
    w.write_restart(&mut s, false).unwrap();
    let log = Log::open(&s).unwrap();
    let got: Vec<_> = log.records().collect();
    let tail = &lsns[lsns.len() - 20..];
    assert_eq!(got.len(), tail.len());
    for (g, (lsn, d)) in got.iter().zip(tail) {
        assert_eq!((g.header.this_lsn, &g.data), (*lsn, d));
    }
}

#[test]
fn log_full_is_refused() {
    let mut s = fresh(64 << 10);
    let mut w = LogWriter::open(&mut s).unwrap();
    let first = w.append(&mut s, &rec(0x18, 0), &payload(0, 700)).unwrap();
    w.client().oldest_lsn = first;
    let mut full = false;
    for i in 1..200 {
        if w.append(&mut s, &rec(0x18, 0), &payload(i, 700)).is_err() {
            full = true;
            break;
        }
    }
    assert!(full, "writing never overran the oldest LSN");
    // Everything written is still readable from the oldest LSN.
    w.write_restart(&mut s, false).unwrap();
    let log = Log::open(&s).unwrap();
    assert_eq!(log.records().next().unwrap().header.this_lsn, first);
}

#[test]
fn reads_a_version_2_layout() {
    let mut s = fresh(1 << 20);
    let mut g = Geometry::new(1 << 20).unwrap();
    g.major_version = 2;
    let want = write_some(&mut s, 12, Some(g));
    let log = Log::open(&s).unwrap();
    assert_eq!(log.current.version(), (2, 0));
    assert_eq!(log.first_page, 0x22 * 4096);
    let got: Vec<_> = log.records().map(|r| (r.header.this_lsn, r.data)).collect();
    assert_eq!(got, want);
}

#[test]
fn newer_restart_copy_wins_and_a_bad_copy_is_survived() {
    let mut s = fresh(256 << 10);
    let mut w = LogWriter::open(&mut s).unwrap();
    w.write_restart(&mut s, false).unwrap(); // page 0
    let a = w.append(&mut s, &rec(0x18, 0), b"abc").unwrap();
    w.client().oldest_lsn = a;
    w.write_restart(&mut s, false).unwrap(); // page 1, newer
    let log = Log::open(&s).unwrap();
    assert_eq!(log.current.offset, 4096);
    assert_eq!(log.current.area.current_lsn, a);
    // Tear the newer copy: the older one is used.
    s[4096 + 1022] ^= 0xFF;
    let log = Log::open(&s).unwrap();
    assert!(log.second.is_err());
    assert_eq!(log.current.offset, 0);
    // Tear the first copy instead: the second is found without it.
    s[4096 + 1022] ^= 0xFF;
    s[1022] ^= 0xFF;
    let log = Log::open(&s).unwrap();
    assert!(log.first.is_err());
    assert_eq!(log.current.offset, 4096);
}

#[test]
fn checkpoint_and_analysis() {
    let mut s = fresh(1 << 20);
    let mut w = LogWriter::open(&mut s).unwrap();
    w.write_restart(&mut s, false).unwrap();
    let r = |op: Op| {
        NtfsRecord::new(op, Op::Noop, vec![1; 8], vec![])
            .to_bytes()
            .unwrap()
    };
    // Transaction 0x18 commits; 0x40 does not.
    let t1 = table_offset(TRANSACTION_ENTRY_LEN as u16, 0);
    let t2 = table_offset(TRANSACTION_ENTRY_LEN as u16, 1);
    let a = w
        .append(&mut s, &rec(t1, 0), &r(Op::InitializeFileRecordSegment))
        .unwrap();
    let b = w
        .append(&mut s, &rec(t2, 0), &r(Op::SetBitsInNonresidentBitMap))
        .unwrap();
    let cp = Checkpoint {
        open_attributes: vec![(
            table_offset(OPEN_ATTRIBUTE_ENTRY_LEN as u16, 0),
            OpenAttributeEntry {
                allocated_or_next_free: RESTART_ENTRY_ALLOCATED,
                attribute_type_code: 0x80,
                file_reference: 1 << 48,
                ..Default::default()
            },
        )],
        attribute_names: vec![(0x18, "$I30".encode_utf16().collect())],
        dirty_pages: vec![(
            DirtyPageEntry {
                target_attribute: 0x18,
                length_of_transfer: 4096,
                vcn: 3,
                oldest_lsn: b,
                ..Default::default()
            },
            vec![77],
        )],
        transactions: vec![
            (
                t1,
                TransactionEntry {
                    transaction_state: 1,
                    first_lsn: a,
                    previous_lsn: a,
                    undo_next_lsn: a,
                    ..Default::default()
                },
            ),
            (
                t2,
                TransactionEntry {
                    transaction_state: 1,
                    first_lsn: b,
                    previous_lsn: b,
                    undo_next_lsn: b,
                    ..Default::default()
                },
            ),
        ],
    };
    let cl = cp.write(&mut w, &mut s).unwrap();
    let c = w
        .append(&mut s, &rec(t1, a), &r(Op::ForgetTransaction))
        .unwrap();
    w.write_restart(&mut s, false).unwrap();
    let log = Log::open(&s).unwrap();
    assert_eq!(log.current.clients[0].client_restart_lsn, cl);
    assert_eq!(log.current.clients[0].oldest_lsn, a);
    let (ra, back) = Checkpoint::read(&log, cl).unwrap();
    assert_eq!(ra.major_version, 1);
    assert_eq!(back.open_attributes[0].1.attribute_type_code, 0x80);
    assert_eq!(back.attribute_names, cp.attribute_names);
    assert_eq!(back.dirty_pages[0].1, vec![77]);
    assert_eq!(back.dirty_pages[0].0.vcn, 3);
    assert_eq!(back.transactions.len(), 2);
    assert_eq!(back.transactions[1].0, t2);
    let an = analyze(&log).unwrap();
    assert_eq!(an.committed, vec![t1]);
    assert_eq!(an.uncommitted.get(&t2), Some(&b));
    assert!(!an.uncommitted.contains_key(&t1));
    assert!(c > cl);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn exercise(b: &[u8]) {
        super::super::fuzz_one_log(b);
    }

    /// Writes the seed corpus of the cargo-fuzz target `logfile`.
    #[test]
    #[ignore]
    fn write_fuzz_corpus() {
        extern crate std;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/logfile");
        std::fs::create_dir_all(dir).unwrap();
        let mut s = fresh(64 << 10);
        std::fs::write(std::format!("{dir}/empty-clean"), &s).unwrap();
        write_some(&mut s, 10, None);
        std::fs::write(std::format!("{dir}/records-dirty"), &s).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..20000)) {
            exercise(&b);
        }

        #[test]
        fn damaged_logs_never_panic(
            hits in proptest::collection::vec((0usize..(128 << 10), any::<u8>()), 1..40),
            fix in any::<bool>(),
        ) {
            let mut s = fresh(128 << 10);
            write_some(&mut s, 14, None);
            for (o, v) in hits {
                s[o] = v;
            }
            if fix {
                // Re-seal the sector ends so damage reaches the parsers.
                for p in s.chunks_mut(4096) {
                    let _ = crate::record::fixup(p);
                }
            }
            exercise(&s);
        }
    }
}

mod power_cut {
    extern crate std;
    use crate::device::{BlockDevice, MemDevice};
    use crate::{format, FormatOptions, Volume};
    use alloc::format;
    use alloc::vec::Vec;

    /// A device that stops persisting writes after write number `cut`
    /// (later writes report success and are lost, as at a power cut).
    struct Cut {
        mem: MemDevice,
        writes: u64,
        cut: u64,
        /// The write after the cut reaches the disk torn: its first sector only.
        tear: bool,
    }

    impl BlockDevice for Cut {
        fn size(&self) -> u64 {
            self.mem.size()
        }
        fn read_at(&mut self, o: u64, b: &mut [u8]) -> crate::Result<()> {
            self.mem.read_at(o, b)
        }
        fn write_at(&mut self, o: u64, b: &[u8]) -> crate::Result<()> {
            self.writes += 1;
            if self.writes <= self.cut {
                self.mem.write_at(o, b)
            } else if self.tear && self.writes == self.cut + 1 && b.len() > 512 {
                self.mem.write_at(o, &b[..512])
            } else {
                Ok(())
            }
        }
    }

    type Step = fn(&mut Volume<Cut>) -> crate::Result<()>;

    fn big(i: usize) -> Vec<u8> {
        (0..20000).map(|k| (k * 13 + i) as u8).collect()
    }

    fn ext() -> Vec<u8> {
        (0..40000).map(|k| (k * 7 + 3) as u8).collect()
    }

    fn stream() -> Vec<u8> {
        (0..3000).map(|k| (k * 5 + 1) as u8).collect()
    }

    fn e_bin(k: usize) -> Vec<u8> {
        let mut d = big(2);
        if k >= 10 {
            d.extend_from_slice(&ext());
        }
        if k >= 11 {
            d.truncate(5000);
        }
        d
    }

    fn big_name(i: usize) -> alloc::string::String {
        format!("/big/a-rather-long-file-name-to-fill-index-blocks-{i:03}.dat")
    }

    fn large() -> Vec<u8> {
        (0..300_000u32)
            .map(|k| (k.wrapping_mul(2654435761) >> 13) as u8)
            .collect()
    }

    const STEPS: &[Step] = &[
        |v| v.create_dir_all("/d").map(|_| ()),
        |v| v.write_file("/d/a.txt", b"hello log").map(|_| ()),
        |v| v.write_file("/d/b.bin", &big(1)).map(|_| ()),
        |v| {
            for i in 0..24 {
                v.write_file(&format!("/d/many-{i:02}.txt"), b"x")?;
            }
            Ok(())
        },
        |v| v.rename("/d/a.txt", "/d/c.txt"),
        |v| v.remove("/d/b.bin"),
        |v| v.write_file("/e.bin", &big(2)).map(|_| ()),
        // 8: a hard link.
        |v| v.link("/d/c.txt", "/d/hard.txt"),
        // 9: a named stream.
        |v| v.write_file("/e.bin:alt", &stream()).map(|_| ()),
        // 10: extend a non-resident stream (mapping pairs, sizes).
        |v| {
            let n = v.lookup("/e.bin")?;
            v.write_at(n, &[], 20000, &ext())
        },
        // 11: truncate it.
        |v| {
            let n = v.lookup("/e.bin")?;
            v.set_len(n, &[], 5000)
        },
        // 12: a directory whose index grows over several blocks.
        |v| {
            v.create_dir_all("/big")?;
            for i in 0..60 {
                v.write_file(&big_name(i), b"y")?;
            }
            Ok(())
        },
        // 13: deletes from it.
        |v| {
            for i in 0..20 {
                v.remove(&big_name(i))?;
            }
            Ok(())
        },
        // 14: remove the hard link.
        |v| v.remove("/d/hard.txt"),
        // 15: overwrite a file.
        |v| v.write_file("/d/c.txt", b"changed!").map(|_| ()),
        // 16: a large file.
        |v| v.write_file("/large.bin", &large()).map(|_| ()),
    ];

    /// What must hold after the first `k` steps, leaving out what step
    /// `in_flight` (cut in its middle; a step may be several committed
    /// operations, e.g. create then write) touches.
    fn state_ok(v: &mut Volume<MemDevice>, k: usize, in_flight: Option<usize>) -> bool {
        type Inv = (&'static [usize], fn(&mut Volume<MemDevice>, usize) -> bool);
        const INVS: &[Inv] = &[
            (&[1], |v, k| k < 1 || v.lookup("/d").is_ok()),
            (&[2, 5], |v, k| {
                if (2..5).contains(&k) {
                    v.read_file("/d/a.txt").ok().as_deref() == Some(&b"hello log"[..])
                } else {
                    v.lookup("/d/a.txt").is_err()
                }
            }),
            (&[3, 6], |v, k| {
                if (3..6).contains(&k) {
                    v.read_file("/d/b.bin").ok() == Some(big(1))
                } else {
                    v.lookup("/d/b.bin").is_err()
                }
            }),
            (&[4], |v, k| {
                k < 4
                    || (0..24).all(|i| {
                        v.read_file(&format!("/d/many-{i:02}.txt")).ok().as_deref()
                            == Some(&b"x"[..])
                    })
            }),
            (&[5, 15], |v, k| {
                let c = v.read_file("/d/c.txt").ok();
                if k >= 15 {
                    c.as_deref() == Some(&b"changed!"[..])
                } else if k >= 5 {
                    c.as_deref() == Some(&b"hello log"[..])
                } else {
                    c.is_none()
                }
            }),
            (&[7, 10, 11], |v, k| {
                if k >= 7 {
                    v.read_file("/e.bin").ok() == Some(e_bin(k))
                } else {
                    v.lookup("/e.bin").is_err()
                }
            }),
            (&[8, 14], |v, k| {
                let h = v.read_file("/d/hard.txt").ok();
                if (8..14).contains(&k) {
                    h.as_deref() == Some(&b"hello log"[..])
                } else {
                    h.is_none()
                }
            }),
            (&[9], |v, k| {
                let s = v.read_file("/e.bin:alt").ok();
                if k >= 9 {
                    s == Some(stream())
                } else {
                    s.is_none()
                }
            }),
            (&[12, 13], |v, k| {
                if k < 12 {
                    return v.lookup("/big").is_err();
                }
                (0..60).all(|i| {
                    let f = v.read_file(&big_name(i)).ok();
                    if i < 20 && k >= 13 {
                        f.is_none()
                    } else {
                        f.as_deref() == Some(&b"y"[..])
                    }
                })
            }),
            (&[16], |v, k| {
                let f = v.read_file("/large.bin").ok();
                if k >= 16 {
                    f == Some(large())
                } else {
                    f.is_none()
                }
            }),
        ];
        INVS.iter()
            .filter(|(steps, _)| in_flight.is_none_or(|s| !steps.contains(&s)))
            .all(|(_, f)| f(v, k))
    }

    fn base() -> Vec<u8> {
        let v = format(
            MemDevice::new(8 << 20),
            &FormatOptions {
                label: "L".into(),
                ..Default::default()
            },
        )
        .unwrap();
        v.into_device().data
    }

    /// Runs the workload with writes cut after `cut`; returns the device
    /// contents and how many writes each step had finished by.
    fn run(img: &[u8], cut: u64, tear: bool) -> (Vec<u8>, Vec<u64>) {
        let dev = Cut {
            mem: MemDevice::from_vec(img.to_vec()),
            writes: 0,
            cut: u64::MAX,
            tear,
        };
        let mut v = Volume::open(dev).unwrap();
        v.enable_logging().unwrap();
        v.device().writes = 0;
        v.device().cut = cut;
        let mut ends = Vec::new();
        for s in STEPS {
            let r = s(&mut v);
            if v.device().writes > cut {
                // The machine is off: what it did after the cut is lost.
                break;
            }
            r.unwrap();
            ends.push(v.device().writes);
        }
        if cut == u64::MAX {
            let (ops, phys, bad_undo) = v.log_op_counts().unwrap();
            assert_eq!(bad_undo, 0, "logical undo that does not restore its page");
            // The logical operations carry the workload; few pages go physical.
            for op in [
                crate::log::Op::InitializeFileRecordSegment,
                crate::log::Op::CreateAttribute,
                crate::log::Op::DeleteAttribute,
                crate::log::Op::UpdateResidentValue,
                crate::log::Op::UpdateMappingPairs,
                crate::log::Op::SetNewAttributeSizes,
                crate::log::Op::AddIndexEntryRoot,
                crate::log::Op::AddIndexEntryAllocation,
                crate::log::Op::DeleteIndexEntryAllocation,
                crate::log::Op::SetBitsInNonresidentBitMap,
                crate::log::Op::ClearBitsInNonresidentBitMap,
            ] {
                assert!(ops[op as usize] > 0, "no {} record", op.name());
            }
            assert!(
                phys * 4 < ops.iter().sum::<u64>(),
                "{phys} pages logged physically"
            );
            let named: Vec<_> = crate::log::ops::ALL
                .iter()
                .filter(|o| ops[**o as usize] > 0)
                .map(|o| format!("{}={}", o.name(), ops[*o as usize]))
                .collect();
            std::println!("records by redo operation: {named:?}; pages logged physically: {phys}");
            assert!(ops[crate::log::Op::OpenNonresidentAttribute as usize] > 0);
            assert!(
                v.log_checkpoints().unwrap() > 1,
                "no checkpoint taken while logging"
            );
        }
        (v.into_device().mem.data, ends)
    }

    /// The analysis of the log on `img` (dirty: not shut down cleanly) and
    /// the wrap count of its current LSN.
    fn analysis_of(img: &[u8]) -> (crate::log::ntfs::Analysis, u64) {
        let mut v = Volume::open(MemDevice::from_vec(img.to_vec())).unwrap();
        let s = v
            .open_stream(crate::volume::rec::LOGFILE, crate::attr::AT_DATA, &[])
            .unwrap();
        let b = v.read_whole(&s).unwrap();
        let log = super::Log::open(&b).unwrap();
        assert!(
            log.current.clients[0].client_restart_lsn != 0,
            "no checkpoint"
        );
        let an = super::analyze(&log).unwrap();
        (an, log.math.seq(log.current.area.current_lsn))
    }

    fn wrap_data(i: usize) -> Vec<u8> {
        (0..100 + (i * 397) % 5000)
            .map(|k| (k * 3 + i) as u8)
            .collect()
    }

    fn wrap_name(i: usize) -> alloc::string::String {
        format!("/w/a-long-enough-name-for-index-entries-{i:04}.txt")
    }

    /// Files the wrap workload keeps at a time.
    const WRAP_KEEP: usize = 30;
    /// Its steps.
    const WRAP_STEPS: usize = 400;

    /// Step `i` of the wrap workload: a new file, and the one `WRAP_KEEP`
    /// steps older deleted.
    fn wrap_step<D: BlockDevice>(v: &mut Volume<D>, i: usize) -> crate::Result<()> {
        if i == 0 {
            return v.create_dir_all("/w").map(|_| ());
        }
        v.write_file(&wrap_name(i), &wrap_data(i))?;
        if i > WRAP_KEEP {
            v.remove(&wrap_name(i - WRAP_KEEP))?;
        }
        Ok(())
    }

    fn wrap_run(img: &[u8], cut: u64, tear: bool) -> (Vec<u8>, Vec<u64>) {
        let dev = Cut {
            mem: MemDevice::from_vec(img.to_vec()),
            writes: 0,
            cut: u64::MAX,
            tear,
        };
        let mut v = Volume::open(dev).unwrap();
        v.enable_logging().unwrap();
        v.device().writes = 0;
        v.device().cut = cut;
        let mut ends = Vec::new();
        for i in 0..WRAP_STEPS {
            let r = wrap_step(&mut v, i);
            if v.device().writes > cut {
                break;
            }
            r.unwrap();
            ends.push(v.device().writes);
        }
        (v.into_device().mem.data, ends)
    }

    /// Whether the wrap workload's files after `k` finished steps are there
    /// (step `k`, in flight, may be partly done: its file and its delete are
    /// not checked).
    fn wrap_state_ok(v: &mut Volume<MemDevice>, k: usize) -> bool {
        (1..k + 2).all(|i| {
            let f = v.read_file(&wrap_name(i)).ok();
            if i >= k || (i + WRAP_KEEP == k) {
                true
            } else if i + WRAP_KEEP < k {
                f.is_none()
            } else {
                f == Some(wrap_data(i))
            }
        })
    }

    /// Many operations over the 256 KiB log of an 8 MiB volume: the log
    /// wraps several times, reclaimed by checkpoints; every record names
    /// an attribute the open attribute table holds. Power cuts (plain and
    /// torn) in the last steps recover from the last checkpoint to a
    /// committed prefix that `check` and ntfs-3g's `ntfsfix -n` accept.
    #[test]
    fn log_wraps_several_times_and_recovers_from_the_last_checkpoint() {
        let img = base();
        let (after, ends) = wrap_run(&img, u64::MAX, false);
        assert_eq!(ends.len(), WRAP_STEPS);
        let (an, wraps) = analysis_of(&after);
        assert!(wraps >= 4, "the log wrapped only {} times", wraps - 1);
        assert_eq!(an.unresolved_targets, 0);
        assert!(an.open_attributes.len() >= 3, "{:?}", an.open_attributes);
        assert!(an.uncommitted.is_empty());
        let total = *ends.last().unwrap();
        let from = ends[WRAP_STEPS - 6];
        let mut tried = 0;
        let mut undid = 0;
        let mut cut = from;
        while cut <= total {
            for tear in [false, true] {
                let (img2, _) = wrap_run(&img, cut, tear);
                let (an, _) = analysis_of(&img2);
                assert_eq!(an.unresolved_targets, 0, "cut {cut}");
                let (mut v, (_, undone)) = recover_and_check(img2);
                undid += (undone > 0) as usize;
                let k = ends.iter().filter(|e| **e <= cut).count();
                assert!(
                    wrap_state_ok(&mut v, k),
                    "cut {cut} (torn {tear}): not step {k}"
                );
                if cut == total - 3 && !tear {
                    ntfs3g_accepts(&v.into_device().data);
                }
                tried += 1;
            }
            cut += 1;
        }
        assert!(undid > 0);
        std::println!(
            "wrapping log: {} wraps, {tried} cut points over its last {} writes survived; {undid} needed undo",
            wraps - 1,
            total - from
        );
    }

    /// `ntfsfix -n` (and `ntfsinfo -m`) accept the image, when ntfs-3g is
    /// installed.
    fn ntfs3g_accepts(img: &[u8]) {
        let fix = std::path::Path::new("/usr/bin/ntfsfix");
        if !fix.exists() {
            std::eprintln!("SKIP: ntfsfix missing");
            return;
        }
        let p = std::env::temp_dir().join(format!("ntrs-logwrap-{}.img", std::process::id()));
        std::fs::write(&p, img).unwrap();
        for (cmd, args) in [("/usr/bin/ntfsfix", "-n"), ("/usr/bin/ntfsinfo", "-m")] {
            let o = std::process::Command::new(cmd)
                .arg(args)
                .arg(&p)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                alloc::string::String::from_utf8_lossy(&o.stdout),
                alloc::string::String::from_utf8_lossy(&o.stderr)
            );
            assert!(o.status.success(), "{cmd}: {text}");
            for bad in ["rror", "orrupt", "nconsist"] {
                assert!(!text.contains(bad), "{cmd} complained: {text}");
            }
        }
        let _ = std::fs::remove_file(&p);
    }

    fn recover_and_check(img: Vec<u8>) -> (Volume<MemDevice>, (usize, usize)) {
        let mut v = Volume::open(MemDevice::from_vec(img))
            .map_err(|e| std::format!("{e:?}"))
            .expect("mounts before recovery");
        let rr = v.recover().expect("recovery");
        let mut v = Volume::open(v.into_device()).unwrap();
        let problems = crate::check(&mut v).unwrap();
        assert!(problems.is_empty(), "after recovery: {problems:?}");
        (v, rr)
    }

    #[test]
    fn logging_workload_leaves_a_clean_checkable_volume() {
        let img = base();
        let (after, ends) = run(&img, u64::MAX, false);
        assert!(*ends.last().unwrap() > 100);
        let (an, _) = analysis_of(&after);
        assert_eq!(an.unresolved_targets, 0);
        std::println!(
            "open attributes at the end: {}; records naming no attribute: {}",
            an.open_attributes.len(),
            an.no_target
        );
        let mut v = Volume::open(MemDevice::from_vec(after)).unwrap();
        // Not shut down cleanly: the checker reports the dirty log ...
        assert!(!crate::check(&mut v).unwrap().is_empty());
        // ... and recovery (nothing uncommitted) makes it clean.
        let (mut v, (_, undone)) = recover_and_check(v.into_device().data);
        assert_eq!(undone, 0);
        assert!(state_ok(&mut v, STEPS.len(), None));
    }

    #[test]
    fn every_cut_point_recovers_to_a_committed_prefix() {
        cut_points(false);
    }

    #[test]
    fn every_torn_write_recovers_to_a_committed_prefix() {
        cut_points(true);
    }

    /// Crashes during recovery itself: for workload cut points (every
    /// `STEP`th) whose recovery has something to undo, recovery runs on a
    /// device that stops persisting after its write M, for every M of that
    /// recovery's writes; then recovery runs again to the end. The volume
    /// must check clean and hold the same committed prefix. The second
    /// recovery must find the compensation log records the first wrote:
    /// some second recoveries undo fewer records than a full one.
    #[test]
    fn every_cut_during_recovery_recovers() {
        const STEP: u64 = 7;
        let img = base();
        let (_, ends) = run(&img, u64::MAX, false);
        let total = *ends.last().unwrap();
        let (mut tried, mut workload_cuts, mut shorter) = (0usize, 0usize, 0usize);
        let fresh = |img: &[u8]| Cut {
            mem: MemDevice::from_vec(img.to_vec()),
            writes: 0,
            cut: u64::MAX,
            tear: false,
        };
        let mut cut = 0;
        while cut <= total {
            let (img2, _) = run(&img, cut, false);
            let mut v = Volume::open(fresh(&img2)).unwrap();
            v.device().writes = 0;
            let (_, full_undo) = v.recover().unwrap();
            let rw = v.device().writes;
            if full_undo > 0 {
                workload_cuts += 1;
                let k = ends.iter().filter(|e| **e <= cut).count();
                let flight = (k < STEPS.len()).then_some(k + 1);
                for m in 0..rw {
                    let mut v = Volume::open(fresh(&img2)).unwrap();
                    v.device().writes = 0;
                    v.device().cut = m;
                    // The machine goes off at write m: later writes are lost.
                    let _ = v.recover();
                    let img3 = v.into_device().mem.data;
                    let (mut v, (_, undone)) = recover_and_check(img3);
                    shorter += (undone < full_undo) as usize;
                    assert!(
                        state_ok(&mut v, k, flight),
                        "workload cut {cut}, recovery cut {m}: not the state of step {k}"
                    );
                    tried += 1;
                }
            }
            cut += STEP;
        }
        assert!(workload_cuts > 20 && shorter > 0);
        std::println!(
            "recovery cut: {tried} cut points in the recoveries of {workload_cuts} crashed workloads survived; {shorter} second recoveries resumed after CLRs"
        );
    }

    fn cut_points(tear: bool) {
        let img = base();
        let (_, ends) = run(&img, u64::MAX, false);
        let total = *ends.last().unwrap();
        let mut tried = 0;
        let mut undid = 0;
        let step = 1;
        let mut cut = 0;
        while cut <= total {
            let (img2, _) = run(&img, cut, tear);
            let (mut v, (_, undone)) = recover_and_check(img2);
            undid += (undone > 0) as usize;
            let k = ends.iter().filter(|e| **e <= cut).count();
            let flight = (k < STEPS.len()).then_some(k + 1);
            let ok = state_ok(&mut v, k, flight);
            assert!(
                ok,
                "cut after write {cut}: state is not that of step {k} (step {flight:?} in flight)"
            );
            tried += 1;
            cut += step;
        }
        assert!(tried as u64 > total / 2 && undid > 0);
        std::println!(
            "power cut (torn: {tear}): {tried} cut points of {total} writes survived; {undid} needed undo"
        );
    }
}
