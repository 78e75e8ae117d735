//! Types shared by the WASM UI and the server.

pub mod account;
pub mod error;
pub mod health;
pub mod role;

pub use account::{
    AuditEntry, Email, NewAccount, NewPassword, RegistrationInput, SessionSummary, SessionUser,
    UserSummary, Username, safe_next,
};
pub use error::{AppError, AppResult, FieldError, Store};
pub use health::{HealthReport, StoreHealth};
pub use role::{AccountStatus, Role};
