//! `encoder-sim cloud --tls-cert FILE --tls-key FILE`: the simulator behind TLS (rustls with
//! the `ring` provider), so the bridge's `wss://` path, `cloud.ca_file` and its certificate
//! errors are tested against a real handshake.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::CloudError;

/// A handshake that has not finished in this long is dropped.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// The server configuration from a PEM certificate chain and its PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, CloudError> {
    let setup = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        CloudError::Setup(format!("{what} {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| setup("--tls-cert", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup("--tls-cert", cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| setup("--tls-key", key, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| CloudError::Setup(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| CloudError::Setup(format!("--tls-cert/--tls-key: {e}")))?;
    Ok(Arc::new(config))
}

/// A TCP listener whose connections are TLS, for `axum::serve`. Handshakes run one after
/// another in `accept` (bounded by [`HANDSHAKE_WITHIN`]); a client that refuses the
/// certificate only ends its own connection.
pub(crate) struct TlsListener {
    pub(crate) tcp: TcpListener,
    pub(crate) acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(HANDSHAKE_WITHIN, self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => eprintln!("encoder-sim: TLS handshake with {addr} failed: {e}"),
                Err(_) => eprintln!("encoder-sim: TLS handshake with {addr} timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
