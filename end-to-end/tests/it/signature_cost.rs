//! What a signature check may cost is fixed by the configuration, not by the sender: the
//! attack of issue 13 (tens of thousands of candidate signatures beside a large body) is
//! refused at once, and a real webhook sent beside it is served.
#![allow(clippy::expect_used)]

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use hmac::{Hmac, KeyInit, Mac};
use ingest_gateway::signatures::{MAX_ENTRIES, Secrets, Verifier};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;
use tokio::time::{Instant, timeout};

use crate::helpers::{Stack, expect_problem, problem_fields, seed_webhook, unique_id};

const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STRIPE_SECRET: &str = "whsec_signature_cost";
/// Generous on a loaded 2-core machine; the unbounded check took 3.8 s of CPU per request
/// in a release build (far more in this debug build).
const FAST: Duration = Duration::from_secs(5);

fn stripe_signature(body: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(STRIPE_SECRET.as_bytes()).expect("any key");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn verifier() -> Verifier {
    Verifier::new(
        Secrets {
            standard_webhooks: Some(STANDARD_SECRET),
            stripe: Some(STRIPE_SECRET),
            ..Secrets::default()
        },
        Duration::from_secs(300),
    )
    .expect("valid secrets")
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::try_from(*name).expect("name"),
                HeaderValue::try_from(value.as_str()).expect("value"),
            )
        })
        .collect()
}

fn kinds(outcome: Result<(), Vec<ingest_gateway::signatures::Rejection>>) -> Vec<&'static str> {
    outcome
        .err()
        .unwrap_or_default()
        .iter()
        .map(|rejection| rejection.kind())
        .collect()
}

/// 80 000 empty `v1=` candidates and the timestamp: the header of issue 13.
fn stripe_flood(now: i64) -> String {
    format!("t={now},{}", "v1=,".repeat(80_000))
}

/// The same for Standard Webhooks: 80 000 `v1,` entries that cannot be signatures.
fn standard_flood() -> String {
    "v1, ".repeat(80_000)
}

#[test]
fn flooded_headers_are_refused_before_parsing() {
    let now = 1_700_000_000;
    let verifier = verifier();
    let stripe = headers(&[("stripe-signature", stripe_flood(now))]);
    assert_eq!(
        kinds(verifier.verify(&stripe, b"{}", now)),
        ["header_too_large"]
    );
    let standard = headers(&[
        ("webhook-id", "msg_1".to_owned()),
        ("webhook-timestamp", now.to_string()),
        ("webhook-signature", standard_flood()),
    ]);
    assert_eq!(
        kinds(verifier.verify(&standard, b"{}", now)),
        ["header_too_large"]
    );
}

#[test]
fn more_entries_than_the_limit_are_refused_and_junk_candidates_are_dropped() {
    let now = 1_700_000_000;
    let verifier = verifier();
    let body = r#"{"a":1}"#;
    let valid = format!("v1={}", stripe_signature(body, now));
    // The limit, all junk but one: accepted (junk is skipped, not an error).
    let mut entries = vec![format!("t={now}"), valid.clone()];
    entries.extend(
        ["v1=", "v1=zz", "v1=00", "v0=abc", "v1=not-hex-at-all", "x"]
            .iter()
            .map(|junk| (*junk).to_owned()),
    );
    assert_eq!(entries.len(), MAX_ENTRIES);
    let accepted = headers(&[("stripe-signature", entries.join(","))]);
    assert_eq!(verifier.verify(&accepted, body.as_bytes(), now), Ok(()));
    // One more: refused, however valid the signature among them.
    entries.push(valid);
    let refused = headers(&[("stripe-signature", entries.join(","))]);
    let outcome = verifier.verify(&refused, body.as_bytes(), now);
    assert_eq!(kinds(outcome.clone()), ["malformed_header"]);
    assert!(
        outcome
            .err()
            .unwrap_or_default()
            .iter()
            .any(|r| r.to_string().contains("more than 8 entries")),
        "the limit is named"
    );
    // Only candidates that cannot be signatures: malformed, not a mismatch.
    let junk = headers(&[("stripe-signature", format!("t={now},v1=,v1=abcd"))]);
    assert_eq!(
        kinds(verifier.verify(&junk, body.as_bytes(), now)),
        ["malformed_header"]
    );
}

async fn flood_stack() -> Stack {
    Stack::start_with(
        "30s",
        &[
            ("STANDARD_WEBHOOKS_SECRET", STANDARD_SECRET),
            ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
            ("MAX_BODY_BYTES", "65536"),
            // Let the 320 KB heads through to the verifier: this test is about its cost
            // (the server's own head limit is tested in the connection tests).
            ("MAX_HEADER_BYTES", "1048576"),
        ],
    )
    .await
}

/// A 60 KiB JSON body, as in issue 13.
fn large_body() -> String {
    let mut body = seed_webhook(&unique_id("flood"));
    body["padding"] = json!("x".repeat(60 * 1024));
    body.to_string()
}

#[tokio::test]
async fn flooded_signature_headers_are_answered_at_once_while_a_real_webhook_is_served() {
    let stack = flood_stack().await;
    let body = large_body();
    let now = chrono::Utc::now().timestamp();
    let mut attacks = Vec::new();
    for round in 0..4 {
        let request = stack
            .http
            .post(stack.url("/v1/webhooks/transactions"))
            .header("content-type", "application/json")
            .body(body.clone());
        let request = if round % 2 == 0 {
            request.header("stripe-signature", stripe_flood(now))
        } else {
            request
                .header("webhook-id", "msg_flood")
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", standard_flood())
        };
        attacks.push(tokio::spawn(async move {
            let started = Instant::now();
            let response = request.send().await.expect("the gateway answers");
            (response, started.elapsed())
        }));
    }
    let webhook = seed_webhook(&unique_id("beside-flood")).to_string();
    let signed = stack
        .http
        .post(stack.url("/v1/webhooks/transactions"))
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            format!("t={now},v1={}", stripe_signature(&webhook, now)),
        )
        .body(webhook);
    let served = timeout(FAST, signed.send())
        .await
        .expect("the real webhook is answered within 5 s")
        .expect("the gateway answers");
    assert_eq!(served.status(), StatusCode::ACCEPTED);
    for attack in attacks {
        let (response, elapsed) = attack.await.expect("attack task");
        assert!(elapsed < FAST, "a flooded header took {elapsed:?}");
        let problem = expect_problem(response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
        let fields = problem_fields(&problem);
        assert!(
            fields == ["stripe-signature"] || fields == ["webhook-signature"],
            "{problem}"
        );
    }
    assert_eq!(
        stack.setup.entries_ever_added().await,
        1,
        "only the real one"
    );
    stack.stop().await;
}

#[tokio::test]
async fn many_candidates_within_the_size_cap_are_a_401_at_once() {
    let stack = flood_stack().await;
    let body = large_body();
    let now = chrono::Utc::now().timestamp();
    // About 2 000 bytes: under the size cap, far over the entry limit.
    let cases = [
        (
            "stripe-signature",
            vec![(
                "stripe-signature",
                format!("t={now},{}", "v1=,".repeat(495)),
            )],
        ),
        (
            "webhook-signature",
            vec![
                ("webhook-id", "msg_many".to_owned()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", "v1,A ".repeat(400)),
            ],
        ),
    ];
    for (header, headers) in cases {
        let mut request = stack
            .http
            .post(stack.url("/v1/webhooks/transactions"))
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = timeout(FAST, request.send())
            .await
            .expect("answered within 5 s")
            .expect("the gateway answers");
        let problem = expect_problem(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(problem_fields(&problem), vec![header], "{problem}");
        assert!(
            problem.to_string().contains("more than 8 entries"),
            "{problem}"
        );
    }
    assert_eq!(stack.setup.entries_ever_added().await, 0);
    stack.stop().await;
}

#[tokio::test]
async fn a_razorpay_secret_with_a_trailing_newline_verifies() {
    const SECRET: &str = "rzp_secret_from_a_file";
    let stack = Stack::start_with(
        "30s",
        &[("RAZORPAY_WEBHOOK_SECRET", "  rzp_secret_from_a_file\n")],
    )
    .await;
    let body = seed_webhook(&unique_id("rzp-newline")).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(body.as_bytes());
    let response = stack
        .http
        .post(stack.url("/v1/webhooks/transactions"))
        .header("content-type", "application/json")
        .header(
            "x-razorpay-signature",
            hex::encode(mac.finalize().into_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    stack.stop().await;
}

#[tokio::test]
async fn at_the_default_head_limit_a_flooded_header_never_reaches_the_verifier() {
    let stack = Stack::start_with("30s", &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)]).await;
    let now = chrono::Utc::now().timestamp();
    let response = timeout(
        FAST,
        stack
            .http
            .post(stack.url("/v1/webhooks/transactions"))
            .header("content-type", "application/json")
            .header("stripe-signature", stripe_flood(now))
            .body(seed_webhook(&unique_id("head-limit")).to_string())
            .send(),
    )
    .await
    .expect("answered within 5 s");
    // The server refuses the head itself (MAX_HEADER_BYTES, 16 KiB), or resets the
    // connection while the rest of it is still being sent.
    if let Ok(response) = response {
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }
    assert_eq!(stack.setup.entries_ever_added().await, 0);
    stack.stop().await;
}
