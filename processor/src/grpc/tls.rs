//! TLS for the gRPC port, from the files `GRPC_TLS_*` name: the server's certificate, and
//! with `GRPC_TLS_CLIENT_CA_FILE` the CA a client's certificate must be signed by (mutual
//! TLS: a client without one is refused during the handshake).

use std::{path::Path, time::Duration};

use anyhow::Context;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::GrpcTls;

/// A peer that has not finished its handshake by then is dropped, so half-open handshakes
/// cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn server_config(tls: &GrpcTls) -> anyhow::Result<ServerTlsConfig> {
    let identity = Identity::from_pem(
        read("GRPC_TLS_CERT_FILE", &tls.cert_file)?,
        read("GRPC_TLS_KEY_FILE", &tls.key_file)?,
    );
    let config = ServerTlsConfig::new()
        .identity(identity)
        .timeout(HANDSHAKE_TIMEOUT);
    Ok(match &tls.client_ca_file {
        Some(file) => config.client_ca_root(Certificate::from_pem(read(
            "GRPC_TLS_CLIENT_CA_FILE",
            file,
        )?)),
        None => config,
    })
}

fn read(name: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {name}={}", path.display()))
}
