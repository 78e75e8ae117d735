//! `scripts/bench replication [--size N]`: the dual writer against a raw pair of writes,
//! and reconciliation against a read-only scan of both stores and a naive per-record
//! loop. Each sync measurement runs in a child process, so its peak RSS is its own.

use crate::{fresh_databases, ms, peak_rss_kb, percentile, run_self, sized};
use app::model::{Sale, SaleId, SyncTrigger};
use app::server::sales::changes::Changes;
use app::server::sales::sync::{self, SyncOptions};
use app::server::sales::{backup, codec, dual_write, generate, primary};
use futures::TryStreamExt;
use sqlx::mysql::MySqlConnectOptions;
use std::time::{Duration, Instant};

/// Records timed for the naive loops.
const SAMPLE: usize = 200;

fn admin() -> anyhow::Result<MySqlConnectOptions> {
    Ok(std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://portal:portal@127.0.0.1:3307/portal".into())
        .parse()?)
}

fn sales(seed: u64, n: usize) -> Vec<Sale> {
    generate::sales(seed)
        .take(n)
        .map(|draft| Sale {
            id: SaleId::parse(&bson::oid::ObjectId::new().to_hex()).expect("hex id"),
            version: 1,
            updated_at: chrono::Utc::now(),
            draft,
        })
        .collect()
}

async fn seed(mysql: &sqlx::MySqlPool, mongo: &mongodb::Database, n: usize) -> anyhow::Result<()> {
    let all = sales(7, n);
    let writer = dual_write::writer(mysql.clone(), mongo.clone());
    for chunk in all.chunks(1000) {
        writer
            .import_batch(chunk)
            .await
            .map_err(|e| anyhow::anyhow!("seed: {e}"))?;
    }
    Ok(())
}

fn err(e: app::model::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// A part of the benchmark, to run one alone.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Latency,
    Throughput,
    Sync,
}

pub async fn run(size: usize, only: &[Part]) -> anyhow::Result<()> {
    let wanted = |part| only.is_empty() || only.contains(&part);
    if wanted(Part::Latency) {
        latency().await?;
    }
    if wanted(Part::Throughput) {
        throughput().await?;
    }
    if wanted(Part::Sync) {
        sync_bench(size).await?;
    }
    Ok(())
}

/// Edits per second with one instance and with three on the same stores (each its own
/// writer, pools and leases), for edits spread over 1,000 sales and for 10 hot ones.
async fn throughput() -> anyhow::Result<()> {
    const SALES: usize = 1000;
    const EDITORS: usize = 12;
    let run_for = Duration::from_secs(sized(8, 1));
    let name = format!("bench_tp_{}", std::process::id());
    let (mysql, mongo) = fresh_databases(&admin()?, &name).await?;
    seed(&mysql, &mongo, SALES).await?;
    let ids: Vec<SaleId> = sqlx::query_scalar::<_, String>("SELECT id FROM sales ORDER BY id")
        .fetch_all(&mysql)
        .await?
        .iter()
        .filter_map(|id| SaleId::parse(id).ok())
        .collect();
    println!(
        "\n## Edit throughput ({EDITORS} editors, {} s each, updates of the version read from the backup)\n",
        run_for.as_secs()
    );
    println!(
        "| sales edited | instances | edits/s | conflicts/s | of them busy | errors | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut baseline = None;
    for (label, hot) in [("1,000 spread", SALES), ("10 hot", 10)] {
        for instances in [1usize, 3] {
            let mut writers = Vec::new();
            for _ in 0..instances {
                let pool = app::server::db::mysql_pool(
                    admin()?.database(&name),
                    10,
                    Duration::from_secs(10),
                );
                let client = mongodb::Client::with_uri_str(
                    std::env::var("MONGODB_URI")
                        .unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into()),
                )
                .await?;
                writers.push(dual_write::writer(pool, client.database(&name)));
            }
            let until = Instant::now() + run_for;
            let mut tasks = Vec::new();
            for e in 0..EDITORS {
                let writer = writers[e % instances].clone();
                let (ids, mysql) = (ids[..hot].to_vec(), mysql.clone());
                tasks.push(tokio::spawn(async move {
                    use rand::{Rng, SeedableRng};
                    let mut rng = rand::rngs::StdRng::seed_from_u64(e as u64);
                    let mut drafts = generate::sales(500 + e as u64);
                    let (mut times, mut conflicts, mut busy, mut errors) =
                        (Vec::new(), 0u64, 0u64, Vec::<String>::new());
                    while Instant::now() < until {
                        let id = ids[rng.gen_range(0..ids.len())].clone();
                        let version: Option<u64> =
                            sqlx::query_scalar("SELECT version FROM sales WHERE id = ?")
                                .bind(id.as_str())
                                .fetch_optional(&mysql)
                                .await
                                .ok()
                                .flatten();
                        let Some(version) = version else { continue };
                        let t = Instant::now();
                        match writer
                            .update(None, &id, version, drafts.next().unwrap())
                            .await
                        {
                            Ok(_) => times.push(t.elapsed()),
                            Err(app::model::AppError::Conflict(m)) => {
                                conflicts += 1;
                                if m == dual_write::BUSY {
                                    busy += 1;
                                }
                            }
                            Err(e) => errors.push(format!("{e:?}")),
                        }
                    }
                    (times, conflicts, busy, errors)
                }));
            }
            let (mut times, mut conflicts, mut busy) = (Vec::new(), 0, 0);
            let mut errors = std::collections::BTreeMap::<String, u64>::new();
            for t in tasks {
                let (t, c, b, e) = t.await?;
                times.extend(t);
                conflicts += c;
                busy += b;
                for kind in e {
                    *errors.entry(kind).or_default() += 1;
                }
            }
            let errors = if errors.is_empty() {
                "0".to_string()
            } else {
                errors
                    .iter()
                    .map(|(kind, n)| format!("{n} × {kind}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            times.sort();
            let rate = times.len() as f64 / run_for.as_secs_f64();
            let base = *baseline.get_or_insert(rate);
            println!(
                "| {label} | {instances} | {rate:.1} ({:.2}x) | {:.1} | {busy} | {errors} | {} | {} |",
                rate / base,
                conflicts as f64 / run_for.as_secs_f64(),
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.99)),
            );
        }
    }
    println!(
        "\nRatios are against one instance on 1,000 spread sales, in the same run. Conflicts are \
         409 answers (the version read was stale); busy ones waited the whole busy wait for \
         another writer's lease. Errors are any other answer, by kind."
    );
    mongo.drop().await?;
    sqlx::query(&format!("DROP DATABASE `{name}`"))
        .execute(&mysql)
        .await?;
    Ok(())
}

async fn latency() -> anyhow::Result<()> {
    let background: usize = sized(2000, 200);
    let n: usize = sized(150, 10);
    let name = format!("bench_dw_{}", std::process::id());
    let (mysql, mongo) = fresh_databases(&admin()?, &name).await?;
    seed(&mysql, &mongo, background).await?;
    let writer = dual_write::writer(mysql.clone(), mongo.clone());
    let money = primary::money_encoding(&mongo).await.map_err(err)?;
    let coll = primary::collection(&mongo);

    // Interleaved, so both sides see the same collection size and machine load.
    let mut drafts = generate::sales(8);
    let mut times: [[Vec<Duration>; 2]; 4] = Default::default();
    let mut dual_sales = Vec::new();
    let mut raw_sales = Vec::new();
    for (raw, upserted) in sales(9, n).into_iter().zip(sales(10, n)) {
        let t = Instant::now();
        dual_sales.push(
            writer
                .create(None, drafts.next().unwrap())
                .await
                .map_err(err)?,
        );
        times[0][0].push(t.elapsed());

        let t = Instant::now();
        coll.insert_one(codec::sale_to_document(&raw, money))
            .await?;
        let mut tx = mysql.begin().await?;
        let mut changes = Changes::default();
        backup::replace(&mut tx, std::slice::from_ref(&raw), &mut changes)
            .await
            .map_err(err)?;
        changes.record(&mut tx).await.map_err(err)?;
        tx.commit().await?;
        times[0][1].push(t.elapsed());
        raw_sales.push(raw);

        // The same dual-write create again, against a raw pair whose MongoDB write is
        // the findAndModify upsert the writer uses (FerretDB bounds nothing else).
        let t = Instant::now();
        writer
            .create(None, drafts.next().unwrap())
            .await
            .map_err(err)?;
        times[3][0].push(t.elapsed());
        let t = Instant::now();
        let mut fields = codec::sale_to_document(&upserted, money);
        fields.remove("_id");
        coll.find_one_and_update(
            bson::doc! { "_id": codec::object_id(&upserted.id) },
            bson::doc! { "$setOnInsert": fields },
        )
        .upsert(true)
        .await?;
        let mut tx = mysql.begin().await?;
        let mut changes = Changes::default();
        backup::replace(&mut tx, std::slice::from_ref(&upserted), &mut changes)
            .await
            .map_err(err)?;
        changes.record(&mut tx).await.map_err(err)?;
        tx.commit().await?;
        times[3][1].push(t.elapsed());
    }
    for (dual, raw) in dual_sales.iter().zip(raw_sales.iter_mut()) {
        let t = Instant::now();
        writer
            .update(None, &dual.id, 1, drafts.next().unwrap())
            .await
            .map_err(err)?;
        times[1][0].push(t.elapsed());

        raw.version = 2;
        raw.draft = drafts.next().unwrap();
        let t = Instant::now();
        coll.replace_one(
            bson::doc! { "_id": codec::object_id(&raw.id) },
            codec::sale_to_document(raw, money),
        )
        .await?;
        let mut tx = mysql.begin().await?;
        let mut changes = Changes::default();
        backup::replace(&mut tx, std::slice::from_ref(raw), &mut changes)
            .await
            .map_err(err)?;
        changes.record(&mut tx).await.map_err(err)?;
        tx.commit().await?;
        times[1][1].push(t.elapsed());
    }
    for (dual, raw) in dual_sales.iter().zip(raw_sales.iter()) {
        let t = Instant::now();
        writer.delete(None, &dual.id, 2).await.map_err(err)?;
        times[2][0].push(t.elapsed());

        let t = Instant::now();
        coll.delete_one(bson::doc! { "_id": codec::object_id(&raw.id) })
            .await?;
        let mut tx = mysql.begin().await?;
        let mut changes = Changes::default();
        backup::delete(&mut tx, std::slice::from_ref(&raw.id), &mut changes)
            .await
            .map_err(err)?;
        changes.record(&mut tx).await.map_err(err)?;
        tx.commit().await?;
        times[2][1].push(t.elapsed());
    }

    println!(
        "\n## Dual-write latency ({n} edits per operation, collection of {background}+ sales)\n"
    );
    println!("| operation | dual write p50 | p99 | raw pair p50 | p99 | p50 ratio |");
    println!("|---|---|---|---|---|---|");
    let operations = ["create", "update", "delete", "create, raw write an upsert"];
    for (op, [dual, raw]) in operations.iter().zip(times.iter_mut()) {
        dual.sort();
        raw.sort();
        let (d50, r50) = (percentile(dual, 0.5), percentile(raw, 0.5));
        println!(
            "| {op} | {} | {} | {} | {} | {:.2}x |",
            ms(d50),
            ms(percentile(dual, 0.99)),
            ms(r50),
            ms(percentile(raw, 0.99)),
            d50.as_secs_f64() / r50.as_secs_f64()
        );
    }
    println!(
        "\nThe raw pair is one MongoDB write then one MySQL transaction of the same rows, \
         with the same drivers: no journal, no lease, no before-image read. Its create is \
         an insert; the writer's is a findAndModify upsert, the one single-document write \
         FerretDB stops at maxTimeMS (on FerretDB 1.x it scans the collection for the _id; \
         on MongoDB it is an index lookup). The last row compares like with like."
    );
    mongo.drop().await?;
    sqlx::query(&format!("DROP DATABASE `{name}`"))
        .execute(&mysql)
        .await?;
    Ok(())
}

struct ChildResult {
    secs: f64,
    rss_mib: f64,
    detail: String,
}

async fn child(mode: &str, db: &str) -> anyhow::Result<ChildResult> {
    let text = run_self(&["__sync", mode, db]).await?;
    let mut f = text.splitn(3, ' ');
    Ok(ChildResult {
        secs: f.next().unwrap_or("0").parse()?,
        rss_mib: f.next().unwrap_or("0").parse::<f64>()? / 1024.0,
        detail: f.next().unwrap_or("").to_string(),
    })
}

/// Child side: `bench __sync scan|sync|naive DB`; prints `secs rss_kb detail`.
pub async fn child_main(mode: &str, db: &str) -> anyhow::Result<()> {
    let admin = admin()?;
    let mysql = app::server::db::mysql_pool(admin.database(db), 10, Duration::from_secs(10));
    let mongo = mongodb::Client::with_uri_str(
        std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into()),
    )
    .await?
    .database(db);
    let started = Instant::now();
    let detail = match mode {
        "scan" => {
            let (m, s) = tokio::try_join!(scan_mongo(&mongo), scan_mysql(&mysql))?;
            format!("{m} documents, {s} rows")
        }
        "sync" => {
            let writer = dual_write::writer(mysql.clone(), mongo.clone());
            let r = sync::run(&writer, SyncOptions::new(SyncTrigger::Cli))
                .await
                .map_err(err)?;
            format!(
                "scanned {}, created {}, updated {}, deleted {}",
                r.scanned, r.created, r.updated, r.deleted
            )
        }
        "naive" | "naive-stream" => {
            // What the tutorials do: per record, two MySQL queries (read the row, save
            // it). `naive` also loads each record from MongoDB by id, as their re-sync
            // does; `naive-stream` streams MongoDB instead, to isolate the MySQL side.
            // Timed over SAMPLE records spread evenly over the collection (a FerretDB
            // lookup by id costs more the later the document sits), then extrapolated.
            let ids: Vec<bson::Document> = primary::collection(&mongo)
                .find(bson::doc! {})
                .projection(bson::doc! { "_id": 1 })
                .await?
                .try_collect()
                .await?;
            let step = (ids.len() / SAMPLE).max(1);
            let started = Instant::now();
            let mut stream = primary::collection(&mongo).find(bson::doc! {}).await?;
            let mut n = 0;
            for id in ids.iter().step_by(step).take(SAMPLE) {
                let doc = if mode == "naive" {
                    primary::collection(&mongo)
                        .find_one(bson::doc! { "_id": id.get("_id").cloned() })
                        .await?
                } else {
                    stream.try_next().await?
                };
                let Some(doc) = doc else { continue };
                let sale = codec::document_to_sale(&doc)?;
                let mut conn = mysql.acquire().await?;
                let _current = backup::load(&mut conn, std::slice::from_ref(&sale.id))
                    .await
                    .map_err(err)?;
                let mut tx = mysql.begin().await?;
                let mut changes = Changes::default();
                backup::replace(&mut tx, std::slice::from_ref(&sale), &mut changes)
                    .await
                    .map_err(err)?;
                changes.record(&mut tx).await.map_err(err)?;
                tx.commit().await?;
                n += 1;
            }
            let per_record = started.elapsed().as_secs_f64() / n.max(1) as f64;
            format!("{per_record}")
        }
        other => anyhow::bail!("unknown sync mode {other}"),
    };
    println!(
        "{} {} {detail}",
        started.elapsed().as_secs_f64(),
        peak_rss_kb()
    );
    Ok(())
}

async fn scan_mongo(mongo: &mongodb::Database) -> anyhow::Result<u64> {
    let mut cursor = primary::collection(mongo)
        .find(bson::doc! {})
        .batch_size(1000)
        .await?;
    let mut n = 0;
    while let Some(doc) = cursor.try_next().await? {
        codec::document_to_sale(&doc)?;
        n += 1;
    }
    Ok(n)
}

async fn scan_mysql(mysql: &sqlx::MySqlPool) -> anyhow::Result<u64> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM sales ORDER BY id")
        .fetch_all(mysql)
        .await?;
    let mut n = 0;
    for chunk in ids.chunks(1000) {
        let ids: Vec<SaleId> = chunk.iter().filter_map(|i| SaleId::parse(i).ok()).collect();
        let mut conn = mysql.acquire().await?;
        n += backup::load_rows(&mut conn, &ids).await.map_err(err)?.len() as u64;
    }
    Ok(n)
}

async fn sync_bench(size: usize) -> anyhow::Result<()> {
    let name = format!("bench_sync_{}", std::process::id());
    let (mysql, mongo) = fresh_databases(&admin()?, &name).await?;
    let t = Instant::now();
    seed(&mysql, &mongo, size).await?;
    let seeded = t.elapsed();

    let scan = child("scan", &name).await?;
    let clean = child("sync", &name).await?;

    // 1% drift: a third missing, a third changed, a third extra.
    let third = (size / 300).max(1);
    sqlx::query("DELETE FROM sales ORDER BY id LIMIT ?")
        .bind(third as u64)
        .execute(&mysql)
        .await?;
    sqlx::query("UPDATE sales SET customer_age = customer_age + 1 ORDER BY id DESC LIMIT ?")
        .bind(third as u64)
        .execute(&mysql)
        .await?;
    let mut tx = mysql.begin().await?;
    let mut changes = Changes::default();
    backup::replace(&mut tx, &sales(10, third), &mut changes)
        .await
        .map_err(err)?;
    changes.record(&mut tx).await.map_err(err)?;
    tx.commit().await?;
    let drifted = child("sync", &name).await?;
    let naive = child("naive", &name).await?;
    let naive_stream = child("naive-stream", &name).await?;

    println!(
        "\n## Reconciliation ({size} sales; seeding took {:.1} s)\n",
        seeded.as_secs_f64()
    );
    println!("| run | seconds | vs read-only scan | peak RSS MiB | result |");
    println!("|---|---|---|---|---|");
    let row = |label: &str, r: &ChildResult| {
        println!(
            "| {label} | {:.1} | {:.2}x | {:.1} | {} |",
            r.secs,
            r.secs / scan.secs,
            r.rss_mib,
            r.detail
        )
    };
    row("read-only scan of both stores", &scan);
    row("sync, no drift", &clean);
    row("sync, 1% drift", &drifted);
    let extrapolate = |r: &ChildResult| r.detail.parse::<f64>().unwrap_or(0.0) * size as f64;
    for (label, r) in [
        (
            "naive: per record, load from MongoDB by id, read and save in MySQL",
            &naive,
        ),
        (
            "naive, streaming MongoDB: per record, read and save in MySQL",
            &naive_stream,
        ),
    ] {
        let total = extrapolate(r);
        println!(
            "| {label} ({SAMPLE} timed, extrapolated) | {total:.1} | {:.2}x | {:.1} | {:.0} records/s; sync is {:.1}x faster (no drift), {:.1}x (1% drift) |",
            total / scan.secs,
            r.rss_mib,
            size as f64 / total.max(1e-9),
            total / clean.secs,
            total / drifted.secs
        );
    }
    println!(
        "\nTargets: sync without drift at most 1.5x the scan; at least 20x faster than the naive per-record loop."
    );
    mongo.drop().await?;
    sqlx::query(&format!("DROP DATABASE `{name}`"))
        .execute(&mysql)
        .await?;
    Ok(())
}
