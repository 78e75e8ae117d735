//! Server-only code: database access, services and request guards.
//! Compiled only with the `ssr` feature, so none of it reaches the WASM bundle.

pub mod auth;
pub mod client_ip;
pub mod db;
pub mod demo;
pub mod extract;
pub mod health;
pub mod imports;
pub mod jobs;
pub mod limits;
pub mod live;
pub mod mail;
pub mod sales;
pub mod state;

pub use state::{AppState, AuthSettings, app_state};

/// What a server function's body gets from its request. `respond` reads it from the
/// context before the body starts: a server function called during a page render can be
/// polled after the render has left the request's context, so nothing may be read from
/// it after the first `.await`.
pub struct Call {
    pub state: AppState,
    pub info: auth::request::RequestInfo,
}

/// An access level a server function names first, in `respond`: checked before its
/// body runs, and what the body is given about its caller.
pub trait Gate {
    /// The signed-in user for `Access`, nothing for `Access::PUBLIC`.
    type Caller;
    fn admit(
        self,
        call: &Call,
        activity: auth::sessions::Activity,
    ) -> impl std::future::Future<Output = Result<Self::Caller, crate::model::AppError>> + Send;
}

impl Gate for auth::Access {
    type Caller = auth::CurrentUser;
    /// Checks the session and the role (see `auth::guard::require`).
    async fn admit(
        self,
        call: &Call,
        activity: auth::sessions::Activity,
    ) -> Result<auth::CurrentUser, crate::model::AppError> {
        auth::guard::require(&call.state, &call.info, self, activity).await
    }
}

impl Gate for auth::guard::Public {
    type Caller = ();
    async fn admit(
        self,
        _: &Call,
        _: auth::sessions::Activity,
    ) -> Result<(), crate::model::AppError> {
        Ok(())
    }
}

/// Every server function is this: the access level, then the body, which runs only if
/// the caller passes and gets its `Call` and the caller (`respond(Access::STAFF,
/// |call, user| …)`). A failure's HTTP status is set from its error, so clients and
/// tests see 401/403/400/429/503 rather than a blanket 500.
pub async fn respond<G: Gate, T, Body>(
    gate: G,
    body: impl FnOnce(Call, G::Caller) -> Body,
) -> Result<T, crate::model::AppError>
where
    Body: std::future::Future<Output = Result<T, crate::model::AppError>>,
{
    respond_as(auth::sessions::Activity::User, gate, body).await
}

/// `respond` for a call the page makes by itself (a refresh after a change elsewhere):
/// `Activity::Background` does not keep the login from idling out. The client says
/// which it is; saying "background" can only give up keeping its own session alive.
pub async fn respond_as<G: Gate, T, Body>(
    activity: auth::sessions::Activity,
    gate: G,
    body: impl FnOnce(Call, G::Caller) -> Body,
) -> Result<T, crate::model::AppError>
where
    Body: std::future::Future<Output = Result<T, crate::model::AppError>>,
{
    let options = leptos::prelude::use_context::<leptos_axum::ResponseOptions>();
    // A form posted without JavaScript is answered with a redirect back to its page,
    // the error in the URL for the form to show; an error status would override it.
    let redirects = is_plain_form_post();
    let result = async {
        let state = app_state()?;
        let info = auth::request::request_info(state.auth.cookie_secure)?;
        let call = Call { state, info };
        let caller = gate.admit(&call, activity).await?;
        body(call, caller).await
    }
    .await;
    if let Err(e) = &result
        && !redirects
        && let Some(options) = options
        && let Ok(code) = http::StatusCode::from_u16(e.status_code())
    {
        options.set_status(code);
    }
    result
}

/// An error as the API answers it, for handlers outside Leptos: its status, and the
/// error as JSON (`http::api_errors` turns an internal one into a request id).
pub fn error_response(e: crate::model::AppError) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = http::StatusCode::from_u16(e.status_code())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(e)).into_response()
}

/// Adds a `Set-Cookie` header to the server function's response.
pub fn set_cookie(value: &str) {
    if let (Some(options), Ok(value)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(value),
    ) {
        options.append_header(http::header::SET_COOKIE, value);
    }
}

/// Tells the browser to drop what it cached and stored for the site (at logout).
/// Cookies are not cleared: the device cookie keeps the browser trusted.
pub fn clear_site_data() {
    if let Some(options) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        options.insert_header(
            http::HeaderName::from_static("clear-site-data"),
            http::HeaderValue::from_static("\"cache\", \"storage\""),
        );
    }
}

/// Redirects a form that was posted without JavaScript (the browser asked for HTML).
/// Hydrated forms navigate on the client once the result is in, so the UI state is
/// updated before the next page renders.
pub fn redirect_plain_form(path: &str) {
    if is_plain_form_post() {
        leptos_axum::redirect(path);
    }
}

/// True while serving a server function's own endpoint for a browser form posted
/// without JavaScript (it asks for HTML). A page render calling a server function
/// asks for HTML too, but its path is the page's, not the API's.
fn is_plain_form_post() -> bool {
    leptos::prelude::use_context::<http::request::Parts>().is_some_and(|parts| {
        parts.method == http::Method::POST
            && parts.uri.path().starts_with("/api/")
            && parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
    })
}
