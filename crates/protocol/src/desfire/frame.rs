//! Native `DESFire` commands wrapped in ISO 7816-4 APDUs, and their answers
//! (docs/reference/desfire.md §1): `90 INS 00 00 [Lc data] 00` out, `data 91 SW2` back; a long
//! answer ends `91 AF` and is fetched with `90 AF 00 00 00`.

use super::status::Status;

/// The native command `ins` with `data`, wrapped: `90 INS 00 00 Lc data 00`, or
/// `90 INS 00 00 00` without data. Data longer than 255 bytes is for the caller to chain.
pub fn wrap(ins: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x90, ins, 0x00, 0x00];
    if let Ok(lc) = u8::try_from(data.len())
        && lc > 0
    {
        out.push(lc);
        out.extend_from_slice(data);
    }
    out.push(0x00);
    out
}

/// Why an answer is not a `DESFire` answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Shorter than a status word.
    #[error("answer of {0} bytes")]
    TooShort(usize),
    /// A status word that is not `91 xx` (a reader's own error, or not a `DESFire`).
    #[error("status word {0:02X} {1:02X} is not a DESFire status")]
    NotDesfire(u8, u8),
}

/// An answer split into its data and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The data before the status word.
    pub data: Vec<u8>,
    /// The status.
    pub status: Status,
}

/// Splits a wrapped answer `data 91 SW2`.
pub fn parse(reply: &[u8]) -> Result<Answer, FrameError> {
    match reply {
        [data @ .., 0x91, sw2] => Ok(Answer {
            data: data.to_vec(),
            status: Status::from_u8(*sw2),
        }),
        [.., sw1, sw2] => Err(FrameError::NotDesfire(*sw1, *sw2)),
        _ => Err(FrameError::TooShort(reply.len())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_with_and_without_data() {
        assert_eq!(wrap(0x60, &[]), [0x90, 0x60, 0x00, 0x00, 0x00]);
        assert_eq!(
            wrap(0x5A, &[0x16, 0xDE, 0x00]),
            [0x90, 0x5A, 0x00, 0x00, 0x03, 0x16, 0xDE, 0x00, 0x00]
        );
    }

    #[test]
    fn parses_answers_and_refuses_others() {
        let a = parse(&[0x01, 0x02, 0x91, 0xAF]).unwrap();
        assert_eq!(a.data, [0x01, 0x02]);
        assert_eq!(a.status, Status::AdditionalFrame);
        assert_eq!(
            parse(&[0x6A, 0x82]),
            Err(FrameError::NotDesfire(0x6A, 0x82))
        );
        assert_eq!(parse(&[0x91]), Err(FrameError::TooShort(1)));
    }

    proptest! {
        #[test]
        fn any_reply_parses_or_errs(reply in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(a) = parse(&reply) {
                prop_assert_eq!(a.data.len() + 2, reply.len());
            }
        }
    }
}
