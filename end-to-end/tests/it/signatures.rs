//! Webhook signatures: the verifiers against signatures made by the providers' own
//! libraries (tests/fixtures/signature_fixtures.json, written by make_signature_fixtures.py),
//! then through the running gateway.
#![allow(clippy::expect_used)]

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use ingest_gateway::signatures::{Secrets, Verifier};
use reqwest::StatusCode;
use serde::Deserialize;
use sha2::Sha256;

use crate::helpers::{Stack, expect_problem, problem_fields, seed_webhook, unique_id};

const FIXTURES: &str = include_str!("../fixtures/signature_fixtures.json");

#[derive(Deserialize)]
struct Fixtures {
    tolerance_seconds: u64,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    config: Config,
    headers: std::collections::BTreeMap<String, String>,
    body: String,
    now: i64,
    expect: String,
}

#[derive(Deserialize)]
struct Config {
    razorpay: Option<String>,
    standard_webhooks: Option<String>,
    stripe: Option<String>,
}

#[test]
fn the_providers_own_signatures_verify_and_every_fault_is_named() {
    let fixtures: Fixtures = serde_json::from_str(FIXTURES).expect("fixture JSON");
    assert!(fixtures.cases.len() > 30, "the fixture file lost its cases");
    for case in fixtures.cases {
        let verifier = Verifier::new(
            Secrets {
                razorpay: case.config.razorpay.as_deref(),
                standard_webhooks: case.config.standard_webhooks.as_deref(),
                stripe: case.config.stripe.as_deref(),
            },
            Duration::from_secs(fixtures.tolerance_seconds),
        )
        .expect("fixture secrets are valid");
        let mut headers = HeaderMap::new();
        for (name, value) in &case.headers {
            headers.insert(
                HeaderName::try_from(name.as_str()).expect("header name"),
                HeaderValue::try_from(value.as_str()).expect("header value"),
            );
        }
        let outcome = verifier.verify(&headers, case.body.as_bytes(), case.now);
        match (case.expect.as_str(), outcome) {
            ("ok", Ok(())) => {}
            ("ok", Err(rejections)) => panic!("{}: rejected {rejections:?}", case.name),
            (expected, Ok(())) => panic!("{}: accepted, expected {expected}", case.name),
            (expected, Err(rejections)) => {
                assert!(!rejections.is_empty(), "{}", case.name);
                for rejection in &rejections {
                    assert_eq!(rejection.kind(), expected, "{}: {rejections:?}", case.name);
                    let message = rejection.to_string();
                    for secret in [
                        &case.config.razorpay,
                        &case.config.standard_webhooks,
                        &case.config.stripe,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        assert!(
                            !message.contains(secret.as_str()),
                            "{}: secret in {message}",
                            case.name
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn no_secret_means_no_check() {
    let verifier = Verifier::new(Secrets::default(), Duration::from_secs(300)).expect("valid");
    assert_eq!(verifier.verify(&HeaderMap::new(), b"{}", 0), Ok(()));
    let blank = Verifier::new(
        Secrets {
            razorpay: Some("  "),
            ..Secrets::default()
        },
        Duration::from_secs(300),
    )
    .expect("valid");
    assert!(blank.schemes().is_empty(), "a blank secret is unset");
}

const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STRIPE_SECRET: &str = "whsec_end_to_end_stripe";
const RAZORPAY_SECRET: &str = "rzp_end_to_end";

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn stripe_header(body: &str, timestamp: i64) -> String {
    let signature = hmac_sha256(
        STRIPE_SECRET.as_bytes(),
        format!("{timestamp}.{body}").as_bytes(),
    );
    format!("t={timestamp},v1={}", hex::encode(signature))
}

async fn post_signed(stack: &Stack, body: &str, headers: &[(&str, String)]) -> reqwest::Response {
    let mut request = stack
        .http
        .post(stack.url("/v1/webhooks/transactions"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("the gateway answers")
}

async fn signed_stack() -> Stack {
    Stack::start_with(
        "30s",
        &[
            ("STANDARD_WEBHOOKS_SECRET", STANDARD_SECRET),
            ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
            ("RAZORPAY_WEBHOOK_SECRET", RAZORPAY_SECRET),
        ],
    )
    .await
}

#[tokio::test]
async fn unsigned_tampered_or_stale_webhooks_are_401_and_store_nothing() {
    let stack = signed_stack().await;
    let id = unique_id("sig");
    let body = seed_webhook(&id).to_string();

    let problem = expect_problem(
        post_signed(&stack, &body, &[]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        problem_fields(&problem),
        vec![
            "x-razorpay-signature",
            "webhook-signature",
            "stripe-signature"
        ],
        "{problem}"
    );
    let text = problem.to_string();
    for secret in [STANDARD_SECRET, STRIPE_SECRET, RAZORPAY_SECRET] {
        assert!(!text.contains(secret), "secret echoed: {text}");
    }

    let tampered = body.replace("1500", "9500");
    let problem = expect_problem(
        post_signed(
            &stack,
            &tampered,
            &[("stripe-signature", stripe_header(&body, now()))],
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(problem_fields(&problem), vec!["stripe-signature"]);
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("matches")),
        "{problem}"
    );

    let stale = stripe_header(&body, now() - 600);
    let problem = expect_problem(
        post_signed(&stack, &body, &[("stripe-signature", stale)]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("tolerance")),
        "{problem}"
    );

    let malformed = expect_problem(
        post_signed(&stack, &body, &[("x-razorpay-signature", "zz".to_owned())]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(
        malformed["errors"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("malformed")),
        "{malformed}"
    );

    assert_eq!(
        stack.get_transaction(&id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(stack.setup.entries_ever_added().await, 0);
    stack.stop().await;
}

#[tokio::test]
async fn a_valid_signature_under_any_configured_scheme_is_accepted() {
    let stack = signed_stack().await;

    let body = seed_webhook(&unique_id("stripe")).to_string();
    let response = post_signed(
        &stack,
        &body,
        &[("stripe-signature", stripe_header(&body, now()))],
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let body = seed_webhook(&unique_id("razorpay")).to_string();
    let signature = hex::encode(hmac_sha256(RAZORPAY_SECRET.as_bytes(), body.as_bytes()));
    let response = post_signed(&stack, &body, &[("x-razorpay-signature", signature)]).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let body = seed_webhook(&unique_id("standard")).to_string();
    let key = base64::engine::general_purpose::STANDARD
        .decode(STANDARD_SECRET.trim_start_matches("whsec_"))
        .expect("base64 key");
    let (message_id, timestamp) = ("msg_e2e_1", now().to_string());
    let signature = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
        &key,
        format!("{message_id}.{timestamp}.{body}").as_bytes(),
    ));
    let response = post_signed(
        &stack,
        &body,
        &[
            ("webhook-id", message_id.to_owned()),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", format!("v1,{signature}")),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(stack.setup.entries_ever_added().await, 3);
    stack.stop().await;
}
