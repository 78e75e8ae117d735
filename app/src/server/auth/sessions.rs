//! Logins as rows of `user_sessions`, tied to tower-sessions records, and the check
//! that a request's session is still one.
//!
//! A request is authenticated when its tower-session carries an `AuthState` whose key
//! still has a row in `user_sessions`. The row enforces the idle and absolute timeouts
//! and makes revocation immediate; the user's current role and status are read from
//! `users` on every request, so a role change or a disabled account takes effect at once.

use super::request::RequestInfo;
use crate::model::{
    AccountStatus, AppError, Database, Role, SecondFactor, SessionSummary, SessionUser,
};
use crate::server::AppState;
use crate::server::db::Context;
use chrono::{NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;
use tower_sessions::Session;

pub const AUTH_KEY: &str = "auth";

/// What the session record holds about its login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthState {
    pub key: String,
    pub user_id: u64,
    pub role: Role,
    pub status: AccountStatus,
}

#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: SessionUser,
    pub session_key: String,
}

pub fn session_error(e: tower_sessions::session::Error) -> AppError {
    tracing::warn!(error = %e, "session store error");
    AppError::Unavailable(Database::MySql)
}

/// Whether a login has run past its absolute or its idle timeout.
pub fn expired(
    settings: &crate::server::AuthSettings,
    created_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
    now: NaiveDateTime,
) -> bool {
    let limit =
        |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    now - created_at > limit(settings.absolute_timeout)
        || now - last_seen_at > limit(settings.idle_timeout)
}

/// Whether a request is the user's doing, and so keeps their session from idling out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    User,
    /// The page's own traffic (the live stream reconnecting): an open tab alone must
    /// not keep a login alive past its idle timeout.
    Background,
}

impl Activity {
    /// A server function's `background` argument: set by the page on the calls it
    /// makes by itself.
    pub fn of(background: Option<bool>) -> Self {
        if background == Some(true) {
            Activity::Background
        } else {
            Activity::User
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn authenticate(
    state: &AppState,
    session: &Session,
    activity: Activity,
) -> Result<Option<CurrentUser>, AppError> {
    let Some(auth) = session
        .get::<AuthState>(AUTH_KEY)
        .await
        .map_err(session_error)?
    else {
        return Ok(None);
    };
    #[derive(sqlx::FromRow)]
    struct Row {
        id: u64,
        username: String,
        email: String,
        role: Role,
        status: AccountStatus,
        email_verified: bool,
        has_factor: bool,
        passed_second_step: bool,
        created_at: NaiveDateTime,
        last_seen_at: NaiveDateTime,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.id, u.username, u.email, u.role, u.status, u.email_verified_at IS NOT NULL AS email_verified, \
         f.confirmed_at IS NOT NULL AS has_factor, s.second_factor_at IS NOT NULL AS passed_second_step, \
         s.created_at, s.last_seen_at FROM user_sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN second_factors f ON f.user_id = u.id WHERE s.id = ?",
    )
    .bind(&auth.key)
    .fetch_optional(&state.mysql)
    .await
    .context("load session")?;

    let Some(Row {
        id,
        username,
        email,
        role,
        status,
        email_verified,
        has_factor,
        passed_second_step,
        created_at,
        last_seen_at,
    }) = row
    else {
        // Revoked elsewhere (log out everywhere, disabled account, password change).
        session.flush().await.map_err(session_error)?;
        return Ok(None);
    };
    let now = Utc::now().naive_utc();
    let settings = &state.auth;
    if expired(settings, created_at, last_seen_at, now) || !status.may_sign_in() {
        delete_key(&state.mysql, &auth.key).await?;
        session.flush().await.map_err(session_error)?;
        return Ok(None);
    }
    if role != auth.role || status != auth.status {
        // Privileges changed: a new session id, so a copy of the old cookie taken
        // before the change does not carry the new rights.
        session.cycle_id().await.map_err(session_error)?;
        session
            .insert(
                AUTH_KEY,
                AuthState {
                    role,
                    status,
                    ..auth.clone()
                },
            )
            .await
            .map_err(session_error)?;
    }
    // Writing on every request would cost a row update per click; slack of a tenth of
    // the idle timeout (at most 5 s) is harmless.
    let slack = chrono::Duration::from_std(settings.idle_timeout / 10)
        .unwrap_or_default()
        .min(chrono::Duration::seconds(5));
    if activity == Activity::User && now - last_seen_at > slack {
        sqlx::query("UPDATE user_sessions SET last_seen_at = ? WHERE id = ?")
            .bind(now)
            .bind(&auth.key)
            .execute(&state.mysql)
            .await
            .context("touch session")?;
    }
    Ok(Some(CurrentUser {
        user: SessionUser {
            id,
            username,
            email,
            role,
            status,
            email_verified,
            second_factor: match (has_factor, passed_second_step) {
                (true, true) => SecondFactor::Passed,
                (true, false) => SecondFactor::Pending,
                (false, _) if role.needs_second_factor() => SecondFactor::Missing,
                (false, _) => SecondFactor::Off,
            },
        },
        session_key: auth.key,
    }))
}

fn random_key() -> String {
    super::tokens::random_hex(32)[..43].to_string()
}

/// What a new login has proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proved {
    /// The password: an account with a second factor still owes its second step.
    Password,
    /// A passkey: something the user has, unlocked by something they know or are
    /// (the authenticator's user verification), so both factors at once.
    BothFactors,
}

/// Starts a login on this request's session: a fresh session id (no fixation), the
/// absolute expiry on the cookie, and the `user_sessions` row that makes it valid.
#[tracing::instrument(skip_all, fields(user_id = user.id))]
pub async fn start(
    state: &AppState,
    info: &RequestInfo,
    user: &SessionUser,
    proved: Proved,
) -> Result<(), AppError> {
    let key = random_key();
    let now = Utc::now().naive_utc();
    let second_factor_at = (proved == Proved::BothFactors).then_some(now);
    sqlx::query("INSERT INTO user_sessions (id, user_id, created_at, last_seen_at, second_factor_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(&key)
        .bind(user.id)
        .bind(now)
        .bind(now)
        .bind(second_factor_at)
        .bind(&info.ip)
        .bind(&info.user_agent)
        .execute(&state.mysql)
        .await
        .context("create session")?;
    if let Some(old) = info
        .session
        .get::<AuthState>(AUTH_KEY)
        .await
        .map_err(session_error)?
    {
        delete_key(&state.mysql, &old.key).await?;
    }
    info.session.cycle_id().await.map_err(session_error)?;
    // A session cookie (no Expires or Max-Age): closing the browser ends it.
    // `user_sessions` enforces the idle and absolute timeouts on the server.
    info.session
        .set_expiry(Some(tower_sessions::Expiry::OnSessionEnd));
    info.session
        .insert(
            AUTH_KEY,
            AuthState {
                key,
                user_id: user.id,
                role: user.role,
                status: user.status,
            },
        )
        .await
        .map_err(session_error)?;
    Ok(())
}

/// Records that the login `key` passed its second step.
pub async fn pass_second_step(conn: &mut sqlx::MySqlConnection, key: &str) -> Result<(), AppError> {
    sqlx::query("UPDATE user_sessions SET second_factor_at = UTC_TIMESTAMP(6) WHERE id = ?")
        .bind(key)
        .execute(&mut *conn)
        .await
        .context("record second step")?;
    Ok(())
}

/// Ends this request's login: the row and the session record, and the cookie.
pub async fn end(state: &AppState, info: &RequestInfo, key: &str) -> Result<(), AppError> {
    delete_key(&state.mysql, key).await?;
    info.session.flush().await.map_err(session_error)
}

pub async fn delete_key(pool: &MySqlPool, key: &str) -> Result<(), AppError> {
    sqlx::query("DELETE FROM user_sessions WHERE id = ?")
        .bind(key)
        .execute(pool)
        .await
        .context("delete session")?;
    Ok(())
}

/// Ends every login of a user, optionally sparing one (the caller's own).
pub async fn delete_all(
    pool: &MySqlPool,
    user_id: u64,
    except_key: Option<&str>,
) -> Result<u64, AppError> {
    let done =
        sqlx::query("DELETE FROM user_sessions WHERE user_id = ? AND (? IS NULL OR id <> ?)")
            .bind(user_id)
            .bind(except_key)
            .bind(except_key)
            .execute(pool)
            .await
            .context("delete sessions")?;
    Ok(done.rows_affected())
}

/// The handle shown to the user: revealing the key itself would let a script on the
/// page (or a shoulder-surfer) hijack the other sessions.
fn handle(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..12])
}

pub async fn list(
    pool: &MySqlPool,
    user_id: u64,
    current_key: &str,
) -> Result<Vec<SessionSummary>, AppError> {
    type Row = (
        String,
        NaiveDateTime,
        NaiveDateTime,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, created_at, last_seen_at, ip, user_agent FROM user_sessions WHERE user_id = ? ORDER BY last_seen_at DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
    .context("list sessions")?;
    Ok(rows
        .into_iter()
        .map(
            |(key, created_at, last_seen_at, ip, user_agent)| SessionSummary {
                handle: handle(&key),
                created_at: created_at.and_utc(),
                last_seen_at: last_seen_at.and_utc(),
                ip,
                user_agent,
                current: key == current_key,
            },
        )
        .collect())
}

/// Revokes one of the user's own sessions by its handle, and audits it.
pub async fn revoke(
    state: &AppState,
    info: &RequestInfo,
    current: &super::CurrentUser,
    target: &str,
) -> Result<(), AppError> {
    let keys: Vec<String> = sqlx::query_scalar("SELECT id FROM user_sessions WHERE user_id = ?")
        .bind(current.user.id)
        .fetch_all(&state.mysql)
        .await
        .context("list session keys")?;
    let key = keys
        .into_iter()
        .find(|k| handle(k) == target)
        .ok_or(AppError::NotFound)?;
    delete_key(&state.mysql, &key).await?;
    super::audit::record(
        &state.mysql,
        super::audit::AuditEvent::SessionRevoked,
        super::audit::AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            detail: Some(format!("session {target}")),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// Deletes logins past the absolute timeout (their tower-sessions records expire on
/// their own); run hourly by every instance, harmless when they overlap.
pub async fn prune(
    pool: &MySqlPool,
    absolute_timeout: std::time::Duration,
) -> Result<(), AppError> {
    let cutoff = Utc::now().naive_utc()
        - chrono::Duration::from_std(absolute_timeout).unwrap_or(chrono::Duration::hours(8));
    sqlx::query("DELETE FROM user_sessions WHERE created_at < ?")
        .bind(cutoff)
        .execute(pool)
        .await
        .context("prune sessions")?;
    Ok(())
}
