//! TOTP itself: codes, their steps, new secrets, and the QR code an app reads.

use crate::model::AppError;
use crate::server::db::Context;
use sqlx::MySqlConnection;
use totp_rs::{Algorithm, Secret, TOTP};

pub(super) const STEP_SECS: u64 = 30;

pub(super) const DIGITS: usize = 6;

pub(super) const SKEW_STEPS: u64 = 1;

pub(super) const ISSUER: &str = "Supply Co. portal";

pub(super) fn totp(secret: &str) -> Result<TOTP, AppError> {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .map_err(|_| AppError::Internal)?;
    TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP_SECS, bytes).map_err(|e| {
        tracing::error!(error = %e, "stored TOTP secret is unusable");
        AppError::Internal
    })
}

pub(super) fn now_secs() -> u64 {
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
pub(super) fn matching_step(secret: &str, code: &str) -> Result<Option<u64>, AppError> {
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

pub(super) fn new_secret() -> String {
    match Secret::Raw(crate::server::auth::tokens::random_bytes(20)).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => unreachable!("to_encoded always encodes"),
    }
}

/// The otpauth URI an authenticator app reads from the QR code.
pub(super) fn otpauth_uri(secret: &str, account: &str) -> String {
    let enc = crate::model::url::component;
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(ISSUER),
        enc(account),
        enc(ISSUER)
    )
}

pub(super) fn qr_svg(uri: &str) -> Result<String, AppError> {
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

/// Takes the code at `step` for the user's secret, once: false if that step (or a
/// later one) was already used.
pub(super) async fn spend_step(
    conn: &mut MySqlConnection,
    user_id: u64,
    step: u64,
) -> Result<bool, AppError> {
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
