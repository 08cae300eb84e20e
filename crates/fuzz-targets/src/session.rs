//! `pn532_session`: encode and scan through the PN532 backend (`encoder_hal::Pn532Encoder`)
//! over a serial line the fuzzer disturbs, with the simulator's PN532 emulator and MIFARE
//! Classic model on the far side (written from the datasheets, not from the hal).
//!
//! For every frame the host sends, the fuzzer picks what comes back: the chip's honest ACK and
//! reply, or the reply lost, the ACK lost, a corrupted byte, garbage first, the reply twice,
//! a NACK, or the card taken from the field. The jobs then run through the backend's
//! translation of PC/SC Part 3 commands into PN532 frames, and the properties of the whole-job
//! target are checked on the APDUs the jobs sent and the answers the backend gave them.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Duration;

use encoder_hal::pn532::{Link, LinkConfig, Pn532Config, Pn532Encoder};
use encoder_hal::{Canceller, Encoder};
use encoder_protocol::error::JobError;
use encoder_protocol::job;
use encoder_protocol::transmit::{Transmit, TransmitError};
use encoder_sim::mifare::{self, Geometry, MifareClassic};
use encoder_sim::pn532::chip::{FieldCard, FieldChip, Outcome, Pn532};
use encoder_sim::pn532::frame::{self, FrameReader, HostFrame};

use crate::input::{Input, OwnedInput};
use crate::job::{Exchange, check_error, check_read_back, check_writes, credential, site_keys};
use crate::port::{Line, Port};

/// The serial line, with the emulated chip at its far end.
struct EmulatedLine {
    chip: Pn532,
    reader: FrameReader,
    input: OwnedInput,
    pending: VecDeque<u8>,
    last_reply: Vec<u8>,
    chunk: usize,
    timeout: Duration,
}

impl EmulatedLine {
    fn command(&mut self, body: &[u8]) {
        let action = self.input.byte();
        if action >= 250 {
            self.chip.remove_card();
        }
        let reply = match self.chip.handle(body) {
            Outcome::Reply(reply) => frame::reply_frame(&reply),
            Outcome::SyntaxError => frame::ERROR.to_vec(),
            Outcome::Pending => Vec::new(),
        };
        self.last_reply.clone_from(&reply);
        let ack = frame::ACK;
        match action {
            0..=199 | 250.. => {
                self.pending.extend(ack);
                self.pending.extend(&reply);
            }
            200..=207 => self.pending.extend(ack),
            208..=211 => self.pending.extend(&reply),
            212..=223 => {
                let mut bad = reply.clone();
                let (at, mask) = self.input.read(|i| (usize::from(i.byte()), i.byte() | 1));
                let len = bad.len().max(1);
                if let Some(b) = bad.get_mut(at % len) {
                    *b ^= mask;
                }
                self.pending.extend(ack);
                self.pending.extend(bad);
            }
            224..=235 => {
                let garbage = self.input.read(|i| i.slice(12).to_vec());
                self.pending.extend(garbage);
                self.pending.extend(ack);
                self.pending.extend(&reply);
            }
            236..=241 => {
                self.pending.extend(ack);
                self.pending.extend(&reply);
                self.pending.extend(&reply);
            }
            242..=245 => self.pending.extend(frame::NACK),
            _ => {}
        }
    }
}

impl Read for EmulatedLine {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        for dst in buf.iter_mut().take(self.chunk) {
            match self.pending.pop_front() {
                Some(b) => {
                    *dst = b;
                    n += 1;
                }
                None => break,
            }
        }
        match n {
            0 if self.timeout.is_zero() => Err(io::ErrorKind::WouldBlock.into()),
            0 => Err(io::ErrorKind::TimedOut.into()),
            n => Ok(n),
        }
    }
}

impl Write for EmulatedLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            match self.reader.feed(b) {
                Some(HostFrame::Command(body)) => self.command(&body),
                Some(HostFrame::Nack) => {
                    let last = self.last_reply.clone();
                    self.pending.extend(last);
                }
                Some(HostFrame::Ack | HostFrame::Corrupt) | None => {}
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Records the exchanges of a job on the session.
struct Recorder<'s, T: ?Sized> {
    inner: &'s mut T,
    log: Vec<Exchange>,
}

impl<T: Transmit + ?Sized> Transmit for Recorder<'_, T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        assert!(self.log.len() < 10 * job_bound(), "the job does not end");
        let reply = self.inner.transmit(command);
        self.log.push(Exchange {
            command: command.to_vec(),
            reply: reply.as_ref().ok().cloned(),
        });
        reply
    }

    fn reader_caps(&self) -> encoder_protocol::transmit::ReaderCaps {
        self.inner.reader_caps()
    }
}

fn job_bound() -> usize {
    crate::MAX_JOB_APDUS
}

/// Header: a card-kind byte, a chunk-size byte and two credential choices; then one action
/// byte (and its operands) per frame the host sends.
pub fn pn532_session(data: &[u8]) {
    let _ = run(data);
}

/// How each job ended: the error type, or `ok` (`None`: the session did not open).
fn run(data: &[u8]) -> Vec<Option<&'static str>> {
    let mut ended = Vec::new();
    let mut input = Input::new(data);
    let kind = input.byte();
    let geometry = match kind % 4 {
        0 | 1 => Geometry::Classic1k,
        2 => Geometry::Classic4k,
        _ => Geometry::Mini,
    };
    let uid: Vec<u8> = if kind & 0x80 == 0 {
        vec![0xDE, 0xAD, 0xBE, 0xEF]
    } else {
        vec![0x04, 0x51, 0x22, 0x33, 0x44, 0x55, 0x66]
    };
    let Some(block0) = mifare::manufacturer_block(geometry, &uid) else {
        return ended;
    };
    let chunk = 1 + usize::from(input.byte() % 64);
    let wanted = credential(&mut input, 1);
    let site = site_keys(kind & 0x40 != 0);
    let field = FieldCard {
        card: FieldChip::Classic(MifareClassic::factory(geometry, block0)),
        uid,
        sak: geometry.sak(),
        atqa: [0x00, if kind & 0x80 == 0 { 0x04 } else { 0x44 }],
        present: true,
        writes: 0,
        tear_at: None,
    };
    let port = EmulatedLine {
        chip: Pn532::new(field),
        reader: FrameReader::new(),
        input: OwnedInput::take(&mut input),
        pending: VecDeque::new(),
        last_reply: Vec::new(),
        chunk,
        timeout: Duration::from_millis(1),
    };
    // Short waits: a lost frame costs a few milliseconds, not the real 15-350 ms.
    let timing = LinkConfig {
        ack_timeout: Duration::from_millis(2),
        first_ack_timeout: Duration::from_millis(2),
        reply_timeout: Duration::from_millis(4),
        ..LinkConfig::default()
    };
    let config = Pn532Config {
        link: timing.clone(),
        list_timeout: Duration::from_millis(4),
        ..Pn532Config::default()
    };
    let mut link = Link::from_port(Box::new(Port(port)), "fuzz", timing, Canceller::new());
    if encoder_hal::pn532::chip::Chip::sam_configuration(&mut link).is_err() {
        return ended;
    }
    // A path that does not exist: once the link fails, reopening fails at once.
    let mut encoder = Pn532Encoder::with_link("/nonexistent/fuzz-pn532", config, link);
    for encode in [true, true, false] {
        let Ok(mut session) = encoder.open_session() else {
            ended.push(None);
            continue;
        };
        let info = session.info().clone();
        let mut rec = Recorder {
            inner: &mut *session,
            log: Vec::new(),
        };
        if encode {
            let result = job::encode(&mut rec, &info, &site, &wanted);
            check_writes(&rec.log, &site, &info.uid);
            ended.push(Some(result.as_ref().map_or_else(JobError::name, |_| "ok")));
            match result {
                Ok(outcome) => {
                    check_read_back(&rec.log);
                    assert_eq!(outcome.apdu_count, rec.log.len());
                    assert_eq!(outcome.written.credential, wanted);
                    assert_eq!(outcome.uid, info.uid);
                }
                Err(e) => check_error(&e, &rec.log),
            }
        } else {
            let result = job::scan(&mut rec, &info, &site);
            ended.push(Some(result.as_ref().map_or_else(JobError::name, |_| "ok")));
            check_writes(&rec.log, &site, &info.uid);
            match result {
                Ok(outcome) => {
                    if let Some(found) = outcome.credential {
                        assert_eq!(found.credential, wanted);
                    }
                }
                Err(e) => check_error(&e, &rec.log),
            }
        }
    }
    ended
}

impl Line for EmulatedLine {
    fn ready(&self) -> usize {
        self.pending.len()
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_honest_line_encodes_reencodes_and_scans() {
        assert_eq!(run(&[0x00, 16, 0, 3]), [Some("ok"); 3]);
        assert_eq!(run(&[0x82, 5, 0, 8]), [Some("ok"); 3]);
    }
}
