//! Limits on what clients can make the server do: counters in MySQL (shared by every
//! instance, decided in one transaction per hit), and a bound on the costly work one
//! process runs at once (password hashing and strength estimates).

use crate::model::AppError;
use crate::server::db::{Context, truncate};
use sqlx::MySqlPool;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What a counter counts, and per what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Failed logins from browsers that never logged in to the account.
    LoginAccount,
    /// Failed logins per client address (untrusted browsers only).
    LoginClient,
    /// Failed logins from one trusted browser (its device cookie).
    LoginDevice,
    /// Requests per client address: every login attempt.
    LoginRequest,
    Register,
    /// Password-reset requests, per client address and per email address.
    ResetRequest,
    ResetAddress,
    /// Verification mails asked for, per account.
    VerifyRequest,
    /// Wrong current passwords given to change a password, per account.
    PasswordChange,
    /// Links from mail (confirmation, reset) tried, per client address.
    LinkAttempt,
    /// Wrong second-factor codes, per account: in 15 minutes, and in a day.
    SecondFactor,
    SecondFactorDay,
    /// Refused requests (403) per user: audited once per window.
    Forbidden,
}

crate::model::string_enum::string_enum!(Counter {
    LoginAccount => "login_account",
    LoginClient => "login_client",
    LoginDevice => "login_device",
    LoginRequest => "login_request",
    Register => "register",
    ResetRequest => "reset_request",
    ResetAddress => "reset_address",
    VerifyRequest => "verify_request",
    PasswordChange => "password_change",
    LinkAttempt => "link_attempt",
    SecondFactor => "second_factor",
    SecondFactorDay => "second_factor_day",
    Forbidden => "forbidden",
});

/// How many hits a counter allows in its window, and how long a client then waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
    /// The wait after the latest hit once `max` is reached; doubles with each hit
    /// after that, capped at the window. Zero: wait until the window ends.
    pub base_delay: Duration,
}

impl Limit {
    pub const fn per_window(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            base_delay: Duration::ZERO,
        }
    }

    /// The wait after the latest hit, given the hits inside the window.
    pub fn delay(&self, hits: u32) -> Duration {
        if hits < self.max {
            return Duration::ZERO;
        }
        if self.base_delay.is_zero() {
            return self.window;
        }
        let doublings = (hits - self.max).min(20);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.window)
    }
}

/// A hit the counter allowed; `release` takes it back (the attempt was not a failure).
#[derive(Debug, Clone)]
pub struct Reserved {
    pub counter: Counter,
    pub subject: String,
    /// Hits inside the window, this one included.
    pub hits: u32,
}

/// A hit the counter refused: how long until the next is allowed, and whether this is
/// the first refusal since the latest allowed hit (to audit a flood once).
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub retry_after: u64,
    pub first: bool,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[derive(sqlx::FromRow)]
struct Row {
    hits: u32,
    /// Time since the latest allowed hit.
    idle_micros: i64,
    expired: bool,
    refused_since_hit: bool,
}

/// Counts one hit, atomically: the row is locked, so parallel hits are decided one
/// after another and 40 at once count as 40. Over the limit, nothing is counted and
/// the answer says how long to wait.
#[tracing::instrument(skip(pool))]
pub async fn hit(
    pool: &MySqlPool,
    counter: Counter,
    subject: &str,
    limit: Limit,
) -> Result<Result<Reserved, Refused>, AppError> {
    let subject = truncate(subject, 128);
    let mut tx = pool.begin().await.context("count request")?;
    sqlx::query(
        "INSERT INTO counters (kind, subject, hits, window_start, last_hit_at, refused_since_hit) \
         VALUES (?, ?, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), FALSE) \
         ON DUPLICATE KEY UPDATE hits = hits",
    )
    .bind(counter)
    .bind(&subject)
    .execute(&mut *tx)
    .await
    .context("count request")?;
    let row: Row = sqlx::query_as(
        "SELECT hits, TIMESTAMPDIFF(MICROSECOND, last_hit_at, UTC_TIMESTAMP(6)) AS idle_micros, \
         window_start < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND AS expired, refused_since_hit \
         FROM counters WHERE kind = ? AND subject = ? FOR UPDATE",
    )
    .bind(micros(limit.window))
    .bind(counter)
    .bind(&subject)
    .fetch_one(&mut *tx)
    .await
    .context("count request")?;
    let hits = if row.expired { 0 } else { row.hits };
    let wait = micros(limit.delay(hits)) - row.idle_micros;
    if hits >= limit.max && wait > 0 {
        sqlx::query("UPDATE counters SET refused_since_hit = TRUE WHERE kind = ? AND subject = ?")
            .bind(counter)
            .bind(&subject)
            .execute(&mut *tx)
            .await
            .context("count request")?;
        tx.commit().await.context("count request")?;
        return Ok(Err(Refused {
            retry_after: (wait as u64).div_ceil(1_000_000).max(1),
            first: !row.refused_since_hit,
        }));
    }
    sqlx::query(
        "UPDATE counters SET hits = ?, last_hit_at = UTC_TIMESTAMP(6), refused_since_hit = FALSE, \
         window_start = IF(?, UTC_TIMESTAMP(6), window_start) WHERE kind = ? AND subject = ?",
    )
    .bind(hits + 1)
    .bind(row.expired)
    .bind(counter)
    .bind(&subject)
    .execute(&mut *tx)
    .await
    .context("count request")?;
    tx.commit().await.context("count request")?;
    Ok(Ok(Reserved {
        counter,
        subject,
        hits: hits + 1,
    }))
}

/// Takes a hit back: the attempt it stood for did not count (a login that succeeded).
pub async fn release(pool: &MySqlPool, reserved: &Reserved) -> Result<(), AppError> {
    sqlx::query("UPDATE counters SET hits = GREATEST(hits, 1) - 1 WHERE kind = ? AND subject = ?")
        .bind(reserved.counter)
        .bind(&reserved.subject)
        .execute(pool)
        .await
        .context("release request count")?;
    Ok(())
}

/// Removes counters whose window ended long ago (the hourly clean-up).
pub async fn prune(pool: &MySqlPool, older_than: Duration) -> Result<u64, AppError> {
    Ok(sqlx::query(
        "DELETE FROM counters WHERE last_hit_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND",
    )
    .bind(micros(older_than))
    .execute(pool)
    .await
    .context("prune counters")?
    .rows_affected())
}

/// Hits a plain rate limit; refusal is `Throttled`.
pub async fn check(
    pool: &MySqlPool,
    counter: Counter,
    subject: &str,
    limit: Limit,
) -> Result<Reserved, AppError> {
    hit(pool, counter, subject, limit)
        .await?
        .map_err(|r| AppError::Throttled(r.retry_after))
}

/// At most this many costly computations run at once in this process (one per core),
/// and at most `QUEUE_PER_SLOT` times as many wait for a slot: beyond that the request
/// is answered "busy" at once instead of queueing without limit.
pub struct CostlyWork {
    slots: tokio::sync::Semaphore,
    total: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// How long a request waits for a slot before it is answered "busy".
    patience: Duration,
}

const QUEUE_PER_SLOT: usize = 8;

impl CostlyWork {
    pub fn new(slots: usize, patience: Duration) -> Self {
        let slots = slots.max(1);
        Self {
            slots: tokio::sync::Semaphore::new(slots),
            total: slots,
            waiting: AtomicUsize::new(0),
            max_waiting: slots * QUEUE_PER_SLOT,
            patience,
        }
    }

    /// A slot for one computation, waited for within the queue's bounds: beyond them,
    /// or after `patience`, the answer is `Busy`.
    pub async fn slot(&self) -> Result<Slot<'_>, AppError> {
        // The queue drains in well under a second (a slot frees every few tens of ms).
        let busy = AppError::Busy(1);
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("costly work queue full; answering busy");
            return Err(busy);
        }
        let permit = tokio::time::timeout(self.patience, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(permit)) => Ok(Slot { _permit: permit }),
            Ok(Err(_)) => Err(AppError::Internal),
            Err(_) => {
                tracing::warn!("no slot for costly work in time; answering busy");
                Err(busy)
            }
        }
    }

    /// Runs `work` on the blocking pool once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        self.slot().await?.run(work).await
    }

    /// Computations running and waiting now.
    pub fn load(&self) -> (usize, usize) {
        (
            self.total - self.slots.available_permits(),
            self.waiting.load(Ordering::Acquire),
        )
    }
}

/// A held slot of `CostlyWork`. Taken before the work's other preparations when those
/// must not outnumber the slots (a login reserves its throttle counts only once it has
/// one, so requests waiting in line hold no reservation).
pub struct Slot<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Slot<'_> {
    /// Runs `work` on the blocking pool, then frees the slot.
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            tracing::error!(error = %e, "costly work task failed");
            AppError::Internal
        })
    }
}

/// The process's bound on password hashing and strength estimates: one slot per core.
pub static COSTLY: LazyLock<CostlyWork> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    CostlyWork::new(cores, Duration::from_secs(5))
});

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn backoff_doubles_after_the_limit_and_is_capped() {
        let l = Limit {
            max: 5,
            window: Duration::from_secs(15 * 60),
            base_delay: Duration::from_secs(30),
        };
        assert_eq!(l.delay(4), Duration::ZERO);
        assert_eq!(l.delay(5), Duration::from_secs(30));
        assert_eq!(l.delay(6), Duration::from_secs(60));
        assert_eq!(l.delay(12), Duration::from_secs(15 * 60));
        assert_eq!(l.delay(u32::MAX), Duration::from_secs(15 * 60));
        let plain = Limit::per_window(3, Duration::from_secs(60));
        assert_eq!(plain.delay(3), Duration::from_secs(60));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn costly_work_never_runs_more_than_its_slots_and_sheds_the_rest() {
        let work = Arc::new(CostlyWork::new(2, Duration::from_secs(5)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (work, running, peak) = (work.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                work.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut done = 0;
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => done += 1,
                Err(AppError::Busy(_)) => busy += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(peak.load(Ordering::SeqCst) <= 2, "at most two at once");
        assert_eq!(done + busy, 64);
        assert!(
            busy >= 64 - 2 - 2 * QUEUE_PER_SLOT,
            "the rest is shed: {busy}"
        );
    }
}
