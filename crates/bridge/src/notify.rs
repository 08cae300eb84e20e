//! systemd notifications (`Type=notify`): READY, STATUS, WATCHDOG, STOPPING.
//!
//! Every call is a no-op outside systemd (no `NOTIFY_SOCKET`).

use sd_notify::NotifyState;

fn send(state: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// The daemon is up (store open, encoders being watched).
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// A one-line status for `systemctl status`, e.g. "2 encoders, cloud connected".
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// Keeps the watchdog (`WatchdogSec=`) fed; called from the event loop's tick, so a stuck
/// loop gets the service restarted.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// A graceful stop has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}
