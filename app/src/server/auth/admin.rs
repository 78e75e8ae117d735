//! User administration for senior management.

use super::audit::{self, AuditEvent, AuditRecord};
use super::guard::{CurrentUser, RequestInfo};
use super::{accounts, sessions};
use crate::model::{AccountStatus, AppError, Role, UserSummary};
use crate::server::AppState;
use crate::server::db::mysql_error;
use chrono::NaiveDateTime;
use sqlx::MySqlPool;

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: u64,
    username: String,
    email: String,
    role: Role,
    status: AccountStatus,
    email_verified: bool,
    created_at: NaiveDateTime,
    last_login_at: Option<NaiveDateTime>,
}

impl From<SummaryRow> for UserSummary {
    fn from(r: SummaryRow) -> Self {
        UserSummary {
            id: r.id,
            username: r.username,
            email: r.email,
            role: r.role,
            status: r.status,
            email_verified: r.email_verified,
            created_at: r.created_at.and_utc(),
            last_login_at: r.last_login_at.map(|t| t.and_utc()),
        }
    }
}

const SUMMARY_COLUMNS: &str = "id, username, email, role, status, email_verified_at IS NOT NULL AS email_verified, \
     created_at, last_login_at";

/// Users matching `query` (username or email, substring), pending ones first.
#[tracing::instrument(skip(pool))]
pub async fn list(
    pool: &MySqlPool,
    query: &str,
    status: Option<AccountStatus>,
) -> Result<Vec<UserSummary>, AppError> {
    let pattern = format!(
        "%{}%",
        query
            .trim()
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM users \
         WHERE (username_key LIKE ? OR email LIKE ?) AND (? IS NULL OR status = ?) \
         ORDER BY status = 'pending' DESC, created_at DESC LIMIT 200"
    ))
    .bind(&pattern)
    .bind(&pattern)
    .bind(status.map(|s| s.as_str()))
    .bind(status.map(|s| s.as_str()))
    .fetch_all(pool)
    .await
    .map_err(|e| mysql_error("list users", e))?;
    Ok(rows.into_iter().map(UserSummary::from).collect())
}

async fn load(pool: &MySqlPool, id: u64) -> Result<UserSummary, AppError> {
    let row: Option<SummaryRow> =
        sqlx::query_as(&format!("SELECT {SUMMARY_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(|e| mysql_error("load user", e))?;
    row.map(UserSummary::from).ok_or(AppError::NotFound)
}

/// Records a manager's action on a user.
async fn audit_action(
    state: &AppState,
    info: &RequestInfo,
    actor: &CurrentUser,
    event: AuditEvent,
    user: u64,
    detail: Option<String>,
) {
    let record = AuditRecord {
        user_id: Some(user),
        actor_id: Some(actor.user.id),
        ip: Some(&info.ip),
        detail,
        ..Default::default()
    };
    audit::record(&state.mysql, event, record).await;
}

fn not_self(actor: &CurrentUser, target: u64) -> Result<(), AppError> {
    if actor.user.id == target {
        Err(AppError::Conflict(
            "You cannot change your own account here; ask another senior manager.".into(),
        ))
    } else {
        Ok(())
    }
}

async fn set_status(state: &AppState, id: u64, status: AccountStatus) -> Result<(), AppError> {
    sqlx::query("UPDATE users SET status = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(id)
        .execute(&state.mysql)
        .await
        .map_err(|e| mysql_error("set status", e))?;
    Ok(())
}

/// Approves (active) or rejects (disabled) a pending account.
pub async fn decide(
    state: &AppState,
    info: &RequestInfo,
    actor: &CurrentUser,
    id: u64,
    approve: bool,
) -> Result<UserSummary, AppError> {
    not_self(actor, id)?;
    let user = load(&state.mysql, id).await?;
    if user.status != AccountStatus::Pending {
        return Err(AppError::Conflict(format!(
            "{} is not awaiting approval.",
            user.username
        )));
    }
    if approve && !user.email_verified {
        return Err(AppError::Conflict(format!(
            "{} has not confirmed their email address yet; approve once they have.",
            user.username
        )));
    }
    let (status, event) = if approve {
        (AccountStatus::Active, AuditEvent::Approved)
    } else {
        (AccountStatus::Disabled, AuditEvent::Rejected)
    };
    set_status(state, id, status).await?;
    if !approve {
        sessions::delete_all(&state.mysql, id, None).await?;
    }
    audit_action(state, info, actor, event, id, None).await;
    load(&state.mysql, id).await
}

pub async fn change_role(
    state: &AppState,
    info: &RequestInfo,
    actor: &CurrentUser,
    id: u64,
    role: Role,
) -> Result<UserSummary, AppError> {
    not_self(actor, id)?;
    let user = load(&state.mysql, id).await?;
    if user.role == role {
        return Ok(user);
    }
    sqlx::query("UPDATE users SET role = ? WHERE id = ?")
        .bind(role.as_str())
        .bind(id)
        .execute(&state.mysql)
        .await
        .map_err(|e| mysql_error("set role", e))?;
    audit_action(
        state,
        info,
        actor,
        AuditEvent::RoleChanged,
        id,
        Some(format!("{} -> {}", user.role, role)),
    )
    .await;
    load(&state.mysql, id).await
}

/// Disables an account (ending all its sessions) or re-enables it.
pub async fn set_enabled(
    state: &AppState,
    info: &RequestInfo,
    actor: &CurrentUser,
    id: u64,
    enabled: bool,
) -> Result<UserSummary, AppError> {
    not_self(actor, id)?;
    let user = load(&state.mysql, id).await?;
    if user.status == AccountStatus::Pending {
        return Err(AppError::Conflict(format!(
            "{} is awaiting approval: approve or reject the account instead.",
            user.username
        )));
    }
    let (status, event) = if enabled {
        (AccountStatus::Active, AuditEvent::Enabled)
    } else {
        (AccountStatus::Disabled, AuditEvent::Disabled)
    };
    set_status(state, id, status).await?;
    let ended = if enabled {
        0
    } else {
        sessions::delete_all(&state.mysql, id, None).await?
    };
    audit_action(
        state,
        info,
        actor,
        event,
        id,
        (!enabled).then(|| format!("{ended} sessions ended")),
    )
    .await;
    load(&state.mysql, id).await
}

/// Sends a single-use reset link to the user's own address; the manager never sees it.
pub async fn send_reset_link(
    state: &AppState,
    info: &RequestInfo,
    actor: &CurrentUser,
    id: u64,
) -> Result<(), AppError> {
    accounts::send_reset_link_for(state, info, actor, id).await
}
