//! Benchmarks: `scripts/bench auth|dashboards|import|replication|live` (see docs/benchmarks.md).
//! Prints tables of figures, each compared with a baseline measured in the same run.
//! Not a test: nothing here asserts. One module per benchmark; this file holds what
//! they share and the command line.
//!
//! It starts the real server in-process on port 0, against throw-away databases on the
//! local MariaDB and FerretDB.

mod auth;
mod dashboards;
mod import;
mod live;
mod replication;
mod search;

use server::config::{Databases, ServeConfig};
use server::startup::Application;
use sqlx::ConnectOptions;
use sqlx::mysql::MySqlConnectOptions;
use std::time::Duration;

const PASSWORD: &str = "Quiet-Marble-Orchard-58";

/// `PORTAL_BENCH_SMOKE=1`: every benchmark runs end to end with tiny sizes and seconds
/// instead of minutes, so `scripts/test` proves each one still runs. Its figures mean
/// nothing and its tables say so.
fn smoke() -> bool {
    std::env::var_os("PORTAL_BENCH_SMOKE").is_some_and(|v| v == "1")
}

/// `full` normally, `tiny` in a smoke run.
fn sized<T>(full: T, tiny: T) -> T {
    if smoke() { tiny } else { full }
}

struct Bench {
    base_url: String,
    mysql: sqlx::MySqlPool,
    db_name: String,
    admin: MySqlConnectOptions,
}

impl Bench {
    async fn start() -> anyhow::Result<Bench> {
        let admin = mysql_admin()?;
        let db_name = format!("bench_{}", std::process::id());
        let mut conn = admin.connect().await?;
        sqlx::query(&format!("CREATE DATABASE `{db_name}`"))
            .execute(&mut conn)
            .await?;
        let databases = databases(&admin, &db_name);
        let serve = serve_config();
        let app =
            Application::build(&databases, &serve, server::leptos_options(serve.site_addr)).await?;
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let mysql = app.state().mysql.clone();
        tokio::spawn(app.run_until_stopped());
        Ok(Bench {
            base_url,
            mysql,
            db_name,
            admin,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let mut conn = self.admin.connect().await?;
        sqlx::query(&format!("DROP DATABASE `{}`", self.db_name))
            .execute(&mut conn)
            .await?;
        if let Ok(client) = mongodb::Client::with_uri_str(mongodb_uri()).await {
            let _ = client.database(&self.db_name).drop().await;
        }
        Ok(())
    }
}

fn mysql_admin() -> anyhow::Result<MySqlConnectOptions> {
    Ok(std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://portal:portal@127.0.0.1:3307/portal".into())
        .parse()?)
}

fn mongodb_uri() -> String {
    std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into())
}

/// The server's databases: `name` on the local MariaDB and FerretDB.
fn databases(admin: &MySqlConnectOptions, name: &str) -> Databases {
    Databases {
        mysql: admin.clone().database(name),
        mongodb_uri: mongodb_uri(),
        mongodb_database: name.into(),
        mysql_max_connections: 20,
        lease: app::server::sales::dual_write::LeasePolicy::default(),
    }
}

/// The server as benchmarked: port 0, plain HTTP on loopback, no periodic sync, no
/// login rate limit in the way of the load.
fn serve_config() -> ServeConfig {
    ServeConfig {
        login_rate_per_minute: 1_000_000,
        mail_from: "bench <bench@localhost>".into(),
        ..ServeConfig::loopback()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A browser-like client of the site at `origin`: a cookie jar and the `Origin` header.
fn browser(origin: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(value) = origin.parse() {
        headers.insert(reqwest::header::ORIGIN, value);
    }
    reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A logged-in session of a new staff account (a second factor set up, both steps of
/// the login done), as the `Cookie` header value a load generator sends.
async fn staff_session(
    mysql: &sqlx::MySqlPool,
    base_url: &str,
    username: &str,
    role: app::model::Role,
) -> anyhow::Result<String> {
    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let input = app::model::RegistrationInput {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: PASSWORD.into(),
        confirm_password: PASSWORD.into(),
        role: role.as_str().into(),
    };
    let account = input.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let id = app::server::auth::accounts::create_active_user(mysql, &account, "benchmark")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    sqlx::query(
        "INSERT INTO second_factors (user_id, secret, confirmed_at, created_at) \
         VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .bind(id)
    .bind(SECRET)
    .execute(mysql)
    .await?;
    let client = browser(base_url);
    let login = client
        .post(format!("{base_url}/api/login"))
        .form(&[("username", username), ("password", PASSWORD)])
        .send()
        .await?;
    anyhow::ensure!(login.status().is_success(), "login: {}", login.status());
    let code = app::server::auth::second_factor::code_at(
        SECRET,
        app::server::auth::second_factor::current_step(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let res = client
        .post(format!("{base_url}/api/login/second-step"))
        .form(&[("code", code)])
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "second step: {}", res.status());
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("portal_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no session cookie after the second step"))
}

/// Runs this benchmark binary again with `args` (a hidden child subcommand), so that the
/// child's peak RSS is its own; returns what it printed.
async fn run_self(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "child {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn fresh_databases(
    admin: &MySqlConnectOptions,
    name: &str,
) -> anyhow::Result<(sqlx::MySqlPool, mongodb::Database)> {
    let mut conn = admin.connect().await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .await?;
    let pool = app::server::db::mysql_pool(
        admin.clone().database(name),
        10,
        std::time::Duration::from_secs(10),
    );
    app::server::db::migrate(&pool).await?;
    let mongo = mongodb::Client::with_uri_str(
        std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into()),
    )
    .await?
    .database(name);
    mongo.drop().await?;
    Ok((pool, mongo))
}

#[derive(clap::Parser)]
#[command(about = "The portal's benchmarks: tables with same-run baselines")]
struct Cli {
    #[command(subcommand)]
    bench: Which,
}

#[derive(clap::Subcommand)]
enum Which {
    /// Logins per second, and /healthz latency while logins storm.
    Auth,
    /// First-page latency of each dashboard query on a large dataset.
    Dashboards {
        #[arg(long, default_value_t = 1_000_000)]
        size: usize,
    },
    /// Streaming import against a row-by-row baseline.
    Import {
        /// Also import a generated 1,000,000-sale file.
        #[arg(long)]
        million: bool,
        /// Sales in the generated file measured against the baseline.
        #[arg(long, default_value_t = 100_000)]
        size: u64,
    },
    /// The dual write against a raw pair of writes, edit throughput, reconciliation.
    Replication {
        /// Sales in the reconciliation dataset.
        #[arg(long, default_value_t = 100_000)]
        size: usize,
        /// Run only these parts (all when not given).
        #[arg(long, value_enum)]
        only: Vec<replication::Part>,
    },
    /// Edit → event latency on the live streams, and the server's CPU and memory with
    /// many streams open against none.
    Live {
        /// Streams open in the largest phase.
        #[arg(long, default_value_t = 1000)]
        streams: usize,
        /// Seconds of edits per phase.
        #[arg(long, default_value_t = 15)]
        secs: u64,
        /// Edits a second.
        #[arg(long, default_value_t = 4)]
        rate: u64,
    },
    /// Child process of the live benchmark: the server, its port on stdout.
    #[command(name = "__serve", hide = true)]
    ChildServe { database: String },
    /// Child process of the import benchmark (its peak RSS is its own).
    #[command(name = "__import", hide = true)]
    ChildImport {
        mode: String,
        file: String,
        limit: u64,
    },
    /// Child process of the reconciliation benchmark.
    #[command(name = "__sync", hide = true)]
    ChildSync { mode: String, database: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Warnings and errors of the code under measurement go to stderr, so an error
    // counted in a table can be traced to its cause.
    server::telemetry::init("warn");
    let cli = <Cli as clap::Parser>::parse();
    if smoke()
        && !matches!(
            cli.bench,
            Which::ChildImport { .. } | Which::ChildSync { .. } | Which::ChildServe { .. }
        )
    {
        println!("(smoke run: tiny sizes, to prove the benchmark runs; its figures mean nothing)");
    }
    match cli.bench {
        Which::ChildImport { mode, file, limit } => import::child(&mode, &file, limit).await,
        Which::ChildSync { mode, database } => replication::child_main(&mode, &database).await,
        Which::Import { million, size } => import::run(million, size).await,
        Which::Live {
            streams,
            secs,
            rate,
        } => live::run(streams, secs, rate).await,
        Which::ChildServe { database } => live::serve(&database).await,
        Which::Replication { size, only } => replication::run(size, &only).await,
        Which::Auth => {
            let bench = Bench::start().await?;
            auth::run(&bench).await?;
            bench.stop().await
        }
        Which::Dashboards { size } => {
            let bench = Bench::start().await?;
            dashboards::run(&bench, size).await?;
            bench.stop().await
        }
    }
}
