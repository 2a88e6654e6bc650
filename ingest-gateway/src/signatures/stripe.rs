//! Stripe: `Stripe-Signature: t=<Unix seconds>,v1=<hex>[,v1=<hex>...]`, each `v1` a hex
//! HMAC-SHA256 of `{t}.{body}` under the endpoint secret (the whole `whsec_...` string).
//! Stripe sends one `v1` per active secret while a secret is being rolled; several secrets
//! may also be configured here (comma-separated).

use axum::http::HeaderMap;
use secrecy::SecretSlice;

use super::{
    Rejection, Scheme, Window, any_key_signed, bounded_entries, header_text, hex_tag, split_secrets,
};

pub const HEADER: &str = "stripe-signature";

#[derive(Clone, Debug)]
pub struct Stripe {
    secrets: Vec<SecretSlice<u8>>,
}

impl Stripe {
    pub fn new(secrets: &str) -> anyhow::Result<Self> {
        let secrets: Vec<SecretSlice<u8>> = split_secrets(secrets)
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
        let mut v1_entries = 0;
        for entry in bounded_entries(header_text(headers, HEADER)?, ',', HEADER)? {
            match entry.split_once('=') {
                Some(("t", value)) => {
                    timestamp = Some(
                        value
                            .parse::<i64>()
                            .map_err(|_| malformed("t= is not whole Unix seconds"))?,
                    );
                }
                // One that cannot be a hex HMAC-SHA256 is dropped unhashed.
                Some(("v1", value)) => {
                    v1_entries += 1;
                    candidates.extend(hex_tag(value));
                }
                // Other schemes (v0, ...) are ignored, as Stripe's libraries do.
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or_else(|| malformed("no t= timestamp"))?;
        if candidates.is_empty() {
            return Err(malformed(if v1_entries == 0 {
                "no v1= signature"
            } else {
                "no v1= signature is 64 hex digits"
            }));
        }
        window.check(timestamp, HEADER)?;
        let timestamp = timestamp.to_string();
        let signed: [&[u8]; 3] = [timestamp.as_bytes(), b".", body];
        let matched = any_key_signed(&self.secrets, &signed, &candidates);
        if matched {
            Ok(())
        } else {
            Err(Rejection::BadSignature { header: HEADER })
        }
    }
}
