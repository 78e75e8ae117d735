//! Connection set-up for both stores, and the mapping of driver errors to `AppError`.
//!
//! Both pools connect lazily, so the server starts while a database is down and
//! reconnects by itself once it is back.

use crate::model::{AppError, Store};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{MySqlPool, migrate::Migrator};
use std::time::Duration;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How long a request waits for a store before it reports the store as down.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// Sessions run at READ COMMITTED: under MySQL's default REPEATABLE READ, two backup
/// writes that delete not-yet-existing ids take gap locks and then deadlock on each
/// other's inserts. No transaction here relies on repeatable reads; the ones that must
/// not race lock their rows explicitly (`FOR UPDATE`).
pub fn mysql_pool(options: MySqlConnectOptions, max_connections: u32) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(STORE_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(
                    conn,
                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                )
                .await?;
                Ok(())
            })
        })
        .connect_lazy_with(options)
}

/// Parses the URI (no I/O for `mongodb://`; DNS for `mongodb+srv://`). Connecting
/// happens on first use.
pub async fn mongo_database(
    uri: &str,
    database: &str,
) -> Result<mongodb::Database, mongodb::error::Error> {
    let mut options = mongodb::options::ClientOptions::parse(uri).await?;
    options.server_selection_timeout = Some(STORE_TIMEOUT);
    options.connect_timeout = Some(STORE_TIMEOUT);
    options.app_name = Some("sales-portal".into());
    Ok(mongodb::Client::with_options(options)?.database(database))
}

pub fn mysql_error(context: &'static str, e: sqlx::Error) -> AppError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            tracing::warn!(error = %e, context, "MySQL unavailable");
            AppError::Unavailable(Store::MySql)
        }
        e => {
            tracing::error!(error = %e, context, "MySQL error");
            AppError::Internal
        }
    }
}

pub fn mongo_error(context: &'static str, e: mongodb::error::Error) -> AppError {
    use mongodb::error::ErrorKind;
    match *e.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. } => {
            tracing::warn!(error = %e, context, "MongoDB unavailable");
            AppError::Unavailable(Store::MongoDb)
        }
        _ => {
            tracing::error!(error = %e, context, "MongoDB error");
            AppError::Internal
        }
    }
}

/// True when a MySQL error is a unique-key violation, to turn it into a friendly message.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
