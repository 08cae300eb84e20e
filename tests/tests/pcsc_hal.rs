//! The PC/SC backend against a real pcscd with vpcd readers and the virtual card.

use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use encoder_hal::pcsc::{PcscEncoder, ReaderEvent, ReaderMonitor, ReaderState, snapshot};
use encoder_hal::{Encoder, ErrorKind};
use encoder_protocol::transmit::TransmitErrorKind;
use encoder_tests::{Rig, STARTUP};

const UID: &str = "DEADBEEF";

fn ok(reply: &[u8]) -> &[u8] {
    let (data, sw) = reply.split_at(reply.len() - 2);
    assert_eq!(sw, [0x90, 0x00], "reply {reply:02X?}");
    data
}

fn next_event(events: &Receiver<ReaderEvent>, what: impl Fn(&ReaderEvent) -> bool) -> ReaderEvent {
    let deadline = Instant::now() + STARTUP;
    loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(event) if what(&event) => {
                eprintln!("event (matched): {event:?}");
                return event;
            }
            Ok(other) => eprintln!("event (skipped): {other:?}"),
            Err(RecvTimeoutError::Timeout) => panic!("event did not come"),
            Err(RecvTimeoutError::Disconnected) => panic!("monitor stopped"),
        }
    }
}

#[test]
fn lists_readers_and_the_card_on_each() {
    let rig = Rig::start(4);
    rig.use_in_this_process();
    let _card = rig.card(1, &["--type", "classic-1k", "--uid", UID]);
    let readers = snapshot().expect("snapshot");
    let names: Vec<_> = readers.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names, (0..4).map(Rig::reader_name).collect::<Vec<_>>());
    let with_card = &readers[1];
    assert_eq!(with_card.state, ReaderState::CardPresent);
    let card = with_card.card.as_ref().expect("card info");
    assert_eq!(card.uid, [0xDE, 0xAD, 0xBE, 0xEF]);
    assert_eq!(
        card.atr.as_deref(),
        Some(
            &[
                0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x6A
            ][..]
        )
    );
    assert!(
        readers
            .iter()
            .enumerate()
            .all(|(i, r)| i == 1 || r.state == ReaderState::Empty)
    );
}

#[test]
fn uid_and_atr_of_every_card_type() {
    let rig = Rig::start(2);
    rig.use_in_this_process();
    let cases: [(&str, &str, &str); 5] = [
        ("classic-1k", "01020304", "classic-1k"),
        ("classic-4k", "0A0B0C0D", "classic-4k"),
        ("mini", "11223344", "classic-mini"),
        ("ultralight", "04112233445566", "ultralight"),
        ("desfire", "04A1A2A3A4A5A6", "iso14443-4"),
    ];
    let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    for (kind, uid, expected) in cases {
        let card = rig.card(0, &["--type", kind, "--uid", uid]);
        assert!(
            encoder.wait_for_card(STARTUP).expect("wait"),
            "{kind}: no card; {}",
            rig.log()
        );
        let session = encoder.open_session().expect("session");
        let info = session.info().clone();
        drop(session);
        let uid_bytes: Vec<u8> = (0..uid.len() / 2)
            .map(|i| u8::from_str_radix(&uid[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(info.uid, uid_bytes, "{kind}");
        let identified = info.card_type();
        assert!(
            identified.name().starts_with(expected),
            "{kind}: {} ({:02X?})",
            identified.name(),
            info.atr
        );
        drop(card);
        // The card process is gone: the reader becomes empty before the next card.
        assert!(rig.wait_reader(0, false), "{kind}: card not removed");
    }
}

#[test]
fn authenticates_reads_and_writes_through_pcscd() {
    let rig = Rig::start(2);
    rig.use_in_this_process();
    let _card = rig.card(0, &["--type", "classic-1k", "--uid", UID]);
    let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    assert!(encoder.wait_for_card(STARTUP).expect("wait"));
    let mut s = encoder.open_session().expect("session");
    // Load the factory key, authenticate block 4 with key A, write and read back.
    ok(&s
        .transmit(&[
            0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ])
        .expect("load"));
    ok(&s
        .transmit(&[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00])
        .expect("auth"));
    let data: Vec<u8> = (0u8..16).collect();
    let mut write = vec![0xFF, 0xD6, 0x00, 0x04, 0x10];
    write.extend_from_slice(&data);
    ok(&s.transmit(&write).expect("write"));
    let read = s.transmit(&[0xFF, 0xB0, 0x00, 0x04, 0x10]).expect("read");
    assert_eq!(ok(&read), data.as_slice());
    // The trailer reads with key A as zeros, access bits FF 07 80, GPB 69, key B readable.
    let trailer = s
        .transmit(&[0xFF, 0xB0, 0x00, 0x07, 0x10])
        .expect("read trailer");
    assert_eq!(
        ok(&trailer)[..10],
        [0, 0, 0, 0, 0, 0, 0xFF, 0x07, 0x80, 0x69]
    );
    // A wrong key fails, and the card then needs re-selection: reads fail too.
    ok(&s
        .transmit(&[0xFF, 0x82, 0x00, 0x01, 0x06, 1, 2, 3, 4, 5, 6])
        .expect("load"));
    let bad = s
        .transmit(&[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x08, 0x60, 0x01])
        .expect("auth");
    assert_ne!(bad[bad.len() - 2..], [0x90, 0x00]);
    let after = s.transmit(&[0xFF, 0xB0, 0x00, 0x04, 0x10]).expect("read");
    assert_ne!(after[after.len() - 2..], [0x90, 0x00]);
    // Re-authenticating with the right key works again.
    ok(&s
        .transmit(&[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00])
        .expect("auth"));
    assert_eq!(
        ok(&s.transmit(&[0xFF, 0xB0, 0x00, 0x04, 0x10]).expect("read")),
        data.as_slice()
    );
}

#[test]
fn access_conditions_hold_through_pcscd() {
    let rig = Rig::start(2);
    rig.use_in_this_process();
    let _card = rig.card(0, &["--type", "classic-1k"]);
    let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    assert!(encoder.wait_for_card(STARTUP).expect("wait"));
    let mut s = encoder.open_session().expect("session");
    ok(&s
        .transmit(&[
            0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ])
        .expect("load"));
    ok(&s
        .transmit(&[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x0B, 0x60, 0x00])
        .expect("auth"));
    // Sector 2: key A = A0..A5, key B = B0..B5, access 78 77 88 (data: read A|B, write B;
    // trailer 011: key B writes).
    let trailer = [
        0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0x78, 0x77, 0x88, 0x69, 0xB0, 0xB1, 0xB2, 0xB3, 0xB4,
        0xB5,
    ];
    let mut write = vec![0xFF, 0xD6, 0x00, 0x0B, 0x10];
    write.extend_from_slice(&trailer);
    ok(&s.transmit(&write).expect("write trailer"));
    // Key A may read but not write block 8.
    ok(&s
        .transmit(&[
            0xFF, 0x82, 0x00, 0x00, 0x06, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5,
        ])
        .expect("load"));
    ok(&s
        .transmit(&[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x08, 0x60, 0x00])
        .expect("auth A"));
    ok(&s.transmit(&[0xFF, 0xB0, 0x00, 0x08, 0x10]).expect("read"));
    let mut write8 = vec![0xFF, 0xD6, 0x00, 0x08, 0x10];
    write8.extend_from_slice(&[0x55; 16]);
    let refused = s.transmit(&write8).expect("write");
    assert_ne!(refused[refused.len() - 2..], [0x90, 0x00]);
    // Key B writes it, and key B is not readable in the trailer.
    ok(&s
        .transmit(&[
            0xFF, 0x82, 0x00, 0x01, 0x06, 0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5,
        ])
        .expect("load"));
    ok(&s
        .transmit(&[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x08, 0x61, 0x01])
        .expect("auth B"));
    ok(&s.transmit(&write8).expect("write"));
    let t = s
        .transmit(&[0xFF, 0xB0, 0x00, 0x0B, 0x10])
        .expect("read trailer");
    assert_eq!(
        ok(&t),
        [0, 0, 0, 0, 0, 0, 0x78, 0x77, 0x88, 0x69, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn monitor_reports_readers_and_cards() {
    let rig = Rig::start(2);
    rig.use_in_this_process();
    let (tx, events) = channel();
    let monitor = ReaderMonitor::spawn(tx).expect("monitor");
    for slot in 0..2 {
        let name = Rig::reader_name(slot);
        next_event(&events, |e| *e == ReaderEvent::Added(name.clone()));
    }
    let reader = Rig::reader_name(1);
    let mut card = rig.card(1, &["--type", "classic-1k"]);
    next_event(
        &events,
        |e| matches!(e, ReaderEvent::CardInserted { reader: r, .. } if *r == reader),
    );
    card.remove();
    next_event(&events, |e| *e == ReaderEvent::CardRemoved(reader.clone()));
    card.insert();
    next_event(
        &events,
        |e| matches!(e, ReaderEvent::CardInserted { reader: r, .. } if *r == reader),
    );
    let started = Instant::now();
    monitor.stop();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        started.elapsed()
    );
}

#[test]
fn recovers_when_pcscd_is_killed_and_restarted() {
    let mut rig = Rig::start(2);
    rig.use_in_this_process();
    let (tx, events) = channel();
    let _monitor = ReaderMonitor::spawn(tx).expect("monitor");
    next_event(&events, |e| *e == ReaderEvent::Added(Rig::reader_name(0)));
    let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    assert!(
        !encoder
            .wait_for_card(Duration::from_millis(200))
            .expect("wait")
    );

    rig.kill_pcscd();
    next_event(&events, |e| *e == ReaderEvent::Removed(Rig::reader_name(0)));
    next_event(&events, |e| matches!(e, ReaderEvent::ServiceLost(_)));
    let err = encoder.open_session().err().expect("no pcscd, no session");
    assert!(
        matches!(err.kind(), ErrorKind::NoService | ErrorKind::NoCard),
        "{err}"
    );

    rig.start_pcscd();
    next_event(&events, |e| *e == ReaderEvent::ServiceUp);
    next_event(&events, |e| *e == ReaderEvent::Added(Rig::reader_name(0)));
    let _card = rig.card(0, &["--type", "classic-1k", "--uid", UID]);
    // The same encoder object works again: a new context was established.
    assert!(encoder.wait_for_card(STARTUP).expect("wait after restart"));
    let session = encoder.open_session().expect("session after restart");
    assert_eq!(session.info().uid, [0xDE, 0xAD, 0xBE, 0xEF]);
}

#[test]
fn waits_through_a_pcscd_restart() {
    let mut rig = Rig::start(2);
    rig.use_in_this_process();
    let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    assert!(
        !encoder
            .wait_for_card(Duration::from_millis(100))
            .expect("wait")
    );
    rig.kill_pcscd();
    let waiter = std::thread::spawn(move || {
        let result = encoder.wait_for_card(Duration::from_secs(20));
        (result, encoder)
    });
    std::thread::sleep(Duration::from_millis(300));
    rig.start_pcscd();
    let _card = rig.card(0, &["--type", "classic-1k"]);
    let (result, _encoder) = waiter.join().expect("join");
    assert!(result.expect("wait across restart"));
}

#[test]
fn card_removed_mid_session_is_a_typed_error_and_reinsert_recovers() {
    let rig = Rig::start(2);
    rig.use_in_this_process();
    let mut card = rig.card(0, &["--type", "classic-1k", "--uid", UID]);
    let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    assert!(encoder.wait_for_card(STARTUP).expect("wait"));
    {
        let mut s = encoder.open_session().expect("session");
        ok(&s.transmit(&[0xFF, 0xCA, 0x00, 0x00, 0x00]).expect("uid"));
        card.remove();
        let deadline = Instant::now() + STARTUP;
        let err = loop {
            // pcscd notices a vpcd card leaving at its next poll of the reader.
            match s.transmit(&[0xFF, 0xCA, 0x00, 0x00, 0x00]) {
                Err(e) => break e,
                Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(r) => panic!("card still answers: {r:02X?}"),
            }
        };
        assert_eq!(err.kind(), TransmitErrorKind::CardRemoved, "{err}");
    }
    card.insert();
    assert!(encoder.wait_for_card(STARTUP).expect("wait"));
    let mut s = encoder.open_session().expect("session after reinsert");
    assert_eq!(
        ok(&s.transmit(&[0xFF, 0xCA, 0x00, 0x00, 0x00]).expect("uid")),
        [0xDE, 0xAD, 0xBE, 0xEF]
    );
}

#[test]
fn unplugged_reader_is_a_typed_error_and_usable_when_it_returns() {
    let mut rig = Rig::start(4);
    rig.use_in_this_process();
    let reader = Rig::reader_name(3);
    let mut encoder = PcscEncoder::new(&reader).expect("encoder");
    assert!(
        !encoder
            .wait_for_card(Duration::from_millis(100))
            .expect("wait")
    );
    // "Unplug" readers 2 and 3: pcscd comes back with two readers only.
    rig.kill_pcscd();
    rig.set_readers(2);
    rig.start_pcscd();
    let err = encoder
        .wait_for_card(Duration::from_secs(5))
        .expect_err("reader is gone");
    assert_eq!(err.kind(), ErrorKind::ReaderUnavailable, "{err}");
    assert!(err.to_string().contains(&reader), "{err}");
    assert!(err.hint().contains("unplugged"));
    // Plug them back in.
    rig.kill_pcscd();
    rig.set_readers(4);
    rig.start_pcscd();
    let _card = rig.card(3, &["--type", "classic-1k", "--uid", UID]);
    assert!(encoder.wait_for_card(STARTUP).expect("wait after replug"));
    assert_eq!(
        encoder.open_session().expect("session").info().uid,
        [0xDE, 0xAD, 0xBE, 0xEF]
    );
}

#[test]
fn wait_times_out_without_a_card_and_cancel_is_prompt() {
    let rig = Rig::start(2);
    rig.use_in_this_process();
    let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    let started = Instant::now();
    assert!(
        !encoder
            .wait_for_card(Duration::from_millis(500))
            .expect("wait")
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );

    let canceller = encoder.canceller();
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        (
            encoder.wait_for_card(Duration::from_secs(60)),
            started.elapsed(),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    canceller.cancel();
    let (result, took) = waiter.join().expect("join");
    assert_eq!(result.err().map(|e| e.kind()), Some(ErrorKind::Cancelled));
    assert!(took < Duration::from_secs(3), "cancel took {took:?}");
}

#[test]
fn a_second_exclusive_session_is_refused_as_busy() {
    let rig = Rig::start(2);
    rig.use_in_this_process();
    let _card = rig.card(0, &["--type", "classic-1k"]);
    let mut first = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    let mut second = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    assert!(first.wait_for_card(STARTUP).expect("wait"));
    let _held = first.open_session().expect("first session");
    let err = second.open_session().err().expect("second session refused");
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
}
