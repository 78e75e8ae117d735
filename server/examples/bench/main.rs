//! Benchmarks: `scripts/bench auth|import|replication` (see the README). Prints tables of figures, each
//! compared with a baseline measured in the same run. Not a test: nothing here asserts.
//!
//! It starts the real server in-process on port 0, against throw-away databases on the
//! local MariaDB and FerretDB.

mod dashboards;
mod replication;

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
            lease: app::server::sales::dual_write::LeasePolicy::default(),
        };
        let serve = ServeConfig {
            site_addr: "127.0.0.1:0".parse()?,
            cookie_secure: false,
            session_idle_timeout_secs: 1800,
            session_absolute_timeout_secs: 28800,
            login_throttle_max_failures: 5,
            login_throttle_base_delay_secs: 30,
            login_throttle_client_max_failures: 50,
            login_rate_per_minute: 1_000_000,
            allow_insecure_cookies: false,
            public_url: None,
            smtp_url: "smtp://127.0.0.1:1025".into(),
            mail_from: "bench <bench@localhost>".into(),
            trusted_proxies: Vec::new(),
            seed_demo: false,
            sync_interval_secs: 0,
            recovery_interval_secs: 10,
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
    bench: &Bench,
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
    let id = app::server::auth::accounts::create_active_user(&bench.mysql, &account, "benchmark")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    sqlx::query(
        "INSERT INTO second_factors (user_id, secret, confirmed_at, created_at) \
         VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .bind(id)
    .bind(SECRET)
    .execute(&bench.mysql)
    .await?;
    let client = browser(&bench.base_url);
    let login = client
        .post(format!("{}/api/login", bench.base_url))
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
        .post(format!("{}/api/login/second-step", bench.base_url))
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

/// What a burst of parallel logins got: answers by status, the costly-work queue's
/// peaks (running, waiting) sampled every millisecond, and /healthz meanwhile.
struct Burst {
    statuses: std::collections::BTreeMap<u16, u64>,
    elapsed: Duration,
    peak_running: usize,
    peak_waiting: usize,
    healthz: Vec<Duration>,
}

/// Sends every login at once, each from a browser of its own (no device cookie).
async fn burst(base: &str, logins: Vec<(String, String)>) -> Burst {
    let stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe_healthz(base.to_string(), stop.clone()));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut running, mut waiting) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let (r, w) = app::server::limits::COSTLY.load();
                (running, waiting) = (running.max(r), waiting.max(w));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (running, waiting)
        })
    };
    let started = Instant::now();
    let answers = futures::future::join_all(logins.into_iter().map(|(username, password)| {
        let url = format!("{base}/api/login");
        let client = browser(base);
        async move {
            client
                .post(url)
                .form(&[("username", username), ("password", password)])
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    }))
    .await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (peak_running, peak_waiting) = sampler.await.unwrap_or_default();
    let mut statuses = std::collections::BTreeMap::new();
    for status in answers {
        *statuses.entry(status).or_default() += 1;
    }
    Burst {
        statuses,
        elapsed,
        peak_running,
        peak_waiting,
        healthz: probe.await.unwrap_or_default(),
    }
}

async fn audit_rows(bench: &Bench, event: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM auth_audit WHERE event = ?")
            .bind(event)
            .fetch_one(&bench.mysql)
            .await?,
    )
}

async fn auth(bench: &Bench) -> anyhow::Result<()> {
    const CLIENTS: usize = 20;
    const STORM: Duration = Duration::from_secs(10);
    const MANY: usize = 200;

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

    for i in 0..MANY {
        let input = app::model::RegistrationInput {
            username: format!("bench{i}"),
            email: format!("bench{i}@example.com"),
            password: PASSWORD.into(),
            confirm_password: PASSWORD.into(),
            role: "customer".into(),
        };
        let account = input.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        app::server::auth::accounts::create_active_user(&bench.mysql, &account, "benchmark")
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
    let deferred = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..CLIENTS {
        let (base, ok, failed, deferred) = (
            bench.base_url.clone(),
            ok.clone(),
            failed.clone(),
            deferred.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = browser(&base);
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
                    Ok(r) if r.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    // Busy or throttled: a well-behaved client waits as told.
                    Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {
                        deferred.fetch_add(1, Ordering::Relaxed);
                        let wait = r
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(1);
                        tokio::time::sleep(Duration::from_secs(wait)).await;
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\n## Auth benchmark ({cores} cores)\n");
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
        "| login throughput, {CLIENTS} concurrent clients, {} s | {:.1} logins/s ({} ok, {} told to wait (429/503, then waited Retry-After), {} failed) |",
        STORM.as_secs(),
        logins as f64 / elapsed.as_secs_f64(),
        logins,
        deferred.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!(
        "| CPU ceiling: {cores} cores / one argon2id verify per login | {:.1} logins/s |",
        cores as f64 / percentile(&hashes, 0.5).as_secs_f64()
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

    // 4. 200 parallel logins: the right password for 200 accounts, then 200 wrong
    // guesses at one account, each from a browser the accounts have never seen.
    let many = burst(
        &bench.base_url,
        (0..MANY)
            .map(|i| (format!("bench{i}"), PASSWORD.to_string()))
            .collect(),
    )
    .await;
    let failed_before = audit_rows(bench, "login_failed").await?;
    let one = burst(
        &bench.base_url,
        (0..MANY)
            .map(|i| ("bench0".to_string(), format!("Wrong-Guess-{i:04}")))
            .collect(),
    )
    .await;
    let checked = audit_rows(bench, "login_failed").await? - failed_before;
    let throttled_rows = audit_rows(bench, "login_throttled").await?;
    let count = |b: &Burst, status: u16| b.statuses.get(&status).copied().unwrap_or(0);
    println!(
        "\n| {MANY} parallel logins | 200 ok | 401 checked | 429 throttled | 503 busy | other | password checks | wall s | peak hashing / queued | /healthz p99 ms | p99 vs idle |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, b, checks) in [
        (
            "right password, 200 accounts",
            &many,
            count(&many, 200) as i64,
        ),
        ("wrong password, one account", &one, checked),
    ] {
        let known: u64 = [200, 401, 429, 503].iter().map(|s| count(b, *s)).sum();
        println!(
            "| {name} | {} | {} | {} | {} | {} | {checks} | {:.2} | {} / {} | {} | {:.2}x |",
            count(b, 200),
            count(b, 401),
            count(b, 429),
            count(b, 503),
            MANY as u64 - known,
            b.elapsed.as_secs_f64(),
            b.peak_running,
            b.peak_waiting,
            ms(percentile(&b.healthz, 0.99)),
            percentile(&b.healthz, 0.99).as_secs_f64()
                / percentile(&idle, 0.99).as_secs_f64().max(1e-9),
        );
    }
    println!(
        "\nThrottle: LOGIN_THROTTLE_MAX_FAILURES=5 here, so at most 5 password checks for the one account; audit rows for its refused flood: {throttled_rows}."
    );
    println!(
        "Target: /healthz p99 under 50 ms during every burst (hashing runs on the blocking pool, one slot per core; a full queue answers 503)."
    );
    Ok(())
}

/// One import run in a child process, so its peak RSS is its own.
struct RunResult {
    sales: u64,
    secs: f64,
    peak_rss_kb: u64,
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
    app::server::db::MIGRATOR.run(&pool).await?;
    let mongo = mongodb::Client::with_uri_str(
        std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into()),
    )
    .await?
    .database(name);
    mongo.drop().await?;
    Ok((pool, mongo))
}

/// Child side: `bench __import batched|baseline FILE LIMIT`; prints `sales secs rss_kb`.
async fn child_import(mode: &str, file: &str, limit: u64) -> anyhow::Result<()> {
    let admin: MySqlConnectOptions = std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://portal:portal@127.0.0.1:3307/portal".into())
        .parse()?;
    server::telemetry::init("warn");
    let name = format!("bench_import_{}", std::process::id());
    let (mysql, mongo) = fresh_databases(&admin, &name).await?;
    let started = Instant::now();
    let sales = match mode {
        "batched" => {
            let input = std::fs::File::open(file)?;
            let writer = app::server::sales::dual_write::writer(mysql.clone(), mongo.clone());
            let report = app::server::sales::import::import_reader(
                &writer,
                input,
                false,
                Arc::default(),
                |_| {},
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            report.inserted
        }
        "baseline" => {
            // What a tutorial does: for each sale, one insert into MongoDB, then its rows
            // into MySQL one statement at a time, no batching.
            use std::io::BufRead;
            let encoding = app::server::sales::primary::money_encoding(&mongo)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let reader = std::io::BufReader::new(std::fs::File::open(file)?);
            let mut n = 0;
            for line in reader.lines().take(limit as usize) {
                let sale = app::server::sales::import::parse_line(&line?, chrono::Utc::now())
                    .map_err(|e| anyhow::anyhow!(e))?;
                app::server::sales::primary::collection(&mongo)
                    .insert_one(app::server::sales::codec::sale_to_document(&sale, encoding))
                    .await?;
                let d = &sale.draft;
                sqlx::query("INSERT INTO sales (id, sale_date, store_location, purchase_method, coupon_used, customer_gender, customer_age, customer_email, customer_satisfaction, total, version, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
                    .bind(sale.id.as_str()).bind(d.sale_date.naive_utc()).bind(d.store_location.as_str()).bind(d.purchase_method.as_str())
                    .bind(d.coupon_used).bind(d.customer.gender.as_str()).bind(d.customer.age.get()).bind(d.customer.email.as_str())
                    .bind(d.customer.satisfaction.get()).bind(d.total()).bind(sale.version).bind(sale.updated_at.naive_utc())
                    .execute(&mysql).await?;
                for (pos, item) in d.items.iter().enumerate() {
                    sqlx::query("INSERT INTO sale_items (sale_id, position, name, price, quantity) VALUES (?,?,?,?,?)")
                        .bind(sale.id.as_str()).bind(pos as u16).bind(item.name.as_str()).bind(item.price.get()).bind(item.quantity.get())
                        .execute(&mysql).await?;
                    for (t, tag) in item.tags.iter().enumerate() {
                        sqlx::query("INSERT INTO sale_item_tags (sale_id, position, tag_position, tag) VALUES (?,?,?,?)")
                            .bind(sale.id.as_str()).bind(pos as u16).bind(t as u8).bind(tag.as_str())
                            .execute(&mysql).await?;
                    }
                }
                n += 1;
            }
            n
        }
        other => anyhow::bail!("unknown import mode {other}"),
    };
    let secs = started.elapsed().as_secs_f64();
    println!("{sales} {secs} {}", peak_rss_kb());
    let mut conn = admin.connect().await?;
    sqlx::query(&format!("DROP DATABASE `{name}`"))
        .execute(&mut conn)
        .await?;
    mongo.drop().await?;
    Ok(())
}

async fn run_child(mode: &str, file: &std::path::Path, limit: u64) -> anyhow::Result<RunResult> {
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "__import",
            mode,
            &file.to_string_lossy(),
            &limit.to_string(),
        ])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "child {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    anyhow::ensure!(f.len() == 3, "unexpected child output {text:?}");
    Ok(RunResult {
        sales: f[0].parse()?,
        secs: f[1].parse()?,
        peak_rss_kb: f[2].parse()?,
    })
}

fn write_generated(count: u64, path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for draft in app::server::sales::generate::sales(42).take(count as usize) {
        writeln!(
            out,
            "{}",
            app::server::sales::generate::to_extended_json(&draft)
        )?;
    }
    Ok(out.flush()?)
}

async fn import_bench(with_million: bool) -> anyhow::Result<()> {
    const BASELINE_LIMIT: u64 = 2000;
    let dir = std::env::temp_dir().join(format!("portal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut inputs: Vec<(String, std::path::PathBuf)> = Vec::new();
    match std::env::var_os("SALES_DATASET") {
        Some(p) => inputs.push(("real 5,000-sale file".into(), p.into())),
        None => println!("(SALES_DATASET not set: the real-file row is skipped)"),
    }
    let generated = dir.join("generated-100k.json");
    write_generated(100_000, &generated)?;
    inputs.push(("generated 100,000 sales".into(), generated));

    println!("\n## Import benchmark (release build, local MariaDB + FerretDB)\n");
    println!("| input | importer | sales | seconds | sales/s | peak RSS MiB | speed-up |");
    println!("|---|---|---|---|---|---|---|");
    for (label, path) in &inputs {
        let batched = run_child("batched", path, u64::MAX).await?;
        let baseline = run_child("baseline", path, BASELINE_LIMIT).await?;
        let rate = |r: &RunResult| r.sales as f64 / r.secs.max(1e-9);
        let mib = |r: &RunResult| r.peak_rss_kb as f64 / 1024.0;
        println!(
            "| {label} | batched, streaming | {} | {:.1} | {:.0} | {:.1} | {:.1}x |",
            batched.sales,
            batched.secs,
            rate(&batched),
            mib(&batched),
            rate(&batched) / rate(&baseline)
        );
        println!(
            "| {label} | per-document baseline (first {}) | {} | {:.1} | {:.0} | {:.1} | 1.0x |",
            baseline.sales,
            baseline.sales,
            baseline.secs,
            rate(&baseline),
            mib(&baseline)
        );
    }
    if with_million {
        let million = dir.join("generated-1m.json");
        let t = Instant::now();
        write_generated(1_000_000, &million)?;
        let gen_secs = t.elapsed().as_secs_f64();
        let run = run_child("batched", &million, u64::MAX).await?;
        println!(
            "| generated 1,000,000 sales | batched, streaming | {} | {:.1} | {:.0} | {:.1} | |",
            run.sales,
            run.secs,
            run.sales as f64 / run.secs,
            run.peak_rss_kb as f64 / 1024.0
        );
        println!("\nGenerating the 1,000,000-sale file took {gen_secs:.1} s.");
    }
    std::fs::remove_dir_all(&dir)?;
    println!("\nTarget: at least 20x the baseline's rate, with peak RSS flat as the input grows.");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__import") {
        return child_import(&args[1], &args[2], args[3].parse()?).await;
    }
    if args.first().map(String::as_str) == Some("__sync") {
        return replication::child_main(&args[1], &args[2]).await;
    }
    if args.first().map(String::as_str) == Some("replication") {
        let size = match args.iter().position(|a| a == "--size") {
            Some(i) => args
                .get(i + 1)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(100_000),
            None => 100_000,
        };
        return replication::run(size).await;
    }
    if args.first().map(String::as_str) == Some("import") {
        return import_bench(args.iter().any(|a| a == "--million")).await;
    }
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
            "dashboards" => {
                let size = match which.iter().position(|a| a == "--size") {
                    Some(i) => which
                        .get(i + 1)
                        .map(|s| s.parse())
                        .transpose()?
                        .unwrap_or(1_000_000),
                    None => 1_000_000,
                };
                dashboards::run(&bench, size).await?
            }
            "--size" => {}
            n if n.parse::<usize>().is_ok() => {}
            other => anyhow::bail!(
                "unknown benchmark {other:?} (known: auth, dashboards [--size N], import [--million], replication [--size N])"
            ),
        }
    }
    bench.stop().await
}
