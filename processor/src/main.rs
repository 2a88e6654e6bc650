use std::process::ExitCode;

use processor::Config;
use service_support::shutdown;

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
    tracing::info!(grpc_addr = %config.grpc_addr, consumer = %config.consumer_name, "processor starting");
    let application = match processor::build(config).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!("processor cannot start: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match application.run_until_stopped(shutdown::on_signal()).await {
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
