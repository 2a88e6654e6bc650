//! The gateway reaching its processor as on Cloud Run: an `https://` URL with a host name,
//! answered by a front end that terminates TLS for that name (chosen by SNI), negotiates
//! HTTP/2, and forwards h2c to the processor's container. The gateway is the real binary,
//! trusting the system's roots (`SSL_CERT_FILE` stands in for the store where the platform's
//! CA lives) and no `PROCESSOR_TLS_*` at all.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::StatusCode;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use test_support::{Setup, count_by_status, eventually, free_port, tls::TestCa};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use crate::helpers::{seed_webhook, unique_id};

/// The name the processor's service is reached by.
const SERVICE_HOST: &str = "localhost";

/// What the front end saw of each TLS client: the SNI name and the ALPN protocol agreed.
type Handshakes = Arc<Mutex<Vec<(Option<String>, Option<Vec<u8>>)>>>;

/// A TLS front end for `SERVICE_HOST` only, forwarding to `backend` in cleartext.
async fn front_end(ca: &TestCa, backend: SocketAddr) -> (SocketAddr, Handshakes) {
    let files = ca.server("front-end", &[SERVICE_HOST]);
    let chain = CertificateDer::pem_file_iter(&files.cert_file)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&files.key_file).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes: Handshakes = Arc::default();
    let seen = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (config, seen) = (config.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(start) = LazyConfigAcceptor::new(Default::default(), tcp).await else {
                    return;
                };
                let name = start.client_hello().server_name().map(str::to_owned);
                // Like a platform's front end: no service is known without its name.
                if name.as_deref() != Some(SERVICE_HOST) {
                    seen.lock().unwrap().push((name, None));
                    return;
                }
                let Ok(mut tls) = start.into_stream(config).await else {
                    return;
                };
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                seen.lock().unwrap().push((name, alpn));
                let Ok(mut upstream) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    (addr, handshakes)
}

struct Gateway(Child, u16);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The gateway binary, with `SSL_CERT_FILE` as its system roots when given.
async fn gateway(processor_url: &str, system_roots: Option<&std::path::Path>) -> Gateway {
    let port = free_port();
    let mut command = Command::new(crate::helpers::gateway_binary());
    command
        .env_clear()
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("PROCESSOR_URL", processor_url)
        .env("PROCESSOR_TIMEOUT", "5s")
        .env("ALLOW_UNSIGNED_WEBHOOKS", "true")
        .env("ALLOW_UNAUTHENTICATED_READS", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(roots) = system_roots {
        command.env("SSL_CERT_FILE", roots);
    }
    let gateway = Gateway(command.spawn().expect("start the gateway binary"), port);
    let up = eventually(Duration::from_secs(30), || async {
        reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "the gateway binary starts");
    gateway
}

async fn post_webhook(gateway: &Gateway, id: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/v1/webhooks/transactions",
            gateway.1
        ))
        .json(&seed_webhook(id))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reaches_an_https_processor_by_its_host_name_with_the_system_roots() {
    let ca = TestCa::new("the platform's CA");
    let setup = Setup::new("500ms").await;
    let processor = crate::helpers::start_processor(&setup).await;
    let (front, handshakes) = front_end(&ca, processor.addr).await;
    let url = format!("https://{SERVICE_HOST}:{}", front.port());

    let trusting = gateway(&url, Some(&ca.ca_file)).await;
    assert_eq!(
        post_webhook(&trusting, &unique_id("cloudrun")).await,
        StatusCode::ACCEPTED
    );
    let db = setup.database().await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            count_by_status(&db, "PROCESSED").await == 1
        })
        .await,
        "stored and processed through the TLS hop"
    );
    let seen = handshakes.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|(name, alpn)| name.as_deref() == Some(SERVICE_HOST)
                && alpn.as_deref() == Some(b"h2")),
        "the gateway sent the host name as SNI and spoke HTTP/2: {seen:?}"
    );
    drop(trusting);

    // The machine's real roots never signed the front end's certificate: refused, 503.
    let untrusting = gateway(&url, None).await;
    assert_eq!(
        post_webhook(&untrusting, &unique_id("cloudrun")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        count_by_status(&db, "PROCESSED").await + count_by_status(&db, "PROCESSING").await,
        1
    );
    processor.stop().await;
}
