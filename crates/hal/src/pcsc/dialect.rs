//! The reader dialect table: one entry per contactless reader family, saying how pcscd names
//! it and how it spells each storage-card command (docs/reference/readers.md, cited
//! below as `readers.md §N`; the baseline is docs/reference/pcsc-part3.md §1-§2).
//!
//! To add a reader: read its manual's PC/SC section and write one [`Dialect`] into [`TABLE`]:
//! the substrings of the name pcscd gives it (libccid's `supported_readers.txt` and a
//! `pcsc_scan` on the real thing), its key slots and how LOAD KEYS addresses them, the
//! authentication form, how many blocks one READ BINARY returns, the status words it uses for
//! "refused", whether it selects a card again after a failed authentication, and its LED and
//! buzzer command. Where the manual is silent, keep the [`BASELINE`] value and say so in the
//! entry's `sources`. `encoder-sim card --reader-profile` should learn the same reader from
//! the same manual (crates/sim/src/card/profile.rs), never from this file.
//!
//! Recognition is by name: pcscd's name for a CCID reader is the driver's name for its USB
//! vendor:product id (libccid's `supported_readers.txt`, readers.md §0, §2), so a name match is
//! an id match; pcscd gives no vendor/product attribute for every driver (libccid's Part 10
//! TLV properties need an escape the reader's driver options may forbid), so the ids are kept
//! here for `doctor` and for people, not read from pcscd.
//!
//! The protocol crate never sees any of this: it sends canonical commands
//! ([`encoder_protocol::apdu::StorageCommand`]) and reads [`ReaderCaps`]; the PC/SC session
//! spells them with the reader's entry ([`super::encoder`]).

use encoder_protocol::transmit::ReaderCaps;

/// How LOAD KEYS (`FF 82`) addresses the reader's key memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStore {
    /// `FF 82 <p1> <slot> 06 <key>`, slots `00` to `slots - 1`; the authentication names the
    /// slot as key number.
    Slots {
        /// P1: `00` volatile reader key; `20` the EEPROM store of HID's OMNIKEY code.
        p1: u8,
        /// How many slots.
        slots: u8,
    },
    /// `FF 82 00 <60|61> 06 <key>`: one volatile key per key type (SCM/Identiv); the
    /// authentication then names key number `auth_key_no`. The session keeps the keys the job
    /// loaded and puts the right one into the reader just before an authentication needs it.
    ByKeyType {
        /// The key number of the authentication after such a load.
        auth_key_no: u8,
    },
}

/// How one READ BINARY may span several blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiRead {
    /// One block per READ BINARY.
    Single,
    /// `FF B0 00 <block> <16·n>` for up to `max` consecutive data blocks of one sector.
    Binary {
        /// The most blocks at once.
        max: u8,
    },
    /// `FF B1 00 <sector> 00` reads the three data blocks of a small sector at once.
    SectorCommand,
}

/// The LED and buzzer command with a card present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// No command known (or none the reader has).
    None,
    /// ACS `FF 00 40 <LED control> 04 <T1> <T2> <repetitions> <buzzer>`, answered
    /// `90 <LED state>` (readers.md §7). Without a card the same bytes go as an escape
    /// (`SCardControl` on a direct connection): `SCARD_CTL_CODE(3500)` for ACS's driver,
    /// `SCARD_CTL_CODE(1)` for libccid where its driver options allow (readers.md §0).
    AcsLedBuzzer,
}

/// The escapes tried, in order, when the card is gone, as `n` of `SCARD_CTL_CODE(n)`
/// (readers.md §0): ACS's acsccid (3500), then libccid (1).
pub const ESCAPE_FUNCTIONS: [u16; 2] = [3500, 1];

/// When a family needs setup before pcscd can use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupNeed {
    /// One of the family's USB devices is present while this kernel module is loaded (it
    /// claims the device before pcscd can).
    KernelModule(&'static str),
    /// A USB device with this vendor:product id is present (the reader in a mode that is no
    /// PC/SC reader).
    UsbId(u16, u16),
}

/// Setup a family may need on Linux, and the fix (`doctor` checks and prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// How to tell it is needed.
    pub need: SetupNeed,
    /// What to do, in one sentence.
    pub fix: &'static str,
}

/// One reader family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// Stable short name, also `encoder-sim card --reader-profile NAME`.
    pub id: &'static str,
    /// The family as people call it.
    pub family: &'static str,
    /// Substrings of pcscd's reader name (never the full name: its index suffix depends on plug
    /// order, readers.md §0); any one matches.
    pub names: &'static [&'static str],
    /// USB vendor:product ids (for `doctor` and `lsusb`; pcscd does not put them in the name).
    pub usb: &'static [(u16, u16)],
    /// Key memory.
    pub keys: KeyStore,
    /// General Authenticate `FF 86` (`true`) or the obsolete `FF 88` form.
    pub general_auth: bool,
    /// READ BINARY Le for one block: `10`, or `00` ("the whole block", HID's code).
    pub read_le: u8,
    /// Multi-block reads.
    pub multi_read: MultiRead,
    /// Status words that mean "refused" (wrong key, not authenticated, access denied) beside
    /// the Part 3 `63 00`; the session answers them to the jobs as `63 00`.
    pub refusals: &'static [[u8; 2]],
    /// Whether the reader selects the card again by itself after a failed authentication
    /// (the card halts, readers.md §4). Where unknown: `false`, and the session resets the
    /// card (`SCardReconnect`) before the next authentication.
    pub reselects_after_failed_auth: bool,
    /// LED and buzzer.
    pub signal: Signal,
    /// Setup the reader may need on Linux before it works as a PC/SC reader.
    pub setup: Option<Setup>,
    /// Where the entry's facts come from, and what was taken from the baseline.
    pub sources: &'static str,
}

impl Dialect {
    /// What the jobs may count on.
    pub fn caps(&self) -> ReaderCaps {
        let key_slots = match self.keys {
            KeyStore::Slots { slots, .. } => slots,
            // The session keeps the keys; the reader holds one per key type at a time.
            KeyStore::ByKeyType { .. } => 8,
        };
        let read_blocks = match self.multi_read {
            MultiRead::Single => 1,
            MultiRead::Binary { max } => max,
            MultiRead::SectorCommand => 3,
        };
        ReaderCaps {
            key_slots,
            read_blocks,
        }
        .sane()
    }

    /// Whether this is the baseline (the reader was not recognised).
    pub fn is_baseline(&self) -> bool {
        self.id == BASELINE.id
    }
}

/// Status words SCM/Identiv and HID use for refusals (readers.md §1, §9.3).
const FINE_REFUSALS: &[[u8; 2]] = &[
    [0x69, 0x82],
    [0x69, 0x83],
    [0x69, 0x84],
    [0x69, 0x86],
    [0x63, 0x82],
    [0x63, 0x83],
    [0x63, 0x84],
    [0x63, 0x86],
];

const PN533_SETUP: Setup = Setup {
    need: SetupNeed::KernelModule("pn533_usb"),
    fix: "the kernel's pn533_usb driver claims this reader before pcscd can (pcscd logs \
          \"Can't claim interface\"): the package installs \
          /usr/lib/modprobe.d/encoder-bridge-pn533.conf (blacklist pn533_usb, pn533, nfc); run \
          `sudo modprobe -r pn533_usb pn533 nfc` and re-plug the reader",
};

/// The PC/SC Part 3 baseline: what a reader not in the table gets.
pub const BASELINE: Dialect = Dialect {
    id: "baseline",
    family: "PC/SC Part 3 baseline",
    names: &[],
    usb: &[],
    keys: KeyStore::Slots { p1: 0x00, slots: 2 },
    general_auth: true,
    read_le: 0x10,
    multi_read: MultiRead::Single,
    refusals: FINE_REFUSALS,
    reselects_after_failed_auth: false,
    signal: Signal::None,
    setup: None,
    sources: "PC/SC Part 3 as vendors quote it (readers.md §1; docs/reference/pcsc-part3.md §1)",
};

/// HID OMNIKEY 5022 and 5422: what HID's own sample code and other public code send
/// (readers.md §3-§5).
const OMNIKEY: Dialect = Dialect {
    id: "omnikey",
    family: "HID OMNIKEY",
    names: &[],
    usb: &[],
    // P1 20, slots 00-1F as HID's own code does (readers.md §3); P1 00 is unknown.
    keys: KeyStore::Slots {
        p1: 0x20,
        slots: 32,
    },
    general_auth: true,
    read_le: 0x00,
    // Multi-block unknown: baseline.
    multi_read: MultiRead::Single,
    refusals: FINE_REFUSALS,
    reselects_after_failed_auth: false,
    // Unknown (readers.md §7).
    signal: Signal::None,
    setup: None,
    sources: "HID OMNIKEY sample code, shtrih mifaredrv (readers.md §3-§5); feedback, \
              multi-block reads and re-selection unknown: baseline",
};

/// Every known family, the baseline last.
pub const TABLE: &[Dialect] = &[
    Dialect {
        id: "acr122u",
        family: "ACS ACR122U",
        // libccid: "ACS ACR122U PICC Interface", acsccid: "ACS ACR122U" (readers.md §2).
        names: &["ACR122U"],
        usb: &[(0x072F, 0x2200)],
        keys: KeyStore::Slots { p1: 0x00, slots: 2 },
        general_auth: true,
        read_le: 0x10,
        multi_read: MultiRead::Single,
        refusals: &[],
        // Not in ACS's manual (readers.md §4): the project's reading, which the PN532
        // backend and the virtual card share (docs/reference/pcsc-part3.md §5).
        reselects_after_failed_auth: true,
        signal: Signal::AcsLedBuzzer,
        setup: Some(PN533_SETUP),
        sources: "ACR122U API v2.04 §4-§6 (readers.md §3-§7)",
    },
    Dialect {
        id: "acr1252u",
        family: "ACS ACR1252U",
        // "ACS ACR1252 Reader [ACR1252 Reader PICC]", "ACS ACR1252 Dual Reader [… PICC]",
        // acsccid "ACS ACR1252 1S CL Reader" / "ACS ACR1252 CL Reader"; the SAM reader of
        // the dual model is not a contactless one (readers.md §2, §8).
        names: &[
            "ACR1252 Reader PICC",
            "ACR1252 Dual Reader PICC",
            "ACR1252 1S CL",
            "ACR1252 CL",
        ],
        usb: &[(0x072F, 0x223E), (0x072F, 0x223B)],
        keys: KeyStore::Slots { p1: 0x00, slots: 2 },
        general_auth: true,
        read_le: 0x10,
        // Le a multiple of 16, up to 3 blocks on a 1K (15 on a 4K), not trailers (ACM1252U
        // §5.2.4.3, a sibling manual).
        multi_read: MultiRead::Binary { max: 3 },
        refusals: &[],
        // Unknown (readers.md §4): baseline.
        reselects_after_failed_auth: false,
        // FF 00 40 as on the ACR122U (nfc-pcsc#111, readers.md §7).
        signal: Signal::AcsLedBuzzer,
        setup: None,
        sources: "ACM1252U-Y3 RM v1.03 §5.2.4 (sibling); re-selection unknown: baseline",
    },
    Dialect {
        id: "omnikey5022",
        family: "HID OMNIKEY 5022",
        names: &["OMNIKEY 5022"],
        usb: &[(0x076B, 0x5022)],
        ..OMNIKEY
    },
    Dialect {
        id: "omnikey5422",
        family: "HID OMNIKEY 5422",
        // Only the contactless interface ("OMNIKEY 5422CL"); the contact one is another
        // reader of the same device (readers.md §2, §8).
        names: &["OMNIKEY 5422CL"],
        usb: &[(0x076B, 0x5422)],
        ..OMNIKEY
    },
    Dialect {
        id: "omnikey5427ck",
        family: "HID OMNIKEY 5427CK",
        names: &["OMNIKEY 5427 CK", "OMNIKEY 5427CK"],
        usb: &[(0x076B, 0x5427)],
        // Everything but the name and GET DATA is unknown (readers.md §3-§7): baseline.
        keys: KeyStore::Slots { p1: 0x00, slots: 2 },
        general_auth: true,
        read_le: 0x10,
        multi_read: MultiRead::Single,
        refusals: FINE_REFUSALS,
        reselects_after_failed_auth: false,
        signal: Signal::None,
        // Keyboard-wedge mode is USB id 076B:5428, no CCID (coinkite#36).
        setup: Some(Setup {
            need: SetupNeed::UsbId(0x076B, 0x5428),
            fix: "an OMNIKEY 5427CK in keyboard-wedge mode (USB id 076B:5428) is a keyboard, no \
                  PC/SC reader: switch it to CCID mode on its configuration page (the reader's \
                  EEM web page, http://192.168.63.99) and re-plug it",
        }),
        sources: "name only (readers.md §2, §8); commands unknown: baseline",
    },
    Dialect {
        id: "utrust3700f",
        family: "Identiv uTrust 3700 F",
        names: &["uTrust 3700 F"],
        usb: &[(0x04E6, 0x5790)],
        // Unknown (readers.md §3): baseline. A sibling (SCL011) wants the key type in P2.
        keys: KeyStore::Slots { p1: 0x00, slots: 2 },
        general_auth: true,
        read_le: 0x10,
        multi_read: MultiRead::Single,
        refusals: FINE_REFUSALS,
        reselects_after_failed_auth: false,
        signal: Signal::None,
        setup: None,
        sources: "name from libccid (readers.md §2); commands unknown: baseline",
    },
    Dialect {
        id: "utrust3720f",
        family: "Identiv uTrust 3720 F",
        names: &["uTrust 3720"],
        usb: &[(0x04E6, 0x5612)],
        // P2 = key type; the authentication then uses key number 01 (U3720 §6.2.3-§6.2.4).
        keys: KeyStore::ByKeyType { auth_key_no: 0x01 },
        general_auth: true,
        read_le: 0x10,
        // FF B1 00 <sector> 00 reads a sector's three data blocks (U3720 §6.2.5).
        multi_read: MultiRead::SectorCommand,
        refusals: FINE_REFUSALS,
        reselects_after_failed_auth: false,
        signal: Signal::None,
        setup: None,
        sources: "Identiv uTrust 3720F RM v1.00 §6.2 (readers.md §3-§5); feedback and \
                  re-selection unknown: baseline",
    },
    Dialect {
        id: "scl3711",
        family: "Identiv SCL3711",
        names: &["SCL3711"],
        usb: &[(0x04E6, 0x5591)],
        // P2 = key type (SCL3711 §6.2.3); key number of the authentication: as the 3720F
        // (same vendor; readers.md §4 gives only "the number of the key").
        keys: KeyStore::ByKeyType { auth_key_no: 0x01 },
        general_auth: true,
        read_le: 0x10,
        multi_read: MultiRead::Single,
        refusals: FINE_REFUSALS,
        reselects_after_failed_auth: false,
        signal: Signal::None,
        setup: Some(PN533_SETUP),
        sources: "SCM SCL3711 RM v1.3 §6.2 (readers.md §3-§5); feedback and re-selection \
                  unknown: baseline",
    },
];

/// The family of the reader pcscd calls `name`, or the [`BASELINE`].
pub fn recognise(name: &str) -> &'static Dialect {
    TABLE
        .iter()
        .find(|d| d.names.iter().any(|n| name.contains(n)))
        .unwrap_or(&BASELINE)
}

/// The entry called `id` (the baseline included).
pub fn by_id(id: &str) -> Option<&'static Dialect> {
    TABLE
        .iter()
        .chain(std::iter::once(&BASELINE))
        .find(|d| d.id.eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pcscd names as readers.md §2 quotes them.
    #[test]
    fn pcscd_names_are_recognised() {
        let seen = [
            ("ACS ACR122U PICC Interface 00 00", "acr122u"),
            ("ACS ACR122U (A0201234) 00 00", "acr122u"),
            ("ACS ACR1252 Reader [ACR1252 Reader PICC] 00 00", "acr1252u"),
            ("ACS ACR1252 1S CL Reader(1)", "acr1252u"),
            (
                "HID Global OMNIKEY 5022 Smart Card Reader [OMNIKEY 5022 Smart Card Reader] 00 00",
                "omnikey5022",
            ),
            (
                "HID Global OMNIKEY 5422 Smartcard Reader [OMNIKEY 5422CL Smartcard Reader] (1234) 00 00",
                "omnikey5422",
            ),
            ("HID OMNIKEY 5427 CK (0123456) 00 00", "omnikey5427ck"),
            (
                "Identiv uTrust 3700 F CL Reader [uTrust 3700 F CL Reader] (5501) 00 00",
                "utrust3700f",
            ),
            (
                "Identiv uTrust 3720 Contactless Reader 00 00",
                "utrust3720f",
            ),
            ("SCM Microsystems SCL3711 reader & NFC device 0", "scl3711"),
            ("Virtual PCD 0 00 00", "baseline"),
            // The contact interface of a 5422 and the SAM reader of an ACR1252 Dual are
            // no contactless readers of a known family.
            (
                "HID Global OMNIKEY 5422 Smartcard Reader [OMNIKEY 5422 Smartcard Reader] 01 00",
                "baseline",
            ),
            (
                "ACS ACR1252 Dual Reader [ACR1252 Dual Reader SAM] 00 01",
                "baseline",
            ),
        ];
        for (name, id) in seen {
            assert_eq!(recognise(name).id, id, "{name}");
        }
    }

    #[test]
    fn every_entry_is_reachable_and_sane() {
        for d in TABLE {
            assert!(!d.names.is_empty(), "{}", d.id);
            assert_eq!(by_id(d.id), Some(d));
            for n in d.names {
                assert_eq!(recognise(n).id, d.id, "{n} is shadowed");
            }
            let caps = d.caps();
            assert!(caps.key_slots >= 2 && caps.read_blocks >= 1);
            if let KeyStore::Slots { slots, .. } = d.keys {
                assert!(slots >= 2);
            }
        }
        assert_eq!(by_id("BASELINE"), Some(&BASELINE));
        assert!(BASELINE.is_baseline());
        assert_eq!(BASELINE.caps(), ReaderCaps::BASELINE);
    }
}
