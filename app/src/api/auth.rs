//! Login, registration and the signed-in user's own account.
//!
//! `me`, `login`, `register`, `forgot_password`, `reset_password` and `verify_email`
//! are public by design (the link tokens are their own credentials); `logout` and the
//! login's second step need a login that has checked its password; every other function
//! here needs a complete login.

use crate::model::{
    AppError, RecoveryCodes, SecondFactor, SessionSummary, SessionUser, TotpEnrolment,
    TwoFactorStatus,
};
#[cfg(feature = "ssr")]
use crate::server::{
    auth::{Access, accounts, closure, second_factor, sessions},
    db::truncate,
    redirect_plain_form, respond,
};
use leptos::prelude::*;

/// The signed-in user, or `None` when anonymous. Drives navigation and route guards.
#[server(prefix = "/api", endpoint = "me")]
pub async fn me() -> Result<Option<SessionUser>, AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        Ok(
            sessions::authenticate(&call.state, &call.info.session, sessions::Activity::User)
                .await?
                .map(|c| c.user),
        )
    })
    .await
}

#[server(prefix = "/api", endpoint = "login")]
pub async fn login(
    username: String,
    password: String,
    next: Option<String>,
) -> Result<SessionUser, AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        let logged_in = accounts::login(&call.state, &call.info, &username, password).await?;
        crate::server::set_cookie(&logged_in.device_cookie);
        let user = logged_in.user;
        redirect_plain_form(&after_login(&user, next.as_deref()));
        Ok(user)
    })
    .await
}

/// Where a login continues: the second step if it needs one (carrying `next` along),
/// else `next` if it is a local path, else the user's dashboard.
pub fn after_login(user: &SessionUser, next: Option<&str>) -> String {
    let next = crate::model::safe_next(next);
    match (user.second_factor, next) {
        (SecondFactor::Pending, Some(next)) => format!(
            "{}?next={}",
            crate::model::account::SECOND_STEP_PAGE,
            crate::model::url::query_value(&next)
        ),
        (SecondFactor::Pending, None) => crate::model::account::SECOND_STEP_PAGE.to_string(),
        (_, Some(next)) => next,
        (_, None) => user.home().to_string(),
    }
}

/// The second step of a login: a code from the authenticator app, or a recovery code.
#[server(prefix = "/api", endpoint = "login/second-step")]
pub async fn second_step(code: String, next: Option<String>) -> Result<SessionUser, AppError> {
    respond(Access::Session, |call, current| async move {
        if current.user.second_factor == SecondFactor::Pending {
            let code = truncate(&code, 32);
            second_factor::second_step(&call.state, &call.info, &current, &code).await?;
        }
        let user = SessionUser {
            second_factor: SecondFactor::Passed,
            ..current.user
        };
        redirect_plain_form(&after_login(&user, next.as_deref()));
        Ok(user)
    })
    .await
}

/// The signed-in user's second factor: on or off, required or not, codes left.
#[server(prefix = "/api", endpoint = "two-factor")]
pub async fn my_two_factor() -> Result<TwoFactorStatus, AppError> {
    respond(Access::AnyUser, |call, current| async move {
        second_factor::status(&call.state.mysql, &current).await
    })
    .await
}

/// Starts setting up the second factor: a new secret and its QR code.
#[server(prefix = "/api", endpoint = "two-factor/begin")]
pub async fn begin_two_factor() -> Result<TotpEnrolment, AppError> {
    respond(Access::AnyUser, |call, current| async move {
        second_factor::begin(&call.state, &current).await
    })
    .await
}

/// Finishes setting up with a code from the app and the code mailed to the address on
/// file; answers the recovery codes, once.
#[server(prefix = "/api", endpoint = "two-factor/confirm")]
pub async fn confirm_two_factor(
    code: String,
    mailed_code: String,
) -> Result<RecoveryCodes, AppError> {
    respond(Access::AnyUser, |call, current| async move {
        let code = truncate(&code, 32);
        let mailed_code = truncate(&mailed_code, 32);
        second_factor::confirm(&call.state, &call.info, &current, &code, &mailed_code).await
    })
    .await
}

/// New recovery codes (the old ones stop working), after the current password and a
/// recent proof of the second factor (`code`, unless the login proved it lately).
#[server(prefix = "/api", endpoint = "two-factor/recovery-codes")]
pub async fn new_recovery_codes(
    current_password: String,
    code: Option<String>,
) -> Result<RecoveryCodes, AppError> {
    respond(Access::AnyUser, |call, current| async move {
        let code = code.as_deref().map(|c| truncate(c, 32));
        accounts::new_recovery_codes(
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

/// Turns the second factor off, for customers who opted in: after the current password
/// and a recent proof of the factor itself.
#[server(prefix = "/api", endpoint = "two-factor/disable")]
pub async fn disable_two_factor(
    current_password: String,
    code: Option<String>,
) -> Result<(), AppError> {
    respond(Access::AnyUser, |call, current| async move {
        let code = code.as_deref().map(|c| truncate(c, 32));
        accounts::disable_second_factor(
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

#[server(prefix = "/api", endpoint = "register")]
pub async fn register(
    username: String,
    email: String,
    password: String,
    confirm_password: String,
    role: String,
) -> Result<(), AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        let input = crate::model::RegistrationInput {
            username,
            email,
            password,
            confirm_password,
            role,
        };
        let account = input.parse().map_err(AppError::Invalid)?;
        accounts::register(&call.state, &call.info, account).await?;
        redirect_plain_form("/register?sent=1");
        Ok(())
    })
    .await
}

/// Confirms an email address with the token from the link mailed to it. A POST (from
/// the confirmation page's button), so a mail scanner fetching the link confirms nothing.
#[server(prefix = "/api", endpoint = "email/verify")]
pub async fn verify_email(token: String) -> Result<(), AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        let token = bounded_token(&token)?;
        accounts::verify_email(&call.state, &call.info, token).await?;
        redirect_plain_form("/verify-email?done=1");
        Ok(())
    })
    .await
}

/// What a confirmation link would confirm (the address and the account), read before
/// the mailbox's owner decides.
#[server(prefix = "/api", endpoint = "email/pending")]
pub async fn pending_address(token: String) -> Result<crate::model::PendingAddress, AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        let token = bounded_token(&token)?;
        accounts::pending_address(&call.state, &call.info, token).await
    })
    .await
}

/// "This is not my account": spends the link without confirming anything.
#[server(prefix = "/api", endpoint = "email/decline")]
pub async fn decline_address(token: String) -> Result<(), AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        let token = bounded_token(&token)?;
        accounts::decline_address(&call.state, &call.info, token).await?;
        redirect_plain_form("/verify-email?declined=1");
        Ok(())
    })
    .await
}

/// Mails a new confirmation link to the signed-in user's address.
#[server(prefix = "/api", endpoint = "email/resend")]
pub async fn resend_verification() -> Result<(), AppError> {
    respond(Access::AnyUser, |call, current| async move {
        accounts::resend_verification(&call.state, &current).await
    })
    .await
}

/// Asks to change the signed-in user's address: the new one gets a confirmation link.
/// Accounts with a second factor prove it too (`code`), unless the login did lately.
#[server(prefix = "/api", endpoint = "email/change")]
pub async fn change_email(
    current_password: String,
    email: String,
    code: Option<String>,
) -> Result<(), AppError> {
    respond(Access::AnyUser, |call, current| async move {
        let code = code.as_deref().map(|c| truncate(c, 32));
        accounts::change_email(
            &call.state,
            &call.info,
            &current,
            current_password,
            &email,
            code.as_deref(),
        )
        .await
    })
    .await
}

/// "Forgot password?": mails a reset link if an account has this address. The answer
/// is the same either way.
#[server(prefix = "/api", endpoint = "password/forgot")]
pub async fn forgot_password(email: String) -> Result<(), AppError> {
    respond(Access::PUBLIC, |call, ()| async move {
        accounts::forgot_password(&call.state, &call.info, &email).await?;
        redirect_plain_form("/forgot-password?sent=1");
        Ok(())
    })
    .await
}

/// Link tokens are 64 hex digits; anything longer is not one, and is not looked up.
#[cfg(feature = "ssr")]
fn bounded_token(raw: &str) -> Result<&str, AppError> {
    let token = raw.trim();
    if token.len() <= 128 {
        Ok(token)
    } else {
        Err(AppError::Conflict("This link is invalid.".into()))
    }
}

#[server(prefix = "/api", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    respond(Access::Session, |call, current| async move {
        accounts::logout(&call.state, &call.info, &current).await?;
        crate::server::clear_site_data();
        redirect_plain_form("/login");
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "sessions")]
pub async fn my_sessions() -> Result<Vec<SessionSummary>, AppError> {
    respond(Access::AnyUser, |call, current| async move {
        sessions::list(&call.state.mysql, current.user.id, &current.session_key).await
    })
    .await
}

#[server(prefix = "/api", endpoint = "sessions/revoke")]
pub async fn revoke_session(handle: String) -> Result<(), AppError> {
    respond(Access::AnyUser, |call, current| async move {
        let handle = truncate(handle.trim(), 64);
        sessions::revoke(&call.state, &call.info, &current, &handle).await
    })
    .await
}

/// Ends every session of the user, this one included.
#[server(prefix = "/api", endpoint = "sessions/revoke-all")]
pub async fn logout_everywhere() -> Result<(), AppError> {
    respond(Access::AnyUser, |call, current| async move {
        accounts::logout_everywhere(&call.state, &call.info, &current).await?;
        redirect_plain_form("/login");
        Ok(())
    })
    .await
}

/// Closes the signed-in customer's account: their password, and a code when the account
/// has a second factor. Ends every session; the sales stay with the stores.
#[server(prefix = "/api", endpoint = "account/close")]
pub async fn close_account(current_password: String, code: Option<String>) -> Result<(), AppError> {
    respond(Access::CUSTOMER, |call, current| async move {
        let code = code.unwrap_or_default();
        closure::close(&call.state, &call.info, &current, current_password, &code).await?;
        redirect_plain_form("/?closed=1");
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
    respond(Access::AnyUser, |call, current| async move {
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
    respond(Access::PUBLIC, |call, ()| async move {
        accounts::reset_password(
            &call.state,
            &call.info,
            bounded_token(&token)?,
            &new_password,
            &confirm_password,
        )
        .await?;
        redirect_plain_form("/login?reset=done");
        Ok(())
    })
    .await
}
