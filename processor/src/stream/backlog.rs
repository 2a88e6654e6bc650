//! How far the consumer group has read a stream that still holds entries it has not read.
//! Stream ids begin with the milliseconds of their XADD, so the id of the last entry
//! delivered to the group says until when everything published has been handed out: a row
//! published before then and still unclaimed was delivered and dropped (its entry lost),
//! while one published after it may simply be waiting in the queue.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fred::{
    prelude::{Client, StreamsInterface},
    types::Value,
};

use super::StreamNames;

/// When the group has unread entries, the time of the last entry it was delivered (the
/// epoch if none yet); `None` when it has read everything or does not exist. An error when
/// the stream does not exist.
pub async fn delivered_until_while_behind(
    redis: &Client,
    names: &StreamNames,
) -> Result<Option<DateTime<Utc>>, fred::error::Error> {
    let stream: HashMap<String, Value> = redis.xinfo_stream(&names.key, false, None).await?;
    let Some(last_added) = stream.get("last-generated-id").and_then(stream_id) else {
        return Ok(None);
    };
    let groups: Vec<HashMap<String, Value>> = redis.xinfo_groups(&names.key).await?;
    let last_delivered = groups
        .iter()
        .find(|group| group.get("name").and_then(Value::as_string).as_deref() == Some(&names.group))
        .and_then(|group| group.get("last-delivered-id"))
        .and_then(stream_id);
    Ok(last_delivered
        .filter(|delivered| *delivered < last_added)
        .map(|(millis, _)| {
            DateTime::from_timestamp_millis(i64::try_from(millis).unwrap_or(i64::MAX))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        }))
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
