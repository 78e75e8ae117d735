//! Builds the axum application: state, routes, middleware, listener.

use crate::config::{Databases, ServeConfig};
use crate::telemetry;
use app::server::client_ip::{self, ClientIp, ProxyNet};
use app::server::{AppState, db};
use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::time::Duration;
use tokio::net::TcpListener;
use tower_sessions::{SessionManagerLayer, cookie::SameSite, session_store::ExpiredDeletion};
use tower_sessions_sqlx_store::MySqlStore;

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

/// Connection handles for both stores; neither connects until first used.
pub async fn connect(
    databases: &Databases,
) -> anyhow::Result<(sqlx::MySqlPool, mongodb::Database)> {
    let mysql = db::mysql_pool(
        databases.mysql.clone(),
        databases.mysql_max_connections,
        databases.lease.lock_wait(),
    );
    let mongo = db::mongo_database(&databases.mongodb_uri, &databases.mongodb_database).await?;
    Ok((mysql, mongo))
}

/// Runs the migrations now if MySQL answers; if it is down, keeps retrying in the
/// background so the server can start and report MySQL as down meanwhile.
async fn migrate_or_retry_later(state: &AppState) -> anyhow::Result<()> {
    match db::MIGRATOR.run(&state.mysql).await {
        Ok(()) => Ok(()),
        Err(sqlx::migrate::MigrateError::Execute(e)) if is_unavailable(&e) => {
            tracing::warn!(error = %e, "MySQL is down at startup; migrations will run once it is back");
            let pool = state.mysql.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                loop {
                    tokio::time::sleep(delay).await;
                    match db::MIGRATOR.run(&pool).await {
                        Ok(()) => {
                            tracing::info!("MySQL is back; migrations applied");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "migrations still pending");
                            delay = (delay * 2).min(Duration::from_secs(30));
                        }
                    }
                }
            });
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("database migration failed: {e}")),
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
    )
}

impl Application {
    pub async fn build(
        databases: &Databases,
        serve: &ServeConfig,
        leptos_options: LeptosOptions,
    ) -> anyhow::Result<Self> {
        serve.validate()?;
        let (mysql, mongo) = connect(databases).await?;
        let writer = app::server::sales::dual_write::writer_with(
            mysql.clone(),
            mongo.clone(),
            databases.lease,
        );
        let state = AppState {
            leptos_options,
            counts: app::server::sales::queries::CountCache::default(),
            writer,
            mysql,
            mongo,
            auth: serve.auth_settings(),
        };
        migrate_or_retry_later(&state).await?;
        let listener = TcpListener::bind(serve.site_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", serve.site_addr))?;
        let store = session_store(&state.mysql, databases)?;
        let router = router(state.clone())
            .layer(session_layer(store.clone(), serve))
            .layer(middleware::from_fn_with_state(
                std::sync::Arc::<[ProxyNet]>::from(serve.trusted_proxies.clone()),
                client_ip,
            ));
        app::server::auth::password::warm_up();
        spawn_maintenance(state.clone(), store);
        spawn_mongo_indexes(state.mongo.clone());
        // Rolls back edits whose writer died or stalled past its lease, at start and then
        // every interval.
        app::server::sales::dual_write::spawn_recovery(
            state.writer.clone(),
            Duration::from_secs(serve.recovery_interval_secs),
        );
        if serve.sync_interval_secs > 0 {
            app::server::sales::sync::spawn_schedule(
                state.writer.clone(),
                Duration::from_secs(serve.sync_interval_secs),
            );
        }
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "listening");
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
    }
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}

/// tower-sessions' store on the app's own pool, in the app's own database.
fn session_store(pool: &sqlx::MySqlPool, databases: &Databases) -> anyhow::Result<MySqlStore> {
    let database = databases.mysql.get_database().unwrap_or_default();
    MySqlStore::new(pool.clone())
        .with_schema_name(database)
        .and_then(|s| s.with_table_name("sessions"))
        .map_err(|e| anyhow::anyhow!("session store: {e}"))
}

/// HttpOnly, SameSite=Lax cookies; over HTTPS also Secure with the `__Host-` prefix,
/// which browsers only accept for Secure, host-only, `Path=/` cookies.
fn session_layer(store: MySqlStore, serve: &ServeConfig) -> SessionManagerLayer<MySqlStore> {
    let name = if serve.cookie_secure {
        "__Host-portal_session"
    } else {
        "portal_session"
    };
    SessionManagerLayer::new(store)
        .with_name(name)
        .with_secure(serve.cookie_secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
}

/// Creates the sales indexes once MongoDB answers (it may be down at startup).
fn spawn_mongo_indexes(mongo: mongodb::Database) {
    tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        while let Err(e) = app::server::sales::primary::ensure_indexes(&mongo).await {
            tracing::warn!(error = %e, "sales indexes not created yet; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    });
}

/// Hourly clean-up of expired session records and timed-out logins.
fn spawn_maintenance(state: AppState, store: MySqlStore) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
            let cutoff = chrono::Utc::now().naive_utc()
                - chrono::Duration::from_std(state.auth.absolute_timeout)
                    .unwrap_or(chrono::Duration::hours(8));
            if let Err(e) = sqlx::query("DELETE FROM user_sessions WHERE created_at < ?")
                .bind(cutoff)
                .execute(&state.mysql)
                .await
            {
                tracing::warn!(error = %e, "could not delete timed-out logins");
            }
        }
    });
}

/// Records who the client is (see `app::server::client_ip`) for the handlers below.
async fn client_ip(
    State(trusted): State<std::sync::Arc<[ProxyNet]>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|ci| ci.0.ip());
    if let Some(peer) = peer {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let client = client_ip::resolve(peer, forwarded, &trusted);
        request.extensions_mut().insert(ClientIp(client));
    }
    next.run(request).await
}

/// Rejects state-changing requests sent from another site (CSRF). Browsers mark
/// requests with `Sec-Fetch-Site`; older ones still send `Origin` on POST.
async fn reject_cross_site(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && is_cross_site(request.headers()) {
        tracing::warn!(path = %request.uri().path(), "cross-site request rejected");
        return (StatusCode::FORBIDDEN, "Cross-site request rejected").into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or("null");
            let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
            authority != host.to_str().unwrap_or("")
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let shell = {
        let options = state.leptos_options.clone();
        move || app::shell(options.clone())
    };
    Router::new()
        .route("/healthz", get(healthz))
        .leptos_routes_with_context(&state, routes, context, shell)
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(middleware::from_fn(reject_cross_site))
        .layer(telemetry::layer())
        .with_state(state)
}

#[tracing::instrument(skip_all)]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<app::model::HealthReport>) {
    let report = app::server::health::check(&state).await;
    let status = if report.all_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
