use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use super::*;
use crate::card::CardType;

/// The vpcd side of a test connection.
struct FakeVpcd {
    stream: TcpStream,
}

impl FakeVpcd {
    fn send(&mut self, payload: &[u8]) {
        let mut frame = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).unwrap();
    }

    /// Sends the length and the data in two writes, as Debian 12's vpcd does.
    fn send_split(&mut self, payload: &[u8]) {
        self.stream
            .write_all(&u16::try_from(payload.len()).unwrap().to_be_bytes())
            .unwrap();
        self.stream.flush().unwrap();
        thread::sleep(Duration::from_millis(20));
        self.stream.write_all(payload).unwrap();
    }

    fn recv(&mut self) -> Vec<u8> {
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len).unwrap();
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream.read_exact(&mut payload).unwrap();
        payload
    }
}

fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

#[test]
fn parse_messages() {
    assert_eq!(Message::parse(vec![0]), Message::PowerOff);
    assert_eq!(Message::parse(vec![1]), Message::PowerOn);
    assert_eq!(Message::parse(vec![2]), Message::Reset);
    assert_eq!(Message::parse(vec![4]), Message::GetAtr);
    assert_eq!(Message::parse(vec![9]), Message::UnknownControl(9));
    assert_eq!(Message::parse(vec![]), Message::Empty);
    assert_eq!(
        Message::parse(vec![0xFF, 0xCA]),
        Message::Apdu(vec![0xFF, 0xCA])
    );
}

#[test]
fn framing_controls_and_apdus_over_tcp() {
    let (l, addr) = listener();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_card = Arc::clone(&stop);
    let card_side = thread::spawn(move || {
        let mut link = Link::connect(&addr).unwrap();
        link.set_poll_interval(Some(Duration::from_millis(20)))
            .unwrap();
        let mut card = VirtualCard::new(CardType::Classic1k, None).unwrap();
        let mut log = Vec::new();
        let end = serve(
            &mut link,
            &mut card,
            || stop_card.load(Ordering::SeqCst),
            |c, r| log.push((c.to_vec(), r.map(<[u8]>::to_vec))),
        )
        .unwrap();
        (end, log)
    });
    let (stream, _) = l.accept().unwrap();
    let mut vpcd = FakeVpcd { stream };
    vpcd.send(&[0x01]);
    vpcd.send(&[0x04]);
    assert_eq!(vpcd.recv(), CardType::Classic1k.atr());
    vpcd.send(&[0xFF, 0xCA, 0x00, 0x00, 0x00]);
    assert_eq!(vpcd.recv(), [0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00]);
    vpcd.send_split(&[
        0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    assert_eq!(vpcd.recv(), [0x90, 0x00]);
    vpcd.send_split(&[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00]);
    assert_eq!(vpcd.recv(), [0x90, 0x00]);
    assert_eq!(vpcd.recv_after(&[0xFF, 0xB0, 0x00, 0x04, 0x10]).len(), 18);
    // Reset clears authentication; no answer to controls (the next answer is the APDU's).
    vpcd.send(&[0x02]);
    vpcd.send(&[0x00]);
    vpcd.send(&[0x01]);
    vpcd.send(&[]);
    vpcd.send(&[0x07]);
    assert_eq!(
        vpcd.recv_after(&[0xFF, 0xB0, 0x00, 0x04, 0x10]),
        [0x63, 0x00]
    );
    // Several frames in one segment.
    let mut burst = vec![0x00, 0x01, 0x04];
    burst.extend_from_slice(&[0x00, 0x05, 0xFF, 0xCA, 0x00, 0x00, 0x00]);
    vpcd.stream.write_all(&burst).unwrap();
    assert_eq!(vpcd.recv(), CardType::Classic1k.atr());
    assert_eq!(vpcd.recv(), [0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00]);
    stop.store(true, Ordering::SeqCst);
    let (end, log) = card_side.join().unwrap();
    assert_eq!(end, ServeEnd::Stopped);
    assert_eq!(log.len(), 6);
    assert_eq!(
        log[0].1.as_deref(),
        Some(&[0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00][..])
    );
}

impl FakeVpcd {
    fn recv_after(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.send(apdu);
        self.recv()
    }
}

#[test]
fn peer_close_ends_serving() {
    let (l, addr) = listener();
    let card_side = thread::spawn(move || {
        let mut link = Link::connect(&addr).unwrap();
        let mut card = VirtualCard::new(CardType::Mini, None).unwrap();
        serve(&mut link, &mut card, || false, |_, _| {}).unwrap()
    });
    let (stream, _) = l.accept().unwrap();
    let mut vpcd = FakeVpcd { stream };
    vpcd.send(&[0x04]);
    assert_eq!(vpcd.recv(), CardType::Mini.atr());
    // Half a frame, then close.
    vpcd.stream.write_all(&[0x00]).unwrap();
    drop(vpcd);
    assert_eq!(card_side.join().unwrap(), ServeEnd::PeerClosed);
}

#[test]
fn torn_write_gets_no_answer() {
    let (l, addr) = listener();
    let card_side = thread::spawn(move || {
        let mut link = Link::connect(&addr).unwrap();
        let mut card = VirtualCard::new(CardType::Classic1k, None).unwrap();
        card.set_tear_after_writes(Some(0), crate::card::TearMode::Half);
        let end = serve(&mut link, &mut card, || false, |_, _| {}).unwrap();
        link.shutdown();
        (end, card.image())
    });
    let (stream, _) = l.accept().unwrap();
    let mut vpcd = FakeVpcd { stream };
    vpcd.send(&[
        0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    assert_eq!(vpcd.recv(), [0x90, 0x00]);
    vpcd.send(&[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00]);
    assert_eq!(vpcd.recv(), [0x90, 0x00]);
    let mut write = vec![0xFF, 0xD6, 0x00, 0x04, 0x10];
    write.extend_from_slice(&[0x5A; 16]);
    vpcd.send(&write);
    let mut rest = Vec::new();
    vpcd.stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "no answer, just a closed connection");
    let (end, image) = card_side.join().unwrap();
    assert_eq!(end, ServeEnd::Torn);
    assert_eq!(&image[64..72], &[0x5A; 8]);
    assert_eq!(&image[72..80], &[0; 8]);
}

#[test]
fn connect_retry_gives_a_clear_error() {
    let (l, addr) = listener();
    drop(l);
    let err = Link::connect_with_retry(&addr, Duration::from_millis(250), || false).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&addr) && text.contains("vpcd"), "{text}");
}

#[test]
fn connect_retry_waits_for_a_late_listener() {
    // Reserve a port, free it, and listen on it again a little later.
    let (l, addr) = listener();
    drop(l);
    let addr2 = addr.clone();
    let late = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        let l = TcpListener::bind(&addr2).unwrap();
        l.accept().map(|_| ()).unwrap();
    });
    let link = Link::connect_with_retry(&addr, Duration::from_secs(5), || false);
    assert!(link.is_ok());
    late.join().unwrap();
}
