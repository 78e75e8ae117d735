//! The sales table's searches, sorts and pages over the sales `dashboards` loaded:
//! each request shape on its first and its deepest page, timed with its count computed
//! afresh (as after any edit), with the index entries and rows MySQL read for it
//! (`Handler_read%`), beside the unfiltered first page measured in the same run.

use crate::{ms, percentile, sized};
use app::model::report::{SalesFilter, SalesQuery};
use app::server::sales::list::{self, CountCache};
use sqlx::{MySqlPool, Row};
use std::time::{Duration, Instant};

async fn reads(conn: &MySqlPool) -> anyhow::Result<u64> {
    let rows = sqlx::query("SHOW SESSION STATUS LIKE 'Handler_read%'")
        .fetch_all(conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<String, _>(1).parse::<u64>().unwrap_or(0))
        .sum())
}

fn filter(args: &[(&str, String)]) -> anyhow::Result<SalesFilter> {
    let mut q = serde_json::Map::new();
    for (k, v) in args {
        q.insert((*k).into(), serde_json::Value::String(v.clone()));
    }
    serde_json::from_value::<SalesQuery>(serde_json::Value::Object(q))?
        .parse()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Runs one request shape `runs` times, each with an empty count cache; returns the
/// sorted times, the reads of the last run, and the page count it reported.
async fn measure(
    conn: &MySqlPool,
    f: &SalesFilter,
    runs: usize,
) -> anyhow::Result<(Vec<Duration>, u64, u32)> {
    let mut times = Vec::new();
    let (mut read, mut pages) = (0, 0);
    for _ in 0..runs {
        let before = reads(conn).await?;
        let t = Instant::now();
        let page = list::list(conn, &CountCache::default(), f)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        times.push(t.elapsed());
        read = reads(conn).await? - before;
        pages = page.pages;
    }
    times.sort();
    Ok((times, read, pages))
}

pub async fn run(options: sqlx::mysql::MySqlConnectOptions, size: usize) -> anyhow::Result<()> {
    // One connection, so its session counters are the request's.
    let conn = sqlx::pool::PoolOptions::<sqlx::MySql>::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let (id, email): (String, String) =
        sqlx::query_as("SELECT id, customer_email FROM sales ORDER BY id LIMIT 1")
            .fetch_one(&conn)
            .await?;
    let domain_word = email
        .split('@')
        .nth(1)
        .and_then(|d| d.split('.').next())
        .unwrap_or("mail")
        .to_string();
    let overhead = {
        let a = reads(&conn).await?;
        reads(&conn).await? - a
    };
    let runs = sized(20, 2);
    let shapes: Vec<(String, Vec<(&str, String)>)> = vec![
        ("unfiltered, newest first (baseline)".into(), vec![]),
        (
            "store and method, by total".into(),
            vec![
                ("store", "Denver".into()),
                ("method", "Online".into()),
                ("sort", "total_desc".into()),
            ],
        ),
        ("by store".into(), vec![("sort", "store_asc".into())]),
        ("by customer".into(), vec![("sort", "customer_asc".into())]),
        ("by items".into(), vec![("sort", "items_desc".into())]),
        ("by coupon".into(), vec![("sort", "coupon_desc".into())]),
        ("by method".into(), vec![("sort", "method_asc".into())]),
        ("by total".into(), vec![("sort", "total_desc".into())]),
        (
            "search: an id's first 10 digits".into(),
            vec![("q", id[..10].into())],
        ),
        ("search: a whole id".into(), vec![("q", id.clone())]),
        (
            format!("search: an address word ({domain_word})"),
            vec![("q", domain_word.clone())],
        ),
        (
            "search: a common word start (ka)".into(),
            vec![("q", "ka".into())],
        ),
        (
            "search: an item word (paper)".into(),
            vec![("q", "paper".into())],
        ),
        (
            "search: an item word, by total".into(),
            vec![("q", "paper".into()), ("sort", "total_desc".into())],
        ),
        (
            "search: an item word in one store".into(),
            vec![("q", "paper".into()), ("store", "Denver".into())],
        ),
    ];
    println!(
        "\n## The sales table: search, sort and pages ({size} sales, count computed afresh each run)\n"
    );
    println!(
        "| request | page | runs | p50 ms | p99 ms | reads (Handler_read) | vs baseline p50 |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut baseline = None;
    for (label, args) in shapes {
        let first = filter(&args)?;
        let (times, read, pages) = measure(&conn, &first, runs).await?;
        let p50 = percentile(&times, 0.5);
        let base: Duration = *baseline.get_or_insert(p50);
        let row = |page: &str, times: &[Duration], read: u64| {
            let p50 = percentile(times, 0.5);
            println!(
                "| {label} | {page} | {} | {} | {} | {} | {:.2}x |",
                times.len(),
                ms(p50),
                ms(percentile(times, 0.99)),
                read.saturating_sub(overhead),
                p50.as_secs_f64() / base.as_secs_f64().max(1e-9)
            );
        };
        row("first", &times, read);
        if pages > 1 {
            let mut deepest_args = args.clone();
            deepest_args.push(("size", "100".into()));
            let probe = filter(&deepest_args)?;
            let (_, _, deepest_pages) = measure(&conn, &probe, 1).await?;
            deepest_args.push(("page", deepest_pages.to_string()));
            let deepest = filter(&deepest_args)?;
            let (times, read, _) = measure(&conn, &deepest, runs).await?;
            row(&format!("{deepest_pages} of 100 rows"), &times, read);
        }
    }
    println!(
        "\nBudget: at most 100,000 reads a request. Deeper pages are refused with what to narrow."
    );
    Ok(())
}
