//! Razorpay: `X-Razorpay-Signature` is the hex HMAC-SHA256 of the raw body under the
//! webhook secret. It carries no timestamp, so Razorpay webhooks have no replay window of
//! their own (idempotency on `transaction_id` makes a replay harmless here).

use axum::http::HeaderMap;
use secrecy::SecretSlice;

use super::{Rejection, Scheme, Window, any_key_signed, header_text, hex_tag};

pub const HEADER: &str = "x-razorpay-signature";

/// One secret: Razorpay signs with one secret at a time, and a secret may contain commas.
#[derive(Clone, Debug)]
pub struct Razorpay {
    secret: [SecretSlice<u8>; 1],
}

impl Razorpay {
    /// Surrounding whitespace is not part of the secret (a secret file's trailing newline).
    pub fn new(secret: &str) -> Self {
        Self {
            secret: [SecretSlice::from(secret.trim().as_bytes().to_vec())],
        }
    }
}

impl Scheme for Razorpay {
    fn signature_header(&self) -> &'static str {
        HEADER
    }

    fn carried(&self, headers: &HeaderMap) -> bool {
        headers.contains_key(HEADER)
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8], _: Window) -> Result<(), Rejection> {
        let signature =
            hex_tag(header_text(headers, HEADER)?).ok_or(Rejection::MalformedHeader {
                header: HEADER,
                why: "not a hex HMAC-SHA256 (64 hex digits)",
            })?;
        if any_key_signed(&self.secret, &[body], &[signature]) {
            Ok(())
        } else {
            Err(Rejection::BadSignature { header: HEADER })
        }
    }
}
