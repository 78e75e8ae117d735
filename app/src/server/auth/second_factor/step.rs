//! The second step of a login, and the fresh proof sensitive changes ask for:
//! codes spent once, throttled per account.

use super::*;
use crate::model::AppError;
use crate::server::AppState;
use crate::server::auth::audit::AuditEvent;
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::CurrentUser;
use crate::server::db::Context;
use crate::server::limits::{self, Counter, Limit};
use sqlx::MySqlConnection;
use std::time::Duration;

/// Wrong codes per account: like the password, five in 15 minutes, then waits that double.
pub(super) const SECOND_STEP_LIMIT: Limit = Limit {
    max: 5,
    window: Duration::from_secs(15 * 60),
    base_delay: Duration::from_secs(30),
};

/// Wrong codes per account per day, whatever the pace: the 15-minute limit alone
/// starts again from zero, which would allow some 860 guesses a day for ever. At 20 a
/// day (each covering three valid codes), a month of guessing passes with about 0.2%.
pub(super) const SECOND_STEP_DAILY: Limit = Limit::per_window(20, Duration::from_secs(24 * 3600));

/// The second step of a login: a code from the app, or a recovery code. Throttled per
/// account like the password; each code works once.
pub async fn second_step(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    code: &str,
) -> Result<(), AppError> {
    let user_id = current.user.id;
    let mut tx = state.mysql.begin().await.context("begin")?;
    let (how, reserved) = spend_code(state, info, user_id, code, &mut tx).await?;
    crate::server::auth::sessions::pass_second_step(&mut tx, &current.session_key).await?;
    tx.commit().await.context("commit")?;
    reserved.release(&state.mysql).await?;
    info.session
        .cycle_id()
        .await
        .map_err(crate::server::auth::sessions::session_error)?;
    audit_event(
        state,
        info,
        user_id,
        AuditEvent::SecondFactorPassed,
        Some(how),
    )
    .await;
    Ok(())
}

/// Checks a code from the app or a recovery code of `user_id` and spends it inside `tx`
/// (so it is spent only if what it confirms commits). Throttled per account; a wrong
/// one is audited. Returns how the user answered, and the throttle reservation to
/// release once `tx` has committed.
pub(in crate::server::auth) async fn spend_code(
    state: &AppState,
    info: &RequestInfo,
    user_id: u64,
    code: &str,
    tx: &mut MySqlConnection,
) -> Result<(&'static str, Reserved), AppError> {
    let subject = user_id.to_string();
    let mut held = Vec::new();
    for (counter, limit, detail) in [
        (Counter::SecondFactor, SECOND_STEP_LIMIT, None),
        (
            Counter::SecondFactorDay,
            SECOND_STEP_DAILY,
            Some("daily limit"),
        ),
    ] {
        match limits::hit(&state.mysql, counter, &subject, limit).await? {
            Ok(reserved) => held.push(reserved),
            Err(refused) => {
                Reserved(held).release(&state.mysql).await?;
                if refused.first {
                    audit_event(
                        state,
                        info,
                        user_id,
                        AuditEvent::SecondFactorThrottled,
                        detail,
                    )
                    .await;
                    if counter == Counter::SecondFactorDay {
                        guessing_notice(state, user_id).await?;
                    }
                }
                return Err(AppError::Throttled(refused.retry_after));
            }
        }
    }
    let reserved = Reserved(held);
    let secret: Option<String> = sqlx::query_scalar(
        "SELECT secret FROM second_factors WHERE user_id = ? AND confirmed_at IS NOT NULL",
    )
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await
    .context("read second factor")?;
    let Some(secret) = secret else {
        return Err(AppError::Conflict(
            "This account has no second factor.".into(),
        ));
    };
    let secret = state.secret_keys.open(user_id, &secret)?;
    let how = if let Some(step) = matching_step(&secret, code)? {
        spend_step(&mut *tx, user_id, step).await?.then_some("app")
    } else {
        sqlx::query(
            "UPDATE recovery_codes SET used_at = UTC_TIMESTAMP(6) WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(recovery_hash(code))
        .execute(&mut *tx)
        .await
        .context("use recovery code")?
        .rows_affected()
        .eq(&1)
        .then_some("recovery code")
    };
    let Some(how) = how else {
        audit_event(state, info, user_id, AuditEvent::SecondFactorFailed, None).await;
        return Err(AppError::invalid(
            "code",
            "That code is not right, or was used already.",
        ));
    };
    Ok((how, reserved))
}

/// How long a proof of the second factor covers sensitive actions without another.
pub(super) const FRESH_PROOF: Duration = Duration::from_secs(10 * 60);

/// Sensitive actions (a new address, new recovery codes, turning the factor off) need a
/// recent proof of the second factor from accounts that have one: the session's own
/// within `FRESH_PROOF`, or `code` now, spent inside `tx` (it then counts as the
/// session's newest proof). So a stolen session cannot make them on the password
/// alone once its login is ten minutes old. Returns the code's throttle reservation, to
/// release once `tx` has committed.
pub async fn require_fresh_proof(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    code: Option<&str>,
    tx: &mut MySqlConnection,
) -> Result<Option<Reserved>, AppError> {
    if !enabled(&state.mysql, current.user.id).await? {
        return Ok(None);
    }
    let code = code.map(str::trim).unwrap_or_default();
    if code.is_empty() {
        let fresh: Option<bool> = sqlx::query_scalar(
            "SELECT second_factor_at > UTC_TIMESTAMP(6) - INTERVAL ? SECOND FROM user_sessions WHERE id = ?",
        )
        .bind(FRESH_PROOF.as_secs())
        .bind(&current.session_key)
        .fetch_optional(&mut *tx)
        .await
        .context("read the session's second step")?
        .flatten();
        if fresh == Some(true) {
            return Ok(None);
        }
        return Err(AppError::invalid(
            "code",
            "Enter a code from your authenticator app, or a recovery code: this change needs one when you last gave one more than 10 minutes ago",
        ));
    }
    let (_, reserved) = spend_code(state, info, current.user.id, code, tx).await?;
    crate::server::auth::sessions::pass_second_step(tx, &current.session_key).await?;
    Ok(Some(reserved))
}

/// Tells the owner that someone who knows the password is guessing second-step codes.
pub(super) async fn guessing_notice(state: &AppState, user_id: u64) -> Result<(), AppError> {
    #[derive(sqlx::FromRow)]
    struct Owner {
        username: String,
        email: String,
    }
    let owner: Option<Owner> = sqlx::query_as("SELECT username, email FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(&state.mysql)
        .await
        .context("find account owner")?;
    let Some(to) = owner
        .as_ref()
        .and_then(|o| crate::model::Email::parse(&o.email).ok())
    else {
        return Ok(());
    };
    let mut conn = state.mysql.acquire().await.context("guessing notice")?;
    let username = owner.map(|o| o.username).unwrap_or_default();
    crate::server::mail::enqueue(
        &mut conn,
        &crate::server::mail::templates::second_step_guessed(&to, &username),
    )
    .await?;
    state.mailer.nudge();
    Ok(())
}
