//! The change feed (`sale_feed`): every transaction that changes the backup's sales
//! records what it changed, just before it commits, under one position counter whose
//! row lock orders the commits. Each instance follows the feed (`crate::server::live`)
//! and tells its browsers; the counter is also the backup's change count, so figures
//! cached from the backup (the sales list's match counts) stay current whichever
//! instance made the change.

use crate::model::live::{ChangeKind, SaleChange};
use crate::model::report::SaleRow;
use crate::model::{AppError, Sale, SaleId};
use crate::server::db::Context;
use chrono::{NaiveDate, NaiveDateTime};
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

/// A transaction changing more sales than this is one `bulk` entry: browsers reload
/// what they show instead of receiving thousands of rows.
const LISTED_ONE_BY_ONE: usize = 50;

/// What a sale was before the transaction changed it, as the backup held it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Previous {
    pub id: String,
    pub day: NaiveDate,
    pub customer_email: String,
}

struct Entry {
    kind: ChangeKind,
    sale_id: SaleId,
    row: Option<SaleRow>,
    day: Option<NaiveDate>,
    previous_day: Option<NaiveDate>,
    owner: Option<String>,
    previous_owner: Option<String>,
}

/// The changes one transaction makes to the backup's sales, gathered while it writes
/// and recorded by `record` as its last statement before the commit.
#[must_use = "changes must be recorded before the transaction commits"]
#[derive(Default)]
pub struct Changes {
    entries: Vec<Entry>,
}

impl Changes {
    /// These sales now stored as they are; `previous` is what the backup held of them.
    pub fn stored(&mut self, sales: &[Sale], previous: &[Previous]) {
        for s in sales {
            let before = previous.iter().find(|p| p.id == s.id.as_str());
            let d = &s.draft;
            self.entries.push(Entry {
                kind: if before.is_some() {
                    ChangeKind::Updated
                } else {
                    ChangeKind::Created
                },
                sale_id: s.id.clone(),
                row: Some(SaleRow {
                    id: s.id.clone(),
                    sale_date: d.sale_date,
                    store_location: d.store_location.to_string(),
                    purchase_method: d.purchase_method,
                    coupon_used: d.coupon_used,
                    customer_email: d.customer.email.to_string(),
                    items: d.items.len() as u32,
                    total: d.total(),
                    version: s.version,
                }),
                day: Some(d.sale_date.date_naive()),
                previous_day: before.map(|p| p.day),
                owner: Some(d.customer.email.to_string()),
                previous_owner: before.map(|p| p.customer_email.clone()),
            });
        }
    }

    /// These sales deleted; `previous` is what the backup held of them.
    pub fn deleted(&mut self, previous: &[Previous]) {
        for p in previous {
            let Ok(sale_id) = SaleId::parse(&p.id) else {
                continue;
            };
            self.entries.push(Entry {
                kind: ChangeKind::Deleted,
                sale_id,
                row: None,
                day: None,
                previous_day: Some(p.day),
                owner: None,
                previous_owner: Some(p.customer_email.clone()),
            });
        }
    }

    /// Appends the changes to the feed, on the transaction about to commit. It takes
    /// the feed head's row lock, which is held until the commit, so call it last: a
    /// transaction waiting for the lock then holds nothing another writer waits for.
    pub async fn record(self, conn: &mut MySqlConnection) -> Result<(), AppError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let bulk = self.entries.len() > LISTED_ONE_BY_ONE;
        let rows = if bulk { 1 } else { self.entries.len() };
        // LAST_INSERT_ID(expr) hands the new head back in the statement's own reply,
        // saving a round trip while the lock is held.
        let advanced =
            sqlx::query("UPDATE sale_feed_head SET seq = LAST_INSERT_ID(seq + ?) WHERE id = 0")
                .bind(rows as u64)
                .execute(&mut *conn)
                .await
                .reporting("advance the change feed")?;
        let head = match advanced.last_insert_id() {
            0 => sqlx::query_scalar("SELECT seq FROM sale_feed_head WHERE id = 0")
                .fetch_one(&mut *conn)
                .await
                .reporting("read the change feed head")?,
            head => head,
        };
        let first = head + 1 - rows as u64;
        if bulk {
            sqlx::query(
                "INSERT INTO sale_feed (seq, kind, sales, recorded_at) VALUES (?, 'bulk', ?, UTC_TIMESTAMP(6))",
            )
            .bind(first)
            .bind(self.entries.len() as u32)
            .execute(&mut *conn)
            .await
            .reporting("record a bulk change")?;
            return Ok(());
        }
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO sale_feed (seq, kind, sale_id, summary, sale_day, previous_day, owner, \
             previous_owner, recorded_at) ",
        );
        let mut seq = first;
        q.push_values(self.entries, |mut row, e| {
            row.push_bind(seq)
                .push_bind(e.kind)
                .push_bind(e.sale_id.to_string())
                .push_bind(e.row.and_then(|r| serde_json::to_string(&r).ok()))
                .push_bind(e.day)
                .push_bind(e.previous_day)
                .push_bind(e.owner)
                .push_bind(e.previous_owner)
                .push("UTC_TIMESTAMP(6)");
            seq += 1;
        });
        q.build()
            .execute(&mut *conn)
            .await
            .reporting("record sales changes")?;
        Ok(())
    }
}

/// The change count: the feed's head, as of this read. Equal counts mean no change to
/// the backup's sales committed in between, in any process.
pub async fn generation(pool: &MySqlPool) -> Result<u64, AppError> {
    sqlx::query_scalar("SELECT seq FROM sale_feed_head WHERE id = 0")
        .fetch_one(pool)
        .await
        .reporting("read the change count")
}

/// A feed entry with the customers it concerns, which only the server sees.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub change: SaleChange,
    pub owners: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct FeedRow {
    seq: u64,
    kind: ChangeKind,
    sales: u32,
    sale_id: Option<String>,
    summary: Option<String>,
    sale_day: Option<NaiveDate>,
    previous_day: Option<NaiveDate>,
    owner: Option<String>,
    previous_owner: Option<String>,
}

impl From<FeedRow> for FeedEntry {
    fn from(r: FeedRow) -> Self {
        let row = r.summary.and_then(|s| match serde_json::from_str(&s) {
            Ok(row) => Some(row),
            Err(e) => {
                tracing::error!(seq = r.seq, error = %e, "unreadable sale summary in the change feed");
                None
            }
        });
        let mut days: Vec<NaiveDate> = r.sale_day.into_iter().chain(r.previous_day).collect();
        days.dedup();
        let mut owners: Vec<String> = r.owner.into_iter().chain(r.previous_owner).collect();
        owners.dedup();
        FeedEntry {
            change: SaleChange {
                seq: r.seq,
                kind: r.kind,
                sales: r.sales,
                sale_id: r.sale_id.and_then(|id| SaleId::parse(&id).ok()),
                row,
                days,
            },
            owners,
        }
    }
}

const FEED_COLUMNS: &str = "SELECT seq, kind, sales, sale_id, summary, sale_day, previous_day, owner, \
     previous_owner FROM sale_feed";

/// Entries after `after`, oldest first, at most `limit`.
pub async fn after(pool: &MySqlPool, after: u64, limit: u32) -> Result<Vec<FeedEntry>, AppError> {
    let rows: Vec<FeedRow> = sqlx::query_as(&format!(
        "{FEED_COLUMNS} WHERE seq > ? ORDER BY seq LIMIT ?"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .reporting("follow the change feed")?;
    Ok(rows.into_iter().map(FeedEntry::from).collect())
}

/// Deletes entries recorded before `cutoff` (UTC), in slices so no statement holds
/// locks for long. A browser whose last entry is gone is told to reload.
pub async fn prune(pool: &MySqlPool, cutoff: NaiveDateTime) -> Result<u64, AppError> {
    let mut total = 0;
    loop {
        let n = sqlx::query("DELETE FROM sale_feed WHERE recorded_at < ? ORDER BY seq LIMIT 5000")
            .bind(cutoff)
            .execute(pool)
            .await
            .reporting("prune the change feed")?
            .rows_affected();
        total += n;
        if n < 5000 {
            return Ok(total);
        }
    }
}
