//! Support for running the protocol crate's jobs against the independent virtual card.
//!
//! [`InProcessCard`] puts an [`encoder_sim::card::VirtualCard`] (written from the datasheets,
//! not from the protocol crate) behind the [`Transmit`] seam, in process: no pcscd, no vpcd,
//! so thousands of job runs (the tear matrix) take seconds. The same jobs run through the real
//! transports in `jobs_pcsc.rs` and `jobs_pn532.rs`.
//!
//! Also here: fixed site keys, a realistic credential, and a hand-made MAD image built from
//! AN10787 facts (docs/reference/mad.md) without the protocol crate's MAD code.

use std::time::Duration;

use encoder_hal::Encoder;
use encoder_protocol::error::JobError;
use encoder_protocol::format::Credential;
use encoder_protocol::job::desfire::{self, DesfireOptions};
use encoder_protocol::job::{EncodeOutcome, ScanOutcome};
use encoder_protocol::keys::{MasterKey, SiteKeys};
use encoder_protocol::transmit::{Transmit, TransmitError, TransmitErrorKind};
use encoder_sim::card::{CardType, VirtualCard};

/// A virtual card on an ideal in-process reader, counting APDUs.
///
/// A torn write takes the card out of the field: that write and every later command fail
/// with [`TransmitErrorKind::CardRemoved`] until [`InProcessCard::insert`], as a PC/SC reader
/// reports a card that left (the bare [`VirtualCard`] answers `63 00` instead).
#[derive(Debug, Clone)]
pub struct InProcessCard {
    /// The card.
    pub card: VirtualCard,
    /// APDUs sent (including refused ones and those that hit a torn card).
    pub apdus: usize,
    /// Blocks of every write command sent (`FF D6 00 <block>`), in order.
    pub written_blocks: Vec<u8>,
}

impl InProcessCard {
    /// A factory-fresh card of `card_type` with `uid`.
    pub fn new(card_type: CardType, uid: &[u8]) -> Self {
        Self::wrap(VirtualCard::new(card_type, Some(uid)).expect("virtual card"))
    }

    /// A card holding `image` (`.mfd` layout).
    pub fn from_image(card_type: CardType, image: &[u8]) -> Self {
        Self::wrap(VirtualCard::from_image(card_type, image).expect("card image"))
    }

    /// Wraps a card.
    pub fn wrap(card: VirtualCard) -> Self {
        Self {
            card,
            apdus: 0,
            written_blocks: Vec::new(),
        }
    }

    /// The ATR the reader reports.
    pub fn atr(&self) -> Vec<u8> {
        self.card.atr()
    }

    /// What a PC/SC reader's hal hands a job for this card: its UID (read once with `FF CA`
    /// when the card is opened) and the ATR.
    pub fn info(&self) -> encoder_protocol::card::CardInfo {
        encoder_protocol::card::CardInfo::new(
            self.card.uid().to_vec(),
            Some(self.card.atr()),
            None,
            None,
        )
    }

    /// The memory image.
    pub fn image(&self) -> Vec<u8> {
        self.card.image()
    }

    /// Writes the card accepted so far.
    pub fn writes(&self) -> u32 {
        self.card.writes()
    }

    /// The card is put back on the reader (fresh from power-up, no longer torn), as a new
    /// session would find it.
    pub fn insert(&mut self) {
        self.card.insert();
    }
}

impl Transmit for InProcessCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        self.apdus += 1;
        if let [0xFF, 0xD6, 0x00, block, ..] = command {
            self.written_blocks.push(*block);
        }
        let removed = || TransmitError::new(TransmitErrorKind::CardRemoved, "card left the field");
        if self.card.is_torn() {
            return Err(removed());
        }
        let reply = self.card.transmit(command);
        if self.card.is_torn() {
            // The write that tore is never acknowledged.
            return Err(removed());
        }
        Ok(reply)
    }
}

/// `RndA` for the `DESFire` jobs of the tests: distinct, predictable (the card's `RndB` is
/// random).
pub fn nonces() -> impl FnMut() -> [u8; 16] {
    let mut n = 0u8;
    move || {
        n = n.wrapping_add(1);
        [n; 16]
    }
}

/// Waits up to `wait` for a card on `encoder`, opens it and runs the `DESFire` encode of
/// `credential` (PICC left as found) with [`site`].
pub fn desfire_encode_on(
    encoder: &mut dyn Encoder,
    wait: Duration,
    credential: &Credential,
) -> Result<EncodeOutcome, JobError> {
    assert!(encoder.wait_for_card(wait).expect("wait"), "no card");
    let mut session = encoder.open_session().expect("session");
    let info = session.info().clone();
    let options = DesfireOptions::default();
    desfire::encode(
        &mut *session,
        &info,
        &site(),
        credential,
        options,
        &mut nonces(),
    )
}

/// Waits up to `wait` for a card on `encoder`, opens it and runs the `DESFire` scan.
pub fn desfire_scan_on(encoder: &mut dyn Encoder, wait: Duration) -> Result<ScanOutcome, JobError> {
    assert!(encoder.wait_for_card(wait).expect("wait"), "no card");
    let mut session = encoder.open_session().expect("session");
    let info = session.info().clone();
    desfire::scan(&mut *session, &info, &site(), &mut nonces())
}

/// The site of these tests: master key version 1.
pub fn site() -> SiteKeys {
    SiteKeys::new(1, MasterKey::new(*b"jobs-test-site-1"))
}

/// Another site (different master key, same version number).
pub fn other_site() -> SiteKeys {
    SiteKeys::new(1, MasterKey::new(*b"some-other-site!"))
}

/// A realistic credential: 10-digit card number, a v4 UUID, start and end times (a one-week
/// stay), issue counter 1, and `access_len` bytes of access data.
pub fn realistic(access_len: usize) -> Credential {
    Credential {
        credential_id: "9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b".into(),
        card_number: "4009613812".into(),
        starts_at: Some(1_733_065_200),
        ends_at: Some(1_733_670_000),
        issue_counter: 1,
        access_data: (0..access_len)
            .map(|i| u8::try_from(0x11 * (i + 1) % 256).unwrap_or(0))
            .collect(),
    }
}

/// A second, different realistic credential (re-encode target).
pub fn realistic_next(access_len: usize) -> Credential {
    Credential {
        credential_id: "0e8a5d3c-14b7-4c62-9f0e-6a3b2c1d9e87".into(),
        card_number: "4009613813".into(),
        starts_at: Some(1_733_670_000),
        ends_at: Some(1_734_274_800),
        issue_counter: 2,
        access_data: (0..access_len)
            .map(|i| u8::try_from((0xA0 + i) % 256).unwrap_or(0))
            .collect(),
    }
}

/// MAD CRC-8 (AN10787): polynomial 0x1D, preset 0xC7, MSB first, over info byte and AIDs.
pub fn mad_crc8(data: &[u8]) -> u8 {
    let mut crc: u8 = 0xC7;
    for byte in data {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x1D
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Block offset of `block` in a Classic image.
pub fn block_range(block: usize) -> std::ops::Range<usize> {
    block * 16..block * 16 + 16
}

/// Whether `block` is a sector trailer (4-block sectors below block 128, 16-block above).
pub fn is_trailer(block: u8) -> bool {
    if block < 128 {
        block % 4 == 3
    } else {
        block % 16 == 15
    }
}

/// Sector trailer block number of `sector` on a 1K/Mini card (4 blocks per sector).
pub fn trailer_of(sector: usize) -> usize {
    sector * 4 + 3
}

/// Puts a MAD1 in sector 0 of a Classic `image` by hand (AN10787): blocks 1-2 hold
/// `CRC | info 00 | 15 AIDs` (each stored application code first, then function cluster), the
/// sector 0 trailer gets public MAD key A, access bytes `access`, GPB `C1`, key B `key_b`.
/// `aids[i]` is the (cluster, application) pair of sector `i + 1`.
pub fn write_mad1(image: &mut [u8], aids: &[(u8, u8); 15], access: [u8; 3], key_b: [u8; 6]) {
    let mut mad = [0u8; 32];
    mad[1] = 0x00; // info byte: no card publisher sector
    for (i, (cluster, app)) in aids.iter().enumerate() {
        mad[2 + 2 * i] = *app;
        mad[3 + 2 * i] = *cluster;
    }
    mad[0] = mad_crc8(&mad[1..]);
    image[block_range(1)].copy_from_slice(&mad[..16]);
    image[block_range(2)].copy_from_slice(&mad[16..]);
    let trailer = &mut image[block_range(3)];
    trailer[..6].copy_from_slice(&[0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5]);
    trailer[6..9].copy_from_slice(&access);
    trailer[9] = 0xC1;
    trailer[10..].copy_from_slice(&key_b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mad_crc_matches_the_ndef_example() {
        // info 01 + 15 x "03 E1" -> 14 (docs/reference/mad.md §5).
        let mut data = vec![0x01];
        for _ in 0..15 {
            data.extend_from_slice(&[0x03, 0xE1]);
        }
        assert_eq!(mad_crc8(&data), 0x14);
    }
}
