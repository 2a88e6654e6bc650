//! The real binary refuses a setting that does not parse, before it listens.

use std::process::Command;

#[test]
fn an_invalid_rust_log_stops_start_up_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_ingest-gateway"))
        .env_clear()
        .env("RUST_LOG", "info,ingest_gateway=loud")
        .output()
        .expect("run the gateway binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("RUST_LOG=\"info,ingest_gateway=loud\""),
        "{stderr}"
    );
}
