//! The only code path that changes sales: every create, update and delete from the
//! UI, the CLI, the importer and the tests goes through `DualWriter`, and so does every
//! roll-back. docs/dual-write.md has the protocol, the failure table and the deployment
//! guide; in short, for one edit:
//!
//! 1. **Claim.** One MySQL statement records the intent (operation, sale, after-image,
//!    `pending`) and, through a unique key on the open intent of each sale, takes the
//!    sale's lease: until the lease ends (closed, or expired on the database's clock),
//!    no other writer in any process can start on this sale. The before-image is read
//!    under the lease (the backup's copy is settled then) and recorded.
//! 2. **Primary.** MongoDB is changed, conditioned on the version the caller saw, in a
//!    write bounded by the write budget. Its reply, the document it replaced, confirms
//!    the before-image.
//! 3. **Backup.** In one MySQL transaction that first checks the lease is still this
//!    writer's: the backup tables take the after-image and the intent becomes `done`.
//!    Only then is the edit acknowledged.
//!
//! When step 3 fails, MongoDB is restored from the before-image (compensation); when the
//! writer dies or stalls, recovery takes the expired lease over and rolls the edit back
//! the same way. A writer that lost its lease never acknowledges and never compensates.
//! A restore writes a *new* version, so version numbers never repeat and a write that
//! names an old version can never land on a newer document.

mod batch;
mod journal;
mod lease;
mod mongo;
mod ports;
mod recovery;

pub use journal::{MySqlBackup, by_holder, intent_counts};
pub use lease::{Claim, Lease, LeasePolicy, instance_id};
pub use mongo::MongoPrimary;
pub use ports::{
    ActorKind, Author, Backup, Begun, Held, Holder, IdempotencyKey, Intent, IntentState, NewIntent,
    Op, Primary,
};
pub use recovery::{RecoveryReport, spawn_recovery};

use crate::model::{AppError, Database, Sale, SaleDraft, SaleId};
use chrono::Utc;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct DualWriter<P, B> {
    primary: P,
    backup: B,
    policy: LeasePolicy,
    /// This process, as lease owners name it.
    instance: Arc<str>,
    /// Whom the journal names for this writer's changes.
    author: Author,
}

impl<P: Clone, B: Clone> Clone for DualWriter<P, B> {
    fn clone(&self) -> Self {
        Self {
            primary: self.primary.clone(),
            backup: self.backup.clone(),
            policy: self.policy,
            instance: self.instance.clone(),
            author: self.author,
        }
    }
}

pub const CONFLICT: &str =
    "This sale was changed by someone else. Reload it to see the latest version.";
pub const BUSY: &str = "This sale is being saved by someone else right now. Reload it in a moment to see their change.";
pub const STILL_SAVING: &str = "This form was already submitted and is still being saved. Reload in a moment to see the result.";

fn not_saved(repair_pending: bool) -> AppError {
    AppError::NotSaved { repair_pending }
}

/// An edit past step 1: its claim and the images compensation works from.
struct Edit<'a> {
    claim: Claim,
    op: Op,
    id: &'a SaleId,
    before: Option<Sale>,
    after: Option<&'a Sale>,
    /// When the MongoDB write was issued: a write that failed on the way may still land
    /// until one write budget has passed.
    issued: Instant,
}

/// What trying to claim a sale came to.
enum Claimed {
    /// The sale is this writer's. If the same submission failed before (and changed
    /// nothing), its before-image: what the submitter saw.
    Yours(Claim, Option<Sale>),
    /// The submission key answered for an earlier, settled intent.
    Answered(Result<Option<Sale>, AppError>),
}

/// True when MongoDB's current document is exactly this edit's after-image (or, for a
/// delete, is gone).
fn holds(current: Option<&Sale>, after: Option<&Sale>) -> bool {
    match (current, after) {
        (Some(c), Some(a)) => c.version == a.version && c.draft == a.draft,
        (None, None) => true,
        _ => false,
    }
}

/// The before-image as a restore writes it: same content, a version above any this
/// edit used (`before + 1` is the edit's own, or a delete's).
fn restored(before: &Sale, after: Option<&Sale>) -> Sale {
    let version = (before.version + 1).max(after.map_or(0, |a| a.version)) + 1;
    Sale {
        version,
        updated_at: Utc::now(),
        ..before.clone()
    }
}

impl<P: Primary, B: Backup> DualWriter<P, B> {
    pub fn new(primary: P, backup: B, policy: LeasePolicy) -> Self {
        Self {
            primary,
            backup,
            policy,
            instance: instance_id().into(),
            author: Author::System,
        }
    }

    /// The same writer, journaling its changes as made by `author`.
    pub fn by(&self, author: Author) -> Self
    where
        P: Clone,
        B: Clone,
    {
        Self {
            author,
            ..self.clone()
        }
    }

    pub fn primary(&self) -> &P {
        &self.primary
    }

    /// A sale as the primary (the truth) holds it now: what an edit starts from, so
    /// the version the form carries is the one `update` and `delete` check.
    pub async fn current(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        self.primary.get(id).await
    }

    pub fn backup(&self) -> &B {
        &self.backup
    }

    pub fn policy(&self) -> &LeasePolicy {
        &self.policy
    }

    /// A fresh lease for one acquisition by this process.
    pub fn lease(&self) -> Lease {
        Lease::new(&self.instance, self.policy.ttl)
    }

    /// Runs a MongoDB call within the write budget and the lease's local deadline, whichever
    /// ends first; running out counts as MongoDB being unavailable (the outcome is then
    /// read back). The deadline is checked before the call is polled, every time: a
    /// process paused past its lease (SIGSTOP, a frozen VM) wakes with the deadline
    /// gone and drops the call before it reaches the socket, instead of sending a write
    /// that recovery has already settled without it.
    async fn bounded<T>(
        &self,
        lease_deadline: Instant,
        call: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        let deadline = (Instant::now() + self.policy.write_budget).min(lease_deadline);
        let mut call = std::pin::pin!(call);
        let checked = std::future::poll_fn(|cx| {
            if Instant::now() >= deadline {
                return std::task::Poll::Ready(Err(AppError::Unavailable(Database::MongoDb)));
            }
            call.as_mut().poll(cx)
        });
        tokio::time::timeout_at(deadline.into(), checked)
            .await
            .unwrap_or(Err(AppError::Unavailable(Database::MongoDb)))
    }

    /// Makes sure a whole write budget is left on the claim before a MongoDB write,
    /// renewing the lease if not. `false`: the lease was taken over; write nothing.
    async fn keep(&self, claim: &mut Claim) -> Result<bool, AppError> {
        if claim.remaining() >= self.policy.write_budget {
            return Ok(true);
        }
        let sent = Instant::now();
        match self.backup.renew(claim).await? {
            Held::Yes => {
                claim.renewed(sent, &self.policy);
                Ok(true)
            }
            Held::Lost => Ok(false),
        }
    }

    /// Best effort: if MySQL cannot record the state, the intent stays open and
    /// recovery settles it once the lease runs out.
    async fn close(&self, claim: &Claim, state: IntentState, note: &str) {
        match self.backup.close(claim, state, note).await {
            Ok(Held::Yes) => {}
            Ok(Held::Lost) => {
                tracing::warn!(
                    intent = claim.intent,
                    "intent taken over before it was closed"
                )
            }
            Err(e) => {
                tracing::warn!(intent = claim.intent, error = %e, "could not record intent state; recovery will settle it")
            }
        }
    }

    pub async fn create(
        &self,
        key: Option<&IdempotencyKey>,
        draft: SaleDraft,
    ) -> Result<Sale, AppError> {
        let id = super::codec::sale_id(&bson::oid::ObjectId::new());
        self.create_with_id(key, id, draft).await
    }

    #[tracing::instrument(skip_all, fields(sale_id = %id))]
    pub async fn create_with_id(
        &self,
        key: Option<&IdempotencyKey>,
        id: SaleId,
        draft: SaleDraft,
    ) -> Result<Sale, AppError> {
        let sale = Sale {
            id: id.clone(),
            version: 1,
            updated_at: Utc::now(),
            draft,
        };
        self.edit(key, Op::Create, &id, 0, Some(sale))
            .await?
            .ok_or(AppError::Internal)
    }

    #[tracing::instrument(skip_all, fields(sale_id = %id, expected))]
    pub async fn update(
        &self,
        key: Option<&IdempotencyKey>,
        id: &SaleId,
        expected: u64,
        draft: SaleDraft,
    ) -> Result<Sale, AppError> {
        let after = Sale {
            id: id.clone(),
            version: expected + 1,
            updated_at: Utc::now(),
            draft,
        };
        self.edit(key, Op::Update, id, expected, Some(after))
            .await?
            .ok_or(AppError::Internal)
    }

    #[tracing::instrument(skip_all, fields(sale_id = %id, expected))]
    pub async fn delete(
        &self,
        key: Option<&IdempotencyKey>,
        id: &SaleId,
        expected: u64,
    ) -> Result<(), AppError> {
        self.edit(key, Op::Delete, id, expected, None)
            .await
            .map(|_| ())
    }

    /// Steps 1 to 3 for one edit; returns what was saved. `expected` is the version the
    /// caller saw (unused for a create).
    async fn edit(
        &self,
        key: Option<&IdempotencyKey>,
        op: Op,
        id: &SaleId,
        expected: u64,
        after: Option<Sale>,
    ) -> Result<Option<Sale>, AppError> {
        let (mut claim, retry_of) = match self.claim(key, op, id, after.as_ref()).await? {
            Claimed::Yours(claim, retry_of) => (claim, retry_of),
            Claimed::Answered(answer) => return answer,
        };
        let (before, after) = match op {
            Op::Create => (None, after),
            _ => {
                let before = self
                    .before_image(&claim, id, expected, retry_of.as_ref())
                    .await?;
                let after = after.map(|a| Sale {
                    version: before.version + 1,
                    ..a
                });
                match self
                    .backup
                    .record_images(&claim, &before, after.as_ref())
                    .await?
                {
                    Held::Yes => (Some(before), after),
                    Held::Lost => return Err(not_saved(false)),
                }
            }
        };
        let expected = before.as_ref().map_or(0, |b| b.version);
        if !self.keep(&mut claim).await? {
            return Err(not_saved(false));
        }
        let issued = Instant::now();
        let written = match (op, after.as_ref()) {
            (Op::Create, Some(sale)) => self
                .bounded(claim.deadline(), self.primary.insert(sale))
                .await
                .map(|()| None),
            (Op::Update, Some(sale)) => {
                self.bounded(claim.deadline(), self.primary.swap(sale, expected))
                    .await
            }
            (Op::Delete, None) => {
                self.bounded(claim.deadline(), self.primary.take(id, expected))
                    .await
            }
            _ => Err(AppError::Internal),
        };
        let mut edit = Edit {
            claim,
            op,
            id,
            before,
            after: after.as_ref(),
            issued,
        };
        let replaced = match written {
            Ok(replaced) => replaced,
            Err(e) => {
                self.after_primary_error(&edit, e).await?;
                edit.before.clone()
            }
        };
        if op != Op::Create {
            self.confirm(&mut edit, expected, replaced).await?;
        }
        self.finish(&mut edit).await?;
        Ok(after)
    }

    /// Step 1: journals the intent and takes the sale's lease. A sale held by another
    /// live writer is waited for (bounded), a sale whose holder's lease ran out is
    /// rolled back here and claimed, and a submission key that was used before answers
    /// with what that submission did, once it has settled.
    async fn claim(
        &self,
        key: Option<&IdempotencyKey>,
        op: Op,
        id: &SaleId,
        after: Option<&Sale>,
    ) -> Result<Claimed, AppError> {
        let give_up = Instant::now() + self.policy.busy_wait;
        let mut pause = Duration::from_millis(10);
        let mut retry_of = None;
        let new = NewIntent {
            key,
            op,
            sale_id: id,
            after,
            author: self.author,
        };
        loop {
            let lease = self.lease();
            let sent = Instant::now();
            let (other, same_submission) = match self.backup.begin(&new, &lease).await? {
                Begun::Claimed(intent) => {
                    let claim = Claim::new(intent, lease, sent, &self.policy);
                    return Ok(Claimed::Yours(claim, retry_of.flatten()));
                }
                // A failed attempt changed nothing, so the same submission may run again
                // ("please try again" must work without reloading the form).
                Begun::Keyed(earlier)
                    if earlier.state == IntentState::Failed && retry_of.is_none() =>
                {
                    self.backup.release_key(earlier.id).await?;
                    let same = earlier.op == op && earlier.sale_id == *id;
                    retry_of = Some(earlier.before.filter(|_| same));
                    continue;
                }
                Begun::Keyed(earlier) if !earlier.state.is_open() => {
                    return Ok(Claimed::Answered(replay(earlier, op, id)));
                }
                Begun::Keyed(open) => (open, true),
                Begun::Busy(open) => (open, false),
            };
            if other.expired {
                tracing::info!(sale_id = %id, intent = other.id, "the sale's previous writer is gone; rolling its edit back first");
                self.recover_intent(other.id).await?;
                continue;
            }
            if Instant::now() >= give_up {
                return Err(AppError::Conflict(
                    if same_submission { STILL_SAVING } else { BUSY }.into(),
                ));
            }
            let jitter = Duration::from_millis(rand::random::<u64>() % 10);
            tokio::time::sleep(pause + jitter).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The before-image of an update or delete, read under the lease. Reading MongoDB
    /// by `_id` costs as much as the write itself on FerretDB (a full scan), so the
    /// backup's copy stands in when it is at the caller's version: it is settled while
    /// this writer holds the sale. MongoDB's reply to the write then confirms it
    /// (`confirm`). Otherwise MongoDB is read. A refusal closes the intent.
    ///
    /// `retry_of` is what the submitter saw when this same submission failed before.
    /// Undoing that attempt gave the sale a new version with the same content; the
    /// retry still applies to what the submitter saw.
    async fn before_image(
        &self,
        claim: &Claim,
        id: &SaleId,
        expected: u64,
        retry_of: Option<&Sale>,
    ) -> Result<Sale, AppError> {
        let seen = |s: &Sale| {
            s.version == expected
                || retry_of.is_some_and(|r| r.version == expected && r.draft == s.draft)
        };
        let found = match self.backup.copy(id).await {
            Ok(Some(copy)) if seen(&copy) => Ok(Some(copy)),
            Ok(_) => self.primary.get(id).await,
            Err(e) => Err(e),
        };
        let refusal = match found {
            Ok(Some(before)) if seen(&before) => return Ok(before),
            Ok(Some(_)) => AppError::Conflict(CONFLICT.into()),
            Ok(None) => AppError::NotFound,
            Err(e) => e,
        };
        let note = match &refusal {
            AppError::Conflict(_) => "stale version".to_string(),
            other => other.to_string(),
        };
        self.close(claim, IntentState::Failed, &note).await;
        Err(refusal)
    }

    /// Checks the document MongoDB replaced or deleted against the recorded
    /// before-image. They differ only when the backup's copy had drifted from MongoDB
    /// (something wrote a store behind the writer's back): the intent is then rebased
    /// on what MongoDB held, so compensation and recovery restore that. If MongoDB held
    /// another version (possible where writes match `_id` alone), the write is undone
    /// and the caller gets the version conflict.
    async fn confirm(
        &self,
        edit: &mut Edit<'_>,
        expected: u64,
        replaced: Option<Sale>,
    ) -> Result<(), AppError> {
        let id = edit.id;
        let Some(actual) = replaced else {
            // Nothing matched: the sale is gone, or at another version. MongoDB is unchanged.
            let answer = match self.primary.get(id).await? {
                None => AppError::NotFound,
                Some(_) => AppError::Conflict(CONFLICT.into()),
            };
            self.close(&edit.claim, IntentState::Failed, "stale version")
                .await;
            return Err(answer);
        };
        if holds(Some(&actual), edit.before.as_ref()) {
            return Ok(());
        }
        tracing::warn!(sale_id = %id, intent = edit.claim.intent, mongo_version = actual.version, backup_version = ?edit.before.as_ref().map(|b| b.version), "the backup's copy differed from MongoDB; the edit's before-image is MongoDB's");
        let rebased = self
            .backup
            .record_images(&edit.claim, &actual, edit.after)
            .await;
        let stale = actual.version != expected;
        edit.before = Some(actual);
        match rebased {
            Ok(Held::Yes) => {}
            Ok(Held::Lost) => return Err(not_saved(true)),
            Err(e) => return Err(self.compensate(edit, &e).await),
        }
        if !stale {
            return Ok(());
        }
        Err(self
            .put_back(edit, AppError::Conflict(CONFLICT.into()), "stale version")
            .await)
    }

    /// A failed MongoDB write may still have been applied (the connection can drop
    /// after the server acted), so the error alone does not say what happened. Reading
    /// the document back does: `Ok` means the write landed and the protocol goes on.
    /// A write that failed on the way may still land later: where versions fence
    /// writers, the document is first moved past the version it expects, so it never
    /// can; elsewhere "not there" is believed only once the write's budget has passed.
    /// If MongoDB cannot be read, the intent stays open and recovery rolls it back once
    /// the lease has run out.
    async fn after_primary_error(&self, edit: &Edit<'_>, error: AppError) -> Result<(), AppError> {
        let landed = match self.primary.get(edit.id).await {
            Ok(current) => holds(current.as_ref(), edit.after),
            Err(unreadable) => return Err(left_open(edit, error, unreadable)),
        };
        if !landed && matches!(error, AppError::Unavailable(_)) {
            let fence = match (self.primary.fences().await, edit.before.as_ref()) {
                (Ok(true), Some(before)) => Some(
                    self.bounded(
                        edit.claim.deadline(),
                        self.primary.fence(
                            edit.id,
                            before.version,
                            restored(before, edit.after).version,
                        ),
                    )
                    .await,
                ),
                _ => None,
            };
            match fence {
                Some(Ok(Some(moved))) => {
                    // It never landed and now never can: the backup takes the new version.
                    if let Err(e) = self
                        .backup
                        .settle(&edit.claim, edit.id, Some(&moved), &error.to_string())
                        .await
                    {
                        tracing::warn!(intent = edit.claim.intent, error = %e, "could not settle the fenced intent; recovery will");
                    }
                    return Err(error);
                }
                Some(Ok(None)) => {}
                Some(Err(e)) => return Err(left_open(edit, error, e)),
                None => {
                    tokio::time::sleep_until((edit.issued + self.policy.write_budget).into()).await
                }
            }
            match self.primary.get(edit.id).await {
                Ok(current) if holds(current.as_ref(), edit.after) => {}
                Ok(_) => {
                    self.close(&edit.claim, IntentState::Failed, &error.to_string())
                        .await;
                    return Err(error);
                }
                Err(unreadable) => return Err(left_open(edit, error, unreadable)),
            }
        } else if !landed {
            self.close(&edit.claim, IntentState::Failed, &error.to_string())
                .await;
            return Err(error);
        }
        tracing::warn!(sale_id = %edit.id, intent = edit.claim.intent, error = %error, "MongoDB reported an error but applied the write");
        Ok(())
    }

    /// Step 3, and compensation when it fails. A failed commit is tried once more: a
    /// deadlock with a concurrent rollup rebuild rolls the transaction back whole, so it
    /// can simply run again.
    async fn finish(&self, edit: &mut Edit<'_>) -> Result<(), AppError> {
        let mut retried = false;
        loop {
            let error = match self.backup.commit(&edit.claim, edit.id, edit.after).await {
                Ok(Held::Yes) => return Ok(()),
                Ok(Held::Lost) => return Err(self.lost(edit).await),
                Err(e) => e,
            };
            // The commit may have landed with its reply lost: the intent's state tells
            // (a locking read waits for a transaction the server is still finishing).
            match self.backup.holder(edit.claim.intent).await {
                Ok(Some(h)) if h.state == IntentState::Done => {
                    tracing::warn!(sale_id = %edit.id, intent = edit.claim.intent, error = %error, "backup commit reported an error but landed");
                    return Ok(());
                }
                Ok(Some(h))
                    if h.state == IntentState::Pending
                        && h.owner.as_deref() == Some(edit.claim.owner()) => {}
                Ok(_) => return Err(self.lost(edit).await),
                // Compensating now could undo an edit MySQL did commit: recovery decides
                // once MySQL answers (done stays done, pending rolls back).
                Err(unreadable) => {
                    tracing::warn!(sale_id = %edit.id, intent = edit.claim.intent, error = %error, read_error = %unreadable, "backup commit outcome unknown; left to recovery");
                    return Err(AppError::Unconfirmed);
                }
            }
            if retried {
                return Err(self.compensate(edit, &error).await);
            }
            tracing::warn!(sale_id = %edit.id, intent = edit.claim.intent, error = %error, "backup commit failed; retrying once");
            tokio::time::sleep(Duration::from_millis(50)).await;
            retried = true;
        }
    }

    /// The answer when recovery took the edit over: it rolls the edit back (or has).
    async fn lost(&self, edit: &Edit<'_>) -> AppError {
        tracing::warn!(sale_id = %edit.id, intent = edit.claim.intent, "lease lost before the backup commit; recovery rolls the edit back");
        match self.backup.holder(edit.claim.intent).await {
            Ok(Some(h)) if h.state == IntentState::Failed => not_saved(false),
            _ => not_saved(true),
        }
    }

    /// The backup side failed after MongoDB took the edit: restore MongoDB and return
    /// the error the caller gets.
    async fn compensate(&self, edit: &mut Edit<'_>, cause: &AppError) -> AppError {
        tracing::warn!(sale_id = %edit.id, intent = edit.claim.intent, error = %cause, op = %edit.op, "backup write failed; compensating in MongoDB");
        self.put_back(edit, not_saved(false), "backup write failed; compensated")
            .await
    }

    /// Undoes this edit's MongoDB write while the lease allows one more write, then
    /// settles the intent on what MongoDB holds. Returns `answer` if that worked.
    async fn put_back(&self, edit: &mut Edit<'_>, answer: AppError, note: &str) -> AppError {
        match self.keep(&mut edit.claim).await {
            Ok(true) => {}
            // Taken over, or MySQL cannot even renew it: recovery rolls it back.
            Ok(false) | Err(_) => return not_saved(true),
        }
        match self
            .undo(
                &edit.claim,
                edit.op,
                edit.id,
                edit.before.as_ref(),
                edit.after,
            )
            .await
        {
            Ok(truth) => {
                tracing::info!(sale_id = %edit.id, intent = edit.claim.intent, "MongoDB restored from the before-image");
                // If MySQL still fails, the intent stays open and recovery settles it
                // from MongoDB, which no longer holds the edit.
                if let Err(e) = self
                    .backup
                    .settle(&edit.claim, edit.id, truth.as_ref(), note)
                    .await
                {
                    tracing::warn!(intent = edit.claim.intent, error = %e, "could not settle the compensated intent; recovery will");
                }
                answer
            }
            Err(undo) => {
                tracing::error!(sale_id = %edit.id, intent = edit.claim.intent, error = %undo, "undoing the MongoDB write failed; intent needs repair");
                self.close(
                    &edit.claim,
                    IntentState::NeedsRepair,
                    "backup write and compensation failed",
                )
                .await;
                not_saved(true)
            }
        }
    }

    /// Restores MongoDB from the before-image at a new, higher version, only while it
    /// still holds this edit's after-image. Returns what MongoDB holds afterwards.
    async fn undo(
        &self,
        claim: &Claim,
        op: Op,
        id: &SaleId,
        before: Option<&Sale>,
        after: Option<&Sale>,
    ) -> Result<Option<Sale>, AppError> {
        match (op, before, after) {
            (Op::Create, _, Some(after)) => {
                match self
                    .bounded(claim.deadline(), self.primary.take(id, after.version))
                    .await?
                {
                    Some(_) => Ok(None),
                    None => self.primary.get(id).await,
                }
            }
            (Op::Update, Some(before), Some(after)) => {
                let restored = restored(before, Some(after));
                match self
                    .bounded(
                        claim.deadline(),
                        self.primary.swap(&restored, after.version),
                    )
                    .await?
                {
                    Some(_) => Ok(Some(restored)),
                    None => self.primary.get(id).await,
                }
            }
            (Op::Delete, Some(before), None) => {
                let restored = restored(before, None);
                self.bounded(claim.deadline(), self.primary.insert(&restored))
                    .await?;
                Ok(Some(restored))
            }
            _ => Err(AppError::Internal),
        }
    }
}

/// The answer when a MongoDB write's outcome cannot be read: the intent stays open
/// and recovery rolls it back once the lease has run out.
fn left_open(edit: &Edit<'_>, error: AppError, unreadable: AppError) -> AppError {
    tracing::warn!(sale_id = %edit.id, intent = edit.claim.intent, error = %error, read_error = %unreadable, "MongoDB write outcome unknown; recovery will roll it back");
    let down = AppError::Unavailable(Database::MongoDb);
    if error == down && unreadable == down {
        down
    } else {
        not_saved(true)
    }
}

/// What an earlier submission with the same key did, as this call's answer.
fn replay(earlier: Intent, op: Op, id: &SaleId) -> Result<Option<Sale>, AppError> {
    if earlier.op != op {
        return Err(AppError::Conflict(
            "This submission token was already used for another change.".into(),
        ));
    }
    if earlier.sale_id != *id && op != Op::Create {
        return Err(AppError::Conflict(
            "This submission token was already used for another sale.".into(),
        ));
    }
    match earlier.state {
        IntentState::Done => Ok(earlier.after),
        _ => Err(not_saved(false)),
    }
}

/// The production writer over the app's two stores.
pub type Writer = DualWriter<MongoPrimary, MySqlBackup>;

pub fn writer_with(
    mysql: sqlx::MySqlPool,
    mongo: mongodb::Database,
    policy: LeasePolicy,
) -> Writer {
    DualWriter::new(
        MongoPrimary::new(mongo, policy.write_budget),
        MySqlBackup::new(mysql),
        policy,
    )
}

/// A writer with the default lease policy.
pub fn writer(mysql: sqlx::MySqlPool, mongo: mongodb::Database) -> Writer {
    writer_with(mysql, mongo, LeasePolicy::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::sales::generate;

    fn sale(version: u64) -> Sale {
        Sale {
            id: SaleId::parse("5bd761dcae323e45a93ccfe8").unwrap(),
            version,
            updated_at: Utc::now(),
            draft: generate::sales(1).next().unwrap(),
        }
    }

    #[test]
    fn a_restore_never_reuses_a_version() {
        let before = sale(4);
        assert_eq!(restored(&before, Some(&sale(5))).version, 6, "update");
        assert_eq!(restored(&before, None).version, 6, "delete");
        assert_eq!(
            restored(&sale(9), Some(&sale(5))).version,
            11,
            "a newer document put back"
        );
        assert_eq!(restored(&before, None).draft, before.draft);
    }

    #[test]
    fn intent_states_and_ops_round_trip() {
        for s in IntentState::ALL {
            assert_eq!(IntentState::parse(s.as_str()), Ok(s));
        }
        for op in Op::ALL {
            assert_eq!(Op::parse(op.as_str()), Ok(op));
        }
        assert!(IntentState::Pending.is_open() && IntentState::NeedsRepair.is_open());
        assert!(!IntentState::Done.is_open() && !IntentState::Failed.is_open());
    }
}
