//! Recovery: open intents whose lease ran out (their writer died, stalled past its
//! lease, or gave up on a failed compensation) are taken over and rolled back.
//!
//! Every instance runs it. Each intent is claimed by one of them at a time (`SKIP
//! LOCKED`, then a compare-and-set on the expired lease, on the database's clock), so
//! two recoverers never work on one intent, and a recoverer never meets a live writer.

use super::lease::Claim;
use super::ports::{Backup, Held, Intent, Op, Primary};
use super::{DualWriter, holds, restored};
use crate::model::{AppError, Sale};
use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Intents rolled back and closed.
    pub resolved: u64,
    /// Roll-backs that failed and wait for a later attempt.
    pub deferred: u64,
}

/// Intents one pass handles at most; the next pass goes on.
const PER_PASS: usize = 200;

const NOTE: &str = "rolled back by recovery";

impl<P: Primary, B: Backup> DualWriter<P, B> {
    /// Rolls back every open intent whose lease has run out and whose retry is due, one
    /// claim at a time. Roll-back is right for every such intent: its writer either told
    /// the caller it was not saved or gave no answer, so removing it loses nothing that
    /// was promised.
    #[tracing::instrument(skip(self))]
    pub async fn recover(&self) -> Result<RecoveryReport, AppError> {
        let mut report = RecoveryReport::default();
        for _ in 0..PER_PASS {
            let lease = self.lease();
            let sent = Instant::now();
            let Some(intent) = self.backup.claim_due(&lease).await? else {
                break;
            };
            let mut claim = Claim::new(intent.id, lease, sent, &self.policy);
            match self.roll_back(&mut claim, &intent).await {
                Ok(Held::Yes) => {
                    tracing::info!(sale_id = %intent.sale_id, intent = intent.id, op = %intent.op, "repaired: intent rolled back");
                    report.resolved += 1;
                }
                Ok(Held::Lost) => {
                    tracing::warn!(sale_id = %intent.sale_id, intent = intent.id, "recovery lost its claim mid-way; the new holder settles it");
                }
                Err(e) => {
                    let wait = Duration::from_secs(2u64.saturating_pow(intent.attempts.min(10)))
                        .min(Duration::from_secs(600));
                    tracing::warn!(sale_id = %intent.sale_id, intent = intent.id, attempts = intent.attempts, error = %e, "repair failed; will retry");
                    if let Err(e) = self.backup.defer(&claim, wait, &e.to_string()).await {
                        tracing::warn!(intent = intent.id, error = %e, "could not defer the repair; its lease expiry brings it back");
                    }
                    report.deferred += 1;
                }
            }
        }
        Ok(report)
    }

    /// Takes over one intent whose lease has run out and rolls it back now (a writer
    /// that found its sale held by a dead writer). Someone else may have been faster.
    pub(super) async fn recover_intent(&self, intent: u64) -> Result<(), AppError> {
        let lease = self.lease();
        let sent = Instant::now();
        let Some(intent) = self.backup.take_over(intent, &lease).await? else {
            return Ok(());
        };
        let mut claim = Claim::new(intent.id, lease, sent, &self.policy);
        self.roll_back(&mut claim, &intent).await.map(|_| ())
    }

    /// Makes MongoDB not hold this intent's edit (undoing it if it landed), then the
    /// backup equal MongoDB, and closes the intent `failed`.
    async fn roll_back(&self, claim: &mut Claim, intent: &Intent) -> Result<Held, AppError> {
        let id = &intent.sale_id;
        let after = intent.after.as_ref();
        let truth: Option<Sale> = match (intent.op, intent.before.as_ref()) {
            (Op::Create, _) => {
                let current = self.primary.get(id).await?;
                if !holds(current.as_ref(), after) {
                    current
                } else if self.keep(claim).await? {
                    self.undo(claim, Op::Create, id, None, after).await?
                } else {
                    return Ok(Held::Lost);
                }
            }
            (Op::Update | Op::Delete, Some(before)) => {
                if !self.keep(claim).await? {
                    return Ok(Held::Lost);
                }
                // Where versions fence writers, move the document past the version the
                // stalled writer expects first: if it was still there, the edit never
                // landed, and now it never can.
                if self.primary.fences().await? {
                    let to = restored(before, after).version;
                    if let Some(moved) = self
                        .bounded(claim.deadline(), self.primary.fence(id, before.version, to))
                        .await?
                    {
                        return self.backup.settle(claim, id, Some(&moved), NOTE).await;
                    }
                }
                let current = self.primary.get(id).await?;
                if !holds(current.as_ref(), after) {
                    current
                } else if self.keep(claim).await? {
                    self.undo(claim, intent.op, id, Some(before), after).await?
                } else {
                    return Ok(Held::Lost);
                }
            }
            // No before-image recorded: its writer never reached MongoDB. A repair
            // never writes MongoDB.
            (Op::Update | Op::Delete | Op::Repair, _) => self.primary.get(id).await?,
        };
        self.backup.settle(claim, id, truth.as_ref(), NOTE).await
    }
}

/// Rolls back open intents with expired leases now and then every `every`, for the
/// life of the process.
pub fn spawn_recovery(writer: super::Writer, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match writer.recover().await {
                Ok(r) if r.resolved + r.deferred > 0 => tracing::info!(
                    resolved = r.resolved,
                    deferred = r.deferred,
                    "recovery pass"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "recovery pass failed; will retry"),
            }
        }
    });
}
