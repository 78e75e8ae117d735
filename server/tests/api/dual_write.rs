//! The dual-write protocol under injected faults, on the real MariaDB and FerretDB.

use crate::helpers::{TestApp, spawn_app};
use app::model::{AppError, Sale, SaleDraft, SaleId, Store};
use app::server::sales::dual_write::{
    Backup, Begun, DualWriter, IdempotencyKey, Intent, MongoPrimary, MySqlBackup, Primary,
};
use app::server::sales::{backup, codec, generate, primary};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

#[derive(Clone, Default)]
struct Faults {
    mongo_down: Arc<AtomicBool>,
    mysql_down_before_intent: Arc<AtomicBool>,
    /// The backup commit fails (and so does recording the intent's state).
    mysql_down_after_intent: Arc<AtomicBool>,
    /// Primary writes allowed before they start failing (-1: unlimited).
    primary_writes_left: Arc<AtomicI64>,
    /// The backup commit never returns: with a timeout, the process "dies" there.
    hang_after_mongo: Arc<AtomicBool>,
    /// MongoDB applies the write, then the reply is lost.
    mongo_reply_lost: Arc<AtomicBool>,
    /// MySQL commits the backup write, then the reply is lost.
    mysql_reply_lost: Arc<AtomicBool>,
}

impl Faults {
    fn new() -> Self {
        let f = Faults::default();
        f.primary_writes_left.store(-1, Ordering::SeqCst);
        f
    }
    fn clear(&self) {
        for flag in [
            &self.mongo_down,
            &self.mysql_down_before_intent,
            &self.mysql_down_after_intent,
            &self.hang_after_mongo,
            &self.mongo_reply_lost,
            &self.mysql_reply_lost,
        ] {
            flag.store(false, Ordering::SeqCst);
        }
        self.primary_writes_left.store(-1, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct FlakyPrimary {
    inner: MongoPrimary,
    faults: Faults,
}

impl FlakyPrimary {
    fn check_write(&self) -> Result<(), AppError> {
        if self.faults.mongo_down.load(Ordering::SeqCst) {
            return Err(AppError::Unavailable(Store::MongoDb));
        }
        let left = self.faults.primary_writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(AppError::Unavailable(Store::MongoDb));
        }
        if left > 0 {
            self.faults
                .primary_writes_left
                .fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn reply<T>(&self, outcome: Result<T, AppError>) -> Result<T, AppError> {
        if self.faults.mongo_reply_lost.load(Ordering::SeqCst) {
            outcome?;
            return Err(AppError::Unavailable(Store::MongoDb));
        }
        outcome
    }
}

impl Primary for FlakyPrimary {
    async fn get(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        if self.faults.mongo_down.load(Ordering::SeqCst) {
            return Err(AppError::Unavailable(Store::MongoDb));
        }
        self.inner.get(id).await
    }
    async fn insert(&self, sale: &Sale) -> Result<(), AppError> {
        self.check_write()?;
        self.reply(self.inner.insert(sale).await)
    }
    async fn swap(&self, sale: &Sale, expected: u64) -> Result<Option<Sale>, AppError> {
        self.check_write()?;
        self.reply(self.inner.swap(sale, expected).await)
    }
    async fn take(&self, id: &SaleId, expected: u64) -> Result<Option<Sale>, AppError> {
        self.check_write()?;
        self.reply(self.inner.take(id, expected).await)
    }
}

#[derive(Clone)]
struct FlakyBackup {
    inner: MySqlBackup,
    faults: Faults,
}

fn mysql_down() -> AppError {
    AppError::Unavailable(Store::MySql)
}

impl Backup for FlakyBackup {
    async fn copy(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        if self.faults.mysql_down_before_intent.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        self.inner.copy(id).await
    }
    async fn superseded(&self, intent: &Intent) -> Result<bool, AppError> {
        self.inner.superseded(intent).await
    }
    async fn rebase(&self, intent: u64, before: &Sale) -> Result<(), AppError> {
        if self.faults.mysql_down_after_intent.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        self.inner.rebase(intent, before).await
    }
    async fn begin(
        &self,
        key: Option<&IdempotencyKey>,
        op: app::server::sales::dual_write::Op,
        id: &SaleId,
        before: Option<&Sale>,
        after: Option<&Sale>,
    ) -> Result<Begun, AppError> {
        if self.faults.mysql_down_before_intent.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        self.inner.begin(key, op, id, before, after).await
    }
    async fn commit(&self, intent: u64, id: &SaleId, after: Option<&Sale>) -> Result<(), AppError> {
        if self.faults.hang_after_mongo.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.faults.mysql_down_after_intent.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        self.inner.commit(intent, id, after).await?;
        if self.faults.mysql_reply_lost.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        Ok(())
    }
    async fn set_state(
        &self,
        intent: u64,
        state: &'static str,
        error: &str,
    ) -> Result<(), AppError> {
        if self.faults.mysql_down_after_intent.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        self.inner.set_state(intent, state, error).await
    }
    async fn unfinished(&self, older_than: Duration, limit: u32) -> Result<Vec<Intent>, AppError> {
        self.inner.unfinished(older_than, limit).await
    }
    async fn load(&self, intent: u64) -> Result<Option<Intent>, AppError> {
        self.inner.load(intent).await
    }
    async fn resolve(
        &self,
        intent: u64,
        id: &SaleId,
        truth: Option<&Sale>,
    ) -> Result<(), AppError> {
        self.inner.resolve(intent, id, truth).await
    }
    async fn defer(
        &self,
        intent: u64,
        attempts: u32,
        wait: Duration,
        error: &str,
    ) -> Result<(), AppError> {
        self.inner.defer(intent, attempts, wait, error).await
    }
}

type Flaky = DualWriter<FlakyPrimary, FlakyBackup>;

fn flaky_writer(app: &TestApp) -> (Flaky, Faults) {
    let faults = Faults::new();
    let writer = DualWriter::new(
        FlakyPrimary {
            inner: MongoPrimary {
                db: app.mongo.clone(),
            },
            faults: faults.clone(),
        },
        FlakyBackup {
            inner: MySqlBackup::new(app.mysql.clone()),
            faults: faults.clone(),
        },
    );
    (writer, faults)
}

fn drafts(seed: u64) -> impl Iterator<Item = SaleDraft> {
    generate::sales(seed)
}

/// The sale as each store holds it now.
async fn both(app: &TestApp, id: &SaleId) -> (Option<Sale>, Option<Sale>) {
    let mongo = MongoPrimary {
        db: app.mongo.clone(),
    }
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

async fn assert_in_sync(app: &TestApp, id: &SaleId, expected: Option<&Sale>, case: &str) {
    let (mongo, mysql) = both(app, id).await;
    let strip = |s: Option<Sale>| s.map(|s| (s.version, s.draft));
    assert_eq!(
        strip(mongo.clone()),
        strip(mysql),
        "{case}: MySQL differs from MongoDB"
    );
    assert_eq!(
        strip(mongo),
        strip(expected.cloned()),
        "{case}: unexpected state"
    );
}

async fn unfinished(app: &TestApp) -> i64 {
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
    let app = spawn_app().await;
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
            let outcome = tokio::time::timeout(Duration::from_secs(5), edit).await;
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
                    assert_eq!(e, AppError::Unavailable(Store::MongoDb), "{case}")
                }
                (Point::MySqlDownBeforeIntent, Ok(Err(e))) => {
                    assert_eq!(e, AppError::Unavailable(Store::MySql), "{case}")
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
                let report = writer.recover(Duration::ZERO).await.expect("recovery runs");
                assert_eq!(report.resolved, 1, "{case}");
                assert_eq!(
                    writer.recover(Duration::ZERO).await.unwrap().resolved,
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

/// Updates and deletes take their before-image from the backup's copy; MongoDB's
/// reply to the write must catch every way that copy can be wrong.
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

#[tokio::test]
async fn a_drifted_backup_copy_never_becomes_the_before_image() {
    let app = spawn_app().await;
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
    assert_eq!(writer.recover(Duration::ZERO).await.unwrap().resolved, 1);
    assert_in_sync(&app, &sale.id, Some(&updated), "content drift, crash").await;

    // MongoDB moved on (version 3) while the backup still says 2: an edit of version 2
    // is a conflict, and MongoDB keeps its document (FerretDB's write, which matches
    // `_id` alone, is undone).
    let newer = Sale {
        version: 3,
        draft: source.next().unwrap(),
        ..updated.clone()
    };
    put_in_mongo(&app, &newer).await;
    let stale = writer
        .update(None, &sale.id, 2, source.next().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(stale, AppError::Conflict(_)), "{stale:?}");
    assert!(matches!(
        writer.delete(None, &sale.id, 2).await,
        Err(AppError::Conflict(_))
    ));
    let (mongo, mysql) = both(&app, &sale.id).await;
    assert_eq!(mongo.as_ref().map(strip), Some(strip(&newer)));
    assert_eq!(
        mysql.as_ref().map(strip),
        Some(strip(&updated)),
        "sync's job"
    );
    assert_eq!(unfinished(&app).await, 0);

    // A caller who saw MongoDB's version 3 (the backup lagging at 2) edits it.
    let latest = writer
        .update(None, &sale.id, 3, source.next().unwrap())
        .await
        .expect("MongoDB's version wins");
    assert_eq!(latest.version, 4);
    assert_in_sync(&app, &sale.id, Some(&latest), "lagging backup").await;

    // A delete over a drifted copy re-inserts MongoDB's own document if the backup fails.
    drift_backup_copy(&app, &latest).await;
    faults.mysql_down_after_intent.store(true, Ordering::SeqCst);
    let failed = writer.delete(None, &sale.id, 4).await.unwrap_err();
    assert_eq!(
        failed,
        AppError::NotSaved {
            repair_pending: false
        }
    );
    faults.clear();
    let (mongo, _) = both(&app, &sale.id).await;
    assert_eq!(mongo.as_ref().map(strip), Some(strip(&latest)));
    writer.recover(Duration::ZERO).await.unwrap();
    assert_eq!(unfinished(&app).await, 0);
}

/// An unfinished intent means the backup's row may not match MongoDB: the writer must
/// not use it as a before-image.
#[tokio::test]
async fn the_backup_copy_is_not_used_while_an_intent_is_unfinished() {
    let app = spawn_app().await;
    let writer = app::server::sales::dual_write::writer(app.mysql.clone(), app.mongo.clone());
    let sale = writer
        .create(None, drafts(24).next().unwrap())
        .await
        .unwrap();
    let backup = MySqlBackup::new(app.mysql.clone());
    assert_eq!(
        backup.copy(&sale.id).await.unwrap().map(|s| s.version),
        Some(1)
    );
    sqlx::query("UPDATE sale_intents SET state = 'needs_repair' WHERE sale_id = ?")
        .bind(sale.id.as_str())
        .execute(&app.mysql)
        .await
        .unwrap();
    assert!(backup.copy(&sale.id).await.unwrap().is_none());
}

/// An import that died between its MongoDB insert and its backup write leaves pending
/// create intents. A rerun of the same file before recovery finds those sales "already
/// present" and backs them up; recovery must then keep them rather than roll back.
#[tokio::test]
async fn recovery_keeps_created_sales_that_a_later_edit_found_in_place() {
    let app = spawn_app().await;
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
            "INSERT INTO sale_intents (idempotency_key, op, sale_id, after_image, state, created_at, updated_at) \
             VALUES (?, 'create', ?, ?, 'pending', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind(format!("import-crashed-{}", sale.id))
        .bind(sale.id.as_str())
        .bind(serde_json::to_string(sale).unwrap())
        .execute(&app.mysql)
        .await
        .unwrap();
    }
    primary::insert_new(&app.mongo, &crashed).await.unwrap();

    // (The app's own recovery worker leaves intents younger than 30 s alone, so the
    // rerun comes first, as it would within that grace period.)
    let rerun: Vec<Sale> = crashed
        .iter()
        .map(|s| Sale {
            updated_at: chrono::Utc::now(),
            ..s.clone()
        })
        .collect();
    assert_eq!(writer.import_batch(&rerun).await.unwrap(), (0, 3));
    assert_eq!(writer.recover(Duration::ZERO).await.unwrap().resolved, 3);
    for sale in &crashed {
        assert_in_sync(&app, &sale.id, Some(sale), "kept after recovery").await;
    }
    assert_eq!(unfinished(&app).await, 0);
}

#[tokio::test]
async fn stale_versions_are_rejected_and_nothing_changes() {
    let app = spawn_app().await;
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
    let app = spawn_app().await;
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
    let app = spawn_app().await;
    let (writer, faults) = flaky_writer(&app);
    let mut source = drafts(25);

    // MongoDB refuses the create: nothing happened, so the same submission may retry.
    let key = IdempotencyKey::parse("form-c0ffee01").unwrap();
    let draft = source.next().unwrap();
    faults.primary_writes_left.store(0, Ordering::SeqCst);
    assert_eq!(
        writer.create(Some(&key), draft.clone()).await.unwrap_err(),
        AppError::Unavailable(Store::MongoDb)
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
    // intent, a retry is told the repair is pending; afterwards it goes through.
    let key = IdempotencyKey::parse("form-c0ffee02").unwrap();
    let draft = source.next().unwrap();
    let submit = || writer.update(Some(&key), &sale.id, 1, draft.clone());
    faults.mysql_down_after_intent.store(true, Ordering::SeqCst);
    let not_saved = |repair_pending| AppError::NotSaved { repair_pending };
    assert_eq!(submit().await.unwrap_err(), not_saved(false));
    faults.clear();
    assert_eq!(
        submit().await.unwrap_err(),
        not_saved(true),
        "the outcome is not settled yet"
    );
    writer.recover(Duration::ZERO).await.unwrap();
    let v2 = submit().await.expect("the retry after recovery saves");
    assert_eq!(v2.version, 2);
    assert_in_sync(&app, &sale.id, Some(&v2), "updated on retry").await;

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
    let app = spawn_app().await;
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
