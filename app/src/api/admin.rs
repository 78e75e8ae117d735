//! User administration and the audit log: senior management only.

use crate::model::{AppError, AuditEntry, UserSummary, UsersPage};
#[cfg(feature = "ssr")]
use crate::server::{
    auth::{Access, admin, audit},
    db::truncate,
    respond,
};
use leptos::prelude::*;

#[server(prefix = "/api", endpoint = "admin/users")]
pub async fn list_users(
    query: String,
    status: Option<String>,
    page: Option<u32>,
) -> Result<UsersPage, AppError> {
    respond(Access::MANAGEMENT, |call, _| async move {
        let query = truncate(&query, 100);
        let status = match status.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(
                crate::model::AccountStatus::parse(s)
                    .map_err(|m| AppError::invalid("status", m))?,
            ),
        };
        let page = page.unwrap_or(1).clamp(1, 1_000_000);
        admin::list(&call.state.mysql, &query, status, page).await
    })
    .await
}

/// Approve (`approve = true`) or reject a pending account.
#[server(prefix = "/api", endpoint = "admin/users/decide")]
pub async fn decide_user(id: u64, approve: bool) -> Result<UserSummary, AppError> {
    respond(Access::MANAGEMENT, |call, actor| async move {
        admin::decide(&call.state, &call.info, &actor, id, approve).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "admin/users/role")]
pub async fn change_role(id: u64, role: String) -> Result<UserSummary, AppError> {
    respond(Access::MANAGEMENT, |call, actor| async move {
        let role = crate::model::Role::parse(&role).map_err(|m| AppError::invalid("role", m))?;
        admin::change_role(&call.state, &call.info, &actor, id, role).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "admin/users/enabled")]
pub async fn set_user_enabled(id: u64, enabled: bool) -> Result<UserSummary, AppError> {
    respond(Access::MANAGEMENT, |call, actor| async move {
        admin::set_enabled(&call.state, &call.info, &actor, id, enabled).await
    })
    .await
}

/// Mails a one-time reset link to the user's own address; the manager never sees it.
#[server(prefix = "/api", endpoint = "admin/users/reset-link")]
pub async fn send_reset_link(id: u64) -> Result<(), AppError> {
    respond(Access::MANAGEMENT, |call, actor| async move {
        admin::send_reset_link(&call.state, &call.info, &actor, id).await
    })
    .await
}

/// Removes a user's second factor (a lost device); they set a new one up.
#[server(prefix = "/api", endpoint = "admin/users/reset-two-factor")]
pub async fn reset_two_factor(id: u64) -> Result<UserSummary, AppError> {
    respond(Access::MANAGEMENT, |call, actor| async move {
        admin::reset_second_factor(&call.state, &call.info, &actor, id).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "admin/audit")]
pub async fn audit_log(before_id: Option<u64>) -> Result<Vec<AuditEntry>, AppError> {
    respond(Access::MANAGEMENT, |call, _| async move {
        audit::list(&call.state.mysql, before_id, 100).await
    })
    .await
}
