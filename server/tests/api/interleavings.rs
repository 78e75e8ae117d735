//! Races between instances, forced. Writers built on the same pools act as separate
//! instances (leases of their own, gates and faults of their own); a gate pauses one at
//! a chosen step while another goes on. Each test names the interleaving it covers, as
//! numbered in docs/dual-write.md ("Races the leases close").

use crate::dual_write::{assert_in_sync, both, drafts, quiet_app, unfinished};
use crate::helpers::{TestApp, TestOptions, spawn_app_with};
use crate::ports::{Instance, MemoryPrimary, instance, instance_on, instance_with, test_policy};
use app::model::{AppError, Sale, SaleId};
use app::server::sales::changes::Changes;
use app::server::sales::dual_write::{IdempotencyKey, Primary};
use app::server::sales::{backup, rollups};
use std::sync::atomic::Ordering;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(10);

/// Waits out the test leases: the paused writer is now a writer whose lease ran out.
async fn let_leases_expire() {
    tokio::time::sleep(test_policy().ttl + Duration::from_millis(300)).await;
}

fn spawn<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::spawn(f)
}

/// I1. Two instances update one sale at once, both released together at MongoDB's
/// write. FerretDB's `findAndModify` is a read then a separate write, so without a
/// shared lease both read the same version and both are acknowledged.
#[tokio::test]
async fn i1_two_instances_never_acknowledge_one_version_twice() {
    let app = quiet_app().await;
    let (a, b) = (instance(&app), instance(&app));
    let mut source = drafts(61);
    for round in 0..10 {
        let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
        let (ga, gb) = (a.gates.arm("primary.swap"), b.gates.arm("primary.swap"));
        let (wa, wb) = (a.writer.clone(), b.writer.clone());
        let (ia, ib) = (sale.id.clone(), sale.id.clone());
        let (da, db) = (source.next().unwrap(), source.next().unwrap());
        let ta = spawn(async move { wa.update(None, &ia, 1, da).await });
        let tb = spawn(async move { wb.update(None, &ib, 1, db).await });
        // Whoever gets there waits for the other, where the protocol lets it get there.
        let first = tokio::select! {
            _ = ga.reached() => &gb,
            _ = gb.reached() => &ga,
        };
        first.reached_within(Duration::from_millis(300)).await;
        ga.release();
        gb.release();
        let results = [ta.await.unwrap(), tb.await.unwrap()];
        let acked: Vec<&Sale> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            acked.len(),
            1,
            "round {round}: exactly one of two edits of v1 wins: {results:?}"
        );
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, AppError::Conflict(_)), "round {round}: {e:?}");
            }
        }
        assert_in_sync(&app, &sale.id, Some(acked[0]), &format!("I1 round {round}")).await;
    }
    assert_eq!(unfinished(&app).await, 0);
}

/// I2. A's backup commit is delayed after its MongoDB write; B edits the version A
/// wrote. A's late commit must not overwrite B's newer backup row.
#[tokio::test]
async fn i2_a_delayed_backup_commit_never_overwrites_a_newer_edit() {
    let app = quiet_app().await;
    let (a, b) = (instance(&app), instance(&app));
    let mut source = drafts(62);
    let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
    let ga = a.gates.arm("backup.commit");
    let (wa, wb, id) = (a.writer.clone(), b.writer.clone(), sale.id.clone());
    let (da, db) = (source.next().unwrap(), source.next().unwrap());
    let ta = spawn({
        let id = id.clone();
        async move { wa.update(None, &id, 1, da).await }
    });
    ga.reached().await;
    // B saw A's version in MongoDB and edits it.
    let tb = spawn({
        let id = id.clone();
        async move { wb.update(None, &id, 2, db).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    ga.release();
    let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
    let a_saved = ra.expect("A's edit is acknowledged");
    let b_saved = rb.expect("B's edit, of A's version, applies after A's");
    assert_eq!((a_saved.version, b_saved.version), (2, 3));
    assert_in_sync(&app, &id, Some(&b_saved), "I2").await;
}

/// I3. A stalls between MongoDB and its backup commit past its lease; recovery on
/// another instance rolls the edit back. A's late commit must then change nothing and
/// acknowledge nothing.
#[tokio::test]
async fn i3_recovery_of_a_stalled_edit_is_never_followed_by_its_acknowledgement() {
    let app = quiet_app().await;
    let (a, r) = (instance(&app), instance(&app));
    let mut source = drafts(63);
    let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
    let ga = a.gates.arm("backup.commit");
    let wa = a.writer.clone();
    let id = sale.id.clone();
    let draft = source.next().unwrap();
    let ta = spawn(async move { wa.update(None, &id, 1, draft).await });
    ga.reached().await;
    let_leases_expire().await;
    assert_eq!(r.writer.recover().await.unwrap().resolved, 1);
    ga.release();
    let late = ta.await.unwrap();
    assert!(matches!(late, Err(AppError::NotSaved { .. })), "{late:?}");
    assert_in_sync(&app, &sale.id, Some(&sale), "I3").await;
    assert_eq!(unfinished(&app).await, 0);
}

/// I4. Recovery has claimed a stalled edit and is about to read MongoDB when the
/// stalled writer wakes up and tries to commit: the commit must fail, so the roll-back
/// never undoes an acknowledged edit.
#[tokio::test]
async fn i4_a_writer_cannot_commit_an_edit_recovery_has_claimed() {
    let app = quiet_app().await;
    let (a, r) = (instance(&app), instance(&app));
    let mut source = drafts(64);
    let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
    let ga = a.gates.arm("backup.commit");
    let (wa, wr) = (a.writer.clone(), r.writer.clone());
    let id = sale.id.clone();
    let draft = source.next().unwrap();
    let ta = spawn(async move { wa.update(None, &id, 1, draft).await });
    ga.reached().await;
    let_leases_expire().await;
    let gr = r.gates.arm("backup.claim_due:after");
    let tr = spawn(async move { wr.recover().await });
    gr.reached().await;
    ga.release();
    let late = ta.await.unwrap();
    gr.release();
    let report = tr.await.unwrap().unwrap();
    assert!(matches!(late, Err(AppError::NotSaved { .. })), "{late:?}");
    assert_eq!(report.resolved, 1);
    assert_in_sync(&app, &sale.id, Some(&sale), "I4").await;
}

/// Both stores, for a test on the in-memory primary.
async fn memory_both(
    app: &TestApp,
    primary: &MemoryPrimary,
    id: &SaleId,
) -> (Option<Sale>, Option<Sale>) {
    let mut conn = app.mysql.acquire().await.unwrap();
    let mysql = backup::load(&mut conn, std::slice::from_ref(id))
        .await
        .unwrap()
        .pop();
    (primary.get(id).await.unwrap(), mysql)
}

/// I5. On real MongoDB (the in-memory primary with its atomic conditional writes): A's
/// compensation is sent but arrives late, after A gave up on it and its lease ran out.
/// Recovery rolls the edit back, D edits the sale, then A's undo arrives. Versions
/// never repeat, so the undo (conditioned on the version A wrote) cannot land on D's
/// document.
#[tokio::test]
async fn i5_a_late_undo_never_lands_on_a_newer_edit() {
    let app = quiet_app().await;
    let primary = MemoryPrimary::atomic();
    let policy = test_policy();
    let (a, r, d) = (
        instance_with(&app, primary.clone(), policy),
        instance_with(&app, primary.clone(), policy),
        instance_with(&app, primary.clone(), policy),
    );
    let mut source = drafts(65);
    let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
    // A's backup commit fails twice, so A compensates; its undo is held on the way.
    a.faults.commits_failing.store(2, Ordering::SeqCst);
    let written = a.gates.arm("primary.swap:after");
    let wa = a.writer.clone();
    let id = sale.id.clone();
    let draft = source.next().unwrap();
    let ta = spawn(async move { wa.update(None, &id, 1, draft).await });
    written.reached().await;
    a.faults.detached_writes.store(true, Ordering::SeqCst);
    let undo = a.gates.arm("primary.swap");
    written.release();
    undo.reached().await;
    let gave_up = ta.await.unwrap();
    assert_eq!(
        gave_up,
        Err(AppError::NotSaved {
            repair_pending: true
        })
    );
    let_leases_expire().await;
    assert_eq!(r.writer.recover().await.unwrap().resolved, 1);
    let (rolled_back, _) = memory_both(&app, &primary, &sale.id).await;
    let rolled_back = rolled_back.unwrap();
    assert_eq!(rolled_back.draft, sale.draft);
    let newest = d
        .writer
        .update(None, &sale.id, rolled_back.version, source.next().unwrap())
        .await
        .expect("D edits the rolled-back sale");
    undo.release();
    undo.finished().await;
    let (mongo, mysql) = memory_both(&app, &primary, &sale.id).await;
    let strip = |s: Option<Sale>| s.map(|s| (s.version, s.draft));
    assert_eq!(
        strip(mongo),
        strip(Some(newest.clone())),
        "D's edit stands in MongoDB"
    );
    assert_eq!(strip(mysql), strip(Some(newest)), "and in the backup");
}

/// Where versions are atomic, a write that arrives late is fenced off: by its own
/// writer when the write timed out, and by recovery when the writer died with the
/// write on its way.
#[tokio::test]
async fn late_writes_are_fenced_where_versions_are_atomic() {
    let app = quiet_app().await;
    let primary = MemoryPrimary::atomic();
    let policy = test_policy();
    let (a, r) = (
        instance_with(&app, primary.clone(), policy),
        instance_with(&app, primary.clone(), policy),
    );
    let mut source = drafts(66);
    let strip = |s: Option<Sale>| s.map(|s| (s.version, s.draft));
    a.faults.detached_writes.store(true, Ordering::SeqCst);

    // The writer times out on its write and fences the document itself.
    let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
    let late = a.gates.arm("primary.swap");
    let timed_out = a
        .writer
        .update(None, &sale.id, 1, source.next().unwrap())
        .await;
    assert_eq!(
        timed_out,
        Err(AppError::Unavailable(app::model::Database::MongoDb))
    );
    late.release();
    late.finished().await;
    let (mongo, mysql) = memory_both(&app, &primary, &sale.id).await;
    assert_eq!(
        mongo.as_ref().map(|s| (s.version, &s.draft)),
        Some((3, &sale.draft)),
        "moved past the late write's version"
    );
    assert_eq!(strip(mongo), strip(mysql));

    // The writer dies with its write on the way; recovery fences it.
    let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
    let late = a.gates.arm("primary.swap");
    let died = tokio::time::timeout(
        Duration::from_millis(200),
        a.writer.update(None, &sale.id, 1, source.next().unwrap()),
    )
    .await;
    assert!(died.is_err(), "the writer died mid-write");
    let_leases_expire().await;
    assert_eq!(r.writer.recover().await.unwrap().resolved, 1);
    late.release();
    late.finished().await;
    let (mongo, mysql) = memory_both(&app, &primary, &sale.id).await;
    assert_eq!(
        mongo.as_ref().map(|s| (s.version, &s.draft)),
        Some((3, &sale.draft))
    );
    assert_eq!(strip(mongo), strip(mysql));
    assert_eq!(unfinished(&app).await, 0);
}

/// I9. A process paused (SIGSTOP, a frozen VM) in the middle of its MongoDB write,
/// before the write left it, wakes after its lease ran out and recovery settled the
/// edit without it. It must drop the write, not send it: where versions do not fence
/// (FerretDB), the write would land, and MongoDB would hold an edit the backup does
/// not (the 80 s soak found this as drift its scheduled syncs repaired). The pause
/// blocks the writer's only runtime thread, so that, as in a stopped process, no
/// timer fires meanwhile.
#[tokio::test]
async fn i9_a_writer_paused_past_its_lease_never_sends_its_write() {
    let app = quiet_app().await;
    let primary = MemoryPrimary::by_id();
    let policy = test_policy();
    let r = instance_with(&app, primary.clone(), policy);
    let seen = primary.clone();
    let mut source = drafts(69);
    let sale = r.writer.create(None, source.next().unwrap()).await.unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let process = runtime.handle().clone();
    let (armed, gate) = tokio::sync::oneshot::channel();
    let (options, id, draft) = (
        app.databases.mysql.clone(),
        sale.id.clone(),
        source.next().unwrap(),
    );
    let writer = std::thread::spawn(move || {
        runtime.block_on(async move {
            let pool = sqlx::MySqlPool::connect_with(options).await.unwrap();
            let a = instance_on(pool, primary, policy);
            armed.send(a.gates.arm("primary.swap")).ok();
            a.writer.update(None, &id, 1, draft).await
        })
    });
    let gate = gate.await.unwrap();
    gate.reached().await;
    let (stopped, thawed) = (tokio::sync::oneshot::channel(), std::sync::mpsc::channel());
    process.spawn(async move {
        stopped.0.send(()).ok();
        thawed.1.recv().ok();
    });
    stopped.1.await.unwrap();

    let_leases_expire().await;
    assert_eq!(r.writer.recover().await.unwrap().resolved, 1);
    gate.release();
    thawed.0.send(()).unwrap();
    let late = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();

    assert!(
        late.is_err(),
        "the paused edit is not acknowledged: {late:?}"
    );
    let (mongo, mysql) = memory_both(&app, &seen, &sale.id).await;
    assert_eq!(
        mongo.as_ref(),
        Some(&sale),
        "MongoDB never got the late write"
    );
    assert_eq!(
        mysql.as_ref().map(|s| (s.version, &s.draft)),
        Some((1, &sale.draft))
    );
    assert_eq!(unfinished(&app).await, 0);
}

/// I6. An import batch (the CLI, another process) stalls between MongoDB and its
/// backup transaction past its leases; recovery rolls its creates back. The batch must
/// then write nothing and report failure, never success.
#[tokio::test]
async fn i6_a_stalled_import_batch_never_reports_sales_recovery_removed() {
    let app = quiet_app().await;
    let (a, r) = (instance(&app), instance(&app));
    let sales = crate::helpers::generated_sales(67, 20);
    let gi = a.gates.arm("backup.commit_batch");
    let wa = a.writer.clone();
    let batch = sales.clone();
    let ti = spawn(async move { wa.import_batch(&batch).await });
    gi.reached().await;
    let_leases_expire().await;
    assert_eq!(r.writer.recover().await.unwrap().resolved, 20);
    gi.release();
    let outcome = ti.await.unwrap();
    assert!(
        outcome.is_err(),
        "the batch must not report success: {outcome:?}"
    );
    for sale in &sales {
        assert_eq!(both(&app, &sale.id).await, (None, None), "{}", sale.id);
    }
    assert_eq!(unfinished(&app).await, 0);
}

/// I7. A sync repairs a sale while an instance edits it. The edit that arrives during
/// the repair waits for it and then applies on top; an edit already under way when the
/// repair reaches its sale makes the repair leave that sale alone.
#[tokio::test]
async fn i7_a_sync_repair_never_overwrites_an_edit() {
    use app::model::SyncTrigger;
    use app::server::sales::sync::{self, SyncOptions};
    let app = quiet_app().await;
    let b = instance(&app);
    let mut source = drafts(68);
    let sale = b.writer.create(None, source.next().unwrap()).await.unwrap();
    let drift = || async {
        sqlx::query("UPDATE sales SET customer_age = customer_age + 1 WHERE id = ?")
            .bind(sale.id.as_str())
            .execute(&app.mysql)
            .await
            .unwrap();
    };
    let sync_writer = app::server::sales::dual_write::writer_with(
        app.mysql.clone(),
        app.mongo.clone(),
        test_policy(),
    );

    // The repair holds the sale when the edit arrives: it is paused on a row lock the
    // test holds, after it took the sale's lease.
    drift().await;
    let mut hold = app.mysql.begin().await.unwrap();
    sqlx::query("SELECT id FROM sales WHERE id = ? FOR UPDATE")
        .bind(sale.id.as_str())
        .execute(&mut *hold)
        .await
        .unwrap();
    let run = spawn({
        let w = sync_writer.clone();
        async move { sync::run(&w, SyncOptions::new(SyncTrigger::Cli)).await }
    });
    let claimed = async {
        loop {
            // The repair's locking read of the sale's rows, waiting on the test's lock.
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE db = DATABASE() AND info LIKE 'SELECT id, DATE(sale_date)%FOR UPDATE'",
            )
            .fetch_one(&app.mysql)
            .await
            .unwrap();
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(SOON, claimed)
        .await
        .expect("the repair reaches the sale");
    let wb = b.writer.clone();
    let (id, draft) = (sale.id.clone(), source.next().unwrap());
    let edit = spawn(async move { wb.update(None, &id, 1, draft).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    hold.commit().await.unwrap();
    let report = run.await.unwrap().expect("the sync completes");
    let edited = edit
        .await
        .unwrap()
        .expect("the edit applies after the repair");
    assert_eq!(report.updated, 1, "{report:?}");
    assert_in_sync(&app, &sale.id, Some(&edited), "I7 edit during the repair").await;

    // The edit is under way (MongoDB written, backup not yet) when the repair comes.
    drift().await;
    let gb = b.gates.arm("backup.commit");
    let wb = b.writer.clone();
    let (id, draft) = (sale.id.clone(), source.next().unwrap());
    let expected = edited.version;
    let edit = spawn(async move { wb.update(None, &id, expected, draft).await });
    gb.reached().await;
    let report = sync::run(&sync_writer, SyncOptions::new(SyncTrigger::Cli))
        .await
        .unwrap();
    assert_eq!((report.updated, report.skipped), (0, 1), "{report:?}");
    gb.release();
    let last = edit.await.unwrap().expect("the edit completes");
    assert_in_sync(&app, &sale.id, Some(&last), "I7 repair during the edit").await;
    assert_eq!(unfinished(&app).await, 0);
}

/// A fresh recompute of both rollups from the sales tables, to compare with the
/// maintained ones.
async fn rollups_match(app: &TestApp) -> bool {
    let diff: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ( \
           SELECT day, store_location, purchase_method, coupon_used, sales, revenue FROM sales_daily WHERE sales <> 0 \
           UNION ALL \
           SELECT DATE(sale_date), store_location, purchase_method, coupon_used, -COUNT(*), -SUM(total) FROM sales \
           GROUP BY DATE(sale_date), store_location, purchase_method, coupon_used \
         ) AS d GROUP BY day, store_location, purchase_method, coupon_used \
         HAVING SUM(sales) <> 0 OR SUM(revenue) <> 0",
    )
    .fetch_optional(&app.mysql)
    .await
    .unwrap()
    .unwrap_or(0);
    diff == 0
}

/// I8. Two transactions replace one sale at once (a stalled writer and a repair, say):
/// each must subtract what the other wrote, never the same old rows twice.
#[tokio::test]
async fn i8_concurrent_replacements_keep_the_rollups_exact() {
    let app = quiet_app().await;
    let a = instance(&app);
    let mut source = drafts(69);
    let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
    let mut replaced = |n: u64| Sale {
        version: n,
        draft: source.next().unwrap(),
        ..sale.clone()
    };
    let (first, second) = (replaced(2), replaced(3));
    let mut tx1 = app.mysql.begin().await.unwrap();
    let mut changes1 = Changes::default();
    backup::replace(&mut tx1, std::slice::from_ref(&first), &mut changes1)
        .await
        .unwrap();
    let pool = app.mysql.clone();
    let other = spawn(async move {
        let mut tx2 = pool.begin().await.unwrap();
        let mut changes2 = Changes::default();
        backup::replace(&mut tx2, std::slice::from_ref(&second), &mut changes2)
            .await
            .unwrap();
        changes2.record(&mut tx2).await.unwrap();
        tx2.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    changes1.record(&mut tx1).await.unwrap();
    tx1.commit().await.unwrap();
    other.await.unwrap();
    assert!(
        rollups_match(&app).await,
        "the rollups equal a fresh recompute"
    );
    rollups::rebuild(&app.mysql).await.unwrap();
    assert!(rollups_match(&app).await);
}

/// A double submit sent to two instances: the second waits for the first and gives the
/// same answer. If the first instance died mid-way, the second rolls its attempt back
/// and saves the submission itself.
#[tokio::test]
async fn a_double_submit_to_two_instances_gets_one_answer() {
    let app = quiet_app().await;
    let (a, b) = (instance(&app), instance(&app));
    let mut source = drafts(70);
    let sale = a.writer.create(None, source.next().unwrap()).await.unwrap();
    let key = IdempotencyKey::parse("form-double-1").unwrap();
    let draft = source.next().unwrap();
    let submit = |i: &Instance<_>, key: IdempotencyKey, draft, expected| {
        let w = i.writer.clone();
        let id = sale.id.clone();
        spawn(async move { w.update(Some(&key), &id, expected, draft).await })
    };
    let ga = a.gates.arm("backup.commit");
    let ta = submit(&a, key.clone(), draft.clone(), 1);
    ga.reached().await;
    let tb = submit(&b, key.clone(), draft.clone(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    ga.release();
    let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
    assert_eq!(ra, rb, "both answers are the same");
    let saved = ra.expect("saved");
    assert_eq!(saved.version, 2);

    // The first instance stalls past its lease: the second takes the submission over.
    let key = IdempotencyKey::parse("form-double-2").unwrap();
    let draft = source.next().unwrap();
    let ga = a.gates.arm("backup.commit");
    let ta = submit(&a, key.clone(), draft.clone(), 2);
    ga.reached().await;
    let_leases_expire().await;
    let retried = submit(&b, key, draft.clone(), 2)
        .await
        .unwrap()
        .expect("the second instance saves it");
    assert_eq!(retried.draft, draft);
    ga.release();
    assert!(
        ta.await.unwrap().is_err(),
        "the stalled attempt is not acknowledged"
    );
    assert_in_sync(&app, &sale.id, Some(&retried), "after the takeover").await;
    assert_eq!(unfinished(&app).await, 0);
}

/// Read your writes on any instance: a sale created through one instance is in the
/// counts another instance serves at once (before, each kept its counts for 5 s).
#[tokio::test]
async fn counts_follow_an_edit_made_through_another_instance_at_once() {
    use app::model::Role;
    use app::model::report::SalesPage;
    let app = quiet_app().await;
    let other = app.spawn_instance(&TestOptions::default().serve).await;
    let worker = app
        .user_with_role("counts.worker", Role::TechnicalWorker)
        .await;
    let list = |address: &str| {
        let (worker, url) = (worker.clone(), format!("{address}/api/sales/list"));
        async move {
            let res = worker
                .post(url)
                .json(&serde_json::json!({ "query": {} }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<SalesPage>().await.unwrap().matching
        }
    };
    assert_eq!(list(&other).await, 0);
    let input = app::model::SaleInput::from(&drafts(71).next().unwrap());
    let (status, body) = app
        .call_json(
            &worker,
            "sales/create",
            &serde_json::json!({ "token": "", "input": input }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        list(&other).await,
        1,
        "the other instance counts it at once"
    );
}

/// One scheduled sync per interval across all instances, however many tick.
#[tokio::test]
async fn instances_share_one_sync_schedule() {
    let mut options = TestOptions::default();
    options.serve.sync_interval_secs = 2;
    options.serve.recovery_interval_secs = 3600;
    let app = spawn_app_with(options.clone()).await;
    app.spawn_instance(&options.serve).await;
    app.spawn_instance(&options.serve).await;
    tokio::time::sleep(Duration::from_millis(7500)).await;
    #[derive(sqlx::FromRow, Debug)]
    struct RunRow {
        started_at: chrono::NaiveDateTime,
        finished_at: Option<chrono::NaiveDateTime>,
    }
    let runs: Vec<RunRow> = sqlx::query_as(
        "SELECT started_at, finished_at FROM sync_runs WHERE trigger_kind = 'schedule' ORDER BY id",
    )
    .fetch_all(&app.mysql)
    .await
    .unwrap();
    assert!(
        (2..=4).contains(&runs.len()),
        "one run per 2 s interval over 7.5 s, not one per instance: {runs:?}"
    );
    for pair in runs.windows(2) {
        assert!(
            pair[0].finished_at.is_some_and(|f| f <= pair[1].started_at),
            "runs never overlap: {runs:?}"
        );
        assert!(
            pair[1].started_at - pair[0].started_at >= chrono::Duration::milliseconds(1900),
            "{runs:?}"
        );
    }
}

#[tokio::test]
async fn a_sync_started_through_one_instance_shows_its_progress_on_another() {
    use app::model::{ReplicationStatus, Role};
    let app = quiet_app().await;
    let second = app.spawn_instance(&TestOptions::default().serve).await;
    crate::sync::seed(&app, 2000, 72).await;
    sqlx::query("DELETE FROM sales")
        .execute(&app.mysql)
        .await
        .unwrap();
    let worker = app
        .user_with_role("sync.worker", Role::TechnicalWorker)
        .await;
    let (status, body) = app
        .call(&worker, "replication/sync", &[("dry_run", "false")])
        .await;
    assert_eq!(status, 200, "{body}");
    let mut seen_running = false;
    for _ in 0..400 {
        let res = worker
            .post(format!("{second}/api/replication/status"))
            .send()
            .await
            .unwrap();
        let panel: ReplicationStatus = res.json().await.unwrap();
        if panel.running.is_some() {
            seen_running = true;
        } else if seen_running {
            assert_eq!(panel.last.map(|r| r.created), Some(2000));
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the other instance never showed the run (seen running: {seen_running})");
}

/// The journal allows one open intent per sale: the guarantee the leases rest on, in
/// the database itself.
#[tokio::test]
async fn the_database_refuses_a_second_open_intent_on_a_sale() {
    let app = quiet_app().await;
    let insert = |state: &'static str| {
        sqlx::query(
            "INSERT INTO sale_intents (op, sale_id, state, created_at, updated_at) \
             VALUES ('update', '5bd761dcae323e45a93ccfe8', ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind(state)
        .execute(&app.mysql)
    };
    insert("pending").await.unwrap();
    insert("done").await.unwrap();
    insert("failed").await.unwrap();
    let second = insert("needs_repair").await.unwrap_err();
    assert!(app::server::db::is_unique_violation(&second), "{second}");
}
