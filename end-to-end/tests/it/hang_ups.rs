//! HTTP callers hanging up in numbers do not become reset streams towards the processor
//! (h2 answers a flood of those with GOAWAY, failing every call on the connection): the
//! gateway's calls run to their answer. The gateway's connection goes through a relay that
//! reads its HTTP/2 frames and can hold the traffic, as a busy processor would.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use test_support::Setup;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::helpers::{API_TOKEN, seed_webhook, start_gateway_with, unique_id};

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const CLIENT_PREFACE: usize = 24;

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// Streams the client reset before the server had answered them: cancelled calls.
    resets: AtomicUsize,
    goaways: AtomicUsize,
    /// Streams the server has sent response headers on.
    answered: Mutex<HashSet<u32>>,
}

fn stream_id(header: &[u8; 9]) -> u32 {
    u32::from_be_bytes([header[5] & 0x7f, header[6], header[7], header[8]])
}

/// One frame: its 9-byte header and payload, or None at the end of the stream.
async fn read_frame(from: &mut (impl AsyncRead + Unpin)) -> Option<([u8; 9], Vec<u8>)> {
    let mut header = [0u8; 9];
    from.read_exact(&mut header).await.ok()?;
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let mut payload = vec![0u8; length];
    from.read_exact(&mut payload).await.ok()?;
    Some((header, payload))
}

/// Relays to `upstream`, counting the client's frames; nothing moves while `held`.
async fn relay(upstream: SocketAddr) -> (SocketAddr, Arc<Seen>, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let (hold, held) = watch::channel(false);
    let counting = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            counting.connections.fetch_add(1, Ordering::SeqCst);
            let server = TcpStream::connect(upstream).await.unwrap();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(frames(
                client_read,
                server_write,
                held.clone(),
                counting.clone(),
            ));
            tokio::spawn(answers(
                server_read,
                client_write,
                held.clone(),
                counting.clone(),
            ));
        }
    });
    (addr, seen, hold)
}

async fn wait_released(held: &mut watch::Receiver<bool>) {
    let _ = held.wait_for(|held| !held).await;
}

/// Client to server, frame by frame, counting RST_STREAM and GOAWAY.
async fn frames(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut held: watch::Receiver<bool>,
    seen: Arc<Seen>,
) {
    let mut preface = [0u8; CLIENT_PREFACE];
    if from.read_exact(&mut preface).await.is_err() || to.write_all(&preface).await.is_err() {
        return;
    }
    loop {
        let mut header = [0u8; 9];
        if from.read_exact(&mut header).await.is_err() {
            return;
        }
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0u8; length];
        if from.read_exact(&mut payload).await.is_err() {
            return;
        }
        match header[3] {
            // A reset after the answer only closes the client's side: not a cancelled call.
            RST_STREAM if !seen.answered.lock().unwrap().contains(&stream_id(&header)) => {
                seen.resets.fetch_add(1, Ordering::SeqCst)
            }
            GOAWAY => seen.goaways.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        wait_released(&mut held).await;
        if to.write_all(&header).await.is_err() || to.write_all(&payload).await.is_err() {
            return;
        }
    }
}

/// Server to client, frame by frame, noting which streams were answered.
async fn answers(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut held: watch::Receiver<bool>,
    seen: Arc<Seen>,
) {
    while let Some((header, payload)) = read_frame(&mut from).await {
        wait_released(&mut held).await;
        if header[3] == HEADERS {
            seen.answered.lock().unwrap().insert(stream_id(&header));
        }
        if to.write_all(&header).await.is_err() || to.write_all(&payload).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_hanging_up_in_numbers_reset_no_stream_to_the_processor() {
    let setup = Setup::new("30s").await;
    let processor = crate::helpers::start_processor(&setup).await;
    let (relay_addr, seen, hold) = relay(processor.addr).await;
    let gateway = start_gateway_with(&format!("http://{relay_addr}"), &[]).await;
    let base = format!("http://{}", gateway.addr);
    let read = |timeout: Duration| {
        reqwest::Client::new()
            .get(format!("{base}/v1/transactions/{}", unique_id("absent")))
            .bearer_auth(API_TOKEN)
            .timeout(timeout)
            .send()
    };
    assert_eq!(
        read(Duration::from_secs(10)).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // The processor "lags": 200 readers send their read and hang up before it answers.
    hold.send_replace(true);
    let readers: Vec<_> = (0..200)
        .map(|_| tokio::spawn(read(Duration::from_millis(300))))
        .collect();
    for reader in readers {
        assert!(reader.await.unwrap().is_err(), "every reader hung up");
    }
    hold.send_replace(false);
    // The calls the gateway had out are answered now, to nobody.
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(
        seen.resets.load(Ordering::SeqCst),
        0,
        "no call was cancelled"
    );
    assert_eq!(seen.goaways.load(Ordering::SeqCst), 0);
    let webhook = reqwest::Client::new()
        .post(format!("{base}/v1/webhooks/transactions"))
        .json(&seed_webhook(&unique_id("after")))
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), StatusCode::ACCEPTED);
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "the one connection carried on: nothing cut it"
    );
    gateway.shutdown.cancel();
    gateway.task.await.unwrap().unwrap();
    processor.stop().await;
}
