use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::Mutex;

use super::*;

/// Shared output buffer, to look at the `present` / `removed` lines.
#[derive(Clone, Default)]
struct Out(Arc<Mutex<Vec<u8>>>);

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn exchange(s: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    let mut frame = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    s.write_all(&frame).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut out = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut out).unwrap();
    out
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("encoder-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn commands_parse() {
    assert_eq!("remove\n".parse::<Command>(), Ok(Command::Remove));
    assert_eq!(" insert ".parse::<Command>(), Ok(Command::Insert));
    assert_eq!("quit".parse::<Command>(), Ok(Command::Quit));
    assert!("eject".parse::<Command>().is_err());
}

#[test]
fn build_card_rejects_bad_images_and_conflicts() {
    let bad = tmp("bad.mfd");
    std::fs::write(&bad, [0u8; 100]).unwrap();
    let mut o = CardOptions::new(CardType::Classic1k);
    o.load = Some(bad.clone());
    let err = build_card(&o).unwrap_err();
    assert!(err.to_string().contains("1024"), "{err}");
    o.uid = Some(vec![1, 2, 3, 4]);
    assert!(matches!(build_card(&o), Err(SimError::Usage(_))));
    let mut o = CardOptions::new(CardType::Classic1k);
    o.load = Some(tmp("missing.mfd"));
    assert!(matches!(build_card(&o), Err(SimError::File { .. })));
    // A DESFire image is JSON: one of another generation, or not JSON, is refused.
    let mut o = CardOptions::new(CardType::DesfireEv2);
    let json = tmp("desfire.json");
    save_image(&json, &build_card(&o).unwrap()).unwrap();
    o.load = Some(json.clone());
    assert_eq!(build_card(&o).unwrap().card_type(), CardType::DesfireEv2);
    let mut o = CardOptions::new(CardType::DesfireEv3);
    o.load = Some(json);
    assert!(matches!(build_card(&o), Err(SimError::BadImage { .. })));
    o.load = Some(bad);
    assert!(matches!(build_card(&o), Err(SimError::BadImage { .. })));
}

#[test]
fn unreachable_vpcd_is_a_clear_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let mut o = CardOptions::new(CardType::Classic1k);
    o.vpcd = addr;
    o.connect_timeout = Duration::from_millis(200);
    let (_tx, rx) = mpsc::channel();
    let err = run_card(&o, &rx, &AtomicBool::new(false), &mut Out::default()).unwrap_err();
    assert!(matches!(err, SimError::VpcdUnreachable { .. }), "{err}");
}

#[test]
fn full_cycle_remove_insert_reconnect_save_log() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = CardOptions::new(CardType::Classic1k);
    o.vpcd = l.local_addr().unwrap().to_string();
    o.save = Some(tmp("cycle.mfd"));
    o.apdu_log = Some(tmp("cycle.log"));
    let (tx, rx) = mpsc::channel();
    let out = Out::default();
    let mut out2 = out.clone();
    let opts = o.clone();
    let runner = thread::spawn(move || run_card(&opts, &rx, &AtomicBool::new(false), &mut out2));

    // First connection: write a block.
    let (mut s, _) = l.accept().unwrap();
    assert_eq!(exchange(&mut s, &[0x04]), CardType::Classic1k.atr());
    assert_eq!(
        exchange(
            &mut s,
            &[
                0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
            ]
        ),
        [0x90, 0x00]
    );
    assert_eq!(
        exchange(
            &mut s,
            &[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00]
        ),
        [0x90, 0x00]
    );
    let mut write = vec![0xFF, 0xD6, 0x00, 0x04, 0x10];
    write.extend_from_slice(&[0x77; 16]);
    assert_eq!(exchange(&mut s, &write), [0x90, 0x00]);

    // pcscd goes away: the card reports removed, saves, and comes back by itself.
    drop(s);
    let (mut s, _) = l.accept().unwrap();
    let saved = std::fs::read(o.save.as_ref().unwrap()).unwrap();
    assert_eq!(&saved[64..80], &[0x77; 16]);
    // Fresh from power-up: not authenticated.
    assert_eq!(
        exchange(&mut s, &[0xFF, 0xB0, 0x00, 0x04, 0x10]),
        [0x63, 0x00]
    );

    // remove: the connection closes; insert: it comes back.
    tx.send(Command::Remove).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    tx.send(Command::Insert).unwrap();
    let (mut s, _) = l.accept().unwrap();
    assert_eq!(
        exchange(&mut s, &[0xFF, 0xCA, 0x00, 0x00, 0x00]),
        [0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00]
    );
    tx.send(Command::Quit).unwrap();
    runner.join().unwrap().unwrap();
    assert_eq!(
        out.text(),
        "present\nremoved\npresent\nremoved\npresent\nremoved\n"
    );
    let log = std::fs::read_to_string(o.apdu_log.as_ref().unwrap()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "FF 82 00 00 06 FF FF FF FF FF FF -> 90 00");
    assert_eq!(
        lines.last().copied(),
        Some("FF CA 00 00 00 -> DE AD BE EF 90 00")
    );

    // The saved image loads back.
    let mut o2 = CardOptions::new(CardType::Classic1k);
    o2.load = o.save.clone();
    assert_eq!(build_card(&o2).unwrap().image(), saved);
}

#[test]
fn tear_disconnects_and_stays_removed() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = CardOptions::new(CardType::Classic1k);
    o.vpcd = l.local_addr().unwrap().to_string();
    o.tear_after_writes = Some(0);
    o.tear_mode = TearMode::Lost;
    o.apdu_log = Some(tmp("tear.log"));
    let (tx, rx) = mpsc::channel();
    let out = Out::default();
    let mut out2 = out.clone();
    let opts = o.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let runner = thread::spawn(move || run_card(&opts, &rx, &stop2, &mut out2));
    let (mut s, _) = l.accept().unwrap();
    assert_eq!(
        exchange(
            &mut s,
            &[
                0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
            ]
        ),
        [0x90, 0x00]
    );
    assert_eq!(
        exchange(
            &mut s,
            &[0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00]
        ),
        [0x90, 0x00]
    );
    let mut write = vec![0xFF, 0xD6, 0x00, 0x04, 0x10];
    write.extend_from_slice(&[0x77; 16]);
    s.write_all(&[0x00, 0x15]).unwrap();
    s.write_all(&write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // Stays removed until insert; then the stop flag (SIGTERM) ends it.
    tx.send(Command::Insert).unwrap();
    let (_s, _) = l.accept().unwrap();
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().unwrap();
    assert_eq!(out.text(), "present\nremoved\npresent\nremoved\n");
    let log = std::fs::read_to_string(o.apdu_log.as_ref().unwrap()).unwrap();
    assert!(
        log.lines()
            .last()
            .unwrap()
            .ends_with("-> (torn: card left the field)"),
        "{log}"
    );
}
