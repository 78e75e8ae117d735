//! Signing in with a passkey alone, without a username: the authenticator offers the
//! passkeys it keeps for this site and answers with the chosen one's user handle. A
//! passkey is something the user has, unlocked by something they know or are (user
//! verification is required), so the login has both factors at once.

use super::ceremonies::{self, Purpose};
use crate::model::AppError;
use crate::model::{PasskeyChallenge, SessionUser};
use crate::server::AppState;
use crate::server::auth::accounts::{self, LoggedIn};
use crate::server::auth::audit::{self, AuditEvent, AuditRecord};
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::Proved;
use crate::server::db::Context;
use crate::server::limits::{self, Counter, Limit};
use std::time::Duration;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PublicKeyCredential, WebauthnError,
};

/// Starts a sign-in: the options for `navigator.credentials.get`, and the token.
/// Counted with password logins against the client's requests per minute.
pub async fn begin(state: &AppState, info: &RequestInfo) -> Result<PasskeyChallenge, AppError> {
    let webauthn = state.passkeys.webauthn()?;
    limits::check(
        &state.mysql,
        Counter::LoginRequest,
        &info.client,
        Limit::per_window(
            state.auth.throttle.requests_per_minute,
            Duration::from_secs(60),
        ),
    )
    .await?;
    let (options, authentication) = webauthn.start_discoverable_authentication().map_err(|e| {
        tracing::error!(error = %e, "passkey sign-in not started");
        AppError::Internal
    })?;
    let mut options = serde_json::to_value(options).map_err(|e| {
        tracing::error!(error = %e, "passkey options not serialisable");
        AppError::Internal
    })?;
    // webauthn-rs marks these options for the autofill prompt ("conditional"); the
    // button asks with the browser's own dialog instead.
    if let Some(options) = options.as_object_mut() {
        options.remove("mediation");
    }
    let ceremony = ceremonies::open(&state.mysql, Purpose::SignIn, None, &authentication).await?;
    Ok(PasskeyChallenge {
        ceremony,
        options: options.to_string(),
    })
}

/// Finishes a sign-in with the browser's answer (`credential`, the JSON of
/// `PublicKeyCredential.toJSON()`): a login with both factors proved.
#[tracing::instrument(skip_all, fields(ip = %info.ip))]
pub async fn finish(
    state: &AppState,
    info: &RequestInfo,
    ceremony: &str,
    credential: &str,
) -> Result<LoggedIn, AppError> {
    let webauthn = state.passkeys.webauthn()?;
    let credential: PublicKeyCredential = serde_json::from_str(credential).map_err(|_| {
        AppError::invalid(
            "credential",
            "The browser's answer could not be read. Please try again.",
        )
    })?;
    let authentication: DiscoverableAuthentication =
        ceremonies::take(&state.mysql, Purpose::SignIn, ceremony, None).await?;
    let Ok((handle, credential_id)) = webauthn.identify_discoverable_authentication(&credential)
    else {
        return Err(refused(state, info, None, "no user handle").await);
    };
    #[derive(sqlx::FromRow)]
    struct Row {
        id: u64,
        user_id: u64,
        credential: String,
    }
    // Read, verified and written back under the row's lock: two sign-ins at once must
    // not move the stored signature counter backwards.
    let mut tx = state.mysql.begin().await.context("begin")?;
    let row: Option<Row> = sqlx::query_as(
        "SELECT p.id, p.user_id, p.credential FROM passkeys p JOIN users u ON u.id = p.user_id \
         WHERE p.credential_id = ? AND u.passkey_handle = ? FOR UPDATE",
    )
    .bind(credential_id)
    .bind(handle.as_bytes().as_slice())
    .fetch_optional(&mut *tx)
    .await
    .context("find passkey")?;
    let Some(row) = row else {
        return Err(refused(state, info, None, "unknown passkey").await);
    };
    let Some(account) = accounts::find_by(&state.mysql, "id", &row.user_id.to_string()).await?
    else {
        // Closed since: nobody's.
        return Err(refused(state, info, Some(row.user_id), "account closed").await);
    };
    let user = SessionUser::from(account);
    let mut passkey: Passkey = serde_json::from_str(&row.credential).map_err(|e| {
        tracing::error!(error = %e, passkey = row.id, "stored passkey unreadable");
        AppError::Internal
    })?;
    let result =
        match webauthn.finish_discoverable_authentication_v2(&credential, authentication, &passkey)
        {
            Ok(result) => result,
            Err(e) => {
                tracing::info!(error = %e, "passkey sign-in refused");
                let why = match e {
                    // The authenticator's counter went backwards: a copy of the key may
                    // be in use elsewhere.
                    WebauthnError::CredentialPossibleCompromise => "counter went backwards",
                    _ => "passkey not verified",
                };
                return Err(refused(state, info, Some(row.user_id), why).await);
            }
        };
    // A disabled account's owner is told why by mail; the answer is a refusal like any.
    if accounts::refuse_disabled(state, info, &user, &user.username.to_ascii_lowercase())
        .await
        .is_err()
    {
        return Err(refusal());
    }
    let updated = match passkey.update_credential(&result) {
        Some(true) => Some(serde_json::to_string(&passkey).map_err(|e| {
            tracing::error!(error = %e, "passkey not serialisable");
            AppError::Internal
        })?),
        _ => None,
    };
    sqlx::query(
        "UPDATE passkeys SET last_used_at = UTC_TIMESTAMP(6), credential = COALESCE(?, credential) WHERE id = ?",
    )
    .bind(updated)
    .bind(row.id)
    .execute(&mut *tx)
    .await
    .context("record passkey use")?;
    tx.commit().await.context("commit")?;
    accounts::complete_login(state, info, user, Proved::BothFactors, Some("passkey")).await
}

/// Audits a refused passkey and answers the same error whatever the reason.
async fn refused(
    state: &AppState,
    info: &RequestInfo,
    user_id: Option<u64>,
    why: &str,
) -> AppError {
    audit::record(
        &state.mysql,
        AuditEvent::LoginFailed,
        AuditRecord {
            user_id,
            ip: Some(&info.ip),
            detail: Some(format!("passkey: {why}")),
            ..Default::default()
        },
    )
    .await;
    refusal()
}

/// The one answer to a passkey that does not sign in, whatever the reason.
fn refusal() -> AppError {
    AppError::invalid(
        "credential",
        "This passkey cannot sign in here: it may have been removed. Log in with your password instead.",
    )
}
