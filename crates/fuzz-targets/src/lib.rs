//! The bodies of the fuzz targets (issue 17; run them with `make fuzz`, see fuzz/README.md).
//!
//! Every parser of bytes from outside the process has a target here: a plain function of the
//! fuzzer's bytes that feeds them to the parser and checks properties, panicking when one
//! breaks (that is how libFuzzer sees a failure, hence `clippy::panic` is allowed in this
//! crate). The cargo-fuzz project in `fuzz/` (nightly, libFuzzer) calls these functions; on
//! stable, `tests/corpus.rs` replays every file of `fuzz/corpus/<target>/` through them, so
//! `make test` checks the seed corpora and every past crash without building with nightly.
//!
//! | target | parser |
//! |---|---|
//! | `status_apdu` | status words, response APDUs, trace redaction |
//! | `card_identify` | ATR, SAK and ATS identification; the PN532 backend's ATR |
//! | `mad` | MAD1 and MAD2 |
//! | `trailer_access` | sector trailers, access bytes, value blocks |
//! | `classic_record` | the credential record (card format v1) |
//! | `pn532_frame` | the PN532 frame decoder, in arbitrary chunks |
//! | `pn532_reply` | the PN532 reply parsers and the serial link's command exchange |
//! | `pn532_session` | encode and scan through the PN532 backend over a disturbed serial line |
//! | `cloud_message` | the bridge's cloud messages and offer translation |
//! | `config` | the bridge's configuration file and site key files |
//! | `store_record` | the bridge store's rows |
//! | `sim_http` | the cloud simulator's HTTP request bodies |
//! | `desfire_card` | the virtual `DESFire` card's command frames |
//! | `sim_ws` | the cloud simulator's bridge websocket messages |
//! | `whole_job` | encode, re-encode and scan against a fuzzer-controlled card |
//! | `desfire_job` | the `DESFire` encode, re-encode and scan against a fuzzer-controlled `DESFire` |

#![forbid(unsafe_code)]
// A broken property panics: that is what a fuzz target reports (documented once, here).
#![allow(clippy::panic, clippy::missing_panics_doc)]

pub mod input;

mod bridge;
mod desfire;
mod identify;
mod job;
mod mifare;
mod pn532;
mod port;
mod record;
mod session;
mod sim;
mod status;
mod virtual_desfire;

pub use bridge::{cloud_message, config, store_record};
pub use desfire::desfire_job;
pub use identify::card_identify;
pub use job::{MAX_JOB_APDUS, whole_job};
pub use mifare::{mad, trailer_access};
pub use pn532::{pn532_frame, pn532_reply};
pub use record::classic_record;
pub use session::pn532_session;
pub use sim::{sim_http, sim_ws};
pub use status::status_apdu;
pub use virtual_desfire::desfire_card;

/// A target: its name (the directory of its corpus under `fuzz/corpus/` and the name of its
/// binary in `fuzz/fuzz_targets/`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 16] = [
    ("status_apdu", status_apdu),
    ("card_identify", card_identify),
    ("mad", mad),
    ("trailer_access", trailer_access),
    ("classic_record", classic_record),
    ("pn532_frame", pn532_frame),
    ("pn532_reply", pn532_reply),
    ("pn532_session", pn532_session),
    ("cloud_message", cloud_message),
    ("config", config),
    ("store_record", store_record),
    ("sim_http", sim_http),
    ("desfire_card", desfire_card),
    ("sim_ws", sim_ws),
    ("whole_job", whole_job),
    ("desfire_job", desfire_job),
];
