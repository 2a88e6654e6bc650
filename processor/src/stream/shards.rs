//! The stream spread over `STREAM_SHARDS` keys, so that a Redis Cluster carries it on
//! several nodes.
//!
//! - One shard (the default): the keys are `STREAM_KEY` and `DEAD_LETTER_STREAM_KEY`
//!   themselves, exactly as before sharding existed.
//! - N shards: shard `i` is `{STREAM_KEY:i}` and its dead letters `{DEAD_LETTER_STREAM_KEY:i}`.
//!   The braces are a Redis Cluster hash tag: each key hashes to a slot of its own, so the
//!   shards spread over the cluster's nodes.
//! - A transaction's entries always go to one shard, chosen by a hash of its id (FNV-1a,
//!   the same in every process and release), so its entries are ordered among themselves.
//! - Every processor reads every shard through the same group name (a group per key), so
//!   each entry still goes to one consumer; the outbox, claiming and dead letters work per
//!   shard like the single stream did.

use super::StreamNames;

#[derive(Clone, Debug)]
pub struct Shards {
    stream_key: String,
    dead_letter_key: String,
    count: u32,
}

impl Shards {
    pub fn new(stream_key: &str, dead_letter_key: &str, count: u32) -> Self {
        Self {
            stream_key: stream_key.to_owned(),
            dead_letter_key: dead_letter_key.to_owned(),
            count: count.max(1),
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The stream key of shard `index`.
    pub fn stream_key(&self, index: u32) -> String {
        self.sharded(&self.stream_key, index)
    }

    /// The dead-letter stream of shard `index`.
    pub fn dead_letter_key(&self, index: u32) -> String {
        self.sharded(&self.dead_letter_key, index)
    }

    fn sharded(&self, key: &str, index: u32) -> String {
        if self.count == 1 {
            key.to_owned()
        } else {
            format!("{{{key}:{index}}}")
        }
    }

    /// The shard that carries `transaction_id`.
    pub fn shard_of(&self, transaction_id: &str) -> u32 {
        // FNV-1a, 64 bits: stable across processes, unlike the standard library's hasher.
        let hash = transaction_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        u32::try_from(hash % u64::from(self.count)).unwrap_or_default()
    }

    /// The stream key that carries `transaction_id`.
    pub fn stream_key_for(&self, transaction_id: &str) -> String {
        self.stream_key(self.shard_of(transaction_id))
    }

    /// The names of every shard for `group` and `consumer`, in shard order.
    pub fn names(&self, group: &str, consumer: &str) -> Vec<StreamNames> {
        (0..self.count)
            .map(|index| StreamNames {
                key: self.stream_key(index),
                group: group.to_owned(),
                consumer: consumer.to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_keeps_the_configured_keys_exactly() {
        let shards = Shards::new("transactions", "transactions:dead-letter", 1);
        assert_eq!(shards.stream_key(0), "transactions");
        assert_eq!(shards.stream_key_for("txn_1"), "transactions");
        assert_eq!(shards.dead_letter_key(0), "transactions:dead-letter");
    }

    #[test]
    fn shards_have_a_hash_tag_each_and_ids_spread_over_all() {
        let shards = Shards::new("transactions", "transactions:dead-letter", 3);
        assert_eq!(shards.stream_key(2), "{transactions:2}");
        assert_eq!(shards.dead_letter_key(2), "{transactions:dead-letter:2}");
        let mut seen = [0_u32; 3];
        for n in 0..3_000 {
            let shard = shards.shard_of(&format!("txn_{n}"));
            assert_eq!(shard, shards.shard_of(&format!("txn_{n}")), "stable");
            seen[shard as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        // Fixed across releases: a shard never moves under a transaction already published.
        assert_eq!(shards.shard_of("txn_abc123def456"), 2);
    }
}
