//! The one typed authorization helper every server function calls.
//!
//! A request is authenticated when its tower-session carries an `AuthState` whose key
//! still has a row in `user_sessions`. The row enforces the idle and absolute timeouts
//! and makes revocation immediate; the user's current role and status are read from
//! `users` on every request, so a role change or a disabled account takes effect at once.

use crate::model::{AccountStatus, AppError, Role, SecondFactor, SessionUser, Store};
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
    /// Any login, even one still waiting for its second step (logout, the second step).
    Session,
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
    /// The path asked for, for the audit log.
    pub path: String,
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
        path: parts.uri.path().chars().take(128).collect(),
    })
}

pub fn session_error(e: tower_sessions::session::Error) -> AppError {
    tracing::warn!(error = %e, "session store error");
    AppError::Unavailable(Store::MySql)
}

/// Checks the session and the role: 401 without a valid login (or before its second
/// step), 403 with the wrong role, a pending account or a missing second factor.
/// A refusal for the role is audited, once per user and 15 minutes.
pub async fn require(
    state: &AppState,
    info: &RequestInfo,
    access: Access,
) -> Result<CurrentUser, AppError> {
    let current = authenticate(state, &info.session)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if let Err(e) = authorize(&current.user, access) {
        if e == AppError::Forbidden {
            audit_refusal(state, info, &current).await;
        }
        return Err(e);
    }
    Ok(current)
}

async fn audit_refusal(state: &AppState, info: &RequestInfo, current: &CurrentUser) {
    use crate::server::limits::{self, Counter, Limit};
    let window = std::time::Duration::from_secs(15 * 60);
    let first = limits::hit(
        &state.mysql,
        Counter::Forbidden,
        &current.user.id.to_string(),
        Limit::per_window(1, window),
    )
    .await;
    if matches!(first, Ok(Ok(_))) {
        super::audit::record(
            &state.mysql,
            super::audit::AuditEvent::Forbidden,
            super::audit::AuditRecord {
                user_id: Some(current.user.id),
                ip: Some(&info.ip),
                detail: Some(format!(
                    "{} (as {}; further refusals within 15 minutes not logged)",
                    info.path, current.user.role
                )),
                ..Default::default()
            },
        )
        .await;
    }
}

/// A login waiting for its second step reaches only `Access::Session`; a staff
/// account without a second factor reaches its own pages, not its role's.
pub fn authorize(user: &SessionUser, access: Access) -> Result<(), AppError> {
    match access {
        Access::Session => Ok(()),
        _ if user.second_factor == SecondFactor::Pending => Err(AppError::SecondStepRequired),
        Access::AnyUser => Ok(()),
        Access::Roles(roles)
            if user.status == AccountStatus::Active && roles.contains(&user.role) =>
        {
            if user.second_factor == SecondFactor::Missing {
                Err(AppError::SecondFactorRequired)
            } else {
                Ok(())
            }
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
    .map_err(|e| mysql_error("load session", e))?;

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
