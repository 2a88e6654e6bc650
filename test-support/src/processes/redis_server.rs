//! A redis-server of the test's own.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::free_port;
use crate::{eventually, tls};

/// A redis-server of the test's own, without persistence, on a free port.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// Set: the server speaks TLS only, with this certificate.
    tls: Option<RedisServerTls>,
}

struct RedisServerTls {
    certificate: tls::CertFiles,
    ca_file: PathBuf,
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            tls: None,
        };
        server.restart().await;
        server
    }

    /// A server that speaks TLS only (`--port 0 --tls-port`), with a certificate `ca`
    /// signed for 127.0.0.1 and localhost; clients need no certificate.
    pub async fn start_tls(ca: &tls::TestCa) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            tls: Some(RedisServerTls {
                certificate: ca.server("redis", &["127.0.0.1", "localhost"]),
                ca_file: ca.ca_file.clone(),
            }),
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// A client configuration that trusts this server (its CA, when it speaks TLS).
    fn client_config(&self) -> fred::prelude::Config {
        let ca_file = self
            .tls
            .as_ref()
            .map(|server_tls| server_tls.ca_file.as_path());
        tls::redis_client_config(&self.url(), ca_file)
    }

    /// Stops the server abruptly; its data is gone (no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut args = vec!["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let (cert, key, ca);
        match &self.tls {
            None => args.extend(["--port", &port]),
            Some(server_tls) => {
                (cert, key, ca) = (
                    server_tls.certificate.cert_file.display().to_string(),
                    server_tls.certificate.key_file.display().to_string(),
                    server_tls.ca_file.display().to_string(),
                );
                args.extend(["--port", "0", "--tls-port", &port]);
                args.extend(["--tls-cert-file", &cert, "--tls-key-file", &key]);
                args.extend(["--tls-ca-cert-file", &ca, "--tls-auth-clients", "no"]);
            }
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let config = self.client_config();
        let up = eventually(Duration::from_secs(10), || async {
            let client = fred::prelude::Client::new(config.clone(), None, None, None);
            fred::prelude::ClientLike::init(&client).await.is_ok()
        })
        .await;
        assert!(up, "redis-server did not start on port {}", self.port);
    }

    /// FLUSHALL: Redis loses every key while the processor runs.
    pub async fn flush_all(&self) {
        let status = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "FLUSHALL"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
