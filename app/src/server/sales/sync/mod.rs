//! Reconciliation: makes the MySQL backup equal MongoDB (the truth), in batches.
//!
//! One pass reads MongoDB in natural order (FerretDB sorts and range-filters in memory,
//! so a sorted merge would make it hold the whole collection) and looks each batch up
//! in MySQL by primary key. Sales that are missing or differ (by version, content or
//! stored total) are copied from the scanned documents. A second pass streams MySQL's
//! ids and deletes those MongoDB did not have.
//!
//! Concurrent edits, from any instance: each repair transaction takes the leases of the
//! sales it repairs (it journals a `repair` intent per sale, uncommitted until the
//! repair commits, so an edit of one of them waits for it) and skips any sale whose
//! intent was open or touched since the run started. Every edit journals an intent, so
//! for the others the scanned document is still MongoDB's current one, and no MongoDB
//! read is needed (FerretDB finds a document by `_id` with a table scan, so one lookup
//! per repair would dominate the run). Skipped sales are counted and left for the next
//! run. An extra row is deleted only if it was written before the run started.
//!
//! Memory: one batch of documents, plus 12 bytes per scanned sale for the second pass
//! (1,000,000 sales: 12 MB).
//!
//! Runs never overlap across instances: a run holds the `sales_sync` job lease
//! (`jobs`), renewed while it works; every repair transaction checks the lease's token,
//! so a run that stalled past its lease writes nothing more. A run that dies stays
//! `running` until its lease runs out; it then shows as interrupted, and the next run
//! starts over.

mod runs;

pub use runs::{load, status};

use super::changes::Changes;
use super::codec::document_to_sale;
use super::dual_write::Writer;
use super::{backup, primary};
use crate::model::{AppError, Sale, SaleId, SyncReport, SyncStatus, SyncTrigger};
use crate::server::db::{Context, finish_in_list, mongo_error, truncate};
use crate::server::jobs::{self, JobLease, SALES_SYNC, SALES_SYNC_SCHEDULE};
use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use runs::close_interrupted;
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Documents per batch read from MongoDB and looked up in MySQL.
pub const DEFAULT_BATCH: usize = 1000;
/// Sales repaired per transaction (bounds how long edits of them wait).
const REPAIR_CHUNK: usize = 200;

#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub trigger: SyncTrigger,
    pub started_by: Option<u64>,
    pub batch: usize,
    /// How long to wait for a run in progress to end (0: fail at once). A run killed a
    /// moment ago holds its lease until the lease runs out.
    pub wait_secs: u32,
}

impl SyncOptions {
    pub fn new(trigger: SyncTrigger) -> Self {
        Self {
            dry_run: false,
            trigger,
            started_by: None,
            batch: DEFAULT_BATCH,
            wait_secs: 0,
        }
    }
}

/// A claimed run: it holds the job lease, renewed in the background, until it finishes
/// or is dropped.
pub struct Run {
    writer: Writer,
    lease: JobLease,
    /// Set when a renewal finds the lease taken: the run stops at its next batch.
    lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
    options: SyncOptions,
    report: SyncReport,
}

impl Drop for Run {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

const ALREADY_RUNNING: &str = "A sync is already running. Wait for it to finish.";
const LEASE_LOST: &str = "The sync stalled and another run took over; this one stopped.";

/// How long a run's lease lasts without renewal.
fn job_ttl(writer: &Writer) -> Duration {
    writer.policy().ttl * 2
}

/// Claims the sync and records a new run. Fails with a conflict if one is running.
#[tracing::instrument(skip(writer))]
pub async fn begin(writer: &Writer, options: SyncOptions) -> Result<Run, AppError> {
    let pool = &writer.backup().pool;
    let owner = writer.lease().owner;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(options.wait_secs));
    let lease = loop {
        if let Some(lease) = jobs::acquire(pool, SALES_SYNC, &owner, job_ttl(writer)).await? {
            break lease;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AppError::Conflict(ALREADY_RUNNING.into()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Holding the lease, any row still `running` belongs to a run that died.
    close_interrupted(pool).await?;
    let expected: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales")
        .fetch_one(pool)
        .await
        .reporting("count sales")?;
    let id = sqlx::query(
        "INSERT INTO sync_runs (trigger_kind, started_by, dry_run, status, expected, started_at) \
         VALUES (?, ?, ?, 'running', ?, UTC_TIMESTAMP(6))",
    )
    .bind(options.trigger)
    .bind(options.started_by)
    .bind(options.dry_run)
    .bind(expected)
    .execute(pool)
    .await
    .reporting("record sync run")?
    .last_insert_id();
    let report = load(pool, id).await?.ok_or(AppError::Internal)?;
    let lost = Arc::new(AtomicBool::new(false));
    let heartbeat = spawn_heartbeat(pool.clone(), lease.clone(), lost.clone());
    Ok(Run {
        writer: writer.clone(),
        lease,
        lost,
        heartbeat,
        options,
        report,
    })
}

/// Renews the run's lease three times per term while the run lives.
fn spawn_heartbeat(
    pool: MySqlPool,
    lease: JobLease,
    lost: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(lease.ttl / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match lease.renew(&pool).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("sync lease taken over; this run stops");
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                // MySQL is unreachable: the run's own writes fail too. Keep trying.
                Err(e) => tracing::warn!(error = %e, "could not renew the sync lease"),
            }
        }
    })
}

/// Claims a run and executes it in the background (the Run sync button); the report
/// returned is the run as recorded, and its outcome lands in `sync_runs`, where every
/// instance's panel follows it.
pub async fn start(writer: &Writer, options: SyncOptions) -> Result<SyncReport, AppError> {
    let run = begin(writer, options).await?;
    let report = run.report().clone();
    tokio::spawn(async move {
        // The run logs and stores its own outcome.
        let _ = run.execute().await;
    });
    Ok(report)
}

/// Claims and executes a run in one go (the CLI and the periodic job).
pub async fn run(writer: &Writer, options: SyncOptions) -> Result<SyncReport, AppError> {
    begin(writer, options).await?.execute().await
}

impl Run {
    pub fn report(&self) -> &SyncReport {
        &self.report
    }

    /// Scans, compares and (unless a dry run) repairs; stores and returns the report.
    #[tracing::instrument(skip(self), fields(run = self.report.id, dry_run = self.options.dry_run))]
    pub async fn execute(mut self) -> Result<SyncReport, AppError> {
        let outcome = self.scan().await;
        let pool = self.writer.backup().pool.clone();
        let (status, error) = match &outcome {
            Ok(()) => (SyncStatus::Completed, None),
            Err(e) => {
                tracing::warn!(error = %e, "sync run failed");
                (SyncStatus::Failed, Some(e.to_string()))
            }
        };
        self.report.status = status;
        self.report.error = error;
        let saved = self.save(true).await;
        self.heartbeat.abort();
        if let Err(e) = self.lease.release(&pool).await {
            tracing::warn!(error = %e, "could not release the sync lease; it runs out by itself");
        }
        outcome?;
        saved?;
        let report = load(&pool, self.report.id)
            .await?
            .ok_or(AppError::Internal)?;
        tracing::info!(
            scanned = report.scanned,
            created = report.created,
            updated = report.updated,
            deleted = report.deleted,
            skipped = report.skipped,
            invalid = report.invalid,
            "sync run completed"
        );
        Ok(report)
    }

    fn check_lease(&self) -> Result<(), AppError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(AppError::Conflict(LEASE_LOST.into()));
        }
        Ok(())
    }

    async fn save(&self, finished: bool) -> Result<(), AppError> {
        let r = &self.report;
        sqlx::query(
            "UPDATE sync_runs SET status = ?, scanned = ?, created = ?, updated = ?, deleted = ?, skipped = ?, invalid = ?, \
             error = ?, finished_at = IF(?, UTC_TIMESTAMP(6), NULL) WHERE id = ?",
        )
        .bind(r.status)
        .bind(r.scanned)
        .bind(r.created)
        .bind(r.updated)
        .bind(r.deleted)
        .bind(r.skipped)
        .bind(r.invalid)
        .bind(r.error.as_deref().map(|e| truncate(e, 255)))
        .bind(finished)
        .bind(r.id)
        .execute(&self.writer.backup().pool)
        .await
        .reporting("save sync report")?;
        Ok(())
    }

    async fn scan(&mut self) -> Result<(), AppError> {
        let mongo = self.writer.primary().db.clone();
        let pool = self.writer.backup().pool.clone();
        let batch = self.options.batch.max(1);
        let mut batches = read_batches(mongo, batch);
        let mut seen: Vec<[u8; 12]> = Vec::new();
        while let Some(docs) = batches.recv().await {
            let docs = docs?;
            let mut sales = Vec::with_capacity(docs.len());
            for d in &docs {
                if let Some(Bson::ObjectId(oid)) = d.get("_id") {
                    seen.push(oid.bytes());
                }
                match document_to_sale(d) {
                    Ok(sale) => sales.push(sale),
                    Err(e) => {
                        tracing::warn!(id = ?d.get("_id"), error = %e, "sync: MongoDB document is not a valid sale; left alone");
                        self.report.invalid += 1;
                    }
                }
            }
            self.check_lease()?;
            let stale = self.differing(&pool, sales).await?;
            self.settle(stale).await?;
            self.report.scanned += docs.len() as u64;
            self.save(false).await?;
        }

        seen.sort_unstable();
        let mut conn = pool.acquire().await.reporting("sync: list backup ids")?;
        let mut ids =
            sqlx::query_scalar::<_, String>("SELECT id FROM sales ORDER BY id").fetch(&mut *conn);
        let mut extras = Vec::new();
        while let Some(id) = ids.try_next().await.reporting("sync: list backup ids")? {
            let known = bson::oid::ObjectId::parse_str(&id)
                .is_ok_and(|oid| seen.binary_search(&oid.bytes()).is_ok());
            if known {
                continue;
            }
            match SaleId::parse(&id) {
                Ok(id) => extras.push(Diff::Extra(id)),
                Err(_) => tracing::warn!(id, "sync: backup row with an invalid id; left alone"),
            }
            if extras.len() >= REPAIR_CHUNK {
                self.settle(std::mem::take(&mut extras)).await?;
            }
        }
        drop(ids);
        self.settle(extras).await?;
        if !self.options.dry_run {
            self.check_lease()?;
            super::rollups::rebuild(&pool).await?;
        }
        Ok(())
    }

    /// The sales of this batch that MySQL lacks or holds differently.
    async fn differing(&self, pool: &MySqlPool, sales: Vec<Sale>) -> Result<Vec<Diff>, AppError> {
        let ids: Vec<SaleId> = sales.iter().map(|s| s.id.clone()).collect();
        let mut conn = pool.acquire().await.reporting("sync: read backup")?;
        let backed_up: HashMap<String, backup::StoredSale> = backup::load_rows(&mut conn, &ids)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        Ok(sales
            .into_iter()
            .filter_map(|s| match backed_up.get(s.id.as_str()) {
                None => Some(Diff::Missing(s)),
                Some(b) if !b.matches(&s) => Some(Diff::Changed(s)),
                Some(_) => None,
            })
            .collect())
    }

    /// Counts the differences; unless this is a dry run, repairs them.
    async fn settle(&mut self, diffs: Vec<Diff>) -> Result<(), AppError> {
        if self.options.dry_run {
            for d in &diffs {
                match d {
                    Diff::Missing(_) => self.report.created += 1,
                    Diff::Changed(_) => self.report.updated += 1,
                    Diff::Extra(_) => self.report.deleted += 1,
                }
            }
            return Ok(());
        }
        for chunk in diffs.chunks(REPAIR_CHUNK) {
            let fixed = repair(&self.writer, &self.lease, self.report.started_at, chunk).await?;
            self.report.created += fixed.created;
            self.report.updated += fixed.updated;
            self.report.deleted += fixed.deleted;
            self.report.skipped += fixed.skipped;
        }
        Ok(())
    }
}

/// A difference, with MongoDB's document where it has one.
enum Diff {
    Missing(Sale),
    Changed(Sale),
    Extra(SaleId),
}

impl Diff {
    fn id(&self) -> &SaleId {
        match self {
            Diff::Missing(s) | Diff::Changed(s) => &s.id,
            Diff::Extra(id) => id,
        }
    }
}

#[derive(Debug, Default)]
struct Fixed {
    created: u64,
    updated: u64,
    deleted: u64,
    skipped: u64,
}

/// Makes MySQL hold what the scan read from MongoDB for these sales, with their edits
/// held off, in one transaction. Idempotent: rows that already agree are not touched
/// or counted. Each repair is journaled as a `repair` intent (`done`), so a sale's
/// history shows it.
#[tracing::instrument(skip_all, fields(n = diffs.len()))]
async fn repair(
    writer: &Writer,
    lease: &JobLease,
    run_started: chrono::DateTime<chrono::Utc>,
    diffs: &[Diff],
) -> Result<Fixed, AppError> {
    crate::server::db::retry_contended(|| repair_once(writer, lease, run_started, diffs)).await
}

async fn repair_once(
    writer: &Writer,
    lease: &JobLease,
    run_started: chrono::DateTime<chrono::Utc>,
    diffs: &[Diff],
) -> Result<Fixed, AppError> {
    let ids: Vec<SaleId> = diffs.iter().map(|d| d.id().clone()).collect();
    let claim = writer.lease();
    let mut tx = writer
        .backup()
        .pool
        .begin()
        .await
        .reporting("sync: begin repair")?;
    if !lease.still_held(&mut tx).await? {
        let _ = tx.rollback().await;
        return Err(AppError::Conflict(LEASE_LOST.into()));
    }
    let held = claim_sales(&mut tx, &ids, &claim).await?;
    let edited = edited_since(&mut tx, &ids, run_started).await?;
    let workable: Vec<SaleId> = ids
        .iter()
        .filter(|id| held.contains(id.as_str()) && !edited.contains(id.as_str()))
        .cloned()
        .collect();
    let current: HashMap<String, backup::StoredSale> = backup::load_rows(&mut tx, &workable)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut fixed = Fixed::default();
    let mut replace = Vec::new();
    let mut delete = Vec::new();
    for diff in diffs {
        let id = diff.id().as_str();
        if !held.contains(id) || edited.contains(id) {
            fixed.skipped += 1;
            continue;
        }
        match (diff, current.get(id)) {
            (Diff::Missing(truth) | Diff::Changed(truth), None) => {
                fixed.created += 1;
                replace.push(truth.clone());
            }
            (Diff::Missing(truth) | Diff::Changed(truth), Some(row)) if !row.matches(truth) => {
                fixed.updated += 1;
                replace.push(truth.clone());
            }
            (Diff::Extra(id), Some(_)) => delete.push(id.clone()),
            _ => {}
        }
    }
    let mut changes = Changes::default();
    backup::replace(&mut tx, &replace, &mut changes).await?;
    let deleted =
        backup::delete_older_than(&mut tx, &delete, run_started.naive_utc(), &mut changes).await?;
    fixed.deleted = deleted.len() as u64;
    // The claims end with the transaction; the repairs made stay in the journal.
    sqlx::query(super::dual_write::by_holder::RELEASE)
        .bind(&claim.owner)
        .execute(&mut *tx)
        .await
        .reporting("sync: release repaired sales")?;
    let before = |id: &SaleId| current.get(id.as_str()).and_then(|r| r.sale.as_ref().ok());
    let journaled: Vec<(&SaleId, Option<&Sale>, Option<&Sale>)> = replace
        .iter()
        .map(|s| (&s.id, before(&s.id), Some(s)))
        .chain(deleted.iter().map(|id| (id, before(id), None)))
        .collect();
    journal_repairs(&mut tx, &claim.owner, &journaled).await?;
    changes.record(&mut tx).await?;
    tx.commit().await.reporting("sync: commit repair")?;
    for s in &replace {
        tracing::info!(sale_id = %s.id, version = s.version, "sync: backup row repaired from MongoDB");
    }
    for id in &deleted {
        tracing::info!(sale_id = %id, "sync: backup row without a MongoDB sale deleted");
    }
    Ok(fixed)
}

/// Takes the leases of these sales inside the repair's transaction: one open `repair`
/// intent each. A sale that has an open intent already keeps it (and is skipped); an
/// edit that starts now waits on the uncommitted row until the repair commits. Returns
/// the sales held. (Not `INSERT … ON DUPLICATE KEY UPDATE`: it locks the existing
/// intent's row and deadlocks with its writer closing it.)
async fn claim_sales(
    conn: &mut MySqlConnection,
    ids: &[SaleId],
    claim: &super::dual_write::Lease,
) -> Result<HashSet<String>, AppError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    for attempt in 0.. {
        let mut q = QueryBuilder::<MySql>::new(
            "SELECT open_sale_id FROM sale_intents WHERE open_sale_id IN (",
        );
        finish_in_list(&mut q, ids);
        let busy: HashSet<String> = q
            .build_query_scalar()
            .fetch_all(&mut *conn)
            .await
            .reporting("sync: hold sales")?
            .into_iter()
            .collect();
        let free: Vec<&SaleId> = ids
            .iter()
            .filter(|id| !busy.contains(id.as_str()))
            .collect();
        if free.is_empty() {
            break;
        }
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO sale_intents (op, sale_id, state, lease_owner, lease_until, created_at, updated_at) ",
        );
        q.push_values(free, |mut row, id| {
            row.push("'repair'")
                .push_bind(id.as_str())
                .push("'pending'")
                .push_bind(&claim.owner)
                .push("UTC_TIMESTAMP(6)")
                .push("UTC_TIMESTAMP(6)")
                .push("UTC_TIMESTAMP(6)");
        });
        // An edit that took one of them since the look fails the statement alone (not
        // the transaction): look again.
        match q.build().execute(&mut *conn).await {
            Ok(_) => break,
            Err(e) if crate::server::db::is_unique_violation(&e) && attempt < 5 => continue,
            Err(e) => return Err(e).reporting("sync: hold sales"),
        }
    }
    let held: Vec<String> = sqlx::query_scalar(super::dual_write::by_holder::HELD)
        .bind(&claim.owner)
        .fetch_all(&mut *conn)
        .await
        .reporting("sync: hold sales")?;
    Ok(held.into_iter().collect())
}

/// Journals the repairs made: one `repair` intent per sale, `done`, with the backup's
/// row before and MongoDB's document after.
async fn journal_repairs(
    conn: &mut MySqlConnection,
    owner: &str,
    repairs: &[(&SaleId, Option<&Sale>, Option<&Sale>)],
) -> Result<(), AppError> {
    if repairs.is_empty() {
        return Ok(());
    }
    let image = |s: Option<&Sale>| s.map(|s| serde_json::to_string(s).expect("a sale serializes"));
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO sale_intents (op, sale_id, before_image, after_image, actor_kind, state, lease_owner, created_at, updated_at) ",
    );
    q.push_values(repairs, |mut row, (id, before, after)| {
        row.push("'repair'")
            .push_bind(id.as_str())
            .push_bind(image(*before))
            .push_bind(image(*after))
            .push("'sync'")
            .push("'done'")
            .push_bind(owner)
            .push("UTC_TIMESTAMP(6)")
            .push("UTC_TIMESTAMP(6)");
    });
    q.build()
        .execute(&mut *conn)
        .await
        .reporting("sync: journal repairs")?;
    Ok(())
}

/// Sales with an edit that is open, or that changed since the run started: their
/// scanned document may be out of date. This run's own repairs are not edits.
async fn edited_since(
    conn: &mut MySqlConnection,
    ids: &[SaleId],
    since: chrono::DateTime<chrono::Utc>,
) -> Result<HashSet<String>, AppError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT DISTINCT sale_id FROM sale_intents WHERE op <> 'repair' AND (updated_at >= ",
    );
    q.push_bind(since.naive_utc());
    q.push(" OR state IN ('pending', 'needs_repair')) AND sale_id IN (");
    finish_in_list(&mut q, ids);
    let rows: Vec<String> = q
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await
        .reporting("sync: check intents")?;
    Ok(rows.into_iter().collect())
}

/// Streams the collection in natural order, `batch` documents at a time, one batch
/// ahead of the consumer so MongoDB and MySQL work overlap.
fn read_batches(
    mongo: mongodb::Database,
    batch: usize,
) -> tokio::sync::mpsc::Receiver<Result<Vec<Document>, AppError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let cursor = primary::collection(&mongo)
            .find(doc! {})
            .batch_size(batch.min(u32::MAX as usize) as u32)
            .await;
        let mut cursor = match cursor {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(mongo_error("sync: read MongoDB", e))).await;
                return;
            }
        };
        let mut docs = Vec::with_capacity(batch);
        loop {
            match cursor.try_next().await {
                Ok(Some(d)) => {
                    docs.push(d);
                    if docs.len() == batch {
                        let full = std::mem::replace(&mut docs, Vec::with_capacity(batch));
                        if tx.send(Ok(full)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(mongo_error("sync: read MongoDB", e))).await;
                    return;
                }
            }
        }
        if !docs.is_empty() {
            let _ = tx.send(Ok(docs)).await;
        }
    });
    rx
}

/// Runs a repairing sync once per `every` across all instances, for the life of the
/// process: each instance looks at least every 30 s whether the turn is due, and the
/// one that claims it runs it. A turn that finds a run in progress (the button, the
/// CLI) is skipped.
pub fn spawn_schedule(writer: Writer, every: Duration) {
    tokio::spawn(async move {
        let look = every.min(Duration::from_secs(30));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, look);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match jobs::claim_turn(&writer.backup().pool, SALES_SYNC_SCHEDULE, every).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "periodic sync: could not claim its turn");
                    continue;
                }
            }
            match run(&writer, SyncOptions::new(SyncTrigger::Schedule)).await {
                Ok(r) if r.drift() > 0 => {
                    tracing::warn!(drift = r.drift(), "periodic sync repaired drift")
                }
                Ok(_) => {}
                Err(AppError::Conflict(_)) => {
                    tracing::info!("periodic sync skipped: one is running")
                }
                Err(e) => tracing::warn!(error = %e, "periodic sync failed; next turn retries"),
            }
        }
    });
}
