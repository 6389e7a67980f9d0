use crate::arbiter::*;
use crate::reslist::*;
use crate::ResourceKind;
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;
use wdk::pnp::*;

fn mem(len: u64, min: u64, max: u64) -> IoDescriptor {
    IoDescriptor {
        option: 0,
        ty: CmResourceTypeMemory,
        share: CmResourceShareDeviceExclusive,
        flags: 0,
        length: len,
        alignment: len,
        min,
        max,
    }
}

fn line(irq: u64) -> IoDescriptor {
    IoDescriptor {
        option: 0,
        ty: CmResourceTypeInterrupt,
        share: CmResourceShareShared,
        flags: CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE,
        length: 1,
        alignment: 1,
        min: irq,
        max: irq,
    }
}

fn msi() -> IoDescriptor {
    IoDescriptor {
        option: 0,
        ty: CmResourceTypeInterrupt,
        share: CmResourceShareDeviceExclusive,
        flags: CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE,
        length: 1,
        alignment: 1,
        min: CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN as u64,
        max: CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN as u64,
    }
}

fn req(lists: Vec<Vec<IoDescriptor>>) -> Requirements {
    Requirements {
        interface_type: PCIBus,
        bus_number: 0,
        slot_number: 0xFA,
        lists,
    }
}

fn arbiters() -> Arbiters {
    let mut a = Arbiters::new();
    a.memory.add_window(0x8000_0000, 0xFEBF_FFFF);
    a.port.add_window(0x1000, 0xFFFF);
    a.interrupt.add_window(0, 23);
    a.bus_number.add_window(0, 255);
    a
}

#[test]
fn requirements_round_trip_and_layout() {
    let mut alt = line(10);
    alt.option = IO_RESOURCE_ALTERNATIVE;
    let r = req(vec![vec![mem(0x1000, 0, 0xFFFF_FFFF), msi(), alt]]);
    let b = encode_requirements(&r);
    // Header 0x20, list header 8, three 32-byte descriptors.
    assert_eq!(b.len(), 0x20 + 8 + 3 * 32);
    assert_eq!(
        u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize,
        b.len()
    );
    assert_eq!(u32::from_le_bytes(b[0x1c..0x20].try_into().unwrap()), 1);
    // First descriptor: Type at +1, Length at +8, Alignment +12, Max +24.
    let d = 0x28;
    assert_eq!(b[d + 1], CmResourceTypeMemory);
    assert_eq!(
        u32::from_le_bytes(b[d + 8..d + 12].try_into().unwrap()),
        0x1000
    );
    assert_eq!(
        u32::from_le_bytes(b[d + 12..d + 16].try_into().unwrap()),
        0x1000
    );
    assert_eq!(
        u64::from_le_bytes(b[d + 24..d + 32].try_into().unwrap()),
        0xFFFF_FFFF
    );
    assert_eq!(parse_requirements(&b).unwrap(), r);
}

#[test]
fn damaged_requirements_are_malformed() {
    let r = req(vec![vec![mem(0x1000, 0, 0xFFFF_FFFF)]]);
    let b = encode_requirements(&r);
    // Truncated buffer, ListSize beyond it, count beyond ListSize.
    assert_eq!(parse_requirements(&b[..b.len() - 1]), Err(Malformed));
    let mut c = b.clone();
    c[0x20 + 4] = 2;
    assert_eq!(parse_requirements(&c), Err(Malformed));
    let mut c = b.clone();
    c[0x1c] = 0xFF;
    assert_eq!(parse_requirements(&c), Err(Malformed));
    let mut c = b.clone();
    c[0x20 + 4..0x20 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(parse_requirements(&c), Err(Malformed));
    assert_eq!(parse_requirements(&[]), Err(Malformed));
}

#[test]
fn cm_list_round_trip() {
    let l = vec![CmFull {
        interface_type: PCIBus,
        bus_number: 0,
        descriptors: vec![
            CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0xFEBD_5000, 0x1000, false),
            CM_PARTIAL_RESOURCE_DESCRIPTOR::port(0xC040, 0x20),
        ],
    }];
    let b = encode_cm_list(&l);
    assert_eq!(b.len(), 20 + 2 * 20);
    // First partial descriptor at offset 20: Start at +4.
    assert_eq!(
        u64::from_le_bytes(b[24..32].try_into().unwrap()),
        0xFEBD_5000
    );
    assert_eq!(cm_list_len(&b), Ok(b.len()));
    assert_eq!(parse_cm_list(&b).unwrap(), l);
    assert_eq!(parse_cm_list(&b[..b.len() - 1]), Err(Malformed));
}

#[test]
fn boot_configuration_is_kept_without_conflict() {
    let mut a = arbiters();
    let r = req(vec![vec![mem(0x1000, 0, 0xFFFF_FFFF), line(10)]]);
    let boot = [BootRange {
        kind: ResourceKind::Memory,
        start: 0xFEBD_5000,
        length: 0x1000,
    }];
    let got = assign(&mut a, &r, &boot, Owner::Device(1)).unwrap();
    assert_eq!(got[0].start, 0xFEBD_5000);
    assert_eq!(got[1].start, 10);
    // A second device sharing the level-triggered line.
    let got2 = assign(&mut a, &req(vec![vec![line(10)]]), &[], Owner::Device(2)).unwrap();
    assert_eq!(got2[0].start, 10);
}

#[test]
fn conflict_moves_then_fails_and_leaves_no_trace() {
    let mut a = arbiters();
    // A reservation over the boot range: the device moves.
    a.memory.reserve(0xFEBD_5000, 0xFEBD_5FFF, 1);
    let r = req(vec![vec![mem(0x1000, 0, 0xFFFF_FFFF)]]);
    let boot = [BootRange {
        kind: ResourceKind::Memory,
        start: 0xFEBD_5000,
        length: 0x1000,
    }];
    let got = assign(&mut a, &r, &boot, Owner::Device(1)).unwrap();
    assert_ne!(got[0].start, 0xFEBD_5000);
    assert_eq!(got[0].start % 0x1000, 0);
    // Everything reserved: the device fails, the arbiter is unchanged.
    let mut b = arbiters();
    b.memory.reserve(0, u64::MAX, 1);
    let before = b.memory.allocations().to_vec();
    let e = assign(
        &mut b,
        &req(vec![vec![line(11), mem(0x1000, 0, 0xFFFF_FFFF)]]),
        &boot,
        Owner::Device(2),
    )
    .unwrap_err();
    assert_eq!(e.kind, Some(ResourceKind::Memory));
    assert_eq!(b.memory.allocations(), &before[..]);
    assert!(b.interrupt.allocations().is_empty(), "line 11 rolled back");
}

#[test]
fn alternatives_and_lists_are_tried_in_order() {
    let mut a = arbiters();
    a.interrupt.take(5, 5, Owner::Device(9), false);
    // Group: line 5 (taken exclusively) or, as alternative, line 7.
    let mut alt = line(7);
    alt.option = IO_RESOURCE_ALTERNATIVE;
    let got = assign(
        &mut a,
        &req(vec![vec![line(5), alt]]),
        &[],
        Owner::Device(1),
    )
    .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].start, 7);
    // First list impossible (memory below 0x1000 outside any window),
    // second list fine.
    let r = req(vec![
        vec![mem(0x1000, 0, 0xFFF)],
        vec![mem(0x1000, 0, u64::MAX)],
    ]);
    let got = assign(&mut a, &r, &[], Owner::Device(2)).unwrap();
    assert_eq!(got[0].start, 0x8000_0000);
    // A message interrupt is passed through for translation.
    let got = assign(&mut a, &req(vec![vec![msi()]]), &[], Owner::Device(3)).unwrap();
    assert!(got[0].message);
    assert_eq!(got[0].length, 1);
}

#[test]
fn release_frees_everything_of_an_owner() {
    let mut a = arbiters();
    let r = req(vec![vec![
        mem(0x1000, 0, u64::MAX),
        mem(0x4000, 0, u64::MAX),
    ]]);
    assign(&mut a, &r, &[], Owner::Device(1)).unwrap();
    assert_eq!(a.memory.allocations().len(), 2);
    a.release(Owner::Device(1));
    assert!(a.memory.allocations().is_empty());
}

proptest! {
    /// Whatever the requests, assigned exclusive ranges never overlap each
    /// other or reservations, respect alignment and min/max, and lie in a
    /// window unless they are the boot configuration.
    #[test]
    fn no_overlap_alignment_respected(
        reqs in proptest::collection::vec((0u32..8, 0u32..4, proptest::option::of(0u64..64)), 1..40),
        reserved in proptest::collection::vec((0u64..64, 1u64..8), 0..6),
    ) {
        let mut a = Arbiters::new();
        a.memory.add_window(0x10_0000, 0x13F_FFFF);
        for &(at, n) in &reserved {
            a.memory.reserve(0x10_0000 + at * 0x1_0000, 0x10_0000 + (at + n) * 0x1_0000 - 1, 7);
        }
        for (i, &(shift, minsel, boot)) in reqs.iter().enumerate() {
            let len = 0x1000u64 << shift;
            let min = [0, 0x10_0000, 0x12_0000, 0x13F_0000][minsel as usize];
            let d = mem(len, min, 0x13F_FFFF);
            let boot: Vec<BootRange> = boot
                .map(|b| BootRange { kind: ResourceKind::Memory, start: 0x10_0000 + b * 0x1_0000, length: len })
                .into_iter()
                .collect();
            if let Ok(got) = assign(&mut a, &req(vec![vec![d]]), &boot, Owner::Device(i as u64 + 1)) {
                let g = got[0];
                prop_assert_eq!(g.start % len, 0);
                prop_assert!(g.start >= min && g.start + len - 1 <= 0x13F_FFFF);
            }
        }
        let all = a.memory.allocations();
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                let both_reserved = matches!(x.owner, Owner::Reserved(_)) && matches!(y.owner, Owner::Reserved(_));
                prop_assert!(both_reserved || !(x.start <= y.end && y.start <= x.end), "{:x?} {:x?}", x, y);
            }
        }
    }

    /// Parsing arbitrary bytes never panics.
    #[test]
    fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_requirements(&b);
        let _ = parse_cm_list(&b);
    }

    /// A list survives encoding and parsing.
    #[test]
    fn requirements_round_trip(lens in proptest::collection::vec(0u32..20, 0..6), lists in 1usize..3) {
        let l: Vec<IoDescriptor> = lens.iter().map(|&s| mem(1u64 << s, 0, u64::MAX >> 1)).collect();
        let r = req(vec![l; lists]);
        prop_assert_eq!(parse_requirements(&encode_requirements(&r)).unwrap(), r);
    }
}
