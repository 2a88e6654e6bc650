//! The request id travels from the gateway's `X-Request-Id` header to the processor in
//! gRPC metadata under the same name (or in an `IngestTransactions` item), and on into
//! the stream entry and the logs.

/// The HTTP header and the gRPC metadata key (lower case, as HTTP/2 requires).
pub const KEY: &str = "x-request-id";
/// Longest request id carried along; a longer one is dropped rather than stored.
pub const MAX_LENGTH: usize = 128;

/// `id` if it is fit to carry along: not empty and at most [`MAX_LENGTH`] bytes.
pub fn checked(id: &str) -> Option<&str> {
    Some(id).filter(|id| !id.is_empty() && id.len() <= MAX_LENGTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_overlong_ids_are_dropped() {
        assert_eq!(checked("req-1"), Some("req-1"));
        assert_eq!(checked(""), None);
        assert_eq!(
            checked(&"a".repeat(MAX_LENGTH)).map(str::len),
            Some(MAX_LENGTH)
        );
        assert_eq!(checked(&"a".repeat(MAX_LENGTH + 1)), None);
    }
}
