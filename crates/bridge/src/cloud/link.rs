//! The websocket connection: connecting (rustls with the `ring` provider and the system's
//! roots, bearer token, subprotocol), limits, and the reconnect backoff (docs/cloud-protocol.md
//! §1). The read/write loop lives in [`crate::daemon`], which owns the session.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::message::{SUBPROTOCOL, TRANSPORT_LIMIT};
use crate::secrets::Token;

/// An open connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A websocket ping goes out this often by default (§1; `cloud.ping_interval_secs`).
pub const PING_EVERY: Duration = Duration::from_secs(20);

/// No frame within this long after a ping: the connection is dead (§1; default of
/// `cloud.pong_timeout_secs`).
pub const PONG_DEADLINE: Duration = Duration::from_secs(20);

/// First reconnect delay (§1).
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);

/// Longest reconnect delay; also the delay after a refused token (§1).
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A connection that stayed up this long resets the backoff (§1).
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// HTTP 401/403: the token was refused.
    #[error(
        "cloud refused the token ({0}) (hint: check cloud.token_file / the `token` credential holds this bridge's current token)"
    )]
    Unauthorized(u16),
    /// Another HTTP status before the upgrade.
    #[error("cloud answered HTTP {0} instead of upgrading to a websocket (hint: check cloud.url)")]
    Http(u16),
    /// The server did not agree to the subprotocol.
    #[error(
        "cloud did not agree to the subprotocol {SUBPROTOCOL} (hint: check cloud.url points at the bridge endpoint)"
    )]
    Subprotocol,
    /// DNS, TCP, TLS or websocket failure.
    #[error("{0}")]
    Transport(String),
}

impl ConnectError {
    /// Whether the next attempt should wait the longest delay (no tight loop on a bad token).
    pub fn wants_longest_delay(&self) -> bool {
        matches!(self, Self::Unauthorized(_))
    }
}

/// Installs rustls's `ring` provider as the process default (once; later calls are no-ops).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The transport limits (§1).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(TRANSPORT_LIMIT))
        .max_frame_size(Some(TRANSPORT_LIMIT))
}

/// Opens a connection to `url` with `token`; also returns the upgrade response's `Date`
/// header, if any.
pub async fn connect(url: &str, token: &Token) -> Result<(Ws, Option<String>), ConnectError> {
    install_crypto();
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Transport(format!("bad cloud.url: {e}")))?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        ConnectError::Transport("the token holds characters a header cannot carry".into())
    })?;
    request.headers_mut().insert("Authorization", auth);
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let connecting =
        // `true`: TCP_NODELAY. The protocol's messages are small and answer each other (claim,
        // grant); Nagle would hold one behind the peer's delayed ACK.
        tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config()), true, None);
    let (ws, response) = match tokio::time::timeout(Duration::from_secs(20), connecting).await {
        Err(_) => {
            return Err(ConnectError::Transport(
                "connecting timed out after 20 s".into(),
            ));
        }
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            return Err(if status == 401 || status == 403 {
                ConnectError::Unauthorized(status)
            } else {
                ConnectError::Http(status)
            });
        }
        // The error text never holds the token (it is only in a request header).
        Ok(Err(e)) => return Err(ConnectError::Transport(e.to_string())),
        Ok(Ok(pair)) => pair,
    };
    let agreed = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL));
    if !agreed {
        return Err(ConnectError::Subprotocol);
    }
    let date = response
        .headers()
        .get("Date")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, date))
}
