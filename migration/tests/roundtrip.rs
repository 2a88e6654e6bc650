//! Every migration applies, rolls back and applies again on a fresh database.
#![allow(clippy::expect_used)]

use migration::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::{ConnectionTrait, Database};

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    let admin_url = std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("pwtest_migration_{}", std::process::id());
    let admin = Database::connect(&admin_url)
        .await
        .expect("PostgreSQL reachable");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\""))
        .await
        .expect("drop leftover");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    let db = Database::connect(format!("{base}/{name}"))
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
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .expect("drop");
}
