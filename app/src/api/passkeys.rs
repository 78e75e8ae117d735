//! Passkeys: the signed-in user's own (list, add, remove), and signing in with one.
//!
//! Signing in is public by design: the authenticator's signature over a single-use
//! challenge is the credential. Adding and removing need a complete login, the current
//! password, and from accounts with an authenticator app a recent code from it.

use crate::model::{AppError, PasskeyChallenge, PasskeySummary, Passkeys, SessionUser};
#[cfg(feature = "ssr")]
use crate::server::{
    auth::{Access, passkeys},
    db::truncate,
    respond,
};
use leptos::prelude::*;

/// An authenticator's answer is a few hundred bytes to a few kilobytes of JSON.
#[cfg(feature = "ssr")]
const CREDENTIAL_MAX: usize = 64 * 1024;

#[cfg(feature = "ssr")]
fn bounded_credential(credential: &str) -> Result<&str, AppError> {
    if credential.len() > CREDENTIAL_MAX {
        return Err(AppError::TooLarge);
    }
    Ok(credential)
}

#[server(prefix = "/api", endpoint = "passkeys")]
pub async fn my_passkeys() -> Result<Passkeys, AppError> {
    respond(Access::AnyUser, |call, current| async move {
        passkeys::registration::list(&call.state, current.user.id).await
    })
    .await
}

/// Starts adding a passkey: the options for the browser, once the password (and a
/// recent second factor, `code`) are proved.
#[server(prefix = "/api", endpoint = "passkeys/begin")]
pub async fn begin_passkey(
    current_password: String,
    code: Option<String>,
) -> Result<PasskeyChallenge, AppError> {
    respond(Access::AnyUser, |call, current| async move {
        let code = code.as_deref().map(|c| truncate(c, 32));
        passkeys::registration::begin(
            &call.state,
            &call.info,
            &current,
            current_password,
            code.as_deref(),
        )
        .await
    })
    .await
}

/// Finishes adding a passkey with the authenticator's answer.
#[server(prefix = "/api", endpoint = "passkeys/finish")]
pub async fn finish_passkey(
    ceremony: String,
    name: String,
    credential: String,
) -> Result<PasskeySummary, AppError> {
    respond(Access::AnyUser, |call, current| async move {
        let name =
            crate::model::PasskeyName::parse(&name).map_err(|m| AppError::invalid("name", m))?;
        passkeys::registration::finish(
            &call.state,
            &call.info,
            &current,
            &truncate(&ceremony, 64),
            name,
            bounded_credential(&credential)?,
        )
        .await
    })
    .await
}

#[server(prefix = "/api", endpoint = "passkeys/remove")]
pub async fn remove_passkey(
    id: u64,
    current_password: String,
    code: Option<String>,
) -> Result<(), AppError> {
    respond(Access::AnyUser, |call, current| async move {
        let code = code.as_deref().map(|c| truncate(c, 32));
        passkeys::registration::remove(
            &call.state,
            &call.info,
            &current,
            id,
            current_password,
            code.as_deref(),
        )
        .await
    })
    .await
}

/// Starts signing in with a passkey: the options for the browser.
#[server(prefix = "/api", endpoint = "passkeys/sign-in/begin")]
pub async fn begin_passkey_sign_in() -> Result<PasskeyChallenge, AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        passkeys::sign_in::begin(&call.state, &call.info).await
    })
    .await
}

/// Finishes signing in with the authenticator's answer: a login with both factors.
#[server(prefix = "/api", endpoint = "passkeys/sign-in/finish")]
pub async fn finish_passkey_sign_in(
    ceremony: String,
    credential: String,
) -> Result<SessionUser, AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        let logged_in = passkeys::sign_in::finish(
            &call.state,
            &call.info,
            &truncate(&ceremony, 64),
            bounded_credential(&credential)?,
        )
        .await?;
        crate::server::set_cookie(&logged_in.device_cookie);
        Ok(logged_in.user)
    })
    .await
}
