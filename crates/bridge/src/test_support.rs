//! Mocked hardware for the unit tests of the runner and of card jobs: `Encoder` and
//! `CardSession` live in encoder-hal, so they are mocked here with `mockall::mock!`; card
//! behaviour comes from the simulator's in-process virtual card, written independently of the
//! protocol crate.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    unreachable_pub,
    missing_docs
)]

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use encoder_hal::{
    Canceller, CardInfo, CardSession, Encoder, EncoderKind, ErrorKind, Feedback, HalError,
};
use encoder_protocol::keys::{MasterKey, SiteKeys};
use encoder_protocol::transmit::{Transmit, TransmitError};
use encoder_sim::card::{CardType, VirtualCard};
use mockall::mock;

use crate::job::{CardJob, CredentialSpec, EncodeRequest, JobAction};

mock! {
    pub Enc {}
    impl Encoder for Enc {
        fn name(&self) -> &str;
        fn kind(&self) -> EncoderKind;
        fn wait_for_card(&mut self, timeout: Duration) -> Result<bool, HalError>;
        fn open_session<'a>(&'a mut self) -> Result<Box<dyn CardSession + 'a>, HalError>;
        fn canceller(&self) -> Canceller;
    }
}

mock! {
    pub Sess {}
    impl Transmit for Sess {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError>;
    }
    impl CardSession for Sess {
        fn info(&self) -> &CardInfo;
        fn feedback(&mut self, feedback: Feedback) -> Result<bool, HalError>;
    }
}

pub const READER: &str = "Mock Reader 00 00";

pub fn site() -> SiteKeys {
    SiteKeys::new(1, MasterKey::new(*b"mock-test-site-1"))
}

/// The encode of the tests: card number 4009613812, access data 01 02 03.
pub fn encode_request(card_uid: Option<&str>) -> EncodeRequest {
    EncodeRequest {
        credential: Ok(CredentialSpec {
            credential_id: "66666666-6666-6666-6666-666666666666".into(),
            card_number: Some("4009613812".into()),
            starts_at: None,
            ends_at: None,
            issue_counter: 1,
            access_data: vec![1, 2, 3],
        }),
        card_uid: card_uid.map(str::to_owned),
    }
}

/// Job `attempt-1`: a scan, or (with `encode`) the test encode.
pub fn job(encode: bool, deadline: Option<Duration>, card_uid: Option<&str>) -> CardJob {
    CardJob {
        id: "attempt-1".into(),
        action: if encode {
            JobAction::Encode(encode_request(card_uid))
        } else {
            JobAction::Scan
        },
        deadline: deadline.map(|d| SystemTime::now() + d),
        lease: Arc::new(AtomicI64::new(0)),
    }
}

/// An encoder whose card wait answers `wait`; no session may be opened.
pub fn encoder(wait: impl FnMut(Duration) -> Result<bool, HalError> + Send + 'static) -> MockEnc {
    let mut e = MockEnc::new();
    e.expect_name().return_const(READER.to_owned());
    e.expect_kind().return_const(EncoderKind::Pcsc);
    e.expect_canceller().return_const(Canceller::new());
    e.expect_wait_for_card().times(1).returning(wait);
    e.expect_open_session().never();
    e
}

/// A card write as the protocol's jobs send it (PC/SC Part 3 `UPDATE BINARY`).
pub fn is_write(command: &[u8]) -> bool {
    command.starts_with(&[0xFF, 0xD6])
}

/// A session over an in-process virtual card; `fail` may replace the card's answer (it is
/// given the command and the number of writes sent so far, this one included).
pub fn session_on(
    uid: &[u8],
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    fail: impl FnMut(&[u8], usize) -> Option<TransmitError> + Send + 'static,
) -> MockSess {
    session_on_type(CardType::Classic1k, uid, sent, fail)
}

/// [`session_on`] for a card of `card_type`.
pub fn session_on_type(
    card_type: CardType,
    uid: &[u8],
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    mut fail: impl FnMut(&[u8], usize) -> Option<TransmitError> + Send + 'static,
) -> MockSess {
    let mut card = VirtualCard::new(card_type, Some(uid)).expect("card");
    let info = CardInfo::new(uid.to_vec(), Some(card.atr()), None, None);
    let mut s = MockSess::new();
    s.expect_info().return_const(info);
    s.expect_transmit().returning(move |command| {
        let mut sent = sent.lock().expect("lock");
        sent.push(command.to_vec());
        let writes = sent.iter().filter(|c| is_write(c)).count();
        if let Some(e) = fail(command, writes) {
            return Err(e);
        }
        Ok(card.transmit(command))
    });
    s
}

/// An encoder with a card: the wait succeeds and `session` is opened once.
pub fn encoder_with(session: MockSess) -> MockEnc {
    let mut e = MockEnc::new();
    e.expect_name().return_const(READER.to_owned());
    e.expect_canceller().return_const(Canceller::new());
    e.expect_wait_for_card().times(1).returning(|_| Ok(true));
    let mut session = Some(session);
    e.expect_open_session().times(1).returning(move || {
        session
            .take()
            .map(|s| Box::new(s) as Box<dyn CardSession>)
            .ok_or_else(|| HalError::new(ErrorKind::Other, "opened twice"))
    });
    e
}
