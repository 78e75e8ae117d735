//! Accounts, logins, sessions and their audit trail.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod closure;
pub mod devices;
pub mod guard;
pub mod passkeys;
pub mod password;
pub mod request;
pub mod second_factor;
pub mod secret_keys;
pub mod sessions;
pub mod throttle;
pub mod tokens;

pub use guard::Access;
pub use sessions::CurrentUser;
