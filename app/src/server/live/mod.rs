//! Live changes (docs/live.md): each instance follows the change feed in MySQL with
//! one loop, whatever the number of browsers, and fans its entries out to the pages
//! connected to it over one Server-Sent Events stream each (`/api/events`).
//!
//! Nothing here is a guarantee held in memory: the feed and its order live in MySQL.
//! What an instance keeps is a window of recent entries, so a browser that reconnects
//! (`Last-Event-ID`) is sent what it missed; one that missed more is told to reload.

mod sessions;
mod stream;

pub use stream::events;

use crate::model::AppError;
use crate::model::live::{FeedStatus, Pulse};
use crate::server::db::Context;
use crate::server::sales::changes::{self, FeedEntry};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

#[derive(Debug, Clone, Copy)]
pub struct LiveSettings {
    /// How often the follower asks MySQL for new entries.
    pub poll: Duration,
    /// A stream that has carried no change for this long is closed; the browser
    /// reconnects (and is authenticated again).
    pub idle: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(150),
            idle: Duration::from_secs(300),
        }
    }
}

/// Entries each instance keeps for browsers that reconnect.
const RECENT: usize = 4096;
/// Entries a stream may fall behind before it is told to reload instead.
const BACKLOG: usize = 1024;
/// Entries read per query.
const READ_BATCH: u32 = 500;
/// However busy, a stream ends after this long and the browser reconnects, so a
/// session revoked meanwhile stops receiving.
const LONGEST: Duration = Duration::from_secs(30 * 60);

/// An entry as the follower hands it on, its change already serialized for staff: a
/// thousand staff streams then send one string rather than serialize it a thousand
/// times.
#[derive(Debug)]
struct Published {
    entry: FeedEntry,
    staff_json: String,
}

impl Published {
    fn new(entry: FeedEntry) -> Arc<Self> {
        let staff_json = serde_json::to_string(&entry.change).unwrap_or_default();
        Arc::new(Published { entry, staff_json })
    }

    fn seq(&self) -> u64 {
        self.entry.change.seq
    }
}

/// What the follower hands the streams.
#[derive(Debug, Clone)]
enum Feed {
    Entry(Arc<Published>),
    /// Entries were pruned before this instance read them (it was cut off from MySQL
    /// for longer than the feed is kept): every page must reload.
    Gap,
}

/// This instance's view of the feed, shared by the follower and the streams.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
    pub settings: LiveSettings,
}

struct Inner {
    recent: Mutex<Recent>,
    sender: broadcast::Sender<Feed>,
    status: watch::Sender<FeedStatus>,
    pulse: watch::Sender<Pulse>,
    closing: watch::Sender<bool>,
    sessions: Arc<sessions::Registry>,
}

/// The newest entries: every entry after `floor` up to `last` is here, once `ready`.
#[derive(Default)]
struct Recent {
    ready: bool,
    floor: u64,
    last: u64,
    entries: VecDeque<Arc<Published>>,
}

impl Recent {
    fn push(&mut self, entry: Arc<Published>) {
        self.last = entry.seq();
        self.entries.push_back(entry);
        while self.entries.len() > RECENT {
            if let Some(old) = self.entries.pop_front() {
                self.floor = old.seq();
            }
        }
    }
}

/// Where a new stream starts.
enum Start {
    /// From here: these entries are already due.
    At(u64, Vec<Arc<Published>>),
    /// The browser missed entries no longer held: it must reload.
    Missed,
}

impl Live {
    pub fn new(settings: LiveSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                recent: Mutex::new(Recent::default()),
                sender: broadcast::channel(BACKLOG).0,
                status: watch::channel(FeedStatus::Offline).0,
                pulse: watch::channel(Pulse::default()).0,
                closing: watch::channel(false).0,
                sessions: sessions::Registry::new(),
            }),
            settings,
        }
    }

    /// Ends every open stream (at shutdown, so the server need not wait for them).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Starts this instance's two loops on MySQL: the follower, which reads the feed,
    /// and the check of the open streams' sessions.
    pub fn spawn(&self, pool: sqlx::MySqlPool, auth: crate::server::AuthSettings) {
        self.inner.sessions.spawn_sweeper(pool.clone(), auth);
        self.spawn_follower(pool);
    }

    fn spawn_follower(&self, pool: sqlx::MySqlPool) {
        let live = self.clone();
        tokio::spawn(async move {
            let mut backoff = live.settings.poll;
            loop {
                match live.follow(&pool).await {
                    Ok(more) => {
                        backoff = live.settings.poll;
                        if !more {
                            tokio::time::sleep(live.settings.poll).await;
                        }
                    }
                    Err(e) => {
                        if live.inner.status.send_replace(FeedStatus::Offline) == FeedStatus::Live {
                            tracing::warn!(error = %e, "live feed: MySQL does not answer; browsers are told they are offline");
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        });
    }

    /// One turn of the follower; true if there may be more entries to read now.
    async fn follow(&self, pool: &sqlx::MySqlPool) -> Result<bool, AppError> {
        let ready = self.lock().ready;
        if !ready {
            self.start(pool).await?;
            self.mark_live();
            return Ok(false);
        }
        let glance = glance(pool).await?;
        // Said before the entries missed meanwhile are sent, so a page knows it is
        // live again when they arrive.
        self.mark_live();
        self.inner.pulse.send_if_modified(|p| {
            let changed = *p != glance.pulse;
            *p = glance.pulse.clone();
            changed
        });
        let last = self.lock().last;
        if glance.head < last {
            // The feed was reset under us (a restored backup): start over.
            tracing::warn!(
                head = glance.head,
                last,
                "live feed: the feed went back; rereading"
            );
            self.lock().ready = false;
            let _ = self.inner.sender.send(Feed::Gap);
            return Ok(true);
        }
        if glance.head == last {
            return Ok(false);
        }
        let entries = changes::after(pool, last, READ_BATCH).await?;
        let more = entries.len() == READ_BATCH as usize;
        let mut recent = self.lock();
        // Positions are handed out without holes, so a hole means entries were pruned
        // before this instance read them (cut off from MySQL for longer than the feed is
        // kept); so does a head with nothing after `last`. Pages must reload.
        let contiguous = entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.change.seq == last + 1 + i as u64);
        if entries.is_empty() || !contiguous {
            tracing::warn!(
                last,
                head = glance.head,
                "live feed: entries were pruned before they were read"
            );
            recent.entries.clear();
            recent.floor = glance.head;
            recent.last = glance.head;
            let _ = self.inner.sender.send(Feed::Gap);
            return Ok(false);
        }
        // Sent under the lock, so a stream starting meanwhile finds each entry either
        // in `recent` or in its receiver.
        for entry in entries {
            let entry = Published::new(entry);
            recent.push(entry.clone());
            let _ = self.inner.sender.send(Feed::Entry(entry));
        }
        Ok(more)
    }

    fn mark_live(&self) {
        if self.inner.status.send_replace(FeedStatus::Live) == FeedStatus::Offline {
            tracing::info!("live feed: following MySQL");
        }
    }

    /// The first read: the newest entries, for browsers that reconnect.
    async fn start(&self, pool: &sqlx::MySqlPool) -> Result<(), AppError> {
        let head = changes::generation(pool).await?;
        let entries =
            changes::after(pool, head.saturating_sub(RECENT as u64), RECENT as u32).await?;
        let mut recent = self.lock();
        recent.entries = entries.into_iter().map(Published::new).collect();
        recent.floor = recent
            .entries
            .front()
            .map_or(head, |e| e.seq().saturating_sub(1));
        recent.last = recent.entries.back().map_or(head, |e| e.seq());
        recent.ready = true;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes a new stream, resuming after `after` if the browser had one.
    ///
    /// A position past this instance's last read is checked against the feed's head
    /// (`head`, awaited only then). Up to the head, the page's data was read after the
    /// follower's last poll, or another instance served the stream further: the stream
    /// skips what the page has. Past the head, the feed went back (a restored backup)
    /// and the page must reload.
    async fn subscribe(
        &self,
        after: Option<u64>,
        head: impl Future<Output = Result<u64, AppError>>,
    ) -> Result<(broadcast::Receiver<Feed>, Start), AppError> {
        let ahead = after.filter(|&after| after > self.lock().last);
        let past_head = match ahead {
            Some(after) => after > head.await?,
            None => false,
        };
        let recent = self.lock();
        if !recent.ready {
            return Err(AppError::Unavailable(crate::model::Database::Reporting));
        }
        let receiver = self.inner.sender.subscribe();
        let start = match after {
            None => Start::At(recent.last, Vec::new()),
            Some(after) if after < recent.floor || past_head => Start::Missed,
            Some(after) => Start::At(
                after,
                recent
                    .entries
                    .iter()
                    .filter(|e| e.seq() > after)
                    .cloned()
                    .collect(),
            ),
        };
        Ok((receiver, start))
    }
}

/// The feed head and the journal's pulse, in one round trip.
struct Glance {
    head: u64,
    pulse: Pulse,
}

async fn glance(pool: &sqlx::MySqlPool) -> Result<Glance, AppError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        head: u64,
        open_intents: i64,
        sync_run: Option<u64>,
        sync_scanned: Option<u64>,
        sync_running: Option<i64>,
    }
    let row: Row = sqlx::query_as(
        "SELECT h.seq AS head, \
         (SELECT COUNT(*) FROM sale_intents WHERE state IN ('pending', 'needs_repair')) AS open_intents, \
         r.id AS sync_run, r.scanned AS sync_scanned, CAST(r.status = 'running' AS SIGNED) AS sync_running \
         FROM sale_feed_head h LEFT JOIN sync_runs r ON r.id = (SELECT MAX(id) FROM sync_runs) \
         WHERE h.id = 0",
    )
    .fetch_one(pool)
    .await
    .reporting("follow the change feed")?;
    Ok(Glance {
        head: row.head,
        pulse: Pulse {
            open_intents: row.open_intents.max(0) as u64,
            sync_run: row.sync_run,
            sync_scanned: row.sync_scanned.unwrap_or(0),
            sync_running: row.sync_running.unwrap_or(0) != 0,
        },
    })
}

/// How long the feed keeps its entries: a browser away for longer reloads.
pub const KEPT: Duration = Duration::from_secs(24 * 3600);

/// Deletes feed entries older than `KEPT` (hourly, from any instance).
pub async fn prune(pool: &sqlx::MySqlPool) -> Result<u64, AppError> {
    let cutoff = chrono::Utc::now().naive_utc()
        - chrono::Duration::from_std(KEPT).unwrap_or(chrono::Duration::days(1));
    changes::prune(pool, cutoff).await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::live::{ChangeKind, SaleChange};
    use crate::model::report::SaleRow;
    use crate::model::{PurchaseMethod, SaleId};

    pub(crate) fn entry(kind: ChangeKind, email_now: Option<&str>, owners: &[&str]) -> FeedEntry {
        let id = SaleId::parse("5bd761dcae323e45a93ccfe8").expect("an id");
        FeedEntry {
            change: SaleChange {
                seq: 7,
                kind,
                sales: 1,
                sale_id: Some(id.clone()),
                row: email_now.map(|e| SaleRow {
                    id,
                    sale_date: chrono::Utc::now(),
                    store_location: "Denver".into(),
                    purchase_method: PurchaseMethod::Online,
                    coupon_used: false,
                    customer_email: e.into(),
                    items: 1,
                    total: rust_decimal::Decimal::ONE,
                    version: 2,
                }),
                days: Vec::new(),
            },
            owners: owners.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_browser_resuming_from_before_the_window_is_told_to_reload() {
        let live = Live::new(LiveSettings::default());
        let subscribe = |after: Option<u64>, head: u64| {
            futures::executor::block_on(live.subscribe(after, std::future::ready(Ok(head))))
        };
        assert!(
            subscribe(None, 0).is_err(),
            "not ready before the first read"
        );
        {
            let mut recent = live.lock();
            recent.ready = true;
            recent.floor = 10;
            for seq in [11, 12] {
                let mut e = entry(ChangeKind::Created, None, &[]);
                e.change.seq = seq;
                recent.push(Published::new(e));
            }
        }
        // The feed's head is at 14: two entries this instance has not read yet.
        let due = |after: Option<u64>| match subscribe(after, 14) {
            Ok((_, Start::At(from, backlog))) => {
                Some((from, backlog.iter().map(|p| p.seq()).collect::<Vec<_>>()))
            }
            Ok((_, Start::Missed)) => None,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(due(Some(9)), None, "entry 10 is gone");
        assert_eq!(due(Some(10)), Some((10, vec![11, 12])));
        assert_eq!(due(Some(12)), Some((12, vec![])));
        assert_eq!(
            due(Some(14)),
            Some((14, vec![])),
            "data read after the follower's last read"
        );
        assert_eq!(due(None), Some((12, vec![])), "a new page starts from now");
        assert!(
            matches!(subscribe(Some(14), 13), Ok((_, Start::Missed))),
            "a position past the feed's head: the feed went back"
        );
    }
}
