//! TLS for a `rediss://` `REDIS_URL`: the server's certificate verified against
//! `REDIS_TLS_CA_FILE`, else the system's roots, or not at all with
//! `REDIS_TLS_SKIP_VERIFY=true` (managed Redis with self-signed certificates, such as
//! Heroku's: the connection is still encrypted, but anyone who can intercept it can pose as
//! the server and read or change the stream).

use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, ring},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};

use crate::config::RedisTls;

pub fn client_config(tls: &RedisTls) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("no TLS protocol version for Redis")?;
    let config = if tls.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(tls)?)
    };
    Ok(config.with_no_client_auth())
}

fn roots(tls: &RedisTls) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(file) => {
            for certificate in CertificateDer::pem_file_iter(file)
                .with_context(|| format!("cannot read REDIS_TLS_CA_FILE={}", file.display()))?
            {
                roots
                    .add(certificate.with_context(|| {
                        format!("REDIS_TLS_CA_FILE={} is not PEM", file.display())
                    })?)
                    .with_context(|| {
                        format!("REDIS_TLS_CA_FILE={} holds an unusable CA", file.display())
                    })?;
            }
            if roots.is_empty() {
                bail!("REDIS_TLS_CA_FILE={} holds no certificate", file.display());
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                bail!(
                    "no system root certificates to verify the rediss:// REDIS_URL: install them (ca-certificates) or set REDIS_TLS_CA_FILE"
                );
            }
        }
    }
    Ok(roots)
}

/// Accepts any certificate (`REDIS_TLS_SKIP_VERIFY`), but still checks that the server
/// holds the key of the certificate it sent, so the session is encrypted to that key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
