//! Login throttling that holds under parallel requests and cannot be turned against an
//! account's owner.
//!
//! Every attempt reserves its failure *before* the password is checked: a hit on a
//! counter, decided under the counter's row lock (`limits::hit`), so 40 parallel wrong
//! guesses count as 40 and at most `max_failures` of them reach the password check.
//! A login that succeeds gives its reservation back. After `max_failures`, each further
//! attempt waits an exponentially growing delay after the latest one.
//!
//! Whose counter an attempt uses depends on the browser (OWASP's device cookies):
//! - a browser that logged in to this account before counts on its own;
//! - any other browser counts on the account's counter for strangers, and on its client
//!   address's counter, which allows many more failures, so one person's mistakes or
//!   one attacker's guesses do not lock out everyone behind the same office or NAT.
//!
//! So a stranger who keeps guessing throttles strangers only; the owner's browser goes on.

use crate::model::AppError;
use crate::server::limits::{self, Counter, Limit, Refused, Reserved};
use sqlx::MySqlPool;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures per account (for strangers) and per trusted browser.
    pub max_failures: u32,
    /// Failures per client address (untrusted browsers).
    pub client_max_failures: u32,
    /// Login requests per client address and minute, failed or not: each costs a
    /// password hash.
    pub requests_per_minute: u32,
    pub window: Duration,
    pub base_delay: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            client_max_failures: 50,
            requests_per_minute: 60,
            window: Duration::from_secs(15 * 60),
            base_delay: Duration::from_secs(30),
        }
    }
}

impl ThrottlePolicy {
    fn limit(&self, max: u32) -> Limit {
        Limit {
            max,
            window: self.window,
            base_delay: self.base_delay,
        }
    }
}

/// Who is trying, as far as throttling is concerned.
pub enum Source<'a> {
    /// A browser whose device cookie belongs to the account.
    Trusted {
        device: &'a str,
    },
    Untrusted {
        account: &'a str,
        client: &'a str,
    },
}

/// What refused an attempt, for the audit log.
pub struct Throttled {
    pub refused: Refused,
    pub key: String,
}

/// Reserves one attempt's failure: the reservations to hand back if the password is
/// right, or how long to wait.
pub async fn reserve(
    pool: &MySqlPool,
    policy: &ThrottlePolicy,
    source: Source<'_>,
) -> Result<Result<Vec<Reserved>, Throttled>, AppError> {
    let limit = policy.limit(policy.max_failures);
    match source {
        Source::Trusted { device } => Ok(limits::hit(pool, Counter::LoginDevice, device, limit)
            .await?
            .map(|r| vec![r])
            .map_err(|refused| Throttled {
                refused,
                key: format!("browser {}", &device[..12.min(device.len())]),
            })),
        Source::Untrusted { account, client } => {
            let by_account = match limits::hit(pool, Counter::LoginAccount, account, limit).await? {
                Ok(r) => r,
                Err(refused) => {
                    return Ok(Err(Throttled {
                        refused,
                        key: format!("account {account}"),
                    }));
                }
            };
            let client_limit = policy.limit(policy.client_max_failures);
            match limits::hit(pool, Counter::LoginClient, client, client_limit).await? {
                Ok(by_client) => Ok(Ok(vec![by_account, by_client])),
                Err(refused) => {
                    limits::release(pool, &by_account).await?;
                    Ok(Err(Throttled {
                        refused,
                        key: format!("address {client}"),
                    }))
                }
            }
        }
    }
}

/// The attempt succeeded: its reservations were not failures.
pub async fn release(pool: &MySqlPool, reservations: &[Reserved]) -> Result<(), AppError> {
    for r in reservations {
        limits::release(pool, r).await?;
    }
    Ok(())
}
