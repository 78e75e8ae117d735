//! Accounts: registering, confirming and changing an address, logging in and out,
//! passwords and their resets, the second factor's switches, and re-authentication,
//! one job per file. What they share is here: reading a user's row, the password
//! policy's server side, and the transaction helpers.
//!
//! Answers never tell whether an account exists: registration always says "check your
//! inbox" (the owner of an address that is taken gets a mail instead of a new account),
//! a reset request always says the same, and a failed login is "invalid username or
//! password" whether or not the user exists.

mod address;
mod factor;
mod login;
mod passwords;
mod reauth;
mod registration;

pub use address::{
    change_email, decline_address, pending_address, resend_verification, verify_email,
};
pub use factor::{disable_second_factor, new_recovery_codes};
pub use login::{LoggedIn, login, logout, logout_everywhere};
pub(in crate::server::auth) use login::{complete_login, refuse_disabled};
pub use passwords::{change_password, forgot_password, reset_password, send_reset_link_for};
pub(in crate::server::auth) use reauth::check_current_password;
pub use registration::{create_active_user, register};

use super::request::RequestInfo;
use super::{password, sessions};
use crate::model::{AccountStatus, AppError, Role, SecondFactor, SessionUser};
use crate::server::AppState;
use crate::server::db::Context;
use crate::server::limits::{self, Counter, Limit};
use sqlx::MySqlPool;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: u64,
    username: String,
    email: String,
    password_hash: String,
    role: Role,
    status: AccountStatus,
    email_verified: bool,
    has_factor: bool,
}

/// The user as a login that has just checked the password sees them: a second step
/// follows if they have a second factor.
impl From<UserRow> for SessionUser {
    fn from(r: UserRow) -> Self {
        SessionUser {
            id: r.id,
            username: r.username,
            email: r.email,
            role: r.role,
            status: r.status,
            email_verified: r.email_verified,
            second_factor: match r.has_factor {
                true => SecondFactor::Pending,
                false if r.role.needs_second_factor() => SecondFactor::Missing,
                false => SecondFactor::Off,
            },
        }
    }
}

const USER_COLUMNS: &str = "id, username, email, password_hash, role, status, \
     email_verified_at IS NOT NULL AS email_verified, \
     EXISTS (SELECT 1 FROM second_factors f WHERE f.user_id = users.id AND f.confirmed_at IS NOT NULL) AS has_factor";

pub(super) async fn find_by(
    pool: &MySqlPool,
    column: &'static str,
    value: &str,
) -> Result<Option<UserRow>, AppError> {
    // A closed account is nobody's: no login, reset or check finds it.
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {column} = ? AND status <> 'closed'"
    ))
    .bind(value)
    .fetch_optional(pool)
    .await
    .context("find user")
}

/// The server's part of the password policy: the shared rules plus the common-password
/// check, as a field error of `field`.
async fn strong_enough(password: &str, inputs: &[&str], field: &str) -> Result<(), AppError> {
    password::check_strength(password, inputs)
        .await?
        .map_err(|m| AppError::invalid(field, m))
}

async fn begin(pool: &MySqlPool) -> Result<sqlx::Transaction<'static, sqlx::MySql>, AppError> {
    pool.begin().await.context("begin")
}

async fn commit(tx: sqlx::Transaction<'static, sqlx::MySql>) -> Result<(), AppError> {
    tx.commit().await.context("commit")
}

/// Ends a transaction that is given up at once (it may hold row locks).
async fn rollback(tx: sqlx::Transaction<'static, sqlx::MySql>) {
    let _ = tx.rollback().await;
}

/// Counts one use of a mailed link (confirmation or reset) against the client: 30 an
/// hour, so link tokens cannot be guessed at speed.
async fn link_attempt(state: &AppState, info: &RequestInfo) -> Result<(), AppError> {
    limits::check(
        &state.mysql,
        Counter::LinkAttempt,
        &info.client,
        Limit::per_window(30, HOUR),
    )
    .await?;
    Ok(())
}

/// The id of the account with this username key, if there is one.
pub(crate) async fn id_by_username_key(
    pool: &MySqlPool,
    key: &str,
) -> Result<Option<u64>, AppError> {
    Ok(find_by(pool, "username_key", key).await?.map(|u| u.id))
}
