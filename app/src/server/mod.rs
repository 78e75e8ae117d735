//! Server-only code: database access, services and request guards.
//! Compiled only with the `ssr` feature, so none of it reaches the WASM bundle.

pub mod auth;
pub mod db;
pub mod health;
pub mod state;

pub use state::{AppState, AuthSettings};

/// Sets the HTTP status of a failed server function from its error, so clients and
/// tests see 401/403/400/429/503 rather than a blanket 500.
pub fn respond<T>(result: Result<T, crate::model::AppError>) -> Result<T, crate::model::AppError> {
    if let Err(e) = &result
        && let Some(options) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
        && let Ok(code) = http::StatusCode::from_u16(e.status_code())
    {
        options.set_status(code);
    }
    result
}
