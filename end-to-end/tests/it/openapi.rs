//! `GET /openapi.json`: generated from the routes, so it lists what the gateway serves.
#![allow(clippy::expect_used)]

use serde_json::Value;

use crate::helpers::{RunningGateway, start_gateway_with};

#[tokio::test]
async fn the_document_lists_the_routes_and_the_problem_schema() {
    // No processor is needed to serve the document.
    let RunningGateway {
        addr,
        shutdown,
        task: gateway,
        ..
    } = start_gateway_with("http://127.0.0.1:9", &[]).await;
    let response = reqwest::get(format!("http://{addr}/openapi.json"))
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.expect("JSON");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );

    let paths = &document["paths"];
    assert!(paths["/"]["get"].is_object(), "{paths}");
    let webhook = &paths["/v1/webhooks/transactions"]["post"];
    assert!(webhook.is_object(), "{paths}");
    assert!(
        paths["/v1/transactions/{transaction_id}"]["get"].is_object(),
        "{paths}"
    );
    for status in ["202", "400", "401", "409", "413", "415", "422", "503"] {
        assert!(
            webhook["responses"][status].is_object(),
            "webhook lacks {status}"
        );
    }
    assert!(
        webhook["responses"]["401"]["content"]["application/problem+json"].is_object(),
        "{webhook}"
    );
    // Every 503 carries Retry-After, and says so.
    for (path, method) in [
        ("/v1/webhooks/transactions", "post"),
        ("/v1/transactions/{transaction_id}", "get"),
        ("/v1/transactions", "get"),
        ("/v1/transactions/{transaction_id}/retry", "post"),
    ] {
        assert!(
            paths[path][method]["responses"]["503"]["headers"]["Retry-After"].is_object(),
            "{method} {path} does not document Retry-After on 503"
        );
    }

    let schemas = &document["components"]["schemas"];
    let problem = &schemas["Problem"];
    for member in ["type", "title", "status", "detail", "errors", "request_id"] {
        assert!(
            problem["properties"][member].is_object(),
            "Problem lacks {member}: {problem}"
        );
    }
    for member in [
        "transaction_id",
        "source_account",
        "destination_account",
        "amount",
        "currency",
    ] {
        assert!(
            schemas["WebhookPayload"]["properties"][member].is_object(),
            "WebhookPayload lacks {member}"
        );
    }
    // The contract's limits, as payments_proto states them.
    use payments_proto::limits::{ID_PATTERN, MAX_ID_LENGTH, MAX_PAGE_SIZE};
    let id_schemas = [
        &schemas["WebhookPayload"]["properties"]["transaction_id"],
        &schemas["WebhookPayload"]["properties"]["source_account"],
        &paths["/v1/transactions/{transaction_id}"]["get"]["parameters"][0]["schema"],
        &paths["/v1/transactions/{transaction_id}/retry"]["post"]["parameters"][0]["schema"],
    ];
    for schema in id_schemas {
        assert_eq!(schema["pattern"], ID_PATTERN, "{schema}");
        assert_eq!(schema["maxLength"], MAX_ID_LENGTH, "{schema}");
        assert_eq!(schema["minLength"], 1, "{schema}");
    }
    let page_size = paths["/v1/transactions"]["get"]["parameters"]
        .as_array()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == "page_size"))
        .expect("page_size is documented");
    assert_eq!(page_size["schema"]["maximum"], MAX_PAGE_SIZE, "{page_size}");
    assert_eq!(page_size["required"], false, "{page_size}");

    shutdown.cancel();
    gateway.await.expect("task").expect("gateway stops");
}
