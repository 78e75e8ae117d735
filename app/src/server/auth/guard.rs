//! The one typed authorization helper every server function calls.
//!
//! A request is authenticated when its tower-session carries an `AuthState` whose key
//! still has a row in `user_sessions`. The row enforces the idle and absolute timeouts
//! and makes revocation immediate; the user's current role and status are read from
//! `users` on every request, so a role change or a disabled account takes effect at once.

use crate::model::{AccountStatus, AppError, Role, SessionUser, Store};
use crate::server::AppState;
use crate::server::db::mysql_error;
use chrono::{NaiveDateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
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

/// Who may call a server function.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Any logged-in user, including pending ones (profile, sessions, logout).
    AnyUser,
    /// Active users with one of these roles.
    Roles(&'static [Role]),
}

impl Access {
    pub const MANAGEMENT: Access = Access::Roles(&[Role::SeniorManagement]);
    pub const STAFF: Access = Access::Roles(&[Role::TechnicalWorker, Role::SeniorManagement]);
    pub const CUSTOMER: Access = Access::Roles(&[Role::Customer]);
}

#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: SessionUser,
    pub session_key: String,
}

/// The parts of the HTTP request the auth services need.
pub struct RequestInfo {
    pub session: Session,
    pub ip: String,
    pub user_agent: Option<String>,
    /// The browser's device cookie (`auth::devices`), if it sent one.
    pub device: Option<String>,
}

/// Read from the request synchronously (see `crate::server::respond`).
pub fn request_info(secure_cookies: bool) -> Result<RequestInfo, AppError> {
    let parts = use_context::<http::request::Parts>().ok_or_else(|| {
        tracing::error!("request parts missing from the context");
        AppError::Internal
    })?;
    let session = parts.extensions.get::<Session>().cloned().ok_or_else(|| {
        tracing::error!("session layer missing");
        AppError::Internal
    })?;
    let ip = parts
        .extensions
        .get::<crate::server::client_ip::ClientIp>()
        .map(|client| client.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(255).collect());
    Ok(RequestInfo {
        session,
        ip,
        user_agent,
        device: super::devices::read(&parts.headers, secure_cookies),
    })
}

pub fn session_error(e: tower_sessions::session::Error) -> AppError {
    tracing::warn!(error = %e, "session store error");
    AppError::Unavailable(Store::MySql)
}

/// Checks the session and the role: 401 without a valid login, 403 with the wrong
/// role or a pending account.
pub async fn require(
    state: &AppState,
    session: &Session,
    access: Access,
) -> Result<CurrentUser, AppError> {
    let current = authenticate(state, session)
        .await?
        .ok_or(AppError::Unauthorized)?;
    authorize(&current.user, access)?;
    Ok(current)
}

pub fn authorize(user: &SessionUser, access: Access) -> Result<(), AppError> {
    match access {
        Access::AnyUser => Ok(()),
        Access::Roles(roles)
            if user.status == AccountStatus::Active && roles.contains(&user.role) =>
        {
            Ok(())
        }
        Access::Roles(_) => Err(AppError::Forbidden),
    }
}

#[tracing::instrument(skip_all)]
pub async fn authenticate(
    state: &AppState,
    session: &Session,
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
        created_at: NaiveDateTime,
        last_seen_at: NaiveDateTime,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.id, u.username, u.email, u.role, u.status, u.email_verified_at IS NOT NULL AS email_verified, \
         s.created_at, s.last_seen_at FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?",
    )
    .bind(&auth.key)
    .fetch_optional(&state.mysql)
    .await
    .map_err(|e| mysql_error("load session", e))?;

    let Some(Row {
        id,
        username,
        email,
        role,
        status,
        email_verified,
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
    let expired = now - created_at
        > chrono::Duration::from_std(settings.absolute_timeout).unwrap_or(chrono::Duration::MAX)
        || now - last_seen_at
            > chrono::Duration::from_std(settings.idle_timeout).unwrap_or(chrono::Duration::MAX);
    if expired || status == AccountStatus::Disabled {
        super::sessions::delete_key(&state.mysql, &auth.key).await?;
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
    if now - last_seen_at > slack {
        sqlx::query("UPDATE user_sessions SET last_seen_at = ? WHERE id = ?")
            .bind(now)
            .bind(&auth.key)
            .execute(&state.mysql)
            .await
            .map_err(|e| mysql_error("touch session", e))?;
    }
    Ok(Some(CurrentUser {
        user: SessionUser {
            id,
            username,
            email,
            role,
            status,
            email_verified,
        },
        session_key: auth.key,
    }))
}
