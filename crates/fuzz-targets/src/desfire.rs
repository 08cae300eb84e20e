//! `desfire_job`: the `DESFire` encode, re-encode and scan (`encoder_protocol::job::desfire`)
//! against the simulator's independent virtual `DESFire` card, the fuzzer choosing every reply
//! as in `whole_job`: honest, forged, another `91 xx` status, a flipped byte, truncated, or a
//! transport error (the card leaving before or after a command lands). The fuzzer also picks
//! the generation (EV0-EV3), an application of another issuer, a PICC without free creation,
//! and an earlier encode by the site at key version 1.
//!
//! Checked on every job, whatever the replies (docs/card-format.md §10):
//! - it ends within [`MAX_JOB_APDUS`] APDUs with a typed result whose APDU count is exact;
//! - it selects only our application or the PICC, and never deletes an application, formats
//!   the card, or changes a PICC key (the default policy leaves it as found);
//! - the other issuer's application is byte for byte as it was;
//! - an encode that succeeds reports the credential it was asked to write;
//! - a scan never returns a credential no job was asked to write, and writes nothing; after an
//!   encode that succeeded with honest replies only, an honest scan returns that credential.

use encoder_protocol::card::CardInfo;
use encoder_protocol::format::Credential;
use encoder_protocol::job::desfire::{self, DesfireOptions};
use encoder_sim::card::{CardType, VirtualCard};

use crate::input::Input;
use crate::job::{
    Exchange, FuzzCard, MAX_JOB_APDUS, check_error, check_scan, credential, site_keys,
};

/// `91 xx` statuses a changed reply ends with (and one ISO status word).
const DESFIRE_STATUSES: [[u8; 2]; 8] = [
    [0x91, 0x00],
    [0x91, 0xAE],
    [0x91, 0xA0],
    [0x91, 0x1E],
    [0x91, 0x9D],
    [0x91, 0xAF],
    [0x91, 0x0E],
    [0x6A, 0x82],
];

/// Our application in wire order.
const OURS: [u8; 3] = [0xB0, 0x0E, 0xFF];
/// The other issuer's application.
const FOREIGN: u32 = 0x0012_3456;

fn prepare(input: &mut Input<'_>) -> Option<VirtualCard> {
    let kind = input.byte();
    let card_type = match kind % 8 {
        0 => CardType::DesfireEv0,
        1 | 2 => CardType::DesfireEv1,
        3..=5 => CardType::DesfireEv2,
        _ => CardType::DesfireEv3,
    };
    let mut card =
        VirtualCard::new(card_type, Some(&[0x04, 0x5A, 0x11, 0x22, 0x33, 0x44, 0x80])).ok()?;
    if kind & 0x10 != 0 {
        // Another issuer's application with a free standard file holding data.
        for apdu in [
            &[
                0x90, 0xCA, 0x00, 0x00, 0x05, 0x56, 0x34, 0x12, 0x0F, 0x82, 0x00,
            ][..],
            &[0x90, 0x5A, 0x00, 0x00, 0x03, 0x56, 0x34, 0x12, 0x00],
            &[
                0x90, 0xCD, 0x00, 0x00, 0x07, 0x01, 0x00, 0xEE, 0xEE, 0x20, 0x00, 0x00, 0x00,
            ],
            &[
                0x90, 0x3D, 0x00, 0x00, 0x0B, 0x01, 0, 0, 0, 4, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF, 0x00,
            ],
        ] {
            let _ = card.transmit(apdu);
        }
        card.insert();
    }
    if kind & 0x20 != 0
        && let Some(d) = card.desfire_mut()
    {
        // No free creation of applications: the factory DES key is needed.
        d.picc_mut().key_settings = 0x09;
    }
    Some(card)
}

/// The command properties over one job's exchanges.
fn check_commands(log: &[Exchange]) {
    assert!(log.len() <= MAX_JOB_APDUS, "{} APDUs", log.len());
    for e in log {
        match e.command.as_slice() {
            [0x90, 0x5A, 0x00, 0x00, 0x03, a, b, c, 0x00] => {
                let aid = [*a, *b, *c];
                assert!(aid == OURS || aid == [0; 3], "selected {aid:02X?}");
            }
            [0x90, 0xDA | 0xFC, ..] => panic!("deleted or formatted: {:02X?}", e.command),
            [0x90, 0xC4, 0x00, 0x00, _, key_no, ..] => {
                assert!(
                    *key_no <= 2,
                    "ChangeKey {key_no:02X}: not one of our three keys"
                );
            }
            _ => {}
        }
    }
}

/// See the module docs.
pub fn desfire_job(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let Some(card) = prepare(&mut input) else {
        return;
    };
    let foreign = card.desfire().and_then(|d| d.application(FOREIGN)).cloned();
    let info = CardInfo::new(card.uid().to_vec(), Some(card.atr()), None, None);
    let site = site_keys(flags & 1 != 0);
    let mut card = FuzzCard {
        card,
        input: Input::new(&[]),
        fuzzed: false,
        removed: false,
        deviated: false,
        log: Vec::new(),
        statuses: &DESFIRE_STATUSES,
    };
    let mut n = 0u8;
    let mut nonce = move || {
        n = n.wrapping_add(1);
        [n; 16]
    };
    let options = DesfireOptions::default();
    let mut asked: Vec<Credential> = Vec::new();
    if flags & 2 != 0 {
        let first = credential(&mut input, 1);
        asked.push(first.clone());
        let _ = desfire::encode(
            &mut card,
            &info,
            &site_keys(false),
            &first,
            options,
            &mut nonce,
        );
    }
    let wanted = [credential(&mut input, 2), credential(&mut input, 3)];
    card.input = input;
    let mut last_good: Option<Credential> = None;
    for credential in &wanted {
        card.next_job(true);
        asked.push(credential.clone());
        let result = desfire::encode(&mut card, &info, &site, credential, options, &mut nonce);
        check_commands(&card.log);
        match result {
            Ok(outcome) => {
                assert_eq!(outcome.apdu_count, card.log.len());
                assert_eq!(&outcome.written.credential, credential);
                last_good = (!card.deviated).then(|| credential.clone());
            }
            Err(e) => {
                check_error(&e, &card.log);
                if card
                    .log
                    .iter()
                    .any(|e| e.command.starts_with(&[0x90, 0x3D]))
                {
                    last_good = None;
                }
            }
        }
    }
    for fuzzed in [true, false] {
        card.next_job(fuzzed);
        let result = desfire::scan(&mut card, &info, &site, &mut nonce);
        check_commands(&card.log);
        assert!(
            !card.log.iter().any(|e| matches!(
                e.command.get(..2),
                Some([0x90, 0x3D | 0xC7 | 0xCA | 0xCB | 0xC4])
            )),
            "a scan changed the card"
        );
        let _ = check_scan(&card.log, result, fuzzed, &asked, last_good.as_ref());
    }
    let after = card
        .card
        .desfire()
        .and_then(|d| d.application(FOREIGN))
        .cloned();
    assert_eq!(after, foreign, "the other issuer's application changed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_replies_on_each_generation() {
        // flags, kind, then the credentials' bytes; every reply honest (the input ends).
        for kind in [1u8, 3, 6, 0x13, 0x33] {
            desfire_job(&[0x00, kind, 0, 3, 0, 3]);
            desfire_job(&[0x03, kind, 0, 3, 0, 3, 0, 3]);
        }
        desfire_job(&[0x00, 0x00]);
    }

    /// A few thousand pseudo-random inputs on stable (`make fuzz` explores properly).
    #[test]
    fn pseudo_random_inputs_keep_the_properties() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        };
        for round in 0..RANDOM_ROUNDS {
            let len = 4 + round % 120;
            let data: Vec<u8> = (0..len).map(|_| next()).collect();
            desfire_job(&data);
        }
    }

    const RANDOM_ROUNDS: usize = 1500;
}
