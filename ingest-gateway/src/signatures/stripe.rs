//! Stripe: `Stripe-Signature: t=<Unix seconds>,v1=<hex>[,v1=<hex>...]`, each `v1` a hex
//! HMAC-SHA256 of `{t}.{body}` under the endpoint secret (the whole `whsec_...` string).
//! Stripe sends one `v1` per active secret while a secret is being rolled; several secrets
//! may also be configured here (comma-separated).

use axum::http::HeaderMap;
use secrecy::SecretSlice;

use super::{Rejection, Scheme, Window, header_text, hmac_sha256_matches, split_secrets};

pub const HEADER: &str = "stripe-signature";

#[derive(Clone, Debug)]
pub struct Stripe {
    secrets: Vec<SecretSlice<u8>>,
}

impl Stripe {
    pub fn new(secrets: String) -> anyhow::Result<Self> {
        let secrets: Vec<SecretSlice<u8>> = split_secrets(&secrets)
            .map(|secret| SecretSlice::from(secret.as_bytes().to_vec()))
            .collect();
        if secrets.is_empty() {
            anyhow::bail!("no secret between the commas");
        }
        Ok(Self { secrets })
    }
}

impl Scheme for Stripe {
    fn signature_header(&self) -> &'static str {
        HEADER
    }

    fn carried(&self, headers: &HeaderMap) -> bool {
        headers.contains_key(HEADER)
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8], window: Window) -> Result<(), Rejection> {
        let malformed = |why| Rejection::MalformedHeader {
            header: HEADER,
            why,
        };
        let mut timestamp = None;
        let mut candidates = Vec::new();
        for item in header_text(headers, HEADER)?.split(',') {
            match item.trim().split_once('=') {
                Some(("t", value)) => {
                    timestamp = Some(
                        value
                            .parse::<i64>()
                            .map_err(|_| malformed("t= is not whole Unix seconds"))?,
                    );
                }
                Some(("v1", value)) => candidates
                    .push(hex::decode(value).map_err(|_| malformed("a v1= signature is not hex"))?),
                // Other schemes (v0, ...) are ignored, as Stripe's libraries do.
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or_else(|| malformed("no t= timestamp"))?;
        if candidates.is_empty() {
            return Err(malformed("no v1= signature"));
        }
        window.check(timestamp, HEADER)?;
        let timestamp = timestamp.to_string();
        let signed: [&[u8]; 3] = [timestamp.as_bytes(), b".", body];
        let matched = self.secrets.iter().any(|secret| {
            candidates
                .iter()
                .any(|candidate| hmac_sha256_matches(secret, &signed, candidate))
        });
        if matched {
            Ok(())
        } else {
            Err(Rejection::BadSignature { header: HEADER })
        }
    }
}
