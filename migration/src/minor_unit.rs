//! How many decimal places a currency's amounts may have: its ISO 4217 minor unit.
//!
//! The processor's domain applies this rule at ingest. It lives here because adopting the
//! Python service's table (a migration, also run by the `migration` CLI, which cannot
//! depend on the processor) must decide the same question for every stored float.

/// Decimal places allowed for currencies without a minor unit in ISO 4217 (such as XAU).
const FALLBACK_DECIMAL_PLACES: u32 = 4;

/// Decimal places of the currency's minor unit (2 for INR, 0 for JPY, 3 for KWD).
pub fn decimal_places(currency: iso_currency::Currency) -> u32 {
    currency
        .exponent()
        .map_or(FALLBACK_DECIMAL_PLACES, u32::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iso_currency::Currency;

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(decimal_places(Currency::INR), 2);
        assert_eq!(decimal_places(Currency::JPY), 0);
        assert_eq!(decimal_places(Currency::KWD), 3);
        assert_eq!(decimal_places(Currency::XAU), FALLBACK_DECIMAL_PLACES);
    }
}
