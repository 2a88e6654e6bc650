//! A processor running in the test's process, and clients of it.

use std::net::SocketAddr;

use payments_proto::v1::transaction_service_client::TransactionServiceClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub struct RunningProcessor {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl RunningProcessor {
    /// Runs a processor the test built (`processor::build` on port 0, see the test crate's
    /// helpers): `run` is its `run_until_stopped`, handed the token that [`Self::stop`]
    /// cancels.
    pub fn spawn<Run, Stopped>(addr: SocketAddr, metrics_addr: SocketAddr, run: Run) -> Self
    where
        Run: FnOnce(CancellationToken) -> Stopped,
        Stopped: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Self {
            addr,
            metrics_addr,
            shutdown,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> TransactionServiceClient<Channel> {
        TransactionServiceClient::connect(self.url())
            .await
            .expect("connect to the processor")
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to the processor")
    }

    /// SIGTERM's path: stop, and wait for the graceful end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("processor task does not panic")
            .expect("processor stops cleanly");
    }
}
