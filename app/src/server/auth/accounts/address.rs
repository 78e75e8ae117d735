//! The account's address: confirming it, declining a confirmation meant for someone
//! else, asking for the link again, and changing it.

use super::*;
use crate::model::{AccountStatus, AppError, Email, PendingAddress};
use crate::server::AppState;
use crate::server::auth::audit::{self, AuditEvent, AuditRecord};
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::CurrentUser;
use crate::server::auth::tokens::{self, Purpose};
use crate::server::db::{Context, mysql_error, violated_key};
use crate::server::limits::{self, Counter, Limit};
use crate::server::mail::{self, templates};

const INVALID_CONFIRMATION: &str = "This confirmation link is invalid, expired or already used. Log in and ask for a new one on your profile page.";

/// Confirms an address with the token from a verification link: the address becomes
/// the account's (for a change of address) and verified.
pub async fn verify_email(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
) -> Result<(), AppError> {
    link_attempt(state, info).await?;
    let mut tx = begin(&state.mysql).await?;
    let Some(found) = tokens::redeem(&mut tx, token, Purpose::VerifyEmail).await? else {
        rollback(tx).await;
        return Err(AppError::Conflict(INVALID_CONFIRMATION.into()));
    };
    if matches!(
        found.status,
        AccountStatus::Disabled | AccountStatus::Closed
    ) {
        commit(tx).await?;
        return Err(AppError::Conflict(INVALID_CONFIRMATION.into()));
    }
    let changed_from = (found.current_email != found.email).then(|| found.current_email.clone());
    let updated = sqlx::query(
        "UPDATE users SET email = ?, email_verified_at = UTC_TIMESTAMP(6) WHERE id = ?",
    )
    .bind(&found.email)
    .bind(found.user_id)
    .execute(&mut *tx)
    .await;
    if let Err(e) = updated {
        rollback(tx).await;
        return Err(match violated_key(&e).as_deref() {
            Some("uq_users_email") => AppError::Conflict(
                "This address now belongs to another account, so it cannot be confirmed for yours."
                    .into(),
            ),
            _ => mysql_error("verify email", e),
        });
    }
    tokens::invalidate(&mut tx, found.user_id, Purpose::VerifyEmail).await?;
    if let Some(old) = changed_from
        .as_deref()
        .and_then(|old| Email::parse(old).ok())
    {
        // Reset links went to the old address: they must not outlive the change.
        tokens::invalidate(&mut tx, found.user_id, Purpose::ResetPassword).await?;
        let new = Email::parse(&found.email).map_err(|_| AppError::Internal)?;
        mail::enqueue(
            &mut tx,
            &templates::email_changed(&old, &found.username, &new),
        )
        .await?;
    }
    commit(tx).await?;
    state.mailer.nudge();
    audit::record(
        &state.mysql,
        AuditEvent::EmailVerified,
        AuditRecord {
            user_id: Some(found.user_id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// What a confirmation link would confirm: the address and the account's name, so
/// the mailbox's owner sees whose account they are about to attach it to.
pub async fn pending_address(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
) -> Result<PendingAddress, AppError> {
    link_attempt(state, info).await?;
    let mut conn = state.mysql.acquire().await.context("read link")?;
    match tokens::peek(&mut conn, token, Purpose::VerifyEmail).await? {
        Some(found)
            if found.status != AccountStatus::Disabled && found.status != AccountStatus::Closed =>
        {
            Ok(PendingAddress {
                email: found.email,
                username: found.username,
            })
        }
        _ => Err(AppError::Conflict(INVALID_CONFIRMATION.into())),
    }
}

/// "This is not my account": the mailbox's owner refuses the link, which is spent and
/// can never attach the address; the refusal is audited.
pub async fn decline_address(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
) -> Result<(), AppError> {
    link_attempt(state, info).await?;
    let mut tx = begin(&state.mysql).await?;
    let Some(found) = tokens::redeem(&mut tx, token, Purpose::VerifyEmail).await? else {
        rollback(tx).await;
        return Err(AppError::Conflict(INVALID_CONFIRMATION.into()));
    };
    commit(tx).await?;
    audit::record(
        &state.mysql,
        AuditEvent::EmailDeclined,
        AuditRecord {
            user_id: Some(found.user_id),
            ip: Some(&info.ip),
            detail: Some(format!("declined by the owner of {}", found.email)),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// Sends a new verification link for the signed-in user's address.
pub async fn resend_verification(state: &AppState, current: &CurrentUser) -> Result<(), AppError> {
    if current.user.email_verified {
        return Err(AppError::Conflict(
            "Your email address is confirmed already.".into(),
        ));
    }
    limits::check(
        &state.mysql,
        Counter::VerifyRequest,
        &current.user.id.to_string(),
        Limit::per_window(5, HOUR),
    )
    .await?;
    let email = Email::parse(&current.user.email).map_err(|_| AppError::Internal)?;
    let mut tx = begin(&state.mysql).await?;
    let token = tokens::issue(&mut tx, current.user.id, Purpose::VerifyEmail, &email, None).await?;
    let link = state.mailer.link(&format!("/verify-email?token={token}"));
    mail::enqueue(
        &mut tx,
        &templates::verify_email(&email, &current.user.username, &link),
    )
    .await?;
    commit(tx).await?;
    state.mailer.nudge();
    Ok(())
}

/// Changes the signed-in user's address: the new one receives a confirmation link and
/// becomes the account's once confirmed; the old one is told. An address that belongs
/// to another account gets a notice instead, and the answer is the same.
pub async fn change_email(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    new_email: &str,
    code: Option<&str>,
) -> Result<(), AppError> {
    let new = Email::parse(new_email).map_err(|m| AppError::invalid("email", m))?;
    if new.as_str() == current.user.email {
        return Err(AppError::invalid("email", "This is your address already"));
    }
    check_current_password(state, info, current, current_password).await?;
    limits::check(
        &state.mysql,
        Counter::VerifyRequest,
        &current.user.id.to_string(),
        Limit::per_window(5, HOUR),
    )
    .await?;
    let old = Email::parse(&current.user.email).map_err(|_| AppError::Internal)?;
    let in_use = find_by(&state.mysql, "email", new.as_str())
        .await?
        .is_some();
    let mut tx = begin(&state.mysql).await?;
    let proof = crate::server::auth::second_factor::require_fresh_proof(
        state, info, current, code, &mut tx,
    )
    .await?;
    // The old address hears of every request, so what it receives says nothing about
    // whether the new one has an account.
    mail::enqueue(
        &mut tx,
        &templates::email_change_requested(&old, &current.user.username, &new),
    )
    .await?;
    if in_use {
        mail::enqueue(&mut tx, &templates::address_in_use(&new)).await?;
    } else {
        let token =
            tokens::issue(&mut tx, current.user.id, Purpose::VerifyEmail, &new, None).await?;
        let link = state.mailer.link(&format!("/verify-email?token={token}"));
        mail::enqueue(
            &mut tx,
            &templates::verify_email(&new, &current.user.username, &link),
        )
        .await?;
    }
    commit(tx).await?;
    if let Some(proof) = proof {
        proof.release(&state.mysql).await?;
    }
    state.mailer.nudge();
    audit::record(
        &state.mysql,
        AuditEvent::EmailChangeRequested,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}
