//! Re-authentication: the current password, asked again before a sensitive change.

use super::*;
use crate::model::AppError;
use crate::server::AppState;
use crate::server::auth::audit::{self, AuditEvent, AuditRecord};
use crate::server::auth::password;
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::CurrentUser;
use crate::server::limits::{self, Counter, Limit};

/// Checks the signed-in user's current password, throttled like a login (a stolen
/// session must not become an unlimited password oracle). A wrong one is audited.
pub(in crate::server::auth) async fn check_current_password(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    candidate: String,
) -> Result<(), AppError> {
    let limit = Limit {
        max: state.auth.throttle.max_failures,
        window: state.auth.throttle.window,
        base_delay: state.auth.throttle.base_delay,
    };
    let reserved = limits::check(
        &state.mysql,
        Counter::PasswordChange,
        &current.user.id.to_string(),
        limit,
    )
    .await?;
    let stored = find_by(&state.mysql, "id", &current.user.id.to_string())
        .await?
        .map(|u| u.password_hash);
    if candidate.chars().count() <= crate::model::account::PASSWORD_MAX
        && password::verify(stored, candidate).await?
    {
        limits::release(&state.mysql, &reserved).await?;
        return Ok(());
    }
    audit::record(
        &state.mysql,
        AuditEvent::PasswordCheckFailed,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Err(AppError::invalid(
        "current_password",
        "Current password is not correct",
    ))
}
