//! The second factor: TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps, one step of
//! clock skew either way) and single-use recovery codes.
//!
//! A code is accepted once: `second_factors.last_step` holds the newest step accepted,
//! and it only moves forward in one compare-and-set statement, so two instances given
//! the same code accept it once between them. Recovery codes are 50 random bits each,
//! stored as SHA-256 and spent by one conditional UPDATE.

mod enrolment;
mod recovery;
mod step;
mod totp;

pub use enrolment::{begin, confirm};
pub use recovery::regenerate_recovery_codes;
pub(in crate::server::auth) use step::spend_code;
pub use step::{require_fresh_proof, second_step};
pub use totp::{code_at, current_step};

// What the parts share with one another.
use recovery::*;
use step::SECOND_STEP_LIMIT;
use totp::*;

use super::audit::{self, AuditEvent, AuditRecord};
use super::request::RequestInfo;
use super::sessions::CurrentUser;
use crate::model::{AppError, TwoFactorStatus};
use crate::server::AppState;
use crate::server::db::Context;
use crate::server::limits::{self};
use sqlx::{MySqlConnection, MySqlPool};

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
    use totp_rs::Secret;

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
