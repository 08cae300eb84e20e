//! APDU counts per job on the in-process virtual card with a realistic credential, against
//! the budgets (each including the read-back). A job's own count excludes the UID: the hal
//! reads it once when it opens the card, so at the card a job costs one APDU more (what
//! `a_job_costs_its_budget_at_the_card_with_one_uid_read` in `tests/tests/daemon_cli.rs` checks
//! in the card's own log). Exits non-zero if over.
//! `cargo bench -p encoder-tests --bench apdu_budget`

use encoder_protocol::job::{encode, scan};
use encoder_sim::card::CardType;
use encoder_tests::jobs::{InProcessCard, realistic, realistic_next, site};

/// The job's own budget (the card sees one `FF CA` more).
const BUDGETS: [(&str, usize); 3] = [("encode blank 1K", 33), ("re-encode", 19), ("scan", 11)];

fn main() {
    let site = site();
    let mut over = false;
    for access in [0usize, 8] {
        let mut card = InProcessCard::new(CardType::Classic1k, &[0x04, 0xA1, 0xB2, 0xC3]);
        let info = card.info();
        let blank = encode(&mut card, &info, &site, &realistic(access)).expect("encode");
        card.insert();
        let reencode = encode(&mut card, &info, &site, &realistic_next(access)).expect("re-encode");
        card.insert();
        let scanned = scan(&mut card, &info, &site).expect("scan");
        let counts = [blank.apdu_count, reencode.apdu_count, scanned.apdu_count];
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
    if over {
        eprintln!("APDU budget exceeded");
        std::process::exit(1);
    }
}
