//! The live stream (`/api/events`) and the CSV exports, against the real stores: edits
//! reach streams on other instances in commit order, customers hear only of their own
//! purchases, a stream resumes where it stopped, and an instance cut off from MySQL
//! delivers every change made meanwhile once it is back, each once.

use crate::helpers::{Proxy, TestApp, TestOptions, mysql_target, spawn_app, spawn_app_with};
use app::model::live::{ChangeKind, FeedStatus, SaleChange, event};
use app::model::{Email, Role, Sale, SaleDraft};
use app::server::sales::dual_write::{Writer, writer};
use app::server::sales::generate;
use std::collections::BTreeSet;
use std::time::Duration;

/// One Server-Sent Event as read off the wire.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// A live stream read the way a browser's EventSource reads it.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
    pub raw: String,
}

impl Sse {
    /// Opens the stream, retrying while the instance's follower has not read the feed
    /// yet (503).
    pub async fn open(client: &reqwest::Client, url: &str, last_id: Option<u64>) -> Sse {
        Self::open_accepting(client, url, last_id, "identity").await
    }

    /// Opens the stream as a browser does, offering these content encodings.
    pub async fn open_accepting(
        client: &reqwest::Client,
        url: &str,
        last_id: Option<u64>,
        encodings: &str,
    ) -> Sse {
        for _ in 0..50 {
            let mut request = client.get(url).header("accept-encoding", encodings);
            if let Some(id) = last_id {
                request = request.header("last-event-id", id.to_string());
            }
            let response = request.send().await.expect("open the stream");
            if response.status() == 503 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            assert_eq!(response.status(), 200, "the stream opens");
            assert_eq!(
                response.headers()["content-type"],
                "text/event-stream",
                "an event stream"
            );
            assert!(
                response.headers().get("content-encoding").is_none(),
                "events are sent as they happen, never held by an encoder"
            );
            return Sse {
                response,
                buffer: String::new(),
                raw: String::new(),
            };
        }
        panic!("the stream kept answering 503");
    }

    /// The next event, `None` once the server ended the stream; panics after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut lines = 0;
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    lines += 1;
                    match field {
                        "event" => event.event = value.into(),
                        "id" => event.id = Some(value.into()),
                        "data" => event.data.push_str(value),
                        _ => lines -= 1,
                    }
                }
                if lines > 0 {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {within:?}; so far: {}", self.raw))
                .expect("read the stream")?;
            let text = String::from_utf8_lossy(&chunk);
            self.raw.push_str(&text);
            self.buffer.push_str(&text);
        }
    }

    /// The next sale change, skipping status and pulse events.
    pub async fn next_change(&mut self, within: Duration) -> SaleChange {
        loop {
            let e = self.next(within).await.expect("the stream is open");
            if e.event == event::CHANGE {
                let change: SaleChange = serde_json::from_str(&e.data).expect("a sale change");
                assert_eq!(
                    e.id,
                    Some(change.seq.to_string()),
                    "the event id is its position"
                );
                return change;
            }
            assert_ne!(e.event, event::RELOAD, "unexpected reload: {}", self.raw);
        }
    }

    /// Waits for a status event saying `status`.
    pub async fn wait_for_status(&mut self, status: FeedStatus, within: Duration) {
        loop {
            let e = self.next(within).await.expect("the stream is open");
            if e.event == event::STATUS
                && serde_json::from_str::<FeedStatus>(&e.data).ok() == Some(status)
            {
                return;
            }
            assert_ne!(
                e.event,
                event::CHANGE,
                "a change before {status:?}: {}",
                e.data
            );
        }
    }
}

const SOON: Duration = Duration::from_secs(5);

fn drafts(seed: u64) -> impl Iterator<Item = SaleDraft> {
    generate::sales(seed)
}

fn bought_by(mut draft: SaleDraft, email: &str) -> SaleDraft {
    draft.customer.email = Email::parse(email).expect("a valid address");
    draft
}

/// A writer of the test's own: a third process, as a CLI job would be.
fn outsider(app: &TestApp) -> Writer {
    writer(app.mysql.clone(), app.mongo.clone())
}

#[tokio::test]
async fn edits_reach_a_stream_on_another_instance_in_commit_order() {
    let app = spawn_app().await;
    let other = app.spawn_instance(&TestOptions::default().serve).await;
    let worker = app
        .user_with_role("liveworker", Role::TechnicalWorker)
        .await;
    let mut stream = Sse::open(&worker, &format!("{other}/api/events"), None).await;
    stream.wait_for_status(FeedStatus::Live, SOON).await;

    let writer = outsider(&app);
    let mut source = drafts(71);
    let created = writer.create(None, source.next().unwrap()).await.unwrap();
    let updated = writer
        .update(None, &created.id, 1, source.next().unwrap())
        .await
        .unwrap();
    writer.delete(None, &created.id, 2).await.unwrap();

    let first = stream.next_change(SOON).await;
    assert_eq!(first.kind, ChangeKind::Created);
    assert_eq!(first.sale_id.as_ref(), Some(&created.id));
    let row = first.row.clone().expect("a created sale's row");
    assert_eq!((row.version, row.total), (1, created.draft.total()));
    assert_eq!(first.days, vec![created.draft.sale_date.date_naive()]);

    let second = stream.next_change(SOON).await;
    assert_eq!(second.kind, ChangeKind::Updated);
    assert_eq!(second.seq, first.seq + 1, "positions follow commit order");
    assert_eq!(second.version(), Some(2));
    assert_eq!(
        second.row.as_ref().map(|r| r.total),
        Some(updated.draft.total())
    );
    let mut days = vec![
        updated.draft.sale_date.date_naive(),
        created.draft.sale_date.date_naive(),
    ];
    days.dedup();
    assert_eq!(second.days, days, "the new date and the old one");

    let third = stream.next_change(SOON).await;
    assert_eq!(third.kind, ChangeKind::Deleted);
    assert_eq!((third.seq, third.row), (first.seq + 2, None));

    // An edit through the first instance's API reaches the stream on the second too.
    let (status, body) = app
        .call_json(
            &worker,
            "sales/create",
            &serde_json::json!({ "token": "", "input": app::model::SaleInput::from(&source.next().unwrap()) }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let fourth = stream.next_change(SOON).await;
    assert_eq!(fourth.kind, ChangeKind::Created);
    assert_eq!(
        fourth.sale_id.map(|id| id.to_string()),
        body["id"].as_str().map(str::to_string)
    );
}

#[tokio::test]
async fn a_customer_hears_only_of_their_own_purchases() {
    let app = spawn_app().await;
    let ann = app.email_for("ann");
    let bob = app.email_for("bob");
    let client = app.user_with_email("ann", &ann, Role::Customer).await;
    let mut stream = Sse::open(&client, &app.url("/api/events"), None).await;
    stream.wait_for_status(FeedStatus::Live, SOON).await;

    let writer = outsider(&app);
    let mut source = drafts(72);
    writer
        .create(None, bought_by(source.next().unwrap(), &bob))
        .await
        .unwrap();
    let hers = writer
        .create(None, bought_by(source.next().unwrap(), &ann))
        .await
        .unwrap();
    let seen = stream.next_change(SOON).await;
    assert_eq!(
        seen.sale_id.as_ref(),
        Some(&hers.id),
        "Bob's purchase was not sent"
    );
    assert_eq!(seen.kind, ChangeKind::Created);

    // Corrected to Bob's address: it leaves her list, and she is not told his address.
    writer
        .update(None, &hers.id, 1, bought_by(source.next().unwrap(), &bob))
        .await
        .unwrap();
    let moved = stream.next_change(SOON).await;
    assert_eq!((moved.kind, moved.row.clone()), (ChangeKind::Deleted, None));
    writer
        .update(None, &hers.id, 2, bought_by(source.next().unwrap(), &bob))
        .await
        .unwrap();
    let again = writer
        .create(None, bought_by(source.next().unwrap(), &ann))
        .await
        .unwrap();
    let next = stream.next_change(SOON).await;
    assert_eq!(
        next.sale_id.as_ref(),
        Some(&again.id),
        "Bob's edit was not sent"
    );
    assert!(
        !stream.raw.contains(&bob),
        "Bob's address never crossed Ann's stream"
    );
    assert!(
        !stream.raw.contains("\"pulse\""),
        "the journal's pulse is for staff"
    );

    // Her address changes (confirmed elsewhere): the stream that was filtered for the
    // old one ends within a sweep.
    sqlx::query("UPDATE users SET email = ? WHERE username_key = 'ann'")
        .bind(app.email_for("ann2"))
        .execute(&app.mysql)
        .await
        .unwrap();
    let mut last = None;
    while let Some(e) = stream.next(Duration::from_secs(10)).await {
        last = Some(e.event);
    }
    assert_eq!(last.as_deref(), Some(event::SIGNED_OUT));

    // Not signed in: no stream.
    let res = app
        .new_client()
        .get(app.url("/api/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_stream_resumes_after_the_last_event_it_received() {
    let app = spawn_app().await;
    let worker = app.user_with_role("resumer", Role::TechnicalWorker).await;
    let url = app.url("/api/events");
    let writer = outsider(&app);
    let mut source = drafts(73);

    let mut stream = Sse::open(&worker, &url, None).await;
    stream.wait_for_status(FeedStatus::Live, SOON).await;
    let sale = writer.create(None, source.next().unwrap()).await.unwrap();
    let seen = stream.next_change(SOON).await;
    drop(stream);

    writer
        .update(None, &sale.id, 1, source.next().unwrap())
        .await
        .unwrap();
    writer
        .update(None, &sale.id, 2, source.next().unwrap())
        .await
        .unwrap();
    let mut resumed = Sse::open(&worker, &url, Some(seen.seq)).await;
    let a = resumed.next_change(SOON).await;
    let b = resumed.next_change(SOON).await;
    assert_eq!(
        (a.seq, a.version()),
        (seen.seq + 1, Some(2)),
        "what it missed, in order"
    );
    assert_eq!((b.seq, b.version()), (seen.seq + 2, Some(3)));

    // The `after` parameter does the same for a page that reopens its stream itself.
    let mut reopened = Sse::open(&worker, &format!("{url}?after={}", a.seq), None).await;
    assert_eq!(reopened.next_change(SOON).await.seq, b.seq);

    // A stream that has carried no change yet still tells the browser where it
    // started, so a drop before the first change loses nothing either.
    let mut quiet = Sse::open(&worker, &url, None).await;
    let first = quiet.next(SOON).await.expect("a first event");
    assert_eq!(first.event, event::STATUS);
    let start: u64 = first
        .id
        .expect("the first status carries the start")
        .parse()
        .unwrap();
    assert_eq!(start, b.seq);
    drop(quiet);
    writer
        .update(None, &sale.id, 3, source.next().unwrap())
        .await
        .unwrap();
    let mut back = Sse::open(&worker, &url, Some(start)).await;
    assert_eq!(back.next_change(SOON).await.version(), Some(4));
}

#[tokio::test]
async fn an_idle_stream_is_paused_and_tells_the_browser_where_to_resume() {
    let mut options = TestOptions::default();
    options.serve.live_idle_secs = 1;
    let app = spawn_app_with(options).await;
    let customer = app
        .user_with_email("idler", &app.email_for("idler"), Role::Customer)
        .await;
    let mut stream = Sse::open(&customer, &app.url("/api/events"), None).await;
    stream.wait_for_status(FeedStatus::Live, SOON).await;
    // Somebody else's sale moves the feed on, but this stream carries nothing of it.
    let sale = outsider(&app)
        .create(None, drafts(74).next().unwrap())
        .await
        .unwrap();
    let mut last = None;
    while let Some(e) = stream.next(SOON).await {
        assert_ne!(e.event, event::CHANGE, "another customer's sale");
        last = Some(e);
    }
    let last = last.expect("a closing event");
    assert_eq!(
        last.event,
        event::IDLE,
        "the page is told to wait for its user rather than reconnect"
    );
    let position: u64 = last.id.expect("it carries a position").parse().unwrap();
    let head = app::server::sales::changes::generation(&app.mysql)
        .await
        .unwrap();
    assert_eq!(
        position, head,
        "resumes past the sale it was not sent ({})",
        sale.id
    );
}

/// MySQL cut off from one instance while its streams are open: the streams say they
/// are offline, the edits made meanwhile on another instance all arrive once MySQL is
/// back, each once and in order, and the streams say they are live again.
#[tokio::test]
async fn a_stream_through_a_mysql_outage_receives_every_change_once() {
    let proxy = Proxy::start(mysql_target()).await;
    let app = spawn_app_with(TestOptions {
        mysql_addr: Some(proxy.addr),
        ..Default::default()
    })
    .await;
    let worker = app.user_with_role("outage", Role::SeniorManagement).await;
    let mut stream = Sse::open(&worker, &app.url("/api/events"), None).await;
    stream.wait_for_status(FeedStatus::Live, SOON).await;

    proxy.cut();
    stream
        .wait_for_status(FeedStatus::Offline, Duration::from_secs(15))
        .await;
    let writer = outsider(&app);
    let mut source = drafts(75);
    let mut made: Vec<Sale> = Vec::new();
    for _ in 0..4 {
        made.push(writer.create(None, source.next().unwrap()).await.unwrap());
    }
    let first = made[0].clone();
    writer
        .update(None, &first.id, 1, source.next().unwrap())
        .await
        .unwrap();
    writer.delete(None, &made[1].id, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();

    let mut changes = Vec::new();
    let mut live_again = false;
    while changes.len() < 6 {
        let e = stream.next(Duration::from_secs(15)).await.expect("open");
        match e.event.as_str() {
            event::CHANGE => changes.push(serde_json::from_str::<SaleChange>(&e.data).unwrap()),
            event::STATUS => live_again |= e.data.contains("live"),
            event::RELOAD => panic!("told to reload: {}", stream.raw),
            _ => {}
        }
    }
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    let expected: Vec<u64> = (seqs[0]..seqs[0] + 6).collect();
    assert_eq!(seqs, expected, "every change, once, in order");
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    use ChangeKind::*;
    assert_eq!(
        kinds,
        [Created, Created, Created, Created, Updated, Deleted]
    );
    let ids: BTreeSet<_> = changes.iter().filter_map(|c| c.sale_id.clone()).collect();
    assert_eq!(ids.len(), 4);
    assert!(
        live_again,
        "the stream said it is live again: {}",
        stream.raw
    );
    // Nothing more: no change is sent twice.
    let more = tokio::time::timeout(Duration::from_millis(800), stream.next(SOON)).await;
    if let Ok(Some(e)) = more {
        assert_ne!(e.event, event::CHANGE, "a change sent twice: {}", e.data);
    }
}

/// The staff's stream carries the journal's pulse: a sync run's progress and edits in
/// flight, so the replication panel needs no polling.
#[tokio::test]
async fn staff_streams_carry_the_journals_pulse() {
    let app = spawn_app().await;
    let manager = app.user_with_role("pulse", Role::SeniorManagement).await;
    let mut stream = Sse::open(&manager, &app.url("/api/events"), None).await;
    stream.wait_for_status(FeedStatus::Live, SOON).await;
    app.run_sync_from_panel(&manager).await;
    loop {
        let e = stream.next(SOON).await.expect("open");
        if e.event == event::PULSE {
            let pulse: app::model::live::Pulse = serde_json::from_str(&e.data).unwrap();
            if pulse.sync_run.is_some() && !pulse.sync_running {
                break;
            }
        }
    }
}

async fn download(client: &reqwest::Client, url: &str) -> (u16, String, String) {
    let res = client.get(url).send().await.expect("download");
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, res.text().await.expect("body"))
}

/// The revenue column of a CSV export, summed exactly.
pub fn csv_sum(csv: &str, column: &str) -> rust_decimal::Decimal {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == column)
        .expect("the column");
    lines
        .map(|l| {
            l.split(',')
                .nth(at)
                .and_then(|v| v.parse::<rust_decimal::Decimal>().ok())
                .unwrap_or_else(|| panic!("a number in {l}"))
        })
        .sum()
}

/// Downloads both exports as `client` and checks they add up to the analytics' revenue
/// to the cent; returns that revenue.
pub async fn exports_match_the_analytics(app: &TestApp, client: &reqwest::Client) -> String {
    let (status, analytics) = app
        .call(client, "analytics", &[("from", ""), ("to", "")])
        .await;
    assert_eq!(status, 200, "{analytics}");
    let revenue: rust_decimal::Decimal = analytics["kpis"]["revenue"]
        .as_str()
        .expect("revenue as exact text")
        .parse()
        .unwrap();
    let (status, disposition, sales) = download(client, &app.url("/api/export/sales.csv")).await;
    assert_eq!(status, 200, "{sales}");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert_eq!(
        sales.lines().count() as u64 - 1,
        analytics["kpis"]["sales"].as_u64().unwrap(),
        "one line per sale"
    );
    assert_eq!(csv_sum(&sales, "total"), revenue, "sales export");
    let (status, _, daily) = download(client, &app.url("/api/export/analytics.csv")).await;
    assert_eq!(status, 200, "{daily}");
    assert_eq!(csv_sum(&daily, "revenue"), revenue, "analytics export");
    revenue.to_string()
}

#[tokio::test]
async fn exports_follow_the_filters_and_the_role() {
    let app = spawn_app().await;
    crate::sync::seed(&app, 120, 76).await;
    let manager = app.user_with_role("exporter", Role::SeniorManagement).await;
    exports_match_the_analytics(&app, &manager).await;

    let worker = app.user_with_role("csvworker", Role::TechnicalWorker).await;
    let store: String = sqlx::query_scalar("SELECT store_location FROM sales LIMIT 1")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    let (status, _, csv) = download(
        &worker,
        &app.url(&format!(
            "/api/export/sales.csv?store={}&sort=total_asc",
            store.replace(' ', "%20")
        )),
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    let expected: (i64, rust_decimal::Decimal) =
        sqlx::query_as("SELECT COUNT(*), SUM(total) FROM sales WHERE store_location = ?")
            .bind(&store)
            .fetch_one(&app.mysql)
            .await
            .unwrap();
    assert_eq!(
        csv.lines().count() as i64 - 1,
        expected.0,
        "only that store"
    );
    assert_eq!(csv_sum(&csv, "total"), expected.1);
    let totals: Vec<rust_decimal::Decimal> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(10).unwrap().parse().unwrap())
        .collect();
    assert!(
        totals.windows(2).all(|w| w[0] <= w[1]),
        "in the list's order"
    );
    assert!(
        totals.iter().all(|t| t.scale() == 2),
        "amounts as stored, to the cent"
    );

    let (status, _, body) = download(&worker, &app.url("/api/export/analytics.csv")).await;
    assert_eq!(status, 403, "the analytics are the managers': {body}");
    let (status, _, body) =
        download(&worker, &app.url("/api/export/sales.csv?from=yesterday")).await;
    assert_eq!(status, 400, "{body}");
    let customer = app
        .user_with_email("csvcustomer", &app.email_for("csvcustomer"), Role::Customer)
        .await;
    let (status, _, _) = download(&customer, &app.url("/api/export/sales.csv")).await;
    assert_eq!(status, 403);
}

/// A client that stops reading is not buffered for without limit: once it is more than
/// the backlog behind, its stream says `reload` and ends.
#[tokio::test]
async fn a_stream_that_falls_behind_is_told_to_reload() {
    let app = spawn_app().await;
    let worker = app.user_with_role("laggard", Role::TechnicalWorker).await;
    let mut stream = Sse::open(&worker, &app.url("/api/events"), None).await;
    stream.wait_for_status(FeedStatus::Live, SOON).await;

    // Far more feed entries than the stream's backlog and the sockets' buffers hold,
    // written straight to the feed (fifty to a transaction) while the stream is not read.
    let entries = 20_000;
    for sales in crate::helpers::generated_sales(77, entries).chunks(50) {
        let mut changes = app::server::sales::changes::Changes::default();
        changes.stored(sales, &[]);
        let mut tx = app.mysql.begin().await.unwrap();
        changes.record(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut received = 0;
    let mut reloaded = false;
    while let Some(e) = stream.next(Duration::from_secs(20)).await {
        match e.event.as_str() {
            event::CHANGE => received += 1,
            event::RELOAD => reloaded = true,
            _ => {}
        }
    }
    assert!(reloaded, "told to reload after {received} changes");
    assert!(
        received < entries,
        "{received} of {entries} changes were buffered for it"
    );
}

/// A stream outlives no login: logging out (here, from another tab) ends it within a
/// sweep, with a `signed_out` event for the page; and one user cannot hold open
/// streams without bound.
#[tokio::test]
async fn a_stream_ends_when_its_login_does_and_a_user_holds_a_bounded_number() {
    let app = spawn_app().await;
    let worker = app.user_with_role("signedout", Role::TechnicalWorker).await;
    let url = app.url("/api/events");
    let mut streams = Vec::new();
    for _ in 0..16 {
        streams.push(Sse::open(&worker, &url, None).await);
    }
    let refused = worker.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429, "the seventeenth stream of one user");
    let mut stream = streams.pop().unwrap();
    stream.wait_for_status(FeedStatus::Live, SOON).await;
    drop(streams);
    // The streams dropped gave their places back.
    let mut again = Sse::open(&worker, &url, None).await;
    again.wait_for_status(FeedStatus::Live, SOON).await;

    let (status, body) = app.call(&worker, "logout", &[]).await;
    assert_eq!(status, 200, "{body}");
    let mut last = None;
    while let Some(e) = stream.next(Duration::from_secs(10)).await {
        last = Some(e.event);
    }
    assert_eq!(last.as_deref(), Some(event::SIGNED_OUT), "{}", stream.raw);
    let res = worker.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401, "no new stream without a login");
}

/// A page refreshing by itself after a change (`background`) does not count as its
/// user's activity, so an open dashboard does not keep a login from idling out; the
/// same call made for the user does.
#[tokio::test]
async fn refreshes_the_page_makes_by_itself_do_not_keep_a_login_alive() {
    let app = spawn_app().await;
    let worker = app.user_with_role("idletab", Role::TechnicalWorker).await;
    let last_seen = || async {
        let seen: chrono::NaiveDateTime = sqlx::query_scalar(
            "SELECT s.last_seen_at FROM user_sessions s JOIN users u ON u.id = s.user_id \
             WHERE u.username_key = 'idletab'",
        )
        .fetch_one(&app.mysql)
        .await
        .unwrap();
        seen
    };
    let list = |background: bool| serde_json::json!({ "query": {}, "background": background });
    // Within the idle timeout (30 min here), but minutes old.
    sqlx::query(
        "UPDATE user_sessions s JOIN users u ON u.id = s.user_id \
         SET s.last_seen_at = UTC_TIMESTAMP(6) - INTERVAL 10 MINUTE WHERE u.username_key = 'idletab'",
    )
    .execute(&app.mysql)
    .await
    .unwrap();
    let before = last_seen().await;
    let (status, body) = app.call_json(&worker, "sales/list", &list(true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(last_seen().await, before, "a refresh is not activity");
    let (status, _) = app
        .call_json(&worker, "sales/count", &serde_json::json!({ "query": {} }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(last_seen().await, before, "nor is a recount");
    let (status, body) = app.call_json(&worker, "sales/list", &list(false)).await;
    assert_eq!(status, 200, "{body}");
    assert!(last_seen().await > before, "the user's own request is");
}
