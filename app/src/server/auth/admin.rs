//! User administration for senior management.

use super::audit::{self, AuditEvent, AuditRecord};
use super::request::RequestInfo;
use super::sessions::CurrentUser;
use super::{accounts, sessions};
use crate::model::{AccountStatus, AppError, Role, USERS_PAGE_SIZE, UserSummary, UsersPage};
use crate::server::AppState;
use crate::server::db::Context;
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
    two_factor: bool,
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
            two_factor: r.two_factor,
            created_at: r.created_at.and_utc(),
            last_login_at: r.last_login_at.map(|t| t.and_utc()),
        }
    }
}

const SUMMARY_COLUMNS: &str = "id, username, email, role, status, email_verified_at IS NOT NULL AS email_verified, \
     EXISTS (SELECT 1 FROM second_factors f WHERE f.user_id = users.id AND f.confirmed_at IS NOT NULL) AS two_factor, \
     created_at, last_login_at";

/// One page of the users matching `query` (username or email, substring), pending ones
/// first, with how many match in all. A substring needs every row read, which the users
/// table (people, not sales) affords.
#[tracing::instrument(skip(pool))]
pub async fn list(
    pool: &MySqlPool,
    query: &str,
    status: Option<AccountStatus>,
    page: u32,
) -> Result<UsersPage, AppError> {
    let pattern = format!(
        "%{}%",
        crate::server::db::like_literal(&query.trim().to_lowercase())
    );
    const MATCHING: &str = "(username_key LIKE ? OR email LIKE ?) AND (? IS NULL OR status = ?)";
    let status = status.map(|s| s.as_str());
    let matching: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM users WHERE {MATCHING}"))
        .bind(&pattern)
        .bind(&pattern)
        .bind(status)
        .bind(status)
        .fetch_one(pool)
        .await
        .context("count users")?;
    let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM users WHERE {MATCHING} \
         ORDER BY status = 'pending' DESC, created_at DESC, id DESC LIMIT ? OFFSET ?"
    ))
    .bind(&pattern)
    .bind(&pattern)
    .bind(status)
    .bind(status)
    .bind(USERS_PAGE_SIZE)
    .bind(u64::from(page - 1) * u64::from(USERS_PAGE_SIZE))
    .fetch_all(pool)
    .await
    .context("list users")?;
    Ok(UsersPage {
        users: rows.into_iter().map(UserSummary::from).collect(),
        matching: matching as u64,
        page,
        pages: (matching as u64)
            .div_ceil(u64::from(USERS_PAGE_SIZE))
            .max(1) as u32,
    })
}

async fn load(pool: &MySqlPool, id: u64) -> Result<UserSummary, AppError> {
    let row: Option<SummaryRow> =
        sqlx::query_as(&format!("SELECT {SUMMARY_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(pool)
            .await
            .context("load user")?;
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

/// Gives up a transaction at once (it holds row locks) with `e`.
async fn refuse(tx: sqlx::Transaction<'_, sqlx::MySql>, e: AppError) -> Result<(), AppError> {
    let _ = tx.rollback().await;
    Err(e)
}

/// What a manager changes about an account.
enum Change {
    Role(Role),
    Status(AccountStatus),
}

/// Changes a user's role or status in one transaction that first locks the rows of the
/// actor, the target and every active senior manager. Two managers demoting each other
/// at once are so decided one after the other, on any instances: the second finds
/// they are no longer a manager. And no change leaves no active senior manager.
async fn change_account(
    state: &AppState,
    actor: &CurrentUser,
    id: u64,
    change: Change,
) -> Result<(), AppError> {
    #[derive(sqlx::FromRow)]
    struct Locked {
        id: u64,
        role: Role,
        status: AccountStatus,
    }
    let mut tx = state.mysql.begin().await.context("change account")?;
    let locked: Vec<Locked> = sqlx::query_as(
        "SELECT id, role, status FROM users \
         WHERE id IN (?, ?) OR (role = 'senior_management' AND status = 'active') \
         ORDER BY id FOR UPDATE",
    )
    .bind(actor.user.id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await
    .context("change account")?;
    let is_manager =
        |u: &Locked| u.role == Role::SeniorManagement && u.status == AccountStatus::Active;
    if !locked
        .iter()
        .any(|u| u.id == actor.user.id && is_manager(u))
    {
        return refuse(tx, AppError::Forbidden).await;
    }
    let Some(target) = locked.iter().find(|u| u.id == id) else {
        return refuse(tx, AppError::NotFound).await;
    };
    if target.status == AccountStatus::Closed {
        return refuse(
            tx,
            AppError::Conflict("This account was closed by its owner.".into()),
        )
        .await;
    }
    let (role, status) = match change {
        Change::Role(role) => (role, target.status),
        Change::Status(status) => (target.role, status),
    };
    let managers_after = locked.iter().filter(|u| is_manager(u)).count()
        - usize::from(is_manager(target))
        + usize::from(role == Role::SeniorManagement && status == AccountStatus::Active);
    if managers_after == 0 {
        return refuse(
            tx,
            AppError::Conflict("At least one active senior manager must remain.".into()),
        )
        .await;
    }
    sqlx::query("UPDATE users SET role = ?, status = ? WHERE id = ?")
        .bind(role)
        .bind(status)
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("change account")?;
    tx.commit().await.context("change account")
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
    change_account(state, actor, id, Change::Status(status)).await?;
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
    change_account(state, actor, id, Change::Role(role)).await?;
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
    change_account(state, actor, id, Change::Status(status)).await?;
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

/// Removes another user's second factor (a lost phone): their sessions end, they set a
/// new one up at their next login (staff must), and they are told by mail.
pub async fn reset_second_factor(
    state: &AppState,
    info: &RequestInfo,
    actor: &CurrentUser,
    id: u64,
) -> Result<UserSummary, AppError> {
    not_self(actor, id)?;
    let user = load(&state.mysql, id).await?;
    // As for reset links: a stolen manager session must not strip another manager's
    // second factor. A manager who lost their device signs in with a recovery code.
    if user.role == Role::SeniorManagement {
        return Err(AppError::Conflict(
            "A senior manager's two-factor authentication cannot be reset by another manager: they sign in with one of their recovery codes and set up a new device on their profile page.".into(),
        ));
    }
    let mut tx = state.mysql.begin().await.context("begin")?;
    if !super::second_factor::remove(&mut tx, id).await? {
        let _ = tx.rollback().await;
        return Err(AppError::Conflict(format!(
            "{} has no second factor to reset.",
            user.username
        )));
    }
    // The lost device may hold a passkey too, and a passkey signs in alone.
    super::passkeys::registration::forget_all(&mut tx, id).await?;
    if let Ok(email) = crate::model::Email::parse(&user.email) {
        crate::server::mail::enqueue(
            &mut tx,
            &crate::server::mail::templates::second_factor_reset(&email, &user.username),
        )
        .await?;
    }
    tx.commit().await.context("commit")?;
    state.mailer.nudge();
    let ended = sessions::delete_all(&state.mysql, id, None).await?;
    audit_action(
        state,
        info,
        actor,
        AuditEvent::SecondFactorReset,
        id,
        Some(format!("{ended} sessions ended")),
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
