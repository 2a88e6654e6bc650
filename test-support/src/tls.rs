//! Certificates made by the tests themselves: a CA of the test's own, and server and
//! client certificates it signs, written as PEM files the binaries' `*_FILE` settings name.

use std::{net::SocketAddr, path::PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A CA of this test's own; its files live in a directory removed on drop.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    directory: PathBuf,
    pub ca_file: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let directory =
            std::env::temp_dir().join(format!("pw-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&directory).expect("certificate directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        let ca_file = directory.join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).expect("write the CA");
        Self {
            issuer,
            directory,
            ca_file,
        }
    }

    /// A server certificate for these names (DNS names, or IP addresses such as
    /// `127.0.0.1`).
    pub fn server(&self, file_name: &str, names: &[&str]) -> CertFiles {
        self.issue(file_name, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (for mutual TLS) with this common name.
    pub fn client(&self, common_name: &str) -> CertFiles {
        self.issue(common_name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, file_name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> CertFiles {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, file_name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the certificate");
        let files = CertFiles {
            cert_file: self.directory.join(format!("{file_name}.pem")),
            key_file: self.directory.join(format!("{file_name}.key")),
        };
        std::fs::write(&files.cert_file, cert.pem()).expect("write the certificate");
        std::fs::write(&files.key_file, key.serialize_pem()).expect("write the key");
        files
    }

    /// The directory the files are written to.
    pub fn directory(&self) -> &std::path::Path {
        &self.directory
    }

    /// A gRPC channel to a TLS server at `addr` whose certificate this CA signed for
    /// `server_name`, presenting `identity` when given.
    pub async fn channel(
        &self,
        addr: SocketAddr,
        server_name: &str,
        identity: Option<&CertFiles>,
    ) -> Channel {
        let read = |path: &PathBuf| std::fs::read(path).expect("read a certificate file");
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca_file)))
            .domain_name(server_name);
        if let Some(identity) = identity {
            tls = tls.identity(Identity::from_pem(
                read(&identity.cert_file),
                read(&identity.key_file),
            ));
        }
        Endpoint::from_shared(format!("https://{addr}"))
            .expect("endpoint")
            .tls_config(tls)
            .expect("TLS configuration")
            .connect()
            .await
            .expect("connect over TLS")
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// A Redis client configuration for `url` that trusts `ca_file` (when the URL is
/// `rediss://`; the system's roots are never consulted: test servers use a test CA).
pub fn redis_client_config(url: &str, ca_file: Option<&std::path::Path>) -> fred::prelude::Config {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut config = fred::prelude::Config::from_url(url).expect("a Redis URL");
    if config.tls.is_some() {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(file) = ca_file {
            for certificate in CertificateDer::pem_file_iter(file).expect("the test CA file") {
                roots
                    .add(certificate.expect("a PEM certificate"))
                    .expect("a usable CA");
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.tls = Some(fred::types::config::TlsConnector::from(client).into());
    }
    config
}
