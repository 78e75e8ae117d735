//! MySQL as the journal and the backup: `sale_intents`, whose open rows are the sales'
//! leases, and the backup tables (through `backup`).
//!
//! Every statement that changes an intent names its lease holder and its state
//! (`… WHERE id = ? AND lease_owner = ? AND state = 'pending'`), and every backup write
//! runs in a transaction that first locks the intent row and checks the same: a writer
//! whose lease was taken over changes nothing in MySQL. Expiry is always compared on
//! the database's clock (`UTC_TIMESTAMP(6)`), never the app's.
//!
//! Statements on one intent name the primary key (`FORCE INDEX (PRIMARY)`): given the
//! extra conditions, the optimizer may otherwise walk a secondary index and lock other
//! intents' entries on the way, deadlocking with their writers.

use super::lease::{Claim, Lease};
use super::ports::{Author, Backup, Begun, Held, Holder, Intent, IntentState, NewIntent, Op};
use crate::model::{AppError, Sale, SaleId};
use crate::server::db::{
    Context, is_deadlock, is_unique_violation, retry_contended, retry_deadlocks,
};
use crate::server::sales::backup;
use crate::server::sales::changes::Changes;
use sqlx::{MySql, MySqlConnection, QueryBuilder};
use std::time::Duration;

/// The statements that read or close the intents of one lease (an import batch's, a
/// sync repair's). Each goes through `ix_sale_intents_holder (lease_owner, state)`, so it
/// touches, and locks, only its own lease's entries: batches in flight together never
/// wait on each other's rows. A test EXPLAINs every one (`server/tests/api/`).
pub mod by_holder {
    pub const CLAIMED: &str = "SELECT sale_id FROM sale_intents FORCE INDEX (ix_sale_intents_holder) \
         WHERE lease_owner = ? AND state = 'pending'";
    pub const RENEW: &str = "UPDATE sale_intents FORCE INDEX (ix_sale_intents_holder) \
         SET lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
         WHERE lease_owner = ? AND state = 'pending'";
    pub const LOCK: &str = "SELECT id FROM sale_intents FORCE INDEX (ix_sale_intents_holder) \
         WHERE lease_owner = ? AND state = 'pending' FOR UPDATE";
    /// Followed by the holder, then `AND state = 'pending' AND sale_id IN (…)`.
    pub const PRESENT: &str = "UPDATE sale_intents FORCE INDEX (ix_sale_intents_holder) \
         SET state = 'failed', error = 'already present', updated_at = UTC_TIMESTAMP(6) \
         WHERE lease_owner = ";
    pub const DONE: &str = "UPDATE sale_intents FORCE INDEX (ix_sale_intents_holder) \
         SET state = 'done', updated_at = UTC_TIMESTAMP(6) \
         WHERE lease_owner = ? AND state = 'pending'";
    pub const CLOSE: &str = "UPDATE sale_intents FORCE INDEX (ix_sale_intents_holder) \
         SET state = ?, error = ?, updated_at = UTC_TIMESTAMP(6) \
         WHERE lease_owner = ? AND state = 'pending'";
    /// A sync repair's claims: every intent it holds, whatever the state.
    pub const HELD: &str = "SELECT sale_id FROM sale_intents FORCE INDEX (ix_sale_intents_holder) \
         WHERE lease_owner = ?";
    /// MySQL and MariaDB take no index hint on a single-table DELETE; the holder index
    /// is the only one that answers its condition.
    pub const RELEASE: &str = "DELETE FROM sale_intents WHERE lease_owner = ?";
}

/// MySQL as the journal and backup.
#[derive(Clone)]
pub struct MySqlBackup {
    pub pool: sqlx::MySqlPool,
}

impl MySqlBackup {
    pub fn new(pool: sqlx::MySqlPool) -> Self {
        Self { pool }
    }
}

fn image(sale: Option<&Sale>) -> Option<String> {
    sale.map(|s| serde_json::to_string(s).expect("a sale serializes"))
}

fn parse_image(text: Option<String>) -> Result<Option<Sale>, AppError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            tracing::error!(error = %e, "unreadable intent image");
            AppError::Internal
        })
    })
    .transpose()
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

#[derive(sqlx::FromRow)]
struct IntentRow {
    id: u64,
    op: Op,
    sale_id: String,
    before_image: Option<String>,
    after_image: Option<String>,
    state: IntentState,
    attempts: u32,
    expired: bool,
}

impl TryFrom<IntentRow> for Intent {
    type Error = AppError;

    fn try_from(row: IntentRow) -> Result<Self, AppError> {
        Ok(Intent {
            id: row.id,
            op: row.op,
            sale_id: SaleId::parse(&row.sale_id).map_err(|_| AppError::Internal)?,
            before: parse_image(row.before_image)?,
            after: parse_image(row.after_image)?,
            state: row.state,
            attempts: row.attempts,
            expired: row.expired,
        })
    }
}

const INTENT_COLUMNS: &str = "id, op, sale_id, before_image, after_image, state, attempts, \
     (lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6)) AS expired";

const OPEN: &str = "state IN ('pending', 'needs_repair')";

/// The intent whose `column` equals `value`.
async fn load_where(
    conn: &mut MySqlConnection,
    column: &'static str,
    value: &str,
) -> Result<Option<Intent>, AppError> {
    let sql = format!("SELECT {INTENT_COLUMNS} FROM sale_intents WHERE {column} = ?");
    let row: Option<IntentRow> = sqlx::query_as(&sql)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await
        .reporting("load intent")?;
    row.map(Intent::try_from).transpose()
}

async fn load_id(conn: &mut MySqlConnection, id: u64) -> Result<Option<Intent>, AppError> {
    let sql = format!("SELECT {INTENT_COLUMNS} FROM sale_intents WHERE id = ?");
    let row: Option<IntentRow> = sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .reporting("load intent")?;
    row.map(Intent::try_from).transpose()
}

/// Ends a transaction that wrote nothing at once, rather than when its connection is
/// next used: until then it would hold its row locks.
async fn rollback(tx: sqlx::Transaction<'_, MySql>) {
    if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "rollback failed; the connection is discarded");
    }
}

fn held(rows: u64) -> Held {
    if rows == 1 { Held::Yes } else { Held::Lost }
}

/// An intent's state and lease holder, its row locked.
const HOLDER: &str = "SELECT state, lease_owner AS owner FROM sale_intents WHERE id = ? FOR UPDATE";

/// Locks the intent row and checks that `claim` still holds it, open.
async fn lock_claim(conn: &mut MySqlConnection, claim: &Claim) -> Result<Held, AppError> {
    let row: Option<Holder> = sqlx::query_as(HOLDER)
        .bind(claim.intent)
        .fetch_optional(&mut *conn)
        .await
        .reporting("check intent lease")?;
    Ok(match row {
        Some(h) if h.state.is_open() && h.owner.as_deref() == Some(claim.owner()) => Held::Yes,
        _ => Held::Lost,
    })
}

impl MySqlBackup {
    /// In one transaction, if `claim` still holds its intent: make the backup hold
    /// `sale` (or not hold the sale) and close the intent as `state`. Run again whole
    /// if MySQL picks it as a deadlock victim.
    async fn apply_and_close(
        &self,
        claim: &Claim,
        id: &SaleId,
        sale: Option<&Sale>,
        state: IntentState,
        note: Option<&str>,
    ) -> Result<Held, AppError> {
        retry_contended(|| self.apply_and_close_once(claim, id, sale, state, note)).await
    }

    async fn apply_and_close_once(
        &self,
        claim: &Claim,
        id: &SaleId,
        sale: Option<&Sale>,
        state: IntentState,
        note: Option<&str>,
    ) -> Result<Held, AppError> {
        let mut tx = self.pool.begin().await.reporting("begin backup write")?;
        if lock_claim(&mut tx, claim).await? == Held::Lost {
            rollback(tx).await;
            return Ok(Held::Lost);
        }
        let mut changes = Changes::default();
        match sale {
            Some(sale) => {
                backup::replace(&mut tx, std::slice::from_ref(sale), &mut changes).await?
            }
            None => {
                backup::delete(&mut tx, std::slice::from_ref(id), &mut changes).await?;
            }
        }
        // A settled (failed) intent keeps what it left in both stores: recovery may have
        // restored the earlier content under a new version, which the history shows.
        let result = (state == IntentState::Failed)
            .then(|| image(sale))
            .flatten();
        sqlx::query(
            "UPDATE sale_intents FORCE INDEX (PRIMARY) SET state = ?, error = ?, result_image = ?, \
             updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
        )
        .bind(state)
        .bind(note)
        .bind(result)
        .bind(claim.intent)
        .execute(&mut *tx)
        .await
        .reporting("close intent")?;
        changes.record(&mut tx).await?;
        tx.commit().await.reporting("commit backup write")?;
        Ok(Held::Yes)
    }

    async fn commit_batch_once(
        &self,
        lease: &Lease,
        claimed: usize,
        rows: &[Sale],
        skipped: &[SaleId],
    ) -> Result<Held, AppError> {
        let mut tx = self.pool.begin().await.reporting("begin import batch")?;
        let still: Vec<u64> = sqlx::query_scalar(by_holder::LOCK)
            .bind(&lease.owner)
            .fetch_all(&mut *tx)
            .await
            .reporting("check import leases")?;
        if still.len() != claimed {
            rollback(tx).await;
            return Ok(Held::Lost);
        }
        let mut changes = Changes::default();
        backup::replace(&mut tx, rows, &mut changes).await?;
        for chunk in skipped.chunks(1000) {
            let mut q = QueryBuilder::<MySql>::new(by_holder::PRESENT);
            q.push_bind(&lease.owner)
                .push(" AND state = 'pending' AND sale_id IN (");
            crate::server::db::finish_in_list(&mut q, chunk);
            q.build()
                .execute(&mut *tx)
                .await
                .reporting("close import intents")?;
        }
        sqlx::query(by_holder::DONE)
            .bind(&lease.owner)
            .execute(&mut *tx)
            .await
            .reporting("close import intents")?;
        changes.record(&mut tx).await?;
        tx.commit().await.reporting("commit import batch")?;
        Ok(Held::Yes)
    }

    async fn claim_due_once(&self, lease: &Lease) -> Result<Option<Intent>, AppError> {
        let mut tx = self.pool.begin().await.reporting("claim intent")?;
        // SKIP LOCKED lets instances claim side by side; the compare-and-set in the
        // UPDATE is what makes the claim exclusive.
        let candidate: Option<u64> = sqlx::query_scalar(&format!(
            "SELECT id FROM sale_intents WHERE {OPEN} \
             AND (lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6)) \
             AND (next_attempt_at IS NULL OR next_attempt_at <= UTC_TIMESTAMP(6)) \
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
        ))
        .fetch_optional(&mut *tx)
        .await
        .reporting("claim intent")?;
        let Some(id) = candidate else {
            rollback(tx).await;
            return Ok(None);
        };
        let claimed = take_over_query(lease, id)
            .execute(&mut *tx)
            .await
            .reporting("claim intent")?
            .rows_affected()
            == 1;
        tx.commit().await.reporting("claim intent")?;
        if !claimed {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await.reporting("claim intent")?;
        load_id(&mut conn, id).await
    }
}

/// Sets a new lease on the intent if it is open and its lease has run out.
fn take_over_query<'q>(
    lease: &'q Lease,
    id: u64,
) -> sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments> {
    sqlx::query(TAKE_OVER)
        .bind(&lease.owner)
        .bind(micros(lease.ttl))
        .bind(id)
}

const TAKE_OVER: &str = "UPDATE sale_intents FORCE INDEX (PRIMARY) SET lease_owner = ?, \
     lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, attempts = attempts + 1, updated_at = UTC_TIMESTAMP(6) \
     WHERE id = ? AND state IN ('pending', 'needs_repair') AND (lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6))";

impl Backup for MySqlBackup {
    async fn begin(&self, new: &NewIntent<'_>, lease: &Lease) -> Result<Begun, AppError> {
        let after = image(new.after);
        // A clash names the submission key or the sale; the loser of a race with a
        // writer that closed in between simply tries again.
        for _ in 0..5 {
            let inserted = retry_deadlocks(|| {
                sqlx::query(
                    "INSERT INTO sale_intents (idempotency_key, op, sale_id, after_image, actor_kind, actor_id, state, \
                     lease_owner, lease_until, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                )
                .bind(new.key.map(|k| k.as_str()))
                .bind(new.op)
                .bind(new.sale_id.as_str())
                .bind(after.as_deref())
                .bind(new.author.kind())
                .bind(new.author.user_id())
                .bind(&lease.owner)
                .bind(micros(lease.ttl))
                .execute(&self.pool)
            })
            .await;
            let e = match inserted {
                Ok(done) => return Ok(Begun::Claimed(done.last_insert_id())),
                Err(e) if is_unique_violation(&e) => e,
                Err(e) => return Err(e).reporting("record intent"),
            };
            let mut conn = self.pool.acquire().await.reporting("record intent")?;
            if let Some(key) = new.key
                && let Some(earlier) =
                    load_where(&mut conn, "idempotency_key", key.as_str()).await?
            {
                return Ok(Begun::Keyed(earlier));
            }
            if let Some(open) = load_where(&mut conn, "open_sale_id", new.sale_id.as_str()).await? {
                return Ok(Begun::Busy(open));
            }
            tracing::debug!(error = %e, "intent clash resolved meanwhile; recording again");
        }
        Err(AppError::Internal)
    }

    async fn copy(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        let mut conn = self.pool.acquire().await.reporting("read backup copy")?;
        Ok(backup::load_rows(&mut conn, std::slice::from_ref(id))
            .await?
            .pop()
            .and_then(|row| row.sale.ok()))
    }

    async fn record_images(
        &self,
        claim: &Claim,
        before: &Sale,
        after: Option<&Sale>,
    ) -> Result<Held, AppError> {
        let (before, after) = (image(Some(before)), image(after));
        let rows = retry_deadlocks(|| {
            sqlx::query(
                "UPDATE sale_intents FORCE INDEX (PRIMARY) SET before_image = ?, after_image = ?, updated_at = UTC_TIMESTAMP(6) \
                 WHERE id = ? AND lease_owner = ? AND state = 'pending'",
            )
            .bind(before.as_deref())
            .bind(after.as_deref())
            .bind(claim.intent)
            .bind(claim.owner())
            .execute(&self.pool)
        })
        .await
        .reporting("record before-image")?
        .rows_affected();
        Ok(held(rows))
    }

    async fn renew(&self, claim: &Claim) -> Result<Held, AppError> {
        let sql = format!(
            "UPDATE sale_intents FORCE INDEX (PRIMARY) SET lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
             WHERE id = ? AND lease_owner = ? AND {OPEN}"
        );
        let rows = retry_deadlocks(|| {
            sqlx::query(&sql)
                .bind(micros(claim.lease.ttl))
                .bind(claim.intent)
                .bind(claim.owner())
                .execute(&self.pool)
        })
        .await
        .reporting("renew lease")?
        .rows_affected();
        Ok(held(rows))
    }

    async fn commit(
        &self,
        claim: &Claim,
        id: &SaleId,
        after: Option<&Sale>,
    ) -> Result<Held, AppError> {
        self.apply_and_close(claim, id, after, IntentState::Done, None)
            .await
    }

    async fn settle(
        &self,
        claim: &Claim,
        id: &SaleId,
        truth: Option<&Sale>,
        note: &str,
    ) -> Result<Held, AppError> {
        self.apply_and_close(claim, id, truth, IntentState::Failed, Some(note))
            .await
    }

    async fn close(&self, claim: &Claim, state: IntentState, note: &str) -> Result<Held, AppError> {
        let note = crate::server::db::truncate(note, 255);
        let rows = retry_deadlocks(|| {
            sqlx::query(
                "UPDATE sale_intents FORCE INDEX (PRIMARY) SET state = ?, error = ?, updated_at = UTC_TIMESTAMP(6) \
                 WHERE id = ? AND lease_owner = ? AND state = 'pending'",
            )
            .bind(state)
            .bind(&note)
            .bind(claim.intent)
            .bind(claim.owner())
            .execute(&self.pool)
        })
        .await
        .reporting("set intent state")?
        .rows_affected();
        Ok(held(rows))
    }

    async fn holder(&self, intent: u64) -> Result<Option<Holder>, AppError> {
        let mut tx = self.pool.begin().await.reporting("read intent state")?;
        let row: Option<Holder> = sqlx::query_as(HOLDER)
            .bind(intent)
            .fetch_optional(&mut *tx)
            .await
            .reporting("read intent state")?;
        tx.commit().await.reporting("read intent state")?;
        Ok(row)
    }

    async fn release_key(&self, intent: u64) -> Result<(), AppError> {
        retry_deadlocks(|| {
            sqlx::query("UPDATE sale_intents FORCE INDEX (PRIMARY) SET idempotency_key = NULL WHERE id = ? AND state = 'failed'")
                .bind(intent)
                .execute(&self.pool)
        })
        .await
            .reporting("release submission key")?;
        Ok(())
    }

    async fn take_over(&self, intent: u64, lease: &Lease) -> Result<Option<Intent>, AppError> {
        let taken = retry_deadlocks(|| take_over_query(lease, intent).execute(&self.pool))
            .await
            .reporting("take over intent")?
            .rows_affected();
        if taken != 1 {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await.reporting("take over intent")?;
        load_id(&mut conn, intent).await
    }

    async fn claim_due(&self, lease: &Lease) -> Result<Option<Intent>, AppError> {
        retry_contended(|| self.claim_due_once(lease)).await
    }

    async fn open_on(&self, ids: &[SaleId]) -> Result<Vec<Intent>, AppError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(1000) {
            let mut q = QueryBuilder::<MySql>::new(format!(
                "SELECT {INTENT_COLUMNS} FROM sale_intents WHERE open_sale_id IN ("
            ));
            crate::server::db::finish_in_list(&mut q, chunk);
            let rows: Vec<IntentRow> = q
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .reporting("load open intents")?;
            for row in rows {
                found.push(Intent::try_from(row)?);
            }
        }
        Ok(found)
    }

    async fn defer(&self, claim: &Claim, wait: Duration, error: &str) -> Result<Held, AppError> {
        // The lease runs on for a whole term: a write of the failed attempt that is
        // still on its way must not meet the next attempt.
        let sql = format!(
            "UPDATE sale_intents FORCE INDEX (PRIMARY) SET next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, \
             lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, error = ?, updated_at = UTC_TIMESTAMP(6) \
             WHERE id = ? AND lease_owner = ? AND {OPEN}"
        );
        let error = crate::server::db::truncate(error, 255);
        let rows = retry_deadlocks(|| {
            sqlx::query(&sql)
                .bind(micros(wait))
                .bind(micros(claim.lease.ttl))
                .bind(&error)
                .bind(claim.intent)
                .bind(claim.owner())
                .execute(&self.pool)
        })
        .await
        .reporting("defer intent")?
        .rows_affected();
        Ok(held(rows))
    }

    async fn begin_batch(
        &self,
        sales: &[Sale],
        lease: &Lease,
        author: Author,
    ) -> Result<Vec<SaleId>, AppError> {
        let images: Vec<Option<String>> = sales.iter().map(|s| image(Some(s))).collect();
        for (n, (chunk, images)) in sales.chunks(500).zip(images.chunks(500)).enumerate() {
            // Sales that have an open intent are left out; if one gets an intent between
            // the look and the insert, the insert fails whole and is tried again.
            let mut attempt = 0;
            loop {
                let ids: Vec<SaleId> = chunk.iter().map(|s| s.id.clone()).collect();
                let busy: std::collections::HashSet<SaleId> = self
                    .open_on(&ids)
                    .await?
                    .into_iter()
                    .map(|i| i.sale_id)
                    .collect();
                let free: Vec<(usize, &Sale)> = chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !busy.contains(&s.id))
                    .collect();
                if free.is_empty() {
                    break;
                }
                let mut q = QueryBuilder::<MySql>::new(
                    "INSERT INTO sale_intents (idempotency_key, op, sale_id, after_image, actor_kind, actor_id, state, \
                     lease_owner, lease_until, created_at, updated_at) ",
                );
                q.push_values(&free, |mut row, (i, s)| {
                    row.push_bind(format!("import-{}-{}", lease.owner, n * 500 + i))
                        .push("'create'")
                        .push_bind(s.id.as_str())
                        .push_bind(images[*i].as_deref())
                        .push_bind(author.kind())
                        .push_bind(author.user_id())
                        .push("'pending'")
                        .push_bind(&lease.owner)
                        .push("UTC_TIMESTAMP(6) + INTERVAL ")
                        .push_bind_unseparated(micros(lease.ttl))
                        .push_unseparated(" MICROSECOND")
                        .push("UTC_TIMESTAMP(6)")
                        .push("UTC_TIMESTAMP(6)");
                });
                match q.build().execute(&self.pool).await {
                    Ok(_) => break,
                    Err(e) if (is_unique_violation(&e) || is_deadlock(&e)) && attempt < 5 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(attempt * 10)).await;
                    }
                    Err(e) => return Err(e).reporting("record import intents"),
                }
            }
        }
        let ids: Vec<String> = sqlx::query_scalar(by_holder::CLAIMED)
            .bind(&lease.owner)
            .fetch_all(&self.pool)
            .await
            .reporting("record import intents")?;
        ids.iter()
            .map(|id| SaleId::parse(id).map_err(|_| AppError::Internal))
            .collect()
    }

    async fn renew_batch(&self, lease: &Lease, claimed: usize) -> Result<Held, AppError> {
        let rows = retry_deadlocks(|| {
            sqlx::query(by_holder::RENEW)
                .bind(micros(lease.ttl))
                .bind(&lease.owner)
                .execute(&self.pool)
        })
        .await
        .reporting("renew import leases")?
        .rows_affected();
        Ok(if rows == claimed as u64 {
            Held::Yes
        } else {
            Held::Lost
        })
    }

    async fn present(&self, ids: &[SaleId]) -> Result<Vec<SaleId>, AppError> {
        let mut conn = self.pool.acquire().await.reporting("find sales")?;
        backup::existing(&mut conn, ids).await
    }

    async fn commit_batch(
        &self,
        lease: &Lease,
        claimed: usize,
        rows: &[Sale],
        skipped: &[SaleId],
    ) -> Result<Held, AppError> {
        retry_contended(|| self.commit_batch_once(lease, claimed, rows, skipped)).await
    }

    async fn close_batch(
        &self,
        lease: &Lease,
        state: IntentState,
        note: &str,
    ) -> Result<u64, AppError> {
        Ok(retry_deadlocks(|| {
            sqlx::query(by_holder::CLOSE)
                .bind(state)
                .bind(note)
                .bind(&lease.owner)
                .execute(&self.pool)
        })
        .await
        .reporting("close import intents")?
        .rows_affected())
    }
}

/// Counts for health and the replication panel.
pub async fn intent_counts(pool: &sqlx::MySqlPool) -> Result<crate::model::IntentCounts, AppError> {
    #[derive(sqlx::FromRow)]
    struct Counts {
        pending: i64,
        needs_repair: i64,
        failed: i64,
    }
    let c: Counts = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM sale_intents WHERE state = 'pending') AS pending, \
           (SELECT COUNT(*) FROM sale_intents WHERE state = 'needs_repair') AS needs_repair, \
           (SELECT COUNT(*) FROM sale_intents WHERE state = 'failed' AND updated_at > UTC_TIMESTAMP(6) - INTERVAL 1 DAY) AS failed",
    )
    .fetch_one(pool)
    .await
    .reporting("count intents")?;
    Ok(crate::model::IntentCounts {
        pending: c.pending as u64,
        needs_repair: c.needs_repair as u64,
        failed_24h: c.failed as u64,
    })
}
