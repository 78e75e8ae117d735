//! Types shared by the WASM UI and the server.

pub mod account;
pub mod analytics;
pub mod error;
pub mod health;
pub mod history;
pub mod imports;
pub mod live;
pub mod passkey;
pub mod replication;
pub mod report;
pub mod role;
pub mod sale;
pub mod search;
pub mod string_enum;
pub mod time;
pub mod url;

pub use account::{
    AuditEntry, Email, NewAccount, NewPassword, PendingAddress, RecoveryCodes, RegistrationInput,
    SecondFactor, SessionSummary, SessionUser, TotpEnrolment, TwoFactorStatus, USERS_PAGE_SIZE,
    UserSummary, Username, UsersPage, safe_next,
};
pub use error::{AppError, AppResult, Database, FieldError};
pub use health::{HealthReport, IntentCounts, StoreHealth};
pub use history::{Actor, Change, HistoryEntry, HistoryOp, SaleHistory};
pub use passkey::{PasskeyChallenge, PasskeyName, PasskeySummary, Passkeys};
pub use replication::{ReplicationStatus, SyncReport, SyncStatus, SyncTrigger};
pub use role::{AccountStatus, Role};
pub use sale::{
    Age, Customer, Gender, Item, ItemInput, ItemName, Price, PurchaseMethod, Quantity, Sale,
    SaleDraft, SaleId, SaleInput, Satisfaction, StoreLocation, Tag,
};
