//! Taking over the Python service's database: the processor started on it adopts its
//! table in place (every row, amounts exact, PROCESSING ones processed once), refuses rows
//! it cannot keep exactly without changing anything, and refuses a `transactions` table
//! of any other shape with a message that says what to do.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use payments_proto::v1 as pb;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use test_support::python_service::{self, OldRow};
use tokio::net::TcpListener;

use crate::helpers::{Setup, StartProcessor, create_database, settle, successful_attempts};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_761_906_600 + seconds, 0)
        .single()
        .expect("valid time")
}

/// Starts the processor on `setup`'s database, expecting it to refuse; returns the error
/// as `main` prints it.
async fn start_refused(setup: &Setup) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let metrics = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    match processor::build_with_listeners(setup.config(), listener, metrics).await {
        Ok(_) => panic!("the processor started on a database it must refuse"),
        Err(error) => format!("{error:#}"),
    }
}

async fn migrations_table_exists(db: &DatabaseConnection) -> bool {
    db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT to_regclass('seaql_migrations') IS NOT NULL AS present",
    ))
    .await
    .expect("query")
    .expect("row")
    .try_get("", "present")
    .expect("bool")
}

fn time(timestamp: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    timestamp.and_then(|t| Utc.timestamp_opt(t.seconds, 0).single())
}

#[tokio::test]
async fn the_processor_adopts_the_python_service_table_with_every_row_exact() {
    let setup = Setup::new("300ms").await;
    let mut rows = vec![
        OldRow::new("py_processed", 1500.0, "INR", "PROCESSED", at(0)),
        OldRow::new("py_failed", 99.99, "INR", "FAILED", at(10)),
        OldRow::new("py_noise", 0.1 + 0.2, "INR", "PROCESSED", at(20)),
        OldRow::new("py_yen", 1500.0, "JPY", "PROCESSING", at(30)),
        OldRow::new(
            "py_large",
            12_345_678_901_234.99,
            "INR",
            "PROCESSED",
            at(40),
        ),
        OldRow::new("py_dinar", 1.234, "KWD", "PROCESSED", at(50)),
        OldRow {
            created_at: None,
            ..OldRow::new("py_no_created_at", 250.5, "INR", "PROCESSING", at(0))
        },
    ];
    for n in 0..20 {
        rows.push(OldRow::new(
            format!("py_waiting_{n}"),
            f64::from(n) + 0.25,
            "INR",
            "PROCESSING",
            at(60 + i64::from(n)),
        ));
    }
    python_service::create(setup.database_url(), &rows).await;
    let expected: HashMap<&str, &str> = [
        ("py_processed", "1500.00"),
        ("py_failed", "99.99"),
        ("py_noise", "0.30"),
        ("py_yen", "1500"),
        ("py_large", "12345678901234.99"),
        ("py_dinar", "1.234"),
        ("py_no_created_at", "250.50"),
    ]
    .into_iter()
    .collect();

    let processor = setup.start().await;
    let db = setup.database().await;
    let mut client = processor.client().await;
    let adoption_started = Utc::now() - chrono::Duration::seconds(60);
    for row in &rows {
        let stored = client
            .get_transaction(pb::GetTransactionRequest {
                transaction_id: row.transaction_id.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("{} was not kept: {status}", row.transaction_id))
            .into_inner();
        let amount = expected.get(row.transaction_id.as_str()).map_or_else(
            || format!("{:.2}", row.amount),
            |amount| (*amount).to_owned(),
        );
        assert_eq!(stored.amount, amount, "{}", row.transaction_id);
        assert_eq!(stored.currency, row.currency);
        assert_eq!(stored.source_account, python_service::SOURCE_ACCOUNT);
        assert_eq!(
            stored.destination_account,
            python_service::DESTINATION_ACCOUNT
        );
        let created_at = time(stored.created_at.as_ref()).expect("created_at");
        match row.created_at {
            Some(created) => assert_eq!(created_at, created, "{}", row.transaction_id),
            // NULL in the Python table: the adoption time stands in.
            None => assert!(created_at >= adoption_started, "{created_at}"),
        }
        if row.status != "PROCESSING" {
            assert_eq!(
                stored.status(),
                match row.status {
                    "PROCESSED" => pb::TransactionStatus::Processed,
                    _ => pb::TransactionStatus::Failed,
                },
                "{}",
                row.transaction_id
            );
            // A FAILED row had no processed_at: it gets its created_at.
            assert_eq!(
                time(stored.processed_at.as_ref()),
                row.processed_at.or(row.created_at)
            );
            assert_eq!(stored.attempts, 0, "{}", row.transaction_id);
        }
    }
    let failed = client
        .get_transaction(pb::GetTransactionRequest {
            transaction_id: "py_failed".to_owned(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        failed.last_error,
        migration::python_service::FAILED_BEFORE_ADOPTION
    );

    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "the adopted PROCESSING rows were not processed"
    );
    for row in &rows {
        let once = i64::from(row.status == "PROCESSING");
        assert_eq!(
            successful_attempts(&db, &row.transaction_id).await,
            once,
            "{} was processed the wrong number of times",
            row.transaction_id
        );
    }
    processor.stop().await;

    // The adopted table is the one a fresh database gets: columns, constraints, indexes.
    let fresh = create_database().await;
    let fresh_db = processor::db::connect(&fresh, 2).await.expect("connect");
    migration::apply_pending(&fresh).await.expect("migrate");
    assert_eq!(
        python_service::describe_schema(&db).await,
        python_service::describe_schema(&fresh_db).await
    );
}

#[tokio::test]
async fn rows_that_cannot_be_kept_exactly_are_reported_by_id_and_nothing_changes() {
    let setup = Setup::new("300ms").await;
    let rows = [
        OldRow::new("py_fine", 1500.0, "INR", "PROCESSED", at(0)),
        OldRow::new("py_noise", 0.1 + 0.2, "INR", "PROCESSING", at(1)),
        OldRow::new("py_fils", 10.123, "INR", "PROCESSED", at(2)),
        OldRow::new("py_half_yen", 1.5, "JPY", "PROCESSING", at(3)),
        OldRow::new(
            "py_tiny_digit",
            1_500.000_000_000_1,
            "INR",
            "PROCESSED",
            at(4),
        ),
        OldRow::new("py_zero", 0.0, "INR", "FAILED", at(5)),
        OldRow::new("py_negative", -5.0, "INR", "PROCESSED", at(6)),
        OldRow::new("py_lower_case", 10.0, "inr", "PROCESSED", at(7)),
        OldRow::new("py_pending", 10.0, "INR", "PENDING", at(8)),
    ];
    let db = python_service::create(setup.database_url(), &rows).await;
    let before = python_service::snapshot(&db).await;

    let message = start_refused(&setup).await;
    let reported = [
        (
            "py_fils",
            "amount 10.123 has more decimal places than INR allows (2)",
        ),
        (
            "py_half_yen",
            "amount 1.5 has more decimal places than JPY allows (0)",
        ),
        (
            "py_tiny_digit",
            "amount 1500.0000000001 has more decimal places than INR allows (2)",
        ),
        ("py_zero", "amount 0 is not greater than 0"),
        ("py_negative", "amount -5 is not greater than 0"),
        (
            "py_lower_case",
            "currency \"inr\" is not an ISO 4217 code in upper case",
        ),
        (
            "py_pending",
            "status \"PENDING\" is not PROCESSING, PROCESSED or FAILED",
        ),
    ];
    for (transaction_id, problem) in reported {
        let id = python_service::old_id(&db, transaction_id).await;
        let line = format!("id {id} (transaction_id \"{transaction_id}\"): {problem}");
        assert!(message.contains(&line), "{line:?} missing from:\n{message}");
    }
    assert!(message.contains("7 of its 9 rows"), "{message}");
    assert!(message.contains("Nothing was changed"), "{message}");
    for fine in ["py_fine", "py_noise"] {
        assert!(!message.contains(fine), "{fine} is reported:\n{message}");
    }
    assert!(
        !message.contains("error returned from database"),
        "{message}"
    );
    assert_eq!(python_service::snapshot(&db).await, before);
    assert!(!migrations_table_exists(&db).await);

    // `migration up` applies them the same way: refused alike, nothing changed.
    let refused = migration::apply_pending(setup.database_url())
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains("py_fils"), "{refused}");
    assert_eq!(python_service::snapshot(&db).await, before);
    assert!(!migrations_table_exists(&db).await);

    // Once a person has fixed the rows, the processor adopts the table.
    db.execute_unprepared(
        "UPDATE transactions SET amount = 10.12 WHERE transaction_id = 'py_fils';
         UPDATE transactions SET amount = 2 WHERE transaction_id = 'py_half_yen';
         UPDATE transactions SET amount = 1500 WHERE transaction_id = 'py_tiny_digit';
         UPDATE transactions SET amount = 1 WHERE transaction_id IN ('py_zero', 'py_negative');
         UPDATE transactions SET currency = 'INR' WHERE transaction_id = 'py_lower_case';
         UPDATE transactions SET status = 'PROCESSING' WHERE transaction_id = 'py_pending';",
    )
    .await
    .expect("the person's fixes");
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let fixed = client
        .get_transaction(pb::GetTransactionRequest {
            transaction_id: "py_fils".to_owned(),
        })
        .await
        .expect("adopted")
        .into_inner();
    assert_eq!(fixed.amount, "10.12");
    processor.stop().await;
}

#[tokio::test]
async fn a_transactions_table_of_another_shape_is_refused_with_what_differs() {
    let setup = Setup::new("300ms").await;
    let db = setup.database().await;
    db.execute_unprepared(
        "CREATE TABLE transactions (
             id UUID PRIMARY KEY,
             payload JSONB NOT NULL,
             amount NUMERIC NOT NULL,
             currency VARCHAR,
             status VARCHAR NOT NULL
         );
         INSERT INTO transactions VALUES
             ('7f1d1f6e-8d8e-4d56-9d0b-3f0c1f1f1f1f', '{}', 10, 'INR', 'PROCESSED');",
    )
    .await
    .expect("someone else's table");
    let before = python_service::snapshot(&db).await;

    let message = start_refused(&setup).await;
    for expected in [
        "a table \"transactions\" that this service did not create",
        "column \"id\" is uuid, where the Python service's is integer",
        "column \"transaction_id\" is missing",
        "column \"amount\" is numeric, where the Python service's is double precision",
        "column \"currency\" may be NULL, where the Python service's is NOT NULL",
        "column \"payload\" (jsonb) is not one of the Python service's",
        "\"transaction_id\" has no unique index",
        "point DATABASE_URL at an empty database",
        "if this is the Python service's database",
        "Nothing was changed",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} missing from:\n{message}"
        );
    }
    assert!(!message.contains("already exists"), "{message}");
    assert!(
        !message.contains("error returned from database"),
        "{message}"
    );
    assert_eq!(python_service::snapshot(&db).await, before);
    assert!(!migrations_table_exists(&db).await);
}

#[tokio::test]
async fn a_python_table_that_others_depend_on_is_refused() {
    let setup = Setup::new("300ms").await;
    let db = python_service::create(
        setup.database_url(),
        &[OldRow::new("py_refunded", 10.0, "INR", "PROCESSED", at(0))],
    )
    .await;
    db.execute_unprepared(
        "CREATE TABLE refunds (id SERIAL PRIMARY KEY,
                               transaction_id INTEGER REFERENCES transactions (id));
         CREATE VIEW daily_totals AS SELECT currency, sum(amount) FROM transactions GROUP BY 1;",
    )
    .await
    .expect("a refunds table and a view");
    let before = python_service::snapshot(&db).await;

    let message = start_refused(&setup).await;
    for expected in [
        "table refunds refers to it (foreign key refunds_transaction_id_fkey)",
        "view daily_totals depends on it",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} missing from:\n{message}"
        );
    }
    assert_eq!(python_service::snapshot(&db).await, before);
}

#[tokio::test]
async fn replicas_starting_together_adopt_the_table_once() {
    let setup = Setup::new("300ms").await;
    let rows: Vec<OldRow> = (0..50)
        .map(|n| {
            OldRow::new(
                format!("py_replica_{n}"),
                f64::from(n) + 0.5,
                "INR",
                if n % 2 == 0 {
                    "PROCESSING"
                } else {
                    "PROCESSED"
                },
                at(i64::from(n)),
            )
        })
        .collect();
    python_service::create(setup.database_url(), &rows).await;
    let mut second = setup.clone();
    second.set("CONSUMER_NAME", format!("{}-second", setup.consumer_name()));

    // The advisory lock lets one adopt; the other then finds the migrations applied.
    let (first, second) = tokio::join!(setup.start(), second.start());
    let db = setup.database().await;
    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "the adopted PROCESSING rows were not processed"
    );
    for row in &rows {
        let once = i64::from(row.status == "PROCESSING");
        assert_eq!(
            successful_attempts(&db, &row.transaction_id).await,
            once,
            "{}",
            row.transaction_id
        );
    }
    let adopted: i64 = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM transactions",
        ))
        .await
        .expect("count")
        .expect("row")
        .try_get("", "n")
        .expect("n");
    assert_eq!(adopted, 50);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn this_services_own_table_without_its_migration_records_is_named_as_such() {
    let setup = Setup::new("300ms").await;
    let db = setup.database().await;
    migration::apply_pending(setup.database_url())
        .await
        .expect("migrate");
    db.execute_unprepared("DROP TABLE seaql_migrations")
        .await
        .expect("lose the records");
    let before = python_service::snapshot(&db).await;

    let message = start_refused(&setup).await;
    assert!(
        message.contains(
            "it looks like this service's table whose records in seaql_migrations were lost"
        ),
        "{message}"
    );
    assert_eq!(python_service::snapshot(&db).await, before);
}
