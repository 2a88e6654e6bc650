//! Adds a transaction id to the work stream (XADD).

use fred::prelude::{Client, StreamsInterface};

use super::{REQUEST_ID_FIELD, TRANSACTION_ID_FIELD, shards::Shards};

#[derive(Clone)]
pub struct Publisher {
    client: Client,
    shards: Shards,
}

impl Publisher {
    /// Publishes each transaction to its shard (`shards`).
    pub fn new(client: Client, shards: Shards) -> Self {
        Self { client, shards }
    }

    /// Appends one entry for `transaction_id` and returns its stream id. The request id
    /// (of the webhook that created it) rides along so the consumer's logs carry it.
    pub async fn publish(
        &self,
        transaction_id: &str,
        request_id: Option<&str>,
    ) -> Result<String, fred::error::Error> {
        let mut fields = vec![(TRANSACTION_ID_FIELD, transaction_id)];
        if let Some(request_id) = request_id {
            fields.push((REQUEST_ID_FIELD, request_id));
        }
        self.client
            .xadd(
                self.shards.stream_key_for(transaction_id),
                false,
                None,
                "*",
                fields,
            )
            .await
    }

    /// Appends one entry per `(transaction_id, request_id)` in one pipelined round trip.
    pub async fn publish_many(
        &self,
        entries: &[(String, Option<String>)],
    ) -> Result<(), fred::error::Error> {
        let pipeline = self.client.pipeline();
        for (transaction_id, request_id) in entries {
            let mut fields = vec![(TRANSACTION_ID_FIELD, transaction_id.as_str())];
            if let Some(request_id) = request_id {
                fields.push((REQUEST_ID_FIELD, request_id.as_str()));
            }
            let () = pipeline
                .xadd(
                    self.shards.stream_key_for(transaction_id),
                    false,
                    None,
                    "*",
                    fields,
                )
                .await?;
        }
        let _: Vec<fred::types::Value> = pipeline.all().await?;
        Ok(())
    }
}
