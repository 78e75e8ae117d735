//! Login, registration and the signed-in user's own account.
//!
//! `me`, `login`, `register` and `reset_password` are public by design (the reset
//! token is its own credential); every other function here needs a login.

use crate::model::{AppError, SessionSummary, SessionUser};
#[cfg(feature = "ssr")]
use crate::server::{
    auth::{Access, accounts, guard, sessions},
    redirect_plain_form, respond,
};
use leptos::prelude::*;

/// The signed-in user, or `None` when anonymous. Drives navigation and route guards.
#[server(prefix = "/api", endpoint = "me")]
pub async fn me() -> Result<Option<SessionUser>, AppError> {
    respond(|call| async move {
        Ok(guard::authenticate(&call.state, &call.info.session)
            .await?
            .map(|c| c.user))
    })
    .await
}

#[server(prefix = "/api", endpoint = "login")]
pub async fn login(
    username: String,
    password: String,
    next: Option<String>,
) -> Result<SessionUser, AppError> {
    respond(|call| async move {
        let user = accounts::login(&call.state, &call.info, &username, password).await?;
        let target =
            crate::model::safe_next(next.as_deref()).unwrap_or_else(|| user.home().to_string());
        redirect_plain_form(&target);
        Ok(user)
    })
    .await
}

#[server(prefix = "/api", endpoint = "register")]
pub async fn register(
    username: String,
    email: String,
    password: String,
    confirm_password: String,
    role: String,
) -> Result<SessionUser, AppError> {
    respond(|call| async move {
        let input = crate::model::RegistrationInput {
            username,
            email,
            password,
            confirm_password,
            role,
        };
        let account = input.parse().map_err(AppError::Invalid)?;
        let user = accounts::register(&call.state, &call.info, account).await?;
        redirect_plain_form(user.home());
        Ok(user)
    })
    .await
}

#[server(prefix = "/api", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    respond(|call| async move {
        let current = call.require(Access::AnyUser).await?;
        accounts::logout(&call.state, &call.info, &current).await?;
        redirect_plain_form("/login");
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "sessions")]
pub async fn my_sessions() -> Result<Vec<SessionSummary>, AppError> {
    respond(|call| async move {
        let current = call.require(Access::AnyUser).await?;
        sessions::list(&call.state.mysql, current.user.id, &current.session_key).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "sessions/revoke")]
pub async fn revoke_session(handle: String) -> Result<(), AppError> {
    respond(|call| async move {
        let current = call.require(Access::AnyUser).await?;
        if sessions::revoke(&call.state.mysql, current.user.id, handle.trim()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    })
    .await
}

/// Ends every session of the user, this one included.
#[server(prefix = "/api", endpoint = "sessions/revoke-all")]
pub async fn logout_everywhere() -> Result<(), AppError> {
    respond(|call| async move {
        let current = call.require(Access::AnyUser).await?;
        accounts::logout_everywhere(&call.state, &call.info, &current).await?;
        redirect_plain_form("/login");
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "password/change")]
pub async fn change_password(
    current_password: String,
    new_password: String,
    confirm_password: String,
) -> Result<(), AppError> {
    respond(|call| async move {
        let current = call.require(Access::AnyUser).await?;
        accounts::change_password(
            &call.state,
            &call.info,
            &current,
            current_password,
            &new_password,
            &confirm_password,
        )
        .await
    })
    .await
}

#[server(prefix = "/api", endpoint = "password/reset")]
pub async fn reset_password(
    token: String,
    new_password: String,
    confirm_password: String,
) -> Result<(), AppError> {
    respond(|call| async move {
        accounts::reset_password(
            &call.state,
            &call.info,
            &token,
            &new_password,
            &confirm_password,
        )
        .await?;
        redirect_plain_form("/login?reset=done");
        Ok(())
    })
    .await
}
