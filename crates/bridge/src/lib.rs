//! encoder-bridge: the daemon that connects a cloud access-control API to card encoders, and
//! the operator commands that share its code paths.
//!
//! - [`config`]: the TOML configuration and its validation;
//! - [`secrets`]: the cloud token and the site keys, with the file-permission rule;
//! - [`store`]: durable state (redb): identities, attempts and their phases, the outbox;
//! - [`cloud`]: the websocket protocol (docs/cloud-protocol.md): messages, the I/O-free
//!   session state machine, the connection;
//! - [`runner`]: one thread per encoder running encode/scan jobs;
//! - [`discovery`]: which readers become encoders;
//! - [`control`]: the local control socket (docs/control-protocol.md);
//! - [`daemon`]: `encoder-bridge run` as one async function;
//! - [`notify`]: systemd notifications;
//! - [`cli`]: the command line.

#![forbid(unsafe_code)]

mod apdu_guard;
pub mod card_job;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod control;
pub mod daemon;
pub mod discovery;
pub mod job;
pub mod notify;
pub mod runner;
pub mod secrets;
pub mod store;
#[cfg(test)]
mod test_support;
