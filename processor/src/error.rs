//! The processor's one error type, its single mapping to gRPC status codes, and the one
//! place that decides whether a failure means "a dependency is away; retry later".

use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, sqlx};
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

/// Whether trying again later can succeed, and what a retry needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transience {
    /// A bad request or a bad query: the same call fails the same way.
    Permanent,
    /// The statement lost a race with another (deadlock, serialization failure): the
    /// same statement again succeeds.
    Contention,
    /// The dependency is saturated or stalled (too many connections, a full pool, a
    /// statement or lock time-out): it already made the caller wait, and an immediate
    /// retry would only add to the load.
    Overloaded,
    /// The connection or the server behind it went away (restart, failover, a terminated
    /// backend): a retry needs a new connection.
    ConnectionLost,
}

impl Transience {
    /// The caller should try again later: UNAVAILABLE, 503.
    pub fn is_transient(self) -> bool {
        self != Self::Permanent
    }

    /// A retry at once, on a sound connection, is likely to succeed.
    pub fn is_worth_retrying_at_once(self) -> bool {
        matches!(self, Self::Contention | Self::ConnectionLost)
    }
}

/// What a PostgreSQL error code (SQLSTATE) says about retrying.
pub fn sqlstate_transience(code: &str) -> Transience {
    match code {
        // Class 08, connection exception; 57P01 admin shutdown (also what
        // pg_terminate_backend sends), 57P02 crash shutdown, 57P03 cannot connect now
        // (starting up or in recovery); 25006 read-only transaction: the pool still
        // talks to a server that became a standby in a failover.
        _ if code.starts_with("08") => Transience::ConnectionLost,
        "57P01" | "57P02" | "57P03" | "25006" => Transience::ConnectionLost,
        // 40001 serialization failure, 40P01 deadlock.
        "40001" | "40P01" => Transience::Contention,
        // Class 53, insufficient resources (53300 too many connections, disk full, out of
        // memory); 57014 a statement cancelled (statement_timeout) and 55P03 lock not
        // available (lock_timeout): a stall.
        "57014" | "55P03" => Transience::Overloaded,
        _ if code.starts_with("53") => Transience::Overloaded,
        _ => Transience::Permanent,
    }
}

/// What a database error says about retrying.
pub fn db_transience(error: &DbErr) -> Transience {
    match error {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => Transience::Overloaded,
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) | DbErr::Conn(_) => {
            Transience::ConnectionLost
        }
        DbErr::Exec(RuntimeErr::SqlxError(cause)) | DbErr::Query(RuntimeErr::SqlxError(cause)) => {
            sqlx_transience(cause)
        }
        _ => Transience::Permanent,
    }
}

fn sqlx_transience(error: &sqlx::Error) -> Transience {
    match error {
        sqlx::Error::Database(database) => database
            .code()
            .map_or(Transience::Permanent, |code| sqlstate_transience(&code)),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            Transience::ConnectionLost
        }
        sqlx::Error::PoolTimedOut => Transience::Overloaded,
        _ => Transience::Permanent,
    }
}

impl Error {
    /// Whether the cause is a dependency that is away or busy right now (the caller
    /// should retry later), as opposed to a bad request or a bad query.
    pub fn transience(&self) -> Transience {
        match self {
            Self::Database(error) => db_transience(error),
            Self::Redis(_) | Self::Unavailable(_) => Transience::Overloaded,
            _ => Transience::Permanent,
        }
    }

    /// An equivalent error for each caller of a batch that failed as a whole.
    pub fn duplicate(&self) -> Self {
        if self.transience().is_transient() {
            Self::Unavailable(self.to_string())
        } else {
            Self::Internal(self.to_string())
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        if error.transience().is_transient() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_of_an_absent_or_busy_database_are_transient() {
        for code in [
            "57P01", "57P02", "57P03", "25006", "08006", "08001", "08P01",
        ] {
            assert_eq!(
                sqlstate_transience(code),
                Transience::ConnectionLost,
                "{code}"
            );
        }
        for code in ["40001", "40P01"] {
            assert_eq!(sqlstate_transience(code), Transience::Contention, "{code}");
        }
        for code in ["53300", "53100", "57014", "55P03"] {
            assert_eq!(sqlstate_transience(code), Transience::Overloaded, "{code}");
        }
        // A bad query or a broken rule stays an internal error.
        for code in ["42601", "42P01", "23505", "22P02", "23502"] {
            assert_eq!(sqlstate_transience(code), Transience::Permanent, "{code}");
        }
    }

    #[test]
    fn pool_and_socket_failures_are_transient_and_decoding_is_not() {
        let io = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        ))));
        assert_eq!(db_transience(&io), Transience::ConnectionLost);
        let pool = DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(
            sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(db_transience(&pool), Transience::Overloaded);
        assert_eq!(
            db_transience(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
            Transience::Overloaded
        );
        let decode = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
            sqlx::Error::ColumnNotFound("amount".to_owned()),
        )));
        assert_eq!(db_transience(&decode), Transience::Permanent);
        assert_eq!(Status::from(Error::Database(decode)).code(), Code::Internal);
        assert_eq!(Status::from(Error::Database(io)).code(), Code::Unavailable);
    }
}
