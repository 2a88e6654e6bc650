//! Who may read what: every read route needs one of `API_TOKENS`, the admin routes
//! `ADMIN_TOKEN`; the webhook (signed), `GET /` and the readiness probe stay open.

use reqwest::StatusCode;

use crate::helpers::{API_TOKEN, Stack, expect_problem, seed_webhook, unique_id};

const ROTATED_TOKEN: &str = "rotated-api-token-abcdefghijklmnopqrstuv";
const ADMIN_TOKEN: &str = "access-admin-token-0123456789";

#[tokio::test]
async fn reads_need_one_of_the_api_tokens() {
    let stack = Stack::start_with(
        "30s",
        &[
            ("API_TOKENS", &format!("{API_TOKEN},{ROTATED_TOKEN}")),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    let anonymous = reqwest::Client::new();
    let id = unique_id("access");
    // The webhook needs no token.
    let accepted = anonymous
        .post(stack.url("/v1/webhooks/transactions"))
        .json(&seed_webhook(&id))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);

    let reads = [
        format!("/v1/transactions/{id}"),
        "/v1/transactions".to_owned(),
        "/v1/transactions?status=PROCESSING".to_owned(),
        "/v1/transactions/no-such-id".to_owned(),
    ];
    for path in &reads {
        for authorization in [
            None,
            Some("Bearer wrong-token-of-the-right-length-0123456".to_owned()),
            Some(format!("Basic {API_TOKEN}")),
            Some(format!("Bearer {ADMIN_TOKEN}")),
            Some(format!("Bearer {}", &API_TOKEN[1..])),
        ] {
            let mut request = anonymous.get(stack.url(path));
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{path} {authorization:?}"
            );
            let problem = expect_problem(response, StatusCode::UNAUTHORIZED).await;
            assert!(
                !problem.to_string().contains(API_TOKEN),
                "a token echoed: {problem}"
            );
        }
        for token in [API_TOKEN, ROTATED_TOKEN] {
            let response = anonymous
                .get(stack.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let expected = if path.ends_with("no-such-id") {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            assert_eq!(response.status(), expected, "{path} with a valid token");
        }
    }
    let transaction: serde_json::Value = anonymous
        .get(stack.url(&format!("/v1/transactions/{id}")))
        .bearer_auth(ROTATED_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(transaction["transaction_id"], id.as_str());

    // Liveness, readiness and the document stay open.
    for path in ["/", "/readyz", "/openapi.json"] {
        let response = anonymous.get(stack.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_read_token_cannot_retry() {
    let stack = Stack::start_with("30s", &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let id = unique_id("access-retry");
    assert_eq!(
        stack.post_webhook(&seed_webhook(&id)).await.status(),
        StatusCode::ACCEPTED
    );
    let retry = reqwest::Client::new()
        .post(stack.url(&format!("/v1/transactions/{id}/retry")))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(retry, StatusCode::UNAUTHORIZED).await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("ADMIN_TOKEN")),
        "{problem}"
    );
    // The admin token reaches the route (409: the transaction is not FAILED).
    let retry = reqwest::Client::new()
        .post(stack.url(&format!("/v1/transactions/{id}/retry")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CONFLICT);
    stack.stop().await;
}

#[tokio::test]
async fn with_reads_stated_open_no_token_is_needed() {
    let stack = Stack::start_with(
        "30s",
        &[("API_TOKENS", ""), ("ALLOW_UNAUTHENTICATED_READS", "true")],
    )
    .await;
    let response = reqwest::Client::new()
        .get(stack.url("/v1/transactions"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    stack.stop().await;
}
