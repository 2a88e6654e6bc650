//! OpenAPI schemas that state the contract's limits from `payments_proto::limits`
//! themselves: utoipa's attributes take only literals, which would write each limit again.

use payments_proto::limits::{ID_PATTERN, MAX_ID_LENGTH, MAX_PAGE_SIZE};
use utoipa::{
    PartialSchema,
    openapi::{KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type},
};

/// A transaction or account id.
pub struct Identifier;

impl PartialSchema for Identifier {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "1 to {MAX_ID_LENGTH} characters of `A-Z a-z 0-9 _ . : -`."
            )))
            .min_length(Some(1))
            .max_length(Some(MAX_ID_LENGTH))
            .pattern(Some(ID_PATTERN))
            .into()
    }
}

/// `page_size` of a list: 1 to the processor's largest page.
pub struct PageSize;

impl PartialSchema for PageSize {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(MAX_PAGE_SIZE))
            .into()
    }
}
