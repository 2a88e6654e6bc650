//! Bearer tokens: `API_TOKENS` for the read routes, `ADMIN_TOKEN` for the admin routes.
//! Tokens never print and are compared in constant time (`subtle`) against every
//! configured token, so neither the timing nor the order of the list tells anything.

use anyhow::bail;
use axum::{
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::Response,
};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::{AppState, error::ApiError};

/// Shortest token `API_TOKENS` accepts: 32 characters, guessing-proof when random.
pub const MIN_API_TOKEN_LENGTH: usize = 32;

/// One or more tokens, any of which is accepted.
#[derive(Clone, Debug)]
pub struct BearerTokens(Vec<SecretString>);

impl BearerTokens {
    /// `value` split at commas (for rotation: old and new side by side), each token trimmed
    /// and at least `min_length` characters. `None` when unset or blank. Errors name `name`
    /// and the token's position, never the token.
    pub fn parse(
        name: &str,
        value: Option<String>,
        min_length: usize,
        separated: bool,
    ) -> anyhow::Result<Option<Self>> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let tokens: Vec<&str> = if separated {
            value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        } else {
            vec![value.trim()]
        };
        for (index, token) in tokens.iter().enumerate() {
            if token.chars().count() < min_length {
                bail!(
                    "{name}: token number {} is shorter than {min_length} characters",
                    index + 1
                );
            }
            if token.chars().any(char::is_whitespace) {
                bail!("{name}: token number {} contains whitespace", index + 1);
            }
        }
        Ok(Some(Self(
            tokens
                .into_iter()
                .map(|token| SecretString::from(token.to_owned()))
                .collect(),
        )))
    }

    /// Whether `presented` is one of the tokens.
    pub fn accepts(&self, presented: &str) -> bool {
        let mut matched = subtle::Choice::from(0);
        for token in &self.0 {
            matched |= token.expose_secret().as_bytes().ct_eq(presented.as_bytes());
        }
        matched.into()
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Middleware of the read routes: 401 unless the request carries one of `API_TOKENS`
/// (or the gateway runs with `ALLOW_UNAUTHENTICATED_READS=true` and no tokens).
pub async fn require_read_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(tokens) = &state.read_tokens {
        match presented(request.headers()) {
            Some(token) if tokens.accepts(token) => {}
            Some(_) => {
                return Err(ApiError::Unauthenticated(
                    "the bearer token is not one of API_TOKENS".to_owned(),
                ));
            }
            None => {
                return Err(ApiError::Unauthenticated(
                    "send Authorization: Bearer <one of API_TOKENS>".to_owned(),
                ));
            }
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_each_listed_token_and_nothing_else() -> anyhow::Result<()> {
        let other = "fedcba9876543210fedcba9876543210";
        let tokens = BearerTokens::parse(
            "API_TOKENS",
            Some(format!(" {TOKEN} ,{other}\n")),
            MIN_API_TOKEN_LENGTH,
            true,
        )?
        .ok_or_else(|| anyhow::anyhow!("tokens"))?;
        assert!(tokens.accepts(TOKEN) && tokens.accepts(other));
        for wrong in [
            "",
            &TOKEN[..31],
            &format!("{TOKEN}x"),
            "x".repeat(32).as_str(),
        ] {
            assert!(!tokens.accepts(wrong), "{wrong} accepted");
        }
        assert!(!format!("{tokens:?}").contains(TOKEN), "a token printed");
        Ok(())
    }

    #[test]
    fn short_tokens_are_refused_naming_the_variable_not_the_token() {
        let error = BearerTokens::parse(
            "API_TOKENS",
            Some(format!("{TOKEN},short-token")),
            MIN_API_TOKEN_LENGTH,
            true,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            error.contains("API_TOKENS") && error.contains("number 2"),
            "{error}"
        );
        assert!(!error.contains("short-token"), "{error}");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_tokens() {
        let mut headers = HeaderMap::new();
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("abc", None),
        ] {
            headers.insert(
                header::AUTHORIZATION,
                axum::http::HeaderValue::from_static(value),
            );
            assert_eq!(presented(&headers), expected, "{value}");
        }
    }
}
