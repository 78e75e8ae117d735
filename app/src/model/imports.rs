//! Importing a file of sales from the portal: the job a staff member starts by uploading
//! it, checked first and then run in the background on whichever instance claims it.

use super::string_enum::string_enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The largest file the portal takes (larger imports are for `server import`). Well
/// under MySQL's and MariaDB's default packet limits, since the file waits in MySQL
/// for whichever instance runs it.
pub const IMPORT_FILE_LIMIT: usize = 8 * 1024 * 1024;

/// Rejected records a job keeps the line and reason of (the count covers them all).
pub const REJECTIONS_KEPT: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    /// Uploaded and checked; waits for its importer to confirm.
    Checked,
    /// Confirmed; waits for an instance to claim it.
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

string_enum!(ImportState {
    Checked => "checked",
    Queued => "queued",
    Running => "running",
    Done => "done",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl ImportState {
    /// Still to finish: the page keeps following it.
    pub fn is_active(self) -> bool {
        matches!(self, ImportState::Queued | ImportState::Running)
    }

    pub fn label(self) -> &'static str {
        match self {
            ImportState::Checked => "Checked, not imported yet",
            ImportState::Queued => "Waiting to start",
            ImportState::Running => "Importing",
            ImportState::Done => "Imported",
            ImportState::Failed => "Stopped by an error",
            ImportState::Cancelled => "Cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRejection {
    /// "line 12" or "element 12".
    pub at: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportJob {
    pub id: u64,
    pub file_name: String,
    pub file_size: u64,
    pub state: ImportState,
    pub created_by: Option<String>,
    /// Valid sales in the file.
    pub valid: u64,
    /// Of those, how many the check found new, and already in the stores.
    pub new_sales: u64,
    pub present: u64,
    /// Records that are not valid sales; the first `REJECTIONS_KEPT` are listed.
    pub rejected: u64,
    pub rejections: Vec<ImportRejection>,
    /// Valid sales written or found present by the current run.
    pub processed: u64,
    pub inserted: u64,
    pub skipped: u64,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ImportJob {
    /// Nothing stands in the way of importing: checked, and every record valid.
    pub fn can_start(&self) -> bool {
        self.state == ImportState::Checked && self.rejected == 0 && self.valid > 0
    }

    /// Share of the valid sales processed, 0..=100.
    pub fn percent(&self) -> u64 {
        (self.processed * 100)
            .checked_div(self.valid)
            .unwrap_or(100)
            .min(100)
    }

    /// Sales processed per second since the run started, as of `now`.
    pub fn rate(&self, now: DateTime<Utc>) -> Option<f64> {
        let started = self.started_at?;
        let secs = (now - started).num_milliseconds() as f64 / 1000.0;
        (secs > 0.5 && self.processed > 0).then(|| self.processed as f64 / secs)
    }

    /// Seconds left at the current rate.
    pub fn seconds_left(&self, now: DateTime<Utc>) -> Option<u64> {
        let rate = self.rate(now)?;
        Some((self.valid.saturating_sub(self.processed) as f64 / rate).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> ImportJob {
        let t: DateTime<Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
        ImportJob {
            id: 1,
            file_name: "sales.json".into(),
            file_size: 10,
            state: ImportState::Running,
            created_by: None,
            valid: 1000,
            new_sales: 1000,
            present: 0,
            rejected: 0,
            rejections: Vec::new(),
            processed: 250,
            inserted: 250,
            skipped: 0,
            cancel_requested: false,
            error: None,
            created_at: t,
            started_at: Some(t),
            updated_at: t,
            finished_at: None,
        }
    }

    #[test]
    fn progress_rate_and_time_left() {
        let j = job();
        let now = j.started_at.unwrap() + chrono::Duration::seconds(5);
        assert_eq!(j.percent(), 25);
        assert_eq!(j.rate(now), Some(50.0));
        assert_eq!(j.seconds_left(now), Some(15));
        let empty = ImportJob { valid: 0, ..job() };
        assert_eq!(empty.percent(), 100);
        assert!(!empty.can_start());
    }

    #[test]
    fn a_file_with_rejections_cannot_start() {
        let checked = ImportJob {
            state: ImportState::Checked,
            ..job()
        };
        assert!(checked.can_start());
        assert!(
            !ImportJob {
                rejected: 1,
                ..checked.clone()
            }
            .can_start()
        );
        assert!(
            !ImportJob {
                state: ImportState::Done,
                ..checked
            }
            .can_start()
        );
    }
}
