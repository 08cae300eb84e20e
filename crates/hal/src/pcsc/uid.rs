//! `FF CA 00 00 00`: the UID of the card in the field (docs/reference/pcsc-part3.md §1).

use crate::error::{ErrorKind, HalError};

/// The get-UID command.
pub(crate) const GET_UID: [u8; 5] = [0xFF, 0xCA, 0x00, 0x00, 0x00];

/// The UID in a reply to [`GET_UID`]: at least one byte before `90 00`, else a protocol error
/// naming what the reader said.
pub(crate) fn uid_from_reply(reply: &[u8]) -> Result<Vec<u8>, HalError> {
    match reply.split_last_chunk::<2>() {
        Some((uid, [0x90, 0x00])) if !uid.is_empty() => Ok(uid.to_vec()),
        _ => Err(HalError::new(
            ErrorKind::Protocol,
            format!(
                "reader refused FF CA (get UID): {}",
                crate::encoder::hex(reply)
            ),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_needs_bytes_and_success() {
        assert_eq!(
            uid_from_reply(&[0xDE, 0xAD, 0x90, 0x00]).ok(),
            Some(vec![0xDE, 0xAD])
        );
        for bad in [&[0x90, 0x00][..], &[0x01, 0x63, 0x00], &[], &[0x90]] {
            let e = uid_from_reply(bad).expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::Protocol);
        }
    }
}
