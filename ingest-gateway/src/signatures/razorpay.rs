//! Razorpay: `X-Razorpay-Signature` is the hex HMAC-SHA256 of the raw body under the
//! webhook secret. It carries no timestamp, so Razorpay webhooks have no replay window of
//! their own (idempotency on `transaction_id` makes a replay harmless here).

use axum::http::HeaderMap;
use secrecy::SecretSlice;

use super::{Rejection, Scheme, Window, header_text, hmac_sha256_matches};

pub const HEADER: &str = "x-razorpay-signature";

/// One secret: Razorpay signs with one secret at a time, and a secret may contain commas.
#[derive(Clone, Debug)]
pub struct Razorpay {
    secret: SecretSlice<u8>,
}

impl Razorpay {
    pub fn new(secret: String) -> Self {
        Self {
            secret: SecretSlice::from(secret.into_bytes()),
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
            hex::decode(header_text(headers, HEADER)?).map_err(|_| Rejection::MalformedHeader {
                header: HEADER,
                why: "not a hex HMAC-SHA256",
            })?;
        if hmac_sha256_matches(&self.secret, &[body], &signature) {
            Ok(())
        } else {
            Err(Rejection::BadSignature { header: HEADER })
        }
    }
}
