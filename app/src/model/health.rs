use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreHealth {
    pub up: bool,
    /// Round-trip time of the probe in milliseconds (also set when it failed).
    pub rtt_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Dual-write intents by state (see docs/dual-write.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentCounts {
    pub pending: u64,
    pub needs_repair: u64,
    pub failed_24h: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub status: String,
    pub version: String,
    pub mysql: StoreHealth,
    pub mongodb: StoreHealth,
    /// `None` while MySQL is down.
    pub intents: Option<IntentCounts>,
    pub checked_at: chrono::DateTime<chrono::Utc>,
}

impl HealthReport {
    pub fn all_up(&self) -> bool {
        self.mysql.up && self.mongodb.up
    }
}
