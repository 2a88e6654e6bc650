//! Real processes for fault tests: the processor binary, a private redis-server, and a
//! throwaway PostgreSQL cluster made with initdb.
#![allow(clippy::expect_used)]

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use payments_proto::v1::{self as pb, transaction_service_client::TransactionServiceClient};
use processor::testing::{Setup, eventually};
use tonic::transport::Channel;

pub use processor::testing::{
    RedisServer, assert_each_accepted_finished_exactly_once, count_by_status, request, settle,
    unique_id,
};

pub use processor::testing::free_port;

fn log_file(name: &str) -> (File, PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "pw-fault-{name}-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    (File::create(&path).expect("log file"), path)
}

/// The real processor binary, configured by a test's `Setup`.
pub struct ProcessorProcess {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl ProcessorProcess {
    /// Starts it and waits until its gRPC port answers.
    pub async fn start(setup: &Setup, consumer_name: &str) -> Self {
        let port = free_port();
        let (log, log_path) = log_file(consumer_name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_processor"));
        command.env_clear();
        for (name, value) in setup.environment() {
            command.env(name, value);
        }
        command
            .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("CONSUMER_NAME", consumer_name)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = command.spawn().expect("start the processor binary");
        let process = Self {
            child,
            port,
            log: log_path,
        };
        let url = process.url();
        let up = eventually(Duration::from_secs(60), || async {
            TransactionServiceClient::connect(url.clone()).await.is_ok()
        })
        .await;
        assert!(up, "processor did not start; log: {}", process.log_text());
        process
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn client(&self) -> TransactionServiceClient<Channel> {
        TransactionServiceClient::connect(self.url())
            .await
            .expect("connect to the processor")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no cleanup, as a crash or an OOM kill.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then waits for the process to exit on its own.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "processor did not stop within 30 s of SIGTERM; log: {}",
            self.log_text()
        );
    }
}

impl Drop for ProcessorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Ingests `count` transactions with ids `prefix_…`, returning the ids the processor
/// accepted (answered OK). Calls that fail are not accepted and must leave no row.
pub async fn ingest_many(
    client: &TransactionServiceClient<Channel>,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..count {
        let mut client = client.clone();
        let id = unique_id(prefix);
        calls.spawn(async move {
            let mut request = tonic::Request::new(request(&id, "12.34"));
            request.set_timeout(Duration::from_secs(5));
            client.ingest_transaction(request).await.ok().map(|_| id)
        });
    }
    let mut accepted = Vec::new();
    while let Some(call) = calls.join_next().await {
        if let Some(id) = call.expect("task") {
            accepted.push(id);
        }
    }
    accepted
}

pub async fn get(client: &TransactionServiceClient<Channel>, id: &str) -> pb::Transaction {
    client
        .clone()
        .get_transaction(pb::GetTransactionRequest {
            transaction_id: id.to_owned(),
        })
        .await
        .expect("get")
        .into_inner()
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
        cluster.start_server();
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
        self.postgres_command(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
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

/// Entries the test's group has delivered and not acknowledged.
pub async fn pending(setup: &Setup, redis_url: &str) -> u64 {
    let client = fred::prelude::Client::new(
        fred::prelude::Config::from_url(redis_url).expect("url"),
        None,
        None,
        None,
    );
    fred::prelude::ClientLike::init(&client)
        .await
        .expect("redis");
    setup.pending_count(&client).await
}

/// A setup whose timings make faults play out in seconds: short delay, lease, outbox.
pub async fn quick_setup() -> Setup {
    let mut setup = Setup::new("2s").await;
    setup
        .set("LEASE_MARGIN", "2s")
        .set("RECONCILE_INTERVAL", "500ms")
        .set("REPUBLISH_AFTER", "3s")
        .set("RETRY_BASE_DELAY", "100ms")
        .set("SHUTDOWN_GRACE", "10s");
    setup
}
