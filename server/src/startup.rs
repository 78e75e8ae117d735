//! Builds the axum application: state, routes, middleware, listener.

use crate::config::{Databases, ServeConfig};
use crate::{assets, compression, layers, telemetry};
use app::server::client_ip::ProxyNet;
use app::server::{AppState, db};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    middleware,
    routing::{any, get},
};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
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
    match db::migrate(&state.mysql).await {
        Ok(()) => Ok(()),
        Err(sqlx::migrate::MigrateError::Execute(e)) if is_unavailable(&e) => {
            tracing::warn!(error = %e, "MySQL is down at startup; migrations will run once it is back");
            let pool = state.mysql.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                loop {
                    tokio::time::sleep(delay).await;
                    match db::migrate(&pool).await {
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

/// Seals second-factor secrets still in plain text (written before sealing, or by an
/// instance not yet upgraded) or under an older key. Every instance may run it at once:
/// each row is rewritten only if it still holds what was read.
fn spawn_reseal(state: &AppState) {
    let pool = state.mysql.clone();
    let keys = state.secret_keys.clone();
    tokio::spawn(async move {
        match app::server::auth::secret_keys::reseal_all(&pool, &keys).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                sealed = n,
                "second-factor secrets sealed under the newest key"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "second-factor secrets not resealed; `server reseal-totp-secrets` does it")
            }
        }
    });
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
        let listener = TcpListener::bind(serve.site_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", serve.site_addr))?;
        // Bound to port 0 (the tests), the address users reach is the port given: mail
        // links and passkeys need it.
        let serve = &ServeConfig {
            site_addr: listener.local_addr()?,
            ..serve.clone()
        };
        let (mysql, mongo) = connect(databases).await?;
        let writer = app::server::sales::dual_write::writer_with(
            mysql.clone(),
            mongo.clone(),
            databases.lease,
        );
        let mailer = serve.mailer()?;
        let health_mysql = db::mysql_pool(databases.mysql.clone(), 2, databases.lease.lock_wait());
        let state = AppState {
            leptos_options,
            health_mysql,
            mailer,
            counts: app::server::sales::list::CountCache::default(),
            writer,
            mysql,
            mongo,
            auth: serve.auth_settings(),
            secret_keys: std::sync::Arc::new(serve.secret_keys()?),
            passkeys: app::server::auth::passkeys::RelyingParty::for_site(&serve.public_url())
                .map_err(|e| anyhow::anyhow!(e))?,
            live: app::server::live::Live::new(serve.live_settings()),
            exports: Default::default(),
        };
        migrate_or_retry_later(&state).await?;
        spawn_reseal(&state);
        let store = session_store(&state.mysql, databases)?;
        let router = router(state.clone(), serve)
            .layer(session_layer(store.clone(), serve))
            .layer(middleware::from_fn_with_state(
                std::sync::Arc::<[ProxyNet]>::from(serve.trusted_proxies.clone()),
                layers::client_ip,
            ));
        app::server::auth::password::warm_up();
        spawn_maintenance(state.clone(), store);
        app::server::mail::spawn_sender(
            state.mysql.clone(),
            state.mailer.clone(),
            app::server::sales::dual_write::instance_id(),
        );
        spawn_mongo_indexes(state.mongo.clone());
        state.live.spawn(state.mysql.clone(), state.auth);
        // Rolls back edits whose writer died or stalled past its lease, at start and then
        // every interval.
        app::server::sales::dual_write::spawn_recovery(
            state.writer.clone(),
            Duration::from_secs(serve.recovery_interval_secs),
        );
        if serve.run_imports {
            app::server::imports::runner::spawn(
                state.mysql.clone(),
                state.writer.clone(),
                state.writer.policy().ttl,
            );
        }
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
        .with_graceful_shutdown({
            // Open live streams would hold the shutdown until they idle out.
            let live = self.state.live.clone();
            async move {
                shutdown_signal().await;
                live.close();
            }
        })
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

/// Hourly clean-up: expired session records, timed-out logins, old counters, browsers
/// no longer trusted, sent mail after a month, and change-feed entries after a day.
fn spawn_maintenance(state: AppState, store: MySqlStore) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
            let pool = &state.mysql;
            let results = [
                app::server::auth::sessions::prune(pool, state.auth.absolute_timeout)
                    .await
                    .map_err(|e| e.to_string()),
                app::server::mail::prune(pool)
                    .await
                    .map_err(|e| e.to_string()),
                app::server::limits::prune(pool, Duration::from_secs(24 * 3600))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                app::server::auth::devices::prune(pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                app::server::live::prune(pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                app::server::auth::passkeys::prune(pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            ];
            for e in results.into_iter().filter_map(Result::err) {
                tracing::warn!(error = %e, "hourly clean-up step failed");
            }
        }
    });
}

pub fn router(state: AppState, serve: &ServeConfig) -> Router {
    let routes = generate_route_list(app::App);
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let shell = {
        let options = state.leptos_options.clone();
        move || app::shell(options.clone())
    };
    let site = layers::SiteOrigin(serve.public_url().into());
    let headers = layers::Headers {
        https: serve.cookie_secure,
    };
    let pkg = &state.leptos_options.site_pkg_dir;
    let bundle_dir = format!("{}/{pkg}", state.leptos_options.site_root);
    // A file to import is larger than any other request: its own limit, on its route only.
    let uploads = Router::new()
        .route(
            "/api/imports/upload",
            axum::routing::post(app::server::imports::upload::upload),
        )
        .layer(RequestBodyLimitLayer::new(
            app::model::imports::IMPORT_FILE_LIMIT + 64 * 1024,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/events", get(app::server::live::events))
        .route(
            "/api/export/sales.csv",
            get(app::server::sales::export::sales_download),
        )
        .route(
            "/api/export/purchases.csv",
            get(app::server::sales::export::purchases_download),
        )
        .route(
            "/api/export/analytics.csv",
            get(app::server::sales::export::analytics_download),
        )
        .nest(&format!("/{pkg}"), assets::bundle(&bundle_dir))
        // An unknown endpoint is answered here rather than by the fallback, which would
        // render the whole app's not-found page only for `api_errors` to discard it.
        .route("/api/{*unknown}", any(|| async { StatusCode::NOT_FOUND }))
        .leptos_routes_with_context(&state, routes, context, shell)
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        // Answers an over-long declared body with 413 before anything reads it;
        // `api_errors` turns that into the app's `TooLarge`.
        .layer(RequestBodyLimitLayer::new(layers::BODY_LIMIT))
        .merge(uploads)
        .layer(middleware::from_fn_with_state(
            site,
            layers::reject_cross_site,
        ))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(layers::api_errors))
        // Outside `api_errors`, which reads the answers it rewrites as plain JSON.
        .layer(compression::layer())
        .layer(middleware::from_fn_with_state(
            headers,
            layers::security_headers,
        ))
        .layer(telemetry::layer())
        .layer(middleware::from_fn(layers::request_id))
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
