//! Ceremonies begun and not yet finished, in MySQL rather than one instance's memory:
//! the browser may finish on any instance what another began.
//!
//! The browser holds a random token and the table only its SHA-256, like a mailed link.
//! Finishing deletes the row in the same transaction that reads it, so a ceremony is
//! finished once at most: on a Galera cluster too, where two nodes deleting the same
//! row cannot both commit.

use super::relying_party::CEREMONY_LIFETIME;
use crate::model::AppError;
use crate::server::auth::tokens;
use crate::server::db::Context;
use serde::{Serialize, de::DeserializeOwned};
use sqlx::MySqlPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Register,
    SignIn,
}

crate::model::string_enum::string_enum!(Purpose {
    Register => "register",
    SignIn => "sign_in",
});

/// Who may finish a registration: the account, in the login that began it.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub user_id: u64,
    pub session_key: &'a str,
}

/// The answer for a token that is unknown, expired, spent, or not this caller's: the
/// same in every case.
fn gone() -> AppError {
    AppError::Conflict(
        "This passkey request has expired or was used already. Please try again.".into(),
    )
}

/// Keeps `state` for a ceremony; returns the token that finishes it. A registration
/// replaces the account's unfinished ones.
pub async fn open(
    pool: &MySqlPool,
    purpose: Purpose,
    owner: Option<Owner<'_>>,
    state: &impl Serialize,
) -> Result<String, AppError> {
    let state = serde_json::to_string(state).map_err(|e| {
        tracing::error!(error = %e, "passkey ceremony state not serialisable");
        AppError::Internal
    })?;
    let token = tokens::random_hex(32);
    let mut tx = pool.begin().await.context("begin")?;
    if let Some(owner) = owner {
        sqlx::query("DELETE FROM passkey_ceremonies WHERE user_id = ? AND purpose = ?")
            .bind(owner.user_id)
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await
            .context("replace passkey ceremony")?;
    }
    sqlx::query(
        "INSERT INTO passkey_ceremonies (token_hash, purpose, user_id, session_id, state, expires_at) \
         VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? SECOND)",
    )
    .bind(tokens::digest(&token))
    .bind(purpose.as_str())
    .bind(owner.map(|o| o.user_id))
    .bind(owner.map(|o| o.session_key))
    .bind(state)
    .bind(CEREMONY_LIFETIME.as_secs())
    .execute(&mut *tx)
    .await
    .context("open passkey ceremony")?;
    tx.commit().await.context("commit")?;
    Ok(token)
}

/// Spends the ceremony `token` and answers its state, if it is one of `purpose`, still
/// open, and begun by `owner` (or by anyone, for a sign-in).
pub async fn take<T: DeserializeOwned>(
    pool: &MySqlPool,
    purpose: Purpose,
    token: &str,
    owner: Option<Owner<'_>>,
) -> Result<T, AppError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        purpose: Purpose,
        user_id: Option<u64>,
        session_id: Option<String>,
        state: String,
    }
    let hash = tokens::digest(token);
    let mut tx = pool.begin().await.context("begin")?;
    let row: Option<Row> = sqlx::query_as(
        "SELECT purpose, user_id, session_id, state FROM passkey_ceremonies \
         WHERE token_hash = ? AND expires_at > UTC_TIMESTAMP(6) FOR UPDATE",
    )
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await
    .context("read passkey ceremony")?;
    let Some(row) = row else {
        return Err(gone());
    };
    let owned = match owner {
        Some(owner) => {
            row.user_id == Some(owner.user_id)
                && row.session_id.as_deref() == Some(owner.session_key)
        }
        None => row.user_id.is_none(),
    };
    if row.purpose != purpose || !owned {
        // Left in place: a token shown to the wrong endpoint or login must not let
        // anyone cancel its owner's ceremony.
        return Err(gone());
    }
    sqlx::query("DELETE FROM passkey_ceremonies WHERE token_hash = ?")
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .context("spend passkey ceremony")?;
    tx.commit().await.context("commit")?;
    serde_json::from_str(&row.state).map_err(|e| {
        tracing::error!(error = %e, "stored passkey ceremony state unreadable");
        AppError::Internal
    })
}

/// Deletes ceremonies nobody finished (hourly clean-up).
pub async fn prune(pool: &MySqlPool) -> Result<u64, AppError> {
    Ok(
        sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at < UTC_TIMESTAMP(6)")
            .execute(pool)
            .await
            .context("prune passkey ceremonies")?
            .rows_affected(),
    )
}
