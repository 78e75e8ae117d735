//! `scripts/bench auth`: logins per second against the hashing ceiling, and how
//! /healthz answers while logins storm.

use crate::{Bench, PASSWORD, browser, ms, percentile, sized};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

pub async fn run(bench: &Bench) -> anyhow::Result<()> {
    const CLIENTS: usize = 20;
    let storm_for = Duration::from_secs(sized(10, 1));
    let many: usize = sized(200, 20);

    // 1. argon2id hash time, one core.
    let mut hashes = Vec::new();
    for _ in 0..sized(20, 2) {
        let t = Instant::now();
        app::server::auth::password::hash(PASSWORD.into())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        hashes.push(t.elapsed());
    }
    hashes.sort();

    for i in 0..many {
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
    tokio::time::sleep(Duration::from_secs(sized(3, 1))).await;
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
            while started.elapsed() < storm_for {
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
        storm_for.as_secs(),
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
    let parallel = burst(
        &bench.base_url,
        (0..many)
            .map(|i| (format!("bench{i}"), PASSWORD.to_string()))
            .collect(),
    )
    .await;
    let failed_before = audit_rows(bench, "login_failed").await?;
    let one = burst(
        &bench.base_url,
        (0..many)
            .map(|i| ("bench0".to_string(), format!("Wrong-Guess-{i:04}")))
            .collect(),
    )
    .await;
    let checked = audit_rows(bench, "login_failed").await? - failed_before;
    let throttled_rows = audit_rows(bench, "login_throttled").await?;
    let count = |b: &Burst, status: u16| b.statuses.get(&status).copied().unwrap_or(0);
    println!(
        "\n| {many} parallel logins | 200 ok | 401 checked | 429 throttled | 503 busy | other | password checks | wall s | peak hashing / queued | /healthz p99 ms | p99 vs idle |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, b, checks) in [
        (
            "right password, every account",
            &parallel,
            count(&parallel, 200) as i64,
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
            many as u64 - known,
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
