//! Per-APDU time of the PN532 backend at a simulated 115200 baud, next to the wire floor
//! (docs/reference/pn532.md §8: 87 us per byte; a read or a write is about 44 bytes on the wire).
//!
//! ```text
//! cargo build --release -p encoder-sim && cargo run --release -p encoder-hal --example pn532_bench
//! ```
//!
//! It starts `encoder-sim pn532 --baud 115200` (next to this example's target directory, or
//! `$ENCODER_SIM`) on a temporary link.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use encoder_hal::{Encoder, Pn532Encoder};

const BAUD: u32 = 115_200;
const ROUNDS: u32 = 200;

fn sim_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ENCODER_SIM") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|p| p.parent()).unwrap();
    let path = dir.join("encoder-sim");
    assert!(
        path.exists(),
        "build it first: cargo build --release -p encoder-sim ({})",
        path.display()
    );
    path
}

/// Bytes on the wire for one `InDataExchange`: command frame, ACK, reply frame (7 bytes of
/// frame overhead plus TFI and command code each).
fn wire_bytes(command_data: usize, reply_data: usize) -> usize {
    (7 + 2 + command_data) + 6 + (7 + 2 + reply_data)
}

fn main() {
    let link = std::env::temp_dir().join(format!("pn532-bench-{}", std::process::id()));
    let mut sim = Command::new(sim_binary())
        .args(["pn532", "--baud", &BAUD.to_string(), "--link"])
        .arg(&link)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start encoder-sim");
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l == "ready")),
        "emulator did not start"
    );

    let mut encoder = Pn532Encoder::new(link.display().to_string());
    assert!(
        encoder.wait_for_card(Duration::from_secs(5)).expect("wait"),
        "no card"
    );
    let mut session = encoder.open_session().expect("session");
    let mut tx = |apdu: &[u8]| {
        let reply = session.transmit(apdu).expect("transmit");
        assert_eq!(
            reply.get(reply.len() - 2..),
            Some(&[0x90, 0x00][..]),
            "{reply:02X?}"
        );
    };
    tx(&[
        0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    let auth = [0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00];
    let read = [0xFF, 0xB0, 0x00, 0x04, 0x10];
    let mut write = vec![0xFF, 0xD6, 0x00, 0x04, 0x10];
    write.extend_from_slice(&[0x5A; 16]);

    let byte_us = 10_000_000.0 / f64::from(BAUD);
    println!("PN532 backend at {BAUD} baud (emulated line), {ROUNDS} rounds each");
    println!(
        "{:<14} {:>12} {:>11} {:>14}",
        "APDU", "measured", "wire bytes", "wire floor"
    );
    for (name, apdu, cmd, reply) in [
        ("authenticate", &auth[..], 1 + 12, 1),
        ("read block", &read[..], 1 + 2, 1 + 16),
        ("write block", &write[..], 1 + 18, 1),
    ] {
        tx(&auth);
        let start = Instant::now();
        for _ in 0..ROUNDS {
            tx(apdu);
        }
        let per = start.elapsed() / ROUNDS;
        let bytes = wire_bytes(cmd, reply);
        println!(
            "{name:<14} {:>9.2} ms {bytes:>11} {:>11.2} ms",
            per.as_secs_f64() * 1000.0,
            f64::from(u32::try_from(bytes).unwrap()) * byte_us / 1000.0
        );
    }
    drop(session);
    let _ = sim.kill();
    let _ = sim.wait();
}
