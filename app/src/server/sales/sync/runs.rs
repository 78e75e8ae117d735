//! The record of sync runs (`sync_runs`): what the replication panel shows, on every
//! instance, of the run in progress and the last ones.

use crate::model::{AppError, SyncReport, SyncStatus, SyncTrigger};
use crate::server::db::Context;
use crate::server::jobs::{self, SALES_SYNC};
use crate::server::sales::dual_write;
use sqlx::MySqlPool;

pub(super) async fn close_interrupted(pool: &MySqlPool) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE sync_runs SET status = 'interrupted', finished_at = UTC_TIMESTAMP(6) WHERE status = 'running'",
    )
    .execute(pool)
    .await
    .reporting("close stale sync runs")?;
    Ok(())
}

const REPORT_COLUMNS: &str = "r.id, r.trigger_kind, u.username AS started_by, r.dry_run, r.status, r.expected, \
     r.scanned, r.created, r.updated, r.deleted, r.skipped, r.invalid, r.error, r.started_at, r.finished_at";

#[derive(sqlx::FromRow)]
struct ReportRow {
    id: u64,
    trigger_kind: SyncTrigger,
    started_by: Option<String>,
    dry_run: bool,
    status: SyncStatus,
    expected: u64,
    scanned: u64,
    created: u64,
    updated: u64,
    deleted: u64,
    skipped: u64,
    invalid: u64,
    error: Option<String>,
    started_at: chrono::NaiveDateTime,
    finished_at: Option<chrono::NaiveDateTime>,
}

impl From<ReportRow> for SyncReport {
    fn from(r: ReportRow) -> Self {
        SyncReport {
            id: r.id,
            trigger: r.trigger_kind,
            started_by: r.started_by,
            dry_run: r.dry_run,
            status: r.status,
            expected: r.expected,
            scanned: r.scanned,
            created: r.created,
            updated: r.updated,
            deleted: r.deleted,
            skipped: r.skipped,
            invalid: r.invalid,
            error: r.error,
            started_at: r.started_at.and_utc(),
            finished_at: r.finished_at.map(|t| t.and_utc()),
        }
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
        .reporting("load sync report")?
        .map(SyncReport::from))
}

pub async fn load(pool: &MySqlPool, id: u64) -> Result<Option<SyncReport>, AppError> {
    query_reports(pool, "r.id = ?", Some(id)).await
}

/// The replication panel: journal counts, the run in progress, the last finished run
/// and the drift as of the latest completed run. A `running` row whose run no longer
/// holds the sync lease died with its process: it is closed as interrupted here, by
/// whichever instance looks first.
#[tracing::instrument(skip_all)]
pub async fn status(pool: &MySqlPool) -> Result<crate::model::ReplicationStatus, AppError> {
    // One after another: a few small queries, and a sync in progress needs the pool more.
    let intents = dual_write::intent_counts(pool).await?;
    if !jobs::is_held(pool, SALES_SYNC).await? {
        close_interrupted(pool).await?;
    }
    let running = query_reports(pool, "r.status = 'running'", None).await?;
    let last = query_reports(pool, "r.status <> 'running'", None).await?;
    let completed = query_reports(pool, "r.status = 'completed'", None).await?;
    Ok(crate::model::ReplicationStatus {
        intents,
        running,
        last,
        drift: completed.map(|r| if r.dry_run { r.drift() } else { r.skipped }),
        deployment: None,
    })
}
