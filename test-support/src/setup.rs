//! What one test's processor is configured with: its own database, stream and group, and
//! any setting the test names, all as the environment variables the processor reads.

use fred::prelude::{Client, ClientLike, KeysInterface, StreamsInterface};
use sea_orm::{ConnectOptions, DatabaseConnection};

use crate::create_database;

/// The shared Redis (`TEST_REDIS_URL`); each test keeps to keys of its own (`test:*`).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// What one test's processor is configured with. Every setting, those made here and those
/// a test makes, is one entry of [`Setup::environment`], set with [`Setup::set`].
#[derive(Clone, Debug)]
pub struct Setup {
    settings: Vec<(&'static str, String)>,
}

impl Setup {
    /// A fresh database, stream and group, and the processing delay `delay`.
    pub async fn new(delay: &'static str) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let database_url = create_database().await;
        let settings = vec![
            ("DATABASE_URL", database_url),
            ("REDIS_URL", redis_url()),
            ("GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("PROCESSING_DELAY", delay.to_owned()),
            ("STREAM_KEY", format!("test:{unique}:transactions")),
            ("CONSUMER_GROUP", format!("test:{unique}:processors")),
            ("CONSUMER_NAME", format!("consumer-{unique}")),
            ("MAX_IN_FLIGHT", "10000".to_owned()),
            ("SHUTDOWN_GRACE", "5s".to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "10".to_owned()),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ];
        Self { settings }
    }

    /// `DATABASE_URL`.
    pub fn database_url(&self) -> &str {
        self.required("DATABASE_URL")
    }

    /// `STREAM_KEY`.
    pub fn stream_key(&self) -> &str {
        self.required("STREAM_KEY")
    }

    /// `CONSUMER_GROUP`.
    pub fn consumer_group(&self) -> &str {
        self.required("CONSUMER_GROUP")
    }

    /// `CONSUMER_NAME`.
    pub fn consumer_name(&self) -> &str {
        self.required("CONSUMER_NAME")
    }

    fn required(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("this setup leaves {name} unset"))
    }

    /// Every setting of this test's processor, as environment variables.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        self.settings.clone()
    }

    /// The value this setup gives `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .find_map(|(existing, value)| (*existing == name).then_some(value.as_str()))
    }

    /// Sets (or replaces) one setting.
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.unset(name);
        self.settings.push((name, value.into()));
        self
    }

    /// Leaves `name` unset: the processor's default applies.
    pub fn unset(&mut self, name: &str) -> &mut Self {
        self.settings.retain(|(existing, _)| *existing != name);
        self
    }

    pub async fn database(&self) -> DatabaseConnection {
        let options = ConnectOptions::new(self.database_url())
            .max_connections(5)
            .sqlx_logging(false)
            .to_owned();
        sea_orm::Database::connect(options)
            .await
            .expect("connect to the test database")
    }

    /// A client of the Redis this setup gives its processor (`REDIS_URL`: the shared one
    /// unless overridden).
    pub async fn redis(&self) -> Client {
        let url = self
            .get("REDIS_URL")
            .expect("this setup names REDIS_URL")
            .to_owned();
        let ca_file = self.get("REDIS_TLS_CA_FILE").map(std::path::Path::new);
        let client = Client::new(crate::redis_client_config(&url, ca_file), None, None, None);
        client
            .init()
            .await
            .unwrap_or_else(|error| panic!("Redis must be reachable at {url}: {error}"));
        client
    }

    /// How many entries were ever added to this test's stream (XINFO STREAM entries-added).
    pub async fn entries_ever_added(&self) -> i64 {
        let redis = self.redis().await;
        let exists: i64 = redis.exists(self.stream_key()).await.expect("EXISTS");
        if exists == 0 {
            return 0;
        }
        let info: std::collections::HashMap<String, fred::types::Value> = redis
            .xinfo_stream(self.stream_key(), false, None)
            .await
            .expect("XINFO STREAM");
        info.get("entries-added")
            .and_then(|v| v.as_i64())
            .expect("Redis 7 reports entries-added")
    }

    /// Entries delivered to the group and not yet acknowledged (XPENDING's count).
    pub async fn pending_count(&self, redis: &Client) -> u64 {
        let summary: Vec<fred::types::Value> = redis
            .xpending(self.stream_key(), self.consumer_group(), ())
            .await
            .expect("XPENDING");
        summary
            .first()
            .and_then(fred::types::Value::as_u64)
            .expect("XPENDING count")
    }
}
