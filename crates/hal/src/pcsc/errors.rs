//! Mapping pcsc-lite's error codes to [`ErrorKind`], keeping the kind (the design's note on
//! openpgp-card: turning every pcsc error into a string loses what retry policy needs).

use crate::error::{ErrorKind, HalError};

/// The kind of a pcsc-lite error.
pub(crate) fn kind_of(error: pcsc::Error) -> ErrorKind {
    use pcsc::Error as E;
    match error {
        // A card that leaves the field mid-APDU makes the reader driver fail the exchange,
        // which pcsc-lite reports as NOT_TRANSACTED.
        E::RemovedCard
        | E::UnresponsiveCard
        | E::UnpoweredCard
        | E::CommDataLost
        | E::NotTransacted => ErrorKind::CardRemoved,
        E::ResetCard => ErrorKind::CardReset,
        E::NoSmartcard => ErrorKind::NoCard,
        E::SharingViolation => ErrorKind::Busy,
        E::Timeout | E::WaitedTooLong => ErrorKind::Timeout,
        // A blocked call answers a communication error when pcscd dies; an old context answers
        // NO_SERVICE forever after pcscd restarted (docs/reference/pcsc-lite.md §3).
        E::NoService | E::ServiceStopped | E::CommError | E::InvalidHandle | E::Shutdown => {
            ErrorKind::NoService
        }
        E::ReaderUnavailable | E::UnknownReader | E::NoReadersAvailable => {
            ErrorKind::ReaderUnavailable
        }
        E::NoAccess | E::SecurityViolation => ErrorKind::Permission,
        E::Cancelled | E::SystemCancelled | E::CancelledByUser => ErrorKind::Cancelled,
        E::InsufficientBuffer | E::InvalidAtr | E::ProtoMismatch | E::PciTooSmall => {
            ErrorKind::Protocol
        }
        _ => ErrorKind::Other,
    }
}

/// A [`HalError`] for `error` raised by pcsc call `call`, e.g. `SCardTransmit`.
pub(crate) fn hal_error(call: &str, error: pcsc::Error) -> HalError {
    HalError::new(
        kind_of(error),
        format!("{call}: {error} ({:#010X})", error as u32),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_retry_policy_needs_are_kept() {
        assert_eq!(kind_of(pcsc::Error::RemovedCard), ErrorKind::CardRemoved);
        assert_eq!(kind_of(pcsc::Error::ResetCard), ErrorKind::CardReset);
        assert_eq!(kind_of(pcsc::Error::SharingViolation), ErrorKind::Busy);
        assert_eq!(kind_of(pcsc::Error::Timeout), ErrorKind::Timeout);
        assert_eq!(kind_of(pcsc::Error::NoService), ErrorKind::NoService);
        assert_eq!(kind_of(pcsc::Error::CommError), ErrorKind::NoService);
        assert_eq!(
            kind_of(pcsc::Error::ReaderUnavailable),
            ErrorKind::ReaderUnavailable
        );
        assert_eq!(
            kind_of(pcsc::Error::UnknownReader),
            ErrorKind::ReaderUnavailable
        );
        assert_eq!(kind_of(pcsc::Error::NoAccess), ErrorKind::Permission);
        assert_eq!(kind_of(pcsc::Error::Cancelled), ErrorKind::Cancelled);
    }

    #[test]
    fn messages_name_the_call_and_the_code() {
        let e = hal_error("SCardConnect", pcsc::Error::SharingViolation);
        assert!(e.detail().contains("SCardConnect"));
        assert!(e.detail().contains("0x8010000B"), "{}", e.detail());
    }
}
