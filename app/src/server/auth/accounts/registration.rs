//! Registering: self-service, and accounts made by the command line.

use super::*;
use crate::model::{AccountStatus, AppError, NewAccount};
use crate::server::AppState;
use crate::server::auth::audit::{self, AuditEvent, AuditRecord};
use crate::server::auth::password;
use crate::server::auth::request::RequestInfo;
use crate::server::auth::tokens::{self, Purpose};
use crate::server::db::{Context, mysql_error, violated_key};
use crate::server::limits::{self, Counter, Limit};
use crate::server::mail::{self, templates};
use sqlx::{MySqlConnection, MySqlPool};

/// Which unique key an insert of a user ran into.
enum Taken {
    Email,
    Username,
}

/// Inserts a user on the caller's connection; `Err(Taken)` when the username or email
/// belongs to someone already.
async fn insert_user(
    conn: &mut MySqlConnection,
    account: &NewAccount,
    hash: &str,
    status: AccountStatus,
    verified: bool,
) -> Result<Result<u64, Taken>, AppError> {
    let result = sqlx::query(
        "INSERT INTO users (username, username_key, email, email_verified_at, password_hash, role, status, created_at) \
         VALUES (?, ?, ?, IF(?, UTC_TIMESTAMP(6), NULL), ?, ?, ?, UTC_TIMESTAMP(6))",
    )
    .bind(account.username.as_str())
    .bind(account.username.key())
    .bind(account.email.as_str())
    .bind(verified)
    .bind(hash)
    .bind(account.role)
    .bind(status)
    .execute(conn)
    .await;
    match result {
        Ok(done) => Ok(Ok(done.last_insert_id())),
        Err(e) => match violated_key(&e).as_deref() {
            Some("uq_users_email") => Ok(Err(Taken::Email)),
            Some("uq_users_username_key") => Ok(Err(Taken::Username)),
            _ => Err(mysql_error("insert user", e)),
        },
    }
}

/// Self-service registration. The answer is the same whatever happens ("check your
/// inbox"), and no one is logged in: the address's owner learns the outcome by mail.
/// A new address gets a verification link; an address that has an account gets a
/// "someone tried to register with your address" notice; a taken username, a request
/// to choose another. Customers are active at once (but see no purchases before the
/// address is verified); technical workers and senior managers wait for approval.
#[tracing::instrument(skip_all, fields(ip = %info.ip))]
pub async fn register(
    state: &AppState,
    info: &RequestInfo,
    account: NewAccount,
) -> Result<(), AppError> {
    limits::check(
        &state.mysql,
        Counter::Register,
        &info.client,
        Limit::per_window(10, HOUR),
    )
    .await?;
    strong_enough(
        account.password.expose(),
        &[account.username.as_str(), account.email.as_str()],
        "password",
    )
    .await?;
    // Every path hashes, so the answer takes as long whether or not the address is taken.
    let hash = password::hash(account.password.expose().to_string()).await?;
    let status = if account.role.needs_approval() {
        AccountStatus::Pending
    } else {
        AccountStatus::Active
    };
    let mailer = &state.mailer;
    let mut tx = begin(&state.mysql).await?;
    let outcome = insert_user(&mut tx, &account, &hash, status, false).await?;
    let (mail, user_id) = match outcome {
        Ok(id) => {
            let token =
                tokens::issue(&mut tx, id, Purpose::VerifyEmail, &account.email, None).await?;
            let link = mailer.link(&format!("/verify-email?token={token}"));
            let mail = templates::verify_email(&account.email, account.username.as_str(), &link);
            (mail, Some(id))
        }
        Err(Taken::Email) => (
            templates::already_registered(
                &account.email,
                &mailer.link("/login"),
                &mailer.link("/forgot-password"),
            ),
            None,
        ),
        Err(Taken::Username) => (
            templates::username_taken(
                &account.email,
                account.username.as_str(),
                &mailer.link("/register"),
            ),
            None,
        ),
    };
    mail::enqueue(&mut tx, &mail).await?;
    commit(tx).await?;
    mailer.nudge();
    let detail = match user_id {
        Some(_) => format!("role {}", account.role),
        None => "refused: username or email taken".into(),
    };
    audit::record(
        &state.mysql,
        AuditEvent::Registered,
        AuditRecord {
            user_id,
            username: Some(account.username.as_str()),
            ip: Some(&info.ip),
            detail: Some(detail),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// `server user create` and the demo seed: an active, verified user of any role. `via`
/// says which, for the audit log.
pub async fn create_active_user(
    pool: &MySqlPool,
    account: &NewAccount,
    via: &str,
) -> Result<u64, AppError> {
    strong_enough(
        account.password.expose(),
        &[account.username.as_str(), account.email.as_str()],
        "password",
    )
    .await?;
    let hash = password::hash(account.password.expose().to_string()).await?;
    let mut conn = pool.acquire().await.context("create user")?;
    let id = match insert_user(&mut conn, account, &hash, AccountStatus::Active, true).await? {
        Ok(id) => id,
        Err(Taken::Email) => {
            return Err(AppError::invalid(
                "email",
                "An account with this email already exists",
            ));
        }
        Err(Taken::Username) => {
            return Err(AppError::invalid("username", "This username is taken"));
        }
    };
    audit::record(
        pool,
        AuditEvent::UserCreated,
        AuditRecord {
            user_id: Some(id),
            detail: Some(format!("role {} ({via})", account.role)),
            ..Default::default()
        },
    )
    .await;
    Ok(id)
}
