//! TransactionService over a real channel: status codes, field details, health, reflection.

use payments_proto::v1::{self as pb, GetTransactionRequest};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Setup, request, unique_id};

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
