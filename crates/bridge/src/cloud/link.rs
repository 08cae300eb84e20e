//! The websocket connection: connecting (rustls with the `ring` provider, the system's roots
//! and `cloud.ca_file`, bearer token, subprotocol), limits, and the reconnect backoff
//! (docs/cloud-protocol.md §1). A certificate the bridge cannot trust is a [`ConnectError::
//! Certificate`] with a hint that names the fix, retried at the longest delay as a refused
//! token is. Frames are read in [`super::connection`], liveness kept by [`super::liveness`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

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
    /// The server's certificate is not trusted (unknown issuer, expired, wrong name, ...).
    #[error("cloud's TLS certificate refused: {problem} (hint: {hint})")]
    Certificate {
        /// What rustls found.
        problem: String,
        /// What to do about it.
        hint: String,
    },
    /// `cloud.ca_file` cannot be used.
    #[error(
        "cloud.ca_file {path}: {problem} (hint: it must hold PEM certificates (BEGIN CERTIFICATE), readable by the daemon)"
    )]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
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
    ///
    /// A refused token, an untrusted certificate, an unusable `ca_file` and a missing
    /// subprotocol are not fixed by retrying soon: someone has to change something.
    pub fn wants_longest_delay(&self) -> bool {
        matches!(
            self,
            Self::Unauthorized(_)
                | Self::Certificate { .. }
                | Self::CaFile { .. }
                | Self::Subprotocol
        )
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
    /// Which certificates are trusted ([`tls_config`]).
    pub tls: Arc<rustls::ClientConfig>,
}

impl Connect for Cloud {
    type Stream = MaybeTlsStream<TcpStream>;

    async fn connect(&self) -> Result<Ws, ConnectError> {
        connect(&self.url, &self.token, &self.tls)
            .await
            .map(|(ws, _)| ws)
    }
}

/// Which CAs the bridge trusts for the cloud (`cloud.ca_file`, `cloud.ca_only`).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// A PEM bundle added to the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Only `ca_file`, not the system's roots.
    pub ca_only: bool,
}

impl Trust {
    /// From the configuration.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            ca_file: config.cloud.ca_file.clone(),
            ca_only: config.cloud.ca_only,
        }
    }
}

fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let failed = |problem: String| ConnectError::CaFile {
        path: path.display().to_string(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if certs.is_empty() {
        return Err(failed("holds no certificate".into()));
    }
    Ok(certs)
}

/// The TLS client configuration: rustls with the `ring` provider, trusting the system's roots
/// (unless `ca_only`) and every certificate in `ca_file`.
pub fn tls_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    if !trust.ca_only {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("system CA store: {e}");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system CA certificates");
    }
    if let Some(path) = &trust.ca_file {
        for cert in ca_certificates(path)? {
            roots.add(cert).map_err(|e| ConnectError::CaFile {
                path: path.display().to_string(),
                problem: e.to_string(),
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConnectError::Transport(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls error inside a websocket error, if any (the TLS handshake's errors come
/// wrapped in an I/O error).
fn rustls_error(e: &tokio_tungstenite::tungstenite::Error) -> Option<&rustls::Error> {
    use tokio_tungstenite::tungstenite::Error;
    let mut next: Option<&(dyn std::error::Error + 'static)> = match e {
        Error::Io(io) => io
            .get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static)),
        Error::Tls(tls) => Some(tls),
        _ => None,
    };
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// A certificate error with the hint that fixes it; `None` for other errors.
fn certificate_error(e: &rustls::Error, host: &str) -> Option<ConnectError> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = e else {
        return None;
    };
    let hint = match cert {
        C::UnknownIssuer => format!(
            "the certificate of {host} is signed by a CA this bridge does not trust; put that CA's certificate (PEM) into the file named by cloud.ca_file, or into the system store (update-ca-certificates)"
        ),
        C::Expired | C::ExpiredContext { .. } => format!(
            "the certificate of {host} has expired, or this machine's clock is ahead; check the clock (timedatectl), then have the server's certificate renewed"
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => format!(
            "the certificate of {host} is not valid yet: this machine's clock is behind; enable NTP (timedatectl set-ntp true)"
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the certificate is not issued for {host}; cloud.url must name the host as the certificate does (not an IP address or another alias)"
        ),
        _ => format!(
            "check the certificate chain {host} sends: openssl s_client -connect {host}:443 -showcerts"
        ),
    };
    Some(ConnectError::Certificate {
        problem: cert_name(cert),
        hint,
    })
}

fn cert_name(cert: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match cert {
        C::UnknownIssuer => "unknown issuer".into(),
        C::Expired | C::ExpiredContext { .. } => "expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "not valid for this host name".into()
        }
        other => other.to_string(),
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

/// Opens a connection to `url` with `token`, trusting what `tls` trusts; also returns the
/// upgrade response's `Date` header, if any.
pub async fn connect(
    url: &str,
    token: &Token,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(Ws, Option<String>), ConnectError> {
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
    let host = request.uri().host().unwrap_or_default().to_owned();
    let connecting =
        // `true`: TCP_NODELAY. The protocol's messages are small and answer each other (claim,
        // grant); Nagle would hold one behind the peer's delayed ACK.
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config()),
            true,
            Some(Connector::Rustls(Arc::clone(tls))),
        );
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
        Ok(Err(e)) => {
            return Err(rustls_error(&e)
                .and_then(|r| certificate_error(r, &host))
                .unwrap_or_else(|| ConnectError::Transport(e.to_string())));
        }
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
pub async fn probe(
    url: &str,
    token: &Token,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Option<time::OffsetDateTime>, ConnectError> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    use super::message::{self, Incoming, Outgoing, PROTOCOL_VERSION};

    let (mut ws, _) = connect(url, token, tls).await?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Errors nobody fixes by retrying soon wait the longest delay; each certificate error
    /// names its fix.
    #[test]
    fn certificate_errors_wait_longest_and_name_their_fix() {
        use rustls::CertificateError as C;
        let cert = |e: C| {
            certificate_error(&rustls::Error::InvalidCertificate(e), "cloud.example").unwrap()
        };
        for (error, problem, hint) in [
            (C::UnknownIssuer, "unknown issuer", "cloud.ca_file"),
            (C::Expired, "expired", "timedatectl"),
            (C::NotValidYet, "not valid yet", "set-ntp"),
            (
                C::NotValidForName,
                "not valid for this host name",
                "cloud.url must name",
            ),
            (
                C::BadSignature,
                "",
                "openssl s_client -connect cloud.example:443",
            ),
        ] {
            let e = cert(error);
            assert!(e.wants_longest_delay(), "{e}");
            assert!(e.to_string().contains(problem), "{e}");
            assert!(e.to_string().contains(hint), "{e}");
        }
        assert!(certificate_error(&rustls::Error::DecryptError, "h").is_none());
        assert!(ConnectError::Unauthorized(401).wants_longest_delay());
        assert!(ConnectError::Subprotocol.wants_longest_delay());
        assert!(!ConnectError::Http(502).wants_longest_delay());
        assert!(!ConnectError::Transport("refused".into()).wants_longest_delay());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "no PEM here\n").unwrap();
        let trust = Trust {
            ca_file: Some(path.clone()),
            ca_only: true,
        };
        let e = tls_config(&trust).unwrap_err();
        assert!(matches!(e, ConnectError::CaFile { .. }), "{e}");
        assert!(e.wants_longest_delay());
        let missing = Trust {
            ca_file: Some(dir.path().join("missing.pem")),
            ca_only: false,
        };
        assert!(matches!(
            tls_config(&missing),
            Err(ConnectError::CaFile { .. })
        ));
        assert!(tls_config(&Trust::default()).is_ok());
    }
}
