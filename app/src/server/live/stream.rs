//! One browser's stream (`GET /api/events`): who it is for, what it may carry, and the
//! events due to it.

use super::sessions::Ticket;
use super::{Feed, LONGEST, Live, Published, Start};
use crate::model::live::{FeedStatus, Pulse, SaleChange, event};
use crate::model::{AppError, Role};
use crate::server::AppState;
use crate::server::extract::{Admitted, AnyRoleInBackground, Refused, TypedQuery};
use crate::server::sales::changes::{self, FeedEntry};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// Who a stream is for, and so what it may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Audience {
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
    fn view(&self, entry: &FeedEntry) -> Option<SaleChange> {
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

/// Where a reopened stream starts: `?after=<position>`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Resume {
    after: Option<u64>,
}

/// `GET /api/events`: the signed-in user's live stream. Resumes after the
/// `Last-Event-ID` header (sent by the browser when it reconnects by itself) or the
/// `after` query parameter (when the page reopens the stream).
pub async fn events(
    State(state): State<AppState>,
    me: Admitted<AnyRoleInBackground>,
    TypedQuery(resume): TypedQuery<Resume>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|raw| raw.trim().parse::<u64>().ok())
        .or(resume.after);
    let Admitted {
        caller: me, info, ..
    } = me;
    // A customer's stream carries the sales made with their address: none until the
    // address is proven, so an unconfirmed account holds no stream at all.
    if me.user.role == Role::Customer && !me.user.email_verified {
        return Err(AppError::EmailUnverified.into());
    }
    let ticket = state
        .live
        .inner
        .sessions
        .admit(&me.user, &me.session_key, &info.client)?;
    let (receiver, start) = state
        .live
        .subscribe(after, changes::generation(&state.mysql))
        .await?;
    let audience = Audience::for_user(&me.user);
    let stream = Stream::new(&state.live, audience, ticket, receiver, start);
    let sse = Sse::new(futures::stream::unfold(stream, Stream::next))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    // Proxies that buffer responses (nginx) must pass each event on at once.
    Ok(([("x-accel-buffering", "no")], sse).into_response())
}

/// One browser's stream: what is due to it, and what it listens to.
struct Stream {
    audience: Audience,
    /// Its login's place among this instance's open streams, checked every few seconds.
    ticket: Ticket,
    ended: broadcast::Receiver<Arc<str>>,
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
        ticket: Ticket,
        receiver: broadcast::Receiver<Feed>,
        start: Start,
    ) -> Self {
        let now = Instant::now();
        let pulse = (audience == Audience::Staff).then(|| live.inner.pulse.subscribe());
        let mut stream = Stream {
            audience,
            ticket,
            ended: live.inner.sessions.ended(),
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
        // `retry`: how long the browser waits before reconnecting once the stream ends.
        let first = json_event(event::STATUS, &status).retry(Duration::from_secs(1));
        let (first, backlog) = match start {
            Start::Missed => (first, None),
            // The position it starts from is the page's Last-Event-ID from now on: a
            // quiet page that is cut off resumes from here, not from "now".
            Start::At(after, backlog) => {
                stream.cursor = after;
                (first.id(after.to_string()), Some(backlog))
            }
        };
        stream.due.push_back(first);
        if let Some(pulse) = stream.pulse.as_mut() {
            stream
                .due
                .push_back(json_event(event::PULSE, &*pulse.borrow_and_update()));
        }
        match backlog {
            None => stream.reload(),
            Some(backlog) => {
                for entry in backlog {
                    stream.offer(&entry);
                }
            }
        }
        stream
    }

    fn offer(&mut self, published: &Published) {
        let seq = published.seq();
        if seq <= self.cursor {
            return;
        }
        self.cursor = seq;
        let event = match &self.audience {
            Audience::Staff => Some(
                Event::default()
                    .event(event::CHANGE)
                    .data(&published.staff_json),
            ),
            audience => audience
                .view(&published.entry)
                .map(|change| json_event(event::CHANGE, &change)),
        };
        if let Some(event) = event {
            self.due.push_back(event.id(seq.to_string()));
            self.idle_until = Instant::now() + self.idle;
        }
    }

    /// Ends a stream that carried nothing for the idle time: the page reopens it from
    /// here when its user is back, not by itself.
    fn pause(&mut self) {
        self.due.push_back(
            Event::default()
                .event(event::IDLE)
                .id(self.cursor.to_string())
                .data("idle"),
        );
        self.done = true;
    }

    /// Ends the stream for the browser to reconnect. An id without data moves its
    /// Last-Event-ID past the entries this stream filtered out, so it resumes here.
    fn stop(&mut self) {
        self.due
            .push_back(Event::default().id(self.cursor.to_string()));
        self.done = true;
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
                _ = closing => self.stop(),
                Ok(key) = self.ended.recv() => {
                    if key == self.ticket.key {
                        // The page learns at once that its user was signed out.
                        self.due.push_back(Event::default().event(event::SIGNED_OUT).data("ended"));
                        self.done = true;
                    }
                }
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
                _ = tokio::time::sleep_until(self.idle_until) => self.pause(),
                // A long-lived stream is renewed now and then (the browser reconnects at
                // once), so its login is checked again.
                _ = tokio::time::sleep_until(self.ends_at) => self.stop(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::live::ChangeKind;
    use crate::server::live::tests::entry;

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
