//! The page's side of the live stream: one EventSource per page while someone is
//! signed in, whose changes any component can follow (`Live::follow`), and whether
//! the page is live or offline. On the server nothing connects: the page renders as
//! it is, and hydration opens the stream.

use crate::model::live::{Pulse, SaleChange};
use leptos::prelude::*;
use std::collections::VecDeque;
use std::time::Duration;

/// How long a changed row stays highlighted.
pub const HIGHLIGHT: Duration = Duration::from_millis(2500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nobody signed in, or not in a browser yet.
    Off,
    Connecting,
    Live,
    /// The stream or the database behind it is down; changes arrive once it is back.
    Offline,
    /// Closed while nothing happened and nobody used the page; opens again, catching
    /// up, at the user's next click, key or return to the tab.
    Paused,
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Off => "off",
            Connection::Connecting => "connecting",
            Connection::Live => "live",
            Connection::Offline => "offline",
            Connection::Paused => "paused",
        }
    }
}

/// What a follower is told.
pub enum Heard<'a> {
    Change(&'a SaleChange),
    /// The page missed changes it cannot be sent: reload everything shown.
    Missed,
}

#[derive(Clone, Copy)]
pub struct Live {
    pub connection: RwSignal<Connection>,
    /// The journal's pulse (staff only): moves whenever edits start or settle, or a
    /// sync run progresses.
    pub pulse: RwSignal<Option<Pulse>>,
    /// Changes received, in feed order, without duplicates.
    changes: RwSignal<VecDeque<SaleChange>>,
    missed: RwSignal<u64>,
    /// The position the open stream started from: it carries every change after it.
    /// `None` while no stream has said so.
    covered: RwSignal<Option<u64>>,
    /// The earliest position a component's data was read at before the stream opened:
    /// the stream opens from there, so nothing committed in between is lost.
    need: StoredValue<Option<u64>>,
}

pub fn use_live() -> Live {
    expect_context::<Live>()
}

impl Live {
    pub fn provide() -> Live {
        let live = Live {
            connection: RwSignal::new(Connection::Off),
            pulse: RwSignal::new(None),
            changes: RwSignal::new(VecDeque::new()),
            missed: RwSignal::new(0),
            covered: RwSignal::new(None),
            need: StoredValue::new(None),
        };
        provide_context(live);
        live
    }

    /// Calls `heard` with every change after feed position `from` (where the
    /// component's data was read), in order, and with `Missed` when the page must
    /// reload what it shows: the stream could not be sent what it missed, or started
    /// after `from` (the data is older than the stream). In the browser only.
    pub fn follow(self, from: u64, mut heard: impl FnMut(Heard<'_>) + 'static) {
        self.need
            .update_value(|need| *need = Some(need.map_or(from, |n| n.min(from))));
        let mut cursor = from;
        let mut missed = self.missed.get_untracked();
        Effect::new(move |_| {
            let now_missed = self.missed.get();
            let gap = self.covered.get().is_some_and(|start| from < start) && cursor == from;
            if now_missed != missed || gap {
                missed = now_missed;
                // Reloaded data comes with a new position and a new follower.
                cursor = u64::MAX;
                heard(Heard::Missed);
                return;
            }
            self.changes.with(|changes| {
                let start = cursor;
                for change in changes.iter().filter(|c| c.seq > start) {
                    cursor = change.seq;
                    heard(Heard::Change(change));
                }
            });
        });
    }
}

/// Tells a resource's fetch of the view it fetched last (the page refreshing by
/// itself after a change) from a view the user asked for: the server does not count
/// the former as the user's activity, so an open page does not keep a login alive.
pub struct Views<K: Send + Sync + 'static>(StoredValue<Option<K>>);

impl<K: Send + Sync + 'static> Clone for Views<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: Send + Sync + 'static> Copy for Views<K> {}

impl<K: Clone + PartialEq + Send + Sync + 'static> Default for Views<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + PartialEq + Send + Sync + 'static> Views<K> {
    pub fn new() -> Self {
        Self(StoredValue::new(None))
    }

    /// The server functions' `background` argument for fetching `view` now.
    pub fn background(self, view: &K) -> Option<bool> {
        let repeated = self.0.with_value(|last| last.as_ref() == Some(view));
        self.0.set_value(Some(view.clone()));
        Some(repeated)
    }
}

/// Runs an action at most once a second however often it is asked for: at once if it
/// has not run in the last second, else once when the second is over.
#[derive(Clone, Copy)]
pub struct Throttle {
    cooling: StoredValue<bool>,
    again: StoredValue<bool>,
    action: Callback<()>,
}

impl Throttle {
    pub fn new(action: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            cooling: StoredValue::new(false),
            again: StoredValue::new(false),
            action: Callback::new(move |()| action()),
        }
    }

    pub fn request(self) {
        if self.cooling.get_value() {
            self.again.set_value(true);
            return;
        }
        self.cooling.set_value(true);
        self.action.run(());
        set_timeout(move || self.cooled(), Duration::from_secs(1));
    }

    fn cooled(self) {
        // The component that asked may be gone by now; then so is the work.
        if self.cooling.try_set_value(false).is_some() {
            return;
        }
        if self.again.try_get_value() == Some(true) {
            self.again.set_value(false);
            self.request();
        }
    }
}

/// Opens the stream while someone is signed in (`signed_in` says who, and as what:
/// when that changes the stream is opened again, as what it may carry changes), and
/// closes it when they leave; calls `signed_out` when the server ends or refuses the
/// stream, which may mean the login ended elsewhere.
pub fn connect(live: Live, signed_in: Signal<Option<String>>, signed_out: Callback<()>) {
    #[cfg(feature = "hydrate")]
    browser::connect(live, signed_in, signed_out);
    #[cfg(not(feature = "hydrate"))]
    let _ = (live, signed_in, signed_out);
}

/// Called once the whole page has hydrated, lazy routes included: the stream opens only
/// then. Until then nothing may re-render what the server sent. A lazy route's code is
/// still loading while the rest of the page is live, and an event arriving meanwhile (a
/// change that refetches a list, a refused stream that asks again who is signed in)
/// would re-render a part the browser has not hydrated yet; hydrating it against the
/// server's HTML then fails.
#[cfg(feature = "hydrate")]
pub fn page_hydrated() {
    browser::HYDRATED.with(|hydrated| hydrated.set(true));
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::{Connection, Live};
    use crate::model::live::{FeedStatus, Pulse, SaleChange, event};
    use leptos::prelude::*;
    use std::time::Duration;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::{EventSource, MessageEvent};

    /// A page whose stream was refused or dropped tries again after this, doubling up
    /// to `RETRY_MAX` while it keeps failing.
    const RETRY: Duration = Duration::from_secs(3);
    const RETRY_MAX: Duration = Duration::from_secs(60);
    /// Changes kept for components that start following later (a route change).
    const KEPT: usize = 200;

    thread_local! {
        pub(super) static HYDRATED: ArcRwSignal<bool> = ArcRwSignal::new(false);
    }

    impl Live {
        /// Keeps the changes in feed order: a stream reopened from an earlier position
        /// sends some again, and fills in older ones.
        fn received(self, change: SaleChange) {
            self.changes.update(|changes| {
                if let Err(at) = changes.binary_search_by_key(&change.seq, |c| c.seq) {
                    changes.insert(at, change);
                }
                while changes.len() > KEPT {
                    changes.pop_front();
                }
            });
        }
    }

    struct Open {
        source: EventSource,
        _listeners: Vec<Closure<dyn FnMut(MessageEvent)>>,
        _on_error: Closure<dyn FnMut(web_sys::Event)>,
    }

    impl Drop for Open {
        fn drop(&mut self) {
            self.source.close();
        }
    }

    #[derive(Clone, Copy)]
    struct Stream {
        live: Live,
        signed_out: Callback<()>,
        open: StoredValue<Option<Open>, LocalStorage>,
        /// Bumped on every (re)open and close, so a retry scheduled for an earlier
        /// stream does nothing.
        generation: StoredValue<u64>,
        /// The last event id the stream carried, where a reopened stream resumes.
        last_id: StoredValue<Option<u64>>,
        failures: StoredValue<u32>,
    }

    pub fn connect(live: Live, signed_in: Signal<Option<String>>, signed_out: Callback<()>) {
        let stream = Stream {
            live,
            signed_out,
            open: StoredValue::new_local(None),
            generation: StoredValue::new(0),
            last_id: StoredValue::new(None),
            failures: StoredValue::new(0),
        };
        let hydrated = HYDRATED.with(ArcRwSignal::clone);
        Effect::new(move |previous: Option<Option<String>>| {
            if !hydrated.get() {
                return None;
            }
            let user = signed_in.get();
            if previous.as_ref() != Some(&user) {
                match user {
                    // From where the page's data was read, if it said.
                    Some(_) => stream.open(live.need.get_value()),
                    None => stream.close(),
                }
            }
            user
        });
        on_cleanup(move || stream.close());
        // A stream paused for idleness opens again, from where it stopped, once the
        // user is back.
        let resume = move || {
            if live.connection.get_untracked() == Connection::Paused {
                stream.open(stream.last_id.get_value().or(live.need.get_value()));
            }
        };
        let handles = [
            window_event_listener(leptos::ev::pointerdown, move |_| resume()),
            window_event_listener(leptos::ev::keydown, move |_| resume()),
            window_event_listener(leptos::ev::focus, move |_| resume()),
        ];
        on_cleanup(move || handles.into_iter().for_each(|h| h.remove()));
    }

    fn data<T: serde::de::DeserializeOwned>(e: &MessageEvent) -> Option<T> {
        serde_json::from_str(&e.data().as_string()?).ok()
    }

    fn event_id(e: &MessageEvent) -> Option<u64> {
        e.last_event_id().parse().ok()
    }

    impl Stream {
        fn close(self) {
            self.generation.update_value(|g| *g += 1);
            self.open.set_value(None);
            self.live.covered.set(None);
            self.live.connection.set(Connection::Off);
        }

        fn open(self, after: Option<u64>) {
            self.generation.update_value(|g| *g += 1);
            self.open.set_value(None);
            self.live.covered.set(None);
            let url = match after {
                Some(seq) => format!("/api/events?after={seq}"),
                None => "/api/events".to_string(),
            };
            let Ok(source) = EventSource::new(&url) else {
                self.live.connection.set(Connection::Offline);
                return;
            };
            self.live.connection.set(Connection::Connecting);
            let live = self.live;
            let mut listeners = Vec::new();
            let mut listen = |name: &str, f: Box<dyn FnMut(MessageEvent)>| {
                let closure = Closure::wrap(f);
                let _ =
                    source.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
                listeners.push(closure);
            };
            listen(
                event::CHANGE,
                Box::new(move |e| {
                    self.last_id.set_value(event_id(&e));
                    if let Some(change) = data::<SaleChange>(&e) {
                        live.received(change);
                    }
                }),
            );
            listen(
                event::STATUS,
                Box::new(move |e| {
                    self.failures.set_value(0);
                    if let Some(id) = event_id(&e) {
                        self.last_id.set_value(Some(id));
                        // The first status of a stream says where it starts; later ones
                        // (the browser reconnecting by itself) continue it.
                        if live.covered.get_untracked().is_none() {
                            live.covered.set(Some(id));
                        }
                    }
                    live.connection.set(match data::<FeedStatus>(&e) {
                        Some(FeedStatus::Live) => Connection::Live,
                        _ => Connection::Offline,
                    });
                }),
            );
            listen(
                event::PULSE,
                Box::new(move |e| {
                    if let Some(pulse) = data::<Pulse>(&e) {
                        live.pulse.set(Some(pulse));
                    }
                }),
            );
            listen(
                event::RELOAD,
                Box::new(move |_| {
                    // Starts afresh from now: resuming from the old position would be
                    // refused again. The components reload, and follow from their
                    // new data.
                    live.need.set_value(None);
                    self.last_id.set_value(None);
                    live.missed.update(|n| *n += 1);
                    // Deferred: reopening drops this listener.
                    set_timeout(move || self.open(None), Duration::ZERO);
                }),
            );
            listen(
                event::IDLE,
                Box::new(move |e| {
                    if let Some(id) = event_id(&e) {
                        self.last_id.set_value(Some(id));
                    }
                    // Deferred: closing drops this listener.
                    set_timeout(
                        move || {
                            self.close();
                            live.connection.set(Connection::Paused);
                        },
                        Duration::ZERO,
                    );
                }),
            );
            listen(
                event::SIGNED_OUT,
                Box::new(move |_| {
                    // Deferred: closing drops this listener.
                    set_timeout(
                        move || {
                            self.close();
                            self.signed_out.run(());
                        },
                        Duration::ZERO,
                    );
                }),
            );
            let generation = self.generation.get_value();
            let on_error = Closure::wrap(Box::new(move |e: web_sys::Event| {
                let closed = e
                    .target()
                    .and_then(|t| t.dyn_into::<EventSource>().ok())
                    .is_some_and(|s| s.ready_state() == EventSource::CLOSED);
                if !closed {
                    // The browser reconnects by itself (after `retry`), with Last-Event-ID.
                    live.connection.set(Connection::Connecting);
                    return;
                }
                // Refused: the server could not check the session, or there is none
                // any more. The browser gives up, so the page asks who is signed in
                // (its guards act if nobody is) and tries again, less and less often.
                live.connection.set(Connection::Offline);
                self.signed_out.run(());
                let failures = self.failures.get_value();
                self.failures.set_value(failures.saturating_add(1));
                let delay = (RETRY * 2u32.saturating_pow(failures.min(5))).min(RETRY_MAX);
                set_timeout(
                    move || {
                        if self.generation.get_value() == generation {
                            self.open(self.last_id.get_value().or(live.need.get_value()));
                        }
                    },
                    delay,
                );
            }) as Box<dyn FnMut(web_sys::Event)>);
            source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            self.open.set_value(Some(Open {
                source,
                _listeners: listeners,
                _on_error: on_error,
            }));
        }
    }
}

/// Where the page stands: live, reconnecting, or offline (shown to signed-in users).
#[component]
pub fn LiveBadge() -> impl IntoView {
    let live = use_live();
    let state = move || live.connection.get();
    view! {
        <span class=move || format!("live-badge {}", state().as_str())
            data-testid="live-status" data-state=move || state().as_str()
            role="status" hidden=move || state() == Connection::Off>
            {move || match state() {
                Connection::Live => "● Live",
                Connection::Connecting => "○ Connecting…",
                Connection::Offline => "○ Offline: changes show once it is back",
                Connection::Paused => "◌ Paused: live again when you use the page",
                Connection::Off => "",
            }}
        </span>
    }
}
