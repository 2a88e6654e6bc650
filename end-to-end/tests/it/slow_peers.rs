//! Peers that are slow, silent or numerous hold nothing beyond fixed bounds: heads and
//! bodies have deadlines, idle connections close, the connection count is capped, and a
//! slow body never holds a request permit. Over real sockets, against the real server.
#![allow(clippy::expect_used)]

use std::time::Duration;

use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
    time::{Instant, timeout},
};

use crate::helpers::{Stack, seed_webhook, unique_id};

/// What a raw peer saw: how long until the server closed, and what it answered.
struct Ending {
    after: Duration,
    answer: String,
    /// Closed with a reset: the server closed with our trickled bytes unread, so the
    /// kernel may drop its answer before we read it.
    reset: bool,
}

/// Connects, sends `opening`, then one byte of `trickle` every `every` (when `trickle` runs
/// out, nothing more), until the server closes the connection; gives up after `limit`.
async fn slow_peer(
    addr: std::net::SocketAddr,
    opening: String,
    trickle: Vec<u8>,
    every: Duration,
    limit: Duration,
) -> Option<Ending> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(opening.as_bytes()).await.ok()?;
    let mut trickle = trickle.into_iter();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let mut tick = tokio::time::interval(every);
    let deadline = started + limit;
    let mut reset = false;
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) => break,
                Err(_) => {
                    reset = true;
                    break;
                }
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            },
            _ = tick.tick() => {
                if let Some(byte) = trickle.next()
                    && stream.write_all(&[byte]).await.is_err()
                {
                    reset = true;
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => return None,
        }
    }
    Some(Ending {
        after: started.elapsed(),
        answer: String::from_utf8_lossy(&answer).into_owned(),
        reset,
    })
}

fn slowloris_opening() -> String {
    "POST /v1/webhooks/transactions HTTP/1.1\r\nHost: gateway\r\n".to_owned()
}

fn slowloris_trickle() -> Vec<u8> {
    b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec()
}

fn slow_body_opening() -> String {
    "POST /v1/webhooks/transactions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{".to_owned()
}

#[tokio::test]
async fn hundreds_of_slowloris_and_slow_body_sockets_are_cut_and_real_webhooks_are_served() {
    let stack = Stack::start_with(
        "30s",
        &[
            ("HEADER_READ_TIMEOUT", "2s"),
            ("BODY_READ_TIMEOUT", "2s"),
            ("IDLE_TIMEOUT", "5s"),
            ("PROCESSOR_TIMEOUT", "2s"),
            // Far fewer permits than slow senders: were a permit taken before the body,
            // the slow bodies would shed every real webhook.
            ("MAX_CONCURRENT_REQUESTS", "8"),
            ("MAX_CONNECTIONS", "1000"),
        ],
    )
    .await;
    let addr = stack.gateway_addr;
    let mut peers = JoinSet::new();
    for index in 0..300 {
        let slowloris = index % 2 == 0;
        let (opening, trickle) = if slowloris {
            (slowloris_opening(), slowloris_trickle())
        } else {
            (slow_body_opening(), vec![b' '; 2000])
        };
        peers.spawn(async move {
            let every = Duration::from_millis(300);
            let ending = slow_peer(addr, opening, trickle, every, Duration::from_secs(30)).await;
            (slowloris, ending)
        });
    }
    // All of them connected and held (each trickling), then real webhooks beside them.
    let held = test_support::eventually(Duration::from_secs(10), || async {
        stack.connections.count() >= 250
    })
    .await;
    assert!(
        held,
        "only {} slow peers connected",
        stack.connections.count()
    );
    // One after another, each within the slow peers' lifetime (a batch of 16 at once
    // would rightly be shed by the 8 permits).
    for _ in 0..16 {
        let response = stack
            .post_webhook(&seed_webhook(&unique_id("beside-slow")))
            .await;
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "a real webhook beside the slow peers: {}",
            response.text().await.unwrap_or_default()
        );
    }
    // Every slow peer is cut at its deadline (2 s, with a wide margin for a loaded machine),
    // the slow bodies with a 408 (which a peer still trickling may lose to the reset; the
    // next test shows the 408 whole).
    let (mut slowloris_cut, mut bodies_cut) = (0, 0);
    while let Some(result) = peers.join_next().await {
        let (slowloris, ending) = result.expect("peer task");
        let ending = ending.expect("the server closed the connection within 30 s");
        assert!(
            ending.after < Duration::from_secs(10),
            "a slow peer held its connection for {:?}",
            ending.after
        );
        if slowloris {
            assert!(ending.answer.is_empty() || ending.answer.starts_with("HTTP/1.1 4"));
            slowloris_cut += 1;
        } else {
            assert!(
                ending.answer.starts_with("HTTP/1.1 408")
                    || (ending.reset && ending.answer.is_empty()),
                "a slow body was answered {:?}",
                ending.answer
            );
            bodies_cut += 1;
        }
    }
    assert_eq!((slowloris_cut, bodies_cut), (150, 150));
    // Their connections are gone (the client's own pooled ones may remain).
    let released = test_support::eventually(Duration::from_secs(10), || async {
        stack.connections.count() <= 16
    })
    .await;
    assert!(
        released,
        "{} connections still open",
        stack.connections.count()
    );
    assert_eq!(
        stack.setup.entries_ever_added().await,
        16,
        "only the real ones"
    );
    stack.stop().await;
}

#[tokio::test]
async fn past_max_connections_a_new_one_is_closed_at_once_and_the_cap_frees_at_the_deadline() {
    let stack = Stack::start_with(
        "30s",
        &[("MAX_CONNECTIONS", "20"), ("HEADER_READ_TIMEOUT", "3s")],
    )
    .await;
    let addr = stack.gateway_addr;
    // Twenty silent sockets take every slot.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let full = test_support::eventually(Duration::from_secs(5), || async {
        stack.connections.count() == 20
    })
    .await;
    assert!(full, "{} open", stack.connections.count());
    // More are accepted and closed at once, not queued.
    for _ in 0..10 {
        let mut extra = TcpStream::connect(addr).await.expect("connect");
        let mut byte = [0u8; 1];
        let read = timeout(Duration::from_secs(2), extra.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "a connection past the cap was not closed at once: {read:?}"
        );
    }
    assert_eq!(stack.connections.count(), 20, "the cap held");
    // The silent ones end at the header deadline; then the slots serve real webhooks.
    for mut stream in silent {
        let mut byte = [0u8; 1];
        let read = timeout(Duration::from_secs(15), stream.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    }
    let response = stack
        .post_webhook(&seed_webhook(&unique_id("after-cap")))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    stack.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_problem_within_body_read_timeout() {
    let stack = Stack::start_with(
        "30s",
        &[
            ("BODY_READ_TIMEOUT", "1s"),
            ("MAX_CONCURRENT_REQUESTS", "1"),
        ],
    )
    .await;
    // Half a body, then silence: the one permit is not taken meanwhile.
    let peer = tokio::spawn(slow_peer(
        stack.gateway_addr,
        slow_body_opening(),
        Vec::new(),
        Duration::from_secs(1),
        Duration::from_secs(20),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let beside = stack
        .post_webhook(&seed_webhook(&unique_id("one-permit")))
        .await;
    assert_eq!(
        beside.status(),
        StatusCode::ACCEPTED,
        "the slow body holds no permit"
    );
    let ending = peer.await.expect("peer task").expect("closed within 20 s");
    assert!(
        ending.answer.starts_with("HTTP/1.1 408"),
        "{:?}",
        ending.answer
    );
    assert!(
        ending.answer.contains("application/problem+json"),
        "{:?}",
        ending.answer
    );
    assert!(
        ending.answer.contains("BODY_READ_TIMEOUT"),
        "{:?}",
        ending.answer
    );
    assert!(ending.after < Duration::from_secs(8), "{:?}", ending.after);
    stack.stop().await;
}

/// Sends `request` on `stream` and reads one answer (up to its blank line and body).
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        if n == 0 || text.contains("\r\n\r\n") && text.ends_with('}') {
            return text.into_owned();
        }
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_closes_after_idle_timeout_not_at_the_header_deadline() {
    let stack = Stack::start_with(
        "30s",
        &[
            ("HEADER_READ_TIMEOUT", "1s"),
            ("IDLE_TIMEOUT", "4s"),
            ("PROCESSOR_TIMEOUT", "2s"),
        ],
    )
    .await;
    let mut stream = TcpStream::connect(stack.gateway_addr)
        .await
        .expect("connect");
    let health = "GET / HTTP/1.1\r\nHost: gateway\r\n\r\n";
    assert!(
        exchange(&mut stream, health)
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Idle past the header deadline: still open, and serves the next request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        exchange(&mut stream, health)
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Then idle: closed once IDLE_TIMEOUT passes (never before; late only by load).
    let idle_since = Instant::now();
    let mut byte = [0u8; 1];
    let read = timeout(Duration::from_secs(20), stream.read(&mut byte))
        .await
        .expect("closed within 20 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(3500) && idle < Duration::from_secs(12),
        "closed after {idle:?} of idleness, IDLE_TIMEOUT is 4 s"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_request_head_larger_than_max_header_bytes_is_431() {
    let stack = Stack::start("30s").await;
    let mut stream = TcpStream::connect(stack.gateway_addr)
        .await
        .expect("connect");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: gateway\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    // The server may close while the rest is still being written.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // Within the default limit (16 KiB), a large head is served.
    let mut stream = TcpStream::connect(stack.gateway_addr)
        .await
        .expect("connect");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: gateway\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    assert!(
        exchange(&mut stream, &request)
            .await
            .starts_with("HTTP/1.1 200")
    );
    stack.stop().await;
}
