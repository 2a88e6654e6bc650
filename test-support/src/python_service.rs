//! The Python service's database, for adoption tests: its table exactly as its SQLAlchemy
//! model creates it, rows written as it wrote them (the amount a float), and ways to see
//! whether a database changed.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};

/// `Base.metadata.create_all()` of the Python service, as PostgreSQL received it.
pub const SCHEMA: &str = "
CREATE TABLE transactions (
    id SERIAL NOT NULL,
    transaction_id VARCHAR NOT NULL,
    source_account VARCHAR NOT NULL,
    destination_account VARCHAR NOT NULL,
    amount FLOAT NOT NULL,
    currency VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now(),
    processed_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id)
);
CREATE INDEX ix_transactions_id ON transactions (id);
CREATE UNIQUE INDEX ix_transactions_transaction_id ON transactions (transaction_id);
";

pub const SOURCE_ACCOUNT: &str = "acc_user_789";
pub const DESTINATION_ACCOUNT: &str = "acc_merchant_456";

/// One row as the Python service stored it.
#[derive(Clone, Debug)]
pub struct OldRow {
    pub transaction_id: String,
    pub amount: f64,
    pub currency: &'static str,
    pub status: &'static str,
    pub created_at: Option<DateTime<Utc>>,
    pub processed_at: Option<DateTime<Utc>>,
}

impl OldRow {
    /// A row in `status`, created at `created_at` and, unless PROCESSING, processed 30 s
    /// later (the Python worker's delay).
    pub fn new(
        transaction_id: impl Into<String>,
        amount: f64,
        currency: &'static str,
        status: &'static str,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            transaction_id: transaction_id.into(),
            amount,
            currency,
            status,
            created_at: Some(created_at),
            processed_at: (status == "PROCESSED")
                .then(|| created_at + chrono::Duration::seconds(30)),
        }
    }
}

/// Creates the Python service's table in the database at `database_url` and writes `rows`.
pub async fn create(database_url: &str, rows: &[OldRow]) -> DatabaseConnection {
    let db = sea_orm::Database::connect(database_url)
        .await
        .expect("connect to the test database");
    db.execute_unprepared(SCHEMA)
        .await
        .expect("the Python service's schema");
    for row in rows {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO transactions
                    (transaction_id, source_account, destination_account, amount, currency,
                     status, created_at, processed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                row.transaction_id.clone().into(),
                SOURCE_ACCOUNT.into(),
                DESTINATION_ACCOUNT.into(),
                Value::Double(Some(row.amount)),
                row.currency.into(),
                row.status.into(),
                row.created_at.into(),
                row.processed_at.into(),
            ],
        ))
        .await
        .expect("insert an old row");
    }
    db
}

/// The `id` the Python service gave the row with `transaction_id`.
pub async fn old_id(db: &DatabaseConnection, transaction_id: &str) -> i32 {
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT id FROM transactions WHERE transaction_id = $1",
        [transaction_id.into()],
    ))
    .await
    .expect("id query")
    .expect("the row exists")
    .try_get("", "id")
    .expect("id")
}

/// Every table of the public schema with its columns, constraints and indexes, and every
/// row of `transactions`: equal before and after means nothing changed.
pub async fn snapshot(db: &DatabaseConnection) -> String {
    let structure = describe_schema(db).await;
    let rows = text(
        db,
        "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') AS value
           FROM transactions t",
    )
    .await;
    format!("{structure}\n-- rows\n{rows}")
}

/// The public schema's tables, columns (in order, with types, nullability and defaults),
/// constraints and indexes, as text.
pub async fn describe_schema(db: &DatabaseConnection) -> String {
    text(
        db,
        "SELECT coalesce(string_agg(line, E'\\n' ORDER BY line), '') AS value FROM (
             SELECT format('%s column %s: %s %s default %s', c.relname,
                           lpad(a.attnum::text, 3, '0') || ' ' || a.attname,
                           format_type(a.atttypid, a.atttypmod),
                           CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                           coalesce(pg_get_expr(d.adbin, d.adrelid), '-')) AS line
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
             UNION ALL
             SELECT format('%s constraint %s: %s', conrelid::regclass, conname,
                           pg_get_constraintdef(oid))
               FROM pg_constraint
              WHERE connamespace = 'public'::regnamespace
             UNION ALL
             SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public'
         ) AS description",
    )
    .await
}

async fn text(db: &DatabaseConnection, sql: &str) -> String {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .expect("describe the database")
        .expect("one row")
        .try_get("", "value")
        .expect("text")
}
