//! The `import_jobs` table: a job's states, its claim by one instance at a time (a lease
//! on the database's clock, so a replicated MySQL keeps it too), its progress and its
//! cancellation.

use super::check::Checked;
use crate::model::AppError;
use crate::model::imports::{ImportJob, ImportRejection, ImportState};
use crate::server::db::Context;
use chrono::NaiveDateTime;
use sqlx::MySqlPool;
use std::time::Duration;

/// Jobs the imports page lists.
const LISTED: u32 = 20;

#[derive(sqlx::FromRow)]
struct JobRow {
    id: u64,
    file_name: String,
    file_size: u64,
    state: ImportState,
    created_by: Option<String>,
    valid: u64,
    new_sales: u64,
    present: u64,
    rejected: u64,
    rejections: String,
    processed: u64,
    inserted: u64,
    skipped: u64,
    cancel_requested: bool,
    error: Option<String>,
    created_at: NaiveDateTime,
    started_at: Option<NaiveDateTime>,
    updated_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
}

impl From<JobRow> for ImportJob {
    fn from(r: JobRow) -> Self {
        ImportJob {
            id: r.id,
            file_name: r.file_name,
            file_size: r.file_size,
            state: r.state,
            created_by: r.created_by,
            valid: r.valid,
            new_sales: r.new_sales,
            present: r.present,
            rejected: r.rejected,
            rejections: serde_json::from_str::<Vec<ImportRejection>>(&r.rejections)
                .unwrap_or_default(),
            processed: r.processed,
            inserted: r.inserted,
            skipped: r.skipped,
            cancel_requested: r.cancel_requested,
            error: r.error,
            created_at: r.created_at.and_utc(),
            started_at: r.started_at.map(|t| t.and_utc()),
            updated_at: r.updated_at.and_utc(),
            finished_at: r.finished_at.map(|t| t.and_utc()),
        }
    }
}

const JOB_COLUMNS: &str = "j.id, j.file_name, j.file_size, j.state, u.username AS created_by, j.valid, \
     j.new_sales, j.present, j.rejected, j.rejections, j.processed, j.inserted, j.skipped, \
     j.cancel_requested, j.error, j.created_at, j.started_at, j.updated_at, j.finished_at \
     FROM import_jobs j LEFT JOIN users u ON u.id = j.created_by";

/// Stores a checked file as a job waiting for confirmation.
pub async fn create(
    pool: &MySqlPool,
    user_id: u64,
    file_name: &str,
    content: &[u8],
    checked: &Checked,
) -> Result<u64, AppError> {
    let rejections = serde_json::to_string(&checked.rejections).map_err(|e| {
        tracing::error!(error = %e, "rejections do not serialize");
        AppError::Internal
    })?;
    let mut tx = pool.begin().await.context("store import")?;
    let id = sqlx::query(
        "INSERT INTO import_jobs (created_by, file_name, file_size, state, valid, new_sales, present, \
         rejected, rejections, created_at, updated_at) \
         VALUES (?, ?, ?, 'checked', ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .bind(user_id)
    .bind(file_name)
    .bind(content.len() as u64)
    .bind(checked.valid)
    .bind(checked.new_sales)
    .bind(checked.present)
    .bind(checked.rejected)
    .bind(rejections)
    .execute(&mut *tx)
    .await
    .context("store import")?
    .last_insert_id();
    sqlx::query("INSERT INTO import_files (job_id, content) VALUES (?, ?)")
        .bind(id)
        .bind(content)
        .execute(&mut *tx)
        .await
        .context("store import file")?;
    tx.commit().await.context("store import")?;
    Ok(id)
}

pub async fn get(pool: &MySqlPool, id: u64) -> Result<ImportJob, AppError> {
    let row: Option<JobRow> = sqlx::query_as(&format!("SELECT {JOB_COLUMNS} WHERE j.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .context("read import")?;
    row.map(ImportJob::from).ok_or(AppError::NotFound)
}

/// The newest jobs, for the imports page.
pub async fn recent(pool: &MySqlPool) -> Result<Vec<ImportJob>, AppError> {
    let rows: Vec<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} ORDER BY j.created_at DESC, j.id DESC LIMIT ?"
    ))
    .bind(LISTED)
    .fetch_all(pool)
    .await
    .context("list imports")?;
    Ok(rows.into_iter().map(ImportJob::from).collect())
}

/// Confirms a checked job: it waits for an instance to claim it.
pub async fn start(pool: &MySqlPool, id: u64) -> Result<ImportJob, AppError> {
    let job = get(pool, id).await?;
    if !job.can_start() {
        return Err(AppError::Conflict(match job.state {
            ImportState::Checked if job.rejected > 0 => {
                "The file has rejected records: correct them and upload it again.".into()
            }
            ImportState::Checked => "The file holds no sales to import.".into(),
            _ => "This import was started already.".into(),
        }));
    }
    let started = sqlx::query(
        "UPDATE import_jobs SET state = 'queued', updated_at = UTC_TIMESTAMP(6) \
         WHERE id = ? AND state = 'checked'",
    )
    .bind(id)
    .execute(pool)
    .await
    .context("start import")?
    .rows_affected();
    if started != 1 {
        return Err(AppError::Conflict(
            "This import was started already.".into(),
        ));
    }
    get(pool, id).await
}

/// Asks a job to stop: one that waits ends at once; a running one stops after the
/// batches it is writing, which land whole.
pub async fn cancel(pool: &MySqlPool, id: u64) -> Result<ImportJob, AppError> {
    let mut tx = pool.begin().await.context("cancel import")?;
    let state: Option<ImportState> =
        sqlx::query_scalar("SELECT state FROM import_jobs WHERE id = ? FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("cancel import")?;
    match state {
        None => return Err(AppError::NotFound),
        Some(ImportState::Checked | ImportState::Queued) => {
            sqlx::query(
                "UPDATE import_jobs SET state = 'cancelled', cancel_requested = TRUE, \
                 updated_at = UTC_TIMESTAMP(6), finished_at = UTC_TIMESTAMP(6) WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .context("cancel import")?;
            sqlx::query("DELETE FROM import_files WHERE job_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .context("cancel import")?;
        }
        Some(ImportState::Running) => {
            sqlx::query(
                "UPDATE import_jobs SET cancel_requested = TRUE, updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .context("cancel import")?;
        }
        Some(_) => {
            return Err(AppError::Conflict("This import has ended already.".into()));
        }
    }
    tx.commit().await.context("cancel import")?;
    get(pool, id).await
}

/// A job this instance holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: u64,
    /// Runs of the job so far, this one included.
    pub runs: u32,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Claims the oldest job that is queued, or running under a lease that ran out (its
/// instance died or stalled). One conditional UPDATE: two instances never both win.
pub async fn claim(
    pool: &MySqlPool,
    owner: &str,
    ttl: Duration,
) -> Result<Option<Claimed>, AppError> {
    let candidate: Option<u64> = sqlx::query_scalar(
        "SELECT id FROM import_jobs \
         WHERE state = 'queued' OR (state = 'running' AND lease_until < UTC_TIMESTAMP(6)) \
         ORDER BY id LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .context("find import to run")?;
    let Some(id) = candidate else {
        return Ok(None);
    };
    // A resumed run starts the file over (every batch is idempotent), its progress
    // from zero.
    let taken = sqlx::query(
        "UPDATE import_jobs SET state = 'running', lease_owner = ?, \
         lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, runs = runs + 1, processed = 0, \
         started_at = COALESCE(started_at, UTC_TIMESTAMP(6)), updated_at = UTC_TIMESTAMP(6) \
         WHERE id = ? AND (state = 'queued' OR (state = 'running' AND lease_until < UTC_TIMESTAMP(6)))",
    )
    .bind(owner)
    .bind(micros(ttl))
    .bind(id)
    .execute(pool)
    .await
    .context("claim import")?
    .rows_affected();
    if taken != 1 {
        return Ok(None);
    }
    let runs: u32 = sqlx::query_scalar("SELECT runs FROM import_jobs WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .context("claim import")?;
    Ok(Some(Claimed { id, runs }))
}

/// Lets go of a job to be run again after `delay` by any instance (this one too): its
/// writes met sales that another writer, one that died perhaps, still holds, and
/// recovery settles those within its interval.
pub async fn pause(
    pool: &MySqlPool,
    claimed: &Claimed,
    owner: &str,
    progress: Progress,
    delay: Duration,
) -> Result<(), AppError> {
    let sql = format!(
        "UPDATE import_jobs SET {FIGURES}, lease_owner = NULL, \
         lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, updated_at = UTC_TIMESTAMP(6) \
         WHERE id = ? AND state = 'running' AND lease_owner = ?"
    );
    bind_figures(sqlx::query(&sql), progress)
        .bind(micros(delay))
        .bind(claimed.id)
        .bind(owner)
        .execute(pool)
        .await
        .context("pause import")?;
    Ok(())
}

pub async fn file(pool: &MySqlPool, id: u64) -> Result<Vec<u8>, AppError> {
    sqlx::query_scalar("SELECT content FROM import_files WHERE job_id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .context("read import file")?
        .ok_or(AppError::NotFound)
}

/// What a run has done so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub processed: u64,
    /// Inserted by this run.
    pub inserted: u64,
    /// Found present by this run.
    pub skipped: u64,
}

/// The figures a run reports. A first run's are its own; a resumed run finds what its
/// predecessors wrote present too, so of what it skipped, only as many as the check
/// found present count as "were there already", and the rest as inserted by the job.
const FIGURES: &str = "processed = ?, \
     skipped = IF(runs > 1, LEAST(?, present), ?), \
     inserted = IF(runs > 1, ? - LEAST(?, present), ?)";

fn bind_figures<'q>(
    q: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
    p: Progress,
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    q.bind(p.processed)
        .bind(p.skipped)
        .bind(p.skipped)
        .bind(p.processed)
        .bind(p.skipped)
        .bind(p.inserted)
}

/// Records progress and renews the lease. `Ok(None)`: the lease is lost (another
/// instance took the job over); `Ok(Some(cancel))`: whether a stop was asked for.
pub async fn report(
    pool: &MySqlPool,
    claimed: &Claimed,
    owner: &str,
    ttl: Duration,
    progress: Progress,
) -> Result<Option<bool>, AppError> {
    let sql = format!(
        "UPDATE import_jobs SET {FIGURES}, lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, \
         updated_at = UTC_TIMESTAMP(6) WHERE id = ? AND state = 'running' AND lease_owner = ?"
    );
    let done = bind_figures(sqlx::query(&sql), progress)
        .bind(micros(ttl))
        .bind(claimed.id)
        .bind(owner)
        .execute(pool)
        .await
        .context("record import progress")?
        .rows_affected();
    if done != 1 {
        return Ok(None);
    }
    let cancel: bool = sqlx::query_scalar("SELECT cancel_requested FROM import_jobs WHERE id = ?")
        .bind(claimed.id)
        .fetch_one(pool)
        .await
        .context("record import progress")?;
    Ok(Some(cancel))
}

/// Ends a run: its last figures, its end state, and the file is no longer kept.
pub async fn finish(
    pool: &MySqlPool,
    claimed: &Claimed,
    owner: &str,
    progress: Progress,
    state: ImportState,
    error: Option<&str>,
) -> Result<(), AppError> {
    let mut tx = pool.begin().await.context("finish import")?;
    let sql = format!(
        "UPDATE import_jobs SET {FIGURES}, state = ?, error = ?, lease_owner = NULL, lease_until = NULL, \
         updated_at = UTC_TIMESTAMP(6), finished_at = UTC_TIMESTAMP(6) \
         WHERE id = ? AND state = 'running' AND lease_owner = ?"
    );
    let ended = bind_figures(sqlx::query(&sql), progress)
        .bind(state)
        .bind(error)
        .bind(claimed.id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .context("finish import")?
        .rows_affected();
    if ended == 1 {
        sqlx::query("DELETE FROM import_files WHERE job_id = ?")
            .bind(claimed.id)
            .execute(&mut *tx)
            .await
            .context("finish import")?;
    }
    tx.commit().await.context("finish import")
}
