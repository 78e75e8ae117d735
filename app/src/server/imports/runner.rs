//! Runs confirmed imports in the background, in every instance: each claims the oldest
//! queued job (or a running one whose instance died: its lease ran out) and imports its
//! file through the same importer and dual writer as `server import`. Progress goes to
//! the job's row once a second, which renews the lease and reads whether a stop was
//! asked for. A resumed job starts its file over: every batch is whole in both stores or
//! in neither, and sales already there are skipped, so nothing is written twice.

use super::check::parse_all;
use super::jobs::{self, Claimed, Progress};
use crate::model::AppError;
use crate::model::imports::ImportState;
use crate::server::sales::dual_write::{Writer, instance_id};
use crate::server::sales::import::{self, DEFAULT_BATCH, Parsed};
use sqlx::MySqlPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often an idle instance looks for a job, and a running one reports.
const TICK: Duration = Duration::from_secs(1);
/// Runs a job gets before it is given up as failed: a run that meets sales held by
/// another writer pauses and is tried again (recovery frees sales a dead writer held).
const MOST_RUNS: u32 = 8;
/// The pause before such a job is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Starts this instance's runner. `ttl` is how long a claim lasts without a report.
pub fn spawn(pool: MySqlPool, writer: Writer, ttl: Duration) {
    let owner = instance_id();
    tokio::spawn(async move {
        loop {
            match jobs::claim(&pool, &owner, ttl).await {
                Ok(Some(claimed)) => run(&pool, &writer, &owner, ttl, claimed).await,
                Ok(None) => tokio::time::sleep(TICK).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for imports to run");
                    tokio::time::sleep(TICK * 5).await;
                }
            }
        }
    });
}

#[tracing::instrument(skip(pool, writer, ttl), fields(job = claimed.id))]
async fn run(pool: &MySqlPool, writer: &Writer, owner: &str, ttl: Duration, claimed: Claimed) {
    tracing::info!("import started");
    let progress = Arc::new(Mutex::new(Progress::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let reporter = tokio::spawn(report_every_tick(
        pool.clone(),
        claimed.clone(),
        owner.to_string(),
        ttl,
        progress.clone(),
        stop.clone(),
        lost.clone(),
    ));
    let outcome = import_file(pool, writer, claimed.id, &progress, &stop).await;
    reporter.abort();
    if lost.load(Ordering::SeqCst) {
        tracing::warn!("import lease lost: another instance runs the job now");
        return;
    }
    let last = *progress.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = &outcome
        && retryable(e)
        && claimed.runs < MOST_RUNS
    {
        tracing::warn!(error = %e, runs = claimed.runs, "import paused; it runs again shortly");
        if let Err(e) = jobs::pause(pool, &claimed, owner, last, RETRY_AFTER).await {
            tracing::error!(error = %e, "could not pause an import; its lease runs out instead");
        }
        return;
    }
    let (state, error) = match &outcome {
        Ok(()) if stop.load(Ordering::SeqCst) => (ImportState::Cancelled, None),
        Ok(()) => (ImportState::Done, None),
        Err(e) => (ImportState::Failed, Some(e.to_string())),
    };
    if let Err(e) = jobs::finish(pool, &claimed, owner, last, state, error.as_deref()).await {
        // The lease runs out and another instance resumes the job.
        tracing::error!(error = %e, "could not record the end of an import");
        return;
    }
    tracing::info!(
        state = state.as_str(),
        inserted = last.inserted,
        "import ended"
    );
}

/// Errors that another run can get past: sales held by another writer, a store that
/// did not answer in time.
fn retryable(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Conflict(_) | AppError::Busy(_) | AppError::Unavailable(_)
    )
}

/// Feeds the job's sales to the importer until the end or a stop.
async fn import_file(
    pool: &MySqlPool,
    writer: &Writer,
    id: u64,
    progress: &Arc<Mutex<Progress>>,
    stop: &Arc<AtomicBool>,
) -> Result<(), AppError> {
    let content = Arc::new(jobs::file(pool, id).await?);
    let records = parse_all(content).await?;
    let (tx, rx) = mpsc::channel::<Parsed>(2 * DEFAULT_BATCH);
    let feeder = {
        let stop = stop.clone();
        tokio::spawn(async move {
            for parsed in records {
                if stop.load(Ordering::SeqCst) || tx.send(parsed).await.is_err() {
                    break;
                }
            }
        })
    };
    let shared = progress.clone();
    let outcome = import::run(writer, rx, DEFAULT_BATCH, false, move |report| {
        let mut p = shared.lock().unwrap_or_else(|e| e.into_inner());
        *p = Progress {
            processed: report.inserted + report.skipped,
            inserted: report.inserted,
            skipped: report.skipped,
        };
    })
    .await;
    feeder.abort();
    match outcome {
        Ok(_) => Ok(()),
        Err(stopped) => {
            let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
            p.inserted = stopped.report.inserted;
            p.skipped = stopped.report.skipped;
            p.processed = p.inserted + p.skipped;
            Err(stopped.cause)
        }
    }
}

/// Reports progress each tick; raises `stop` when a cancel is asked for, and `lost`
/// too when another instance has taken the job over.
async fn report_every_tick(
    pool: MySqlPool,
    claimed: Claimed,
    owner: String,
    ttl: Duration,
    progress: Arc<Mutex<Progress>>,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(TICK).await;
        let now = *progress.lock().unwrap_or_else(|e| e.into_inner());
        match jobs::report(&pool, &claimed, &owner, ttl, now).await {
            Ok(Some(cancel)) => {
                if cancel {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            Ok(None) => {
                lost.store(true, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
                return;
            }
            // A missed report shortens the lease; the next one renews it.
            Err(e) => tracing::warn!(error = %e, "could not record import progress"),
        }
    }
}
