//! The external call that processing a transaction stands for.
//!
//! With `EXTERNAL_CALL_URL` set it is a real HTTP call: the transaction POSTed as JSON
//! with `Idempotency-Key: <transaction_id>` (a repeat after a crash carries the same key,
//! so the downstream can answer it without acting twice), over one pooled client, within
//! `EXTERNAL_CALL_TIMEOUT`. Unset, it is simulated: a delay, and a failure when
//! configured (a share of calls, or ids with a given prefix) so retries, FAILED and the
//! dead-letter stream can be seen working. The simulated call is modelled as its delay:
//! the scheduler waits it out as one timer among many, with no task per waiting call.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use reqwest::{StatusCode, header::HeaderMap};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{config::ExternalCallSettings, db::repository::StoredTransaction};

/// The header that names the transaction to the downstream.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The header that carries the id of the webhook request that created the transaction.
pub const REQUEST_ID_HEADER: &str = payments_proto::request_id::KEY;
/// How much of a refusing answer's body is kept in `last_error`.
const BODY_EXCERPT_CHARS: usize = 200;

#[derive(Clone, Debug)]
pub enum ExternalCall {
    Simulated(SimulatedCall),
    Http(Arc<HttpCall>),
}

impl ExternalCall {
    /// The call `settings` describe: HTTP to `EXTERNAL_CALL_URL`, else simulated.
    pub fn from_settings(settings: &ExternalCallSettings) -> reqwest::Result<Self> {
        Ok(match &settings.url {
            Some(url) => Self::Http(Arc::new(HttpCall::new(url.clone(), settings.timeout)?)),
            None => Self::Simulated(settings.simulated.clone()),
        })
    }

    /// The longest one call may take: the simulated delay, or the HTTP deadline.
    pub fn longest(&self) -> Duration {
        match self {
            Self::Simulated(simulated) => simulated.delay,
            Self::Http(http) => http.timeout,
        }
    }
}

/// What a call said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallResult {
    Succeeded,
    /// Worth trying again (408, 425, 429, 5xx, a time-out, a connection error), no sooner
    /// than `retry_after` when the downstream said so.
    Retryable {
        kind: &'static str,
        error: String,
        retry_after: Option<Duration>,
    },
    /// The downstream refused the transaction (any other answer): trying again would not help.
    Refused {
        error: String,
    },
}

impl CallResult {
    /// The outcome label of `payments_external_calls_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retryable { kind, .. } => kind,
            Self::Refused { .. } => "refused",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimulatedCall {
    pub delay: Duration,
    pub failure_rate: f64,
    pub failing_id_prefix: Option<String>,
}

impl SimulatedCall {
    /// The result of a call for `transaction_id` whose delay has passed.
    pub fn result(&self, transaction_id: &str) -> CallResult {
        let failure = |error: &str| CallResult::Retryable {
            kind: "simulated_failure",
            error: error.to_owned(),
            retry_after: None,
        };
        if self
            .failing_id_prefix
            .as_deref()
            .is_some_and(|prefix| transaction_id.starts_with(prefix))
        {
            return failure("simulated failure: the id matches SIMULATED_FAILURE_ID_PREFIX");
        }
        if self.failure_rate > 0.0 && rand::random::<f64>() < self.failure_rate {
            return failure("simulated failure (SIMULATED_FAILURE_RATE)");
        }
        CallResult::Succeeded
    }
}

#[derive(Clone, Debug)]
pub struct HttpCall {
    /// Pooled: connections to the downstream are kept and reused across calls.
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
}

/// The JSON body of a call: the transaction as the status API shows it, amount exact.
#[derive(Serialize)]
struct CallBody<'a> {
    transaction_id: &'a str,
    source_account: &'a str,
    destination_account: &'a str,
    amount: Box<RawValue>,
    currency: &'a str,
    created_at: DateTime<Utc>,
}

/// A call's body, made when the transaction is claimed.
pub fn request_body(transaction: &StoredTransaction) -> Result<Vec<u8>, serde_json::Error> {
    let body = CallBody {
        transaction_id: &transaction.transaction_id,
        source_account: &transaction.source_account,
        destination_account: &transaction.destination_account,
        amount: RawValue::from_string(transaction.amount.to_string())?,
        currency: &transaction.currency,
        created_at: transaction.created_at,
    };
    serde_json::to_vec(&body)
}

impl HttpCall {
    pub fn new(url: reqwest::Url, timeout: Duration) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirected payment call is not what was configured: its answer decides.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            url,
            timeout,
        })
    }

    /// POSTs `body` for `transaction_id` and says what the answer means.
    pub async fn call(
        &self,
        transaction_id: &str,
        request_id: Option<&str>,
        body: Vec<u8>,
    ) -> CallResult {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY_HEADER, transaction_id)
            .body(body);
        if let Some(request_id) = request_id {
            request = request.header(REQUEST_ID_HEADER, request_id);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers());
                let excerpt = body_excerpt(response).await;
                classify(status, retry_after, &excerpt)
            }
            Err(error) if error.is_timeout() => CallResult::Retryable {
                kind: "timeout",
                error: format!(
                    "no answer within EXTERNAL_CALL_TIMEOUT ({:?})",
                    self.timeout
                ),
                retry_after: None,
            },
            Err(error) => CallResult::Retryable {
                kind: "transport_error",
                error: format!("calling {} failed: {}", self.url, error_chain(&error)),
                retry_after: None,
            },
        }
    }
}

/// What an answer's status means.
fn classify(status: StatusCode, retry_after: Option<Duration>, excerpt: &str) -> CallResult {
    let error = || format!("downstream answered {status}: {excerpt}");
    if status.is_success() {
        CallResult::Succeeded
    } else if matches!(status.as_u16(), 408 | 425 | 429) || status.is_server_error() {
        CallResult::Retryable {
            kind: "retryable_status",
            error: error(),
            retry_after,
        }
    } else {
        CallResult::Refused { error: error() }
    }
}

/// The start of the answer's body, for `last_error`; read to its end (within the call's
/// deadline) so the connection goes back to the pool.
async fn body_excerpt(response: reqwest::Response) -> String {
    match response.bytes().await {
        Ok(bytes) => String::from_utf8_lossy(&bytes)
            .chars()
            .take(BODY_EXCERPT_CHARS)
            .collect(),
        Err(_) => String::new(),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An error and its causes on one line: reqwest's own message says only "error sending
/// request"; the cause says "connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_contract_says() {
        let kind = |code: u16| classify(StatusCode::from_u16(code).unwrap_or_default(), None, "");
        for code in [200, 201, 204] {
            assert_eq!(kind(code), CallResult::Succeeded, "{code}");
        }
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert!(matches!(kind(code), CallResult::Retryable { .. }), "{code}");
        }
        for code in [301, 400, 401, 404, 409, 422] {
            assert!(matches!(kind(code), CallResult::Refused { .. }), "{code}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            if let Ok(value) = value.parse() {
                headers.insert(reqwest::header::RETRY_AFTER, value);
            }
            headers
        };
        assert_eq!(retry_after(&headers("2")), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let parsed = retry_after(&headers(&later)).unwrap_or_default();
        assert!(parsed > Duration::from_secs(50) && parsed <= Duration::from_secs(60));
        assert_eq!(retry_after(&headers("soon")), None);
    }
}
