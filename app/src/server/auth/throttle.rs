//! Login throttling per account and per client address: after `max_failures` failed
//! logins within the window, each further attempt must wait an exponentially growing
//! delay after the latest failure. A throttled attempt never reaches the password check.

use crate::model::AppError;
use crate::server::db::mysql_error;
use chrono::{NaiveDateTime, Utc};
use sqlx::MySqlPool;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub base_delay: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            base_delay: Duration::from_secs(30),
        }
    }
}

impl ThrottlePolicy {
    /// The wait after the latest failure, given the failures inside the window.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures < self.max_failures {
            return Duration::ZERO;
        }
        let doublings = (failures - self.max_failures).min(20);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.window)
    }
}

/// Seconds until the next attempt is allowed, if it is throttled now.
#[tracing::instrument(skip(pool, policy))]
pub async fn retry_after(
    pool: &MySqlPool,
    policy: &ThrottlePolicy,
    username_key: &str,
    ip: &str,
) -> Result<Option<u64>, AppError> {
    let since = (Utc::now() - policy.window).naive_utc();
    let (user_n, user_last, ip_n, ip_last): (
        i64,
        Option<NaiveDateTime>,
        i64,
        Option<NaiveDateTime>,
    ) = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM login_failures WHERE username_key = ? AND at > ?), \
           (SELECT MAX(at) FROM login_failures WHERE username_key = ? AND at > ?), \
           (SELECT COUNT(*) FROM login_failures WHERE ip = ? AND at > ?), \
           (SELECT MAX(at) FROM login_failures WHERE ip = ? AND at > ?)",
    )
    .bind(username_key)
    .bind(since)
    .bind(username_key)
    .bind(since)
    .bind(ip)
    .bind(since)
    .bind(ip)
    .bind(since)
    .fetch_one(pool)
    .await
    .map_err(|e| mysql_error("read login failures", e))?;

    let now = Utc::now().naive_utc();
    let wait = [(user_n, user_last), (ip_n, ip_last)]
        .into_iter()
        .filter_map(|(n, last)| {
            let until = last? + policy.delay(u32::try_from(n).unwrap_or(u32::MAX));
            (until > now).then(|| (until - now).num_milliseconds())
        })
        .max();
    Ok(wait.map(|ms| (ms as u64).div_ceil(1000).max(1)))
}

/// Records a failure and returns how many the account now has inside the window.
#[tracing::instrument(skip(pool, policy))]
pub async fn record_failure(
    pool: &MySqlPool,
    policy: &ThrottlePolicy,
    username_key: &str,
    ip: &str,
) -> Result<u32, AppError> {
    let now = Utc::now().naive_utc();
    let since = (Utc::now() - policy.window).naive_utc();
    sqlx::query("DELETE FROM login_failures WHERE at < ?")
        .bind(since)
        .execute(pool)
        .await
        .map_err(|e| mysql_error("prune login failures", e))?;
    sqlx::query("INSERT INTO login_failures (at, username_key, ip) VALUES (?, ?, ?)")
        .bind(now)
        .bind(username_key)
        .bind(ip)
        .execute(pool)
        .await
        .map_err(|e| mysql_error("record login failure", e))?;
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE username_key = ? AND at > ?")
            .bind(username_key)
            .bind(since)
            .fetch_one(pool)
            .await
            .map_err(|e| mysql_error("count login failures", e))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// A successful login clears the account's failures (not the address's: one valid
/// account must not reset a password-spraying address).
pub async fn clear(pool: &MySqlPool, username_key: &str) -> Result<(), AppError> {
    sqlx::query("DELETE FROM login_failures WHERE username_key = ?")
        .bind(username_key)
        .execute(pool)
        .await
        .map_err(|e| mysql_error("clear login failures", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_threshold_and_is_capped() {
        let p = ThrottlePolicy::default();
        assert_eq!(p.delay(4), Duration::ZERO);
        assert_eq!(p.delay(5), Duration::from_secs(30));
        assert_eq!(p.delay(6), Duration::from_secs(60));
        assert_eq!(p.delay(7), Duration::from_secs(120));
        assert_eq!(p.delay(12), Duration::from_secs(15 * 60));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(15 * 60));
    }
}
