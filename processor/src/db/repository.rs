//! The queries, as plain async functions over any connection (pool or transaction).
//!
//! A transaction's processing is guarded by a lease on its row: a consumer claims it
//! (`claim_many`) before the external call and may finish it only while it holds the
//! lease, so two consumers never work on one transaction at once. A lease lives as long
//! as its holder's registration (`db::consumers`), which the holder's heartbeat renews:
//! a live holder keeps its leases however long a call takes, a dead one's lapse with it.
//! Every call is recorded in `processing_attempts` when it starts, finished in place.
//!
//! A holder writes only while its registration is still its own (the `mine` condition:
//! its name's row in `consumers` carries its instance): a process paused past its
//! registration, whose name another process has taken since (a restart under the same
//! name), would otherwise write as the new holder, or give up the new holder's leases.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryResult, RuntimeErr,
    Statement, Value,
    sqlx::{self, Row},
};

use super::{
    consumers::Registration,
    entity::{self, Entity as Transactions},
};
use crate::domain::NewTransaction;

pub use entity::Model as StoredTransaction;

/// Inserts every transaction whose id does not exist yet, in one statement; returns the
/// rows it created. Ids must be distinct within the call.
///
/// Only what PostgreSQL chose comes back (the id and the three times); the rest of each
/// created row is what was inserted, so it is not decoded again: decoding a whole row per
/// webhook was a tenth of the processor's instructions (BENCHMARKS.md, issue 19).
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
                    (transaction_id, source_account, destination_account, amount, currency,
                     status, attempts, republish_at)
             SELECT id, source, destination, amount::numeric, currency, $7, 0,
                    now() + $6 * interval '1 millisecond'
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                    AS t(id, source, destination, amount, currency)
             ON CONFLICT (transaction_id) DO NOTHING
             RETURNING transaction_id, created_at, updated_at, republish_at",
            [
                column(|t| t.transaction_id.to_string()),
                column(|t| t.source_account.to_string()),
                column(|t| t.destination_account.to_string()),
                // As text: NUMERIC parses it exactly.
                column(|t| t.amount.value().to_string()),
                column(|t| t.currency.code().to_owned()),
                millis(republish_after),
                NEW_STATUS.into(),
            ],
        ))
        .await?;
    let inserted: HashMap<&str, &NewTransaction> = transactions
        .iter()
        .map(|t| (t.transaction_id.as_str(), *t))
        .collect();
    rows.iter()
        .map(|row| created_transaction(row, &inserted))
        .collect()
}

/// The status a transaction is created with.
const NEW_STATUS: &str = "PROCESSING";

/// A created row from what `insert_many_if_absent` inserted and the four columns it returns.
fn created_transaction(
    row: &QueryResult,
    inserted: &HashMap<&str, &NewTransaction>,
) -> Result<StoredTransaction, DbErr> {
    let transaction_id: String = row.try_get_by_index(0)?;
    let Some(new) = inserted.get(transaction_id.as_str()) else {
        return Err(DbErr::Custom(format!(
            "the insert returned {transaction_id}, which it was not given"
        )));
    };
    Ok(StoredTransaction {
        source_account: new.source_account.to_string(),
        destination_account: new.destination_account.to_string(),
        amount: new.amount.value(),
        currency: new.currency.code().to_owned(),
        status: NEW_STATUS.to_owned(),
        attempts: 0,
        last_error: None,
        created_at: row.try_get_by_index(1)?,
        updated_at: row.try_get_by_index(2)?,
        processed_at: None,
        lease_owner: None,
        lease_expires_at: None,
        republish_at: row.try_get_by_index(3)?,
        transaction_id,
    })
}

/// A row of the fourteen columns in the order `find_many` and `claim_many` return them,
/// read by position. sea-orm's `FromQueryResult` looks every column up by
/// name and formats an error text for each NULL it reads (then discards it as `None`):
/// a tenth of the processor's instructions per webhook (BENCHMARKS.md, issue 19).
fn stored_transaction(row: &QueryResult) -> Result<StoredTransaction, DbErr> {
    let Some(row) = row.try_as_pg_row() else {
        return StoredTransaction::from_query_result(row, "");
    };
    let decoded = (|| -> Result<StoredTransaction, sqlx::Error> {
        Ok(StoredTransaction {
            transaction_id: row.try_get(0)?,
            source_account: row.try_get(1)?,
            destination_account: row.try_get(2)?,
            amount: row.try_get(3)?,
            currency: row.try_get(4)?,
            status: row.try_get(5)?,
            attempts: row.try_get(6)?,
            last_error: row.try_get(7)?,
            created_at: row.try_get(8)?,
            updated_at: row.try_get(9)?,
            processed_at: row.try_get(10)?,
            lease_owner: row.try_get(11)?,
            lease_expires_at: row.try_get(12)?,
            republish_at: row.try_get(13)?,
        })
    })();
    decoded.map_err(|error| DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(error))))
}

/// The stored transactions among `transaction_ids`.
pub async fn find_many(
    db: &impl ConnectionTrait,
    transaction_ids: &[String],
) -> Result<Vec<StoredTransaction>, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "SELECT transaction_id, source_account, destination_account, amount, currency,
                    status, attempts, last_error, created_at, updated_at, processed_at,
                    lease_owner, lease_expires_at, republish_at
               FROM transactions WHERE transaction_id = ANY($1::text[])",
            [transaction_ids.to_vec().into()],
        ))
        .await?;
    rows.iter().map(stored_transaction).collect()
}

pub async fn find(
    db: &impl ConnectionTrait,
    transaction_id: &str,
) -> Result<Option<StoredTransaction>, DbErr> {
    Transactions::find_by_id(transaction_id.to_owned())
        .one(db)
        .await
}

/// A claimed transaction, and how many earlier calls for it were cut (a crash, a stop
/// grace): the call about to be made repeats them, with the same idempotency key.
#[derive(Debug)]
pub struct Claimed {
    pub transaction: StoredTransaction,
    pub cut_calls: u32,
}

/// Claims PROCESSING transactions for `holder`, counting one more attempt each and
/// recording the call about to start (`CALLING`), in one statement. A claim succeeds when
/// nobody holds a live lease: no owner, an owner whose registration has expired, or
/// `holder`'s name itself (after a restart under the same name; two live processes never
/// share one). Calls still `CALLING` from an earlier holder were cut: they become `INTERRUPTED`.
///
/// `(status = 'PROCESSING') IS TRUE` is the same test as `status = 'PROCESSING'`, written
/// so that no status index qualifies: only the primary key may drive these statements.
/// After a burst of ingests the statistics lag, and the planner would otherwise AND in a
/// bitmap of every PROCESSING row (dead ones too), hundreds of thousands per batch.
pub async fn claim_many(
    db: &impl ConnectionTrait,
    transaction_ids: &[String],
    holder: &Registration,
) -> Result<Vec<Claimed>, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "WITH claimed AS (
                 UPDATE transactions t
                    SET attempts = attempts + 1, lease_owner = $2, lease_expires_at = NULL,
                        updated_at = now()
                  WHERE transaction_id = ANY($1::text[]) AND (status = 'PROCESSING') IS TRUE
                    AND (lease_owner IS NULL OR lease_owner = $2 OR NOT EXISTS (
                         SELECT 1 FROM consumers c
                          WHERE c.name = t.lease_owner AND c.expires_at > now()))
                    AND EXISTS (SELECT 1 FROM consumers mine
                                 WHERE mine.name = $2 AND mine.instance = $3)
              RETURNING t.transaction_id, t.source_account, t.destination_account, t.amount,
                        t.currency, t.status, t.attempts, t.last_error, t.created_at,
                        t.updated_at, t.processed_at, t.lease_owner, t.lease_expires_at,
                        t.republish_at),
             cut AS (
                 UPDATE processing_attempts a
                    SET outcome = 'INTERRUPTED', finished_at = now()
                   FROM claimed
                  WHERE a.transaction_id = claimed.transaction_id AND a.outcome = 'CALLING'
              RETURNING a.transaction_id),
             started AS (
                 INSERT INTO processing_attempts (transaction_id, attempt, consumer, started_at, outcome)
                 SELECT transaction_id, attempts, $2, now(), 'CALLING' FROM claimed)
             SELECT claimed.*,
                    (SELECT count(*) FROM cut WHERE cut.transaction_id = claimed.transaction_id)
                        AS cut_calls
               FROM claimed",
            [
                transaction_ids.to_vec().into(),
                holder.name.as_str().into(),
                holder.instance.as_str().into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                // `claimed.*` is stored_transaction's fourteen columns, in its order.
                transaction: stored_transaction(row)?,
                cut_calls: u32::try_from(row.try_get::<i64>("", "cut_calls")?).unwrap_or_default(),
            })
        })
        .collect()
}

/// The transactions among `transaction_ids` that `holder` still holds.
pub async fn held_by(
    db: &impl ConnectionTrait,
    transaction_ids: &[String],
    holder: &Registration,
) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "SELECT transaction_id FROM transactions
              WHERE transaction_id = ANY($1::text[]) AND (status = 'PROCESSING') IS TRUE
                AND lease_owner = $2
                AND EXISTS (SELECT 1 FROM consumers mine
                             WHERE mine.name = $2 AND mine.instance = $3)",
            [
                transaction_ids.to_vec().into(),
                holder.name.as_str().into(),
                holder.instance.as_str().into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "transaction_id"))
        .collect()
}

/// PROCESSING → PROCESSED for each `(id, attempt)` whose lease `holder` still holds,
/// finishing the attempts' records, in one statement. Returns the ids recorded (the
/// others had lost their lease to another consumer). The status test is written as in
/// `claim_many`, for the same reason.
pub async fn record_successes(
    db: &impl ConnectionTrait,
    holder: &Registration,
    records: &[(String, u32)],
) -> Result<Vec<String>, DbErr> {
    let ids: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
    let attempts: Vec<i32> = records
        .iter()
        .map(|(_, attempt)| i32::try_from(*attempt).unwrap_or(i32::MAX))
        .collect();
    let rows = db
        .query_all_raw(statement(
            "WITH input AS (
                 SELECT * FROM unnest($1::text[], $2::int[]) AS i(id, attempt)),
             done AS (
                 UPDATE transactions t
                    SET status = 'PROCESSED', processed_at = now(), updated_at = now(),
                        lease_owner = NULL, lease_expires_at = NULL
                   FROM input
                  WHERE t.transaction_id = input.id AND (t.status = 'PROCESSING') IS TRUE
                    AND t.lease_owner = $3
                    AND EXISTS (SELECT 1 FROM consumers mine
                                 WHERE mine.name = $3 AND mine.instance = $4)
              RETURNING t.transaction_id, input.attempt),
             finished AS (
                 UPDATE processing_attempts a
                    SET outcome = 'SUCCEEDED', finished_at = now()
                   FROM done
                  WHERE a.transaction_id = done.transaction_id AND a.attempt = done.attempt
                    AND a.outcome = 'CALLING')
             SELECT transaction_id FROM done",
            [
                ids.into(),
                attempts.into(),
                holder.name.as_str().into(),
                holder.instance.as_str().into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "transaction_id"))
        .collect()
}

/// One attempt's result, as recorded.
pub struct AttemptRecord<'a> {
    pub transaction_id: &'a str,
    pub holder: &'a Registration,
    pub attempt: u32,
}

/// Records a failed attempt. When `last` is true the transaction becomes FAILED and its
/// lease is given up; otherwise `holder` keeps it through the backoff. Returns false when
/// the lease was lost.
pub async fn record_failure(
    db: &impl ConnectionTrait,
    record: &AttemptRecord<'_>,
    error: &str,
    last: bool,
) -> Result<bool, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "WITH changed AS (
                 UPDATE transactions
                    SET last_error = $4, updated_at = now(),
                        status = CASE WHEN $5 THEN 'FAILED' ELSE status END,
                        processed_at = CASE WHEN $5 THEN now() ELSE processed_at END,
                        lease_owner = CASE WHEN $5 THEN NULL ELSE lease_owner END
                  WHERE transaction_id = $1 AND status = 'PROCESSING' AND lease_owner = $2
                    AND EXISTS (SELECT 1 FROM consumers mine
                                 WHERE mine.name = $2 AND mine.instance = $6)
              RETURNING transaction_id),
             finished AS (
                 UPDATE processing_attempts a
                    SET outcome = 'FAILED', error = $4, finished_at = now()
                   FROM changed
                  WHERE a.transaction_id = changed.transaction_id AND a.attempt = $3
                    AND a.outcome = 'CALLING')
             SELECT transaction_id FROM changed",
            [
                record.transaction_id.into(),
                record.holder.name.as_str().into(),
                i64::from(record.attempt).into(),
                error.into(),
                last.into(),
                record.holder.instance.as_str().into(),
            ],
        ))
        .await?;
    Ok(rows.len() == 1)
}

/// Gives up `holder`'s leases (a consumer shutting down), so others may take over now
/// rather than when the leases expire. Nothing, when another process has its name now.
pub async fn release_leases(
    db: &impl ConnectionTrait,
    holder: &Registration,
) -> Result<u64, DbErr> {
    let result = db
        .execute_raw(statement(
            "UPDATE transactions SET lease_owner = NULL, lease_expires_at = NULL
              WHERE lease_owner = $1 AND status = 'PROCESSING'
                AND EXISTS (SELECT 1 FROM consumers mine
                             WHERE mine.name = $1 AND mine.instance = $2)",
            [holder.name.as_str().into(), holder.instance.as_str().into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// Takes up to `limit` unfinished transactions that no live consumer holds and whose `republish_at`
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
                    SELECT transaction_id FROM transactions t
                     WHERE status = 'PROCESSING' AND republish_at < $1
                       AND (lease_owner IS NULL OR NOT EXISTS (
                            SELECT 1 FROM consumers c
                             WHERE c.name = t.lease_owner AND c.expires_at > now()))
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

pub(super) fn statement<const N: usize>(sql: &str, values: [Value; N]) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

pub(super) fn millis(duration: Duration) -> Value {
    (duration.as_secs_f64() * 1_000.0).into()
}
