//! The two stores as the protocol sees them, and the journal's vocabulary.
//!
//! The production adapters are `mongo::MongoPrimary` and `journal::MySqlBackup`; the
//! tests wrap them to inject failures and to pause a writer at a chosen step, so that
//! every interleaving the protocol must survive can be forced.

use super::lease::{Claim, Lease};
use crate::model::{AppError, Sale, SaleId};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

/// What an intent does to its sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Update,
    Delete,
    /// A reconciliation run made the backup equal MongoDB (MongoDB is not written).
    Repair,
}

/// Where an intent stands. `Pending` and `NeedsRepair` are *open*: an open intent is
/// its sale's lease, and a sale has at most one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentState {
    /// Recorded; the outcome is not known yet (in flight, or its writer died).
    Pending,
    /// Both stores hold the edit: it was acknowledged.
    Done,
    /// Neither store holds the edit (or it was rolled back).
    Failed,
    /// MongoDB holds the edit, the backup does not, and undoing it failed too.
    NeedsRepair,
}

crate::model::string_enum::string_enum!(Op {
    Create => "create",
    Update => "update",
    Delete => "delete",
    Repair => "repair",
});

crate::model::string_enum::string_enum!(IntentState {
    Pending => "pending",
    Done => "done",
    Failed => "failed",
    NeedsRepair => "needs_repair",
});

impl IntentState {
    pub fn is_open(self) -> bool {
        matches!(self, IntentState::Pending | IntentState::NeedsRepair)
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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An intent as recorded in `sale_intents`.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: u64,
    pub op: Op,
    pub sale_id: SaleId,
    pub before: Option<Sale>,
    pub after: Option<Sale>,
    pub state: IntentState,
    pub attempts: u32,
    /// Its lease has run out on the database's clock: anyone may take it over.
    pub expired: bool,
}

/// What recording a new intent found.
#[derive(Debug)]
pub enum Begun {
    /// Journaled: this writer now holds the sale.
    Claimed(u64),
    /// The submission key belongs to this earlier intent.
    Keyed(Intent),
    /// Another open intent holds the sale.
    Busy(Intent),
}

/// Whether a compare-and-set on a lease found it still ours. `Lost` means another
/// writer (recovery) took the intent over: the caller must not acknowledge, compensate
/// or write anything more for it.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Yes,
    Lost,
}

/// An intent's state as a locking read sees it, with its lease holder.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Holder {
    pub state: IntentState,
    pub owner: Option<String>,
}

/// The primary store. Every write is bounded in time by the caller (the write budget);
/// the adapter adds a server-side limit where the server honours one.
pub trait Primary: Send + Sync + 'static {
    /// The document as MongoDB holds it now; on a replica set, as a majority has it,
    /// since recovery and confirmation decide on this read.
    fn get(&self, id: &SaleId) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
    /// Inserts; succeeds without change if the id already holds this version and content.
    fn insert(&self, sale: &Sale) -> impl Future<Output = Result<(), AppError>> + Send;
    /// Replaces the document at `expected` and returns what it held before; `None` if
    /// nothing matched. Where conditional writes are not atomic (FerretDB) it matches
    /// `_id` alone, so callers compare the returned version.
    fn swap(
        &self,
        sale: &Sale,
        expected: u64,
    ) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
    /// Deletes the document at `expected` and returns it; same filter as `swap`.
    fn take(
        &self,
        id: &SaleId,
        expected: u64,
    ) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
    /// True where a version-conditioned write is atomic (real MongoDB): versions then
    /// fence stale writers, and `fence` is available.
    fn fences(&self) -> impl Future<Output = Result<bool, AppError>> + Send;
    /// Moves the document from version `expected` to `to` without changing its
    /// content, so that a write still in flight that expects `expected` can no longer
    /// match. Returns the moved document, or `None` if it was not at `expected`.
    fn fence(
        &self,
        id: &SaleId,
        expected: u64,
        to: u64,
    ) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
    /// Inserts new sales, unordered; those whose id exists are left alone and returned.
    fn insert_new(
        &self,
        sales: &[Sale],
    ) -> impl Future<Output = Result<HashSet<SaleId>, AppError>> + Send;
    fn find(&self, ids: &[SaleId]) -> impl Future<Output = Result<Vec<Sale>, AppError>> + Send;
    /// Deletes these sales where they still hold version 1 (created, never edited).
    fn remove_created(&self, ids: &[SaleId]) -> impl Future<Output = Result<u64, AppError>> + Send;
}

/// Who a journaled change is made by, for the sale's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// A signed-in user, by id.
    User(u64),
    /// `server import` and the demo seed.
    Import,
    /// A reconciliation run.
    Sync,
    /// Anything else the system does on its own.
    System,
}

/// `sale_intents.actor_kind`: an `Author` without the user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    User,
    Import,
    Sync,
    System,
}

crate::model::string_enum::string_enum!(ActorKind {
    User => "user",
    Import => "import",
    Sync => "sync",
    System => "system",
});

impl Author {
    pub fn kind(self) -> ActorKind {
        match self {
            Author::User(_) => ActorKind::User,
            Author::Import => ActorKind::Import,
            Author::Sync => ActorKind::Sync,
            Author::System => ActorKind::System,
        }
    }

    pub fn user_id(self) -> Option<u64> {
        match self {
            Author::User(id) => Some(id),
            _ => None,
        }
    }
}

/// A new intent, as step 1 records it.
pub struct NewIntent<'a> {
    pub key: Option<&'a IdempotencyKey>,
    pub op: Op,
    pub sale_id: &'a SaleId,
    pub after: Option<&'a Sale>,
    pub author: Author,
}

/// The MySQL side: the intent journal, whose open intents are the sales' leases, and
/// the backup tables. Every method that changes an intent or the backup for a claim
/// checks, in the same transaction, that the claim still holds the intent.
pub trait Backup: Send + Sync + 'static {
    /// Step 1: journals the intent and takes the sale's lease, in one statement.
    fn begin(
        &self,
        intent: &NewIntent<'_>,
        lease: &Lease,
    ) -> impl Future<Output = Result<Begun, AppError>> + Send;
    /// The backup's copy of the sale. Read under a claim it is settled: no other
    /// writer can be changing it.
    fn copy(&self, id: &SaleId) -> impl Future<Output = Result<Option<Sale>, AppError>> + Send;
    /// Records the images (the before-image read under the claim, and the after-image
    /// numbered from it) before MongoDB is written.
    fn record_images(
        &self,
        claim: &Claim,
        before: &Sale,
        after: Option<&Sale>,
    ) -> impl Future<Output = Result<Held, AppError>> + Send;
    /// Extends the claim's lease by `lease.ttl` from now, on the database's clock.
    fn renew(&self, claim: &Claim) -> impl Future<Output = Result<Held, AppError>> + Send;
    /// Step 3: the backup takes `after` (or loses the sale) and the intent is done.
    fn commit(
        &self,
        claim: &Claim,
        id: &SaleId,
        after: Option<&Sale>,
    ) -> impl Future<Output = Result<Held, AppError>> + Send;
    /// The backup takes `truth` (what MongoDB holds after a roll-back) and the intent
    /// is failed, with `note` as its reason.
    fn settle(
        &self,
        claim: &Claim,
        id: &SaleId,
        truth: Option<&Sale>,
        note: &str,
    ) -> impl Future<Output = Result<Held, AppError>> + Send;
    /// Closes a pending intent as `Failed` (MongoDB was not changed) or marks it
    /// `NeedsRepair` (MongoDB holds the edit and could not be undone).
    fn close(
        &self,
        claim: &Claim,
        state: IntentState,
        note: &str,
    ) -> impl Future<Output = Result<Held, AppError>> + Send;
    /// A locking read of the intent's state: it waits for a transaction that is still
    /// closing it on the server.
    fn holder(&self, intent: u64) -> impl Future<Output = Result<Option<Holder>, AppError>> + Send;
    /// Gives up the submission key of a failed intent (it changed nothing), so the same
    /// submission may run again.
    fn release_key(&self, intent: u64) -> impl Future<Output = Result<(), AppError>> + Send;
    /// Takes over this open intent if its lease has expired.
    fn take_over(
        &self,
        intent: u64,
        lease: &Lease,
    ) -> impl Future<Output = Result<Option<Intent>, AppError>> + Send;
    /// Takes over the oldest open intent whose lease has expired and whose retry is due,
    /// skipping rows another instance is claiming at this moment.
    fn claim_due(
        &self,
        lease: &Lease,
    ) -> impl Future<Output = Result<Option<Intent>, AppError>> + Send;
    /// The open intents of these sales.
    fn open_on(&self, ids: &[SaleId])
    -> impl Future<Output = Result<Vec<Intent>, AppError>> + Send;
    /// Leaves a roll-back that failed for a later attempt, `wait` from now.
    fn defer(
        &self,
        claim: &Claim,
        wait: Duration,
        error: &str,
    ) -> impl Future<Output = Result<Held, AppError>> + Send;

    /// The importer's step 1: one create intent per sale, all under `lease`. Returns
    /// the sales it claimed; the others have an open intent already.
    fn begin_batch(
        &self,
        sales: &[Sale],
        lease: &Lease,
        author: Author,
    ) -> impl Future<Output = Result<Vec<SaleId>, AppError>> + Send;
    /// Extends every open intent of the batch; `Lost` if any was taken over.
    fn renew_batch(
        &self,
        lease: &Lease,
        claimed: usize,
    ) -> impl Future<Output = Result<Held, AppError>> + Send;
    /// Which of these sales the backup has.
    fn present(&self, ids: &[SaleId])
    -> impl Future<Output = Result<Vec<SaleId>, AppError>> + Send;
    /// The importer's step 3: writes `rows`, marks the intents of `skipped` failed
    /// ("already present") and the others done, provided all `claimed` are still held.
    fn commit_batch(
        &self,
        lease: &Lease,
        claimed: usize,
        rows: &[Sale],
        skipped: &[SaleId],
    ) -> impl Future<Output = Result<Held, AppError>> + Send;
    /// Closes the batch's intents that are still pending and held.
    fn close_batch(
        &self,
        lease: &Lease,
        state: IntentState,
        note: &str,
    ) -> impl Future<Output = Result<u64, AppError>> + Send;
}
