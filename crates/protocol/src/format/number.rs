//! The card number field, shared by format v1 and v2 (docs/card-format.md §5.3).
//!
//! A card number of 1-32 ASCII digits is stored as packed BCD (two digits a byte, high nibble
//! first, an odd count padded with a low nibble `F`); any other card number, the empty one
//! included, as its UTF-8 bytes. The descriptor byte says which: bit 7 = BCD, bit 6 = 0,
//! bits 0-5 = the number of digits (BCD) or of bytes (UTF-8), at most 32. A BCD descriptor
//! with 0 digits (`80`) is invalid: the empty number is UTF-8 of length 0 (`00`).

use super::FormatError;

/// Bit 7 of the card number descriptor: the card number is stored as packed BCD.
pub const BCD_FLAG: u8 = 0x80;
/// Longest card number, in digits (BCD) or bytes (UTF-8).
pub const MAX_CARD_NUMBER_LEN: usize = 32;

/// Checks a descriptor byte: count at most 32, bit 6 clear, no BCD number of 0 digits.
pub(crate) fn check_descriptor(descriptor: u8) -> Result<(), FormatError> {
    let count = usize::from(descriptor & !BCD_FLAG);
    if count > MAX_CARD_NUMBER_LEN || descriptor == BCD_FLAG {
        return Err(FormatError::BadLength);
    }
    Ok(())
}

/// Bytes the card number takes on the card, from its descriptor.
pub(crate) fn stored_len(descriptor: u8) -> usize {
    let count = usize::from(descriptor & !BCD_FLAG);
    if descriptor & BCD_FLAG != 0 {
        count.div_ceil(2)
    } else {
        count
    }
}

/// How a card number is stored: its descriptor byte and bytes.
pub(crate) fn encode(number: &str) -> Result<(u8, Vec<u8>), FormatError> {
    let n = number.len();
    if n > MAX_CARD_NUMBER_LEN {
        return Err(FormatError::CardNumberTooLong(n));
    }
    let count = u8::try_from(n).map_err(|_| FormatError::CardNumberTooLong(n))?;
    let digits = number.as_bytes();
    if n == 0 || !digits.iter().all(u8::is_ascii_digit) {
        return Ok((count, digits.to_vec()));
    }
    let packed = digits
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => ((hi - b'0') << 4) | (lo - b'0'),
            [hi] => ((hi - b'0') << 4) | 0x0F,
            _ => 0xFF,
        })
        .collect();
    Ok((count | BCD_FLAG, packed))
}

/// The card number from its descriptor and stored bytes. A BCD nibble above 9, a pad other
/// than `F`, or UTF-8 that does not decode is [`FormatError::BadCardNumber`].
pub(crate) fn decode(descriptor: u8, bytes: &[u8]) -> Result<String, FormatError> {
    if descriptor & BCD_FLAG == 0 {
        return std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| FormatError::BadCardNumber);
    }
    let count = usize::from(descriptor & !BCD_FLAG);
    let mut out = String::with_capacity(count);
    for i in 0..count.div_ceil(2) * 2 {
        let byte = bytes.get(i / 2).ok_or(FormatError::BadLength)?;
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0F };
        if i < count {
            if nibble > 9 {
                return Err(FormatError::BadCardNumber);
            }
            out.push(char::from(b'0' + nibble));
        } else if nibble != 0x0F {
            return Err(FormatError::BadCardNumber);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn all_digits_are_packed_bcd() {
        for (number, descriptor, stored) in [
            ("4009613812", 0x8A, &[0x40u8, 0x09, 0x61, 0x38, 0x12][..]),
            ("007", 0x83, &[0x00, 0x7F][..]),
            ("1234abc", 0x07, b"1234abc".as_slice()),
            ("", 0x00, &[][..]),
            ("１２", 0x06, "１２".as_bytes()),
        ] {
            let (d, bytes) = encode(number).unwrap();
            assert_eq!((d, bytes.as_slice()), (descriptor, stored), "{number}");
            assert_eq!(decode(d, &bytes).unwrap(), number);
            assert!(check_descriptor(d).is_ok());
        }
        let long = "9".repeat(32);
        let (d, bytes) = encode(&long).unwrap();
        assert_eq!((d, bytes.len()), (0x80 | 32, 16));
        assert_eq!(
            encode(&"9".repeat(33)),
            Err(FormatError::CardNumberTooLong(33))
        );
        // Non-digit nibbles and a bad pad are rejected.
        assert!(decode(0x82, &[0x1A]).is_err());
        assert!(decode(0x81, &[0x10]).is_err());
        // BCD of 0 digits, counts above 32 and bit 6 are invalid descriptors.
        for bad in [0x80, 0x21, 0xA1, 0x40, 0xC2] {
            assert!(check_descriptor(bad).is_err(), "{bad:02X}");
        }
    }
}
