//! Authorization: the access level every server function names first (see
//! `crate::server::respond`), checked against the session's user (`sessions`).

use super::request::RequestInfo;
use super::sessions::{Activity, CurrentUser, authenticate};
use crate::model::{AccountStatus, AppError, Role, SecondFactor, SessionUser};
use crate::server::AppState;

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
    pub const MANAGEMENT: Access = Access::Roles(Role::MANAGEMENT);
    pub const STAFF: Access = Access::Roles(Role::STAFF);
    pub const CUSTOMER: Access = Access::Roles(Role::CUSTOMERS);
    /// Anyone, signed in or not: login, registration, recovery, health.
    pub const PUBLIC: Public = Public;
}

/// The access level of a server function that anyone may call.
#[derive(Debug, Clone, Copy)]
pub struct Public;

/// Checks the session and the role: 401 without a valid login (or before its second
/// step), 403 with the wrong role, a pending account or a missing second factor.
/// A refusal for the role is audited, once per user and 15 minutes.
pub async fn require(
    state: &AppState,
    info: &RequestInfo,
    access: Access,
    activity: Activity,
) -> Result<CurrentUser, AppError> {
    let current = authenticate(state, &info.session, activity)
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
