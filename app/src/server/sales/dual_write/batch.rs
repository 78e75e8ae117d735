//! The importer's create: the same protocol for a batch of new sales, one statement per
//! step instead of three per sale, through the same store ports as a single edit.
//!
//! 1. one create intent per sale, all under one lease (a sale that already has an open
//!    intent is not claimed: the batch waits for it, or rolls it back if its holder is
//!    gone, and tries again);
//! 2. MongoDB's unordered insert; ids it already has are "already present";
//! 3. one MySQL transaction that checks every lease of the batch is still held, writes
//!    the rows (and those of present sales the backup lacks) and closes the intents.
//!
//! If step 3 fails, the sales this batch inserted are deleted from MongoDB again (where
//! they are still at version 1). An unfinished batch is rolled back sale by sale by
//! recovery, like any create.

use super::lease::Lease;
use super::ports::{Backup, Held, IntentState, Primary};
use super::{DualWriter, not_saved};
use crate::model::{AppError, Sale, SaleId};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Tries at removing a failed batch from MongoDB before it is left to recovery: a
/// MongoDB that timed out under load often answers the next try.
const COMPENSATION_ATTEMPTS: u32 = 3;

/// A lease on every intent of one batch.
struct BatchClaim {
    lease: Lease,
    claimed: usize,
    deadline: Instant,
}

impl<P: Primary, B: Backup> DualWriter<P, B> {
    /// Writes new sales; those MongoDB already has are skipped (and backed up if the
    /// backup lacks them). Returns (inserted, skipped).
    #[tracing::instrument(skip_all, fields(n = sales.len()))]
    pub async fn import_batch(&self, sales: &[Sale]) -> Result<(u64, u64), AppError> {
        // A file may name one id twice: the repeats count as already present.
        let mut seen = HashSet::new();
        let mut pending: Vec<Sale> = sales
            .iter()
            .filter(|s| seen.insert(s.id.clone()))
            .cloned()
            .collect();
        let (mut inserted, mut skipped) = (0, (sales.len() - pending.len()) as u64);
        let give_up = Instant::now() + self.policy.busy_wait;
        loop {
            let (done, busy) = self.import_round(&pending).await?;
            inserted += done.0;
            skipped += done.1;
            if busy.is_empty() {
                return Ok((inserted, skipped));
            }
            if Instant::now() >= give_up {
                return Err(AppError::Conflict(format!(
                    "{} sales of this batch are being saved by someone else right now; run the import again to add them",
                    busy.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            pending = busy;
        }
    }

    /// One attempt at the batch: ((inserted, skipped), the sales someone else holds).
    async fn import_round(&self, sales: &[Sale]) -> Result<((u64, u64), Vec<Sale>), AppError> {
        let lease = self.lease();
        let sent = Instant::now();
        let claimed: HashSet<SaleId> = self
            .backup
            .begin_batch(sales, &lease, self.author)
            .await?
            .into_iter()
            .collect();
        let (mine, busy): (Vec<Sale>, Vec<Sale>) =
            sales.iter().cloned().partition(|s| claimed.contains(&s.id));
        self.take_over_expired(&busy).await?;
        if mine.is_empty() {
            return Ok(((0, 0), busy));
        }
        let mut claim = BatchClaim {
            deadline: sent + lease.ttl.saturating_sub(self.policy.margin()),
            lease,
            claimed: mine.len(),
        };
        if !self.keep_batch(&mut claim).await? {
            return Err(not_saved(false));
        }
        // An error leaves the intents open: which documents landed is unknown, and
        // recovery settles each one once the lease runs out.
        let skipped = self
            .bounded(claim.deadline, self.primary.insert_new(&mine))
            .await?;
        let inserted: Vec<Sale> = mine
            .iter()
            .filter(|s| !skipped.contains(&s.id))
            .cloned()
            .collect();
        let skipped: Vec<SaleId> = skipped.into_iter().collect();
        let committed = async {
            let present: HashSet<SaleId> =
                self.backup.present(&skipped).await?.into_iter().collect();
            let missing: Vec<SaleId> = skipped
                .iter()
                .filter(|id| !present.contains(*id))
                .cloned()
                .collect();
            let mut rows = inserted.clone();
            rows.extend(self.primary.find(&missing).await?);
            self.backup
                .commit_batch(&claim.lease, claim.claimed, &rows, &skipped)
                .await
        }
        .await;
        match committed {
            Ok(Held::Yes) => Ok(((inserted.len() as u64, skipped.len() as u64), busy)),
            // Recovery took some of the batch over and rolls those back: the batch
            // reports failure and compensates nothing (those sales are no longer its).
            Ok(Held::Lost) => Err(not_saved(true)),
            Err(e) => {
                self.compensate_batch(&mut claim, &inserted).await;
                Err(e)
            }
        }
    }

    /// Rolls back the open intents of these sales whose holders are gone.
    async fn take_over_expired(&self, busy: &[Sale]) -> Result<(), AppError> {
        if busy.is_empty() {
            return Ok(());
        }
        let ids: Vec<SaleId> = busy.iter().map(|s| s.id.clone()).collect();
        for intent in self.backup.open_on(&ids).await? {
            if intent.expired {
                self.recover_intent(intent.id).await?;
            }
        }
        Ok(())
    }

    async fn keep_batch(&self, claim: &mut BatchClaim) -> Result<bool, AppError> {
        if claim.deadline.saturating_duration_since(Instant::now()) >= self.policy.write_budget {
            return Ok(true);
        }
        let sent = Instant::now();
        match self.backup.renew_batch(&claim.lease, claim.claimed).await? {
            Held::Yes => {
                claim.deadline = sent + claim.lease.ttl.saturating_sub(self.policy.margin());
                Ok(true)
            }
            Held::Lost => Ok(false),
        }
    }

    /// Deletes what this batch inserted from MongoDB and closes its intents. Best
    /// effort: whatever is left open, recovery settles.
    async fn compensate_batch(&self, claim: &mut BatchClaim, inserted: &[Sale]) {
        tracing::warn!(
            sales = inserted.len(),
            "import batch: backup write failed; removing it from MongoDB"
        );
        let ids: Vec<SaleId> = inserted.iter().map(|s| s.id.clone()).collect();
        let mut undone = false;
        for attempt in 1..=COMPENSATION_ATTEMPTS {
            // Each try within a lease renewed for it: a write of an earlier try that is
            // still on its way must not meet a recoverer.
            if !matches!(self.keep_batch(claim).await, Ok(true)) {
                return;
            }
            match self
                .bounded(claim.deadline, self.primary.remove_created(&ids))
                .await
            {
                Ok(_) => {
                    undone = true;
                    break;
                }
                Err(undo) => {
                    tracing::warn!(attempt, error = %undo, "import batch: compensation failed");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
        let (state, note) = if undone {
            (IntentState::Failed, "backup write failed; compensated")
        } else {
            tracing::error!(
                "import batch: compensation kept failing; recovery will roll these sales back"
            );
            (
                IntentState::NeedsRepair,
                "backup write and compensation failed",
            )
        };
        if let Err(e) = self.backup.close_batch(&claim.lease, state, note).await {
            tracing::warn!(error = %e, "import batch: could not close its intents; recovery will");
        }
    }
}
