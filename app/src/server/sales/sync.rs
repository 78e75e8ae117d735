//! Reconciliation: makes the MySQL backup equal MongoDB (the truth), in batches.
//!
//! One pass reads MongoDB in natural order (FerretDB sorts and range-filters in memory,
//! so a sorted merge would make it hold the whole collection) and looks each batch up
//! in MySQL by primary key. Sales that are missing or differ (by version, content or
//! stored total) are copied from the scanned documents. A second pass streams MySQL's
//! ids and deletes those MongoDB did not have.
//!
//! Concurrent edits: repairs run under the dual writer's per-sale locks and skip any
//! sale whose intent was open or touched since the run started. Every edit journals an
//! intent, so for the others the scanned document is still MongoDB's current one, and
//! no MongoDB read is needed under the lock (FerretDB finds a document by `_id` with a
//! table scan, so one lookup per repair would dominate the run). Such skipped sales
//! are counted and left for the next run. An extra row is deleted only if it was
//! written before the run started (`sales.backed_up_at`): a newer one belongs to a sale
//! inserted after the scan passed its place.
//!
//! Memory: one batch of documents, plus 12 bytes per scanned sale for the second pass
//! (1,000,000 sales: 12 MB).
//!
//! Runs never overlap, across processes too: each holds a MySQL named lock for its
//! duration. A run stores its report in `sync_runs` as it goes; one that dies stays
//! `running` until the next run marks it `interrupted` and simply starts over.

use super::codec::document_to_sale;
use super::dual_write::Writer;
use super::{backup, primary};
use crate::model::{AppError, Sale, SaleId, SyncReport, SyncStatus, SyncTrigger};
use crate::server::db::{mongo_error, mysql_error};
use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use sqlx::{Connection, MySqlConnection, MySqlPool};
use std::collections::HashMap;

/// Documents per batch read from MongoDB and looked up in MySQL.
pub const DEFAULT_BATCH: usize = 1000;
/// Sales repaired per locked round (bounds how long edits of them wait).
const REPAIR_CHUNK: usize = 200;

#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub trigger: SyncTrigger,
    pub started_by: Option<u64>,
    pub batch: usize,
    /// How long to wait for a run in progress to finish (0: fail at once). A run killed
    /// a moment ago holds the lock until MySQL notices its connection is gone.
    pub lock_wait_secs: u32,
}

impl SyncOptions {
    pub fn new(trigger: SyncTrigger) -> Self {
        Self {
            dry_run: false,
            trigger,
            started_by: None,
            batch: DEFAULT_BATCH,
            lock_wait_secs: 0,
        }
    }
}

/// A claimed run: it holds the named lock until it finishes or is dropped.
pub struct Run {
    writer: Writer,
    /// Detached from the pool, so dropping it closes the session and frees the lock
    /// even if the run is cancelled.
    lock: MySqlConnection,
    lock_name: String,
    options: SyncOptions,
    report: SyncReport,
}

const ALREADY_RUNNING: &str = "A sync is already running. Wait for it to finish.";

/// Claims the sync lock and records a new run. Fails with a conflict if one is running.
#[tracing::instrument(skip(writer))]
pub async fn begin(writer: &Writer, options: SyncOptions) -> Result<Run, AppError> {
    let pool = &writer.backup().pool;
    let mut lock = pool
        .acquire()
        .await
        .map_err(|e| mysql_error("sync lock connection", e))?
        .detach();
    let (lock_name, got): (String, Option<i32>) = sqlx::query_as(
        "SELECT CONCAT('sales_sync:', DATABASE()), GET_LOCK(CONCAT('sales_sync:', DATABASE()), ?)",
    )
    .bind(options.lock_wait_secs)
    .fetch_one(&mut lock)
    .await
    .map_err(|e| mysql_error("take sync lock", e))?;
    if got != Some(1) {
        return Err(AppError::Conflict(ALREADY_RUNNING.into()));
    }
    // Holding the lock, any row still `running` belongs to a run that died.
    sqlx::query(
        "UPDATE sync_runs SET status = 'interrupted', finished_at = UTC_TIMESTAMP(6) WHERE status = 'running'",
    )
    .execute(pool)
    .await
    .map_err(|e| mysql_error("close stale sync runs", e))?;
    let expected: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales")
        .fetch_one(pool)
        .await
        .map_err(|e| mysql_error("count sales", e))?;
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
    .map_err(|e| mysql_error("record sync run", e))?
    .last_insert_id();
    let report = load(pool, id).await?.ok_or(AppError::Internal)?;
    Ok(Run {
        writer: writer.clone(),
        lock,
        lock_name,
        options,
        report,
    })
}

/// Claims a run and executes it in the background (the Run sync button); the report
/// returned is the run as recorded, and its outcome lands in `sync_runs`.
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
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&self.lock_name)
            .execute(&mut self.lock)
            .await;
        let _ = self.lock.close().await;
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
        .bind(r.error.as_deref().map(|e| e.chars().take(255).collect::<String>()))
        .bind(finished)
        .bind(r.id)
        .execute(&self.writer.backup().pool)
        .await
        .map_err(|e| mysql_error("save sync report", e))?;
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
            let stale = self.differing(&pool, sales).await?;
            self.settle(stale).await?;
            self.report.scanned += docs.len() as u64;
            self.save(false).await?;
        }

        seen.sort_unstable();
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| mysql_error("sync: list backup ids", e))?;
        let mut ids =
            sqlx::query_scalar::<_, String>("SELECT id FROM sales ORDER BY id").fetch(&mut *conn);
        let mut extras = Vec::new();
        while let Some(id) = ids
            .try_next()
            .await
            .map_err(|e| mysql_error("sync: list backup ids", e))?
        {
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
            super::rollups::rebuild(&pool).await?;
            self.writer.backup().changes.committed();
        }
        Ok(())
    }

    /// The sales of this batch that MySQL lacks or holds differently.
    async fn differing(&self, pool: &MySqlPool, sales: Vec<Sale>) -> Result<Vec<Diff>, AppError> {
        let ids: Vec<SaleId> = sales.iter().map(|s| s.id.clone()).collect();
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| mysql_error("sync: read backup", e))?;
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
            let fixed = repair(&self.writer, self.report.started_at, chunk).await?;
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
/// held off. Idempotent: rows that already agree are not touched or counted.
#[tracing::instrument(skip_all, fields(n = diffs.len()))]
async fn repair(
    writer: &Writer,
    run_started: chrono::DateTime<chrono::Utc>,
    diffs: &[Diff],
) -> Result<Fixed, AppError> {
    let ids: Vec<SaleId> = diffs.iter().map(|d| d.id().clone()).collect();
    let _held = writer.lock_sales(&ids).await;
    let mut tx = writer
        .backup()
        .pool
        .begin()
        .await
        .map_err(|e| mysql_error("sync: begin repair", e))?;
    let edited = edited_since(&mut tx, &ids, run_started).await?;
    let current: HashMap<String, backup::StoredSale> = backup::load_rows(&mut tx, &ids)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut fixed = Fixed::default();
    let mut replace = Vec::new();
    let mut delete = Vec::new();
    for diff in diffs {
        if edited.contains(diff.id().as_str()) {
            fixed.skipped += 1;
            continue;
        }
        match (diff, current.get(diff.id().as_str())) {
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
    backup::replace(&mut tx, &replace).await?;
    fixed.deleted = backup::delete_older_than(&mut tx, &delete, run_started.naive_utc()).await?;
    tx.commit()
        .await
        .map_err(|e| mysql_error("sync: commit repair", e))?;
    writer.backup().changes.committed();
    for s in &replace {
        tracing::info!(sale_id = %s.id, version = s.version, "sync: backup row repaired from MongoDB");
    }
    for id in &delete {
        tracing::info!(sale_id = %id, "sync: backup row without a MongoDB sale deleted");
    }
    Ok(fixed)
}

/// Sales with an intent that is open, or that changed since the run started: their
/// scanned document may be out of date.
async fn edited_since(
    conn: &mut MySqlConnection,
    ids: &[SaleId],
    since: chrono::DateTime<chrono::Utc>,
) -> Result<std::collections::HashSet<String>, AppError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "SELECT DISTINCT sale_id FROM sale_intents WHERE (updated_at >= ",
    );
    q.push_bind(since.naive_utc());
    q.push(" OR state IN ('pending', 'needs_repair')) AND sale_id IN (");
    super::backup::finish_in_list(&mut q, ids);
    let rows: Vec<String> = q
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| mysql_error("sync: check intents", e))?;
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

const REPORT_COLUMNS: &str = "r.id, r.trigger_kind, u.username, r.dry_run, r.status, r.expected, r.scanned, \
     r.created, r.updated, r.deleted, r.skipped, r.invalid, r.error, r.started_at, r.finished_at";

type ReportRow = (
    u64,
    SyncTrigger,
    Option<String>,
    bool,
    SyncStatus,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    Option<String>,
    chrono::NaiveDateTime,
    Option<chrono::NaiveDateTime>,
);

fn to_report(row: ReportRow) -> SyncReport {
    let (
        id,
        trigger,
        started_by,
        dry_run,
        status,
        expected,
        scanned,
        created,
        updated,
        deleted,
        skipped,
        invalid,
        error,
        started_at,
        finished_at,
    ) = row;
    SyncReport {
        id,
        trigger,
        started_by,
        dry_run,
        status,
        expected,
        scanned,
        created,
        updated,
        deleted,
        skipped,
        invalid,
        error,
        started_at: started_at.and_utc(),
        finished_at: finished_at.map(|t| t.and_utc()),
    }
}

async fn query_reports(
    pool: &MySqlPool,
    condition: &str,
    bind: Option<u64>,
) -> Result<Option<SyncReport>, AppError> {
    let sql = format!(
        "SELECT {REPORT_COLUMNS} FROM sync_runs r LEFT JOIN users u ON u.id = r.started_by \
         WHERE {condition} ORDER BY r.id DESC LIMIT 1"
    );
    let mut q = sqlx::query_as::<_, ReportRow>(&sql);
    if let Some(b) = bind {
        q = q.bind(b);
    }
    Ok(q.fetch_optional(pool)
        .await
        .map_err(|e| mysql_error("load sync report", e))?
        .map(to_report))
}

pub async fn load(pool: &MySqlPool, id: u64) -> Result<Option<SyncReport>, AppError> {
    query_reports(pool, "r.id = ?", Some(id)).await
}

/// The replication panel: journal counts, the run in progress, the last finished run
/// and the drift as of the latest completed run.
#[tracing::instrument(skip_all)]
pub async fn status(pool: &MySqlPool) -> Result<crate::model::ReplicationStatus, AppError> {
    // One after another: four small queries, and a sync in progress needs the pool more.
    let intents = super::dual_write::intent_counts(pool).await?;
    let running = query_reports(pool, "r.status = 'running'", None).await?;
    let last = query_reports(pool, "r.status <> 'running'", None).await?;
    let completed = query_reports(pool, "r.status = 'completed'", None).await?;
    Ok(crate::model::ReplicationStatus {
        intents,
        running,
        last,
        drift: completed.map(|r| if r.dry_run { r.drift() } else { r.skipped }),
    })
}

/// Runs a repairing sync every `every`, for the life of the process. A run that finds
/// another one in progress (the button, the CLI, another instance) just skips its turn.
pub fn spawn_schedule(writer: Writer, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
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
