//! Settings read once from the environment at start. Names and defaults are SPEC's; an
//! invalid value stops start-up with a message that names the variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::bail;
use service_support::{
    logging::Logging,
    secret_url::SecretUrl,
    settings::{non_empty, parse_addr, parse_bool, parse_duration, parse_number, parse_rate},
};

use crate::{external::SimulatedCall, processing::RetryPolicy};

/// Everything the processor needs to run, validated.
/// Every environment variable this binary reads (a unit test keeps the list exact; the
/// deployment files are checked against it).
pub const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_READ_URL",
    "DATABASE_READ_MAX_CONNECTIONS",
    "READ_STATEMENT_TIMEOUT",
    "REDIS_URL",
    "GRPC_ADDR",
    "PROCESSING_DELAY",
    "STREAM_KEY",
    "STREAM_SHARDS",
    "CONSUMER_GROUP",
    "CONSUMER_NAME",
    "MAX_IN_FLIGHT",
    "READ_BATCH_SIZE",
    "SHUTDOWN_GRACE",
    "RUN_MIGRATIONS",
    "LOG_FORMAT",
    "MAX_ATTEMPTS",
    "RETRY_BASE_DELAY",
    "RETRY_MAX_DELAY",
    "LEASE_MARGIN",
    "REPUBLISH_AFTER",
    "RETENTION",
    "RECONCILE_INTERVAL",
    "DEAD_LETTER_STREAM_KEY",
    "SIMULATED_FAILURE_RATE",
    "SIMULATED_FAILURE_ID_PREFIX",
    "METRICS_ADDR",
    "WATCH_POLL_INTERVAL",
    "RUST_LOG",
    "INGEST_BATCH_SIZE",
    "INGEST_WRITERS",
    "MAX_CONCURRENT_CALLS",
    "EXTERNAL_CALL_URL",
    "EXTERNAL_CALL_TIMEOUT",
    "GRPC_TLS_CERT_FILE",
    "GRPC_TLS_KEY_FILE",
    "GRPC_TLS_CLIENT_CA_FILE",
    "REDIS_TLS_CA_FILE",
    "REDIS_TLS_SKIP_VERIFY",
];

#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL, the source of truth.
    pub database_url: SecretUrl,
    /// `DATABASE_MAX_CONNECTIONS`: size of the PostgreSQL pool.
    pub database_max_connections: u32,
    /// `DATABASE_READ_URL`: where the API's reads (get, list, watch) go, e.g. a replica;
    /// `DATABASE_URL` unless set.
    pub database_read_url: SecretUrl,
    /// `DATABASE_READ_MAX_CONNECTIONS`: size of the reads' own pool, apart from the write
    /// path's, so reads can never take the connections ingest needs.
    pub database_read_max_connections: u32,
    /// `READ_STATEMENT_TIMEOUT`: PostgreSQL cancels a read running longer (and a read
    /// waits no longer for a connection); the caller gets UNAVAILABLE.
    pub read_statement_timeout: Duration,
    /// `REDIS_URL`: Redis holding the work stream.
    pub redis_url: SecretUrl,
    /// `GRPC_ADDR`: where the gRPC server listens.
    pub grpc_addr: SocketAddr,
    /// The external call each transaction stands for, real or simulated.
    pub external: ExternalCallSettings,
    /// Where the stream lives and who reads it.
    pub stream: StreamSettings,
    /// How much is read, held and written at once.
    pub batching: Batching,
    /// `SHUTDOWN_GRACE`: how long the calls under way may finish after SIGTERM; by
    /// default the longest call (`EXTERNAL_CALL_TIMEOUT`, or `PROCESSING_DELAY` when
    /// simulated) plus `SHUTDOWN_MARGIN`, so a graceful stop cuts no call.
    pub shutdown_grace: Duration,
    /// `RUN_MIGRATIONS`: apply pending migrations at start (`true` unless `false`).
    pub run_migrations: bool,
    /// `LOG_FORMAT` and `RUST_LOG` (`info`, sqlx's notices at `warn`, unless set).
    pub logging: Logging,
    /// `MAX_ATTEMPTS`: attempts of the external call before a transaction is FAILED;
    /// `RETRY_BASE_DELAY`: backoff before the second attempt, doubling each time,
    /// jittered; `RETRY_MAX_DELAY`: the longest backoff between two attempts.
    pub retry: RetryPolicy,
    /// `LEASE_MARGIN`: how long a consumer's leases (and its name) outlive its last
    /// heartbeat, which comes every third of it while the process lives, however long a
    /// call takes; past it, the consumer is presumed dead and others take its work over.
    pub lease_margin: Duration,
    /// `REPUBLISH_AFTER`: an unfinished, unclaimed transaction is published to the stream
    /// again after this long (the outbox: nothing committed depends on one XADD).
    pub republish_after: Duration,
    /// `RETENTION`: finished transactions (and their attempts and dead letters) older
    /// than this are deleted; unset, everything is kept.
    pub retention: Option<Duration>,
    /// `RECONCILE_INTERVAL`: how often the outbox looks for such transactions.
    pub reconcile_interval: Duration,
    /// `METRICS_ADDR`: where Prometheus metrics are served (`/metrics`).
    pub metrics_addr: SocketAddr,
    /// `WATCH_POLL_INTERVAL`: how often a WatchTransaction stream looks for changes.
    pub watch_poll_interval: Duration,
    /// `MAX_CONCURRENT_CALLS`: gRPC calls in progress per connection; more are refused
    /// at once with RESOURCE_EXHAUSTED (the gateway answers 503) instead of queueing.
    pub max_concurrent_calls: usize,
    /// `GRPC_TLS_CERT_FILE`, `GRPC_TLS_KEY_FILE`, `GRPC_TLS_CLIENT_CA_FILE`: TLS on the
    /// gRPC port; unset is plaintext.
    pub grpc_tls: Option<GrpcTls>,
    /// `REDIS_TLS_CA_FILE`, `REDIS_TLS_SKIP_VERIFY`: how a `rediss://` `REDIS_URL` is
    /// verified.
    pub redis_tls: RedisTls,
}

/// The external call: HTTP when `url` is set, else simulated.
#[derive(Clone, Debug)]
pub struct ExternalCallSettings {
    /// `EXTERNAL_CALL_URL`: where the external call is POSTed; unset, it is simulated.
    pub url: Option<reqwest::Url>,
    /// `EXTERNAL_CALL_TIMEOUT`: the deadline of one external call.
    pub timeout: Duration,
    /// `PROCESSING_DELAY`: how long the simulated call takes;
    /// `SIMULATED_FAILURE_RATE`: share (0 to 1) of simulated calls that fail;
    /// `SIMULATED_FAILURE_ID_PREFIX`: ids starting with it always fail (tests, demos).
    pub simulated: SimulatedCall,
}

impl ExternalCallSettings {
    /// The longest one external call may take.
    pub fn longest(&self) -> Duration {
        match self.url {
            Some(_) => self.timeout,
            None => self.simulated.delay,
        }
    }
}

/// The stream's names (each shard's are made from them, see `stream::shards`).
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// `STREAM_KEY`: the Redis Stream that carries transaction ids to process.
    pub key: String,
    /// `STREAM_SHARDS`: how many keys the stream is spread over (see `stream::shards`).
    pub shards: u32,
    /// `CONSUMER_GROUP`: the group all replicas read through.
    pub group: String,
    /// `CONSUMER_NAME`: this replica's name in the group.
    pub consumer_name: String,
    /// `DEAD_LETTER_STREAM_KEY`: where FAILED transactions are reported.
    pub dead_letter_key: String,
}

/// How much is read, held and written at once.
#[derive(Clone, Debug)]
pub struct Batching {
    /// `MAX_IN_FLIGHT`: transactions that may wait out their delay at once.
    pub max_in_flight: usize,
    /// `READ_BATCH_SIZE`: entries fetched per XREADGROUP.
    pub read_batch_size: usize,
    /// `INGEST_BATCH_SIZE`: most webhooks stored by one INSERT (a writer takes the ingests
    /// queued when it is free, up to this many).
    pub ingest_batch_size: usize,
    /// `INGEST_WRITERS`: ingest batches written at once.
    pub ingest_writers: usize,
}

/// Verification of a `rediss://` server; with a `redis://` URL these must stay unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// `REDIS_TLS_CA_FILE`: PEM CA(s) the server's certificate must chain to; unset, the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// `REDIS_TLS_SKIP_VERIFY`: accept any certificate (self-signed managed Redis).
    pub skip_verify: bool,
}

/// The gRPC port's certificate, and the CA its clients' certificates must be signed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcTls {
    /// `GRPC_TLS_CERT_FILE`: PEM certificate chain, the server's own first.
    pub cert_file: PathBuf,
    /// `GRPC_TLS_KEY_FILE`: PEM private key of that certificate.
    pub key_file: PathBuf,
    /// `GRPC_TLS_CLIENT_CA_FILE`: set, only clients presenting a certificate signed by this
    /// CA are served (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        // First, so a bad RUST_LOG is reported whatever else is wrong. By default not
        // sqlx's notices: one per migration check at start.
        let logging = Logging::from_lookup(&lookup, "info,sqlx=warn")?;
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        let database_url = get("DATABASE_URL", migration::DEFAULT_DATABASE_URL);
        let redis_url = get("REDIS_URL", "redis://127.0.0.1:6379/0");
        let mut config = Self {
            database_max_connections: parse_number(
                "DATABASE_MAX_CONNECTIONS",
                &get("DATABASE_MAX_CONNECTIONS", "20"),
            )?,
            database_read_url: SecretUrl::new(
                lookup("DATABASE_READ_URL")
                    .filter(|url| !url.is_empty())
                    .unwrap_or_else(|| database_url.clone()),
            ),
            database_url: SecretUrl::new(database_url),
            database_read_max_connections: parse_number(
                "DATABASE_READ_MAX_CONNECTIONS",
                &get("DATABASE_READ_MAX_CONNECTIONS", "5"),
            )?,
            // Past every gateway deadline (PROCESSOR_TIMEOUT, 450 ms): nobody waits longer.
            read_statement_timeout: parse_positive_duration(
                "READ_STATEMENT_TIMEOUT",
                &get("READ_STATEMENT_TIMEOUT", "500ms"),
            )?,
            grpc_addr: parse_addr("GRPC_ADDR", &get("GRPC_ADDR", "0.0.0.0:50051"))?,
            external: ExternalCallSettings::from_lookup(&lookup)?,
            stream: StreamSettings::from_lookup(&lookup)?,
            batching: Batching::from_lookup(&lookup)?,
            shutdown_grace: Duration::ZERO,
            run_migrations: parse_bool("RUN_MIGRATIONS", &get("RUN_MIGRATIONS", "true"))?,
            logging,
            retry: RetryPolicy {
                max_attempts: parse_number("MAX_ATTEMPTS", &get("MAX_ATTEMPTS", "5"))?,
                base_delay: parse_duration("RETRY_BASE_DELAY", &get("RETRY_BASE_DELAY", "1s"))?,
                max_delay: parse_duration("RETRY_MAX_DELAY", &get("RETRY_MAX_DELAY", "60s"))?,
            },
            lease_margin: parse_duration("LEASE_MARGIN", &get("LEASE_MARGIN", "15s"))?,
            republish_after: parse_duration("REPUBLISH_AFTER", &get("REPUBLISH_AFTER", "30s"))?,
            retention: lookup("RETENTION")
                .filter(|value| !value.trim().is_empty())
                .map(|value| parse_positive_duration("RETENTION", &value))
                .transpose()?,
            reconcile_interval: parse_duration(
                "RECONCILE_INTERVAL",
                &get("RECONCILE_INTERVAL", "5s"),
            )?,
            metrics_addr: parse_addr("METRICS_ADDR", &get("METRICS_ADDR", "0.0.0.0:9090"))?,
            max_concurrent_calls: parse_number(
                "MAX_CONCURRENT_CALLS",
                &get("MAX_CONCURRENT_CALLS", "1024"),
            )?,
            watch_poll_interval: parse_duration(
                "WATCH_POLL_INTERVAL",
                &get("WATCH_POLL_INTERVAL", "250ms"),
            )?,
            grpc_tls: parse_grpc_tls(&lookup)?,
            redis_tls: parse_redis_tls(&lookup, &redis_url)?,
            redis_url: SecretUrl::new(redis_url),
        };
        config.shutdown_grace = match lookup("SHUTDOWN_GRACE") {
            Some(grace) => parse_duration("SHUTDOWN_GRACE", &grace)?,
            None => config.longest_call() + SHUTDOWN_MARGIN,
        };
        Ok(config)
    }

    /// The longest one external call may take.
    pub fn longest_call(&self) -> Duration {
        self.external.longest()
    }

    /// How long a platform must wait after SIGTERM before it kills the processor: the
    /// grace, then the steps that record the last calls.
    pub fn stop_deadline(&self) -> Duration {
        self.shutdown_grace + crate::processing::STEP_WIND_DOWN
    }
}

/// What the default `SHUTDOWN_GRACE` allows beyond the longest call: recording it.
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(10);

impl ExternalCallSettings {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        Ok(Self {
            url: lookup("EXTERNAL_CALL_URL")
                .filter(|url| !url.is_empty())
                .map(|url| parse_http_url("EXTERNAL_CALL_URL", &url))
                .transpose()?,
            timeout: parse_duration(
                "EXTERNAL_CALL_TIMEOUT",
                &get("EXTERNAL_CALL_TIMEOUT", "30s"),
            )?,
            simulated: SimulatedCall {
                delay: parse_duration("PROCESSING_DELAY", &get("PROCESSING_DELAY", "30s"))?,
                failure_rate: parse_rate(
                    "SIMULATED_FAILURE_RATE",
                    &get("SIMULATED_FAILURE_RATE", "0"),
                )?,
                failing_id_prefix: lookup("SIMULATED_FAILURE_ID_PREFIX").filter(|p| !p.is_empty()),
            },
        })
    }
}

impl StreamSettings {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        let key = non_empty("STREAM_KEY", get("STREAM_KEY", "transactions"))?;
        Ok(Self {
            shards: parse_number("STREAM_SHARDS", &get("STREAM_SHARDS", "1"))?,
            group: non_empty("CONSUMER_GROUP", get("CONSUMER_GROUP", "processors"))?,
            consumer_name: match lookup("CONSUMER_NAME") {
                Some(name) => non_empty("CONSUMER_NAME", name)?,
                None => default_consumer_name(),
            },
            dead_letter_key: match lookup("DEAD_LETTER_STREAM_KEY") {
                Some(key) => non_empty("DEAD_LETTER_STREAM_KEY", key)?,
                None => format!("{key}:dead-letter"),
            },
            key,
        })
    }
}

impl Batching {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        Ok(Self {
            // 100 000 at a 30 s delay is 3 300 transactions/s per processor, in ~40 MB.
            max_in_flight: parse_number("MAX_IN_FLIGHT", &get("MAX_IN_FLIGHT", "100000"))?,
            read_batch_size: parse_number("READ_BATCH_SIZE", &get("READ_BATCH_SIZE", "256"))?,
            ingest_batch_size: parse_number("INGEST_BATCH_SIZE", &get("INGEST_BATCH_SIZE", "256"))?,
            ingest_writers: parse_number("INGEST_WRITERS", &get("INGEST_WRITERS", "4"))?,
        })
    }
}

/// Blank counts as unset, as an empty line in an env file would be.
fn path_setting(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<PathBuf> {
    lookup(name)
        .filter(|value| !value.trim().is_empty())
        .map(PathBuf::from)
}

fn parse_redis_tls(
    lookup: &impl Fn(&str) -> Option<String>,
    redis_url: &str,
) -> anyhow::Result<RedisTls> {
    let tls = RedisTls {
        ca_file: path_setting(lookup, "REDIS_TLS_CA_FILE"),
        skip_verify: parse_bool(
            "REDIS_TLS_SKIP_VERIFY",
            &lookup("REDIS_TLS_SKIP_VERIFY").unwrap_or_else(|| "false".to_owned()),
        )?,
    };
    if tls.ca_file.is_some() && tls.skip_verify {
        bail!("REDIS_TLS_CA_FILE and REDIS_TLS_SKIP_VERIFY=true contradict each other: set one");
    }
    let uses_tls = redis_url.starts_with("rediss://") || redis_url.starts_with("rediss-");
    if !uses_tls && tls != RedisTls::default() {
        bail!(
            "REDIS_TLS_CA_FILE and REDIS_TLS_SKIP_VERIFY apply to a rediss:// REDIS_URL; this one is plaintext"
        );
    }
    Ok(tls)
}

fn parse_grpc_tls(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<GrpcTls>> {
    let cert_file = path_setting(lookup, "GRPC_TLS_CERT_FILE");
    let key_file = path_setting(lookup, "GRPC_TLS_KEY_FILE");
    let client_ca_file = path_setting(lookup, "GRPC_TLS_CLIENT_CA_FILE");
    match (cert_file, key_file) {
        (Some(cert_file), Some(key_file)) => Ok(Some(GrpcTls {
            cert_file,
            key_file,
            client_ca_file,
        })),
        (None, None) if client_ca_file.is_some() => bail!(
            "GRPC_TLS_CLIENT_CA_FILE needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE: mutual TLS is TLS first"
        ),
        (None, None) => Ok(None),
        _ => bail!("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE must be set together"),
    }
}

/// Host name and process id: unique per replica, and stable in a container (pid 1).
fn default_consumer_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{host}-{}", std::process::id())
}

fn parse_http_url(name: &str, value: &str) -> anyhow::Result<reqwest::Url> {
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        _ => bail!("{name}={value:?} is not an http:// or https:// URL"),
    }
}

/// A duration where zero would mean "no limit" to PostgreSQL, which is never meant.
fn parse_positive_duration(name: &str, value: &str) -> anyhow::Result<Duration> {
    match parse_duration(name, value)? {
        duration if duration.is_zero() => bail!("{name}={value:?} must be more than zero"),
        duration => Ok(duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::from_lookup(service_support::settings::from_pairs(pairs))
    }

    #[test]
    fn defaults_are_specs() -> anyhow::Result<()> {
        let config = config_with(&[])?;
        assert_eq!(config.grpc_addr.to_string(), "0.0.0.0:50051");
        assert_eq!(config.external.simulated.delay, Duration::from_secs(30));
        assert_eq!(config.stream.key, "transactions");
        assert_eq!(config.stream.group, "processors");
        assert_eq!(config.redis_url.expose(), "redis://127.0.0.1:6379/0");
        assert_eq!(config.external.url, None);
        assert_eq!(config.external.timeout, Duration::from_secs(30));
        assert_eq!(config.database_read_url, config.database_url);
        assert_eq!(config.read_statement_timeout, Duration::from_millis(500));
        assert_eq!(config.retention, None);
        assert_eq!(config.stream.shards, 1);
        assert_eq!(config.shutdown_grace, Duration::from_secs(40));
        assert!(
            config
                .stream
                .consumer_name
                .ends_with(&format!("-{}", std::process::id()))
        );
        Ok(())
    }

    #[test]
    fn the_default_grace_covers_the_longest_call() -> anyhow::Result<()> {
        let simulated = config_with(&[("PROCESSING_DELAY", "5s")])?;
        assert_eq!(simulated.shutdown_grace, Duration::from_secs(15));
        let real = config_with(&[
            ("PROCESSING_DELAY", "5s"),
            ("EXTERNAL_CALL_URL", "https://downstream.example/calls"),
            ("EXTERNAL_CALL_TIMEOUT", "50s"),
        ])?;
        assert_eq!(real.shutdown_grace, Duration::from_secs(60));
        let set = config_with(&[("SHUTDOWN_GRACE", "3s")])?;
        assert_eq!(set.shutdown_grace, Duration::from_secs(3));
        Ok(())
    }

    #[test]
    fn delay_accepts_human_durations() -> anyhow::Result<()> {
        let config = config_with(&[("PROCESSING_DELAY", "500ms")])?;
        assert_eq!(config.external.simulated.delay, Duration::from_millis(500));
        let config = config_with(&[("RETENTION", "90d")])?;
        assert_eq!(config.retention, Some(Duration::from_secs(90 * 86_400)));
        Ok(())
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("PROCESSING_DELAY", "soon"),
            ("GRPC_ADDR", "port 50051"),
            ("MAX_IN_FLIGHT", "0"),
            ("LOG_FORMAT", "xml"),
            ("RUST_LOG", "info,processor=loud"),
            ("STREAM_KEY", " "),
            ("SIMULATED_FAILURE_RATE", "1.5"),
            ("MAX_ATTEMPTS", "0"),
            ("LEASE_MARGIN", "a while"),
            ("EXTERNAL_CALL_URL", "ftp://downstream/calls"),
            ("EXTERNAL_CALL_URL", "not a url"),
            ("EXTERNAL_CALL_TIMEOUT", "never"),
            ("DATABASE_READ_MAX_CONNECTIONS", "0"),
            ("READ_STATEMENT_TIMEOUT", "quick"),
            ("READ_STATEMENT_TIMEOUT", "0s"),
            ("RETENTION", "forever"),
            ("RETENTION", "0d"),
            ("STREAM_SHARDS", "0"),
        ] {
            let error = config_with(&[(name, value)])
                .err()
                .map(|e| format!("{e:#}"));
            assert!(
                error.as_deref().is_some_and(|e| e.contains(name)),
                "{name}={value}: {error:?}"
            );
        }
    }

    #[test]
    fn grpc_tls_needs_a_certificate_and_its_key() -> anyhow::Result<()> {
        assert_eq!(config_with(&[])?.grpc_tls, None);
        let config = config_with(&[
            ("GRPC_TLS_CERT_FILE", "/tls/server.pem"),
            ("GRPC_TLS_KEY_FILE", "/tls/server.key"),
            ("GRPC_TLS_CLIENT_CA_FILE", "/tls/clients.pem"),
        ])?;
        assert_eq!(
            config.grpc_tls,
            Some(GrpcTls {
                cert_file: "/tls/server.pem".into(),
                key_file: "/tls/server.key".into(),
                client_ca_file: Some("/tls/clients.pem".into()),
            })
        );
        service_support::settings::assert_refused_naming(
            config_with,
            &[
                (
                    &[("GRPC_TLS_CERT_FILE", "/tls/server.pem")],
                    "GRPC_TLS_KEY_FILE",
                ),
                (
                    &[("GRPC_TLS_KEY_FILE", "/tls/server.key")],
                    "GRPC_TLS_CERT_FILE",
                ),
                (
                    &[("GRPC_TLS_CLIENT_CA_FILE", "/tls/clients.pem")],
                    "GRPC_TLS_CERT_FILE",
                ),
            ],
        );
        Ok(())
    }

    #[test]
    fn redis_tls_settings_need_a_rediss_url_and_do_not_contradict() -> anyhow::Result<()> {
        let rediss = ("REDIS_URL", "rediss://:secret@redis.example:6380/0");
        let config = config_with(&[rediss, ("REDIS_TLS_CA_FILE", "/tls/redis-ca.pem")])?;
        assert_eq!(config.redis_tls.ca_file, Some("/tls/redis-ca.pem".into()));
        assert!(
            config_with(&[rediss, ("REDIS_TLS_SKIP_VERIFY", "true")])?
                .redis_tls
                .skip_verify
        );
        let errors = service_support::settings::assert_refused_naming(
            config_with,
            &[
                (&[("REDIS_TLS_SKIP_VERIFY", "true")], "REDIS_TLS_"),
                (
                    &[
                        rediss,
                        ("REDIS_TLS_CA_FILE", "/tls/redis-ca.pem"),
                        ("REDIS_TLS_SKIP_VERIFY", "true"),
                    ],
                    "REDIS_TLS_",
                ),
                (&[rediss, ("REDIS_TLS_SKIP_VERIFY", "maybe")], "REDIS_TLS_"),
            ],
        );
        for error in errors {
            assert!(!error.contains("secret"), "the URL's password never prints");
        }
        Ok(())
    }

    #[test]
    fn urls_print_without_their_passwords() -> anyhow::Result<()> {
        let config = config_with(&[
            ("DATABASE_URL", "postgres://user:hunter2@host/db"),
            ("REDIS_URL", "redis://:hunter2@host:6379"),
        ])?;
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("postgres://user:***@host/db"), "{printed}");
        assert!(printed.contains("redis://:***@host:6379"), "{printed}");
        // The connections still get the real URLs, the reads' one included.
        assert_eq!(
            config.database_url.expose(),
            "postgres://user:hunter2@host/db"
        );
        assert_eq!(
            config.database_read_url.expose(),
            config.database_url.expose()
        );
        assert_eq!(config.redis_url.expose(), "redis://:hunter2@host:6379");
        Ok(())
    }

    #[test]
    fn variables_lists_exactly_what_is_read() {
        service_support::settings::assert_reads_exactly(VARIABLES, |lookup| {
            let _ = Config::from_lookup(lookup);
        });
    }
}
