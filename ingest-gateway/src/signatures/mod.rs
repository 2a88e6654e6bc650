//! Webhook signature verification, configured per deployment and off when no secret is set.
//!
//! Three schemes, one module each: [`razorpay`] (`X-Razorpay-Signature`),
//! [`standard_webhooks`] (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and
//! [`stripe`] (`Stripe-Signature`). Each checks the raw body bytes, before any JSON parsing.
//!
//! How configured schemes combine: a request is accepted when it verifies under **any**
//! configured scheme whose headers it carries. A request carrying none of the configured
//! schemes' headers is rejected as missing a signature; a scheme that is not configured is
//! never consulted, so its headers count for nothing. Every rejection names the header at
//! fault and what was wrong with it (missing, malformed, stale timestamp, bad signature),
//! never a secret or the expected signature.
//!
//! What a check costs is fixed by the configuration, never by the sender: a signature
//! header longer than [`MAX_SIGNATURE_HEADER_BYTES`] or with more than [`MAX_ENTRIES`]
//! entries is refused before any hashing; a candidate that cannot be a signature (wrong
//! length, bad encoding) is dropped unhashed; the MAC is computed once per configured
//! secret and compared in constant time with every candidate (`subtle`).
//!
//! Secrets live in `secrecy` types: they do not print in `Debug` output or logs.

#[cfg(test)]
mod properties;
pub mod razorpay;
pub mod standard_webhooks;
pub mod stripe;

use std::time::Duration;

use anyhow::Context;
use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub use razorpay::Razorpay;
pub use standard_webhooks::StandardWebhooks;
pub use stripe::Stripe;

/// Longest signature header read (a Stripe header rolling two secrets is under 200 bytes);
/// a longer one is refused with 431 before it is parsed.
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 2048;
/// Most entries a signature header may list (Stripe's `t=`, `v1=`, `v0=`; Standard
/// Webhooks' `v1,...`): enough for any rotation, few enough that parsing costs nothing.
pub const MAX_ENTRIES: usize = 8;

/// An HMAC-SHA256 tag, the only thing any scheme signs with.
pub type Tag = [u8; 32];

/// Why a request's signature was not accepted under one scheme.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the {header} header is missing")]
    MissingHeader { header: &'static str },
    #[error("the {header} header is malformed: {why}")]
    MalformedHeader {
        header: &'static str,
        why: &'static str,
    },
    #[error("the {header} header's timestamp is outside the tolerance of {tolerance_seconds} s")]
    StaleTimestamp {
        header: &'static str,
        tolerance_seconds: u64,
    },
    #[error("no signature in the {header} header matches the body")]
    BadSignature { header: &'static str },
    #[error("the {header} header lists more than {MAX_ENTRIES} entries")]
    TooManyEntries { header: &'static str },
    #[error("the {header} header is longer than {MAX_SIGNATURE_HEADER_BYTES} bytes")]
    HeaderTooLarge { header: &'static str },
}

impl Rejection {
    /// The header at fault.
    pub fn header(&self) -> &'static str {
        match self {
            Self::MissingHeader { header }
            | Self::MalformedHeader { header, .. }
            | Self::StaleTimestamp { header, .. }
            | Self::BadSignature { header }
            | Self::TooManyEntries { header }
            | Self::HeaderTooLarge { header } => header,
        }
    }

    /// A stable name for the kind of rejection.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingHeader { .. } => "missing_header",
            Self::MalformedHeader { .. } | Self::TooManyEntries { .. } => "malformed_header",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::BadSignature { .. } => "bad_signature",
            Self::HeaderTooLarge { .. } => "header_too_large",
        }
    }
}

/// The configured schemes. With none configured, every request passes.
#[derive(Clone, Debug)]
pub struct Verifier {
    razorpay: Option<Razorpay>,
    standard_webhooks: Option<StandardWebhooks>,
    stripe: Option<Stripe>,
    tolerance: Duration,
}

/// The secrets as the environment gives them; unset or blank means the scheme is off.
#[derive(Default)]
pub struct Secrets<'a> {
    /// `RAZORPAY_WEBHOOK_SECRET`: one secret.
    pub razorpay: Option<&'a str>,
    /// `STANDARD_WEBHOOKS_SECRET`: `whsec_<base64 key>`, several separated by commas.
    pub standard_webhooks: Option<&'a str>,
    /// `STRIPE_WEBHOOK_SECRET`: `whsec_...`, several separated by commas.
    pub stripe: Option<&'a str>,
}

impl Verifier {
    /// Parses the secrets; an invalid one is an error naming its variable.
    pub fn new(secrets: Secrets<'_>, tolerance: Duration) -> anyhow::Result<Self> {
        let set = |value: Option<&str>| value.filter(|v| !v.trim().is_empty()).map(str::to_owned);
        Ok(Self {
            razorpay: set(secrets.razorpay).as_deref().map(Razorpay::new),
            standard_webhooks: set(secrets.standard_webhooks)
                .as_deref()
                .map(StandardWebhooks::new)
                .transpose()
                .context("STANDARD_WEBHOOKS_SECRET is invalid")?,
            stripe: set(secrets.stripe)
                .as_deref()
                .map(Stripe::new)
                .transpose()
                .context("STRIPE_WEBHOOK_SECRET is invalid")?,
            tolerance,
        })
    }

    /// The configured schemes' names, for the start-up log.
    pub fn schemes(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.razorpay.is_some() {
            names.push("razorpay");
        }
        if self.standard_webhooks.is_some() {
            names.push("standard-webhooks");
        }
        if self.stripe.is_some() {
            names.push("stripe");
        }
        names
    }

    /// Accepts the request if no scheme is configured, or if it verifies under one of the
    /// configured schemes whose headers it carries. Otherwise, each attempted scheme's
    /// rejection, or a missing header per configured scheme when it carried none.
    /// `now` is Unix seconds, given by the caller so tests can fix it.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Vec<Rejection>> {
        let window = Window {
            now,
            seconds: self.tolerance.as_secs(),
        };
        let configured: Vec<&dyn Scheme> = [
            self.razorpay.as_ref().map(|s| s as &dyn Scheme),
            self.standard_webhooks.as_ref().map(|s| s as &dyn Scheme),
            self.stripe.as_ref().map(|s| s as &dyn Scheme),
        ]
        .into_iter()
        .flatten()
        .collect();
        let carried: Vec<&dyn Scheme> = configured
            .iter()
            .copied()
            .filter(|scheme| scheme.carried(headers))
            .collect();
        if carried.is_empty() {
            return if configured.is_empty() {
                Ok(())
            } else {
                Err(configured
                    .iter()
                    .map(|scheme| Rejection::MissingHeader {
                        header: scheme.signature_header(),
                    })
                    .collect())
            };
        }
        let mut rejections = Vec::new();
        for scheme in carried {
            match scheme.verify(headers, body, window) {
                Ok(()) => return Ok(()),
                Err(rejection) => rejections.push(rejection),
            }
        }
        Err(rejections)
    }
}

/// One signature scheme.
trait Scheme {
    /// The header holding the signature, named when none of the scheme's headers came.
    fn signature_header(&self) -> &'static str;
    /// Whether the request carries any of this scheme's headers (then it is checked).
    fn carried(&self, headers: &HeaderMap) -> bool;
    fn verify(&self, headers: &HeaderMap, body: &[u8], window: Window) -> Result<(), Rejection>;
}

/// The clock and the tolerance that a signed timestamp must fall within.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub now: i64,
    pub seconds: u64,
}

impl Window {
    /// Err when `timestamp` is further than the tolerance from now, in either direction (a
    /// timestamp far ahead is as suspect as one far behind).
    fn check(self, timestamp: i64, header: &'static str) -> Result<(), Rejection> {
        if self.now.abs_diff(timestamp) > self.seconds {
            return Err(Rejection::StaleTimestamp {
                header,
                tolerance_seconds: self.seconds,
            });
        }
        Ok(())
    }
}

/// Splits a comma-separated list of secrets, ignoring blanks around them.
fn split_secrets(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
fn hmac_sha256(key: &SecretSlice<u8>, parts: &[&[u8]]) -> Option<Tag> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret()).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// True when the MAC of `parts` under any of `keys` equals any of `candidates`: one MAC per
/// key, whatever the number of candidates, and every comparison made in constant time
/// (no early exit on the first match either, so timing tells nothing about which).
fn any_key_signed(keys: &[SecretSlice<u8>], parts: &[&[u8]], candidates: &[Tag]) -> bool {
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        let Some(expected) = hmac_sha256(key, parts) else {
            continue;
        };
        for candidate in candidates {
            matched |= expected.ct_eq(candidate);
        }
    }
    matched.into()
}

/// A hex-encoded tag, or `None` when the text cannot be one (not 64 hex digits).
fn hex_tag(text: &str) -> Option<Tag> {
    let mut tag = [0; 32];
    hex::decode_to_slice(text, &mut tag).ok()?;
    Some(tag)
}

/// The entries of a list-valued signature header, or a rejection when it lists more than
/// [`MAX_ENTRIES`] (checked before anything else is done with them).
fn bounded_entries<'h>(
    text: &'h str,
    separator: char,
    header: &'static str,
) -> Result<Vec<&'h str>, Rejection> {
    let entries: Vec<&str> = text
        .split(separator)
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .take(MAX_ENTRIES + 1)
        .collect();
    if entries.len() > MAX_ENTRIES {
        return Err(Rejection::TooManyEntries { header });
    }
    Ok(entries)
}

/// The header's value as text, or a rejection naming it; refused unread when longer than
/// [`MAX_SIGNATURE_HEADER_BYTES`].
fn header_text<'h>(headers: &'h HeaderMap, header: &'static str) -> Result<&'h str, Rejection> {
    let value = headers
        .get(header)
        .ok_or(Rejection::MissingHeader { header })?;
    if value.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(Rejection::HeaderTooLarge { header });
    }
    let text = value.to_str().map_err(|_| Rejection::MalformedHeader {
        header,
        why: "not visible ASCII",
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Rejection::MissingHeader { header });
    }
    Ok(text)
}
