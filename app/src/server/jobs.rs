//! Jobs that must run in one place at a time across every instance (the sync), and
//! periodic jobs that must run once per interval however many instances tick.
//!
//! Each job has a row in `job_leases`. Taking it is one compare-and-set on the
//! database's clock; every taking increments `token`, the fencing token: a holder that
//! stalled past its lease finds its token outdated at its next write and stops.

use crate::model::AppError;
use crate::server::db::Context;
use sqlx::{MySqlConnection, MySqlPool};
use std::time::Duration;

pub const SALES_SYNC: &str = "sales_sync";
pub const SALES_SYNC_SCHEDULE: &str = "sales_sync_schedule";

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// A job lease this process holds.
#[derive(Debug, Clone)]
pub struct JobLease {
    pub name: &'static str,
    pub owner: String,
    pub token: u64,
    pub ttl: Duration,
}

/// Takes the job's lease if nobody holds it (or its holder's lease ran out).
pub async fn acquire(
    pool: &MySqlPool,
    name: &'static str,
    owner: &str,
    ttl: Duration,
) -> Result<Option<JobLease>, AppError> {
    let taken = sqlx::query(
        "UPDATE job_leases SET owner = ?, token = token + 1, lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
         WHERE name = ? AND (lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6))",
    )
    .bind(owner)
    .bind(micros(ttl))
    .bind(name)
    .execute(pool)
    .await
    .reporting("take job lease")?
    .rows_affected();
    if taken != 1 {
        return Ok(None);
    }
    let token: u64 =
        sqlx::query_scalar("SELECT token FROM job_leases WHERE name = ? AND owner = ?")
            .bind(name)
            .bind(owner)
            .fetch_one(pool)
            .await
            .reporting("take job lease")?;
    Ok(Some(JobLease {
        name,
        owner: owner.to_string(),
        token,
        ttl,
    }))
}

impl JobLease {
    /// Extends the lease; `false` if another holder has taken it.
    pub async fn renew(&self, pool: &MySqlPool) -> Result<bool, AppError> {
        let rows = sqlx::query(
            "UPDATE job_leases SET lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
             WHERE name = ? AND owner = ? AND token = ?",
        )
        .bind(micros(self.ttl))
        .bind(self.name)
        .bind(&self.owner)
        .bind(self.token)
        .execute(pool)
        .await
        .reporting("renew job lease")?
        .rows_affected();
        Ok(rows == 1)
    }

    /// Inside a transaction that writes for the job: locks the lease row and checks
    /// the token is still this holder's, so a newer holder cannot take over until the
    /// transaction ends, and a stale one writes nothing.
    pub async fn still_held(&self, conn: &mut MySqlConnection) -> Result<bool, AppError> {
        let token: Option<u64> =
            sqlx::query_scalar("SELECT token FROM job_leases WHERE name = ? FOR UPDATE")
                .bind(self.name)
                .fetch_optional(&mut *conn)
                .await
                .reporting("check job lease")?;
        Ok(token == Some(self.token))
    }

    pub async fn release(&self, pool: &MySqlPool) -> Result<(), AppError> {
        sqlx::query("UPDATE job_leases SET lease_until = NULL WHERE name = ? AND token = ?")
            .bind(self.name)
            .bind(self.token)
            .execute(pool)
            .await
            .reporting("release job lease")?;
        Ok(())
    }
}

/// Whether someone holds the job's lease now.
pub async fn is_held(pool: &MySqlPool, name: &str) -> Result<bool, AppError> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT COALESCE(lease_until > UTC_TIMESTAMP(6), 0) FROM job_leases WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .reporting("read job lease")?;
    Ok(held == Some(1))
}

/// Claims this interval's turn of a periodic job: true for exactly one caller per
/// `every`, across all instances (the row's `lease_until` is when the next turn is due).
pub async fn claim_turn(pool: &MySqlPool, name: &str, every: Duration) -> Result<bool, AppError> {
    let rows = sqlx::query(
        "UPDATE job_leases SET lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
         WHERE name = ? AND (lease_until IS NULL OR lease_until <= UTC_TIMESTAMP(6))",
    )
    .bind(micros(every))
    .bind(name)
    .execute(pool)
    .await
    .reporting("claim periodic job")?
    .rows_affected();
    Ok(rows == 1)
}
