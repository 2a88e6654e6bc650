//! Every migration applies, rolls back and applies again on a fresh database.
#![allow(clippy::expect_used)]

use migration::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::{ConnectionTrait, Database};

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    let db = Database::connect(test_support::create_database().await)
        .await
        .expect("connect");

    Migrator::up(&db, None).await.expect("up");
    let total = Migrator::migrations().len();
    assert_eq!(
        Migrator::get_applied_migrations(&db)
            .await
            .expect("status")
            .len(),
        total
    );
    db.execute_unprepared("SELECT transaction_id, lease_owner, republish_at FROM transactions")
        .await
        .expect("the latest schema is in place");

    Migrator::down(&db, None).await.expect("down");
    assert!(
        Migrator::get_applied_migrations(&db)
            .await
            .expect("status")
            .is_empty()
    );
    assert!(
        db.execute_unprepared("SELECT 1 FROM transactions")
            .await
            .is_err(),
        "down removes the table"
    );

    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(
        Migrator::get_applied_migrations(&db)
            .await
            .expect("status")
            .len(),
        total
    );
    db.close().await.ok();
}

/// Replicas starting together on a fresh database: each applies what is pending in turn,
/// the concurrent index builds included, and none fails or waits forever.
#[tokio::test]
async fn replicas_applying_migrations_at_once_all_succeed() {
    let url = test_support::create_database().await;

    let replicas: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { migration::apply_pending(&url).await })
        })
        .collect();
    for replica in replicas {
        tokio::time::timeout(std::time::Duration::from_secs(60), replica)
            .await
            .expect("no replica waits forever")
            .expect("replica task")
            .expect("every replica's migrations succeed");
    }

    let db = Database::connect(&url).await.expect("connect");
    assert_eq!(
        Migrator::get_applied_migrations(&db)
            .await
            .expect("status")
            .len(),
        Migrator::migrations().len()
    );
    let invalid = db
        .query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(
            sea_orm_migration::sea_orm::DbBackend::Postgres,
            "SELECT indexrelid FROM pg_index WHERE NOT indisvalid",
        ))
        .await
        .expect("pg_index");
    assert!(invalid.is_empty(), "no index is left invalid");
    db.close().await.ok();
}
