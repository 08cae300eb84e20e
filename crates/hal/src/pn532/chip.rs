//! Typed PN532 commands and replies over a [`Link`] (docs/reference/pn532.md §4-§7; PN532 user
//! manual §7). Parsing is separate from I/O so it is unit-tested on byte vectors.

use std::time::Duration;

use super::link::Link;
use crate::error::{ErrorKind, HalError};

/// Command codes (host to chip; the reply carries code + 1).
pub mod code {
    /// `GetFirmwareVersion`.
    pub const GET_FIRMWARE_VERSION: u8 = 0x02;
    /// `SAMConfiguration`.
    pub const SAM_CONFIGURATION: u8 = 0x14;
    /// `RFConfiguration`.
    pub const RF_CONFIGURATION: u8 = 0x32;
    /// `InDataExchange`.
    pub const IN_DATA_EXCHANGE: u8 = 0x40;
    /// `InListPassiveTarget`.
    pub const IN_LIST_PASSIVE_TARGET: u8 = 0x4A;
    /// `InRelease`.
    pub const IN_RELEASE: u8 = 0x52;
}

/// `GetFirmwareVersion` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmware {
    /// IC: 0x32 for a PN532.
    pub ic: u8,
    /// Version.
    pub version: u8,
    /// Revision.
    pub revision: u8,
    /// Supported card families (bit 0 type A, bit 1 type B, bit 2 ISO 18092).
    pub support: u8,
}

/// A 106 kbps type A target found by `InListPassiveTarget`.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// Logical target number the chip assigned (1).
    pub tg: u8,
    /// `SENS_RES` (ATQA) as sent on the wire.
    pub atqa: [u8; 2],
    /// `SEL_RES` (SAK).
    pub sak: u8,
    /// `NFCID1` (UID): 4, 7 or 10 bytes.
    pub uid: Vec<u8>,
    /// ATS of an ISO 14443-4 target (empty otherwise).
    pub ats: Vec<u8>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("tg", &self.tg)
            .field("atqa", &crate::encoder::hex(&self.atqa))
            .field("sak", &format_args!("{:02X}", self.sak))
            .field("uid", &crate::encoder::hex(&self.uid))
            .finish_non_exhaustive()
    }
}

/// PN532 status byte of `InDataExchange` (and friends): low 6 bits = error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8);

impl Status {
    /// The error code (0 = success).
    pub fn code(self) -> u8 {
        self.0 & 0x3F
    }

    /// Whether the command succeeded.
    pub fn is_ok(self) -> bool {
        self.code() == 0
    }

    /// Whether the error means the card is gone: timeout (01), target released (29),
    /// card discarded (2B).
    pub fn card_gone(self) -> bool {
        matches!(self.code(), 0x01 | 0x29 | 0x2B)
    }

    /// MIFARE authentication failed (14).
    pub fn auth_failed(self) -> bool {
        self.code() == 0x14
    }
}

fn garbage(what: &str, reply: &[u8]) -> HalError {
    HalError::new(
        ErrorKind::Protocol,
        format!("malformed {what} reply: {}", crate::encoder::hex(reply)),
    )
}

/// Parses `GetFirmwareVersion` reply data (after `D5 03`).
pub fn parse_firmware(reply: &[u8]) -> Result<Firmware, HalError> {
    match *reply {
        [ic, version, revision, support] => Ok(Firmware {
            ic,
            version,
            revision,
            support,
        }),
        _ => Err(garbage("GetFirmwareVersion", reply)),
    }
}

/// Parses `InListPassiveTarget` reply data (after `D5 4B`) for 106 kbps type A:
/// `NbTg [Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1 [ATS]]`.
pub fn parse_list_passive_target(reply: &[u8]) -> Result<Option<Target>, HalError> {
    let Some((&count, rest)) = reply.split_first() else {
        return Err(garbage("InListPassiveTarget", reply));
    };
    if count == 0 {
        return Ok(None);
    }
    let &[tg, atqa0, atqa1, sak, uid_len, ref tail @ ..] = rest else {
        return Err(garbage("InListPassiveTarget", reply));
    };
    let uid_len = usize::from(uid_len);
    if !matches!(uid_len, 4 | 7 | 10) {
        return Err(garbage("InListPassiveTarget", reply));
    }
    let (Some(uid), Some(after)) = (tail.get(..uid_len), tail.get(uid_len..)) else {
        return Err(garbage("InListPassiveTarget", reply));
    };
    // The ATS (with its length byte TL first) follows for ISO 14443-4 compliant targets.
    let ats = match after.first() {
        Some(&tl) if sak & 0x20 != 0 && usize::from(tl) <= after.len() && tl > 0 => {
            after.get(..usize::from(tl)).unwrap_or_default().to_vec()
        }
        _ => Vec::new(),
    };
    Ok(Some(Target {
        tg,
        atqa: [atqa0, atqa1],
        sak,
        uid: uid.to_vec(),
        ats,
    }))
}

/// The typed command set over one link.
pub trait Chip {
    /// `SAMConfiguration` normal mode, no IRQ timeout: mandatory after wake-up.
    fn sam_configuration(&mut self) -> Result<(), HalError>;
    /// `GetFirmwareVersion`.
    fn firmware(&mut self) -> Result<Firmware, HalError>;
    /// `RFConfiguration` item 05 (`MaxRetries`): `passive` activation retries, so an
    /// `InListPassiveTarget` with no card in the field ends after a bounded time.
    fn set_max_retries(&mut self, passive: u8) -> Result<(), HalError>;
    /// `InListPassiveTarget` for one 106 kbps type A target.
    fn list_passive_target(&mut self, timeout: Duration) -> Result<Option<Target>, HalError>;
    /// `InDataExchange` with target `tg`: returns the status and the data that followed it.
    fn data_exchange(&mut self, tg: u8, data: &[u8]) -> Result<(Status, Vec<u8>), HalError>;
    /// `InRelease` of target `tg` (0 = all).
    fn release(&mut self, tg: u8) -> Result<Status, HalError>;
}

impl Chip for Link {
    fn sam_configuration(&mut self) -> Result<(), HalError> {
        // Mode 01 normal, timeout 14 (1 s, only used in virtual-card mode), no IRQ pin.
        self.call(code::SAM_CONFIGURATION, &[0x01, 0x14, 0x00])
            .map(drop)
    }

    fn firmware(&mut self) -> Result<Firmware, HalError> {
        let reply = self.call(code::GET_FIRMWARE_VERSION, &[])?;
        parse_firmware(&reply).map_err(|e| e.on_reader(self.path()))
    }

    fn set_max_retries(&mut self, passive: u8) -> Result<(), HalError> {
        // MxRtyATR FF (default), MxRtyPSL 01, MxRtyPassiveActivation.
        self.call(code::RF_CONFIGURATION, &[0x05, 0xFF, 0x01, passive])
            .map(drop)
    }

    fn list_passive_target(&mut self, timeout: Duration) -> Result<Option<Target>, HalError> {
        let reply = self.command(code::IN_LIST_PASSIVE_TARGET, &[0x01, 0x00], timeout)?;
        parse_list_passive_target(&reply).map_err(|e| e.on_reader(self.path()))
    }

    fn data_exchange(&mut self, tg: u8, data: &[u8]) -> Result<(Status, Vec<u8>), HalError> {
        let mut body = Vec::with_capacity(data.len() + 1);
        body.push(tg);
        body.extend_from_slice(data);
        let reply = self.call(code::IN_DATA_EXCHANGE, &body)?;
        match reply.split_first() {
            Some((&status, rest)) => Ok((Status(status), rest.to_vec())),
            None => Err(garbage("InDataExchange", &reply).on_reader(self.path())),
        }
    }

    fn release(&mut self, tg: u8) -> Result<Status, HalError> {
        let reply = self.call(code::IN_RELEASE, &[tg])?;
        match reply.first() {
            Some(&status) => Ok(Status(status)),
            None => Err(garbage("InRelease", &reply).on_reader(self.path())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_reference_target() {
        // docs/reference/pn532.md §5: D5 4B 01 01 00 04 08 04 DE AD BE EF
        let t = parse_list_passive_target(&[
            0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF,
        ])
        .unwrap()
        .unwrap();
        assert_eq!(t.tg, 1);
        assert_eq!(t.atqa, [0x00, 0x04]);
        assert_eq!(t.sak, 0x08);
        assert_eq!(t.uid, [0xDE, 0xAD, 0xBE, 0xEF]);
        assert!(t.ats.is_empty());
        assert_eq!(parse_list_passive_target(&[0x00]).unwrap(), None);
    }

    #[test]
    fn parses_a_14443_4_target_with_ats() {
        let reply = [
            0x01, 0x01, 0x03, 0x44, 0x20, 0x07, 1, 2, 3, 4, 5, 6, 7, 0x06, 0x75, 0x77, 0x81, 0x02,
            0x80,
        ];
        let t = parse_list_passive_target(&reply).unwrap().unwrap();
        assert_eq!(t.uid.len(), 7);
        assert_eq!(t.ats, [0x06, 0x75, 0x77, 0x81, 0x02, 0x80]);
    }

    #[test]
    fn rejects_truncated_and_odd_replies() {
        for bad in [
            &[][..],
            &[0x01],
            &[0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE],
            &[0x01, 0x01, 0x00, 0x04, 0x08, 0x05, 1, 2, 3, 4, 5],
        ] {
            assert_eq!(
                parse_list_passive_target(bad).unwrap_err().kind(),
                ErrorKind::Protocol
            );
        }
        assert!(parse_firmware(&[0x32, 1, 6]).is_err());
        assert_eq!(parse_firmware(&[0x32, 1, 6, 7]).unwrap().version, 1);
    }

    #[test]
    fn status_classes() {
        assert!(Status(0x00).is_ok());
        assert!(Status(0x41).card_gone());
        assert!(Status(0x29).card_gone() && Status(0x2B).card_gone());
        assert!(Status(0x14).auth_failed() && !Status(0x14).card_gone());
    }
}
