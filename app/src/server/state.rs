use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sqlx::MySqlPool;

/// Everything a request handler or server function needs, cloned cheaply per request.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub mysql: MySqlPool,
    pub mongo: mongodb::Database,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
