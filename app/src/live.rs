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
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Off => "off",
            Connection::Connecting => "connecting",
            Connection::Live => "live",
            Connection::Offline => "offline",
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
    changes: RwSignal<VecDeque<SaleChange>>,
    missed: RwSignal<u64>,
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
        };
        provide_context(live);
        live
    }

    /// Calls `heard` with every change that arrives from now on, in order, and with
    /// `Missed` when the page must reload what it shows. In the browser only.
    pub fn follow(self, mut heard: impl FnMut(Heard<'_>) + 'static) {
        let mut cursor = self
            .changes
            .with_untracked(|c| c.back().map_or(0, |c| c.seq));
        let mut missed = self.missed.get_untracked();
        Effect::new(move |_| {
            let now_missed = self.missed.get();
            if now_missed != missed {
                missed = now_missed;
                heard(Heard::Missed);
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

/// Opens the stream while someone is signed in, and closes it when they leave; calls
/// `signed_out` when the server ends the stream because the login ended elsewhere.
pub fn connect(live: Live, signed_in: Signal<Option<u64>>, signed_out: Callback<()>) {
    #[cfg(feature = "hydrate")]
    browser::connect(live, signed_in, signed_out);
    #[cfg(not(feature = "hydrate"))]
    let _ = (live, signed_in, signed_out);
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

    /// A browser reconnecting after the server refused or dropped it waits this long.
    const RETRY: Duration = Duration::from_secs(3);
    /// Changes kept for components that start following later (a route change).
    const KEPT: usize = 200;

    impl Live {
        fn received(self, change: SaleChange) {
            self.changes.update(|changes| {
                changes.push_back(change);
                while changes.len() > KEPT {
                    changes.pop_front();
                }
            });
        }

        fn last_seq(self) -> Option<u64> {
            self.changes.with_untracked(|c| c.back().map(|c| c.seq))
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
    }

    pub fn connect(live: Live, signed_in: Signal<Option<u64>>, signed_out: Callback<()>) {
        let stream = Stream {
            live,
            signed_out,
            open: StoredValue::new_local(None),
            generation: StoredValue::new(0),
        };
        Effect::new(move |previous: Option<Option<u64>>| {
            let user = signed_in.get();
            if previous.as_ref() != Some(&user) {
                match user {
                    Some(_) => stream.open(None),
                    None => stream.close(),
                }
            }
            user
        });
        on_cleanup(move || stream.close());
    }

    fn data<T: serde::de::DeserializeOwned>(e: &MessageEvent) -> Option<T> {
        serde_json::from_str(&e.data().as_string()?).ok()
    }

    impl Stream {
        fn close(self) {
            self.generation.update_value(|g| *g += 1);
            self.open.set_value(None);
            self.live.connection.set(Connection::Off);
        }

        fn open(self, after: Option<u64>) {
            self.generation.update_value(|g| *g += 1);
            self.open.set_value(None);
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
                    if let Some(change) = data::<SaleChange>(&e) {
                        live.received(change);
                    }
                }),
            );
            listen(
                event::STATUS,
                Box::new(move |e| {
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
                    live.missed.update(|n| *n += 1);
                    // Starts afresh from now: resuming from the old position would be
                    // refused again. Deferred: reopening drops this listener.
                    set_timeout(move || self.open(None), Duration::ZERO);
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
                // Refused (signed out, or the server could not check the session):
                // the browser gives up, so the page tries again itself.
                live.connection.set(Connection::Offline);
                set_timeout(
                    move || {
                        if self.generation.get_value() == generation {
                            self.open(live.last_seq());
                        }
                    },
                    RETRY,
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
                Connection::Off => "",
            }}
        </span>
    }
}
