//! Sales: the MongoDB primary, the normalized MySQL backup, import and generation.

pub mod backup;
pub mod codec;
pub mod dual_write;
pub mod generate;
pub mod import;
pub mod primary;
