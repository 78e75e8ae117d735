//! `scripts/bench import [--million]`: the streaming import against a row-by-row
//! baseline, each run in a child process so that its peak RSS is its own.

use crate::{fresh_databases, peak_rss_kb, run_self};
use sqlx::ConnectOptions;
use sqlx::mysql::MySqlConnectOptions;
use std::sync::Arc;
use std::time::Instant;

/// One import run in a child process, so its peak RSS is its own.
struct RunResult {
    sales: u64,
    secs: f64,
    peak_rss_kb: u64,
}

/// Child side: `bench __import batched|baseline FILE LIMIT`; prints `sales secs rss_kb`.
pub async fn child(mode: &str, file: &str, limit: u64) -> anyhow::Result<()> {
    let admin: MySqlConnectOptions = std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://portal:portal@127.0.0.1:3307/portal".into())
        .parse()?;
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
                let terms = app::model::search::sale_terms(
                    d.customer.email.as_str(),
                    d.items.iter().map(|i| i.name.as_str()),
                );
                sqlx::query("INSERT INTO sales (id, sale_date, store_location, purchase_method, coupon_used, customer_gender, customer_age, customer_email, customer_satisfaction, item_count, search_text, total, version, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
                    .bind(sale.id.as_str()).bind(d.sale_date.naive_utc()).bind(d.store_location.as_str()).bind(d.purchase_method.as_str())
                    .bind(d.coupon_used).bind(d.customer.gender.as_str()).bind(d.customer.age.get()).bind(d.customer.email.as_str())
                    .bind(d.customer.satisfaction.get()).bind(d.items.len() as u16).bind(app::model::search::probe_text(&terms)).bind(d.total()).bind(sale.version).bind(sale.updated_at.naive_utc())
                    .execute(&mysql).await?;
                for term in &terms {
                    sqlx::query(
                        "INSERT IGNORE INTO sale_search_terms (term, sale_id) VALUES (?,?)",
                    )
                    .bind(term)
                    .bind(sale.id.as_str())
                    .execute(&mysql)
                    .await?;
                }
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
    let text = run_self(&[
        "__import",
        mode,
        &file.to_string_lossy(),
        &limit.to_string(),
    ])
    .await?;
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

pub async fn run(with_million: bool, size: u64) -> anyhow::Result<()> {
    let baseline_limit = size.min(2000);
    let dir = std::env::temp_dir().join(format!("portal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut inputs: Vec<(String, std::path::PathBuf)> = Vec::new();
    match std::env::var_os("SALES_DATASET") {
        Some(p) => inputs.push(("real 5,000-sale file".into(), p.into())),
        None => println!("(SALES_DATASET not set: the real-file row is skipped)"),
    }
    let generated = dir.join(format!("generated-{size}.json"));
    write_generated(size, &generated)?;
    inputs.push((format!("generated {size} sales"), generated));

    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("\n## Import benchmark ({build} build, local MariaDB + FerretDB)\n");
    println!("| input | importer | sales | seconds | sales/s | peak RSS MiB | speed-up |");
    println!("|---|---|---|---|---|---|---|");
    // The generated file's baseline (the last input) is the million-sale run's too: the
    // same kind of sales, measured in the same run.
    let mut baseline_rate = f64::NAN;
    for (label, path) in &inputs {
        let batched = run_child("batched", path, u64::MAX).await?;
        let baseline = run_child("baseline", path, baseline_limit).await?;
        let rate = |r: &RunResult| r.sales as f64 / r.secs.max(1e-9);
        baseline_rate = rate(&baseline);
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
        let rate = run.sales as f64 / run.secs.max(1e-9);
        println!(
            "| generated 1,000,000 sales | batched, streaming | {} | {:.1} | {rate:.0} | {:.1} | {:.1}x |",
            run.sales,
            run.secs,
            run.peak_rss_kb as f64 / 1024.0,
            rate / baseline_rate
        );
        println!("\nGenerating the 1,000,000-sale file took {gen_secs:.1} s.");
    }
    std::fs::remove_dir_all(&dir)?;
    println!("\nTarget: at least 20x the baseline's rate, with peak RSS flat as the input grows.");
    Ok(())
}
