//! The simulator without sockets: what the HTTP API does with a request body and what one
//! bridge websocket session does with a text frame, on an in-memory seeded state, driven by
//! plain calls. It exists for the fuzz targets (crates/fuzz-targets): request bodies and
//! websocket messages are bytes from outside the process, and this runs the same parsing and
//! dispatch the server runs, minus the token check and the transport.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use super::attempts::{Core, Timing};
use super::bridge_ws::{Next, Session};
use super::model::{ApiError, State, now_millis};
use super::{Shared, api};

/// One simulated cloud and one bridge connection to it.
pub struct Offline {
    shared: Arc<Shared>,
    session: Session,
    outgoing: mpsc::UnboundedReceiver<String>,
}

impl std::fmt::Debug for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offline").finish_non_exhaustive()
    }
}

impl Default for Offline {
    fn default() -> Self {
        Self::new()
    }
}

impl Offline {
    /// A freshly seeded cloud (as `encoder-sim cloud` without `--state`), no webhook.
    pub fn new() -> Self {
        let now = now_millis();
        let core = Core::new(State::seeded(now), Timing::default(), now);
        let shared = Arc::new(Shared::new(core, String::new(), None, None));
        let (tx, outgoing) = mpsc::unbounded_channel();
        let session = Session::new(Arc::clone(&shared), shared.next_connection_id(), tx);
        Self {
            shared,
            session,
            outgoing,
        }
    }

    /// `POST path` with `body`, past the token check: the operation's JSON answer or its
    /// error; `None` when `path` is not an API operation (the server answers 404).
    pub fn request(&self, path: &str, body: &[u8]) -> Option<Result<Value, ApiError>> {
        self.shared
            .with(|core, now| api::operation(core, now, path, body))
    }

    /// One text frame from the bridge: the frames the cloud sends back (direct replies, then
    /// whatever the core queued for this bridge), and whether it closes the connection.
    pub fn bridge_text(&mut self, text: &str) -> (Vec<String>, bool) {
        let (mut replies, close) = match self.session.handle_text(text) {
            Next::Reply(replies) => (replies, false),
            Next::Close(replies) => (replies, true),
        };
        while let Ok(queued) = self.outgoing.try_recv() {
            replies.push(queued);
        }
        (replies, close)
    }
}
