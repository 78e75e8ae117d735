//! Passwords: changing one, and the forgotten-password links.

use super::*;
use crate::model::{AccountStatus, AppError, Email, NewPassword, Role};
use crate::server::AppState;
use crate::server::auth::audit::{self, AuditEvent, AuditRecord};
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::CurrentUser;
use crate::server::auth::tokens::{self, Purpose};
use crate::server::auth::{password, sessions};
use crate::server::db::Context;
use crate::server::limits::{self, Counter, Limit};
use crate::server::mail::{self, Mail, templates};
use sqlx::MySqlConnection;

/// The full policy for a replacement password, as field errors of the password forms.
async fn parse_new_password(
    new: &str,
    confirm: &str,
    username: &str,
    email: &str,
) -> Result<NewPassword, AppError> {
    let parsed = NewPassword::parse(new, Some(username), Some(email))
        .map_err(|m| AppError::invalid("new_password", m))?;
    if new != confirm {
        return Err(AppError::invalid(
            "confirm_password",
            "Passwords do not match",
        ));
    }
    strong_enough(parsed.expose(), &[username, email], "new_password").await?;
    Ok(parsed)
}

/// After a password changed: reset links and any pending address change are void (a
/// stolen session may have asked for the change), and the user is told by mail.
async fn password_replaced(
    state: &AppState,
    conn: &mut MySqlConnection,
    user_id: u64,
    username: &str,
    email: &str,
) -> Result<(), AppError> {
    tokens::invalidate(conn, user_id, Purpose::ResetPassword).await?;
    tokens::invalidate(conn, user_id, Purpose::VerifyEmail).await?;
    if let Ok(to) = Email::parse(email) {
        let notice =
            templates::password_changed(&to, username, &state.mailer.link("/forgot-password"));
        mail::enqueue(conn, &notice).await?;
    }
    Ok(())
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
    )
    .await?;
    check_current_password(state, info, current, current_password).await?;
    let hash = password::hash(new.expose().to_string()).await?;
    let mut tx = begin(&state.mysql).await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(current.user.id)
        .execute(&mut *tx)
        .await
        .context("update password")?;
    password_replaced(
        state,
        &mut tx,
        current.user.id,
        &current.user.username,
        &current.user.email,
    )
    .await?;
    commit(tx).await?;
    state.mailer.nudge();
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

/// "Forgot password?": a reset link to the address, if an account has it. The answer
/// is the same either way, and requests are limited per client and per address.
pub async fn forgot_password(
    state: &AppState,
    info: &RequestInfo,
    email: &str,
) -> Result<(), AppError> {
    let email = Email::parse(email).map_err(|m| AppError::invalid("email", m))?;
    limits::check(
        &state.mysql,
        Counter::ResetRequest,
        &info.client,
        Limit::per_window(10, HOUR),
    )
    .await?;
    limits::check(
        &state.mysql,
        Counter::ResetAddress,
        email.as_str(),
        Limit::per_window(3, HOUR),
    )
    .await?;
    // The lookup and the mail happen after the answer, so its timing is the same
    // whether or not an account has the address.
    let state = state.clone();
    let ip = info.ip.clone();
    tokio::spawn(async move {
        let sent = async {
            match find_by(&state.mysql, "email", email.as_str()).await? {
                Some(user) if user.status != AccountStatus::Disabled => {
                    send_reset_link(&state, &ip, user.id, &user.username, &email, None).await
                }
                _ => Ok(()),
            }
        };
        if let Err(e) = sent.await {
            tracing::error!(error = %e, "reset link not sent");
        }
    });
    Ok(())
}

/// Issues a reset link (voiding older ones) and mails it to the user's address.
async fn send_reset_link(
    state: &AppState,
    ip: &str,
    user_id: u64,
    username: &str,
    email: &Email,
    by: Option<u64>,
) -> Result<(), AppError> {
    let mut tx = begin(&state.mysql).await?;
    let token = tokens::issue(&mut tx, user_id, Purpose::ResetPassword, email, by).await?;
    let link = state.mailer.link(&format!("/reset-password?token={token}"));
    let mail: Mail = templates::password_reset(email, username, &link, by.is_some());
    mail::enqueue(&mut tx, &mail).await?;
    commit(tx).await?;
    state.mailer.nudge();
    audit::record(
        &state.mysql,
        AuditEvent::ResetIssued,
        AuditRecord {
            user_id: Some(user_id),
            actor_id: by,
            ip: Some(ip),
            detail: Some(
                if by.is_some() {
                    "by a manager"
                } else {
                    "requested by mail"
                }
                .into(),
            ),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// A senior manager sends a reset link to a user's address (never to themselves, and
/// not for another senior manager: a stolen manager session must not take over accounts).
pub async fn send_reset_link_for(
    state: &AppState,
    info: &RequestInfo,
    actor: &CurrentUser,
    user_id: u64,
) -> Result<(), AppError> {
    if actor.user.id == user_id {
        return Err(AppError::Conflict(
            "Change your own password on your profile page.".into(),
        ));
    }
    let user = find_by(&state.mysql, "id", &user_id.to_string())
        .await?
        .ok_or(AppError::NotFound)?;
    if user.role == Role::SeniorManagement {
        return Err(AppError::Conflict(
            "Senior managers reset their own passwords from the login page.".into(),
        ));
    }
    let email = Email::parse(&user.email).map_err(|_| AppError::Internal)?;
    send_reset_link(
        state,
        &info.ip,
        user.id,
        &user.username,
        &email,
        Some(actor.user.id),
    )
    .await
}

/// Sets a new password through a one-time reset link; ends all the user's sessions.
pub async fn reset_password(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
    new_password: &str,
    confirm: &str,
) -> Result<(), AppError> {
    const INVALID_LINK: &str = "This reset link is invalid, expired or already used. Ask for a new one from the login page.";
    link_attempt(state, info).await?;
    let mut tx = begin(&state.mysql).await?;
    let Some(found) = tokens::redeem(&mut tx, token, Purpose::ResetPassword).await? else {
        rollback(tx).await;
        audit::record(
            &state.mysql,
            AuditEvent::ResetFailed,
            AuditRecord {
                ip: Some(&info.ip),
                ..Default::default()
            },
        )
        .await;
        return Err(AppError::Conflict(INVALID_LINK.into()));
    };
    // Sent to an address the account no longer has, or to an account since disabled:
    // the link is spent, and void.
    if found.email != found.current_email || found.status != AccountStatus::Active {
        commit(tx).await?;
        return Err(AppError::Conflict(INVALID_LINK.into()));
    }
    let new = match parse_new_password(new_password, confirm, &found.username, &found.email).await {
        Ok(new) => new,
        // The link stays usable for a better password.
        Err(e) => {
            rollback(tx).await;
            return Err(e);
        }
    };
    let hash = password::hash(new.expose().to_string()).await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(found.user_id)
        .execute(&mut *tx)
        .await
        .context("reset password")?;
    password_replaced(state, &mut tx, found.user_id, &found.username, &found.email).await?;
    sqlx::query("DELETE FROM user_sessions WHERE user_id = ?")
        .bind(found.user_id)
        .execute(&mut *tx)
        .await
        .context("end sessions")?;
    commit(tx).await?;
    state.mailer.nudge();
    audit::record(
        &state.mysql,
        AuditEvent::ResetUsed,
        AuditRecord {
            user_id: Some(found.user_id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}
