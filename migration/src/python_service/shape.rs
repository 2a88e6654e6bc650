//! What `transactions` table, if any, a database already has, read from the catalog and
//! compared with the one the Python service's SQLAlchemy model creates:
//!
//! ```sql
//! CREATE TABLE transactions (
//!     id SERIAL NOT NULL,
//!     transaction_id VARCHAR NOT NULL,
//!     source_account VARCHAR NOT NULL,
//!     destination_account VARCHAR NOT NULL,
//!     amount FLOAT NOT NULL,
//!     currency VARCHAR NOT NULL,
//!     status VARCHAR NOT NULL,
//!     created_at TIMESTAMP WITH TIME ZONE DEFAULT now(),
//!     processed_at TIMESTAMP WITH TIME ZONE,
//!     PRIMARY KEY (id)
//! );
//! CREATE INDEX ix_transactions_id ON transactions (id);
//! CREATE UNIQUE INDEX ix_transactions_transaction_id ON transactions (transaction_id);
//! ```
//!
//! Lengths on the strings (`VARCHAR(255)`), `TEXT` for `VARCHAR`, `BIGSERIAL` for
//! `SERIAL`, `NOT NULL` on the timestamps and further plain indexes do not matter: the
//! rows mean the same. Any other column, type or nullability does, and so does anything
//! that depends on the table (a foreign key, a view), which adoption would break.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbErr, Statement};

/// The table the current schema's search path would create, as a `regclass` expression.
const TABLE: &str = "to_regclass(format('%I.transactions', current_schema()))";

/// What stands where this service's `transactions` table belongs.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Nothing,
    PythonService,
    /// Something else, and how it differs from the Python service's table.
    Other(Vec<String>),
}

/// Column types as `format_type` writes them.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Float,
    Timestamp,
}

impl Kind {
    fn accepts(self, type_name: &str) -> bool {
        match self {
            Self::Text => type_name == "text" || type_name.starts_with("character varying"),
            Self::Integer => matches!(type_name, "integer" | "bigint"),
            Self::Float => type_name == "double precision",
            Self::Timestamp => type_name == "timestamp with time zone",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Text => "character varying",
            Self::Integer => "integer",
            Self::Float => "double precision",
            Self::Timestamp => "timestamp with time zone",
        }
    }
}

/// The Python service's columns: name, type, and whether NULL is impossible.
const COLUMNS: [(&str, Kind, bool); 9] = [
    ("id", Kind::Integer, true),
    ("transaction_id", Kind::Text, true),
    ("source_account", Kind::Text, true),
    ("destination_account", Kind::Text, true),
    ("amount", Kind::Float, true),
    ("currency", Kind::Text, true),
    ("status", Kind::Text, true),
    ("created_at", Kind::Timestamp, false),
    ("processed_at", Kind::Timestamp, false),
];

/// Reads the catalog and says what is there.
pub async fn inspect(db: &impl ConnectionTrait) -> Result<Found, DbErr> {
    let Some(kind) = single_text(
        db,
        &format!("SELECT relkind::text AS value FROM pg_class WHERE oid = {TABLE}"),
    )
    .await?
    else {
        return Ok(Found::Nothing);
    };
    if kind != "r" {
        return Ok(Found::Other(vec![format!(
            "it is not a plain table (pg_class.relkind {kind:?})"
        )]));
    }
    let mut differences = column_differences(db).await?;
    differences.extend(key_differences(db).await?);
    differences.extend(dependants(db).await?);
    Ok(if differences.is_empty() {
        Found::PythonService
    } else {
        Found::Other(differences)
    })
}

async fn column_differences(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS type_name,
                        attnotnull AS not_null
                   FROM pg_attribute
                  WHERE attrelid = {TABLE} AND attnum > 0 AND NOT attisdropped
                  ORDER BY attnum"
            ),
        ))
        .await?;
    let mut present = Vec::with_capacity(rows.len());
    for row in &rows {
        let name: String = row.try_get("", "name")?;
        let type_name: String = row.try_get("", "type_name")?;
        let not_null: bool = row.try_get("", "not_null")?;
        present.push((name, type_name, not_null));
    }
    let mut differences = Vec::new();
    for (name, kind, required_not_null) in COLUMNS {
        match present.iter().find(|(present, _, _)| present == name) {
            None => differences.push(format!("column \"{name}\" is missing")),
            Some((_, type_name, _)) if !kind.accepts(type_name) => differences.push(format!(
                "column \"{name}\" is {type_name}, where the Python service's is {}",
                kind.name()
            )),
            Some((_, _, false)) if required_not_null => differences.push(format!(
                "column \"{name}\" may be NULL, where the Python service's is NOT NULL"
            )),
            Some(_) => {}
        }
    }
    // Columns only this service's own table has: its migration records went missing.
    if ["lease_owner", "republish_at"]
        .iter()
        .all(|ours| present.iter().any(|(name, _, _)| name == ours))
    {
        differences.insert(
            0,
            "it has this service's own columns (lease_owner, republish_at): it looks like \
             this service's table whose records in seaql_migrations were lost; restore those \
             rather than adopting anything"
                .to_owned(),
        );
    }
    for (name, type_name, _) in &present {
        if !COLUMNS.iter().any(|(expected, _, _)| expected == name) {
            differences.push(format!(
                "column \"{name}\" ({type_name}) is not one of the Python service's"
            ));
        }
    }
    Ok(differences)
}

/// The primary key must be `id`, and `transaction_id` must be unique (a plain unique index
/// over it alone), since adoption makes `transaction_id` the primary key.
async fn key_differences(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let primary = single_text(
        db,
        &format!(
            "SELECT string_agg(a.attname::text, ', ' ORDER BY k.position) AS value
               FROM pg_index x
               CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
              WHERE x.indrelid = {TABLE} AND x.indisprimary"
        ),
    )
    .await?;
    let unique_transaction_id = single_text(
        db,
        &format!(
            "SELECT 'yes' AS value
               FROM pg_index x
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
              WHERE x.indrelid = {TABLE} AND x.indisunique AND x.indnkeyatts = 1
                AND x.indpred IS NULL AND x.indexprs IS NULL AND a.attname = 'transaction_id'
              LIMIT 1"
        ),
    )
    .await?;
    let mut differences = Vec::new();
    match primary.as_deref() {
        Some("id") => {}
        Some(other) => differences.push(format!(
            "its primary key is ({other}), where the Python service's is (id)"
        )),
        None => {
            differences.push("it has no primary key, where the Python service's is (id)".to_owned())
        }
    }
    if unique_transaction_id.is_none() {
        differences.push(
            "\"transaction_id\" has no unique index, where the Python service's has \
             ix_transactions_transaction_id"
                .to_owned(),
        );
    }
    Ok(differences)
}

/// Foreign keys and views that refer to the table: adoption replaces it, so they would
/// lose it.
async fn dependants(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT format('table %s refers to it (foreign key %I)', conrelid::regclass, conname)
                        AS value
                   FROM pg_constraint
                  WHERE contype = 'f' AND confrelid = {TABLE} AND conrelid <> {TABLE}
                 UNION ALL
                 SELECT DISTINCT format('view %s depends on it', r.ev_class::regclass)
                   FROM pg_depend d
                   JOIN pg_rewrite r ON r.oid = d.objid
                  WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = {TABLE}
                    AND r.ev_class <> {TABLE}
                 ORDER BY 1"
            ),
        ))
        .await?;
    rows.iter().map(|row| row.try_get("", "value")).collect()
}

/// The `value` column of a query's first row, if it has one and it is not NULL.
async fn single_text(db: &impl ConnectionTrait, sql: &str) -> Result<Option<String>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    match row {
        Some(row) => row.try_get::<Option<String>>("", "value"),
        None => Ok(None),
    }
}
