//! One-time links sent by mail: confirming an email address and resetting a password.
//!
//! A token is 256 random bits; only its SHA-256 is stored, so a copy of the table
//! cannot be turned into working links. A link works once, until it expires, and
//! issuing a new one for the same purpose invalidates the older ones.

use crate::model::{AppError, Email};
use crate::server::db::Context;
use sha2::{Digest, Sha256};
use sqlx::MySqlConnection;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    /// The code mailed to the address on file when a second factor is set up.
    FactorSetup,
}

crate::model::string_enum::string_enum!(Purpose {
    VerifyEmail => "verify_email",
    ResetPassword => "reset_password",
    FactorSetup => "factor_setup",
});

impl Purpose {
    pub fn lifetime(self) -> Duration {
        match self {
            Purpose::VerifyEmail => Duration::from_secs(24 * 3600),
            Purpose::ResetPassword => Duration::from_secs(3600),
            Purpose::FactorSetup => Duration::from_secs(30 * 60),
        }
    }
}

/// `n` bytes from the operating system's generator: every secret the portal makes
/// (tokens, session keys, second-factor secrets) comes from here.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf
}

/// A random secret of `bytes` bytes, hex-encoded: submission tokens, session keys,
/// link and device tokens.
pub fn random_hex(bytes: usize) -> String {
    hex::encode(random_bytes(bytes))
}

pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// Creates a link token for the user (sent to `email`), invalidating their older
/// unused tokens of the same purpose. Returns the token, for the link.
pub async fn issue(
    conn: &mut MySqlConnection,
    user_id: u64,
    purpose: Purpose,
    email: &Email,
    created_by: Option<u64>,
) -> Result<String, AppError> {
    invalidate(conn, user_id, purpose).await?;
    let token = random_hex(32);
    sqlx::query(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_by, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? SECOND)",
    )
    .bind(digest(&token))
    .bind(user_id)
    .bind(purpose)
    .bind(email.as_str())
    .bind(created_by)
    .bind(purpose.lifetime().as_secs())
    .execute(conn)
    .await
    .context("create link token")?;
    Ok(token)
}

/// Marks every unused token of this purpose used (a newer link, a password change).
pub async fn invalidate(
    conn: &mut MySqlConnection,
    user_id: u64,
    purpose: Purpose,
) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE email_tokens SET used_at = UTC_TIMESTAMP(6) \
         WHERE user_id = ? AND purpose = ? AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(purpose)
    .execute(conn)
    .await
    .context("invalidate link tokens")?;
    Ok(())
}

/// An 8-digit code, to be typed rather than followed, mailed to `email` for `user_id`
/// (older ones of the purpose are void). Its hash is salted with the account's id, so
/// equal codes of two accounts never collide; guesses are throttled by the caller.
pub async fn issue_code(
    conn: &mut MySqlConnection,
    user_id: u64,
    purpose: Purpose,
    email: &Email,
) -> Result<String, AppError> {
    use rand::Rng;
    invalidate(conn, user_id, purpose).await?;
    let code = format!("{:08}", rand::rngs::OsRng.gen_range(0..100_000_000u32));
    sqlx::query(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? SECOND)",
    )
    .bind(code_digest(user_id, &code))
    .bind(user_id)
    .bind(purpose)
    .bind(email.as_str())
    .bind(purpose.lifetime().as_secs())
    .execute(conn)
    .await
    .context("create mailed code")?;
    Ok(code)
}

fn code_digest(user_id: u64, code: &str) -> Vec<u8> {
    digest(&format!("{user_id}:{}", code.trim()))
}

/// Spends `user_id`'s valid code of `purpose`, inside the caller's transaction: false
/// for a wrong, used or expired one.
pub async fn redeem_code(
    conn: &mut MySqlConnection,
    user_id: u64,
    purpose: Purpose,
    code: &str,
) -> Result<bool, AppError> {
    Ok(sqlx::query(
        "UPDATE email_tokens SET used_at = UTC_TIMESTAMP(6) \
         WHERE token_hash = ? AND user_id = ? AND purpose = ? AND used_at IS NULL \
         AND expires_at > UTC_TIMESTAMP(6)",
    )
    .bind(code_digest(user_id, code))
    .bind(user_id)
    .bind(purpose)
    .execute(conn)
    .await
    .context("use mailed code")?
    .rows_affected()
        == 1)
}

/// A token that was valid, now spent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Redeemed {
    pub user_id: u64,
    /// The address the link was sent to.
    pub email: String,
    pub username: String,
    /// The account's address now: it differs for a change of address, or when the
    /// account changed its address after the link was sent.
    pub current_email: String,
    pub status: crate::model::AccountStatus,
}

/// What a valid token would confirm, without spending it (the page shows it first).
pub async fn peek(
    conn: &mut MySqlConnection,
    token: &str,
    purpose: Purpose,
) -> Result<Option<Redeemed>, AppError> {
    sqlx::query_as(
        "SELECT t.user_id, t.email, u.username, u.email AS current_email, u.status FROM email_tokens t \
         JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = ? AND t.purpose = ? AND t.used_at IS NULL AND t.expires_at > UTC_TIMESTAMP(6)",
    )
    .bind(digest(token))
    .bind(purpose)
    .fetch_optional(conn)
    .await
    .context("read link token")
}

/// Spends a valid token, inside the caller's transaction: the row is locked, so two
/// uses of one link cannot both pass. `None` for an unknown, used or expired token.
pub async fn redeem(
    conn: &mut MySqlConnection,
    token: &str,
    purpose: Purpose,
) -> Result<Option<Redeemed>, AppError> {
    let found: Option<Redeemed> = sqlx::query_as(
        "SELECT t.user_id, t.email, u.username, u.email AS current_email, u.status FROM email_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = ? AND t.purpose = ? AND t.used_at IS NULL AND t.expires_at > UTC_TIMESTAMP(6) \
         FOR UPDATE",
    )
    .bind(digest(token))
    .bind(purpose)
    .fetch_optional(&mut *conn)
    .await
    .context("find link token")?;
    if found.is_some() {
        sqlx::query("UPDATE email_tokens SET used_at = UTC_TIMESTAMP(6) WHERE token_hash = ?")
            .bind(digest(token))
            .execute(&mut *conn)
            .await
            .context("use link token")?;
    }
    Ok(found)
}
