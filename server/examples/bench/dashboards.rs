//! `scripts/bench dashboards [--size N]`: the management analytics over N generated
//! sales (default 1,000,000) against the same figures computed from the sales tables,
//! and request throughput of the server-rendered `/worker` page and the list server
//! function at 50 connections (wrk), against `/healthz` in the same run; between them,
//! the sales table's searches, sorts and pages (`search`).

use crate::{Bench, ms, percentile, sized, smoke};
use app::model::analytics::AnalyticsFilter;
use app::model::{Role, Sale, SaleId};
use app::server::sales::changes::Changes;
use app::server::sales::{analytics, backup, generate};
use std::time::{Duration, Instant};

fn err(e: app::model::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Writes `n` generated sales into the MySQL tables only: analytics and lists read
/// MySQL, and loading a million sales through FerretDB would take most of an hour.
async fn load_mysql(pool: &sqlx::MySqlPool, n: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut drafts = generate::sales(2026);
    let mut done = 0;
    while done < n {
        let batch: Vec<Sale> = (&mut drafts)
            .take((n - done).min(5000))
            .map(|draft| Sale {
                id: SaleId::parse(&bson::oid::ObjectId::new().to_hex()).expect("hex id"),
                version: 1,
                updated_at: chrono::Utc::now(),
                draft,
            })
            .collect();
        let mut tx = pool.begin().await?;
        let mut changes = Changes::default();
        backup::replace(&mut tx, &batch, &mut changes)
            .await
            .map_err(err)?;
        changes.record(&mut tx).await.map_err(err)?;
        tx.commit().await?;
        done += batch.len();
        if done % 100_000 == 0 {
            eprintln!("  loaded {done} sales");
        }
    }
    Ok(started.elapsed())
}

/// The same figures straight from the sales tables (no rollups): the baseline.
async fn analytics_without_rollups(pool: &sqlx::MySqlPool) -> anyhow::Result<()> {
    for sql in [
        "SELECT COUNT(*), SUM(total), SUM(coupon_used), SUM(customer_satisfaction) FROM sales",
        "SELECT store_location, SUM(total), COUNT(*) FROM sales GROUP BY store_location",
        "SELECT DATE_FORMAT(sale_date, '%Y-%m'), SUM(total), COUNT(*) FROM sales GROUP BY 1",
        "SELECT purchase_method, SUM(total), COUNT(*) FROM sales GROUP BY 1",
        "SELECT customer_satisfaction, COUNT(*) FROM sales GROUP BY 1",
        "SELECT name, SUM(price * quantity), SUM(quantity) FROM sale_items GROUP BY name ORDER BY 2 DESC LIMIT 10",
    ] {
        sqlx::query(sql).fetch_all(pool).await?;
    }
    Ok(())
}

#[derive(Clone)]
struct Wrk {
    rps: f64,
    p50: String,
    p99: String,
    errors: String,
}

async fn wrk(url: &str, cookie: &str, json_body: Option<&str>) -> anyhow::Result<Wrk> {
    let script = std::env::temp_dir().join(format!("portal-wrk-{}.lua", std::process::id()));
    let origin = url.split("/api/").next().unwrap_or(url);
    let mut lua =
        format!("wrk.headers[\"Cookie\"] = \"{cookie}\"\nwrk.headers[\"Origin\"] = \"{origin}\"\n");
    if let Some(body) = json_body {
        lua.push_str(&format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ));
    }
    std::fs::write(&script, lua)?;
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t2",
            "-c50",
            if smoke() { "-d1s" } else { "-d15s" },
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| "none".into());
    Ok(Wrk {
        rps: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        errors,
    })
}

pub async fn run(bench: &Bench, size: usize) -> anyhow::Result<()> {
    let pool = &bench.mysql;
    let loaded = load_mysql(pool, size).await?;

    let mut baseline = Vec::new();
    for _ in 0..sized(3, 1) {
        let t = Instant::now();
        analytics_without_rollups(pool).await?;
        baseline.push(t.elapsed());
    }
    baseline.sort();
    let mut all = Vec::new();
    let mut year = Vec::new();
    let year_filter = AnalyticsFilter {
        from: chrono::NaiveDate::from_ymd_opt(2015, 1, 1),
        to: chrono::NaiveDate::from_ymd_opt(2015, 12, 31),
        ..Default::default()
    };
    for _ in 0..sized(50, 3) {
        let t = Instant::now();
        analytics::analytics(pool, &AnalyticsFilter::default())
            .await
            .map_err(err)?;
        all.push(t.elapsed());
        let t = Instant::now();
        analytics::analytics(pool, &year_filter)
            .await
            .map_err(err)?;
        year.push(t.elapsed());
    }
    all.sort();
    year.sort();
    println!(
        "\n## Management analytics ({size} sales in MySQL, loaded in {:.0} s)\n",
        loaded.as_secs_f64()
    );
    println!("| request | runs | p50 ms | p99 ms | vs baseline p50 |");
    println!("|---|---|---|---|---|");
    let b50 = percentile(&baseline, 0.5);
    println!(
        "| baseline: the same figures from the sales tables | 3 | {} | {} | 1.00x |",
        ms(b50),
        ms(percentile(&baseline, 0.99))
    );
    for (label, runs) in [("analytics, all time", &all), ("analytics, 2015", &year)] {
        let p50 = percentile(runs, 0.5);
        println!(
            "| {label} (rollups) | {} | {} | {} | {:.3}x |",
            runs.len(),
            ms(p50),
            ms(percentile(runs, 0.99)),
            p50.as_secs_f64() / b50.as_secs_f64()
        );
    }
    println!("\nTarget: p50 at most 300 ms.");

    super::search::run(bench.admin.clone().database(&bench.db_name), size).await?;

    // Throughput, with a technical worker's session.
    let cookie = super::staff_session(
        &bench.mysql,
        &bench.base_url,
        "bench.worker",
        Role::TechnicalWorker,
    )
    .await?;

    println!(
        "\n## Throughput (wrk, 2 threads, 50 connections, {} s each, {size} sales)\n",
        sized(15, 1)
    );
    println!("| request | requests/s | p50 | p99 | errors | vs /healthz |");
    println!("|---|---|---|---|---|---|");
    let health = wrk(&format!("{}/healthz", bench.base_url), &cookie, None).await?;
    for (label, url, body) in [
        (
            "GET /healthz (baseline)",
            format!("{}/healthz", bench.base_url),
            None,
        ),
        (
            "GET /worker (server-rendered page)",
            format!("{}/worker", bench.base_url),
            None,
        ),
        (
            "POST /api/sales/list (server function)",
            format!("{}/api/sales/list", bench.base_url),
            Some(r#"{"query":{}}"#),
        ),
        (
            "POST /api/sales/list, store + method filter",
            format!("{}/api/sales/list", bench.base_url),
            Some(r#"{"query":{"store":"Denver","method":"Online"}}"#),
        ),
    ] {
        let r = if body.is_none() && url.ends_with("/healthz") {
            health.clone()
        } else {
            wrk(&url, &cookie, body).await?
        };
        println!(
            "| {label} | {:.0} | {} | {} | {} | {:.2}x |",
            r.rps,
            r.p50,
            r.p99,
            r.errors,
            r.rps / health.rps.max(1e-9)
        );
    }
    Ok(())
}
