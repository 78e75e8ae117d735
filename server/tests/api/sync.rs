//! Reconciliation against the real MariaDB and FerretDB: seeded drift, reruns,
//! dry runs, and a `server sync` process killed halfway.

use crate::helpers::{TestApp, mongodb_uri, mysql_base_url, spawn_app};
use app::model::{Sale, SaleId, SyncStatus, SyncTrigger};
use app::server::sales::changes::Changes;
use app::server::sales::dual_write::{Writer, writer};
use app::server::sales::sync::{self, SyncOptions};
use app::server::sales::{backup, generate, primary};
use std::collections::BTreeMap;
use std::time::Duration;

/// `n` generated sales written to both stores.
pub async fn seed(app: &TestApp, n: usize, seed: u64) -> Vec<Sale> {
    let sales = crate::helpers::generated_sales(seed, n);
    let writer = writer(app.mysql.clone(), app.mongo.clone());
    for chunk in sales.chunks(1000) {
        writer.import_batch(chunk).await.expect("seed sales");
    }
    sales
}

/// Every sale in each store, as (version, draft), by id. Independent of the sync code.
pub async fn contents(
    app: &TestApp,
) -> (
    BTreeMap<SaleId, (u64, app::model::SaleDraft)>,
    BTreeMap<SaleId, (u64, app::model::SaleDraft)>,
) {
    use futures::TryStreamExt;
    let docs: Vec<bson::Document> = primary::collection(&app.mongo)
        .find(bson::doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mongo = docs
        .iter()
        .map(|d| {
            let s = app::server::sales::codec::document_to_sale(d).unwrap();
            (s.id, (s.version, s.draft))
        })
        .collect();
    let ids: Vec<SaleId> = sqlx::query_scalar::<_, String>("SELECT id FROM sales")
        .fetch_all(&app.mysql)
        .await
        .unwrap()
        .iter()
        .map(|id| SaleId::parse(id).unwrap())
        .collect();
    let mut conn = app.mysql.acquire().await.unwrap();
    let mysql = backup::load(&mut conn, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, (s.version, s.draft)))
        .collect();
    (mongo, mysql)
}

async fn assert_no_drift(app: &TestApp, case: &str) {
    let (mongo, mysql) = contents(app).await;
    assert_eq!(mongo.len(), mysql.len(), "{case}: same number of sales");
    assert!(mongo == mysql, "{case}: MySQL equals MongoDB");
    let totals_ok: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sales s WHERE s.total <> \
         (SELECT COALESCE(SUM(i.price * i.quantity), 0) FROM sale_items i WHERE i.sale_id = s.id)",
    )
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    assert_eq!(totals_ok, 0, "{case}: stored totals match the items");
}

fn options(dry_run: bool) -> SyncOptions {
    let mut o = SyncOptions::new(SyncTrigger::Cli);
    o.dry_run = dry_run;
    o.batch = 64;
    o.wait_secs = 10;
    o
}

/// Drift of every kind: 10 rows missing in MySQL, 4 extra rows, and 12 changed rows
/// (a field, an item price, a tag, a stale version, a wrong stored total, a lost item).
async fn seed_drift(app: &TestApp, sales: &[Sale]) -> (u64, u64, u64) {
    let db = &app.mysql;
    let ids: Vec<&str> = sales.iter().map(|s| s.id.as_str()).collect();
    for id in &ids[0..10] {
        sqlx::query("DELETE FROM sales WHERE id = ?")
            .bind(id)
            .execute(db)
            .await
            .unwrap();
    }
    let extras: Vec<Sale> = crate::helpers::generated_sales(9_999, 4)
        .into_iter()
        .map(|sale| Sale { version: 3, ..sale })
        .collect();
    let mut tx = db.begin().await.unwrap();
    let mut changes = Changes::default();
    backup::replace(&mut tx, &extras, &mut changes)
        .await
        .unwrap();
    changes.record(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let changes = [
        (
            "UPDATE sales SET customer_age = customer_age + 1 WHERE id = ?",
            2,
        ),
        (
            "UPDATE sales SET store_location = 'Nowhere' WHERE id = ?",
            2,
        ),
        ("UPDATE sales SET version = version + 5 WHERE id = ?", 2),
        ("UPDATE sales SET total = total + 1 WHERE id = ?", 2),
        (
            "UPDATE sale_items SET price = price + 0.01 WHERE sale_id = ? AND position = 0",
            2,
        ),
        (
            "DELETE FROM sale_item_tags WHERE sale_id = ? AND position = 0",
            1,
        ),
        (
            "DELETE FROM sale_items WHERE sale_id = ? AND position = 0",
            1,
        ),
    ];
    let mut next = 10;
    for (sql, n) in changes {
        for _ in 0..n {
            let done = sqlx::query(sql).bind(ids[next]).execute(db).await.unwrap();
            assert!(done.rows_affected() > 0, "{sql} changed a row");
            next += 1;
        }
    }
    (10, 12, 4)
}

async fn sync_writer(app: &TestApp) -> Writer {
    writer(app.mysql.clone(), app.mongo.clone())
}

#[tokio::test]
async fn sync_repairs_every_kind_of_drift_and_a_rerun_changes_nothing() {
    let app = spawn_app().await;
    let sales = seed(&app, 300, 31).await;
    let w = sync_writer(&app).await;
    let clean = sync::run(&w, options(false)).await.unwrap();
    assert_eq!(
        (clean.scanned, clean.drift()),
        (300, 0),
        "no drift after seeding"
    );

    let (missing, changed, extra) = seed_drift(&app, &sales).await;
    let before = contents(&app).await;

    let check = sync::run(&w, options(true)).await.unwrap();
    assert_eq!(
        (check.created, check.updated, check.deleted),
        (missing, changed, extra),
        "the dry run counts each kind of drift"
    );
    assert!(contents(&app).await == before, "a dry run changes nothing");
    let panel = sync::status(&app.mysql).await.unwrap();
    assert_eq!(
        panel.drift,
        Some(missing + changed + extra),
        "the panel shows the drift the dry run found"
    );

    let fix = sync::run(&w, options(false)).await.unwrap();
    assert_eq!(
        (fix.scanned, fix.created, fix.updated, fix.deleted),
        (300, missing, changed, extra)
    );
    assert_eq!(fix.status, SyncStatus::Completed);
    assert!(fix.finished_at.is_some());
    assert_no_drift(&app, "after sync").await;

    let again = sync::run(&w, options(false)).await.unwrap();
    assert_eq!(
        (again.scanned, again.drift()),
        (300, 0),
        "the second run changes nothing"
    );
    let panel = sync::status(&app.mysql).await.unwrap();
    assert_eq!(
        panel.last.map(|r| r.id),
        Some(again.id),
        "the report is stored"
    );
    assert_eq!(panel.drift, Some(0));
}

#[tokio::test]
async fn only_one_sync_runs_at_a_time() {
    let app = spawn_app().await;
    let w = sync_writer(&app).await;
    let first = sync::begin(&w, options(false)).await.unwrap();
    let mut at_once = options(false);
    at_once.wait_secs = 0;
    let second = sync::begin(&w, at_once).await;
    assert!(
        matches!(&second, Err(app::model::AppError::Conflict(m)) if m.contains("already running")),
        "{:?}",
        second.err()
    );
    first.execute().await.unwrap();
    sync::run(&w, options(false))
        .await
        .expect("the lock is free again");
}

#[tokio::test]
async fn a_sync_killed_halfway_converges_when_run_again() {
    let app = spawn_app().await;
    seed(&app, 3000, 32).await;
    // MySQL loses every row: the sync has 3,000 sales to copy back.
    sqlx::query("DELETE FROM sales")
        .execute(&app.mysql)
        .await
        .unwrap();

    let mysql_url = format!(
        "{}/{}",
        mysql_base_url().rsplit_once('/').unwrap().0,
        app.db_name
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["sync", "--batch-size", "50"])
        .env("MYSQL_URL", mysql_url)
        .env("MONGODB_URI", mongodb_uri())
        .env("MONGODB_DATABASE", &app.db_name)
        // A short lease, so the rerun need not wait long for the killed run's.
        .env("LEASE_SECS", "3")
        .env("WRITE_BUDGET_SECS", "1")
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("server sync starts");
    let mut copied = 0;
    for _ in 0..600 {
        copied = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sales")
            .fetch_one(&app.mysql)
            .await
            .unwrap();
        if copied >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.expect("SIGKILL the sync");
    assert!(
        (300..3000).contains(&copied),
        "killed halfway: {copied} of 3000 copied"
    );
    let stuck: (SyncStatus,) =
        sqlx::query_as("SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(stuck.0, SyncStatus::Running, "the killed run left its row");

    let w = sync_writer(&app).await;
    let rerun = sync::run(&w, options(false)).await.unwrap();
    assert_eq!(rerun.scanned, 3000);
    assert!(rerun.created > 0 && rerun.created <= 3000 - 300);
    assert_no_drift(&app, "after the rerun").await;
    let statuses: Vec<(SyncStatus,)> = sqlx::query_as("SELECT status FROM sync_runs ORDER BY id")
        .fetch_all(&app.mysql)
        .await
        .unwrap();
    assert_eq!(
        statuses.into_iter().map(|s| s.0).collect::<Vec<_>>(),
        [SyncStatus::Interrupted, SyncStatus::Completed]
    );
    assert_eq!(sync::run(&w, options(false)).await.unwrap().drift(), 0);
}

#[tokio::test]
async fn run_sync_from_the_panel_reports_progress_and_result() {
    let app = spawn_app().await;
    seed(&app, 200, 33).await;
    sqlx::query("DELETE FROM sales LIMIT 20")
        .execute(&app.mysql)
        .await
        .unwrap();
    let worker = app
        .user_with_role("sync.worker", app::model::Role::TechnicalWorker)
        .await;
    let (started, panel) = app.run_sync_from_panel(&worker).await;
    assert_eq!(started.started_by.as_deref(), Some("sync.worker"));
    assert_eq!(started.trigger, SyncTrigger::Manual);
    assert_eq!(panel.drift, Some(0), "{:?}", panel.last);
    let last = panel.last.expect("the run finished");
    assert_eq!(last.id, started.id);
    assert_eq!((last.scanned, last.created), (200, 20));
    assert_no_drift(&app, "after Run sync").await;
}

#[tokio::test]
async fn edits_during_a_sync_are_never_overwritten_with_stale_data() {
    let app = spawn_app().await;
    let sales = seed(&app, 600, 34).await;
    sqlx::query("DELETE FROM sales")
        .execute(&app.mysql)
        .await
        .unwrap();
    let w = sync_writer(&app).await;
    let run = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut o = options(false);
            o.batch = 25;
            sync::run(&w, o).await
        })
    };
    // Edit sales all through the run, through the same writer (and so its locks).
    let mut drafts = generate::sales(77);
    let mut edited = Vec::new();
    for sale in sales.iter().step_by(40) {
        let after = w
            .update(None, &sale.id, 1, drafts.next().unwrap())
            .await
            .expect("edit during sync");
        edited.push(after);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.scanned, 600);
    let finish = sync::run(&w, options(false)).await.unwrap();
    assert_eq!(finish.skipped, 0);
    assert_no_drift(&app, "after the edits and two runs").await;
    let (mongo, _) = contents(&app).await;
    for after in edited {
        assert_eq!(
            mongo.get(&after.id).map(|(v, d)| (*v, d.clone())),
            Some((2, after.draft)),
            "the edit stands"
        );
    }
}
