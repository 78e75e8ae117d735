//! The signed-in user's passkeys: adding one, listing them, removing one.
//!
//! Adding and removing are sensitive: a passkey signs in alone. Both need the current
//! password, and from accounts with an authenticator app a recent proof of it, and are
//! announced to the address on file, so a stolen session cannot quietly leave itself a
//! way back in.

use super::ceremonies::{self, Owner, Purpose};
use crate::model::{
    AppError, Email, PasskeyChallenge, PasskeyName, PasskeySummary, Passkeys, passkey::PASSKEYS_MAX,
};
use crate::server::AppState;
use crate::server::auth::audit::{self, AuditEvent, AuditRecord};
use crate::server::auth::{CurrentUser, accounts, request::RequestInfo, second_factor};
use crate::server::db::{Context, violated_key};
use crate::server::mail::{self, Mail, templates};
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::MySqlPool;
use webauthn_rs::prelude::{CredentialID, PasskeyRegistration, RegisterPublicKeyCredential, Uuid};

/// The signed-in user's passkeys, newest last, and where passkeys work.
pub async fn list(state: &AppState, user_id: u64) -> Result<Passkeys, AppError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: u64,
        name: String,
        created_at: NaiveDateTime,
        last_used_at: Option<NaiveDateTime>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, created_at, last_used_at FROM passkeys WHERE user_id = ? ORDER BY created_at, id",
    )
    .bind(user_id)
    .fetch_all(&state.mysql)
    .await
    .context("list passkeys")?;
    let utc = |t: NaiveDateTime| DateTime::<Utc>::from_naive_utc_and_offset(t, Utc);
    Ok(Passkeys {
        keys: rows
            .into_iter()
            .map(|r| PasskeySummary {
                id: r.id,
                name: r.name,
                created_at: utc(r.created_at),
                last_used_at: r.last_used_at.map(utc),
            })
            .collect(),
        origin: state.passkeys.origin(),
    })
}

/// Starts adding a passkey, once the password and a recent second factor are proved:
/// the options for `navigator.credentials.create`, and the ceremony's token.
pub async fn begin(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    code: Option<&str>,
) -> Result<PasskeyChallenge, AppError> {
    let webauthn = state.passkeys.webauthn()?;
    accounts::check_current_password(state, info, current, current_password).await?;
    let mut tx = state.mysql.begin().await.context("begin")?;
    let proof = second_factor::require_fresh_proof(state, info, current, code, &mut tx).await?;
    tx.commit().await.context("commit")?;
    if let Some(proof) = proof {
        proof.release(&state.mysql).await?;
    }
    let user_id = current.user.id;
    let existing: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT credential_id FROM passkeys WHERE user_id = ?")
            .bind(user_id)
            .fetch_all(&state.mysql)
            .await
            .context("read passkeys")?;
    if existing.len() >= PASSKEYS_MAX {
        return Err(AppError::Conflict(format!(
            "An account keeps at most {PASSKEYS_MAX} passkeys: remove one first."
        )));
    }
    let handle = user_handle(&state.mysql, user_id).await?;
    // A credential id is its bytes.
    let exclude: Vec<CredentialID> = existing;
    let (options, registration) = webauthn
        .start_passkey_registration(
            handle,
            &current.user.username,
            &current.user.username,
            Some(exclude),
        )
        .map_err(|e| {
            tracing::error!(error = %e, "passkey registration not started");
            AppError::Internal
        })?;
    let options = discoverable(serde_json::to_value(options).map_err(|e| {
        tracing::error!(error = %e, "passkey options not serialisable");
        AppError::Internal
    })?);
    let owner = Owner {
        user_id,
        session_key: &current.session_key,
    };
    let ceremony =
        ceremonies::open(&state.mysql, Purpose::Register, Some(owner), &registration).await?;
    Ok(PasskeyChallenge {
        ceremony,
        options: options.to_string(),
    })
}

/// Asks the authenticator for a discoverable credential (one it keeps with the user
/// handle), which signing in without a username needs. webauthn-rs leaves that to the
/// authenticator; the options are the relying party's to set, and the ceremony's
/// checks do not depend on them.
fn discoverable(mut options: serde_json::Value) -> serde_json::Value {
    if let Some(selection) = options
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(serde_json::Value::as_object_mut)
    {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    options
}

/// The account's passkey user handle, made on first use: random, so what an
/// authenticator keeps says nothing about the account.
async fn user_handle(pool: &MySqlPool, user_id: u64) -> Result<Uuid, AppError> {
    sqlx::query("UPDATE users SET passkey_handle = ? WHERE id = ? AND passkey_handle IS NULL")
        .bind(Uuid::new_v4().as_bytes().as_slice())
        .bind(user_id)
        .execute(pool)
        .await
        .context("make passkey handle")?;
    let handle: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT passkey_handle FROM users WHERE id = ?")
            .bind(user_id)
            .fetch_optional(pool)
            .await
            .context("read passkey handle")?
            .flatten();
    handle
        .and_then(|h| Uuid::from_slice(&h).ok())
        .ok_or(AppError::NotFound)
}

/// Finishes adding a passkey with the browser's answer (`credential`, the JSON of
/// `PublicKeyCredential.toJSON()`), in the login that began it.
pub async fn finish(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    ceremony: &str,
    name: PasskeyName,
    credential: &str,
) -> Result<PasskeySummary, AppError> {
    let webauthn = state.passkeys.webauthn()?;
    let credential: RegisterPublicKeyCredential =
        serde_json::from_str(credential).map_err(|_| unreadable())?;
    let owner = Owner {
        user_id: current.user.id,
        session_key: &current.session_key,
    };
    // Sign-in is by discoverable credentials only: one the authenticator says it did
    // not keep could never sign in.
    if credential
        .extensions
        .cred_props
        .as_ref()
        .is_some_and(|props| props.rk == Some(false))
    {
        return Err(AppError::invalid(
            "credential",
            "This authenticator cannot keep a passkey for signing in without a username. Try your phone or your computer's own passkeys.",
        ));
    }
    let registration: PasskeyRegistration =
        ceremonies::take(&state.mysql, Purpose::Register, ceremony, Some(owner)).await?;
    let passkey = webauthn
        .finish_passkey_registration(&credential, &registration)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            AppError::invalid(
                "credential",
                "The passkey could not be verified. Please try again.",
            )
        })?;
    let stored = serde_json::to_string(&passkey).map_err(|e| {
        tracing::error!(error = %e, "passkey not serialisable");
        AppError::Internal
    })?;
    let mut tx = state.mysql.begin().await.context("begin")?;
    let inserted = sqlx::query(
        "INSERT INTO passkeys (user_id, credential_id, name, credential, created_at) \
         VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))",
    )
    .bind(current.user.id)
    .bind(passkey.cred_id().as_slice())
    .bind(name.as_str())
    .bind(stored)
    .execute(&mut *tx)
    .await;
    let id = match inserted {
        Ok(done) => done.last_insert_id(),
        Err(e) if violated_key(&e).as_deref() == Some("uq_passkeys_credential") => {
            return Err(AppError::Conflict(
                "This passkey is registered already.".into(),
            ));
        }
        Err(e) => return Err(e).context("add passkey"),
    };
    announce(&mut tx, current, templates::passkey_added).await?;
    tx.commit().await.context("commit")?;
    state.mailer.nudge();
    record(
        state,
        info,
        current,
        AuditEvent::PasskeyAdded,
        name.as_str(),
    )
    .await;
    Ok(PasskeySummary {
        id,
        name: name.as_str().to_string(),
        created_at: Utc::now(),
        last_used_at: None,
    })
}

fn unreadable() -> AppError {
    AppError::invalid(
        "credential",
        "The browser's answer could not be read. Please try again.",
    )
}

/// Removes one of the signed-in user's passkeys, after the password and a recent
/// second factor.
pub async fn remove(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    id: u64,
    current_password: String,
    code: Option<&str>,
) -> Result<(), AppError> {
    accounts::check_current_password(state, info, current, current_password).await?;
    let mut tx = state.mysql.begin().await.context("begin")?;
    let proof = second_factor::require_fresh_proof(state, info, current, code, &mut tx).await?;
    let name: Option<String> =
        sqlx::query_scalar("SELECT name FROM passkeys WHERE id = ? AND user_id = ? FOR UPDATE")
            .bind(id)
            .bind(current.user.id)
            .fetch_optional(&mut *tx)
            .await
            .context("find passkey")?;
    let Some(name) = name else {
        return Err(AppError::NotFound);
    };
    sqlx::query("DELETE FROM passkeys WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("remove passkey")?;
    announce(&mut tx, current, templates::passkey_removed).await?;
    tx.commit().await.context("commit")?;
    if let Some(proof) = proof {
        proof.release(&state.mysql).await?;
    }
    state.mailer.nudge();
    record(state, info, current, AuditEvent::PasskeyRemoved, &name).await;
    Ok(())
}

/// Forgets every passkey of `user_id`, with its unfinished ceremonies and its user
/// handle, inside the caller's transaction: a manager's reset of a lost device (the
/// device may hold a passkey) and a closed account.
pub async fn forget_all(conn: &mut sqlx::MySqlConnection, user_id: u64) -> Result<u64, AppError> {
    let removed = sqlx::query("DELETE FROM passkeys WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .context("forget passkeys")?
        .rows_affected();
    sqlx::query("DELETE FROM passkey_ceremonies WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .context("forget passkey ceremonies")?;
    sqlx::query("UPDATE users SET passkey_handle = NULL WHERE id = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .context("forget passkey handle")?;
    Ok(removed)
}

/// Queues the notice `template` to the address on file, inside the change's
/// transaction.
async fn announce(
    tx: &mut sqlx::MySqlConnection,
    current: &CurrentUser,
    template: fn(&Email, &str) -> Mail,
) -> Result<(), AppError> {
    if let Ok(to) = Email::parse(&current.user.email) {
        mail::enqueue(tx, &template(&to, &current.user.username)).await?;
    }
    Ok(())
}

async fn record(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    event: AuditEvent,
    name: &str,
) {
    audit::record(
        &state.mysql,
        event,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            detail: Some(name.to_string()),
            ..Default::default()
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::discoverable;

    #[test]
    fn registrations_ask_for_a_discoverable_credential() {
        let options = serde_json::json!({
            "publicKey": { "authenticatorSelection": { "residentKey": "discouraged", "requireResidentKey": false, "userVerification": "required" } }
        });
        let options = discoverable(options);
        let selection = &options["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["requireResidentKey"], true);
        assert_eq!(selection["userVerification"], "required");
    }
}
