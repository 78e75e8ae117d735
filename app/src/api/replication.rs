//! The replication panel: dual-write journal counts, reconciliation reports, Run sync.
//! Technical workers and senior managers only.

use crate::model::{AppError, ReplicationStatus, SyncReport};
#[cfg(feature = "ssr")]
use crate::server::{auth::Access, auth::sessions::Activity, respond, respond_as};
use leptos::prelude::*;

#[server(prefix = "/api", endpoint = "replication/status")]
pub async fn replication_overview(background: Option<bool>) -> Result<ReplicationStatus, AppError> {
    respond_as(
        Activity::of(background),
        Access::STAFF,
        |call, _| async move {
            let mut status = crate::server::sales::sync::status(&call.state.mysql).await?;
            status.deployment = crate::server::sales::primary::deployment(&call.state.mongo)
                .await
                .ok()
                .map(|d| d.describe());
            Ok(status)
        },
    )
    .await
}

/// Starts a reconciliation run in the background and returns it as recorded; the
/// panel follows its progress through `replication/status`.
#[server(prefix = "/api", endpoint = "replication/sync")]
pub async fn run_sync(dry_run: bool) -> Result<SyncReport, AppError> {
    use crate::server::sales::sync::{SyncOptions, start};
    respond(Access::STAFF, |call, actor| async move {
        let mut options = SyncOptions::new(crate::model::SyncTrigger::Manual);
        options.dry_run = dry_run;
        options.started_by = Some(actor.user.id);
        start(&call.state.writer, options).await
    })
    .await
}
