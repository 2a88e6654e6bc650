//! The processor's one error type, and its single mapping to gRPC status codes.

use sea_orm::{DbErr, RuntimeErr, sqlx};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::FieldViolation;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid transaction")]
    InvalidArgument(Vec<FieldViolation>),
    #[error("transaction {0} not found")]
    NotFound(String),
    #[error("transaction {transaction_id} already exists with a different {}", fields.join(", "))]
    Conflict {
        transaction_id: String,
        fields: Vec<&'static str>,
    },
    #[error("transaction {transaction_id} is {status}: only a FAILED transaction can be retried")]
    NotRetryable {
        transaction_id: String,
        status: String,
    },
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// True when the cause is a dependency that could not be reached, not a bad request
    /// or a bad query: the caller should retry later.
    fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) => true,
            Self::Database(
                DbErr::Exec(RuntimeErr::SqlxError(cause))
                | DbErr::Query(RuntimeErr::SqlxError(cause)),
            ) => {
                matches!(
                    cause.as_ref(),
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Tls(_)
                )
            }
            Self::Redis(_) | Self::Unavailable(_) => true,
            _ => false,
        }
    }
}

impl Error {
    /// An equivalent error for each caller of a batch that failed as a whole.
    pub fn duplicate(&self) -> Self {
        if self.is_unavailable() {
            Self::Unavailable(self.to_string())
        } else {
            Self::Internal(self.to_string())
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        if error.is_unavailable() {
            tracing::warn!(error = %error, "dependency unavailable");
            return Status::unavailable(
                "a dependency of the processor is unavailable; retry later",
            );
        }
        match error {
            Error::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for violation in &violations {
                    details.add_bad_request_violation(violation.field, &violation.description);
                }
                let fields: Vec<_> = violations.iter().map(|v| v.field).collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid fields: {}", fields.join(", ")),
                    details,
                )
            }
            Error::NotFound(id) => Status::not_found(format!("transaction {id} not found")),
            not_retryable @ Error::NotRetryable { .. } => {
                Status::failed_precondition(not_retryable.to_string())
            }
            conflict @ Error::Conflict { .. } => {
                let mut details = ErrorDetails::new();
                if let Error::Conflict { fields, .. } = &conflict {
                    for field in fields {
                        details.add_bad_request_violation(
                            *field,
                            "differs from the transaction already stored with this transaction_id",
                        );
                    }
                }
                Status::with_error_details(Code::AlreadyExists, conflict.to_string(), details)
            }
            Error::Database(_) | Error::Redis(_) | Error::Unavailable(_) | Error::Internal(_) => {
                // The cause goes to the log; the caller gets an opaque answer.
                tracing::error!(error = %error, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
