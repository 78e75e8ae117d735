//! Leases: how one writer at a time holds a sale, across every process.
//!
//! An open intent is its sale's lease. It names its holder (`lease_owner`, unique per
//! acquisition) and runs until `lease_until` on the *database's* clock. The holder
//! keeps a local deadline that always falls before that instant whatever the clocks
//! say: it is taken from a monotonic clock *before* the statement that set the lease
//! was sent, minus a margin. A holder starts a MongoDB write only while its deadline
//! leaves a whole write budget, and bounds every write by that budget and by the
//! deadline itself, checked before every step of the write; so by the time
//! anyone else can take the lease over, every write of the old holder has finished or
//! been abandoned (the one timing assumption, docs/dual-write.md).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    /// How long a lease lasts without renewal, on the database's clock.
    pub ttl: Duration,
    /// The longest one MongoDB write may take (its server-side limit and client
    /// timeout); no write starts with less than this left on the lease.
    pub write_budget: Duration,
    /// How long a writer that finds its sale held waits for it before answering busy.
    pub busy_wait: Duration,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            write_budget: Duration::from_secs(10),
            busy_wait: Duration::from_secs(5),
        }
    }
}

impl LeasePolicy {
    pub fn new(ttl: Duration, write_budget: Duration) -> Result<Self, String> {
        let policy = Self {
            ttl,
            write_budget,
            busy_wait: (ttl / 6).clamp(Duration::from_millis(500), Duration::from_secs(5)),
        };
        if write_budget.is_zero() || ttl < 2 * write_budget + policy.margin() {
            return Err(format!(
                "the lease ({} s) must last more than twice the write budget ({} s): a writer renews it when less than one budget is left",
                ttl.as_secs_f64(),
                write_budget.as_secs_f64()
            ));
        }
        Ok(policy)
    }

    /// Taken off the local deadline for clock-rate differences and the time between
    /// reading the clock and the database applying the statement.
    pub fn margin(&self) -> Duration {
        (self.ttl / 20).max(Duration::from_millis(100))
    }

    /// MySQL's lock waits are bounded well inside a lease, so a transaction stuck
    /// behind a lock gives up before its holder's lease runs out.
    pub fn lock_wait(&self) -> Duration {
        (self.ttl / 3).clamp(Duration::from_secs(1), Duration::from_secs(50))
    }
}

/// Who acquires a lease: this process, and a random suffix for this acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub ttl: Duration,
}

impl Lease {
    pub fn new(instance: &str, ttl: Duration) -> Self {
        Self {
            owner: format!("{instance}:{:016x}", rand::random::<u64>()),
            ttl,
        }
    }
}

/// This process's name in lease owners: visible in the journal when an operator asks
/// which instance held a sale.
pub fn instance_id() -> String {
    format!("{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// A lease held on one intent, with the local deadline the holder works to.
#[derive(Debug, Clone)]
pub struct Claim {
    pub intent: u64,
    pub lease: Lease,
    deadline: Instant,
}

impl Claim {
    /// `sent` is when the statement that set the lease left this process.
    pub fn new(intent: u64, lease: Lease, sent: Instant, policy: &LeasePolicy) -> Self {
        let deadline = sent + lease.ttl.saturating_sub(policy.margin());
        Self {
            intent,
            lease,
            deadline,
        }
    }

    pub fn owner(&self) -> &str {
        &self.lease.owner
    }

    /// The local instant by which this holder must have stopped writing.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// After a renewal whose statement was sent at `sent`.
    pub fn renewed(&mut self, sent: Instant, policy: &LeasePolicy) {
        self.deadline = sent + self.lease.ttl.saturating_sub(policy.margin());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_budget_must_fit_twice_in_the_lease() {
        assert!(LeasePolicy::new(Duration::from_secs(30), Duration::from_secs(10)).is_ok());
        assert!(LeasePolicy::new(Duration::from_secs(10), Duration::from_secs(5)).is_err());
        assert!(LeasePolicy::new(Duration::from_secs(10), Duration::ZERO).is_err());
    }

    #[test]
    fn the_local_deadline_ends_before_the_lease() {
        let policy = LeasePolicy::default();
        let sent = Instant::now();
        let claim = Claim::new(1, Lease::new("i", policy.ttl), sent, &policy);
        assert!(claim.remaining() < policy.ttl);
        assert!(claim.remaining() >= policy.ttl - policy.margin() - Duration::from_secs(1));
    }

    #[test]
    fn owners_are_unique_per_acquisition() {
        let a = Lease::new("host-1", Duration::from_secs(1));
        let b = Lease::new("host-1", Duration::from_secs(1));
        assert_ne!(a.owner, b.owner);
        assert!(a.owner.len() <= 64);
    }
}
