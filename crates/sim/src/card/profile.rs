//! Reader profiles: how the reader in front of the virtual card speaks PC/SC Part 3, family by
//! family, written from the vendors' manuals as docs/reference/readers.md quotes them
//! (cited `readers.md §N`), never from the bridge's hal: a shared misreading must not cancel
//! itself out.
//!
//! Where the reference says "unknown", a profile takes the Part 3 baseline in its strictest
//! reading (docs/reference/pcsc-part3.md §1-§2): two volatile slots, one block per read, no
//! re-selection of a card halted by a failed authentication (the client must reset it), no
//! LED/buzzer command. A profile refuses the forms its reader does not document with the
//! status word that reader uses, so a client speaking another family's dialect fails here as
//! it would at the desk.
//!
//! The types here look like the hal's dialect table on purpose, and are kept apart on purpose:
//! the simulator must not share a misreading with the code it tests (docs/reference/README.md).

use std::fmt;
use std::str::FromStr;

use crate::error::SimError;

/// How LOAD KEYS (`FF 82`) addresses the reader's key memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMemory {
    /// `FF 82 <p1> <slot> 06 <key>`, slots `00..slots`; the authentication names the slot.
    Slots {
        /// The P1 the reader takes (`00` volatile; `20` HID's EEPROM store).
        p1: u8,
        /// Number of slots.
        slots: u8,
    },
    /// `FF 82 00 <60|61> 06 <key>`: one key per key type; the authentication must then name
    /// key number `auth_key_no` (SCM/Identiv, readers.md §3-§4).
    ByKeyType {
        /// The key number an authentication gives.
        auth_key_no: u8,
    },
}

/// Status words a family answers (readers.md §1, §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Words {
    /// Authentication refused (wrong key, halted card).
    pub auth_failed: [u8; 2],
    /// Read or write refused (not authenticated, access bits).
    pub refused: [u8; 2],
    /// A key number or key structure the reader does not take.
    pub bad_key: [u8; 2],
    /// A LOAD KEYS P1 the reader does not take.
    pub bad_key_memory: [u8; 2],
    /// An instruction the reader does not know.
    pub unsupported: [u8; 2],
}

const ACS: Words = Words {
    auth_failed: [0x63, 0x00],
    refused: [0x63, 0x00],
    bad_key: [0x63, 0x00],
    bad_key_memory: [0x63, 0x00],
    unsupported: [0x6A, 0x81],
};

const FINE: Words = Words {
    auth_failed: [0x63, 0x00],
    refused: [0x69, 0x82],
    bad_key: [0x69, 0x88],
    bad_key_memory: [0x69, 0x86],
    unsupported: [0x6A, 0x81],
};

/// One reader family as the virtual card's front end.
// Independent yes/no facts of a manual, one a field: a table row, not a state machine.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderProfile {
    /// `--reader-profile NAME`.
    pub name: &'static str,
    /// What pcscd calls such a reader, without the ` RR SS` pcscd appends (readers.md §2); the
    /// rig gives its vpcd reader this name.
    pub pcscd_name: &'static str,
    /// Key memory.
    pub keys: KeyMemory,
    /// Takes the obsolete `FF 88` authentication.
    pub obsolete_auth: bool,
    /// Takes READ BINARY Le `00` for one block.
    pub le_zero: bool,
    /// Answers the whole block whatever Le (uTrust 3720F, readers.md §5).
    pub any_le: bool,
    /// Most consecutive blocks one READ BINARY returns (Le = 16·n; never a trailer, never
    /// across a sector).
    pub multi_read: u8,
    /// `FF B1 00 <sector> 00` reads a sector's three data blocks (uTrust 3720F).
    pub sector_read: bool,
    /// Selects a halted card again by itself before an authentication.
    pub reselects: bool,
    /// ACS LED/buzzer pseudo-APDUs (`FF 00 40`, `FF 00 52`), answered `90 <LED state>`.
    pub acs_led: bool,
    /// Status words.
    pub words: Words,
}

impl ReaderProfile {
    /// The profile without `--reader-profile`: the ACR122U.
    pub const DEFAULT: Self = Self::ACR122U;

    /// ACS ACR122U: API v2.04 (readers.md §3-§7); re-selection as this project's reading of
    /// the PN532 (docs/reference/pcsc-part3.md §5).
    pub const ACR122U: Self = Self {
        name: "acr122u",
        pcscd_name: "ACS ACR122U PICC Interface",
        keys: KeyMemory::Slots { p1: 0, slots: 2 },
        obsolete_auth: true,
        le_zero: true,
        any_le: false,
        multi_read: 1,
        sector_read: false,
        reselects: true,
        acs_led: true,
        words: ACS,
    };

    /// Every profile, in CLI order.
    pub const ALL: [Self; 9] = [
        Self::ACR122U,
        // ACS ACR1252U: up to 3 blocks per read on a 1K (ACM1252U §5.2.4.3); FF 00 40 as
        // the ACR122U (readers.md §7); re-selection unknown.
        Self {
            name: "acr1252u",
            pcscd_name: "ACS ACR1252 Reader [ACR1252 Reader PICC]",
            keys: KeyMemory::Slots { p1: 0, slots: 2 },
            obsolete_auth: true,
            le_zero: false,
            any_le: false,
            multi_read: 3,
            sector_read: false,
            reselects: false,
            acs_led: true,
            words: ACS,
        },
        Self {
            name: "omnikey5022",
            pcscd_name: "HID Global OMNIKEY 5022 Smart Card Reader [OMNIKEY 5022 Smart Card Reader]",
            ..Self::OMNIKEY
        },
        Self {
            name: "omnikey5422",
            pcscd_name: "HID Global OMNIKEY 5422 Smartcard Reader [OMNIKEY 5422CL Smartcard Reader] (0123456789)",
            ..Self::OMNIKEY
        },
        // HID OMNIKEY 5427CK: only the name is known (readers.md §2): baseline.
        Self {
            name: "omnikey5427ck",
            pcscd_name: "HID OMNIKEY 5427 CK (0123456789)",
            ..Self::BASELINE
        },
        // Identiv uTrust 3700F: name from libccid; commands unknown: baseline.
        Self {
            name: "utrust3700f",
            pcscd_name: "Identiv uTrust 3700 F CL Reader [uTrust 3700 F CL Reader] (55041234)",
            ..Self::BASELINE
        },
        // Identiv uTrust 3720F: P2 = key type, then key number 01; whole block whatever Le;
        // FF B1 sector read (U3720 §6.2).
        Self {
            name: "utrust3720f",
            pcscd_name: "Identiv uTrust 3720 Contactless Reader",
            keys: KeyMemory::ByKeyType { auth_key_no: 0x01 },
            obsolete_auth: false,
            le_zero: true,
            any_le: true,
            multi_read: 1,
            sector_read: true,
            reselects: false,
            acs_led: false,
            words: FINE,
        },
        // SCM SCL3711: P2 = key type (SCL3711 §6.2.3); key number as the 3720F (sibling).
        Self {
            name: "scl3711",
            pcscd_name: "SCM Microsystems SCL3711 reader & NFC device",
            keys: KeyMemory::ByKeyType { auth_key_no: 0x01 },
            obsolete_auth: false,
            le_zero: true,
            any_le: false,
            multi_read: 1,
            sector_read: false,
            reselects: false,
            acs_led: false,
            words: FINE,
        },
        Self::BASELINE,
    ];

    /// HID OMNIKEY 5022 / 5422: keys in slots 00-1F with P1 20; P1 00 refused as a sibling
    /// (5321) refuses it; `FF 86` only; `Le 00` (readers.md §3-§5).
    const OMNIKEY: Self = Self {
        name: "omnikey",
        pcscd_name: "HID Global OMNIKEY",
        keys: KeyMemory::Slots {
            p1: 0x20,
            slots: 32,
        },
        obsolete_auth: false,
        le_zero: true,
        any_le: false,
        multi_read: 1,
        sector_read: false,
        reselects: false,
        acs_led: false,
        words: FINE,
    };

    /// PC/SC Part 3 as the vendors quote it (readers.md §1), under a name no table knows.
    pub const BASELINE: Self = Self {
        name: "baseline",
        pcscd_name: "Unlisted Vendor Contactless Reader",
        keys: KeyMemory::Slots { p1: 0, slots: 2 },
        obsolete_auth: true,
        le_zero: true,
        any_le: false,
        multi_read: 1,
        sector_read: false,
        reselects: false,
        acs_led: false,
        words: FINE,
    };

    /// The number of reader key slots the card front end keeps.
    pub(crate) fn slot_count(&self) -> usize {
        match self.keys {
            KeyMemory::Slots { slots, .. } => usize::from(slots),
            KeyMemory::ByKeyType { .. } => 2,
        }
    }
}

impl Default for ReaderProfile {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for ReaderProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl FromStr for ReaderProfile {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name.eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name).collect();
                SimError::Usage(format!(
                    "unknown reader profile {s:?} (one of: {})",
                    names.join(", ")
                ))
            })
    }
}
