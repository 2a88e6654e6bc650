//! The gateway over TLS to the processor: mutual TLS end to end, and every way of getting
//! it wrong refused (503, nothing stored), never quietly plaintext.

use std::time::Duration;

use reqwest::StatusCode;
use test_support::{Setup, tls::TestCa};

use crate::helpers::{
    API_TOKEN, count_by_status, expect_problem, seed_webhook, start_gateway_with, unique_id,
};

fn path(file: &std::path::Path) -> String {
    file.display().to_string()
}

#[tokio::test]
async fn the_gateway_ingests_over_mutual_tls_and_is_refused_without_its_certificate() {
    let ca = TestCa::new("payments test CA");
    let server = ca.server("processor", &["localhost"]);
    let gateway_identity = ca.client("ingest-gateway");
    let mut setup = Setup::new("500ms").await;
    setup
        .set("GRPC_TLS_CERT_FILE", path(&server.cert_file))
        .set("GRPC_TLS_KEY_FILE", path(&server.key_file))
        .set("GRPC_TLS_CLIENT_CA_FILE", path(&ca.ca_file));
    let processor = crate::helpers::start_processor(&setup).await;
    let https_url = format!("https://localhost:{}", processor.addr.port());
    let (ca_file, cert_file, key_file) = (
        path(&ca.ca_file),
        path(&gateway_identity.cert_file),
        path(&gateway_identity.key_file),
    );
    let http = reqwest::Client::new();
    let post = |gateway: std::net::SocketAddr, id: String| {
        http.post(format!("http://{gateway}/v1/webhooks/transactions"))
            .json(&seed_webhook(&id))
            .send()
    };

    let gateway = start_gateway_with(
        &https_url,
        &[
            ("PROCESSOR_TLS_CA_FILE", &ca_file),
            ("PROCESSOR_TLS_CERT_FILE", &cert_file),
            ("PROCESSOR_TLS_KEY_FILE", &key_file),
        ],
    )
    .await;
    let accepted = unique_id("mtls");
    let response = post(gateway.addr, accepted.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let status = http
        .get(format!(
            "http://{}/v1/transactions/{accepted}",
            gateway.addr
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), StatusCode::OK);
    let db = setup.database().await;
    let processed = test_support::eventually(Duration::from_secs(20), || async {
        count_by_status(&db, "PROCESSED").await == 1
    })
    .await;
    assert!(
        processed,
        "the webhook sent over mutual TLS is stored and processed"
    );
    gateway.shutdown.cancel();
    gateway.task.await.unwrap().unwrap();

    let wrong_ways = [
        (
            "no client certificate",
            https_url.clone(),
            vec![("PROCESSOR_TLS_CA_FILE", ca_file.as_str())],
        ),
        (
            "the system's roots, which never signed the processor's certificate",
            https_url.clone(),
            vec![
                ("PROCESSOR_TLS_CERT_FILE", cert_file.as_str()),
                ("PROCESSOR_TLS_KEY_FILE", key_file.as_str()),
            ],
        ),
        (
            "plaintext to a TLS port",
            format!("http://localhost:{}", processor.addr.port()),
            vec![],
        ),
    ];
    for (how, url, settings) in wrong_ways {
        let gateway = start_gateway_with(
            &url,
            &[&[("PROCESSOR_TIMEOUT", "2s")], &settings[..]].concat(),
        )
        .await;
        let refused = post(gateway.addr, unique_id("refused")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "{how}");
        let problem = expect_problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(problem["detail"].is_string(), "{how}: {problem}");
        gateway.shutdown.cancel();
        gateway.task.await.unwrap().unwrap();
    }
    assert_eq!(
        count_by_status(&db, "PROCESSING").await + count_by_status(&db, "PROCESSED").await,
        1,
        "only the mutual-TLS webhook was stored"
    );
    processor.stop().await;
}
