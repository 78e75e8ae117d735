//! `scripts/bench live`: how late an acknowledged edit reaches the browsers' live
//! streams (p50, p99), and what open streams cost the server in CPU and memory, against
//! the same server under the same edits with no stream open.
//!
//! The server runs as a child process (`__serve`), so its CPU time and memory are its
//! own; this process makes the edits and holds the streams.

use crate::{browser, fresh_databases, ms, percentile, staff_session};
use app::model::SaleInput;
use app::model::live::{SaleChange, event};
use app::server::sales::generate;
use sqlx::mysql::MySqlConnectOptions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// When each stream received each sale's creation.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

struct Phase {
    streams: usize,
    edits: usize,
    latencies: Vec<Duration>,
    missing: usize,
    cpu_percent: f64,
    rss_mb: f64,
}

pub async fn run(streams: usize, secs: u64, rate: u64) -> anyhow::Result<()> {
    let admin: MySqlConnectOptions = std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://portal:portal@127.0.0.1:3307/portal".into())
        .parse()?;
    let name = format!("bench_live_{}", std::process::id());
    let (pool, mongo) = fresh_databases(&admin, &name).await?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["__serve", &name])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("the server child has no pid"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let port: u16 = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the server child printed no port"))?
        .trim()
        .parse()?;
    let base = format!("http://127.0.0.1:{port}");
    // One user may hold 16 streams per instance (`live::sessions`), so the streams are
    // spread over enough signed-in workers; the first one also makes the edits.
    let mut cookies = Vec::new();
    for i in 0..streams.div_ceil(STREAMS_PER_USER).max(1) {
        cookies.push(
            staff_session(
                &pool,
                &base,
                &format!("live.bench{i}"),
                app::model::Role::TechnicalWorker,
            )
            .await?,
        );
    }
    let cookie = &cookies[0];
    let tick = clock_ticks().await?;

    let mut phases = Vec::new();
    for n in [0, 1, streams] {
        eprintln!("  {n} streams: opening");
        let arrivals: Arrivals = Arc::default();
        let readers = open_streams(&base, &cookies, n, arrivals.clone()).await?;
        // Settle: the streams' opening work is not the steady state measured.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu_before = cpu_ticks(pid)?;
        let started = Instant::now();
        let acks = edit(&base, cookie, secs, rate, n as u64).await?;
        // Late events still count: wait for the stragglers before reading the figures.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = (cpu_ticks(pid)? - cpu_before) as f64 / tick as f64;
        let rss_mb = rss_kb(pid)? as f64 / 1024.0;
        for reader in &readers {
            reader.abort();
        }
        let arrivals = arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut latencies = Vec::new();
        let mut missing = 0;
        for (id, acked) in &acks {
            let got = arrivals.get(id).map_or(0, Vec::len);
            missing += n.saturating_sub(got);
            for at in arrivals.get(id).into_iter().flatten() {
                latencies.push(at.saturating_duration_since(*acked));
            }
        }
        latencies.sort();
        phases.push(Phase {
            streams: n,
            edits: acks.len(),
            latencies,
            missing,
            cpu_percent: cpu / elapsed * 100.0,
            rss_mb,
        });
    }
    drop(child);
    mongo.drop().await?;
    sqlx::query(&format!("DROP DATABASE `{name}`"))
        .execute(&pool)
        .await?;

    println!(
        "\n## Live stream: edit → event latency and the server's cost ({rate} edits/s for {secs} s, feed polled every 150 ms)\n"
    );
    println!(
        "| open streams | edits | events received | missing | latency p50 ms | p99 ms | server CPU % | server RSS MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &phases {
        let (p50, p99) = if p.latencies.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                ms(percentile(&p.latencies, 0.5)),
                ms(percentile(&p.latencies, 0.99)),
            )
        };
        println!(
            "| {} | {} | {} | {} | {p50} | {p99} | {:.1} | {:.1} |",
            p.streams,
            p.edits,
            p.latencies.len(),
            p.missing,
            p.cpu_percent,
            p.rss_mb
        );
    }
    if let (Some(none), Some(many)) = (phases.first(), phases.last()) {
        println!(
            "\nWith {} streams against none: CPU {:.2}x, memory {:+.1} MB ({:.1} KB per stream).",
            many.streams,
            many.cpu_percent / none.cpu_percent.max(0.01),
            many.rss_mb - none.rss_mb,
            (many.rss_mb - none.rss_mb) * 1024.0 / many.streams.max(1) as f64
        );
    }
    Ok(())
}

/// Streams one user may hold open on one instance (`app::server::live::sessions`).
const STREAMS_PER_USER: usize = 16;

/// Opens `n` streams, at most `STREAMS_PER_USER` per signed-in staff member; each
/// records when it received each created sale. Returns once every stream has said it
/// is live.
async fn open_streams(
    base: &str,
    cookies: &[String],
    n: usize,
    arrivals: Arrivals,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let (ready, mut opened) = tokio::sync::mpsc::channel::<()>(n.max(1));
    let mut readers = Vec::with_capacity(n);
    for i in 0..n {
        let request = client
            .get(format!("{base}/api/events"))
            .header(reqwest::header::COOKIE, &cookies[i / STREAMS_PER_USER]);
        let (arrivals, ready) = (arrivals.clone(), ready.clone());
        readers.push(tokio::spawn(async move {
            let Ok(mut response) = request.send().await else {
                return;
            };
            let mut buffer = String::new();
            let mut live = false;
            while let Ok(Some(chunk)) = response.chunk().await {
                let at = Instant::now();
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if !live && block.contains(&format!("event: {}", event::STATUS)) {
                        live = true;
                        let _ = ready.send(()).await;
                    }
                    if !block.contains(&format!("event: {}", event::CHANGE)) {
                        continue;
                    }
                    let change = block
                        .lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .and_then(|d| serde_json::from_str::<SaleChange>(d).ok());
                    if let Some(id) = change.and_then(|c| c.sale_id)
                        && let Ok(mut arrivals) = arrivals.lock()
                    {
                        arrivals.entry(id.to_string()).or_default().push(at);
                    }
                }
            }
        }));
    }
    drop(ready);
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(60), opened.recv())
            .await
            .map_err(|_| anyhow::anyhow!("streams did not open within 60 s"))?;
    }
    Ok(readers)
}

/// Creates sales through the API at `rate` a second for `secs`; returns when each was
/// acknowledged, by sale id.
async fn edit(
    base: &str,
    cookie: &str,
    secs: u64,
    rate: u64,
    seed: u64,
) -> anyhow::Result<Vec<(String, Instant)>> {
    let client = browser(base);
    let mut drafts = generate::sales(1000 + seed);
    let mut acks = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate.max(1)));
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        tick.tick().await;
        let draft = drafts
            .next()
            .ok_or_else(|| anyhow::anyhow!("out of drafts"))?;
        let res = client
            .post(format!("{base}/api/sales/create"))
            .header(reqwest::header::COOKIE, cookie)
            .json(&serde_json::json!({ "token": "", "input": SaleInput::from(&draft) }))
            .send()
            .await?;
        let acked = Instant::now();
        anyhow::ensure!(res.status().is_success(), "create: {}", res.status());
        let sale: app::model::Sale = res.json().await?;
        acks.push((sale.id.to_string(), acked));
    }
    Ok(acks)
}

/// The child: the real server on the named databases, its port on stdout.
pub async fn serve(database: &str) -> anyhow::Result<()> {
    let serve = crate::serve_config();
    let app = server::startup::Application::build(
        &crate::databases(&crate::mysql_admin()?, database),
        &serve,
        server::leptos_options(serve.site_addr),
    )
    .await?;
    println!("{}", app.port());
    app.run_until_stopped().await?;
    Ok(())
}

async fn clock_ticks() -> anyhow::Result<u64> {
    let out = tokio::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// User and system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unreadable stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields
        .get(11)
        .ok_or_else(|| anyhow::anyhow!("no utime"))?
        .parse()?;
    let stime: u64 = fields
        .get(12)
        .ok_or_else(|| anyhow::anyhow!("no stime"))?
        .parse()?;
    Ok(utime + stime)
}

fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))
}
