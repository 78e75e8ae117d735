//! The single error type every server function returns.
//!
//! It crosses the wire as JSON, so the UI can tell "log in first" from "not allowed"
//! from "fix these fields". Internal details never go into it: the server logs them
//! and sends `Internal` or `Unavailable` instead.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// A field-level validation message, shown next to the input it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Which database an `Unavailable` error is about (a "store" in this business is a shop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Database {
    /// MySQL, for accounts and sessions.
    MySql,
    /// MySQL, for the sales backup the reports read.
    Reporting,
    MongoDb,
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Database::MySql => "The account database",
            Database::Reporting => "The reporting database",
            Database::MongoDb => "The sales database",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Please log in to continue.")]
    Unauthorized,
    #[error("You do not have access to this page or action.")]
    Forbidden,
    #[error("Please correct the highlighted fields.")]
    Invalid(Vec<FieldError>),
    #[error("Invalid username or password")]
    InvalidCredentials,
    #[error("Too many attempts, try again in {0} s")]
    Throttled(u64),
    #[error("{0}")]
    Conflict(String),
    #[error("Not found.")]
    NotFound,
    #[error("{0} is unavailable right now. Please try again shortly.")]
    Unavailable(Database),
    /// A sales edit reached MongoDB but not the MySQL backup, and was undone (or will
    /// be, by the repair worker, when `repair_pending`).
    #[error("{}", not_saved_message(*repair_pending))]
    NotSaved { repair_pending: bool },
    /// The backup's commit may or may not have landed (MySQL stopped answering during
    /// it). Recovery settles it: the edit is either kept in both stores or undone.
    #[error(
        "The change could not be confirmed because the backup database stopped answering. It is either kept or undone automatically within a minute; reload before trying again."
    )]
    Unconfirmed,
    /// MySQL rolled the transaction back to break a lock cycle with another writer, so
    /// nothing of it was kept. The server runs such a transaction again whole
    /// (`server::db::retry_contended`) before anyone sees this.
    #[error(
        "Other changes were being saved at the same moment, so this one was not. Nothing was changed; please try again."
    )]
    Contended,
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// An internal error as the client sees it: nothing but the request's reference,
    /// under which the server logged what happened.
    #[error(
        "Something went wrong on our side. Please try again; if it keeps happening, quote reference {0}."
    )]
    Fault(String),
    /// The request could not be sent or its answer not received (a network failure).
    #[error("The request could not be completed: {0}")]
    Request(String),
    /// The request's arguments could not be decoded: a missing field, a wrong type,
    /// malformed JSON or form data, an unknown encoding.
    #[error("The request could not be read. Reload the page and try again.")]
    BadRequest,
    #[error("The request is too large.")]
    TooLarge,
    /// Costly work (password hashing) is queued to its limit; try again after the delay.
    #[error("The server is busy. Please try again in {0} s.")]
    Busy(u64),
    #[error(
        "Confirm your email address first: use the link we sent you, or ask for a new one on your profile page."
    )]
    EmailUnverified,
    /// Logged in with the password, not yet with the second factor.
    #[error("Enter the code from your authenticator app to finish logging in.")]
    SecondStepRequired,
    /// A staff account without a second factor: it must set one up first.
    #[error("Set up two-factor authentication on your profile page to use this area.")]
    SecondFactorRequired,
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid(vec![FieldError::new(field, message)])
    }

    /// The message for one field, if this is a validation error that names it.
    pub fn field_message(&self, field: &str) -> Option<String> {
        match self {
            AppError::Invalid(errors) => errors
                .iter()
                .find(|e| e.field == field)
                .map(|e| e.message.clone()),
            _ => None,
        }
    }

    /// HTTP status used when this error leaves a server function.
    pub fn status_code(&self) -> u16 {
        match self {
            AppError::Unauthorized
            | AppError::InvalidCredentials
            | AppError::SecondStepRequired => 401,
            AppError::Forbidden | AppError::EmailUnverified | AppError::SecondFactorRequired => 403,
            AppError::Invalid(_) | AppError::Request(_) | AppError::BadRequest => 400,
            AppError::TooLarge => 413,
            AppError::Throttled(_) => 429,
            AppError::Conflict(_) => 409,
            AppError::NotFound => 404,
            AppError::Unavailable(_)
            | AppError::NotSaved { .. }
            | AppError::Unconfirmed
            | AppError::Contended
            | AppError::Busy(_) => 503,
            AppError::Internal | AppError::Fault(_) => 500,
        }
    }
}

fn not_saved_message(repair_pending: bool) -> &'static str {
    if repair_pending {
        "The change was not saved: a database failed in the middle of it, and undoing the partial change is still pending. It is repaired automatically; please try again later."
    } else {
        "The change was not saved because the backup database failed. Nothing was changed; please try again."
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// Never the decoder's own text: it names fields and echoes input, and a malformed
    /// request is the client's fault (400), not the server's.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Reaching the server failed: on the client this is a network problem.
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => {
                AppError::Request("the server could not be reached".into())
            }
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::Deserialization(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::UnsupportedRequestMethod(_) => AppError::BadRequest,
            ServerFnErrorErr::Registration(_) => AppError::NotFound,
            _ => AppError::Internal,
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
