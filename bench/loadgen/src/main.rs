//! A closed-loop HTTP/1.1 load generator for the webhook endpoint (benchmarks only).
//!
//! `CONNECTIONS` keep-alive connections each POST one webhook at a time for `DURATION`.
//! With `STANDARD_WEBHOOKS_SECRET` set, every request carries its own Standard Webhooks
//! signature (`webhook-id`, `webhook-timestamp`, `webhook-signature` over
//! `id.timestamp.body`), made here per request as a provider would; wrk's Lua has no HMAC.
//! `IDS=random` (the default) gives every webhook a provider-like id, `pay_` and 14 random
//! characters; `IDS=sequential` gives `bench_<run>_<connection>_<n>`, as `webhooks.lua` does.
//!
//! The output is one line in the format of `webhooks.lua`'s `RESULT`, so the benchmark
//! scripts take medians of either the same way.
//!
//!   URL=http://127.0.0.1:8000 CONNECTIONS=64 DURATION=10s THREADS=2 [REQUESTS=20000] \
//!     STANDARD_WEBHOOKS_SECRET=whsec_... target/release/loadgen

use std::{
    env,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, KeyInit, Mac};
use rand::{Rng, distr::Alphanumeric};
use sha2::Sha256;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const PATH: &str = "/v1/webhooks/transactions";

#[derive(Clone)]
struct Settings {
    address: String,
    connections: usize,
    duration: Duration,
    key: Option<Vec<u8>>,
    random_ids: bool,
    run_id: String,
    /// `REQUESTS`: stop after this many requests in all (for profiles under a fixed
    /// load), or at `DURATION`, whichever comes first.
    requests: Option<u64>,
    sent: Arc<AtomicU64>,
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    shed: u64,
    unavailable: u64,
    other: u64,
    connect_errors: u64,
    read_errors: u64,
    /// Microseconds, one per answer.
    latencies: Vec<u32>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.shed += other.shed;
        self.unavailable += other.unavailable;
        self.other += other.other;
        self.connect_errors += other.connect_errors;
        self.read_errors += other.read_errors;
        self.latencies.extend(other.latencies);
    }
}

fn setting(name: &str, default: &str) -> String {
    env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn settings() -> anyhow::Result<(Settings, usize)> {
    let url = setting("URL", "http://127.0.0.1:8000");
    let Some(address) = url.strip_prefix("http://") else {
        bail!("URL must be http://host:port, not {url}");
    };
    let duration = setting("DURATION", "10s");
    let seconds: f64 = duration
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("DURATION must be seconds, such as 10 or 10s, not {duration}"))?;
    let key = match env::var("STANDARD_WEBHOOKS_SECRET") {
        Ok(secret) if !secret.trim().is_empty() => {
            let encoded = secret.trim();
            let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
            Some(
                BASE64
                    .decode(encoded)
                    .context("STANDARD_WEBHOOKS_SECRET is not whsec_<base64>")?,
            )
        }
        _ => None,
    };
    let random_ids = match setting("IDS", "random").as_str() {
        "random" => true,
        "sequential" => false,
        other => bail!("IDS must be random or sequential, not {other}"),
    };
    let run_id = format!(
        "{}{:04}",
        unix_seconds(),
        rand::rng().random_range(0..10_000)
    );
    Ok((
        Settings {
            address: address.trim_end_matches('/').to_owned(),
            connections: setting("CONNECTIONS", "64").parse()?,
            duration: Duration::from_secs_f64(seconds),
            key,
            random_ids,
            run_id,
            requests: match env::var("REQUESTS") {
                Ok(n) if !n.trim().is_empty() => Some(n.trim().parse()?),
                _ => None,
            },
            sent: Arc::new(AtomicU64::new(0)),
        },
        setting("THREADS", "2").parse()?,
    ))
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let (settings, threads) = settings()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(run(settings))
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + settings.duration;
    let tasks: Vec<_> = (0..settings.connections)
        .map(|number| tokio::spawn(connection(settings.clone(), number, deadline)))
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    tally.latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if tally.latencies.is_empty() {
            return 0.0;
        }
        let index = ((p / 100.0) * (tally.latencies.len() - 1) as f64).round() as usize;
        f64::from(tally.latencies[index]) / 1000.0
    };
    let responses = tally.accepted + tally.shed + tally.unavailable + tally.other;
    let share = |n: u64| 100.0 * n as f64 / responses.max(1) as f64;
    println!(
        "RESULT responses={responses} accepted_202={} ({:.1}%) shed_503={} ({:.1}%) \
         deadline_503={} ({:.1}%) other={} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1} \
         req_per_s={:.0} accepted_per_s={:.0} socket_errors(connect={} read={} write=0 timeout=0)",
        tally.accepted,
        share(tally.accepted),
        tally.shed,
        share(tally.shed),
        tally.unavailable,
        share(tally.unavailable),
        tally.other,
        percentile(50.0),
        percentile(90.0),
        percentile(99.0),
        percentile(100.0),
        responses as f64 / elapsed,
        tally.accepted as f64 / elapsed,
        tally.connect_errors,
        tally.read_errors,
    );
    Ok(())
}

/// One keep-alive connection's loop, reconnecting when the server closes it.
async fn connection(settings: Settings, number: usize, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut counter: u64 = 0;
    let mut request = Vec::with_capacity(1024);
    let mut buffer = Vec::with_capacity(4096);
    let mut stream: Option<TcpStream> = None;
    while Instant::now() < deadline {
        let mut open = match stream.take() {
            Some(open) => open,
            None => match TcpStream::connect(&settings.address).await {
                Ok(open) => {
                    let _ = open.set_nodelay(true);
                    open
                }
                Err(_) => {
                    tally.connect_errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if let Some(limit) = settings.requests
            && settings.sent.fetch_add(1, Ordering::Relaxed) >= limit
        {
            break;
        }
        counter += 1;
        build_request(&settings, number, counter, &mut request);
        let sent = Instant::now();
        let answer = match open.write_all(&request).await {
            Ok(()) => read_response(&mut open, &mut buffer).await,
            Err(error) => Err(error),
        };
        match answer {
            Ok((status, overloaded, keep_alive)) => {
                let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                tally.latencies.push(micros);
                match status {
                    202 => tally.accepted += 1,
                    503 if overloaded => tally.shed += 1,
                    503 => tally.unavailable += 1,
                    _ => tally.other += 1,
                }
                if keep_alive {
                    stream = Some(open);
                }
            }
            Err(_) => tally.read_errors += 1,
        }
    }
    tally
}

/// The next webhook's request, signed when a key is set.
fn build_request(settings: &Settings, number: usize, counter: u64, request: &mut Vec<u8>) {
    use std::io::Write;
    let id = if settings.random_ids {
        let random: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(14)
            .map(char::from)
            .collect();
        format!("pay_{random}")
    } else {
        format!("bench_{}_{number}_{counter}", settings.run_id)
    };
    let body = format!(
        r#"{{"transaction_id":"{id}","source_account":"acc_bench_a","destination_account":"acc_bench_b","amount":1500.50,"currency":"INR"}}"#
    );
    request.clear();
    let _ = write!(
        request,
        "POST {PATH} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        settings.address,
        body.len()
    );
    if let Some(key) = &settings.key {
        let message_id = format!("msg_{id}");
        let timestamp = unix_seconds().to_string();
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) {
            mac.update(message_id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body.as_bytes());
            let signature = BASE64.encode(mac.finalize().into_bytes());
            let _ = write!(
                request,
                "webhook-id: {message_id}\r\nwebhook-timestamp: {timestamp}\r\nwebhook-signature: v1,{signature}\r\n"
            );
        }
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body.as_bytes());
}

/// Reads one response: its status, whether it is the gateway's load-shedding answer, and
/// whether the connection stays open.
async fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<(u16, bool, bool)> {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let keep_alive = !head.contains("connection: close");
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let overloaded = find(&buffer[head_end..], b"problem:overloaded").is_some();
    Ok((status, overloaded, keep_alive))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
