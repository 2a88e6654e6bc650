//! h2's guard against rapid-reset floods is on: a client that opens streams and resets
//! them faster than the server accepts them is cut off with GOAWAY, and the server keeps
//! serving everyone else.

use h2::Reason;
use tokio::net::TcpStream;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{Setup, StartProcessor};

/// Far more than `payments_proto::limits::MAX_CALLS_IN_FLIGHT`, sent in one burst.
const FLOOD: usize = 200;

#[tokio::test]
async fn a_rapid_reset_flood_is_cut_off_and_others_are_still_served() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;

    let tcp = TcpStream::connect(processor.addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    let mut sender = sender.ready().await.unwrap();
    // Every HEADERS and its RST_STREAM are queued before the connection task writes
    // anything (this test's runtime has one thread and nothing here awaits), so they reach
    // the server in one burst, as a flood would.
    let mut sent = 0;
    for _ in 0..FLOOD {
        let request = http::Request::post(format!(
            "http://{}/grpc.health.v1.Health/Check",
            processor.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
        let Ok((_response, mut stream)) = sender.send_request(request, false) else {
            break;
        };
        stream.send_reset(Reason::CANCEL);
        sent += 1;
    }
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), connection)
        .await
        .expect("the server ends the flooding connection");
    let error = ended.expect_err("the connection ends in an error, not cleanly");
    assert!(
        error.is_go_away() && error.reason() == Some(Reason::ENHANCE_YOUR_CALM),
        "after {sent} reset streams: {error:?}"
    );

    let mut health = HealthClient::new(processor.channel().await);
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("another connection is served as before");
    processor.stop().await;
}
