//! Whether the consumer group has entries it has not read yet. While it has, a row with
//! no claim may simply be waiting in the stream behind them, and publishing it again
//! would only add a copy to the queue, every `REPUBLISH_AFTER`, for as long as the
//! backlog lasts.

use std::collections::HashMap;

use fred::{
    prelude::{Client, StreamsInterface},
    types::Value,
};

use super::StreamNames;

/// True when the stream holds entries newer than the last one delivered to the group;
/// false when the group does not exist. An error when the stream does not.
pub async fn group_has_unread_entries(
    redis: &Client,
    names: &StreamNames,
) -> Result<bool, fred::error::Error> {
    let stream: HashMap<String, Value> = redis.xinfo_stream(&names.key, false, None).await?;
    let Some(last_added) = stream.get("last-generated-id").and_then(stream_id) else {
        return Ok(false);
    };
    let groups: Vec<HashMap<String, Value>> = redis.xinfo_groups(&names.key).await?;
    let last_delivered = groups
        .iter()
        .find(|group| group.get("name").and_then(Value::as_string).as_deref() == Some(&names.group))
        .and_then(|group| group.get("last-delivered-id"))
        .and_then(stream_id);
    Ok(last_delivered.is_some_and(|delivered| delivered < last_added))
}

/// A stream id `<milliseconds>-<sequence>` as a pair that orders like the ids do.
fn stream_id(value: &Value) -> Option<(u64, u64)> {
    let text = value.as_string()?;
    let (millis, sequence) = text.split_once('-')?;
    Some((millis.parse().ok()?, sequence.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_by_time_then_sequence() {
        let id = |text: &str| stream_id(&Value::from(text));
        assert!(id("1700000000000-5") < id("1700000000001-0"));
        assert!(id("1700000000000-2") < id("1700000000000-10"));
        assert_eq!(id("0-0"), Some((0, 0)));
        assert_eq!(id("not an id"), None);
    }
}
