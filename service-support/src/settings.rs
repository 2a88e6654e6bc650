//! Parsing of settings read from the environment: each parser names the variable in its
//! error, so an invalid value stops start-up saying which one. A binary's own `Config`
//! decides names and defaults; these only turn text into values.

use std::{cell::RefCell, net::SocketAddr, time::Duration};

use anyhow::{Context, bail};

/// A lookup over fixed pairs (tests, and callers that build settings themselves); a name
/// given twice takes its first value.
pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
    pairs: &[(N, V)],
) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| key.as_ref() == name)
            .map(|(_, value)| value.as_ref().to_owned())
    }
}

pub fn non_empty(name: &str, value: String) -> anyhow::Result<String> {
    if value.trim().is_empty() {
        bail!("{name} must not be empty");
    }
    Ok(value)
}

pub fn parse_addr(name: &str, value: &str) -> anyhow::Result<SocketAddr> {
    value
        .parse()
        .with_context(|| format!("{name}={value:?} is not a socket address such as 0.0.0.0:8000"))
}

pub fn parse_duration(name: &str, value: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(value)
        .with_context(|| format!("{name}={value:?} is not a duration such as 500ms, 2s or 30s"))
}

/// A whole number of at least 1.
pub fn parse_number<T>(name: &str, value: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    match value.parse::<T>() {
        Ok(number) if number >= T::from(1) => Ok(number),
        _ => bail!("{name}={value:?} must be a whole number of at least 1"),
    }
}

/// A share from 0 to 1.
pub fn parse_rate(name: &str, value: &str) -> anyhow::Result<f64> {
    match value.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => bail!("{name}={value:?} must be a number from 0 to 1"),
    }
}

pub fn parse_bool(name: &str, value: &str) -> anyhow::Result<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("{name}={value:?} must be true or false"),
    }
}

/// The names `read` looks up when every variable is unset, sorted, each once: what a
/// binary's test compares with its `VARIABLES`, so the deployment files' checks against
/// that list cover every setting the code reads.
pub fn variables_read(read: impl FnOnce(&dyn Fn(&str) -> Option<String>)) -> Vec<String> {
    let names = RefCell::new(Vec::new());
    read(&|name: &str| {
        names.borrow_mut().push(name.to_owned());
        None
    });
    let mut names = names.into_inner();
    names.sort();
    names.dedup();
    names
}

/// Asserts that `read` looks up exactly `variables` (see [`variables_read`]).
pub fn assert_reads_exactly(
    variables: &[&str],
    read: impl FnOnce(&dyn Fn(&str) -> Option<String>),
) {
    let mut listed: Vec<String> = variables.iter().map(|name| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(variables_read(read), listed, "variables read vs. listed");
}

/// Asserts that `parse` refuses each case's pairs with an error naming the case's text,
/// and returns the errors, for further checks.
pub fn assert_refused_naming<T>(
    parse: impl Fn(&[(&str, &str)]) -> anyhow::Result<T>,
    cases: &[(&[(&str, &str)], &str)],
) -> Vec<String> {
    cases
        .iter()
        .map(|(pairs, named)| {
            let error = parse(pairs).err().map(|e| format!("{e:#}"));
            assert!(
                error.as_deref().is_some_and(|e| e.contains(named)),
                "{pairs:?}: {error:?}"
            );
            error.unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_name_the_variable() {
        let errors = [
            parse_addr("SOME_ADDR", "port 80").err(),
            parse_duration("SOME_DELAY", "soon").err(),
            parse_number::<u32>("SOME_COUNT", "0").err(),
            parse_rate("SOME_RATE", "1.5").err(),
            parse_bool("SOME_FLAG", "yes").err(),
            non_empty("SOME_NAME", " ".to_owned()).err(),
        ];
        for (error, name) in errors.iter().zip([
            "SOME_ADDR",
            "SOME_DELAY",
            "SOME_COUNT",
            "SOME_RATE",
            "SOME_FLAG",
            "SOME_NAME",
        ]) {
            let message = error.as_ref().map(|e| format!("{e:#}"));
            assert!(
                message.as_deref().is_some_and(|m| m.contains(name)),
                "{name}: {message:?}"
            );
        }
    }

    #[test]
    fn valid_values_parse() -> anyhow::Result<()> {
        assert_eq!(parse_addr("A", "127.0.0.1:80")?.port(), 80);
        assert_eq!(parse_duration("D", "250ms")?, Duration::from_millis(250));
        assert_eq!(parse_number::<usize>("N", "3")?, 3);
        assert_eq!(parse_rate("R", "0.25")?, 0.25);
        assert!(parse_bool("B", "1")? && !parse_bool("B", "false")?);
        Ok(())
    }

    #[test]
    fn variables_read_lists_each_name_once() {
        let read = variables_read(|lookup| {
            let _ = (lookup("B"), lookup("A"), lookup("B"));
        });
        assert_eq!(read, ["A", "B"]);
        assert_reads_exactly(&["B", "A"], |lookup| {
            let _ = (lookup("A"), lookup("B"));
        });
        let pairs = [("A", "1"), ("A", "2")];
        assert_eq!(from_pairs(&pairs)("A").as_deref(), Some("1"));
    }
}
