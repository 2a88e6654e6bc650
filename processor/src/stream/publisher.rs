//! Adds a transaction id to the work stream (XADD).

use fred::prelude::{Client, StreamsInterface};

use super::TRANSACTION_ID_FIELD;

#[derive(Clone)]
pub struct Publisher {
    client: Client,
    stream_key: String,
}

impl Publisher {
    pub fn new(client: Client, stream_key: String) -> Self {
        Self { client, stream_key }
    }

    /// Appends one entry for `transaction_id` and returns its stream id.
    pub async fn publish(&self, transaction_id: &str) -> Result<String, fred::error::Error> {
        self.client
            .xadd(
                &self.stream_key,
                false,
                None,
                "*",
                vec![(TRANSACTION_ID_FIELD, transaction_id)],
            )
            .await
    }
}
