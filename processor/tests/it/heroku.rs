//! The Procfile's lines run as written, the way Heroku's Common Runtime runs them: a slug
//! with the binaries in target/release, the variables Heroku sets (`PORT`, `DATABASE_URL`
//! with `sslmode=require`, `REDIS_URL` as `rediss://` with a self-signed certificate), a
//! `web` dyno holding the gateway and a processor, and a `worker` dyno holding another
//! processor of the same group. The seed's scenarios pass through it, and the web dyno ends
//! when either of its halves dies.

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use test_support::{PostgresCluster, RedisServer, free_port, tls::TestCa};

use crate::helpers::{eventually, unique_id};

const API_TOKEN: &str = "heroku-test-token-0123456789abcdef01";

/// `kind: command` of each Procfile line.
fn procfile() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Procfile"))
        .expect("Procfile");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (kind, command) = line.split_once(':').expect("kind: command");
            (kind.trim().to_owned(), command.trim().to_owned())
        })
        .collect()
}

/// A slug as the buildpack leaves it: the repository's deploy/ and the three binaries in
/// target/release (here the ones this test run built).
fn slug() -> PathBuf {
    let built = Path::new(env!("CARGO_BIN_EXE_processor"))
        .parent()
        .expect("target directory")
        .to_owned();
    let slug = std::env::temp_dir().join(format!("pw-slug-{}", uuid::Uuid::new_v4().simple()));
    let release = slug.join("target/release");
    std::fs::create_dir_all(&release).expect("slug");
    for binary in ["processor", "ingest-gateway", "migration"] {
        let path = built.join(binary);
        assert!(
            path.exists(),
            "{} is missing: build every binary first (cargo build --bins, as cargo test --workspace does)",
            path.display()
        );
        std::os::unix::fs::symlink(&path, release.join(binary)).expect("link a binary");
    }
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy"),
        slug.join("deploy"),
    )
    .expect("link deploy/");
    slug
}

struct Dyno {
    child: Child,
    log: PathBuf,
}

impl Dyno {
    /// `bash -c COMMAND` in the slug, in a process group of its own, as a dyno runs it.
    fn start(slug: &Path, name: &str, command: &str, env: &[(&str, String)]) -> Self {
        let log = slug.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new("bash")
            .arg("-c")
            .arg(command)
            .current_dir(slug)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("start the dyno's command");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The pids of this dyno's processes running `program`.
    fn processes(&self, program: &str) -> Vec<u32> {
        let group = self.child.id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let fields: Vec<&str> = stat
                    .rsplit(") ")
                    .next()
                    .unwrap_or_default()
                    .split(' ')
                    .collect();
                let in_group = fields.get(2).is_some_and(|pgid| *pgid == group.to_string());
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                in_group && exe.file_name().is_some_and(|name| name == program)
            })
            .collect()
    }

    fn signal(&self, signal: Signal, pid: u32) {
        let pid = i32::try_from(pid).expect("a pid fits an i32");
        assert!(pid > 1, "pid {pid}");
        nix::sys::signal::kill(Pid::from_raw(pid), signal)
            .unwrap_or_else(|error| panic!("kill {signal} {pid}: {error}"));
    }

    /// Waits for the dyno's command to end, at most `limit`.
    async fn exit_status(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

impl Drop for Dyno {
    fn drop(&mut self) {
        // The whole group: the dyno's command and whatever it started. killpg(2), not the
        // kill command: procps-ng's `kill -KILL -<pgid>` kills every process (pid -1).
        if let Ok(group) = i32::try_from(self.child.id())
            && group > 1
        {
            let _ = nix::sys::signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_procfile_runs_as_written_on_herokus_variables() {
    let ca = TestCa::new("managed services' CA");
    let redis = RedisServer::start_tls(&ca).await;
    let postgres = PostgresCluster::start_tls(&ca).await;
    postgres.create_database("webhooks").await;
    let database_url = format!(
        "postgres://postgres@127.0.0.1:{}/webhooks?sslmode=require",
        postgres.port
    );
    let slug = slug();
    let processes = procfile();
    let port = free_port();
    // What `heroku config` would hold: the add-ons' URLs and the app's own settings.
    let config = vec![
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("DATABASE_URL", database_url.clone()),
        ("REDIS_URL", redis.url()),
        ("REDIS_TLS_SKIP_VERIFY", "true".to_owned()),
        ("PROCESSING_DELAY", "2s".to_owned()),
        ("API_TOKENS", API_TOKEN.to_owned()),
        ("ALLOW_UNSIGNED_WEBHOOKS", "true".to_owned()),
    ];
    let release = Command::new("bash")
        .arg("-c")
        .arg(&processes["release"])
        .current_dir(&slug)
        .envs(config.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run the release phase");
    assert!(
        release.status.success(),
        "release: {}",
        String::from_utf8_lossy(&release.stderr)
    );

    let mut web_env = config.clone();
    web_env.push(("PORT", port.to_string()));
    let mut web = Dyno::start(&slug, "web", &processes["web"], &web_env);
    // A worker dyno has ports of its own; on this one machine it needs other ones.
    let mut worker_env = config.clone();
    worker_env.push(("GRPC_ADDR", format!("127.0.0.1:{}", free_port())));
    worker_env.push(("METRICS_ADDR", format!("127.0.0.1:{}", free_port())));
    let mut worker = Dyno::start(&slug, "worker", &processes["worker"], &worker_env);

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let ready = eventually(Duration::from_secs(60), || async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ready, "the web dyno is ready on $PORT; log:\n{}", web.log());

    let id = unique_id("heroku");
    let webhook = json!({
        "transaction_id": id,
        "source_account": "acc_user_789",
        "destination_account": "acc_merchant_456",
        "amount": 1500,
        "currency": "INR"
    });
    let post = || {
        http.post(format!("{base}/v1/webhooks/transactions"))
            .json(&webhook)
            .send()
    };
    assert_eq!(
        post().await.unwrap().status(),
        reqwest::StatusCode::ACCEPTED
    );
    let status = || async {
        http.get(format!("{base}/v1/transactions/{id}"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    assert_eq!(status().await["status"], "PROCESSING");
    let processed = eventually(Duration::from_secs(30), || async {
        status().await["status"] == "PROCESSED"
    })
    .await;
    assert!(
        processed,
        "PROCESSED after the delay; web:\n{}\nworker:\n{}",
        web.log(),
        worker.log()
    );
    assert_eq!(
        post().await.unwrap().status(),
        reqwest::StatusCode::ACCEPTED,
        "duplicate"
    );
    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    let rows = db
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT count(*) AS n, max(attempts) AS attempts FROM transactions WHERE transaction_id = '{id}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rows.try_get::<i64>("", "n").unwrap(),
        1,
        "a duplicate makes no row"
    );
    assert_eq!(
        rows.try_get::<i32>("", "attempts").unwrap(),
        1,
        "nor a second processing"
    );

    // The worker dyno is a processor of the same group; SIGTERM stops it cleanly.
    let [worker_processor] = worker.processes("processor")[..] else {
        panic!("one processor in the worker dyno: {}", worker.log());
    };
    worker.signal(Signal::SIGTERM, worker_processor);
    let stopped = worker.exit_status(Duration::from_secs(30)).await;
    assert!(
        stopped.is_some_and(|s| s.success()),
        "worker: {stopped:?}\n{}",
        worker.log()
    );

    // Half of the web dyno dies: the dyno ends, non-zero, so Heroku restarts it.
    let [web_processor] = web.processes("processor")[..] else {
        panic!("one processor in the web dyno: {}", web.log());
    };
    web.signal(Signal::SIGKILL, web_processor);
    let ended = web.exit_status(Duration::from_secs(30)).await;
    assert!(
        ended.is_some_and(|s| !s.success()),
        "the web dyno ends when its processor dies: {ended:?}\n{}",
        web.log()
    );
    assert!(
        web.processes("ingest-gateway").is_empty(),
        "the gateway went with it"
    );
    let _ = std::fs::remove_dir_all(&slug);
}
