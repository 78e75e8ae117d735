//! The dual-write protocol under injected faults, on the real MariaDB and FerretDB.

use crate::helpers::{TestApp, TestOptions, spawn_app_with};
use crate::ports::{Faults, Instance, instance};
use app::model::{AppError, Database, Sale, SaleDraft, SaleId};
use app::server::sales::dual_write::{
    Backup, DualWriter, IdempotencyKey, MongoPrimary, Primary, RecoveryReport, STILL_SAVING,
};
use app::server::sales::{backup, codec, generate, primary};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// An app whose own recovery worker stays out of the way: these tests run recovery
/// themselves, through the writer under test.
pub async fn quiet_app() -> TestApp {
    let mut options = TestOptions::default();
    options.serve.recovery_interval_secs = 3600;
    spawn_app_with(options).await
}

fn flaky_writer(app: &TestApp) -> (crate::ports::Writer, Faults) {
    let Instance { writer, faults, .. } = instance(app);
    (writer, faults)
}

/// What happens once a writer has died: its leases run out, then recovery rolls back
/// what it left open.
pub async fn recover_after_expiry<P: Primary, B: Backup>(
    writer: &DualWriter<P, B>,
) -> RecoveryReport {
    tokio::time::sleep(writer.policy().ttl + Duration::from_millis(200)).await;
    writer.recover().await.expect("recovery runs")
}

pub fn drafts(seed: u64) -> impl Iterator<Item = SaleDraft> {
    generate::sales(seed)
}

/// The sale as each store holds it now.
pub async fn both(app: &TestApp, id: &SaleId) -> (Option<Sale>, Option<Sale>) {
    let mongo = MongoPrimary::new(app.mongo.clone(), Duration::from_secs(5))
        .get(id)
        .await
        .expect("read MongoDB");
    let mut conn = app.mysql.acquire().await.expect("connection");
    let mysql = backup::load(&mut conn, std::slice::from_ref(id))
        .await
        .expect("read MySQL")
        .pop();
    (mongo, mysql)
}

/// Both stores hold the same sale (version and content), with `expected`'s content at
/// `expected`'s version or a later one (a roll-back restores content at a new version).
pub async fn assert_in_sync(app: &TestApp, id: &SaleId, expected: Option<&Sale>, case: &str) {
    let (mongo, mysql) = both(app, id).await;
    let strip = |s: Option<Sale>| s.map(|s| (s.version, s.draft));
    assert_eq!(
        strip(mongo.clone()),
        strip(mysql),
        "{case}: MySQL differs from MongoDB"
    );
    assert_eq!(
        mongo.as_ref().map(|s| &s.draft),
        expected.map(|s| &s.draft),
        "{case}: unexpected content"
    );
    if let (Some(m), Some(e)) = (&mongo, expected) {
        assert!(
            m.version >= e.version,
            "{case}: version went backwards: {} < {}",
            m.version,
            e.version
        );
    }
}

pub async fn unfinished(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM sale_intents WHERE state IN ('pending', 'needs_repair')",
    )
    .fetch_one(&app.mysql)
    .await
    .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Point {
    MongoDown,
    MySqlDownBeforeIntent,
    MySqlFailsAfterMongo,
    CompensationFails,
    CrashAfterMongo,
    /// Not failures, but failures as the caller sees them: the write landed and its
    /// reply was lost. Reading the outcome back must acknowledge the edit.
    MongoReplyLost,
    MySqlReplyLost,
}

#[tokio::test]
async fn failure_matrix_leaves_the_stores_equal() {
    let app = quiet_app().await;
    let (writer, faults) = flaky_writer(&app);
    let mut source = drafts(21);
    let points = [
        Point::MongoDown,
        Point::MySqlDownBeforeIntent,
        Point::MySqlFailsAfterMongo,
        Point::CompensationFails,
        Point::CrashAfterMongo,
        Point::MongoReplyLost,
        Point::MySqlReplyLost,
    ];
    for op in ["create", "update", "delete"] {
        for point in points {
            let case = format!("{op} × {point:?}");
            faults.clear();
            // The state before the faulty edit: nothing (create) or a stored sale.
            let existing = if op == "create" {
                None
            } else {
                Some(
                    writer
                        .create(None, source.next().unwrap())
                        .await
                        .expect("setup"),
                )
            };
            let id = existing
                .as_ref()
                .map(|s| s.id.clone())
                .unwrap_or_else(|| SaleId::parse(&bson::oid::ObjectId::new().to_hex()).unwrap());
            match point {
                Point::MongoDown => faults.mongo_down.store(true, Ordering::SeqCst),
                Point::MySqlDownBeforeIntent => faults
                    .mysql_down_before_intent
                    .store(true, Ordering::SeqCst),
                Point::MySqlFailsAfterMongo => {
                    faults.mysql_down_after_intent.store(true, Ordering::SeqCst)
                }
                Point::CompensationFails => {
                    faults.mysql_down_after_intent.store(true, Ordering::SeqCst);
                    faults.primary_writes_left.store(1, Ordering::SeqCst);
                }
                Point::CrashAfterMongo => faults.hang_after_mongo.store(true, Ordering::SeqCst),
                Point::MongoReplyLost => faults.mongo_reply_lost.store(true, Ordering::SeqCst),
                Point::MySqlReplyLost => faults.mysql_reply_lost.store(true, Ordering::SeqCst),
            }
            let edit = async {
                match op {
                    "create" => writer
                        .create_with_id(None, id.clone(), source.next().unwrap())
                        .await
                        .map(Some),
                    "update" => writer
                        .update(None, &id, 1, source.next().unwrap())
                        .await
                        .map(Some),
                    _ => writer.delete(None, &id, 1).await.map(|()| None),
                }
            };
            let outcome = tokio::time::timeout(Duration::from_secs(3), edit).await;
            let mut expected = existing.clone();
            match (point, outcome) {
                (Point::MongoReplyLost | Point::MySqlReplyLost, Ok(Ok(applied))) => {
                    expected = applied
                }
                // The write's outcome cannot be read back while MongoDB is down, so
                // its intent stays for recovery to settle; the caller hears that
                // MongoDB is unavailable. (Updates and deletes take the before-image
                // from the backup's settled copy, so they reach the write too.)
                (Point::MongoDown, Ok(Err(e))) => {
                    assert_eq!(e, AppError::Unavailable(Database::MongoDb), "{case}")
                }
                (Point::MySqlDownBeforeIntent, Ok(Err(e))) => {
                    assert_eq!(e, AppError::Unavailable(Database::Reporting), "{case}")
                }
                (Point::MySqlFailsAfterMongo, Ok(Err(e))) => assert_eq!(
                    e,
                    AppError::NotSaved {
                        repair_pending: false
                    },
                    "{case}"
                ),
                (Point::CompensationFails, Ok(Err(e))) => assert_eq!(
                    e,
                    AppError::NotSaved {
                        repair_pending: true
                    },
                    "{case}"
                ),
                (Point::CrashAfterMongo, Err(_elapsed)) => {}
                (_, other) => panic!("{case}: unexpected outcome {other:?}"),
            }
            faults.clear();
            // MongoDB was down, so the write's outcome was unknown; MySQL was down, so
            // the intent could not even be marked (MongoDB was already restored); after
            // a failed compensation or a crash, MongoDB still holds the unacknowledged
            // edit. Each stays unfinished until recovery resolves it.
            let settled_by_recovery = match point {
                Point::MongoDown
                | Point::MySqlFailsAfterMongo
                | Point::CompensationFails
                | Point::CrashAfterMongo => true,
                Point::MySqlDownBeforeIntent | Point::MongoReplyLost | Point::MySqlReplyLost => {
                    false
                }
            };
            if settled_by_recovery {
                assert!(
                    unfinished(&app).await >= 1,
                    "{case}: the intent is unfinished"
                );
                let report = recover_after_expiry(&writer).await;
                assert_eq!(report.resolved, 1, "{case}");
                assert_eq!(
                    writer.recover().await.unwrap().resolved,
                    0,
                    "{case}: resolving twice is harmless"
                );
            }
            assert_in_sync(&app, &id, expected.as_ref(), &case).await;
            assert_eq!(
                unfinished(&app).await,
                0,
                "{case}: no intent left unfinished"
            );
        }
    }
}

/// MongoDB's copy of a sale, written behind the writer's back (drift to be repaired).
async fn put_in_mongo(app: &TestApp, sale: &Sale) {
    let money = primary::money_encoding(&app.mongo).await.unwrap();
    primary::collection(&app.mongo)
        .replace_one(
            bson::doc! { "_id": codec::object_id(&sale.id) },
            codec::sale_to_document(sale, money),
        )
        .await
        .unwrap();
}

async fn before_image_of_last_intent(app: &TestApp, id: &SaleId) -> Sale {
    let text: String = sqlx::query_scalar(
        "SELECT before_image FROM sale_intents WHERE sale_id = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(id.as_str())
    .fetch_one(&app.mysql)
    .await
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Changes the backup's copy of `sale` behind the writer's back (its satisfaction
/// score), as a manual edit of MySQL would.
async fn drift_backup_copy(app: &TestApp, sale: &Sale) {
    sqlx::query("UPDATE sales SET customer_satisfaction = ? WHERE id = ?")
        .bind((sale.draft.customer.satisfaction.get() % 5) + 1)
        .bind(sale.id.as_str())
        .execute(&app.mysql)
        .await
        .unwrap();
}

/// Updates and deletes take their before-image from the backup's copy; MongoDB's
/// reply to the write must catch every way that copy can be wrong.
#[tokio::test]
async fn a_drifted_backup_copy_never_becomes_the_before_image() {
    let app = quiet_app().await;
    let (writer, faults) = flaky_writer(&app);
    let mut source = drafts(23);
    let strip = |s: &Sale| (s.version, s.draft.clone());

    // Same version, other content in MySQL: the edit applies, and the intent records
    // MongoDB's content as the before-image.
    let sale = writer.create(None, source.next().unwrap()).await.unwrap();
    drift_backup_copy(&app, &sale).await;
    let updated = writer
        .update(None, &sale.id, 1, source.next().unwrap())
        .await
        .expect("the edit applies");
    assert_eq!(
        strip(&before_image_of_last_intent(&app, &sale.id).await),
        strip(&sale)
    );
    assert_in_sync(&app, &sale.id, Some(&updated), "content drift, update").await;

    // The same drift and a crash between the two writes: recovery restores MongoDB's
    // own earlier content, not the backup's drifted copy.
    drift_backup_copy(&app, &updated).await;
    faults.hang_after_mongo.store(true, Ordering::SeqCst);
    let crashed = tokio::time::timeout(
        Duration::from_secs(3),
        writer.update(None, &sale.id, 2, source.next().unwrap()),
    )
    .await;
    assert!(crashed.is_err(), "the writer 'died' in the backup commit");
    faults.clear();
    assert_eq!(recover_after_expiry(&writer).await.resolved, 1);
    assert_in_sync(&app, &sale.id, Some(&updated), "content drift, crash").await;
    let restored = both(&app, &sale.id).await.0.unwrap();
    assert_eq!(
        restored.version, 4,
        "restored at a new version, never the old one"
    );

    // MongoDB moved on behind the backup's back: an edit of the version the backup
    // shows is a conflict, MongoDB keeps its document (FerretDB's write, which matches
    // `_id` alone, is put back) and the backup is settled on it.
    let newer = Sale {
        version: 7,
        draft: source.next().unwrap(),
        ..restored.clone()
    };
    put_in_mongo(&app, &newer).await;
    let stale = writer
        .update(None, &sale.id, 4, source.next().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(stale, AppError::Conflict(_)), "{stale:?}");
    assert!(matches!(
        writer.delete(None, &sale.id, 4).await,
        Err(AppError::Conflict(_))
    ));
    assert_in_sync(&app, &sale.id, Some(&newer), "MongoDB moved on").await;
    assert_eq!(unfinished(&app).await, 0);

    // A caller who saw MongoDB's current version edits it.
    let current = both(&app, &sale.id).await.0.unwrap();
    let latest = writer
        .update(None, &sale.id, current.version, source.next().unwrap())
        .await
        .expect("MongoDB's version wins");
    assert_eq!(latest.version, current.version + 1);
    assert_in_sync(&app, &sale.id, Some(&latest), "after the conflict").await;

    // A delete over a drifted copy re-inserts MongoDB's own document if the backup fails.
    drift_backup_copy(&app, &latest).await;
    faults.mysql_down_after_intent.store(true, Ordering::SeqCst);
    let failed = writer
        .delete(None, &sale.id, latest.version)
        .await
        .unwrap_err();
    assert_eq!(
        failed,
        AppError::NotSaved {
            repair_pending: false
        }
    );
    faults.clear();
    let (mongo, _) = both(&app, &sale.id).await;
    assert_eq!(mongo.map(|s| s.draft), Some(latest.draft.clone()));
    recover_after_expiry(&writer).await;
    assert_in_sync(&app, &sale.id, Some(&latest), "delete over drift").await;
    assert_eq!(unfinished(&app).await, 0);
}

/// An open intent is its sale's lease. One whose writer is gone (its lease ran out) is
/// rolled back by the next writer of the sale, before that writer's own edit.
#[tokio::test]
async fn an_abandoned_intent_is_rolled_back_before_the_next_edit() {
    let app = quiet_app().await;
    let (writer, faults) = flaky_writer(&app);
    let mut source = drafts(24);
    let sale = writer.create(None, source.next().unwrap()).await.unwrap();
    // The edit reaches MongoDB, then its backup write and its compensation both fail.
    faults.mysql_down_after_intent.store(true, Ordering::SeqCst);
    faults.primary_writes_left.store(1, Ordering::SeqCst);
    let failed = writer
        .update(None, &sale.id, 1, source.next().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        failed,
        AppError::NotSaved {
            repair_pending: true
        }
    );
    faults.clear();
    // While its lease lasts, nobody else may edit the sale.
    let busy = writer
        .update(None, &sale.id, 1, source.next().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(busy, AppError::Conflict(ref m) if m == app::server::sales::dual_write::BUSY),
        "{busy:?}"
    );
    tokio::time::sleep(writer.policy().ttl).await;
    // Then the next writer rolls it back first; the sale's content is what the editor
    // saw, at a new version, so the edit (of the version shown) is a conflict.
    let conflict = writer
        .update(None, &sale.id, 1, source.next().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, AppError::Conflict(ref m) if m == app::server::sales::dual_write::CONFLICT),
        "{conflict:?}"
    );
    assert_in_sync(&app, &sale.id, Some(&sale), "rolled back").await;
    assert_eq!(unfinished(&app).await, 0);
}

/// A batch import that died between its MongoDB insert and its backup write leaves
/// open create intents; running the import again rolls them back and writes the sales
/// anew, so every sale ends in both stores.
#[tokio::test]
async fn rerunning_a_crashed_import_converges() {
    let app = quiet_app().await;
    let writer = app::server::sales::dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let crashed: Vec<Sale> = drafts(25)
        .take(3)
        .map(|draft| Sale {
            id: codec::sale_id(&bson::oid::ObjectId::new()),
            version: 1,
            updated_at: chrono::Utc::now(),
            draft,
        })
        .collect();
    for sale in &crashed {
        sqlx::query(
            "INSERT INTO sale_intents (idempotency_key, op, sale_id, after_image, state, lease_owner, lease_until, created_at, updated_at) \
             VALUES (?, 'create', ?, ?, 'pending', 'dead-process:1', UTC_TIMESTAMP(6) - INTERVAL 1 SECOND, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind(format!("import-crashed-{}", sale.id))
        .bind(sale.id.as_str())
        .bind(serde_json::to_string(sale).unwrap())
        .execute(&app.mysql)
        .await
        .unwrap();
    }
    primary::insert_new(&app.mongo, &crashed).await.unwrap();

    let rerun: Vec<Sale> = crashed
        .iter()
        .map(|s| Sale {
            updated_at: chrono::Utc::now(),
            ..s.clone()
        })
        .collect();
    // The instance's own recovery pass at start-up may settle some of the crashed
    // intents first; those sales then count as already imported.
    let (imported, duplicates) = writer.import_batch(&rerun).await.unwrap();
    assert_eq!(imported + duplicates, 3);
    for sale in &crashed {
        assert_in_sync(&app, &sale.id, Some(sale), "after the rerun").await;
    }
    assert_eq!(unfinished(&app).await, 0);
}

#[tokio::test]
async fn stale_versions_are_rejected_and_nothing_changes() {
    let app = quiet_app().await;
    let writer = app::server::sales::dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let mut source = drafts(22);
    let sale = writer.create(None, source.next().unwrap()).await.unwrap();
    let updated = writer
        .update(None, &sale.id, 1, source.next().unwrap())
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    let stale = writer
        .update(None, &sale.id, 1, source.next().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, AppError::Conflict(m) if m.contains("changed by someone else")),
        "{stale:?}"
    );
    assert!(matches!(
        writer.delete(None, &sale.id, 1).await,
        Err(AppError::Conflict(_))
    ));
    assert_in_sync(&app, &sale.id, Some(&updated), "after stale edits").await;
    writer.delete(None, &sale.id, 2).await.unwrap();
    assert_in_sync(&app, &sale.id, None, "after delete").await;
    assert_eq!(
        writer
            .update(None, &sale.id, 2, source.next().unwrap())
            .await
            .unwrap_err(),
        AppError::NotFound
    );
}

#[tokio::test]
async fn a_retried_submission_is_applied_once() {
    let app = quiet_app().await;
    let writer = app::server::sales::dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let mut source = drafts(23);
    let key = IdempotencyKey::parse("form-3f2a9c1d").unwrap();
    let draft = source.next().unwrap();
    let first = writer.create(Some(&key), draft.clone()).await.unwrap();
    let again = writer.create(Some(&key), draft).await.unwrap();
    assert_eq!(first, again, "the retry returns the first result");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(count, 1);

    let key = IdempotencyKey::parse("form-77aa00bb").unwrap();
    let draft = source.next().unwrap();
    let v2 = writer
        .update(Some(&key), &first.id, 1, draft.clone())
        .await
        .unwrap();
    let retry = writer
        .update(Some(&key), &first.id, 1, draft)
        .await
        .unwrap();
    assert_eq!(
        (v2.version, retry.version),
        (2, 2),
        "applied once, not a conflict on retry"
    );
}

#[tokio::test]
async fn a_submission_that_changed_nothing_can_be_retried_with_its_token() {
    let app = quiet_app().await;
    let (writer, faults) = flaky_writer(&app);
    let mut source = drafts(25);

    // MongoDB refuses the create: nothing happened, so the same submission may retry.
    let key = IdempotencyKey::parse("form-c0ffee01").unwrap();
    let draft = source.next().unwrap();
    faults.primary_writes_left.store(0, Ordering::SeqCst);
    assert_eq!(
        writer.create(Some(&key), draft.clone()).await.unwrap_err(),
        AppError::Unavailable(Database::MongoDb)
    );
    faults.clear();
    let sale = writer
        .create(Some(&key), draft.clone())
        .await
        .expect("the retry saves");
    assert_in_sync(&app, &sale.id, Some(&sale), "created on retry").await;
    assert_eq!(
        writer.create(Some(&key), draft).await.unwrap(),
        sale,
        "once saved, the key replays the result"
    );

    // The backup fails and cannot even record the outcome: until recovery settles the
    // intent, a retry hears that the submission is still being saved; afterwards it goes
    // through, although undoing the first attempt gave the sale a new version.
    let key = IdempotencyKey::parse("form-c0ffee02").unwrap();
    let draft = source.next().unwrap();
    let submit = || writer.update(Some(&key), &sale.id, 1, draft.clone());
    faults.mysql_down_after_intent.store(true, Ordering::SeqCst);
    let not_saved = |repair_pending| AppError::NotSaved { repair_pending };
    assert_eq!(submit().await.unwrap_err(), not_saved(false));
    faults.clear();
    assert_eq!(
        submit().await.unwrap_err(),
        AppError::Conflict(STILL_SAVING.into()),
        "the outcome is not settled yet"
    );
    recover_after_expiry(&writer).await;
    let saved = submit().await.expect("the retry after recovery saves");
    assert_eq!(saved.draft, draft);
    assert!(
        saved.version > 2,
        "after the restored version: {}",
        saved.version
    );
    assert_in_sync(&app, &sale.id, Some(&saved), "updated on retry").await;

    // A stale version stays a conflict on retry, not a vague "not saved".
    let key = IdempotencyKey::parse("form-c0ffee03").unwrap();
    for attempt in ["first", "retry"] {
        assert_eq!(
            writer
                .update(Some(&key), &sale.id, 1, draft.clone())
                .await
                .unwrap_err(),
            AppError::Conflict(app::server::sales::dual_write::CONFLICT.into()),
            "{attempt}"
        );
    }
    let intents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sale_intents")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    assert_eq!(
        intents, 6,
        "every attempt that ran is journaled (2 creates, 2 updates, 2 conflicts); replays add none"
    );
}

#[tokio::test]
async fn concurrent_editors_never_lose_updates() {
    let app = quiet_app().await;
    let writer = app::server::sales::dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let mut source = drafts(24);
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(
            writer
                .create(None, source.next().unwrap())
                .await
                .unwrap()
                .id,
        );
    }
    let ids = Arc::new(ids);
    let mut tasks = Vec::new();
    for t in 0..20u64 {
        let (writer, ids) = (writer.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(t);
            let mut drafts = generate::sales(100 + t);
            let mut wins = Vec::new();
            for _ in 0..6 {
                let id = ids[rng.gen_range(0..ids.len())].clone();
                let seen = writer.primary().get(&id).await.unwrap().unwrap().version;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
                match writer.update(None, &id, seen, drafts.next().unwrap()).await {
                    Ok(sale) => wins.push((id, sale.version)),
                    Err(AppError::Conflict(_)) => {}
                    Err(e) => panic!("unexpected error {e:?}"),
                }
            }
            wins
        }));
    }
    let mut wins: Vec<(SaleId, u64)> = Vec::new();
    for t in tasks {
        wins.extend(t.await.unwrap());
    }
    for id in ids.iter() {
        let mut versions: Vec<u64> = wins
            .iter()
            .filter(|(w, _)| w == id)
            .map(|(_, v)| *v)
            .collect();
        versions.sort();
        let expected: Vec<u64> = (2..2 + versions.len() as u64).collect();
        assert_eq!(
            versions, expected,
            "every successful update produced the next version, none lost"
        );
        let (mongo, mysql) = both(&app, id).await;
        let mongo = mongo.unwrap();
        assert_eq!(mongo.version, 1 + versions.len() as u64);
        assert_eq!(
            mysql.map(|s| (s.version, s.draft)),
            Some((mongo.version, mongo.draft)),
            "MySQL equals MongoDB"
        );
    }
    assert!(
        wins.len() >= 10,
        "the editors made progress: {} updates",
        wins.len()
    );
}
