//! Contention in PostgreSQL: two processors storing the same ids in opposite orders
//! (senders retrying while their first try is in flight) must not deadlock, and no
//! deadlock may reach a caller; a table lock that stalls every write for seconds must not
//! make a webhook wait past its deadline.

use std::time::Duration;

use payments_proto::v1::{self as pb, ingest_transaction_result::Outcome};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::{
    helpers::{
        ProcessorProcess, assert_each_accepted_finished_exactly_once, quick_setup, request, settle,
        unique_id,
    },
    senders::{self, Gateway, Senders, assert_only_accepted_or_unavailable},
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
    assert!(settle(&db, Duration::from_secs(60)).await);
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}

#[tokio::test]
async fn a_table_locked_for_3_s_under_load_is_answered_within_the_deadline_never_500() {
    let setup = quick_setup().await;
    let processor = ProcessorProcess::start(&setup, "locked").await;
    // REQUEST_TIMEOUT far above PROCESSOR_TIMEOUT: what bounds each answer here is the
    // deadline budget (queueing for a call slot included), not the request's backstop.
    // Without the budget, a webhook queued behind stuck calls took about twice
    // PROCESSOR_TIMEOUT (2.8 s here).
    let processor_timeout = Duration::from_millis(1500);
    let gateway = Gateway::start(
        &processor.url(),
        &[("PROCESSOR_TIMEOUT", "1500ms"), ("REQUEST_TIMEOUT", "10s")],
    )
    .await;
    let flow = |prefix: &'static str, concurrency: usize, sending_for: Duration| {
        let url = gateway.webhooks_url();
        tokio::spawn(async move {
            let load = Senders {
                concurrency,
                sending_for,
                retry_pause: Duration::from_millis(200),
                give_up_after: Duration::from_secs(30),
            };
            senders::send(&url, prefix, load).await
        })
    };
    let db = setup.database().await;
    let lock = db.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock the table");
    // One webhook after another, so that each goes out in a call of its own and every call
    // slot of the gateway holds a call stuck behind the lock ...
    let mut flows = Vec::new();
    for _ in 0..4 {
        flows.push(flow("occupying", 1, Duration::from_millis(1)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... then a crowd that must wait in the gateway for a slot: that wait counts against
    // each webhook's deadline.
    flows.push(flow("arriving", 16, Duration::from_millis(1500)));
    tokio::time::sleep(Duration::from_millis(2800)).await;
    lock.rollback().await.expect("release the lock");
    let mut deliveries = Vec::new();
    for flow in flows {
        deliveries.extend(flow.await.expect("senders"));
    }

    let accepted = assert_only_accepted_or_unavailable(&deliveries);
    let (unavailable, slowest) = senders::unavailable_count_and_slowest(&deliveries);
    assert!(unavailable > 0, "the stall was felt by some webhook");
    assert!(
        slowest < processor_timeout + processor_timeout / 2,
        "an answer took {slowest:?}, past PROCESSOR_TIMEOUT ({processor_timeout:?}) and half of it again"
    );
    assert!(settle(&db, Duration::from_secs(60)).await);
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}
