//! Transactions as the rest of the processor sees them: parsed once, valid by construction.
//! These rules serve both doors (gRPC directly, REST through the gateway).

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;

/// Longest id accepted for a transaction or an account (a wire fact: the gateway's
/// OpenAPI document states it).
pub use payments_proto::limits::MAX_ID_LENGTH;
/// Largest amount accepted: anything bigger is a sender's mistake, not a payment.
pub const MAX_AMOUNT_INTEGER_DIGITS: u32 = 15;

/// One rule broken by one field, reported to the caller as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: &'static str,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

/// An identifier sent by a payment processor: 1 to 128 characters of `A-Z a-z 0-9 _ - . :`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identifier(String);

impl Identifier {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(field, "must not be empty"));
        }
        if value.len() > MAX_ID_LENGTH {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {MAX_ID_LENGTH} characters"),
            ));
        }
        if !value.bytes().all(payments_proto::limits::is_id_byte) {
            return Err(FieldViolation::new(
                field,
                "may contain only letters, digits, '_', '-', '.' and ':'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217 currency code in upper case, such as `INR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn parse(value: &str) -> Result<Self, FieldViolation> {
        iso_currency::Currency::from_code(value)
            .map(Self)
            .ok_or_else(|| {
                FieldViolation::new(
                    "currency",
                    "must be an ISO 4217 currency code in upper case, such as INR",
                )
            })
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Decimal places of the currency's minor unit (2 for INR, 0 for JPY, 3 for KWD).
    fn max_decimal_places(self) -> u32 {
        migration::minor_unit::decimal_places(self.0)
    }
}

/// A positive amount, exact, with no more decimal places than its currency has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount(Decimal);

impl Amount {
    /// Parses a decimal literal such as `1500`, `1500.50` or `1.5e3` without rounding.
    pub fn parse(value: &str, currency: Option<Currency>) -> Result<Self, FieldViolation> {
        let invalid = || FieldViolation::new("amount", "must be a decimal number such as 1500.50");
        let value = value.trim();
        if value.is_empty() {
            return Err(FieldViolation::new("amount", "must not be empty"));
        }
        // A well-formed number that a 96-bit decimal cannot hold exactly (`1e400`,
        // `5e-324`) is out of range, not malformed: say which.
        let unrepresentable = || {
            if is_decimal_literal(value) {
                FieldViolation::new(
                    "amount",
                    format!(
                        "is out of range: at most {MAX_AMOUNT_INTEGER_DIGITS} digits before the decimal point and 28 after it"
                    ),
                )
            } else {
                invalid()
            }
        };
        // An exponent is shifted into the digits as text first: `Decimal::from_scientific`
        // rounds what it cannot hold, and an amount is stored exactly as sent or refused.
        let amount = if value.contains(['e', 'E']) {
            let plain = without_exponent(value).ok_or_else(unrepresentable)?;
            Decimal::from_str_exact(&plain).map_err(|_| unrepresentable())?
        } else {
            Decimal::from_str_exact(value).map_err(|_| unrepresentable())?
        };
        if amount <= Decimal::ZERO {
            return Err(FieldViolation::new("amount", "must be greater than 0"));
        }
        let limit = Decimal::from(10_u64.pow(MAX_AMOUNT_INTEGER_DIGITS));
        if amount >= limit {
            return Err(FieldViolation::new(
                "amount",
                format!("must be less than {limit}"),
            ));
        }
        if let Some(currency) = currency {
            let places = currency.max_decimal_places();
            if amount.normalize().scale() > places {
                return Err(FieldViolation::new(
                    "amount",
                    format!(
                        "has more decimal places than {} allows ({places})",
                        currency.code()
                    ),
                ));
            }
        }
        Ok(Self(amount))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

/// Digits with at most one decimal point, an optional sign and an optional exponent:
/// the syntax of a JSON number, whatever its size.
fn is_decimal_literal(value: &str) -> bool {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// Most significant digits a 96-bit decimal holds; a literal with more cannot be exact.
const MAX_SIGNIFICANT_DIGITS: usize = 29;

/// `1.5e3` as `1500`, `-25e-1` as `-2.5`: the same number without its exponent, exactly.
/// `None` when the text is not a decimal literal, or its value has more digits than a
/// 96-bit decimal can hold (whatever the exponent, no string longer than a few dozen
/// characters is built).
fn without_exponent(value: &str) -> Option<String> {
    if !is_decimal_literal(value) {
        return None;
    }
    let (sign, unsigned) = match value.strip_prefix(['-', '+']) {
        Some(rest) => (&value[..1], rest),
        None => ("", value),
    };
    let (mantissa, exponent) = unsigned.split_once(['e', 'E'])?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let leading_zeros = digits.len() - digits.trim_start_matches('0').len();
    let digits = digits.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return Some("0".to_owned());
    }
    if digits.len() > MAX_SIGNIFICANT_DIGITS {
        return None;
    }
    // Exponents beyond a few digits put any non-zero value out of range either way.
    let exponent: i64 = exponent.parse().ok().filter(|e: &i64| e.abs() <= 1_000)?;
    // The decimal point sits `point` digits into `digits` (negative: zeros before them).
    let point = i64::try_from(whole.len()).ok()? - i64::try_from(leading_zeros).ok()? + exponent;
    let length = i64::try_from(digits.len()).ok()?;
    // Past 40 digits either side no 96-bit decimal holds it; within, the plain text goes
    // through the same checks as a number written without an exponent.
    if point > 40 || length - point > 40 {
        return None;
    }
    let zeros = |count: i64| "0".repeat(usize::try_from(count).unwrap_or_default());
    let plain = if point <= 0 {
        format!("0.{}{digits}", zeros(-point))
    } else if point >= length {
        format!("{digits}{}", zeros(point - length))
    } else {
        let (integer, decimals) = digits.split_at(usize::try_from(point).ok()?);
        format!("{integer}.{decimals}")
    };
    Some(format!("{sign}{plain}"))
}

/// What a caller sends to create a transaction, before validation.
#[derive(Clone, Debug, Default)]
pub struct TransactionInput<'a> {
    pub transaction_id: &'a str,
    pub source_account: &'a str,
    pub destination_account: &'a str,
    pub amount: &'a str,
    pub currency: &'a str,
}

/// A valid transaction, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransaction {
    pub transaction_id: Identifier,
    pub source_account: Identifier,
    pub destination_account: Identifier,
    pub amount: Amount,
    pub currency: Currency,
}

impl NewTransaction {
    /// Checks every field and reports every violation, not only the first.
    pub fn parse(input: TransactionInput<'_>) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let transaction_id = keep(
            &mut violations,
            Identifier::parse("transaction_id", input.transaction_id),
        );
        let source_account = keep(
            &mut violations,
            Identifier::parse("source_account", input.source_account),
        );
        let destination_account = keep(
            &mut violations,
            Identifier::parse("destination_account", input.destination_account),
        );
        let currency = keep(&mut violations, Currency::parse(input.currency));
        let amount = keep(&mut violations, Amount::parse(input.amount, currency));
        match (
            transaction_id,
            source_account,
            destination_account,
            amount,
            currency,
        ) {
            (
                Some(transaction_id),
                Some(source_account),
                Some(destination_account),
                Some(amount),
                Some(currency),
            ) if violations.is_empty() => Ok(Self {
                transaction_id,
                source_account,
                destination_account,
                amount,
                currency,
            }),
            _ => Err(violations),
        }
    }
}

/// The value, or `None` with its violation recorded.
fn keep<T>(violations: &mut Vec<FieldViolation>, result: Result<T, FieldViolation>) -> Option<T> {
    result.map_err(|violation| violations.push(violation)).ok()
}

/// Where a transaction stands. Only `Processing` may change, and only once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Processing,
    Processed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "PROCESSING",
            Self::Processed => "PROCESSED",
            Self::Failed => "FAILED",
        }
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "PROCESSING" => Ok(Self::Processing),
            "PROCESSED" => Ok(Self::Processed),
            "FAILED" => Ok(Self::Failed),
            other => Err(format!("unknown transaction status {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> TransactionInput<'static> {
        TransactionInput {
            transaction_id: "txn_abc123def456",
            source_account: "acc_user_789",
            destination_account: "acc_merchant_456",
            amount: "1500",
            currency: "INR",
        }
    }

    fn fields(result: Result<NewTransaction, Vec<FieldViolation>>) -> Vec<&'static str> {
        result
            .err()
            .unwrap_or_default()
            .iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn the_seed_example_is_valid() {
        let parsed = NewTransaction::parse(input()).map_err(|v| format!("{v:?}"));
        assert_eq!(
            parsed.map(|t| (t.amount.value().to_string(), t.currency.code())),
            Ok(("1500".to_owned(), "INR"))
        );
    }

    #[test]
    fn amounts_stay_exact() {
        for (text, expected) in [
            ("1500.50", "1500.50"),
            ("0.01", "0.01"),
            ("1.5e3", "1500"),
            ("15e2", "1500"),
            ("1500.50e0", "1500.50"),
            ("150050E-2", "1500.50"),
            ("0.0015e6", "1500"),
            ("1e14", "100000000000000"),
            ("1.5E+3", "1500"),
            ("12345678901234.99", "12345678901234.99"),
        ] {
            let amount = Amount::parse(text, Currency::parse("INR").ok())
                .map(|a| a.value().normalize().to_string());
            assert_eq!(
                amount,
                Ok(Decimal::from_str_exact(expected)
                    .map(|d| d.normalize().to_string())
                    .unwrap_or_default()),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_amounts_are_rejected() {
        let inr = Currency::parse("INR").ok();
        for text in [
            "0",
            "-5",
            "abc",
            "",
            "1e400",
            "1000000000000000",
            "10.001",
            "NaN",
        ] {
            assert!(Amount::parse(text, inr).is_err(), "{text} was accepted");
        }
        for text in [
            "5e-324",
            "1e400",
            "0.00000000000000000000000000001",
            // Each would round to 1500 through a 96-bit decimal: refused, never rounded.
            "1500.000000000000000000000000001e0",
            "1500000000000000000000000000001e-27",
            "1e99999999999999999999",
        ] {
            let violation = Amount::parse(text, inr).err().map(|v| v.description);
            assert!(
                violation
                    .as_deref()
                    .is_some_and(|d| d.contains("out of range")),
                "{text}: {violation:?}"
            );
        }
        let malformed = Amount::parse("12abc", inr).err().map(|v| v.description);
        assert!(
            malformed
                .as_deref()
                .is_some_and(|d| d.contains("decimal number"))
        );
        assert!(Amount::parse("0e99999999999999999999", inr).is_err());
        assert!(
            Amount::parse("15.001e2", inr).is_ok(),
            "1500.1 has one decimal"
        );
        assert!(
            Amount::parse("15.00001e2", inr).is_err(),
            "1500.001 has three"
        );
        let jpy = Currency::parse("JPY").ok();
        assert!(Amount::parse("100.5", jpy).is_err());
        assert!(Amount::parse("100.0", jpy).is_ok());
    }

    #[test]
    fn currency_must_be_an_upper_case_iso_code() {
        assert!(Currency::parse("INR").is_ok());
        for code in ["inr", "ABC", "", "RUPEE"] {
            assert!(Currency::parse(code).is_err(), "{code} was accepted");
        }
    }

    #[test]
    fn identifiers_are_bounded_and_safe() {
        assert!(Identifier::parse("transaction_id", "pay_29QQoUBi66xm2f").is_ok());
        let too_long = "a".repeat(MAX_ID_LENGTH + 1);
        for bad in ["", " txn", "txn 1", "txn/1", "ID'; DROP", too_long.as_str()] {
            assert!(
                Identifier::parse("transaction_id", bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn every_bad_field_is_reported() {
        let bad = TransactionInput {
            transaction_id: "",
            source_account: "acc 1",
            destination_account: "acc_2",
            amount: "-1",
            currency: "inr",
        };
        assert_eq!(
            fields(NewTransaction::parse(bad)),
            vec!["transaction_id", "source_account", "currency", "amount"]
        );
    }

    mod exponents {
        use proptest::prelude::*;

        use super::*;

        /// `digits` times ten to the `exponent`, written without an exponent by moving
        /// the decimal point: the oracle the parser must agree with.
        fn plain(digits: &str, exponent: i32) -> String {
            let shift = usize::try_from(exponent.unsigned_abs()).unwrap_or_default();
            if exponent >= 0 {
                format!("{digits}{}", "0".repeat(shift))
            } else if shift >= digits.len() {
                format!("0.{}{digits}", "0".repeat(shift - digits.len()))
            } else {
                let (integer, fraction) = digits.split_at(digits.len() - shift);
                format!("{integer}.{fraction}")
            }
        }

        proptest! {
            #[test]
            fn an_exponent_form_is_exactly_its_plain_number_or_refused(
                digits in "[1-9][0-9]{0,35}",
                exponent in -45i32..20,
                currency in prop::sample::select(vec!["INR", "JPY", "KWD"]),
            ) {
                let currency = Currency::parse(currency).ok();
                let with_exponent = Amount::parse(&format!("{digits}e{exponent}"), currency);
                let without = Amount::parse(&plain(&digits, exponent), currency);
                // The same value stored, or both refused naming the amount (the wording may
                // differ: trailing zeros count against a 96-bit decimal's precision).
                let field = |outcome: &Result<Amount, FieldViolation>| {
                    outcome.as_ref().err().map(|violation| violation.field)
                };
                prop_assert_eq!(field(&with_exponent).or(field(&without)).unwrap_or("amount"), "amount");
                prop_assert_eq!(
                    with_exponent.ok().map(|a| a.value().normalize().to_string()),
                    without.ok().map(|a| a.value().normalize().to_string())
                );
            }
        }
    }
}
