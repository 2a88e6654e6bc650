//! Writers contending in PostgreSQL: two processors storing the same ids in opposite
//! orders (senders retrying while their first try is in flight) must not deadlock, and no
//! deadlock may reach a caller.

use payments_proto::v1::{self as pb, ingest_transaction_result::Outcome};

use crate::helpers::{
    ProcessorProcess, assert_each_accepted_finished_exactly_once, quick_setup, request, settle,
    unique_id,
};

#[tokio::test]
async fn two_writers_with_the_same_ids_in_opposite_orders_never_fail_a_caller() {
    let setup = quick_setup().await;
    let first = ProcessorProcess::start(&setup, "ascending").await;
    let second = ProcessorProcess::start(&setup, "descending").await;
    let (first, second) = (first.client().await, second.client().await);

    let mut accepted = Vec::new();
    for _ in 0..20 {
        let ids: Vec<String> = (0..100).map(|_| unique_id("contended")).collect();
        let items = |ids: Vec<&String>| pb::IngestTransactionsRequest {
            items: ids
                .into_iter()
                .map(|id| pb::IngestTransactionItem {
                    transaction: Some(request(id, "42")),
                    request_id: String::new(),
                })
                .collect(),
        };
        let (mut first, mut second) = (first.clone(), second.clone());
        let (ascending, descending) = tokio::join!(
            first.ingest_transactions(items(ids.iter().collect())),
            second.ingest_transactions(items(ids.iter().rev().collect())),
        );
        for answer in [ascending, descending] {
            for result in answer.expect("the call succeeds").into_inner().results {
                match result.outcome {
                    Some(Outcome::Ingested(_)) => {}
                    other => panic!("an item failed: {other:?}"),
                }
            }
        }
        accepted.extend(ids);
    }

    let db = setup.database().await;
    assert!(settle(&db, std::time::Duration::from_secs(60)).await);
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}
