//! argon2id hashing. Both hashing and verification take ~25-40 ms of CPU and 19 MiB,
//! so they run on the blocking pool, at most one per core at a time
//! (`limits::COSTLY`), and never stall the async runtime.

use crate::model::AppError;
use crate::server::limits::{COSTLY, Slot};
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::LazyLock;

/// OWASP's minimum for argon2id: 19 MiB of memory, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Verified against when the username is unknown, so an unknown user costs the same
/// time as a wrong password and the response time reveals nothing.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hasher()
        .hash_password(
            b"dummy password for unknown users",
            &SaltString::generate(&mut OsRng),
        )
        .expect("hashing a constant succeeds")
        .to_string()
});

/// Hashes on the blocking pool, within the process's bound on costly work.
pub async fn hash(secret: String) -> Result<String, AppError> {
    COSTLY
        .run(move || {
            hasher()
                .hash_password(secret.as_bytes(), &SaltString::generate(&mut OsRng))
                .map(|h| h.to_string())
        })
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "argon2 hashing failed");
            AppError::Internal
        })
}

/// `None` for the stored hash means "no such user": verify against the dummy hash.
pub async fn verify(stored: Option<String>, candidate: String) -> Result<bool, AppError> {
    verify_in(COSTLY.slot().await?, stored, candidate).await
}

/// `verify`, in a costly-work slot the caller already holds.
pub async fn verify_in(
    slot: Slot<'_>,
    stored: Option<String>,
    candidate: String,
) -> Result<bool, AppError> {
    slot.run(move || {
        let (phc, real) = match &stored {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            tracing::error!("stored password hash is not a valid PHC string");
            return false;
        };
        let ok = hasher()
            .verify_password(candidate.as_bytes(), &parsed)
            .is_ok();
        ok && real
    })
    .await
}

/// Warms the dummy hash so the first unknown-user login is not slower than the rest.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

/// Rejects passwords an attacker would guess early (zxcvbn score below 3 of 4).
/// Server-side only: the estimator's dictionaries would bloat the WASM bundle. Its cost
/// grows with crafted input, so it runs off the async workers, within the same bound
/// as hashing.
pub async fn check_strength(
    password: &str,
    user_inputs: &[&str],
) -> Result<Result<(), String>, AppError> {
    let password = password.to_string();
    let inputs: Vec<String> = user_inputs.iter().map(|s| s.to_string()).collect();
    COSTLY
        .run(move || {
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            strength(&password, &inputs)
        })
        .await
}

fn strength(password: &str, user_inputs: &[&str]) -> Result<(), String> {
    let estimate = zxcvbn::zxcvbn(password, user_inputs);
    if (estimate.score() as u8) < 3 {
        Err(
            "Password is too common or easy to guess: try a longer phrase of unrelated words"
                .into(),
        )
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = hash("Paperclip-Harbor-42".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            verify(Some(h.clone()), "Paperclip-Harbor-42".into())
                .await
                .unwrap()
        );
        assert!(!verify(Some(h), "paperclip-harbor-42".into()).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        assert!(
            !verify(None, "dummy password for unknown users".into())
                .await
                .unwrap()
        );
    }

    #[test]
    fn common_passwords_are_rejected() {
        assert!(strength("password1234", &[]).is_err());
        assert!(strength("qwertyuiop123", &[]).is_err());
        assert!(strength("Paperclip-Harbor-42", &[]).is_ok());
    }
}
