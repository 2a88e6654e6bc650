//! The webhook body: JSON shape and types checked here, each offending field named. The
//! business rules (lengths, amount > 0, ISO 4217, ...) are the processor's, applied to
//! REST and gRPC callers alike.

use serde::Deserialize;
use serde_json::{error::Category, value::RawValue};
use utoipa::{PartialSchema, ToSchema};

use crate::error::{ApiError, FieldError};

/// A webhook whose fields have the right JSON types. `amount` keeps the number's exact
/// text: it never passes through a float.
/// (The schema documents the JSON body; unknown extra fields are allowed.)
#[derive(Clone, Debug, PartialEq, Eq, ToSchema)]
#[schema(example = json!({
    "transaction_id": "txn_abc123def456",
    "source_account": "acc_user_789",
    "destination_account": "acc_merchant_456",
    "amount": 1500.50,
    "currency": "INR"
}))]
pub struct WebhookPayload {
    /// 1 to 128 characters of `A-Z a-z 0-9 _ . : -`.
    #[schema(schema_with = crate::openapi::Identifier::schema)]
    pub transaction_id: String,
    /// As `transaction_id`.
    #[schema(schema_with = crate::openapi::Identifier::schema)]
    pub source_account: String,
    /// As `transaction_id`.
    #[schema(schema_with = crate::openapi::Identifier::schema)]
    pub destination_account: String,
    /// A JSON number above 0, kept exactly (never through a float): at most 15 integer
    /// digits and no more decimals than the currency has.
    #[schema(value_type = f64, example = 1500.50, exclusive_minimum = 0, exclusive_maximum = 1e15)]
    pub amount: String,
    /// ISO 4217 code, such as `INR` (upper case; the processor checks it is a real code).
    #[schema(pattern = "^[A-Z]{3}$", example = "INR")]
    pub currency: String,
}

/// Each field as raw JSON, so a wrong type is reported per field. Unknown fields are
/// ignored, as SPEC allows.
#[derive(Deserialize)]
struct RawPayload<'a> {
    #[serde(borrow)]
    transaction_id: Option<&'a RawValue>,
    #[serde(borrow)]
    source_account: Option<&'a RawValue>,
    #[serde(borrow)]
    destination_account: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    currency: Option<&'a RawValue>,
}

impl WebhookPayload {
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let raw: RawPayload<'_> =
            serde_json::from_slice(body).map_err(|error| match error.classify() {
                Category::Data => ApiError::InvalidFields(vec![FieldError::new(
                    "body",
                    format!("must be a JSON object with the transaction's fields ({error})"),
                )]),
                _ => ApiError::MalformedJson(error.to_string()),
            })?;
        let mut errors = Vec::new();
        let mut text = |field: &'static str, value: Option<&RawValue>| -> String {
            match value.map(|raw| serde_json::from_str::<String>(raw.get())) {
                Some(Ok(text)) => text,
                Some(Err(_)) => {
                    errors.push(FieldError::new(field, "must be a string"));
                    String::new()
                }
                None => {
                    errors.push(FieldError::new(field, "is required"));
                    String::new()
                }
            }
        };
        let transaction_id = text("transaction_id", raw.transaction_id);
        let source_account = text("source_account", raw.source_account);
        let destination_account = text("destination_account", raw.destination_account);
        let currency = text("currency", raw.currency);
        let amount = match raw.amount.map(RawValue::get) {
            Some(number) if number.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                number.to_owned()
            }
            Some(_) => {
                errors.push(FieldError::new(
                    "amount",
                    "must be a JSON number, such as 1500.50",
                ));
                String::new()
            }
            None => {
                errors.push(FieldError::new("amount", "is required"));
                String::new()
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::InvalidFields(errors));
        }
        Ok(Self {
            transaction_id,
            source_account,
            destination_account,
            amount,
            currency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_fields(body: &str) -> Vec<String> {
        match WebhookPayload::from_json(body.as_bytes()) {
            Err(ApiError::InvalidFields(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected invalid fields for {body}, got {other:?}"),
        }
    }

    #[test]
    fn keeps_the_amount_text_exact() {
        let body = r#"{"transaction_id":"t","source_account":"a","destination_account":"b",
            "amount":12345678901234567.89,"currency":"INR","extra":{"ignored":true}}"#;
        let payload = WebhookPayload::from_json(body.as_bytes()).map(|p| p.amount);
        assert_eq!(payload.ok().as_deref(), Some("12345678901234567.89"));
    }

    #[test]
    fn names_missing_and_mistyped_fields() {
        assert_eq!(
            invalid_fields(r#"{"transaction_id":1,"amount":"1500","currency":null}"#),
            vec![
                "transaction_id",
                "source_account",
                "destination_account",
                "currency",
                "amount"
            ]
        );
    }

    #[test]
    fn a_non_object_body_is_invalid_not_malformed() {
        assert_eq!(invalid_fields("[1,2]"), vec!["body"]);
    }

    #[test]
    fn broken_json_is_malformed() {
        for body in ["{", "", "{\"transaction_id\": }", "not json"] {
            assert!(
                matches!(
                    WebhookPayload::from_json(body.as_bytes()),
                    Err(ApiError::MalformedJson(_))
                ),
                "{body:?}"
            );
        }
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::json;

        use super::*;

        /// Whatever the bytes, the parser accepts them or answers with a caller's error: 400
        /// (not JSON) or 422 (a field or the body named), never an internal one.
        fn caller_error_or_valid(body: &[u8]) -> bool {
            match WebhookPayload::from_json(body) {
                Ok(_) | Err(ApiError::MalformedJson(_)) => true,
                Err(ApiError::InvalidFields(errors)) => !errors.is_empty(),
                Err(_) => false,
            }
        }

        /// Decimal text as a JSON number may be written: no leading zeros, optional
        /// fraction and exponent, maybe negative.
        fn number_text() -> impl Strategy<Value = String> {
            (
                any::<bool>(),
                "(0|[1-9][0-9]{0,30})",
                proptest::option::of("[0-9]{1,20}"),
                proptest::option::of("[eE][+-]?[0-9]{1,3}"),
            )
                .prop_map(|(negative, integer, fraction, exponent)| {
                    let mut text = String::new();
                    if negative {
                        text.push('-');
                    }
                    text.push_str(&integer);
                    if let Some(fraction) = fraction {
                        text.push('.');
                        text.push_str(&fraction);
                    }
                    text.push_str(&exponent.unwrap_or_default());
                    text
                })
        }

        proptest! {
            #[test]
            fn any_bytes_are_a_400_or_a_422(body in proptest::collection::vec(any::<u8>(), 0..512)) {
                prop_assert!(caller_error_or_valid(&body));
            }

            #[test]
            fn json_shaped_text_is_a_400_or_a_422(body in r#"[{}\[\]":,0-9a-z_ .eE+\-]{0,200}"#) {
                prop_assert!(caller_error_or_valid(body.as_bytes()));
            }

            #[test]
            fn deep_or_long_input_is_refused_in_bounded_time(
                depth in 1usize..20_000,
                open in prop::sample::select(vec!["[", "{\"amount\":", "{\"a\":["]),
                digits in 1usize..70_000,
            ) {
                for body in [
                    open.repeat(depth),
                    format!("{{\"amount\":{}}}", "9".repeat(digits)),
                    format!("{{\"amount\":1e{}}}", "9".repeat(digits)),
                ] {
                    let started = std::time::Instant::now();
                    prop_assert!(caller_error_or_valid(body.as_bytes()));
                    prop_assert!(started.elapsed() < std::time::Duration::from_secs(1));
                }
            }

            #[test]
            fn valid_payloads_round_trip_with_the_amount_exact(
                transaction_id in any::<String>(),
                source_account in any::<String>(),
                destination_account in any::<String>(),
                currency in any::<String>(),
                amount in number_text(),
                extra in any::<String>(),
            ) {
                // serde_json writes the strings (escapes included); the amount goes in as
                // raw number text, as a webhook sender would write it.
                let strings = json!({
                    "transaction_id": transaction_id,
                    "source_account": source_account,
                    "destination_account": destination_account,
                    "currency": currency,
                    "unknown_extra": extra,
                })
                .to_string();
                let body = format!("{{\"amount\":{amount},{}", &strings[1..]);
                let parsed = WebhookPayload::from_json(body.as_bytes());
                prop_assert_eq!(
                    parsed.ok(),
                    Some(WebhookPayload {
                        transaction_id,
                        source_account,
                        destination_account,
                        amount,
                        currency,
                    })
                );
            }

            #[test]
            fn a_wrongly_typed_field_is_named(
                field in prop::sample::select(vec![
                    "transaction_id", "source_account", "destination_account", "currency",
                ]),
                value in prop_oneof![
                    Just(json!(1)), Just(json!(true)), Just(json!([])), Just(json!({})),
                ],
            ) {
                let mut body = json!({
                    "transaction_id": "t", "source_account": "a",
                    "destination_account": "b", "amount": 1, "currency": "INR",
                });
                body[field] = value;
                match WebhookPayload::from_json(body.to_string().as_bytes()) {
                    Err(ApiError::InvalidFields(errors)) => {
                        let fields: Vec<String> = errors.into_iter().map(|e| e.field).collect();
                        prop_assert_eq!(fields, vec![field.to_owned()]);
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }
}
