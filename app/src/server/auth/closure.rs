//! A customer closing their own account.
//!
//! The `users` row stays as a tombstone (status `closed`, no name, address or password),
//! so the audit log still tells whose events these were; everything else the accounts
//! tables hold about the person is deleted in the same transaction: logins, trusted
//! browsers, pending links, the second factor and passkeys, throttle counters keyed by their name or
//! address, and their mail. Sales are the stores' records and stay as they are.

use super::accounts::check_current_password;
use super::audit::{self, AuditEvent, AuditRecord};
use super::request::RequestInfo;
use super::second_factor;
use super::sessions::{CurrentUser, session_error};
use crate::model::{AppError, Role};
use crate::server::AppState;
use crate::server::db::Context;

/// Closes the signed-in customer's account after their password and, when the account
/// has a second factor, a code from it. Ends every session, this one included.
pub async fn close(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    code: &str,
) -> Result<(), AppError> {
    if current.user.role != Role::Customer {
        // Staff accounts hold the chain's accountability trail: a senior manager
        // disables them instead.
        return Err(AppError::Forbidden);
    }
    check_current_password(state, info, current, current_password).await?;
    let user_id = current.user.id;
    let has_factor = second_factor::enabled(&state.mysql, user_id).await?;
    if has_factor && code.trim().is_empty() {
        return Err(AppError::invalid(
            "code",
            "Enter a code from your authenticator app, or a recovery code",
        ));
    }
    let mut tx = state.mysql.begin().await.context("close account")?;
    let reserved = if has_factor {
        Some(
            second_factor::spend_code(state, info, user_id, code.trim(), &mut tx)
                .await?
                .1,
        )
    } else {
        None
    };
    // The tombstone's name and address: `#` is in no username and no address has none
    // of `@`, so neither can ever collide with a real account's.
    let closed = sqlx::query(
        "UPDATE users SET username = CONCAT('#closed-', id), username_key = CONCAT('#closed-', id), \
         email = CONCAT('#closed-', id), email_verified_at = NULL, password_hash = '', \
         status = 'closed' WHERE id = ? AND status <> 'closed'",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await
    .context("close account")?
    .rows_affected();
    if closed != 1 {
        return Err(AppError::NotFound);
    }
    for (what, statement) in [
        (
            "end sessions",
            "DELETE FROM user_sessions WHERE user_id = ?",
        ),
        (
            "forget browsers",
            "DELETE FROM trusted_devices WHERE user_id = ?",
        ),
        ("void links", "DELETE FROM email_tokens WHERE user_id = ?"),
    ] {
        sqlx::query(statement)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .context(what)?;
    }
    second_factor::remove(&mut tx, user_id).await?;
    super::passkeys::registration::forget_all(&mut tx, user_id).await?;
    let username_key = current.user.username.to_ascii_lowercase();
    sqlx::query("DELETE FROM counters WHERE subject IN (?, ?, ?)")
        .bind(&username_key)
        .bind(&current.user.email)
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await
        .context("forget counters")?;
    sqlx::query("DELETE FROM mail_outbox WHERE recipient = ?")
        .bind(&current.user.email)
        .execute(&mut *tx)
        .await
        .context("forget mail")?;
    tx.commit().await.context("close account")?;
    if let Some(reserved) = reserved {
        reserved.release(&state.mysql).await?;
    }
    info.session.flush().await.map_err(session_error)?;
    audit::record(
        &state.mysql,
        AuditEvent::AccountClosed,
        AuditRecord {
            user_id: Some(user_id),
            ip: Some(&info.ip),
            detail: Some("by its owner".into()),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}
