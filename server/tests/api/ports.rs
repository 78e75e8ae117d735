//! Wrappers around the dual writer's store ports: injected faults, and gates that pause
//! a writer at a named step so a test can force an interleaving. Also an in-memory
//! primary with real MongoDB's semantics (atomic version-conditioned writes), since no
//! MongoDB server runs here.

use crate::helpers::TestApp;
use app::model::{AppError, Database, Sale, SaleId};
use app::server::sales::dual_write::{
    Author, Backup, Begun, Claim, DualWriter, Held, Holder, Intent, IntentState, Lease,
    LeasePolicy, MongoPrimary, MySqlBackup, NewIntent, Primary,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Faults {
    pub mongo_down: Arc<AtomicBool>,
    pub mysql_down_before_intent: Arc<AtomicBool>,
    /// The backup commit fails (and so does every later MySQL write of the edit).
    pub mysql_down_after_intent: Arc<AtomicBool>,
    /// Primary writes allowed before they start failing (-1: unlimited).
    pub primary_writes_left: Arc<AtomicI64>,
    /// The backup commit never returns: with a timeout, the process "dies" there.
    pub hang_after_mongo: Arc<AtomicBool>,
    /// MongoDB applies the write, then the reply is lost.
    pub mongo_reply_lost: Arc<AtomicBool>,
    /// MySQL commits the backup write, then the reply is lost.
    pub mysql_reply_lost: Arc<AtomicBool>,
    /// Backup commits that fail before they start failing no more (-1: none fail).
    pub commits_failing: Arc<AtomicI64>,
    /// A replacing write goes on by itself once sent, even if the writer stops waiting
    /// for it: a request that arrives late, after its writer gave up on it.
    pub detached_writes: Arc<AtomicBool>,
}

impl Faults {
    pub fn new() -> Self {
        let f = Faults::default();
        f.clear();
        f
    }

    pub fn clear(&self) {
        for flag in [
            &self.mongo_down,
            &self.mysql_down_before_intent,
            &self.mysql_down_after_intent,
            &self.hang_after_mongo,
            &self.mongo_reply_lost,
            &self.mysql_reply_lost,
            &self.detached_writes,
        ] {
            flag.store(false, Ordering::SeqCst);
        }
        self.primary_writes_left.store(-1, Ordering::SeqCst);
        self.commits_failing.store(-1, Ordering::SeqCst);
    }
}

/// One pause point: the next call that passes it signals `reached` and waits for
/// `release`.
#[derive(Default)]
pub struct Gate {
    reached: Notify,
    released: Notify,
    done: Notify,
}

impl Gate {
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Waits up to `within` for a writer to arrive; false if none did.
    pub async fn reached_within(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.reached()).await.is_ok()
    }

    pub fn release(&self) {
        self.released.notify_one();
    }

    /// Waits until a detached write released here has been applied (or refused).
    pub async fn finished(&self) {
        self.done.notified().await;
    }
}

/// Named pause points, armed by a test, shared by a writer's two wrappers.
#[derive(Clone, Default)]
pub struct Gates(Arc<Mutex<HashMap<&'static str, Arc<Gate>>>>);

impl Gates {
    /// The next call through `point` pauses there.
    pub fn arm(&self, point: &'static str) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        self.0.lock().unwrap().insert(point, gate.clone());
        gate
    }

    fn take(&self, point: &'static str) -> Option<Arc<Gate>> {
        self.0.lock().unwrap().remove(point)
    }

    async fn pass(&self, point: &'static str) {
        if let Some(gate) = self.take(point) {
            gate.reached.notify_one();
            gate.released.notified().await;
        }
    }
}

/// A primary with faults and gates in front.
#[derive(Clone)]
pub struct TestPrimary<P> {
    pub inner: P,
    pub faults: Faults,
    pub gates: Gates,
}

impl<P> TestPrimary<P> {
    fn check_write(&self) -> Result<(), AppError> {
        if self.faults.mongo_down.load(Ordering::SeqCst) {
            return Err(AppError::Unavailable(Database::MongoDb));
        }
        let left = self.faults.primary_writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(AppError::Unavailable(Database::MongoDb));
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
            return Err(AppError::Unavailable(Database::MongoDb));
        }
        outcome
    }

    fn check_read(&self) -> Result<(), AppError> {
        if self.faults.mongo_down.load(Ordering::SeqCst) {
            return Err(AppError::Unavailable(Database::MongoDb));
        }
        Ok(())
    }
}

impl<P: Primary + Clone> Primary for TestPrimary<P> {
    async fn get(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        self.gates.pass("primary.get").await;
        self.check_read()?;
        self.inner.get(id).await
    }
    async fn insert(&self, sale: &Sale) -> Result<(), AppError> {
        self.gates.pass("primary.insert").await;
        self.check_write()?;
        let outcome = self.inner.insert(sale).await;
        self.gates.pass("primary.insert:after").await;
        self.reply(outcome)
    }
    async fn swap(&self, sale: &Sale, expected: u64) -> Result<Option<Sale>, AppError> {
        if self.faults.detached_writes.load(Ordering::SeqCst) {
            let (gate, inner, sale) = (
                self.gates.take("primary.swap"),
                self.inner.clone(),
                sale.clone(),
            );
            let write = tokio::spawn(async move {
                if let Some(gate) = &gate {
                    gate.reached.notify_one();
                    gate.released.notified().await;
                }
                let outcome = inner.swap(&sale, expected).await;
                if let Some(gate) = &gate {
                    gate.done.notify_one();
                }
                outcome
            });
            return write.await.unwrap_or(Err(AppError::Internal));
        }
        self.gates.pass("primary.swap").await;
        self.check_write()?;
        let outcome = self.inner.swap(sale, expected).await;
        self.gates.pass("primary.swap:after").await;
        self.reply(outcome)
    }
    async fn take(&self, id: &SaleId, expected: u64) -> Result<Option<Sale>, AppError> {
        self.gates.pass("primary.take").await;
        self.check_write()?;
        let outcome = self.inner.take(id, expected).await;
        self.reply(outcome)
    }
    async fn fences(&self) -> Result<bool, AppError> {
        self.inner.fences().await
    }
    async fn fence(&self, id: &SaleId, expected: u64, to: u64) -> Result<Option<Sale>, AppError> {
        self.gates.pass("primary.fence").await;
        self.check_write()?;
        self.inner.fence(id, expected, to).await
    }
    async fn insert_new(&self, sales: &[Sale]) -> Result<HashSet<SaleId>, AppError> {
        self.gates.pass("primary.insert_new").await;
        self.check_write()?;
        let outcome = self.inner.insert_new(sales).await;
        self.reply(outcome)
    }
    async fn find(&self, ids: &[SaleId]) -> Result<Vec<Sale>, AppError> {
        self.check_read()?;
        self.inner.find(ids).await
    }
    async fn remove_created(&self, ids: &[SaleId]) -> Result<u64, AppError> {
        self.check_write()?;
        self.inner.remove_created(ids).await
    }
}

/// The backup with faults and gates in front.
#[derive(Clone)]
pub struct TestBackup<B> {
    pub inner: B,
    pub faults: Faults,
    pub gates: Gates,
}

/// What the real backup answers when MySQL is down: the reporting database's outage.
fn mysql_down() -> AppError {
    AppError::Unavailable(Database::Reporting)
}

impl<B> TestBackup<B> {
    fn after_intent(&self) -> Result<(), AppError> {
        if self.faults.mysql_down_after_intent.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        Ok(())
    }

    fn before_intent(&self) -> Result<(), AppError> {
        if self.faults.mysql_down_before_intent.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        Ok(())
    }
}

impl<B: Backup> Backup for TestBackup<B> {
    async fn begin(&self, new: &NewIntent<'_>, lease: &Lease) -> Result<Begun, AppError> {
        self.before_intent()?;
        let begun = self.inner.begin(new, lease).await;
        self.gates.pass("backup.begin:after").await;
        begun
    }
    async fn copy(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        self.before_intent()?;
        self.inner.copy(id).await
    }
    async fn record_images(
        &self,
        claim: &Claim,
        before: &Sale,
        after: Option<&Sale>,
    ) -> Result<Held, AppError> {
        self.before_intent()?;
        self.inner.record_images(claim, before, after).await
    }
    async fn renew(&self, claim: &Claim) -> Result<Held, AppError> {
        self.inner.renew(claim).await
    }
    async fn commit(
        &self,
        claim: &Claim,
        id: &SaleId,
        after: Option<&Sale>,
    ) -> Result<Held, AppError> {
        self.gates.pass("backup.commit").await;
        if self.faults.hang_after_mongo.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.after_intent()?;
        let failing = self.faults.commits_failing.load(Ordering::SeqCst);
        if failing > 0 {
            self.faults.commits_failing.fetch_sub(1, Ordering::SeqCst);
            return Err(AppError::Internal);
        }
        let held = self.inner.commit(claim, id, after).await?;
        if self.faults.mysql_reply_lost.load(Ordering::SeqCst) {
            return Err(mysql_down());
        }
        Ok(held)
    }
    async fn settle(
        &self,
        claim: &Claim,
        id: &SaleId,
        truth: Option<&Sale>,
        note: &str,
    ) -> Result<Held, AppError> {
        self.gates.pass("backup.settle").await;
        self.after_intent()?;
        self.inner.settle(claim, id, truth, note).await
    }
    async fn close(&self, claim: &Claim, state: IntentState, note: &str) -> Result<Held, AppError> {
        self.after_intent()?;
        self.inner.close(claim, state, note).await
    }
    async fn holder(&self, intent: u64) -> Result<Option<Holder>, AppError> {
        self.inner.holder(intent).await
    }
    async fn release_key(&self, intent: u64) -> Result<(), AppError> {
        self.inner.release_key(intent).await
    }
    async fn take_over(&self, intent: u64, lease: &Lease) -> Result<Option<Intent>, AppError> {
        self.inner.take_over(intent, lease).await
    }
    async fn claim_due(&self, lease: &Lease) -> Result<Option<Intent>, AppError> {
        let claimed = self.inner.claim_due(lease).await;
        if matches!(claimed, Ok(Some(_))) {
            self.gates.pass("backup.claim_due:after").await;
        }
        claimed
    }
    async fn open_on(&self, ids: &[SaleId]) -> Result<Vec<Intent>, AppError> {
        self.inner.open_on(ids).await
    }
    async fn defer(&self, claim: &Claim, wait: Duration, error: &str) -> Result<Held, AppError> {
        self.inner.defer(claim, wait, error).await
    }
    async fn begin_batch(
        &self,
        sales: &[Sale],
        lease: &Lease,
        author: Author,
    ) -> Result<Vec<SaleId>, AppError> {
        self.before_intent()?;
        self.inner.begin_batch(sales, lease, author).await
    }
    async fn renew_batch(&self, lease: &Lease, claimed: usize) -> Result<Held, AppError> {
        self.inner.renew_batch(lease, claimed).await
    }
    async fn present(&self, ids: &[SaleId]) -> Result<Vec<SaleId>, AppError> {
        self.after_intent()?;
        self.inner.present(ids).await
    }
    async fn commit_batch(
        &self,
        lease: &Lease,
        claimed: usize,
        rows: &[Sale],
        skipped: &[SaleId],
    ) -> Result<Held, AppError> {
        self.gates.pass("backup.commit_batch").await;
        self.after_intent()?;
        self.inner.commit_batch(lease, claimed, rows, skipped).await
    }
    async fn close_batch(
        &self,
        lease: &Lease,
        state: IntentState,
        note: &str,
    ) -> Result<u64, AppError> {
        self.after_intent()?;
        self.inner.close_batch(lease, state, note).await
    }
}

/// The writer of a test instance on the test's FerretDB.
pub type Writer = DualWriter<TestPrimary<MongoPrimary>, TestBackup<MySqlBackup>>;

/// A writer over the test's stores, as a separate instance would have it, with faults
/// and gates of its own.
pub struct Instance<P> {
    pub writer: DualWriter<TestPrimary<P>, TestBackup<MySqlBackup>>,
    pub faults: Faults,
    pub gates: Gates,
}

/// Short leases, so tests can let one run out: writes get 700 ms, a lease lasts 2 s.
pub fn test_policy() -> LeasePolicy {
    LeasePolicy::new(Duration::from_secs(2), Duration::from_millis(700)).expect("valid policy")
}

pub fn instance_with<P: Primary + Clone>(
    app: &TestApp,
    primary: P,
    policy: LeasePolicy,
) -> Instance<P> {
    instance_on(app.mysql.clone(), primary, policy)
}

/// An instance on a MySQL pool of its own (one opened on another runtime).
pub fn instance_on<P: Primary + Clone>(
    mysql: sqlx::MySqlPool,
    primary: P,
    policy: LeasePolicy,
) -> Instance<P> {
    let faults = Faults::new();
    let gates = Gates::default();
    let writer = DualWriter::new(
        TestPrimary {
            inner: primary,
            faults: faults.clone(),
            gates: gates.clone(),
        },
        TestBackup {
            inner: MySqlBackup::new(mysql),
            faults: faults.clone(),
            gates: gates.clone(),
        },
        policy,
    );
    Instance {
        writer,
        faults,
        gates,
    }
}

/// An instance writing to the test's FerretDB.
pub fn instance(app: &TestApp) -> Instance<MongoPrimary> {
    let policy = test_policy();
    instance_with(
        app,
        MongoPrimary::new(app.mongo.clone(), policy.write_budget),
        policy,
    )
}

/// A primary in memory, shared by clones (one "server"). `atomic()` has MongoDB's
/// guarantees: a write conditioned on a version is atomic, so versions fence stale
/// writers. `by_id()` behaves as the portal drives FerretDB 1.x: writes find the
/// document by `_id` alone, and only the lease guards them.
#[derive(Clone)]
pub struct MemoryPrimary {
    docs: Arc<Mutex<HashMap<SaleId, Sale>>>,
    atomic: bool,
}

impl MemoryPrimary {
    pub fn atomic() -> Self {
        Self {
            docs: Arc::default(),
            atomic: true,
        }
    }

    pub fn by_id() -> Self {
        Self {
            docs: Arc::default(),
            atomic: false,
        }
    }

    fn at(&self, doc: &Sale, expected: u64) -> bool {
        !self.atomic || doc.version == expected
    }
}

impl Primary for MemoryPrimary {
    async fn get(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        Ok(self.docs.lock().unwrap().get(id).cloned())
    }
    async fn insert(&self, sale: &Sale) -> Result<(), AppError> {
        let mut docs = self.docs.lock().unwrap();
        match docs.get(&sale.id) {
            None => {
                docs.insert(sale.id.clone(), sale.clone());
                Ok(())
            }
            Some(d) if d.version == sale.version && d.draft == sale.draft => Ok(()),
            Some(_) => Err(AppError::Conflict(
                "A sale with this id already exists.".into(),
            )),
        }
    }
    async fn swap(&self, sale: &Sale, expected: u64) -> Result<Option<Sale>, AppError> {
        let mut docs = self.docs.lock().unwrap();
        match docs.get(&sale.id) {
            Some(d) if self.at(d, expected) => Ok(docs.insert(sale.id.clone(), sale.clone())),
            _ => Ok(None),
        }
    }
    async fn take(&self, id: &SaleId, expected: u64) -> Result<Option<Sale>, AppError> {
        let mut docs = self.docs.lock().unwrap();
        match docs.get(id) {
            Some(d) if self.at(d, expected) => Ok(docs.remove(id)),
            _ => Ok(None),
        }
    }
    async fn fences(&self) -> Result<bool, AppError> {
        Ok(self.atomic)
    }
    async fn fence(&self, id: &SaleId, expected: u64, to: u64) -> Result<Option<Sale>, AppError> {
        assert!(self.atomic, "fence is only asked of a primary that fences");
        let mut docs = self.docs.lock().unwrap();
        match docs.get_mut(id) {
            Some(d) if d.version == expected => {
                d.version = to;
                Ok(Some(d.clone()))
            }
            _ => Ok(None),
        }
    }
    async fn insert_new(&self, sales: &[Sale]) -> Result<HashSet<SaleId>, AppError> {
        let mut docs = self.docs.lock().unwrap();
        let mut skipped = HashSet::new();
        for s in sales {
            if docs.contains_key(&s.id) {
                skipped.insert(s.id.clone());
            } else {
                docs.insert(s.id.clone(), s.clone());
            }
        }
        Ok(skipped)
    }
    async fn find(&self, ids: &[SaleId]) -> Result<Vec<Sale>, AppError> {
        let docs = self.docs.lock().unwrap();
        Ok(ids.iter().filter_map(|id| docs.get(id).cloned()).collect())
    }
    async fn remove_created(&self, ids: &[SaleId]) -> Result<u64, AppError> {
        let mut docs = self.docs.lock().unwrap();
        let mut n = 0;
        for id in ids {
            if docs.get(id).is_some_and(|d| d.version == 1) {
                docs.remove(id);
                n += 1;
            }
        }
        Ok(n)
    }
}
