//! Sizes and rules a caller must keep to: the processor refuses past them, and the
//! gateway sizes its calls and states them in its OpenAPI document.

/// Most items in one `IngestTransactions` call: a bound on the memory and the time one
/// call may take.
pub const MAX_ITEMS_PER_CALL: usize = 1000;
/// Largest `ListTransactions` page; `page_size` 0 means [`DEFAULT_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: u32 = 500;
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Longest transaction or account id.
pub const MAX_ID_LENGTH: usize = 128;
/// A transaction or account id (ECMA-262, as OpenAPI states it): 1 to [`MAX_ID_LENGTH`]
/// characters that are safe in a URL path, a log line and a Redis field.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,128}$";

/// Most calls one gateway has out to the processor at once, ingest batches included. The
/// processor tolerates as many streams reset before it accepted them: h2 cuts a connection
/// past that many with GOAWAY (its guard against rapid-reset floods), and a gateway whose
/// every call passed its deadline while the processor lagged must not be taken for one.
pub const MAX_CALLS_IN_FLIGHT: usize = 64;

/// Whether `byte` may appear in an id: the character class of [`ID_PATTERN`].
pub fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_says_what_is_id_byte_checks() {
        let class = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-";
        for byte in 0..=u8::MAX {
            assert_eq!(is_id_byte(byte), class.as_bytes().contains(&byte), "{byte}");
        }
        assert_eq!(
            ID_PATTERN,
            format!("^[A-Za-z0-9_.:-]{{1,{MAX_ID_LENGTH}}}$")
        );
    }
}
