//! The parts of an HTTP request the auth services need, read once per server function.

use crate::model::AppError;
use crate::server::db::truncate;
use leptos::prelude::*;
use tower_sessions::Session;

/// The parts of the HTTP request the auth services need.
pub struct RequestInfo {
    pub session: Session,
    pub ip: String,
    /// What per-client limits count: the address, or an IPv6 address's /64.
    pub client: String,
    pub user_agent: Option<String>,
    /// The browser's device cookie (`auth::devices`), if it sent one.
    pub device: Option<String>,
    /// The path asked for, for the audit log.
    pub path: String,
}

/// Read from the request synchronously (see `crate::server::respond`).
pub fn request_info(secure_cookies: bool) -> Result<RequestInfo, AppError> {
    let parts = use_context::<http::request::Parts>().ok_or_else(|| {
        tracing::error!("request parts missing from the context");
        AppError::Internal
    })?;
    from_parts(&parts, secure_cookies)
}

/// Read from a request's parts, for handlers outside Leptos (the live stream, exports).
pub fn from_parts(
    parts: &http::request::Parts,
    secure_cookies: bool,
) -> Result<RequestInfo, AppError> {
    let session = parts.extensions.get::<Session>().cloned().ok_or_else(|| {
        tracing::error!("session layer missing");
        AppError::Internal
    })?;
    let client_ip = parts
        .extensions
        .get::<crate::server::client_ip::ClientIp>()
        .copied();
    let ip = client_ip.map_or_else(|| "unknown".into(), |client| client.0.to_string());
    let client = client_ip.map_or_else(|| "unknown".into(), |client| client.limit_key());
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| truncate(s, 255));
    Ok(RequestInfo {
        session,
        ip,
        client,
        user_agent,
        device: super::devices::read(&parts.headers, secure_cookies),
        path: truncate(parts.uri.path(), 128),
    })
}
