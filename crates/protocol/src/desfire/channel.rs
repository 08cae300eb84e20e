//! Commands to a `DESFire` card over [`Transmit`], in the communication mode each needs
//! (docs/reference/desfire.md §1-3): plain, MAC (8-byte EV2 MAC on command and answer) or FULL
//! (data encrypted, then `MACed`). Long answers are fetched with `AF` frames. Every error status
//! ends the session, as it does on the card. Sans I/O beyond the `Transmit` it is given.

use super::crypto::{self, Block, Key};
use super::ev1::{Ev1Aes, Ev1Session};
use super::ev2::{Ev2First, SecureError, Session};
use super::frame::{self, Answer, FrameError};
use super::legacy::{LegacyAuth, LegacySession};
use super::status::Status;
use crate::transmit::{Transmit, TransmitError};

/// How a command and its answer are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Neither `MACed` nor encrypted (the command counter still advances in a session).
    Plain,
    /// The command's header and data travel plain with an 8-byte MAC; so does the answer.
    Mac,
    /// The data is encrypted (the header is not), and both directions are `MACed`.
    Full,
}

/// Why a `DESFire` command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DesfireError {
    /// The transport failed (card removed, reader gone...).
    #[error("transport: {0}")]
    Transmit(TransmitError),
    /// The answer is not a `DESFire` answer.
    #[error("{0}")]
    Frame(FrameError),
    /// The card refused the command.
    #[error("command {ins:02X} refused: {status}")]
    Card {
        /// The command.
        ins: u8,
        /// The card's status.
        status: Status,
    },
    /// Authentication or secure messaging failed.
    #[error("{0}")]
    Secure(SecureError),
    /// MAC or FULL mode without an authenticated session.
    #[error("command {0:02X} needs an authenticated session")]
    NotAuthenticated(u8),
    /// An answer of the wrong shape.
    #[error("{0}")]
    Shape(super::command::ShapeError),
    /// A command too long to send.
    #[error("command {ins:02X} of {len} bytes is too long")]
    TooLong {
        /// The command.
        ins: u8,
        /// Its length.
        len: usize,
    },
}

impl From<TransmitError> for DesfireError {
    fn from(e: TransmitError) -> Self {
        Self::Transmit(e)
    }
}

impl From<FrameError> for DesfireError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

impl From<SecureError> for DesfireError {
    fn from(e: SecureError) -> Self {
        Self::Secure(e)
    }
}

/// The most `AF` frames one answer may take (an answer of 256 frames is not a `DESFire`).
const MAX_FRAMES: usize = 64;

/// The most data bytes in one command frame: EV1 takes C-APDUs of at most 55 bytes
/// (docs/reference/desfire.md §1); like the Proxmark3 client we send at most 54.
pub const MAX_COMMAND_FRAME: usize = 54;

/// The longest command body we chain (the card's own buffers are smaller).
const MAX_COMMAND: usize = 1024;

/// The secure messaging of the current authentication.
#[derive(Debug, Clone)]
enum Secure {
    /// `AuthenticateEV2First`: EV2 secure messaging.
    Ev2(Session),
    /// `AuthenticateAES`: EV1 secure messaging (one running IV).
    Ev1(Ev1Session),
    /// Legacy `Authenticate` (`0A`, DES): only `ChangeKey` of the PICC master key is used in
    /// it (docs/card-format.md §10.5).
    Legacy(LegacySession),
}

/// A channel to one card: the transport, the session if any, and an APDU count.
pub struct Channel<'t, T: Transmit + ?Sized> {
    tx: &'t mut T,
    secure: Option<Secure>,
    apdus: usize,
}

impl<T: Transmit + ?Sized> std::fmt::Debug for Channel<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("secure", &self.secure)
            .field("apdus", &self.apdus)
            .finish_non_exhaustive()
    }
}

impl<'t, T: Transmit + ?Sized> Channel<'t, T> {
    /// A channel with no session.
    pub fn new(tx: &'t mut T) -> Self {
        Self {
            tx,
            secure: None,
            apdus: 0,
        }
    }

    /// The current EV2 session.
    pub fn session(&self) -> Option<&Session> {
        match &self.secure {
            Some(Secure::Ev2(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether a session (of any kind) is open.
    pub fn is_authenticated(&self) -> bool {
        self.secure.is_some()
    }

    /// Forgets the session, as the card does after `SelectApplication` or an error.
    pub fn end_session(&mut self) {
        self.secure = None;
    }

    /// Continues an existing EV2 session (tests, vectors).
    #[must_use]
    pub fn with_session(mut self, session: Session) -> Self {
        self.secure = Some(Secure::Ev2(session));
        self
    }

    /// Continues an existing EV1 session (tests, vectors).
    #[must_use]
    pub fn with_ev1_session(mut self, session: Ev1Session) -> Self {
        self.secure = Some(Secure::Ev1(session));
        self
    }

    /// Continues an existing legacy session (tests, vectors).
    #[must_use]
    pub fn with_legacy_session(mut self, session: LegacySession) -> Self {
        self.secure = Some(Secure::Legacy(session));
        self
    }

    /// Tells the transport that the first command that changes the card comes next
    /// ([`Transmit::before_first_write`]).
    pub fn before_first_write(&mut self) -> Result<(), TransmitError> {
        self.tx.before_first_write()
    }

    /// APDUs sent so far.
    pub fn apdus(&self) -> usize {
        self.apdus
    }

    fn send(&mut self, apdu: &[u8]) -> Result<Answer, DesfireError> {
        self.apdus += 1;
        let reply = self.tx.transmit(apdu)?;
        Ok(frame::parse(&reply)?)
    }

    /// Sends the native command `ins` with `body`, split into frames of at most
    /// [`MAX_COMMAND_FRAME`] bytes (`90 INS …`, then `90 AF …` while the card answers `AF`), and
    /// collects the answer's `AF` frames (docs/reference/desfire.md §1). An error status ends
    /// the session.
    fn exchange(&mut self, ins: u8, body: &[u8]) -> Result<Answer, DesfireError> {
        if body.len() > MAX_COMMAND {
            return Err(DesfireError::TooLong {
                ins,
                len: body.len(),
            });
        }
        let mut parts = body.chunks(MAX_COMMAND_FRAME);
        let mut answer = self.send(&frame::wrap(ins, parts.next().unwrap_or(&[])))?;
        for part in parts {
            if answer.status != Status::AdditionalFrame {
                break;
            }
            answer = self.send(&frame::wrap(0xAF, part))?;
        }
        let mut data = std::mem::take(&mut answer.data);
        let mut frames = 1;
        while answer.status == Status::AdditionalFrame && frames < MAX_FRAMES {
            answer = self.send(&frame::wrap(0xAF, &[]))?;
            data.extend_from_slice(&answer.data);
            frames += 1;
        }
        if !answer.status.is_success() {
            self.secure = None;
            return Err(DesfireError::Card {
                ins,
                status: answer.status,
            });
        }
        Ok(Answer {
            data,
            status: answer.status,
        })
    }

    /// The two frames of an authentication `ins`: `first`, the card's `AF` challenge turned
    /// into the second command by `second`, and the card's final answer (its data). Any
    /// session ends first.
    fn handshake(
        &mut self,
        ins: u8,
        first: &[u8],
        second: impl FnOnce(&[u8]) -> Result<Vec<u8>, SecureError>,
    ) -> Result<Vec<u8>, DesfireError> {
        self.secure = None;
        let challenge = self.send(first)?;
        if challenge.status != Status::AdditionalFrame {
            return Err(DesfireError::Card {
                ins,
                status: challenge.status,
            });
        }
        let next = second(&challenge.data)?;
        let last = self.send(&next)?;
        if !last.status.is_success() {
            return Err(DesfireError::Card {
                ins,
                status: last.status,
            });
        }
        Ok(last.data)
    }

    /// `AuthenticateEV2First` with `key` (number `key_no`) and the caller's random `rnd_a`.
    pub fn authenticate_ev2_first(
        &mut self,
        key: &Key,
        key_no: u8,
        rnd_a: Block,
    ) -> Result<(), DesfireError> {
        let mut auth = Ev2First::new(*key, key_no, rnd_a);
        let first = auth.command();
        let last = self.handshake(0x71, &first, |c| auth.answer(c))?;
        self.secure = Some(Secure::Ev2(auth.finish(&last)?));
        Ok(())
    }

    /// EV1 `AuthenticateAES` (`AA`) with `key` (number `key_no`) and the caller's `rnd_a`.
    pub fn authenticate_aes(
        &mut self,
        key: &Key,
        key_no: u8,
        rnd_a: Block,
    ) -> Result<(), DesfireError> {
        let mut auth = Ev1Aes::new(*key, key_no, rnd_a);
        let first = auth.command();
        let last = self.handshake(0xAA, &first, |c| auth.answer(c))?;
        self.secure = Some(Secure::Ev1(auth.finish(&last)?));
        Ok(())
    }

    /// Legacy `Authenticate` (`0A`) with the DES `key` (number `key_no`) and the caller's
    /// 8-byte `rnd_a` (docs/reference/desfire.md §8): only to take a factory-fresh card's PICC
    /// master key.
    pub fn authenticate_legacy(
        &mut self,
        key: &[u8; 8],
        key_no: u8,
        rnd_a: [u8; 8],
    ) -> Result<(), DesfireError> {
        let mut auth = LegacyAuth::new(*key, key_no, rnd_a);
        let first = auth.command();
        let last = self.handshake(0x0A, &first, |c| auth.answer(c))?;
        self.secure = Some(Secure::Legacy(auth.finish(&last)?));
        Ok(())
    }

    /// Sends command `ins` with `header` (never encrypted) and `data` in `mode`; returns the
    /// answer's data, checked (and decrypted) as `mode` says, in the secure messaging of the
    /// current authentication (EV2 or EV1). Without a session only `Plain` is possible.
    pub fn command(
        &mut self,
        ins: u8,
        header: &[u8],
        data: &[u8],
        mode: Mode,
    ) -> Result<Vec<u8>, DesfireError> {
        match self.secure.clone() {
            // A legacy session MACs only data files, which we never use in it: its management
            // commands travel plain.
            None if mode == Mode::Plain => {
                let body = [header, data].concat();
                Ok(self.exchange(ins, &body)?.data)
            }
            Some(Secure::Legacy(_)) if mode != Mode::Full => {
                let body = [header, data].concat();
                Ok(self.exchange(ins, &body)?.data)
            }
            None | Some(Secure::Legacy(_)) => Err(DesfireError::NotAuthenticated(ins)),
            Some(Secure::Ev2(session)) => self.command_ev2(session, ins, header, data, mode),
            Some(Secure::Ev1(session)) => self.command_ev1(session, ins, header, data, mode),
        }
    }

    fn command_ev2(
        &mut self,
        session: Session,
        ins: u8,
        header: &[u8],
        data: &[u8],
        mode: Mode,
    ) -> Result<Vec<u8>, DesfireError> {
        let payload = match mode {
            Mode::Full if !data.is_empty() => session.encrypt_command(data),
            _ => data.to_vec(),
        };
        let mut body = [header, &payload].concat();
        if mode != Mode::Plain {
            body.extend_from_slice(&session.mac_command(ins, header, &payload));
        }
        let answer = self.exchange(ins, &body)?;
        let mut session = session;
        let data = match mode {
            Mode::Plain => {
                session.count()?;
                answer.data
            }
            Mode::Mac | Mode::Full => {
                let split = answer.data.len().checked_sub(8).ok_or_else(|| {
                    self.secure = None;
                    SecureError::BadMac
                })?;
                let (body, mac) = answer.data.split_at(split);
                if let Err(e) = session.verify_response(answer.status.to_u8(), body, mac) {
                    self.secure = None;
                    return Err(e.into());
                }
                let plain = if mode == Mode::Full && !body.is_empty() {
                    session
                        .decrypt_response(body)
                        .inspect_err(|_| self.secure = None)?
                } else {
                    body.to_vec()
                };
                session.count()?;
                plain
            }
        };
        self.secure = Some(Secure::Ev2(session));
        Ok(data)
    }

    /// EV1 secure messaging (docs/reference/desfire.md §6): the CMAC of every command runs
    /// the IV on (only a write in MAC mode sends it); every successful answer carries a MAC,
    /// except a FULL answer, which carries its CRC inside the cryptogram.
    fn command_ev1(
        &mut self,
        mut session: Ev1Session,
        ins: u8,
        header: &[u8],
        data: &[u8],
        mode: Mode,
    ) -> Result<Vec<u8>, DesfireError> {
        let command = [&[ins][..], header].concat();
        let mut body = header.to_vec();
        if mode == Mode::Full && !data.is_empty() {
            body.extend_from_slice(&session.encrypt_command(&command, data));
        } else {
            let mac = session.mac_command(&[&command[..], data].concat());
            body.extend_from_slice(data);
            if mode == Mode::Mac && matches!(ins, 0x3D | 0x8D | 0x3B) {
                body.extend_from_slice(&mac);
            }
        }
        let answer = self.exchange(ins, &body)?;
        let result = if mode == Mode::Full && data.is_empty() && !answer.data.is_empty() {
            decrypt_ev1_unknown_length(&mut session, &answer.data)
        } else {
            match answer.data.len().checked_sub(8) {
                Some(split) => {
                    let (plain, mac) = answer.data.split_at(split);
                    session.verify_response(plain, mac).map(|()| plain.to_vec())
                }
                None => Err(SecureError::BadMac),
            }
        };
        match result {
            Ok(plain) => {
                self.secure = Some(Secure::Ev1(session));
                Ok(plain)
            }
            Err(e) => {
                self.secure = None;
                Err(e.into())
            }
        }
    }

    /// `ChangeKey` (`C4`) in FULL mode (docs/reference/desfire.md §6-§7): key `key_no` becomes
    /// `new` with `version`. Changing another key than the authenticated one needs its `old`
    /// value (the card checks `new ⊕ old` and a CRC32 of `new`); changing the authenticated key
    /// (`old: None`) ends the session, and the card answers without a MAC. In a legacy session
    /// only the authenticated key can change (the PICC master key, to AES: `key_no` `80`).
    pub fn change_key(
        &mut self,
        key_no: u8,
        new: &Key,
        version: u8,
        old: Option<&Key>,
    ) -> Result<(), DesfireError> {
        let secure = self
            .secure
            .take()
            .ok_or(DesfireError::NotAuthenticated(0xC4))?;
        match secure {
            Secure::Ev2(session) => {
                if let Some(old) = old {
                    self.secure = Some(Secure::Ev2(session));
                    let mut plain: Vec<u8> = new.iter().zip(old).map(|(n, o)| n ^ o).collect();
                    plain.push(version);
                    plain.extend_from_slice(&crypto::crc32(new));
                    self.command(0xC4, &[key_no], &plain, Mode::Full)?;
                    return Ok(());
                }
                let mut plain = new.to_vec();
                plain.push(version);
                let payload = session.encrypt_command(&plain);
                let mut body = vec![key_no];
                body.extend_from_slice(&payload);
                body.extend_from_slice(&session.mac_command(0xC4, &[key_no], &payload));
                self.finish_own_key_change(&body)
            }
            Secure::Ev1(mut session) => {
                let mut body = vec![key_no];
                body.extend_from_slice(&session.change_key(key_no, new, version, old));
                if old.is_none() {
                    return self.finish_own_key_change(&body);
                }
                let answer = self.exchange(0xC4, &body)?;
                let split = answer
                    .data
                    .len()
                    .checked_sub(8)
                    .ok_or(SecureError::BadMac)?;
                let (plain, mac) = answer.data.split_at(split);
                session.verify_response(plain, mac)?;
                self.secure = Some(Secure::Ev1(session));
                Ok(())
            }
            Secure::Legacy(session) => {
                if old.is_some() {
                    return Err(DesfireError::NotAuthenticated(0xC4));
                }
                let mut body = vec![key_no];
                body.extend_from_slice(&session.change_own_key(new, version));
                self.finish_own_key_change(&body)
            }
        }
    }

    /// Sends a `ChangeKey` of the authenticated key: the session is over, the answer is bare.
    fn finish_own_key_change(&mut self, body: &[u8]) -> Result<(), DesfireError> {
        self.secure = None;
        let answer = self.exchange(0xC4, body)?;
        if !answer.data.is_empty() {
            return Err(SecureError::BadMac.into());
        }
        Ok(())
    }
}

/// An EV1 FULL answer whose length the command does not say (docs/reference/desfire.md §6
/// step 5; searched for only when the command does not say the length): the one length whose `CRC32(data ‖ 00)` and zero padding check, longest first.
fn decrypt_ev1_unknown_length(session: &mut Ev1Session, ct: &[u8]) -> Result<Vec<u8>, SecureError> {
    let max = ct
        .len()
        .checked_sub(4)
        .ok_or(SecureError::BadLength(ct.len()))?;
    for len in (max.saturating_sub(15)..=max).rev() {
        let mut attempt = session.clone();
        if let Ok(plain) = attempt.decrypt_response(ct, len) {
            *session = attempt;
            return Ok(plain);
        }
    }
    Err(SecureError::BadPadding)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::super::crypto::tests::{h, v};
    use super::*;
    use crate::transmit::TransmitErrorKind;

    /// A card that answers a fixed script and checks every command against it (an empty
    /// expected command matches any: an authentication's random part); it counts what it got.
    pub(crate) struct Script {
        pub(crate) steps: Vec<(Vec<u8>, Vec<u8>)>,
        pub(crate) sent: usize,
    }

    impl Transmit for Script {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
            self.sent += 1;
            if self.steps.is_empty() {
                return Err(TransmitError::new(
                    TransmitErrorKind::CardRemoved,
                    "script ended",
                ));
            }
            let (expected, reply) = self.steps.remove(0);
            if !expected.is_empty() {
                assert_eq!(
                    crate::hex::encode(command),
                    crate::hex::encode(&expected),
                    "command {}",
                    self.sent
                );
            }
            Ok(reply)
        }
    }

    pub(crate) fn script(steps: &[(&str, &str)]) -> Script {
        Script::of(steps.iter().map(|(c, r)| (v(c), v(r))).collect())
    }

    impl Script {
        pub(crate) fn of(steps: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
            Self { steps, sent: 0 }
        }
    }

    #[test]
    fn authenticates_as_an12196_table_14() {
        let mut card = script(&[
            (
                "90 71 00 00 02 00 00 00",
                "A04C1242 13C186F2 2399D33A C2A30215 91 AF",
            ),
            (
                "90 AF 00 00 20 35C3E05A 752E0144 BAC0DE51 C1F22C56 B34408A2 3D8AEA26 6CAB947E A8E0118D 00",
                "3FA64DB5 446D1F34 CD6EA311 167F5E49 85B89690 C04A05F1 7FA7AB2F 08120663 91 00",
            ),
        ]);
        let mut ch = Channel::new(&mut card);
        ch.authenticate_ev2_first(&[0; 16], 0, h("13C5DB8A 5930439F C3DEF9A4 C675360F"))
            .unwrap();
        assert_eq!(ch.session().unwrap().ti(), h::<4>("9D00C4DF"));
        assert_eq!(ch.apdus(), 2);
    }

    #[test]
    fn get_file_settings_in_mac_mode_as_an12196_table_7() {
        let mut card = script(&[(
            "90 F5 00 00 09 02 6597A457 C8CD442C 00",
            "0040EEEE000100D1FE001F00004400004400002000006A0000 2A474282 E7A47986 91 00",
        )]);
        let session = Session::from_parts(
            [0; 16],
            h("8248134A 386E86EB 7FAF54A5 2E536CB6"),
            h("7A21085E"),
            0,
        );
        let mut ch = Channel::new(&mut card).with_session(session);
        let data = ch.command(0xF5, &[0x02], &[], Mode::Mac).unwrap();
        assert_eq!(
            data,
            v("0040EEEE000100D1FE001F00004400004400002000006A0000")
        );
        assert_eq!(ch.session().unwrap().counter(), 1);
    }

    #[test]
    fn write_data_in_full_mode_as_an12196_table_21() {
        let mut card = script(&[(
            "90 8D 00 00 1F 03 000000 0A0000 6B5E6804 909962FC 4E3FF552 2CF0F843 6C0C5331 5B9C73AA 00",
            "C26D236E 4A7C046D 91 00",
        )]);
        let session = Session::from_parts(
            h("7A93D657 1E4B180F CA6AC90C 9A7488D4"),
            h("FC4AF159 B62E549B 5812394C AB1918CC"),
            h("7614281A"),
            0,
        );
        let mut ch = Channel::new(&mut card).with_session(session);
        let data: Vec<u8> = (1..=10).collect();
        let answer = ch
            .command(0x8D, &v("03 000000 0A0000"), &data, Mode::Full)
            .unwrap();
        assert!(answer.is_empty());
    }

    #[test]
    fn get_card_uid_in_full_mode_as_an12196_table_28() {
        let mut card = script(&[(
            "90 51 00 00 08 8E2C155A DDA99BE3 00",
            "70756055 688505B5 2A5E26E5 9E329CD6 595F6722 98EA41B7 91 00",
        )]);
        let session = Session::from_parts(
            h("2B4D963C 014DC36F 24F69A50 A394F875"),
            h("379D3213 0CE61705 DD5FD8C3 6B95D764"),
            h("DF055522"),
            0,
        );
        let mut ch = Channel::new(&mut card).with_session(session);
        assert_eq!(
            ch.command(0x51, &[], &[], Mode::Full).unwrap(),
            v("04958CAA5C5E80")
        );
    }

    #[test]
    fn change_another_key_as_an12196_table_25() {
        let mut card = script(&[(
            "90 C4 00 00 29 02 2CF362B7 BF4311FF 3BE1DAA2 95E8C68D E0905056 0D19B9E1 6C2393AE 9CD1FAC7 5D0CE20B CD1D06E6 00",
            "203BB55D 1089D587 91 00",
        )]);
        let session = Session::from_parts(
            h("4CF3CB41 A22583A6 1E89B158 D252FC53"),
            h("5529860B 2FC5FB61 54B7F283 61D30BF9"),
            h("7614281A"),
            2,
        );
        let mut ch = Channel::new(&mut card).with_session(session);
        ch.change_key(
            0x02,
            &h("F3847D62 7727ED3B C9C4CC05 0489B966"),
            0x01,
            Some(&[0; 16]),
        )
        .unwrap();
        assert_eq!(ch.session().unwrap().counter(), 3);
    }

    #[test]
    fn change_the_authenticated_key_as_an12196_table_26() {
        let mut card = script(&[(
            "90 C4 00 00 29 00 C0EB4DEE FEDDF0B5 13A03A95 A7549181 85805031 90D4D050 53FF7566 8A01D6FD A6610234 BDED6432 00",
            "91 00",
        )]);
        let session = Session::from_parts(
            h("4CF3CB41 A22583A6 1E89B158 D252FC53"),
            h("5529860B 2FC5FB61 54B7F283 61D30BF9"),
            h("7614281A"),
            3,
        );
        let mut ch = Channel::new(&mut card).with_session(session);
        ch.change_key(0x00, &h("5004BF99 1F408672 B1EF00F0 8F9E8647"), 0x01, None)
            .unwrap();
        assert!(ch.session().is_none(), "the session ends with its key");
    }

    #[test]
    fn long_answers_are_fetched_and_errors_end_the_session() {
        let mut card = script(&[
            ("90 60 00 00 00", "04 01 01 12 00 1A 05 91 AF"),
            ("90 AF 00 00 00", "04 01 01 02 01 1A 05 91 AF"),
            ("90 AF 00 00 00", "042F190ACD6680 CEEDD45180 31 19 91 00"),
        ]);
        let mut ch = Channel::new(&mut card);
        let version = ch.command(0x60, &[], &[], Mode::Plain).unwrap();
        assert_eq!(version.len(), 28);
        assert_eq!(ch.apdus(), 3);

        let session = Session::from_parts([1; 16], [2; 16], [3; 4], 0);
        let mut command = v("90 6E 00 00 08");
        command.extend_from_slice(&session.mac_command(0x6E, &[], &[]));
        command.push(0x00);
        let mut card = Script::of(vec![(command, v("91 9D"))]);
        let mut ch = Channel::new(&mut card).with_session(session);
        let e = ch.command(0x6E, &[], &[], Mode::Mac).unwrap_err();
        assert_eq!(
            e,
            DesfireError::Card {
                ins: 0x6E,
                status: Status::PermissionDenied
            }
        );
        assert!(ch.session().is_none());
    }

    #[test]
    fn a_forged_answer_mac_ends_the_session() {
        let mut card = script(&[(
            "90 F5 00 00 09 02 6597A457 C8CD442C 00",
            "0040EEEE000100D1FE001F00004400004400002000006A0000 2A474282 E7A47987 91 00",
        )]);
        let session = Session::from_parts(
            [0; 16],
            h("8248134A 386E86EB 7FAF54A5 2E536CB6"),
            h("7A21085E"),
            0,
        );
        let mut ch = Channel::new(&mut card).with_session(session);
        assert_eq!(
            ch.command(0xF5, &[0x02], &[], Mode::Mac),
            Err(DesfireError::Secure(SecureError::BadMac))
        );
        assert!(ch.session().is_none());
        let mut none = script(&[]);
        let mut ch = Channel::new(&mut none);
        assert_eq!(
            ch.command(0xF5, &[0x02], &[], Mode::Mac),
            Err(DesfireError::NotAuthenticated(0xF5))
        );
    }
}
