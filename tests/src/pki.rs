//! A private CA made in the test (rcgen, ring): the CA certificate as a PEM file for
//! `cloud.ca_file`, and server certificates it signs (for a host name, valid or expired) for
//! `encoder-sim cloud --tls-cert/--tls-key`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A private CA in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, as PEM files.
pub struct ServerCert {
    /// The certificate chain (leaf only).
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl Pki {
    /// A new CA named `name`; its certificate is written to `ca.pem`.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pki.")
            .tempdir()
            .expect("tempdir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");
        Self { dir, ca }
    }

    /// The CA certificate (PEM), for `cloud.ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `host` signed by this CA; `expired`: its validity ended
    /// yesterday. Written as `<file>.crt` and `<file>.key`.
    pub fn server(&self, file: &str, host: &str, expired: bool) -> ServerCert {
        let mut params = CertificateParams::new(vec![host.to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, host);
        let now = time::OffsetDateTime::now_utc();
        if expired {
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        } else {
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(30);
        }
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.ca)
            .expect("server certificate");
        let out = ServerCert {
            cert: self.dir.path().join(format!("{file}.crt")),
            key: self.dir.path().join(format!("{file}.key")),
        };
        std::fs::write(&out.cert, cert.pem()).expect("write cert");
        std::fs::write(&out.key, key.serialize_pem()).expect("write key");
        out
    }

    /// A rustls client configuration trusting only this CA (the tests' HTTPS requests).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        client_config(&self.ca_file())
    }
}

/// A rustls client configuration (ring) trusting only the CA certificates in `ca_file`.
pub fn client_config(ca_file: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).expect("ca file") {
        roots.add(cert.expect("PEM")).expect("CA certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}
