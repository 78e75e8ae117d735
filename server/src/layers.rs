//! The HTTP layer every response passes through: a request id, security headers, the
//! API's error answers, the cross-site request filter and the client address.

use app::model::AppError;
use app::server::client_ip::{self, ClientIp, ProxyNet};
use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

/// Bodies larger than this are refused (413) before anything reads them. A sale with
/// its 100 items is about 30 KB of JSON.
pub const BODY_LIMIT: usize = 256 * 1024;

/// The id of one request: in the logs of everything it did, in the `x-request-id`
/// response header, and the only thing an internal error tells the client.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = app::server::auth::tokens::random_hex(8);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Settings of the security-header layer.
#[derive(Debug, Clone, Copy)]
pub struct Headers {
    /// Served over HTTPS: browsers are told to keep to it (HSTS).
    pub https: bool,
}

const STATIC_PREFIX: &str = "/pkg/";

/// Headers for every response. Pages carry their own Content-Security-Policy with a
/// per-request nonce (`app::shell`); anything else gets one that allows nothing.
/// Nothing but the static bundle may be cached: pages and API answers carry personal
/// data.
pub async fn security_headers(
    State(settings): State<Headers>,
    request: Request,
    next: Next,
) -> Response {
    let cacheable = request.uri().path().starts_with(STATIC_PREFIX);
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let h = response.headers();
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html
        && !response.status().is_redirection()
        && !h.contains_key(header::CONTENT_SECURITY_POLICY)
    {
        // Every page's shell sets its own policy; a page without one cannot hydrate
        // under the policy below, so say which.
        tracing::warn!(%path, status = response.status().as_u16(), "a page without its Content-Security-Policy");
    }
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Pages whose URL carries a token (reset and confirmation links) must not hand it to
    // another site. `same-origin` sends nothing to other sites, and keeps the Referer on
    // the site's own requests, which forms posted without JavaScript need: their errors
    // are shown by redirecting back to the page they came from.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    if !cacheable {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if settings.https {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}

/// Every `/api/` failure answers as the app's own error, with its status: a request
/// whose arguments could not be decoded is 400 (server_fn answers 500, with the
/// decoder's text), an unknown endpoint 404, a body over the limit 413, and an internal
/// error 500 that names nothing but the request's id.
pub async fn api_errors(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        return response;
    }
    let from_server_fn = response
        .headers()
        .contains_key(leptos::server_fn::error::SERVER_FN_ERROR_HEADER);
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let error = match serde_json::from_slice::<AppError>(&bytes) {
        Ok(error) => error,
        Err(_) if from_server_fn => {
            tracing::error!(
                status = status.as_u16(),
                "a server function failed without an app error"
            );
            AppError::Internal
        }
        Err(_) => match status {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => {
                // server_fn answers an unknown path 400 with its own explanation.
                AppError::NotFound
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => {
                AppError::BadRequest
            }
            _ => AppError::Internal,
        },
    };
    let error = match error {
        AppError::Internal => AppError::Fault(id),
        other => other,
    };
    let code =
        StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    parts.status = code;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let AppError::Busy(secs) | AppError::Throttled(secs) = &error
        && let Ok(value) = HeaderValue::from_str(&secs.to_string())
    {
        parts.headers.insert(header::RETRY_AFTER, value);
    }
    let body = serde_json::to_vec(&error).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

/// Records who the client is (see `app::server::client_ip`) for the handlers below.
pub async fn client_ip(
    State(trusted): State<Arc<[ProxyNet]>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|ci| ci.0.ip());
    if let Some(peer) = peer {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let client = client_ip::resolve(peer, forwarded, &trusted);
        request.extensions_mut().insert(ClientIp(client));
    }
    next.run(request).await
}

/// The site's own origin as users reach it (`PUBLIC_URL`), accepted in `Origin`
/// besides the request's own host (which a proxy may rewrite).
#[derive(Debug, Clone)]
pub struct SiteOrigin(pub Arc<str>);

/// Refuses state-changing requests not shown to come from this site (CSRF): browsers
/// mark requests with `Sec-Fetch-Site`, and send `Origin` on every POST. A request with
/// neither is refused: no browser this site supports sends that.
pub async fn reject_cross_site(
    State(site): State<SiteOrigin>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && !same_site(request.headers(), &site.0) {
        tracing::warn!(path = %request.uri().path(), "cross-site request rejected");
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&AppError::Forbidden).unwrap_or_default(),
        )
            .into_response();
    }
    next.run(request).await
}

fn same_site(headers: &HeaderMap, site: &str) -> bool {
    if let Some(fetch_site) = headers.get("sec-fetch-site") {
        return matches!(fetch_site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    if origin == site {
        return true;
    }
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a == h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_requests_shown_to_come_from_the_site_pass() {
        let site = "https://portal.example.com";
        assert!(same_site(
            &headers(&[("sec-fetch-site", "same-origin")]),
            site
        ));
        assert!(!same_site(
            &headers(&[("sec-fetch-site", "same-site")]),
            site
        ));
        assert!(!same_site(
            &headers(&[("sec-fetch-site", "cross-site")]),
            site
        ));
        assert!(same_site(
            &headers(&[("origin", "https://portal.example.com")]),
            site
        ));
        assert!(same_site(
            &headers(&[
                ("origin", "http://127.0.0.1:3000"),
                ("host", "127.0.0.1:3000")
            ]),
            site
        ));
        assert!(!same_site(
            &headers(&[
                ("origin", "http://evil.example"),
                ("host", "127.0.0.1:3000")
            ]),
            site
        ));
        assert!(!same_site(
            &headers(&[("origin", "null"), ("host", "127.0.0.1:3000")]),
            site
        ));
        assert!(
            !same_site(&headers(&[("host", "127.0.0.1:3000")]), site),
            "neither header: refused"
        );
    }
}
