//! The second factor: TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps, one step of
//! clock skew either way) and single-use recovery codes.
//!
//! A code is accepted once: `second_factors.last_step` holds the newest step accepted,
//! and it only moves forward in one compare-and-set statement, so two instances given
//! the same code accept it once between them. Recovery codes are 50 random bits each,
//! stored as SHA-256 and spent by one conditional UPDATE.

use super::audit::{self, AuditEvent, AuditRecord};
use super::request::RequestInfo;
use super::sessions::CurrentUser;
use crate::model::{AppError, RecoveryCodes, TotpEnrolment, TwoFactorStatus};
use crate::server::AppState;
use crate::server::db::Context;
use crate::server::limits::{self, Counter, Limit};
use sha2::{Digest, Sha256};
use sqlx::{MySqlConnection, MySqlPool};
use std::time::Duration;
use totp_rs::{Algorithm, Secret, TOTP};

const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;
const SKEW_STEPS: u64 = 1;
const RECOVERY_CODES: usize = 10;
const ISSUER: &str = "Supply Co. portal";

/// Wrong codes per account: like the password, five in 15 minutes, then waits that double.
const SECOND_STEP_LIMIT: Limit = Limit {
    max: 5,
    window: Duration::from_secs(15 * 60),
    base_delay: Duration::from_secs(30),
};

/// Wrong codes per account per day, whatever the pace: the 15-minute limit alone
/// starts again from zero, which would allow some 860 guesses a day for ever. At 20 a
/// day (each covering three valid codes), a month of guessing passes with about 0.2%.
const SECOND_STEP_DAILY: Limit = Limit::per_window(20, Duration::from_secs(24 * 3600));

fn totp(secret: &str) -> Result<TOTP, AppError> {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .map_err(|_| AppError::Internal)?;
    TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP_SECS, bytes).map_err(|e| {
        tracing::error!(error = %e, "stored TOTP secret is unusable");
        AppError::Internal
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The code for `secret` at time step `step`: what an authenticator app shows.
pub fn code_at(secret: &str, step: u64) -> Result<String, AppError> {
    Ok(totp(secret)?.generate(step * STEP_SECS))
}

/// The current time step.
pub fn current_step() -> u64 {
    now_secs() / STEP_SECS
}

/// The step within the skew window whose code `code` is, if any.
fn matching_step(secret: &str, code: &str) -> Result<Option<u64>, AppError> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let now = current_step();
    let totp = totp(secret)?;
    Ok(
        (now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS).find(|step| {
            use subtle::ConstantTimeEq;
            bool::from(
                totp.generate(step * STEP_SECS)
                    .as_bytes()
                    .ct_eq(code.as_bytes()),
            )
        }),
    )
}

fn new_secret() -> String {
    match Secret::Raw(super::tokens::random_bytes(20)).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => unreachable!("to_encoded always encodes"),
    }
}

/// `xxxxx-xxxxx` from an alphabet without look-alikes (no 0/o, 1/l/i).
fn new_recovery_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut rng = rand::rngs::OsRng;
    let mut code: String = (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    code.insert(5, '-');
    code
}

fn recovery_hash(code: &str) -> String {
    let normalized: String = code
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .collect();
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

/// The otpauth URI an authenticator app reads from the QR code.
fn otpauth_uri(secret: &str, account: &str) -> String {
    let enc = crate::model::url::component;
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(ISSUER),
        enc(account),
        enc(ISSUER)
    )
}

fn qr_svg(uri: &str) -> Result<String, AppError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| {
        tracing::error!(error = %e, "QR code could not be made");
        AppError::Internal
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    // An XML declaration has no place inside an HTML page.
    Ok(match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg,
    })
}

/// Whether the user has a confirmed second factor.
pub async fn enabled(pool: &MySqlPool, user_id: u64) -> Result<bool, AppError> {
    let found: Option<u64> = sqlx::query_scalar(
        "SELECT user_id FROM second_factors WHERE user_id = ? AND confirmed_at IS NOT NULL",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
    .context("read second factor")?;
    Ok(found.is_some())
}

pub async fn status(pool: &MySqlPool, current: &CurrentUser) -> Result<TwoFactorStatus, AppError> {
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
    )
    .bind(current.user.id)
    .fetch_one(pool)
    .await
    .context("count recovery codes")?;
    Ok(TwoFactorStatus {
        enabled: enabled(pool, current.user.id).await?,
        required: current.user.role.needs_second_factor(),
        recovery_codes_left: u32::try_from(left).unwrap_or(0),
    })
}

/// Starts setting up (or replacing) the second factor: a new secret, kept unconfirmed
/// until a code from it comes back. A confirmed factor stays in force meanwhile.
pub async fn begin(state: &AppState, current: &CurrentUser) -> Result<TotpEnrolment, AppError> {
    if enabled(&state.mysql, current.user.id).await? {
        return Err(AppError::Conflict(
            "Two-factor authentication is on already. To move it to a new device, ask a senior manager to reset it."
                .into(),
        ));
    }
    let secret = new_secret();
    let sealed = state.secret_keys.seal(current.user.id, &secret)?;
    // Only an unconfirmed secret is replaced: a factor confirmed meanwhile stays.
    sqlx::query(
        "INSERT INTO second_factors (user_id, secret, confirmed_at, last_step, created_at) \
         VALUES (?, ?, NULL, NULL, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE \
           secret = IF(confirmed_at IS NULL, VALUES(secret), secret), \
           created_at = IF(confirmed_at IS NULL, VALUES(created_at), created_at)",
    )
    .bind(current.user.id)
    .bind(&sealed)
    .execute(&state.mysql)
    .await
    .context("store second factor")?;
    // The password alone must not be enough to attach an authenticator (a new staff
    // account, or one whose factor a manager reset): the mailbox proves it too.
    let email = crate::model::Email::parse(&current.user.email).map_err(|_| AppError::Internal)?;
    let mut conn = state.mysql.acquire().await.context("mail set-up code")?;
    let mailed = super::tokens::issue_code(
        &mut conn,
        current.user.id,
        super::tokens::Purpose::FactorSetup,
        &email,
    )
    .await?;
    crate::server::mail::enqueue(
        &mut conn,
        &crate::server::mail::templates::factor_setup_code(&email, &current.user.username, &mailed),
    )
    .await?;
    drop(conn);
    state.mailer.nudge();
    let uri = otpauth_uri(&secret, &current.user.username);
    Ok(TotpEnrolment {
        qr_svg: qr_svg(&uri)?,
        secret,
        uri,
    })
}

/// Takes the code at `step` for the user's secret, once: false if that step (or a
/// later one) was already used.
async fn spend_step(conn: &mut MySqlConnection, user_id: u64, step: u64) -> Result<bool, AppError> {
    Ok(sqlx::query(
        "UPDATE second_factors SET last_step = ? WHERE user_id = ? AND (last_step IS NULL OR last_step < ?)",
    )
    .bind(step)
    .bind(user_id)
    .bind(step)
    .execute(&mut *conn)
    .await
    .context("use one-time code")?
    .rows_affected()
        == 1)
}

/// Finishes setting up: the code proves the app holds the secret. Issues the recovery
/// codes (shown once) and counts this login as having passed the second step.
pub async fn confirm(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    code: &str,
    mailed_code: &str,
) -> Result<RecoveryCodes, AppError> {
    let reserved = limits::check(
        &state.mysql,
        Counter::SecondFactor,
        &current.user.id.to_string(),
        SECOND_STEP_LIMIT,
    )
    .await?;
    let mut tx = state.mysql.begin().await.context("begin")?;
    let secret: Option<String> = sqlx::query_scalar(
        "SELECT secret FROM second_factors WHERE user_id = ? AND confirmed_at IS NULL FOR UPDATE",
    )
    .bind(current.user.id)
    .fetch_optional(&mut *tx)
    .await
    .context("read second factor")?;
    let Some(secret) = secret else {
        let _ = tx.rollback().await;
        return Err(AppError::Conflict(
            "Start the set-up again: there is no new secret waiting for a code.".into(),
        ));
    };
    let secret = state.secret_keys.open(current.user.id, &secret)?;
    let accepted = match matching_step(&secret, code)? {
        Some(step) => spend_step(&mut tx, current.user.id, step).await?,
        None => false,
    };
    let mailbox_proved = accepted
        && super::tokens::redeem_code(
            &mut tx,
            current.user.id,
            super::tokens::Purpose::FactorSetup,
            mailed_code,
        )
        .await?;
    if !mailbox_proved {
        let _ = tx.rollback().await;
        audit_event(
            state,
            info,
            current.user.id,
            AuditEvent::SecondFactorFailed,
            Some("set-up"),
        )
        .await;
        return Err(if accepted {
            AppError::invalid(
                "mailed_code",
                "That is not the code we mailed you, or it is more than 30 minutes old. Start again for a new one.",
            )
        } else {
            AppError::invalid(
                "code",
                "That code is not right. Check the app's clock and try the newest code.",
            )
        });
    }
    sqlx::query("UPDATE second_factors SET confirmed_at = UTC_TIMESTAMP(6) WHERE user_id = ?")
        .bind(current.user.id)
        .execute(&mut *tx)
        .await
        .context("confirm second factor")?;
    let codes = replace_recovery_codes(&mut tx, current.user.id).await?;
    super::sessions::pass_second_step(&mut tx, &current.session_key).await?;
    tx.commit().await.context("commit")?;
    limits::release(&state.mysql, &reserved).await?;
    // Proving a new factor raises what the session may do: a new id for it.
    info.session
        .cycle_id()
        .await
        .map_err(super::sessions::session_error)?;
    audit_event(
        state,
        info,
        current.user.id,
        AuditEvent::SecondFactorEnabled,
        None,
    )
    .await;
    Ok(codes)
}

async fn replace_recovery_codes(
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

/// The second step of a login: a code from the app, or a recovery code. Throttled per
/// account like the password; each code works once.
pub async fn second_step(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    code: &str,
) -> Result<(), AppError> {
    let user_id = current.user.id;
    let mut tx = state.mysql.begin().await.context("begin")?;
    let (how, reserved) = spend_code(state, info, user_id, code, &mut tx).await?;
    super::sessions::pass_second_step(&mut tx, &current.session_key).await?;
    tx.commit().await.context("commit")?;
    reserved.release(&state.mysql).await?;
    info.session
        .cycle_id()
        .await
        .map_err(super::sessions::session_error)?;
    audit_event(
        state,
        info,
        user_id,
        AuditEvent::SecondFactorPassed,
        Some(how),
    )
    .await;
    Ok(())
}

/// Checks a code from the app or a recovery code of `user_id` and spends it inside `tx`
/// (so it is spent only if what it confirms commits). Throttled per account; a wrong
/// one is audited. Returns how the user answered, and the throttle reservation to
/// release once `tx` has committed.
pub(super) async fn spend_code(
    state: &AppState,
    info: &RequestInfo,
    user_id: u64,
    code: &str,
    tx: &mut MySqlConnection,
) -> Result<(&'static str, Reserved), AppError> {
    let subject = user_id.to_string();
    let mut held = Vec::new();
    for (counter, limit, detail) in [
        (Counter::SecondFactor, SECOND_STEP_LIMIT, None),
        (
            Counter::SecondFactorDay,
            SECOND_STEP_DAILY,
            Some("daily limit"),
        ),
    ] {
        match limits::hit(&state.mysql, counter, &subject, limit).await? {
            Ok(reserved) => held.push(reserved),
            Err(refused) => {
                Reserved(held).release(&state.mysql).await?;
                if refused.first {
                    audit_event(
                        state,
                        info,
                        user_id,
                        AuditEvent::SecondFactorThrottled,
                        detail,
                    )
                    .await;
                    if counter == Counter::SecondFactorDay {
                        guessing_notice(state, user_id).await?;
                    }
                }
                return Err(AppError::Throttled(refused.retry_after));
            }
        }
    }
    let reserved = Reserved(held);
    let secret: Option<String> = sqlx::query_scalar(
        "SELECT secret FROM second_factors WHERE user_id = ? AND confirmed_at IS NOT NULL",
    )
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await
    .context("read second factor")?;
    let Some(secret) = secret else {
        return Err(AppError::Conflict(
            "This account has no second factor.".into(),
        ));
    };
    let secret = state.secret_keys.open(user_id, &secret)?;
    let how = if let Some(step) = matching_step(&secret, code)? {
        spend_step(&mut *tx, user_id, step).await?.then_some("app")
    } else {
        sqlx::query(
            "UPDATE recovery_codes SET used_at = UTC_TIMESTAMP(6) WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(recovery_hash(code))
        .execute(&mut *tx)
        .await
        .context("use recovery code")?
        .rows_affected()
        .eq(&1)
        .then_some("recovery code")
    };
    let Some(how) = how else {
        audit_event(state, info, user_id, AuditEvent::SecondFactorFailed, None).await;
        return Err(AppError::invalid(
            "code",
            "That code is not right, or was used already.",
        ));
    };
    Ok((how, reserved))
}

/// How long a proof of the second factor covers sensitive actions without another.
const FRESH_PROOF: Duration = Duration::from_secs(10 * 60);

/// Sensitive actions (a new address, new recovery codes, turning the factor off) need a
/// recent proof of the second factor from accounts that have one: the session's own
/// within `FRESH_PROOF`, or `code` now, spent inside `tx` (it then counts as the
/// session's newest proof). So a stolen session cannot make them on the password
/// alone once its login is ten minutes old. Returns the code's throttle reservation, to
/// release once `tx` has committed.
pub async fn require_fresh_proof(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    code: Option<&str>,
    tx: &mut MySqlConnection,
) -> Result<Option<Reserved>, AppError> {
    if !enabled(&state.mysql, current.user.id).await? {
        return Ok(None);
    }
    let code = code.map(str::trim).unwrap_or_default();
    if code.is_empty() {
        let fresh: Option<bool> = sqlx::query_scalar(
            "SELECT second_factor_at > UTC_TIMESTAMP(6) - INTERVAL ? SECOND FROM user_sessions WHERE id = ?",
        )
        .bind(FRESH_PROOF.as_secs())
        .bind(&current.session_key)
        .fetch_optional(&mut *tx)
        .await
        .context("read the session's second step")?
        .flatten();
        if fresh == Some(true) {
            return Ok(None);
        }
        return Err(AppError::invalid(
            "code",
            "Enter a code from your authenticator app, or a recovery code: this change needs one when you last gave one more than 10 minutes ago",
        ));
    }
    let (_, reserved) = spend_code(state, info, current.user.id, code, tx).await?;
    super::sessions::pass_second_step(tx, &current.session_key).await?;
    Ok(Some(reserved))
}

/// The throttle reservations of one code, released together once what it confirmed
/// has committed: a right code is not a failure.
pub struct Reserved(Vec<limits::Reserved>);

impl Reserved {
    pub async fn release(self, pool: &MySqlPool) -> Result<(), AppError> {
        for reserved in &self.0 {
            limits::release(pool, reserved).await?;
        }
        Ok(())
    }
}

/// Tells the owner that someone who knows the password is guessing second-step codes.
async fn guessing_notice(state: &AppState, user_id: u64) -> Result<(), AppError> {
    #[derive(sqlx::FromRow)]
    struct Owner {
        username: String,
        email: String,
    }
    let owner: Option<Owner> = sqlx::query_as("SELECT username, email FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(&state.mysql)
        .await
        .context("find account owner")?;
    let Some(to) = owner
        .as_ref()
        .and_then(|o| crate::model::Email::parse(&o.email).ok())
    else {
        return Ok(());
    };
    let mut conn = state.mysql.acquire().await.context("guessing notice")?;
    let username = owner.map(|o| o.username).unwrap_or_default();
    crate::server::mail::enqueue(
        &mut conn,
        &crate::server::mail::templates::second_step_guessed(&to, &username),
    )
    .await?;
    state.mailer.nudge();
    Ok(())
}

/// Removes a user's second factor and recovery codes (a manager's reset, or a customer
/// turning theirs off). Returns whether there was one.
pub async fn remove(conn: &mut MySqlConnection, user_id: u64) -> Result<bool, AppError> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .context("remove recovery codes")?;
    Ok(sqlx::query("DELETE FROM second_factors WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .context("remove second factor")?
        .rows_affected()
        > 0)
}

async fn audit_event(
    state: &AppState,
    info: &RequestInfo,
    user_id: u64,
    event: AuditEvent,
    detail: Option<&str>,
) {
    audit::record(
        &state.mysql,
        event,
        AuditRecord {
            user_id: Some(user_id),
            ip: Some(&info.ip),
            detail: detail.map(str::to_string),
            ..Default::default()
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_rfc_6238_test_vector() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); 6 digits: 287082.
        let secret = match Secret::Raw(b"12345678901234567890".to_vec()).to_encoded() {
            Secret::Encoded(s) => s,
            Secret::Raw(_) => unreachable!(),
        };
        assert_eq!(code_at(&secret, 59 / STEP_SECS).unwrap(), "287082");
        assert_eq!(
            code_at(&secret, 1_111_111_109 / STEP_SECS).unwrap(),
            "081804"
        );
    }

    #[test]
    fn a_code_matches_its_own_step_and_the_neighbours_only() {
        let secret = new_secret();
        let now = current_step();
        for step in [now - 1, now, now + 1] {
            let code = code_at(&secret, step).unwrap();
            assert_eq!(matching_step(&secret, &code).unwrap(), Some(step));
        }
        let old = code_at(&secret, now - 3).unwrap();
        let current = code_at(&secret, now).unwrap();
        if old != current
            && old != code_at(&secret, now - 1).unwrap()
            && old != code_at(&secret, now + 1).unwrap()
        {
            assert_eq!(matching_step(&secret, &old).unwrap(), None);
        }
        assert_eq!(matching_step(&secret, "12345").unwrap(), None);
        assert_eq!(matching_step(&secret, "abcdef").unwrap(), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving_to_type() {
        let codes: std::collections::HashSet<String> =
            (0..50).map(|_| new_recovery_code()).collect();
        assert_eq!(codes.len(), 50);
        let code = codes.iter().next().unwrap();
        assert_eq!(code.len(), 11);
        assert_eq!(
            recovery_hash(code),
            recovery_hash(&format!(" {} ", code.to_uppercase().replace('-', "")))
        );
    }

    #[test]
    fn the_qr_code_is_an_svg_document_holding_the_uri() {
        let uri = otpauth_uri("JBSWY3DPEHPK3PXP", "ada lovelace");
        assert!(uri.starts_with(
            "otpauth://totp/Supply%20Co.%20portal:ada%20lovelace?secret=JBSWY3DPEHPK3PXP"
        ));
        let svg = qr_svg(&uri).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>"),
            "{}",
            &svg[..80]
        );
    }
}
