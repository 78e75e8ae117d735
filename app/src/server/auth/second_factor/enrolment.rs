//! Setting the factor up: a new secret, confirmed with a code from the app and one
//! mailed to the address on file.

use super::*;
use crate::model::{AppError, RecoveryCodes, TotpEnrolment};
use crate::server::AppState;
use crate::server::auth::audit::AuditEvent;
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::CurrentUser;
use crate::server::db::Context;
use crate::server::limits::{self, Counter};

/// Starts setting up (or replacing) the second factor: a new secret, kept unconfirmed
/// until a code from it comes back. A confirmed factor stays in force meanwhile.
pub async fn begin(state: &AppState, current: &CurrentUser) -> Result<TotpEnrolment, AppError> {
    if enabled(&state.mysql, current.user.id).await? {
        return Err(AppError::Conflict(
            "Two-factor authentication is on already. To move it to a new device, ask a senior manager to reset it."
                .into(),
        ));
    }
    let secret = new_secret();
    let sealed = state.secret_keys.seal(current.user.id, &secret)?;
    // Only an unconfirmed secret is replaced: a factor confirmed meanwhile stays.
    sqlx::query(
        "INSERT INTO second_factors (user_id, secret, confirmed_at, last_step, created_at) \
         VALUES (?, ?, NULL, NULL, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE \
           secret = IF(confirmed_at IS NULL, VALUES(secret), secret), \
           created_at = IF(confirmed_at IS NULL, VALUES(created_at), created_at)",
    )
    .bind(current.user.id)
    .bind(&sealed)
    .execute(&state.mysql)
    .await
    .context("store second factor")?;
    // The password alone must not be enough to attach an authenticator (a new staff
    // account, or one whose factor a manager reset): the mailbox proves it too.
    let email = crate::model::Email::parse(&current.user.email).map_err(|_| AppError::Internal)?;
    let mut conn = state.mysql.acquire().await.context("mail set-up code")?;
    let mailed = crate::server::auth::tokens::issue_code(
        &mut conn,
        current.user.id,
        crate::server::auth::tokens::Purpose::FactorSetup,
        &email,
    )
    .await?;
    crate::server::mail::enqueue(
        &mut conn,
        &crate::server::mail::templates::factor_setup_code(&email, &current.user.username, &mailed),
    )
    .await?;
    drop(conn);
    state.mailer.nudge();
    let uri = otpauth_uri(&secret, &current.user.username);
    Ok(TotpEnrolment {
        qr_svg: qr_svg(&uri)?,
        secret,
        uri,
    })
}

/// Finishes setting up: the code proves the app holds the secret. Issues the recovery
/// codes (shown once) and counts this login as having passed the second step.
pub async fn confirm(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    code: &str,
    mailed_code: &str,
) -> Result<RecoveryCodes, AppError> {
    let reserved = limits::check(
        &state.mysql,
        Counter::SecondFactor,
        &current.user.id.to_string(),
        SECOND_STEP_LIMIT,
    )
    .await?;
    let mut tx = state.mysql.begin().await.context("begin")?;
    let secret: Option<String> = sqlx::query_scalar(
        "SELECT secret FROM second_factors WHERE user_id = ? AND confirmed_at IS NULL FOR UPDATE",
    )
    .bind(current.user.id)
    .fetch_optional(&mut *tx)
    .await
    .context("read second factor")?;
    let Some(secret) = secret else {
        let _ = tx.rollback().await;
        return Err(AppError::Conflict(
            "Start the set-up again: there is no new secret waiting for a code.".into(),
        ));
    };
    let secret = state.secret_keys.open(current.user.id, &secret)?;
    let accepted = match matching_step(&secret, code)? {
        Some(step) => spend_step(&mut tx, current.user.id, step).await?,
        None => false,
    };
    let mailbox_proved = accepted
        && crate::server::auth::tokens::redeem_code(
            &mut tx,
            current.user.id,
            crate::server::auth::tokens::Purpose::FactorSetup,
            mailed_code,
        )
        .await?;
    if !mailbox_proved {
        let _ = tx.rollback().await;
        audit_event(
            state,
            info,
            current.user.id,
            AuditEvent::SecondFactorFailed,
            Some("set-up"),
        )
        .await;
        return Err(if accepted {
            AppError::invalid(
                "mailed_code",
                "That is not the code we mailed you, or it is more than 30 minutes old. Start again for a new one.",
            )
        } else {
            AppError::invalid(
                "code",
                "That code is not right. Check the app's clock and try the newest code.",
            )
        });
    }
    sqlx::query("UPDATE second_factors SET confirmed_at = UTC_TIMESTAMP(6) WHERE user_id = ?")
        .bind(current.user.id)
        .execute(&mut *tx)
        .await
        .context("confirm second factor")?;
    let codes = replace_recovery_codes(&mut tx, current.user.id).await?;
    crate::server::auth::sessions::pass_second_step(&mut tx, &current.session_key).await?;
    tx.commit().await.context("commit")?;
    limits::release(&state.mysql, &reserved).await?;
    // Proving a new factor raises what the session may do: a new id for it.
    info.session
        .cycle_id()
        .await
        .map_err(crate::server::auth::sessions::session_error)?;
    audit_event(
        state,
        info,
        current.user.id,
        AuditEvent::SecondFactorEnabled,
        None,
    )
    .await;
    Ok(codes)
}
