//! Settings read once from the environment at start. Names and defaults are SPEC's; an
//! invalid value stops start-up with a message that names the variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::bail;
use service_support::{
    logging::Logging,
    settings::{parse_addr, parse_bool, parse_duration, parse_number},
};

use crate::{
    auth::{BearerTokens, MIN_API_TOKEN_LENGTH},
    routes::Limits,
    server::ConnectionLimits,
    signatures::{Secrets, Verifier},
};

/// Shortest `ADMIN_TOKEN` accepted.
pub const MIN_ADMIN_TOKEN_LENGTH: usize = 16;

/// Every environment variable this binary reads (a unit test keeps the list exact; the
/// deployment files are checked against it).
pub const VARIABLES: &[&str] = &[
    "HTTP_ADDR",
    "PROCESSOR_URL",
    "PROCESSOR_TIMEOUT",
    "MAX_BODY_BYTES",
    "LOG_FORMAT",
    "MAX_CONCURRENT_REQUESTS",
    "REQUEST_TIMEOUT",
    "RAZORPAY_WEBHOOK_SECRET",
    "STANDARD_WEBHOOKS_SECRET",
    "STRIPE_WEBHOOK_SECRET",
    "WEBHOOK_TOLERANCE",
    "RUST_LOG",
    "ADMIN_TOKEN",
    "ALLOW_UNSIGNED_WEBHOOKS",
    "API_TOKENS",
    "ALLOW_UNAUTHENTICATED_READS",
    "METRICS_ADDR",
    "PROCESSOR_TLS_CA_FILE",
    "PROCESSOR_TLS_CERT_FILE",
    "PROCESSOR_TLS_KEY_FILE",
    "MAX_CONCURRENT_READS",
    "BODY_READ_TIMEOUT",
    "HEADER_READ_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_HEADER_BYTES",
];

/// hyper's smallest read buffer: a head limit below it cannot be set.
pub const MIN_HEADER_BYTES: usize = 8192;

#[derive(Clone, Debug)]
pub struct Config {
    /// `HTTP_ADDR`: where the REST API listens.
    pub http_addr: SocketAddr,
    /// `PROCESSOR_URL`: the processor's gRPC endpoint.
    pub processor_url: String,
    /// `PROCESSOR_TIMEOUT`: deadline of every gRPC call. Below 500 ms so that a slow
    /// processor turns into a quick 503 rather than a slow answer.
    pub processor_timeout: Duration,
    /// `MAX_BODY_BYTES`: largest webhook body accepted (413 above it).
    pub max_body_bytes: usize,
    /// `LOG_FORMAT` and `RUST_LOG` (`info` unless set).
    pub logging: Logging,
    /// What bounds the API routes' work:
    /// - `MAX_CONCURRENT_REQUESTS`: webhooks handled at once (their bodies read); past it
    ///   the gateway sheds with 503 at once rather than queueing. The default, 256, keeps
    ///   p99 under 500 ms at 1024 connections on 2 cores, and 256 connections are all
    ///   served instead of 95 % shed as at 64 (BENCHMARKS.md; batched gRPC calls made the
    ///   larger limit affordable).
    /// - `REQUEST_TIMEOUT`: the most an API request may take once its body is read (503
    ///   past it). Defaults to `PROCESSOR_TIMEOUT` plus 500 ms; must exceed
    ///   `PROCESSOR_TIMEOUT`.
    /// - `MAX_CONCURRENT_READS`: reads (status, list, admin) handled at once, a budget
    ///   apart from the webhooks' so that reads never starve ingest.
    /// - `BODY_READ_TIMEOUT`: the most a request's body may take to arrive (408 past it).
    pub limits: Limits,
    /// What bounds the connections:
    /// - `HEADER_READ_TIMEOUT`: the most a request head may take (the connection is
    ///   closed).
    /// - `IDLE_TIMEOUT`: a connection with nothing moving for this long is closed (between
    ///   requests, or a peer not reading our answer). Must exceed `REQUEST_TIMEOUT`.
    /// - `MAX_CONNECTIONS`: connections open at once; past it a new one is closed at once.
    /// - `MAX_HEADER_BYTES`: the largest request head (431 above it); at least 8192.
    pub connections: ConnectionLimits,
    /// `RAZORPAY_WEBHOOK_SECRET`, `STANDARD_WEBHOOKS_SECRET`, `STRIPE_WEBHOOK_SECRET` and
    /// `WEBHOOK_TOLERANCE`: webhook signature checks (the secrets never print).
    pub signatures: Verifier,
    /// `ADMIN_TOKEN`: bearer token of the admin routes; unset disables them.
    pub admin_token: Option<BearerTokens>,
    /// `ALLOW_UNSIGNED_WEBHOOKS=true`: start with no signature secret, accepting unsigned
    /// webhooks (local use). Without it, no secret stops start-up.
    pub allow_unsigned_webhooks: bool,
    /// `API_TOKENS`: bearer tokens of the read routes, comma-separated for rotation. `None`
    /// only with `ALLOW_UNAUTHENTICATED_READS=true`; without either, start-up stops.
    pub api_tokens: Option<BearerTokens>,
    /// `ALLOW_UNAUTHENTICATED_READS=true`: without `API_TOKENS`, reads need no token.
    pub allow_unauthenticated_reads: bool,
    /// `METRICS_ADDR`: where `/metrics` is served, apart from the API port.
    pub metrics_addr: SocketAddr,
    /// `PROCESSOR_TLS_CA_FILE`, `PROCESSOR_TLS_CERT_FILE`, `PROCESSOR_TLS_KEY_FILE`: how
    /// an `https://` `PROCESSOR_URL` is verified, and the certificate shown to it.
    pub processor_tls: ProcessorTls,
}

/// TLS towards the processor; it applies only to an `https://` `PROCESSOR_URL` (an
/// `http://` one with any of these set is refused at start, not silently plaintext).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessorTls {
    /// `PROCESSOR_TLS_CA_FILE`: PEM CA the processor's certificate must be signed by;
    /// unset, the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `PROCESSOR_TLS_CERT_FILE` and `PROCESSOR_TLS_KEY_FILE`: the client certificate and
    /// its key, for a processor that requires one (mutual TLS).
    pub client_identity: Option<ClientIdentity>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        // First, so a bad RUST_LOG is reported whatever else is wrong.
        let logging = Logging::from_lookup(&lookup, "info")?;
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        let http_addr = parse_addr("HTTP_ADDR", &get("HTTP_ADDR", "0.0.0.0:8000"))?;
        let processor_url = get("PROCESSOR_URL", "http://127.0.0.1:50051");
        if !(processor_url.starts_with("http://") || processor_url.starts_with("https://")) {
            bail!("PROCESSOR_URL={processor_url:?} must be an http:// or https:// URL");
        }
        let processor_tls = parse_processor_tls(&lookup)?;
        if processor_url.starts_with("http://") && processor_tls != ProcessorTls::default() {
            bail!(
                "PROCESSOR_TLS_CA_FILE, PROCESSOR_TLS_CERT_FILE and PROCESSOR_TLS_KEY_FILE apply to an https:// PROCESSOR_URL, not {processor_url:?}"
            );
        }
        let timeout = get("PROCESSOR_TIMEOUT", "450ms");
        let processor_timeout = parse_duration("PROCESSOR_TIMEOUT", &timeout)?;
        let request_timeout = match lookup("REQUEST_TIMEOUT") {
            None => processor_timeout + Duration::from_millis(500),
            Some(text) => match humantime::parse_duration(&text) {
                Ok(duration) if duration > processor_timeout => duration,
                _ => bail!(
                    "REQUEST_TIMEOUT={text:?} must be a duration such as 1s, longer than PROCESSOR_TIMEOUT ({timeout})"
                ),
            },
        };
        let tolerance = get("WEBHOOK_TOLERANCE", "5m");
        let tolerance = match humantime::parse_duration(&tolerance) {
            Ok(duration) if duration >= Duration::from_secs(1) => duration,
            _ => bail!(
                "WEBHOOK_TOLERANCE={tolerance:?} must be a duration of at least 1s, such as 5m"
            ),
        };
        let razorpay = lookup("RAZORPAY_WEBHOOK_SECRET");
        let standard_webhooks = lookup("STANDARD_WEBHOOKS_SECRET");
        let stripe = lookup("STRIPE_WEBHOOK_SECRET");
        let signatures = Verifier::new(
            Secrets {
                razorpay: razorpay.as_deref(),
                standard_webhooks: standard_webhooks.as_deref(),
                stripe: stripe.as_deref(),
            },
            tolerance,
        )?;
        let allow_unsigned_webhooks = parse_bool(
            "ALLOW_UNSIGNED_WEBHOOKS",
            &get("ALLOW_UNSIGNED_WEBHOOKS", "false"),
        )?;
        let api_tokens = BearerTokens::parse(
            "API_TOKENS",
            lookup("API_TOKENS"),
            MIN_API_TOKEN_LENGTH,
            true,
        )?;
        let allow_unauthenticated_reads = parse_bool(
            "ALLOW_UNAUTHENTICATED_READS",
            &get("ALLOW_UNAUTHENTICATED_READS", "false"),
        )?;
        // A deadline of zero would close every connection: refused.
        let deadline = |name: &str, default: &str| -> anyhow::Result<Duration> {
            match parse_duration(name, &get(name, default))? {
                Duration::ZERO => bail!("{name} must be longer than 0s"),
                duration => Ok(duration),
            }
        };
        let body_read_timeout = deadline("BODY_READ_TIMEOUT", "10s")?;
        let header_read_timeout = deadline("HEADER_READ_TIMEOUT", "10s")?;
        let idle_timeout = deadline("IDLE_TIMEOUT", "60s")?;
        if idle_timeout <= request_timeout {
            bail!(
                "IDLE_TIMEOUT={idle_timeout:?} must be longer than REQUEST_TIMEOUT ({request_timeout:?}): a request waiting on the processor moves no bytes"
            );
        }
        let max_header_bytes = parse_number("MAX_HEADER_BYTES", &get("MAX_HEADER_BYTES", "16384"))?;
        if max_header_bytes < MIN_HEADER_BYTES {
            bail!("MAX_HEADER_BYTES={max_header_bytes} must be at least {MIN_HEADER_BYTES}");
        }
        let config = Self {
            http_addr,
            processor_url,
            processor_timeout,
            max_body_bytes: parse_number("MAX_BODY_BYTES", &get("MAX_BODY_BYTES", "65536"))?,
            logging,
            limits: Limits {
                max_concurrent_webhooks: parse_number(
                    "MAX_CONCURRENT_REQUESTS",
                    &get("MAX_CONCURRENT_REQUESTS", "256"),
                )?,
                max_concurrent_reads: parse_number(
                    "MAX_CONCURRENT_READS",
                    &get("MAX_CONCURRENT_READS", "64"),
                )?,
                request_timeout,
                body_read_timeout,
            },
            connections: ConnectionLimits {
                max_connections: parse_number("MAX_CONNECTIONS", &get("MAX_CONNECTIONS", "2048"))?,
                max_header_bytes,
                header_read_timeout,
                idle_timeout,
            },
            signatures,
            admin_token: BearerTokens::parse(
                "ADMIN_TOKEN",
                lookup("ADMIN_TOKEN"),
                MIN_ADMIN_TOKEN_LENGTH,
                false,
            )?,
            allow_unsigned_webhooks,
            api_tokens,
            allow_unauthenticated_reads,
            metrics_addr: parse_addr("METRICS_ADDR", &get("METRICS_ADDR", "0.0.0.0:9091"))?,
            processor_tls,
        };
        config.fail_closed()?;
        Ok(config)
    }
}

impl Config {
    /// An open door is only ever a stated choice: no signature secret and no read token
    /// each stop start-up unless their `ALLOW_*` says so. Checked last, so every variable
    /// has been read (and any invalid one reported) first.
    fn fail_closed(&self) -> anyhow::Result<()> {
        if self.signatures.schemes().is_empty() && !self.allow_unsigned_webhooks {
            bail!(
                "no webhook signature secret: set RAZORPAY_WEBHOOK_SECRET, STANDARD_WEBHOOKS_SECRET or STRIPE_WEBHOOK_SECRET, or ALLOW_UNSIGNED_WEBHOOKS=true to accept unsigned webhooks (local use only)"
            );
        }
        if self.api_tokens.is_none() && !self.allow_unauthenticated_reads {
            bail!(
                "no API_TOKENS: set API_TOKENS (bearer tokens of {MIN_API_TOKEN_LENGTH} or more characters, comma-separated) or ALLOW_UNAUTHENTICATED_READS=true to serve reads to anyone (local use only)"
            );
        }
        Ok(())
    }
}

/// Blank counts as unset.
fn path_setting(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<PathBuf> {
    lookup(name)
        .filter(|value| !value.trim().is_empty())
        .map(PathBuf::from)
}

fn parse_processor_tls(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<ProcessorTls> {
    let client_identity = match (
        path_setting(lookup, "PROCESSOR_TLS_CERT_FILE"),
        path_setting(lookup, "PROCESSOR_TLS_KEY_FILE"),
    ) {
        (Some(cert_file), Some(key_file)) => Some(ClientIdentity {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        _ => bail!("PROCESSOR_TLS_CERT_FILE and PROCESSOR_TLS_KEY_FILE must be set together"),
    };
    Ok(ProcessorTls {
        ca_file: path_setting(lookup, "PROCESSOR_TLS_CA_FILE"),
        client_identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: [(&str, &str); 2] = [
        ("ALLOW_UNSIGNED_WEBHOOKS", "true"),
        ("ALLOW_UNAUTHENTICATED_READS", "true"),
    ];

    /// `pairs`, with both doors stated open unless `pairs` says otherwise.
    fn config_with(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        let mut all = pairs.to_vec();
        all.extend(
            OPEN.iter()
                .filter(|(name, _)| !pairs.iter().any(|(n, _)| n == name)),
        );
        Config::from_lookup(service_support::settings::from_pairs(&all))
    }

    fn start_up_error(pairs: &[(&str, &str)]) -> String {
        Config::from_lookup(service_support::settings::from_pairs(pairs))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    }

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn without_a_signature_secret_or_read_tokens_start_up_stops_naming_the_variables() {
        let error = start_up_error(&[("API_TOKENS", TOKEN)]);
        for name in [
            "RAZORPAY_WEBHOOK_SECRET",
            "STANDARD_WEBHOOKS_SECRET",
            "STRIPE_WEBHOOK_SECRET",
            "ALLOW_UNSIGNED_WEBHOOKS",
        ] {
            assert!(error.contains(name), "{name} not named: {error}");
        }
        let error = start_up_error(&[("STRIPE_WEBHOOK_SECRET", "whsec_x")]);
        for name in ["API_TOKENS", "ALLOW_UNAUTHENTICATED_READS"] {
            assert!(error.contains(name), "{name} not named: {error}");
        }
        let error = start_up_error(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("ALLOW_UNSIGNED_WEBHOOKS", "false"),
            ("ALLOW_UNAUTHENTICATED_READS", "false"),
        ]);
        assert!(error.contains("API_TOKENS"), "{error}");
        // A secret and tokens: no flag needed.
        let config = Config::from_lookup(service_support::settings::from_pairs(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("API_TOKENS", TOKEN),
        ]));
        assert!(config.is_ok_and(|c| c.api_tokens.is_some() && !c.allow_unsigned_webhooks));
        // Both stated open: starts.
        assert!(config_with(&[]).is_ok());
    }

    #[test]
    fn defaults_are_specs() -> anyhow::Result<()> {
        let config = config_with(&[])?;
        assert_eq!(config.metrics_addr.to_string(), "0.0.0.0:9091");
        assert_eq!(config.limits.max_concurrent_reads, 64);
        assert_eq!(config.limits.body_read_timeout, Duration::from_secs(10));
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(config.connections.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.connections.max_connections, 2048);
        assert_eq!(config.connections.max_header_bytes, 16384);
        assert_eq!(config.http_addr.to_string(), "0.0.0.0:8000");
        assert_eq!(config.processor_url, "http://127.0.0.1:50051");
        assert_eq!(
            config.logging.format,
            service_support::logging::LogFormat::Text
        );
        assert_eq!(config.limits.max_concurrent_webhooks, 256);
        assert_eq!(config.limits.request_timeout, Duration::from_millis(950));
        assert!(
            config.signatures.schemes().is_empty(),
            "no secret, no check"
        );
        Ok(())
    }

    #[test]
    fn secrets_never_print() -> anyhow::Result<()> {
        let config = config_with(&[
            ("RAZORPAY_WEBHOOK_SECRET", "rzp-very-secret"),
            ("STANDARD_WEBHOOKS_SECRET", "whsec_c2VjcmV0LWtleQ=="),
            ("STRIPE_WEBHOOK_SECRET", "whsec_stripe-very-secret"),
        ])?;
        let printed = format!("{config:?}");
        for secret in [
            "rzp-very-secret",
            "c2VjcmV0LWtleQ",
            "stripe-very-secret",
            "secret-key",
        ] {
            assert!(!printed.contains(secret), "{secret} printed in {printed}");
        }
        assert_eq!(
            config.signatures.schemes(),
            vec!["razorpay", "standard-webhooks", "stripe"]
        );
        Ok(())
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("HTTP_ADDR", "8000"),
            ("PROCESSOR_URL", "127.0.0.1:50051"),
            ("PROCESSOR_TIMEOUT", "fast"),
            ("MAX_BODY_BYTES", "0"),
            ("LOG_FORMAT", "yaml"),
            ("RUST_LOG", "info,ingest_gateway=loud"),
            ("MAX_CONCURRENT_REQUESTS", "0"),
            ("REQUEST_TIMEOUT", "100ms"),
            ("WEBHOOK_TOLERANCE", "0s"),
            ("STANDARD_WEBHOOKS_SECRET", "whsec_not base64!"),
            ("STRIPE_WEBHOOK_SECRET", ",,"),
            ("API_TOKENS", "too-short"),
            ("ADMIN_TOKEN", "short"),
            ("ALLOW_UNSIGNED_WEBHOOKS", "yes"),
            ("ALLOW_UNAUTHENTICATED_READS", "maybe"),
            ("METRICS_ADDR", "9091"),
            ("MAX_CONCURRENT_READS", "0"),
            ("BODY_READ_TIMEOUT", "slow"),
            ("HEADER_READ_TIMEOUT", "0s"),
            ("IDLE_TIMEOUT", "500ms"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_HEADER_BYTES", "4096"),
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
    fn processor_tls_needs_https_and_a_whole_identity() -> anyhow::Result<()> {
        let https = ("PROCESSOR_URL", "https://processor.internal:50051");
        let config = config_with(&[
            https,
            ("PROCESSOR_TLS_CA_FILE", "/tls/ca.pem"),
            ("PROCESSOR_TLS_CERT_FILE", "/tls/gateway.pem"),
            ("PROCESSOR_TLS_KEY_FILE", "/tls/gateway.key"),
        ])?;
        assert_eq!(
            config.processor_tls,
            ProcessorTls {
                ca_file: Some("/tls/ca.pem".into()),
                client_identity: Some(ClientIdentity {
                    cert_file: "/tls/gateway.pem".into(),
                    key_file: "/tls/gateway.key".into(),
                }),
            }
        );
        assert_eq!(
            config_with(&[https])?.processor_tls,
            ProcessorTls::default()
        );
        service_support::settings::assert_refused_naming(
            config_with,
            &[
                (
                    &[https, ("PROCESSOR_TLS_CERT_FILE", "/tls/gateway.pem")],
                    "PROCESSOR_TLS_KEY_FILE",
                ),
                (
                    &[("PROCESSOR_TLS_CA_FILE", "/tls/ca.pem")],
                    "https:// PROCESSOR_URL",
                ),
            ],
        );
        Ok(())
    }

    #[test]
    fn variables_lists_exactly_what_is_read() {
        service_support::settings::assert_reads_exactly(VARIABLES, |lookup| {
            let _ = Config::from_lookup(lookup);
        });
    }
}
