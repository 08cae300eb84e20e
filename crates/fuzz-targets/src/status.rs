//! `status_apdu`: status words and response APDUs from a card or reader, and the redaction of
//! APDU traces (`encoder_protocol::status`, `encoder_protocol::apdu`).

use encoder_protocol::apdu::{self, Response, ResponseError};
use encoder_protocol::status::StatusWord;

/// Parses `data` as a response APDU, classifies its status word, and traces it as a reply to
/// a command made of the same bytes.
///
/// Properties: a response splits into data and a status word that round-trips to the raw two
/// bytes; only fewer than two bytes are refused; a trace has one item per byte.
pub fn status_apdu(data: &[u8]) {
    match Response::parse(data) {
        Ok(response) => {
            assert_eq!(response.data().len() + 2, data.len());
            let sw = response.status();
            let raw = sw.to_u16();
            assert_eq!(StatusWord::from_u16(raw), sw);
            assert_eq!(
                data.get(data.len() - 2..),
                Some(raw.to_be_bytes().as_slice())
            );
            assert_eq!(sw.to_string().len(), 5);
            let _ = (sw.is_security_failure(), sw.is_unsupported());
            assert_eq!(response.clone().into_success().is_some(), sw.is_success());
        }
        Err(ResponseError::TooShort(n)) => assert!(n < 2 && n == data.len()),
        Err(other) => panic!("unexpected response error {other:?}"),
    }
    let items = |text: &str| {
        if text.is_empty() {
            0
        } else {
            text.split(' ').count()
        }
    };
    assert_eq!(items(&apdu::redact_apdu(data)), data.len());
    assert_eq!(items(&apdu::redact_response(data, data)), data.len());
}
