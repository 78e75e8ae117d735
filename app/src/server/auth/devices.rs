//! Trusted browsers (OWASP's "device cookies"): a browser that logged in to an account
//! gets a long-lived random cookie. Its login attempts for that account are counted on
//! their own, so a stranger guessing the account's password, who throttles every other
//! browser, cannot lock out its owner.

use super::tokens::{digest, random_hex};
use crate::model::AppError;
use crate::server::db::Context;
use sqlx::MySqlPool;

/// How long a browser stays trusted without logging in again.
pub const LIFETIME_DAYS: i64 = 180;

pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portal_device"
    } else {
        "portal_device"
    }
}

/// The device token in the request's cookies, if any.
pub fn read(headers: &http::HeaderMap, secure: bool) -> Option<String> {
    let name = cookie_name(secure);
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value that makes this browser trusted: HttpOnly, SameSite=Strict
/// (it is only ever read by a login posted from this site), Secure with the `__Host-`
/// prefix over HTTPS.
pub fn set_cookie(token: &str, secure: bool) -> String {
    let name = cookie_name(secure);
    let max_age = LIFETIME_DAYS * 24 * 3600;
    let flag = if secure { "; Secure" } else { "" };
    format!("{name}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{flag}")
}

/// The browser's key for counting, if its cookie belongs to the account named by
/// `username_key` and is still within its lifetime.
pub async fn trusted_for(
    pool: &MySqlPool,
    token: Option<&str>,
    username_key: &str,
) -> Result<Option<String>, AppError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM trusted_devices d JOIN users u ON u.id = d.user_id \
         WHERE d.token_hash = ? AND u.username_key = ? AND d.last_used_at > UTC_TIMESTAMP(6) - INTERVAL ? DAY",
    )
    .bind(digest(token))
    .bind(username_key)
    .bind(LIFETIME_DAYS)
    .fetch_optional(pool)
    .await
    .context("check trusted browser")?;
    Ok(found.map(|_| hex::encode(digest(token))))
}

/// Trusts this browser for the user from now on: keeps its token if it already was
/// trusted for them, otherwise issues a new one. Returns the token for the cookie.
pub async fn remember(
    pool: &MySqlPool,
    user_id: u64,
    current: Option<&str>,
) -> Result<String, AppError> {
    if let Some(token) = current {
        let kept = sqlx::query(
            "UPDATE trusted_devices SET last_used_at = UTC_TIMESTAMP(6) WHERE token_hash = ? AND user_id = ?",
        )
        .bind(digest(token))
        .bind(user_id)
        .execute(pool)
        .await
        .context("refresh trusted browser")?
        .rows_affected();
        if kept == 1 {
            return Ok(token.to_string());
        }
    }
    let token = random_hex(32);
    sqlx::query(
        "INSERT INTO trusted_devices (token_hash, user_id, created_at, last_used_at) \
         VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .bind(digest(&token))
    .bind(user_id)
    .execute(pool)
    .await
    .context("trust browser")?;
    Ok(token)
}

/// Forgets browsers unused for longer than their lifetime (the hourly clean-up).
pub async fn prune(pool: &MySqlPool) -> Result<u64, AppError> {
    Ok(sqlx::query(
        "DELETE FROM trusted_devices WHERE last_used_at < UTC_TIMESTAMP(6) - INTERVAL ? DAY",
    )
    .bind(LIFETIME_DAYS)
    .execute(pool)
    .await
    .context("prune trusted browsers")?
    .rows_affected())
}
