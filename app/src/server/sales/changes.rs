//! The backup's change counter: bumped inside every transaction that writes the
//! backup tables, read once per request, so figures cached from those tables (the
//! sales list's match counts) stay current whichever instance made the change.

use crate::model::{AppError, SaleId};
use crate::server::db::Context;
use sqlx::MySqlConnection;

/// Slots of the change counter: writers bump one slot each, so concurrent commits
/// rarely wait on the same row lock.
const CHANGE_SLOTS: u64 = 16;

/// Counts a change to the backup tables, inside the writing transaction: a figure
/// cached from these tables (the sales list's match counts) compares the sum of all
/// slots, read before it was computed, with the sum now. Equal sums mean no write
/// committed in between, in any process. (The latest `updated_at` could not tell:
/// commit order is not timestamp order.)
pub async fn count_change(conn: &mut MySqlConnection, ids: &[SaleId]) -> Result<(), AppError> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ids.first().hash(&mut h);
    sqlx::query("UPDATE backup_changes SET n = n + 1 WHERE slot = ?")
        .bind(h.finish() % CHANGE_SLOTS)
        .execute(&mut *conn)
        .await
        .reporting("count backup change")?;
    Ok(())
}

/// The change count: the sum of the slots, as of this read.
pub async fn generation(pool: &sqlx::MySqlPool) -> Result<u64, AppError> {
    let n: Option<rust_decimal::Decimal> = sqlx::query_scalar("SELECT SUM(n) FROM backup_changes")
        .fetch_one(pool)
        .await
        .reporting("read backup change count")?;
    Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}
