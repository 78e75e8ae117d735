//! What the replication panel shows: the dual-write journal and reconciliation runs.

use super::IntentCounts;
use super::string_enum::string_enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What started a reconciliation run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncTrigger {
    Cli,
    Schedule,
    Manual,
}

string_enum!(SyncTrigger {
    Cli => "cli",
    Schedule => "schedule",
    Manual => "manual",
});

impl SyncTrigger {
    pub fn label(self) -> &'static str {
        match self {
            SyncTrigger::Cli => "command line",
            SyncTrigger::Schedule => "periodic job",
            SyncTrigger::Manual => "Run sync button",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Running,
    Completed,
    Failed,
    /// The process stopped mid-run; the next run starts over.
    Interrupted,
}

string_enum!(SyncStatus {
    Running => "running",
    Completed => "completed",
    Failed => "failed",
    Interrupted => "interrupted",
});

/// One reconciliation run: MongoDB (the truth) compared with the MySQL backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub id: u64,
    pub trigger: SyncTrigger,
    pub started_by: Option<String>,
    pub dry_run: bool,
    pub status: SyncStatus,
    /// Documents in MongoDB when the run started (for progress).
    pub expected: u64,
    pub scanned: u64,
    /// Sales missing from MySQL.
    pub created: u64,
    /// Sales that differ.
    pub updated: u64,
    /// Rows in MySQL without a sale in MongoDB.
    pub deleted: u64,
    /// Differences left for the next run: the sale was edited during this one.
    pub skipped: u64,
    /// MongoDB documents that are not valid sales (left alone, logged).
    pub invalid: u64,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl SyncReport {
    /// Differences found (repaired too, unless this was a dry run).
    pub fn drift(&self) -> u64 {
        self.created + self.updated + self.deleted
    }

    pub fn duration_ms(&self) -> Option<i64> {
        self.finished_at
            .map(|end| (end - self.started_at).num_milliseconds())
    }
}

/// The replication panel's data, for technical workers and senior managers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    pub intents: IntentCounts,
    /// The run in progress, if any.
    pub running: Option<SyncReport>,
    /// The latest run that finished (completed, failed or interrupted).
    pub last: Option<SyncReport>,
    /// Differences between the stores as of the latest completed run: what a dry run
    /// found, or what a repairing run left for the next one (edited meanwhile).
    pub drift: Option<u64>,
    /// The MongoDB deployment as detected (`None` while MongoDB has not answered).
    pub deployment: Option<String>,
}
