//! APDU counts per job on the in-process virtual card with a realistic credential, against
//! the budgets (each including the read-back). A job's own count excludes the UID: the hal
//! reads it once when it opens the card, so at the card a job costs one APDU more (what
//! `a_job_costs_its_budget_at_the_card_with_one_uid_read` in `tests/tests/daemon_cli.rs` checks
//! in the card's own log). Exits non-zero if over.
//! `cargo bench -p encoder-tests --bench apdu_budget`
//!
//! `DESFire` (docs/card-format.md §10.10): counted in the virtual card's own log
//! (`VirtualCard::apdu_count`), budgets 16 / 8 / 6 for encode blank / re-encode / scan, on
//! EV1, EV2 and EV3; a projection at 25 ms an APDU on a real reader beside Classic's.

use encoder_protocol::job::desfire::{self, DesfireOptions, PiccPolicy};
use encoder_protocol::job::{encode, scan};
use encoder_sim::card::CardType;
use encoder_tests::jobs::{InProcessCard, realistic, realistic_next, site};

/// The job's own budget (the card sees one `FF CA` more).
const BUDGETS: [(&str, usize); 3] = [("encode blank 1K", 33), ("re-encode", 19), ("scan", 11)];

fn main() {
    let site = site();
    let mut over = false;
    let mut classic_at_card = [0usize; 3];
    for access in [0usize, 8] {
        let mut card = InProcessCard::new(CardType::Classic1k, &[0x04, 0xA1, 0xB2, 0xC3]);
        let info = card.info();
        let blank = encode(&mut card, &info, &site, &realistic(access)).expect("encode");
        card.insert();
        let reencode = encode(&mut card, &info, &site, &realistic_next(access)).expect("re-encode");
        card.insert();
        let scanned = scan(&mut card, &info, &site).expect("scan");
        let counts = [blank.apdu_count, reencode.apdu_count, scanned.apdu_count];
        classic_at_card = counts.map(|c| c + 1);
        println!("realistic credential, card number 4009613812, access data {access} bytes:");
        for ((job, budget), count) in BUDGETS.iter().zip(counts) {
            let verdict = if count <= *budget { "ok" } else { "OVER" };
            println!(
                "  {job:<16} {count:>3} APDUs, {:>3} at the card  (budget {budget:>2})  {verdict}",
                count + 1
            );
            over |= count > *budget;
        }
    }
    // What a record one byte over a sector costs (docs/card-format.md §5.2: why v2 keeps the
    // realistic credential in one sector). No budget: for comparison.
    let mut card = InProcessCard::new(CardType::Classic1k, &[0x04, 0xA1, 0xB2, 0xC3]);
    let info = card.info();
    let blank = encode(&mut card, &info, &site, &realistic(9)).expect("encode");
    card.insert();
    let reencode = encode(&mut card, &info, &site, &realistic_next(9)).expect("re-encode");
    card.insert();
    let scanned = scan(&mut card, &info, &site).expect("scan");
    println!("record of two sectors (access data 9 bytes, 49 bytes), no budget:");
    for (job, count) in [
        ("encode blank 1K", blank.apdu_count),
        ("re-encode", reencode.apdu_count),
        ("scan", scanned.apdu_count),
    ] {
        println!("  {job:<16} {count:>3} APDUs, {:>3} at the card", count + 1);
    }
    over |= desfire_budgets(&site, classic_at_card);
    if over {
        eprintln!("APDU budget exceeded");
        std::process::exit(1);
    }
}

/// `DESFire` budgets at the card: encode blank, re-encode, scan.
const DESFIRE_BUDGETS: [(&str, u64); 3] = [("encode blank", 16), ("re-encode", 8), ("scan", 6)];

/// A projected real-reader time: 25 ms an APDU.
const MS_PER_APDU: u64 = 25;

/// Runs the three `DESFire` jobs on each generation and prints the card's own counts beside the
/// budgets; `true` when EV2 or EV3 is over (an EV1 pays one `1C` per authentication: shown, not
/// held to the budget).
fn desfire_budgets(site: &encoder_protocol::keys::SiteKeys, classic: [usize; 3]) -> bool {
    let mut over = false;
    let mut n = 0u8;
    let mut nonce = move || {
        n = n.wrapping_add(1);
        [n; 16]
    };
    for (card_type, policy) in [
        (CardType::DesfireEv2, PiccPolicy::LeaveAsFound),
        (CardType::DesfireEv3, PiccPolicy::LeaveAsFound),
        (CardType::DesfireEv1, PiccPolicy::LeaveAsFound),
        (CardType::DesfireEv2, PiccPolicy::TakeOwnership),
    ] {
        let mut card = InProcessCard::new(card_type, &[0x04, 0x5A, 0x11, 0x22, 0x33, 0x44, 0x80]);
        let info = card.info();
        let options = DesfireOptions { picc: policy };
        let mut counts = [0u64; 3];
        let at = |card: &InProcessCard| card.card.apdu_count();
        let start = at(&card);
        desfire::encode(&mut card, &info, site, &realistic(8), options, &mut nonce)
            .expect("DESFire encode");
        counts[0] = at(&card) - start;
        card.insert();
        let start = at(&card);
        desfire::encode(
            &mut card,
            &info,
            site,
            &realistic_next(8),
            options,
            &mut nonce,
        )
        .expect("DESFire re-encode");
        counts[1] = at(&card) - start;
        card.insert();
        let start = at(&card);
        let scanned = desfire::scan(&mut card, &info, site, &mut nonce).expect("DESFire scan");
        assert!(scanned.credential.is_some(), "the scan found no credential");
        counts[2] = at(&card) - start;
        let held = policy == PiccPolicy::LeaveAsFound && card_type != CardType::DesfireEv1;
        let policy_name = match policy {
            PiccPolicy::LeaveAsFound => "leave_as_found",
            PiccPolicy::TakeOwnership => "take_ownership",
        };
        println!("DESFire {card_type}, PICC {policy_name}, realistic credential (48-byte record):");
        for ((job, budget), count) in DESFIRE_BUDGETS.iter().zip(counts) {
            let verdict = match (count <= *budget, held) {
                (true, _) => "ok",
                (false, true) => "OVER",
                (false, false) => "over (not held: see docs/card-format.md §10.10)",
            };
            println!(
                "  {job:<16} {count:>3} APDUs at the card (budget {budget:>2}), ~{:>4} ms on a real reader  {verdict}",
                count * MS_PER_APDU
            );
            over |= held && count > *budget;
        }
    }
    let ms = |count: usize| u64::try_from(count).unwrap_or(u64::MAX) * MS_PER_APDU;
    println!(
        "Classic 1K, the same credential, at the card: encode blank {} (~{} ms), re-encode {} (~{} ms), scan {} (~{} ms)",
        classic[0],
        ms(classic[0]),
        classic[1],
        ms(classic[1]),
        classic[2],
        ms(classic[2]),
    );
    over
}
