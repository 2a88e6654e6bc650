//! The real binary refuses a setting that does not parse, before it listens.
// A test binary: a call that fails panics, and that is the failure report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

#[test]
fn an_invalid_rust_log_stops_start_up_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_ingest-gateway"))
        .env_clear()
        .env("RUST_LOG", "info,ingest_gateway=loud")
        .output()
        .expect("run the gateway binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("RUST_LOG=\"info,ingest_gateway=loud\""),
        "{stderr}"
    );
}

/// The real binary, with only `env` set.
fn start_up_failure(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ingest-gateway"))
        .env_clear()
        .envs(env.iter().copied())
        // Nothing may listen: the checks come first. Ports 0 anyway, in case one did.
        .env("HTTP_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .output()
        .expect("run the gateway binary");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn without_a_signature_secret_the_gateway_refuses_to_start_naming_the_variables() {
    let (code, stderr) = start_up_failure(&[("ALLOW_UNAUTHENTICATED_READS", "true")]);
    assert_eq!(code, Some(2), "{stderr}");
    for name in [
        "RAZORPAY_WEBHOOK_SECRET",
        "STANDARD_WEBHOOKS_SECRET",
        "STRIPE_WEBHOOK_SECRET",
        "ALLOW_UNSIGNED_WEBHOOKS",
    ] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }
}

#[test]
fn without_api_tokens_the_gateway_refuses_to_start_naming_the_variables() {
    let (code, stderr) = start_up_failure(&[("STRIPE_WEBHOOK_SECRET", "whsec_startup")]);
    assert_eq!(code, Some(2), "{stderr}");
    for name in ["API_TOKENS", "ALLOW_UNAUTHENTICATED_READS"] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }
}
