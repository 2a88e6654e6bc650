//! Taking over the database of the Python service this one replaces (FastAPI, SQLAlchemy,
//! RQ): its `transactions` table becomes ours in place, every row kept.
//!
//! The first migration runs this when it finds that table (so the processor at start,
//! `migration up` and a release phase all do the same), inside the migration's
//! transaction: either every row is converted and the table is exactly the one a fresh
//! database gets, or nothing changes. Rows that no rule converts (an amount finer than
//! its currency, not positive, an unknown currency or status) are reported by id and stop
//! it, until a person has fixed them in the Python service's table.
//!
//! What each row becomes: `amount` per [`amount`]'s rule; the statuses are the same
//! three; `created_at` NULL becomes `processed_at`, or the adoption time if that is NULL
//! too; a finished row without `processed_at` gets its `created_at`; `updated_at` is the
//! last of those times; `attempts` is 0 (this service has not tried it); a FAILED row's
//! `last_error` says it failed in the Python service. `id` goes: `transaction_id` is the
//! primary key. A PROCESSING row is then processed once by this service, like any other.

pub mod amount;
pub mod shape;

use std::fmt::Write as _;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbErr, Statement, Value};

use crate::minor_unit;
use amount::Unconvertible;
pub use shape::{Found, inspect};

/// Rows read per round trip while converting.
const PAGE: i64 = 5_000;
/// Offending rows named in the report; the count says how many more there are.
const REPORTED_ROWS: usize = 200;
/// `last_error` of a row that had FAILED before adoption.
pub const FAILED_BEFORE_ADOPTION: &str = "FAILED in the Python service, before adoption";

/// One row that stops adoption, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offending {
    pub id: i64,
    pub transaction_id: String,
    pub problem: String,
}

/// Converts the Python service's `transactions` table into this service's, whose
/// `CREATE` statements are `create_table`. Call inside a transaction: on an error part of
/// the work may have run, and only the rollback undoes it.
pub async fn adopt(db: &impl ConnectionTrait, create_table: &str) -> Result<u64, DbErr> {
    // Nobody writes (a Python worker left running) between the check and the copy.
    db.execute_unprepared("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        .await?;
    db.execute_unprepared(
        "CREATE TEMPORARY TABLE adopted_amounts (id BIGINT PRIMARY KEY, amount NUMERIC NOT NULL)",
    )
    .await?;
    let (offending, total) = convert_amounts(db).await?;
    if !offending.is_empty() {
        return Err(DbErr::Migration(report(&offending, total)));
    }
    db.execute_unprepared(
        "CREATE TEMPORARY TABLE python_service_rows AS
             SELECT t.transaction_id, t.source_account, t.destination_account, a.amount,
                    t.currency, t.status, t.created_at, t.processed_at
               FROM transactions t JOIN adopted_amounts a ON a.id = t.id;
         DROP TABLE transactions;",
    )
    .await?;
    db.execute_unprepared(create_table).await?;
    let adopted = db
        .execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO transactions
                    (transaction_id, source_account, destination_account, amount, currency,
                     status, attempts, last_error, created_at, updated_at, processed_at)
             SELECT transaction_id, source_account, destination_account, amount, currency,
                    status, 0, CASE WHEN status = 'FAILED' THEN $1 END,
                    COALESCE(created_at, processed_at, now()),
                    COALESCE(processed_at, created_at, now()),
                    CASE WHEN status <> 'PROCESSING' THEN COALESCE(processed_at, created_at, now()) END
               FROM python_service_rows",
            [FAILED_BEFORE_ADOPTION.into()],
        ))
        .await?
        .rows_affected();
    db.execute_unprepared("DROP TABLE python_service_rows, adopted_amounts")
        .await?;
    if adopted != total {
        return Err(DbErr::Migration(format!(
            "adopting the Python service's transactions: {total} rows read but {adopted} copied"
        )));
    }
    Ok(adopted)
}

/// Reads every row, checks it, and stores the exact amount of each convertible one in
/// `adopted_amounts`. Returns the rows that stop adoption and how many rows there are.
async fn convert_amounts(db: &impl ConnectionTrait) -> Result<(Vec<Offending>, u64), DbErr> {
    let backend = db.get_database_backend();
    let mut offending = Vec::new();
    let mut total = 0_u64;
    let mut after = i64::MIN;
    loop {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                "SELECT id::bigint AS id, transaction_id::text AS transaction_id, amount,
                        currency::text AS currency, status::text AS status,
                        processed_at IS NOT NULL AS processed
                   FROM transactions WHERE id > $1 ORDER BY id LIMIT $2",
                [after.into(), PAGE.into()],
            ))
            .await?;
        let Some(last) = rows.last() else {
            return Ok((offending, total));
        };
        after = last.try_get("", "id")?;
        total += rows.len() as u64;
        let mut ids = Vec::with_capacity(rows.len());
        let mut amounts = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("", "id")?;
            let amount: f64 = row.try_get("", "amount")?;
            let currency: String = row.try_get("", "currency")?;
            let status: String = row.try_get("", "status")?;
            let processed: bool = row.try_get("", "processed")?;
            match check(amount, &currency, &status, processed) {
                Ok(exact) => {
                    ids.push(id);
                    amounts.push(exact);
                }
                Err(problem) => offending.push(Offending {
                    id,
                    transaction_id: row.try_get("", "transaction_id")?,
                    problem,
                }),
            }
        }
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO adopted_amounts (id, amount)
             SELECT id, amount::numeric FROM unnest($1::bigint[], $2::text[]) AS a(id, amount)",
            [Value::from(ids), Value::from(amounts)],
        ))
        .await?;
    }
}

/// The row's exact amount as text, or what keeps it from being adopted.
fn check(amount: f64, currency: &str, status: &str, processed: bool) -> Result<String, String> {
    let mut problems = Vec::new();
    match status {
        "PROCESSING" if processed => {
            problems.push("status is PROCESSING but processed_at is set".to_owned());
        }
        "PROCESSING" | "PROCESSED" | "FAILED" => {}
        other => problems.push(format!(
            "status {other:?} is not PROCESSING, PROCESSED or FAILED"
        )),
    }
    let exact = match iso_currency::Currency::from_code(currency) {
        None => {
            problems.push(format!(
                "currency {currency:?} is not an ISO 4217 code in upper case"
            ));
            None
        }
        Some(iso) => {
            let places = minor_unit::decimal_places(iso);
            match amount::exact_amount(amount, places) {
                Ok(exact) => Some(exact.to_string()),
                Err(reason) => {
                    problems.push(match reason {
                        Unconvertible::NotANumber => format!("amount {amount} is not a number"),
                        Unconvertible::NotPositive => {
                            format!("amount {amount} is not greater than 0")
                        }
                        Unconvertible::TooPrecise => format!(
                            "amount {amount} has more decimal places than {currency} allows ({places})"
                        ),
                        Unconvertible::TooLarge => format!("amount {amount} is too large"),
                    });
                    None
                }
            }
        }
    };
    match exact {
        Some(exact) if problems.is_empty() => Ok(exact),
        _ => Err(problems.join("; ")),
    }
}

/// The error that stops adoption: every offending row by id (up to a bound), and what to do.
fn report(offending: &[Offending], total: u64) -> String {
    let mut text = format!(
        "cannot adopt the Python service's table \"transactions\": {} of its {total} rows \
         have values this service cannot keep exactly. Nothing was changed.\n",
        offending.len()
    );
    for row in offending.iter().take(REPORTED_ROWS) {
        let _ = writeln!(
            text,
            "  - id {} (transaction_id {:?}): {}",
            row.id, row.transaction_id, row.problem
        );
    }
    if offending.len() > REPORTED_ROWS {
        let _ = writeln!(
            text,
            "  - and {} more rows",
            offending.len() - REPORTED_ROWS
        );
    }
    text.push_str(
        "Correct these rows in the Python service's table (for example \
         UPDATE transactions SET amount = 10.12 WHERE id = ...), then start again: adoption \
         runs again from the start, in one transaction.",
    );
    text
}

/// The error for a `transactions` table that is neither absent nor the Python service's.
pub fn refusal(differences: &[String]) -> DbErr {
    let mut text = String::from(
        "the database already has a table \"transactions\" that this service did not \
         create, and it is not the Python payment-webhooks service's table either \
         (README: \"Replacing the Python service\"):\n",
    );
    for difference in differences {
        let _ = writeln!(text, "  - {difference}");
    }
    text.push_str(
        "Nothing was changed. Either point DATABASE_URL at an empty database (this service \
         creates its tables there), or, if this is the Python service's database, bring \
         the table back to the shape its SQLAlchemy model creates and start again: the \
         first migration then adopts it in place.",
    );
    DbErr::Migration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_a_bounded_number_of_rows_and_counts_the_rest() {
        let offending: Vec<Offending> = (1..=REPORTED_ROWS as i64 + 5)
            .map(|id| Offending {
                id,
                transaction_id: format!("txn_{id}"),
                problem: "amount 1.5 has more decimal places than JPY allows (0)".to_owned(),
            })
            .collect();
        let text = report(&offending, 1_000);
        assert!(text.contains("205 of its 1000 rows"), "{text}");
        assert!(text.contains("  - id 200 (transaction_id \"txn_200\"): amount 1.5"));
        assert!(!text.contains("txn_201"));
        assert!(text.contains("  - and 5 more rows"));
    }

    #[test]
    fn every_problem_of_a_row_is_named() {
        assert_eq!(
            check(0.1 + 0.2, "INR", "PROCESSED", true),
            Ok("0.30".to_owned())
        );
        assert_eq!(
            check(1.5, "JPY", "PROCESSING", true),
            Err("status is PROCESSING but processed_at is set; \
                 amount 1.5 has more decimal places than JPY allows (0)"
                .to_owned())
        );
        assert_eq!(
            check(10.0, "RUPEE", "done", false),
            Err("status \"done\" is not PROCESSING, PROCESSED or FAILED; \
                 currency \"RUPEE\" is not an ISO 4217 code in upper case"
                .to_owned())
        );
    }
}
