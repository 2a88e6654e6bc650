//! The queries, as plain async functions over any connection (pool or transaction).

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TryInsertResult,
    sea_query::{Expr, ExprTrait},
};

use super::entity::{self, Column, Entity as Transactions};
use crate::domain::{NewTransaction, Status};

pub use entity::Model as StoredTransaction;

/// Inserts the transaction unless its id exists; `None` means it already existed.
/// One statement (`INSERT … ON CONFLICT DO NOTHING RETURNING`), so concurrent duplicates
/// make exactly one row.
pub async fn insert_if_absent(
    db: &impl ConnectionTrait,
    transaction: &NewTransaction,
) -> Result<Option<StoredTransaction>, DbErr> {
    let row = entity::ActiveModel {
        transaction_id: Set(transaction.transaction_id.to_string()),
        source_account: Set(transaction.source_account.to_string()),
        destination_account: Set(transaction.destination_account.to_string()),
        amount: Set(transaction.amount.value()),
        currency: Set(transaction.currency.code().to_owned()),
        status: NotSet,
        attempts: NotSet,
        last_error: NotSet,
        created_at: NotSet,
        updated_at: NotSet,
        processed_at: NotSet,
    };
    let result = Transactions::insert(row)
        .on_conflict_do_nothing_on([Column::TransactionId])
        // `_many`: on a conflict it yields no row, where the single-row form reports
        // RecordNotFound (sea-orm 2.0.4) and would look like an error.
        .exec_with_returning_many(db)
        .await?;
    Ok(match result {
        TryInsertResult::Inserted(stored) => stored.into_iter().next(),
        TryInsertResult::Conflicted | TryInsertResult::Empty => None,
    })
}

pub async fn find(
    db: &impl ConnectionTrait,
    transaction_id: &str,
) -> Result<Option<StoredTransaction>, DbErr> {
    Transactions::find_by_id(transaction_id.to_owned())
        .one(db)
        .await
}

/// Moves a transaction from PROCESSING to PROCESSED. Returns false when it was not
/// PROCESSING (a redelivered entry): the update is conditional, so it happens once.
pub async fn mark_processed(
    db: &impl ConnectionTrait,
    transaction_id: &str,
) -> Result<bool, DbErr> {
    let result = Transactions::update_many()
        .col_expr(Column::Status, Expr::value(Status::Processed.as_str()))
        .col_expr(Column::ProcessedAt, Expr::current_timestamp())
        .col_expr(Column::UpdatedAt, Expr::current_timestamp())
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .filter(Column::TransactionId.eq(transaction_id))
        .filter(Column::Status.eq(Status::Processing.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
