//! A URL that may carry a password (`DATABASE_URL`, `REDIS_URL`): it prints with the
//! password as `***`, so a `{:?}` of a configuration or a log line never shows it. The
//! real value comes only from [`SecretUrl::expose`], which a reader can grep for.

use std::fmt;

/// What stands in for a password when the URL is printed.
const MASK: &str = "***";

#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for the one call that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password of its user part (`user:password@`) and of any
    /// `password=` query parameter replaced by `***`. A user part without a colon is
    /// masked whole: Redis URLs may carry a bare password there.
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
            // Not a URL we can take apart: nothing of it is shown.
            return MASK.to_owned();
        };
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let authority = match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _password)) => format!("{user}:{MASK}@{host}"),
                None => format!("{MASK}@{host}"),
            },
            None => authority.to_owned(),
        };
        format!("{}{authority}{}", &url[..scheme_end], redact_query(path))
    }
}

/// `password=…` (any case) in the query, as libpq-style URLs allow, masked.
fn redact_query(path: &str) -> String {
    let Some((before, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut redacted = format!("{before}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        redacted.push('#');
        redacted.push_str(fragment);
    }
    redacted
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), formatter)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        for (url, printed) in [
            (
                "postgres://user:hunter2@host/db",
                "postgres://user:***@host/db",
            ),
            ("redis://:hunter2@host:6379", "redis://:***@host:6379"),
            ("rediss://hunter2@host:6380/0", "rediss://***@host:6380/0"),
            (
                "postgres://user@host/db?sslmode=require&password=hunter2",
                "postgres://***@host/db?sslmode=require&password=***",
            ),
            ("hunter2", "***"),
        ] {
            let secret = SecretUrl::new(url);
            assert_eq!(secret.to_string(), printed);
            assert_eq!(format!("{secret:?}"), format!("{printed:?}"));
            assert_eq!(secret.expose(), url);
        }
    }

    #[test]
    fn urls_without_a_password_print_as_they_are() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "postgres://host:5432/payments?sslmode=verify-ca#x",
        ] {
            assert_eq!(SecretUrl::new(url).to_string(), url);
        }
    }
}
