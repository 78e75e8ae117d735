//! What the live stream (`/api/events`) tells a page: sales changed anywhere, whether
//! the feed behind it is following, and the replication journal's pulse. Shared by
//! the server, which sends these as Server-Sent Events, and the WASM UI.

use super::SaleId;
use super::report::SaleRow;
use super::string_enum::string_enum;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The SSE event names.
pub mod event {
    /// A `SaleChange`, with its feed position as the event id.
    pub const CHANGE: &str = "change";
    /// A `FeedStatus`.
    pub const STATUS: &str = "status";
    /// A `Pulse` (staff only).
    pub const PULSE: &str = "pulse";
    /// The page missed changes it cannot be sent any more: it should load afresh.
    pub const RELOAD: &str = "reload";
    /// The stream's login has ended (logout, revoked, timed out): the stream closes.
    pub const SIGNED_OUT: &str = "signed_out";
    /// The stream carried nothing for `LIVE_IDLE_SECS`: it closes, and the page opens it
    /// again from the event's id once its user is back (a click, a key, the tab's
    /// focus), so an open tab nobody looks at holds no connection.
    pub const IDLE: &str = "idle";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
    /// Many sales at once (an import batch, a large repair): reload what is shown.
    Bulk,
}

string_enum!(ChangeKind {
    Created => "created",
    Updated => "updated",
    Deleted => "deleted",
    Bulk => "bulk",
});

/// One committed change to the sales, in commit order (`seq`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleChange {
    pub seq: u64,
    pub kind: ChangeKind,
    /// Sales the change covers: 1, or a bulk change's count.
    pub sales: u32,
    pub sale_id: Option<SaleId>,
    /// The sale as the sales table now lists it (created and updated).
    pub row: Option<SaleRow>,
    /// The sale's date after the change and before it, where there is one.
    pub days: Vec<NaiveDate>,
}

impl SaleChange {
    /// The version the sale has now (`None` once deleted, or for a bulk change).
    pub fn version(&self) -> Option<u64> {
        self.row.as_ref().map(|r| r.version)
    }

    /// Whether the change may move figures for sales dated `from..=to` (either end
    /// open). A bulk change may touch any date.
    pub fn touches(&self, from: Option<NaiveDate>, to: Option<NaiveDate>) -> bool {
        self.kind == ChangeKind::Bulk
            || self
                .days
                .iter()
                .any(|d| from.is_none_or(|f| *d >= f) && to.is_none_or(|t| *d <= t))
    }
}

/// Whether the instance serving the stream is following the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedStatus {
    Live,
    /// MySQL does not answer: changes made meanwhile arrive once it is back.
    Offline,
}

/// The dual-write journal at a glance, sent to staff whenever it moves: edits in
/// flight or needing repair, and the newest sync run's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pulse {
    pub open_intents: u64,
    pub sync_run: Option<u64>,
    pub sync_scanned: u64,
    pub sync_running: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, days: &[&str]) -> SaleChange {
        SaleChange {
            seq: 1,
            kind,
            sales: 1,
            sale_id: None,
            row: None,
            days: days.iter().map(|d| d.parse().expect("a date")).collect(),
        }
    }

    #[test]
    fn a_change_touches_a_range_through_its_new_or_its_old_date() {
        let d = |s: &str| Some(s.parse::<NaiveDate>().expect("a date"));
        let moved = change(ChangeKind::Updated, &["2015-01-10", "2015-03-01"]);
        assert!(
            moved.touches(d("2015-03-01"), d("2015-03-31")),
            "old date in range"
        );
        assert!(
            moved.touches(d("2015-01-01"), d("2015-01-31")),
            "new date in range"
        );
        assert!(!moved.touches(d("2015-02-01"), d("2015-02-28")));
        assert!(moved.touches(None, None), "all time");
        assert!(moved.touches(None, d("2015-01-10")), "the end is inclusive");
        assert!(!moved.touches(d("2015-03-02"), None));
        assert!(change(ChangeKind::Bulk, &[]).touches(d("2000-01-01"), d("2000-01-01")));
    }
}
