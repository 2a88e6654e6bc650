//! TransactionService over a real channel: status codes, field details, health, reflection.

use fred::prelude::StreamsInterface;
use payments_proto::limits::MAX_ITEMS_PER_CALL;
use payments_proto::v1::{self as pb, GetTransactionRequest, ingest_transaction_result::Outcome};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Setup, StartProcessor, request, unique_id};

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn ingest_then_get_returns_every_field_exactly() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let id = unique_id("txn");

    let ingested = client
        .ingest_transaction(request(&id, "1500.50"))
        .await
        .expect("ingest succeeds")
        .into_inner();
    assert!(ingested.created);

    let stored = client
        .get_transaction(GetTransactionRequest {
            transaction_id: id.clone(),
        })
        .await
        .expect("get succeeds")
        .into_inner();
    assert_eq!(stored.transaction_id, id);
    assert_eq!(stored.source_account, "acc_user_789");
    assert_eq!(stored.destination_account, "acc_merchant_456");
    assert_eq!(stored.amount, "1500.50");
    assert_eq!(stored.currency, "INR");
    assert_eq!(stored.status(), pb::TransactionStatus::Processing);
    assert!(stored.created_at.is_some());
    assert!(stored.processed_at.is_none());
    // The ingest's own answer is the row as created: what was stored, PostgreSQL's times.
    let created = ingested.transaction.expect("the created transaction");
    assert_eq!(
        (
            &created.transaction_id,
            &created.source_account,
            &created.destination_account,
            &created.amount,
            &created.currency,
            created.status(),
            &created.created_at,
            created.attempts,
            &created.last_error,
        ),
        (
            &stored.transaction_id,
            &stored.source_account,
            &stored.destination_account,
            &stored.amount,
            &stored.currency,
            pb::TransactionStatus::Processing,
            &stored.created_at,
            0,
            &String::new(),
        )
    );
    processor.stop().await;
}

#[tokio::test]
async fn repeated_payload_is_not_created_again_and_a_different_one_conflicts() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let id = unique_id("txn");

    assert!(
        client
            .ingest_transaction(request(&id, "1500"))
            .await
            .expect("first")
            .into_inner()
            .created
    );
    // 1500.00 is the same amount as 1500.
    let repeat = client
        .ingest_transaction(request(&id, "1500.00"))
        .await
        .expect("repeat");
    assert!(!repeat.into_inner().created);

    let conflict = client
        .ingest_transaction(request(&id, "1600"))
        .await
        .expect_err("a different amount conflicts");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert_eq!(violated_fields(&conflict), vec!["amount"]);
    assert_eq!(
        setup.entries_ever_added().await,
        1,
        "only the first ingest is published"
    );
    processor.stop().await;
}

#[tokio::test]
async fn invalid_input_is_invalid_argument_with_every_field_named() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;

    let status = client
        .ingest_transaction(pb::IngestTransactionRequest {
            transaction_id: String::new(),
            source_account: "acc 1".to_owned(),
            destination_account: "acc_2".to_owned(),
            amount: "-3".to_owned(),
            currency: "inr".to_owned(),
        })
        .await
        .expect_err("invalid input is rejected");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        vec!["transaction_id", "source_account", "currency", "amount"]
    );
    assert_eq!(setup.entries_ever_added().await, 0);
    processor.stop().await;
}

#[tokio::test]
async fn unknown_transaction_is_not_found() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let status = processor
        .client()
        .await
        .get_transaction(GetTransactionRequest {
            transaction_id: unique_id("missing"),
        })
        .await
        .expect_err("unknown id");
    assert_eq!(status.code(), Code::NotFound);
    processor.stop().await;
}

#[tokio::test]
async fn health_reports_serving_for_the_service() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut health = HealthClient::new(processor.channel().await);
    for service in ["", "payments.v1.TransactionService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health check answers")
            .into_inner();
        assert_eq!(
            response.status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
    processor.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_services_without_proto_files() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut reflection = ServerReflectionClient::new(processor.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a response")
        .expect("not empty");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!(
            "expected a service list, got {:?}",
            response.message_response
        );
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["payments.v1.TransactionService", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    processor.stop().await;
}

fn item(
    transaction: Option<pb::IngestTransactionRequest>,
    request_id: &str,
) -> pb::IngestTransactionItem {
    pb::IngestTransactionItem {
        transaction,
        request_id: request_id.to_owned(),
    }
}

/// An item's answer as the status IngestTransaction would have given.
fn item_status(result: &pb::IngestTransactionResult) -> Result<bool, tonic::Status> {
    match result.outcome.clone().expect("every item has an outcome") {
        Outcome::Ingested(ingested) => Ok(ingested.created),
        Outcome::Error(error) => Err(error.into()),
    }
}

#[tokio::test]
async fn a_batch_answers_each_item_on_its_own_in_order() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let first = unique_id("txn");
    let second = unique_id("txn");
    let mut bad_currency = request(&unique_id("txn"), "10");
    bad_currency.currency = "rupees".to_owned();

    let results = client
        .ingest_transactions(pb::IngestTransactionsRequest {
            items: vec![
                item(Some(request(&first, "1500")), "req-first"),
                item(Some(bad_currency), ""),
                // The same request id as the first: either of the two may be the one
                // stored (they can land in different writers' batches).
                item(Some(request(&first, "1500.00")), "req-first"),
                item(Some(request(&first, "1600")), ""),
                item(None, ""),
                item(Some(request(&second, "7")), "req-second"),
            ],
        })
        .await
        .expect("the call succeeds though items fail")
        .into_inner()
        .results;
    assert_eq!(results.len(), 6, "one result per item");
    let answers: Vec<_> = results.iter().map(item_status).collect();

    // The two equal payloads of `first`: exactly one stored it, the other is its repeat.
    let created: Vec<bool> = [&answers[0], &answers[2]]
        .iter()
        .map(|answer| *answer.as_ref().expect("the same payload is accepted"))
        .collect();
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    let invalid = answers[1].as_ref().expect_err("a bad currency is refused");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(invalid), vec!["currency"]);
    let conflict = answers[3].as_ref().expect_err("another amount conflicts");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert_eq!(violated_fields(conflict), vec!["amount"]);
    let empty = answers[4]
        .as_ref()
        .expect_err("an item without a transaction");
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(violated_fields(empty).contains(&"transaction_id".to_owned()));
    assert_eq!(answers[5].as_ref().ok(), Some(&true));

    // Each stored transaction published once, with its webhook's request id.
    let redis = setup.redis().await;
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = redis
        .xrange_values(setup.stream_key(), "-", "+", None)
        .await
        .expect("XRANGE");
    let mut published: Vec<(String, Option<String>)> = entries
        .into_iter()
        .map(|(_, mut fields)| {
            (
                fields.remove("transaction_id").expect("an id"),
                fields.remove("request_id"),
            )
        })
        .collect();
    published.sort();
    let mut expected = vec![
        (first.clone(), Some("req-first".to_owned())),
        (second.clone(), Some("req-second".to_owned())),
    ];
    expected.sort();
    assert_eq!(published, expected);
    processor.stop().await;
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_whole() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let items = (0..=MAX_ITEMS_PER_CALL)
        .map(|_| item(Some(request(&unique_id("txn"), "1")), ""))
        .collect();

    let status = client
        .ingest_transactions(pb::IngestTransactionsRequest { items })
        .await
        .expect_err("too many items");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["items"]);
    assert_eq!(setup.entries_ever_added().await, 0, "nothing is stored");
    processor.stop().await;
}
