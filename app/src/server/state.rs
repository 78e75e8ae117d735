use crate::server::auth::throttle::ThrottlePolicy;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sqlx::MySqlPool;
use std::time::Duration;

/// Everything a request handler or server function needs, cloned cheaply per request.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub mysql: MySqlPool,
    /// A pool of its own for `/healthz`: a burst of requests that holds every
    /// connection of the main pool must not make the health check wait in line.
    pub health_mysql: MySqlPool,
    pub mongo: mongodb::Database,
    pub auth: AuthSettings,
    /// The keys second-factor secrets are sealed with (`auth::secret_keys`).
    pub secret_keys: std::sync::Arc<crate::server::auth::secret_keys::SecretKeys>,
    /// The site as passkeys know it, or why it offers none.
    pub passkeys: crate::server::auth::passkeys::RelyingParty,
    /// The dual writer: every sales edit, recovery and reconciliation goes through it.
    pub writer: crate::server::sales::dual_write::Writer,
    pub counts: crate::server::sales::list::CountCache,
    pub mailer: crate::server::mail::Mailer,
    /// This instance's view of the change feed, which its live streams read.
    pub live: crate::server::live::Live,
    /// The CSV exports running on this instance.
    pub exports: crate::server::sales::export::Exports,
}

#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub throttle: ThrottlePolicy,
    /// Cookies are `Secure` with the `__Host-` prefix (the site is served over HTTPS).
    pub cookie_secure: bool,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The app's state from the request's context. Server functions read it before their
/// first `.await`; a missing one is reported as an internal error rather than a panic.
pub fn app_state() -> Result<AppState, crate::model::AppError> {
    leptos::prelude::use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the request context");
        crate::model::AppError::Internal
    })
}
