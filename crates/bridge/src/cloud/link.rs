//! The websocket connection: connecting (rustls with the `ring` provider and the system's
//! roots, bearer token, subprotocol), limits, and the reconnect backoff (docs/cloud-protocol.md
//! §1). Frames are read in [`super::connection`], liveness kept by [`super::liveness`].

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

/// Opens connections to the cloud: [`Cloud`] in production, an in-memory pipe in tests.
pub trait Connect: Clone + Send + Sync + 'static {
    /// The byte stream under the websocket.
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;

    /// Opens one connection.
    fn connect(
        &self,
    ) -> impl std::future::Future<Output = Result<WebSocketStream<Self::Stream>, ConnectError>> + Send;
}

/// The cloud at `url`, with the bridge's token.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// `cloud.url`.
    pub url: String,
    /// The API token.
    pub token: Token,
}

impl Connect for Cloud {
    type Stream = MaybeTlsStream<TcpStream>;

    async fn connect(&self) -> Result<Ws, ConnectError> {
        connect(&self.url, &self.token).await.map(|(ws, _)| ws)
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

/// `encoder-bridge doctor`'s check of the cloud: connects (so the token is checked), says a
/// `hello` with `probe: true` (the cloud answers `welcome` and does not register the bridge),
/// and returns the cloud's clock from the `welcome`; `None` when none came within 5 s.
pub async fn probe(url: &str, token: &Token) -> Result<Option<time::OffsetDateTime>, ConnectError> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    use super::message::{self, Incoming, Outgoing, PROTOCOL_VERSION};

    let (mut ws, _) = connect(url, token).await?;
    let hello = Outgoing::Hello {
        protocol: PROTOCOL_VERSION,
        bridge_id: uuid::Uuid::new_v4().to_string(),
        bridge_version: env!("CARGO_PKG_VERSION").to_owned(),
        encoders: Vec::new(),
        probe: true,
    };
    let _ = ws.send(Message::text(hello.to_text())).await;
    let welcome = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(text) = frame
                && let Ok(Incoming::Welcome(w)) = message::parse(text.as_str())
            {
                return Some(w);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let _ = ws.close(None).await;
    Ok(welcome.and_then(|w| message::parse_time(&w.server_time)))
}
