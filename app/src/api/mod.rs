//! Server functions: the app's HTTP API under `/api/`.
//!
//! Each one is thin: check the session and role, parse input into domain types,
//! call a service, map the error (`respond` sets the HTTP status from it).

pub mod admin;
pub mod auth;
pub mod health;
pub mod imports;
pub mod passkeys;
pub mod replication;
pub mod sales;

pub use health::service_health;
