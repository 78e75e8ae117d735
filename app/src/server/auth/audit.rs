//! The append-only authentication audit log.

use crate::model::{AppError, AuditEntry};
use crate::server::db::{Context, truncate};
use sqlx::MySqlPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    Registered,
    UserCreated,
    EmailVerified,
    /// A confirmation link refused by its mailbox's owner ("not my account").
    EmailDeclined,
    EmailChangeRequested,
    LoginSucceeded,
    LoginFailed,
    /// Written once per throttled key and throttle period, however many attempts.
    LoginThrottled,
    Lockout,
    Logout,
    SessionRevoked,
    Approved,
    Rejected,
    RoleChanged,
    Disabled,
    Enabled,
    PasswordChanged,
    /// A wrong current password given to change the password or the address.
    PasswordCheckFailed,
    ResetIssued,
    ResetUsed,
    /// A reset link that was invalid, expired or already used.
    ResetFailed,
    SecondFactorEnabled,
    SecondFactorPassed,
    SecondFactorFailed,
    /// Written once per throttled account and throttle period.
    SecondFactorThrottled,
    SecondFactorDisabled,
    /// A senior manager removed a user's second factor.
    SecondFactorReset,
    RecoveryCodesIssued,
    PasskeyAdded,
    PasskeyRemoved,
    /// A request refused for the user's role (403); once per user and 15 minutes.
    Forbidden,
    AccountClosed,
}

crate::model::string_enum::string_enum!(AuditEvent {
    Registered => "registered",
    UserCreated => "user_created",
    EmailVerified => "email_verified",
    EmailDeclined => "email_declined",
    EmailChangeRequested => "email_change_requested",
    LoginSucceeded => "login_succeeded",
    LoginFailed => "login_failed",
    LoginThrottled => "login_throttled",
    Lockout => "lockout",
    Logout => "logout",
    SessionRevoked => "session_revoked",
    Approved => "approved",
    Rejected => "rejected",
    RoleChanged => "role_changed",
    Disabled => "disabled",
    Enabled => "enabled",
    PasswordChanged => "password_changed",
    PasswordCheckFailed => "password_check_failed",
    ResetIssued => "reset_issued",
    ResetUsed => "reset_used",
    ResetFailed => "reset_failed",
    SecondFactorEnabled => "second_factor_enabled",
    SecondFactorPassed => "second_factor_passed",
    SecondFactorFailed => "second_factor_failed",
    SecondFactorThrottled => "second_factor_throttled",
    SecondFactorDisabled => "second_factor_disabled",
    SecondFactorReset => "second_factor_reset",
    RecoveryCodesIssued => "recovery_codes_issued",
    PasskeyAdded => "passkey_added",
    PasskeyRemoved => "passkey_removed",
    Forbidden => "forbidden",
    AccountClosed => "account_closed",
});

#[derive(Debug, Default)]
pub struct AuditRecord<'a> {
    pub user_id: Option<u64>,
    pub username: Option<&'a str>,
    pub actor_id: Option<u64>,
    pub ip: Option<&'a str>,
    pub detail: Option<String>,
}

/// Audit failures are logged, never fatal: a working login must not fail because
/// its audit row could not be written.
#[tracing::instrument(skip(pool, record), fields(event = event.as_str()))]
pub async fn record(pool: &MySqlPool, event: AuditEvent, record: AuditRecord<'_>) {
    let result = sqlx::query(
        "INSERT INTO auth_audit (at, event, user_id, username, actor_id, ip, detail) \
         VALUES (UTC_TIMESTAMP(6), ?, ?, ?, ?, ?, ?)",
    )
    .bind(event.as_str())
    .bind(record.user_id)
    // What was typed as a username reaches managers' screens: without control or
    // invisible formatting characters, which could make it read as something else.
    .bind(record.username.map(|u| {
        u.chars()
            .filter(|c| !c.is_control() && !crate::model::sale::is_hidden_format(*c))
            .take(64)
            .collect::<String>()
    }))
    .bind(record.actor_id)
    .bind(record.ip)
    .bind(record.detail.map(|d| truncate(&d, 255)))
    .execute(pool)
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not write audit record");
    }
}

#[tracing::instrument(skip(pool))]
pub async fn list(
    pool: &MySqlPool,
    before_id: Option<u64>,
    limit: u32,
) -> Result<Vec<AuditEntry>, AppError> {
    type Row = (
        u64,
        chrono::NaiveDateTime,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> =
        sqlx::query_as(
            "SELECT a.id, a.at, a.event, COALESCE(u.username, a.username), actor.username, a.ip, a.detail \
             FROM auth_audit a \
             LEFT JOIN users u ON u.id = a.user_id \
             LEFT JOIN users actor ON actor.id = a.actor_id \
             WHERE (? IS NULL OR a.id < ?) \
             ORDER BY a.id DESC LIMIT ?",
        )
        .bind(before_id)
        .bind(before_id)
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("list audit log")?;
    Ok(rows
        .into_iter()
        .map(|(id, at, event, username, actor, ip, detail)| AuditEntry {
            id,
            at: at.and_utc(),
            event,
            username,
            actor,
            ip,
            detail,
        })
        .collect())
}
