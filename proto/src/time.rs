//! `google.protobuf.Timestamp` to and from UTC time.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

pub fn to_timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        // Below 10^9, so it always fits.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

/// `None` for a timestamp no UTC time has (negative nanos, seconds out of range).
pub fn from_timestamp(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_to_the_nanosecond_and_refuses_nonsense() {
        let at = DateTime::from_timestamp(1_761_906_600, 123_456_789).unwrap_or_default();
        assert_eq!(from_timestamp(&to_timestamp(at)), Some(at));
        let negative = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(from_timestamp(&negative), None);
        let too_far = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(from_timestamp(&too_far), None);
    }
}
