use crate::model::{AppError, HealthReport};
use leptos::prelude::*;

/// Public on purpose, like `/healthz`: it says which stores are up and nothing else.
#[server(prefix = "/api", endpoint = "health")]
pub async fn service_health() -> Result<HealthReport, AppError> {
    let state = crate::server::app_state()?;
    Ok(crate::server::health::check(&state).await)
}
