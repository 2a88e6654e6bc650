//! The Python service kept `amount` as a float. Adoption turns each float into the exact
//! amount it stands for, at its currency's minor unit, or says why no amount fits.
//!
//! The rule, in two steps:
//! 1. The float's shortest decimal that reads back as the same float (Python's `repr`,
//!    so what the sender most likely sent): if it has no more decimal places than the
//!    currency allows, that is the amount. `1500.0` JPY is 1500, `12345678901234.99` INR
//!    stays 12345678901234.99.
//! 2. Otherwise the float may be a valid amount plus binary noise (`0.1 + 0.2` is
//!    `0.30000000000000004`). A double holds 15 significant digits faithfully (C's
//!    `DBL_DIG`); what follows them is noise. If the float, rounded to 15 significant
//!    digits, has no more decimal places than the currency allows, that is the amount,
//!    provided those 15 digits reach the minor unit (so the rounding removed only noise
//!    below it). `0.30000000000000004` INR is 0.30.
//!
//! Anything else carries a real digit the currency does not have, and a person decides:
//! `10.123` INR, `1.5` JPY, and `1500.0000000001` INR (that `1` is the 14th significant
//! digit, inside what the float holds, so it is not noise).

use rust_decimal::Decimal;

/// Significant decimal digits every double holds faithfully (`DBL_DIG`).
const FAITHFUL_DIGITS: usize = 15;

/// Why a stored float is not an amount of its currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unconvertible {
    NotANumber,
    NotPositive,
    /// More decimal places than the currency's minor unit, beyond binary noise.
    TooPrecise,
    /// Larger than an exact decimal of 28 digits holds.
    TooLarge,
}

/// The exact amount `value` stands for at `places` decimal places, written with exactly
/// that many (`0.30`, `1500`).
pub fn exact_amount(value: f64, places: u32) -> Result<Decimal, Unconvertible> {
    if value.is_nan() || value.is_infinite() {
        return Err(Unconvertible::NotANumber);
    }
    if value <= 0.0 {
        return Err(Unconvertible::NotPositive);
    }
    // Display of an f64 is its shortest round-trip decimal, never in exponent form.
    let shortest = format!("{value}");
    match Decimal::from_str_exact(&shortest) {
        Ok(amount) if amount.normalize().scale() <= places => return Ok(at_scale(amount, places)),
        Ok(_) => {}
        // The whole part does not fit: no currency's amount is that large.
        Err(_) if value >= 1.0 => return Err(Unconvertible::TooLarge),
        // Too many decimal places to hold: far more than any currency allows.
        Err(_) => return Err(Unconvertible::TooPrecise),
    }
    let rounded = format!("{value:.precision$e}", precision = FAITHFUL_DIGITS - 1);
    let exponent: i64 = rounded
        .split_once('e')
        .and_then(|(_, exponent)| exponent.parse().ok())
        .ok_or(Unconvertible::TooPrecise)?;
    // The last faithful digit is at 10^(exponent - 14): it must reach 10^-places. And a
    // float below a tenth of the minor unit is no amount plus noise (it would round to 0).
    let faithful_places = FAITHFUL_DIGITS as i64 - 1 - exponent;
    if faithful_places < i64::from(places) || exponent < -i64::from(places) - 1 {
        return Err(Unconvertible::TooPrecise);
    }
    match Decimal::from_scientific(&rounded) {
        Ok(amount) if amount.normalize().scale() <= places => Ok(at_scale(amount, places)),
        _ => Err(Unconvertible::TooPrecise),
    }
}

fn at_scale(amount: Decimal, places: u32) -> Decimal {
    let mut amount = amount.normalize();
    amount.rescale(places);
    amount
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converted(value: f64, places: u32) -> Result<String, Unconvertible> {
        exact_amount(value, places).map(|amount| amount.to_string())
    }

    #[test]
    fn binary_noise_is_dropped_at_the_minor_unit() {
        assert_eq!(converted(0.1 + 0.2, 2), Ok("0.30".to_owned()));
        assert_eq!(converted(100.1 + 200.2, 2), Ok("300.30".to_owned()));
        assert_eq!(converted(0.1 * 3.0, 3), Ok("0.300".to_owned()));
        assert_eq!(converted(1.1 * 1.1, 2), Ok("1.21".to_owned()));
        assert_eq!(
            converted(0.009_999_999_999_999_998, 2),
            Ok("0.01".to_owned())
        );
    }

    #[test]
    fn exact_floats_keep_every_digit_the_currency_has() {
        assert_eq!(converted(1500.0, 0), Ok("1500".to_owned()));
        assert_eq!(converted(1500.0, 2), Ok("1500.00".to_owned()));
        assert_eq!(converted(1500.5, 2), Ok("1500.50".to_owned()));
        assert_eq!(converted(0.01, 2), Ok("0.01".to_owned()));
        assert_eq!(converted(1.234, 3), Ok("1.234".to_owned()));
        // 16 significant digits: past the faithful 15, but the shortest form is exact.
        assert_eq!(
            converted(12_345_678_901_234.99, 2),
            Ok("12345678901234.99".to_owned())
        );
        assert_eq!(converted(1e20, 0), Ok("100000000000000000000".to_owned()));
    }

    #[test]
    fn real_digits_beyond_the_minor_unit_are_refused() {
        for (value, places) in [
            (10.123, 2),
            (1.5, 0),
            (1_500.000_000_000_1, 2),
            (0.001, 2),
            (1e-7, 4),
            (5e-324, 2),
            (1e-27, 2),
            (0.000_999_999_999_999_999_9, 2),
            // Noise on a value too large for 15 digits to reach the cents: undecidable.
            (12_345_678_901_234.992, 2),
        ] {
            assert_eq!(
                converted(value, places),
                Err(Unconvertible::TooPrecise),
                "{value} at {places} places"
            );
        }
    }

    #[test]
    fn every_amount_in_cents_comes_back_from_its_float_and_its_neighbours() {
        // Spread over twelve orders of magnitude, where 15 digits still reach the cents.
        let mut cents: u64 = 1;
        while cents < 100_000_000_000_000 {
            let expected = Decimal::new(i64::try_from(cents).unwrap_or(i64::MAX), 2).to_string();
            let nearest = cents as f64 / 100.0;
            for value in [
                nearest,
                f64::from_bits(nearest.to_bits() + 1),
                f64::from_bits(nearest.to_bits() - 1),
            ] {
                assert_eq!(converted(value, 2), Ok(expected.clone()), "{value}");
            }
            cents += cents / 997 + 1;
        }
    }

    #[test]
    fn only_positive_finite_amounts_convert() {
        assert_eq!(converted(0.0, 2), Err(Unconvertible::NotPositive));
        assert_eq!(converted(-0.0, 2), Err(Unconvertible::NotPositive));
        assert_eq!(converted(-5.0, 2), Err(Unconvertible::NotPositive));
        assert_eq!(converted(f64::NAN, 2), Err(Unconvertible::NotANumber));
        assert_eq!(converted(f64::INFINITY, 2), Err(Unconvertible::NotANumber));
        assert_eq!(converted(1e300, 2), Err(Unconvertible::TooLarge));
    }
}
