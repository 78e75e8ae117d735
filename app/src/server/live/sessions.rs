//! The logins behind this instance's open streams. A stream is authenticated when it
//! opens; after that, one query every few seconds (whatever the number of streams)
//! checks their sessions in MySQL, and the stream of a login that has ended (logout,
//! "log out everywhere", a disabled account, an idle or absolute timeout) or whose
//! user changed (role, address) is told so and closed at once, instead of carrying
//! sales until it next reconnects.
//!
//! The registry also bounds the streams one user holds open on this instance: a
//! resource limit of this process, like its connection pool, not a guarantee.

use crate::model::{AccountStatus, AppError, Role, SessionUser};
use crate::server::AuthSettings;
use crate::server::auth::sessions::expired;
use crate::server::db::Context;
use chrono::NaiveDateTime;
use sqlx::{MySql, QueryBuilder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Streams one user may hold open on one instance (tabs, windows).
const PER_USER: usize = 16;
/// Streams one client (an address, or an IPv6 /64) may hold open on one instance,
/// whatever accounts it uses: self-registered accounts cost nothing to make.
const PER_CLIENT: usize = 32;
/// Streams one instance holds open in all: each is a connection and a task.
const PER_INSTANCE: usize = 4096;
/// How often the open streams' sessions are checked.
const SWEEP: Duration = Duration::from_secs(5);

pub(super) struct Registry {
    open: Mutex<HashMap<String, Holder>>,
    ended: broadcast::Sender<Arc<str>>,
}

struct Holder {
    user_id: u64,
    client: String,
    who: Who,
    streams: usize,
}

/// What decided what a stream may carry: a change to any of it ends the stream, which
/// the browser reopens with what is true now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Who {
    role: Role,
    email: String,
    verified: bool,
}

impl Who {
    fn of(user: &SessionUser) -> Self {
        Who {
            role: user.role,
            email: user.email.clone(),
            verified: user.email_verified,
        }
    }
}

/// One open stream's place in the registry, given up when the stream ends.
pub(super) struct Ticket {
    registry: Arc<Registry>,
    pub(super) key: Arc<str>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        if let Some(holder) = open.get_mut(&*self.key) {
            holder.streams -= 1;
            if holder.streams == 0 {
                open.remove(&*self.key);
            }
        }
    }
}

impl Registry {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Registry {
            open: Mutex::default(),
            ended: broadcast::channel(256).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Holder>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a stream of this login, unless its user or its client holds too many
    /// already, or the instance does.
    pub(super) fn admit(
        self: &Arc<Self>,
        user: &SessionUser,
        key: &str,
        client: &str,
    ) -> Result<Ticket, AppError> {
        let mut open = self.lock();
        let held = |mine: &dyn Fn(&Holder) -> bool| -> usize {
            open.values().filter(|h| mine(h)).map(|h| h.streams).sum()
        };
        if held(&|h| h.user_id == user.id) >= PER_USER
            || held(&|h| h.client == client) >= PER_CLIENT
            || held(&|_| true) >= PER_INSTANCE
        {
            return Err(AppError::Throttled(30));
        }
        open.entry(key.to_string())
            .or_insert(Holder {
                user_id: user.id,
                client: client.to_string(),
                who: Who::of(user),
                streams: 0,
            })
            .streams += 1;
        Ok(Ticket {
            registry: self.clone(),
            key: key.into(),
        })
    }

    /// Session keys whose login has ended, as the sweeps find them.
    pub(super) fn ended(&self) -> broadcast::Receiver<Arc<str>> {
        self.ended.subscribe()
    }

    /// Checks every open stream's session in one query; announces those that ended.
    async fn sweep(&self, pool: &sqlx::MySqlPool, auth: &AuthSettings) -> Result<(), AppError> {
        let held: HashMap<String, Who> = self
            .lock()
            .iter()
            .map(|(key, h)| (key.clone(), h.who.clone()))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        #[derive(sqlx::FromRow)]
        struct Login {
            id: String,
            role: Role,
            status: AccountStatus,
            email: String,
            verified: bool,
            created_at: NaiveDateTime,
            last_seen_at: NaiveDateTime,
        }
        let keys: Vec<&String> = held.keys().collect();
        let mut still = HashMap::new();
        for chunk in keys.chunks(1000) {
            let mut q = QueryBuilder::<MySql>::new(
                "SELECT s.id, u.role, u.status, u.email, u.email_verified_at IS NOT NULL AS verified, \
                 s.created_at, s.last_seen_at FROM user_sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id IN (",
            );
            let mut list = q.separated(", ");
            for key in chunk {
                list.push_bind(key.as_str());
            }
            q.push(")");
            let logins: Vec<Login> = q
                .build_query_as()
                .fetch_all(pool)
                .await
                .context("check the live streams' sessions")?;
            still.extend(logins.into_iter().map(|l| (l.id.clone(), l)));
        }
        let now = chrono::Utc::now().naive_utc();
        for (key, who) in &held {
            let valid = still.get(key).is_some_and(|l| {
                l.status == AccountStatus::Active
                    && *who
                        == Who {
                            role: l.role,
                            email: l.email.clone(),
                            verified: l.verified,
                        }
                    && !expired(auth, l.created_at, l.last_seen_at, now)
            });
            if !valid {
                let _ = self.ended.send(key.as_str().into());
            }
        }
        Ok(())
    }

    /// Sweeps every few seconds for as long as the process runs.
    pub(super) fn spawn_sweeper(self: &Arc<Self>, pool: sqlx::MySqlPool, auth: AuthSettings) {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // MySQL down: the streams are told they are offline by the follower,
                // and are checked again once it answers.
                if let Err(e) = registry.sweep(&pool, &auth).await {
                    tracing::debug!(error = %e, "live streams' sessions not checked");
                }
            }
        });
    }
}
