//! Standard Webhooks (<https://www.standardwebhooks.com>): `webhook-signature` holds
//! space-separated `v1,<base64 HMAC-SHA256>` entries over `{webhook-id}.{webhook-timestamp}.{body}`;
//! the key is the base64 after `whsec_`. Several secrets may be configured (comma-separated)
//! and several signatures sent, so keys can rotate without dropping a webhook.

use axum::http::HeaderMap;
use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use secrecy::SecretSlice;

use super::{
    Rejection, Scheme, Tag, Window, any_key_signed, bounded_entries, header_text, split_secrets,
};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

const SECRET_PREFIX: &str = "whsec_";

/// Standard base64, padded or not (the reference libraries accept both).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Clone, Debug)]
pub struct StandardWebhooks {
    keys: Vec<SecretSlice<u8>>,
}

impl StandardWebhooks {
    /// `whsec_<base64>` secrets separated by commas (the prefix may be left out).
    pub fn new(secrets: &str) -> anyhow::Result<Self> {
        let keys = split_secrets(secrets)
            .enumerate()
            .map(|(index, secret)| {
                let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
                match BASE64.decode(encoded) {
                    Ok(key) if !key.is_empty() => Ok(SecretSlice::from(key)),
                    // The secret itself is not echoed.
                    _ => anyhow::bail!(
                        "secret number {} is not whsec_ followed by base64",
                        index + 1
                    ),
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { keys })
    }
}

impl Scheme for StandardWebhooks {
    fn signature_header(&self) -> &'static str {
        SIGNATURE_HEADER
    }

    fn carried(&self, headers: &HeaderMap) -> bool {
        [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER]
            .iter()
            .any(|h| headers.contains_key(*h))
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8], window: Window) -> Result<(), Rejection> {
        let id = header_text(headers, ID_HEADER)?;
        let timestamp = header_text(headers, TIMESTAMP_HEADER)?;
        let signatures = header_text(headers, SIGNATURE_HEADER)?;
        let timestamp: i64 = timestamp.parse().map_err(|_| Rejection::MalformedHeader {
            header: TIMESTAMP_HEADER,
            why: "not whole Unix seconds",
        })?;
        window.check(timestamp, TIMESTAMP_HEADER)?;
        // Entries of other versions are skipped, as the specification asks; a v1 entry that
        // cannot be a base64 HMAC-SHA256 is dropped unhashed.
        let candidates: Vec<Tag> = bounded_entries(signatures, ' ', SIGNATURE_HEADER)?
            .into_iter()
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, signature)| base64_tag(signature))
            .collect();
        if candidates.is_empty() {
            return Err(Rejection::MalformedHeader {
                header: SIGNATURE_HEADER,
                why: "no v1,<base64 HMAC-SHA256> entry",
            });
        }
        let timestamp = timestamp.to_string();
        let signed: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        let matched = any_key_signed(&self.keys, &signed, &candidates);
        if matched {
            Ok(())
        } else {
            Err(Rejection::BadSignature {
                header: SIGNATURE_HEADER,
            })
        }
    }
}

/// A base64 tag, or `None` when the text cannot be one (a 32-byte tag is 43 or 44
/// characters; anything else is not decoded at all).
fn base64_tag(text: &str) -> Option<Tag> {
    if !(43..=44).contains(&text.len()) {
        return None;
    }
    // Room for the 33 bytes that 44 characters could hold: the decoder wants it.
    let mut decoded = [0; 33];
    match BASE64.decode_slice(text, &mut decoded) {
        Ok(32) => decoded[..32].try_into().ok(),
        _ => None,
    }
}
