//! Connection set-up for both stores, and the mapping of driver errors to `AppError`.
//!
//! Both pools connect lazily, so the server starts while a database is down and
//! reconnects by itself once it is back.

use crate::model::{AppError, Database};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{MySqlPool, migrate::Migrator};
use std::time::Duration;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How long a process waits for another one's migrations before it gives up.
const MIGRATION_WAIT_SECS: u32 = 300;

/// Runs the migrations, one process at a time per database. sqlx's own lock is
/// `GET_LOCK(…, -1)`, which MariaDB answers at once with NULL when another session holds
/// it: two instances starting together on a new database would both apply the first
/// migrations. This takes a lock of its own, with a finite wait, on a connection of its
/// own outside the pool: the lock ends with that connection, however the run ends (an
/// error, or a caller that gave up waiting), and never stays behind in the pool.
pub async fn migrate(pool: &MySqlPool) -> Result<(), sqlx::migrate::MigrateError> {
    use sqlx::{ConnectOptions, Connection};
    let mut lock = pool.connect_options().connect().await?;
    // Named after the database (hashed: lock names are at most 64 characters), so
    // deployments sharing a server do not wait for each other.
    let held: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT('portal.migrate.', SHA1(DATABASE())), ?)")
            .bind(MIGRATION_WAIT_SECS)
            .fetch_one(&mut lock)
            .await?;
    if held != Some(1) {
        return Err(sqlx::migrate::MigrateError::Execute(sqlx::Error::Protocol(
            format!("another process held the migration lock for {MIGRATION_WAIT_SECS} s"),
        )));
    }
    let result = MIGRATOR.run(pool).await;
    // Closing the session releases the lock.
    let _ = lock.close().await;
    result
}

/// How long a request waits for a store before it reports the store as down.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// Sessions run at READ COMMITTED: under MySQL's default REPEATABLE READ, two backup
/// writes that delete not-yet-existing ids take gap locks and then deadlock on each
/// other's inserts. No transaction here relies on repeatable reads; the ones that must
/// not race lock their rows explicitly (`FOR UPDATE`).
///
/// A lock wait gives up after `lock_wait` (InnoDB's default is 50 s): it is kept well
/// inside a sale's lease, so a transaction stuck behind a lock fails while its writer
/// still holds the sale (see `dual_write::LeasePolicy::lock_wait`).
pub fn mysql_pool(
    options: MySqlConnectOptions,
    max_connections: u32,
    lock_wait: Duration,
) -> MySqlPool {
    let lock_wait = lock_wait.as_secs().max(1);
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(STORE_TIMEOUT)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(
                    &mut *conn,
                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                )
                .await?;
                sqlx::Executor::execute(
                    &mut *conn,
                    format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}").as_str(),
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

/// What a store's failure becomes for the caller, logged with what was being done:
/// `query.fetch_one(pool).await.context("count sales")?`. Unavailability (a lost
/// connection, a full pool, a time limit) names the store; anything else is an
/// internal error whose details stay in the log.
pub trait Context<T>: Sized {
    fn context(self, doing: &'static str) -> Result<T, AppError>;

    /// For the MySQL tables of the sales backup: their unavailability is the reporting
    /// database's, not the account database's, to the user.
    fn reporting(self, doing: &'static str) -> Result<T, AppError> {
        self.context(doing).map_err(|e| match e {
            AppError::Unavailable(Database::MySql) => AppError::Unavailable(Database::Reporting),
            e => e,
        })
    }
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, doing: &'static str) -> Result<T, AppError> {
        self.map_err(|e| mysql_error(doing, e))
    }
}

impl<T> Context<T> for Result<T, mongodb::error::Error> {
    fn context(self, doing: &'static str) -> Result<T, AppError> {
        self.map_err(|e| mongo_error(doing, e))
    }
}

pub fn mysql_error(context: &'static str, e: sqlx::Error) -> AppError {
    if is_deadlock(&e) {
        tracing::warn!(error = %e, context, "MySQL rolled the transaction back (deadlock)");
        return AppError::Contended;
    }
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            tracing::warn!(error = %e, context, "MySQL unavailable");
            AppError::Unavailable(Database::MySql)
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
            AppError::Unavailable(Database::MongoDb)
        }
        ErrorKind::Command(ref c) if ran_out_of_time(c) => {
            tracing::warn!(error = %e, context, "MongoDB ran out of time");
            AppError::Unavailable(Database::MongoDb)
        }
        _ => {
            tracing::error!(error = %e, context, "MongoDB error");
            AppError::Internal
        }
    }
}

/// The server gave up at the operation's time limit (`maxTimeMS`): MongoDB answers
/// MaxTimeMSExpired (50); FerretDB 1.x an InternalError (1) that ends with Go's
/// "context deadline exceeded". The caller reads back what happened, as after a lost
/// connection; to a user it is the store being too slow, not a fault of ours.
fn ran_out_of_time(c: &mongodb::error::CommandError) -> bool {
    const INTERNAL_ERROR: i32 = 1;
    const MAX_TIME_MS_EXPIRED: i32 = 50;
    c.code == MAX_TIME_MS_EXPIRED
        || (c.code == INTERNAL_ERROR && c.message.ends_with("context deadline exceeded"))
}

/// True when InnoDB rolled the statement's transaction back to break a lock cycle.
/// Concurrent inserts of one unique value (two writers claiming one sale just after its
/// last intent closed) form such cycles; nothing of the victim remains, so it may run
/// again.
pub fn is_deadlock(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| m.number() == 1213))
}

/// Runs a single-statement operation again (a few times, after a short random pause)
/// when InnoDB picked it as a deadlock victim.
pub async fn retry_deadlocks<T, F, Fut>(mut run: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0u64;
    loop {
        match run().await {
            Err(e) if is_deadlock(&e) && attempt < 5 => {
                attempt += 1;
                let pause = Duration::from_millis(attempt * (1 + rand::random::<u64>() % 10));
                tracing::debug!(attempt, "deadlock victim; running the statement again");
                tokio::time::sleep(pause).await;
            }
            outcome => return outcome,
        }
    }
}

/// Runs a whole transaction again, after a short random pause, while MySQL rolls it
/// back as a deadlock victim (`AppError::Contended`; on Galera also a commit refused at
/// certification). Such a transaction left nothing behind, so running it again is
/// safe; `attempt` must begin its own transaction each time.
pub async fn retry_contended<T, F, Fut>(mut attempt: F) -> Result<T, AppError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    const ATTEMPTS: u64 = 8;
    let mut tries = 1u64;
    loop {
        match attempt().await {
            Err(AppError::Contended) if tries < ATTEMPTS => {
                let pause = Duration::from_millis(5 * tries + rand::random::<u64>() % (20 * tries));
                tracing::info!(tries, "transaction was a deadlock victim; running it again");
                tokio::time::sleep(pause).await;
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// True when a MySQL error is a unique-key violation, to turn it into a friendly message.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The name of the unique key a statement violated. MySQL names it only in its message
/// (`Duplicate entry '…' for key 'uq_users_email'`; MySQL 8 prefixes the table:
/// `'users.uq_users_email'`), so this is the one place that reads it from there.
pub fn violated_key(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    let message = db.message();
    let key = message.rsplit_once("for key '")?.1.strip_suffix('\'')?;
    Some(key.rsplit('.').next().unwrap_or(key).to_string())
}

/// Completes an `… IN (` clause with these ids and its closing parenthesis.
pub fn finish_in_list<'a>(
    q: &mut sqlx::QueryBuilder<'a, sqlx::MySql>,
    ids: &'a [crate::model::SaleId],
) {
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id.as_str());
    }
    q.push(")");
}

/// `text` with LIKE's wildcards (and its escape character) taken literally, for a
/// pattern built around it.
pub fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// At most `max` characters of `text`, for columns of that length.
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_error(code: i32, message: &str) -> mongodb::error::CommandError {
        bson::from_document(bson::doc! { "code": code, "errmsg": message })
            .expect("a command error document")
    }

    #[test]
    fn like_wildcards_in_user_text_match_only_themselves() {
        assert_eq!(like_literal("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(like_literal("plain@mail.co"), "plain@mail.co");
    }

    #[test]
    fn a_store_that_cannot_answer_is_named_for_what_it_holds() {
        let down = || Err::<(), _>(sqlx::Error::PoolTimedOut);
        assert_eq!(
            down().context("log in"),
            Err(AppError::Unavailable(Database::MySql))
        );
        assert_eq!(
            down().reporting("count sales"),
            Err(AppError::Unavailable(Database::Reporting))
        );
        assert_eq!(
            Err::<(), _>(sqlx::Error::RowNotFound).reporting("count sales"),
            Err(AppError::Internal),
            "a fault stays a fault"
        );
        assert_eq!(Database::Reporting.to_string(), "The reporting database");
    }

    #[test]
    fn a_server_side_time_limit_is_the_store_being_unavailable_not_a_fault() {
        // As FerretDB 1.24 answered a findAndModify past its maxTimeMS, verbatim.
        let ferret = command_error(
            1,
            "[msg_findandmodify.go:196 handler.(*Handler).findAndModifyDocument] \
             [collection.go:177 sqlite.(*collection).UpdateAll.func1] context deadline exceeded",
        );
        assert!(ran_out_of_time(&ferret));
        assert!(ran_out_of_time(&command_error(
            50,
            "operation exceeded time limit"
        )));
        assert!(!ran_out_of_time(&command_error(1, "something else broke")));
        assert!(!ran_out_of_time(&command_error(
            11000,
            "E11000 duplicate key error"
        )));
    }
}
