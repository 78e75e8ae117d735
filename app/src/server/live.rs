//! Live changes (docs/live.md): each instance follows the change feed in MySQL with
//! one loop, whatever the number of browsers, and fans its entries out to the pages
//! connected to it over one Server-Sent Events stream each (`/api/events`).
//!
//! Nothing here is a guarantee held in memory: the feed and its order live in MySQL.
//! What an instance keeps is a window of recent entries, so a browser that reconnects
//! (`Last-Event-ID`) is sent what it missed; one that missed more is told to reload.

use crate::model::live::{FeedStatus, Pulse, SaleChange, event};
use crate::model::{AppError, Role};
use crate::server::AppState;
use crate::server::auth::{Access, guard, request, sessions::Activity};
use crate::server::db::Context;
use crate::server::sales::changes::{self, FeedEntry};
use axum::extract::{Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

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

/// What the follower hands the streams.
#[derive(Debug, Clone)]
enum Feed {
    Entry(Arc<FeedEntry>),
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
}

/// The newest entries: every entry after `floor` up to `last` is here, once `ready`.
#[derive(Default)]
struct Recent {
    ready: bool,
    floor: u64,
    last: u64,
    entries: VecDeque<Arc<FeedEntry>>,
}

impl Recent {
    fn push(&mut self, entry: Arc<FeedEntry>) {
        self.last = entry.change.seq;
        self.entries.push_back(entry);
        while self.entries.len() > RECENT {
            if let Some(old) = self.entries.pop_front() {
                self.floor = old.change.seq;
            }
        }
    }
}

/// Where a new stream starts.
enum Start {
    /// From here: these entries are already due.
    At(u64, Vec<Arc<FeedEntry>>),
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
            }),
            settings,
        }
    }

    /// Ends every open stream (at shutdown, so the server need not wait for them).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Starts the follower: one loop per instance reading the feed from MySQL.
    pub fn spawn_follower(&self, pool: sqlx::MySqlPool) {
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
        if entries
            .first()
            .is_some_and(|e| e.change.seq != recent.last + 1)
        {
            tracing::warn!(
                last = recent.last,
                "live feed: entries were pruned before they were read"
            );
            recent.entries.clear();
            recent.floor = entries.first().map_or(0, |e| e.change.seq - 1);
            let _ = self.inner.sender.send(Feed::Gap);
        }
        // Sent under the lock, so a stream starting meanwhile finds each entry either
        // in `recent` or in its receiver.
        for entry in entries {
            let entry = Arc::new(entry);
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
        recent.entries = entries.into_iter().map(Arc::new).collect();
        recent.floor = recent
            .entries
            .front()
            .map_or(head, |e| e.change.seq.saturating_sub(1));
        recent.last = recent.entries.back().map_or(head, |e| e.change.seq);
        recent.ready = true;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes a new stream, resuming after `after` if the browser had one.
    fn subscribe(
        &self,
        after: Option<u64>,
    ) -> Result<(broadcast::Receiver<Feed>, Start), AppError> {
        let recent = self.lock();
        if !recent.ready {
            return Err(AppError::Unavailable(crate::model::Store::Reporting));
        }
        let receiver = self.inner.sender.subscribe();
        let start = match after {
            None => Start::At(recent.last, Vec::new()),
            Some(after) if after < recent.floor => Start::Missed,
            Some(after) => Start::At(
                after,
                recent
                    .entries
                    .iter()
                    .filter(|e| e.change.seq > after)
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

/// Who a stream is for, and so what it may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Workers and managers: every change, and the journal's pulse.
    Staff,
    /// A customer with a proven address: changes to their own purchases only.
    Customer(String),
    /// A customer whose address is not proven yet: no sales at all.
    Nobody,
}

impl Audience {
    fn for_user(user: &crate::model::SessionUser) -> Self {
        if user.role.is_staff() {
            Audience::Staff
        } else if user.email_verified {
            Audience::Customer(user.email.clone())
        } else {
            Audience::Nobody
        }
    }

    /// The change as this audience may see it, if at all.
    pub fn view(&self, entry: &FeedEntry) -> Option<SaleChange> {
        use crate::model::live::ChangeKind;
        match self {
            Audience::Staff => Some(entry.change.clone()),
            Audience::Nobody => None,
            // Says only that something changed: the customer reloads their own list.
            Audience::Customer(_) if entry.change.kind == ChangeKind::Bulk => Some(SaleChange {
                days: Vec::new(),
                ..entry.change.clone()
            }),
            Audience::Customer(email) => {
                let mine = |owner: &String| owner.eq_ignore_ascii_case(email);
                if !entry.owners.iter().any(mine) {
                    return None;
                }
                // A sale moved to another customer's address has left this one's list.
                let still_mine = entry
                    .change
                    .row
                    .as_ref()
                    .is_some_and(|r| mine(&r.customer_email));
                Some(SaleChange {
                    kind: if still_mine || entry.change.row.is_none() {
                        entry.change.kind
                    } else {
                        ChangeKind::Deleted
                    },
                    row: entry.change.row.clone().filter(|_| still_mine),
                    ..entry.change.clone()
                })
            }
        }
    }
}

/// `GET /api/events`: the signed-in user's live stream. Resumes after the
/// `Last-Event-ID` header (sent by the browser when it reconnects by itself) or the
/// `after` query parameter (when the page reopens the stream).
pub async fn events(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let after = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            parts.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|pair| pair.strip_prefix("after="))
                    .map(str::to_string)
            })
        })
        .and_then(|raw| raw.trim().parse::<u64>().ok());
    let opened = async {
        let info = request::from_parts(&parts, state.auth.cookie_secure)?;
        let me = guard::require(
            &state,
            &info,
            Access::Roles(&Role::ALL),
            Activity::Background,
        )
        .await?;
        let (receiver, start) = state.live.subscribe(after)?;
        Ok::<_, AppError>((Audience::for_user(&me.user), receiver, start))
    }
    .await;
    match opened {
        Ok((audience, receiver, start)) => {
            let stream = Stream::new(&state.live, audience, receiver, start);
            let sse = Sse::new(futures::stream::unfold(stream, Stream::next))
                .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
            // Proxies that buffer responses (nginx) must pass each event on at once.
            ([("x-accel-buffering", "no")], sse).into_response()
        }
        Err(e) => crate::server::error_response(e),
    }
}

/// One browser's stream: what is due to it, and what it listens to.
struct Stream {
    audience: Audience,
    receiver: broadcast::Receiver<Feed>,
    status: watch::Receiver<FeedStatus>,
    pulse: Option<watch::Receiver<Pulse>>,
    closing: watch::Receiver<bool>,
    due: VecDeque<Event>,
    /// The newest feed position this stream has passed (sent or filtered out).
    cursor: u64,
    idle: Duration,
    idle_until: Instant,
    ends_at: Instant,
    done: bool,
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().comment("unserializable"))
}

impl Stream {
    fn new(
        live: &Live,
        audience: Audience,
        receiver: broadcast::Receiver<Feed>,
        start: Start,
    ) -> Self {
        let now = Instant::now();
        let pulse = (audience == Audience::Staff).then(|| live.inner.pulse.subscribe());
        let mut stream = Stream {
            audience,
            receiver,
            due: VecDeque::new(),
            cursor: 0,
            idle: live.settings.idle,
            idle_until: now + live.settings.idle,
            ends_at: now + LONGEST,
            closing: live.inner.closing.subscribe(),
            status: live.inner.status.subscribe(),
            pulse,
            done: false,
        };
        // The browser waits this long before reconnecting after the stream ends.
        let status = *stream.status.borrow_and_update();
        stream
            .due
            .push_back(json_event(event::STATUS, &status).retry(Duration::from_secs(1)));
        if let Some(pulse) = stream.pulse.as_mut() {
            stream
                .due
                .push_back(json_event(event::PULSE, &*pulse.borrow_and_update()));
        }
        match start {
            Start::Missed => stream.reload(),
            Start::At(after, backlog) => {
                stream.cursor = after;
                for entry in backlog {
                    stream.offer(&entry);
                }
            }
        }
        stream
    }

    fn offer(&mut self, entry: &FeedEntry) {
        if entry.change.seq <= self.cursor {
            return;
        }
        self.cursor = entry.change.seq;
        if let Some(change) = self.audience.view(entry) {
            self.due
                .push_back(json_event(event::CHANGE, &change).id(change.seq.to_string()));
            self.idle_until = Instant::now() + self.idle;
        }
    }

    fn reload(&mut self) {
        self.due
            .push_back(Event::default().event(event::RELOAD).data("missed"));
        self.done = true;
    }

    async fn next(mut self) -> Option<(Result<Event, std::convert::Infallible>, Self)> {
        loop {
            if let Some(event) = self.due.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            let pulse = self.pulse.as_mut();
            let pulse = async move {
                match pulse {
                    Some(p) => p.changed().await.map(|()| p.borrow_and_update().clone()),
                    None => std::future::pending().await,
                }
            };
            let closing = &mut self.closing;
            let closing = async move { closing.wait_for(|closing| *closing).await.is_ok() };
            tokio::select! {
                biased;
                _ = closing => self.done = true,
                received = self.receiver.recv() => match received {
                    Ok(Feed::Entry(entry)) => self.offer(&entry),
                    Ok(Feed::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => self.reload(),
                    Err(broadcast::error::RecvError::Closed) => self.done = true,
                },
                Ok(()) = self.status.changed() => {
                    let status = *self.status.borrow_and_update();
                    self.due.push_back(json_event(event::STATUS, &status));
                }
                Ok(pulse) = pulse => self.due.push_back(json_event(event::PULSE, &pulse)),
                _ = tokio::time::sleep_until(self.idle_until.min(self.ends_at)) => {
                    // An id without data moves the browser's Last-Event-ID past the
                    // entries this stream filtered out, so it resumes from here.
                    self.due.push_back(Event::default().id(self.cursor.to_string()));
                    self.done = true;
                }
            }
        }
    }
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
mod tests {
    use super::*;
    use crate::model::live::ChangeKind;
    use crate::model::report::SaleRow;
    use crate::model::{PurchaseMethod, SaleId};

    fn entry(kind: ChangeKind, email_now: Option<&str>, owners: &[&str]) -> FeedEntry {
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
    fn a_customer_hears_of_their_own_sales_only() {
        let ann = Audience::Customer("ann@example.com".into());
        let to_bob = entry(
            ChangeKind::Updated,
            Some("bob@example.com"),
            &["bob@example.com"],
        );
        assert_eq!(ann.view(&to_bob), None);
        let hers = entry(
            ChangeKind::Updated,
            Some("ann@example.com"),
            &["Ann@example.com"],
        );
        assert_eq!(ann.view(&hers).map(|c| c.kind), Some(ChangeKind::Updated));
        // Moved from her address to Bob's: she hears it left, not Bob's address.
        let moved = entry(
            ChangeKind::Updated,
            Some("bob@example.com"),
            &["bob@example.com", "ann@example.com"],
        );
        let seen = ann.view(&moved).expect("she hears of it");
        assert_eq!(seen.kind, ChangeKind::Deleted);
        assert_eq!(seen.row, None);
        let bulk = entry(ChangeKind::Bulk, None, &[]);
        assert_eq!(ann.view(&bulk).map(|c| c.kind), Some(ChangeKind::Bulk));
        assert_eq!(Audience::Nobody.view(&hers), None);
        assert!(Audience::Staff.view(&to_bob).is_some());
    }
}
