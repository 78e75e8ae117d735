//! Registration, login, password changes and resets.

use super::audit::{self, AuditEvent, AuditRecord};
use super::guard::{CurrentUser, RequestInfo};
use super::{password, sessions, throttle};
use crate::model::{
    AccountStatus, AppError, FieldError, NewAccount, NewPassword, Role, SessionUser, Username,
};
use crate::server::AppState;
use crate::server::db::{is_unique_violation, mysql_error};
use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;

type UserRow = (u64, String, String, String, Role, AccountStatus);

fn to_session_user((id, username, email, _hash, role, status): UserRow) -> SessionUser {
    SessionUser {
        id,
        username,
        email,
        role,
        status,
    }
}

async fn find_by_key(pool: &MySqlPool, username_key: &str) -> Result<Option<UserRow>, AppError> {
    sqlx::query_as(
        "SELECT id, username, email, password_hash, role, status FROM users WHERE username_key = ?",
    )
    .bind(username_key)
    .fetch_optional(pool)
    .await
    .map_err(|e| mysql_error("find user", e))
}

/// The server's part of the password policy: the shared rules plus the common-password check.
pub fn full_password_check(account: &NewAccount) -> Result<(), AppError> {
    password::check_strength(
        account.password.expose(),
        &[account.username.as_str(), account.email.as_str()],
    )
    .map_err(|m| AppError::invalid("password", m))
}

/// Inserts a user; duplicate usernames or emails become field errors, not database errors.
#[tracing::instrument(skip_all, fields(username = account.username.as_str()))]
pub async fn insert_user(
    pool: &MySqlPool,
    account: &NewAccount,
    status: AccountStatus,
) -> Result<u64, AppError> {
    let hash = password::hash(account.password.expose().to_string()).await?;
    let result = sqlx::query(
        "INSERT INTO users (username, username_key, email, password_hash, role, status, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))",
    )
    .bind(account.username.as_str())
    .bind(account.username.key())
    .bind(account.email.as_str())
    .bind(&hash)
    .bind(account.role.as_str())
    .bind(status.as_str())
    .execute(pool)
    .await;
    match result {
        Ok(done) => Ok(done.last_insert_id()),
        Err(e) if is_unique_violation(&e) => {
            let message = e.to_string();
            Err(if message.contains("uq_users_email") {
                AppError::invalid("email", "An account with this email already exists")
            } else {
                AppError::invalid("username", "This username is taken")
            })
        }
        Err(e) => Err(mysql_error("insert user", e)),
    }
}

/// Self-service registration: customers are active at once, privileged roles wait
/// for a senior manager. Either way the new user is logged in.
pub async fn register(
    state: &AppState,
    info: &RequestInfo,
    account: NewAccount,
) -> Result<SessionUser, AppError> {
    full_password_check(&account)?;
    let status = if account.role.needs_approval() {
        AccountStatus::Pending
    } else {
        AccountStatus::Active
    };
    let id = insert_user(&state.mysql, &account, status).await?;
    let user = SessionUser {
        id,
        username: account.username.as_str().to_string(),
        email: account.email.as_str().to_string(),
        role: account.role,
        status,
    };
    audit::record(
        &state.mysql,
        AuditEvent::Registered,
        AuditRecord {
            user_id: Some(id),
            ip: Some(&info.ip),
            detail: Some(format!("role {}", account.role)),
            ..Default::default()
        },
    )
    .await;
    sessions::start(state, info, &user).await?;
    Ok(user)
}

#[tracing::instrument(skip(state, info, password), fields(ip = %info.ip))]
pub async fn login(
    state: &AppState,
    info: &RequestInfo,
    username: &str,
    password: String,
) -> Result<SessionUser, AppError> {
    let key = Username::parse(username)
        .map(|u| u.key())
        .unwrap_or_else(|_| username.trim().to_lowercase());
    let key: String = key.chars().take(64).collect();
    let policy = &state.auth.throttle;

    if let Some(wait) = throttle::retry_after(&state.mysql, policy, &key, &info.ip).await? {
        audit::record(
            &state.mysql,
            AuditEvent::LoginThrottled,
            AuditRecord {
                username: Some(&key),
                ip: Some(&info.ip),
                detail: Some(format!("retry in {wait} s")),
                ..Default::default()
            },
        )
        .await;
        return Err(AppError::Throttled(wait));
    }

    let row = find_by_key(&state.mysql, &key).await?;
    let too_long = password.chars().count() > crate::model::account::PASSWORD_MAX;
    let stored = row.as_ref().map(|r| r.3.clone());
    let verified = password::verify(stored, password).await? && !too_long;

    let Some(row) = row.filter(|_| verified) else {
        let failures = throttle::record_failure(&state.mysql, policy, &key, &info.ip).await?;
        let user_id = find_by_key(&state.mysql, &key).await?.map(|r| r.0);
        audit::record(
            &state.mysql,
            AuditEvent::LoginFailed,
            AuditRecord {
                user_id,
                username: Some(&key),
                ip: Some(&info.ip),
                ..Default::default()
            },
        )
        .await;
        if failures == policy.max_failures {
            audit::record(
                &state.mysql,
                AuditEvent::Lockout,
                AuditRecord {
                    user_id,
                    username: Some(&key),
                    ip: Some(&info.ip),
                    detail: Some(format!("{failures} failures")),
                    ..Default::default()
                },
            )
            .await;
        }
        return Err(AppError::InvalidCredentials);
    };

    let user = to_session_user(row);
    if user.status == AccountStatus::Disabled {
        return Err(AppError::Conflict(
            "This account is disabled. Please contact a senior manager.".into(),
        ));
    }
    throttle::clear(&state.mysql, &key).await?;
    sessions::start(state, info, &user).await?;
    sqlx::query("UPDATE users SET last_login_at = UTC_TIMESTAMP(6) WHERE id = ?")
        .bind(user.id)
        .execute(&state.mysql)
        .await
        .map_err(|e| mysql_error("record login", e))?;
    audit::record(
        &state.mysql,
        AuditEvent::LoginSucceeded,
        AuditRecord {
            user_id: Some(user.id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(user)
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

/// Ends every session of the user, this one included.
pub async fn logout_everywhere(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
) -> Result<(), AppError> {
    let ended = sessions::delete_all(&state.mysql, current.user.id, None).await?;
    info.session
        .flush()
        .await
        .map_err(super::guard::session_error)?;
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

/// The full policy for a replacement password, as field errors of the password forms.
fn parse_new_password(
    new: &str,
    confirm: &str,
    username: &str,
    email: &str,
) -> Result<NewPassword, AppError> {
    let parsed = NewPassword::parse(new, Some(username), Some(email))
        .map_err(|m| AppError::invalid("new_password", m))?;
    password::check_strength(parsed.expose(), &[username, email])
        .map_err(|m| AppError::invalid("new_password", m))?;
    if new != confirm {
        return Err(AppError::invalid(
            "confirm_password",
            "Passwords do not match",
        ));
    }
    Ok(parsed)
}

/// Needs the current password; ends every other session of the user.
pub async fn change_password(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    new_password: &str,
    confirm: &str,
) -> Result<(), AppError> {
    let new = parse_new_password(
        new_password,
        confirm,
        &current.user.username,
        &current.user.email,
    )?;
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
        .bind(current.user.id)
        .fetch_one(&state.mysql)
        .await
        .map_err(|e| mysql_error("load password", e))?;
    if !password::verify(Some(stored), current_password).await? {
        return Err(AppError::invalid(
            "current_password",
            "Current password is not correct",
        ));
    }
    let hash = password::hash(new.expose().to_string()).await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(current.user.id)
        .execute(&state.mysql)
        .await
        .map_err(|e| mysql_error("update password", e))?;
    let ended =
        sessions::delete_all(&state.mysql, current.user.id, Some(&current.session_key)).await?;
    audit::record(
        &state.mysql,
        AuditEvent::PasswordChanged,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            detail: Some(format!("{ended} other sessions ended")),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Sets a new password through a one-time reset link; ends all the user's sessions.
pub async fn reset_password(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
    new_password: &str,
    confirm: &str,
) -> Result<(), AppError> {
    const INVALID_LINK: &str =
        "This reset link is invalid, expired or already used. Ask a senior manager for a new one.";
    let mut tx = state
        .mysql
        .begin()
        .await
        .map_err(|e| mysql_error("begin reset", e))?;
    // FOR UPDATE: two simultaneous uses of one link cannot both pass the check.
    let found: Option<(u64, String, String)> = sqlx::query_as(
        "SELECT r.user_id, u.username, u.email FROM password_resets r JOIN users u ON u.id = r.user_id \
         WHERE r.token_hash = ? AND r.used_at IS NULL AND r.expires_at > UTC_TIMESTAMP(6) FOR UPDATE",
    )
    .bind(token_hash(token.trim()))
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| mysql_error("find reset", e))?;
    let Some((user_id, username, email)) = found else {
        return Err(AppError::Conflict(INVALID_LINK.into()));
    };
    let new = parse_new_password(new_password, confirm, &username, &email)?;
    let hash = password::hash(new.expose().to_string()).await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| mysql_error("reset password", e))?;
    sqlx::query("UPDATE password_resets SET used_at = UTC_TIMESTAMP(6) WHERE token_hash = ?")
        .bind(token_hash(token.trim()))
        .execute(&mut *tx)
        .await
        .map_err(|e| mysql_error("use reset", e))?;
    sqlx::query("DELETE FROM user_sessions WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| mysql_error("end sessions", e))?;
    tx.commit()
        .await
        .map_err(|e| mysql_error("commit reset", e))?;
    audit::record(
        &state.mysql,
        AuditEvent::ResetUsed,
        AuditRecord {
            user_id: Some(user_id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// `server user create` and the demo seed: an active user of any role. `via` says which,
/// for the audit log.
pub async fn create_active_user(
    pool: &MySqlPool,
    account: &NewAccount,
    via: &str,
) -> Result<u64, AppError> {
    full_password_check(account)?;
    let id = insert_user(pool, account, AccountStatus::Active).await?;
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

/// The demo accounts `scripts/run` provides, one per role (documented in the README).
pub const DEMO_ACCOUNTS: [(&str, &str, &str, Role); 3] = [
    (
        "demo.customer",
        "demo.customer@example.com",
        "Paperclip-Harbor-42",
        Role::Customer,
    ),
    (
        "demo.worker",
        "demo.worker@example.com",
        "Stapler-Lantern-77",
        Role::TechnicalWorker,
    ),
    (
        "demo.manager",
        "demo.manager@example.com",
        "Ledger-Orchard-19",
        Role::SeniorManagement,
    ),
];

/// Creates the demo accounts that do not exist yet; returns how many were created.
pub async fn seed_demo_accounts(pool: &MySqlPool) -> Result<usize, AppError> {
    let mut created = 0;
    for (username, email, password, role) in DEMO_ACCOUNTS {
        let input = crate::model::RegistrationInput {
            username: username.into(),
            email: email.into(),
            password: password.into(),
            confirm_password: password.into(),
            role: role.as_str().into(),
        };
        let account = input.parse().map_err(AppError::Invalid)?;
        if find_by_key(pool, &account.username.key()).await?.is_some() {
            continue;
        }
        match create_active_user(pool, &account, "demo seed").await {
            Ok(_) => created += 1,
            // Another instance seeded it between our check and insert.
            Err(AppError::Invalid(e)) if e.iter().any(|f: &FieldError| f.field == "username") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

pub fn now_naive() -> chrono::NaiveDateTime {
    Utc::now().naive_utc()
}
