//! Switching the second factor off, and new recovery codes: both after the password.

use super::*;
use crate::model::AppError;
use crate::server::AppState;
use crate::server::auth::audit::{self, AuditEvent, AuditRecord};
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::CurrentUser;

/// Turns the second factor off, for accounts whose role does not require one. The
/// current password confirms it is the owner.
pub async fn disable_second_factor(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    code: Option<&str>,
) -> Result<(), AppError> {
    if current.user.role.needs_second_factor() {
        return Err(AppError::Conflict(
            "Staff accounts keep two-factor authentication. A senior manager can reset it if you lost your device."
                .into(),
        ));
    }
    check_current_password(state, info, current, current_password).await?;
    let mut tx = begin(&state.mysql).await?;
    let proof = crate::server::auth::second_factor::require_fresh_proof(
        state, info, current, code, &mut tx,
    )
    .await?;
    let removed = crate::server::auth::second_factor::remove(&mut tx, current.user.id).await?;
    commit(tx).await?;
    if let Some(proof) = proof {
        proof.release(&state.mysql).await?;
    }
    if removed {
        audit::record(
            &state.mysql,
            AuditEvent::SecondFactorDisabled,
            AuditRecord {
                user_id: Some(current.user.id),
                ip: Some(&info.ip),
                ..Default::default()
            },
        )
        .await;
    }
    Ok(())
}

/// New recovery codes, after the current password confirms it is the owner.
pub async fn new_recovery_codes(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    code: Option<&str>,
) -> Result<crate::model::RecoveryCodes, AppError> {
    check_current_password(state, info, current, current_password).await?;
    crate::server::auth::second_factor::regenerate_recovery_codes(state, info, current, code).await
}
