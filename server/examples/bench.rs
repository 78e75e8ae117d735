//! Benchmarks: `scripts/bench auth` (see the README). Prints tables of figures, each
//! compared with a baseline measured in the same run. Not a test: nothing here asserts.
//!
//! It starts the real server in-process on port 0, against throw-away databases on the
//! local MariaDB and FerretDB.

use server::config::{Databases, ServeConfig};
use server::startup::Application;
use sqlx::ConnectOptions;
use sqlx::mysql::MySqlConnectOptions;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "Quiet-Marble-Orchard-58";

struct Bench {
    base_url: String,
    mysql: sqlx::MySqlPool,
    db_name: String,
    admin: MySqlConnectOptions,
}

impl Bench {
    async fn start() -> anyhow::Result<Bench> {
        let mysql_url = std::env::var("MYSQL_URL")
            .unwrap_or_else(|_| "mysql://portal:portal@127.0.0.1:3307/portal".into());
        let mongodb_uri =
            std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into());
        let admin: MySqlConnectOptions = mysql_url.parse()?;
        let db_name = format!("bench_{}", std::process::id());
        let mut conn = admin.connect().await?;
        sqlx::query(&format!("CREATE DATABASE `{db_name}`"))
            .execute(&mut conn)
            .await?;
        let databases = Databases {
            mysql: admin.clone().database(&db_name),
            mongodb_uri,
            mongodb_database: db_name.clone(),
            mysql_max_connections: 20,
        };
        let serve = ServeConfig {
            site_addr: "127.0.0.1:0".parse()?,
            cookie_secure: false,
            session_idle_timeout_secs: 1800,
            session_absolute_timeout_secs: 28800,
            login_throttle_max_failures: 5,
            login_throttle_base_delay_secs: 30,
            seed_demo: false,
        };
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
        if let Ok(client) = mongodb::Client::with_uri_str(
            std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into()),
        )
        .await
        {
            let _ = client.database(&self.db_name).drop().await;
        }
        Ok(())
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

/// Polls /healthz every 10 ms until `stop`, returning the sorted latencies.
async fn probe_healthz(base: String, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            samples.push(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples.sort();
    samples
}

async fn auth(bench: &Bench) -> anyhow::Result<()> {
    const CLIENTS: usize = 20;
    const STORM: Duration = Duration::from_secs(10);

    // 1. argon2id hash time, one core.
    let mut hashes = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        app::server::auth::password::hash(PASSWORD.into())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        hashes.push(t.elapsed());
    }
    hashes.sort();

    for i in 0..CLIENTS {
        let input = app::model::RegistrationInput {
            username: format!("bench{i}"),
            email: format!("bench{i}@example.com"),
            password: PASSWORD.into(),
            confirm_password: PASSWORD.into(),
            role: "customer".into(),
        };
        let account = input.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        app::server::auth::accounts::create_active_user(&bench.mysql, &account)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }

    // 2. Baseline: /healthz latency with the server idle.
    let stop = Arc::new(AtomicBool::new(false));
    let idle_probe = tokio::spawn(probe_healthz(bench.base_url.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let idle = idle_probe.await?;

    // 3. Login storm: 20 clients logging in back to back, /healthz probed meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let storm_probe = tokio::spawn(probe_healthz(bench.base_url.clone(), stop.clone()));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..CLIENTS {
        let (base, ok, failed) = (bench.base_url.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .expect("client");
            while started.elapsed() < STORM {
                let res = client
                    .post(format!("{base}/api/login"))
                    .form(&[
                        ("username", format!("bench{i}")),
                        ("password", PASSWORD.to_string()),
                    ])
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let storm = storm_probe.await?;

    let logins = ok.load(Ordering::Relaxed);
    println!(
        "\n## Auth benchmark ({} cores)\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| argon2id hash (m=19456 KiB, t=2, p=1), p50 | {} ms |",
        ms(percentile(&hashes, 0.5))
    );
    println!(
        "| argon2id hash, p99 | {} ms |",
        ms(percentile(&hashes, 0.99))
    );
    println!(
        "| login throughput, {CLIENTS} concurrent clients, {} s | {:.1} logins/s ({} ok, {} failed) |",
        STORM.as_secs(),
        logins as f64 / elapsed.as_secs_f64(),
        logins,
        failed.load(Ordering::Relaxed)
    );
    println!(
        "| ceiling: 2 cores / (2 hashes per login: dummy-free path, 1 verify) | {:.1} logins/s |",
        2.0 / percentile(&hashes, 0.5).as_secs_f64()
    );
    println!();
    println!("| GET /healthz | samples | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!(
        "| idle (baseline) | {} | {} | {} | {} |",
        idle.len(),
        ms(percentile(&idle, 0.5)),
        ms(percentile(&idle, 0.99)),
        ms(idle.last().copied().unwrap_or_default())
    );
    println!(
        "| during login storm | {} | {} | {} | {} |",
        storm.len(),
        ms(percentile(&storm, 0.5)),
        ms(percentile(&storm, 0.99)),
        ms(storm.last().copied().unwrap_or_default())
    );
    println!(
        "| ratio storm/idle | | {:.2}x | {:.2}x | |",
        percentile(&storm, 0.5).as_secs_f64() / percentile(&idle, 0.5).as_secs_f64().max(1e-9),
        percentile(&storm, 0.99).as_secs_f64() / percentile(&idle, 0.99).as_secs_f64().max(1e-9)
    );
    println!(
        "\nTarget: /healthz p99 under 50 ms during the storm (hashing runs on the blocking pool)."
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let which = if which.is_empty() {
        vec!["auth".to_string()]
    } else {
        which
    };
    let bench = Bench::start().await?;
    for name in &which {
        match name.as_str() {
            "auth" => auth(&bench).await?,
            other => anyhow::bail!("unknown benchmark {other:?} (known: auth)"),
        }
    }
    bench.stop().await
}
