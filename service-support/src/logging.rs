//! Logs through `tracing`: readable text or JSON (`LOG_FORMAT`), level and filters from
//! `RUST_LOG`. Both are read with the other settings, so a value that does not parse stops
//! start-up naming the variable instead of being quietly replaced by a default.

use anyhow::{Context, bail};
use tracing_subscriber::{EnvFilter, fmt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How a binary logs, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    /// `LOG_FORMAT`: `text` (the default) or `json`.
    pub format: LogFormat,
    /// `RUST_LOG`'s directives, checked to parse; the binary's default when unset or blank.
    pub filter: String,
}

impl Logging {
    /// Reads `LOG_FORMAT` and `RUST_LOG` through `lookup`; `default_filter` applies when
    /// `RUST_LOG` is unset or blank.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        default_filter: &str,
    ) -> anyhow::Result<Self> {
        let format = match lookup("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("LOG_FORMAT={other:?} must be text or json"),
        };
        let filter = match lookup("RUST_LOG") {
            Some(directives) if !directives.trim().is_empty() => {
                EnvFilter::builder()
                    .parse(&directives)
                    .with_context(|| {
                        format!("RUST_LOG={directives:?} is not a log filter such as info or info,processor=debug")
                    })?;
                directives
            }
            _ => default_filter.to_owned(),
        };
        Ok(Self { format, filter })
    }

    /// Installs the process's subscriber. A second call (tests start many servers in one
    /// process) keeps the first.
    pub fn init(&self) {
        // `filter` was parsed when the settings were read; parse_lossy cannot lose anything.
        let builder = fmt().with_env_filter(EnvFilter::builder().parse_lossy(&self.filter));
        let _ = match self.format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logging(pairs: &[(&str, &str)]) -> anyhow::Result<Logging> {
        Logging::from_lookup(
            |name| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            },
            "info",
        )
    }

    #[test]
    fn unset_or_blank_is_the_default() -> anyhow::Result<()> {
        assert_eq!(
            logging(&[])?,
            Logging {
                format: LogFormat::Text,
                filter: "info".to_owned()
            }
        );
        assert_eq!(logging(&[("RUST_LOG", " ")])?.filter, "info");
        Ok(())
    }

    #[test]
    fn valid_filters_are_kept() -> anyhow::Result<()> {
        for directives in ["debug", "info,processor=debug", "warn,tower_http=trace"] {
            assert_eq!(logging(&[("RUST_LOG", directives)])?.filter, directives);
        }
        assert_eq!(logging(&[("LOG_FORMAT", "json")])?.format, LogFormat::Json);
        Ok(())
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("RUST_LOG", "info,processor=loud"),
            ("RUST_LOG", "[unclosed"),
            ("LOG_FORMAT", "xml"),
        ] {
            let error = logging(&[(name, value)]).err().map(|e| format!("{e:#}"));
            assert!(
                error.as_deref().is_some_and(|e| e.contains(name)),
                "{name}={value}: {error:?}"
            );
        }
    }
}
