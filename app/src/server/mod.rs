//! Server-only code: database access, services and request guards.
//! Compiled only with the `ssr` feature, so none of it reaches the WASM bundle.

pub mod db;
pub mod health;
pub mod state;

pub use state::AppState;
