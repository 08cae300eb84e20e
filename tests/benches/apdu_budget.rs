//! APDU counts per job on the in-process virtual card with a realistic credential, against
//! the budgets (each including the UID read and the read-back). Exits non-zero if over.
//! `cargo bench -p encoder-tests --bench apdu_budget`

use encoder_protocol::job::{encode, scan};
use encoder_sim::card::CardType;
use encoder_tests::jobs::{InProcessCard, realistic, realistic_next, site};

const BUDGETS: [(&str, usize); 3] = [("encode blank 1K", 34), ("re-encode", 20), ("scan", 12)];

fn main() {
    let site = site();
    let mut over = false;
    for access in [0usize, 8] {
        let mut card = InProcessCard::new(CardType::Classic1k, &[0x04, 0xA1, 0xB2, 0xC3]);
        let atr = card.atr();
        let blank = encode(&mut card, &atr, &site, &realistic(access)).expect("encode");
        card.insert();
        let reencode = encode(&mut card, &atr, &site, &realistic_next(access)).expect("re-encode");
        card.insert();
        let scanned = scan(&mut card, &atr, &site).expect("scan");
        let counts = [blank.apdu_count, reencode.apdu_count, scanned.apdu_count];
        println!("realistic credential, card number 4009613812, access data {access} bytes:");
        for ((job, budget), count) in BUDGETS.iter().zip(counts) {
            let verdict = if count <= *budget { "ok" } else { "OVER" };
            println!("  {job:<16} {count:>3} APDUs  (budget {budget:>2})  {verdict}");
            over |= count > *budget;
        }
    }
    if over {
        eprintln!("APDU budget exceeded");
        std::process::exit(1);
    }
}
