use super::sim::*;
use super::*;
use alloc::rc::Rc;
use alloc::vec;
use core::cell::RefCell;

const PAGE: u64 = 0x1_0000_0000; // above 4 GiB: exercises the upper halves
const BUF: u64 = 0x20_0000;

fn setup(sectors: u64) -> Port<SimHba, SimPage> {
    let mem: Mem = Rc::new(RefCell::new(PhysMem::default()));
    mem.borrow_mut().add(PAGE, 4096);
    mem.borrow_mut().add(BUF, 64 * 1024);
    let hba = SimHba::new(mem.clone(), sectors);
    Port::new(hba, 0, SimPage { mem, pa: PAGE })
}

fn buf_read(p: &Port<SimHba, SimPage>, off: u64, len: usize) -> alloc::vec::Vec<u8> {
    let mut v = vec![0; len];
    p.hba.mem.borrow_mut().read(BUF + off, &mut v);
    v
}

#[test]
fn fis_bytes() {
    let f = H2dFis::dma_ext(false, 0x0000_1234_5678_9ABC, 8);
    let b = f.to_bytes();
    assert_eq!(b[0], 0x27);
    assert_eq!(b[1], 0x80);
    assert_eq!(b[2], 0x25);
    assert_eq!(&b[4..7], &[0xBC, 0x9A, 0x78]);
    assert_eq!(b[7], 0x40);
    assert_eq!(&b[8..11], &[0x56, 0x34, 0x12]);
    assert_eq!(&b[12..14], &[8, 0]);
    assert_eq!(H2dFis::from_bytes(&b), Some(f));
    assert_eq!(H2dFis::dma_ext(true, 0, 1).to_bytes()[2], 0x35);
    assert_eq!(H2dFis::flush().to_bytes()[2], 0xEA);
    assert_eq!(H2dFis::identify().to_bytes()[2], 0xEC);
    assert_eq!(header_dw0(true, 3), 5 | 1 << 6 | 3 << 16);
    let e = prdt_entry(&Segment {
        phys: 0x1234_5000,
        len: 4096,
    });
    assert_eq!(u32::from_le_bytes(e[12..16].try_into().unwrap()), 4095);
}

#[test]
fn identify_parsing() {
    let p = setup(2048 * 106);
    let id = Identify::parse(&p.hba.identify_data()).unwrap();
    assert_eq!(id.model, "QEMU HARDDISK");
    assert_eq!(id.serial, "QM00001");
    assert_eq!(id.firmware, "2.5+");
    assert!(id.lba48);
    assert_eq!(id.sectors, 2048 * 106);
    assert_eq!(id.sector_size, 512);
    // LBA28-only device; 4 KiB logical sectors; ATAPI; truncated.
    let mut d = p.hba.identify_data();
    d[83 * 2 + 1] &= !(1 << 2);
    d[60 * 2] = 0x10;
    d[60 * 2 + 1] = 0;
    d[61 * 2] = 0;
    let id = Identify::parse(&d).unwrap();
    assert!(!id.lba48);
    assert_eq!(id.sectors, 0x10);
    let mut d = p.hba.identify_data();
    d[106 * 2 + 1] = 0x50; // bit 14 valid, bit 12 long logical sector
    d[117 * 2..117 * 2 + 2].copy_from_slice(&2048u16.to_le_bytes());
    assert_eq!(Identify::parse(&d).unwrap().sector_size, 4096);
    let mut d = p.hba.identify_data();
    d[1] = 0x85;
    assert_eq!(Identify::parse(&d), Err(STATUS_UNRECOGNIZED_MEDIA));
    assert_eq!(Identify::parse(&d[..100]), Err(STATUS_INVALID_PARAMETER));
}

#[test]
fn init_identify_read_write_flush() {
    let mut p = setup(4096);
    for (i, b) in p.hba.disk.iter_mut().enumerate() {
        *b = (i / 512) as u8 ^ (i as u8);
    }
    p.init().unwrap();
    assert_eq!(
        p.hba.read32(port(0) + PXCMD) & (CMD_ST | CMD_CR | CMD_FRE | CMD_FR),
        CMD_ST | CMD_CR | CMD_FRE | CMD_FR
    );
    assert_eq!(p.hba.read32(port(0) + PXCLBU), 1);
    p.identify(Segment {
        phys: BUF,
        len: 512,
    })
    .unwrap();
    let id = Identify::parse(&buf_read(&p, 0, 512)).unwrap();
    assert_eq!(id.sectors, 4096);
    // Read 16 sectors at LBA 100 through two segments.
    let segs = [
        Segment {
            phys: BUF,
            len: 4096,
        },
        Segment {
            phys: BUF + 0x8000,
            len: 4096,
        },
    ];
    assert_eq!(p.transfer(false, 100, 16, &segs).unwrap(), 8192);
    assert_eq!(buf_read(&p, 0, 4096), p.hba.disk[100 * 512..108 * 512]);
    assert_eq!(buf_read(&p, 0x8000, 4096), p.hba.disk[108 * 512..116 * 512]);
    // Write a pattern at LBA 4000, read it back into another place.
    let pat: alloc::vec::Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    p.hba.mem.borrow_mut().write(BUF + 0x1000, &pat);
    p.transfer(
        true,
        4000,
        8,
        &[Segment {
            phys: BUF + 0x1000,
            len: 4096,
        }],
    )
    .unwrap();
    assert_eq!(&p.hba.disk[4000 * 512..4008 * 512], &pat[..]);
    p.flush().unwrap();
    assert_eq!(p.stats.completed, 4);
    assert_eq!(p.stats.errors, 0);
    assert_eq!(p.hba.violation, None);
}

#[test]
fn task_file_error_restarts_the_engine_and_retries() {
    let mut p = setup(4096);
    p.init().unwrap();
    p.hba.fail_next = 1;
    let r = p.transfer(
        false,
        0,
        1,
        &[Segment {
            phys: BUF,
            len: 512,
        }],
    );
    assert_eq!(r, Ok(512));
    assert_eq!(p.stats.errors, 1);
    assert_eq!(p.stats.restarts, 1);
    assert_eq!(p.stats.comresets, 0);
    assert_eq!(p.hba.commands, 2);
    assert_eq!(p.hba.violation, None);
}

#[test]
fn hung_device_gets_a_comreset_then_the_retry_succeeds() {
    let mut p = setup(4096);
    p.init().unwrap();
    p.hba.fail_next = 1;
    p.hba.hang_on_fail = true;
    p.hba.disk[512 * 7] = 0xAB;
    let r = p.transfer(
        false,
        7,
        1,
        &[Segment {
            phys: BUF,
            len: 512,
        }],
    );
    assert_eq!(r, Ok(512));
    assert_eq!(buf_read(&p, 0, 1), [0xAB]);
    assert_eq!(p.stats.comresets, 1);
    assert_eq!(p.hba.violation, None);
}

#[test]
fn persistent_errors_give_up_with_a_status() {
    let mut p = setup(4096);
    p.init().unwrap();
    p.hba.fail_next = 100;
    let e = p
        .transfer(
            false,
            0,
            1,
            &[Segment {
                phys: BUF,
                len: 512,
            }],
        )
        .unwrap_err();
    assert!(matches!(e, PortError::Device(is, _) if is & IS_TFES != 0));
    assert_eq!(e.status(), STATUS_IO_DEVICE_ERROR);
    assert_eq!(p.hba.commands, MAX_RETRIES + 1);
    // The port still works afterwards.
    p.hba.fail_next = 0;
    assert_eq!(
        p.transfer(
            false,
            0,
            1,
            &[Segment {
                phys: BUF,
                len: 512
            }]
        ),
        Ok(512)
    );
}

#[test]
fn out_of_range_is_not_retried() {
    let mut p = setup(4096);
    p.init().unwrap();
    let e = p
        .transfer(
            false,
            4095,
            2,
            &[Segment {
                phys: BUF,
                len: 1024,
            }],
        )
        .unwrap_err();
    assert!(matches!(e, PortError::Device(..)));
    assert_eq!(p.hba.commands, 1);
    assert_eq!(
        p.transfer(
            false,
            4095,
            1,
            &[Segment {
                phys: BUF,
                len: 512
            }]
        ),
        Ok(512)
    );
}

#[test]
fn absent_device() {
    let mut p = setup(4096);
    p.hba.absent = true;
    p.hba.write32(port(0) + PXSSTS, 0);
    let e = p.init().unwrap_err();
    assert_eq!(e, PortError::NoDevice);
    assert_eq!(e.status(), STATUS_NO_SUCH_DEVICE);
}

#[test]
fn bad_requests_and_slots() {
    let mut p = setup(4096);
    p.init().unwrap();
    let odd = [Segment {
        phys: BUF,
        len: 511,
    }];
    assert_eq!(p.transfer(false, 0, 1, &odd), Err(PortError::BadRequest));
    let many = [Segment {
        phys: BUF,
        len: 512,
    }; layout::PRDT_ENTRIES + 1];
    assert_eq!(p.transfer(false, 0, 1, &many), Err(PortError::BadRequest));
    assert_eq!(PortError::Timeout.status(), STATUS_IO_TIMEOUT);
    assert_eq!(
        PortError::Device(IS_TFES, (ATA_ERR_UNC << 8) | 0x51).status(),
        STATUS_DEVICE_DATA_ERROR
    );
    // Two commands in flight use two slots.
    let seg = [Segment {
        phys: BUF,
        len: 512,
    }];
    let a = p.issue(&H2dFis::dma_ext(false, 0, 1), false, &seg).unwrap();
    let b = p.issue(&H2dFis::dma_ext(false, 1, 1), false, &seg).unwrap();
    assert_ne!(a, b);
    assert_eq!(p.poll(a), Some(Ok(())));
    assert_eq!(p.poll(b), Some(Ok(())));
}

#[test]
fn interrupts_enabled_and_a_lost_command_times_out() {
    let mut p = setup(4096);
    p.init().unwrap();
    p.enable_interrupts();
    assert_eq!(p.hba.read32(port(0) + PXIE), IE_ENABLED);
    assert_ne!(p.hba.read32(GHC) & GHC_IE, 0);
    // A command that never completes: each attempt waits COMMAND_TIMEOUT_US
    // in interrupt waits, then the engine is restarted and it is retried.
    p.hba.stuck = true;
    let e = p
        .transfer(
            false,
            0,
            1,
            &[Segment {
                phys: BUF,
                len: 512,
            }],
        )
        .unwrap_err();
    assert_eq!(e, PortError::Timeout);
    assert_eq!(e.status(), STATUS_IO_TIMEOUT);
    assert_eq!(p.hba.commands, MAX_RETRIES + 1);
    assert_eq!(p.stats.restarts, (MAX_RETRIES + 1) as u64);
    assert!(p.hba.stalled_us >= (MAX_RETRIES as u64 + 1) * COMMAND_TIMEOUT_US as u64);
    p.hba.stuck = false;
    assert_eq!(
        p.transfer(
            false,
            0,
            1,
            &[Segment {
                phys: BUF,
                len: 512
            }]
        ),
        Ok(512)
    );
    p.disable_interrupts();
    assert_eq!(p.hba.read32(port(0) + PXIE), 0);
    assert_eq!(p.hba.violation, None);
}

mod engine_tests {
    use super::*;
    use crate::ahci::engine::*;
    use alloc::vec::Vec;

    fn read(lba: u64, tag: u32) -> Command<u32> {
        Command {
            fis: H2dFis::dma_ext(false, lba, 1),
            write: false,
            segments: alloc::vec![Segment {
                phys: BUF + tag as u64 * 512,
                len: 512,
            }],
            tag,
            failures: 0,
        }
    }

    #[test]
    fn several_in_flight_then_queued() {
        let mut p = setup(4096);
        p.init().unwrap();
        for lba in 0..8u64 {
            p.hba.disk[lba as usize * 512] = 0xA0 + lba as u8;
        }
        let mut e = Engine::new();
        let mut done = Vec::new();
        for t in 0..6 {
            e.submit(&mut p, read(t as u64, t), &mut done);
        }
        assert!(done.is_empty());
        assert_eq!(e.in_flight(), layout::SLOTS as usize);
        assert_eq!(e.queued(), 6 - layout::SLOTS as usize);
        e.service(&mut p, &mut done);
        assert_eq!(done.len(), layout::SLOTS as usize);
        assert_eq!(e.in_flight(), 2);
        e.service(&mut p, &mut done);
        assert_eq!(done.len(), 6);
        assert_eq!((e.in_flight(), e.queued()), (0, 0));
        let mut tags: Vec<u32> = done.iter().map(|d| d.0).collect();
        tags.sort();
        assert_eq!(tags, [0, 1, 2, 3, 4, 5]);
        assert!(done.iter().all(|d| d.1 == Ok(512)));
        for t in 0..6u64 {
            assert_eq!(buf_read(&p, t * 512, 1)[0], 0xA0 + t as u8);
        }
        assert_eq!(p.stats.completed, 6);
        assert_eq!(p.hba.violation, None);
    }

    #[test]
    fn an_error_is_recovered_and_retried() {
        let mut p = setup(4096);
        p.init().unwrap();
        p.hba.fail_next = 1;
        let mut e = Engine::new();
        let mut done = Vec::new();
        e.submit(&mut p, read(1, 1), &mut done);
        e.submit(&mut p, read(2, 2), &mut done);
        // The first failed (TFES), the second waits behind the error.
        e.service(&mut p, &mut done);
        assert!(done.is_empty());
        assert_eq!(p.stats.restarts, 1);
        e.service(&mut p, &mut done);
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|d| d.1 == Ok(512)));
        assert_eq!(p.stats.errors, 1);
        assert_eq!(p.hba.violation, None);
    }

    #[test]
    fn persistent_and_out_of_range_errors_complete_with_the_error() {
        let mut p = setup(16);
        p.init().unwrap();
        let mut e = Engine::new();
        let mut done = Vec::new();
        // Beyond the disk: IDNF|ABRT, not retried.
        e.submit(&mut p, read(100, 7), &mut done);
        e.service(&mut p, &mut done);
        assert_eq!(done.len(), 1);
        let Err(err) = done[0].1 else { panic!() };
        assert_eq!(
            crate::scsi::port_error(&err).1,
            Some(crate::scsi::Sense::LBA_OUT_OF_RANGE)
        );
        assert_eq!(p.hba.commands, 1);
        // Failing every time: 1 + MAX_RETRIES attempts.
        done.clear();
        p.hba.fail_next = 100;
        e.submit(&mut p, read(1, 8), &mut done);
        for _ in 0..10 {
            e.service(&mut p, &mut done);
        }
        assert_eq!(done.len(), 1);
        assert!(matches!(done[0].1, Err(PortError::Device(..))));
        assert_eq!(p.hba.commands, 1 + 1 + MAX_RETRIES);
        // Failing everything outstanding.
        p.hba.fail_next = 0;
        p.hba.stuck = true;
        done.clear();
        e.submit(&mut p, read(1, 9), &mut done);
        e.service(&mut p, &mut done);
        assert!(done.is_empty());
        e.fail_all(&mut p, PortError::Timeout, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1, Err(PortError::Timeout));
        assert_eq!(p.hba.violation, None);
    }

    #[test]
    fn a_requested_reset_comresets_and_reissues_what_was_in_flight() {
        let mut p = setup(4096);
        p.init().unwrap();
        p.hba.disk[3 * 512] = 0x33;
        let mut e = Engine::new();
        let mut done = Vec::new();
        // Two lost commands: nothing completes until the reset.
        p.hba.stuck = true;
        e.submit(&mut p, read(3, 3), &mut done);
        e.submit(&mut p, read(4, 4), &mut done);
        e.service(&mut p, &mut done);
        assert!(done.is_empty());
        assert_eq!(e.in_flight(), 2);
        p.hba.stuck = false;
        p.enable_interrupts();
        assert_eq!(e.reset(&mut p, &mut done), Ok(()));
        assert_eq!(p.stats.comresets, 1);
        assert_eq!(p.hba.read32(port(0) + PXIE), IE_ENABLED);
        e.service(&mut p, &mut done);
        let mut tags: Vec<u32> = done.iter().map(|d| d.0).collect();
        tags.sort();
        assert_eq!(tags, [3, 4]);
        assert!(done.iter().all(|d| d.1 == Ok(512)));
        assert_eq!(buf_read(&p, 3 * 512, 1)[0], 0x33);
        assert_eq!(p.hba.commands, 4);
        assert_eq!(p.hba.violation, None);
        // A device that does not come back: the reset and its commands fail.
        done.clear();
        p.hba.stuck = true;
        e.submit(&mut p, read(5, 5), &mut done);
        p.hba.absent = true;
        assert_eq!(e.reset(&mut p, &mut done), Err(PortError::NoDevice));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0], (5, Err(PortError::NoDevice)));
        assert_eq!((e.in_flight(), e.queued()), (0, 0));
    }
}
