use super::*;

const KA: [u8; 6] = [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5];
const KB: [u8; 6] = [0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5];
const UID: [u8; 4] = [0xDE, 0xAD, 0xBE, 0xEF];

fn card(geometry: Geometry) -> MifareClassic {
    MifareClassic::factory(geometry, manufacturer_block(geometry, &UID).unwrap())
}

/// A 1K card whose sector 1 has key A `KA`, key B `KB`, data groups `data` and trailer
/// condition `trailer`; blocks 4-6 hold recognisable data.
fn configured(data: [u8; 3], trailer: u8) -> MifareClassic {
    let mut image = card(Geometry::Classic1k).image();
    let conds = AccessConditions([data[0], data[1], data[2], trailer].map(Condition::new));
    let t = 7 * 16;
    image[t..t + 6].copy_from_slice(&KA);
    image[t + 6..t + 9].copy_from_slice(&conds.encode());
    image[t + 9] = 0x69;
    image[t + 10..t + 16].copy_from_slice(&KB);
    for b in 4..7 {
        image[b * 16..b * 16 + 16].fill(u8::try_from(b).unwrap() * 0x11);
    }
    MifareClassic::from_image(Geometry::Classic1k, &image).unwrap()
}

fn key(k: KeyType) -> [u8; 6] {
    match k {
        KeyType::A => KA,
        KeyType::B => KB,
    }
}

#[test]
fn manufacturer_block_layout() {
    let b = manufacturer_block(Geometry::Classic1k, &UID).unwrap();
    assert_eq!(&b[..8], &[0xDE, 0xAD, 0xBE, 0xEF, 0x22, 0x08, 0x04, 0x00]);
    let b = manufacturer_block(Geometry::Classic4k, &[1, 2, 3, 4, 5, 6, 7]).unwrap();
    assert_eq!(&b[..10], &[1, 2, 3, 4, 5, 6, 7, 0x18, 0x42, 0x00]);
    assert!(manufacturer_block(Geometry::Mini, &[1, 2, 3]).is_none());
}

#[test]
fn factory_card_reads_with_key_a() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(0, KeyType::A, FACTORY_KEY).unwrap();
    assert_eq!(&c.read(0).unwrap()[..4], &UID);
    let t = c.read(3).unwrap();
    assert_eq!(&t[..6], &[0; 6], "key A reads as zeros");
    assert_eq!(&t[6..10], &TRANSPORT_ACCESS);
    assert_eq!(
        &t[10..],
        &FACTORY_KEY,
        "key B readable in transport configuration"
    );
}

#[test]
fn data_conditions_table() {
    // Condition -> (read by A, read by B, write by A, write by B), from §1.
    let table: [(u8, [bool; 4]); 8] = [
        (0b000, [true, true, true, true]),
        (0b010, [true, true, false, false]),
        (0b100, [true, true, false, true]),
        (0b110, [true, true, false, true]),
        (0b001, [true, true, false, false]),
        (0b011, [false, true, false, true]),
        (0b101, [false, true, false, false]),
        (0b111, [false, false, false, false]),
    ];
    for (cond, [ra, rb, wa, wb]) in table {
        for (kt, may_read, may_write) in [(KeyType::A, ra, wa), (KeyType::B, rb, wb)] {
            // Trailer 011: key B is not readable, so it can serve for authentication.
            let mut c = configured([cond, 0b000, 0b000], 0b011);
            c.authenticate(4, kt, key(kt)).unwrap();
            assert_eq!(c.read(4).is_ok(), may_read, "read {cond:03b} {kt:?}");
            if !may_read {
                assert_eq!(c.read(4), Err(CardFault::AccessDenied(4)));
            }
            let w = c.write(4, &[0x5A; 16]);
            assert_eq!(w.is_ok(), may_write, "write {cond:03b} {kt:?}");
            let expect = if may_write { [0x5A; 16] } else { [0x44; 16] };
            assert_eq!(&c.image()[64..80], &expect, "content {cond:03b} {kt:?}");
            // The other groups (000) are unaffected.
            assert!(c.read(5).is_ok());
        }
    }
}

#[test]
fn groups_apply_per_block() {
    let mut c = configured([0b000, 0b111, 0b011], 0b011);
    c.authenticate(4, KeyType::A, KA).unwrap();
    assert!(c.read(4).is_ok());
    assert!(c.read(5).is_err());
    assert!(c.read(6).is_err());
    c.authenticate(4, KeyType::B, KB).unwrap();
    assert!(c.read(6).is_ok());
    assert!(c.write(6, &[1; 16]).is_ok());
    assert!(c.write(5, &[1; 16]).is_err());
}

/// Trailer table of §1: (condition, parts) where parts lists for key A then key B:
/// (write key A, read AC, write AC, read key B, write key B).
#[test]
fn trailer_conditions_table() {
    type Parts = [bool; 5];
    let table: [(u8, Parts, Parts); 8] = [
        (0b000, [true, true, false, true, true], [false; 5]),
        (0b010, [false, true, false, true, false], [false; 5]),
        (
            0b100,
            [false, true, false, false, false],
            [true, true, false, false, true],
        ),
        (
            0b110,
            [false, true, false, false, false],
            [false, true, false, false, false],
        ),
        (0b001, [true, true, true, true, true], [false; 5]),
        (
            0b011,
            [false, true, false, false, false],
            [true, true, true, false, true],
        ),
        (
            0b101,
            [false, true, false, false, false],
            [false, true, true, false, false],
        ),
        (
            0b111,
            [false, true, false, false, false],
            [false, true, false, false, false],
        ),
    ];
    for (cond, for_a, for_b) in table {
        for (kt, parts) in [(KeyType::A, for_a), (KeyType::B, for_b)] {
            let mut c = configured([0, 0, 0], cond);
            c.authenticate(7, kt, key(kt)).unwrap();
            let key_b_readable = [0b000, 0b010, 0b001].contains(&cond);
            if kt == KeyType::B && key_b_readable {
                // Key B readable: it cannot serve for authentication; all access refused.
                assert_eq!(c.read(7), Err(CardFault::AccessDenied(7)), "{cond:03b}");
                assert_eq!(c.read(4), Err(CardFault::AccessDenied(4)), "{cond:03b}");
                assert!(c.write(7, &[0; 16]).is_err());
                continue;
            }
            let [write_key_a, r_ac, w_ac, r_kb, write_key_b] = parts;
            let t = c.read(7).unwrap();
            assert_eq!(&t[..6], &[0; 6], "key A reads as zeros ({cond:03b} {kt:?})");
            let old = c.memory[7 * 16..8 * 16].to_vec();
            assert_eq!(t[6..10] == old[6..10], r_ac, "AC read {cond:03b} {kt:?}");
            if !r_ac {
                assert_eq!(&t[6..10], &[0; 4]);
            }
            assert_eq!(t[10..] == old[10..], r_kb, "key B read {cond:03b} {kt:?}");
            if !r_kb {
                assert_eq!(&t[10..], &[0; 6]);
            }
            // Write new keys, the same access bits and a new GPB.
            let mut new = [0u8; 16];
            new[..6].copy_from_slice(&[0x11; 6]);
            new[6..9].copy_from_slice(&old[6..9]);
            new[9] = 0x42;
            new[10..].copy_from_slice(&[0x22; 6]);
            let res = c.write(7, &new);
            assert_eq!(
                res.is_ok(),
                write_key_a || w_ac || write_key_b,
                "write {cond:03b} {kt:?}"
            );
            let after = &c.memory[7 * 16..8 * 16];
            assert_eq!(
                after[..6] == new[..6],
                write_key_a,
                "key A write {cond:03b} {kt:?}"
            );
            assert_eq!(after[9] == 0x42, w_ac, "AC/GPB write {cond:03b} {kt:?}");
            assert_eq!(
                after[10..] == new[10..],
                write_key_b,
                "key B write {cond:03b} {kt:?}"
            );
        }
    }
}

#[test]
fn key_a_changes_access_bits_in_transport_state() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(7, KeyType::A, FACTORY_KEY).unwrap();
    let mut t = [0u8; 16];
    t[..6].copy_from_slice(&KA);
    t[6..10].copy_from_slice(&[0x78, 0x77, 0x88, 0x69]);
    t[10..].copy_from_slice(&KB);
    c.write(7, &t).unwrap();
    // Old key no longer works; the new ones do; key B now hidden.
    c.select();
    assert_eq!(
        c.authenticate(7, KeyType::A, FACTORY_KEY),
        Err(CardFault::AuthFailed)
    );
    c.select();
    c.authenticate(7, KeyType::A, KA).unwrap();
    assert_eq!(
        &c.read(7).unwrap()[6..],
        &[0x78, 0x77, 0x88, 0x69, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(c.write(4, &[1; 16]), Err(CardFault::AccessDenied(4)));
    c.authenticate(7, KeyType::B, KB).unwrap();
    c.write(4, &[1; 16]).unwrap();
    assert_eq!(c.read(4).unwrap(), [1; 16]);
    assert_eq!(c.sector_state(1), SectorState::Usable);
}

#[test]
fn failed_auth_halts_until_reselect() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(4, KeyType::A, FACTORY_KEY).unwrap();
    assert_eq!(
        c.authenticate(8, KeyType::A, KA),
        Err(CardFault::AuthFailed)
    );
    assert!(c.is_halted());
    assert_eq!(c.read(4), Err(CardFault::Halted));
    assert_eq!(c.write(5, &[0; 16]), Err(CardFault::Halted));
    assert_eq!(
        c.authenticate(4, KeyType::A, FACTORY_KEY),
        Err(CardFault::Halted)
    );
    c.select();
    assert_eq!(c.read(4), Err(CardFault::NotAuthenticated(4)));
    c.authenticate(4, KeyType::A, FACTORY_KEY).unwrap();
    assert!(c.read(4).is_ok());
}

#[test]
fn halt_and_power_cycle() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(4, KeyType::A, FACTORY_KEY).unwrap();
    c.halt();
    assert_eq!(c.read(4), Err(CardFault::Halted));
    c.power_cycle();
    assert!(!c.is_halted());
    assert_eq!(c.read(4), Err(CardFault::NotAuthenticated(4)));
}

#[test]
fn only_last_authentication_counts() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(4, KeyType::A, FACTORY_KEY).unwrap();
    c.authenticate(8, KeyType::A, FACTORY_KEY).unwrap();
    assert_eq!(c.authenticated(), Some((2, KeyType::A)));
    assert_eq!(c.read(4), Err(CardFault::NotAuthenticated(4)));
    assert!(c.read(9).is_ok());
    assert_eq!(c.write(5, &[0; 16]), Err(CardFault::NotAuthenticated(5)));
}

#[test]
fn unauthenticated_access_fails() {
    let mut c = card(Geometry::Classic1k);
    assert_eq!(c.read(1), Err(CardFault::NotAuthenticated(1)));
    assert_eq!(c.write(1, &[0; 16]), Err(CardFault::NotAuthenticated(1)));
}

#[test]
fn block_zero_is_read_only() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(0, KeyType::A, FACTORY_KEY).unwrap();
    assert_eq!(c.write(0, &[0; 16]), Err(CardFault::ReadOnly));
    assert_eq!(&c.read(0).unwrap()[..4], &UID);
    c.write(1, &[7; 16]).unwrap();
    assert_eq!(c.read(1).unwrap(), [7; 16]);
}

#[test]
fn invalid_blocks() {
    let mut c = card(Geometry::Classic1k);
    assert_eq!(
        c.authenticate(64, KeyType::A, FACTORY_KEY),
        Err(CardFault::AuthFailed)
    );
    c.select();
    c.authenticate(60, KeyType::A, FACTORY_KEY).unwrap();
    assert_eq!(c.read(64), Err(CardFault::NoSuchBlock(64)));
}

#[test]
fn inconsistent_trailer_blocks_the_sector() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(7, KeyType::A, FACTORY_KEY).unwrap();
    let mut t = [0xFF; 16];
    t[6..10].copy_from_slice(&[0xFF, 0x07, 0x81, 0x69]);
    c.write(7, &t).unwrap();
    assert_eq!(c.sector_state(1), SectorState::Blocked);
    assert_eq!(c.read(4), Err(CardFault::SectorBlocked(1)));
    assert_eq!(c.write(4, &[0; 16]), Err(CardFault::SectorBlocked(1)));
    for kt in [KeyType::A, KeyType::B] {
        c.select();
        assert_eq!(
            c.authenticate(4, kt, FACTORY_KEY),
            Err(CardFault::AuthFailed)
        );
    }
    // Other sectors are fine.
    c.select();
    c.authenticate(8, KeyType::A, FACTORY_KEY).unwrap();
    assert!(c.read(8).is_ok());
}

#[test]
fn trailer_nobody_can_write_freezes_the_sector() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(7, KeyType::A, FACTORY_KEY).unwrap();
    let conds = AccessConditions([0b000, 0b000, 0b000, 0b111].map(Condition::new));
    let mut t = [0xFF; 16];
    t[6..9].copy_from_slice(&conds.encode());
    c.write(7, &t).unwrap();
    assert_eq!(c.sector_state(1), SectorState::Frozen);
    for kt in [KeyType::A, KeyType::B] {
        c.authenticate(7, kt, FACTORY_KEY).unwrap();
        assert_eq!(c.write(7, &t), Err(CardFault::AccessDenied(7)));
    }
}

#[test]
fn four_k_big_sectors() {
    let mut c = card(Geometry::Classic4k);
    assert_eq!(c.image().len(), 4096);
    // Sector 32: blocks 128-143, trailer 143.
    assert_eq!(&c.memory[143 * 16 + 6..143 * 16 + 10], &TRANSPORT_ACCESS);
    assert_eq!(
        &c.memory[131 * 16..132 * 16],
        &[0; 16],
        "131 is data in a 16-block sector"
    );
    c.authenticate(130, KeyType::A, FACTORY_KEY).unwrap();
    assert_eq!(c.authenticated(), Some((32, KeyType::A)));
    c.write(142, &[9; 16]).unwrap();
    assert_eq!(c.read(142).unwrap(), [9; 16]);
    assert_eq!(&c.read(143).unwrap()[..6], &[0; 6]);
    assert_eq!(c.read(144), Err(CardFault::NotAuthenticated(144)));
    c.authenticate(255, KeyType::A, FACTORY_KEY).unwrap();
    assert_eq!(c.authenticated(), Some((39, KeyType::A)));
    // Groups of five blocks: make group 1 (blocks 245-249 of sector 39) read-only.
    let conds = AccessConditions([0b000, 0b010, 0b000, 0b001].map(Condition::new));
    let mut t = [0xFF; 16];
    t[6..9].copy_from_slice(&conds.encode());
    c.write(255, &t).unwrap();
    assert!(c.write(244, &[1; 16]).is_ok());
    assert_eq!(c.write(245, &[1; 16]), Err(CardFault::AccessDenied(245)));
    assert_eq!(c.write(249, &[1; 16]), Err(CardFault::AccessDenied(249)));
    assert!(c.write(250, &[1; 16]).is_ok());
}

#[test]
fn mini_geometry() {
    let mut c = card(Geometry::Mini);
    assert_eq!(c.image().len(), 320);
    c.authenticate(19, KeyType::A, FACTORY_KEY).unwrap();
    assert!(c.read(16).is_ok());
    c.select();
    assert_eq!(
        c.authenticate(20, KeyType::A, FACTORY_KEY),
        Err(CardFault::AuthFailed)
    );
}

#[test]
fn image_round_trip_and_size_check() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(4, KeyType::A, FACTORY_KEY).unwrap();
    c.write(5, &[3; 16]).unwrap();
    let image = c.image();
    let d = MifareClassic::from_image(Geometry::Classic1k, &image).unwrap();
    assert_eq!(d.image(), image);
    let err = MifareClassic::from_image(Geometry::Classic4k, &image).unwrap_err();
    assert_eq!((err.expected, err.got), (4096, 1024));
}

#[test]
fn torn_write_lands_a_prefix() {
    let mut c = card(Geometry::Classic1k);
    c.authenticate(4, KeyType::A, FACTORY_KEY).unwrap();
    c.write(5, &[1; 16]).unwrap();
    c.write_torn(5, &[2; 16], 8).unwrap();
    let b = c.read(5).unwrap();
    assert_eq!(&b[..8], &[2; 8]);
    assert_eq!(&b[8..], &[1; 8]);
    c.authenticate(0, KeyType::A, FACTORY_KEY).unwrap();
    assert_eq!(c.write_torn(0, &[2; 16], 8), Err(CardFault::ReadOnly));
}
