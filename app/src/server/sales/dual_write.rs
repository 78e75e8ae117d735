//! The only code path that changes sales: every create, update and delete from the
//! UI, the CLI and the tests goes through `DualWriter`.
//!
//! Protocol (docs/dual-write.md has the failure table):
//! 1. record an intent in MySQL (operation, sale id, before- and after-image, `pending`);
//! 2. apply the change to MongoDB, conditioned on the version the caller saw; MongoDB
//!    returns the document it replaced, which confirms the before-image (taken from
//!    the backup's copy when that is settled, since a FerretDB read costs a full scan);
//! 3. in one MySQL transaction, apply the change to the backup tables and mark the
//!    intent `done`.
//!
//! If step 2 fails the intent becomes `failed` and nothing changed. If step 3 fails,
//! MongoDB is restored from the before-image, but only while the document is still at
//! the version this edit wrote, so another writer's later change is never undone. If
//! that compensation fails too, the intent stays unfinished (`needs_repair`) and the
//! recovery worker rolls it back with backoff. Unfinished intents left by a crash are
//! rolled back the same way: an edit is acknowledged only after step 3, so rolling
//! back never loses an acknowledged edit.

use super::codec::{MoneyEncoding, object_id, sale_to_document};
use super::{backup, primary};
use crate::model::{AppError, IntentCounts, Sale, SaleDraft, SaleId, Store};
use crate::server::db::{is_unique_violation, mongo_error, mysql_error};
use bson::doc;
use chrono::Utc;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Result<Op, AppError> {
        match s {
            "create" => Ok(Op::Create),
            "update" => Ok(Op::Update),
            "delete" => Ok(Op::Delete),
            _ => Err(AppError::Internal),
        }
    }
}

/// A client-chosen token that makes a retried submission apply once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if (8..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            Ok(Self(s.to_string()))
        } else {
            Err("The form's submission token is invalid; reload the page".into())
        }
    }
}

/// The primary store, as the protocol needs it. Tests wrap it to inject failures.
pub trait Primary: Send + Sync + 'static {
    fn get(&self, id: &SaleId) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
    /// Inserts; succeeds without change if the same id already holds this version.
    fn insert(&self, sale: &Sale) -> impl Future<Output = Result<(), AppError>> + Send;
    /// Replaces the document and returns what it held before; `None` if nothing
    /// matched. MongoDB matches `{_id, version: expected}`; FerretDB matches `_id`
    /// alone (see `primary::Flavor`), so callers compare the returned version.
    fn swap(
        &self,
        sale: &Sale,
        expected: u64,
    ) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
    /// Deletes the document and returns it; `None` if nothing matched. Same filter
    /// as `swap`.
    fn take(
        &self,
        id: &SaleId,
        expected: u64,
    ) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
}

/// An intent as recorded in `sale_intents`.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: u64,
    pub op: Op,
    pub sale_id: SaleId,
    pub before: Option<Sale>,
    pub after: Option<Sale>,
    pub state: String,
    pub attempts: u32,
}

pub enum Begun {
    New(u64),
    /// The idempotency key was used before: this is what happened then.
    Replay(Box<Intent>),
}

/// The MySQL side: the intent journal and the backup tables.
pub trait Backup: Send + Sync + 'static {
    /// The backup's copy of the sale, when it can stand in for MongoDB's as the
    /// before-image: readable, and no unfinished intent on this sale. `None` sends
    /// the writer to MongoDB.
    fn copy(&self, id: &SaleId) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
    /// True when a later intent exists for the same sale.
    fn superseded(&self, intent: &Intent) -> impl Future<Output = Result<bool, AppError>> + Send;
    /// Records what MongoDB really held as the intent's before-image.
    fn rebase(
        &self,
        intent: u64,
        before: &Sale,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
    fn begin(
        &self,
        key: Option<&IdempotencyKey>,
        op: Op,
        id: &SaleId,
        before: Option<&Sale>,
        after: Option<&Sale>,
    ) -> impl Future<Output = Result<Begun, AppError>> + Send;
    /// Applies the change to the backup tables and marks the intent done, atomically.
    fn commit(
        &self,
        intent: u64,
        id: &SaleId,
        after: Option<&Sale>,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
    fn set_state(
        &self,
        intent: u64,
        state: &'static str,
        error: &str,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
    /// Unfinished intents due for recovery, oldest first.
    fn unfinished(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Intent>, AppError>> + Send;
    fn load(&self, intent: u64) -> impl Future<Output = Result<Option<Intent>, AppError>> + Send;
    /// Makes the backup row equal `truth` and marks the intent failed, atomically.
    fn resolve(
        &self,
        intent: u64,
        id: &SaleId,
        truth: Option<&Sale>,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
    fn defer(
        &self,
        intent: u64,
        attempts: u32,
        wait: Duration,
        error: &str,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
}

const LOCK_STRIPES: usize = 256;

/// Writes to one sale are serialized (FerretDB's updates are read-modify-write);
/// different sales mostly land on different stripes and proceed in parallel.
struct SaleLocks(Vec<tokio::sync::Mutex<()>>);

impl SaleLocks {
    fn new() -> Self {
        Self(
            (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        )
    }

    fn stripe(id: &SaleId) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        (h.finish() as usize) % LOCK_STRIPES
    }

    async fn lock(&self, id: &SaleId) -> tokio::sync::MutexGuard<'_, ()> {
        self.0[Self::stripe(id)].lock().await
    }

    /// Every stripe these ids fall on, taken in ascending order: everyone else holds
    /// one stripe at a time, so this cannot deadlock.
    async fn lock_many(&self, ids: &[SaleId]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ids.iter().map(Self::stripe).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.0[s].lock().await);
        }
        guards
    }
}

pub struct DualWriter<P, B> {
    primary: P,
    backup: B,
    locks: Arc<SaleLocks>,
}

impl<P: Clone, B: Clone> Clone for DualWriter<P, B> {
    fn clone(&self) -> Self {
        Self {
            primary: self.primary.clone(),
            backup: self.backup.clone(),
            locks: self.locks.clone(),
        }
    }
}

/// An edit past step 1: its intent and the images compensation works from.
struct Edit<'a> {
    intent: u64,
    op: Op,
    id: &'a SaleId,
    before: Option<Sale>,
    after: Option<&'a Sale>,
}

pub const CONFLICT: &str =
    "This sale was changed by someone else. Reload it to see the latest version.";

fn not_saved(repair_pending: bool) -> AppError {
    AppError::NotSaved { repair_pending }
}

impl<P: Primary, B: Backup> DualWriter<P, B> {
    pub fn new(primary: P, backup: B) -> Self {
        Self {
            primary,
            backup,
            locks: Arc::new(SaleLocks::new()),
        }
    }

    pub fn primary(&self) -> &P {
        &self.primary
    }

    pub fn backup(&self) -> &B {
        &self.backup
    }

    /// Holds off every edit of these sales while the caller repairs them.
    pub async fn lock_sales(&self, ids: &[SaleId]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        self.locks.lock_many(ids).await
    }

    /// What an earlier submission with the same key did, as this call's answer.
    fn replay(intent: Intent, op: Op) -> Result<Option<Sale>, AppError> {
        if intent.op != op {
            return Err(AppError::Conflict(
                "This submission token was already used for another change.".into(),
            ));
        }
        match intent.state.as_str() {
            "done" => Ok(intent.after),
            "failed" => Err(not_saved(false)),
            _ => Err(not_saved(true)),
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
        let _guard = self.locks.lock(&id).await;
        let intent = match self
            .backup
            .begin(key, Op::Create, &id, None, Some(&sale))
            .await?
        {
            Begun::New(intent) => intent,
            Begun::Replay(earlier) => {
                return Self::replay(*earlier, Op::Create)?.ok_or(AppError::Internal);
            }
        };
        if let Err(e) = self.primary.insert(&sale).await {
            self.after_primary_error(intent, &id, Some(&sale), e)
                .await?;
        }
        self.finish(&Edit {
            intent,
            op: Op::Create,
            id: &id,
            before: None,
            after: Some(&sale),
        })
        .await?;
        Ok(sale)
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
        self.change(key, id, expected, Some(after))
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
        self.change(key, id, expected, None).await.map(|_| ())
    }

    /// An update (`after` is the new sale) or a delete (`after` is `None`) of the
    /// version the caller saw: steps 1 to 3 of the protocol. Returns `after`.
    async fn change(
        &self,
        key: Option<&IdempotencyKey>,
        id: &SaleId,
        expected: u64,
        after: Option<Sale>,
    ) -> Result<Option<Sale>, AppError> {
        let op = if after.is_some() {
            Op::Update
        } else {
            Op::Delete
        };
        let _guard = self.locks.lock(id).await;
        let before = self.before_image(id, expected).await?;
        let intent = match self
            .backup
            .begin(key, op, id, Some(&before), after.as_ref())
            .await?
        {
            Begun::New(intent) => intent,
            Begun::Replay(earlier) => return Self::replay(*earlier, op),
        };
        if before.version != expected {
            self.mark(intent, "failed", "stale version").await;
            return Err(AppError::Conflict(CONFLICT.into()));
        }
        let written = match &after {
            Some(after) => self.primary.swap(after, expected).await,
            None => self.primary.take(id, expected).await,
        };
        let replaced = match written {
            Ok(replaced) => replaced,
            Err(e) => {
                self.after_primary_error(intent, id, after.as_ref(), e)
                    .await?;
                Some(before.clone())
            }
        };
        let mut edit = Edit {
            intent,
            op,
            id,
            before: Some(before),
            after: after.as_ref(),
        };
        self.confirm(&mut edit, expected, replaced).await?;
        self.finish(&edit).await?;
        Ok(after)
    }

    /// The before-image of an edit of the version the caller saw. Reading MongoDB by
    /// `_id` costs as much as the write itself on FerretDB (a full scan, see
    /// `primary::Flavor`), so the backup's copy stands in when it is settled and at the
    /// caller's version: four indexed MySQL reads. MongoDB's reply to the write, which
    /// returns the document it replaced, then confirms it (`confirm`). Otherwise (a
    /// stale caller, a lagging or unsettled backup) MongoDB is read as before.
    async fn before_image(&self, id: &SaleId, expected: u64) -> Result<Sale, AppError> {
        match self.backup.copy(id).await? {
            Some(copy) if copy.version == expected => Ok(copy),
            _ => self.primary.get(id).await?.ok_or(AppError::NotFound),
        }
    }

    /// Checks the document MongoDB replaced or deleted against the before-image the
    /// intent recorded. They differ only when the backup's copy had drifted from
    /// MongoDB: the intent (and `edit`) are then rebased on what MongoDB held, so
    /// compensation and recovery restore that. If MongoDB held another version
    /// (possible on FerretDB, whose writes match `_id` alone), the write is undone and
    /// the caller gets the version conflict.
    async fn confirm(
        &self,
        edit: &mut Edit<'_>,
        expected: u64,
        replaced: Option<Sale>,
    ) -> Result<(), AppError> {
        let (intent, id) = (edit.intent, edit.id);
        let Some(actual) = replaced else {
            self.mark(intent, "failed", "stale version").await;
            // Nothing matched: the sale is gone, or MongoDB's filter saw another version.
            return Err(match self.primary.get(id).await? {
                None => AppError::NotFound,
                Some(_) => AppError::Conflict(CONFLICT.into()),
            });
        };
        if holds(Some(&actual), edit.before.as_ref()) {
            return Ok(());
        }
        tracing::warn!(sale_id = %id, intent, mongo_version = actual.version, backup_version = ?edit.before.as_ref().map(|b| b.version), "the backup's copy differed from MongoDB; the edit's before-image is MongoDB's");
        let rebased = self.backup.rebase(intent, &actual).await;
        let stale = actual.version != expected;
        edit.before = Some(actual);
        if let Err(e) = rebased {
            return Err(self.compensate(edit, &e).await);
        }
        if !stale {
            return Ok(());
        }
        let undone = self
            .undo(edit.op, id, edit.before.as_ref(), edit.after)
            .await;
        Err(match undone {
            Ok(()) => {
                self.mark(intent, "failed", "stale version").await;
                AppError::Conflict(CONFLICT.into())
            }
            Err(undo) => {
                tracing::error!(sale_id = %id, intent, error = %undo, "undoing a stale write failed; intent needs repair");
                self.mark(intent, "needs_repair", "stale write and its undo failed")
                    .await;
                not_saved(true)
            }
        })
    }

    /// A failed MongoDB write may still have been applied (the connection can drop
    /// after the server acted), so the error alone does not say what happened. Reading
    /// the document back does: `Ok` means the write landed and the protocol goes on.
    /// If MongoDB cannot be read either, the intent stays pending and recovery rolls
    /// it back once MongoDB answers. When MongoDB is simply unreachable, the caller is
    /// told so (rather than about a repair it need not care about): whatever may have
    /// landed is undone by then, so trying again later is the right advice.
    async fn after_primary_error(
        &self,
        intent: u64,
        id: &SaleId,
        after: Option<&Sale>,
        error: AppError,
    ) -> Result<(), AppError> {
        match self.primary.get(id).await {
            Ok(current) if holds(current.as_ref(), after) => {
                tracing::warn!(sale_id = %id, intent, error = %error, "MongoDB reported an error but applied the write");
                Ok(())
            }
            Ok(_) => {
                self.mark_failed(intent, &error).await;
                Err(error)
            }
            Err(unreadable) => {
                tracing::warn!(sale_id = %id, intent, error = %error, read_error = %unreadable, "MongoDB write outcome unknown; recovery will roll it back");
                let down = AppError::Unavailable(Store::MongoDb);
                Err(if error == down && unreadable == down {
                    down
                } else {
                    not_saved(true)
                })
            }
        }
    }

    /// Step 3, and compensation when it fails. A failed commit is tried once more:
    /// a deadlock with a concurrent sync or rollup rebuild rolls the transaction back
    /// whole, so it can simply run again.
    async fn finish(&self, edit: &Edit<'_>) -> Result<(), AppError> {
        let Edit {
            intent, id, after, ..
        } = *edit;
        let Err(first) = self.backup.commit(intent, id, after).await else {
            return Ok(());
        };
        if self.landed(edit, &first).await? {
            return Ok(());
        }
        tracing::warn!(sale_id = %id, intent, error = %first, "backup commit failed; retrying once");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Err(second) = self.backup.commit(intent, id, after).await else {
            return Ok(());
        };
        if self.landed(edit, &second).await? {
            return Ok(());
        }
        Err(self.compensate(edit, &second).await)
    }

    /// Whether a commit that reported `error` landed anyway (its reply was lost). The
    /// intent is marked done in the same transaction, so its state tells; a locking
    /// read waits for a transaction the server is still finishing. If MySQL cannot be
    /// read, compensating could undo an edit it did commit: recovery decides once
    /// MySQL answers (done stays done, pending rolls back).
    async fn landed(&self, edit: &Edit<'_>, error: &AppError) -> Result<bool, AppError> {
        let (intent, id) = (edit.intent, edit.id);
        match self.backup.load(intent).await {
            Ok(Some(i)) if i.state == "done" => {
                tracing::warn!(sale_id = %id, intent, error = %error, "backup commit reported an error but landed");
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(unreadable) => {
                tracing::warn!(sale_id = %id, intent, error = %error, read_error = %unreadable, "backup commit outcome unknown; left to recovery");
                Err(AppError::Unconfirmed)
            }
        }
    }

    /// The backup side failed after MongoDB took the edit: restore MongoDB from the
    /// before-image and return the error the caller gets.
    async fn compensate(&self, edit: &Edit<'_>, cause: &AppError) -> AppError {
        let (intent, id) = (edit.intent, edit.id);
        tracing::warn!(sale_id = %id, intent, error = %cause, op = edit.op.as_str(), "backup write failed; compensating in MongoDB");
        match self
            .undo(edit.op, id, edit.before.as_ref(), edit.after)
            .await
        {
            Ok(()) => {
                tracing::info!(sale_id = %id, intent, "compensated: MongoDB restored from the before-image");
                self.mark(intent, "failed", "backup write failed; compensated")
                    .await;
                not_saved(false)
            }
            Err(undo) => {
                tracing::error!(sale_id = %id, intent, error = %undo, "compensation failed; intent needs repair");
                self.mark(
                    intent,
                    "needs_repair",
                    "backup write and compensation failed",
                )
                .await;
                not_saved(true)
            }
        }
    }

    /// Restores MongoDB from the before-image, only while it still holds our after-image.
    async fn undo(
        &self,
        op: Op,
        id: &SaleId,
        before: Option<&Sale>,
        after: Option<&Sale>,
    ) -> Result<(), AppError> {
        match (op, before, after) {
            (Op::Create, _, Some(after)) => self.primary.take(id, after.version).await.map(|_| ()),
            (Op::Update, Some(before), Some(after)) => {
                self.primary.swap(before, after.version).await.map(|_| ())
            }
            (Op::Delete, Some(before), _) => match self.primary.get(id).await? {
                None => self.primary.insert(before).await,
                // Someone re-created it meanwhile: theirs stands.
                Some(_) => Ok(()),
            },
            _ => Err(AppError::Internal),
        }
    }

    async fn mark_failed(&self, intent: u64, e: &AppError) {
        self.mark(intent, "failed", &e.to_string()).await;
    }

    /// Best effort: if MySQL cannot even record the state, the intent stays pending and
    /// recovery resolves it the same way.
    async fn mark(&self, intent: u64, state: &'static str, error: &str) {
        if let Err(e) = self.backup.set_state(intent, state, error).await {
            tracing::warn!(intent, error = %e, "could not record intent state; recovery will resolve it");
        }
    }

    /// Rolls back every unfinished intent older than `grace` (younger ones may still be
    /// in flight in this process). Idempotent: resolving an intent twice is harmless.
    #[tracing::instrument(skip(self))]
    pub async fn recover(&self, grace: Duration) -> Result<RecoveryReport, AppError> {
        let mut report = RecoveryReport::default();
        for intent in self.backup.unfinished(grace, 200).await? {
            let _guard = self.locks.lock(&intent.sale_id).await;
            // Re-read under the lock: it may have finished meanwhile.
            let Some(intent) = self.backup.load(intent.id).await? else {
                continue;
            };
            if intent.state == "done" || intent.state == "failed" {
                continue;
            }
            match self.roll_back(&intent).await {
                Ok(()) => {
                    tracing::info!(sale_id = %intent.sale_id, intent = intent.id, op = intent.op.as_str(), "repaired: intent rolled back");
                    report.resolved += 1;
                }
                Err(e) => {
                    let attempts = intent.attempts + 1;
                    let wait = Duration::from_secs(2u64.saturating_pow(attempts.min(10)))
                        .min(Duration::from_secs(600));
                    tracing::warn!(sale_id = %intent.sale_id, intent = intent.id, attempts, error = %e, "repair failed; will retry");
                    let _ = self
                        .backup
                        .defer(intent.id, attempts, wait, &e.to_string())
                        .await;
                    report.deferred += 1;
                }
            }
        }
        Ok(report)
    }

    async fn roll_back(&self, intent: &Intent) -> Result<(), AppError> {
        let current = self.primary.get(&intent.sale_id).await?;
        let mut ours = holds(current.as_ref(), intent.after.as_ref());
        // A document this create wrote may since have been seen as existing by a later
        // intent on the same id: a retried create that found it in place, or a rerun
        // of an import that reported it "already present" and backed it up. Deleting
        // it now would remove a sale someone was told exists, so it stays.
        if ours && intent.op == Op::Create && self.backup.superseded(intent).await? {
            tracing::info!(sale_id = %intent.sale_id, intent = intent.id, "created sale kept: a later edit of this sale found it in place");
            ours = false;
        }
        let truth = if ours {
            self.undo(
                intent.op,
                &intent.sale_id,
                intent.before.as_ref(),
                intent.after.as_ref(),
            )
            .await?;
            self.primary.get(&intent.sale_id).await?
        } else {
            current
        };
        self.backup
            .resolve(intent.id, &intent.sale_id, truth.as_ref())
            .await
    }
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

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    pub resolved: u64,
    pub deferred: u64,
}

/// MongoDB as the primary.
#[derive(Clone)]
pub struct MongoPrimary {
    pub db: mongodb::Database,
}

impl Primary for MongoPrimary {
    async fn get(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        Ok(primary::find_by_ids(&self.db, std::slice::from_ref(id))
            .await?
            .pop())
    }

    async fn insert(&self, sale: &Sale) -> Result<(), AppError> {
        let encoding: MoneyEncoding = primary::money_encoding(&self.db).await?;
        match primary::collection(&self.db)
            .insert_one(sale_to_document(sale, encoding))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) if w.code == 11000) => {
                match self.get(&sale.id).await? {
                    Some(existing) if holds(Some(&existing), Some(sale)) => Ok(()),
                    _ => Err(AppError::Conflict(
                        "A sale with this id already exists.".into(),
                    )),
                }
            }
            Err(e) => Err(mongo_error("insert sale", e)),
        }
    }

    async fn swap(&self, sale: &Sale, expected: u64) -> Result<Option<Sale>, AppError> {
        let flavor = primary::flavor(&self.db).await?;
        let replaced = primary::collection(&self.db)
            .find_one_and_replace(
                self.filter(flavor, &sale.id, expected),
                sale_to_document(sale, flavor.money),
            )
            .return_document(mongodb::options::ReturnDocument::Before)
            .await
            .map_err(|e| mongo_error("replace sale", e))?;
        replaced.as_ref().map(primary::decode).transpose()
    }

    async fn take(&self, id: &SaleId, expected: u64) -> Result<Option<Sale>, AppError> {
        let flavor = primary::flavor(&self.db).await?;
        let deleted = primary::collection(&self.db)
            .find_one_and_delete(self.filter(flavor, id, expected))
            .await
            .map_err(|e| mongo_error("delete sale", e))?;
        deleted.as_ref().map(primary::decode).transpose()
    }
}

impl MongoPrimary {
    /// The document at `expected` version: see `primary::Flavor` for why FerretDB gets
    /// `_id` alone (the writer checks the version of what it replaced, under the sale's lock).
    fn filter(&self, flavor: primary::Flavor, id: &SaleId, expected: u64) -> bson::Document {
        if flavor.version_in_filter {
            doc! { "_id": object_id(id), "version": expected as i64 }
        } else {
            doc! { "_id": object_id(id) }
        }
    }
}

/// MySQL as the journal and backup.
#[derive(Clone)]
pub struct MySqlBackup {
    pub pool: sqlx::MySqlPool,
    pub changes: backup::Changes,
}

impl MySqlBackup {
    pub fn new(pool: sqlx::MySqlPool) -> Self {
        Self {
            pool,
            changes: backup::Changes::default(),
        }
    }
}

fn image(sale: Option<&Sale>) -> Option<String> {
    sale.map(|s| serde_json::to_string(s).expect("a sale serializes"))
}

fn parse_image(text: Option<String>) -> Result<Option<Sale>, AppError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            tracing::error!(error = %e, "unreadable intent image");
            AppError::Internal
        })
    })
    .transpose()
}

type IntentRow = (
    u64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    u32,
);

fn to_intent(
    (id, op, sale_id, before, after, state, attempts): IntentRow,
) -> Result<Intent, AppError> {
    Ok(Intent {
        id,
        op: Op::parse(&op)?,
        sale_id: SaleId::parse(&sale_id).map_err(|_| AppError::Internal)?,
        before: parse_image(before)?,
        after: parse_image(after)?,
        state,
        attempts,
    })
}

const INTENT_COLUMNS: &str = "id, op, sale_id, before_image, after_image, state, attempts";

impl Backup for MySqlBackup {
    async fn copy(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| mysql_error("read backup copy", e))?;
        let unsettled: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sale_intents \
             WHERE sale_id = ? AND state IN ('pending', 'needs_repair'))",
        )
        .bind(id.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| mysql_error("read backup copy", e))?;
        if unsettled != 0 {
            return Ok(None);
        }
        Ok(backup::load_rows(&mut conn, std::slice::from_ref(id))
            .await?
            .pop()
            .and_then(|row| row.sale.ok()))
    }

    async fn superseded(&self, intent: &Intent) -> Result<bool, AppError> {
        let later: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sale_intents WHERE sale_id = ? AND id > ?)",
        )
        .bind(intent.sale_id.as_str())
        .bind(intent.id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| mysql_error("look for later intents", e))?;
        Ok(later != 0)
    }

    async fn rebase(&self, intent: u64, before: &Sale) -> Result<(), AppError> {
        sqlx::query(
            "UPDATE sale_intents SET before_image = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
        )
        .bind(image(Some(before)))
        .bind(intent)
        .execute(&self.pool)
        .await
        .map_err(|e| mysql_error("rebase intent", e))?;
        Ok(())
    }

    async fn begin(
        &self,
        key: Option<&IdempotencyKey>,
        op: Op,
        id: &SaleId,
        before: Option<&Sale>,
        after: Option<&Sale>,
    ) -> Result<Begun, AppError> {
        let insert = || {
            sqlx::query(
                "INSERT INTO sale_intents (idempotency_key, op, sale_id, before_image, after_image, state, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, 'pending', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
            )
            .bind(key.map(|k| k.0.as_str()))
            .bind(op.as_str())
            .bind(id.as_str())
            .bind(image(before))
            .bind(image(after))
            .execute(&self.pool)
        };
        let mut released = false;
        loop {
            let e = match insert().await {
                Ok(done) => return Ok(Begun::New(done.last_insert_id())),
                Err(e) => e,
            };
            let Some(key) = key.filter(|_| is_unique_violation(&e)) else {
                return Err(mysql_error("record intent", e));
            };
            let row: Option<IntentRow> = sqlx::query_as(&format!(
                "SELECT {INTENT_COLUMNS} FROM sale_intents WHERE idempotency_key = ?"
            ))
            .bind(&key.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| mysql_error("load intent", e))?;
            let earlier = row.map(to_intent).transpose()?.ok_or(AppError::Internal)?;
            // The key guards against applying one submission twice. A failed attempt
            // applied nothing, so the same submission may try again ("please try
            // again" must work without reloading the form): the failed intent gives
            // its key up. Pending and done ones still answer for it.
            if earlier.state == "failed" && !released {
                sqlx::query(
                    "UPDATE sale_intents SET idempotency_key = NULL WHERE id = ? AND state = 'failed'",
                )
                .bind(earlier.id)
                .execute(&self.pool)
                .await
                .map_err(|e| mysql_error("release submission key", e))?;
                released = true;
                continue;
            }
            if earlier.sale_id != *id && earlier.op != Op::Create {
                return Err(AppError::Conflict(
                    "This submission token was already used for another sale.".into(),
                ));
            }
            return Ok(Begun::Replay(Box::new(earlier)));
        }
    }

    async fn commit(&self, intent: u64, id: &SaleId, after: Option<&Sale>) -> Result<(), AppError> {
        self.apply_and_close(intent, id, after, "done", None).await
    }

    async fn set_state(
        &self,
        intent: u64,
        state: &'static str,
        error: &str,
    ) -> Result<(), AppError> {
        sqlx::query("UPDATE sale_intents SET state = ?, error = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = ?")
            .bind(state)
            .bind(error.chars().take(255).collect::<String>())
            .bind(intent)
            .execute(&self.pool)
            .await
            .map_err(|e| mysql_error("set intent state", e))?;
        Ok(())
    }

    async fn unfinished(&self, older_than: Duration, limit: u32) -> Result<Vec<Intent>, AppError> {
        let cutoff =
            Utc::now().naive_utc() - chrono::Duration::from_std(older_than).unwrap_or_default();
        let rows: Vec<IntentRow> = sqlx::query_as(&format!(
            "SELECT {INTENT_COLUMNS} FROM sale_intents \
             WHERE state IN ('pending', 'needs_repair') AND (state = 'needs_repair' OR created_at <= ?) \
             AND (next_attempt_at IS NULL OR next_attempt_at <= UTC_TIMESTAMP(6)) ORDER BY id LIMIT ?"
        ))
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| mysql_error("list unfinished intents", e))?;
        rows.into_iter().map(to_intent).collect()
    }

    /// A locking read: if a transaction that closes this intent is still in flight
    /// on the server (its client gone), this waits for its outcome.
    async fn load(&self, intent: u64) -> Result<Option<Intent>, AppError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| mysql_error("load intent", e))?;
        let row: Option<IntentRow> = sqlx::query_as(&format!(
            "SELECT {INTENT_COLUMNS} FROM sale_intents WHERE id = ? FOR UPDATE"
        ))
        .bind(intent)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| mysql_error("load intent", e))?;
        tx.commit()
            .await
            .map_err(|e| mysql_error("load intent", e))?;
        row.map(to_intent).transpose()
    }

    async fn resolve(
        &self,
        intent: u64,
        id: &SaleId,
        truth: Option<&Sale>,
    ) -> Result<(), AppError> {
        self.apply_and_close(intent, id, truth, "failed", Some("rolled back by recovery"))
            .await
    }

    async fn defer(
        &self,
        intent: u64,
        attempts: u32,
        wait: Duration,
        error: &str,
    ) -> Result<(), AppError> {
        let next = Utc::now().naive_utc() + chrono::Duration::from_std(wait).unwrap_or_default();
        sqlx::query("UPDATE sale_intents SET attempts = ?, next_attempt_at = ?, error = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = ?")
            .bind(attempts)
            .bind(next)
            .bind(error.chars().take(255).collect::<String>())
            .bind(intent)
            .execute(&self.pool)
            .await
            .map_err(|e| mysql_error("defer intent", e))?;
        Ok(())
    }
}

impl MySqlBackup {
    /// In one transaction: make the backup rows hold `sale` (or nothing) and close the intent.
    async fn apply_and_close(
        &self,
        intent: u64,
        id: &SaleId,
        sale: Option<&Sale>,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), AppError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| mysql_error("begin backup write", e))?;
        match sale {
            Some(sale) => backup::replace(&mut tx, std::slice::from_ref(sale)).await?,
            None => {
                backup::delete(&mut tx, std::slice::from_ref(id)).await?;
            }
        }
        sqlx::query("UPDATE sale_intents SET state = ?, error = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = ?")
            .bind(state)
            .bind(error)
            .bind(intent)
            .execute(&mut *tx)
            .await
            .map_err(|e| mysql_error("close intent", e))?;
        tx.commit()
            .await
            .map_err(|e| mysql_error("commit backup write", e))?;
        self.changes.committed();
        Ok(())
    }
}

/// The production writer over the app's two stores.
pub type Writer = DualWriter<MongoPrimary, MySqlBackup>;

impl Writer {
    /// The importer's create: the same protocol for a batch of new sales, with one
    /// intent per sale written in bulk (one statement per step instead of three per
    /// sale). Sales whose id MongoDB already has are left alone and their intents fail
    /// as "already present"; if the backup lacks one of them, it is filled from MongoDB.
    /// An unfinished batch (crash, failed compensation) is rolled back sale by sale by
    /// recovery, like any other create. Returns (inserted, skipped).
    #[tracing::instrument(skip_all, fields(n = sales.len()))]
    pub async fn import_batch(&self, sales: &[Sale]) -> Result<(u64, u64), AppError> {
        use std::collections::HashSet;
        if sales.is_empty() {
            return Ok((0, 0));
        }
        let ids: Vec<SaleId> = sales.iter().map(|s| s.id.clone()).collect();
        let _held = self.lock_sales(&ids).await;
        let pool = &self.backup.pool;
        let mongo = &self.primary.db;
        let batch = {
            use rand::RngCore;
            let mut bytes = [0u8; 8];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            hex::encode(bytes)
        };
        let keys = format!("import-{batch}-%");

        // 1. The intents, in one statement.
        for (n, chunk) in sales.chunks(500).enumerate() {
            let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
                "INSERT INTO sale_intents (idempotency_key, op, sale_id, after_image, state, created_at, updated_at) ",
            );
            q.push_values(chunk.iter().enumerate(), |mut row, (i, s)| {
                row.push_bind(format!("import-{batch}-{}", n * 500 + i))
                    .push("'create'")
                    .push_bind(s.id.as_str())
                    .push_bind(image(Some(s)))
                    .push("'pending'")
                    .push("UTC_TIMESTAMP(6)")
                    .push("UTC_TIMESTAMP(6)");
            });
            q.build()
                .execute(pool)
                .await
                .map_err(|e| mysql_error("record import intents", e))?;
        }

        // 2. MongoDB. An error leaves the intents pending: which documents landed is
        // unknown, and recovery settles each one.
        let skipped: HashSet<SaleId> = primary::insert_new(mongo, sales).await?;
        let inserted: Vec<Sale> = sales
            .iter()
            .filter(|s| !skipped.contains(&s.id))
            .cloned()
            .collect();
        let inserted_ids: Vec<SaleId> = inserted.iter().map(|s| s.id.clone()).collect();

        // 3. The backup rows and the intents' outcome, in one transaction.
        let backup_write = async {
            let mut tx = pool
                .begin()
                .await
                .map_err(|e| mysql_error("begin import batch", e))?;
            let skipped_ids: Vec<SaleId> = skipped.iter().cloned().collect();
            let present: HashSet<SaleId> = backup::existing(&mut tx, &skipped_ids)
                .await?
                .into_iter()
                .collect();
            let missing: Vec<SaleId> = skipped_ids
                .iter()
                .filter(|id| !present.contains(*id))
                .cloned()
                .collect();
            let mut rows = inserted.clone();
            if !missing.is_empty() {
                rows.extend(primary::find_by_ids(mongo, &missing).await?);
            }
            backup::replace(&mut tx, &rows).await?;
            sqlx::query(
                "UPDATE sale_intents SET state = 'done', updated_at = UTC_TIMESTAMP(6) WHERE idempotency_key LIKE ?",
            )
            .bind(&keys)
            .execute(&mut *tx)
            .await
            .map_err(|e| mysql_error("close import intents", e))?;
            for chunk in skipped_ids.chunks(1000) {
                let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
                    "UPDATE sale_intents SET state = 'failed', error = 'already present' WHERE idempotency_key LIKE ",
                );
                q.push_bind(&keys).push(" AND sale_id IN (");
                super::backup::finish_in_list(&mut q, chunk);
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| mysql_error("close import intents", e))?;
            }
            tx.commit()
                .await
                .map_err(|e| mysql_error("commit import batch", e))?;
            self.backup.changes.committed();
            Ok(())
        }
        .await;

        if let Err(e) = backup_write {
            tracing::warn!(sales = inserted_ids.len(), error = %e, "import batch: backup write failed; removing it from MongoDB");
            let (state, note) = match primary::delete_ids(mongo, &inserted_ids).await {
                Ok(_) => ("failed", "backup write failed; compensated"),
                Err(undo) => {
                    tracing::error!(error = %undo, ids = ?inserted_ids, "import batch: compensation failed; recovery will roll these sales back");
                    ("needs_repair", "backup write and compensation failed")
                }
            };
            // Best effort: if MySQL cannot record it, the intents stay pending and
            // recovery resolves them the same way.
            let _ = sqlx::query(
                "UPDATE sale_intents SET state = ?, error = ?, updated_at = UTC_TIMESTAMP(6) \
                 WHERE idempotency_key LIKE ? AND state = 'pending'",
            )
            .bind(state)
            .bind(note)
            .bind(&keys)
            .execute(pool)
            .await;
            return Err(e);
        }
        Ok((inserted.len() as u64, skipped.len() as u64))
    }
}

pub fn writer(mysql: sqlx::MySqlPool, mongo: mongodb::Database) -> Writer {
    DualWriter::new(MongoPrimary { db: mongo }, MySqlBackup::new(mysql))
}

/// Counts for health and the replication panel.
pub async fn intent_counts(pool: &sqlx::MySqlPool) -> Result<IntentCounts, AppError> {
    let (pending, needs_repair, failed): (i64, i64, i64) = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM sale_intents WHERE state = 'pending'), \
           (SELECT COUNT(*) FROM sale_intents WHERE state = 'needs_repair'), \
           (SELECT COUNT(*) FROM sale_intents WHERE state = 'failed' AND updated_at > UTC_TIMESTAMP(6) - INTERVAL 1 DAY)",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| mysql_error("count intents", e))?;
    Ok(IntentCounts {
        pending: pending as u64,
        needs_repair: needs_repair as u64,
        failed_24h: failed as u64,
    })
}

/// Resolves unfinished intents now and then every `every`, for the life of the process.
/// Only intents older than `grace` are touched: younger ones may still be in flight.
pub fn spawn_recovery(writer: Writer, every: Duration, grace: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match writer.recover(grace).await {
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
