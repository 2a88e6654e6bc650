//! The `migration` binary, as release phases and jobs run it.
#![allow(clippy::expect_used)]

use std::process::Command;

use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// A fresh database of this test's own: its URL and a connection to it.
async fn fresh_database() -> (String, DatabaseConnection) {
    let url = test_support::create_database().await;
    let db = Database::connect(&url).await.expect("connect");
    (url, db)
}

async fn relation_exists(db: &DatabaseConnection, name: &str) -> bool {
    db.query_one_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT to_regclass($1) IS NOT NULL AS present",
        [name.into()],
    ))
    .await
    .expect("query")
    .expect("row")
    .try_get("", "present")
    .expect("bool")
}

fn migration_up(database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_migration"))
        .arg("up")
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run the migration binary")
}

#[tokio::test]
async fn up_refuses_a_foreign_transactions_table_clearly_and_changes_nothing() {
    let (url, db) = fresh_database().await;
    db.execute_unprepared("CREATE TABLE transactions (id UUID PRIMARY KEY, note TEXT)")
        .await
        .expect("someone else's table");

    let output = migration_up(&url);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for expected in [
        "a table \"transactions\" that this service did not create",
        "column \"note\" (text) is not one of the Python service's",
        "point DATABASE_URL at an empty database",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains("already exists"), "{stderr}");
    // One transaction: not even the migrations table is left behind.
    assert!(!relation_exists(&db, "seaql_migrations").await);
    assert!(!relation_exists(&db, "processing_attempts").await);
}

#[tokio::test]
async fn up_applies_every_migration_on_an_empty_database() {
    let (url, db) = fresh_database().await;
    let output = migration_up(&url);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(relation_exists(&db, "transactions").await);
    assert!(relation_exists(&db, "processing_attempts").await);
    // Again: nothing pending, nothing to do.
    assert!(migration_up(&url).status.success());
}

#[tokio::test]
async fn up_and_status_work_over_tls_with_a_verified_server() {
    let ca = test_support::tls::TestCa::new("postgres test CA");
    let cluster = test_support::PostgresCluster::start_tls(&ca).await;
    cluster.create_database("webhooks").await;
    let url = format!(
        "postgres://postgres@localhost:{}/webhooks?sslmode=verify-full&sslrootcert={}",
        cluster.port,
        ca.ca_file.display()
    );
    let output = migration_up(&url);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let db = Database::connect(&url).await.expect("connect over TLS");
    assert!(relation_exists(&db, "transactions").await);
    let status = Command::new(env!("CARGO_BIN_EXE_migration"))
        .arg("status")
        .env("DATABASE_URL", &url)
        .output()
        .expect("run the migration binary");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    // The cluster refuses a plaintext connection, and the CLI fails on it.
    let plaintext = format!(
        "postgres://postgres@localhost:{}/webhooks?sslmode=disable",
        cluster.port
    );
    assert!(!migration_up(&plaintext).status.success());
}
