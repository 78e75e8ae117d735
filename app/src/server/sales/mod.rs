//! Sales: the MongoDB primary, the normalized MySQL backup, dual writes, reconciliation,
//! import and generation.

pub mod analytics;
pub mod backup;
pub mod changes;
pub mod codec;
pub mod dual_write;
pub mod export;
pub mod generate;
pub mod history;
pub mod import;
pub mod list;
pub mod primary;
pub mod queries;
pub mod rollups;
pub mod sync;
