//! Recovery codes: single-use, stored as SHA-256.

use super::*;
use crate::model::{AppError, RecoveryCodes};
use crate::server::AppState;
use crate::server::auth::audit::AuditEvent;
use crate::server::auth::request::RequestInfo;
use crate::server::auth::sessions::CurrentUser;
use crate::server::db::Context;
use sha2::{Digest, Sha256};
use sqlx::MySqlConnection;

pub(super) const RECOVERY_CODES: usize = 10;

/// `xxxxx-xxxxx` from an alphabet without look-alikes (no 0/o, 1/l/i).
pub(super) fn new_recovery_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut rng = rand::rngs::OsRng;
    let mut code: String = (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    code.insert(5, '-');
    code
}

pub(super) fn recovery_hash(code: &str) -> String {
    let normalized: String = code
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .collect();
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

pub(super) async fn replace_recovery_codes(
    conn: &mut MySqlConnection,
    user_id: u64,
) -> Result<RecoveryCodes, AppError> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .context("replace recovery codes")?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let mut q =
        sqlx::QueryBuilder::<sqlx::MySql>::new("INSERT INTO recovery_codes (user_id, code_hash) ");
    q.push_values(&codes, |mut row, code| {
        row.push_bind(user_id).push_bind(recovery_hash(code));
    });
    q.build()
        .execute(&mut *conn)
        .await
        .context("store recovery codes")?;
    Ok(RecoveryCodes(codes))
}

/// New recovery codes for a user with a second factor; the old ones stop working.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    code: Option<&str>,
) -> Result<RecoveryCodes, AppError> {
    if !enabled(&state.mysql, current.user.id).await? {
        return Err(AppError::Conflict(
            "Set up two-factor authentication first.".into(),
        ));
    }
    let mut tx = state.mysql.begin().await.context("begin")?;
    let proof = require_fresh_proof(state, info, current, code, &mut tx).await?;
    let codes = replace_recovery_codes(&mut tx, current.user.id).await?;
    // Announced to the address on file: new codes are what a stolen session would
    // take to pass the second step later.
    if let Ok(to) = crate::model::Email::parse(&current.user.email) {
        crate::server::mail::enqueue(
            &mut tx,
            &crate::server::mail::templates::recovery_codes_replaced(&to, &current.user.username),
        )
        .await?;
    }
    tx.commit().await.context("commit")?;
    if let Some(proof) = proof {
        proof.release(&state.mysql).await?;
    }
    state.mailer.nudge();
    audit_event(
        state,
        info,
        current.user.id,
        AuditEvent::RecoveryCodesIssued,
        None,
    )
    .await;
    Ok(codes)
}
