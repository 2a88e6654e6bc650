//! A database of each test's own on the shared PostgreSQL (`TEST_ADMIN_DATABASE_URL`).

use sea_orm::ConnectionTrait;

/// Prefix of every database the tests create; `scripts/test.sh` drops leftovers.
pub const TEST_DATABASE_PREFIX: &str = "pwtest_";

pub fn admin_database_url() -> String {
    std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of this test's own, with a URL for the processor.
pub async fn create_database() -> String {
    let name = format!("{TEST_DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_database_url())
        .await
        .expect("PostgreSQL must be reachable at TEST_ADMIN_DATABASE_URL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create the test database");
    admin.close().await.ok();
    let admin_url = admin_database_url();
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}
