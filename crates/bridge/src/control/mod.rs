//! The local control socket (docs/control-protocol.md): how `encoder-bridge status`, `scan`,
//! `encode` and `readers` talk to the running daemon.
//!
//! A Unix socket in the daemon's runtime directory (`/run/encoder-bridge/control.sock` under
//! systemd), mode 0660, group `encoder-bridge`; the peer's credentials are checked
//! ([`peer`]). One JSON object per line each way. This module is the only one that knows the
//! wire types ([`wire`]); the daemon answers [`wire::Request`]s through a channel
//! ([`server::Call`]), the CLI asks through [`client`].

pub mod client;
pub mod peer;
pub mod server;
pub mod wire;

/// The protocol version (`"v"` of every request and answer).
pub const VERSION: u32 = 1;

/// The longest request line accepted, in bytes (a credential is well under 4 KiB).
pub const MAX_LINE: usize = 64 * 1024;

/// The socket's path when `[control] socket` is not set: in the runtime directory systemd
/// makes for the unit (`RuntimeDirectory=encoder-bridge`).
pub const DEFAULT_SOCKET: &str = "/run/encoder-bridge/control.sock";

/// The group whose members may use the socket when `[control] group` is not set.
pub const DEFAULT_GROUP: &str = "encoder-bridge";
