//! Logging setup: readable on a terminal, `RUST_LOG` to override.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stderr.
pub(crate) fn init(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
