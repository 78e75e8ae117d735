//! Imports from the portal: the jobs, confirming one, cancelling one. The upload itself
//! is a form post to `/api/imports/upload` (`crate::server::imports::upload`), since a
//! file does not travel as a server function's arguments. Staff only.

use crate::model::AppError;
use crate::model::imports::ImportJob;
#[cfg(feature = "ssr")]
use crate::server::{auth::Access, auth::sessions::Activity, imports::jobs, respond, respond_as};
use leptos::prelude::*;

/// The newest imports, newest first.
#[server(prefix = "/api", endpoint = "imports")]
pub async fn list_imports() -> Result<Vec<ImportJob>, AppError> {
    respond(Access::STAFF, |call, _| async move {
        jobs::recent(&call.state.mysql).await
    })
    .await
}

/// One import, as its page follows it (`background`: a poll, not the user's doing).
#[server(prefix = "/api", endpoint = "imports/get")]
pub async fn load_import(id: u64, background: Option<bool>) -> Result<ImportJob, AppError> {
    respond_as(
        Activity::of(background),
        Access::STAFF,
        |call, _| async move { jobs::get(&call.state.mysql, id).await },
    )
    .await
}

/// Confirms a checked import: an instance picks it up within a second.
#[server(prefix = "/api", endpoint = "imports/start")]
pub async fn start_import(id: u64) -> Result<ImportJob, AppError> {
    respond(Access::STAFF, |call, _| async move {
        jobs::start(&call.state.mysql, id).await
    })
    .await
}

/// Stops an import: at once if it has not started, after its batches in flight if it
/// runs (they land whole).
#[server(prefix = "/api", endpoint = "imports/cancel")]
pub async fn cancel_import(id: u64) -> Result<ImportJob, AppError> {
    respond(Access::STAFF, |call, _| async move {
        jobs::cancel(&call.state.mysql, id).await
    })
    .await
}
