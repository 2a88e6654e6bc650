//! Properties of the signature-header parsers, over arbitrary input: no panic, a bounded
//! time whatever the header holds, and the rejection always names one of the scheme's own
//! headers with a kind the caller can act on (never an accepted forgery).

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::{MAX_ENTRIES, MAX_SIGNATURE_HEADER_BYTES, Rejection, Secrets, Verifier};

const NOW: i64 = 1_700_000_000;
/// Far above what a bounded parse of a few KiB takes, even in a debug build on a loaded
/// machine; an unbounded one (a MAC per candidate) blows through it.
const BOUND: Duration = Duration::from_secs(1);

fn verifier() -> Verifier {
    Verifier::new(
        Secrets {
            razorpay: Some("rzp_property_secret"),
            standard_webhooks: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            stripe: Some("whsec_property_secret"),
        },
        Duration::from_secs(300),
    )
    .unwrap_or_else(|error| panic!("valid secrets: {error}"))
}

/// Checks one request's headers: refused, quickly, for a reason naming `allowed` headers.
fn refused_quickly(headers: &HeaderMap, body: &[u8], allowed: &[&str]) -> Vec<Rejection> {
    let started = Instant::now();
    let outcome = verifier().verify(headers, body, NOW);
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND, "took {elapsed:?}");
    let rejections = outcome.err().unwrap_or_default();
    assert!(!rejections.is_empty(), "a random header was accepted");
    for rejection in &rejections {
        assert!(
            allowed.contains(&rejection.header()),
            "{rejection} names a header outside {allowed:?}"
        );
        assert!(matches!(
            rejection.kind(),
            "missing_header"
                | "malformed_header"
                | "stale_timestamp"
                | "bad_signature"
                | "header_too_large"
        ));
    }
    rejections
}

fn headers(pairs: &[(&'static str, &[u8])]) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_static(name),
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    Some(map)
}

/// A header as an attacker would shape it: entries a parser looks at, and junk.
fn shaped_entries(separator: &'static str) -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        "t=[0-9]{0,12}",
        "t=-?[0-9a-z]{0,5}",
        "v1=[0-9a-f]{0,70}",
        "v1,[A-Za-z0-9+/=]{0,50}",
        "v[0-9]{1,2}[=,][ -~]{0,10}",
        "[ -~]{0,8}",
        Just("1700000000".to_owned()),
    ];
    proptest::collection::vec(entry, 0..40).prop_map(move |entries| entries.join(separator))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_in_each_signature_header(
        value in proptest::collection::vec(any::<u8>(), 0..3 * MAX_SIGNATURE_HEADER_BYTES),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        for (name, allowed) in [
            ("x-razorpay-signature", &["x-razorpay-signature"][..]),
            ("stripe-signature", &["stripe-signature"][..]),
            ("webhook-signature", &["webhook-id", "webhook-timestamp", "webhook-signature"][..]),
        ] {
            // Bytes a header value cannot hold never reach the verifier.
            let Some(map) = headers(&[(name, &value)]) else { continue };
            let rejections = refused_quickly(&map, &body, allowed);
            if value.len() > MAX_SIGNATURE_HEADER_BYTES && name != "webhook-signature" {
                prop_assert_eq!(rejections[0].kind(), "header_too_large");
            }
        }
    }

    #[test]
    fn shaped_stripe_headers(header in shaped_entries(","), body in "[ -~]{0,64}") {
        let Some(map) = headers(&[("stripe-signature", header.as_bytes())]) else {
            return Ok(());
        };
        let rejections = refused_quickly(&map, body.as_bytes(), &["stripe-signature"]);
        let entries = header.split(',').filter(|e| !e.trim().is_empty()).count();
        if header.len() <= MAX_SIGNATURE_HEADER_BYTES && entries > MAX_ENTRIES {
            let too_many = matches!(rejections[0], Rejection::TooManyEntries { .. });
            prop_assert!(too_many, "{:?}", rejections);
        }
    }

    #[test]
    fn shaped_standard_webhooks_headers(
        signature in shaped_entries(" "),
        timestamp in prop_oneof!["[0-9]{0,12}", Just(NOW.to_string()), "[ -~]{0,12}"],
        id in "[ -~]{0,40}",
        body in "[ -~]{0,64}",
    ) {
        let Some(map) = headers(&[
            ("webhook-id", id.as_bytes()),
            ("webhook-timestamp", timestamp.as_bytes()),
            ("webhook-signature", signature.as_bytes()),
        ]) else {
            return Ok(());
        };
        refused_quickly(
            &map,
            body.as_bytes(),
            &["webhook-id", "webhook-timestamp", "webhook-signature"],
        );
    }

    #[test]
    fn shaped_razorpay_headers(header in "[0-9a-fA-F]{0,70}|[ -~]{0,80}") {
        let Some(map) = headers(&[("x-razorpay-signature", header.as_bytes())]) else {
            return Ok(());
        };
        refused_quickly(&map, b"{}", &["x-razorpay-signature"]);
    }
}
