use std::process::ExitCode;

use ingest_gateway::Config;
use service_support::shutdown;

/// mimalloc rather than the system's allocator: glibc's malloc and free took about a
/// quarter of this process's instructions per webhook (BENCHMARKS.md, issue 19).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ingest-gateway: invalid configuration: {error:#}");
            return ExitCode::from(2);
        }
    };
    config.logging.init();
    let application = match ingest_gateway::build(config.clone()).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!("ingest-gateway cannot start: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(http_addr = %config.http_addr, metrics_addr = %config.metrics_addr, processor_url = %config.processor_url, "ingest-gateway listening");
    match config.signatures.schemes().as_slice() {
        // Only reachable with ALLOW_UNSIGNED_WEBHOOKS=true: the configuration refuses it otherwise.
        [] => tracing::warn!(
            "ALLOW_UNSIGNED_WEBHOOKS=true: webhook signatures are not checked, anyone can post a transaction (no RAZORPAY_WEBHOOK_SECRET, STANDARD_WEBHOOKS_SECRET or STRIPE_WEBHOOK_SECRET)"
        ),
        schemes => tracing::info!(?schemes, "webhook signatures required"),
    }
    if config.api_tokens.is_none() {
        tracing::warn!(
            "ALLOW_UNAUTHENTICATED_READS=true: transaction reads need no token (no API_TOKENS)"
        );
    }
    match application.run_until_stopped(shutdown::on_signal()).await {
        Ok(()) => {
            tracing::info!("ingest-gateway stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("ingest-gateway failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}
