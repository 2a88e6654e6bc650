//! Test fixtures, shared with the gateway's tests: a fresh database per test, a unique
//! stream and group, and the real processor running in-process. Compiled only with the
//! `test-support` feature. A fixture that cannot set up panics: that is the test failing.
#![allow(clippy::expect_used)]

pub mod python_service;
pub mod tls;

use std::{net::SocketAddr, time::Duration};

use crate::{Config, db};
use fred::prelude::{Client, ClientLike, KeysInterface, StreamsInterface};
use payments_proto::v1::{self as pb, transaction_service_client::TransactionServiceClient};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Prefix of every database the tests create; `scripts/test.sh` drops leftovers.
pub const TEST_DATABASE_PREFIX: &str = "pwtest_";

pub fn admin_database_url() -> String {
    std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
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

/// What one test's processor is configured with.
#[derive(Clone, Debug)]
pub struct Setup {
    pub database_url: String,
    pub stream_key: String,
    pub consumer_group: String,
    pub consumer_name: String,
    pub delay: &'static str,
    pub max_in_flight: &'static str,
    pub shutdown_grace: &'static str,
    /// Further settings, taking precedence over the ones above.
    pub overrides: Vec<(&'static str, String)>,
}

impl Setup {
    pub async fn new(delay: &'static str) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        Self {
            database_url: create_database().await,
            stream_key: format!("test:{unique}:transactions"),
            consumer_group: format!("test:{unique}:processors"),
            consumer_name: format!("consumer-{unique}"),
            delay,
            max_in_flight: "10000",
            shutdown_grace: "5s",
            overrides: Vec::new(),
        }
    }

    /// Every setting of this test's processor, as environment variables.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("REDIS_URL", redis_url()),
            ("GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("PROCESSING_DELAY", self.delay.to_owned()),
            ("STREAM_KEY", self.stream_key.clone()),
            ("CONSUMER_GROUP", self.consumer_group.clone()),
            ("CONSUMER_NAME", self.consumer_name.clone()),
            ("MAX_IN_FLIGHT", self.max_in_flight.to_owned()),
            ("SHUTDOWN_GRACE", self.shutdown_grace.to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "10".to_owned()),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ];
        for (name, value) in &self.overrides {
            pairs.retain(|(existing, _)| existing != name);
            pairs.push((name, value.clone()));
        }
        pairs
    }

    pub fn config(&self) -> Config {
        let pairs = self.environment();
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("valid test configuration")
    }

    /// Sets (or replaces) one setting.
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.overrides.retain(|(existing, _)| *existing != name);
        self.overrides.push((name, value.into()));
        self
    }

    /// Starts the real processor on an ephemeral port.
    pub async fn start(&self) -> RunningProcessor {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let metrics_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let application = crate::build_with_listeners(self.config(), listener, metrics_listener)
            .await
            .expect("processor starts");
        let addr = application.grpc_addr().expect("bound address");
        let metrics_addr = application.metrics_addr().expect("bound address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(application.run_until_stopped(shutdown.clone()));
        RunningProcessor {
            addr,
            metrics_addr,
            shutdown,
            task,
        }
    }

    pub async fn database(&self) -> DatabaseConnection {
        db::connect(&self.database_url, 5)
            .await
            .expect("connect to the test database")
    }

    /// A client of the Redis this setup gives its processor (`REDIS_URL`: the shared one
    /// unless overridden).
    pub async fn redis(&self) -> Client {
        let config = self.config();
        let redis =
            crate::stream::redis_config(&config.redis_url, &config.redis_tls).expect("REDIS_URL");
        let client = Client::new(redis, None, None, None);
        client.init().await.unwrap_or_else(|error| {
            panic!("Redis must be reachable at {}: {error}", config.redis_url)
        });
        client
    }

    /// How many entries were ever added to this test's stream (XINFO STREAM entries-added).
    pub async fn entries_ever_added(&self) -> i64 {
        let redis = self.redis().await;
        let exists: i64 = redis.exists(&self.stream_key).await.expect("EXISTS");
        if exists == 0 {
            return 0;
        }
        let info: std::collections::HashMap<String, fred::types::Value> = redis
            .xinfo_stream(&self.stream_key, false, None)
            .await
            .expect("XINFO STREAM");
        info.get("entries-added")
            .and_then(|v| v.as_i64())
            .expect("Redis 7 reports entries-added")
    }
}

impl Setup {
    /// Entries delivered to the group and not yet acknowledged (XPENDING's count).
    pub async fn pending_count(&self, redis: &Client) -> u64 {
        let summary: Vec<fred::types::Value> = redis
            .xpending(&self.stream_key, &self.consumer_group, ())
            .await
            .expect("XPENDING");
        summary
            .first()
            .and_then(fred::types::Value::as_u64)
            .expect("XPENDING count")
    }
}

pub struct RunningProcessor {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl RunningProcessor {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> TransactionServiceClient<Channel> {
        TransactionServiceClient::connect(self.url())
            .await
            .expect("connect to the processor")
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to the processor")
    }

    /// SIGTERM's path: stop, and wait for the graceful end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("processor task does not panic")
            .expect("processor stops cleanly");
    }
}

pub fn request(id: &str, amount: &str) -> pb::IngestTransactionRequest {
    pb::IngestTransactionRequest {
        transaction_id: id.to_owned(),
        source_account: "acc_user_789".to_owned(),
        destination_account: "acc_merchant_456".to_owned(),
        amount: amount.to_owned(),
        currency: "INR".to_owned(),
    }
}

pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Rows per status in the test's database.
pub async fn count_by_status(db: &DatabaseConnection, status: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM transactions WHERE status = $1",
            [status.into()],
        ))
        .await
        .expect("count query")
        .expect("one row");
    row.try_get::<i64>("", "n").expect("count")
}

/// How many attempts at `transaction_id` succeeded (rows of `processing_attempts`).
pub async fn successful_attempts(db: &DatabaseConnection, transaction_id: &str) -> i64 {
    db.query_one_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT count(*) AS n FROM processing_attempts
          WHERE transaction_id = $1 AND outcome = 'SUCCEEDED'",
        [transaction_id.into()],
    ))
    .await
    .expect("attempts query")
    .expect("one row")
    .try_get("", "n")
    .expect("count")
}

/// Polls until `check` holds or `limit` passes; returns whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SPEC's guarantee, checked once everything has settled: every accepted id is stored and
/// finished (PROCESSED or FAILED), each PROCESSED one has exactly one successful attempt,
/// and no other row appeared.
pub async fn assert_each_accepted_finished_exactly_once(
    db: &DatabaseConnection,
    accepted: &[String],
) {
    let rows = db
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT t.transaction_id, t.status,
                    (SELECT count(*) FROM processing_attempts a
                      WHERE a.transaction_id = t.transaction_id AND a.outcome = 'SUCCEEDED') AS successes
               FROM transactions t",
        ))
        .await
        .expect("invariant query");
    let mut stored = std::collections::HashMap::new();
    for row in &rows {
        let id: String = row.try_get("", "transaction_id").expect("id");
        let status: String = row.try_get("", "status").expect("status");
        let successes: i64 = row.try_get("", "successes").expect("successes");
        stored.insert(id, (status, successes));
    }
    for id in accepted {
        let Some((status, successes)) = stored.get(id) else {
            panic!("accepted transaction {id} is not in PostgreSQL");
        };
        match status.as_str() {
            "PROCESSED" => assert_eq!(*successes, 1, "{id} succeeded {successes} times"),
            "FAILED" => assert_eq!(*successes, 0, "{id} is FAILED but has a success"),
            other => panic!("{id} is still {other}"),
        }
    }
    assert_eq!(
        stored.len(),
        accepted.len(),
        "rows appeared that were never accepted"
    );
}

/// Polls until no row is PROCESSING, up to `limit`; returns whether that happened.
pub async fn settle(db: &DatabaseConnection, limit: Duration) -> bool {
    eventually(limit, || async {
        count_by_status(db, "PROCESSING").await == 0
    })
    .await
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A redis-server of the test's own, without persistence, on a free port.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// Set: the server speaks TLS only, with this certificate.
    tls: Option<RedisServerTls>,
}

struct RedisServerTls {
    certificate: tls::CertFiles,
    ca_file: PathBuf,
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            tls: None,
        };
        server.restart().await;
        server
    }

    /// A server that speaks TLS only (`--port 0 --tls-port`), with a certificate `ca`
    /// signed for 127.0.0.1 and localhost; clients need no certificate.
    pub async fn start_tls(ca: &tls::TestCa) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            tls: Some(RedisServerTls {
                certificate: ca.server("redis", &["127.0.0.1", "localhost"]),
                ca_file: ca.ca_file.clone(),
            }),
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// A client configuration that trusts this server (its CA, when it speaks TLS).
    fn client_config(&self) -> fred::prelude::Config {
        let verify = crate::config::RedisTls {
            ca_file: self
                .tls
                .as_ref()
                .map(|server_tls| server_tls.ca_file.clone()),
            skip_verify: false,
        };
        crate::stream::redis_config(&self.url(), &verify).expect("redis url")
    }

    /// Stops the server abruptly; its data is gone (no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut args = vec!["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let (cert, key, ca);
        match &self.tls {
            None => args.extend(["--port", &port]),
            Some(server_tls) => {
                (cert, key, ca) = (
                    server_tls.certificate.cert_file.display().to_string(),
                    server_tls.certificate.key_file.display().to_string(),
                    server_tls.ca_file.display().to_string(),
                );
                args.extend(["--port", "0", "--tls-port", &port]);
                args.extend(["--tls-cert-file", &cert, "--tls-key-file", &key]);
                args.extend(["--tls-ca-cert-file", &ca, "--tls-auth-clients", "no"]);
            }
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let config = self.client_config();
        let up = eventually(Duration::from_secs(10), || async {
            let client = fred::prelude::Client::new(config.clone(), None, None, None);
            fred::prelude::ClientLike::init(&client).await.is_ok()
        })
        .await;
        assert!(up, "redis-server did not start on port {}", self.port);
    }

    /// FLUSHALL: Redis loses every key while the processor runs.
    pub async fn flush_all(&self) {
        let status = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "FLUSHALL"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL cluster of the test's own, made with the installed server's initdb and
/// run with pg_ctl on a free port, so stopping it touches no other test.
pub struct PostgresCluster {
    directory: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

impl PostgresCluster {
    pub async fn start() -> Self {
        let cluster = Self::init();
        cluster.start_server();
        cluster
    }

    /// A cluster that accepts TCP connections over TLS only (`ssl = on`, `hostssl` lines
    /// alone in pg_hba.conf), with a certificate `ca` signed for localhost and 127.0.0.1.
    pub async fn start_tls(ca: &tls::TestCa) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let cluster = Self::init();
        let certificate = ca.server("postgres", &["localhost", "127.0.0.1"]);
        let data = PathBuf::from(cluster.data_dir());
        std::fs::copy(&certificate.cert_file, data.join("server.crt")).expect("server.crt");
        std::fs::copy(&certificate.key_file, data.join("server.key")).expect("server.key");
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("the key readable by its owner only, as PostgreSQL demands");
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str("\nssl = on\n");
        std::fs::write(data.join("postgresql.conf"), conf).expect("write postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .expect("write pg_hba.conf");
        give_to_postgres_user(&cluster.directory);
        cluster.start_server();
        cluster
    }

    /// initdb in a fresh directory, on a free port; not started.
    fn init() -> Self {
        let bin = postgres_bin_dir();
        let directory =
            std::env::temp_dir().join(format!("pw-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&directory).expect("cluster directory");
        let cluster = Self {
            directory,
            bin,
            port: free_port(),
        };
        // PostgreSQL refuses to run as root: run it as the postgres user when we are root.
        give_to_postgres_user(&cluster.directory);
        cluster.postgres_command(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster
    }

    fn data_dir(&self) -> String {
        self.directory.join("data").display().to_string()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c fsync=off",
            self.port,
            self.directory.display()
        );
        let log = self.directory.join("server.log").display().to_string();
        self.postgres_command(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Immediate shutdown: connections drop at once, as when the server dies.
    pub fn stop_server(&self) {
        self.stop_server_in("immediate");
    }

    /// Fast shutdown: every backend is told `terminating connection due to administrator
    /// command` (57P01), as in a restart, a failover or a managed database's maintenance.
    pub fn stop_server_fast(&self) {
        self.stop_server_in("fast");
    }

    fn stop_server_in(&self, mode: &str) {
        self.postgres_command(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", mode, "-w", "stop"],
        );
    }

    pub async fn create_database(&self, name: &str) {
        let admin = sea_orm::Database::connect(self.url("postgres"))
            .await
            .expect("connect to the cluster");
        sea_orm::ConnectionTrait::execute_unprepared(
            &admin,
            &format!("CREATE DATABASE \"{name}\""),
        )
        .await
        .expect("create database");
        admin.close().await.ok();
    }

    fn postgres_command(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let status = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .stdout(Stdio::null())
                .status()
        } else {
            Command::new(&program)
                .args(args)
                .stdout(Stdio::null())
                .status()
        }
        .expect("run a PostgreSQL server command");
        assert!(status.success(), "{} {args:?} failed", program.display());
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data_dir(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn give_to_postgres_user(directory: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(directory)
            .status()
            .expect("chown");
        assert!(status.success(), "chown the cluster directory to postgres");
    }
}

/// The newest installed PostgreSQL server's bin directory (Debian's layout), or
/// `POSTGRES_BIN_DIR`.
fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("POSTGRES_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (or set POSTGRES_BIN_DIR)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an installed PostgreSQL server with initdb")
}
