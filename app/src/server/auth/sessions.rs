//! Logins as rows of `user_sessions`, tied to tower-sessions records.

use super::guard::{AUTH_KEY, AuthState, RequestInfo, session_error};
use crate::model::{AppError, SessionSummary, SessionUser};
use crate::server::AppState;
use crate::server::db::mysql_error;
use chrono::{NaiveDateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;

fn random_key() -> String {
    super::tokens::random_hex(32)[..43].to_string()
}

/// Starts a login on this request's session: a fresh session id (no fixation), the
/// absolute expiry on the cookie, and the `user_sessions` row that makes it valid.
#[tracing::instrument(skip_all, fields(user_id = user.id))]
pub async fn start(
    state: &AppState,
    info: &RequestInfo,
    user: &SessionUser,
) -> Result<(), AppError> {
    let key = random_key();
    let now = Utc::now().naive_utc();
    sqlx::query("INSERT INTO user_sessions (id, user_id, created_at, last_seen_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&key)
        .bind(user.id)
        .bind(now)
        .bind(now)
        .bind(&info.ip)
        .bind(&info.user_agent)
        .execute(&state.mysql)
        .await
        .map_err(|e| mysql_error("create session", e))?;
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
        .map_err(|e| mysql_error("record second step", e))?;
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
        .map_err(|e| mysql_error("delete session", e))?;
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
            .map_err(|e| mysql_error("delete sessions", e))?;
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
    .map_err(|e| mysql_error("list sessions", e))?;
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
        .map_err(|e| mysql_error("list session keys", e))?;
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
