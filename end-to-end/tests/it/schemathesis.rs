//! schemathesis (PyPI) against the running gateway: requests generated from the gateway's own
//! `/openapi.json`, valid and invalid, and every answer held to that document. The document
//! is generated from the handlers, so this holds the handlers to what they declare.

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::Value;
use test_support::Setup;

use crate::helpers::{API_TOKEN, Stack, unique_id};

const ADMIN_TOKEN: &str = "schemathesis-admin-token-0123456789";
/// The id in the document's examples (webhook body and path parameters). It is made to fail
/// processing, so the examples reach the admin retry's 202 and the status route's 200.
const EXAMPLE_ID: &str = "txn_abc123def456";

/// What the run checks: every check of the pinned version that applies to this document,
/// but one. Left out, and why:
/// - `positive_data_acceptance`: the document cannot say everything the processor checks,
///   so some requests valid by the schema are rightly rejected with 422: `currency` must be
///   a real ISO 4217 code (the schema says three capital letters), `amount` may have no more
///   decimals than that currency has (`5e-324` INR is a valid schema number), and a list's
///   `page_token` must be one the service returned.
/// - `missing_required_header`: the document declares no required header (the signature
///   headers are optional: no secret is set here), so it tests nothing. `use_after_free` and
///   `object_level_authorization`: nothing is deleted, and there is one caller.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
unsupported_method,allow_header_conformance,ensure_resource_availability,ignored_auth";

/// The schemathesis CLI: `SCHEMATHESIS` (scripts/test.sh sets it), else `schemathesis` or
/// `st` on the PATH.
fn schemathesis() -> String {
    let candidates = match std::env::var("SCHEMATHESIS") {
        Ok(path) => vec![path],
        Err(_) => vec!["schemathesis".to_owned(), "st".to_owned()],
    };
    candidates
        .into_iter()
        .find(|program| {
            Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|output| output.status.success())
        })
        .expect(
            "schemathesis not found: scripts/test.sh installs it \
             (pip install schemathesis==<the version pinned there>), or set SCHEMATHESIS",
        )
}

// Multi-threaded: schemathesis runs as a child process while the stack serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_answer_outside_the_document() {
    let program = schemathesis();
    let mut setup = Setup::new("100ms").await;
    setup
        .set("SIMULATED_FAILURE_ID_PREFIX", EXAMPLE_ID)
        .set("MAX_ATTEMPTS", "1");
    // Signatures off (no secret set): generated webhooks cannot be signed.
    // The admin token is also a read token: schemathesis sends one Authorization header
    // (this test's own client sends API_TOKEN).
    let read_tokens = format!("{API_TOKEN},{ADMIN_TOKEN}");
    let stack = Stack::start_with_setup(
        setup,
        &[("ADMIN_TOKEN", ADMIN_TOKEN), ("API_TOKENS", &read_tokens)],
    )
    .await;

    // The document's own example webhook, stored and FAILED before the run starts.
    let document: Value = stack
        .http
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("the document is JSON");
    let example = &document["components"]["schemas"]["WebhookPayload"]["example"];
    assert_eq!(example["transaction_id"], EXAMPLE_ID, "{example}");
    assert_eq!(
        stack.post_webhook(example).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        stack
            .wait_until_finished(EXAMPLE_ID, Duration::from_secs(20))
            .await["status"],
        "FAILED"
    );

    let schema_url = stack.url("/openapi.json");
    let authorization = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let args: Vec<String> = [
        "run",
        schema_url.as_str(),
        "--checks",
        CHECKS,
        // Reproducible (with the version scripts/test.sh pins) and bounded.
        "--seed",
        "20251031",
        "--max-examples",
        "150",
        "--generation-database",
        "none",
        "--header",
        authorization.as_str(),
        // Generous: a debug build on a loaded 2-core machine.
        "--request-timeout",
        "20",
        "--no-color",
        "--output-truncate",
        "false",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let command_line = args.join(" ");
    // A directory of its own: no config file of the caller's is picked up, and its caches
    // (hypothesis data, earlier failures it would replay first) neither leak in nor stay.
    let workdir = std::env::temp_dir().join(unique_id("schemathesis"));
    std::fs::create_dir_all(&workdir).expect("a working directory");
    let started = Instant::now();
    let output: Output = tokio::task::spawn_blocking({
        let workdir = workdir.clone();
        move || {
            Command::new(&program)
                .args(&args)
                .current_dir(workdir)
                .output()
                .expect("run schemathesis")
        }
    })
    .await
    .expect("schemathesis task");
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&workdir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis {command_line} ({elapsed:.0?}): {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // Shown with --nocapture, or when a later step fails.
    eprintln!("schemathesis passed in {elapsed:.0?}\n{stdout}");
    stack.stop().await;
}
