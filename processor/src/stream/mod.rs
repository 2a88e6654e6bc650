//! Work delivery through a Redis Stream (one, or `STREAM_SHARDS` of them: `shards`) and one
//! consumer group.
//!
//! - Key `STREAM_KEY` (default `transactions`; with `STREAM_SHARDS` > 1, one key per shard,
//!   see `shards`); each entry has the field `transaction_id`
//!   and, when the webhook's request had one, `request_id` (for the logs). PostgreSQL stays the source of truth: an entry only says "look at
//!   this id", so a lost or repeated entry can never change what a transaction is.
//! - Group `CONSUMER_GROUP` (default `processors`), created at start with MKSTREAM from id
//!   `0`, so entries added before the group existed are read too; BUSYGROUP (the group
//!   exists) is success. Every replica reads through the group, so each entry goes to
//!   one consumer.
//! - Consumer `CONSUMER_NAME`, one per replica. At start a consumer first re-reads its own
//!   pending entries (id `0`): those it read before a restart and never acknowledged.
//! - An entry is acknowledged (XACK, then XDEL so the stream does not grow without end)
//!   only after PostgreSQL says the transaction is finished. A redelivered entry finds
//!   the transaction finished and is acknowledged without processing again.

pub mod backlog;
pub mod consumer;
pub mod lost;
pub mod publisher;
pub mod settle;
pub mod shards;
pub mod tls;

use std::time::Duration;

use fred::{
    prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy},
    types::config::TlsConnector,
};

/// The field of each stream entry that holds the transaction id.
pub const TRANSACTION_ID_FIELD: &str = "transaction_id";
/// The optional field with the id of the request that created the transaction.
pub const REQUEST_ID_FIELD: &str = "request_id";

/// Where the stream lives and who reads it.
#[derive(Clone, Debug)]
pub struct StreamNames {
    pub key: String,
    pub group: String,
    pub consumer: String,
}

/// `REDIS_URL` as fred's configuration; a `rediss://` one verified as `REDIS_TLS_*` say.
pub fn redis_config(url: &str, tls: &crate::config::RedisTls) -> anyhow::Result<Config> {
    let mut config = Config::from_url(url)?;
    if config.tls.is_some() {
        config.tls = Some(TlsConnector::from(tls::client_config(tls)?).into());
    }
    Ok(config)
}

/// A Redis client that connects in the background and reconnects on its own (with
/// backoff, for ever), and never waits on a command longer than `command_timeout`. Redis
/// need not answer yet: commands sent before it does wait for it up to that time-out. Only
/// a URL that is not a Redis address is an error.
pub fn connect(
    url: &str,
    tls: &crate::config::RedisTls,
    command_timeout: Duration,
) -> anyhow::Result<Client> {
    let mut config = redis_config(url, tls)?;
    // The reconnect policy applies to the first connection too, instead of an error.
    config.fail_fast = false;
    let client = Builder::from_config(config)
        .with_performance_config(|performance| {
            performance.default_command_timeout = command_timeout
        })
        .with_connection_config(|connection| {
            connection.connection_timeout = Duration::from_secs(3);
            connection.internal_command_timeout = Duration::from_secs(3);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()?;
    // The connection task: it ends only when the client is told to quit.
    drop(client.connect());
    Ok(client)
}
