//! Answer-to-reset construction as a PC/SC reader builds it for contactless cards
//! (docs/reference/pcsc-part3.md §3-§4).

/// Check byte: XOR of every byte from T0 through the last historical byte (all bytes after
/// TS).
pub fn tck(after_ts: &[u8]) -> u8 {
    after_ts.iter().fold(0, |acc, b| acc ^ b)
}

/// PC/SC Part 3 ATR of a storage card:
/// `3B 8F 80 01 80 4F 0C A0 00 00 03 06 SS NN NN 00 00 00 00 TCK`.
///
/// `standard` is SS (03 = ISO 14443-A part 3); `name` is NN NN (0001 Classic 1K, 0002 4K,
/// 0003 Ultralight, 0026 Mini).
pub fn storage_card(standard: u8, name: u16) -> Vec<u8> {
    let [hi, lo] = name.to_be_bytes();
    let mut atr = vec![
        0x3B, 0x8F, 0x80, 0x01, // TS, T0 (TD1, 15 historical bytes), TD1 (TD2), TD2 (T=1)
        0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06, // category, AID tag, RID PC/SC
        standard, hi, lo, 0x00, 0x00, 0x00, 0x00,
    ];
    atr.push(tck(atr.get(1..).unwrap_or_default()));
    atr
}

/// ATR of an ISO 14443-4 card: `3B 8n 80 01 <historical bytes> TCK`, the historical bytes
/// taken from the ATS (at most 15 are used).
pub fn iso14443_4(historical: &[u8]) -> Vec<u8> {
    let hist = historical
        .get(..historical.len().min(15))
        .unwrap_or_default();
    let n = u8::try_from(hist.len()).unwrap_or(15);
    let mut atr = vec![0x3B, 0x80 | n, 0x80, 0x01];
    atr.extend_from_slice(hist);
    atr.push(tck(atr.get(1..).unwrap_or_default()));
    atr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_1k_example_from_the_reference() {
        assert_eq!(
            storage_card(0x03, 0x0001),
            [
                0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x6A
            ]
        );
    }

    #[test]
    fn tck_makes_the_xor_zero() {
        for name in [0x0001, 0x0002, 0x0003, 0x0026] {
            let atr = storage_card(0x03, name);
            assert_eq!(atr.len(), 20);
            assert_eq!(tck(&atr[1..]), 0, "{name:04X}");
        }
        assert_eq!(*storage_card(3, 2).last().unwrap(), 0x69);
        assert_eq!(*storage_card(3, 3).last().unwrap(), 0x68);
        assert_eq!(*storage_card(3, 0x26).last().unwrap(), 0x4D);
    }

    #[test]
    fn desfire_style_atr() {
        assert_eq!(iso14443_4(&[0x80]), [0x3B, 0x81, 0x80, 0x01, 0x80, 0x80]);
    }
}
