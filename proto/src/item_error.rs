//! A gRPC status carried as data in a batch's item, and back: the processor answers an
//! `IngestTransactions` item with what `IngestTransaction` would have answered, and the
//! gateway turns it back into that status.

use crate::v1;

impl From<tonic::Status> for v1::ItemError {
    fn from(status: tonic::Status) -> Self {
        Self {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: status.details().to_vec(),
        }
    }
}

impl From<v1::ItemError> for tonic::Status {
    fn from(error: v1::ItemError) -> Self {
        tonic::Status::with_details(
            tonic::Code::from(error.code),
            error.message,
            error.details.into(),
        )
    }
}
