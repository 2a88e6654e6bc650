use std::process::ExitCode;

use processor::Config;
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
            eprintln!("processor: invalid configuration: {error:#}");
            return ExitCode::from(2);
        }
    };
    config.logging.init();
    tracing::info!(grpc_addr = %config.grpc_addr, consumer = %config.stream.consumer_name, "processor starting");
    let shutdown = shutdown::on_signal();
    // Start-up waits for PostgreSQL for as long as it takes; a signal ends the wait.
    let built = tokio::select! {
        built = processor::build(config) => built,
        () = shutdown.cancelled() => {
            tracing::info!("processor stopped before it could serve");
            return ExitCode::SUCCESS;
        }
    };
    let application = match built {
        Ok(application) => application,
        Err(error) => {
            tracing::error!("processor cannot start: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match application.run_until_stopped(shutdown).await {
        Ok(()) => {
            tracing::info!("processor stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("processor failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}
