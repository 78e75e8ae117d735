use crate::model::{AppError, HealthReport};
use leptos::prelude::*;

/// Public on purpose, like `/healthz`: it says which stores are up and nothing else.
#[server(prefix = "/api", endpoint = "health")]
pub async fn service_health() -> Result<HealthReport, AppError> {
    use crate::server::{auth::Access, respond};
    respond(Access::PUBLIC, |call, ()| async move {
        Ok(crate::server::health::check(&call.state).await)
    })
    .await
}
