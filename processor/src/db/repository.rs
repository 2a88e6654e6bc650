//! The queries, as plain async functions over any connection (pool or transaction).
//!
//! A transaction's processing is guarded by a lease on its row: a consumer claims it
//! (`claim`) before the external call and may finish it only while it holds the lease,
//! so two consumers never work on one transaction at once, and a dead consumer's claim
//! simply expires. Every finished attempt is recorded in `processing_attempts`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, Statement, Value};

use super::entity::{self, Entity as Transactions};
use crate::domain::NewTransaction;

pub use entity::Model as StoredTransaction;

/// Inserts every transaction whose id does not exist yet, in one statement; returns the
/// rows it created. Ids must be distinct within the call.
pub async fn insert_many_if_absent(
    db: &impl ConnectionTrait,
    transactions: &[&NewTransaction],
    republish_after: Duration,
) -> Result<Vec<StoredTransaction>, DbErr> {
    let column = |field: fn(&NewTransaction) -> String| -> Value {
        transactions
            .iter()
            .map(|t| field(t))
            .collect::<Vec<String>>()
            .into()
    };
    let rows = db
        .query_all_raw(statement(
            "INSERT INTO transactions
                    (transaction_id, source_account, destination_account, amount, currency, republish_at)
             SELECT id, source, destination, amount::numeric, currency,
                    now() + $6 * interval '1 millisecond'
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                    AS t(id, source, destination, amount, currency)
             ON CONFLICT (transaction_id) DO NOTHING
             RETURNING *",
            [
                column(|t| t.transaction_id.to_string()),
                column(|t| t.source_account.to_string()),
                column(|t| t.destination_account.to_string()),
                // As text: NUMERIC parses it exactly.
                column(|t| t.amount.value().to_string()),
                column(|t| t.currency.code().to_owned()),
                millis(republish_after),
            ],
        ))
        .await?;
    rows.iter()
        .map(|row| StoredTransaction::from_query_result(row, ""))
        .collect()
}

/// The stored transactions among `transaction_ids`.
pub async fn find_many(
    db: &impl ConnectionTrait,
    transaction_ids: &[String],
) -> Result<Vec<StoredTransaction>, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "SELECT * FROM transactions WHERE transaction_id = ANY($1::text[])",
            [transaction_ids.to_vec().into()],
        ))
        .await?;
    rows.iter()
        .map(|row| StoredTransaction::from_query_result(row, ""))
        .collect()
}

pub async fn find(
    db: &impl ConnectionTrait,
    transaction_id: &str,
) -> Result<Option<StoredTransaction>, DbErr> {
    Transactions::find_by_id(transaction_id.to_owned())
        .one(db)
        .await
}

/// Claims PROCESSING transactions for `owner` for `lease`, counting one more attempt
/// each, in one statement. A claim succeeds when nobody holds a live lease (or `owner`
/// itself does, as after a restart under the same consumer name). Returns the rows
/// claimed, `attempts` counting this one.
///
/// `(status = 'PROCESSING') IS TRUE` is the same test as `status = 'PROCESSING'`, written
/// so that no status index qualifies: only the primary key may drive these statements.
/// After a burst of ingests the statistics lag, and the planner would otherwise AND in a
/// bitmap of every PROCESSING row (dead ones too), hundreds of thousands per batch.
pub async fn claim_many(
    db: &impl ConnectionTrait,
    transaction_ids: &[String],
    owner: &str,
    lease: Duration,
) -> Result<Vec<StoredTransaction>, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "UPDATE transactions
                SET attempts = attempts + 1, lease_owner = $2,
                    lease_expires_at = now() + $3 * interval '1 millisecond', updated_at = now()
              WHERE transaction_id = ANY($1::text[]) AND (status = 'PROCESSING') IS TRUE
                AND (lease_expires_at IS NULL OR lease_expires_at < now() OR lease_owner = $2)
          RETURNING *",
            [transaction_ids.to_vec().into(), owner.into(), millis(lease)],
        ))
        .await?;
    rows.iter()
        .map(|row| StoredTransaction::from_query_result(row, ""))
        .collect()
}

/// PROCESSING → PROCESSED for each `(id, attempt, started_at)` whose lease `owner` still
/// holds, recording the attempts, in one statement. Returns the ids recorded (the others
/// had lost their lease to another consumer). The status test is written as in
/// `claim_many`, for the same reason.
pub async fn record_successes(
    db: &impl ConnectionTrait,
    owner: &str,
    records: &[(String, u32, DateTime<Utc>)],
) -> Result<Vec<String>, DbErr> {
    let ids: Vec<String> = records.iter().map(|(id, _, _)| id.clone()).collect();
    let attempts: Vec<i32> = records
        .iter()
        .map(|(_, attempt, _)| i32::try_from(*attempt).unwrap_or(i32::MAX))
        .collect();
    let started: Vec<String> = records
        .iter()
        .map(|(_, _, started_at)| started_at.to_rfc3339())
        .collect();
    let rows = db
        .query_all_raw(statement(
            "WITH input AS (
                 SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS i(id, attempt, started_at)),
             done AS (
                 UPDATE transactions t
                    SET status = 'PROCESSED', processed_at = now(), updated_at = now(),
                        lease_owner = NULL, lease_expires_at = NULL
                   FROM input
                  WHERE t.transaction_id = input.id AND (t.status = 'PROCESSING') IS TRUE
                    AND t.lease_owner = $4
              RETURNING t.transaction_id, input.attempt, input.started_at)
             INSERT INTO processing_attempts (transaction_id, attempt, consumer, started_at, outcome)
             SELECT transaction_id, attempt, $4, started_at::timestamptz, 'SUCCEEDED' FROM done
             RETURNING transaction_id",
            [ids.into(), attempts.into(), started.into(), owner.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "transaction_id"))
        .collect()
}

/// One attempt's result, as recorded.
pub struct AttemptRecord<'a> {
    pub transaction_id: &'a str,
    pub owner: &'a str,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
}

/// Records a failed attempt. When `last` is true the transaction becomes FAILED;
/// otherwise the lease is extended by `retry_lease` to cover the backoff and the next
/// attempt. Returns false when the lease was lost.
pub async fn record_failure(
    db: &impl ConnectionTrait,
    record: &AttemptRecord<'_>,
    error: &str,
    last: bool,
    retry_lease: Duration,
) -> Result<bool, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "WITH changed AS (
                 UPDATE transactions
                    SET last_error = $5, updated_at = now(),
                        status = CASE WHEN $6 THEN 'FAILED' ELSE status END,
                        processed_at = CASE WHEN $6 THEN now() ELSE processed_at END,
                        lease_owner = CASE WHEN $6 THEN NULL ELSE lease_owner END,
                        lease_expires_at = CASE WHEN $6 THEN NULL
                                           ELSE now() + $7 * interval '1 millisecond' END
                  WHERE transaction_id = $1 AND status = 'PROCESSING' AND lease_owner = $2
              RETURNING transaction_id)
             INSERT INTO processing_attempts (transaction_id, attempt, consumer, started_at, outcome, error)
             SELECT transaction_id, $3, $2, $4, 'FAILED', $5 FROM changed
             RETURNING id",
            [
                record.transaction_id.into(),
                record.owner.into(),
                i64::from(record.attempt).into(),
                record.started_at.into(),
                error.into(),
                last.into(),
                millis(retry_lease),
            ],
        ))
        .await?;
    Ok(rows.len() == 1)
}

/// Gives up `owner`'s leases (a consumer shutting down), so others may take over now
/// rather than when the leases expire.
pub async fn release_leases(db: &impl ConnectionTrait, owner: &str) -> Result<u64, DbErr> {
    let result = db
        .execute_raw(statement(
            "UPDATE transactions SET lease_owner = NULL, lease_expires_at = NULL
              WHERE lease_owner = $1 AND status = 'PROCESSING'",
            [owner.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// Takes up to `limit` unfinished transactions that nobody holds and whose `republish_at`
/// is before `cutoff`, and moves their `republish_at` to `republish_after` from now.
/// `SKIP LOCKED`: replicas reconciling at once take different rows.
pub async fn take_due_for_publication(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    republish_after: Duration,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "UPDATE transactions
                SET republish_at = now() + $2 * interval '1 millisecond'
              WHERE transaction_id IN (
                    SELECT transaction_id FROM transactions
                     WHERE status = 'PROCESSING' AND republish_at < $1
                       AND (lease_expires_at IS NULL OR lease_expires_at < now())
                     ORDER BY republish_at
                     LIMIT $3
                       FOR UPDATE SKIP LOCKED)
          RETURNING transaction_id",
            [
                cutoff.into(),
                millis(republish_after),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "transaction_id"))
        .collect()
}

/// FAILED → PROCESSING again, attempts starting over. `None` if it is not FAILED.
pub async fn redrive_failed(
    db: &impl ConnectionTrait,
    transaction_id: &str,
    republish_after: Duration,
) -> Result<bool, DbErr> {
    let result = db
        .execute_raw(statement(
            "UPDATE transactions
                SET status = 'PROCESSING', processed_at = NULL, attempts = 0,
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
                    republish_at = now() + $2 * interval '1 millisecond'
              WHERE transaction_id = $1 AND status = 'FAILED'",
            [transaction_id.into(), millis(republish_after)],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// What one retention batch removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub transactions: u64,
    pub attempts: u64,
}

/// Deletes up to `limit` finished (PROCESSED or FAILED) transactions that were created and
/// finished more than `age` ago, with their attempt records, in one short statement.
/// `SKIP LOCKED`: a row being changed (re-driven, say) is left for a later batch, and
/// replicas running retention at once take different rows. A PROCESSING row is never
/// touched, however old. The status index `(status, created_at, transaction_id)` finds the
/// candidates, oldest first.
pub async fn delete_finished_older_than(
    db: &impl ConnectionTrait,
    age: Duration,
    limit: u64,
) -> Result<Removed, DbErr> {
    let row = db
        .query_one_raw(statement(
            "WITH doomed AS (
                 SELECT transaction_id FROM transactions
                  WHERE status IN ('PROCESSED', 'FAILED')
                    AND created_at < now() - $1 * interval '1 millisecond'
                    AND processed_at < now() - $1 * interval '1 millisecond'
                  LIMIT $2
                    FOR UPDATE SKIP LOCKED),
             attempts AS (
                 DELETE FROM processing_attempts a USING doomed
                  WHERE a.transaction_id = doomed.transaction_id
              RETURNING 1),
             removed AS (
                 DELETE FROM transactions t USING doomed
                  WHERE t.transaction_id = doomed.transaction_id
              RETURNING 1)
             SELECT (SELECT count(*) FROM removed) AS transactions,
                    (SELECT count(*) FROM attempts) AS attempts",
            [millis(age), i64::try_from(limit).unwrap_or(i64::MAX).into()],
        ))
        .await?;
    let count = |column: &str| -> Result<u64, DbErr> {
        match &row {
            Some(row) => Ok(u64::try_from(row.try_get::<i64>("", column)?).unwrap_or_default()),
            None => Ok(0),
        }
    };
    Ok(Removed {
        transactions: count("transactions")?,
        attempts: count("attempts")?,
    })
}

fn statement<const N: usize>(sql: &str, values: [Value; N]) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn millis(duration: Duration) -> Value {
    (duration.as_secs_f64() * 1_000.0).into()
}
