//! Logging in and out.

use super::*;
use crate::model::{AccountStatus, AppError, Email, SecondFactor, SessionUser, Username};
use crate::server::AppState;
use crate::server::auth::audit::{self, AuditEvent, AuditRecord};
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::CurrentUser;
use crate::server::auth::throttle::{self, Source};
use crate::server::auth::tokens::{self, Purpose};
use crate::server::auth::{devices, password, sessions};
use crate::server::db::{Context, truncate};
use crate::server::limits::{self, Counter, Limit};
use crate::server::mail::{self, templates};
use std::time::Duration;

/// What a login answers with, besides the user: the cookie that trusts this browser
/// for the account from now on.
pub struct LoggedIn {
    pub user: SessionUser,
    pub device_cookie: String,
}

#[tracing::instrument(skip(state, info, password), fields(ip = %info.ip))]
pub async fn login(
    state: &AppState,
    info: &RequestInfo,
    username: &str,
    password: String,
) -> Result<LoggedIn, AppError> {
    // The attacker knows the length they sent: refusing at once reveals nothing, and
    // no work is spent hashing a megabyte.
    if password.chars().count() > crate::model::account::PASSWORD_MAX {
        return Err(AppError::InvalidCredentials);
    }
    limits::check(
        &state.mysql,
        Counter::LoginRequest,
        &info.client,
        Limit::per_window(
            state.auth.throttle.requests_per_minute,
            Duration::from_secs(60),
        ),
    )
    .await?;
    let key = Username::parse(username)
        .map(|u| u.key())
        .unwrap_or_else(|_| username.trim().to_lowercase());
    let key = truncate(&key, 64);
    let policy = &state.auth.throttle;
    // The hashing slot first: logins waiting in line hold no throttle reservation, so a
    // burst of logins from one office address does not fill the address's count with
    // attempts that are merely queued (one reservation per slot is in flight at most).
    let slot = limits::COSTLY.slot().await?;
    let device = devices::trusted_for(&state.mysql, info.device.as_deref(), &key).await?;
    let source = match &device {
        Some(device) => Source::Trusted { device },
        None => Source::Untrusted {
            account: &key,
            client: &info.client,
        },
    };
    let reservations = match throttle::reserve(&state.mysql, policy, source).await? {
        Ok(reservations) => reservations,
        Err(throttled) => {
            // One audit row per throttled key and throttle period, however many tries.
            if throttled.refused.first {
                audit::record(
                    &state.mysql,
                    AuditEvent::LoginThrottled,
                    AuditRecord {
                        username: Some(&key),
                        ip: Some(&info.ip),
                        detail: Some(throttled.key),
                        ..Default::default()
                    },
                )
                .await;
            }
            return Err(AppError::Throttled(throttled.refused.retry_after));
        }
    };

    let row = find_by(&state.mysql, "username_key", &key).await?;
    let stored = row.as_ref().map(|r| r.password_hash.clone());
    let verified = password::verify_in(slot, stored, password).await?;
    let Some(row) = row.filter(|_| verified) else {
        let user_id = find_by(&state.mysql, "username_key", &key)
            .await?
            .map(|r| r.id);
        let record = || AuditRecord {
            user_id,
            username: Some(&key),
            ip: Some(&info.ip),
            ..Default::default()
        };
        audit::record(&state.mysql, AuditEvent::LoginFailed, record()).await;
        if reservations
            .first()
            .is_some_and(|r| r.hits == policy.max_failures)
        {
            let detail = Some(format!("{} failures", policy.max_failures));
            audit::record(
                &state.mysql,
                AuditEvent::Lockout,
                AuditRecord { detail, ..record() },
            )
            .await;
        }
        return Err(AppError::InvalidCredentials);
    };
    let user = SessionUser::from(row);
    refuse_disabled(state, info, &user, &key).await?;
    throttle::release(&state.mysql, &reservations).await?;
    complete_login(state, info, user, sessions::Proved::Password, None).await
}

/// Refuses a login to a disabled account whose credentials were right: answered like
/// wrong ones, so the answer never confirms a guessed password (or a found passkey);
/// the owner learns why from the address on file. `key` is the username as typed.
pub(in crate::server::auth) async fn refuse_disabled(
    state: &AppState,
    info: &RequestInfo,
    user: &SessionUser,
    key: &str,
) -> Result<(), AppError> {
    if user.status != AccountStatus::Disabled {
        return Ok(());
    }
    disabled_login_notice(state, user).await?;
    audit::record(
        &state.mysql,
        AuditEvent::LoginFailed,
        AuditRecord {
            user_id: Some(user.id),
            username: Some(key),
            ip: Some(&info.ip),
            detail: Some("account disabled".into()),
            ..Default::default()
        },
    )
    .await;
    Err(AppError::InvalidCredentials)
}

/// Everything a login does once its credentials are accepted: the session, the
/// browser trusted for the account from now on, the last-login time and the audit
/// row (`how`, when it was not the password).
pub(in crate::server::auth) async fn complete_login(
    state: &AppState,
    info: &RequestInfo,
    user: SessionUser,
    proved: sessions::Proved,
    how: Option<&str>,
) -> Result<LoggedIn, AppError> {
    sessions::start(state, info, &user, proved).await?;
    let device = devices::remember(&state.mysql, user.id, info.device.as_deref()).await?;
    sqlx::query("UPDATE users SET last_login_at = UTC_TIMESTAMP(6) WHERE id = ?")
        .bind(user.id)
        .execute(&state.mysql)
        .await
        .context("record login")?;
    audit::record(
        &state.mysql,
        AuditEvent::LoginSucceeded,
        AuditRecord {
            user_id: Some(user.id),
            ip: Some(&info.ip),
            detail: how.map(str::to_string),
            ..Default::default()
        },
    )
    .await;
    let user = match (proved, user.second_factor) {
        (sessions::Proved::BothFactors, SecondFactor::Pending) => SessionUser {
            second_factor: SecondFactor::Passed,
            ..user
        },
        _ => user,
    };
    Ok(LoggedIn {
        user,
        device_cookie: devices::set_cookie(&device, state.auth.cookie_secure),
    })
}

/// Tells the owner of a disabled account, whose right password was just given, why
/// the login was refused: the page says no more than for a wrong password.
async fn disabled_login_notice(state: &AppState, user: &SessionUser) -> Result<(), AppError> {
    let Ok(to) = Email::parse(&user.email) else {
        return Ok(());
    };
    let mut conn = state
        .mysql
        .acquire()
        .await
        .context("disabled login notice")?;
    mail::enqueue(
        &mut conn,
        &templates::login_to_disabled_account(&to, &user.username),
    )
    .await?;
    state.mailer.nudge();
    Ok(())
}

pub async fn logout(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
) -> Result<(), AppError> {
    sessions::end(state, info, &current.session_key).await?;
    audit::record(
        &state.mysql,
        AuditEvent::Logout,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// Ends every session of the user, this one included, and voids their mailed links: a
/// stolen session's pending address change or reset link must not outlive the owner's
/// recovery.
pub async fn logout_everywhere(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
) -> Result<(), AppError> {
    let mut conn = state.mysql.acquire().await.context("void links")?;
    for purpose in [Purpose::VerifyEmail, Purpose::ResetPassword] {
        tokens::invalidate(&mut conn, current.user.id, purpose).await?;
    }
    drop(conn);
    let ended = sessions::delete_all(&state.mysql, current.user.id, None).await?;
    info.session
        .flush()
        .await
        .map_err(super::sessions::session_error)?;
    let detail = Some(format!("everywhere: {ended} sessions ended"));
    let record = AuditRecord {
        user_id: Some(current.user.id),
        ip: Some(&info.ip),
        detail,
        ..Default::default()
    };
    audit::record(&state.mysql, AuditEvent::Logout, record).await;
    Ok(())
}
