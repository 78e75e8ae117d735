//! Import batches that meet each other: several in flight, two imports of overlapping
//! files at once, all on a few days and stores so their rollup rows are shared. Every
//! statement on one lease's intents reads them through the holder index, and a batch
//! that MySQL still picks as a deadlock victim runs again whole.

use crate::helpers::{TestApp, spawn_app};
use app::model::{Sale, SaleDraft};
use app::server::db;
use app::server::sales::dual_write::{by_holder, writer};
use app::server::sales::import::{self, ImportReport, Parsed};
use app::server::sales::{generate, primary};
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;
use tokio::sync::Barrier;

/// Inserts `per_holder` intents for each holder, interleaved by id as batches in
/// flight together leave them, the first third of each holder's still pending.
async fn intents_of(app: &TestApp, holders: &[&str], per_holder: usize) {
    for n in 0..per_holder {
        let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO sale_intents (op, sale_id, state, lease_owner, lease_until, created_at, updated_at) ",
        );
        q.push_values(holders.iter().enumerate(), |mut row, (h, holder)| {
            let state = if n * 3 < per_holder {
                "pending"
            } else {
                "done"
            };
            row.push("'create'")
                .push_bind(format!("{:012x}{:012x}", h, n))
                .push_bind(state)
                .push_bind(*holder)
                .push("UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE")
                .push("UTC_TIMESTAMP(6)")
                .push("UTC_TIMESTAMP(6)");
        });
        q.build().execute(&app.mysql).await.expect("insert intents");
    }
    sqlx::query("ANALYZE TABLE sale_intents")
        .execute(&app.mysql)
        .await
        .expect("fresh statistics");
}

/// Every `by_holder` statement with `holder`'s name and sample values in place of its
/// parameters.
fn explainable(holder: &str) -> Vec<String> {
    let fill = |sql: &str| {
        sql.replace("INTERVAL ?", "INTERVAL 1")
            .replace("state = ?,", "state = 'failed',")
            .replace("error = ?", "error = 'sample'")
            .replace("lease_owner = ?", &format!("lease_owner = '{holder}'"))
    };
    let mut all: Vec<String> = [
        by_holder::CLAIMED,
        by_holder::RENEW,
        by_holder::LOCK,
        by_holder::DONE,
        by_holder::CLOSE,
        by_holder::HELD,
        by_holder::RELEASE,
    ]
    .into_iter()
    .map(fill)
    .collect();
    all.push(format!(
        "{}'{holder}' AND state = 'pending' AND sale_id IN ('000000000000000000000001')",
        by_holder::PRESENT
    ));
    all
}

#[tokio::test]
async fn every_statement_on_a_leases_intents_uses_the_holder_index() {
    let app = spawn_app().await;
    let holders: Vec<String> = (0..10).map(|i| format!("import-holder-{i}")).collect();
    let holders: Vec<&str> = holders.iter().map(String::as_str).collect();
    intents_of(&app, &holders, 300).await;
    for statement in explainable("import-holder-3") {
        let plan = sqlx::query(&format!("EXPLAIN {statement}"))
            .fetch_all(&app.mysql)
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN {statement}: {e}"));
        let keys: Vec<Option<String>> = plan
            .iter()
            .map(|row| {
                row.try_get::<Option<String>, _>("key")
                    .expect("a key column")
            })
            .collect();
        assert_eq!(
            keys,
            vec![Some("ix_sale_intents_holder".to_string())],
            "{statement}"
        );
    }
}

/// One lease's intents locked in an open transaction (a batch committing) leave
/// another lease's closing statement free to run, both ways round.
#[tokio::test]
async fn closing_one_lease_never_waits_on_a_batch_that_holds_another() {
    let app = spawn_app().await;
    intents_of(&app, &["holder-a", "holder-b"], 600).await;
    let pending = 200;
    for (locked, closing) in [("holder-a", "holder-b"), ("holder-b", "holder-a")] {
        let mut first = app.mysql.begin().await.unwrap();
        let held: Vec<u64> = sqlx::query_scalar(by_holder::LOCK)
            .bind(locked)
            .fetch_all(&mut *first)
            .await
            .unwrap();
        assert_eq!(held.len(), pending);

        let mut second = app.mysql.begin().await.unwrap();
        sqlx::query("SET SESSION innodb_lock_wait_timeout = 1")
            .execute(&mut *second)
            .await
            .unwrap();
        let closed = sqlx::query(by_holder::DONE)
            .bind(closing)
            .execute(&mut *second)
            .await
            .unwrap_or_else(|e| panic!("{closing} waited on {locked}'s rows: {e}"))
            .rows_affected();
        assert_eq!(closed, pending as u64);
        // Its own rows again, as the next batch of the same import would.
        second.rollback().await.unwrap();
        first.rollback().await.unwrap();
    }
}

/// Two transactions that take the same two rows in opposite orders: InnoDB rolls one
/// back as the deadlock victim, and `retry_contended` runs that one again as a whole, so
/// both land, each exactly once, and the victim took one more attempt.
#[tokio::test]
async fn a_deadlock_victim_runs_again_as_a_whole() {
    let app = spawn_app().await;
    sqlx::query("CREATE TABLE deadlock_probe (id INT PRIMARY KEY, n INT NOT NULL)")
        .execute(&app.mysql)
        .await
        .unwrap();
    sqlx::query("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)")
        .execute(&app.mysql)
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));
    let run = |first: i32, second: i32| {
        let (pool, barrier, attempts) = (app.mysql.clone(), barrier.clone(), attempts.clone());
        async move {
            let tried = AtomicU32::new(0);
            db::retry_contended(|| async {
                attempts.fetch_add(1, SeqCst);
                let own_try = tried.fetch_add(1, SeqCst);
                let bump = "UPDATE deadlock_probe SET n = n + 1 WHERE id = ?";
                let mut tx = pool
                    .begin()
                    .await
                    .map_err(|e| db::mysql_error("begin", e))?;
                for (step, id) in [first, second].into_iter().enumerate() {
                    sqlx::query(bump)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db::mysql_error("bump", e))?;
                    // Only the first tries wait for each other, so that they cross.
                    if step == 0 && own_try == 0 {
                        barrier.wait().await;
                    }
                }
                tx.commit().await.map_err(|e| db::mysql_error("commit", e))
            })
            .await
        }
    };
    let (a, b) = tokio::join!(run(1, 2), run(2, 1));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(attempts.load(SeqCst), 3);
    let counts: Vec<i32> = sqlx::query_scalar("SELECT n FROM deadlock_probe ORDER BY id")
        .fetch_all(&app.mysql)
        .await
        .unwrap();
    assert_eq!(counts, [2, 2], "each transaction's two updates landed once");
}

/// 20,000 sales on three days in two stores: every batch of either import updates the
/// same few rollup rows.
fn crowded_sales(n: usize) -> Vec<Sale> {
    let drafts: Vec<SaleDraft> = generate::sales(2512).take(n).collect();
    let stores = [
        drafts[0].store_location.clone(),
        drafts
            .iter()
            .map(|d| d.store_location.clone())
            .find(|s| *s != drafts[0].store_location)
            .expect("two stores"),
    ];
    let day = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .expect("a date")
        .to_utc();
    drafts
        .into_iter()
        .enumerate()
        .map(|(i, mut draft)| {
            draft.sale_date =
                day + chrono::Duration::days((i % 3) as i64) + chrono::Duration::seconds(i as i64);
            draft.store_location = stores[i % 2].clone();
            Sale {
                id: import::derived_id(&draft),
                version: 1,
                updated_at: chrono::Utc::now(),
                draft,
            }
        })
        .collect()
}

/// Imports `sales` as one process would, in batches of `batch`.
async fn import_all(app: &TestApp, sales: Vec<Sale>, batch: usize) -> ImportReport {
    let writer = writer(app.mysql.clone(), app.mongo.clone());
    let (tx, rx) = tokio::sync::mpsc::channel(4 * batch);
    let feed = tokio::spawn(async move {
        for (n, sale) in sales.into_iter().enumerate() {
            let parsed = Parsed {
                at: format!("line {}", n + 1),
                result: Ok(sale),
            };
            if tx.send(parsed).await.is_err() {
                return;
            }
        }
    });
    let report = import::run(&writer, rx, batch, false, |_| {})
        .await
        .unwrap_or_else(|stopped| panic!("{stopped}"));
    feed.await.expect("feed");
    report
}

#[tokio::test]
async fn two_overlapping_imports_of_crowded_sales_end_complete_in_both_stores() {
    let app = spawn_app().await;
    let sales = crowded_sales(20_000);
    let (first, second) = (sales[..14_000].to_vec(), sales[6_000..].to_vec());
    let (a, b) = tokio::time::timeout(Duration::from_secs(600), async {
        tokio::join!(import_all(&app, first, 100), import_all(&app, second, 100))
    })
    .await
    .expect("both imports end");

    assert_eq!(a.inserted + a.skipped, 14_000, "{a:?}");
    assert_eq!(b.inserted + b.skipped, 14_000, "{b:?}");
    assert_eq!(a.inserted + b.inserted, 20_000, "each sale inserted once");

    let in_mongo = primary::collection(&app.mongo)
        .count_documents(bson::doc! {})
        .await
        .unwrap();
    let (in_mysql, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT id) FROM sales")
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!((in_mongo, in_mysql, distinct), (20_000, 20_000, 20_000));
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sale_intents WHERE state IN ('pending', 'needs_repair')",
    )
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    assert_eq!(open, 0, "no intent left open");
    let failed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sale_intents WHERE state = 'failed' AND error <> 'already present'",
    )
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    assert_eq!(failed, 0, "no batch failed and was compensated");

    type Rollup = (
        chrono::NaiveDate,
        String,
        String,
        bool,
        i64,
        rust_decimal::Decimal,
    );
    let from_sales: Vec<Rollup> = sqlx::query_as(
        "SELECT DATE(sale_date), store_location, CAST(purchase_method AS CHAR), coupon_used, COUNT(*), SUM(total) \
         FROM sales GROUP BY DATE(sale_date), store_location, purchase_method, coupon_used \
         ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(&app.mysql)
    .await
    .unwrap();
    let rollup: Vec<Rollup> = sqlx::query_as(
        "SELECT day, store_location, CAST(purchase_method AS CHAR), coupon_used, sales, revenue \
         FROM sales_daily WHERE sales > 0 ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(&app.mysql)
    .await
    .unwrap();
    assert_eq!(
        rollup, from_sales,
        "the daily rollup equals the sales table"
    );
}
