//! SPEC's guarantees, read from PostgreSQL: what each test ends by checking.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::eventually;

/// Rows per status in the test's database.
pub async fn count_by_status(db: &DatabaseConnection, status: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM transactions WHERE status = $1",
            [status.into()],
        ))
        .await
        .expect("count query")
        .expect("one row");
    row.try_get::<i64>("", "n").expect("count")
}

/// How many attempts at `transaction_id` succeeded (rows of `processing_attempts`).
pub async fn successful_attempts(db: &DatabaseConnection, transaction_id: &str) -> i64 {
    db.query_one_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT count(*) AS n FROM processing_attempts
          WHERE transaction_id = $1 AND outcome = 'SUCCEEDED'",
        [transaction_id.into()],
    ))
    .await
    .expect("attempts query")
    .expect("one row")
    .try_get("", "n")
    .expect("count")
}

/// SPEC's guarantee, checked once everything has settled: every accepted id is stored and
/// finished (PROCESSED or FAILED), each PROCESSED one has exactly one successful attempt,
/// and no other row appeared.
pub async fn assert_each_accepted_finished_exactly_once(
    db: &DatabaseConnection,
    accepted: &[String],
) {
    let rows = db
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT t.transaction_id, t.status,
                    (SELECT count(*) FROM processing_attempts a
                      WHERE a.transaction_id = t.transaction_id AND a.outcome = 'SUCCEEDED') AS successes
               FROM transactions t",
        ))
        .await
        .expect("invariant query");
    let mut stored = std::collections::HashMap::new();
    for row in &rows {
        let id: String = row.try_get("", "transaction_id").expect("id");
        let status: String = row.try_get("", "status").expect("status");
        let successes: i64 = row.try_get("", "successes").expect("successes");
        stored.insert(id, (status, successes));
    }
    for id in accepted {
        let Some((status, successes)) = stored.get(id) else {
            panic!("accepted transaction {id} is not in PostgreSQL");
        };
        match status.as_str() {
            "PROCESSED" => assert_eq!(*successes, 1, "{id} succeeded {successes} times"),
            "FAILED" => assert_eq!(*successes, 0, "{id} is FAILED but has a success"),
            other => panic!("{id} is still {other}"),
        }
    }
    assert_eq!(
        stored.len(),
        accepted.len(),
        "rows appeared that were never accepted"
    );
}

/// Polls until no row is PROCESSING, up to `limit`; returns whether that happened.
pub async fn settle(db: &DatabaseConnection, limit: Duration) -> bool {
    eventually(limit, || async {
        count_by_status(db, "PROCESSING").await == 0
    })
    .await
}
