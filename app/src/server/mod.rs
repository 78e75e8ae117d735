//! Server-only code: database access, services and request guards.
//! Compiled only with the `ssr` feature, so none of it reaches the WASM bundle.

pub mod auth;
pub mod db;
pub mod health;
pub mod sales;
pub mod state;

pub use state::{AppState, AuthSettings, app_state};

/// Runs a server function's body and sets the HTTP status of a failure from its error,
/// so clients and tests see 401/403/400/429/503 rather than a blanket 500. The response
/// options are taken from the context before the body's first `.await`.
pub async fn respond<T>(
    body: impl std::future::Future<Output = Result<T, crate::model::AppError>>,
) -> Result<T, crate::model::AppError> {
    let options = leptos::prelude::use_context::<leptos_axum::ResponseOptions>();
    let result = body.await;
    if let Err(e) = &result
        && let Some(options) = options
        && let Ok(code) = http::StatusCode::from_u16(e.status_code())
    {
        options.set_status(code);
    }
    result
}

/// Redirects a form that was posted without JavaScript (the browser asked for HTML).
/// Hydrated forms navigate on the client once the result is in, so the UI state is
/// updated before the next page renders.
pub fn redirect_plain_form(path: &str) {
    let plain_form = leptos::prelude::use_context::<http::request::Parts>().is_some_and(|parts| {
        parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
    });
    if plain_form {
        leptos_axum::redirect(path);
    }
}
